/*
 * libclient_it.c: every libcredbroker call against the real daemon.
 * Usage: libclient_it DIR URL [DOWN_URL]
 *        libclient_it --hostile DIR URL CALL RC   (see hostile() below)
 *        libclient_it --residue DIR URL CALL HEX  (see residue() below)
 *   DIR: a deployment made by `credbroker init` (pki/{ca,harness,proxy,admin,sandbox-ca}.*)
 *   URL: the running broker; DOWN_URL: an https URL where nothing listens.
 * Prints one "ok"/"FAIL" line per check; exits 0 only when every check passed.
 * Driven by tests/integration/test_libclient.py.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credbroker.h"

static int failures;
static int checks;

static void
check(int cond, const char *what, const cbc_t *c)
{
	checks++;
	if (cond) {
		printf("ok - %s\n", what);
		return;
	}
	failures++;
	printf("FAIL - %s (status %d, code \"%s\": %s)\n", what, cbc_http_status(c),
	    cbc_error_code(c), cbc_errmsg(c));
}

static char *
pki(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 6;
	char *p = malloc(n);

	if (p == NULL)
		exit(4);
	snprintf(p, n, "%s/pki/%s", dir, name);
	return p;
}

static cbc_t *
client(const char *dir, const char *url, const char *role, const char *ca)
{
	char cert[64], key[64];
	struct cbc_opts o;
	char *pc, *pk, *pca;
	cbc_t *c = NULL;
	int rc;

	snprintf(cert, sizeof(cert), "%s.pem", role);
	snprintf(key, sizeof(key), "%s.key", role);
	pc = pki(dir, cert);
	pk = pki(dir, key);
	pca = pki(dir, ca);
	memset(&o, 0, sizeof(o));
	o.url = url;
	o.cert = pc;
	o.key = pk;
	o.cacert = pca;
	o.timeout_ms = 5000;
	rc = cbc_new(&o, &c);
	free(pc);
	free(pk);
	free(pca);
	if (rc != 0) {
		printf("FAIL - cbc_new(%s): %s\n", role, cbc_strerror(rc));
		exit(1);
	}
	return c;
}

static int
has(const char *json, const char *needle)
{
	return json != NULL && strstr(json, needle) != NULL;
}

/*
 * The non-blocking resolve (cbc_resolve_connect/_start/_step/_finish) driven by poll(2),
 * as an event loop would: what cbc_resolve returns. Each wait is at most 5 s: the blocking
 * client's whole timeout here, and less than the 10 s after which test_libclient.py's fake
 * broker closes an idle connection (a close would end a wait that should never have begun).
 */
static int
aresolve(cbc_t *c, const char *token, const char *sandbox, const char *host, int port,
    const char *method, const char *path, struct cbc_resolved **out)
{
	struct pollfd pfd;
	short ev = 0;
	int rc, rounds;

	*out = NULL;
	if ((rc = cbc_resolve_connect(c)) != 0)
		return rc;
	if ((rc = cbc_resolve_start(c, token, sandbox, host, port, method, path)) != 0)
		return rc;
	for (rounds = 0; rounds < 1000; rounds++) {
		if ((rc = cbc_resolve_step(c, &ev)) != CBC_PENDING)
			break;
		pfd.fd = cbc_resolve_fd(c);
		pfd.events = ev;
		pfd.revents = 0;
		if (pfd.fd < 0 || (ev != POLLIN && ev != POLLOUT) || poll(&pfd, 1, 5000) != 1) {
			cbc_resolve_abort(c);
			return -100;	/* not what any check wants */
		}
	}
	if (rc != 0)
		return rc;
	return cbc_resolve_finish(c, out);
}

/*
 * --hostile DIR URL CALL RC: one call against a fake broker (test_libclient.py serves a
 * malformed, oversized or wrong-typed answer) must return exactly RC, without a crash,
 * leaving no result behind.
 */
