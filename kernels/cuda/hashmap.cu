/*
 * hashmap.cu - static map kernels for CUDA GPUs (bodies in hashmap.cuh, host
 * side in engine/device/hashmap_cuda.c): bulk upsert, bulk lookup, rehash.
 */
#include <cuda_runtime.h>

#include "hashmap.cuh"

#define MAP_MAX_BLOCK 256

extern __shared__ uint64_t tsr_k_map_shared[];

__global__ void __launch_bounds__(MAP_MAX_BLOCK)
    tsr_k_map_insert(const __grid_constant__ tsr_cuda_map_view_t v)
{
    map_insert_body(&v, tsr_k_map_shared);
}

__global__ void __launch_bounds__(MAP_MAX_BLOCK)
    tsr_k_map_find(const __grid_constant__ tsr_cuda_map_view_t v)
{
    map_find_body(&v);
}

__global__ void __launch_bounds__(MAP_MAX_BLOCK)
    tsr_k_map_rehash(const __grid_constant__ tsr_cuda_map_view_t from,
                     const __grid_constant__ tsr_cuda_map_view_t to)
{
    map_rehash_body(&from, &to);
}

extern "C" cudaError_t tsr_cuda_map_insert_launch(const tsr_cuda_map_view_t *v, unsigned grid,
                                                  unsigned block, cudaStream_t s)
{
    if (block > MAP_MAX_BLOCK)
        return cudaErrorInvalidValue;
    tsr_k_map_insert<<<grid, block, 8, s>>>(*v);
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_map_find_launch(const tsr_cuda_map_view_t *v, unsigned grid,
                                                unsigned block, cudaStream_t s)
{
    if (block > MAP_MAX_BLOCK)
        return cudaErrorInvalidValue;
    tsr_k_map_find<<<grid, block, 0, s>>>(*v);
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_map_rehash_launch(const tsr_cuda_map_view_t *from,
                                                  const tsr_cuda_map_view_t *to, unsigned grid,
                                                  unsigned block, cudaStream_t s)
{
    if (block > MAP_MAX_BLOCK)
        return cudaErrorInvalidValue;
    tsr_k_map_rehash<<<grid, block, 0, s>>>(*from, *to);
    return cudaGetLastError();
}
