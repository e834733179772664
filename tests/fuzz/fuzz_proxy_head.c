/* fuzz-sources: client/proxy_http.c */
/*
 * fuzz_proxy_head.c: credproxy's request-head parser, rewriter, token finder and chunked
 * decoder on arbitrary bytes. Properties (abort() when broken): a head that parses is
 * rewritten with a fixed credential header into a head that parses again, whole, with
 * exactly one credential header, one Host header, no Proxy-Authorization and no CR/LF
 * injected; a chunked body decodes the same whether fed whole or byte by byte.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../client/proxy_http.h"
#include "../../src/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CRED_NAME	"Authorization"
#define CRED_VALUE	"Bearer real-secret-0123456789"
#define KEY_NAME	"X-Api-Key"
#define KEY_VALUE	"real-key"

static void
check(int cond)
{
	if (!cond)
		abort();
}

static size_t
count_name(const struct ph_header *h, size_t n, const char *name)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			c++;
	return c;
}

struct body {
	uint8_t *p;
	size_t len;
};

static void
body_emit(void *arg, const uint8_t *p, size_t n)
{
	struct body *b = arg;

	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Decodes in whole and byte by byte; both must agree. */
static void
check_chunked(const uint8_t *in, size_t len)
{
	struct ph_chunked a, b;
	struct body ba, bb;
	size_t i;
	int ra, rb = 0, r;

	ba.p = malloc(len + 1);
	bb.p = malloc(len + 1);
	check(ba.p != NULL && bb.p != NULL);
	ba.len = bb.len = 0;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ra = ph_chunked_feed(&a, in, len, body_emit, &ba);
	for (i = 0; i < len; i++) {
		r = ph_chunked_feed(&b, in + i, 1, body_emit, &bb);
		if (r < 0) {
			rb = -1;
			break;
		}
		rb += r;
		if (b.done)
			break;
	}
	check((ra < 0) == (rb < 0));
	if (ra >= 0) {
		check(ra == rb && a.done == b.done);
		check(ba.len == bb.len && memcmp(ba.p, bb.p, ba.len) == 0);
		check(ba.len <= len);
	}
	free(ba.p);
	free(bb.p);
}

static void
check_rewrite(const struct ph_request *req)
{
	static const struct ph_set set[] = { { CRED_NAME, CRED_VALUE }, { KEY_NAME, KEY_VALUE } };
	struct ph_request re;
	const char *reason, *hv;
	char host[300], *out = NULL;
	size_t outlen, i, crlf = 0;
	int status, rc;

	if (req->host[0] != '\0') {
		if (strchr(req->host, ':') != NULL)
			snprintf(host, sizeof(host), "[%s]", req->host);
		else
			snprintf(host, sizeof(host), "%s", req->host);
		if (req->port != 0)
			snprintf(host + strlen(host), sizeof(host) - strlen(host), ":%d",
			    req->port);
	} else if ((hv = ph_header_get(req->headers, req->nheaders, "Host")) != NULL)
		snprintf(host, sizeof(host), "%s", hv);
	else
		snprintf(host, sizeof(host), "fuzz.example");
	rc = ph_rewrite_request(req, set, 2, host, &out, &outlen);
	if (req->form == PH_FORM_AUTHORITY) {
		check(rc == CB_ERR_INVAL && out == NULL);
		return;
	}
	if (rc == CB_ERR_LIMIT) {
		check(out == NULL);
		return;
	}
	check(rc == 0 && out != NULL && strlen(out) == outlen);
	rc = ph_parse_request(out, outlen, &re, &status, &reason);
	check(rc == (int)outlen);
	check(strcmp(re.method, req->method) == 0 && strcmp(re.path, req->path) == 0);
	check(re.form == PH_FORM_ORIGIN && re.minor == 1);
	check(count_name(re.headers, re.nheaders, CRED_NAME) == 1);
	check(strcmp(ph_header_get(re.headers, re.nheaders, CRED_NAME), CRED_VALUE) == 0);
	check(count_name(re.headers, re.nheaders, KEY_NAME) == 1);
	check(strcmp(ph_header_get(re.headers, re.nheaders, KEY_NAME), KEY_VALUE) == 0);
	check(count_name(re.headers, re.nheaders, "Host") == 1);
	check(strcmp(ph_header_get(re.headers, re.nheaders, "Host"), host) == 0);
	check(count_name(re.headers, re.nheaders, "Proxy-Authorization") == 0);
	check(count_name(re.headers, re.nheaders, "Proxy-Connection") == 0);
	check(count_name(re.headers, re.nheaders, "Keep-Alive") == 0);
	check(count_name(re.headers, re.nheaders, "Connection") == (req->upgrade ? 1u : 0u));
	check(re.upgrade == req->upgrade);
	check(re.content_length == req->content_length && re.chunked == req->chunked);
	/* Every line break is one of ours: request line, each header, the blank line. */
	for (i = 0; i < outlen; i++) {
		check(out[i] != '\n' || (i > 0 && out[i - 1] == '\r'));
		if (out[i] == '\n')
			crlf++;
	}
	check(crlf == re.nheaders + 2);
	check(re.nheaders <= req->nheaders + 3);
	ph_request_clear(&re);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ph_request req;
	struct ph_response res;
	const char *reason;
	char *toks[PH_TOKENS_MAX];
	size_t n, i;
	int rc, status, hl;

	hl = rc = ph_parse_request((const char *)data, size, &req, &status, &reason);
	check(rc >= -1 && (rc < 0 || (size_t)rc <= size));
	if (rc < 0)
		check(reason != NULL && (status == 400 || status == 431 || status == 501 ||
		    status == 505));
	if (rc == 0)
		check(size < PH_HEAD_MAX);
	if (rc > 0) {
		rc = ph_find_tokens(&req, toks, &n);
		check(rc == 0 || rc == CB_ERR_LIMIT);
		if (rc == 0) {
			check(n <= PH_TOKENS_MAX);
			for (i = 0; i < n; i++)
				check(strncmp(toks[i], "cbt_", 4) == 0 && strlen(toks[i]) > 4);
			ph_tokens_free(toks, n);
		}
		check_rewrite(&req);
		if (req.chunked)
			check_chunked(data + hl, size - (size_t)hl);
	}
	ph_request_clear(&req);

	rc = ph_parse_response((const char *)data, size, size > 0 && (data[0] & 1), &res,
	    &reason);
	check(rc >= -1 && (rc < 0 || (size_t)rc <= size));
	check(rc >= 0 || reason != NULL);
	ph_response_clear(&res);
	return 0;
}
