/*
 * cbclient.c: libcredbroker, the C client of the broker API (credbroker.h).
 *
 * One libcurl easy handle per cbc_t, reused so the TLS connection stays alive (and a
 * second, connect-only one for resolves: see cbc_resolve_request).
 * Mutual TLS only, TLS 1.2 or newer, peer and host verified, https only, no proxy.
 * Answers land in our own bounded buffer (CBC_ANSWER_MAX) that is wiped before it is
 * freed, because a resolve answer holds a real credential; the same goes for request
 * bodies that hold a secret value. Answers are parsed strictly with jansson.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "credbroker.h"
#include "cbclient_int.h"

#define CBC_TIMEOUT_DEFAULT_MS	10000L
#define CBC_ERRMSG_MAX		512
#define CBC_URL_MAX		2048
#define CBC_ID_MAX		256	/* names and IDs put in a URL path */

struct cbc {
	CURL *curl;
	CURL *rcurl;		/* resolves: CONNECT_ONLY, HTTP written and read here */
	int rfresh;		/* rcurl's connection has carried no request yet */
	struct cbc_rx {		/* the resolve exchange on rcurl (blocking or not) */
		char *req;	/* head and body: holds the token, wiped */
		size_t reqlen;
		size_t off;	/* bytes of req sent */
		struct cbc_buf ans;
		size_t hlen;	/* the answer head's length, 0 until it is complete */
		long long clen;
		long status;
		int got;	/* an answer byte arrived */
		int keep;	/* the broker keeps the connection */
		int retry;	/* failed on a kept-alive connection before any answer byte */
		int done;	/* the whole answer is in */
	} rx;
	struct curl_slist *hdrs;
	char *url;		/* without a trailing slash */
	char *cert;
	char *key;
	char *cacert;
	long timeout_ms;
	int http_status;
	char errcode[CBC_ERRCODE_MAX];
	char errmsg[CBC_ERRMSG_MAX];
	char curlerr[CURL_ERROR_SIZE];
};

static pthread_once_t cbc_once = PTHREAD_ONCE_INIT;
static int cbc_global_rc;

static void
cbc_set_why(char *why, size_t whylen, const char *msg)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", msg);
}

static void *
cbc_json_malloc(size_t n)
{
	return malloc(n);
}

/* jansson's own copies of parsed strings may hold a credential: wipe them on free. */
static void
cbc_json_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void
cbc_global_init(void)
{
	json_malloc_t m;
	json_free_t f;

	cbc_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : CBC_E_NOMEM;
	/* Only when the application kept jansson's defaults: never replace its own. */
	json_get_alloc_funcs(&m, &f);
	if (m == malloc && f == free)
		json_set_alloc_funcs(cbc_json_malloc, cbc_json_free);
}

const char *
cbc_strerror(int err)
{
	switch (err) {
	case CBC_OK:
		return "success";
	case CBC_E_REFUSED:
		return "refused by the broker";
	case CBC_E_USAGE:
		return "invalid argument";
	case CBC_E_CONNECT:
		return "connection or TLS failure";
	case CBC_E_PROTOCOL:
		return "malformed answer from the broker";
	case CBC_E_SERVER:
		return "broker error";
	case CBC_E_NOMEM:
		return "out of memory";
	case CBC_E_IO:
		return "local file error";
	default:
		return "unknown error";
	}
}

static void cbc_err(cbc_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
cbc_err(cbc_t *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
}

const char *
cbc_errmsg(const cbc_t *c)
{
	return c == NULL ? "no client" : c->errmsg;
}

int
cbc_http_status(const cbc_t *c)
{
	return c == NULL ? 0 : c->http_status;
}

const char *
cbc_error_code(const cbc_t *c)
{
	return c == NULL ? "" : c->errcode;
}

/* ---- JSON helpers ------------------------------------------------------------ */

static json_t *
cbc_load(const char *buf, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j;

	if (buf == NULL || len == 0) {
		cbc_set_why(why, whylen, "empty answer");
		return NULL;
	}
	if (len > CBC_ANSWER_MAX) {
		cbc_set_why(why, whylen, "answer larger than 1 MiB");
		return NULL;
	}
	/* Reject duplicate keys and anything after the value; NUL in strings is refused by default. */
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		/* jerr.text describes the syntax, never quotes the input. */
		if (why != NULL && whylen > 0)
			snprintf(why, whylen, "invalid JSON at byte %d: %s", jerr.position, jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		cbc_set_why(why, whylen, "answer is not a JSON object");
		return NULL;
	}
	return j;
}

/*
 * A member that must be a non-empty string of at most max bytes without control bytes;
 * allow_space: a header value, where SP and HTAB are allowed (RFC 9110 field-value).
 */
static const char *
cbc_get_str(json_t *o, const char *key, size_t max, int allow_space)
{
	json_t *v;
	const char *s;
	size_t n, i;

	v = json_object_get(o, key);
	if (!json_is_string(v))
		return NULL;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > max || strlen(s) != n)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch < 0x20 && !(allow_space && ch == '\t')) || ch == 0x7f ||
		    (!allow_space && ch == ' '))
			return NULL;
	}
	return s;
}

static int
cbc_get_int(json_t *o, const char *key, long long min, long long max, long long *out)
{
	json_t *v;
	json_int_t n;

	v = json_object_get(o, key);
	if (!json_is_integer(v))
		return -1;
	n = json_integer_value(v);
	if (n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static char *
cbc_strdup_n(const char *s, size_t n)
{
	char *p;

	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
cbc_wipe_str(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* A header name is an HTTP token (RFC 9110). */
static int
cbc_is_token(const char *s)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || strchr(extra, ch) != NULL))
			return 0;
	}
	return 1;
}

/* ---- request bodies ---------------------------------------------------------- */

static int
cbc_dump(json_t *j, char **out, size_t *outlen)
{
	char *s;

	if (j == NULL)
		return CBC_E_NOMEM;
	s = json_dumps(j, JSON_COMPACT);
	if (s == NULL)
		return CBC_E_NOMEM;
	*out = s;
	if (outlen != NULL)
		*outlen = strlen(s);
	return 0;
}

/* Adds key: string, or fails with CBC_E_USAGE on a string that is not valid UTF-8. */
static int
cbc_set_str(json_t *o, const char *key, const char *val)
{
	json_t *v;

	v = json_string(val);
	if (v == NULL)
		return CBC_E_USAGE;
	if (json_object_set_new(o, key, v) != 0)
		return CBC_E_NOMEM;
	return 0;
}

static int
cbc_set_int(json_t *o, const char *key, long long n)
{
	return json_object_set_new(o, key, json_integer(n)) == 0 ? 0 : CBC_E_NOMEM;
}

