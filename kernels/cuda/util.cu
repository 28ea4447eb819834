/*
 * util.cu - small kernels of the CUDA backend (engine/device/cuda.c): the
 * pattern fill of tsr_dev_fill, and the check that this binary carries code
 * for the device at hand.
 */
#include <cuda_runtime.h>

#include "fill.cuh"

__global__ void tsr_k_fill(const __grid_constant__ tsr_cuda_fill_view_t f)
{
    fill_body(&f);
}

extern "C" cudaError_t tsr_cuda_fill(void *dst, size_t size, const void *pattern, size_t psize,
                                     cudaStream_t s)
{
    tsr_cuda_fill_view_t f;
    tsr_cuda_fill_plan(&f, dst, size, pattern, psize);
    uint64_t blocks = (f.n + 255) / 256;
    if (blocks > 4096)
        blocks = 4096; /* grid-stride beyond that */
    tsr_k_fill<<<(unsigned)(blocks ? blocks : 1), 256, 0, s>>>(f);
    return cudaGetLastError();
}

extern "C" cudaError_t tsr_cuda_kernels_check(void)
{
    struct cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, (const void *)tsr_k_fill);
}
