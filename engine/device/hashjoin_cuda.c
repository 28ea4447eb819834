/*
 * hashjoin_cuda.c - host side of the CUDA hash join: owns the table in
 * device memory, runs the build, streams probe rows through it and copies
 * the pairs out in fixed-size windows. Kernels and table format:
 * kernels/cuda/hashjoin.cuh (the algorithm of kernels/opencl/hashjoin.cl,
 * so every backend matches alike); semantics: hashjoin.h.
 *
 *   build   upload the build keys; insert -> scan(cnt) -> scatter ->
 *           finish (the probe table: (key, start | count << 32) per slot);
 *           read the counters (blocking: the caller's keys are consumed);
 *           free the build-only buffers
 *   probe   launches of at most `launch` rows go through two key buffers:
 *           launch i+1 is uploaded on a copy stream while the probe kernel
 *           of launch i runs on the queue (events order each buffer's
 *           upload after the kernel that last read it); then one scan of
 *           all counts = output positions; read the total (blocking)
 *   pairs   per window of `window` pairs: the write kernel over all probe
 *           rows (each writes its pairs inside the window), copy the window
 *           into the caller's arrays
 *
 * Device memory: 4 bytes per build row and 16 per slot (2 slots per build
 * row at most) for the table's lifetime; 12 bytes per probe row for the
 * probe's; two launches of keys and one window of pairs. Scratch buffers
 * are kept and reused while big enough.
 *
 * Keys already in device memory (build_dev / probe_dev: exec/dev_columns.c
 * keeps a query's columns there) are read in place: no upload, no pipe.
 * Host keys go through the device's pinned staging buffers (cuda_stage.c).
 *
 * Every return leaves nothing queued that reads or writes caller memory
 * (error paths drain both streams).
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/hashjoin.h"

#define CU_HJ_LAUNCH ((size_t)1 << 24) /* probe rows per launch */
#define CU_HJ_WINDOW ((size_t)1 << 24) /* pairs per window */
#define CU_HJ_BLOCK 256u               /* hashjoin.cu's launch bounds */

typedef struct cu_hj_in {
    tsr_dev_buf_t *keys;  /* width * launch bytes */
    tsr_dev_buf_t *valid; /* launch / 8 bytes */
} cu_hj_in_t;

typedef struct cu_hj {
    size_t launch;            /* probe rows per launch (multiple of 64) */
    size_t window;            /* pairs per window */
    unsigned block;           /* threads per block */
    tsr_dev_cuda_pipe_t pipe; /* uploads of probe launches into in[] */
    tsr_dev_buf_t *counters;  /* uint32[2]: distinct keys, rows without a slot */
    tsr_dev_cuda_scan_buf_t scan;
    /* the table (after build) */
    tsr_dev_buf_t *table; /* uint64[2 * nslots] */
    tsr_dev_buf_t *rows;  /* uint32[non-NULL build rows] */
    /* the last probe */
    tsr_dev_buf_t *pstart;  /* uint32[probe rows] */
    tsr_dev_buf_t *offsets; /* uint64[probe rows + 1] */
    cu_hj_in_t in[2];
    tsr_dev_buf_t *out_probe, *out_build; /* uint32[window] */
} cu_hj_t;

static tsr_status_t cu_hj_fail(tsr_dev_hashjoin_t *hj, cudaError_t e, const char *what,
                               tsr_error_t *err)
{
    return tsr_dev_cuda_fail(err, hj->dev, e, what);
}

static void cu_hj_free(cu_hj_t *h)
{
    tsr_dev_cuda_pipe_free(&h->pipe);
    for (int b = 0; b < 2; b++) {
        tsr_dev_buf_free(h->in[b].keys);
        tsr_dev_buf_free(h->in[b].valid);
    }
    tsr_dev_cuda_scan_free(&h->scan);
    tsr_dev_buf_free(h->counters);
    tsr_dev_buf_free(h->table);
    tsr_dev_buf_free(h->rows);
    tsr_dev_buf_free(h->pstart);
    tsr_dev_buf_free(h->offsets);
    tsr_dev_buf_free(h->out_probe);
    tsr_dev_buf_free(h->out_build);
}

