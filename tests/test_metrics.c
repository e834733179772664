/* test_metrics.c: counters, status classes, resolve outcomes and the latency histogram. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "err.h"
#include "metrics.h"

int main(void);

/* The value of the series `name` (with its labels, exactly as rendered), or -1. */
static long long
series(const char *text, const char *name)
{
	const char *p = text;
	size_t n = strlen(name);
	long long v;

	for (int i = 0; i < 100000 && (p = strstr(p, name)) != NULL; i++) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			v = strtoll(p + n + 1, NULL, 10);
			return v;
		}
		p += n;
	}
	return -1;
}

static char *
render(struct metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(m, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

static void
test_requests(void **state)
{
	struct metrics *m = NULL;
	char *t;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	t = render(m);
	/* Nothing counted yet: no request series, but the gauge and histogram exist. */
	assert_null(strstr(t, "credbroker_requests_total{"));
	assert_int_equal(series(t, "credbroker_active_grants"), 0);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_count"), 0);
	free(t);

	for (int i = 0; i < 5; i++)
		metrics_request(m, "GET /healthz", 200);
	metrics_request(m, "POST /v1/grants", 201);
	metrics_request(m, "POST /v1/grants", 403);
	metrics_request(m, "GET /nowhere", 404);	/* not a route: "other" */
	metrics_request(m, NULL, 401);
	metrics_request(m, "GET /healthz", 418);	/* uncounted status: "other" */
	metrics_request(NULL, "GET /healthz", 200);	/* NULL is fine */
	t = render(m);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"GET /healthz\",status=\"200\"}"), 5);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"POST /v1/grants\",status=\"201\"}"), 1);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"POST /v1/grants\",status=\"403\"}"), 1);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"other\",status=\"404\"}"), 1);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"other\",status=\"401\"}"), 1);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"GET /healthz\",status=\"other\"}"), 1);
	assert_int_equal(series(t, "credbroker_requests_total{route=\"GET /nowhere\",status=\"404\"}"), -1);
	free(t);
	metrics_free(m);
	metrics_free(NULL);
}

static void
test_resolve_histogram(void **state)
{
	struct metrics *m = NULL;
	char *t;
	char name[64];

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	metrics_resolve(m, "ok", 10);		/* <= 50 us */
	metrics_resolve(m, "ok", 50);		/* boundary: still the 50 us bucket */
	metrics_resolve(m, "ok", 51);		/* 100 us */
	metrics_resolve(m, "expired", 3000);	/* 5 ms */
	metrics_resolve(m, "ok", 10000000);	/* beyond the last bucket: +Inf only */
	metrics_resolve(m, "bad\"label", 1);	/* not an identifier: "other" */
	metrics_resolve(m, NULL, -5);		/* negative latency counts as 0 */
	t = render(m);
	assert_int_equal(series(t, "credbroker_resolve_total{outcome=\"ok\"}"), 4);
	assert_int_equal(series(t, "credbroker_resolve_total{outcome=\"expired\"}"), 1);
	assert_int_equal(series(t, "credbroker_resolve_total{outcome=\"other\"}"), 2);
	assert_null(strstr(t, "bad\"label"));
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"5e-05\"}"), 4);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"0.0001\"}"), 5);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"0.0025\"}"), 5);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"0.005\"}"), 6);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"2.5\"}"), 6);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_bucket{le=\"+Inf\"}"), 7);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_count"), 7);
	free(t);

	/* More distinct outcomes than kept by name: the rest become "other". */
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "code_%d", i);
		metrics_resolve(m, name, 1);
	}
	t = render(m);
	assert_true(series(t, "credbroker_resolve_total{outcome=\"other\"}") > 2);
	assert_int_equal(series(t, "credbroker_resolve_latency_seconds_count"), 47);
	free(t);
	metrics_free(m);
}

/* grant_active_count comes from grant.c; the gauge renders whatever it says. */
static void
test_render_is_prometheus_text(void **state)
{
	struct metrics *m = NULL;
	char *t, *line, *save = NULL;
	int lines = 0;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	for (size_t i = 0; api_routes[i] != NULL; i++)
		metrics_request(m, api_routes[i], 200);
	metrics_resolve(m, "ok", 100);
	t = render(m);
	for (line = strtok_r(t, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP credbroker_", 18) == 0 ||
			    strncmp(line, "# TYPE credbroker_", 18) == 0);
			continue;
		}
		assert_true(strncmp(line, "credbroker_", 11) == 0);
		assert_non_null(strrchr(line, ' '));
	}
	assert_true(lines > 20);
	free(t);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_resolve_histogram),
		cmocka_unit_test(test_render_is_prometheus_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
