/*
 * density_cuda.h - the CUDA implementation of the "density" user task
 * (density_task.h has the CPU one, density_opencl.h the OpenCL one). Like a
 * StarPU codelet's cuda_func it is a host function that drives the device:
 * it gathers the input columns, copies them to device memory on the task's
 * stream (tsr_task_cuda), launches the kernel (density_cuda.cu, body in
 * density_cuda.cuh), copies the result back, waits for the stream and
 * writes the same table as density_task. The engine calls it instead of
 * density_task when the graph's context has a CUDA device
 * (tsr_context_set_device(ctx, "cuda0"), `tessera worker --device cuda0`).
 * Same results as the CPU, bit for bit (see density_cuda.cuh).
 *
 * CUDA errors go through tsr_task_cuda_check, which makes the runtime's
 * error string the task's message. Include it only where the CUDA runtime
 * header is available (density_cuda_plugin.c, built where nvcc is found);
 * the launcher comes from density_cuda.cu (or, in Tessera's tests, from the
 * CUDA emulator). If tsr_task_arg is not NULL (in-process only), it stores
 * "cuda" there.
 */
#ifndef TSR_EXAMPLE_DENSITY_CUDA_H
#define TSR_EXAMPLE_DENSITY_CUDA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "density_task.h" /* the helpers shared by the implementations */
#include "tessera/graph.h"

/* density_cuda.cu: queues the kernel over n rows on s. Hidden: a plugin
 * calls its own copy even when the host program exports one of the same
 * name (a program's exported symbols come first in symbol lookup). */
__attribute__((visibility("hidden"))) cudaError_t density_cuda_launch(const int64_t *pop, const double *area, const uint8_t *pop_null,
                                double *out, uint8_t *nulls, uint64_t n, cudaStream_t s);

static tsr_status_t density_cuda(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *const *out, size_t nout)
{
    size_t n = 0;
    tsr_status_t rc = density_begin(tc, in, nin, nout, "cuda", &n);
    if (rc != TSR_OK)
        return rc;
    void *vs = NULL;
    if (tsr_task_cuda(tc, &vs, NULL) != TSR_OK)
        return tsr_task_fail(tc, TSR_ERR_INTERNAL, "density_cuda: not on a CUDA device");
    cudaStream_t s = (cudaStream_t)vs;
    const char **names = malloc((n + 1) * sizeof(*names));
    int64_t *pop = malloc((n + 1) * sizeof(*pop));
    double *area = malloc((n + 1) * sizeof(*area));
    double *density = malloc((n + 1) * sizeof(*density));
    uint8_t *pop_null = malloc(n + 1);
    bool *nulls = malloc((n + 1) * sizeof(*nulls));
    char *d = NULL; /* device memory: pop, area, out (8n each), pop_null, nulls (n each) */
    rc = TSR_ERR_NOMEM;
    if (!names || !pop || !area || !density || !pop_null || !nulls)
        goto out;
    density_gather(in[0], n, names, pop, pop_null, area);
    if (n > 0) {
        size_t w = n * sizeof(double);
        if ((rc = tsr_task_cuda_check(tc, cudaMalloc((void **)&d, 3 * w + 2 * n),
                                      "cudaMalloc")) != TSR_OK)
            goto out;
        int64_t *d_pop = (int64_t *)d;
        double *d_area = (double *)(d + w), *d_out = (double *)(d + 2 * w);
        uint8_t *d_pop_null = (uint8_t *)(d + 3 * w), *d_nulls = d_pop_null + n;
        if ((rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(d_pop, pop, w, cudaMemcpyHostToDevice, s),
                                      "cudaMemcpyAsync (population)")) != TSR_OK ||
            (rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(d_area, area, w, cudaMemcpyHostToDevice, s),
                                      "cudaMemcpyAsync (area)")) != TSR_OK ||
            (rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(d_pop_null, pop_null, n,
                                                          cudaMemcpyHostToDevice, s),
                                      "cudaMemcpyAsync (NULLs)")) != TSR_OK ||
            (rc = tsr_task_cuda_check(tc, density_cuda_launch(d_pop, d_area, d_pop_null, d_out,
                                                              d_nulls, n, s),
                                      "density kernel launch")) != TSR_OK ||
            (rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(density, d_out, w,
                                                          cudaMemcpyDeviceToHost, s),
                                      "cudaMemcpyAsync (density)")) != TSR_OK ||
            /* bool is one byte holding 0 or 1: the kernel's uint8 flags as they are */
            (rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(nulls, d_nulls, n,
                                                          cudaMemcpyDeviceToHost, s),
                                      "cudaMemcpyAsync (result NULLs)")) != TSR_OK ||
            (rc = tsr_task_cuda_check(tc, cudaStreamSynchronize(s), "cudaStreamSynchronize")) !=
                TSR_OK)
            goto out;
    }
    rc = density_write(tc, out[0], n, names, density, nulls);
out:
    if (d) {
        /* after an error copies may still be queued: wait before freeing
         * (the engine waits too, but the host buffers go below) */
        cudaStreamSynchronize(s);
        cudaFree(d);
    }
    free(names);
    free(pop);
    free(area);
    free(density);
    free(pop_null);
    free(nulls);
    return rc;
}

#endif /* TSR_EXAMPLE_DENSITY_CUDA_H */
