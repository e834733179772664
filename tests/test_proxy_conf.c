/* test_proxy_conf.c: credproxy.conf, the source-address sandbox map, addresses it refuses. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "../client/proxy.h"
#include "../src/err.h"

int main(void);

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Fills ss with the address text a (IPv4 or IPv6). */
static const struct sockaddr *
addr(struct sockaddr_storage *ss, const char *a)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, a, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

static void
test_private_addresses(void **state)
{
	static const struct {
		const char *a;
		int priv;
	} cases[] = {
		{ "127.0.0.1", 1 }, { "127.255.255.254", 1 }, { "10.0.0.1", 1 },
		{ "172.16.0.1", 1 }, { "172.31.255.255", 1 }, { "172.32.0.1", 0 },
		{ "192.168.0.1", 1 }, { "169.254.169.254", 1 }, { "0.0.0.0", 1 },
		{ "100.64.0.1", 1 }, { "100.128.0.1", 0 }, { "224.0.0.1", 1 },
		{ "255.255.255.255", 1 }, { "192.0.0.8", 1 }, { "198.18.0.1", 1 },
		{ "8.8.8.8", 0 }, { "1.1.1.1", 0 }, { "172.15.255.255", 0 },
		{ "::", 1 }, { "::1", 1 }, { "fe80::1", 1 }, { "febf::1", 1 },
		{ "fc00::1", 1 }, { "fd12:3456::1", 1 }, { "ff02::1", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "::ffff:10.1.2.3", 1 }, { "::ffff:8.8.8.8", 0 },
		{ "::127.0.0.1", 1 }, { "64:ff9b::a00:1", 1 }, { "64:ff9b::808:808", 0 },
		{ "2002:0a00:0001::1", 1 }, { "2002:0808:0808::1", 0 },
		{ "2001:db8::1", 1 }, { "2606:4700::1111", 0 }, { "2001:4860:4860::8888", 0 },
		{ "64:ff9b:1::808:808", 1 }, { "64:ff9b:1:ffff::1", 1 }, { "64:ff9b:2::808:808", 0 },
		{ "100::1", 1 }, { "100:0:0:1::1", 0 }, { "2001:2::1", 1 }, { "2001:3::1", 0 },
		{ "192.0.2.1", 1 }, { "198.51.100.7", 1 }, { "203.0.113.9", 1 }, { "192.0.3.1", 0 },
		{ "203.0.114.1", 0 }, { "3fff::1", 1 }, { "3fff:fff::1", 1 }, { "3fff:1000::1", 0 },
		{ "2001::1", 1 }, { "2001:0:4136:e378::1", 1 },
	};
	struct sockaddr_storage ss;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		if (proxy_addr_is_private(addr(&ss, cases[i].a)) != cases[i].priv)
			fail_msg("%s: expected %d", cases[i].a, cases[i].priv);
	}
}

