/*
 * test_token.c: mint/verify round trip and the refusal corpus: nothing but a token
 * minted by us, signed by a key the vault still verifies with, inside its time window,
 * is ever accepted.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "err.h"
#include "store.h"
#include "token.h"
#include "util.h"
#include "vault.h"

int main(void);

/*
 * A real vault on a temporary database, with three signing keys: "ret" (rotated out
 * with a retire time in the past: no longer verifies), "old" (rotated out, still in
 * its verify period) and "act" (active: token_mint signs with it). The tests copy the
 * key bytes to forge tokens of their own.
 */
static char tmpdir[64], dbpath[128], keypath[128];
static struct store *st;
static struct vault *vault;
static uint8_t key_act[CRYPTO_KEY_LEN], key_old[CRYPTO_KEY_LEN], key_ret[CRYPTO_KEY_LEN];
static const uint8_t key_other[CRYPTO_KEY_LEN] = "an attacker's key, not ours!!!!!";
static char kid_act[VAULT_KID_MAX], kid_old[VAULT_KID_MAX], kid_ret[VAULT_KID_MAX];
#define KID_X	"k00000000000000ff"	/* well-formed, unknown */

static int
group_setup(void **state)
{
	char why[512], kid[VAULT_KID_MAX];

	util_strlcpy(tmpdir, "/tmp/cbtest-token-XXXXXX", sizeof(tmpdir));
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/cb.db", tmpdir);
	snprintf(keypath, sizeof(keypath), "%s/master.key", tmpdir);
	if (vault_create_master_key(keypath) != 0 ||
	    store_open(dbpath, STORE_CREATE, &st, why, sizeof(why)) != 0 ||
	    vault_open(st, keypath, &vault, why, sizeof(why)) != 0)
		return -1;
	if (vault_signing_key(vault, NULL, key_ret, kid_ret) != 0 ||
	    vault_rotate_signing_key(vault, st, util_now() - 1, kid) != 0 ||
	    vault_signing_key(vault, NULL, key_old, kid_old) != 0 ||
	    vault_rotate_signing_key(vault, st, util_now() + 3600, kid) != 0 ||
	    vault_signing_key(vault, NULL, key_act, kid_act) != 0)
		return -1;
	if (strcmp(kid, kid_act) != 0 || strcmp(kid_act, kid_old) == 0 ||
	    strcmp(kid_old, kid_ret) == 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	vault_free(vault);
	store_close(st);
	unlink(dbpath);
	snprintf(dbpath, sizeof(dbpath), "%s/cb.db-wal", tmpdir);
	unlink(dbpath);
	snprintf(dbpath, sizeof(dbpath), "%s/cb.db-shm", tmpdir);
	unlink(dbpath);
	unlink(keypath);
	rmdir(tmpdir);
	explicit_bzero(key_act, sizeof(key_act));
	explicit_bzero(key_old, sizeof(key_old));
	explicit_bzero(key_ret, sizeof(key_ret));
	return 0;
}

#define NOW	1800000000LL
#define JTI	"0192f3a4b5c60123456789abcdef0123456789abcdef"	/* time + 128 bits */
#define JTI_V1	"0123456789abcdef0123456789abcdef"		/* the first format */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *
b64url(const void *in, size_t len)
{
	const char *tab = b64chars;
	const uint8_t *p = in;
	char *out;
	size_t i, o;
	uint32_t acc;
	int bits;

	out = malloc(len / 3 * 4 + 5);
	assert_non_null(out);
	acc = 0;
	bits = 0;
	o = 0;
	for (i = 0; i < len; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return out;
}

enum sigmode { SIG_HS256, SIG_HS384, SIG_EMPTY };

/* b64url of header with "@ACT@", "@OLD@", "@RET@" replaced by the fixture's kids. */
static char *
b64url_kid(const char *header)
{
	static const struct {
		const char *tag;
		const char *kid;
	} subst[] = { { "@ACT@", kid_act }, { "@OLD@", kid_old }, { "@RET@", kid_ret } };
	char buf[1024];
	const char *at;
	size_t i, o = 0;

	while (*header != '\0') {
		for (i = 0; i < UTIL_ARRAY_LEN(subst); i++) {
			if (strncmp(header, subst[i].tag, 5) == 0)
				break;
		}
		at = i < UTIL_ARRAY_LEN(subst) ? subst[i].kid : NULL;
		if (at != NULL) {
			assert_true(o + strlen(at) < sizeof(buf));
			memcpy(buf + o, at, strlen(at));
			o += strlen(at);
			header += 5;
		} else {
			assert_true(o + 1 < sizeof(buf));
			buf[o++] = *header++;
		}
	}
	return b64url(buf, o);
}

/* "cbt_" + b64url(header) "." b64url(payload) "." MAC under key (malloc'd). */
static char *
forge(const char *header, const char *payload, const uint8_t *key, enum sigmode mode)
{
	char *h, *p, *s, *signing, *tok;
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t n;

	h = b64url_kid(header);
	p = b64url(payload, strlen(payload));
	n = strlen(h) + strlen(p) + 2;
	signing = malloc(n);
	assert_non_null(signing);
	snprintf(signing, n, "%s.%s", h, p);
	if (mode == SIG_HS256) {
		assert_int_equal(crypto_hmac_sha256(key, CRYPTO_KEY_LEN, signing,
		    strlen(signing), mac), 0);
		maclen = CRYPTO_HASH_LEN;
	} else if (mode == SIG_HS384) {
		assert_non_null(HMAC(EVP_sha384(), key, CRYPTO_KEY_LEN,
		    (const unsigned char *)signing, strlen(signing), mac, &maclen));
	}
	s = b64url(mac, maclen);
	n = strlen(signing) + strlen(s) + 6;
	tok = malloc(n);
	assert_non_null(tok);
	snprintf(tok, n, "cbt_%s.%s", signing, s);
	free(h);
	free(p);
	free(s);
	free(signing);
	return tok;
}

#define HDR_OK	"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"" "@ACT@\"}"
#define PAY_FMT	"{\"iss\":\"credbroker\",\"aud\":\"credproxy\",\"sub\":\"sbx-42\"," \
		"\"jti\":\"" JTI "\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}"

static char *
payload(long long iat, long long nbf, long long exp)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), PAY_FMT, iat, nbf, exp);
	return buf;
}

