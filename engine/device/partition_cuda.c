/*
 * partition_cuda.c - host side of CUDA hash partitioning: uploads the key
 * columns (or the caller's hashes), runs histogram -> scan -> scatter
 * (kernels/cuda/partition.cuh: one warp per run of rows, warp-aggregated
 * counters in shared memory, stable), and copies rows, offsets and the
 * wanted keys back. The partition function and output format are
 * partition.h's, the same on every backend.
 *
 * Sizing (cu_pa_plan): runs are long enough that the count matrix
 * (P x runs, 8 bytes each) stays within max(4M entries, rows) and there are
 * about as many runs as the GPU holds resident warps. Counters sit in shared
 * memory (P words per warp) while at least two warps' counters fit 48 KiB,
 * else in the matrix itself (global memory).
 *
 * A batch of at most `launch` rows is one launch. A larger batch takes two
 * passes over its launches: the first collects every launch's partition
 * sizes (histogram + scan + offsets, nothing else is copied), which place
 * each launch's segment of each partition in the output; the second
 * partitions every launch again into pinned-size host staging and copies
 * the segments to their places (rows keep their order: launches in order,
 * each stable). Everything is on the caller's queue; run returns after the
 * outputs are written.
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/partition.h"

#define CU_PA_LAUNCH ((size_t)1 << 24) /* rows per launch */
#define CU_PA_BLOCK 256u               /* partition.cu's launch bounds */
#define CU_PA_SHARED ((size_t)48 << 10)
#define CU_PA_MATRIX ((size_t)1 << 22) /* count-matrix entries a launch may use beyond rows */

_Static_assert(TSR_CUDA_PART_MAX_KEYS == TSR_DEV_PARTITION_MAX_KEYS, "key limits agree");

typedef struct cu_pa {
    size_t launch;          /* rows per launch (a multiple of 64) */
    size_t cap;             /* rows the buffers hold (0: none yet) */
    tsr_dev_buf_t *keys;    /* uint64[nkeys * cap] */
    tsr_dev_buf_t *kvalid;  /* uint64[nkeys * cap / 64] */
    tsr_dev_buf_t *rows;    /* uint32[cap] */
    tsr_dev_buf_t *kout;    /* uint64[nkeys * cap] */
    tsr_dev_buf_t *cnt;     /* uint64[P * runs] */
    tsr_dev_buf_t *offsets; /* uint64[P + 1] */
    tsr_dev_cuda_scan_buf_t scan;
} cu_pa_t;

/* One launch's shape. */
typedef struct cu_pa_plan {
    unsigned block, grid;
    size_t shmem;
    tsr_cuda_part_view_t v;
} cu_pa_plan_t;

static void cu_pa_free(cu_pa_t *h)
{
    tsr_dev_buf_free(h->keys);
    tsr_dev_buf_free(h->kvalid);
    tsr_dev_buf_free(h->rows);
    tsr_dev_buf_free(h->kout);
    tsr_dev_buf_free(h->cnt);
    tsr_dev_buf_free(h->offsets);
    tsr_dev_cuda_scan_free(&h->scan);
    h->keys = h->kvalid = h->rows = h->kout = h->cnt = h->offsets = NULL;
    h->cap = 0;
}

static tsr_status_t cu_pa_create(tsr_dev_partition_t *p, tsr_error_t *err)
{
    tsr_dev_t *dev = p->dev;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = tsr_dev_cuda_kernels_ok(dev, err);
    if (rc != TSR_OK)
        return rc;
    cu_pa_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t launch = p->spec.launch_rows ? p->spec.launch_rows : CU_PA_LAUNCH;
    h->launch = (launch + 63) / 64 * 64;
    p->impl = h;
    return TSR_OK;
}

