/*
 * grant.h: grants: minting (policy checks, token), showing, revoking, resolving
 * (token or inject), and purging expired/revoked grants. The handlers take an
 * api_call whose body api.c has already parsed (strict JSON) and whose role api.c has
 * already checked; they validate the body's fields themselves and reply via call->reply.
 *
 * Error codes (403 unless stated):
 *  mint:    secret_not_allowed (harness policy), host_not_allowed (secret allowlist),
 *           ttl_exceeds_policy, ttl_exceeds_secret, unknown_secret;
 *           400 for body problems (json.h codes, invalid_value).
 *  resolve: invalid_token, expired, not_yet_valid, revoked, used_up, sandbox_mismatch,
 *           destination_mismatch (host/port), method_not_allowed, path_not_allowed,
 *           unknown_grant, no_grant (token-less resolve with no live grant);
 *           400 invalid_path (a path that cannot be normalised safely).
 *  show/revoke: 404 not_found (also for another harness's grant).
 *  Any request whose audit record cannot be written: 500 internal; queue closing: 503.
 *
 * Bindings. Each binding of POST /v1/grants is an object with: secret (required),
 * host (required; normalised), port (default 443), methods (optional array of 1..16
 * upper-case method names; absent: any method), path_prefix (optional; absent: any
 * path; matched on a segment boundary), header (default "Authorization"; an HTTP
 * token, not Host, Content-Length, Transfer-Encoding, Connection, Keep-Alive, TE,
 * Trailer, Upgrade or Proxy-*), template (default "Bearer {secret}"), inject (default
 * false). Unknown members are refused. Stored with every default filled in.
 *
 * Templates (printable ASCII, at most GRANT_TEMPLATE_MAX bytes), two forms:
 *  - text with exactly one "{secret}", replaced by the secret value:
 *    "Bearer {secret}", "token {secret}", "{secret}";
 *  - "basic:USER" (lower-case "basic:" then a user name without ':' or "{secret}",
 *    possibly empty): renders "Basic " + base64(USER ":" secret) (RFC 7617).
 *
 * Sandbox IDs (mint, resolve, DELETE /v1/sandboxes/{id}/grants): 1..128 characters of
 * [A-Za-z0-9._:-]; anything else is 400 invalid_value (404 in the revoke path).
 * Every granted resolve counts a use (grants.uses, shown by GET /v1/grants/{id});
 * with max_uses > 0 the count is the limit, checked atomically in the transaction.
 *
 * Token-less resolve: the headers of every matching inject binding of the sandbox's
 * live grants, oldest grant first; when two bindings set the same header name
 * (case-insensitive) the first wins. Each grant that contributes a header counts a use.
 * At most the 256 oldest live grants of a sandbox are examined, at most 16 contribute.
 */
#ifndef CB_GRANT_H
#define CB_GRANT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct api_call;
struct broker;

#define GRANT_BINDINGS_MAX	16
#define GRANT_METHODS_MAX	16
#define GRANT_SANDBOX_ID_MAX	128
#define GRANT_HEADER_MAX	64
#define GRANT_TEMPLATE_MAX	256
/*
 * A token-less resolve examines the newest live grants of the sandbox, at most this
 * many (a bound on its work): with more live grants than that in one sandbox, the oldest
 * ones are not consulted for inject bindings or allowed destinations.
 */
#define GRANT_TOKENLESS_SCAN_MAX	4096
#define GRANT_TTL_MAX		(7 * 86400)

/* POST /v1/grants (harness): 201 {"grant_id", "token", "expires_at"}. */
void grant_handle_mint(struct api_call *call);
/* GET /v1/grants/{id} (harness: own grants only; admin: any). */
void grant_handle_show(struct api_call *call);
/* DELETE /v1/grants/{id} (harness: own grants only; admin: any): 200 {"grant_id","revoked":true}. */
void grant_handle_revoke(struct api_call *call);
/* DELETE /v1/sandboxes/{sandbox_id}/grants: 200 {"sandbox_id","revoked":N}. */
void grant_handle_revoke_sandbox(struct api_call *call);
/* POST /v1/resolve (proxy): 200 {"headers":[{"name","value"}],"expires_in"} or 403 {"error"}. */
void grant_handle_resolve(struct api_call *call);
/* The set of grant id in a server thread's cache of grant rows and bindings (for tests). */
unsigned int grant_bcache_set(const char *id);

/* Starts the background purge of expired and revoked grants (bounded batches). */
int grant_purge_start(struct broker *b);
void grant_purge_stop(void);
/*
 * The purge's rest after a batch (grant_purge.c): slow times the batch's writer time
 * (took_us), at most 200 ms; 0 for a batch that took nothing.
 */
int64_t grant_purge_rest_us(int64_t took_us, int slow);
/*
 * The purge's slow-down (grant_purge.c): slow in 1..GRANT_PURGE_SLOW_MAX. Given the mean
 * resolve latency before the pass (base_us) and over the n resolves since slow was last
 * judged (mean_us), the next slow:
 * doubled when mean_us is over twice the base (requests queue behind the purge), halved
 * when back under 1.5 times, unchanged with fewer than GRANT_PURGE_PACE_MIN resolves.
 */
#define GRANT_PURGE_SLOW_MAX	8
#define GRANT_PURGE_PACE_MIN	50
int grant_purge_pace(int slow, int64_t base_us, int64_t mean_us, uint64_t n);
/* Number of live grants (for /metrics); cached, refreshed by the purge thread. */
int64_t grant_active_count(void);
/* Tells the purge (grant_purge.c) that grants were revoked at now. */
void grant_note_revocation(int64_t now);

/* --- pure helpers, exported for tests/test_grant.c --- */

/* Returns 0 when name may be a binding's header, CB_ERR_INVAL otherwise. */
int grant_header_valid(const char *name);
/* Returns 0 when tmpl is a valid template (see above), CB_ERR_INVAL otherwise. */
int grant_template_valid(const char *tmpl);
/*
 * Renders tmpl with the secret value: *out malloc'd and NUL-terminated, owned by the
 * caller, who wipes it (util_wipe_free(*out, *outlen + 1)). Returns 0 or CB_ERR_*.
 */
int grant_render(const char *tmpl, const uint8_t *secret, size_t len, char **out,
    size_t *outlen);
/*
 * Validates one binding of a mint body and returns its canonical form (defaults
 * filled, host normalised) in *out (new reference). On CB_ERR_INVAL *code is a json.h
 * code and *field names the member (static, or borrowed from in for an unknown one).
 */
int grant_binding_parse(json_t *in, json_t **out, const char **code, const char **field);

/* Why a binding does not admit a request, from least to most specific. */
enum grant_mismatch {
	GRANT_MATCH = 0,
	GRANT_MISMATCH_DEST = 1,	/* destination_mismatch (host or port) */
	GRANT_MISMATCH_METHOD = 2,	/* method_not_allowed */
	GRANT_MISMATCH_PATH = 3,	/* path_not_allowed */
};
/*
 * Matches a canonical binding against a request (host normalised, path normalised by
 * dest_path_normalise). Returns a grant_mismatch value.
 */
int grant_binding_match(json_t *binding, const char *host, long long port,
    const char *method, const char *path);
/* The API error code of a grant_mismatch value ("destination_mismatch", ...). */
const char *grant_mismatch_code(int m);

#endif
