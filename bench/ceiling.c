/*
 * ceiling.c: a measuring probe for issue 6's resolve target, not a product server.
 *
 * Since D19 (docs/performance.md) the notes say that resolve >= 0.5 of nginx needs another
 * server model than libmicrohttpd's suspend and resume: one event loop per core that reads,
 * verifies and queues, and a commit thread that writes the answers itself after the group
 * commit's fsync. This program is that model, lean (raw epoll and OpenSSL), so that its
 * ceiling can be measured with bench/loadgen before anyone rewrites src/server.c for it
 * (bench/ceiling-run; D23).
 *
 * ceiling --port P --cert C --key K --cacert CA [--threads N] [--mode answer|commit|broker]
 *         [--body-size N] [--db FILE] [--config BROKER-CONF --identity ID [--answers commit|loop]]
 * --mode answer: the loop thread answers every request at once with a fixed JSON body of
 *   --body-size bytes: the ceiling of TLS and HTTP on this model.
 * --mode commit: the same answer, but the loop thread queues the request; the commit thread
 *   inserts one SHA-256-chained audit row per request into --db (WAL, synchronous=FULL) in
 *   one transaction per batch, then writes every answer of the batch itself.
 * --mode broker: the real broker behind this front end: the deployment of --config (its
 *   database, master key, identities), every request handed to api_dispatch() as server.c
 *   does, with the caller --identity (the client certificate is verified against the CA
 *   but not mapped: a probe). The reply callback writes the answer on whichever thread
 *   calls it: the commit thread for a resolve, after its batch's fsync. With --answers loop
 *   the answer goes back to the connection's loop thread instead (an eventfd per loop, one
 *   write per batch and loop), as libmicrohttpd's resume does without its per-connection
 *   costs.
 *
 * Limits, deliberately: no pipelining (a connection's next request is read after its answer),
 * no chunked bodies, requests up to 16 KiB, no timeouts and no connection limits. Listens
 * on 127.0.0.1; stops on SIGINT or SIGTERM. A write that cannot finish in 2 s closes its
 * connection.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "api.h"
#include "commit.h"
#include "conf.h"
#include "err.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "secret.h"
#include "store.h"
#include "util.h"
#include "vault.h"

#define REQ_MAX		16384
#define MAX_LOOPS	16
#define WRITE_WAIT_MS	2000
#define HEAD_MAX	512

enum mode { MODE_ANSWER, MODE_COMMIT, MODE_BROKER };

struct loop;

struct conn {
	int fd;
	SSL *ssl;
	struct loop *lp;
	int handshaken;
	size_t have;		/* bytes in buf */
	size_t reqlen;		/* the whole request (head and body) once complete */
	struct conn *next;	/* the commit queue (--mode commit) */
	char peer[64];
	char method[8];
	char path[1024];
	struct api_call call;	/* --mode broker */
	int r_status;		/* --answers loop: the reply handed over */
	json_t *r_body;
	char buf[REQ_MAX];
};

struct loop {
	int ep, lfd;
	pthread_t th;
	int efd;		/* --answers loop: replies queued for this loop */
	pthread_mutex_t mu;
	struct conn *replies;
};

static struct {
	int port, threads;
	enum mode mode;
	const char *cert, *key, *cacert, *db, *config, *identity;
	size_t body_size;
	int answers_on_loop;
} o = { .threads = 2, .mode = MODE_ANSWER, .db = "ceiling.db", .body_size = 128 };

static SSL_CTX *ctx;
static char *answer;
static size_t answer_len;
static volatile sig_atomic_t stop_flag;
static __thread struct loop *this_loop;	/* set on loop threads */
static char efd_tag;			/* epoll data of a loop's eventfd */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct conn *q_head, *q_tail;
static _Atomic unsigned long n_batches, n_ops;

/* --mode broker: what credbrokerd.c's daemon_start builds, less the server and the purge. */
static struct broker_conf *bconf;
static struct broker broker;
static const struct identity *who;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
die(const char *what)
{
	fprintf(stderr, "ceiling: %s\n", what);
	exit(1);
}

