/*
 * hashjoin.cu - hash join kernels for CUDA GPUs: the __global__ wrappers
 * around the bodies of hashjoin.cuh and their launcher (cuda_kernels.h; the
 * host side is engine/device/hashjoin_cuda.c).
 */
#include <cuda_runtime.h>

#include "hashjoin.cuh"

#define JOIN_MAX_BLOCK 256

__global__ void __launch_bounds__(JOIN_MAX_BLOCK)
    tsr_k_join_insert(const __grid_constant__ tsr_cuda_join_view_t v)
{
    join_insert_body(&v);
}

__global__ void __launch_bounds__(JOIN_MAX_BLOCK)
    tsr_k_join_scatter(const __grid_constant__ tsr_cuda_join_view_t v)
{
    join_scatter_body(&v);
}

__global__ void __launch_bounds__(JOIN_MAX_BLOCK)
    tsr_k_join_finish(const __grid_constant__ tsr_cuda_join_view_t v)
{
    join_finish_body(&v);
}

__global__ void __launch_bounds__(JOIN_MAX_BLOCK)
    tsr_k_join_probe(const __grid_constant__ tsr_cuda_join_view_t v)
{
    join_probe_body(&v);
}

__global__ void __launch_bounds__(JOIN_MAX_BLOCK)
    tsr_k_join_write(const __grid_constant__ tsr_cuda_join_view_t v)
{
    join_write_body(&v);
}

extern "C" cudaError_t tsr_cuda_join(const tsr_cuda_join_view_t *v, tsr_cuda_join_kernel_t which,
                                     unsigned grid, unsigned block, cudaStream_t s)
{
    if (block > JOIN_MAX_BLOCK || !grid)
        return cudaErrorInvalidValue;
    switch (which) {
    case TSR_CUDA_JOIN_INSERT:
        tsr_k_join_insert<<<grid, block, 0, s>>>(*v);
        break;
    case TSR_CUDA_JOIN_SCATTER:
        tsr_k_join_scatter<<<grid, block, 0, s>>>(*v);
        break;
    case TSR_CUDA_JOIN_FINISH:
        tsr_k_join_finish<<<grid, block, 0, s>>>(*v);
        break;
    case TSR_CUDA_JOIN_PROBE:
        tsr_k_join_probe<<<grid, block, 0, s>>>(*v);
        break;
    case TSR_CUDA_JOIN_WRITE:
        tsr_k_join_write<<<grid, block, 0, s>>>(*v);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
