/*
 * secret.h: secrets as the admin sees them (versioned, with host allowlist and
 * maximum grant TTL) on top of store.h and vault.h. Values are never logged,
 * never returned except by secret_reveal, and wiped after use.
 */
#ifndef CB_SECRET_H
#define CB_SECRET_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct vault;

#define SECRET_NAME_MAX		128	/* [A-Za-z0-9._-], first char alphanumeric */
#define SECRET_VALUE_MAX	8192	/* bytes; no control character but tab */
#define SECRET_HOSTS_MAX	64

struct secret_meta {
	char *name;
	char **hosts;		/* normalised host names (lower case, no trailing dot) */
	size_t nhosts;
	int64_t max_ttl_s;
	int64_t version;	/* current version */
	int64_t created_at, updated_at;
};
/* Frees everything; NULL is fine. */
void secret_meta_free(struct secret_meta *m);

/* Returns 0 when name is a valid secret name, CB_ERR_INVAL otherwise. */
int secret_valid_name(const char *name);
/*
 * Returns 0 when value may be stored (1..SECRET_VALUE_MAX bytes, no control character
 * but tab), CB_ERR_INVAL/CB_ERR_LIMIT.
 */
int secret_valid_value(const uint8_t *value, size_t len);

/*
 * Creates the secret or adds a new version (inside the caller's transaction on the
 * writer connection wst): seals value for the next version under the active data key
 * and updates the metadata. *version receives the new version number.
 */
int secret_put(struct store *wst, struct vault *v, const char *name, const uint8_t *value,
    size_t len, char *const *hosts, size_t nhosts, int64_t max_ttl_s, int64_t now,
    int64_t *version);
/* Deletes a secret and all its versions (writer connection). CB_ERR_NOTFOUND when absent. */
int secret_delete(struct store *wst, const char *name);

/* Metadata of one secret; *out owned by the caller. CB_ERR_NOTFOUND when absent. */
int secret_get(struct store *st, const char *name, struct secret_meta **out);
/* Metadata of every secret ordered by name; free with secret_list_free. */
int secret_list(struct store *st, struct secret_meta ***out, size_t *n);
void secret_list_free(struct secret_meta **list, size_t n);
/* 1 when host (already normalised) is in the secret's allowlist, else 0. */
int secret_host_allowed(const struct secret_meta *m, const char *host);
/*
 * 0 when the secret's current host allowlist names host, CB_ERR_DENIED when it does not,
 * CB_ERR_NOTFOUND for no such secret (the metadata cache of secret_get, without a copy).
 */
int secret_allows_host(struct store *st, const char *name, const char *host);

/*
 * Decrypts the current version of name: *value is malloc'd, NUL-terminated, owned by
 * the caller, who wipes it with util_wipe_free(*value, *len + 1).
 */
int secret_reveal(struct store *st, struct vault *v, const char *name, uint8_t **value,
    size_t *len) __attribute__((warn_unused_result));
/*
 * secret_reveal keeps recently decrypted values in one cache shared by all threads
 * (bounded: SECRET_CACHE_MAX values, locked memory, wiped; see secret.c), secret_get
 * each thread's recently read metadata. secret_cache_invalidate: every value is wiped
 * now and each thread drops its metadata at its next call; called after any committed
 * secret write. secret_cache_clear: every value wiped and this thread's metadata freed
 * now. secret_cache_count: values the cache holds.
 */
#define SECRET_CACHE_MAX	4096
void secret_cache_invalidate(void);
void secret_cache_clear(void);
size_t secret_cache_count(void);

#endif
