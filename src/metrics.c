/*
 * metrics.c: Prometheus counters and histograms for GET /metrics. One mutex guards
 * every counter: a request takes it once for a few additions, far below the cost of
 * the TLS record it arrived in.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "commit.h"
#include "err.h"
#include "grant.h"
#include "metrics.h"
#include "util.h"

#define METRICS_ROUTES_MAX	32	/* routes of api_routes + "other" */
#define METRICS_OUTCOMES_MAX	32	/* resolve outcomes kept by name; the rest are "other" */
#define METRICS_OUTCOME_LEN	40

/* Status codes counted individually; anything else is counted as "other". */
static const int metrics_statuses[] = {
	200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 500, 503
};
#define METRICS_NSTATUS	(sizeof(metrics_statuses) / sizeof(metrics_statuses[0]))

/* Latency buckets in microseconds (upper bounds; +Inf implied). */
static const int64_t metrics_buckets_us[METRICS_NBUCKETS] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000
};

struct metrics {
	pthread_mutex_t lock;
	size_t nroutes;				/* routes in api_routes; index nroutes = "other" */
	uint64_t requests[METRICS_ROUTES_MAX + 1][METRICS_NSTATUS + 1];
	char outcomes[METRICS_OUTCOMES_MAX][METRICS_OUTCOME_LEN];
	uint64_t outcome_count[METRICS_OUTCOMES_MAX + 1];	/* last: "other" */
	size_t noutcomes;
	struct metrics_hist lat;		/* resolve latency */
};

void
metrics_hist_add(struct metrics_hist *h, int64_t us)
{
	size_t b;

	if (us < 0)
		us = 0;
	for (b = 0; b < METRICS_NBUCKETS; b++)
		if (us <= metrics_buckets_us[b])
			break;
	h->buckets[b]++;
	h->count++;
	h->sum_us += us;
}

int
metrics_new(struct metrics **out)
{
	struct metrics *m;
	size_t n;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return CB_ERR_NOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return CB_ERR_NOMEM;
	}
	for (n = 0; api_routes[n] != NULL && n < METRICS_ROUTES_MAX; n++)
		;
	m->nroutes = n;
	*out = m;
	return 0;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void
metrics_request(struct metrics *m, const char *route, int status)
{
	size_t r, s;

	if (m == NULL)
		return;
	r = m->nroutes;
	if (route != NULL) {
		for (r = 0; r < m->nroutes; r++)
			if (strcmp(api_routes[r], route) == 0)
				break;
	}
	for (s = 0; s < METRICS_NSTATUS; s++)
		if (metrics_statuses[s] == status)
			break;
	pthread_mutex_lock(&m->lock);
	m->requests[r][s]++;
	pthread_mutex_unlock(&m->lock);
}

/* Outcome codes are short identifiers; anything else is counted as "other". */
static int
metrics_outcome_ok(const char *o)
{
	size_t i;

	if (o == NULL || o[0] == '\0' || strlen(o) >= METRICS_OUTCOME_LEN)
		return 0;
	for (i = 0; o[i] != '\0'; i++)
		if (!((o[i] >= 'a' && o[i] <= 'z') || (o[i] >= '0' && o[i] <= '9') || o[i] == '_'))
			return 0;
	return 1;
}

void
metrics_resolve(struct metrics *m, const char *outcome, int64_t latency_us)
{
	size_t i;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	i = METRICS_OUTCOMES_MAX;
	if (metrics_outcome_ok(outcome)) {
		for (i = 0; i < m->noutcomes; i++)
			if (strcmp(m->outcomes[i], outcome) == 0)
				break;
		if (i == m->noutcomes) {
			if (m->noutcomes < METRICS_OUTCOMES_MAX) {
				util_strlcpy(m->outcomes[i], outcome, sizeof(m->outcomes[i]));
				m->noutcomes++;
			} else
				i = METRICS_OUTCOMES_MAX;
		}
	}
	m->outcome_count[i]++;
	metrics_hist_add(&m->lat, latency_us);
	pthread_mutex_unlock(&m->lock);
}

void
metrics_resolve_totals(struct metrics *m, uint64_t *count, int64_t *sum_us)
{
	*count = 0;
	*sum_us = 0;
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	*count = m->lat.count;
	*sum_us = m->lat.sum_us;
	pthread_mutex_unlock(&m->lock);
}

/* A growing text buffer; on allocation failure it records the error and stops. */
struct mbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void mbuf_printf(struct mbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
mbuf_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *np;
	size_t ncap;

	if (b->err)
		return;
	for (int tries = 0; tries < 2; tries++) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = CB_ERR_INVAL;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		ncap = b->cap * 2 + (size_t)n + 1;
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->err = CB_ERR_NOMEM;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	b->err = CB_ERR_NOMEM;
}

