/* proxy_conf.c: credproxy.conf (the shared line format of conf.c), the sandbox map, addresses. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "err.h"
#include "proxy.h"
#include "util.h"

#define PROXY_CONF_MAX		(1024 * 1024)
#define PROXY_CIDRS_MAX		65536
#define PROXY_ALLOW_MAX		4096
#define PROXY_USER_MAX		32	/* as credbrokerd.conf */

int
proxy_conf_new(struct proxy_conf **out)
{
	struct proxy_conf *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CB_ERR_NOMEM;
	if ((c->listen_host = strdup("127.0.0.1")) == NULL) {
		free(c);
		return CB_ERR_NOMEM;
	}
	c->listen_port = 3128;
	c->seccomp = CONF_SECCOMP_DEFAULT;
	c->resolve_workers = PROXY_WORKERS_DEFAULT;
	c->sandbox_conns = PROXY_SANDBOX_CONNS_DEFAULT;
	c->head_timeout_s = PROXY_HEAD_TIMEOUT_DEFAULT;
	c->idle_timeout_s = PROXY_IDLE_TIMEOUT_DEFAULT;
	*out = c;
	return 0;
}

void
proxy_conf_free(struct proxy_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->listen_host);
	free(c->broker_url);
	free(c->broker_ca);
	free(c->cert);
	free(c->key);
	free(c->sandbox_ca);
	free(c->sandbox_ca_key);
	free(c->sandbox_id);
	free(c->upstream_ca);
	free(c->user);
	for (i = 0; i < c->ncidrs; i++)
		free(c->cidrs[i].sandbox_id);
	free(c->cidrs);
	for (i = 0; i < c->nallow; i++)
		free(c->allow_hosts[i]);
	free(c->allow_hosts);
	free(c);
}

int
proxy_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *hs, *he;
	long long v;
	size_t n;

	*port = 0;
	if (s == NULL || *s == '\0' || hostlen == 0)
		return CB_ERR_INVAL;
	if (*s == '[') {
		hs = s + 1;
		if ((he = strchr(hs, ']')) == NULL)
			return CB_ERR_INVAL;
		if (he[1] != ':')
			return CB_ERR_INVAL;
		colon = he + 1;
	} else {
		hs = s;
		if ((colon = strrchr(s, ':')) == NULL || strchr(s, ':') != colon)
			return CB_ERR_INVAL;
		he = colon;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= hostlen)
		return CB_ERR_INVAL;
	if (util_strtoll(colon + 1, 1, 65535, &v) != 0)
		return CB_ERR_INVAL;
	memcpy(host, hs, n);
	host[n] = '\0';
	*port = (int)v;
	return 0;
}

int
proxy_is_ip_literal(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static int
v4_is_private(const uint8_t *a)
{
	return a[0] == 0 ||				/* "this" network, unspecified */
	    a[0] == 10 ||
	    a[0] == 127 ||
	    (a[0] == 100 && (a[1] & 0xc0) == 64) ||	/* 100.64/10 CGNAT */
	    (a[0] == 169 && a[1] == 254) ||
	    (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	    (a[0] == 192 && a[1] == 0 && (a[2] == 0 || a[2] == 2)) ||	/* 192.0.2: TEST-NET-1 */
	    (a[0] == 192 && a[1] == 168) ||
	    (a[0] == 198 && a[1] == 51 && a[2] == 100) ||	/* TEST-NET-2 */
	    (a[0] == 203 && a[1] == 0 && a[2] == 113) ||	/* TEST-NET-3 */
	    (a[0] == 198 && (a[1] & 0xfe) == 18) ||	/* benchmarking */
	    a[0] >= 224;				/* multicast, reserved, broadcast */
}

int
proxy_addr_is_private(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;
	const uint8_t *a;
	static const uint8_t zero[16];

	if (sa->sa_family == AF_INET)
		return v4_is_private((const uint8_t *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr);
	if (sa->sa_family != AF_INET6)
		return 1;
	s6 = (const struct sockaddr_in6 *)(const void *)sa;
	a = s6->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) || IN6_IS_ADDR_V4COMPAT(&s6->sin6_addr))
		return v4_is_private(a + 12);
	if (memcmp(a, zero, 16) == 0 || IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return 1;
	if (a[0] == 0xff)				/* multicast */
		return 1;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)	/* link-local */
		return 1;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)	/* site-local (deprecated) */
		return 1;
	if ((a[0] & 0xfe) == 0xfc)			/* unique local */
		return 1;
	if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b) {
		/* NAT64 local-use 64:ff9b:1::/48 (RFC 8215): the operator's own translation */
		if (a[4] == 0x00 && a[5] == 0x01)
			return 1;
		return v4_is_private(a + 12);	/* 64:ff9b::/96 embeds an IPv4 address */
	}
	if (a[0] == 0x01 && a[1] == 0x00 && memcmp(a + 2, zero, 6) == 0)	/* 100::/64 discard */
		return 1;
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x02 && a[4] == 0x00 &&
	    a[5] == 0x00)				/* 2001:2::/48 benchmarking */
		return 1;
	if (a[0] == 0x20 && a[1] == 0x02)		/* 6to4 embeds an IPv4 address */
		return v4_is_private(a + 2);
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)	/* documentation */
		return 1;
	if (a[0] == 0x3f && a[1] == 0xff && (a[2] & 0xf0) == 0x00)	/* 3fff::/20 documentation */
		return 1;
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00)	/* Teredo 2001::/32 */
		return 1;
	return 0;
}

