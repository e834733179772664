/*
 * cli.c: credbroker, the admin and harness command-line tool: main, global options,
 * finding the broker and its credentials (-d DIR / CREDBROKER_DIR or explicit
 * --url/--cert/--key/--cacert), error reporting with exit codes, and output helpers.
 * The commands live in cli_secret.c, cli_grant.c and cli_admin.c.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "priv.h"
#include "util.h"

#include "cli.h"

#define CLI_OPTS_MAX	48
#define CLI_CONF_MAX	(256 * 1024)

static const char cli_main_usage[] =
"usage: credbroker [-d DIR] [--url URL --cert FILE --key FILE --cacert FILE] [--json]\n"
"                  COMMAND [ARGS] [--help]\n"
"\n"
"Commands:\n"
"  init DIR                       create a development deployment in DIR\n"
"  secret put NAME [--host HOST]... [--max-ttl SECONDS] [--from-file FILE]\n"
"  secret list | show NAME | rm NAME\n"
"  grant mint --sandbox ID --secret NAME --host HOST [options]\n"
"  grant show ID | revoke ID\n"
"  sandbox revoke ID\n"
"  key rotate [--kind data|signing|both]\n"
"  audit tail [--after SEQ] [--limit N]\n"
"  audit verify [--db FILE [--master-key KEYFILE]]\n"
"\n"
"The broker and the credentials come from the deployment directory (-d DIR, or the\n"
"CREDBROKER_DIR environment variable): admin commands use DIR/pki/admin.{pem,key},\n"
"grant and sandbox commands DIR/pki/harness.{pem,key}, the CA is DIR/pki/ca.pem and the\n"
"URL comes from the listen line of DIR/credbrokerd.conf. --url, --cert, --key and\n"
"--cacert override them. --json prints the broker's JSON answer.\n"
"\n"
"Exit status: 0 ok, 1 refused by the broker or verification failed, 2 usage,\n"
"3 connection or TLS problem, 4 other error (broker failure, bad answer, local I/O).\n"
"See credbroker(1).\n";

int
cli_error(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("credbroker: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("credbroker: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'credbroker %s%s--help'.\n", cmd != NULL ? cmd : "",
	    cmd != NULL ? " " : "");
	return CLI_EXIT_USAGE;
}

int
cli_fail(cbc_t *c, int rc, const char *what)
{
	const char *msg = cbc_errmsg(c);

	if (msg == NULL || *msg == '\0')
		msg = cbc_strerror(rc);
	fprintf(stderr, "credbroker: %s: %s\n", what, msg);
	switch (rc) {
	case CBC_E_REFUSED:
		if (cbc_http_status(c) == 403 && strcmp(cbc_error_code(c), "forbidden") == 0)
			fprintf(stderr, "credbroker: hint: admin commands need the admin "
			    "certificate, grant and sandbox commands the harness one\n");
		return CLI_EXIT_REFUSED;
	case CBC_E_USAGE:
		return CLI_EXIT_USAGE;
	case CBC_E_CONNECT:
		return CLI_EXIT_CONNECT;
	default:
		return CLI_EXIT_OTHER;
	}
}

int
cli_number(const char *cmd, const char *opt, const char *s, long long min, long long max,
    long long *out)
{
	if (util_strtoll(s, min, max, out) != 0)
		return cli_usage(cmd, "%s wants a whole number from %lld to %lld, not '%s'", opt,
		    min, max, s);
	return 0;
}

int
cli_global_opt(struct cli *g, int ch, const char *arg)
{
	switch (ch) {
	case 'd':
		g->dir = arg;
		return 1;
	case CLI_OPT_URL:
		g->url = arg;
		return 1;
	case CLI_OPT_CERT:
		g->cert = arg;
		return 1;
	case CLI_OPT_KEY:
		g->key = arg;
		return 1;
	case CLI_OPT_CACERT:
		g->cacert = arg;
		return 1;
	case CLI_OPT_JSON:
		g->json = 1;
		return 1;
	case 'h':
		g->help = 1;
		return 1;
	default:
		return 0;
	}
}

int
cli_getopt(struct cli *g, const char *cmd, int argc, char **argv, const char *shortopts,
    const struct option *lopts, cli_opt_fn fn, void *arg, int *first)
{
	static const struct option globals[] = { CLI_GLOBAL_LONGOPTS };
	struct option all[CLI_OPTS_MAX];
	char so[64];
	size_t n = 0, i;
	int ch, rc;

	*first = argc;
	for (i = 0; lopts != NULL && lopts[i].name != NULL && n < CLI_OPTS_MAX - 8; i++)
		all[n++] = lopts[i];
	for (i = 0; i < UTIL_ARRAY_LEN(globals); i++)
		all[n++] = globals[i];
	memset(&all[n], 0, sizeof(all[n]));
	/* Options and operands may be mixed: "secret put NAME --host H" (GNU permutation). */
	snprintf(so, sizeof(so), ":%sd:h", shortopts != NULL ? shortopts : "");
	optind = 0;	/* re-initialise getopt for this argv */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, so, all, NULL)) != -1) {
		if (ch == '?')
			return cli_usage(cmd, "%s: unknown option '%s'", cmd, argv[optind - 1]);
		if (ch == ':')
			return cli_usage(cmd, "%s: option '%s' needs a value", cmd,
			    argv[optind - 1]);
		if (cli_global_opt(g, ch, optarg))
			continue;
		if (fn == NULL || (rc = fn(arg, ch, optarg)) != 0)
			return fn == NULL ? CLI_EXIT_USAGE : rc;
	}
	*first = optind;
	return 0;
}

