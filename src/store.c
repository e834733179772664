/*
 * store.c: the SQLite connection (pragmas, migrations, refusal of newer or damaged
 * databases), transactions, the meta table, data/signing key rows, the reader pool,
 * and the statement cache shared with the other store_*.c files (store_int.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define STORE_BUSY_TIMEOUT_MS	5000

/* Statement IDs of store.c (store_secret.c uses STORE_STMT_CORE + 32 ..). */
enum {
	ST_META_GET = STORE_STMT_CORE,
	ST_META_SET,
	ST_META_DEL,
	ST_DK_LIST,
	ST_DK_INSERT,
	ST_DK_UPDATE,
	ST_SK_LIST,
	ST_SK_INSERT,
	ST_SK_UPDATE,
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
};

/* --- statement cache (store_int.h) --- */

/* A full disk or an I/O error fails every statement: logged once a minute per connection. */
#define STORE_ERR_QUIET_US	60000000

int
store_err(struct store *st, int sqlite_rc, const char *what)
{
	int prim = sqlite_rc & 0xff, quiet = 0;
	unsigned long long n = 0;

	if (st != NULL && (prim == SQLITE_FULL || prim == SQLITE_IOERR ||
	    prim == SQLITE_READONLY)) {
		if (sqlite_rc != st->quiet_rc) {
			st->quiet_rc = sqlite_rc;	/* another error: logged at once */
			st->quiet.last_us = 0;
		}
		quiet = !util_ratelimit_ok(&st->quiet, STORE_ERR_QUIET_US, &n);
	}
	if (!quiet)
		log_warnx("%s: %s: %s (%d)%s", st != NULL && st->path != NULL ? st->path : "?",
		    what, st != NULL && st->db != NULL ? sqlite3_errmsg(st->db) :
		    sqlite3_errstr(sqlite_rc), sqlite_rc, n > 0 ?
		    " (and earlier errors not logged: once a minute)" : "");
	if (sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY || sqlite_rc == SQLITE_CONSTRAINT_UNIQUE)
		return CB_ERR_EXISTS;
	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
		return CB_ERR_BUSY;
	if (prim == SQLITE_NOMEM)
		return CB_ERR_NOMEM;
	if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
		return CB_ERR_CORRUPT;
	return CB_ERR_DB;
}

sqlite3_stmt *
store_stmt(struct store *st, int id, const char *sql)
{
	sqlite3_stmt *s;
	int rc;

	if (st == NULL || st->db == NULL || id < 0 || id >= STORE_STMT_MAX || sql == NULL)
		return NULL;
	if ((s = st->stmts[id]) != NULL) {
		if (st->stmt_sql[id] != sql && strcmp(st->stmt_sql[id], sql) != 0) {
			log_warnx("statement slot %d reused with different SQL", id);
			return NULL;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return s;
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		store_err(st, rc, "prepare");
		return NULL;
	}
	st->stmts[id] = s;
	st->stmt_sql[id] = sql;
	return s;
}

void
store_stmt_done(sqlite3_stmt *stmt)
{
	if (stmt == NULL)
		return;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

int
store_step_done(struct store *st, sqlite3_stmt *stmt)
{
	int rc;

	rc = sqlite3_step(stmt);
	st->last_steps = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_VM_STEP, 1);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
		store_stmt_done(stmt);
		return 0;
	}
	rc = sqlite3_extended_errcode(st->db);
	store_stmt_done(stmt);
	return store_err(st, rc, "step");
}

int
store_exec(struct store *st, const char *sql)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_warnx("%s: %s", st->path, msg != NULL ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		rc = sqlite3_extended_errcode(st->db);
		if ((rc & 0xff) == SQLITE_BUSY)
			return CB_ERR_BUSY;
		if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
			return CB_ERR_CORRUPT;
		return CB_ERR_DB;
	}
	return 0;
}

int
store_col_text_dup(sqlite3_stmt *stmt, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(stmt, col);
	int n = sqlite3_column_bytes(stmt, col);

	*out = NULL;
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return CB_ERR_NOMEM;
	if (n > 0 && t != NULL)
		memcpy(*out, t, (size_t)n);
	(*out)[n] = '\0';
	return 0;
}

