/*
 * api.h: the broker's HTTP API independent of the HTTP server. server.c authenticates
 * the connection and reads the body, then hands an api_call to api_dispatch(), which
 * routes by method and path, checks the caller's role, parses the JSON body and calls
 * the handler (grant.c for grants and resolve, api.c itself for secrets, keys, audit,
 * health and metrics). Every call ends with exactly one call->reply(), possibly from
 * another thread (the commit thread), possibly after api_dispatch returned.
 */
#ifndef CB_API_H
#define CB_API_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "conf.h"
#include "token.h"

struct vault;
struct commit;
struct store_pool;
struct metrics;

/* Everything a handler needs; built once by credbrokerd.c, shared read-only by threads. */
struct broker {
	struct broker_conf *conf;
	struct vault *vault;
	struct commit *commit;		/* the group-commit writer */
	struct store_pool *readers;	/* per-thread reader connections */
	struct metrics *metrics;
};

/* What an API call sees of its request. */
struct api_call {
	struct broker *b;
	const struct identity *who;	/* the authenticated caller; never NULL in handlers */
	const char *peer;		/* client address, for logs */
	const char *method;		/* "GET", "POST", ... */
	const char *path;		/* "/v1/grants/abc" (no query) */
	const char *path_arg;		/* the {id}/{name}/{sandbox_id} of the route, or NULL */
	const char *query_after;	/* GET /v1/audit?after=, or NULL */
	const char *query_limit;	/* GET /v1/audit?limit=, or NULL */
	int query_bad;			/* GET: a parameter given twice, or not after/limit */
	json_t *body;			/* parsed JSON object for POST/PUT, or NULL */
	const char *body_error;		/* set by server.c when the body did not parse (json.h code) */
	const char *route;		/* route label for metrics and logs ("POST /v1/grants") */
	char grant_id[GRANT_ID_LEN + 1];	/* set by handlers for the request log; "" when none */
	int64_t start_us;		/* monotonic start, for latency */

	/*
	 * Sends the answer. body is stolen (may be NULL for 204). sensitive: the body
	 * holds a secret value (resolve): the server wipes its copy after sending.
	 * Exactly once per call; then the call must not be touched.
	 */
	void (*reply)(struct api_call *call, int status, json_t *body, int sensitive);
	void *server_ctx;		/* owned by server.c */

	/*
	 * An answer given as text: GET /metrics, and the JSON a token resolve or a mint
	 * writes directly (grant.c). A handler sets raw_body (malloc'd, transferred to the
	 * server), raw_len and content_type, then calls reply(call, status, NULL,
	 * sensitive); a sensitive raw body is wiped after sending (and any raw body the
	 * server still holds is wiped when the request is freed).
	 */
	char *raw_body;
	size_t raw_len;
	const char *content_type;
	char path_arg_buf[256];		/* storage for path_arg (api.c) */
	char allow[64];			/* a 405's Allow header ("GET, DELETE"), else "" */
};

/* Routes a call (see above). Never blocks on disk I/O of the commit thread. */
void api_dispatch(struct api_call *call);

/* Replies {"error": code} with status. */
void api_error(struct api_call *call, int status, const char *code);

/* For docs and tests: the route table as "METHOD /path/{param}" strings, NULL-terminated. */
extern const char *const api_routes[];

#endif
