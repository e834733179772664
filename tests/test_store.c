/*
 * test_store.c: the SQLite store core: pragmas, migrations, refusal of newer,
 * foreign and damaged databases (left byte-for-byte unchanged), read-only opens,
 * transactions, meta, key rows, secret rows, the statement cache, the reader pool and
 * the page cache's truncations.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "schema.h"
#include "store.h"
#include "store_int.h"
#include "testutil.h"
#include "util.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *st;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	util_strlcpy(f->dir, "/tmp/cbtest-store-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	testutil_rm_dir(f->dir);
	free(f);
	return 0;
}

static int
known_version(void)
{
	int i, v = 0;

	for (i = 0; i < schema_migration_count; i++)
		if (schema_migrations[i].version > v)
			v = schema_migrations[i].version;
	return v;
}

static void
open_new(struct fixture *f)
{
	char why[512];

	assert_int_equal(store_open(f->path, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	assert_non_null(f->st);
}

static void
read_bytes(const char *path, uint8_t **buf, size_t *len)
{
	assert_int_equal(util_read_file(path, 64 << 20, buf, len), 0);
}

static int
raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* store_cache_kib sets this connection's page cache, in KiB (commit.c's writer). */
static void
test_cache_kib(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *s = NULL;

	open_new(f);
	assert_int_equal(store_cache_kib(f->st, 16384), 0);
	assert_int_equal(sqlite3_prepare_v2(f->st->db, "PRAGMA cache_size", -1, &s, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), -16384);
	sqlite3_finalize(s);
}

/*
 * SQLite runs without memory statistics (store_open configures it before SQLite's first
 * use): with them, every allocation of every connection took one process-wide mutex.
 * Without them SQLite counts nothing, so the memory in use reads 0 while a store is open.
 */
static void
test_no_memstatus(void **state)
{
	struct fixture *f = *state;

	open_new(f);
	assert_int_equal(raw_int(f->st->db, "SELECT count(*) FROM grants"), 0);
	assert_int_equal(sqlite3_memory_used(), 0);
}

