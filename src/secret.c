/*
 * secret.c: versioned secrets with a host allowlist and a maximum grant TTL, on top
 * of store.h (rows) and vault.h (sealing). Values are wiped after use and never logged.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "dest.h"
#include "err.h"
#include "log.h"
#include "secret.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define SECRET_TTL_MAX		(366LL * 24 * 3600)

/*
 * Decrypted values, shared by the server threads. Every resolve read the secret's row
 * and its current version's row and decrypted it (~28 k instructions of ~255 k)
 * although a value changes only when an admin puts a new version or deletes the
 * secret. The cache holds SCACHE_SETS x SCACHE_WAYS values of at most SCACHE_VALUE_MAX
 * bytes (longer ones are decrypted every time) in one mapping from crypto_secure_alloc,
 * made on first use: mlock'ed where the system allows, excluded from core dumps. One
 * copy per process: a per-thread cache held a copy of each value per thread, missed once
 * per thread, and with 1,000 secrets in use missed most of the time (docs/performance.md,
 * D10). Each set has its own mutex, held only to copy a value in or out.
 * Validity: a process-wide generation, bumped by secret_cache_invalidate() after every
 * committed secret write (api.c) and by secret_put/secret_delete themselves; each bump
 * also wipes every set at once (writes are rare). A reader reads the generation before
 * it reads the store and files what it read under that generation. Each set records the
 * generation of its entries: a lookup under a newer one wipes the set first, and a value
 * read under an older one than the set's is not filed. An entry also expires
 * SCACHE_AGE_US after it was read (wiped when its set is next used), so a value does not
 * stay long after its last use, nor past a write made by another process.
 */
/*
 * Four slots per set, 1,024 sets: 4,096 slots, four times the benchmark's 1,000 secrets
 * in use. With 1,024 sets of 2, the ~26 % of secrets whose set had two others missed at
 * every turn (D11); now ~2 % share a set with four others. ~1.6 MiB.
 */
#define SCACHE_WAYS		4
#define SCACHE_SETS		(SECRET_CACHE_MAX / SCACHE_WAYS)
#define SCACHE_VALUE_MAX	256
#define SCACHE_AGE_US		(30 * 1000000LL)

struct scache_slot {
	int64_t at_us;			/* util_mono_us() when read */
	size_t len;			/* value bytes; 0: empty (a value is never empty) */
	char name[SECRET_NAME_MAX + 1];
	uint8_t value[SCACHE_VALUE_MAX + 1];
};

struct scache_set {
	pthread_mutex_t mu;
	uint64_t gen;			/* the generation its entries were read under */
	struct scache_slot slot[SCACHE_WAYS];
};

static _Atomic uint64_t scache_gen = 1;
static struct scache_set *scache;	/* SCACHE_SETS sets; NULL: could not be made */
static pthread_once_t scache_once = PTHREAD_ONCE_INIT;

static void
scache_init(void)
{
	struct scache_set *c;
	size_t i;

	if ((c = crypto_secure_alloc(SCACHE_SETS * sizeof(*c))) == NULL)
		return;
	for (i = 0; i < SCACHE_SETS; i++) {
		if (pthread_mutex_init(&c[i].mu, NULL) != 0) {
			while (i-- > 0)
				pthread_mutex_destroy(&c[i].mu);
			crypto_secure_free(c, SCACHE_SETS * sizeof(*c));
			return;
		}
	}
	scache = c;
}

/* The cache, or NULL when it could not be made (every reveal then decrypts). */
static struct scache_set *
scache_get(void)
{
	pthread_once(&scache_once, scache_init);
	return scache;
}

/* The set of name in c. */
static struct scache_set *
scache_set_of(struct scache_set *c, const char *name)
{
	return &c[util_hash(name, strlen(name)) % SCACHE_SETS];
}

/*
 * Wipes the entries of set s (its mutex held). A slot is either holding a value or
 * wholly zero (every path that empties one wipes all of it), so empty slots are skipped.
 */
