/*
 * store_int.h: private to src/store*.c. The struct store (one SQLite connection and
 * its cache of prepared statements) and the helpers every store_*.c file uses.
 *
 * Statement cache: each store_*.c file owns a range of statement IDs and keeps its
 * own enum of them, starting at its base below. store_stmt(st, id, sql) prepares
 * sql on first use (SQLITE_PREPARE_PERSISTENT), caches it in st->stmts[id], and on
 * every call returns it reset with its bindings cleared, ready to bind. Always
 * pass the same sql for the same id (a mismatch is logged and returns NULL).
 * After stepping, call store_stmt_done(stmt) so no read transaction stays open.
 *
 * Typical use:
 *	sqlite3_stmt *s = store_stmt(st, MY_STMT_GET, "SELECT ... WHERE id = ?1");
 *	if (s == NULL) return CB_ERR_DB;
 *	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
 *	rc = sqlite3_step(s);  ...  store_stmt_done(s);
 */
#ifndef CB_STORE_INT_H
#define CB_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store.h"
#include "util.h"

enum store_stmt_base {
	STORE_STMT_CORE = 0,	/* store.c and store_secret.c: 0 .. 63 */
	STORE_STMT_GRANT = 64,	/* store_grant.c: 64 .. 127 */
	STORE_STMT_AUDIT = 128,	/* store_audit.c: 128 .. 191 */
	STORE_STMT_MAX = 192,
};

struct store {
	sqlite3 *db;
	char *path;			/* as given to store_open */
	int flags;			/* STORE_* */
	int in_txn;			/* BEGIN issued by store_begin */
	int in_savepoint;
	int wal_frames;			/* WAL size after the last commit (store_wal_manual) */
	int64_t last_steps;		/* VM steps of the last store_step_done statement */
	int quiet_rc;			/* store_err: the full disk or I/O error last logged, */
	struct util_ratelimit quiet;	/* and its rate on this connection */
	sqlite3_stmt *stmts[STORE_STMT_MAX];
	const char *stmt_sql[STORE_STMT_MAX];	/* the sql each slot was prepared from */
};

/*
 * Returns the cached statement id (preparing sql on first use), reset and with
 * cleared bindings; NULL on failure (logged). Owned by the store: never finalize.
 */
sqlite3_stmt *store_stmt(struct store *st, int id, const char *sql);
/* Resets stmt and clears its bindings; NULL is fine. */
void store_stmt_done(sqlite3_stmt *stmt);
/*
 * Steps a statement that returns no rows, then store_stmt_done. Returns 0,
 * CB_ERR_EXISTS (PRIMARY KEY / UNIQUE violation), CB_ERR_BUSY (SQLITE_BUSY) or
 * CB_ERR_DB (logged).
 */
int store_step_done(struct store *st, sqlite3_stmt *stmt);
/* Maps an SQLite result code to a CB_ERR_* (logs with the connection's message). */
int store_err(struct store *st, int sqlite_rc, const char *what);
/* Runs SQL without parameters (BEGIN, PRAGMA, migrations). Returns 0 or CB_ERR_DB. */
int store_exec(struct store *st, const char *sql);

/* Column helpers: *out malloc'd, owned by the caller; 0 or CB_ERR_NOMEM. NULL column → "" / 0 bytes. */
int store_col_text_dup(sqlite3_stmt *stmt, int col, char **out);
int store_col_blob_dup(sqlite3_stmt *stmt, int col, uint8_t **out, size_t *len);

/*
 * store_pcache.c: installs SQLite's default page cache with a needless scan at each
 * transaction's end skipped; once, before SQLite's first use (else a no-op). The
 * statistics count the truncations passed on to SQLite's cache, those skipped, and the
 * pages parked at the pending-byte page (tests).
 */
void store_pcache_install(void);
void store_pcache_stats(uint64_t *passed, uint64_t *skipped, uint64_t *parked);

#endif