int
proxy_conf_add_cidr(struct proxy_conf *c, const char *cidr, const char *id)
{
	struct proxy_cidr e, *n;
	char buf[64];
	const char *slash;
	long long bits;
	size_t len;

	memset(&e, 0, sizeof(e));
	if (id == NULL || *id == '\0' || strlen(id) >= PROXY_SANDBOX_MAX)
		return CB_ERR_INVAL;
	if (c->ncidrs >= PROXY_CIDRS_MAX)
		return CB_ERR_LIMIT;
	slash = strchr(cidr, '/');
	len = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	if (len == 0 || len >= sizeof(buf))
		return CB_ERR_INVAL;
	memcpy(buf, cidr, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, e.addr) == 1)
		e.family = AF_INET;
	else if (inet_pton(AF_INET6, buf, e.addr) == 1)
		e.family = AF_INET6;
	else
		return CB_ERR_INVAL;
	bits = e.family == AF_INET ? 32 : 128;
	if (slash != NULL && util_strtoll(slash + 1, 0, bits, &bits) != 0)
		return CB_ERR_INVAL;
	e.bits = (int)bits;
	/*
	 * An IPv4-mapped network (::ffff:10.1.2.3, as a dual-stack listener logs an IPv4
	 * peer) is the IPv4 one: proxy_conf_sandbox looks mapped peers up as IPv4, so kept
	 * as IPv6 it would never match, and would escape the duplicate check.
	 */
	if (e.family == AF_INET6 && e.bits >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)e.addr)) {
		memmove(e.addr, e.addr + 12, 4);
		memset(e.addr + 4, 0, sizeof(e.addr) - 4);
		e.family = AF_INET;
		e.bits -= 96;
	}
	if ((e.sandbox_id = strdup(id)) == NULL)
		return CB_ERR_NOMEM;
	n = reallocarray(c->cidrs, c->ncidrs + 1, sizeof(*n));
	if (n == NULL) {
		free(e.sandbox_id);
		return CB_ERR_NOMEM;
	}
	c->cidrs = n;
	c->cidrs[c->ncidrs++] = e;
	return 0;
}

static int
prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	uint8_t mask;

	if (full > 0 && memcmp(a, b, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

const char *
proxy_conf_sandbox(const struct proxy_conf *c, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;
	const uint8_t *a;
	const char *best = NULL;
	uint8_t v4[4];
	int family, bestbits = -1;
	size_t i;

	if (c->sandbox_id != NULL)
		return c->sandbox_id;
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(v4, s6->sin6_addr.s6_addr + 12, 4);
			a = v4;
			family = AF_INET;
		} else {
			a = s6->sin6_addr.s6_addr;
			family = AF_INET6;
		}
	} else
		return NULL;
	/* longest prefix wins, so a /32 inside a wider range can name its own sandbox */
	for (i = 0; i < c->ncidrs; i++) {
		if (c->cidrs[i].family != family || c->cidrs[i].bits <= bestbits)
			continue;
		if (prefix_match(a, c->cidrs[i].addr, c->cidrs[i].bits)) {
			best = c->cidrs[i].sandbox_id;
			bestbits = c->cidrs[i].bits;
		}
	}
	return best;
}

