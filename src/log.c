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

static const char *log_prog = "credbroker";
static int log_lvl = LOG_LVL_INFO;

void
log_init(const char *progname, int level)
{
	if (progname != NULL)
		log_prog = progname;
	log_lvl = level;
}

int
log_level(void)
{
	return log_lvl;
}

static void
log_vemit(int level, const char *func, int with_errno, const char *fmt, va_list ap)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char line[2048];
	char when[32];
	struct timespec ts;
	struct tm tm;
	int saved = errno;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%d] %s %s: ", when,
	    ts.tv_nsec / 1000000, log_prog, (int)getpid(), names[level], func);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
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
