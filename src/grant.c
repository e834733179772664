/*
 * grant.c: grants (see grant.h). Handlers validate on the server thread, read on the
 * thread's reader connection, decrypt there too, and queue one commit_op per request
 * (the write, if any, plus its audit record); the reply leaves from the op's done()
 * once both are durable. Refusals take the same path so that they are audited too.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "api.h"
#include "commit.h"
#include "conf.h"
#include "dest.h"
#include "err.h"
#include "grant.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "store.h"
#include "token.h"
#include "util.h"

#define DEFAULT_HEADER		"Authorization"
#define DEFAULT_TEMPLATE	"Bearer {secret}"
#define SECRET_MARK		"{secret}"
#define BASIC_PREFIX		"basic:"
#define GRANT_MAX_USES		1000000000LL
#define USES_MAX		16	/* grants one token-less resolve may count a use of */
#define TOKENLESS_GRANTS_MAX	GRANT_TOKENLESS_SCAN_MAX

enum ctx_kind { K_MINT, K_SHOW, K_REVOKE, K_REVOKE_SBX, K_RESOLVE };

/* One request in flight: its commit op, audit strings and prepared answer. */
struct grant_ctx {
	struct commit_op op;		/* op.arg == this */
	struct api_call *call;
	enum ctx_kind kind;
	int status;			/* the answer when the op succeeds */
	json_t *body;			/* the answer's body (owned) or NULL for an error body */
	int sensitive;			/* body holds a secret value or a token */
	char *raw;			/* or the answer's JSON text (a token resolve's): */
	size_t rawlen;			/* holds a secret value, wiped when freed */
	const char *field;		/* error "field", or NULL */
	char outcome[48];		/* "ok" or the error code; also the audit outcome */
	char grant_id[GRANT_ID_LEN + 1];
	char sandbox_id[GRANT_SANDBOX_ID_MAX + 1];
	char detail[320];
	char fieldbuf[64];
	int64_t now;
	/* mint */
	struct store_grant g;
	char kid[40];
	char *bindings_json;
	/* revoke-sandbox */
	const char *revoke_by;		/* minted_by filter, NULL for admin */
	int64_t revoked;
	/* resolve: grants whose use is counted in the transaction */
	char use_ids[USES_MAX][GRANT_ID_LEN + 1];
	int64_t use_exp[USES_MAX];	/* their expires_at: with the ID, the key in grants */
	int nuse;
};

/*
 * Revocation generations, one per set of sandboxes (by a hash of the sandbox ID): a
 * revocation, of one grant or of a whole sandbox, bumps its sandbox's generation inside
 * its transaction and again once it is durable (ctx_done), before its answer. A token
 * resolve reads the generation of its token's sandbox (the sub claim: only a row of that
 * sandbox passes the checks and is filed) before it reads the grant's row, and files the
 * row under it; a filed row is used only while that generation has not moved, so a
 * revocation answered before a resolve began is always seen by it. Nothing else changes
 * a grant row that a resolve checks: ids, sandbox, kid, expiry and bindings never change,
 * rows with a use limit are never filed (their count is read every time), and the purge
 * deletes only expired or revoked grants. A filed row is also dropped after
 * GRANT_ROW_AGE_US. With one generation for every sandbox, each sandbox that ended
 * dropped every filed row of every thread: 50 a second cost resolve ~25 % of its rate
 * (docs/performance.md, D12).
 */
#define GRANT_ROW_AGE_US	(10 * 1000000LL)
#define ROW_GEN_SETS		4096
static _Atomic uint64_t grant_row_gen[ROW_GEN_SETS];

static _Atomic uint64_t *
row_gen_of(const char *sandbox_id)
{
	return &grant_row_gen[util_hash(sandbox_id, strlen(sandbox_id)) % ROW_GEN_SETS];
}

static void
grant_rows_invalidate(const char *sandbox_id)
{
	atomic_fetch_add(row_gen_of(sandbox_id), 1);
}

/* ---------------------------------------------------------------- helpers */

static int
is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
grant_header_valid(const char *name)
{
	static const char *const refused[] = { "host", "content-length", "transfer-encoding",
	    "connection", "keep-alive", "te", "trailer", "upgrade", NULL };
	size_t i, len;

	if (name == NULL || (len = strlen(name)) == 0 || len > GRANT_HEADER_MAX)
		return CB_ERR_INVAL;
	for (i = 0; i < len; i++)
		if (!is_tchar((unsigned char)name[i]))
			return CB_ERR_INVAL;
	for (i = 0; refused[i] != NULL; i++)
		if (strcasecmp(name, refused[i]) == 0)
			return CB_ERR_INVAL;
	if (strncasecmp(name, "proxy-", 6) == 0)
		return CB_ERR_INVAL;
	return 0;
}

int
grant_template_valid(const char *tmpl)
{
	const char *p;
	size_t i, len;

	if (tmpl == NULL || (len = strlen(tmpl)) == 0 || len > GRANT_TEMPLATE_MAX)
		return CB_ERR_INVAL;
	for (i = 0; i < len; i++)
		if ((unsigned char)tmpl[i] < 0x20 || (unsigned char)tmpl[i] > 0x7e)
			return CB_ERR_INVAL;
	if (strncmp(tmpl, BASIC_PREFIX, strlen(BASIC_PREFIX)) == 0) {
		p = tmpl + strlen(BASIC_PREFIX);
		if (strchr(p, ':') != NULL || strstr(p, SECRET_MARK) != NULL)
			return CB_ERR_INVAL;
		return 0;
	}
	if ((p = strstr(tmpl, SECRET_MARK)) == NULL)
		return CB_ERR_INVAL;
	if (strstr(p + strlen(SECRET_MARK), SECRET_MARK) != NULL)
		return CB_ERR_INVAL;
	return 0;
}

int
grant_render(const char *tmpl, const uint8_t *secret, size_t len, char **out, size_t *outlen)
{
	const char *mark, *user;
	uint8_t *pair = NULL;
	char *b64 = NULL, *buf = NULL;
	size_t pre, post, ulen, n;
	int rc;

	*out = NULL;
	*outlen = 0;
	if ((rc = grant_template_valid(tmpl)) != 0)
		return rc;
	if (len > SECRET_VALUE_MAX)
		return CB_ERR_LIMIT;
	if (strncmp(tmpl, BASIC_PREFIX, strlen(BASIC_PREFIX)) == 0) {
		user = tmpl + strlen(BASIC_PREFIX);
		ulen = strlen(user);
		rc = CB_ERR_NOMEM;
		if ((pair = malloc(ulen + 1 + len)) == NULL)
			goto out;
		memcpy(pair, user, ulen);
		pair[ulen] = ':';
		memcpy(pair + ulen + 1, secret, len);
		if ((b64 = util_b64(pair, ulen + 1 + len)) == NULL)
			goto out;
		n = strlen("Basic ") + strlen(b64);
		if ((buf = malloc(n + 1)) == NULL)
			goto out;
		snprintf(buf, n + 1, "Basic %s", b64);
	} else {
		mark = strstr(tmpl, SECRET_MARK);
		pre = (size_t)(mark - tmpl);
		post = strlen(mark + strlen(SECRET_MARK));
		n = pre + len + post;
		rc = CB_ERR_NOMEM;
		if ((buf = malloc(n + 1)) == NULL)
			goto out;
		memcpy(buf, tmpl, pre);
		memcpy(buf + pre, secret, len);
		memcpy(buf + pre + len, mark + strlen(SECRET_MARK), post);
		buf[n] = '\0';
	}
	*out = buf;	/* transferred */
	*outlen = n;
	buf = NULL;
	rc = 0;
 out:
	if (pair != NULL)
		util_wipe_free(pair, ulen + 1 + len);
	util_wipe_str(b64);
	free(buf);
	return rc;
}

