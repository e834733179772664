/*
 * test_audit.c: the hash-chained audit log: append and verify; canonical encoding
 * (field boundaries, NULL vs ""); an edited, deleted, reordered record and a deleted
 * tail are detected and named by seq; the chain head survives a reopen; the listing;
 * a log rewritten whole with every hash recomputed fails the anchor's MAC under the
 * master key, which a master-key rotation moves (and refuses to move for such a log).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "audit.h"
#include "commit.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "store_audit.h"
#include "testutil.h"
#include "util.h"
#include "vault.h"

#define N_RECORDS	40

struct fixture {
	char dir[64];
	char path[128];
	char key[128];
	struct store *st;
	struct vault *v;
	uint8_t akey[CRYPTO_KEY_LEN];	/* the anchor key (vault_audit_key) */
	struct audit_chain ch;
};

static int
open_db(struct fixture *f)
{
	char why[256];

	return store_open(f->path, STORE_CREATE, &f->st, why, sizeof(why));
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_audit.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	if (open_db(f) != 0 || vault_create_master_key(f->key) != 0 ||
	    vault_open(f->st, f->key, &f->v, NULL, 0) != 0 || vault_audit_key(f->v, f->akey) != 0)
		return -1;
	if (audit_chain_load(f->st, &f->ch) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	vault_free(f->v);
	store_close(f->st);
	testutil_rm_dir(f->dir);
	free(f);
	return 0;
}

/* Appends n records in batches of 7 per transaction, anchor saved as commit.c does. */
static void
append_n(struct fixture *f, int n)
{
	struct audit_rec r;
	char gid[40], det[40];
	int i;

	for (i = 0; i < n; i++) {
		if (i % 7 == 0)
			assert_int_equal(store_begin(f->st), 0);
		snprintf(gid, sizeof(gid), "g%032d", i);
		snprintf(det, sizeof(det), "detail %d", i);
		memset(&r, 0, sizeof(r));
		r.actor = "spiffe://credbroker/harness";
		r.role = "harness";
		r.action = i % 2 ? "grant.resolve" : "grant.mint";
		r.outcome = i % 3 ? "ok" : "expired";
		r.grant_id = i % 5 ? gid : NULL;
		r.sandbox_id = "sbx-1";
		r.detail = i % 4 ? det : NULL;
		assert_int_equal(audit_append(f->st, &f->ch, &r, 1700000000 + i), 0);
		if (i % 7 == 6 || i == n - 1) {
			assert_int_equal(audit_anchor_save(f->st, f->akey, &f->ch), 0);
			assert_int_equal(store_commit(f->st), 0);
		}
	}
}

/* Runs SQL on the database file through a separate connection (the "attacker"). */
static void
tamper(struct fixture *f, const char *sql)
{
	testutil_sql(f->path, sql);
}

static void
expect_broken(struct fixture *f, int64_t seq, const char *word)
{
	struct audit_report rep;

	assert_int_equal(audit_verify(f->st, f->akey, &rep), CB_ERR_CORRUPT);
	assert_int_equal(rep.first_bad_seq, seq);
	if (strstr(rep.problem, word) == NULL)
		fail_msg("problem \"%s\" does not say \"%s\"", rep.problem, word);
}

static void
test_empty_ok(void **state)
{
	struct fixture *f = *state;
	struct audit_report rep;

	assert_int_equal(f->ch.last_seq, 0);
	assert_int_equal(audit_verify(f->st, f->akey, &rep), 0);
	assert_int_equal(rep.records, 0);
	assert_int_equal(rep.first_bad_seq, 0);
}

static void
test_append_verify(void **state)
{
	struct fixture *f = *state;
	struct audit_report rep;
	int64_t n;

	append_n(f, N_RECORDS);
	assert_int_equal(f->ch.last_seq, N_RECORDS);
	assert_int_equal(audit_verify(f->st, f->akey, &rep), 0);
	assert_int_equal(rep.records, N_RECORDS);
	assert_int_equal(rep.first_bad_seq, 0);
	assert_int_equal(rep.authenticated, 1);
	assert_int_equal(store_audit_count(f->st, &n), 0);
	assert_int_equal(n, N_RECORDS);
}

static void
test_reopen_continues_chain(void **state)
{
	struct fixture *f = *state;
	struct audit_chain before;
	struct audit_report rep;

	append_n(f, 10);
	before = f->ch;
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(open_db(f), 0);
	assert_int_equal(audit_chain_load(f->st, &f->ch), 0);
	assert_int_equal(f->ch.last_seq, before.last_seq);
	assert_memory_equal(f->ch.last_hash, before.last_hash, CRYPTO_HASH_LEN);
	append_n(f, 5);
	assert_int_equal(audit_verify(f->st, f->akey, &rep), 0);
	assert_int_equal(rep.records, 15);
}

static void
test_edit_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "UPDATE audit SET outcome = 'ok' WHERE seq = 13");	/* i = 12: was expired */
	expect_broken(f, 13, "edited");
}

