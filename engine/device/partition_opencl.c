/*
 * partition_opencl.c - host side of OpenCL hash partitioning
 * (kernels/opencl/partition.cl): uploads key columns in launches of at most
 * `launch` rows and runs histogram, scan, starts and scatter over each.
 *
 * One launch (the common case: batches up to 2^24 rows) writes the caller's
 * outputs directly: offsets from the starts, rows and keys read back whole.
 *
 * Several launches need every launch's partition sizes before any row can be
 * placed, so they take two passes:
 *   1. per launch: upload, histogram, scan, starts -> its partition sizes
 *      (host); from them each partition's place in the output, and where
 *      each launch's part of it begins
 *   2. per launch: upload again, histogram, scan, scatter; read the launch's
 *      grouped rows into host staging and copy each partition's segment to
 *      its place (launches in order keep partitions stable overall)
 *
 * Run length: a work-item walks `per` >= max(256, 4P) consecutive rows, so
 * the count matrix has about m/4 entries at most (its scan stays cheaper
 * than the data) and small P still gives many runs to spread over a GPU. A
 * CPU device (PoCL) runs a few threads, not thousands: there runs are made
 * longer, at most CL_PA_CPU_RUNS per compute unit, which keeps the matrix
 * (and its scan) tiny and each thread streaming through its rows.
 * Local-memory counters are used while P * work-group size * 4 bytes fits in
 * half the device's local memory (at most CL_PA_LOCAL_BUDGET).
 */
#include <string.h>

#include "device/opencl_launch.h"
#include "device/partition.h"

#define CL_PA_LAUNCH ((size_t)1 << 24) /* rows per launch */
#define CL_PA_MIN_PER 256u
#define CL_PA_CPU_RUNS 64u /* runs per compute unit on CPU devices */
#define CL_PA_WG ((size_t)64)
#define CL_PA_LOCAL_BUDGET ((uint64_t)128 << 10)

typedef struct cl_pa {
    cl_kernel k_hist, k_starts, k_scatter;
    size_t wg_hist, wg_starts, wg_scatter;
    tsr_cl_scan_t scan;
    size_t launch;           /* rows per launch (a multiple of 64) */
    size_t per;              /* rows per run, at least (cl_pa_per) */
    size_t max_runs;         /* CPU devices: runs per launch at most; 0: no limit */
    bool use_local;          /* counters in local memory */
    size_t cap;              /* rows the buffers hold (0: none yet) */
    tsr_dev_buf_t *keys;     /* ulong[nkeys * cap] */
    tsr_dev_buf_t *kvalid;   /* ulong[nkeys * cap / 64] */
    tsr_dev_buf_t *hist;     /* ulong[P * runs + 1] */
    tsr_dev_buf_t *starts;   /* ulong[P + 1] */
    tsr_dev_buf_t *out_rows; /* uint[cap] */
    tsr_dev_buf_t *out_keys; /* ulong[nkeys * cap] */
} cl_pa_t;

static void cl_pa_free_bufs(cl_pa_t *h)
{
    tsr_dev_buf_free(h->keys);
    tsr_dev_buf_free(h->kvalid);
    tsr_dev_buf_free(h->hist);
    tsr_dev_buf_free(h->starts);
    tsr_dev_buf_free(h->out_rows);
    tsr_dev_buf_free(h->out_keys);
    h->keys = h->kvalid = h->hist = h->starts = h->out_rows = h->out_keys = NULL;
    h->cap = 0;
}

static void cl_pa_free(cl_pa_t *h)
{
    cl_pa_free_bufs(h);
    tsr_dev_cl_kernel_release(h->k_hist);
    tsr_dev_cl_kernel_release(h->k_starts);
    tsr_dev_cl_kernel_release(h->k_scatter);
    tsr_dev_cl_scan_free(&h->scan);
}