static int
hostile(const char *dir, const char *url, const char *call, int want)
{
	static const char *const hosts[] = { "h.example", NULL };
	struct cbc_binding b = { .secret = "s", .host = "h.example" };
	struct cbc_grant_req req = { .sandbox_id = "sbx", .ttl_s = 60, .bindings = &b,
	    .nbindings = 1 };
	struct cbc_grant *g = (struct cbc_grant *)1;
	struct cbc_resolved *r = (struct cbc_resolved *)1;
	cbc_t *c = client(dir, url, "admin", "ca.pem");
	char *json = (char *)1;
	long long n = -1;
	int rc, left = 0;

	if (strcmp(call, "mint") == 0) {
		rc = cbc_grant_mint(c, &req, &g);
		left = g != NULL;
	} else if (strcmp(call, "resolve") == 0) {
		rc = cbc_resolve(c, "cbt_x", "sbx", "h.example", 443, "GET", "/", &r);
		left = r != NULL;
	} else if (strcmp(call, "aresolve") == 0) {
		rc = aresolve(c, "cbt_x", "sbx", "h.example", 443, "GET", "/", &r);
		left = r != NULL;
	} else if (strcmp(call, "put") == 0) {
		rc = cbc_secret_put(c, "s", (const unsigned char *)"v", 1, hosts, 0, &n);
		left = n != 0;
	} else if (strcmp(call, "show") == 0) {
		rc = cbc_secret_get(c, "s", &json);
		left = json != NULL;
	} else if (strcmp(call, "sandbox") == 0) {
		rc = cbc_sandbox_revoke(c, "sbx", &n);
		left = n != 0;
	} else if (strcmp(call, "health") == 0)
		rc = cbc_health(c);
	else {
		printf("FAIL - unknown call %s\n", call);
		return 2;
	}
	check(rc == want && (want == 0 || !left), call, c);
	printf("rc %d status %d code \"%s\" message: %s\n", rc, cbc_http_status(c),
	    cbc_error_code(c), cbc_errmsg(c));
	if (g != (struct cbc_grant *)1)
		cbc_grant_free(g);
	if (r != (struct cbc_resolved *)1)
		cbc_resolved_free(r);
	if (json != (char *)1)
		free(json);
	cbc_free(c);
	return failures == 0 ? 0 : 1;
}

#define SCAN_CHUNK	(1 << 20)
#define SCAN_REGION_MAX	((size_t)1 << 30)	/* beyond: a sanitizer's shadow, not the heap */

/*
 * Copies of needle (n bytes, n < SCAN_CHUNK) in this process's anonymous, heap and stack
 * writable memory, except the one at skip and what the scan itself copied into its buffer.
 * -1 when the memory cannot be read.
 */
static long
count_copies(const unsigned char *needle, size_t n, const unsigned char *skip)
{
	char line[512], path[256], perms[8];
	unsigned long lo, hi, a;
	unsigned char *buf;
	FILE *maps;
	long hits = 0;
	size_t got, i;
	ssize_t r;
	int mem;

	if ((buf = malloc(SCAN_CHUNK)) == NULL)
		return -1;
	if ((maps = fopen("/proc/self/maps", "r")) == NULL ||
	    (mem = open("/proc/self/mem", O_RDONLY)) < 0) {
		free(buf);
		return -1;
	}
	/* bounded by the maps file (one region a line) and each region's size */
	while (fgets(line, sizeof(line), maps) != NULL) {
		path[0] = '\0';
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms, path) < 3 ||
		    perms[0] != 'r' || perms[1] != 'w' || hi - lo > SCAN_REGION_MAX ||
		    (path[0] != '\0' && strcmp(path, "[heap]") != 0 && strcmp(path, "[stack]") != 0))
			continue;
		/* chunks overlap by n - 1 bytes, so that no copy straddles two unseen */
		for (a = lo; a < hi; a += got - (n - 1)) {
			got = hi - a < SCAN_CHUNK ? (size_t)(hi - a) : SCAN_CHUNK;
			if ((r = pread(mem, buf, got, (off_t)a)) < (ssize_t)n)
				break;
			got = (size_t)r;
			for (i = 0; i + n <= got; i++)
				if (buf[i] == needle[0] && memcmp(buf + i, needle, n) == 0 &&
				    (a + i < (uintptr_t)buf || a + i >= (uintptr_t)buf + SCAN_CHUNK) &&
				    a + i != (uintptr_t)skip)
					hits++;
			if (a + got >= hi)
				break;
		}
	}
	explicit_bzero(buf, SCAN_CHUNK);
	free(buf);
	close(mem);
	fclose(maps);
	return hits;
}

