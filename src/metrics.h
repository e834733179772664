/* metrics.h: counters and histograms exposed at GET /metrics (Prometheus text format). */
#ifndef CB_METRICS_H
#define CB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;

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
 * group commit's batches and ops from c unless c is NULL); *out malloc'd.
 */
int metrics_render(struct metrics *m, struct commit *c, char **out, size_t *len);

#endif
