/*
 * test_grant.c: the pure parts of grants: header names, templates and their
 * rendering (incl. Basic), binding validation with defaults, and matching a request
 * against a binding with the most specific refusal code. Then the grant SQL (use
 * counts and why a use is refused, revocation, a sandbox's live grants, bounded
 * purges) and the background purge thread through the commit queue.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
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
#include "testutil.h"
#include "util.h"
#include "vault.h"

static void
test_header_names(void **state)
{
	static const struct {
		const char *name;
		int ok;
	} cases[] = {
		{ "Authorization", 1 }, { "X-Api-Key", 1 }, { "x-goog-api-key", 1 },
		{ "PRIVATE-TOKEN", 1 }, { "a!#$%&'*+-.^_`|~9", 1 },
		{ "", 0 }, { "Bad Header", 0 }, { "Bad:Header", 0 }, { "X\r\nY", 0 },
		{ "Host", 0 }, { "host", 0 }, { "Content-Length", 0 },
		{ "transfer-encoding", 0 }, { "Connection", 0 }, { "Keep-Alive", 0 },
		{ "Upgrade", 0 }, { "TE", 0 }, { "Trailer", 0 }, { "Proxy-Authorization", 0 },
		{ "proxy-connection", 0 }, { "\xc3\xa9", 0 }, { "(comment)", 0 },
		{ "X-012345678901234567890123456789012345678901234567890123456789abcd", 0 },	/* 66 */
	};
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++)
		if ((grant_header_valid(cases[i].name) == 0) != cases[i].ok)
			fail_msg("header \"%s\": expected %s", cases[i].name,
			    cases[i].ok ? "valid" : "refused");
	assert_int_equal(grant_header_valid(NULL), CB_ERR_INVAL);
}

static void
test_templates_valid(void **state)
{
	static const struct {
		const char *t;
		int ok;
	} cases[] = {
		{ "Bearer {secret}", 1 }, { "{secret}", 1 }, { "token {secret}", 1 },
		{ "key={secret};v=1", 1 }, { "basic:x-access-token", 1 }, { "basic:", 1 },
		{ "", 0 }, { "Bearer", 0 }, { "{secret} {secret}", 0 }, { "{Secret}", 0 },
		{ "Bearer {secret}\r\nX: y", 0 }, { "Bearer\t{secret}", 0 },
		{ "basic:us:er", 0 }, { "basic:{secret}", 0 }, { "Bearer {secret}\x7f", 0 },
		{ "Basic:user", 0 },	/* only the lower-case form is Basic; this has no {secret} */
	};
	char big[GRANT_TEMPLATE_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++)
		if ((grant_template_valid(cases[i].t) == 0) != cases[i].ok)
			fail_msg("template \"%s\": expected %s", cases[i].t,
			    cases[i].ok ? "valid" : "refused");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "{secret}", 8);
	assert_int_equal(grant_template_valid(big), CB_ERR_INVAL);
	big[GRANT_TEMPLATE_MAX] = '\0';
	assert_int_equal(grant_template_valid(big), 0);
}

static void
render_eq(const char *tmpl, const char *secret, const char *want)
{
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(grant_render(tmpl, (const uint8_t *)secret, strlen(secret), &out,
	    &len), 0);
	assert_non_null(out);
	assert_string_equal(out, want);
	assert_int_equal(len, strlen(want));
	util_wipe_free(out, len + 1);
}

