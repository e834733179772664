/*
 * dest.h: destinations (host, port, method, path) and how a request is matched against
 * a binding. Hosts are compared normalised (lower case, one trailing dot removed,
 * IDNA not interpreted: non-ASCII is refused); the default port is 443. Paths are
 * normalised before prefix matching: percent-decoding of unreserved characters only,
 * "%2F", "%5C", "%2E" forms of separators and dots, dot segments, backslashes, NUL or
 * control characters are refused rather than guessed at; a prefix matches only on a
 * segment boundary ("/repos/acme/" admits "/repos/acme/x", not "/repos/acme-evil/").
 */
#ifndef CB_DEST_H
#define CB_DEST_H

#include <stddef.h>

#define DEST_HOST_MAX	253
#define DEST_PATH_MAX	8192
#define DEST_METHOD_MAX	16

/*
 * Normalises a host name or IP literal into out (DEST_HOST_MAX + 1 bytes): lower case,
 * trailing dot removed; IPv6 literals keep their brackets off ("::1"). Returns 0 or
 * CB_ERR_INVAL (empty, too long, bad characters, empty label).
 */
int dest_host_normalise(const char *in, char *out, size_t outlen);

/* Returns 0 when method is an HTTP token of upper-case letters (GET, POST, ...), else CB_ERR_INVAL. */
int dest_method_valid(const char *method);

/* Returns 0 when port is 1..65535, else CB_ERR_INVAL. */
int dest_port_valid(long long port);

/*
 * Normalises a request path (origin-form, query string allowed and ignored for
 * matching) into out: must start with "/", no dot segments, no encoded separators or
 * dots, no control characters. Returns 0 or CB_ERR_INVAL (refuse the request).
 */
int dest_path_normalise(const char *in, char *out, size_t outlen);

/*
 * Validates a binding's path prefix (same rules as a path, query not allowed).
 * Returns 0 or CB_ERR_INVAL.
 */
int dest_prefix_valid(const char *prefix);

/*
 * 1 when the normalised path is admitted by prefix on a segment boundary: equal, or
 * prefix ends with "/" and path starts with it, or path starts with prefix followed by
 * "/" or "?". An empty or NULL prefix admits everything.
 */
int dest_path_matches(const char *prefix, const char *path);

#endif