static int
cbc_build_binding(const struct cbc_binding *b, json_t **out)
{
	json_t *o, *m;
	size_t i;
	int rc;

	*out = NULL;
	if (b->secret == NULL || *b->secret == '\0' || b->host == NULL || *b->host == '\0' ||
	    b->port < 0 || b->port > 65535)
		return CBC_E_USAGE;
	if ((o = json_object()) == NULL)
		return CBC_E_NOMEM;
	if ((rc = cbc_set_str(o, "secret", b->secret)) != 0 ||
	    (rc = cbc_set_str(o, "host", b->host)) != 0 ||
	    (rc = cbc_set_int(o, "port", b->port == 0 ? 443 : b->port)) != 0)
		goto out;
	if (b->methods != NULL) {
		if ((m = json_array()) == NULL || json_object_set_new(o, "methods", m) != 0) {
			rc = CBC_E_NOMEM;
			goto out;
		}
		/* Bounded: the broker accepts far fewer; a missing terminator stops here. */
		for (i = 0; b->methods[i] != NULL; i++) {
			if (i >= 64 || *b->methods[i] == '\0') {
				rc = CBC_E_USAGE;
				goto out;
			}
			if (json_array_append_new(m, json_string(b->methods[i])) != 0) {
				rc = CBC_E_USAGE;
				goto out;
			}
		}
	}
	if (b->path_prefix != NULL && (rc = cbc_set_str(o, "path_prefix", b->path_prefix)) != 0)
		goto out;
	if (b->header != NULL && (rc = cbc_set_str(o, "header", b->header)) != 0)
		goto out;
	if (b->template_ != NULL && (rc = cbc_set_str(o, "template", b->template_)) != 0)
		goto out;
	if (b->inject && json_object_set_new(o, "inject", json_true()) != 0) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	*out = o;	/* transferred */
	o = NULL;
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int
cbc_build_grant(const struct cbc_grant_req *req, char **out)
{
	json_t *o = NULL, *arr, *b;
	size_t i;
	int rc;

	*out = NULL;
	if (req == NULL || req->sandbox_id == NULL || *req->sandbox_id == '\0' ||
	    req->ttl_s <= 0 || req->max_uses < 0 || req->bindings == NULL ||
	    req->nbindings == 0 || req->nbindings > CBC_BINDINGS_MAX)
		return CBC_E_USAGE;
	if ((o = json_object()) == NULL)
		return CBC_E_NOMEM;
	if ((rc = cbc_set_str(o, "sandbox_id", req->sandbox_id)) != 0 ||
	    (rc = cbc_set_int(o, "ttl_s", req->ttl_s)) != 0)
		goto out;
	if (json_object_set_new(o, "max_uses", req->max_uses == 0 ? json_null() :
	    json_integer(req->max_uses)) != 0) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	if ((arr = json_array()) == NULL || json_object_set_new(o, "bindings", arr) != 0) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	for (i = 0; i < req->nbindings; i++) {
		if ((rc = cbc_build_binding(&req->bindings[i], &b)) != 0)
			goto out;
		if (json_array_append_new(arr, b) != 0) {
			rc = CBC_E_NOMEM;
			goto out;
		}
	}
	rc = cbc_dump(o, out, NULL);
out:
	json_decref(o);
	return rc;
}

/*
 * 1 when s is valid UTF-8 as jansson's json_string() accepts it (no overlong forms, no
 * surrogates, nothing above U+10FFFF): the resolve body is written by hand (below) and
 * must refuse exactly what the jansson-built bodies refuse.
 */
static int
cbc_utf8_ok(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	unsigned int cp;
	size_t n, i;

	while (*s != '\0') {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s < 0xC2 || *s > 0xF4)
			return 0;
		n = *s < 0xE0 ? 1 : *s < 0xF0 ? 2 : 3;
		cp = *s & (0x3F >> n);
		for (i = 1; i <= n; i++) {
			if ((s[i] & 0xC0) != 0x80)
				return 0;	/* also stops at the NUL */
			cp = (cp << 6) | (s[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		s += n + 1;
	}
	return 1;
}

/* Appends "key":"escaped value", as json_dumps(JSON_COMPACT) writes it; returns the end. */
static char *
cbc_put_str(char *p, const char *key, const char *val)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *v = (const unsigned char *)val;

	*p++ = '"';
	while (*key != '\0')
		*p++ = *key++;
	*p++ = '"';
	*p++ = ':';
	*p++ = '"';
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\') {
			*p++ = '\\';
			*p++ = (char)*v;
		} else if (*v >= 0x20)
			*p++ = (char)*v;
		else {
			*p++ = '\\';
			switch (*v) {
			case '\b': *p++ = 'b'; break;
			case '\f': *p++ = 'f'; break;
			case '\n': *p++ = 'n'; break;
			case '\r': *p++ = 'r'; break;
			case '\t': *p++ = 't'; break;
			default:
				*p++ = 'u';
				*p++ = '0';
				*p++ = '0';
				*p++ = hex[*v >> 4];
				*p++ = hex[*v & 0xF];
				break;
			}
		}
	}
	*p++ = '"';
	return p;
}

/*
 * The resolve body is built on every proxied request: written directly (byte for byte
 * what json_dumps(JSON_COMPACT) makes of the same object, tests/test_client.c) instead
 * of through a jansson object, which cost ~45 k instructions per resolve.
 */
int
cbc_build_resolve(const char *token, const char *sandbox_id, const char *host, int port,
    const char *method, const char *path, char **out, size_t *len)
{
	const char *strs[5];
	char *buf, *p;
	size_t cap, i, l;
	int n;

	*out = NULL;
	*len = 0;
	if (sandbox_id == NULL || *sandbox_id == '\0' || host == NULL || *host == '\0' ||
	    port <= 0 || port > 65535 || method == NULL || *method == '\0' || path == NULL ||
	    *path == '\0' || (token != NULL && *token == '\0'))
		return CBC_E_USAGE;
	strs[0] = token != NULL ? token : "";
	strs[1] = sandbox_id;
	strs[2] = host;
	strs[3] = method;
	strs[4] = path;
	cap = 128;	/* keys, punctuation and the port */
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if ((l = strlen(strs[i])) > CBC_ANSWER_MAX || !cbc_utf8_ok(strs[i]))
			return CBC_E_USAGE;
		cap += 6 * l;	/* the worst escape: \u00XX */
	}
	if ((buf = malloc(cap)) == NULL)
		return CBC_E_NOMEM;
	p = buf;
	*p++ = '{';
	/* Token-less resolve (inject bindings): the field is absent. */
	if (token != NULL) {
		p = cbc_put_str(p, "token", token);
		*p++ = ',';
	}
	p = cbc_put_str(p, "sandbox_id", sandbox_id);
	*p++ = ',';
	p = cbc_put_str(p, "host", host);
	n = snprintf(p, cap - (size_t)(p - buf), ",\"port\":%d,", port);
	p += n;
	p = cbc_put_str(p, "method", method);
	*p++ = ',';
	p = cbc_put_str(p, "path", path);
	*p++ = '}';
	*p = '\0';
	*out = buf;
	*len = (size_t)(p - buf);
	return 0;
}