static void
arm(struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev | EPOLLONESHOT, .data.ptr = c };

	if (epoll_ctl(c->lp->ep, EPOLL_CTL_MOD, c->fd, &e) != 0)
		perror("ceiling: epoll_ctl");
}

static void
conn_free(struct conn *c)
{
	epoll_ctl(c->lp->ep, EPOLL_CTL_DEL, c->fd, NULL);
	SSL_free(c->ssl);
	close(c->fd);
	explicit_bzero(c->buf, sizeof(c->buf));
	free(c);
}

/* The request's length once its head and body are all in buf; 0 while incomplete; -1 bad. */
static long
request_length(const struct conn *c)
{
	const char *end, *p, *line;
	long cl = 0;

	end = memmem(c->buf, c->have, "\r\n\r\n", 4);
	if (end == NULL)
		return c->have >= REQ_MAX ? -1 : 0;
	for (line = c->buf; line < end; line = p + 2) {
		p = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (p == NULL)
			break;
		if ((size_t)(p - line) > 15 && strncasecmp(line, "Content-Length:", 15) == 0)
			cl = strtol(line + 15, NULL, 10);
	}
	if (cl < 0 || cl > REQ_MAX)
		return -1;
	if ((size_t)(end + 4 - c->buf) + (size_t)cl > REQ_MAX)
		return -1;
	if (c->have < (size_t)(end + 4 - c->buf) + (size_t)cl)
		return 0;
	return (long)(end + 4 - c->buf) + cl;
}

/* Writes len bytes on the non-blocking socket, waiting at most WRITE_WAIT_MS in all. */
static int
write_all(struct conn *c, const char *buf, size_t len)
{
	struct pollfd p = { .fd = c->fd };
	size_t off = 0;
	int w, err, waited = 0;

	while (off < len) {
		w = SSL_write(c->ssl, buf + off, (int)(len - off));
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		err = SSL_get_error(c->ssl, w);
		if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ)
			return -1;
		p.events = err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
		if (waited >= WRITE_WAIT_MS || poll(&p, 1, 100) < 0)
			return -1;
		waited += 100;
	}
	return 0;
}

/*
 * The request is answered (sent is 0 when the answer could not be written): drop it from
 * buf and hand the connection back to its loop thread, which reads the next request or,
 * after a failed write, finds the connection broken and frees it.
 */
static void
request_done(struct conn *c, int sent)
{
	if (sent) {
		memmove(c->buf, c->buf + c->reqlen, c->have - c->reqlen);
		c->have -= c->reqlen;
	} else
		c->have = 0;
	c->reqlen = 0;
	arm(c, EPOLLIN);
}

static void
enqueue(struct conn *c)
{
	pthread_mutex_lock(&q_mu);
	c->next = NULL;
	if (q_tail != NULL)
		q_tail->next = c;
	else
		q_head = c;
	q_tail = c;
	pthread_cond_signal(&q_cv);
	pthread_mutex_unlock(&q_mu);
}

/* ---- --mode broker: the real API behind this front end ---------------------------------- */

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* Frees what the call holds (the parsed request body, a raw answer) and clears it. */
static void
call_clear(struct api_call *call)
{
	if (call->body != NULL)
		json_decref(call->body);
	util_wipe_free(call->raw_body, call->raw_len);
	memset(call, 0, sizeof(*call));
}

/*
 * api_call.reply, on the thread that answers (the commit thread for a resolve): renders the
 * answer as server.c does (our compact writer, raw bodies as given), writes it, wipes a
 * sensitive copy, logs the request as server.c does and hands the connection back.
 */
