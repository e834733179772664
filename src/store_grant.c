/* store_grant.c: the SQL of the grants table (see store_grant.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "store_int.h"

enum {
	ST_GRANT_INSERT = STORE_STMT_GRANT,
	ST_GRANT_GET,
	ST_GRANT_USE,
	ST_GRANT_STATE,
	ST_GRANT_REVOKE,
	ST_GRANT_REVOKE_SBX,
	ST_GRANT_REVOKE_SBX_BY,
	ST_GRANT_SBX_LIVE,
	ST_GRANT_PURGE_EXPIRED,
	ST_GRANT_COUNT_LIVE,
	ST_GRANT_PURGE_REVOKED_IDX,
	ST_GRANT_PURGE_END,
	ST_GRANT_PURGE_WINDOW,
	ST_GRANT_PURGE_REST,
	ST_GRANT_SWEEP_IDS_END,
	ST_GRANT_SWEEP_IDS_WINDOW,
	ST_GRANT_SWEEP_IDS_REST,
	ST_GRANT_SWEEP_SBX_END,
	ST_GRANT_SWEEP_SBX_WINDOW,
	ST_GRANT_SWEEP_SBX_REST,
	ST_GRANT_DELETE_KEY,
	ST_GRANT_USES_PURGE_WINDOW,
	ST_GRANT_USES_PURGE_REST,
	ST_GRANT_USES_DELETE_KEY,
	ST_GRANT_GET_USES,
	ST_GRANT_USE_LOG,
	ST_GRANT_FOLD,
	ST_GRANT_FOLD_CLEAR,
};

#define PURGE_KEYS_MAX	256	/* revoked grants deleted per call, at most */

#define GRANT_COLS "id, sandbox_id, minted_by, kid, created_at, not_before, expires_at," \
	" max_uses, uses, revoked_at, has_inject, bindings"
/*
 * The same columns of grants g LEFT JOIN grant_uses u (GRANT_USES_JOIN), uses counted
 * in both (schema/004).
 */
#define GRANT_COLS_G "g.id, g.sandbox_id, g.minted_by, g.kid, g.created_at, g.not_before," \
	" g.expires_at, g.max_uses, g.uses + IFNULL(u.uses, 0) AS uses, g.revoked_at," \
	" g.has_inject, g.bindings"
#define GRANT_USES_JOIN " LEFT JOIN grant_uses u ON u.expires_at = g.expires_at AND u.id = g.id"
/* The key of grant ?1 in grants: a lookup through grant_ids (schema/003). */
#define GRANT_KEY "expires_at = (SELECT expires_at FROM grant_ids WHERE id = ?1) AND id = ?1"
/* The same, for grants g. */
#define GRANT_KEY_G "g.expires_at = (SELECT expires_at FROM grant_ids WHERE id = ?1) AND g.id = ?1"

void
store_grant_free(struct store_grant *g)
{
	if (g == NULL)
		return;
	free(g->id);
	free(g->sandbox_id);
	free(g->minted_by);
	free(g->kid);
	free(g->bindings);
	free(g);
}

