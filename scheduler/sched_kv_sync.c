/*
 * sched_kv_sync.c - resync of a stale kv replica (docs/kv.md "On a
 * cluster", Replication): a replica that missed an acknowledged write is
 * stale (sched_kv.c); once its worker is up again and a fresh replica
 * exists, the writes in flight finish (new ones wait that long), the stale
 * copy is dropped and refilled page by page (SCAN on the fresh replica;
 * each page, whose "u32 n, pairs" is a LOAD payload, LOADed durably into
 * the stale one) while the partition's writes go on.
 *
 * Writes during the copy: every write's effect that a fresh replica
 * applied (a plain write's PUT, DEL or LOAD once the first replica did it; a
 * transaction's TAPPLY once a replica took it) is also queued for the
 * target, behind the pages queued before it, and its keys are remembered.
 * The target gets one message at a time, in queue order, so it applies the
 * pages and the writes in the order they were queued. A page is queued when
 * it arrives; a pair of it whose key a write touched since the copy began
 * is left out: the page may have been read before that write (when the
 * source is a backup, the write's effect reaches it after a SCAN already
 * waiting there), and the write's own effect, queued earlier, is the newer
 * value (or the delete). A key no write touched has the value it had
 * before the copy, whatever page it is read in, and it never moves: an
 * insert fills a free slot, a delete leaves a tombstone, and a rehash
 * (growth) makes the source answer the next page with CONFLICT (the
 * cursor carries the table's epoch, engine/kv/ops.c): the scan starts over
 * from the first slot (pairs loaded twice are the same upsert), at most
 * KV_SYNC_RESCANS times.
 *
 * The scan stays at most KV_SYNC_PAGES_AHEAD pages ahead of the target.
 * The end: once the target has applied the last page and every effect
 * queued, new writes wait again (CLOSING); when the write in flight has
 * finished and the target has applied its effect too, the replica is fresh
 * (saved in the catalog) and the waiting writes run, on it too. The target's writes are not waited
 * for by the writes' clients meanwhile (it is stale: not read, not counted), so a slow target
 * cannot slow the partition; its queue past KV_SYNC_QUEUE_MAX bytes (or KV_SYNC_KEYS_MAX of
 * remembered keys) ends the resync as failed. A failure anywhere leaves the replica stale and
 * blocks a new try for 5 s. Reads go on throughout (the stale copy is not read).
 *
 * A partition move (kv_rebalance.c: a worker joining, or the replacement
 * of a replica whose worker is gone) fills its new replica the same way: it
 * enters the placement stale; when its resync ends, the replica it
 * displaced leaves (tsr_sched_kv_move_settle) before the waiting writes
 * run, so no write is ever in flight on a slot that changes. A replica that
 * is leaving is never a resync's target (its copy is about to go).
 *
 * Missed keys, doubt and store identities (what decides between a delta
 * and a whole copy) are in kv_missed.c.
 *
 * At most KV_SYNC_MAX resyncs run at once in the cluster; the others wait,
 * still stale (not read, not written), and start as running ones end
 * (tsr_sched_kv_sync_more, also from the scheduler's 500 ms kv tick), in
 * catalog order.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

/* Scans started over after the source was rehashed, before giving up (it
 * grows by doubling, so a few are plenty). */
#define KV_SYNC_RESCANS 8

