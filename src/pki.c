/*
 * pki.c: the development PKI, with the OpenSSL 3 library only. P-256 keys,
 * SHA-256 signatures, random positive 128-bit serials, X.509 v3 extensions:
 * basicConstraints, keyUsage, extendedKeyUsage, subjectAltName,
 * subjectKeyIdentifier, authorityKeyIdentifier. Files are created with O_EXCL.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "pki.h"
#include "util.h"

#define PKI_FILE_MAX	(1024 * 1024)
#define PKI_DAYS_MAX	36500L
#define PKI_NAMES_MAX	64	/* DNS names, and IP addresses, per certificate */

/* Logs the first queued OpenSSL error (never key material) and clears the queue. */
static int
pki_ossl_fail(const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		util_strlcpy(buf, "no detail", sizeof(buf));
	log_warnx("%s: %s", what, buf);
	ERR_clear_error();
	return CB_ERR_CRYPTO;
}

int
pki_key_new(EVP_PKEY **out)
{
	*out = NULL;
	if ((*out = EVP_EC_gen("P-256")) == NULL)
		return pki_ossl_fail("EVP_EC_gen");
	return 0;
}

/* A random positive serial of 128 bits (the top bit cleared keeps DER at 16 bytes). */
static int
pki_set_serial(X509 *x)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	int rc = CB_ERR_CRYPTO;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	raw[0] &= 0x7f;
	raw[0] |= 0x40;		/* never zero, never a short encoding */
	if ((bn = BN_bin2bn(raw, sizeof(raw), NULL)) == NULL)
		goto out;
	if ((ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL)
		goto out;
	if (X509_set_serialNumber(x, ai) != 1)
		goto out;
	rc = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return rc;
}

static int
pki_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value)) == NULL)
		return pki_ossl_fail(value);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : pki_ossl_fail("X509_add_ext");
}

static int
pki_push_name(GENERAL_NAMES *gens, int type, const char *value)
{
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *s = NULL;
	ASN1_OCTET_STRING *ip = NULL;

	if (value == NULL || value[0] == '\0')
		return CB_ERR_INVAL;
	if ((gn = GENERAL_NAME_new()) == NULL)
		return CB_ERR_NOMEM;
	if (type == GEN_IPADD) {
		if ((ip = a2i_IPADDRESS(value)) == NULL) {
			GENERAL_NAME_free(gn);
			ERR_clear_error();
			log_warnx("'%s' is not an IP address", value);
			return CB_ERR_INVAL;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);	/* transferred */
	} else {
		if ((s = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(s, value, (int)strlen(value)) != 1) {
			ASN1_IA5STRING_free(s);
			GENERAL_NAME_free(gn);
			return CB_ERR_NOMEM;
		}
		GENERAL_NAME_set0_value(gn, type, s);	/* transferred */
	}
	if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
		GENERAL_NAME_free(gn);
		return CB_ERR_NOMEM;
	}
	return 0;
}

/* subjectAltName from the URI, DNS names and IP addresses given (none: no extension). */
static int
pki_add_san(X509 *x, const struct pki_subject *subj)
{
	GENERAL_NAMES *gens;
	size_t i;
	int rc = 0;

	if ((gens = GENERAL_NAMES_new()) == NULL)
		return CB_ERR_NOMEM;
	if (subj->uri != NULL)
		rc = pki_push_name(gens, GEN_URI, subj->uri);
	for (i = 0; rc == 0 && subj->dns != NULL && subj->dns[i] != NULL; i++)
		rc = i < PKI_NAMES_MAX ? pki_push_name(gens, GEN_DNS, subj->dns[i]) : CB_ERR_LIMIT;
	for (i = 0; rc == 0 && subj->ips != NULL && subj->ips[i] != NULL; i++)
		rc = i < PKI_NAMES_MAX ? pki_push_name(gens, GEN_IPADD, subj->ips[i]) : CB_ERR_LIMIT;
	if (rc == 0 && sk_GENERAL_NAME_num(gens) > 0 &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1)
		rc = pki_ossl_fail("subjectAltName");
	GENERAL_NAMES_free(gens);
	return rc;
}

