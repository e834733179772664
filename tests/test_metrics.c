/*
 * test_metrics.c: counters, status classes, resolve outcomes and the latency histogram;
 * the per-request log line (log_request) that goes with them.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "testutil.h"

int main(void);

/* The value of the series `name` (with its labels, exactly as rendered), or -1. */
static long long
series(const char *text, const char *name)
{
	return testutil_metric(text, name);
}

static char *
render(struct metrics *m)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(m, NULL, &text, &len), 0);
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

/* Runs fn with stderr sent to a file and returns what it wrote (static buffer). */
static const char *
capture(void (*fn)(void))
{
	static char out[8192];
	char path[] = "/tmp/test_metrics_log.XXXXXX";
	int fd, saved;
	ssize_t n;

	assert_true((fd = mkstemp(path)) >= 0);
	unlink(path);
	fflush(stderr);
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	fn();
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	assert_true(lseek(fd, 0, SEEK_SET) == 0);
	n = read(fd, out, sizeof(out) - 1);
	assert_true(n >= 0);
	out[n] = '\0';
	close(fd);
	return out;
}

/* As long as server.c keeps one (SERVER_ID_MAX 256 with its NUL). */
static const char long_id[] = "spiffe://credbroker.dev/"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void
log_both(void)
{
	log_info("peer=%s identity=%s route=\"%s\" status=%u grant_id=%s latency_us=%lld",
	    "127.0.0.1:5555", "spiffe://credbroker.dev/proxy", "POST /v1/resolve", 200u,
	    "0123456789abcdef0123456789abcdef", 1234LL);
	log_request(__func__, "127.0.0.1:5555", "spiffe://credbroker.dev/proxy",
	    "POST /v1/resolve", 200u, "0123456789abcdef0123456789abcdef", 1234LL);
	log_info("peer=%s identity=%s route=\"%s\" status=%u grant_id=%s latency_us=%lld",
	    "[::1]:1", long_id, "other", 503u, "-", -7LL);
	log_request(__func__, "[::1]:1", long_id, "other", 503u, "-", -7LL);
}

static void
log_hostile(void)
{
	log_request(__func__, "127.0.0.1:1", "spiffe://x/a b\nstatus=200 \"q\"\\\x7f\xc3\xa9",
	    "POST /v1/x\r\ny", 403u, "g\001", 5LL);
}

static void
log_two_seconds(void)
{
	struct timespec ts = { 1, 100000000 };

	log_request(__func__, "p", "i", "r", 200u, "-", 0);
	nanosleep(&ts, NULL);
	log_request(__func__, "p", "i", "r", 200u, "-", 0);
}

/*
 * log_request writes what the printf form writes (after the time, which may have moved
 * on by a millisecond), and its per-thread cached second follows the clock.
 */
static void
test_request_log_line(void **state)
{
	char a[4][1024], when[2][32];
	const char *out, *p, *nl;
	struct tm tm;
	time_t t0;
	int i;

	(void)state;
	log_init("test_metrics", LOG_LVL_INFO);
	out = capture(log_both);
	for (i = 0, p = out; i < 4; i++, p = nl + 1) {
		assert_non_null(nl = strchr(p, '\n'));
		assert_true((size_t)(nl - p) < sizeof(a[i]) && nl - p > 24);
		/* "2026-11-27T07:48:24.123Z " then the rest. */
		assert_int_equal(p[10], 'T');
		assert_int_equal(p[23], 'Z');
		memcpy(a[i], p + 24, (size_t)(nl - p) - 24);
		a[i][nl - p - 24] = '\0';
	}
	assert_non_null(strstr(a[0], " info log_both: peer=127.0.0.1:5555 identity=spiffe:"));
	assert_string_equal(a[0], a[1]);
	assert_string_equal(a[2], a[3]);
	assert_non_null(strstr(a[3], "latency_us=-7"));
	/* A client's text cannot forge a line or a field: one line, the bytes escaped. */
	out = capture(log_hostile);
	assert_non_null(nl = strchr(out, '\n'));
	assert_int_equal(nl[1], '\0');
	assert_non_null(strstr(out, " identity=spiffe://x/a\\x20b\\x0astatus=200\\x20\\x22q\\x22"
	    "\\x5c\\x7f\\xc3\\xa9 route=\"POST /v1/x\\x0d\\x0ay\" status=403 grant_id=g\\x01 "
	    "latency_us=5"));

	t0 = time(NULL);
	out = capture(log_two_seconds);
	for (i = 0, p = out; i < 2; i++, p = nl + 1) {
		assert_non_null(nl = strchr(p, '\n'));
		memcpy(when[i], p, 19);
		when[i][19] = '\0';
	}
	assert_string_not_equal(when[0], when[1]);
	gmtime_r(&t0, &tm);
	assert_true(strftime(a[0], sizeof(a[0]), "%Y-%m-%dT%H:%M:%S", &tm) > 0);
	assert_true(strcmp(when[0], a[0]) >= 0);	/* not a stale second */
	/* Below info: nothing. */
	log_init("test_metrics", LOG_LVL_WARN);
	out = capture(log_two_seconds);
	assert_string_equal(out, "");
	log_init("test_metrics", LOG_LVL_INFO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_resolve_histogram),
		cmocka_unit_test(test_render_is_prometheus_text),
		cmocka_unit_test(test_request_log_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
