/* test_conf.c: the shared lexer, credbrokerd.conf parsing and errors, paths, policy. */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "util.h"

#define REQ \
	"listen 127.0.0.1:8443\n" \
	"database credbroker.db\n" \
	"master_key master.key\n" \
	"tls_cert pki/server.pem\n" \
	"tls_key pki/server.key\n" \
	"client_ca pki/ca.pem\n"

static int
parse(const char *text, const char *dir, struct broker_conf **c, char *why, size_t whylen)
{
	return conf_parse_broker(text, strlen(text), dir, c, why, whylen);
}

static void
test_defaults(void **state)
{
	struct broker_conf *c = NULL;
	char why[512];

	assert_int_equal(parse(REQ, "/etc/cb", &c, why, sizeof(why)), 0);
	assert_non_null(c);
	assert_string_equal(c->listen_addr, "127.0.0.1");
	assert_int_equal(c->listen_port, 8443);
	assert_string_equal(c->database, "/etc/cb/credbroker.db");
	assert_string_equal(c->master_key, "/etc/cb/master.key");
	assert_string_equal(c->tls_cert, "/etc/cb/pki/server.pem");
	assert_string_equal(c->tls_key, "/etc/cb/pki/server.key");
	assert_string_equal(c->client_ca, "/etc/cb/pki/ca.pem");
	assert_null(c->user);
	assert_int_equal(c->max_body, 65536);
	assert_int_equal(c->threads, 2);
	assert_int_equal(c->conn_timeout_s, 30);
	assert_int_equal(c->conn_limit, 1024);
	assert_int_equal(c->per_ip_limit, 256);
	assert_int_equal(c->purge_interval_s, 5);
	assert_int_equal(c->purge_batch, 1000);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_int_equal(c->nidents, 0);
#ifdef __linux__
	/* The seccomp filter is on unless the file says `seccomp no`. */
	assert_int_equal(c->seccomp, 1);
#endif
	conf_free_broker(c);
	c = NULL;
	assert_int_equal(parse(REQ "seccomp yes\n", "/etc/cb", &c, why, sizeof(why)), 0);
	assert_int_equal(c->seccomp, 1);
	conf_free_broker(c);
	conf_free_broker(NULL);
}

