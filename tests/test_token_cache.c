/*
 * test_token_cache.c: token.c's fast paths change no answer. token_mint writes exactly
 * the bytes libjwt 1.10's encoder wrote. The verified-token cache: a token
 * presented again (a cache hit) is still refused once expired or not yet valid at the
 * time given, once its signing key stops verifying, under another vault, or when any
 * byte differs; eviction under more tokens than the cache holds keeps every answer.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>

#include "crypto.h"
#include "err.h"
#include "store.h"
#include "token.h"
#include "util.h"
#include "vault.h"

int main(void);

#define NOW	1800000000LL
#define NTOK	9000	/* more than the cache holds (2048 sets x 4 ways) */

struct fx {
	char dir[64], db[128], key[128];
	struct store *st;
	struct vault *v;
};

static int
fx_open(struct fx *f)
{
	char why[512];

	util_strlcpy(f->dir, "/tmp/cbtest-tcache-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/cb.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", f->dir);
	if (vault_create_master_key(f->key) != 0 ||
	    store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)) != 0 ||
	    vault_open(f->st, f->key, &f->v, why, sizeof(why)) != 0)
		return -1;
	return 0;
}

static void
fx_close(struct fx *f)
{
	char p[160];

	vault_free(f->v);
	store_close(f->st);
	unlink(f->db);
	snprintf(p, sizeof(p), "%s-wal", f->db);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->db);
	unlink(p);
	unlink(f->key);
	rmdir(f->dir);
}

static int
setup(void **state)
{
	struct fx *f;

	if ((f = calloc(1, sizeof(*f))) == NULL || fx_open(f) != 0)
		return -1;
	token_cache_clear();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	token_cache_clear();
	fx_close(f);
	free(f);
	return 0;
}

static char *
mint(struct vault *v, const char *sub, long long nbf, long long exp)
{
	struct token_claims c;
	char *tok;

	memset(&c, 0, sizeof(c));
	util_strlcpy(c.sub, sub, sizeof(c.sub));
	assert_int_equal(token_new_grant_id(c.jti), 0);
	c.iat = nbf;
	c.nbf = nbf;
	c.exp = exp;
	assert_int_equal(token_mint(v, &c, &tok), 0);
	return tok;
}

static enum token_result
verify(struct vault *v, const char *tok, int64_t now, struct token_claims *c)
{
	return token_verify(v, tok, strlen(tok), now, c);
}

/* A hit answers with the same claims, and rechecks the time window every time. */
static void
test_hit_rechecks_time(void **state)
{
	struct fx *f = *state;
	struct token_claims a, b;
	char *tok;
	int i;

	tok = mint(f->v, "sbx-cache", NOW - 10, NOW + 600);
	assert_int_equal(verify(f->v, tok, NOW, &a), TOKEN_OK);
	for (i = 0; i < 3; i++) {
		memset(&b, 0x55, sizeof(b));
		assert_int_equal(verify(f->v, tok, NOW, &b), TOKEN_OK);
		assert_memory_equal(&a, &b, sizeof(a));
	}
	assert_string_equal(b.sub, "sbx-cache");
	assert_int_equal(b.exp, NOW + 600);
	/* Expired at exp exactly (no skew), with the claims cleared. */
	assert_int_equal(verify(f->v, tok, NOW + 600, &b), TOKEN_EXPIRED);
	assert_int_equal(b.exp, 0);
	assert_string_equal(b.sub, "");
	assert_int_equal(verify(f->v, tok, NOW + 599, &b), TOKEN_OK);
	/* Before nbf beyond the skew. */
	assert_int_equal(verify(f->v, tok, NOW - 10 - TOKEN_SKEW_S - 1, &b),
	    TOKEN_NOT_YET_VALID);
	assert_int_equal(verify(f->v, tok, NOW - 10 - TOKEN_SKEW_S, &b), TOKEN_OK);
	/* An expired entry is not resurrected by a later, earlier clock. */
	assert_int_equal(verify(f->v, tok, NOW, &b), TOKEN_OK);
	util_wipe_str(tok);
}