int
store_col_blob_dup(sqlite3_stmt *stmt, int col, uint8_t **out, size_t *len)
{
	const void *b = sqlite3_column_blob(stmt, col);
	int n = sqlite3_column_bytes(stmt, col);

	*out = NULL;
	*len = 0;
	/* One spare byte so an empty blob still yields a valid pointer. */
	if ((*out = malloc((size_t)n + 1)) == NULL)
		return CB_ERR_NOMEM;
	if (n > 0 && b != NULL)
		memcpy(*out, b, (size_t)n);
	(*out)[n] = 0;
	*len = (size_t)n;
	return 0;
}

/* --- open, migrations --- */

static int
store_pragma_int(struct store *st, const char *sql, int *val)
{
	sqlite3_stmt *s = NULL;
	int rc;

	*val = 0;
	/* PRAGMAs are not cached: they run once per open. */
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, sqlite3_extended_errcode(st->db), sql);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*val = sqlite3_column_int(s, 0);
	else if (rc != SQLITE_DONE) {
		rc = store_err(st, sqlite3_extended_errcode(st->db), sql);
		sqlite3_finalize(s);
		return rc;
	}
	sqlite3_finalize(s);
	return 0;
}

/*
 * Checks the file before SQLite gets to write anything: a non-empty file that does
 * not start with the SQLite header is refused here, because opening it read-write
 * and setting journal_mode=WAL could otherwise modify it.
 */
static int
store_precheck_file(const char *path, int flags, int *exists, char *why, size_t whylen)
{
	static const char magic[16] = "SQLite format 3";	/* includes the NUL */
	char hdr[16];
	struct stat sb;
	ssize_t n;
	int fd;

	*exists = 0;
	if (stat(path, &sb) == -1) {
		if (errno == ENOENT && (flags & STORE_CREATE)) {
			/* Create it 0600 ourselves: SQLite would use 0644 (its -wal/-shm follow). */
			if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1 &&
			    errno != EEXIST) {
				snprintf(why, whylen, "database %s: %s", path, strerror(errno));
				return CB_ERR_IO;
			}
			if (fd != -1)
				close(fd);
			return 0;
		}
		snprintf(why, whylen, "database %s: %s", path, strerror(errno));
		return CB_ERR_IO;
	}
	*exists = 1;
	if (!S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "database %s: not a regular file", path);
		return CB_ERR_CORRUPT;
	}
	/*
	 * Later opens of a file this process has open already (STORE_NOCHECK: the daemon's
	 * readers, writer and checkpointer) must not open() and close() it: closing any
	 * descriptor of a file drops every POSIX lock the process holds on it, SQLite's
	 * included, and another process closing its connection would then checkpoint and
	 * delete the WAL under the daemon. The first open checked the header.
	 */
	if (sb.st_size == 0 || (flags & STORE_NOCHECK))
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "database %s: %s", path, strerror(errno));
		return CB_ERR_IO;
	}
	n = read(fd, hdr, sizeof(hdr));
	close(fd);
	if (n != (ssize_t)sizeof(hdr) || memcmp(hdr, magic, sizeof(magic)) != 0) {
		snprintf(why, whylen, "database %s: not an SQLite database; refusing to touch it",
		    path);
		return CB_ERR_CORRUPT;
	}
	return 0;
}

/*
 * After a failed statement of store_open: 1 with *why set when the cause is the file
 * system (full, a file-size limit, an I/O error, permissions), not the file's content:
 * saying "damaged" then would send an operator to restore a backup for nothing.
 */