/* One histogram's exposition: HELP, TYPE, cumulative buckets, sum and count. */
static void
render_hist(struct mbuf *b, const char *name, const char *help, const struct metrics_hist *h)
{
	uint64_t cum = 0;
	size_t i;

	mbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->buckets[i];
		mbuf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name,
		    (double)metrics_buckets_us[i] / 1e6, (unsigned long long)cum);
	}
	mbuf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	mbuf_printf(b, "%s_sum %.6f\n", name, (double)h->sum_us / 1e6);
	mbuf_printf(b, "%s_count %llu\n", name, (unsigned long long)h->count);
}

static const char *
metrics_status_label(size_t s, char *buf, size_t len)
{
	if (s >= METRICS_NSTATUS)
		return "other";
	snprintf(buf, len, "%d", metrics_statuses[s]);
	return buf;
}

int
metrics_render(struct metrics *m, struct commit *c, char **out, size_t *len)
{
	struct metrics snap;
	struct mbuf b = { NULL, 0, 0, 0 };
	char sl[16];
	struct metrics_hist wait, batch;
	size_t r, s, i;
	uint64_t batches, ops, failed;

	*out = NULL;
	*len = 0;
	if (m == NULL)
		return CB_ERR_INVAL;
	pthread_mutex_lock(&m->lock);
	memcpy(&snap, m, sizeof(snap));
	pthread_mutex_unlock(&m->lock);

	if ((b.p = malloc(8192)) == NULL)
		return CB_ERR_NOMEM;
	b.cap = 8192;
	b.p[0] = '\0';

	mbuf_printf(&b, "# HELP credbroker_requests_total API requests by route and status.\n"
	    "# TYPE credbroker_requests_total counter\n");
	for (r = 0; r <= snap.nroutes; r++) {
		for (s = 0; s <= METRICS_NSTATUS; s++) {
			if (snap.requests[r][s] == 0)
				continue;
			mbuf_printf(&b, "credbroker_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
			    r < snap.nroutes ? api_routes[r] : "other",
			    metrics_status_label(s, sl, sizeof(sl)),
			    (unsigned long long)snap.requests[r][s]);
		}
	}

	mbuf_printf(&b, "# HELP credbroker_resolve_total Resolve outcomes (ok or the refusal code).\n"
	    "# TYPE credbroker_resolve_total counter\n");
	for (i = 0; i < snap.noutcomes; i++)
		mbuf_printf(&b, "credbroker_resolve_total{outcome=\"%s\"} %llu\n", snap.outcomes[i],
		    (unsigned long long)snap.outcome_count[i]);
	if (snap.outcome_count[METRICS_OUTCOMES_MAX] != 0)
		mbuf_printf(&b, "credbroker_resolve_total{outcome=\"other\"} %llu\n",
		    (unsigned long long)snap.outcome_count[METRICS_OUTCOMES_MAX]);

	render_hist(&b, "credbroker_resolve_latency_seconds",
	    "Resolve latency, request received to answer ready.", &snap.lat);

	mbuf_printf(&b, "# HELP credbroker_active_grants Live grants (refreshed by the purge).\n"
	    "# TYPE credbroker_active_grants gauge\ncredbroker_active_grants %lld\n",
	    (long long)grant_active_count());

	if (c != NULL) {
		/* ops / batches: the group commit's batch size (one fsync per batch). */
		commit_stats(c, &batches, &ops, &failed);
		mbuf_printf(&b, "# HELP credbroker_commit_batches_total Group commits (one WAL "
		    "fsync each).\n# TYPE credbroker_commit_batches_total counter\n"
		    "credbroker_commit_batches_total %llu\n", (unsigned long long)batches);
		mbuf_printf(&b, "# HELP credbroker_commit_ops_total Durable operations through "
		    "the group commit (audited requests, purge batches).\n"
		    "# TYPE credbroker_commit_ops_total counter\n"
		    "credbroker_commit_ops_total %llu\n", (unsigned long long)ops);
		mbuf_printf(&b, "# HELP credbroker_commit_failed_batches_total Group commits "
		    "that failed, and their requests with them (a full disk, an I/O error).\n"
		    "# TYPE credbroker_commit_failed_batches_total counter\n"
		    "credbroker_commit_failed_batches_total %llu\n", (unsigned long long)failed);
		commit_latency(c, &wait, &batch);
		render_hist(&b, "credbroker_commit_wait_seconds", "Time a durable operation "
		    "waited in the group commit's queue before its batch began.", &wait);
		render_hist(&b, "credbroker_commit_batch_seconds", "Writer time of a group "
		    "commit: its operations, COMMIT and WAL fsync, per batch.", &batch);
	}

	if (b.err != 0) {
		free(b.p);
		return b.err;
	}
	*out = b.p;	/* transferred */
	*len = b.len;
	return 0;
}
