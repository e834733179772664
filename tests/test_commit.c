/*
 * test_commit.c: the group-commit writer: many threads submitting ops concurrently
 * (all durable, per-thread order kept, batched), a failing op or a failing audit
 * append does not fail its neighbours, refusals are still audited, commit_run, fn-less
 * and audit-less ops, close drains the queue, and a batch whose COMMIT fails fails
 * every op of it and leaves the chain head consistent with the database, also when a
 * statement's SQLITE_FULL rolled back the whole transaction mid-batch.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"
#include "commit.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_int.h"
#include "testutil.h"
#include "util.h"

#define THREADS		8
#define PER_THREAD	300

struct fixture {
	char dir[64];
	char path[128];
	struct commit *c;
};

struct top {
	struct commit_op op;
	char key[48];
	int fail;		/* fn writes then refuses */
	int thread, idx;
	_Atomic int rc;
	_Atomic int durable;	/* op->durable as done saw it */
	_Atomic int done;
	_Atomic long order;	/* completion order */
};

static _Atomic long completed;

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct store *st;
	char why[256];

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_commit.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	if (store_open(f->path, STORE_CREATE, &st, why, sizeof(why)) != 0)
		return -1;
	store_close(st);
	if (commit_open(f->path, NULL, &f->c) != 0)
		return -1;
	atomic_store(&completed, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	commit_close(f->c);
	testutil_rm_dir(f->dir);
	free(f);
	return 0;
}

static int
op_fn(struct store *wst, struct commit_op *op)
{
	struct top *t = op->arg;
	int rc;

	if ((rc = store_meta_set(wst, t->key, "v", 1)) != 0)
		return rc;
	if (t->fail) {
		op->audit.outcome = "refused_in_fn";
		return CB_ERR_DENIED;
	}
	return 0;
}

static void
op_done(struct commit_op *op, int rc)
{
	struct top *t = op->arg;

	atomic_store(&t->rc, rc);
	atomic_store(&t->durable, op->durable);
	atomic_store(&t->order, atomic_fetch_add(&completed, 1));
	atomic_store(&t->done, 1);
}

static void
top_init(struct top *t, int thread, int idx, int fail)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->key, sizeof(t->key), "test-%d-%d", thread, idx);
	t->thread = thread;
	t->idx = idx;
	t->fail = fail;
	t->op.fn = op_fn;
	t->op.arg = t;
	t->op.done = op_done;
	t->op.audit.actor = "test";
	t->op.audit.role = "admin";
	t->op.audit.action = "test.op";
	t->op.audit.outcome = "ok";
	t->op.audit.sandbox_id = NULL;
	t->op.audit.detail = t->key;
	atomic_store(&t->rc, 1);
	atomic_store(&t->durable, -1);
}

struct worker {
	struct commit *c;
	struct top *ops;
	int thread;
	int submit_rc;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i, rc;

	for (i = 0; i < PER_THREAD; i++) {
		/* Every 10th op of thread 3 refuses: its neighbours must not care. */
		top_init(&w->ops[i], w->thread, i, w->thread == 3 && i % 10 == 5);
		if ((rc = commit_submit(w->c, &w->ops[i].op)) != 0)
			w->submit_rc = rc;
	}
	return NULL;
}

/* Opens the database on the side and checks a meta key. */
static int
has_key(struct store *st, const char *key)
{
	uint8_t *v = NULL;
	size_t len;
	int rc;

	rc = store_meta_get(st, key, &v, &len);
	free(v);
	return rc == 0;
}

static void
wait_all(struct top *ops, size_t n)
{
	size_t i;
	int tries;

	for (i = 0; i < n; i++) {
		for (tries = 0; tries < 2000 && !atomic_load(&ops[i].done); tries++)
			usleep(5000);
		assert_true(atomic_load(&ops[i].done));
	}
}

/*
 * The group commit's latency histograms: one wait per op, one writer time per batch,
 * cumulative buckets that end at the count, and the same figures at /metrics.
 */
