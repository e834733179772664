/*
 * api.c: routing, role checks and the admin handlers (secrets, keys, audit) plus
 * health and metrics. Grants and resolve are in grant.c.
 *
 * Every call routed to a handler leaves exactly one audit record, written through the
 * commit queue before the answer leaves: role refusals and body errors here, admin
 * actions here, grant actions in grant.c. Unknown paths (404), wrong methods (405),
 * GET /healthz and GET /metrics are not audited: they touch nothing and name nothing.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "commit.h"
#include "dest.h"
#include "err.h"
#include "grant.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define API_AUDIT_LIMIT_DEFAULT	100
#define API_DETAIL_MAX		200

#define R_HARNESS	(1u << ROLE_HARNESS)
#define R_PROXY		(1u << ROLE_PROXY)
#define R_ADMIN		(1u << ROLE_ADMIN)
#define R_ANY		(R_HARNESS | R_PROXY | R_ADMIN)

static void api_secret_put(struct api_call *);
static void api_secret_get(struct api_call *);
static void api_secret_delete(struct api_call *);
static void api_secret_list(struct api_call *);
static void api_keys_rotate(struct api_call *);
static void api_audit_list(struct api_call *);
static void api_audit_verify(struct api_call *);
static void api_healthz(struct api_call *);
static void api_metrics(struct api_call *);

/* The route table: "METHOD /path/{param}"; api_route_info[] below runs in parallel. */
const char *const api_routes[] = {
	"POST /v1/grants",
	"GET /v1/grants/{id}",
	"DELETE /v1/grants/{id}",
	"DELETE /v1/sandboxes/{sandbox_id}/grants",
	"POST /v1/resolve",
	"GET /v1/secrets",
	"PUT /v1/secrets/{name}",
	"GET /v1/secrets/{name}",
	"DELETE /v1/secrets/{name}",
	"POST /v1/keys/rotate",
	"GET /v1/audit",
	"GET /v1/audit/verify",
	"GET /healthz",
	"GET /metrics",
	NULL
};

struct api_route_info {
	unsigned roles;		/* roles allowed */
	const char *action;	/* audit action; NULL: not audited */
	int body;		/* a JSON object body is required */
	void (*handler)(struct api_call *);
};

static const struct api_route_info api_route_info[] = {
	{ R_HARNESS, "grant.mint", 1, grant_handle_mint },
	{ R_HARNESS | R_ADMIN, "grant.show", 0, grant_handle_show },
	{ R_HARNESS | R_ADMIN, "grant.revoke", 0, grant_handle_revoke },
	{ R_HARNESS | R_ADMIN, "sandbox.revoke", 0, grant_handle_revoke_sandbox },
	{ R_PROXY, "grant.resolve", 1, grant_handle_resolve },
	{ R_ADMIN, "secret.list", 0, api_secret_list },
	{ R_ADMIN, "secret.put", 1, api_secret_put },
	{ R_ADMIN, "secret.show", 0, api_secret_get },
	{ R_ADMIN, "secret.delete", 0, api_secret_delete },
	{ R_ADMIN, "key.rotate", 1, api_keys_rotate },
	{ R_ADMIN, "audit.list", 0, api_audit_list },
	{ R_ADMIN, "audit.verify", 0, api_audit_verify },
	{ R_ANY, NULL, 0, api_healthz },
	{ R_ANY, NULL, 0, api_metrics },
};

_Static_assert(sizeof(api_route_info) / sizeof(api_route_info[0]) ==
    sizeof(api_routes) / sizeof(api_routes[0]) - 1, "api_routes and api_route_info differ");

/* ---- replies and audit ---------------------------------------------------------- */

void
api_error(struct api_call *call, int status, const char *code)
{
	call->reply(call, status, json_error_body(code, NULL), 0);
}

static void
api_error_field(struct api_call *call, int status, const char *code, const char *field)
{
	call->reply(call, status, json_error_body(code, field), 0);
}

