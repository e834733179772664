/*
 * test_grant_purge.c: the grants table clustered by expiry (schema/003): lookups
 * through grant_ids and grant_sandboxes, the range purge of expired grants, the sweep
 * of stale lookup entries, the uses counted in grant_uses (schema/004) and purged with
 * their grants, and the migration of a version-2 database.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "testutil.h"

static int
collect(void *arg, const struct store_grant *g)
{
	int *n = arg;

	(*n)++;
	return g->id != NULL ? 0 : -1;
}

/*
 * Expired grants go from the front of the table, oldest first and in bounded
 * windows; their lookup entries stay (and find nothing) until the sweep, which
 * walks both lookup tables window by window and leaves exactly the entries of the
 * grants that remain.
 */
static void
test_purge_and_sweep(void **state)
{
	struct testutil_db *f = *state;
	struct store_grant_sweep sw;
	struct store_grant *g;
	int64_t now = 1000000, n, total, cnt;
	int i, rounds, seen;

	/* 40 expired across 4 sandboxes and 8 expiry times, 6 live, 2 revoked live */
	for (i = 0; i < 40; i++)
		testutil_put_grant(f->st, i, i % 4 == 0 ? "sa" : i % 4 == 1 ? "sb" :
		    i % 4 == 2 ? "sc" : "sd", now - 1000, now - 500 + i % 8, 0);
	for (i = 40; i < 46; i++)
		testutil_put_grant(f->st, i, i % 2 ? "sa" : "sz", now - 10, now + 500, 0);
	for (i = 46; i < 48; i++)
		testutil_put_grant(f->st, i, "sa", now - 10, now + 500, now - 5);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_ids"), 48);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_sandboxes"), 48);

	/* The range purge: windows of 7, the oldest expiry first. */
	total = 0;
	for (rounds = 0; rounds < 20; rounds++) {
		assert_int_equal(store_grant_purge_expired(f->st, now - 60, 7, &n), 0);
		assert_true(n >= 0 && n <= 7);
		total += n;
		if (n < 7)
			break;
	}
	assert_int_equal(total, 40);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grants"), 8);
	assert_int_equal(testutil_sql_int(f->path, "SELECT min(expires_at) FROM grants"), now + 500);
	/* lookups of purged grants find nothing though their entries are still there */
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_ids"), 48);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(3), &g), CB_ERR_NOTFOUND);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(41), &g), 0);
	store_grant_free(g);
	seen = 0;
	assert_int_equal(store_grant_sandbox_live(f->st, "sa", now, 100, collect, &seen), 0);
	assert_int_equal(seen, 3);	/* 41, 43, 45: not the purged, not the revoked */
	assert_int_equal(store_grant_revoke_sandbox(f->st, "sb", NULL, now, &n), 0);
	assert_int_equal(n, 0);	/* sb's grants are all gone */

	/* The sweep, windows of 5, bounded. */
	memset(&sw, 0, sizeof(sw));
	total = 0;
	for (rounds = 0; rounds < 100 && sw.phase != STORE_SWEEP_DONE; rounds++) {
		assert_int_equal(store_grant_sweep(f->st, &sw, now - 60, 5, &n), 0);
		assert_true(n >= 0 && n <= 5);
		total += n;
	}
	assert_int_equal(sw.phase, STORE_SWEEP_DONE);
	assert_true(rounds >= 2 * 48 / 5);	/* it did walk both tables in windows */
	store_grant_sweep_reset(&sw);
	assert_int_equal(total, 80);
	cnt = testutil_sql_int(f->path, "SELECT count(*) FROM grant_ids");
	assert_int_equal(cnt, 8);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_sandboxes"), 8);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grants g JOIN grant_ids i"
	    " ON i.id = g.id AND i.expires_at = g.expires_at"), 8);
	/* the live ones are still found both ways */
	for (i = 40; i < 48; i++) {
		assert_int_equal(store_grant_get(f->st, testutil_grant_id(i), &g), 0);
		store_grant_free(g);
	}
	seen = 0;
	assert_int_equal(store_grant_sandbox_live(f->st, "sz", now, 100, collect, &seen), 0);
	assert_int_equal(seen, 3);
	assert_int_equal(store_grant_revoke_sandbox(f->st, "sz", NULL, now, &n), 0);
	assert_int_equal(n, 3);
	/* a sweep with nothing stale deletes nothing */
	memset(&sw, 0, sizeof(sw));
	for (rounds = 0; rounds < 10 && sw.phase != STORE_SWEEP_DONE; rounds++) {
		assert_int_equal(store_grant_sweep(f->st, &sw, now - 60, 1000, &n), 0);
		assert_int_equal(n, 0);
	}
	assert_int_equal(sw.phase, STORE_SWEEP_DONE);
	store_grant_sweep_reset(&sw);
}

/*
 * Many grants that expire in the same second: the range purge still goes by windows,
 * and a window's DELETE visits its own rows only (bench run 020aae2: a bound of
 * "expires_at < before AND (expires_at, id) <= end" walked all 1,000,000 rows of a
 * cohort on every batch of 16).
 */
