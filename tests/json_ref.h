/*
 * json_ref.h: the reference for src/json.c's own strict parser: the same answer
 * computed with jansson (json_loadb with JSON_REJECT_DUPLICATES), after the same
 * bound on nesting. Shared by tests/test_json.c and tests/fuzz/fuzz_json.c, which
 * check that json_parse_object gives the same code, or an equal tree with its members
 * in the same order. Include after <jansson.h> and "json.h".
 */
#ifndef CB_JSON_REF_H
#define CB_JSON_REF_H

#include <stddef.h>

/* What json_parse_object should answer for buf: the tree (new reference) or NULL and *code. */
static json_t *
json_ref_parse(const char *buf, size_t len, const char **code)
{
	json_error_t err;
	json_t *root;
	int depth, instr, esc;
	size_t i;

	*code = NULL;
	/* The same bound on nesting before parsing (depth_ok in json.c). */
	depth = instr = esc = 0;
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
		if (buf[i] == '"')
			instr = 1;
		else if (buf[i] == '{' || buf[i] == '[') {
			if (++depth > 8) {
				*code = JSON_E_BAD_JSON;
				return NULL;
			}
		} else if (buf[i] == '}' || buf[i] == ']')
			depth--;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (root == NULL) {
		if (json_error_code(&err) == json_error_duplicate_key)
			*code = JSON_E_DUPLICATE_KEY;
		else if (json_error_code(&err) == json_error_numeric_overflow)
			*code = JSON_E_INVALID_VALUE;
		else
			*code = JSON_E_BAD_JSON;
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*code = JSON_E_NOT_OBJECT;
		return NULL;
	}
	return root;
}

#endif