/*
 * An answer that leaves only once its audit record is durable. fn (optional) runs on
 * the commit thread inside the batch; done() builds nothing heavy, it replies.
 */
struct api_audited {
	struct commit_op op;
	struct api_call *call;
	int status;		/* answer status when the record is durable */
	json_t *body;		/* answer body (owned until the reply) */
	const char *err_code;	/* error answer when status >= 400 and body is NULL */
	const char *err_field;
	char outcome[48];
	char detail[API_DETAIL_MAX];
	/* for fn: */
	int (*work)(struct store *, struct api_audited *);
	void *work_arg;
	int64_t version;
};

static struct api_audited *
api_audited_new(struct api_call *call, const char *action, const char *outcome,
    const char *detail)
{
	struct api_audited *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	a->call = call;
	util_strlcpy(a->outcome, outcome, sizeof(a->outcome));
	if (detail != NULL)
		util_strlcpy(a->detail, detail, sizeof(a->detail));
	a->op.arg = a;
	a->op.audit.actor = call->who->id;
	a->op.audit.role = conf_role_name(call->who->role);
	a->op.audit.action = action;
	a->op.audit.outcome = a->outcome;
	a->op.audit.detail = detail != NULL ? a->detail : NULL;
	return a;
}

static void
api_audited_done(struct commit_op *op, int rc)
{
	struct api_audited *a = op->arg;
	struct api_call *call = a->call;

	/*
	 * A write (secret put or delete, a key rotation) is committed or rolled back: the
	 * server threads' decrypted values are dropped before anyone hears of it.
	 */
	if (a->work != NULL)
		secret_cache_invalidate();
	if (!op->durable || (rc != 0 && a->status < 400)) {
		/*
		 * The effect or its audit record is not durable: the request fails, a
		 * refusal too (its record is lost), as grant.c's. A failed batch (a full
		 * disk) is reported by the commit thread, not per request.
		 */
		if (op->durable || rc != CB_ERR_DB)
			log_warnx("%s by %s: not committed: %s", op->audit.action,
			    call->who->id, cb_strerror(rc));
		json_decref(a->body);
		if (!op->durable && rc == CB_ERR_BUSY)
			api_error(call, 503, "unavailable");
		else
			api_error(call, 500, "internal_error");
	} else if (a->status >= 400 && a->body == NULL) {
		api_error_field(call, a->status, a->err_code, a->err_field);
	} else
		call->reply(call, a->status, a->body, 0);	/* transferred */
	free(a);
}

static int
api_audited_fn(struct store *wst, struct commit_op *op)
{
	struct api_audited *a = op->arg;

	return a->work(wst, a);
}

/* Queues a; on failure answers 503 itself. */
static void
api_audited_submit(struct api_audited *a)
{
	struct api_call *call = a->call;

	a->op.done = api_audited_done;
	if (a->work != NULL)
		a->op.fn = api_audited_fn;
	if (commit_submit(call->b->commit, &a->op) != 0) {
		json_decref(a->body);
		free(a);
		api_error(call, 503, "unavailable");
	}
}

/* Replies status with body (or {"error": code}) once an audit record of it is durable. */
static void
api_reply_audited(struct api_call *call, const char *action, const char *outcome,
    const char *detail, int status, json_t *body, const char *code, const char *field)
{
	struct api_audited *a;

	if ((a = api_audited_new(call, action, outcome, detail)) == NULL) {
		json_decref(body);
		api_error(call, 500, "internal_error");
		return;
	}
	a->status = status;
	a->body = body;
	a->err_code = code;
	a->err_field = field;
	api_audited_submit(a);
}

/* An audited refusal: the outcome is the error code. */
static void
api_refuse(struct api_call *call, const char *action, int status, const char *code,
    const char *field, const char *detail)
{
	api_reply_audited(call, action, code, detail, status, NULL, code, field);
}

/* ---- routing ----------------------------------------------------------------------- */

