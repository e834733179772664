/*
 * json.c: strict JSON for request bodies. jansson parses; this file refuses what has
 * more than one reading (duplicate keys), what nests deeper than any request needs,
 * NUL in strings, and anything whose type is not exactly the one asked for.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "json.h"
#include "util.h"

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

/*
 * Length of the UTF-8 sequence at s (at most n bytes), 0 when invalid: the rules of
 * jansson's utf8_check_full (no overlong forms, no surrogates, at most U+10FFFF).
 */
static size_t
jw_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2)
		return 0;
	if (s[0] < 0xe0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] < 0xf5) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * The parser. jansson's own costs ~150 instructions per byte of a request body (a
 * resolve's 440 bytes: ~66 k of the request's instructions), so request bodies are
 * parsed here, strictly, into the same jansson values: RFC 8259 JSON only (no
 * comments, no trailing commas, no leading zeros, no '+', no bare control characters,
 * strings of valid UTF-8 with no overlong forms, surrogates or NUL, \u escapes paired
 * as UTF-16), duplicate keys refused as soon as the second one is read, integers that
 * do not fit json_int_t refused, reals that overflow refused, nothing but whitespace
 * after the root. The outcome (tree, or error code) is jansson's with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY: tests/test_json.c checks both against each
 * other on a table and on mutated bodies.
 */
enum jp_err { JP_OK = 0, JP_BAD, JP_DUP, JP_RANGE, JP_NOMEM };

struct jp {
	const unsigned char *p;
	const unsigned char *end;
	char *sbuf;		/* decoded strings (escapes): grown as needed, freed at the end */
	size_t scap;
	enum jp_err err;
};

static json_t *jp_value(struct jp *j, int depth);

static void
jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r'))
		j->p++;
}

static json_t *
jp_fail(struct jp *j, enum jp_err e)
{
	if (j->err == JP_OK)
		j->err = e;
	return NULL;
}

