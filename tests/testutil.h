/* testutil.h: helpers shared by the cmocka unit tests. */
#ifndef CB_TESTUTIL_H
#define CB_TESTUTIL_H

#include <stdint.h>

/*
 * Removes a flat directory of test files (at most 1,000 entries) and the directory
 * itself; quiet when it does not exist.
 */
void testutil_rm_dir(const char *dir);

struct store;

/* A fresh database in a temporary directory: the cmocka state of testutil_db_setup. */
struct testutil_db {
	char dir[64];
	char path[128];		/* dir/cb.db, created and migrated */
	struct store *st;	/* open on path */
};
/* cmocka setup/teardown: *state is a struct testutil_db; teardown removes it all. */
int testutil_db_setup(void **state);
int testutil_db_teardown(void **state);

/*
 * Inserts grant n (ID testutil_grant_id(n)) of sandbox sbx, minted by by, created and
 * valid from created, expiring at expires, with max_uses (0: unlimited) and uses,
 * revoked at revoked_at (0: not), no bindings; fails the test when the insert fails.
 */
void testutil_put_grant_full(struct store *st, int n, const char *sbx, const char *by,
    int64_t created, int64_t expires, int64_t max_uses, int64_t uses, int64_t revoked_at);
/* The same, minted by "h", unlimited. */
void testutil_put_grant(struct store *st, int n, const char *sbx, int64_t created,
    int64_t expires, int64_t revoked_at);
/* Grant n's ID: n in 32 hex digits (a static buffer: copy it to keep it). */
const char *testutil_grant_id(int n);
/* Runs SQL on the database file through a connection of its own (behind the store's back). */
void testutil_sql(const char *path, const char *sql);
/*
 * The first column of the first row of a query on the database file, read-only through
 * a connection of its own (it sees committed data only); -1 without a row.
 */
int64_t testutil_sql_int(const char *path, const char *sql);
/*
 * The value of the series `name` (with its labels, exactly as rendered) in a /metrics
 * text exposition, or -1 when it is not there.
 */
long long testutil_metric(const char *text, const char *name);

#endif
