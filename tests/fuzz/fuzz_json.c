/* fuzz-sources: src/json.c */
/* fuzz-maxlen: 16384 */
/*
 * fuzz_json.c: json_parse_object and the typed getters. Properties: a refusal always
 * names a known code and hands back nothing; an accepted body is an object, nests at
 * most 8 deep, holds no NUL in any string, and survives a dump/parse round trip.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static int
known_code(const char *c)
{
	static const char *const codes[] = { JSON_E_BAD_JSON, JSON_E_DUPLICATE_KEY,
	    JSON_E_NOT_OBJECT, JSON_E_UNKNOWN_FIELD, JSON_E_MISSING_FIELD, JSON_E_WRONG_TYPE,
	    JSON_E_INVALID_VALUE };
	size_t i;

	for (i = 0; c != NULL && i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (strcmp(c, codes[i]) == 0)
			return 1;
	}
	return 0;
}

static int
depth(json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;
	int d, best = 0;

	if (json_is_object(v)) {
		json_object_foreach(v, k, m) {
			if ((d = depth(m)) > best)
				best = d;
		}
		return best + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			if ((d = depth(m)) > best)
				best = d;
		}
		return best + 1;
	}
	if (json_is_string(v))
		CHECK(memchr(json_string_value(v), '\0', json_string_length(v)) == NULL);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = { "sandbox_id", "ttl_s", "max_uses", "bindings",
	    "value", "hosts", "inject", NULL };
	const char *code, *field, *s;
	json_t *o, *o2, *a, *b;
	long long n;
	size_t i;
	char *dump;
	int rc, bo;

	o = (json_t *)1;
	code = NULL;
	rc = json_parse_object((const char *)data, size, &o, &code);
	if (rc != 0) {
		CHECK(o == NULL && known_code(code));
		return 0;
	}
	CHECK(json_is_object(o) && code == NULL);
	CHECK(depth(o) <= 8);

	rc = json_only_fields(o, allowed, &code, &field);
	CHECK(rc == 0 || (known_code(code) && field != NULL));
	s = NULL;
	rc = json_get_string(o, "sandbox_id", 1, 128, &s, &code);
	CHECK((rc == 0 && s != NULL && strlen(s) <= 128) || (rc != 0 && known_code(code)));
	rc = json_get_int(o, "ttl_s", 0, 1, 86400, &n, &code);
	CHECK(rc == 1 || (rc == 0 && n >= 1 && n <= 86400) || (rc < 0 && known_code(code)));
	rc = json_get_bool(o, "inject", 0, &bo, &code);
	CHECK(rc >= 0 || known_code(code));
	a = NULL;
	rc = json_get_array(o, "bindings", 1, 16, &a, &code);
	if (rc == 0) {
		CHECK(json_array_size(a) <= 16);
		json_array_foreach(a, i, b) {
			(void)json_get_string(b, "host", 1, 253, &s, &code);
			(void)json_get_int(b, "port", 0, 1, 65535, &n, &code);
		}
	}

	/* Round trip: what we accepted serialises to something we accept, equal to it. */
	dump = json_dumps(o, JSON_COMPACT);
	if (dump != NULL) {
		CHECK(json_parse_object(dump, strlen(dump), &o2, &code) == 0);
		CHECK(json_equal(o, o2));
		json_decref(o2);
		free(dump);
	}
	json_decref(o);
	return 0;
}
