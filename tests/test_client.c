/*
 * test_client.c: libcredbroker without a network: exact request bodies, and answers
 * that are malformed, truncated, oversized or wrong-typed are errors, never crashes
 * (run it under ASan: --enable-sanitizers). Plus argument checks and a refused
 * connection on loopback.
 */
#include "config.h"

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "credbroker.h"
#include "cbclient_int.h"

/* ---- request bodies ---------------------------------------------------------- */

static void
test_build_grant_minimal(void **state)
{
	struct cbc_binding b = { .secret = "github", .host = "api.github.com" };
	struct cbc_grant_req req = { .sandbox_id = "sbx-42", .ttl_s = 600, .bindings = &b,
	    .nbindings = 1 };
	char *body;

	assert_int_equal(cbc_build_grant(&req, &body), 0);
	assert_string_equal(body, "{\"sandbox_id\":\"sbx-42\",\"ttl_s\":600,\"max_uses\":null,"
	    "\"bindings\":[{\"secret\":\"github\",\"host\":\"api.github.com\",\"port\":443}]}");
	free(body);
}

static void
test_build_grant_full(void **state)
{
	static const char *const methods[] = { "GET", "POST", NULL };
	struct cbc_binding b[2] = {
		{ .secret = "github", .host = "api.github.com", .port = 8443, .methods = methods,
		    .path_prefix = "/repos/acme/", .header = "Authorization",
		    .template_ = "Bearer {secret}" },
		{ .secret = "llm", .host = "llm.example", .header = "X-Api-Key",
		    .template_ = "{secret}", .inject = 1 },
	};
	struct cbc_grant_req req = { .sandbox_id = "sbx-\"q\"", .ttl_s = 60, .max_uses = 3,
	    .bindings = b, .nbindings = 2 };
	char *body;

	assert_int_equal(cbc_build_grant(&req, &body), 0);
	assert_string_equal(body, "{\"sandbox_id\":\"sbx-\\\"q\\\"\",\"ttl_s\":60,\"max_uses\":3,"
	    "\"bindings\":[{\"secret\":\"github\",\"host\":\"api.github.com\",\"port\":8443,"
	    "\"methods\":[\"GET\",\"POST\"],\"path_prefix\":\"/repos/acme/\","
	    "\"header\":\"Authorization\",\"template\":\"Bearer {secret}\"},"
	    "{\"secret\":\"llm\",\"host\":\"llm.example\",\"port\":443,\"header\":\"X-Api-Key\","
	    "\"template\":\"{secret}\",\"inject\":true}]}");
	free(body);
}

static void
test_build_grant_invalid(void **state)
{
	static const char *const empty_method[] = { "", NULL };
	struct cbc_binding ok = { .secret = "s", .host = "h" };
	struct cbc_binding bad[] = {
		{ .secret = NULL, .host = "h" },
		{ .secret = "", .host = "h" },
		{ .secret = "s", .host = NULL },
		{ .secret = "s", .host = "h", .port = 65536 },
		{ .secret = "s", .host = "h", .port = -1 },
		{ .secret = "s", .host = "h", .methods = empty_method },
		{ .secret = "s", .host = "h\xff" },		/* not UTF-8 */
		{ .secret = "s", .host = "h", .template_ = "\xc3" },
	};
	struct cbc_grant_req req = { .sandbox_id = "sbx", .ttl_s = 1, .bindings = &ok,
	    .nbindings = 1 };
	struct cbc_binding many[CBC_BINDINGS_MAX + 1];
	char *body = (char *)1;
	size_t i;

	assert_int_equal(cbc_build_grant(NULL, &body), CBC_E_USAGE);
	assert_null(body);
	req.ttl_s = 0;
	assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
	req.ttl_s = 1;
	req.max_uses = -1;
	assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
	req.max_uses = 0;
	req.nbindings = 0;
	assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
	/* the broker's 16 bindings: 17 are refused here, not by a 400 (they said "64") */
	for (i = 0; i <= CBC_BINDINGS_MAX; i++)
		many[i] = ok;
	req.bindings = many;
	req.nbindings = CBC_BINDINGS_MAX;
	assert_int_equal(cbc_build_grant(&req, &body), 0);
	free(body);
	req.nbindings = CBC_BINDINGS_MAX + 1;
	body = (char *)1;
	assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
	assert_null(body);
	req.bindings = &ok;
	req.nbindings = 1;
	req.sandbox_id = "";
	assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
	req.sandbox_id = "sbx";
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req.bindings = &bad[i];
		assert_int_equal(cbc_build_grant(&req, &body), CBC_E_USAGE);
		assert_null(body);
	}
}

