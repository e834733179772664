/* testutil.c: helpers shared by the cmocka unit tests (see testutil.h). */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "testutil.h"

void
testutil_rm_dir(const char *dir)
{
	struct dirent *de;
	char p[512];
	DIR *d;
	int i;

	if ((d = opendir(dir)) == NULL)
		return;
	/* Flat directory of test files; bounded anyway. */
	for (i = 0; i < 1000 && (de = readdir(d)) != NULL; i++) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

const char *
testutil_grant_id(int n)
{
	static char id[40];

	snprintf(id, sizeof(id), "%032x", n);
	return id;
}

void
testutil_put_grant_full(struct store *st, int n, const char *sbx, const char *by,
    int64_t created, int64_t expires, int64_t max_uses, int64_t uses, int64_t revoked_at)
{
	struct store_grant g;
	char id[40];

	snprintf(id, sizeof(id), "%s", testutil_grant_id(n));
	memset(&g, 0, sizeof(g));
	g.id = id;
	g.sandbox_id = (char *)(uintptr_t)sbx;
	g.minted_by = (char *)(uintptr_t)by;
	g.kid = (char *)(uintptr_t)"k0000000000000001";
	g.created_at = created;
	g.not_before = created;
	g.expires_at = expires;
	g.max_uses = max_uses;
	g.uses = uses;
	g.revoked_at = revoked_at;
	g.bindings = (char *)(uintptr_t)"[]";
	assert_int_equal(store_grant_insert(st, &g), 0);
}

void
testutil_put_grant(struct store *st, int n, const char *sbx, int64_t created,
    int64_t expires, int64_t revoked_at)
{
	testutil_put_grant_full(st, n, sbx, "h", created, expires, 0, 0, revoked_at);
}

int
testutil_db_setup(void **state)
{
	struct testutil_db *f = calloc(1, sizeof(*f));
	char why[256];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cbtest-db.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	if (store_open(f->path, STORE_CREATE, &f->st, why, sizeof(why)) != 0) {
		testutil_rm_dir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

int
testutil_db_teardown(void **state)
{
	struct testutil_db *f = *state;

	store_close(f->st);
	testutil_rm_dir(f->dir);
	free(f);
	return 0;
}

void
testutil_sql(const char *path, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("testutil_sql: %s: %s", sql, err != NULL ? err : "?");
	sqlite3_close(db);
}

int64_t
testutil_sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t n = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

long long
testutil_metric(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);

	for (int i = 0; i < 100000 && (p = strstr(p, name)) != NULL; i++) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		p += n;
	}
	return -1;
}
