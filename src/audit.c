/* audit.c: the hash-chained audit log: canonical encoding, append, verification. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "store_audit.h"
#include "vault.h"

#define AUDIT_TAG		"cbaudit1"
#define AUDIT_FIELD_MAX		4096	/* bytes per string field; longer is refused on append */
#define AUDIT_STACK_BUF		2048

static void
put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static size_t
field_len(const char *s)
{
	return s == NULL ? 1 : 1 + 4 + strlen(s);
}

static uint8_t *
put_field(uint8_t *p, const char *s)
{
	size_t len;

	if (s == NULL) {
		*p++ = 0;
		return p;
	}
	len = strlen(s);
	*p++ = 1;
	*p++ = (uint8_t)(len >> 24);
	*p++ = (uint8_t)(len >> 16);
	*p++ = (uint8_t)(len >> 8);
	*p++ = (uint8_t)len;
	memcpy(p, s, len);
	return p + len;
}

/*
 * hash = SHA-256(prev || canonical(seq, ts, fields)). Uses a stack buffer for the
 * usual small record so the commit thread does not allocate per record.
 */
static int
audit_hash(const uint8_t prev[CRYPTO_HASH_LEN], int64_t seq, int64_t ts, const char *actor,
    const char *role, const char *action, const char *outcome, const char *grant_id,
    const char *sandbox_id, const char *detail, uint8_t out[CRYPTO_HASH_LEN])
{
	uint8_t sbuf[AUDIT_STACK_BUF], *buf = sbuf, *p;
	size_t need;

	need = CRYPTO_HASH_LEN + sizeof(AUDIT_TAG) - 1 + 16 + field_len(actor) +
	    field_len(role) + field_len(action) + field_len(outcome) + field_len(grant_id) +
	    field_len(sandbox_id) + field_len(detail);
	if (need > sizeof(sbuf) && (buf = malloc(need)) == NULL)
		return CB_ERR_NOMEM;
	p = buf;
	memcpy(p, prev, CRYPTO_HASH_LEN);
	p += CRYPTO_HASH_LEN;
	memcpy(p, AUDIT_TAG, sizeof(AUDIT_TAG) - 1);
	p += sizeof(AUDIT_TAG) - 1;
	put_be64(p, (uint64_t)seq);
	put_be64(p + 8, (uint64_t)ts);
	p += 16;
	p = put_field(p, actor);
	p = put_field(p, role);
	p = put_field(p, action);
	p = put_field(p, outcome);
	p = put_field(p, grant_id);
	p = put_field(p, sandbox_id);
	p = put_field(p, detail);
	crypto_sha256(buf, (size_t)(p - buf), out);
	if (buf != sbuf)
		free(buf);
	return 0;
}

static int
field_ok(const char *s, int required)
{
	if (s == NULL)
		return !required;
	return strlen(s) <= AUDIT_FIELD_MAX;
}

int
audit_chain_load(struct store *st, struct audit_chain *ch)
{
	struct store_audit_anchor a;
	uint8_t hash[CRYPTO_HASH_LEN];
	int64_t seq;
	int rc;

	if ((rc = store_audit_last(st, &seq, hash)) != 0)
		return rc;
	ch->last_seq = seq;
	memcpy(ch->last_hash, hash, CRYPTO_HASH_LEN);
	rc = store_audit_anchor_get(st, &a);
	if (rc == CB_ERR_NOTFOUND || rc == CB_ERR_CORRUPT)
		return 0;	/* audit_verify reports it */
	if (rc != 0)
		return rc;
	/*
	 * The anchor is ahead of the rows (a deleted tail) or names another last record:
	 * continue from the anchor, so that the gap or the broken link stays in the chain
	 * for audit_verify instead of being papered over by the next anchor.
	 */
	if (a.seq > seq || (a.seq == seq && !crypto_memeq(a.hash, hash, CRYPTO_HASH_LEN))) {
		log_warnx("audit log damaged: the anchor names record %lld, the last record is "
		    "%lld; continuing the chain from the anchor (run audit verify)",
		    (long long)a.seq, (long long)seq);
		ch->last_seq = a.seq;
		memcpy(ch->last_hash, a.hash, CRYPTO_HASH_LEN);
	}
	return 0;
}

