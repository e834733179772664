/* crypto.c: cryptographic primitives on OpenSSL 3 EVP (AES-256-GCM, HMAC-SHA256, SHA-256). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "err.h"
#include "log.h"

/*
 * Algorithms fetched once. OpenSSL 3 looks an algorithm up by name in the provider
 * store on every implicit use (EVP_sha256() in EVP_Digest, HMAC(), EVP_aes_256_gcm()
 * in EVP_*Init_ex): ~2.7 k instructions per lookup, several per request, plus a
 * digest context allocated and freed per call. When a fetch
 * fails (no default provider), the implicit forms are used instead.
 */
static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static EVP_MD *crypto_sha256_md;
static EVP_CIPHER *crypto_gcm_cipher;
/*
 * One reusable SHA-256 context per thread (SHA-256 and HMAC-SHA256): between calls it
 * holds the last digest output only. Freed when the thread exits.
 */
static pthread_key_t crypto_mdctx_key;
static int crypto_mdctx_ok;

static void
crypto_mdctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void
crypto_fetch(void)
{
	crypto_sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	crypto_gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	crypto_mdctx_ok = pthread_key_create(&crypto_mdctx_key, crypto_mdctx_free) == 0;
}

static const EVP_CIPHER *
crypto_gcm(void)
{
	pthread_once(&crypto_once, crypto_fetch);
	return crypto_gcm_cipher != NULL ? crypto_gcm_cipher : EVP_aes_256_gcm();
}

/*
 * The kernel's CSPRNG, which also seeds OpenSSL's: getrandom(2) costs one system call, where
 * RAND_bytes took ~4 us per call in OpenSSL's DRBG and its locks (3 % of a mint's CPU).
 */
