/*
 * server.c: the HTTPS server: libmicrohttpd 0.9.75 over GnuTLS.
 *
 * - TLS 1.2 and 1.3 only. The server asks for a client certificate (HTTPS_MEM_TRUST)
 *   but libmicrohttpd does not enforce it: on the first request of each connection,
 *   before any body is read, we verify the peer with GnuTLS (present, chains to the
 *   client CA, valid now, clientAuth key purpose) and map its SAN URI (else CN) to a
 *   configured identity. The result is cached in the connection's context: one
 *   verification per connection. Refusals are HTTP answers (JSON, then the connection
 *   is closed): 401 client_certificate_required / invalid_client_certificate, 403
 *   unknown_identity. An HTTP error tells an operator what is wrong; a handshake
 *   failure would not.
 * - Content-Length together with Transfer-Encoding (or two Content-Lengths) is 400
 *   ambiguous_length; a body over max_body is 413 body_too_large (announced length
 *   checked up front, streamed length counted).
 * - A connection must bring its first request head (TLS handshake included) within
 *   SERVER_HEAD_FACTOR x conn_timeout of being accepted, else it is shut down: the idle
 *   timeout alone let a client without a certificate that sends a byte now and then
 *   hold a connection for ever (and conn_limit of them every connection).
 * - Calls are answered asynchronously: api_dispatch() may reply later from the commit
 *   thread. The connection is suspended until the reply arrives, then resumed, and the
 *   response is queued on that later handler call (never on the first call, which
 *   would make libmicrohttpd close the connection after every request).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "api.h"
#include "conf.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "util.h"

#define SERVER_PRIORITIES	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define SERVER_PEM_MAX		(256 * 1024)
/*
 * libmicrohttpd 0.9.75 zeroes a connection's whole pool twice per request (reset
 * between keep-alive requests): 64 KiB cost ~100 k instructions per resolve. A request
 * head is well under 8 KiB and bodies stream through the read buffer in pieces.
 */
#define SERVER_CONN_MEMORY	(16 * 1024)
#define SERVER_ID_MAX		256
#define SERVER_DRAIN_S		30
#define SERVER_HEAD_FACTOR	2	/* the first head's deadline, in conn_timeouts */
#define SERVER_DUMP_STACK	4096	/* answers up to this size are serialised once */
/*
 * Descriptors kept free of connections: the database (writer, checkpointer, purge, one
 * reader per server thread opened at its first read: a database file and its WAL each),
 * each server thread's epoll and wake-up descriptors, the log, the lock.
 */
#define SERVER_FD_RESERVE(threads)	(32 + 4 * (threads))

struct server {
	struct broker *b;
	struct MHD_Daemon *d;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int inflight;		/* dispatched requests not yet completed */
	int stopping;		/* server_stop has begun: dispatch no more (under lock) */
	/* Between server_prepare and server_run: what was read and bound with privileges. */
	int lfd;		/* the bound listening socket, -1 once MHD owns it */
	/* Connections still waiting for their first head, oldest first (under heads_lock). */
	pthread_mutex_t heads_lock;
	pthread_cond_t heads_cond;
	struct server_conn *heads, *heads_tail;
	pthread_t sweeper;
	int sweeping;		/* the sweeper runs; cleared to stop it (under heads_lock) */
	unsigned int flags;
	char *cert, *key, *ca;	/* PEM; key wiped after MHD_start_daemon */
	size_t certlen, keylen, calen;
};

/* Per connection (MHD_OPTION_NOTIFY_CONNECTION). */
struct server_conn {
	struct server_conn *prev, *next;	/* in s->heads while pending */
	int pending;			/* no head yet: in s->heads */
	int fd;
	int64_t start_us;		/* accepted (monotonic) */
	int checked;			/* the certificate was verified (once) */
	const struct identity *who;	/* NULL when refused */
	int refuse_status;
	const char *refuse_code;
	char peer[INET6_ADDRSTRLEN + 8];
	char id[SERVER_ID_MAX];		/* certificate identity, for logs ("-" when none) */
};

/* Per request (*con_cls). */
struct server_req {
	struct server *s;
	struct MHD_Connection *c;
	struct server_conn *conn;
	pthread_mutex_t lock;
	int dispatched;
	int replied;
	int suspended;
	int too_large;
	long long announced;		/* Content-Length, checked against max_body; or -1 */
	unsigned int status;
	/* The reply, as handed over by server_reply; the response is built on our thread. */
	json_t *rbody;
	int rsensitive;
	char *rraw;			/* a raw answer (transferred from the call) */
	size_t rrawlen;
	const char *rctype;
	char *body;			/* the raw request body, wiped when freed */
	size_t len, cap;
	char *path;
	struct api_call call;
};

