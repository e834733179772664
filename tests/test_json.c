/* test_json.c: strict request-body JSON (duplicates, depth, types, fields, NUL). */
#include "config.h"

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
#include "util.h"

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