/* Sets the code and the field, returns CB_ERR_INVAL. */
static int
field_err(const char **code, const char *c, const char **field, const char *f)
{
	*code = c;
	*field = f;
	return CB_ERR_INVAL;
}

int
grant_binding_parse(json_t *in, json_t **out, const char **code, const char **field)
{
	static const char *const allowed[] = { "secret", "host", "port", "methods",
	    "path_prefix", "header", "template", "inject", NULL };
	char host[DEST_HOST_MAX + 1];
	const char *secret, *h, *prefix = NULL, *header = DEFAULT_HEADER;
	const char *tmpl = DEFAULT_TEMPLATE, *m;
	json_t *o = NULL, *methods = NULL, *ms = NULL, *v;
	long long port = 443;
	size_t i;
	int inject = 0, rc;

	*out = NULL;
	*code = NULL;
	*field = NULL;
	if (!json_is_object(in))
		return field_err(code, JSON_E_WRONG_TYPE, field, NULL);
	if (json_only_fields(in, allowed, code, field) != 0)
		return CB_ERR_INVAL;
	if (json_get_string(in, "secret", 1, SECRET_NAME_MAX, &secret, code) < 0)
		return field_err(code, *code, field, "secret");
	if (secret_valid_name(secret) != 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "secret");
	if (json_get_string(in, "host", 1, DEST_HOST_MAX, &h, code) < 0)
		return field_err(code, *code, field, "host");
	if (dest_host_normalise(h, host, sizeof(host)) != 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "host");
	if (json_get_int(in, "port", 0, 1, 65535, &port, code) < 0 ||
	    dest_port_valid(port) != 0)
		return field_err(code, *code != NULL ? *code : JSON_E_INVALID_VALUE, field,
		    "port");
	if (json_get_array(in, "methods", 0, GRANT_METHODS_MAX, &methods, code) < 0)
		return field_err(code, *code, field, "methods");
	if (methods != NULL && json_array_size(methods) == 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "methods");
	if (json_get_string(in, "path_prefix", 0, DEST_PATH_MAX, &prefix, code) < 0)
		return field_err(code, *code, field, "path_prefix");
	if (prefix != NULL && dest_prefix_valid(prefix) != 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "path_prefix");
	if (json_get_string(in, "header", 0, GRANT_HEADER_MAX, &header, code) < 0)
		return field_err(code, *code, field, "header");
	if (grant_header_valid(header) != 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "header");
	if (json_get_string(in, "template", 0, GRANT_TEMPLATE_MAX, &tmpl, code) < 0)
		return field_err(code, *code, field, "template");
	if (grant_template_valid(tmpl) != 0)
		return field_err(code, JSON_E_INVALID_VALUE, field, "template");
	if (json_get_bool(in, "inject", 0, &inject, code) < 0)
		return field_err(code, *code, field, "inject");

	rc = CB_ERR_NOMEM;
	*code = "internal_error";
	if ((o = json_object()) == NULL)
		goto out;
	if (methods != NULL) {
		if ((ms = json_array()) == NULL)
			goto out;
		json_array_foreach(methods, i, v) {
			if (!json_is_string(v)) {
				rc = field_err(code, JSON_E_WRONG_TYPE, field, "methods");
				goto out;
			}
			m = json_string_value(v);
			if (strlen(m) > DEST_METHOD_MAX || dest_method_valid(m) != 0) {
				rc = field_err(code, JSON_E_INVALID_VALUE, field, "methods");
				goto out;
			}
			if (json_array_append_new(ms, json_string(m)) != 0)
				goto out;
		}
	}
	if (json_object_set_new(o, "secret", json_string(secret)) != 0 ||
	    json_object_set_new(o, "host", json_string(host)) != 0 ||
	    json_object_set_new(o, "port", json_integer(port)) != 0 ||
	    (ms != NULL && json_object_set(o, "methods", ms) != 0) ||
	    (prefix != NULL && json_object_set_new(o, "path_prefix", json_string(prefix)) != 0) ||
	    json_object_set_new(o, "header", json_string(header)) != 0 ||
	    json_object_set_new(o, "template", json_string(tmpl)) != 0 ||
	    json_object_set_new(o, "inject", json_boolean(inject)) != 0)
		goto out;
	*out = o;	/* transferred */
	o = NULL;
	*code = NULL;
	rc = 0;
 out:
	json_decref(ms);
	json_decref(o);
	return rc;
}

int
grant_binding_match(json_t *b, const char *host, long long port, const char *method,
    const char *path)
{
	json_t *ms, *v;
	const char *bh, *prefix;
	size_t i;
	int found;

	bh = json_string_value(json_object_get(b, "host"));
	if (bh == NULL || strcmp(bh, host) != 0 ||
	    json_integer_value(json_object_get(b, "port")) != port)
		return GRANT_MISMATCH_DEST;
	if ((ms = json_object_get(b, "methods")) != NULL && json_is_array(ms)) {
		found = 0;
		json_array_foreach(ms, i, v) {
			if (json_is_string(v) && strcmp(json_string_value(v), method) == 0) {
				found = 1;
				break;
			}
		}
		if (!found)
			return GRANT_MISMATCH_METHOD;
	}
	prefix = json_string_value(json_object_get(b, "path_prefix"));
	if (prefix != NULL && !dest_path_matches(prefix, path))
		return GRANT_MISMATCH_PATH;
	return GRANT_MATCH;
}

const char *
grant_mismatch_code(int m)
{
	switch (m) {
	case GRANT_MISMATCH_METHOD:
		return "method_not_allowed";
	case GRANT_MISMATCH_PATH:
		return "path_not_allowed";
	default:
		return "destination_mismatch";
	}
}

/* Sandbox IDs: 1..128 of [A-Za-z0-9._:-] (they appear in URLs, logs and audit). */
static int
sandbox_valid(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > GRANT_SANDBOX_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._:-", s[i]) == NULL)
			return 0;
	return 1;
}

/* Grant IDs: lower-case hex of either format (token.h). */
static int
grant_id_valid(const char *s)
{
	return s != NULL && token_grant_id_valid(s, strlen(s));
}

/* Wipes every string inside v in place (bounded depth). */
static void
wipe_strings(json_t *v, int depth)
{
	const char *k;
	json_t *m;
	size_t i;

	if (v == NULL || depth > 8)
		return;
	if (json_is_string(v))
		explicit_bzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
	else if (json_is_array(v)) {
		json_array_foreach(v, i, m)
			wipe_strings(m, depth + 1);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, m)
			wipe_strings(m, depth + 1);
	}
}

/* Wipes a body holding a secret value or a token, then drops it. */
static void
wipe_body(json_t *body)
{
	wipe_strings(body, 0);
	json_decref(body);
}

/* -------------------------------------------------------- request context */