static int
jp_hex4(const unsigned char *p, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			v |= (uint32_t)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			v |= (uint32_t)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			v |= (uint32_t)(p[i] - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Makes room for n more bytes after used in j->sbuf. */
static int
jp_reserve(struct jp *j, size_t used, size_t n)
{
	size_t ncap;
	char *nb;

	if (used + n <= j->scap)
		return 0;
	ncap = j->scap != 0 ? j->scap : 256;
	while (ncap < used + n)
		ncap *= 2;
	if ((nb = malloc(ncap)) == NULL)
		return -1;
	/* Request strings may be secret values: the old buffer is wiped. */
	if (j->sbuf != NULL) {
		memcpy(nb, j->sbuf, used);
		explicit_bzero(j->sbuf, j->scap);
		free(j->sbuf);
	}
	j->sbuf = nb;
	j->scap = ncap;
	return 0;
}

/*
 * A string at j->p (the opening quote). *s and *n: the bytes, pointing into the input
 * when there was no escape, else into j->sbuf (valid until the next string).
 */
static int
jp_string(struct jp *j, const char **s, size_t *n)
{
	const unsigned char *p = j->p + 1, *start = p;
	uint32_t cp, lo;
	size_t used = 0, k;
	int esc = 0;

	for (;;) {
		/* The longest run without an escape, checked. */
		while (p < j->end && *p != '"' && *p != '\\') {
			if (*p < 0x20)
				return -1;
			if (*p >= 0x80) {
				if ((k = jw_utf8_len(p, (size_t)(j->end - p))) == 0)
					return -1;
				p += k;
			} else
				p++;
		}
		if (p >= j->end)
			return -1;
		if (esc || *p == '\\') {
			if (jp_reserve(j, used, (size_t)(p - start) + 4) != 0) {
				j->err = JP_NOMEM;
				return -1;
			}
			memcpy(j->sbuf + used, start, (size_t)(p - start));
			used += (size_t)(p - start);
			esc = 1;
		}
		if (*p == '"')
			break;
		/* An escape. */
		if (++p >= j->end)
			return -1;
		switch (*p) {
		case '"': case '\\': case '/':
			j->sbuf[used++] = (char)*p;
			break;
		case 'b':
			j->sbuf[used++] = '\b';
			break;
		case 'f':
			j->sbuf[used++] = '\f';
			break;
		case 'n':
			j->sbuf[used++] = '\n';
			break;
		case 'r':
			j->sbuf[used++] = '\r';
			break;
		case 't':
			j->sbuf[used++] = '\t';
			break;
		case 'u':
			if (j->end - p < 5 || jp_hex4(p + 1, &cp) != 0)
				return -1;
			p += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -1;	/* a low surrogate first */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (j->end - p < 7 || p[1] != '\\' || p[2] != 'u' ||
				    jp_hex4(p + 3, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
					return -1;
				p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return -1;	/* NUL: refused, as without JSON_ALLOW_NUL */
			if (cp < 0x80)
				j->sbuf[used++] = (char)cp;
			else if (cp < 0x800) {
				j->sbuf[used++] = (char)(0xc0 | (cp >> 6));
				j->sbuf[used++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				j->sbuf[used++] = (char)(0xe0 | (cp >> 12));
				j->sbuf[used++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				j->sbuf[used++] = (char)(0x80 | (cp & 0x3f));
			} else {
				j->sbuf[used++] = (char)(0xf0 | (cp >> 18));
				j->sbuf[used++] = (char)(0x80 | ((cp >> 12) & 0x3f));
				j->sbuf[used++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				j->sbuf[used++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		default:
			return -1;
		}
		start = ++p;
	}
	if (esc) {
		*s = j->sbuf;
		*n = used;
	} else {
		*s = (const char *)start;
		*n = (size_t)(p - start);
	}
	j->p = p + 1;
	return 0;
}

static json_t *
jp_number(struct jp *j)
{
	const unsigned char *p = j->p, *start = p;
	unsigned long long u = 0, lim;
	char tmp[64], *num, *endp;
	int neg = 0, isreal = 0, big = 0;
	size_t n;
	double d;
	json_t *v;

	if (*p == '-') {
		neg = 1;
		p++;
	}
	if (p >= j->end || !(*p >= '0' && *p <= '9'))
		return jp_fail(j, JP_BAD);
	/* json_int_t is long long: at most LLONG_MAX, or its negation minus one. */
	lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
	if (*p == '0') {
		p++;
		if (p < j->end && *p >= '0' && *p <= '9')
			return jp_fail(j, JP_BAD);	/* leading zero */
	} else {
		while (p < j->end && *p >= '0' && *p <= '9') {
			if (u > (lim - (unsigned long long)(*p - '0')) / 10)
				big = 1;
			else
				u = u * 10 + (unsigned long long)(*p - '0');
			p++;
		}
	}
	if (p < j->end && *p == '.') {
		isreal = 1;
		p++;
		if (p >= j->end || !(*p >= '0' && *p <= '9'))
			return jp_fail(j, JP_BAD);
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		isreal = 1;
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || !(*p >= '0' && *p <= '9'))
			return jp_fail(j, JP_BAD);
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	j->p = p;
	if (!isreal) {
		if (big)
			return jp_fail(j, JP_RANGE);
		v = json_integer(neg ? (json_int_t)(0ULL - u) : (json_int_t)u);
		return v != NULL ? v : jp_fail(j, JP_NOMEM);
	}
	/* A real: strtod on a NUL-terminated copy (the C locale's '.': the daemon's). */
	n = (size_t)(p - start);
	if (n < sizeof(tmp))
		num = tmp;
	else if ((num = malloc(n + 1)) == NULL)
		return jp_fail(j, JP_NOMEM);
	memcpy(num, start, n);
	num[n] = '\0';
	big = 0;	/* the integer part's overflow does not matter for a real */
	errno = 0;
	d = strtod(num, &endp);
	if (endp != num + n)
		big = -1;
	else if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
		big = 1;
	if (num != tmp)
		free(num);
	if (big != 0)
		return jp_fail(j, big > 0 ? JP_RANGE : JP_BAD);
	v = json_real(d);
	return v != NULL ? v : jp_fail(j, JP_NOMEM);
}

static json_t *
jp_literal(struct jp *j, const char *word, size_t n, json_t *v)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return jp_fail(j, JP_BAD);
	j->p += n;
	return v;
}

static json_t *
jp_object(struct jp *j, int depth)
{
	json_t *o, *v;
	const char *k;
	size_t kn;
	char *key;

	if ((o = json_object()) == NULL)
		return jp_fail(j, JP_NOMEM);
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return o;
	}
	for (;;) {
		if (j->p >= j->end || *j->p != '"' || jp_string(j, &k, &kn) != 0)
			goto bad;
		/* Refused as soon as read, before its value (as jansson does). */
		if (json_object_getn(o, k, kn) != NULL) {
			jp_fail(j, JP_DUP);
			goto fail;
		}
		/* The key may sit in sbuf, which the value's strings reuse: copy it. */
		if ((key = malloc(kn + 1)) == NULL) {
			jp_fail(j, JP_NOMEM);
			goto fail;
		}
		memcpy(key, k, kn);
		key[kn] = '\0';
		jp_ws(j);
		if (j->p >= j->end || *j->p != ':') {
			free(key);
			goto bad;
		}
		j->p++;
		jp_ws(j);
		if ((v = jp_value(j, depth + 1)) == NULL) {
			free(key);
			goto fail;
		}
		if (json_object_setn_new_nocheck(o, key, kn, v) != 0) {
			free(key);
			jp_fail(j, JP_NOMEM);
			goto fail;
		}
		free(key);
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			jp_ws(j);
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return o;
		}
		goto bad;
	}
 bad:
	jp_fail(j, JP_BAD);
 fail:
	json_decref(o);
	return NULL;
}

static json_t *
jp_array(struct jp *j, int depth)
{
	json_t *a, *v;

	if ((a = json_array()) == NULL)
		return jp_fail(j, JP_NOMEM);
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return a;
	}
	for (;;) {
		if ((v = jp_value(j, depth + 1)) == NULL)
			goto fail;
		if (json_array_append_new(a, v) != 0) {
			jp_fail(j, JP_NOMEM);
			goto fail;
		}
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			jp_ws(j);
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return a;
		}
		jp_fail(j, JP_BAD);
		goto fail;
	}
 fail:
	json_decref(a);
	return NULL;
}

/* One value at j->p (whitespace before it already skipped). */
static json_t *
jp_value(struct jp *j, int depth)
{
	const char *s;
	size_t n;
	json_t *v;

	if (depth > JSON_MAX_DEPTH + 1 || j->p >= j->end)
		return jp_fail(j, JP_BAD);
	switch (*j->p) {
	case '{':
		return jp_object(j, depth);
	case '[':
		return jp_array(j, depth);
	case '"':
		if (jp_string(j, &s, &n) != 0)
			return jp_fail(j, JP_BAD);
		if ((v = json_stringn_nocheck(s, n)) == NULL)
			return jp_fail(j, JP_NOMEM);
		return v;
	case 't':
		return jp_literal(j, "true", 4, json_true());
	case 'f':
		return jp_literal(j, "false", 5, json_false());
	case 'n':
		return jp_literal(j, "null", 4, json_null());
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return jp_number(j);
		return jp_fail(j, JP_BAD);
	}
}

/* The whole of buf as one JSON value; NULL with *err set when it is not. */
static json_t *
jp_parse(const char *buf, size_t len, enum jp_err *err)
{
	struct jp j;
	json_t *root;

	j.p = (const unsigned char *)buf;
	j.end = j.p + len;
	j.sbuf = NULL;
	j.scap = 0;
	j.err = JP_OK;
	jp_ws(&j);
	root = jp_value(&j, 1);
	if (root != NULL) {
		jp_ws(&j);
		if (j.p != j.end) {
			json_decref(root);
			root = jp_fail(&j, JP_BAD);	/* trailing garbage */
		}
	}
	if (j.sbuf != NULL) {
		explicit_bzero(j.sbuf, j.scap);
		free(j.sbuf);
	}
	*err = root != NULL ? JP_OK : j.err != JP_OK ? j.err : JP_BAD;
	return root;
}

int
json_parse_object(const char *buf, size_t len, json_t **out, const char **code)
{
	enum jp_err perr;
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
	if ((root = jp_parse(buf, len, &perr)) == NULL) {
		switch (perr) {
		case JP_DUP:
			set_code(code, JSON_E_DUPLICATE_KEY);
			break;
		case JP_RANGE:
			set_code(code, JSON_E_INVALID_VALUE);
			break;
		default:	/* JP_NOMEM too, as with jansson */
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

/* ------------------------------------------------------------------- writing */

#define JSON_WRITE_DEPTH	32

struct jw {
	char *buf;
	size_t cap;
	size_t len;	/* bytes the whole text needs so far (may pass cap) */
};

static void
jw_put(struct jw *w, const char *s, size_t n)
{
	size_t room;

	if (w->len < w->cap) {
		room = w->cap - w->len;
		memcpy(w->buf + w->len, s, n < room ? n : room);
	}
	w->len += n;
}

static void
jw_byte(struct jw *w, char c)
{
	if (w->len < w->cap)
		w->buf[w->len] = c;
	w->len++;
}

/* The two-character escape of c ('n' for a newline...), or NUL when it has none. */
static char
jw_short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return '"';
	case '\\':
		return '\\';
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return '\0';
	}
}

/* A JSON string: '"' and '\\' escaped, control characters as jansson writes them. */
static int
jw_string(struct jw *w, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	char esc[6];
	size_t i = 0, run, k;

	jw_byte(w, '"');
	while (i < n) {
		/* The longest run written as it is. */
		run = i;
		while (run < n) {
			if (s[run] >= 0x80) {
				if ((k = jw_utf8_len(s + run, n - run)) == 0)
					return -1;
				run += k;
				continue;
			}
			if (s[run] < 0x20 || s[run] == '"' || s[run] == '\\')
				break;
			run++;
		}
		jw_put(w, str + i, run - i);
		if ((i = run) >= n)
			break;
		esc[0] = '\\';
		if ((esc[1] = jw_short_escape(s[i])) != '\0')
			k = 2;
		else {
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[s[i] >> 4];
			esc[5] = hex[s[i] & 0xf];
			k = 6;
		}
		jw_put(w, esc, k);
		i++;
	}
	jw_byte(w, '"');
	return 0;
}

static void
jw_integer(struct jw *w, json_int_t v)
{
	char tmp[UTIL_LL_DIGITS];
	const char *d = util_fmt_ll((long long)v, tmp);

	jw_put(w, d, (size_t)(tmp + sizeof(tmp) - 1 - d));
}

static int
jw_value(struct jw *w, const json_t *v, int depth)
{
	void *it;
	size_t i, n;

	if (v == NULL || depth > JSON_WRITE_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		jw_byte(w, '{');
		/* Insertion order, as json_dumpb without JSON_SORT_KEYS. */
		it = json_object_iter((json_t *)(uintptr_t)v);
		for (i = 0; it != NULL; i++) {
			if (i > 0)
				jw_byte(w, ',');
			if (jw_string(w, json_object_iter_key(it), json_object_iter_key_len(it)) != 0)
				return -1;
			jw_byte(w, ':');
			if (jw_value(w, json_object_iter_value(it), depth + 1) != 0)
				return -1;
			it = json_object_iter_next((json_t *)(uintptr_t)v, it);
		}
		jw_byte(w, '}');
		return 0;
	case JSON_ARRAY:
		jw_byte(w, '[');
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			if (i > 0)
				jw_byte(w, ',');
			if (jw_value(w, json_array_get(v, i), depth + 1) != 0)
				return -1;
		}
		jw_byte(w, ']');
		return 0;
	case JSON_STRING:
		return jw_string(w, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		jw_integer(w, json_integer_value(v));
		return 0;
	case JSON_TRUE:
		jw_put(w, "true", 4);
		return 0;
	case JSON_FALSE:
		jw_put(w, "false", 5);
		return 0;
	case JSON_NULL:
		jw_put(w, "null", 4);
		return 0;
	default:
		return -1;	/* JSON_REAL: no answer carries one */
	}
}

size_t
json_write_compact(const json_t *v, char *buf, size_t cap)
{
	struct jw w;

	w.buf = buf;
	w.cap = buf != NULL ? cap : 0;
	w.len = 0;
	/* Like json_dumpb without JSON_ENCODE_ANY: only an object or an array. */
	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (jw_value(&w, v, 1) != 0)
		return 0;
	return w.len;
}

size_t
json_write_string(const char *s, size_t n, char *buf, size_t cap)
{
	struct jw w;

	w.buf = buf;
	w.cap = buf != NULL ? cap : 0;
	w.len = 0;
	if (s == NULL || jw_string(&w, s, n) != 0)
		return 0;
	return w.len;
}

char *
json_dumps_compact(const json_t *v)
{
	size_t len;
	char *s;

	if ((len = json_write_compact(v, NULL, 0)) == 0)
		return json_dumps(v, JSON_COMPACT);
	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	if (json_write_compact(v, s, len) != len) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}
