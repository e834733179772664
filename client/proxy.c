/*
 * proxy.c: credproxy, the egress proxy for sandboxes. One libevent loop thread owns
 * every connection; broker resolves and upstream name lookups run in the worker pool
 * (proxy_resolve.c) and come back through a per-connection event.
 *
 * Life of a request on one sandbox connection (struct cconn):
 *   CS_HEAD     read and parse a request head (CONNECT switches the connection to TLS
 *               with a leaf certificate for the target, then back to CS_HEAD)
 *   CS_RESOLVE  a job resolves the tokens (or a token-less resolve) and the upstream name
 *   CS_FORWARD  the rewritten head and the body go upstream; the response head and body
 *               come back scrubbed of every real credential value
 *   CS_TUNNEL   after a 101 to a WebSocket upgrade: bytes both ways, the upstream's
 *               scrubbed of every credential the upgrade request carried
 *   CS_CLOSING  an answer is being flushed, then the connection closes
 *   CS_LINGER   the answer is out and our side shut down: what the sandbox still sends
 *               is read and dropped for a moment, so that closing does not reset the
 *               connection before the sandbox has read the answer
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "log.h"
#include "priv.h"
#include "proxy.h"
#include "proxy_http.h"
#include "proxy_scrub.h"
#include "util.h"

#define CONNS_MAX		PROXY_CONNS_MAX
#define BUF_HIGH		(256 * 1024)	/* back-pressure: stop reading the other side */
#define READ_HIGH		(64 * 1024)
#define UPSTREAM_TIMEOUT_S	60
#define DRAIN_MAX_S		30
#define LINGER_S		2		/* read and drop after an answer, then close */
#define LINGER_MAX		(1024 * 1024)
#define PUMP_CHUNK		16384
#define UADDR_TTL_S		30	/* checked upstream addresses reused this long */
#define TUNNEL_FLUSH_MS		200	/* a tunnel's held-back bytes go out after this */
#define CRED_HASH_LEN		32	/* SHA-256 */

enum cstate { CS_HEAD, CS_RESOLVE, CS_FORWARD, CS_TUNNEL, CS_CLOSING, CS_LINGER };
enum rstate { RS_HEAD, RS_BODY, RS_DONE };
enum rbody { RB_NONE, RB_CL, RB_CHUNKED, RB_CLOSE };

struct proxy;

struct cconn {
	LIST_ENTRY(cconn) link;
	struct proxy *px;
	struct bufferevent *bev;	/* the sandbox side (plain, or the TLS filter) */
	struct event *jobev;		/* activated by a worker when job is done */
	struct event *closeev;		/* frees the cconn from the loop, never mid-callback */
	struct event *headev;		/* head_timeout: a head not finished in time */
	struct proxy_job *job;		/* in flight; the cconn outlives it */
	int closed;			/* sockets gone; memory freed by closeev or job_cb */
	evutil_socket_t fd;		/* the sandbox socket */
	int fd_owned_by_bev;		/* after CONNECT the TLS bufferevent closes it */
	size_t lingered;		/* bytes dropped in CS_LINGER */
	char peer[INET6_ADDRSTRLEN + 8];
	char sandbox[PROXY_SANDBOX_MAX];
	int have_sandbox;
	int tls;			/* intercepted after CONNECT */
	char chost[256];		/* the CONNECT target */
	int cport;
	enum cstate state;

	struct ph_request req;
	int have_req;
	char host[256];			/* this request's destination */
	int port;
	char *host_header;		/* Host value sent upstream */
	int64_t req_left;		/* Content-Length body bytes still to forward */
	struct ph_chunked req_ch;
	int req_done;

	struct bufferevent *ubev;	/* upstream */
	char uhost[256];
	int uport;
	int utls;
	int ureuse;			/* ubev was idle and is reused for this request */
	int uconnected;
	struct sockaddr_storage uaddrs[PROXY_ADDRS_MAX];	/* checked by the worker */
	socklen_t uaddrlens[PROXY_ADDRS_MAX];
	size_t unaddrs, unext;		/* addresses, and the next one to try */
	char uahost[256];		/* the host:port uaddrs were looked up and checked for */
	int uaport;
	time_t uatime;			/* when (CLOCK_MONOTONIC seconds) */
	/*
	 * Salted hashes of the credentials this request carries (qcred), and of those sent
	 * on ubev (ucred, cleared with it): see cred_reusable.
	 */
	uint8_t qcred[SCRUB_PATTERNS_MAX][CRED_HASH_LEN];
	size_t nqcred;
	uint8_t ucred[SCRUB_PATTERNS_MAX][CRED_HASH_LEN];
	size_t nucred;
	char *retry_head;		/* head sent on a reused upstream (wiped); NULL: none */
	size_t retry_len;
	int got_response_bytes;

	struct ph_response res;
	int have_res;
	enum rstate rstate;
	enum rbody rbody;
	int64_t res_left;
	struct ph_chunked res_ch;
	struct scrub *scrub;
	struct scrub *tscrub;		/* after an upgrade: same-length masks (tunnel_up) */
	struct event *tflush;		/* sends what tscrub holds back once nothing follows */
	int out_chunked;		/* the body goes to the sandbox chunked */
	int close_after;
	int upstream_reusable;
};

LIST_HEAD(cconns, cconn);

struct proxy {
	struct event_base *base;
	struct proxy_conf *conf;
	char *conf_path;		/* -c */
	struct proxy_conf *flags;	/* command-line overrides, re-applied on reload */
	struct proxy_certs *certs;
	SSL_CTX *up_ctx;
	struct proxy_pool *pool;
	struct evconnlistener *lis;
	struct event *ev_hup, *ev_term, *ev_int, *ev_drain;
	struct event *ev_resume;	/* re-enables accepting after running out of descriptors */
	struct cconns conns;
	size_t nconns;
	size_t conns_max;		/* CONNS_MAX, or fewer when RLIMIT_NOFILE is lower */
	int draining;
	/* Refusals a sandbox can cause at will are logged once a second, not once each. */
	struct util_ratelimit rl_full, rl_sandbox, rl_accept;
};

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static void up_read_cb(struct bufferevent *bev, void *arg);
static void up_write_cb(struct bufferevent *bev, void *arg);
static void up_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_close(struct cconn *c);
static void flow(struct cconn *c);
static void handle_head(struct cconn *c);
static void start_linger(struct cconn *c);
static int up_connect(struct cconn *c);

static const char *
status_text(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Status";
	}
}

static time_t
mono_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return ts.tv_sec;
}

/* ---- connection teardown ---- */

static void
up_free(struct cconn *c)
{
	if (c->ubev != NULL)
		bufferevent_free(c->ubev);
	c->ubev = NULL;
	c->uhost[0] = '\0';
	c->uport = 0;
	c->nucred = 0;
}

static void
req_reset(struct cconn *c)
{
	if (c->have_req)
		ph_request_clear(&c->req);
	c->have_req = 0;
	if (c->have_res)
		ph_response_clear(&c->res);
	c->have_res = 0;
	scrub_free(c->scrub);
	c->scrub = NULL;
	if (c->state != CS_TUNNEL || c->closed) {
		scrub_free(c->tscrub);
		c->tscrub = NULL;
	}
	free(c->host_header);
	c->host_header = NULL;
	if (c->retry_head != NULL)
		util_wipe_free(c->retry_head, c->retry_len);
	c->retry_head = NULL;
	c->retry_len = 0;
	c->got_response_bytes = 0;
	c->req_left = 0;
	c->req_done = 0;
	memset(&c->req_ch, 0, sizeof(c->req_ch));
	memset(&c->res_ch, 0, sizeof(c->res_ch));
	c->rstate = RS_HEAD;
	c->rbody = RB_NONE;
	c->res_left = 0;
	c->out_chunked = 0;
	c->upstream_reusable = 0;
	c->ureuse = 0;
}

/* Frees the memory of a closed connection (from the loop, or when its job returns). */
static void
conn_destroy(struct cconn *c)
{
	struct proxy *px = c->px;

	LIST_REMOVE(c, link);
	px->nconns--;
	event_free(c->jobev);
	event_free(c->closeev);
	free(c);
	if (px->draining && px->nconns == 0)
		event_base_loopexit(px->base, NULL);
}

static void
close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *c = arg;

	/* a worker still holds the job: job_cb destroys the connection */
	if (c->job == NULL)
		conn_destroy(c);
}

/*
 * Closes both sides now; the memory goes later, so that callers up the stack may
 * still look at c->closed.
 */
static void
conn_close(struct cconn *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->tflush != NULL)
		event_free(c->tflush);
	c->tflush = NULL;
	if (c->headev != NULL)
		event_free(c->headev);
	c->headev = NULL;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (!c->fd_owned_by_bev)
		evutil_closesocket(c->fd);
	up_free(c);
	req_reset(c);
	event_active(c->closeev, EV_READ, 1);
}

/* Answers a short error and closes once it is flushed. */
static void
send_error(struct cconn *c, int status, const char *reason)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = strlen(reason) + 1;

	log_info("%s sandbox %s: %d %s", c->peer, c->have_sandbox ? c->sandbox : "?",
	    status, reason);
	up_free(c);
	req_reset(c);	/* the request may hold tokens: not kept while the answer flushes */
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n", status,
	    status_text(status), len, reason);
	c->state = CS_CLOSING;
	flow(c);
}

/* ---- the head deadline ---- */

/*
 * A request head must be complete head_timeout seconds after its first byte (the first
 * head of a connection, and the first after a CONNECT with its TLS handshake: from the
 * connection or the CONNECT answer). The idle timeout alone let a client that sends a
 * byte every few seconds hold a connection for ever.
 */
