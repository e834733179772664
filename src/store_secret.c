/* store_secret.c: SQL for the secrets and secret_versions tables. Values here are ciphertexts only. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

enum {
	SS_GET = STORE_STMT_CORE + 32,
	SS_LIST,
	SS_UPSERT,
	SS_DELETE,
	SS_VER_INSERT,
	SS_VER_GET,
	SS_BY_KEY,
	SS_RESEAL,
	SS_COUNT_BY_KEY,
};

#define SS_COLS "name, hosts, max_ttl_s, current_version, created_at, updated_at"

void
store_secret_free(struct store_secret *s)
{
	if (s == NULL)
		return;
	free(s->name);
	free(s->hosts_json);
	free(s);
}

static int
store_secret_row(sqlite3_stmt *s, struct store_secret **out)
{
	struct store_secret *sec;
	int rc;

	*out = NULL;
	if ((sec = calloc(1, sizeof(*sec))) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = store_col_text_dup(s, 0, &sec->name)) != 0 ||
	    (rc = store_col_text_dup(s, 1, &sec->hosts_json)) != 0) {
		store_secret_free(sec);
		return rc;
	}
	sec->max_ttl_s = sqlite3_column_int64(s, 2);
	sec->current_version = sqlite3_column_int64(s, 3);
	sec->created_at = sqlite3_column_int64(s, 4);
	sec->updated_at = sqlite3_column_int64(s, 5);
	*out = sec;
	return 0;
}

int
store_secret_get(struct store *st, const char *name, struct store_secret **out)
{
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	if ((s = store_stmt(st, SS_GET, "SELECT " SS_COLS " FROM secrets WHERE name = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = store_secret_row(s, out);
	else if (rc == SQLITE_DONE)
		rc = CB_ERR_NOTFOUND;
	else
		rc = store_err(st, sqlite3_extended_errcode(st->db), "secret get");
	store_stmt_done(s);
	return rc;
}

int
store_secret_list(struct store *st, struct store_secret ***out, size_t *n)
{
	struct store_secret **arr = NULL, **tmp;
	size_t cnt = 0, cap = 0, i;
	sqlite3_stmt *s;
	int rc;

	*out = NULL;
	*n = 0;
	if ((s = store_stmt(st, SS_LIST, "SELECT " SS_COLS " FROM secrets ORDER BY name")) == NULL)
		return CB_ERR_DB;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			if ((tmp = reallocarray(arr, cap, sizeof(*arr))) == NULL) {
				rc = CB_ERR_NOMEM;
				goto out;
			}
			arr = tmp;
		}
		if ((rc = store_secret_row(s, &arr[cnt])) != 0)
			goto out;
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		rc = store_err(st, sqlite3_extended_errcode(st->db), "secret list");
		goto out;
	}
	*out = arr;		/* transferred */
	*n = cnt;
	arr = NULL;
	rc = 0;
out:
	store_stmt_done(s);
	if (arr != NULL) {
		for (i = 0; i < cnt; i++)
			store_secret_free(arr[i]);
		free(arr);
	}
	return rc;
}

int
store_secret_upsert(struct store *st, const char *name, const char *hosts_json,
    int64_t max_ttl_s, int64_t current_version, int64_t now)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, SS_UPSERT,
	    "INSERT INTO secrets (" SS_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?5) "
	    "ON CONFLICT (name) DO UPDATE SET hosts = excluded.hosts, "
	    "max_ttl_s = excluded.max_ttl_s, current_version = excluded.current_version, "
	    "updated_at = excluded.updated_at")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, hosts_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, max_ttl_s);
	sqlite3_bind_int64(s, 4, current_version);
	sqlite3_bind_int64(s, 5, now);
	return store_step_done(st, s);
}