static int
store_os_failure(struct store *st, char *why, size_t whylen)
{
	int rc = sqlite3_extended_errcode(st->db), prim = rc & 0xff, e;

	if (prim != SQLITE_IOERR && prim != SQLITE_FULL && prim != SQLITE_CANTOPEN &&
	    prim != SQLITE_READONLY && prim != SQLITE_PERM && prim != SQLITE_NOMEM)
		return 0;
	e = sqlite3_system_errno(st->db);
	snprintf(why, whylen, "database %s: cannot read it: %s (%d%s%s); the file system may be "
	    "full or failing, the database was not changed", st->path, sqlite3_errmsg(st->db),
	    rc, e != 0 ? ", " : "", e != 0 ? strerror(e) : "");
	return 1;
}

static int
store_migrate(struct store *st, int from, char *why, size_t whylen)
{
	char sql[64];
	int i, rc;

	for (i = 0; i < schema_migration_count; i++) {
		const struct schema_migration *m = &schema_migrations[i];

		if (m->version <= from)
			continue;
		/* One transaction per migration, user_version inside it: all or nothing. */
		if ((rc = store_exec(st, "BEGIN IMMEDIATE")) != 0)
			goto fail;
		if ((rc = store_exec(st, m->sql)) != 0) {
			store_exec(st, "ROLLBACK");
			goto fail;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", m->version);
		if ((rc = store_exec(st, sql)) != 0 || (rc = store_exec(st, "COMMIT")) != 0) {
			store_exec(st, "ROLLBACK");
			goto fail;
		}
		log_info("%s: applied migration %s", st->path, m->name);
		continue;
fail:
		snprintf(why, whylen, "database %s: migration %s failed", st->path, m->name);
		return rc;
	}
	return 0;
}

#define SCHEMA_QUERY "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema" \
	" WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name"

/* The schema object at s's current row, "TYPE NAME", for a message. */
static void
schema_object(sqlite3_stmt *s, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s %s", (const char *)sqlite3_column_text(s, 0),
	    (const char *)sqlite3_column_text(s, 1));
}

