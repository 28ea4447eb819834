/*
 * kv_digest.c - one replica's digest of its copy, per hash range of the
 * keys (kv_msg.h RDIGEST; worker side worker_kv_ranges.c), asked of the
 * process the replica is on chunk by chunk and added up: the sums are
 * order-free, so chunks add. A comparison of fresh replicas (kv_compare.c)
 * asks for 1 range, a resync by ranges (kv_ranges.c) for
 * TSR_KV_RESYNC_RANGES. Chunks keep a request from holding the worker's
 * partition thread (which serves other tables too) for a whole large
 * partition; a rehash between two chunks (CONFLICT) starts them over.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_kv.h"

#define KV_DIGEST_RESTARTS 8

static bool send_chunk(kv_digest_t *d);

static const char *rep_id(const kv_digest_t *d)
{
    const kv_sync_t *y = d->y;
    return y->t->reps[(size_t)y->part * y->t->nrep + d->rep].id;
}

static void on_chunk(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_digest_t *d = arg;
    kv_sync_t *y = d->y;
    bool more = false;
    if (status == TSR_ERR_CONFLICT && d->restarts++ < KV_DIGEST_RESTARTS) {
        /* rehashed between two chunks: the cursor means nothing now */
        d->cursor = 0;
        d->pairs = 0;
        memset(d->sums, 0, 2 * (size_t)d->nranges * sizeof(uint64_t));
        more = true;
    } else if (status == TSR_OK) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, reply->data, reply->len);
        uint64_t next = tsr_rbuf_u64(&r);
        d->pairs += tsr_rbuf_u64(&r);
        bool ok = tsr_rbuf_u32(&r) == d->nranges && !r.bad;
        for (size_t i = 0; ok && i < 2 * (size_t)d->nranges; i++)
            d->sums[i] += tsr_rbuf_u64(&r);
        ok = ok && tsr_rbuf_done(&r);
        d->cursor = next;
        more = ok && next != 0;
        /* the process that answered the last chunk must still be the one
         * the replica is on (one back on its data dir may hold another
         * copy) */
        d->answered = ok && next == 0 && tsr_sched_kv_ready_worker(y->s, rep_id(d)) == d->w;
    }
    tsr_rpc_msg_release(y->s->t, reply);
    if (more && !y->failed && send_chunk(d))
        return;
    d->done(d);
}

/* Asks d's process for its next chunk; false when the call cannot go out. */
static bool send_chunk(kv_digest_t *d)
{
    kv_sync_t *y = d->y;
    sched_t *s = y->s;
    if (tsr_sched_kv_ready_worker(s, rep_id(d)) != d->w)
        return false; /* every chunk from the process the first went to */
    uint8_t payload[12];
    for (int i = 0; i < 4; i++)
        payload[i] = (uint8_t)(d->nranges >> (8 * i));
    for (int i = 0; i < 8; i++)
        payload[4 + i] = (uint8_t)(d->cursor >> (8 * i));
    tsr_wbuf_t msg;
    tsr_wbuf_init(&msg, s->mem);
    tsr_sched_kv_encode_run(y->t, y->part, TSR_KV_POP_RDIGEST, payload, sizeof(payload), &msg);
    tsr_error_t e;
    tsr_error_clear(&e);
    bool sent = !msg.failed && tsr_rpc_call_async(s->t, d->w->peer, TSR_MSG_KV_RUN, msg.data,
                                                  msg.len, KV_CALL_MS, on_chunk, d, &e) == TSR_OK;
    tsr_wbuf_free(&msg);
    return sent;
}

bool tsr_sched_kv_digest_ask(kv_digest_t *d)
{
    sched_t *s = d->y->s;
    d->w = tsr_sched_kv_ready_worker(s, rep_id(d));
    d->asked = true;
    if (!d->sums)
        d->sums = tsr_mem_calloc(s->mem, 2 * (size_t)d->nranges, sizeof(uint64_t));
    return d->w && d->sums && send_chunk(d);
}

void tsr_sched_kv_digests_free(kv_sync_t *y)
{
    for (size_t i = 0; i < TSR_KV_MAX_REPLICAS; i++) {
        tsr_mem_free(y->s->mem, y->dig[i].sums);
        y->dig[i].sums = NULL;
    }
}