static enum token_result
verify(const char *tok, struct token_claims *c)
{
	return token_verify(vault, tok, strlen(tok), NOW, c);
}

static char *
mint(const char *sub, long long iat, long long nbf, long long exp)
{
	struct token_claims c;
	char *tok;

	memset(&c, 0, sizeof(c));
	util_strlcpy(c.sub, sub, sizeof(c.sub));
	util_strlcpy(c.jti, JTI, sizeof(c.jti));
	c.iat = iat;
	c.nbf = nbf;
	c.exp = exp;
	assert_int_equal(token_mint(vault, &c, &tok), 0);
	assert_string_equal(c.kid, kid_act);
	return tok;
}

static void
test_round_trip(void **state)
{
	struct token_claims c;
	char *tok;

	tok = mint("sbx-42", NOW - 10, NOW - 10, NOW + 600);
	assert_memory_equal(tok, "cbt_", 4);
	assert_true(strlen(tok) < TOKEN_MAX);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	assert_string_equal(c.sub, "sbx-42");
	assert_string_equal(c.jti, JTI);
	assert_string_equal(c.kid, kid_act);
	assert_int_equal(c.iat, NOW - 10);
	assert_int_equal(c.nbf, NOW - 10);
	assert_int_equal(c.exp, NOW + 600);
	/* The length is what counts, not a terminating NUL. */
	assert_int_equal(token_verify(vault, tok, strlen(tok) - 1, NOW, &c), TOKEN_MALFORMED);
	util_wipe_str(tok);

	/* A forged token of the same form, signed with our key, is a token. */
	tok = forge(HDR_OK, payload(NOW, NOW, NOW + 60), key_act, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	free(tok);
	/* typ is optional; member order does not matter; the verify-only key verifies. */
	tok = forge("{\"kid\":\"@OLD@\",\"alg\":\"HS256\"}", payload(NOW, NOW, NOW + 60),
	    key_old, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	assert_string_equal(c.kid, kid_old);
	free(tok);
}

static void
test_time_window(void **state)
{
	struct token_claims c;
	char *tok;

	tok = mint("sbx-42", NOW - 600, NOW - 600, NOW - 1);
	assert_int_equal(verify(tok, &c), TOKEN_EXPIRED);
	assert_string_equal(c.sub, "");	/* nothing handed out on refusal */
	free(tok);
	tok = mint("sbx-42", NOW - 600, NOW - 600, NOW);
	assert_int_equal(verify(tok, &c), TOKEN_EXPIRED);
	free(tok);
	tok = mint("sbx-42", NOW - 600, NOW - 600, NOW + 1);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	free(tok);
	tok = mint("sbx-42", NOW, NOW + TOKEN_SKEW_S + 1, NOW + 600);
	assert_int_equal(verify(tok, &c), TOKEN_NOT_YET_VALID);
	free(tok);
	tok = mint("sbx-42", NOW, NOW + TOKEN_SKEW_S, NOW + 600);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	free(tok);
	/* Issued in the future beyond the skew. */
	tok = forge(HDR_OK, payload(NOW + 60, NOW, NOW + 600), key_act, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_NOT_YET_VALID);
	free(tok);
	/* exp must be after nbf. */
	tok = forge(HDR_OK, payload(NOW, NOW, NOW), key_act, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_MALFORMED);
	free(tok);
	tok = forge(HDR_OK, payload(-1, NOW, NOW + 60), key_act, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_MALFORMED);
	free(tok);
}

struct forge_case {
	const char *name;
	const char *header;
	const char *payload;	/* NULL: a good payload */
	const uint8_t *key;
	enum sigmode mode;
	enum token_result want;
};

#define P(...)	"{" __VA_ARGS__ "}"
#define ISS	"\"iss\":\"credbroker\""
#define AUD	"\"aud\":\"credproxy\""
#define SUB	"\"sub\":\"sbx-42\""
#define JTIM	"\"jti\":\"" JTI "\""
#define IAT	"\"iat\":1800000000"
#define NBF	"\"nbf\":1800000000"
#define EXP	"\"exp\":1800000600"

static const struct forge_case forge_cases[] = {
	{ "alg none, no signature", "{\"alg\":\"none\",\"kid\":\"" "@ACT@\"}", NULL, NULL,
	    SIG_EMPTY, TOKEN_BAD_ALG },
	{ "alg none, no signature, no kid", "{\"alg\":\"none\"}", NULL, NULL,
	    SIG_EMPTY, TOKEN_BAD_ALG },
	{ "HS256, no signature", HDR_OK, NULL, NULL, SIG_EMPTY, TOKEN_MALFORMED },
	{ "alg none, signed", "{\"alg\":\"none\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg None", "{\"alg\":\"None\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg hs256", "{\"alg\":\"hs256\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg Hs256", "{\"alg\":\"Hs256\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg HS384", "{\"alg\":\"HS384\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS384, TOKEN_BAD_ALG },
	{ "alg HS384, HS256 MAC", "{\"alg\":\"HS384\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg RS256", "{\"alg\":\"RS256\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg ES256", "{\"alg\":\"ES256\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg HS256 with space", "{\"alg\":\"HS256 \",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg as array", "{\"alg\":[\"HS256\"],\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_BAD_ALG },
	{ "alg missing", "{\"kid\":\"" "@ACT@\"}", NULL, key_act, SIG_HS256, TOKEN_BAD_ALG },
	{ "alg twice", "{\"alg\":\"HS256\",\"alg\":\"none\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "another key", HDR_OK, NULL, key_other, SIG_HS256, TOKEN_BAD_SIGNATURE },
	/* The signature is checked before the claims: a forgery is never "expired". */
	{ "another key, expired", HDR_OK, P(ISS "," AUD "," SUB "," JTIM ",\"iat\":1,\"nbf\":1,"
	    "\"exp\":2"), key_other, SIG_HS256, TOKEN_BAD_SIGNATURE },
	{ "another key, exp as string", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF
	    ",\"exp\":\"x\""), key_other, SIG_HS256, TOKEN_BAD_SIGNATURE },
	{ "old key under the active kid", HDR_OK, NULL, key_old, SIG_HS256, TOKEN_BAD_SIGNATURE },
	{ "unknown kid", "{\"alg\":\"HS256\",\"kid\":\"" KID_X "\"}", NULL, key_act,
	    SIG_HS256, TOKEN_UNKNOWN_KID },
	{ "kid missing", "{\"alg\":\"HS256\"}", NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "kid upper case", "{\"alg\":\"HS256\",\"kid\":\"K0123456789ABCDEF\"}", NULL, key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "kid path", "{\"alg\":\"HS256\",\"kid\":\"../../etc/passwd\"}", NULL, key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "kid empty", "{\"alg\":\"HS256\",\"kid\":\"\"}", NULL, key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "kid number", "{\"alg\":\"HS256\",\"kid\":1}", NULL, key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "typ JWS", "{\"alg\":\"HS256\",\"typ\":\"JWS\",\"kid\":\"" "@ACT@\"}", NULL, key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "extra header jku", "{\"alg\":\"HS256\",\"kid\":\"" "@ACT@\",\"jku\":\"http://x\"}",
	    NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "extra header crit", "{\"alg\":\"HS256\",\"kid\":\"" "@ACT@\",\"crit\":[\"exp\"]}",
	    NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "extra header cty", "{\"alg\":\"HS256\",\"kid\":\"" "@ACT@\",\"cty\":\"JWT\"}",
	    NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "header not an object", "[\"HS256\"]", NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "header not JSON", "{alg:HS256}", NULL, key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "exp as string", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF
	    ",\"exp\":\"1800000600\""), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "exp as float", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF
	    ",\"exp\":1800000600.0"), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "nbf as float", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT
	    ",\"nbf\":1800000000.5," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "iat as bool", HDR_OK, P(ISS "," AUD "," SUB "," JTIM ",\"iat\":true," NBF "," EXP),
	    key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "exp null", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF ",\"exp\":null"),
	    key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "exp huge", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF
	    ",\"exp\":99999999999999999999"), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "no iss", HDR_OK, P(AUD "," SUB "," JTIM "," IAT "," NBF "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no aud", HDR_OK, P(ISS "," SUB "," JTIM "," IAT "," NBF "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no sub", HDR_OK, P(ISS "," AUD "," JTIM "," IAT "," NBF "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no jti", HDR_OK, P(ISS "," AUD "," SUB "," IAT "," NBF "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no iat", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," NBF "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no nbf", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," EXP), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no exp", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF), key_act, SIG_HS256,
	    TOKEN_MALFORMED },
	{ "no claims", HDR_OK, "{}", key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "payload array", HDR_OK, "[]", key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "extra claim", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF "," EXP
	    ",\"admin\":true"), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "duplicate sub", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF "," EXP
	    ",\"sub\":\"sbx-43\""), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "wrong iss", HDR_OK, P("\"iss\":\"credbroker2\"," AUD "," SUB "," JTIM "," IAT ","
	    NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "wrong aud", HDR_OK, P(ISS ",\"aud\":\"credbroker\"," SUB "," JTIM "," IAT "," NBF
	    "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "aud as array", HDR_OK, P(ISS ",\"aud\":[\"credproxy\"]," SUB "," JTIM "," IAT ","
	    NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "sub empty", HDR_OK, P(ISS "," AUD ",\"sub\":\"\"," JTIM "," IAT "," NBF "," EXP),
	    key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "sub with newline", HDR_OK, P(ISS "," AUD ",\"sub\":\"a\\nb\"," JTIM "," IAT ","
	    NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "sub with NUL", HDR_OK, P(ISS "," AUD ",\"sub\":\"a\\u0000b\"," JTIM "," IAT ","
	    NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "sub 129 bytes", HDR_OK, P(ISS "," AUD ",\"sub\":\""
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "01234567890123456789012345678901234567890123456789012345678901234\","
	    JTIM "," IAT "," NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "sub number", HDR_OK, P(ISS "," AUD ",\"sub\":42," JTIM "," IAT "," NBF "," EXP),
	    key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "jti upper case", HDR_OK, P(ISS "," AUD "," SUB
	    ",\"jti\":\"0123456789ABCDEF0123456789ABCDEF\"," IAT "," NBF "," EXP), key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "jti short", HDR_OK, P(ISS "," AUD "," SUB ",\"jti\":\"0123456789abcdef\"," IAT
	    "," NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "jti long", HDR_OK, P(ISS "," AUD "," SUB ",\"jti\":\"" JTI "0\"," IAT "," NBF ","
	    EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "jti between the formats", HDR_OK, P(ISS "," AUD "," SUB ",\"jti\":\"" JTI_V1 "0\","
	    IAT "," NBF "," EXP), key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "jti one short", HDR_OK, P(ISS "," AUD "," SUB ",\"jti\":\""
	    "0192f3a4b5c60123456789abcdef0123456789abcde\"," IAT "," NBF "," EXP), key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "jti with NUL", HDR_OK, P(ISS "," AUD "," SUB ",\"jti\":\""
	    "0123456789abcdef0123456789abcde\\u0000\"," IAT "," NBF "," EXP), key_act,
	    SIG_HS256, TOKEN_MALFORMED },
	{ "payload not JSON", HDR_OK, "{\"iss\":", key_act, SIG_HS256, TOKEN_MALFORMED },
	{ "payload trailing garbage", HDR_OK, P(ISS "," AUD "," SUB "," JTIM "," IAT "," NBF
	    "," EXP) "x", key_act, SIG_HS256, TOKEN_MALFORMED },
};

static void
test_forged(void **state)
{
	const struct forge_case *f;
	struct token_claims c;
	enum token_result r;
	char *tok;
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(forge_cases); i++) {
		f = &forge_cases[i];
		tok = forge(f->header, f->payload != NULL ? f->payload :
		    payload(NOW, NOW, NOW + 600), f->key, f->mode);
		r = verify(tok, &c);
		if (r != f->want)
			fail_msg("forged case \"%s\": %d (%s), want %d", f->name, r,
			    token_reason(r), f->want);
		assert_string_equal(c.sub, "");
		free(tok);
	}
}

/* The payload of tok re-encoded with a change, keeping the old header and signature. */
static void
test_tampered(void **state)
{
	struct token_claims c;
	char *tok, *dot1, *dot2, *p, *t2;
	size_t n;

	tok = mint("sbx-42", NOW, NOW, NOW + 600);
	dot1 = strchr(tok, '.');
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	/* Another sandbox, a later expiry, the same signature. */
	p = b64url(payload(NOW, NOW, NOW + 6000), strlen(payload(NOW, NOW, NOW + 6000)));
	n = strlen(tok) + strlen(p) + 1;
	t2 = malloc(n);
	assert_non_null(t2);
	snprintf(t2, n, "%.*s%s%s", (int)(dot1 + 1 - tok), tok, p, dot2);
	assert_int_equal(verify(t2, &c), TOKEN_BAD_SIGNATURE);
	free(p);
	free(t2);

	/* The header swapped for a typ-less one: the MAC covers the raw bytes. */
	p = b64url_kid("{\"alg\":\"HS256\",\"kid\":\"@ACT@\"}");
	n = strlen(tok) + strlen(p) + 8;
	t2 = malloc(n);
	assert_non_null(t2);
	snprintf(t2, n, "cbt_%s%s", p, dot1);
	assert_int_equal(verify(t2, &c), TOKEN_BAD_SIGNATURE);
	free(p);
	free(t2);
	free(tok);
}

static void
test_shapes(void **state)
{
	static const char *const bad[] = {
		"", "cbt_", "cbt_.", "cbt_..", "cbt_a.b", "cbt_a.b.c.d",
		"CBT_x.y.z", "cbt-x.y.z", "Bearer cbt_x.y.z", " cbt_x.y.z",
	};
	struct token_claims c;
	char *tok, *t2, big[TOKEN_MAX + 64];
	const char *dot2;
	size_t i, n;

	for (i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		if (verify(bad[i], &c) != TOKEN_MALFORMED)
			fail_msg("\"%s\" not malformed", bad[i]);
	}
	assert_int_equal(token_verify(vault, NULL, 0, NOW, &c), TOKEN_MALFORMED);

	tok = mint("sbx-42", NOW, NOW, NOW + 600);
	n = strlen(tok);
	/* The bare JWT, without its prefix. */
	assert_int_equal(verify(tok + 4, &c), TOKEN_MALFORMED);
	t2 = malloc(n + 8);
	assert_non_null(t2);
	/* Base64 padding, whitespace, a trailing dot, standard-alphabet characters. */
	snprintf(t2, n + 8, "%s=", tok);
	assert_int_equal(verify(t2, &c), TOKEN_MALFORMED);
	snprintf(t2, n + 8, "%s\n", tok);
	assert_int_equal(verify(t2, &c), TOKEN_MALFORMED);
	snprintf(t2, n + 8, "%s.", tok);
	assert_int_equal(verify(t2, &c), TOKEN_MALFORMED);
	snprintf(t2, n + 8, " %s", tok);
	assert_int_equal(verify(t2, &c), TOKEN_MALFORMED);
	/* A NUL inside the given length. */
	memcpy(t2, tok, n + 1);
	t2[n] = '\0';
	assert_int_equal(token_verify(vault, t2, n + 1, NOW, &c), TOKEN_MALFORMED);
	/*
	 * The signature's last character carries 4 bits of the MAC and 2 unused bits:
	 * setting an unused bit decodes to the same MAC in a lax decoder. Refused.
	 */
	dot2 = strrchr(tok, '.');
	assert_int_equal(strlen(dot2 + 1), 43);
	memcpy(t2, tok, n + 1);
	t2[n - 1] = b64chars[(strchr(b64chars, tok[n - 1]) - b64chars) ^ 1];
	assert_string_not_equal(t2, tok);
	assert_int_equal(verify(t2, &c), TOKEN_MALFORMED);
	free(t2);

	/* Longer than TOKEN_MAX: refused before any parsing, no key looked up. */
	memset(big, 'A', sizeof(big));
	memcpy(big, tok, n);
	big[TOKEN_MAX + 1] = '\0';
	assert_int_equal(token_verify(vault, big, TOKEN_MAX + 1, NOW, &c), TOKEN_MALFORMED);
	/* A valid token followed by garbage: only the given length is read. */
	assert_int_equal(token_verify(vault, big, n, NOW, &c), TOKEN_OK);
	free(tok);
}

static void
test_every_byte(void **state)
{
	static const int subst[] = { 'A', 'a', 'z', '0', '9', '-', '_', '.', '=', '+', '/',
	    ' ', '\0', 0x80, 0xff };
	struct token_claims c;
	char *tok, *t2;
	size_t n, i, j, tried = 0;
	enum token_result r;
	int orig, alt[UTIL_ARRAY_LEN(subst) + 3];

	tok = mint("sbx-42", NOW, NOW, NOW + 600);
	n = strlen(tok);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	t2 = malloc(n + 1);
	assert_non_null(t2);
	for (i = 0; i < n; i++) {
		orig = (unsigned char)tok[i];
		for (j = 0; j < UTIL_ARRAY_LEN(subst); j++)
			alt[j] = subst[j];
		alt[j++] = orig ^ 0x01;
		alt[j++] = orig ^ 0x20;
		alt[j++] = (orig + 1) & 0xff;
		for (j = 0; j < UTIL_ARRAY_LEN(alt); j++) {
			if (alt[j] == orig)
				continue;
			memcpy(t2, tok, n + 1);
			t2[i] = (char)alt[j];
			r = token_verify(vault, t2, n, NOW, &c);
			if (r == TOKEN_OK)
				fail_msg("byte %zu changed 0x%02x -> 0x%02x accepted", i, orig,
				    alt[j]);
			tried++;
		}
		/* Dropping the byte, or cutting the token there. */
		memcpy(t2, tok, i);
		memcpy(t2 + i, tok + i + 1, n - i);
		assert_int_not_equal(token_verify(vault, t2, n - 1, NOW, &c), TOKEN_OK);
		assert_int_not_equal(token_verify(vault, tok, i, NOW, &c), TOKEN_OK);
	}
	assert_true(tried > n * 10);
	free(t2);
	free(tok);
}

static void
test_key_lifecycle(void **state)
{
	struct token_claims c;
	char kid_new[VAULT_KID_MAX], *tok, *tok2;

	/* A key past its verify period: its tokens are refused, whatever they claim. */
	tok = forge("{\"alg\":\"HS256\",\"kid\":\"@RET@\"}", payload(NOW, NOW, NOW + 60),
	    key_ret, SIG_HS256);
	assert_int_equal(verify(tok, &c), TOKEN_UNKNOWN_KID);
	free(tok);

	/* A rotation: tokens minted before it still verify; new ones carry the new kid. */
	tok = mint("sbx-42", NOW, NOW, NOW + 600);
	assert_int_equal(vault_rotate_signing_key(vault, st, util_now() + 3600, kid_new), 0);
	assert_string_not_equal(kid_new, kid_act);
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	assert_string_equal(c.kid, kid_act);
	memset(&c, 0, sizeof(c));
	util_strlcpy(c.sub, "sbx-42", sizeof(c.sub));
	util_strlcpy(c.jti, JTI, sizeof(c.jti));
	c.exp = NOW + 600;
	assert_int_equal(token_mint(vault, &c, &tok2), 0);
	assert_string_equal(c.kid, kid_new);
	assert_int_equal(verify(tok2, &c), TOKEN_OK);
	assert_string_equal(c.kid, kid_new);
	/* The new key does not verify a token made under the old kid, nor the reverse. */
	assert_string_not_equal(strchr(tok, '.'), strchr(tok2, '.'));
	util_wipe_str(tok);
	util_wipe_str(tok2);
}

static void
test_mint_refuses(void **state)
{
	struct token_claims c;
	char *tok;

	memset(&c, 0, sizeof(c));
	util_strlcpy(c.jti, JTI, sizeof(c.jti));
	c.exp = NOW;
	assert_int_equal(token_mint(vault, &c, &tok), CB_ERR_INVAL);	/* empty sub */
	assert_null(tok);
	util_strlcpy(c.sub, "sbx 42", sizeof(c.sub));
	assert_int_equal(token_mint(vault, &c, &tok), CB_ERR_INVAL);
	util_strlcpy(c.sub, "sbx-42", sizeof(c.sub));
	util_strlcpy(c.jti, "xyz", sizeof(c.jti));
	assert_int_equal(token_mint(vault, &c, &tok), CB_ERR_INVAL);
	util_strlcpy(c.jti, JTI, sizeof(c.jti));
	c.nbf = NOW;
	assert_int_equal(token_mint(vault, &c, &tok), CB_ERR_INVAL);	/* exp == nbf */
	c.nbf = 0;
	assert_int_equal(token_mint(vault, &c, &tok), 0);
	free(tok);
}

static uint64_t
realtime_ms(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
test_reason_grant_id(void **state)
{
	char a[GRANT_ID_LEN + 1], b[GRANT_ID_LEN + 1];
	uint64_t t0, t1, ms;
	size_t i;

	assert_string_equal(token_reason(TOKEN_MALFORMED), "invalid_token");
	assert_string_equal(token_reason(TOKEN_BAD_ALG), "invalid_token");
	assert_string_equal(token_reason(TOKEN_UNKNOWN_KID), "invalid_token");
	assert_string_equal(token_reason(TOKEN_BAD_SIGNATURE), "invalid_token");
	assert_string_equal(token_reason(TOKEN_EXPIRED), "expired");
	assert_string_equal(token_reason(TOKEN_NOT_YET_VALID), "not_yet_valid");
	assert_string_equal(token_reason(TOKEN_INTERNAL), "internal");
	assert_string_equal(token_reason((enum token_result)-99), "internal");

	/*
	 * The clock the IDs read, not time(2): time() reads the kernel's tick-coarse copy of the
	 * clock and can lag clock_gettime by a tick across a second boundary.
	 */
	t0 = realtime_ms();
	assert_int_equal(token_new_grant_id(a), 0);
	assert_int_equal(token_new_grant_id(b), 0);
	t1 = realtime_ms();
	assert_int_equal(strlen(a), GRANT_ID_LEN);
	assert_int_equal(strlen(b), GRANT_ID_LEN);
	for (i = 0; i < GRANT_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_true(token_grant_id_valid(a, strlen(a)));
	/* The mint time in milliseconds comes first, so later IDs sort after earlier ones... */
	ms = 0;
	for (i = 0; i < GRANT_ID_TIME_LEN; i++)
		ms = ms * 16 + (uint64_t)(strchr("0123456789abcdef", a[i]) - "0123456789abcdef");
	assert_true(ms >= t0 && ms <= t1);
	assert_true(memcmp(a, b, GRANT_ID_TIME_LEN) <= 0);
	/* ...and 128 random bits follow. */
	assert_memory_not_equal(a + GRANT_ID_TIME_LEN, b + GRANT_ID_TIME_LEN, 32);
	for (i = 0; i < 1000; i++) {
		memcpy(a, b, sizeof(a));
		assert_int_equal(token_new_grant_id(b), 0);
		assert_true(strcmp(a, b) != 0 && memcmp(a, b, GRANT_ID_TIME_LEN) <= 0);
	}

	assert_true(token_grant_id_valid(JTI, strlen(JTI)));
	assert_true(token_grant_id_valid(JTI_V1, strlen(JTI_V1)));
	assert_false(token_grant_id_valid(JTI, strlen(JTI) - 1));
	assert_false(token_grant_id_valid(JTI "0", strlen(JTI) + 1));
	assert_false(token_grant_id_valid(JTI_V1 "0", strlen(JTI_V1) + 1));
	assert_false(token_grant_id_valid("", 0));
	assert_false(token_grant_id_valid("0123456789ABCDEF0123456789abcdef", 32));
	assert_false(token_grant_id_valid("0123456789abcdef0123456789abcde\0", 32));
}

/* A token whose jti is of the first format (32 random hex) still verifies. */
static void
test_grant_id_v1(void **state)
{
	struct token_claims c;
	char *tok;

	memset(&c, 0, sizeof(c));
	util_strlcpy(c.sub, "sbx-42", sizeof(c.sub));
	util_strlcpy(c.jti, JTI_V1, sizeof(c.jti));
	c.iat = c.nbf = NOW - 10;
	c.exp = NOW + 600;
	assert_int_equal(token_mint(vault, &c, &tok), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(verify(tok, &c), TOKEN_OK);
	assert_string_equal(c.jti, JTI_V1);
	util_wipe_str(tok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_time_window),
		cmocka_unit_test(test_forged),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_mint_refuses),
		cmocka_unit_test(test_reason_grant_id),
		cmocka_unit_test(test_grant_id_v1),
		cmocka_unit_test(test_key_lifecycle),	/* last: it rotates the active key */
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
