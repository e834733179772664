/*
 * vault.c: the only holder of key material. The master key (KEK) from a private
 * file wraps data keys (DEKs) and token signing keys stored in the database; this
 * file unwraps them into locked memory, seals and opens secret values, and runs the
 * three rotations. Every wrap and seal carries associated data naming what it
 * protects, so a blob moved to another row, version or key slot fails to open.
 *
 * Data-key rotation protocol (meta 'rotation' = "OLD NEW"):
 *   T0: new DEK inserted 'active', old DEK set 'retiring', meta 'rotation' set.
 *   T1..Tn: up to VAULT_BATCH versions re-sealed from OLD to NEW per transaction.
 *   Tlast: no version left under OLD: OLD set 'retired', meta 'rotation' deleted.
 * A crash before T0 commits leaves the old state; any later crash leaves 'rotation'
 * set, and vault_open (vault_resume_rotation) continues from where it stopped.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "store_audit.h"
#include "util.h"
#include "vault.h"

#define VAULT_BATCH		100	/* secret versions re-sealed per transaction */
#define VAULT_KEYFILE_MAX	256
#define VAULT_AD_MAX		(64 + 128 + 2 * 8 + 8)
#define VAULT_KEKCHECK_LABEL	"credbroker kek check v1"
#define VAULT_META_KEKCHECK	"kek_check"
#define VAULT_ANCHOR_LABEL	"credbroker audit anchor v1"
#define VAULT_ANCHOR_KEY_LABEL	"credbroker audit anchor key v1"
#define VAULT_META_ROTATION	"rotation"

struct vault_key {
	int64_t id;			/* data keys */
	char kid[VAULT_KID_MAX];	/* signing keys */
	char state[12];
	int64_t retire_after;
	uint8_t *key;			/* crypto_secure_alloc(CRYPTO_KEY_LEN) */
	uint8_t *wrapped;		/* as stored (not secret) */
	size_t wrapped_len;
};

struct vault {
	pthread_rwlock_t lock;
	uint8_t *kek;			/* crypto_secure_alloc(CRYPTO_KEY_LEN) */
	struct vault_key *dks;
	size_t ndk;
	struct vault_key *sks;
	size_t nsk;
	int64_t active_dk;
};

/* --- associated data --- */

static void
vault_put64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/* AD of a wrapped key: a label and the key's identity (data key ID or signing kid). */
static size_t
vault_ad_key(uint8_t *ad, size_t adlen, int signing, int64_t id, const char *kid)
{
	int n;

	if (signing)
		n = snprintf((char *)ad, adlen, "credbroker signing key v1\nkid=%s", kid);
	else
		n = snprintf((char *)ad, adlen, "credbroker data key v1\nid=%" PRId64, id);
	return n < 0 || (size_t)n >= adlen ? 0 : (size_t)n;
}

/* AD of a secret version: label, length-prefixed name, version, key ID (unambiguous). */
static size_t
vault_ad_secret(uint8_t *ad, size_t adlen, const char *name, int64_t version, int64_t key_id)
{
	static const char label[] = "credbroker secret v1\n";
	size_t nlen = strlen(name), off = 0;

	if (sizeof(label) - 1 + 8 + nlen + 16 > adlen)
		return 0;
	memcpy(ad, label, sizeof(label) - 1);
	off += sizeof(label) - 1;
	vault_put64(ad + off, (uint64_t)nlen);
	off += 8;
	memcpy(ad + off, name, nlen);
	off += nlen;
	vault_put64(ad + off, (uint64_t)version);
	off += 8;
	vault_put64(ad + off, (uint64_t)key_id);
	off += 8;
	return off;
}

/* --- master key file --- */

int
vault_create_master_key(const char *path)
{
	uint8_t key[CRYPTO_KEY_LEN];
	char hex[2 * CRYPTO_KEY_LEN + 2];
	int rc;

	if ((rc = crypto_random(key, sizeof(key))) != 0)
		goto out;
	util_hex(key, sizeof(key), hex);
	hex[2 * CRYPTO_KEY_LEN] = '\n';
	hex[2 * CRYPTO_KEY_LEN + 1] = '\0';
	rc = util_create_file(path, hex, 2 * CRYPTO_KEY_LEN + 1, 0600);
	if (rc != 0 && rc != CB_ERR_EXISTS)
		rc = CB_ERR_IO;
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(hex, sizeof(hex));
	return rc;
}

