/*
 * hashjoin_opencl.c - host side of the OpenCL hash join: owns the table in
 * device memory, runs the build, streams probe rows through it in launches
 * and reads the pairs back in fixed-size windows.
 *
 * The kernels and the table are described in kernels/opencl/hashjoin.cl.
 *
 *   build   upload all build keys
 *           tsr_join_insert -> scan(cnt) = start -> tsr_join_scatter ->
 *           tsr_join_finish (the probe table); read the counters (blocking:
 *           the caller's keys are consumed), free the build-only buffers
 *   probe   per launch of at most `launch` rows: upload keys, tsr_join_probe
 *           into the probe-wide first-match and count arrays; then one scan
 *           over all counts = output offsets; read the total (blocking)
 *   pairs   per window of `window` pairs: tsr_join_write over all probe
 *           rows (each writes only its pairs inside the window), read the
 *           window into the caller's arrays
 *
 * Device memory: rows (4 bytes per build row) + the table (16 bytes per
 * slot, 2 slots per row at most; during the build also the keys and 12 bytes
 * per slot and per row of build-only arrays); per probe row 12 bytes of
 * state (first match and offset) for the probe's lifetime; a launch of keys
 * and a window of pairs. Buffers are kept and reused while big enough.
 *
 * Error paths finish the queue before returning, so nothing queued reads the
 * caller's memory afterwards.
 */
#include <string.h>

#include "device/hashjoin.h"
#include "device/opencl_launch.h"

#define CL_HJ_LAUNCH ((size_t)1 << 20) /* probe rows per launch */
#define CL_HJ_WINDOW ((size_t)1 << 22) /* pairs per window */

typedef struct cl_hj {
    cl_kernel k_insert, k_scatter, k_finish, k_probe, k_write;
    size_t wg_insert, wg_scatter, wg_finish, wg_probe, wg_write;
    tsr_cl_scan_t scan;
    size_t launch;           /* probe rows per launch (multiple of 64) */
    size_t window;           /* pairs per window */
    tsr_dev_buf_t *counters; /* uint[2]: distinct keys, failed rows */
    /* the table (after build) */
    tsr_dev_buf_t *table; /* ulong2[nslots]: (key, start | count << 32) */
    tsr_dev_buf_t *rows;  /* uint[nbuild] */
    /* the last probe */
    tsr_dev_buf_t *pstart;    /* uint[probe rows]: first match in rows */
    tsr_dev_buf_t *offsets;   /* ulong[probe rows + 1]: counts, then offsets */
    tsr_dev_buf_t *pkeys;     /* width * launch bytes */
    tsr_dev_buf_t *pvalid;    /* launch / 64 words */
    tsr_dev_buf_t *out_probe; /* uint[window] */
    tsr_dev_buf_t *out_build; /* uint[window] */
} cl_hj_t;

static void cl_hj_free(cl_hj_t *h)
{
    tsr_dev_cl_kernel_release(h->k_insert);
    tsr_dev_cl_kernel_release(h->k_scatter);
    tsr_dev_cl_kernel_release(h->k_finish);
    tsr_dev_cl_kernel_release(h->k_probe);
    tsr_dev_cl_kernel_release(h->k_write);
    tsr_dev_cl_scan_free(&h->scan);
    tsr_dev_buf_free(h->counters);
    tsr_dev_buf_free(h->table);
    tsr_dev_buf_free(h->rows);
    tsr_dev_buf_free(h->pstart);
    tsr_dev_buf_free(h->offsets);
    tsr_dev_buf_free(h->pkeys);
    tsr_dev_buf_free(h->pvalid);
    tsr_dev_buf_free(h->out_probe);
    tsr_dev_buf_free(h->out_build);
}

