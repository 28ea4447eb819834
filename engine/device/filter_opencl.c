/*
 * filter_opencl.c - host side of the OpenCL filter: uploads the columns a
 * predicate program reads in launches of at most `launch` rows and turns
 * each launch into its part of the selection vector (kernels/opencl/filter.cl):
 *
 *   upload the used columns and their validity (non-blocking writes)
 *   tsr_filter_count    -> masks, per-work-group counts
 *   scan(counts)        -> per-work-group output offsets, total
 *   read the total (blocking: where the next launch's rows go)
 *   tsr_filter_scatter  -> the launch's selected rows (absolute numbers)
 *   read them into the caller's array after the previous launches' rows
 *
 * The last command is a finish, so when run returns nothing queued reads the
 * caller's columns or writes its array. Buffers are sized for one launch at
 * the first run and kept.
 */
#include <string.h>

#include "device/filter.h"
#include "device/opencl_launch.h"

#define CL_FI_LAUNCH ((size_t)1 << 22) /* rows per launch */

typedef struct cl_fi {
    cl_kernel k_count, k_scatter;
    size_t wg; /* of both kernels */
    tsr_cl_scan_t scan;
    size_t launch;         /* rows per launch, a multiple of 64 * wg */
    tsr_dev_buf_t *code;   /* ulong2[ncode] */
    size_t cap;            /* rows the buffers below hold (0: none yet) */
    tsr_dev_buf_t *cols;   /* ulong[nused * cap] */
    tsr_dev_buf_t *valid;  /* ulong[nused * cap / 64] */
    tsr_dev_buf_t *masks;  /* ulong[cap / 64] */
    tsr_dev_buf_t *counts; /* ulong[groups + 1] */
    tsr_dev_buf_t *sel;    /* uint[cap] */
} cl_fi_t;

static void cl_fi_free_bufs(cl_fi_t *h)
{
    tsr_dev_buf_free(h->cols);
    tsr_dev_buf_free(h->valid);
    tsr_dev_buf_free(h->masks);
    tsr_dev_buf_free(h->counts);
    tsr_dev_buf_free(h->sel);
    h->cols = h->valid = h->masks = h->counts = h->sel = NULL;
    h->cap = 0;
}

static void cl_fi_free(cl_fi_t *h)
{
    cl_fi_free_bufs(h);
    tsr_dev_cl_kernel_release(h->k_count);
    tsr_dev_cl_kernel_release(h->k_scatter);
    tsr_dev_cl_scan_free(&h->scan);
    tsr_dev_buf_free(h->code);
}

static tsr_status_t cl_fi_create(tsr_dev_filter_t *f, tsr_error_t *err)
{
    tsr_dev_t *dev = f->dev;
    if (!tsr_dev_cl(dev)->fp64) {
        tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                      "OpenCL device %s lacks cl_khr_fp64, which the filter needs", dev->info.name);
        tsr_error_hint(err, "use another device (tessera devices lists them)");
        return TSR_ERR_UNSUPPORTED;
    }
    cl_fi_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t w1, w2;
    tsr_status_t rc;
    if ((rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_FILTER, "tsr_filter_count", &h->k_count,
                                       &w1, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_FILTER, "tsr_filter_scatter", &h->k_scatter,
                                       &w2, err)) != TSR_OK ||
        (rc = tsr_dev_cl_scan_init(dev, &h->scan, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, f->ncode * 16, &h->code, err)) != TSR_OK ||
        (rc = tsr_dev_write(dev->queue, h->code, 0, f->code, f->ncode * 16, true, NULL, err)) !=
            TSR_OK) {
        cl_fi_free(h);
        tsr_mem_free(dev->mem, h);
        return rc;
    }
    h->wg = w1 < w2 ? w1 : w2;
    size_t unit = 64 * h->wg, launch = f->spec.launch_rows ? f->spec.launch_rows : CL_FI_LAUNCH;
    h->launch = (launch + unit - 1) / unit * unit;
    f->impl = h;
    return TSR_OK;
}

static void cl_fi_destroy(tsr_dev_filter_t *f)
{
    cl_fi_t *h = f->impl;
    if (!h)
        return;
    clFinish(tsr_dev_cl_queue(f->dev->queue));
    cl_fi_free(h);
    tsr_mem_free(f->dev->mem, h);
}

