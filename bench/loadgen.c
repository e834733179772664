/*
 * loadgen.c: a small HTTP/1.1 load generator for the benchmarks (bench/run).
 *
 * Why our own: the Debian tools that speak TLS with a client certificate (ab, siege) are
 * single-threaded HTTP/1.0 or slow, report whole-millisecond percentiles, and cannot hold a
 * fixed request rate; h2load and wrk have no client-certificate option. This one holds a
 * fixed concurrency (-c) or a fixed total rate (-r), keeps connections alive, speaks TLS
 * with a client certificate (OpenSSL), and reports p50/p99/p99.9 in microseconds.
 *
 * loadgen -u https://127.0.0.1:8443/v1/resolve -c 64 -d 10 [-m POST] [-b body-file]
 *         [-B bodies-file] [--cert C --key K --cacert CA] [-r RATE] [-H "Name: value"]...
 *         [--new-conn] [--proxy HOST:PORT] [--samples FILE] [--warmup SECONDS]
 * -B: one body per line; requests take them round robin (each connection from its own offset),
 *     so a resolve benchmark spreads over many real tokens instead of one.
 * --proxy: open each connection through an HTTP proxy with CONNECT, then TLS (credproxy, mitmproxy).
 * --samples: write "t_ms latency_us" per request (t from the start), to cut percentiles by time.
 * --warmup: run that long first without counting (connection set-up, first reads); -d follows.
 * Every loop is bounded by the duration (-d) or by a retry count.
 * Prints one line of JSON: {"requests":N,"errors":N,"rps":X,"p50_us":..,"p99_us":..,"p999_us":..}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define HIST_BUCKETS	200000	/* 10 µs resolution up to 2 s, then clamped */
#define HIST_RES_US	10

struct opts {
	char host[256];
	char port[8];
	char path[1024];
	int tls;
	const char *method;
	char *body;
	size_t bodylen;
	const char *cert, *key, *cacert;
	char extra[4096];
	int conns;
	double duration;
	double rate;		/* total requests/s; 0 = closed loop */
	int new_conn;		/* one request per connection (handshake cost) */
	char proxy_host[256];	/* CONNECT through this proxy when set */
	char proxy_port[8];
	char **bodies;		/* -B: one body per line */
	size_t *bodylens;
	size_t nbodies;
	const char *samples;	/* --samples FILE */
	double warmup;		/* --warmup S: not counted (connections, caches, first reads) */
};

#define SAMPLES_MAX	(64u * 1024 * 1024)	/* per run, a bound on memory (512 MiB) */
struct sample {
	uint32_t t_ms;
	uint32_t lat_us;
};
static struct sample *samples;
static uint64_t nsamples;
static int64_t start_us;

static struct opts o = { .method = "GET", .conns = 16, .duration = 10 };
static SSL_CTX *ctx;
static volatile sig_atomic_t stop_flag;

/* SIGINT/SIGTERM end the run early, still printing the results (bench/run's scenario 4). */
static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}
static pthread_mutex_t hist_mtx = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *hist;
static uint64_t total_req, total_err;

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct conn {
	int fd;
	SSL *ssl;
	char buf[65536];
	size_t have;
};

static void
conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->have = 0;
}

/* CONNECT host:port through the proxy on the plain socket; 0 when it answered 2xx. */
static int
proxy_connect(struct conn *c)
{
	char req[600], buf[4096];
	size_t have = 0;
	ssize_t r;
	int n, i;

	n = snprintf(req, sizeof(req), "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n",
	    o.host, o.port, o.host, o.port);
	if (write(c->fd, req, (size_t)n) != n)
		return -1;
	/* Read the answer byte by byte so nothing of the TLS stream is swallowed. */
	for (i = 0; i < (int)sizeof(buf) - 1; i++) {
		r = read(c->fd, buf + have, 1);
		if (r != 1)
			return -1;
		have++;
		if (have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	buf[have] = '\0';
	if (have < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[9] != '2')
		return -1;
	return 0;
}

static int
conn_open(struct conn *c)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int one = 1;

	c->fd = -1;
	c->ssl = NULL;
	c->have = 0;
	if (getaddrinfo(o.proxy_host[0] != '\0' ? o.proxy_host : o.host,
	    o.proxy_host[0] != '\0' ? o.proxy_port : o.port, &hints, &res) != 0)
		return -1;
	c->fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, res->ai_addr, res->ai_addrlen) != 0) {
		freeaddrinfo(res);
		conn_close(c);
		return -1;
	}
	freeaddrinfo(res);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o.proxy_host[0] != '\0' && proxy_connect(c) != 0) {
		conn_close(c);
		return -1;
	}
	if (o.tls) {
		c->ssl = SSL_new(ctx);
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_tlsext_host_name(c->ssl, o.host);
		if (SSL_connect(c->ssl) != 1) {
			conn_close(c);
			return -1;
		}
	}
	return 0;
}