static void
test_render(void **state)
{
	char *out = (char *)1;
	size_t len = 1;

	(void)state;
	render_eq("Bearer {secret}", "ghp_abc", "Bearer ghp_abc");
	render_eq("{secret}", "k", "k");
	render_eq("pre {secret} post", "S", "pre S post");
	render_eq("token {secret}", "{secret}", "token {secret}");	/* no re-expansion */
	/* RFC 7617 example: Aladdin:open sesame */
	render_eq("basic:Aladdin", "open sesame", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
	render_eq("basic:x-access-token", "ghp_1", "Basic eC1hY2Nlc3MtdG9rZW46Z2hwXzE=");
	render_eq("basic:", "sk_live", "Basic OnNrX2xpdmU=");
	assert_int_equal(grant_render("Bearer", (const uint8_t *)"x", 1, &out, &len),
	    CB_ERR_INVAL);
	assert_null(out);
	assert_int_equal(len, 0);
}

/* Parses a binding from JSON text; returns rc and fills code/field. */
static int
parse(const char *text, json_t **out, const char **code, const char **field)
{
	json_t *in;
	int rc;

	static char fieldcopy[64];

	in = json_loads(text, 0, NULL);
	assert_non_null(in);
	rc = grant_binding_parse(in, out, code, field);
	/* An unknown member's name is borrowed from in: keep a copy. */
	if (*field != NULL) {
		util_strlcpy(fieldcopy, *field, sizeof(fieldcopy));
		*field = fieldcopy;
	}
	json_decref(in);
	return rc;
}

static void
test_binding_defaults(void **state)
{
	const char *code, *field;
	json_t *b;

	(void)state;
	assert_int_equal(parse("{\"secret\": \"github\", \"host\": \"API.GitHub.com.\"}", &b,
	    &code, &field), 0);
	assert_string_equal(json_string_value(json_object_get(b, "host")), "api.github.com");
	assert_int_equal(json_integer_value(json_object_get(b, "port")), 443);
	assert_string_equal(json_string_value(json_object_get(b, "header")), "Authorization");
	assert_string_equal(json_string_value(json_object_get(b, "template")),
	    "Bearer {secret}");
	assert_true(json_is_false(json_object_get(b, "inject")));
	assert_null(json_object_get(b, "methods"));
	assert_null(json_object_get(b, "path_prefix"));
	json_decref(b);

	assert_int_equal(parse("{\"secret\": \"s\", \"host\": \"h.example\", \"port\": 8443,"
	    " \"methods\": [\"GET\", \"POST\"], \"path_prefix\": \"/repos/acme/\","
	    " \"header\": \"X-Key\", \"template\": \"basic:u\", \"inject\": true}", &b, &code,
	    &field), 0);
	assert_int_equal(json_integer_value(json_object_get(b, "port")), 8443);
	assert_int_equal(json_array_size(json_object_get(b, "methods")), 2);
	assert_string_equal(json_string_value(json_object_get(b, "path_prefix")),
	    "/repos/acme/");
	assert_true(json_is_true(json_object_get(b, "inject")));
	json_decref(b);
}

static void
test_binding_refusals(void **state)
{
	static const struct {
		const char *json;
		const char *code;
		const char *field;
	} cases[] = {
		{ "{\"host\": \"h\"}", JSON_E_MISSING_FIELD, "secret" },
		{ "{\"secret\": \"s\"}", JSON_E_MISSING_FIELD, "host" },
		{ "{\"secret\": 1, \"host\": \"h\"}", JSON_E_WRONG_TYPE, "secret" },
		{ "{\"secret\": \"-bad\", \"host\": \"h\"}", JSON_E_INVALID_VALUE, "secret" },
		{ "{\"secret\": \"s\", \"host\": \"bad host\"}", JSON_E_INVALID_VALUE, "host" },
		{ "{\"secret\": \"s\", \"host\": \"\"}", JSON_E_INVALID_VALUE, "host" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"port\": 0}", JSON_E_INVALID_VALUE,
		    "port" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"port\": 65536}", JSON_E_INVALID_VALUE,
		    "port" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"port\": \"443\"}", JSON_E_WRONG_TYPE,
		    "port" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"methods\": []}", JSON_E_INVALID_VALUE,
		    "methods" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"methods\": \"GET\"}", JSON_E_WRONG_TYPE,
		    "methods" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"methods\": [\"get\"]}",
		    JSON_E_INVALID_VALUE, "methods" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"methods\": [1]}", JSON_E_WRONG_TYPE,
		    "methods" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"path_prefix\": \"repos\"}",
		    JSON_E_INVALID_VALUE, "path_prefix" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"path_prefix\": \"/a/../b/\"}",
		    JSON_E_INVALID_VALUE, "path_prefix" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"header\": \"Host\"}",
		    JSON_E_INVALID_VALUE, "header" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"header\": \"Proxy-Authorization\"}",
		    JSON_E_INVALID_VALUE, "header" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"header\": \"A B\"}",
		    JSON_E_INVALID_VALUE, "header" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"template\": \"Bearer\"}",
		    JSON_E_INVALID_VALUE, "template" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"inject\": 1}", JSON_E_WRONG_TYPE,
		    "inject" },
		{ "{\"secret\": \"s\", \"host\": \"h\", \"extra\": 1}", JSON_E_UNKNOWN_FIELD,
		    "extra" },
	};
	const char *code, *field;
	json_t *b, *in;
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		b = (json_t *)1;
		if (parse(cases[i].json, &b, &code, &field) != CB_ERR_INVAL)
			fail_msg("accepted: %s", cases[i].json);
		assert_null(b);
		if (code == NULL || strcmp(code, cases[i].code) != 0 || field == NULL ||
		    strcmp(field, cases[i].field) != 0)
			fail_msg("%s: got %s/%s, want %s/%s", cases[i].json,
			    code ? code : "(null)", field ? field : "(null)", cases[i].code,
			    cases[i].field);
	}
	/* Not an object at all. */
	in = json_string("x");
	assert_int_equal(grant_binding_parse(in, &b, &code, &field), CB_ERR_INVAL);
	assert_null(b);
	json_decref(in);
}

static void
test_match(void **state)
{
	static const struct {
		const char *host;
		long long port;
		const char *method;
		const char *path;
		int want;
	} cases[] = {
		{ "api.github.com", 443, "GET", "/repos/acme/x", GRANT_MATCH },
		{ "api.github.com", 443, "POST", "/repos/acme/x/issues?state=open", GRANT_MATCH },
		{ "api.github.com", 443, "GET", "/repos/acme/", GRANT_MATCH },
		{ "api.github.com", 443, "GET", "/repos/acme", GRANT_MISMATCH_PATH },
		{ "api.github.com", 443, "GET", "/repos/acme-evil/x", GRANT_MISMATCH_PATH },
		{ "api.github.com", 443, "GET", "/repos/other/x", GRANT_MISMATCH_PATH },
		{ "api.github.com", 443, "DELETE", "/repos/acme/x", GRANT_MISMATCH_METHOD },
		{ "api.github.com", 8443, "GET", "/repos/acme/x", GRANT_MISMATCH_DEST },
		{ "github.com", 443, "GET", "/repos/acme/x", GRANT_MISMATCH_DEST },
		{ "api.github.com.evil", 443, "GET", "/repos/acme/x", GRANT_MISMATCH_DEST },
	};
	const char *code, *field;
	json_t *b, *any;
	size_t i;
	int m;

	(void)state;
	assert_int_equal(parse("{\"secret\": \"github\", \"host\": \"api.github.com\","
	    " \"methods\": [\"GET\", \"POST\"], \"path_prefix\": \"/repos/acme/\"}", &b, &code,
	    &field), 0);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		m = grant_binding_match(b, cases[i].host, cases[i].port, cases[i].method,
		    cases[i].path);
		if (m != cases[i].want)
			fail_msg("%s %s:%lld%s: got %d want %d", cases[i].method, cases[i].host,
			    cases[i].port, cases[i].path, m, cases[i].want);
	}
	json_decref(b);

	/* No methods, no prefix: any method and path of the destination. */
	assert_int_equal(parse("{\"secret\": \"k\", \"host\": \"llm.example\"}", &any, &code,
	    &field), 0);
	assert_int_equal(grant_binding_match(any, "llm.example", 443, "PATCH", "/v1/x"),
	    GRANT_MATCH);
	assert_int_equal(grant_binding_match(any, "llm.example", 80, "GET", "/"),
	    GRANT_MISMATCH_DEST);
	json_decref(any);

	assert_string_equal(grant_mismatch_code(GRANT_MISMATCH_DEST), "destination_mismatch");
	assert_string_equal(grant_mismatch_code(GRANT_MISMATCH_METHOD), "method_not_allowed");
	assert_string_equal(grant_mismatch_code(GRANT_MISMATCH_PATH), "path_not_allowed");
}

