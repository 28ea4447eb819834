/*
 * hashagg_opencl.c - host side of OpenCL hash aggregation: owns the group
 * table in device memory, streams input rows through it in launches of at
 * most CL_HA_BATCH rows, grows the table, and reads the groups back.
 *
 * The kernels and the table format are described in kernels/opencl/hashagg.cl.
 * One launch of input rows (a "chunk") goes:
 *
 *   upload the chunk's key/value columns and bitmaps (non-blocking writes)
 *   loop:
 *     tsr_hashagg_update over the rows (all, or the retry list)
 *     read counters: new = slots claimed, fail = rows that found no slot
 *     tsr_hashagg_persist over the new slots (ROWREF -> OCC, keys copied)
 *     done when fail == 0 and load <= 1/2
 *     grow: tsr_hashagg_rehash into a table of >= 2*(groups + fail) slots
 *           (again, twice as big, if some group did not fit)
 *     done when fail == 0, else rerun the update on the retry rows
 *
 * Two update kernels (spec.strategy, AUTO by default):
 *   tsr_hashagg_update        one work-item per row, atomics on the global
 *                             states: for tables with many groups
 *   tsr_hashagg_update_local  work-groups over long runs of rows fold them into
 *                             a local table first, then into the global states:
 *                             for few groups, where per-row global atomics would
 *                             all hit the same cache lines
 * AUTO takes the local kernel for a chunk while the table holds at most half
 * as many groups as the local table has entries (lslots: what fits in half
 * the device's local memory, at most CL_HA_LOCAL_BUDGET).
 *
 * Termination: each retry round follows a growth of at least 2x, and growth
 * stops with TSR_ERR_UNSUPPORTED past CL_HA_MAX_SLOTS (or TSR_ERR_NOMEM when
 * the device cannot hold the table), so no input can loop forever.
 *
 * Double buffering: chunks are uploaded into two input sets on a second
 * in-order queue (copyq). Chunk i+1's upload is queued (and flushed) before
 * chunk i is aggregated, so it runs while chunk i's kernels do. Events order
 * the two queues: a set's upload waits for `consumed` (a marker after the
 * last command of the chunk that read the set), and a chunk's kernels wait
 * for `uploaded` (a barrier on the caller's queue).
 *
 * The counter read at the end of each round is blocking and update finishes
 * the copy queue before it returns, so by then every command reading the
 * caller's rows has completed; error paths finish both queues for the same
 * reason.
 */
#include <string.h>

#include "device/hashagg.h"
#include "device/hashagg_host.h"
#include "device/opencl_internal.h"
#include "device/opencl_launch.h"

#define CL_HA_BATCH ((size_t)1 << 20) /* rows per launch, a multiple of 64 */
#define CL_HA_PROBE_LIMIT 128u        /* slots a row probes before it is retried */
#define CL_HA_MIN_SLOTS ((size_t)1024)
#define CL_HA_MAX_SLOTS TSR_DEV_HASHAGG_MAX_SLOTS
#define CL_HA_MAX_WG ((size_t)256)
/* Local memory the pre-aggregation may use: half the device's (GPUs: 24-32
 * KiB, leaving room for more than one work-group per compute unit; PoCL's
 * "local memory" is ordinary cached memory of 512 KiB), at most this much. */
#define CL_HA_LOCAL_BUDGET ((uint64_t)256 << 10)
#define CL_HA_LOCAL_MAX_SLOTS 4096u
#define CL_HA_LOCAL_MIN_SLOTS 64u
#define CL_HA_WG_PER_CU 4   /* work-groups per compute unit in a pre-aggregating launch */
#define CL_HA_DIRECT_SCAN 8 /* the direct map is built where nslots <= 8 * lslots */

/* The group table (hashagg_host.h: shared with the CUDA backend). */
typedef tsr_dev_hashagg_table_t cl_ha_table_t;

/* One input set of the double-buffered upload (column-major, cap rows). */
typedef struct cl_ha_in {
    tsr_dev_buf_t *keys;   /* ulong[nkeys * cap] */
    tsr_dev_buf_t *kvalid; /* ulong[nkeys * cap/64] */
    tsr_dev_buf_t *vals;   /* ulong[naggs * cap] */
    tsr_dev_buf_t *vvalid; /* ulong[naggs * cap/64] */
    cl_event uploaded;     /* copyq: the set's upload is done (NULL: none yet) */
    cl_event consumed;     /* queue: the last chunk reading the set is done (NULL: none) */
} cl_ha_in_t;

