/*
 * filter.cu - filter kernels for CUDA GPUs: the __global__ wrappers around
 * the bodies of filter.cuh and their launchers (cuda_kernels.h; the host
 * side is engine/device/filter_cuda.c).
 */
#include <cuda_runtime.h>

#include "filter.cuh"

#define FILTER_MAX_BLOCK 256

extern __shared__ uint64_t tsr_k_filter_shared[];

__global__ void __launch_bounds__(FILTER_MAX_BLOCK)
    tsr_k_filter_count(const __grid_constant__ tsr_cuda_filter_view_t v)
{
    filter_count_body(&v, tsr_k_filter_shared);
}

__global__ void __launch_bounds__(FILTER_MAX_BLOCK)
    tsr_k_filter_scatter(const __grid_constant__ tsr_cuda_filter_view_t v)
{
    filter_scatter_body(&v, tsr_k_filter_shared);
}

extern "C" cudaError_t tsr_cuda_filter_count(const tsr_cuda_filter_view_t *v, unsigned grid,
                                             unsigned block, cudaStream_t s)
{
    if (block > FILTER_MAX_BLOCK || !grid)
        return cudaErrorInvalidValue;
    tsr_k_filter_count<<<grid, block, 33 * sizeof(uint64_t), s>>>(*v);
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_filter_scatter(const tsr_cuda_filter_view_t *v, unsigned grid,
                                               unsigned block, cudaStream_t s)
{
    if (block > FILTER_MAX_BLOCK || !grid)
        return cudaErrorInvalidValue;
    tsr_k_filter_scatter<<<grid, block, 33 * sizeof(uint64_t), s>>>(*v);
    return cudaGetLastError();
}