static void
test_split_hostport(void **state)
{
	static const struct {
		const char *in;
		const char *host;
		int port;
	} ok[] = {
		{ "127.0.0.1:3128", "127.0.0.1", 3128 },
		{ "localhost:1", "localhost", 1 },
		{ "[::1]:443", "::1", 443 },
		{ "[fe80::1%lo]:65535", "fe80::1%lo", 65535 },
	};
	static const char *const bad[] = {
		"", "localhost", ":80", "host:", "host:0", "host:65536", "host:80x", "::1:443",
		"[::1]", "[::1]443", "[]:80", "host:-1", "host: 80",
	};
	char host[64];
	size_t i;
	int port;

	for (i = 0; i < NELEM(ok); i++) {
		assert_int_equal(proxy_split_hostport(ok[i].in, host, sizeof(host), &port), 0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	for (i = 0; i < NELEM(bad); i++)
		if (proxy_split_hostport(bad[i], host, sizeof(host), &port) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
	/* a host that does not fit is refused, not truncated */
	assert_int_equal(proxy_split_hostport("abcdefgh:1", host, 8, &port), CB_ERR_INVAL);
}

static void
test_sandbox_map(void **state)
{
	struct proxy_conf *c;
	struct sockaddr_storage ss;

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "10.0.0.0/8", "wide"), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "10.1.2.0/24", "narrow"), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "10.1.2.3", "one"), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "2001:db8::/32", "v6"), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "2001:db8:1::/48", "v6-narrow"), 0);
	assert_int_equal(proxy_conf_add_cidr(c, "192.168.0.0/17", "odd"), 0);

	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.9.9.9")), "wide");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.1.2.4")), "narrow");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.1.2.3")), "one");
	/* an IPv4 client on a dual-stack socket arrives v4-mapped */
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "::ffff:10.1.2.3")), "one");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "2001:db8:2::1")), "v6");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "2001:db8:1::1")), "v6-narrow");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "192.168.127.255")), "odd");
	assert_null(proxy_conf_sandbox(c, addr(&ss, "192.168.128.0")));
	assert_null(proxy_conf_sandbox(c, addr(&ss, "11.0.0.1")));
	assert_null(proxy_conf_sandbox(c, addr(&ss, "2001:db9::1")));
	assert_null(proxy_conf_sandbox(c, addr(&ss, "::1")));

	/* sidecar mode wins over the map */
	c->sandbox_id = strdup("sidecar");
	assert_non_null(c->sandbox_id);
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "11.0.0.1")), "sidecar");

	assert_int_not_equal(proxy_conf_add_cidr(c, "10.0.0.0/33", "x"), 0);
	assert_int_not_equal(proxy_conf_add_cidr(c, "::/129", "x"), 0);
	assert_int_not_equal(proxy_conf_add_cidr(c, "10.0.0.0/", "x"), 0);
	assert_int_not_equal(proxy_conf_add_cidr(c, "10.0.0/8", "x"), 0);
	assert_int_not_equal(proxy_conf_add_cidr(c, "host.example/8", "x"), 0);
	assert_int_not_equal(proxy_conf_add_cidr(c, "10.0.0.0/8", ""), 0);
	proxy_conf_free(c);
}

static void
test_allowlist(void **state)
{
	struct proxy_conf *c;

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_add_allow(c, "Example.COM"), 0);
	assert_int_equal(proxy_conf_allowed(c, "example.com"), 1);
	assert_int_equal(proxy_conf_allowed(c, "EXAMPLE.com"), 1);
	assert_int_equal(proxy_conf_allowed(c, "www.example.com"), 0);
	assert_int_equal(proxy_conf_allowed(c, "example.com.evil"), 0);
	assert_int_not_equal(proxy_conf_add_allow(c, ""), 0);
	proxy_conf_free(c);
}

static void
test_parse(void **state)
{
	static const char text[] =
	    "# credproxy.conf\n"
	    "listen 127.0.0.1:3129\n"
	    "broker_url https://127.0.0.1:8443\n"
	    "broker_ca pki/ca.pem\n"
	    "cert pki/proxy.pem\n"
	    "key /abs/proxy.key\n"
	    "sandbox_ca pki/sandbox-ca.pem\n"
	    "sandbox_ca_key pki/sandbox-ca.key\n"
	    "sandbox 127.0.0.2/32 sbx-a\n"
	    "sandbox ::1 sbx-six\n"
	    "allow_host pypi.org\n"
	    "allow_host files.pythonhosted.org\n"
	    "allow_private yes\n"
	    "plaintext_credentials yes\n"
	    "max_conns_per_sandbox 4096\n"
	    "head_timeout 1\n"
	    "idle_timeout 86400\n"
	    "upstream_ca \"bundle dir/ca.pem\"\n"
	    "user credproxy\n"
	    "seccomp no\n";
	struct proxy_conf *c;
	struct sockaddr_storage ss;
	char why[256];

	/* Defaults: no user, the seccomp filter on (Linux), credentials over TLS only. */
	assert_int_equal(proxy_conf_new(&c), 0);
	assert_null(c->user);
	assert_int_equal(c->plaintext_credentials, 0);
	assert_int_equal(c->sandbox_conns, PROXY_SANDBOX_CONNS_DEFAULT);
	assert_int_equal(c->head_timeout_s, PROXY_HEAD_TIMEOUT_DEFAULT);
	assert_int_equal(c->idle_timeout_s, PROXY_IDLE_TIMEOUT_DEFAULT);
#ifdef __linux__
	assert_int_equal(c->seccomp, 1);
#endif
	assert_int_equal(proxy_conf_parse(c, "seccomp yes\n", 12, "/dep", why, sizeof(why)), 0);
	assert_int_equal(c->seccomp, 1);
	assert_int_equal(c->resolve_workers, PROXY_WORKERS_DEFAULT);
	proxy_conf_free(c);

	/* resolve_workers: both bounds accepted */
	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_parse(c, "resolve_workers 1\n", 18, "/dep", why,
	    sizeof(why)), 0);
	assert_int_equal(c->resolve_workers, 1);
	assert_int_equal(proxy_conf_parse(c, "resolve_workers 256\n", 20, "/dep", why,
	    sizeof(why)), 0);
	assert_int_equal(c->resolve_workers, 256);
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_parse(c, text, strlen(text), "/dep", why, sizeof(why)), 0);
	assert_string_equal(c->user, "credproxy");
	assert_int_equal(c->seccomp, 0);
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 3129);
	assert_string_equal(c->broker_url, "https://127.0.0.1:8443");
	assert_string_equal(c->broker_ca, "/dep/pki/ca.pem");
	assert_string_equal(c->cert, "/dep/pki/proxy.pem");
	assert_string_equal(c->key, "/abs/proxy.key");
	assert_string_equal(c->sandbox_ca, "/dep/pki/sandbox-ca.pem");
	assert_string_equal(c->sandbox_ca_key, "/dep/pki/sandbox-ca.key");
	assert_string_equal(c->upstream_ca, "/dep/bundle dir/ca.pem");
	assert_int_equal(c->allow_private, 1);
	assert_int_equal(c->plaintext_credentials, 1);
	assert_int_equal(c->sandbox_conns, 4096);
	assert_int_equal(c->head_timeout_s, 1);
	assert_int_equal(c->idle_timeout_s, 86400);
	assert_int_equal(c->nallow, 2);
	assert_int_equal(proxy_conf_allowed(c, "pypi.org"), 1);
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "127.0.0.2")), "sbx-a");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "::1")), "sbx-six");
	assert_null(proxy_conf_sandbox(c, addr(&ss, "127.0.0.1")));
	proxy_conf_free(c);
}

