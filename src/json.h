/*
 * json.h: strict JSON for request bodies (jansson). Duplicate keys are refused, unknown
 * fields are refused, every field is type-checked. Errors carry a stable API code.
 */
#ifndef CB_JSON_H
#define CB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Stable error codes for the API (the "error" member of a 4xx body). */
#define JSON_E_BAD_JSON		"bad_json"
#define JSON_E_DUPLICATE_KEY	"duplicate_key"
#define JSON_E_NOT_OBJECT	"not_an_object"
#define JSON_E_UNKNOWN_FIELD	"unknown_field"
#define JSON_E_MISSING_FIELD	"missing_field"
#define JSON_E_WRONG_TYPE	"wrong_type"
#define JSON_E_INVALID_VALUE	"invalid_value"

#define JSON_MAX_LEN	(1024 * 1024)	/* bodies longer than this are refused unparsed */

/*
 * Parses buf as one JSON object (JSON_REJECT_DUPLICATES, at most JSON_MAX_LEN bytes,
 * containers nested at most 8 deep, no NUL in strings: "\u0000" is bad_json, a number
 * too large for its type is invalid_value, a non-object root not_an_object).
 * *out owned by the caller (json_decref). On error returns CB_ERR_INVAL and sets
 * *code to one of the codes above (static string).
 */
int json_parse_object(const char *buf, size_t len, json_t **out, const char **code);

/*
 * Refuses members of obj not named in allowed (NULL-terminated). Returns 0 or
 * CB_ERR_INVAL with *code = JSON_E_UNKNOWN_FIELD and *field the offending name.
 */
int json_only_fields(json_t *obj, const char *const *allowed, const char **code,
    const char **field);

/*
 * Typed getters. required: absent is JSON_E_MISSING_FIELD; optional: absent leaves
 * *out untouched and returns 1. A JSON null counts as absent for optional fields.
 * Strings: NUL-free, at most maxlen bytes (else JSON_E_INVALID_VALUE); *out points
 * into obj. Integers: JSON integers only (no floats, no strings), within [min, max].
 */
int json_get_string(json_t *obj, const char *key, int required, size_t maxlen,
    const char **out, const char **code);
int json_get_int(json_t *obj, const char *key, int required, long long min, long long max,
    long long *out, const char **code);
int json_get_bool(json_t *obj, const char *key, int required, int *out, const char **code);
/* Array getter: *out borrowed; at most maxitems items. */
int json_get_array(json_t *obj, const char *key, int required, size_t maxitems,
    json_t **out, const char **code);

/*
 * Writes v as compact JSON into buf (at most cap bytes, no NUL added): byte for byte what
 * json_dumpb(v, buf, cap, JSON_COMPACT) writes, in about a tenth of the instructions.
 * Returns the whole length, which may exceed cap (then only cap bytes were written:
 * call again with a larger buffer), or 0 when v is not an object or an array, holds a
 * real number, nests deeper than 32, or holds a string that is not valid UTF-8
 * (json_dumpb writes reals; it refuses the others too). Nothing is allocated, so no copy of a secret is left.
 */
size_t json_write_compact(const json_t *v, char *buf, size_t cap);
/*
 * The n bytes at s as a JSON string literal, quotes included, as json_write_compact
 * writes strings, into buf (at most cap bytes). Returns the whole length (may exceed
 * cap), or 0 when s is not valid UTF-8.
 */
size_t json_write_string(const char *s, size_t n, char *buf, size_t cap);
/*
 * json_dumps(v, JSON_COMPACT) through json_write_compact (jansson's own for what that
 * does not write): a malloc'd NUL-terminated string owned by the caller, or NULL.
 */
char *json_dumps_compact(const json_t *v);

/* {"error": code} (and "field": field when not NULL); new reference. */
json_t *json_error_body(const char *code, const char *field);

#endif