static struct grant_ctx *
ctx_new(struct api_call *call, enum ctx_kind kind, const char *action)
{
	struct grant_ctx *x;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->call = call;
	x->kind = kind;
	x->now = util_now();
	x->op.arg = x;
	x->op.audit.actor = call->who != NULL && call->who->id != NULL ? call->who->id :
	    "unknown";
	x->op.audit.role = conf_role_name(call->who != NULL ? call->who->role : ROLE_NONE);
	x->op.audit.action = action;
	x->op.audit.outcome = x->outcome;
	x->op.audit.grant_id = NULL;
	x->op.audit.sandbox_id = NULL;
	x->op.audit.detail = NULL;
	util_strlcpy(x->outcome, "ok", sizeof(x->outcome));
	return x;
}

static void
ctx_free(struct grant_ctx *x)
{
	if (x == NULL)
		return;
	if (x->sensitive)
		wipe_body(x->body);
	else
		json_decref(x->body);
	if (x->raw != NULL)
		util_wipe_free(x->raw, x->rawlen + 1);
	free(x->bindings_json);
	free(x);
}

static void
set_grant_id(struct grant_ctx *x, const char *id)
{
	util_strlcpy(x->grant_id, id, sizeof(x->grant_id));
	x->op.audit.grant_id = x->grant_id;
}

static void
set_sandbox(struct grant_ctx *x, const char *sbx)
{
	util_strlcpy(x->sandbox_id, sbx, sizeof(x->sandbox_id));
	x->op.audit.sandbox_id = x->sandbox_id;
}

/* Sends the answer (exactly once), counts resolve metrics, frees x. */
static void
ctx_reply(struct grant_ctx *x, int status, const char *code)
{
	struct api_call *call = x->call;
	json_t *body;
	int sensitive = 0;

	if (x->grant_id[0] != '\0')
		util_strlcpy(call->grant_id, x->grant_id, sizeof(call->grant_id));
	if (x->kind == K_RESOLVE)
		metrics_resolve(call->b->metrics, code != NULL ? code : "ok",
		    util_mono_us() - call->start_us);
	if (code == NULL && x->raw != NULL) {
		/* Raw JSON text: the server sends it as it is and wipes it (sensitive). */
		call->raw_body = x->raw;	/* transferred */
		call->raw_len = x->rawlen;
		call->content_type = "application/json";
		x->raw = NULL;
		body = NULL;
		sensitive = 1;
	} else if (code == NULL) {
		body = x->body;	/* transferred */
		sensitive = x->sensitive;
		x->body = NULL;
		x->sensitive = 0;
	} else
		body = json_error_body(code, x->field);
	ctx_free(x);
	call->reply(call, status, body, sensitive);
}

static void
ctx_done(struct commit_op *op, int rc)
{
	struct grant_ctx *x = op->arg;
	json_t *b;

	/* Committed or not, before anyone hears of it: no resolve uses a filed row now. */
	if (x->kind == K_REVOKE || x->kind == K_REVOKE_SBX)
		grant_rows_invalidate(x->sandbox_id);
	if (rc == 0) {
		if (x->kind == K_REVOKE_SBX && x->body == NULL && x->status == 200) {
			b = json_pack("{s:s, s:I}", "sandbox_id", x->sandbox_id, "revoked",
			    (json_int_t)x->revoked);
			if (b == NULL) {
				ctx_reply(x, 500, "internal_error");
				return;
			}
			x->body = b;
		}
		if (x->body != NULL || x->raw != NULL)
			ctx_reply(x, x->status, NULL);
		else
			ctx_reply(x, x->status, x->outcome);
		return;
	}
	if (rc == CB_ERR_DENIED && strcmp(x->outcome, "ok") != 0) {
		/* The op refused in the transaction (use count, revoked meanwhile). */
		x->field = NULL;
		ctx_reply(x, 403, x->outcome);
		return;
	}
	/* A failed batch (a full disk) is reported by the commit thread, not per request. */
	if (rc != CB_ERR_DB)
		log_warnx("%s failed: %s", x->op.audit.action, cb_strerror(rc));
	ctx_reply(x, rc == CB_ERR_BUSY ? 503 : 500, rc == CB_ERR_BUSY ? "unavailable" :
	    "internal_error");
}

/* Queues x; the answer leaves from ctx_done once durable. */
static void
ctx_submit(struct grant_ctx *x)
{
	int rc;

	x->op.done = ctx_done;
	if ((rc = commit_submit(x->call->b->commit, &x->op)) != 0) {
		log_warnx("cannot queue %s: %s", x->op.audit.action, cb_strerror(rc));
		ctx_reply(x, 503, "unavailable");
	}
}

/* A refusal or error answer that is still audited: status with {"error": code}. */
static void
ctx_refuse(struct grant_ctx *x, int status, const char *code, const char *field)
{
	util_strlcpy(x->outcome, code, sizeof(x->outcome));
	x->field = field;
	x->status = status;
	if (x->sensitive)
		wipe_body(x->body);
	else
		json_decref(x->body);
	x->body = NULL;
	x->sensitive = 0;
	if (x->raw != NULL)
		util_wipe_free(x->raw, x->rawlen + 1);
	x->raw = NULL;
	x->op.fn = NULL;
	ctx_submit(x);
}

/* The 400 answer of a body problem, naming "prefix.field" when there is a field. */
static void
ctx_bad_body(struct grant_ctx *x, const char *code, const char *prefix, const char *field)
{
	if (code == NULL)
		code = JSON_E_INVALID_VALUE;
	if (prefix != NULL && field != NULL) {
		snprintf(x->fieldbuf, sizeof(x->fieldbuf), "%s.%s", prefix, field);
		field = x->fieldbuf;
	} else if (field != NULL) {
		util_strlcpy(x->fieldbuf, field, sizeof(x->fieldbuf));
		field = x->fieldbuf;
	}
	ctx_refuse(x, 400, code, field);
}

/*
 * {"k1":"v1","k2":"v2","k3":"v3"} written directly (the bytes json_write_compact writes
 * for the jansson object), for an answer of three strings: *out malloc'd, NUL-terminated,
 * wiped by its owner (util_wipe_free(*out, *outlen + 1)).
 */
static int
raw_strings(char **out, size_t *outlen, const char *k1, const char *v1, const char *k2,
    const char *v2, const char *k3, const char *v3)
{
	const char *s[6] = { k1, v1, k2, v2, k3, v3 };
	size_t n[6], len = 2, pos = 0, i;
	char *buf;

	*out = NULL;
	*outlen = 0;
	for (i = 0; i < 6; i++) {
		/* Not UTF-8: what json_pack refused before. */
		if ((n[i] = json_write_string(s[i], strlen(s[i]), NULL, 0)) == 0)
			return CB_ERR_INVAL;
		len += n[i] + 1;	/* and ':' or ',' */
	}
	len--;			/* no ',' after the last */
	if ((buf = malloc(len + 1)) == NULL)
		return CB_ERR_NOMEM;
	buf[pos++] = '{';
	for (i = 0; i < 6; i++) {
		pos += json_write_string(s[i], strlen(s[i]), buf + pos, n[i]);
		if (i < 5)
			buf[pos++] = i % 2 == 0 ? ':' : ',';
	}
	buf[pos++] = '}';
	buf[pos] = '\0';
	*out = buf;	/* transferred */
	*outlen = pos;
	return 0;
}

/* When not even the context can be allocated: the request fails, unaudited. */
static void
reply_nomem(struct api_call *call)
{
	log_warnx("out of memory");
	api_error(call, 500, "internal_error");
}

