/*
 * test_api.c: routing (exact paths, {param} segments, 404 versus 405) and the
 * unaudited handlers (health, metrics). Audited routes need the commit thread and are
 * covered by the integration tests (tests/integration/test_api_matrix.py).
 */
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

struct answer {
	int calls;
	int status;
	char error[64];
	json_t *body;
	char *raw;
};

static void
fake_reply(struct api_call *call, int status, json_t *body, int sensitive)
{
	struct answer *a = call->server_ctx;
	json_t *e;

	(void)sensitive;
	a->calls++;
	a->status = status;
	e = body != NULL ? json_object_get(body, "error") : NULL;
	snprintf(a->error, sizeof(a->error), "%s", json_is_string(e) ? json_string_value(e) : "");
	a->body = body;
	a->raw = call->raw_body;
	call->raw_body = NULL;
}

static void
dispatch(struct broker *b, const struct identity *who, const char *method, const char *path,
    struct answer *a, struct api_call *call)
{
	memset(a, 0, sizeof(*a));
	memset(call, 0, sizeof(*call));
	call->b = b;
	call->who = who;
	call->peer = "127.0.0.1:1";
	call->method = method;
	call->path = path;
	call->reply = fake_reply;
	call->server_ctx = a;
	api_dispatch(call);
	assert_int_equal(a->calls, 1);
}

static void
answer_free(struct answer *a)
{
	json_decref(a->body);
	free(a->raw);
}

struct route_case {
	const char *method;
	const char *path;
	int status;
	const char *error;	/* NULL: success */
	const char *route;	/* label set for metrics, NULL: none */
	const char *arg;
};

static const struct route_case route_cases[] = {
	{ "GET", "/healthz", 200, NULL, "GET /healthz", NULL },
	{ "GET", "/metrics", 200, NULL, "GET /metrics", NULL },
	{ "POST", "/healthz", 405, "method_not_allowed", NULL, NULL },
	{ "HEAD", "/healthz", 405, "method_not_allowed", NULL, NULL },
	{ "get", "/healthz", 405, "method_not_allowed", NULL, NULL },
	{ "GET", "/healthz/", 404, "not_found", NULL, NULL },
	{ "GET", "/healthzz", 404, "not_found", NULL, NULL },
	{ "GET", "/", 404, "not_found", NULL, NULL },
	{ "GET", "", 404, "not_found", NULL, NULL },
	{ "GET", "/v1/grants", 405, "method_not_allowed", NULL, NULL },
	{ "PATCH", "/v1/grants/abc", 405, "method_not_allowed", NULL, NULL },
	{ "GET", "/v1/grants/", 404, "not_found", NULL, NULL },
	{ "GET", "/v1/grants/a/b", 404, "not_found", NULL, NULL },
	{ "GET", "/v1/secrets/x/", 404, "not_found", NULL, NULL },
	{ "PUT", "/v1/secrets", 405, "method_not_allowed", NULL, NULL },
	{ "POST", "/v1/sandboxes/s1/grants", 405, "method_not_allowed", NULL, NULL },
	{ "DELETE", "/v1/sandboxes//grants", 404, "not_found", NULL, NULL },
	{ "GET", "/v1/audit/verify/x", 404, "not_found", NULL, NULL },
	{ "GET", "/V1/secrets", 404, "not_found", NULL, NULL },
	/* A harness on admin routes: 403 before anything else (audited: needs commit). */
};

static void
test_routes(void **state)
{
	struct metrics *m = NULL;
	struct broker b;
	struct identity who = { "spiffe://t/admin", ROLE_ADMIN, 0, NULL, 0, 0 };
	struct api_call call;
	struct answer a;
	size_t i;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	memset(&b, 0, sizeof(b));
	b.metrics = m;
	for (i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
		const struct route_case *c = &route_cases[i];

		dispatch(&b, &who, c->method, c->path, &a, &call);
		if (a.status != c->status)
			fail_msg("%s %s: %d, want %d", c->method, c->path, a.status, c->status);
		assert_string_equal(a.error, c->error != NULL ? c->error : "");
		if (c->route != NULL)
			assert_string_equal(call.route, c->route);
		answer_free(&a);
	}
	metrics_free(m);
}

static void
test_health_and_metrics(void **state)
{
	struct metrics *m = NULL;
	struct broker b;
	struct identity proxy = { "spiffe://t/proxy", ROLE_PROXY, 0, NULL, 0, 0 };
	struct api_call call;
	struct answer a;

	(void)state;
	assert_int_equal(metrics_new(&m), 0);
	memset(&b, 0, sizeof(b));
	b.metrics = m;
	dispatch(&b, &proxy, "GET", "/healthz", &a, &call);
	assert_int_equal(a.status, 200);
	assert_string_equal(json_string_value(json_object_get(a.body, "status")), "ok");
	answer_free(&a);

	metrics_request(m, "GET /healthz", 200);
	dispatch(&b, &proxy, "GET", "/metrics", &a, &call);
	assert_int_equal(a.status, 200);
	assert_null(a.body);
	assert_non_null(a.raw);
	assert_non_null(strstr(a.raw, "credbroker_requests_total{route=\"GET /healthz\",status=\"200\"} 1\n"));
	assert_non_null(strstr(call.content_type, "text/plain"));
	answer_free(&a);
	metrics_free(m);
}

static void
test_path_args(void **state)
{
	struct broker b;
	struct identity who = { "spiffe://t/admin", ROLE_ADMIN, 0, NULL, 0, 0 };
	struct api_call call;
	struct answer a;
	char path[600];

	(void)state;
	memset(&b, 0, sizeof(b));
	/* Too long, or not printable ASCII: no such object, before any handler runs. */
	memset(path, 'a', sizeof(path));
	memcpy(path, "/v1/secrets/", 12);
	path[sizeof(path) - 1] = '\0';
	dispatch(&b, &who, "GET", path, &a, &call);
	assert_int_equal(a.status, 404);
	answer_free(&a);
	dispatch(&b, &who, "GET", "/v1/secrets/a b", &a, &call);
	assert_int_equal(a.status, 404);
	answer_free(&a);
	dispatch(&b, &who, "GET", "/v1/secrets/a\x7f", &a, &call);
	assert_int_equal(a.status, 404);
	answer_free(&a);
	dispatch(&b, &who, "GET", "/v1/secrets/\xc3\xa9", &a, &call);
	assert_int_equal(a.status, 404);
	answer_free(&a);
}

static void
test_route_table(void **state)
{
	size_t i, j;

	(void)state;
	for (i = 0; api_routes[i] != NULL; i++) {
		const char *sp = strchr(api_routes[i], ' ');

		assert_non_null(sp);
		assert_true(sp[1] == '/');
		for (j = 0; j < i; j++)
			assert_string_not_equal(api_routes[i], api_routes[j]);
	}
	assert_int_equal(i, 14);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_health_and_metrics),
		cmocka_unit_test(test_path_args),
		cmocka_unit_test(test_route_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
