/*
 * dest.c: destination normalisation and matching. Everything here refuses what has
 * more than one reading (encoded separators and dots, dot segments, "//", backslashes,
 * control characters, ambiguous IPv4 forms) instead of guessing what the upstream
 * would make of it: a refused request costs a retry, a wrong guess leaks a credential.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "dest.h"
#include "err.h"
#include "util.h"

static int
is_lower_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* An IPv6 literal without brackets: canonical text form from inet_ntop. */
static int
host_ipv6(const char *in, size_t len, char *out, size_t outlen)
{
	struct in6_addr a;
	char buf[INET6_ADDRSTRLEN + 1];
	size_t i;

	if (len >= sizeof(buf))
		return CB_ERR_INVAL;
	/* Hex digits, colons and dots (embedded IPv4) only: no zone IDs, no brackets. */
	for (i = 0; i < len; i++) {
		if (hexval((unsigned char)in[i]) < 0 && in[i] != ':' && in[i] != '.')
			return CB_ERR_INVAL;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, &a) != 1)
		return CB_ERR_INVAL;
	if (inet_ntop(AF_INET6, &a, buf, sizeof(buf)) == NULL)
		return CB_ERR_INVAL;
	if (util_strlcpy(out, buf, outlen) >= outlen)
		return CB_ERR_INVAL;
	return 0;
}

int
dest_host_normalise(const char *in, char *out, size_t outlen)
{
	char buf[DEST_HOST_MAX + 2];
	size_t len, i, label, lastlabel;
	int alldigits, ch;
	struct in_addr a4;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (in == NULL || out == NULL || outlen == 0)
		return CB_ERR_INVAL;
	len = strnlen(in, DEST_HOST_MAX + 2);
	if (len == 0 || len > DEST_HOST_MAX + 1)
		return CB_ERR_INVAL;
	if (memchr(in, ':', len) != NULL)
		return host_ipv6(in, len, out, outlen);

	/* One trailing dot is the root label: "example.com." is "example.com". */
	if (in[len - 1] == '.')
		len--;
	if (len == 0 || len > DEST_HOST_MAX || len + 1 > outlen)
		return CB_ERR_INVAL;

	label = 0;
	lastlabel = 0;
	for (i = 0; i < len; i++) {
		ch = (unsigned char)in[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = ch - 'A' + 'a';
		if (ch == '.') {
			/* Empty label, or a label ending in '-'. */
			if (label == 0 || buf[i - 1] == '-')
				return CB_ERR_INVAL;
			label = 0;
			lastlabel = i + 1;
		} else if (is_lower_alnum(ch)) {
			if (++label > 63)
				return CB_ERR_INVAL;
		} else if (ch == '-') {
			if (label == 0)
				return CB_ERR_INVAL;
			if (++label > 63)
				return CB_ERR_INVAL;
		} else
			return CB_ERR_INVAL;
		buf[i] = (char)ch;
	}
	if (label == 0 || buf[len - 1] == '-')
		return CB_ERR_INVAL;
	buf[len] = '\0';

	/*
	 * A name whose last label is all digits is no DNS name: it must be a dotted-quad
	 * IPv4 address in its one canonical form (inet_pton refuses "127.1", "0x7f.0.0.1",
	 * "2130706433" and leading zeros), or it is refused.
	 */
	alldigits = 1;
	for (i = lastlabel; i < len; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			alldigits = 0;
			break;
		}
	}
	if (alldigits && inet_pton(AF_INET, buf, &a4) != 1)
		return CB_ERR_INVAL;

	memcpy(out, buf, len + 1);
	return 0;
}

int
dest_method_valid(const char *method)
{
	size_t i;

	if (method == NULL || method[0] == '\0')
		return CB_ERR_INVAL;
	for (i = 0; method[i] != '\0'; i++) {
		if (i >= DEST_METHOD_MAX)
			return CB_ERR_INVAL;
		if (method[i] < 'A' || method[i] > 'Z')
			return CB_ERR_INVAL;
	}
	return 0;
}

int
dest_port_valid(long long port)
{
	return (port >= 1 && port <= 65535) ? 0 : CB_ERR_INVAL;
}

/* Unreserved characters (RFC 3986 2.3) other than '.', which is never decoded. */
static int
decodable(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '~';
}

/* 1 when s (at least two bytes) spells the hex of a byte refused when encoded once. */
static int
double_encoded(const char *s)
{
	int hi, lo, ch;

	hi = hexval((unsigned char)s[0]);
	lo = hexval((unsigned char)s[1]);
	if (hi < 0 || lo < 0)
		return 0;
	ch = hi * 16 + lo;
	return ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\' || ch == '.' || ch == '%';
}

/*
 * 0 when the segment seg..end (decoded) could be a dot segment to someone: only dots
 * ("." and "..", but also "...", which some Windows servers trim to ".."), or dots
 * followed by a parameter (servlet containers read "..;x" as "..") or by an escape
 * that was kept encoded ("..%3B", "..%20").
 */