static void
test_edit_null_to_empty_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	/* seq 1 is i = 0: detail NULL. "" must hash differently. */
	tamper(f, "UPDATE audit SET detail = '' WHERE seq = 1");
	expect_broken(f, 1, "edited");
}

static void
test_edit_ts_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "UPDATE audit SET ts = ts + 1 WHERE seq = 30");
	expect_broken(f, 30, "edited");
}

static void
test_delete_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "DELETE FROM audit WHERE seq = 17");
	expect_broken(f, 17, "deleted");
}

static void
test_delete_first_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "DELETE FROM audit WHERE seq = 1");
	expect_broken(f, 1, "deleted");
}

static void
test_delete_and_renumber_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	/* Hide the gap: delete 20 and shift the later seq values down by one. */
	tamper(f, "DELETE FROM audit WHERE seq = 20;"
	    "UPDATE audit SET seq = -seq WHERE seq > 20;"
	    "UPDATE audit SET seq = -seq - 1 WHERE seq < 0");
	expect_broken(f, 20, "record 20");
}

static void
test_swap_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	/* Swap the contents (not the seq) of records 8 and 9, hashes included. */
	tamper(f, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (8, 9);"
	    "UPDATE audit SET (ts, actor, role, action, outcome, grant_id, sandbox_id, detail,"
	    " prev_hash, hash) = (SELECT ts, actor, role, action, outcome, grant_id, sandbox_id,"
	    " detail, prev_hash, hash FROM t WHERE t.seq = 17 - audit.seq) WHERE seq IN (8, 9)");
	expect_broken(f, 8, "record 8");
}

static void
test_truncated_tail_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "DELETE FROM audit WHERE seq > 37");
	expect_broken(f, 38, "tail");
}

/* A restart after a deleted tail must not paper over the gap with a new anchor. */
static void
test_truncated_tail_survives_restart(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "DELETE FROM audit WHERE seq > 37");
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(open_db(f), 0);
	assert_int_equal(audit_chain_load(f->st, &f->ch), 0);
	assert_int_equal(f->ch.last_seq, N_RECORDS);	/* from the anchor */
	append_n(f, 3);
	expect_broken(f, 38, "records 38..40 missing");
}

static void
test_anchor_removed_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	tamper(f, "DELETE FROM meta WHERE k = 'audit_head'");
	expect_broken(f, N_RECORDS, "anchor");
}

static void
test_last_record_replaced_detected(void **state)
{
	struct fixture *f = *state;

	append_n(f, N_RECORDS);
	/* A last record whose hash is self-consistent but not the anchored one. */
	tamper(f, "UPDATE audit SET hash = zeroblob(32) WHERE seq = 40");
	expect_broken(f, 40, "record 40");
}

/* Appends n forged records (all "ok", hashes recomputed) to ch in st's open transaction. */
static void
forge_records(struct store *st, struct audit_chain *ch, int n)
{
	struct audit_rec r;
	int i;

	for (i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.actor = "spiffe://credbroker/harness";
		r.role = "harness";
		r.action = i % 2 ? "grant.resolve" : "grant.mint";
		r.outcome = "ok";
		r.sandbox_id = "sbx-1";
		assert_int_equal(audit_append(st, ch, &r, 1700000000 + i), 0);
	}
}

