/*
 * proxy_cert.c: interception certificates. One P-256 leaf key per process; one leaf
 * certificate per host, minted under the sandbox CA with a short validity, kept in a
 * small LRU of ready server SSL_CTXs.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "proxy.h"

#define CERTS_CACHE	256
#define LEAF_VALIDITY_S	(24 * 3600)
#define LEAF_BACKDATE_S	300
#define LEAF_RENEW_S	3600	/* re-mint when less than this remains */

struct cert_entry {
	char host[256];
	SSL_CTX *ctx;
	time_t not_after;
	uint64_t used;
};

struct proxy_certs {
	X509 *ca;
	EVP_PKEY *ca_key;
	EVP_PKEY *leaf_key;
	struct cert_entry cache[CERTS_CACHE];
	uint64_t clock;
};

static int
read_pem_cert(const char *path, X509 **out)
{
	BIO *b;

	*out = NULL;
	if ((b = BIO_new_file(path, "r")) == NULL)
		return CB_ERR_IO;
	*out = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	return *out != NULL ? 0 : CB_ERR_CRYPTO;
}

static int
read_pem_key(const char *path, EVP_PKEY **out)
{
	BIO *b;

	*out = NULL;
	if ((b = BIO_new_file(path, "r")) == NULL)
		return CB_ERR_IO;
	*out = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	return *out != NULL ? 0 : CB_ERR_CRYPTO;
}

static int
new_p256(EVP_PKEY **out)
{
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return *out != NULL ? 0 : CB_ERR_CRYPTO;
}

int
proxy_certs_new(const char *ca_cert, const char *ca_key, struct proxy_certs **out)
{
	struct proxy_certs *pc;
	int rc;

	*out = NULL;
	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return CB_ERR_NOMEM;
	if ((rc = read_pem_cert(ca_cert, &pc->ca)) != 0) {
		log_warnx("cannot read sandbox CA certificate %s", ca_cert);
		goto out;
	}
	if ((rc = read_pem_key(ca_key, &pc->ca_key)) != 0) {
		log_warnx("cannot read sandbox CA key %s", ca_key);
		goto out;
	}
	if (X509_check_private_key(pc->ca, pc->ca_key) != 1) {
		log_warnx("sandbox CA key does not match its certificate");
		rc = CB_ERR_CRYPTO;
		goto out;
	}
	if ((rc = new_p256(&pc->leaf_key)) != 0)
		goto out;
	*out = pc;
	pc = NULL;	/* transferred */
 out:
	proxy_certs_free(pc);
	return rc;
}

void
proxy_certs_free(struct proxy_certs *pc)
{
	size_t i;

	if (pc == NULL)
		return;
	for (i = 0; i < CERTS_CACHE; i++)
		SSL_CTX_free(pc->cache[i].ctx);
	X509_free(pc->ca);
	EVP_PKEY_free(pc->ca_key);
	EVP_PKEY_free(pc->leaf_key);
	free(pc);
}

static int
add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&v3, issuer, crt, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return CB_ERR_CRYPTO;
	ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : CB_ERR_CRYPTO;
}