static void
scache_set_wipe(struct scache_set *s)
{
	size_t i;

	for (i = 0; i < SCACHE_WAYS; i++)
		if (s->slot[i].len > 0)
			explicit_bzero(&s->slot[i], sizeof(s->slot[i]));
}

/* Set s (its mutex held) moves to generation gen if it is older: its entries are wiped. */
static void
scache_set_renew(struct scache_set *s, uint64_t gen)
{
	if (s->gen < gen) {
		scache_set_wipe(s);
		s->gen = gen;
	}
}

/*
 * In set s (its mutex held), the slot holding name (fresh, else wiped), or when none
 * does the one to fill: an empty slot, else the one read longest ago.
 */
static struct scache_slot *
scache_slot_of(struct scache_set *s, const char *name, int64_t now, int *hit)
{
	struct scache_slot *set = s->slot, *victim = NULL;
	size_t i;

	*hit = 0;
	for (i = 0; i < SCACHE_WAYS; i++) {
		if (set[i].len > 0 && now - set[i].at_us > SCACHE_AGE_US)
			explicit_bzero(&set[i], sizeof(set[i]));
		if (set[i].len > 0 && strcmp(set[i].name, name) == 0) {
			*hit = 1;
			return &set[i];
		}
	}
	for (i = 0; i < SCACHE_WAYS; i++)
		if (victim == NULL || set[i].len == 0 ||
		    (victim->len > 0 && set[i].at_us < victim->at_us))
			victim = &set[i];
	return victim;
}

/* Files name's value, read under generation gen at now, in set s, unless s is newer. */
static void
scache_file(struct scache_set *s, uint64_t gen, const char *name, const uint8_t *value,
    size_t len, int64_t now)
{
	struct scache_slot *sl;
	int hit;

	pthread_mutex_lock(&s->mu);
	scache_set_renew(s, gen);
	if (s->gen == gen) {
		sl = scache_slot_of(s, name, now, &hit);
		explicit_bzero(sl, sizeof(*sl));
		util_strlcpy(sl->name, name, sizeof(sl->name));
		memcpy(sl->value, value, len);
		sl->len = len;
		sl->at_us = now;
	}
	pthread_mutex_unlock(&s->mu);
}

/*
 * Metadata per server thread, for mint's policy check (secret_get: a SQLite read and
 * the host list parsed, ~19 k instructions per binding): MCACHE_SETS sets of MCACHE_WAYS
 * copies, a name only in its own set (a full set gives up its oldest copy), under the
 * same generation and age as the values. 64 direct-mapped slots missed on almost every
 * mint against 1,000 secrets (+14 % CPU per mint). Not secret (names, hosts, TTLs):
 * plain heap, allocated when a thread first reads one (64 KiB of slots).
 */
#define MCACHE_WAYS		4
#define MCACHE_SETS		(SECRET_CACHE_MAX / MCACHE_WAYS)

struct mcache_slot {
	struct secret_meta *m;		/* NULL: empty */
	int64_t at_us;			/* util_mono_us() when read */
};

struct mcache {
	uint64_t gen;
	struct mcache_slot set[MCACHE_SETS][MCACHE_WAYS];
};

static pthread_key_t mcache_key;
static int mcache_ok;

/* Empties every slot of t. */
static void
mcache_clear(struct mcache *t)
{
	size_t i, j;

	for (i = 0; i < MCACHE_SETS; i++)
		for (j = 0; j < MCACHE_WAYS; j++) {
			secret_meta_free(t->set[i][j].m);
			t->set[i][j].m = NULL;
		}
}

static void
mcache_free(void *p)
{
	if (p == NULL)
		return;
	mcache_clear(p);
	free(p);
}

static void
mcache_init(void)
{
	mcache_ok = pthread_key_create(&mcache_key, mcache_free) == 0;
}