static void
check_latency(struct commit *c, uint64_t batches, uint64_t nops)
{
	struct metrics_hist wait, batch;
	struct metrics *m = NULL;
	uint64_t cum = 0;
	char *text = NULL;
	size_t len = 0, i;

	commit_latency(c, &wait, &batch);
	assert_int_equal(wait.count, nops);
	assert_int_equal(batch.count, batches);
	assert_true(wait.sum_us >= 0);
	assert_true(batch.sum_us > 0);	/* every batch fsyncs: not free */
	for (i = 0; i <= METRICS_NBUCKETS; i++)
		cum += batch.buckets[i];
	assert_int_equal(cum, batches);

	assert_int_equal(metrics_new(&m), 0);
	assert_int_equal(metrics_render(m, c, &text, &len), 0);
	assert_int_equal(testutil_metric(text, "credbroker_commit_wait_seconds_count"),
	    (long long)nops);
	assert_int_equal(testutil_metric(text, "credbroker_commit_batch_seconds_count"),
	    (long long)batches);
	assert_int_equal(testutil_metric(text,
	    "credbroker_commit_batch_seconds_bucket{le=\"+Inf\"}"), (long long)batches);
	/* Cumulative: the 2.5 s bucket holds at most the count, the 50 us one at most that. */
	assert_true(testutil_metric(text, "credbroker_commit_wait_seconds_bucket{le=\"2.5\"}") <=
	    (long long)nops);
	assert_true(testutil_metric(text, "credbroker_commit_wait_seconds_bucket{le=\"5e-05\"}") <=
	    testutil_metric(text, "credbroker_commit_wait_seconds_bucket{le=\"2.5\"}"));
	assert_non_null(strstr(text, "# TYPE credbroker_commit_batch_seconds histogram\n"));
	free(text);
	metrics_free(m);
}

static void
test_many_threads(void **state)
{
	struct fixture *f = *state;
	struct worker w[THREADS];
	pthread_t th[THREADS];
	struct top *ops;
	struct store *st;
	struct audit_report rep;
	uint64_t batches, nops, failed;
	int64_t naudit;
	char why[256];
	int t, i, refused = 0;

	ops = calloc((size_t)THREADS * PER_THREAD, sizeof(*ops));
	assert_non_null(ops);
	for (t = 0; t < THREADS; t++) {
		w[t].c = f->c;
		w[t].ops = ops + (size_t)t * PER_THREAD;
		w[t].thread = t;
		w[t].submit_rc = 0;
		assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
	}
	for (t = 0; t < THREADS; t++) {
		pthread_join(th[t], NULL);
		assert_int_equal(w[t].submit_rc, 0);
	}
	wait_all(ops, (size_t)THREADS * PER_THREAD);

	for (t = 0; t < THREADS; t++) {
		for (i = 0; i < PER_THREAD; i++) {
			struct top *o = &w[t].ops[i];

			if (o->fail) {
				assert_int_equal(atomic_load(&o->rc), CB_ERR_DENIED);
				refused++;
			} else
				assert_int_equal(atomic_load(&o->rc), 0);
			/* A refusal's record is durable too. */
			assert_int_equal(atomic_load(&o->durable), 1);
			/* Submission order within a thread is completion order. */
			if (i > 0)
				assert_true(atomic_load(&o->order) >
				    atomic_load(&w[t].ops[i - 1].order));
		}
	}
	assert_int_equal(refused, PER_THREAD / 10);
	commit_stats(f->c, &batches, &nops, &failed);
	assert_int_equal(nops, (uint64_t)THREADS * PER_THREAD);
	assert_int_equal(failed, 0);
	assert_true(batches < nops);	/* grouped: fewer transactions than ops */
	check_latency(f->c, batches, nops);

	/* Durable and visible from another connection; refused ops left no effect. */
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	for (t = 0; t < THREADS; t++)
		for (i = 0; i < PER_THREAD; i++)
			assert_int_equal(has_key(st, w[t].ops[i].key), !w[t].ops[i].fail);
	/* One audit record per op, refusals included, and the chain verifies. */
	assert_int_equal(store_audit_count(st, &naudit), 0);
	assert_int_equal(naudit, THREADS * PER_THREAD);
	assert_int_equal(audit_verify(st, NULL, &rep), 0);
	assert_int_equal(rep.records, THREADS * PER_THREAD);
	store_close(st);
	free(ops);
}

static void
test_refusal_audited_with_fn_outcome(void **state)
{
	struct fixture *f = *state;
	struct store_audit_row *rows;
	struct top t;
	struct store *st;
	char why[256];
	size_t n;

	top_init(&t, 0, 0, 1);
	t.op.done = NULL;
	assert_int_equal(commit_run(f->c, &t.op), CB_ERR_DENIED);
	assert_int_equal(t.op.durable, 1);	/* its record, without its effect */
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_false(has_key(st, t.key));
	assert_int_equal(store_audit_list(st, 0, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].outcome, "refused_in_fn");
	assert_string_equal(rows[0].detail, t.key);
	store_audit_rows_free(rows, n);
	store_close(st);
}