/*
 * The start every body shares: a JSON object with only the allowed fields and a valid
 * sandbox_id (recorded for the audit). Returns 0, or -1 after answering 400.
 */
static int
ctx_body_start(struct grant_ctx *x, json_t *body, const char *const *allowed)
{
	const char *code, *field, *sbx;

	if (body == NULL || !json_is_object(body)) {
		ctx_bad_body(x, JSON_E_NOT_OBJECT, NULL, NULL);
		return -1;
	}
	if (json_only_fields(body, allowed, &code, &field) != 0) {
		ctx_bad_body(x, code, NULL, field);
		return -1;
	}
	if (json_get_string(body, "sandbox_id", 1, GRANT_SANDBOX_ID_MAX, &sbx, &code) < 0) {
		ctx_bad_body(x, code, NULL, "sandbox_id");
		return -1;
	}
	if (!sandbox_valid(sbx)) {
		ctx_bad_body(x, JSON_E_INVALID_VALUE, NULL, "sandbox_id");
		return -1;
	}
	set_sandbox(x, sbx);
	return 0;
}

/* ------------------------------------------------------------------- mint */

static int
mint_fn(struct store *wst, struct commit_op *op)
{
	struct grant_ctx *x = op->arg;

	return store_grant_insert(wst, &x->g);
}

/* Appends "name" to the detail list, bounded. */
static void
detail_add(char *detail, size_t len, const char *name)
{
	size_t used = strlen(detail);

	if (used + 1 >= len)
		return;
	snprintf(detail + used, len - used, "%s%s", used == 0 ? "secrets=" : ",", name);
}

/* The harness policy and the secrets' own rules, in the order of grant.h. */
static const char *
mint_policy(struct grant_ctx *x, struct store *rst, json_t *canon, long long ttl)
{
	const struct identity *who = x->call->who;
	struct secret_meta *m = NULL;
	const char *name, *host, *code = NULL;
	json_t *b;
	size_t i;
	int rc;

	json_array_foreach(canon, i, b) {
		name = json_string_value(json_object_get(b, "secret"));
		if (!conf_may_grant(who, name)) {
			snprintf(x->detail, sizeof(x->detail), "secret=%s", name);
			return "secret_not_allowed";
		}
	}
	if (ttl > who->max_ttl_s)
		return "ttl_exceeds_policy";
	json_array_foreach(canon, i, b) {
		name = json_string_value(json_object_get(b, "secret"));
		host = json_string_value(json_object_get(b, "host"));
		rc = secret_get(rst, name, &m);
		if (rc == CB_ERR_NOTFOUND)
			code = "unknown_secret";
		else if (rc != 0)
			code = "internal_error";
		else if (!secret_host_allowed(m, host))
			code = "host_not_allowed";
		else if (ttl > m->max_ttl_s)
			code = "ttl_exceeds_secret";
		secret_meta_free(m);
		m = NULL;
		if (code != NULL) {
			snprintf(x->detail, sizeof(x->detail), "secret=%s host=%s", name, host);
			return code;
		}
	}
	return NULL;
}

void
grant_handle_mint(struct api_call *call)
{
	static const char *const allowed[] = { "sandbox_id", "ttl_s", "max_uses", "bindings",
	    NULL };
	struct token_claims claims;
	struct grant_ctx *x;
	struct store *rst;
	json_t *body = call->body, *arr, *b, *canon = NULL, *one;
	const char *code, *field, *refusal;
	char prefix[32], expires[32], *tok = NULL;
	long long ttl, max_uses = 0;
	size_t i;
	int has_inject = 0, rc;

	if ((x = ctx_new(call, K_MINT, "grant.mint")) == NULL) {
		reply_nomem(call);
		return;
	}
	x->op.audit.detail = x->detail;
	if (ctx_body_start(x, body, allowed) != 0)
		return;
	if (json_get_int(body, "ttl_s", 1, 1, GRANT_TTL_MAX, &ttl, &code) < 0) {
		ctx_bad_body(x, code, NULL, "ttl_s");
		return;
	}
	if (json_get_int(body, "max_uses", 0, 1, GRANT_MAX_USES, &max_uses, &code) < 0) {
		ctx_bad_body(x, code, NULL, "max_uses");
		return;
	}
	if (json_get_array(body, "bindings", 1, GRANT_BINDINGS_MAX, &arr, &code) < 0) {
		ctx_bad_body(x, code, NULL, "bindings");
		return;
	}
	if (json_array_size(arr) == 0) {
		ctx_bad_body(x, JSON_E_INVALID_VALUE, NULL, "bindings");
		return;
	}
	if ((canon = json_array()) == NULL)
		goto internal;
	json_array_foreach(arr, i, b) {
		if ((rc = grant_binding_parse(b, &one, &code, &field)) != 0) {
			json_decref(canon);
			if (rc != CB_ERR_INVAL)
				goto internal;
			snprintf(prefix, sizeof(prefix), "bindings[%zu]", i);
			ctx_bad_body(x, code, prefix, field);
			return;
		}
		if (json_is_true(json_object_get(one, "inject")))
			has_inject = 1;
		detail_add(x->detail, sizeof(x->detail),
		    json_string_value(json_object_get(one, "secret")));
		if (json_array_append_new(canon, one) != 0) {
			json_decref(canon);
			goto internal;
		}
	}
	if ((rst = store_pool_get(call->b->readers)) == NULL) {
		json_decref(canon);
		goto internal;
	}
	if ((refusal = mint_policy(x, rst, canon, ttl)) != NULL) {
		json_decref(canon);
		ctx_refuse(x, strcmp(refusal, "internal_error") == 0 ? 500 : 403, refusal, NULL);
		return;
	}

	/* Allowed: the grant row, then the token naming it. */
	memset(&claims, 0, sizeof(claims));
	if (token_new_grant_id(claims.jti) != 0) {
		json_decref(canon);
		goto internal;
	}
	set_grant_id(x, claims.jti);
	util_strlcpy(claims.sub, x->sandbox_id, sizeof(claims.sub));
	claims.iat = x->now;
	claims.nbf = x->now;
	claims.exp = x->now + ttl;
	x->bindings_json = json_dumps_compact(canon);	/* what json_dumps wrote */
	json_decref(canon);
	if (x->bindings_json == NULL)
		goto internal;
	if (token_mint(call->b->vault, &claims, &tok) != 0)
		goto internal;
	x->g.id = x->grant_id;
	x->g.sandbox_id = x->sandbox_id;
	x->g.minted_by = (char *)(uintptr_t)x->op.audit.actor;
	x->g.created_at = x->now;
	x->g.not_before = x->now;
	x->g.expires_at = claims.exp;
	x->g.max_uses = max_uses;
	x->g.has_inject = has_inject;
	x->g.bindings = x->bindings_json;
	/* claims.kid lives on this stack: keep a copy in the context. */
	util_strlcpy(x->kid, claims.kid, sizeof(x->kid));
	x->g.kid = x->kid;
	util_rfc3339(claims.exp, expires, sizeof(expires));
	/* Raw text, wiped after sending: the token is a bearer credential. */
	rc = raw_strings(&x->raw, &x->rawlen, "grant_id", x->grant_id, "token", tok,
	    "expires_at", expires);
	util_wipe_str(tok);
	if (rc != 0)
		goto internal;
	x->status = 201;
	x->op.fn = mint_fn;
	ctx_submit(x);
	return;
 internal:
	ctx_refuse(x, 500, "internal_error", NULL);
}