int
cbc_build_secret(const unsigned char *value, size_t len, const char *const *hosts,
    long long max_ttl_s, char **out, size_t *outlen)
{
	json_t *o = NULL, *arr;
	size_t i;
	int rc;

	*out = NULL;
	*outlen = 0;
	if (value == NULL || len == 0 || len > CBC_VALUE_MAX || max_ttl_s < 0)
		return CBC_E_USAGE;
	/* The broker refuses control characters but tab too; before the value travels. */
	for (i = 0; i < len; i++)
		if ((value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
			return CBC_E_USAGE;
	if ((o = json_object()) == NULL)
		return CBC_E_NOMEM;
	if (json_object_set_new(o, "value", json_stringn((const char *)value, len)) != 0) {
		rc = CBC_E_USAGE;	/* not valid UTF-8 */
		goto out;
	}
	if ((arr = json_array()) == NULL || json_object_set_new(o, "hosts", arr) != 0) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	for (i = 0; hosts != NULL && hosts[i] != NULL; i++) {
		if (i >= 256 || *hosts[i] == '\0') {
			rc = CBC_E_USAGE;
			goto out;
		}
		if (json_array_append_new(arr, json_string(hosts[i])) != 0) {
			rc = CBC_E_USAGE;
			goto out;
		}
	}
	if (max_ttl_s > 0 && (rc = cbc_set_int(o, "max_ttl_s", max_ttl_s)) != 0)
		goto out;
	rc = cbc_dump(o, out, outlen);
out:
	json_decref(o);	/* the value's copy is wiped by cbc_json_free (or our caller) */
	return rc;
}

int
cbc_build_rotate(const char *kind, char **out)
{
	json_t *o;
	int rc;

	*out = NULL;
	if (kind == NULL || (strcmp(kind, "data") != 0 && strcmp(kind, "signing") != 0))
		return CBC_E_USAGE;
	if ((o = json_object()) == NULL)
		return CBC_E_NOMEM;
	if ((rc = cbc_set_str(o, "kind", kind)) == 0)
		rc = cbc_dump(o, out, NULL);
	json_decref(o);
	return rc;
}

/* ---- answer parsing ---------------------------------------------------------- */

void
cbc_grant_free(struct cbc_grant *g)
{
	if (g == NULL)
		return;
	free(g->grant_id);
	cbc_wipe_str(g->token);
	free(g->expires_at);
	free(g);
}

int
cbc_parse_grant(const char *buf, size_t len, struct cbc_grant **out, char *why, size_t whylen)
{
	struct cbc_grant *g = NULL;
	const char *id, *tok, *exp;
	json_t *j;
	int rc = CBC_E_PROTOCOL;

	*out = NULL;
	if ((j = cbc_load(buf, len, why, whylen)) == NULL)
		return CBC_E_PROTOCOL;
	id = cbc_get_str(j, "grant_id", 128, 0);
	tok = cbc_get_str(j, "token", 8192, 0);
	exp = cbc_get_str(j, "expires_at", 64, 0);
	if (id == NULL || tok == NULL || exp == NULL) {
		cbc_set_why(why, whylen, "grant answer lacks a valid grant_id, token or expires_at");
		goto out;
	}
	if (strncmp(tok, "cbt_", 4) != 0 || tok[4] == '\0') {
		cbc_set_why(why, whylen, "grant answer's token does not start with cbt_");
		goto out;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->grant_id = strdup(id)) == NULL ||
	    (g->token = strdup(tok)) == NULL ||
	    (g->expires_at = strdup(exp)) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	*out = g;	/* transferred */
	g = NULL;
	rc = 0;
out:
	cbc_grant_free(g);
	json_decref(j);
	return rc;
}

void
cbc_resolved_free(struct cbc_resolved *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		cbc_wipe_str(r->headers[i].value);
	}
	free(r->headers);
	free(r);
}

int
cbc_parse_resolved(const char *buf, size_t len, struct cbc_resolved **out, char *why,
    size_t whylen)
{
	struct cbc_resolved *r = NULL;
	json_t *j, *arr, *h;
	const char *name, *value;
	long long exp;
	size_t i, n;
	int rc = CBC_E_PROTOCOL;

	*out = NULL;
	if ((j = cbc_load(buf, len, why, whylen)) == NULL)
		return CBC_E_PROTOCOL;
	arr = json_object_get(j, "headers");
	if (!json_is_array(arr) || json_array_size(arr) > 64) {
		cbc_set_why(why, whylen, "resolve answer lacks a headers array (at most 64)");
		goto out;
	}
	if (cbc_get_int(j, "expires_in", 0, LLONG_MAX, &exp) != 0) {
		cbc_set_why(why, whylen, "resolve answer lacks a non-negative integer expires_in");
		goto out;
	}
	n = json_array_size(arr);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	r->expires_in = exp;
	if (n > 0 && (r->headers = calloc(n, sizeof(*r->headers))) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		h = json_array_get(arr, i);
		if (!json_is_object(h) ||
		    (name = cbc_get_str(h, "name", 256, 0)) == NULL || !cbc_is_token(name) ||
		    (value = cbc_get_str(h, "value", CBC_ANSWER_MAX, 1)) == NULL) {
			/* Never quote the value: it is the credential. */
			if (why != NULL && whylen > 0)
				snprintf(why, whylen, "resolve answer's header %zu lacks a valid "
				    "name or value", i);
			goto out;
		}
		if ((r->headers[i].name = strdup(name)) == NULL ||
		    (r->headers[i].value = strdup(value)) == NULL) {
			r->nheaders = i + 1;
			rc = CBC_E_NOMEM;
			goto out;
		}
		r->nheaders = i + 1;
	}
	*out = r;	/* transferred */
	r = NULL;
	rc = 0;
out:
	cbc_resolved_free(r);
	json_decref(j);
	return rc;
}

int
cbc_parse_version(const char *buf, size_t len, long long *version, char *why, size_t whylen)
{
	json_t *j;
	int rc = 0;

	*version = 0;
	if ((j = cbc_load(buf, len, why, whylen)) == NULL)
		return CBC_E_PROTOCOL;
	if (cbc_get_int(j, "version", 1, LLONG_MAX, version) != 0) {
		cbc_set_why(why, whylen, "answer lacks a positive integer version");
		*version = 0;
		rc = CBC_E_PROTOCOL;
	}
	json_decref(j);
	return rc;
}

int
cbc_parse_revoked(const char *buf, size_t len, long long *revoked, char *why, size_t whylen)
{
	json_t *j;
	int rc = 0;

	*revoked = 0;
	if ((j = cbc_load(buf, len, why, whylen)) == NULL)
		return CBC_E_PROTOCOL;
	if (cbc_get_int(j, "revoked", 0, LLONG_MAX, revoked) != 0) {
		cbc_set_why(why, whylen, "answer lacks a non-negative integer revoked");
		*revoked = 0;
		rc = CBC_E_PROTOCOL;
	}
	json_decref(j);
	return rc;
}

int
cbc_parse_object(const char *buf, size_t len, char **json, char *why, size_t whylen)
{
	json_t *j;

	*json = NULL;
	if ((j = cbc_load(buf, len, why, whylen)) == NULL)
		return CBC_E_PROTOCOL;
	json_decref(j);
	if ((*json = cbc_strdup_n(buf, len)) == NULL)
		return CBC_E_NOMEM;
	return 0;
}

/* Copies s into out when it is a plain identifier that fits; else out is "". */
static int
cbc_copy_ident(const char *s, int upper, char *out, size_t outlen)
{
	size_t i;

	out[0] = '\0';
	if (s == NULL)
		return -1;
	for (i = 0; s[i] != '\0'; i++)
		if (i + 1 >= outlen || !((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-' ||
		    (upper && s[i] >= 'A' && s[i] <= 'Z')))
			return -1;
	memcpy(out, s, i + 1);
	return 0;
}

int
cbc_parse_error(const char *buf, size_t len, char *code, size_t codelen, char *field,
    size_t fieldlen)
{
	json_t *j;
	int rc = CBC_E_PROTOCOL;

	if (codelen == 0 || (field != NULL && fieldlen == 0))
		return CBC_E_USAGE;
	code[0] = '\0';
	if (field != NULL)
		field[0] = '\0';
	if ((j = cbc_load(buf, len, NULL, 0)) == NULL)
		return CBC_E_PROTOCOL;
	if (cbc_copy_ident(cbc_get_str(j, "error", codelen - 1, 0), 0, code, codelen) != 0)
		goto out;
	/* The field a 400 is about ({"error": "wrong_type", "field": "ttl_s"}), if any. */
	if (field != NULL && json_object_get(j, "field") != NULL)
		(void)cbc_copy_ident(cbc_get_str(j, "field", fieldlen - 1, 0), 1, field,
		    fieldlen);
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* ---- the connection ---------------------------------------------------------- */

/* Room for at least need more bytes (and the NUL): grows by copying and wiping. */
static int
cbc_buf_reserve(struct cbc_buf *b, size_t need)
{
	size_t ncap;
	char *np;

	if (b->len + need + 1 <= b->cap)
		return 0;
	ncap = b->cap == 0 ? 4096 : b->cap;
	while (ncap < b->len + need + 1)
		ncap *= 2;
	if ((np = malloc(ncap)) == NULL)
		return CBC_E_NOMEM;
	if (b->p != NULL) {
		memcpy(np, b->p, b->len);
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = ncap;
	return 0;
}

size_t
cbc_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct cbc_buf *b = arg;
	size_t n = nmemb;

	(void)size;	/* always 1 for a write callback */
	if (n > CBC_ANSWER_MAX - b->len) {
		b->over = 1;
		return 0;	/* curl aborts with CURLE_WRITE_ERROR */
	}
	if (cbc_buf_reserve(b, n) != 0)
		return 0;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

void
cbc_buf_wipe(struct cbc_buf *b)
{
	if (b->p != NULL) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

static char *
cbc_dupstr(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

/* Checks a local file can be opened for reading; the message names the file. */
static int
cbc_check_file(cbc_t *c, const char *what, const char *path)
{
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		cbc_err(c, "cannot read the %s %s: %s", what, path, strerror(errno));
		return CBC_E_IO;
	}
	close(fd);
	return 0;
}

static void cbc_rx_clear(cbc_t *c);

void
cbc_free(cbc_t *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	if (c->rcurl != NULL)
		curl_easy_cleanup(c->rcurl);
	cbc_rx_clear(c);
	curl_slist_free_all(c->hdrs);
	free(c->url);
	free(c->cert);
	free(c->key);
	free(c->cacert);
	free(c);
}

int
cbc_new(const struct cbc_opts *opts, cbc_t **out)
{
	struct curl_slist *l;
	cbc_t *c = NULL;
	size_t n;
	int rc;

	if (out == NULL)
		return CBC_E_USAGE;
	*out = NULL;
	if (opts == NULL || opts->url == NULL || opts->cert == NULL || opts->key == NULL ||
	    opts->cacert == NULL || opts->timeout_ms < 0)
		return CBC_E_USAGE;
	if (pthread_once(&cbc_once, cbc_global_init) != 0 || cbc_global_rc != 0)
		return CBC_E_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CBC_E_NOMEM;
	if ((c->url = strdup(opts->url)) == NULL || (c->cert = cbc_dupstr(opts->cert)) == NULL ||
	    (c->key = cbc_dupstr(opts->key)) == NULL ||
	    (c->cacert = cbc_dupstr(opts->cacert)) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	if (strncmp(c->url, "https://", 8) != 0 || n <= 8 || n > 1024 ||
	    strpbrk(c->url, " \t\r\n?#") != NULL) {
		rc = CBC_E_USAGE;
		goto out;
	}
	c->timeout_ms = opts->timeout_ms == 0 ? CBC_TIMEOUT_DEFAULT_MS : opts->timeout_ms;
	if ((c->curl = curl_easy_init()) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (l != NULL)
		c->hdrs = l;
	if (l == NULL || (l = curl_slist_append(c->hdrs, "Accept: application/json")) == NULL ||
	    (l = curl_slist_append(c->hdrs, "Expect:")) == NULL) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	if (
#if LIBCURL_VERSION_NUM >= 0x075500	/* 7.85: the _STR forms; the others are deprecated */
	    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
#else
	    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS) !=
	    CURLE_OK ||
#endif
	    curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) !=
	    CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CAPATH, NULL) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSLCERT, c->cert) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSLKEY, c->key) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curlerr) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, cbc_write_cb) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "libcredbroker/" PACKAGE_VERSION) !=
	    CURLE_OK) {
		rc = CBC_E_NOMEM;
		goto out;
	}
	*out = c;	/* transferred */
	c = NULL;
	rc = 0;