/* ---- the first head's deadline ------------------------------------------------------ */

/* Takes cc out of the pending list (under heads_lock). */
static void
server_head_unlink(struct server *s, struct server_conn *cc)
{
	if (!cc->pending)
		return;
	if (cc->prev != NULL)
		cc->prev->next = cc->next;
	else
		s->heads = cc->next;
	if (cc->next != NULL)
		cc->next->prev = cc->prev;
	else
		s->heads_tail = cc->prev;
	cc->prev = cc->next = NULL;
	__atomic_store_n(&cc->pending, 0, __ATOMIC_RELEASE);
}

/*
 * A head arrived (or the connection closes): no deadline for cc any more. Every request
 * comes here; only a connection's first takes the lock shared by the server threads.
 */
static void
server_head_done(struct server *s, struct server_conn *cc)
{
	if (!__atomic_load_n(&cc->pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&s->heads_lock);
	server_head_unlink(s, cc);
	pthread_mutex_unlock(&s->heads_lock);
}

/* ---- responses ------------------------------------------------------------------- */

static void
server_wipe_buf(void *p)
{
	util_wipe_str(p);
}

static void
server_free_buf(void *p)
{
	free(p);
}

/* Wipes every string of a JSON value in place (a sensitive body), bounded depth. */
static void
server_json_wipe(json_t *v, int depth)
{
	const char *k;
	json_t *item;
	size_t i;

	if (v == NULL || depth > 16)
		return;
	if (json_is_string(v))
		explicit_bzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
	else if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			server_json_wipe(item, depth + 1);
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, item)
			server_json_wipe(item, depth + 1);
	}
}

/*
 * body as compact JSON into buf (see json_write_compact): our writer, ~10x cheaper than
 * json_dumpb (~31 k instructions for a mint's answer, ~15 k for a resolve's), which
 * remains for what ours does not write (a real number). 0 for no body.
 */
static size_t
server_dump(json_t *body, char *buf, size_t cap)
{
	size_t len;

	if (body == NULL)
		return 0;
	if ((len = json_write_compact(body, buf, cap)) == 0)
		len = json_dumpb(body, buf, cap, JSON_COMPACT);
	return len;
}

/*
 * A response with a JSON body (or raw text when raw != NULL, transferred); every
 * answer is no-store. Returns NULL on allocation failure.
 */