int
audit_append(struct store *wst, struct audit_chain *ch, const struct audit_rec *r, int64_t now)
{
	uint8_t hash[CRYPTO_HASH_LEN];
	int64_t seq;
	int rc;

	if (!field_ok(r->actor, 1) || !field_ok(r->role, 1) || !field_ok(r->action, 1) ||
	    !field_ok(r->outcome, 1) || !field_ok(r->grant_id, 0) ||
	    !field_ok(r->sandbox_id, 0) || !field_ok(r->detail, 0)) {
		log_warnx("refusing a malformed audit record (action %s)",
		    r->action != NULL ? r->action : "(null)");
		return CB_ERR_INVAL;
	}
	seq = ch->last_seq + 1;
	if ((rc = audit_hash(ch->last_hash, seq, now, r->actor, r->role, r->action, r->outcome,
	    r->grant_id, r->sandbox_id, r->detail, hash)) != 0)
		return rc;
	if ((rc = store_audit_insert(wst, seq, now, r->actor, r->role, r->action, r->outcome,
	    r->grant_id, r->sandbox_id, r->detail, ch->last_hash, hash)) != 0)
		return rc;
	ch->last_seq = seq;
	memcpy(ch->last_hash, hash, CRYPTO_HASH_LEN);
	return 0;
}

int
audit_anchor_save(struct store *wst, const uint8_t *key, const struct audit_chain *ch)
{
	struct store_audit_anchor a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.seq = ch->last_seq;
	memcpy(a.hash, ch->last_hash, CRYPTO_HASH_LEN);
	if (key != NULL) {
		if ((rc = vault_audit_mac(key, a.seq, a.hash, a.mac)) != 0)
			return rc;
		a.has_mac = 1;
	}
	return store_audit_anchor_set(wst, &a);
}

/* 0 when the anchor's MAC is right, CB_ERR_CORRUPT when not, CB_ERR_NOTFOUND without one. */
static int
anchor_mac_check(const uint8_t *key, const struct store_audit_anchor *a)
{
	uint8_t mac[CRYPTO_HASH_LEN];
	int rc;

	if (!a->has_mac)
		return CB_ERR_NOTFOUND;
	if ((rc = vault_audit_mac(key, a->seq, a->hash, mac)) != 0)
		return rc;
	rc = crypto_memeq(mac, a->mac, sizeof(mac)) ? 0 : CB_ERR_CORRUPT;
	explicit_bzero(mac, sizeof(mac));
	return rc;
}

int
audit_anchor_check(struct store *st, const uint8_t *key, int *adopt, struct audit_chain *head)
{
	struct store_audit_anchor a;
	uint8_t hash[CRYPTO_HASH_LEN];
	int64_t seq;
	int rc;

	*adopt = 0;
	/*
	 * A missing or malformed anchor is adopted too: the next batch would otherwise save
	 * a valid MAC over whatever chain it finds, a rewritten one included, without a
	 * record. A new database has one from the start (vault_init_db), so a missing one is
	 * a log wiped, or one from before the MAC.
	 */
	if ((rc = store_audit_anchor_get(st, &a)) == CB_ERR_NOTFOUND || rc == CB_ERR_CORRUPT ||
	    (rc == 0 && !a.has_mac)) {
		*adopt = 1;
		return 0;
	}
	if (rc != 0 || (rc = anchor_mac_check(key, &a)) != 0)
		return rc;
	/*
	 * Records after the anchored one were appended without the master key: the chain
	 * would continue from them, and the next anchor's MAC cover them.
	 */
	if ((rc = store_audit_last(st, &seq, hash)) != 0)
		return rc;
	if (seq > a.seq)
		return CB_ERR_CORRUPT;
	if (head != NULL) {
		head->last_seq = a.seq;
		memcpy(head->last_hash, a.hash, CRYPTO_HASH_LEN);
	}
	return 0;
}

struct verify_state {
	struct audit_report *rep;
	int64_t expect;			/* next seq */
	uint8_t prev[CRYPTO_HASH_LEN];	/* hash of the record before */
	const struct store_audit_anchor *anchor;	/* read by the walk before any row */
	int anchor_seen;		/* the anchor's record was walked */
	int64_t adopted;		/* the last "audit.anchor adopted" record, or 0 */
	uint8_t anchor_row_hash[CRYPTO_HASH_LEN];
};

