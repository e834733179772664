/* log.c: one line per event on stderr, written with a single write(2) so threads do not interleave. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *log_prog = "credbroker";
static int log_lvl = LOG_LVL_INFO;
static int log_pid;		/* set by log_init (no process forks after it); 0: ask */
static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* This thread's last second, formatted: every request logs a line, gmtime+strftime once a second. */
static __thread time_t log_sec = (time_t)-1;
static __thread char log_when[32];

void
log_init(const char *progname, int level)
{
	if (progname != NULL)
		log_prog = progname;
	log_lvl = level;
	log_pid = (int)getpid();
}

/*
 * "2026-11-27T07:48:24.123Z prog[pid] level func: " into line (at most len bytes).
 * Returns the length written, 0 when it does not fit.
 */
static int
log_head(char *line, size_t len, int level, const char *func)
{
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != log_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		if (strftime(log_when, sizeof(log_when), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			log_when[0] = '\0';
		log_sec = ts.tv_sec;
	}
	n = snprintf(line, len, "%s.%03ldZ %s[%d] %s %s: ", log_when, ts.tv_nsec / 1000000,
	    log_prog, log_pid != 0 ? log_pid : (int)getpid(), log_names[level], func);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return n;
}

int
log_level(void)
{
	return log_lvl;
}

static void
log_vemit(int level, const char *func, int with_errno, const char *fmt, va_list ap)
{
	char line[2048];
	int saved = errno;
	int n, m;

	n = log_head(line, sizeof(line), level, func);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (with_errno) {
		m = snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved));
		if (m > 0)
			n += m;
		if ((size_t)n >= sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

/* Appends s (at most max bytes of it) to line at *n, bounded by len (room kept for '\n'). */
static void
log_put(char *line, size_t len, size_t *n, const char *s, size_t max)
{
	size_t k = strnlen(s, max);

	if (k > len - 1 - *n)
		k = len - 1 - *n;
	memcpy(line + *n, s, k);
	*n += k;
}

/*
 * Appends field s (at most max bytes of it) as log_put does, with every byte that could
 * forge or break a line or a field written as \xNN: control bytes, bytes over 0x7e,
 * '"' and '\\', and a space unless the field is quoted. A client certificate's identity
 * is the client's text.
 */
static void
log_put_field(char *line, size_t len, size_t *n, const char *s, size_t max, int quoted)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;
	size_t i;

	for (i = 0; i < max && s[i] != '\0'; i++) {
		c = (unsigned char)s[i];
		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (*n + 1 > len - 1)
				return;
			line[(*n)++] = (char)c;
		} else if (c == ' ' && quoted) {
			if (*n + 1 > len - 1)
				return;
			line[(*n)++] = ' ';
		} else {
			if (*n + 4 > len - 1)
				return;
			line[(*n)++] = '\\';
			line[(*n)++] = 'x';
			line[(*n)++] = hex[c >> 4];
			line[(*n)++] = hex[c & 0xf];
		}
	}
}

static void
log_put_num(char *line, size_t len, size_t *n, long long v)
{
	char tmp[UTIL_LL_DIGITS];

	log_put(line, len, n, util_fmt_ll(v, tmp), sizeof(tmp));
}

void
log_request(const char *func, const char *peer, const char *identity, const char *route,
    unsigned int status, const char *grant_id, long long latency_us)
{
	char line[1024];
	size_t n;
	int saved = errno;

	if (LOG_LVL_INFO > log_lvl)
		return;
	/* What log_info with the format in log.h writes, without printf. */
	n = (size_t)log_head(line, sizeof(line), LOG_LVL_INFO, func);
	log_put(line, sizeof(line), &n, "peer=", 5);
	log_put_field(line, sizeof(line), &n, peer, 64, 0);
	log_put(line, sizeof(line), &n, " identity=", 10);
	log_put_field(line, sizeof(line), &n, identity, 256, 0);
	log_put(line, sizeof(line), &n, " route=\"", 8);
	log_put_field(line, sizeof(line), &n, route, 128, 1);
	log_put(line, sizeof(line), &n, "\" status=", 9);
	log_put_num(line, sizeof(line), &n, status);
	log_put(line, sizeof(line), &n, " grant_id=", 10);
	log_put_field(line, sizeof(line), &n, grant_id, 64, 0);
	log_put(line, sizeof(line), &n, " latency_us=", 12);
	log_put_num(line, sizeof(line), &n, latency_us);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

void
log_emit(int level, const char *func, int with_errno, const char *fmt, ...)
{
	va_list ap;

	if (level > log_lvl)
		return;
	va_start(ap, fmt);
	log_vemit(level, func, with_errno, fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *func, int with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERR, func, with_errno, fmt, ap);
	va_end(ap);
	exit(1);
}
