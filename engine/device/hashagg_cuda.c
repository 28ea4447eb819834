/*
 * hashagg_cuda.c - host side of CUDA hash aggregation: owns the group table
 * in device memory, streams input rows through it, grows it, and reads the
 * groups back. Kernels and table format: kernels/cuda/hashagg.cuh (the same
 * algorithm and format as kernels/opencl/hashagg.cl, so results agree).
 *
 * One launch of input rows ("round"):
 *
 *   reset counters; update kernel; counters -> pinned host memory (async)
 *   loop:
 *     wait for the counters: new = slots claimed, fail = rows retried
 *     persist kernel over the claimed slots (ROWREF -> OCC, keys copied)
 *     done when fail == 0 and load <= 1/2
 *     grow: rehash into a table of >= 2*(groups + fail) slots (twice as big
 *           again if a group did not fit within the probe bound)
 *     done when fail == 0, else rerun the global kernel on the retry rows
 *
 * Termination: every retry round follows a growth of at least 2x and growth
 * stops with TSR_ERR_UNSUPPORTED past CU_HA_MAX_SLOTS (or TSR_ERR_NOMEM when
 * the device is full), so no input loops forever or loses a row.
 *
 * Kernels (cuda_kernels.h): the global kernel for many groups; the local
 * (shared-memory pre-aggregation) kernel while the table holds at most half
 * as many groups as a block's shared table has entries; its warp-combining
 * variant for at most CU_HA_WARP_GROUPS groups; the regs kernel (per-thread
 * partials) for at most rgroups groups already in the table; TSR_CUDA_HASHAGG
 * forces one (hashagg_cuda_table.c). With AUTO the first launch of
 * a fresh aggregation covers only CU_HA_PROBE_ROWS rows, so the choice for
 * the rest is made knowing roughly how many groups there are.
 *
 * Rows from host memory (tsr_dev_hashagg_update) go in chunks through two
 * device buffer sets: chunk i+1 is uploaded on a separate copy stream while
 * chunk i is aggregated on the caller's queue, each column through the
 * device's pinned staging buffers (cuda_stage.c) (events order each buffer's
 * upload after the last kernel that read it). When update returns, both
 * streams have finished: nothing reads the caller's memory any more, and
 * nothing of the call is still running (so destroying the aggregation is
 * safe whatever queue the caller used). Rows
 * already in device memory (tsr_dev_hashagg_cuda_update_device) are read in
 * place, in launches of up to dev_launch rows.
 *
 * Sizes follow the device: chunks of up to 4M rows and device launches of up
 * to 64M rows on large GPUs (smaller on small devices, and on the test
 * emulator, whose device has 1 GiB).
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/hashagg_cuda_internal.h"

_Static_assert(TSR_CUDA_OP_COUNT_STAR == TSR_DEV_OP_COUNT_STAR &&
                   TSR_CUDA_OP_COUNT == TSR_DEV_OP_COUNT && TSR_CUDA_OP_SUM_I == TSR_DEV_OP_SUM_I &&
                   TSR_CUDA_OP_SUM_D == TSR_DEV_OP_SUM_D && TSR_CUDA_OP_MIN_I == TSR_DEV_OP_MIN_I &&
                   TSR_CUDA_OP_MAX_I == TSR_DEV_OP_MAX_I && TSR_CUDA_OP_MIN_D == TSR_DEV_OP_MIN_D &&
                   TSR_CUDA_OP_MAX_D == TSR_DEV_OP_MAX_D,
               "kernel op codes must be hashagg.h's");
_Static_assert(TSR_CUDA_HA_MAX_KEYS == TSR_DEV_HASHAGG_MAX_KEYS &&
                   TSR_CUDA_HA_MAX_AGGS == TSR_DEV_HASHAGG_MAX_AGGS &&
                   TSR_CUDA_HA_MAX_SCOLS == TSR_DEV_HASHAGG_MAX_SCOLS,
               "kernel limits must be hashagg.h's");

/* ---- create / destroy ------------------------------------------------------------------ */