static void
test_full(void **state)
{
	static const char text[] =
	    "# a comment line\r\n"
	    "\n"
	    "   \t \n"
	    "listen [::1]:9443   # trailing comment\r\n"
	    "database \"/var/lib/cb/my db.sqlite\"\n"
	    "master_key /etc/cb/master.key\n"
	    "tls_cert\tserver.pem\n"
	    "tls_key server.key\n"
	    "client_ca ../ca.pem\n"
	    "user credbroker\n"
	    "max_body 1024\n"
	    "threads 8\n"
	    "conn_timeout 10\n"
	    "conn_limit 100\n"
	    "per_ip_limit 7\n"
	    "purge_interval 60\n"
	    "purge_batch 50\n"
	    "log_level debug\n"
	    "seccomp no\n"
	    "identity spiffe://x/harness role harness max_ttl 600 secrets github,openai\n"
	    "identity spiffe://x/h2 role harness secrets * max_ttl 3600\n"
	    "identity spiffe://x/h3 role harness\n"
	    "identity spiffe://x/proxy role proxy\n"
	    "identity \"admin cn\" role admin";	/* no final newline */
	struct broker_conf *c = NULL;
	const struct identity *id;
	char why[512];

	assert_int_equal(parse(text, "/d", &c, why, sizeof(why)), 0);
	assert_string_equal(c->listen_addr, "::1");
	assert_int_equal(c->listen_port, 9443);
	assert_string_equal(c->database, "/var/lib/cb/my db.sqlite");
	assert_string_equal(c->master_key, "/etc/cb/master.key");
	assert_string_equal(c->tls_cert, "/d/server.pem");
	assert_string_equal(c->client_ca, "/d/../ca.pem");
	assert_string_equal(c->user, "credbroker");
	assert_int_equal(c->max_body, 1024);
	assert_int_equal(c->threads, 8);
	assert_int_equal(c->conn_timeout_s, 10);
	assert_int_equal(c->conn_limit, 100);
	assert_int_equal(c->per_ip_limit, 7);
	assert_int_equal(c->purge_interval_s, 60);
	assert_int_equal(c->purge_batch, 50);
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_int_equal(c->seccomp, 0);
	assert_int_equal(c->nidents, 5);

	id = conf_find_identity(c, "spiffe://x/harness");
	assert_non_null(id);
	assert_int_equal(id->role, ROLE_HARNESS);
	assert_int_equal(id->max_ttl_s, 600);
	assert_int_equal(id->nsecrets, 2);
	assert_false(id->all_secrets);
	assert_string_equal(id->secrets[0], "github");
	assert_string_equal(id->secrets[1], "openai");

	id = conf_find_identity(c, "spiffe://x/h2");
	assert_non_null(id);
	assert_true(id->all_secrets);
	assert_int_equal(id->max_ttl_s, 3600);

	id = conf_find_identity(c, "spiffe://x/h3");
	assert_non_null(id);
	assert_int_equal(id->max_ttl_s, 0);
	assert_int_equal(id->nsecrets, 0);

	id = conf_find_identity(c, "spiffe://x/proxy");
	assert_non_null(id);
	assert_int_equal(id->role, ROLE_PROXY);
	id = conf_find_identity(c, "admin cn");
	assert_non_null(id);
	assert_int_equal(id->role, ROLE_ADMIN);
	assert_null(conf_find_identity(c, "spiffe://x/HARNESS"));
	assert_null(conf_find_identity(c, "spiffe://x/harnes"));
	assert_null(conf_find_identity(c, NULL));
	assert_null(conf_find_identity(NULL, "admin cn"));
	conf_free_broker(c);
}

static void
test_policy(void **state)
{
	static const char text[] = REQ
	    "identity h1 role harness max_ttl 600 secrets github,open-ai.v2\n"
	    "identity h2 role harness max_ttl 60 secrets *\n"
	    "identity h3 role harness max_ttl 60\n"
	    "identity p role proxy\n"
	    "identity a role admin\n";
	static const struct {
		const char *who, *secret;
		int want;
	} cases[] = {
		{ "h1", "github", 1 },
		{ "h1", "open-ai.v2", 1 },
		{ "h1", "gitlab", 0 },
		{ "h1", "GITHUB", 0 },
		{ "h1", "githu", 0 },
		{ "h1", "*", 0 },
		{ "h1", "", 0 },
		{ "h2", "anything", 1 },
		{ "h3", "github", 0 },
		{ "p", "github", 0 },
		{ "a", "github", 0 },
	};
	struct broker_conf *c = NULL;
	char why[512];
	size_t i;

	assert_int_equal(parse(text, NULL, &c, why, sizeof(why)), 0);
	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		const struct identity *id = conf_find_identity(c, cases[i].who);

		assert_non_null(id);
		if (conf_may_grant(id, cases[i].secret) != cases[i].want)
			fail_msg("case %zu: %s may grant %s: want %d", i, cases[i].who,
			    cases[i].secret, cases[i].want);
	}
	assert_int_equal(conf_may_grant(NULL, "github"), 0);
	assert_int_equal(conf_may_grant(conf_find_identity(c, "h2"), NULL), 0);
	/* dir NULL keeps relative paths as written */
	assert_string_equal(c->database, "credbroker.db");
	assert_string_equal(conf_role_name(ROLE_HARNESS), "harness");
	assert_string_equal(conf_role_name(ROLE_PROXY), "proxy");
	assert_string_equal(conf_role_name(ROLE_ADMIN), "admin");
	assert_string_equal(conf_role_name(ROLE_NONE), "none");
	conf_free_broker(c);
}

