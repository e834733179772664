/*
 * commit.c: the group-commit writer thread (see commit.h). Server threads queue
 * commit_ops; the thread takes everything queued (up to COMMIT_BATCH_MAX), runs it in
 * one BEGIN IMMEDIATE ... COMMIT with a savepoint per op and one audit record per op,
 * and then completes each op. One fsync per batch, not per request.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "commit.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define COMMIT_BATCH_MAX	1024
/*
 * Checkpoints: SQLite's automatic one runs inside COMMIT once the WAL passes 1,000
 * pages, copying them all back and fsyncing the database on the one thread every
 * durable request waits for. Here, past CKPT_FRAMES, the commit thread asks a
 * checkpointer thread (its own connection) for a PASSIVE checkpoint, which copies the
 * bulk without blocking the writer; once that pass is over, the commit thread copies
 * the few frames appended meanwhile itself (between batches, so nothing new arrives)
 * so that the WAL is wholly checkpointed and the next transaction restarts it from
 * the beginning: the WAL stays near CKPT_FRAMES. Past CKPT_HARD_FRAMES (readers
 * holding old snapshots, a failing checkpointer) the commit thread checkpoints every
 * batch, as SQLite would.
 */
#define CKPT_FRAMES		1000
/*
 * The writer's page cache. It stays valid across its own transactions, unlike a
 * reader's, so it keeps the pages the ops keep touching (the rows and uses of the
 * grants in use, the lookup tables' leaves): with SQLite's default 2 MiB, 2,000 grants
 * in use re-read ~2,300 pages a second from the file (bench/, scenario 1;
 * docs/performance.md D10).
 */
#define WRITER_CACHE_KIB	16384
#define CKPT_HARD_FRAMES	16000

enum op_state {
	OP_ASYNC = 0,		/* commit_submit: complete with done() */
	OP_SYNC = 1,		/* commit_run: a waiter sleeps on done_cv */
	OP_SYNC_DONE = 2,
};

struct commit {
	pthread_mutex_t mu;
	pthread_cond_t work_cv;		/* ops queued or closing */
	pthread_cond_t done_cv;		/* commit_run ops completed */
	struct commit_op *head, *tail;	/* FIFO of queued ops */
	int closing;
	int started;
	pthread_t thread;

	/* the checkpointer: its own connection, woken through ckpt_cv (under mu) */
	pthread_cond_t ckpt_cv;
	int ckpt_want;
	int ckpt_started;
	uint64_t ckpt_passes;		/* passes the checkpointer finished */
	uint64_t ckpt_seen;		/* commit thread: ckpt_passes when it last finished one */
	pthread_t ckpt_thread;
	struct store *ckst;

	/* owned by the commit thread */
	struct store *wst;
	uint8_t *akey;			/* the anchor's MAC key (vault_audit_key): secure memory */
	struct audit_chain ch;
	struct commit_op *batch[COMMIT_BATCH_MAX];
	unsigned char sync[COMMIT_BATCH_MAX];
	uint64_t failed;		/* batches failed in a row (a full disk, an I/O error) */
	uint64_t failed_ops;
	int64_t fail_since_us, fail_logged_us, last_fail_us;

	/* statistics, under mu */
	uint64_t nbatches, nops, nfailed;
	struct metrics_hist wait_lat, batch_lat;
};

/*
 * Runs one op inside the open transaction; returns its rc. When a savepoint cannot
 * be rolled back or released the op's effects are in an unknown state: *broken is
 * set and the whole batch is rolled back.
 */