typedef struct cl_ha {
    cl_kernel k_update, k_local, k_persist, k_rehash;
    size_t wg_update, wg_local, wg_persist, wg_rehash;
    cl_uint lslots;          /* entries of the local pre-aggregation table, 0: path off */
    tsr_dev_buf_t *identity; /* long[ncols]: empty states, for the local tables */
    cl_ha_table_t t;
    size_t cap;              /* rows per launch the input buffers hold (0: none yet) */
    tsr_dev_buf_t *aggs;     /* int4 per aggregate: op, nulls_col, val_col, hi_col */
    tsr_dev_buf_t *counters; /* uint[2]: new slots, failed rows */
    cl_ha_in_t in[2];        /* the input sets */
    tsr_dev_queue_t *copyq;  /* uploads into in[] */
    /* the set the kernels read now (aliases of in[b]'s buffers) */
    tsr_dev_buf_t *keys_in, *kvalid_in, *vals_in, *vvalid_in;
    tsr_dev_buf_t *sel;      /* uint[cap]: rows of a retry round */
    tsr_dev_buf_t *retry;    /* uint[cap]: rows that found no slot */
    tsr_dev_buf_t *newslots; /* uint[cap]: slots claimed in a launch */
} cl_ha_t;

typedef struct cl_ha_arg {
    size_t size;
    const void *value;
} cl_ha_arg_t;

// clang-format off
#define CL_HA_ARG(v) {sizeof(v), &(v)}
// clang-format on

static tsr_status_t cl_ha_set_args(tsr_dev_t *dev, cl_kernel k, const cl_ha_arg_t *args, size_t n,
                                   tsr_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        cl_int code = clSetKernelArg(k, (cl_uint)i, args[i].size, args[i].value);
        if (code != CL_SUCCESS)
            return tsr_dev_cl_fail(err, dev, code, "clSetKernelArg");
    }
    return TSR_OK;
}

static tsr_status_t cl_ha_launch(tsr_dev_queue_t *q, cl_kernel k, size_t wg, size_t n,
                                 tsr_error_t *err)
{
    size_t global = (n + wg - 1) / wg * wg;
    cl_int code =
        clEnqueueNDRangeKernel(tsr_dev_cl_queue(q), k, 1, NULL, &global, &wg, 0, NULL, NULL);
    return code == CL_SUCCESS ? TSR_OK
                              : tsr_dev_cl_fail(err, q->dev, code, "clEnqueueNDRangeKernel");
}

static tsr_status_t cl_ha_kernel(tsr_dev_t *dev, cl_program prog, const char *name, cl_kernel *k,
                                 size_t *wg, tsr_error_t *err)
{
    cl_int code = CL_SUCCESS;
    *k = clCreateKernel(prog, name, &code);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clCreateKernel");
    size_t max = 0;
    code = clGetKernelWorkGroupInfo(*k, tsr_dev_cl(dev)->device, CL_KERNEL_WORK_GROUP_SIZE,
                                    sizeof(max), &max, NULL);
    if (code != CL_SUCCESS)
        return tsr_dev_cl_fail(err, dev, code, "clGetKernelWorkGroupInfo");
    *wg = max < CL_HA_MAX_WG ? (max ? max : 1) : CL_HA_MAX_WG;
    return TSR_OK;
}

/* ---- the group table ---------------------------------------------------------------- */

static tsr_status_t cl_ha_counters(tsr_dev_queue_t *q, cl_ha_t *h, bool reset, cl_uint out[2],
                                   tsr_error_t *err)
{
    static const cl_uint zeros[2] = {0, 0}; /* static: a non-blocking write reads it later */
    if (reset)
        return tsr_dev_write(q, h->counters, 0, zeros, sizeof(zeros), false, NULL, err);
    return tsr_dev_read(q, h->counters, 0, out, 2 * sizeof(cl_uint), true, NULL, err);
}

/* The rehash of tsr_dev_hashagg_table_grow: one kernel over from's slots. */
static tsr_status_t cl_ha_rehash(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_table_t *from,
                                 const tsr_dev_hashagg_table_t *to, uint32_t *failed,
                                 tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    cl_mem os = tsr_dev_cl_mem(from->slots), ok = tsr_dev_cl_mem(from->gkeys),
           ov = tsr_dev_cl_mem(from->gvalid), oh = tsr_dev_cl_mem(from->ghash),
           ost = tsr_dev_cl_mem(from->states);
    cl_mem ns = tsr_dev_cl_mem(to->slots), nk = tsr_dev_cl_mem(to->gkeys),
           nv = tsr_dev_cl_mem(to->gvalid), nh = tsr_dev_cl_mem(to->ghash),
           nst = tsr_dev_cl_mem(to->states), cnt = tsr_dev_cl_mem(h->counters);
    cl_ulong onslots = from->nslots, nnslots = to->nslots;
    cl_uint nkeys = (cl_uint)ha->spec.nkeys, ncols = (cl_uint)ha->layout.ncols,
            limit = CL_HA_PROBE_LIMIT;
    const cl_ha_arg_t args[] = {
        CL_HA_ARG(os),    CL_HA_ARG(ok),      CL_HA_ARG(ov),    CL_HA_ARG(oh),
        CL_HA_ARG(ost),   CL_HA_ARG(onslots), CL_HA_ARG(ns),    CL_HA_ARG(nk),
        CL_HA_ARG(nv),    CL_HA_ARG(nh),      CL_HA_ARG(nst),   CL_HA_ARG(nnslots),
        CL_HA_ARG(nkeys), CL_HA_ARG(ncols),   CL_HA_ARG(limit), CL_HA_ARG(cnt),
    };
    cl_uint counts[2] = {0, 0};
    tsr_status_t rc;
    if ((rc = cl_ha_counters(q, h, true, NULL, err)) != TSR_OK ||
        (rc = cl_ha_set_args(ha->dev, h->k_rehash, args, sizeof(args) / sizeof(args[0]), err)) !=
            TSR_OK ||
        (rc = cl_ha_launch(q, h->k_rehash, h->wg_rehash, from->nslots, err)) != TSR_OK ||
        (rc = cl_ha_counters(q, h, false, counts, err)) != TSR_OK) {
        clFinish(tsr_dev_cl_queue(q));
        return rc;
    }
    *failed = counts[1];
    return TSR_OK;
}