static tsr_status_t cl_pa_create(tsr_dev_partition_t *p, tsr_error_t *err)
{
    tsr_dev_t *dev = p->dev;
    cl_pa_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_status_t rc;
    if ((rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_PARTITION, "tsr_part_hist", &h->k_hist,
                                       &h->wg_hist, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_PARTITION, "tsr_part_starts", &h->k_starts,
                                       &h->wg_starts, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_PARTITION, "tsr_part_scatter",
                                       &h->k_scatter, &h->wg_scatter, err)) != TSR_OK ||
        (rc = tsr_dev_cl_scan_init(dev, &h->scan, err)) != TSR_OK) {
        cl_pa_free(h);
        tsr_mem_free(dev->mem, h);
        return rc;
    }
    /* hist and scatter share the local layout: one work-group size for both */
    size_t wg = h->wg_hist < h->wg_scatter ? h->wg_hist : h->wg_scatter;
    h->wg_hist = h->wg_scatter = wg < CL_PA_WG ? wg : CL_PA_WG;
    size_t np = p->spec.nparts;
    h->per = 4 * np > CL_PA_MIN_PER ? 4 * np : CL_PA_MIN_PER;
    if (!dev->info.is_gpu)
        h->max_runs = (size_t)(dev->info.compute_units ? dev->info.compute_units : 1) *
                      CL_PA_CPU_RUNS;
    uint64_t local = tsr_dev_cl(dev)->local_mem / 2;
    local = local < CL_PA_LOCAL_BUDGET ? local : CL_PA_LOCAL_BUDGET;
    h->use_local = (uint64_t)np * h->wg_hist * 4 <= local;
    size_t launch = p->spec.launch_rows ? p->spec.launch_rows : CL_PA_LAUNCH;
    h->launch = (launch + 63) / 64 * 64;
    p->impl = h;
    return TSR_OK;
}

static void cl_pa_destroy(tsr_dev_partition_t *p)
{
    cl_pa_t *h = p->impl;
    if (!h)
        return;
    clFinish(tsr_dev_cl_queue(p->dev->queue));
    cl_pa_free(h);
    tsr_mem_free(p->dev->mem, h);
}

/* Rows per run in a launch of m rows. */
static size_t cl_pa_per(const cl_pa_t *h, size_t m)
{
    size_t per = h->per;
    if (h->max_runs && (m + h->max_runs - 1) / h->max_runs > per)
        per = (m + h->max_runs - 1) / h->max_runs;
    return per;
}

static size_t cl_pa_runs(const cl_pa_t *h, size_t m)
{
    size_t per = cl_pa_per(h, m);
    return (m + per - 1) / per;
}

/* Runs of any launch of at most cap rows (sizes the count matrix). */
static size_t cl_pa_max_runs(const cl_pa_t *h, size_t cap)
{
    size_t runs = (cap + h->per - 1) / h->per;
    return h->max_runs && h->max_runs < runs ? h->max_runs : runs;
}