static void
test_build_resolve(void **state)
{
	char *body;
	size_t len;

	assert_int_equal(cbc_build_resolve("cbt_abc", "sbx-42", "api.github.com", 443, "POST",
	    "/repos/acme/x/issues", &body, &len), 0);
	assert_string_equal(body, "{\"token\":\"cbt_abc\",\"sandbox_id\":\"sbx-42\","
	    "\"host\":\"api.github.com\",\"port\":443,\"method\":\"POST\","
	    "\"path\":\"/repos/acme/x/issues\"}");
	assert_int_equal(len, strlen(body));
	free(body);
	/* Token-less: the field is absent. */
	assert_int_equal(cbc_build_resolve(NULL, "sbx-42", "h", 8443, "GET", "/", &body, &len),
	    0);
	assert_string_equal(body, "{\"sandbox_id\":\"sbx-42\",\"host\":\"h\",\"port\":8443,"
	    "\"method\":\"GET\",\"path\":\"/\"}");
	free(body);
	assert_int_equal(cbc_build_resolve("", "s", "h", 443, "GET", "/", &body, &len),
	    CBC_E_USAGE);
	assert_int_equal(cbc_build_resolve(NULL, "s", "h", 0, "GET", "/", &body, &len),
	    CBC_E_USAGE);
	assert_int_equal(cbc_build_resolve(NULL, "s", "h", 443, "GET", "", &body, &len),
	    CBC_E_USAGE);
	assert_int_equal(cbc_build_resolve(NULL, NULL, "h", 443, "GET", "/", &body, &len),
	    CBC_E_USAGE);
	assert_null(body);
}

static void
test_build_secret(void **state)
{
	static const char *const hosts[] = { "api.github.com", "uploads.github.com", NULL };
	unsigned char big[CBC_VALUE_MAX + 1];
	char *body;
	size_t len;

	assert_int_equal(cbc_build_secret((const unsigned char *)"ghp_x\"y", 7, hosts, 3600,
	    &body, &len), 0);
	assert_string_equal(body, "{\"value\":\"ghp_x\\\"y\",\"hosts\":[\"api.github.com\","
	    "\"uploads.github.com\"],\"max_ttl_s\":3600}");
	assert_int_equal(len, strlen(body));
	explicit_bzero(body, len);
	free(body);
	/* No max TTL (0): the field is absent; no hosts: an empty list. */
	assert_int_equal(cbc_build_secret((const unsigned char *)"v", 1, NULL, 0, &body, &len),
	    0);
	assert_string_equal(body, "{\"value\":\"v\",\"hosts\":[]}");
	free(body);

	assert_int_equal(cbc_build_secret((const unsigned char *)"a\nb", 3, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"a\rb", 3, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"a\0b", 3, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"a\x01b", 3, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"a\x7f", 2, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"\xff", 1, hosts, 0, &body,
	    &len), CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"", 0, hosts, 0, &body, &len),
	    CBC_E_USAGE);
	assert_int_equal(cbc_build_secret((const unsigned char *)"v", 1, hosts, -1, &body,
	    &len), CBC_E_USAGE);
	memset(big, 'a', sizeof(big));
	assert_int_equal(cbc_build_secret(big, CBC_VALUE_MAX, hosts, 0, &body, &len), 0);
	free(body);
	assert_int_equal(cbc_build_secret(big, CBC_VALUE_MAX + 1, hosts, 0, &body, &len),
	    CBC_E_USAGE);
	assert_null(body);
}