static void
test_audit_failure_fails_op_only(void **state)
{
	struct fixture *f = *state;
	struct top t[3];
	struct store *st;
	char why[256];
	int64_t n;
	int i;

	for (i = 0; i < 3; i++)
		top_init(&t[i], 1, i, 0);
	t[1].op.audit.outcome = NULL;	/* audit_append refuses it */
	for (i = 0; i < 3; i++)
		assert_int_equal(commit_submit(f->c, &t[i].op), 0);
	wait_all(t, 3);
	assert_int_equal(atomic_load(&t[0].rc), 0);
	assert_int_equal(atomic_load(&t[1].rc), CB_ERR_INVAL);
	assert_int_equal(atomic_load(&t[2].rc), 0);
	assert_int_equal(atomic_load(&t[0].durable), 1);
	assert_int_equal(atomic_load(&t[1].durable), 0);	/* no record */
	assert_int_equal(atomic_load(&t[2].durable), 1);
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_true(has_key(st, t[0].key));
	assert_false(has_key(st, t[1].key));	/* no audit record, no effect */
	assert_true(has_key(st, t[2].key));
	assert_int_equal(store_audit_count(st, &n), 0);
	assert_int_equal(n, 2);
	store_close(st);
}

static void
test_run_and_kinds(void **state)
{
	struct fixture *f = *state;
	struct top a, b;
	struct store *st;
	char why[256];
	int64_t n;

	/* Audit only. */
	top_init(&a, 2, 0, 0);
	a.op.fn = NULL;
	a.op.done = NULL;
	assert_int_equal(commit_run(f->c, &a.op), 0);
	/* Effect only (like a purge batch). */
	top_init(&b, 2, 1, 0);
	b.op.audit.action = NULL;
	b.op.done = NULL;
	assert_int_equal(commit_run(f->c, &b.op), 0);
	/* commit_run refuses an op with done set. */
	b.op.done = op_done;
	assert_int_equal(commit_run(f->c, &b.op), CB_ERR_INVAL);

	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_false(has_key(st, a.key));
	assert_true(has_key(st, b.key));
	assert_int_equal(store_audit_count(st, &n), 0);
	assert_int_equal(n, 1);
	store_close(st);
}

static void
test_close_drains(void **state)
{
	struct fixture *f = *state;
	struct top *ops;
	struct store *st;
	char why[256];
	int64_t n;
	int i;

	ops = calloc(500, sizeof(*ops));
	assert_non_null(ops);
	for (i = 0; i < 500; i++) {
		top_init(&ops[i], 5, i, 0);
		assert_int_equal(commit_submit(f->c, &ops[i].op), 0);
	}
	commit_close(f->c);
	f->c = NULL;
	for (i = 0; i < 500; i++) {
		assert_true(atomic_load(&ops[i].done));
		assert_int_equal(atomic_load(&ops[i].rc), 0);
	}
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(store_audit_count(st, &n), 0);
	assert_int_equal(n, 500);
	store_close(st);
	free(ops);
}

static void
test_chain_continues_after_reopen(void **state)
{
	struct fixture *f = *state;
	struct audit_report rep;
	struct store *st;
	struct top t;
	char why[256];

	top_init(&t, 6, 0, 0);
	t.op.done = NULL;
	assert_int_equal(commit_run(f->c, &t.op), 0);
	commit_close(f->c);
	assert_int_equal(commit_open(f->path, NULL, &f->c), 0);
	top_init(&t, 6, 1, 0);
	t.op.done = NULL;
	assert_int_equal(commit_run(f->c, &t.op), 0);
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(audit_verify(st, NULL, &rep), 0);
	assert_int_equal(rep.records, 2);
	store_close(st);
}

static int
sleep_fn(struct store *wst, struct commit_op *op)
{
	(void)wst;
	(void)op;
	usleep(300000);	/* holds the commit thread so the next ops form one batch */
	return 0;
}

/* Defers a foreign-key violation to COMMIT, which then fails for the whole batch. */
static int
poison_fn(struct store *wst, struct commit_op *op)
{
	int rc;

	(void)op;
	if ((rc = store_exec(wst, "PRAGMA defer_foreign_keys = ON")) != 0)
		return rc;
	return store_exec(wst, "INSERT INTO secret_versions (name, version, key_id, ct,"
	    " created_at) VALUES ('nosuch', 1, 424242, x'00', 0)");
}