static int
run_one(struct commit *c, struct commit_op *op, int64_t now, int *broken)
{
	int rc = 0, arc, sp = 0;

	if (op->fn != NULL) {
		if ((rc = store_savepoint(c->wst)) != 0)
			return rc;
		sp = 1;
		rc = op->fn(c->wst, op);
		if (rc == INT_MIN || rc > 0)
			rc = CB_ERR_INVAL;	/* keep rc a CB_ERR_* */
		if (rc != 0) {
			/* Undo the op's effects; its (refusal) record is still written below. */
			if (store_savepoint_rollback(c->wst) != 0) {
				*broken = 1;
				return CB_ERR_DB;
			}
			sp = 0;
		}
	}
	if (op->audit.action != NULL) {
		arc = audit_append(c->wst, &c->ch, &op->audit, now);
		if (arc != 0) {
			log_warnx("audit append failed for %s: %s", op->audit.action,
			    cb_strerror(arc));
			/* No audit record, no effect: the request fails. */
			if (sp && store_savepoint_rollback(c->wst) != 0)
				*broken = 1;
			return arc;
		}
	}
	if (sp && store_savepoint_release(c->wst) != 0) {
		*broken = 1;
		return CB_ERR_DB;
	}
	op->durable = 1;	/* once the batch commits */
	return rc;
}

/*
 * A failed batch is logged once, then once a minute while batches keep failing (a full
 * disk fails every batch, or most: a warning per batch, or per request, would flood the
 * log that the disk may share). The outage ends, and is said to have ended, once batches
 * have committed for COMMIT_FAIL_QUIET_US without a failure in between.
 */
#define COMMIT_FAIL_LOG_US	60000000
#define COMMIT_FAIL_QUIET_US	5000000

static void
note_batch(struct commit *c, size_t n, int brc, const char *what)
{
	int64_t now = util_mono_us();

	if (brc == 0) {
		if (c->failed > 0 && now - c->last_fail_us >= COMMIT_FAIL_QUIET_US) {
			log_info("batches commit again: %llu failed (%llu requests) in the %lld s "
			    "before", (unsigned long long)c->failed,
			    (unsigned long long)c->failed_ops,
			    (long long)((c->last_fail_us - c->fail_since_us) / 1000000));
			c->failed = 0;
			c->failed_ops = 0;
		}
		return;
	}
	c->last_fail_us = now;
	if (c->failed == 0) {
		c->fail_since_us = now;
		c->fail_logged_us = now;
		log_warnx("%s a batch of %zu ops: %s; its requests fail, and so will others "
		    "until the database is writable again (logged once a minute)", what, n,
		    cb_strerror(brc));
	} else if (now - c->fail_logged_us >= COMMIT_FAIL_LOG_US) {
		c->fail_logged_us = now;
		log_warnx("batches keep failing: %llu (%llu requests) in %lld s, the last: %s",
		    (unsigned long long)c->failed + 1, (unsigned long long)c->failed_ops + n,
		    (long long)((now - c->fail_since_us) / 1000000), cb_strerror(brc));
	}
	c->failed++;
	c->failed_ops += n;
}

