/*
 * conf.c: the line-based configuration format shared by both daemons, and the
 * broker's own file (credbrokerd.conf): listener, files, limits, identities and
 * the harness policy. Everything is bounded: file size, line length, words per
 * line, identities. Errors name the file and line ("FILE:LINE: message").
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define CONF_FILE_MAX		(1024 * 1024)	/* bytes */
#define CONF_LINE_MAX		4096		/* bytes, newline excluded */
#define CONF_WORDS_MAX		64
#define CONF_IDENTS_MAX		1024
#define CONF_ID_MAX		1024		/* bytes of an identity URI */
#define CONF_SECRET_NAME_MAX	128
#define CONF_USER_MAX		32
#define CONF_MAX_TTL_MAX	31536000LL	/* one year */

/* --- the shared lexer ------------------------------------------------------- */

/*
 * Splits one line (NUL-terminated copy in line, modified in place) into words.
 * A word is a run of non-blank bytes or a "double-quoted" string (no escapes);
 * '#' at the start of a word begins a comment. Returns 0 or CB_ERR_CONFIG with why.
 */
static int
conf_split(char *line, int *argcp, char **argv, char *why, size_t whylen)
{
	char *p = line, *w;
	int argc = 0;

	*argcp = 0;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		if (argc >= CONF_WORDS_MAX) {
			snprintf(why, whylen, "more than %d words on a line", CONF_WORDS_MAX);
			return CB_ERR_CONFIG;
		}
		if (*p == '"') {
			w = ++p;
			while (*p != '\0' && *p != '"')
				p++;
			if (*p != '"') {
				snprintf(why, whylen, "unterminated quote");
				return CB_ERR_CONFIG;
			}
			*p++ = '\0';
			if (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r') {
				snprintf(why, whylen, "a closing quote must end its word");
				return CB_ERR_CONFIG;
			}
		} else {
			w = p;
			while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r') {
				if (*p == '"') {
					snprintf(why, whylen, "quote inside a word");
					return CB_ERR_CONFIG;
				}
				p++;
			}
		}
		argv[argc++] = w;
		if (*p != '\0')
			*p++ = '\0';
	}
	argv[argc] = NULL;
	*argcp = argc;
	return 0;
}

/* The lexer; name (may be NULL) prefixes the lexer's own errors as "NAME:LINE: ". */
static int
conf_lex(const char *buf, size_t len, const char *name, conf_line_fn fn, void *arg,
    char *why, size_t whylen)
{
	char line[CONF_LINE_MAX + 1];
	char msg[256];
	char *argv[CONF_WORDS_MAX + 1];
	size_t off = 0, n, i;
	int lineno = 0, argc, rc = 0;
	const char *nl;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (len > CONF_FILE_MAX) {
		snprintf(why, whylen, "%s: larger than %d bytes", name != NULL ? name : "config",
		    CONF_FILE_MAX);
		return CB_ERR_LIMIT;
	}
	while (off < len) {
		lineno++;
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		if (n > CONF_LINE_MAX) {
			snprintf(msg, sizeof(msg), "line longer than %d bytes", CONF_LINE_MAX);
			rc = CB_ERR_CONFIG;
			goto lexerr;
		}
		for (i = 0; i < n; i++) {
			unsigned char c = (unsigned char)buf[off + i];

			/* CR only as part of CRLF; other control bytes and NUL are refused. */
			if ((c < 0x20 && c != '\t' && !(c == '\r' && i == n - 1)) || c == 0x7f) {
				snprintf(msg, sizeof(msg), "control character 0x%02x", c);
				rc = CB_ERR_CONFIG;
				goto lexerr;
			}
		}
		memcpy(line, buf + off, n);
		line[n] = '\0';
		off += n + (nl != NULL ? 1 : 0);
		if ((rc = conf_split(line, &argc, argv, msg, sizeof(msg))) != 0)
			goto lexerr;
		if (argc == 0)
			continue;
		if ((rc = fn(arg, lineno, argc, argv, why, whylen)) != 0) {
			if (why != NULL && whylen > 0 && why[0] == '\0') {
				snprintf(msg, sizeof(msg), "%s", cb_strerror(rc));
				goto lexerr;
			}
			goto out;
		}
	}
	goto out;
lexerr:
	if (name != NULL)
		snprintf(why, whylen, "%s:%d: %s", name, lineno, msg);
	else
		snprintf(why, whylen, "line %d: %s", lineno, msg);
out:
	explicit_bzero(line, sizeof(line));
	return rc;
}