/* Moves every group into a table of at least 2*need slots. */
static tsr_status_t cl_ha_grow(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t need,
                               tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    return tsr_dev_hashagg_table_grow(ha, q, &h->t, need, cl_ha_rehash, err);
}

/* ---- create / destroy ----------------------------------------------------------------- */

static void cl_ha_release_event(cl_event *ev)
{
    if (*ev)
        clReleaseEvent(*ev);
    *ev = NULL;
}

static void cl_ha_free_inputs(cl_ha_t *h)
{
    for (int b = 0; b < 2; b++) {
        cl_ha_in_t *in = &h->in[b];
        tsr_dev_buf_free(in->keys);
        tsr_dev_buf_free(in->kvalid);
        tsr_dev_buf_free(in->vals);
        tsr_dev_buf_free(in->vvalid);
        in->keys = in->kvalid = in->vals = in->vvalid = NULL;
        cl_ha_release_event(&in->uploaded);
        cl_ha_release_event(&in->consumed);
    }
    tsr_dev_buf_free(h->sel);
    tsr_dev_buf_free(h->retry);
    tsr_dev_buf_free(h->newslots);
    h->keys_in = h->kvalid_in = h->vals_in = h->vvalid_in = NULL;
    h->sel = h->retry = h->newslots = NULL;
    h->cap = 0;
}

/* Input buffers for launches of cap rows (a multiple of 64). */
static tsr_status_t cl_ha_inputs(tsr_dev_hashagg_t *ha, size_t cap, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    if (h->cap >= cap)
        return TSR_OK;
    cl_ha_free_inputs(h);
    tsr_dev_t *dev = ha->dev;
    size_t nkeys = ha->spec.nkeys, naggs = ha->spec.naggs;
    tsr_status_t rc = TSR_OK;
    for (int b = 0; b < 2 && rc == TSR_OK; b++) {
        cl_ha_in_t *in = &h->in[b];
        if ((rc = tsr_dev_buf_alloc(dev, nkeys * cap * 8, &in->keys, err)) == TSR_OK &&
            (rc = tsr_dev_buf_alloc(dev, nkeys * cap / 8, &in->kvalid, err)) == TSR_OK &&
            (rc = tsr_dev_buf_alloc(dev, naggs * cap * 8, &in->vals, err)) == TSR_OK)
            rc = tsr_dev_buf_alloc(dev, naggs * cap / 8, &in->vvalid, err);
    }
    if (rc != TSR_OK || (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->sel, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->retry, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->newslots, err)) != TSR_OK) {
        cl_ha_free_inputs(h);
        return rc;
    }
    h->cap = cap;
    return TSR_OK;
}

static void cl_ha_free(cl_ha_t *h)
{
    cl_ha_free_inputs(h);
    tsr_dev_queue_destroy(h->copyq);
    tsr_dev_hashagg_table_free(&h->t);
    tsr_dev_buf_free(h->aggs);
    tsr_dev_buf_free(h->counters);
    tsr_dev_buf_free(h->identity);
    if (h->k_update)
        clReleaseKernel(h->k_update);
    if (h->k_local)
        clReleaseKernel(h->k_local);
    if (h->k_persist)
        clReleaseKernel(h->k_persist);
    if (h->k_rehash)
        clReleaseKernel(h->k_rehash);
}