static tsr_status_t cu_hj_create(tsr_dev_hashjoin_t *hj, tsr_error_t *err)
{
    tsr_dev_t *dev = hj->dev;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = tsr_dev_cuda_kernels_ok(dev, err);
    if (rc != TSR_OK)
        return rc;
    cu_hj_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t launch = hj->spec.launch_rows ? hj->spec.launch_rows : CU_HJ_LAUNCH;
    h->launch = (launch + 63) / 64 * 64;
    h->window = hj->spec.window_pairs ? hj->spec.window_pairs : CU_HJ_WINDOW;
    h->block = tsr_dev_cuda_block(dev, CU_HJ_BLOCK);
    if ((rc = tsr_dev_cuda_pipe_init(dev, &h->pipe, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, 8, &h->counters, err)) != TSR_OK) {
        cu_hj_free(h);
        tsr_mem_free(dev->mem, h);
        return rc;
    }
    hj->impl = h;
    return TSR_OK;
}

static void cu_hj_destroy(tsr_dev_hashjoin_t *hj)
{
    cu_hj_t *h = hj->impl;
    if (!h)
        return;
    if (cudaSetDevice(tsr_dev_cuda(hj->dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    cu_hj_free(h);
    tsr_mem_free(hj->dev->mem, h);
}

static tsr_status_t cu_hj_launch(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                 const tsr_cuda_join_view_t *v, tsr_cuda_join_kernel_t k,
                                 size_t items, tsr_error_t *err)
{
    cu_hj_t *h = hj->impl;
    unsigned grid = tsr_dev_cuda_grid(hj->dev, items, h->block, h->block);
    cudaError_t e = tsr_cuda_join(v, k, grid, h->block, tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : cu_hj_fail(hj, e, "join kernel launch", err);
}

static tsr_status_t cu_hj_memset(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, tsr_dev_buf_t *b,
                                 size_t size, tsr_error_t *err)
{
    cudaError_t e = cudaMemsetAsync(tsr_dev_cuda_ptr(b), 0, size, tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : cu_hj_fail(hj, e, "cudaMemsetAsync", err);
}

/* ---- build ------------------------------------------------------------------------ */

/* Builds from host keys (keys) or device-resident ones (dkeys): the two
 * differ only in where the kernels read the keys. */
static tsr_status_t cu_hj_build_any(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys,
                                    const tsr_dev_join_dkeys_t *dkeys, tsr_error_t *err)
{
    cu_hj_t *h = hj->impl;
    tsr_dev_t *dev = hj->dev;
    size_t n = keys ? keys->n : dkeys->n, ns = hj->nslots, width = (size_t)hj->spec.key,
           words = (n + 63) / 64;
    tsr_dev_buf_t *bkeys = NULL, *bvalid = NULL, *ref = NULL, *cnt = NULL, *row_slot = NULL,
                  *cursor = NULL;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    if ((keys && ((rc = tsr_dev_buf_alloc(dev, n ? n * width : 8, &bkeys, err)) != TSR_OK ||
                  (rc = tsr_dev_buf_alloc(dev, words ? words * 8 : 8, &bvalid, err)) != TSR_OK)) ||
        (rc = tsr_dev_buf_alloc(dev, ns * 4, &ref, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (ns + 1) * 8, &cnt, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, n ? n * 4 : 8, &row_slot, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ns * 8, &cursor, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ns * 16, &h->table, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, n ? n * 4 : 8, &h->rows, err)) != TSR_OK)
        goto err_free;
    tsr_cuda_join_view_t v;
    memset(&v, 0, sizeof(v));
    if (keys) {
        v.bkeys = tsr_dev_cuda_ptr(bkeys);
        v.bvalid = keys->valid ? tsr_dev_cuda_ptr(bvalid) : NULL;
    } else { /* read in place */
        v.bkeys = n ? tsr_dev_cuda_ptr(dkeys->keys) : NULL;
        v.bvalid = n && dkeys->valid ? tsr_dev_cuda_ptr(dkeys->valid) : NULL;
    }
    v.ref = tsr_dev_cuda_ptr(ref);
    v.cnt = tsr_dev_cuda_ptr(cnt);
    v.cursor = tsr_dev_cuda_ptr(cursor);
    v.row_slot = tsr_dev_cuda_ptr(row_slot);
    v.rows = tsr_dev_cuda_ptr(h->rows);
    v.table = tsr_dev_cuda_ptr(h->table);
    v.counters = tsr_dev_cuda_ptr(h->counters);
    v.nslots = ns;
    v.nb = (uint32_t)n;
    v.width = (uint32_t)width;
    uint32_t counts[2] = {0, 0};
    cudaStream_t s = tsr_dev_cuda_stream(q);
    if ((keys && (rc = tsr_dev_cuda_upload(dev, s, tsr_dev_cuda_ptr(bkeys), keys->keys,
                                           n * width, "cudaMemcpyAsync(build keys)", err)) !=
                     TSR_OK) ||
        (keys && keys->valid &&
         (rc = tsr_dev_cuda_upload(dev, s, tsr_dev_cuda_ptr(bvalid), keys->valid, words * 8,
                                   "cudaMemcpyAsync(build validity)", err)) != TSR_OK) ||
        (rc = cu_hj_memset(hj, q, ref, ns * 4, err)) != TSR_OK ||
        (rc = cu_hj_memset(hj, q, cnt, (ns + 1) * 8, err)) != TSR_OK ||
        (rc = cu_hj_memset(hj, q, cursor, ns * 8, err)) != TSR_OK ||
        (rc = cu_hj_memset(hj, q, h->counters, 8, err)) != TSR_OK ||
        (rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_INSERT, n, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_scan(q, &h->scan, v.cnt, ns, v.cnt + ns, err)) != TSR_OK ||
        (rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_SCATTER, n, err)) != TSR_OK ||
        (rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_FINISH, ns, err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->counters, 0, counts, sizeof(counts), true, NULL, err)) != TSR_OK)
        goto err_drain;
    if (counts[1] != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL,
                           "CUDA join table on %s: %u rows found no slot in %zu slots",
                           dev->info.name, counts[1], ns);
        goto err_free;
    }
    hj->ndistinct = counts[0];
    goto free_temps;

err_drain:
    tsr_dev_cuda_drain(q);
err_free:
    tsr_dev_buf_free(h->table);
    tsr_dev_buf_free(h->rows);
    h->table = h->rows = NULL;
free_temps:
    tsr_dev_buf_free(bkeys);
    tsr_dev_buf_free(bvalid);
    tsr_dev_buf_free(ref);
    tsr_dev_buf_free(cnt);
    tsr_dev_buf_free(row_slot);
    tsr_dev_buf_free(cursor);
    return rc;
}

static tsr_status_t cu_hj_build(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                const tsr_dev_join_keys_t *keys, tsr_error_t *err)
{
    return cu_hj_build_any(hj, q, keys, NULL, err);
}

static tsr_status_t cu_hj_build_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_dkeys_t *keys, tsr_error_t *err)
{
    return cu_hj_build_any(hj, q, NULL, keys, err);
}

/* ---- probe ------------------------------------------------------------------------ */

/* Queues the upload of probe rows [base, base + m) into buffer set b on the
 * copy stream, after the kernel that last read it. */
static tsr_status_t cu_hj_upload(tsr_dev_hashjoin_t *hj, const tsr_dev_join_keys_t *keys, int b,
                                 size_t base, size_t m, tsr_error_t *err)
{
    cu_hj_t *h = hj->impl;
    size_t width = (size_t)hj->spec.key;
    tsr_status_t rc = tsr_dev_cuda_pipe_upload_begin(hj->dev, &h->pipe, b, err);
    if (rc != TSR_OK)
        return rc;
    const char *what = "cudaMemcpyAsync(probe keys)";
    rc = tsr_dev_cuda_upload(hj->dev, h->pipe.copy, tsr_dev_cuda_ptr(h->in[b].keys),
                             (const char *)keys->keys + base * width, m * width, what, err);
    if (rc == TSR_OK && keys->valid)
        rc = tsr_dev_cuda_upload(hj->dev, h->pipe.copy, tsr_dev_cuda_ptr(h->in[b].valid),
                                 keys->valid + base / 64, (m + 63) / 64 * 8, what, err);
    if (rc != TSR_OK)
        return rc;
    return tsr_dev_cuda_pipe_upload_end(hj->dev, &h->pipe, b, err);
}

/* Probes host keys (keys: uploaded launch by launch through the pipe) or
 * device-resident ones (dkeys: each launch reads its slice in place). */
static tsr_status_t cu_hj_probe_any(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys,
                                    const tsr_dev_join_dkeys_t *dkeys, size_t *npairs,
                                    tsr_error_t *err)
{
    cu_hj_t *h = hj->impl;
    size_t n = keys ? keys->n : dkeys->n, width = (size_t)hj->spec.key;
    size_t launch = n < h->launch ? (n + 63) / 64 * 64 : h->launch;
    tsr_status_t rc = tsr_dev_cuda_use(hj->dev, err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = tsr_dev_cuda_ensure(q, &h->pstart, n ? n * 4 : 8, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_ensure(q, &h->offsets, (n + 1) * 8, err)) != TSR_OK)
        return rc;
    for (int b = 0; b < 2 && launch && keys; b++) {
        if ((rc = tsr_dev_cuda_ensure(q, &h->in[b].keys, launch * width, err)) != TSR_OK ||
            (rc = tsr_dev_cuda_ensure(q, &h->in[b].valid, launch / 8, err)) != TSR_OK)
            return rc;
    }
    tsr_cuda_join_view_t v;
    memset(&v, 0, sizeof(v));
    v.table = tsr_dev_cuda_ptr(h->table);
    v.nslots = hj->nslots;
    v.pstart = tsr_dev_cuda_ptr(h->pstart);
    v.offsets = tsr_dev_cuda_ptr(h->offsets);
    v.width = (uint32_t)width;
    /* both sets free: nothing queued reads them (events start "complete") */
    size_t nl = launch ? (n + launch - 1) / launch : 0;
    if (keys && nl && (rc = cu_hj_upload(hj, keys, 0, 0, n < launch ? n : launch, err)) != TSR_OK)
        goto err_drain;
    for (size_t l = 0; l < nl; l++) {
        int b = (int)(l & 1);
        size_t base = l * launch, m = n - base < launch ? n - base : launch;
        if (!keys) { /* device keys: the launch's slice in place (base % 64 == 0) */
            v.pkeys = (const char *)tsr_dev_cuda_ptr(dkeys->keys) + base * width;
            v.pvalid = dkeys->valid ? (const uint64_t *)tsr_dev_cuda_ptr(dkeys->valid) + base / 64
                                    : NULL;
            v.np = (uint32_t)m;
            v.pbase = (uint32_t)base;
            if ((rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_PROBE, m, err)) != TSR_OK)
                goto err_drain;
            continue;
        }
        if (l + 1 < nl) {
            size_t nb = base + launch, nm = n - nb < launch ? n - nb : launch;
            if ((rc = cu_hj_upload(hj, keys, !b, nb, nm, err)) != TSR_OK)
                goto err_drain;
        }
        v.pkeys = tsr_dev_cuda_ptr(h->in[b].keys);
        v.pvalid = keys->valid ? tsr_dev_cuda_ptr(h->in[b].valid) : NULL;
        v.np = (uint32_t)m;
        v.pbase = (uint32_t)base;
        if ((rc = tsr_dev_cuda_pipe_use(q, &h->pipe, b, err)) != TSR_OK ||
            (rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_PROBE, m, err)) != TSR_OK ||
            (rc = tsr_dev_cuda_pipe_release(q, &h->pipe, b, err)) != TSR_OK)
            goto err_drain;
    }
    uint64_t total = 0;
    if ((rc = tsr_dev_cuda_scan(q, &h->scan, v.offsets, n, v.offsets + n, err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->offsets, n * 8, &total, 8, true, NULL, err)) != TSR_OK)
        goto err_drain;
    /* the copy stream has finished too: its last upload preceded the last probe */
    *npairs = (size_t)total;
    return TSR_OK;

