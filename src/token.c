/*
 * token.c: grant tokens, "cbt_" + compact HS256 JWT. Minting writes the bytes libjwt
 * would (token_mint); libjwt is asked for a second opinion on verification.
 * Verification does not trust libjwt (1.10 accepts alg "none" with an empty key, matches
 * alg names case-insensitively, confuses HS and RS keys and checks no claim): it checks
 * the raw header, recomputes the MAC itself over the raw "header.payload" bytes,
 * compares in constant time, parses and type-checks every claim with jansson, and only
 * then asks libjwt for a second opinion. Tokens are bearer credentials: never logged,
 * every copy wiped.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "token.h"
#include "util.h"
#include "vault.h"

#define PREFIX_LEN	(sizeof(TOKEN_PREFIX) - 1)
#define SUB_MAX		128
#define SIG_B64_LEN	43	/* base64url of 32 bytes, no padding */
#define KID_HEX		16	/* kid: "k" + 16 lower-case hex digits (vault.h) */
#define PART_MAX	(TOKEN_MAX / 4 * 3)	/* decoded size bound of any part */

/*
 * The verified-token cache. A proxy presents the same token for every request of a
 * sandbox, and a full verification (header and payload parsed with jansson, our MAC,
 * libjwt's second opinion) costs ~180 k instructions. A token that passed all of it is
 * remembered, byte for byte, with its claims, until its exp: presenting exactly the
 * same bytes again (compared in constant time) skips the parsing and both MACs. The
 * kid is asked of the vault again on every hit (a retired key stops verifying), and
 * the time window is checked again; the grant row stays the authority on revocation
 * and uses. Only verified tokens enter, so an attacker cannot fill the table; it is
 * bounded (CACHE_SETS x CACHE_WAYS entries, allocated on first use) and every entry
 * is wiped when it is replaced or the cache is cleared. 8,192 entries, four times the
 * benchmark's 2,000 tokens in use: with 1,024 sets, the ~13 % of tokens whose set held
 * four others were verified in full at every turn (docs/performance.md, D11).
 */
#define CACHE_SETS	2048
#define CACHE_WAYS	4
#define CACHE_TOK_MAX	512	/* longer tokens are verified in full every time */

struct cache_entry {
	const struct vault *v;		/* the vault that verified it; NULL: empty */
	uint64_t stamp;			/* insertion order, for replacement */
	size_t len;
	char tok[CACHE_TOK_MAX];
	struct token_claims c;
};

struct cache_set {
	uint64_t clock;
	struct cache_entry e[CACHE_WAYS];
};

#define CACHE_LOCKS	64	/* set i is guarded by cache_mu[i % CACHE_LOCKS] */

