/*
 * grant_purge.c: the background purge of expired and revoked grants (see grant.h),
 * and the live-grant count for /metrics that the purge thread refreshes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "commit.h"
#include "conf.h"
#include "err.h"
#include "grant.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define PURGE_GRACE_S		60
#define PURGE_ROUNDS_MAX	100000	/* batches per purge pass, a bound on the loop */
#define PURGE_BATCH_MIN		16	/* rows per purge batch, at least */
#define PURGE_TARGET_US		5000	/* writer time a purge batch should take */
#define PURGE_PAUSE_MAX_US	200000	/* the longest rest between two purge batches */
#define PURGE_BASE_MIN_US	1000	/* a base latency below this counts as this */
#define SWEEP_MIN		1000	/* purged grants that make a sweep worth it */
#define SWEEP_BATCH_MAX		20000	/* lookup entries examined per sweep batch, at most */

static _Atomic int64_t active_grants;

/*
 * Revocations not purged yet, so that the purge looks for revoked grants only when
 * there is something to find: pending is the time of the oldest such revocation (1
 * at start-up: unknown, look once).
 */
static struct {
	pthread_mutex_t mu;
	int64_t pending;
	int64_t last;
} revoked = { .mu = PTHREAD_MUTEX_INITIALIZER, .pending = 1 };

void
grant_note_revocation(int64_t now)
{
	pthread_mutex_lock(&revoked.mu);
	revoked.last = now;
	if (revoked.pending == 0)
		revoked.pending = now;
	pthread_mutex_unlock(&revoked.mu);
}

/* ------------------------------------------------------------------ purge */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int running;
	int stop;
	struct broker *b;
} purge = { .mu = PTHREAD_MUTEX_INITIALIZER };

enum purge_kind { PURGE_EXPIRED, PURGE_REVOKED, PURGE_SWEEP };

struct purge_arg {
	enum purge_kind kind;
	int64_t before;
	int limit;
	int64_t deleted;
	int more;			/* the batch was full: there may be more */
	int64_t took_us;		/* writer time of the batch */
	struct store_grant_sweep sweep;	/* PURGE_SWEEP: where the sweep is */
};

static int
purge_fn(struct store *wst, struct commit_op *op)
{
	struct purge_arg *pa = op->arg;
	int64_t t0 = util_mono_us();
	int rc;

	switch (pa->kind) {
	case PURGE_EXPIRED:
		rc = store_grant_purge_expired(wst, pa->before, pa->limit, &pa->deleted);
		pa->more = pa->deleted == pa->limit;
		break;
	case PURGE_REVOKED:
		rc = store_grant_purge_revoked_indexed(wst, pa->before, pa->limit, &pa->deleted);
		pa->more = pa->deleted > 0;
		break;
	default:
		rc = store_grant_sweep(wst, &pa->sweep, pa->before, pa->limit, &pa->deleted);
		pa->more = pa->sweep.phase != STORE_SWEEP_DONE;
		break;
	}
	pa->took_us = util_mono_us() - t0;
	return rc;
}

/*
 * Refreshes the live-grant count for /metrics. The exact count scans the live rows
 * (~0.05 s per 200,000 on an idle machine, more under load), so it runs at most 1 % of
 * the time: after a count that took T, the next waits at least 100 T (at the purge's
 * pace, every 5 s, up to ~200,000 live grants; every ~30 s with a million). It was 5 %:
 * with the benchmark's 1.1 M live grants, ~2.5 % of the broker's CPU (D11).
 */
static void
refresh_active(struct broker *b)
{
	static int64_t next_us;
	struct store *rst;
	int64_t n, t0 = util_mono_us();

	if (t0 < next_us || (rst = store_pool_get(b->readers)) == NULL)
		return;
	if (store_grant_count_live(rst, util_now(), &n) == 0)
		atomic_store(&active_grants, n);
	next_us = t0 + 100 * (util_mono_us() - t0);
}

static int
purge_stopping(void)
{
	int stop;

	pthread_mutex_lock(&purge.mu);
	stop = purge.stop;
	pthread_mutex_unlock(&purge.mu);
	return stop;
}

