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
};

#define GRANT_COLS "id, sandbox_id, minted_by, kid, created_at, not_before, expires_at," \
	" max_uses, uses, revoked_at, has_inject, bindings"

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

int
store_grant_get(struct store *st, const char *id, struct store_grant **out)
{
	struct store_grant *g = NULL, b;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	s = store_stmt(st, ST_GRANT_GET, "SELECT " GRANT_COLS " FROM grants WHERE id = ?1");
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
store_grant_use(struct store *st, const char *id, int64_t now, int *result)
{
	sqlite3_stmt *s;
	int rc;

	*result = STORE_GRANT_GONE;
	s = store_stmt(st, ST_GRANT_USE,
	    "UPDATE grants SET uses = uses + 1 WHERE id = ?1 AND"
	    " (max_uses = 0 OR uses < max_uses) AND revoked_at IS NULL AND expires_at > ?2");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	if (sqlite3_changes(st->db) == 1) {
		*result = STORE_GRANT_USED;
		return 0;
	}
	/* Nothing changed: say why, in the order resolve reports refusals. */
	s = store_stmt(st, ST_GRANT_STATE,
	    "SELECT revoked_at IS NOT NULL, expires_at <= ?2, max_uses > 0 AND uses >= max_uses"
	    " FROM grants WHERE id = ?1");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int(s, 0))
			*result = STORE_GRANT_REVOKED;
		else if (sqlite3_column_int(s, 1))
			*result = STORE_GRANT_EXPIRED;
		else
			*result = STORE_GRANT_USED_UP;
		rc = 0;
	} else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = store_err(st, rc, "grant state");
	store_stmt_done(s);
	return rc;
}

int
store_grant_revoke(struct store *st, const char *id, int64_t now, int *changed)
{
	sqlite3_stmt *s;
	int rc;

	*changed = 0;
	s = store_stmt(st, ST_GRANT_REVOKE,
	    "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL");
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
		    "UPDATE grants SET revoked_at = ?2 WHERE sandbox_id = ?1 AND"
		    " revoked_at IS NULL");
	else
		s = store_stmt(st, ST_GRANT_REVOKE_SBX_BY,
		    "UPDATE grants SET revoked_at = ?2 WHERE sandbox_id = ?1 AND"
		    " revoked_at IS NULL AND minted_by = ?3");
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
	    "SELECT " GRANT_COLS " FROM (SELECT " GRANT_COLS " FROM grants"
	    " WHERE sandbox_id = ?1 AND expires_at > ?2 AND not_before <= ?2"
	    " AND revoked_at IS NULL AND (max_uses = 0 OR uses < max_uses)"
	    " ORDER BY created_at DESC, id DESC LIMIT ?3) ORDER BY created_at, id");
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

int
store_grant_purge_expired(struct store *st, int64_t before, int limit, int64_t *deleted)
{
	sqlite3_stmt *s;
	int rc;

	*deleted = 0;
	s = store_stmt(st, ST_GRANT_PURGE_EXPIRED,
	    "DELETE FROM grants WHERE rowid IN"
	    " (SELECT rowid FROM grants WHERE expires_at < ?1 LIMIT ?2)");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, before);
	sqlite3_bind_int(s, 2, limit);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	*deleted = sqlite3_changes(st->db);
	return 0;
}

int
store_grant_purge_revoked_indexed(struct store *st, int64_t before, int limit,
    int64_t *deleted)
{
	sqlite3_stmt *s;
	int rc;

	*deleted = 0;
	/* The WHERE repeats the partial index's condition so the planner may use it. */
	s = store_stmt(st, ST_GRANT_PURGE_REVOKED_IDX,
	    "DELETE FROM grants WHERE rowid IN (SELECT rowid FROM grants INDEXED BY"
	    " grants_revoked WHERE revoked_at IS NOT NULL AND revoked_at < ?1 LIMIT ?2)");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, before);
	sqlite3_bind_int(s, 2, limit);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	*deleted = sqlite3_changes(st->db);
	return 0;
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
