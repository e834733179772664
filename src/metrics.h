/* metrics.h: counters and histograms exposed at GET /metrics (Prometheus text format). */
#ifndef CB_METRICS_H
#define CB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;

/*
 * A latency histogram with fixed bucket bounds (50 us .. 2.5 s, then +Inf), the same
 * for every histogram rendered at /metrics. Not locked: its owner serialises.
 */
#define METRICS_NBUCKETS	15
struct metrics_hist {
	uint64_t buckets[METRICS_NBUCKETS + 1];	/* last: +Inf only */
	uint64_t count;
	int64_t sum_us;
};
/* Counts one observation of us microseconds (negative counts as 0). */
void metrics_hist_add(struct metrics_hist *h, int64_t us);

int metrics_new(struct metrics **out);
void metrics_free(struct metrics *m);
/* Counts one request of route (a label from api_routes or "other") answered with status. */
void metrics_request(struct metrics *m, const char *route, int status);
/* Counts one resolve outcome ("ok" or the refusal code) and its latency. */
void metrics_resolve(struct metrics *m, const char *outcome, int64_t latency_us);
/* Resolves counted so far and the sum of their latencies (0 and 0 for m NULL). */
void metrics_resolve_totals(struct metrics *m, uint64_t *count, int64_t *sum_us);
struct commit;
/*
 * Renders the text exposition (with active grants from grant_active_count, and the
 * group commit's batches, ops and latencies from c unless c is NULL); *out malloc'd.
 */
int metrics_render(struct metrics *m, struct commit *c, char **out, size_t *len);

#endif
