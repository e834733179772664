/*
 * init.c: "credbroker init DIR": a complete development deployment in one directory
 * (the layout is a contract, see docs/deployment.md). Refuses a non-empty directory
 * and never overwrites a file (every file is created with O_EXCL); on failure it
 * removes what it created, and only that.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "init.h"
#include "log.h"
#include "pki.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define INIT_CA_DAYS	3650L	/* the two CAs: ten years */
#define INIT_LEAF_DAYS	825L	/* server and client certificates */
#define INIT_MAX_MADE	32

static const char init_broker_conf[] =
    "# credbrokerd.conf: made by `credbroker init` (a development deployment).\n"
    "# Relative paths are resolved against this file's directory.\n"
    "# Every keyword is described in docs/configuration.md.\n"
    "listen 127.0.0.1:8443\n"
    "database credbroker.db\n"
    "master_key master.key\n"
    "tls_cert pki/server.pem\n"
    "tls_key pki/server.key\n"
    "client_ca pki/ca.pem\n"
    "# user credbroker\n"
    "# log_level info\n"
    "\n"
    "# Client-certificate identities (SAN URI) and their roles; the harness may grant\n"
    "# any secret for up to one hour.\n"
    "identity " INIT_ID_HARNESS " role harness max_ttl 3600 secrets *\n"
    "identity " INIT_ID_PROXY " role proxy\n"
    "identity " INIT_ID_ADMIN " role admin\n";

static const char init_proxy_conf[] =
    "# credproxy.conf: made by `credbroker init` (a development deployment).\n"
    "# Relative paths are resolved against this file's directory.\n"
    "listen 127.0.0.1:3128\n"
    "broker_url https://127.0.0.1:8443\n"
    "broker_ca pki/ca.pem\n"
    "cert pki/proxy.pem\n"
    "key pki/proxy.key\n"
    "sandbox_ca pki/sandbox-ca.pem\n"
    "sandbox_ca_key pki/sandbox-ca.key\n"
    "# sandbox_id sbx-1                (sidecar mode)\n"
    "# sandbox 127.0.0.2/32 sbx-a       (shared mode: source CIDR -> sandbox ID)\n"
    "# allow_host example.com           (egress allowlist for token-less requests)\n"
    "# allow_private no\n"
    "# upstream_ca /path/to/bundle.pem\n";

/* What this run created, removed in reverse order when it fails. */
struct init_made {
	char *paths[INIT_MAX_MADE];
	int isdir[INIT_MAX_MADE];
	size_t n;
};

static int
init_remember(struct init_made *m, const char *path, int isdir)
{
	if (m->n >= INIT_MAX_MADE)
		return CB_ERR_LIMIT;
	if ((m->paths[m->n] = strdup(path)) == NULL)
		return CB_ERR_NOMEM;
	m->isdir[m->n++] = isdir;
	return 0;
}

static void
init_undo(struct init_made *m)
{
	int r;

	while (m->n > 0) {
		m->n--;
		r = m->isdir[m->n] ? rmdir(m->paths[m->n]) : unlink(m->paths[m->n]);
		if (r == -1 && errno != ENOENT)
			log_warn("could not remove %s", m->paths[m->n]);
		free(m->paths[m->n]);
	}
}

static void
init_forget(struct init_made *m)
{
	while (m->n > 0)
		free(m->paths[--m->n]);
}

/* 0 when dir does not exist (*exists 0) or is an empty directory (*exists 1). */
static int
init_check_dir(const char *dir, int *exists, char *why, size_t whylen)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	*exists = 0;
	if (lstat(dir, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return CB_ERR_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "%s: exists and is not a directory", dir);
		return CB_ERR_EXISTS;
	}
	*exists = 1;
	if ((d = opendir(dir)) == NULL) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return CB_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(why, whylen, "%s: not empty (holds %s); refusing to overwrite a "
		    "deployment", dir, de->d_name);
		rc = CB_ERR_EXISTS;
		break;
	}
	closedir(d);
	return rc;
}

/* Creates a new file dir/name (O_EXCL) with data and mode. */
static int
init_file(struct init_made *m, const char *dir, const char *name, const char *data,
    mode_t mode, char *why, size_t whylen)
{
	char *path;
	int rc;

	if ((path = util_path_join(dir, name)) == NULL)
		return CB_ERR_NOMEM;
	rc = util_create_file(path, data, strlen(data), mode);
	if (rc == 0)
		rc = init_remember(m, path, 0);
	else if (rc == CB_ERR_EXISTS)
		snprintf(why, whylen, "%s: already exists; refusing to overwrite it", path);
	else
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
	free(path);
	return rc;
}

