/* crypto.h: the cryptographic primitives (OpenSSL 3). No key management here: see vault.h. */
#ifndef CB_CRYPTO_H
#define CB_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_LEN		32	/* AES-256 and HMAC-SHA256 keys */
#define CRYPTO_NONCE_LEN	12	/* GCM nonce, fresh and random per seal */
#define CRYPTO_TAG_LEN		16
#define CRYPTO_SEAL_OVERHEAD	(CRYPTO_NONCE_LEN + CRYPTO_TAG_LEN)
#define CRYPTO_HASH_LEN		32	/* SHA-256 */

/* Fills buf with len random bytes (getrandom(2)); returns 0, CB_ERR_INVAL or CB_ERR_CRYPTO. */
int crypto_random(void *buf, size_t len) __attribute__((warn_unused_result));

/*
 * AES-256-GCM seal: out (caller-owned, ptlen + CRYPTO_SEAL_OVERHEAD bytes) receives
 * nonce || ciphertext || tag with a fresh random nonce. Returns 0 or CB_ERR_CRYPTO.
 */
int crypto_seal(const uint8_t key[CRYPTO_KEY_LEN], const void *ad, size_t adlen,
    const void *pt, size_t ptlen, uint8_t *out) __attribute__((warn_unused_result));

/*
 * AES-256-GCM open of nonce || ciphertext || tag: pt (caller-owned, inlen -
 * CRYPTO_SEAL_OVERHEAD bytes) receives the plaintext. Returns 0, CB_ERR_INVAL
 * (too short) or CB_ERR_AUTH (tag mismatch: wrong key, tampered data or AD).
 */
int crypto_open(const uint8_t key[CRYPTO_KEY_LEN], const void *ad, size_t adlen,
    const uint8_t *in, size_t inlen, uint8_t *pt) __attribute__((warn_unused_result));

/* HMAC-SHA256 of msg under key into out. Returns 0 or CB_ERR_CRYPTO. */
int crypto_hmac_sha256(const uint8_t *key, size_t keylen, const void *msg, size_t len,
    uint8_t out[CRYPTO_HASH_LEN]) __attribute__((warn_unused_result));

/* SHA-256 of msg into out. */
void crypto_sha256(const void *msg, size_t len, uint8_t out[CRYPTO_HASH_LEN]);

/* Constant-time comparison: returns 1 when equal, 0 otherwise. */
int crypto_memeq(const void *a, const void *b, size_t len) __attribute__((warn_unused_result));

/*
 * Allocates len bytes for key material: zeroed, mlock'ed where the system allows,
 * excluded from core dumps (MADV_DONTDUMP). Free with crypto_secure_free.
 */
void *crypto_secure_alloc(size_t len);
/* Wipes (explicit_bzero), unlocks and frees memory from crypto_secure_alloc; NULL is fine. */
void crypto_secure_free(void *p, size_t len);

#endif
