/* test_proxy_scrub.c: the streaming secret scrubber, whatever the chunking. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../client/proxy_scrub.h"
#include "../src/err.h"

int main(void);

#define OUT_MAX	8192
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct sink {
	uint8_t buf[OUT_MAX];
	size_t len;
	size_t calls;
};

static void
sink_emit(void *arg, const uint8_t *p, size_t n)
{
	struct sink *k = arg;

	assert_true(n > 0);
	assert_true(k->len + n <= sizeof(k->buf));
	memcpy(k->buf + k->len, p, n);
	k->len += n;
	k->calls++;
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

struct pat {
	const char *p;
	const char *r;
};

static struct scrub *
mk(const struct pat *pats, size_t n)
{
	struct scrub *s = NULL;
	size_t i;

	assert_int_equal(scrub_new(&s), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(scrub_add(s, (const uint8_t *)pats[i].p, strlen(pats[i].p),
		    (const uint8_t *)pats[i].r, strlen(pats[i].r)), 0);
	assert_int_equal(scrub_count(s), n);
	return s;
}

/* Feeds body in chunks of size step; checks the result against expect. */
static void
run_chunked(const struct pat *pats, size_t np, const char *body, size_t blen, size_t step,
    const char *expect)
{
	struct scrub *s = mk(pats, np);
	struct sink k;
	size_t off, n;

	memset(&k, 0, sizeof(k));
	for (off = 0; off < blen; off += n) {
		n = blen - off < step ? blen - off : step;
		assert_int_equal(scrub_feed(s, (const uint8_t *)body + off, n, sink_emit, &k), 0);
	}
	assert_int_equal(scrub_finish(s, sink_emit, &k), 0);
	if (k.len != strlen(expect) || memcmp(k.buf, expect, k.len) != 0)
		fail_msg("step %zu: got \"%.*s\", want \"%s\"", step, (int)k.len,
		    (const char *)k.buf, expect);
	scrub_free(s);
}

/* Naive whole-buffer reference: leftmost, longest pattern at each position. */
static size_t
reference(const struct pat *pats, size_t np, const char *b, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0, k, best, bl, pl;

	while (i < n) {
		best = np;
		bl = 0;
		for (k = 0; k < np; k++) {
			pl = strlen(pats[k].p);
			if (pl <= n - i && pl > bl && memcmp(b + i, pats[k].p, pl) == 0) {
				best = k;
				bl = pl;
			}
		}
		if (best < np) {
			assert_true(o + strlen(pats[best].r) < cap);
			memcpy(out + o, pats[best].r, strlen(pats[best].r));
			o += strlen(pats[best].r);
			i += bl;
		} else {
			assert_true(o + 1 < cap);
			out[o++] = b[i++];
		}
	}
	out[o] = '\0';
	return o;
}

/* The secret at every offset of a body, every fixed chunking 1..N. */
static void
test_secret_every_offset(void **state)
{
	static const struct pat pats[] = { { "sk-LIVE-9f8e7d6c5b4a", "cbt_tok" } };
	static const char filler[] = "HTTP echo: sk-LIVE-9f8e7d6c5b4 (almost) and s and sk-";
	char body[256], expect[256];
	size_t fl = strlen(filler), off, step, bl;

	for (off = 0; off <= fl; off++) {
		snprintf(body, sizeof(body), "%.*s%s%s", (int)off, filler, pats[0].p,
		    filler + off);
		snprintf(expect, sizeof(expect), "%.*s%s%s", (int)off, filler, pats[0].r,
		    filler + off);
		bl = strlen(body);
		for (step = 1; step <= bl; step++)
			run_chunked(pats, 1, body, bl, step, expect);
	}
}