static void sync_end(kv_sync_t *y, bool ok)
{
    sched_t *s = y->s;
    skv_table_t *t = y->t;
    skv_part_t *sp = &t->parts[y->part];
    skv_rep_t *dst = &t->reps[(size_t)y->part * t->nrep + y->dst];
    if (ok) {
        dst->stale = false;
        dst->store = y->dst_w ? y->dst_w->store_id : 0; /* the store the copy is in */
        tsr_sched_kv_forget_missed(s, dst);
        if (!y->delta) {
            /* a whole copy: dst holds what src holds; with no other fresh
             * replica, no replica differs any more */
            bool others = false;
            for (size_t r = 0; r < t->nrep; r++) {
                const skv_rep_t *o = &t->reps[(size_t)y->part * t->nrep + r];
                others |= r != y->src && r != y->dst && o->id[0] && !o->stale;
            }
            if (!others)
                sp->doubt = false;
        }
        tsr_sched_kv_persist(s);
    } else
        sp->retry_ms = tsr_sched_now_ms() + 5000;
    sp->compare_failed = false; /* the next comparison may be tried */
    sp->ranges_failed = !ok && y->by_ranges;
    if (ok)
        s->kv->resyncs[y->delta       ? KV_RESYNC_DELTA
                       : y->by_ranges ? KV_RESYNC_RANGES
                                      : KV_RESYNC_WHOLE]++;
    else
        s->kv->resyncs_failed++;
    s->kv->resync_pairs += y->copied;
    tsr_sched_log(s->p->log, "scheduler",
                  ok ? "kv table '%s' partition %u: replica on %s resynced (%llu pairs copied, "
                       "%llu writes applied during the copy, %llu pairs left to them, %u "
                       "rescans)"
                     : "kv table '%s' partition %u: resync of the replica on %s failed after %llu "
                       "pairs (%llu writes applied during the copy, %llu pairs left to them, %u "
                       "rescans); it stays stale",
                  t->name, y->part, dst->id, (unsigned long long)y->copied,
                  (unsigned long long)y->forwarded, (unsigned long long)y->skipped, y->rescans);
    tsr_sched_kv_sync_release(y, ok);
}

void tsr_sched_kv_sync_release(kv_sync_t *y, bool settle)
{
    sched_t *s = y->s;
    skv_table_t *t = y->t;
    uint32_t part = y->part;
    skv_part_t *sp = &t->parts[part];
    sp->sync = NULL;
    s->kv->syncs--;
    while (y->head) {
        kv_sync_item_t *it = y->head;
        y->head = it->next;
        tsr_mem_free(s->mem, it);
    }
    tsr_kv_keyset_free(&y->written);
    tsr_wbuf_free(&y->scan);
    tsr_sched_kv_ranges_free(y);
    tsr_mem_free(s->mem, y);
    if (settle && tsr_sched_kv_find(s, t->name) == t) {
        /* no write in flight: the placement may change now; then the next
         * stale replica, if any (it starts at once: no write in flight) */
        tsr_sched_kv_move_settle(s, t, part);
        tsr_sched_kv_maybe_sync(s, t, part);
    }
    /* the writes that waited, in arrival order: one at a time (each one's
     * end starts the next, sched_kv_repl.c op_free) */
    kv_op_t *q = sp->writes == 0 && (!sp->sync || sp->sync->phase == KV_SYNC_COPYING)
                     ? tsr_sched_kv_dequeue(sp)
                     : NULL;
    if (q)
        tsr_sched_kv_dispatch(q);
    tsr_sched_kv_table_unref(s, t);
    tsr_sched_kv_sync_more(s); /* the resyncs that waited for this one */
}

static sworker_t *rep_worker(kv_sync_t *y, size_t rep)
{
    return tsr_sched_kv_ready_worker(y->s, y->t->reps[(size_t)y->part * y->t->nrep + rep].id);
}

static bool pump(kv_sync_t *y);

/* Whether a LOAD item's answer (u64 pairs stored) covers its whole batch:
 * a copy that stored part of a page or of a group of puts misses the
 * rest. */
static bool load_whole(const kv_sync_item_t *it, const tsr_rpc_msg_t *reply)
{
    tsr_rbuf_t m, r;
    tsr_rbuf_init(&m, it->data, it->len); /* a KV_RUN: store table, maxima, pop, u32 n, ... */
    tsr_rbuf_str(&m);
    tsr_rbuf_u32(&m);
    tsr_rbuf_u32(&m);
    tsr_rbuf_u8(&m);
    uint32_t n = tsr_rbuf_u32(&m);
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint64_t stored = tsr_rbuf_u64(&r);
    return !m.bad && tsr_rbuf_done(&r) && stored == n;
}