static int
mint_leaf(struct proxy_certs *pc, const char *host, X509 **out)
{
	X509 *crt = NULL;
	X509_NAME *name;
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = NULL;
	unsigned char rnd[16];
	char san[300];
	int rc = CB_ERR_CRYPTO;

	*out = NULL;
	if (snprintf(san, sizeof(san), "%s:%s", proxy_is_ip_literal(host) ? "IP" : "DNS",
	    host) >= (int)sizeof(san))
		return CB_ERR_INVAL;
	if ((crt = X509_new()) == NULL)
		goto out;
	if (X509_set_version(crt, 2) != 1)
		goto out;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	rnd[0] &= 0x7f;
	if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL ||
	    (serial = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    X509_set_serialNumber(crt, serial) != 1)
		goto out;
	if (X509_gmtime_adj(X509_getm_notBefore(crt), -LEAF_BACKDATE_S) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(crt), LEAF_VALIDITY_S) == NULL)
		goto out;
	if ((name = X509_get_subject_name(crt)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)host, -1, -1, 0) != 1)
		goto out;
	if (X509_set_issuer_name(crt, X509_get_subject_name(pc->ca)) != 1 ||
	    X509_set_pubkey(crt, pc->leaf_key) != 1)
		goto out;
	if (add_ext(crt, pc->ca, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
	    add_ext(crt, pc->ca, NID_key_usage, "critical,digitalSignature") != 0 ||
	    add_ext(crt, pc->ca, NID_ext_key_usage, "serverAuth") != 0 ||
	    add_ext(crt, pc->ca, NID_subject_key_identifier, "hash") != 0 ||
	    add_ext(crt, pc->ca, NID_authority_key_identifier, "keyid") != 0 ||
	    add_ext(crt, pc->ca, NID_subject_alt_name, san) != 0)
		goto out;
	if (X509_sign(crt, pc->ca_key, EVP_sha256()) <= 0)
		goto out;
	*out = crt;
	crt = NULL;	/* transferred */
	rc = 0;
 out:
	if (rc != 0)
		log_warnx("cannot mint a leaf certificate: %s",
		    ERR_reason_error_string(ERR_peek_last_error()));
	ERR_clear_error();
	X509_free(crt);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	return rc;
}

static int
make_ctx(struct proxy_certs *pc, X509 *leaf, SSL_CTX **out)
{
	SSL_CTX *ctx;

	*out = NULL;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return CB_ERR_CRYPTO;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/*
	 * Sandbox requests carry tokens: OpenSSL wipes each record's plaintext once it has
	 * handed it over (and a read buffer it releases), instead of leaving it in the heap.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_TICKET | SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* idle intercepted connections give their record buffers back */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate(ctx, leaf) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pc->leaf_key) != 1 ||
	    SSL_CTX_add1_chain_cert(ctx, pc->ca) != 1) {
		SSL_CTX_free(ctx);
		ERR_clear_error();
		return CB_ERR_CRYPTO;
	}
	*out = ctx;
	return 0;
}

int
proxy_certs_ctx(struct proxy_certs *pc, const char *host, SSL_CTX **out)
{
	struct cert_entry *e, *victim = NULL;
	X509 *leaf = NULL;
	SSL_CTX *ctx = NULL;
	time_t now = time(NULL);
	size_t i;
	int rc;

	*out = NULL;
	if (strlen(host) >= sizeof(victim->host))
		return CB_ERR_INVAL;
	for (i = 0; i < CERTS_CACHE; i++) {
		e = &pc->cache[i];
		if (e->ctx != NULL && strcasecmp(e->host, host) == 0 &&
		    e->not_after - now > LEAF_RENEW_S) {
			e->used = ++pc->clock;
			SSL_CTX_up_ref(e->ctx);
			*out = e->ctx;
			return 0;
		}
		if (victim == NULL || e->ctx == NULL ||
		    (victim->ctx != NULL && e->used < victim->used))
			victim = e;
		if (e->ctx != NULL && strcasecmp(e->host, host) == 0)
			victim = e;	/* expiring: replace in place */
	}
	if ((rc = mint_leaf(pc, host, &leaf)) != 0)
		goto out;
	if ((rc = make_ctx(pc, leaf, &ctx)) != 0)
		goto out;
	/* an evicted context lives on in the SSL objects that still use it */
	SSL_CTX_free(victim->ctx);
	victim->ctx = ctx;
	snprintf(victim->host, sizeof(victim->host), "%s", host);
	for (i = 0; victim->host[i] != '\0'; i++)
		victim->host[i] = (char)tolower((unsigned char)victim->host[i]);
	victim->not_after = now + LEAF_VALIDITY_S;
	victim->used = ++pc->clock;
	SSL_CTX_up_ref(ctx);
	*out = ctx;
 out:
	X509_free(leaf);
	return rc;
}