static struct MHD_Response *
server_response(json_t *body, int sensitive, char *raw, size_t rawlen, const char *ctype)
{
	struct MHD_Response *r;
	char *buf;
	size_t len;

	if (raw != NULL) {
		buf = raw;
		len = rawlen;
	} else {
		/*
		 * Written into a stack buffer (the usual answer fits: one pass), else
		 * measured and written into a buffer of that size; never json_dumps,
		 * which grows its buffer by realloc and would leave unwiped copies of a
		 * secret value behind in freed memory. The stack copy is wiped.
		 */
		char stackbuf[SERVER_DUMP_STACK];

		len = server_dump(body, stackbuf, sizeof(stackbuf));
		if (len <= sizeof(stackbuf)) {
			if ((buf = malloc(len + 1)) != NULL) {
				memcpy(buf, stackbuf, len);
				buf[len] = '\0';
			}
			explicit_bzero(stackbuf, len);
			if (buf == NULL)
				return NULL;
		} else {
			explicit_bzero(stackbuf, sizeof(stackbuf));
			if ((buf = malloc(len + 1)) == NULL)
				return NULL;
			if (server_dump(body, buf, len) != len) {
				util_wipe_free(buf, len + 1);
				return NULL;
			}
			buf[len] = '\0';
		}
		ctype = "application/json";
	}
	r = MHD_create_response_from_buffer_with_free_callback(len, buf,
	    sensitive ? server_wipe_buf : server_free_buf);
	if (r == NULL) {
		if (sensitive)
			util_wipe_str(buf);
		else
			free(buf);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	return r;
}

static void
server_log(struct server_req *q, const char *route, unsigned int status)
{
	const char *gid = q->call.grant_id[0] != '\0' ? q->call.grant_id : "-";

	log_request(__func__, q->conn->peer, q->conn->id, route != NULL ? route : "other",
	    status, gid, (long long)(util_mono_us() - q->call.start_us));
	metrics_request(q->s->b->metrics, route, (int)status);
}

/* Answers {"error": code} right now (first handler call: the connection closes after). */
static enum MHD_Result
server_refuse_now(struct server_req *q, unsigned int status, const char *code)
{
	struct MHD_Response *r;
	json_t *body;
	enum MHD_Result ret;

	body = json_error_body(code, NULL);
	r = server_response(body, 0, NULL, 0, NULL);
	json_decref(body);
	server_log(q, NULL, status);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(q->c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Drops a reply that was handed over but not sent (wiped when sensitive). */
static void
server_reply_drop(struct server_req *q)
{
	if (q->rsensitive)
		server_json_wipe(q->rbody, 0);
	json_decref(q->rbody);
	q->rbody = NULL;
	if (q->rsensitive)
		util_wipe_free(q->rraw, q->rrawlen);
	else
		free(q->rraw);
	q->rraw = NULL;
	q->rsensitive = 0;
}

/*
 * On the daemon thread, once replied: builds the response from what server_reply
 * handed over, logs the request and queues the answer.
 */
static enum MHD_Result
server_queue(struct server_req *q)
{
	struct MHD_Response *r;
	unsigned int status = q->status;
	enum MHD_Result ret;

	r = server_response(q->rbody, q->rsensitive, q->rraw, q->rrawlen, q->rctype);
	q->rraw = NULL;	/* transferred, or freed by server_response on failure */
	server_reply_drop(q);
	if (r == NULL) {
		json_t *e = json_error_body("internal_error", NULL);

		status = 500;
		r = server_response(e, 0, NULL, 0, NULL);
		json_decref(e);
		if (r == NULL) {
			server_log(q, q->call.route, status);
			return MHD_NO;
		}
	}
	server_log(q, q->call.route, status);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED && q->call.allow[0] != '\0')
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, q->call.allow);
	ret = MHD_queue_response(q->c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * api_call.reply: may run on any thread (the commit thread), exactly once per call.
 * It only hands the answer over and resumes the connection: serialising, building
 * the response and logging happen on the daemon's threads, not on the one thread
 * every durable request goes through.
 */
static void
server_reply(struct api_call *call, int status, json_t *body, int sensitive)
{
	struct server_req *q = call->server_ctx;

	pthread_mutex_lock(&q->lock);
	q->rbody = body;	/* transferred */
	q->rsensitive = sensitive;
	q->rraw = call->raw_body;	/* transferred */
	q->rrawlen = call->raw_len;
	q->rctype = call->content_type;
	call->raw_body = NULL;
	q->status = (unsigned int)status;
	q->replied = 1;
	if (q->suspended) {
		q->suspended = 0;
		MHD_resume_connection(q->c);
	}
	pthread_mutex_unlock(&q->lock);
	/* q may be gone now: the daemon thread queues and completes it. */
}

/* ---- client certificates ------------------------------------------------------------- */

static void
server_peer(struct MHD_Connection *c, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;
	char addr[INET6_ADDRSTRLEN];

	util_strlcpy(out, "-", outlen);
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		if (inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr)) != NULL)
			snprintf(out, outlen, "%s:%u", addr, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr)) != NULL)
			snprintf(out, outlen, "[%s]:%u", addr, ntohs(in6->sin6_port));
	}
}

/* The identity of a verified certificate: its first SAN URI, else its CN. */
static int
server_cert_identity(gnutls_x509_crt_t crt, char *out, size_t outlen)
{
	char buf[SERVER_ID_MAX], *big;
	size_t size;
	unsigned int critical;
	unsigned int idx;
	int type;

	for (idx = 0; idx < 64; idx++) {
		size = sizeof(buf) - 1;
		type = gnutls_x509_crt_get_subject_alt_name(crt, idx, buf, &size, &critical);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_E_SHORT_MEMORY_BUFFER) {
			/*
			 * Too long for an identity. A long URI is the first URI: refused, never
			 * skipped for the next one (a second reading). size is what it needs.
			 */
			if (size > SERVER_PEM_MAX || (big = malloc(size + 1)) == NULL)
				return CB_ERR_INVAL;
			type = gnutls_x509_crt_get_subject_alt_name(crt, idx, big, &size,
			    &critical);
			free(big);
			if (type < 0 || type == GNUTLS_SAN_URI)
				return CB_ERR_INVAL;
			continue;
		}
		if (type < 0)
			return CB_ERR_INVAL;
		if (type != GNUTLS_SAN_URI)
			continue;
		buf[size] = '\0';
		if (strlen(buf) != size || size == 0)
			return CB_ERR_INVAL;	/* embedded NUL: no second reading */
		util_strlcpy(out, buf, outlen);
		return 0;
	}
	size = sizeof(buf) - 1;
	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf,
	    &size) != 0)
		return CB_ERR_NOTFOUND;
	buf[size < sizeof(buf) ? size : sizeof(buf) - 1] = '\0';
	if (strlen(buf) != size || size == 0)
		return CB_ERR_INVAL;
	util_strlcpy(out, buf, outlen);
	return 0;
}