/* Reads a master key file into secure memory *kek (CRYPTO_KEY_LEN bytes). */
static int
vault_read_master_key(const char *path, uint8_t **kek, char *why, size_t whylen)
{
	uint8_t *buf = NULL, *key = NULL;
	size_t len = 0, buflen = 0;
	int rc;

	*kek = NULL;
	if ((rc = util_check_private_file(path, why, whylen)) != 0) {
		if (rc == CB_ERR_IO)
			snprintf(why, whylen, "master key file %s cannot be read: it is missing or "
			    "inaccessible (create one with credbroker init)", path);
		return rc;
	}
	if ((rc = util_read_file(path, VAULT_KEYFILE_MAX, &buf, &len)) != 0) {
		snprintf(why, whylen, "master key file %s cannot be read", path);
		return rc == CB_ERR_LIMIT ? CB_ERR_INVAL : rc;
	}
	buflen = len + 1;	/* util_read_file adds a NUL */
	/* 64 hex characters, optionally followed by one newline. */
	if (len == 2 * CRYPTO_KEY_LEN + 1 && buf[len - 1] == '\n')
		len--;
	if (len != 2 * CRYPTO_KEY_LEN) {
		snprintf(why, whylen, "master key file %s: expected 64 hex characters", path);
		rc = CB_ERR_INVAL;
		goto out;
	}
	buf[len] = '\0';
	if ((key = crypto_secure_alloc(CRYPTO_KEY_LEN)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	if (util_unhex((const char *)buf, key, CRYPTO_KEY_LEN) != 0) {
		snprintf(why, whylen, "master key file %s: expected 64 hex characters", path);
		rc = CB_ERR_INVAL;
		goto out;
	}
	*kek = key;		/* transferred */
	key = NULL;
	rc = 0;
out:
	crypto_secure_free(key, CRYPTO_KEY_LEN);
	util_wipe_free(buf, buflen);
	return rc;
}

static int
vault_kek_check(const uint8_t *kek, uint8_t out[CRYPTO_HASH_LEN])
{
	return crypto_hmac_sha256(kek, CRYPTO_KEY_LEN, VAULT_KEKCHECK_LABEL,
	    sizeof(VAULT_KEKCHECK_LABEL) - 1, out);
}

/* Compares kek against the database's check value: 0, CB_ERR_AUTH or CB_ERR_NOTFOUND. */
static int
vault_verify_kek(struct store *st, const uint8_t *kek)
{
	uint8_t want[CRYPTO_HASH_LEN], *have = NULL;
	size_t havelen = 0;
	int rc;

	if ((rc = store_meta_get(st, VAULT_META_KEKCHECK, &have, &havelen)) != 0)
		return rc;
	if ((rc = vault_kek_check(kek, want)) != 0)
		goto out;
	rc = havelen == sizeof(want) && crypto_memeq(have, want, sizeof(want)) ? 0 : CB_ERR_AUTH;
out:
	explicit_bzero(want, sizeof(want));
	free(have);
	return rc;
}

/* The audit anchor's key: HMAC-SHA256(kek, VAULT_ANCHOR_KEY_LABEL). */
static int
vault_anchor_key(const uint8_t *kek, uint8_t key[CRYPTO_KEY_LEN])
{
	return crypto_hmac_sha256(kek, CRYPTO_KEY_LEN, VAULT_ANCHOR_KEY_LABEL,
	    sizeof(VAULT_ANCHOR_KEY_LABEL) - 1, key);
}

int
vault_audit_mac(const uint8_t key[CRYPTO_KEY_LEN], int64_t seq,
    const uint8_t hash[CRYPTO_HASH_LEN], uint8_t mac[CRYPTO_HASH_LEN])
{
	uint8_t msg[sizeof(VAULT_ANCHOR_LABEL) - 1 + 8 + CRYPTO_HASH_LEN];

	memcpy(msg, VAULT_ANCHOR_LABEL, sizeof(VAULT_ANCHOR_LABEL) - 1);
	vault_put64(msg + sizeof(VAULT_ANCHOR_LABEL) - 1, (uint64_t)seq);
	memcpy(msg + sizeof(VAULT_ANCHOR_LABEL) - 1 + 8, hash, CRYPTO_HASH_LEN);
	return crypto_hmac_sha256(key, CRYPTO_KEY_LEN, msg, sizeof(msg), mac);
}

/* The anchor's MAC under the anchor key of kek. */
static int
vault_anchor_mac(const uint8_t *kek, int64_t seq, const uint8_t hash[CRYPTO_HASH_LEN],
    uint8_t mac[CRYPTO_HASH_LEN])
{
	uint8_t key[CRYPTO_KEY_LEN];
	int rc;

	if ((rc = vault_anchor_key(kek, key)) == 0)
		rc = vault_audit_mac(key, seq, hash, mac);
	explicit_bzero(key, sizeof(key));
	return rc;
}

/*
 * Master-key rotation: the anchor's MAC moves to the new key, inside the rotation's
 * transaction, once it is checked under the old one (a rotation never launders a
 * rewritten log). An anchor without a MAC is left for credbrokerd to adopt.
 */
static int
vault_rekey_anchor(struct store *st, const uint8_t *oldk, const uint8_t *newk, char *why,
    size_t whylen)
{
	struct store_audit_anchor a;
	uint8_t mac[CRYPTO_HASH_LEN];
	int rc;

	if ((rc = store_audit_anchor_get(st, &a)) == CB_ERR_NOTFOUND ||
	    (rc == 0 && !a.has_mac))
		return 0;
	if (rc == 0 && (rc = vault_anchor_mac(oldk, a.seq, a.hash, mac)) == 0 &&
	    !crypto_memeq(mac, a.mac, sizeof(mac)))
		rc = CB_ERR_CORRUPT;
	if (rc == CB_ERR_CORRUPT)
		snprintf(why, whylen, "database %s: the audit anchor is malformed or fails its "
		    "MAC (run credbroker audit verify; a malformed one is adopted at the "
		    "daemon's next start)", store_path(st));
	if (rc == 0 && (rc = vault_anchor_mac(newk, a.seq, a.hash, a.mac)) == 0)
		rc = store_audit_anchor_set(st, &a);
	explicit_bzero(mac, sizeof(mac));
	return rc;
}

int
vault_master_key_matches(struct store *st, const char *path, char *why, size_t whylen)
{
	uint8_t *kek = NULL;
	int rc;

	if ((rc = vault_read_master_key(path, &kek, why, whylen)) != 0)
		return rc;
	rc = vault_verify_kek(st, kek);
	crypto_secure_free(kek, CRYPTO_KEY_LEN);
	return rc;
}

/*
 * Inside a write transaction, before wrapping a new key: the database must still be
 * under our KEK (a master-key rotation by another process would otherwise leave a
 * key wrapped under the old master key).
 */
static int
vault_still_kek(struct vault *v, struct store *st)
{
	int rc;

	if ((rc = vault_verify_kek(st, v->kek)) == CB_ERR_AUTH)
		log_warnx("%s: the master key changed since this vault was opened; reopen it",
		    store_path(st));
	return rc;
}

/* --- wrapping --- */

static int
vault_wrap(const uint8_t *kek, int signing, int64_t id, const char *kid, const uint8_t *key,
    uint8_t **wrapped, size_t *wlen)
{
	uint8_t ad[VAULT_AD_MAX];
	size_t adlen;
	int rc;

	*wrapped = NULL;
	*wlen = 0;
	if ((adlen = vault_ad_key(ad, sizeof(ad), signing, id, kid)) == 0)
		return CB_ERR_INVAL;
	if ((*wrapped = malloc(CRYPTO_KEY_LEN + CRYPTO_SEAL_OVERHEAD)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = crypto_seal(kek, ad, adlen, key, CRYPTO_KEY_LEN, *wrapped)) != 0) {
		free(*wrapped);
		*wrapped = NULL;
		return rc;
	}
	*wlen = CRYPTO_KEY_LEN + CRYPTO_SEAL_OVERHEAD;
	return 0;
}

/* Unwraps into secure memory *key. CB_ERR_AUTH when the blob does not belong to this slot. */
static int
vault_unwrap(const uint8_t *kek, int signing, int64_t id, const char *kid,
    const uint8_t *wrapped, size_t wlen, uint8_t **key)
{
	uint8_t ad[VAULT_AD_MAX];
	size_t adlen;
	uint8_t *k;
	int rc;

	*key = NULL;
	if (wlen != CRYPTO_KEY_LEN + CRYPTO_SEAL_OVERHEAD)
		return CB_ERR_CORRUPT;
	if ((adlen = vault_ad_key(ad, sizeof(ad), signing, id, kid)) == 0)
		return CB_ERR_INVAL;
	if ((k = crypto_secure_alloc(CRYPTO_KEY_LEN)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = crypto_open(kek, ad, adlen, wrapped, wlen, k)) != 0) {
		crypto_secure_free(k, CRYPTO_KEY_LEN);
		return rc;
	}
	*key = k;
	return 0;
}

/* --- in-memory key sets --- */

static void
vault_key_clear(struct vault_key *k)
{
	crypto_secure_free(k->key, CRYPTO_KEY_LEN);
	free(k->wrapped);
	explicit_bzero(k, sizeof(*k));
}

static void
vault_keys_clear(struct vault_key *keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		vault_key_clear(&keys[i]);
	free(keys);
}

/* Appends k (taking its pointers) to *arr. */
static int
vault_keys_append(struct vault_key **arr, size_t *n, struct vault_key *k)
{
	struct vault_key *tmp;

	if ((tmp = reallocarray(*arr, *n + 1, sizeof(*tmp))) == NULL)
		return CB_ERR_NOMEM;
	tmp[*n] = *k;		/* transferred */
	memset(k, 0, sizeof(*k));
	*arr = tmp;
	(*n)++;
	return 0;
}

static void
vault_keys_remove(struct vault_key *arr, size_t *n, size_t i)
{
	vault_key_clear(&arr[i]);
	memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
	(*n)--;
}

static struct vault_key *
vault_dk_find(struct vault *v, int64_t id)
{
	size_t i;

	for (i = 0; i < v->ndk; i++)
		if (v->dks[i].id == id)
			return &v->dks[i];
	return NULL;
}

static struct vault_key *
vault_sk_find(struct vault *v, const char *kid)
{
	size_t i;

	for (i = 0; i < v->nsk; i++)
		if (strcmp(v->sks[i].kid, kid) == 0)
			return &v->sks[i];
	return NULL;
}

/* --- creating keys (inside the caller's transaction) --- */

/*
 * Inserts k (its key set) as a new data key in state: the row ID is part of the
 * wrapping's AD, so a placeholder row first, to learn it. Sets k's id, wrapped, state.
 */
static int
vault_insert_data_key(const uint8_t *kek, struct store *st, const char *state,
    struct vault_key *k)
{
	int rc;

	free(k->wrapped);
	k->wrapped = NULL;
	k->wrapped_len = 0;
	if ((rc = store_data_key_insert(st, (const uint8_t *)"", 0, state, &k->id)) != 0 ||
	    (rc = vault_wrap(kek, 0, k->id, NULL, k->key, &k->wrapped, &k->wrapped_len)) != 0 ||
	    (rc = store_data_key_update(st, k->id, k->wrapped, k->wrapped_len, state)) != 0)
		return rc;
	util_strlcpy(k->state, state, sizeof(k->state));
	return 0;
}

/* A new random key in k (locked memory): for a data key, or with its kid and wrapping, a signing key. */
static int
vault_make_key(const uint8_t *kek, int signing, struct vault_key *k)
{
	uint8_t rnd[8];
	int rc;

	memset(k, 0, sizeof(*k));
	if ((k->key = crypto_secure_alloc(CRYPTO_KEY_LEN)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = crypto_random(k->key, CRYPTO_KEY_LEN)) != 0 || !signing)
		return rc;
	if ((rc = crypto_random(rnd, sizeof(rnd))) != 0)
		return rc;
	k->kid[0] = 'k';
	util_hex(rnd, sizeof(rnd), k->kid + 1);
	util_strlcpy(k->state, "active", sizeof(k->state));
	return vault_wrap(kek, 1, 0, k->kid, k->key, &k->wrapped, &k->wrapped_len);
}

/* Inserts a new data key in state; on success *out holds it (unwrapped and wrapped). */
static int
vault_new_data_key(const uint8_t *kek, struct store *st, const char *state,
    struct vault_key *out)
{
	struct vault_key k;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = vault_make_key(kek, 0, &k)) == 0 &&
	    (rc = vault_insert_data_key(kek, st, state, &k)) == 0) {
		*out = k;		/* transferred */
		return 0;
	}
	vault_key_clear(&k);
	return rc;
}

