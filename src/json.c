/*
 * json.c: strict JSON for request bodies. jansson parses; this file refuses what has
 * more than one reading (duplicate keys), what nests deeper than any request needs,
 * NUL in strings, and anything whose type is not exactly the one asked for.
 */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "err.h"
#include "json.h"

/*
 * Depth of containers: nesting deeper than this is refused before jansson recurses.
 * No request body needs more than an object of arrays of objects of arrays.
 */
#define JSON_MAX_DEPTH	8

static void
set_code(const char **code, const char *c)
{
	if (code != NULL)
		*code = c;
}

/*
 * Counts container nesting outside strings. Exact for valid JSON; for invalid JSON
 * the count may be off, but jansson refuses that input anyway.
 */
static int
depth_ok(const char *buf, size_t len)
{
	size_t i;
	int depth, instr, esc;

	depth = 0;
	instr = 0;
	esc = 0;
	for (i = 0; i < len; i++) {
		if (instr) {
			if (esc)
				esc = 0;
			else if (buf[i] == '\\')
				esc = 1;
			else if (buf[i] == '"')
				instr = 0;
			continue;
		}
		switch (buf[i]) {
		case '"':
			instr = 1;
			break;
		case '{':
		case '[':
			if (++depth > JSON_MAX_DEPTH)
				return 0;
			break;
		case '}':
		case ']':
			depth--;
			break;
		default:
			break;
		}
	}
	return 1;
}

/* The same bound on the parsed value (belt and braces): recursion stops at the bound. */
static int
tree_depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *m;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return 1;
	if (depth > JSON_MAX_DEPTH)
		return 0;
	if (json_is_object(v)) {
		json_object_foreach(v, k, m) {
			if (!tree_depth_ok(m, depth + 1))
				return 0;
		}
	} else {
		json_array_foreach(v, i, m) {
			if (!tree_depth_ok(m, depth + 1))
				return 0;
		}
	}
	return 1;
}

int
json_parse_object(const char *buf, size_t len, json_t **out, const char **code)
{
	json_error_t err;
	json_t *root;

	if (out != NULL)
		*out = NULL;
	set_code(code, NULL);
	if (out == NULL)
		return CB_ERR_INVAL;
	if (buf == NULL || len == 0 || len > JSON_MAX_LEN || !depth_ok(buf, len)) {
		set_code(code, JSON_E_BAD_JSON);
		return CB_ERR_INVAL;
	}
	/* No JSON_ALLOW_NUL: "\u0000" in a string is an error. Trailing garbage too. */
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (root == NULL) {
		switch (json_error_code(&err)) {
		case json_error_duplicate_key:
			set_code(code, JSON_E_DUPLICATE_KEY);
			break;
		case json_error_numeric_overflow:
			set_code(code, JSON_E_INVALID_VALUE);
			break;
		default:
			set_code(code, JSON_E_BAD_JSON);
			break;
		}
		return CB_ERR_INVAL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		set_code(code, JSON_E_NOT_OBJECT);
		return CB_ERR_INVAL;
	}
	if (!tree_depth_ok(root, 1)) {
		json_decref(root);
		set_code(code, JSON_E_BAD_JSON);
		return CB_ERR_INVAL;
	}
	*out = root;	/* transferred */
	return 0;
}

int
json_only_fields(json_t *obj, const char *const *allowed, const char **code,
    const char **field)
{
	const char *k;
	json_t *m;
	size_t i;
	int found;

	set_code(code, NULL);
	if (field != NULL)
		*field = NULL;
	if (!json_is_object(obj)) {
		set_code(code, JSON_E_NOT_OBJECT);
		return CB_ERR_INVAL;
	}
	json_object_foreach(obj, k, m) {
		found = 0;
		for (i = 0; allowed != NULL && allowed[i] != NULL; i++) {
			if (strcmp(allowed[i], k) == 0) {
				found = 1;
				break;
			}
		}
		if (!found) {
			set_code(code, JSON_E_UNKNOWN_FIELD);
			if (field != NULL)
				*field = k;
			return CB_ERR_INVAL;
		}
	}
	return 0;
}

