/* fuzz-sources: src/token.c */
/* fuzz-maxlen: 4200 */
/*
 * fuzz_token.c: token_verify with a fixed signing key.
 * Two modes, by the first byte: "c" + bytes: the bytes are verified as a token as they
 * come (shape, base64url, header, MAC). Anything else: the input is "header\npayload"
 * JSON, signed here with the fixed key, so the claim checks behind the MAC are reached.
 * Properties: whatever is accepted has a header whose alg is exactly "HS256" and claims
 * of the right types inside the time window; a refusal hands back no claims.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "crypto.h"
#include "err.h"
#include "token.h"
#include "util.h"
#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

#define FUZZ_KID	"k0123456789abcdef"
#define FUZZ_NOW	1800000000LL

static const uint8_t fuzz_key[CRYPTO_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz!";

/* The vault of this target: one key, FUZZ_KID. */
int
vault_signing_key(struct vault *v, const char *kid, uint8_t key[CRYPTO_KEY_LEN],
    char kid_out[VAULT_KID_MAX])
{
	if (kid != NULL && strcmp(kid, FUZZ_KID) != 0)
		return CB_ERR_NOTFOUND;
	memcpy(key, fuzz_key, CRYPTO_KEY_LEN);
	if (kid == NULL && kid_out != NULL)
		util_strlcpy(kid_out, FUZZ_KID, VAULT_KID_MAX);
	return 0;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Appends base64url of in to out at *o (bounded by cap); returns 0 or -1. */
static int
b64url(const uint8_t *in, size_t len, char *out, size_t cap, size_t *o)
{
	uint32_t acc = 0;
	size_t i;
	int bits = 0;

	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			if (*o + 1 >= cap)
				return -1;
			out[(*o)++] = b64chars[(acc >> bits) & 63];
		}
		acc &= (1U << bits) - 1;
	}
	if (bits > 0) {
		if (*o + 1 >= cap)
			return -1;
		out[(*o)++] = b64chars[(acc << (6 - bits)) & 63];
	}
	return 0;
}

/* Independent check of an accepted token's header: alg is exactly "HS256". */
static void
check_accepted(const char *tok, size_t len, const struct token_claims *c)
{
	char hdr[TOKEN_MAX];
	const char *dot, *p;
	uint32_t acc = 0;
	size_t i, n = 0;
	int bits = 0, v;
	json_t *h;

	CHECK(len <= TOKEN_MAX && memcmp(tok, "cbt_", 4) == 0);
	dot = memchr(tok + 4, '.', len - 4);
	CHECK(dot != NULL);
	for (i = 4; tok + i < dot; i++) {
		p = strchr(b64chars, tok[i]);
		CHECK(tok[i] != '\0' && p != NULL);
		v = (int)(p - b64chars);
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			hdr[n++] = (char)(acc >> bits);
			acc &= (1U << bits) - 1;
		}
	}
	h = json_loadb(hdr, n, 0, NULL);
	CHECK(h != NULL);
	CHECK(json_is_string(json_object_get(h, "alg")));
	CHECK(strcmp(json_string_value(json_object_get(h, "alg")), "HS256") == 0);
	json_decref(h);

	CHECK(strlen(c->sub) >= 1 && strlen(c->sub) <= 128);
	CHECK(token_grant_id_valid(c->jti, strlen(c->jti)));
	CHECK(strcmp(c->kid, FUZZ_KID) == 0);
	CHECK(c->exp > c->nbf && FUZZ_NOW < c->exp);
	CHECK(FUZZ_NOW + TOKEN_SKEW_S >= c->nbf && FUZZ_NOW + TOKEN_SKEW_S >= c->iat);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char tok[TOKEN_MAX * 2];
	struct token_claims c;
	uint8_t mac[CRYPTO_HASH_LEN];
	const uint8_t *nl;
	enum token_result r;
	size_t o;

	if (size == 0)
		return 0;
	if (data[0] == 'c') {
		r = token_verify(NULL, (const char *)data + 1, size - 1, FUZZ_NOW, &c);
		if (r == TOKEN_OK)
			check_accepted((const char *)data + 1, size - 1, &c);
		else
			CHECK(c.sub[0] == '\0' && c.jti[0] == '\0');
		return 0;
	}

	/* Sign "header\npayload" with the fixed key and verify the result. */
	if ((nl = memchr(data, '\n', size)) == NULL)
		return 0;
	memcpy(tok, "cbt_", 4);
	o = 4;
	if (b64url(data, (size_t)(nl - data), tok, sizeof(tok), &o) != 0)
		return 0;
	tok[o++] = '.';
	if (b64url(nl + 1, size - (size_t)(nl + 1 - data), tok, sizeof(tok), &o) != 0)
		return 0;
	if (crypto_hmac_sha256(fuzz_key, sizeof(fuzz_key), tok + 4, o - 4, mac) != 0)
		abort();
	tok[o++] = '.';
	if (b64url(mac, sizeof(mac), tok, sizeof(tok), &o) != 0)
		return 0;
	tok[o] = '\0';
	r = token_verify(NULL, tok, o, FUZZ_NOW, &c);
	if (r == TOKEN_OK)
		check_accepted(tok, o, &c);
	else
		CHECK(c.sub[0] == '\0' && c.jti[0] == '\0');
	CHECK(strcmp(token_reason(r), "internal") != 0);
	return 0;
}