static void
broker_send(struct conn *c, int status, json_t *body)
{
	struct api_call *call = &c->call;
	const char *ctype = call->content_type != NULL ? call->content_type : "application/json";
	char *buf, *text;
	size_t tlen = 0, tcap = 0, cap;
	int n, sent = 0;

	/* The body as text: a raw answer as given (a resolve's), else compact JSON. */
	if (call->raw_body != NULL) {
		text = call->raw_body;
		tlen = tcap = call->raw_len;
		call->raw_body = NULL;
	} else if (body != NULL && (text = json_dumps_compact(body)) != NULL) {
		tlen = strlen(text);
		tcap = tlen + 1;
	} else
		text = NULL;
	cap = HEAD_MAX + tlen;
	if ((body == NULL || text != NULL) && (buf = malloc(cap)) != NULL) {
		n = snprintf(buf, HEAD_MAX, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		    "Content-Length: %zu\r\n\r\n", status, reason(status), ctype, tlen);
		if (n > 0 && n < HEAD_MAX) {
			if (tlen > 0)
				memcpy(buf + n, text, tlen);
			sent = write_all(c, buf, (size_t)n + tlen) == 0;
		}
		util_wipe_free(buf, cap);
	}
	/* Every copy is wiped, sensitive or not. */
	if (text != NULL)
		util_wipe_free(text, tcap);
	if (body != NULL)
		json_decref(body);
	log_request(__func__, c->peer, who->id, call->route != NULL ? call->route : "other",
	    (unsigned int)status, call->grant_id[0] != '\0' ? call->grant_id : "-",
	    (long long)(util_mono_us() - call->start_us));
	metrics_request(broker.metrics, call->route, status);
	call_clear(call);
	request_done(c, sent);
	/* c belongs to its loop thread again. */
}

/*
 * api_call.reply. With --answers commit (the default) the answer is written by the thread
 * that replies (the commit thread for a resolve); with --answers loop it is handed back to
 * the connection's loop thread (one eventfd write per batch and loop, not per answer).
 */
static void
broker_reply(struct api_call *call, int status, json_t *body, int sensitive)
{
	struct conn *c = call->server_ctx;
	struct loop *lp = c->lp;
	uint64_t one = 1;
	int wake;

	(void)sensitive;	/* every copy is wiped when sent, sensitive or not */
	if (!o.answers_on_loop || this_loop == lp) {
		broker_send(c, status, body);
		return;
	}
	c->r_status = status;
	c->r_body = body;
	pthread_mutex_lock(&lp->mu);
	wake = lp->replies == NULL;
	c->next = lp->replies;
	lp->replies = c;
	pthread_mutex_unlock(&lp->mu);
	if (wake && write(lp->efd, &one, sizeof(one)) != sizeof(one))
		perror("ceiling: eventfd");
}

/* On the loop thread: sends every reply handed over to it. */
static void
loop_replies(struct loop *lp)
{
	struct conn *c, *next;
	uint64_t n;

	if (read(lp->efd, &n, sizeof(n)) != sizeof(n) && errno != EAGAIN)
		perror("ceiling: eventfd");
	pthread_mutex_lock(&lp->mu);
	c = lp->replies;
	lp->replies = NULL;
	pthread_mutex_unlock(&lp->mu);
	for (; c != NULL; c = next) {
		next = c->next;
		broker_send(c, c->r_status, c->r_body);
	}
}

/* Builds the api_call of the complete request in c->buf and dispatches it. */
static int
broker_dispatch(struct conn *c)
{
	struct api_call *call = &c->call;
	const char *sp1, *sp2, *body, *q, *code = NULL;
	size_t mlen, plen;

	call_clear(call);
	call->start_us = util_mono_us();
	sp1 = memchr(c->buf, ' ', c->reqlen);
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', c->reqlen - (size_t)(sp1 + 1 - c->buf)) : NULL;
	if (sp1 == NULL || sp2 == NULL)
		return -1;
	mlen = (size_t)(sp1 - c->buf);
	q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	plen = (size_t)((q != NULL ? q : sp2) - sp1 - 1);
	if (mlen >= sizeof(c->method) || plen >= sizeof(c->path))
		return -1;
	memcpy(c->method, c->buf, mlen);
	c->method[mlen] = '\0';
	memcpy(c->path, sp1 + 1, plen);
	c->path[plen] = '\0';
	body = (const char *)memmem(c->buf, c->reqlen, "\r\n\r\n", 4) + 4;
	call->b = &broker;
	call->who = who;
	call->peer = c->peer;
	call->method = c->method;
	call->path = c->path;
	call->reply = broker_reply;
	call->server_ctx = c;
	if (strcmp(c->method, "POST") == 0 || strcmp(c->method, "PUT") == 0) {
		size_t blen = (size_t)(c->buf + c->reqlen - body);

		if (blen == 0)
			call->body_error = JSON_E_BAD_JSON;
		else if (json_parse_object(body, blen, &call->body, &code) != 0)
			call->body_error = code != NULL ? code : JSON_E_BAD_JSON;
	}
	api_dispatch(call);
	/* c may belong to another thread now (the commit thread answers): not touched. */
	return 0;
}

