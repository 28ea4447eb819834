/*
 * sched_kv_sync.c - resync of a stale kv replica (docs/kv.md "On a
 * cluster", Replication): a replica that missed an acknowledged write is
 * stale (sched_kv.c); once its worker is up again and a fresh replica
 * exists, the partition's new writes wait in the scheduler, the writes in
 * flight finish, the stale copy is dropped and refilled page by page (SCAN
 * on the fresh replica; each page, whose "u32 n, pairs" is a LOAD payload as
 * it is, LOADed durably into the stale one), then the replica is usable
 * again and the waiting writes run in arrival order, on it too. Writes
 * paused means no rehash on the source between pages, so the scan's cursor
 * stays valid. A failure anywhere leaves the replica stale and blocks a new
 * try for 5 s. Reads go on meanwhile (the stale copy is not read).
 *
 * A partition move (kv_rebalance.c: a worker joining, or the replacement
 * of a replica whose worker is gone) fills its new replica the same way: it
 * enters the placement stale; when its resync ends, the replica it
 * displaced leaves (tsr_sched_kv_move_settle) before the waiting writes
 * run, so no write is ever in flight on a slot that changes. A replica that
 * is leaving is never a resync's target (its copy is about to go).
 *
 * At most KV_SYNC_MAX resyncs run at once in the cluster: a worker that
 * joins (its share of partitions moves to it) or comes back after a while
 * (every partition it holds went stale) would otherwise pause the writes
 * of all those partitions together. The others wait, still stale (not
 * read, not written), and start as running ones end (tsr_sched_kv_sync_more,
 * also from the scheduler's 500 ms kv tick), in catalog order.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

static void sync_end(kv_sync_t *y, bool ok)
{
    sched_t *s = y->s;
    skv_table_t *t = y->t;
    skv_part_t *sp = &t->parts[y->part];
    skv_rep_t *dst = &t->reps[(size_t)y->part * t->nrep + y->dst];
    uint32_t part = y->part;
    if (ok) {
        dst->stale = false;
        tsr_sched_kv_persist(s);
    } else
        sp->retry_ms = tsr_sched_now_ms() + 5000;
    tsr_sched_log(s->p->log, "scheduler",
                  ok ? "kv table '%s' partition %u: replica on %s resynced (%llu pairs)"
                     : "kv table '%s' partition %u: resync of the replica on %s failed after %llu "
                       "pairs; it stays stale",
                  t->name, y->part, dst->id, (unsigned long long)y->copied);
    sp->sync = NULL;
    s->kv->syncs--;
    tsr_wbuf_free(&y->msg);
    tsr_mem_free(s->mem, y);
    if (ok && tsr_sched_kv_find(s, t->name) == t) {
        /* no write in flight: the placement may change now; then the next
         * stale replica, if any (the waiting writes wait for it too) */
        tsr_sched_kv_move_settle(s, t, part);
        tsr_sched_kv_maybe_sync(s, t, part);
    }
    /* the writes that waited, in arrival order: one at a time (each one's
     * end starts the next, sched_kv.c op_free) */
    kv_op_t *q = sp->writes == 0 && !sp->sync ? tsr_sched_kv_dequeue(sp) : NULL;
    if (q)
        tsr_sched_kv_dispatch(q);
    tsr_sched_kv_table_unref(s, t);
    tsr_sched_kv_sync_more(s); /* the resyncs that waited for this one */
}

/* Sends y->msg to the replica's worker; false (after ending y) when it cannot. */
static bool sync_send(kv_sync_t *y, size_t rep, tsr_rpc_done_fn fn)
{
    sched_t *s = y->s;
    sworker_t *w = tsr_sched_kv_ready_worker(s, y->t->reps[(size_t)y->part * y->t->nrep + rep].id);
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!w || y->msg.failed ||
        tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, y->msg.data, y->msg.len, KV_CALL_MS, fn,
                           y, &e) != TSR_OK) {
        sync_end(y, false);
        return false;
    }
    return true;
}

static void sync_scan(kv_sync_t *y);

static void on_sync_load(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    tsr_rpc_msg_release(y->s->t, reply);
    if (status != TSR_OK)
        sync_end(y, false);
    else if (y->cursor == 0)
        sync_end(y, true);
    else
        sync_scan(y);
}

static void on_sync_scan(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint64_t next = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    if (status != TSR_OK || r.bad) {
        tsr_rpc_msg_release(y->s->t, reply);
        sync_end(y, false);
        return;
    }
    /* the page's "u32 n, pairs" is a LOAD payload as it is */
    tsr_wbuf_free(&y->msg);
    tsr_wbuf_init(&y->msg, y->s->mem);
    tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_LOAD, (const uint8_t *)reply->data + 8,
                            reply->len - 8, &y->msg);
    tsr_rpc_msg_release(y->s->t, reply);
    y->cursor = next;
    y->copied += n;
    sync_send(y, y->dst, on_sync_load);
}

static void sync_scan(kv_sync_t *y)
{
    uint8_t payload[12];
    uint64_t per = (uint64_t)y->t->max_key + y->t->max_value + 8;
    uint64_t page = (8u << 20) / per;
    page = page < 1 ? 1 : page > 1024 ? 1024 : page;
    for (int i = 0; i < 8; i++)
        payload[i] = (uint8_t)(y->cursor >> (8 * i));
    for (int i = 0; i < 4; i++)
        payload[8 + i] = (uint8_t)(page >> (8 * i));
    tsr_wbuf_free(&y->msg);
    tsr_wbuf_init(&y->msg, y->s->mem);
    tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_SCAN, payload, sizeof(payload), &y->msg);
    sync_send(y, y->src, on_sync_scan);
}

static void on_sync_drop(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_sync_t *y = arg;
    tsr_rpc_msg_release(y->s->t, reply);
    if (status != TSR_OK)
        sync_end(y, false);
    else
        sync_scan(y);
}

/* No write of the partition is in flight now: empty the stale copy. */
void tsr_sched_kv_sync_start(kv_sync_t *y)
{
    y->started = true;
    tsr_wbuf_init(&y->msg, y->s->mem);
    tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_DROP, NULL, 0, &y->msg);
    sync_send(y, y->dst, on_sync_drop);
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
    if (src == t->nrep || dst == t->nrep)
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
    sp->sync = y;
    s->kv->syncs++;
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s' partition %u: resyncing the stale replica on %s from %s", t->name,
                  part, t->reps[(size_t)part * t->nrep + dst].id,
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
