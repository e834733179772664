/*
 * cli_secret.c: "credbroker secret put|list|show|rm" (admin role).
 * A value is read from stdin (without echo when it is a terminal) or from a file,
 * never from the command line; it is wiped as soon as it has been sent and never
 * printed, not even with --json.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "secret.h"
#include "util.h"

#include "cli.h"

#define SECRET_TTL_MAX		(7LL * 86400)	/* the broker's limit (GRANT_TTL_MAX) */

static const char secret_usage[] =
"usage: credbroker secret put NAME [--host HOST]... [--max-ttl SECONDS] [--from-file FILE]\n"
"       credbroker secret list\n"
"       credbroker secret show NAME\n"
"       credbroker secret rm NAME\n"
"\n"
"put      stores a secret, or a new version of it (the new version is printed). The value\n"
"         is read from standard input (a terminal is prompted without echo) or from\n"
"         --from-file FILE, never from the command line; one trailing newline is removed.\n"
"         It must be 1 to 8192 bytes without CR, LF or NUL.\n"
"         --host HOST (repeatable): the hosts this secret may ever be sent to.\n"
"         --max-ttl SECONDS: the longest grant for this secret.\n"
"list     names and metadata of every secret (never a value).\n"
"show     one secret's metadata (never its value).\n"
"rm       deletes a secret and all its versions.\n"
"Uses the admin certificate (DIR/pki/admin.pem) unless --cert/--key are given.\n";

/* ---- reading the value ------------------------------------------------------- */

static struct termios secret_tty_saved;
static volatile sig_atomic_t secret_tty_changed;

static void
secret_tty_restore(void)
{
	if (secret_tty_changed) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &secret_tty_saved);
		secret_tty_changed = 0;
	}
}

