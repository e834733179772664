/*
 * proxy_scrub.c: streaming replacement of secret values in response bytes.
 *
 * The stream is scanned left to right; at each position the longest pattern that
 * occurs there is replaced and scanning resumes after it, otherwise one byte is passed
 * through. A position is decided only once enough bytes are known to tell whether any
 * pattern occurs there, so the result does not depend on how the stream was split, and
 * a byte that could still begin a pattern is never emitted: at most (longest pattern - 1)
 * bytes are held back between feeds. Every buffer that saw response bytes is wiped.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/err.h"
#include "proxy_scrub.h"

#define SCRUB_PATTERN_MAX	65536	/* longest pattern or replacement accepted */

struct scrub_pat {
	uint8_t *p;
	size_t plen;
	uint8_t *r;
	size_t rlen;
};

struct scrub {
	struct scrub_pat pat[SCRUB_PATTERNS_MAX];
	size_t npat;
	size_t maxlen;		/* longest pattern */
	uint8_t first[256];	/* first[c]: some pattern starts with byte c */
	uint8_t *hold;		/* bytes that may still begin a pattern */
	size_t holdlen;
	uint8_t *work;		/* hold + the bytes of the current feed */
	size_t workcap;
};

int
scrub_new(struct scrub **out)
{
	struct scrub *s;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return CB_ERR_NOMEM;
	*out = s;
	return 0;
}

int
scrub_add(struct scrub *s, const uint8_t *pattern, size_t plen, const uint8_t *repl,
    size_t rlen)
{
	struct scrub_pat *sp;
	uint8_t *hold;

	if (s == NULL || pattern == NULL || plen == 0 || (repl == NULL && rlen > 0))
		return CB_ERR_INVAL;
	if (s->npat >= SCRUB_PATTERNS_MAX || plen > SCRUB_PATTERN_MAX ||
	    rlen > SCRUB_PATTERN_MAX)
		return CB_ERR_LIMIT;
	if (plen > s->maxlen) {
		/* The hold buffer never needs more than the longest pattern - 1 bytes. */
		hold = malloc(plen);
		if (hold == NULL)
			return CB_ERR_NOMEM;
		if (s->holdlen > 0)
			memcpy(hold, s->hold, s->holdlen);
		if (s->hold != NULL) {
			explicit_bzero(s->hold, s->maxlen);
			free(s->hold);
		}
		s->hold = hold;
	}
	sp = &s->pat[s->npat];
	sp->p = malloc(plen);
	sp->r = malloc(rlen > 0 ? rlen : 1);
	if (sp->p == NULL || sp->r == NULL) {
		free(sp->p);
		free(sp->r);
		sp->p = sp->r = NULL;
		return CB_ERR_NOMEM;
	}
	memcpy(sp->p, pattern, plen);
	if (rlen > 0)
		memcpy(sp->r, repl, rlen);
	sp->plen = plen;
	sp->rlen = rlen;
	s->npat++;
	if (plen > s->maxlen)
		s->maxlen = plen;
	s->first[pattern[0]] = 1;
	return 0;
}

size_t
scrub_count(const struct scrub *s)
{
	return s == NULL ? 0 : s->npat;
}

size_t
scrub_held(const struct scrub *s)
{
	return s == NULL ? 0 : s->holdlen;
}

/*
 * Decides position i of b[0..n). Returns the index of the pattern to replace there, -1
 * when no pattern occurs there, or -2 when it cannot be known yet (more bytes needed and
 * the stream is not final).
 */
static int
scrub_at(const struct scrub *s, const uint8_t *b, size_t n, size_t i, int final)
{
	const struct scrub_pat *sp;
	size_t k, avail = n - i;
	int best = -1, undecided = 0;

	if (!s->first[b[i]])
		return -1;
	for (k = 0; k < s->npat; k++) {
		sp = &s->pat[k];
		if (best >= 0 && sp->plen <= s->pat[best].plen)
			continue;
		if (sp->plen <= avail) {
			if (memcmp(b + i, sp->p, sp->plen) == 0)
				best = (int)k;
		} else if (!final && memcmp(b + i, sp->p, avail) == 0)
			undecided = 1;
	}
	/*
	 * A longer pattern still undecided must be waited for: taking the shorter match now
	 * would make the result depend on where the stream was split.
	 */
	if (undecided) {
		for (k = 0; k < s->npat; k++) {
			sp = &s->pat[k];
			if (sp->plen > avail && memcmp(b + i, sp->p, avail) == 0 &&
			    (best < 0 || sp->plen > s->pat[best].plen))
				return -2;
		}
	}
	return best;
}

/*
 * Scrubs b[0..n) to emit; returns the index from which bytes must be held back (n when
 * nothing is held; always n when final).
 */