/* ----------------------------------------------------------- show, revoke */

static const char *
grant_status(const struct store_grant *g, int64_t now)
{
	if (g->revoked_at != 0)
		return "revoked";
	if (g->expires_at <= now)
		return "expired";
	if (g->max_uses > 0 && g->uses >= g->max_uses)
		return "used_up";
	return "active";
}

/*
 * Looks the grant of the path up for show/revoke: NULL after answering 404 (also for
 * another harness's grant) or 500. With all_uses, its uses are all counted (show).
 */
static struct store_grant *
lookup_own(struct grant_ctx *x, int all_uses)
{
	struct api_call *call = x->call;
	struct store_grant *g = NULL;
	struct store *rst;
	int rc;

	if (!grant_id_valid(call->path_arg)) {
		ctx_refuse(x, 404, "not_found", NULL);
		return NULL;
	}
	set_grant_id(x, call->path_arg);
	if ((rst = store_pool_get(call->b->readers)) == NULL) {
		ctx_refuse(x, 500, "internal_error", NULL);
		return NULL;
	}
	rc = all_uses ? store_grant_get_uses(rst, call->path_arg, &g) :
	    store_grant_get(rst, call->path_arg, &g);
	if (rc == CB_ERR_NOTFOUND || (rc == 0 && call->who->role != ROLE_ADMIN &&
	    strcmp(g->minted_by, call->who->id) != 0)) {
		store_grant_free(g);
		ctx_refuse(x, 404, "not_found", NULL);
		return NULL;
	}
	if (rc != 0) {
		ctx_refuse(x, 500, "internal_error", NULL);
		return NULL;
	}
	set_sandbox(x, g->sandbox_id);
	return g;
}

void
grant_handle_show(struct api_call *call)
{
	struct store_grant *g;
	struct grant_ctx *x;
	json_t *bindings, *o = NULL;
	char created[32], nbf[32], exp[32], rev[32];

	if ((x = ctx_new(call, K_SHOW, "grant.show")) == NULL) {
		reply_nomem(call);
		return;
	}
	if ((g = lookup_own(x, 1)) == NULL)
		return;
	util_rfc3339(g->created_at, created, sizeof(created));
	util_rfc3339(g->not_before, nbf, sizeof(nbf));
	util_rfc3339(g->expires_at, exp, sizeof(exp));
	if (g->revoked_at != 0)
		util_rfc3339(g->revoked_at, rev, sizeof(rev));
	bindings = json_loads(g->bindings, 0, NULL);
	if (bindings != NULL)
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:o, s:o}",
		    "grant_id", g->id, "sandbox_id", g->sandbox_id, "minted_by", g->minted_by,
		    "status", grant_status(g, x->now), "created_at", created,
		    "not_before", nbf, "expires_at", exp,
		    "max_uses", g->max_uses > 0 ? json_integer(g->max_uses) : json_null(),
		    "uses", (json_int_t)g->uses,
		    "revoked_at", g->revoked_at != 0 ? json_string(rev) : json_null(),
		    "bindings", bindings);
	store_grant_free(g);
	if (o == NULL) {
		ctx_refuse(x, 500, "internal_error", NULL);
		return;
	}
	x->body = o;
	x->status = 200;
	ctx_submit(x);
}

static int
revoke_fn(struct store *wst, struct commit_op *op)
{
	struct grant_ctx *x = op->arg;
	int changed, rc;

	grant_rows_invalidate(x->sandbox_id);	/* again in ctx_done once durable */
	rc = store_grant_revoke(wst, x->grant_id, x->now, &changed);
	if (rc == 0 && changed)
		grant_note_revocation(x->now);
	return rc;
}

void
grant_handle_revoke(struct api_call *call)
{
	struct store_grant *g;
	struct grant_ctx *x;

	if ((x = ctx_new(call, K_REVOKE, "grant.revoke")) == NULL) {
		reply_nomem(call);
		return;
	}
	if ((g = lookup_own(x, 0)) == NULL)
		return;
	store_grant_free(g);
	if ((x->body = json_pack("{s:s, s:b}", "grant_id", x->grant_id, "revoked", 1)) == NULL) {
		ctx_refuse(x, 500, "internal_error", NULL);
		return;
	}
	x->status = 200;
	x->op.fn = revoke_fn;
	ctx_submit(x);
}

static int
revoke_sbx_fn(struct store *wst, struct commit_op *op)
{
	struct grant_ctx *x = op->arg;
	int rc;

	grant_rows_invalidate(x->sandbox_id);	/* again in ctx_done once durable */
	rc = store_grant_revoke_sandbox(wst, x->sandbox_id, x->revoke_by, x->now, &x->revoked);
	if (rc == 0)
		snprintf(x->detail, sizeof(x->detail), "revoked=%lld", (long long)x->revoked);
	if (rc == 0 && x->revoked > 0)
		grant_note_revocation(x->now);
	return rc;
}

void
grant_handle_revoke_sandbox(struct api_call *call)
{
	struct grant_ctx *x;

	if ((x = ctx_new(call, K_REVOKE_SBX, "sandbox.revoke")) == NULL) {
		reply_nomem(call);
		return;
	}
	x->op.audit.detail = x->detail;
	if (call->path_arg == NULL || !sandbox_valid(call->path_arg)) {
		ctx_refuse(x, 404, "not_found", NULL);
		return;
	}
	set_sandbox(x, call->path_arg);
	x->revoke_by = call->who->role == ROLE_ADMIN ? NULL : call->who->id;
	x->status = 200;
	x->op.fn = revoke_sbx_fn;
	ctx_submit(x);
}

/* ---------------------------------------------------------------- resolve */

/*
 * Parsed bindings, per server thread. Every resolve parsed its grant's bindings
 * (jansson: ~34 k instructions) although a grant's bindings never change. Each
 * thread keeps its last BCACHE_SLOTS parsings, keyed by grant ID and checked against
 * the row's text byte for byte, so an entry is only ever used for the very text it
 * was parsed from. Bindings hold no secret (names, hosts, templates). A thread's
 * entries are freed when it exits. Sized for the grants in use at once, since every
 * thread sees all of them: with 1,024 slots and 2,000 grants resolving in turn (bench/,
 * scenario 1) most lookups missed (docs/performance.md, D10). Sets of BCACHE_WAYS slots,
 * the least recently used one replaced: with one slot per grant ID, ~20 % of 2,000 grants
 * in 8,192 slots shared theirs with another grant in use, and the two evicted each other
 * at every turn; with sets of 2, the ~9 % in sets of three or more still did (D11). A
 * slot is ~256 bytes (calloc'ed, touched as used) plus its text and parsed bindings
 * (~1 KiB for one binding): ~10 MiB per thread when every slot is used.
 */
#define BCACHE_SLOTS	8192
#define BCACHE_WAYS	4
#define BCACHE_TEXT_MAX	2048	/* longer bindings are parsed every time */

struct bcache_slot {
	char id[GRANT_ID_LEN + 1];
	char *text;
	size_t len;
	json_t *parsed;
	/*
	 * The grant's row as a token resolve checks it (see grant_row_cached), valid while
	 * row_gen - 1 is its sandbox's current revocation generation; row_gen 0: none.
	 */
	uint64_t row_gen;
	int64_t row_at_us;
	int64_t expires_at;
	char sandbox_id[GRANT_SANDBOX_ID_MAX + 1];
	char kid[40];
	uint64_t used;		/* this thread's bcache_tick at its last use; 0: empty */
};