/* ---- finding the broker ------------------------------------------------------- */

struct cli_listen {
	char addr[256];
	int found;
};

static int
cli_listen_line(void *arg, int lineno, int argc, char **argv, char *why, size_t whylen)
{
	struct cli_listen *l = arg;

	if (argc >= 2 && strcmp(argv[0], "listen") == 0) {
		util_strlcpy(l->addr, argv[1], sizeof(l->addr));
		l->found = 1;
	}
	return 0;
}

/* "https://HOST:PORT" from credbrokerd.conf's "listen ADDR:PORT" into url. */
static int
cli_conf_url(const char *dir, char *url, size_t urllen)
{
	struct cli_listen l;
	uint8_t *buf = NULL;
	size_t len = 0;
	char *path, *colon, *host, why[256];
	int rc;

	memset(&l, 0, sizeof(l));
	if ((path = util_path_join(dir, "credbrokerd.conf")) == NULL)
		return cli_error(CLI_EXIT_OTHER, "out of memory");
	if (util_read_file(path, CLI_CONF_MAX, &buf, &len) != 0) {
		rc = cli_error(CLI_EXIT_OTHER, "cannot read %s: %s (is %s a deployment made by "
		    "'credbroker init'? or give --url)", path, strerror(errno), dir);
		goto out;
	}
	why[0] = '\0';
	if (conf_parse_lines((const char *)buf, len, cli_listen_line, &l, why,
	    sizeof(why)) != 0 || !l.found) {
		rc = cli_error(CLI_EXIT_OTHER, "%s: no usable 'listen ADDR:PORT' line%s%s (or "
		    "give --url)", path, why[0] != '\0' ? ": " : "", why);
		goto out;
	}
	if ((colon = strrchr(l.addr, ':')) == NULL || colon == l.addr || colon[1] == '\0') {
		rc = cli_error(CLI_EXIT_OTHER, "%s: listen '%s' is not ADDR:PORT (or give --url)",
		    path, l.addr);
		goto out;
	}
	*colon = '\0';
	host = l.addr;
	/* A wildcard listener is reached on loopback, which the server certificate names. */
	if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0)
		host = "[::1]";
	if (strchr(host, ':') != NULL && host[0] != '[')
		snprintf(url, urllen, "https://[%s]:%s", host, colon + 1);
	else
		snprintf(url, urllen, "https://%s:%s", host, colon + 1);
	rc = 0;
