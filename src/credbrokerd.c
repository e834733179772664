/*
 * credbrokerd.c: the broker daemon's main.
 *
 *   credbrokerd -c CONF                 serve in the foreground until SIGTERM/SIGINT
 *   credbrokerd -c CONF --rotate-master-key --new-key FILE
 *                                       offline master-key rotation (daemon stopped)
 *   credbrokerd --version | --help
 *
 * Exit codes: 0 clean stop, 1 runtime error, 2 usage or configuration error.
 *
 * An exclusive flock on DATABASE.lock keeps two daemons, or a daemon and an offline
 * rotation, from ever sharing a database.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "commit.h"
#include "conf.h"
#include "err.h"
#include "grant.h"
#include "log.h"
#include "metrics.h"
#include "priv.h"
#include "secret.h"
#include "server.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define EXIT_RUNTIME	1
#define EXIT_USAGE	2

static void usage(FILE *f) __attribute__((noreturn));

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: credbrokerd -c CONF\n"
	    "       credbrokerd -c CONF --rotate-master-key --new-key FILE\n"
	    "       credbrokerd --version | --help\n"
	    "\n"
	    "  -c, --config CONF        broker configuration (credbrokerd.conf)\n"
	    "      --rotate-master-key  re-wrap every key of the database under the master key\n"
	    "                           in FILE, then install FILE as the configured master_key\n"
	    "                           (the old key is kept as MASTER_KEY.old); the daemon\n"
	    "                           must be stopped\n"
	    "      --new-key FILE       the new master key (64 hex digits, mode 0600)\n"
	    "  -V, --version            print the version and exit\n"
	    "  -h, --help               print this help and exit\n"
	    "\n"
	    "Exit status: 0 clean stop, 1 runtime error, 2 usage or configuration error.\n");
	exit(f == stdout ? 0 : EXIT_USAGE);
}

/* Takes the exclusive lock DATABASE.lock; *fd_out stays open while it is held. */
static int
lock_database(const char *db, int *fd_out)
{
	char path[4096];
	int fd;

	*fd_out = -1;
	if ((size_t)snprintf(path, sizeof(path), "%s.lock", db) >= sizeof(path)) {
		log_warnx("database path too long: %s", db);
		return CB_ERR_INVAL;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		log_warn("cannot open lock file %s", path);
		return CB_ERR_IO;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_warnx("database %s is in use by another credbrokerd (or a master-key "
			    "rotation): %s is locked", db, path);
		else
			log_warn("cannot lock %s", path);
		close(fd);
		return CB_ERR_BUSY;
	}
	*fd_out = fd;
	return 0;
}