int
store_schema_check(struct store *st, char *why, size_t whylen)
{
	sqlite3 *ref = NULL;
	sqlite3_stmt *a = NULL, *b = NULL;
	char obj[160];
	int i, ra, rb, col, rc = CB_ERR_DB;

	/* What the migrations make, in a database of their own. */
	if (sqlite3_open_v2(":memory:", &ref, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    NULL) != SQLITE_OK)
		goto out;
	for (i = 0; i < schema_migration_count; i++)
		if (sqlite3_exec(ref, schema_migrations[i].sql, NULL, NULL, NULL) != SQLITE_OK)
			goto out;
	if (sqlite3_prepare_v2(st->db, SCHEMA_QUERY, -1, &a, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(ref, SCHEMA_QUERY, -1, &b, NULL) != SQLITE_OK)
		goto out;
	for (;;) {
		ra = sqlite3_step(a);
		rb = sqlite3_step(b);
		if ((ra != SQLITE_ROW && ra != SQLITE_DONE) || (rb != SQLITE_ROW && rb != SQLITE_DONE))
			goto out;
		if (ra == SQLITE_DONE && rb == SQLITE_DONE)
			break;
		rc = CB_ERR_CORRUPT;
		if (ra == SQLITE_DONE || rb == SQLITE_DONE) {
			schema_object(ra == SQLITE_DONE ? b : a, obj, sizeof(obj));
			snprintf(why, whylen, "database %s: its schema is not credbroker's: %s %s; "
			    "refusing to use it", st->path, obj, ra == SQLITE_DONE ? "missing" :
			    "added");
			goto out;
		}
		for (col = 0; col < 4; col++)
			if (strcmp((const char *)sqlite3_column_text(a, col),
			    (const char *)sqlite3_column_text(b, col)) != 0)
				break;
		if (col < 4) {
			schema_object(a, obj, sizeof(obj));
			snprintf(why, whylen, "database %s: its schema is not credbroker's: %s "
			    "changed, added or in place of another; refusing to use it", st->path, obj);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc == CB_ERR_DB)
		snprintf(why, whylen, "database %s: cannot read its schema", st->path);
	sqlite3_finalize(a);
	sqlite3_finalize(b);
	sqlite3_close(ref);
	return rc;
}

/*
 * Once per process, before SQLite's first use: no memory statistics. With them (SQLite's
 * default), every sqlite3_malloc and sqlite3_free of every connection takes one global
 * mutex, which the server threads and the commit thread contended for (~4 % of a
 * token-less resolve's CPU in lock calls alone, docs/performance.md D12). Nothing here
 * reads the statistics or sets a heap limit. Then store_pcache.c's page cache (no scan of
 * the writer's cache at each commit). A process that used SQLite before (a test harness)
 * keeps its configuration: sqlite3_config then refuses, harmlessly.
 */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	store_pcache_install();
}

int
store_open(const char *path, int flags, struct store **out, char *why, size_t whylen)
{
	struct store *st = NULL;
	int exists, oflags, rc, ver, known = 0, i;
	char dummy[1];

	pthread_once(&sqlite_once, sqlite_setup);
	*out = NULL;
	if (why == NULL || whylen == 0) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = '\0';
	if (path == NULL)
		return CB_ERR_INVAL;
	for (i = 0; i < schema_migration_count; i++)
		if (schema_migrations[i].version > known)
			known = schema_migrations[i].version;
	if ((flags & STORE_READONLY) && (flags & STORE_CREATE))
		return CB_ERR_INVAL;
	if ((rc = store_precheck_file(path, flags, &exists, why, whylen)) != 0)
		return rc;
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->path = strdup(path)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	st->flags = flags;
	if (flags & STORE_READONLY)
		oflags = SQLITE_OPEN_READONLY;
	else
		oflags = SQLITE_OPEN_READWRITE | ((flags & STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
	oflags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	rc = sqlite3_open_v2(path, &st->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "database %s: %s", path,
		    st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
		rc = (rc & 0xff) == SQLITE_NOTADB ? CB_ERR_CORRUPT : CB_ERR_DB;
		goto out;
	}
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(st->db, 1);

	/* Read the version first: a newer or foreign database is refused before any write. */
	if ((rc = store_pragma_int(st, "PRAGMA user_version", &ver)) != 0) {
		if (store_os_failure(st, why, whylen)) {
			rc = CB_ERR_IO;
			goto out;
		}
		snprintf(why, whylen, "database %s: not a readable SQLite database", path);
		if (rc == CB_ERR_DB)
			rc = CB_ERR_CORRUPT;
		goto out;
	}
	if (ver > known) {
		snprintf(why, whylen, "database %s has schema version %d but this binary knows "
		    "only up to %d: refusing to use it (upgrade credbroker)", path, ver, known);
		rc = CB_ERR_VERSION;
		goto out;
	}
	if (exists && !(flags & STORE_NOCHECK)) {
		sqlite3_stmt *s = NULL;
		const unsigned char *res;

		rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(s);
		res = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
		if (res == NULL && store_os_failure(st, why, whylen)) {
			sqlite3_finalize(s);
			rc = CB_ERR_IO;
			goto out;
		}
		if (res == NULL || strcmp((const char *)res, "ok") != 0) {
			snprintf(why, whylen, "database %s is damaged (quick_check failed); "
			    "refusing to touch it", path);
			sqlite3_finalize(s);
			rc = CB_ERR_CORRUPT;
			goto out;
		}
		sqlite3_finalize(s);
	}
	if (!(flags & STORE_READONLY)) {
		if ((rc = store_exec(st, "PRAGMA journal_mode = WAL")) != 0 ||
		    (rc = store_exec(st, "PRAGMA synchronous = FULL")) != 0) {
			snprintf(why, whylen, "database %s: cannot set WAL mode", path);
			goto out;
		}
	}
	if ((rc = store_exec(st, "PRAGMA foreign_keys = ON")) != 0) {
		snprintf(why, whylen, "database %s: cannot enable foreign keys", path);
		goto out;
	}
	if (!(flags & STORE_READONLY) && ver < known) {
		if ((rc = store_migrate(st, ver, why, whylen)) != 0)
			goto out;
	} else if ((flags & STORE_READONLY) && ver < known) {
		snprintf(why, whylen, "database %s has schema version %d, this binary expects %d; "
		    "open it read-write once to migrate", path, ver, known);
		rc = CB_ERR_VERSION;
		goto out;
	}
	*out = st;		/* transferred */
	st = NULL;
	rc = 0;
out:
	store_close(st);
	return rc;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < STORE_STMT_MAX; i++)
		sqlite3_finalize(st->stmts[i]);
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warnx("%s: close: %s", st->path, sqlite3_errmsg(st->db));
	free(st->path);
	free(st);
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

int
store_readonly(const struct store *st)
{
	return (st->flags & STORE_READONLY) != 0;
}

int
store_writable(struct store *st)
{
	return sqlite3_db_readonly(st->db, "main") == 0;
}

/* --- transactions --- */

static int
store_run(struct store *st, int id, const char *sql)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, id, sql)) == NULL)
		return CB_ERR_DB;
	return store_step_done(st, s) == 0 ? 0 : CB_ERR_DB;
}