/*
 * One purge batch through the commit queue (not audited row by row). The rows per
 * batch adapt to keep each batch's own writer time near PURGE_TARGET_US: requests
 * queued behind a purge batch wait that long at most, however many grants expire at
 * once. (Deletes are contiguous since schema/003, so a batch of a few thousand rows
 * takes a few milliseconds.)
 */
static int
purge_batch(struct broker *b, struct purge_arg *pa, int *limit, int max)
{
	static struct util_ratelimit failed;	/* the purge thread's own */
	unsigned long long quiet;
	struct commit_op op;
	int rc;

	memset(&op, 0, sizeof(op));
	op.fn = purge_fn;
	op.arg = pa;
	op.audit.action = NULL;
	pa->deleted = 0;
	pa->more = 0;
	pa->took_us = 0;
	pa->limit = *limit;
	if ((rc = commit_run(b->commit, &op)) != 0) {
		/* A full disk fails every pass (deleting needs WAL space too): once a minute. */
		if (util_ratelimit_ok(&failed, 60000000, &quiet))
			log_warnx("purge batch failed: %s (the next pass tries again; %llu failed "
			    "passes not logged since the last such line)", cb_strerror(rc), quiet);
		return rc;
	}
	if (pa->took_us > 2 * PURGE_TARGET_US && *limit > PURGE_BATCH_MIN)
		*limit = *limit / 2 > PURGE_BATCH_MIN ? *limit / 2 : PURGE_BATCH_MIN;
	else if (pa->took_us < PURGE_TARGET_US / 2 && pa->more && *limit < max)
		*limit = *limit * 2 < max ? *limit * 2 : max;
	return 0;
}

int64_t
grant_purge_rest_us(int64_t took_us, int slow)
{
	if (took_us <= 0)
		return 0;
	if (slow < 1)
		slow = 1;
	return took_us < PURGE_PAUSE_MAX_US / slow ? took_us * slow : PURGE_PAUSE_MAX_US;
}

int
grant_purge_pace(int slow, int64_t base_us, int64_t mean_us, uint64_t n)
{
	int64_t base = base_us > PURGE_BASE_MIN_US ? base_us : PURGE_BASE_MIN_US;

	if (slow < 1)
		slow = 1;
	if (n < GRANT_PURGE_PACE_MIN)
		return slow;
	if (mean_us > 2 * base)
		return slow * 2 < GRANT_PURGE_SLOW_MAX ? slow * 2 : GRANT_PURGE_SLOW_MAX;
	if (2 * mean_us < 3 * base && slow > 1)
		return slow / 2;
	return slow;
}

/* Resolves served and their total latency, from the broker's metrics. */
struct lat_mark {
	uint64_t n;
	int64_t sum_us;
};

static void
lat_mark(struct broker *b, struct lat_mark *m)
{
	metrics_resolve_totals(b->metrics, &m->n, &m->sum_us);
}

/* A pass's pacing: see grant_purge_pace. */
struct pace {
	int64_t base_us;	/* mean resolve latency between the last pass and this one */
	int slow;
	int slow_max;		/* the most slow was in this pass */
	struct lat_mark mark;	/* resolves counted when slow was last judged */
	int64_t writer_us;	/* the pass's batches' writer time so far */
};

/* Judges slow on the resolves since the mark, once there are enough of them. */
static void
pace_update(struct broker *b, struct pace *pc)
{
	struct lat_mark now;
	uint64_t n;

	lat_mark(b, &now);
	n = now.n - pc->mark.n;
	if (n < GRANT_PURGE_PACE_MIN)
		return;		/* too few to judge: keep counting */
	pc->slow = grant_purge_pace(pc->slow, pc->base_us,
	    (now.sum_us - pc->mark.sum_us) / (int64_t)n, n);
	if (pc->slow > pc->slow_max)
		pc->slow_max = pc->slow;
	pc->mark = now;
}

/*
 * A pass's pacing from the resolves served since the last pass ended (*last, moved to
 * now): their mean latency is the base, unless there were too few (the previous base).
 */
