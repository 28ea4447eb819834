/*
 * hashagg_cuda_table.c - the group table of CUDA hash aggregation in device
 * memory (allocation at the states' identities, growth by rehash), the
 * counters read back after each launch, the scratch and input buffers, and
 * the launch configuration derived from the device. The algorithm:
 * hashagg_cuda.c and kernels/cuda/hashagg.cuh.
 */
#ifdef TSR_HAVE_CUDA

#include <stdlib.h>
#include <string.h>

#include "device/hashagg_cuda_internal.h"

static size_t cu_pow2_floor(size_t x)
{
    size_t p = 1;
    while (p <= x / 2)
        p *= 2;
    return p;
}

static size_t cu_clamp(size_t x, size_t lo, size_t hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static unsigned cu_warps(unsigned want, unsigned max_block)
{
    unsigned b = want < max_block ? want : max_block;
    b &= ~31u;
    return b ? b : 32;
}

/* ---- the group table ------------------------------------------------------------------ */

void tsr_hashagg_cuda_table_view(const cu_ha_table_t *t, tsr_cuda_ha_table_t *v)
{
    v->slots = tsr_dev_cuda_ptr(t->slots);
    v->gkeys = tsr_dev_cuda_ptr(t->gkeys);
    v->gvalid = tsr_dev_cuda_ptr(t->gvalid);
    v->ghash = tsr_dev_cuda_ptr(t->ghash);
    v->states = tsr_dev_cuda_ptr(t->states);
    v->nslots = t->nslots;
}

/* ---- counters ---------------------------------------------------------------------------- */

tsr_status_t tsr_hashagg_cuda_counters_reset(tsr_dev_hashagg_t *ha, cudaStream_t s,
                                             tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaError_t e = cudaMemsetAsync(tsr_dev_cuda_ptr(h->counters), 0, 8, s);
    return e == cudaSuccess ? TSR_OK : cu_ha_fail(ha, e, "cudaMemsetAsync(counters)", err);
}

/* Queues the counters' copy to pinned memory, to be read by tsr_hashagg_cuda_counters_wait. */
tsr_status_t tsr_hashagg_cuda_counters_fetch(tsr_dev_hashagg_t *ha, cudaStream_t s,
                                             tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaError_t e =
        cudaMemcpyAsync(h->hc->ptr, tsr_dev_cuda_ptr(h->counters), 8, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaEventRecord(h->counters_ready, s);
    return e == cudaSuccess ? TSR_OK : cu_ha_fail(ha, e, "cudaMemcpyAsync(counters)", err);
}

tsr_status_t tsr_hashagg_cuda_counters_wait(tsr_dev_hashagg_t *ha, uint32_t out[2],
                                            tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    /* a failed kernel surfaces here, as the error of the wait */
    cudaError_t e = cudaEventSynchronize(h->counters_ready);
    if (e != cudaSuccess)
        return cu_ha_fail(ha, e, "aggregation kernels (cudaEventSynchronize)", err);
    memcpy(out, h->hc->ptr, 2 * sizeof(uint32_t));
    return TSR_OK;
}

/* ---- growth --------------------------------------------------------------------------- */

/* The rehash of tsr_dev_hashagg_table_grow: one kernel over from's slots. */
static tsr_status_t cu_ha_rehash(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                 const tsr_dev_hashagg_table_t *from,
                                 const tsr_dev_hashagg_table_t *to, uint32_t *failed,
                                 tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    tsr_cuda_ha_rehash_view_t r;
    memset(&r, 0, sizeof(r));
    tsr_hashagg_cuda_table_view(from, &r.from);
    tsr_hashagg_cuda_table_view(to, &r.to);
    r.counters = tsr_dev_cuda_ptr(h->counters);
    r.nkeys = (uint32_t)ha->spec.nkeys;
    r.ncols = (uint32_t)ha->layout.ncols;
    r.probe_limit = CU_HA_PROBE_LIMIT;
    size_t blocks = (from->nslots + h->aux_block - 1) / h->aux_block;
    unsigned grid = (unsigned)(blocks < h->aux_grid ? blocks : h->aux_grid);
    uint32_t counts[2] = {0, 0};
    cudaError_t e = cudaSuccess;
    tsr_status_t rc;
    if ((rc = tsr_hashagg_cuda_counters_reset(ha, s, err)) == TSR_OK) {
        e = tsr_cuda_ha_rehash(&r, grid, h->aux_block, s);
        rc = e == cudaSuccess ? TSR_OK : cu_ha_fail(ha, e, "rehash kernel launch", err);
    }
    if (rc == TSR_OK && (rc = tsr_hashagg_cuda_counters_fetch(ha, s, err)) == TSR_OK)
        rc = tsr_hashagg_cuda_counters_wait(ha, counts, err);
    if (rc != TSR_OK) {
        cudaStreamSynchronize(s);
        cudaGetLastError();
        return rc;
    }
    *failed = counts[TSR_CUDA_CNT_FAIL];
    return TSR_OK;
}

/* Moves every group into a table of at least 2*need slots (cudaFree of the
 * old table waits for the rehash). */
tsr_status_t tsr_hashagg_cuda_grow(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t need,
                                   tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    return tsr_dev_hashagg_table_grow(ha, q, &h->t, need, cu_ha_rehash, err);
}

/* ---- scratch and inputs ------------------------------------------------------------------ */

void tsr_hashagg_cuda_scratch_free(cu_ha_t *h)
{
    tsr_dev_buf_free(h->sel);
    tsr_dev_buf_free(h->retry);
    tsr_dev_buf_free(h->newslots);
    tsr_dev_buf_free(h->newcount);
    h->sel = h->retry = h->newslots = h->newcount = NULL;
    h->cap = 0;
}

/* The most blocks any update launch uses. */
static unsigned cu_ha_max_grid(const cu_ha_t *h)
{
    unsigned g = h->global_grid;
    for (int k = 0; k < TSR_CUDA_HA_NKERNELS; k++)
        g = h->local_grid[k] > g ? h->local_grid[k] : g;
    return g;
}

/* Scratch for launches of up to cap rows. A block's newslots region covers
 * the rows it visits, rounded up to whole iterations: the regions of a launch
 * of n rows total less than n + grid * block * rows-per-thread. */
tsr_status_t tsr_hashagg_cuda_scratch(tsr_dev_hashagg_t *ha, size_t cap, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    if (h->cap >= cap)
        return TSR_OK;
    tsr_hashagg_cuda_scratch_free(h);
    tsr_dev_t *dev = ha->dev;
    size_t grid = cu_ha_max_grid(h);
    size_t slack = grid *
                   (size_t)(h->global_block > h->local_block ? h->global_block : h->local_block) *
                   CU_HA_U;
    tsr_status_t rc;
    if ((rc = tsr_dev_buf_alloc(dev, cap * 4, &h->sel, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, cap * 4, &h->retry, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, (cap + slack) * 4, &h->newslots, err)) != TSR_OK ||
        (rc = tsr_dev_buf_alloc(dev, grid * 4, &h->newcount, err)) != TSR_OK) {
        tsr_hashagg_cuda_scratch_free(h);
        return rc;
    }
    h->cap = cap;
    return TSR_OK;
}

void tsr_hashagg_cuda_inputs_free(cu_ha_t *h)
{
    for (int b = 0; b < 2; b++) {
        tsr_dev_buf_free(h->in[b].keys);
        tsr_dev_buf_free(h->in[b].kvalid);
        tsr_dev_buf_free(h->in[b].vals);
        tsr_dev_buf_free(h->in[b].vvalid);
        h->in[b].keys = h->in[b].kvalid = h->in[b].vals = h->in[b].vvalid = NULL;
    }
    h->in_cap = 0;
}

/* Two input sets of cap rows (a multiple of 64). */
tsr_status_t tsr_hashagg_cuda_inputs(tsr_dev_hashagg_t *ha, size_t cap, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    if (h->in_cap >= cap)
        return TSR_OK;
    tsr_hashagg_cuda_inputs_free(h);
    tsr_dev_t *dev = ha->dev;
    size_t nkeys = ha->spec.nkeys, naggs = ha->spec.naggs;
    tsr_status_t rc = TSR_OK;
    for (int b = 0; b < 2 && rc == TSR_OK; b++) {
        cu_ha_input_t *in = &h->in[b];
        if ((rc = tsr_dev_buf_alloc(dev, nkeys * cap * 8, &in->keys, err)) != TSR_OK ||
            (rc = tsr_dev_buf_alloc(dev, nkeys * cap / 8, &in->kvalid, err)) != TSR_OK ||
            (rc = tsr_dev_buf_alloc(dev, naggs * cap * 8, &in->vals, err)) != TSR_OK)
            break;
        rc = tsr_dev_buf_alloc(dev, naggs * cap / 8, &in->vvalid, err);
    }
    if (rc != TSR_OK) {
        tsr_hashagg_cuda_inputs_free(h);
        return rc;
    }
    h->in_cap = cap;
    return TSR_OK;
}

void tsr_hashagg_cuda_free(tsr_dev_hashagg_t *ha)
{
    cu_ha_t *h = ha->impl;
    /* nothing may still run on the buffers below */
    if (cudaStreamSynchronize(tsr_dev_cuda_stream(ha->dev->queue)) != cudaSuccess)
        cudaGetLastError();
    if (h->copy && cudaStreamSynchronize(h->copy) != cudaSuccess)
        cudaGetLastError();
    tsr_hashagg_cuda_inputs_free(h);
    tsr_hashagg_cuda_scratch_free(h);
    tsr_dev_hashagg_table_free(&h->t);
    tsr_dev_buf_free(h->counters);
    tsr_dev_host_free(h->hc);
    cudaEvent_t evs[] = {h->counters_ready, h->in[0].uploaded, h->in[0].consumed, h->in[1].uploaded,
                         h->in[1].consumed};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i] && cudaEventDestroy(evs[i]) != cudaSuccess)
            cudaGetLastError();
    if (h->copy && cudaStreamDestroy(h->copy) != cudaSuccess)
        cudaGetLastError();
    tsr_mem_free(ha->dev->mem, h);
    ha->impl = NULL;
}