/*
 * Matches path against pattern ("/v1/grants/{id}"); a {param} matches one non-empty
 * segment, copied into arg. Returns 1 on a match, 0 otherwise, -1 when the segment
 * for {param} is unusable (too long or not printable ASCII).
 */
static int
api_match(const char *pattern, const char *path, char *arg, size_t arglen)
{
	const char *p = pattern, *q = path, *end;
	size_t n, i;
	int bad = 0;

	arg[0] = '\0';
	while (*p != '\0') {
		if (*p == '{') {
			if ((end = strchr(p, '}')) == NULL)
				return 0;
			n = strcspn(q, "/");
			if (n == 0)
				return 0;
			if (n >= arglen)
				bad = 1;
			for (i = 0; i < n && !bad; i++)
				if ((unsigned char)q[i] <= 0x20 || (unsigned char)q[i] >= 0x7f)
					bad = 1;
			if (!bad) {
				memcpy(arg, q, n);
				arg[n] = '\0';
			}
			p = end + 1;
			q += n;
			continue;
		}
		if (*p != *q)
			return 0;
		p++;
		q++;
	}
	if (*q != '\0')
		return 0;
	return bad ? -1 : 1;
}

/* Adds a route's method to call->allow, the answer's Allow header if it is a 405. */
static void
api_allow_add(struct api_call *call, const char *method, size_t mlen)
{
	size_t used = strlen(call->allow);

	if (used + 2 + mlen >= sizeof(call->allow))
		return;
	snprintf(call->allow + used, sizeof(call->allow) - used, "%s%.*s", used > 0 ? ", " : "",
	    (int)mlen, method);
}

void
api_dispatch(struct api_call *call)
{
	const struct api_route_info *ri;
	const char *label, *sp;
	size_t i, mlen;
	int path_known = 0, m;

	call->path_arg = NULL;
	call->allow[0] = '\0';
	for (i = 0; api_routes[i] != NULL; i++) {
		label = api_routes[i];
		if ((sp = strchr(label, ' ')) == NULL)
			continue;
		mlen = (size_t)(sp - label);
		m = api_match(sp + 1, call->path, call->path_arg_buf, sizeof(call->path_arg_buf));
		if (m == 0)
			continue;
		path_known = 1;
		api_allow_add(call, label, mlen);
		if (strlen(call->method) != mlen || strncmp(call->method, label, mlen) != 0)
			continue;
		call->route = label;
		if (m < 0) {
			api_error(call, 404, "not_found");
			return;
		}
		if (strchr(sp + 1, '{') != NULL)
			call->path_arg = call->path_arg_buf;
		break;
	}
	if (api_routes[i] == NULL) {
		if (path_known)
			api_error(call, 405, "method_not_allowed");
		else
			api_error(call, 404, "not_found");
		return;
	}
	ri = &api_route_info[i];
	if ((ri->roles & (1u << call->who->role)) == 0) {
		log_info("route %s refused to %s (role %s)", call->route, call->who->id,
		    conf_role_name(call->who->role));
		if (ri->action != NULL)
			api_refuse(call, ri->action, 403, "forbidden", NULL, call->path_arg);
		else
			api_error(call, 403, "forbidden");
		return;
	}
	if (ri->body && call->body == NULL) {
		api_refuse(call, ri->action, 400,
		    call->body_error != NULL ? call->body_error : JSON_E_BAD_JSON, NULL,
		    call->path_arg);
		return;
	}
	ri->handler(call);
}

/* ---- secrets --------------------------------------------------------------------------- */

struct api_put {
	const char *name;
	char *value;		/* points into call->body; wiped after use */
	size_t len;
	char **hosts;
	size_t nhosts;
	int64_t max_ttl;
};

static void
api_put_free(struct api_put *p)
{
	size_t i;

	if (p == NULL)
		return;
	if (p->value != NULL)
		explicit_bzero(p->value, p->len);
	for (i = 0; i < p->nhosts; i++)
		free(p->hosts[i]);
	free(p->hosts);
	free(p);
}