static tsr_status_t cl_hj_create(tsr_dev_hashjoin_t *hj, tsr_error_t *err)
{
    tsr_dev_t *dev = hj->dev;
    if (!tsr_dev_cl(dev)->int64_atomics) {
        tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                      "OpenCL device %s lacks 64-bit atomics (cl_khr_int64_*_atomics), which "
                      "the hash join needs",
                      dev->info.name);
        tsr_error_hint(err, "use another device (tessera devices lists them)");
        return TSR_ERR_UNSUPPORTED;
    }
    cl_hj_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t launch = hj->spec.launch_rows ? hj->spec.launch_rows : CL_HJ_LAUNCH;
    h->launch = (launch + 63) / 64 * 64;
    h->window = hj->spec.window_pairs ? hj->spec.window_pairs : CL_HJ_WINDOW;
    tsr_status_t rc;
    if ((rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_HASHJOIN, "tsr_join_insert", &h->k_insert,
                                       &h->wg_insert, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_HASHJOIN, "tsr_join_scatter", &h->k_scatter,
                                       &h->wg_scatter, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_HASHJOIN, "tsr_join_finish", &h->k_finish,
                                       &h->wg_finish, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_HASHJOIN, "tsr_join_probe", &h->k_probe,
                                       &h->wg_probe, err)) != TSR_OK ||
        (rc = tsr_dev_cl_kernel_create(dev, TSR_CL_PROG_HASHJOIN, "tsr_join_write", &h->k_write,
                                       &h->wg_write, err)) != TSR_OK ||
        (rc = tsr_dev_cl_scan_init(dev, &h->scan, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, 2 * sizeof(cl_uint), &h->counters, err)) != TSR_OK) {
        cl_hj_free(h);
        tsr_mem_free(dev->mem, h);
        return rc;
    }
    hj->impl = h;
    return TSR_OK;
}

static void cl_hj_destroy(tsr_dev_hashjoin_t *hj)
{
    cl_hj_t *h = hj->impl;
    if (!h)
        return;
    clFinish(tsr_dev_cl_queue(hj->dev->queue));
    cl_hj_free(h);
    tsr_mem_free(hj->dev->mem, h);
}

/* Writes size bytes of host memory to buf at offset, unless size is 0. */
static tsr_status_t cl_hj_write(tsr_dev_queue_t *q, tsr_dev_buf_t *buf, size_t offset,
                                const void *src, size_t size, tsr_error_t *err)
{
    return size ? tsr_dev_write(q, buf, offset, src, size, false, NULL, err) : TSR_OK;
}

/* ---- build ------------------------------------------------------------------------ */

/* The build over n keys in device buffers bkeys / bvalid (bvalid read only
 * when has_valid): everything of the build but getting the keys there. */