static void
head_timer(struct cconn *c)
{
	struct timeval tv = { c->px->conf->head_timeout_s, 0 };

	if (c->headev != NULL && !evtimer_pending(c->headev, NULL))
		evtimer_add(c->headev, &tv);
}

static void
head_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *c = arg;
	struct timeval tv = { LINGER_S, 0 };

	if (c->closed || c->state != CS_HEAD)
		return;
	send_error(c, 408, "credproxy: request head not received in time");
	/* the answer may not leave (a TLS handshake never finished): do not wait long */
	if (!c->closed && c->bev != NULL)
		bufferevent_set_timeouts(c->bev, &tv, &tv);
}

/* ---- flow control ---- */

static void
start_linger(struct cconn *c)
{
	struct timeval tv = { LINGER_S, 0 };
	SSL *ssl;

	up_free(c);
	/* the output is empty, so close_notify goes straight to the socket in order */
	if (c->tls && (ssl = bufferevent_openssl_get_ssl(c->bev)) != NULL)
		(void)SSL_shutdown(ssl);
	ERR_clear_error();
	if (shutdown(c->fd, SHUT_WR) != 0) {
		conn_close(c);
		return;
	}
	c->state = CS_LINGER;
	c->lingered = 0;
	bufferevent_set_timeouts(c->bev, &tv, NULL);
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		evbuffer_drain(bufferevent_get_input(c->bev),
		    evbuffer_get_length(bufferevent_get_input(c->bev)));
}

static void
set_enabled(struct bufferevent *bev, short what, int on)
{
	if (bev == NULL)
		return;
	if (on)
		bufferevent_enable(bev, what);
	else
		bufferevent_disable(bev, what);
}

/*
 * Enables reading on each side only when the other side's output has room. Enabling
 * restarts a side's idle timer, so traffic either way keeps both alive (a sandbox that
 * only listens to a push stream in a tunnel is not idle).
 */
static void
flow(struct cconn *c)
{
	size_t cout, uout;
	int cread = 0, uread = 0;

	if (c->closed)
		return;
	cout = evbuffer_get_length(bufferevent_get_output(c->bev));
	uout = c->ubev ? evbuffer_get_length(bufferevent_get_output(c->ubev)) : 0;
	switch (c->state) {
	case CS_HEAD:
		cread = cout < BUF_HIGH;
		uread = 1;		/* an idle keep-alive upstream: notice it closing */
		break;
	case CS_RESOLVE:
		break;
	case CS_FORWARD:
		cread = !c->req_done && c->ubev != NULL && uout < BUF_HIGH;
		uread = c->rstate != RS_DONE && cout < BUF_HIGH;
		break;
	case CS_TUNNEL:
		cread = c->ubev != NULL && uout < BUF_HIGH;
		uread = cout < BUF_HIGH;
		break;
	case CS_CLOSING:
		if (cout == 0)
			start_linger(c);
		return;
	case CS_LINGER:
		return;
	}
	set_enabled(c->bev, EV_READ, cread);
	set_enabled(c->ubev, EV_READ, uread);
}

/* ---- sending bodies ---- */

static void
out_body(void *arg, const uint8_t *p, size_t n)
{
	struct cconn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (n == 0)
		return;
	if (c->out_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add(out, p, n);
	if (c->out_chunked)
		evbuffer_add(out, "\r\n", 2);
}

static void
scrub_body(void *arg, const uint8_t *p, size_t n)
{
	struct cconn *c = arg;

	if (c->scrub != NULL)
		scrub_feed(c->scrub, p, n, out_body, c);
	else
		out_body(c, p, n);
}

static void
up_chunk(void *arg, const uint8_t *p, size_t n)
{
	struct cconn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->ubev);

	if (n == 0)
		return;
	evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add(out, p, n);
	evbuffer_add(out, "\r\n", 2);
}

/* ---- the request cycle ---- */

/* The response is complete: keep both sides alive when we can. */
static void
cycle_end(struct cconn *c)
{
	if (c->scrub != NULL)
		scrub_finish(c->scrub, out_body, c);
	if (c->out_chunked)
		evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
	c->rstate = RS_DONE;
	/*
	 * Bytes past the end of the answer (a body on a 204 or a HEAD answer, a wrong
	 * Content-Length) would be read as the next request's answer: not reused.
	 */
	if (!c->upstream_reusable || !c->req_done || c->px->draining ||
	    (c->ubev != NULL && evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0))
		up_free(c);
	if (!c->req_done || !c->req.keep_alive || c->close_after || c->px->draining) {
		req_reset(c);	/* nothing of the request is needed to close */
		c->state = CS_CLOSING;
		flow(c);
		return;
	}
	req_reset(c);
	c->state = CS_HEAD;
	flow(c);
	/* a pipelined request may already be waiting */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		handle_head(c);
}

/* Forwards request body bytes from the sandbox; returns -1 after answering an error. */
static int
pump_request(struct cconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	uint8_t buf[PUMP_CHUNK];
	size_t len, m, used = 0;
	int r;

	if (c->req_done || c->ubev == NULL)
		return 0;
	if (!c->req.chunked) {
		len = evbuffer_get_length(in);
		m = (int64_t)len < c->req_left ? len : (size_t)c->req_left;
		if (m > 0)
			evbuffer_remove_buffer(in, bufferevent_get_output(c->ubev), m);
		c->req_left -= (int64_t)m;
		if (c->req_left == 0)
			c->req_done = 1;
		return 0;
	}
	while (!c->req_done && (len = evbuffer_get_length(in)) > 0) {
		m = len < sizeof(buf) ? len : sizeof(buf);
		if (m > used)
			used = m;	/* wiped at the end: only what was written */
		if (evbuffer_copyout(in, buf, m) != (ev_ssize_t)m)
			return -1;
		r = ph_chunked_feed(&c->req_ch, buf, m, up_chunk, c);
		if (r < 0) {
			explicit_bzero(buf, used);
			if (c->rstate == RS_HEAD)
				send_error(c, 400, "credproxy: invalid chunked request body");
			else
				conn_close(c);
			return -1;
		}
		evbuffer_drain(in, (size_t)r);
		if (c->req_ch.done) {
			evbuffer_add(bufferevent_get_output(c->ubev), "0\r\n\r\n", 5);
			c->req_done = 1;
		}
	}
	explicit_bzero(buf, used);
	return 0;
}

static int
is_hop_response_header(const char *name, const struct ph_response *res)
{
	static const char *const hop[] = { "Connection", "Keep-Alive", "Proxy-Connection",
	    "Transfer-Encoding", "TE", "Trailer", "Proxy-Authenticate" };
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(hop); i++)
		if (strcasecmp(name, hop[i]) == 0)
			return 1;
	return 0;
}

/* "name: value\r\n" in one evbuffer_add (evbuffer_add_printf costs ~1,200 instructions). */
static void
add_header_line(struct evbuffer *out, const char *name, const char *value)
{
	char line[512];
	size_t n = strlen(name), v = strlen(value);

	if (n + v + 4 > sizeof(line)) {
		evbuffer_add_printf(out, "%s: %s\r\n", name, value);
		return;
	}
	memcpy(line, name, n);
	line[n] = ':';
	line[n + 1] = ' ';
	memcpy(line + n + 2, value, v);
	line[n + v + 2] = '\r';
	line[n + v + 3] = '\n';
	evbuffer_add(out, line, n + v + 4);
	explicit_bzero(line, n + v + 4);	/* a header value may be a scrubbed echo */
}

/* Writes the scrubbed response head to the sandbox and chooses the body framing. */
static int
send_response_head(struct cconn *c, int upgrade)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct ph_response *res = &c->res;
	const char *name;
	char *v = NULL;
	size_t i;
	int scrubbing = c->scrub != NULL && scrub_count(c->scrub) > 0, named;

	/*
	 * A credential echoed as (part of) a header name cannot be replaced there (a
	 * replacement need not be a valid name): such an answer is not relayed at all.
	 */
	for (i = 0; scrubbing && i < res->nheaders; i++) {
		if (scrub_string(c->scrub, res->headers[i].name, &v) != 0)
			return -1;
		named = strcmp(v, res->headers[i].name) != 0;
		util_wipe_str(v);
		v = NULL;
		if (named) {
			log_info("%s: %s echoed a credential in a response header name", c->peer,
			    c->host);
			return -1;
		}
	}
	c->out_chunked = 0;
	if (res->no_body || upgrade || res->status < 200)
		c->rbody = RB_NONE;
	else if (res->chunked)
		c->rbody = RB_CHUNKED;
	else if (res->content_length >= 0)
		c->rbody = RB_CL;
	else
		c->rbody = RB_CLOSE;
	c->res_left = res->content_length;
	if (c->rbody == RB_CHUNKED || c->rbody == RB_CLOSE ||
	    (c->rbody == RB_CL && scrubbing)) {
		if (c->req.minor >= 1)
			c->out_chunked = 1;
		else
			c->close_after = 1;	/* HTTP/1.0: the end is the close */
	}
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", res->status, status_text(res->status));
	for (i = 0; i < res->nheaders; i++) {
		name = res->headers[i].name;
		if (is_hop_response_header(name, res))
			continue;
		if (strcasecmp(name, "Content-Length") == 0 && c->rbody != RB_NONE &&
		    (c->out_chunked || c->close_after))
			continue;
		if (scrubbing) {
			if (scrub_string(c->scrub, res->headers[i].value, &v) != 0)
				return -1;
			add_header_line(out, name, v);
			util_wipe_str(v);
			v = NULL;
		} else
			add_header_line(out, name, res->headers[i].value);
	}
	if (upgrade)
		evbuffer_add_printf(out, "Connection: upgrade\r\n");
	else if (c->out_chunked)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	if (res->status >= 200 && !upgrade && (c->close_after || !c->req.keep_alive ||
	    c->px->draining))
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
	return 0;
}

