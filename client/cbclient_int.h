/*
 * cbclient_int.h: libcredbroker internals, private (not installed). Request bodies
 * are built and answers parsed here without any network, so tests/test_client.c can
 * check exact bodies and feed malformed, truncated, oversized and wrong-typed answers.
 * All return 0 or a negative enum cbc_err; out-parameters are NULL/0 on entry.
 */
#ifndef CBCLIENT_INT_H
#define CBCLIENT_INT_H

#include <stddef.h>

#include "credbroker.h"

#define CBC_ANSWER_MAX		(1024 * 1024)	/* larger answers are CBC_E_PROTOCOL */
#define CBC_VALUE_MAX		8192		/* the broker's limit on a secret value */
#define CBC_ERRCODE_MAX		64

/*
 * Request bodies: compact JSON in a fixed key order, malloc'd, owned by the caller.
 * The secret-put body holds the value: the caller wipes it (explicit_bzero *len bytes).
 */
int cbc_build_grant(const struct cbc_grant_req *req, char **out);
int cbc_build_resolve(const char *token, const char *sandbox_id, const char *host, int port,
    const char *method, const char *path, char **out, size_t *len);
int cbc_build_secret(const unsigned char *value, size_t len, const char *const *hosts,
    long long max_ttl_s, char **out, size_t *outlen);
int cbc_build_rotate(const char *kind, char **out);

/*
 * Answers: buf need not be NUL-terminated. Anything that is not exactly the expected
 * JSON (duplicate keys, trailing bytes, missing fields, wrong types, out-of-range
 * numbers, over CBC_ANSWER_MAX) is CBC_E_PROTOCOL; why (may be NULL) says what.
 */
int cbc_parse_grant(const char *buf, size_t len, struct cbc_grant **out, char *why,
    size_t whylen);
int cbc_parse_resolved(const char *buf, size_t len, struct cbc_resolved **out, char *why,
    size_t whylen);
/* {"name": ..., "version": N >= 1} */
int cbc_parse_version(const char *buf, size_t len, long long *version, char *why,
    size_t whylen);
/* {"sandbox_id": ..., "revoked": N >= 0} */
int cbc_parse_revoked(const char *buf, size_t len, long long *revoked, char *why,
    size_t whylen);
/* Any JSON object; *json receives a NUL-terminated copy of buf (caller frees). */
int cbc_parse_object(const char *buf, size_t len, char **json, char *why, size_t whylen);
/*
 * An error answer {"error": "code", "field": "name"?, ...}: copies the code into code
 * when it is a plain identifier ([a-z0-9_.-]) that fits; otherwise code is "" and this
 * fails. field (may be NULL) receives the "field" member likewise (also A-Z), or "".
 */
int cbc_parse_error(const char *buf, size_t len, char *code, size_t codelen, char *field,
    size_t fieldlen);

/*
 * The answer buffer of a request: grows by copying and wiping, never by realloc (which
 * may leave copies of a credential behind); cbc_buf_wipe wipes and frees it.
 */
struct cbc_buf {
	char *p;	/* NUL-terminated after len bytes */
	size_t len;
	size_t cap;
	int over;	/* the answer went past CBC_ANSWER_MAX */
};
/* libcurl's write callback: appends, or returns 0 (abort) past CBC_ANSWER_MAX. */
size_t cbc_write_cb(char *data, size_t size, size_t nmemb, void *arg);
void cbc_buf_wipe(struct cbc_buf *b);

#endif