static int
api_secret_put_work(struct store *wst, struct api_audited *a)
{
	struct api_put *p = a->work_arg;
	int rc;

	rc = secret_put(wst, a->call->b->vault, p->name, (const uint8_t *)p->value, p->len,
	    p->hosts, p->nhosts, p->max_ttl, util_now(), &a->version);
	/* The value is not needed any more: wipe it where jansson keeps it. */
	explicit_bzero(p->value, p->len);
	if (rc == 0) {
		a->status = 201;
		util_strlcpy(a->outcome, "ok", sizeof(a->outcome));
	} else {
		a->status = 500;
		a->err_code = "internal_error";
		util_strlcpy(a->outcome, "error", sizeof(a->outcome));
	}
	return rc;
}

static void
api_secret_put_done(struct commit_op *op, int rc)
{
	struct api_audited *a = op->arg;

	api_put_free(a->work_arg);
	a->work_arg = NULL;
	if (rc == 0 && a->status == 201) {
		log_info("secret %s: version %lld stored", a->call->path_arg,
		    (long long)a->version);
		a->body = json_pack("{s:s, s:I}", "name", a->call->path_arg, "version",
		    (json_int_t)a->version);
	}
	api_audited_done(op, rc);
}

static void
api_secret_put(struct api_call *call)
{
	static const char *const fields[] = { "value", "hosts", "max_ttl_s", NULL };
	struct api_put *p = NULL;
	struct api_audited *a = NULL;
	const char *code = NULL, *field = NULL, *value = NULL, *h;
	json_t *hosts = NULL, *item;
	char norm[DEST_HOST_MAX + 1];
	long long ttl = 3600;
	size_t i;

	if (secret_valid_name(call->path_arg) != 0) {
		api_refuse(call, "secret.put", 400, "invalid_name", NULL, NULL);
		goto out;
	}
	if (json_only_fields(call->body, fields, &code, &field) != 0)
		goto bad;
	field = "value";
	if (json_get_string(call->body, "value", 1, SECRET_VALUE_MAX, &value, &code) != 0)
		goto bad;
	if (secret_valid_value((const uint8_t *)value, strlen(value)) != 0) {
		code = JSON_E_INVALID_VALUE;
		goto bad;
	}
	field = "max_ttl_s";
	if (json_get_int(call->body, "max_ttl_s", 0, 1, GRANT_TTL_MAX, &ttl, &code) < 0)
		goto bad;
	field = "hosts";
	if (json_get_array(call->body, "hosts", 1, SECRET_HOSTS_MAX, &hosts, &code) != 0)
		goto bad;
	if (json_array_size(hosts) == 0) {
		code = JSON_E_INVALID_VALUE;
		goto bad;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->hosts = calloc(json_array_size(hosts), sizeof(char *))) == NULL)
		goto nomem;
	json_array_foreach(hosts, i, item) {
		if (!json_is_string(item)) {
			code = JSON_E_WRONG_TYPE;
			goto bad;
		}
		h = json_string_value(item);
		if (strlen(h) != json_string_length(item) ||
		    dest_host_normalise(h, norm, sizeof(norm)) != 0) {
			code = JSON_E_INVALID_VALUE;
			goto bad;
		}
		if ((p->hosts[p->nhosts] = strdup(norm)) == NULL)
			goto nomem;
		p->nhosts++;
	}
	p->name = call->path_arg;
	p->value = (char *)(uintptr_t)value;
	p->len = strlen(value);
	p->max_ttl = ttl;
	if ((a = api_audited_new(call, "secret.put", "ok", call->path_arg)) == NULL)
		goto nomem;
	a->work = api_secret_put_work;
	a->work_arg = p;	/* transferred */
	p = NULL;
	a->op.fn = api_audited_fn;
	a->op.done = api_secret_put_done;
	if (commit_submit(call->b->commit, &a->op) != 0) {
		api_put_free(a->work_arg);
		free(a);
		api_error(call, 503, "unavailable");
	}
	goto out;
