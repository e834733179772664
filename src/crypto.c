/* crypto.c: cryptographic primitives on OpenSSL 3 EVP (AES-256-GCM, HMAC-SHA256, SHA-256). */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "crypto.h"
#include "err.h"
#include "log.h"

int
crypto_random(void *buf, size_t len)
{
	if (len > INT_MAX)
		return CB_ERR_INVAL;
	if (len == 0)
		return 0;
	if (RAND_bytes(buf, (int)len) != 1) {
		log_warnx("RAND_bytes failed");
		return CB_ERR_CRYPTO;
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
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
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
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
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

int
crypto_hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t len,
    uint8_t out[CRYPTO_HASH_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return CB_ERR_INVAL;
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
	unsigned int outlen = 0;

	if (EVP_Digest(msg, len, out, &outlen, EVP_sha256(), NULL) != 1 ||
	    outlen != CRYPTO_HASH_LEN)
		fatalx("EVP_Digest(SHA-256) failed");
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
