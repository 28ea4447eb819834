/*
 * density_opencl.h - the OpenCL implementation of the "density" user task
 * (density_task.h has the CPU one), for examples/graph_example.c and its
 * plugin. Like a StarPU codelet's opencl_func it is a host function that
 * drives the device: it gathers the input columns, runs a kernel compiled
 * from the source below (tsr_task_opencl_program: built at first use, then
 * cached by the graph; a build error becomes the task's message), reads the
 * result back and writes the same table as density_task. The engine calls it
 * instead of density_task when the graph's context has an OpenCL device
 * (tsr_context_set_device(ctx, "opencl"), `tessera worker --device opencl0`).
 *
 * Same results: OpenCL rounds double division and long-to-double conversion
 * as C does (correctly rounded, round to nearest), so each density equals the
 * CPU one bit for bit; NULL where the population is NULL or the area is not
 * positive, as on the CPU.
 *
 * Built only where the OpenCL header is found (DENSITY_HAVE_OPENCL); the cl*
 * functions come from the host program (the tessera binary links libOpenCL).
 * If tsr_task_arg is not NULL (in-process only), the function that ran
 * stores its device word there ("cpu" / "opencl").
 */
#ifndef TSR_EXAMPLE_DENSITY_OPENCL_H
#define TSR_EXAMPLE_DENSITY_OPENCL_H

#if defined(__has_include)
#if __has_include(<CL/cl.h>) && !defined(TSR_NO_OPENCL)
#define DENSITY_HAVE_OPENCL 1
#endif
#endif

#ifdef DENSITY_HAVE_OPENCL

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "density_task.h" /* the helpers shared by the implementations */
#include "tessera/graph.h"

static const char DENSITY_CL[] =
    "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n"
    "__kernel void density(__global const long *pop, __global const double *area,\n"
    "                      __global const uchar *pop_null, __global double *out,\n"
    "                      __global uchar *nulls, uint n)\n"
    "{\n"
    "    uint i = get_global_id(0);\n"
    "    if (i >= n)\n"
    "        return;\n"
    "    double a = area[i];\n"
    "    uchar null = pop_null[i] || a <= 0.0;\n"
    "    nulls[i] = null;\n"
    "    out[i] = null ? 0.0 : convert_double(pop[i]) / a;\n"
    "}\n";

static tsr_status_t density_opencl(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                   tsr_data_t *const *out, size_t nout)
{
    size_t n = 0;
    tsr_status_t rc = density_begin(tc, in, nin, nout, "opencl", &n);
    if (rc != TSR_OK)
        return rc;
    if (n > UINT32_MAX)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "density: too many rows for one kernel");
    void *vctx = NULL, *vq = NULL, *vprog = NULL;
    if ((rc = tsr_task_opencl(tc, &vctx, &vq, NULL)) != TSR_OK)
        return tsr_task_fail(tc, rc, "density: not on an OpenCL device");
    if ((rc = tsr_task_opencl_program(tc, "density", DENSITY_CL, &vprog)) != TSR_OK)
        return rc; /* the build log is the task's message */
    size_t n1 = n ? n : 1; /* OpenCL has no empty buffers */
    const char **names = malloc(n1 * sizeof(*names));
    int64_t *pop = malloc(n1 * sizeof(*pop));
    double *area = malloc(n1 * sizeof(*area)), *density = malloc(n1 * sizeof(*density));
    uint8_t *pop_null = malloc(n1), *nullb = malloc(n1);
    bool *nulls = malloc(n1 * sizeof(*nulls));
    cl_mem b[5] = {NULL, NULL, NULL, NULL, NULL};
    cl_kernel k = NULL;
    cl_int code = CL_SUCCESS;
    rc = TSR_ERR_NOMEM;
    if (!names || !pop || !area || !density || !pop_null || !nullb || !nulls)
        goto out;
    density_gather(in[0], n, names, pop, pop_null, area);
    if (n > 0) {
        cl_context cctx = vctx;
        cl_command_queue q = vq;
        const cl_mem_flags in_flags = CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR;
        b[0] = clCreateBuffer(cctx, in_flags, n * sizeof(*pop), pop, &code);
        if (code == CL_SUCCESS)
            b[1] = clCreateBuffer(cctx, in_flags, n * sizeof(*area), area, &code);
        if (code == CL_SUCCESS)
            b[2] = clCreateBuffer(cctx, in_flags, n, pop_null, &code);
        if (code == CL_SUCCESS)
            b[3] = clCreateBuffer(cctx, CL_MEM_WRITE_ONLY, n * sizeof(*density), NULL, &code);
        if (code == CL_SUCCESS)
            b[4] = clCreateBuffer(cctx, CL_MEM_WRITE_ONLY, n, NULL, &code);
        if (code == CL_SUCCESS)
            k = clCreateKernel((cl_program)vprog, "density", &code);
        cl_uint un = (cl_uint)n;
        for (cl_uint a = 0; code == CL_SUCCESS && a < 5; a++)
            code = clSetKernelArg(k, a, sizeof(cl_mem), &b[a]);
        if (code == CL_SUCCESS)
            code = clSetKernelArg(k, 5, sizeof(un), &un);
        size_t global = (n + 63) / 64 * 64;
        if (code == CL_SUCCESS)
            code = clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL);
        if (code == CL_SUCCESS)
            code = clEnqueueReadBuffer(q, b[3], CL_FALSE, 0, n * sizeof(*density), density, 0,
                                       NULL, NULL);
        if (code == CL_SUCCESS)
            code = clEnqueueReadBuffer(q, b[4], CL_TRUE, 0, n, nullb, 0, NULL, NULL);
        if (code != CL_SUCCESS) {
            /* let what was queued end before its buffers go */
            clFinish(q);
            rc = tsr_task_fail(tc, TSR_ERR_DEVICE, "density: OpenCL error %d", (int)code);
            goto out;
        }
    }
    for (size_t r = 0; r < n; r++)
        nulls[r] = nullb[r] != 0;
    rc = density_write(tc, out[0], n, names, density, nulls);
out:
    if (k)
        clReleaseKernel(k);
    for (int i = 0; i < 5; i++)
        if (b[i])
            clReleaseMemObject(b[i]);
    free(names);
    free(pop);
    free(area);
    free(density);
    free(pop_null);
    free(nullb);
    free(nulls);
    return rc;
}

#endif /* DENSITY_HAVE_OPENCL */

#endif /* TSR_EXAMPLE_DENSITY_OPENCL_H */