static void
broker_open(void)
{
	struct store *st = NULL;
	struct vault *v = NULL;
	struct commit *cm = NULL;
	struct store_pool *pool = NULL;
	struct metrics *m = NULL;
	char why[512] = "";

	if (conf_load_broker(o.config, &bconf, why, sizeof(why)) != 0 ||
	    store_open(bconf->database, 0, &st, why, sizeof(why)) != 0 ||
	    vault_open(st, bconf->master_key, &v, why, sizeof(why)) != 0) {
		fprintf(stderr, "ceiling: %s: %s\n", o.config, why);
		exit(1);
	}
	store_close(st);
	log_init("ceiling", bconf->log_level);
	if (commit_open(bconf->database, v, &cm) != 0 || store_pool_new(bconf->database, &pool) != 0 ||
	    metrics_new(&m) != 0)
		die("the broker's writer, readers or metrics");
	if ((who = conf_find_identity(bconf, o.identity)) == NULL)
		die("--identity: no such identity in --config");
	broker.conf = bconf;
	broker.vault = v;
	broker.commit = cm;
	broker.readers = pool;
	broker.metrics = m;
}

static void
broker_close(void)
{
	commit_close(broker.commit);
	store_pool_free(broker.readers);
	metrics_free(broker.metrics);
	vault_free(broker.vault);
	secret_cache_clear();
	conf_free_broker(bconf);
}

/* ---- the loops ---------------------------------------------------------------------------- */

/* A readable (or writable, mid-handshake) connection on its loop thread. */
static void
on_conn(struct conn *c)
{
	long len;
	int r, err;

	if (!c->handshaken) {
		r = SSL_accept(c->ssl);
		if (r != 1) {
			err = SSL_get_error(c->ssl, r);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
				arm(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
				return;
			}
			conn_free(c);
			return;
		}
		c->handshaken = 1;
	}
	for (;;) {
		if ((len = request_length(c)) < 0) {
			conn_free(c);
			return;
		}
		if (len > 0)
			break;
		r = SSL_read(c->ssl, c->buf + c->have, (int)(REQ_MAX - c->have));
		if (r > 0) {
			c->have += (size_t)r;
			continue;
		}
		err = SSL_get_error(c->ssl, r);
		if (err == SSL_ERROR_WANT_READ) {
			arm(c, EPOLLIN);
			return;
		}
		conn_free(c);
		return;
	}
	c->reqlen = (size_t)len;
	switch (o.mode) {
	case MODE_BROKER:
		if (broker_dispatch(c) != 0)
			conn_free(c);
		return;
	case MODE_COMMIT:
		enqueue(c);	/* the commit thread answers and re-arms */
		return;
	case MODE_ANSWER:
		request_done(c, write_all(c, answer, answer_len) == 0);
		return;
	}
}

static void
on_accept(struct loop *lp)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	struct conn *c;
	int fd, one = 1;

	while ((fd = accept4(lp->lfd, (struct sockaddr *)&a, &alen,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct epoll_event e = { .events = EPOLLIN | EPOLLONESHOT };

		alen = sizeof(a);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL || (c->ssl = SSL_new(ctx)) == NULL) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->lp = lp;
		inet_ntop(AF_INET, &a.sin_addr, c->peer, sizeof(c->peer));
		SSL_set_fd(c->ssl, fd);
		e.data.ptr = c;
		if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
			SSL_free(c->ssl);
			free(c);
			close(fd);
		}
	}
}