static tsr_status_t cl_ha_create(tsr_dev_hashagg_t *ha, tsr_error_t *err)
{
    tsr_dev_t *dev = ha->dev;
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    if (!cl->int64_atomics || !cl->fp64) {
        tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                      "OpenCL device %s lacks %s, which hash aggregation needs", dev->info.name,
                      !cl->fp64 ? "cl_khr_fp64" : "64-bit atomics (cl_khr_int64_*_atomics)");
        tsr_error_hint(err, "use another device (tessera devices lists them)");
        return TSR_ERR_UNSUPPORTED;
    }
    cl_program prog;
    tsr_status_t rc = tsr_dev_cl_program(dev, TSR_CL_PROG_HASHAGG, &prog, err);
    if (rc != TSR_OK)
        return rc;
    cl_ha_t *h = tsr_mem_calloc(dev->mem, 1, sizeof(*h));
    if (!h)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    ha->impl = h;
    if ((rc = cl_ha_kernel(dev, prog, "tsr_hashagg_update", &h->k_update, &h->wg_update, err)) !=
            TSR_OK ||
        (rc = cl_ha_kernel(dev, prog, "tsr_hashagg_update_local", &h->k_local, &h->wg_local,
                           err)) != TSR_OK ||
        (rc = cl_ha_kernel(dev, prog, "tsr_hashagg_persist", &h->k_persist, &h->wg_persist, err)) !=
            TSR_OK ||
        (rc = cl_ha_kernel(dev, prog, "tsr_hashagg_rehash", &h->k_rehash, &h->wg_rehash, err)) !=
            TSR_OK)
        goto err_free;

    cl_int aggs[TSR_DEV_HASHAGG_MAX_AGGS * 4];
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        aggs[4 * a] = (cl_int)ha->layout.op[a];
        aggs[4 * a + 1] = ha->layout.nulls_col[a];
        aggs[4 * a + 2] = ha->layout.val_col[a];
        aggs[4 * a + 3] = ha->layout.hi_col[a];
    }
    /* The local table: as many entries as fit the budget (slot id + states). */
    uint64_t budget =
        cl->local_mem / 2 < CL_HA_LOCAL_BUDGET ? cl->local_mem / 2 : CL_HA_LOCAL_BUDGET;
    uint64_t entry = 4 + 8 * (uint64_t)ha->layout.ncols + 4; /* + the direct map's */
    for (h->lslots = CL_HA_LOCAL_MAX_SLOTS;
         h->lslots >= CL_HA_LOCAL_MIN_SLOTS && h->lslots * entry > budget;)
        h->lslots /= 2;
    if (h->lslots < CL_HA_LOCAL_MIN_SLOTS)
        h->lslots = 0;
    size_t nslots = CL_HA_MIN_SLOTS;
    while (nslots < 2 * ha->spec.expected_groups && nslots < CL_HA_MAX_SLOTS)
        nslots *= 2;
    tsr_dev_queue_t *q = dev->queue;
    if ((rc = tsr_dev_buf_alloc(dev, ha->spec.naggs * 16, &h->aggs, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, 2 * sizeof(cl_uint), &h->counters, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, ha->layout.ncols * 8, &h->identity, err)) != TSR_OK ||
        (rc = tsr_dev_write(q, h->identity, 0, ha->layout.identity, ha->layout.ncols * 8, true,
                            NULL, err)) != TSR_OK ||
        (ha->spec.naggs && (rc = tsr_dev_write(q, h->aggs, 0, aggs, ha->spec.naggs * 16, true, NULL,
                                               err)) != TSR_OK) ||
        (rc = tsr_dev_hashagg_table_alloc(ha, q, nslots, &h->t, err)) != TSR_OK ||
        (rc = tsr_dev_queue_finish(q, err)) != TSR_OK ||
        (rc = tsr_dev_queue_create(dev, &h->copyq, err)) != TSR_OK)
        goto err_free;
    return TSR_OK;

err_free:
    cl_ha_free(h);
    tsr_mem_free(dev->mem, h);
    ha->impl = NULL;
    return rc;
}

static void cl_ha_destroy(tsr_dev_hashagg_t *ha)
{
    cl_ha_t *h = ha->impl;
    if (!h)
        return;
    clFinish(tsr_dev_cl_queue(ha->dev->queue));
    cl_ha_free(h);
    tsr_mem_free(ha->dev->mem, h);
}

/* ---- update ----------------------------------------------------------------------------- */

/* Whether this chunk pre-aggregates per work-group: only while the table has
 * few groups (with many, a work-group's rows rarely share one and the local
 * table only adds probes). */
static bool cl_ha_use_local(const tsr_dev_hashagg_t *ha)
{
    const cl_ha_t *h = ha->impl;
    if (!h->lslots || ha->spec.strategy == TSR_DEV_HASHAGG_GLOBAL)
        return false;
    if (ha->spec.strategy == TSR_DEV_HASHAGG_LOCAL)
        return true;
    return ha->ngroups <= h->lslots / 2 && ha->spec.expected_groups <= h->lslots / 2;
}