static void
test_build_rotate(void **state)
{
	char *body;

	assert_int_equal(cbc_build_rotate("data", &body), 0);
	assert_string_equal(body, "{\"kind\":\"data\"}");
	free(body);
	assert_int_equal(cbc_build_rotate("signing", &body), 0);
	assert_string_equal(body, "{\"kind\":\"signing\"}");
	free(body);
	assert_int_equal(cbc_build_rotate("master", &body), CBC_E_USAGE);
	assert_int_equal(cbc_build_rotate(NULL, &body), CBC_E_USAGE);
	assert_null(body);
}

/* ---- answers ----------------------------------------------------------------- */

#define GRANT_OK "{\"grant_id\":\"g123\",\"token\":\"cbt_aaa.bbb.ccc\"," \
	"\"expires_at\":\"2026-01-02T03:04:05Z\"}"
#define RESOLVE_OK "{\"headers\":[{\"name\":\"Authorization\",\"value\":\"Bearer s3cr3t\"}," \
	"{\"name\":\"X-K\",\"value\":\"v w\\tx\"}],\"expires_in\":412}"

static void
test_parse_grant_ok(void **state)
{
	struct cbc_grant *g;

	assert_int_equal(cbc_parse_grant(GRANT_OK, strlen(GRANT_OK), &g, NULL, 0), 0);
	assert_string_equal(g->grant_id, "g123");
	assert_string_equal(g->token, "cbt_aaa.bbb.ccc");
	assert_string_equal(g->expires_at, "2026-01-02T03:04:05Z");
	cbc_grant_free(g);
	cbc_grant_free(NULL);
}

static const char *const bad_grants[] = {
	"",
	" ",
	"null",
	"[]",
	"\"x\"",
	"{}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\"}",
	"{\"grant_id\":\"g\",\"expires_at\":\"t\"}",
	"{\"grant_id\":1,\"token\":\"cbt_x\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":[\"cbt_x\"],\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\",\"expires_at\":null}",
	"{\"grant_id\":\"\",\"token\":\"cbt_x\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"xyz\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\\u0000y\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\\ny\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"grant_id\":\"h\",\"token\":\"cbt_x\",\"expires_at\":\"t\"}",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\",\"expires_at\":\"t\"} x",
	"{\"grant_id\":\"g\",\"token\":\"cbt_x\",\"expires_at\":\"t\"}{}",
	"{\"grant_id\":\"g\xff\",\"token\":\"cbt_x\",\"expires_at\":\"t\"}",
	"{'grant_id':'g','token':'cbt_x','expires_at':'t'}",
	"<html>502 Bad Gateway</html>",
};

static void
test_parse_grant_bad(void **state)
{
	struct cbc_grant *g;
	char why[160];
	size_t i;

	for (i = 0; i < sizeof(bad_grants) / sizeof(bad_grants[0]); i++) {
		g = (struct cbc_grant *)1;
		why[0] = '\0';
		if (cbc_parse_grant(bad_grants[i], strlen(bad_grants[i]), &g, why,
		    sizeof(why)) != CBC_E_PROTOCOL)
			fail_msg("accepted bad grant answer %zu: %s", i, bad_grants[i]);
		assert_null(g);
		assert_true(why[0] != '\0');
	}
	/* The error text never carries the token. */
	assert_int_equal(cbc_parse_grant("{\"grant_id\":\"g\",\"token\":\"cbt_LEAK\"}", 35, &g,
	    why, sizeof(why)), CBC_E_PROTOCOL);
	assert_null(strstr(why, "LEAK"));
}

/* Every strict prefix of a valid answer is an error: truncation never passes. */
static void
test_parse_truncated(void **state)
{
	struct cbc_resolved *r;
	struct cbc_grant *g;
	char *json;
	long long v;
	size_t i;

	for (i = 0; i < strlen(GRANT_OK); i++) {
		assert_int_equal(cbc_parse_grant(GRANT_OK, i, &g, NULL, 0), CBC_E_PROTOCOL);
		assert_null(g);
		assert_int_equal(cbc_parse_object(GRANT_OK, i, &json, NULL, 0), CBC_E_PROTOCOL);
		assert_null(json);
	}
	for (i = 0; i < strlen(RESOLVE_OK); i++) {
		assert_int_equal(cbc_parse_resolved(RESOLVE_OK, i, &r, NULL, 0), CBC_E_PROTOCOL);
		assert_null(r);
	}
	for (i = 0; i < strlen("{\"name\":\"n\",\"version\":12}"); i++)
		assert_int_equal(cbc_parse_version("{\"name\":\"n\",\"version\":12}", i, &v, NULL,
		    0), CBC_E_PROTOCOL);
}

static void
test_parse_resolved_ok(void **state)
{
	struct cbc_resolved *r;
	const char *empty = "{\"headers\":[],\"expires_in\":0}";

	assert_int_equal(cbc_parse_resolved(RESOLVE_OK, strlen(RESOLVE_OK), &r, NULL, 0), 0);
	assert_int_equal(r->nheaders, 2);
	assert_string_equal(r->headers[0].name, "Authorization");
	assert_string_equal(r->headers[0].value, "Bearer s3cr3t");
	assert_string_equal(r->headers[1].name, "X-K");
	assert_string_equal(r->headers[1].value, "v w\tx");
	assert_int_equal(r->expires_in, 412);
	cbc_resolved_free(r);
	assert_int_equal(cbc_parse_resolved(empty, strlen(empty), &r, NULL, 0), 0);
	assert_int_equal(r->nheaders, 0);
	assert_null(r->headers);
	cbc_resolved_free(r);
	cbc_resolved_free(NULL);
}

static const char *const bad_resolves[] = {
	"{}",
	"{\"headers\":[]}",
	"{\"expires_in\":5}",
	"{\"headers\":{},\"expires_in\":5}",
	"{\"headers\":null,\"expires_in\":5}",
	"{\"headers\":[],\"expires_in\":\"5\"}",
	"{\"headers\":[],\"expires_in\":5.0}",
	"{\"headers\":[],\"expires_in\":-1}",
	"{\"headers\":[],\"expires_in\":true}",
	"{\"headers\":[],\"expires_in\":99999999999999999999999}",
	"{\"headers\":[1],\"expires_in\":5}",
	"{\"headers\":[\"Authorization: x\"],\"expires_in\":5}",
	"{\"headers\":[{}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\"}],\"expires_in\":5}",
	"{\"headers\":[{\"value\":\"v\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":1}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":null}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"\",\"value\":\"v\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A B\",\"value\":\"v\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A:\",\"value\":\"v\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\\r\\nX-Evil: 1\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\\u0000\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\\u0001\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\\u007f\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\\tB\",\"value\":\"v\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\",\"value\":\"w\"}],\"expires_in\":5}",
	"{\"headers\":[{\"name\":\"A\",\"value\":\"v\"},2],\"expires_in\":5}",
	"{\"headers\":[],\"expires_in\":5,\"headers\":[]}",
	"{\"headers\":[],\"expires_in\":5}\n\n]",
};

