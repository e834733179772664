/* test_pki.c: CA, server and client certificates; chain and purpose checks; files. */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "pki.h"
#include "util.h"

struct fixture {
	EVP_PKEY *ca_key, *srv_key, *cli_key;
	X509 *ca, *srv, *cli;
};

static const char *const dns_names[] = { "localhost", "broker.internal", NULL };
static const char *const ip_addrs[] = { "127.0.0.1", "::1", NULL };

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct pki_subject s;

	if (f == NULL)
		return -1;
	memset(&s, 0, sizeof(s));
	s.cn = "test CA";
	s.days = 3650;
	if (pki_key_new(&f->ca_key) != 0 ||
	    pki_issue(f->ca_key, &s, PKI_CA, NULL, NULL, &f->ca) != 0)
		return -1;
	memset(&s, 0, sizeof(s));
	s.cn = "localhost";
	s.dns = dns_names;
	s.ips = ip_addrs;
	s.days = 30;
	if (pki_key_new(&f->srv_key) != 0 ||
	    pki_issue(f->srv_key, &s, PKI_SERVER, f->ca, f->ca_key, &f->srv) != 0)
		return -1;
	memset(&s, 0, sizeof(s));
	s.cn = "harness";
	s.uri = "spiffe://credbroker.dev/harness";
	s.days = 30;
	if (pki_key_new(&f->cli_key) != 0 ||
	    pki_issue(f->cli_key, &s, PKI_CLIENT, f->ca, f->ca_key, &f->cli) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	X509_free(f->ca);
	X509_free(f->srv);
	X509_free(f->cli);
	EVP_PKEY_free(f->ca_key);
	EVP_PKEY_free(f->srv_key);
	EVP_PKEY_free(f->cli_key);
	free(f);
	return 0;
}

/* X509_verify_cert of leaf against ca for purpose (0: none); returns the verify error. */
static int
verify(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int err;

	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	if (purpose != 0)
		assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	if (X509_verify_cert(ctx) == 1)
		err = X509_V_OK;
	else
		err = X509_STORE_CTX_get_error(ctx);
	if (err == X509_V_OK)
		assert_int_equal(X509_STORE_CTX_get_error(ctx), X509_V_OK);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return err;
}