/*
 * The attacker with write access to the database but not the master key: the log
 * rebuilt from record 1 with every "expired" made "ok", each hash recomputed, and an
 * anchor for the new head, either without a MAC or with the old one kept.
 */
static void
rewrite_log(struct fixture *f, int keep_mac)
{
	struct store_audit_anchor a;
	struct audit_chain ch;
	struct store *st;
	char why[256];

	tamper(f, "DELETE FROM audit");
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(store_audit_anchor_get(st, &a), 0);
	assert_int_equal(a.has_mac, 1);
	memset(&ch, 0, sizeof(ch));
	assert_int_equal(store_begin(st), 0);
	forge_records(st, &ch, N_RECORDS);
	if (keep_mac) {
		a.seq = ch.last_seq;
		memcpy(a.hash, ch.last_hash, CRYPTO_HASH_LEN);
		assert_int_equal(store_audit_anchor_set(st, &a), 0);
	} else
		assert_int_equal(audit_anchor_save(st, NULL, &ch), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

static void
test_rewritten_log_fails_mac(void **state)
{
	struct fixture *f = *state;
	struct audit_report rep;
	int adopt = -1;

	append_n(f, N_RECORDS);
	rewrite_log(f, 1);
	/* Consistent as a chain: only the MAC tells. */
	assert_int_equal(audit_verify(f->st, NULL, &rep), 0);
	assert_int_equal(rep.records, N_RECORDS);
	assert_int_equal(rep.authenticated, 0);
	expect_broken(f, 1, "fails its MAC");
	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), CB_ERR_CORRUPT);
}

static void
test_rewritten_log_without_mac_detected(void **state)
{
	struct fixture *f = *state;
	int adopt = -1;

	append_n(f, N_RECORDS);
	rewrite_log(f, 0);
	expect_broken(f, 1, "no MAC");
	/* At start-up an anchor without a MAC is adopted (with a record that says so). */
	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), 0);
	assert_int_equal(adopt, 1);
}

/*
 * The rewritten log with its anchor deleted or malformed: the next batch would save a
 * valid MAC over it, so it is adopted (with a record) like an anchor without a MAC.
 * A database without records and without an anchor has nothing to adopt.
 */
static void
test_rewritten_log_anchor_deleted_or_malformed_adopted(void **state)
{
	struct fixture *f = *state;
	int adopt = -1;

	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), 0);
	assert_int_equal(adopt, 0);
	append_n(f, N_RECORDS);
	rewrite_log(f, 0);
	tamper(f, "DELETE FROM meta WHERE k = 'audit_head'");
	expect_broken(f, N_RECORDS, "anchor missing");
	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), 0);
	assert_int_equal(adopt, 1);
	tamper(f, "INSERT INTO meta (k, v) VALUES ('audit_head', x'00')");
	expect_broken(f, N_RECORDS + 1, "malformed");
	adopt = -1;
	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), 0);
	assert_int_equal(adopt, 1);
}

/*
 * Records appended after the anchored one by someone without the master key (hashes
 * chained from the anchored record, anchor left as it is, its MAC right): not covered
 * by the MAC, they are reported, and the daemon does not start on them (it would
 * continue the chain from them and the next anchor's MAC would cover them).
 */
static void
test_records_after_the_anchor_detected(void **state)
{
	struct fixture *f = *state;
	struct audit_chain ch;
	struct audit_rec r;
	struct store *st;
	char why[256];
	int adopt = -1;

	append_n(f, N_RECORDS);
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(audit_chain_load(st, &ch), 0);
	memset(&r, 0, sizeof(r));
	r.actor = "spiffe://credbroker/harness";
	r.role = "harness";
	r.action = "grant.resolve";
	r.outcome = "ok";
	r.sandbox_id = "sbx-framed";
	assert_int_equal(store_begin(st), 0);
	assert_int_equal(audit_append(st, &ch, &r, 1700000100), 0);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
	expect_broken(f, N_RECORDS + 1, "anchor");
	assert_int_equal(audit_anchor_check(f->st, f->akey, &adopt, NULL), CB_ERR_CORRUPT);
}

