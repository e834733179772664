/*
 * test_vault.c: the key hierarchy and secrets: master key file rules, wrong key,
 * sealed values bound to their row, version and key, the three rotations (with a
 * data-key rotation interrupted at several points), and a leak test over the
 * database, its WAL and the log.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "secret.h"
#include "store.h"
#include "store_int.h"
#include "testutil.h"
#include "util.h"
#include "vault.h"

struct fixture {
	char dir[64];
	char db[128];
	char key[128];
	char key2[128];
	struct store *st;
	struct vault *v;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	util_strlcpy(f->dir, "/tmp/cbtest-vault-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/cb.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	snprintf(f->key2, sizeof(f->key2), "%s/master2.key", f->dir);
	if (vault_create_master_key(f->key) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	vault_free(f->v);
	store_close(f->st);
	testutil_rm_dir(f->dir);
	free(f);
	return 0;
}

static void
fx_close(struct fixture *f)
{
	vault_free(f->v);
	f->v = NULL;
	store_close(f->st);
	f->st = NULL;
}

static void
fx_open(struct fixture *f, const char *key)
{
	char why[512];

	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	if (vault_open(f->st, key, &f->v, why, sizeof(why)) != 0)
		fail_msg("vault_open: %s", why);
}

static void
put(struct fixture *f, const char *name, const char *value, int64_t *version)
{
	char *hosts[] = { "api.example.com" };
	int64_t ver = 0;

	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(secret_put(f->st, f->v, name, (const uint8_t *)value, strlen(value),
	    hosts, 1, 3600, 1000, &ver), 0);
	assert_int_equal(store_commit(f->st), 0);
	if (version != NULL)
		*version = ver;
}

static void
assert_reveal(struct fixture *f, const char *name, const char *want)
{
	uint8_t *val = NULL;
	size_t len = 0;

	assert_int_equal(secret_reveal(f->st, f->v, name, &val, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_string_equal((const char *)val, want);
	util_wipe_free(val, len + 1);
}

/* Opens one stored version directly. */
static int
open_version(struct fixture *f, const char *name, int64_t version, char *buf, size_t buflen)
{
	uint8_t *ct = NULL, *pt = NULL;
	size_t ctlen, ptlen;
	int64_t kid;
	int rc;

	if ((rc = store_secret_version_get(f->st, name, version, &kid, &ct, &ctlen)) != 0)
		return rc;
	rc = vault_secret_open(f->v, name, version, kid, ct, ctlen, &pt, &ptlen);
	free(ct);
	if (rc == 0) {
		util_strlcpy(buf, (const char *)pt, buflen);
		util_wipe_free(pt, ptlen + 1);
	}
	return rc;
}