static void
run_batch(struct commit *c, size_t n)
{
	struct audit_chain ch0, db;
	int64_t now, seq0, t0, took;
	size_t i;
	int brc, wrote, broken = 0, frames, log, done;
	uint64_t passes;

	t0 = util_mono_us();
	now = util_now();
	ch0 = c->ch;
	seq0 = c->ch.last_seq;
	if ((brc = store_begin(c->wst)) == 0) {
		for (i = 0; i < n && !broken; i++) {
			c->batch[i]->rc = run_one(c, c->batch[i], now, &broken);
			/*
			 * SQLITE_FULL or SQLITE_IOERR in a statement may have rolled back the
			 * whole transaction: the next ops would run (and commit) outside it,
			 * after records that are gone (a gap in the chain).
			 */
			if (!store_txn_active(c->wst))
				broken = 1;
		}
		wrote = c->ch.last_seq != seq0;
		if (broken)
			brc = CB_ERR_DB;
		else if (wrote)
			brc = audit_anchor_save(c->wst, c->akey, &c->ch);
		if (brc == 0)
			brc = store_commit(c->wst);
		if (brc != 0) {
			note_batch(c, n, brc, "cannot commit");
			(void)store_rollback(c->wst);
		} else
			note_batch(c, n, 0, NULL);
	} else
		note_batch(c, n, brc, "cannot begin");
	if (brc != 0) {
		for (i = 0; i < n; i++) {
			c->batch[i]->rc = brc;
			c->batch[i]->durable = 0;
		}
		/*
		 * Rolled back: the chain head is the one before the batch again, unless the
		 * database holds the batch's own head (a COMMIT that failed after its WAL
		 * frames were written). Not simply reloaded: whoever made the batch fail
		 * (say, by holding its write lock) may have rewritten the log, and the next
		 * anchor's MAC would authenticate that.
		 */
		if (c->ch.last_seq != seq0 && audit_chain_load(c->wst, &db) == 0 &&
		    db.last_seq == c->ch.last_seq &&
		    crypto_memeq(db.last_hash, c->ch.last_hash, CRYPTO_HASH_LEN))
			log_warnx("the failed batch's records are in the database after all");
		else
			c->ch = ch0;
	}

	took = util_mono_us() - t0;
	frames = brc == 0 ? store_wal_frames(c->wst) : 0;
	pthread_mutex_lock(&c->mu);
	c->nbatches++;
	c->nops += n;
	c->nfailed += brc != 0;
	metrics_hist_add(&c->batch_lat, took);
	for (i = 0; i < n; i++)
		metrics_hist_add(&c->wait_lat, t0 - c->batch[i]->queued_us);
	passes = c->ckpt_passes;
	if (frames >= CKPT_FRAMES && passes == c->ckpt_seen && c->ckpt_started &&
	    !c->ckpt_want) {
		c->ckpt_want = 1;
		pthread_cond_signal(&c->ckpt_cv);
	}
	pthread_mutex_unlock(&c->mu);
	if (frames >= CKPT_FRAMES && (passes != c->ckpt_seen || frames >= CKPT_HARD_FRAMES)) {
		c->ckpt_seen = passes;
		if (store_checkpoint(c->wst, &log, &done) == 0 && frames >= CKPT_HARD_FRAMES)
			log_info("WAL at %d frames: checkpointed %d of %d on the commit thread",
			    frames, done, log);
	}

	/* Completion: ops may be freed by done() or by their waiter; only c->batch is used. */
	for (i = 0; i < n; i++) {
		c->sync[i] = c->batch[i]->state == OP_SYNC;
		if (!c->sync[i] && c->batch[i]->done != NULL)
			c->batch[i]->done(c->batch[i], c->batch[i]->rc);
	}
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < n; i++)
		if (c->sync[i])
			c->batch[i]->state = OP_SYNC_DONE;
	pthread_cond_broadcast(&c->done_cv);
	pthread_mutex_unlock(&c->mu);
}

static void *
commit_thread(void *arg)
{
	struct commit *c = arg;
	struct commit_op *op;
	size_t n;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (c->head == NULL && !c->closing)
			pthread_cond_wait(&c->work_cv, &c->mu);
		if (c->head == NULL && c->closing) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		for (n = 0; n < COMMIT_BATCH_MAX && c->head != NULL; n++) {
			op = c->head;
			c->head = op->next;
			op->next = NULL;
			c->batch[n] = op;
		}
		if (c->head == NULL)
			c->tail = NULL;
		pthread_mutex_unlock(&c->mu);
		run_batch(c, n);
	}
	return NULL;
}

static void *
ckpt_thread(void *arg)
{
	struct commit *c = arg;
	struct util_ratelimit failed = { 0, 0 };
	unsigned long long quiet;
	int rc, log, done;

	for (;;) {
		pthread_mutex_lock(&c->mu);
		while (!c->ckpt_want && !c->closing)
			pthread_cond_wait(&c->ckpt_cv, &c->mu);
		if (c->closing) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		c->ckpt_want = 0;
		pthread_mutex_unlock(&c->mu);
		/* A full disk fails every pass: once a minute. */
		if ((rc = store_checkpoint(c->ckst, &log, &done)) != 0 && rc != CB_ERR_BUSY &&
		    util_ratelimit_ok(&failed, COMMIT_FAIL_LOG_US, &quiet))
			log_warnx("checkpoint failed: %s (%llu failures not logged since the last)",
			    cb_strerror(rc), quiet);
		pthread_mutex_lock(&c->mu);
		c->ckpt_passes++;
		pthread_mutex_unlock(&c->mu);
	}
	return NULL;
}