static __thread uint64_t bcache_tick;

static pthread_key_t bcache_key;
static pthread_once_t bcache_once = PTHREAD_ONCE_INIT;
static int bcache_ok;

static void
bcache_free(void *arg)
{
	struct bcache_slot *t = arg;
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < BCACHE_SLOTS; i++) {
		json_decref(t[i].parsed);
		free(t[i].text);
	}
	free(t);
}

static void
bcache_init(void)
{
	bcache_ok = pthread_key_create(&bcache_key, bcache_free) == 0;
}

/* This thread's cache (allocated on first use), or NULL. */
static struct bcache_slot *
bcache_get(void)
{
	struct bcache_slot *t;

	pthread_once(&bcache_once, bcache_init);
	if (!bcache_ok)
		return NULL;
	if ((t = pthread_getspecific(bcache_key)) == NULL &&
	    (t = calloc(BCACHE_SLOTS, sizeof(*t))) != NULL &&
	    pthread_setspecific(bcache_key, t) != 0) {
		free(t);
		t = NULL;
	}
	return t;
}

unsigned int
grant_bcache_set(const char *id)
{
	return (unsigned int)(util_hash(id, strlen(id)) % (BCACHE_SLOTS / BCACHE_WAYS));
}

/*
 * The slot holding grant id in this thread's cache, marked used; NULL when none does.
 * With fill, a slot of id's set to take it instead of NULL: an empty one or the least
 * recently used (its contents are the caller's to replace).
 */
static struct bcache_slot *
bcache_slot(const char *id, int fill)
{
	struct bcache_slot *t, *set, *old;
	size_t w;

	if (strlen(id) > GRANT_ID_LEN || (t = bcache_get()) == NULL)
		return NULL;
	set = &t[(size_t)grant_bcache_set(id) * BCACHE_WAYS];
	old = &set[0];
	for (w = 0; w < BCACHE_WAYS; w++) {
		if (set[w].used != 0 && strcmp(set[w].id, id) == 0) {
			set[w].used = ++bcache_tick;
			return &set[w];
		}
		if (set[w].used < old->used)
			old = &set[w];
	}
	if (!fill)
		return NULL;
	old->used = ++bcache_tick;
	return old;
}

/* A new reference to g's bindings, parsed; NULL when they do not parse. */
static json_t *
bindings_of(const struct store_grant *g)
{
	struct bcache_slot *sl = NULL;
	json_t *b;
	size_t len;
	char *text;

	len = strlen(g->bindings);
	if (len <= BCACHE_TEXT_MAX && (sl = bcache_slot(g->id, 0)) != NULL) {
		if (sl->parsed != NULL && sl->len == len && memcmp(sl->text, g->bindings, len) == 0)
			return json_incref(sl->parsed);
	}
	b = json_loads(g->bindings, 0, NULL);
	if (len > BCACHE_TEXT_MAX || b == NULL || !json_is_array(b) ||
	    (sl == NULL && (sl = bcache_slot(g->id, 1)) == NULL) ||
	    (text = strdup(g->bindings)) == NULL)
		return b;
	json_decref(sl->parsed);
	free(sl->text);
	util_strlcpy(sl->id, g->id, sizeof(sl->id));
	sl->text = text;
	sl->len = len;
	sl->parsed = json_incref(b);
	sl->row_gen = 0;	/* another grant's row, if any, is gone */
	return b;
}

/*
 * A token resolve's grant row from this thread's cache, filed under generation gen:
 * *g is a view into the slot (not to be freed; its bindings are the slot's text, so
 * bindings_of finds them parsed). Returns 0, or CB_ERR_NOTFOUND when not filed.
 */
static int
grant_row_cached(const char *id, uint64_t gen, int64_t now_us, struct store_grant *g)
{
	struct bcache_slot *sl;

	if ((sl = bcache_slot(id, 0)) == NULL || sl->row_gen != gen + 1 || sl->parsed == NULL ||
	    now_us - sl->row_at_us > GRANT_ROW_AGE_US)
		return CB_ERR_NOTFOUND;
	memset(g, 0, sizeof(*g));
	g->id = sl->id;
	g->sandbox_id = sl->sandbox_id;
	g->kid = sl->kid;
	g->expires_at = sl->expires_at;
	g->bindings = sl->text;	/* max_uses, uses, revoked_at: 0 (only such rows are filed) */
	return 0;
}

/* Files a row read under gen that passed every check (after bindings_of parsed it). */
static void
grant_row_file(const struct store_grant *g, uint64_t gen, int64_t now_us)
{
	struct bcache_slot *sl;

	if (g->revoked_at != 0 || g->max_uses != 0 || g->kid == NULL ||
	    strlen(g->kid) >= sizeof(sl->kid) || strlen(g->sandbox_id) > GRANT_SANDBOX_ID_MAX ||
	    (sl = bcache_slot(g->id, 0)) == NULL || sl->parsed == NULL ||
	    strcmp(sl->text, g->bindings) != 0)
		return;
	util_strlcpy(sl->sandbox_id, g->sandbox_id, sizeof(sl->sandbox_id));
	util_strlcpy(sl->kid, g->kid, sizeof(sl->kid));
	sl->expires_at = g->expires_at;
	sl->row_at_us = now_us;
	sl->row_gen = gen + 1;
}

struct resolve_req {
	const char *token;		/* NULL: token-less */
	char host[DEST_HOST_MAX + 1];
	long long port;
	const char *method;
	char path[DEST_PATH_MAX + 1];
};

static int
resolve_fn(struct store *wst, struct commit_op *op)
{
	struct grant_ctx *x = op->arg;
	const char *code = NULL;
	int i, res, rc;

	for (i = 0; i < x->nuse; i++) {
		if ((rc = store_grant_use(wst, x->use_ids[i], x->use_exp[i], x->now, &res)) != 0)
			return rc;
		switch (res) {
		case STORE_GRANT_USED:
			continue;
		case STORE_GRANT_USED_UP:
			code = "used_up";
			break;
		case STORE_GRANT_REVOKED:
			code = "revoked";
			break;
		case STORE_GRANT_EXPIRED:
			code = "expired";
			break;
		default:
			code = "unknown_grant";
			break;
		}
		util_strlcpy(x->outcome, code, sizeof(x->outcome));
		return CB_ERR_DENIED;
	}
	return 0;
}

/* Builds {"headers": [...], "expires_in": n} around headers (stolen, wiped on failure). */
static json_t *
resolve_body(json_t *headers, int64_t expires_in)
{
	json_t *o;

	if (headers == NULL)
		return NULL;
	if (expires_in < 0)
		expires_in = 0;
	if ((o = json_object()) == NULL || json_object_set(o, "headers", headers) != 0) {
		json_decref(o);
		wipe_body(headers);
		return NULL;
	}
	json_decref(headers);	/* now held by o */
	if (json_object_set_new(o, "expires_in", json_integer(expires_in)) != 0) {
		wipe_body(o);
		return NULL;
	}
	return o;
}

/*
 * The header binding b sets: *name borrowed from b, *rendered the value with the
 * secret in it (malloc'd, *rlen bytes and a NUL: the caller wipes it).
 */