static void *
loop_main(void *arg)
{
	struct loop *lp = arg;
	struct epoll_event ev[64];
	int n, i;

	this_loop = lp;
	while (!stop_flag) {
		n = epoll_wait(lp->ep, ev, 64, 200);
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == &efd_tag)
				loop_replies(lp);
			else if (ev[i].data.ptr != NULL)
				on_conn(ev[i].data.ptr);
			else
				on_accept(lp);
		}
	}
	return NULL;
}

/* ---- --mode commit: a synthetic group commit ------------------------------------------ */

static void
exec_or_die(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "ceiling: %s: %s\n", sql, msg != NULL ? msg : "?");
		exit(1);
	}
}

/* The commit thread: one transaction (one fsync) per batch, then every answer of it. */
static void *
commit_main(void *arg)
{
	sqlite3 *db = arg;
	sqlite3_stmt *ins;
	struct conn *batch, *c, *next;
	uint8_t prev[32] = { 0 }, row[128];
	unsigned int hl;
	int64_t id = 0;
	struct timespec ts;

	if (sqlite3_prepare_v2(db, "INSERT INTO audit(ts, who, action, outcome, hash) "
	    "VALUES (?, 'proxy', 'resolve', 'ok', ?)", -1, &ins, NULL) != SQLITE_OK)
		die("prepare insert");
	for (;;) {
		pthread_mutex_lock(&q_mu);
		while (q_head == NULL && !stop_flag) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&q_cv, &q_mu, &ts);
		}
		batch = q_head;
		q_head = q_tail = NULL;
		pthread_mutex_unlock(&q_mu);
		if (batch == NULL)
			break;
		exec_or_die(db, "BEGIN IMMEDIATE");
		for (c = batch; c != NULL; c = c->next) {
			/* The chain: hash = SHA-256(prev || row). */
			memset(row, 0, sizeof(row));
			memcpy(row, prev, 32);
			snprintf((char *)row + 32, sizeof(row) - 32, "%lld proxy resolve ok",
			    (long long)++id);
			EVP_Digest(row, sizeof(row), prev, &hl, EVP_sha256(), NULL);
			sqlite3_bind_int64(ins, 1, (sqlite3_int64)time(NULL));
			sqlite3_bind_blob(ins, 2, prev, 32, SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE)
				die("insert");
			sqlite3_reset(ins);
		}
		exec_or_die(db, "COMMIT");
		atomic_fetch_add(&n_batches, 1);
		for (c = batch; c != NULL; c = next) {
			next = c->next;
			atomic_fetch_add(&n_ops, 1);
			request_done(c, write_all(c, answer, answer_len) == 0);
		}
	}
	sqlite3_finalize(ins);
	return NULL;
}

static sqlite3 *
open_db(void)
{
	sqlite3 *db;

	unlink(o.db);
	if (sqlite3_open(o.db, &db) != SQLITE_OK)
		die("sqlite3_open");
	exec_or_die(db, "PRAGMA journal_mode=WAL");
	exec_or_die(db, "PRAGMA synchronous=FULL");
	exec_or_die(db, "CREATE TABLE audit(id INTEGER PRIMARY KEY, ts INTEGER, who TEXT, "
	    "action TEXT, outcome TEXT, hash BLOB)");
	return db;
}

/* ---- start ------------------------------------------------------------------------------ */

static int
listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0)
		die("listen");
	return fd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: ceiling --port P --cert C --key K --cacert CA [--threads N] "
	    "[--mode answer|commit|broker] [--body-size N] [--db FILE] "
	    "[--config BROKER-CONF --identity ID [--answers commit|loop]]\n");
	exit(2);
}

