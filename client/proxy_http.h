/*
 * proxy_http.h: credproxy's HTTP/1.1 message handling, free of I/O so it can be unit
 * tested and fuzzed: a strict request/response head parser, token discovery, the
 * request-head rewriter, and chunked-body decoding. Anything ambiguous is refused:
 * both Content-Length and Transfer-Encoding, several differing Content-Lengths, bare LF,
 * obs-fold, CR/LF/NUL in values, invalid chunk sizes, oversized heads.
 */
#ifndef CB_PROXY_HTTP_H
#define CB_PROXY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define PH_HEAD_MAX	32768	/* a larger request or response head is refused (431 / 502) */
#define PH_HEADERS_MAX	100
#define PH_TOKENS_MAX	16

struct ph_header {
	char *name;		/* points into the message's own copy of the head */
	char *value;		/* leading/trailing blanks trimmed */
};

enum ph_form { PH_FORM_ORIGIN, PH_FORM_ABSOLUTE, PH_FORM_AUTHORITY };

struct ph_request {
	char method[24];
	enum ph_form form;
	int minor;			/* HTTP/1.minor */
	char scheme[8];			/* "http" for absolute-form, "" otherwise */
	char host[256];			/* from the target (absolute/authority form), else "" */
	int port;			/* from the target, 0 when absent */
	char *path;			/* origin-form path + query ("/" for authority form) */
	struct ph_header headers[PH_HEADERS_MAX];
	size_t nheaders;
	int64_t content_length;		/* -1 when absent */
	int chunked;			/* Transfer-Encoding: chunked (the only TE accepted) */
	int upgrade;			/* Connection: upgrade + Upgrade: websocket */
	int keep_alive;			/* after this request (HTTP/1.1 default, Connection: close) */
	int expect_continue;
	char *buf;			/* owned copy of the head; freed (and wiped) by ph_request_clear */
	size_t buflen;
};

struct ph_response {
	int status;
	int minor;
	struct ph_header headers[PH_HEADERS_MAX];
	size_t nheaders;
	int64_t content_length;		/* -1 when absent */
	int chunked;
	int keep_alive;
	int no_body;			/* 1xx, 204, 304 or a response to HEAD (set by the caller via ph_parse_response's arg) */
	char *buf;
	size_t buflen;
};

/*
 * Parses a request head from data[0..len). Returns the number of bytes the head used
 * (> 0) when complete, 0 when more bytes are needed (and len < PH_HEAD_MAX), or -1 when
 * the head is refused: *status receives the HTTP status to answer (400, 413, 431, 501,
 * 505) and *reason a short static text for the sandbox. req is owned by the caller
 * (ph_request_clear).
 */
int ph_parse_request(const char *data, size_t len, struct ph_request *req, int *status,
    const char **reason);
/*
 * Notes on ph_parse_request: req is overwritten on entry (clear a previous request
 * first); on 0 and -1 it holds nothing to free. Hosts (req->host) are lower case, IPv6
 * without brackets; a name whose last label is numeric must be a plain dotted quad
 * ("0177.1", "2130706433", "0x7f.1" are refused). Content-Length and Transfer-Encoding
 * are kept by ph_rewrite_request (the body is forwarded with the same framing), and
 * Connection cannot name them for removal.
 */
void ph_request_clear(struct ph_request *req);

/* Same for a response head; head_request = 1 when it answers a HEAD. */
int ph_parse_response(const char *data, size_t len, int head_request, struct ph_response *res,
    const char **reason);
void ph_response_clear(struct ph_response *res);

/* Returns the value of the first header called name (case-insensitive), or NULL. */
const char *ph_header_get(const struct ph_header *h, size_t n, const char *name);

/*
 * Finds every "cbt_" token in the request head's header values, also inside
 * "Basic base64(user:password)" credentials. Distinct tokens are copied into tokens
 * (malloc'd strings, at most PH_TOKENS_MAX; more is an error); *n receives the count.
 * Free with ph_tokens_free (wipes).
 */
int ph_find_tokens(const struct ph_request *req, char **tokens, size_t *n);
void ph_tokens_free(char **tokens, size_t n);

/* A header to set on the way out (the real credential). */
struct ph_set {
	const char *name;
	const char *value;
};

/*
 * Writes the outgoing request head: request line in origin-form, every header of req
 * except hop-by-hop ones (Proxy-Authorization, Proxy-Connection, Connection-listed) and
 * except every header whose name (case-insensitive) equals one of set[].name, then
 * set[] once each. Values are checked for CR/LF/NUL. *out malloc'd (wipe after use:
 * it holds credentials).
 */
int ph_rewrite_request(const struct ph_request *req, const struct ph_set *set, size_t nset,
    const char *host_header, char **out, size_t *outlen);

/* Incremental chunked-encoding decoder (bounded chunk-size lines, strict hex). */
struct ph_chunked {
	int state;
	uint64_t remaining;
	size_t linelen;
	int done;
};
/*
 * Feeds in[0..len): decoded body bytes are passed to emit; returns bytes consumed (all
 * of len unless the message ended), or -1 on a malformed encoding. st->done is set
 * after the last chunk and trailers.
 */
/* A zeroed struct ph_chunked is the start state; after done, feeds consume nothing. */
int ph_chunked_feed(struct ph_chunked *st, const uint8_t *in, size_t len,
    void (*emit)(void *arg, const uint8_t *p, size_t n), void *arg);

#endif
