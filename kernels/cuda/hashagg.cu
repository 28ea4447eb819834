/*
 * hashagg.cu - hash aggregation kernels for CUDA GPUs: the __global__
 * wrappers around the bodies of hashagg.cuh and their launchers (declared in
 * engine/device/cuda_kernels.h; the host side is engine/device/hashagg_cuda.c).
 *
 * Each body is instantiated twice: for one key column (the common GROUP BY k,
 * where the compiler drops every loop over key columns) and for any count.
 * Views arrive by value as __grid_constant__ parameters, so the bodies read
 * them in place through a pointer without a copy to local memory.
 *
 * Block sizes are bounded (launch bounds) so the compiler keeps each thread
 * within 64 registers: the global kernel runs 256-thread blocks, several per
 * multiprocessor; a local kernel one large block per multiprocessor, because
 * its shared-memory table takes most of the multiprocessor's shared memory;
 * the regs kernel (hashagg_regs.cuh) one block of up to 512 threads with
 * 128 registers each (its per-thread partials take the shared memory).
 */
#include <cuda_runtime.h>

#include "hashagg.cuh"
#include "hashagg_regs.cuh"

#define HA_GLOBAL_MAX_BLOCK 256
#define HA_LOCAL_MAX_BLOCK 1024
/* regs: up to 128 registers a thread; its shared region fits about 512
 * threads, so one block of 512 per multiprocessor */
#define HA_REGS_MAX_BLOCK 512

extern __shared__ uint64_t tsr_k_ha_shared[];

__global__ void __launch_bounds__(HA_GLOBAL_MAX_BLOCK, 4)
    tsr_k_ha_global_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_global_body(&v, tsr_k_ha_shared, 1);
}

__global__ void __launch_bounds__(HA_GLOBAL_MAX_BLOCK, 4)
    tsr_k_ha_global_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_global_body(&v, tsr_k_ha_shared, v.nkeys);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_local_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, 1, HA_MODE_LANE);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_local_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, v.nkeys, HA_MODE_LANE);
}

/* the lane kernels of a plain launch (v.plain: ha_apply_row_plain) */
__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_plain_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, 1, HA_MODE_PLAIN);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_plain_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, v.nkeys, HA_MODE_PLAIN);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_warp_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, 1, HA_MODE_WARP);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_warp_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, v.nkeys, HA_MODE_WARP);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_coop_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, 1, HA_MODE_COOP);
}

__global__ void __launch_bounds__(HA_LOCAL_MAX_BLOCK, 1)
    tsr_k_ha_coop_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_local_body(&v, tsr_k_ha_shared, v.nkeys, HA_MODE_COOP);
}

__global__ void __launch_bounds__(HA_REGS_MAX_BLOCK, 1)
    tsr_k_ha_regs_1(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_regs_body(&v, tsr_k_ha_shared, 1);
}

__global__ void __launch_bounds__(HA_REGS_MAX_BLOCK, 1)
    tsr_k_ha_regs_n(const __grid_constant__ tsr_cuda_ha_view_t v)
{
    ha_regs_body(&v, tsr_k_ha_shared, v.nkeys);
}

__global__ void tsr_k_ha_persist(const __grid_constant__ tsr_cuda_ha_view_t v, uint32_t nblocks)
{
    ha_persist_body(&v, nblocks, v.nkeys);
}

__global__ void tsr_k_ha_rehash(const __grid_constant__ tsr_cuda_ha_rehash_view_t r)
{
    ha_rehash_body(&r);
}

