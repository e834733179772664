/* fuzz-sources: src/conf.c */
/* fuzz-maxlen: 16384 */
/*
 * fuzz_conf.c: conf_parse_broker (credbrokerd.conf) on arbitrary bytes. Properties:
 * a refusal hands back nothing and explains itself in why (NUL-terminated); an accepted
 * configuration has absolute paths, a valid port and identities with known roles, and
 * every identity can be found by its ID.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct broker_conf *c = (struct broker_conf *)1;
	char why[512];
	size_t i, k;
	int rc;

	memset(why, 'x', sizeof(why));
	why[sizeof(why) - 1] = '\0';
	rc = conf_parse_broker((const char *)data, size, "/etc/credbroker", &c, why,
	    sizeof(why));
	if (rc != 0) {
		CHECK(c == NULL);
		CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		return 0;
	}
	CHECK(c != NULL);
	CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
	CHECK(c->database == NULL || c->database[0] == '/');
	CHECK(c->master_key == NULL || c->master_key[0] == '/');
	CHECK(c->tls_cert == NULL || c->tls_cert[0] == '/');
	CHECK(c->tls_key == NULL || c->tls_key[0] == '/');
	CHECK(c->client_ca == NULL || c->client_ca[0] == '/');
	for (i = 0; i < c->nidents; i++) {
		CHECK(c->idents[i].id != NULL);
		CHECK(c->idents[i].role == ROLE_HARNESS || c->idents[i].role == ROLE_PROXY ||
		    c->idents[i].role == ROLE_ADMIN);
		CHECK(conf_find_identity(c, c->idents[i].id) == &c->idents[i]);
		for (k = 0; k < c->idents[i].nsecrets; k++) {
			CHECK(c->idents[i].secrets[k] != NULL);
			if (c->idents[i].role == ROLE_HARNESS)
				CHECK(conf_may_grant(&c->idents[i], c->idents[i].secrets[k]) == 1);
		}
		(void)conf_role_name(c->idents[i].role);
	}
	conf_free_broker(c);
	return 0;
}