/* Hold-back bound: a byte that cannot begin a pattern is emitted by the feed it came in. */
static void
test_holds_only_prefixes(void **state)
{
	static const struct pat pats[] = { { "SECRET", "x" } };
	struct scrub *s = mk(pats, 1);
	struct sink k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(scrub_feed(s, (const uint8_t *)"abc", 3, sink_emit, &k), 0);
	assert_int_equal(k.len, 3);
	assert_int_equal(scrub_held(s), 0);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"dSEC", 4, sink_emit, &k), 0);
	assert_int_equal(k.len, 4);	/* "SEC" held */
	assert_int_equal(scrub_held(s), 3);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"RE", 2, sink_emit, &k), 0);
	assert_int_equal(k.len, 4);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"X", 1, sink_emit, &k), 0);
	assert_int_equal(k.len, 10);	/* not the secret after all: all released */
	assert_int_equal(scrub_held(s), 0);
	assert_memory_equal(k.buf, "abcdSECREX", 10);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"SECRE", 5, sink_emit, &k), 0);
	assert_int_equal(k.len, 10);
	assert_int_equal(scrub_finish(s, sink_emit, &k), 0);
	assert_int_equal(k.len, 15);	/* the stream ended: a partial secret is just bytes */
	assert_int_equal(scrub_held(s), 0);
	assert_memory_equal(k.buf + 10, "SECRE", 5);
	scrub_free(s);
}

struct multi_case {
	struct pat pats[4];
	size_t np;
	const char *body;
	const char *expect;
};

static const struct multi_case multi_cases[] = {
	/* overlapping-prefix cases: a failed partial match must not swallow a real one */
	{ { { "aab", "R" } }, 1, "aaab", "aR" },
	{ { { "aab", "R" } }, 1, "aaaaaab", "aaaaR" },
	{ { { "abab", "R" } }, 1, "abababab", "RR" },
	{ { { "abab", "R" } }, 1, "ababab", "Rab" },
	{ { { "abcabd", "R" } }, 1, "abcabcabd", "abcR" },
	{ { { "aaaa", "R" } }, 1, "aaaaaaaaa", "RRa" },
	/* several patterns: longest at a position wins, whatever the split */
	{ { { "abc", "X" }, { "abcdef", "Y" } }, 2, "abcdefabcdeabc", "YXdeX" },
	{ { { "abcdef", "Y" }, { "abc", "X" } }, 2, "abcdefabcdeabc", "YXdeX" },
	{ { { "tok1", "A" }, { "tok2", "B" }, { "ok", "C" } }, 3, "tok1tok2ok tok3",
	    "ABC tC3" },
	{ { { "secret", "" } }, 1, "mysecretsecret!", "my!" },
	{ { { "s", "secret" } }, 1, "ss", "secretsecret" },
	/* binary patterns */
	{ { { "\x01\x02", "-" } }, 1, "\x01\x01\x02\x02", "\x01-\x02" },
	/* empty body */
	{ { { "abc", "X" } }, 1, "", "" },
};

static void
test_multi(void **state)
{
	const struct multi_case *c;
	char ref[256];
	size_t i, step, bl;

	for (i = 0; i < NELEM(multi_cases); i++) {
		c = &multi_cases[i];
		bl = strlen(c->body);
		reference(c->pats, c->np, c->body, bl, ref, sizeof(ref));
		assert_string_equal(ref, c->expect);	/* the table agrees with the reference */
		for (step = 1; step <= bl + 1; step++)
			run_chunked(c->pats, c->np, c->body, bl, step, c->expect);
	}
}

/* A small deterministic generator (test data only, not for anything secret). */
static uint32_t
xs(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*st = x;
	return x;
}

/*
 * Random bodies over a tiny alphabet (so patterns occur and overlap often), random
 * split points: the result always equals the whole-buffer reference and never holds a
 * pattern whose replacement cannot create it.
 */