static const void *ha_kernel(tsr_cuda_ha_kernel_t which, uint32_t nkeys)
{
    bool one = nkeys == 1;
    switch (which) {
    case TSR_CUDA_HA_GLOBAL:
        return one ? (const void *)tsr_k_ha_global_1 : (const void *)tsr_k_ha_global_n;
    case TSR_CUDA_HA_LOCAL:
        return one ? (const void *)tsr_k_ha_local_1 : (const void *)tsr_k_ha_local_n;
    case TSR_CUDA_HA_LOCAL_WARP:
        return one ? (const void *)tsr_k_ha_warp_1 : (const void *)tsr_k_ha_warp_n;
    case TSR_CUDA_HA_LOCAL_COOP:
        return one ? (const void *)tsr_k_ha_coop_1 : (const void *)tsr_k_ha_coop_n;
    case TSR_CUDA_HA_REGS:
        return one ? (const void *)tsr_k_ha_regs_1 : (const void *)tsr_k_ha_regs_n;
    default:
        return NULL;
    }
}

static unsigned ha_max_block(tsr_cuda_ha_kernel_t which)
{
    return which == TSR_CUDA_HA_GLOBAL ? HA_GLOBAL_MAX_BLOCK
           : which == TSR_CUDA_HA_REGS ? HA_REGS_MAX_BLOCK
                                       : HA_LOCAL_MAX_BLOCK;
}

extern "C" cudaError_t tsr_cuda_ha_prepare(tsr_cuda_ha_kernel_t which, uint32_t nkeys,
                                           unsigned block, size_t shmem, int *blocks_per_sm)
{
    const void *fn = ha_kernel(which, nkeys);
    *blocks_per_sm = 0;
    if (!fn || block > ha_max_block(which))
        return cudaErrorInvalidValue;
    /* The limit is the function's, not a launch's: raise it to the device's
     * maximum once, so aggregations of different layouts (different shared
     * tables) never undercut each other's launches. */
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess)
        e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess)
        return e;
    if (shmem > (size_t)optin)
        return cudaErrorInvalidValue;
    e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    if (e != cudaSuccess)
        return e;
    e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, fn, (int)block, shmem);
    if (e != cudaSuccess || which != TSR_CUDA_HA_LOCAL)
        return e;
    /* a plain launch runs the lane kernel's twin (tsr_cuda_ha_update): the
     * same limit, and the grid fits both */
    const void *twin = nkeys == 1 ? (const void *)tsr_k_ha_plain_1 : (const void *)tsr_k_ha_plain_n;
    int twin_bps = 0;
    e = cudaFuncSetAttribute(twin, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    if (e == cudaSuccess)
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&twin_bps, twin, (int)block, shmem);
    if (e == cudaSuccess && twin_bps < *blocks_per_sm)
        *blocks_per_sm = twin_bps;
    return e;
}

extern "C" cudaError_t tsr_cuda_ha_update(const tsr_cuda_ha_view_t *v, tsr_cuda_ha_kernel_t which,
                                          unsigned grid, unsigned block, size_t shmem,
                                          cudaStream_t s)
{
    bool one = v->nkeys == 1;
    switch (which) {
    case TSR_CUDA_HA_GLOBAL:
        if (one)
            tsr_k_ha_global_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_ha_global_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_HA_LOCAL:
        if (one && v->plain)
            tsr_k_ha_plain_1<<<grid, block, shmem, s>>>(*v);
        else if (v->plain)
            tsr_k_ha_plain_n<<<grid, block, shmem, s>>>(*v);
        else if (one)
            tsr_k_ha_local_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_ha_local_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_HA_LOCAL_WARP:
        if (one)
            tsr_k_ha_warp_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_ha_warp_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_HA_LOCAL_COOP:
        if (one)
            tsr_k_ha_coop_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_ha_coop_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_HA_REGS:
        if (one)
            tsr_k_ha_regs_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_ha_regs_n<<<grid, block, shmem, s>>>(*v);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_ha_persist(const tsr_cuda_ha_view_t *v, uint32_t nblocks,
                                           unsigned grid, unsigned block, cudaStream_t s)
{
    tsr_k_ha_persist<<<grid, block, 0, s>>>(*v, nblocks);
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_ha_rehash(const tsr_cuda_ha_rehash_view_t *r, unsigned grid,
                                          unsigned block, cudaStream_t s)
{
    tsr_k_ha_rehash<<<grid, block, 0, s>>>(*r);
    return cudaGetLastError();
}
