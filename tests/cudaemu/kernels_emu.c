/*
 * kernels_emu.c (test emulator) - the launchers of engine/device/
 * cuda_kernels.h for the emulator: the very kernel bodies of
 * kernels/cuda/{*.cuh} (compiled here as C, see compat.cuh and emu.h), queued
 * on emulated streams with the grid, block and shared-memory sizes the host
 * code chose. Occupancy follows the emulated device's limits (emu.h).
 */
#include "device/cuda_kernels.h"
#include "emu.h"
#include "fill.cuh"
#include "filter.cuh"
#include "hashagg.cuh"
#include "hashagg_regs.cuh"
#include "hashjoin.cuh"
#include "hashmap.cuh"
#include "partition.cuh"
#include "scan.cuh"

static void emu_ha_global(const void *a, void *sh)
{
    const tsr_cuda_ha_view_t *v = a;
    ha_global_body(v, sh, v->nkeys);
}

static void emu_ha_local(const void *a, void *sh)
{
    const tsr_cuda_ha_view_t *v = a;
    ha_local_body(v, sh, v->nkeys, v->plain ? HA_MODE_PLAIN : HA_MODE_LANE);
}

static void emu_ha_warp(const void *a, void *sh)
{
    const tsr_cuda_ha_view_t *v = a;
    ha_local_body(v, sh, v->nkeys, HA_MODE_WARP);
}

static void emu_ha_coop(const void *a, void *sh)
{
    const tsr_cuda_ha_view_t *v = a;
    ha_local_body(v, sh, v->nkeys, HA_MODE_COOP);
}

static void emu_ha_regs(const void *a, void *sh)
{
    const tsr_cuda_ha_view_t *v = a;
    ha_regs_body(v, sh, v->nkeys);
}

typedef struct emu_persist_args {
    tsr_cuda_ha_view_t v;
    uint32_t nblocks;
} emu_persist_args_t;

static void emu_ha_persist(const void *a, void *sh)
{
    const emu_persist_args_t *p = a;
    ha_persist_body(&p->v, p->nblocks, p->v.nkeys);
}

static void emu_ha_rehash(const void *a, void *sh)
{
    ha_rehash_body(a);
}

cudaError_t tsr_cuda_ha_prepare(tsr_cuda_ha_kernel_t which, uint32_t nkeys, unsigned block,
                                size_t shmem, int *blocks_per_sm)
{
    *blocks_per_sm = 0;
    if ((unsigned)which >= TSR_CUDA_HA_NKERNELS || shmem > TSR_EMU_SHARED_PER_BLOCK || !block)
        return cudaErrorInvalidValue;
    if (block > TSR_EMU_MAX_BLOCK)
        return cudaSuccess;
    int by_threads = TSR_EMU_THREADS_PER_SM / (int)block;
    int by_shared = shmem ? (int)(TSR_EMU_SHARED_PER_SM / shmem) : by_threads;
    *blocks_per_sm = by_threads < by_shared ? by_threads : by_shared;
    return cudaSuccess;
}

cudaError_t tsr_cuda_ha_update(const tsr_cuda_ha_view_t *v, tsr_cuda_ha_kernel_t which,
                               unsigned grid, unsigned block, size_t shmem, cudaStream_t s)
{
    static const tsr_emu_kernel_fn fns[TSR_CUDA_HA_NKERNELS] = {
        [TSR_CUDA_HA_GLOBAL] = emu_ha_global,   [TSR_CUDA_HA_LOCAL] = emu_ha_local,
        [TSR_CUDA_HA_LOCAL_WARP] = emu_ha_warp, [TSR_CUDA_HA_LOCAL_COOP] = emu_ha_coop,
        [TSR_CUDA_HA_REGS] = emu_ha_regs,
    };
    if ((unsigned)which >= TSR_CUDA_HA_NKERNELS)
        return cudaErrorInvalidValue;
    return tsr_emu_launch(s, grid, block, shmem, fns[which], v, sizeof(*v));
}