/* Every error case: the text, the error code, the line in the message, a word of it. */
static void
test_errors(void **state)
{
	static const struct {
		const char *text;
		int rc;
		const char *where;	/* "line N:" prefix, or NULL for file-level errors */
		const char *msg;
	} cases[] = {
		{ REQ "bogus 1\n", CB_ERR_CONFIG, "line 7:", "unknown keyword 'bogus'" },
		{ REQ "\nlisten 127.0.0.1:1\n", CB_ERR_CONFIG, "line 8:", "first on line 1" },
		{ REQ "database other.db\n", CB_ERR_CONFIG, "line 7:", "given twice" },
		{ REQ "user a\nuser b\n", CB_ERR_CONFIG, "line 8:", "given twice" },
		{ REQ "seccomp yes\nseccomp no\n", CB_ERR_CONFIG, "line 8:", "given twice" },
		{ REQ "seccomp on\n", CB_ERR_CONFIG, "line 7:", "seccomp: 'on' is not yes or no" },
		{ REQ "seccomp Yes\n", CB_ERR_CONFIG, "line 7:", "not yes or no" },
		{ REQ "seccomp\n", CB_ERR_CONFIG, "line 7:", "exactly one argument" },
		{ REQ "seccomp yes no\n", CB_ERR_CONFIG, "line 7:", "exactly one argument" },
		{ REQ "threads 2\nthreads 2\n", CB_ERR_CONFIG, "line 8:", "given twice" },
		{ REQ "threads abc\n", CB_ERR_CONFIG, "line 7:", "threads: 'abc'" },
		{ REQ "threads 0\n", CB_ERR_CONFIG, "line 7:", "1..64" },
		{ REQ "threads 65\n", CB_ERR_CONFIG, "line 7:", "1..64" },
		{ REQ "threads 4x\n", CB_ERR_CONFIG, "line 7:", "not a number" },
		{ REQ "threads \"\"\n", CB_ERR_CONFIG, "line 7:", "not a number" },
		{ REQ "max_body -1\n", CB_ERR_CONFIG, "line 7:", "max_body" },
		{ REQ "max_body 99999999999999999999999\n", CB_ERR_CONFIG, "line 7:", "max_body" },
		{ REQ "conn_timeout 0\n", CB_ERR_CONFIG, "line 7:", "conn_timeout" },
		{ REQ "conn_limit 1 2\n", CB_ERR_CONFIG, "line 7:", "exactly one argument" },
		{ REQ "per_ip_limit\n", CB_ERR_CONFIG, "line 7:", "exactly one argument" },
		{ REQ "purge_interval 0\n", CB_ERR_CONFIG, "line 7:", "purge_interval" },
		{ REQ "purge_batch 100001\n", CB_ERR_CONFIG, "line 7:", "purge_batch" },
		{ REQ "log_level loud\n", CB_ERR_CONFIG, "line 7:", "log_level" },
		{ REQ "user \"\"\n", CB_ERR_CONFIG, "line 7:", "user" },
		{ "listen 127.0.0.1\n", CB_ERR_CONFIG, "line 1:", "ADDR:PORT" },
		{ "listen localhost:8443\n", CB_ERR_CONFIG, "line 1:", "not an IPv4" },
		{ "listen 127.0.0.1:0\n", CB_ERR_CONFIG, "line 1:", "bad port" },
		{ "listen 127.0.0.1:65536\n", CB_ERR_CONFIG, "line 1:", "bad port" },
		{ "listen ::1:8443\n", CB_ERR_CONFIG, "line 1:", "not an IPv4" },
		{ "listen [::1]8443\n", CB_ERR_CONFIG, "line 1:", "[IPV6]:PORT" },
		{ "listen [1.2.3.4]:1\n", CB_ERR_CONFIG, "line 1:", "not an IPv6" },
		{ "database \"\"\n", CB_ERR_CONFIG, "line 1:", "empty" },
		{ REQ "identity a role admin\nidentity a role proxy\n", CB_ERR_CONFIG, "line 8:",
		    "defined twice" },
		{ REQ "identity a role root\n", CB_ERR_CONFIG, "line 7:", "role 'root'" },
		{ REQ "identity a harness\n", CB_ERR_CONFIG, "line 7:", "usage" },
		{ REQ "identity a\n", CB_ERR_CONFIG, "line 7:", "usage" },
		{ REQ "identity a role proxy max_ttl 60\n", CB_ERR_CONFIG, "line 7:",
		    "harness role only" },
		{ REQ "identity a role admin secrets *\n", CB_ERR_CONFIG, "line 7:",
		    "harness role only" },
		{ REQ "identity a role harness max_ttl\n", CB_ERR_CONFIG, "line 7:", "needs a value" },
		{ REQ "identity a role harness max_ttl 0\n", CB_ERR_CONFIG, "line 7:", "max_ttl" },
		{ REQ "identity a role harness max_ttl 1h\n", CB_ERR_CONFIG, "line 7:", "max_ttl" },
		{ REQ "identity a role harness max_ttl 1 max_ttl 2\n", CB_ERR_CONFIG, "line 7:",
		    "twice" },
		{ REQ "identity a role harness secrets a secrets b\n", CB_ERR_CONFIG, "line 7:",
		    "twice" },
		{ REQ "identity a role harness secrets a,,b\n", CB_ERR_CONFIG, "line 7:", "empty" },
		{ REQ "identity a role harness secrets a,\n", CB_ERR_CONFIG, "line 7:", "empty" },
		{ REQ "identity a role harness secrets a,*\n", CB_ERR_CONFIG, "line 7:",
		    "not a valid secret name" },
		{ REQ "identity a role harness secrets -a\n", CB_ERR_CONFIG, "line 7:",
		    "not a valid secret name" },
		{ REQ "identity a role harness secrets a,a\n", CB_ERR_CONFIG, "line 7:",
		    "listed twice" },
		{ REQ "identity a role harness ttl 5\n", CB_ERR_CONFIG, "line 7:",
		    "unknown option 'ttl'" },
		{ REQ "identity \"\" role admin\n", CB_ERR_CONFIG, "line 7:", "empty" },
		{ REQ "database \"unterminated\n", CB_ERR_CONFIG, "line 7:", "unterminated quote" },
		{ REQ "user ab\"c\"\n", CB_ERR_CONFIG, "line 7:", "quote inside a word" },
		{ REQ "user \"ab\"c\n", CB_ERR_CONFIG, "line 7:", "closing quote" },
		{ REQ "user a\x01\n", CB_ERR_CONFIG, "line 7:", "control character 0x01" },
		{ REQ "user a\rb\n", CB_ERR_CONFIG, "line 7:", "control character 0x0d" },
		{ "database x\n", CB_ERR_CONFIG, NULL, "missing required keyword 'listen'" },
		{ "listen 127.0.0.1:1\n", CB_ERR_CONFIG, NULL, "missing required keyword 'database'" },
		{ "", CB_ERR_CONFIG, NULL, "missing required keyword" },
	};
	struct broker_conf *c;
	char why[512], want[64];
	size_t i;
	int rc;

	for (i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		c = (struct broker_conf *)1;
		why[0] = '\0';
		rc = parse(cases[i].text, "/d", &c, why, sizeof(why));
		if (rc != cases[i].rc || c != NULL)
			fail_msg("case %zu: rc %d want %d (%s)", i, rc, cases[i].rc, why);
		if (cases[i].where != NULL) {
			snprintf(want, sizeof(want), "%s ", cases[i].where);
			if (strncmp(why, want, strlen(want)) != 0)
				fail_msg("case %zu: '%s' does not start with '%s'", i, why, want);
		}
		if (strstr(why, cases[i].msg) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, why, cases[i].msg);
	}
}

