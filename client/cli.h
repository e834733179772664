/*
 * cli.h: the credbroker command-line tool, shared between cli.c (main, global options,
 * connection, output) and the command files cli_secret.c, cli_grant.c, cli_admin.c.
 * Every command returns an exit code (CLI_EXIT_*), documented in docs/credbroker.1.
 */
#ifndef CB_CLI_H
#define CB_CLI_H

#include <getopt.h>

#include <jansson.h>

#include "credbroker.h"

#define CLI_EXIT_OK		0	/* done */
#define CLI_EXIT_REFUSED	1	/* refused by the broker (4xx), or verification failed */
#define CLI_EXIT_USAGE		2	/* bad command line or input */
#define CLI_EXIT_CONNECT	3	/* connection or TLS problem */
#define CLI_EXIT_OTHER		4	/* 5xx, malformed answer, local I/O */

/* Long-only option values start here so they never clash with short ones. */
enum cli_opt {
	CLI_OPT_URL = 256,
	CLI_OPT_CERT,
	CLI_OPT_KEY,
	CLI_OPT_CACERT,
	CLI_OPT_JSON,
	CLI_OPT_LOCAL		/* first value free for a command's own options */
};

/* The global options, accepted before the command and after it. */
#define CLI_GLOBAL_SHORTOPTS	"+d:h"
#define CLI_GLOBAL_LONGOPTS \
	{ "dir", required_argument, NULL, 'd' }, \
	{ "url", required_argument, NULL, CLI_OPT_URL }, \
	{ "cert", required_argument, NULL, CLI_OPT_CERT }, \
	{ "key", required_argument, NULL, CLI_OPT_KEY }, \
	{ "cacert", required_argument, NULL, CLI_OPT_CACERT }, \
	{ "json", no_argument, NULL, CLI_OPT_JSON }, \
	{ "help", no_argument, NULL, 'h' }

enum cli_role { CLI_ROLE_ADMIN, CLI_ROLE_HARNESS };

struct cli {
	const char *dir;	/* -d DIR or CREDBROKER_DIR; NULL when neither */
	const char *url;	/* explicit settings override what DIR gives */
	const char *cert;
	const char *key;
	const char *cacert;
	int json;		/* --json: print the broker's JSON */
	int help;		/* --help was given */
};

/* Takes a global option (getopt value ch); returns 1 if it was one, else 0. */
int cli_global_opt(struct cli *g, int ch, const char *arg);
/*
 * Parses a command's options: cmd names it in messages ("secret put"); argv[0] is its
 * last word; local options are in lopts
 * (terminated by a zeroed entry; the globals are added here). For each local option fn
 * is called with its value; fn returns 0 or an exit code. On return *first is the
 * index of the first operand. Returns 0, or an exit code (usage already printed).
 */
typedef int (*cli_opt_fn)(void *arg, int ch, const char *optarg);
int cli_getopt(struct cli *g, const char *cmd, int argc, char **argv, const char *shortopts,
    const struct option *lopts, cli_opt_fn fn, void *arg, int *first);

/*
 * Creates a client for a role from the options; timeout_ms 0 = the library default.
 * Returns 0 or an exit code (message already printed). *out owned by the caller.
 */
int cli_connect(struct cli *g, enum cli_role role, long timeout_ms, cbc_t **out);
/* Prints a library failure ("credbroker: what: message") and returns its exit code. */
int cli_fail(cbc_t *c, int rc, const char *what);
/* Prints "credbroker: message" and a hint to --help; returns CLI_EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "credbroker: message" and returns code. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses an option's integer in [min, max]; returns 0 or CLI_EXIT_USAGE (printed). */
int cli_number(const char *cmd, const char *opt, const char *s, long long min,
    long long max, long long *out);
/* Prints JSON text as one line on stdout (with --json). */
void cli_print_json(const char *json);
/* Prints a JSON value we built (stolen, may be NULL: out of memory); 0 or an exit code. */
int cli_print_new(json_t *o);
/*
 * Prints a JSON object for humans: "key: value" lines, nested values compact;
 * returns 0 or CLI_EXIT_OTHER when json is not an object.
 */
int cli_print_object(const char *json);
/*
 * Prints the objects of the first array member of a JSON object, one line each: the
 * values of keys (NULL-terminated) first, then the other fields as k=v except those
 * in skip (may be NULL). "(none)" when there is no row.
 */
int cli_print_rows(const char *json, const char *const *keys, const char *const *skip);

/* Commands: argv[0] is the command word ("secret", "grant", ...). */
int cli_cmd_secret(struct cli *g, int argc, char **argv);
int cli_cmd_grant(struct cli *g, int argc, char **argv);
int cli_cmd_sandbox(struct cli *g, int argc, char **argv);
int cli_cmd_key(struct cli *g, int argc, char **argv);
int cli_cmd_audit(struct cli *g, int argc, char **argv);
int cli_cmd_init(struct cli *g, int argc, char **argv);

#endif