/* Repeats are refused with both lines named; what only looks alike is accepted. */
static void
test_parse_repeats(void **state)
{
	static const char ok[] =
	    "allow_host a.example\nallow_host b.example\n"
	    "sandbox 10.0.0.0/8 wide\nsandbox 10.0.0.0/16 narrow\n"
	    "sandbox 10.0.0.0/24 narrower\nsandbox 11.0.0.0/8 other\n"
	    "sandbox 192.168.0.0/17 low\nsandbox 192.168.128.0/17 high\n"
	    "sandbox ::a00:0/104 v6-not-v4\n";
	static const char twice[] = "seccomp no\n\nhead_timeout 3\nseccomp no\n";
	static const char again[] =
	    "sandbox 10.1.0.0/16 a\nsandbox 10.2.0.0/16 b\nsandbox 10.1.9.9/16 c\n";
	static const char mixed[] = "seccomp no\nsandbox 10.1.0.0/16 a\nsandbox_id b\n";
	/* An IPv4-mapped network, as a dual-stack listener logs a peer, is the IPv4 one. */
	static const char mapped[] =
	    "sandbox 10.0.0.0/8 wide\nsandbox ::ffff:10.1.2.3 special\n"
	    "sandbox ::ffff:10.9.0.0/112 nine\n";
	static const char mapped_again[] =
	    "sandbox 10.1.2.0/24 a\nsandbox ::ffff:10.1.2.0/120 b\n";
	struct proxy_conf *c;
	struct sockaddr_storage ss;
	char why[256];

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_parse(c, ok, strlen(ok), "/dep", why, sizeof(why)), 0);
	assert_int_equal(c->ncidrs, 7);
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "192.168.200.1")), "high");
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_not_equal(proxy_conf_parse(c, twice, strlen(twice), "/dep", why, sizeof(why)),
	    0);
	assert_string_equal(why, "line 4: seccomp given twice (first on line 1)");
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_not_equal(proxy_conf_parse(c, again, strlen(again), "/dep", why, sizeof(why)),
	    0);
	assert_string_equal(why, "line 3: sandbox: the network of line 1 again");
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_not_equal(proxy_conf_parse(c, mixed, strlen(mixed), "/dep", why, sizeof(why)),
	    0);
	assert_string_equal(why, "line 2: sandbox: the proxy is a sidecar (sandbox_id on line 3), "
	    "which ignores the sandbox map: keep one of them");
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_equal(proxy_conf_parse(c, mapped, strlen(mapped), "/dep", why, sizeof(why)), 0);
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.1.2.3")), "special");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "::ffff:10.1.2.3")), "special");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.9.7.7")), "nine");
	assert_string_equal(proxy_conf_sandbox(c, addr(&ss, "10.1.2.4")), "wide");
	assert_null(proxy_conf_sandbox(c, addr(&ss, "::a01:203")));
	proxy_conf_free(c);

	assert_int_equal(proxy_conf_new(&c), 0);
	assert_int_not_equal(proxy_conf_parse(c, mapped_again, strlen(mapped_again), "/dep", why,
	    sizeof(why)), 0);
	assert_string_equal(why, "line 2: sandbox: the network of line 1 again");
	proxy_conf_free(c);
}