static int
render_binding(struct api_call *call, struct store *rst, json_t *b, const char **name,
    char **rendered, size_t *rlen)
{
	const char *tmpl, *secret, *host;
	uint8_t *val = NULL;
	size_t len = 0;
	int rc;

	*rendered = NULL;
	*rlen = 0;
	secret = json_string_value(json_object_get(b, "secret"));
	host = json_string_value(json_object_get(b, "host"));
	*name = json_string_value(json_object_get(b, "header"));
	tmpl = json_string_value(json_object_get(b, "template"));
	if (secret == NULL || host == NULL || *name == NULL || tmpl == NULL)
		return CB_ERR_CORRUPT;
	if ((rc = secret_reveal(rst, call->b->vault, secret, &val, &len)) != 0)
		return rc;
	/*
	 * The secret's own allowlist as it is now, not as it was at the mint: a new
	 * version (or a new secret of the same name) that no longer names the grant's
	 * host is not sent there. Read after the value, so a narrowing put that the
	 * value already reflects is seen.
	 */
	if ((rc = secret_allows_host(rst, secret, host)) != 0) {
		util_wipe_free(val, len + 1);
		return rc;
	}
	rc = grant_render(tmpl, val, len, rendered, rlen);
	util_wipe_free(val, len + 1);
	return rc;
}

/* Appends {"name", "value"} with the rendered binding b to headers. */
static int
add_header(struct api_call *call, struct store *rst, json_t *headers, json_t *b)
{
	const char *name;
	char *rendered = NULL;
	size_t rlen = 0;
	json_t *h;
	int rc;

	if ((rc = render_binding(call, rst, b, &name, &rendered, &rlen)) != 0)
		return rc;
	h = json_pack("{s:s, s:s%}", "name", name, "value", rendered, rlen);
	util_wipe_free(rendered, rlen + 1);
	if (h == NULL)
		return CB_ERR_NOMEM;
	if (json_array_append_new(headers, h) != 0) {
		explicit_bzero((char *)(uintptr_t)json_string_value(json_object_get(h, "value")),
		    rlen);
		return CB_ERR_NOMEM;
	}
	return 0;
}

/*
 * A token resolve's answer, written directly: the bytes json_write_compact writes for
 * {"headers":[{"name":N,"value":V}],"expires_in":E} (the jansson form cost ~11 k
 * instructions: values, packing, serialising, wiping). *out malloc'd, NUL-terminated,
 * holding the secret: the caller wipes it (util_wipe_free(*out, *outlen + 1)).
 */