/* Writes key and certificate as pki/NAME.key and pki/NAME.pem. */
static int
init_write_pair(struct init_made *m, const char *pkidir, const char *name, X509 *crt,
    EVP_PKEY *key, char *why, size_t whylen)
{
	char file[64];
	char *path = NULL;
	int rc;

	snprintf(file, sizeof(file), "%s.key", name);
	if ((path = util_path_join(pkidir, file)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = pki_write_key(path, key)) != 0)
		goto fail;
	if ((rc = init_remember(m, path, 0)) != 0)
		goto out;
	free(path);
	snprintf(file, sizeof(file), "%s.pem", name);
	if ((path = util_path_join(pkidir, file)) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = pki_write_cert(path, crt)) != 0)
		goto fail;
	rc = init_remember(m, path, 0);
	goto out;
fail:
	snprintf(why, whylen, "%s: %s", path,
	    rc == CB_ERR_EXISTS ? "already exists; refusing to overwrite it" : cb_strerror(rc));
out:
	free(path);
	return rc;
}

/* Issues a key and certificate (issuer NULL: a self-signed CA) and writes them. */
static int
init_issue(struct init_made *m, const char *pkidir, const char *name,
    const struct pki_subject *subj, enum pki_usage usage, X509 *ca, EVP_PKEY *ca_key,
    X509 **crt_out, EVP_PKEY **key_out, char *why, size_t whylen)
{
	EVP_PKEY *key = NULL;
	X509 *crt = NULL;
	int rc;

	if ((rc = pki_key_new(&key)) != 0 ||
	    (rc = pki_issue(key, subj, usage, ca, ca_key, &crt)) != 0) {
		snprintf(why, whylen, "%s: cannot make the key or certificate: %s", name,
		    cb_strerror(rc));
		goto out;
	}
	if ((rc = init_write_pair(m, pkidir, name, crt, key, why, whylen)) != 0)
		goto out;
	if (crt_out != NULL) {
		*crt_out = crt;		/* transferred */
		crt = NULL;
	}
	if (key_out != NULL) {
		*key_out = key;		/* transferred */
		key = NULL;
	}
out:
	X509_free(crt);
	EVP_PKEY_free(key);
	return rc;
}