/* Only the exact bytes hit: a prefix, an extension or any changed byte is verified in full. */
static void
test_exact_bytes_only(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	char *tok, *t2;
	size_t n, i;
	int refused = 0;

	tok = mint(f->v, "sbx-cache", NOW, NOW + 600);
	n = strlen(tok);
	assert_int_equal(verify(f->v, tok, NOW, &c), TOKEN_OK);
	assert_int_not_equal(token_verify(f->v, tok, n - 1, NOW, &c), TOKEN_OK);
	t2 = calloc(1, n + 2);
	assert_non_null(t2);
	memcpy(t2, tok, n);
	t2[n] = 'A';
	assert_int_not_equal(token_verify(f->v, t2, n + 1, NOW, &c), TOKEN_OK);
	/* Every byte of the token, changed in turn, after the token itself was cached. */
	for (i = 0; i < n; i++) {
		memcpy(t2, tok, n + 1);
		t2[i] = t2[i] == 'A' ? 'B' : 'A';
		if (token_verify(f->v, t2, n, NOW, &c) != TOKEN_OK)
			refused++;
		assert_int_equal(verify(f->v, tok, NOW, &c), TOKEN_OK);
	}
	assert_int_equal(refused, (int)n);
	util_wipe_str(t2);
	util_wipe_str(tok);
}

/* A cached token stops verifying when its key does (rotation with a past retire time). */
static void
test_key_retired_after_caching(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	char kid[VAULT_KID_MAX], *tok;

	tok = mint(f->v, "sbx-cache", util_now() - 10, util_now() + 600);
	assert_int_equal(verify(f->v, tok, util_now(), &c), TOKEN_OK);
	assert_int_equal(verify(f->v, tok, util_now(), &c), TOKEN_OK);
	assert_int_equal(vault_rotate_signing_key(f->v, f->st, util_now() - 1, kid), 0);
	assert_int_equal(verify(f->v, tok, util_now(), &c), TOKEN_UNKNOWN_KID);
	util_wipe_str(tok);
}

/* Another vault (another deployment's keys) does not share this vault's entries. */
static void
test_other_vault(void **state)
{
	struct fx *f = *state;
	struct fx g;
	struct token_claims c;
	char *tok;

	memset(&g, 0, sizeof(g));
	assert_int_equal(fx_open(&g), 0);
	tok = mint(f->v, "sbx-cache", NOW, NOW + 600);
	assert_int_equal(verify(f->v, tok, NOW, &c), TOKEN_OK);
	assert_int_equal(verify(g.v, tok, NOW, &c), TOKEN_UNKNOWN_KID);
	assert_int_equal(verify(f->v, tok, NOW, &c), TOKEN_OK);
	fx_close(&g);
	util_wipe_str(tok);
}

/* More tokens than entries: every answer stays right while entries are replaced. */
static void
test_eviction(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	char **toks, sub[32];
	int i, round;

	toks = calloc(NTOK, sizeof(*toks));
	assert_non_null(toks);
	for (i = 0; i < NTOK; i++) {
		snprintf(sub, sizeof(sub), "sbx-%d", i);
		toks[i] = mint(f->v, sub, NOW, NOW + 600 + i);
	}
	for (round = 0; round < 2; round++)
		for (i = 0; i < NTOK; i++) {
			snprintf(sub, sizeof(sub), "sbx-%d", i);
			assert_int_equal(verify(f->v, toks[i], NOW, &c), TOKEN_OK);
			assert_string_equal(c.sub, sub);
			assert_int_equal(c.exp, NOW + 600 + i);
		}
	for (i = 0; i < NTOK; i++)
		assert_int_equal(verify(f->v, toks[i], NOW + 600 + i, &c), TOKEN_EXPIRED);
	token_cache_clear();
	assert_int_equal(verify(f->v, toks[0], NOW, &c), TOKEN_OK);
	for (i = 0; i < NTOK; i++)
		util_wipe_str(toks[i]);
	free(toks);
}

/*
 * The benchmark's 2,000 tokens in use are (nearly) all held, whichever sets their MACs
 * fall in: with 1,024 sets of 4, ~4 % were evicted by others (and ~13 % missed at every
 * turn when presented in a cycle).
 */
