/*
 * proxy_http.c: credproxy's HTTP/1.1 message handling without I/O: strict request and
 * response head parsing (RFC 9112), token discovery, the request-head rewriter and the
 * chunked-body decoder. Whatever has more than one reading is refused, never guessed.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../src/err.h"
#include "../src/util.h"
#include "proxy_http.h"

#define PH_CL_DIGITS_MAX	18	/* < 10^18 fits an int64_t */
#define PH_CHUNK_DIGITS_MAX	16	/* 64 bits of hex */
#define PH_CHUNK_LINE_MAX	1024	/* a chunk-size line with its extensions */
#define PH_TRAILER_LINE_MAX	8192
#define PH_TRAILERS_MAX		16384	/* all trailer lines together */

/* Where a head is refused: the status for the sandbox and a short static reason. */
struct ph_fail {
	int status;
	const char *reason;
};

static int
ph_fail(struct ph_fail *f, int status, const char *reason)
{
	f->status = status;
	f->reason = reason;
	return -1;
}

/* RFC 9110 tchar. */
static int
ph_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A field-value byte: HTAB, SP, VCHAR or obs-text; never another CTL or DEL. */
static int
ph_is_vbyte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
ph_is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!ph_is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* 1 when the value is safe to put in a header line (no CR, LF, NUL or other CTL). */
static int
ph_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (!ph_is_vbyte((unsigned char)*s))
			return 0;
	return 1;
}

/*
 * Finds the end of the head ("\r\n\r\n") in data[0..len). Returns the head length, 0 when
 * incomplete, -1 (with f set) for bare LF, a lone CR, NUL or an oversized head.
 */
static long
ph_head_end(const char *data, size_t len, struct ph_fail *f, int toobig)
{
	size_t i, lim;

	lim = len < PH_HEAD_MAX ? len : PH_HEAD_MAX;
	for (i = 0; i < lim; i++) {
		if (data[i] == '\0')
			return ph_fail(f, 400, "NUL in message head");
		if (data[i] == '\n')
			return ph_fail(f, 400, "bare LF in message head");
		if (data[i] != '\r')
			continue;
		if (i + 1 >= len)
			return 0;
		if (data[i + 1] != '\n')
			return ph_fail(f, 400, "bare CR in message head");
		if (i + 3 < len && data[i + 2] == '\r' && data[i + 3] == '\n')
			return (long)(i + 4) <= PH_HEAD_MAX ? (long)(i + 4) :
			    ph_fail(f, toobig, "message head too large");
		if (i + 2 < len && data[i + 2] == '\r' && i + 3 >= len)
			return 0;
		i++;	/* skip the LF of this CRLF */
	}
	if (len >= PH_HEAD_MAX)
		return ph_fail(f, toobig, "message head too large");
	return 0;
}

/*
 * Splits the head copy into lines (CRLF replaced by NUL) and parses its header fields
 * into h/n. line points at the first header line.
 */
static int
ph_parse_fields(char *line, char *end, struct ph_header *h, size_t *n, struct ph_fail *f)
{
	char *eol, *colon, *v, *ve, *p;

	*n = 0;
	while (line < end) {
		eol = strstr(line, "\r\n");
		if (eol == NULL || eol >= end)
			return ph_fail(f, 400, "malformed header line");
		*eol = '\0';
		if (eol == line)
			return 0;	/* the empty line ends the head */
		if (line[0] == ' ' || line[0] == '\t')
			return ph_fail(f, 400, "obsolete line folding");
		colon = strchr(line, ':');
		if (colon == NULL)
			return ph_fail(f, 400, "header line without colon");
		if (colon == line)
			return ph_fail(f, 400, "empty header name");
		*colon = '\0';
		for (p = line; *p != '\0'; p++)
			if (!ph_is_tchar((unsigned char)*p))
				return ph_fail(f, 400, "invalid header name");
		v = colon + 1;
		for (p = v; *p != '\0'; p++)
			if (!ph_is_vbyte((unsigned char)*p))
				return ph_fail(f, 400, "control character in header value");
		while (*v == ' ' || *v == '\t')
			v++;
		ve = v + strlen(v);
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			*--ve = '\0';
		if (*n >= PH_HEADERS_MAX)
			return ph_fail(f, 431, "too many header fields");
		h[*n].name = line;
		h[*n].value = v;
		(*n)++;
		line = eol + 2;
	}
	return ph_fail(f, 400, "malformed head");
}