static int
conn_write(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		int w = o.tls ? SSL_write(c->ssl, p, (int)n) : (int)write(c->fd, p, n);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
conn_read(struct conn *c)
{
	int r;

	if (c->have >= sizeof(c->buf))
		return -1;
	r = o.tls ? SSL_read(c->ssl, c->buf + c->have, (int)(sizeof(c->buf) - c->have)) :
	    (int)read(c->fd, c->buf + c->have, sizeof(c->buf) - c->have);
	if (r <= 0)
		return -1;
	c->have += (size_t)r;
	return 0;
}

/* Reads one response (Content-Length or chunked with small bodies); returns status or -1. */
static int
read_response(struct conn *c, int *close_after)
{
	char *end, *p;
	long status, clen = -1;
	size_t head, need;

	for (;;) {
		end = memmem(c->buf, c->have, "\r\n\r\n", 4);
		if (end != NULL)
			break;
		if (conn_read(c) != 0)
			return -1;
	}
	head = (size_t)(end - c->buf) + 4;
	if (c->have < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
		return -1;
	status = strtol(c->buf + 9, NULL, 10);
	*close_after = 0;
	for (p = c->buf; p < end; p++) {
		if (*p != '\n')
			continue;
		if (strncasecmp(p + 1, "content-length:", 15) == 0)
			clen = strtol(p + 16, NULL, 10);
		else if (strncasecmp(p + 1, "connection: close", 17) == 0)
			*close_after = 1;
		else if (strncasecmp(p + 1, "transfer-encoding: chunked", 26) == 0)
			clen = -2;
	}
	if (clen == -2) {
		/* chunked: read until the terminating 0-size chunk */
		for (;;) {
			if (memmem(c->buf + head, c->have - head, "\r\n0\r\n\r\n", 7) != NULL ||
			    (c->have - head >= 5 && memcmp(c->buf + head, "0\r\n\r\n", 5) == 0)) {
				char *z = memmem(c->buf + head, c->have - head, "0\r\n\r\n", 5);
				need = (size_t)(z - c->buf) + 5;
				break;
			}
			if (conn_read(c) != 0)
				return -1;
		}
	} else {
		if (clen < 0)
			clen = 0;
		need = head + (size_t)clen;
		while (c->have < need)
			if (conn_read(c) != 0)
				return -1;
	}
	memmove(c->buf, c->buf + need, c->have - need);
	c->have -= need;
	return (int)status;
}

static void *
worker(void *arg)
{
	char req[8192 + 65536];
	int n, close_after, st;
	size_t len, bi = (size_t)(uintptr_t)arg;
	struct sample *ls = NULL;
	size_t nls = 0, cls = 0;
	struct conn c = { .fd = -1 };
	double per_conn_rate = o.rate > 0 ? o.rate / o.conns : 0;
	int64_t next = now_us(), t0;
	uint64_t *local = calloc(HIST_BUCKETS, sizeof(uint64_t));
	uint64_t nreq = 0, nerr = 0;
	size_t i;

	n = 0;
	len = 0;
	while (!stop_flag) {
		if (len == 0 || o.nbodies > 1) {
			const char *bd = o.body;
			size_t bl = o.bodylen;

			if (o.nbodies > 0) {
				bd = o.bodies[bi % o.nbodies];
				bl = o.bodylens[bi % o.nbodies];
				bi++;
			}
			n = snprintf(req, 8192, "%s %s HTTP/1.1\r\nHost: %s:%s\r\n%s"
			    "Content-Length: %zu\r\n%s\r\n", o.method, o.path, o.host, o.port,
			    o.extra, bl, o.new_conn ? "Connection: close\r\n" : "");
			memcpy(req + n, bd, bl);
			len = (size_t)n + bl;
		}
		if (per_conn_rate > 0) {
			int64_t t = now_us();
			if (t < next) {
				usleep((useconds_t)(next - t));
				continue;
			}
			next += (int64_t)(1e6 / per_conn_rate);
		}
		t0 = per_conn_rate > 0 ? next - (int64_t)(1e6 / per_conn_rate) : now_us();
		if (c.fd < 0 && conn_open(&c) != 0) {
			nerr++;
			usleep(1000);
			continue;
		}
		if (conn_write(&c, req, len) != 0 || (st = read_response(&c, &close_after)) < 0) {
			nerr++;
			conn_close(&c);
			continue;
		}
		if (t0 < start_us + (int64_t)(o.warmup * 1e6)) {
			if (close_after || o.new_conn)
				conn_close(&c);
			continue;
		}
		if (st >= 400)
			nerr++;
		{
			int64_t lat = now_us() - t0;
			size_t b = (size_t)(lat / HIST_RES_US);
			if (b >= HIST_BUCKETS)
				b = HIST_BUCKETS - 1;
			local[b]++;
			if (o.samples != NULL && nls < SAMPLES_MAX / (size_t)o.conns) {
				if (nls == cls) {
					size_t nc = cls == 0 ? 4096 : cls * 2;
					struct sample *p = realloc(ls, nc * sizeof(*ls));
					if (p != NULL) {
						ls = p;
						cls = nc;
					}
				}
				if (nls < cls) {
					ls[nls].t_ms = (uint32_t)((now_us() - start_us) / 1000);
					ls[nls].lat_us = (uint32_t)(lat > 0xffffffffLL ? 0xffffffffLL : lat);
					nls++;
				}
			}
		}
		nreq++;
		if (close_after || o.new_conn)
			conn_close(&c);
	}
	conn_close(&c);
	pthread_mutex_lock(&hist_mtx);
	for (i = 0; i < HIST_BUCKETS; i++)
		hist[i] += local[i];
	total_req += nreq;
	total_err += nerr;
	if (nls > 0) {
		struct sample *p = realloc(samples, (nsamples + nls) * sizeof(*samples));
		if (p != NULL) {
			samples = p;
			memcpy(samples + nsamples, ls, nls * sizeof(*ls));
			nsamples += nls;
		}
	}
	pthread_mutex_unlock(&hist_mtx);
	free(ls);
	free(local);
	return NULL;
}

static double
percentile(double q)
{
	uint64_t want = (uint64_t)(q * (double)total_req), acc = 0;
	size_t i;

	for (i = 0; i < HIST_BUCKETS; i++) {
		acc += hist[i];
		if (acc > want)
			return (double)(i * HIST_RES_US + HIST_RES_US / 2);
	}
	return (double)(HIST_BUCKETS * HIST_RES_US);
}

/* -B FILE: one body per line (LF removed), at most 1,000,000 lines. */
static int
load_bodies(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (o.nbodies < 1000000 && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || n > 65536)
			continue;
		if (o.nbodies == alloc) {
			alloc = alloc == 0 ? 1024 : alloc * 2;
			o.bodies = realloc(o.bodies, alloc * sizeof(*o.bodies));
			o.bodylens = realloc(o.bodylens, alloc * sizeof(*o.bodylens));
			if (o.bodies == NULL || o.bodylens == NULL) {
				fprintf(stderr, "loadgen: out of memory\n");
				exit(2);
			}
		}
		o.bodies[o.nbodies] = strdup(line);
		o.bodylens[o.nbodies] = (size_t)n;
		o.nbodies++;
	}
	free(line);
	fclose(f);
	if (o.nbodies == 0) {
		fprintf(stderr, "loadgen: %s: no bodies\n", path);
		return -1;
	}
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen -u URL [-c CONNS] [-d SECONDS] [-r RATE] [-m METHOD] "
	    "[-b BODYFILE] [-B BODIES-FILE] [-H 'Name: value'] [--cert C --key K --cacert CA] "
	    "[--new-conn] [--proxy HOST:PORT] [--samples FILE] [--warmup SECONDS]\n");
	exit(2);
}