static void
test_chain_and_purpose(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(verify(f->ca, f->cli, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	assert_int_equal(verify(f->ca, f->srv, X509_PURPOSE_SSL_SERVER), X509_V_OK);
	/* clientAuth absent from the server certificate, serverAuth from the client's */
	assert_int_equal(verify(f->ca, f->srv, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_INVALID_PURPOSE);
	assert_int_equal(verify(f->ca, f->cli, X509_PURPOSE_SSL_SERVER), X509_V_ERR_INVALID_PURPOSE);
	assert_int_equal(verify(f->ca, f->ca, 0), X509_V_OK);
	/* the leaves cannot sign: CA:FALSE */
	assert_int_equal(X509_check_ca(f->ca), 1);
	assert_int_equal(X509_check_ca(f->cli), 0);
	assert_int_equal(X509_check_ca(f->srv), 0);
	assert_true(X509_get_extended_key_usage(f->cli) & XKU_SSL_CLIENT);
	assert_false(X509_get_extended_key_usage(f->cli) & XKU_SSL_SERVER);
	assert_true(X509_get_extended_key_usage(f->srv) & XKU_SSL_SERVER);
	assert_false(X509_get_extended_key_usage(f->srv) & XKU_SSL_CLIENT);
	assert_true(X509_get_key_usage(f->ca) & KU_KEY_CERT_SIGN);
	assert_true(X509_get_key_usage(f->cli) & KU_DIGITAL_SIGNATURE);
	assert_false(X509_get_key_usage(f->cli) & KU_KEY_CERT_SIGN);
	/* a leaf signed by the leaf: refused because the issuer is not a CA */
	{
		struct pki_subject s = { .cn = "evil", .uri = "spiffe://credbroker.dev/admin",
		    .days = 1 };
		EVP_PKEY *k = NULL;
		X509 *x = NULL, *chain_ca = f->ca;
		X509_STORE *store = X509_STORE_new();
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		STACK_OF(X509) *untrusted = sk_X509_new_null();

		assert_int_equal(pki_key_new(&k), 0);
		assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->cli, f->cli_key, &x), 0);
		assert_int_equal(X509_STORE_add_cert(store, chain_ca), 1);
		assert_int_equal(sk_X509_push(untrusted, f->cli), 1);
		assert_int_equal(X509_STORE_CTX_init(ctx, store, x, untrusted), 1);
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		assert_int_not_equal(X509_verify_cert(ctx), 1);
		assert_int_equal(X509_STORE_CTX_get_error(ctx), X509_V_ERR_INVALID_CA);
		ERR_clear_error();
		X509_STORE_CTX_free(ctx);
		X509_STORE_free(store);
		sk_X509_free(untrusted);
		X509_free(x);
		EVP_PKEY_free(k);
	}
}

static void
test_names_and_algorithms(void **state)
{
	struct fixture *f = *state;
	GENERAL_NAMES *gens;
	GENERAL_NAME *gn;
	const ASN1_OCTET_STRING *skid;
	AUTHORITY_KEYID *akid;
	char buf[128];
	int i, ndns = 0, nip = 0;

	/* client: exactly the URI SAN */
	gens = X509_get_ext_d2i(f->cli, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	gn = sk_GENERAL_NAME_value(gens, 0);
	assert_int_equal(gn->type, GEN_URI);
	assert_int_equal(ASN1_STRING_length(gn->d.uniformResourceIdentifier),
	    (int)strlen("spiffe://credbroker.dev/harness"));
	assert_memory_equal(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
	    "spiffe://credbroker.dev/harness", strlen("spiffe://credbroker.dev/harness"));
	GENERAL_NAMES_free(gens);
	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(f->cli), NID_commonName, buf,
	    sizeof(buf)) > 0);
	assert_string_equal(buf, "harness");

	/* server: DNS and IP SANs, checked the way TLS clients check them */
	gens = X509_get_ext_d2i(f->srv, NID_subject_alt_name, NULL, NULL);
	assert_non_null(gens);
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		gn = sk_GENERAL_NAME_value(gens, i);
		ndns += gn->type == GEN_DNS;
		nip += gn->type == GEN_IPADD;
	}
	GENERAL_NAMES_free(gens);
	assert_int_equal(ndns, 2);
	assert_int_equal(nip, 2);
	assert_int_equal(X509_check_host(f->srv, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(f->srv, "broker.internal", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(f->srv, "evil.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(f->srv, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(f->srv, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(f->srv, "127.0.0.2", 0), 0);

	/* P-256, ECDSA with SHA-256, version 3 */
	assert_int_equal(X509_get_signature_nid(f->cli), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_get_signature_nid(f->ca), NID_ecdsa_with_SHA256);
	assert_int_equal(EVP_PKEY_get_group_name(f->cli_key, buf, sizeof(buf), NULL), 1);
	assert_string_equal(buf, "prime256v1");
	assert_int_equal(X509_get_version(f->cli), X509_VERSION_3);

	/* the leaf's authority key ID is the CA's subject key ID */
	skid = X509_get0_subject_key_id(f->ca);
	assert_non_null(skid);
	akid = X509_get_ext_d2i(f->cli, NID_authority_key_identifier, NULL, NULL);
	assert_non_null(akid);
	assert_non_null(akid->keyid);
	assert_int_equal(ASN1_OCTET_STRING_cmp(akid->keyid, skid), 0);
	AUTHORITY_KEYID_free(akid);
	assert_non_null(X509_get0_subject_key_id(f->cli));
}

static void
test_serials(void **state)
{
	struct fixture *f = *state;
	BIGNUM *a, *b, *c;

	a = ASN1_INTEGER_to_BN(X509_get0_serialNumber(f->ca), NULL);
	b = ASN1_INTEGER_to_BN(X509_get0_serialNumber(f->srv), NULL);
	c = ASN1_INTEGER_to_BN(X509_get0_serialNumber(f->cli), NULL);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	/* 128 bits, top bit clear: positive, 127 significant bits */
	assert_int_equal(BN_num_bits(a), 127);
	assert_int_equal(BN_num_bits(b), 127);
	assert_false(BN_is_negative(a));
	assert_int_not_equal(BN_cmp(a, b), 0);
	assert_int_not_equal(BN_cmp(b, c), 0);
	assert_int_not_equal(BN_cmp(a, c), 0);
	BN_free(a);
	BN_free(b);
	BN_free(c);
}

static void
test_hostile(void **state)
{
	struct fixture *f = *state;
	struct pki_subject s;
	EVP_PKEY *k = NULL, *ok = NULL;
	X509 *x = NULL, *other = NULL;

	/* expired: valid from two days ago for one day */
	memset(&s, 0, sizeof(s));
	s.cn = "old";
	s.uri = "spiffe://credbroker.dev/harness";
	s.days = 1;
	s.not_before_offset_s = -2 * 86400;
	assert_int_equal(pki_key_new(&k), 0);
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, f->ca_key, &x), 0);
	assert_int_equal(verify(f->ca, x, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_HAS_EXPIRED);
	X509_free(x);
	x = NULL;

	/* not yet valid */
	s.not_before_offset_s = 86400;
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, f->ca_key, &x), 0);
	assert_int_equal(verify(f->ca, x, X509_PURPOSE_SSL_CLIENT), X509_V_ERR_CERT_NOT_YET_VALID);
	X509_free(x);
	x = NULL;

	/* issued by another CA with the same name */
	memset(&s, 0, sizeof(s));
	s.cn = "test CA";
	s.days = 10;
	assert_int_equal(pki_key_new(&ok), 0);
	assert_int_equal(pki_issue(ok, &s, PKI_CA, NULL, NULL, &other), 0);
	memset(&s, 0, sizeof(s));
	s.cn = "admin";
	s.uri = "spiffe://credbroker.dev/admin";
	s.days = 10;
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, other, ok, &x), 0);
	assert_int_equal(verify(other, x, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	assert_int_not_equal(verify(f->ca, x, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
	X509_free(x);
	x = NULL;

	/* self-signed leaf */
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, NULL, NULL, &x), 0);
	assert_int_equal(verify(f->ca, x, X509_PURPOSE_SSL_CLIENT),
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
	X509_free(x);
	x = NULL;

	/* bad arguments */
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, ok, &x), CB_ERR_INVAL);
	assert_null(x);
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, NULL, &x), CB_ERR_INVAL);
	assert_int_equal(pki_issue(NULL, &s, PKI_CLIENT, f->ca, f->ca_key, &x), CB_ERR_INVAL);
	s.days = 0;
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, f->ca_key, &x), CB_ERR_INVAL);
	s.days = 1;
	s.cn = NULL;
	assert_int_equal(pki_issue(k, &s, PKI_CLIENT, f->ca, f->ca_key, &x), CB_ERR_INVAL);
	s.cn = "x";
	{
		static const char *const bad_ip[] = { "300.1.1.1", NULL };

		s.ips = bad_ip;
		assert_int_equal(pki_issue(k, &s, PKI_SERVER, f->ca, f->ca_key, &x), CB_ERR_INVAL);
	}
	assert_null(x);
	X509_free(other);
	EVP_PKEY_free(k);
	EVP_PKEY_free(ok);
}