static tsr_status_t cl_hj_build_keys(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, size_t n,
                                     tsr_dev_buf_t *bkeys, tsr_dev_buf_t *bvalid, bool has_valid,
                                     tsr_error_t *err)
{
    cl_hj_t *h = hj->impl;
    tsr_dev_t *dev = hj->dev;
    size_t ns = hj->nslots, width = (size_t)hj->spec.key;
    /* build-only buffers */
    tsr_dev_buf_t *ref = NULL, *start = NULL, *row_slot = NULL, *cursor = NULL;
    static const cl_uint zeros[2] = {0, 0}; /* static: non-blocking writes read it later */
    const uint64_t zero = 0;
    tsr_status_t rc;
    if ((rc = tsr_dev_buf_alloc(dev, ns * 4, &ref, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (ns + 1) * 8, &start, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, n * 4, &row_slot, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ns * 8, &cursor, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ns * 16, &h->table, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, n * 4, &h->rows, err)) != TSR_OK)
        goto err_free;
    if ((rc = tsr_dev_fill(q, ref, 0, &zero, 4, ns * 4, NULL, err)) != TSR_OK ||
        (rc = tsr_dev_fill(q, start, 0, &zero, 8, ns * 8, NULL, err)) != TSR_OK ||
        (rc = tsr_dev_fill(q, cursor, 0, &zero, 8, ns * 8, NULL, err)) != TSR_OK ||
        (rc = tsr_dev_write(q, h->counters, 0, zeros, sizeof(zeros), false, NULL, err)) != TSR_OK)
        goto err_finish;

    cl_mem bk = tsr_dev_cl_mem(bkeys), bv = tsr_dev_cl_mem(bvalid), rf = tsr_dev_cl_mem(ref),
           st = tsr_dev_cl_mem(start), rows = tsr_dev_cl_mem(h->rows),
           rs = tsr_dev_cl_mem(row_slot), cur = tsr_dev_cl_mem(cursor),
           cnt = tsr_dev_cl_mem(h->counters), table = tsr_dev_cl_mem(h->table);
    cl_uint uvalid = has_valid, un = (cl_uint)n, w = (cl_uint)width;
    cl_ulong nslots = ns;
    const tsr_cl_arg_t insert[] = {
        TSR_CL_ARG(bk), TSR_CL_ARG(bv), TSR_CL_ARG(uvalid), TSR_CL_ARG(un),     TSR_CL_ARG(w),
        TSR_CL_ARG(rf), TSR_CL_ARG(st), TSR_CL_ARG(rs),     TSR_CL_ARG(nslots), TSR_CL_ARG(cnt),
    };
    const tsr_cl_arg_t scatter[] = {
        TSR_CL_ARG(rs), TSR_CL_ARG(un), TSR_CL_ARG(st), TSR_CL_ARG(cur), TSR_CL_ARG(rows),
    };
    const tsr_cl_arg_t finish[] = {
        TSR_CL_ARG(bk), TSR_CL_ARG(w),      TSR_CL_ARG(rf),
        TSR_CL_ARG(st), TSR_CL_ARG(nslots), TSR_CL_ARG(table),
    };
    cl_uint counts[2] = {0, 0};
    if ((rc = tsr_dev_cl_run(q, h->k_insert, h->wg_insert, n, insert, TSR_CL_NARGS(insert), err)) !=
            TSR_OK ||
        (rc = tsr_dev_cl_scan(&h->scan, q, start, ns, err)) != TSR_OK ||
        (rc = tsr_dev_cl_run(q, h->k_scatter, h->wg_scatter, n, scatter, TSR_CL_NARGS(scatter),
                             err)) != TSR_OK ||
        (rc = tsr_dev_cl_run(q, h->k_finish, h->wg_finish, ns, finish, TSR_CL_NARGS(finish),
                             err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->counters, 0, counts, sizeof(counts), true, NULL, err)) != TSR_OK)
        goto err_finish;
    if (counts[1] != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL,
                           "OpenCL join table of %s: %u rows found no slot in %zu slots",
                           dev->info.name, counts[1], ns);
        goto err_free;
    }
    hj->ndistinct = counts[0];
    goto free_temps;

err_finish:
    clFinish(tsr_dev_cl_queue(q));
err_free:
    tsr_dev_buf_free(h->table);
    tsr_dev_buf_free(h->rows);
    h->table = h->rows = NULL;
free_temps:
    tsr_dev_buf_free(ref);
    tsr_dev_buf_free(start);
    tsr_dev_buf_free(row_slot);
    tsr_dev_buf_free(cursor);
    return rc;
}

static tsr_status_t cl_hj_build(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                const tsr_dev_join_keys_t *keys, tsr_error_t *err)
{
    tsr_dev_t *dev = hj->dev;
    size_t n = keys->n, width = (size_t)hj->spec.key, words = (n + 63) / 64;
    tsr_dev_buf_t *bkeys = NULL, *bvalid = NULL;
    tsr_status_t rc;
    if ((rc = tsr_dev_buf_alloc(dev, n * width, &bkeys, err)) == TSR_OK &&
        (rc = tsr_dev_buf_alloc(dev, words * 8, &bvalid, err)) == TSR_OK &&
        (rc = cl_hj_write(q, bkeys, 0, keys->keys, n * width, err)) == TSR_OK &&
        (!keys->valid || (rc = cl_hj_write(q, bvalid, 0, keys->valid, words * 8, err)) == TSR_OK))
        rc = cl_hj_build_keys(hj, q, n, bkeys, bvalid, keys->valid != NULL, err);
    else
        clFinish(tsr_dev_cl_queue(q)); /* nothing may read the caller's keys afterwards */
    tsr_dev_buf_free(bkeys);
    tsr_dev_buf_free(bvalid);
    return rc;
}

/* Device-resident keys: the build reads them where they are (a buffer of
 * at least one byte stands in for absent validity: the kernel skips it). */