static void on_item(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    kv_sync_item_t *it = y->sending;
    /* a DEL of a key the copy does not have: the same effect */
    if (status != TSR_OK && !(status == TSR_ERR_NOT_FOUND && it->pop == TSR_KV_POP_DEL))
        y->failed = true;
    if (status == TSR_OK && it->pop == TSR_KV_POP_LOAD && !load_whole(it, reply))
        y->failed = true;
    tsr_rpc_msg_release(y->s->t, reply);
    if (it->page)
        y->pages--;
    y->sending = NULL;
    tsr_mem_free(y->s->mem, it);
    (void)pump(y);
}

static void on_scan(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply);
static void on_fetch(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply);

/* Pairs per page: about 8 MiB of the table's largest pairs, 1..1024. */
static uint32_t page_pairs(const kv_sync_t *y)
{
    uint64_t per = (uint64_t)y->t->max_key + y->t->max_value + 8;
    uint64_t page = (8u << 20) / per;
    page = page < 1 ? 1 : page > 1024 ? 1024 : page;
    return y->s->kv->sync_page ? y->s->kv->sync_page : (uint32_t)page;
}

static kv_keyset_t *dst_missed(const kv_sync_t *y)
{
    return y->t->reps[(size_t)y->part * y->t->nrep + y->dst].missed;
}

/* A delta's next FETCH payload: the missed keys from the cursor on (an
 * offset in the set's bytes), at most a page of them; sets y->batch. */
static void fetch_payload(kv_sync_t *y, tsr_wbuf_t *pl)
{
    const kv_keyset_t *m = dst_missed(y);
    uint32_t n = 0, max = page_pairs(y);
    size_t off = y->cursor;
    tsr_wbuf_u32(pl, 0);
    while (off < y->end && n < max) {
        uint32_t l;
        memcpy(&l, m->bytes + off, sizeof(l));
        tsr_wbuf_bytes(pl, m->bytes + off, sizeof(l) + l); /* "bytes" as the set keeps it */
        off += sizeof(l) + l;
        n++;
    }
    if (!pl->failed)
        for (int i = 0; i < 4; i++)
            pl->data[i] = (uint8_t)(n >> (8 * i));
    y->batch = n;
}

/* Asks src for the next page (SCAN at the cursor, or a delta's FETCH);
 * false when the call cannot go out. */
static bool send_scan(kv_sync_t *y)
{
    sched_t *s = y->s;
    sworker_t *w = rep_worker(y, y->src);
    if (w && !y->delta && w != y->src_w) {
        /* another process serves the source now (it restarted on its data
         * dir): its table was rebuilt, so a cursor into the old layout
         * means nothing (its epoch may even match): from the first slot */
        if (y->src_w && y->cursor != 0) {
            y->cursor = 0;
            y->rescans++;
        }
        y->src_w = w;
    }
    tsr_wbuf_free(&y->scan);
    tsr_wbuf_init(&y->scan, s->mem);
    if (y->delta) {
        if (!dst_missed(y))
            return false; /* forgotten (grew past KV_MISSED_MAX): a full copy next time */
        tsr_wbuf_t pl;
        tsr_wbuf_init(&pl, s->mem);
        fetch_payload(y, &pl);
        if (!pl.failed)
            tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_FETCH, pl.data, pl.len, &y->scan);
        y->scan.failed |= pl.failed;
        tsr_wbuf_free(&pl);
    } else {
        tsr_wbuf_t pl;
        tsr_wbuf_init(&pl, s->mem);
        tsr_wbuf_u64(&pl, y->cursor);
        tsr_wbuf_u32(&pl, page_pairs(y));
        if (y->ranges) { /* only the ranges that differ (kv_ranges.c) */
            tsr_wbuf_u32(&pl, TSR_KV_RESYNC_RANGES);
            tsr_wbuf_bytes(&pl, y->ranges, TSR_KV_RESYNC_RANGES / 8);
        }
        if (!pl.failed)
            tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_SCAN, pl.data, pl.len, &y->scan);
        y->scan.failed |= pl.failed;
        tsr_wbuf_free(&pl);
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!w || y->scan.failed ||
        tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, y->scan.data, y->scan.len, KV_CALL_MS,
                           y->delta ? on_fetch : on_scan, y, &e) != TSR_OK)
        return false;
    y->scanning = true;
    return true;
}