/* Verifies the peer once per connection and caches the outcome in cc. */
static void
server_check_peer(struct server *s, struct MHD_Connection *c, struct server_conn *cc)
{
	const union MHD_ConnectionInfo *ci;
	gnutls_session_t sess;
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt = NULL;
	gnutls_typed_vdata_st purpose;
	gnutls_datum_t txt = { NULL, 0 };
	unsigned int ncerts = 0, status = 0;
	char id[SERVER_ID_MAX];
	int rc;

	cc->checked = 1;
	cc->who = NULL;
	cc->refuse_status = MHD_HTTP_UNAUTHORIZED;
	cc->refuse_code = "invalid_client_certificate";
	util_strlcpy(cc->id, "-", sizeof(cc->id));

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || (sess = (gnutls_session_t)ci->tls_session) == NULL)
		return;
	certs = gnutls_certificate_get_peers(sess, &ncerts);
	if (certs == NULL || ncerts == 0) {
		cc->refuse_code = "client_certificate_required";
		log_info("peer=%s: no client certificate", cc->peer);
		return;
	}
	memset(&purpose, 0, sizeof(purpose));
	purpose.type = GNUTLS_DT_KEY_PURPOSE_OID;
	purpose.data = (void *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT;
	rc = gnutls_certificate_verify_peers(sess, &purpose, 1, &status);
	if (rc != 0 || status != 0) {
		if (rc == 0 && gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &txt, 0) == 0) {
			log_info("peer=%s: client certificate refused: %s", cc->peer,
			    (const char *)txt.data);
			gnutls_free(txt.data);
		} else
			log_info("peer=%s: client certificate refused: %s", cc->peer,
			    gnutls_strerror(rc));
		return;
	}
	if (gnutls_x509_crt_init(&crt) != 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) != 0 ||
	    server_cert_identity(crt, id, sizeof(id)) != 0) {
		gnutls_x509_crt_deinit(crt);
		log_info("peer=%s: client certificate names no usable identity", cc->peer);
		return;
	}
	gnutls_x509_crt_deinit(crt);
	util_strlcpy(cc->id, id, sizeof(cc->id));
	if ((cc->who = conf_find_identity(s->b->conf, id)) == NULL ||
	    cc->who->role == ROLE_NONE) {
		cc->who = NULL;
		cc->refuse_status = MHD_HTTP_FORBIDDEN;
		cc->refuse_code = "unknown_identity";
		log_info("peer=%s identity=%s: unknown identity", cc->peer, cc->id);
	}
}

/* ---- requests ------------------------------------------------------------------------- */

struct server_hdrs {
	int cl, te, host;
};

static enum MHD_Result
server_count_hdr(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct server_hdrs *h = cls;

	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		h->cl++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		h->te++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		h->host++;
	return MHD_YES;
}

/*
 * The query's parameters: after and limit (GET /v1/audit) are the only ones, each once
 * and with a value.
 */
struct server_args {
	int after, limit, other;
};

static enum MHD_Result
server_count_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
    const char *value, size_t value_size)
{
	struct server_args *a = cls;

	(void)kind;
	/*
	 * "?after": a name without "="; a %00 in a name or a value: "after%00x=5" would be
	 * counted as after yet not found by its name, "after=1%00x" read as 1.
	 */
	if (value == NULL || strlen(key) != key_size || strlen(value) != value_size)
		a->other++;
	else if (strcmp(key, "after") == 0)
		a->after++;
	else if (strcmp(key, "limit") == 0)
		a->limit++;
	else
		a->other++;
	return MHD_YES;
}