/* The traversal and encoding tricks never reach matching: normalisation refuses them. */
static void
test_path_tricks_refused(void **state)
{
	static const char *const bad[] = { "/repos/acme/../x", "/repos/acme/%2e%2e/x",
	    "/repos/acme%2Fx", "/repos/acme/%2E%2E/x", "/repos/acme/./x", "repos/acme/x",
	    "/repos/acme\\x" };
	char out[DEST_PATH_MAX + 1];
	size_t i;

	(void)state;
	for (i = 0; i < UTIL_ARRAY_LEN(bad); i++)
		if (dest_path_normalise(bad[i], out, sizeof(out)) == 0)
			fail_msg("normalised: %s -> %s", bad[i], out);
}

/* ------------------------------------------- decrypted values (resolve) */

struct scfix {
	char dir[64];
	char db[128];
	char key[128];
	struct store *st;
	struct vault *v;
};

static void
sc_put(struct scfix *f, const char *name, const char *value)
{
	char *hosts[] = { "api.example.com" };
	int64_t ver = 0;

	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(secret_put(f->st, f->v, name, (const uint8_t *)value, strlen(value),
	    hosts, 1, 3600, 1000, &ver), 0);
	assert_int_equal(store_commit(f->st), 0);
}

/* Reveals name; returns its rc, and the value must be want when want is not NULL. */
static int
sc_reveal(struct scfix *f, const char *name, const char *want)
{
	uint8_t *val = NULL;
	size_t len = 0;
	int rc;

	rc = secret_reveal(f->st, f->v, name, &val, &len);
	if (rc == 0) {
		assert_non_null(val);
		assert_int_equal(val[len], '\0');
		if (want != NULL) {
			assert_int_equal(len, strlen(want));
			assert_memory_equal(val, want, len);
		}
		util_wipe_free(val, len + 1);
	} else
		assert_null(val);
	return rc;
}

/* Another thread: the count it sees, then whether it reveals "a" as "value-four". */
static void *
sc_thread(void *arg)
{
	struct scfix *f = arg;
	size_t *n = malloc(2 * sizeof(*n)), len = 0;
	uint8_t *val = NULL;

	if (n == NULL)
		return NULL;
	n[0] = secret_cache_count();
	n[1] = 0;
	if (secret_reveal(f->st, f->v, "a", &val, &len) == 0) {
		n[1] = len == strlen("value-four") && memcmp(val, "value-four", len) == 0;
		util_wipe_free(val, len + 1);
	}
	return n;
}

/* Puts n secrets named sNNNN, each its own name as value, in one transaction. */
static void
sc_put_many(struct scfix *f, int n)
{
	char *hosts[] = { "api.example.com" };
	char name[32];
	int64_t ver = 0;
	int i;

	assert_int_equal(store_begin(f->st), 0);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(secret_put(f->st, f->v, name, (const uint8_t *)name,
		    strlen(name), hosts, 1, 3600, 1000, &ver), 0);
	}
	assert_int_equal(store_commit(f->st), 0);
}

/*
 * secret_reveal's cache (and secret_get's per-thread one, of metadata): a hit does not
 * read the store (a row deleted behind its back is still served), an invalidation wipes
 * every entry (the deleted secret is then not found), a new version or new metadata is
 * seen at once (secret_put invalidates), at most SECRET_CACHE_MAX values are held, values
 * over 256 bytes are not held, every thread shares it (a value one thread decrypted is a
 * hit in another), and secret_cache_clear empties it.
 */