out:
	free(buf);
	free(path);
	return rc;
}

int
cli_connect(struct cli *g, enum cli_role role, long timeout_ms, cbc_t **out)
{
	const char *name = role == CLI_ROLE_ADMIN ? "admin" : "harness";
	char url[512], f[64];
	char *cert = NULL, *key = NULL, *ca = NULL;
	struct cbc_opts o;
	int rc;

	*out = NULL;
	if (g->dir == NULL && (g->url == NULL || g->cert == NULL || g->key == NULL ||
	    g->cacert == NULL))
		return cli_usage(NULL, "where is the broker? Give -d DIR (or set CREDBROKER_DIR) "
		    "or all of --url, --cert, --key and --cacert");
	memset(&o, 0, sizeof(o));
	o.timeout_ms = timeout_ms;
	if (g->url != NULL)
		o.url = g->url;
	else {
		if ((rc = cli_conf_url(g->dir, url, sizeof(url))) != 0)
			return rc;
		o.url = url;
	}
	rc = CLI_EXIT_OTHER;
	if (g->cert == NULL) {
		snprintf(f, sizeof(f), "pki/%s.pem", name);
		if ((cert = util_path_join(g->dir, f)) == NULL)
			goto nomem;
	}
	if (g->key == NULL) {
		snprintf(f, sizeof(f), "pki/%s.key", name);
		if ((key = util_path_join(g->dir, f)) == NULL)
			goto nomem;
	}
	if (g->cacert == NULL && (ca = util_path_join(g->dir, "pki/ca.pem")) == NULL)
		goto nomem;
	o.cert = g->cert != NULL ? g->cert : cert;
	o.key = g->key != NULL ? g->key : key;
	o.cacert = g->cacert != NULL ? g->cacert : ca;
	switch (cbc_new(&o, out)) {
	case 0:
		rc = 0;
		break;
	case CBC_E_USAGE:
		rc = cli_usage(NULL, "invalid broker URL '%s' (expected https://HOST:PORT)",
		    o.url);
		break;
	default:
		goto nomem;
	}
	goto out;
nomem:
	rc = cli_error(CLI_EXIT_OTHER, "out of memory");
out:
	free(cert);
	free(key);
	free(ca);
	return rc;
}

/* ---- output ------------------------------------------------------------------- */

void
cli_print_json(const char *json)
{
	fputs(json, stdout);
	if (*json == '\0' || json[strlen(json) - 1] != '\n')
		fputc('\n', stdout);
}

int
cli_print_new(json_t *o)
{
	char *s;

	if (o == NULL)
		return cli_error(CLI_EXIT_OTHER, "out of memory");
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return cli_error(CLI_EXIT_OTHER, "out of memory");
	cli_print_json(s);
	free(s);
	return 0;
}

/* Prints text from the broker with control bytes replaced: no terminal escapes. */
static void
cli_put_safe(const char *s)
{
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, stdout);
}

/* A value for humans: strings bare, string arrays comma-joined, the rest compact JSON. */
static void
cli_put_value(json_t *v)
{
	json_t *e;
	size_t i;
	char *s;

	if (json_is_string(v)) {
		cli_put_safe(json_string_value(v));
		return;
	}
	if (json_is_array(v)) {
		int all_str = 1;

		json_array_foreach(v, i, e)
			if (!json_is_string(e))
				all_str = 0;
		if (all_str) {
			if (json_array_size(v) == 0)
				fputs("-", stdout);
			json_array_foreach(v, i, e) {
				if (i > 0)
					fputc(',', stdout);
				cli_put_safe(json_string_value(e));
			}
			return;
		}
	}
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL) {
		cli_put_safe(s);
		free(s);
	}
}

static json_t *
cli_load(const char *json)
{
	json_t *j;

	if ((j = json_loads(json, JSON_REJECT_DUPLICATES, NULL)) == NULL || !json_is_object(j)) {
		json_decref(j);
		cli_error(CLI_EXIT_OTHER, "the broker's answer is not a JSON object");
		return NULL;
	}
	return j;
}