int
conf_parse_lines(const char *buf, size_t len, conf_line_fn fn, void *arg, char *why,
    size_t whylen)
{
	return conf_lex(buf, len, NULL, fn, arg, why, whylen);
}

int
conf_load_lines(const char *path, conf_line_fn fn, void *arg, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = util_read_file(path, CONF_FILE_MAX, &buf, &len)) != 0) {
		if (rc == CB_ERR_LIMIT)
			snprintf(why, whylen, "%s: not a regular file or larger than %d bytes",
			    path, CONF_FILE_MAX);
		else
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return rc == CB_ERR_LIMIT ? CB_ERR_CONFIG : rc;
	}
	rc = conf_lex((const char *)buf, len, path, fn, arg, why, whylen);
	util_wipe_free(buf, len + 1);
	return rc;
}

/* --- the broker's configuration ----------------------------------------------- */

enum conf_kw {
	KW_LISTEN, KW_DATABASE, KW_MASTER_KEY, KW_TLS_CERT, KW_TLS_KEY, KW_CLIENT_CA,
	KW_USER, KW_MAX_BODY, KW_THREADS, KW_CONN_TIMEOUT, KW_CONN_LIMIT, KW_PER_IP_LIMIT,
	KW_PURGE_INTERVAL, KW_PURGE_BATCH, KW_LOG_LEVEL, KW_SECCOMP, KW_IDENTITY, KW_COUNT
};

enum conf_argk { ARG_NONE, ARG_PATH, ARG_INT, ARG_OTHER };

static const struct conf_kwdef {
	const char *name;
	int required;
	enum conf_argk kind;
	long long min, max;	/* ARG_INT */
} conf_kws[KW_COUNT] = {
	[KW_LISTEN] =		{ "listen", 1, ARG_OTHER, 0, 0 },
	[KW_DATABASE] =		{ "database", 1, ARG_PATH, 0, 0 },
	[KW_MASTER_KEY] =	{ "master_key", 1, ARG_PATH, 0, 0 },
	[KW_TLS_CERT] =		{ "tls_cert", 1, ARG_PATH, 0, 0 },
	[KW_TLS_KEY] =		{ "tls_key", 1, ARG_PATH, 0, 0 },
	[KW_CLIENT_CA] =	{ "client_ca", 1, ARG_PATH, 0, 0 },
	[KW_USER] =		{ "user", 0, ARG_OTHER, 0, 0 },
	[KW_MAX_BODY] =		{ "max_body", 0, ARG_INT, 1, 16 * 1024 * 1024 },
	[KW_THREADS] =		{ "threads", 0, ARG_INT, 1, 64 },
	[KW_CONN_TIMEOUT] =	{ "conn_timeout", 0, ARG_INT, 1, 86400 },
	[KW_CONN_LIMIT] =	{ "conn_limit", 0, ARG_INT, 1, 65536 },
	[KW_PER_IP_LIMIT] =	{ "per_ip_limit", 0, ARG_INT, 1, 65536 },
	[KW_PURGE_INTERVAL] =	{ "purge_interval", 0, ARG_INT, 1, 86400 },
	[KW_PURGE_BATCH] =	{ "purge_batch", 0, ARG_INT, 1, 100000 },
	[KW_LOG_LEVEL] =	{ "log_level", 0, ARG_OTHER, 0, 0 },
	[KW_SECCOMP] =		{ "seccomp", 0, ARG_OTHER, 0, 0 },
	[KW_IDENTITY] =		{ "identity", 0, ARG_OTHER, 0, 0 },
};

struct conf_ctx {
	struct broker_conf *c;
	const char *name;	/* file name for messages, or NULL */
	const char *dir;	/* resolves relative paths; NULL keeps them as written */
	int seen[KW_COUNT];	/* line of first occurrence, 0 when absent */
	size_t identcap;
};