int
store_grant_insert(struct store *st, const struct store_grant *g)
{
	sqlite3_stmt *s;

	s = store_stmt(st, ST_GRANT_INSERT,
	    "INSERT INTO grants (" GRANT_COLS ") VALUES"
	    " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, g->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, g->sandbox_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, g->minted_by, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, g->kid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, g->created_at);
	sqlite3_bind_int64(s, 6, g->not_before);
	sqlite3_bind_int64(s, 7, g->expires_at);
	sqlite3_bind_int64(s, 8, g->max_uses);
	sqlite3_bind_int64(s, 9, g->uses);
	if (g->revoked_at != 0)
		sqlite3_bind_int64(s, 10, g->revoked_at);
	else
		sqlite3_bind_null(s, 10);
	sqlite3_bind_int(s, 11, g->has_inject ? 1 : 0);
	sqlite3_bind_text(s, 12, g->bindings, -1, SQLITE_STATIC);
	return store_step_done(st, s);
}

/* Fills the numbers of g from the current row (columns as GRANT_COLS); strings borrowed. */
static void
row_borrow(sqlite3_stmt *s, struct store_grant *g)
{
	g->id = (char *)sqlite3_column_text(s, 0);
	g->sandbox_id = (char *)sqlite3_column_text(s, 1);
	g->minted_by = (char *)sqlite3_column_text(s, 2);
	g->kid = (char *)sqlite3_column_text(s, 3);
	g->created_at = sqlite3_column_int64(s, 4);
	g->not_before = sqlite3_column_int64(s, 5);
	g->expires_at = sqlite3_column_int64(s, 6);
	g->max_uses = sqlite3_column_int64(s, 7);
	g->uses = sqlite3_column_int64(s, 8);
	g->revoked_at = sqlite3_column_type(s, 9) == SQLITE_NULL ? 0 :
	    sqlite3_column_int64(s, 9);
	g->has_inject = sqlite3_column_int(s, 10) != 0;
	g->bindings = (char *)sqlite3_column_text(s, 11);
}

/*
 * The uses of an unlimited grant still in grant_use_log (schema/005), for one more
 * column: a scan of the log (at most about STORE_USE_LOG_FOLD rows), so only the
 * grant's display reads it, in the same statement (one snapshot: a fold in between
 * can neither hide nor double them).
 */
#define GRANT_LOGGED_USES "CASE WHEN g.max_uses = 0 THEN (SELECT count(*) FROM" \
	" grant_use_log l WHERE l.expires_at = g.expires_at AND l.id = g.id) ELSE 0 END"

static int
grant_get(struct store *st, const char *id, int logged, struct store_grant **out)
{
	struct store_grant *g = NULL, b;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	if (logged)
		s = store_stmt(st, ST_GRANT_GET_USES,
		    "SELECT " GRANT_COLS_G ", " GRANT_LOGGED_USES " FROM grants g"
		    GRANT_USES_JOIN " WHERE " GRANT_KEY_G);
	else
		s = store_stmt(st, ST_GRANT_GET,
		    "SELECT " GRANT_COLS_G " FROM grants g" GRANT_USES_JOIN
		    " WHERE " GRANT_KEY_G);
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		rc = CB_ERR_NOTFOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rc = store_err(st, rc, "grant get");
		goto out;
	}
	rc = CB_ERR_NOMEM;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		goto out;
	row_borrow(s, &b);
	if (logged)
		b.uses += sqlite3_column_int64(s, 12);
	*g = b;
	g->id = g->sandbox_id = g->minted_by = g->kid = g->bindings = NULL;
	if ((rc = store_col_text_dup(s, 0, &g->id)) != 0 ||
	    (rc = store_col_text_dup(s, 1, &g->sandbox_id)) != 0 ||
	    (rc = store_col_text_dup(s, 2, &g->minted_by)) != 0 ||
	    (rc = store_col_text_dup(s, 3, &g->kid)) != 0 ||
	    (rc = store_col_text_dup(s, 11, &g->bindings)) != 0)
		goto out;
	*out = g;	/* transferred */
	g = NULL;
	rc = 0;
 out:
	store_stmt_done(s);
	store_grant_free(g);
	return rc;
}

int
store_grant_get(struct store *st, const char *id, struct store_grant **out)
{
	return grant_get(st, id, 0, out);
}

int
store_grant_get_uses(struct store *st, const char *id, struct store_grant **out)
{
	return grant_get(st, id, 1, out);
}

/*
 * Folds grant_use_log into grant_uses: one upsert per grant, in the key's order, then
 * the log is emptied. Inside the writer's transaction, so nothing is counted twice or
 * lost; a failure fails the caller's op, whose savepoint takes both statements back.
 * A grant purged before the fold leaves a grant_uses row without a grant: never read
 * (every read joins from grants), it goes with the next purge of its expiry's range.
 * (Looking each grant up instead doubled the fold's time: ~1.2 µs per use.)
 */
static int
use_log_fold(struct store *st)
{
	sqlite3_stmt *s;
	int rc;

	s = store_stmt(st, ST_GRANT_FOLD,
	    "INSERT INTO grant_uses (expires_at, id, uses)"
	    " SELECT expires_at, id, count(*) FROM grant_use_log WHERE 1"
	    " GROUP BY expires_at, id"
	    " ON CONFLICT (expires_at, id) DO UPDATE SET uses = uses + excluded.uses");
	if (s == NULL)
		return CB_ERR_DB;
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	s = store_stmt(st, ST_GRANT_FOLD_CLEAR, "DELETE FROM grant_use_log");
	return s == NULL ? CB_ERR_DB : store_step_done(st, s);
}

