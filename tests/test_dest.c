/* test_dest.c: host, port, method and path normalisation, and prefix matching. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dest.h"
#include "err.h"
#include "util.h"

int main(void);

struct norm_case {
	const char *in;
	const char *want;	/* NULL: refused */
};

static const struct norm_case host_cases[] = {
	{ "api.github.com", "api.github.com" },
	{ "API.GitHub.COM", "api.github.com" },
	{ "api.github.com.", "api.github.com" },
	{ "API.GITHUB.COM.", "api.github.com" },
	{ "localhost", "localhost" },
	{ "a-b.example", "a-b.example" },
	{ "xn--bcher-kva.example", "xn--bcher-kva.example" },
	{ "1.2.3.4.example", "1.2.3.4.example" },
	{ "127.0.0.1", "127.0.0.1" },
	{ "127.0.0.1.", "127.0.0.1" },
	{ "255.255.255.255", "255.255.255.255" },
	{ "::1", "::1" },
	{ "0:0:0:0:0:0:0:1", "::1" },
	{ "2001:DB8::A", "2001:db8::a" },
	{ "::ffff:1.2.3.4", "::ffff:1.2.3.4" },
	{ "a.b.c.d.e.f.g", "a.b.c.d.e.f.g" },
	{ "", NULL },
	{ ".", NULL },
	{ "..", NULL },
	{ "api.github.com..", NULL },
	{ ".api.github.com", NULL },
	{ "api..github.com", NULL },
	{ "-api.github.com", NULL },
	{ "api-.github.com", NULL },
	{ "api.github.com-", NULL },
	{ "api_x.github.com", NULL },
	{ "api github.com", NULL },
	{ "api.github.com:443", NULL },
	{ "api.github.com/", NULL },
	{ "user@api.github.com", NULL },
	{ "b\xc3\xbc" "cher.example", NULL },
	{ "api.github.com\r", NULL },
	{ "[::1]", NULL },
	{ "fe80::1%eth0", NULL },
	{ ":::1", NULL },
	{ "1::2::3", NULL },
	{ "127.1", NULL },
	{ "127.0.1", NULL },
	{ "0x7f.0.0.1", NULL },
	{ "0177.0.0.1", NULL },
	{ "2130706433", NULL },
	{ "256.0.0.1", NULL },
	{ "1.2.3.4.5", NULL },
	{ "01.2.3.4", NULL },
	{ "example.123", NULL },
};

static void
test_host_table(void **state)
{
	char out[DEST_HOST_MAX + 1];
	size_t i;
	int rc;

	for (i = 0; i < UTIL_ARRAY_LEN(host_cases); i++) {
		rc = dest_host_normalise(host_cases[i].in, out, sizeof(out));
		if (host_cases[i].want == NULL) {
			if (rc != CB_ERR_INVAL)
				fail_msg("host case %zu (\"%s\") accepted as \"%s\"", i,
				    host_cases[i].in, out);
			assert_string_equal(out, "");
		} else {
			if (rc != 0)
				fail_msg("host case %zu (\"%s\") refused", i, host_cases[i].in);
			assert_string_equal(out, host_cases[i].want);
		}
	}
}

