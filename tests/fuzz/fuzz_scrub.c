/* fuzz-sources: client/proxy_scrub.c */
/* fuzz-maxlen: 4096 */
/*
 * fuzz_scrub.c: the streaming scrubber on arbitrary bodies split at arbitrary points.
 * Input: up to 8 bytes of chunk sizes, then the body. Properties (abort() when broken):
 * the output never contains a secret, equals a whole-buffer reference whatever the
 * chunking, and scrub_string agrees with the stream.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/proxy_scrub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_MAX	65536

/*
 * Replacements are not empty and share no byte with the secrets, so they cannot form
 * one (an empty replacement could join the bytes around it into a new occurrence).
 */
static const struct {
	const char *p;
	const char *r;
} pats[] = {
	{ "sk-live-0123456789abcdef", "#" },
	{ "abcabd", "%%" },	/* overlaps itself: "abcabcabd" */
	{ "sk-live-0123", "!" },	/* a prefix of the first */
};

#define NPATS	(sizeof(pats) / sizeof(pats[0]))

static void
check(int cond)
{
	if (!cond)
		abort();
}

struct out {
	uint8_t *p;
	size_t len;
	size_t cap;
};

static void
out_emit(void *arg, const uint8_t *p, size_t n)
{
	struct out *o = arg;

	check(n > 0 && o->len + n <= o->cap);
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static int
contains(const uint8_t *h, size_t hl, const char *needle)
{
	size_t nl = strlen(needle), i;

	for (i = 0; i + nl <= hl; i++)
		if (memcmp(h + i, needle, nl) == 0)
			return 1;
	return 0;
}

/* Leftmost, longest replacement over the whole buffer. */
static void
reference(const uint8_t *b, size_t n, struct out *o)
{
	size_t i = 0, k, best, bl, pl;

	while (i < n) {
		best = NPATS;
		bl = 0;
		for (k = 0; k < NPATS; k++) {
			pl = strlen(pats[k].p);
			if (pl <= n - i && pl > bl && memcmp(b + i, pats[k].p, pl) == 0) {
				best = k;
				bl = pl;
			}
		}
		if (best < NPATS) {
			if (strlen(pats[best].r) > 0)
				out_emit(o, (const uint8_t *)pats[best].r, strlen(pats[best].r));
			i += bl;
		} else
			out_emit(o, b + i++, 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scrub *s = NULL;
	struct out got, want;
	const uint8_t *body, *steps;
	size_t nsteps, blen, off, n, k, i;
	char *str = NULL, *cstr;

	nsteps = size < 8 ? size : 8;
	steps = data;
	body = data + nsteps;
	blen = size - nsteps;
	if (blen > BODY_MAX)
		return 0;
	check(scrub_new(&s) == 0);
	for (k = 0; k < NPATS; k++)
		check(scrub_add(s, (const uint8_t *)pats[k].p, strlen(pats[k].p),
		    (const uint8_t *)pats[k].r, strlen(pats[k].r)) == 0);
	got.cap = want.cap = 2 * blen + 16;
	got.len = want.len = 0;
	got.p = malloc(got.cap);
	want.p = malloc(want.cap);
	check(got.p != NULL && want.p != NULL);
	for (off = 0, i = 0; off < blen; off += n, i++) {
		n = nsteps > 0 ? (size_t)steps[i % nsteps] % 64 + 1 : blen;
		if (n > blen - off)
			n = blen - off;
		check(scrub_feed(s, body + off, n, out_emit, &got) == 0);
	}
	check(scrub_finish(s, out_emit, &got) == 0);
	reference(body, blen, &want);
	check(got.len == want.len && memcmp(got.p, want.p, got.len) == 0);
	for (k = 0; k < NPATS; k++)
		check(!contains(got.p, got.len, pats[k].p));

	/* Headers: the same result on the part before any NUL. */
	cstr = malloc(blen + 1);
	check(cstr != NULL);
	memcpy(cstr, body, blen);
	cstr[blen] = '\0';
	check(scrub_string(s, cstr, &str) == 0);
	want.len = 0;
	reference((const uint8_t *)cstr, strlen(cstr), &want);
	check(strlen(str) == want.len && memcmp(str, want.p, want.len) == 0);
	free(str);
	free(cstr);
	free(got.p);
	free(want.p);
	scrub_free(s);
	return 0;
}