static tsr_status_t cl_ha_pass(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t n, bool use_sel,
                               bool local, cl_uint kmask, cl_uint vmask, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    cl_mem slots = tsr_dev_cl_mem(h->t.slots), gkeys = tsr_dev_cl_mem(h->t.gkeys),
           gvalid = tsr_dev_cl_mem(h->t.gvalid), states = tsr_dev_cl_mem(h->t.states),
           aggs = tsr_dev_cl_mem(h->aggs), keys = tsr_dev_cl_mem(h->keys_in),
           kvalid = tsr_dev_cl_mem(h->kvalid_in), vals = tsr_dev_cl_mem(h->vals_in),
           vvalid = tsr_dev_cl_mem(h->vvalid_in), sel = tsr_dev_cl_mem(h->sel),
           cnt = tsr_dev_cl_mem(h->counters), retry = tsr_dev_cl_mem(h->retry),
           newslots = tsr_dev_cl_mem(h->newslots), identity = tsr_dev_cl_mem(h->identity);
    cl_uint un = (cl_uint)n, usel = use_sel, nkeys = (cl_uint)ha->spec.nkeys,
            naggs = (cl_uint)ha->spec.naggs, cap = (cl_uint)h->cap, limit = CL_HA_PROBE_LIMIT,
            ncols = (cl_uint)ha->layout.ncols, lslots = h->lslots,
            contiguous = !ha->dev->info.is_gpu;
    cl_ulong nslots = h->t.nslots;
    /* the direct map (hashagg.cl): one key column, a table of at most 8
     * slots per local entry (each work-group scans it once) */
    cl_uint dslots = nkeys == 1 && nslots <= (cl_ulong)CL_HA_DIRECT_SCAN * lslots ? lslots : 0;
    /* Pre-aggregating launches: a few work-groups per compute unit, each
     * over a contiguous run of rows, so each local table sees many rows. */
    size_t wgs =
        (size_t)(ha->dev->info.compute_units ? ha->dev->info.compute_units : 1) * CL_HA_WG_PER_CU;
    size_t per = (n + wgs - 1) / wgs;
    cl_uint rows_per_wg = (cl_uint)(per < h->wg_local ? h->wg_local : per);
    size_t nwg = (n + rows_per_wg - 1) / rows_per_wg;
    const cl_ha_arg_t args[] = {
        CL_HA_ARG(slots),
        CL_HA_ARG(gkeys),
        CL_HA_ARG(gvalid),
        CL_HA_ARG(states),
        CL_HA_ARG(aggs),
        CL_HA_ARG(keys),
        CL_HA_ARG(kvalid),
        CL_HA_ARG(vals),
        CL_HA_ARG(vvalid),
        CL_HA_ARG(sel),
        CL_HA_ARG(cnt),
        CL_HA_ARG(retry),
        CL_HA_ARG(newslots),
        CL_HA_ARG(un),
        CL_HA_ARG(usel),
        CL_HA_ARG(nslots),
        CL_HA_ARG(nkeys),
        CL_HA_ARG(naggs),
        CL_HA_ARG(kmask),
        CL_HA_ARG(vmask),
        CL_HA_ARG(cap),
        CL_HA_ARG(limit),
        /* tsr_hashagg_update_local only: */
        CL_HA_ARG(identity),
        CL_HA_ARG(ncols),
        CL_HA_ARG(rows_per_wg),
        {(size_t)lslots * 4, NULL},
        {(size_t)lslots * ncols * 8, NULL},
        CL_HA_ARG(lslots),
        CL_HA_ARG(contiguous),
        {(size_t)(dslots ? dslots : 1) * 4, NULL},
        {8, NULL},
        CL_HA_ARG(dslots),
    };
    size_t nargs = sizeof(args) / sizeof(args[0]);
    cl_kernel k = local ? h->k_local : h->k_update;
    tsr_status_t rc = cl_ha_counters(q, h, true, NULL, err);
    if (rc == TSR_OK)
        rc = cl_ha_set_args(ha->dev, k, args, local ? nargs : nargs - 10, err);
    if (rc == TSR_OK)
        rc = local ? cl_ha_launch(q, k, h->wg_local, nwg * h->wg_local, err)
                   : cl_ha_launch(q, k, h->wg_update, n, err);
    return rc;
}

