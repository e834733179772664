/*
 * proxy.h: credproxy internals shared by its files: configuration (proxy_conf.c),
 * interception certificates (proxy_cert.c), the resolve worker pool (proxy_resolve.c)
 * and the event loop (proxy.c).
 */
#ifndef CB_PROXY_H
#define CB_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct event_base;

#include "credbroker.h"
#include "proxy_http.h"

/* ---- configuration (proxy_conf.c) ---- */

struct proxy_cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int bits;
	char *sandbox_id;
	int line;		/* its line in credproxy.conf; 0: not from a file */
};

struct proxy_conf {
	char *path;		/* the file, or NULL when none was given */
	char *listen_host;	/* "127.0.0.1" */
	int listen_port;	/* 3128 */
	char *broker_url;
	char *broker_ca;	/* absolute paths after loading */
	char *cert;
	char *key;
	char *sandbox_ca;
	char *sandbox_ca_key;
	char *sandbox_id;	/* sidecar mode; NULL: the CIDR map */
	char *upstream_ca;	/* NULL: the system store */
	struct proxy_cidr *cidrs;
	size_t ncidrs;
	char **allow_hosts;
	size_t nallow;
	int allow_private;
	int plaintext_credentials;	/* 1: credentials may go out over plain HTTP */
	char *user;		/* drop to this user when started as root; NULL: stay */
	int seccomp;		/* 1: seccomp filter once serving (default on Linux) */
	int resolve_workers;	/* broker resolves in flight at once (threads) */
	int sandbox_conns;	/* shared mode: connections one sandbox may hold */
	int head_timeout_s;	/* from a head's first byte (or the connection) to its end */
	int idle_timeout_s;	/* a sandbox connection (or tunnel) without traffic */
};

#define PROXY_WORKERS_DEFAULT	16
#define PROXY_WORKERS_MAX	256
#define PROXY_CONNS_MAX		4096	/* sandbox connections in all */
#define PROXY_SANDBOX_CONNS_DEFAULT	1024
#define PROXY_HEAD_TIMEOUT_DEFAULT	60
#define PROXY_HEAD_TIMEOUT_MAX	3600
#define PROXY_IDLE_TIMEOUT_DEFAULT	120
#define PROXY_IDLE_TIMEOUT_MAX	86400

/* Returns a new configuration with defaults; *out owned by the caller (proxy_conf_free). */
int proxy_conf_new(struct proxy_conf **out);
/* Loads path into c (keywords of credproxy.conf); why names file and line on error. */
int proxy_conf_load(struct proxy_conf *c, const char *path, char *why, size_t whylen);
/* Parses a configuration held in memory; dir resolves relative paths. */
int proxy_conf_parse(struct proxy_conf *c, const char *buf, size_t len, const char *dir,
    char *why, size_t whylen);
void proxy_conf_free(struct proxy_conf *c);
/* Adds a host to the allowlist (copied, lower-cased). */
int proxy_conf_add_allow(struct proxy_conf *c, const char *host);
/* Adds "CIDR ID" to the source-address map. */
int proxy_conf_add_cidr(struct proxy_conf *c, const char *cidr, const char *id);
/* The sandbox ID for a source address (owned by c), or NULL when unknown. */
const char *proxy_conf_sandbox(const struct proxy_conf *c, const struct sockaddr *sa);
/* 1 when host (case-insensitive) is on the allowlist. */
int proxy_conf_allowed(const struct proxy_conf *c, const char *host);
/* Splits "host:port" / "[v6]:port" into host (brackets removed) and port. */
int proxy_split_hostport(const char *s, char *host, size_t hostlen, int *port);
/* 1 when host is an IPv4 or IPv6 literal. */
int proxy_is_ip_literal(const char *host);
/* 1 when an address is loopback, private, link-local, unspecified, multicast or reserved. */
int proxy_addr_is_private(const struct sockaddr *sa);

/* ---- interception certificates (proxy_cert.c) ---- */

struct proxy_certs;

/* Loads the sandbox CA (cert + key PEM) and makes the leaf key; *out owned by caller. */
int proxy_certs_new(const char *ca_cert, const char *ca_key, struct proxy_certs **out);
void proxy_certs_free(struct proxy_certs *pc);
/*
 * Returns a server SSL_CTX whose certificate is a leaf for host (DNS name or IP
 * literal), minted under the sandbox CA and cached (LRU). *out holds a reference
 * the caller releases with SSL_CTX_free (after SSL_new, which takes its own).
 */
int proxy_certs_ctx(struct proxy_certs *pc, const char *host, SSL_CTX **out);

/* ---- resolve worker pool (proxy_resolve.c) ---- */

#define PROXY_SANDBOX_MAX	128

struct proxy_pattern {
	char *value;		/* the real credential header value (wiped) */
	char *repl;		/* the token (swap) or the redaction marker (inject) */
};

#define PROXY_SET_MAX	(2 * PH_TOKENS_MAX + 8)
#define PROXY_ADDRS_MAX	8
#define PROXY_REDACTED	"[credproxy:redacted]"

struct proxy_job {
	/* in (set by the loop thread before proxy_pool_submit) */
	char *tokens[PH_TOKENS_MAX];	/* owned, wiped */
	size_t ntokens;
	char sandbox[PROXY_SANDBOX_MAX];
	char host[256];
	int port;
	char method[24];
	char *path;
	int allowlisted;	/* a token-less refusal may still go to this host */
	int allow_private;
	int need_addr;		/* resolve the upstream name too */
	size_t tok_next;	/* the first token still to resolve (0 but after a retry) */
	/* out (set by a worker) */
	int status;		/* 0: go ahead; else the HTTP status to answer */
	char reason[160];	/* for the sandbox, when status != 0 */
	struct ph_set set[PROXY_SET_MAX];	/* headers to set (strings owned by the job) */
	size_t nset;
	struct proxy_pattern pats[PROXY_SET_MAX * 2];
	size_t npats;
	struct sockaddr_storage addrs[PROXY_ADDRS_MAX];	/* checked addresses, in order */
	socklen_t addrlens[PROXY_ADDRS_MAX];
	size_t naddrs;
	/* completion: the worker calls done(arg, job) on its own thread */
	void (*done)(void *arg, struct proxy_job *job);
	void *arg;
};

struct proxy_pool;

/*
 * Starts n workers, each with its own client (opts copied), and allows up to n broker
 * connections on the event loop base (the loop thread's); *out owned by the caller.
 */
int proxy_pool_new(const struct cbc_opts *opts, int n, struct event_base *base,
    struct proxy_pool **out);
/*
 * Loop thread: resolves a job on the loop or queues it for a worker; ownership stays
 * with the caller until done() runs (from a worker, or from the loop's own channel:
 * done() may then be called before this returns, so it must only schedule work).
 * CB_ERR_BUSY when the workers' queue is full (the job was not taken).
 */
int proxy_pool_submit(struct proxy_pool *p, struct proxy_job *job);
/*
 * Loop thread, once the loop has stopped: stops and joins the workers, closes the loop's
 * broker connections (a job in flight on one stays the caller's, done() not called),
 * then frees; NULL is fine.
 */
void proxy_pool_free(struct proxy_pool *p);
/* Allocates an empty job; NULL on failure. */
struct proxy_job *proxy_job_new(void);
/* Wipes and frees a job; NULL is fine. */
void proxy_job_free(struct proxy_job *job);

#endif