static void
test_secret_cache(void **state)
{
	struct scfix fx, *f = &fx;
	char why[512], name[32], big[300];
	char *other_hosts[] = { "a.example", "b.example" };
	struct secret_meta *m = NULL;
	int64_t ver = 0;
	pthread_t th;
	void *ret;
	size_t *n;
	int i, held;

	(void)state;
	memset(f, 0, sizeof(*f));
	util_strlcpy(f->dir, "/tmp/test_grant_sc.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%.63s/cb.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%.63s/master.key", f->dir);
	assert_int_equal(vault_create_master_key(f->key), 0);
	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	if (vault_open(f->st, f->key, &f->v, why, sizeof(why)) != 0)
		fail_msg("vault_open: %s", why);
	secret_cache_clear();
	assert_int_equal(secret_cache_count(), 0);

	sc_put(f, "a", "value-one");
	assert_int_equal(sc_reveal(f, "a", "value-one"), 0);
	assert_int_equal(secret_cache_count(), 1);
	assert_int_equal(secret_get(f->st, "a", &m), 0);	/* metadata filed too */
	secret_meta_free(m);
	/* Behind the cache's back (no invalidation): the hit does not look at the store. */
	assert_int_equal(store_secret_delete(f->st, "a"), 0);
	assert_int_equal(sc_reveal(f, "a", "value-one"), 0);
	assert_int_equal(secret_get(f->st, "a", &m), 0);
	assert_string_equal(m->hosts[0], "api.example.com");
	secret_meta_free(m);
	/* Invalidated: every entry goes, and the store is asked again. */
	secret_cache_invalidate();
	assert_int_equal(sc_reveal(f, "a", NULL), CB_ERR_NOTFOUND);
	assert_int_equal(secret_cache_count(), 0);
	assert_int_equal(secret_get(f->st, "a", &m), CB_ERR_NOTFOUND);
	assert_null(m);
	/* New metadata through secret_put is seen at once. */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(secret_put(f->st, f->v, "a", (const uint8_t *)"v", 1, other_hosts, 2,
	    60, 1000, &ver), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(secret_get(f->st, "a", &m), 0);
	assert_int_equal(m->nhosts, 2);
	assert_string_equal(m->hosts[1], "b.example");
	assert_int_equal(m->max_ttl_s, 60);
	secret_meta_free(m);
	assert_int_equal(secret_get(f->st, "a", &m), 0);	/* and a copy of the filed one */
	assert_int_equal(m->nhosts, 2);
	assert_string_equal(m->hosts[0], "a.example");
	secret_meta_free(m);
	/* The allowlist as filed now, from the cache (no copy) and from the store. */
	assert_int_equal(secret_allows_host(f->st, "a", "b.example"), 0);
	assert_int_equal(secret_allows_host(f->st, "a", "api.example.com"), CB_ERR_DENIED);
	assert_int_equal(secret_allows_host(f->st, "nope", "b.example"), CB_ERR_NOTFOUND);
	secret_cache_invalidate();
	assert_int_equal(secret_allows_host(f->st, "a", "a.example"), 0);
	assert_int_equal(secret_allows_host(f->st, "a", "c.example"), CB_ERR_DENIED);
	/* A new version through secret_put is seen at once. */
	sc_put(f, "a", "value-two");
	assert_int_equal(sc_reveal(f, "a", "value-two"), 0);
	sc_put(f, "a", "value-three");
	assert_int_equal(sc_reveal(f, "a", "value-three"), 0);
	/* Deleting through secret_delete too. */
	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(secret_delete(f->st, "a"), 0);
	assert_int_equal(store_commit(f->st), 0);
	assert_int_equal(sc_reveal(f, "a", NULL), CB_ERR_NOTFOUND);

	/* Bounded: more secrets revealed than it holds, each still right. */
	sc_put_many(f, SECRET_CACHE_MAX + 100);
	for (i = 0; i < SECRET_CACHE_MAX + 100; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(sc_reveal(f, name, name), 0);
	}
	assert_true(secret_cache_count() > SECRET_CACHE_MAX / 2);
	assert_true(secret_cache_count() <= SECRET_CACHE_MAX);
	for (i = SECRET_CACHE_MAX + 99; i >= 0; i--) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(sc_reveal(f, name, name), 0);
	}
	/*
	 * The benchmark's 1,000 secrets in use are (nearly) all held, whichever sets their
	 * names fall in: with 1,024 sets of 2, a tenth of them were evicted by others.
	 */
	secret_cache_clear();
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(sc_reveal(f, name, name), 0);
	}
	assert_true(secret_cache_count() >= 970);
	/*
	 * Their metadata too, in this thread's cache: with the rows deleted behind its back,
	 * (nearly) all are still found, i.e. hits. 64 direct-mapped slots held at most 64.
	 */
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(secret_get(f->st, name, &m), 0);
		secret_meta_free(m);
	}
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		assert_int_equal(store_secret_delete(f->st, name), 0);
	}
	for (i = 0, held = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "s%04d", i);
		if (secret_get(f->st, name, &m) == 0) {
			assert_string_equal(m->name, name);
			held++;
			secret_meta_free(m);
		}
	}
	assert_true(held >= 970);
	/* A value over 256 bytes is revealed but not held. */
	secret_cache_clear();
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sc_put(f, "big", big);
	assert_int_equal(sc_reveal(f, "big", big), 0);
	assert_int_equal(secret_cache_count(), 0);

	/*
	 * Another thread sees what this one filed: "a" deleted behind the cache's back is
	 * still revealed there (a hit, not a store read).
	 */
	secret_cache_clear();
	sc_put(f, "a", "value-four");
	assert_int_equal(sc_reveal(f, "a", "value-four"), 0);
	assert_int_equal(store_secret_delete(f->st, "a"), 0);
	assert_int_equal(pthread_create(&th, NULL, sc_thread, f), 0);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_non_null(n = ret);
	assert_int_equal(n[0], 1);
	assert_int_equal(n[1], 1);
	free(n);
	assert_int_equal(secret_cache_count(), 1);
	secret_cache_clear();
	assert_int_equal(secret_cache_count(), 0);
	assert_int_equal(sc_reveal(f, "a", NULL), CB_ERR_NOTFOUND);

	vault_free(f->v);
	store_close(f->st);
	testutil_rm_dir(f->dir);
}

/* ------------------------------------- resolve's filed grant rows (handlers) */

struct tcall {
	struct api_call call;	/* first: the reply casts back */
	pthread_mutex_t lock;
	int done;
	int status;
	json_t *body;
};

static void
tcall_reply(struct api_call *call, int status, json_t *body, int sensitive)
{
	struct tcall *t = (struct tcall *)(void *)call;
	char *again;

	if (body == NULL && call->raw_body != NULL) {
		/* A raw answer: JSON, sensitive, in exactly the compact form jansson writes. */
		assert_true(sensitive);
		assert_string_equal(call->content_type, "application/json");
		assert_int_equal(strlen(call->raw_body), call->raw_len);
		body = json_loadb(call->raw_body, call->raw_len, 0, NULL);
		assert_non_null(body);
		again = json_dumps(body, JSON_COMPACT);
		assert_non_null(again);
		assert_string_equal(again, call->raw_body);
		util_wipe_free(again, strlen(again) + 1);
		util_wipe_free(call->raw_body, call->raw_len + 1);
		call->raw_body = NULL;
	}
	pthread_mutex_lock(&t->lock);
	t->status = status;
	t->body = body;
	t->done = 1;
	pthread_mutex_unlock(&t->lock);
}

/* Runs handler on a call with body (JSON text) and path_arg; waits (bounded) for the answer. */
static int
run_handler(struct broker *b, const struct identity *who, void (*handler)(struct api_call *),
    const char *body, const char *path_arg, json_t **out)
{
	struct tcall *t = calloc(1, sizeof(*t));
	const char *code = NULL;
	int i, done = 0, status;

	assert_non_null(t);
	assert_int_equal(pthread_mutex_init(&t->lock, NULL), 0);
	t->call.b = b;
	t->call.who = who;
	t->call.peer = "test";
	t->call.path_arg = path_arg;
	t->call.route = "test";
	t->call.reply = tcall_reply;
	t->call.start_us = util_mono_us();
	if (body != NULL)
		assert_int_equal(json_parse_object(body, strlen(body), &t->call.body, &code), 0);
	handler(&t->call);
	for (i = 0; i < 500 && !done; i++) {
		pthread_mutex_lock(&t->lock);
		done = t->done;
		pthread_mutex_unlock(&t->lock);
		if (!done)
			usleep(10000);
	}
	assert_true(done);
	status = t->status;
	*out = t->body;
	json_decref(t->call.body);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return status;
}

static const char *
body_str(json_t *b, const char *key)
{
	const char *v = json_string_value(json_object_get(b, key));

	assert_non_null(v);
	return v;
}

