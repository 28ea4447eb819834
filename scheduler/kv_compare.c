/*
 * kv_compare.c - a partition in doubt has its fresh replicas compared
 * (docs/kv.md "On a cluster", Doubt).
 *
 * Doubt (kv_missed.c) means a write may have been applied on some fresh
 * replicas and not on others: a write that no replica answered, or any
 * write in flight when the last scheduler died (a catalog loaded after a
 * crash puts every partition in doubt). Such a write was never
 * acknowledged, so either outcome is allowed, but not both: reads go to
 * the primary, and if it fails later the next replica must not answer an
 * older value than the one it served (a read that goes back in time).
 *
 * So once every fresh replica of a partition in doubt is up, the scheduler
 * holds the partition's writes back (the resync slot, sched_kv_sync.c:
 * the write in flight finishes, new ones wait), asks each fresh replica
 * for the DIGEST of its copy (kv_msg.h: an order-free sum of a 128-bit
 * hash of every pair), and marks stale every replica whose digest differs
 * from the primary's (saved in the catalog before any write runs again):
 * it is then refilled whole from the primary by an ordinary resync, and
 * the partition is out of doubt. The primary's copy wins because it is
 * the one reads have been served from. A digest that does not come back
 * (the worker died, an older worker) leaves the partition in doubt, to be
 * compared again 5 s later; a replica that did answer and differs is
 * marked all the same.
 *
 * The comparison costs one scan of the partition on each replica (on the
 * worker, nothing crosses the network but 24 bytes) and holds the
 * partition's writes for that long; at most KV_SYNC_MAX comparisons and
 * resyncs run at once. Reads go on, from the primary.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

bool tsr_sched_kv_compare_due(sched_t *s, const skv_table_t *t, uint32_t part, size_t *src)
{
    if (!t->parts[part].doubt)
        return false;
    size_t fresh = 0, first = t->nrep;
    for (size_t r = 0; r < t->nrep; r++) {
        const skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
        if (!rep->id[0] || rep->stale)
            continue;
        if (!tsr_sched_kv_ready_worker(s, rep->id))
            return false; /* one is down: it goes stale at the next write, or is compared later */
        if (first == t->nrep)
            first = r;
        fresh++;
    }
    if (fresh < 2)
        return false; /* nothing to compare (a stale one is copied whole, which ends the doubt) */
    *src = first;
    return true;
}

/* Every digest is back (or its call failed): mark those that differ from
 * src's, and end the doubt when every fresh replica answered. */
static void compare_end(kv_sync_t *y)
{
    sched_t *s = y->s;
    skv_table_t *t = y->t;
    if (tsr_sched_kv_find(s, t->name) != t) { /* dropped meanwhile */
        tsr_sched_kv_sync_release(y, false);
        return;
    }
    /* the primary must still be the process that answered, fresh: if it
     * died or went stale meanwhile, reads moved to another replica, whose
     * copy must not be thrown away for the old primary's */
    const kv_digest_t *ref = &y->dig[y->src];
    const skv_rep_t *src = &t->reps[(size_t)y->part * t->nrep + y->src];
    if (src->stale || tsr_sched_kv_ready_worker(s, src->id) != ref->w)
        y->failed = true;
    bool usable = ref->answered && !y->failed, all = usable;
    unsigned differ = 0;
    for (size_t r = 0; usable && r < t->nrep; r++) {
        const kv_digest_t *c = &y->dig[r];
        if (!c->asked || r == y->src)
            continue;
        if (!c->answered) {
            all = false;
            continue;
        }
        if (c->pairs == ref->pairs && c->sums[0] == ref->sums[0] && c->sums[1] == ref->sums[1])
            continue;
        differ++;
        const skv_rep_t *rep = &t->reps[(size_t)y->part * t->nrep + r];
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: the replica on %s differs from the one on %s "
                      "(%llu pairs against %llu): it is stale and will be refilled from it",
                      t->name, y->part, rep->id, t->reps[(size_t)y->part * t->nrep + y->src].id,
                      (unsigned long long)c->pairs, (unsigned long long)ref->pairs);
        /* saved before the writes that wait run (no missed keys: whole) */
        tsr_sched_kv_mark_stale(s, t, y->part, r, NULL);
    }
    t->parts[y->part].compare_failed = !all;
    s->kv->compares[!all ? KV_COMPARE_FAILED : differ ? KV_COMPARE_DIFFER : KV_COMPARE_AGREE]++;
    if (all) {
        t->parts[y->part].doubt = false;
        if (differ == 0)
            tsr_sched_log(s->p->log, "scheduler",
                          "kv table '%s' partition %u: its fresh replicas agree (%llu pairs); "
                          "it is out of doubt",
                          t->name, y->part, (unsigned long long)ref->pairs);
    } else {
        t->parts[y->part].retry_ms = tsr_sched_now_ms() + 5000;
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: comparing its replicas failed (a digest did "
                      "not come back); it stays in doubt and is compared again later",
                      t->name, y->part);
    }
    tsr_sched_kv_sync_release(y, all);
}

static void on_digest(kv_digest_t *d)
{
    kv_sync_t *y = d->y;
    if (--y->digests == 0)
        compare_end(y);
}

bool tsr_sched_kv_compare_start(kv_sync_t *y)
{
    sched_t *s = y->s;
    skv_table_t *t = y->t;
    y->phase = KV_SYNC_COMPARING;
    /* the write in flight when it was planned may have made a replica
     * stale, or a worker died: a resync may be due instead */
    if (tsr_sched_kv_find(s, t->name) != t || !tsr_sched_kv_compare_due(s, t, y->part, &y->src)) {
        tsr_sched_kv_sync_release(y, true);
        return false;
    }
    y->digests = 1; /* ours, until every call is out */
    for (size_t r = 0; r < t->nrep; r++) {
        const skv_rep_t *rep = &t->reps[(size_t)y->part * t->nrep + r];
        kv_digest_t *d = &y->dig[r];
        if (!rep->id[0] || rep->stale)
            continue;
        d->y = y;
        d->rep = r;
        d->nranges = 1; /* the whole copy */
        d->done = on_digest;
        y->digests++;
        if (!tsr_sched_kv_digest_ask(d))
            y->digests--; /* asked, never answered: the comparison fails */
    }
    if (--y->digests > 0)
        return true;
    compare_end(y);
    return false;
}