/* Streams response body bytes to the sandbox; 1 when the body is complete. */
static int
pump_response(struct cconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->ubev);
	uint8_t buf[PUMP_CHUNK];
	size_t len, m, used = 0;
	int r, scrubbing = c->scrub != NULL && scrub_count(c->scrub) > 0;

	switch (c->rbody) {
	case RB_NONE:
		return 1;
	case RB_CL:
		if (!scrubbing && !c->out_chunked) {
			len = evbuffer_get_length(in);
			m = (int64_t)len < c->res_left ? len : (size_t)c->res_left;
			if (m > 0)
				evbuffer_remove_buffer(in, bufferevent_get_output(c->bev), m);
			c->res_left -= (int64_t)m;
			return c->res_left == 0;
		}
		while (c->res_left > 0 && (len = evbuffer_get_length(in)) > 0) {
			m = len < sizeof(buf) ? len : sizeof(buf);
			if (m > used)
				used = m;	/* wiped at the end: only what was written */
			if ((int64_t)m > c->res_left)
				m = (size_t)c->res_left;
			evbuffer_remove(in, buf, m);
			scrub_body(c, buf, m);
			c->res_left -= (int64_t)m;
		}
		explicit_bzero(buf, used);
		return c->res_left == 0;
	case RB_CHUNKED:
		while (!c->res_ch.done && (len = evbuffer_get_length(in)) > 0) {
			m = len < sizeof(buf) ? len : sizeof(buf);
			if (m > used)
				used = m;	/* wiped at the end: only what was written */
			evbuffer_copyout(in, buf, m);
			r = ph_chunked_feed(&c->res_ch, buf, m, scrub_body, c);
			if (r < 0) {
				explicit_bzero(buf, used);
				return -1;
			}
			evbuffer_drain(in, (size_t)r);
		}
		explicit_bzero(buf, used);
		return c->res_ch.done;
	case RB_CLOSE:
		while ((len = evbuffer_get_length(in)) > 0) {
			m = len < sizeof(buf) ? len : sizeof(buf);
			if (m > used)
				used = m;	/* wiped at the end: only what was written */
			evbuffer_remove(in, buf, m);
			scrub_body(c, buf, m);
		}
		explicit_bzero(buf, used);
		return 0;
	}
	return -1;
}

static void
tunnel_emit(void *arg, const uint8_t *p, size_t n)
{
	struct cconn *c = arg;

	if (n > 0)
		evbuffer_add(bufferevent_get_output(c->bev), p, n);
}

/*
 * An upgraded connection's upstream bytes to the sandbox. When the upgrade request
 * carried a credential they go through tscrub, whose masks keep every length (a
 * WebSocket frame says how long it is), and a credential split across reads is caught
 * as in a body. What tscrub holds back (the start of a credential, or bytes that only
 * look like one) goes out after TUNNEL_FLUSH_MS without more upstream bytes, so that a
 * protocol waiting for the sandbox's reply is not stalled. Returns -1 on an error.
 */
static int
tunnel_up(struct cconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->ubev);
	struct timeval tv = { 0, TUNNEL_FLUSH_MS * 1000 };
	uint8_t buf[PUMP_CHUNK];
	size_t len, m, used = 0;
	int rc = 0;

	if (c->tscrub == NULL) {
		evbuffer_add_buffer(bufferevent_get_output(c->bev), in);
		return 0;
	}
	while (rc == 0 && (len = evbuffer_get_length(in)) > 0) {
		m = len < sizeof(buf) ? len : sizeof(buf);
		if (m > used)
			used = m;	/* wiped at the end: only what was written */
		evbuffer_remove(in, buf, m);
		rc = scrub_feed(c->tscrub, buf, m, tunnel_emit, c);
	}
	explicit_bzero(buf, used);
	if (rc != 0)
		return -1;
	if (scrub_held(c->tscrub) > 0)
		evtimer_add(c->tflush, &tv);	/* from the last bytes read */
	else
		evtimer_del(c->tflush);
	return 0;
}

/* 1 when upstream bytes wait below libevent: in the socket, or decrypted in OpenSSL. */
static int
up_bytes_pending(struct cconn *c)
{
	evutil_socket_t ufd = bufferevent_getfd(c->ubev);
	SSL *ssl;
	int n = 0;

	if (c->utls && (ssl = bufferevent_openssl_get_ssl(c->ubev)) != NULL &&
	    SSL_pending(ssl) > 0)
		return 1;
	return ufd >= 0 && ioctl(ufd, FIONREAD, &n) == 0 && n > 0;
}

static void
tunnel_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *c = arg;
	struct timeval tv = { 0, TUNNEL_FLUSH_MS * 1000 };

	if (c->closed || c->state != CS_TUNNEL || c->tscrub == NULL)
		return;
	/*
	 * Upstream bytes not read yet (the sandbox does not read, or they arrived while the
	 * loop was busy): the rest of a credential may be among them. Held until read.
	 */
	if (c->ubev != NULL && (evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0 ||
	    (bufferevent_get_enabled(c->ubev) & EV_READ) == 0 || up_bytes_pending(c))) {
		evtimer_add(c->tflush, &tv);
		return;
	}
	if (scrub_finish(c->tscrub, tunnel_emit, c) != 0) {
		conn_close(c);
		return;
	}
	flow(c);
}

static void
start_tunnel(struct cconn *c)
{
	c->state = CS_TUNNEL;
	c->rstate = RS_DONE;
	bufferevent_set_timeouts(c->ubev, NULL, NULL);
	if (c->tscrub != NULL &&
	    (c->tflush = evtimer_new(c->px->base, tunnel_flush_cb, c)) == NULL) {
		conn_close(c);
		return;
	}
	if (tunnel_up(c) != 0) {
		conn_close(c);
		return;
	}
	evbuffer_add_buffer(bufferevent_get_output(c->ubev), bufferevent_get_input(c->bev));
	log_info("%s sandbox %s: upgraded connection to %s:%d%s", c->peer, c->sandbox, c->host,
	    c->port, c->tscrub != NULL ? " (scrubbed)" : "");
}