static void
raw_exec(struct fixture *f, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(f->st->db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

static int64_t
raw_int(struct fixture *f, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(f->st->db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int64_t
raw_int_st(struct store *st, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* --- master key file --- */

static void
test_create_master_key(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf = NULL, k[CRYPTO_KEY_LEN];
	size_t len;
	struct stat sb;

	assert_int_equal(stat(f->key, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(util_read_file(f->key, 1024, &buf, &len), 0);
	assert_int_equal(len, 65);
	assert_int_equal(buf[64], '\n');
	buf[64] = '\0';
	assert_int_equal(util_unhex((const char *)buf, k, sizeof(k)), 0);
	util_wipe_free(buf, len + 1);
	explicit_bzero(k, sizeof(k));
	assert_int_equal(vault_create_master_key(f->key), CB_ERR_EXISTS);
}

static void
test_master_key_modes(void **state)
{
	struct fixture *f = *state;
	static const struct {
		mode_t mode;
		int rc;
		const char *in_why;
	} cases[] = {
		{ 0640, CB_ERR_PERM, "0640" },
		{ 0604, CB_ERR_PERM, "0604" },
		{ 0644, CB_ERR_PERM, "0644" },
		{ 0660, CB_ERR_PERM, "0660" },
		{ 0601, CB_ERR_PERM, "0601" },
		{ 0400, 0, NULL },
		{ 0600, 0, NULL },
	};
	uint8_t *val = NULL;
	size_t i, len;
	char why[512];

	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		assert_int_equal(chmod(f->key, cases[i].mode), 0);
		why[0] = '\0';
		assert_int_equal(vault_open(f->st, f->key, &f->v, why, sizeof(why)), cases[i].rc);
		if (cases[i].rc != 0) {
			assert_null(f->v);
			assert_non_null(strstr(why, f->key));
			assert_non_null(strstr(why, cases[i].in_why));
			/* Refused before anything was written. */
			assert_int_equal(store_meta_get(f->st, "kek_check", &val, &len),
			    CB_ERR_NOTFOUND);
		} else {
			assert_non_null(f->v);
			vault_free(f->v);
			f->v = NULL;
		}
	}
}

static void
test_master_key_missing_or_malformed(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *content;
		int rc;
	} cases[] = {
		{ NULL, CB_ERR_IO },	/* missing */
		{ "", CB_ERR_INVAL },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", CB_ERR_INVAL },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", CB_ERR_INVAL },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
		  CB_ERR_INVAL },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", CB_ERR_INVAL },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 0 },
		{ "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n", 0 },	/* same key */
	};
	char path[160], why[512];
	size_t i;

	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/k", f->dir);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		unlink(path);
		if (cases[i].content != NULL)
			assert_int_equal(util_create_file(path, cases[i].content,
			    strlen(cases[i].content), 0600), 0);
		why[0] = '\0';
		assert_int_equal(vault_open(f->st, path, &f->v, why, sizeof(why)), cases[i].rc);
		if (cases[i].rc != 0) {
			assert_null(f->v);
			assert_non_null(strstr(why, path));
		}
		if (cases[i].content == NULL)
			assert_non_null(strstr(why, "missing"));
		vault_free(f->v);
		f->v = NULL;
	}
}

static void
file_bytes(const char *path, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	if (access(path, F_OK) == 0)
		assert_int_equal(util_read_file(path, 64 << 20, buf, len), 0);
}

static void
test_wrong_master_key(void **state)
{
	struct fixture *f = *state;
	uint8_t *db0, *db1, *wal0, *wal1;
	size_t dl0, dl1, wl0, wl1;
	char why[512], want[512], wal[160];
	int dks, sks;

	fx_open(f, f->key);
	put(f, "gh", "value-one", NULL);
	vault_free(f->v);
	f->v = NULL;
	assert_int_equal(vault_create_master_key(f->key2), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	file_bytes(f->db, &db0, &dl0);
	file_bytes(wal, &wal0, &wl0);
	assert_int_equal(vault_open(f->st, f->key2, &f->v, why, sizeof(why)), CB_ERR_AUTH);
	assert_null(f->v);
	snprintf(want, sizeof(want), "wrong master key %s for database %s", f->key2, f->db);
	assert_string_equal(why, want);
	file_bytes(f->db, &db1, &dl1);
	file_bytes(wal, &wal1, &wl1);
	assert_int_equal(dl0, dl1);
	assert_memory_equal(db0, db1, dl0);
	assert_int_equal(wl0, wl1);
	if (wl0 > 0)
		assert_memory_equal(wal0, wal1, wl0);
	free(db0);
	free(db1);
	free(wal0);
	free(wal1);
	/* The right key still works. */
	assert_int_equal(vault_open(f->st, f->key, &f->v, why, sizeof(why)), 0);
	vault_counts(f->v, &dks, &sks);
	assert_int_equal(dks, 1);
	assert_int_equal(sks, 1);
	assert_reveal(f, "gh", "value-one");
}

/* --- secrets --- */

static void
test_secret_put_reveal(void **state)
{
	struct fixture *f = *state;
	char *hosts[] = { "API.Example.COM.", "api.example.com", "other.example" };
	struct secret_meta *m = NULL, **list = NULL;
	const char *v3 = "third value with spaces and symbols !@#$%^&*()";
	char buf[256];
	int64_t ver;
	size_t n;

	fx_open(f, f->key);
	put(f, "gh", "first", &ver);
	assert_int_equal(ver, 1);
	put(f, "gh", "second", &ver);
	assert_int_equal(ver, 2);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(secret_put(f->st, f->v, "gh", (const uint8_t *)v3, strlen(v3), hosts, 3,
	    600, 2000, &ver), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(ver, 3);
	assert_reveal(f, "gh", v3);
	/* Old versions are kept and still decrypt. */
	assert_int_equal(open_version(f, "gh", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "first");
	assert_int_equal(open_version(f, "gh", 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "second");

	assert_int_equal(secret_get(f->st, "gh", &m), 0);
	assert_string_equal(m->name, "gh");
	assert_int_equal(m->version, 3);
	assert_int_equal(m->max_ttl_s, 600);
	assert_int_equal(m->nhosts, 2);	/* normalised and deduplicated */
	assert_string_equal(m->hosts[0], "api.example.com");
	assert_string_equal(m->hosts[1], "other.example");
	assert_int_equal(secret_host_allowed(m, "api.example.com"), 1);
	assert_int_equal(secret_host_allowed(m, "evil.example.com"), 0);
	assert_int_equal(secret_host_allowed(m, "example.com"), 0);
	assert_int_equal(m->created_at, 1000);
	assert_int_equal(m->updated_at, 2000);
	secret_meta_free(m);

	put(f, "aws.key-1_x", "v", NULL);
	assert_int_equal(secret_list(f->st, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0]->name, "aws.key-1_x");
	assert_string_equal(list[1]->name, "gh");
	secret_list_free(list, n);

	assert_int_equal(secret_delete(f->st, "gh"), 0);
	assert_int_equal(secret_delete(f->st, "gh"), CB_ERR_NOTFOUND);
	assert_int_equal(secret_get(f->st, "gh", &m), CB_ERR_NOTFOUND);
	assert_int_equal(secret_reveal(f->st, f->v, "gh", (uint8_t **)&list, &n),
	    CB_ERR_NOTFOUND);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM secret_versions WHERE name = 'gh'"), 0);
}

static void
test_secret_validation(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		int rc;
	} names[] = {
		{ "gh", 0 }, { "a", 0 }, { "A.b-c_d9", 0 }, { "9lives", 0 },
		{ "", CB_ERR_INVAL }, { ".hidden", CB_ERR_INVAL }, { "-x", CB_ERR_INVAL },
		{ "a/b", CB_ERR_INVAL }, { "a b", CB_ERR_INVAL }, { "a\nb", CB_ERR_INVAL },
		{ "caf\xc3\xa9", CB_ERR_INVAL },
	};
	static const struct {
		const char *value;
		size_t len;
		int rc;
	} values[] = {
		{ "x", 1, 0 }, { "Bearer abc", 10, 0 },
		{ "", 0, CB_ERR_INVAL }, { "a\rb", 3, CB_ERR_INVAL }, { "a\nb", 3, CB_ERR_INVAL },
		{ "a\0b", 3, CB_ERR_INVAL }, { "a\x01b", 3, CB_ERR_INVAL },
		{ "a\x1b[0m", 6, CB_ERR_INVAL }, { "a\x7f", 2, CB_ERR_INVAL },
		{ "a\tb", 3, 0 }, { "caf\xc3\xa9", 5, 0 },
	};
	char longname[SECRET_NAME_MAX + 2];
	char *hosts[] = { "ok.example" }, *badhosts[] = { "bad host" };
	uint8_t *big;
	int64_t ver;
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(names); i++)
		assert_int_equal(secret_valid_name(names[i].name), names[i].rc);
	memset(longname, 'a', sizeof(longname));
	longname[SECRET_NAME_MAX] = '\0';
	assert_int_equal(secret_valid_name(longname), 0);
	longname[SECRET_NAME_MAX] = 'a';
	longname[SECRET_NAME_MAX + 1] = '\0';
	assert_int_equal(secret_valid_name(longname), CB_ERR_INVAL);
	for (i = 0; i < UTIL_ARRAY_LEN(values); i++)
		assert_int_equal(secret_valid_value((const uint8_t *)values[i].value,
		    values[i].len), values[i].rc);
	assert_non_null(big = malloc(SECRET_VALUE_MAX + 1));
	memset(big, 'v', SECRET_VALUE_MAX + 1);
	assert_int_equal(secret_valid_value(big, SECRET_VALUE_MAX), 0);
	assert_int_equal(secret_valid_value(big, SECRET_VALUE_MAX + 1), CB_ERR_LIMIT);

	fx_open(f, f->key);
	assert_int_equal(store_begin(f->st), 0);
	/* The largest value round-trips. */
	assert_int_equal(secret_put(f->st, f->v, "big", big, SECRET_VALUE_MAX, hosts, 1, 60, 1,
	    &ver), 0);
	assert_int_equal(secret_put(f->st, f->v, "big", big, SECRET_VALUE_MAX + 1, hosts, 1, 60,
	    1, &ver), CB_ERR_LIMIT);
	assert_int_equal(secret_put(f->st, f->v, "x", (const uint8_t *)"v", 1, badhosts, 1, 60, 1,
	    &ver), CB_ERR_INVAL);
	assert_int_equal(secret_put(f->st, f->v, "x", (const uint8_t *)"v", 1, hosts, 0, 60, 1,
	    &ver), CB_ERR_INVAL);
	assert_int_equal(secret_put(f->st, f->v, "x", (const uint8_t *)"v", 1, hosts, 1, 0, 1,
	    &ver), CB_ERR_INVAL);
	assert_int_equal(secret_put(f->st, f->v, "bad name", (const uint8_t *)"v", 1, hosts, 1,
	    60, 1, &ver), CB_ERR_INVAL);
	assert_int_equal(store_commit(f->st), 0);
	{
		uint8_t *val = NULL;
		size_t len = 0;

		assert_int_equal(secret_reveal(f->st, f->v, "big", &val, &len), 0);
		assert_int_equal(len, SECRET_VALUE_MAX);
		assert_memory_equal(val, big, SECRET_VALUE_MAX);
		util_wipe_free(val, len + 1);
	}
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM secrets WHERE name = 'x'"), 0);
	free(big);
}

/* A ciphertext moved to another secret, another version or relabelled with another key fails. */
static void
test_ciphertext_moved(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *sql;
		const char *name;
		int64_t version;
	} cases[] = {
		/* b's row given a's ciphertext (same key, same version number) */
		{ "UPDATE secret_versions SET ct = (SELECT ct FROM secret_versions "
		  "WHERE name = 'a' AND version = 1) WHERE name = 'b' AND version = 1", "b", 1 },
		/* a's version 2 given a's version 1 */
		{ "UPDATE secret_versions SET ct = (SELECT ct FROM secret_versions "
		  "WHERE name = 'a' AND version = 1) WHERE name = 'a' AND version = 2", "a", 2 },
		/* c's ciphertext claimed to be under the other (retiring) data key */
		{ "UPDATE secret_versions SET key_id = (SELECT MIN(id) FROM data_keys) "
		  "WHERE name = 'c'", "c", 1 },
		/* e's ciphertext truncated */
		{ "UPDATE secret_versions SET ct = substr(ct, 1, 10) WHERE name = 'e'", "e", 1 },
	};
	char buf[64];
	int64_t newkey;
	size_t i;

	fx_open(f, f->key);
	put(f, "a", "alpha-1", NULL);
	put(f, "a", "alpha-2", NULL);
	put(f, "b", "bravo-1", NULL);
	/* A second data key so c can be relabelled to an existing key; stop before re-sealing. */
	assert_int_equal(vault_rotate_data_key(f->v, f->st, 0, &newkey), 0);
	put(f, "c", "charlie", NULL);
	put(f, "d", "delta-value-long-enough-for-byte-21", NULL);
	put(f, "e", "echo", NULL);
	assert_int_equal(raw_int(f, "SELECT key_id FROM secret_versions WHERE name = 'c'"), newkey);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		assert_int_equal(open_version(f, cases[i].name, cases[i].version, buf, sizeof(buf)),
		    0);
		raw_exec(f, cases[i].sql);
		assert_int_equal(open_version(f, cases[i].name, cases[i].version, buf, sizeof(buf)),
		    CB_ERR_AUTH);
	}
	/* One byte flipped anywhere in d's stored ciphertext (nonce, body, tag). */
	{
		uint8_t *ct = NULL;
		size_t ctlen, j;
		int64_t kid;
		sqlite3_stmt *s;

		assert_int_equal(store_secret_version_get(f->st, "d", 1, &kid, &ct, &ctlen), 0);
		for (j = 0; j < ctlen; j++) {
			ct[j] ^= 0x04;
			assert_int_equal(sqlite3_prepare_v2(f->st->db, "UPDATE secret_versions "
			    "SET ct = ?1 WHERE name = 'd'", -1, &s, NULL), SQLITE_OK);
			sqlite3_bind_blob(s, 1, ct, (int)ctlen, SQLITE_STATIC);
			assert_int_equal(sqlite3_step(s), SQLITE_DONE);
			sqlite3_finalize(s);
			assert_int_equal(open_version(f, "d", 1, buf, sizeof(buf)), CB_ERR_AUTH);
			ct[j] ^= 0x04;
		}
		free(ct);
	}
	/* secret_reveal reports the same. */
	{
		uint8_t *val = NULL;
		size_t len;

		assert_int_equal(secret_reveal(f->st, f->v, "b", &val, &len), CB_ERR_AUTH);
		assert_null(val);
	}
	/* Untouched rows still decrypt. */
	assert_int_equal(open_version(f, "a", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "alpha-1");
}

/* A wrapped data key copied into another key's slot fails to unwrap on open. */
static void
test_wrapped_key_moved(void **state)
{
	struct fixture *f = *state;
	char why[512];

	fx_open(f, f->key);
	assert_int_equal(vault_rotate_data_key(f->v, f->st, 0, NULL), 0);
	raw_exec(f, "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys "
	    "WHERE id = (SELECT MIN(id) FROM data_keys)) WHERE id = (SELECT MAX(id) FROM data_keys)");
	vault_free(f->v);
	f->v = NULL;
	assert_int_equal(vault_open(f->st, f->key, &f->v, why, sizeof(why)), CB_ERR_AUTH);
	assert_non_null(strstr(why, "data key"));
}

/* --- rotations --- */

#define NSECRETS	30

static void
put_many(struct fixture *f, int n, int versions)
{
	char name[32], value[64];
	int i, j;

	for (j = 1; j <= versions; j++) {
		assert_int_equal(store_begin(f->st), 0);
		for (i = 0; i < n; i++) {
			char *hosts[] = { "h.example" };
			int64_t ver;

			snprintf(name, sizeof(name), "s%04d", i);
			snprintf(value, sizeof(value), "value-%04d-v%d", i, j);
			assert_int_equal(secret_put(f->st, f->v, name, (const uint8_t *)value,
			    strlen(value), hosts, 1, 60, 1, &ver), 0);
			assert_int_equal(ver, j);
		}
		assert_int_equal(store_commit(f->st), 0);
	}
}

static void
check_many(struct fixture *f, int n, int versions)
{
	char name[32], want[64], got[64];
	int i, j;

	for (i = 0; i < n; i++) {
		for (j = 1; j <= versions; j++) {
			snprintf(name, sizeof(name), "s%04d", i);
			snprintf(want, sizeof(want), "value-%04d-v%d", i, j);
			assert_int_equal(open_version(f, name, j, got, sizeof(got)), 0);
			assert_string_equal(got, want);
		}
	}
}

static void
test_rotate_data_key(void **state)
{
	struct fixture *f = *state;
	int64_t k1, k2, k3;
	int dks, sks;

	fx_open(f, f->key);
	put_many(f, NSECRETS, 2);
	k1 = raw_int(f, "SELECT id FROM data_keys WHERE state = 'active'");
	assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, &k2), 0);
	assert_true(k2 != k1);
	check_many(f, NSECRETS, 2);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM secret_versions WHERE key_id != "
	    "(SELECT id FROM data_keys WHERE state = 'active')"), 0);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM data_keys WHERE state = 'retired'"), 1);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM meta WHERE k = 'rotation'"), 0);
	vault_counts(f->v, &dks, &sks);
	assert_int_equal(dks, 1);
	/* New puts use the new key; a second rotation works too; reopen still decrypts. */
	put(f, "later", "later-value", NULL);
	assert_int_equal(raw_int(f, "SELECT key_id FROM secret_versions WHERE name = 'later'"),
	    k2);
	assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, &k3), 0);
	fx_close(f);
	fx_open(f, f->key);
	check_many(f, NSECRETS, 2);
	assert_reveal(f, "later", "later-value");
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM secret_versions WHERE key_id != "
	    "(SELECT id FROM data_keys WHERE state = 'active')"), 0);
}

