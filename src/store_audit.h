/*
 * store_audit.h: SQL for the audit table (src/store_audit.c); included by store.h.
 * The chain logic (hashing, verification) is in audit.c; this file only moves rows.
 */
#ifndef CB_STORE_AUDIT_H
#define CB_STORE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_AUDIT_HASH_LEN	32	/* SHA-256, as CRYPTO_HASH_LEN */
#define STORE_AUDIT_LIST_MAX	1000	/* most rows one store_audit_list call returns */

/*
 * One audit row as stored. In rows handed out by store_audit_list the strings are
 * malloc'd (owned by the array, store_audit_rows_free); a NULL column stays NULL.
 */
struct store_audit_row {
	int64_t seq;
	int64_t ts;
	char *actor;
	char *role;
	char *action;
	char *outcome;
	char *grant_id;		/* may be NULL */
	char *sandbox_id;	/* may be NULL */
	char *detail;		/* may be NULL */
	uint8_t prev_hash[STORE_AUDIT_HASH_LEN];
	uint8_t hash[STORE_AUDIT_HASH_LEN];
};

/*
 * GET /v1/audit?after=SEQ&limit=N: the rows with seq > after, ascending, at most
 * limit (clamped to 1..STORE_AUDIT_LIST_MAX). *rows is a malloc'd array of *n rows
 * owned by the caller (store_audit_rows_free); *rows is NULL when *n is 0.
 * Format prev_hash/hash as lower-case hex with util_hex. Returns 0 or CB_ERR_*.
 */
int store_audit_list(struct store *st, int64_t after, int limit, struct store_audit_row **rows,
    size_t *n);
/* Frees an array from store_audit_list; NULL is fine. */
void store_audit_rows_free(struct store_audit_row *rows, size_t n);
/* Number of audit rows (tests, metrics). */
int store_audit_count(struct store *st, int64_t *n);

/* --- used by audit.c only --- */
/* Inserts one row (the caller computed the hashes). Strings are not copied. */
int store_audit_insert(struct store *st, int64_t seq, int64_t ts, const char *actor,
    const char *role, const char *action, const char *outcome, const char *grant_id,
    const char *sandbox_id, const char *detail, const uint8_t prev_hash[STORE_AUDIT_HASH_LEN],
    const uint8_t hash[STORE_AUDIT_HASH_LEN]);
/* The row with the highest seq: *seq = 0 and hash zeroed when the table is empty. */
int store_audit_last(struct store *st, int64_t *seq, uint8_t hash[STORE_AUDIT_HASH_LEN]);
/*
 * The anchor: the last seq and hash, kept in meta ('audit_head') and rewritten in the
 * same transaction as the rows, so that a deleted tail is detectable; with a MAC under
 * the master key (vault_audit_mac), so that a log rewritten with recomputed hashes is
 * detectable too. An anchor written before the MAC existed has has_mac 0.
 * anchor_get: CB_ERR_NOTFOUND when absent, CB_ERR_CORRUPT when malformed.
 */
struct store_audit_anchor {
	int64_t seq;
	uint8_t hash[STORE_AUDIT_HASH_LEN];
	uint8_t mac[STORE_AUDIT_HASH_LEN];
	int has_mac;
};
int store_audit_anchor_set(struct store *st, const struct store_audit_anchor *a);
int store_audit_anchor_get(struct store *st, struct store_audit_anchor *a);
/*
 * Calls fn for every row by seq ascending, in one read transaction (unless the
 * caller's transaction is open) that first reads the anchor into *has_anchor (1, 0
 * when absent, -1 when malformed) and *anchor. The row's strings are borrowed for the
 * duration of the call. A non-zero return of fn stops the walk and is returned. A row
 * whose hash columns are not 32 bytes is reported to fn with bad_len set (hashes zeroed).
 */
typedef int (*store_audit_fn)(void *arg, const struct store_audit_row *row, int bad_len);
int store_audit_walk(struct store *st, store_audit_fn fn, void *arg, int *has_anchor,
    struct store_audit_anchor *anchor);

#endif