int
store_grant_use(struct store *st, const char *id, int64_t expires_at, int64_t now,
    int *result)
{
	sqlite3_stmt *s;
	int rc, limited = 0;

	*result = STORE_GRANT_GONE;
	/* The grant's state, then the use counted (schema/004 and 005). */
	s = store_stmt(st, ST_GRANT_STATE,
	    "SELECT g.revoked_at IS NOT NULL, g.expires_at <= ?2,"
	    " g.max_uses > 0 AND g.uses + IFNULL(u.uses, 0) >= g.max_uses, g.max_uses > 0"
	    " FROM grants g" GRANT_USES_JOIN " WHERE g.expires_at = ?3 AND g.id = ?1");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, expires_at);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int(s, 0))
			*result = STORE_GRANT_REVOKED;
		else if (sqlite3_column_int(s, 1))
			*result = STORE_GRANT_EXPIRED;
		else if (sqlite3_column_int(s, 2))
			*result = STORE_GRANT_USED_UP;
		else
			*result = STORE_GRANT_USED;
		limited = sqlite3_column_int(s, 3);
		rc = 0;
	} else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = store_err(st, rc, "grant state");
	store_stmt_done(s);
	if (rc != 0 || *result != STORE_GRANT_USED)
		return rc;
	if (limited)	/* counted at once: the next use checks the limit against it */
		s = store_stmt(st, ST_GRANT_USE,
		    "INSERT INTO grant_uses (expires_at, id, uses) VALUES (?1, ?2, 1)"
		    " ON CONFLICT (expires_at, id) DO UPDATE SET uses = uses + 1");
	else		/* appended to the log's last page (schema/005) */
		s = store_stmt(st, ST_GRANT_USE_LOG,
		    "INSERT INTO grant_use_log (expires_at, id) VALUES (?1, ?2)");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, expires_at);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) == 0 && !limited &&
	    sqlite3_last_insert_rowid(st->db) >= STORE_USE_LOG_FOLD)
		rc = use_log_fold(st);
	if (rc != 0)
		*result = STORE_GRANT_GONE;
	return rc;
}

int
store_grant_revoke(struct store *st, const char *id, int64_t now, int *changed)
{
	sqlite3_stmt *s;
	int rc;

	*changed = 0;
	s = store_stmt(st, ST_GRANT_REVOKE,
	    "UPDATE grants SET revoked_at = ?2 WHERE " GRANT_KEY " AND revoked_at IS NULL");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	*changed = sqlite3_changes(st->db) > 0;
	return 0;
}

int
store_grant_revoke_sandbox(struct store *st, const char *sandbox_id, const char *minted_by,
    int64_t now, int64_t *count)
{
	sqlite3_stmt *s;
	int rc;

	*count = 0;
	if (minted_by == NULL)
		s = store_stmt(st, ST_GRANT_REVOKE_SBX,
		    "UPDATE grants SET revoked_at = ?2 FROM grant_sandboxes s"
		    " WHERE s.sandbox_id = ?1 AND grants.expires_at = s.expires_at"
		    " AND grants.id = s.id AND grants.sandbox_id = ?1"
		    " AND grants.revoked_at IS NULL");
	else
		s = store_stmt(st, ST_GRANT_REVOKE_SBX_BY,
		    "UPDATE grants SET revoked_at = ?2 FROM grant_sandboxes s"
		    " WHERE s.sandbox_id = ?1 AND grants.expires_at = s.expires_at"
		    " AND grants.id = s.id AND grants.sandbox_id = ?1"
		    " AND grants.revoked_at IS NULL AND grants.minted_by = ?3");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, sandbox_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	if (minted_by != NULL)
		sqlite3_bind_text(s, 3, minted_by, -1, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	*count = sqlite3_changes(st->db);
	return 0;
}

int
store_grant_sandbox_live(struct store *st, const char *sandbox_id, int64_t now, int limit,
    store_grant_fn fn, void *arg)
{
	struct store_grant g;
	sqlite3_stmt *s;
	int rc;

	s = store_stmt(st, ST_GRANT_SBX_LIVE,
	    /* the newest limit grants, handed over oldest first (the oldest binding wins) */
	    "SELECT " GRANT_COLS " FROM (SELECT " GRANT_COLS_G " FROM grant_sandboxes s"
	    " JOIN grants g ON g.expires_at = s.expires_at AND g.id = s.id" GRANT_USES_JOIN
	    " WHERE s.sandbox_id = ?1 AND s.expires_at > ?2 AND g.sandbox_id = ?1"
	    " AND g.not_before <= ?2 AND g.revoked_at IS NULL"
	    " AND (g.max_uses = 0 OR g.uses + IFNULL(u.uses, 0) < g.max_uses)"
	    " ORDER BY g.created_at DESC, g.id DESC LIMIT ?3) ORDER BY created_at, id");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, sandbox_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int(s, 3, limit);
	for (;;) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			rc = 0;
			break;
		}
		if (rc != SQLITE_ROW) {
			rc = store_err(st, rc, "sandbox grants");
			break;
		}
		row_borrow(s, &g);
		if (g.id == NULL || g.sandbox_id == NULL || g.bindings == NULL)
			continue;
		if ((rc = fn(arg, &g)) != 0)
			break;
	}
	store_stmt_done(s);
	return rc;
}