/* A whole decimal number in [lo, hi], or the usage message. */
static long
num(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", 1, NULL, 'p' }, { "cert", 1, NULL, 'c' }, { "key", 1, NULL, 'k' },
		{ "cacert", 1, NULL, 'a' }, { "threads", 1, NULL, 't' }, { "mode", 1, NULL, 'm' },
		{ "db", 1, NULL, 'd' }, { "body-size", 1, NULL, 'b' },
		{ "config", 1, NULL, 'C' }, { "identity", 1, NULL, 'I' }, { "answers", 1, NULL, 'A' },
		{ NULL, 0, NULL, 0 }
	};
	struct loop loops[MAX_LOOPS];
	struct sigaction sa = { .sa_handler = on_signal };
	pthread_t ct;
	sqlite3 *wdb = NULL;
	int ch, i, n;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': o.port = (int)num(optarg, 1, 65535); break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'a': o.cacert = optarg; break;
		case 't': o.threads = (int)num(optarg, 1, MAX_LOOPS); break;
		case 'm':
			if (strcmp(optarg, "answer") == 0)
				o.mode = MODE_ANSWER;
			else if (strcmp(optarg, "commit") == 0)
				o.mode = MODE_COMMIT;
			else if (strcmp(optarg, "broker") == 0)
				o.mode = MODE_BROKER;
			else
				usage();
			break;
		case 'd': o.db = optarg; break;
		case 'b': o.body_size = (size_t)num(optarg, 2, 8192); break;
		case 'C': o.config = optarg; break;
		case 'I': o.identity = optarg; break;
		case 'A':
			if (strcmp(optarg, "loop") != 0 && strcmp(optarg, "commit") != 0)
				usage();
			o.answers_on_loop = strcmp(optarg, "loop") == 0;
			break;
		default: usage();
		}
	}
	if (optind != argc || o.port == 0 || o.cert == NULL || o.key == NULL || o.cacert == NULL ||
	    (o.mode == MODE_BROKER && (o.config == NULL || o.identity == NULL)))
		usage();
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The fixed answer: a JSON body of body_size bytes, headers as the broker sends them. */
	if ((answer = malloc(o.body_size + 256)) == NULL)
		die("malloc");
	n = snprintf(answer, 256, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	    "Content-Length: %zu\r\n\r\n", o.body_size);
	memset(answer + n, 'x', o.body_size);
	answer[n] = '{';
	answer[n + (int)o.body_size - 1] = '}';
	answer_len = (size_t)n + o.body_size;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, o.cacert, NULL) != 1)
		die("TLS set-up (certificate, key or CA)");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);

	if (o.mode == MODE_BROKER)
		broker_open();
	for (i = 0; i < o.threads; i++) {
		struct epoll_event e = { .events = EPOLLIN }, ee = { .events = EPOLLIN };

		loops[i].lfd = listen_on(o.port);
		loops[i].replies = NULL;
		ee.data.ptr = &efd_tag;
		if ((loops[i].ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
		    (loops[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
		    pthread_mutex_init(&loops[i].mu, NULL) != 0 ||
		    epoll_ctl(loops[i].ep, EPOLL_CTL_ADD, loops[i].lfd, &e) != 0 ||
		    epoll_ctl(loops[i].ep, EPOLL_CTL_ADD, loops[i].efd, &ee) != 0)
			die("epoll");
	}
	if (o.mode == MODE_COMMIT) {
		wdb = open_db();
		if (pthread_create(&ct, NULL, commit_main, wdb) != 0)
			die("pthread_create");
	}
	for (i = 0; i < o.threads; i++)
		if (pthread_create(&loops[i].th, NULL, loop_main, &loops[i]) != 0)
			die("pthread_create");
	fprintf(stderr, "ceiling: listening on 127.0.0.1:%d, %d loop(s), mode %s\n", o.port,
	    o.threads, o.mode == MODE_COMMIT ? "commit" : o.mode == MODE_BROKER ? "broker" :
	    "answer");
	for (i = 0; i < o.threads; i++)
		pthread_join(loops[i].th, NULL);
	if (o.mode == MODE_COMMIT) {
		pthread_mutex_lock(&q_mu);
		pthread_cond_broadcast(&q_cv);
		pthread_mutex_unlock(&q_mu);
		pthread_join(ct, NULL);
		sqlite3_close(wdb);
		printf("{\"batches\":%lu,\"ops\":%lu}\n", (unsigned long)n_batches,
		    (unsigned long)n_ops);
	}
	/* Connections still open are dropped with the process; in-flight calls finish first. */
	if (o.mode == MODE_BROKER)
		broker_close();
	return 0;
}