static void
server_req_free(struct server_req *q)
{
	if (q == NULL)
		return;
	server_reply_drop(q);
	util_wipe_free(q->body, q->cap);
	if (q->call.body != NULL) {
		server_json_wipe(q->call.body, 0);
		json_decref(q->call.body);
	}
	util_wipe_free(q->call.raw_body, q->call.raw_len);	/* may be a resolve's answer */
	free(q->path);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Appends upload data, counting past max_body without storing it. */
static void
server_append(struct server_req *q, const char *data, size_t n, size_t max)
{
	size_t ncap;
	char *nb;

	if (q->too_large || n == 0)
		return;
	if (n > max || q->len > max - n) {
		q->too_large = 1;
		return;
	}
	if (q->len + n + 1 > q->cap) {
		/*
		 * The announced length (checked against max) when there is one: one
		 * allocation of the right size (a 1 KiB one made malloc consolidate its
		 * fast bins on every request).
		 */
		ncap = q->cap != 0 ? q->cap : q->announced > 0 ? (size_t)q->announced + 1 : 1024;
		while (ncap < q->len + n + 1)
			ncap *= 2;
		if ((nb = malloc(ncap)) == NULL) {
			q->too_large = 1;
			return;
		}
		if (q->body != NULL)
			memcpy(nb, q->body, q->len);
		util_wipe_free(q->body, q->cap);
		q->body = nb;
		q->cap = ncap;
	}
	memcpy(q->body + q->len, data, n);
	q->len += n;
	q->body[q->len] = '\0';
}

/* The whole request is here: build the call and dispatch it. */
static enum MHD_Result
server_dispatch(struct server_req *q, const char *method)
{
	struct server *s = q->s;
	struct api_call *call = &q->call;
	struct server_args args;
	const char *code = NULL;
	enum MHD_Result ret;

	/*
	 * Once server_stop has begun nothing new is dispatched (a kept-alive connection
	 * may still bring a request): after its drain saw nothing in flight, no connection
	 * can be suspended any more, which MHD_stop_daemon would abort on.
	 */
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return server_refuse_now(q, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable");
	}
	s->inflight++;
	pthread_mutex_unlock(&s->lock);
	q->dispatched = 1;

	call->b = s->b;
	call->who = q->conn->who;
	call->peer = q->conn->peer;
	call->method = method;
	call->path = q->path;
	call->query_after = MHD_lookup_connection_value(q->c, MHD_GET_ARGUMENT_KIND, "after");
	call->query_limit = MHD_lookup_connection_value(q->c, MHD_GET_ARGUMENT_KIND, "limit");
	if (strcmp(method, "GET") == 0) {
		/* ?after=1&after=2 would be read as the first: another parser may take the last. */
		memset(&args, 0, sizeof(args));
		MHD_get_connection_values_n(q->c, MHD_GET_ARGUMENT_KIND, server_count_arg,
		    &args);
		call->query_bad = args.after > 1 || args.limit > 1 || args.other > 0;
	}
	call->reply = server_reply;
	call->server_ctx = q;
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		if (q->len == 0)
			call->body_error = JSON_E_BAD_JSON;
		else if (json_parse_object(q->body, q->len, &call->body, &code) != 0)
			call->body_error = code != NULL ? code : JSON_E_BAD_JSON;
	}
	/* The raw bytes may hold a secret value: keep only the parsed form. */
	util_wipe_free(q->body, q->cap);
	q->body = NULL;
	q->len = q->cap = 0;

	api_dispatch(call);

	pthread_mutex_lock(&q->lock);
	if (q->replied) {
		ret = server_queue(q);
	} else {
		q->suspended = 1;
		MHD_suspend_connection(q->c);
		ret = MHD_YES;
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static enum MHD_Result
server_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct server_req *q = *con_cls;
	const union MHD_ConnectionInfo *ci;
	struct server_hdrs h = { 0, 0, 0 };
	const char *cl, *te;
	long long announced;
	enum MHD_Result ret;

	if (q == NULL) {
		/* First call: headers only. Authenticate before reading any body. */
		if ((q = calloc(1, sizeof(*q))) == NULL)
			return MHD_NO;
		if (pthread_mutex_init(&q->lock, NULL) != 0) {
			free(q);
			return MHD_NO;
		}
		q->s = s;
		q->c = c;
		q->call.start_us = util_mono_us();
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		q->conn = ci != NULL ? ci->socket_context : NULL;
		*con_cls = q;
		if (q->conn == NULL || (q->path = strdup(url)) == NULL)
			return MHD_NO;
		server_head_done(s, q->conn);
		if (!q->conn->checked) {
			server_peer(c, q->conn->peer, sizeof(q->conn->peer));
			server_check_peer(s, c, q->conn);
		}
		if (q->conn->who == NULL)
			return server_refuse_now(q, (unsigned int)q->conn->refuse_status,
			    q->conn->refuse_code);
		MHD_get_connection_values(c, MHD_HEADER_KIND, server_count_hdr, &h);
		if (h.cl > 1 || (h.cl > 0 && h.te > 0) || h.te > 1)
			return server_refuse_now(q, MHD_HTTP_BAD_REQUEST, "ambiguous_length");
		/*
		 * Only "chunked" is a transfer coding libmicrohttpd decodes; with any other
		 * it would wait for the end of the connection (RFC 9112 6.1: 501).
		 */
		te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_TRANSFER_ENCODING);
		if (te != NULL && strcasecmp(te, "chunked") != 0)
			return server_refuse_now(q, MHD_HTTP_NOT_IMPLEMENTED,
			    "unsupported_transfer_encoding");
		/* RFC 9112 3.2: an HTTP/1.1 request without Host is refused (0.9.75 lets it by). */
		if (h.host != 1 && (h.host > 1 || strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
			return server_refuse_now(q, MHD_HTTP_BAD_REQUEST, "bad_host_header");
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl != NULL && (util_strtoll(cl, 0, INT64_MAX, &announced) != 0 ||
		    (unsigned long long)announced > s->b->conf->max_body))
			return server_refuse_now(q, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large");
		q->announced = cl != NULL ? announced : -1;
		return MHD_YES;
	}
	if (q->dispatched) {
		/* Resumed: the reply has arrived. */
		pthread_mutex_lock(&q->lock);
		if (!q->replied) {
			pthread_mutex_unlock(&q->lock);
			return MHD_YES;
		}
		ret = server_queue(q);
		pthread_mutex_unlock(&q->lock);
		return ret;
	}
	if (*upload_data_size != 0) {
		server_append(q, upload_data, *upload_data_size, s->b->conf->max_body);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->too_large)
		return server_refuse_now(q, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large");
	return server_dispatch(q, method);
}

static void
server_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct server *s = cls;
	struct server_req *q = *con_cls;

	(void)c;
	(void)toe;
	if (q == NULL)
		return;
	*con_cls = NULL;
	if (q->dispatched) {
		pthread_mutex_lock(&s->lock);
		if (--s->inflight == 0)
			pthread_cond_broadcast(&s->idle);
		pthread_mutex_unlock(&s->lock);
	}
	server_req_free(q);
}

/*
 * Every connection is pending from its start to its first head. libmicrohttpd notifies
 * the close before it closes the socket: the sweeper, which shuts down a pending
 * connection's socket under heads_lock, never touches a descriptor already reused.
 */
static void
server_notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct server *s = cls;
	const union MHD_ConnectionInfo *ci;
	struct server_conn *cc;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((cc = calloc(1, sizeof(*cc))) == NULL)
			return;
		*socket_context = cc;
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci == NULL)
			return;
		cc->fd = ci->connect_fd;
		cc->start_us = util_mono_us();
		server_peer(c, cc->peer, sizeof(cc->peer));
		pthread_mutex_lock(&s->heads_lock);
		__atomic_store_n(&cc->pending, 1, __ATOMIC_RELEASE);
		cc->prev = s->heads_tail;
		if (s->heads_tail != NULL)
			s->heads_tail->next = cc;
		else
			s->heads = cc;
		s->heads_tail = cc;
		pthread_mutex_unlock(&s->heads_lock);
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if ((cc = *socket_context) != NULL)
			server_head_done(s, cc);
		free(cc);
		*socket_context = NULL;
	}
}