out:
	cbc_free(c);
	return rc;
}

/* Turns a curl failure into an error that says what to do. */
static int
cbc_curl_fail(cbc_t *c, CURLcode cc, const struct cbc_buf *b)
{
	const char *detail = c->curlerr[0] != '\0' ? c->curlerr : curl_easy_strerror(cc);

	/* Which local file is missing is the most useful thing a TLS error can say. */
	if (cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE ||
	    cc == CURLE_SSL_CONNECT_ERROR) {
		if (cbc_check_file(c, "client certificate", c->cert) != 0 ||
		    cbc_check_file(c, "client key", c->key) != 0 ||
		    cbc_check_file(c, "CA file", c->cacert) != 0)
			return CBC_E_IO;
	}
	switch (cc) {
	case CURLE_WRITE_ERROR:
		if (b->over) {
			cbc_err(c, "the broker's answer at %s is larger than 1 MiB", c->url);
			return CBC_E_PROTOCOL;
		}
		cbc_err(c, "out of memory reading the broker's answer");
		return CBC_E_NOMEM;
	case CURLE_PARTIAL_FILE:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:	/* the URL is checked: this is an HTTP/0.9 reply */
		cbc_err(c, "the broker's answer at %s was cut short or malformed: %s", c->url,
		    detail);
		return CBC_E_PROTOCOL;
	case CURLE_OUT_OF_MEMORY:
		cbc_err(c, "out of memory");
		return CBC_E_NOMEM;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		cbc_err(c, "cannot connect to %s: %s (is credbrokerd running at %s?)", c->url,
		    detail, c->url);
		return CBC_E_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		cbc_err(c, "no answer from %s within %ld ms (is credbrokerd running and "
		    "reachable there?)", c->url, c->timeout_ms);
		return CBC_E_CONNECT;
	case CURLE_PEER_FAILED_VERIFICATION:
		cbc_err(c, "the broker's certificate at %s is not signed by CA %s or does not "
		    "name that host: %s (use the CA of the deployment, --cacert FILE)", c->url,
		    c->cacert, detail);
		return CBC_E_CONNECT;
	case CURLE_SSL_CACERT_BADFILE:
		cbc_err(c, "cannot load the CA file %s: %s", c->cacert, detail);
		return CBC_E_IO;
	case CURLE_SSL_CERTPROBLEM:
		cbc_err(c, "cannot use the client certificate %s with key %s: %s (do they "
		    "match, are they PEM?)", c->cert, c->key, detail);
		return CBC_E_IO;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		cbc_err(c, "TLS connection to %s failed: %s (does the broker accept the client "
		    "certificate %s? is it a credbrokerd?)", c->url, detail, c->cert);
		return CBC_E_CONNECT;
	case CURLE_URL_MALFORMAT:
		cbc_err(c, "invalid broker URL %s: %s (expected https://HOST:PORT)", c->url,
		    detail);
		return CBC_E_USAGE;
	default:
		cbc_err(c, "request to %s failed: %s", c->url, detail);
		return CBC_E_CONNECT;
	}
}

static int cbc_answer_status(cbc_t *c, const char *method, const char *path, long status,
    struct cbc_buf *ans);

/*
 * One request. body (may be NULL) is sent as is and never copied by curl. On a 2xx
 * answer, *ans holds it (wiped by the caller with cbc_buf_wipe); other statuses are
 * turned into errors here.
 */
static int
cbc_request(cbc_t *c, const char *method, const char *path, const char *body, size_t bodylen,
    struct cbc_buf *ans)
{
	char url[CBC_URL_MAX];
	CURLcode cc;
	long status = 0;
	int rc, n;

	memset(ans, 0, sizeof(*ans));
	c->http_status = 0;
	c->errcode[0] = '\0';
	c->errmsg[0] = '\0';
	c->curlerr[0] = '\0';
	n = snprintf(url, sizeof(url), "%s%s", c->url, path);
	if (n < 0 || (size_t)n >= sizeof(url)) {
		cbc_err(c, "request URL too long");
		return CBC_E_USAGE;
	}
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, ans) != CURLE_OK) {
		cbc_err(c, "out of memory");
		return CBC_E_NOMEM;
	}
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)bodylen);
	} else
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	/* POST is what POSTFIELDS means; anything else is named. */
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST,
	    strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ? NULL : method);
	cc = curl_easy_perform(c->curl);
	/* Forget the body pointer: the caller wipes and frees it next. */
	curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	if (cc != CURLE_OK) {
		rc = cbc_curl_fail(c, cc, ans);
		cbc_buf_wipe(ans);
		return rc;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	return cbc_answer_status(c, method, path, status, ans);
}

