/* test_json.c: strict request-body JSON (duplicates, depth, types, fields, NUL). */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "json.h"
#include "json_ref.h"
#include "util.h"

/* util_fmt_ll (json_write_compact's and the log line's integers) is printf's %lld. */
static void
test_fmt_ll(void **state)
{
	static const long long v[] = { 0, 1, -1, 9, 10, -10, 1234567890123LL, LLONG_MAX,
	    LLONG_MIN, LLONG_MIN + 1 };
	char out[UTIL_LL_DIGITS], want[32];
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(v); i++) {
		snprintf(want, sizeof(want), "%lld", v[i]);
		assert_string_equal(util_fmt_ll(v[i], out), want);
	}
}

int main(void);

struct parse_case {
	const char *in;
	const char *code;	/* NULL: accepted */
};

static const struct parse_case parse_cases[] = {
	{ "{}", NULL },
	{ " { \"a\" : 1 } \n", NULL },
	{ "{\"a\":{\"b\":[1,{\"c\":[[[[true]]]]}]}}", NULL },	/* depth 8 */
	{ "{\"a\":\"\\u00e9\\ud83d\\ude00\"}", NULL },
	/* Duplicates, at the top and nested, also when the values agree. */
	{ "{\"a\":1,\"a\":1}", JSON_E_DUPLICATE_KEY },
	{ "{\"a\":1,\"b\":2,\"a\":\"x\"}", JSON_E_DUPLICATE_KEY },
	{ "{\"a\":{\"b\":1,\"b\":2}}", JSON_E_DUPLICATE_KEY },
	{ "{\"a\":[{\"b\":1},{\"c\":1,\"c\":1}]}", JSON_E_DUPLICATE_KEY },
	{ "{\"a\":1,\"\\u0061\":2}", JSON_E_DUPLICATE_KEY },
	/* Roots that are not objects. */
	{ "[]", JSON_E_NOT_OBJECT },
	{ "[{\"a\":1}]", JSON_E_NOT_OBJECT },
	{ "\"x\"", JSON_E_NOT_OBJECT },
	{ "42", JSON_E_NOT_OBJECT },
	{ "null", JSON_E_NOT_OBJECT },
	{ "true", JSON_E_NOT_OBJECT },
	/* Not JSON at all, or more than one value. */
	{ "", JSON_E_BAD_JSON },
	{ " ", JSON_E_BAD_JSON },
	{ "{", JSON_E_BAD_JSON },
	{ "{\"a\":1", JSON_E_BAD_JSON },
	{ "{\"a\":1}}", JSON_E_BAD_JSON },
	{ "{\"a\":1} {}", JSON_E_BAD_JSON },
	{ "{\"a\":1,}", JSON_E_BAD_JSON },
	{ "{'a':1}", JSON_E_BAD_JSON },
	{ "{a:1}", JSON_E_BAD_JSON },
	{ "{\"a\":NaN}", JSON_E_BAD_JSON },
	{ "{\"a\":01}", JSON_E_BAD_JSON },
	{ "{\"a\":\"\xff\"}", JSON_E_BAD_JSON },
	{ "{\"a\":\"\\ud800\"}", JSON_E_BAD_JSON },
	/* NUL inside strings and keys. */
	{ "{\"a\":\"x\\u0000y\"}", JSON_E_BAD_JSON },
	{ "{\"a\\u0000b\":1}", JSON_E_BAD_JSON },
	/* Deeper than 8. */
	{ "{\"a\":{\"b\":[1,{\"c\":[[[[[true]]]]]}]}}", JSON_E_BAD_JSON },
	{ "{\"a\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", JSON_E_BAD_JSON },
	/* Brackets inside strings do not count. */
	{ "{\"a\":\"[[[[[[[[[[[[{{{{{{{{{{\\\"[[[[[[\"}", NULL },
	/* Numbers too large for their type. */
	{ "{\"a\":99999999999999999999999}", JSON_E_INVALID_VALUE },
	{ "{\"a\":-99999999999999999999999}", JSON_E_INVALID_VALUE },
	{ "{\"a\":1e400}", JSON_E_INVALID_VALUE },
};