err_drain:
    tsr_dev_cuda_pipe_drain(&h->pipe, q);
    return rc;
}

static tsr_status_t cu_hj_probe(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                const tsr_dev_join_keys_t *keys, size_t *npairs, tsr_error_t *err)
{
    return cu_hj_probe_any(hj, q, keys, NULL, npairs, err);
}

static tsr_status_t cu_hj_probe_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_dkeys_t *keys, size_t *npairs,
                                    tsr_error_t *err)
{
    return cu_hj_probe_any(hj, q, NULL, keys, npairs, err);
}

/* ---- pairs ------------------------------------------------------------------------ */

static tsr_status_t cu_hj_pairs(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, uint32_t *probe_rows,
                                uint32_t *build_rows, tsr_error_t *err)
{
    cu_hj_t *h = hj->impl;
    size_t total = hj->npairs, window = total < h->window ? total : h->window;
    tsr_status_t rc = tsr_dev_cuda_use(hj->dev, err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = tsr_dev_cuda_ensure(q, &h->out_probe, window * 4, err)) != TSR_OK ||
        (rc = tsr_dev_cuda_ensure(q, &h->out_build, window * 4, err)) != TSR_OK)
        return rc;
    tsr_cuda_join_view_t v;
    memset(&v, 0, sizeof(v));
    v.pstart = tsr_dev_cuda_ptr(h->pstart);
    v.offsets = tsr_dev_cuda_ptr(h->offsets);
    v.rows = tsr_dev_cuda_ptr(h->rows);
    v.out_probe = tsr_dev_cuda_ptr(h->out_probe);
    v.out_build = tsr_dev_cuda_ptr(h->out_build);
    v.nprobe = (uint32_t)hj->nprobe;
    v.wcap = window;
    for (size_t win = 0; win < total && rc == TSR_OK; win += window) {
        size_t m = total - win < window ? total - win : window;
        v.win = win;
        /* in-order stream: the next window's kernel runs after these copies */
        if ((rc = cu_hj_launch(hj, q, &v, TSR_CUDA_JOIN_WRITE, hj->nprobe, err)) == TSR_OK &&
            (rc = tsr_dev_cuda_download(hj->dev, tsr_dev_cuda_stream(q), probe_rows + win,
                                        v.out_probe, m * 4, "cudaMemcpyAsync(probe rows)",
                                        err)) == TSR_OK)
            rc = tsr_dev_cuda_download(hj->dev, tsr_dev_cuda_stream(q), build_rows + win,
                                       v.out_build, m * 4, "cudaMemcpyAsync(build rows)", err);
    }
    if (rc != TSR_OK) {
        tsr_dev_cuda_drain(q);
        return rc;
    }
    return tsr_dev_queue_finish(q, err);
}

const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_cuda_ops = {
    .create = cu_hj_create,
    .destroy = cu_hj_destroy,
    .build = cu_hj_build,
    .probe = cu_hj_probe,
    .pairs = cu_hj_pairs,
    .build_dev = cu_hj_build_dev,
    .probe_dev = cu_hj_probe_dev,
};

#else
typedef int tsr_dev_hashjoin_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
