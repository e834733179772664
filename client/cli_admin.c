/*
 * cli_admin.c: "credbroker init", "key rotate", "audit tail" and "audit verify".
 * init and the offline "audit verify --db" use the broker's own code (init.c, store.c,
 * audit.c) and need no running broker; the rest are admin-role API calls.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "err.h"
#include "init.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#include "cli.h"

#define KEY_ROTATE_TIMEOUT_MS	(10L * 60 * 1000)	/* re-encrypting every version takes a while */
#define AUDIT_TAIL_DEFAULT	20
#define AUDIT_PAGE		1000			/* the broker's most per page */
#define AUDIT_PAGES_MAX		1000000			/* bounds the walk: 10^9 records */

static const char init_usage[] =
"usage: credbroker init DIR\n"
"\n"
"Creates a development deployment in DIR (created if missing; it must be empty):\n"
"master.key, credbroker.db, credbrokerd.conf, credproxy.conf and pki/ with a CA, the\n"
"server certificate and the harness, proxy and admin client certificates. Then start\n"
"the broker with: credbrokerd -c DIR/credbrokerd.conf\n";

static const char key_usage[] =
"usage: credbroker key rotate [--kind data|signing|both]\n"
"\n"
"data     a new data key; every secret version is re-encrypted under it.\n"
"signing  a new token-signing key; old keys stay until the tokens they signed expire.\n"
"both     (the default) data, then signing.\n"
"Prints the new key's ID for each kind. The master key is rotated on the broker's host\n"
"(credbrokerd --rotate-master-key), never over the network. Uses the admin certificate.\n";

static const char audit_usage[] =
"usage: credbroker audit tail [--after SEQ] [--limit N]\n"
"       credbroker audit verify [--db FILE [--master-key KEYFILE]]\n"
"\n"
"tail     prints audit records: with --after SEQ, the first N records after SEQ; without,\n"
"         the last N records. N is --limit (default 20, at most 1000).\n"
"verify   checks the hash chain of the audit log through the broker, or offline on\n"
"         FILE, a copy of the database (or that of a stopped broker). Prints the first\n"
"         broken record and exits 1 when the chain is broken (edited, deleted or\n"
"         reordered records), or when the anchor fails its MAC under the master key\n"
"         (the log rewritten whole, every hash recomputed). Offline, the MAC is checked\n"
"         with KEYFILE, by default master.key next to FILE if there is one; without a\n"
"         key the chain is checked but not authenticated, and the output says so.\n"
"Uses the admin certificate (DIR/pki/admin.pem) unless --cert/--key are given.\n";

/* ---- init ---------------------------------------------------------------------- */

