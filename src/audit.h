/*
 * audit.h: the tamper-evident audit log. Each record holds the SHA-256 of the one
 * before; hash = SHA-256(prev_hash || canonical encoding of seq, ts, actor, role,
 * action, outcome, grant_id, sandbox_id, detail). Records never contain a token or a
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

/* The result of a chain verification. */
struct audit_report {
	int64_t records;	/* records checked */
	int64_t first_bad_seq;	/* 0 when the chain is intact */
	char problem[160];	/* "record 42: hash mismatch (edited)", "record 17 missing (deleted)", ... */
};
/* Walks the whole chain; returns 0 (intact), CB_ERR_CORRUPT (report says where) or an error. */
int audit_verify(struct store *st, struct audit_report *rep);

#endif