/* A rotation stopped after max_batches (the simulated crash) is finished by the next open. */
static void
test_rotation_interrupted(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int nsecrets;
		int max_batches;
		int64_t left_under_old;	/* right after the "crash" */
	} cases[] = {
		{ 250, 1, 150 },	/* half-way: between batches */
		{ 200, 2, 0 },		/* every version moved, old key not yet retired */
		{ 120, 0, 120 },	/* new key committed, nothing re-sealed */
	};
	char q[256];
	int64_t old, nk;
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		fx_open(f, f->key);
		put_many(f, cases[i].nsecrets, 1);
		old = raw_int(f, "SELECT id FROM data_keys WHERE state = 'active'");
		assert_int_equal(vault_rotate_data_key(f->v, f->st, cases[i].max_batches, &nk), 0);
		snprintf(q, sizeof(q), "SELECT COUNT(*) FROM secret_versions WHERE key_id = %"
		    PRId64, old);
		assert_int_equal(raw_int(f, q), cases[i].left_under_old);
		assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM meta WHERE k = 'rotation'"), 1);
		snprintf(q, sizeof(q), "SELECT state = 'retiring' FROM data_keys WHERE id = %"
		    PRId64, old);
		assert_int_equal(raw_int(f, q), 1);
		/* Readable while half-way, from both keys. */
		check_many(f, cases[i].nsecrets, 1);
		fx_close(f);	/* the "crash": nothing more runs */

		fx_open(f, f->key);	/* resumes */
		snprintf(q, sizeof(q), "SELECT COUNT(*) FROM secret_versions WHERE key_id = %"
		    PRId64, old);
		assert_int_equal(raw_int(f, q), 0);
		snprintf(q, sizeof(q), "SELECT COUNT(*) FROM secret_versions WHERE key_id = %"
		    PRId64, nk);
		assert_int_equal(raw_int(f, q), cases[i].nsecrets);
		assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM meta WHERE k = 'rotation'"), 0);
		snprintf(q, sizeof(q), "SELECT state FROM data_keys WHERE id = %" PRId64, old);
		{
			sqlite3_stmt *s;

			assert_int_equal(sqlite3_prepare_v2(f->st->db, q, -1, &s, NULL), SQLITE_OK);
			assert_int_equal(sqlite3_step(s), SQLITE_ROW);
			assert_string_equal((const char *)sqlite3_column_text(s, 0), "retired");
			sqlite3_finalize(s);
		}
		check_many(f, cases[i].nsecrets, 1);
		fx_close(f);
		unlink(f->db);
		snprintf(q, sizeof(q), "%s-wal", f->db);
		unlink(q);
		snprintf(q, sizeof(q), "%s-shm", f->db);
		unlink(q);
	}
}