/*
 * An anchor without a MAC (a database from before it, or one whose MAC was deleted) is
 * adopted at start-up: one record says from where on the log is authenticated, and the
 * anchor gets its MAC in the same transaction (the caller's).
 */
static int
anchor_adopt(struct commit *c)
{
	static const struct audit_rec r = {
		.actor = "credbrokerd", .role = "none", .action = "audit.anchor",
		.outcome = "adopted",
		.detail = "the anchor had no MAC (or was missing or malformed): the records "
		    "before this one are not authenticated",
	};
	int rc;

	log_warnx("the audit anchor has no MAC (a database from before it, or a deleted "
	    "one), or is missing or malformed: adopted, with a record that says so");
	if ((rc = audit_append(c->wst, &c->ch, &r, util_now())) != 0)
		return rc;
	return audit_anchor_save(c->wst, c->akey, &c->ch);
}

int
commit_open(const char *db_path, struct vault *v, struct commit **out)
{
	struct commit *c = NULL;
	char why[256];
	int rc, mu = 0, wcv = 0, dcv = 0, ccv = 0, adopt = 0;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CB_ERR_NOMEM;
	/* The daemon's first open (credbrokerd.c) ran quick_check on the file already. */
	if ((rc = store_open(db_path, STORE_NOCHECK, &c->wst, why, sizeof(why))) != 0) {
		log_warnx("commit writer: %s", why);
		goto out;
	}
	/*
	 * The commit thread's own copy of the anchor key: it must never wait on the vault's
	 * lock inside a transaction, which a key rotation holds while it waits for the
	 * database's write lock (a deadlock until the busy timeout).
	 */
	if (v != NULL && ((c->akey = crypto_secure_alloc(CRYPTO_KEY_LEN)) == NULL ||
	    (rc = vault_audit_key(v, c->akey)) != 0)) {
		if (c->akey == NULL)
			rc = CB_ERR_NOMEM;
		goto out;
	}
	/*
	 * One transaction: the head loaded, the anchor checked and an adoption see the same
	 * database. Else a writer could have the check pass on the real log and the chain
	 * continue from the rewritten one the load saw, for the next anchor's MAC to cover.
	 */
	if ((rc = store_begin(c->wst)) != 0) {
		log_warnx("cannot load the audit chain head: %s", cb_strerror(rc));
		goto out;
	}
	if ((rc = audit_chain_load(c->wst, &c->ch)) != 0)
		log_warnx("cannot load the audit chain head: %s", cb_strerror(rc));
	else if (c->akey != NULL &&
	    (rc = audit_anchor_check(c->wst, c->akey, &adopt, &c->ch)) != 0) {
		if (rc == CB_ERR_CORRUPT)
			log_warnx("the audit anchor fails its MAC under this master key, or "
			    "records follow it: the log was written by someone without the key "
			    "(run credbroker audit verify --db); refusing to start");
		else
			log_warnx("cannot check the audit anchor: %s", cb_strerror(rc));
	} else if (adopt && (rc = anchor_adopt(c)) != 0)
		log_warnx("cannot adopt the audit anchor: %s", cb_strerror(rc));
	else if ((rc = store_commit(c->wst)) != 0)
		log_warnx("cannot commit the audit chain check: %s", cb_strerror(rc));
	if (rc != 0) {
		(void)store_rollback(c->wst);
		goto out;
	}
	if ((rc = store_open(db_path, STORE_NOCHECK, &c->ckst, why, sizeof(why))) != 0) {
		log_warnx("checkpointer: %s", why);
		goto out;
	}
	if ((rc = store_wal_manual(c->wst)) != 0 ||
	    (rc = store_cache_kib(c->wst, WRITER_CACHE_KIB)) != 0)
		goto out;
	rc = CB_ERR_NOMEM;
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		goto out;
	mu = 1;
	if (pthread_cond_init(&c->work_cv, NULL) != 0)
		goto out;
	wcv = 1;
	if (pthread_cond_init(&c->done_cv, NULL) != 0)
		goto out;
	dcv = 1;
	if (pthread_cond_init(&c->ckpt_cv, NULL) != 0)
		goto out;
	ccv = 1;
	if ((errno = pthread_create(&c->ckpt_thread, NULL, ckpt_thread, c)) != 0) {
		log_warn("pthread_create");
		goto out;
	}
	c->ckpt_started = 1;
	if ((errno = pthread_create(&c->thread, NULL, commit_thread, c)) != 0) {
		log_warn("pthread_create");
		goto out;
	}
	c->started = 1;
	*out = c;	/* transferred */
	c = NULL;
	rc = 0;
 out:
	if (c != NULL) {
		if (c->ckpt_started) {
			pthread_mutex_lock(&c->mu);
			c->closing = 1;
			pthread_cond_broadcast(&c->ckpt_cv);
			pthread_mutex_unlock(&c->mu);
			pthread_join(c->ckpt_thread, NULL);
		}
		if (ccv)
			pthread_cond_destroy(&c->ckpt_cv);
		if (dcv)
			pthread_cond_destroy(&c->done_cv);
		if (wcv)
			pthread_cond_destroy(&c->work_cv);
		if (mu)
			pthread_mutex_destroy(&c->mu);
		store_close(c->ckst);
		store_close(c->wst);
		crypto_secure_free(c->akey, CRYPTO_KEY_LEN);
		free(c);
	}
	return rc;
}