/* Upstream bytes arrived (or a pump is due after back-pressure eased). */
static void
up_progress(struct cconn *c)
{
	struct evbuffer *in;
	const char *reason = NULL, *enc;
	size_t len;
	int n, r;

	if (c->state == CS_TUNNEL) {
		if (tunnel_up(c) != 0)
			conn_close(c);
		else
			flow(c);
		return;
	}
	if (c->state != CS_FORWARD) {
		/* an idle upstream may not talk: drop it */
		up_free(c);
		return;
	}
	in = bufferevent_get_input(c->ubev);
	if (evbuffer_get_length(in) > 0)
		c->got_response_bytes = 1;
	while (c->rstate == RS_HEAD) {
		len = evbuffer_get_length(in);
		if (len == 0)
			break;
		if (len > PH_HEAD_MAX)
			len = PH_HEAD_MAX;
		n = ph_parse_response((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len,
		    strcmp(c->req.method, "HEAD") == 0, &c->res, &reason);
		if (n == 0 && len < PH_HEAD_MAX)
			break;
		if (n <= 0) {
			log_info("%s: bad response head from %s: %s", c->peer, c->host,
			    reason ? reason : "too large");
			send_error(c, 502, "credproxy: bad response from upstream");
			return;
		}
		c->have_res = 1;
		evbuffer_drain(in, (size_t)n);
		if (c->res.status == 101) {
			if (!c->req.upgrade) {
				send_error(c, 502, "credproxy: unexpected 101 from upstream");
				return;
			}
			if (send_response_head(c, 1) != 0) {
				send_error(c, 502, "credproxy: cannot relay response");
				return;
			}
			start_tunnel(c);
			if (!c->closed)
				flow(c);
			return;
		}
		if (c->res.status < 200 && c->req.minor == 0) {
			/*
			 * HTTP/1.0 has no 1xx: its client would take one for the final answer.
			 * The upstream saw HTTP/1.1 (the request line is rewritten), so it may send one.
			 */
			ph_response_clear(&c->res);
			c->have_res = 0;
			continue;
		}
		if (c->res.status >= 200 && !c->res.no_body && c->scrub != NULL &&
		    scrub_count(c->scrub) > 0 && (enc = ph_header_get(c->res.headers,
		    c->res.nheaders, "Content-Encoding")) != NULL && strcasecmp(enc, "identity") != 0) {
			/* a compressed echo of the credential could not be scrubbed */
			send_error(c, 502, "credproxy: encoded response cannot be scrubbed");
			return;
		}
		if (send_response_head(c, 0) != 0) {
			send_error(c, 502, "credproxy: cannot relay response");
			return;
		}
		if (c->res.status < 200) {
			/* 100 Continue and friends: relay, then wait for the final answer */
			ph_response_clear(&c->res);
			c->have_res = 0;
			continue;
		}
		c->upstream_reusable = c->res.keep_alive && c->rbody != RB_CLOSE;
		c->rstate = RS_BODY;
	}
	if (c->rstate == RS_BODY) {
		r = pump_response(c);
		if (r < 0) {
			log_info("%s: bad chunked body from %s", c->peer, c->host);
			conn_close(c);
			return;
		}
		if (r == 1) {
			cycle_end(c);
			return;
		}
	}
	flow(c);
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	up_progress(arg);
}

static void
up_write_cb(struct bufferevent *bev, void *arg)
{
	flow(arg);
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct cconn *c = arg;
	unsigned long e;
	SSL *ssl;
	long vr;

	if (what & BEV_EVENT_CONNECTED) {
		log_debug("%s: connected to %s:%d", c->peer, c->uhost, c->uport);
		c->uconnected = 1;
		return;
	}
	if (c->retry_head != NULL && c->state == CS_FORWARD && c->rstate == RS_HEAD &&
	    !c->got_response_bytes && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/* the reused connection was closed under us: once more on a fresh one */
		log_debug("%s: kept-alive upstream %s:%d closed, reconnecting", c->peer, c->host,
		    c->port);
		c->unext = 0;
		c->ureuse = 0;
		if (up_connect(c) == 0) {
			evbuffer_add(bufferevent_get_output(c->ubev), c->retry_head, c->retry_len);
			util_wipe_free(c->retry_head, c->retry_len);
			c->retry_head = NULL;
			flow(c);
			return;
		}
		send_error(c, 502, "credproxy: upstream connection failed");
		return;
	}
	if (!c->uconnected && c->state == CS_FORWARD && c->rstate == RS_HEAD &&
	    c->unext < c->unaddrs && (what & BEV_EVENT_ERROR) &&
	    (!c->utls || SSL_get_verify_result(bufferevent_openssl_get_ssl(bev)) == X509_V_OK)) {
		/* nothing left yet: move what waits to go out to the next address */
		struct evbuffer *pending = evbuffer_new();

		if (pending != NULL) {
			evbuffer_add_buffer(pending, bufferevent_get_output(bev));
			log_debug("%s: %s:%d: trying the next address", c->peer, c->host, c->port);
			if (up_connect(c) == 0) {
				evbuffer_add_buffer(bufferevent_get_output(c->ubev), pending);
				evbuffer_free(pending);
				flow(c);
				return;
			}
			evbuffer_free(pending);
		}
		send_error(c, 502, "credproxy: upstream connection failed");
		return;
	}
	if (c->state == CS_TUNNEL) {
		/* the upstream is gone: nothing can complete what the scrubber holds back */
		if (tunnel_up(c) != 0 || (c->tscrub != NULL &&
		    scrub_finish(c->tscrub, tunnel_emit, c) != 0)) {
			conn_close(c);
			return;
		}
		up_free(c);
		c->state = CS_CLOSING;
		flow(c);
		return;
	}
	if (c->state != CS_FORWARD) {
		up_free(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->rstate == RS_HEAD)
			send_error(c, 504, "credproxy: upstream timed out");
		else
			conn_close(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->rstate == RS_BODY) {
		/* drain what is still buffered, then the close ends a close-delimited body */
		up_progress(c);
		if (c->closed || c->state != CS_FORWARD || c->rstate != RS_BODY)
			return;
		if (c->rbody == RB_CLOSE) {
			c->upstream_reusable = 0;
			c->close_after = c->close_after || !c->out_chunked;
			cycle_end(c);
		} else
			conn_close(c);	/* truncated: the sandbox must see a broken body */
		return;
	}
	if (c->rstate == RS_BODY) {
		conn_close(c);
		return;
	}
	if (c->ubev != NULL && c->utls && (ssl = bufferevent_openssl_get_ssl(c->ubev)) != NULL &&
	    (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		log_info("%s: upstream %s certificate: %s", c->peer, c->host,
		    X509_verify_cert_error_string(vr));
		send_error(c, 502, "credproxy: upstream certificate verification failed");
		return;
	}
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		log_debug("%s: upstream TLS: %s", c->peer, ERR_reason_error_string(e));
	log_info("%s: upstream %s:%d failed (%s)", c->peer, c->host, c->port,
	    (what & BEV_EVENT_EOF) ? "closed" : "error");
	send_error(c, 502, "credproxy: upstream connection failed");
}

/* Connects to the next checked address of c->uaddrs. */
static int
up_connect(struct cconn *c)
{
	struct proxy *px = c->px;
	struct timeval tv = { UPSTREAM_TIMEOUT_S, 0 };
	SSL *ssl = NULL;
	size_t i;

	up_free(c);
	if (c->unext >= c->unaddrs)
		return CB_ERR_NOTFOUND;
	i = c->unext++;
	if (c->tls) {
		if ((ssl = SSL_new(px->up_ctx)) == NULL)
			return CB_ERR_CRYPTO;
		/*
		 * An upstream connection exists only while its sandbox connection sends
		 * requests: keep its record buffers instead of freeing and allocating them
		 * again at every request (SSL_MODE_RELEASE_BUFFERS stays for the sandbox
		 * side, where idle connections are many).
		 */
		SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
		if (proxy_is_ip_literal(c->host)) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->host) != 1)
				goto fail;
		} else {
			if (SSL_set_tlsext_host_name(ssl, c->host) != 1 ||
			    SSL_set1_host(ssl, c->host) != 1)
				goto fail;
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		}
		c->ubev = bufferevent_openssl_socket_new(px->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		ssl = NULL;	/* transferred (freed with the bufferevent, or below) */
	} else
		c->ubev = bufferevent_socket_new(px->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->ubev == NULL)
		return CB_ERR_NOMEM;
	if (c->tls)
		bufferevent_openssl_set_allow_dirty_shutdown(c->ubev, 1);
	bufferevent_setcb(c->ubev, up_read_cb, up_write_cb, up_event_cb, c);
	bufferevent_setwatermark(c->ubev, EV_READ, 0, READ_HIGH);
	bufferevent_set_timeouts(c->ubev, &tv, &tv);
	c->uconnected = 0;
	if (bufferevent_socket_connect(c->ubev, (const struct sockaddr *)&c->uaddrs[i],
	    (int)c->uaddrlens[i]) != 0) {
		up_free(c);
		return CB_ERR_IO;
	}
	snprintf(c->uhost, sizeof(c->uhost), "%s", c->host);
	c->uport = c->port;
	c->utls = c->tls;
	memcpy(c->ucred, c->qcred, c->nqcred * CRED_HASH_LEN);	/* this request's */
	c->nucred = c->nqcred;
	return 0;
 fail:
	SSL_free(ssl);
	return CB_ERR_CRYPTO;
}

/*
 * 1 when an outgoing head still carries something that looks like a token: "cbt_eyJ" (a
 * token's JWT header always starts so) anywhere, the request line included, or a token
 * inside Basic credentials of any header. Such a head is never forwarded.
 */
static int
proxy_head_holds_token(const char *head, size_t len)
{
	static const char mark[] = "cbt_eyJ";
	struct ph_request again;
	char *toks[PH_TOKENS_MAX];
	size_t n = 0;
	int status, found;
	const char *reason;

	if (memmem(head, len, mark, sizeof(mark) - 1) != NULL)
		return 1;
	memset(&again, 0, sizeof(again));
	if (ph_parse_request(head, len, &again, &status, &reason) <= 0) {
		ph_request_clear(&again);
		return 1;	/* our own output must parse; refuse when it does not */
	}
	found = ph_find_tokens(&again, toks, &n) != 0 || n > 0;
	ph_tokens_free(toks, n);
	ph_request_clear(&again);
	return found;
}

/*
 * In swap mode a whole credential header value echoed back becomes what the sandbox
 * itself sent in that header ("Bearer cbt_..."), when it sent one; else the token.
 */
static const char *
swap_replacement(const struct cconn *c, const struct proxy_job *job,
    const struct proxy_pattern *pat)
{
	size_t i, k;

	if (strncmp(pat->repl, "cbt_", 4) != 0)
		return pat->repl;
	for (k = 0; k < job->nset; k++) {
		if (strcmp(job->set[k].value, pat->value) != 0)
			continue;
		for (i = 0; i < c->req.nheaders; i++)
			if (strcasecmp(c->req.headers[i].name, job->set[k].name) == 0 &&
			    strstr(c->req.headers[i].value, pat->repl) != NULL)
				return c->req.headers[i].value;
	}
	return pat->repl;
}

/*
 * A scrubber (*out) of the job's credential values: for the answer, each replaced by
 * swap_replacement; masked (an upgraded connection's bytes), each by as many '*', since
 * the framing there counts bytes and no length may change.
 */
static int
build_scrub(struct cconn *c, const struct proxy_job *job, int masked, struct scrub **out)
{
	const char *repl;
	char *mask = NULL;
	size_t i, n;
	int rc;

	if ((rc = scrub_new(out)) != 0)
		return rc;
	for (i = 0; i < job->npats && i < SCRUB_PATTERNS_MAX; i++) {
		n = strlen(job->pats[i].value);
		if (masked) {
			if ((mask = malloc(n + 1)) == NULL)
				return CB_ERR_NOMEM;
			memset(mask, '*', n);
			mask[n] = '\0';
		}
		repl = masked ? mask : swap_replacement(c, job, &job->pats[i]);
		rc = scrub_add(*out, (const uint8_t *)job->pats[i].value, n,
		    (const uint8_t *)repl, strlen(repl));
		free(mask);
		mask = NULL;
		if (rc != 0)
			return rc;
	}
	return i < job->npats ? CB_ERR_LIMIT : 0;
}

/*
 * An upstream may keep a request's credential and return it in a later answer on the
 * same connection (a request inspector, a session that reflects what it saw). Each
 * answer is scrubbed only of its own request's credentials, and none is kept once an
 * answer is out (docs/threat-model.md, asset 1), so an upstream connection is reused
 * only for a request that carries every credential sent on it before: salted SHA-256
 * hashes are compared, never values. Sets c->qcred from the job; 1 when ubev may carry
 * the request, -1 on an error.
 */
static int
cred_reusable(struct cconn *c, const struct proxy_job *job)
{
	static uint8_t salt[16];
	static int salted;
	unsigned int len;
	size_t i, j;
	EVP_MD_CTX *md;
	int rc = 0;

	if (!salted) {
		if (RAND_bytes(salt, sizeof(salt)) != 1)
			return -1;
		salted = 1;
	}
	c->nqcred = 0;
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	for (i = 0; i < job->npats && i < SCRUB_PATTERNS_MAX && rc == 0; i++) {
		if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
		    EVP_DigestUpdate(md, salt, sizeof(salt)) != 1 ||
		    EVP_DigestUpdate(md, job->pats[i].value, strlen(job->pats[i].value)) != 1 ||
		    EVP_DigestFinal_ex(md, c->qcred[c->nqcred], &len) != 1 ||
		    len != CRED_HASH_LEN)
			rc = -1;
		else
			c->nqcred++;
	}
	EVP_MD_CTX_free(md);
	if (rc != 0)
		return -1;
	for (i = 0; i < c->nucred; i++) {
		for (j = 0; j < c->nqcred; j++)
			if (CRYPTO_memcmp(c->ucred[i], c->qcred[j], CRED_HASH_LEN) == 0)
				break;
		if (j == c->nqcred)
			return 0;
	}
	return 1;
}

