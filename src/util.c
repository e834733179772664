/* util.c: small helpers shared by every module. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "err.h"
#include "util.h"

void
util_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

/* noinline: the buffer must be a frame of its own, below the caller's */
__attribute__((noinline)) void
util_wipe_stack(void)
{
	unsigned char pad[UTIL_STACK_WIPE];

	explicit_bzero(pad, sizeof(pad));
}

void
util_wipe_str(char *s)
{
	if (s == NULL)
		return;
	util_wipe_free(s, strlen(s));
}

int
util_strtoll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
		return CB_ERR_INVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return CB_ERR_INVAL;
	*out = v;
	return 0;
}

void
util_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

static int
util_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_unhex(const char *in, uint8_t *out, size_t outlen)
{
	size_t i;
	int hi, lo;

	if (strlen(in) != 2 * outlen)
		return CB_ERR_INVAL;
	for (i = 0; i < outlen; i++) {
		hi = util_hexval(in[2 * i]);
		lo = util_hexval(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return CB_ERR_INVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

char *
util_b64(const uint8_t *in, size_t len)
{
	char *out;

	if (len > INT_MAX / 2)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int
util_unb64(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
	uint8_t *buf;
	int n;
	size_t pad = 0;

	*out = NULL;
	*outlen = 0;
	if (inlen % 4 != 0 || inlen > INT_MAX / 2)
		return CB_ERR_INVAL;
	buf = malloc(inlen / 4 * 3 + 1);
	if (buf == NULL)
		return CB_ERR_NOMEM;
	n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)inlen);
	if (n < 0) {
		free(buf);
		return CB_ERR_INVAL;
	}
	if (inlen >= 1 && in[inlen - 1] == '=')
		pad++;
	if (inlen >= 2 && in[inlen - 2] == '=')
		pad++;
	*out = buf;
	*outlen = (size_t)n - pad;
	return 0;
}

int
util_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t off = 0;
	ssize_t n;
	int fd, rc = CB_ERR_IO;

	*out = NULL;
	*outlen = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return CB_ERR_IO;
	if (fstat(fd, &st) == -1)
		goto out;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		rc = CB_ERR_LIMIT;
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		rc = CB_ERR_NOMEM;
		goto out;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	buf[off] = '\0';
	*out = buf;		/* transferred */
	*outlen = off;
	buf = NULL;
	rc = 0;
out:
	if (buf != NULL)
		util_wipe_free(buf, (size_t)st.st_size + 1);
	close(fd);
	return rc;
}

int
util_check_private_file(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return CB_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", path);
		return CB_ERR_PERM;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, whylen, "%s: owned by uid %u, must be owned by uid %u (the daemon's user)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		return CB_ERR_PERM;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(why, whylen, "%s: mode %04o gives group/other access; "
		    "it must be 0600 or stricter (chmod 600 %s)",
		    path, (unsigned)(st.st_mode & 07777), path);
		return CB_ERR_PERM;
	}
	return 0;
}

static int
util_write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return CB_ERR_IO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
util_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return CB_ERR_INVAL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return CB_ERR_IO;
	rc = util_write_all(fd, data, len);
	if (rc == 0 && fchmod(fd, mode) == -1)
		rc = CB_ERR_IO;
	if (rc == 0 && fsync(fd) == -1)
		rc = CB_ERR_IO;
	if (close(fd) == -1 && rc == 0)
		rc = CB_ERR_IO;
	if (rc == 0 && rename(tmp, path) == -1)
		rc = CB_ERR_IO;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int
util_create_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return errno == EEXIST ? CB_ERR_EXISTS : CB_ERR_IO;
	rc = util_write_all(fd, data, len);
	if (rc == 0 && fchmod(fd, mode) == -1)
		rc = CB_ERR_IO;
	if (rc == 0 && fsync(fd) == -1)
		rc = CB_ERR_IO;
	if (close(fd) == -1 && rc == 0)
		rc = CB_ERR_IO;
	return rc;
}

char *
util_path_join(const char *dir, const char *name)
{
	size_t n;
	char *p;

	if (name[0] == '/' || dir == NULL || dir[0] == '\0')
		return strdup(name);
	n = strlen(dir) + strlen(name) + 2;
	if ((p = malloc(n)) == NULL)
		return NULL;
	snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	return p;
}

char *
util_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int64_t
util_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
util_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

unsigned long long
util_raise_nofile(unsigned long long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= want)
		return want;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return want;
	return rl.rlim_cur == RLIM_INFINITY ? want : (unsigned long long)rl.rlim_cur;
}

int
util_ratelimit_ok(struct util_ratelimit *r, int64_t period_us, unsigned long long *quiet)
{
	int64_t now = util_mono_us();

	if (r->last_us != 0 && now - r->last_us < period_us) {
		r->quiet++;
		return 0;
	}
	r->last_us = now;
	*quiet = r->quiet;
	r->quiet = 0;
	return 1;
}

void
util_rfc3339(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

uint64_t
util_hash(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

size_t
util_strlcpy(char *dst, const char *src, size_t dstlen)
{
	size_t n = strlen(src);

	if (dstlen > 0) {
		size_t c = n < dstlen - 1 ? n : dstlen - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

const char *
util_fmt_ll(long long v, char out[UTIL_LL_DIGITS])
{
	size_t i = UTIL_LL_DIGITS - 1;
	/* Negated in unsigned arithmetic: LLONG_MIN too. */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	out[i] = '\0';
	do {
		out[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0 && i > 1);
	if (v < 0)
		out[--i] = '-';
	return out + i;
}