bad:
	api_put_free(p);
	p = NULL;
	if (value != NULL)
		explicit_bzero((char *)(uintptr_t)value, strlen(value));
	api_refuse(call, "secret.put", 400, code, field, call->path_arg);
	goto out;
nomem:
	if (value != NULL)
		explicit_bzero((char *)(uintptr_t)value, strlen(value));
	api_error(call, 500, "internal_error");
out:
	api_put_free(p);
}

static int
api_secret_delete_work(struct store *wst, struct api_audited *a)
{
	int rc;

	rc = secret_delete(wst, a->call->path_arg);
	if (rc == 0) {
		a->status = 200;
		a->body = json_pack("{s:s, s:b}", "name", a->call->path_arg, "deleted", 1);
	} else if (rc == CB_ERR_NOTFOUND) {
		a->status = 404;
		a->err_code = "not_found";
		util_strlcpy(a->outcome, "not_found", sizeof(a->outcome));
	} else {
		a->status = 500;
		a->err_code = "internal_error";
		util_strlcpy(a->outcome, "error", sizeof(a->outcome));
	}
	return rc;
}

static void
api_secret_delete(struct api_call *call)
{
	struct api_audited *a;

	if (secret_valid_name(call->path_arg) != 0) {
		api_refuse(call, "secret.delete", 404, "not_found", NULL, NULL);
		return;
	}
	if ((a = api_audited_new(call, "secret.delete", "ok", call->path_arg)) == NULL) {
		api_error(call, 500, "internal_error");
		return;
	}
	a->work = api_secret_delete_work;
	api_audited_submit(a);
}

/* Metadata of a secret as JSON (never the value); new reference or NULL. */
static json_t *
api_secret_json(const struct secret_meta *m)
{
	json_t *o, *hosts;
	char created[32], updated[32];
	size_t i;

	if ((hosts = json_array()) == NULL)
		return NULL;
	for (i = 0; i < m->nhosts; i++)
		json_array_append_new(hosts, json_string(m->hosts[i]));
	util_rfc3339(m->created_at, created, sizeof(created));
	util_rfc3339(m->updated_at, updated, sizeof(updated));
	o = json_pack("{s:s, s:o, s:I, s:I, s:s, s:s}", "name", m->name, "hosts", hosts,
	    "max_ttl_s", (json_int_t)m->max_ttl_s, "version", (json_int_t)m->version,
	    "created_at", created, "updated_at", updated);
	return o;
}

static struct store *
api_reader(struct api_call *call)
{
	struct store *st;

	if ((st = store_pool_get(call->b->readers)) == NULL)
		log_warnx("no reader connection for this thread");
	return st;
}

static void
api_secret_get(struct api_call *call)
{
	struct secret_meta *m = NULL;
	struct store *st;
	json_t *o;
	int rc;

	if (secret_valid_name(call->path_arg) != 0) {
		api_refuse(call, "secret.show", 404, "not_found", NULL, NULL);
		return;
	}
	if ((st = api_reader(call)) == NULL) {
		api_refuse(call, "secret.show", 500, "internal_error", NULL, call->path_arg);
		return;
	}
	rc = secret_get(st, call->path_arg, &m);
	if (rc == CB_ERR_NOTFOUND) {
		api_refuse(call, "secret.show", 404, "not_found", NULL, call->path_arg);
		return;
	}
	if (rc != 0 || (o = api_secret_json(m)) == NULL) {
		secret_meta_free(m);
		api_refuse(call, "secret.show", 500, "internal_error", NULL, call->path_arg);
		return;
	}
	secret_meta_free(m);
	api_reply_audited(call, "secret.show", "ok", call->path_arg, 200, o, NULL, NULL);
}

