/*
 * proxy_resolve.c: broker resolves and upstream lookups for the event loop, which never
 * blocks on the broker or on DNS.
 * - On the loop: a request to a kept-alive upstream (no name lookup) is resolved over
 *   one of the loop's own broker connections ("channels", at most resolve_workers) with
 *   libcredbroker's non-blocking resolve: no thread hand-off (docs/performance.md D20).
 * - On a worker thread: everything else (the upstream's getaddrinfo and address checks,
 *   or no idle channel, or a channel's kept-alive connection that closed under a resolve)
 *   becomes a job that a worker runs over its own reused mTLS connection, handing the
 *   finished job back through job->done. Workers also connect new channels (a connect
 *   blocks), so a slow or absent broker never stalls the loop.
 * There is no resolve cache: a revoked grant is refused on the very next request.
 */
#include "config.h"

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "err.h"
#include "log.h"
#include "proxy.h"
#include "util.h"

#define POOL_QUEUE_MAX	4096
#define POOL_THREADS_MAX	PROXY_WORKERS_MAX

#define CHAN_RETRY_S	1	/* after a channel failed to connect, wait this long */

struct proxy_chan;

struct qent {
	TAILQ_ENTRY(qent) link;
	struct proxy_job *job;		/* a job to run, or */
	struct proxy_chan *chan;	/* a channel to connect */
};
TAILQ_HEAD(qhead, qent);

/* One of the loop's broker connections; owned by the loop thread except while connecting. */
struct proxy_chan {
	TAILQ_ENTRY(proxy_chan) link;	/* on exactly one of ready, idle and busy */
	struct proxy_pool *p;
	cbc_t *c;			/* NULL: the connect failed */
	struct event *evr, *evw;	/* the socket, with the resolve's deadline */
	struct proxy_job *job;		/* the job in flight, NULL when idle */
	size_t tok;			/* its token being resolved */
	int64_t deadline_ms;
};
TAILQ_HEAD(chead, proxy_chan);

struct proxy_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qhead q;
	size_t qlen;
	int stop;
	pthread_t th[POOL_THREADS_MAX];
	int nth;
	char *url, *cert, *key, *ca;
	long timeout_ms;
	struct cbc_opts opts;		/* the strings above */

	/* the loop's channels (loop thread only, except ready: under mu) */
	struct event_base *base;
	struct event *readyev;		/* a worker connected a channel (or failed to) */
	struct chead ready;
	struct chead idle;
	struct chead busy;
	int nchan;			/* idle, busy and connecting */
	int maxchan;
	int64_t retry_ms;		/* no new channel before this (a connect failed) */
};

struct proxy_job *
proxy_job_new(void)
{
	return calloc(1, sizeof(struct proxy_job));
}