/* Closes connections without a head past their deadline, once a second. */
static void *
server_sweep(void *arg)
{
	struct server *s = arg;
	struct server_conn *cc;
	struct timespec ts;
	int64_t limit_us = (int64_t)s->b->conf->conn_timeout_s * SERVER_HEAD_FACTOR * 1000000;
	char first[sizeof(cc->peer)];
	int n;

	pthread_mutex_lock(&s->heads_lock);
	while (s->sweeping) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&s->heads_cond, &s->heads_lock, &ts);
		n = 0;
		while ((cc = s->heads) != NULL && util_mono_us() - cc->start_us >= limit_us) {
			if (n++ == 0)
				util_strlcpy(first, cc->peer, sizeof(first));
			(void)shutdown(cc->fd, SHUT_RDWR);
			server_head_unlink(s, cc);
		}
		/* One line a pass, not one a connection: a flood of them would flood the log. */
		if (n > 0) {
			pthread_mutex_unlock(&s->heads_lock);
			log_info("peer=%s: no request head within %lld s: closed (%d such "
			    "connection%s this second)", first, (long long)(limit_us / 1000000), n,
			    n == 1 ? "" : "s");
			pthread_mutex_lock(&s->heads_lock);
		}
	}
	pthread_mutex_unlock(&s->heads_lock);
	return NULL;
}