static void
test_parse_resolved_bad(void **state)
{
	struct cbc_resolved *r;
	char why[160];
	size_t i;

	for (i = 0; i < sizeof(bad_resolves) / sizeof(bad_resolves[0]); i++) {
		r = (struct cbc_resolved *)1;
		if (cbc_parse_resolved(bad_resolves[i], strlen(bad_resolves[i]), &r, why,
		    sizeof(why)) != CBC_E_PROTOCOL)
			fail_msg("accepted bad resolve answer %zu: %s", i, bad_resolves[i]);
		assert_null(r);
	}
}

/* More headers than allowed, and a failure after some headers were copied (no leak). */
static void
test_parse_resolved_limits(void **state)
{
	struct cbc_resolved *r;
	char buf[8192];
	size_t off, i;

	off = (size_t)snprintf(buf, sizeof(buf), "{\"headers\":[");
	for (i = 0; i < 65; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
		    "%s{\"name\":\"H%zu\",\"value\":\"v\"}", i ? "," : "", i);
	off += (size_t)snprintf(buf + off, sizeof(buf) - off, "],\"expires_in\":1}");
	assert_int_equal(cbc_parse_resolved(buf, off, &r, NULL, 0), CBC_E_PROTOCOL);
	assert_null(r);
	/* 3 good then a bad one: the partial result is freed (ASan/LSan would tell). */
	off = (size_t)snprintf(buf, sizeof(buf), "{\"headers\":[{\"name\":\"A\",\"value\":\"1\"},"
	    "{\"name\":\"B\",\"value\":\"2\"},{\"name\":\"C\",\"value\":\"3\"},"
	    "{\"name\":\"D\",\"value\":4}],\"expires_in\":1}");
	assert_int_equal(cbc_parse_resolved(buf, off, &r, NULL, 0), CBC_E_PROTOCOL);
	assert_null(r);
}