int
store_begin(struct store *st)
{
	int rc;

	if ((rc = store_run(st, ST_BEGIN, "BEGIN IMMEDIATE")) == 0)
		st->in_txn = 1;
	return rc;
}

int
store_commit(struct store *st)
{
	int rc;

	if ((rc = store_run(st, ST_COMMIT, "COMMIT")) == 0)
		st->in_txn = 0;
	return rc;
}

static int
store_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store *st = arg;

	(void)db;
	(void)name;
	st->wal_frames = frames;
	return SQLITE_OK;
}

int
store_wal_manual(struct store *st)
{
	int rc;

	if ((rc = store_exec(st, "PRAGMA wal_autocheckpoint = 0")) != 0)
		return rc;
	/* Replaces the automatic checkpoint's own hook (there is one hook per connection). */
	sqlite3_wal_hook(st->db, store_wal_hook, st);
	return 0;
}

int
store_cache_kib(struct store *st, int kib)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", kib > 0 ? kib : 1);
	return store_exec(st, sql);
}

int
store_wal_frames(const struct store *st)
{
	return st->wal_frames;
}

int
store_checkpoint(struct store *st, int *log, int *done)
{
	int rc;

	*log = *done = 0;
	rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, log, done);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return CB_ERR_BUSY;
	if (rc != SQLITE_OK)
		return store_err(st, rc, "checkpoint");
	return 0;
}

int
store_rollback(struct store *st)
{
	int rc;

	/* After some errors SQLite has already rolled back: that is not a failure. */
	if (sqlite3_get_autocommit(st->db)) {
		st->in_txn = 0;
		st->in_savepoint = 0;
		return 0;
	}
	rc = store_run(st, ST_ROLLBACK, "ROLLBACK");
	st->in_txn = 0;
	st->in_savepoint = 0;
	return rc;
}

int
store_txn_active(struct store *st)
{
	return !sqlite3_get_autocommit(st->db);
}

int
store_savepoint(struct store *st)
{
	int rc;

	if ((rc = store_run(st, ST_SAVEPOINT, "SAVEPOINT cb_sp")) == 0)
		st->in_savepoint = 1;
	return rc;
}

int
store_savepoint_release(struct store *st)
{
	int rc;

	if ((rc = store_run(st, ST_RELEASE, "RELEASE cb_sp")) == 0)
		st->in_savepoint = 0;
	return rc;
}

int
store_savepoint_rollback(struct store *st)
{
	int rc;

	/* ROLLBACK TO keeps the savepoint open: release it too. */
	if ((rc = store_run(st, ST_ROLLBACK_TO, "ROLLBACK TO cb_sp")) != 0)
		return rc;
	return store_savepoint_release(st);
}

int
store_integrity_check(struct store *st)
{
	sqlite3_stmt *s = NULL;
	const unsigned char *res;
	int rc, ok;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return CB_ERR_CORRUPT;
	rc = sqlite3_step(s);
	res = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	ok = res != NULL && strcmp((const char *)res, "ok") == 0;
	sqlite3_finalize(s);
	return ok ? 0 : CB_ERR_CORRUPT;
}

