/*
 * filter_cuda.c - host side of the CUDA filter: streams the columns a
 * predicate program reads to the device in launches of at most `cap` rows
 * and turns each launch into its part of the selection vector. Kernels:
 * kernels/cuda/filter.cuh (one thread per row, warp ballots, a scan of the
 * per-tile counts); program format and semantics: filter.h.
 *
 * Per launch:
 *
 *   [copy stream]  upload the used columns and validity into buffer set
 *                  l & 1, after the kernel that last read that set
 *   [queue]        wait for the upload; count -> masks, per-tile counts;
 *                  scan(counts); read the total (blocking: where the
 *                  launch's rows go in the caller's array); scatter; copy
 *                  the launch's selected rows into the caller's array
 *
 * The upload of launch l+1 is queued before launch l's kernels, so it runs
 * while they do (two buffer sets, two streams, events for the order), each
 * column through the device's pinned staging buffers (cuda_stage.c). When
 * run returns both streams are idle: nothing reads the caller's columns or
 * writes its array any more. run_dev (columns already in device memory)
 * reads them in place and scatters into the caller's device buffer.
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/filter.h"

#define CU_FI_LAUNCH ((size_t)1 << 22) /* rows per launch */
#define CU_FI_BLOCK 256u               /* filter.cu's launch bounds */

_Static_assert(TSR_DEV_FILTER_MAX_INSTRS <= TSR_CUDA_FILTER_MAX_CODE,
               "the kernel view holds every instruction");

typedef struct cu_fi_in {
    tsr_dev_buf_t *cols;  /* uint64[nused * cap] */
    tsr_dev_buf_t *valid; /* uint64[nused * cap / 64] */
} cu_fi_in_t;

typedef struct cu_fi {
    unsigned block;
    size_t tile;              /* rows per tile: block * TSR_CUDA_FILTER_ITERS */
    size_t cap;               /* rows per launch, a multiple of tile (and of 64) */
    size_t built;             /* rows the buffers hold (0: none yet) */
    tsr_dev_cuda_pipe_t pipe; /* uploads into in[] */
    cu_fi_in_t in[2];
    tsr_dev_buf_t *masks;  /* uint32[cap / 32] */
    tsr_dev_buf_t *counts; /* uint64[tiles + 1] */
    tsr_dev_buf_t *sel;    /* uint32[cap] */
    tsr_dev_cuda_scan_buf_t scan;
    tsr_cuda_filter_view_t tmpl; /* the program */
} cu_fi_t;

static void cu_fi_free_bufs(cu_fi_t *h)
{
    for (int b = 0; b < 2; b++) {
        tsr_dev_buf_free(h->in[b].cols);
        tsr_dev_buf_free(h->in[b].valid);
        h->in[b].cols = h->in[b].valid = NULL;
    }
    tsr_dev_buf_free(h->masks);
    tsr_dev_buf_free(h->counts);
    tsr_dev_buf_free(h->sel);
    h->masks = h->counts = h->sel = NULL;
    h->built = 0;
}

static void cu_fi_free(cu_fi_t *h)
{
    tsr_dev_cuda_pipe_free(&h->pipe);
    cu_fi_free_bufs(h);
    tsr_dev_cuda_scan_free(&h->scan);
}

static tsr_status_t cu_fi_create(tsr_dev_filter_t *f, tsr_error_t *err)
{
    tsr_dev_t *dev = f->dev;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = tsr_dev_cuda_kernels_ok(dev, err);
    if (rc != TSR_OK)
        return rc;
    cu_fi_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    h->block = tsr_dev_cuda_block(dev, CU_FI_BLOCK);
    h->tile = (size_t)h->block * TSR_CUDA_FILTER_ITERS;
    size_t launch = f->spec.launch_rows ? f->spec.launch_rows : CU_FI_LAUNCH;
    h->cap = (launch + h->tile - 1) / h->tile * h->tile;
    tsr_cuda_filter_view_t *t = &h->tmpl;
    t->ncode = (uint32_t)f->ncode;
    for (size_t pc = 0; pc < f->ncode; pc++) {
        t->code[2 * pc] = f->code[pc].op;
        t->code[2 * pc + 1] = f->code[pc].k;
    }
    t->tile = (uint32_t)h->tile;
    if ((rc = tsr_dev_cuda_pipe_init(dev, &h->pipe, err)) != TSR_OK) {
        cu_fi_free(h);
        tsr_mem_free(dev->mem, h);
        return rc;
    }
    f->impl = h;
    return TSR_OK;
}