static void
test_parse_oversized(void **state)
{
	struct cbc_resolved *r;
	size_t n = CBC_ANSWER_MAX + 1, off;
	char *buf, *json;

	/* A valid object padded with whitespace to one byte over the limit. */
	buf = malloc(n);
	assert_non_null(buf);
	memset(buf, ' ', n);
	off = (size_t)snprintf(buf, n, "{\"headers\":[],\"expires_in\":1}");
	buf[off] = ' ';
	assert_int_equal(cbc_parse_resolved(buf, n, &r, NULL, 0), CBC_E_PROTOCOL);
	assert_null(r);
	assert_int_equal(cbc_parse_object(buf, n, &json, NULL, 0), CBC_E_PROTOCOL);
	assert_null(json);
	/* At exactly the limit it is fine. */
	assert_int_equal(cbc_parse_resolved(buf, n - 1, &r, NULL, 0), 0);
	cbc_resolved_free(r);
	/* Deep nesting is a parse error, not a stack overflow. */
	memset(buf, '[', n);
	assert_int_equal(cbc_parse_object(buf, n - 1, &json, NULL, 0), CBC_E_PROTOCOL);
	buf[0] = '{';
	assert_int_equal(cbc_parse_object(buf, 100000, &json, NULL, 0), CBC_E_PROTOCOL);
	free(buf);
}

struct int_case {
	const char *json;
	int ok;
	long long want;
};

static void
test_parse_version_revoked(void **state)
{
	static const struct int_case vers[] = {
		{ "{\"name\":\"n\",\"version\":1}", 1, 1 },
		{ "{\"name\":\"n\",\"version\":9007199254740993}", 1, 9007199254740993LL },
		{ "{\"name\":\"n\",\"version\":0}", 0, 0 },
		{ "{\"name\":\"n\",\"version\":-2}", 0, 0 },
		{ "{\"name\":\"n\",\"version\":\"2\"}", 0, 0 },
		{ "{\"name\":\"n\",\"version\":2.5}", 0, 0 },
		{ "{\"name\":\"n\",\"version\":null}", 0, 0 },
		{ "{\"name\":\"n\"}", 0, 0 },
		{ "{\"version\":1,\"version\":2}", 0, 0 },
		{ "[1]", 0, 0 },
	};
	static const struct int_case revs[] = {
		{ "{\"sandbox_id\":\"s\",\"revoked\":0}", 1, 0 },
		{ "{\"sandbox_id\":\"s\",\"revoked\":7}", 1, 7 },
		{ "{\"sandbox_id\":\"s\",\"revoked\":-1}", 0, 0 },
		{ "{\"sandbox_id\":\"s\",\"revoked\":\"7\"}", 0, 0 },
		{ "{\"sandbox_id\":\"s\",\"revoked\":false}", 0, 0 },
		{ "{\"sandbox_id\":\"s\"}", 0, 0 },
	};
	long long v;
	size_t i;

	for (i = 0; i < sizeof(vers) / sizeof(vers[0]); i++) {
		v = -99;
		assert_int_equal(cbc_parse_version(vers[i].json, strlen(vers[i].json), &v, NULL,
		    0), vers[i].ok ? 0 : CBC_E_PROTOCOL);
		assert_int_equal(v, vers[i].want);
	}
	for (i = 0; i < sizeof(revs) / sizeof(revs[0]); i++) {
		v = -99;
		assert_int_equal(cbc_parse_revoked(revs[i].json, strlen(revs[i].json), &v, NULL,
		    0), revs[i].ok ? 0 : CBC_E_PROTOCOL);
		assert_int_equal(v, revs[i].want);
	}
}