/*
 * A real crash: a child process rotates with max_batches batches and _exits without
 * closing anything (no checkpoint, no cleanup); a second child crashes inside an
 * open transaction. The parent reopens and must see every value.
 */
static void
test_rotation_crash_fork(void **state)
{
	struct fixture *f = *state;
	static const int batches[] = { 1, 2 };
	int64_t left;
	size_t i;
	pid_t pid;
	int status;

	fx_open(f, f->key);
	put_many(f, 230, 1);
	fx_close(f);
	for (i = 0; i < UTIL_ARRAY_LEN(batches); i++) {
		if ((pid = fork()) == 0) {
			struct store *st = NULL;
			struct vault *v = NULL;
			char why[256];

			if (store_open(f->db, 0, &st, why, sizeof(why)) != 0 ||
			    vault_open(st, f->key, &v, why, sizeof(why)) != 0 ||
			    vault_rotate_data_key(v, st, batches[i], NULL) != 0)
				_exit(2);
			/* Half-way through a further batch, uncommitted. */
			if (store_begin(st) != 0 ||
			    store_secret_version_reseal(st, "s0229", 1,
			    raw_int_st(st, "SELECT key_id FROM secret_versions WHERE name = 's0229'"),
			    raw_int_st(st, "SELECT MAX(id) FROM data_keys"),
			    (const uint8_t *)"garbage-garbage-garbage-garbage", 31) != 0)
				_exit(3);
			_exit(0);
		}
		assert_true(pid > 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	/* Two rotations were started; the second finished the first before starting. */
	fx_open(f, f->key);
	check_many(f, 230, 1);
	left = raw_int(f, "SELECT COUNT(*) FROM secret_versions WHERE key_id != "
	    "(SELECT id FROM data_keys WHERE state = 'active')");
	assert_int_equal(left, 0);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM meta WHERE k = 'rotation'"), 0);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM data_keys WHERE state = 'retired'"), 2);
	assert_int_equal(store_integrity_check(f->st), 0);
}