static void
test_parse_refused(void **state)
{
	static const char *const bad[] = {
		"unknown_keyword x\n",
		"listen 127.0.0.1\n",
		"listen\n",
		"allow_private maybe\n",
		"plaintext_credentials on\n",
		"max_conns_per_sandbox 0\n",
		"max_conns_per_sandbox 4097\n",
		"head_timeout 0\n",
		"head_timeout 3601\n",
		"head_timeout 5s\n",
		"idle_timeout 0\n",
		"idle_timeout 86401\n",
		"plaintext_credentials\n",
		"sandbox 10.0.0.0/8\n",
		"sandbox 10.0.0.0/40 sbx\n",
		"cert a b\n",
		"broker_url\n",
		"sandbox_id " "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		"upstream_ca \"unterminated\n",
		"seccomp on\n",
		"seccomp\n",
		"seccomp yes no\n",
		"resolve_workers 0\n",
		"resolve_workers 257\n",
		"resolve_workers -1\n",
		"resolve_workers 8x\n",
		"resolve_workers\n",
		"resolve_workers 8 8\n",
		"user\n",
		"user \"\"\n",
		"user a b\n",
		"user aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",	/* 33 bytes */
		/* a single-valued keyword given twice, even with the same value */
		"listen 127.0.0.1:3128\nlisten 127.0.0.1:3129\n",
		"sandbox_id a\nsandbox_id b\n",
		"idle_timeout 5\nidle_timeout 5\n",
		"allow_private no\nallow_private yes\n",
		"cert a.pem\n# comment\ncert b.pem\n",
		"user a\nuser b\n",
		/* two sandbox lines for one network, however written */
		"sandbox 10.1.2.0/24 a\nsandbox 10.1.2.0/24 b\n",
		"sandbox 10.1.2.0/24 a\nsandbox 10.1.2.77/24 a\n",
		"sandbox 127.0.0.2 a\nsandbox 10.0.0.0/8 w\nsandbox 127.0.0.2/32 b\n",
		"sandbox 2001:db8::/32 a\nsandbox 2001:db8:0:0::1/32 b\n",
		"sandbox 192.168.0.0/17 a\nsandbox 192.168.1.0/17 b\n",
		/* a sidecar and a map: the sidecar's ID silently won for every source */
		"sandbox_id a\nsandbox 10.1.2.0/24 b\n",
		"sandbox 10.1.2.0/24 b\nallow_host x.example\nsandbox_id b\n",
	};
	struct proxy_conf *c;
	char why[256];
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		assert_int_equal(proxy_conf_new(&c), 0);
		why[0] = '\0';
		if (proxy_conf_parse(c, bad[i], strlen(bad[i]), "/dep", why, sizeof(why)) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_true(why[0] != '\0');
		proxy_conf_free(c);
	}
}

static void
test_ip_literal(void **state)
{
	assert_int_equal(proxy_is_ip_literal("127.0.0.1"), 1);
	assert_int_equal(proxy_is_ip_literal("::1"), 1);
	assert_int_equal(proxy_is_ip_literal("localhost"), 0);
	assert_int_equal(proxy_is_ip_literal("1.2.3"), 0);
	assert_int_equal(proxy_is_ip_literal("[::1]"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_private_addresses),
		cmocka_unit_test(test_split_hostport),
		cmocka_unit_test(test_sandbox_map),
		cmocka_unit_test(test_allowlist),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_parse_repeats),
		cmocka_unit_test(test_ip_literal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