/* A complete answer with this status: 2xx keeps *ans; the others become errors. */
static int
cbc_answer_status(cbc_t *c, const char *method, const char *path, long status,
    struct cbc_buf *ans)
{
	char why[160], field[CBC_ERRCODE_MAX];
	int rc;

	c->http_status = (int)status;
	if (status >= 200 && status < 300)
		return 0;
	if (status >= 400 && status < 600) {
		if (cbc_parse_error(ans->p, ans->len, c->errcode, sizeof(c->errcode), field,
		    sizeof(field)) != 0)
			c->errcode[0] = field[0] = '\0';
		if (status < 500) {
			cbc_err(c, "the broker refused %s %s: HTTP %ld %s%s%s%s%s", method, path,
			    status, c->errcode[0] != '\0' ? c->errcode : "(no error code)",
			    field[0] != '\0' ? " (field " : "", field,
			    field[0] != '\0' ? ")" : "",
			    status == 403 && strcmp(c->errcode, "forbidden") == 0 ?
			    " (this certificate's role may not do this)" : "");
			rc = CBC_E_REFUSED;
		} else {
			cbc_err(c, "the broker failed on %s %s: HTTP %ld %s (see credbrokerd's log)",
			    method, path, status, c->errcode[0] != '\0' ? c->errcode :
			    "(no error code)");
			rc = CBC_E_SERVER;
		}
	} else {
		snprintf(why, sizeof(why), "unexpected HTTP status %ld", status);
		cbc_err(c, "the broker's answer to %s %s is invalid: %s", method, path, why);
		rc = CBC_E_PROTOCOL;
	}
	cbc_buf_wipe(ans);
	return rc;
}

/* Parse failures become CBC_E_PROTOCOL with a message naming the request. */
static int
cbc_bad_answer(cbc_t *c, int rc, const char *method, const char *path, const char *why)
{
	if (rc == CBC_E_NOMEM)
		cbc_err(c, "out of memory");
	else
		cbc_err(c, "the broker's answer to %s %s is invalid: %s", method, path, why);
	return rc;
}

/* Builds "prefix/ESCAPED(arg)suffix" into out. */
static int
cbc_path(cbc_t *c, char *out, size_t outlen, const char *prefix, const char *arg,
    const char *suffix)
{
	char *e;
	int n;

	if (arg == NULL || *arg == '\0' || strlen(arg) > CBC_ID_MAX) {
		cbc_err(c, "missing or overlong name or ID (at most %d bytes)", CBC_ID_MAX);
		return CBC_E_USAGE;
	}
	if ((e = curl_easy_escape(c->curl, arg, 0)) == NULL) {
		cbc_err(c, "out of memory");
		return CBC_E_NOMEM;
	}
	n = snprintf(out, outlen, "%s/%s%s", prefix, e, suffix);
	curl_free(e);
	if (n < 0 || (size_t)n >= outlen) {
		cbc_err(c, "request path too long");
		return CBC_E_USAGE;
	}
	return 0;
}

static int
cbc_usage(cbc_t *c, const char *msg)
{
	cbc_err(c, "%s", msg);
	return CBC_E_USAGE;
}

/* A request whose 2xx answer is any JSON object, handed to the caller as text. */
static int
cbc_get_json(cbc_t *c, const char *method, const char *path, const char *body, char **json)
{
	struct cbc_buf ans;
	char why[160];
	int rc;

	if ((rc = cbc_request(c, method, path, body, body != NULL ? strlen(body) : 0, &ans)) != 0)
		return rc;
	if (json != NULL) {
		rc = cbc_parse_object(ans.p, ans.len, json, why, sizeof(why));
		if (rc != 0)
			cbc_bad_answer(c, rc, method, path, why);
	}
	cbc_buf_wipe(&ans);
	return rc;
}

int
cbc_grant_mint(cbc_t *c, const struct cbc_grant_req *req, struct cbc_grant **out)
{
	struct cbc_buf ans;
	char *body = NULL, why[160];
	int rc;

	if (out == NULL || c == NULL)
		return CBC_E_USAGE;
	*out = NULL;
	if ((rc = cbc_build_grant(req, &body)) != 0)
		return rc == CBC_E_USAGE ? cbc_usage(c, "invalid grant request (sandbox ID, "
		    "positive TTL, 1 to 16 bindings with secret and host, valid UTF-8)") : rc;
	rc = cbc_request(c, "POST", "/v1/grants", body, strlen(body), &ans);
	free(body);
	if (rc != 0)
		return rc;
	if ((rc = cbc_parse_grant(ans.p, ans.len, out, why, sizeof(why))) != 0)
		cbc_bad_answer(c, rc, "POST", "/v1/grants", why);
	cbc_buf_wipe(&ans);
	return rc;
}

int
cbc_grant_show(cbc_t *c, const char *grant_id, char **json)
{
	char path[CBC_URL_MAX];
	int rc;

	if (c == NULL || json == NULL)
		return CBC_E_USAGE;
	*json = NULL;
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/grants", grant_id, "")) != 0)
		return rc;
	return cbc_get_json(c, "GET", path, NULL, json);
}

int
cbc_grant_revoke(cbc_t *c, const char *grant_id)
{
	char path[CBC_URL_MAX];
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/grants", grant_id, "")) != 0)
		return rc;
	return cbc_get_json(c, "DELETE", path, NULL, NULL);
}

int
cbc_sandbox_revoke(cbc_t *c, const char *sandbox_id, long long *revoked)
{
	char path[CBC_URL_MAX], why[160];
	struct cbc_buf ans;
	long long n;
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if (revoked != NULL)
		*revoked = 0;
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/sandboxes", sandbox_id, "/grants")) != 0)
		return rc;
	if ((rc = cbc_request(c, "DELETE", path, NULL, 0, &ans)) != 0)
		return rc;
	if ((rc = cbc_parse_revoked(ans.p, ans.len, &n, why, sizeof(why))) != 0)
		cbc_bad_answer(c, rc, "DELETE", path, why);
	else if (revoked != NULL)
		*revoked = n;
	cbc_buf_wipe(&ans);
	return rc;
}

/* ---- resolves: HTTP/1.1 written and read here over curl's verified mTLS connection ----
 *
 * A proxy resolves once per proxied request. curl's HTTP layer cost ~106 k instructions
 * and ~5 system calls per resolve (D9b in docs/performance.md); the connection (TCP, TLS
 * 1.2+, client certificate, peer and host verification: every option of cbc_new) stays
 * curl's: a second easy handle, duplicated from the first, connects with
 * CURLOPT_CONNECT_ONLY, and the request and answer go through curl_easy_send/_recv.
 * The answer must be HTTP/1.x with a Content-Length (as libmicrohttpd answers); anything
 * else is CBC_E_PROTOCOL. A kept-alive connection that closes before the first byte of
 * an answer is retried once on a fresh connection, as curl itself does.
 */

#define CBC_HEAD_MAX	16384