struct reader_arg {
	struct store_pool *pool;
	struct vault *v;
	volatile int *stop;
	int ok, failed;
};

static void *
reader_thread(void *p)
{
	struct reader_arg *a = p;
	struct store *st = store_pool_get(a->pool);
	char name[32], want[64];
	uint8_t *val;
	size_t len;
	int i;

	if (st == NULL) {
		a->failed++;
		return NULL;
	}
	for (i = 0; i < 200000 && !__atomic_load_n(a->stop, __ATOMIC_ACQUIRE); i++) {
		snprintf(name, sizeof(name), "s%04d", i % 300);
		snprintf(want, sizeof(want), "value-%04d-v1", i % 300);
		val = NULL;
		if (secret_reveal(st, a->v, name, &val, &len) == 0 &&
		    strcmp((const char *)val, want) == 0)
			a->ok++;
		else
			a->failed++;
		util_wipe_free(val, len + 1);
	}
	return NULL;
}

/* Server threads keep revealing secrets while a data-key rotation runs. */
static void
test_rotation_concurrent_reads(void **state)
{
	struct fixture *f = *state;
	struct store_pool *pool = NULL;
	struct reader_arg a[2];
	pthread_t th[2];
	volatile int stop = 0;
	size_t i;

	fx_open(f, f->key);
	put_many(f, 300, 1);
	assert_int_equal(store_pool_new(f->db, &pool), 0);
	memset(a, 0, sizeof(a));
	for (i = 0; i < 2; i++) {
		a[i].pool = pool;
		a[i].v = f->v;
		a[i].stop = &stop;
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &a[i]), 0);
	}
	for (i = 0; i < 3; i++)
		assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, NULL), 0);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	store_pool_free(pool);
	for (i = 0; i < 2; i++) {
		assert_int_equal(a[i].failed, 0);
		assert_true(a[i].ok > 0);
	}
	check_many(f, 300, 1);
}