static void
test_purge_same_second(void **state)
{
	struct testutil_db *f = *state;
	int64_t now = 2000000, n, total = 0;
	int i, rounds;

	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < 5000; i++)
		testutil_put_grant(f->st, i, "s", now - 900, now - 100, 0);
	testutil_put_grant(f->st, 5000, "s", now - 900, now - 30, 0);	/* within the grace */
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_grant_purge_expired(f->st, now - 60, 10, &n), 0);
	assert_int_equal(n, 10);
	assert_in_range(store_last_steps(f->st), 1, 2000);	/* not ~5,000 rows walked */
	total = n;
	for (rounds = 0; rounds < 10; rounds++) {
		assert_int_equal(store_grant_purge_expired(f->st, now - 60, 1280, &n), 0);
		assert_true(n <= 1280);
		total += n;
		if (n < 1280)
			break;
	}
	assert_int_equal(rounds, 3);	/* 10 + 1280 + 1280 + 1280 + 1150 */
	assert_int_equal(total, 5000);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grants"), 1);
}

/*
 * Uses counted in grant_uses (schema/004: grants with a use limit) go with their
 * grants: the expired ones with the range purge, a revoked one with the purge of
 * revoked grants; a live grant keeps its count, and every read sees it.
 */
static void
test_purge_uses(void **state)
{
	struct testutil_db *f = *state;
	struct store_grant *g;
	int64_t now = 3000000, n, total = 0;
	int i, j, res, rounds, seen = 0;

	for (i = 0; i < 30; i++)	/* expired, each used i % 3 + 1 times while live */
		testutil_put_grant_full(f->st, i, "sx", "h", now - 1000, now - 500 + i % 4,
		    100, 0, 0);
	for (i = 30; i < 33; i++)
		testutil_put_grant_full(f->st, i, "sy", "h", now - 10, now + 500, 100, 0, 0);
	for (i = 0; i < 33; i++) {
		for (j = 0; j < i % 3 + 1; j++) {
			assert_int_equal(store_grant_use(f->st, testutil_grant_id(i),
			    i < 30 ? now - 500 + i % 4 : now + 500, i < 30 ? now - 900 : now, &res), 0);
			assert_int_equal(res, STORE_GRANT_USED);
		}
	}
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 33);
	assert_int_equal(testutil_sql_int(f->path, "SELECT sum(uses) FROM grant_uses"), 66);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(31), &g), 0);
	assert_int_equal(g->uses, 2);
	store_grant_free(g);
	assert_int_equal(store_grant_revoke(f->st, testutil_grant_id(32), now - 100, &i), 0);
	assert_int_equal(i, 1);

	for (rounds = 0; rounds < 10; rounds++) {
		assert_int_equal(store_grant_purge_expired(f->st, now - 60, 8, &n), 0);
		total += n;
		if (n < 8)
			break;
	}
	assert_int_equal(total, 30);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 3);
	assert_int_equal(store_grant_purge_revoked_indexed(f->st, now - 60, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 2);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses u JOIN grants g"
	    " ON g.expires_at = u.expires_at AND g.id = u.id"), 2);
	assert_int_equal(store_grant_sandbox_live(f->st, "sy", now, 100, collect, &seen), 0);
	assert_int_equal(seen, 2);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(30), &g), 0);
	assert_int_equal(g->uses, 1);
	store_grant_free(g);
}

/* Uses of grant n at now, each counted. */
static void
use_n(struct store *st, int n, int64_t expires_at, int64_t now, int times)
{
	int i, res;

	for (i = 0; i < times; i++) {
		assert_int_equal(store_grant_use(st, testutil_grant_id(n), expires_at, now, &res),
		    0);
		assert_int_equal(res, STORE_GRANT_USED);
	}
}

static int64_t
uses_of(struct store *st, int n, int all)
{
	struct store_grant *g;
	int64_t uses;

	assert_int_equal((all ? store_grant_get_uses : store_grant_get)(st,
	    testutil_grant_id(n), &g), 0);
	uses = g->uses;
	store_grant_free(g);
	return uses;
}

/*
 * Uses of unlimited grants are appended to grant_use_log (schema/005) and folded into
 * grant_uses once the log holds STORE_USE_LOG_FOLD rows: every use counted once, the
 * row a fold leaves for a grant purged meanwhile deleted by the next purge, limited
 * grants counted at once throughout.
 */