static void
api_secret_list(struct api_call *call)
{
	struct secret_meta **list = NULL;
	struct store *st;
	json_t *arr = NULL, *o;
	size_t n = 0, i;

	if ((st = api_reader(call)) == NULL || secret_list(st, &list, &n) != 0 ||
	    (arr = json_array()) == NULL) {
		secret_list_free(list, n);
		api_refuse(call, "secret.list", 500, "internal_error", NULL, NULL);
		return;
	}
	for (i = 0; i < n; i++) {
		if ((o = api_secret_json(list[i])) == NULL ||
		    json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			secret_list_free(list, n);
			api_refuse(call, "secret.list", 500, "internal_error", NULL, NULL);
			return;
		}
	}
	secret_list_free(list, n);
	api_reply_audited(call, "secret.list", "ok", NULL, 200,
	    json_pack("{s:o}", "secrets", arr), NULL, NULL);
}

/* ---- key rotation ------------------------------------------------------------------- */

static atomic_int api_rotating;

struct api_rotation {
	struct api_call *call;
	int signing;		/* 0: data key, 1: signing key */
	struct vault_activation *act;
	int ran, fn_rc;		/* api_rotation_fn ran, and its result */
	char detail[64];
};

/*
 * On the commit thread, inside the batch: the new key's rows, in the same transaction
 * as this request's audit record. A rotation that cannot be written is audited as such:
 * CB_ERR_DENIED, as grant.c's refusals in the transaction, so that the op's rc tells
 * that record apart from a batch that failed (a full disk fails both with CB_ERR_DB).
 */
static int
api_rotation_fn(struct store *wst, struct commit_op *op)
{
	struct api_rotation *r = op->arg;

	r->ran = 1;
	r->fn_rc = vault_activation_write(r->call->b->vault, wst, r->act);
	if (r->fn_rc != 0) {
		op->audit.outcome = "rotation_failed";
		snprintf(r->detail, sizeof(r->detail), "%s", r->signing ? "signing" : "data");
		return CB_ERR_DENIED;
	}
	if (!r->signing)
		snprintf(r->detail, sizeof(r->detail), "data %lld",
		    (long long)vault_activation_key_id(r->act));
	return 0;
}

static void *
api_rotation_thread(void *arg)
{
	struct api_rotation *r = arg;
	struct api_call *call = r->call;
	struct vault *v = call->b->vault;
	struct commit_op op;
	struct store *st = NULL;
	char why[256];
	json_t *body = NULL;
	int rc, activated = 0;

	rc = store_open(call->b->conf->database, STORE_NOCHECK, &st, why, sizeof(why));
	if (rc != 0)
		log_warnx("key rotation: %s", why);
	else
		rc = vault_activation_new(v, st, r->signing, util_now() + GRANT_TTL_MAX, &r->act);
	if (rc != 0) {
		log_warnx("%s key rotation failed: %s", r->signing ? "signing" : "data",
		    cb_strerror(rc));
		store_close(st);
		atomic_store(&api_rotating, 0);
		api_refuse(call, "key.rotate", 500, "rotation_failed", NULL,
		    r->signing ? "signing" : "data");
		free(r);
		return NULL;
	}
	if (r->signing)
		snprintf(r->detail, sizeof(r->detail), "signing %s", vault_activation_kid(r->act));
	memset(&op, 0, sizeof(op));
	op.fn = api_rotation_fn;
	op.arg = r;
	op.audit.actor = call->who->id;
	op.audit.role = conf_role_name(call->who->role);
	op.audit.action = "key.rotate";
	op.audit.outcome = "ok";
	op.audit.detail = r->detail;
	if ((rc = commit_run(call->b->commit, &op)) == 0) {
		activated = 1;
		vault_activation_apply(v, r->act);
		if (r->signing)
			body = json_pack("{s:s, s:s}", "kind", "signing", "kid",
			    vault_activation_kid(r->act));
		else
			body = json_pack("{s:s, s:I}", "kind", "data", "key_id",
			    (json_int_t)vault_activation_key_id(r->act));
		log_info("%s key rotated by %s: %s", r->signing ? "signing" : "data",
		    call->who->id, r->detail);
		/* Re-sealing every version under the new data key: resumable, at the next
		 * rotation or start-up, if it fails now. */
		if (!r->signing && (rc = vault_resume_rotation(v, st)) != 0)
			log_warnx("data key rotation: the new key is active, re-sealing under it "
			    "failed: %s (the next rotation or start finishes it)", cb_strerror(rc));
	} else
		log_warnx("%s key rotation failed: %s", r->signing ? "signing" : "data",
		    cb_strerror(rc == CB_ERR_DENIED ? r->fn_rc : rc));
	store_close(st);
	vault_activation_free(r->act);
	atomic_store(&api_rotating, 0);
	/* The audit record is durable with the rotation or its failure: answer directly. */
	if (rc == 0)
		call->reply(call, 200, body, 0);	/* transferred */
	else {
		json_decref(body);
		/*
		 * rotation_failed: a durable record says so (or, activated, says ok). Else
		 * nothing is durable, not even the record: a batch that failed (its
		 * transaction lost before this op ran, or its COMMIT), or closing.
		 */
		if (rc == CB_ERR_DENIED || activated)
			api_error(call, 500, "rotation_failed");
		else if (rc == CB_ERR_BUSY && !r->ran)
			api_error(call, 503, "unavailable");
		else
			api_error(call, 500, "internal_error");
	}
	free(r);
	return NULL;
}

