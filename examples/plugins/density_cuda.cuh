/*
 * density_cuda.cuh - the kernel body of the "density" task's CUDA
 * implementation (density_cuda.h drives it, density_cuda.cu compiles it for
 * the GPU). Written in the subset of kernels/cuda/compat.cuh, so Tessera's
 * tests also run the very same body on the CUDA emulator (tests/cudaemu).
 *
 * Row i: NULL where the population is NULL or the area is not positive (as
 * density_task.h decides), else population / area. CUDA rounds the int64 to
 * double conversion and the double division as C does (round to nearest),
 * so every density equals the CPU's bit for bit. Grid-stride: any grid
 * covers any n.
 */
#ifndef TSR_EXAMPLE_DENSITY_CUDA_CUH
#define TSR_EXAMPLE_DENSITY_CUDA_CUH

#include "compat.cuh"

typedef struct density_cuda_view {
    const int64_t *pop;
    const double *area;     /* 0.0 where NULL */
    const uint8_t *pop_null;
    double *out;
    uint8_t *nulls;
    uint64_t n;
} density_cuda_view_t;

TSR_DEV void density_body(const density_cuda_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; i < v->n; i += step) {
        double a = v->area[i];
        uint8_t null = v->pop_null[i] || a <= 0.0;
        v->nulls[i] = null;
        v->out[i] = null ? 0.0 : (double)v->pop[i] / a;
    }
}

#endif /* TSR_EXAMPLE_DENSITY_CUDA_CUH */
