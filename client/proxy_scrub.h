/*
 * proxy_scrub.h: streaming replacement of secret values in response bytes, whatever the
 * chunking: holds back at most (longest pattern - 1) bytes between feeds so a secret
 * split across reads or chunks is still caught. Patterns and held bytes are wiped.
 */
#ifndef CB_PROXY_SCRUB_H
#define CB_PROXY_SCRUB_H

#include <stddef.h>
#include <stdint.h>

struct scrub;

#define SCRUB_PATTERNS_MAX	16

/* Output sink: receives scrubbed bytes in order. */
typedef void (*scrub_emit_fn)(void *arg, const uint8_t *p, size_t n);

/* Creates an empty scrubber; *out owned by the caller (scrub_free). */
int scrub_new(struct scrub **out);
/*
 * Adds a pattern (copied) and its replacement (copied); empty patterns are refused,
 * more than SCRUB_PATTERNS_MAX is CB_ERR_LIMIT. At each position the longest pattern
 * wins; replacements are not rescanned. Use non-empty replacements: an empty one joins
 * the bytes around it, which could form a new occurrence.
 */
int scrub_add(struct scrub *s, const uint8_t *pattern, size_t plen, const uint8_t *repl,
    size_t rlen);
/* Number of patterns. */
size_t scrub_count(const struct scrub *s);
/* Bytes held back by the last feed (a proper prefix of some pattern); 0 after a finish. */
size_t scrub_held(const struct scrub *s);
/* Feeds bytes; emits everything that can no longer be the start of a pattern. */
int scrub_feed(struct scrub *s, const uint8_t *in, size_t len, scrub_emit_fn emit, void *arg);
/* Flushes held-back bytes at the end of the body. */
int scrub_finish(struct scrub *s, scrub_emit_fn emit, void *arg);
/* Scrubs a whole string (headers): *out malloc'd, NUL-terminated. */
int scrub_string(const struct scrub *s, const char *in, char **out);
/* Wipes and frees; NULL is fine. */
void scrub_free(struct scrub *s);

#endif