int
pki_issue(EVP_PKEY *key, const struct pki_subject *subj, enum pki_usage usage,
    X509 *issuer, EVP_PKEY *issuer_key, X509 **out)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509V3_CTX ctx;
	EVP_PKEY *signer;
	int rc = CB_ERR_CRYPTO;

	*out = NULL;
	if (key == NULL || subj == NULL || subj->cn == NULL || subj->cn[0] == '\0' ||
	    subj->days <= 0 || subj->days > PKI_DAYS_MAX || (issuer != NULL && issuer_key == NULL))
		return CB_ERR_INVAL;
	if (usage != PKI_CA && usage != PKI_SERVER && usage != PKI_CLIENT)
		return CB_ERR_INVAL;
	if (issuer != NULL && X509_check_private_key(issuer, issuer_key) != 1) {
		ERR_clear_error();
		log_warnx("the issuer key does not match the issuer certificate");
		return CB_ERR_INVAL;
	}
	signer = issuer != NULL ? issuer_key : (issuer_key != NULL ? issuer_key : key);

	if ((x = X509_new()) == NULL)
		return CB_ERR_NOMEM;
	if (X509_set_version(x, X509_VERSION_3) != 1 || (rc = pki_set_serial(x)) != 0)
		goto fail;
	rc = CB_ERR_CRYPTO;
	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, subj->not_before_offset_s, NULL) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)subj->days,
	    subj->not_before_offset_s, NULL) == NULL)
		goto fail;
	if ((name = X509_NAME_new()) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)subj->cn, -1, -1, 0) != 1 ||
	    X509_set_subject_name(x, name) != 1)
		goto fail;
	if (X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) != 1)
		goto fail;
	if (X509_set_pubkey(x, key) != 1)
		goto fail;

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	switch (usage) {
	case PKI_CA:
		/* pathlen:0: this CA signs leaves only, never another CA. */
		if ((rc = pki_add_ext(x, &ctx, NID_basic_constraints,
		    "critical,CA:TRUE,pathlen:0")) != 0 ||
		    (rc = pki_add_ext(x, &ctx, NID_key_usage,
		    "critical,keyCertSign,cRLSign")) != 0)
			goto fail;
		break;
	case PKI_SERVER:
	case PKI_CLIENT:
		if ((rc = pki_add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
		    (rc = pki_add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature")) != 0 ||
		    (rc = pki_add_ext(x, &ctx, NID_ext_key_usage,
		    usage == PKI_SERVER ? "serverAuth" : "clientAuth")) != 0)
			goto fail;
		break;
	}
	if ((rc = pki_add_san(x, subj)) != 0)
		goto fail;
	if ((rc = pki_add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rc = pki_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")) != 0)
		goto fail;
	if (X509_sign(x, signer, EVP_sha256()) <= 0) {
		rc = pki_ossl_fail("X509_sign");
		goto fail;
	}
	*out = x;	/* transferred */
	x = NULL;
	rc = 0;
fail:
	if (rc == CB_ERR_CRYPTO)
		ERR_clear_error();
	X509_NAME_free(name);
	X509_free(x);
	return rc;
}

/* Writes the bytes held by a memory BIO to a new file (O_EXCL) with mode. */
static int
pki_write_bio(const char *path, BIO *b, mode_t mode)
{
	char *data = NULL;
	long len;
	int rc;

	len = BIO_get_mem_data(b, &data);
	if (len <= 0 || data == NULL)
		return CB_ERR_CRYPTO;
	rc = util_create_file(path, data, (size_t)len, mode);
	if (rc == CB_ERR_EXISTS)
		log_warnx("%s: already exists, not overwritten", path);
	else if (rc != 0)
		log_warn("%s", path);
	return rc;
}

int
pki_write_cert(const char *path, X509 *crt)
{
	BIO *b;
	int rc;

	if (crt == NULL)
		return CB_ERR_INVAL;
	if ((b = BIO_new(BIO_s_mem())) == NULL)
		return CB_ERR_NOMEM;
	if (PEM_write_bio_X509(b, crt) != 1)
		rc = pki_ossl_fail("PEM_write_bio_X509");
	else
		rc = pki_write_bio(path, b, 0644);
	BIO_free(b);
	return rc;
}

int
pki_write_key(const char *path, EVP_PKEY *key)
{
	BIO *b;
	int rc;

	if (key == NULL)
		return CB_ERR_INVAL;
	/* A secure-memory BIO: its buffer is cleansed when freed. */
	if ((b = BIO_new(BIO_s_secmem())) == NULL)
		return CB_ERR_NOMEM;
	if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) != 1)
		rc = pki_ossl_fail("PEM_write_bio_PrivateKey");
	else
		rc = pki_write_bio(path, b, 0600);
	BIO_free(b);
	return rc;
}

/* Reads a PEM file into a read-only memory BIO over *buf (caller wipes and frees *buf). */
static int
pki_read_bio(const char *path, uint8_t **buf, size_t *len, BIO **b)
{
	int rc;

	*b = NULL;
	if ((rc = util_read_file(path, PKI_FILE_MAX, buf, len)) != 0) {
		log_warn("%s", path);
		return rc;
	}
	if (*len > INT_MAX || (*b = BIO_new_mem_buf(*buf, (int)*len)) == NULL) {
		util_wipe_free(*buf, *len + 1);
		*buf = NULL;
		return CB_ERR_NOMEM;
	}
	return 0;
}

int
pki_read_cert(const char *path, X509 **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc;

	*out = NULL;
	if ((rc = pki_read_bio(path, &buf, &len, &b)) != 0)
		return rc;
	if ((*out = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		pki_ossl_fail(path);
		rc = CB_ERR_INVAL;
	}
	BIO_free(b);
	free(buf);
	return rc;
}

int
pki_read_key(const char *path, EVP_PKEY **out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int rc;

	*out = NULL;
	if ((rc = pki_read_bio(path, &buf, &len, &b)) != 0)
		return rc;
	/* An empty passphrase callback: an encrypted key fails instead of prompting. */
	if ((*out = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"")) == NULL) {
		pki_ossl_fail(path);
		rc = CB_ERR_INVAL;
	}
	BIO_free(b);
	util_wipe_free(buf, len + 1);
	return rc;
}