const char *
ph_header_get(const struct ph_header *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return h[i].value;
	return NULL;
}

static size_t
ph_header_count(const struct ph_header *h, size_t n, const char *name)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			c++;
	return c;
}

/* 1 when the comma-separated list in v holds the token tok (case-insensitive). */
static int
ph_list_has(const char *v, const char *tok)
{
	size_t tl = strlen(tok), l;
	const char *e;

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		e = v;
		while (*e != '\0' && *e != ',')
			e++;
		l = (size_t)(e - v);
		while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
			l--;
		if (l == tl && strncasecmp(v, tok, tl) == 0)
			return 1;
		v = e;
	}
	return 0;
}

/* 1 when any header called name lists tok. */
static int
ph_headers_list_has(const struct ph_header *h, size_t n, const char *name, const char *tok)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0 && ph_list_has(h[i].value, tok))
			return 1;
	return 0;
}

/*
 * Body framing shared by requests and responses: Content-Length (1*DIGIT, equal when
 * repeated, never a list) and Transfer-Encoding (exactly "chunked"), never both.
 */
static int
ph_framing(const struct ph_header *h, size_t n, int minor, int64_t *cl, int *chunked,
    struct ph_fail *f)
{
	size_t i, te = 0;
	const char *p;
	int64_t v;
	int ndig;

	*cl = -1;
	*chunked = 0;
	for (i = 0; i < n; i++) {
		if (strcasecmp(h[i].name, "Transfer-Encoding") == 0) {
			te++;
			continue;
		}
		if (strcasecmp(h[i].name, "Content-Length") != 0)
			continue;
		p = h[i].value;
		if (*p == '\0')
			return ph_fail(f, 400, "empty Content-Length");
		v = 0;
		for (ndig = 0; *p != '\0'; p++, ndig++) {
			if (*p < '0' || *p > '9')
				return ph_fail(f, 400, "invalid Content-Length");
			if (ndig >= PH_CL_DIGITS_MAX)
				return ph_fail(f, 400, "Content-Length too large");
			v = v * 10 + (*p - '0');
		}
		if (*cl >= 0 && *cl != v)
			return ph_fail(f, 400, "conflicting Content-Length");
		*cl = v;
	}
	if (te == 0)
		return 0;
	if (*cl >= 0)
		return ph_fail(f, 400, "both Content-Length and Transfer-Encoding");
	if (minor == 0)
		return ph_fail(f, 400, "Transfer-Encoding in HTTP/1.0");
	if (te > 1 || strcasecmp(ph_header_get(h, n, "Transfer-Encoding"), "chunked") != 0)
		return ph_fail(f, 501, "unsupported Transfer-Encoding");
	*chunked = 1;
	return 0;
}

/* A strict dotted quad: four decimal octets 0..255, no leading zeros. */
static int
ph_ipv4_ok(const char *s, size_t len)
{
	size_t i, dig = 0, parts = 1;
	int v = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (dig == 0 || parts == 4)
				return 0;
			parts++;
			dig = 0;
			v = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (dig == 1 && v == 0)
			return 0;	/* leading zero: octal to some resolvers */
		v = v * 10 + (s[i] - '0');
		if (++dig > 3 || v > 255)
			return 0;
	}
	return parts == 4 && dig > 0;
}

/*
 * Parses "host[:port]" (reg-name, IPv4 or [IPv6]) of length len into host (lower case,
 * IPv6 without brackets) and *port (0 when absent). need_port: the port is required.
 * Returns 0 or -1.
 */