static void
test_open_migrates(void **state)
{
	struct fixture *f = *state;
	char why[512];
	int ver = -1;

	open_new(f);
	assert_int_equal(store_schema_version(f->st, &ver), 0);
	assert_int_equal(ver, known_version());
	assert_true(ver >= 1);
	assert_string_equal(store_path(f->st), f->path);
	{
		struct stat sb;

		assert_int_equal(stat(f->path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	assert_int_equal(store_readonly(f->st), 0);
	/* Pragmas as required. */
	assert_int_equal(raw_int(f->st->db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(raw_int(f->st->db, "PRAGMA synchronous"), 2);	/* FULL */
	{
		sqlite3_stmt *s;

		assert_int_equal(sqlite3_prepare_v2(f->st->db, "PRAGMA journal_mode", -1, &s,
		    NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
	}
	/* Every table of 001 exists. */
	assert_int_equal(raw_int(f->st->db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = "
	    "'table' AND name IN ('meta','data_keys','signing_keys','secrets',"
	    "'secret_versions','grants','audit')"), 7);
	assert_int_equal(store_integrity_check(f->st), 0);
	store_close(f->st);
	f->st = NULL;
	/* Reopening is idempotent. */
	assert_int_equal(store_open(f->path, 0, &f->st, why, sizeof(why)), 0);
	assert_int_equal(store_schema_version(f->st, &ver), 0);
	assert_int_equal(ver, known_version());
}

static void
test_missing_without_create(void **state)
{
	struct fixture *f = *state;
	char why[512];

	assert_int_equal(store_open(f->path, 0, &f->st, why, sizeof(why)), CB_ERR_IO);
	assert_null(f->st);
	assert_non_null(strstr(why, f->path));
	assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_newer_version_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t *before = NULL, *after = NULL;
	size_t blen, alen;
	char why[512], want[64];
	sqlite3 *db;
	int flags[] = { 0, STORE_READONLY, STORE_CREATE };
	size_t i;

	open_new(f);
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	read_bytes(f->path, &before, &blen);
	for (i = 0; i < UTIL_ARRAY_LEN(flags); i++) {
		why[0] = '\0';
		assert_int_equal(store_open(f->path, flags[i], &f->st, why, sizeof(why)),
		    CB_ERR_VERSION);
		assert_null(f->st);
		assert_non_null(strstr(why, f->path));
		assert_non_null(strstr(why, "999"));
		snprintf(want, sizeof(want), "%d", known_version());
		assert_non_null(strstr(why, want));
	}
	read_bytes(f->path, &after, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(before);
	free(after);
}

static void
test_garbage_refused(void **state)
{
	struct fixture *f = *state;
	static const char *contents[] = {
		"this is not a database at all, it is a text file\n",
		"SQLite",	/* too short to be a header */
		"SQLite format 2\0garbage garbage garbage garbage",
	};
	static const size_t lens[] = { 50, 6, 48 };
	uint8_t *after = NULL;
	size_t alen, i;
	char why[512];

	for (i = 0; i < UTIL_ARRAY_LEN(contents); i++) {
		unlink(f->path);
		assert_int_equal(util_write_file(f->path, contents[i], lens[i], 0600), 0);
		assert_int_equal(store_open(f->path, STORE_CREATE, &f->st, why, sizeof(why)),
		    CB_ERR_CORRUPT);
		assert_null(f->st);
		assert_non_null(strstr(why, f->path));
		read_bytes(f->path, &after, &alen);
		assert_int_equal(alen, lens[i]);
		assert_memory_equal(after, contents[i], lens[i]);
		free(after);
	}
}

/* A real SQLite header with damaged pages after it: quick_check fails, nothing is written. */
static void
test_damaged_refused(void **state)
{
	struct fixture *f = *state;
	uint8_t *before = NULL, *after = NULL, *buf = NULL;
	size_t blen, alen, len, i;
	char why[512];
	sqlite3 *db;

	open_new(f);
	assert_int_equal(store_exec(f->st, "CREATE TABLE filler (x BLOB)"), 0);
	for (i = 0; i < 50; i++)
		assert_int_equal(store_exec(f->st,
		    "INSERT INTO filler VALUES (randomblob(1000))"), 0);
	store_close(f->st);
	f->st = NULL;
	/* Back to rollback-journal mode so the file alone is the database. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	read_bytes(f->path, &buf, &len);
	assert_true(len > 8192);
	/* Overwrite everything after page 1 (keep the 4096-byte first page). */
	for (i = 4096; i < len; i++)
		buf[i] = (uint8_t)(0x5a ^ i);
	unlink(f->path);
	assert_int_equal(util_write_file(f->path, buf, len, 0600), 0);
	free(buf);
	read_bytes(f->path, &before, &blen);
	assert_int_equal(store_open(f->path, 0, &f->st, why, sizeof(why)), CB_ERR_CORRUPT);
	assert_null(f->st);
	assert_non_null(strstr(why, f->path));
	read_bytes(f->path, &after, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(before);
	free(after);
}

/*
 * A database that cannot be read because the file system is full (here: a file-size
 * limit, so that SQLite cannot size its -shm file) is not called damaged or "not a
 * readable SQLite database": the operator would restore a backup for nothing.
 */
static void
test_full_fs_not_damaged(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, lim;
	char why[512];
	int rc;

	open_new(f);
	store_close(f->st);	/* the last connection: the -wal and -shm files go */
	f->st = NULL;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024;	/* smaller than the -shm file SQLite must make */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	rc = store_open(f->path, 0, &f->st, why, sizeof(why));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, CB_ERR_IO);
	assert_null(f->st);
	assert_non_null(strstr(why, f->path));
	assert_null(strstr(why, "damaged"));
	assert_null(strstr(why, "not a readable"));
	assert_non_null(strstr(why, "full"));
	/* With the space back, it opens. */
	open_new(f);
}

static void
test_readonly(void **state)
{
	struct fixture *f = *state;
	struct store *ro = NULL;
	uint8_t *before = NULL, *after = NULL, *val = NULL;
	size_t blen, alen, vlen;
	char why[512];
	sqlite3 *db;

	/* A database that is not migrated yet is not migrated by a read-only open. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	read_bytes(f->path, &before, &blen);
	assert_int_equal(store_open(f->path, STORE_READONLY, &ro, why, sizeof(why)),
	    CB_ERR_VERSION);
	assert_null(ro);
	read_bytes(f->path, &after, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(before);
	free(after);
	unlink(f->path);

	open_new(f);
	assert_int_equal(store_meta_set(f->st, "k", "v", 1), 0);
	assert_int_equal(store_open(f->path, STORE_READONLY, &ro, why, sizeof(why)), 0);
	assert_int_equal(store_readonly(ro), 1);
	assert_int_equal(store_meta_get(ro, "k", &val, &vlen), 0);
	assert_int_equal(vlen, 1);
	assert_memory_equal(val, "v", 1);
	free(val);
	assert_int_not_equal(store_meta_set(ro, "k2", "v", 1), 0);
	store_close(ro);
	assert_int_equal(store_open(f->path, STORE_READONLY | STORE_CREATE, &ro, why,
	    sizeof(why)), CB_ERR_INVAL);
	assert_null(ro);
}

/* The schema as the migrations make it, and every way of changing it, refused. */
static void
test_schema_check(void **state)
{
	static const char *const changes[] = {
		"CREATE TRIGGER t_x AFTER INSERT ON audit BEGIN DELETE FROM grants; END",
		"CREATE VIEW v_x AS SELECT 1",
		"CREATE INDEX i_x ON audit(actor)",
		"CREATE TABLE t_x (x)",
		"ALTER TABLE audit RENAME TO audit_real; CREATE VIEW audit AS SELECT * FROM audit_real",
		"DROP TRIGGER grants_lookup_insert",
		"DROP TRIGGER grants_lookup_insert; CREATE TRIGGER grants_lookup_insert AFTER INSERT"
		" ON grants BEGIN SELECT 1; END",
		"ALTER TABLE meta ADD COLUMN x BLOB",
	};
	struct fixture *f = *state;
	char why[512];
	size_t i;

	for (i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		open_new(f);
		assert_int_equal(store_schema_check(f->st, why, sizeof(why)), 0);
		testutil_sql(f->path, changes[i]);
		why[0] = '\0';
		if (store_schema_check(f->st, why, sizeof(why)) != CB_ERR_CORRUPT)
			fail_msg("not refused: %s", changes[i]);
		if (strstr(why, "schema is not credbroker's") == NULL)
			fail_msg("why: %s", why);
		store_close(f->st);
		f->st = NULL;
		unlink(f->path);
	}
	/* ANALYZE's tables are SQLite's own: not a change. */
	open_new(f);
	testutil_sql(f->path, "ANALYZE");
	assert_int_equal(store_schema_check(f->st, why, sizeof(why)), 0);
}

static void
test_meta(void **state)
{
	struct fixture *f = *state;
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0 };
	uint8_t *val = NULL;
	size_t len = 99;

	open_new(f);
	assert_int_equal(store_meta_get(f->st, "absent", &val, &len), CB_ERR_NOTFOUND);
	assert_null(val);
	assert_int_equal(len, 0);
	assert_int_equal(store_meta_set(f->st, "x", bin, sizeof(bin)), 0);
	assert_int_equal(store_meta_get(f->st, "x", &val, &len), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(val, bin, sizeof(bin));
	free(val);
	assert_int_equal(store_meta_set(f->st, "x", "new", 3), 0);
	assert_int_equal(store_meta_get(f->st, "x", &val, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(val, "new", 3);
	free(val);
	assert_int_equal(store_meta_set(f->st, "empty", NULL, 0), 0);
	assert_int_equal(store_meta_get(f->st, "empty", &val, &len), 0);
	assert_int_equal(len, 0);
	free(val);
	assert_int_equal(store_meta_del(f->st, "x"), 0);
	assert_int_equal(store_meta_get(f->st, "x", &val, &len), CB_ERR_NOTFOUND);
}

static void
test_transactions(void **state)
{
	struct fixture *f = *state;
	uint8_t *val = NULL;
	size_t len;

	open_new(f);
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_meta_set(f->st, "a", "1", 1), 0);
	assert_int_equal(store_rollback(f->st), 0);
	assert_int_equal(store_meta_get(f->st, "a", &val, &len), CB_ERR_NOTFOUND);

	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_meta_set(f->st, "a", "1", 1), 0);
	assert_int_equal(store_savepoint(f->st), 0);
	assert_int_equal(store_meta_set(f->st, "b", "2", 1), 0);
	assert_int_equal(store_savepoint_rollback(f->st), 0);
	assert_int_equal(store_savepoint(f->st), 0);
	assert_int_equal(store_meta_set(f->st, "c", "3", 1), 0);
	assert_int_equal(store_savepoint_release(f->st), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_meta_get(f->st, "a", &val, &len), 0);
	free(val);
	assert_int_equal(store_meta_get(f->st, "b", &val, &len), CB_ERR_NOTFOUND);
	assert_int_equal(store_meta_get(f->st, "c", &val, &len), 0);
	free(val);
	/* Rolling back with no transaction open is harmless. */
	assert_int_equal(store_rollback(f->st), 0);
}

static void
test_keys_rows(void **state)
{
	struct fixture *f = *state;
	struct store_key *keys = NULL;
	size_t n = 0;
	int64_t id1, id2;

	open_new(f);
	assert_int_equal(store_data_key_insert(f->st, (const uint8_t *)"w1", 2, "active", &id1), 0);
	assert_int_equal(store_data_key_insert(f->st, (const uint8_t *)"w2", 2, "retiring", &id2),
	    0);
	assert_true(id2 > id1);
	assert_int_equal(store_data_key_insert(f->st, (const uint8_t *)"w3", 2, "bogus", &id2),
	    CB_ERR_DB);	/* CHECK constraint */
	assert_int_equal(store_data_key_update(f->st, id1, (const uint8_t *)"W1", 2, "retired"),
	    0);
	assert_int_equal(store_data_key_update(f->st, 9999, (const uint8_t *)"x", 1, "retired"),
	    CB_ERR_NOTFOUND);
	assert_int_equal(store_data_keys_list(f->st, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(keys[0].id, id1);
	assert_string_equal(keys[0].state, "retired");
	assert_int_equal(keys[0].wrapped_len, 2);
	assert_memory_equal(keys[0].wrapped, "W1", 2);
	assert_string_equal(keys[1].state, "retiring");
	store_keys_free(keys, n);

	assert_int_equal(store_signing_key_insert(f->st, "k0123456789abcdef",
	    (const uint8_t *)"s1", 2, "active", 0), 0);
	assert_int_equal(store_signing_key_insert(f->st, "k0123456789abcdef",
	    (const uint8_t *)"s1", 2, "active", 0), CB_ERR_EXISTS);
	assert_int_equal(store_signing_key_update(f->st, "k0123456789abcdef",
	    (const uint8_t *)"s2", 2, "verify", 12345), 0);
	assert_int_equal(store_signing_keys_list(f->st, &keys, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].kid, "k0123456789abcdef");
	assert_string_equal(keys[0].state, "verify");
	assert_int_equal(keys[0].retire_after, 12345);
	assert_memory_equal(keys[0].wrapped, "s2", 2);
	store_keys_free(keys, n);
}

static void
test_secret_rows(void **state)
{
	struct fixture *f = *state;
	struct store_secret *s = NULL, **list = NULL;
	struct store_version_ref *refs = NULL;
	uint8_t *ct = NULL;
	size_t n = 0, ctlen, i;
	int64_t k1, k2, kid, cnt;
	char name[32];

	open_new(f);
	assert_int_equal(store_data_key_insert(f->st, (const uint8_t *)"w", 1, "active", &k1), 0);
	assert_int_equal(store_data_key_insert(f->st, (const uint8_t *)"w", 1, "active", &k2), 0);
	assert_int_equal(store_secret_get(f->st, "gh", &s), CB_ERR_NOTFOUND);
	/* A version without its secret row violates the foreign key. */
	assert_int_not_equal(store_secret_version_insert(f->st, "gh", 1, k1,
	    (const uint8_t *)"c", 1, 10), 0);
	assert_int_equal(store_secret_upsert(f->st, "gh", "[\"a.example\"]", 60, 1, 10), 0);
	assert_int_equal(store_secret_version_insert(f->st, "gh", 1, k1,
	    (const uint8_t *)"ct1", 3, 10), 0);
	assert_int_equal(store_secret_version_insert(f->st, "gh", 1, k1,
	    (const uint8_t *)"ct1", 3, 10), CB_ERR_EXISTS);
	assert_int_equal(store_secret_upsert(f->st, "gh", "[\"b.example\"]", 120, 2, 20), 0);
	assert_int_equal(store_secret_version_insert(f->st, "gh", 2, k1,
	    (const uint8_t *)"ct2", 3, 20), 0);
	assert_int_equal(store_secret_get(f->st, "gh", &s), 0);
	assert_string_equal(s->name, "gh");
	assert_string_equal(s->hosts_json, "[\"b.example\"]");
	assert_int_equal(s->max_ttl_s, 120);
	assert_int_equal(s->current_version, 2);
	assert_int_equal(s->created_at, 10);
	assert_int_equal(s->updated_at, 20);
	store_secret_free(s);
	assert_int_equal(store_secret_version_get(f->st, "gh", 1, &kid, &ct, &ctlen), 0);
	assert_int_equal(kid, k1);
	assert_int_equal(ctlen, 3);
	assert_memory_equal(ct, "ct1", 3);
	free(ct);
	assert_int_equal(store_secret_version_get(f->st, "gh", 3, &kid, &ct, &ctlen),
	    CB_ERR_NOTFOUND);

	/* 250 more versions under k1, then page through them by key. */
	for (i = 0; i < 250; i++) {
		snprintf(name, sizeof(name), "s%03zu", i);
		assert_int_equal(store_secret_upsert(f->st, name, "[]", 60, 1, 1), 0);
		assert_int_equal(store_secret_version_insert(f->st, name, 1, k1,
		    (const uint8_t *)"x", 1, 1), 0);
	}
	assert_int_equal(store_secret_versions_count_by_key(f->st, k1, &cnt), 0);
	assert_int_equal(cnt, 252);
	assert_int_equal(store_secret_versions_by_key(f->st, k1, 100, &refs, &n), 0);
	assert_int_equal(n, 100);
	for (i = 0; i < n; i++) {
		assert_int_equal(refs[i].key_id, k1);
		assert_int_equal(store_secret_version_reseal(f->st, refs[i].name, refs[i].version,
		    k1, k2, (const uint8_t *)"y", 1), 0);
		/* The guard on the old key: a second reseal finds nothing. */
		assert_int_equal(store_secret_version_reseal(f->st, refs[i].name, refs[i].version,
		    k1, k2, (const uint8_t *)"z", 1), CB_ERR_NOTFOUND);
	}
	store_version_refs_free(refs, n);
	assert_int_equal(store_secret_versions_count_by_key(f->st, k1, &cnt), 0);
	assert_int_equal(cnt, 152);
	assert_int_equal(store_secret_versions_count_by_key(f->st, k2, &cnt), 0);
	assert_int_equal(cnt, 100);

	assert_int_equal(store_secret_list(f->st, &list, &n), 0);
	assert_int_equal(n, 251);
	assert_string_equal(list[0]->name, "gh");
	assert_string_equal(list[1]->name, "s000");
	for (i = 0; i < n; i++)
		store_secret_free(list[i]);
	free(list);

	/* Delete cascades to the versions. */
	assert_int_equal(store_secret_delete(f->st, "gh"), 0);
	assert_int_equal(store_secret_delete(f->st, "gh"), CB_ERR_NOTFOUND);
	assert_int_equal(store_secret_version_get(f->st, "gh", 1, &kid, &ct, &ctlen),
	    CB_ERR_NOTFOUND);
	assert_int_equal(raw_int(f->st->db,
	    "SELECT COUNT(*) FROM secret_versions WHERE name = 'gh'"), 0);
}

static void
test_stmt_cache(void **state)
{
	struct fixture *f = *state;
	sqlite3_stmt *a, *b;

	open_new(f);
	a = store_stmt(f->st, STORE_STMT_AUDIT + 5, "SELECT 1");
	assert_non_null(a);
	b = store_stmt(f->st, STORE_STMT_AUDIT + 5, "SELECT 1");
	assert_ptr_equal(a, b);
	assert_null(store_stmt(f->st, STORE_STMT_AUDIT + 5, "SELECT 2"));
	assert_null(store_stmt(f->st, STORE_STMT_MAX, "SELECT 1"));
	assert_null(store_stmt(f->st, -1, "SELECT 1"));
	assert_null(store_stmt(f->st, STORE_STMT_GRANT, "SELECT FROM nonsense"));
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	store_stmt_done(a);
}

/*
 * Inserts rows k = first .. first + n - 1 into pc in one transaction, committed or
 * rolled back; the values scatter over pc's index (no RNG: the same splits every run).
 */
static void
pc_insert(struct store *st, int first, int n, int commit)
{
	sqlite3_stmt *s = NULL;
	char v[96];
	int k;

	assert_int_equal(store_begin(st), 0);
	assert_int_equal(sqlite3_prepare_v2(st->db, "INSERT INTO pc(k, v) VALUES (?1, ?2)",
	    -1, &s, NULL), SQLITE_OK);
	for (k = first; k < first + n; k++) {
		snprintf(v, sizeof(v), "%010u-%060d",
		    (unsigned int)(((uint64_t)k * 2654435761u) % 4294967291u), k);
		sqlite3_bind_int(s, 1, k);
		sqlite3_bind_text(s, 2, v, -1, SQLITE_TRANSIENT);
		assert_int_equal(sqlite3_step(s), SQLITE_DONE);
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	assert_int_equal(commit ? store_commit(st) : store_rollback(st), 0);
}

/*
 * The page cache (store_pcache.c). Each transaction's end truncates the cache at the
 * database's size. A B-tree split that reorders its pages parks one at the pending-byte
 * page, and SQLite's cache then scanned all its buckets at every commit of a database
 * under 1 GiB. Those truncations are skipped; one that must drop pages (a rolled-back
 * transaction grew the file) is passed on, and the pages it drops are never read again.
 */
static void
test_pcache_truncations(void **state)
{
	struct fixture *f = *state;
	uint64_t passed[3], skipped[3], parked[3];
	int i;

	open_new(f);
	assert_int_equal(store_cache_kib(f->st, 16384), 0);
	assert_int_equal(store_exec(f->st, "CREATE TABLE pc(k INTEGER PRIMARY KEY, v TEXT);"
	    "CREATE INDEX pc_v ON pc(v)"), 0);
	store_pcache_stats(&passed[0], &skipped[0], &parked[0]);
	for (i = 0; i < 40; i++)
		pc_insert(f->st, 1 + i * 250, 250, 1);
	store_pcache_stats(&passed[1], &skipped[1], &parked[1]);
	assert_true(parked[1] > parked[0]);		/* the case arose */
	assert_true(skipped[1] - skipped[0] >= 40);	/* every commit's truncation */
	assert_true(passed[1] == passed[0]);		/* the file only grew */

	pc_insert(f->st, 20001, 5000, 0);
	store_pcache_stats(&passed[2], &skipped[2], &parked[2]);
	assert_true(passed[2] > passed[1]);		/* the rollback's pages dropped */
	pc_insert(f->st, 10001, 5000, 1);
	assert_int_equal(store_integrity_check(f->st), 0);
	assert_int_equal(raw_int(f->st->db, "SELECT count(*) FROM pc"), 40 * 250 + 5000);
	assert_int_equal(raw_int(f->st->db, "SELECT count(*) FROM pc WHERE "
	    "substr(v, 12) <> printf('%060d', k)"), 0);
}

struct pool_arg {
	struct store_pool *pool;
	struct store *got[2];
};

static void *
pool_thread(void *p)
{
	struct pool_arg *a = p;

	a->got[0] = store_pool_get(a->pool);
	a->got[1] = store_pool_get(a->pool);
	return NULL;
}

static void
test_pool(void **state)
{
	struct fixture *f = *state;
	struct store_pool *pool = NULL;
	struct pool_arg a[3];
	pthread_t th[3];
	uint8_t *val = NULL;
	size_t len, i, j;

	open_new(f);
	assert_int_equal(store_meta_set(f->st, "p", "q", 1), 0);
	assert_int_equal(store_pool_new(f->path, &pool), 0);
	memset(a, 0, sizeof(a));
	for (i = 0; i < 3; i++) {
		a[i].pool = pool;
		assert_int_equal(pthread_create(&th[i], NULL, pool_thread, &a[i]), 0);
	}
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (i = 0; i < 3; i++) {
		assert_non_null(a[i].got[0]);
		assert_ptr_equal(a[i].got[0], a[i].got[1]);
		for (j = 0; j < i; j++)
			assert_ptr_not_equal(a[i].got[0], a[j].got[0]);
		/* Connections stay usable after their thread ended. */
		assert_int_equal(store_meta_get(a[i].got[0], "p", &val, &len), 0);
		free(val);
	}
	store_pool_free(pool);
	store_pool_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_memstatus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_kib, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_without_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_fs_not_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stmt_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pcache_truncations, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
