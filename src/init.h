/*
 * init.h: "credbroker init DIR": a complete development deployment (layout in
 * docs/deployment.md): master.key, credbroker.db, credbrokerd.conf, credproxy.conf,
 * pki/{ca,server,harness,proxy,admin,sandbox-ca}.{pem,key}. Refuses an existing one.
 */
#ifndef CB_INIT_H
#define CB_INIT_H

#include <stddef.h>

#define INIT_TRUST_DOMAIN	"credbroker.dev"
#define INIT_ID_HARNESS		"spiffe://credbroker.dev/harness"
#define INIT_ID_PROXY		"spiffe://credbroker.dev/proxy"
#define INIT_ID_ADMIN		"spiffe://credbroker.dev/admin"

/* Creates the deployment in dir (created if missing; must be empty). why on error. */
int init_deployment(const char *dir, char *why, size_t whylen);

#endif