/* ---- kernel variants ------------------------------------------------------------------- */

int tsr_hashagg_cuda_variant(const char *name)
{
    static const struct {
        const char *name;
        int kernel;
    } names[] = {
        {"auto", -1},
        {"global", TSR_CUDA_HA_GLOBAL},
        {"lane", TSR_CUDA_HA_LOCAL},
        {"local", TSR_CUDA_HA_LOCAL},
        {"warp", TSR_CUDA_HA_LOCAL_WARP},
        {"coop", TSR_CUDA_HA_LOCAL_COOP},
        {"regs", TSR_CUDA_HA_REGS},
    };
    if (!name || !*name)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i].name) == 0)
            return names[i].kernel;
    return -2;
}

tsr_cuda_ha_kernel_t tsr_hashagg_cuda_pick(const tsr_dev_hashagg_t *ha)
{
    const cu_ha_t *h = ha->impl;
    /* a forced variant, where this layout and device can run it */
    if (h->force == TSR_CUDA_HA_GLOBAL)
        return TSR_CUDA_HA_GLOBAL;
    if (h->force == TSR_CUDA_HA_REGS && h->rgroups)
        return TSR_CUDA_HA_REGS;
    if (h->force >= TSR_CUDA_HA_LOCAL && h->force <= TSR_CUDA_HA_LOCAL_COOP && h->lslots)
        return (tsr_cuda_ha_kernel_t)h->force;
    /* auto: by the groups seen so far (and the caller's hint) */
    if (!h->lslots || ha->spec.strategy == TSR_DEV_HASHAGG_GLOBAL)
        return TSR_CUDA_HA_GLOBAL;
    size_t half = h->lslots / 2;
    bool few = ha->ngroups <= half && ha->spec.expected_groups <= half;
    if (ha->spec.strategy == TSR_DEV_HASHAGG_AUTO && !few)
        return TSR_CUDA_HA_GLOBAL;
    /* regs lists the groups already in the table: not before any is */
    if (h->rgroups && ha->ngroups > 0 && ha->ngroups <= h->rgroups &&
        ha->spec.expected_groups <= h->rgroups)
        return TSR_CUDA_HA_REGS;
    bool tiny = ha->ngroups <= CU_HA_WARP_GROUPS && ha->spec.expected_groups <= CU_HA_WARP_GROUPS;
    return tiny ? TSR_CUDA_HA_LOCAL_WARP : TSR_CUDA_HA_LOCAL;
}

