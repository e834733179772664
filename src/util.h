/* util.h: small helpers shared by every module (bounded parsing, encoding, files, time). */
#ifndef CB_UTIL_H
#define CB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Wipes len bytes at p (explicit_bzero) and frees p; NULL is fine. */
void util_wipe_free(void *p, size_t len);
/* Wipes a NUL-terminated string (its strlen) and frees it; NULL is fine. */
void util_wipe_str(char *s);
/*
 * Wipes UTIL_STACK_WIPE bytes of the calling thread's stack below the caller's frame:
 * what functions the caller called (TLS libraries among them) left behind there.
 */
#define UTIL_STACK_WIPE (32 * 1024)
void util_wipe_stack(void);

/* Parses a whole decimal string into [min, max]; returns 0 or CB_ERR_INVAL. */
int util_strtoll(const char *s, long long min, long long max, long long *out);

/* Lower-case hex of in into out (needs 2*len+1 bytes). */
void util_hex(const uint8_t *in, size_t len, char *out);
/* Decodes exactly outlen bytes of hex; returns 0 or CB_ERR_INVAL. */
int util_unhex(const char *in, uint8_t *out, size_t outlen);
/* Standard base64 (with padding) of in; returns a malloc'd string owned by the caller, or NULL. */
char *util_b64(const uint8_t *in, size_t len);
/* Decodes standard base64; *out is malloc'd (caller wipes and frees). Returns 0 or an error. */
int util_unb64(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

/* Reads a whole file of at most max bytes; *out is malloc'd and NUL-terminated. */
int util_read_file(const char *path, size_t max, uint8_t **out, size_t *outlen);
/*
 * Checks that path is a regular file owned by the current effective user with no
 * group or other permission bits; returns 0, CB_ERR_PERM (message in why) or CB_ERR_IO.
 */
int util_check_private_file(const char *path, char *why, size_t whylen);
/* Writes data to path atomically (temp file, fsync, rename) with the given mode. */
int util_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* Creates a file that must not exist yet (O_EXCL) with the given mode and writes data. */
int util_create_file(const char *path, const void *data, size_t len, mode_t mode);

/* Joins dir and name into a malloc'd path; name is returned copied if absolute. */
char *util_path_join(const char *dir, const char *name);
/* Returns the directory part of path as a malloc'd string ("." when none). */
char *util_dirname(const char *path);

/* Wall-clock seconds since the epoch. */
int64_t util_now(void);
/* Monotonic time in microseconds. */
int64_t util_mono_us(void);
/*
 * A log line's rate limit: util_ratelimit_ok is 1 when the line may be written now (the
 * first time, or period_us after the last one written), with *quiet the calls refused
 * since that one; else 0 and the call is counted. Not locked: one per thread, or under
 * the caller's lock. Zero-initialised means never logged.
 */
struct util_ratelimit {
	int64_t last_us;
	unsigned long long quiet;
};
int util_ratelimit_ok(struct util_ratelimit *r, int64_t period_us, unsigned long long *quiet);

/*
 * Raises the soft RLIMIT_NOFILE to want when the hard limit allows, else to the hard
 * limit. Returns the soft limit in effect (at least want when it sufficed, or when the
 * limits cannot be read).
 */
unsigned long long util_raise_nofile(unsigned long long want);

/* Formats epoch seconds as RFC 3339 UTC ("2026-01-02T03:04:05Z") into out (>= 21 bytes). */
void util_rfc3339(int64_t t, char *out, size_t outlen);

/* Copies src into dst of size dstlen, always NUL-terminating; returns strlen(src). */
size_t util_strlcpy(char *dst, const char *src, size_t dstlen);
/* FNV-1a over len bytes: the caches' set index (not for anything an attacker must not steer). */
uint64_t util_hash(const void *p, size_t len);
/* Room for any long long in decimal, sign and NUL included. */
#define UTIL_LL_DIGITS	24
/*
 * v in decimal into out (NUL-terminated) without printf: returns where the digits start
 * in out (they end at the NUL). LLONG_MIN included.
 */
const char *util_fmt_ll(long long v, char out[UTIL_LL_DIGITS]);

#endif