static long
cbc_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return 0;
	return (long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits for the resolve connection's socket: 0 ready, -2 timed out, -1 error. */
static int
cbc_rwait(cbc_t *c, short ev, const struct timespec *deadline)
{
	curl_socket_t sock = CURL_SOCKET_BAD;
	struct pollfd pfd;
	long ms;
	int r;

	if (curl_easy_getinfo(c->rcurl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD)
		return -1;
	/* bounded by the deadline: each round waits for what is left of it */
	for (;;) {
		if ((ms = cbc_ms_left(deadline)) <= 0)
			return -2;
		pfd.fd = sock;
		pfd.events = ev;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms > INT_MAX ? INT_MAX : (int)ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -2;
		if (errno != EINTR)
			return -1;
	}
}

/*
 * The resolve connection's TLS context (curl on OpenSSL):
 * - answers carry real credentials: OpenSSL wipes each record's plaintext once it has
 *   handed it over, instead of keeping it in its read buffer until the next answer;
 * - read-ahead, so that one read(2) takes in an answer's head and body records together
 *   (libmicrohttpd sends them apart), not a record header and then its body for each.
 *   Safe only because cbc_rx_step0 itself reads until OpenSSL asks for more bytes
 *   (CURLE_AGAIN) before it waits on the socket; curl's own transfer loop (the other
 *   handle) would wait with a whole record buffered.
 */
static CURLcode
cbc_rssl_ctx(CURL *curl, void *ssl_ctx, void *arg)
{
	(void)curl;
	(void)arg;
	SSL_CTX_set_options((SSL_CTX *)ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_read_ahead((SSL_CTX *)ssl_ctx, 1);
	return CURLE_OK;
}

/* Connects the resolve handle (a fresh connection); the message names what failed. */
static int
cbc_rconnect(cbc_t *c, const char *target)
{
	char url[CBC_URL_MAX];
	const curl_version_info_data *vi;
	struct cbc_buf none;
	CURLcode cc;
	int rc;

	if (c->rcurl != NULL)
		curl_easy_cleanup(c->rcurl);
	c->rcurl = NULL;
	rc = snprintf(url, sizeof(url), "%s%s", c->url, target);
	if (rc < 0 || (size_t)rc >= sizeof(url)) {
		cbc_err(c, "request URL too long");
		return CBC_E_USAGE;
	}
	if ((c->rcurl = curl_easy_duphandle(c->curl)) == NULL ||
	    curl_easy_setopt(c->rcurl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->rcurl, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK) {
		if (c->rcurl != NULL)
			curl_easy_cleanup(c->rcurl);
		c->rcurl = NULL;
		cbc_err(c, "out of memory");
		return CBC_E_NOMEM;
	}
	/* the callback's context is an SSL_CTX only on OpenSSL */
	vi = curl_version_info(CURLVERSION_NOW);
	if (vi != NULL && vi->ssl_version != NULL && strncmp(vi->ssl_version, "OpenSSL/", 8) == 0)
		(void)curl_easy_setopt(c->rcurl, CURLOPT_SSL_CTX_FUNCTION, cbc_rssl_ctx);
	c->curlerr[0] = '\0';
	if ((cc = curl_easy_perform(c->rcurl)) != CURLE_OK) {
		memset(&none, 0, sizeof(none));
		rc = cbc_curl_fail(c, cc, &none);
		curl_easy_cleanup(c->rcurl);
		c->rcurl = NULL;
		return rc;
	}
	c->rfresh = 1;
	return 0;
}

/*
 * Parses an answer head of hlen bytes (the blank line included): status, Content-Length,
 * whether the connection stays open. 0, or -1 when it is not what libmicrohttpd sends.
 */
static int
cbc_parse_head(const char *h, size_t hlen, long *status, long long *clen, int *keep)
{
	const char *p = h, *end = h + hlen - 2, *eol, *colon, *v;
	long long n;
	size_t vlen, i;

	*clen = -1;
	if (hlen < 16 || (memcmp(p, "HTTP/1.1 ", 9) != 0 && memcmp(p, "HTTP/1.0 ", 9) != 0))
		return -1;
	*keep = p[7] == '1';
	for (i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -1;
	if (p[12] != ' ' && p[12] != '\r')
		return -1;
	*status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
		return -1;
	/* header lines: each ends with CRLF; bounded by the head's length */
	for (p = eol + 1; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end + 2 - p))) == NULL || eol == p ||
		    eol[-1] != '\r')
			return -1;
		if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL || colon == p)
			return -1;
		for (v = colon + 1; v < eol - 1 && (*v == ' ' || *v == '\t'); v++)
			;
		vlen = (size_t)(eol - 1 - v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		if ((size_t)(colon - p) == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			if (vlen == 0 || vlen > 9)
				return -1;	/* also what is over CBC_ANSWER_MAX */
			for (n = 0, i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				n = n * 10 + (v[i] - '0');
			}
			if (*clen >= 0 && *clen != n)
				return -1;
			*clen = n;
		} else if ((size_t)(colon - p) == 17 &&
		    strncasecmp(p, "Transfer-Encoding", 17) == 0)
			return -1;
		else if ((size_t)(colon - p) == 10 && strncasecmp(p, "Connection", 10) == 0 &&
		    vlen == 5 && strncasecmp(v, "close", 5) == 0)
			*keep = 0;
	}
	return *clen >= 0 ? 0 : -1;
}

/* Starts the exchange of c->rx.req over again: nothing sent, no answer. */
static void
cbc_rx_rewind(cbc_t *c)
{
	struct cbc_rx *x = &c->rx;

	cbc_buf_wipe(&x->ans);
	x->off = x->hlen = 0;
	x->clen = -1;
	x->status = 0;
	x->got = x->keep = x->retry = x->done = 0;
}

static void
cbc_rx_clear(cbc_t *c)
{
	cbc_rx_rewind(c);
	if (c->rx.req != NULL) {
		explicit_bzero(c->rx.req, c->rx.reqlen);	/* it holds the token */
		free(c->rx.req);
	}
	c->rx.req = NULL;
	c->rx.reqlen = 0;
}

static int
cbc_rx_conn_fail(cbc_t *c, CURLcode cc)
{
	cbc_err(c, "TLS connection to %s failed: %s (does the broker accept the client "
	    "certificate %s? is it a credbrokerd?)", c->url, cc != CURLE_OK ?
	    curl_easy_strerror(cc) : "closed by the broker", c->cert);
	/* a kept-alive connection closed before any answer: once more, on a new one */
	c->rx.retry = !c->rx.got && !c->rfresh;
	return CBC_E_CONNECT;
}

/*
 * Sends c->rx.req and reads the whole answer into c->rx.ans (the body moved to its
 * start) without blocking: CBC_PENDING with *events (POLLIN or POLLOUT) to wait for on
 * the connection's socket, 0 once the answer is complete, or a CBC_E_* with the message
 * set; c->rx.retry then says whether a fresh connection may repeat it.
 */
static int
cbc_rx_step0(cbc_t *c, short *events)
{
	struct cbc_rx *x = &c->rx;
	const char *hend;
	size_t n;
	CURLcode cc;

	/* every loop below ends at CURLE_AGAIN, an error or the answer's end */
	if (x->off < x->reqlen) {
		while (x->off < x->reqlen) {
			n = 0;
			cc = curl_easy_send(c->rcurl, x->req + x->off, x->reqlen - x->off, &n);
			if (cc == CURLE_AGAIN) {
				*events = POLLOUT;
				return CBC_PENDING;
			}
			if (cc != CURLE_OK)
				goto conn_fail;
			x->off += n;
		}
		/*
		 * Sent just now: no answer can be in yet (the broker commits the audit record
		 * first), so wait for one rather than read an EAGAIN. Nothing of this exchange
		 * can be buffered in the TLS layer before the socket turns readable.
		 */
		*events = POLLIN;
		return CBC_PENDING;
	}
	for (;;) {
		if (cbc_buf_reserve(&x->ans, 4096) != 0) {
			cbc_err(c, "out of memory reading the broker's answer");
			return CBC_E_NOMEM;
		}
		n = 0;
		cc = curl_easy_recv(c->rcurl, x->ans.p + x->ans.len, x->ans.cap - x->ans.len - 1,
		    &n);
		if (cc == CURLE_AGAIN) {
			*events = POLLIN;
			return CBC_PENDING;
		}
		if (cc != CURLE_OK || n == 0) {
			if (!x->got)
				goto conn_fail;
			cbc_err(c, "the broker's answer at %s was cut short", c->url);
			return CBC_E_PROTOCOL;
		}
		x->got = 1;
		x->ans.len += n;
		x->ans.p[x->ans.len] = '\0';
		if (x->hlen == 0) {
			hend = memmem(x->ans.p, x->ans.len, "\r\n\r\n", 4);
			if (hend == NULL) {
				if (x->ans.len > CBC_HEAD_MAX)
					goto malformed;
				continue;
			}
			x->hlen = (size_t)(hend - x->ans.p) + 4;
			if (cbc_parse_head(x->ans.p, x->hlen, &x->status, &x->clen, &x->keep) != 0)
				goto malformed;
			if (x->clen > CBC_ANSWER_MAX) {
				cbc_err(c, "the broker's answer at %s is larger than 1 MiB", c->url);
				return CBC_E_PROTOCOL;
			}
		}
		if (x->ans.len - x->hlen > (size_t)x->clen)
			goto malformed;	/* nothing was asked for after this answer */
		if (x->ans.len - x->hlen == (size_t)x->clen)
			break;
	}
	/* the body to the start, the head wiped */
	memmove(x->ans.p, x->ans.p + x->hlen, (size_t)x->clen);
	explicit_bzero(x->ans.p + x->clen, x->ans.len - (size_t)x->clen);
	x->ans.len = (size_t)x->clen;
	x->ans.p[x->ans.len] = '\0';
	x->done = 1;
	return 0;
 malformed:
	cbc_err(c, "the broker's answer at %s was cut short or malformed: not an HTTP/1.1 "
	    "answer with a Content-Length", c->url);
	return CBC_E_PROTOCOL;
 conn_fail:
	return cbc_rx_conn_fail(c, cc);
}

static int
cbc_rx_step(cbc_t *c, short *events)
{
	int rc = cbc_rx_step0(c, events);

	if (rc != CBC_PENDING)
		c->rfresh = 0;
	return rc;
}

/* The blocking exchange: cbc_rx_step until the answer is in or the deadline passes. */
static int
cbc_rexchange(cbc_t *c, const struct timespec *deadline)
{
	short ev = 0;
	int rc, w;

	/* bounded by the deadline: each wait is for what is left of it */
	while ((rc = cbc_rx_step(c, &ev)) == CBC_PENDING) {
		if ((w = cbc_rwait(c, ev, deadline)) == -2) {
			cbc_err(c, "no answer from %s within %ld ms (is credbrokerd running and "
			    "reachable there?)", c->url, c->timeout_ms);
			c->rx.retry = 0;	/* never retried: the time is up */
			return CBC_E_CONNECT;
		}
		if (w == -1) {
			rc = cbc_rx_conn_fail(c, ev == POLLIN ? CURLE_RECV_ERROR :
			    CURLE_SEND_ERROR);
			c->rfresh = 0;
			return rc;
		}
	}
	return rc;
}

/* "https://host:port/prefix": host:port and the path prefix, or -1 for anything else. */
static int
cbc_url_split(const char *url, char *auth, size_t authlen, const char **prefix)
{
	const char *a = url + 8, *slash = strchr(url + 8, '/');
	size_t n = slash != NULL ? (size_t)(slash - a) : strlen(a);

	if (strncmp(url, "https://", 8) != 0 || n == 0 || n >= authlen ||
	    memchr(a, '@', n) != NULL)
		return -1;
	memcpy(auth, a, n);
	auth[n] = '\0';
	*prefix = slash != NULL ? slash : "";
	return 0;
}

/*
 * The request line's target and the Host for the lean path: 0, 1 when the URL has no
 * plain "https://host:port/prefix" form (curl's own HTTP then), or a CBC_E_*.
 */
static int
cbc_rtarget(cbc_t *c, char *auth, size_t authlen, char *target, size_t targetlen)
{
	const char *prefix;
	int n;

	if (cbc_url_split(c->url, auth, authlen, &prefix) != 0)
		return 1;
	n = snprintf(target, targetlen, "%s/v1/resolve", prefix);
	if (n < 0 || (size_t)n >= targetlen) {
		cbc_err(c, "request URL too long");
		return CBC_E_USAGE;
	}
	return 0;
}

/* Builds c->rx.req (head and body) for a resolve; 0, 1 as cbc_rtarget, or a CBC_E_*. */
static int
cbc_rx_build(cbc_t *c, const char *body, size_t bodylen, char *target, size_t targetlen)
{
	char auth[512];
	size_t cap;
	int n;

	cbc_rx_clear(c);
	c->http_status = 0;
	c->errcode[0] = '\0';
	c->errmsg[0] = '\0';
	c->curlerr[0] = '\0';
	if ((n = cbc_rtarget(c, auth, sizeof(auth), target, targetlen)) != 0)
		return n;
	cap = strlen(target) + strlen(auth) + bodylen + 256;
	if ((c->rx.req = malloc(cap)) == NULL) {
		cbc_err(c, "out of memory");
		return CBC_E_NOMEM;
	}
	n = snprintf(c->rx.req, cap, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
	    "libcredbroker/" PACKAGE_VERSION "\r\nContent-Type: application/json\r\nAccept: "
	    "application/json\r\nContent-Length: %zu\r\n\r\n", target, auth, bodylen);
	if (n < 0 || (size_t)n + bodylen >= cap) {
		cbc_rx_clear(c);
		cbc_err(c, "request too long");
		return CBC_E_USAGE;
	}
	memcpy(c->rx.req + n, body, bodylen);
	c->rx.reqlen = (size_t)n + bodylen;
	return 0;
}

/* Drops the resolve connection. */
static void
cbc_rdrop(cbc_t *c)
{
	if (c->rcurl != NULL)
		curl_easy_cleanup(c->rcurl);
	c->rcurl = NULL;
}

/* The resolve through the lean path above; 0 with *ans holding a 2xx answer's body. */
static int
cbc_resolve_request(cbc_t *c, const char *body, size_t bodylen, struct cbc_buf *ans)
{
	char target[CBC_URL_MAX];
	struct timespec deadline;
	int rc, attempt;

	memset(ans, 0, sizeof(*ans));
	if ((rc = cbc_rx_build(c, body, bodylen, target, sizeof(target))) == 1)
		return cbc_request(c, "POST", "/v1/resolve", body, bodylen, ans);
	if (rc != 0)
		return rc;
	if (clock_gettime(CLOCK_MONOTONIC, &deadline) != 0) {
		rc = CBC_E_IO;
		cbc_err(c, "clock_gettime failed");
		goto out;
	}
	deadline.tv_sec += c->timeout_ms / 1000;
	deadline.tv_nsec += (c->timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	rc = CBC_E_CONNECT;
	for (attempt = 0; attempt < 2; attempt++) {
		if (c->rcurl == NULL && (rc = cbc_rconnect(c, target)) != 0)
			goto out;
		cbc_rx_rewind(c);
		if ((rc = cbc_rexchange(c, &deadline)) == 0)
			break;
		cbc_rdrop(c);
		if (!c->rx.retry)
			goto out;
	}
	if (rc != 0)
		goto out;
	if (!c->rx.keep)
		cbc_rdrop(c);
	*ans = c->rx.ans;	/* transferred */
	memset(&c->rx.ans, 0, sizeof(c->rx.ans));
	rc = cbc_answer_status(c, "POST", "/v1/resolve", c->rx.status, ans);
out:
	cbc_rx_clear(c);
	return rc;
}

/* A resolve's answer to its result: the status, then the body (wiped either way). */
static int
cbc_resolve_answer(cbc_t *c, int rc, struct cbc_buf *ans, struct cbc_resolved **out)
{
	char why[160];

	if (rc != 0)
		return rc;
	if ((rc = cbc_parse_resolved(ans->p, ans->len, out, why, sizeof(why))) != 0)
		cbc_bad_answer(c, rc, "POST", "/v1/resolve", why);
	cbc_buf_wipe(ans);
	return rc;
}

int
cbc_resolve(cbc_t *c, const char *token, const char *sandbox_id, const char *host, int port,
    const char *method, const char *path, struct cbc_resolved **out)
{
	struct cbc_buf ans;
	char *body = NULL;
	size_t len;
	int rc;

	if (c == NULL || out == NULL)
		return CBC_E_USAGE;
	*out = NULL;
	if ((rc = cbc_build_resolve(token, sandbox_id, host, port == 0 ? 443 : port, method,
	    path, &body, &len)) != 0)
		return rc == CBC_E_USAGE ? cbc_usage(c, "invalid resolve request (sandbox ID, "
		    "host, port 1-65535, method and path required, valid UTF-8)") : rc;
	rc = cbc_resolve_request(c, body, len, &ans);
	explicit_bzero(body, len);	/* it holds the token */
	free(body);
	return cbc_resolve_answer(c, rc, &ans, out);
}

/* ---- the same resolve without blocking, for an event loop (credbroker.h) ---- */

int
cbc_resolve_connect(cbc_t *c)
{
	char auth[512], target[CBC_URL_MAX];
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if (c->rcurl != NULL)
		return 0;
	if ((rc = cbc_rtarget(c, auth, sizeof(auth), target, sizeof(target))) == 1)
		return cbc_usage(c, "the broker URL has no host:port form for a resolve "
		    "connection");
	return rc != 0 ? rc : cbc_rconnect(c, target);
}

int
cbc_resolve_fd(const cbc_t *c)
{
	curl_socket_t sock = CURL_SOCKET_BAD;

	if (c == NULL || c->rcurl == NULL ||
	    curl_easy_getinfo(c->rcurl, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
	    sock == CURL_SOCKET_BAD)
		return -1;
	return (int)sock;
}

int
cbc_resolve_start(cbc_t *c, const char *token, const char *sandbox_id, const char *host,
    int port, const char *method, const char *path)
{
	char target[CBC_URL_MAX], *body = NULL;
	size_t len;
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if (c->rcurl == NULL)
		return cbc_usage(c, "no resolve connection (cbc_resolve_connect first)");
	if ((rc = cbc_build_resolve(token, sandbox_id, host, port == 0 ? 443 : port, method,
	    path, &body, &len)) != 0)
		return rc == CBC_E_USAGE ? cbc_usage(c, "invalid resolve request (sandbox ID, "
		    "host, port 1-65535, method and path required, valid UTF-8)") : rc;
	rc = cbc_rx_build(c, body, len, target, sizeof(target));
	explicit_bzero(body, len);	/* it holds the token */
	free(body);
	/*
	 * The connection was made earlier, maybe long ago: closed before any answer byte,
	 * it is a kept-alive connection the broker dropped (restarted, idle timeout), and
	 * the caller may repeat the resolve once on a new one.
	 */
	c->rfresh = 0;
	return rc == 1 ? CBC_E_USAGE : rc;
}

int
cbc_resolve_step(cbc_t *c, short *events)
{
	int rc;

	if (c == NULL || events == NULL || c->rcurl == NULL || c->rx.req == NULL)
		return CBC_E_USAGE;
	if ((rc = cbc_rx_step(c, events)) == CBC_PENDING)
		return rc;
	if (rc != 0 || !c->rx.keep)
		cbc_rdrop(c);
	return rc;
}

int
cbc_resolve_retryable(const cbc_t *c)
{
	return c != NULL && c->rx.retry;
}

int
cbc_resolve_finish(cbc_t *c, struct cbc_resolved **out)
{
	struct cbc_buf ans;
	int rc;

	if (c == NULL || out == NULL)
		return CBC_E_USAGE;
	*out = NULL;
	if (!c->rx.done) {
		cbc_rx_clear(c);
		return cbc_usage(c, "no complete resolve answer (cbc_resolve_step first)");
	}
	ans = c->rx.ans;	/* transferred */
	memset(&c->rx.ans, 0, sizeof(c->rx.ans));
	rc = cbc_answer_status(c, "POST", "/v1/resolve", c->rx.status, &ans);
	cbc_rx_clear(c);
	return cbc_resolve_answer(c, rc, &ans, out);
}

void
cbc_resolve_abort(cbc_t *c)
{
	if (c == NULL)
		return;
	cbc_rdrop(c);
	cbc_rx_clear(c);
}

int
cbc_secret_put(cbc_t *c, const char *name, const unsigned char *value, size_t len,
    const char *const *hosts, long long max_ttl_s, long long *version)
{
	char path[CBC_URL_MAX], why[160];
	struct cbc_buf ans;
	char *body = NULL;
	size_t blen = 0;
	long long v;
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if (version != NULL)
		*version = 0;
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/secrets", name, "")) != 0)
		return rc;
	if ((rc = cbc_build_secret(value, len, hosts, max_ttl_s, &body, &blen)) != 0)
		return rc == CBC_E_USAGE ? cbc_usage(c, "invalid secret: the value must be 1 to "
		    "8192 bytes of UTF-8 without CR, LF or NUL; hosts non-empty; max TTL >= 0") :
		    rc;
	rc = cbc_request(c, "PUT", path, body, blen, &ans);
	explicit_bzero(body, blen);
	free(body);
	if (rc != 0)
		return rc;
	if ((rc = cbc_parse_version(ans.p, ans.len, &v, why, sizeof(why))) != 0)
		cbc_bad_answer(c, rc, "PUT", path, why);
	else if (version != NULL)
		*version = v;
	cbc_buf_wipe(&ans);
	return rc;
}

int
cbc_secret_get(cbc_t *c, const char *name, char **json)
{
	char path[CBC_URL_MAX];
	int rc;

	if (c == NULL || json == NULL)
		return CBC_E_USAGE;
	*json = NULL;
	if (name == NULL)
		return cbc_get_json(c, "GET", "/v1/secrets", NULL, json);
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/secrets", name, "")) != 0)
		return rc;
	return cbc_get_json(c, "GET", path, NULL, json);
}

int
cbc_secret_delete(cbc_t *c, const char *name)
{
	char path[CBC_URL_MAX];
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if ((rc = cbc_path(c, path, sizeof(path), "/v1/secrets", name, "")) != 0)
		return rc;
	return cbc_get_json(c, "DELETE", path, NULL, NULL);
}

int
cbc_key_rotate(cbc_t *c, const char *kind, char **json)
{
	char *body = NULL;
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if (json != NULL)
		*json = NULL;
	if ((rc = cbc_build_rotate(kind, &body)) != 0)
		return rc == CBC_E_USAGE ? cbc_usage(c, "key kind must be \"data\" or "
		    "\"signing\"") : rc;
	rc = cbc_get_json(c, "POST", "/v1/keys/rotate", body, json);
	free(body);
	return rc;
}

int
cbc_audit_get(cbc_t *c, long long after, long long limit, char **json)
{
	char path[128];

	if (c == NULL || json == NULL)
		return CBC_E_USAGE;
	*json = NULL;
	if (after < 0 || limit < 0)
		return cbc_usage(c, "audit: after and limit must be >= 0");
	if (limit > 0)
		snprintf(path, sizeof(path), "/v1/audit?after=%lld&limit=%lld", after, limit);
	else
		snprintf(path, sizeof(path), "/v1/audit?after=%lld", after);
	return cbc_get_json(c, "GET", path, NULL, json);
}

int
cbc_audit_verify(cbc_t *c, char **json)
{
	if (c == NULL || json == NULL)
		return CBC_E_USAGE;
	*json = NULL;
	return cbc_get_json(c, "GET", "/v1/audit/verify", NULL, json);
}

int
cbc_health(cbc_t *c)
{
	struct cbc_buf ans;
	int rc;

	if (c == NULL)
		return CBC_E_USAGE;
	if ((rc = cbc_request(c, "GET", "/healthz", NULL, 0, &ans)) != 0)
		return rc;
	cbc_buf_wipe(&ans);
	return 0;
}