static void
test_host_lengths(void **state)
{
	char in[400], out[DEST_HOST_MAX + 1], small[8];
	size_t i;

	/* A 63-character label is fine, 64 is not. */
	memset(in, 'a', 63);
	memcpy(in + 63, ".com", 5);
	assert_int_equal(dest_host_normalise(in, out, sizeof(out)), 0);
	memset(in, 'a', 64);
	memcpy(in + 64, ".com", 5);
	assert_int_equal(dest_host_normalise(in, out, sizeof(out)), CB_ERR_INVAL);

	/* 253 characters are fine (254 with the root dot), 254 are not. */
	for (i = 0; i < 253; i++)
		in[i] = (i % 2 == 0) ? 'a' : '.';
	in[253] = '\0';
	assert_int_equal(dest_host_normalise(in, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 253);
	in[253] = '.';
	in[254] = '\0';
	assert_int_equal(dest_host_normalise(in, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 253);
	in[253] = 'a';
	assert_int_equal(dest_host_normalise(in, out, sizeof(out)), CB_ERR_INVAL);

	/* An output buffer too small is refused, never truncated. */
	assert_int_equal(dest_host_normalise("api.github.com", small, sizeof(small)),
	    CB_ERR_INVAL);
	assert_int_equal(dest_host_normalise("2001:db8::1", small, sizeof(small)),
	    CB_ERR_INVAL);
	assert_int_equal(dest_host_normalise(NULL, out, sizeof(out)), CB_ERR_INVAL);
	assert_int_equal(dest_host_normalise("a", NULL, 0), CB_ERR_INVAL);
}

static void
test_port_method(void **state)
{
	static const char *const good[] = { "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD",
	    "OPTIONS", "PROPFIND", "ABCDEFGHIJKLMNOP" };
	static const char *const bad[] = { "", "get", "Get", "GET ", " GET", "GE T",
	    "GET\r\n", "G-T", "ABCDEFGHIJKLMNOPQ", "POST1" };
	size_t i;

	assert_int_equal(dest_port_valid(1), 0);
	assert_int_equal(dest_port_valid(443), 0);
	assert_int_equal(dest_port_valid(65535), 0);
	assert_int_equal(dest_port_valid(0), CB_ERR_INVAL);
	assert_int_equal(dest_port_valid(-1), CB_ERR_INVAL);
	assert_int_equal(dest_port_valid(65536), CB_ERR_INVAL);
	assert_int_equal(dest_port_valid(4294967296LL + 443), CB_ERR_INVAL);
	for (i = 0; i < UTIL_ARRAY_LEN(good); i++) {
		if (dest_method_valid(good[i]) != 0)
			fail_msg("method \"%s\" refused", good[i]);
	}
	for (i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		if (dest_method_valid(bad[i]) != CB_ERR_INVAL)
			fail_msg("method \"%s\" accepted", bad[i]);
	}
	assert_int_equal(dest_method_valid(NULL), CB_ERR_INVAL);
}

static const struct norm_case path_cases[] = {
	{ "/", "/" },
	{ "/repos/acme/x", "/repos/acme/x" },
	{ "/repos/acme/", "/repos/acme/" },
	{ "/repos/acme/x?y=1", "/repos/acme/x?y=1" },
	{ "/repos/acme/?y", "/repos/acme/?y" },
	{ "/?", "/?" },
	{ "/repos/acme?x", "/repos/acme?x" },
	/* Unreserved characters are decoded, others kept with upper-case hex. */
	{ "/repos/%61cme/x", "/repos/acme/x" },
	{ "/repos/%41%7e%2d%5F", "/repos/A~-_" },
	{ "/a%3ab", "/a%3Ab" },
	{ "/a%20b", "/a%20b" },
	{ "/a%25b", "/a%25b" },
	{ "/a%3Fb", "/a%3Fb" },
	/* The query is kept verbatim, slashes and dots in it included. */
	{ "/x?a=../b//c", "/x?a=../b//c" },
	{ "/x?a=%2e%2E", "/x?a=%2E%2E" },
	{ "/x?a=%61", "/x?a=%61" },
	{ "/x?path=a%2fb%5C", "/x?path=a%2Fb%5C" },
	/* Ordinary file names with dots. */
	{ "/a/.well-known/x", "/a/.well-known/x" },
	{ "/a/..x/.b", "/a/..x/.b" },
	{ "/a/.%41/", "/a/.A/" },
	{ "/a/b.c", "/a/b.c" },
	{ "/a;b/c", "/a;b/c" },
	/* Refused: dot segments in every spelling. */
	{ "/repos/acme/../x", NULL },
	{ "/repos/acme/./x", NULL },
	{ "/repos/acme/..", NULL },
	{ "/repos/acme/.", NULL },
	{ "/..", NULL },
	{ "/.", NULL },
	{ "/../", NULL },
	{ "/repos/acme/..?x", NULL },
	{ "/repos/acme/../", NULL },
	{ "/repos/acme/%2e%2e/x", NULL },
	{ "/repos/acme/%2E%2E/x", NULL },
	{ "/repos/acme/.%2e/x", NULL },
	{ "/repos/acme/%2e/x", NULL },
	{ "/repos/acme/%2ex", NULL },
	{ "/repos/acme/..;/x", NULL },
	{ "/repos/acme/..;a=b/x", NULL },
	{ "/repos/acme/.;/x", NULL },
	{ "/repos/acme/.../x", NULL },
	{ "/repos/acme/....", NULL },
	{ "/repos/acme/..%3B/x", NULL },
	{ "/repos/acme/..%3b/x", NULL },
	{ "/repos/acme/..%20/x", NULL },
	{ "/repos/acme/.%3Bx/x", NULL },
	/* Encoded separators. */
	{ "/repos/acme%2Fevil", NULL },
	{ "/repos/acme%2fevil", NULL },
	{ "/repos/acme%5Cevil", NULL },
	{ "/repos/acme%5cevil", NULL },
	{ "/repos/acme%252e%252e/x", NULL },
	{ "/repos/acme%252Fx", NULL },
	{ "/repos/acme%255cx", NULL },
	{ "/repos/acme%2500", NULL },
	{ "/repos/acme%25%32%46x", NULL },
	{ "/repos/acme%25%32e", NULL },
	{ "/a/%252%352re/", NULL },	/* found by fuzz_dest: "%25" "2" "5" "2" */
	{ "/a%252", "/a%252" },
	{ "/a%25zz", "/a%25zz" },
	{ "/a%2541", "/a%2541" },
	{ "/x?a=%252F", "/x?a=%252F" },
	/* Empty segments. */
	{ "//x", NULL },
	{ "/repos//acme", NULL },
	{ "/repos/acme//", NULL },
	{ "//", NULL },
	/* Backslashes, controls, NUL, non-ASCII, fragments, bad escapes. */
	{ "/x\\y", NULL },
	{ "\\x", NULL },
	{ "/x%00", NULL },
	{ "/x%00y", NULL },
	{ "/x%0a", NULL },
	{ "/x%0D%0A", NULL },
	{ "/x%7f", NULL },
	{ "/x%1f", NULL },
	{ "/x\r\ny", NULL },
	{ "/x\ty", NULL },
	{ "/x y", NULL },
	{ "/x\x7fy", NULL },
	{ "/caf\xc3\xa9", NULL },
	{ "/x#frag", NULL },
	{ "/x?y#frag", NULL },
	{ "/x?y\\z", NULL },
	{ "/x?y%00", NULL },
	{ "/x?y z", NULL },
	{ "/x%", NULL },
	{ "/x%2", NULL },
	{ "/x%zz", NULL },
	{ "/x%g0", NULL },
	{ "/x%%41", NULL },
	/* Not origin-form. */
	{ "", NULL },
	{ "x", NULL },
	{ "*", NULL },
	{ "?x", NULL },
	{ "http://evil/", NULL },
};

static void
test_path_table(void **state)
{
	char out[DEST_PATH_MAX + 1];
	size_t i;
	int rc;

	for (i = 0; i < UTIL_ARRAY_LEN(path_cases); i++) {
		rc = dest_path_normalise(path_cases[i].in, out, sizeof(out));
		if (path_cases[i].want == NULL) {
			if (rc != CB_ERR_INVAL)
				fail_msg("path case %zu (\"%s\") accepted as \"%s\"", i,
				    path_cases[i].in, out);
			assert_string_equal(out, "");
		} else {
			if (rc != 0)
				fail_msg("path case %zu (\"%s\") refused", i, path_cases[i].in);
			if (strcmp(out, path_cases[i].want) != 0)
				fail_msg("path case %zu (\"%s\"): \"%s\", want \"%s\"", i,
				    path_cases[i].in, out, path_cases[i].want);
		}
	}
}

static void
test_path_lengths(void **state)
{
	static char in[DEST_PATH_MAX + 2], out[DEST_PATH_MAX + 1];
	char small[8];

	memset(in, 'a', sizeof(in));
	in[0] = '/';
	in[DEST_PATH_MAX] = '\0';
	assert_int_equal(dest_path_normalise(in, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), DEST_PATH_MAX);
	in[DEST_PATH_MAX] = 'a';
	in[DEST_PATH_MAX + 1] = '\0';
	assert_int_equal(dest_path_normalise(in, out, sizeof(out)), CB_ERR_INVAL);

	/* Too small an output is refused, not truncated into something else. */
	assert_int_equal(dest_path_normalise("/1234567", small, sizeof(small)),
	    CB_ERR_INVAL);
	assert_string_equal(small, "");
	assert_int_equal(dest_path_normalise("/123456", small, sizeof(small)), 0);
	assert_int_equal(dest_path_normalise("/1%3a4", small, sizeof(small)), 0);
	assert_string_equal(small, "/1%3A4");
	assert_int_equal(dest_path_normalise("/12%3A45", small, sizeof(small)),
	    CB_ERR_INVAL);
	/* What counts is the normalised length. */
	assert_int_equal(dest_path_normalise("/%61%62%63%64", small, sizeof(small)), 0);
	assert_string_equal(small, "/abcd");
	assert_int_equal(dest_path_normalise(NULL, out, sizeof(out)), CB_ERR_INVAL);
	assert_int_equal(dest_path_normalise("/", NULL, 0), CB_ERR_INVAL);
}

static void
test_prefix_valid(void **state)
{
	static const char *const good[] = { "/", "/repos/acme/", "/repos/acme",
	    "/repos/acme/x.git", "/a%3Ab/" };
	static const char *const bad[] = { "", "repos/", "/repos/acme?x", "/repos/acme/?",
	    "/repos/../x", "/repos/./x", "/repos//x", "//", "/repos/%2e%2e/",
	    "/repos%2Fx", "/repos\\x", "/x#y", "/x%00",
	    /* not in normal form: matching would never see these spellings */
	    "/repos/%61cme/", "/a%3ab/", NULL };
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(good); i++) {
		if (dest_prefix_valid(good[i]) != 0)
			fail_msg("prefix \"%s\" refused", good[i]);
	}
	for (i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
		if (dest_prefix_valid(bad[i]) != CB_ERR_INVAL)
			fail_msg("prefix \"%s\" accepted", bad[i] != NULL ? bad[i] : "(null)");
	}
}

struct match_case {
	const char *prefix;
	const char *path;	/* raw request path, normalised first */
	int want;		/* 1 admitted, 0 not, -1 refused by normalisation */
};

static const struct match_case match_cases[] = {
	{ "/repos/acme/", "/repos/acme/x", 1 },
	{ "/repos/acme/", "/repos/acme/", 1 },
	{ "/repos/acme/", "/repos/acme/x/y?z=1", 1 },
	{ "/repos/acme/", "/repos/acme/?z", 1 },
	{ "/repos/acme/", "/repos/acme", 0 },
	{ "/repos/acme/", "/repos/acme-evil/", 0 },
	{ "/repos/acme/", "/repos/acme-evil/x", 0 },
	{ "/repos/acme/", "/repos/acmex", 0 },
	{ "/repos/acme/", "/repos/ACME/x", 0 },
	{ "/repos/acme/", "/repos/%61cme/x", 1 },
	{ "/repos/acme/", "/repos/acme/../x", -1 },
	{ "/repos/acme/", "/repos/acme/%2e%2e/x", -1 },
	{ "/repos/acme/", "/repos/acme/%2E%2E/evil", -1 },
	{ "/repos/acme/", "/repos/acme%2Fevil", -1 },
	{ "/repos/acme/", "/repos/acme/./x", -1 },
	{ "/repos/acme/", "/repos/acme//x", -1 },
	{ "/repos/acme/", "/repos/acme/..;/x", -1 },
	{ "/repos/acme/", "/repos/acme\\..\\x", -1 },
	{ "/repos/acme/", "//repos/acme/x", -1 },
	{ "/repos/acme/", "/x?/repos/acme/", 0 },
	{ "/repos/acme", "/repos/acme", 1 },
	{ "/repos/acme", "/repos/acme/x", 1 },
	{ "/repos/acme", "/repos/acme/", 1 },
	{ "/repos/acme", "/repos/acme?x", 1 },
	{ "/repos/acme", "/repos/acmex", 0 },
	{ "/repos/acme", "/repos/acme-evil/", 0 },
	{ "/repos/acme", "/repos/acme;x", 0 },
	{ "/repos/acme", "/repos/acm", 0 },
	{ "/repos/acme", "/repos", 0 },
	{ "/repos/acme", "/", 0 },
	{ "/", "/", 1 },
	{ "/", "/anything/at/all?x", 1 },
	{ "", "/anything", 1 },
	{ NULL, "/anything", 1 },
};

static void
test_match_table(void **state)
{
	char norm[DEST_PATH_MAX + 1];
	const struct match_case *m;
	size_t i;
	int got;

	for (i = 0; i < UTIL_ARRAY_LEN(match_cases); i++) {
		m = &match_cases[i];
		if (m->prefix != NULL && m->prefix[0] != '\0')
			assert_int_equal(dest_prefix_valid(m->prefix), 0);
		if (dest_path_normalise(m->path, norm, sizeof(norm)) != 0)
			got = -1;
		else
			got = dest_path_matches(m->prefix, norm);
		if (got != m->want)
			fail_msg("match case %zu (\"%s\" vs \"%s\"): %d, want %d", i,
			    m->prefix != NULL ? m->prefix : "(null)", m->path, got, m->want);
	}
	assert_int_equal(dest_path_matches("/x", NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_table),
		cmocka_unit_test(test_host_lengths),
		cmocka_unit_test(test_port_method),
		cmocka_unit_test(test_path_table),
		cmocka_unit_test(test_path_lengths),
		cmocka_unit_test(test_prefix_valid),
		cmocka_unit_test(test_match_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