static void
test_files(void **state)
{
	struct fixture *f = *state;
	char dir[] = "/tmp/test_pki_XXXXXX";
	char crt[PATH_MAX], key[PATH_MAX], junk[PATH_MAX];
	struct stat st;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	uint8_t *before = NULL, *after = NULL;
	size_t blen = 0, alen = 0;
	mode_t old;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(crt, sizeof(crt), "%s/c.pem", dir);
	snprintf(key, sizeof(key), "%s/c.key", dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);

	/* modes do not depend on the umask */
	old = umask(0);
	assert_int_equal(pki_write_cert(crt, f->cli), 0);
	assert_int_equal(pki_write_key(key, f->cli_key), 0);
	umask(old);
	assert_int_equal(stat(crt, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* O_EXCL: never overwrite, the file is unchanged */
	assert_int_equal(util_read_file(key, 65536, &before, &blen), 0);
	assert_int_equal(pki_write_key(key, f->srv_key), CB_ERR_EXISTS);
	assert_int_equal(pki_write_cert(crt, f->srv), CB_ERR_EXISTS);
	assert_int_equal(util_read_file(key, 65536, &after, &alen), 0);
	assert_int_equal(blen, alen);
	assert_memory_equal(before, after, blen);
	util_wipe_free(before, blen + 1);
	util_wipe_free(after, alen + 1);

	/* round trip */
	assert_int_equal(pki_read_cert(crt, &x), 0);
	assert_int_equal(X509_cmp(x, f->cli), 0);
	assert_int_equal(pki_read_key(key, &k), 0);
	assert_int_equal(EVP_PKEY_eq(k, f->cli_key), 1);
	assert_int_equal(X509_check_private_key(x, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
	x = NULL;
	k = NULL;

	/* garbage, a certificate read as a key, a missing file */
	fp = fopen(junk, "w");
	assert_non_null(fp);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", fp);
	fclose(fp);
	assert_int_equal(pki_read_cert(junk, &x), CB_ERR_INVAL);
	assert_null(x);
	assert_int_equal(pki_read_key(crt, &k), CB_ERR_INVAL);
	assert_null(k);
	assert_int_equal(pki_read_cert("/nonexistent/x.pem", &x), CB_ERR_IO);
	assert_int_equal(pki_write_cert("/nonexistent/x.pem", f->cli), CB_ERR_IO);

	unlink(crt);
	unlink(key);
	unlink(junk);
	assert_int_equal(rmdir(dir), 0);
	ERR_clear_error();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_and_purpose),
		cmocka_unit_test(test_names_and_algorithms),
		cmocka_unit_test(test_serials),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