/* The regs kernel's block and groups per thread: as many groups as fit (up
 * to TSR_CUDA_HA_REGS_MAX) at 512 threads, else 8 groups with smaller
 * blocks, else fewer groups; none when not even one group's columns fit
 * (wide layouts: the kernel is then never picked). */
static void cu_ha_configure_regs(tsr_dev_hashagg_t *ha)
{
    static const struct {
        uint32_t groups;
        unsigned block;
    } cand[] = {{16, CU_HA_REGS_BLOCK},    {8, CU_HA_REGS_BLOCK},     {8, CU_HA_REGS_BLOCK / 2},
                {8, CU_HA_REGS_MIN_BLOCK}, {4, CU_HA_REGS_MIN_BLOCK}, {2, CU_HA_REGS_MIN_BLOCK},
                {1, CU_HA_REGS_MIN_BLOCK}};
    _Static_assert(TSR_CUDA_HA_REGS_MAX >= 16, "the first candidate lists 16 groups");
    cu_ha_t *h = ha->impl;
    tsr_cuda_dev_t *cu = tsr_dev_cuda(ha->dev);
    uint32_t nkeys = (uint32_t)ha->spec.nkeys, ncols = (uint32_t)ha->layout.ncols;
    h->regs_block = 0;
    h->rgroups = 0;
    h->local_grid[TSR_CUDA_HA_REGS] = 0;
    for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
        unsigned block = cu_warps(cand[i].block, cu->max_block);
        size_t shmem = tsr_cuda_ha_regs_bytes(cand[i].groups, nkeys, ncols, block);
        if (shmem > cu->shared_optin)
            continue;
        int bps = 0;
        cudaError_t e = tsr_cuda_ha_prepare(TSR_CUDA_HA_REGS, nkeys, block, shmem, &bps);
        if (e != cudaSuccess) {
            cudaGetLastError(); /* as the local kernels: this size does not fit, try a smaller */
            continue;
        }
        if (bps <= 0)
            continue;
        h->regs_block = block;
        h->rgroups = cand[i].groups;
        h->regs_shmem = shmem;
        h->local_grid[TSR_CUDA_HA_REGS] = cu->sm_count * (unsigned)bps;
        return;
    }
}