static void
test_parse_object(void **state)
{
	const char *ok = "{\"ok\":true,\"records\":3}";
	char *json;

	assert_int_equal(cbc_parse_object(ok, strlen(ok), &json, NULL, 0), 0);
	assert_string_equal(json, ok);
	free(json);
	/* Not NUL-terminated input: only len bytes count. */
	assert_int_equal(cbc_parse_object("{}garbage", 2, &json, NULL, 0), 0);
	assert_string_equal(json, "{}");
	free(json);
	assert_int_equal(cbc_parse_object("[]", 2, &json, NULL, 0), CBC_E_PROTOCOL);
	assert_int_equal(cbc_parse_object("{\"a\":1,\"a\":2}", 13, &json, NULL, 0),
	    CBC_E_PROTOCOL);
	assert_int_equal(cbc_parse_object("{\"a\":1}x", 8, &json, NULL, 0), CBC_E_PROTOCOL);
	assert_int_equal(cbc_parse_object(NULL, 0, &json, NULL, 0), CBC_E_PROTOCOL);
	assert_null(json);
}

static void
test_parse_error(void **state)
{
	static const char *const bad[] = {
		"{}", "{\"error\":1}", "{\"error\":\"\"}", "{\"error\":\"Bad Code\"}",
		"{\"error\":\"x\\ny\"}", "{\"error\":\"<script>\"}", "not json",
		"{\"error\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	};
	static const char *const fields[][2] = {
		{ "{\"error\":\"wrong_type\",\"field\":\"ttl_s\"}", "ttl_s" },
		{ "{\"error\":\"wrong_type\",\"field\":\"bindings.0.Port\"}", "bindings.0.Port" },
		{ "{\"error\":\"wrong_type\",\"field\":\"a b\"}", "" },
		{ "{\"error\":\"wrong_type\",\"field\":3}", "" },
		{ "{\"error\":\"wrong_type\",\"field\":\"\\u001b[31m\"}", "" },
		{ "{\"error\":\"wrong_type\"}", "" },
	};
	char code[CBC_ERRCODE_MAX], field[16];
	size_t i;

	assert_int_equal(cbc_parse_error("{\"error\":\"host_not_allowed\"}", 28, code,
	    sizeof(code), NULL, 0), 0);
	assert_string_equal(code, "host_not_allowed");
	assert_int_equal(cbc_parse_error("{\"error\":\"json.duplicate-key\",\"x\":1}", 36, code,
	    sizeof(code), field, sizeof(field)), 0);
	assert_string_equal(code, "json.duplicate-key");
	assert_string_equal(field, "");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(code, "junk", 5);
		memcpy(field, "junk", 5);
		assert_int_equal(cbc_parse_error(bad[i], strlen(bad[i]), code, sizeof(code), field,
		    sizeof(field)), CBC_E_PROTOCOL);
		assert_string_equal(code, "");
		assert_string_equal(field, "");
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		assert_int_equal(cbc_parse_error(fields[i][0], strlen(fields[i][0]), code,
		    sizeof(code), field, sizeof(field)), 0);
		assert_string_equal(code, "wrong_type");
		assert_string_equal(field, fields[i][1]);
	}
	/* A field longer than the buffer is dropped, not cut. */
	assert_int_equal(cbc_parse_error("{\"error\":\"e\",\"field\":\"abcdefghijklmnopq\"}",
	    strlen("{\"error\":\"e\",\"field\":\"abcdefghijklmnopq\"}"), code, sizeof(code),
	    field, sizeof(field)), 0);
	assert_string_equal(field, "");
}

/* Deterministic xorshift: reproducible mutations, no libc PRNG. */
static uint32_t
mut_next(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *st = x;
}

/*
 * Random byte changes, insertions of JSON punctuation and truncations of valid answers:
 * every parser returns 0 (then the result is well-formed) or CBC_E_PROTOCOL, never
 * crashes (ASan/UBSan build).
 */
