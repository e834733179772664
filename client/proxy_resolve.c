/*
 * proxy_resolve.c: the resolve worker pool. The event loop never blocks on the broker
 * or on DNS: each request becomes a job that a worker runs (broker resolves over its
 * own reused mTLS connection, then getaddrinfo with the address checks), and the
 * worker hands the finished job back through job->done. There is no resolve cache:
 * a revoked grant is refused on the very next request.
 */
#include "config.h"

#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "err.h"
#include "log.h"
#include "proxy.h"
#include "util.h"

#define POOL_QUEUE_MAX	4096
#define POOL_THREADS_MAX	PROXY_WORKERS_MAX

struct qent {
	TAILQ_ENTRY(qent) link;
	struct proxy_job *job;
};
TAILQ_HEAD(qhead, qent);

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

static void
run_resolve(cbc_t *c, struct proxy_job *job)
{
	struct cbc_resolved *r = NULL;
	const char *code;
	char buf[128];
	size_t i;
	int rc;

	if (job->ntokens == 0) {
		rc = cbc_resolve(c, NULL, job->sandbox, job->host, job->port, job->method,
		    job->path, &r);
		if (rc == CBC_E_REFUSED) {
			code = cbc_error_code(c);
			log_info("sandbox %s: no token, %s %s:%d refused by the broker (%s)%s",
			    job->sandbox, job->method, job->host, job->port, code,
			    job->allowlisted ? ", allowlisted host" : "");
			if (!job->allowlisted) {
				snprintf(buf, sizeof(buf), "credproxy: refused: %s",
				    *code != '\0' ? code : "not_allowed");
				job_fail(job, 403, buf);
			}
			return;
		}
		if (rc != 0) {
			log_warnx("broker resolve failed: %s", cbc_errmsg(c));
			job_fail(job, 502, "credproxy: broker unavailable");
			return;
		}
		if (take_headers(job, r, PROXY_REDACTED) != 0)
			job_fail(job, 500, "credproxy: internal error");
		log_debug("sandbox %s: no token, %s %s:%d allowed, %zu header(s) injected",
		    job->sandbox, job->method, job->host, job->port, r->nheaders);
		cbc_resolved_free(r);
		return;
	}
	for (i = 0; i < job->ntokens; i++) {
		rc = cbc_resolve(c, job->tokens[i], job->sandbox, job->host, job->port,
		    job->method, job->path, &r);
		if (rc == CBC_E_REFUSED) {
			code = cbc_error_code(c);
			log_info("sandbox %s: token refused for %s %s:%d (%s)", job->sandbox,
			    job->method, job->host, job->port, code);
			snprintf(buf, sizeof(buf), "credproxy: refused: %s",
			    *code != '\0' ? code : "refused");
			job_fail(job, 403, buf);
			return;
		}
		if (rc != 0) {
			log_warnx("broker resolve failed: %s", cbc_errmsg(c));
			job_fail(job, 502, "credproxy: broker unavailable");
			return;
		}
		rc = take_headers(job, r, job->tokens[i]);
		cbc_resolved_free(r);
		r = NULL;
		if (rc != 0) {
			job_fail(job, 500, "credproxy: internal error");
			return;
		}
	}
	/* per request, and the broker audits every resolve: debug, not info */
	log_debug("sandbox %s: %zu token(s) resolved for %s %s:%d", job->sandbox, job->ntokens,
	    job->method, job->host, job->port);
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

static void *
worker(void *arg)
{
	struct proxy_pool *p = arg;
	struct cbc_opts o;
	struct qent *e;
	struct proxy_job *job;
	cbc_t *c = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	o.url = p->url;
	o.cert = p->cert;
	o.key = p->key;
	o.cacert = p->ca;
	o.timeout_ms = p->timeout_ms;
	if ((rc = cbc_new(&o, &c)) != 0)
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
		pthread_mutex_unlock(&p->mu);
		job = e->job;
		free(e);
		if (c == NULL)
			job_fail(job, 502, "credproxy: broker client unavailable");
		else
			run_resolve(c, job);
		if (job->status == 0 && job->need_addr)
			run_addr(job);
		job->done(job->arg, job);
	}
	cbc_free(c);
	return NULL;
}

int
proxy_pool_new(const struct cbc_opts *opts, int n, struct proxy_pool **out)
{
	struct proxy_pool *p;
	int i;

	*out = NULL;
	if (n < 1 || n > POOL_THREADS_MAX)
		return CB_ERR_INVAL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return CB_ERR_NOMEM;
	TAILQ_INIT(&p->q);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->url = opts->url ? strdup(opts->url) : NULL;
	p->cert = opts->cert ? strdup(opts->cert) : NULL;
	p->key = opts->key ? strdup(opts->key) : NULL;
	p->ca = opts->cacert ? strdup(opts->cacert) : NULL;
	p->timeout_ms = opts->timeout_ms;
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

int
proxy_pool_submit(struct proxy_pool *p, struct proxy_job *job)
{
	struct qent *e;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return CB_ERR_NOMEM;
	e->job = job;
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

void
proxy_pool_free(struct proxy_pool *p)
{
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
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->url);
	free(p->cert);
	free(p->key);
	free(p->ca);
	free(p);
}
