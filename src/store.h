/*
 * store.h: every SQL statement of credbroker lives behind this interface (store*.c).
 * A struct store is one SQLite connection with its prepared statements; it is used
 * by one thread at a time. The daemon has one writer connection (owned by the
 * commit thread, see commit.h) and one reader connection per server thread
 * (store_pool_get).
 */
#ifndef CB_STORE_H
#define CB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_pool;

enum store_flags {
	STORE_CREATE = 1 << 0,	/* create the file if missing (init only) */
	STORE_READONLY = 1 << 1,	/* open read-only, never migrate (offline audit verify) */
	/*
	 * Skip PRAGMA quick_check (a walk of the whole file) and the header check: for the
	 * daemon's further connections once its first open at start-up has checked the
	 * file. Required then: the header check's open() and close() of the file would
	 * drop the POSIX locks of the process's other connections.
	 */
	STORE_NOCHECK = 1 << 2,
};

/*
 * Opens the database at path: WAL, synchronous=FULL, foreign_keys=ON, busy
 * timeout; applies pending migrations unless STORE_READONLY; refuses a database
 * whose user_version is newer than this binary knows (CB_ERR_VERSION) or that is
 * not a credbroker database / is damaged (CB_ERR_CORRUPT). why receives a message
 * naming the file. *out is owned by the caller (store_close).
 */
int store_open(const char *path, int flags, struct store **out, char *why, size_t whylen);
/* Finalizes statements and closes; NULL is fine. */
void store_close(struct store *st);
/*
 * 0 when the database's tables, indexes, views and triggers are exactly the ones its
 * migrations make (compared with a new in-memory database of them); CB_ERR_CORRUPT, why
 * naming the first difference, when one was added, changed or removed. Whoever can write
 * the file can write its schema too: a view in place of a table, or a trigger, would run
 * inside the daemon's own statements (say, show the audit verification other rows than
 * the listings). credbrokerd and the offline audit verify refuse such a database.
 */
int store_schema_check(struct store *st, char *why, size_t whylen);
/* Returns the path the store was opened with (owned by the store). */
const char *store_path(const struct store *st);
/* 1 when the store was opened with STORE_READONLY, else 0. */
int store_readonly(const struct store *st);
/*
 * 1 when SQLite can write the database through st. A read-write open of a file this
 * user cannot write silently falls back to read-only (and BEGIN IMMEDIATE still works
 * in WAL mode): only the first write would fail.
 */
int store_writable(struct store *st);

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. Return 0 or CB_ERR_DB. */
int store_begin(struct store *st);
int store_commit(struct store *st);
int store_rollback(struct store *st);
/*
 * 1 while a transaction is open on st. A statement that fails with SQLITE_FULL or
 * SQLITE_IOERR may make SQLite roll back the whole transaction, not only itself.
 */
int store_txn_active(struct store *st);
/* Savepoints inside a transaction (one level is enough for the commit thread). */
int store_savepoint(struct store *st);
int store_savepoint_release(struct store *st);
int store_savepoint_rollback(struct store *st);

/*
 * Checkpoints under the caller's control: no automatic checkpoint inside this
 * connection's COMMIT (SQLite's default runs one there, stalling the writer); the
 * WAL's size after each commit is kept for store_wal_frames. Returns 0 or CB_ERR_DB.
 */
int store_wal_manual(struct store *st);
/* This connection's page cache: at most kib KiB (PRAGMA cache_size). 0 or CB_ERR_DB. */
int store_cache_kib(struct store *st, int kib);
/* Frames in the WAL after the last commit of a store_wal_manual connection. */
int store_wal_frames(const struct store *st);
/*
 * A PASSIVE checkpoint (never waits for readers or the writer). *log and *done
 * receive the WAL's frames and those copied back. Returns 0, CB_ERR_BUSY (another
 * checkpoint is running) or CB_ERR_DB.
 */
int store_checkpoint(struct store *st, int *log, int *done);

/* PRAGMA integrity_check: returns 0 when "ok", CB_ERR_CORRUPT otherwise. */
int store_integrity_check(struct store *st);
/*
 * SQLite VM steps of the last statement run through store_step_done: lets tests
 * check that a statement stays bounded (e.g. a purge window does not scan the table).
 */