static int bad(struct audit_report *, int64_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
bad(struct audit_report *rep, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	rep->first_bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(rep->problem, sizeof(rep->problem), fmt, ap);
	va_end(ap);
	return CB_ERR_CORRUPT;
}

static int
verify_row(void *arg, const struct store_audit_row *row, int bad_len)
{
	struct verify_state *vs = arg;
	uint8_t h[CRYPTO_HASH_LEN];
	int rc;

	if (row->seq != vs->expect) {
		if (row->seq > vs->expect && row->seq == vs->expect + 1)
			return bad(vs->rep, vs->expect, "record %lld missing (deleted)",
			    (long long)vs->expect);
		if (row->seq > vs->expect)
			return bad(vs->rep, vs->expect, "records %lld..%lld missing (deleted)",
			    (long long)vs->expect, (long long)(row->seq - 1));
		return bad(vs->rep, row->seq, "record %lld out of sequence",
		    (long long)row->seq);
	}
	if (bad_len || row->actor == NULL || row->role == NULL || row->action == NULL ||
	    row->outcome == NULL)
		return bad(vs->rep, row->seq, "record %lld: malformed columns (edited)",
		    (long long)row->seq);
	if ((rc = audit_hash(row->prev_hash, row->seq, row->ts, row->actor, row->role,
	    row->action, row->outcome, row->grant_id, row->sandbox_id, row->detail, h)) != 0)
		return rc;
	if (!crypto_memeq(h, row->hash, CRYPTO_HASH_LEN))
		return bad(vs->rep, row->seq, "record %lld: hash mismatch (edited)",
		    (long long)row->seq);
	if (!crypto_memeq(row->prev_hash, vs->prev, CRYPTO_HASH_LEN)) {
		if (row->seq == 1)
			return bad(vs->rep, 1, "record 1: does not start the chain");
		return bad(vs->rep, row->seq,
		    "record %lld: prev_hash is not the hash of record %lld (reordered or replaced)",
		    (long long)row->seq, (long long)(row->seq - 1));
	}
	memcpy(vs->prev, row->hash, CRYPTO_HASH_LEN);
	if (strcmp(row->action, "audit.anchor") == 0 && strcmp(row->outcome, "adopted") == 0 &&
	    strcmp(row->role, "none") == 0)
		vs->adopted = row->seq;
	if (row->seq == vs->anchor->seq) {
		vs->anchor_seen = 1;
		memcpy(vs->anchor_row_hash, row->hash, CRYPTO_HASH_LEN);
	}
	vs->expect++;
	vs->rep->records++;
	return 0;
}

int
audit_verify(struct store *st, const uint8_t *key, struct audit_report *rep)
{
	struct store_audit_anchor anchor;
	struct verify_state vs;
	int64_t anchor_seq, last;
	int has_anchor = 0, rc;

	memset(rep, 0, sizeof(*rep));
	memset(&vs, 0, sizeof(vs));
	vs.rep = rep;
	vs.expect = 1;
	/* The walk reads the anchor first, so vs.anchor->seq is known while rows go by. */
	vs.anchor = &anchor;
	rc = store_audit_walk(st, verify_row, &vs, &has_anchor, &anchor);
	if (rc != 0 && rc != CB_ERR_CORRUPT)
		return rc;
	if (rc == CB_ERR_CORRUPT)
		goto out;
	last = vs.expect - 1;
	if (has_anchor < 0) {
		rc = bad(rep, last + 1, "audit anchor malformed (last record %lld)",
		    (long long)last);
		goto out;
	}
	if (!has_anchor) {
		if (last > 0)
			rc = bad(rep, last, "audit anchor missing (last record %lld)",
			    (long long)last);
		goto out;
	}
	anchor_seq = anchor.seq;
	if (anchor_seq > last) {
		rc = bad(rep, last + 1, "records %lld..%lld missing (tail deleted)",
		    (long long)(last + 1), (long long)anchor_seq);
		goto out;
	}
	if (anchor_seq > 0 && (!vs.anchor_seen ||
	    !crypto_memeq(vs.anchor_row_hash, anchor.hash, CRYPTO_HASH_LEN))) {
		rc = bad(rep, anchor_seq, "record %lld: does not match the audit anchor",
		    (long long)anchor_seq);
		goto out;
	}
	/* The writer saves the anchor with the records: none comes after the anchored one. */
	if (anchor_seq < last) {
		rc = bad(rep, anchor_seq + 1, "records %lld..%lld come after the audit anchor's "
		    "(appended without it)", (long long)(anchor_seq + 1), (long long)last);
		goto out;
	}
	/*
	 * A consistent chain may still have been rewritten whole, its hashes recomputed:
	 * only the anchor's MAC, under the master key, tells.
	 */
	if (key == NULL)
		goto out;
	rep->authenticated = 1;
	rc = anchor_mac_check(key, &anchor);
	if (rc == CB_ERR_NOTFOUND)
		rc = bad(rep, 1, "the audit anchor has no MAC: records 1..%lld are not "
		    "authenticated", (long long)anchor_seq);
	else if (rc == CB_ERR_CORRUPT)
		rc = bad(rep, 1, "the audit anchor fails its MAC: the log was rewritten "
		    "(records 1..%lld)", (long long)anchor_seq);
	if (rc != 0)
		rep->authenticated = 0;
	else {
		rep->authenticated_from = vs.adopted > 0 ? vs.adopted : 1;
		rep->adopted = vs.adopted;
	}
 out:
	if (rc == CB_ERR_CORRUPT)
		log_warnx("audit chain broken: %s", rep->problem);
	return rc;
}