/*
 * Binds parameter i to a text key part that may be NULL (the start: "" sorts before
 * every ID and sandbox ID, which are never empty).
 */
static void
bind_cursor_text(sqlite3_stmt *s, int i, const char *v)
{
	sqlite3_bind_text(s, i, v != NULL ? v : "", -1, SQLITE_TRANSIENT);
}

/* A key of grants or of a lookup table; parts a table does not have stay NULL / 0. */
struct gkey {
	char *sandbox_id;
	int64_t expires_at;
	char *id;
};

static void
gkey_clear(struct gkey *k)
{
	free(k->sandbox_id);
	free(k->id);
	memset(k, 0, sizeof(*k));
}

/*
 * Steps s, a window's "the limit-th key after the cursor" SELECT, whose columns are
 * named by cols ('s' sandbox_id, 'e' expires_at, 'i' id). Fills *k and sets *found,
 * or leaves *found 0 when there are fewer rows than that (the window is the rest).
 */
static int
window_end(struct store *st, sqlite3_stmt *s, const char *cols, struct gkey *k, int *found)
{
	int rc, i;

	*found = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = 1;
		for (i = 0, rc = 0; cols[i] != '\0' && rc == 0; i++) {
			if (cols[i] == 'e')
				k->expires_at = sqlite3_column_int64(s, i);
			else
				rc = store_col_text_dup(s, i, cols[i] == 's' ? &k->sandbox_id :
				    &k->id);
		}
	} else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = store_err(st, rc, "purge window");
	store_stmt_done(s);
	return rc;
}

/* Runs a window's DELETE (bound by the caller) and counts it into *deleted. */
static int
window_delete(struct store *st, sqlite3_stmt *s, int64_t *deleted)
{
	int rc;

	if (s == NULL)
		return CB_ERR_DB;
	if ((rc = store_step_done(st, s)) == 0)
		*deleted = sqlite3_changes(st->db);
	return rc;
}

/*
 * A purge window's DELETE from a table keyed (expires_at, id), bound: up to and
 * including end, or without an end every row that expired before before.
 */
static sqlite3_stmt *
window_stmt(struct store *st, const struct gkey *end, int64_t before, int win_id,
    const char *win_sql, int rest_id, const char *rest_sql)
{
	sqlite3_stmt *s;

	if (end != NULL) {
		if ((s = store_stmt(st, win_id, win_sql)) != NULL) {
			sqlite3_bind_int64(s, 1, end->expires_at);
			sqlite3_bind_text(s, 2, end->id, -1, SQLITE_STATIC);
		}
	} else if ((s = store_stmt(st, rest_id, rest_sql)) != NULL)
		sqlite3_bind_int64(s, 1, before);
	return s;
}

int
store_grant_purge_expired(struct store *st, int64_t before, int limit, int64_t *deleted)
{
	struct gkey end;
	sqlite3_stmt *s;
	int rc, found;

	*deleted = 0;
	memset(&end, 0, sizeof(end));
	if (limit < 1)
		return CB_ERR_INVAL;
	/*
	 * grants is ordered by (expires_at, id): the expired rows are the front of the
	 * table. Find the limit-th one, then delete the range up to it: contiguous pages.
	 */
	s = store_stmt(st, ST_GRANT_PURGE_END,
	    "SELECT expires_at, id FROM grants WHERE expires_at < ?1"
	    " ORDER BY expires_at, id LIMIT 1 OFFSET ?2");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, before);
	sqlite3_bind_int(s, 2, limit - 1);
	if ((rc = window_end(st, s, "ei", &end, &found)) != 0)
		goto out;
	/*
	 * The window's bound must be the primary key's range, the row value alone:
	 * "expires_at < ?1 AND (expires_at, id) <= (...)" would walk every expired row
	 * when many expire in the same second (test_grant_purge checks the steps).
	 * Without a limit-th expired row, every expired row: fewer than limit.
	 * First the same range of grant_uses (schema/004, keyed as grants), then grants.
	 */
	s = window_stmt(st, found ? &end : NULL, before, ST_GRANT_USES_PURGE_WINDOW,
	    "DELETE FROM grant_uses WHERE (expires_at, id) <= (?1, ?2)",
	    ST_GRANT_USES_PURGE_REST, "DELETE FROM grant_uses WHERE expires_at < ?1");
	if ((rc = s == NULL ? CB_ERR_DB : store_step_done(st, s)) != 0)
		goto out;
	s = window_stmt(st, found ? &end : NULL, before, ST_GRANT_PURGE_WINDOW,
	    "DELETE FROM grants WHERE (expires_at, id) <= (?1, ?2)",
	    ST_GRANT_PURGE_REST, "DELETE FROM grants WHERE expires_at < ?1");
	rc = window_delete(st, s, deleted);
 out:
	gkey_clear(&end);
	return rc;
}