/* The worker is done with this connection's job: forward, or answer its refusal. */
static void
job_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *c = arg;
	struct proxy_job *job = c->job;
	struct ph_set set[PROXY_SET_MAX + 1];
	char *head = NULL;
	size_t headlen = 0, i, j, nset;
	int rc;

	c->job = NULL;
	if (c->closed) {
		proxy_job_free(job);
		conn_destroy(c);
		return;
	}
	if (job->status != 0) {
		send_error(c, job->status, job->reason);
		goto out;
	}
	/* two credentials for one header cannot both be right */
	for (i = 0; i < job->nset; i++)
		for (j = 0; j < i; j++)
			if (strcasecmp(job->set[i].name, job->set[j].name) == 0) {
				send_error(c, 403, "credproxy: refused: conflicting credentials");
				goto out;
			}
	/*
	 * An absolute-form http:// request travels in clear: a credential goes there only
	 * where the operator allowed it. A grant names host and port, not the scheme, so
	 * without this a grant for an HTTPS API would put its key on the wire in clear.
	 */
	if (!c->tls && job->nset > 0 && !c->px->conf->plaintext_credentials) {
		send_error(c, 403, "credproxy: refused: credentials go out over TLS only "
		    "(plaintext_credentials no)");
		goto out;
	}
	if (build_scrub(c, job, 0, &c->scrub) != 0 ||
	    (c->req.upgrade && job->npats > 0 && build_scrub(c, job, 1, &c->tscrub) != 0)) {
		send_error(c, 500, "credproxy: internal error");
		goto out;
	}
	for (i = 0; i < job->nset; i++)
		set[i] = job->set[i];
	nset = job->nset;
	for (j = 0; j < nset; j++)
		if (strcasecmp(set[j].name, "Accept-Encoding") == 0)
			break;
	if (job->npats > 0 && j == nset && nset < UTIL_ARRAY_LEN(set)) {
		/* the answer must come back uncompressed to be scrubbed */
		set[nset].name = "Accept-Encoding";
		set[nset++].value = "identity";
	}
	rc = ph_rewrite_request(&c->req, set, nset, c->host_header, &head, &headlen);
	if (rc != 0) {
		send_error(c, 400, "credproxy: cannot rewrite request");
		goto out;
	}
	/* a token left in a header its grant does not bind would travel to the upstream */
	for (i = 0; i < job->ntokens; i++)
		if (memmem(head, headlen, job->tokens[i], strlen(job->tokens[i])) != NULL) {
			send_error(c, 403, "credproxy: refused: token in a header its grant does "
			    "not bind");
			goto out;
		}
	if (proxy_head_holds_token(head, headlen)) {
		send_error(c, 403, "credproxy: refused: a token would reach the upstream "
		    "(in the URL or encoded in another header)");
		goto out;
	}
	if (job->need_addr) {
		c->unaddrs = job->naddrs;
		for (i = 0; i < job->naddrs; i++) {
			c->uaddrs[i] = job->addrs[i];
			c->uaddrlens[i] = job->addrlens[i];
		}
		snprintf(c->uahost, sizeof(c->uahost), "%s", job->host);
		c->uaport = job->port;
		c->uatime = mono_s();
	}
	if ((rc = cred_reusable(c, job)) < 0) {
		send_error(c, 500, "credproxy: internal error");
		goto out;
	}
	if (rc == 0 && c->ubev != NULL && c->ureuse) {
		log_debug("%s: %s:%d: a fresh upstream connection (credentials differ)", c->peer,
		    c->host, c->port);
		c->ureuse = 0;
	}
	if (c->ubev != NULL && c->ureuse &&
	    (evbuffer_get_length(bufferevent_get_input(c->ubev)) > 0 || up_bytes_pending(c))) {
		/* the idle upstream sent bytes nobody asked for: not an answer to this request */
		log_debug("%s: %s:%d: a fresh upstream connection (unrequested bytes)", c->peer,
		    c->host, c->port);
		c->ureuse = 0;
	}
	if (c->ubev != NULL && c->ureuse) {
		memcpy(c->ucred, c->qcred, c->nqcred * CRED_HASH_LEN);	/* a superset */
		c->nucred = c->nqcred;
	}
	if (c->ubev == NULL || !c->ureuse) {
		c->unext = 0;
		if ((rc = up_connect(c)) != 0) {
			send_error(c, 502, "credproxy: cannot connect upstream");
			goto out;
		}
	}
	evbuffer_add(bufferevent_get_output(c->ubev), head, headlen);
	if (c->ureuse && !c->req.chunked && c->req.content_length <= 0) {
		/* a kept-alive upstream may close just as we write: keep what to resend */
		c->retry_head = head;	/* transferred */
		c->retry_len = headlen;
		head = NULL;
	}
	c->state = CS_FORWARD;
	c->rstate = RS_HEAD;
	if (c->req.chunked)
		c->req_done = 0;
	else {
		c->req_left = c->req.content_length > 0 ? c->req.content_length : 0;
		c->req_done = c->req_left == 0;
	}
	if (pump_request(c) == 0)
		flow(c);
 out:
	if (head != NULL)
		util_wipe_free(head, headlen);
	proxy_job_free(job);
}

static void
job_done(void *arg, struct proxy_job *job)
{
	struct cconn *c = arg;

	/* worker thread: event_active is thread-safe with evthread_use_pthreads */
	event_active(c->jobev, EV_READ, 1);
}

/* ---- request heads ---- */

/* 1 when a Host value names host and port (the scheme's default port may be left out). */
static int
host_matches(const char *value, const char *host, int port, int defport)
{
	char h[256];
	int p;
	size_t n;

	if (value == NULL)
		return 0;
	if (proxy_split_hostport(value, h, sizeof(h), &p) != 0) {
		n = strlen(value);
		if (n >= 2 && value[0] == '[' && value[n - 1] == ']') {
			if (n - 2 >= sizeof(h))
				return 0;
			memcpy(h, value + 1, n - 2);
			h[n - 2] = '\0';
		} else if (strchr(value, ':') == NULL && n < sizeof(h))
			util_strlcpy(h, value, sizeof(h));
		else
			return 0;
		p = defport;
	}
	return strcasecmp(h, host) == 0 && p == port;
}

static char *
make_host_header(const char *host, int port, int defport)
{
	char buf[300];
	int v6 = strchr(host, ':') != NULL;

	if (port == defport)
		snprintf(buf, sizeof(buf), v6 ? "[%s]" : "%s", host);
	else
		snprintf(buf, sizeof(buf), v6 ? "[%s]:%d" : "%s:%d", host, port);
	return strdup(buf);
}

/*
 * CONNECT: answer 200 and continue inside TLS with a certificate for the target. The
 * TLS bufferevent takes the socket itself (not a filter over the plain one) so that an
 * empty output buffer means the bytes reached the kernel: answers are never lost on close.
 */