/* Sends the first queued item to dst; false when the call cannot go out. */
static bool send_item(kv_sync_t *y)
{
    kv_sync_item_t *it = y->head;
    sworker_t *w = rep_worker(y, y->dst);
    tsr_error_t e;
    tsr_error_clear(&e);
    /* another process took the target's id meanwhile: what it holds is not
     * known to have what was sent before (its data dir may be another) */
    if (!w || w != y->dst_w)
        return false;
    y->head = it->next;
    if (!y->head)
        y->tail = NULL;
    y->queued -= it->len;
    y->sending = it;
    if (tsr_rpc_call_async(y->s->t, w->peer, TSR_MSG_KV_RUN, it->data, it->len, KV_CALL_MS, on_item,
                           y, &e) != TSR_OK) {
        y->sending = NULL;
        tsr_mem_free(y->s->mem, it);
        return false;
    }
    return true;
}

/* Drives the resync: the next page, the next item, the end. False when it
 * ended (y is freed). */
static bool pump(kv_sync_t *y)
{
    skv_part_t *sp = &y->t->parts[y->part];
    if (!y->failed && tsr_sched_kv_find(y->s, y->t->name) != y->t)
        y->failed = true; /* dropped: nothing more goes to the copy */
    if (y->digesting)
        return true; /* nothing goes to dst before its first item (kv_ranges.c) */
    if (y->delta && !y->scanning && y->cursor >= y->end)
        y->scanned = true; /* every missed key asked for */
    if (!y->failed && !y->scanning && !y->scanned && y->pages < KV_SYNC_PAGES_AHEAD &&
        !send_scan(y))
        y->failed = true;
    if (!y->failed && !y->sending && y->head && !send_item(y))
        y->failed = true;
    if (y->failed) {
        if (y->scanning || y->sending)
            return true; /* their answers come back here */
        sync_end(y, false);
        return false;
    }
    /* every page applied and the writes' effects caught up: from here new
     * writes wait (for the one in flight and its effect, no longer) */
    if (y->scanned && y->phase == KV_SYNC_COPYING && !y->sending && !y->head)
        y->phase = KV_SYNC_CLOSING;
    if (y->phase == KV_SYNC_CLOSING && !y->sending && !y->head && sp->writes == 0) {
        /* the target must still be the process the copy was written in (a
         * worker back with an emptied data dir meanwhile has none of it) */
        const skv_rep_t *dst = &y->t->reps[(size_t)y->part * y->t->nrep + y->dst];
        sync_end(y, dst->id[0] && rep_worker(y, y->dst) == y->dst_w);
        return false;
    }
    return true;
}

/* Appends a copy of msg to the queue for dst; false when out of memory or
 * past KV_SYNC_QUEUE_MAX. */
static bool enqueue(kv_sync_t *y, uint8_t pop, const void *msg, size_t len)
{
    if (y->queued + len > KV_SYNC_QUEUE_MAX)
        return false;
    kv_sync_item_t *it = tsr_mem_alloc(y->s->mem, sizeof(*it) + len);
    if (!it)
        return false;
    it->next = NULL;
    it->len = len;
    it->pop = pop;
    it->page = false;
    memcpy(it->data, msg, len);
    if (y->tail)
        y->tail->next = it;
    else
        y->head = it;
    y->tail = it;
    y->queued += len;
    return true;
}

bool tsr_sched_kv_sync_push_first(kv_sync_t *y, uint8_t pop, const void *msg, size_t len)
{
    kv_sync_item_t *it = tsr_mem_alloc(y->s->mem, sizeof(*it) + len);
    if (!it)
        return false;
    it->next = y->head;
    it->len = len;
    it->pop = pop;
    it->page = false;
    memcpy(it->data, msg, len);
    y->head = it;
    if (!y->tail)
        y->tail = it;
    y->queued += len;
    return true;
}

