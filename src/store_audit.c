/* store_audit.c: the SQL of the audit table and its anchor in meta (see store_audit.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "store_int.h"

enum {
	ST_AUDIT_INSERT = STORE_STMT_AUDIT,
	ST_AUDIT_LAST,
	ST_AUDIT_LIST,
	ST_AUDIT_COUNT,
	ST_AUDIT_WALK,
	ST_AUDIT_ANCHOR_SET,
	ST_AUDIT_ANCHOR_GET,
};

#define ANCHOR_KEY	"audit_head"
#define ANCHOR_LEN	(8 + STORE_AUDIT_HASH_LEN)	/* big-endian seq || hash */
#define ANCHOR_MAC_LEN	(ANCHOR_LEN + STORE_AUDIT_HASH_LEN)	/* ... || MAC */

static void
bind_opt_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

int
store_audit_insert(struct store *st, int64_t seq, int64_t ts, const char *actor,
    const char *role, const char *action, const char *outcome, const char *grant_id,
    const char *sandbox_id, const char *detail, const uint8_t prev_hash[STORE_AUDIT_HASH_LEN],
    const uint8_t hash[STORE_AUDIT_HASH_LEN])
{
	sqlite3_stmt *s;

	s = store_stmt(st, ST_AUDIT_INSERT,
	    "INSERT INTO audit (seq, ts, actor, role, action, outcome, grant_id, sandbox_id,"
	    " detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, ts);
	sqlite3_bind_text(s, 3, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, outcome, -1, SQLITE_STATIC);
	bind_opt_text(s, 7, grant_id);
	bind_opt_text(s, 8, sandbox_id);
	bind_opt_text(s, 9, detail);
	sqlite3_bind_blob(s, 10, prev_hash, STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 11, hash, STORE_AUDIT_HASH_LEN, SQLITE_STATIC);
	return store_step_done(st, s);
}

int
store_audit_last(struct store *st, int64_t *seq, uint8_t hash[STORE_AUDIT_HASH_LEN])
{
	sqlite3_stmt *s;
	const void *h;
	int rc;

	*seq = 0;
	memset(hash, 0, STORE_AUDIT_HASH_LEN);
	s = store_stmt(st, ST_AUDIT_LAST,
	    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
	if (s == NULL)
		return CB_ERR_DB;
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rc = store_err(st, rc, "audit head");
		goto out;
	}
	*seq = sqlite3_column_int64(s, 0);
	h = sqlite3_column_blob(s, 1);
	if (h == NULL || sqlite3_column_bytes(s, 1) != STORE_AUDIT_HASH_LEN) {
		log_warnx("audit record %lld has a malformed hash", (long long)*seq);
		rc = CB_ERR_CORRUPT;
		goto out;
	}
	memcpy(hash, h, STORE_AUDIT_HASH_LEN);
	rc = 0;
 out:
	store_stmt_done(s);
	return rc;
}

int
store_audit_anchor_set(struct store *st, const struct store_audit_anchor *a)
{
	uint8_t v[ANCHOR_MAC_LEN];
	sqlite3_stmt *s;
	uint64_t u = (uint64_t)a->seq;
	int i;

	for (i = 0; i < 8; i++)
		v[i] = (uint8_t)(u >> (56 - 8 * i));
	memcpy(v + 8, a->hash, STORE_AUDIT_HASH_LEN);
	memcpy(v + ANCHOR_LEN, a->mac, STORE_AUDIT_HASH_LEN);
	/*
	 * Updated in place: every batch saves it, and REPLACE deleted and re-inserted the
	 * row, which rewrote meta's key index too (one more WAL page per batch).
	 */
	s = store_stmt(st, ST_AUDIT_ANCHOR_SET,
	    "INSERT INTO meta (k, v) VALUES ('" ANCHOR_KEY "', ?1)"
	    " ON CONFLICT (k) DO UPDATE SET v = excluded.v");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_blob(s, 1, v, a->has_mac ? ANCHOR_MAC_LEN : ANCHOR_LEN, SQLITE_TRANSIENT);
	return store_step_done(st, s);
}

int
store_audit_anchor_get(struct store *st, struct store_audit_anchor *a)
{
	sqlite3_stmt *s;
	const uint8_t *v;
	uint64_t u = 0;
	int rc, i, len;

	memset(a, 0, sizeof(*a));
	s = store_stmt(st, ST_AUDIT_ANCHOR_GET,
	    "SELECT v FROM meta WHERE k = '" ANCHOR_KEY "'");
	if (s == NULL)
		return CB_ERR_DB;
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		rc = CB_ERR_NOTFOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rc = store_err(st, rc, "audit anchor");
		goto out;
	}
	v = sqlite3_column_blob(s, 0);
	len = sqlite3_column_bytes(s, 0);
	if (v == NULL || (len != ANCHOR_LEN && len != ANCHOR_MAC_LEN)) {
		rc = CB_ERR_CORRUPT;
		goto out;
	}
	for (i = 0; i < 8; i++)
		u = (u << 8) | v[i];
	a->seq = (int64_t)u;
	memcpy(a->hash, v + 8, STORE_AUDIT_HASH_LEN);
	if (len == ANCHOR_MAC_LEN) {
		memcpy(a->mac, v + ANCHOR_LEN, STORE_AUDIT_HASH_LEN);
		a->has_mac = 1;
	}
	rc = 0;
 out:
	store_stmt_done(s);
	return rc;
}