void
store_grant_sweep_reset(struct store_grant_sweep *sw)
{
	free(sw->sandbox_id);
	free(sw->id);
	memset(sw, 0, sizeof(*sw));
}

/* One window of grant_ids after sw->id. */
static int
sweep_ids(struct store *st, struct store_grant_sweep *sw, int64_t before, int limit,
    int64_t *deleted)
{
	struct gkey end;
	sqlite3_stmt *s;
	int rc, found;

	memset(&end, 0, sizeof(end));
	s = store_stmt(st, ST_GRANT_SWEEP_IDS_END,
	    "SELECT id FROM grant_ids WHERE id > ?1 ORDER BY id LIMIT 1 OFFSET ?2");
	if (s == NULL)
		return CB_ERR_DB;
	bind_cursor_text(s, 1, sw->id);
	sqlite3_bind_int(s, 2, limit - 1);
	if ((rc = window_end(st, s, "i", &end, &found)) != 0)
		goto out;
	if (found)
		s = store_stmt(st, ST_GRANT_SWEEP_IDS_WINDOW,
		    "DELETE FROM grant_ids WHERE id > ?1 AND id <= ?3 AND expires_at < ?2");
	else
		s = store_stmt(st, ST_GRANT_SWEEP_IDS_REST,
		    "DELETE FROM grant_ids WHERE id > ?1 AND expires_at < ?2");
	if (s != NULL) {
		bind_cursor_text(s, 1, sw->id);
		sqlite3_bind_int64(s, 2, before);
		if (found)
			sqlite3_bind_text(s, 3, end.id, -1, SQLITE_STATIC);
	}
	if ((rc = window_delete(st, s, deleted)) != 0)
		goto out;
	free(sw->id);
	sw->id = end.id;	/* transferred; NULL: this table is done */
	end.id = NULL;
	if (!found)
		sw->phase = STORE_SWEEP_SANDBOXES;
 out:
	gkey_clear(&end);
	return rc;
}

/* One window of grant_sandboxes after (sw->sandbox_id, sw->expires_at, sw->id). */
static int
sweep_sandboxes(struct store *st, struct store_grant_sweep *sw, int64_t before, int limit,
    int64_t *deleted)
{
	struct gkey end;
	sqlite3_stmt *s;
	int64_t cur_exp = sw->sandbox_id != NULL ? sw->expires_at : INT64_MIN;
	int rc, found;

	memset(&end, 0, sizeof(end));
	s = store_stmt(st, ST_GRANT_SWEEP_SBX_END,
	    "SELECT sandbox_id, expires_at, id FROM grant_sandboxes"
	    " WHERE (sandbox_id, expires_at, id) > (?1, ?2, ?3)"
	    " ORDER BY sandbox_id, expires_at, id LIMIT 1 OFFSET ?4");
	if (s == NULL)
		return CB_ERR_DB;
	bind_cursor_text(s, 1, sw->sandbox_id);
	sqlite3_bind_int64(s, 2, cur_exp);
	bind_cursor_text(s, 3, sw->id);
	sqlite3_bind_int(s, 4, limit - 1);
	if ((rc = window_end(st, s, "sei", &end, &found)) != 0)
		goto out;
	if (found)
		s = store_stmt(st, ST_GRANT_SWEEP_SBX_WINDOW,
		    "DELETE FROM grant_sandboxes WHERE (sandbox_id, expires_at, id) > (?1, ?2, ?3)"
		    " AND (sandbox_id, expires_at, id) <= (?5, ?6, ?7) AND expires_at < ?4");
	else
		s = store_stmt(st, ST_GRANT_SWEEP_SBX_REST,
		    "DELETE FROM grant_sandboxes WHERE (sandbox_id, expires_at, id) > (?1, ?2, ?3)"
		    " AND expires_at < ?4");
	if (s != NULL) {
		bind_cursor_text(s, 1, sw->sandbox_id);
		sqlite3_bind_int64(s, 2, cur_exp);
		bind_cursor_text(s, 3, sw->id);
		sqlite3_bind_int64(s, 4, before);
		if (found) {
			sqlite3_bind_text(s, 5, end.sandbox_id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 6, end.expires_at);
			sqlite3_bind_text(s, 7, end.id, -1, SQLITE_STATIC);
		}
	}
	if ((rc = window_delete(st, s, deleted)) != 0)
		goto out;
	free(sw->sandbox_id);
	free(sw->id);
	sw->sandbox_id = end.sandbox_id;	/* transferred; NULL: this table is done */
	sw->expires_at = end.expires_at;
	sw->id = end.id;
	end.sandbox_id = end.id = NULL;
	if (!found)
		sw->phase = STORE_SWEEP_DONE;
 out:
	gkey_clear(&end);
	return rc;
}

