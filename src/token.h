/*
 * token.h: grant tokens. A token is "cbt_" followed by a compact HS256 JWT (libjwt)
 * signed with a vault signing key named by "kid". Claims: iss "credbroker", aud
 * "credproxy", sub (sandbox ID), jti (grant ID), iat, nbf, exp. libjwt 1.10 checks
 * nothing but the signature, so token_verify checks the raw header (alg exactly
 * "HS256", typ "JWT" if present, known kid), the MAC in constant time, every claim and
 * its JSON type, and the time window. The grant in the database stays the authority.
 */
#ifndef CB_TOKEN_H
#define CB_TOKEN_H

#include <stddef.h>
#include <stdint.h>

struct vault;

#define TOKEN_PREFIX	"cbt_"
#define TOKEN_MAX	2048	/* longer strings are refused before any parsing */
#define TOKEN_ISS	"credbroker"
#define TOKEN_AUD	"credproxy"
/*
 * Grant IDs (the token's jti) are lower-case hex: GRANT_ID_TIME_LEN characters of the mint
 * time in milliseconds since the epoch, then 32 random ones (128 bits). The time first makes
 * new grants sort after the ones before them, so a mint appends to the tables keyed by the
 * ID instead of dirtying a random page of each (docs/performance.md, D11). IDs of the first
 * format, GRANT_ID_LEN_V1 random characters, are still accepted.
 */
#define GRANT_ID_TIME_LEN	12
#define GRANT_ID_LEN		(GRANT_ID_TIME_LEN + 32)
#define GRANT_ID_LEN_V1		32

struct token_claims {
	char sub[129];			/* sandbox ID */
	char jti[GRANT_ID_LEN + 1];	/* grant ID */
	char kid[40];
	int64_t iat, nbf, exp;
};

/* Refusal reasons; token_reason() gives the stable error code used in the API. */
enum token_result {
	TOKEN_OK = 0,
	TOKEN_MALFORMED = -1,	/* "invalid_token": not cbt_ + JWT, bad base64/JSON, wrong claim types */
	TOKEN_BAD_ALG = -2,	/* "invalid_token" */
	TOKEN_UNKNOWN_KID = -3,	/* "invalid_token" */
	TOKEN_BAD_SIGNATURE = -4,	/* "invalid_token" */
	TOKEN_EXPIRED = -5,	/* "expired" */
	TOKEN_NOT_YET_VALID = -6,	/* "not_yet_valid" */
	TOKEN_INTERNAL = -7,	/* "internal" */
};

/*
 * Signs a token for the claims (kid is filled in with the active signing key).
 * *out is malloc'd, owned by the caller (a bearer credential: wipe with util_wipe_str).
 */
int token_mint(struct vault *v, struct token_claims *c, char **out);
/*
 * Verifies a token at time now; on TOKEN_OK fills *c. Never logs the token.
 * Allowed clock skew for nbf/iat: TOKEN_SKEW_S.
 */
#define TOKEN_SKEW_S	5
enum token_result token_verify(struct vault *v, const char *tok, size_t len, int64_t now,
    struct token_claims *c) __attribute__((warn_unused_result));
/*
 * Wipes the verified-token cache (token.c keeps each fully verified token, byte for
 * byte, until its exp, so that presenting it again skips the parsing and the MACs).
 */
void token_cache_clear(void);
/* Tokens the verified-token cache holds. */
size_t token_cache_count(void);
/* The stable API error code of a result ("invalid_token", "expired", ...). */
const char *token_reason(enum token_result r);
/* Fills id with a fresh grant ID (GRANT_ID_LEN hex chars + NUL). */
int token_new_grant_id(char id[GRANT_ID_LEN + 1]);
/* Whether s (len bytes) is a grant ID: GRANT_ID_LEN or GRANT_ID_LEN_V1 lower-case hex. */
int token_grant_id_valid(const char *s, size_t len);

#endif