int
cli_print_object(const char *json)
{
	const char *k;
	json_t *j, *v;

	if ((j = cli_load(json)) == NULL)
		return CLI_EXIT_OTHER;
	json_object_foreach(j, k, v) {
		cli_put_safe(k);
		fputs(": ", stdout);
		cli_put_value(v);
		fputc('\n', stdout);
	}
	json_decref(j);
	return 0;
}

static int
cli_in(const char *k, const char *const *list)
{
	size_t i;

	for (i = 0; list != NULL && list[i] != NULL; i++)
		if (strcmp(k, list[i]) == 0)
			return 1;
	return 0;
}

int
cli_print_rows(const char *json, const char *const *keys, const char *const *skip)
{
	json_t *j, *arr = NULL, *row, *v;
	const char *k;
	size_t i, f;

	if ((j = cli_load(json)) == NULL)
		return CLI_EXIT_OTHER;
	json_object_foreach(j, k, v)
		if (json_is_array(v)) {
			arr = v;
			break;
		}
	if (arr == NULL || json_array_size(arr) == 0)
		puts("(none)");
	json_array_foreach(arr, i, row) {
		if (!json_is_object(row)) {
			cli_put_value(row);
			fputc('\n', stdout);
			continue;
		}
		for (f = 0; keys != NULL && keys[f] != NULL; f++) {
			v = json_object_get(row, keys[f]);
			if (f > 0)
				fputs("  ", stdout);
			if (v == NULL || json_is_null(v))
				fputs("-", stdout);
			else
				cli_put_value(v);
		}
		json_object_foreach(row, k, v) {
			if (cli_in(k, keys) || cli_in(k, skip) || json_is_null(v))
				continue;
			fputs("  ", stdout);
			cli_put_safe(k);
			fputc('=', stdout);
			cli_put_value(v);
		}
		fputc('\n', stdout);
	}
	json_decref(j);
	return 0;
}

/* ---- main ------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} cli_cmds[] = {
	{ "init", cli_cmd_init },
	{ "secret", cli_cmd_secret },
	{ "grant", cli_cmd_grant },
	{ "sandbox", cli_cmd_sandbox },
	{ "key", cli_cmd_key },
	{ "audit", cli_cmd_audit },
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = { CLI_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 } };
	struct cli g;
	const char *env;
	size_t i;
	int ch, rc;

	memset(&g, 0, sizeof(g));
	log_init("credbroker", LOG_LVL_WARN);
	/* secret put holds a value in memory: no core dump may carry it. */
	(void)priv_no_core();
	if ((env = getenv("CREDBROKER_DIR")) != NULL && *env != '\0')
		g.dir = env;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:" "d:h", opts, NULL)) != -1) {
		if (ch == '?')
			return cli_usage(NULL, "unknown option '%s'", argv[optind - 1]);
		if (ch == ':')
			return cli_usage(NULL, "option '%s' needs a value", argv[optind - 1]);
		cli_global_opt(&g, ch, optarg);
	}
	if ((optind >= argc && g.help) || (optind < argc && strcmp(argv[optind], "help") == 0)) {
		fputs(cli_main_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (optind >= argc) {
		fputs("credbroker: no command given\n", stderr);
		fputs(cli_main_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	for (i = 0; i < UTIL_ARRAY_LEN(cli_cmds); i++) {
		if (strcmp(argv[optind], cli_cmds[i].name) == 0) {
			rc = cli_cmds[i].fn(&g, argc - optind, argv + optind);
			if (fflush(stdout) != 0 || ferror(stdout))
				return cli_error(CLI_EXIT_OTHER, "cannot write the output: %s",
				    strerror(errno));
			return rc;
		}
	}
	if (g.help) {
		fputs(cli_main_usage, stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage(NULL, "unknown command '%s'", argv[optind]);
}