int64_t
store_last_steps(const struct store *st)
{
	return st != NULL ? st->last_steps : 0;
}

int
store_schema_version(struct store *st, int *version)
{
	return store_pragma_int(st, "PRAGMA user_version", version);
}

/* --- meta --- */

int
store_meta_get(struct store *st, const char *key, uint8_t **val, size_t *len)
{
	sqlite3_stmt *s;
	int rc;

	*val = NULL;
	*len = 0;
	if ((s = store_stmt(st, ST_META_GET, "SELECT v FROM meta WHERE k = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = store_col_blob_dup(s, 0, val, len);
	else if (rc == SQLITE_DONE)
		rc = CB_ERR_NOTFOUND;
	else
		rc = store_err(st, sqlite3_extended_errcode(st->db), "meta get");
	store_stmt_done(s);
	return rc;
}

int
store_meta_set(struct store *st, const char *key, const void *val, size_t len)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, ST_META_SET,
	    "INSERT INTO meta (k, v) VALUES (?1, ?2) "
	    "ON CONFLICT (k) DO UPDATE SET v = excluded.v")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(s, 2, len > 0 ? val : "", len, SQLITE_STATIC);
	return store_step_done(st, s);
}

int
store_meta_del(struct store *st, const char *key)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, ST_META_DEL, "DELETE FROM meta WHERE k = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	return store_step_done(st, s);
}

/* --- data keys and signing keys --- */

void
store_keys_free(struct store_key *keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		util_wipe_free(keys[i].wrapped, keys[i].wrapped_len);
	free(keys);
}

static int
store_keys_read(struct store *st, sqlite3_stmt *s, int signing, struct store_key **keys,
    size_t *n)
{
	struct store_key *arr = NULL, *tmp;
	size_t cnt = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_key *k;

		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			if ((tmp = reallocarray(arr, cap, sizeof(*arr))) == NULL) {
				rc = CB_ERR_NOMEM;
				goto out;
			}
			arr = tmp;
		}
		k = &arr[cnt];
		memset(k, 0, sizeof(*k));
		if (signing) {
			const unsigned char *kid = sqlite3_column_text(s, 0);

			util_strlcpy(k->kid, kid != NULL ? (const char *)kid : "", sizeof(k->kid));
			k->retire_after = sqlite3_column_int64(s, 4);
		} else
			k->id = sqlite3_column_int64(s, 0);
		if ((rc = store_col_blob_dup(s, 1, &k->wrapped, &k->wrapped_len)) != 0)
			goto out;
		cnt++;
		util_strlcpy(k->state, (const char *)sqlite3_column_text(s, 2), sizeof(k->state));
		k->created_at = sqlite3_column_int64(s, 3);
	}
	if (rc != SQLITE_DONE) {
		rc = store_err(st, sqlite3_extended_errcode(st->db), "keys list");
		goto out;
	}
	*keys = arr;		/* transferred */
	*n = cnt;
	arr = NULL;
	rc = 0;
out:
	store_stmt_done(s);
	store_keys_free(arr, cnt);
	return rc;
}

int
store_data_keys_list(struct store *st, struct store_key **keys, size_t *n)
{
	sqlite3_stmt *s;

	*keys = NULL;
	*n = 0;
	if ((s = store_stmt(st, ST_DK_LIST,
	    "SELECT id, wrapped, state, created_at FROM data_keys ORDER BY id")) == NULL)
		return CB_ERR_DB;
	return store_keys_read(st, s, 0, keys, n);
}