void
proxy_job_free(struct proxy_job *job)
{
	size_t i;

	if (job == NULL)
		return;
	for (i = 0; i < job->ntokens; i++)
		util_wipe_str(job->tokens[i]);
	for (i = 0; i < job->nset; i++) {
		free((char *)job->set[i].name);
		util_wipe_str((char *)job->set[i].value);
	}
	for (i = 0; i < job->npats; i++) {
		util_wipe_str(job->pats[i].value);
		util_wipe_str(job->pats[i].repl);
	}
	free(job->path);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

static void
job_fail(struct proxy_job *job, int status, const char *reason)
{
	job->status = status;
	snprintf(job->reason, sizeof(job->reason), "%s", reason);
}

static int
add_pattern(struct proxy_job *job, const char *value, const char *repl)
{
	struct proxy_pattern *p;

	if (job->npats >= UTIL_ARRAY_LEN(job->pats))
		return CB_ERR_LIMIT;
	p = &job->pats[job->npats];
	p->value = strdup(value);
	p->repl = strdup(repl);
	if (p->value == NULL || p->repl == NULL) {
		util_wipe_str(p->value);
		free(p->repl);
		p->value = p->repl = NULL;
		return CB_ERR_NOMEM;
	}
	job->npats++;
	return 0;
}

/* For "Basic base64(user:password)": the decoded password is scrubbed too. */
static int
add_basic(struct proxy_job *job, const char *b64, const char *repl)
{
	uint8_t *dec = NULL;
	char *pw;
	size_t len;
	int rc = 0;

	while (*b64 == ' ')
		b64++;
	if (util_unb64(b64, strlen(b64), &dec, &len) != 0)
		return 0;	/* not base64: the whole value is scrubbed already */
	if (memchr(dec, '\0', len) == NULL && (pw = memchr(dec, ':', len)) != NULL) {
		dec[len] = '\0';	/* util_unb64 allocates at least one byte more */
		if (strlen(pw + 1) >= 8)
			rc = add_pattern(job, pw + 1, repl);
	}
	util_wipe_free(dec, len + 1);
	return rc;
}

/* Takes the resolved headers into job->set and the scrub patterns. */
static int
take_headers(struct proxy_job *job, const struct cbc_resolved *r, const char *repl)
{
	const char *v, *sp;
	size_t i;
	int rc;

	for (i = 0; i < r->nheaders; i++) {
		if (job->nset >= PROXY_SET_MAX)
			return CB_ERR_LIMIT;
		v = r->headers[i].value;
		job->set[job->nset].name = strdup(r->headers[i].name);
		job->set[job->nset].value = strdup(v);
		if (job->set[job->nset].name == NULL || job->set[job->nset].value == NULL) {
			free((char *)job->set[job->nset].name);
			util_wipe_str((char *)job->set[job->nset].value);
			job->set[job->nset].name = job->set[job->nset].value = NULL;
			return CB_ERR_NOMEM;
		}
		job->nset++;
		/*
		 * Scrub the whole header value and, for "Scheme credential" values, the
		 * credential alone: an upstream may echo either.
		 */
		if (*v != '\0' && (rc = add_pattern(job, v, repl)) != 0)
			return rc;
		if ((sp = strrchr(v, ' ')) != NULL && strlen(sp + 1) >= 8 &&
		    (rc = add_pattern(job, sp + 1, repl)) != 0)
			return rc;
		if (strncasecmp(v, "Basic ", 6) == 0 && (rc = add_basic(job, v + 6, repl)) != 0)
			return rc;
	}
	return 0;
}

/*
 * One resolve's outcome (rc and r from cbc_resolve or cbc_resolve_finish, for token
 * number tok, or the token-less one) into the job: 1 when the next token is to be
 * resolved, 0 when the job's resolving is over (allowed, or job->status set).
 */
static int
resolve_result(cbc_t *c, struct proxy_job *job, size_t tok, int rc, struct cbc_resolved *r)
{
	const char *code;
	char buf[128];

	if (rc == CBC_E_REFUSED) {
		code = cbc_error_code(c);
		if (job->ntokens == 0) {
			log_info("sandbox %s: no token, %s %s:%d refused by the broker (%s)%s",
			    job->sandbox, job->method, job->host, job->port, code,
			    job->allowlisted ? ", allowlisted host" : "");
			if (job->allowlisted)
				return 0;
			snprintf(buf, sizeof(buf), "credproxy: refused: %s",
			    *code != '\0' ? code : "not_allowed");
		} else {
			log_info("sandbox %s: token refused for %s %s:%d (%s)", job->sandbox,
			    job->method, job->host, job->port, code);
			snprintf(buf, sizeof(buf), "credproxy: refused: %s",
			    *code != '\0' ? code : "refused");
		}
		job_fail(job, 403, buf);
		return 0;
	}
	if (rc != 0) {
		log_warnx("broker resolve failed: %s", cbc_errmsg(c));
		job_fail(job, 502, "credproxy: broker unavailable");
		return 0;
	}
	rc = take_headers(job, r, job->ntokens == 0 ? PROXY_REDACTED : job->tokens[tok]);
	if (rc != 0) {
		cbc_resolved_free(r);
		job_fail(job, 500, "credproxy: internal error");
		return 0;
	}
	if (job->ntokens == 0) {
		log_debug("sandbox %s: no token, %s %s:%d allowed, %zu header(s) injected",
		    job->sandbox, job->method, job->host, job->port, r->nheaders);
		cbc_resolved_free(r);
		return 0;
	}
	cbc_resolved_free(r);
	if (tok + 1 < job->ntokens)
		return 1;
	/* per request, and the broker audits every resolve: debug, not info */
	log_debug("sandbox %s: %zu token(s) resolved for %s %s:%d", job->sandbox, job->ntokens,
	    job->method, job->host, job->port);
	return 0;
}

/* The job's resolves (from token job->tok_next on) over a worker's blocking client. */
static void
run_resolve(cbc_t *c, struct proxy_job *job)
{
	struct cbc_resolved *r;
	size_t tok;
	int rc;

	for (tok = job->tok_next;; tok++) {
		r = NULL;
		rc = cbc_resolve(c, job->ntokens > 0 ? job->tokens[tok] : NULL, job->sandbox,
		    job->host, job->port, job->method, job->path, &r);
		if (!resolve_result(c, job, tok, rc, r))
			break;
	}
}

static void
run_addr(struct proxy_job *job)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int rc, seen_private = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(port, sizeof(port), "%d", job->port);
	if ((rc = getaddrinfo(job->host, port, &hints, &res)) != 0) {
		/* AI_ADDRCONFIG hides ::1 and 127.0.0.1 on hosts with loopback only */
		hints.ai_flags = 0;
		rc = getaddrinfo(job->host, port, &hints, &res);
	}
	if (rc != 0) {
		log_info("cannot resolve %s: %s", job->host, gai_strerror(rc));
		job_fail(job, 502, "credproxy: cannot resolve upstream host");
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(job->addrs[0]))
			continue;
		if (!job->allow_private && proxy_addr_is_private(ai->ai_addr)) {
			seen_private = 1;
			continue;
		}
		if (job->naddrs >= PROXY_ADDRS_MAX)
			break;
		memcpy(&job->addrs[job->naddrs], ai->ai_addr, ai->ai_addrlen);
		job->addrlens[job->naddrs++] = ai->ai_addrlen;
	}
	freeaddrinfo(res);
	if (job->naddrs == 0) {
		log_info("sandbox %s: %s resolves only to refused addresses", job->sandbox,
		    job->host);
		job_fail(job, seen_private ? 403 : 502, seen_private ?
		    "credproxy: refused: private address" :
		    "credproxy: no usable upstream address");
	}
}