static void
test_random_splits(void **state)
{
	static const struct pat pats[] = { { "abab", "<1>" }, { "bba", "<2>" },
	    { "aabaa", "<3>" } };
	char body[200], ref[1024];
	struct sink k;
	struct scrub *s;
	uint32_t st = 0x9e3779b9u;
	size_t iter, n, off, step, rl;

	for (iter = 0; iter < 3000; iter++) {
		n = xs(&st) % sizeof(body);
		for (off = 0; off < n; off++)
			body[off] = "ab"[xs(&st) % 2];
		rl = reference(pats, 3, body, n, ref, sizeof(ref));
		s = mk(pats, 3);
		memset(&k, 0, sizeof(k));
		for (off = 0; off < n; off += step) {
			step = 1 + xs(&st) % 9;
			if (step > n - off)
				step = n - off;
			assert_int_equal(scrub_feed(s, (uint8_t *)body + off, step, sink_emit,
			    &k), 0);
		}
		assert_int_equal(scrub_finish(s, sink_emit, &k), 0);
		assert_int_equal(k.len, rl);
		assert_memory_equal(k.buf, ref, rl);
		assert_false(contains(k.buf, k.len, "abab"));
		assert_false(contains(k.buf, k.len, "bba"));
		scrub_free(s);
	}
}

static void
test_string(void **state)
{
	static const struct pat pats[] = { { "Bearer sk-real", "Bearer cbt_x" },
	    { "sk-real", "cbt_x" } };
	struct scrub *s = mk(pats, 2), *e = NULL;
	char *out = NULL;

	assert_int_equal(scrub_string(s, "you sent: Bearer sk-real, sk-real", &out), 0);
	assert_string_equal(out, "you sent: Bearer cbt_x, cbt_x");
	free(out);
	assert_int_equal(scrub_string(s, "", &out), 0);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(scrub_string(s, "sk-rea", &out), 0);
	assert_string_equal(out, "sk-rea");
	free(out);
	/* no patterns: a copy */
	assert_int_equal(scrub_new(&e), 0);
	assert_int_equal(scrub_string(e, "sk-real", &out), 0);
	assert_string_equal(out, "sk-real");
	free(out);
	scrub_free(e);
	scrub_free(s);
}

static void
test_errors(void **state)
{
	struct scrub *s = NULL;
	size_t i;
	char p[8];

	assert_int_equal(scrub_new(&s), 0);
	assert_int_equal(scrub_add(s, (const uint8_t *)"", 0, (const uint8_t *)"x", 1),
	    CB_ERR_INVAL);
	for (i = 0; i < SCRUB_PATTERNS_MAX; i++) {
		snprintf(p, sizeof(p), "p%zu", i);
		assert_int_equal(scrub_add(s, (const uint8_t *)p, strlen(p), NULL, 0), 0);
	}
	assert_int_equal(scrub_add(s, (const uint8_t *)"zz", 2, NULL, 0), CB_ERR_LIMIT);
	assert_int_equal(scrub_count(s), SCRUB_PATTERNS_MAX);
	scrub_free(s);
	scrub_free(NULL);
	assert_int_equal(scrub_count(NULL), 0);
}

/* A pattern added while bytes are held keeps the stream correct. */
static void
test_add_midstream(void **state)
{
	struct scrub *s = NULL;
	struct sink k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(scrub_new(&s), 0);
	assert_int_equal(scrub_add(s, (const uint8_t *)"xyz", 3, (const uint8_t *)"1", 1), 0);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"axy", 3, sink_emit, &k), 0);
	assert_int_equal(scrub_add(s, (const uint8_t *)"xylophone", 9,
	    (const uint8_t *)"2", 1), 0);
	assert_int_equal(scrub_feed(s, (const uint8_t *)"lophone xyz", 11, sink_emit, &k), 0);
	assert_int_equal(scrub_finish(s, sink_emit, &k), 0);
	assert_int_equal(k.len, 4);
	assert_memory_equal(k.buf, "a2 1", 4);
	scrub_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_every_offset),
		cmocka_unit_test(test_holds_only_prefixes),
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_random_splits),
		cmocka_unit_test(test_string),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_add_midstream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