static tsr_status_t cl_ha_persist(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, cl_uint count,
                                  cl_uint kmask, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    cl_mem slots = tsr_dev_cl_mem(h->t.slots), gkeys = tsr_dev_cl_mem(h->t.gkeys),
           gvalid = tsr_dev_cl_mem(h->t.gvalid), ghash = tsr_dev_cl_mem(h->t.ghash),
           keys = tsr_dev_cl_mem(h->keys_in), kvalid = tsr_dev_cl_mem(h->kvalid_in),
           newslots = tsr_dev_cl_mem(h->newslots);
    cl_ulong nslots = h->t.nslots;
    cl_uint nkeys = (cl_uint)ha->spec.nkeys, cap = (cl_uint)h->cap;
    const cl_ha_arg_t args[] = {
        CL_HA_ARG(slots),  CL_HA_ARG(gkeys),  CL_HA_ARG(gvalid),   CL_HA_ARG(ghash),
        CL_HA_ARG(keys),   CL_HA_ARG(kvalid), CL_HA_ARG(newslots), CL_HA_ARG(count),
        CL_HA_ARG(nslots), CL_HA_ARG(nkeys),  CL_HA_ARG(kmask),    CL_HA_ARG(cap),
    };
    tsr_status_t rc =
        cl_ha_set_args(ha->dev, h->k_persist, args, sizeof(args) / sizeof(args[0]), err);
    if (rc == TSR_OK)
        rc = cl_ha_launch(q, h->k_persist, h->wg_persist, count, err);
    return rc;
}

/* Queues the upload of rows [start, start+m) into input set b on the copy
 * queue, after the chunk that last read the set (see the top of the file). */
static tsr_status_t cl_ha_upload(tsr_dev_hashagg_t *ha, const tsr_dev_hashagg_rows_t *rows, int b,
                                 size_t start, size_t m, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    cl_ha_in_t *in = &h->in[b];
    cl_command_queue cq = tsr_dev_cl_queue(h->copyq);
    size_t cap = h->cap, words = (m + 63) / 64;
    cl_int code = CL_SUCCESS;
    if (in->consumed &&
        (code = clEnqueueBarrierWithWaitList(cq, 1, &in->consumed, NULL)) != CL_SUCCESS)
        return tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueBarrierWithWaitList");
    const char *what = "clEnqueueWriteBuffer";
    uint64_t up = 0;
    if (tsr_dev_cl_stage_active(ha->dev)) { /* through pinned staging (opencl_stage.c) */
        tsr_status_t rc = TSR_OK;
        for (size_t k = 0; k < ha->spec.nkeys && rc == TSR_OK; k++) {
            rc = tsr_dev_cl_upload(ha->dev, cq, tsr_dev_cl_mem(in->keys), k * cap * 8,
                                   rows->keys[k] + start, m * 8, err);
            up += m * 8;
            if (rc == TSR_OK && rows->key_valid[k]) {
                rc = tsr_dev_cl_upload(ha->dev, cq, tsr_dev_cl_mem(in->kvalid), k * cap / 8,
                                       rows->key_valid[k] + start / 64, words * 8, err);
                up += words * 8;
            }
        }
        for (size_t a = 0; a < ha->spec.naggs && rc == TSR_OK; a++) {
            if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
                continue;
            if (ha->layout.val_col[a] >= 0) {
                rc = tsr_dev_cl_upload(ha->dev, cq, tsr_dev_cl_mem(in->vals), a * cap * 8,
                                       (const uint64_t *)rows->values[a] + start, m * 8, err);
                up += m * 8;
            }
            if (rc == TSR_OK && rows->valid[a]) {
                rc = tsr_dev_cl_upload(ha->dev, cq, tsr_dev_cl_mem(in->vvalid), a * cap / 8,
                                       rows->valid[a] + start / 64, words * 8, err);
                up += words * 8;
            }
        }
        if (rc != TSR_OK)
            return rc;
        m = 0; /* queued: skip the direct writes below */
    }
    for (size_t k = 0; k < ha->spec.nkeys && code == CL_SUCCESS && m; k++) {
        code = clEnqueueWriteBuffer(cq, tsr_dev_cl_mem(in->keys), CL_FALSE, k * cap * 8, m * 8,
                                    rows->keys[k] + start, 0, NULL, NULL);
        up += m * 8;
        if (code == CL_SUCCESS && rows->key_valid[k]) {
            code = clEnqueueWriteBuffer(cq, tsr_dev_cl_mem(in->kvalid), CL_FALSE, k * cap / 8,
                                        words * 8, rows->key_valid[k] + start / 64, 0, NULL, NULL);
            up += words * 8;
        }
    }
    for (size_t a = 0; a < ha->spec.naggs && code == CL_SUCCESS && m; a++) {
        if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
            continue;
        if (ha->layout.val_col[a] >= 0) {
            code = clEnqueueWriteBuffer(cq, tsr_dev_cl_mem(in->vals), CL_FALSE, a * cap * 8, m * 8,
                                        (const uint64_t *)rows->values[a] + start, 0, NULL, NULL);
            up += m * 8;
        }
        if (code == CL_SUCCESS && rows->valid[a]) {
            code = clEnqueueWriteBuffer(cq, tsr_dev_cl_mem(in->vvalid), CL_FALSE, a * cap / 8,
                                        words * 8, rows->valid[a] + start / 64, 0, NULL, NULL);
            up += words * 8;
        }
    }
    if (code == CL_SUCCESS) {
        ha->dev->stats.bytes_h2d += up; /* queued outside tsr_dev_write: counted here */
        cl_ha_release_event(&in->uploaded);
        what = "clEnqueueMarkerWithWaitList";
        code = clEnqueueMarkerWithWaitList(cq, 0, NULL, &in->uploaded);
    }
    if (code == CL_SUCCESS) {
        what = "clFlush"; /* start it now: the caller's queue blocks on reads */
        code = clFlush(cq);
    }
    return code == CL_SUCCESS ? TSR_OK : tsr_dev_cl_fail(err, ha->dev, code, what);
}