/* Launch sizes from the device's limits: blocks per multiprocessor from the
 * occupancy calculator, the local table as large as a block's shared memory
 * allows (halved until the kernels can run with it). */
tsr_status_t tsr_hashagg_cuda_configure(tsr_dev_hashagg_t *ha, tsr_error_t *err)
{
    cu_ha_t *h = ha->impl;
    tsr_cuda_dev_t *cu = tsr_dev_cuda(ha->dev);
    uint32_t nkeys = (uint32_t)ha->spec.nkeys, ncols = (uint32_t)ha->layout.ncols;
    int bps = 0;
    const char *env = getenv(CU_HA_ENV);
    h->force = tsr_hashagg_cuda_variant(env);
    if (h->force < -1)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "%s=%s: expected auto, global, lane, warp, coop or regs", CU_HA_ENV,
                             env);
    h->global_block = cu_warps(CU_HA_GLOBAL_BLOCK, cu->max_block);
    cudaError_t e = tsr_cuda_ha_prepare(TSR_CUDA_HA_GLOBAL, nkeys, h->global_block,
                                        TSR_CUDA_HA_GLOBAL_SHMEM, &bps);
    if (e != cudaSuccess)
        return cu_ha_fail(ha, e, "occupancy of the aggregation kernel", err);
    h->global_grid = cu->sm_count * (unsigned)(bps > 0 ? bps : 1);
    h->aux_block = cu_warps(CU_HA_AUX_BLOCK, cu->max_block);
    h->aux_grid =
        cu->sm_count *
        (cu->max_threads_per_sm / h->aux_block ? cu->max_threads_per_sm / h->aux_block : 1);

    h->local_block = cu_warps(CU_HA_LOCAL_BLOCK, cu->max_block);
    for (h->lslots = CU_HA_LOCAL_MAX_SLOTS; h->lslots >= CU_HA_LOCAL_MIN_SLOTS; h->lslots /= 2) {
        size_t shmem = tsr_cuda_ha_local_bytes(h->lslots, nkeys, ncols);
        if (shmem > cu->shared_optin)
            continue;
        int ok = 1;
        for (int k = TSR_CUDA_HA_LOCAL; k <= TSR_CUDA_HA_LOCAL_COOP && ok; k++) {
            e = tsr_cuda_ha_prepare((tsr_cuda_ha_kernel_t)k, nkeys, h->local_block, shmem, &bps);
            if (e != cudaSuccess) {
                cudaGetLastError(); /* this size does not fit: try half */
                ok = 0;
            } else {
                ok = bps > 0;
                h->local_grid[k] = cu->sm_count * (unsigned)bps;
            }
        }
        if (ok) {
            h->local_shmem = shmem;
            break;
        }
    }
    if (h->lslots < CU_HA_LOCAL_MIN_SLOTS) {
        h->lslots = 0; /* the global kernel does everything */
        h->local_grid[TSR_CUDA_HA_LOCAL] = h->local_grid[TSR_CUDA_HA_LOCAL_WARP] = 0;
        h->local_grid[TSR_CUDA_HA_LOCAL_COOP] = 0;
    }
    cu_ha_configure_regs(ha);
    /* batch sizes: at most ~1/4096 (host chunks) and ~1/256 (device launches)
     * of the device's memory per row-byte, within fixed bounds */
    h->chunk = cu_clamp(cu_pow2_floor(cu->total_mem / 4096), (size_t)1 << 16, (size_t)1 << 22);
    h->dev_launch = cu_clamp(cu_pow2_floor(cu->total_mem / 256), (size_t)1 << 16, (size_t)1 << 26);
    return TSR_OK;
}

#else
typedef int tsr_dev_hashagg_cuda_table_not_built; /* TSR_HAVE_CUDA undefined */
#endif /* TSR_HAVE_CUDA */