/* A resolve of token for sandbox sbx: its status; *value the header's value or "". */
static int
resolve_once(struct broker *b, const struct identity *proxy, const char *token,
    const char *sbx, char *value, size_t len)
{
	char body[1024];
	json_t *out = NULL, *h;
	int st;

	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"sandbox_id\":\"%s\","
	    "\"host\":\"api.example.com\",\"port\":443,\"method\":\"GET\",\"path\":\"/x\"}",
	    token, sbx);
	st = run_handler(b, proxy, grant_handle_resolve, body, NULL, &out);
	value[0] = '\0';
	h = json_array_get(json_object_get(out, "headers"), 0);
	if (h != NULL)
		util_strlcpy(value, body_str(h, "value"), len);
	else if (out != NULL && json_object_get(out, "error") != NULL)
		util_strlcpy(value, body_str(out, "error"), len);
	json_decref(out);
	return st;
}

/* Mints a grant of "gh" for sbx; *token and *id copied out. */
static void
mint_one(struct broker *b, const struct identity *harness, const char *sbx, int max_uses,
    char *token, size_t tlen, char *id, size_t idlen)
{
	char body[512];
	json_t *out = NULL;

	snprintf(body, sizeof(body), "{\"sandbox_id\":\"%s\",\"ttl_s\":600,%s\"bindings\":"
	    "[{\"secret\":\"gh\",\"host\":\"api.example.com\"}]}", sbx,
	    max_uses > 0 ? "\"max_uses\":2," : "");
	assert_int_equal(run_handler(b, harness, grant_handle_mint, body, NULL, &out), 201);
	util_strlcpy(token, body_str(out, "token"), tlen);
	util_strlcpy(id, body_str(out, "grant_id"), idlen);
	json_decref(out);
}

/*
 * A token resolve files the grant row it checked (per thread) and uses it while no
 * revocation happened since. A revocation through the revoke handler (one grant, a
 * whole sandbox) is seen by the very next resolve; one written behind the broker's
 * back still fails the resolve (the use counted in the transaction reads the row); a
 * use limit is enforced; a filed row still refuses another sandbox.
 */
#define WAYS_MINTS	400	/* mints to find two IDs of one set (of 2,048): fails with odds ~e^-39 */

static void
test_resolve_row_cache(void **state)
{
	struct scfix fx, *f = &fx;
	struct identity harness, proxy;
	struct broker_conf conf;
	struct broker b;
	char why[512], tok[1024], id[64], tok2[1024], id2[64], val[256], bad[64], sql[512];
	struct { char tok[1024], id[64]; } *ways, *w[2];
	json_t *out = NULL;
	int changed = 0, i, n;

	(void)state;
	memset(f, 0, sizeof(*f));
	util_strlcpy(f->dir, "/tmp/test_grant_rc.XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%.63s/cb.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%.63s/master.key", f->dir);
	assert_int_equal(vault_create_master_key(f->key), 0);
	assert_int_equal(store_open(f->db, STORE_CREATE, &f->st, why, sizeof(why)), 0);
	if (vault_open(f->st, f->key, &f->v, why, sizeof(why)) != 0)
		fail_msg("vault_open: %s", why);
	sc_put(f, "gh", "ghp_value");
	memset(&harness, 0, sizeof(harness));
	harness.id = (char *)(uintptr_t)"spiffe://t/harness";
	harness.role = ROLE_HARNESS;
	harness.max_ttl_s = 3600;
	harness.all_secrets = 1;
	memset(&proxy, 0, sizeof(proxy));
	proxy.id = (char *)(uintptr_t)"spiffe://t/proxy";
	proxy.role = ROLE_PROXY;
	memset(&conf, 0, sizeof(conf));
	memset(&b, 0, sizeof(b));
	b.conf = &conf;
	b.vault = f->v;
	assert_int_equal(commit_open(f->db, NULL, &b.commit), 0);
	assert_int_equal(store_pool_new(f->db, &b.readers), 0);
	assert_int_equal(metrics_new(&b.metrics), 0);

	mint_one(&b, &harness, "s1", 0, tok, sizeof(tok), id, sizeof(id));
	for (i = 0; i < 2; i++) {
		assert_int_equal(resolve_once(&b, &proxy, tok, "s1", val, sizeof(val)), 200);
		assert_string_equal(val, "Bearer ghp_value");
	}
	/*
	 * Revoked behind the broker's back (no generation bump): the filed row passes the
	 * checks, but the use counted in the transaction reads the row and refuses.
	 */
	assert_int_equal(store_grant_revoke(f->st, id, util_now(), &changed), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s1", val, sizeof(val)), 403);
	assert_string_equal(val, "revoked");
	/* Through the handler: refused by the next resolve's own checks. */
	mint_one(&b, &harness, "s2", 0, tok2, sizeof(tok2), id2, sizeof(id2));
	assert_int_equal(resolve_once(&b, &proxy, tok2, "s2", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, tok2, "s2", val, sizeof(val)), 200);
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke, NULL, id2, &out), 200);
	json_decref(out);
	assert_int_equal(resolve_once(&b, &proxy, tok2, "s2", val, sizeof(val)), 403);
	assert_string_equal(val, "revoked");
	/* A whole sandbox. */
	mint_one(&b, &harness, "s3", 0, tok, sizeof(tok), id, sizeof(id));
	assert_int_equal(resolve_once(&b, &proxy, tok, "s3", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s3", val, sizeof(val)), 200);
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke_sandbox, NULL, "s3", &out),
	    200);
	json_decref(out);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s3", val, sizeof(val)), 403);
	assert_string_equal(val, "revoked");
	/* A use limit: counted every time. */
	mint_one(&b, &harness, "s4", 2, tok, sizeof(tok), id, sizeof(id));
	assert_int_equal(resolve_once(&b, &proxy, tok, "s4", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s4", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s4", val, sizeof(val)), 403);
	assert_string_equal(val, "used_up");
	/* The wrong sandbox and a wrong destination are still refused from a filed row. */
	mint_one(&b, &harness, "s5", 0, tok, sizeof(tok), id, sizeof(id));
	assert_int_equal(resolve_once(&b, &proxy, tok, "s5", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, tok, "s6", val, sizeof(val)), 403);
	assert_string_equal(val, "sandbox_mismatch");

	/* Grant IDs in a path: the current format and the first (32 hex) are found... */
	assert_int_equal(strlen(id), GRANT_ID_LEN);
	assert_int_equal(run_handler(&b, &harness, grant_handle_show, NULL, id, &out), 200);
	assert_string_equal(body_str(out, "grant_id"), id);
	json_decref(out);
	testutil_put_grant_full(f->st, 7, "s7", harness.id, util_now(), util_now() + 60, 0, 0, 0);
	assert_int_equal(strlen(testutil_grant_id(7)), GRANT_ID_LEN_V1);
	assert_int_equal(run_handler(&b, &harness, grant_handle_show, NULL, testutil_grant_id(7),
	    &out), 200);
	json_decref(out);
	/* ...any other length or upper case is not. */
	snprintf(bad, sizeof(bad), "%s0", testutil_grant_id(7));
	assert_int_equal(run_handler(&b, &harness, grant_handle_show, NULL, bad, &out), 404);
	json_decref(out);
	snprintf(bad, sizeof(bad), "%.*s", GRANT_ID_LEN - 1, id);
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke, NULL, bad, &out), 404);
	json_decref(out);
	snprintf(bad, sizeof(bad), "%s0", id);
	assert_int_equal(run_handler(&b, &harness, grant_handle_show, NULL, bad, &out), 404);
	json_decref(out);
	snprintf(bad, sizeof(bad), "%s", id);
	bad[GRANT_ID_LEN - 1] = 'A';
	assert_int_equal(run_handler(&b, &harness, grant_handle_show, NULL, bad, &out), 404);
	json_decref(out);

	/*
	 * Two grants whose IDs share a set of the cache both stay filed: mint until two do
	 * (bounded), resolve both, then change the first's destination behind the broker's
	 * back. Its filed row still answers, also after revocations in other sandboxes; once
	 * a revocation in its own sandbox moves its generation, the row is read again and
	 * the new destination refuses it.
	 */
	ways = calloc(WAYS_MINTS, sizeof(*ways));
	assert_non_null(ways);
	for (i = 0, n = -1; i < WAYS_MINTS && n < 0; i++) {
		mint_one(&b, &harness, "s8", 0, ways[i].tok, sizeof(ways[i].tok), ways[i].id,
		    sizeof(ways[i].id));
		for (n = i - 1; n >= 0; n--)
			if (grant_bcache_set(ways[n].id) == grant_bcache_set(ways[i].id))
				break;
	}
	assert_true(n >= 0);
	w[0] = &ways[n];
	w[1] = &ways[i - 1];
	for (i = 0; i < 2; i++) {
		assert_int_equal(resolve_once(&b, &proxy, w[i]->tok, "s8", val, sizeof(val)), 200);
		assert_string_equal(val, "Bearer ghp_value");
	}
	snprintf(sql, sizeof(sql), "UPDATE grants SET bindings = replace(bindings,"
	    " 'api.example.com', 'elsewhere.example') WHERE id = '%s'", w[0]->id);
	testutil_sql(f->db, sql);
	assert_int_equal(resolve_once(&b, &proxy, w[0]->tok, "s8", val, sizeof(val)), 200);
	assert_int_equal(resolve_once(&b, &proxy, w[1]->tok, "s8", val, sizeof(val)), 200);
	/* A revocation in another sandbox (s5's grant, s3 as a whole) leaves them filed... */
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke, NULL, id, &out), 200);
	json_decref(out);
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke_sandbox, NULL, "s3", &out),
	    200);
	json_decref(out);
	assert_int_equal(resolve_once(&b, &proxy, w[0]->tok, "s8", val, sizeof(val)), 200);
	/* ...one in theirs moves their generation: read again, the new destination refuses. */
	mint_one(&b, &harness, "s8", 0, tok2, sizeof(tok2), id2, sizeof(id2));
	assert_int_equal(run_handler(&b, &harness, grant_handle_revoke, NULL, id2, &out), 200);
	json_decref(out);
	assert_int_equal(resolve_once(&b, &proxy, w[0]->tok, "s8", val, sizeof(val)), 403);
	assert_string_equal(val, "destination_mismatch");
	assert_int_equal(resolve_once(&b, &proxy, w[1]->tok, "s8", val, sizeof(val)), 200);
	free(ways);

	commit_close(b.commit);
	store_pool_free(b.readers);
	metrics_free(b.metrics);
	secret_cache_clear();
	vault_free(f->v);
	store_close(f->st);
	testutil_rm_dir(f->dir);
}

