/*
 * mkcert.c: a test-only tool that makes (often hostile) certificates with pki.c for
 * the integration tests: a serverAuth-only certificate from our CA, an expired client
 * certificate, one from another CA, a self-signed one, an unknown identity.
 *
 *   mkcert (--ca CA.pem --ca-key CA.key | --self-signed) --usage client|server|ca
 *       --cn CN [--uri URI] [--dns NAME]... [--ip ADDR]... [--days N] [--expired]
 *       --out PREFIX
 * writes PREFIX.pem (0644) and PREFIX.key (0600); never overwrites. Exit 0, 1 on
 * failure, 2 on usage errors.
 *
 *   mkcert --init DIR
 * runs init_deployment(DIR) directly (tests/test_init.sh uses it as a driver while
 * `credbroker init` is not available).
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "init.h"
#include "log.h"
#include "pki.h"
#include "util.h"

#define MKCERT_NAMES_MAX	16

static void
usage(void)
{
	fprintf(stderr,
	    "usage: mkcert (--ca CA.pem --ca-key CA.key | --self-signed)\n"
	    "              --usage client|server|ca --cn CN [--uri URI] [--dns NAME]...\n"
	    "              [--ip ADDR]... [--days N] [--expired] --out PREFIX\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "ca-key", required_argument, NULL, 'k' },
		{ "usage", required_argument, NULL, 'u' },
		{ "cn", required_argument, NULL, 'n' },
		{ "uri", required_argument, NULL, 'U' },
		{ "dns", required_argument, NULL, 'd' },
		{ "ip", required_argument, NULL, 'i' },
		{ "days", required_argument, NULL, 'D' },
		{ "expired", no_argument, NULL, 'e' },
		{ "self-signed", no_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dns[MKCERT_NAMES_MAX + 1], *ips[MKCERT_NAMES_MAX + 1];
	const char *ca_path = NULL, *ca_key_path = NULL, *usage_name = NULL, *out = NULL;
	size_t ndns = 0, nips = 0;
	struct pki_subject subj;
	enum pki_usage use;
	X509 *ca = NULL, *crt = NULL;
	EVP_PKEY *ca_key = NULL, *key = NULL;
	char crt_path[4096], key_path[4096];
	long long days = 30;
	int ch, expired = 0, self_signed = 0, rc, status = 1;

	log_init("mkcert", LOG_LVL_WARN);
	if (argc == 3 && strcmp(argv[1], "--init") == 0) {
		char why[1024];

		if ((rc = init_deployment(argv[2], why, sizeof(why))) != 0) {
			fprintf(stderr, "mkcert: init: %s (%s)\n", why, cb_strerror(rc));
			return 1;
		}
		return 0;
	}
	memset(&subj, 0, sizeof(subj));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': ca_path = optarg; break;
		case 'k': ca_key_path = optarg; break;
		case 'u': usage_name = optarg; break;
		case 'n': subj.cn = optarg; break;
		case 'U': subj.uri = optarg; break;
		case 'd':
			if (ndns >= MKCERT_NAMES_MAX) {
				fprintf(stderr, "mkcert: too many --dns\n");
				return 2;
			}
			dns[ndns++] = optarg;
			break;
		case 'i':
			if (nips >= MKCERT_NAMES_MAX) {
				fprintf(stderr, "mkcert: too many --ip\n");
				return 2;
			}
			ips[nips++] = optarg;
			break;
		case 'D':
			if (util_strtoll(optarg, 1, 36500, &days) != 0) {
				fprintf(stderr, "mkcert: --days: 1..36500\n");
				return 2;
			}
			break;
		case 'e': expired = 1; break;
		case 's': self_signed = 1; break;
		case 'o': out = optarg; break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc || usage_name == NULL || subj.cn == NULL || out == NULL ||
	    (self_signed && (ca_path != NULL || ca_key_path != NULL)) ||
	    (!self_signed && (ca_path == NULL || ca_key_path == NULL))) {
		usage();
		return 2;
	}
	if (strcmp(usage_name, "client") == 0)
		use = PKI_CLIENT;
	else if (strcmp(usage_name, "server") == 0)
		use = PKI_SERVER;
	else if (strcmp(usage_name, "ca") == 0)
		use = PKI_CA;
	else {
		fprintf(stderr, "mkcert: --usage must be client, server or ca\n");
		return 2;
	}
	dns[ndns] = NULL;
	ips[nips] = NULL;
	subj.dns = ndns > 0 ? dns : NULL;
	subj.ips = nips > 0 ? ips : NULL;
	subj.days = (long)days;
	if (expired) {
		/* valid for one day, ending a day ago */
		subj.days = 1;
		subj.not_before_offset_s = -2 * 86400;
	}
	if ((size_t)snprintf(crt_path, sizeof(crt_path), "%s.pem", out) >= sizeof(crt_path) ||
	    (size_t)snprintf(key_path, sizeof(key_path), "%s.key", out) >= sizeof(key_path)) {
		fprintf(stderr, "mkcert: --out too long\n");
		return 2;
	}
	if (!self_signed) {
		if ((rc = pki_read_cert(ca_path, &ca)) != 0 ||
		    (rc = pki_read_key(ca_key_path, &ca_key)) != 0) {
			fprintf(stderr, "mkcert: cannot read the CA: %s\n", cb_strerror(rc));
			goto out;
		}
	}
	if ((rc = pki_key_new(&key)) != 0 ||
	    (rc = pki_issue(key, &subj, use, ca, ca_key, &crt)) != 0) {
		fprintf(stderr, "mkcert: cannot issue: %s\n", cb_strerror(rc));
		goto out;
	}
	if ((rc = pki_write_key(key_path, key)) != 0) {
		fprintf(stderr, "mkcert: %s: %s\n", key_path, cb_strerror(rc));
		goto out;
	}
	if ((rc = pki_write_cert(crt_path, crt)) != 0) {
		fprintf(stderr, "mkcert: %s: %s\n", crt_path, cb_strerror(rc));
		unlink(key_path);
		goto out;
	}
	status = 0;
out:
	X509_free(ca);
	X509_free(crt);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	return status;
}
