/*
 * pki.h: the development PKI, made with the OpenSSL library (never by shelling out).
 * ECDSA P-256 keys, SHA-256 signatures, random 128-bit serial numbers.
 */
#ifndef CB_PKI_H
#define CB_PKI_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

enum pki_usage {
	PKI_CA,		/* basicConstraints CA:TRUE, keyCertSign, cRLSign */
	PKI_SERVER,	/* serverAuth, DNS/IP SANs */
	PKI_CLIENT,	/* clientAuth, SAN URI (the role identity) */
};

struct pki_subject {
	const char *cn;
	const char *uri;		/* SAN URI, clients */
	const char *const *dns;		/* SAN DNS names, NULL-terminated, servers */
	const char *const *ips;		/* SAN IP addresses, NULL-terminated, servers */
	long days;			/* validity from now; negative start offsets for tests below */
	long not_before_offset_s;	/* 0 normally; tests make expired certs with this */
};

/* New P-256 key; *out owned by the caller (EVP_PKEY_free). */
int pki_key_new(EVP_PKEY **out);
/*
 * Issues a certificate for key under (issuer, issuer_key); issuer NULL makes it
 * self-signed (CA). *out owned by the caller (X509_free).
 */
int pki_issue(EVP_PKEY *key, const struct pki_subject *subj, enum pki_usage usage,
    X509 *issuer, EVP_PKEY *issuer_key, X509 **out);
/* Writes PEM: certificate with mode 0644, key with mode 0600; both O_EXCL. */
int pki_write_cert(const char *path, X509 *crt);
int pki_write_key(const char *path, EVP_PKEY *key);
/* Reads PEM files; *out owned by the caller. */
int pki_read_cert(const char *path, X509 **out);
int pki_read_key(const char *path, EVP_PKEY **out);

#endif