static size_t
scrub_run(const struct scrub *s, const uint8_t *b, size_t n, int final, scrub_emit_fn emit,
    void *arg)
{
	size_t i = 0, run = 0;
	int m;

	while (i < n) {
		m = scrub_at(s, b, n, i, final);
		if (m == -1) {
			i++;
			continue;
		}
		if (i > run)
			emit(arg, b + run, i - run);
		if (m == -2)
			return i;
		if (s->pat[m].rlen > 0)
			emit(arg, s->pat[m].r, s->pat[m].rlen);
		i += s->pat[m].plen;
		run = i;
	}
	if (n > run)
		emit(arg, b + run, n - run);
	return n;
}

static int
scrub_process(struct scrub *s, const uint8_t *in, size_t len, int final, scrub_emit_fn emit,
    void *arg)
{
	uint8_t *w;
	size_t n, at;

	if (s == NULL || emit == NULL || (in == NULL && len > 0))
		return CB_ERR_INVAL;
	if (s->npat == 0) {
		if (len > 0)
			emit(arg, in, len);
		return 0;
	}
	if (len > SIZE_MAX - s->holdlen)
		return CB_ERR_LIMIT;
	n = s->holdlen + len;
	if (n == 0)
		return 0;
	if (n > s->workcap) {
		w = malloc(n);
		if (w == NULL)
			return CB_ERR_NOMEM;
		if (s->work != NULL) {
			explicit_bzero(s->work, s->workcap);
			free(s->work);
		}
		s->work = w;
		s->workcap = n;
	}
	if (s->holdlen > 0)
		memcpy(s->work, s->hold, s->holdlen);
	if (len > 0)
		memcpy(s->work + s->holdlen, in, len);
	at = scrub_run(s, s->work, n, final, emit, arg);
	explicit_bzero(s->hold, s->holdlen);
	s->holdlen = n - at;
	/* scrub_at holds back only a proper prefix of some pattern. */
	if (s->holdlen > 0)
		memcpy(s->hold, s->work + at, s->holdlen);
	explicit_bzero(s->work, n);
	return 0;
}

int
scrub_feed(struct scrub *s, const uint8_t *in, size_t len, scrub_emit_fn emit, void *arg)
{
	return scrub_process(s, in, len, 0, emit, arg);
}

int
scrub_finish(struct scrub *s, scrub_emit_fn emit, void *arg)
{
	return scrub_process(s, NULL, 0, 1, emit, arg);
}

struct scrub_strbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	int err;
};

static void
scrub_str_emit(void *arg, const uint8_t *p, size_t n)
{
	struct scrub_strbuf *sb = arg;
	uint8_t *np;
	size_t ncap;

	if (sb->err != 0)
		return;
	if (n >= sb->cap - sb->len) {
		ncap = sb->cap;
		while (n >= ncap - sb->len) {
			if (ncap > SIZE_MAX / 2) {
				sb->err = CB_ERR_NOMEM;
				return;
			}
			ncap *= 2;
		}
		/* Grow by copying so that the old buffer can be wiped. */
		np = malloc(ncap);
		if (np == NULL) {
			sb->err = CB_ERR_NOMEM;
			return;
		}
		memcpy(np, sb->p, sb->len);
		explicit_bzero(sb->p, sb->cap);
		free(sb->p);
		sb->p = np;
		sb->cap = ncap;
	}
	memcpy(sb->p + sb->len, p, n);
	sb->len += n;
}

int
scrub_string(const struct scrub *s, const char *in, char **out)
{
	struct scrub_strbuf sb;
	size_t n;

	*out = NULL;
	if (s == NULL || in == NULL)
		return CB_ERR_INVAL;
	n = strlen(in);
	sb.cap = n + 16;
	sb.len = 0;
	sb.err = 0;
	sb.p = malloc(sb.cap);
	if (sb.p == NULL)
		return CB_ERR_NOMEM;
	if (s->npat == 0)
		scrub_str_emit(&sb, (const uint8_t *)in, n);
	else
		(void)scrub_run(s, (const uint8_t *)in, n, 1, scrub_str_emit, &sb);
	if (sb.err != 0) {
		explicit_bzero(sb.p, sb.cap);
		free(sb.p);
		return sb.err;
	}
	sb.p[sb.len] = '\0';
	*out = (char *)sb.p;	/* transferred */
	return 0;
}

void
scrub_free(struct scrub *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->npat; i++) {
		explicit_bzero(s->pat[i].p, s->pat[i].plen);
		free(s->pat[i].p);
		explicit_bzero(s->pat[i].r, s->pat[i].rlen);
		free(s->pat[i].r);
	}
	if (s->hold != NULL) {
		explicit_bzero(s->hold, s->maxlen);
		free(s->hold);
	}
	if (s->work != NULL) {
		explicit_bzero(s->work, s->workcap);
		free(s->work);
	}
	explicit_bzero(s, sizeof(*s));
	free(s);
}