static tsr_status_t cl_ha_rounds(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t n, bool use_sel,
                                 cl_uint kmask, cl_uint vmask, tsr_error_t *err);

/* Aggregates the m rows uploaded into input set b (see the top of the file). */
static tsr_status_t cl_ha_chunk(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, int b, size_t m,
                                cl_uint kmask, cl_uint vmask, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    cl_ha_in_t *in = &h->in[b];
    h->keys_in = in->keys;
    h->kvalid_in = in->kvalid;
    h->vals_in = in->vals;
    h->vvalid_in = in->vvalid;
    tsr_status_t rc = TSR_OK;
    cl_int code = clEnqueueBarrierWithWaitList(tsr_dev_cl_queue(q), 1, &in->uploaded, NULL);
    if (code != CL_SUCCESS)
        rc = tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueBarrierWithWaitList");
    if (rc == TSR_OK)
        rc = cl_ha_rounds(ha, q, m, false, kmask, vmask, err);
    if (rc == TSR_OK) { /* set b is free once everything queued so far is done */
        cl_ha_release_event(&in->consumed);
        code = clEnqueueMarkerWithWaitList(tsr_dev_cl_queue(q), 0, NULL, &in->consumed);
        if (code != CL_SUCCESS)
            rc = tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueMarkerWithWaitList");
    }
    return rc;
}

/* The update rounds over the n rows (of h->sel when use_sel) of the input
 * set the kernels read now (see the top of the file). */
static tsr_status_t cl_ha_rounds(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t n, bool use_sel,
                                 cl_uint kmask, cl_uint vmask, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    tsr_status_t rc = TSR_OK;
    cl_int code;
    bool local = cl_ha_use_local(ha);
    while (rc == TSR_OK) {
        cl_uint counts[2] = {0, 0};
        if ((rc = cl_ha_pass(ha, q, n, use_sel, local, kmask, vmask, err)) != TSR_OK ||
            (rc = cl_ha_counters(q, h, false, counts, err)) != TSR_OK)
            break;
        if (counts[0] > 0) {
            if ((rc = cl_ha_persist(ha, q, counts[0], kmask, err)) != TSR_OK)
                break;
            ha->ngroups += counts[0];
        }
        if (counts[1] == 0 && 2 * ha->ngroups <= h->t.nslots)
            break;
        if ((rc = cl_ha_grow(ha, q, ha->ngroups + counts[1], err)) != TSR_OK || counts[1] == 0)
            break;
        /* Rerun only the rows that found no slot; they touched nothing. */
        code = clEnqueueCopyBuffer(tsr_dev_cl_queue(q), tsr_dev_cl_mem(h->retry),
                                   tsr_dev_cl_mem(h->sel), 0, 0, counts[1] * 4, 0, NULL, NULL);
        if (code != CL_SUCCESS) {
            rc = tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueCopyBuffer");
            break;
        }
        n = counts[1];
        use_sel = true;
    }
    return rc;
}

static tsr_status_t cl_ha_update(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    size_t n = rows->n, want = n < CL_HA_BATCH ? (n + 63) / 64 * 64 : CL_HA_BATCH;
    tsr_status_t rc = cl_ha_inputs(ha, want, err);
    if (rc != TSR_OK)
        return rc;
    cl_uint kmask = 0, vmask = 0;
    for (size_t k = 0; k < ha->spec.nkeys; k++)
        kmask |= (cl_uint)(rows->key_valid[k] != NULL) << k;
    for (size_t a = 0; a < ha->spec.naggs; a++)
        if (ha->layout.op[a] != TSR_DEV_OP_COUNT_STAR)
            vmask |= (cl_uint)(rows->valid[a] != NULL) << a;
    size_t cap = h->cap, nl = (n + cap - 1) / cap;
    if (nl)
        rc = cl_ha_upload(ha, rows, 0, 0, n < cap ? n : cap, err);
    for (size_t l = 0; l < nl && rc == TSR_OK; l++) {
        size_t start = l * cap, m = n - start < cap ? n - start : cap;
        if (l + 1 < nl) {
            size_t next = start + cap;
            /* a staged upload may wait on the host for the copy queue, whose
             * barrier waits for this queue's marker: get it submitted */
            clFlush(tsr_dev_cl_queue(q));
            rc = cl_ha_upload(ha, rows, (int)((l + 1) & 1), next, n - next < cap ? n - next : cap,
                              err);
        }
        if (rc == TSR_OK)
            rc = cl_ha_chunk(ha, q, (int)(l & 1), m, kmask, vmask, err);
    }
    /* nothing may read the caller's rows after we return */
    cl_int code = clFinish(tsr_dev_cl_queue(h->copyq));
    if (rc != TSR_OK)
        clFinish(tsr_dev_cl_queue(q));
    else if (code != CL_SUCCESS)
        rc = tsr_dev_cl_fail(err, ha->dev, code, "clFinish");
    return rc;
}

