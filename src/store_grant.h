/*
 * store_grant.h: SQL for the grants table (src/store_grant.c); included by store.h.
 * Policy lives in grant.c; this file only moves rows.
 */
#ifndef CB_STORE_GRANT_H
#define CB_STORE_GRANT_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* One grant row. Strings are malloc'd and owned by the struct (store_grant_free). */
struct store_grant {
	char *id;
	char *sandbox_id;
	char *minted_by;
	char *kid;
	int64_t created_at;
	int64_t not_before;
	int64_t expires_at;
	int64_t max_uses;	/* 0: unlimited */
	int64_t uses;
	int64_t revoked_at;	/* 0: not revoked */
	int has_inject;
	char *bindings;		/* JSON array, as validated by grant.c */
};
/* Frees g and its strings; NULL is fine. */
void store_grant_free(struct store_grant *g);

/* Inserts g (strings not copied). CB_ERR_EXISTS on a duplicate id. */
int store_grant_insert(struct store *st, const struct store_grant *g);
/*
 * The grant with this id; *out owned by the caller. CB_ERR_NOTFOUND when absent. The
 * uses of an unlimited grant (max_uses 0) leave out those still in grant_use_log
 * (schema/005): the resolve needs uses only to check a limit.
 */
int store_grant_get(struct store *st, const char *id, struct store_grant **out);
/* The same with every use counted (a scan of grant_use_log): for the grant's display. */
int store_grant_get_uses(struct store *st, const char *id, struct store_grant **out);

/* Outcomes of store_grant_use. */
enum store_grant_use_result {
	STORE_GRANT_USED = 0,		/* counted */
	STORE_GRANT_USED_UP = 1,	/* uses reached max_uses */
	STORE_GRANT_REVOKED = 2,
	STORE_GRANT_EXPIRED = 3,
	STORE_GRANT_GONE = 4,		/* no such grant (purged) */
};
/*
 * Counts one use (writer connection, inside the batch, so nothing writes in between) of
 * the grant keyed (expires_at, id) in grants (the resolve read expires_at from its row:
 * the key, without a lookup in grant_ids): when it exists, is not revoked, expires after
 * now and its uses are below max_uses (0: unlimited), counts the use and sets *result
 * to STORE_GRANT_USED; otherwise *result says why not (STORE_GRANT_GONE when no grant
 * has that key). A limited grant's use is added to its row of grant_uses (schema/004);
 * an unlimited grant's is appended to grant_use_log (schema/005), which is folded into
 * grant_uses once it holds STORE_USE_LOG_FOLD rows. A fold stalls the batch it is in
 * (~3 ms per 1,024 rows on the one writer thread): 2,048 did no better for throughput
 * and added ~2 ms to resolve's p99 at 64 connections (docs/performance.md D13).
 */
#define STORE_USE_LOG_FOLD	1024
int store_grant_use(struct store *st, const char *id, int64_t expires_at, int64_t now,
    int *result);

/*
 * Revokes one grant (revoked_at = now where still NULL). *changed is 1 when it was
 * live, 0 when it was already revoked or absent.
 */
int store_grant_revoke(struct store *st, const char *id, int64_t now, int *changed);
/*
 * Revokes every unrevoked grant of sandbox_id (only those minted by minted_by when it
 * is not NULL); *count receives how many.
 */
int store_grant_revoke_sandbox(struct store *st, const char *sandbox_id,
    const char *minted_by, int64_t now, int64_t *count);

/*
 * Calls fn for each live grant of sandbox_id at now (not revoked, not_before <= now <
 * expires_at, uses below max_uses), oldest first, among the newest limit grants. The grant
 * passed to fn is borrowed for the duration of the call. A non-zero return of fn stops
 * the walk and is returned.
 */
typedef int (*store_grant_fn)(void *arg, const struct store_grant *g);
int store_grant_sandbox_live(struct store *st, const char *sandbox_id, int64_t now,
    int limit, store_grant_fn fn, void *arg);

/*
 * Deletes at most limit grants that expired before `before`, the oldest first: a
 * range at the front of the grants table (schema/003), contiguous pages however
 * many expire at once. Their entries in the lookup tables stay until
 * store_grant_sweep removes them. *deleted receives how many.
 */
int store_grant_purge_expired(struct store *st, int64_t before, int limit, int64_t *deleted);

/*
 * The sweep of the lookup tables grant_ids and grant_sandboxes (schema/003): their
 * entries are not deleted with their grant (that would be one random page per
 * grant); a sweep walks each table in its own key order, window by window, and
 * deletes the entries whose grant expired before `before`. A zeroed struct starts a
 * sweep; store_grant_sweep_reset frees it (and restarts it).
 */
enum store_sweep_phase {
	STORE_SWEEP_IDS = 0,
	STORE_SWEEP_SANDBOXES,
	STORE_SWEEP_DONE,
};
struct store_grant_sweep {
	enum store_sweep_phase phase;
	char *sandbox_id;	/* the last key examined in the current table (NULL: none) */
	int64_t expires_at;
	char *id;
};
/*
 * Examines the next limit entries of the current table (deleting the stale ones:
 * *deleted) and advances sw; sw->phase is STORE_SWEEP_DONE once both tables are
 * walked.
 */
int store_grant_sweep(struct store *st, struct store_grant_sweep *sw, int64_t before,
    int limit, int64_t *deleted);
void store_grant_sweep_reset(struct store_grant_sweep *sw);

/*
 * Deletes at most limit (and at most 256) grants revoked before `before`, found
 * through the partial index grants_revoked (schema/002): cheap however large the
 * table. *deleted receives how many.
 */
int store_grant_purge_revoked_indexed(struct store *st, int64_t before, int limit,
    int64_t *deleted);
/* Number of live grants (not revoked, not expired) at now. */
int store_grant_count_live(struct store *st, int64_t now, int64_t *count);

#endif