static void cu_fi_destroy(tsr_dev_filter_t *f)
{
    cu_fi_t *h = f->impl;
    if (!h)
        return;
    if (cudaSetDevice(tsr_dev_cuda(f->dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    cu_fi_free(h);
    tsr_mem_free(f->dev->mem, h);
}

/* Buffers for launches of cap rows (a multiple of the tile). */
static tsr_status_t cu_fi_bufs(tsr_dev_filter_t *f, tsr_dev_queue_t *q, size_t cap,
                               tsr_error_t *err)
{
    cu_fi_t *h = f->impl;
    if (h->built >= cap)
        return TSR_OK;
    tsr_status_t rc;
    if (h->built && (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    cu_fi_free_bufs(h);
    tsr_dev_t *dev = f->dev;
    size_t tiles = cap / h->tile, nu = f->nused ? f->nused : 1;
    for (int b = 0; b < 2; b++)
        if ((rc = tsr_dev_buf_alloc(dev, nu * cap * 8, &h->in[b].cols, err)) != TSR_OK ||
            (rc = tsr_dev_buf_alloc(dev, nu * cap / 8, &h->in[b].valid, err)) != TSR_OK)
            goto err_free;
    if ((rc = tsr_dev_buf_alloc(dev, cap / 8, &h->masks, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (tiles + 1) * 8, &h->counts, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->sel, err)) != TSR_OK)
        goto err_free;
    h->built = cap;
    return TSR_OK;

err_free:
    cu_fi_free_bufs(h);
    return rc;
}

/* Queues the upload of rows [base, base + m) into set b on the copy stream,
 * after the kernel that last read it. */
static tsr_status_t cu_fi_upload(tsr_dev_filter_t *f, const tsr_dev_filter_cols_t *cols, int b,
                                 size_t base, size_t m, tsr_error_t *err)
{
    cu_fi_t *h = f->impl;
    size_t cap = h->built, words = (m + 63) / 64;
    cudaStream_t copy = h->pipe.copy;
    tsr_status_t rc = tsr_dev_cuda_pipe_upload_begin(f->dev, &h->pipe, b, err);
    if (rc != TSR_OK)
        return rc;
    const char *what = "cudaMemcpyAsync(filter column)";
    for (size_t u = 0; u < f->nused && rc == TSR_OK; u++) { /* through pinned staging */
        size_t c = f->used[u];
        rc = tsr_dev_cuda_upload(f->dev, copy, (uint64_t *)tsr_dev_cuda_ptr(h->in[b].cols) + u * cap,
                                 (const uint64_t *)cols->values[c] + base, m * 8, what, err);
        if (rc == TSR_OK && cols->valid[c])
            rc = tsr_dev_cuda_upload(f->dev, copy,
                                     (uint64_t *)tsr_dev_cuda_ptr(h->in[b].valid) + u * (cap / 64),
                                     cols->valid[c] + base / 64, words * 8, what, err);
    }
    if (rc != TSR_OK)
        return rc;
    return tsr_dev_cuda_pipe_upload_end(f->dev, &h->pipe, b, err);
}

/* Where a launch reads its rows and writes its selection. */
typedef struct cu_fi_io {
    const uint64_t *cols;  /* used column u at cols + u * cap */
    const uint64_t *valid; /* its validity at valid + u * cap / 64 */
    uint32_t vmask;        /* bit u: used column u has validity */
    int pipe_set;          /* the pipe's buffer set holding the rows, or -1 */
    uint32_t *host_sel;    /* the selection goes to host memory here ... */
    uint32_t *dev_sel;     /* ... or to device memory here (both at [*out]) */
} cu_fi_io_t;

/* Filters rows [base, base + m) into the selection at [*out ..]. */
static tsr_status_t cu_fi_launch(tsr_dev_filter_t *f, tsr_dev_queue_t *q, const cu_fi_io_t *io,
                                 size_t base, size_t m, size_t *out, tsr_error_t *err)
{
    cu_fi_t *h = f->impl;
    tsr_dev_t *dev = f->dev;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    tsr_cuda_filter_view_t v = h->tmpl;
    v.cols = io->cols;
    v.valid = io->valid;
    v.vmask = io->vmask;
    v.masks = tsr_dev_cuda_ptr(h->masks);
    v.counts = tsr_dev_cuda_ptr(h->counts);
    v.sel = io->dev_sel ? io->dev_sel + *out : tsr_dev_cuda_ptr(h->sel);
    v.n = (uint32_t)m;
    v.cap = (uint32_t)h->built;
    v.row_base = (uint32_t)base;
    v.ntiles = (uint32_t)((m + h->tile - 1) / h->tile);
    unsigned grid = tsr_dev_cuda_grid(dev, v.ntiles, 1, h->block);
    tsr_status_t rc = TSR_OK;
    if (io->pipe_set >= 0 && (rc = tsr_dev_cuda_pipe_use(q, &h->pipe, io->pipe_set, err)) != TSR_OK)
        return rc;
    cudaError_t e = tsr_cuda_filter_count(&v, grid, h->block, s);
    if (e != cudaSuccess)
        return tsr_dev_cuda_fail(err, dev, e, "filter count kernel launch");
    if (io->pipe_set >= 0 &&
        (rc = tsr_dev_cuda_pipe_release(q, &h->pipe, io->pipe_set, err)) != TSR_OK)
        return rc;
    uint64_t total = 0;
    if ((rc = tsr_dev_cuda_scan(q, &h->scan, v.counts, v.ntiles, v.counts + v.ntiles, err)) !=
            TSR_OK ||
        (rc = tsr_dev_read(q, h->counts, (size_t)v.ntiles * 8, &total, 8, true, NULL, err)) !=
            TSR_OK)
        return rc;
    if (total > m)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "CUDA filter on %s selected %llu of %zu rows",
                             dev->info.name, (unsigned long long)total, m);
    if (total == 0)
        return TSR_OK;
    if ((e = tsr_cuda_filter_scatter(&v, grid, h->block, s)) != cudaSuccess)
        return tsr_dev_cuda_fail(err, dev, e, "filter scatter kernel launch");
    if (io->host_sel && (rc = tsr_dev_cuda_download(dev, s, io->host_sel + *out, v.sel, total * 4,
                                                    "cudaMemcpyAsync(selection)", err)) != TSR_OK)
        return rc;
    *out += total;
    return TSR_OK;
}

static tsr_status_t cu_fi_run(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                              const tsr_dev_filter_cols_t *cols, uint32_t *sel, size_t *nsel,
                              tsr_error_t *err)
{
    cu_fi_t *h = f->impl;
    size_t n = cols->n;
    size_t want = n < h->cap ? (n + h->tile - 1) / h->tile * h->tile : h->cap;
    tsr_status_t rc = tsr_dev_cuda_use(f->dev, err);
    if (rc == TSR_OK)
        rc = cu_fi_bufs(f, q, want, err);
    if (rc != TSR_OK)
        return rc;
    size_t cap = h->built, nl = (n + cap - 1) / cap, out = 0;
    rc = cu_fi_upload(f, cols, 0, 0, n < cap ? n : cap, err);
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t base = l * cap, m = n - base < cap ? n - base : cap;
        if (l + 1 < nl) {
            size_t nb = base + cap;
            rc = cu_fi_upload(f, cols, (int)((l + 1) & 1), nb, n - nb < cap ? n - nb : cap, err);
        }
        if (rc == TSR_OK) {
            int b = (int)(l & 1);
            cu_fi_io_t io = {.cols = tsr_dev_cuda_ptr(h->in[b].cols),
                             .valid = tsr_dev_cuda_ptr(h->in[b].valid),
                             .pipe_set = b,
                             .host_sel = sel};
            for (size_t u = 0; u < f->nused; u++)
                if (cols->valid[f->used[u]])
                    io.vmask |= 1u << u;
            rc = cu_fi_launch(f, q, &io, base, m, &out, err);
        }
    }
    if (rc != TSR_OK) { /* nothing may touch the caller's memory after return */
        tsr_dev_cuda_pipe_drain(&h->pipe, q);
        return rc;
    }
    if ((rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    *nsel = out;
    return TSR_OK;
}

/* Device-resident columns (filter.h run_dev): a program reading one column
 * (the common case) reads it in place; with more, each launch's slices are
 * copied device-to-device into input set 0 (the kernels take the used
 * columns at a fixed stride), on the queue itself. The selection is
 * scattered straight into the caller's device buffer. */
static tsr_status_t cu_fi_run_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                  const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel,
                                  size_t *nsel, tsr_error_t *err)
{
    cu_fi_t *h = f->impl;
    tsr_dev_t *dev = f->dev;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    size_t n = cols->n;
    size_t want = n < h->cap ? (n + h->tile - 1) / h->tile * h->tile : h->cap;
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc == TSR_OK)
        rc = cu_fi_bufs(f, q, want, err);
    if (rc != TSR_OK)
        return rc;
    size_t cap = h->built, out = 0;
    bool in_place = f->nused == 1;
    for (size_t base = 0; base < n && rc == TSR_OK; base += cap) {
        size_t m = n - base < cap ? n - base : cap, words = (m + 63) / 64;
        cu_fi_io_t io = {.pipe_set = -1, .dev_sel = tsr_dev_cuda_ptr(sel)};
        if (in_place) {
            size_t c = f->used[0];
            io.cols = (const uint64_t *)tsr_dev_cuda_ptr(cols->values[c]) + base;
            io.valid = cols->valid[c]
                           ? (const uint64_t *)tsr_dev_cuda_ptr(cols->valid[c]) + base / 64
                           : tsr_dev_cuda_ptr(h->in[0].valid);
            io.vmask = cols->valid[c] ? 1u : 0u;
        } else {
            uint64_t *dc = tsr_dev_cuda_ptr(h->in[0].cols), *dv = tsr_dev_cuda_ptr(h->in[0].valid);
            io.cols = dc;
            io.valid = dv;
            for (size_t u = 0; u < f->nused && rc == TSR_OK; u++) {
                size_t c = f->used[u];
                rc = tsr_dev_cuda_memcpy(q, dc + u * cap,
                                         (const uint64_t *)tsr_dev_cuda_ptr(cols->values[c]) + base,
                                         m * 8, cudaMemcpyDeviceToDevice,
                                         "cudaMemcpyAsync(filter column)", err);
                if (rc == TSR_OK && cols->valid[c]) {
                    io.vmask |= 1u << u;
                    rc = tsr_dev_cuda_memcpy(
                        q, dv + u * (cap / 64),
                        (const uint64_t *)tsr_dev_cuda_ptr(cols->valid[c]) + base / 64, words * 8,
                        cudaMemcpyDeviceToDevice, "cudaMemcpyAsync(filter validity)", err);
                }
            }
        }
        if (rc == TSR_OK)
            rc = cu_fi_launch(f, q, &io, base, m, &out, err);
    }
    if (rc != TSR_OK) {
        tsr_dev_cuda_drain(q);
        return rc;
    }
    cudaError_t e = cudaStreamSynchronize(s); /* the selection is complete on return */
    if (e != cudaSuccess)
        return tsr_dev_cuda_fail(err, dev, e, "cudaStreamSynchronize(filter)");
    *nsel = out;
    return TSR_OK;
}

const tsr_dev_filter_ops_t tsr_dev_filter_cuda_ops = {
    .create = cu_fi_create,
    .destroy = cu_fi_destroy,
    .run = cu_fi_run,
    .run_dev = cu_fi_run_dev,
};

#else
typedef int tsr_dev_filter_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