/* A signal while echo is off must not leave the terminal silent. */
static void
secret_tty_signal(int sig)
{
	secret_tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Reads at most cap bytes from fd into buf (until EOF, or the first newline when
 * line is set); *len is the count. Returns 0, 1 when there was more than cap, or -1.
 */
static int
secret_read_fd(int fd, unsigned char *buf, size_t cap, int line, size_t *len)
{
	ssize_t n;
	size_t i, got = 0;

	*len = 0;
	/* Bounded: each pass adds at least one byte or ends. */
	while (got < cap) {
		n = read(fd, buf + got, line ? 1 : cap - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		for (i = 0; line && i < (size_t)n; i++)
			if (buf[got + i] == '\n') {
				*len = got + i + 1;
				return 0;
			}
		got += (size_t)n;
	}
	*len = got;
	if (got == cap) {
		unsigned char extra;

		while ((n = read(fd, &extra, 1)) == -1 && errno == EINTR)
			;
		if (n == 1 && !(line && extra == '\n'))
			return 1;
		if (n == 1)
			*len = got;	/* the newline just fit after the value */
	}
	return 0;
}

static int
secret_read_tty(const char *name, unsigned char *buf, size_t cap, size_t *len)
{
	struct termios t;
	struct sigaction sa, old[4];
	static const int sigs[4] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	size_t i;
	int rc;

	if (tcgetattr(STDIN_FILENO, &secret_tty_saved) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = secret_tty_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	t = secret_tty_saved;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	t.c_lflag |= ICANON;
	secret_tty_changed = 1;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0) {
		secret_tty_changed = 0;
		rc = -1;
	} else {
		/* Prompt only now: TCSAFLUSH drops what was typed before it. */
		fprintf(stderr, "Value of secret %s (not echoed): ", name);
		fflush(stderr);
		rc = secret_read_fd(STDIN_FILENO, buf, cap, 1, len);
	}
	secret_tty_restore();
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	fputc('\n', stderr);
	return rc;
}

/* Reads the value into buf (SECRET_VALUE_MAX + 2 bytes); returns 0 or an exit code. */
static int
secret_read_value(const char *name, const char *file, unsigned char *buf, size_t cap,
    size_t *len)
{
	size_t n = 0;
	int fd, rc;

	*len = 0;
	if (file != NULL) {
		if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
			return cli_error(CLI_EXIT_OTHER, "cannot open %s: %s", file,
			    strerror(errno));
		rc = secret_read_fd(fd, buf, cap, 0, &n);
		close(fd);
		if (rc == -1)
			return cli_error(CLI_EXIT_OTHER, "cannot read %s: %s", file,
			    strerror(errno));
	} else if (isatty(STDIN_FILENO)) {
		rc = secret_read_tty(name, buf, cap, &n);
		if (rc == -1)
			return cli_error(CLI_EXIT_OTHER, "cannot read the terminal: %s",
			    strerror(errno));
	} else {
		rc = secret_read_fd(STDIN_FILENO, buf, cap, 0, &n);
		if (rc == -1)
			return cli_error(CLI_EXIT_OTHER, "cannot read standard input: %s",
			    strerror(errno));
	}
	if (rc == 1)
		return cli_usage("secret put", "the value is longer than %d bytes",
		    SECRET_VALUE_MAX);
	/* Exactly one trailing newline goes ("echo v |", files); CRLF counts as one. */
	if (n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n')
		n -= 2;
	else if (n >= 1 && buf[n - 1] == '\n')
		n -= 1;
	if (n == 0)
		return cli_usage("secret put", "the value is empty");
	if (n > SECRET_VALUE_MAX)
		return cli_usage("secret put", "the value is longer than %d bytes",
		    SECRET_VALUE_MAX);
	if (secret_valid_value((const uint8_t *)buf, n) != 0)	/* the broker's own check */
		return cli_usage("secret put", "the value holds a control character (CR, "
			    "LF, NUL, DEL or another below 0x20 but tab: a value is a single line "
			    "of text)");
	*len = n;
	return 0;
}

/* ---- put ----------------------------------------------------------------------- */

enum { OPT_HOST = CLI_OPT_LOCAL, OPT_MAX_TTL, OPT_FROM_FILE };

struct secret_put_args {
	const char *hosts[SECRET_HOSTS_MAX + 1];
	size_t nhosts;
	long long max_ttl;
	const char *file;
};

static int
secret_put_opt(void *arg, int ch, const char *val)
{
	struct secret_put_args *a = arg;

	switch (ch) {
	case OPT_HOST:
		if (a->nhosts >= SECRET_HOSTS_MAX)
			return cli_usage("secret put", "at most %d --host", SECRET_HOSTS_MAX);
		if (*val == '\0')
			return cli_usage("secret put", "--host wants a host name");
		a->hosts[a->nhosts++] = val;
		return 0;
	case OPT_MAX_TTL:
		return cli_number("secret put", "--max-ttl", val, 1, SECRET_TTL_MAX, &a->max_ttl);
	case OPT_FROM_FILE:
		a->file = val;
		return 0;
	default:
		return CLI_EXIT_USAGE;
	}
}

static int
secret_put_cmd(struct cli *g, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "host", required_argument, NULL, OPT_HOST },
		{ "max-ttl", required_argument, NULL, OPT_MAX_TTL },
		{ "from-file", required_argument, NULL, OPT_FROM_FILE },
		{ NULL, 0, NULL, 0 }
	};
	struct secret_put_args a;
	unsigned char buf[SECRET_VALUE_MAX + 2];
	const char *name;
	long long version = 0;
	size_t len = 0;
	cbc_t *c = NULL;
	int first, rc;

	memset(&a, 0, sizeof(a));
	if ((rc = cli_getopt(g, "secret put", argc, argv, NULL, lopts, secret_put_opt, &a,
	    &first)) != 0)
		return rc;
	if (g->help) {
		fputs(secret_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (argc - first != 1)
		return cli_usage("secret put", "secret put takes exactly one NAME (the value "
		    "comes from standard input or --from-file, never from the command line)");
	/* The broker refuses a secret without hosts: before the value is read or sent. */
	if (a.nhosts == 0)
		return cli_usage("secret put", "at least one --host is needed (the hosts the "
		    "secret may be sent to)");
	name = argv[first];
	/* The broker answers a name it cannot route with 404: say what is wrong instead. */
	if (secret_valid_name(name) != 0)
		return cli_usage("secret put", "a secret NAME is 1 to 128 of A-Z a-z 0-9 . _ - "
		    "starting with a letter or digit");
	/* Connect first: a missing deployment is reported before anyone types a value. */
	if ((rc = cli_connect(g, CLI_ROLE_ADMIN, 0, &c)) != 0)
		return rc;
	if ((rc = secret_read_value(name, a.file, buf, sizeof(buf), &len)) != 0)
		goto out;
	a.hosts[a.nhosts] = NULL;
	rc = cbc_secret_put(c, name, buf, len, a.hosts, a.max_ttl, &version);
	explicit_bzero(buf, sizeof(buf));
	if (rc != 0) {
		rc = cli_fail(c, rc, "secret put");
		goto out;
	}
	if (g->json)
		rc = cli_print_new(json_pack("{s:s, s:I}", "name", name, "version",
		    (json_int_t)version));
	else {
		printf("secret %s: version %lld stored\n", name, version);
		rc = CLI_EXIT_OK;
	}
out:
	explicit_bzero(buf, sizeof(buf));
	cbc_free(c);
	return rc;
}

/* ---- list, show, rm ------------------------------------------------------------ */

static int
secret_simple(struct cli *g, const char *what, int argc, char **argv, int nargs)
{
	static const char *const list_keys[] = { "name", "version", NULL };
	char cmd[32], *json = NULL;
	cbc_t *c = NULL;
	int first, rc;

	snprintf(cmd, sizeof(cmd), "secret %s", what);
	if ((rc = cli_getopt(g, cmd, argc, argv, NULL, NULL, NULL, NULL, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(secret_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (argc - first != nargs)
		return cli_usage(cmd, "%s takes %s", cmd, nargs == 0 ? "no argument" :
		    "exactly one NAME");
	if ((rc = cli_connect(g, CLI_ROLE_ADMIN, 0, &c)) != 0)
		return rc;
	if (strcmp(what, "rm") == 0) {
		if ((rc = cbc_secret_delete(c, argv[first])) != 0) {
			rc = cli_fail(c, rc, cmd);
			goto out;
		}
		if (g->json)
			rc = cli_print_new(json_pack("{s:s, s:b}", "name", argv[first], "deleted",
			    1));
		else
			printf("secret %s deleted\n", argv[first]);
		goto out;
	}
	rc = cbc_secret_get(c, nargs == 0 ? NULL : argv[first], &json);
	if (rc != 0) {
		rc = cli_fail(c, rc, cmd);
		goto out;
	}
	if (g->json)
		cli_print_json(json);
	else if (nargs == 0)
		rc = cli_print_rows(json, list_keys, NULL);
	else
		rc = cli_print_object(json);
out:
	free(json);
	cbc_free(c);
	return rc;
}

int
cli_cmd_secret(struct cli *g, int argc, char **argv)
{
	const char *sub;
	int first, rc;

	if (argc < 2 || argv[1][0] == '-') {
		if ((rc = cli_getopt(g, "secret", argc, argv, NULL, NULL, NULL, NULL,
		    &first)) != 0)
			return rc;
		if (g->help) {
			fputs(secret_usage, stdout);
			return CLI_EXIT_OK;
		}
		return cli_usage("secret", "secret wants put, list, show or rm");
	}
	sub = argv[1];
	if (strcmp(sub, "put") == 0)
		return secret_put_cmd(g, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
		return secret_simple(g, "list", argc - 1, argv + 1, 0);
	if (strcmp(sub, "show") == 0)
		return secret_simple(g, "show", argc - 1, argv + 1, 1);
	if (strcmp(sub, "rm") == 0)
		return secret_simple(g, "rm", argc - 1, argv + 1, 1);
	return cli_usage("secret", "unknown secret command '%s' (put, list, show, rm)", sub);
}
