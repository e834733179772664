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
 * one trailing dot removed, LDH labels of 1..63 bytes (no leading or trailing '-', no
 * '_'), at most 253 bytes. A name whose last label is all digits must be a dotted-quad
 * IPv4 address ("127.1", "0x7f.0.0.1", "2130706433", "01.2.3.4" are refused). IPv6
 * literals come without brackets ("[::1]" and zone IDs are refused) and are rewritten
 * in their canonical form ("0:0:0:0:0:0:0:1" -> "::1"). Returns 0 or CB_ERR_INVAL
 * (out then holds ""); never truncates.
 */
int dest_host_normalise(const char *in, char *out, size_t outlen);

/* Returns 0 when method is an HTTP token of upper-case letters (GET, POST, ...), else CB_ERR_INVAL. */
int dest_method_valid(const char *method);

/* Returns 0 when port is 1..65535, else CB_ERR_INVAL. */
int dest_port_valid(long long port);

/*
 * Normalises a request path (origin-form) into out: must start with "/"; %XX of
 * unreserved characters is decoded, other escapes are kept with upper-case hex. Refused
 * (CB_ERR_INVAL, out ""): no room in out; bytes <= 0x20, >= 0x7f, '\\' or '#' anywhere;
 * invalid escapes; %00-%1F and %7F anywhere; in the path part, %2F %5C %2E (any case)
 * and their double encodings (%252F ...), empty segments ("//"), and segments of dots
 * only or of dots followed by ';' or an escape ("..", ".", "...", "..;x", "..%3B").
 * The query ("?...") is kept verbatim (escapes upper-cased), encoded separators
 * allowed, and is ignored by matching.
 */
int dest_path_normalise(const char *in, char *out, size_t outlen);

/*
 * Validates a binding's path prefix: the same rules as a path, no query, and already
 * in normal form (dest_path_normalise leaves it unchanged: "/repos/%61cme/" and
 * "/a%3ab/" are refused; write "/repos/acme/" and "/a%3Ab/"). Returns 0 or CB_ERR_INVAL.
 */
int dest_prefix_valid(const char *prefix);

/*
 * 1 when the normalised path is admitted by prefix on a segment boundary: equal, or
 * prefix ends with "/" and path starts with it, or path starts with prefix followed by
 * "/" or "?". An empty or NULL prefix admits everything.
 */
int dest_path_matches(const char *prefix, const char *path);

#endif