/*
 * --residue DIR URL CALL HEX: one resolve (CALL resolve or aresolve) against a fake broker
 * whose answer's header value is the bytes HEX encodes, on a connection kept open; once the
 * result is freed, no copy of the value may be left in the process's writable memory (the
 * TLS layer's buffers included). The value is given in hex so that argv holds no copy.
 */
static int
residue(const char *dir, const char *url, const char *call, const char *hex)
{
	struct cbc_resolved *r = NULL;
	unsigned char *v;
	cbc_t *c = client(dir, url, "proxy", "ca.pem");
	size_t n = strlen(hex) / 2, i;
	unsigned int byte;
	long hits;
	int rc;

	if (n < 16 || (v = malloc(n + 1)) == NULL) {
		cbc_free(c);
		return 2;
	}
	for (i = 0; i < n; i++) {
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1) {
			free(v);
			cbc_free(c);
			return 2;
		}
		v[i] = (unsigned char)byte;
	}
	v[n] = '\0';
	if (strcmp(call, "aresolve") == 0)
		rc = aresolve(c, "cbt_x", "sbx", "h.example", 443, "GET", "/", &r);
	else
		rc = cbc_resolve(c, "cbt_x", "sbx", "h.example", 443, "GET", "/", &r);
	check(rc == 0 && r != NULL && r->nheaders == 1 &&
	    strcmp(r->headers[0].value, (const char *)v) == 0, "resolve with the value", c);
	cbc_resolved_free(r);
	/* the connection stays open, as a proxy's would between resolves */
	hits = count_copies(v, n, v);
	printf("copies left: %ld\n", hits);
	check(hits == 0, "no copy of the value left after the result is freed", c);
	explicit_bzero(v, n);
	free(v);
	cbc_free(c);
	return failures == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static const char *const gh_hosts[] = { "api.github.com", NULL };
	static const char *const inj_hosts[] = { "inj.example.com", NULL };
	static const char *const get_only[] = { "GET", NULL };
	const char *dir, *url;
	cbc_t *admin, *harness, *proxy, *bad;
	struct cbc_binding b;
	struct cbc_grant_req req;
	struct cbc_grant *g = NULL, *gi = NULL;
	struct cbc_resolved *r = NULL;
	long long v = 0, n = 0;
	char *json = NULL;
	short ev = 0;
	int rc, i, fd;

	/* --keepalive DIR URL N: N health checks on one client (the test counts connections). */
	if (argc == 5 && strcmp(argv[1], "--keepalive") == 0) {
		long k, count = strtol(argv[4], NULL, 10);

		admin = client(argv[2], argv[3], "admin", "ca.pem");
		for (k = 0; k < count && k < 1000; k++)
			check(cbc_health(admin) == 0, "health on a kept-alive connection", admin);
		cbc_free(admin);
		return failures == 0 ? 0 : 1;
	}
	if (argc == 6 && strcmp(argv[1], "--residue") == 0)
		return residue(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 6 && strcmp(argv[1], "--hostile") == 0)
		return hostile(argv[2], argv[3], argv[4], (int)strtol(argv[5], NULL, 10));
	if (argc < 3) {
		fprintf(stderr, "usage: libclient_it DIR URL [DOWN_URL]\n"
		    "       libclient_it --hostile DIR URL CALL RC\n");
		return 2;
	}
	dir = argv[1];
	url = argv[2];
	admin = client(dir, url, "admin", "ca.pem");
	harness = client(dir, url, "harness", "ca.pem");
	proxy = client(dir, url, "proxy", "ca.pem");

	check(cbc_health(admin) == 0, "health", admin);

	/* secrets (admin) */
	rc = cbc_secret_put(admin, "it-gh", (const unsigned char *)"ghp_first", 9, gh_hosts, 3600,
	    &v);
	check(rc == 0 && v >= 1, "secret put gives a version (1 on a fresh deployment)", admin);
	n = v;
	rc = cbc_secret_put(admin, "it-gh", (const unsigned char *)"ghp_second", 10, gh_hosts, 3600,
	    &v);
	check(rc == 0 && v == n + 1, "secret put on an existing name gives the next version",
	    admin);
	rc = cbc_secret_put(admin, "it-inj", (const unsigned char *)"inj_value", 9, inj_hosts, 0,
	    NULL);
	check(rc == 0, "secret put without max TTL", admin);
	rc = cbc_secret_get(admin, NULL, &json);
	check(rc == 0 && has(json, "it-gh") && has(json, "it-inj") && !has(json, "ghp_"),
	    "secret list names both, no value", admin);
	free(json);
	json = NULL;
	rc = cbc_secret_get(admin, "it-gh", &json);
	check(rc == 0 && has(json, "it-gh") && has(json, "api.github.com") && !has(json, "ghp_"),
	    "secret show: metadata only", admin);
	free(json);
	json = NULL;
	rc = cbc_secret_get(admin, "it-nope", &json);
	check(rc == CBC_E_REFUSED && cbc_http_status(admin) == 404 && json == NULL,
	    "secret show unknown: refused 404", admin);
	rc = cbc_secret_put(harness, "it-x", (const unsigned char *)"v", 1, gh_hosts, 0, NULL);
	check(rc == CBC_E_REFUSED && cbc_http_status(harness) == 403 &&
	    strcmp(cbc_error_code(harness), "forbidden") == 0,
	    "harness may not put a secret: 403 forbidden", harness);
	check(strstr(cbc_errmsg(harness), "403") != NULL, "refusal message names the status",
	    harness);

	/* grants (harness) */
	memset(&b, 0, sizeof(b));
	b.secret = "it-gh";
	b.host = "api.github.com";
	b.methods = get_only;
	b.path_prefix = "/repos/acme/";
	memset(&req, 0, sizeof(req));
	req.sandbox_id = "sbx-it-1";
	req.ttl_s = 600;
	req.bindings = &b;
	req.nbindings = 1;
	rc = cbc_grant_mint(harness, &req, &g);
	check(rc == 0 && g != NULL && strncmp(g->token, "cbt_", 4) == 0 &&
	    g->grant_id[0] != '\0' && g->expires_at[0] != '\0', "grant mint", harness);
	if (g == NULL) {
		printf("FAIL - cannot continue without a grant\n");
		return 1;
	}
	rc = cbc_grant_mint(proxy, &req, &gi);
	check(rc == CBC_E_REFUSED && cbc_http_status(proxy) == 403 && gi == NULL,
	    "proxy may not mint: 403", proxy);
	b.secret = "it-nope";
	rc = cbc_grant_mint(harness, &req, &gi);
	check(rc == CBC_E_REFUSED && strcmp(cbc_error_code(harness), "unknown_secret") == 0,
	    "mint of an unknown secret: unknown_secret", harness);
	b.secret = "it-gh";
	b.host = "evil.example.com";
	rc = cbc_grant_mint(harness, &req, &gi);
	check(rc == CBC_E_REFUSED && strcmp(cbc_error_code(harness), "host_not_allowed") == 0,
	    "mint for a host outside the allowlist: host_not_allowed", harness);

	rc = cbc_grant_show(harness, g->grant_id, &json);
	check(rc == 0 && has(json, g->grant_id) && !has(json, "cbt_") && !has(json, "ghp_"),
	    "grant show: no token, no value", harness);
	free(json);
	json = NULL;

	/* resolve (proxy) */
	rc = cbc_resolve(proxy, g->token, "sbx-it-1", "api.github.com", 443, "GET",
	    "/repos/acme/x", &r);
	check(rc == 0 && r != NULL && r->nheaders == 1 &&
	    strcmp(r->headers[0].name, "Authorization") == 0 &&
	    strcmp(r->headers[0].value, "Bearer ghp_second") == 0 && r->expires_in > 0 &&
	    r->expires_in <= 600, "resolve: Authorization: Bearer <latest version>", proxy);
	cbc_resolved_free(r);
	r = NULL;
	rc = cbc_resolve(proxy, g->token, "sbx-other", "api.github.com", 443, "GET",
	    "/repos/acme/x", &r);
	check(rc == CBC_E_REFUSED && r == NULL &&
	    strcmp(cbc_error_code(proxy), "sandbox_mismatch") == 0 &&
	    strstr(cbc_errmsg(proxy), "cbt_") == NULL,
	    "resolve for another sandbox: sandbox_mismatch, token not in message", proxy);
	rc = cbc_resolve(proxy, g->token, "sbx-it-1", "api.github.com", 443, "POST",
	    "/repos/acme/x", &r);
	check(rc == CBC_E_REFUSED && strcmp(cbc_error_code(proxy), "method_not_allowed") == 0,
	    "resolve with another method: method_not_allowed", proxy);
	rc = cbc_resolve(harness, g->token, "sbx-it-1", "api.github.com", 443, "GET",
	    "/repos/acme/x", &r);
	check(rc == CBC_E_REFUSED && cbc_http_status(harness) == 403 && r == NULL,
	    "harness may not resolve: 403", harness);

	/* the same resolves without blocking (credproxy's event loop) */
	rc = cbc_resolve_step(proxy, &ev);
	check(rc == CBC_E_USAGE, "non-blocking resolve: a step before a start is a usage error",
	    proxy);
	rc = cbc_resolve_finish(proxy, &r);
	check(rc == CBC_E_USAGE && r == NULL,
	    "non-blocking resolve: a finish before the answer is a usage error", proxy);
	for (i = 0; i < 3; i++) {	/* the connection is kept between resolves */
		rc = aresolve(proxy, g->token, "sbx-it-1", "api.github.com", 443, "GET",
		    "/repos/acme/x", &r);
		check(rc == 0 && r != NULL && r->nheaders == 1 &&
		    strcmp(r->headers[0].value, "Bearer ghp_second") == 0 && r->expires_in > 0,
		    "non-blocking resolve: Authorization: Bearer <latest version>", proxy);
		cbc_resolved_free(r);
		r = NULL;
	}
	fd = cbc_resolve_fd(proxy);
	rc = aresolve(proxy, g->token, "sbx-other", "api.github.com", 443, "GET",
	    "/repos/acme/x", &r);
	check(rc == CBC_E_REFUSED && r == NULL && fd >= 0 && cbc_resolve_fd(proxy) == fd &&
	    strcmp(cbc_error_code(proxy), "sandbox_mismatch") == 0 &&
	    strstr(cbc_errmsg(proxy), "cbt_") == NULL,
	    "non-blocking resolve refused: sandbox_mismatch, connection kept", proxy);
	rc = cbc_resolve_start(proxy, g->token, "sbx-it-1", "api.github.com", 443, "GET",
	    "/repos/acme/x");
	cbc_resolve_abort(proxy);
	check(rc == 0 && cbc_resolve_fd(proxy) == -1 &&
	    cbc_resolve_start(proxy, g->token, "sbx-it-1", "api.github.com", 443, "GET",
	    "/repos/acme/x") == CBC_E_USAGE,
	    "non-blocking resolve: abort closes the connection; no start without one", proxy);

	/* inject binding and token-less resolve */
	memset(&b, 0, sizeof(b));
	b.secret = "it-inj";
	b.host = "inj.example.com";
	b.header = "X-Api-Key";
	b.template_ = "{secret}";
	b.inject = 1;
	req.sandbox_id = "sbx-it-2";
	req.max_uses = 5;
	rc = cbc_grant_mint(harness, &req, &gi);
	check(rc == 0 && gi != NULL, "grant mint (inject, max_uses 5)", harness);
	rc = cbc_resolve(proxy, NULL, "sbx-it-2", "inj.example.com", 443, "GET", "/anything",
	    &r);
	check(rc == 0 && r != NULL && r->nheaders == 1 &&
	    strcmp(r->headers[0].name, "X-Api-Key") == 0 &&
	    strcmp(r->headers[0].value, "inj_value") == 0, "token-less resolve injects", proxy);
	cbc_resolved_free(r);
	r = NULL;
	rc = cbc_resolve(proxy, NULL, "sbx-it-3", "inj.example.com", 443, "GET", "/", &r);
	check(rc == CBC_E_REFUSED && strcmp(cbc_error_code(proxy), "no_grant") == 0,
	    "token-less resolve without a grant: no_grant", proxy);

	/* revocation */
	rc = cbc_grant_revoke(harness, g->grant_id);
	check(rc == 0, "grant revoke", harness);
	rc = cbc_resolve(proxy, g->token, "sbx-it-1", "api.github.com", 443, "GET",
	    "/repos/acme/x", &r);
	check(rc == CBC_E_REFUSED && strcmp(cbc_error_code(proxy), "revoked") == 0,
	    "resolve after revoke: revoked", proxy);
	rc = cbc_grant_revoke(harness, "no-such-grant");
	check(rc == CBC_E_REFUSED && cbc_http_status(harness) == 404, "revoke unknown: 404",
	    harness);
	rc = cbc_sandbox_revoke(harness, "sbx-it-2", &n);
	check(rc == 0 && n == 1, "sandbox revoke counts one grant", harness);
	rc = cbc_resolve(proxy, NULL, "sbx-it-2", "inj.example.com", 443, "GET", "/", &r);
	check(rc == CBC_E_REFUSED, "token-less resolve after sandbox revoke: refused", proxy);

	/* keys and audit (admin) */
	rc = cbc_key_rotate(admin, "data", &json);
	check(rc == 0 && json != NULL, "key rotate data", admin);
	free(json);
	json = NULL;
	rc = cbc_key_rotate(admin, "signing", NULL);
	check(rc == 0, "key rotate signing", admin);
	rc = cbc_key_rotate(admin, "master", NULL);
	check(rc == CBC_E_USAGE, "key rotate master: usage error (never over the network)",
	    admin);
	rc = cbc_key_rotate(harness, "data", NULL);
	check(rc == CBC_E_REFUSED && cbc_http_status(harness) == 403,
	    "harness may not rotate keys: 403", harness);
	rc = cbc_audit_get(admin, 0, 3, &json);
	check(rc == 0 && has(json, "\"seq\"") && !has(json, "cbt_") && !has(json, "ghp_"),
	    "audit get: records, no token, no value", admin);
	free(json);
	json = NULL;
	rc = cbc_audit_verify(admin, &json);
	check(rc == 0 && has(json, "\"intact\":true"), "audit verify: intact", admin);
	free(json);
	json = NULL;
	rc = cbc_audit_verify(harness, &json);
	check(rc == CBC_E_REFUSED && json == NULL, "harness may not verify the audit", harness);

	rc = cbc_secret_delete(admin, "it-inj");
	check(rc == 0, "secret delete", admin);
	rc = cbc_secret_get(admin, "it-inj", &json);
	check(rc == CBC_E_REFUSED && cbc_http_status(admin) == 404, "deleted secret: 404", admin);

	/* failures that are not the broker's answer */
	bad = client(dir, url, "admin", "sandbox-ca.pem");
	rc = cbc_health(bad);
	check(rc == CBC_E_CONNECT && cbc_http_status(bad) == 0 &&
	    strstr(cbc_errmsg(bad), "not signed by CA") != NULL &&
	    strstr(cbc_errmsg(bad), "sandbox-ca.pem") != NULL, "wrong CA: connect error naming it",
	    bad);
	cbc_free(bad);
	if (argc > 3) {
		bad = client(dir, argv[3], "admin", "ca.pem");
		rc = cbc_health(bad);
		check(rc == CBC_E_CONNECT && strstr(cbc_errmsg(bad), "is credbrokerd running") !=
		    NULL, "broker down: connect error", bad);
		cbc_free(bad);
	}
	{
		struct cbc_opts o;
		char *ca = pki(dir, "ca.pem"), *k = pki(dir, "admin.key");

		memset(&o, 0, sizeof(o));
		o.url = url;
		o.cert = "/nonexistent/admin.pem";
		o.key = k;
		o.cacert = ca;
		rc = cbc_new(&o, &bad);
		if (rc == 0) {
			rc = cbc_health(bad);
			check(rc == CBC_E_IO && strstr(cbc_errmsg(bad), "/nonexistent/admin.pem") !=
			    NULL, "missing certificate: I/O error naming the file", bad);
			cbc_free(bad);
		} else
			check(0, "cbc_new with a missing certificate file", NULL);
		o.url = "http://127.0.0.1:1";
		bad = NULL;
		check(cbc_new(&o, &bad) == CBC_E_USAGE && bad == NULL, "http:// URL refused",
		    NULL);
		free(ca);
		free(k);
	}

	cbc_grant_free(g);
	cbc_grant_free(gi);
	cbc_free(admin);
	cbc_free(harness);
	cbc_free(proxy);
	printf("%d checks, %d failed\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