/* fsyncs the directory holding path, so renames in it are durable. */
static void
sync_dir_of(const char *path)
{
	char *dir;
	int fd;

	if ((dir = util_dirname(path)) == NULL)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/*
 * Offline master-key rotation. Order: refuse if MASTER_KEY.old exists (nothing is
 * touched); re-wrap every key in one transaction (vault_rotate_master_key: the
 * database is wholly under the old key or wholly under the new one); hard-link the old
 * key to MASTER_KEY.old; rename the new key file over MASTER_KEY (atomic). If the
 * rename is impossible (another file system), the database is already under the new
 * key: we say exactly which file to move where.
 */
static int
rotate_master_key(const struct broker_conf *conf, const char *newkey)
{
	struct store *st = NULL;
	char why[512], old[4096];
	struct stat sb, mb;
	int rc, resume = 0;

	if ((size_t)snprintf(old, sizeof(old), "%s.old", conf->master_key) >= sizeof(old))
		return CB_ERR_INVAL;
	if (strcmp(newkey, conf->master_key) == 0) {
		log_warnx("--new-key names the current master key %s", newkey);
		return CB_ERR_INVAL;
	}
	if ((rc = util_check_private_file(newkey, why, sizeof(why))) != 0) {
		log_warnx("new master key: %s", why);
		return rc;
	}
	if ((rc = store_open(conf->database, 0, &st, why, sizeof(why))) != 0) {
		log_warnx("%s", why);
		return rc;
	}
	/*
	 * Already under the new key: an earlier run committed and was interrupted before (or
	 * while) installing the key file. Finish the file steps instead of failing.
	 */
	why[0] = '\0';
	if (vault_master_key_matches(st, newkey, why, sizeof(why)) == 0) {
		resume = 1;
		log_info("database %s is already under the key in %s: finishing the rotation",
		    conf->database, newkey);
	} else if (lstat(old, &sb) == 0) {
		store_close(st);
		log_warnx("%s exists (from an earlier rotation): move it away first; nothing "
		    "was changed", old);
		return CB_ERR_EXISTS;
	} else {
		why[0] = '\0';
		rc = vault_rotate_master_key(st, conf->master_key, newkey, why, sizeof(why));
	}
	store_close(st);
	if (rc != 0) {
		log_warnx("master-key rotation failed, the database is unchanged: %s",
		    why[0] != '\0' ? why : cb_strerror(rc));
		return rc;
	}
	if (!resume)
		log_info("database %s re-wrapped under the key in %s", conf->database, newkey);
	/* Keep the old key as .old: linked already when a previous run got that far. */
	if (!(resume && lstat(old, &sb) == 0 && stat(conf->master_key, &mb) == 0 &&
	    sb.st_ino == mb.st_ino && sb.st_dev == mb.st_dev) &&
	    link(conf->master_key, old) == -1) {
		log_warn("the database is now under the NEW key, but keeping the old key as %s "
		    "failed; do by hand: mv %s %s && mv %s %s", old, conf->master_key, old,
		    newkey, conf->master_key);
		return CB_ERR_IO;
	}
	if (rename(newkey, conf->master_key) == -1) {
		log_warn("the database is now under the NEW key, but installing it failed; do "
		    "by hand: mv %s %s (the old key is kept as %s)", newkey, conf->master_key,
		    old);
		return CB_ERR_IO;
	}
	sync_dir_of(conf->master_key);
	log_info("new master key installed as %s; the old one is kept as %s (delete it once "
	    "backups made under it are gone)", conf->master_key, old);
	return 0;
}

struct daemon {
	struct broker b;
	struct store *st;
	struct vault *vault;
	struct commit *commit;
	struct store_pool *pool;
	struct metrics *metrics;
	struct server *server;
	int purging;
};

static void
daemon_stop(struct daemon *d)
{
	int left;

	/* Reverse order of start: no new calls, in-flight calls finish, then writers. */
	left = server_stop(d->server);
	d->server = NULL;
	if (d->purging)
		grant_purge_stop();
	d->purging = 0;
	if (left > 0) {
		/*
		 * Abandoned calls (a long key rotation) still use the writer and the keys;
		 * everything answered is durable already: exit without freeing.
		 */
		log_warnx("%d calls abandoned at shutdown", left);
		return;
	}
	commit_close(d->commit);
	d->commit = NULL;
	store_pool_free(d->pool);
	d->pool = NULL;
	metrics_free(d->metrics);
	d->metrics = NULL;
	vault_free(d->vault);
	d->vault = NULL;
	secret_cache_clear();	/* the decrypted values the resolves kept */
	store_close(d->st);
	d->st = NULL;
}

static int
daemon_start(struct daemon *d, struct broker_conf *conf)
{
	char why[512];
	int rc;

	memset(d, 0, sizeof(*d));
	why[0] = '\0';
	if ((rc = store_open(conf->database, 0, &d->st, why, sizeof(why))) != 0 ||
	    (rc = store_schema_check(d->st, why, sizeof(why))) != 0) {
		log_warnx("%s", why[0] != '\0' ? why : cb_strerror(rc));
		return rc;
	}
	/*
	 * SQLite opens a file it cannot write read-only, silently: started as an
	 * unprivileged user (no privilege drop, so no daemon_check_database), the daemon
	 * would report ready and fail every write.
	 */
	if (!store_writable(d->st)) {
		log_warnx("the database %s cannot be opened for writing: it is read-only for "
		    "this user", conf->database);
		return CB_ERR_PERM;
	}
	why[0] = '\0';
	if ((rc = vault_open(d->st, conf->master_key, &d->vault, why, sizeof(why))) != 0) {
		log_warnx("%s", why[0] != '\0' ? why : cb_strerror(rc));
		return rc;
	}
	/* The vault holds the keys now; readers and the writer have their own connections. */
	store_close(d->st);
	d->st = NULL;
	if ((rc = commit_open(conf->database, d->vault, &d->commit)) != 0) {
		log_warnx("cannot start the commit writer on %s: %s", conf->database,
		    cb_strerror(rc));
		return rc;
	}
	if ((rc = store_pool_new(conf->database, &d->pool)) != 0 ||
	    (rc = metrics_new(&d->metrics)) != 0) {
		log_warnx("start-up: %s", cb_strerror(rc));
		return rc;
	}
	d->b.conf = conf;
	d->b.vault = d->vault;
	d->b.commit = d->commit;
	d->b.readers = d->pool;
	d->b.metrics = d->metrics;
	if ((rc = grant_purge_start(&d->b)) != 0) {
		log_warnx("cannot start the purge: %s", cb_strerror(rc));
		return rc;
	}
	d->purging = 1;
	why[0] = '\0';
	if ((rc = server_prepare(&d->b, &d->server, why, sizeof(why))) != 0) {
		log_warnx("%s", why[0] != '\0' ? why : cb_strerror(rc));
		return rc;
	}
	return 0;
}

/*
 * After a privilege drop, connections to the database are opened as the daemon's user
 * (readers, key rotation): find out now, with one, that this user can read and write it,
 * rather than report "ready" and fail every request.
 */
static int
daemon_check_database(const struct broker_conf *conf)
{
	struct store *st = NULL;
	char why[512];
	int rc;

	why[0] = '\0';
	rc = store_open(conf->database, STORE_NOCHECK, &st, why, sizeof(why));
	if (rc == 0 && !store_writable(st)) {
		snprintf(why, sizeof(why), "it is read-only for this user");
		rc = CB_ERR_PERM;
	}
	if (rc == 0)
		rc = store_begin(st);
	if (rc == 0)
		rc = store_rollback(st);
	store_close(st);
	if (rc != 0)
		log_warnx("the database %s cannot be opened for writing as user %s (%s): make it "
		    "and its directory the user's", conf->database, conf->user,
		    why[0] != '\0' ? why : cb_strerror(rc));
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "rotate-master-key", no_argument, NULL, 'R' },
		{ "new-key", required_argument, NULL, 'K' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct broker_conf *conf = NULL;
	struct daemon d;
	const char *conf_path = NULL, *newkey = NULL;
	char why[512];
	sigset_t set;
	int ch, rotate = 0, lockfd = -1, sig = 0, rc, status = EXIT_RUNTIME;

	memset(&d, 0, sizeof(d));
	log_init("credbrokerd", LOG_LVL_INFO);
	while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'R':
			rotate = 1;
			break;
		case 'K':
			newkey = optarg;
			break;
		case 'V':
			printf("credbrokerd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
		default:
			usage(stderr);
		}
	}
	if (optind != argc || conf_path == NULL || rotate != (newkey != NULL))
		usage(stderr);

	if (priv_no_core() != 0) {
		log_warnx("cannot disable core dumps");
		return EXIT_RUNTIME;
	}
	why[0] = '\0';
	if ((rc = conf_load_broker(conf_path, &conf, why, sizeof(why))) != 0) {
		log_warnx("%s", why[0] != '\0' ? why : cb_strerror(rc));
		return EXIT_USAGE;
	}
	log_init("credbrokerd", conf->log_level);
	if (lock_database(conf->database, &lockfd) != 0)
		goto out;

	if (rotate) {
		status = rotate_master_key(conf, newkey) == 0 ? 0 : EXIT_RUNTIME;
		goto out;
	}

	/* Every thread inherits this mask; main waits for the signals with sigwait. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (daemon_start(&d, conf) != 0)
		goto stop;
	/* Keys are read and the socket bound: drop privileges before serving anything. */
	if (conf->user != NULL && geteuid() == 0) {
		if (priv_drop(conf->user) != 0) {
			log_warnx("cannot drop privileges to %s", conf->user);
			goto stop;
		}
		if (daemon_check_database(conf) != 0)
			goto stop;
		log_info("running as %s", conf->user);
	}
	why[0] = '\0';
	if ((rc = server_run(d.server, why, sizeof(why))) != 0) {
		log_warnx("%s", why[0] != '\0' ? why : cb_strerror(rc));
		goto stop;
	}
	/*
	 * Serving: privileges dropped, socket bound, server and purge threads running. The
	 * filter covers all of them (TSYNC) and every thread started later.
	 */
	if (conf->seccomp && priv_seccomp("broker") != 0) {
		log_warnx("refusing to serve without the seccomp filter ('seccomp no' turns it off)");
		goto stop;
	}
	log_info("credbrokerd %s ready", PACKAGE_VERSION);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	log_info("signal %d: draining and stopping", sig);
	status = 0;
stop:
	daemon_stop(&d);
out:
	if (lockfd != -1)
		close(lockfd);
	conf_free_broker(conf);
	if (status == 0)
		log_info("stopped");
	return status;
}