static int
segment_ok(const char *seg, const char *end)
{
	const char *p = seg;

	while (p < end && *p == '.')
		p++;
	if (p == seg)
		return 1;
	return p < end && *p != ';' && *p != '%';
}

/*
 * The shared normaliser of paths and prefixes. allow_query: a '?' starts a query,
 * copied through after the same character checks; otherwise '?' is refused.
 */
static int
path_normalise(const char *in, char *out, size_t outlen, int allow_query)
{
	size_t i, o, len, seg;
	int ch, hi, lo, inquery;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (in == NULL || out == NULL || outlen == 0)
		return CB_ERR_INVAL;
	len = strnlen(in, DEST_PATH_MAX + 1);
	if (len == 0 || len > DEST_PATH_MAX || in[0] != '/')
		return CB_ERR_INVAL;

	o = 0;
	seg = 0;	/* where the current segment starts in out */
	inquery = 0;
	for (i = 0; i < len; i++) {
		ch = (unsigned char)in[i];
		/* Controls, space, DEL, non-ASCII, backslash and fragments: refused anywhere. */
		if (ch <= 0x20 || ch >= 0x7f || ch == '\\' || ch == '#')
			return CB_ERR_INVAL;
		if (ch == '%') {
			if (i + 2 >= len)
				return CB_ERR_INVAL;
			hi = hexval((unsigned char)in[i + 1]);
			lo = hexval((unsigned char)in[i + 2]);
			if (hi < 0 || lo < 0)
				return CB_ERR_INVAL;
			ch = hi * 16 + lo;
			/* Encoded controls (and %00) are refused everywhere. */
			if (ch < 0x20 || ch == 0x7f)
				return CB_ERR_INVAL;
			/*
			 * Encoded separators and dots are never guessed at in the path; the
			 * query is not matched, and "?ref=a%2Fb" is common there.
			 */
			if (!inquery && (ch == '/' || ch == '\\' || ch == '.'))
				return CB_ERR_INVAL;
			i += 2;
			if (!inquery && decodable(ch)) {
				if (o + 1 >= outlen)
					return CB_ERR_INVAL;
				out[o++] = (char)ch;
			} else {
				/* Kept encoded, hex in upper case: one spelling per byte. */
				if (o + 3 >= outlen)
					return CB_ERR_INVAL;
				out[o++] = '%';
				out[o++] = "0123456789ABCDEF"[hi];
				out[o++] = "0123456789ABCDEF"[lo];
			}
			continue;
		}
		if (!inquery && (ch == '/' || ch == '?')) {
			/* Close the segment out[seg..o); only the last one may be empty. */
			if (ch == '/' && o > 0 && o == seg)
				return CB_ERR_INVAL;	/* "//" */
			if (o > seg && !segment_ok(out + seg, out + o))
				return CB_ERR_INVAL;
			if (ch == '?') {
				if (!allow_query)
					return CB_ERR_INVAL;
				inquery = 1;
			} else
				seg = o + 1;
		}
		if (o + 1 >= outlen)
			return CB_ERR_INVAL;
		out[o++] = (char)ch;
	}
	/* The last segment may be empty ("/repos/acme/"), never a dot segment. */
	if (!inquery && o > seg && !segment_ok(out + seg, out + o))
		return CB_ERR_INVAL;
	out[o] = '\0';
	/*
	 * Nor double encodings of what is refused, for upstreams that decode twice. Checked
	 * on the output: "%25%32%46" becomes "%252F" only once "%32%46" is decoded.
	 */
	for (i = 0; i + 4 < o && out[i] != '?'; i++) {
		if (out[i] == '%' && out[i + 1] == '2' && out[i + 2] == '5' &&
		    double_encoded(out + i + 3))
			return CB_ERR_INVAL;
	}
	return 0;
}

int
dest_path_normalise(const char *in, char *out, size_t outlen)
{
	int rc;

	rc = path_normalise(in, out, outlen, 1);
	if (rc != 0 && out != NULL && outlen > 0)
		out[0] = '\0';
	return rc;
}

int
dest_prefix_valid(const char *prefix)
{
	char buf[DEST_PATH_MAX + 1];

	if (path_normalise(prefix, buf, sizeof(buf), 0) != 0)
		return CB_ERR_INVAL;
	/* Matching compares against normalised paths: the prefix must be in normal form. */
	if (strcmp(buf, prefix) != 0)
		return CB_ERR_INVAL;
	return 0;
}

int
dest_path_matches(const char *prefix, const char *path)
{
	size_t plen;
	char next;

	if (prefix == NULL || prefix[0] == '\0')
		return 1;
	if (path == NULL)
		return 0;
	plen = strlen(prefix);
	if (strncmp(path, prefix, plen) != 0)
		return 0;
	/* A prefix holds no '?', so it matched inside the path part of path. */
	if (prefix[plen - 1] == '/')
		return 1;
	next = path[plen];
	return next == '\0' || next == '/' || next == '?';
}