static void
api_keys_rotate(struct api_call *call)
{
	static const char *const fields[] = { "kind", NULL };
	struct api_rotation *r;
	const char *code = NULL, *field = NULL, *kind = NULL;
	pthread_attr_t attr;
	pthread_t t;
	int expected = 0, rc;

	if (json_only_fields(call->body, fields, &code, &field) != 0) {
		api_refuse(call, "key.rotate", 400, code, field, NULL);
		return;
	}
	if (json_get_string(call->body, "kind", 1, 16, &kind, &code) != 0) {
		api_refuse(call, "key.rotate", 400, code, "kind", NULL);
		return;
	}
	if (strcmp(kind, "data") != 0 && strcmp(kind, "signing") != 0) {
		api_refuse(call, "key.rotate", 400, JSON_E_INVALID_VALUE, "kind", NULL);
		return;
	}
	if (!atomic_compare_exchange_strong(&api_rotating, &expected, 1)) {
		api_refuse(call, "key.rotate", 409, "rotation_in_progress", NULL, kind);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		atomic_store(&api_rotating, 0);
		api_error(call, 500, "internal_error");
		return;
	}
	r->call = call;
	r->signing = strcmp(kind, "signing") == 0;
	/* It takes a while (re-sealing every version): never on a server thread. */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&t, &attr, api_rotation_thread, r);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(r);
		atomic_store(&api_rotating, 0);
		api_error(call, 503, "unavailable");
	}
}

/* ---- audit ---------------------------------------------------------------------------- */

static json_t *
api_audit_row_json(const struct store_audit_row *r)
{
	char prev[2 * STORE_AUDIT_HASH_LEN + 1], hash[2 * STORE_AUDIT_HASH_LEN + 1];

	util_hex(r->prev_hash, sizeof(r->prev_hash), prev);
	util_hex(r->hash, sizeof(r->hash), hash);
	return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s, s:s}",
	    "seq", (json_int_t)r->seq, "ts", (json_int_t)r->ts, "actor", r->actor,
	    "role", r->role, "action", r->action, "outcome", r->outcome,
	    "grant_id", r->grant_id, "sandbox_id", r->sandbox_id, "detail", r->detail,
	    "prev_hash", prev, "hash", hash);
}