static void
test_bounds(void **state)
{
	struct broker_conf *c = NULL;
	char why[512];
	char *text;
	size_t i, off, cap = 2 * 1024 * 1024;
	int rc;

	text = malloc(cap);
	assert_non_null(text);

	/* a line of exactly 4096 bytes passes the lexer, 4097 does not */
	off = (size_t)snprintf(text, cap, "%s", REQ "user ");
	memset(text + off, 'u', 4096 - 5);
	off += 4096 - 5;
	text[off] = '\0';
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_non_null(strstr(why, "user: empty or over-long"));	/* the lexer let it through */
	text[off++] = 'u';
	text[off] = '\0';
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_string_equal(why, "line 7: line longer than 4096 bytes");

	/* 64 words are fine for the lexer, 65 are not */
	off = (size_t)snprintf(text, cap, "%s", REQ "identity a role harness");
	for (i = 4; i < 64; i += 2)
		off += (size_t)snprintf(text + off, cap - off, " max_ttl 1");
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_non_null(strstr(why, "max_ttl given twice"));
	off += (size_t)snprintf(text + off, cap - off, " x");
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_string_equal(why, "line 7: more than 64 words on a line");

	/* 1024 identities pass, the 1025th does not */
	off = (size_t)snprintf(text, cap, "%s", REQ);
	for (i = 0; i < 1024; i++)
		off += (size_t)snprintf(text + off, cap - off, "identity id%zu role proxy\n", i);
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, 0);
	assert_int_equal(c->nidents, 1024);
	assert_non_null(conf_find_identity(c, "id1023"));
	conf_free_broker(c);
	c = NULL;
	off += (size_t)snprintf(text + off, cap - off, "identity last role proxy\n");
	rc = parse(text, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_non_null(strstr(why, "line 1031: more than 1024 identities"));

	/* over 1 MiB is refused before lexing */
	memset(text, '#', 1024 * 1024 + 1);
	rc = conf_parse_broker(text, 1024 * 1024 + 1, NULL, &c, why, sizeof(why));
	assert_int_equal(rc, CB_ERR_LIMIT);
	assert_null(c);

	/* a NUL byte inside the buffer is a control character */
	rc = conf_parse_broker(REQ "user a\0b\n", sizeof(REQ "user a\0b\n") - 1, NULL, &c, why,
	    sizeof(why));
	assert_int_equal(rc, CB_ERR_CONFIG);
	assert_non_null(strstr(why, "line 7: control character 0x00"));
	free(text);
}

