/* fuzz-sources: src/json.c */
/* fuzz-maxlen: 16384 */
/*
 * fuzz_json.c: json_parse_object and the typed getters. Properties: a refusal always
 * names a known code and hands back nothing; an accepted body is an object, nests at
 * most 8 deep, holds no NUL in any string, and survives a dump/parse round trip; the
 * parser (our own, src/json.c) agrees with jansson (tests/json_ref.h): both refuse,
 * or both accept equal trees with their members in the same order; and json_write_compact writes
 * what json_dumpb writes.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "../json_ref.h"

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

/* Both trees serialise alike (member order too), and json_write_compact = json_dumpb. */
static void
same_output(json_t *o, json_t *ref)
{
	static char mine[20000], theirs[20000];
	size_t n, m;

	n = json_write_compact(o, mine, sizeof(mine));
	m = json_dumpb(ref, theirs, sizeof(theirs), JSON_COMPACT);
	if (n == 0)	/* reals, or strings that are not UTF-8: jansson's writer is used */
		return;
	CHECK(n == m);
	if (n <= sizeof(mine))
		CHECK(memcmp(mine, theirs, n) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const allowed[] = { "sandbox_id", "ttl_s", "max_uses", "bindings",
	    "value", "hosts", "inject", NULL };
	const char *code, *field, *s, *ref_code;
	json_t *o, *o2, *a, *b, *ref;
	long long n;
	size_t i;
	char *dump;
	int rc, bo;

	o = (json_t *)1;
	code = NULL;
	rc = json_parse_object((const char *)data, size, &o, &code);
	ref = json_ref_parse((const char *)data, size, &ref_code);
	if (rc != 0) {
		CHECK(o == NULL && known_code(code));
		/*
		 * Both refuse. Not necessarily with the same code: a body with two
		 * faults may be named by either ("true\0" is not_object here and bad_json
		 * for jansson, which reads on); tests/test_json.c checks the codes on
		 * single-fault cases.
		 */
		CHECK((ref == NULL && ref_code != NULL) ||
		    /* jansson skips raw NUL bytes outside strings ("{\"a\":9\0}"): we refuse them */
		    memchr(data, '\0', size) != NULL);
		json_decref(ref);
		return 0;
	}
	CHECK(json_is_object(o) && code == NULL);
	CHECK(depth(o) <= 8);
	CHECK(ref != NULL && json_equal(o, ref));
	same_output(o, ref);
	json_decref(ref);

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