/*
 * A signing rotation whose COMMIT reported failure yet was durable (the commit thread
 * allows for it): its key is active in the database, never in the vault. The next
 * rotation demotes every active row, not only the vault's, so the next start finds one.
 */
static void
test_rotation_after_unapplied_commit(void **state)
{
	struct fixture *f = *state;
	struct vault_activation *a = NULL;
	char kid[VAULT_KID_MAX];

	fx_open(f, f->key);
	assert_int_equal(vault_activation_new(f->v, f->st, 1, util_now() + 3600, &a), 0);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(vault_activation_write(f->v, f->st, a), 0);
	assert_int_equal(store_commit(f->st), 0);
	vault_activation_free(a);	/* never applied: the caller was told it failed */
	/* The database's active key is one the vault does not hold. */
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM signing_keys WHERE state = 'active'"),
	    1);
	assert_int_equal(vault_signing_key(f->v, NULL, (uint8_t[CRYPTO_KEY_LEN]){ 0 }, kid), 0);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM signing_keys WHERE state = 'verify'"),
	    1);
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 3600, kid), 0);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM signing_keys WHERE state = 'active'"),
	    1);
	fx_close(f);
	fx_open(f, f->key);	/* fails on two active keys */
	assert_int_equal(vault_signing_key(f->v, kid, (uint8_t[CRYPTO_KEY_LEN]){ 0 }, NULL), 0);
}

struct writer_arg {
	const char *db;
	struct vault *v;
	volatile int *stop;
	int ok, failed;
};

/* A commit thread's pattern: the database's write lock held, then the vault's (a seal). */
static void *
writer_thread(void *p)
{
	struct writer_arg *a = p;
	struct store *st = NULL;
	char why[256];
	uint8_t *ct;
	size_t ctlen;
	int64_t kid;
	int i;

	if (store_open(a->db, STORE_NOCHECK, &st, why, sizeof(why)) != 0) {
		a->failed++;
		return NULL;
	}
	for (i = 0; i < 100000 && !__atomic_load_n(a->stop, __ATOMIC_ACQUIRE); i++) {
		if (store_begin(st) != 0) {
			a->failed++;
			continue;
		}
		ct = NULL;
		if (vault_secret_seal(a->v, "w", i + 1, (const uint8_t *)"x", 1, &kid, &ct,
		    &ctlen) == 0)
			__atomic_add_fetch(&a->ok, 1, __ATOMIC_RELEASE);
		else
			a->failed++;
		free(ct);
		if (store_commit(st) != 0) {
			store_rollback(st);
			a->failed++;
		}
	}
	store_close(st);
	return NULL;
}

/*
 * Rotations while another connection writes and seals inside its transaction. A
 * rotation used to take the vault's lock, then wait for the database's write lock,
 * while the writer held that and waited for the vault's: both stalled until the busy
 * timeout, and the rotation failed. The write lock now always comes first.
 */
static void
test_rotation_concurrent_writer(void **state)
{
	struct fixture *f = *state;
	struct writer_arg a;
	char kid[VAULT_KID_MAX];
	volatile int stop = 0;
	pthread_t th;
	int i;

	fx_open(f, f->key);
	put_many(f, 50, 1);
	memset(&a, 0, sizeof(a));
	a.db = f->db;
	a.v = f->v;
	a.stop = &stop;
	assert_int_equal(pthread_create(&th, NULL, writer_thread, &a), 0);
	/* The writer at work first (bounded: 10 s). */
	for (i = 0; i < 1000 && __atomic_load_n(&a.ok, __ATOMIC_ACQUIRE) < 3; i++)
		usleep(10000);
	assert_true(__atomic_load_n(&a.ok, __ATOMIC_ACQUIRE) >= 3);
	for (i = 0; i < 60; i++) {
		assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 3600, kid), 0);
		if (i % 10 == 0)
			assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, NULL), 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.failed, 0);
	assert_true(a.ok > 0);
	check_many(f, 50, 1);
}