cudaError_t tsr_cuda_ha_persist(const tsr_cuda_ha_view_t *v, uint32_t nblocks, unsigned grid,
                                unsigned block, cudaStream_t s)
{
    emu_persist_args_t a = {*v, nblocks};
    return tsr_emu_launch(s, grid, block, 0, emu_ha_persist, &a, sizeof(a));
}

cudaError_t tsr_cuda_ha_rehash(const tsr_cuda_ha_rehash_view_t *r, unsigned grid, unsigned block,
                               cudaStream_t s)
{
    return tsr_emu_launch(s, grid, block, 0, emu_ha_rehash, r, sizeof(*r));
}

/* ---- static map ---------------------------------------------------------------------- */

static void emu_map_insert(const void *a, void *sh)
{
    map_insert_body(a, sh);
}

static void emu_map_find(const void *a, void *sh)
{
    map_find_body(a);
}

typedef struct emu_map_pair {
    tsr_cuda_map_view_t from, to;
} emu_map_pair_t;

static void emu_map_rehash(const void *a, void *sh)
{
    const emu_map_pair_t *p = a;
    map_rehash_body(&p->from, &p->to);
}

cudaError_t tsr_cuda_map_insert_launch(const tsr_cuda_map_view_t *v, unsigned grid, unsigned block,
                                       cudaStream_t s)
{
    return tsr_emu_launch(s, grid, block, 8, emu_map_insert, v, sizeof(*v));
}

cudaError_t tsr_cuda_map_find_launch(const tsr_cuda_map_view_t *v, unsigned grid, unsigned block,
                                     cudaStream_t s)
{
    return tsr_emu_launch(s, grid, block, 0, emu_map_find, v, sizeof(*v));
}

cudaError_t tsr_cuda_map_rehash_launch(const tsr_cuda_map_view_t *from,
                                       const tsr_cuda_map_view_t *to, unsigned grid, unsigned block,
                                       cudaStream_t s)
{
    emu_map_pair_t p = {*from, *to};
    return tsr_emu_launch(s, grid, block, 0, emu_map_rehash, &p, sizeof(p));
}

/* ---- scan (the three launches of scan.cu) ------------------------------------------- */

static void emu_scan_reduce(const void *a, void *sh)
{
    scan_reduce_body(a, sh);
}

static void emu_scan_spine(const void *a, void *sh)
{
    scan_spine_body(a, sh);
}

static void emu_scan_down(const void *a, void *sh)
{
    scan_down_body(a, sh);
}

cudaError_t tsr_cuda_scan(const tsr_cuda_scan_view_t *v, unsigned grid, unsigned block,
                          cudaStream_t s)
{
    if (block < 32 || (block & (block - 1)) || !grid)
        return cudaErrorInvalidValue;
    size_t shmem = (33 + (size_t)block * SCAN_ITEMS) * sizeof(uint64_t);
    unsigned g = v->ntiles < grid ? (unsigned)(v->ntiles ? v->ntiles : 1) : grid;
    cudaError_t e = cudaSuccess;
    if (v->ntiles)
        e = tsr_emu_launch(s, g, block, shmem, emu_scan_reduce, v, sizeof(*v));
    if (e == cudaSuccess)
        e = tsr_emu_launch(s, 1, block, 33 * sizeof(uint64_t), emu_scan_spine, v, sizeof(*v));
    if (e == cudaSuccess && v->ntiles)
        e = tsr_emu_launch(s, g, block, shmem, emu_scan_down, v, sizeof(*v));
    return e;
}

/* ---- hash join ------------------------------------------------------------------------ */

static void emu_join_insert(const void *a, void *sh)
{
    join_insert_body(a);
}

static void emu_join_scatter(const void *a, void *sh)
{
    join_scatter_body(a);
}

static void emu_join_finish(const void *a, void *sh)
{
    join_finish_body(a);
}

static void emu_join_probe(const void *a, void *sh)
{
    join_probe_body(a);
}

