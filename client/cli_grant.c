/*
 * cli_grant.c: "credbroker grant mint|show|revoke" and "credbroker sandbox revoke"
 * (harness role). grant mint --token-only prints the token alone, for scripts.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define GRANT_CLI_METHODS_MAX	16
#define GRANT_CLI_TTL_DEFAULT	600
#define GRANT_CLI_TTL_MAX	(7LL * 86400)

static const char grant_usage[] =
"usage: credbroker grant mint --sandbox ID --secret NAME --host HOST [--port PORT]\n"
"           [--method METHOD]... [--path-prefix PREFIX] [--header NAME]\n"
"           [--template TEMPLATE] [--inject] [--max-uses N] [--ttl SECONDS] [--token-only]\n"
"       credbroker grant show GRANT_ID\n"
"       credbroker grant revoke GRANT_ID\n"
"\n"
"mint     asks the broker for a grant bound to one sandbox and one destination:\n"
"         --port (default 443), --method (repeatable; default any), --path-prefix\n"
"         (default any path), --header (default Authorization), --template (default\n"
"         'Bearer {secret}'), --inject (the proxy adds the header; the sandbox holds\n"
"         nothing), --max-uses (default unlimited), --ttl (default 600 seconds).\n"
"         Prints the grant ID, the token and its expiry; --token-only prints the token\n"
"         alone.\n"
"show     a grant's status, bindings, uses and expiry (never a secret value).\n"
"revoke   revokes a grant; effective on the next resolve.\n"
"Uses the harness certificate (DIR/pki/harness.pem) unless --cert/--key are given.\n";

static const char sandbox_usage[] =
"usage: credbroker sandbox revoke SANDBOX_ID\n"
"\n"
"Revokes every grant of a sandbox (when its execution ends) and prints how many.\n"
"Uses the harness certificate (DIR/pki/harness.pem) unless --cert/--key are given.\n";

enum {
	OPT_SANDBOX = CLI_OPT_LOCAL, OPT_SECRET, OPT_HOST, OPT_PORT, OPT_METHOD,
	OPT_PATH_PREFIX, OPT_HEADER, OPT_TEMPLATE, OPT_INJECT, OPT_MAX_USES, OPT_TTL,
	OPT_TOKEN_ONLY
};

struct grant_mint_args {
	struct cbc_binding b;
	struct cbc_grant_req req;
	const char *methods[GRANT_CLI_METHODS_MAX + 1];
	size_t nmethods;
	int token_only;
};

static int
grant_mint_opt(void *arg, int ch, const char *val)
{
	struct grant_mint_args *a = arg;
	long long n;
	int rc;

	switch (ch) {
	case OPT_SANDBOX:
		a->req.sandbox_id = val;
		return 0;
	case OPT_SECRET:
		a->b.secret = val;
		return 0;
	case OPT_HOST:
		a->b.host = val;
		return 0;
	case OPT_PORT:
		if ((rc = cli_number("grant mint", "--port", val, 1, 65535, &n)) != 0)
			return rc;
		a->b.port = (int)n;
		return 0;
	case OPT_METHOD:
		if (a->nmethods >= GRANT_CLI_METHODS_MAX)
			return cli_usage("grant mint", "at most %d --method",
			    GRANT_CLI_METHODS_MAX);
		if (*val == '\0')
			return cli_usage("grant mint", "--method wants a method name");
		a->methods[a->nmethods++] = val;
		return 0;
	case OPT_PATH_PREFIX:
		a->b.path_prefix = val;
		return 0;
	case OPT_HEADER:
		a->b.header = val;
		return 0;
	case OPT_TEMPLATE:
		a->b.template_ = val;
		return 0;
	case OPT_INJECT:
		a->b.inject = 1;
		return 0;
	case OPT_MAX_USES:
		return cli_number("grant mint", "--max-uses", val, 1, 1000000000LL,
		    &a->req.max_uses);
	case OPT_TTL:
		return cli_number("grant mint", "--ttl", val, 1, GRANT_CLI_TTL_MAX, &a->req.ttl_s);
	case OPT_TOKEN_ONLY:
		a->token_only = 1;
		return 0;
	default:
		return CLI_EXIT_USAGE;
	}
}

static int
grant_mint(struct cli *g, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "sandbox", required_argument, NULL, OPT_SANDBOX },
		{ "secret", required_argument, NULL, OPT_SECRET },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "method", required_argument, NULL, OPT_METHOD },
		{ "path-prefix", required_argument, NULL, OPT_PATH_PREFIX },
		{ "header", required_argument, NULL, OPT_HEADER },
		{ "template", required_argument, NULL, OPT_TEMPLATE },
		{ "inject", no_argument, NULL, OPT_INJECT },
		{ "max-uses", required_argument, NULL, OPT_MAX_USES },
		{ "ttl", required_argument, NULL, OPT_TTL },
		{ "token-only", no_argument, NULL, OPT_TOKEN_ONLY },
		{ NULL, 0, NULL, 0 }
	};
	struct grant_mint_args a;
	struct cbc_grant *gr = NULL;
	cbc_t *c = NULL;
	int first, rc;

	memset(&a, 0, sizeof(a));
	a.req.ttl_s = GRANT_CLI_TTL_DEFAULT;
	if ((rc = cli_getopt(g, "grant mint", argc, argv, NULL, lopts, grant_mint_opt, &a,
	    &first)) != 0)
		return rc;
	if (g->help) {
		fputs(grant_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (first != argc)
		return cli_usage("grant mint", "unexpected argument '%s'", argv[first]);
	if (a.req.sandbox_id == NULL || a.b.secret == NULL || a.b.host == NULL)
		return cli_usage("grant mint", "grant mint needs --sandbox ID, --secret NAME and "
		    "--host HOST");
	if (a.token_only && g->json)
		return cli_usage("grant mint", "--token-only and --json exclude each other");
	if (a.nmethods > 0) {
		a.methods[a.nmethods] = NULL;
		a.b.methods = a.methods;
	}
	a.req.bindings = &a.b;
	a.req.nbindings = 1;
	if ((rc = cli_connect(g, CLI_ROLE_HARNESS, 0, &c)) != 0)
		return rc;
	if ((rc = cbc_grant_mint(c, &a.req, &gr)) != 0) {
		rc = cli_fail(c, rc, "grant mint");
		goto out;
	}
	rc = CLI_EXIT_OK;
	if (a.token_only)
		printf("%s\n", gr->token);
	else if (g->json)
		rc = cli_print_new(json_pack("{s:s, s:s, s:s}", "grant_id", gr->grant_id,
		    "token", gr->token, "expires_at", gr->expires_at));
	else
		printf("grant_id: %s\ntoken: %s\nexpires_at: %s\n", gr->grant_id, gr->token,
		    gr->expires_at);
out:
	cbc_grant_free(gr);
	cbc_free(c);
	return rc;
}

/* grant show ID, grant revoke ID, sandbox revoke ID. */
static int
grant_by_id(struct cli *g, const char *cmd, const char *usage, int argc, char **argv)
{
	long long n = 0;
	char *json = NULL;
	cbc_t *c = NULL;
	int first, rc;

	if ((rc = cli_getopt(g, cmd, argc, argv, NULL, NULL, NULL, NULL, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	if (argc - first != 1)
		return cli_usage(cmd, "%s takes exactly one ID", cmd);
	if ((rc = cli_connect(g, CLI_ROLE_HARNESS, 0, &c)) != 0)
		return rc;
	if (strcmp(cmd, "grant show") == 0) {
		if ((rc = cbc_grant_show(c, argv[first], &json)) != 0)
			rc = cli_fail(c, rc, cmd);
		else if (g->json)
			cli_print_json(json);
		else
			rc = cli_print_object(json);
	} else if (strcmp(cmd, "grant revoke") == 0) {
		if ((rc = cbc_grant_revoke(c, argv[first])) != 0)
			rc = cli_fail(c, rc, cmd);
		else if (g->json)
			rc = cli_print_new(json_pack("{s:s, s:b}", "grant_id", argv[first],
			    "revoked", 1));
		else
			printf("grant %s revoked\n", argv[first]);
	} else {
		if ((rc = cbc_sandbox_revoke(c, argv[first], &n)) != 0)
			rc = cli_fail(c, rc, cmd);
		else if (g->json)
			rc = cli_print_new(json_pack("{s:s, s:I}", "sandbox_id", argv[first],
			    "revoked", (json_int_t)n));
		else
			printf("sandbox %s: %lld grant%s revoked\n", argv[first], n,
			    n == 1 ? "" : "s");
	}
	free(json);
	cbc_free(c);
	return rc;
}

static int
grant_group_help(struct cli *g, const char *cmd, const char *usage, int argc, char **argv,
    const char *want)
{
	int first, rc;

	if ((rc = cli_getopt(g, cmd, argc, argv, NULL, NULL, NULL, NULL, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(usage, stdout);
		return CLI_EXIT_OK;
	}
	return cli_usage(cmd, "%s wants %s", cmd, want);
}

int
cli_cmd_grant(struct cli *g, int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-')
		return grant_group_help(g, "grant", grant_usage, argc, argv, "mint, show or revoke");
	if (strcmp(argv[1], "mint") == 0)
		return grant_mint(g, argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return grant_by_id(g, "grant show", grant_usage, argc - 1, argv + 1);
	if (strcmp(argv[1], "revoke") == 0)
		return grant_by_id(g, "grant revoke", grant_usage, argc - 1, argv + 1);
	return cli_usage("grant", "unknown grant command '%s' (mint, show, revoke)", argv[1]);
}

int
cli_cmd_sandbox(struct cli *g, int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-')
		return grant_group_help(g, "sandbox", sandbox_usage, argc, argv, "revoke");
	if (strcmp(argv[1], "revoke") == 0)
		return grant_by_id(g, "sandbox revoke", sandbox_usage, argc - 1, argv + 1);
	return cli_usage("sandbox", "unknown sandbox command '%s' (revoke)", argv[1]);
}
