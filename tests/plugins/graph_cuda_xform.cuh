/*
 * graph_cuda_xform.cuh - the kernel of the "xform" test kind of
 * tests/unit/test_graph_cuda.c: out[i] = (in[i] * 3 + 7) ^ (i * 31), bytes
 * (the model of test_graph_opencl.c). Written in the subset of compat.cuh,
 * so the same body runs on the GPU (graph_cuda_xform.cu, compiled by nvcc)
 * and on the CUDA emulator (the test's emulator build). Grid-stride: any
 * grid covers any n.
 */
#ifndef TSR_TEST_GRAPH_CUDA_XFORM_CUH
#define TSR_TEST_GRAPH_CUDA_XFORM_CUH

#include "compat.cuh"

typedef struct xform_view {
    const uint8_t *in;
    uint8_t *out;
    uint64_t n;
} xform_view_t;

TSR_DEV void xform_body(const xform_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; i < v->n; i += step)
        v->out[i] = (uint8_t)((uint8_t)(v->in[i] * 3u + 7u) ^ (uint8_t)(i * 31u));
}

#endif /* TSR_TEST_GRAPH_CUDA_XFORM_CUH */