/*
 * The path and the query's names and values are unescaped here, as libmicrohttpd would
 * ("%HH"), except when they hold "%00": a NUL would end the string the handlers see,
 * so /v1/secrets/abc%00junk addressed abc (what a front proxy calls abc%00junk). Such a
 * string is left as sent, and its '%' fails the route's and the name's syntax (404/400).
 */
static size_t
server_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	if (strstr(s, "%00") != NULL)
		return strlen(s);
	return MHD_http_unescape(s);
}

static void
server_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	log_debug("libmicrohttpd: %s", buf);
}

/* ---- start and stop ------------------------------------------------------------------- */

static int
server_read_pem(const char *path, char **out, size_t *len, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	int rc;

	*out = NULL;
	if ((rc = util_read_file(path, SERVER_PEM_MAX, &buf, len)) != 0) {
		snprintf(why, whylen, "%s: cannot read (%s)", path, cb_strerror(rc));
		return rc;
	}
	*out = (char *)buf;
	return 0;
}

/* Frees what server_prepare holds for server_run (the key wiped); the daemon stays. */
static void
server_drop_material(struct server *s)
{
	util_wipe_free(s->key, s->keylen);
	free(s->cert);
	free(s->ca);
	s->key = s->cert = s->ca = NULL;
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
}

static void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	server_drop_material(s);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->heads_lock);
	pthread_cond_destroy(&s->heads_cond);
	free(s);
}

int
server_prepare(struct broker *b, struct server **out, char *why, size_t whylen)
{
	const struct broker_conf *conf = b->conf;
	struct server *s = NULL;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr *sa;
	pthread_condattr_t ca;
	socklen_t salen;
	int rc, one = 1;

	*out = NULL;
	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return CB_ERR_NOMEM;
	s->b = b;
	s->lfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	pthread_mutex_init(&s->heads_lock, NULL);
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&s->heads_cond, &ca) != 0) {
		pthread_mutex_destroy(&s->heads_lock);
		pthread_cond_destroy(&s->idle);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return CB_ERR_NOMEM;
	}
	pthread_condattr_destroy(&ca);
	s->flags = MHD_USE_TLS | MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
	    MHD_USE_ITC;
	if (inet_pton(AF_INET, conf->listen_addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)conf->listen_port);
		sa = (struct sockaddr *)&sin;
		salen = sizeof(sin);
	} else if (inet_pton(AF_INET6, conf->listen_addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)conf->listen_port);
		sa = (struct sockaddr *)&sin6;
		salen = sizeof(sin6);
		s->flags |= MHD_USE_IPv6;
	} else {
		snprintf(why, whylen, "listen: %s is not an IP address", conf->listen_addr);
		rc = CB_ERR_CONFIG;
		goto out;
	}
	if ((rc = server_read_pem(conf->tls_cert, &s->cert, &s->certlen, why, whylen)) != 0 ||
	    (rc = server_read_pem(conf->tls_key, &s->key, &s->keylen, why, whylen)) != 0 ||
	    (rc = server_read_pem(conf->client_ca, &s->ca, &s->calen, why, whylen)) != 0)
		goto out;
	/* Bound here, before a privilege drop: a port below 1024 needs root. */
	if ((s->lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
	    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(s->lfd, sa, salen) == -1 || listen(s->lfd, 511) == -1) {
		snprintf(why, whylen, "cannot listen on %s:%d: %s", conf->listen_addr,
		    conf->listen_port, strerror(errno));
		rc = CB_ERR_IO;
		goto out;
	}
	*out = s;	/* transferred */
	s = NULL;
	rc = 0;
out:
	server_free(s);
	return rc;
}

/*
 * The connections that fit in RLIMIT_NOFILE (raised to what conn_limit needs when the hard
 * limit allows) beside SERVER_FD_RESERVE. Past it, accept() fails with EMFILE: a
 * libmicrohttpd 0.9.75 pool thread with no connection of its own then spins on the
 * listening socket, and the readers, opened lazily, cannot open the database (every read
 * answered 500). 0 when not even one connection per thread fits.
 */
static int
server_conn_limit(const struct broker_conf *conf, int threads)
{
	unsigned long long reserve = SERVER_FD_RESERVE(threads);
	unsigned long long want = (unsigned long long)conf->conn_limit + reserve;
	unsigned long long have = util_raise_nofile(want);
	int limit;

	if (have >= want)
		return conf->conn_limit;
	if (have < reserve + (unsigned long long)threads)
		return 0;
	limit = (int)(have - reserve);
	log_warnx("only %llu file descriptors (RLIMIT_NOFILE): conn_limit lowered from %d to %d",
	    have, conf->conn_limit, limit);
	return limit;
}