/* ----------------------------------------------------------- grant SQL */


static void
test_store_use(void **state)
{
	struct testutil_db *f = *state;
	struct store_grant *g, dup;
	int64_t now = 1000000;
	int res, n;

	testutil_put_grant_full(f->st, 1, "s1", "h", now, now + 60, 2, 0, 0);	/* two uses */
	testutil_put_grant_full(f->st, 2, "s1", "h", now, now + 60, 0, 0, 0);	/* unlimited */
	testutil_put_grant_full(f->st, 3, "s1", "h", now, now + 60, 0, 0, now);	/* revoked */
	/* expired */
	testutil_put_grant_full(f->st, 4, "s1", "h", now - 100, now - 1, 0, 0, 0);
	dup = (struct store_grant){ .id = (char *)(uintptr_t)testutil_grant_id(4),
	    .sandbox_id = "s", .minted_by = "h", .kid = "k", .bindings = "[]" };
	assert_int_equal(store_grant_insert(f->st, &dup), CB_ERR_EXISTS);

	assert_int_equal(store_grant_use(f->st, testutil_grant_id(1), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(1), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(1), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED_UP);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(1), &g), 0);
	assert_int_equal(g->uses, 2);
	assert_string_equal(g->sandbox_id, "s1");
	assert_string_equal(g->bindings, "[]");
	assert_int_equal(g->revoked_at, 0);
	store_grant_free(g);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(2), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(3), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_REVOKED);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(4), now - 1, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_EXPIRED);
	/*
	 * A refused use is not counted; an unlimited grant's is, in grant_use_log
	 * (schema/005): the display counts it, the resolve's read leaves it out.
	 */
	for (n = 2; n <= 4; n++) {
		assert_int_equal(store_grant_get_uses(f->st, testutil_grant_id(n), &g), 0);
		assert_int_equal(g->uses, n == 2 ? 1 : 0);
		store_grant_free(g);
		assert_int_equal(store_grant_get(f->st, testutil_grant_id(n), &g), 0);
		assert_int_equal(g->uses, 0);
		store_grant_free(g);
	}
	assert_int_equal(store_grant_get_uses(f->st, testutil_grant_id(1), &g), 0);
	assert_int_equal(g->uses, 2);
	store_grant_free(g);
	assert_int_equal(store_grant_get_uses(f->st, testutil_grant_id(9), &g), CB_ERR_NOTFOUND);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(9), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_GONE);
	/* The key is (expires_at, id): the right ID with another expiry is no grant. */
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(2), now + 61, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_GONE);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(9), &g), CB_ERR_NOTFOUND);
	assert_null(g);
	/* Uses stored with the grant (as before schema/004) count with those counted since. */
	testutil_put_grant_full(f->st, 5, "s1", "h", now, now + 60, 3, 2, 0);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(5), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED);
	assert_int_equal(store_grant_use(f->st, testutil_grant_id(5), now + 60, now, &res), 0);
	assert_int_equal(res, STORE_GRANT_USED_UP);
	assert_int_equal(store_grant_get(f->st, testutil_grant_id(5), &g), 0);
	assert_int_equal(g->uses, 3);
	store_grant_free(g);
}