/* Device-resident rows (hashagg.h's drows): copied device-to-device into
 * input set 0, the selection into h->sel, then the usual rounds with the
 * selection as the first round's row list (the kernels' retry path reads
 * rows through the same list). The caller's queue orders everything, so
 * set 0's `uploaded` event is not needed; `consumed` is set as a chunk
 * would, for a later host-input update that uploads into set 0. */
static tsr_status_t cl_ha_update_dev(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                     const tsr_dev_hashagg_drows_t *rows, tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    size_t n = rows->n;
    tsr_status_t rc = cl_ha_inputs(ha, (n + 63) / 64 * 64, err);
    if (rc != TSR_OK)
        return rc;
    cl_ha_in_t *in = &h->in[0];
    size_t cap = h->cap, words = (n + 63) / 64;
    cl_uint kmask = 0, vmask = 0;
    cl_int code = CL_SUCCESS;
    /* the copy queue may still upload into set 0 for an earlier host update */
    if (in->uploaded && (code = clEnqueueBarrierWithWaitList(tsr_dev_cl_queue(q), 1, &in->uploaded,
                                                             NULL)) != CL_SUCCESS)
        return tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueBarrierWithWaitList");
    for (size_t k = 0; k < ha->spec.nkeys && rc == TSR_OK; k++) {
        rc = tsr_dev_cl_copy(q, rows->keys[k], 0, in->keys, k * cap * 8, n * 8, err);
        if (rc == TSR_OK && rows->key_valid[k]) {
            rc = tsr_dev_cl_copy(q, rows->key_valid[k], 0, in->kvalid, k * cap / 8, words * 8, err);
            kmask |= (cl_uint)1 << k;
        }
    }
    for (size_t a = 0; a < ha->spec.naggs && rc == TSR_OK; a++) {
        if (ha->layout.op[a] == TSR_DEV_OP_COUNT_STAR)
            continue;
        if (ha->layout.val_col[a] >= 0)
            rc = tsr_dev_cl_copy(q, rows->values[a], 0, in->vals, a * cap * 8, n * 8, err);
        if (rc == TSR_OK && rows->valid[a]) {
            rc = tsr_dev_cl_copy(q, rows->valid[a], 0, in->vvalid, a * cap / 8, words * 8, err);
            vmask |= (cl_uint)1 << a;
        }
    }
    if (rc == TSR_OK && rows->sel)
        rc = tsr_dev_cl_copy(q, rows->sel, 0, h->sel, 0, rows->nsel * 4, err);
    if (rc == TSR_OK) {
        h->keys_in = in->keys;
        h->kvalid_in = in->kvalid;
        h->vals_in = in->vals;
        h->vvalid_in = in->vvalid;
        rc = cl_ha_rounds(ha, q, rows->sel ? rows->nsel : n, rows->sel != NULL, kmask, vmask, err);
    }
    if (rc == TSR_OK) {
        cl_ha_release_event(&in->consumed);
        code = clEnqueueMarkerWithWaitList(tsr_dev_cl_queue(q), 0, NULL, &in->consumed);
        if (code != CL_SUCCESS)
            rc = tsr_dev_cl_fail(err, ha->dev, code, "clEnqueueMarkerWithWaitList");
    }
    if (rc != TSR_OK)
        clFinish(tsr_dev_cl_queue(q));
    return rc;
}

/* ---- result ----------------------------------------------------------------------------- */

/* Reads the table back and compacts the groups (hashagg_host.c). */
static tsr_status_t cl_ha_result(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_out_t *out, tsr_dev_hashagg_raw_t *raw,
                                 tsr_error_t *err)
{
    cl_ha_t *h = ha->impl;
    return tsr_dev_hashagg_table_read(ha, q, &h->t, "OpenCL", out, raw, err);
}

const tsr_dev_hashagg_ops_t tsr_dev_hashagg_opencl_ops = {
    .create = cl_ha_create,
    .destroy = cl_ha_destroy,
    .update = cl_ha_update,
    .update_dev = cl_ha_update_dev,
    .result = cl_ha_result,
};