int
store_data_key_insert(struct store *st, const uint8_t *wrapped, size_t len,
    const char *state, int64_t *id)
{
	sqlite3_stmt *s;
	int rc;

	*id = 0;
	if ((s = store_stmt(st, ST_DK_INSERT,
	    "INSERT INTO data_keys (wrapped, state, created_at) VALUES (?1, ?2, ?3)")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_blob64(s, 1, wrapped, len, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, util_now());
	if ((rc = store_step_done(st, s)) == 0)
		*id = sqlite3_last_insert_rowid(st->db);
	return rc;
}

int
store_data_key_update(struct store *st, int64_t id, const uint8_t *wrapped, size_t len,
    const char *state)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_stmt(st, ST_DK_UPDATE,
	    "UPDATE data_keys SET wrapped = ?2, state = ?3 WHERE id = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_blob64(s, 2, wrapped, len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	return sqlite3_changes(st->db) == 1 ? 0 : CB_ERR_NOTFOUND;
}

int
store_signing_keys_list(struct store *st, struct store_key **keys, size_t *n)
{
	sqlite3_stmt *s;

	*keys = NULL;
	*n = 0;
	if ((s = store_stmt(st, ST_SK_LIST,
	    "SELECT kid, wrapped, state, created_at, COALESCE(retire_after, 0) "
	    "FROM signing_keys ORDER BY created_at, kid")) == NULL)
		return CB_ERR_DB;
	return store_keys_read(st, s, 1, keys, n);
}

int
store_signing_key_insert(struct store *st, const char *kid, const uint8_t *wrapped,
    size_t len, const char *state, int64_t retire_after)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, ST_SK_INSERT,
	    "INSERT INTO signing_keys (kid, wrapped, state, created_at, retire_after) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, kid, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(s, 2, wrapped, len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, util_now());
	if (retire_after > 0)
		sqlite3_bind_int64(s, 5, retire_after);
	else
		sqlite3_bind_null(s, 5);
	return store_step_done(st, s);
}

int
store_signing_key_update(struct store *st, const char *kid, const uint8_t *wrapped,
    size_t len, const char *state, int64_t retire_after)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_stmt(st, ST_SK_UPDATE,
	    "UPDATE signing_keys SET wrapped = ?2, state = ?3, retire_after = ?4 "
	    "WHERE kid = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, kid, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(s, 2, wrapped, len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, state, -1, SQLITE_STATIC);
	if (retire_after > 0)
		sqlite3_bind_int64(s, 4, retire_after);
	else
		sqlite3_bind_null(s, 4);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	return sqlite3_changes(st->db) == 1 ? 0 : CB_ERR_NOTFOUND;
}

/* --- the reader pool --- */

struct store_pool_conn {
	struct store *st;
	struct store_pool_conn *next;
};

struct store_pool {
	char *path;
	pthread_key_t key;
	pthread_mutex_t lock;
	struct store_pool_conn *conns;	/* every connection opened, closed by store_pool_free */
};

int
store_pool_new(const char *path, struct store_pool **out)
{
	struct store_pool *p;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL || (p->path = strdup(path)) == NULL) {
		free(p);
		return CB_ERR_NOMEM;
	}
	/* No destructor: connections are closed together by store_pool_free. */
	if (pthread_key_create(&p->key, NULL) != 0) {
		free(p->path);
		free(p);
		return CB_ERR_NOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

struct store *
store_pool_get(struct store_pool *pool)
{
	struct store_pool_conn *c;
	struct store *st;
	char why[512];

	if ((st = pthread_getspecific(pool->key)) != NULL)
		return st;
	/*
	 * Readers never migrate: the writer connection was opened (and migrated) first,
	 * and the daemon's first open checked the file.
	 */
	if (store_open(pool->path, STORE_NOCHECK, &st, why, sizeof(why)) != 0) {
		log_warnx("%s", why);
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		store_close(st);
		return NULL;
	}
	c->st = st;
	pthread_mutex_lock(&pool->lock);
	c->next = pool->conns;
	pool->conns = c;
	pthread_mutex_unlock(&pool->lock);
	if (pthread_setspecific(pool->key, st) != 0)
		log_warnx("pthread_setspecific failed");
	return st;
}

void
store_pool_free(struct store_pool *pool)
{
	struct store_pool_conn *c, *next;

	if (pool == NULL)
		return;
	for (c = pool->conns; c != NULL; c = next) {
		next = c->next;
		store_close(c->st);
		free(c);
	}
	pthread_key_delete(pool->key);
	pthread_mutex_destroy(&pool->lock);
	free(pool->path);
	free(pool);
}
