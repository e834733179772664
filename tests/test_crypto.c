/*
 * test_crypto.c: AES-256-GCM seal/open, tampering, HMAC and SHA-256 vectors, secure memory,
 * and util_wipe_stack.
 */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "err.h"
#include "util.h"

static const uint8_t test_key[CRYPTO_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
	0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
	0x1c, 0x1d, 0x1e, 0x1f,
};
static const char test_ad[] = "secret:github:v1";
static const char test_pt[] = "ghp_exampletokenvalue0123456789";

static void
test_seal_open_roundtrip(void **state)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 1000, 8192 };
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(lens); i++) {
		uint8_t *pt = malloc(lens[i] + 1), *out = malloc(lens[i] + CRYPTO_SEAL_OVERHEAD);
		uint8_t *back = malloc(lens[i] + 1);

		assert_non_null(pt);
		assert_non_null(out);
		assert_non_null(back);
		assert_int_equal(crypto_random(pt, lens[i]), 0);
		assert_int_equal(crypto_seal(test_key, test_ad, strlen(test_ad), pt, lens[i], out), 0);
		assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad), out,
		    lens[i] + CRYPTO_SEAL_OVERHEAD, back), 0);
		assert_memory_equal(pt, back, lens[i]);
		free(pt);
		free(out);
		free(back);
	}
}

static void
test_nonce_fresh(void **state)
{
	uint8_t a[sizeof(test_pt) + CRYPTO_SEAL_OVERHEAD], b[sizeof(a)];

	(void)state;
	assert_int_equal(crypto_seal(test_key, NULL, 0, test_pt, sizeof(test_pt), a), 0);
	assert_int_equal(crypto_seal(test_key, NULL, 0, test_pt, sizeof(test_pt), b), 0);
	/* Same key and plaintext: nonces (and so ciphertexts) must differ. */
	assert_memory_not_equal(a, b, CRYPTO_NONCE_LEN);
	assert_memory_not_equal(a + CRYPTO_NONCE_LEN, b + CRYPTO_NONCE_LEN, sizeof(test_pt));
	/* The plaintext does not appear in the output. */
	assert_null(memmem(a, sizeof(a), test_pt, sizeof(test_pt) - 1));
}

/* Flipping any single byte of nonce, ciphertext or tag, or of the AD, must fail. */
static void
test_tamper(void **state)
{
	const size_t ptlen = sizeof(test_pt) - 1, ctlen = ptlen + CRYPTO_SEAL_OVERHEAD;
	uint8_t ct[sizeof(test_pt) + CRYPTO_SEAL_OVERHEAD], back[sizeof(test_pt)];
	char ad[sizeof(test_ad)];
	uint8_t bad_key[CRYPTO_KEY_LEN];
	size_t i;

	(void)state;
	assert_int_equal(crypto_seal(test_key, test_ad, strlen(test_ad), test_pt, ptlen, ct), 0);
	for (i = 0; i < ctlen; i++) {
		ct[i] ^= 0x01;
		assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad), ct, ctlen, back),
		    CB_ERR_AUTH);
		ct[i] ^= 0x01;
	}
	memcpy(ad, test_ad, sizeof(ad));
	for (i = 0; i < strlen(test_ad); i++) {
		ad[i] ^= 0x20;
		assert_int_equal(crypto_open(test_key, ad, strlen(ad), ct, ctlen, back),
		    CB_ERR_AUTH);
		ad[i] ^= 0x20;
	}
	/* AD truncated, AD missing, wrong key, truncated input. */
	assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad) - 1, ct, ctlen, back),
	    CB_ERR_AUTH);
	assert_int_equal(crypto_open(test_key, NULL, 0, ct, ctlen, back), CB_ERR_AUTH);
	memcpy(bad_key, test_key, sizeof(bad_key));
	bad_key[31] ^= 0x80;
	assert_int_equal(crypto_open(bad_key, test_ad, strlen(test_ad), ct, ctlen, back),
	    CB_ERR_AUTH);
	assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad), ct, ctlen - 1, back),
	    CB_ERR_AUTH);
	assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad), ct,
	    CRYPTO_SEAL_OVERHEAD - 1, back), CB_ERR_INVAL);
	/* Untouched, it still opens. */
	assert_int_equal(crypto_open(test_key, test_ad, strlen(test_ad), ct, ctlen, back), 0);
	assert_memory_equal(back, test_pt, ptlen);
}