struct lines {
	int n;
	int lineno[8];
	int argc[8];
	char words[8][4][32];
};

static int
collect(void *arg, int lineno, int argc, char **argv, char *why, size_t whylen)
{
	struct lines *l = arg;
	int i;

	if (strcmp(argv[0], "fail") == 0) {
		snprintf(why, whylen, "custom failure at %d", lineno);
		return CB_ERR_DENIED;
	}
	if (l->n >= 8)
		return CB_ERR_LIMIT;
	l->lineno[l->n] = lineno;
	l->argc[l->n] = argc;
	for (i = 0; i < argc && i < 4; i++)
		util_strlcpy(l->words[l->n][i], argv[i], sizeof(l->words[l->n][i]));
	assert_null(argv[argc]);
	l->n++;
	return 0;
}

static void
test_lexer(void **state)
{
	static const char text[] =
	    "a b\n"
	    "# comment\n"
	    "\n"
	    "  \"quoted word\"  \"\" x#y # comment\n"
	    "\tsingle\r\n";
	struct lines l;
	char why[256];
	char path[] = "/tmp/test_conf_XXXXXX";
	FILE *f;
	int fd;

	memset(&l, 0, sizeof(l));
	assert_int_equal(conf_parse_lines(text, strlen(text), collect, &l, why, sizeof(why)), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.lineno[0], 1);
	assert_int_equal(l.argc[0], 2);
	assert_string_equal(l.words[0][1], "b");
	assert_int_equal(l.lineno[1], 4);
	assert_int_equal(l.argc[1], 3);
	assert_string_equal(l.words[1][0], "quoted word");
	assert_string_equal(l.words[1][1], "");
	assert_string_equal(l.words[1][2], "x#y");
	assert_int_equal(l.lineno[2], 5);
	assert_int_equal(l.argc[2], 1);
	assert_string_equal(l.words[2][0], "single");

	/* fn's own message is passed through unchanged, with its error code */
	memset(&l, 0, sizeof(l));
	assert_int_equal(conf_parse_lines("ok\n\nfail now\n", 12, collect, &l, why, sizeof(why)),
	    CB_ERR_DENIED);
	assert_string_equal(why, "custom failure at 3");
	assert_int_equal(l.n, 1);

	/* from a file, the lexer's errors name it */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("a\nb \"open\n", f);
	fclose(f);
	memset(&l, 0, sizeof(l));
	assert_int_equal(conf_load_lines(path, collect, &l, why, sizeof(why)), CB_ERR_CONFIG);
	assert_non_null(strstr(why, ":2: unterminated quote"));
	assert_int_equal(strncmp(why, path, strlen(path)), 0);
	unlink(path);
	assert_int_equal(conf_load_lines(path, collect, &l, why, sizeof(why)), CB_ERR_IO);
	assert_non_null(strstr(why, path));
}