static struct cache_set *cache;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t cache_mu[CACHE_LOCKS] = {
	[0 ... CACHE_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER
};

static void
cache_init(void)
{
	/* calloc of ~6 MiB is an mmap: a page costs memory only once an entry uses it. */
	cache = calloc(CACHE_SETS, sizeof(*cache));
}

static pthread_mutex_t *
cache_lock_of(const struct cache_set *set)
{
	return &cache_mu[(size_t)(set - cache) % CACHE_LOCKS];
}

/* The set of a token: from its last characters (the MAC's, random for a real token). */
static struct cache_set *
cache_set_of(const char *tok, size_t len)
{
	pthread_once(&cache_once, cache_init);
	if (cache == NULL || len > CACHE_TOK_MAX || len < 16)
		return NULL;
	return &cache[util_hash(tok + len - 16, 16) % CACHE_SETS];
}

/* 1 and *c filled when exactly these bytes were verified before under v. */
static int
cache_get(const struct vault *v, const char *tok, size_t len, struct token_claims *c)
{
	struct cache_set *set;
	int i, hit = 0;

	if ((set = cache_set_of(tok, len)) == NULL)
		return 0;
	pthread_mutex_lock(cache_lock_of(set));
	for (i = 0; i < CACHE_WAYS; i++) {
		struct cache_entry *e = &set->e[i];

		/* Every way is compared (no early exit): the time does not tell which matched. */
		if (e->v == v && e->len == len && crypto_memeq(e->tok, tok, len) && !hit) {
			memcpy(c, &e->c, sizeof(*c));
			hit = 1;
		}
	}
	pthread_mutex_unlock(cache_lock_of(set));
	return hit;
}

static void
cache_put(const struct vault *v, const char *tok, size_t len, const struct token_claims *c,
    int64_t now)
{
	struct cache_set *set;
	struct cache_entry *e, *victim = NULL;
	int i;

	if ((set = cache_set_of(tok, len)) == NULL)
		return;
	pthread_mutex_lock(cache_lock_of(set));
	for (i = 0; i < CACHE_WAYS; i++) {
		e = &set->e[i];
		if (e->v == v && e->len == len && crypto_memeq(e->tok, tok, len))
			goto out;	/* already there (two threads verified it at once) */
	}
	/* An empty or expired entry, else the oldest. */
	for (i = 0; i < CACHE_WAYS; i++) {
		e = &set->e[i];
		if (e->v == NULL || e->c.exp <= now) {
			victim = e;
			break;
		}
		if (victim == NULL || e->stamp < victim->stamp)
			victim = e;
	}
	explicit_bzero(victim, sizeof(*victim));
	memcpy(victim->tok, tok, len);
	victim->len = len;
	memcpy(&victim->c, c, sizeof(*c));
	victim->stamp = ++set->clock;
	victim->v = v;
out:
	pthread_mutex_unlock(cache_lock_of(set));
}

void
token_cache_clear(void)
{
	size_t i;

	if (cache == NULL)
		return;
	for (i = 0; i < CACHE_SETS; i++) {
		pthread_mutex_lock(cache_lock_of(&cache[i]));
		explicit_bzero(cache[i].e, sizeof(cache[i].e));
		pthread_mutex_unlock(cache_lock_of(&cache[i]));
	}
}

size_t
token_cache_count(void)
{
	size_t i, n = 0;
	int w;

	if (cache == NULL)
		return 0;
	for (i = 0; i < CACHE_SETS; i++) {
		pthread_mutex_lock(cache_lock_of(&cache[i]));
		for (w = 0; w < CACHE_WAYS; w++)
			n += cache[i].e[w].v != NULL;
		pthread_mutex_unlock(cache_lock_of(&cache[i]));
	}
	return n;
}

/* The checks a cached token still needs at time now (the full path's order). */
static enum token_result
cache_recheck(struct vault *v, const struct token_claims *c, int64_t now)
{
	uint8_t key[CRYPTO_KEY_LEN];
	int rc;

	rc = vault_signing_key(v, c->kid, key, NULL);
	explicit_bzero(key, sizeof(key));
	if (rc == CB_ERR_NOTFOUND)
		return TOKEN_UNKNOWN_KID;
	if (rc != 0)
		return TOKEN_INTERNAL;
	if (now >= c->exp)
		return TOKEN_EXPIRED;
	if (now + TOKEN_SKEW_S < c->nbf || now + TOKEN_SKEW_S < c->iat)
		return TOKEN_NOT_YET_VALID;
	return TOKEN_OK;
}

static int
b64url_val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '-')
		return 62;
	if (ch == '_')
		return 63;
	return -1;
}

/*
 * Strict base64url without padding: only the 64 characters, no '=', a length that is
 * not 1 mod 4, and unused trailing bits zero, so each byte string has exactly one
 * encoding and no change of a character can decode to the same bytes.
 */
