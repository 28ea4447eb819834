/*
 * scan.cu - the exclusive prefix sum of kernels/cuda/scan.cuh as three
 * launches (reduce, spine, down) behind tsr_cuda_scan (cuda_kernels.h).
 */
#include <cuda_runtime.h>

#include "scan.cuh"

#define SCAN_MAX_BLOCK 1024

extern __shared__ uint64_t tsr_k_scan_shared[];

__global__ void __launch_bounds__(SCAN_MAX_BLOCK)
    tsr_k_scan_reduce(const __grid_constant__ tsr_cuda_scan_view_t v)
{
    scan_reduce_body(&v, tsr_k_scan_shared);
}

__global__ void __launch_bounds__(SCAN_MAX_BLOCK)
    tsr_k_scan_spine(const __grid_constant__ tsr_cuda_scan_view_t v)
{
    scan_spine_body(&v, tsr_k_scan_shared);
}

__global__ void __launch_bounds__(SCAN_MAX_BLOCK)
    tsr_k_scan_down(const __grid_constant__ tsr_cuda_scan_view_t v)
{
    scan_down_body(&v, tsr_k_scan_shared);
}

extern "C" cudaError_t tsr_cuda_scan(const tsr_cuda_scan_view_t *v, unsigned grid, unsigned block,
                                     cudaStream_t s)
{
    if (block > SCAN_MAX_BLOCK || block < 32 || (block & (block - 1)) || !grid)
        return cudaErrorInvalidValue;
    size_t shmem = (33 + (size_t)block * SCAN_ITEMS) * sizeof(uint64_t);
    unsigned g = v->ntiles < grid ? (unsigned)(v->ntiles ? v->ntiles : 1) : grid;
    if (v->ntiles > 1)
        tsr_k_scan_reduce<<<g, block, shmem, s>>>(*v);
    else if (v->ntiles == 1)
        /* one tile: its offset is 0 and the spine only writes the total */
        tsr_k_scan_reduce<<<1, block, shmem, s>>>(*v);
    tsr_k_scan_spine<<<1, block, 33 * sizeof(uint64_t), s>>>(*v);
    if (v->ntiles)
        tsr_k_scan_down<<<g, block, shmem, s>>>(*v);
    return cudaGetLastError();
}
