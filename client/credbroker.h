/*
 * credbroker.h: libcredbroker, the C client of the credbroker broker API (v1).
 *
 * One cbc_t is one authenticated client (mutual TLS: a client certificate and key,
 * and the CA that signed the broker's certificate) with a reused connection. A cbc_t
 * is not thread-safe: use one per thread. Every call returns 0 or a negative
 * enum cbc_err; after an error, cbc_errmsg() says what failed and what to do,
 * cbc_http_status() and cbc_error_code() give the broker's answer when there was one.
 * Results are owned by the caller and freed with their _free function; anything that
 * can hold a secret value or a token is wiped before it is freed. Answers over 1 MiB
 * are CBC_E_PROTOCOL. So that jansson's internal copies of a resolved credential are
 * wiped too, the first cbc_new() makes jansson wipe the memory it frees
 * (json_set_alloc_funcs), unless the application installed its own allocator first.
 *
 * Build with: pkg-config --cflags --libs libcredbroker
 */
#ifndef CREDBROKER_H
#define CREDBROKER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CBC_API __attribute__((visibility("default")))
#else
#define CBC_API
#endif

enum cbc_err {
	CBC_OK = 0,
	CBC_E_REFUSED = -1,	/* the broker answered 4xx (see cbc_http_status/cbc_error_code) */
	CBC_E_USAGE = -2,	/* invalid argument */
	CBC_E_CONNECT = -3,	/* connection or TLS failure (broker down, wrong CA, bad certificate) */
	CBC_E_PROTOCOL = -4,	/* the broker's answer was malformed, truncated or oversized */
	CBC_E_SERVER = -5,	/* the broker answered 5xx */
	CBC_E_NOMEM = -6,
	CBC_E_IO = -7,		/* reading a local file failed */
};

typedef struct cbc cbc_t;

struct cbc_opts {
	const char *url;	/* "https://127.0.0.1:8443" */
	const char *cert;	/* client certificate (PEM) */
	const char *key;	/* its private key (PEM) */
	const char *cacert;	/* CA bundle that signed the broker's certificate (PEM) */
	long timeout_ms;	/* per request; 0 = 10000 */
};

/* Creates a client; *out owned by the caller (cbc_free). */
CBC_API int cbc_new(const struct cbc_opts *opts, cbc_t **out);
/* Closes the connection and frees; NULL is fine. */
CBC_API void cbc_free(cbc_t *c);
/* A static description of an error code. */
CBC_API const char *cbc_strerror(int err);
/* The last error's message (owned by c, valid until the next call); "" when none. */
CBC_API const char *cbc_errmsg(const cbc_t *c);
/* The last HTTP status (0 when there was no answer). */
CBC_API int cbc_http_status(const cbc_t *c);
/* The last answer's "error" code ("expired", "host_not_allowed", ...) or "" (owned by c). */
CBC_API const char *cbc_error_code(const cbc_t *c);

/* ---- grants (harness role) ---- */

struct cbc_binding {
	const char *secret;
	const char *host;
	int port;			/* 0 = 443 */
	const char *const *methods;	/* NULL-terminated; NULL = any method */
	const char *path_prefix;	/* NULL = any path */
	const char *header;		/* NULL = "Authorization" */
	const char *template_;		/* NULL = "Bearer {secret}" */
	int inject;			/* 1: inject mode (the sandbox holds nothing) */
};

#define CBC_BINDINGS_MAX	16	/* bindings in one grant: the broker's limit */

struct cbc_grant_req {
	const char *sandbox_id;
	long long ttl_s;
	long long max_uses;		/* 0 = unlimited */
	const struct cbc_binding *bindings;
	size_t nbindings;
};

struct cbc_grant {
	char *grant_id;
	char *token;			/* "cbt_...": a bearer credential, wiped by cbc_grant_free */
	char *expires_at;		/* RFC 3339 */
};

/* POST /v1/grants. *out owned by the caller (cbc_grant_free). */
CBC_API int cbc_grant_mint(cbc_t *c, const struct cbc_grant_req *req, struct cbc_grant **out);
CBC_API void cbc_grant_free(struct cbc_grant *g);
/* GET /v1/grants/{id}: the answer as JSON text, *json owned by the caller (free()). */
CBC_API int cbc_grant_show(cbc_t *c, const char *grant_id, char **json);
/* DELETE /v1/grants/{id}. */
CBC_API int cbc_grant_revoke(cbc_t *c, const char *grant_id);
/* DELETE /v1/sandboxes/{id}/grants; *revoked (may be NULL) receives how many. */
CBC_API int cbc_sandbox_revoke(cbc_t *c, const char *sandbox_id, long long *revoked);

