/*
 * store_pcache.c: SQLite's own page cache, with one needless scan of it skipped.
 *
 * Every transaction's end truncates the connection's page cache at the database's
 * size (pager_end_transaction: sqlite3PcacheTruncate(dbSize)). SQLite's default cache
 * (pcache1) does work only when it ever held a page past that size, and it knows that
 * from the largest key it ever held. But when a B-tree split reorders its new pages,
 * balance_nonroot swaps two page numbers through a third one that no database page
 * can have: the pending-byte page, 1 GiB / page size + 1 (262,145 with 4 KiB pages).
 * From then on, in a database smaller than 1 GiB, pcache1's largest key is that
 * page, so the next commit scans every hash bucket of the cache: the writer's
 * 16 MiB cache (commit.c) holds ~4,000 pages, and random-key inserts into the
 * grants' indexes split pages in most batches. Measured on mint (bench/, scenario
 * 2; docs/performance.md D14): that scan was ~6 % of the broker's CPU.
 *
 * Here each cache keeps its own bound on the keys it holds, leaving the pending-byte
 * page out (balance_nonroot moves a page there and away again before it returns), and
 * the truncation is passed on only when a page past the new size may be held. Every
 * other call goes to SQLite's cache unchanged.
 */
#include "config.h"

#include <stdint.h>

#include <sqlite3.h>

#include "store_int.h"

/* SQLite's PENDING_BYTE: a page never used, at 1 GiB (sqlite3PendingByte). */
#define PCACHE_PENDING_BYTE	0x40000000u

struct pcache {
	sqlite3_pcache *base;
	unsigned int pending;		/* the pending-byte page's number at this page size */
	unsigned int max_key;		/* no page with a larger key is held (pending aside) */
};

static sqlite3_pcache_methods2 base;
static uint64_t stat_passed, stat_skipped, stat_parked;	/* atomics */

static sqlite3_pcache *
pc_create(int page_size, int extra, int purgeable)
{
	struct pcache *pc;

	if ((pc = sqlite3_malloc(sizeof(*pc))) == NULL)
		return NULL;
	if ((pc->base = base.xCreate(page_size, extra, purgeable)) == NULL) {
		sqlite3_free(pc);
		return NULL;
	}
	pc->pending = page_size > 0 ? PCACHE_PENDING_BYTE / (unsigned int)page_size + 1 : 0;
	pc->max_key = 0;
	return (sqlite3_pcache *)pc;
}

static void
pc_cachesize(sqlite3_pcache *p, int n)
{
	base.xCachesize(((struct pcache *)p)->base, n);
}

static int
pc_pagecount(sqlite3_pcache *p)
{
	return base.xPagecount(((struct pcache *)p)->base);
}

static void
pc_held(struct pcache *pc, unsigned int key)
{
	if (key > pc->max_key && key != pc->pending)
		pc->max_key = key;
}

static sqlite3_pcache_page *
pc_fetch(sqlite3_pcache *p, unsigned int key, int create)
{
	struct pcache *pc = (struct pcache *)p;
	sqlite3_pcache_page *pg;

	if ((pg = base.xFetch(pc->base, key, create)) != NULL)
		pc_held(pc, key);
	return pg;
}

static void
pc_unpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard)
{
	base.xUnpin(((struct pcache *)p)->base, pg, discard);
}

static void
pc_rekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned int old_key,
    unsigned int new_key)
{
	struct pcache *pc = (struct pcache *)p;

	base.xRekey(pc->base, pg, old_key, new_key);
	if (new_key == pc->pending)
		__atomic_add_fetch(&stat_parked, 1, __ATOMIC_RELAXED);
	pc_held(pc, new_key);
}

/* Drops every page with a key >= limit; nothing to drop when none can be held. */
static void
pc_truncate(sqlite3_pcache *p, unsigned int limit)
{
	struct pcache *pc = (struct pcache *)p;

	if (limit > pc->max_key) {
		__atomic_add_fetch(&stat_skipped, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&stat_passed, 1, __ATOMIC_RELAXED);
	base.xTruncate(pc->base, limit);
	pc->max_key = limit > 0 ? limit - 1 : 0;
}

static void
pc_destroy(sqlite3_pcache *p)
{
	struct pcache *pc = (struct pcache *)p;

	if (pc == NULL)
		return;
	base.xDestroy(pc->base);
	sqlite3_free(pc);
}

static void
pc_shrink(sqlite3_pcache *p)
{
	base.xShrink(((struct pcache *)p)->base);
}

void
store_pcache_install(void)
{
	static sqlite3_pcache_methods2 m;

	if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK ||
	    base.xCreate == NULL)
		return;		/* SQLite already in use: its cache stays as it is */
	m = base;		/* iVersion, pArg, xInit and xShutdown are SQLite's */
	m.xCreate = pc_create;
	m.xCachesize = pc_cachesize;
	m.xPagecount = pc_pagecount;
	m.xFetch = pc_fetch;
	m.xUnpin = pc_unpin;
	m.xRekey = pc_rekey;
	m.xTruncate = pc_truncate;
	m.xDestroy = pc_destroy;
	m.xShrink = pc_shrink;
	(void)sqlite3_config(SQLITE_CONFIG_PCACHE2, &m);
}

void
store_pcache_stats(uint64_t *passed, uint64_t *skipped, uint64_t *parked)
{
	*passed = __atomic_load_n(&stat_passed, __ATOMIC_RELAXED);
	*skipped = __atomic_load_n(&stat_skipped, __ATOMIC_RELAXED);
	*parked = __atomic_load_n(&stat_parked, __ATOMIC_RELAXED);
}