static int
b64url_decode(const char *in, size_t len, uint8_t *out, size_t outcap, size_t *outlen)
{
	uint32_t acc;
	size_t i, o;
	int bits, v;

	*outlen = 0;
	if (len % 4 == 1 || len / 4 * 3 + 2 > outcap)
		return CB_ERR_INVAL;
	acc = 0;
	bits = 0;
	o = 0;
	for (i = 0; i < len; i++) {
		if ((v = b64url_val((unsigned char)in[i])) < 0)
			return CB_ERR_INVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	if (acc != 0)
		return CB_ERR_INVAL;	/* non-canonical: unused bits set */
	*outlen = o;
	return 0;
}

static int
is_lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

static int
kid_valid(const char *kid)
{
	return kid[0] == 'k' && strlen(kid) == 1 + KID_HEX && is_lower_hex(kid + 1, KID_HEX);
}

int
token_grant_id_valid(const char *s, size_t len)
{
	return (len == GRANT_ID_LEN || len == GRANT_ID_LEN_V1) && strnlen(s, len + 1) == len &&
	    is_lower_hex(s, len);
}

/* A sandbox ID: 1..128 printable ASCII characters. */
static int
sub_valid(const char *sub, size_t len)
{
	size_t i;

	if (len == 0 || len > SUB_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)sub[i] < 0x21 || (unsigned char)sub[i] > 0x7e)
			return 0;
	}
	return 1;
}

int
token_new_grant_id(char id[GRANT_ID_LEN + 1])
{
	uint8_t b[GRANT_ID_LEN / 2];
	struct timespec ts;
	uint64_t ms;
	int i;

	id[0] = '\0';
	if (crypto_random(b + GRANT_ID_TIME_LEN / 2, sizeof(b) - GRANT_ID_TIME_LEN / 2) != 0)
		return CB_ERR_CRYPTO;
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (i = GRANT_ID_TIME_LEN / 2 - 1; i >= 0; i--, ms >>= 8)
		b[i] = (uint8_t)ms;
	util_hex(b, sizeof(b), id);
	return 0;
}

/* base64url without padding; out holds at least (len + 2) / 3 * 4 + 1 bytes. */
static size_t
b64url_encode(const uint8_t *in, size_t len, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t acc = 0;
	size_t i, o = 0;
	int bits = 0;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
		acc &= (1U << bits) - 1;
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return o;
}

/*
 * Mints without libjwt (its encoder cost ~75 k instructions per mint): the same bytes
 * libjwt 1.10 writes, i.e. header and claims as compact JSON with sorted keys
 * ({"alg","kid","typ"} and {"aud","exp","iat","iss","jti","nbf","sub"}), base64url
 * without padding, HMAC-SHA256 over "header.payload". sub is printable ASCII
 * (sub_valid): '"' and '\\' are the only characters JSON escapes there.
 */