/* Buffers for launches of cap rows (a multiple of 64 * wg). */
static tsr_status_t cl_fi_bufs(tsr_dev_filter_t *f, tsr_dev_queue_t *q, size_t cap,
                               tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    if (h->cap >= cap)
        return TSR_OK;
    tsr_status_t rc;
    if (h->cap && (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    cl_fi_free_bufs(h);
    tsr_dev_t *dev = f->dev;
    size_t groups = cap / (64 * h->wg);
    if ((rc = tsr_dev_buf_alloc(dev, f->nused * cap * 8, &h->cols, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, f->nused * cap / 8, &h->valid, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap / 8, &h->masks, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (groups + 1) * 8, &h->counts, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->sel, err)) != TSR_OK) {
        cl_fi_free_bufs(h);
        return rc;
    }
    h->cap = cap;
    return TSR_OK;
}

/* The launch buffers for a run over n rows: a whole launch, or n rounded up
 * to the kernels' unit (64 rows a work-item) when it is less. */
static tsr_status_t cl_fi_bufs_for(tsr_dev_filter_t *f, tsr_dev_queue_t *q, size_t n,
                                   tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t unit = 64 * h->wg;
    size_t want = n < h->launch ? (n + unit - 1) / unit * unit : h->launch;
    return cl_fi_bufs(f, q, want, err);
}

/* The end of a run whose launches left status rc: on failure waits for the
 * queue (nothing may touch the caller's memory, nor the selection, after
 * return); else finishes it - the selection is complete when we return (the
 * next operator may read it on another queue) - and stores the count. */
static tsr_status_t cl_fi_end(tsr_dev_queue_t *q, tsr_status_t rc, size_t out, size_t *nsel,
                              tsr_error_t *err)
{
    if (rc != TSR_OK) {
        clFinish(tsr_dev_cl_queue(q));
        return rc;
    }
    if ((rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    *nsel = out;
    return TSR_OK;
}

/* Runs the filter over the rows [base, base + m) already in the launch
 * buffers (vmask: the used columns that have a validity bitmap there): the
 * count kernel, the scan of the per-group counts and, when rows pass, the
 * scatter of their indexes into h->sel. *total_out: how many passed. The two
 * entry points differ only in how the columns come in and the selection
 * goes out. */
static tsr_status_t cl_fi_select(tsr_dev_filter_t *f, tsr_dev_queue_t *q, size_t base, size_t m,
                                 cl_uint vmask, size_t *total_out, tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t cap = h->cap, words = (m + 63) / 64, groups = (words + h->wg - 1) / h->wg;
    tsr_status_t rc;
    cl_mem cm = tsr_dev_cl_mem(h->cols), vm = tsr_dev_cl_mem(h->valid),
           code = tsr_dev_cl_mem(h->code), masks = tsr_dev_cl_mem(h->masks),
           counts = tsr_dev_cl_mem(h->counts), selb = tsr_dev_cl_mem(h->sel);
    cl_uint ncode = (cl_uint)f->ncode, un = (cl_uint)m, ucap = (cl_uint)cap,
            row_base = (cl_uint)base;
    const tsr_cl_arg_t count[] = {
        TSR_CL_ARG(cm),     TSR_CL_ARG(vm),          TSR_CL_ARG(vmask), TSR_CL_ARG(code),
        TSR_CL_ARG(ncode),  TSR_CL_ARG(un),          TSR_CL_ARG(ucap),  TSR_CL_ARG(masks),
        TSR_CL_ARG(counts), TSR_CL_LOCAL(h->wg * 8),
    };
    const tsr_cl_arg_t scatter[] = {
        TSR_CL_ARG(masks),    TSR_CL_ARG(un),   TSR_CL_ARG(counts),
        TSR_CL_ARG(row_base), TSR_CL_ARG(selb), TSR_CL_LOCAL(h->wg * 8),
    };
    cl_ulong total = 0;
    if ((rc = tsr_dev_cl_run(q, h->k_count, h->wg, words, count, TSR_CL_NARGS(count), err)) !=
            TSR_OK ||
        (rc = tsr_dev_cl_scan(&h->scan, q, h->counts, groups, err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->counts, groups * 8, &total, 8, true, NULL, err)) != TSR_OK)
        return rc;
    if (total > m)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "OpenCL filter on %s selected %llu of %zu rows",
                             f->dev->info.name, (unsigned long long)total, m);
    *total_out = (size_t)total;
    if (total == 0)
        return TSR_OK;
    return tsr_dev_cl_run(q, h->k_scatter, h->wg, words, scatter, TSR_CL_NARGS(scatter), err);
}

/* Filters rows [base, base + m) into sel[*out ..]. */
static tsr_status_t cl_fi_launch(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                 const tsr_dev_filter_cols_t *cols, size_t base, size_t m,
                                 uint32_t *sel, size_t *out, tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t cap = h->cap, words = (m + 63) / 64;
    cl_uint vmask = 0;
    tsr_status_t rc = TSR_OK;
    for (size_t u = 0; u < f->nused && rc == TSR_OK; u++) {
        size_t c = f->used[u];
        rc = tsr_dev_write(q, h->cols, u * cap * 8, (const uint64_t *)cols->values[c] + base, m * 8,
                           false, NULL, err);
        if (rc == TSR_OK && cols->valid[c]) {
            rc = tsr_dev_write(q, h->valid, u * cap / 8, cols->valid[c] + base / 64, words * 8,
                               false, NULL, err);
            vmask |= 1u << u;
        }
    }
    if (rc != TSR_OK)
        return rc;
    size_t total = 0;
    if ((rc = cl_fi_select(f, q, base, m, vmask, &total, err)) != TSR_OK || total == 0 ||
        (rc = tsr_dev_read(q, h->sel, 0, sel + *out, total * 4, false, NULL, err)) != TSR_OK)
        return rc;
    *out += total;
    return TSR_OK;
}

static tsr_status_t cl_fi_run(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                              const tsr_dev_filter_cols_t *cols, uint32_t *sel, size_t *nsel,
                              tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t n = cols->n;
    tsr_status_t rc = cl_fi_bufs_for(f, q, n, err);
    size_t out = 0;
    for (size_t base = 0; rc == TSR_OK && base < n; base += h->cap) {
        size_t m = n - base < h->cap ? n - base : h->cap;
        rc = cl_fi_launch(f, q, cols, base, m, sel, &out, err);
    }
    return cl_fi_end(q, rc, out, nsel, err);
}

/* ---- device-resident input ------------------------------------------------------------ */

/* Filters rows [base, base + m) of device-resident columns into the device
 * selection sel at entry *out. The columns are copied device-to-device into
 * the launch layout the kernels read (one buffer, a column every cap rows),
 * and the launch's selection device-to-device after the previous launches';
 * only the launch's total (8 bytes) is read back, to place the next one. */
static tsr_status_t cl_fi_launch_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                     const tsr_dev_filter_dcols_t *cols, size_t base, size_t m,
                                     tsr_dev_buf_t *sel, size_t *out, tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t cap = h->cap, words = (m + 63) / 64;
    cl_uint vmask = 0;
    tsr_status_t rc = TSR_OK;
    for (size_t u = 0; u < f->nused && rc == TSR_OK; u++) {
        size_t c = f->used[u];
        rc = tsr_dev_cl_copy(q, cols->values[c], base * 8, h->cols, u * cap * 8, m * 8, err);
        if (rc == TSR_OK && cols->valid[c]) {
            /* base is a multiple of cap, itself of 64: whole words */
            size_t have = (cols->valid[c]->size - base / 8) / 8;
            rc = tsr_dev_cl_copy(q, cols->valid[c], base / 8, h->valid, u * cap / 8,
                                 (words < have ? words : have) * 8, err);
            vmask |= 1u << u;
        }
    }
    if (rc != TSR_OK)
        return rc;
    size_t total = 0;
    if ((rc = cl_fi_select(f, q, base, m, vmask, &total, err)) != TSR_OK || total == 0 ||
        (rc = tsr_dev_cl_copy(q, h->sel, 0, sel, *out * 4, total * 4, err)) != TSR_OK)
        return rc;
    *out += total;
    return TSR_OK;
}

static tsr_status_t cl_fi_run_dev(tsr_dev_filter_t *f, tsr_dev_queue_t *q,
                                  const tsr_dev_filter_dcols_t *cols, tsr_dev_buf_t *sel,
                                  size_t *nsel, tsr_error_t *err)
{
    cl_fi_t *h = f->impl;
    size_t n = cols->n;
    tsr_status_t rc = cl_fi_bufs_for(f, q, n, err);
    size_t out = 0;
    for (size_t base = 0; rc == TSR_OK && base < n; base += h->cap) {
        size_t m = n - base < h->cap ? n - base : h->cap;
        rc = cl_fi_launch_dev(f, q, cols, base, m, sel, &out, err);
    }
    return cl_fi_end(q, rc, out, nsel, err);
}

const tsr_dev_filter_ops_t tsr_dev_filter_opencl_ops = {
    .create = cl_fi_create,
    .destroy = cl_fi_destroy,
    .run = cl_fi_run,
    .run_dev = cl_fi_run_dev,
};