static tsr_status_t cu_ha_create(tsr_dev_hashagg_t *ha, tsr_error_t *err)
{
    tsr_dev_t *dev = ha->dev;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = tsr_dev_cuda_kernels_ok(dev, err);
    if (rc != TSR_OK)
        return rc;
    cu_ha_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    ha->impl = h;

    tsr_cuda_ha_view_t *t = &h->tmpl;
    t->nkeys = (uint32_t)ha->spec.nkeys;
    t->naggs = (uint32_t)ha->spec.naggs;
    t->ncols = (uint32_t)ha->layout.ncols;
    t->probe_limit = CU_HA_PROBE_LIMIT;
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        t->op[a] = (int8_t)ha->layout.op[a];
        t->nulls_col[a] = (int8_t)ha->layout.nulls_col[a];
        t->val_col[a] = (int8_t)ha->layout.val_col[a];
        t->hi_col[a] = (int8_t)ha->layout.hi_col[a];
    }
    for (size_t c = 0; c < ha->layout.ncols; c++)
        t->identity[c] = (int64_t)ha->layout.identity[c];

    size_t nslots = CU_HA_MIN_SLOTS;
    while (nslots < 2 * ha->spec.expected_groups && nslots < CU_HA_MAX_SLOTS)
        nslots *= 2;
    tsr_dev_queue_t *q = dev->queue;
    cudaError_t e = cudaSuccess;
    const char *what = "";
    if ((rc = tsr_hashagg_cuda_configure(ha, err)) != TSR_OK)
        goto err_free;
    cudaEvent_t *evs[] = {&h->counters_ready, &h->in[0].uploaded, &h->in[0].consumed,
                          &h->in[1].uploaded, &h->in[1].consumed};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]) && e == cudaSuccess; i++) {
        e = cudaEventCreateWithFlags(evs[i], cudaEventDisableTiming);
        what = "cudaEventCreateWithFlags";
    }
    if (e == cudaSuccess) {
        e = cudaStreamCreateWithFlags(&h->copy, cudaStreamNonBlocking);
        what = "cudaStreamCreateWithFlags";
    }
    if (e != cudaSuccess) {
        rc = cu_ha_fail(ha, e, what, err);
        goto err_free;
    }
    if ((rc = tsr_dev_buf_alloc(dev, 8, &h->counters, err)) != TSR_OK ||
        (rc = tsr_dev_host_alloc(dev, 8, &h->hc, err)) != TSR_OK ||
        (rc = tsr_dev_hashagg_table_alloc(ha, q, nslots, &h->t, err)) != TSR_OK ||
        (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        goto err_free;
    return TSR_OK;

err_free:
    tsr_hashagg_cuda_free(ha);
    return rc;
}

static void cu_ha_destroy(tsr_dev_hashagg_t *ha)
{
    if (!ha->impl)
        return;
    if (cudaSetDevice(tsr_dev_cuda(ha->dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    tsr_hashagg_cuda_free(ha);
}

/* ---- rounds ------------------------------------------------------------------------------ */

/* Which kernel the next launch uses (see the top of the file; the variants
 * and TSR_CUDA_HASHAGG: tsr_hashagg_cuda_pick in hashagg_cuda_table.c). */
static tsr_cuda_ha_kernel_t cu_ha_pick(const tsr_dev_hashagg_t *ha)
{
    return tsr_hashagg_cuda_pick(ha);
}

/* The view of a launch over n rows at c (sel NULL) with the current table. */
static void cu_ha_view(tsr_dev_hashagg_t *ha, const cu_ha_cols_t *c, size_t n,
                       tsr_cuda_ha_view_t *v)
{
    cu_ha_t *h = ha->impl;
    *v = h->tmpl;
    tsr_hashagg_cuda_table_view(&h->t, &v->t);
    memcpy(v->keys, c->keys, sizeof(v->keys));
    memcpy(v->kvalid, c->kvalid, sizeof(v->kvalid));
    memcpy(v->vals, c->vals, sizeof(v->vals));
    memcpy(v->vvalid, c->vvalid, sizeof(v->vvalid));
    v->sel = NULL;
    v->counters = tsr_dev_cuda_ptr(h->counters);
    v->retry = tsr_dev_cuda_ptr(h->retry);
    v->newslots = tsr_dev_cuda_ptr(h->newslots);
    v->newcount = tsr_dev_cuda_ptr(h->newcount);
    v->n = (uint32_t)n;
    v->plain = tsr_cuda_ha_plain(v);
}

/* Launches kernel k over r->v (v.n rows) and queues the counters' readback. */
static tsr_status_t cu_ha_launch(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, cu_ha_round_t *r,
                                 tsr_cuda_ha_kernel_t k, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    tsr_cuda_ha_view_t *v = &r->v;
    size_t n = v->n, grid, block, shmem;
    if (k == TSR_CUDA_HA_GLOBAL) {
        block = h->global_block;
        size_t per = block * CU_HA_U;
        grid = (n + per - 1) / per;
        grid = grid < h->global_grid ? grid : h->global_grid;
        v->region = (uint32_t)((n + grid * per - 1) / (grid * per) * per);
        shmem = TSR_CUDA_HA_GLOBAL_SHMEM;
    } else {
        block = k == TSR_CUDA_HA_REGS ? h->regs_block : h->local_block;
        size_t per = block * CU_HA_U * CU_HA_LOCAL_ITERS;
        grid = (n + per - 1) / per;
        grid = grid < h->local_grid[k] ? grid : h->local_grid[k];
        v->lslots = h->lslots;
        v->rgroups = h->rgroups;
        v->rows_per_block = (uint32_t)((n + grid - 1) / grid);
        v->region = v->rows_per_block;
        shmem = k == TSR_CUDA_HA_REGS ? h->regs_shmem : h->local_shmem;
    }
    r->nblocks = (unsigned)grid;
    tsr_status_t rc = tsr_hashagg_cuda_counters_reset(ha, s, err);
    if (rc != TSR_OK)
        return rc;
    cudaError_t e = tsr_cuda_ha_update(v, k, (unsigned)grid, (unsigned)block, shmem, s);
    if (e != cudaSuccess)
        return cu_ha_fail(ha, e, "aggregation kernel launch", err);
    return tsr_hashagg_cuda_counters_fetch(ha, s, err);
}

/* Finishes a round begun by cu_ha_launch: persist, grow, retry (top of file). */
static tsr_status_t cu_ha_finish(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, cu_ha_round_t *r,
                                 tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    for (;;) {
        uint32_t counts[2];
        tsr_status_t rc = tsr_hashagg_cuda_counters_wait(ha, counts, err);
        if (rc != TSR_OK)
            return rc;
        uint32_t fresh = counts[TSR_CUDA_CNT_NEW], fail = counts[TSR_CUDA_CNT_FAIL];
        if (fresh > 0) {
            unsigned grid = r->nblocks < h->aux_grid ? r->nblocks : h->aux_grid;
            cudaError_t e = tsr_cuda_ha_persist(&r->v, r->nblocks, grid, h->aux_block, s);
            if (e != cudaSuccess)
                return cu_ha_fail(ha, e, "persist kernel launch", err);
            ha->ngroups += fresh;
        }
        if (fail == 0 && 2 * ha->ngroups <= h->t.nslots)
            return TSR_OK;
        if ((rc = tsr_hashagg_cuda_grow(ha, q, ha->ngroups + fail, err)) != TSR_OK || fail == 0)
            return rc;
        /* rerun only the rows that found no slot (they touched nothing) */
        cudaError_t e = cudaMemcpyAsync(tsr_dev_cuda_ptr(h->sel), tsr_dev_cuda_ptr(h->retry),
                                        (size_t)fail * 4, cudaMemcpyDeviceToDevice, s);
        if (e != cudaSuccess)
            return cu_ha_fail(ha, e, "cudaMemcpyAsync(retry rows)", err);
        tsr_hashagg_cuda_table_view(&h->t, &r->v.t);
        r->v.sel = tsr_dev_cuda_ptr(h->sel);
        r->v.n = fail;
        if ((rc = cu_ha_launch(ha, q, r, TSR_CUDA_HA_GLOBAL, err)) != TSR_OK)
            return rc;
    }
}

/* Called once the last launch over a chunk is queued (uploads the next one). */
typedef tsr_status_t (*cu_ha_hook_fn)(tsr_dev_hashagg_t *ha, void *arg, tsr_error_t *err);

/* Aggregates m rows at c in launches: a small first one when AUTO has not
 * seen any group yet, then the rest (m is at most the scratch capacity). */
static tsr_status_t cu_ha_process(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, const cu_ha_cols_t *c,
                                  size_t m, cu_ha_hook_fn hook, void *hook_arg, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    size_t done = 0;
    tsr_status_t rc = TSR_OK;
    while (rc == TSR_OK && done < m) {
        size_t len = m - done;
        if (!h->probed && ha->spec.strategy == TSR_DEV_HASHAGG_AUTO && ha->ngroups == 0 &&
            len > 2 * CU_HA_PROBE_ROWS)
            len = CU_HA_PROBE_ROWS; /* a multiple of 64: bitmaps stay word-aligned */
        h->probed = true;
        cu_ha_cols_t sub = *c;
        for (size_t k = 0; k < ha->spec.nkeys; k++) {
            sub.keys[k] += done;
            if (sub.kvalid[k])
                sub.kvalid[k] += done / 64;
        }
        for (size_t a = 0; a < ha->spec.naggs; a++) {
            if (sub.vals[a])
                sub.vals[a] += done;
            if (sub.vvalid[a])
                sub.vvalid[a] += done / 64;
        }
        cu_ha_round_t r;
        cu_ha_view(ha, &sub, len, &r.v);
        rc = cu_ha_launch(ha, q, &r, cu_ha_pick(ha), err);
        if (rc == TSR_OK && hook && done + len == m)
            rc = hook(ha, hook_arg, err); /* overlaps the kernel just queued */
        if (rc == TSR_OK)
            rc = cu_ha_finish(ha, q, &r, err);
        done += len;
    }
    return rc;
}

/* ---- update from host memory ---------------------------------------------------------------- */

typedef struct cu_ha_upload {
    const tsr_dev_hashagg_rows_t *rows;
    size_t start, m; /* rows [start, start+m) of rows */
    cu_ha_input_t *in;
} cu_ha_upload_t;

/* Queues the upload of a chunk into an input set on the copy stream, after
 * the last kernel that read that set. */
static tsr_status_t cu_ha_upload(tsr_dev_hashagg_t *ha, void *arg, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    const cu_ha_upload_t *up = arg;
    const tsr_dev_hashagg_rows_t *rows = up->rows;
    cu_ha_input_t *in = up->in;
    cudaStream_t cs = h->copy;
    tsr_dev_t *dev = ha->dev;
    size_t cap = h->in_cap, start = up->start, m = up->m, words = (m + 63) / 64;
    char *keys = tsr_dev_cuda_ptr(in->keys), *kvalid = tsr_dev_cuda_ptr(in->kvalid);
    char *vals = tsr_dev_cuda_ptr(in->vals), *vvalid = tsr_dev_cuda_ptr(in->vvalid);
    const char *what = "upload (cudaMemcpyAsync)";
    cudaError_t e = cudaStreamWaitEvent(cs, in->consumed, 0);
    if (e != cudaSuccess)
        return cu_ha_fail(ha, e, "cudaStreamWaitEvent", err);
    /* through the pinned staging buffers: the host copies the next piece
     * while the previous one's DMA runs (cuda_stage.c) */
    tsr_status_t rc = TSR_OK;
    for (size_t k = 0; k < ha->spec.nkeys && rc == TSR_OK; k++) {
        rc = tsr_dev_cuda_upload(dev, cs, keys + k * cap * 8, rows->keys[k] + start, m * 8, what,
                                 err);
        if (rc == TSR_OK && rows->key_valid[k])
            rc = tsr_dev_cuda_upload(dev, cs, kvalid + k * cap / 8, rows->key_valid[k] + start / 64,
                                     words * 8, what, err);
    }
    for (size_t a = 0; a < ha->spec.naggs && rc == TSR_OK; a++) {
        if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
            continue;
        if (ha->layout.val_col[a] >= 0)
            rc = tsr_dev_cuda_upload(dev, cs, vals + a * cap * 8,
                                     (const uint64_t *)rows->values[a] + start, m * 8, what, err);
        if (rc == TSR_OK && rows->valid[a])
            rc = tsr_dev_cuda_upload(dev, cs, vvalid + a * cap / 8, rows->valid[a] + start / 64,
                                     words * 8, what, err);
    }
    if (rc != TSR_OK)
        return rc;
    e = cudaEventRecord(in->uploaded, cs);
    return e == cudaSuccess ? TSR_OK : cu_ha_fail(ha, e, "cudaEventRecord", err);
}

/* The device columns of input set `in` for rows shaped like `rows`. */
static void cu_ha_input_cols(tsr_dev_hashagg_t *ha, const tsr_dev_hashagg_rows_t *rows,
                             const cu_ha_input_t *in, cu_ha_cols_t *c)
{
    cu_ha_t *h = ha->impl;
    size_t cap = h->in_cap;
    const uint64_t *keys = tsr_dev_cuda_ptr(in->keys), *kvalid = tsr_dev_cuda_ptr(in->kvalid);
    const uint64_t *vals = tsr_dev_cuda_ptr(in->vals), *vvalid = tsr_dev_cuda_ptr(in->vvalid);
    memset(c, 0, sizeof(*c));
    for (size_t k = 0; k < ha->spec.nkeys; k++) {
        c->keys[k] = keys + k * cap;
        c->kvalid[k] = rows->key_valid[k] ? kvalid + k * cap / 64 : NULL;
    }
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
            continue;
        c->vals[a] = ha->layout.val_col[a] >= 0 ? vals + a * cap : NULL;
        c->vvalid[a] = rows->valid[a] ? vvalid + a * cap / 64 : NULL;
    }
}

static tsr_status_t cu_ha_update(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    size_t want = rows->n < h->chunk ? (rows->n + 63) / 64 * 64 : h->chunk;
    tsr_status_t rc = tsr_dev_cuda_use(ha->dev, err);
    if (rc == TSR_OK)
        rc = tsr_hashagg_cuda_inputs(ha, want, err);
    if (rc == TSR_OK)
        rc = tsr_hashagg_cuda_scratch(ha, h->in_cap, err);
    if (rc != TSR_OK)
        return rc;
    size_t cap = h->in_cap, nchunks = (rows->n + cap - 1) / cap;
    cu_ha_upload_t up = {rows, 0, rows->n < cap ? rows->n : cap, &h->in[0]};
    rc = cu_ha_upload(ha, &up, err);
    for (size_t i = 0; rc == TSR_OK && i < nchunks; i++) {
        cu_ha_input_t *in = &h->in[i & 1];
        size_t start = i * cap, m = rows->n - start < cap ? rows->n - start : cap;
        cu_ha_upload_t next = {rows, start + cap, 0, &h->in[(i + 1) & 1]};
        if (i + 1 < nchunks)
            next.m = rows->n - next.start < cap ? rows->n - next.start : cap;
        cudaError_t e = cudaStreamWaitEvent(s, in->uploaded, 0);
        if (e != cudaSuccess) {
            rc = cu_ha_fail(ha, e, "cudaStreamWaitEvent", err);
            break;
        }
        cu_ha_cols_t c;
        cu_ha_input_cols(ha, rows, in, &c);
        rc = cu_ha_process(ha, q, &c, m, i + 1 < nchunks ? cu_ha_upload : NULL, &next, err);
        if (rc == TSR_OK && (e = cudaEventRecord(in->consumed, s)) != cudaSuccess)
            rc = cu_ha_fail(ha, e, "cudaEventRecord", err);
    }
    /* nothing may read the caller's rows after we return (the uploads), and
     * nothing of this call may still run when the caller destroys ha with
     * another queue (the last persist kernel): a few microseconds */
    cudaError_t e = cudaStreamSynchronize(h->copy);
    if (rc == TSR_OK && e != cudaSuccess)
        rc = cu_ha_fail(ha, e, "cudaStreamSynchronize(uploads)", err);
    e = cudaStreamSynchronize(s);
    if (rc == TSR_OK && e != cudaSuccess)
        rc = cu_ha_fail(ha, e, "aggregation kernels (cudaStreamSynchronize)", err);
    if (rc != TSR_OK)
        cudaGetLastError();
    return rc;
}

/* ---- update from device memory ----------------------------------------------------------------
 */

static bool cu_ha_buf_ok(const tsr_dev_hashagg_t *ha, const tsr_dev_buf_t *b, size_t bytes)
{
    return b && b->dev == ha->dev && b->size >= bytes;
}

tsr_status_t tsr_dev_hashagg_cuda_update_device(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                                const tsr_cuda_ha_dev_rows_t *rows,
                                                tsr_error_t *err)
{
    if (!ha || !rows || ha->dev->backend->id != TSR_DEVICE_CUDA)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device-resident aggregation needs a CUDA aggregation");
    if (!q)
        q = ha->dev->queue;
    if (q->dev != ha->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device aggregation: the queue belongs to another device");
    size_t n = rows->n, words = (n + 63) / 64;
    if (n == 0)
        return TSR_OK;
    for (size_t k = 0; k < ha->spec.nkeys; k++)
        if (!cu_ha_buf_ok(ha, rows->keys[k], n * 8) ||
            (rows->key_valid[k] && !cu_ha_buf_ok(ha, rows->key_valid[k], words * 8)))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: key column %zu missing, too short or on "
                                 "another device",
                                 k);
    for (size_t a = 0; a < ha->spec.naggs; a++)
        if ((ha->layout.val_col[a] >= 0 && !cu_ha_buf_ok(ha, rows->values[a], n * 8)) ||
            (rows->valid[a] && !cu_ha_buf_ok(ha, rows->valid[a], words * 8)))
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "device aggregation: column of aggregate %zu missing, too short "
                                 "or on another device",
                                 a);
    cu_ha_t *h = ha->impl;
    size_t launch = rows->launch_rows ? (rows->launch_rows + 63) / 64 * 64 : h->dev_launch;
    if (launch > h->dev_launch)
        launch = h->dev_launch;
    if (launch > (n + 63) / 64 * 64)
        launch = (n + 63) / 64 * 64;
    tsr_status_t rc = tsr_dev_cuda_use(ha->dev, err);
    if (rc == TSR_OK)
        rc = tsr_hashagg_cuda_scratch(ha, launch, err);
    for (size_t start = 0; rc == TSR_OK && start < n; start += launch) {
        size_t m = n - start < launch ? n - start : launch;
        cu_ha_cols_t c;
        memset(&c, 0, sizeof(c));
        for (size_t k = 0; k < ha->spec.nkeys; k++) {
            c.keys[k] = (const uint64_t *)tsr_dev_cuda_ptr(rows->keys[k]) + start;
            if (rows->key_valid[k])
                c.kvalid[k] = (const uint64_t *)tsr_dev_cuda_ptr(rows->key_valid[k]) + start / 64;
        }
        for (size_t a = 0; a < ha->spec.naggs; a++) {
            if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
                continue;
            if (ha->layout.val_col[a] >= 0)
                c.vals[a] = (const uint64_t *)tsr_dev_cuda_ptr(rows->values[a]) + start;
            if (rows->valid[a])
                c.vvalid[a] = (const uint64_t *)tsr_dev_cuda_ptr(rows->valid[a]) + start / 64;
        }
        rc = cu_ha_process(ha, q, &c, m, NULL, NULL, err);
    }
    cudaError_t e = cudaStreamSynchronize(tsr_dev_cuda_stream(q));
    if (rc == TSR_OK && e != cudaSuccess)
        rc = cu_ha_fail(ha, e, "cudaStreamSynchronize", err);
    if (rc != TSR_OK)
        cudaGetLastError();
    return rc;
}

/* hashagg.h's update_dev: device-resident rows (exec/dev_columns.c keeps a
 * query's columns on the device). Without a selection, the rows of
 * tsr_dev_hashagg_cuda_update_device (every kernel). With one (the filter's
 * selection, straight from the device), the global kernel's row list is
 * the selection itself, in launches of up to dev_launch entries: its
 * retry path already reads rows through such a list (absolute row numbers
 * into the whole columns), and the local kernels take contiguous runs. */
static tsr_status_t cu_ha_update_dev(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                     const tsr_dev_hashagg_drows_t *rows, tsr_error_t *err)
{
    if (!rows->sel) {
        tsr_cuda_ha_dev_rows_t dr;
        memset(&dr, 0, sizeof(dr));
        dr.n = rows->n;
        memcpy(dr.keys, rows->keys, sizeof(dr.keys));
        memcpy(dr.key_valid, rows->key_valid, sizeof(dr.key_valid));
        memcpy(dr.values, rows->values, sizeof(dr.values));
        memcpy(dr.valid, rows->valid, sizeof(dr.valid));
        return tsr_dev_hashagg_cuda_update_device(ha, q, &dr, err);
    }
    cu_ha_t *h = ha->impl;
    size_t nsel = rows->nsel;
    size_t launch = nsel < h->dev_launch ? (nsel + 63) / 64 * 64 : h->dev_launch;
    tsr_status_t rc = tsr_dev_cuda_use(ha->dev, err);
    if (rc == TSR_OK)
        rc = tsr_hashagg_cuda_scratch(ha, launch, err);
    cu_ha_cols_t c;
    memset(&c, 0, sizeof(c));
    for (size_t k = 0; k < ha->spec.nkeys; k++) {
        c.keys[k] = tsr_dev_cuda_ptr(rows->keys[k]);
        c.kvalid[k] = rows->key_valid[k] ? tsr_dev_cuda_ptr(rows->key_valid[k]) : NULL;
    }
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
            continue;
        if (ha->layout.val_col[a] >= 0)
            c.vals[a] = tsr_dev_cuda_ptr(rows->values[a]);
        c.vvalid[a] = rows->valid[a] ? tsr_dev_cuda_ptr(rows->valid[a]) : NULL;
    }
    const uint32_t *sel = tsr_dev_cuda_ptr(rows->sel);
    for (size_t done = 0; rc == TSR_OK && done < nsel; done += launch) {
        size_t m = nsel - done < launch ? nsel - done : launch;
        cu_ha_round_t r;
        cu_ha_view(ha, &c, m, &r.v);
        r.v.sel = sel + done;
        rc = cu_ha_launch(ha, q, &r, TSR_CUDA_HA_GLOBAL, err);
        if (rc == TSR_OK)
            rc = cu_ha_finish(ha, q, &r, err);
    }
    cudaError_t e = cudaStreamSynchronize(tsr_dev_cuda_stream(q));
    if (rc == TSR_OK && e != cudaSuccess)
        rc = cu_ha_fail(ha, e, "cudaStreamSynchronize", err);
    if (rc != TSR_OK)
        cudaGetLastError();
    return rc;
}

/* ---- result ------------------------------------------------------------------------------- */

/* Reads the table back and compacts the groups (hashagg_host.c). */
static tsr_status_t cu_ha_result(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_out_t *out, tsr_dev_hashagg_raw_t *raw,
                                 tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    return tsr_dev_hashagg_table_read(ha, q, &h->t, "CUDA", out, raw, err);
}

const tsr_dev_hashagg_ops_t tsr_dev_hashagg_cuda_ops = {
    .create = cu_ha_create,
    .destroy = cu_ha_destroy,
    .update = cu_ha_update,
    .update_dev = cu_ha_update_dev,
    .result = cu_ha_result,
};

#else
typedef int tsr_dev_hashagg_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