/* ---- the loop's channels ---- */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
chan_free(struct proxy_chan *ch)
{
	if (ch->evr != NULL)
		event_free(ch->evr);
	if (ch->evw != NULL)
		event_free(ch->evw);
	cbc_free(ch->c);	/* wipes what the exchange held */
	ch->p->nchan--;
	free(ch);
}

static int queue_entry(struct proxy_pool *p, struct proxy_job *job, struct proxy_chan *ch);
static void chan_step(struct proxy_chan *ch);

/* The job is over on this channel: back to the connection, the channel idle or gone. */
static void
chan_done(struct proxy_chan *ch, int retry)
{
	struct proxy_job *job = ch->job;

	ch->job = NULL;
	TAILQ_REMOVE(&ch->p->busy, ch, link);
	event_del(ch->evr);
	event_del(ch->evw);
	if (retry) {
		/* the connection closed before this token's answer: a worker, on a new one */
		job->tok_next = ch->tok;
		if (queue_entry(ch->p, job, NULL) == 0)
			job = NULL;
		else
			job_fail(job, 503, "credproxy: too busy");
	}
	if (job != NULL)
		job->done(job->arg, job);
	if (cbc_resolve_fd(ch->c) < 0)
		chan_free(ch);
	else
		TAILQ_INSERT_HEAD(&ch->p->idle, ch, link);
}

static void
chan_start(struct proxy_chan *ch)
{
	struct proxy_job *job = ch->job;
	int rc;

	ch->deadline_ms = mono_ms() + ch->p->timeout_ms;
	rc = cbc_resolve_start(ch->c, job->ntokens > 0 ? job->tokens[ch->tok] : NULL,
	    job->sandbox, job->host, job->port, job->method, job->path);
	if (rc != 0) {
		(void)resolve_result(ch->c, job, ch->tok, rc, NULL);
		chan_done(ch, 0);
		return;
	}
	chan_step(ch);
}

static void
chan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_chan *ch = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		cbc_resolve_abort(ch->c);
		log_warnx("broker resolve failed: no answer from %s within %ld ms",
		    ch->p->url, ch->p->timeout_ms);
		job_fail(ch->job, 502, "credproxy: broker unavailable");
		chan_done(ch, 0);
		return;
	}
	chan_step(ch);
}