int
token_mint(struct vault *v, struct token_claims *c, char **out)
{
	uint8_t key[CRYPTO_KEY_LEN], mac[CRYPTO_HASH_LEN];
	char kid[VAULT_KID_MAX], sub[2 * SUB_MAX + 1];
	char hdr[128], pay[512];
	char *tok = NULL, *p;
	size_t i, o, sublen, total;
	int hlen, plen, rc;

	*out = NULL;
	kid[0] = '\0';
	if (c == NULL || !sub_valid(c->sub, strnlen(c->sub, sizeof(c->sub))) ||
	    !token_grant_id_valid(c->jti, strnlen(c->jti, sizeof(c->jti))) || c->iat < 0 || c->nbf < 0 || c->exp <= c->nbf) {
		rc = CB_ERR_INVAL;
		goto out;
	}
	if ((rc = vault_signing_key(v, NULL, key, kid)) != 0)
		goto out;
	if (!kid_valid(kid) || util_strlcpy(c->kid, kid, sizeof(c->kid)) >= sizeof(c->kid)) {
		log_warnx("signing key ID of unexpected form");
		rc = CB_ERR_CRYPTO;
		goto out;
	}
	sublen = strlen(c->sub);
	for (i = 0, o = 0; i < sublen; i++) {
		if (c->sub[i] == '"' || c->sub[i] == '\\')
			sub[o++] = '\\';
		sub[o++] = c->sub[i];
	}
	sub[o] = '\0';
	hlen = snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
	    kid);
	plen = snprintf(pay, sizeof(pay), "{\"aud\":\"%s\",\"exp\":%lld,\"iat\":%lld,"
	    "\"iss\":\"%s\",\"jti\":\"%s\",\"nbf\":%lld,\"sub\":\"%s\"}", TOKEN_AUD,
	    (long long)c->exp, (long long)c->iat, TOKEN_ISS, c->jti, (long long)c->nbf, sub);
	rc = CB_ERR_LIMIT;
	if (hlen < 0 || (size_t)hlen >= sizeof(hdr) || plen < 0 || (size_t)plen >= sizeof(pay))
		goto out;
	total = PREFIX_LEN + ((size_t)hlen + 2) / 3 * 4 + 1 + ((size_t)plen + 2) / 3 * 4 + 1 +
	    SIG_B64_LEN + 1;
	if (total > TOKEN_MAX + 1)
		goto out;
	rc = CB_ERR_NOMEM;
	if ((tok = malloc(total + 1)) == NULL)
		goto out;
	memcpy(tok, TOKEN_PREFIX, PREFIX_LEN);
	p = tok + PREFIX_LEN;
	p += b64url_encode((const uint8_t *)hdr, (size_t)hlen, p);
	*p++ = '.';
	p += b64url_encode((const uint8_t *)pay, (size_t)plen, p);
	rc = CB_ERR_CRYPTO;
	if (crypto_hmac_sha256(key, sizeof(key), tok + PREFIX_LEN,
	    (size_t)(p - tok - PREFIX_LEN), mac) != 0)
		goto out;
	*p++ = '.';
	p += b64url_encode(mac, sizeof(mac), p);
	if (strlen(tok) > TOKEN_MAX) {
		rc = CB_ERR_LIMIT;
		goto out;
	}
	*out = tok;	/* transferred */
	tok = NULL;
	rc = 0;
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(mac, sizeof(mac));
	util_wipe_str(tok);
	return rc;
}