static pthread_once_t mcache_once = PTHREAD_ONCE_INIT;

static struct mcache *
mcache_get(void)
{
	struct mcache *t;

	pthread_once(&mcache_once, mcache_init);
	if (!mcache_ok)
		return NULL;
	if ((t = pthread_getspecific(mcache_key)) != NULL)
		return t;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (pthread_setspecific(mcache_key, t) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

/*
 * In t, the slot holding name's copy (*hit 1), else the slot to take it: an empty one
 * or the oldest of name's set. Copies older than SCACHE_AGE_US are emptied on the way.
 */
static struct mcache_slot *
mcache_slot_of(struct mcache *t, const char *name, int64_t now, int *hit)
{
	struct mcache_slot *set = t->set[util_hash(name, strlen(name)) % MCACHE_SETS];
	struct mcache_slot *victim = NULL;
	size_t i;

	*hit = 0;
	for (i = 0; i < MCACHE_WAYS; i++) {
		if (set[i].m != NULL && now - set[i].at_us > SCACHE_AGE_US) {
			secret_meta_free(set[i].m);
			set[i].m = NULL;
		}
		if (set[i].m != NULL && strcmp(set[i].m->name, name) == 0) {
			*hit = 1;
			return &set[i];
		}
		if (victim == NULL || set[i].m == NULL ||
		    (victim->m != NULL && set[i].at_us < victim->at_us))
			victim = &set[i];
	}
	return victim;
}

/* A deep copy of m into *out (owned by the caller). */
static int
secret_meta_dup(const struct secret_meta *m, struct secret_meta **out)
{
	struct secret_meta *c;
	size_t i;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->name = strdup(m->name)) == NULL)
		goto nomem;
	c->max_ttl_s = m->max_ttl_s;
	c->version = m->version;
	c->created_at = m->created_at;
	c->updated_at = m->updated_at;
	if (m->nhosts > 0 && (c->hosts = calloc(m->nhosts, sizeof(*c->hosts))) == NULL)
		goto nomem;
	for (i = 0; i < m->nhosts; i++) {
		if ((c->hosts[i] = strdup(m->hosts[i])) == NULL)
			goto nomem;
		c->nhosts++;
	}
	*out = c;
	return 0;
nomem:
	secret_meta_free(c);
	return CB_ERR_NOMEM;
}

void
secret_cache_invalidate(void)
{
	struct scache_set *c;
	uint64_t gen;
	size_t i;

	gen = atomic_fetch_add(&scache_gen, 1) + 1;
	if ((c = scache_get()) == NULL)
		return;
	for (i = 0; i < SCACHE_SETS; i++) {
		pthread_mutex_lock(&c[i].mu);
		scache_set_renew(&c[i], gen);
		pthread_mutex_unlock(&c[i].mu);
	}
}

void
secret_cache_clear(void)
{
	struct scache_set *c;
	struct mcache *mt;
	size_t i;

	if ((c = scache_get()) != NULL) {
		for (i = 0; i < SCACHE_SETS; i++) {
			pthread_mutex_lock(&c[i].mu);
			scache_set_wipe(&c[i]);
			pthread_mutex_unlock(&c[i].mu);
		}
	}
	pthread_once(&mcache_once, mcache_init);
	if (mcache_ok && (mt = pthread_getspecific(mcache_key)) != NULL) {
		pthread_setspecific(mcache_key, NULL);
		mcache_free(mt);
	}
}

size_t
secret_cache_count(void)
{
	struct scache_set *c;
	size_t i, j, n = 0;

	if ((c = scache_get()) == NULL)
		return 0;
	for (i = 0; i < SCACHE_SETS; i++) {
		pthread_mutex_lock(&c[i].mu);
		for (j = 0; j < SCACHE_WAYS; j++)
			if (c[i].slot[j].len > 0)
				n++;
		pthread_mutex_unlock(&c[i].mu);
	}
	return n;
}