int
crypto_random(void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	if (len > INT_MAX)
		return CB_ERR_INVAL;
	while (len > 0) {
		if ((n = getrandom(p, len, 0)) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("getrandom");
			return CB_ERR_CRYPTO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *ad, size_t adlen,
    const void *pt, size_t ptlen, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *nonce = out, *ct = out + CRYPTO_NONCE_LEN;
	int n, rc = CB_ERR_CRYPTO;

	if (ptlen > INT_MAX - CRYPTO_SEAL_OVERHEAD || adlen > INT_MAX)
		return CB_ERR_INVAL;
	/* A fresh random 96-bit nonce per seal: never reused under one key in practice. */
	if (crypto_random(nonce, CRYPTO_NONCE_LEN) != 0)
		return CB_ERR_CRYPTO;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_EncryptInit_ex(ctx, crypto_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (adlen > 0 && EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1)
		goto out;
	if (ptlen > 0 && (EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1 ||
	    (size_t)n != ptlen))
		goto out;
	if (EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 || n != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN,
	    ct + ptlen) != 1)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		log_warnx("AES-256-GCM seal failed");
		explicit_bzero(out, ptlen + CRYPTO_SEAL_OVERHEAD);
	}
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int
crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const void *ad, size_t adlen,
    const uint8_t *in, size_t inlen, uint8_t *pt)
{
	EVP_CIPHER_CTX *ctx = NULL;
	const uint8_t *nonce, *ct, *tag;
	uint8_t tagbuf[CRYPTO_TAG_LEN];
	size_t ctlen;
	int n, rc = CB_ERR_CRYPTO;

	if (inlen < CRYPTO_SEAL_OVERHEAD)
		return CB_ERR_INVAL;
	if (inlen > INT_MAX || adlen > INT_MAX)
		return CB_ERR_INVAL;
	ctlen = inlen - CRYPTO_SEAL_OVERHEAD;
	nonce = in;
	ct = in + CRYPTO_NONCE_LEN;
	tag = ct + ctlen;
	/* EVP_CTRL_GCM_SET_TAG wants a writable buffer. */
	memcpy(tagbuf, tag, CRYPTO_TAG_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(ctx, crypto_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (adlen > 0 && EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1)
		goto out;
	if (ctlen > 0 && (EVP_DecryptUpdate(ctx, pt, &n, ct, (int)ctlen) != 1 ||
	    (size_t)n != ctlen))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, tagbuf) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + ctlen, &n) != 1) {
		rc = CB_ERR_AUTH;
		goto out;
	}
	rc = 0;
out:
	if (rc != 0 && ctlen > 0)
		explicit_bzero(pt, ctlen);	/* never hand out unauthenticated plaintext */
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/*
 * This thread's SHA-256 context, ready for EVP_DigestInit_ex2 with the fetched digest;
 * NULL when either is unavailable (the caller falls back to the one-shot forms).
 */
static EVP_MD_CTX *
crypto_thread_md(void)
{
	EVP_MD_CTX *ctx;

	pthread_once(&crypto_once, crypto_fetch);
	if (crypto_sha256_md == NULL || !crypto_mdctx_ok)
		return NULL;
	if ((ctx = pthread_getspecific(crypto_mdctx_key)) != NULL)
		return ctx;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return NULL;
	if (pthread_setspecific(crypto_mdctx_key, ctx) != 0) {
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

#define CRYPTO_SHA256_BLOCK	64

/*
 * HMAC-SHA256 (RFC 2104) on the thread's reused digest context: the same compressions
 * as HMAC(), without a MAC context, a digest fetch by name and two digest contexts
 * allocated and freed per call (~10 k instructions of a mint's 300-byte token). The
 * padded key block and the inner hash live on the stack and are wiped; the context is
 * left holding the outer hash, i.e. the MAC itself.
 */
static int
crypto_hmac_md(EVP_MD_CTX *ctx, const uint8_t *key, size_t keylen, const void *msg,
    size_t len, uint8_t out[CRYPTO_HASH_LEN])
{
	uint8_t k0[CRYPTO_SHA256_BLOCK], inner[CRYPTO_HASH_LEN];
	unsigned int n = 0;
	size_t i;
	int rc = CB_ERR_CRYPTO;

	memset(k0, 0, sizeof(k0));
	if (keylen > sizeof(k0)) {
		if (EVP_DigestInit_ex2(ctx, crypto_sha256_md, NULL) != 1 ||
		    EVP_DigestUpdate(ctx, key, keylen) != 1 ||
		    EVP_DigestFinal_ex(ctx, k0, &n) != 1 || n != CRYPTO_HASH_LEN)
			goto out;
	} else if (keylen > 0)
		memcpy(k0, key, keylen);
	for (i = 0; i < sizeof(k0); i++)
		k0[i] ^= 0x36;
	if (EVP_DigestInit_ex2(ctx, crypto_sha256_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, k0, sizeof(k0)) != 1 ||
	    (len > 0 && EVP_DigestUpdate(ctx, msg, len) != 1) ||
	    EVP_DigestFinal_ex(ctx, inner, &n) != 1 || n != CRYPTO_HASH_LEN)
		goto out;
	for (i = 0; i < sizeof(k0); i++)
		k0[i] ^= 0x36 ^ 0x5c;
	if (EVP_DigestInit_ex2(ctx, crypto_sha256_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, k0, sizeof(k0)) != 1 ||
	    EVP_DigestUpdate(ctx, inner, sizeof(inner)) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != CRYPTO_HASH_LEN)
		goto out;
	rc = 0;
out:
	explicit_bzero(k0, sizeof(k0));
	explicit_bzero(inner, sizeof(inner));
	if (rc != 0) {
		/* The context may hold a keyed intermediate state: start it afresh. */
		EVP_MD_CTX_reset(ctx);
		explicit_bzero(out, CRYPTO_HASH_LEN);
	}
	return rc;
}

int
crypto_hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t len,
    uint8_t out[CRYPTO_HASH_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return CB_ERR_INVAL;
	if ((ctx = crypto_thread_md()) != NULL) {
		if (crypto_hmac_md(ctx, key, keylen, msg, len, out) != 0) {
			log_warnx("HMAC-SHA256 failed");
			return CB_ERR_CRYPTO;
		}
		return 0;
	}
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &outlen) == NULL ||
	    outlen != CRYPTO_HASH_LEN) {
		log_warnx("HMAC-SHA256 failed");
		return CB_ERR_CRYPTO;
	}
	return 0;
}

void
crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_HASH_LEN])
{
	EVP_MD_CTX *ctx;
	unsigned int outlen = 0;

	if ((ctx = crypto_thread_md()) == NULL) {
		if (EVP_Digest(msg, len, out, &outlen, EVP_sha256(), NULL) != 1 ||
		    outlen != CRYPTO_HASH_LEN)
			fatalx("EVP_Digest(SHA-256) failed");
		return;
	}
	/* Re-initialising a context with the same digest keeps its provider state. */
	if (EVP_DigestInit_ex2(ctx, crypto_sha256_md, NULL) != 1 ||
	    EVP_DigestUpdate(ctx, msg, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &outlen) != 1 || outlen != CRYPTO_HASH_LEN)
		fatalx("SHA-256 failed");
}

int
crypto_memeq(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/*
 * Key material lives in its own page-aligned mapping so that mlock and
 * MADV_DONTDUMP cover it and nothing else; the length is rounded up to pages.
 */
static size_t
crypto_secure_size(size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t page = pg > 0 ? (size_t)pg : 4096;

	if (len == 0)
		len = 1;
	if (len > SIZE_MAX - page)
		return 0;
	return (len + page - 1) / page * page;
}

void *
crypto_secure_alloc(size_t len)
{
	size_t sz = crypto_secure_size(len);
	void *p;

	if (sz == 0)
		return NULL;
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* mlock may fail under RLIMIT_MEMLOCK: tolerated, the key is still excluded from dumps. */
	if (mlock(p, sz) == -1)
		log_debug("mlock failed; key memory may be swapped");
	if (madvise(p, sz, MADV_DONTDUMP) == -1)
		log_debug("madvise(MADV_DONTDUMP) failed");
	return p;		/* anonymous mappings are zero-filled */
}

void
crypto_secure_free(void *p, size_t len)
{
	size_t sz;

	if (p == NULL)
		return;
	sz = crypto_secure_size(len);
	explicit_bzero(p, sz);
	munlock(p, sz);
	munmap(p, sz);
}