static void
test_parse_mutations(void **state)
{
	static const char *const seeds[] = { GRANT_OK, RESOLVE_OK,
	    "{\"name\":\"n\",\"version\":3}", "{\"sandbox_id\":\"s\",\"revoked\":2}",
	    "{\"error\":\"wrong_type\",\"field\":\"ttl_s\"}" };
	static const char punct[] = "{}[]\",:\\0-e.tnu \x00\xff\x7f\n";
	struct cbc_resolved *r;
	struct cbc_grant *g;
	char buf[256], code[CBC_ERRCODE_MAX], field[CBC_ERRCODE_MAX], *json;
	uint32_t st = 0x2545f491;
	long long v;
	size_t i, k, n, len, pos, accepted = 0, refused = 0;
	int rc;

	for (i = 0; i < 20000; i++) {
		const char *seed = seeds[i % (sizeof(seeds) / sizeof(seeds[0]))];

		len = strlen(seed);
		memcpy(buf, seed, len);
		n = 1 + mut_next(&st) % 4;
		for (k = 0; k < n; k++) {
			pos = mut_next(&st) % len;
			switch (mut_next(&st) % 3) {
			case 0:
				buf[pos] = (char)(mut_next(&st) & 0xff);
				break;
			case 1:
				buf[pos] = punct[mut_next(&st) % (sizeof(punct) - 1)];
				break;
			default:
				len = pos + 1;	/* truncate */
				break;
			}
		}
		rc = cbc_parse_grant(buf, len, &g, NULL, 0);
		assert_true(rc == 0 || rc == CBC_E_PROTOCOL);
		if (rc == 0) {
			assert_int_equal(strncmp(g->token, "cbt_", 4), 0);
			cbc_grant_free(g);
		} else
			assert_null(g);
		rc = cbc_parse_resolved(buf, len, &r, NULL, 0);
		assert_true(rc == 0 || rc == CBC_E_PROTOCOL);
		if (rc == 0) {
			for (k = 0; k < r->nheaders; k++) {
				assert_null(strpbrk(r->headers[k].value, "\r\n"));
				assert_true(r->headers[k].name[0] != '\0');
			}
			cbc_resolved_free(r);
		} else
			assert_null(r);
		rc = cbc_parse_version(buf, len, &v, NULL, 0);
		assert_true((rc == 0 && v >= 1) || (rc == CBC_E_PROTOCOL && v == 0));
		rc = cbc_parse_revoked(buf, len, &v, NULL, 0);
		assert_true((rc == 0 && v >= 0) || (rc == CBC_E_PROTOCOL && v == 0));
		rc = cbc_parse_object(buf, len, &json, NULL, 0);
		assert_true(rc == 0 || rc == CBC_E_PROTOCOL);
		if (rc == 0)
			accepted++;
		else
			refused++;
		free(json);
		rc = cbc_parse_error(buf, len, code, sizeof(code), field, sizeof(field));
		assert_true(rc == 0 || rc == CBC_E_PROTOCOL);
		assert_null(strpbrk(code, " \t\r\n\"\\"));
		assert_null(strpbrk(field, " \t\r\n\"\\"));
	}
	/* Both outcomes happened: the mutations neither always break nor never do. */
	assert_true(accepted > 100 && refused > 100);
}

/* The answer buffer: chunks accumulate up to exactly 1 MiB; one byte more aborts. */
static void
test_write_bounded(void **state)
{
	struct cbc_buf b;
	char *chunk;
	size_t n = 64 * 1024, i;

	memset(&b, 0, sizeof(b));
	chunk = malloc(n);
	assert_non_null(chunk);
	memset(chunk, 'x', n);
	for (i = 0; i < CBC_ANSWER_MAX / n; i++)
		assert_int_equal(cbc_write_cb(chunk, 1, n, &b), n);
	assert_int_equal(b.len, CBC_ANSWER_MAX);
	assert_int_equal(b.p[b.len], '\0');
	assert_int_equal(b.over, 0);
	assert_int_equal(cbc_write_cb(chunk, 1, 1, &b), 0);
	assert_int_equal(b.over, 1);
	assert_int_equal(b.len, CBC_ANSWER_MAX);
	cbc_buf_wipe(&b);
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	/* A single huge chunk is refused without allocating for it. */
	memset(&b, 0, sizeof(b));
	assert_int_equal(cbc_write_cb(chunk, 1, 3, &b), 3);
	assert_int_equal(cbc_write_cb(chunk, 1, (size_t)-1 / 2, &b), 0);
	assert_int_equal(b.over, 1);
	assert_memory_equal(b.p, "xxx", 4);
	cbc_buf_wipe(&b);
	cbc_buf_wipe(&b);	/* idempotent */
	free(chunk);
}