/* Fills row from the current result (columns in the order of the SELECTs below). */
static int
row_from_stmt(sqlite3_stmt *s, struct store_audit_row *row)
{
	const void *ph, *h;
	int bad = 0;

	row->seq = sqlite3_column_int64(s, 0);
	row->ts = sqlite3_column_int64(s, 1);
	row->actor = (char *)sqlite3_column_text(s, 2);
	row->role = (char *)sqlite3_column_text(s, 3);
	row->action = (char *)sqlite3_column_text(s, 4);
	row->outcome = (char *)sqlite3_column_text(s, 5);
	row->grant_id = (char *)sqlite3_column_text(s, 6);
	row->sandbox_id = (char *)sqlite3_column_text(s, 7);
	row->detail = (char *)sqlite3_column_text(s, 8);
	ph = sqlite3_column_blob(s, 9);
	if (ph != NULL && sqlite3_column_bytes(s, 9) == STORE_AUDIT_HASH_LEN)
		memcpy(row->prev_hash, ph, STORE_AUDIT_HASH_LEN);
	else {
		memset(row->prev_hash, 0, STORE_AUDIT_HASH_LEN);
		bad = 1;
	}
	h = sqlite3_column_blob(s, 10);
	if (h != NULL && sqlite3_column_bytes(s, 10) == STORE_AUDIT_HASH_LEN)
		memcpy(row->hash, h, STORE_AUDIT_HASH_LEN);
	else {
		memset(row->hash, 0, STORE_AUDIT_HASH_LEN);
		bad = 1;
	}
	return bad;
}

#define AUDIT_COLS "seq, ts, actor, role, action, outcome, grant_id, sandbox_id, detail," \
	" prev_hash, hash"

int
store_audit_walk(struct store *st, store_audit_fn fn, void *arg, int *has_anchor,
    struct store_audit_anchor *anchor)
{
	struct store_audit_row row;
	sqlite3_stmt *s = NULL;
	int rc, own_txn = 0, bad;

	*has_anchor = 0;
	/* One snapshot: the anchor and the rows must agree even while the writer appends. */
	if (!st->in_txn && sqlite3_get_autocommit(st->db)) {
		if ((rc = store_exec(st, "BEGIN")) != 0)
			return rc;
		own_txn = 1;
	}
	rc = store_audit_anchor_get(st, anchor);
	if (rc == 0)
		*has_anchor = 1;
	else if (rc == CB_ERR_CORRUPT)
		*has_anchor = -1;
	else if (rc != CB_ERR_NOTFOUND)
		goto out;
	s = store_stmt(st, ST_AUDIT_WALK, "SELECT " AUDIT_COLS " FROM audit ORDER BY seq ASC");
	if (s == NULL) {
		rc = CB_ERR_DB;
		goto out;
	}
	for (;;) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			rc = 0;
			break;
		}
		if (rc != SQLITE_ROW) {
			rc = store_err(st, rc, "audit walk");
			break;
		}
		bad = row_from_stmt(s, &row);
		if ((rc = fn(arg, &row, bad)) != 0)
			break;
	}
 out:
	store_stmt_done(s);
	if (own_txn)
		(void)store_exec(st, "COMMIT");
	return rc;
}