static int
init_pki(struct init_made *m, const char *pkidir, char *why, size_t whylen)
{
	static const char *const server_dns[] = { "localhost", NULL };
	static const char *const server_ips[] = { "127.0.0.1", NULL };
	static const struct {
		const char *name, *uri;
	} clients[] = {
		{ "harness", INIT_ID_HARNESS },
		{ "proxy", INIT_ID_PROXY },
		{ "admin", INIT_ID_ADMIN },
	};
	struct pki_subject subj;
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	size_t i;
	int rc;

	memset(&subj, 0, sizeof(subj));
	subj.cn = "credbroker development CA";
	subj.days = INIT_CA_DAYS;
	if ((rc = init_issue(m, pkidir, "ca", &subj, PKI_CA, NULL, NULL, &ca, &ca_key, why,
	    whylen)) != 0)
		goto out;

	memset(&subj, 0, sizeof(subj));
	subj.cn = "localhost";
	subj.dns = server_dns;
	subj.ips = server_ips;
	subj.days = INIT_LEAF_DAYS;
	if ((rc = init_issue(m, pkidir, "server", &subj, PKI_SERVER, ca, ca_key, NULL, NULL,
	    why, whylen)) != 0)
		goto out;

	for (i = 0; i < UTIL_ARRAY_LEN(clients); i++) {
		memset(&subj, 0, sizeof(subj));
		subj.cn = clients[i].name;
		subj.uri = clients[i].uri;
		subj.days = INIT_LEAF_DAYS;
		if ((rc = init_issue(m, pkidir, clients[i].name, &subj, PKI_CLIENT, ca, ca_key,
		    NULL, NULL, why, whylen)) != 0)
			goto out;
	}

	/* A separate CA for the proxy's interception leaves: sandboxes trust only this one. */
	memset(&subj, 0, sizeof(subj));
	subj.cn = "credbroker sandbox CA";
	subj.days = INIT_CA_DAYS;
	rc = init_issue(m, pkidir, "sandbox-ca", &subj, PKI_CA, NULL, NULL, NULL, NULL, why,
	    whylen);
out:
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

/* master.key, then the database with its first keys (vault_open initialises them). */
static int
init_keys(struct init_made *m, const char *dir, char *why, size_t whylen)
{
	static const char *const sidecars[] = { "-wal", "-shm", "-journal" };
	struct store *st = NULL;
	struct vault *v = NULL;
	char *mk = NULL, *db = NULL;
	char side[4096];
	size_t i;
	int rc;

	if ((mk = util_path_join(dir, "master.key")) == NULL ||
	    (db = util_path_join(dir, "credbroker.db")) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	if ((rc = vault_create_master_key(mk)) != 0) {
		snprintf(why, whylen, "%s: %s", mk, rc == CB_ERR_EXISTS ?
		    "already exists; refusing to overwrite it" : cb_strerror(rc));
		goto out;
	}
	if ((rc = init_remember(m, mk, 0)) != 0)
		goto out;
	/* The database must be new: store_open would happily open an existing one. */
	if (access(db, F_OK) == 0 || errno != ENOENT) {
		snprintf(why, whylen, "%s: already exists; refusing to overwrite it", db);
		rc = CB_ERR_EXISTS;
		goto out;
	}
	/* Remember the database and its side files first, so a failure removes them all. */
	if ((rc = init_remember(m, db, 0)) != 0)
		goto out;
	for (i = 0; i < UTIL_ARRAY_LEN(sidecars); i++) {
		snprintf(side, sizeof(side), "%s%s", db, sidecars[i]);
		if ((rc = init_remember(m, side, 0)) != 0)
			goto out;
	}
	if ((rc = store_open(db, STORE_CREATE, &st, why, whylen)) != 0)
		goto out;
	/* Wrapped keys, secret metadata and the audit log: for the daemon's user only. */
	if (chmod(db, 0600) == -1) {
		snprintf(why, whylen, "%s: chmod: %s", db, strerror(errno));
		rc = CB_ERR_IO;
		goto out;
	}
	if ((rc = vault_open(st, mk, &v, why, whylen)) != 0)
		goto out;
out:
	vault_free(v);
	store_close(st);
	free(mk);
	free(db);
	return rc;
}

int
init_deployment(const char *dir, char *why, size_t whylen)
{
	struct init_made made;
	char *pkidir = NULL;
	int exists, rc;

	memset(&made, 0, sizeof(made));
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (dir == NULL || dir[0] == '\0') {
		snprintf(why, whylen, "no directory given");
		return CB_ERR_INVAL;
	}
	if ((rc = init_check_dir(dir, &exists, why, whylen)) != 0)
		return rc;
	if (!exists) {
		if (mkdir(dir, 0700) == -1) {
			snprintf(why, whylen, "%s: %s", dir, strerror(errno));
			return errno == EEXIST ? CB_ERR_EXISTS : CB_ERR_IO;
		}
		if ((rc = init_remember(&made, dir, 1)) != 0)
			goto out;
	}
	if ((pkidir = util_path_join(dir, "pki")) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	/* mkdir fails when pki appeared since the check: someone else is at work here. */
	if (mkdir(pkidir, 0700) == -1) {
		snprintf(why, whylen, "%s: %s", pkidir, strerror(errno));
		rc = errno == EEXIST ? CB_ERR_EXISTS : CB_ERR_IO;
		goto out;
	}
	if ((rc = init_remember(&made, pkidir, 1)) != 0)
		goto out;
	if ((rc = init_pki(&made, pkidir, why, whylen)) != 0)
		goto out;
	if ((rc = init_keys(&made, dir, why, whylen)) != 0)
		goto out;
	if ((rc = init_file(&made, dir, "credbrokerd.conf", init_broker_conf, 0644, why,
	    whylen)) != 0)
		goto out;
	if ((rc = init_file(&made, dir, "credproxy.conf", init_proxy_conf, 0644, why,
	    whylen)) != 0)
		goto out;
	log_debug("made a development deployment in %s", dir);
out:
	if (rc != 0)
		init_undo(&made);
	else
		init_forget(&made);
	free(pkidir);
	return rc;
}