static void
test_rotate_master_key(void **state)
{
	struct fixture *f = *state;
	uint8_t sk_before[CRYPTO_KEY_LEN], sk_after[CRYPTO_KEY_LEN];
	char kid_before[VAULT_KID_MAX], kid_after[VAULT_KID_MAX], why[512], want[512];
	char key3[160];

	fx_open(f, f->key);
	put_many(f, NSECRETS, 2);
	/* A retired data key and a 'verify' signing key are re-wrapped too. */
	assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, NULL), 0);
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 3600, kid_after), 0);
	assert_int_equal(vault_signing_key(f->v, NULL, sk_before, kid_before), 0);
	vault_free(f->v);
	f->v = NULL;
	assert_int_equal(vault_create_master_key(f->key2), 0);

	/* The wrong old key is refused and changes nothing. */
	snprintf(key3, sizeof(key3), "%s/third.key", f->dir);
	assert_int_equal(vault_create_master_key(key3), 0);
	assert_int_equal(vault_rotate_master_key(f->st, key3, f->key2, why, sizeof(why)),
	    CB_ERR_AUTH);
	snprintf(want, sizeof(want), "wrong master key %s for database %s", key3, f->db);
	assert_string_equal(why, want);
	assert_int_equal(chmod(f->key2, 0644), 0);
	assert_int_equal(vault_rotate_master_key(f->st, f->key, f->key2, why, sizeof(why)),
	    CB_ERR_PERM);
	assert_int_equal(chmod(f->key2, 0600), 0);

	assert_int_equal(vault_rotate_master_key(f->st, f->key, f->key2, why, sizeof(why)), 0);
	assert_int_equal(vault_open(f->st, f->key, &f->v, why, sizeof(why)), CB_ERR_AUTH);
	assert_int_equal(vault_open(f->st, f->key2, &f->v, why, sizeof(why)), 0);
	check_many(f, NSECRETS, 2);
	assert_int_equal(vault_signing_key(f->v, NULL, sk_after, kid_after), 0);
	assert_string_equal(kid_before, kid_after);
	assert_memory_equal(sk_before, sk_after, CRYPTO_KEY_LEN);
	/* Every row was re-wrapped: none unwraps under the old key any more. */
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM data_keys"), 2);
	fx_close(f);
	fx_open(f, f->key2);
	check_many(f, NSECRETS, 2);
	explicit_bzero(sk_before, sizeof(sk_before));
	explicit_bzero(sk_after, sizeof(sk_after));
}

/* A vault opened before a master-key rotation must not wrap new keys under the old KEK. */
static void
test_stale_kek_guard(void **state)
{
	struct fixture *f = *state;
	struct store *other = NULL;
	char why[512], kid[VAULT_KID_MAX];

	fx_open(f, f->key);
	put(f, "gh", "stale-guard", NULL);
	assert_int_equal(vault_create_master_key(f->key2), 0);
	assert_int_equal(store_open(f->db, 0, &other, why, sizeof(why)), 0);
	assert_int_equal(vault_rotate_master_key(other, f->key, f->key2, why, sizeof(why)), 0);
	store_close(other);
	assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, NULL), CB_ERR_AUTH);
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 60, kid),
	    CB_ERR_AUTH);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM data_keys"), 1);
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM signing_keys"), 1);
	fx_close(f);
	fx_open(f, f->key2);
	assert_reveal(f, "gh", "stale-guard");
}

static int
is_kid(const char *kid)
{
	size_t i;

	if (strlen(kid) != 17 || kid[0] != 'k')
		return 0;
	for (i = 1; i < 17; i++)
		if (!((kid[i] >= '0' && kid[i] <= '9') || (kid[i] >= 'a' && kid[i] <= 'f')))
			return 0;
	return 1;
}

static void
test_rotate_signing_key(void **state)
{
	struct fixture *f = *state;
	uint8_t k1[CRYPTO_KEY_LEN], k2[CRYPTO_KEY_LEN], k[CRYPTO_KEY_LEN];
	char kid1[VAULT_KID_MAX], kid2[VAULT_KID_MAX], kid3[VAULT_KID_MAX], kid[VAULT_KID_MAX];
	int dks, sks;

	fx_open(f, f->key);
	put_many(f, 5, 1);
	assert_int_equal(vault_signing_key(f->v, NULL, k1, kid1), 0);
	assert_true(is_kid(kid1));
	assert_int_equal(vault_signing_key(f->v, "knot-a-key", k, kid), CB_ERR_NOTFOUND);

	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 3600, kid2), 0);
	assert_true(is_kid(kid2));
	assert_string_not_equal(kid1, kid2);
	assert_int_equal(vault_signing_key(f->v, NULL, k2, kid), 0);
	assert_string_equal(kid, kid2);
	assert_memory_not_equal(k1, k2, CRYPTO_KEY_LEN);
	/* The old key still verifies until retire_after. */
	assert_int_equal(vault_signing_key(f->v, kid1, k, NULL), 0);
	assert_memory_equal(k, k1, CRYPTO_KEY_LEN);
	vault_counts(f->v, &dks, &sks);
	assert_int_equal(sks, 2);
	check_many(f, 5, 1);

	/* Rotating again with retire_after already past: kid2 stops verifying at once. */
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() - 1, kid3), 0);
	assert_int_equal(vault_signing_key(f->v, kid2, k, NULL), CB_ERR_NOTFOUND);
	assert_int_equal(vault_signing_key(f->v, kid1, k, NULL), 0);
	/* ... and is retired in the database by the next open. */
	fx_close(f);
	fx_open(f, f->key);
	vault_counts(f->v, &dks, &sks);
	assert_int_equal(sks, 2);	/* kid3 active, kid1 verify */
	assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM signing_keys WHERE state = 'retired'"),
	    1);
	assert_int_equal(vault_signing_key(f->v, kid2, k, NULL), CB_ERR_NOTFOUND);
	assert_int_equal(vault_signing_key(f->v, kid1, k, NULL), 0);
	assert_memory_equal(k, k1, CRYPTO_KEY_LEN);
	assert_int_equal(vault_signing_key(f->v, NULL, k, kid), 0);
	assert_string_equal(kid, kid3);
	check_many(f, 5, 1);
	explicit_bzero(k, sizeof(k));
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k2, sizeof(k2));
}