static void
start_intercept(struct cconn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	struct bufferevent *tb;
	SSL_CTX *ctx = NULL;
	SSL *ssl;
	struct timeval tv = { c->px->conf->idle_timeout_s, 0 };
	ssize_t w;

	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		send_error(c, 400, "credproxy: data sent before the CONNECT answer");
		return;
	}
	if (proxy_certs_ctx(c->px->certs, c->req.host, &ctx) != 0) {
		send_error(c, 502, "credproxy: cannot make a certificate for this host");
		return;
	}
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	if (ssl == NULL) {
		send_error(c, 500, "credproxy: internal error");
		return;
	}
	snprintf(c->chost, sizeof(c->chost), "%s", c->req.host);
	c->cport = c->req.port;
	req_reset(c);
	/* the socket's send buffer is empty: a 39-byte write cannot be short */
	w = send(c->fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
	bufferevent_free(c->bev);	/* does not own the socket */
	c->bev = NULL;
	if (w != (ssize_t)(sizeof(ok) - 1)) {
		SSL_free(ssl);
		conn_close(c);
		return;
	}
	tb = bufferevent_openssl_socket_new(c->px->base, c->fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		conn_close(c);
		return;
	}
	c->fd_owned_by_bev = 1;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb;
	c->tls = 1;
	bufferevent_setcb(tb, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(tb, EV_READ, 0, READ_HIGH);
	bufferevent_set_timeouts(tb, &tv, &tv);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	c->state = CS_HEAD;
	head_timer(c);		/* the handshake and the first head inside */
}

/* Checks the request against the connection and queues its resolve job. */
static void
dispatch(struct cconn *c)
{
	struct proxy *px = c->px;
	struct ph_request *req = &c->req;
	struct proxy_job *job = NULL;
	const char *hosthdr, *sni;
	char *toks[PH_TOKENS_MAX];
	size_t ntoks = 0, i;
	int defport, rc;

	if (!c->have_sandbox) {
		send_error(c, 403, "credproxy: refused: unknown sandbox");
		return;
	}
	if (req->form == PH_FORM_AUTHORITY) {
		if (c->tls || strcmp(req->method, "CONNECT") != 0) {
			send_error(c, 400, "credproxy: unexpected CONNECT");
			return;
		}
		if (px->draining) {
			send_error(c, 503, "credproxy: shutting down");
			return;
		}
		start_intercept(c);
		return;
	}
	hosthdr = ph_header_get(req->headers, req->nheaders, "Host");
	if (c->tls) {
		if (req->form != PH_FORM_ORIGIN) {
			send_error(c, 400, "credproxy: absolute-form inside a tunnel");
			return;
		}
		sni = SSL_get_servername(bufferevent_openssl_get_ssl(c->bev),
		    TLSEXT_NAMETYPE_host_name);
		if (sni == NULL ? !proxy_is_ip_literal(c->chost) : strcasecmp(sni, c->chost) != 0) {
			send_error(c, 421, "credproxy: TLS SNI does not match the CONNECT target");
			return;
		}
		snprintf(c->host, sizeof(c->host), "%s", c->chost);
		c->port = c->cport;
		defport = 443;
	} else {
		if (req->form != PH_FORM_ABSOLUTE || strcasecmp(req->scheme, "http") != 0) {
			send_error(c, 400, "credproxy: use CONNECT or an absolute http:// URL");
			return;
		}
		snprintf(c->host, sizeof(c->host), "%s", req->host);
		c->port = req->port > 0 ? req->port : 80;
		defport = 80;
	}
	/* one spelling for the broker, the certificate cache and the logs */
	for (i = 0; c->host[i] != '\0'; i++)
		c->host[i] = (char)tolower((unsigned char)c->host[i]);
	if (hosthdr != NULL ? !host_matches(hosthdr, c->host, c->port, defport) :
	    req->minor >= 1) {
		send_error(c, 421, "credproxy: Host header does not match the target");
		return;
	}
	free(c->host_header);
	if ((c->host_header = make_host_header(c->host, c->port, defport)) == NULL) {
		send_error(c, 500, "credproxy: internal error");
		return;
	}
	if ((rc = ph_find_tokens(req, toks, &ntoks)) != 0) {
		send_error(c, 400, "credproxy: too many or malformed tokens");
		return;
	}
	if ((job = proxy_job_new()) == NULL) {
		ph_tokens_free(toks, ntoks);
		send_error(c, 500, "credproxy: internal error");
		return;
	}
	for (i = 0; i < ntoks; i++) {
		job->tokens[i] = toks[i];	/* transferred */
		toks[i] = NULL;
	}
	job->ntokens = ntoks;
	snprintf(job->sandbox, sizeof(job->sandbox), "%s", c->sandbox);
	snprintf(job->host, sizeof(job->host), "%s", c->host);
	job->port = c->port;
	snprintf(job->method, sizeof(job->method), "%s", req->method);
	job->path = strdup(req->path != NULL ? req->path : "/");
	job->allowlisted = proxy_conf_allowed(px->conf, c->host);
	job->allow_private = px->conf->allow_private;
	/* a live keep-alive upstream to the same place is reused: no new lookup */
	c->ureuse = c->ubev != NULL && c->uport == c->port && c->utls == c->tls &&
	    strcasecmp(c->uhost, c->host) == 0;
	if (!c->ureuse)
		up_free(c);
	/*
	 * The upstream name is looked up (and every address checked) for a new upstream
	 * connection. A reused one needs no lookup: should it close before the job is back,
	 * the reconnect goes to the addresses checked for this very host:port, at most
	 * UADDR_TTL_S old, as a reconnect after a failed write does (up_event_cb).
	 */
	job->need_addr = !(c->ureuse && c->unaddrs > 0 && c->uaport == c->port &&
	    strcmp(c->uahost, c->host) == 0 && mono_s() - c->uatime < UADDR_TTL_S);
	job->done = job_done;
	job->arg = c;
	if (job->path == NULL) {
		proxy_job_free(job);
		send_error(c, 500, "credproxy: internal error");
		return;
	}
	c->job = job;
	c->state = CS_RESOLVE;
	flow(c);
	if ((rc = proxy_pool_submit(px->pool, job)) != 0) {
		c->job = NULL;
		proxy_job_free(job);
		send_error(c, 503, "credproxy: too busy");
		return;
	}
}

static void
handle_head(struct cconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	const char *reason = NULL;
	size_t len;
	char msg[160];
	int n, status = 400;

	if (c->closed || c->state != CS_HEAD)
		return;
	len = evbuffer_get_length(in);
	if (len == 0)
		return;
	head_timer(c);		/* from this head's first byte, if not armed already */
	if (len > PH_HEAD_MAX)
		len = PH_HEAD_MAX;
	req_reset(c);
	n = ph_parse_request((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, &c->req,
	    &status, &reason);
	if (n == 0 && len < PH_HEAD_MAX) {
		ph_request_clear(&c->req);
		return;
	}
	if (n <= 0) {
		ph_request_clear(&c->req);
		if (n == 0) {
			status = 431;
			reason = "head too large";
		}
		snprintf(msg, sizeof(msg), "credproxy: %s", reason ? reason : "bad request");
		send_error(c, status, msg);
		return;
	}
	c->have_req = 1;
	evtimer_del(c->headev);
	/* the head may hold tokens: wipe it from the buffer as it goes */
	explicit_bzero(evbuffer_pullup(in, n), (size_t)n);
	evbuffer_drain(in, (size_t)n);
	dispatch(c);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct cconn *c = arg;

	switch (c->state) {
	case CS_HEAD:
		handle_head(c);
		break;
	case CS_FORWARD:
		if (pump_request(c) == 0)
			flow(c);
		break;
	case CS_TUNNEL:
		if (c->ubev != NULL)
			evbuffer_add_buffer(bufferevent_get_output(c->ubev),
			    bufferevent_get_input(c->bev));
		flow(c);
		break;
	case CS_LINGER:
		c->lingered += evbuffer_get_length(bufferevent_get_input(bev));
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(
		    bufferevent_get_input(bev)));
		if (c->lingered > LINGER_MAX)
			conn_close(c);
		break;
	default:
		break;
	}
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct cconn *c = arg;

	if (c->state == CS_FORWARD && c->rstate == RS_BODY && c->ubev != NULL) {
		/* back-pressure eased: data may be waiting in the upstream input */
		up_progress(c);
		return;
	}
	flow(c);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct cconn *c = arg;
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED)
		return;
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		log_debug("%s: sandbox TLS: %s", c->peer, ERR_reason_error_string(e));
	if (c->state == CS_TUNNEL && c->ubev != NULL) {
		evbuffer_add_buffer(bufferevent_get_output(c->ubev), bufferevent_get_input(bev));
		/* let the upstream side flush, then both go */
	}
	log_debug("%s: sandbox connection %s", c->peer,
	    (what & BEV_EVENT_EOF) ? "closed" : (what & BEV_EVENT_TIMEOUT) ? "idle" : "failed");
	conn_close(c);
}

/* ---- accepting ---- */

/* Open connections of c's sandbox (those of unknown sources count together). */
static int
sandbox_conns(const struct proxy *px, const struct cconn *c)
{
	const struct cconn *o;
	int n = 0;

	LIST_FOREACH(o, &px->conns, link)
		if (!o->closed && o->have_sandbox == c->have_sandbox &&
		    (!c->have_sandbox || strcmp(o->sandbox, c->sandbox) == 0))
			n++;
	return n;
}

/*
 * max_conns_per_sandbox, as the same share of conns_max as of CONNS_MAX when descriptors
 * lower conns_max: one sandbox still cannot take every connection that fits.
 */
static int
sandbox_limit(const struct proxy *px)
{
	long long n = px->conf->sandbox_conns;

	if (px->conns_max >= CONNS_MAX)
		return (int)n;
	n = n * (long long)px->conns_max / CONNS_MAX;
	return n > 0 ? (int)n : 1;
}