/*
 * A writer racing the daemon's start: the head is loaded while the log is a rewritten
 * one (a record more than the anchored one, which is left as it was), and the anchor is
 * checked once the real log is back; then the rewritten log is put back again. The
 * commit thread must not continue the rewritten chain and save a valid MAC over it.
 * The race is made deterministic by a statement trace on the writer connection: the
 * real log is put back just before the second read of the anchor.
 */
#define ANCHOR_GET_SQL	"SELECT v FROM meta WHERE k = 'audit_head'"

static const char *race_path;
static int race_reads, race_busy;

static int
race_trace(unsigned type, void *ctx, void *p, void *x)
{
	sqlite3 *db;
	const char *sql = sqlite3_sql(p);

	(void)type;
	(void)ctx;
	(void)x;
	if (race_busy || sql == NULL || strcmp(sql, ANCHOR_GET_SQL) != 0 || ++race_reads != 2)
		return 0;
	race_busy = 1;
	if (sqlite3_open(race_path, &db) == SQLITE_OK)
		(void)sqlite3_exec(db, "BEGIN IMMEDIATE; DELETE FROM audit;"
		    " INSERT INTO audit SELECT * FROM audit_g; COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	race_busy = 0;
	return 0;
}

static int
race_hook(sqlite3 *db, char **err, const struct sqlite3_api_routines *api)
{
	(void)err;
	(void)api;
	if (!race_busy)
		sqlite3_trace_v2(db, SQLITE_TRACE_STMT, race_trace, NULL);
	return SQLITE_OK;
}

/*
 * The real log kept aside in audit_g, the table rewritten with one record more (N_RECORDS
 * + 1, hashes recomputed), the anchor and its MAC left as they were.
 */
static void
forge_longer_log(struct fixture *f)
{
	struct audit_chain ch;
	struct store *st;
	char why[256];

	append_n(f, N_RECORDS);
	tamper(f, "CREATE TABLE audit_g AS SELECT * FROM audit");
	tamper(f, "DELETE FROM audit");
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	memset(&ch, 0, sizeof(ch));
	assert_int_equal(store_begin(st), 0);
	forge_records(st, &ch, N_RECORDS + 1);
	assert_int_equal(store_commit(st), 0);
	store_close(st);
}

/* One request through c (its batch saves the anchor), then c closed. */
static void
commit_one_and_close(struct commit *c)
{
	struct commit_op op;

	memset(&op, 0, sizeof(op));
	op.audit.actor = "spiffe://credbroker/harness";
	op.audit.role = "harness";
	op.audit.action = "grant.mint";
	op.audit.outcome = "ok";
	(void)commit_run(c, &op);
	commit_close(c);
}

/* The rewritten log must not pass as intact and authenticated from record 1. */
static void
assert_not_laundered(struct fixture *f)
{
	struct audit_report rep;

	if (audit_verify(f->st, f->akey, &rep) == 0 && rep.authenticated &&
	    rep.authenticated_from == 1)
		fail_msg("the rewritten log (%lld records) is reported intact and "
		    "authenticated from record 1", (long long)rep.records);
}

static void
test_start_race_rewritten_head(void **state)
{
	struct fixture *f = *state;
	struct commit *c = NULL;
	int rc;

	forge_longer_log(f);
	tamper(f, "CREATE TABLE audit_x AS SELECT * FROM audit");

	race_path = f->path;
	race_reads = 0;
	assert_int_equal(sqlite3_auto_extension((void (*)(void))race_hook), SQLITE_OK);
	rc = commit_open(f->path, f->v, &c);
	sqlite3_cancel_auto_extension((void (*)(void))race_hook);
	assert_int_equal(race_reads >= 2, 1);
	if (rc != 0)
		return;		/* refused to start: fine */
	/* the attacker puts the rewritten log back; a request comes */
	tamper(f, "DELETE FROM audit; INSERT INTO audit SELECT * FROM audit_x");
	commit_one_and_close(c);
	assert_not_laundered(f);
}

/*
 * The same with the log's table made a view by the writer (a database file's schema is
 * the writer's too): the view shows the rewritten log or the real one as it likes (say,
 * by random()), so that one transaction is not enough; here it shows the real one from
 * the second read of the anchor on. The head must be the MAC-checked anchor's.
 */
static int race_phase;

static void
race_phase_fn(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	(void)argc;
	(void)argv;
	sqlite3_result_int(cx, race_phase);
}

static int
phase_trace(unsigned type, void *ctx, void *p, void *x)
{
	const char *sql = sqlite3_sql(p);

	(void)type;
	(void)ctx;
	(void)x;
	if (sql != NULL && strcmp(sql, ANCHOR_GET_SQL) == 0 && ++race_reads == 2)
		race_phase = 1;
	return 0;
}

static int
phase_hook(sqlite3 *db, char **err, const struct sqlite3_api_routines *api)
{
	(void)err;
	(void)api;
	sqlite3_trace_v2(db, SQLITE_TRACE_STMT, phase_trace, NULL);
	return sqlite3_create_function(db, "race_phase", 0, SQLITE_UTF8, NULL, race_phase_fn,
	    NULL, NULL);
}

static void
test_start_view_rewritten_head(void **state)
{
	struct fixture *f = *state;
	struct commit *c = NULL;
	int rc;

	forge_longer_log(f);
	tamper(f, "ALTER TABLE audit RENAME TO audit_x;"
	    " CREATE VIEW audit AS SELECT * FROM audit_x WHERE race_phase() = 0"
	    " UNION ALL SELECT * FROM audit_g WHERE race_phase() = 1;"
	    " CREATE TRIGGER audit_ins INSTEAD OF INSERT ON audit BEGIN"
	    " INSERT INTO audit_x VALUES (NEW.seq, NEW.ts, NEW.actor, NEW.role, NEW.action,"
	    " NEW.outcome, NEW.grant_id, NEW.sandbox_id, NEW.detail, NEW.prev_hash, NEW.hash);"
	    " END");

	race_phase = 0;
	race_reads = 0;
	assert_int_equal(sqlite3_auto_extension((void (*)(void))phase_hook), SQLITE_OK);
	rc = commit_open(f->path, f->v, &c);
	sqlite3_cancel_auto_extension((void (*)(void))phase_hook);
	assert_int_equal(race_reads >= 2, 1);
	if (rc != 0)
		return;		/* refused to start: fine */
	commit_one_and_close(c);
	/* the writer puts the table back */
	tamper(f, "DROP VIEW audit; ALTER TABLE audit_x RENAME TO audit");
	assert_not_laundered(f);
}

static void
test_master_rotation_moves_mac(void **state)
{
	struct fixture *f = *state;
	struct audit_report rep;
	struct vault *v2 = NULL;
	uint8_t key2[CRYPTO_KEY_LEN];
	char newkey[160], why[256];
	int adopt = -1;

	append_n(f, N_RECORDS);
	snprintf(newkey, sizeof(newkey), "%s/new.key", f->dir);
	assert_int_equal(vault_create_master_key(newkey), 0);
	assert_int_equal(vault_rotate_master_key(f->st, f->key, newkey, why, sizeof(why)), 0);
	expect_broken(f, 1, "fails its MAC");	/* the old key no longer authenticates it */
	assert_int_equal(vault_open(f->st, newkey, &v2, why, sizeof(why)), 0);
	assert_int_equal(vault_audit_key(v2, key2), 0);
	assert_int_equal(audit_verify(f->st, key2, &rep), 0);
	assert_int_equal(rep.authenticated, 1);
	assert_int_equal(audit_anchor_check(f->st, key2, &adopt, NULL), 0);
	assert_int_equal(adopt, 0);
	vault_free(v2);
}

static void
test_master_rotation_refuses_rewritten_log(void **state)
{
	struct fixture *f = *state;
	char newkey[160], why[256];

	append_n(f, N_RECORDS);
	rewrite_log(f, 1);
	snprintf(newkey, sizeof(newkey), "%s/new.key", f->dir);
	assert_int_equal(vault_create_master_key(newkey), 0);
	assert_int_equal(vault_rotate_master_key(f->st, f->key, newkey, why, sizeof(why)),
	    CB_ERR_CORRUPT);
	if (strstr(why, "audit anchor") == NULL)
		fail_msg("why \"%s\" does not name the audit anchor", why);
	/* Nothing moved: the database is still under the old key. */
	assert_int_equal(vault_master_key_matches(f->st, f->key, why, sizeof(why)), 0);
}

/* Two databases with the same record split differently across fields hash differently. */
static void
test_field_boundaries(void **state)
{
	struct fixture *f = *state;
	struct audit_chain ch2;
	struct audit_rec r;
	struct store *st2;
	char path2[160], why[256];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.actor = "ab";
	r.role = "c";
	r.action = "x";
	r.outcome = "ok";
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(audit_append(f->st, &f->ch, &r, 5), 0);
	assert_int_equal(store_commit(f->st), 0);

	snprintf(path2, sizeof(path2), "%s/other.db", f->dir);
	assert_int_equal(store_open(path2, STORE_CREATE, &st2, why, sizeof(why)), 0);
	assert_int_equal(audit_chain_load(st2, &ch2), 0);
	r.actor = "a";
	r.role = "bc";
	assert_int_equal(store_begin(st2), 0);
	assert_int_equal(audit_append(st2, &ch2, &r, 5), 0);
	assert_int_equal(store_commit(st2), 0);
	assert_int_equal(ch2.last_seq, 1);
	assert_memory_not_equal(f->ch.last_hash, ch2.last_hash, CRYPTO_HASH_LEN);
	store_close(st2);
}

static void
test_bad_record_refused(void **state)
{
	struct fixture *f = *state;
	struct audit_chain before = f->ch;
	struct audit_rec r;

	memset(&r, 0, sizeof(r));
	r.actor = "a";
	r.role = "admin";
	r.action = "x";
	r.outcome = NULL;	/* required */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(audit_append(f->st, &f->ch, &r, 5), CB_ERR_INVAL);
	assert_int_equal(store_rollback(f->st), 0);
	assert_int_equal(f->ch.last_seq, before.last_seq);
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	struct store_audit_row *rows;
	size_t n;

	append_n(f, 25);
	assert_int_equal(store_audit_list(f->st, 20, 100, &rows, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(rows[0].seq, 21);
	assert_int_equal(rows[4].seq, 25);
	assert_string_equal(rows[0].action, "grant.mint");	/* i = 20 */
	assert_null(rows[0].grant_id);				/* 20 % 5 == 0 */
	assert_non_null(rows[1].grant_id);
	assert_memory_equal(rows[1].prev_hash, rows[0].hash, 32);
	store_audit_rows_free(rows, n);

	assert_int_equal(store_audit_list(f->st, 0, 3, &rows, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rows[2].seq, 3);
	store_audit_rows_free(rows, n);

	assert_int_equal(store_audit_list(f->st, 25, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_null(rows);
}

#define ANCHOR_ROWID "SELECT rowid FROM meta WHERE k = 'audit_head'"

/*
 * Every batch saves the anchor: in place (same row), so that its save dirties one
 * page, not the row's and meta's key index too (REPLACE deleted and re-inserted it).
 */
static void
test_anchor_saved_in_place(void **state)
{
	struct fixture *f = *state;
	int64_t id;

	append_n(f, 7);
	id = testutil_sql_int(f->path, ANCHOR_ROWID);
	assert_true(id > 0);
	append_n(f, 21);	/* three more saves */
	assert_int_equal(testutil_sql_int(f->path, ANCHOR_ROWID), id);
	assert_int_equal(f->ch.last_seq, 28);
}

int main(void);

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anchor_saved_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_continues_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_null_to_empty_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_edit_ts_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_first_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_and_renumber_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_tail_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_tail_survives_restart, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_anchor_removed_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_record_replaced_detected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_log_fails_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_log_without_mac_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_log_anchor_deleted_or_malformed_adopted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_records_after_the_anchor_detected, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_start_race_rewritten_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_view_rewritten_head, setup, teardown),
		cmocka_unit_test_setup_teardown(test_master_rotation_moves_mac, setup, teardown),
		cmocka_unit_test_setup_teardown(test_master_rotation_refuses_rewritten_log, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_field_boundaries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_record_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	};

	log_init("test_audit", LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