int
server_run(struct server *s, char *why, size_t whylen)
{
	const struct broker_conf *conf = s->b->conf;
	int threads = conf->threads > 0 ? conf->threads : 1;
	int limit, rc;

	if ((limit = server_conn_limit(conf, threads)) == 0) {
		snprintf(why, whylen, "too few file descriptors (RLIMIT_NOFILE) for %d threads: "
		    "at least %d needed", threads, SERVER_FD_RESERVE(threads) + threads);
		server_drop_material(s);
		return CB_ERR_CONFIG;
	}
	s->d = MHD_start_daemon(s->flags, 0, NULL, NULL, server_handler, s,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->lfd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
	    MHD_OPTION_HTTPS_MEM_CERT, s->cert,
	    MHD_OPTION_HTTPS_MEM_KEY, s->key,
	    MHD_OPTION_HTTPS_MEM_TRUST, s->ca,
	    MHD_OPTION_HTTPS_PRIORITIES, SERVER_PRIORITIES,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)conf->conn_timeout_s,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)limit,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)conf->per_ip_limit,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_CONN_MEMORY,
	    MHD_OPTION_NOTIFY_CONNECTION, server_notify_conn, s,
	    MHD_OPTION_UNESCAPE_CALLBACK, server_unescape, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, server_completed, s,
	    MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, s,
	    MHD_OPTION_END);
	if (s->d == NULL) {
		snprintf(why, whylen, "cannot serve on %s:%d (bad TLS certificate/key, or limits)",
		    conf->listen_addr, conf->listen_port);
		rc = CB_ERR_IO;
	} else {
		s->lfd = -1;	/* MHD owns and closes it */
		s->sweeping = 1;
		if (pthread_create(&s->sweeper, NULL, server_sweep, s) != 0) {
			s->sweeping = 0;
			log_warnx("cannot start the head deadline thread");
		}
		log_info("listening on %s:%d (%d threads, TLS 1.2+, client certificates required)",
		    conf->listen_addr, conf->listen_port, conf->threads);
		rc = 0;
	}
	/* The TLS context holds the key now (or never will): our copy goes. */
	server_drop_material(s);
	return rc;
}

int
server_start(struct broker *b, struct server **out, char *why, size_t whylen)
{
	struct server *s;
	int rc;

	*out = NULL;
	if ((rc = server_prepare(b, &s, why, whylen)) != 0)
		return rc;
	if ((rc = server_run(s, why, whylen)) != 0) {
		server_free(s);
		return rc;
	}
	*out = s;	/* transferred */
	return 0;
}

static void
server_stop_sweeper(struct server *s)
{
	int was;

	pthread_mutex_lock(&s->heads_lock);
	was = s->sweeping;
	s->sweeping = 0;
	pthread_cond_signal(&s->heads_cond);
	pthread_mutex_unlock(&s->heads_lock);
	if (was)
		pthread_join(s->sweeper, NULL);
}

int
server_stop(struct server *s)
{
	struct timespec ts;
	int left;

	if (s == NULL)
		return 0;
	if (s->d != NULL) {
		/*
		 * Stop dispatching (a request that still comes is answered 503 unavailable),
		 * then let in-flight calls finish (bounded); MHD_stop_daemon closes the listen
		 * socket. Not MHD_quiesce_daemon: with a thread pool on epoll (0.9.75) it races
		 * a worker that saw the quiesce and took the listen socket out of its epoll set
		 * first, and aborts ("Failed to remove listen FD from epoll set"; test_server's
		 * drain under ASan, about 1 run in 40).
		 */
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_mutex_unlock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += SERVER_DRAIN_S;
		pthread_mutex_lock(&s->lock);
		while (s->inflight > 0)
			if (pthread_cond_timedwait(&s->idle, &s->lock, &ts) != 0)
				break;
		left = s->inflight;
		pthread_mutex_unlock(&s->lock);
		if (left > 0) {
			/*
			 * A call (a long key rotation) still owns a request: stopping the
			 * daemon would free it under the thread that will answer it. Leave
			 * the daemon to process exit.
			 */
			log_warnx("stopping with %d calls still in flight", left);
			return left;
		}
		server_stop_sweeper(s);
		MHD_stop_daemon(s->d);
	}
	server_free(s);
	return 0;
}