static int
ph_parse_hostport(const char *s, size_t len, int need_port, char *host, size_t hostlen,
    int *port)
{
	const char *hs, *he, *ps = NULL, *last, *first, *p;
	char tmp[64];
	unsigned char a6[16];
	size_t hl, i;
	int v = 0, alldig;

	*port = 0;
	if (len == 0)
		return -1;
	if (s[0] == '[') {
		he = memchr(s, ']', len);
		if (he == NULL)
			return -1;
		hs = s + 1;
		hl = (size_t)(he - hs);
		if (hl == 0 || hl >= sizeof(tmp))
			return -1;
		memcpy(tmp, hs, hl);
		tmp[hl] = '\0';
		if (inet_pton(AF_INET6, tmp, a6) != 1)
			return -1;
		he++;
		if (he < s + len) {
			if (*he != ':')
				return -1;
			ps = he + 1;
		}
	} else {
		hs = s;
		he = memchr(s, ':', len);
		if (he != NULL)
			ps = he + 1;
		else
			he = s + len;
		hl = (size_t)(he - hs);
		if (hl == 0)
			return -1;
		for (i = 0; i < hl; i++) {
			unsigned char c = (unsigned char)hs[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
				return -1;
		}
		/* Empty labels: one trailing dot is the only one allowed. */
		if (hs[0] == '.' || memmem(hs, hl, "..", 2) != NULL)
			return -1;
		/*
		 * A name whose last label is numeric must be a plain dotted quad: resolvers
		 * read "0177.1" or "2130706433" as 127.0.0.1, which would dodge the proxy's
		 * address checks and the broker's host matching.
		 */
		last = hs + hl;
		if (last[-1] == '.')
			last--;
		first = last;
		while (first > hs && first[-1] != '.')
			first--;
		alldig = first < last;
		if (last - first > 1 && first[0] == '0' && (first[1] == 'x' || first[1] == 'X'))
			alldig = 1;
		else
			for (p = first; p < last; p++)
				if (*p < '0' || *p > '9')
					alldig = 0;
		if (alldig && !ph_ipv4_ok(hs, hl))
			return -1;
	}
	if (ps != NULL) {
		if (ps >= s + len)
			return -1;
		for (i = 0; ps + i < s + len; i++) {
			if (ps[i] < '0' || ps[i] > '9' || i >= 5)
				return -1;
			v = v * 10 + (ps[i] - '0');
		}
		if (v < 1 || v > 65535)
			return -1;
		*port = v;
	} else if (need_port)
		return -1;
	if (hl >= hostlen)
		return -1;
	for (i = 0; i < hl; i++) {
		char c = hs[i];
		host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	host[hl] = '\0';
	return 0;
}

/* Parses "HTTP/1.x"; returns the minor version, -1 for a malformed one, -2 for 505. */
static int
ph_version(const char *v, size_t len)
{
	if (len != 8 || strncmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return -1;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return -2;
	return v[7] - '0';
}

/*
 * The request target: origin-form, absolute-form (http only) or authority-form (CONNECT
 * only). extra: room at the end of the head copy for a path built for absolute-form.
 */
static int
ph_target(struct ph_request *req, char *t, size_t tlen, char *extra, struct ph_fail *f)
{
	char *auth, *rest;
	size_t alen;
	int connect = strcmp(req->method, "CONNECT") == 0;

	if (memchr(t, '#', tlen) != NULL)
		return ph_fail(f, 400, "fragment in request target");
	if (connect) {
		req->form = PH_FORM_AUTHORITY;
		if (ph_parse_hostport(t, tlen, 1, req->host, sizeof(req->host),
		    &req->port) != 0)
			return ph_fail(f, 400, "CONNECT needs host:port");
		extra[0] = '/';
		extra[1] = '\0';
		req->path = extra;
		return 0;
	}
	if (t[0] == '/') {
		req->form = PH_FORM_ORIGIN;
		req->path = t;
		return 0;
	}
	if (tlen > 8 && strncasecmp(t, "https://", 8) == 0)
		return ph_fail(f, 400, "https in absolute-form: use CONNECT");
	if (tlen <= 7 || strncasecmp(t, "http://", 7) != 0)
		return ph_fail(f, 400, "unsupported request target");
	req->form = PH_FORM_ABSOLUTE;
	memcpy(req->scheme, "http", 5);
	auth = t + 7;
	rest = auth;
	while (*rest != '\0' && *rest != '/' && *rest != '?')
		rest++;
	alen = (size_t)(rest - auth);
	if (memchr(auth, '@', alen) != NULL)
		return ph_fail(f, 400, "userinfo in request target");
	if (ph_parse_hostport(auth, alen, 0, req->host, sizeof(req->host), &req->port) != 0)
		return ph_fail(f, 400, "invalid host in request target");
	/* The path is rebuilt after the head so that "http://h?q" becomes "/?q". */
	if (*rest == '/') {
		memmove(extra, rest, strlen(rest) + 1);
	} else {
		extra[0] = '/';
		memmove(extra + 1, rest, strlen(rest) + 1);
	}
	req->path = extra;
	return 0;
}

void
ph_request_clear(struct ph_request *req)
{
	if (req == NULL)
		return;
	if (req->buf != NULL) {
		explicit_bzero(req->buf, req->buflen);
		free(req->buf);
	}
	explicit_bzero(req, sizeof(*req));
	req->content_length = -1;
}

int
ph_parse_request(const char *data, size_t len, struct ph_request *req, int *status,
    const char **reason)
{
	struct ph_fail f = { 400, "bad request" };
	char *line, *sp1, *sp2, *eol, *extra, *hostv;
	long hl;
	size_t tlen, ml;
	int minor, hport, rc = -1;
	char hbuf[256];

	memset(req, 0, sizeof(*req));
	req->content_length = -1;
	*status = 0;
	*reason = NULL;
	hl = ph_head_end(data, len, &f, 431);
	if (hl <= 0) {
		if (hl == 0)
			return 0;
		goto out;
	}
	/* The head, a NUL, then room for a path rebuilt from an absolute-form target. */
	req->buflen = 2 * (size_t)hl + 4;
	req->buf = malloc(req->buflen);
	if (req->buf == NULL) {
		req->buflen = 0;
		ph_fail(&f, 500, "out of memory");
		goto out;
	}
	memcpy(req->buf, data, (size_t)hl);
	req->buf[hl] = '\0';
	extra = req->buf + hl + 1;
	line = req->buf;
	eol = strstr(line, "\r\n");
	*eol = '\0';
	sp1 = strchr(line, ' ');
	if (sp1 == NULL) {
		ph_fail(&f, 400, "malformed request line");
		goto out;
	}
	*sp1 = '\0';
	ml = (size_t)(sp1 - line);
	if (!ph_is_token(line) || ml >= sizeof(req->method)) {
		ph_fail(&f, 400, "invalid method");
		goto out;
	}
	memcpy(req->method, line, ml + 1);
	sp2 = strchr(sp1 + 1, ' ');
	if (sp2 == NULL || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ') != NULL) {
		ph_fail(&f, 400, "malformed request line");
		goto out;
	}
	*sp2 = '\0';
	tlen = (size_t)(sp2 - (sp1 + 1));
	for (ml = 0; ml < tlen; ml++) {
		unsigned char c = (unsigned char)sp1[1 + ml];
		if (c <= 0x20 || c >= 0x7f) {
			ph_fail(&f, 400, "invalid request target");
			goto out;
		}
	}
	minor = ph_version(sp2 + 1, strlen(sp2 + 1));
	if (minor < 0) {
		if (minor == -2)
			ph_fail(&f, 505, "HTTP version not supported");
		else
			ph_fail(&f, 400, "malformed request line");
		goto out;
	}
	req->minor = minor;
	if (ph_parse_fields(eol + 2, req->buf + hl, req->headers, &req->nheaders, &f) != 0)
		goto out;
	if (ph_target(req, sp1 + 1, tlen, extra, &f) != 0)
		goto out;
	if (ph_framing(req->headers, req->nheaders, minor, &req->content_length,
	    &req->chunked, &f) != 0)
		goto out;
	switch (ph_header_count(req->headers, req->nheaders, "Host")) {
	case 0:
		if (minor == 1) {
			ph_fail(&f, 400, "missing Host header");
			goto out;
		}
		break;
	case 1:
		hostv = (char *)ph_header_get(req->headers, req->nheaders, "Host");
		if (ph_parse_hostport(hostv, strlen(hostv), 0, hbuf, sizeof(hbuf),
		    &hport) != 0) {
			ph_fail(&f, 400, "invalid Host header");
			goto out;
		}
		break;
	default:
		ph_fail(&f, 400, "more than one Host header");
		goto out;
	}
	if (minor == 1)
		req->keep_alive = !ph_headers_list_has(req->headers, req->nheaders,
		    "Connection", "close");
	else
		req->keep_alive = ph_headers_list_has(req->headers, req->nheaders,
		    "Connection", "keep-alive") && !ph_headers_list_has(req->headers,
		    req->nheaders, "Connection", "close");
	if (ph_headers_list_has(req->headers, req->nheaders, "Connection", "upgrade") &&
	    ph_header_count(req->headers, req->nheaders, "Upgrade") == 1 &&
	    strcasecmp(ph_header_get(req->headers, req->nheaders, "Upgrade"),
	    "websocket") == 0)
		req->upgrade = 1;
	if (ph_headers_list_has(req->headers, req->nheaders, "Expect", "100-continue"))
		req->expect_continue = 1;
	rc = (int)hl;
out:
	if (rc < 0) {
		ph_request_clear(req);
		*status = f.status;
		*reason = f.reason;
	}
	return rc;
}

void
ph_response_clear(struct ph_response *res)
{
	if (res == NULL)
		return;
	if (res->buf != NULL) {
		explicit_bzero(res->buf, res->buflen);
		free(res->buf);
	}
	explicit_bzero(res, sizeof(*res));
	res->content_length = -1;
}

int
ph_parse_response(const char *data, size_t len, int head_request, struct ph_response *res,
    const char **reason)
{
	struct ph_fail f = { 502, "bad response from upstream" };
	char *line, *eol, *p;
	long hl;
	int minor, rc = -1;

	memset(res, 0, sizeof(*res));
	res->content_length = -1;
	*reason = NULL;
	hl = ph_head_end(data, len, &f, 502);
	if (hl <= 0) {
		if (hl == 0)
			return 0;
		goto out;
	}
	res->buflen = (size_t)hl + 1;
	res->buf = malloc(res->buflen);
	if (res->buf == NULL) {
		res->buflen = 0;
		goto out;
	}
	memcpy(res->buf, data, (size_t)hl);
	res->buf[hl] = '\0';
	line = res->buf;
	eol = strstr(line, "\r\n");
	*eol = '\0';
	minor = ph_version(line, strlen(line) < 8 ? strlen(line) : 8);
	if (minor < 0) {
		ph_fail(&f, 502, "upstream HTTP version not supported");
		goto out;
	}
	res->minor = minor;
	p = line + 8;
	if (p[0] != ' ' || p[1] < '1' || p[1] > '5' || p[2] < '0' || p[2] > '9' ||
	    p[3] < '0' || p[3] > '9' || (p[4] != ' ' && p[4] != '\0')) {
		ph_fail(&f, 502, "malformed upstream status line");
		goto out;
	}
	res->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
	if (p[4] == ' ') {
		for (p += 5; *p != '\0'; p++) {
			if (!ph_is_vbyte((unsigned char)*p)) {
				ph_fail(&f, 502, "malformed upstream status line");
				goto out;
			}
		}
	}
	if (ph_parse_fields(eol + 2, res->buf + hl, res->headers, &res->nheaders, &f) != 0) {
		f.reason = "malformed upstream response head";
		goto out;
	}
	if (ph_framing(res->headers, res->nheaders, minor, &res->content_length,
	    &res->chunked, &f) != 0) {
		f.reason = "ambiguous upstream response framing";
		goto out;
	}
	res->no_body = head_request || res->status < 200 || res->status == 204 ||
	    res->status == 304;
	if (minor == 1)
		res->keep_alive = !ph_headers_list_has(res->headers, res->nheaders,
		    "Connection", "close");
	else
		res->keep_alive = ph_headers_list_has(res->headers, res->nheaders,
		    "Connection", "keep-alive") && !ph_headers_list_has(res->headers,
		    res->nheaders, "Connection", "close");
	/* Without framing the body runs to the end of the connection. */
	if (!res->no_body && !res->chunked && res->content_length < 0)
		res->keep_alive = 0;
	rc = (int)hl;
out:
	if (rc < 0) {
		ph_response_clear(res);
		*reason = f.reason;
	}
	return rc;
}

/* --- tokens ------------------------------------------------------------------------ */

static int
ph_is_jwtchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '.' || c == '-';
}

static int
ph_b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/*
 * Decodes base64 (standard or URL alphabet, padding optional) of s[0..len) into a
 * malloc'd buffer. Lenient on purpose: what a server might accept as Basic credentials
 * must be searched for tokens. Returns 0 or CB_ERR_INVAL / CB_ERR_NOMEM.
 */
static int
ph_unb64(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
	uint8_t *buf;
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;

	*out = NULL;
	*outlen = 0;
	while (len > 0 && s[len - 1] == '=')
		len--;
	buf = malloc(len * 3 / 4 + 1);
	if (buf == NULL)
		return CB_ERR_NOMEM;
	for (i = 0; i < len; i++) {
		v = ph_b64val((unsigned char)s[i]);
		if (v < 0) {
			explicit_bzero(buf, len * 3 / 4 + 1);
			free(buf);
			return CB_ERR_INVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

/* Adds the distinct tokens found in p[0..len) to tokens/n. */
static int
ph_scan_tokens(const uint8_t *p, size_t len, char **tokens, size_t *n)
{
	size_t i, j, k, tl;
	char *t;

	for (i = 0; i + 4 < len; i++) {
		if (memcmp(p + i, "cbt_", 4) != 0)
			continue;
		for (j = i + 4; j < len && ph_is_jwtchar(p[j]); j++)
			;
		if (j == i + 4)
			continue;
		tl = j - i;
		for (k = 0; k < *n; k++)
			if (strlen(tokens[k]) == tl && memcmp(tokens[k], p + i, tl) == 0)
				break;
		if (k == *n) {
			if (*n >= PH_TOKENS_MAX)
				return CB_ERR_LIMIT;
			t = malloc(tl + 1);
			if (t == NULL)
				return CB_ERR_NOMEM;
			memcpy(t, p + i, tl);
			t[tl] = '\0';
			tokens[(*n)++] = t;
		}
		i = j - 1;
	}
	return 0;
}

int
ph_find_tokens(const struct ph_request *req, char **tokens, size_t *n)
{
	const char *v, *b;
	uint8_t *dec = NULL;
	size_t i, declen = 0, bl;
	int rc = 0;

	*n = 0;
	for (i = 0; i < PH_TOKENS_MAX; i++)
		tokens[i] = NULL;
	for (i = 0; i < req->nheaders && rc == 0; i++) {
		v = req->headers[i].value;
		rc = ph_scan_tokens((const uint8_t *)v, strlen(v), tokens, n);
		if (rc != 0 || strncasecmp(v, "Basic", 5) != 0 || (v[5] != ' ' && v[5] != '\t'))
			continue;
		for (b = v + 5; *b == ' ' || *b == '\t'; b++)
			;
		bl = strlen(b);
		if (ph_unb64(b, bl, &dec, &declen) != 0)
			continue;
		rc = ph_scan_tokens(dec, declen, tokens, n);
		explicit_bzero(dec, declen);
		free(dec);
		dec = NULL;
	}
	if (rc != 0) {
		ph_tokens_free(tokens, *n);
		*n = 0;
	}
	return rc;
}

void
ph_tokens_free(char **tokens, size_t n)
{
	size_t i;

	if (tokens == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (tokens[i] != NULL) {
			explicit_bzero(tokens[i], strlen(tokens[i]));
			free(tokens[i]);
			tokens[i] = NULL;
		}
	}
}

/* --- rewriting ----------------------------------------------------------------------- */

/* Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own, never forwarded. */
static const char *const ph_hop[] = {
	"Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE",
	"Trailer", "Upgrade", "Proxy-Authenticate",
};

/* Headers a set[] entry may not name: framing and routing stay the proxy's. */
static const char *const ph_reserved[] = {
	"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
	"Proxy-Connection", "TE", "Trailer", "Upgrade",
};

static int
ph_name_in(const char *name, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(name, list[i]) == 0)
			return 1;
	return 0;
}

struct ph_out {
	char *buf;
	size_t len;
	size_t cap;
};

static int
ph_out_add(struct ph_out *o, const char *a, const char *b, const char *c, const char *d)
{
	const char *parts[4] = { a, b, c, d };
	size_t i, l;

	for (i = 0; i < 4; i++) {
		if (parts[i] == NULL)
			continue;
		l = strlen(parts[i]);
		if (o->len + l >= o->cap)
			return CB_ERR_LIMIT;
		memcpy(o->buf + o->len, parts[i], l);
		o->len += l;
	}
	o->buf[o->len] = '\0';
	return 0;
}

/* 1 when the header is listed in any Connection header of req. */
static int
ph_connection_listed(const struct ph_request *req, const char *name)
{
	/* Framing headers stay whatever Connection says: dropping them would smuggle. */
	if (strcasecmp(name, "Content-Length") == 0 ||
	    strcasecmp(name, "Transfer-Encoding") == 0)
		return 0;
	return ph_headers_list_has(req->headers, req->nheaders, "Connection", name);
}

int
ph_rewrite_request(const struct ph_request *req, const struct ph_set *set, size_t nset,
    const char *host_header, char **out, size_t *outlen)
{
	struct ph_out o = { NULL, 0, 0 };
	char hbuf[256], clbuf[24];
	const char *name, *value;
	size_t i, j, count;
	int hport, rc, cl_sent = 0;

	*out = NULL;
	*outlen = 0;
	if (req->form == PH_FORM_AUTHORITY || host_header == NULL || req->path == NULL ||
	    !ph_value_ok(host_header) || ph_parse_hostport(host_header,
	    strlen(host_header), 0, hbuf, sizeof(hbuf), &hport) != 0)
		return CB_ERR_INVAL;
	for (i = 0; i < nset; i++) {
		if (set[i].name == NULL || set[i].value == NULL || !ph_is_token(set[i].name) ||
		    !ph_value_ok(set[i].value) || ph_name_in(set[i].name, ph_reserved,
		    UTIL_ARRAY_LEN(ph_reserved)))
			return CB_ERR_INVAL;
		for (j = 0; j < i; j++)
			if (strcasecmp(set[i].name, set[j].name) == 0)
				return CB_ERR_INVAL;
	}
	o.cap = PH_HEAD_MAX + 1;
	o.buf = malloc(o.cap);
	if (o.buf == NULL)
		return CB_ERR_NOMEM;
	count = 1;
	rc = ph_out_add(&o, req->method, " ", req->path, " HTTP/1.1\r\n");
	if (rc == 0)
		rc = ph_out_add(&o, "Host: ", host_header, "\r\n", NULL);
	for (i = 0; i < req->nheaders && rc == 0; i++) {
		name = req->headers[i].name;
		if (strcasecmp(name, "Host") == 0)
			continue;
		if (req->upgrade && strcasecmp(name, "Upgrade") == 0)
			;	/* kept for the WebSocket handshake */
		else if (ph_name_in(name, ph_hop, UTIL_ARRAY_LEN(ph_hop)) ||
		    ph_connection_listed(req, name))
			continue;
		for (j = 0; j < nset; j++)
			if (strcasecmp(name, set[j].name) == 0)
				break;
		if (j < nset)
			continue;
		value = req->headers[i].value;
		if (strcasecmp(name, "Content-Length") == 0) {
			/*
			 * Repeated equal lengths ("5", "05") were accepted as one: the upstream
			 * gets that one, as a plain number, so no stricter parser refuses it.
			 */
			if (cl_sent++ > 0)
				continue;
			snprintf(clbuf, sizeof(clbuf), "%lld", (long long)req->content_length);
			value = clbuf;
		}
		if (++count > PH_HEADERS_MAX) {
			rc = CB_ERR_LIMIT;
			break;
		}
		rc = ph_out_add(&o, name, ": ", value, "\r\n");
	}
	if (rc == 0 && req->upgrade) {
		count++;
		rc = ph_out_add(&o, "Connection: upgrade\r\n", NULL, NULL, NULL);
	}
	for (i = 0; i < nset && rc == 0; i++) {
		count++;
		rc = ph_out_add(&o, set[i].name, ": ", set[i].value, "\r\n");
	}
	if (rc == 0 && count > PH_HEADERS_MAX)
		rc = CB_ERR_LIMIT;
	if (rc == 0)
		rc = ph_out_add(&o, "\r\n", NULL, NULL, NULL);
	if (rc == 0 && o.len > PH_HEAD_MAX)
		rc = CB_ERR_LIMIT;
	if (rc != 0) {
		explicit_bzero(o.buf, o.cap);
		free(o.buf);
		return rc;
	}
	*out = o.buf;	/* transferred */
	*outlen = o.len;
	return 0;
}

/* --- chunked bodies ------------------------------------------------------------------ */

enum {
	CH_SIZE = 0,	/* hex digits of a chunk size */
	CH_SIZE_WS,	/* blanks after the size, before ';' */
	CH_EXT,		/* chunk extensions, up to CR */
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,	/* start of a trailer line (or the final CRLF) */
	CH_TR_NAME,
	CH_TR_VALUE,
	CH_TR_LF,
	CH_END_LF,
	CH_DONE,
};

static int
ph_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
ph_chunked_feed(struct ph_chunked *st, const uint8_t *in, size_t len,
    void (*emit)(void *arg, const uint8_t *p, size_t n), void *arg)
{
	size_t i = 0, take;
	uint8_t c;
	int h;

	if (st->done || st->state == CH_DONE)
		return 0;
	if (len > INT32_MAX)
		len = INT32_MAX;
	while (i < len) {
		c = in[i];
		switch (st->state) {
		case CH_SIZE:
			h = ph_hexval(c);
			if (h >= 0) {
				if (++st->linelen > PH_CHUNK_DIGITS_MAX)
					return -1;
				st->remaining = st->remaining << 4 | (uint64_t)h;
				break;
			}
			if (st->linelen == 0)
				return -1;
			if (c == ';')
				st->state = CH_EXT;
			else if (c == ' ' || c == '\t')
				st->state = CH_SIZE_WS;
			else if (c == '\r')
				st->state = CH_SIZE_LF;
			else
				return -1;
			break;
		case CH_SIZE_WS:
			if (++st->linelen > PH_CHUNK_LINE_MAX)
				return -1;
			if (c == ';')
				st->state = CH_EXT;
			else if (c != ' ' && c != '\t')
				return -1;
			break;
		case CH_EXT:
			if (++st->linelen > PH_CHUNK_LINE_MAX)
				return -1;
			if (c == '\r')
				st->state = CH_SIZE_LF;
			else if (!ph_is_vbyte(c))
				return -1;
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				return -1;
			st->linelen = 0;
			if (st->remaining == 0)
				st->state = CH_TRAILER;
			else
				st->state = CH_DATA;
			break;
		case CH_DATA:
			take = len - i;
			if ((uint64_t)take > st->remaining)
				take = (size_t)st->remaining;
			if (emit != NULL)
				emit(arg, in + i, take);
			st->remaining -= take;
			i += take;
			if (st->remaining == 0)
				st->state = CH_DATA_CR;
			continue;
		case CH_DATA_CR:
			if (c != '\r')
				return -1;
			st->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				return -1;
			st->state = CH_SIZE;
			st->linelen = 0;
			st->remaining = 0;
			break;
		case CH_TRAILER:
			/* remaining counts all trailer bytes from here on. */
			if (c == '\r') {
				st->state = CH_END_LF;
				break;
			}
			if (!ph_is_tchar(c))
				return -1;
			st->state = CH_TR_NAME;
			st->linelen = 1;
			if (++st->remaining > PH_TRAILERS_MAX)
				return -1;
			break;
		case CH_TR_NAME:
		case CH_TR_VALUE:
			if (++st->linelen > PH_TRAILER_LINE_MAX ||
			    ++st->remaining > PH_TRAILERS_MAX)
				return -1;
			if (st->state == CH_TR_NAME) {
				if (c == ':')
					st->state = CH_TR_VALUE;
				else if (!ph_is_tchar(c))
					return -1;
			} else if (c == '\r')
				st->state = CH_TR_LF;
			else if (!ph_is_vbyte(c))
				return -1;
			break;
		case CH_TR_LF:
			if (c != '\n')
				return -1;
			st->state = CH_TRAILER;
			st->linelen = 0;
			break;
		case CH_END_LF:
			if (c != '\n')
				return -1;
			st->state = CH_DONE;
			st->done = 1;
			return (int)(i + 1);
		default:
			return -1;
		}
		i++;
	}
	return (int)i;
}