static void
test_commit_failure(void **state)
{
	struct fixture *f = *state;
	struct top blocker, t[3], after;
	struct audit_report rep;
	struct store *st;
	char why[256];
	int64_t n;
	int i;

	top_init(&blocker, 7, 99, 0);
	blocker.op.fn = sleep_fn;
	assert_int_equal(commit_submit(f->c, &blocker.op), 0);
	usleep(50000);	/* the thread is inside sleep_fn: the next three form one batch */
	for (i = 0; i < 3; i++)
		top_init(&t[i], 8, i, 0);
	t[1].op.fn = poison_fn;
	for (i = 0; i < 3; i++)
		assert_int_equal(commit_submit(f->c, &t[i].op), 0);
	wait_all(&blocker, 1);
	wait_all(t, 3);
	for (i = 0; i < 3; i++) {
		assert_int_not_equal(atomic_load(&t[i].rc), 0);
		assert_int_equal(atomic_load(&t[i].durable), 0);	/* rolled back */
	}
	/* The chain head followed the rollback: the next record links to the last durable one. */
	top_init(&after, 9, 0, 0);
	after.op.done = NULL;
	assert_int_equal(commit_run(f->c, &after.op), 0);
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	for (i = 0; i < 3; i++)
		assert_false(has_key(st, t[i].key));
	assert_true(has_key(st, after.key));
	assert_int_equal(store_audit_count(st, &n), 0);
	assert_int_equal(n, 2);	/* blocker and after */
	assert_int_equal(audit_verify(st, NULL, &rep), 0);
	assert_int_equal(rep.records, 2);
	store_close(st);
}

/* Pins the writer's database at its current size: the next page it needs is SQLITE_FULL. */
static int
pin_fn(struct store *wst, struct commit_op *op)
{
	(void)op;
	return store_exec(wst, "PRAGMA max_page_count = 1");
}

static int
unpin_fn(struct store *wst, struct commit_op *op)
{
	(void)op;
	return store_exec(wst, "PRAGMA max_page_count = 1073741823");
}

/*
 * A statement that fails with SQLITE_FULL (or SQLITE_IOERR) may make SQLite roll back the
 * whole transaction, not only itself. Here the second op's audit record needs a page the
 * full database cannot give: the batch's transaction is gone. The third op must not then
 * run outside any transaction (its record committed on its own, after a rolled-back one:
 * a gap in the chain under a valid anchor); the whole batch fails instead.
 */
static void
test_txn_lost_mid_batch(void **state)
{
	struct fixture *f = *state;
	struct top blocker, t[3], after;
	struct audit_report rep;
	struct store *st;
	char why[256], big[4001];
	uint64_t batches, ops, failed;
	int64_t n;
	int i;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	top_init(&blocker, 10, 99, 0);
	blocker.op.fn = sleep_fn;
	assert_int_equal(commit_submit(f->c, &blocker.op), 0);
	usleep(50000);	/* the thread is inside sleep_fn: the next three form one batch */
	for (i = 0; i < 3; i++) {
		top_init(&t[i], 11, i, 0);
		t[i].op.fn = NULL;
	}
	t[0].op.fn = pin_fn;
	t[1].op.audit.detail = big;	/* a few pages: more than a free page or two */
	t[1].op.audit.sandbox_id = big;
	t[1].op.audit.grant_id = big;
	for (i = 0; i < 3; i++)
		assert_int_equal(commit_submit(f->c, &t[i].op), 0);
	wait_all(&blocker, 1);
	wait_all(t, 3);
	for (i = 0; i < 3; i++) {
		assert_int_not_equal(atomic_load(&t[i].rc), 0);
		assert_int_equal(atomic_load(&t[i].durable), 0);
	}
	commit_stats(f->c, &batches, &ops, &failed);
	assert_int_equal(failed, 1);	/* /metrics: credbroker_commit_failed_batches_total */
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(store_audit_count(st, &n), 0);
	assert_int_equal(n, 1);	/* the blocker only */
	assert_int_equal(audit_verify(st, NULL, &rep), 0);
	store_close(st);
	/* Space again: the chain continues from the last durable record. */
	top_init(&after, 12, 0, 0);
	after.op.fn = unpin_fn;
	after.op.done = NULL;
	assert_int_equal(commit_run(f->c, &after.op), 0);
	assert_int_equal(store_open(f->path, 0, &st, why, sizeof(why)), 0);
	assert_int_equal(audit_verify(st, NULL, &rep), 0);
	assert_int_equal(rep.records, 2);
	store_close(st);
}

int main(void);

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_audited_with_fn_outcome, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_audit_failure_fails_op_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_and_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_continues_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_txn_lost_mid_batch, setup, teardown),
	};

	log_init("test_commit", LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