static void
test_readonly_open(void **state)
{
	struct fixture *f = *state;
	struct store *ro = NULL;
	struct vault *v = NULL;
	char why[512];

	/* An uninitialised database cannot be initialised read-only. */
	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->db, STORE_READONLY, &ro, why, sizeof(why)), 0);
	assert_int_not_equal(vault_open(ro, f->key, &v, why, sizeof(why)), 0);
	assert_null(v);
	store_close(ro);
	ro = NULL;

	fx_open(f, f->key);
	put(f, "gh", "ro-value", NULL);
	assert_int_equal(store_open(f->db, STORE_READONLY, &ro, why, sizeof(why)), 0);
	assert_int_equal(vault_open(ro, f->key, &v, why, sizeof(why)), 0);
	{
		uint8_t *val = NULL;
		size_t len;

		assert_int_equal(secret_reveal(ro, v, "gh", &val, &len), 0);
		assert_string_equal((const char *)val, "ro-value");
		util_wipe_free(val, len + 1);
	}
	vault_free(v);
	store_close(ro);
}

/* --- leak test --- */

#define NLEAK	50

static int
contains(const uint8_t *hay, size_t haylen, const char *needle)
{
	return hay != NULL && memmem(hay, haylen, needle, strlen(needle)) != NULL;
}

static void
assert_no_leak(const uint8_t *buf, size_t len, char values[NLEAK][65], const char *what)
{
	char hex[2 * 64 + 1], *b64, *p;
	size_t i, vl, j;

	for (i = 0; i < NLEAK; i++) {
		vl = strlen(values[i]);
		if (contains(buf, len, values[i]))
			fail_msg("%s holds value %zu raw", what, i);
		util_hex((const uint8_t *)values[i], vl, hex);
		if (contains(buf, len, hex))
			fail_msg("%s holds value %zu as hex", what, i);
		for (j = 0; hex[j] != '\0'; j++)
			if (hex[j] >= 'a' && hex[j] <= 'f')
				hex[j] = (char)(hex[j] - 'a' + 'A');
		if (contains(buf, len, hex))
			fail_msg("%s holds value %zu as HEX", what, i);
		assert_non_null(b64 = util_b64((const uint8_t *)values[i], vl));
		if ((p = strchr(b64, '=')) != NULL)
			*p = '\0';
		/* Drop the last (partial) quantum: matches the value inside a longer base64 run too. */
		if (strlen(b64) > 8)
			b64[strlen(b64) - 4] = '\0';
		if (contains(buf, len, b64))
			fail_msg("%s holds value %zu as base64", what, i);
		free(b64);
		/* A prefix long enough to be unmistakable. */
		if (vl >= 24 && memmem(buf, len, values[i], 24) != NULL)
			fail_msg("%s holds a prefix of value %zu", what, i);
	}
}

static void
test_leak(void **state)
{
	struct fixture *f = *state;
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
	char values[NLEAK][65], name[32], logpath[160], wal[160];
	uint8_t rnd[64], *dbb = NULL, *walb = NULL, *logb = NULL;
	size_t dbl = 0, wall = 0, logl = 0, i, j, vl;
	sqlite3 *other = NULL;
	int saved, logfd;

	/* Everything logged during the test goes to a file that is searched too. */
	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	assert_true((logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	fflush(stderr);
	assert_true((saved = dup(2)) >= 0);
	assert_int_equal(dup2(logfd, 2), 2);
	log_init("test_vault", LOG_LVL_DEBUG);

	fx_open(f, f->key);
	for (i = 0; i < NLEAK; i++) {
		assert_int_equal(crypto_random(rnd, sizeof(rnd)), 0);
		vl = 32 + rnd[0] % 33;
		for (j = 0; j < vl; j++)
			values[i][j] = alphabet[rnd[j] % (sizeof(alphabet) - 1)];
		values[i][vl] = '\0';
		snprintf(name, sizeof(name), "leak%02zu", i);
		put(f, name, values[i], NULL);
	}
	/* A second connection keeps the WAL from being checkpointed away when we close. */
	assert_int_equal(sqlite3_open_v2(f->db, &other, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "SELECT COUNT(*) FROM secrets", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(vault_rotate_data_key(f->v, f->st, -1, NULL), 0);
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() + 60, NULL), 0);
	for (i = 0; i < NLEAK; i++) {
		snprintf(name, sizeof(name), "leak%02zu", i);
		assert_reveal(f, name, values[i]);
	}
	fx_close(f);

	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	close(logfd);
	log_init("test_vault", LOG_LVL_INFO);

	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	file_bytes(f->db, &dbb, &dbl);
	file_bytes(wal, &walb, &wall);
	file_bytes(logpath, &logb, &logl);
	assert_true(dbl > 0);
	/* The WAL must hold the writes, or searching it proves nothing. */
	assert_true(wall > 32 * 1024);
	assert_true(logl > 0);
	/* the log is really captured (the rotation above logs this) */
	assert_true(contains(logb, logl, "active; re-sealing versions"));
	assert_no_leak(dbb, dbl, values, "database");
	assert_no_leak(walb, wall, values, "WAL");
	assert_no_leak(logb, logl, values, "log");
	sqlite3_close(other);
	free(dbb);
	free(walb);
	free(logb);
	explicit_bzero(values, sizeof(values));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_master_key_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_master_key_missing_or_malformed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_put_reveal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ciphertext_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrapped_key_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_data_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_interrupted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_crash_fork, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_concurrent_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_concurrent_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_after_unapplied_commit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rotate_master_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_signing_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_kek_guard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leak, setup, teardown),
	};

	log_init("test_vault", LOG_LVL_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