static void
pace_start(struct broker *b, struct pace *pc, struct lat_mark *last)
{
	static int64_t base_us;
	struct lat_mark now;
	uint64_t n;

	lat_mark(b, &now);
	n = now.n - last->n;
	if (n >= GRANT_PURGE_PACE_MIN)
		base_us = (now.sum_us - last->sum_us) / (int64_t)n;
	pc->base_us = base_us;
	pc->slow = 1;
	pc->slow_max = 1;
	pc->mark = now;
	pc->writer_us = 0;
}

/* Sleeps us microseconds, or less when the purge is being stopped. */
static void
purge_pause(int64_t us)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += us / 1000000;
	ts.tv_nsec += (us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&purge.mu);
	while (!purge.stop) {
		if (pthread_cond_timedwait(&purge.cv, &purge.mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&purge.mu);
}

/*
 * Runs batches of pa->kind until none is full; 0, or -1 when stopped or failed.
 * Paced (grant_purge_rest_us): after each batch the purge rests as long as the batch
 * held the writer, so that it takes at most about half of the writer's time while a
 * million grants go at once; and up to GRANT_PURGE_SLOW_MAX times that while resolves
 * take over twice their latency from before the pass: when the machine cannot serve
 * both, requests queued behind the purge (a whole purge and sweep at half load in
 * bench/ scenario 4: 1.6 s of p99) come first, and the purge still keeps a ninth of the
 * writer. The rest follows the batch's own writer time, not its time from queueing to
 * durable: the wait for the batch ahead and for the group's fsync, which the resolves
 * committed with it share, made the purge rest three times its cost and take over a
 * minute for a million grants (docs/performance.md D15).
 */
static int
purge_run(struct broker *b, struct purge_arg *pa, int *limit, int max, int *rounds,
    int64_t *total, struct pace *pc)
{
	do {
		if (*rounds >= PURGE_ROUNDS_MAX || purge_stopping())
			return -1;	/* bounded: the rest waits for the next pass */
		if (purge_batch(b, pa, limit, max) != 0)
			return -1;
		(*rounds)++;
		*total += pa->deleted;
		pc->writer_us += pa->took_us;
		if (pa->more) {
			pace_update(b, pc);
			purge_pause(grant_purge_rest_us(pa->took_us, pc->slow));
		}
	} while (pa->more);
	return 0;
}

/* The pass's line in the log (bench/s4_analyse.py reads it). */
static void
log_purged(int64_t total, int rounds, int64_t t0, int64_t writer_us)
{
	if (total > 0)
		log_info("purged %lld expired or revoked grants in %d batches, %lld ms"
		    " (%lld ms writing)", (long long)total, rounds,
		    (long long)((util_mono_us() - t0) / 1000), (long long)(writer_us / 1000));
}

/*
 * One pass: expired grants from the front of the grants table; then, only when a
 * revocation is old enough to purge, revoked grants through the revoked_at index;
 * then, once enough grants were purged since the last sweep (an eighth of the live
 * ones, at least SWEEP_MIN), the sweep of the lookup tables' stale entries, which
 * walks both tables (so its cost per purged grant stays bounded). Each batch is its
 * own commit op, so requests interleave and the writer is never held for long.
 */
static void
purge_pass(struct broker *b, int batch)
{
	static int limit = PURGE_BATCH_MIN;	/* adapted by purge_batch, kept across passes */
	static int sweep_limit = PURGE_BATCH_MIN;
	static int64_t stale;			/* grants purged since the last sweep */
	static struct lat_mark last;		/* resolves counted when the last pass ended */
	struct purge_arg pa;
	struct pace pc;
	int64_t total = 0, swept = 0, t0 = util_mono_us(), t1, w1, before, pending, live;
	int rounds = 0, sweep_rounds = 0, logged = 0;

	if (limit > batch)
		limit = batch;
	pace_start(b, &pc, &last);
	before = util_now() - PURGE_GRACE_S;
	memset(&pa, 0, sizeof(pa));
	pa.kind = PURGE_EXPIRED;
	pa.before = before;
	if (purge_run(b, &pa, &limit, batch, &rounds, &total, &pc) != 0)
		goto out;

	pthread_mutex_lock(&revoked.mu);
	pending = revoked.pending;
	pthread_mutex_unlock(&revoked.mu);
	if (pending != 0 && pending < before) {
		pa.kind = PURGE_REVOKED;
		if (purge_run(b, &pa, &limit, batch, &rounds, &total, &pc) != 0)
			goto out;
		/* None left before the grace: only revocations within it stay pending. */
		pthread_mutex_lock(&revoked.mu);
		revoked.pending = revoked.last >= before ? revoked.last : 0;
		pthread_mutex_unlock(&revoked.mu);
	}

	live = atomic_load(&active_grants);
	if (stale + total < SWEEP_MIN || stale + total < live / 8)
		goto out;
	/* Every grant purged so far expired (or was revoked) before `before`. */
	log_purged(total, rounds, t0, pc.writer_us);
	logged = 1;
	t1 = util_mono_us();
	w1 = pc.writer_us;
	pa.kind = PURGE_SWEEP;
	if (purge_run(b, &pa, &sweep_limit, SWEEP_BATCH_MAX, &sweep_rounds, &swept, &pc) == 0)
		stale = -total;		/* + total below: a complete sweep leaves none */
	log_info("swept %lld stale lookup entries in %d batches, %lld ms (%lld ms writing)",
	    (long long)swept, sweep_rounds, (long long)((util_mono_us() - t1) / 1000),
	    (long long)((pc.writer_us - w1) / 1000));
 out:
	store_grant_sweep_reset(&pa.sweep);
	lat_mark(b, &last);
	if (pc.slow_max > 1)
		log_info("purge yielded to resolves: rests up to %d times its batches' writer time"
		    " (resolve latency over twice its %lld us before the pass)", pc.slow_max,
		    (long long)pc.base_us);
	stale += total;
	if (!logged)
		log_purged(total, rounds, t0, pc.writer_us);
}

static void *
purge_thread(void *arg)
{
	struct broker *b = arg;
	struct timespec ts;
	int interval, batch, stop;

	interval = b->conf != NULL && b->conf->purge_interval_s > 0 ?
	    b->conf->purge_interval_s : 60;
	batch = b->conf != NULL && b->conf->purge_batch > 0 ? b->conf->purge_batch : 500;
	refresh_active(b);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += interval;
		pthread_mutex_lock(&purge.mu);
		while (!purge.stop) {
			if (pthread_cond_timedwait(&purge.cv, &purge.mu, &ts) == ETIMEDOUT)
				break;
		}
		stop = purge.stop;
		pthread_mutex_unlock(&purge.mu);
		if (stop)
			break;
		purge_pass(b, batch);
		refresh_active(b);
	}
	return NULL;
}