/*
 * Looks key up: returns 1 with *v NULL when absent (or null) and optional, 0 with *v
 * set when present, CB_ERR_INVAL with *code set otherwise.
 */
static int
lookup(json_t *obj, const char *key, int required, json_t **v, const char **code)
{
	set_code(code, NULL);
	*v = NULL;
	if (!json_is_object(obj) || key == NULL) {
		set_code(code, JSON_E_NOT_OBJECT);
		return CB_ERR_INVAL;
	}
	*v = json_object_get(obj, key);
	if (*v == NULL) {
		if (required) {
			set_code(code, JSON_E_MISSING_FIELD);
			return CB_ERR_INVAL;
		}
		return 1;
	}
	if (json_is_null(*v)) {
		*v = NULL;
		if (required) {
			/* null is "absent" only where absence is allowed. */
			set_code(code, JSON_E_WRONG_TYPE);
			return CB_ERR_INVAL;
		}
		return 1;
	}
	return 0;
}

int
json_get_string(json_t *obj, const char *key, int required, size_t maxlen,
    const char **out, const char **code)
{
	json_t *v;
	size_t len;
	const char *s;
	int rc;

	if ((rc = lookup(obj, key, required, &v, code)) != 0)
		return rc;
	if (!json_is_string(v)) {
		set_code(code, JSON_E_WRONG_TYPE);
		return CB_ERR_INVAL;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	/* Values built in memory can hold NUL even though the parser refuses it. */
	if (len > maxlen || memchr(s, '\0', len) != NULL) {
		set_code(code, JSON_E_INVALID_VALUE);
		return CB_ERR_INVAL;
	}
	*out = s;
	return 0;
}

int
json_get_int(json_t *obj, const char *key, int required, long long min, long long max,
    long long *out, const char **code)
{
	json_t *v;
	json_int_t n;
	int rc;

	if ((rc = lookup(obj, key, required, &v, code)) != 0)
		return rc;
	/* Integers only: 1.0, 1e3 and "1" are all refused. */
	if (!json_is_integer(v)) {
		set_code(code, JSON_E_WRONG_TYPE);
		return CB_ERR_INVAL;
	}
	n = json_integer_value(v);
	if (n < min || n > max) {
		set_code(code, JSON_E_INVALID_VALUE);
		return CB_ERR_INVAL;
	}
	*out = n;
	return 0;
}

int
json_get_bool(json_t *obj, const char *key, int required, int *out, const char **code)
{
	json_t *v;
	int rc;

	if ((rc = lookup(obj, key, required, &v, code)) != 0)
		return rc;
	if (!json_is_boolean(v)) {
		set_code(code, JSON_E_WRONG_TYPE);
		return CB_ERR_INVAL;
	}
	*out = json_is_true(v);
	return 0;
}

int
json_get_array(json_t *obj, const char *key, int required, size_t maxitems,
    json_t **out, const char **code)
{
	json_t *v;
	int rc;

	if ((rc = lookup(obj, key, required, &v, code)) != 0)
		return rc;
	if (!json_is_array(v)) {
		set_code(code, JSON_E_WRONG_TYPE);
		return CB_ERR_INVAL;
	}
	if (json_array_size(v) > maxitems) {
		set_code(code, JSON_E_INVALID_VALUE);
		return CB_ERR_INVAL;
	}
	*out = v;	/* borrowed */
	return 0;
}

json_t *
json_error_body(const char *code, const char *field)
{
	json_t *o;

	if (code == NULL)
		code = JSON_E_BAD_JSON;
	if ((o = json_object()) == NULL)
		return NULL;
	if (json_object_set_new(o, "error", json_string(code)) != 0 ||
	    (field != NULL && json_object_set_new(o, "field", json_string(field)) != 0)) {
		json_decref(o);
		return NULL;
	}
	return o;
}