static void on_scan(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    sched_t *s = y->s;
    y->scanning = false;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint64_t next = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    bool rehashed = status == TSR_ERR_CONFLICT && y->rescans < KV_SYNC_RESCANS;
    /* a source that missed a write since is not worth copying from */
    if ((status != TSR_OK && !rehashed) || (!rehashed && r.bad) ||
        y->t->reps[(size_t)y->part * y->t->nrep + y->src].stale)
        y->failed = true;
    else if (rehashed) { /* the source grew: its slots moved; from the start */
        y->rescans++;
        y->cursor = 0;
        tsr_rpc_msg_release(s->t, reply);
        (void)pump(y);
        return;
    }
    tsr_wbuf_t load;
    tsr_wbuf_init(&load, s->mem);
    if (!y->failed) {
        /* the page's pairs, less those a write touched since the copy began */
        tsr_wbuf_t kept;
        tsr_wbuf_init(&kept, s->mem);
        uint32_t nk = 0;
        tsr_wbuf_u32(&kept, 0);
        for (uint32_t i = 0; i < n && !r.bad; i++) {
            size_t start = r.pos, kl, vl;
            const void *key = tsr_rbuf_blob(&r, &kl);
            tsr_rbuf_blob(&r, &vl);
            if (r.bad)
                break;
            if (tsr_kv_keyset_has(&y->written, key, kl)) {
                y->skipped++;
                continue;
            }
            tsr_wbuf_bytes(&kept, (const uint8_t *)reply->data + start, r.pos - start);
            nk++;
        }
        if (!tsr_rbuf_done(&r) || kept.failed) {
            y->failed = true;
        } else if (nk > 0) {
            for (int i = 0; i < 4; i++)
                kept.data[i] = (uint8_t)(nk >> (8 * i));
            tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_LOAD, kept.data, kept.len, &load);
            if (load.failed || !enqueue(y, TSR_KV_POP_LOAD, load.data, load.len))
                y->failed = true;
            else {
                y->tail->page = true;
                y->pages++;
                y->copied += nk;
            }
        }
        tsr_wbuf_free(&kept);
        y->cursor = next;
        y->scanned = next == 0;
    }
    tsr_wbuf_free(&load);
    tsr_rpc_msg_release(s->t, reply);
    (void)pump(y);
}

/* A delta's page: each asked key's value or absence on src, applied to dst
 * as one TAPPLY (puts and deletes), less the keys a write touched since
 * the copy began (their effects are queued already). */
static void on_fetch(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    sched_t *s = y->s;
    y->scanning = false;
    const kv_keyset_t *m = dst_missed(y);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint32_t n = tsr_rbuf_u32(&r);
    if (status != TSR_OK || r.bad || n != y->batch || !m ||
        y->t->reps[(size_t)y->part * y->t->nrep + y->src].stale)
        y->failed = true;
    tsr_wbuf_t body, msg;
    tsr_wbuf_init(&body, s->mem);
    tsr_wbuf_init(&msg, s->mem);
    uint32_t nk = 0;
    size_t off = y->cursor;
    tsr_wbuf_u32(&body, 0);
    for (uint32_t i = 0; i < n && !y->failed && !r.bad; i++) {
        uint32_t kl;
        memcpy(&kl, m->bytes + off, sizeof(kl));
        const uint8_t *key = m->bytes + off + sizeof(kl);
        off += sizeof(kl) + kl;
        uint8_t found = tsr_rbuf_u8(&r);
        size_t vl = 0;
        const void *val = found ? tsr_rbuf_blob(&r, &vl) : NULL;
        if (r.bad)
            break;
        if (tsr_kv_keyset_has(&y->written, key, kl)) {
            y->skipped++;
            continue;
        }
        tsr_wbuf_u8(&body, found ? 0 : 1); /* absent on src: a delete */
        tsr_wbuf_u32(&body, kl);
        tsr_wbuf_bytes(&body, key, kl);
        tsr_wbuf_u32(&body, (uint32_t)vl);
        tsr_wbuf_bytes(&body, val, vl);
        nk++;
    }
    if (!y->failed && (!tsr_rbuf_done(&r) || body.failed))
        y->failed = true;
    if (!y->failed && nk > 0) {
        for (int i = 0; i < 4; i++)
            body.data[i] = (uint8_t)(nk >> (8 * i));
        tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_TAPPLY, body.data, body.len, &msg);
        if (msg.failed || !enqueue(y, TSR_KV_POP_TAPPLY, msg.data, msg.len)) {
            y->failed = true;
        } else {
            y->tail->page = true;
            y->pages++;
            y->copied += nk;
        }
    }
    if (!y->failed)
        y->cursor = off;
    tsr_wbuf_free(&body);
    tsr_wbuf_free(&msg);
    tsr_rpc_msg_release(s->t, reply);
    (void)pump(y);
}