static int
dup_opt(const char *in, char **out)
{
	*out = NULL;
	if (in == NULL)
		return 0;
	if ((*out = strdup(in)) == NULL)
		return CB_ERR_NOMEM;
	return 0;
}

int
store_audit_list(struct store *st, int64_t after, int limit, struct store_audit_row **rows,
    size_t *n)
{
	struct store_audit_row *arr = NULL, tmp;
	sqlite3_stmt *s;
	size_t cnt = 0;
	int rc;

	*rows = NULL;
	*n = 0;
	if (limit < 1)
		limit = 1;
	if (limit > STORE_AUDIT_LIST_MAX)
		limit = STORE_AUDIT_LIST_MAX;
	s = store_stmt(st, ST_AUDIT_LIST,
	    "SELECT " AUDIT_COLS " FROM audit WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2");
	if (s == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int(s, 2, limit);
	if ((arr = calloc((size_t)limit, sizeof(*arr))) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_DONE) {
			rc = 0;
			break;
		}
		if (rc != SQLITE_ROW) {
			rc = store_err(st, rc, "audit list");
			goto out;
		}
		if (cnt >= (size_t)limit)
			break;
		(void)row_from_stmt(s, &tmp);
		arr[cnt].seq = tmp.seq;
		arr[cnt].ts = tmp.ts;
		memcpy(arr[cnt].prev_hash, tmp.prev_hash, STORE_AUDIT_HASH_LEN);
		memcpy(arr[cnt].hash, tmp.hash, STORE_AUDIT_HASH_LEN);
		cnt++;
		if ((rc = dup_opt(tmp.actor, &arr[cnt - 1].actor)) != 0 ||
		    (rc = dup_opt(tmp.role, &arr[cnt - 1].role)) != 0 ||
		    (rc = dup_opt(tmp.action, &arr[cnt - 1].action)) != 0 ||
		    (rc = dup_opt(tmp.outcome, &arr[cnt - 1].outcome)) != 0 ||
		    (rc = dup_opt(tmp.grant_id, &arr[cnt - 1].grant_id)) != 0 ||
		    (rc = dup_opt(tmp.sandbox_id, &arr[cnt - 1].sandbox_id)) != 0 ||
		    (rc = dup_opt(tmp.detail, &arr[cnt - 1].detail)) != 0)
			goto out;
	}
	if (cnt == 0) {
		free(arr);
		arr = NULL;
	}
	*rows = arr;	/* transferred */
	*n = cnt;
	arr = NULL;
	cnt = 0;
 out:
	store_stmt_done(s);
	store_audit_rows_free(arr, cnt);
	return rc;
}

void
store_audit_rows_free(struct store_audit_row *rows, size_t n)
{
	size_t i;

	if (rows == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(rows[i].actor);
		free(rows[i].role);
		free(rows[i].action);
		free(rows[i].outcome);
		free(rows[i].grant_id);
		free(rows[i].sandbox_id);
		free(rows[i].detail);
	}
	free(rows);
}

int
store_audit_count(struct store *st, int64_t *n)
{
	sqlite3_stmt *s;
	int rc;

	*n = 0;
	s = store_stmt(st, ST_AUDIT_COUNT, "SELECT count(*) FROM audit");
	if (s == NULL)
		return CB_ERR_DB;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*n = sqlite3_column_int64(s, 0);
		rc = 0;
	} else
		rc = store_err(st, rc, "audit count");
	store_stmt_done(s);
	return rc;
}