static int conf_err(struct conf_ctx *x, int lineno, char *why, size_t whylen,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes "NAME:LINE: message" (or "line LINE: message") and returns CB_ERR_CONFIG. */
static int
conf_err(struct conf_ctx *x, int lineno, char *why, size_t whylen, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (x->name != NULL)
		snprintf(why, whylen, "%s:%d: %s", x->name, lineno, msg);
	else
		snprintf(why, whylen, "line %d: %s", lineno, msg);
	return CB_ERR_CONFIG;
}

static int
conf_valid_secret_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > CONF_SECRET_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9');

		if (i == 0 && !alnum)
			return 0;
		if (!alnum && ch != '.' && ch != '_' && ch != '-')
			return 0;
	}
	return 1;
}

/* "ADDR:PORT" with ADDR an IPv4 literal or a bracketed IPv6 literal. */
static int
conf_parse_listen(struct conf_ctx *x, int lineno, const char *arg, char *why, size_t whylen)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char sa[sizeof(struct in6_addr)];
	const char *colon, *port;
	long long v;
	size_t n;
	int v6 = 0;

	if (arg[0] == '[') {
		colon = strchr(arg, ']');
		if (colon == NULL || colon[1] != ':')
			return conf_err(x, lineno, why, whylen,
			    "listen: expected [IPV6]:PORT, got '%s'", arg);
		n = (size_t)(colon - arg - 1);
		port = colon + 2;
		arg++;
		v6 = 1;
	} else {
		colon = strrchr(arg, ':');
		if (colon == NULL)
			return conf_err(x, lineno, why, whylen,
			    "listen: expected ADDR:PORT, got '%s'", arg);
		n = (size_t)(colon - arg);
		port = colon + 1;
	}
	if (n == 0 || n >= sizeof(addr))
		return conf_err(x, lineno, why, whylen, "listen: bad address");
	memcpy(addr, arg, n);
	addr[n] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, sa) != 1)
		return conf_err(x, lineno, why, whylen,
		    "listen: '%s' is not an IP%s address", addr, v6 ? "v6" : "v4 (IPv6: [ADDR]:PORT)");
	if (util_strtoll(port, 1, 65535, &v) != 0)
		return conf_err(x, lineno, why, whylen, "listen: bad port '%s' (1-65535)", port);
	if ((x->c->listen_addr = strdup(addr)) == NULL)
		return CB_ERR_NOMEM;
	x->c->listen_port = (int)v;
	return 0;
}

static int
conf_parse_level(struct conf_ctx *x, int lineno, const char *arg, char *why, size_t whylen)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	static const int levels[] = { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(names); i++) {
		if (strcmp(arg, names[i]) == 0) {
			x->c->log_level = levels[i];
			return 0;
		}
	}
	return conf_err(x, lineno, why, whylen,
	    "log_level: '%s' is not one of error, warn, info, debug", arg);
}

static void
conf_identity_clear(struct identity *id)
{
	size_t i;

	free(id->id);
	for (i = 0; i < id->nsecrets; i++)
		free(id->secrets[i]);
	free(id->secrets);
	memset(id, 0, sizeof(*id));
}

/* "a,b,c" into id->secrets; "*" sets all_secrets. */
static int
conf_parse_secrets(struct conf_ctx *x, int lineno, struct identity *id, const char *list,
    char *why, size_t whylen)
{
	const char *p = list, *comma;
	size_t n = 1, i, len;
	char name[CONF_SECRET_NAME_MAX + 1];

	if (strcmp(list, "*") == 0) {
		id->all_secrets = 1;
		return 0;
	}
	for (i = 0; list[i] != '\0'; i++)
		if (list[i] == ',')
			n++;
	if ((id->secrets = calloc(n, sizeof(*id->secrets))) == NULL)
		return CB_ERR_NOMEM;
	for (;;) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len > CONF_SECRET_NAME_MAX)
			return conf_err(x, lineno, why, whylen,
			    "secrets: empty or over-long name in '%s'", list);
		memcpy(name, p, len);
		name[len] = '\0';
		if (!conf_valid_secret_name(name))
			return conf_err(x, lineno, why, whylen,
			    "secrets: '%s' is not a valid secret name ('*' alone means all)", name);
		for (i = 0; i < id->nsecrets; i++)
			if (strcmp(id->secrets[i], name) == 0)
				return conf_err(x, lineno, why, whylen,
				    "secrets: '%s' listed twice", name);
		if ((id->secrets[id->nsecrets] = strdup(name)) == NULL)
			return CB_ERR_NOMEM;
		id->nsecrets++;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return 0;
}