/* Buffers for launches of cap rows (a multiple of 64). */
static tsr_status_t cl_pa_bufs(tsr_dev_partition_t *p, tsr_dev_queue_t *q, size_t cap,
                               tsr_error_t *err)
{
    cl_pa_t *h = p->impl;
    if (h->cap >= cap)
        return TSR_OK;
    tsr_status_t rc;
    if (h->cap && (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    cl_pa_free_bufs(h);
    tsr_dev_t *dev = p->dev;
    size_t nk = p->spec.nkeys, np = p->spec.nparts;
    if ((rc = tsr_dev_buf_alloc(dev, nk * cap * 8, &h->keys, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, nk * cap / 8, &h->kvalid, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (np * cl_pa_max_runs(h, cap) + 1) * 8, &h->hist, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (np + 1) * 8, &h->starts, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->out_rows, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, nk * cap * 8, &h->out_keys, err)) != TSR_OK) {
        cl_pa_free_bufs(h);
        return rc;
    }
    h->cap = cap;
    return TSR_OK;
}

/* Uploads rows [base, base + m) and queues histogram and scan; with starts
 * non-NULL also the starts kernel and a blocking read of them. */
static tsr_status_t cl_pa_count(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                const tsr_dev_partition_in_t *in, size_t base, size_t m,
                                uint64_t *starts, cl_uint *kvmask, tsr_error_t *err)
{
    cl_pa_t *h = p->impl;
    size_t cap = h->cap, nk = p->spec.nkeys, np = p->spec.nparts, runs = cl_pa_runs(h, m);
    tsr_status_t rc = TSR_OK;
    *kvmask = 0;
    for (size_t k = 0; k < nk && rc == TSR_OK; k++) {
        rc = tsr_dev_write(q, h->keys, k * cap * 8, in->keys[k] + base, m * 8, false, NULL, err);
        if (rc == TSR_OK && in->key_valid[k] && !p->spec.hashed) {
            rc = tsr_dev_write(q, h->kvalid, k * cap / 8, in->key_valid[k] + base / 64,
                               (m + 63) / 64 * 8, false, NULL, err);
            *kvmask |= 1u << k;
        }
    }
    if (rc != TSR_OK)
        return rc;
    cl_mem keys = tsr_dev_cl_mem(h->keys), kvalid = tsr_dev_cl_mem(h->kvalid),
           hist = tsr_dev_cl_mem(h->hist), st = tsr_dev_cl_mem(h->starts);
    cl_uint unk = (cl_uint)nk, hashed = p->spec.hashed, ucap = (cl_uint)cap, um = (cl_uint)m,
            unp = (cl_uint)np, T = (cl_uint)runs, use_local = h->use_local,
            per = (cl_uint)cl_pa_per(h, m);
    const tsr_cl_arg_t hargs[] = {
        TSR_CL_ARG(keys),      TSR_CL_ARG(kvalid),
        TSR_CL_ARG(*kvmask),   TSR_CL_ARG(unk),
        TSR_CL_ARG(hashed),    TSR_CL_ARG(ucap),
        TSR_CL_ARG(um),        TSR_CL_ARG(per),
        TSR_CL_ARG(unp),       TSR_CL_ARG(T),
        TSR_CL_ARG(hist),      TSR_CL_LOCAL(use_local ? np * h->wg_hist * 4 : 0),
        TSR_CL_ARG(use_local),
    };
    const tsr_cl_arg_t sargs[] = {TSR_CL_ARG(hist), TSR_CL_ARG(T), TSR_CL_ARG(unp), TSR_CL_ARG(st)};
    if ((rc = tsr_dev_cl_run(q, h->k_hist, h->wg_hist, runs, hargs, TSR_CL_NARGS(hargs), err)) !=
            TSR_OK ||
        (rc = tsr_dev_cl_scan(&h->scan, q, h->hist, np * runs, err)) != TSR_OK)
        return rc;
    if (!starts)
        return TSR_OK;
    if ((rc = tsr_dev_cl_run(q, h->k_starts, h->wg_starts, np + 1, sargs, TSR_CL_NARGS(sargs),
                             err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->starts, 0, starts, (np + 1) * 8, true, NULL, err)) != TSR_OK)
        return rc;
    if (starts[np] != m)
        return tsr_error_set(err, TSR_ERR_INTERNAL,
                             "OpenCL partitioning on %s counted %llu of %zu rows",
                             p->dev->info.name, (unsigned long long)starts[np], m);
    return TSR_OK;
}

/* Queues the scatter of the launch counted last and reads its grouped rows
 * and wanted keys into rows / keys[k] (host arrays of m entries). */
static tsr_status_t cl_pa_scatter(tsr_dev_partition_t *p, tsr_dev_queue_t *q, size_t base, size_t m,
                                  cl_uint kvmask, uint32_t *rows, uint64_t *const *keys,
                                  tsr_error_t *err)
{
    cl_pa_t *h = p->impl;
    size_t cap = h->cap, nk = p->spec.nkeys, np = p->spec.nparts, runs = cl_pa_runs(h, m);
    cl_uint want = 0;
    for (size_t k = 0; k < nk; k++)
        if (keys[k])
            want |= 1u << k;
    cl_mem kb = tsr_dev_cl_mem(h->keys), kvalid = tsr_dev_cl_mem(h->kvalid),
           hist = tsr_dev_cl_mem(h->hist), orows = tsr_dev_cl_mem(h->out_rows),
           okeys = tsr_dev_cl_mem(h->out_keys);
    cl_uint unk = (cl_uint)nk, hashed = p->spec.hashed, ucap = (cl_uint)cap, um = (cl_uint)m,
            unp = (cl_uint)np, T = (cl_uint)runs, use_local = h->use_local,
            row_base = (cl_uint)base, per = (cl_uint)cl_pa_per(h, m);
    const tsr_cl_arg_t args[] = {
        TSR_CL_ARG(kb),        TSR_CL_ARG(kvalid),
        TSR_CL_ARG(kvmask),    TSR_CL_ARG(unk),
        TSR_CL_ARG(hashed),    TSR_CL_ARG(ucap),
        TSR_CL_ARG(um),        TSR_CL_ARG(per),
        TSR_CL_ARG(unp),       TSR_CL_ARG(T),
        TSR_CL_ARG(hist),      TSR_CL_ARG(orows),
        TSR_CL_ARG(okeys),     TSR_CL_ARG(want),
        TSR_CL_ARG(row_base),  TSR_CL_LOCAL(use_local ? np * h->wg_scatter * 4 : 0),
        TSR_CL_ARG(use_local),
    };
    tsr_status_t rc =
        tsr_dev_cl_run(q, h->k_scatter, h->wg_scatter, runs, args, TSR_CL_NARGS(args), err);
    if (rc == TSR_OK)
        rc = tsr_dev_read(q, h->out_rows, 0, rows, m * 4, false, NULL, err);
    for (size_t k = 0; k < nk && rc == TSR_OK; k++)
        if (keys[k])
            rc = tsr_dev_read(q, h->out_keys, k * cap * 8, keys[k], m * 8, false, NULL, err);
    return rc;
}

/* Two passes over several launches (see the top). */
static tsr_status_t cl_pa_multi(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                const tsr_dev_partition_in_t *in,
                                const tsr_dev_partition_out_t *out, tsr_error_t *err)
{
    cl_pa_t *h = p->impl;
    tsr_mem_t *mem = p->dev->mem;
    size_t n = in->n, cap = h->cap, np = p->spec.nparts, nk = p->spec.nkeys;
    size_t nl = (n + cap - 1) / cap, nkout = 0;
    for (size_t k = 0; k < nk; k++)
        nkout += out->keys[k] != NULL;
    uint64_t *sizes = tsr_mem_calloc(mem, nl * np, sizeof(uint64_t)); /* launch-major */
    uint64_t *starts = tsr_mem_calloc(mem, np + 1, sizeof(uint64_t));
    uint64_t *place = tsr_mem_calloc(mem, np, sizeof(uint64_t)); /* next output of each p */
    uint32_t *srows = tsr_mem_calloc(mem, cap, sizeof(uint32_t));
    uint64_t *skeys = tsr_mem_calloc(mem, nkout * cap + 1, sizeof(uint64_t));
    tsr_status_t rc = TSR_OK;
    if (!sizes || !starts || !place || !srows || !skeys) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory partitioning %zu rows", n);
        goto cleanup;
    }
    cl_uint kvmask;
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t base = l * cap, m = n - base < cap ? n - base : cap;
        rc = cl_pa_count(p, q, in, base, m, starts, &kvmask, err);
        for (size_t k = 0; k < np && rc == TSR_OK; k++)
            sizes[l * np + k] = starts[k + 1] - starts[k];
    }
    if (rc != TSR_OK)
        goto cleanup;
    uint64_t acc = 0;
    for (size_t k = 0; k < np; k++) {
        out->offsets[k] = place[k] = acc;
        for (size_t l = 0; l < nl; l++)
            acc += sizes[l * np + k];
    }
    out->offsets[np] = acc;
    uint64_t *kout[TSR_DEV_PARTITION_MAX_KEYS] = {NULL};
    for (size_t k = 0, j = 0; k < nk; k++)
        if (out->keys[k])
            kout[k] = skeys + (j++) * cap;
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t base = l * cap, m = n - base < cap ? n - base : cap;
        if ((rc = cl_pa_count(p, q, in, base, m, NULL, &kvmask, err)) != TSR_OK ||
            (rc = cl_pa_scatter(p, q, base, m, kvmask, srows, kout, err)) != TSR_OK ||
            (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
            break;
        uint64_t at = 0; /* the launch's partitions are consecutive in staging */
        for (size_t k = 0; k < np; k++) {
            uint64_t c = sizes[l * np + k];
            memcpy(out->rows + place[k], srows + at, c * 4);
            for (size_t kk = 0; kk < nk; kk++)
                if (kout[kk])
                    memcpy(out->keys[kk] + place[k], kout[kk] + at, c * 8);
            place[k] += c;
            at += c;
        }
    }

cleanup:
    if (rc != TSR_OK)
        clFinish(tsr_dev_cl_queue(q)); /* nothing may touch the caller's memory after return */
    tsr_mem_free(mem, sizes);
    tsr_mem_free(mem, starts);
    tsr_mem_free(mem, place);
    tsr_mem_free(mem, srows);
    tsr_mem_free(mem, skeys);
    return rc;
}

static tsr_status_t cl_pa_run(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                              const tsr_dev_partition_in_t *in, const tsr_dev_partition_out_t *out,
                              tsr_error_t *err)
{
    cl_pa_t *h = p->impl;
    size_t n = in->n;
    size_t want = n < h->launch ? (n + 63) / 64 * 64 : h->launch;
    tsr_status_t rc = cl_pa_bufs(p, q, want, err);
    if (rc != TSR_OK)
        return rc;
    if (n > h->cap)
        return cl_pa_multi(p, q, in, out, err);
    cl_uint kvmask;
    if ((rc = cl_pa_count(p, q, in, 0, n, out->offsets, &kvmask, err)) != TSR_OK ||
        (rc = cl_pa_scatter(p, q, 0, n, kvmask, out->rows, out->keys, err)) != TSR_OK) {
        clFinish(tsr_dev_cl_queue(q));
        return rc;
    }
    return tsr_dev_queue_finish(q, err);
}

const tsr_dev_partition_ops_t tsr_dev_partition_opencl_ops = {
    .create = cl_pa_create,
    .destroy = cl_pa_destroy,
    .run = cl_pa_run,
};
