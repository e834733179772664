/*
 * server.h: the HTTPS server (libmicrohttpd over GnuTLS). TLS 1.2+ only; mutual TLS
 * enforced by us once per connection (certificate present, chains to the client CA,
 * valid now, clientAuth key purpose), identity from SAN URI or CN mapped to a role via
 * the configuration. Bodies are bounded, CL+TE refused; calls are handed to
 * api_dispatch() and answered asynchronously (suspend/resume) so that the thread pool
 * never waits on the commit thread.
 */
#ifndef CB_SERVER_H
#define CB_SERVER_H

struct broker;
struct server;

/* Starts listening as configured in b->conf. *out owned by the caller (server_stop). */
int server_start(struct broker *b, struct server **out, char *why, size_t whylen);
/*
 * server_start in two steps, so that a daemon started as root reads its TLS key and binds
 * its socket with privileges, drops them, and only then serves: server_prepare reads the
 * TLS files and binds (nothing is accepted yet); server_run starts serving and wipes the
 * key copy. A prepared server that is never run is freed by server_stop.
 */
int server_prepare(struct broker *b, struct server **out, char *why, size_t whylen);
int server_run(struct server *s, char *why, size_t whylen);
/*
 * Stops dispatching (new requests get 503), waits (bounded, 30 s) for in-flight calls,
 * stops the daemon (closing the listen socket), frees. NULL is fine.
 * Returns the number of calls still in flight after the wait: when not 0 the server is
 * left running (not freed) because those calls still use it and the broker.
 */
int server_stop(struct server *s);

#endif