/* Header: exactly {"alg":"HS256","kid":"k…"} with an optional "typ":"JWT". */
static enum token_result
check_header(const uint8_t *buf, size_t len, char kid[VAULT_KID_MAX])
{
	json_error_t err;
	json_t *h, *m;
	const char *k, *s;
	enum token_result r;
	int have_alg = 0, have_kid = 0;

	kid[0] = '\0';
	if ((h = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return TOKEN_MALFORMED;
	r = TOKEN_MALFORMED;
	if (!json_is_object(h))
		goto out;
	json_object_foreach(h, k, m) {
		if (strcmp(k, "alg") == 0) {
			/* Byte-exact: not "none", not "hs256", not "HS384", not "RS256". */
			if (!json_is_string(m) || json_string_length(m) != 5 ||
			    strcmp(json_string_value(m), "HS256") != 0) {
				r = TOKEN_BAD_ALG;
				goto out;
			}
			have_alg = 1;
		} else if (strcmp(k, "typ") == 0) {
			if (!json_is_string(m) || strcmp(json_string_value(m), "JWT") != 0)
				goto out;
		} else if (strcmp(k, "kid") == 0) {
			if (!json_is_string(m))
				goto out;
			s = json_string_value(m);
			if (json_string_length(m) >= VAULT_KID_MAX || !kid_valid(s))
				goto out;
			util_strlcpy(kid, s, VAULT_KID_MAX);
			have_kid = 1;
		} else
			goto out;	/* jku, x5u, crit, ...: nothing else is ours */
	}
	if (!have_alg) {
		r = TOKEN_BAD_ALG;
		goto out;
	}
	if (have_kid)
		r = TOKEN_OK;
out:
	json_decref(h);
	return r;
}

static int
claim_int(json_t *m, int64_t *out)
{
	/* JSON integers only: "exp": "123" or 1.5 is malformed, never 0. */
	if (!json_is_integer(m) || json_integer_value(m) < 0)
		return 0;
	*out = json_integer_value(m);
	return 1;
}

/* Payload: exactly iss, aud, sub, jti, iat, nbf, exp, each of its type. */
static enum token_result
check_payload(const uint8_t *buf, size_t len, struct token_claims *c)
{
	json_error_t err;
	json_t *p, *m;
	const char *k;
	enum token_result r;
	unsigned seen = 0, bit;

	if ((p = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return TOKEN_MALFORMED;
	r = TOKEN_MALFORMED;
	if (!json_is_object(p))
		goto out;
	json_object_foreach(p, k, m) {
		if (strcmp(k, "iss") == 0) {
			bit = 1;
			if (!json_is_string(m) || strcmp(json_string_value(m), TOKEN_ISS) != 0)
				goto out;
		} else if (strcmp(k, "aud") == 0) {
			bit = 2;
			if (!json_is_string(m) || strcmp(json_string_value(m), TOKEN_AUD) != 0)
				goto out;
		} else if (strcmp(k, "sub") == 0) {
			bit = 4;
			if (!json_is_string(m) ||
			    !sub_valid(json_string_value(m), json_string_length(m)))
				goto out;
			memcpy(c->sub, json_string_value(m), json_string_length(m) + 1);
		} else if (strcmp(k, "jti") == 0) {
			bit = 8;
			if (!json_is_string(m) ||
			    !token_grant_id_valid(json_string_value(m), json_string_length(m)))
				goto out;
			memcpy(c->jti, json_string_value(m), json_string_length(m) + 1);
		} else if (strcmp(k, "iat") == 0) {
			bit = 16;
			if (!claim_int(m, &c->iat))
				goto out;
		} else if (strcmp(k, "nbf") == 0) {
			bit = 32;
			if (!claim_int(m, &c->nbf))
				goto out;
		} else if (strcmp(k, "exp") == 0) {
			bit = 64;
			if (!claim_int(m, &c->exp))
				goto out;
		} else
			goto out;
		seen |= bit;
	}
	if (seen != 127 || c->exp <= c->nbf)
		goto out;
	r = TOKEN_OK;
out:
	json_decref(p);
	return r;
}

enum token_result
token_verify(struct vault *v, const char *tok, size_t len, int64_t now,
    struct token_claims *c)
{
	uint8_t key[CRYPTO_KEY_LEN], mac[CRYPTO_HASH_LEN], sig[CRYPTO_HASH_LEN + 3];
	uint8_t part[PART_MAX];
	char copy[TOKEN_MAX + 1], kid[VAULT_KID_MAX], kid_out[VAULT_KID_MAX];
	const char *jwt, *dot1, *dot2, *end;
	size_t jlen, plen, siglen;
	jwt_t *lj = NULL;
	enum token_result r;
	int rc;

	if (c != NULL)
		memset(c, 0, sizeof(*c));
	kid[0] = '\0';
	r = TOKEN_MALFORMED;
	copy[0] = '\0';
	if (tok == NULL || c == NULL || len > TOKEN_MAX || len <= PREFIX_LEN)
		return TOKEN_MALFORMED;
	if (memcmp(tok, TOKEN_PREFIX, PREFIX_LEN) != 0)
		return TOKEN_MALFORMED;
	if (cache_get(v, tok, len, c)) {
		if ((r = cache_recheck(v, c, now)) != TOKEN_OK)
			memset(c, 0, sizeof(*c));
		return r;
	}

	/* Three base64url parts separated by exactly two dots; the charset is checked by decoding. */
	jwt = tok + PREFIX_LEN;
	jlen = len - PREFIX_LEN;
	end = jwt + jlen;
	if ((dot1 = memchr(jwt, '.', jlen)) == NULL)
		return TOKEN_MALFORMED;
	if ((dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1))) == NULL)
		return TOKEN_MALFORMED;
	if (memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)) != NULL)
		return TOKEN_MALFORMED;
	if (dot1 == jwt || dot2 == dot1 + 1)
		return TOKEN_MALFORMED;

	/* Header first: alg and kid decide whether any key is looked up at all. */
	if (b64url_decode(jwt, (size_t)(dot1 - jwt), part, sizeof(part), &plen) != 0)
		goto out;
	if ((r = check_header(part, plen, kid)) != TOKEN_OK)
		goto out;
	r = TOKEN_MALFORMED;
	if ((size_t)(end - dot2 - 1) != SIG_B64_LEN ||
	    b64url_decode(dot2 + 1, SIG_B64_LEN, sig, sizeof(sig), &siglen) != 0 ||
	    siglen != CRYPTO_HASH_LEN)
		goto out;
	/* The payload's charset, before any MAC is computed. */
	if (b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), part, sizeof(part), &plen) != 0)
		goto out;

	rc = vault_signing_key(v, kid, key, kid_out);
	if (rc == CB_ERR_NOTFOUND) {
		r = TOKEN_UNKNOWN_KID;
		goto out;
	} else if (rc != 0) {
		r = TOKEN_INTERNAL;
		goto out;
	}
	if (crypto_hmac_sha256(key, sizeof(key), jwt, (size_t)(dot2 - jwt), mac) != 0) {
		r = TOKEN_INTERNAL;
		goto out;
	}
	if (!crypto_memeq(mac, sig, CRYPTO_HASH_LEN)) {
		r = TOKEN_BAD_SIGNATURE;
		goto out;
	}

	if ((r = check_payload(part, plen, c)) != TOKEN_OK)
		goto out;
	util_strlcpy(c->kid, kid, sizeof(c->kid));

	/* The time window: no skew on exp, TOKEN_SKEW_S on nbf and iat. */
	if (now >= c->exp) {
		r = TOKEN_EXPIRED;
		goto out;
	}
	if (now + TOKEN_SKEW_S < c->nbf || now + TOKEN_SKEW_S < c->iat) {
		r = TOKEN_NOT_YET_VALID;
		goto out;
	}

	/* libjwt's opinion last (it needs a NUL-terminated copy): it must agree on HS256. */
	memcpy(copy, jwt, jlen);
	copy[jlen] = '\0';
	rc = jwt_decode(&lj, copy, key, (int)sizeof(key));
	if (rc != 0 || lj == NULL) {
		r = TOKEN_BAD_SIGNATURE;
		goto out;
	}
	if (jwt_get_alg(lj) != JWT_ALG_HS256) {
		r = TOKEN_BAD_ALG;
		goto out;
	}
	r = TOKEN_OK;
	cache_put(v, tok, len, c, now);
out:
	if (r != TOKEN_OK && c != NULL)
		memset(c, 0, sizeof(*c));
	jwt_free(lj);
	explicit_bzero(copy, sizeof(copy));
	explicit_bzero(key, sizeof(key));
	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(sig, sizeof(sig));	/* part of a bearer credential */
	explicit_bzero(part, sizeof(part));
	return r;
}

const char *
token_reason(enum token_result r)
{
	switch (r) {
	case TOKEN_OK:
		return "ok";
	case TOKEN_MALFORMED:
	case TOKEN_BAD_ALG:
	case TOKEN_UNKNOWN_KID:
	case TOKEN_BAD_SIGNATURE:
		return "invalid_token";
	case TOKEN_EXPIRED:
		return "expired";
	case TOKEN_NOT_YET_VALID:
		return "not_yet_valid";
	case TOKEN_INTERNAL:
	default:
		return "internal";
	}
}
