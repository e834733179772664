/* test_proxy_http.c: credproxy's request/response head parser, tokens, rewriter, chunked. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "../client/proxy_http.h"
#include "../src/err.h"
#include "../src/util.h"

int main(void);

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define H		"Host: example.com\r\n"

struct head_case {
	const char *head;
	int status;		/* 0: parses */
};

static const struct head_case head_cases[] = {
	/* good */
	{ "GET / HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET /a?b=c HTTP/1.1\r\n" H "Accept: */*\r\n\r\n", 0 },
	{ "GET / HTTP/1.0\r\n\r\n", 0 },
	{ "GET http://example.com/x HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://example.com HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET HTTP://Example.COM:8080/x HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://10.0.0.1:80/ HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0 },
	{ "CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\n\r\n", 0 },
	{ "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n", 0 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n", 0 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 0 },
	{ "POST / HTTP/1.1\r\n" H "transfer-encoding:  Chunked \r\n\r\n", 0 },
	{ "GET / HTTP/1.1\r\n" H "X-Empty:\r\nX-Tab:\tv\tw\t\r\n\r\n", 0 },
	{ "GET / HTTP/1.1\r\n" H "X-Obs: caf\xc3\xa9\r\n\r\n", 0 },
	{ "M-SEARCH~ / HTTP/1.1\r\n" H "\r\n", 0 },
	/* request line */
	{ "GET  / HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET / HTTP/1.1 \r\n" H "\r\n", 400 },
	{ "GET /\r\n" H "\r\n", 400 },
	{ "GET / HTTP/2.0\r\n" H "\r\n", 505 },
	{ "GET / HTTP/1.2\r\n" H "\r\n", 505 },
	{ "GET / HTTP/0.9\r\n" H "\r\n", 505 },
	{ "GET / HTTP/1.10\r\n" H "\r\n", 400 },
	{ "GET / http/1.1\r\n" H "\r\n", 400 },
	{ "G(T / HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET /a\tb HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET /a\x7f HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET /#frag HTTP/1.1\r\n" H "\r\n", 400 },
	{ "AVERYLONGMETHODNAMEOVER24 / HTTP/1.1\r\n" H "\r\n", 400 },
	{ "\r\nGET / HTTP/1.1\r\n" H "\r\n", 400 },
	/* targets */
	{ "GET https://example.com/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET ftp://example.com/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://user:pw@example.com/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http:// HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://example.com:0/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://example.com:65536/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://example.com:/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://0177.0.0.1/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://2130706433/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://0x7f.1/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://1.2.3.256/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://[::1/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://[zz::1]/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://exa%6dple.com/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://a..b/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://.a/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://example.com./ HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://1.2.3.4./ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://a.b.c.1/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET http://a.b.c.1x/ HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://[::ffff:127.0.0.1]/ HTTP/1.1\r\n" H "\r\n", 0 },
	{ "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET * HTTP/1.1\r\n" H "\r\n", 400 },
	{ "GET example.com:443 HTTP/1.1\r\n" H "\r\n", 400 },
	{ "CONNECT / HTTP/1.1\r\n" H "\r\n", 400 },
	{ "CONNECT http://example.com/ HTTP/1.1\r\n" H "\r\n", 400 },
	{ "CONNECT example.com HTTP/1.1\r\n" H "\r\n", 400 },
	{ "CONNECT example.com:99999 HTTP/1.1\r\n" H "\r\n", 400 },
	/* header lines */
	{ "GET / HTTP/1.1\n" H "\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" "Host: example.com\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A: a\r\n b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A: a\r\n\tb\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H " X-A: a\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A : a\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H ": a\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X(A): a\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A: a\x01\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "X-A: a\x7f\r\n\r\n", 400 },
	/* Host */
	{ "GET / HTTP/1.1\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H H "\r\n", 400 },
	{ "GET / HTTP/1.1\r\n" H "host: other.example\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400 },
	{ "GET / HTTP/1.1\r\nHost: \r\n\r\n", 400 },
	{ "GET / HTTP/1.0\r\n" H H "\r\n", 400 },
	/* framing */
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 501 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 501 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	    501 },
	{ "POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", 501 },
	{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", 400 },
	{ "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", 400 },
};

static void
test_heads(void **state)
{
	struct ph_request req;
	const char *reason;
	size_t i, len;
	int rc, status;

	for (i = 0; i < NELEM(head_cases); i++) {
		len = strlen(head_cases[i].head);
		rc = ph_parse_request(head_cases[i].head, len, &req, &status, &reason);
		if (head_cases[i].status == 0) {
			if (rc != (int)len)
				fail_msg("case %zu: rc %d status %d (%s)", i, rc, status,
				    reason != NULL ? reason : "");
		} else {
			if (rc != -1 || status != head_cases[i].status)
				fail_msg("case %zu: rc %d status %d, want %d", i, rc, status,
				    head_cases[i].status);
			assert_non_null(reason);
			assert_null(req.buf);
		}
		ph_request_clear(&req);
	}
}

static size_t
count_name(const struct ph_request *r, const char *name)
{
	size_t i, c = 0;

	for (i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			c++;
	return c;
}

/* Every good head of the table, rewritten with a credential, parses again whole. */
static void
test_heads_rewrite(void **state)
{
	static const struct ph_set set[] = { { "authorization", "Bearer real" },
	    { "X-Api-Key", "k" } };
	struct ph_request req, re;
	const char *reason;
	char *out;
	size_t i, j, outlen, nlf;
	int status;

	for (i = 0; i < NELEM(head_cases); i++) {
		if (head_cases[i].status != 0)
			continue;
		assert_true(ph_parse_request(head_cases[i].head, strlen(head_cases[i].head),
		    &req, &status, &reason) > 0);
		if (req.form == PH_FORM_AUTHORITY) {
			assert_int_equal(ph_rewrite_request(&req, set, 2, "h", &out, &outlen),
			    CB_ERR_INVAL);
			ph_request_clear(&req);
			continue;
		}
		assert_int_equal(ph_rewrite_request(&req, set, 2, "h.example:81", &out,
		    &outlen), 0);
		if (ph_parse_request(out, outlen, &re, &status, &reason) != (int)outlen)
			fail_msg("case %zu: rewritten head refused (%d %s)", i, status, reason);
		assert_string_equal(re.method, req.method);
		assert_string_equal(re.path, req.path);
		assert_int_equal(count_name(&re, "Authorization"), 1);
		assert_string_equal(ph_header_get(re.headers, re.nheaders, "Authorization"),
		    "Bearer real");
		assert_int_equal(count_name(&re, "x-api-key"), 1);
		assert_int_equal(count_name(&re, "Host"), 1);
		assert_string_equal(ph_header_get(re.headers, re.nheaders, "Host"),
		    "h.example:81");
		for (j = 0, nlf = 0; j < outlen; j++)
			nlf += out[j] == '\n';
		assert_int_equal(nlf, re.nheaders + 2);
		ph_request_clear(&re);
		util_wipe_free(out, outlen);
		ph_request_clear(&req);
	}
}

/* A NUL byte cannot be written in the table's strings. */
static void
test_nul(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n";
	struct ph_request req;
	const char *reason;
	int status;

	assert_int_equal(ph_parse_request(head, sizeof(head) - 1, &req, &status, &reason), -1);
	assert_int_equal(status, 400);
	ph_request_clear(&req);
}

/* Incomplete heads need more bytes, at every prefix length; and a partial bare LF fails early. */
static void
test_incomplete(void **state)
{
	static const char head[] = "POST http://example.com/p HTTP/1.1\r\nHost: example.com\r\n"
	    "Content-Length: 3\r\n\r\nabc";
	struct ph_request req;
	const char *reason;
	size_t i, hl = strlen(head) - 3;
	int status;

	for (i = 0; i < hl; i++) {
		assert_int_equal(ph_parse_request(head, i, &req, &status, &reason), 0);
		ph_request_clear(&req);
	}
	for (i = hl; i <= strlen(head); i++) {
		assert_int_equal(ph_parse_request(head, i, &req, &status, &reason), (int)hl);
		assert_int_equal(req.content_length, 3);
		ph_request_clear(&req);
	}
	assert_int_equal(ph_parse_request("GET / HTTP/1.1\n", 15, &req, &status, &reason), -1);
	assert_int_equal(status, 400);
	ph_request_clear(&req);
}

static void
test_oversized(void **state)
{
	struct ph_request req;
	const char *reason;
	char *big;
	size_t n = PH_HEAD_MAX + 100, i, off;
	int status;

	big = malloc(n + 1);
	assert_non_null(big);
	/* one huge header, head never ends */
	off = (size_t)snprintf(big, n, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
	memset(big + off, 'x', n - off);
	big[n] = '\0';
	assert_int_equal(ph_parse_request(big, PH_HEAD_MAX - 1, &req, &status, &reason), 0);
	assert_int_equal(ph_parse_request(big, n, &req, &status, &reason), -1);
	assert_int_equal(status, 431);
	/* complete but over the limit */
	memcpy(big + n - 4, "\r\n\r\n", 4);
	assert_int_equal(ph_parse_request(big, n, &req, &status, &reason), -1);
	assert_int_equal(status, 431);
	/* too many header lines */
	off = (size_t)snprintf(big, n, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 0; i < PH_HEADERS_MAX; i++)
		off += (size_t)snprintf(big + off, n - off, "X-%zu: v\r\n", i);
	off += (size_t)snprintf(big + off, n - off, "\r\n");
	assert_int_equal(ph_parse_request(big, off, &req, &status, &reason), -1);
	assert_int_equal(status, 431);
	free(big);
}

/* Parses a whole NUL-terminated head; fails the test unless all of it was used. */
static void
parse_ok(const char *head, struct ph_request *req)
{
	const char *reason;
	int status, rc;

	rc = ph_parse_request(head, strlen(head), req, &status, &reason);
	if (rc != (int)strlen(head))
		fail_msg("rc %d status %d (%s) for %s", rc, status, reason ? reason : "", head);
}

static void
test_fields(void **state)
{
	static const char head[] = "GET http://API.Example.com:8080/p?q=1 HTTP/1.1\r\n"
	    "Host: api.example.com:8080\r\nX-A:  spaced value \t\r\nConnection: Keep-Alive, Upgrade\r\n"
	    "Upgrade: WebSocket\r\nExpect: 100-continue\r\n\r\n";
	struct ph_request req;
	const char *reason;
	int status;

	assert_int_equal(ph_parse_request(head, strlen(head), &req, &status, &reason),
	    (int)strlen(head));
	assert_string_equal(req.method, "GET");
	assert_int_equal(req.form, PH_FORM_ABSOLUTE);
	assert_string_equal(req.scheme, "http");
	assert_string_equal(req.host, "api.example.com");
	assert_int_equal(req.port, 8080);
	assert_string_equal(req.path, "/p?q=1");
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nheaders, 5);
	assert_string_equal(ph_header_get(req.headers, req.nheaders, "x-a"), "spaced value");
	assert_null(ph_header_get(req.headers, req.nheaders, "X-B"));
	assert_int_equal(req.content_length, -1);
	assert_int_equal(req.chunked, 0);
	assert_int_equal(req.upgrade, 1);
	assert_int_equal(req.keep_alive, 1);
	assert_int_equal(req.expect_continue, 1);
	ph_request_clear(&req);

	parse_ok("GET http://h?x HTTP/1.0\r\n\r\n", &req);
	assert_string_equal(req.path, "/?x");
	assert_int_equal(req.port, 0);
	assert_int_equal(req.keep_alive, 0);
	ph_request_clear(&req);

	parse_ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &req);
	assert_int_equal(req.keep_alive, 1);
	assert_int_equal(req.form, PH_FORM_ORIGIN);
	assert_string_equal(req.host, "");
	ph_request_clear(&req);

	parse_ok("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
	    "Upgrade: websocket\r\n\r\n", &req);
	assert_int_equal(req.keep_alive, 0);
	assert_int_equal(req.upgrade, 0);
	ph_request_clear(&req);

	parse_ok("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", &req);
	assert_int_equal(req.form, PH_FORM_AUTHORITY);
	assert_string_equal(req.host, "::1");
	assert_int_equal(req.port, 443);
	assert_string_equal(req.path, "/");
	ph_request_clear(&req);

	parse_ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
	    "chunked\r\n\r\n", &req);
	assert_int_equal(req.chunked, 1);
	assert_int_equal(req.content_length, -1);
	ph_request_clear(&req);
	ph_request_clear(NULL);
}

/* --- tokens --------------------------------------------------------------------------- */

#define TOK1	"cbt_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzYngifQ.c2lnbmF0dXJl"
#define TOK2	"cbt_second-token_value.x.y"

struct tok_case {
	const char *headers;	/* header lines after the Host line */
	size_t n;
	const char *t1;
	const char *t2;
};

static const struct tok_case tok_cases[] = {
	{ "Authorization: Bearer " TOK1 "\r\n", 1, TOK1, NULL },
	{ "authorization: token " TOK1 "\r\n", 1, TOK1, NULL },
	{ "X-Api-Key: " TOK1 "\r\n", 1, TOK1, NULL },
	{ "X-API-KEY: k=" TOK1 ";x\r\n", 1, TOK1, NULL },
	{ "Authorization: Bearer " TOK1 "\r\nX-Other: " TOK1 "\r\n", 1, TOK1, NULL },
	{ "Authorization: Bearer " TOK1 "\r\nX-Other: " TOK2 "\r\n", 2, TOK1, TOK2 },
	{ "X-Two: " TOK1 "," TOK2 "\r\n", 2, TOK1, TOK2 },
	/* Basic x-access-token:TOK1 (password) */
	{ "Authorization: Basic eC1hY2Nlc3MtdG9rZW46Y2J0X2V5SmhiR2NpT2lKSVV6STFOaUo5LmV5SnpkV0lpT2lKel"
	    "luZ2lmUS5jMmxuYm1GMGRYSmw=\r\n", 1, TOK1, NULL },
	/* basic TOK1:x-oauth-basic (user), lower-case scheme, unpadded */
	{ "Authorization: basic Y2J0X2V5SmhiR2NpT2lKSVV6STFOaUo5LmV5SnpkV0lpT2lKelluZ2lmUS5jMmxuYm1GMG"
	    "RYSmw6eC1vYXV0aC1iYXNpYw\r\n", 1, TOK1, NULL },
	/* Basic in Proxy-Authorization too */
	{ "Proxy-Authorization: BASIC Y2J0X2V5SmhiR2NpT2lKSVV6STFOaUo5LmV5SnpkV0lpT2lKelluZ2lmUS5jMmxuYm1GMG"
	    "RYSmw6eC1vYXV0aC1iYXNpYw==\r\n", 1, TOK1, NULL },
	{ "Authorization: Bearer sk-not-a-token\r\nX-A: cbt_\r\nX-B: xcbt\r\n", 0, NULL, NULL },
	{ "Authorization: Basic !!!notbase64\r\n", 0, NULL, NULL },
};

static void
test_tokens(void **state)
{
	struct ph_request req;
	const char *reason;
	char head[1024], *toks[PH_TOKENS_MAX];
	size_t i, n;
	int status, hl;

	for (i = 0; i < NELEM(tok_cases); i++) {
		hl = snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n",
		    tok_cases[i].headers);
		assert_true(hl > 0 && (size_t)hl < sizeof(head));
		assert_int_equal(ph_parse_request(head, (size_t)hl, &req, &status, &reason), hl);
		assert_int_equal(ph_find_tokens(&req, toks, &n), 0);
		if (n != tok_cases[i].n)
			fail_msg("case %zu: %zu tokens, want %zu", i, n, tok_cases[i].n);
		if (n >= 1)
			assert_string_equal(toks[0], tok_cases[i].t1);
		if (n >= 2)
			assert_string_equal(toks[1], tok_cases[i].t2);
		ph_tokens_free(toks, n);
		ph_request_clear(&req);
	}
}

static void
test_tokens_limit(void **state)
{
	struct ph_request req;
	const char *reason;
	char head[2048], *toks[PH_TOKENS_MAX];
	size_t i, n, off;
	int status;

	off = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 0; i <= PH_TOKENS_MAX; i++)
		off += (size_t)snprintf(head + off, sizeof(head) - off, "X-%zu: cbt_t%zu\r\n", i, i);
	off += (size_t)snprintf(head + off, sizeof(head) - off, "\r\n");
	assert_int_equal(ph_parse_request(head, off, &req, &status, &reason), (int)off);
	assert_int_equal(ph_find_tokens(&req, toks, &n), CB_ERR_LIMIT);
	assert_int_equal(n, 0);
	ph_request_clear(&req);
}

/* --- rewriting ------------------------------------------------------------------------ */


static void
test_rewrite(void **state)
{
	static const char head[] = "POST http://api.example.com/repos/x?y=1 HTTP/1.1\r\n"
	    "Host: api.example.com\r\n"
	    "authorization: Bearer " TOK1 "\r\n"
	    "AUTHORIZATION: fake-one\r\n"
	    "Authorization: Bearer " TOK1 "\r\n"
	    "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
	    "Proxy-Connection: keep-alive\r\n"
	    "Connection: keep-alive, X-Hop\r\n"
	    "Keep-Alive: timeout=5\r\n"
	    "X-Hop: drop me\r\n"
	    "TE: trailers\r\n"
	    "Upgrade: h2c\r\n"
	    "Content-Length: 4\r\n"
	    "X-Keep: kept\r\n\r\n";
	static const struct ph_set set[] = { { "Authorization", "Bearer real-secret" } };
	struct ph_request req, re;
	const char *reason;
	char *out = NULL;
	size_t outlen;
	int status;

	assert_int_equal(ph_parse_request(head, strlen(head), &req, &status, &reason),
	    (int)strlen(head));
	assert_int_equal(ph_rewrite_request(&req, set, 1, "api.example.com", &out, &outlen), 0);
	assert_int_equal(strlen(out), outlen);
	assert_int_equal(ph_parse_request(out, outlen, &re, &status, &reason), (int)outlen);
	assert_string_equal(re.method, "POST");
	assert_int_equal(re.form, PH_FORM_ORIGIN);
	assert_string_equal(re.path, "/repos/x?y=1");
	assert_int_equal(count_name(&re, "Authorization"), 1);
	assert_string_equal(ph_header_get(re.headers, re.nheaders, "Authorization"),
	    "Bearer real-secret");
	assert_int_equal(count_name(&re, "Host"), 1);
	assert_string_equal(ph_header_get(re.headers, re.nheaders, "Host"), "api.example.com");
	assert_int_equal(count_name(&re, "Proxy-Authorization"), 0);
	assert_int_equal(count_name(&re, "Proxy-Connection"), 0);
	assert_int_equal(count_name(&re, "Connection"), 0);
	assert_int_equal(count_name(&re, "Keep-Alive"), 0);
	assert_int_equal(count_name(&re, "X-Hop"), 0);
	assert_int_equal(count_name(&re, "TE"), 0);
	assert_int_equal(count_name(&re, "Upgrade"), 0);
	assert_int_equal(re.content_length, 4);
	assert_string_equal(ph_header_get(re.headers, re.nheaders, "X-Keep"), "kept");
	assert_null(strstr(out, "fake-one"));
	assert_null(strstr(out, "cbt_"));
	assert_int_equal(re.nheaders, 4);
	ph_request_clear(&re);
	util_wipe_free(out, outlen);
	ph_request_clear(&req);
}

/* Connection cannot make the proxy drop framing headers (request smuggling). */
static void
test_rewrite_framing_kept(void **state)
{
	static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\n"
	    "Connection: Content-Length, Transfer-Encoding, Host\r\nContent-Length: 3\r\n\r\n";
	struct ph_request req, re;
	const char *reason;
	char *out = NULL;
	size_t outlen;
	int status;

	assert_true(ph_parse_request(head, strlen(head), &req, &status, &reason) > 0);
	assert_int_equal(ph_rewrite_request(&req, NULL, 0, "b.example:8443", &out, &outlen), 0);
	assert_int_equal(ph_parse_request(out, outlen, &re, &status, &reason), (int)outlen);
	assert_int_equal(re.content_length, 3);
	assert_string_equal(ph_header_get(re.headers, re.nheaders, "Host"), "b.example:8443");
	ph_request_clear(&re);
	util_wipe_free(out, outlen);
	ph_request_clear(&req);
}

/* Repeated equal Content-Length values go upstream as one plain number. */
static void
test_rewrite_one_content_length(void **state)
{
	static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n"
	    "X-A: 1\r\ncontent-length: 5\r\nContent-Length: 0005\r\n\r\n";
	struct ph_request req;
	const char *reason, *p;
	char *out = NULL;
	size_t outlen;
	int status, n = 0;

	(void)state;
	assert_true(ph_parse_request(head, strlen(head), &req, &status, &reason) > 0);
	assert_int_equal(req.content_length, 5);
	assert_int_equal(ph_rewrite_request(&req, NULL, 0, "a", &out, &outlen), 0);
	for (p = out; (p = strcasestr(p, "content-length:")) != NULL; p++)
		n++;
	assert_int_equal(n, 1);
	assert_non_null(strstr(out, "\r\nContent-Length: 5\r\nX-A: 1\r\n"));
	util_wipe_free(out, outlen);
	ph_request_clear(&req);
}

static void
test_rewrite_upgrade(void **state)
{
	static const char head[] = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	    "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
	struct ph_request req, re;
	const char *reason;
	char *out = NULL;
	size_t outlen;
	int status;

	assert_true(ph_parse_request(head, strlen(head), &req, &status, &reason) > 0);
	assert_int_equal(req.upgrade, 1);
	assert_int_equal(ph_rewrite_request(&req, NULL, 0, "a", &out, &outlen), 0);
	assert_int_equal(ph_parse_request(out, outlen, &re, &status, &reason), (int)outlen);
	assert_int_equal(re.upgrade, 1);
	assert_int_equal(count_name(&re, "Upgrade"), 1);
	assert_int_equal(count_name(&re, "Connection"), 1);
	ph_request_clear(&re);
	util_wipe_free(out, outlen);
	ph_request_clear(&req);
}

static void
test_rewrite_refused(void **state)
{
	static const char *const bad_values[] = { "a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x01" };
	static const char *const bad_names[] = { "Host", "content-length", "Transfer-Encoding",
	    "Bad Name", "", "Connection", "X:Y" };
	struct ph_request req;
	struct ph_set set[2];
	char *out = NULL;
	size_t outlen, i;

	parse_ok("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &req);
	for (i = 0; i < NELEM(bad_values); i++) {
		set[0].name = "Authorization";
		set[0].value = bad_values[i];
		assert_int_equal(ph_rewrite_request(&req, set, 1, "a", &out, &outlen),
		    CB_ERR_INVAL);
		assert_null(out);
	}
	for (i = 0; i < NELEM(bad_names); i++) {
		set[0].name = bad_names[i];
		set[0].value = "v";
		assert_int_equal(ph_rewrite_request(&req, set, 1, "a", &out, &outlen),
		    CB_ERR_INVAL);
	}
	set[0].name = "Authorization";
	set[0].value = "a";
	set[1].name = "authorization";
	set[1].value = "b";
	assert_int_equal(ph_rewrite_request(&req, set, 2, "a", &out, &outlen), CB_ERR_INVAL);
	assert_int_equal(ph_rewrite_request(&req, set, 1, "a\r\nX: y", &out, &outlen),
	    CB_ERR_INVAL);
	assert_int_equal(ph_rewrite_request(&req, set, 1, "a/b", &out, &outlen), CB_ERR_INVAL);
	ph_request_clear(&req);

	parse_ok("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", &req);
	assert_int_equal(ph_rewrite_request(&req, set, 1, "a", &out, &outlen), CB_ERR_INVAL);
	ph_request_clear(&req);
}

/* --- responses ------------------------------------------------------------------------ */

struct res_case {
	const char *head;
	int head_req;
	int ok;
	int status;
	int64_t cl;
	int chunked;
	int keep_alive;
	int no_body;
};

#define BAD_RES(h)	{ h, 0, 0, 0, 0, 0, 0, 0 }

static const struct res_case res_cases[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", 0, 1, 200, 12, 0, 1, 0 },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 1, 200, -1, 1, 1, 0 },
	{ "HTTP/1.1 200 OK\r\n\r\n", 0, 1, 200, -1, 0, 0, 0 },
	{ "HTTP/1.1 204 No Content\r\n\r\n", 0, 1, 204, -1, 0, 1, 1 },
	{ "HTTP/1.1 304 \r\n\r\n", 0, 1, 304, -1, 0, 1, 1 },
	{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0, 1, 101, -1, 0,
	    1, 1 },
	{ "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", 1, 1, 200, 9, 0, 1, 1 },
	{ "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, 1, 200, 1, 0, 0, 0 },
	{ "HTTP/1.1 404\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0, 1, 404, 0, 0, 0,
	    0 },
	BAD_RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
	BAD_RES("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
	BAD_RES("HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n"),
	BAD_RES("HTTP/1.1 20 OK\r\n\r\n"),
	BAD_RES("HTTP/1.1 600 OK\r\n\r\n"),
	BAD_RES("HTTP/2 200 OK\r\n\r\n"),
	BAD_RES("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
	BAD_RES("HTTP/1.1 200 O\x01K\r\n\r\n"),
	BAD_RES("HTTP/1.1 200OK\r\n\r\n"),
};

static void
test_responses(void **state)
{
	const struct res_case *c;
	struct ph_response res;
	const char *reason;
	size_t i, len;
	int rc;

	for (i = 0; i < NELEM(res_cases); i++) {
		c = &res_cases[i];
		len = strlen(c->head);
		rc = ph_parse_response(c->head, len, c->head_req, &res, &reason);
		if (!c->ok) {
			if (rc != -1)
				fail_msg("response case %zu parsed", i);
			assert_non_null(reason);
			ph_response_clear(&res);
			continue;
		}
		if (rc != (int)len)
			fail_msg("response case %zu: rc %d (%s)", i, rc, reason ? reason : "");
		assert_int_equal(res.status, c->status);
		assert_int_equal(res.content_length, c->cl);
		assert_int_equal(res.chunked, c->chunked);
		assert_int_equal(res.keep_alive, c->keep_alive);
		assert_int_equal(res.no_body, c->no_body);
		ph_response_clear(&res);
	}
	assert_int_equal(ph_parse_response("HTTP/1.1 200 OK\r\n", 17, 0, &res, &reason), 0);
	ph_response_clear(&res);
}

/* --- chunked bodies ------------------------------------------------------------------- */

struct body {
	uint8_t buf[4096];
	size_t len;
};

static void
body_emit(void *arg, const uint8_t *p, size_t n)
{
	struct body *b = arg;

	assert_true(b->len + n <= sizeof(b->buf));
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

struct chunk_case {
	const char *enc;
	const char *dec;	/* NULL: malformed */
};

static const struct chunk_case chunk_cases[] = {
	{ "5\r\nhello\r\n0\r\n\r\n", "hello" },
	{ "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world" },
	{ "A\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
	{ "a\r\n0123456789\r\n000\r\n\r\n", "0123456789" },
	{ "0005;name=value;x\r\nhello\r\n0;last\r\n\r\n", "hello" },
	{ "5 ;ext\r\nhello\r\n0\r\n\r\n", "hello" },
	{ "5\r\nhello\r\n0\r\nX-Trailer: t\r\nY: \r\n\r\n", "hello" },
	{ "0\r\n\r\n", "" },
	{ "0x10\r\n0123456789abcdef\r\n0\r\n\r\n", NULL },
	{ "-1\r\nx\r\n0\r\n\r\n", NULL },
	{ "+1\r\nx\r\n0\r\n\r\n", NULL },
	{ "ffffffffffffffffff\r\nx\r\n0\r\n\r\n", NULL },
	{ "00000000000000001\r\nx\r\n0\r\n\r\n", NULL },
	{ "5\r\nhelloX\r\n0\r\n\r\n", NULL },
	{ "5\r\nhello0\r\n\r\n", NULL },
	{ "5\nhello\r\n0\r\n\r\n", NULL },
	{ "5\r\nhello\n0\r\n\r\n", NULL },
	{ "\r\nhello\r\n0\r\n\r\n", NULL },
	{ "\r\n\r\n", NULL },
	{ ";x\r\n\r\n", NULL },
	{ "5 \r\nhello\r\n0\r\n\r\n", NULL },
	{ "5;a\x01\r\nhello\r\n0\r\n\r\n", NULL },
	{ "g\r\n", NULL },
	{ "5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n", NULL },
	{ "5\r\nhello\r\n0\r\n folded\r\n\r\n", NULL },
	{ "5\r\nhello\r\n0\r\nNoColon\r\n\r\n", NULL },
	{ "5\r\nhello\r\n0\r\nX: a\nb\r\n\r\n", NULL },
	{ "5\r\nhello\r\n0\r\n\r\r", NULL },
};

/* Feeds enc split at one offset (or every byte alone when split == 0 and bytewise). */
static int
chunk_run(const char *enc, size_t split, int bytewise, struct body *b, struct ph_chunked *st)
{
	size_t len = strlen(enc), off = 0, n;
	int rc;

	memset(st, 0, sizeof(*st));
	b->len = 0;
	while (off < len) {
		n = bytewise ? 1 : (off < split ? split - off : len - off);
		rc = ph_chunked_feed(st, (const uint8_t *)enc + off, n, body_emit, b);
		if (rc < 0)
			return -1;
		off += (size_t)rc;
		if (st->done)
			break;
		if ((size_t)rc != n)
			return -2;
	}
	return st->done ? (int)off : -3;
}

static void
test_chunked(void **state)
{
	const struct chunk_case *c;
	struct ph_chunked st;
	struct body b;
	size_t i, split, len;
	int rc;

	for (i = 0; i < NELEM(chunk_cases); i++) {
		c = &chunk_cases[i];
		len = strlen(c->enc);
		for (split = 0; split <= len; split++) {
			rc = chunk_run(c->enc, split, split == len, &b, &st);
			if (c->dec == NULL) {
				if (rc != -1)
					fail_msg("chunk case %zu split %zu: rc %d", i, split, rc);
				continue;
			}
			if (rc != (int)len)
				fail_msg("chunk case %zu split %zu: rc %d", i, split, rc);
			assert_int_equal(b.len, strlen(c->dec));
			assert_memory_equal(b.buf, c->dec, b.len);
		}
	}
}

/* The decoder stops at the end of the message: what follows is the next request. */
static void
test_chunked_pipelined(void **state)
{
	static const char enc[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
	struct ph_chunked st;
	struct body b;

	memset(&st, 0, sizeof(st));
	b.len = 0;
	assert_int_equal(ph_chunked_feed(&st, (const uint8_t *)enc, strlen(enc), body_emit, &b),
	    13);
	assert_int_equal(st.done, 1);
	assert_int_equal(b.len, 3);
	assert_int_equal(ph_chunked_feed(&st, (const uint8_t *)"x", 1, body_emit, &b), 0);
}

/* Bounded extensions and trailers. */
static void
test_chunked_bounds(void **state)
{
	struct ph_chunked st;
	struct body b;
	uint8_t *big;
	size_t n = 20000;

	big = malloc(n);
	assert_non_null(big);
	memset(&st, 0, sizeof(st));
	b.len = 0;
	big[0] = '1';
	big[1] = ';';
	memset(big + 2, 'e', n - 2);
	assert_int_equal(ph_chunked_feed(&st, big, n, body_emit, &b), -1);

	memset(&st, 0, sizeof(st));
	assert_int_equal(ph_chunked_feed(&st, (const uint8_t *)"0\r\nX: ", 6, body_emit, &b), 6);
	memset(big, 'v', n);
	assert_int_equal(ph_chunked_feed(&st, big, n, body_emit, &b), -1);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heads),
		cmocka_unit_test(test_heads_rewrite),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_tokens_limit),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_rewrite_framing_kept),
		cmocka_unit_test(test_rewrite_one_content_length),
		cmocka_unit_test(test_rewrite_upgrade),
		cmocka_unit_test(test_rewrite_refused),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_pipelined),
		cmocka_unit_test(test_chunked_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
