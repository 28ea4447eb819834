/*
 * partition.cu - hash partitioning kernels for CUDA GPUs: the __global__
 * wrappers around the bodies of partition.cuh, instantiated for one key
 * column (or caller hashes) and for any count, and their launcher
 * (cuda_kernels.h; the host side is engine/device/partition_cuda.c).
 */
#include <cuda_runtime.h>

#include "partition.cuh"

#define PART_MAX_BLOCK 256

extern __shared__ uint32_t tsr_k_part_shared[];

__global__ void __launch_bounds__(PART_MAX_BLOCK)
    tsr_k_part_hist_1(const __grid_constant__ tsr_cuda_part_view_t v)
{
    part_hist_body(&v, tsr_k_part_shared, 1);
}

__global__ void __launch_bounds__(PART_MAX_BLOCK)
    tsr_k_part_hist_n(const __grid_constant__ tsr_cuda_part_view_t v)
{
    part_hist_body(&v, tsr_k_part_shared, v.nkeys);
}

__global__ void __launch_bounds__(PART_MAX_BLOCK)
    tsr_k_part_scatter_1(const __grid_constant__ tsr_cuda_part_view_t v)
{
    part_scatter_body(&v, tsr_k_part_shared, 1);
}

__global__ void __launch_bounds__(PART_MAX_BLOCK)
    tsr_k_part_scatter_n(const __grid_constant__ tsr_cuda_part_view_t v)
{
    part_scatter_body(&v, tsr_k_part_shared, v.nkeys);
}

__global__ void __launch_bounds__(PART_MAX_BLOCK)
    tsr_k_part_offsets(const __grid_constant__ tsr_cuda_part_view_t v)
{
    part_offsets_body(&v);
}

extern "C" cudaError_t tsr_cuda_part(const tsr_cuda_part_view_t *v, tsr_cuda_part_kernel_t which,
                                     unsigned grid, unsigned block, size_t shmem, cudaStream_t s)
{
    if (block > PART_MAX_BLOCK || !grid || shmem > 48u * 1024u)
        return cudaErrorInvalidValue;
    int one = v->nkeys == 1;
    switch (which) {
    case TSR_CUDA_PART_HIST:
        if (one)
            tsr_k_part_hist_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_part_hist_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_PART_SCATTER:
        if (one)
            tsr_k_part_scatter_1<<<grid, block, shmem, s>>>(*v);
        else
            tsr_k_part_scatter_n<<<grid, block, shmem, s>>>(*v);
        break;
    case TSR_CUDA_PART_OFFSETS:
        tsr_k_part_offsets<<<grid, block, 0, s>>>(*v);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}
