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
 */
#ifndef CB_GRANT_H
#define CB_GRANT_H

#include <stdint.h>

struct api_call;
struct broker;

#define GRANT_BINDINGS_MAX	16
#define GRANT_METHODS_MAX	16
#define GRANT_SANDBOX_ID_MAX	128
#define GRANT_HEADER_MAX	64
#define GRANT_TEMPLATE_MAX	256
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

/* Starts the background purge of expired and revoked grants (bounded batches). */
int grant_purge_start(struct broker *b);
void grant_purge_stop(void);
/* Number of live grants (for /metrics); cached, refreshed by the purge thread. */
int64_t grant_active_count(void);

#endif