int64_t store_last_steps(const struct store *st);
/* The schema version (PRAGMA user_version). */
int store_schema_version(struct store *st, int *version);

/* meta table: *val is malloc'd, owned by the caller; CB_ERR_NOTFOUND when absent. */
int store_meta_get(struct store *st, const char *key, uint8_t **val, size_t *len);
int store_meta_set(struct store *st, const char *key, const void *val, size_t len);
int store_meta_del(struct store *st, const char *key);

/* A pool handing each calling thread its own reader connection, opened on first use. */
int store_pool_new(const char *path, struct store_pool **out);
/* Returns this thread's connection (owned by the pool) or NULL on failure. */
struct store *store_pool_get(struct store_pool *pool);
/* Closes every connection; call after all threads using it have stopped. NULL is fine. */
void store_pool_free(struct store_pool *pool);

/* --- data keys and signing keys (store.c; used by vault.c only) --- */
struct store_key {
	int64_t id;		/* data keys */
	char kid[40];		/* signing keys */
	uint8_t *wrapped;	/* owned by the array (store_keys_free) */
	size_t wrapped_len;
	char state[12];
	int64_t created_at;
	int64_t retire_after;	/* signing keys; 0 when none */
};
void store_keys_free(struct store_key *keys, size_t n);
int store_data_keys_list(struct store *st, struct store_key **keys, size_t *n);
int store_data_key_insert(struct store *st, const uint8_t *wrapped, size_t len,
    const char *state, int64_t *id);
int store_data_key_update(struct store *st, int64_t id, const uint8_t *wrapped, size_t len,
    const char *state);
int store_signing_keys_list(struct store *st, struct store_key **keys, size_t *n);
int store_signing_key_insert(struct store *st, const char *kid, const uint8_t *wrapped,
    size_t len, const char *state, int64_t retire_after);
int store_signing_key_update(struct store *st, const char *kid, const uint8_t *wrapped,
    size_t len, const char *state, int64_t retire_after);

/* --- secrets (store_secret.c; used by secret.c and vault.c) --- */
struct store_secret {
	char *name;
	char *hosts_json;	/* JSON array of host names */
	int64_t max_ttl_s;
	int64_t current_version;
	int64_t created_at, updated_at;
};
void store_secret_free(struct store_secret *s);
/* CB_ERR_NOTFOUND when absent; *out owned by the caller. */
int store_secret_get(struct store *st, const char *name, struct store_secret **out);
/* All secrets ordered by name; free each with store_secret_free, then the array. */
int store_secret_list(struct store *st, struct store_secret ***out, size_t *n);
int store_secret_upsert(struct store *st, const char *name, const char *hosts_json,
    int64_t max_ttl_s, int64_t current_version, int64_t now);
int store_secret_delete(struct store *st, const char *name);
int store_secret_version_insert(struct store *st, const char *name, int64_t version,
    int64_t key_id, const uint8_t *ct, size_t ctlen, int64_t now);
/* *ct owned by the caller. */
int store_secret_version_get(struct store *st, const char *name, int64_t version,
    int64_t *key_id, uint8_t **ct, size_t *ctlen);
/* Calls fn for up to limit versions sealed under key_id (rotation); fn may not use st. */
struct store_version_ref {
	char *name;
	int64_t version;
	int64_t key_id;
	uint8_t *ct;
	size_t ctlen;
};
int store_secret_versions_by_key(struct store *st, int64_t key_id, size_t limit,
    struct store_version_ref **out, size_t *n);
void store_version_refs_free(struct store_version_ref *refs, size_t n);
int store_secret_version_reseal(struct store *st, const char *name, int64_t version,
    int64_t old_key_id, int64_t new_key_id, const uint8_t *ct, size_t ctlen);
/* Counts versions still sealed under key_id. */
int store_secret_versions_count_by_key(struct store *st, int64_t key_id, int64_t *count);

/* --- grants (store_grant.c) and audit (store_audit.c): declared in grant.h / audit.h users --- */
#include "store_grant.h"
#include "store_audit.h"

#endif