/* ---- the client object, no broker -------------------------------------------- */

static void
test_new_args(void **state)
{
	struct cbc_opts o = { .url = "https://127.0.0.1:8443/", .cert = "c.pem", .key = "k.pem",
	    .cacert = "ca.pem" };
	cbc_t *c = (cbc_t *)1;

	assert_int_equal(cbc_new(NULL, &c), CBC_E_USAGE);
	assert_null(c);
	assert_int_equal(cbc_new(&o, NULL), CBC_E_USAGE);
	o.url = "http://127.0.0.1:8443";
	assert_int_equal(cbc_new(&o, &c), CBC_E_USAGE);
	o.url = "https://";
	assert_int_equal(cbc_new(&o, &c), CBC_E_USAGE);
	o.url = "https://h/x?y";
	assert_int_equal(cbc_new(&o, &c), CBC_E_USAGE);
	o.url = "https://127.0.0.1:8443/";
	o.key = NULL;
	assert_int_equal(cbc_new(&o, &c), CBC_E_USAGE);
	o.key = "k.pem";
	o.timeout_ms = -1;
	assert_int_equal(cbc_new(&o, &c), CBC_E_USAGE);
	o.timeout_ms = 0;
	assert_int_equal(cbc_new(&o, &c), 0);
	{
		/* jansson now wipes what it frees (its copies of a resolved credential). */
		json_malloc_t m;
		json_free_t f;

		json_get_alloc_funcs(&m, &f);
		assert_true(f != free);
		assert_true(m != NULL);
	}
	assert_string_equal(cbc_errmsg(c), "");
	assert_int_equal(cbc_http_status(c), 0);
	assert_string_equal(cbc_error_code(c), "");
	/* Arguments checked before any I/O. */
	assert_int_equal(cbc_grant_mint(c, NULL, NULL), CBC_E_USAGE);
	assert_int_equal(cbc_grant_revoke(c, ""), CBC_E_USAGE);
	assert_int_equal(cbc_secret_delete(c, NULL), CBC_E_USAGE);
	assert_int_equal(cbc_key_rotate(c, "master", NULL), CBC_E_USAGE);
	assert_non_null(strstr(cbc_errmsg(c), "data"));
	assert_int_equal(cbc_audit_get(c, -1, 0, (char **)&o.url), CBC_E_USAGE);
	cbc_free(c);
	cbc_free(NULL);
	assert_string_equal(cbc_strerror(CBC_E_CONNECT), "connection or TLS failure");
	assert_string_equal(cbc_strerror(12345), "unknown error");
}

/* A port where nothing listens: CBC_E_CONNECT, and the message says what to do. */
static void
test_connect_refused(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char url[64];
	struct cbc_opts o = { .cert = "/nonexistent.pem", .key = "/nonexistent.key",
	    .cacert = "/nonexistent-ca.pem", .timeout_ms = 2000 };
	cbc_t *c;
	int s;

	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	close(s);	/* bound, never listened: connections are refused */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", ntohs(sin.sin_port));
	o.url = url;
	assert_int_equal(cbc_new(&o, &c), 0);
	assert_int_equal(cbc_health(c), CBC_E_CONNECT);
	assert_non_null(strstr(cbc_errmsg(c), "is credbrokerd running at https://127.0.0.1:"));
	assert_int_equal(cbc_http_status(c), 0);
	cbc_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_grant_minimal),
		cmocka_unit_test(test_build_grant_full),
		cmocka_unit_test(test_build_grant_invalid),
		cmocka_unit_test(test_build_resolve),
		cmocka_unit_test(test_build_secret),
		cmocka_unit_test(test_build_rotate),
		cmocka_unit_test(test_parse_grant_ok),
		cmocka_unit_test(test_parse_grant_bad),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_resolved_ok),
		cmocka_unit_test(test_parse_resolved_bad),
		cmocka_unit_test(test_parse_resolved_limits),
		cmocka_unit_test(test_parse_oversized),
		cmocka_unit_test(test_parse_version_revoked),
		cmocka_unit_test(test_parse_object),
		cmocka_unit_test(test_parse_error),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_write_bounded),
		cmocka_unit_test(test_new_args),
		cmocka_unit_test(test_connect_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