int
store_grant_sweep(struct store *st, struct store_grant_sweep *sw, int64_t before, int limit,
    int64_t *deleted)
{
	*deleted = 0;
	if (limit < 1)
		return CB_ERR_INVAL;
	switch (sw->phase) {
	case STORE_SWEEP_IDS:
		return sweep_ids(st, sw, before, limit, deleted);
	case STORE_SWEEP_SANDBOXES:
		return sweep_sandboxes(st, sw, before, limit, deleted);
	default:
		return 0;
	}
}

/* Runs sql, a DELETE by key (expires_at ?1, id ?2); adds the rows deleted to *count. */
static int
delete_key(struct store *st, int stmt_id, const char *sql, int64_t exp, const char *id,
    int64_t *count)
{
	sqlite3_stmt *s;
	int rc;

	if ((s = store_stmt(st, stmt_id, sql)) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, exp);
	sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) == 0 && count != NULL)
		*count += sqlite3_changes(st->db);
	return rc;
}

int
store_grant_purge_revoked_indexed(struct store *st, int64_t before, int limit,
    int64_t *deleted)
{
	struct { int64_t exp; char *id; } keys[PURGE_KEYS_MAX];
	sqlite3_stmt *s;
	int rc = 0, n = 0, i, want;

	*deleted = 0;
	if (limit < 1)
		return CB_ERR_INVAL;
	want = limit < PURGE_KEYS_MAX ? limit : PURGE_KEYS_MAX;
	/* The WHERE repeats the partial index's condition so the planner may use it. */
	s = store_stmt(st, ST_GRANT_PURGE_REVOKED_IDX,
	    "SELECT expires_at, id FROM grants INDEXED BY grants_revoked"
	    " WHERE revoked_at IS NOT NULL AND revoked_at < ?1 LIMIT ?2");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, before);
	sqlite3_bind_int(s, 2, want);
	while (n < want) {
		if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? 0 : store_err(st, rc, "revoked grants");
			break;
		}
		keys[n].exp = sqlite3_column_int64(s, 0);
		if ((rc = store_col_text_dup(s, 1, &keys[n].id)) != 0)
			break;
		n++;
	}
	store_stmt_done(s);
	/* Then each by its key (revocations are few: their rows are wherever they are). */
	for (i = 0; i < n && rc == 0; i++) {
		if ((rc = delete_key(st, ST_GRANT_DELETE_KEY,
		    "DELETE FROM grants WHERE expires_at = ?1 AND id = ?2",
		    keys[i].exp, keys[i].id, deleted)) == 0)
			rc = delete_key(st, ST_GRANT_USES_DELETE_KEY,
			    "DELETE FROM grant_uses WHERE expires_at = ?1 AND id = ?2",
			    keys[i].exp, keys[i].id, NULL);
	}
	for (i = 0; i < n; i++)
		free(keys[i].id);
	return rc;
}

int
store_grant_count_live(struct store *st, int64_t now, int64_t *count)
{
	sqlite3_stmt *s;
	int rc;

	*count = 0;
	s = store_stmt(st, ST_GRANT_COUNT_LIVE,
	    "SELECT count(*) FROM grants WHERE expires_at > ?1 AND revoked_at IS NULL");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(s, 0);
		rc = 0;
	} else
		rc = store_err(st, rc, "live grants");
	store_stmt_done(s);
	return rc;
}
