/*
 * commit.h: the group-commit writer. One thread owns the only writer connection;
 * operations from every server thread are queued, executed in submission order inside
 * one transaction per batch (each op in its own savepoint), each followed by its audit
 * record (hash-chained, audit.h), then the batch is committed with one fsync
 * (synchronous=FULL) and every op's done() is called. An op's reply therefore leaves
 * only after its effect and its audit record are durable. If the commit fails, every
 * op of the batch gets the error (the request fails).
 */
#ifndef CB_COMMIT_H
#define CB_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"

struct store;
struct commit;
struct vault;

struct commit_op;
/*
 * Runs on the commit thread inside the batch transaction (in a savepoint) with the
 * writer connection. May adjust op->audit (e.g. the outcome). A non-zero return rolls
 * back the op's savepoint; its audit record is still written (refusals are audited)
 * unless op->audit.action is NULL.
 */
typedef int (*commit_fn)(struct store *wst, struct commit_op *op);
/* Called on the commit thread once the batch is durable (rc = fn's result or a commit error). */
typedef void (*commit_done_fn)(struct commit_op *op, int rc);

struct commit_op {
	commit_fn fn;		/* may be NULL: audit record only */
	void *arg;		/* for fn and done */
	struct audit_rec audit;	/* the record to append; strings must live until done */
	commit_done_fn done;	/* may be NULL */
	/*
	 * Set by the commit thread before done (or before commit_run returns): 1 when the
	 * op's audit record (if audit.action is set) is durable, with the op's effects when
	 * fn returned 0 (an fn that failed had its effects undone, its record written); 0
	 * when nothing of it is. 0 from commit_submit/commit_run until the batch commits.
	 */
	int durable;
	/* private to commit.c */
	int rc;
	int state;
	int64_t queued_us;	/* util_mono_us() when queued */
	struct commit_op *next;
};

/*
 * Opens the writer connection on db_path (without quick_check: the caller's own
 * store_open checked the file), loads the audit chain head, starts the thread.
 * With v (the daemon's vault, which must outlive the commit), every anchor is saved
 * with its MAC, and the anchor found is checked first: CB_ERR_CORRUPT when its MAC is
 * wrong; one without a MAC is adopted (audit_anchor_check). v NULL: no MAC (tests).
 * *out owned by the caller (commit_close).
 */
int commit_open(const char *db_path, struct vault *v, struct commit **out);
/*
 * Queues op (not copied: it must live until done; with done NULL it must live until
 * commit_close). Returns 0, or CB_ERR_BUSY when closing (op not queued, done not called).
 */
int commit_submit(struct commit *c, struct commit_op *op);
/* Queues op and waits until it is durable; returns its rc. op->done must be NULL. */
int commit_run(struct commit *c, struct commit_op *op);
/* Stops accepting, drains what is queued, joins the thread, closes. NULL is fine. */
void commit_close(struct commit *c);

/*
 * Statistics for metrics: batches and ops so far, and of those batches the ones that
 * failed (their requests failed: a full disk, an I/O error).
 */
void commit_stats(struct commit *c, uint64_t *batches, uint64_t *ops, uint64_t *failed);
struct metrics_hist;
/*
 * Copies the latency histograms: *wait, each op's time from queued to its batch's
 * start; *batch, each batch's writer time (its ops, COMMIT and WAL fsync).
 */
void commit_latency(struct commit *c, struct metrics_hist *wait, struct metrics_hist *batch);

#endif