/* Moves the exchange on; waits on the socket (bounded by the deadline) when it must. */
static void
chan_step(struct proxy_chan *ch)
{
	struct cbc_resolved *r = NULL;
	struct timeval tv;
	int64_t left;
	short want = 0;
	int rc;

	rc = cbc_resolve_step(ch->c, &want);
	if (rc == CBC_PENDING) {
		if ((left = ch->deadline_ms - mono_ms()) < 0)
			left = 0;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
		if (event_add(want == POLLOUT ? ch->evw : ch->evr, &tv) == 0)
			return;
		cbc_resolve_abort(ch->c);
		job_fail(ch->job, 500, "credproxy: internal error");
		chan_done(ch, 0);
		return;
	}
	if (rc != 0 && cbc_resolve_retryable(ch->c)) {
		chan_done(ch, 1);
		return;
	}
	if (rc == 0)
		rc = cbc_resolve_finish(ch->c, &r);
	if (resolve_result(ch->c, ch->job, ch->tok, rc, r)) {
		ch->tok++;
		if (cbc_resolve_fd(ch->c) < 0)
			chan_done(ch, 1);	/* "Connection: close": the next token on a worker */
		else
			chan_start(ch);
		return;
	}
	chan_done(ch, 0);
}

/* A worker connected a channel, or failed to: idle, or gone. */
static void
ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_pool *p = arg;
	struct proxy_chan *ch;
	int sock;

	(void)fd;
	(void)what;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if ((ch = TAILQ_FIRST(&p->ready)) != NULL)
			TAILQ_REMOVE(&p->ready, ch, link);
		pthread_mutex_unlock(&p->mu);
		if (ch == NULL)
			break;
		if ((sock = cbc_resolve_fd(ch->c)) < 0) {
			p->retry_ms = mono_ms() + CHAN_RETRY_S * 1000;
			chan_free(ch);
			continue;
		}
		ch->evr = event_new(p->base, sock, EV_READ, chan_cb, ch);
		ch->evw = event_new(p->base, sock, EV_WRITE, chan_cb, ch);
		if (ch->evr == NULL || ch->evw == NULL)
			chan_free(ch);
		else
			TAILQ_INSERT_HEAD(&p->idle, ch, link);
	}
}

/* Loop thread: one more channel, connected by a worker, unless there are enough. */
static void
chan_grow(struct proxy_pool *p)
{
	struct proxy_chan *ch;

	if (p->nchan >= p->maxchan || mono_ms() < p->retry_ms)
		return;
	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return;
	ch->p = p;
	p->nchan++;
	if (queue_entry(p, NULL, ch) != 0)
		chan_free(ch);
}

/* A worker: connects a channel and hands it to the loop. */
static void
chan_connect(struct proxy_pool *p, struct proxy_chan *ch)
{
	int rc;

	if ((rc = cbc_new(&p->opts, &ch->c)) != 0)
		log_warnx("cannot create a broker client: %s", cbc_strerror(rc));
	else if (cbc_resolve_connect(ch->c) != 0)
		log_warnx("cannot connect to the broker: %s", cbc_errmsg(ch->c));
	pthread_mutex_lock(&p->mu);
	TAILQ_INSERT_TAIL(&p->ready, ch, link);
	pthread_mutex_unlock(&p->mu);
	event_active(p->readyev, EV_READ, 1);
}

/* ---- the workers ---- */

static void *
worker(void *arg)
{
	struct proxy_pool *p = arg;
	struct qent *e;
	struct proxy_job *job;
	struct proxy_chan *ch;
	cbc_t *c = NULL;
	int rc, stop;

	if ((rc = cbc_new(&p->opts, &c)) != 0)
		log_warnx("cannot create a broker client: %s", cbc_strerror(rc));
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->stop && TAILQ_EMPTY(&p->q))
			pthread_cond_wait(&p->cv, &p->mu);
		if ((e = TAILQ_FIRST(&p->q)) == NULL) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		TAILQ_REMOVE(&p->q, e, link);
		p->qlen--;
		stop = p->stop;
		if (e->chan != NULL && stop)	/* the loop is over: proxy_pool_free takes it */
			TAILQ_INSERT_TAIL(&p->ready, e->chan, link);
		pthread_mutex_unlock(&p->mu);
		job = e->job;
		ch = e->chan;
		free(e);
		if (ch != NULL) {
			if (!stop)
				chan_connect(p, ch);
			continue;
		}
		if (c == NULL)
			job_fail(job, 502, "credproxy: broker client unavailable");
		else
			run_resolve(c, job);
		if (job->status == 0 && job->need_addr)
			run_addr(job);
		/*
		 * A resolve request (a token) was found in this stack below the worker's frame:
		 * the dynamic linker's lazy-binding resolver had saved the vector registers
		 * there (docs/architecture.md). Wipe whatever this job's calls left.
		 */
		util_wipe_stack();
		job->done(job->arg, job);
	}
	cbc_free(c);
	return NULL;
}

