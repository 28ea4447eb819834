/*
 * graph_cuda_xform.cu - the GPU launcher of the "xform" test kind
 * (graph_cuda_xform.cuh), linked into test_graph_cuda where nvcc is found;
 * the emulator build defines the same launcher in the test itself.
 */
#include <cuda_runtime.h>

#include "graph_cuda_xform.cuh"

__global__ void tsr_test_k_xform(const __grid_constant__ xform_view_t v)
{
    xform_body(&v);
}

/* Queues the kernel on s; block 0 = 256 threads (a test passes an
 * impossible block size to make the launch fail). Returns the launch's
 * error without clearing it (cudaPeekAtLastError), so a caller that drops
 * it leaves it for the engine's check. */
extern "C" cudaError_t graph_cuda_xform_launch(const uint8_t *in, uint8_t *out, uint64_t n,
                                               unsigned block, cudaStream_t s)
{
    xform_view_t v = {in, out, n};
    if (!block)
        block = 256;
    uint64_t blocks = (n + block - 1) / block;
    if (blocks > 1024)
        blocks = 1024; /* grid-stride beyond that */
    tsr_test_k_xform<<<(unsigned)(blocks ? blocks : 1), block, 0, s>>>(v);
    return cudaPeekAtLastError();
}