static void
parse_url(const char *u)
{
	const char *p, *slash, *colon;

	if (strncmp(u, "https://", 8) == 0) {
		o.tls = 1;
		p = u + 8;
	} else if (strncmp(u, "http://", 7) == 0) {
		p = u + 7;
	} else {
		usage();
	}
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	colon = memchr(p, ':', (size_t)(slash - p));
	if (colon != NULL) {
		snprintf(o.host, sizeof(o.host), "%.*s", (int)(colon - p), p);
		snprintf(o.port, sizeof(o.port), "%.*s", (int)(slash - colon - 1), colon + 1);
	} else {
		snprintf(o.host, sizeof(o.host), "%.*s", (int)(slash - p), p);
		snprintf(o.port, sizeof(o.port), "%s", o.tls ? "443" : "80");
	}
	snprintf(o.path, sizeof(o.path), "%s", *slash ? slash : "/");
}

int
main(int argc, char **argv)
{
	static struct option lo[] = {
		{ "cert", required_argument, NULL, 1 },
		{ "key", required_argument, NULL, 2 },
		{ "cacert", required_argument, NULL, 3 },
		{ "new-conn", no_argument, NULL, 4 },
		{ "proxy", required_argument, NULL, 5 },
		{ "samples", required_argument, NULL, 6 },
		{ "warmup", required_argument, NULL, 7 },
		{ NULL, 0, NULL, 0 },
	};
	pthread_t *th;
	int ch, i, have_url = 0;
	int64_t t0, t1;
	FILE *f;

	while ((ch = getopt_long(argc, argv, "u:c:d:r:m:b:B:H:", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': parse_url(optarg); have_url = 1; break;
		case 'c': o.conns = (int)strtol(optarg, NULL, 10); break;
		case 'd': o.duration = strtod(optarg, NULL); break;
		case 'r': o.rate = strtod(optarg, NULL); break;
		case 'm': o.method = optarg; break;
		case 'b':
			if ((f = fopen(optarg, "rb")) == NULL) {
				perror(optarg);
				return 2;
			}
			o.body = malloc(65536);
			o.bodylen = fread(o.body, 1, 65536, f);
			fclose(f);
			break;
		case 'H':
			{
				size_t used = strlen(o.extra);
				snprintf(o.extra + used, sizeof(o.extra) - used, "%s\r\n", optarg);
			}
			break;
		case 1: o.cert = optarg; break;
		case 2: o.key = optarg; break;
		case 3: o.cacert = optarg; break;
		case 4: o.new_conn = 1; break;
		case 5:
			{
				const char *colon = strrchr(optarg, ':');
				if (colon == NULL)
					usage();
				snprintf(o.proxy_host, sizeof(o.proxy_host), "%.*s",
				    (int)(colon - optarg), optarg);
				snprintf(o.proxy_port, sizeof(o.proxy_port), "%s", colon + 1);
			}
			break;
		case 6: o.samples = optarg; break;
		case 7: o.warmup = strtod(optarg, NULL); break;
		case 'B':
			if (load_bodies(optarg) != 0)
				return 2;
			break;
		default: usage();
		}
	}
	if (!have_url || o.conns < 1 || o.conns > 4096 || o.duration <= 0)
		usage();
	if (o.body == NULL)
		o.body = calloc(1, 1);
	if (o.tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		/*
		 * Read what has arrived in one read(2), not each record's header and then its
		 * body: ~7 us less CPU per request here, which on this 2-core machine goes to
		 * the server under test (docs/performance.md D17).
		 */
		SSL_CTX_set_read_ahead(ctx, 1);
		if (o.cacert != NULL) {
			SSL_CTX_load_verify_locations(ctx, o.cacert, NULL);
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		}
		if (o.cert != NULL && (SSL_CTX_use_certificate_chain_file(ctx, o.cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, o.key, SSL_FILETYPE_PEM) != 1)) {
			ERR_print_errors_fp(stderr);
			return 2;
		}
	}
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);	/* a peer that closes must not end the run */
	}
	hist = calloc(HIST_BUCKETS, sizeof(uint64_t));
	th = calloc((size_t)o.conns, sizeof(*th));
	t0 = start_us = now_us();
	for (i = 0; i < o.conns; i++)
		pthread_create(&th[i], NULL, worker,
		    (void *)(uintptr_t)(o.nbodies > 0 ? (size_t)i * (o.nbodies / (size_t)o.conns + 1) : 0));
	{
		int64_t until = t0 + (int64_t)((o.warmup + o.duration) * 1e6);

		while (!stop_flag && now_us() < until)
			usleep(20000);
	}
	stop_flag = 1;
	for (i = 0; i < o.conns; i++)
		pthread_join(th[i], NULL);
	t1 = now_us();
	printf("{\"requests\":%llu,\"errors\":%llu,\"rps\":%.1f,\"p50_us\":%.0f,\"p99_us\":%.0f,"
	    "\"p999_us\":%.0f}\n", (unsigned long long)total_req, (unsigned long long)total_err,
	    (double)total_req * 1e6 / (double)(t1 - t0 - (int64_t)(o.warmup * 1e6)),
	    percentile(0.50), percentile(0.99),
	    percentile(0.999));
	if (o.samples != NULL) {
		uint64_t k;

		if ((f = fopen(o.samples, "w")) == NULL) {
			perror(o.samples);
			return 2;
		}
		for (k = 0; k < nsamples; k++)
			fprintf(f, "%u %u\n", samples[k].t_ms, samples[k].lat_us);
		fclose(f);
	}
	free(samples);
	free(th);
	free(hist);
	while (o.nbodies > 0)
		free(o.bodies[--o.nbodies]);
	free(o.bodies);
	free(o.bodylens);
	if (o.body != NULL)
		free(o.body);
	if (ctx != NULL)
		SSL_CTX_free(ctx);
	return 0;
}