#define REFUSAL_LOG_US	1000000	/* a refusal's log line: once a second */

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg)
{
	struct proxy *px = arg;
	struct cconn *c;
	const char *sb;
	char addr[INET6_ADDRSTRLEN];
	struct timeval tv = { px->conf->idle_timeout_s, 0 };
	unsigned long long quiet;
	int port = 0;

	static const char sbusy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 42\r\nConnection: close\r\n\r\n"
	    "credproxy: too many connections (sandbox)\n";

	if (px->nconns >= px->conns_max || px->draining) {
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 28\r\nConnection: close\r\n\r\n"
		    "credproxy: too many clients\n";

		if (util_ratelimit_ok(&px->rl_full, REFUSAL_LOG_US, &quiet))
			log_warnx("connection limit reached, refusing a new connection (%llu more "
			    "refused since the last such line)", quiet);
		/* best effort on a fresh socket: its send buffer is empty */
		(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		evutil_closesocket(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->px = px;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr, addr,
		    sizeof(addr));
		port = ntohs(((struct sockaddr_in *)(void *)sa)->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, addr,
		    sizeof(addr));
		port = ntohs(((struct sockaddr_in6 *)(void *)sa)->sin6_port);
	} else
		util_strlcpy(addr, "?", sizeof(addr));
	snprintf(c->peer, sizeof(c->peer), "%s:%d", addr, port);
	if ((sb = proxy_conf_sandbox(px->conf, sa)) != NULL) {
		util_strlcpy(c->sandbox, sb, sizeof(c->sandbox));
		c->have_sandbox = 1;
	}
	if (px->conf->sandbox_id == NULL && sandbox_conns(px, c) >= sandbox_limit(px)) {
		/* shared mode: one sandbox (or the unknown sources together) cannot take all */
		if (util_ratelimit_ok(&px->rl_sandbox, REFUSAL_LOG_US, &quiet))
			log_info("%s sandbox %s: connection limit of the sandbox reached (%d; %llu "
			    "more refused since the last such line)", c->peer,
			    c->have_sandbox ? c->sandbox : "?", sandbox_limit(px), quiet);
		(void)send(fd, sbusy, sizeof(sbusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->fd = fd;
	c->bev = bufferevent_socket_new(px->base, fd, 0);
	c->jobev = event_new(px->base, -1, 0, job_cb, c);
	c->closeev = event_new(px->base, -1, 0, close_cb, c);
	c->headev = evtimer_new(px->base, head_deadline_cb, c);
	if (c->bev == NULL || c->jobev == NULL || c->closeev == NULL || c->headev == NULL) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		evutil_closesocket(fd);
		if (c->jobev != NULL)
			event_free(c->jobev);
		if (c->closeev != NULL)
			event_free(c->closeev);
		if (c->headev != NULL)
			event_free(c->headev);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&px->conns, c, link);
	px->nconns++;
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	c->state = CS_HEAD;
	head_timer(c);		/* the first head, from the connection */
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("%s: new connection, sandbox %s", c->peer, c->have_sandbox ? c->sandbox : "?");
}

/* ---- configuration, signals, main ---- */

/*
 * libevent's buffers carry request heads with real credentials: every block it frees
 * (or moves away from in a realloc) is wiped first.
 */
static void *
ev_malloc(size_t n)
{
	return malloc(n);
}

static void
ev_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

static void *
ev_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		ev_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if ((q = malloc(n)) == NULL)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	ev_free(p);
	return q;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: credproxy [-c FILE] [--listen ADDR:PORT] [--sandbox-id ID]\n"
	    "                 [--allow-private] [--upstream-ca FILE] [--allow-host HOST]...\n"
	    "                 [--broker-url URL] [-d] [--help] [--version]\n");
}

/* Applies the command-line overrides to a freshly loaded configuration. */
static int
apply_flags(struct proxy_conf *c, const struct proxy_conf *f, int listen_set)
{
	size_t i;
	int rc;

	if (listen_set) {
		free(c->listen_host);
		if ((c->listen_host = strdup(f->listen_host)) == NULL)
			return CB_ERR_NOMEM;
		c->listen_port = f->listen_port;
	}
#define OVR(field) do {							\
	if (f->field != NULL) {						\
		free(c->field);						\
		if ((c->field = strdup(f->field)) == NULL)		\
			return CB_ERR_NOMEM;				\
	}								\
} while (0)
	OVR(broker_url);
	OVR(sandbox_id);
	OVR(upstream_ca);
#undef OVR
	if (f->allow_private)
		c->allow_private = 1;
	for (i = 0; i < f->nallow; i++)
		if ((rc = proxy_conf_add_allow(c, f->allow_hosts[i])) != 0)
			return rc;
	return 0;
}

static int listen_flag_set;