static void cu_pa_destroy(tsr_dev_partition_t *p)
{
    cu_pa_t *h = p->impl;
    if (!h)
        return;
    if (cudaSetDevice(tsr_dev_cuda(p->dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    cu_pa_free(h);
    tsr_mem_free(p->dev->mem, h);
}

/* The launch shape for m rows (see the top). */
static void cu_pa_plan(const tsr_dev_partition_t *p, size_t m, cu_pa_plan_t *pl)
{
    const tsr_cuda_dev_t *cu = tsr_dev_cuda(p->dev);
    size_t P = p->spec.nparts;
    unsigned block = tsr_dev_cuda_block(p->dev, CU_PA_BLOCK), wpb = block / 32;
    bool shared = false;
    if (P * 4 * 2 <= CU_PA_SHARED) {
        while (wpb > 2 && P * 4 * wpb > CU_PA_SHARED)
            wpb /= 2;
        shared = true;
    }
    block = wpb * 32;
    size_t warps = (size_t)cu->sm_count * (cu->max_threads_per_sm / 32);
    size_t run = (m + warps - 1) / warps;
    run = run < 32 ? 32 : (run + 31) / 32 * 32;
    size_t budget = m > CU_PA_MATRIX ? m : CU_PA_MATRIX;
    while (P * ((m + run - 1) / run) > budget)
        run *= 2;
    size_t nruns = (m + run - 1) / run;
    memset(pl, 0, sizeof(*pl));
    pl->block = block;
    pl->grid = tsr_dev_cuda_grid(p->dev, nruns, wpb, block);
    pl->shmem = shared ? P * 4 * wpb : 0;
    pl->v.nparts = P;
    pl->v.nkeys = (uint32_t)p->spec.nkeys;
    pl->v.hashed = p->spec.hashed;
    pl->v.n = (uint32_t)m;
    pl->v.run = (uint32_t)run;
    pl->v.nruns = (uint32_t)nruns;
    pl->v.shared = shared;
}

/* Buffers for launches of cap rows and P * runs counters. */
static tsr_status_t cu_pa_bufs(tsr_dev_partition_t *p, tsr_dev_queue_t *q, size_t cap,
                               const tsr_dev_partition_out_t *out, tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    size_t nk = p->spec.nkeys, P = p->spec.nparts;
    bool want_keys = false;
    for (size_t k = 0; k < nk; k++)
        want_keys |= out->keys[k] != NULL;
    tsr_status_t rc;
    if ((rc = tsr_dev_cuda_ensure(q, &h->keys, nk * cap * 8, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_ensure(q, &h->kvalid, nk * cap / 8, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_ensure(q, &h->rows, cap * 4, err)) != TSR_OK ||
        (want_keys && (rc = tsr_dev_cuda_ensure(q, &h->kout, nk * cap * 8, err)) != TSR_OK) ||
        (rc = tsr_dev_cuda_ensure(q, &h->offsets, (P + 1) * 8, err)) != TSR_OK)
        return rc;
    h->cap = cap;
    return TSR_OK;
}

/* Uploads rows [base, base + m) and queues histogram, scan and offsets of
 * them; *pl gets the launch's view (with the buffers). */
static tsr_status_t cu_pa_count(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                const tsr_dev_partition_in_t *in, size_t base, size_t m,
                                cu_pa_plan_t *pl, tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    tsr_dev_t *dev = p->dev;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    size_t cap = h->cap, P = p->spec.nparts;
    cu_pa_plan(p, m, pl);
    tsr_cuda_part_view_t *v = &pl->v;
    v->offsets = tsr_dev_cuda_ptr(h->offsets);
    v->rows_out = tsr_dev_cuda_ptr(h->rows);
    v->row_base = (uint32_t)base;
    /* the matrix first: growing it waits for the queue */
    tsr_status_t rc = tsr_dev_cuda_ensure(q, &h->cnt, P * v->nruns * 8, err);
    if (rc == TSR_OK)
        v->cnt = tsr_dev_cuda_ptr(h->cnt);
    for (size_t k = 0; k < p->spec.nkeys && rc == TSR_OK; k++) {
        uint64_t *dk = (uint64_t *)tsr_dev_cuda_ptr(h->keys) + k * cap;
        v->keys[k] = dk;
        rc = tsr_dev_cuda_memcpy(q, dk, in->keys[k] + base, m * 8, cudaMemcpyHostToDevice,
                                 "cudaMemcpyAsync(partition keys)", err);
        if (rc == TSR_OK && !p->spec.hashed && in->key_valid[k]) {
            uint64_t *dv = (uint64_t *)tsr_dev_cuda_ptr(h->kvalid) + k * (cap / 64);
            v->kvalid[k] = dv;
            rc = tsr_dev_cuda_memcpy(q, dv, in->key_valid[k] + base / 64, (m + 63) / 64 * 8,
                                     cudaMemcpyHostToDevice, "cudaMemcpyAsync(partition validity)",
                                     err);
        }
    }
    if (rc != TSR_OK)
        return rc;
    cudaError_t e = cudaSuccess;
    const char *what = "cudaMemsetAsync(partition counters)";
    if (!v->shared)
        e = cudaMemsetAsync(v->cnt, 0, P * v->nruns * 8, s);
    if (e == cudaSuccess) {
        what = "partition histogram kernel launch";
        e = tsr_cuda_part(v, TSR_CUDA_PART_HIST, pl->grid, pl->block, pl->shmem, s);
    }
    if (e != cudaSuccess)
        return tsr_dev_cuda_fail(err, dev, e, what);
    if ((rc = tsr_dev_cuda_scan(q, &h->scan, v->cnt, P * v->nruns, NULL, err)) != TSR_OK)
        return rc;
    unsigned block = tsr_dev_cuda_block(dev, CU_PA_BLOCK);
    e = tsr_cuda_part(v, TSR_CUDA_PART_OFFSETS, tsr_dev_cuda_grid(dev, P + 1, block, block), block,
                      0, s);
    return e == cudaSuccess ? TSR_OK
                            : tsr_dev_cuda_fail(err, dev, e, "partition offsets kernel launch");
}

/* Queues the scatter of the launch counted into pl (keys to kout when wanted). */
static tsr_status_t cu_pa_scatter(tsr_dev_partition_t *p, tsr_dev_queue_t *q, cu_pa_plan_t *pl,
                                  const tsr_dev_partition_out_t *out, tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    for (size_t k = 0; k < p->spec.nkeys; k++)
        pl->v.keys_out[k] =
            out->keys[k] ? (uint64_t *)tsr_dev_cuda_ptr(h->kout) + k * h->cap : NULL;
    cudaError_t e = tsr_cuda_part(&pl->v, TSR_CUDA_PART_SCATTER, pl->grid, pl->block, pl->shmem,
                                  tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK
                            : tsr_dev_cuda_fail(err, p->dev, e, "partition scatter kernel launch");
}

/* Copies m partitioned rows (and wanted keys) from the device to rows / keys. */
static tsr_status_t cu_pa_fetch(tsr_dev_partition_t *p, tsr_dev_queue_t *q, size_t m,
                                uint32_t *rows, uint64_t *const *keys, tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    tsr_status_t rc = tsr_dev_cuda_memcpy(q, rows, tsr_dev_cuda_ptr(h->rows), m * 4,
                                          cudaMemcpyDeviceToHost, "cudaMemcpyAsync(rows)", err);
    for (size_t k = 0; k < p->spec.nkeys && rc == TSR_OK; k++)
        if (keys[k])
            rc = tsr_dev_cuda_memcpy(q, keys[k], (uint64_t *)tsr_dev_cuda_ptr(h->kout) + k * h->cap,
                                     m * 8, cudaMemcpyDeviceToHost, "cudaMemcpyAsync(keys)", err);
    return rc;
}

/* n > launch: the two passes of the top. */
static tsr_status_t cu_pa_run_multi(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                    const tsr_dev_partition_in_t *in,
                                    const tsr_dev_partition_out_t *out, tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    tsr_mem_t *mem = p->dev->mem;
    size_t n = in->n, L = h->cap, nl = (n + L - 1) / L, P = p->spec.nparts, nk = p->spec.nkeys;
    uint64_t *loff = tsr_mem_alloc(mem, nl * (P + 1) * 8);
    uint64_t *pos = tsr_mem_alloc(mem, P * 8);
    uint32_t *srows = tsr_mem_alloc(mem, L * 4);
    uint64_t *skeys[TSR_DEV_PARTITION_MAX_KEYS] = {0};
    tsr_status_t rc = TSR_OK;
    if (!loff || !pos || !srows)
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for partitioning %zu rows", n);
    for (size_t k = 0; k < nk && rc == TSR_OK; k++)
        if (out->keys[k] && !(skeys[k] = tsr_mem_alloc(mem, L * 8)))
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for partitioning %zu rows", n);
    cu_pa_plan_t pl;
    /* pass 1: every launch's partition sizes */
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t base = l * L, m = n - base < L ? n - base : L;
        if ((rc = cu_pa_count(p, q, in, base, m, &pl, err)) == TSR_OK)
            rc = tsr_dev_read(q, h->offsets, 0, loff + l * (P + 1), (P + 1) * 8, true, NULL, err);
    }
    if (rc == TSR_OK) {
        uint64_t acc = 0;
        for (size_t k = 0; k < P; k++) {
            out->offsets[k] = pos[k] = acc;
            for (size_t l = 0; l < nl; l++)
                acc += loff[l * (P + 1) + k + 1] - loff[l * (P + 1) + k];
        }
        out->offsets[P] = acc;
    }
    /* pass 2: partition each launch again and place its segments */
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t base = l * L, m = n - base < L ? n - base : L;
        const uint64_t *lo = loff + l * (P + 1);
        if ((rc = cu_pa_count(p, q, in, base, m, &pl, err)) != TSR_OK ||
            (rc = cu_pa_scatter(p, q, &pl, out, err)) != TSR_OK ||
            (rc = cu_pa_fetch(p, q, m, srows, skeys, err)) != TSR_OK ||
            (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
            break;
        for (size_t k = 0; k < P; k++) {
            size_t len = lo[k + 1] - lo[k];
            memcpy(out->rows + pos[k], srows + lo[k], len * 4);
            for (size_t c = 0; c < nk; c++)
                if (skeys[c])
                    memcpy(out->keys[c] + pos[k], skeys[c] + lo[k], len * 8);
            pos[k] += len;
        }
    }
    if (rc != TSR_OK)
        tsr_dev_cuda_drain(q);
    for (size_t k = 0; k < nk; k++)
        tsr_mem_free(mem, skeys[k]);
    tsr_mem_free(mem, srows);
    tsr_mem_free(mem, pos);
    tsr_mem_free(mem, loff);
    return rc;
}

static tsr_status_t cu_pa_run(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                              const tsr_dev_partition_in_t *in, const tsr_dev_partition_out_t *out,
                              tsr_error_t *err)
{
    cu_pa_t *h = p->impl;
    size_t n = in->n, P = p->spec.nparts;
    size_t cap = n < h->launch ? (n + 63) / 64 * 64 : h->launch;
    tsr_status_t rc = tsr_dev_cuda_use(p->dev, err);
    if (rc == TSR_OK)
        rc = cu_pa_bufs(p, q, cap, out, err);
    if (rc != TSR_OK)
        return rc;
    if (n > h->cap)
        return cu_pa_run_multi(p, q, in, out, err);
    cu_pa_plan_t pl;
    if ((rc = cu_pa_count(p, q, in, 0, n, &pl, err)) != TSR_OK ||
        (rc = cu_pa_scatter(p, q, &pl, out, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_memcpy(q, out->offsets, tsr_dev_cuda_ptr(h->offsets), (P + 1) * 8,
                                  cudaMemcpyDeviceToHost, "cudaMemcpyAsync(offsets)", err)) !=
            TSR_OK ||
        (rc = cu_pa_fetch(p, q, n, out->rows, out->keys, err)) != TSR_OK) {
        tsr_dev_cuda_drain(q);
        return rc;
    }
    return tsr_dev_queue_finish(q, err);
}

const tsr_dev_partition_ops_t tsr_dev_partition_cuda_ops = {
    .create = cu_pa_create,
    .destroy = cu_pa_destroy,
    .run = cu_pa_run,
};

#else
typedef int tsr_dev_partition_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