/* RFC 4231 test cases 1 and 2; FIPS 180-2 SHA-256 "abc". */
static void
test_hmac_sha256_vectors(void **state)
{
	static const struct {
		const char *key_hex;
		const char *msg;
		const char *mac_hex;
	} cases[] = {
		{ "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There",
		  "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
		{ "4a656665", "what do ya want for nothing?",
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
	};
	uint8_t key[64], mac[CRYPTO_HASH_LEN], h[CRYPTO_HASH_LEN];
	char hex[2 * CRYPTO_HASH_LEN + 1];
	size_t i, klen;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		klen = strlen(cases[i].key_hex) / 2;
		assert_int_equal(util_unhex(cases[i].key_hex, key, klen), 0);
		assert_int_equal(crypto_hmac_sha256(key, klen, cases[i].msg, strlen(cases[i].msg),
		    mac), 0);
		util_hex(mac, sizeof(mac), hex);
		assert_string_equal(hex, cases[i].mac_hex);
	}
	crypto_sha256("abc", 3, h);
	util_hex(h, sizeof(h), hex);
	assert_string_equal(hex,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/*
 * crypto_hmac_sha256 computes HMAC itself on a reused per-thread digest context: it must
 * equal OpenSSL's HMAC() for keys shorter than, equal to and longer than the 64-byte
 * block (hashed first), empty messages and multi-block ones, with SHA-256 calls in
 * between (the context is shared), and RFC 4231 case 6 (131-byte key).
 */
static void
test_hmac_matches_openssl(void **state)
{
	static const size_t klens[] = { 0, 1, 31, 32, 63, 64, 65, 131, 300 };
	static const size_t mlens[] = { 0, 1, 55, 56, 64, 300, 1000 };
	uint8_t key[300], msg[1000], mac[CRYPTO_HASH_LEN], want[CRYPTO_HASH_LEN];
	uint8_t h[CRYPTO_HASH_LEN], h2[CRYPTO_HASH_LEN];
	char hex[2 * CRYPTO_HASH_LEN + 1];
	unsigned int wlen;
	size_t i, j;

	(void)state;
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_random(msg, sizeof(msg)), 0);
	crypto_sha256(msg, sizeof(msg), h);
	for (i = 0; i < UTIL_ARRAY_LEN(klens); i++) {
		for (j = 0; j < UTIL_ARRAY_LEN(mlens); j++) {
			wlen = 0;
			assert_non_null(HMAC(EVP_sha256(), key, (int)klens[i], msg, mlens[j],
			    want, &wlen));
			assert_int_equal(wlen, CRYPTO_HASH_LEN);
			memset(mac, 0, sizeof(mac));
			assert_int_equal(crypto_hmac_sha256(key, klens[i], msg, mlens[j], mac),
			    0);
			assert_memory_equal(mac, want, sizeof(mac));
			/* The shared context gives the same digest after an HMAC. */
			crypto_sha256(msg, sizeof(msg), h2);
			assert_memory_equal(h, h2, sizeof(h));
		}
	}
	/* RFC 4231 test case 6: 131 bytes of 0xaa, a key longer than the block. */
	for (i = 0; i < 131; i++)
		key[i] = 0xaa;
	assert_int_equal(crypto_hmac_sha256(key, 131,
	    "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac), 0);
	util_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex,
	    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void
test_memeq(void **state)
{
	static const uint8_t a[4] = { 1, 2, 3, 4 }, b[4] = { 1, 2, 3, 5 };

	(void)state;
	assert_int_equal(crypto_memeq(a, a, sizeof(a)), 1);
	assert_int_equal(crypto_memeq(a, b, sizeof(a)), 0);
	assert_int_equal(crypto_memeq(a, b, 3), 1);
}

static void
test_secure_alloc(void **state)
{
	static const size_t lens[] = { 1, 32, 4096, 4097, 10000 };
	size_t i, j;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(lens); i++) {
		uint8_t *p = crypto_secure_alloc(lens[i]);

		assert_non_null(p);
		for (j = 0; j < lens[i]; j++)
			assert_int_equal(p[j], 0);
		memset(p, 0xa5, lens[i]);
		crypto_secure_free(p, lens[i]);
	}
	crypto_secure_free(NULL, 32);
}

static void
test_random(void **state)
{
	uint8_t a[32], b[32], big[65536], zero[32];

	(void)state;
	assert_int_equal(crypto_random(a, sizeof(a)), 0);
	assert_int_equal(crypto_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(crypto_random(a, 0), 0);
	/* Filled to the end, in however many parts getrandom gives. */
	memset(big, 0, sizeof(big));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(crypto_random(big, sizeof(big)), 0);
	assert_memory_not_equal(big + sizeof(big) - sizeof(zero), zero, sizeof(zero));
	assert_int_equal(crypto_random(big, (size_t)INT_MAX + 1), CB_ERR_INVAL);
}

/* ---- util_ratelimit_ok (the log lines a full disk or a knocking sandbox repeat) ---- */

static void
test_ratelimit(void **state)
{
	struct util_ratelimit r = { 0, 0 };
	unsigned long long quiet = 99;

	(void)state;
	assert_int_equal(util_ratelimit_ok(&r, 3600000000LL, &quiet), 1);	/* the first */
	assert_int_equal(quiet, 0);
	assert_int_equal(util_ratelimit_ok(&r, 3600000000LL, &quiet), 0);
	assert_int_equal(util_ratelimit_ok(&r, 3600000000LL, &quiet), 0);
	/* the period over (0 here): logged, with the two refused since */
	assert_int_equal(util_ratelimit_ok(&r, 0, &quiet), 1);
	assert_int_equal(quiet, 2);
	assert_int_equal(util_ratelimit_ok(&r, 0, &quiet), 1);
	assert_int_equal(quiet, 0);
}

/* ---- util_wipe_stack ---- */

#define STACK_MARK_LEN 32
static volatile unsigned stack_sink;
static unsigned char stack_mark[STACK_MARK_LEN];

static __attribute__((noinline)) void
stack_consume(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		stack_sink += p[i];
}

/* A frame as a TLS library's would be: 8 KiB, the mark near its deep end. */
static __attribute__((noinline)) void
stack_leave_mark(void)
{
	unsigned char buf[8192];

	memset(buf, 'x', sizeof(buf));
	memcpy(buf + 256, stack_mark, STACK_MARK_LEN);
	stack_consume(buf, sizeof(buf));
}

/* Copies of the mark in the mapping of this thread's stack, read through /proc/self/mem. */
static long
stack_mark_copies(void)
{
	char line[512], perms[8];
	unsigned long lo = 0, hi = 0;
	unsigned char *buf;
	long hits = 0;
	FILE *maps;
	ssize_t r;
	size_t i;
	int fd;

	assert_non_null(maps = fopen("/proc/self/maps", "r"));
	while (fgets(line, sizeof(line), maps) != NULL) {
		/* the mapping this frame is in (under valgrind not the one named [stack]) */
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
		    lo <= (uintptr_t)line && (uintptr_t)line < hi)
			break;
		lo = hi = 0;
	}
	fclose(maps);
	assert_true(hi > lo && hi - lo <= 64 * 1024 * 1024);
	assert_non_null(buf = malloc(hi - lo));
	assert_true((fd = open("/proc/self/mem", O_RDONLY)) >= 0);
	r = pread(fd, buf, hi - lo, (off_t)lo);
	close(fd);
	assert_true(r > 0);
	for (i = 0; i + STACK_MARK_LEN <= (size_t)r; i++)
		if (buf[i] == stack_mark[0] && memcmp(buf + i, stack_mark, STACK_MARK_LEN) == 0)
			hits++;
	free(buf);
	return hits;
}

static void
test_wipe_stack(void **state)
{
	(void)state;
	assert_int_equal(crypto_random(stack_mark, sizeof(stack_mark)), 0);
	/* control: a returned function's frame stays in the stack below the caller */
	stack_leave_mark();
	assert_true(stack_mark_copies() > 0);
	stack_leave_mark();
	util_wipe_stack();
	assert_int_equal(stack_mark_copies(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_open_roundtrip),
		cmocka_unit_test(test_nonce_fresh),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_hmac_sha256_vectors),
		cmocka_unit_test(test_hmac_matches_openssl),
		cmocka_unit_test(test_memeq),
		cmocka_unit_test(test_secure_alloc),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_wipe_stack),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