/* identity URI role harness|proxy|admin [max_ttl SECONDS] [secrets LIST|*] */
static int
conf_parse_identity(struct conf_ctx *x, int lineno, int argc, char **argv, char *why,
    size_t whylen)
{
	struct broker_conf *c = x->c;
	struct identity id, *grown;
	long long v;
	size_t cap;
	int a, have_ttl = 0, have_secrets = 0, rc;

	memset(&id, 0, sizeof(id));
	if (argc < 4 || strcmp(argv[2], "role") != 0)
		return conf_err(x, lineno, why, whylen,
		    "usage: identity URI role harness|proxy|admin [max_ttl SECONDS] "
		    "[secrets NAME,...|*]");
	if (strlen(argv[1]) == 0 || strlen(argv[1]) > CONF_ID_MAX)
		return conf_err(x, lineno, why, whylen, "identity: empty or over-long ID");
	if (conf_find_identity(c, argv[1]) != NULL)
		return conf_err(x, lineno, why, whylen, "identity '%s' defined twice", argv[1]);
	if (c->nidents >= CONF_IDENTS_MAX)
		return conf_err(x, lineno, why, whylen, "more than %d identities",
		    CONF_IDENTS_MAX);
	if (strcmp(argv[3], "harness") == 0)
		id.role = ROLE_HARNESS;
	else if (strcmp(argv[3], "proxy") == 0)
		id.role = ROLE_PROXY;
	else if (strcmp(argv[3], "admin") == 0)
		id.role = ROLE_ADMIN;
	else
		return conf_err(x, lineno, why, whylen,
		    "identity: role '%s' is not harness, proxy or admin", argv[3]);
	for (a = 4; a < argc; a += 2) {
		if (strcmp(argv[a], "max_ttl") != 0 && strcmp(argv[a], "secrets") != 0) {
			rc = conf_err(x, lineno, why, whylen, "identity: unknown option '%s'",
			    argv[a]);
			goto out;
		}
		if (id.role != ROLE_HARNESS) {
			rc = conf_err(x, lineno, why, whylen,
			    "identity: '%s' applies to the harness role only", argv[a]);
			goto out;
		}
		if (a + 1 >= argc) {
			rc = conf_err(x, lineno, why, whylen, "identity: '%s' needs a value",
			    argv[a]);
			goto out;
		}
		if (strcmp(argv[a], "max_ttl") == 0) {
			if (have_ttl++) {
				rc = conf_err(x, lineno, why, whylen, "identity: max_ttl given twice");
				goto out;
			}
			if (util_strtoll(argv[a + 1], 1, CONF_MAX_TTL_MAX, &v) != 0) {
				rc = conf_err(x, lineno, why, whylen,
				    "identity: max_ttl '%s' is not a number of seconds in 1..%lld",
				    argv[a + 1], CONF_MAX_TTL_MAX);
				goto out;
			}
			id.max_ttl_s = v;
		} else {
			if (have_secrets++) {
				rc = conf_err(x, lineno, why, whylen, "identity: secrets given twice");
				goto out;
			}
			if ((rc = conf_parse_secrets(x, lineno, &id, argv[a + 1], why, whylen)) != 0)
				goto out;
		}
	}
	if (c->nidents == x->identcap) {
		cap = x->identcap == 0 ? 8 : x->identcap * 2;
		if ((grown = realloc(c->idents, cap * sizeof(*grown))) == NULL) {
			rc = CB_ERR_NOMEM;
			goto out;
		}
		c->idents = grown;
		x->identcap = cap;
	}
	if ((id.id = strdup(argv[1])) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	c->idents[c->nidents++] = id;	/* transferred */
	memset(&id, 0, sizeof(id));
	rc = 0;
out:
	conf_identity_clear(&id);
	return rc;
}

static int
conf_broker_line(void *arg, int lineno, int argc, char **argv, char *why, size_t whylen)
{
	struct conf_ctx *x = arg;
	struct broker_conf *c = x->c;
	const struct conf_kwdef *d = NULL;
	char **pathp = NULL;
	long long v;
	int kw;

	for (kw = 0; kw < KW_COUNT; kw++) {
		if (strcmp(argv[0], conf_kws[kw].name) == 0) {
			d = &conf_kws[kw];
			break;
		}
	}
	if (d == NULL)
		return conf_err(x, lineno, why, whylen, "unknown keyword '%s'", argv[0]);
	if (kw == KW_IDENTITY)
		return conf_parse_identity(x, lineno, argc, argv, why, whylen);
	if (x->seen[kw] != 0)
		return conf_err(x, lineno, why, whylen, "'%s' given twice (first on line %d)",
		    argv[0], x->seen[kw]);
	if (argc != 2)
		return conf_err(x, lineno, why, whylen, "'%s' takes exactly one argument",
		    argv[0]);
	x->seen[kw] = lineno;
	if (d->kind == ARG_INT) {
		if (util_strtoll(argv[1], d->min, d->max, &v) != 0)
			return conf_err(x, lineno, why, whylen,
			    "%s: '%s' is not a number in %lld..%lld", argv[0], argv[1], d->min,
			    d->max);
		switch (kw) {
		case KW_MAX_BODY: c->max_body = (size_t)v; break;
		case KW_THREADS: c->threads = (int)v; break;
		case KW_CONN_TIMEOUT: c->conn_timeout_s = (int)v; break;
		case KW_CONN_LIMIT: c->conn_limit = (int)v; break;
		case KW_PER_IP_LIMIT: c->per_ip_limit = (int)v; break;
		case KW_PURGE_INTERVAL: c->purge_interval_s = (int)v; break;
		case KW_PURGE_BATCH: c->purge_batch = (int)v; break;
		default: break;
		}
		return 0;
	}
	if (d->kind == ARG_PATH) {
		switch (kw) {
		case KW_DATABASE: pathp = &c->database; break;
		case KW_MASTER_KEY: pathp = &c->master_key; break;
		case KW_TLS_CERT: pathp = &c->tls_cert; break;
		case KW_TLS_KEY: pathp = &c->tls_key; break;
		case KW_CLIENT_CA: pathp = &c->client_ca; break;
		default: return CB_ERR_INVAL;
		}
		if (argv[1][0] == '\0' || strlen(argv[1]) >= PATH_MAX)
			return conf_err(x, lineno, why, whylen, "%s: empty or over-long path",
			    argv[0]);
		if ((*pathp = util_path_join(x->dir, argv[1])) == NULL)
			return CB_ERR_NOMEM;
		return 0;
	}
	switch (kw) {
	case KW_LISTEN:
		return conf_parse_listen(x, lineno, argv[1], why, whylen);
	case KW_LOG_LEVEL:
		return conf_parse_level(x, lineno, argv[1], why, whylen);
	case KW_SECCOMP:
		if (strcmp(argv[1], "yes") == 0)
			c->seccomp = 1;
		else if (strcmp(argv[1], "no") == 0)
			c->seccomp = 0;
		else
			return conf_err(x, lineno, why, whylen, "seccomp: '%s' is not yes or no",
			    argv[1]);
#ifndef __linux__
		if (c->seccomp)
			return conf_err(x, lineno, why, whylen, "seccomp: Linux only");
#endif
		return 0;
	case KW_USER:
		if (argv[1][0] == '\0' || strlen(argv[1]) > CONF_USER_MAX)
			return conf_err(x, lineno, why, whylen, "user: empty or over-long name");
		if ((c->user = strdup(argv[1])) == NULL)
			return CB_ERR_NOMEM;
		return 0;
	default:
		return CB_ERR_INVAL;
	}
}

static int
conf_parse_named(const char *buf, size_t len, const char *name, const char *dir,
    struct broker_conf **out, char *why, size_t whylen)
{
	struct conf_ctx x;
	struct broker_conf *c;
	int kw, rc;

	*out = NULL;
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	memset(&x, 0, sizeof(x));
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return CB_ERR_NOMEM;
	c->max_body = 65536;
	c->threads = 2;
	c->conn_timeout_s = 30;
	c->conn_limit = 1024;
	c->per_ip_limit = 256;
	c->purge_interval_s = 5;
	c->purge_batch = 1000;
	c->log_level = LOG_LVL_INFO;
	c->seccomp = CONF_SECCOMP_DEFAULT;
	x.c = c;
	x.name = name;
	x.dir = dir;
	if ((rc = conf_lex(buf, len, name, conf_broker_line, &x, why, whylen)) != 0)
		goto out;
	for (kw = 0; kw < KW_COUNT; kw++) {
		if (conf_kws[kw].required && x.seen[kw] == 0) {
			snprintf(why, whylen, "%s: missing required keyword '%s'",
			    name != NULL ? name : "config", conf_kws[kw].name);
			rc = CB_ERR_CONFIG;
			goto out;
		}
	}
	*out = c;	/* transferred */
	c = NULL;
out:
	conf_free_broker(c);
	return rc;
}

int
conf_parse_broker(const char *buf, size_t len, const char *dir, struct broker_conf **out,
    char *why, size_t whylen)
{
	return conf_parse_named(buf, len, NULL, dir, out, why, whylen);
}

int
conf_load_broker(const char *path, struct broker_conf **out, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *dir = NULL, *absdir = NULL;
	int rc;

	*out = NULL;
	if ((rc = util_read_file(path, CONF_FILE_MAX, &buf, &len)) != 0) {
		if (rc == CB_ERR_LIMIT) {
			snprintf(why, whylen, "%s: not a regular file or larger than %d bytes",
			    path, CONF_FILE_MAX);
			rc = CB_ERR_CONFIG;
		} else {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
		}
		goto out;
	}
	if ((dir = util_dirname(path)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	/* Absolute, so that the paths stay right whatever the daemon's working directory. */
	if ((absdir = realpath(dir, NULL)) == NULL) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		rc = CB_ERR_IO;
		goto out;
	}
	if ((rc = conf_parse_named((const char *)buf, len, path, absdir, out, why, whylen)) != 0)
		goto out;
	if (((*out)->path = strdup(path)) == NULL) {
		conf_free_broker(*out);
		*out = NULL;
		rc = CB_ERR_NOMEM;
	}
out:
	util_wipe_free(buf, len + 1);
	free(dir);
	free(absdir);
	return rc;
}

void
conf_free_broker(struct broker_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->listen_addr);
	free(c->database);
	free(c->master_key);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->client_ca);
	free(c->user);
	for (i = 0; i < c->nidents; i++)
		conf_identity_clear(&c->idents[i]);
	free(c->idents);
	free(c);
}

const struct identity *
conf_find_identity(const struct broker_conf *c, const char *id)
{
	size_t i;

	if (c == NULL || id == NULL)
		return NULL;
	for (i = 0; i < c->nidents; i++)
		if (strcmp(c->idents[i].id, id) == 0)
			return &c->idents[i];
	return NULL;
}

int
conf_may_grant(const struct identity *who, const char *secret)
{
	size_t i;

	if (who == NULL || secret == NULL || who->role != ROLE_HARNESS)
		return 0;
	if (who->all_secrets)
		return 1;
	for (i = 0; i < who->nsecrets; i++)
		if (strcmp(who->secrets[i], secret) == 0)
			return 1;
	return 0;
}

const char *
conf_role_name(enum role r)
{
	switch (r) {
	case ROLE_HARNESS:
		return "harness";
	case ROLE_PROXY:
		return "proxy";
	case ROLE_ADMIN:
		return "admin";
	default:
		return "none";
	}
}
