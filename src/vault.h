/*
 * vault.h: the one narrow interface to key material. The master key (KEK) wraps data
 * keys (DEKs) and token signing keys, all stored wrapped in the database; the vault
 * holds the unwrapped keys in locked memory and offers seal/open for secret values and
 * the signing keys to token.c. Everything that touches key bytes goes through here so
 * it can later move into its own privilege-separated process. Thread-safe (rwlock):
 * server threads seal/open while a rotation runs.
 */
#ifndef CB_VAULT_H
#define CB_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct store;
struct vault;

#define VAULT_KID_MAX	40	/* signing key IDs: "k" + 16 hex digits, NUL included with room */

/*
 * Creates a new master key file at path (256 random bits, mode 0600, O_EXCL).
 * Returns 0, CB_ERR_EXISTS or CB_ERR_IO.
 */
int vault_create_master_key(const char *path);

/*
 * Reads the master key from path: refuses (CB_ERR_PERM) a file not owned by the
 * effective user or with group/other bits, naming the file and its mode in why.
 * On an empty database (no kek_check) it initialises one: check value, first data key,
 * first signing key. Otherwise it verifies the key against the stored check value
 * (CB_ERR_AUTH with "wrong master key for DATABASE" in why), unwraps every data key
 * and signing key, and finishes an interrupted data-key rotation (st must be writable
 * for that). *out is owned by the caller (vault_free). The file bytes are wiped.
 */
int vault_open(struct store *st, const char *master_key_path, struct vault **out,
    char *why, size_t whylen);
/* Wipes every key and frees; NULL is fine. */
void vault_free(struct vault *v);

/*
 * Seals a secret value for (name, version) under the active data key: *ct is
 * malloc'd (owned by the caller), *key_id names the data key. AD binds name, version
 * and key ID.
 */
int vault_secret_seal(struct vault *v, const char *name, int64_t version,
    const uint8_t *pt, size_t ptlen, int64_t *key_id, uint8_t **ct, size_t *ctlen);
/*
 * Opens a sealed value: *pt is malloc'd with one extra NUL byte (not counted in
 * *ptlen); the caller wipes it with util_wipe_free(*pt, *ptlen + 1).
 * CB_ERR_AUTH when the ciphertext was tampered with or moved to another row.
 */
int vault_secret_open(struct vault *v, const char *name, int64_t version, int64_t key_id,
    const uint8_t *ct, size_t ctlen, uint8_t **pt, size_t *ptlen)
    __attribute__((warn_unused_result));

/*
 * Copies a signing key into key (caller wipes it with explicit_bzero after use).
 * kid NULL: the active key, its ID copied to kid_out (VAULT_KID_MAX bytes). kid given:
 * that key if it may still verify (active or 'verify' state), else CB_ERR_NOTFOUND.
 */
int vault_signing_key(struct vault *v, const char *kid, uint8_t key[CRYPTO_KEY_LEN],
    char kid_out[VAULT_KID_MAX]);

/*
 * Data-key rotation: a new active DEK, every secret version re-sealed under it in
 * bounded batches (each its own transaction), then the old DEK retired. Survives a
 * crash at any point: vault_open resumes it. max_batches < 0 means run to the end;
 * tests pass a small number to simulate a crash half-way. *new_key_id may be NULL.
 */
int vault_rotate_data_key(struct vault *v, struct store *st, int max_batches,
    int64_t *new_key_id);
/* Finishes an interrupted data-key rotation, if any (vault_open calls it). */
int vault_resume_rotation(struct vault *v, struct store *st);

/*
 * Signing-key rotation: a new active key; the old one stays in 'verify' state until
 * retire_after (now + the longest TTL a grant can have), then is retired.
 */
int vault_rotate_signing_key(struct vault *v, struct store *st, int64_t retire_after,
    char kid_out[VAULT_KID_MAX]);

/*
 * The two rotations above in their steps, so that the daemon makes a new key active in
 * the same transaction as the request's audit record (no key changes unaudited, even
 * when the disk fills or the process is killed between the two):
 * 1. vault_activation_new, on any thread, no transaction open: first retires signing keys
 *    past their time (signing) or finishes an interrupted data-key rotation (data), each
 *    in its own transaction on st; then makes the new key (random, in locked memory) and
 *    notes the keys it replaces.
 * 2. vault_activation_write, inside the caller's transaction on wst (the commit thread's
 *    batch): the key rows, and for a data key the rotation state. Takes no vault lock.
 *    Returns CB_ERR_BUSY when a data-key rotation is already in progress.
 * 3. vault_activation_apply, once that transaction is durable: the vault's memory made
 *    to match. A data key's re-sealing then runs with vault_resume_rotation.
 * Lock order everywhere: the database's write lock before the vault's lock.
 */
struct vault_activation;
int vault_activation_new(struct vault *v, struct store *st, int signing, int64_t retire_after,
    struct vault_activation **out);
int vault_activation_write(struct vault *v, struct store *wst, struct vault_activation *a);
void vault_activation_apply(struct vault *v, struct vault_activation *a);
/* The new signing key's kid; the new data key's ID (once written). */
const char *vault_activation_kid(const struct vault_activation *a);
int64_t vault_activation_key_id(const struct vault_activation *a);
void vault_activation_free(struct vault_activation *a);

/*
 * The audit anchor (audit.h) is MAC'd under a key derived from the master key,
 * HMAC-SHA256(KEK, "credbroker audit anchor key v1"): whoever can write the database
 * but not read the master key cannot rewrite the log and recompute a valid anchor.
 * vault_audit_key copies that key out (the caller wipes it): the commit thread holds its
 * own copy, so that no batch waits on the vault's lock for it. The master key
 * only changes offline, so the copy stays right while the daemon runs.
 * vault_audit_mac: HMAC-SHA256(key, "credbroker audit anchor v1" || be64 seq || hash).
 */
int vault_audit_key(struct vault *v, uint8_t key[CRYPTO_KEY_LEN]);
int vault_audit_mac(const uint8_t key[CRYPTO_KEY_LEN], int64_t seq,
    const uint8_t hash[CRYPTO_HASH_LEN], uint8_t mac[CRYPTO_HASH_LEN]);

/*
 * Master-key rotation, on the broker's host only: re-wraps every data key and signing
 * key from the KEK in old_path to the one in new_path, and moves the audit anchor's MAC
 * (refused, CB_ERR_CORRUPT, when it fails under the old key), in one transaction. Crash-safe
 * by atomicity: the database is either wholly under the old key or the new one.
 */
int vault_rotate_master_key(struct store *st, const char *old_path, const char *new_path,
    char *why, size_t whylen);

/*
 * 0 when the master key in path is the one the database is under, CB_ERR_AUTH when it is
 * another key, CB_ERR_NOTFOUND on a database without keys; the file's mode is checked as
 * in vault_open. Used to resume an interrupted master-key rotation.
 */
int vault_master_key_matches(struct store *st, const char *path, char *why, size_t whylen);

/* Number of data keys and signing keys currently held (for metrics and tests). */
void vault_counts(struct vault *v, int *data_keys, int *signing_keys);

#endif
