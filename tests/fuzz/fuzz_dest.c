/* fuzz-sources: src/dest.c */
/* fuzz-maxlen: 9000 */
/*
 * fuzz_dest.c: host, method and path normalisation and prefix matching.
 * Input: "host\nprefix\npath" (missing parts are empty). Properties: normalisation is
 * idempotent; a normalised host is lower-case LDH/IPv4/IPv6 of at most 253 bytes; a
 * normalised path never holds a dot segment, "//", a backslash, a control character or
 * an encoded separator or dot in its path part; a match is a segment-boundary prefix.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)	do { if (!(x)) abort(); } while (0)

static char host[DEST_PATH_MAX + 2], prefix[DEST_PATH_MAX + 2], path[DEST_PATH_MAX + 2];
static char out[DEST_PATH_MAX + 1], again[DEST_PATH_MAX + 1], pnorm[DEST_PATH_MAX + 1];

/* Copies the next '\n'-terminated part of data into dst (NUL-terminated, bounded). */
static size_t
take(const uint8_t *data, size_t size, size_t off, char *dst, size_t dstlen)
{
	size_t n = 0;

	while (off < size && data[off] != '\n') {
		if (n + 1 < dstlen)
			dst[n++] = (char)data[off];
		off++;
	}
	dst[n] = '\0';
	return off < size ? off + 1 : off;
}

static void
check_host(const char *h)
{
	size_t i, len;

	if (dest_host_normalise(h, out, DEST_HOST_MAX + 1) != 0) {
		CHECK(out[0] == '\0');
		return;
	}
	len = strlen(out);
	CHECK(len > 0 && len <= DEST_HOST_MAX);
	CHECK(out[len - 1] != '.' && out[0] != '.');
	CHECK(strstr(out, "..") == NULL);
	for (i = 0; i < len; i++) {
		CHECK((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') ||
		    out[i] == '-' || out[i] == '.' || out[i] == ':');
	}
	/* Idempotent. */
	CHECK(dest_host_normalise(out, again, DEST_HOST_MAX + 1) == 0);
	CHECK(strcmp(out, again) == 0);
}

static int
has_ci(const char *s, size_t n, const char *needle)
{
	size_t i, k, nl = strlen(needle);

	for (i = 0; i + nl <= n; i++) {
		for (k = 0; k < nl; k++) {
			char a = s[i + k], b = needle[k];

			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (a != b)
				break;
		}
		if (k == nl)
			return 1;
	}
	return 0;
}

/* The properties of a normalised path's path part (before '?'). */
static void
check_norm_path(const char *p)
{
	const char *q = strchr(p, '?');
	size_t n = q != NULL ? (size_t)(q - p) : strlen(p), i;

	CHECK(n > 0 && p[0] == '/');
	CHECK(memchr(p, '#', strlen(p)) == NULL);
	for (i = 0; p[i] != '\0'; i++)
		CHECK((unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f && p[i] != '\\');
	CHECK(!has_ci(p, n, "/../") && !has_ci(p, n, "/./") && !has_ci(p, n, "//"));
	CHECK(!(n >= 3 && memcmp(p + n - 3, "/..", 3) == 0));
	CHECK(!(n >= 2 && memcmp(p + n - 2, "/.", 2) == 0));
	CHECK(!has_ci(p, n, "%2f") && !has_ci(p, n, "%5c") && !has_ci(p, n, "%2e"));
	CHECK(!has_ci(p, strlen(p), "%00"));
	/* No segment is dots only, or dots then a parameter or an escape. */
	for (i = 0; i < n; i++) {
		size_t k = i + 1;

		if (p[i] != '/')
			continue;
		while (k < n && p[k] == '.')
			k++;
		if (k > i + 1)
			CHECK(k < n && p[k] != '/' && p[k] != ';' && p[k] != '%');
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off, plen;
	int m;

	off = take(data, size, 0, host, sizeof(host));
	off = take(data, size, off, prefix, sizeof(prefix));
	take(data, size, off, path, sizeof(path));

	check_host(host);
	(void)dest_method_valid(host);

	if (dest_path_normalise(path, pnorm, sizeof(pnorm)) != 0) {
		CHECK(pnorm[0] == '\0');
		/* Raw strings must not crash the matcher either. */
		(void)dest_path_matches(prefix, path);
		return 0;
	}
	check_norm_path(pnorm);
	CHECK(dest_path_normalise(pnorm, again, sizeof(again)) == 0);
	CHECK(strcmp(pnorm, again) == 0);

	if (dest_prefix_valid(prefix) != 0) {
		(void)dest_path_matches(prefix, pnorm);
		return 0;
	}
	check_norm_path(prefix);
	CHECK(strchr(prefix, '?') == NULL);
	m = dest_path_matches(prefix, pnorm);
	plen = strlen(prefix);
	if (m) {
		CHECK(strncmp(pnorm, prefix, plen) == 0);
		CHECK(prefix[plen - 1] == '/' || pnorm[plen] == '\0' || pnorm[plen] == '/' ||
		    pnorm[plen] == '?');
	} else {
		CHECK(strncmp(pnorm, prefix, plen) != 0 ||
		    (prefix[plen - 1] != '/' && pnorm[plen] != '\0' && pnorm[plen] != '/' &&
		    pnorm[plen] != '?'));
	}
	/* A prefix admits itself. */
	CHECK(dest_path_matches(prefix, prefix) == 1);
	return 0;
}