static void
test_store_revoke(void **state)
{
	struct testutil_db *f = *state;
	int64_t now = 1000000, n;
	int changed;

	testutil_put_grant_full(f->st, 1, "s1", "h1", now, now + 60, 0, 0, 0);
	testutil_put_grant_full(f->st, 2, "s1", "h2", now, now + 60, 0, 0, 0);
	testutil_put_grant_full(f->st, 3, "s1", "h1", now, now + 60, 0, 0, 0);
	testutil_put_grant_full(f->st, 4, "s2", "h1", now, now + 60, 0, 0, 0);
	assert_int_equal(store_grant_revoke(f->st, testutil_grant_id(1), now, &changed), 0);
	assert_int_equal(changed, 1);
	assert_int_equal(store_grant_revoke(f->st, testutil_grant_id(1), now + 5, &changed), 0);
	assert_int_equal(changed, 0);	/* already revoked: revoked_at kept */
	assert_int_equal(store_grant_revoke(f->st, testutil_grant_id(9), now, &changed), 0);
	assert_int_equal(changed, 0);
	/* h1 revokes sandbox s1: only its own live grant (3). */
	assert_int_equal(store_grant_revoke_sandbox(f->st, "s1", "h1", now, &n), 0);
	assert_int_equal(n, 1);
	/* The admin: everything left in s1 (2). */
	assert_int_equal(store_grant_revoke_sandbox(f->st, "s1", NULL, now, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_grant_count_live(f->st, now, &n), 0);
	assert_int_equal(n, 1);	/* 4 */
}

static int
collect(void *arg, const struct store_grant *g)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%c", g->id[31]);
	return 0;
}

static void
test_store_sandbox_live(void **state)
{
	struct testutil_db *f = *state;
	int64_t now = 1000000;
	char got[256] = "";

	testutil_put_grant_full(f->st, 3, "s1", "h", now - 3, now + 60, 0, 0, 0);	/* live */
	/* live, oldest */
	testutil_put_grant_full(f->st, 1, "s1", "h", now - 5, now + 60, 0, 0, 0);
	/* used up */
	testutil_put_grant_full(f->st, 2, "s1", "h", now - 4, now + 60, 1, 1, 0);
	/* revoked */
	testutil_put_grant_full(f->st, 4, "s1", "h", now - 4, now + 60, 0, 0, now);
	testutil_put_grant_full(f->st, 5, "s1", "h", now - 9, now, 0, 0, 0);	/* expired */
	/* other sandbox */
	testutil_put_grant_full(f->st, 6, "s2", "h", now - 9, now + 60, 0, 0, 0);
	/* not yet */
	testutil_put_grant_full(f->st, 7, "s1", "h", now + 10, now + 60, 0, 0, 0);
	testutil_put_grant_full(f->st, 8, "s1", "h", now - 1, now + 60, 5, 4, 0);	/* live */
	assert_int_equal(store_grant_sandbox_live(f->st, "s1", now, 100, collect, got), 0);
	assert_string_equal(got, "138");
	got[0] = '\0';
	/* bounded: the newest two, still handed over oldest first */
	assert_int_equal(store_grant_sandbox_live(f->st, "s1", now, 2, collect, got), 0);
	assert_string_equal(got, "38");
}