static void
test_load_file(void **state)
{
	char dir[] = "/tmp/test_conf_dXXXXXX";
	char path[PATH_MAX], real[PATH_MAX], want[2 * PATH_MAX], rel[PATH_MAX];
	char cwd[PATH_MAX];
	struct broker_conf *c = NULL;
	char why[512];
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_non_null(realpath(dir, real));
	snprintf(path, sizeof(path), "%s/credbrokerd.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(REQ "identity spiffe://credbroker.dev/admin role admin\n", f);
	fclose(f);

	/* a relative config path still yields absolute paths */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(rel, sizeof(rel), "%s/credbrokerd.conf", dir + strlen("/tmp/"));
	assert_int_equal(conf_load_broker(rel, &c, why, sizeof(why)), 0);
	assert_int_equal(chdir(cwd), 0);
	snprintf(want, sizeof(want), "%s/credbroker.db", real);
	assert_string_equal(c->database, want);
	snprintf(want, sizeof(want), "%s/pki/ca.pem", real);
	assert_string_equal(c->client_ca, want);
	assert_string_equal(c->path, rel);
	assert_int_equal(c->nidents, 1);
	conf_free_broker(c);
	c = NULL;

	/* errors name the file and the line */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(REQ "\nthreads many\n", f);
	fclose(f);
	assert_int_equal(conf_load_broker(path, &c, why, sizeof(why)), CB_ERR_CONFIG);
	assert_null(c);
	snprintf(want, sizeof(want), "%s:8: threads: 'many'", path);
	assert_int_equal(strncmp(why, want, strlen(want)), 0);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs("listen 127.0.0.1:1\n", f);
	fclose(f);
	assert_int_equal(conf_load_broker(path, &c, why, sizeof(why)), CB_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s: missing required keyword 'database'", path);
	assert_string_equal(why, want);

	assert_int_equal(unlink(path), 0);
	assert_int_equal(conf_load_broker(path, &c, why, sizeof(why)), CB_ERR_IO);
	assert_null(c);
	assert_non_null(strstr(why, path));
	assert_non_null(strstr(why, "No such file"));

	/* a directory is not a configuration file */
	assert_int_equal(conf_load_broker(dir, &c, why, sizeof(why)), CB_ERR_CONFIG);
	assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_lexer),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
