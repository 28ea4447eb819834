/*
 * kv_ranges.c - a stale replica whose missed keys are not known is
 * refilled by the hash ranges of keys where it differs from the source,
 * not copied whole (docs/kv.md "Resync by ranges").
 *
 * Missed keys (kv_missed.c) make a delta only while the scheduler that saw
 * the writes runs (or across a clean stop), and only for a copy in the
 * same store, with the partition out of doubt. In every other case -
 * after a scheduler crash, a set past its bound, a comparison that found a
 * replica different (kv_compare.c), a store whose log was cut - the copy
 * used to be dropped and copied whole, though it usually holds nearly
 * everything. Instead, the way anti-entropy repair compares Merkle-tree
 * leaves in Dynamo-style stores, both copies are asked for their digest
 * per hash range of the keys (RDIGEST, TSR_KV_RESYNC_RANGES ranges: a sum
 * of 128-bit pair hashes each, worker_kv_ranges.c), and only the ranges
 * whose digests differ are emptied on the target (RDROP) and copied from
 * the source (SCAN keeping those ranges' pairs).
 *
 * Why it is exact. The resync is already copying when the digests are
 * asked for: every write the partition takes from then on is forwarded to
 * the target, queued, and its keys are left out of the pages (sched_kv_
 * sync.c). Nothing is sent to the target until both digests are back; then
 * the RDROP goes first in its queue, before every forwarded write. A range
 * whose digests were equal held the same pairs on both when asked, and
 * the target gets every later write to it; a range that differed is
 * emptied first, then refilled by the writes and the pages. A write
 * applied on the source before its digest and forwarded too lands on the
 * target as well. The target is stale: nobody else writes it, and a write
 * it still held when it went stale was applied before the RDIGEST, which
 * its partition's thread runs after it.
 *
 * A target with nothing, a digest that does not come back (a worker from
 * before this change answers BAD_INPUT), or more than half the ranges
 * differing: the copy goes whole (DROP, then every page), as before.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

void tsr_sched_kv_ranges_free(kv_sync_t *y)
{
    tsr_sched_kv_digests_free(y);
    tsr_mem_free(y->s->mem, y->ranges);
    y->ranges = NULL;
}

/* Both digests are back: what goes first to dst, and what is scanned. */
static void decide(kv_sync_t *y)
{
    sched_t *s = y->s;
    const kv_digest_t *src = &y->dig[y->src], *dst = &y->dig[y->dst];
    const char *id = y->t->reps[(size_t)y->part * y->t->nrep + y->dst].id;
    const char *whole = !src->answered || !dst->answered     ? "a digest did not come back"
                        : dst->pairs == 0                    ? "it holds nothing"
                        : y->t->parts[y->part].ranges_failed ? "the last copy by ranges failed"
                                                             : NULL;
    uint32_t differ = 0;
    uint8_t *bits = NULL;
    if (!whole) {
        bits = tsr_mem_calloc(s->mem, TSR_KV_RESYNC_RANGES / 8, 1);
        if (!bits)
            whole = "out of memory";
    }
    for (uint32_t i = 0; !whole && i < TSR_KV_RESYNC_RANGES; i++)
        if (src->sums[2 * i] != dst->sums[2 * i] || src->sums[2 * i + 1] != dst->sums[2 * i + 1]) {
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
            differ++;
        }
    if (!whole && differ > TSR_KV_RESYNC_RANGES / 2)
        whole = "most ranges differ";
    tsr_wbuf_t msg;
    tsr_wbuf_init(&msg, s->mem);
    y->by_ranges = !whole;
    if (whole) {
        tsr_mem_free(s->mem, bits);
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: copying all of it to the replica on %s (%s)",
                      y->t->name, y->part, id, whole);
        tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_DROP, NULL, 0, &msg);
        if (msg.failed || !tsr_sched_kv_sync_push_first(y, TSR_KV_POP_DROP, msg.data, msg.len))
            y->failed = true;
    } else if (differ == 0) {
        tsr_mem_free(s->mem, bits);
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: the replica on %s holds what the source holds "
                      "(%llu pairs): nothing to copy",
                      y->t->name, y->part, id, (unsigned long long)dst->pairs);
        y->scanned = true; /* the writes forwarded meanwhile still go */
    } else {
        y->ranges = bits;
        y->nranges = differ;
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: %u of %u key ranges differ on the replica on "
                      "%s (%llu pairs there, %llu at the source): copying those",
                      y->t->name, y->part, differ, TSR_KV_RESYNC_RANGES, id,
                      (unsigned long long)dst->pairs, (unsigned long long)src->pairs);
        tsr_wbuf_t pl;
        tsr_wbuf_init(&pl, s->mem);
        tsr_wbuf_u32(&pl, TSR_KV_RESYNC_RANGES);
        tsr_wbuf_bytes(&pl, bits, TSR_KV_RESYNC_RANGES / 8);
        if (!pl.failed)
            tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_RDROP, pl.data, pl.len, &msg);
        if (pl.failed || msg.failed ||
            !tsr_sched_kv_sync_push_first(y, TSR_KV_POP_RDROP, msg.data, msg.len))
            y->failed = true;
        tsr_wbuf_free(&pl);
    }
    tsr_wbuf_free(&msg);
    tsr_sched_kv_digests_free(y); /* 64 KiB each: not kept for the copy */
}

/* A copy's digests: once both are in (or failed), decide, then go on. */
static void on_digest(kv_digest_t *d)
{
    kv_sync_t *y = d->y;
    if (--y->digests > 0)
        return;
    y->digesting = false;
    if (!y->failed)
        decide(y);
    tsr_sched_kv_sync_poke(y); /* may end y */
}

bool tsr_sched_kv_ranges_start(kv_sync_t *y)
{
    const sworker_t *dst_now =
        tsr_sched_kv_ready_worker(y->s, y->t->reps[(size_t)y->part * y->t->nrep + y->dst].id);
    if (dst_now != y->dst_w)
        return false; /* not the process the copy is written in: the copy goes whole */
    /* the target first: without its digest the source's is not needed */
    size_t reps[2] = {y->dst, y->src};
    y->digesting = true;
    y->digests = 1; /* ours, until both calls are out */
    for (int i = 0; i < 2; i++) {
        kv_digest_t *d = &y->dig[reps[i]];
        d->y = y;
        d->rep = reps[i];
        d->nranges = TSR_KV_RESYNC_RANGES;
        d->done = on_digest;
        y->digests++;
        if (!tsr_sched_kv_digest_ask(d)) {
            y->digests--; /* not answered: the copy goes whole */
            break;
        }
    }
    if (--y->digests > 0) {
        /* a failure from here on is a failure of a copy by ranges: the
         * next try goes whole (decide() sets it again) */
        y->by_ranges = true;
        return true;
    }
    /* no call went out */
    y->digesting = false;
    tsr_sched_kv_digests_free(y);
    return false;
}