void tsr_sched_kv_sync_poke(kv_sync_t *y)
{
    (void)pump(y);
}

void tsr_sched_kv_sync_forward(kv_sync_t *y, const tsr_wbuf_t *msg)
{
    /* before the copy began the write's effect is in what the copy reads
     * (a comparison begins once no write is in flight, and none runs
     * until it ends) */
    if (y->phase == KV_SYNC_WAITING || y->failed || y->compare)
        return;
    uint8_t pop = 0;
    if (msg->failed || !tsr_sched_kv_msg_keys(&y->written, msg, &pop) ||
        tsr_kv_keyset_bytes(&y->written) > KV_SYNC_KEYS_MAX ||
        !enqueue(y, pop, msg->data, msg->len))
        y->failed = true;
    else
        y->forwarded++;
    (void)pump(y);
}

void tsr_sched_kv_sync_fail(kv_sync_t *y)
{
    if (y->phase == KV_SYNC_WAITING || y->failed)
        return;
    y->failed = true;
    if (!y->compare) /* a comparison ends when its digests are back */
        (void)pump(y);
}

/* No write of the partition is in flight now: empty the stale copy, then
 * copy while writes go on. */
bool tsr_sched_kv_sync_start(kv_sync_t *y)
{
    if (y->compare)
        return tsr_sched_kv_compare_start(y);
    sched_t *s = y->s;
    skv_rep_t *dst = &y->t->reps[(size_t)y->part * y->t->nrep + y->dst];
    y->phase = KV_SYNC_COPYING;
    tsr_kv_keyset_init(&y->written, s->mem);
    tsr_wbuf_init(&y->scan, s->mem);
    /* the copy it went stale with, back in the same store: only the keys
     * it missed are refilled, in place */
    const sworker_t *w = rep_worker(y, y->dst);
    y->dst_w = w;
    y->delta = dst->missed && w && w->store_id && w->store_id == dst->missed_store &&
               !y->t->parts[y->part].doubt;
    if (y->delta)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: refilling the %zu key(s) the replica on %s "
                      "missed",
                      y->t->name, y->part, dst->missed->n, dst->id);
    else
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: copying the partition to the replica on %s "
                      "(the key ranges that differ)",
                      y->t->name, y->part, dst->id);
    if (y->delta) {
        y->end = dst->missed->len;
        return pump(y);
    }
    tsr_sched_kv_forget_missed(s, dst); /* its copy is refilled by ranges, or whole */
    bool ranges_failed = y->t->parts[y->part].ranges_failed;
    if (!ranges_failed && tsr_sched_kv_ranges_start(y))
        return pump(y); /* waits for the digests (kv_ranges.c) */
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s' partition %u: copying all of it to the replica on %s (%s)",
                  y->t->name, y->part, dst->id,
                  ranges_failed ? "the last copy by ranges failed"
                                : "its digests cannot be asked for");
    tsr_wbuf_t drop;
    tsr_wbuf_init(&drop, y->s->mem);
    tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_DROP, NULL, 0, &drop);
    if (drop.failed || !enqueue(y, TSR_KV_POP_DROP, drop.data, drop.len))
        y->failed = true;
    tsr_wbuf_free(&drop);
    return pump(y);
}