static int
resolve_answer(struct api_call *call, struct store *rst, json_t *b, int64_t expires_in,
    char **out, size_t *outlen)
{
	static const char p1[] = "{\"headers\":[{\"name\":", p2[] = ",\"value\":",
	    p3[] = "}],\"expires_in\":";
	const char *name, *num;
	char *rendered = NULL, *buf, digits[UTIL_LL_DIGITS];
	size_t len, rlen = 0, nl, vl, n, pos;
	int rc;

	*out = NULL;
	*outlen = 0;
	if ((rc = render_binding(call, rst, b, &name, &rendered, &rlen)) != 0)
		return rc;
	num = util_fmt_ll((long long)(expires_in < 0 ? 0 : expires_in), digits);
	n = strlen(num);
	nl = json_write_string(name, strlen(name), NULL, 0);
	vl = json_write_string(rendered, rlen, NULL, 0);
	/* Not UTF-8: what json_pack refused before (an internal error). */
	if (nl == 0 || vl == 0) {
		rc = CB_ERR_INVAL;
		goto out;
	}
	len = sizeof(p1) - 1 + nl + sizeof(p2) - 1 + vl + sizeof(p3) - 1 + n + 1;
	if ((buf = malloc(len + 1)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	pos = 0;
	memcpy(buf + pos, p1, sizeof(p1) - 1);
	pos += sizeof(p1) - 1;
	pos += json_write_string(name, strlen(name), buf + pos, nl);
	memcpy(buf + pos, p2, sizeof(p2) - 1);
	pos += sizeof(p2) - 1;
	pos += json_write_string(rendered, rlen, buf + pos, vl);
	memcpy(buf + pos, p3, sizeof(p3) - 1);
	pos += sizeof(p3) - 1;
	memcpy(buf + pos, num, n);
	pos += n;
	buf[pos++] = '}';
	buf[pos] = '\0';
	*out = buf;	/* transferred */
	*outlen = pos;
	rc = 0;
out:
	util_wipe_free(rendered, rlen + 1);
	return rc;
}

/* Resolve with a token: the checks in the order of the brief. Returns a refusal code or NULL. */
static const char *
resolve_token(struct grant_ctx *x, struct resolve_req *r, struct store *rst, int *status)
{
	struct api_call *call = x->call;
	struct token_claims c;
	struct store_grant *g = NULL, *row = NULL, view;
	uint64_t gen;
	int64_t now_us;
	enum token_result tr;
	json_t *bindings = NULL, *b, *match = NULL;
	const char *code = NULL;
	size_t i;
	int m, worst = GRANT_MISMATCH_DEST, rc;

	*status = 403;
	memset(&c, 0, sizeof(c));
	tr = token_verify(call->b->vault, r->token, strlen(r->token), x->now, &c);
	if (tr != TOKEN_OK) {
		if (tr == TOKEN_INTERNAL) {
			*status = 500;
			code = "internal_error";
		} else
			code = token_reason(tr);
		goto out;
	}
	set_grant_id(x, c.jti);
	/* Before the row is read: see grant_row_gen. */
	gen = atomic_load(row_gen_of(c.sub));
	now_us = util_mono_us();
	if (grant_row_cached(c.jti, gen, now_us, &view) == 0) {
		g = &view;
		rc = 0;
	} else if ((rc = store_grant_get(rst, c.jti, &row)) == 0)
		g = row;
	if (rc == CB_ERR_NOTFOUND) {
		code = "unknown_grant";
		goto out;
	}
	if (rc != 0) {
		*status = 500;
		code = "internal_error";
		goto out;
	}
	if (g->kid == NULL || strcmp(g->kid, c.kid) != 0) {
		code = "invalid_token";
		goto out;
	}
	if (g->revoked_at != 0) {
		code = "revoked";
		goto out;
	}
	if (g->expires_at <= x->now) {
		code = "expired";
		goto out;
	}
	if (strcmp(g->sandbox_id, x->sandbox_id) != 0 || strcmp(c.sub, x->sandbox_id) != 0) {
		code = "sandbox_mismatch";
		goto out;
	}
	if (g->max_uses > 0 && g->uses >= g->max_uses) {
		code = "used_up";
		goto out;
	}
	if ((bindings = bindings_of(g)) == NULL || !json_is_array(bindings)) {
		log_warnx("grant %s: unreadable bindings", g->id);
		*status = 500;
		code = "internal_error";
		goto out;
	}
	json_array_foreach(bindings, i, b) {
		m = grant_binding_match(b, r->host, r->port, r->method, r->path);
		if (m == GRANT_MATCH) {
			match = b;
			break;
		}
		if (m > worst)
			worst = m;
	}
	if (row != NULL)
		grant_row_file(row, gen, now_us);	/* passed every check of the row */
	if (match == NULL) {
		code = grant_mismatch_code(worst);
		goto out;
	}
	/* Decrypt here, on the server thread: the commit thread only counts the use. */
	if ((rc = resolve_answer(call, rst, match, g->expires_at - x->now, &x->raw,
	    &x->rawlen)) != 0) {
		if (rc == CB_ERR_NOTFOUND)
			code = "unknown_secret";
		else if (rc == CB_ERR_DENIED)
			code = "host_not_allowed";
		else {
			*status = 500;
			code = "internal_error";
		}
		goto out;
	}
	util_strlcpy(x->use_ids[0], g->id, sizeof(x->use_ids[0]));
	x->use_exp[0] = g->expires_at;
	x->nuse = 1;
 out:
	explicit_bzero(&c, sizeof(c));
	json_decref(bindings);
	store_grant_free(row);
	return code;
}

struct tokenless {
	struct grant_ctx *x;
	struct resolve_req *r;
	struct store *rst;
	json_t *headers;
	int swap_match;
	int64_t min_exp;
	int rc;			/* an internal error, stops the walk */
};

static int
tokenless_grant(void *arg, const struct store_grant *g)
{
	struct tokenless *t = arg;
	struct grant_ctx *x = t->x;
	json_t *bindings, *b, *h;
	const char *name, *have;
	size_t i, j;
	int dup, added = 0, rc;

	if ((bindings = bindings_of(g)) == NULL || !json_is_array(bindings)) {
		log_warnx("grant %s: unreadable bindings", g->id);
		json_decref(bindings);
		return 0;
	}
	json_array_foreach(bindings, i, b) {
		if (grant_binding_match(b, t->r->host, t->r->port, t->r->method, t->r->path) !=
		    GRANT_MATCH)
			continue;
		if (!json_is_true(json_object_get(b, "inject"))) {
			t->swap_match = 1;
			if (x->grant_id[0] == '\0')
				set_grant_id(x, g->id);
			if (t->min_exp == 0 || g->expires_at < t->min_exp)
				t->min_exp = g->expires_at;
			continue;
		}
		name = json_string_value(json_object_get(b, "header"));
		dup = 0;
		json_array_foreach(t->headers, j, h) {
			have = json_string_value(json_object_get(h, "name"));
			if (have != NULL && name != NULL && strcasecmp(have, name) == 0)
				dup = 1;
		}
		if (dup)
			continue;
		if (!added && x->nuse >= USES_MAX)
			continue;	/* bounded: further grants are not injected */
		rc = add_header(x->call, t->rst, t->headers, b);
		if (rc == CB_ERR_NOTFOUND) {
			log_warnx("grant %s: secret of an inject binding is gone", g->id);
			continue;
		}
		if (rc == CB_ERR_DENIED) {
			log_warnx("grant %s: its host is no longer allowed for its secret", g->id);
			continue;
		}
		if (rc != 0) {
			t->rc = rc;
			json_decref(bindings);
			return rc;
		}
		if (!added) {
			util_strlcpy(x->use_ids[x->nuse], g->id, sizeof(x->use_ids[0]));
			x->use_exp[x->nuse] = g->expires_at;
			x->nuse++;
			added = 1;
		}
	}
	if (added) {
		if (x->nuse == 1)
			set_grant_id(x, g->id);
		if (t->min_exp == 0 || g->expires_at < t->min_exp)
			t->min_exp = g->expires_at;
	}
	json_decref(bindings);
	return 0;
}

static const char *
resolve_tokenless(struct grant_ctx *x, struct resolve_req *r, struct store *rst, int *status)
{
	struct tokenless t;
	int rc;

	*status = 403;
	memset(&t, 0, sizeof(t));
	t.x = x;
	t.r = r;
	t.rst = rst;
	if ((t.headers = json_array()) == NULL) {
		*status = 500;
		return "internal_error";
	}
	rc = store_grant_sandbox_live(rst, x->sandbox_id, x->now, TOKENLESS_GRANTS_MAX,
	    tokenless_grant, &t);
	if (rc != 0 || t.rc != 0) {
		wipe_body(t.headers);
		x->nuse = 0;
		*status = 500;
		return "internal_error";
	}
	if (json_array_size(t.headers) == 0 && !t.swap_match) {
		json_decref(t.headers);
		x->nuse = 0;
		return "no_grant";
	}
	x->sensitive = json_array_size(t.headers) > 0;
	if ((x->body = resolve_body(t.headers, t.min_exp - x->now)) == NULL) {
		x->nuse = 0;
		*status = 500;
		return "internal_error";
	}
	return NULL;
}

void
grant_handle_resolve(struct api_call *call)
{
	static const char *const allowed[] = { "token", "sandbox_id", "host", "port", "method",
	    "path", NULL };
	struct resolve_req req, *r = &req;	/* nothing secret: the token is borrowed */
	struct grant_ctx *x;
	struct store *rst;
	json_t *body = call->body;
	const char *code, *host, *path, *refusal;
	int status;

	if ((x = ctx_new(call, K_RESOLVE, "grant.resolve")) == NULL) {
		reply_nomem(call);
		return;
	}
	x->op.audit.detail = x->detail;
	/* Field by field: zeroing the 8 KiB path buffer cost more than the rest of the setup. */
	r->token = NULL;
	r->host[0] = '\0';
	r->port = 443;
	r->method = NULL;
	r->path[0] = '\0';
	if (ctx_body_start(x, body, allowed) != 0)
		return;
	if (json_get_string(body, "token", 0, TOKEN_MAX, &r->token, &code) < 0) {
		ctx_bad_body(x, code, NULL, "token");
		return;
	}
	if (json_get_string(body, "host", 1, DEST_HOST_MAX, &host, &code) < 0) {
		ctx_bad_body(x, code, NULL, "host");
		return;
	}
	if (dest_host_normalise(host, r->host, sizeof(r->host)) != 0) {
		ctx_bad_body(x, JSON_E_INVALID_VALUE, NULL, "host");
		return;
	}
	if (json_get_int(body, "port", 0, 1, 65535, &r->port, &code) < 0) {
		ctx_bad_body(x, code, NULL, "port");
		return;
	}
	if (json_get_string(body, "method", 1, DEST_METHOD_MAX, &r->method, &code) < 0) {
		ctx_bad_body(x, code, NULL, "method");
		return;
	}
	if (dest_method_valid(r->method) != 0) {
		ctx_bad_body(x, JSON_E_INVALID_VALUE, NULL, "method");
		return;
	}
	snprintf(x->detail, sizeof(x->detail), "%.16s %.253s:%lld%s", r->method, r->host, r->port,
	    r->token == NULL ? " tokenless" : "");
	if (json_get_string(body, "path", 1, DEST_PATH_MAX, &path, &code) < 0) {
		ctx_bad_body(x, code, NULL, "path");
		return;
	}
	if (dest_path_normalise(path, r->path, sizeof(r->path)) != 0) {
		ctx_bad_body(x, "invalid_path", NULL, "path");
		return;
	}
	if ((rst = store_pool_get(call->b->readers)) == NULL) {
		ctx_refuse(x, 500, "internal_error", NULL);
		return;
	}
	if (r->token != NULL)
		refusal = resolve_token(x, r, rst, &status);
	else
		refusal = resolve_tokenless(x, r, rst, &status);
	if (refusal != NULL) {
		ctx_refuse(x, status, refusal, NULL);
		return;
	}
	x->status = 200;
	x->op.fn = x->nuse > 0 ? resolve_fn : NULL;
	ctx_submit(x);
}