static tsr_status_t cl_hj_build_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_dkeys_t *keys, tsr_error_t *err)
{
    tsr_dev_buf_t *bkeys = keys->keys;
    tsr_dev_buf_t *dummy = NULL;
    tsr_status_t rc;
    if (keys->n == 0) { /* an empty table: the host path's allocations, no keys */
        tsr_dev_join_keys_t none = {.n = 0};
        return cl_hj_build(hj, q, &none, err);
    }
    if (!keys->valid && (rc = tsr_dev_buf_alloc(hj->dev, 8, &dummy, err)) != TSR_OK)
        return rc;
    rc = cl_hj_build_keys(hj, q, keys->n, bkeys, keys->valid ? keys->valid : dummy,
                          keys->valid != NULL, err);
    tsr_dev_buf_free(dummy);
    return rc;
}

/* ---- probe ------------------------------------------------------------------------ */

/* Replaces *buf by a buffer of size bytes unless it already holds that many. */
static tsr_status_t cl_hj_ensure(tsr_dev_t *dev, tsr_dev_buf_t **buf, size_t size, tsr_error_t *err)
{
    if (*buf && (*buf)->size >= size)
        return TSR_OK;
    tsr_dev_buf_t *nb = NULL;
    tsr_status_t rc = tsr_dev_buf_alloc(dev, size, &nb, err);
    if (rc != TSR_OK)
        return rc;
    tsr_dev_buf_free(*buf); /* OpenCL keeps it alive for commands still queued */
    *buf = nb;
    return TSR_OK;
}

/* The probe of host keys (keys) or device-resident ones (dkeys, keys NULL). */
static tsr_status_t cl_hj_probe_any(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys,
                                    const tsr_dev_join_dkeys_t *dkeys, size_t *npairs,
                                    tsr_error_t *err)
{
    cl_hj_t *h = hj->impl;
    tsr_dev_t *dev = hj->dev;
    size_t n = dkeys ? dkeys->n : keys->n, width = (size_t)hj->spec.key;
    bool any_valid = dkeys ? dkeys->valid != NULL : keys->valid != NULL;
    size_t launch = n < h->launch ? (n + 63) / 64 * 64 : h->launch;
    tsr_status_t rc;
    if ((rc = cl_hj_ensure(dev, &h->pstart, n * 4, err)) != TSR_OK ||
        (rc = cl_hj_ensure(dev, &h->offsets, (n + 1) * 8, err)) != TSR_OK ||
        (rc = cl_hj_ensure(dev, &h->pkeys, launch * width, err)) != TSR_OK ||
        (rc = cl_hj_ensure(dev, &h->pvalid, launch / 8, err)) != TSR_OK)
        return rc;
    cl_mem pk = tsr_dev_cl_mem(h->pkeys), pv = tsr_dev_cl_mem(h->pvalid),
           table = tsr_dev_cl_mem(h->table), ps = tsr_dev_cl_mem(h->pstart),
           cnt = tsr_dev_cl_mem(h->offsets);
    cl_uint has_valid = any_valid, w = (cl_uint)width;
    cl_ulong nslots = hj->nslots;
    for (size_t base = 0; base < n; base += launch) {
        size_t m = n - base < launch ? n - base : launch;
        cl_uint um = (cl_uint)m, ubase = (cl_uint)base;
        const tsr_cl_arg_t args[] = {
            TSR_CL_ARG(pk), TSR_CL_ARG(pv),    TSR_CL_ARG(has_valid), TSR_CL_ARG(um),
            TSR_CL_ARG(w),  TSR_CL_ARG(ubase), TSR_CL_ARG(table),     TSR_CL_ARG(nslots),
            TSR_CL_ARG(ps), TSR_CL_ARG(cnt),
        };
        if (dkeys) { /* device-resident: copied device-to-device */
            rc = tsr_dev_cl_copy(q, dkeys->keys, base * width, h->pkeys, 0, m * width, err);
            if (rc == TSR_OK && dkeys->valid)
                rc = tsr_dev_cl_copy(q, dkeys->valid, base / 8, h->pvalid, 0, (m + 63) / 64 * 8,
                                     err);
        } else {
            rc = cl_hj_write(q, h->pkeys, 0, (const char *)keys->keys + base * width, m * width,
                             err);
            if (rc == TSR_OK && keys->valid)
                rc = cl_hj_write(q, h->pvalid, 0, keys->valid + base / 64, (m + 63) / 64 * 8, err);
        }
        if (rc != TSR_OK || (rc = tsr_dev_cl_run(q, h->k_probe, h->wg_probe, m, args,
                                                 TSR_CL_NARGS(args), err)) != TSR_OK)
            goto err_finish;
    }
    cl_ulong total = 0;
    if ((rc = tsr_dev_cl_scan(&h->scan, q, h->offsets, n, err)) != TSR_OK ||
        (rc = tsr_dev_read(q, h->offsets, n * 8, &total, 8, true, NULL, err)) != TSR_OK)
        goto err_finish;
    *npairs = (size_t)total;
    return TSR_OK;

err_finish:
    clFinish(tsr_dev_cl_queue(q));
    return rc;
}