static void
test_parse_table(void **state)
{
	const char *code;
	json_t *o;
	size_t i;
	int rc;

	for (i = 0; i < UTIL_ARRAY_LEN(parse_cases); i++) {
		o = (json_t *)0x1;
		code = "unset";
		rc = json_parse_object(parse_cases[i].in, strlen(parse_cases[i].in), &o, &code);
		if (parse_cases[i].code == NULL) {
			if (rc != 0 || o == NULL || !json_is_object(o))
				fail_msg("parse case %zu (%s) refused: %s", i, parse_cases[i].in,
				    code != NULL ? code : "(null)");
			json_decref(o);
		} else {
			if (rc != CB_ERR_INVAL || o != NULL)
				fail_msg("parse case %zu (%s) accepted", i, parse_cases[i].in);
			if (code == NULL || strcmp(code, parse_cases[i].code) != 0)
				fail_msg("parse case %zu (%s): code %s, want %s", i,
				    parse_cases[i].in, code != NULL ? code : "(null)",
				    parse_cases[i].code);
		}
	}
}

static void
test_parse_bounds(void **state)
{
	static const char nul[] = "{\"a\":1}\0{\"b\":2}";
	const char *code;
	json_t *o;
	char *big, *deep;
	size_t i, n;

	/* Bytes after a NUL are bytes: the length is what was received. */
	assert_int_equal(json_parse_object(nul, sizeof(nul) - 1, &o, &code), CB_ERR_INVAL);
	assert_null(o);
	assert_int_equal(json_parse_object(nul, 7, &o, &code), 0);
	json_decref(o);
	assert_int_equal(json_parse_object(NULL, 0, &o, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_BAD_JSON);

	/* JSON_MAX_LEN is the bound, whatever the content. */
	n = JSON_MAX_LEN + 1;
	big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	assert_int_equal(json_parse_object(big, n, &o, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_BAD_JSON);
	assert_int_equal(json_parse_object(big + 1, n - 1, &o, &code), CB_ERR_INVAL);
	big[n - 2] = '}';
	assert_int_equal(json_parse_object(big, n - 1, &o, &code), 0);
	json_decref(o);
	free(big);

	/* Very deep nesting is refused before jansson recurses into it. */
	n = 200000;
	deep = malloc(2 * n + 8);
	assert_non_null(deep);
	memcpy(deep, "{\"a\":", 5);
	for (i = 0; i < n; i++)
		deep[5 + i] = '[';
	for (i = 0; i < n; i++)
		deep[5 + n + i] = ']';
	deep[5 + 2 * n] = '}';
	assert_int_equal(json_parse_object(deep, 2 * n + 6, &o, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_BAD_JSON);
	free(deep);
}

static json_t *
parse(const char *s)
{
	const char *code;
	json_t *o;

	assert_int_equal(json_parse_object(s, strlen(s), &o, &code), 0);
	return o;
}

static void
test_only_fields(void **state)
{
	static const char *const allowed[] = { "sandbox_id", "ttl_s", "bindings", NULL };
	static const char *const none[] = { NULL };
	const char *code, *field;
	json_t *o;

	o = parse("{\"sandbox_id\":\"s\",\"ttl_s\":1}");
	assert_int_equal(json_only_fields(o, allowed, &code, &field), 0);
	assert_int_equal(json_only_fields(o, none, &code, &field), CB_ERR_INVAL);
	json_decref(o);

	o = parse("{\"sandbox_id\":\"s\",\"ttl\":1}");
	assert_int_equal(json_only_fields(o, allowed, &code, &field), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_UNKNOWN_FIELD);
	assert_string_equal(field, "ttl");
	json_decref(o);

	/* Case matters: "TTL_S" is not "ttl_s". */
	o = parse("{\"TTL_S\":1}");
	assert_int_equal(json_only_fields(o, allowed, &code, &field), CB_ERR_INVAL);
	assert_string_equal(field, "TTL_S");
	json_decref(o);

	o = parse("{}");
	assert_int_equal(json_only_fields(o, allowed, &code, &field), 0);
	assert_int_equal(json_only_fields(NULL, allowed, &code, &field), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_NOT_OBJECT);
	json_decref(o);
}

static void
test_get_string(void **state)
{
	const char *code, *s;
	json_t *o, *built;

	o = parse("{\"s\":\"abc\",\"n\":1,\"z\":null,\"e\":\"\",\"a\":[],\"b\":true}");
	s = NULL;
	assert_int_equal(json_get_string(o, "s", 1, 3, &s, &code), 0);
	assert_string_equal(s, "abc");
	assert_int_equal(json_get_string(o, "s", 1, 2, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_INVALID_VALUE);
	assert_int_equal(json_get_string(o, "e", 1, 2, &s, &code), 0);
	assert_string_equal(s, "");
	assert_int_equal(json_get_string(o, "n", 1, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_string(o, "a", 0, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_string(o, "b", 0, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_string(o, "x", 1, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_MISSING_FIELD);
	assert_int_equal(json_get_string(o, "z", 1, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	/* Optional and absent or null: 1, *out untouched. */
	s = "keep";
	assert_int_equal(json_get_string(o, "x", 0, 9, &s, &code), 1);
	assert_int_equal(json_get_string(o, "z", 0, 9, &s, &code), 1);
	assert_string_equal(s, "keep");
	json_decref(o);

	/* A string built in memory with a NUL inside is refused. */
	built = json_object();
	assert_non_null(built);
	assert_int_equal(json_object_set_new(built, "s", json_stringn("a\0b", 3)), 0);
	assert_int_equal(json_get_string(built, "s", 1, 9, &s, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_INVALID_VALUE);
	json_decref(built);
}

struct int_case {
	const char *body;
	int rc;
	const char *code;
	long long want;
};

static const struct int_case int_cases[] = {
	{ "{\"n\":600}", 0, NULL, 600 },
	{ "{\"n\":0}", 0, NULL, 0 },
	{ "{\"n\":-0}", 0, NULL, 0 },
	{ "{\"n\":86400}", 0, NULL, 86400 },
	{ "{\"n\":86401}", CB_ERR_INVAL, JSON_E_INVALID_VALUE, 0 },
	{ "{\"n\":-1}", CB_ERR_INVAL, JSON_E_INVALID_VALUE, 0 },
	{ "{\"n\":9223372036854775807}", CB_ERR_INVAL, JSON_E_INVALID_VALUE, 0 },
	{ "{\"n\":600.0}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":6e2}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":0.5}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":\"600\"}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":true}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":[600]}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":{}}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"n\":null}", CB_ERR_INVAL, JSON_E_WRONG_TYPE, 0 },
	{ "{\"m\":1}", CB_ERR_INVAL, JSON_E_MISSING_FIELD, 0 },
};

static void
test_get_int(void **state)
{
	const char *code;
	long long n;
	json_t *o;
	size_t i;
	int rc;

	for (i = 0; i < UTIL_ARRAY_LEN(int_cases); i++) {
		o = parse(int_cases[i].body);
		n = -42;
		code = NULL;
		rc = json_get_int(o, "n", 1, 0, 86400, &n, &code);
		if (rc != int_cases[i].rc)
			fail_msg("int case %zu (%s): rc %d, want %d", i, int_cases[i].body, rc,
			    int_cases[i].rc);
		if (rc == 0)
			assert_int_equal(n, int_cases[i].want);
		else {
			assert_int_equal(n, -42);
			assert_non_null(code);
			assert_string_equal(code, int_cases[i].code);
		}
		json_decref(o);
	}
	/* Optional: absent and null leave the default. */
	o = parse("{\"z\":null}");
	n = 7;
	assert_int_equal(json_get_int(o, "z", 0, 0, 10, &n, &code), 1);
	assert_int_equal(json_get_int(o, "n", 0, 0, 10, &n, &code), 1);
	assert_int_equal(n, 7);
	json_decref(o);
}

static void
test_get_bool_array(void **state)
{
	const char *code;
	json_t *o, *a;
	int b;

	o = parse("{\"t\":true,\"f\":false,\"i\":1,\"s\":\"true\",\"a\":[1,2,3],\"o\":{}}");
	assert_int_equal(json_get_bool(o, "t", 1, &b, &code), 0);
	assert_int_equal(b, 1);
	assert_int_equal(json_get_bool(o, "f", 1, &b, &code), 0);
	assert_int_equal(b, 0);
	assert_int_equal(json_get_bool(o, "i", 1, &b, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_bool(o, "s", 1, &b, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	b = 5;
	assert_int_equal(json_get_bool(o, "x", 0, &b, &code), 1);
	assert_int_equal(b, 5);
	assert_int_equal(json_get_bool(o, "x", 1, &b, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_MISSING_FIELD);

	a = NULL;
	assert_int_equal(json_get_array(o, "a", 1, 3, &a, &code), 0);
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 3);
	assert_int_equal(json_get_array(o, "a", 1, 2, &a, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_INVALID_VALUE);
	assert_int_equal(json_get_array(o, "o", 1, 2, &a, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_array(o, "s", 1, 2, &a, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_WRONG_TYPE);
	assert_int_equal(json_get_array(o, "x", 1, 2, &a, &code), CB_ERR_INVAL);
	assert_string_equal(code, JSON_E_MISSING_FIELD);
	json_decref(o);
}

static void
test_error_body(void **state)
{
	json_t *b;
	char *s;

	b = json_error_body(JSON_E_UNKNOWN_FIELD, "ttl");
	assert_non_null(b);
	s = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"error\":\"unknown_field\",\"field\":\"ttl\"}");
	free(s);
	json_decref(b);
	b = json_error_body(JSON_E_BAD_JSON, NULL);
	s = json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"error\":\"bad_json\"}");
	free(s);
	json_decref(b);
}

/* json_write_compact against json_dumpb(JSON_COMPACT): equal bytes, or both refuse. */
static void
check_write(json_t *v)
{
	char want[4096], got[4096], small[7];
	size_t wn, gn, sn;

	wn = json_dumpb(v, want, sizeof(want), JSON_COMPACT);
	assert_true(wn < sizeof(want));
	memset(got, 0x55, sizeof(got));
	gn = json_write_compact(v, got, sizeof(got));
	assert_int_equal(gn, wn);
	assert_memory_equal(got, want, wn);
	assert_int_equal((unsigned char)got[gn], 0x55);	/* nothing past the text */
	/* A short buffer: the same length, and the prefix that fits. */
	memset(small, 0x55, sizeof(small));
	sn = json_write_compact(v, small, sizeof(small) - 1);
	assert_int_equal(sn, wn);
	assert_memory_equal(small, want, wn < sizeof(small) - 1 ? wn : sizeof(small) - 1);
	assert_int_equal((unsigned char)small[sizeof(small) - 1], 0x55);
	assert_int_equal(json_write_compact(v, NULL, 0), wn);
	/* json_dumps_compact is json_dumps(JSON_COMPACT). */
	{
		char *a = json_dumps(v, JSON_COMPACT), *b = json_dumps_compact(v);

		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
}

static void
test_write_compact(void **state)
{
	static const char *const texts[] = {
		"{}", "[]", "[[],{}]",
		"{\"headers\":[{\"name\":\"Authorization\",\"value\":\"Bearer x\"}],"
		    "\"expires_in\":3596}",
		"{\"a\":\"quote \\\" backslash \\\\ slash / del \\u007f\"}",
		"{\"c\":\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u0000 end\"}",
		"{\"u\":\"\\u00e9\\u20ac\\ud83d\\ude00 \\u2028\"}",
		"{\"\\u00e9 key\\n\":[true,false,null,0,-1,9223372036854775807,"
		    "-9223372036854775808]}",
		"{\"z\":1,\"a\":2,\"m\":{\"y\":[1,[2,[3]]],\"b\":\"\"}}",
	};
	char bad[4] = { 'a', (char)0xc3, 'b', '\0' };
	json_t *v, *inner;
	size_t i;
	int d;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(texts); i++) {
		v = json_loads(texts[i], JSON_ALLOW_NUL, NULL);
		assert_non_null(v);
		check_write(v);
		json_decref(v);
	}
	/* Keys and values with NUL inside (built in memory). */
	v = json_object();
	assert_int_equal(json_object_setn_new(v, "k\0ey", 4, json_stringn("v\0al", 4)), 0);
	check_write(v);
	json_decref(v);
	/* json_write_string: a string as json_dumpb writes it inside an array. */
	{
		static const char str[] = "Bearer \"x\"\\ \x01\n\xc3\xa9/\x7f end";
		char want[128], got[128];
		size_t wn, gn;

		v = json_pack("[s]", str);
		assert_non_null(v);
		wn = json_dumpb(v, want, sizeof(want), JSON_COMPACT);
		assert_true(wn > 2 && wn < sizeof(want));
		gn = json_write_string(str, strlen(str), got, sizeof(got));
		assert_int_equal(gn, wn - 2);
		assert_memory_equal(got, want + 1, gn);
		assert_int_equal(json_write_string(str, strlen(str), NULL, 0), gn);
		assert_int_equal(json_write_string(bad, 3, got, sizeof(got)), 0);
		assert_int_equal(json_write_string(NULL, 0, got, sizeof(got)), 0);
		json_decref(v);
	}
	/* Refused by both: a non-container root, invalid UTF-8. */
	v = json_string("x");
	assert_int_equal(json_write_compact(v, NULL, 0), 0);
	assert_int_equal(json_dumpb(v, NULL, 0, JSON_COMPACT), 0);
	json_decref(v);
	v = json_pack("{s:o}", "s", json_stringn_nocheck(bad, 3));
	assert_non_null(v);
	assert_int_equal(json_write_compact(v, NULL, 0), 0);
	assert_int_equal(json_dumpb(v, NULL, 0, JSON_COMPACT), 0);
	json_decref(v);
	/* Refused by ours only: a real (the caller falls back to json_dumpb). */
	v = json_pack("{s:f}", "r", 1.5);
	assert_int_equal(json_write_compact(v, NULL, 0), 0);
	{
		char *s = json_dumps_compact(v);

		assert_non_null(s);
		assert_string_equal(s, "{\"r\":1.5}");
		free(s);
	}
	json_decref(v);
	/* Depth: 32 levels are written, 33 are not. */
	for (d = 32; d <= 33; d++) {
		v = json_array();
		inner = v;
		for (i = 1; i < (size_t)d; i++) {
			json_t *n = json_array();

			assert_int_equal(json_array_append_new(inner, n), 0);
			inner = n;
		}
		if (d == 32)
			check_write(v);
		else
			assert_int_equal(json_write_compact(v, NULL, 0), 0);
		json_decref(v);
	}
}

/* Random trees of every kind but reals, with every byte 1..255 in strings. */
static json_t *
rand_tree(unsigned int *seed, int depth)
{
	char s[24];
	size_t i, n;
	json_t *v;
	int kind;

	*seed = *seed * 1103515245u + 12345u;
	kind = depth >= 4 ? (int)(*seed >> 16) % 5 + 2 : (int)(*seed >> 16) % 7;
	n = (*seed >> 8) % 5;
	switch (kind) {
	case 0:
		v = json_object();
		for (i = 0; i < n; i++) {
			snprintf(s, sizeof(s), "k%zu\x01\"", i);
			json_object_set_new(v, s, rand_tree(seed, depth + 1));
		}
		return v;
	case 1:
		v = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(v, rand_tree(seed, depth + 1));
		return v;
	case 2:
		for (i = 0; i < sizeof(s) - 1; i++) {
			*seed = *seed * 1103515245u + 12345u;
			s[i] = (char)((*seed >> 16) % 127 + 1);
		}
		return json_stringn(s, sizeof(s) - 1);
	case 3:
		return json_integer((json_int_t)*seed * ((*seed & 1) ? -1 : 1));
	case 4:
		return json_true();
	case 5:
		return json_false();
	default:
		return json_null();
	}
}

static void
test_write_random(void **state)
{
	unsigned int seed = 42;
	json_t *o;
	int i;

	(void)state;
	for (i = 0; i < 500; i++) {
		o = json_object();
		assert_int_equal(json_object_set_new(o, "t", rand_tree(&seed, 0)), 0);
		check_write(o);
		json_decref(o);
	}
}

/* json_parse_object and jansson agree on buf: same code, or equal trees in equal order. */
static void
check_same_parse(const char *buf, size_t len)
{
	const char *want_code, *got_code;
	json_t *want, *got;
	char *a, *b;
	int rc;

	want = json_ref_parse(buf, len, &want_code);
	rc = json_parse_object(buf, len, &got, &got_code);
	if ((want == NULL) != (rc != 0) || (want_code == NULL) != (got_code == NULL) ||
	    (want_code != NULL && strcmp(want_code, got_code) != 0)) {
		print_error("input (%zu bytes): %.*s\nwant %s, got %s\n", len, (int)len, buf,
		    want_code != NULL ? want_code : "ok", got_code != NULL ? got_code : "ok");
		fail();
	}
	if (want != NULL) {
		assert_true(json_equal(want, got));
		a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
		b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
		assert_non_null(a);
		assert_non_null(b);
		assert_string_equal(a, b);	/* member order too */
		free(a);
		free(b);
	}
	json_decref(want);
	json_decref(got);
}

/* Inputs where a hand-written parser could differ from jansson. */
static const char *const same_cases[] = {
	"{}", "{ }", " \t\r\n{}\n", "{}x", "{} {}", "{},", "{", "}", "", " ",
	"{\"a\":1}", "{\"a\" : 1 , \"b\" :2}", "{\"a\":1,}", "{,\"a\":1}", "{\"a\"1}",
	"{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":1 \"b\":2}", "{\"\":1}", "{\"\":1,\"\":2}",
	"{\"a\":[]}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}", "{\"a\":[[]]}",
	"{\"a\":true,\"b\":false,\"c\":null}", "{\"a\":tru}", "{\"a\":True}",
	"{\"a\":nul}", "{\"a\":nulls}", "{\"a\":truex}", "{\"a\":falsey}",
	"{\"a\":0}", "{\"a\":-0}", "{\"a\":01}", "{\"a\":-01}", "{\"a\":+1}", "{\"a\":-}",
	"{\"a\":1.}", "{\"a\":.5}", "{\"a\":1.5}", "{\"a\":-1.5e3}", "{\"a\":1e}",
	"{\"a\":1e+}", "{\"a\":1E-2}", "{\"a\":1e999}", "{\"a\":-1e999}", "{\"a\":1e-999}",
	"{\"a\":0.0000000000000000000000000001}", "{\"a\":1.7976931348623157e308}",
	"{\"a\":9223372036854775807}", "{\"a\":9223372036854775808}",
	"{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775809}",
	"{\"a\":99999999999999999999999}", "{\"a\":99999999999999999999999.5}",
	"{\"a\":99999999999999999999999e2}", "{\"a\":1,\"a\":1e999}", "{\"a\":1e999,\"a\":1}",
	"{\"a\":0x10}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
	"{\"a\":\"\"}", "{\"a\":\"x\"y\"}", "{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
	"{\"a\":\"\\x\"}", "{\"a\":\"\\\"}", "{\"a\":\"\\u\"}", "{\"a\":\"\\u12\"}",
	"{\"a\":\"\\u00e9\"}", "{\"a\":\"\\u00E9\\u20AC\"}", "{\"a\":\"\\u0000\"}",
	"{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ud83dx\"}",
	"{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":\"\\ude00\"}", "{\"a\":\"\\udbff\\udfff\"}",
	"{\"a\":\"\\ud800\\udc00\"}", "{\"a\":\"\\uD83D\\uDE00\"}", "{\"a\":\"\\u00g0\"}",
	"{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":\"del\x7f\"}",
	"{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc3x\"}", "{\"a\":\"\xc0\x80\"}",
	"{\"a\":\"\xe0\x80\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf0\x9f\x98\x80\"}",
	"{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}", "{\"a\":\"\xff\"}",
	"{\"a\":\"\x80\"}", "{\"\xc3\xa9\":1}", "{\"a\":1}\xc3\xa9", "\xef\xbb\xbf{}",
	"{\"a\":1,\"\\u0061\":2}", "{\"a\\u0000b\":1}", "{\"a\":{\"b\":1,\"b\":2}}",
	"{\"a\":{\"b\":1},\"a\":{\"b\":1}}", "{\"b\":1,\"a\":2,\"c\":{\"z\":1,\"y\":[3,2]}}",
	"[]", "[1]", "\"x\"", "1", "-1", "true", "null", "1 2", "{\"a\":1}/**/", "{\"a\":1}//",
	"{\"a\":[[[[[[[1]]]]]]]}", "{\"a\":[[[[[[[[1]]]]]]]]}",
};

static void
test_parse_same_as_jansson(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(same_cases); i++)
		check_same_parse(same_cases[i], strlen(same_cases[i]));
	/* With a NUL byte inside (outside and inside a string). */
	check_same_parse("{\"a\":1}\0", 9);
	check_same_parse("{\"a\":\"x\0y\"}", 12);
	check_same_parse("{\"a\"\0:1}", 9);
}

/* Real request bodies, each mutated many times (replace, insert, delete, cut). */
static void
test_parse_mutations(void **state)
{
	static const char *const seeds[] = {
		"{\"token\":\"cbt_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\",\"sandbox_id\":"
		    "\"sbx-1\",\"host\":\"api.example.com\",\"port\":443,\"method\":\"POST\","
		    "\"path\":\"/v1/chat?q=\\u00e9\"}",
		"{\"sandbox_id\":\"s\",\"ttl_s\":600,\"max_uses\":null,\"bindings\":[{\"secret\":"
		    "\"gh\",\"host\":\"api.github.com\",\"port\":443,\"methods\":[\"GET\",\"POST\"],"
		    "\"inject\":false,\"template\":\"token {secret}\"}]}",
		"{\"value\":\"s3cr\\\"et\\n\\ud83d\\ude00\xc3\xa9\",\"hosts\":[\"a.b\"],"
		    "\"max_ttl_s\":-12.5e-3,\"x\":[true,false,null,{}]}",
	};
	static const char alphabet[] = "{}[]\",:\\ u0123456789eE.-+tfnalsr/\x01\x1f\x7f"
	    "\xc3\xa9\xed\xa0\x80\xf0\xbf\xff";
	char buf[512];
	unsigned int seed = 7;
	size_t i, len, pos;
	int m, op;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(seeds); i++) {
		for (m = 0; m < 3000; m++) {
			len = strlen(seeds[i]);
			assert_true(len + 8 < sizeof(buf));
			memcpy(buf, seeds[i], len);
			/* One to three edits. */
			for (op = 0; op < 1 + m % 3; op++) {
				seed = seed * 1103515245u + 12345u;
				pos = (seed >> 8) % (len + 1);
				seed = seed * 1103515245u + 12345u;
				switch ((seed >> 16) % 4) {
				case 0:
					if (pos < len)
						buf[pos] = alphabet[(seed >> 4) % (sizeof(alphabet) - 1)];
					break;
				case 1:
					if (len + 1 < sizeof(buf)) {
						memmove(buf + pos + 1, buf + pos, len - pos);
						buf[pos] = alphabet[(seed >> 4) %
						    (sizeof(alphabet) - 1)];
						len++;
					}
					break;
				case 2:
					if (pos < len) {
						memmove(buf + pos, buf + pos + 1, len - pos - 1);
						len--;
					}
					break;
				default:
					len = pos;
					break;
				}
			}
			check_same_parse(buf, len);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_only_fields),
		cmocka_unit_test(test_get_string),
		cmocka_unit_test(test_get_int),
		cmocka_unit_test(test_get_bool_array),
		cmocka_unit_test(test_error_body),
		cmocka_unit_test(test_parse_same_as_jansson),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_write_compact),
		cmocka_unit_test(test_write_random),
		cmocka_unit_test(test_fmt_ll),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