static void
test_use_log_fold(void **state)
{
	struct testutil_db *f = *state;
	int64_t now = 3000000, n;

	testutil_put_grant(f->st, 1, "s1", now - 10, now + 500, 0);
	testutil_put_grant(f->st, 2, "s1", now - 10, now + 600, 0);
	testutil_put_grant_full(f->st, 3, "s1", "h", now - 10, now + 500, 10000, 0, 0);
	testutil_put_grant(f->st, 4, "s1", now - 10, now + 5, 0);	/* purged below */
	assert_int_equal(store_begin(f->st), 0);
	use_n(f->st, 2, now + 600, now, 1);
	use_n(f->st, 4, now + 5, now, 1);
	use_n(f->st, 3, now + 500, now, 2);
	use_n(f->st, 1, now + 500, now, STORE_USE_LOG_FOLD - 3);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(store_grant_purge_expired(f->st, now + 100, 10, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_use_log"),
	    STORE_USE_LOG_FOLD - 1);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 1);
	assert_int_equal(uses_of(f->st, 1, 1), STORE_USE_LOG_FOLD - 3);
	assert_int_equal(uses_of(f->st, 1, 0), 0);
	assert_int_equal(uses_of(f->st, 3, 0), 2);
	assert_int_equal(uses_of(f->st, 3, 1), 2);

	use_n(f->st, 1, now + 500, now, 1);	/* the log's STORE_USE_LOG_FOLD-th row: fold */
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_use_log"), 0);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 4);
	assert_int_equal(testutil_sql_int(f->path, "SELECT sum(uses) FROM grant_uses"),
	    STORE_USE_LOG_FOLD - 2 + 1 + 2 + 1);
	assert_int_equal(store_grant_purge_expired(f->st, now + 100, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grant_uses"), 3);
	assert_int_equal(testutil_sql_int(f->path, "SELECT sum(uses) FROM grant_uses"),
	    STORE_USE_LOG_FOLD - 2 + 1 + 2);
	assert_int_equal(uses_of(f->st, 1, 0), STORE_USE_LOG_FOLD - 2);
	assert_int_equal(uses_of(f->st, 1, 1), STORE_USE_LOG_FOLD - 2);
	assert_int_equal(uses_of(f->st, 2, 1), 1);
	assert_int_equal(uses_of(f->st, 3, 1), 2);

	/* The log starts again from its first row; folded and new uses add up. */
	use_n(f->st, 2, now + 600, now, 2);
	assert_int_equal(testutil_sql_int(f->path, "SELECT max(seq) FROM grant_use_log"), 2);
	assert_int_equal(uses_of(f->st, 2, 1), 3);
	assert_int_equal(uses_of(f->st, 2, 0), 1);
}

/* IDs stay unique (grant_ids' primary key), whatever the expiry. */
static void
test_unique_ids(void **state)
{
	struct testutil_db *f = *state;
	struct store_grant g;
	char id[40];

	testutil_put_grant(f->st, 7, "s", 100, 200, 0);
	snprintf(id, sizeof(id), "%s", testutil_grant_id(7));
	memset(&g, 0, sizeof(g));
	g.id = id;
	g.sandbox_id = (char *)(uintptr_t)"t";
	g.minted_by = (char *)(uintptr_t)"h";
	g.kid = (char *)(uintptr_t)"k";
	g.created_at = 100;
	g.not_before = 100;
	g.expires_at = 300;	/* another key in grants, the same ID */
	g.bindings = (char *)(uintptr_t)"[]";
	assert_int_equal(store_grant_insert(f->st, &g), CB_ERR_EXISTS);
	assert_int_equal(testutil_sql_int(f->path, "SELECT count(*) FROM grants"), 1);
}

/* A version-2 database (grants keyed by id) migrates with its grants and their lookups. */
static void
test_migrate_v2(void **state)
{
	struct testutil_db *f = *state;
	struct store_grant *g;
	struct store *st = NULL;
	sqlite3 *db = NULL;
	char path[128], why[256], sql[512];
	int i, seen = 0;
	int64_t n;

	(void)f;
	snprintf(path, sizeof(path), "%s/v2.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	for (i = 0; i < schema_migration_count && schema_migrations[i].version <= 2; i++)
		assert_int_equal(sqlite3_exec(db, schema_migrations[i].sql, NULL, NULL, NULL),
		    SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL),
	    SQLITE_OK);
	for (i = 0; i < 5; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO grants (id, sandbox_id, minted_by, kid,"
		    " created_at, not_before, expires_at, bindings) VALUES"
		    " ('%s', 'old', 'h', 'k', 10, 10, %lld, '[]')", testutil_grant_id(i),
		    i < 2 ? 50LL : 4000000000LL - i);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_close(db);
	assert_int_equal(store_open(path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(store_schema_version(st, &i), 0);
	assert_int_equal(i, schema_migrations[schema_migration_count - 1].version);
	for (i = 0; i < 5; i++) {
		assert_int_equal(store_grant_get(st, testutil_grant_id(i), &g), 0);
		assert_string_equal(g->sandbox_id, "old");
		store_grant_free(g);
	}
	assert_int_equal(store_grant_sandbox_live(st, "old", 100, 100, collect, &seen), 0);
	assert_int_equal(seen, 3);
	assert_int_equal(store_grant_purge_expired(st, 100, 10, &n), 0);
	assert_int_equal(n, 2);
	/* new grants next to the migrated ones */
	testutil_put_grant(st, 9, "old", 20, 3000000000, 0);
	seen = 0;
	assert_int_equal(store_grant_sandbox_live(st, "old", 100, 100, collect, &seen), 0);
	assert_int_equal(seen, 4);
	store_close(st);
}

int main(void);

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_purge_and_sweep, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_purge_same_second, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_purge_uses, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_use_log_fold, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_unique_ids, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, testutil_db_setup,
		    testutil_db_teardown),
	};

	log_init("test_grant_purge", LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