int
store_secret_delete(struct store *st, const char *name)
{
	sqlite3_stmt *s;
	int rc;

	/* secret_versions rows go with it (ON DELETE CASCADE, foreign_keys=ON). */
	if ((s = store_stmt(st, SS_DELETE, "DELETE FROM secrets WHERE name = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	return sqlite3_changes(st->db) == 1 ? 0 : CB_ERR_NOTFOUND;
}

int
store_secret_version_insert(struct store *st, const char *name, int64_t version,
    int64_t key_id, const uint8_t *ct, size_t ctlen, int64_t now)
{
	sqlite3_stmt *s;

	if ((s = store_stmt(st, SS_VER_INSERT,
	    "INSERT INTO secret_versions (name, version, key_id, ct, created_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, version);
	sqlite3_bind_int64(s, 3, key_id);
	sqlite3_bind_blob64(s, 4, ct, ctlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now);
	return store_step_done(st, s);
}

int
store_secret_version_get(struct store *st, const char *name, int64_t version,
    int64_t *key_id, uint8_t **ct, size_t *ctlen)
{
	sqlite3_stmt *s;
	int rc;

	*key_id = 0;
	*ct = NULL;
	*ctlen = 0;
	if ((s = store_stmt(st, SS_VER_GET,
	    "SELECT key_id, ct FROM secret_versions WHERE name = ?1 AND version = ?2")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, version);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*key_id = sqlite3_column_int64(s, 0);
		rc = store_col_blob_dup(s, 1, ct, ctlen);
	} else if (rc == SQLITE_DONE)
		rc = CB_ERR_NOTFOUND;
	else
		rc = store_err(st, sqlite3_extended_errcode(st->db), "version get");
	store_stmt_done(s);
	return rc;
}

void
store_version_refs_free(struct store_version_ref *refs, size_t n)
{
	size_t i;

	if (refs == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(refs[i].name);
		free(refs[i].ct);
	}
	free(refs);
}

int
store_secret_versions_by_key(struct store *st, int64_t key_id, size_t limit,
    struct store_version_ref **out, size_t *n)
{
	struct store_version_ref *arr = NULL;
	size_t cnt = 0;
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if (limit == 0 || limit > 100000)
		return CB_ERR_INVAL;
	if ((arr = calloc(limit, sizeof(*arr))) == NULL)
		return CB_ERR_NOMEM;
	if ((s = store_stmt(st, SS_BY_KEY,
	    "SELECT name, version, ct FROM secret_versions WHERE key_id = ?1 "
	    "ORDER BY name, version LIMIT ?2")) == NULL) {
		free(arr);
		return CB_ERR_DB;
	}
	sqlite3_bind_int64(s, 1, key_id);
	sqlite3_bind_int64(s, 2, (int64_t)limit);
	while (cnt < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_version_ref *r = &arr[cnt];

		r->key_id = key_id;
		r->version = sqlite3_column_int64(s, 1);
		if ((rc = store_col_text_dup(s, 0, &r->name)) != 0 ||
		    (rc = store_col_blob_dup(s, 2, &r->ct, &r->ctlen)) != 0) {
			cnt++;
			goto out;
		}
		cnt++;
	}
	if (cnt < limit && rc != SQLITE_DONE) {
		rc = store_err(st, sqlite3_extended_errcode(st->db), "versions by key");
		goto out;
	}
	*out = arr;		/* transferred */
	*n = cnt;
	arr = NULL;
	rc = 0;
out:
	store_stmt_done(s);
	store_version_refs_free(arr, cnt);
	return rc;
}

int
store_secret_version_reseal(struct store *st, const char *name, int64_t version,
    int64_t old_key_id, int64_t new_key_id, const uint8_t *ct, size_t ctlen)
{
	sqlite3_stmt *s;
	int rc;

	/* Guarded by old_key_id so a row already resealed is never overwritten. */
	if ((s = store_stmt(st, SS_RESEAL,
	    "UPDATE secret_versions SET key_id = ?4, ct = ?5 "
	    "WHERE name = ?1 AND version = ?2 AND key_id = ?3")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, version);
	sqlite3_bind_int64(s, 3, old_key_id);
	sqlite3_bind_int64(s, 4, new_key_id);
	sqlite3_bind_blob64(s, 5, ct, ctlen, SQLITE_STATIC);
	if ((rc = store_step_done(st, s)) != 0)
		return rc;
	return sqlite3_changes(st->db) == 1 ? 0 : CB_ERR_NOTFOUND;
}

int
store_secret_versions_count_by_key(struct store *st, int64_t key_id, int64_t *count)
{
	sqlite3_stmt *s;
	int rc;

	*count = 0;
	if ((s = store_stmt(st, SS_COUNT_BY_KEY,
	    "SELECT COUNT(*) FROM secret_versions WHERE key_id = ?1")) == NULL)
		return CB_ERR_DB;
	sqlite3_bind_int64(s, 1, key_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*count = sqlite3_column_int64(s, 0);
		rc = 0;
	} else
		rc = store_err(st, sqlite3_extended_errcode(st->db), "count by key");
	store_stmt_done(s);
	return rc;
}