int
cli_cmd_init(struct cli *g, int argc, char **argv)
{
	const char *dir;
	char why[512];
	int first, rc;

	if ((rc = cli_getopt(g, "init", argc, argv, NULL, NULL, NULL, NULL, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(init_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (argc - first > 1)
		return cli_usage("init", "init takes one DIR");
	dir = argc - first == 1 ? argv[first] : g->dir;
	if (dir == NULL || *dir == '\0')
		return cli_usage("init", "init needs a DIR");
	why[0] = '\0';
	if ((rc = init_deployment(dir, why, sizeof(why))) != 0)
		return cli_error(CLI_EXIT_OTHER, "init %s: %s", dir,
		    why[0] != '\0' ? why : cb_strerror(rc));
	if (g->json)
		return cli_print_new(json_pack("{s:s}", "dir", dir));
	printf("created a development deployment in %s\n"
	    "start the broker with: credbrokerd -c %s/credbrokerd.conf\n", dir, dir);
	return CLI_EXIT_OK;
}

/* ---- key rotate ------------------------------------------------------------------ */

enum { OPT_KIND = CLI_OPT_LOCAL, OPT_AFTER, OPT_LIMIT, OPT_DB, OPT_MASTER_KEY };

static int
key_opt(void *arg, int ch, const char *val)
{
	const char **kind = arg;

	if (ch != OPT_KIND)
		return CLI_EXIT_USAGE;
	if (strcmp(val, "data") != 0 && strcmp(val, "signing") != 0 &&
	    strcmp(val, "both") != 0)
		return cli_usage("key rotate", "--kind is data, signing or both, not '%s'%s",
		    val, strcmp(val, "master") == 0 ? " (the master key is rotated on the "
		    "broker's host: credbrokerd --rotate-master-key)" : "");
	*kind = val;
	return 0;
}

static int
key_rotate_one(struct cli *g, cbc_t *c, const char *kind)
{
	const char *k;
	json_t *j, *v;
	char *json = NULL;
	int rc;

	if ((rc = cbc_key_rotate(c, kind, &json)) != 0)
		return cli_fail(c, rc, "key rotate");
	if (g->json) {
		cli_print_json(json);
		free(json);
		return CLI_EXIT_OK;
	}
	j = json_loads(json, 0, NULL);
	printf("%s key rotated:", kind);
	json_object_foreach(j, k, v) {
		if (strcmp(k, "kind") == 0)
			continue;
		if (json_is_string(v))
			printf(" %s %s", k, json_string_value(v));
		else if (json_is_integer(v))
			printf(" %s %lld", k, (long long)json_integer_value(v));
	}
	putchar('\n');
	json_decref(j);
	free(json);
	return CLI_EXIT_OK;
}

int
cli_cmd_key(struct cli *g, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "kind", required_argument, NULL, OPT_KIND },
		{ NULL, 0, NULL, 0 }
	};
	const char *kind = "both";
	cbc_t *c = NULL;
	int first, rc;

	if (argc >= 2 && argv[1][0] != '-' && strcmp(argv[1], "rotate") != 0)
		return cli_usage("key", "unknown key command '%s' (rotate)", argv[1]);
	if ((rc = cli_getopt(g, "key rotate", argc - (argc >= 2 && argv[1][0] != '-'),
	    argv + (argc >= 2 && argv[1][0] != '-'), NULL, lopts, key_opt, &kind, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(key_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2 || argv[1][0] == '-')
		return cli_usage("key", "key wants rotate");
	if (first != argc - 1)
		return cli_usage("key rotate", "key rotate takes no argument (--kind KIND)");
	if ((rc = cli_connect(g, CLI_ROLE_ADMIN, KEY_ROTATE_TIMEOUT_MS, &c)) != 0)
		return rc;
	if (strcmp(kind, "both") == 0) {
		if ((rc = key_rotate_one(g, c, "data")) == 0)
			rc = key_rotate_one(g, c, "signing");
	} else
		rc = key_rotate_one(g, c, kind);
	cbc_free(c);
	return rc;
}

/* ---- audit tail ---------------------------------------------------------------- */

struct audit_args {
	long long after;
	long long limit;
	int has_after;
	const char *db;
	const char *master_key;
};

static int
audit_opt(void *arg, int ch, const char *val)
{
	struct audit_args *a = arg;

	switch (ch) {
	case OPT_AFTER:
		a->has_after = 1;
		return cli_number("audit tail", "--after", val, 0, INT64_MAX, &a->after);
	case OPT_LIMIT:
		return cli_number("audit tail", "--limit", val, 1, AUDIT_PAGE, &a->limit);
	case OPT_DB:
		a->db = val;
		return 0;
	case OPT_MASTER_KEY:
		a->master_key = val;
		return 0;
	default:
		return CLI_EXIT_USAGE;
	}
}

/* The records array of an audit page, or NULL. */
static json_t *
audit_records(json_t *page)
{
	json_t *r = json_object_get(page, "records");

	return json_is_array(r) ? r : NULL;
}

/* Without --after: walks the log page by page and keeps the last limit records. */
static int
audit_tail_walk(cbc_t *c, long long limit, json_t **out)
{
	json_t *tail, *page, *recs, *rec;
	long long after = 0, seq;
	char *json;
	size_t i, pages;
	int rc;

	*out = NULL;
	if ((tail = json_array()) == NULL)
		return cli_error(CLI_EXIT_OTHER, "out of memory");
	for (pages = 0; pages < AUDIT_PAGES_MAX; pages++) {
		if ((rc = cbc_audit_get(c, after, AUDIT_PAGE, &json)) != 0) {
			json_decref(tail);
			return cli_fail(c, rc, "audit tail");
		}
		page = json_loads(json, 0, NULL);
		free(json);
		if ((recs = audit_records(page)) == NULL) {
			json_decref(page);
			json_decref(tail);
			return cli_error(CLI_EXIT_OTHER, "audit tail: the broker's answer has no "
			    "records array");
		}
		json_array_foreach(recs, i, rec) {
			json_t *s = json_object_get(rec, "seq");

			if (!json_is_integer(s) || (seq = json_integer_value(s)) <= after) {
				json_decref(page);
				json_decref(tail);
				return cli_error(CLI_EXIT_OTHER, "audit tail: a record without "
				    "an increasing seq");
			}
			after = seq;
			json_array_append(tail, rec);
			if ((long long)json_array_size(tail) > limit)
				json_array_remove(tail, 0);
		}
		i = json_array_size(recs);
		json_decref(page);
		if (i < AUDIT_PAGE)
			break;
	}
	*out = tail;	/* transferred */
	return 0;
}

/* Rows for humans: times as RFC 3339 instead of epoch seconds. */
static int
audit_print_human(const char *json, const char *const *keys, const char *const *skip)
{
	json_t *j, *recs, *rec, *ts;
	char when[32], *s;
	size_t i;
	int rc;

	if ((j = json_loads(json, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    (recs = audit_records(j)) == NULL) {
		json_decref(j);
		return cli_print_rows(json, keys, skip);
	}
	json_array_foreach(recs, i, rec) {
		ts = json_object_get(rec, "ts");
		if (json_is_integer(ts)) {
			util_rfc3339(json_integer_value(ts), when, sizeof(when));
			json_object_set_new(rec, "ts", json_string(when));
		}
	}
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return cli_error(CLI_EXIT_OTHER, "out of memory");
	rc = cli_print_rows(s, keys, skip);
	free(s);
	return rc;
}

static int
audit_tail(struct cli *g, struct audit_args *a)
{
	static const char *const keys[] = { "seq", "ts", "actor", "role", "action", "outcome",
	    NULL };
	static const char *const skip[] = { "prev_hash", "hash", NULL };
	json_t *tail = NULL, *o;
	char *json = NULL;
	cbc_t *c = NULL;
	int rc;

	if ((rc = cli_connect(g, CLI_ROLE_ADMIN, 0, &c)) != 0)
		return rc;
	if (a->has_after) {
		if ((rc = cbc_audit_get(c, a->after, a->limit, &json)) != 0) {
			rc = cli_fail(c, rc, "audit tail");
			goto out;
		}
	} else {
		if ((rc = audit_tail_walk(c, a->limit, &tail)) != 0)
			goto out;
		o = json_pack("{s:o}", "records", tail);	/* steals tail */
		tail = NULL;
		json = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (json == NULL) {
			rc = cli_error(CLI_EXIT_OTHER, "out of memory");
			goto out;
		}
	}
	if (g->json)
		cli_print_json(json);
	else
		rc = audit_print_human(json, keys, skip);
out:
	json_decref(tail);
	free(json);
	cbc_free(c);
	return rc;
}

/* ---- audit verify ------------------------------------------------------------- */

static int
audit_verify_report(struct cli *g, int intact, int authenticated, long long from,
    long long adopted, long long records, long long bad, const char *problem)
{
	if (g->json) {
		if (intact && authenticated)
			cli_print_new(json_pack("{s:b, s:I, s:b, s:I, s:I}", "intact", 1, "records",
			    (json_int_t)records, "authenticated", 1, "authenticated_from",
			    (json_int_t)from, "adopted", (json_int_t)adopted));
		else if (intact)
			cli_print_new(json_pack("{s:b, s:I, s:b}", "intact", 1, "records",
			    (json_int_t)records, "authenticated", 0));
		else
			cli_print_new(json_pack("{s:b, s:I, s:I, s:s, s:b}", "intact", 0, "records",
			    (json_int_t)records, "first_bad_seq", (json_int_t)bad, "problem",
			    problem, "authenticated", authenticated));
	} else if (intact && authenticated && adopted > 0)
		printf("audit chain intact: %lld records (authenticated from record %lld, where "
		    "an anchor without a MAC, or a missing or malformed one, was adopted)\n",
		    records, from);
	else if (intact)
		printf("audit chain intact: %lld records%s\n", records, authenticated ? "" :
		    " (the anchor's MAC was not checked: no usable master key)");
	else
		printf("audit chain BROKEN at record %lld: %s (%lld records checked)\n", bad,
		    problem, records);
	return intact ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
}

/*
 * The vault for the anchor's MAC, offline: KEYFILE (an error when it will not open), else
 * master.key next to db when there is one and it opens (when it does not, say, owned by
 * the daemon's user, a note says why). *v NULL: the chain is checked unauthenticated.
 */
static int
audit_offline_vault(struct store *st, const char *db, const char *keyfile, struct vault **v)
{
	char path[4096], why[512];
	const char *slash;
	int rc, named = keyfile != NULL;

	*v = NULL;
	if (!named) {
		slash = strrchr(db, '/');
		if (slash == NULL)
			snprintf(path, sizeof(path), "master.key");
		else if ((size_t)(slash - db) + sizeof("/master.key") > sizeof(path))
			return 0;
		else
			snprintf(path, sizeof(path), "%.*s/master.key", (int)(slash - db), db);
		if (access(path, F_OK) != 0)
			return 0;
		keyfile = path;
	}
	why[0] = '\0';
	if ((rc = vault_open(st, keyfile, v, why, sizeof(why))) == 0)
		return 0;
	if (named)
		return cli_error(CLI_EXIT_OTHER, "audit verify: master key %s: %s", keyfile,
		    why[0] != '\0' ? why : cb_strerror(rc));
	fprintf(stderr, "credbroker: audit verify: %s not used: %s\n", keyfile,
	    why[0] != '\0' ? why : cb_strerror(rc));
	return 0;
}

static int
audit_verify_offline(struct cli *g, const char *db, const char *keyfile)
{
	struct audit_report rep;
	struct store *st = NULL;
	struct vault *v = NULL;
	uint8_t key[CRYPTO_KEY_LEN];
	char why[512];
	int rc;

	why[0] = '\0';
	if ((rc = store_open(db, STORE_READONLY, &st, why, sizeof(why))) != 0)
		return cli_error(CLI_EXIT_OTHER, "audit verify: cannot open %s: %s", db,
		    why[0] != '\0' ? why : cb_strerror(rc));
	/* A view or trigger could show the verification other rows than the log's. */
	if ((rc = store_schema_check(st, why, sizeof(why))) != 0) {
		store_close(st);
		if (rc == CB_ERR_CORRUPT)
			return audit_verify_report(g, 0, 0, 0, 0, 0, 1, why);
		return cli_error(CLI_EXIT_OTHER, "audit verify: %s", why);
	}
	if ((rc = audit_offline_vault(st, db, keyfile, &v)) != 0) {
		store_close(st);
		return rc;
	}
	memset(&rep, 0, sizeof(rep));
	if (v != NULL && (rc = vault_audit_key(v, key)) != 0) {
		vault_free(v);
		store_close(st);
		return cli_error(CLI_EXIT_OTHER, "audit verify: %s", cb_strerror(rc));
	}
	rc = audit_verify(st, v != NULL ? key : NULL, &rep);
	explicit_bzero(key, sizeof(key));
	vault_free(v);
	store_close(st);
	if (rc == 0)
		return audit_verify_report(g, 1, rep.authenticated, rep.authenticated_from,
		    rep.adopted, rep.records, 0, "");
	if (rc == CB_ERR_CORRUPT) {
		rep.problem[sizeof(rep.problem) - 1] = '\0';
		return audit_verify_report(g, 0, rep.authenticated, 0, 0, rep.records,
		    rep.first_bad_seq, rep.problem[0] != '\0' ? rep.problem : "broken chain");
	}
	return cli_error(CLI_EXIT_OTHER, "audit verify: %s: %s", db, cb_strerror(rc));
}

static int
audit_verify_online(struct cli *g)
{
	json_t *j = NULL, *ok, *rec, *bad, *prob, *auth, *from, *adopted;
	char *json = NULL;
	cbc_t *c = NULL;
	int rc;

	if ((rc = cli_connect(g, CLI_ROLE_ADMIN, KEY_ROTATE_TIMEOUT_MS, &c)) != 0)
		return rc;
	if ((rc = cbc_audit_verify(c, &json)) != 0) {
		rc = cli_fail(c, rc, "audit verify");
		goto out;
	}
	j = json_loads(json, 0, NULL);
	ok = json_object_get(j, "intact");
	if (ok == NULL)
		ok = json_object_get(j, "ok");
	rec = json_object_get(j, "records");
	bad = json_object_get(j, "first_bad_seq");
	prob = json_object_get(j, "problem");
	auth = json_object_get(j, "authenticated");	/* absent from older brokers */
	from = json_object_get(j, "authenticated_from");
	adopted = json_object_get(j, "adopted");	/* older brokers: from > 1 */
	if (!json_is_boolean(ok) || !json_is_integer(rec) ||
	    (!json_is_true(ok) && (!json_is_integer(bad) || !json_is_string(prob)))) {
		rc = cli_error(CLI_EXIT_OTHER, "audit verify: the broker's answer lacks intact, "
		    "records, first_bad_seq or problem");
		goto out;
	}
	if (g->json) {
		cli_print_json(json);
		rc = json_is_true(ok) ? CLI_EXIT_OK : CLI_EXIT_REFUSED;
	} else
		rc = audit_verify_report(g, json_is_true(ok), json_is_true(auth),
		    json_is_integer(from) ? json_integer_value(from) : 1,
		    json_is_integer(adopted) ? json_integer_value(adopted) :
		    json_is_integer(from) && json_integer_value(from) > 1 ?
		    json_integer_value(from) : 0, json_integer_value(rec),
		    json_is_true(ok) ? 0 : json_integer_value(bad),
		    json_is_true(ok) ? "" : json_string_value(prob));
out:
	json_decref(j);
	free(json);
	cbc_free(c);
	return rc;
}

int
cli_cmd_audit(struct cli *g, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "after", required_argument, NULL, OPT_AFTER },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "db", required_argument, NULL, OPT_DB },
		{ "master-key", required_argument, NULL, OPT_MASTER_KEY },
		{ NULL, 0, NULL, 0 }
	};
	struct audit_args a;
	const char *sub = NULL;
	char cmd[32];
	int first, rc;

	memset(&a, 0, sizeof(a));
	a.limit = AUDIT_TAIL_DEFAULT;
	if (argc >= 2 && argv[1][0] != '-') {
		sub = argv[1];
		if (strcmp(sub, "tail") != 0 && strcmp(sub, "verify") != 0)
			return cli_usage("audit", "unknown audit command '%s' (tail, verify)",
			    sub);
	}
	snprintf(cmd, sizeof(cmd), "audit%s%s", sub != NULL ? " " : "", sub != NULL ? sub : "");
	if ((rc = cli_getopt(g, cmd, argc - (sub != NULL), argv + (sub != NULL), NULL, lopts,
	    audit_opt, &a, &first)) != 0)
		return rc;
	if (g->help) {
		fputs(audit_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (sub == NULL)
		return cli_usage("audit", "audit wants tail or verify");
	if (first != argc - 1)
		return cli_usage(cmd, "%s takes no argument", cmd);
	if (strcmp(sub, "tail") == 0) {
		if (a.db != NULL || a.master_key != NULL)
			return cli_usage(cmd, "--db and --master-key are for audit verify");
		return audit_tail(g, &a);
	}
	if (a.has_after || a.limit != AUDIT_TAIL_DEFAULT)
		return cli_usage(cmd, "--after and --limit are for audit tail");
	if (a.master_key != NULL && a.db == NULL)
		return cli_usage(cmd, "--master-key is for audit verify --db");
	return a.db != NULL ? audit_verify_offline(g, a.db, a.master_key) :
	    audit_verify_online(g);
}