int
proxy_conf_add_allow(struct proxy_conf *c, const char *host)
{
	char **n, *h;
	size_t i;

	if (*host == '\0' || strlen(host) > 253)
		return CB_ERR_INVAL;
	if (c->nallow >= PROXY_ALLOW_MAX)
		return CB_ERR_LIMIT;
	if ((h = strdup(host)) == NULL)
		return CB_ERR_NOMEM;
	for (i = 0; h[i] != '\0'; i++)
		h[i] = (char)tolower((unsigned char)h[i]);
	if ((n = reallocarray(c->allow_hosts, c->nallow + 1, sizeof(*n))) == NULL) {
		free(h);
		return CB_ERR_NOMEM;
	}
	c->allow_hosts = n;
	c->allow_hosts[c->nallow++] = h;
	return 0;
}

int
proxy_conf_allowed(const struct proxy_conf *c, const char *host)
{
	size_t i;

	for (i = 0; i < c->nallow; i++)
		if (strcasecmp(c->allow_hosts[i], host) == 0)
			return 1;
	return 0;
}

#define PARSE_SEEN_MAX	32	/* more than the single-valued keywords */

struct parse_ctx {
	struct proxy_conf *c;
	const char *dir;
	struct {
		char kw[32];	/* a copy: the lexer's line buffer is reused */
		int line;
	} seen[PARSE_SEEN_MAX];
	size_t nseen;
	int sandbox_id_line, sandbox_line;	/* the first of each; 0: none */
};

/* A single-valued keyword given twice is refused, as in credbrokerd.conf. */
static int
once(struct parse_ctx *p, const char *kw, int lineno, char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < p->nseen; i++) {
		if (strcmp(p->seen[i].kw, kw) == 0) {
			snprintf(why, whylen, "line %d: %s given twice (first on line %d)",
			    lineno, kw, p->seen[i].line);
			return CB_ERR_CONFIG;
		}
	}
	/* No known keyword is that long, and an unknown one is refused right after. */
	if (strlen(kw) >= sizeof(p->seen[0].kw) || p->nseen >= PARSE_SEEN_MAX)
		return 0;
	snprintf(p->seen[p->nseen].kw, sizeof(p->seen[0].kw), "%s", kw);
	p->seen[p->nseen++].line = lineno;
	return 0;
}

/* The sort key of a sandbox CIDR: family, prefix length, the address masked to it. */
struct cidr_key {
	uint8_t k[18];
	size_t i;
};

