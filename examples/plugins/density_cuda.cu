/*
 * density_cuda.cu - the GPU side of the "density" task's CUDA
 * implementation: the kernel (body in density_cuda.cuh) and its launcher,
 * called by the host function in density_cuda.h. Compiled by nvcc into
 * density_cuda_plugin (the CMake target, built where nvcc is found):
 *
 *   nvcc -c -Xcompiler -fPIC -I kernels/cuda -o density_cuda.o examples/plugins/density_cuda.cu
 *   cc -shared -fPIC -I include -I /usr/local/cuda/include -o density_cuda_plugin.so \
 *      examples/plugins/density_cuda_plugin.c density_cuda.o \
 *      -L /usr/local/cuda/lib64 -lcudart_static -lstdc++ -ldl -lrt -lpthread
 */
#include <cuda_runtime.h>

#include "density_cuda.cuh"

__global__ void density_k(const __grid_constant__ density_cuda_view_t v)
{
    density_body(&v);
}

/* Queues the kernel over n rows on s; returns the launch's error. Hidden:
 * see density_cuda.h. */
extern "C" __attribute__((visibility("hidden"))) cudaError_t
density_cuda_launch(const int64_t *pop, const double *area, const uint8_t *pop_null, double *out,
                    uint8_t *nulls, uint64_t n, cudaStream_t s)
{
    density_cuda_view_t v = {pop, area, pop_null, out, nulls, n};
    uint64_t blocks = (n + 255) / 256;
    if (blocks > 4096)
        blocks = 4096; /* grid-stride beyond that */
    density_k<<<(unsigned)(blocks ? blocks : 1), 256, 0, s>>>(v);
    return cudaGetLastError();
}