static int
vault_new_signing_key(const uint8_t *kek, struct store *st, struct vault_key *out)
{
	struct vault_key k;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = vault_make_key(kek, 1, &k)) == 0 &&
	    (rc = store_signing_key_insert(st, k.kid, k.wrapped, k.wrapped_len, k.state, 0)) == 0) {
		*out = k;		/* transferred */
		return 0;
	}
	vault_key_clear(&k);
	return rc;
}

/*
 * Initialises an empty database under kek: check value, first data key, first signing key,
 * and the empty audit log's anchor with its MAC (so that a log wiped later, anchor and
 * all, is not taken for a new one: credbrokerd adopts it with a record). A database with
 * keys or audit records but no check value (deleted) is not a new one: it gets no anchor,
 * so that a log wiped with the check value is adopted too, not anchored afresh.
 */
static int
vault_init_db(struct store *st, const uint8_t *kek)
{
	struct store_audit_anchor a;
	struct store_key *keys = NULL;
	struct vault_key dk, sk;
	uint8_t check[CRYPTO_HASH_LEN];
	uint8_t *tmp = NULL;
	size_t tmplen, ndk = 0, nsk = 0;
	int64_t seq = 0;
	int rc;

	memset(&dk, 0, sizeof(dk));
	memset(&sk, 0, sizeof(sk));
	if ((rc = store_begin(st)) != 0)
		return rc;
	/* Another process may have initialised it between our read and BEGIN IMMEDIATE. */
	rc = store_meta_get(st, VAULT_META_KEKCHECK, &tmp, &tmplen);
	free(tmp);
	if (rc == 0) {
		rc = store_rollback(st);
		return rc;
	}
	if (rc != CB_ERR_NOTFOUND)
		goto fail;
	if ((rc = store_data_keys_list(st, &keys, &ndk)) != 0)
		goto fail;
	store_keys_free(keys, ndk);
	if ((rc = store_signing_keys_list(st, &keys, &nsk)) != 0)
		goto fail;
	store_keys_free(keys, nsk);
	if ((rc = store_audit_last(st, &seq, a.hash)) != 0)
		goto fail;
	if ((rc = vault_kek_check(kek, check)) != 0 ||
	    (rc = store_meta_set(st, VAULT_META_KEKCHECK, check, sizeof(check))) != 0 ||
	    (rc = vault_new_data_key(kek, st, "active", &dk)) != 0 ||
	    (rc = vault_new_signing_key(kek, st, &sk)) != 0)
		goto fail;
	/* An anchor there already (a log written before the keys: tests) is left alone. */
	if (ndk + nsk > 0 || seq > 0)
		rc = 0;
	else if ((rc = store_audit_anchor_get(st, &a)) == CB_ERR_NOTFOUND) {
		memset(&a, 0, sizeof(a));
		a.has_mac = 1;
		if ((rc = vault_anchor_mac(kek, 0, a.hash, a.mac)) == 0)
			rc = store_audit_anchor_set(st, &a);
	}
	if (rc != 0 && rc != CB_ERR_CORRUPT)
		goto fail;
	if ((rc = store_commit(st)) != 0)
		goto fail;
	log_info("%s: initialised keys (data key %" PRId64 ", signing key %s)",
	    store_path(st), dk.id, sk.kid);
	vault_key_clear(&dk);
	vault_key_clear(&sk);
	return 0;
fail:
	store_rollback(st);
	vault_key_clear(&dk);
	vault_key_clear(&sk);
	return rc;
}