void
secret_meta_free(struct secret_meta *m)
{
	size_t i;

	if (m == NULL)
		return;
	free(m->name);
	for (i = 0; i < m->nhosts; i++)
		free(m->hosts[i]);
	free(m->hosts);
	free(m);
}

int
secret_valid_name(const char *name)
{
	size_t i, len;

	if (name == NULL)
		return CB_ERR_INVAL;
	len = strnlen(name, SECRET_NAME_MAX + 1);
	if (len == 0 || len > SECRET_NAME_MAX)
		return CB_ERR_INVAL;
	for (i = 0; i < len; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');

		if (i == 0 && !alnum)
			return CB_ERR_INVAL;
		if (!alnum && c != '.' && c != '_' && c != '-')
			return CB_ERR_INVAL;
	}
	return 0;
}

int
secret_valid_value(const uint8_t *value, size_t len)
{
	size_t i;

	if (value == NULL || len == 0)
		return CB_ERR_INVAL;
	if (len > SECRET_VALUE_MAX)
		return CB_ERR_LIMIT;
	/*
	 * CR/LF would let a value split an injected header, NUL would truncate it, and no
	 * other control character but tab is allowed in a header value either (RFC 9110).
	 */
	for (i = 0; i < len; i++)
		if ((value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
			return CB_ERR_INVAL;
	return 0;
}

/* Normalises, deduplicates and encodes hosts as a JSON array into *json (malloc'd). */
static int
secret_hosts_json(char *const *hosts, size_t nhosts, char **json)
{
	char norm[DEST_HOST_MAX + 1];
	json_t *arr = NULL;
	size_t i, j;
	int rc, dup;

	*json = NULL;
	if (nhosts == 0 || hosts == NULL)
		return CB_ERR_INVAL;
	if (nhosts > SECRET_HOSTS_MAX)
		return CB_ERR_LIMIT;
	if ((arr = json_array()) == NULL)
		return CB_ERR_NOMEM;
	for (i = 0; i < nhosts; i++) {
		if (hosts[i] == NULL ||
		    dest_host_normalise(hosts[i], norm, sizeof(norm)) != 0) {
			rc = CB_ERR_INVAL;
			goto out;
		}
		dup = 0;
		for (j = 0; j < json_array_size(arr); j++)
			if (strcmp(json_string_value(json_array_get(arr, j)), norm) == 0)
				dup = 1;
		if (!dup && json_array_append_new(arr, json_string(norm)) != 0) {
			rc = CB_ERR_NOMEM;
			goto out;
		}
	}
	if ((*json = json_dumps(arr, JSON_COMPACT)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	rc = 0;
out:
	json_decref(arr);
	return rc;
}

int
secret_put(struct store *wst, struct vault *v, const char *name, const uint8_t *value,
    size_t len, char *const *hosts, size_t nhosts, int64_t max_ttl_s, int64_t now,
    int64_t *version)
{
	struct store_secret *cur = NULL;
	char *hosts_json = NULL;
	uint8_t *ct = NULL;
	size_t ctlen = 0;
	int64_t ver, key_id;
	int rc;

	*version = 0;
	if ((rc = secret_valid_name(name)) != 0 || (rc = secret_valid_value(value, len)) != 0)
		return rc;
	if (max_ttl_s < 1 || max_ttl_s > SECRET_TTL_MAX)
		return CB_ERR_INVAL;
	if ((rc = secret_hosts_json(hosts, nhosts, &hosts_json)) != 0)
		goto out;
	rc = store_secret_get(wst, name, &cur);
	if (rc == CB_ERR_NOTFOUND)
		ver = 1;
	else if (rc == 0)
		ver = cur->current_version + 1;
	else
		goto out;
	if ((rc = vault_secret_seal(v, name, ver, value, len, &key_id, &ct, &ctlen)) != 0)
		goto out;
	/* The secrets row first: secret_versions references it. */
	if ((rc = store_secret_upsert(wst, name, hosts_json, max_ttl_s, ver, now)) != 0 ||
	    (rc = store_secret_version_insert(wst, name, ver, key_id, ct, ctlen, now)) != 0)
		goto out;
	*version = ver;
	secret_cache_invalidate();	/* again by api.c once committed (and logged there) */
out:
	free(ct);
	free(hosts_json);
	store_secret_free(cur);
	return rc;
}

int
secret_delete(struct store *wst, const char *name)
{
	if (secret_valid_name(name) != 0)
		return CB_ERR_NOTFOUND;
	secret_cache_invalidate();	/* again by api.c once committed */
	return store_secret_delete(wst, name);
}

static int
secret_meta_from_row(const struct store_secret *row, struct secret_meta **out)
{
	struct secret_meta *m = NULL;
	json_t *arr = NULL;
	json_error_t jerr;
	size_t i, n;
	int rc;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL || (m->name = strdup(row->name)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	m->max_ttl_s = row->max_ttl_s;
	m->version = row->current_version;
	m->created_at = row->created_at;
	m->updated_at = row->updated_at;
	arr = json_loads(row->hosts_json, JSON_REJECT_DUPLICATES, &jerr);
	if (arr == NULL || !json_is_array(arr) || json_array_size(arr) > SECRET_HOSTS_MAX) {
		log_warnx("secret %s: stored host list is malformed", row->name);
		rc = CB_ERR_CORRUPT;
		goto out;
	}
	n = json_array_size(arr);
	if (n > 0 && (m->hosts = calloc(n, sizeof(*m->hosts))) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *h = json_string_value(json_array_get(arr, i));

		if (h == NULL) {
			rc = CB_ERR_CORRUPT;
			goto out;
		}
		if ((m->hosts[i] = strdup(h)) == NULL) {
			rc = CB_ERR_NOMEM;
			goto out;
		}
		m->nhosts++;
	}
	*out = m;		/* transferred */
	m = NULL;
	rc = 0;
out:
	json_decref(arr);
	secret_meta_free(m);
	return rc;
}

/*
 * The metadata of name: *view points into this thread's cache (valid until its next
 * lookup; *own NULL) or, on a miss without a cache, at *own (the caller frees it).
 */
static int
secret_meta_view(struct store *st, const char *name, const struct secret_meta **view,
    struct secret_meta **own)
{
	struct store_secret *row = NULL;
	struct mcache_slot *sl = NULL;
	struct mcache *t;
	int64_t now = 0;
	uint64_t gen;
	int rc, hit;

	*view = NULL;
	*own = NULL;
	if (secret_valid_name(name) != 0)
		return CB_ERR_NOTFOUND;
	/* Before the store is read, as in secret_reveal. */
	gen = atomic_load(&scache_gen);
	if ((t = mcache_get()) != NULL) {
		if (t->gen != gen) {
			mcache_clear(t);
			t->gen = gen;
		}
		now = util_mono_us();
		sl = mcache_slot_of(t, name, now, &hit);
		if (hit) {
			*view = sl->m;
			return 0;
		}
	}
	if ((rc = store_secret_get(st, name, &row)) != 0)
		return rc;
	rc = secret_meta_from_row(row, own);
	store_secret_free(row);
	if (rc != 0)
		return rc;
	*view = *own;
	if (sl != NULL) {
		/* Filed in the cache: the caller reads it there. */
		secret_meta_free(sl->m);
		sl->m = *own;
		sl->at_us = now;
		*own = NULL;
	}
	return 0;
}

int
secret_get(struct store *st, const char *name, struct secret_meta **out)
{
	const struct secret_meta *view;
	struct secret_meta *own;
	int rc;

	*out = NULL;
	if ((rc = secret_meta_view(st, name, &view, &own)) != 0)
		return rc;
	if (own != NULL) {
		*out = own;
		return 0;
	}
	return secret_meta_dup(view, out);
}

int
secret_allows_host(struct store *st, const char *name, const char *host)
{
	const struct secret_meta *view;
	struct secret_meta *own;
	int rc;

	if ((rc = secret_meta_view(st, name, &view, &own)) != 0)
		return rc;
	rc = secret_host_allowed(view, host) ? 0 : CB_ERR_DENIED;
	secret_meta_free(own);
	return rc;
}

int
secret_list(struct store *st, struct secret_meta ***out, size_t *n)
{
	struct store_secret **rows = NULL;
	struct secret_meta **list = NULL;
	size_t nrows = 0, i, done = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = store_secret_list(st, &rows, &nrows)) != 0)
		return rc;
	if (nrows > 0 && (list = calloc(nrows, sizeof(*list))) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < nrows; i++) {
		if ((rc = secret_meta_from_row(rows[i], &list[i])) != 0)
			goto out;
		done++;
	}
	*out = list;		/* transferred */
	*n = nrows;
	list = NULL;
	rc = 0;
out:
	secret_list_free(list, done);
	for (i = 0; i < nrows; i++)
		store_secret_free(rows[i]);
	free(rows);
	return rc;
}

void
secret_list_free(struct secret_meta **list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		secret_meta_free(list[i]);
	free(list);
}

int
secret_host_allowed(const struct secret_meta *m, const char *host)
{
	size_t i;

	if (m == NULL || host == NULL)
		return 0;
	for (i = 0; i < m->nhosts; i++)
		if (strcmp(m->hosts[i], host) == 0)
			return 1;
	return 0;
}

int
secret_reveal(struct store *st, struct vault *v, const char *name, uint8_t **value,
    size_t *len)
{
	struct store_secret *row = NULL;
	struct scache_set *c, *set = NULL;
	struct scache_slot *sl;
	uint8_t *ct = NULL;
	size_t ctlen = 0;
	int64_t key_id, now = 0;
	uint64_t gen;
	int rc, hit;

	*value = NULL;
	*len = 0;
	if (secret_valid_name(name) != 0)
		return CB_ERR_NOTFOUND;
	/* Before the store is read: what is filed below is no newer than this. */
	gen = atomic_load(&scache_gen);
	if ((c = scache_get()) != NULL) {
		set = scache_set_of(c, name);
		now = util_mono_us();
		pthread_mutex_lock(&set->mu);
		scache_set_renew(set, gen);
		sl = scache_slot_of(set, name, now, &hit);
		if (hit) {
			rc = CB_ERR_NOMEM;
			if ((*value = malloc(sl->len + 1)) != NULL) {
				memcpy(*value, sl->value, sl->len);
				(*value)[sl->len] = '\0';
				*len = sl->len;
				rc = 0;
			}
			pthread_mutex_unlock(&set->mu);
			return rc;
		}
		pthread_mutex_unlock(&set->mu);
	}
	if ((rc = store_secret_get(st, name, &row)) != 0)
		return rc;
	if ((rc = store_secret_version_get(st, name, row->current_version, &key_id, &ct,
	    &ctlen)) != 0) {
		/* Deleted meanwhile (two reads, no common snapshot), or a damaged store. */
		if (rc == CB_ERR_NOTFOUND) {
			store_secret_free(row);
			row = NULL;
			rc = store_secret_get(st, name, &row) == CB_ERR_NOTFOUND ?
			    CB_ERR_NOTFOUND : CB_ERR_CORRUPT;
		}
		goto out;
	}
	rc = vault_secret_open(v, name, row->current_version, key_id, ct, ctlen, value, len);
	if (rc == 0 && set != NULL && *len > 0 && *len <= SCACHE_VALUE_MAX &&
	    strlen(name) <= SECRET_NAME_MAX)
		scache_file(set, gen, name, *value, *len, now);
out:
	free(ct);
	store_secret_free(row);
	return rc;
}