static void
test_store_purge(void **state)
{
	struct testutil_db *f = *state;
	int64_t now = 1000000, n, live;
	int i;

	for (i = 1; i <= 7; i++)	/* expired long ago */
		testutil_put_grant_full(f->st, i, "s", "h", now - 1000, now - 500, 0, 0, 0);
	for (i = 8; i <= 10; i++)	/* revoked long ago */
		testutil_put_grant_full(f->st, i, "s", "h", now - 1000, now + 500, 0, 0, now - 500);
	/* within grace */
	testutil_put_grant_full(f->st, 11, "s", "h", now - 10, now - 5, 0, 0, 0);
	/* grace */
	testutil_put_grant_full(f->st, 12, "s", "h", now - 10, now + 500, 0, 0, now - 5);
	testutil_put_grant_full(f->st, 13, "s", "h", now - 10, now + 500, 0, 0, 0);	/* live */
	assert_int_equal(store_grant_purge_expired(f->st, now - 60, 4, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(store_grant_purge_expired(f->st, now - 60, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_grant_purge_expired(f->st, now - 60, 4, &n), 0);
	assert_int_equal(n, 0);	/* 11 is within the grace */
	for (i = 8; i <= 10; i++) {	/* the expired purge left the revoked ones */
		struct store_grant *g;

		assert_int_equal(store_grant_get(f->st, testutil_grant_id(i), &g), 0);
		store_grant_free(g);
	}
	/* Revoked: through the partial index, at most limit a batch. */
	assert_int_equal(store_grant_purge_revoked_indexed(f->st, now - 60, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_grant_purge_revoked_indexed(f->st, now - 60, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_grant_purge_revoked_indexed(f->st, now - 60, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_grant_purge_revoked_indexed(f->st, now - 60, 4, &n), 0);
	assert_int_equal(n, 0);	/* 12 is within the grace */
	for (i = 8; i <= 10; i++) {
		struct store_grant *g;

		assert_int_equal(store_grant_get(f->st, testutil_grant_id(i), &g), CB_ERR_NOTFOUND);
	}
	assert_int_equal(store_grant_count_live(f->st, now, &live), 0);
	assert_int_equal(live, 1);
	for (i = 11; i <= 13; i++) {
		struct store_grant *g;

		assert_int_equal(store_grant_get(f->st, testutil_grant_id(i), &g), 0);
		store_grant_free(g);
	}
}

/*
 * The purge's slow-down: doubled (to GRANT_PURGE_SLOW_MAX at most) while resolves take
 * over twice their latency from before the pass, halved once under 1.5 times, unchanged
 * in between or with too few resolves to judge by; a base under 1 ms counts as 1 ms.
 */
static void
test_purge_pace(void **state)
{
	int slow = 1, i;

	(void)state;
	assert_int_equal(grant_purge_pace(1, 5000, 10001, 1000), 2);
	assert_int_equal(grant_purge_pace(2, 5000, 10001, 1000), 4);
	assert_int_equal(grant_purge_pace(1, 5000, 10000, 1000), 1);	/* 2x: not over */
	assert_int_equal(grant_purge_pace(4, 5000, 9000, 1000), 4);	/* 1.8x: held */
	assert_int_equal(grant_purge_pace(4, 5000, 7400, 1000), 2);	/* 1.48x: eased */
	assert_int_equal(grant_purge_pace(1, 5000, 7400, 1000), 1);
	assert_int_equal(grant_purge_pace(4, 5000, 1000000, GRANT_PURGE_PACE_MIN - 1), 4);
	assert_int_equal(grant_purge_pace(1, 5000, 1000000, GRANT_PURGE_PACE_MIN), 2);
	assert_int_equal(grant_purge_pace(0, 5000, 5000, 1000), 1);
	/* An idle broker's base of 100 us: 1.9 ms is not a queue. */
	assert_int_equal(grant_purge_pace(1, 100, 1900, 1000), 1);
	assert_int_equal(grant_purge_pace(1, 100, 2100, 1000), 2);
	for (i = 0; i < 10; i++)
		slow = grant_purge_pace(slow, 5000, 500000, 1000);
	assert_int_equal(slow, GRANT_PURGE_SLOW_MAX);
	for (i = 0; i < 10; i++)
		slow = grant_purge_pace(slow, 5000, 5000, 1000);
	assert_int_equal(slow, 1);
}

/*
 * The purge's rest after a batch: slow times the batch's own writer time (not its wait
 * in the queue and for the fsync, which it shares with the resolves of its group),
 * capped at 200 ms; none for a batch that took no time.
 */
static void
test_purge_rest(void **state)
{
	(void)state;
	assert_int_equal(grant_purge_rest_us(3000, 1), 3000);
	assert_int_equal(grant_purge_rest_us(3000, GRANT_PURGE_SLOW_MAX),
	    3000 * GRANT_PURGE_SLOW_MAX);
	assert_int_equal(grant_purge_rest_us(3000, 0), 3000);
	assert_int_equal(grant_purge_rest_us(0, 4), 0);
	assert_int_equal(grant_purge_rest_us(-5, 4), 0);
	assert_int_equal(grant_purge_rest_us(30000, 8), 200000);
	assert_int_equal(grant_purge_rest_us(INT64_MAX, 8), 200000);
}

/* The purge thread: batches through the commit queue until nothing is left. */
static void
test_purge_thread(void **state)
{
	struct testutil_db *f = *state;
	struct broker_conf conf;
	struct store_grant *g;
	struct broker b;
	int64_t now = util_now(), n = -1;
	int i, tries, left = -1, rc;

	for (i = 1; i <= 25; i++)
		testutil_put_grant_full(f->st, i, "s", "h", now - 1000, now - 500, 0, 0, 0);
	for (i = 26; i <= 28; i++)
		testutil_put_grant_full(f->st, i, "s", "h", now, now + 600, 0, 0, 0);
	for (i = 29; i <= 35; i++)	/* revoked before this start-up: found by one walk */
		testutil_put_grant_full(f->st, i, "s", "h", now - 1000, now + 600, 0, 0, now - 500);
	memset(&conf, 0, sizeof(conf));
	conf.purge_interval_s = 1;
	conf.purge_batch = 4;
	memset(&b, 0, sizeof(b));
	b.conf = &conf;
	assert_int_equal(commit_open(f->path, NULL, &b.commit), 0);
	assert_int_equal(store_pool_new(f->path, &b.readers), 0);
	assert_int_equal(grant_purge_start(&b), 0);
	assert_int_equal(grant_purge_start(&b), CB_ERR_EXISTS);
	for (tries = 0; tries < 100; tries++) {
		assert_int_equal(store_grant_count_live(f->st, now - 10000, &n), 0);
		left = 0;
		for (i = 29; i <= 35; i++) {
			rc = store_grant_get(f->st, testutil_grant_id(i), &g);
			store_grant_free(g);
			left += rc == 0;
		}
		if (n == 3 && left == 0)
			break;
		usleep(100000);
	}
	assert_int_equal(n, 3);	/* only the live ones remain (count with an old "now") */
	assert_int_equal(left, 0);	/* and the revoked ones are gone */
	for (tries = 0; tries < 30 && grant_active_count() != 3; tries++)
		usleep(100000);
	assert_int_equal(grant_active_count(), 3);
	grant_purge_stop();
	grant_purge_stop();	/* idempotent */
	commit_close(b.commit);
	store_pool_free(b.readers);
}

int main(void);

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_names),
		cmocka_unit_test(test_templates_valid),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_binding_defaults),
		cmocka_unit_test(test_binding_refusals),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_path_tricks_refused),
		cmocka_unit_test(test_secret_cache),
		cmocka_unit_test(test_resolve_row_cache),
		cmocka_unit_test_setup_teardown(test_store_use, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_store_revoke, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_store_sandbox_live, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test_setup_teardown(test_store_purge, testutil_db_setup,
		    testutil_db_teardown),
		cmocka_unit_test(test_purge_pace),
		cmocka_unit_test(test_purge_rest),
		cmocka_unit_test_setup_teardown(test_purge_thread, testutil_db_setup,
		    testutil_db_teardown),
	};

	log_init("test_grant", LOG_LVL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