static void
test_holds_tokens_in_use(void **state)
{
	struct fx *f = *state;
	struct token_claims c;
	char **toks, sub[32];
	int i;

	toks = calloc(2000, sizeof(*toks));
	assert_non_null(toks);
	assert_int_equal(token_cache_count(), 0);
	for (i = 0; i < 2000; i++) {
		snprintf(sub, sizeof(sub), "sbx-%d", i);
		toks[i] = mint(f->v, sub, NOW, NOW + 600);
		assert_int_equal(verify(f->v, toks[i], NOW, &c), TOKEN_OK);
	}
	assert_true(token_cache_count() >= 1960);
	assert_true(token_cache_count() <= 2000);
	for (i = 0; i < 2000; i++)
		util_wipe_str(toks[i]);
	free(toks);
}

/* The token libjwt 1.10 makes of the same claims, as token_mint made it before. */
static char *
libjwt_mint(struct vault *v, const struct token_claims *c)
{
	uint8_t key[CRYPTO_KEY_LEN];
	char kid[VAULT_KID_MAX], *enc, *tok;
	jwt_t *jwt = NULL;
	size_t n;

	assert_int_equal(vault_signing_key(v, NULL, key, kid), 0);
	assert_int_equal(jwt_new(&jwt), 0);
	assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
	assert_int_equal(jwt_add_grant(jwt, "iss", TOKEN_ISS), 0);
	assert_int_equal(jwt_add_grant(jwt, "aud", TOKEN_AUD), 0);
	assert_int_equal(jwt_add_grant(jwt, "sub", c->sub), 0);
	assert_int_equal(jwt_add_grant(jwt, "jti", c->jti), 0);
	assert_int_equal(jwt_add_grant_int(jwt, "iat", (long)c->iat), 0);
	assert_int_equal(jwt_add_grant_int(jwt, "nbf", (long)c->nbf), 0);
	assert_int_equal(jwt_add_grant_int(jwt, "exp", (long)c->exp), 0);
	assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)sizeof(key)), 0);
	enc = jwt_encode_str(jwt);
	assert_non_null(enc);
	n = strlen(enc) + 5;
	tok = malloc(n);
	assert_non_null(tok);
	snprintf(tok, n, "cbt_%s", enc);
	util_wipe_str(enc);
	jwt_free(jwt);
	explicit_bzero(key, sizeof(key));
	return tok;
}

/* token_mint's own encoder: byte for byte what libjwt wrote, escapes included. */
static void
test_mint_bytes_as_libjwt(void **state)
{
	static const char *const subs[] = { "sbx-42", "a\"quote", "back\\slash", "x", "/s/l/",
	    "~!#$%&'()*+,-.:;<=>?@[]^_`{|}",
	    /* 128 characters, the longest sub */
	    "s012345678901234567890123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789012345678901234567890123456", NULL };
	struct fx *f = *state;
	struct token_claims c, v;
	char *ours, *theirs;
	int i;

	for (i = 0; subs[i] != NULL; i++) {
		memset(&c, 0, sizeof(c));
		assert_true(util_strlcpy(c.sub, subs[i], sizeof(c.sub)) < sizeof(c.sub));
		assert_int_equal(token_new_grant_id(c.jti), 0);
		c.iat = NOW - 1;
		c.nbf = NOW;
		c.exp = NOW + 3600 + i;
		assert_int_equal(token_mint(f->v, &c, &ours), 0);
		theirs = libjwt_mint(f->v, &c);
		assert_string_equal(ours, theirs);
		assert_int_equal(verify(f->v, ours, NOW, &v), TOKEN_OK);
		assert_string_equal(v.sub, subs[i]);
		assert_string_equal(v.jti, c.jti);
		assert_int_equal(v.iat, NOW - 1);
		assert_int_equal(v.exp, NOW + 3600 + i);
		util_wipe_str(ours);
		util_wipe_str(theirs);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hit_rechecks_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exact_bytes_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_retired_after_caching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_vault, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holds_tokens_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mint_bytes_as_libjwt, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
