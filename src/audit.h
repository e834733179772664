/*
 * audit.h: the tamper-evident audit log. Each record holds the SHA-256 of the one
 * before; hash = SHA-256(prev_hash || canonical encoding of seq, ts, actor, role,
 * action, outcome, grant_id, sandbox_id, detail). Canonical encoding: "cbaudit1",
 * seq and ts as 8-byte big-endian, then each string field as 0x00 when NULL or
 * 0x01 || 4-byte big-endian length || bytes (so "ab"+"c" differs from "a"+"bc" and
 * NULL differs from ""). Records never contain a token or a
 * secret value: grant IDs, sandbox IDs, identities, outcomes and error codes only.
 */
#ifndef CB_AUDIT_H
#define CB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct store;

struct audit_rec {
	const char *actor;	/* certificate identity (or "credbrokerd" / "admin-cli") */
	const char *role;	/* "harness", "proxy", "admin", "none" */
	const char *action;	/* "grant.mint", "grant.resolve", "grant.revoke", "secret.put", ... */
	const char *outcome;	/* "ok" or the refusal/error code */
	const char *grant_id;	/* may be NULL */
	const char *sandbox_id;	/* may be NULL */
	const char *detail;	/* short, non-secret detail (secret name, host), may be NULL */
};

/* The chain head kept by the writer. */
struct audit_chain {
	int64_t last_seq;
	uint8_t last_hash[CRYPTO_HASH_LEN];
};

/* Loads the chain head from the database (zero hash, seq 0 when empty). */
int audit_chain_load(struct store *st, struct audit_chain *ch);
/*
 * Appends one record with timestamp now on the writer connection (inside the caller's
 * transaction) and advances ch. On failure ch is unchanged.
 */
int audit_append(struct store *wst, struct audit_chain *ch, const struct audit_rec *r,
    int64_t now);

/*
 * Writes the chain head into the anchor (meta 'audit_head') inside the caller's
 * transaction; commit.c does it once per batch, just before COMMIT. Without an
 * up-to-date anchor a deleted tail of the log cannot be detected. With key (the anchor
 * key derived from the master key, vault_audit_key), the anchor carries its MAC
 * (vault_audit_mac): without that key nobody can rewrite the log, recompute every hash
 * and leave a valid anchor. key NULL: no MAC (tests).
 */
int audit_anchor_save(struct store *wst, const uint8_t *key, const struct audit_chain *ch);
/*
 * At start-up: 0 when the anchor's MAC is right (then, with head, *head is the anchor's
 * seq and hash: the writer continues from what the MAC vouches for, not from a head
 * read on its own, which a writer of the file could show otherwise);
 * CB_ERR_CORRUPT when the MAC is wrong (the log was rewritten without the master key:
 * the daemon refuses to start), also when records follow the anchored one (appended
 * without the key); 0 with *adopt set when the anchor has no MAC (a
 * database from before the MAC, or one whose MAC was deleted), is malformed, or is
 * missing while the log has records: the caller appends an "audit.anchor" record that
 * says so, and saves the anchor with its MAC.
 */
int audit_anchor_check(struct store *st, const uint8_t *key, int *adopt,
    struct audit_chain *head);

/* The result of a chain verification. */
struct audit_report {
	int64_t records;	/* records checked */
	int64_t first_bad_seq;	/* 0 when the chain is intact */
	char problem[160];	/* "record 42: hash mismatch (edited)", "record 17 missing (deleted)", ... */
	int authenticated;	/* the anchor's MAC was checked and is right */
	int64_t authenticated_from;	/* then: the first record it vouches for (1, or the
					 * last "audit.anchor adopted" record: those before
					 * it were not authenticated when it was adopted) */
	int64_t adopted;	/* then: that last adoption record, 0 when none (also
				 * reported when it is record 1: a log wiped whole) */
};
/*
 * Walks the whole chain (one read snapshot, seq ascending) and checks: seq has no gap
 * (deleted record), every hash matches its row (edited record), every prev_hash is
 * the hash of the record before (reordered or deleted record), the anchor names an
 * existing last record with the same hash (deleted tail, appended records) and, with key (NULL: not
 * checked, rep->authenticated 0), that the anchor has its right MAC (a log rewritten
 * whole, every hash recomputed, or an anchor without a MAC). Returns 0 (intact),
 * CB_ERR_CORRUPT (rep->first_bad_seq and rep->problem name the first broken record)
 * or another error.
 */
int audit_verify(struct store *st, const uint8_t *key, struct audit_report *rep);

#endif