int
grant_purge_start(struct broker *b)
{
	pthread_condattr_t ca;
	int rc;

	if (b == NULL || b->commit == NULL || b->readers == NULL)
		return CB_ERR_INVAL;
	pthread_mutex_lock(&purge.mu);
	if (purge.running) {
		pthread_mutex_unlock(&purge.mu);
		return CB_ERR_EXISTS;
	}
	if (pthread_condattr_init(&ca) != 0) {
		pthread_mutex_unlock(&purge.mu);
		return CB_ERR_NOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&purge.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0) {
		pthread_mutex_unlock(&purge.mu);
		return CB_ERR_NOMEM;
	}
	purge.stop = 0;
	purge.b = b;
	if ((errno = pthread_create(&purge.thread, NULL, purge_thread, b)) != 0) {
		log_warn("pthread_create");
		pthread_cond_destroy(&purge.cv);
		pthread_mutex_unlock(&purge.mu);
		return CB_ERR_NOMEM;
	}
	purge.running = 1;
	pthread_mutex_unlock(&purge.mu);
	return 0;
}

void
grant_purge_stop(void)
{
	pthread_mutex_lock(&purge.mu);
	if (!purge.running) {
		pthread_mutex_unlock(&purge.mu);
		return;
	}
	purge.stop = 1;
	pthread_cond_broadcast(&purge.cv);
	pthread_mutex_unlock(&purge.mu);
	pthread_join(purge.thread, NULL);
	pthread_mutex_lock(&purge.mu);
	purge.running = 0;
	pthread_cond_destroy(&purge.cv);
	pthread_mutex_unlock(&purge.mu);
}

int64_t
grant_active_count(void)
{
	return atomic_load(&active_grants);
}