static void emu_join_write(const void *a, void *sh)
{
    join_write_body(a);
}

cudaError_t tsr_cuda_join(const tsr_cuda_join_view_t *v, tsr_cuda_join_kernel_t which,
                          unsigned grid, unsigned block, cudaStream_t s)
{
    static const tsr_emu_kernel_fn fns[TSR_CUDA_JOIN_NKERNELS] = {
        [TSR_CUDA_JOIN_INSERT] = emu_join_insert, [TSR_CUDA_JOIN_SCATTER] = emu_join_scatter,
        [TSR_CUDA_JOIN_FINISH] = emu_join_finish, [TSR_CUDA_JOIN_PROBE] = emu_join_probe,
        [TSR_CUDA_JOIN_WRITE] = emu_join_write,
    };
    if ((unsigned)which >= TSR_CUDA_JOIN_NKERNELS)
        return cudaErrorInvalidValue;
    return tsr_emu_launch(s, grid, block, 0, fns[which], v, sizeof(*v));
}

/* ---- filter --------------------------------------------------------------------------- */

static void emu_filter_count(const void *a, void *sh)
{
    filter_count_body(a, sh);
}

static void emu_filter_scatter(const void *a, void *sh)
{
    filter_scatter_body(a, sh);
}

cudaError_t tsr_cuda_filter_count(const tsr_cuda_filter_view_t *v, unsigned grid, unsigned block,
                                  cudaStream_t s)
{
    return tsr_emu_launch(s, grid, block, 33 * sizeof(uint64_t), emu_filter_count, v, sizeof(*v));
}

cudaError_t tsr_cuda_filter_scatter(const tsr_cuda_filter_view_t *v, unsigned grid, unsigned block,
                                    cudaStream_t s)
{
    return tsr_emu_launch(s, grid, block, 33 * sizeof(uint64_t), emu_filter_scatter, v, sizeof(*v));
}

/* ---- partitioning --------------------------------------------------------------------- */

static void emu_part_hist(const void *a, void *sh)
{
    const tsr_cuda_part_view_t *v = a;
    part_hist_body(v, sh, v->nkeys);
}

static void emu_part_scatter(const void *a, void *sh)
{
    const tsr_cuda_part_view_t *v = a;
    part_scatter_body(v, sh, v->nkeys);
}

static void emu_part_offsets(const void *a, void *sh)
{
    part_offsets_body(a);
}

cudaError_t tsr_cuda_part(const tsr_cuda_part_view_t *v, tsr_cuda_part_kernel_t which,
                          unsigned grid, unsigned block, size_t shmem, cudaStream_t s)
{
    static const tsr_emu_kernel_fn fns[TSR_CUDA_PART_NKERNELS] = {
        [TSR_CUDA_PART_HIST] = emu_part_hist,
        [TSR_CUDA_PART_SCATTER] = emu_part_scatter,
        [TSR_CUDA_PART_OFFSETS] = emu_part_offsets,
    };
    if ((unsigned)which >= TSR_CUDA_PART_NKERNELS)
        return cudaErrorInvalidValue;
    return tsr_emu_launch(s, grid, block, shmem, fns[which], v, sizeof(*v));
}

/* ---- utilities ------------------------------------------------------------------------ */

static void emu_fill(const void *a, void *sh)
{
    fill_body(a);
}

cudaError_t tsr_cuda_fill(void *dst, size_t size, const void *pattern, size_t psize, cudaStream_t s)
{
    tsr_cuda_fill_view_t f;
    tsr_cuda_fill_plan(&f, dst, size, pattern, psize);
    uint64_t blocks = (f.n + 63) / 64;
    if (blocks > 8)
        blocks = 8;
    return tsr_emu_launch(s, (unsigned)(blocks ? blocks : 1), 64, 0, emu_fill, &f, sizeof(f));
}

cudaError_t tsr_cuda_kernels_check(void)
{
    return cudaSuccess;
}