int
proxy_pool_new(const struct cbc_opts *opts, int n, struct event_base *base,
    struct proxy_pool **out)
{
	struct proxy_pool *p;
	int i;

	*out = NULL;
	if (n < 1 || n > POOL_THREADS_MAX)
		return CB_ERR_INVAL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return CB_ERR_NOMEM;
	TAILQ_INIT(&p->q);
	TAILQ_INIT(&p->ready);
	TAILQ_INIT(&p->idle);
	TAILQ_INIT(&p->busy);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->url = opts->url ? strdup(opts->url) : NULL;
	p->cert = opts->cert ? strdup(opts->cert) : NULL;
	p->key = opts->key ? strdup(opts->key) : NULL;
	p->ca = opts->cacert ? strdup(opts->cacert) : NULL;
	p->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
	p->opts.url = p->url;
	p->opts.cert = p->cert;
	p->opts.key = p->key;
	p->opts.cacert = p->ca;
	p->opts.timeout_ms = p->timeout_ms;
	p->base = base;
	p->maxchan = n;
	if ((p->readyev = event_new(base, -1, 0, ready_cb, p)) == NULL) {
		proxy_pool_free(p);
		return CB_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		if (pthread_create(&p->th[i], NULL, worker, p) != 0)
			break;
		p->nth++;
	}
	if (p->nth == 0) {
		proxy_pool_free(p);
		return CB_ERR_NOMEM;
	}
	*out = p;
	return 0;
}

static int
queue_entry(struct proxy_pool *p, struct proxy_job *job, struct proxy_chan *ch)
{
	struct qent *e;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return CB_ERR_NOMEM;
	e->job = job;
	e->chan = ch;
	pthread_mutex_lock(&p->mu);
	if (p->stop || p->qlen >= POOL_QUEUE_MAX) {
		pthread_mutex_unlock(&p->mu);
		free(e);
		return CB_ERR_BUSY;
	}
	TAILQ_INSERT_TAIL(&p->q, e, link);
	p->qlen++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int
proxy_pool_submit(struct proxy_pool *p, struct proxy_job *job)
{
	struct proxy_chan *ch;

	if (!job->need_addr && (ch = TAILQ_FIRST(&p->idle)) != NULL) {
		TAILQ_REMOVE(&p->idle, ch, link);
		TAILQ_INSERT_TAIL(&p->busy, ch, link);
		ch->job = job;
		ch->tok = job->tok_next;
		chan_start(ch);
		return 0;
	}
	chan_grow(p);
	return queue_entry(p, job, NULL);
}

void
proxy_pool_free(struct proxy_pool *p)
{
	struct proxy_chan *ch;
	int i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	/* workers finish the queue first: every job's done() still runs */
	for (i = 0; i < p->nth; i++)
		pthread_join(p->th[i], NULL);
	/* the loop's channels: a job in flight on one stays its connection's */
	while ((ch = TAILQ_FIRST(&p->ready)) != NULL) {
		TAILQ_REMOVE(&p->ready, ch, link);
		chan_free(ch);
	}
	while ((ch = TAILQ_FIRST(&p->idle)) != NULL) {
		TAILQ_REMOVE(&p->idle, ch, link);
		chan_free(ch);
	}
	while ((ch = TAILQ_FIRST(&p->busy)) != NULL) {
		TAILQ_REMOVE(&p->busy, ch, link);
		chan_free(ch);
	}
	if (p->readyev != NULL)
		event_free(p->readyev);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->url);
	free(p->cert);
	free(p->key);
	free(p->ca);
	free(p);
}