static int
enqueue(struct commit *c, struct commit_op *op, int state)
{
	op->next = NULL;
	op->rc = 0;
	op->durable = 0;
	op->state = state;
	op->queued_us = util_mono_us();
	if (c->closing)
		return CB_ERR_BUSY;
	if (c->tail != NULL)
		c->tail->next = op;
	else
		c->head = op;
	c->tail = op;
	pthread_cond_signal(&c->work_cv);
	return 0;
}

int
commit_submit(struct commit *c, struct commit_op *op)
{
	int rc;

	if (c == NULL || op == NULL)
		return CB_ERR_INVAL;
	pthread_mutex_lock(&c->mu);
	rc = enqueue(c, op, OP_ASYNC);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int
commit_run(struct commit *c, struct commit_op *op)
{
	int rc;

	if (c == NULL || op == NULL || op->done != NULL)
		return CB_ERR_INVAL;
	pthread_mutex_lock(&c->mu);
	if ((rc = enqueue(c, op, OP_SYNC)) == 0) {
		while (op->state != OP_SYNC_DONE)
			pthread_cond_wait(&c->done_cv, &c->mu);
		rc = op->rc;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

void
commit_close(struct commit *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->closing = 1;
	pthread_cond_broadcast(&c->work_cv);
	pthread_cond_broadcast(&c->ckpt_cv);
	pthread_mutex_unlock(&c->mu);
	if (c->started)
		pthread_join(c->thread, NULL);	/* the thread drains the queue first */
	if (c->ckpt_started)
		pthread_join(c->ckpt_thread, NULL);
	store_close(c->ckst);
	store_close(c->wst);
	crypto_secure_free(c->akey, CRYPTO_KEY_LEN);
	pthread_cond_destroy(&c->ckpt_cv);
	pthread_cond_destroy(&c->done_cv);
	pthread_cond_destroy(&c->work_cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void
commit_stats(struct commit *c, uint64_t *batches, uint64_t *ops, uint64_t *failed)
{
	*batches = 0;
	*ops = 0;
	*failed = 0;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	*batches = c->nbatches;
	*ops = c->nops;
	*failed = c->nfailed;
	pthread_mutex_unlock(&c->mu);
}

void
commit_latency(struct commit *c, struct metrics_hist *wait, struct metrics_hist *batch)
{
	memset(wait, 0, sizeof(*wait));
	memset(batch, 0, sizeof(*batch));
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	*wait = c->wait_lat;
	*batch = c->batch_lat;
	pthread_mutex_unlock(&c->mu);
}