/* ---- resolve (proxy role) ---- */

struct cbc_header {
	char *name;
	char *value;			/* the real credential: wiped by cbc_resolved_free */
};

struct cbc_resolved {
	struct cbc_header *headers;
	size_t nheaders;		/* 0: allowed, nothing to inject */
	long long expires_in;		/* seconds */
};

/*
 * POST /v1/resolve. token NULL: a token-less resolve (inject bindings). A refusal is
 * CBC_E_REFUSED with cbc_error_code() set. *out owned by the caller (cbc_resolved_free).
 */
CBC_API int cbc_resolve(cbc_t *c, const char *token, const char *sandbox_id, const char *host,
    int port, const char *method, const char *path, struct cbc_resolved **out);
CBC_API void cbc_resolved_free(struct cbc_resolved *r);

/*
 * The same resolve without blocking, for an event loop (credproxy's). The resolve uses
 * its own kept-alive connection (every TLS option of cbc_new):
 * - cbc_resolve_connect() connects it if it is not connected; this blocks (up to the
 *   timeout), so call it off the loop. cbc_resolve_fd() is its socket, -1 when none.
 * - cbc_resolve_start() prepares one resolve on the connected connection;
 * - cbc_resolve_step() sends and reads without blocking: CBC_PENDING with *events
 *   (POLLIN or POLLOUT) to wait for on cbc_resolve_fd(), 0 once the whole answer is in
 *   (then cbc_resolve_finish(), which returns what cbc_resolve() would), or an error,
 *   after which the connection is closed and cbc_resolve_retryable() says whether the
 *   same resolve may be repeated on a new connection (the connection closed before
 *   any answer byte: a broker that restarted or dropped an idle connection).
 * - The caller keeps the time: cbc_resolve_abort() drops a resolve and its connection.
 */
#define CBC_PENDING 1
CBC_API int cbc_resolve_connect(cbc_t *c);
CBC_API int cbc_resolve_fd(const cbc_t *c);
CBC_API int cbc_resolve_start(cbc_t *c, const char *token, const char *sandbox_id,
    const char *host, int port, const char *method, const char *path);
CBC_API int cbc_resolve_step(cbc_t *c, short *events);
CBC_API int cbc_resolve_retryable(const cbc_t *c);
CBC_API int cbc_resolve_finish(cbc_t *c, struct cbc_resolved **out);
CBC_API void cbc_resolve_abort(cbc_t *c);

/* ---- admin role ---- */

/*
 * PUT /v1/secrets/{name}: value of len bytes (never logged, never in an error);
 * hosts NULL-terminated; *version (may be NULL) receives the new version.
 */
CBC_API int cbc_secret_put(cbc_t *c, const char *name, const unsigned char *value, size_t len,
    const char *const *hosts, long long max_ttl_s, long long *version);
/* GET /v1/secrets or GET /v1/secrets/{name} (name NULL: list); *json owned by the caller. */
CBC_API int cbc_secret_get(cbc_t *c, const char *name, char **json);
/* DELETE /v1/secrets/{name}. */
CBC_API int cbc_secret_delete(cbc_t *c, const char *name);
/* POST /v1/keys/rotate with {"kind": "data"|"signing"}; *json (may be NULL) receives the answer. */
CBC_API int cbc_key_rotate(cbc_t *c, const char *kind, char **json);
/* GET /v1/audit?after=SEQ&limit=N; *json owned by the caller. */
CBC_API int cbc_audit_get(cbc_t *c, long long after, long long limit, char **json);
/*
 * GET /v1/audit/verify: {"intact": bool, "records": N} plus, when not intact,
 * "first_bad_seq": N and "problem": "...". *json owned by the caller (free()).
 */
CBC_API int cbc_audit_verify(cbc_t *c, char **json);

/* ---- everyone ---- */

/* GET /healthz. */
CBC_API int cbc_health(cbc_t *c);

#ifdef __cplusplus
}
#endif

#endif