static void
api_audit_list(struct api_call *call)
{
	struct store_audit_row *rows = NULL;
	struct store *st;
	json_t *arr = NULL, *o;
	long long after = 0, limit = API_AUDIT_LIMIT_DEFAULT;
	size_t n = 0, i;

	if (call->query_bad) {
		api_refuse(call, "audit.list", 400, JSON_E_INVALID_VALUE, "query", NULL);
		return;
	}
	if (call->query_after != NULL &&
	    util_strtoll(call->query_after, 0, INT64_MAX, &after) != 0) {
		api_refuse(call, "audit.list", 400, JSON_E_INVALID_VALUE, "after", NULL);
		return;
	}
	if (call->query_limit != NULL &&
	    util_strtoll(call->query_limit, 1, STORE_AUDIT_LIST_MAX, &limit) != 0) {
		api_refuse(call, "audit.list", 400, JSON_E_INVALID_VALUE, "limit", NULL);
		return;
	}
	if ((st = api_reader(call)) == NULL ||
	    store_audit_list(st, (int64_t)after, (int)limit, &rows, &n) != 0 ||
	    (arr = json_array()) == NULL) {
		store_audit_rows_free(rows, n);
		api_refuse(call, "audit.list", 500, "internal_error", NULL, NULL);
		return;
	}
	for (i = 0; i < n; i++) {
		if ((o = api_audit_row_json(&rows[i])) == NULL ||
		    json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			store_audit_rows_free(rows, n);
			api_refuse(call, "audit.list", 500, "internal_error", NULL, NULL);
			return;
		}
	}
	store_audit_rows_free(rows, n);
	api_reply_audited(call, "audit.list", "ok", NULL, 200,
	    json_pack("{s:o}", "records", arr), NULL, NULL);
}

static void
api_audit_verify(struct api_call *call)
{
	struct audit_report rep;
	uint8_t key[CRYPTO_KEY_LEN];
	struct store *st;
	json_t *o;
	int rc;

	memset(&rep, 0, sizeof(rep));
	if ((st = api_reader(call)) == NULL ||
	    vault_audit_key(call->b->vault, key) != 0) {
		api_refuse(call, "audit.verify", 500, "internal_error", NULL, NULL);
		return;
	}
	rc = audit_verify(st, key, &rep);
	explicit_bzero(key, sizeof(key));
	if (rc == 0)
		o = json_pack("{s:b, s:I, s:b, s:I, s:I}", "intact", 1, "records",
		    (json_int_t)rep.records, "authenticated", rep.authenticated,
		    "authenticated_from", (json_int_t)rep.authenticated_from, "adopted",
		    (json_int_t)rep.adopted);
	else if (rc == CB_ERR_CORRUPT)
		o = json_pack("{s:b, s:I, s:I, s:s, s:b}", "intact", 0, "records",
		    (json_int_t)rep.records, "first_bad_seq", (json_int_t)rep.first_bad_seq,
		    "problem", rep.problem, "authenticated", rep.authenticated);
	else {
		log_warnx("audit verify: %s", cb_strerror(rc));
		api_refuse(call, "audit.verify", 500, "internal_error", NULL, NULL);
		return;
	}
	api_reply_audited(call, "audit.verify", rc == 0 ? "ok" : "corrupt", NULL, 200, o,
	    NULL, NULL);
}

/* ---- health and metrics --------------------------------------------------------------- */

static void
api_healthz(struct api_call *call)
{
	call->reply(call, 200, json_pack("{s:s}", "status", "ok"), 0);
}

static void
api_metrics(struct api_call *call)
{
	char *text = NULL;
	size_t len = 0;

	if (metrics_render(call->b->metrics, call->b->commit, &text, &len) != 0) {
		api_error(call, 500, "internal_error");
		return;
	}
	call->raw_body = text;	/* transferred */
	call->raw_len = len;
	call->content_type = "text/plain; version=0.0.4; charset=utf-8";
	call->reply(call, 200, NULL, 0);
}