/* Starts a resync of the partition when one of its replicas is stale while
 * its worker is up and a fresh replica is there to copy from. */
void tsr_sched_kv_maybe_sync(sched_t *s, skv_table_t *t, uint32_t part)
{
    skv_part_t *sp = &t->parts[part];
    if (sp->sync || s->kv->syncs >= KV_SYNC_MAX || tsr_sched_now_ms() < sp->retry_ms)
        return;
    size_t src = t->nrep, dst = t->nrep;
    for (size_t r = 0; r < t->nrep; r++) {
        const skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
        sworker_t *w = rep->id[0] ? tsr_sched_kv_ready_worker(s, rep->id) : NULL;
        if (!w)
            continue;
        if (rep->stale && rep->leaving)
            continue; /* on its way out: not worth a copy */
        if (rep->stale && dst == t->nrep)
            dst = r;
        else if (!rep->stale && src == t->nrep)
            src = r;
    }
    /* in doubt, the fresh replicas are compared first: a copy from one of
     * them must not spread a difference (kv_compare.c); after a failed
     * comparison a stale replica is copied first, so one replica that
     * cannot answer does not hold every copy back. (src is the first fresh
     * replica either way.) */
    size_t first = t->nrep;
    bool compare =
        tsr_sched_kv_compare_due(s, t, part, &first) && !(sp->compare_failed && dst != t->nrep);
    if (src == t->nrep || (dst == t->nrep && !compare))
        return;
    kv_sync_t *y = tsr_mem_calloc(s->mem, 1, sizeof(*y));
    if (!y)
        return;
    y->s = s;
    y->t = t;
    t->refs++;
    y->part = part;
    y->src = src;
    y->dst = dst;
    y->compare = compare;
    sp->sync = y;
    s->kv->syncs++;
    if (compare)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: comparing its fresh replicas with the one "
                      "on %s (a write's outcome was unknown)",
                      t->name, part, t->reps[(size_t)part * t->nrep + src].id);
    else
        tsr_sched_log(s->p->log, "scheduler",
                      "kv table '%s' partition %u: resyncing the stale replica on %s from %s",
                      t->name, part, t->reps[(size_t)part * t->nrep + dst].id,
                      t->reps[(size_t)part * t->nrep + src].id);
    if (sp->writes == 0)
        tsr_sched_kv_sync_start(y);
}

void tsr_sched_kv_sync_more(sched_t *s)
{
    /* not again from a resync that ended while this loop started it (a
     * send that failed at once): the outer loop goes on from there */
    if (!s->kv || s->kv->sync_more_running)
        return;
    s->kv->sync_more_running = true;
    for (size_t i = 0; i < s->kv->n && s->kv->syncs < KV_SYNC_MAX; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts && s->kv->syncs < KV_SYNC_MAX; p++)
            tsr_sched_kv_maybe_sync(s, t, p);
    }
    s->kv->sync_more_running = false;
}

void tsr_sched_kv_sync_free_all(sched_t *s)
{
    for (size_t i = 0; s->kv && i < s->kv->n; i++) {
        skv_table_t *t = s->kv->tables[i];
        for (uint32_t p = 0; p < t->nparts; p++) {
            kv_sync_t *y = t->parts[p].sync;
            if (!y)
                continue;
            /* the transport is gone: no answer comes back for its calls */
            while (y->head) {
                kv_sync_item_t *it = y->head;
                y->head = it->next;
                tsr_mem_free(s->mem, it);
            }
            tsr_mem_free(s->mem, y->sending);
            tsr_kv_keyset_free(&y->written);
            tsr_wbuf_free(&y->scan);
            tsr_sched_kv_ranges_free(y);
            t->parts[p].sync = NULL;
            s->kv->syncs--;
            tsr_mem_free(s->mem, y);
            tsr_sched_kv_table_unref(s, t); /* the catalog's reference keeps t */
        }
    }
}