/* Loads and unwraps every data key and signing key that is not retired. */
static int
vault_load_keys(struct vault *v, struct store *st, char *why, size_t whylen)
{
	struct store_key *keys = NULL;
	struct vault_key k;
	size_t n = 0, i;
	int rc, nactive = 0;

	memset(&k, 0, sizeof(k));
	if ((rc = store_data_keys_list(st, &keys, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i].state, "retired") == 0)
			continue;
		k.id = keys[i].id;
		util_strlcpy(k.state, keys[i].state, sizeof(k.state));
		if ((rc = vault_unwrap(v->kek, 0, k.id, NULL, keys[i].wrapped,
		    keys[i].wrapped_len, &k.key)) != 0) {
			snprintf(why, whylen, "database %s: data key %" PRId64 " fails to unwrap "
			    "(tampered or moved)", store_path(st), k.id);
			goto out;
		}
		if ((k.wrapped = malloc(keys[i].wrapped_len)) == NULL) {
			rc = CB_ERR_NOMEM;
			goto out;
		}
		memcpy(k.wrapped, keys[i].wrapped, keys[i].wrapped_len);
		k.wrapped_len = keys[i].wrapped_len;
		if (strcmp(k.state, "active") == 0) {
			v->active_dk = k.id;
			nactive++;
		}
		if ((rc = vault_keys_append(&v->dks, &v->ndk, &k)) != 0)
			goto out;
	}
	if (nactive != 1) {
		snprintf(why, whylen, "database %s: %d active data keys (expected exactly one)",
		    store_path(st), nactive);
		rc = CB_ERR_CORRUPT;
		goto out;
	}
	store_keys_free(keys, n);
	keys = NULL;
	nactive = 0;
	if ((rc = store_signing_keys_list(st, &keys, &n)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (strcmp(keys[i].state, "retired") == 0)
			continue;
		util_strlcpy(k.kid, keys[i].kid, sizeof(k.kid));
		util_strlcpy(k.state, keys[i].state, sizeof(k.state));
		k.retire_after = keys[i].retire_after;
		if ((rc = vault_unwrap(v->kek, 1, 0, k.kid, keys[i].wrapped,
		    keys[i].wrapped_len, &k.key)) != 0) {
			snprintf(why, whylen, "database %s: signing key %s fails to unwrap "
			    "(tampered or moved)", store_path(st), k.kid);
			goto out;
		}
		if ((k.wrapped = malloc(keys[i].wrapped_len)) == NULL) {
			rc = CB_ERR_NOMEM;
			goto out;
		}
		memcpy(k.wrapped, keys[i].wrapped, keys[i].wrapped_len);
		k.wrapped_len = keys[i].wrapped_len;
		if (strcmp(k.state, "active") == 0)
			nactive++;
		if ((rc = vault_keys_append(&v->sks, &v->nsk, &k)) != 0)
			goto out;
	}
	if (nactive != 1) {
		snprintf(why, whylen, "database %s: %d active signing keys (expected exactly one)",
		    store_path(st), nactive);
		rc = CB_ERR_CORRUPT;
		goto out;
	}
	rc = 0;
out:
	vault_key_clear(&k);
	store_keys_free(keys, n);
	return rc;
}

/*
 * Retires signing keys in 'verify' state past retire_after (writable store only). The
 * database's write lock is taken before the vault's lock, never the other way round:
 * the commit thread holds the first when it takes the second (a secret put seals).
 */