static int
cidr_key_cmp(const void *a, const void *b)
{
	const struct cidr_key *x = a, *y = b;
	int d = memcmp(x->k, y->k, sizeof(x->k));

	if (d != 0)
		return d;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Two sandbox lines for the same network (10.1.2.0/24 and 10.1.2.9/24 are one) would
 * leave the source address's sandbox to the order of the lines: refused. Sorted, not
 * compared pairwise, as the map holds up to PROXY_CIDRS_MAX entries.
 */
static int
check_cidrs(const struct proxy_conf *c, char *why, size_t whylen)
{
	struct cidr_key *keys;
	const struct proxy_cidr *e, *f;
	size_t i, j;
	int full, rest;

	if (c->ncidrs < 2)
		return 0;
	if ((keys = calloc(c->ncidrs, sizeof(*keys))) == NULL)
		return CB_ERR_NOMEM;
	for (i = 0; i < c->ncidrs; i++) {
		e = &c->cidrs[i];
		full = e->bits / 8;
		rest = e->bits % 8;
		keys[i].k[0] = e->family == AF_INET ? 4 : 6;
		keys[i].k[1] = (uint8_t)e->bits;
		memcpy(keys[i].k + 2, e->addr, (size_t)full);
		if (rest != 0)
			keys[i].k[2 + full] = (uint8_t)(e->addr[full] & (0xff << (8 - rest)));
		keys[i].i = i;
	}
	qsort(keys, c->ncidrs, sizeof(*keys), cidr_key_cmp);
	for (j = 1; j < c->ncidrs; j++) {
		if (memcmp(keys[j - 1].k, keys[j].k, sizeof(keys[j].k)) != 0)
			continue;
		e = &c->cidrs[keys[j - 1].i];
		f = &c->cidrs[keys[j].i];
		snprintf(why, whylen, "line %d: sandbox: the network of line %d again", f->line,
		    e->line);
		free(keys);
		return CB_ERR_CONFIG;
	}
	free(keys);
	return 0;
}

static int
set_str(char **dst, const char *v)
{
	char *s;

	if ((s = strdup(v)) == NULL)
		return CB_ERR_NOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int
set_path(char **dst, const char *dir, const char *v)
{
	char *s;

	if ((s = util_path_join(dir, v)) == NULL)
		return CB_ERR_NOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* Keywords that take an integer from 1 to max, and those that take yes or no. */
static const struct {
	const char *kw;
	long long max;
	size_t off;		/* an int in struct proxy_conf */
} int_kws[] = {
	{ "resolve_workers", PROXY_WORKERS_MAX, offsetof(struct proxy_conf, resolve_workers) },
	{ "max_conns_per_sandbox", PROXY_CONNS_MAX, offsetof(struct proxy_conf, sandbox_conns) },
	{ "head_timeout", PROXY_HEAD_TIMEOUT_MAX, offsetof(struct proxy_conf, head_timeout_s) },
	{ "idle_timeout", PROXY_IDLE_TIMEOUT_MAX, offsetof(struct proxy_conf, idle_timeout_s) },
};
static const struct {
	const char *kw;
	size_t off;
} bool_kws[] = {
	{ "allow_private", offsetof(struct proxy_conf, allow_private) },
	{ "plaintext_credentials", offsetof(struct proxy_conf, plaintext_credentials) },
	{ "seccomp", offsetof(struct proxy_conf, seccomp) },
};

/* kw with one argument, when it is one of int_kws or bool_kws: 1 after setting it. */
static int
set_simple(struct proxy_conf *c, const char *kw, const char *arg, int lineno, char *why,
    size_t whylen, int *rc)
{
	long long v;
	size_t i;

	*rc = 0;
	for (i = 0; i < UTIL_ARRAY_LEN(int_kws); i++) {
		if (strcmp(kw, int_kws[i].kw) != 0)
			continue;
		if (util_strtoll(arg, 1, int_kws[i].max, &v) != 0) {
			snprintf(why, whylen, "line %d: %s 1-%lld", lineno, kw, int_kws[i].max);
			*rc = CB_ERR_CONFIG;
		} else
			*(int *)(void *)((char *)c + int_kws[i].off) = (int)v;
		return 1;
	}
	for (i = 0; i < UTIL_ARRAY_LEN(bool_kws); i++) {
		if (strcmp(kw, bool_kws[i].kw) != 0)
			continue;
		if (strcmp(arg, "yes") != 0 && strcmp(arg, "no") != 0) {
			snprintf(why, whylen, "line %d: %s yes|no", lineno, kw);
			*rc = CB_ERR_CONFIG;
		} else
			*(int *)(void *)((char *)c + bool_kws[i].off) = strcmp(arg, "yes") == 0;
		return 1;
	}
	return 0;
}

static int
conf_line(void *arg, int lineno, int argc, char **argv, char *why, size_t whylen)
{
	struct parse_ctx *p = arg;
	struct proxy_conf *c = p->c;
	char host[256];
	const char *kw = argv[0];
	char **dst = NULL;
	int port, rc;

	if (strcmp(kw, "sandbox") == 0) {
		if (argc != 3) {
			snprintf(why, whylen, "line %d: usage: sandbox CIDR ID", lineno);
			return CB_ERR_CONFIG;
		}
		if ((rc = proxy_conf_add_cidr(c, argv[1], argv[2])) != 0) {
			snprintf(why, whylen, "line %d: bad sandbox CIDR or ID", lineno);
			return rc == CB_ERR_NOMEM ? rc : CB_ERR_CONFIG;
		}
		c->cidrs[c->ncidrs - 1].line = lineno;
		if (p->sandbox_line == 0)
			p->sandbox_line = lineno;
		return 0;
	}
	if (strcmp(kw, "allow_host") != 0 && (rc = once(p, kw, lineno, why, whylen)) != 0)
		return rc;
	if (argc != 2) {
		snprintf(why, whylen, "line %d: %s takes one argument", lineno, kw);
		return CB_ERR_CONFIG;
	}
	if (set_simple(c, kw, argv[1], lineno, why, whylen, &rc))
		return rc;
	if (strcmp(kw, "listen") == 0) {
		if (proxy_split_hostport(argv[1], host, sizeof(host), &port) != 0) {
			snprintf(why, whylen, "line %d: listen ADDR:PORT", lineno);
			return CB_ERR_CONFIG;
		}
		c->listen_port = port;
		return set_str(&c->listen_host, host);
	}
	if (strcmp(kw, "allow_host") == 0) {
		if ((rc = proxy_conf_add_allow(c, argv[1])) != 0)
			snprintf(why, whylen, "line %d: bad allow_host", lineno);
		return rc == 0 || rc == CB_ERR_NOMEM ? rc : CB_ERR_CONFIG;
	}
	if (strcmp(kw, "user") == 0) {
		if (argv[1][0] == '\0' || strlen(argv[1]) > PROXY_USER_MAX) {
			snprintf(why, whylen, "line %d: user: empty or over-long name", lineno);
			return CB_ERR_CONFIG;
		}
		return set_str(&c->user, argv[1]);
	}
	if (strcmp(kw, "broker_url") == 0)
		return set_str(&c->broker_url, argv[1]);
	if (strcmp(kw, "sandbox_id") == 0) {
		if (strlen(argv[1]) >= PROXY_SANDBOX_MAX) {
			snprintf(why, whylen, "line %d: sandbox_id too long", lineno);
			return CB_ERR_CONFIG;
		}
		p->sandbox_id_line = lineno;
		return set_str(&c->sandbox_id, argv[1]);
	}
	if (strcmp(kw, "broker_ca") == 0)
		dst = &c->broker_ca;
	else if (strcmp(kw, "cert") == 0)
		dst = &c->cert;
	else if (strcmp(kw, "key") == 0)
		dst = &c->key;
	else if (strcmp(kw, "sandbox_ca") == 0)
		dst = &c->sandbox_ca;
	else if (strcmp(kw, "sandbox_ca_key") == 0)
		dst = &c->sandbox_ca_key;
	else if (strcmp(kw, "upstream_ca") == 0)
		dst = &c->upstream_ca;
	if (dst == NULL) {
		snprintf(why, whylen, "line %d: unknown keyword \"%s\"", lineno, kw);
		return CB_ERR_CONFIG;
	}
	return set_path(dst, p->dir, argv[1]);
}

int
proxy_conf_parse(struct proxy_conf *c, const char *buf, size_t len, const char *dir,
    char *why, size_t whylen)
{
	struct parse_ctx p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.c = c;
	p.dir = dir;
	if ((rc = conf_parse_lines(buf, len, conf_line, &p, why, whylen)) != 0)
		return rc;
	/*
	 * A sidecar serves one sandbox whatever the source address: with sandbox lines as
	 * well, every source (the map's other sandboxes too) would silently be that one.
	 */
	if (p.sandbox_id_line != 0 && p.sandbox_line != 0) {
		snprintf(why, whylen, "line %d: sandbox: the proxy is a sidecar (sandbox_id on "
		    "line %d), which ignores the sandbox map: keep one of them",
		    p.sandbox_line, p.sandbox_id_line);
		return CB_ERR_CONFIG;
	}
	return check_cidrs(c, why, whylen);
}

int
proxy_conf_load(struct proxy_conf *c, const char *path, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	char *dir = NULL;
	size_t len;
	int rc;

	if ((rc = util_read_file(path, PROXY_CONF_MAX, &buf, &len)) != 0) {
		snprintf(why, whylen, "cannot read (%s)", cb_strerror(rc));
		goto out;
	}
	if ((dir = util_dirname(path)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	if ((rc = proxy_conf_parse(c, (const char *)buf, len, dir, why, whylen)) != 0)
		goto out;
	rc = set_str(&c->path, path);
 out:
	free(dir);
	free(buf);
	return rc;
}
