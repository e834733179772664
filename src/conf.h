/*
 * conf.h: configuration files. Both daemons use one line-based format:
 *   # comment
 *   keyword arg arg ...        (arguments separated by blanks; "double quotes" allowed)
 * Relative paths are resolved against the directory of the configuration file.
 * credbrokerd.conf keywords: see docs/configuration.md (and conf.c).
 */
#ifndef CB_CONF_H
#define CB_CONF_H

#include <stddef.h>
#include <stdint.h>

enum role { ROLE_NONE = 0, ROLE_HARNESS, ROLE_PROXY, ROLE_ADMIN };

/* A client-certificate identity (SAN URI, or CN when the certificate has no URI). */
struct identity {
	char *id;
	enum role role;
	int64_t max_ttl_s;	/* harness policy: longest grant TTL (0 = none allowed) */
	char **secrets;		/* harness policy: secrets it may grant */
	size_t nsecrets;
	int all_secrets;	/* harness policy: "secrets *" */
};

struct broker_conf {
	char *path;		/* this file */
	char *listen_addr;	/* "127.0.0.1" */
	int listen_port;	/* 8443 */
	char *database;		/* absolute paths after loading */
	char *master_key;
	char *tls_cert;
	char *tls_key;
	char *client_ca;
	char *user;		/* drop to this user when started as root; NULL: stay */
	size_t max_body;	/* bytes; larger bodies get 413 */
	int threads;		/* server threads */
	int conn_timeout_s;	/* idle connection timeout */
	int conn_limit;		/* total connections */
	int per_ip_limit;	/* connections per source address */
	int purge_interval_s;
	int purge_batch;
	int log_level;
	struct identity *idents;
	size_t nidents;
	int seccomp;		/* 1: install the seccomp filter once serving (default on Linux) */
};

/* `seccomp` when the file does not say: yes on Linux. */
#ifdef __linux__
#define CONF_SECCOMP_DEFAULT	1
#else
#define CONF_SECCOMP_DEFAULT	0
#endif

/* Loads and validates credbrokerd.conf; *out owned by the caller. why names file and line. */
int conf_load_broker(const char *path, struct broker_conf **out, char *why, size_t whylen);
/* Parses a configuration held in memory (dir resolves relative paths); used by fuzzing. */
int conf_parse_broker(const char *buf, size_t len, const char *dir, struct broker_conf **out,
    char *why, size_t whylen);
void conf_free_broker(struct broker_conf *c);

/* Returns the identity with this ID, or NULL (owned by c). */
const struct identity *conf_find_identity(const struct broker_conf *c, const char *id);
/* 1 when a harness identity may grant this secret by policy, else 0. */
int conf_may_grant(const struct identity *who, const char *secret);
/* "harness", "proxy", "admin" or "none". */
const char *conf_role_name(enum role r);

/*
 * The shared line parser: calls fn for each non-empty line with its words (quotes
 * removed). fn returns 0 or an error after writing why (its whole message: put the
 * file and lineno in it). Lines are bounded (4 KiB), words per line bounded (64), the
 * buffer 1 MiB; a longer line, an unterminated quote, a quote inside a word or a control
 * byte (other than tab and the CR of CRLF) is an error, written as "line N: message".
 * A word is a run of non-blank bytes or a "quoted string" (no escapes); '#' at the
 * start of a word comments out the rest of the line. Returns 0 or a CB_ERR_*.
 */
typedef int (*conf_line_fn)(void *arg, int lineno, int argc, char **argv, char *why,
    size_t whylen);
int conf_parse_lines(const char *buf, size_t len, conf_line_fn fn, void *arg, char *why,
    size_t whylen);
/*
 * Reads path (a regular file of at most 1 MiB) and runs conf_parse_lines on it; the
 * lexer's own errors then read "PATH:LINE: message" (fn writes its own messages).
 */
int conf_load_lines(const char *path, conf_line_fn fn, void *arg, char *why, size_t whylen);

#endif