static int
vault_retire_signing_keys(struct vault *v, struct store *st, int64_t now)
{
	size_t i;
	int rc, any = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 0; i < v->nsk; i++)
		if (strcmp(v->sks[i].state, "verify") == 0 && v->sks[i].retire_after > 0 &&
		    v->sks[i].retire_after <= now)
			any = 1;
	pthread_rwlock_unlock(&v->lock);
	if (!any)
		return 0;
	if ((rc = store_begin(st)) != 0)
		return rc;
	pthread_rwlock_wrlock(&v->lock);
	for (i = 0; i < v->nsk; i++) {
		struct vault_key *k = &v->sks[i];

		if (strcmp(k->state, "verify") != 0 || k->retire_after <= 0 ||
		    k->retire_after > now)
			continue;
		if ((rc = store_signing_key_update(st, k->kid, k->wrapped, k->wrapped_len,
		    "retired", k->retire_after)) != 0)
			goto fail;
	}
	if ((rc = store_commit(st)) != 0)
		goto fail;
	/* Committed: drop them from memory. */
	for (i = v->nsk; i > 0; i--) {
		struct vault_key *k = &v->sks[i - 1];

		if (strcmp(k->state, "verify") == 0 && k->retire_after > 0 &&
		    k->retire_after <= now) {
			log_info("signing key %s retired", k->kid);
			vault_keys_remove(v->sks, &v->nsk, i - 1);
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return 0;
fail:
	store_rollback(st);
	pthread_rwlock_unlock(&v->lock);
	return rc;
}

int
vault_open(struct store *st, const char *master_key_path, struct vault **out,
    char *why, size_t whylen)
{
	struct vault *v = NULL;
	char dummy[1];
	int rc;

	*out = NULL;
	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return CB_ERR_NOMEM;
	if (pthread_rwlock_init(&v->lock, NULL) != 0) {
		free(v);
		return CB_ERR_NOMEM;
	}
	if ((rc = vault_read_master_key(master_key_path, &v->kek, why, whylen)) != 0)
		goto out;
	rc = vault_verify_kek(st, v->kek);
	if (rc == CB_ERR_NOTFOUND) {
		if (store_readonly(st)) {
			snprintf(why, whylen, "database %s has no keys yet (open it read-write)",
			    store_path(st));
			goto out;
		}
		if ((rc = vault_init_db(st, v->kek)) != 0) {
			snprintf(why, whylen, "database %s: cannot initialise keys", store_path(st));
			goto out;
		}
		rc = vault_verify_kek(st, v->kek);
	}
	if (rc == CB_ERR_AUTH) {
		snprintf(why, whylen, "wrong master key %s for database %s",
		    master_key_path, store_path(st));
		goto out;
	}
	if (rc != 0) {
		snprintf(why, whylen, "database %s: cannot read the master key check value",
		    store_path(st));
		goto out;
	}
	if ((rc = vault_load_keys(v, st, why, whylen)) != 0)
		goto out;
	if (!store_readonly(st)) {
		if ((rc = vault_retire_signing_keys(v, st, util_now())) != 0) {
			snprintf(why, whylen, "database %s: cannot retire old signing keys",
			    store_path(st));
			goto out;
		}
		if ((rc = vault_resume_rotation(v, st)) != 0) {
			snprintf(why, whylen, "database %s: cannot finish the interrupted data-key "
			    "rotation", store_path(st));
			goto out;
		}
	}
	*out = v;		/* transferred */
	v = NULL;
	rc = 0;
out:
	vault_free(v);
	return rc;
}

void
vault_free(struct vault *v)
{
	if (v == NULL)
		return;
	crypto_secure_free(v->kek, CRYPTO_KEY_LEN);
	vault_keys_clear(v->dks, v->ndk);
	vault_keys_clear(v->sks, v->nsk);
	pthread_rwlock_destroy(&v->lock);
	explicit_bzero(v, sizeof(*v));
	free(v);
}

/* --- secret values --- */

/* Seals under a given data key; the caller holds the lock (read or write). */
static int
vault_seal_locked(struct vault *v, const char *name, int64_t version, int64_t key_id,
    const uint8_t *pt, size_t ptlen, uint8_t **ct, size_t *ctlen)
{
	uint8_t ad[VAULT_AD_MAX + 256];
	struct vault_key *k;
	size_t adlen;
	uint8_t *buf;
	int rc;

	*ct = NULL;
	*ctlen = 0;
	if ((k = vault_dk_find(v, key_id)) == NULL)
		return CB_ERR_NOTFOUND;
	if ((adlen = vault_ad_secret(ad, sizeof(ad), name, version, key_id)) == 0)
		return CB_ERR_INVAL;
	if (ptlen > SIZE_MAX - CRYPTO_SEAL_OVERHEAD)
		return CB_ERR_LIMIT;
	if ((buf = malloc(ptlen + CRYPTO_SEAL_OVERHEAD)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = crypto_seal(k->key, ad, adlen, pt, ptlen, buf)) != 0) {
		free(buf);
		return rc;
	}
	*ct = buf;
	*ctlen = ptlen + CRYPTO_SEAL_OVERHEAD;
	return 0;
}

static int
vault_open_locked(struct vault *v, const char *name, int64_t version, int64_t key_id,
    const uint8_t *ct, size_t ctlen, uint8_t **pt, size_t *ptlen)
{
	uint8_t ad[VAULT_AD_MAX + 256];
	struct vault_key *k;
	size_t adlen, len;
	uint8_t *buf;
	int rc;

	*pt = NULL;
	*ptlen = 0;
	if (ctlen < CRYPTO_SEAL_OVERHEAD)
		return CB_ERR_AUTH;
	/* An unknown or retired key cannot authenticate anything. */
	if ((k = vault_dk_find(v, key_id)) == NULL)
		return CB_ERR_AUTH;
	if ((adlen = vault_ad_secret(ad, sizeof(ad), name, version, key_id)) == 0)
		return CB_ERR_INVAL;
	len = ctlen - CRYPTO_SEAL_OVERHEAD;
	if ((buf = malloc(len + 1)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = crypto_open(k->key, ad, adlen, ct, ctlen, buf)) != 0) {
		util_wipe_free(buf, len + 1);
		return rc == CB_ERR_INVAL ? CB_ERR_AUTH : rc;
	}
	buf[len] = '\0';
	*pt = buf;		/* transferred */
	*ptlen = len;
	return 0;
}

int
vault_secret_seal(struct vault *v, const char *name, int64_t version,
    const uint8_t *pt, size_t ptlen, int64_t *key_id, uint8_t **ct, size_t *ctlen)
{
	int rc;

	*key_id = 0;
	*ct = NULL;
	*ctlen = 0;
	pthread_rwlock_rdlock(&v->lock);
	rc = vault_seal_locked(v, name, version, v->active_dk, pt, ptlen, ct, ctlen);
	if (rc == 0)
		*key_id = v->active_dk;
	pthread_rwlock_unlock(&v->lock);
	return rc;
}

int
vault_secret_open(struct vault *v, const char *name, int64_t version, int64_t key_id,
    const uint8_t *ct, size_t ctlen, uint8_t **pt, size_t *ptlen)
{
	int rc;

	pthread_rwlock_rdlock(&v->lock);
	rc = vault_open_locked(v, name, version, key_id, ct, ctlen, pt, ptlen);
	pthread_rwlock_unlock(&v->lock);
	if (rc == CB_ERR_AUTH)
		log_warnx("secret %s version %" PRId64 ": ciphertext fails authentication",
		    name, version);
	return rc;
}

/* --- signing keys --- */

int
vault_signing_key(struct vault *v, const char *kid, uint8_t key[CRYPTO_KEY_LEN],
    char kid_out[VAULT_KID_MAX])
{
	struct vault_key *k = NULL;
	int64_t now = util_now();
	size_t i;
	int rc = CB_ERR_NOTFOUND;

	pthread_rwlock_rdlock(&v->lock);
	if (kid == NULL) {
		for (i = 0; i < v->nsk; i++)
			if (strcmp(v->sks[i].state, "active") == 0)
				k = &v->sks[i];
	} else if ((k = vault_sk_find(v, kid)) != NULL) {
		/* A 'verify' key past retire_after no longer verifies, retired in the DB or not. */
		if (strcmp(k->state, "verify") == 0 &&
		    (k->retire_after <= 0 || k->retire_after <= now))
			k = NULL;
		else if (strcmp(k->state, "active") != 0 && strcmp(k->state, "verify") != 0)
			k = NULL;
	}
	if (k != NULL) {
		memcpy(key, k->key, CRYPTO_KEY_LEN);
		if (kid_out != NULL)
			util_strlcpy(kid_out, k->kid, VAULT_KID_MAX);
		rc = 0;
	}
	pthread_rwlock_unlock(&v->lock);
	return rc;
}

/* --- data-key rotation --- */

/* Reads meta 'rotation': CB_ERR_NOTFOUND when none is in progress. */
static int
vault_rotation_get(struct store *st, int64_t *old_id, int64_t *new_id)
{
	uint8_t *val = NULL;
	size_t len = 0;
	char buf[64], *sp;
	long long a, b;
	int rc;

	*old_id = *new_id = 0;
	if ((rc = store_meta_get(st, VAULT_META_ROTATION, &val, &len)) != 0)
		return rc;
	rc = CB_ERR_CORRUPT;
	if (len == 0 || len >= sizeof(buf))
		goto out;
	memcpy(buf, val, len);
	buf[len] = '\0';
	if ((sp = strchr(buf, ' ')) == NULL)
		goto out;
	*sp = '\0';
	if (util_strtoll(buf, 1, INT64_MAX, &a) != 0 || util_strtoll(sp + 1, 1, INT64_MAX, &b) != 0)
		goto out;
	*old_id = a;
	*new_id = b;
	rc = 0;
out:
	free(val);
	if (rc == CB_ERR_CORRUPT)
		log_warnx("%s: meta 'rotation' is malformed", store_path(st));
	return rc;
}

/* One batch: re-seal up to VAULT_BATCH versions from old_id to new_id. *moved receives the count. */
static int
vault_rotation_batch(struct vault *v, struct store *st, int64_t old_id, int64_t new_id,
    size_t *moved)
{
	struct store_version_ref *refs = NULL;
	size_t n = 0, i;
	uint8_t *pt = NULL, *ct = NULL;
	size_t ptlen = 0, ctlen = 0;
	int rc;

	*moved = 0;
	if ((rc = store_begin(st)) != 0)
		return rc;
	if ((rc = store_secret_versions_by_key(st, old_id, VAULT_BATCH, &refs, &n)) != 0)
		goto fail;
	pthread_rwlock_rdlock(&v->lock);
	for (i = 0; i < n; i++) {
		rc = vault_open_locked(v, refs[i].name, refs[i].version, old_id, refs[i].ct,
		    refs[i].ctlen, &pt, &ptlen);
		if (rc != 0) {
			log_warnx("rotation: secret %s version %" PRId64 " fails authentication "
			    "under data key %" PRId64, refs[i].name, refs[i].version, old_id);
			break;
		}
		rc = vault_seal_locked(v, refs[i].name, refs[i].version, new_id, pt, ptlen,
		    &ct, &ctlen);
		util_wipe_free(pt, ptlen + 1);
		pt = NULL;
		if (rc != 0)
			break;
		rc = store_secret_version_reseal(st, refs[i].name, refs[i].version, old_id,
		    new_id, ct, ctlen);
		free(ct);
		ct = NULL;
		if (rc != 0)
			break;
	}
	pthread_rwlock_unlock(&v->lock);
	if (rc != 0)
		goto fail;
	if ((rc = store_commit(st)) != 0)
		goto fail;
	*moved = n;
	store_version_refs_free(refs, n);
	return 0;
fail:
	store_rollback(st);
	store_version_refs_free(refs, n);
	return rc;
}

/* Last step: if nothing is left under old_id, retire it and clear the rotation state. 1 when done. */
static int
vault_rotation_finish(struct vault *v, struct store *st, int64_t old_id, int *done)
{
	struct vault_key *k;
	int64_t left = 0;
	int rc;

	*done = 0;
	if ((rc = store_begin(st)) != 0)	/* the write lock first, as everywhere */
		return rc;
	pthread_rwlock_wrlock(&v->lock);
	if ((rc = store_secret_versions_count_by_key(st, old_id, &left)) != 0)
		goto fail;
	if (left > 0) {
		rc = store_rollback(st);
		goto out;
	}
	if ((k = vault_dk_find(v, old_id)) == NULL) {
		rc = CB_ERR_CORRUPT;
		goto fail;
	}
	if ((rc = store_data_key_update(st, old_id, k->wrapped, k->wrapped_len, "retired")) != 0 ||
	    (rc = store_meta_del(st, VAULT_META_ROTATION)) != 0)
		goto fail;
	if ((rc = store_commit(st)) != 0)
		goto fail;
	/*
	 * Kept in memory (never used to seal again): a reader that fetched a row just
	 * before the last batch committed may still open it with this key.
	 */
	util_strlcpy(k->state, "retired", sizeof(k->state));
	log_info("data key %" PRId64 " retired: rotation finished", old_id);
	*done = 1;
	goto out;
fail:
	store_rollback(st);
out:
	pthread_rwlock_unlock(&v->lock);
	return rc;
}

/* Runs up to max_batches batches (< 0: to the end) of the rotation old_id → new_id. */
static int
vault_rotation_run(struct vault *v, struct store *st, int64_t old_id, int64_t new_id,
    int max_batches)
{
	int64_t count = 0, bound, b;
	size_t moved;
	int rc, done = 0;

	if ((rc = store_secret_versions_count_by_key(st, old_id, &count)) != 0)
		return rc;
	/* Bounded: each batch moves VAULT_BATCH versions; a few spare for concurrent puts. */
	bound = count / VAULT_BATCH + 16;
	for (b = 0; b < bound; b++) {
		if (max_batches >= 0 && b >= max_batches)
			return 0;	/* left for vault_resume_rotation */
		if ((rc = vault_rotation_batch(v, st, old_id, new_id, &moved)) != 0)
			return rc;
		if (moved < VAULT_BATCH) {
			if ((rc = vault_rotation_finish(v, st, old_id, &done)) != 0)
				return rc;
			if (done)
				return 0;
		}
	}
	log_warnx("data-key rotation %" PRId64 " -> %" PRId64 " did not converge", old_id, new_id);
	return CB_ERR_BUSY;
}

int
vault_resume_rotation(struct vault *v, struct store *st)
{
	int64_t old_id, new_id;
	int rc;

	rc = vault_rotation_get(st, &old_id, &new_id);
	if (rc == CB_ERR_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	pthread_rwlock_rdlock(&v->lock);
	rc = vault_dk_find(v, old_id) != NULL && v->active_dk == new_id ? 0 : CB_ERR_CORRUPT;
	pthread_rwlock_unlock(&v->lock);
	if (rc != 0) {
		log_warnx("%s: rotation state names data keys %" PRId64 " and %" PRId64
		    " that do not match the key table", store_path(st), old_id, new_id);
		return rc;
	}
	log_info("%s: resuming data-key rotation %" PRId64 " -> %" PRId64, store_path(st),
	    old_id, new_id);
	return vault_rotation_run(v, st, old_id, new_id, -1);
}

/* --- key activation: a rotation's one transaction, in three steps --- */

struct vault_activation {
	int signing;
	int64_t retire_after;		/* signing: the replaced keys verify until then */
	struct vault_key nk;		/* the new key (until vault_activation_apply) */
	struct vault_key *old;		/* the keys it replaces: IDs and wrapped bytes only */
	size_t nold;
	char kid[VAULT_KID_MAX];	/* signing: the new key's */
	int64_t key_id;			/* data: the new key's row, once written */
};

void
vault_activation_free(struct vault_activation *a)
{
	if (a == NULL)
		return;
	vault_key_clear(&a->nk);
	vault_keys_clear(a->old, a->nold);
	free(a);
}

/* Notes k (not its key bytes) as one the activation replaces. */
static int
vault_activation_replaces(struct vault_activation *a, const struct vault_key *k)
{
	struct vault_key c;

	memset(&c, 0, sizeof(c));
	c.id = k->id;
	util_strlcpy(c.kid, k->kid, sizeof(c.kid));
	util_strlcpy(c.state, k->state, sizeof(c.state));
	if ((c.wrapped = malloc(k->wrapped_len)) == NULL)
		return CB_ERR_NOMEM;
	memcpy(c.wrapped, k->wrapped, k->wrapped_len);
	c.wrapped_len = k->wrapped_len;
	if (vault_keys_append(&a->old, &a->nold, &c) != 0) {
		free(c.wrapped);
		return CB_ERR_NOMEM;
	}
	return 0;
}

int
vault_activation_new(struct vault *v, struct store *st, int signing, int64_t retire_after,
    struct vault_activation **out)
{
	struct vault_activation *a;
	const struct vault_key *k;
	size_t i, n;
	int rc;

	*out = NULL;
	rc = signing ? vault_retire_signing_keys(v, st, util_now()) :
	    vault_resume_rotation(v, st);
	if (rc != 0)
		return rc;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return CB_ERR_NOMEM;
	a->signing = signing;
	a->retire_after = retire_after;
	if ((rc = vault_make_key(v->kek, signing, &a->nk)) != 0)
		goto fail;
	util_strlcpy(a->kid, a->nk.kid, sizeof(a->kid));
	pthread_rwlock_rdlock(&v->lock);
	n = signing ? v->nsk : v->ndk;
	for (i = 0; i < n && rc == 0; i++) {
		k = signing ? &v->sks[i] : &v->dks[i];
		if (signing ? strcmp(k->state, "active") == 0 : k->id == v->active_dk)
			rc = vault_activation_replaces(a, k);
	}
	pthread_rwlock_unlock(&v->lock);
	if (rc == 0 && !signing && a->nold != 1)
		rc = CB_ERR_CORRUPT;
	if (rc == 0) {
		*out = a;
		return 0;
	}
fail:
	vault_activation_free(a);
	return rc;
}

int
vault_activation_write(struct vault *v, struct store *wst, struct vault_activation *a)
{
	struct store_key *keys = NULL;
	int64_t o, nid;
	char buf[64];
	size_t i, n = 0;
	int rc;

	if ((rc = vault_still_kek(v, wst)) != 0)
		return rc;
	if (a->signing) {
		/*
		 * Every active row, not only those the vault holds: a rotation whose COMMIT
		 * failed and yet was durable left one the vault never took in, and two active
		 * keys would stop the next start.
		 */
		if ((rc = store_signing_keys_list(wst, &keys, &n)) != 0)
			return rc;
		for (i = 0; i < n && rc == 0; i++)
			if (strcmp(keys[i].state, "active") == 0)
				rc = store_signing_key_update(wst, keys[i].kid, keys[i].wrapped,
				    keys[i].wrapped_len, "verify", a->retire_after);
		store_keys_free(keys, n);
		if (rc != 0)
			return rc;
		return store_signing_key_insert(wst, a->nk.kid, a->nk.wrapped, a->nk.wrapped_len,
		    a->nk.state, 0);
	}
	/* One data-key rotation at a time: vault_activation_new finished the last one. */
	if ((rc = vault_rotation_get(wst, &o, &nid)) == 0)
		return CB_ERR_BUSY;
	if (rc != CB_ERR_NOTFOUND)
		return rc;
	if ((rc = store_data_key_update(wst, a->old[0].id, a->old[0].wrapped,
	    a->old[0].wrapped_len, "retiring")) != 0 ||
	    (rc = vault_insert_data_key(v->kek, wst, "active", &a->nk)) != 0)
		return rc;
	a->key_id = a->nk.id;
	snprintf(buf, sizeof(buf), "%" PRId64 " %" PRId64, a->old[0].id, a->nk.id);
	return store_meta_set(wst, VAULT_META_ROTATION, buf, strlen(buf));
}

void
vault_activation_apply(struct vault *v, struct vault_activation *a)
{
	struct vault_key *k;
	size_t i;

	pthread_rwlock_wrlock(&v->lock);
	for (i = 0; i < a->nold; i++) {
		k = a->signing ? vault_sk_find(v, a->old[i].kid) : vault_dk_find(v, a->old[i].id);
		if (k == NULL)
			continue;
		util_strlcpy(k->state, a->signing ? "verify" : "retiring", sizeof(k->state));
		if (a->signing)
			k->retire_after = a->retire_after;
	}
	if (a->signing) {
		log_info("signing key %s active; previous key verifies until %" PRId64, a->kid,
		    a->retire_after);
		if (vault_keys_append(&v->sks, &v->nsk, &a->nk) != 0)
			log_warnx("out of memory: restart to load the new signing key");
	} else {
		log_info("data key %" PRId64 " active; re-sealing versions from data key %" PRId64,
		    a->key_id, a->old[0].id);
		/* Without the key in memory nothing can seal under it: the old one stays. */
		if (vault_keys_append(&v->dks, &v->ndk, &a->nk) == 0)
			v->active_dk = a->key_id;
		else
			log_warnx("out of memory during data-key rotation: restart to finish it");
	}
	pthread_rwlock_unlock(&v->lock);
}

const char *
vault_activation_kid(const struct vault_activation *a)
{
	return a->kid;
}

int64_t
vault_activation_key_id(const struct vault_activation *a)
{
	return a->key_id;
}

/* All three steps on st, in its own transaction (tests, and callers without a commit thread). */
static int
vault_activate(struct vault *v, struct store *st, struct vault_activation *a)
{
	int rc;

	if ((rc = store_begin(st)) != 0)
		return rc;
	if ((rc = vault_activation_write(v, st, a)) != 0 || (rc = store_commit(st)) != 0) {
		store_rollback(st);
		return rc;
	}
	vault_activation_apply(v, a);
	return 0;
}

int
vault_rotate_signing_key(struct vault *v, struct store *st, int64_t retire_after,
    char kid_out[VAULT_KID_MAX])
{
	struct vault_activation *a;
	int rc;

	if (kid_out != NULL)
		kid_out[0] = '\0';
	if ((rc = vault_activation_new(v, st, 1, retire_after, &a)) != 0)
		return rc;
	if ((rc = vault_activate(v, st, a)) == 0 && kid_out != NULL)
		util_strlcpy(kid_out, a->kid, VAULT_KID_MAX);
	vault_activation_free(a);
	return rc;
}

int
vault_rotate_data_key(struct vault *v, struct store *st, int max_batches,
    int64_t *new_key_id)
{
	struct vault_activation *a;
	int64_t old_id, new_id;
	int rc;

	if (new_key_id != NULL)
		*new_key_id = 0;
	if ((rc = vault_activation_new(v, st, 0, 0, &a)) != 0)
		return rc;
	if ((rc = vault_activate(v, st, a)) != 0) {
		vault_activation_free(a);
		return rc;
	}
	old_id = a->old[0].id;
	new_id = a->key_id;
	vault_activation_free(a);
	if (new_key_id != NULL)
		*new_key_id = new_id;
	return vault_rotation_run(v, st, old_id, new_id, max_batches);
}

/* --- the audit anchor --- */

int
vault_audit_key(struct vault *v, uint8_t key[CRYPTO_KEY_LEN])
{
	int rc;

	pthread_rwlock_rdlock(&v->lock);
	rc = vault_anchor_key(v->kek, key);
	pthread_rwlock_unlock(&v->lock);
	return rc;
}

/* --- master-key rotation --- */

int
vault_rotate_master_key(struct store *st, const char *old_path, const char *new_path,
    char *why, size_t whylen)
{
	struct store_key *dks = NULL, *sks = NULL;
	size_t ndk = 0, nsk = 0, i;
	uint8_t *oldk = NULL, *newk = NULL, *key = NULL, *wrapped = NULL;
	uint8_t check[CRYPTO_HASH_LEN];
	size_t wlen;
	int rc, in_txn = 0;
	char dummy[1];

	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if ((rc = vault_read_master_key(old_path, &oldk, why, whylen)) != 0 ||
	    (rc = vault_read_master_key(new_path, &newk, why, whylen)) != 0)
		goto out;
	if ((rc = store_begin(st)) != 0) {
		snprintf(why, whylen, "database %s: cannot begin a transaction", store_path(st));
		goto out;
	}
	in_txn = 1;
	if ((rc = vault_verify_kek(st, oldk)) != 0) {
		if (rc == CB_ERR_AUTH)
			snprintf(why, whylen, "wrong master key %s for database %s", old_path,
			    store_path(st));
		else
			snprintf(why, whylen, "database %s has no master key check value",
			    store_path(st));
		goto out;
	}
	if ((rc = store_data_keys_list(st, &dks, &ndk)) != 0 ||
	    (rc = store_signing_keys_list(st, &sks, &nsk)) != 0)
		goto out;
	/* Every row, retired ones too: afterwards nothing is left under the old key. */
	for (i = 0; i < ndk + nsk; i++) {
		int signing = i >= ndk;
		struct store_key *k = signing ? &sks[i - ndk] : &dks[i];

		if ((rc = vault_unwrap(oldk, signing, k->id, k->kid, k->wrapped, k->wrapped_len,
		    &key)) != 0) {
			if (signing)
				snprintf(why, whylen, "database %s: signing key %s fails to unwrap",
				    store_path(st), k->kid);
			else
				snprintf(why, whylen, "database %s: data key %" PRId64
				    " fails to unwrap", store_path(st), k->id);
			goto out;
		}
		rc = vault_wrap(newk, signing, k->id, k->kid, key, &wrapped, &wlen);
		crypto_secure_free(key, CRYPTO_KEY_LEN);
		key = NULL;
		if (rc != 0)
			goto out;
		if (signing)
			rc = store_signing_key_update(st, k->kid, wrapped, wlen, k->state,
			    k->retire_after);
		else
			rc = store_data_key_update(st, k->id, wrapped, wlen, k->state);
		free(wrapped);
		wrapped = NULL;
		if (rc != 0)
			goto out;
	}
	if ((rc = vault_rekey_anchor(st, oldk, newk, why, whylen)) != 0)
		goto out;
	if ((rc = vault_kek_check(newk, check)) != 0 ||
	    (rc = store_meta_set(st, VAULT_META_KEKCHECK, check, sizeof(check))) != 0)
		goto out;
	if ((rc = store_commit(st)) != 0) {
		snprintf(why, whylen, "database %s: commit failed", store_path(st));
		goto out;
	}
	in_txn = 0;
	log_info("%s: %zu data keys and %zu signing keys re-wrapped under the new master key",
	    store_path(st), ndk, nsk);
out:
	if (in_txn)
		store_rollback(st);
	if (rc != 0 && why[0] == '\0')
		snprintf(why, whylen, "master-key rotation of %s failed: %s", store_path(st),
		    cb_strerror(rc));
	explicit_bzero(check, sizeof(check));
	crypto_secure_free(oldk, CRYPTO_KEY_LEN);
	crypto_secure_free(newk, CRYPTO_KEY_LEN);
	store_keys_free(dks, ndk);
	store_keys_free(sks, nsk);
	return rc;
}

void
vault_counts(struct vault *v, int *data_keys, int *signing_keys)
{
	size_t i;
	int n = 0;

	pthread_rwlock_rdlock(&v->lock);
	for (i = 0; i < v->ndk; i++)
		if (strcmp(v->dks[i].state, "retired") != 0)
			n++;
	if (data_keys != NULL)
		*data_keys = n;
	if (signing_keys != NULL)
		*signing_keys = (int)v->nsk;
	pthread_rwlock_unlock(&v->lock);
}