static tsr_status_t cl_hj_probe(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                const tsr_dev_join_keys_t *keys, size_t *npairs, tsr_error_t *err)
{
    return cl_hj_probe_any(hj, q, keys, NULL, npairs, err);
}

static tsr_status_t cl_hj_probe_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_dkeys_t *keys, size_t *npairs,
                                    tsr_error_t *err)
{
    return cl_hj_probe_any(hj, q, NULL, keys, npairs, err);
}

/* ---- pairs ------------------------------------------------------------------------ */

static tsr_status_t cl_hj_pairs(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, uint32_t *probe_rows,
                                uint32_t *build_rows, tsr_error_t *err)
{
    cl_hj_t *h = hj->impl;
    tsr_dev_t *dev = hj->dev;
    size_t total = hj->npairs, window = total < h->window ? total : h->window;
    tsr_status_t rc;
    if ((rc = cl_hj_ensure(dev, &h->out_probe, window * 4, err)) != TSR_OK ||
        (rc = cl_hj_ensure(dev, &h->out_build, window * 4, err)) != TSR_OK)
        return rc;
    cl_mem ps = tsr_dev_cl_mem(h->pstart), off = tsr_dev_cl_mem(h->offsets),
           rows = tsr_dev_cl_mem(h->rows), op = tsr_dev_cl_mem(h->out_probe),
           ob = tsr_dev_cl_mem(h->out_build);
    cl_uint un = (cl_uint)hj->nprobe;
    cl_ulong wcap = window;
    for (size_t win = 0; win < total; win += window) {
        size_t m = total - win < window ? total - win : window;
        cl_ulong uwin = win;
        const tsr_cl_arg_t args[] = {
            TSR_CL_ARG(ps),   TSR_CL_ARG(off),  TSR_CL_ARG(un), TSR_CL_ARG(rows),
            TSR_CL_ARG(uwin), TSR_CL_ARG(wcap), TSR_CL_ARG(op), TSR_CL_ARG(ob),
        };
        /* in-order queue: the next window's kernel runs after these reads */
        if ((rc = tsr_dev_cl_run(q, h->k_write, h->wg_write, hj->nprobe, args, TSR_CL_NARGS(args),
                                 err)) != TSR_OK ||
            (rc = tsr_dev_read(q, h->out_probe, 0, probe_rows + win, m * 4, false, NULL, err)) !=
                TSR_OK ||
            (rc = tsr_dev_read(q, h->out_build, 0, build_rows + win, m * 4, false, NULL, err)) !=
                TSR_OK)
            break;
    }
    if (rc != TSR_OK) {
        clFinish(tsr_dev_cl_queue(q));
        return rc;
    }
    return tsr_dev_queue_finish(q, err);
}

const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_opencl_ops = {
    .create = cl_hj_create,
    .destroy = cl_hj_destroy,
    .build = cl_hj_build,
    .probe = cl_hj_probe,
    .pairs = cl_hj_pairs,
    .build_dev = cl_hj_build_dev,
    .probe_dev = cl_hj_probe_dev,
};
