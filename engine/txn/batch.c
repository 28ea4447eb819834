/*
 * batch.c - batches of one-sided first reads for transactions
 * (txn_internal.h, txn_batch_t): keys of several kv readers that share one
 * transport - tables of one owner (remote.c, tsr_txn_get_many on a remote
 * db) or partitions on several workers (scheduler/txn_cluster.c) - read by
 * one tsr_kv_remote_read_many (engine/kv/remote_many.c), so every key's
 * window read of a round goes out in one tsr_rma_get_many and one wait
 * reaps them all.
 *
 * A decided key's answer is taken from the accepted slot copy: the value
 * whole (a slot holds its whole value, so no second read however long it
 * is) into a fresh buffer, and that copy's version - raw for a remote db
 * (what the owner's commit validates), XOR the descriptor's mask for a
 * cluster (what its TGET answers). A key is undecided (st TSR_ERR_INTERNAL)
 * from tsr_txn_batch_add until batch_take answers it; a failed call gives
 * the undecided ones its status. Invariant: b->of[i] answers b->keys[i];
 * the arrays live on the stack struct up to TXN_BATCH_STACK keys.
 */
#include <string.h>

#include "remote_int.h"
#include "txn_internal.h"

/* read_many's sink: a decided key's value into a fresh buffer of its
 * length (the window holds the whole slot, so no second read). */
static tsr_status_t batch_take(void *arg, size_t k, const unsigned char *val, uint32_t vlen,
                               uint64_t ver, uint64_t vmask, tsr_error_t *err)
{
    txn_batch_t *b = arg;
    txn_fetch_t *f = b->of[k];
    if (!val) {
        f->ver = KV_TXN_ABSENT;
        f->st = TSR_ERR_NOT_FOUND;
        return TSR_OK;
    }
    unsigned char *c = tsr_mem_alloc(NULL, vlen ? vlen : 1);
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    if (vlen)
        memcpy(c, val, vlen);
    f->loc = b->locs[k]; /* read_many sets it before calling */
    f->val = c;
    f->vlen = vlen;
    f->ver = b->masked ? ver ^ vmask : ver;
    f->st = TSR_OK;
    return TSR_OK;
}

void tsr_txn_batch_init(txn_batch_t *b, size_t n, bool masked)
{
    b->nr = b->nb = 0;
    b->masked = masked;
    b->oom = false;
    if (n <= TXN_BATCH_STACK) {
        b->rd = b->rd_s;
        b->which = b->which_s;
        b->keys = b->keys_s;
        b->of = b->of_s;
        b->res = b->res_s;
        b->locs = b->locs_s;
        return;
    }
    b->rd = tsr_mem_alloc(NULL, n * sizeof(*b->rd));
    b->which = tsr_mem_alloc(NULL, n * sizeof(*b->which));
    b->keys = tsr_mem_alloc(NULL, n * sizeof(*b->keys));
    b->of = tsr_mem_alloc(NULL, n * sizeof(*b->of));
    b->res = tsr_mem_alloc(NULL, n * sizeof(*b->res));
    b->locs = tsr_mem_alloc(NULL, n * sizeof(*b->locs));
    b->oom = !b->rd || !b->which || !b->keys || !b->of || !b->res || !b->locs;
}

void tsr_txn_batch_add(txn_batch_t *b, tsr_kv_remote_t *r, txn_fetch_t *f)
{
    if (b->oom)
        return;
    uint32_t w = 0;
    while (w < b->nr && b->rd[w] != r)
        w++;
    if (w == b->nr)
        b->rd[b->nr++] = r;
    b->which[b->nb] = w;
    b->keys[b->nb] = (tsr_kv_pair_t){.key = f->key, .klen = f->klen};
    b->of[b->nb++] = f;
    /* undecided until batch_take answers it: a failed call leaves it so */
    f->st = TSR_ERR_INTERNAL;
    f->ver = 0;
    f->loc.r = NULL;
    b->locs[b->nb - 1].r = NULL;
}

void tsr_txn_batch_read(txn_batch_t *b, void **scratch, tsr_error_t *err)
{
    if (b->nb == 0)
        return;
    kv_many_req_t q = {.readers = b->rd,
                       .nreaders = b->nr,
                       .which = b->which,
                       .keys = b->keys,
                       .n = b->nb,
                       .done = batch_take,
                       .arg = b,
                       .results = b->res,
                       .locs = b->locs};
    tsr_status_t rc = tsr_kv_remote_read_many(scratch, &q, NULL, err);
    /* Keys batch_take never answered get the call's failure (results[]
     * may not say: a table gone on the owner reads TSR_ERR_NOT_FOUND
     * there, and an early failure fills nothing). Their ver is 0, never
     * KV_TXN_ABSENT, so a NOT_FOUND here means the table, not the key. */
    for (size_t k = 0; k < b->nb; k++)
        if (b->of[k]->st == TSR_ERR_INTERNAL && rc != TSR_OK)
            b->of[k]->st = rc;
}

void tsr_txn_batch_fini(txn_batch_t *b)
{
    if (b->rd != b->rd_s) {
        tsr_mem_free(NULL, b->rd);
        tsr_mem_free(NULL, b->which);
        tsr_mem_free(NULL, b->keys);
        tsr_mem_free(NULL, b->of);
        tsr_mem_free(NULL, b->res);
        tsr_mem_free(NULL, b->locs);
    }
}