static int
load_conf(struct proxy *px, struct proxy_conf **out)
{
	struct proxy_conf *c = NULL;
	char why[512];
	int rc;

	*out = NULL;
	why[0] = '\0';
	if ((rc = proxy_conf_new(&c)) != 0)
		return rc;
	if (px->conf_path != NULL &&
	    (rc = proxy_conf_load(c, px->conf_path, why, sizeof(why))) != 0) {
		log_warnx("%s: %s", px->conf_path, why);
		proxy_conf_free(c);
		return rc;
	}
	if ((rc = apply_flags(c, px->flags, listen_flag_set)) != 0) {
		proxy_conf_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void
hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;
	struct proxy_conf *c;

	if (load_conf(px, &c) != 0) {
		log_warnx("reload failed: keeping the running configuration");
		return;
	}
	/* only the sandbox map and the allowlist change without a restart */
	free(px->conf->sandbox_id);
	px->conf->sandbox_id = c->sandbox_id;
	c->sandbox_id = NULL;
#define SWAP(a, b) do { __typeof__(a) t_ = (a); (a) = (b); (b) = t_; } while (0)
	SWAP(px->conf->cidrs, c->cidrs);
	SWAP(px->conf->ncidrs, c->ncidrs);
	SWAP(px->conf->allow_hosts, c->allow_hosts);
	SWAP(px->conf->nallow, c->nallow);
#undef SWAP
	proxy_conf_free(c);
	log_info("reloaded: %zu sandbox range(s), %zu allowed host(s)", px->conf->ncidrs,
	    px->conf->nallow);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	log_warnx("drain timed out with %zu connection(s) open", px->nconns);
	event_base_loopexit(px->base, NULL);
}

static void
term_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;
	struct cconn *c, *next;
	struct timeval tv = { DRAIN_MAX_S, 0 };

	if (px->draining)
		return;
	log_info("signal %d: draining %zu connection(s)", (int)sig, px->nconns);
	px->draining = 1;
	if (px->lis != NULL) {
		evconnlistener_free(px->lis);
		px->lis = NULL;
	}
	/* idle connections go now; busy ones finish their request, then close */
	for (c = LIST_FIRST(&px->conns); c != NULL; c = next) {
		next = LIST_NEXT(c, link);
		if (c->state == CS_HEAD && c->job == NULL &&
		    evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
			conn_close(c);
	}
	if (px->nconns == 0) {
		event_base_loopexit(px->base, NULL);
		return;
	}
	px->ev_drain = evtimer_new(px->base, drain_timeout_cb, px);
	if (px->ev_drain != NULL)
		evtimer_add(px->ev_drain, &tv);
}

static SSL_CTX *
make_upstream_ctx(const char *cafile)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/*
	 * Upstream answers may echo the real credential: no plaintext stays in a read
	 * buffer. A close without close_notify is an end of stream, as curl and browsers
	 * take it (many servers close so): a close-delimited body ends there, and a body
	 * with a length or chunks that stops short is still a truncation (up_event_cb).
	 * OpenSSL 3 would otherwise report it as an error, not as the EOF libevent's
	 * dirty-shutdown setting expects.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if ((cafile != NULL ? SSL_CTX_load_verify_locations(ctx, cafile, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx)) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	if (px->lis != NULL)
		evconnlistener_enable(px->lis);
}

/* accept() failed: out of descriptors pauses accepting for a moment instead of spinning. */
static void
accept_error_cb(struct evconnlistener *lis, void *arg)
{
	struct proxy *px = arg;
	struct timeval tv = { 0, 200000 };
	unsigned long long quiet;
	int e = EVUTIL_SOCKET_ERROR();

	if (util_ratelimit_ok(&px->rl_accept, REFUSAL_LOG_US, &quiet)) {
		errno = e;
		log_warn("accept (%llu failures not logged since the last)", quiet);
	}
	if ((e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) &&
	    px->ev_resume != NULL) {
		evconnlistener_disable(lis);
		evtimer_add(px->ev_resume, &tv);
	}
}

/*
 * Each sandbox connection may hold an upstream one: make room for both, beside the
 * descriptors of the broker connections (a worker's and a loop channel's per resolve
 * worker, with libcurl's wake-up pairs), the listener, the log and the event loop. When
 * the hard limit is lower, fewer sandbox connections are accepted (conns_max): sandbox
 * connections that take every descriptor would leave none to reach the broker or an
 * upstream with, for every sandbox, and make accept() fail for the others. 0 when not
 * even one fits.
 */
static size_t
raise_nofile(const struct proxy_conf *conf)
{
	unsigned long long reserve = 32 + 6 * (unsigned long long)conf->resolve_workers;
	unsigned long long want = (unsigned long long)CONNS_MAX * 2 + reserve;
	unsigned long long have = util_raise_nofile(want);

	if (have >= want)
		return CONNS_MAX;
	if (have < reserve + 2)
		return 0;
	log_warnx("only %llu file descriptors: at most %llu connections (not %d)", have,
	    (have - reserve) / 2, CONNS_MAX);
	return (size_t)((have - reserve) / 2);
}

static int
listen_on(struct proxy *px)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%d", px->conf->listen_port);
	if ((rc = getaddrinfo(px->conf->listen_host, port, &hints, &res)) != 0) {
		log_warnx("listen %s: %s", px->conf->listen_host, gai_strerror(rc));
		return CB_ERR_CONFIG;
	}
	px->lis = evconnlistener_new_bind(px->base, accept_cb, px,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 128,
	    res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (px->lis == NULL) {
		log_warn("listen %s:%d", px->conf->listen_host, px->conf->listen_port);
		return CB_ERR_IO;
	}
	evconnlistener_set_error_cb(px->lis, accept_error_cb);
	if ((px->ev_resume = evtimer_new(px->base, resume_cb, px)) == NULL)
		return CB_ERR_NOMEM;
	return 0;
}

/*
 * After a privilege drop: libcurl reads the broker client certificate, its key and the
 * broker CA at every new connection to the broker, so the user must be able to read
 * them (refused at start-up, not at the first resolve). The configuration file is read
 * again on SIGHUP: when the user cannot read it, reloads fail and keep the running map.
 */
static int
check_user_files(const struct proxy *px)
{
	const char *need[3];
	size_t i;
	int fd;

	need[0] = px->conf->cert;
	need[1] = px->conf->key;
	need[2] = px->conf->broker_ca;
	for (i = 0; i < UTIL_ARRAY_LEN(need); i++) {
		if ((fd = open(need[i], O_RDONLY | O_CLOEXEC)) == -1) {
			log_warn("%s cannot be read as user %s (the broker connection reads it "
			    "at every reconnect): make it readable by that user", need[i],
			    px->conf->user);
			return CB_ERR_PERM;
		}
		close(fd);
	}
	if (px->conf_path != NULL) {
		if ((fd = open(px->conf_path, O_RDONLY | O_CLOEXEC)) == -1)
			log_warn("%s cannot be read as user %s: SIGHUP reloads will fail and keep "
			    "the running configuration", px->conf_path, px->conf->user);
		else
			close(fd);
	}
	log_info("running as %s", px->conf->user);
	return 0;
}

int main(int argc, char **argv);

/*
 * The event loop. epoll's changelist folds the add/delete pairs a request makes on a
 * socket within one loop turn into at most one epoll_ctl (D9b: 8 calls per proxied
 * request). Its caveat, fds that are dup()s of one another, does not apply: credproxy
 * never dups a socket.
 */
static struct event_base *
proxy_base_new(void)
{
	struct event_config *cfg;
	struct event_base *base;

	if ((cfg = event_config_new()) == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

/* Before the loop exists: only the command line's settings to free. */
static int
early_exit(struct proxy *px, int rc)
{
	proxy_conf_free(px->conf);
	proxy_conf_free(px->flags);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "sandbox-id", required_argument, NULL, 's' },
		{ "allow-private", no_argument, NULL, 'P' },
		{ "upstream-ca", required_argument, NULL, 'u' },
		{ "allow-host", required_argument, NULL, 'a' },
		{ "broker-url", required_argument, NULL, 'b' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct proxy px;
	struct cbc_opts o;
	struct cconn *c;
	char host[256];
	int ch, port, rc, level = LOG_LVL_INFO, ret = 1;

	memset(&px, 0, sizeof(px));
	LIST_INIT(&px.conns);
	event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
	log_init("credproxy", level);
	/* the proxy holds real credentials in memory while it forwards them: never dump core */
	if (priv_no_core() != 0)
		fatal("cannot disable core dumps");
	if (proxy_conf_new(&px.flags) != 0)
		fatalx("out of memory");
	while ((ch = getopt_long(argc, argv, "c:dhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			px.conf_path = optarg;
			break;
		case 'l':
			if (proxy_split_hostport(optarg, host, sizeof(host), &port) != 0) {
				fprintf(stderr, "credproxy: --listen ADDR:PORT\n");
				return early_exit(&px, 2);
			}
			free(px.flags->listen_host);
			if ((px.flags->listen_host = strdup(host)) == NULL)
				fatalx("out of memory");
			px.flags->listen_port = port;
			listen_flag_set = 1;
			break;
		case 's':
			if (*optarg == '\0' || strlen(optarg) >= PROXY_SANDBOX_MAX) {
				fprintf(stderr, "credproxy: bad --sandbox-id\n");
				return early_exit(&px, 2);
			}
			free(px.flags->sandbox_id);
			px.flags->sandbox_id = strdup(optarg);
			break;
		case 'P':
			px.flags->allow_private = 1;
			break;
		case 'u':
			free(px.flags->upstream_ca);
			px.flags->upstream_ca = strdup(optarg);
			break;
		case 'a':
			if (proxy_conf_add_allow(px.flags, optarg) != 0) {
				fprintf(stderr, "credproxy: bad --allow-host\n");
				return early_exit(&px, 2);
			}
			break;
		case 'b':
			free(px.flags->broker_url);
			px.flags->broker_url = strdup(optarg);
			break;
		case 'd':
			level = LOG_LVL_DEBUG;
			log_init("credproxy", level);
			break;
		case 'h':
			usage(stdout);
			return early_exit(&px, 0);
		case 'V':
			printf("credproxy %s\n", PACKAGE_VERSION);
			return early_exit(&px, 0);
		default:
			usage(stderr);
			return early_exit(&px, 2);
		}
	}
	if (optind != argc) {
		usage(stderr);
		return early_exit(&px, 2);
	}
	if (load_conf(&px, &px.conf) != 0)
		return early_exit(&px, 1);
	if (px.conf->broker_url == NULL || px.conf->cert == NULL || px.conf->key == NULL ||
	    px.conf->broker_ca == NULL) {
		log_warnx("broker_url, broker_ca, cert and key are required (-c FILE)");
		goto out;
	}
	if (px.conf->sandbox_ca == NULL || px.conf->sandbox_ca_key == NULL) {
		log_warnx("sandbox_ca and sandbox_ca_key are required");
		goto out;
	}
	if (px.conf->sandbox_id == NULL && px.conf->ncidrs == 0)
		log_warnx("no --sandbox-id and no sandbox map: every connection will be refused");
	signal(SIGPIPE, SIG_IGN);
	if ((px.conns_max = raise_nofile(px.conf)) == 0) {
		log_warnx("too few file descriptors (RLIMIT_NOFILE) for %d resolve workers: "
		    "raise the limit or lower resolve_workers", px.conf->resolve_workers);
		goto out;
	}
	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads failed");
	if ((rc = proxy_certs_new(px.conf->sandbox_ca, px.conf->sandbox_ca_key, &px.certs)) != 0)
		goto out;
	if ((px.up_ctx = make_upstream_ctx(px.conf->upstream_ca)) == NULL) {
		log_warnx("cannot load the upstream CA bundle %s",
		    px.conf->upstream_ca ? px.conf->upstream_ca : "(system)");
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.url = px.conf->broker_url;
	o.cert = px.conf->cert;
	o.key = px.conf->key;
	o.cacert = px.conf->broker_ca;
	o.timeout_ms = 10000;
	if ((px.base = proxy_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (listen_on(&px) != 0)
		goto out;
	/* Keys read (sandbox CA, upstream CAs), map loaded, socket bound: drop root. */
	if (px.conf->user != NULL && geteuid() == 0) {
		if (priv_drop(px.conf->user) != 0) {
			log_warnx("cannot drop privileges to %s", px.conf->user);
			goto out;
		}
		if (check_user_files(&px) != 0)
			goto out;
	}
	if ((rc = proxy_pool_new(&o, px.conf->resolve_workers, px.base, &px.pool)) != 0)
		goto out;
	px.ev_hup = evsignal_new(px.base, SIGHUP, hup_cb, &px);
	px.ev_term = evsignal_new(px.base, SIGTERM, term_cb, &px);
	px.ev_int = evsignal_new(px.base, SIGINT, term_cb, &px);
	if (px.ev_hup == NULL || px.ev_term == NULL || px.ev_int == NULL ||
	    evsignal_add(px.ev_hup, NULL) != 0 || evsignal_add(px.ev_term, NULL) != 0 ||
	    evsignal_add(px.ev_int, NULL) != 0)
		fatalx("cannot install signal handlers");
	/* Serving from here: every thread (event loop, resolve workers) gets the filter. */
	if (px.conf->seccomp && priv_seccomp("proxy") != 0) {
		log_warnx("refusing to serve without the seccomp filter ('seccomp no' turns it off)");
		goto out;
	}
	log_info("listening on %s:%d, broker %s, %s", px.conf->listen_host,
	    px.conf->listen_port, px.conf->broker_url, px.conf->sandbox_id != NULL ?
	    "sidecar mode" : "sandbox map");
	event_base_dispatch(px.base);
	log_info("exiting");
	ret = 0;
 out:
	/* the workers finish (their done() only activates events), then connections go */
	proxy_pool_free(px.pool);
	px.pool = NULL;
	if (px.base != NULL)
		event_base_loop(px.base, EVLOOP_NONBLOCK);
	while ((c = LIST_FIRST(&px.conns)) != NULL) {
		if (c->job != NULL) {
			proxy_job_free(c->job);
			c->job = NULL;
		}
		conn_close(c);
		conn_destroy(c);
	}
	if (px.lis != NULL)
		evconnlistener_free(px.lis);
	if (px.ev_hup != NULL)
		event_free(px.ev_hup);
	if (px.ev_term != NULL)
		event_free(px.ev_term);
	if (px.ev_int != NULL)
		event_free(px.ev_int);
	if (px.ev_drain != NULL)
		event_free(px.ev_drain);
	if (px.ev_resume != NULL)
		event_free(px.ev_resume);
	if (px.base != NULL)
		event_base_free(px.base);
	SSL_CTX_free(px.up_ctx);
	proxy_certs_free(px.certs);
	proxy_conf_free(px.conf);
	proxy_conf_free(px.flags);
	return ret;
}
