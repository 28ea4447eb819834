/*
 * test_graph_opencl.c - OpenCL implementations of user task kinds
 * (engine/graph/graph_opencl.c) and plugins of API version 1.
 *
 * Kind "xform" has a cpu function and an opencl one (a real kernel, built
 * through tsr_task_opencl_program): out[i] = (in[i] * 3 + 7) ^ (i * 31),
 * bytes. Each function counts its runs in the task's arg, so the test sees
 * which one ran. On a context with an OpenCL device (PoCL here) the opencl
 * function runs for every task and its outputs equal the model's over random
 * inputs of 0, 1, prime and > 8192 bytes; on a CPU context the cpu function
 * runs. A kind whose kernel has a syntax error fails with the build log in
 * its message. A version 1 plugin (tests/plugins/graph_v1_plugin.c) loads
 * and runs its cpu function. Skipped (exit 77) without an OpenCL device,
 * after the tests that need none. The scaffolding shared with
 * test_graph_cuda.c (the cpu function, the sizes and model, the density
 * table) is in graph_dev_test.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/context.h"
#include "tessera/graph.h"

#ifndef TSR_NO_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif

#include "../../examples/plugins/density_opencl.h"
#include "../../examples/plugins/density_task.h"
#include "graph_dev_test.h"

/* xform's cpu function (graph_dev_test.h) asks for OpenCL objects: it must
 * get none. */
static bool gdt_cpu_sees_device(tsr_task_ctx_t *tc)
{
    void *q = (void *)1;
    return tsr_task_opencl(tc, NULL, &q, NULL) == TSR_OK || q != NULL;
}

#ifndef TSR_NO_OPENCL
static const char XFORM_CL[] =
    "__kernel void xform(__global const uchar *in, __global uchar *out, uint n)\n"
    "{\n"
    "    uint i = get_global_id(0);\n"
    "    if (i < n)\n"
    "        out[i] = (uchar)(in[i] * 3u + 7u) ^ (uchar)(i * 31u);\n"
    "}\n";

/* the same kernel with a syntax error (a missing ';') */
static const char BAD_CL[] = "__kernel void xform(__global uchar *out)\n"
                             "{\n"
                             "    out[0] = 1\n"
                             "}\n";

/* The OpenCL implementation: param "bad" builds BAD_CL instead. */
static tsr_status_t xform_cl(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    tsr_status_t rc = xform_begin(tc, nin, nout, true);
    if (rc != TSR_OK)
        return rc;
    void *vctx = NULL, *vq = NULL, *vdev = NULL, *vprog = NULL;
    rc = tsr_task_opencl(tc, &vctx, &vq, &vdev);
    if (rc != TSR_OK || !vctx || !vq || !vdev)
        return tsr_task_fail(tc, TSR_ERR_INTERNAL, "no OpenCL objects");
    bool bad = strcmp(tsr_task_param(tc), "bad") == 0;
    rc = tsr_task_opencl_program(tc, bad ? "xform_bad" : "xform", bad ? BAD_CL : XFORM_CL,
                                 &vprog);
    if (rc != TSR_OK)
        return rc; /* the build log is the task's message already */
    size_t n = 0;
    const uint8_t *src = tsr_data_bytes(in[0], &n);
    uint8_t *dst = tsr_data_alloc_bytes(tc, out[0], n);
    if (!dst)
        return TSR_ERR_NOMEM;
    if (n == 0) /* OpenCL has no empty buffers */
        return TSR_OK;
    cl_context cctx = vctx;
    cl_command_queue q = vq;
    cl_int code = CL_SUCCESS;
    cl_kernel k = clCreateKernel((cl_program)vprog, "xform", &code);
    cl_mem bin = NULL, bout = NULL;
    if (code != CL_SUCCESS)
        goto fail;
    bin = clCreateBuffer(cctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n, (void *)src, &code);
    if (code != CL_SUCCESS)
        goto fail;
    bout = clCreateBuffer(cctx, CL_MEM_WRITE_ONLY, n, NULL, &code);
    if (code != CL_SUCCESS)
        goto fail;
    cl_uint un = (cl_uint)n;
    if ((code = clSetKernelArg(k, 0, sizeof(bin), &bin)) != CL_SUCCESS ||
        (code = clSetKernelArg(k, 1, sizeof(bout), &bout)) != CL_SUCCESS ||
        (code = clSetKernelArg(k, 2, sizeof(un), &un)) != CL_SUCCESS)
        goto fail;
    size_t global = (n + 63) / 64 * 64;
    if ((code = clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL)) !=
            CL_SUCCESS ||
        (code = clEnqueueReadBuffer(q, bout, CL_TRUE, 0, n, dst, 0, NULL, NULL)) != CL_SUCCESS)
        goto fail;
    clReleaseMemObject(bin);
    clReleaseMemObject(bout);
    clReleaseKernel(k);
    return TSR_OK;
fail:
    if (bin)
        clReleaseMemObject(bin);
    if (bout)
        clReleaseMemObject(bout);
    if (k)
        clReleaseKernel(k);
    return tsr_task_fail(tc, TSR_ERR_DEVICE, "xform: OpenCL error %d", (int)code);
}
#endif

static const gdt_dev_t DEV_OPENCL = {
    .device = "opencl",
#ifndef TSR_NO_OPENCL
    .fn = xform_cl,
#endif
};

static void test_cpu_context_runs_cpu(void **state)
{
    (void)state;
    expect_cpu_runs(&DEV_OPENCL, "cpu", 7);
}

static void test_opencl_context_runs_opencl(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("opencl");
    if (!ctx)
        skip();
    expect_device_runs(ctx, &DEV_OPENCL); /* the second graph: PoCL's disk cache */
    tsr_context_destroy(ctx);
}

static void test_build_error_reaches_message(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("opencl");
    if (!ctx)
        skip();
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    register_xform(g, &DEV_OPENCL);
    runs_t r = {0};
    tsr_data_t *in = NULL, *out = NULL;
    OK(tsr_graph_data_bytes(g, "in", "abc", 3, &in));
    OK(tsr_graph_data(g, "out", &out));
    tsr_task_params_t p = {.kind = "xform", .label = "broken", .param = "bad", .ninputs = 1,
                           .inputs = &in, .noutputs = 1, .outputs = &out, .arg = &r};
    tsr_task_t *t = NULL;
    OK(tsr_graph_add(g, &p, &t));
    OK(tsr_graph_submit(g));
    tsr_status_t rc = tsr_graph_wait(g, 120000);
    assert_int_equal(rc, TSR_ERR_DEVICE);
    tsr_task_info_t info;
    tsr_task_info(t, &info);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    assert_int_equal(atomic_load(&r.dev), 1);
    /* "OpenCL build of xform_bad.cl failed on ...: CL_BUILD_PROGRAM_FAILURE (-11): <log>" */
    assert_non_null(strstr(info.message, "xform_bad"));
    assert_non_null(strstr(info.message, "BUILD_PROGRAM_FAILURE"));
    assert_non_null(strstr(info.message, "error"));
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "xform_bad"));
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* Runs examples' density kind over a random cities table of n rows on
 * ctx; returns the output's densities (NAN for NULL) and which ran. */
static double *density_run(tsr_context_t *ctx, size_t n, unsigned seed, const char **ran)
{
    gdt_cities_t c;
    double *got = gdt_cities_register(ctx, &c, n, seed);
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    tsr_task_def_t def = {.name = "density", .cpu = density_task};
#ifdef DENSITY_HAVE_OPENCL
    def.opencl = density_opencl;
#endif
    OK(tsr_graph_register(g, &def));
    tsr_data_t *in = NULL, *out = NULL;
    OK(tsr_graph_data_table(g, "cities", &in));
    OK(tsr_graph_data(g, "density", &out));
    tsr_task_params_t p = {.kind = "density", .ninputs = 1, .inputs = &in, .noutputs = 1,
                           .outputs = &out, .arg = ran};
    OK(tsr_graph_add(g, &p, NULL));
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 120000));
    gdt_cities_check(&c, out, false, got);
    tsr_graph_destroy(g);
    gdt_cities_free(&c);
    return got;
}

/* The example's density kind: its OpenCL implementation gives the CPU one's
 * doubles bit for bit (and the same NULLs). */
static void test_density_same_bits(void **state)
{
    (void)state;
    static const size_t rows[] = {0, 1, 8209};
    for (size_t s = 0; s < sizeof(rows) / sizeof(rows[0]); s++) {
        tsr_context_t *cpu = NULL, *ocl = gdt_cpu_and("opencl", &cpu);
        const char *ran_cpu = NULL, *ran_cl = NULL;
        double *a = density_run(cpu, rows[s], 31 + (unsigned)s, &ran_cpu);
        double *b = density_run(ocl, rows[s], 31 + (unsigned)s, &ran_cl);
        assert_string_equal(ran_cpu, "cpu");
#ifdef DENSITY_HAVE_OPENCL
        assert_string_equal(ran_cl, "opencl");
#endif
        gdt_same_bits(a, b, rows[s], "opencl");
        tsr_context_destroy(cpu);
        tsr_context_destroy(ocl);
    }
}

#ifdef TSR_TEST_V1_PLUGIN
static void test_v1_plugin_loads(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("opencl"); /* OpenCL where there is one: v1 kinds run cpu */
    if (!ctx)
        ctx = new_ctx("cpu");
    tsr_data_t *o[2] = {NULL, NULL};
    tsr_task_info_t info[2];
    tsr_graph_t *g = gdt_v1_graph(ctx, TSR_TEST_V1_PLUGIN, o, info);
    assert_string_equal(info[0].opencl_kernel, "v1_k");
    assert_string_equal(info[0].plugin, "v1");
    assert_null(info[1].opencl_kernel);
    gdt_v1_finish(g, o);
    tsr_context_destroy(ctx);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_context_runs_cpu),
#ifdef TSR_TEST_V1_PLUGIN
        cmocka_unit_test(test_v1_plugin_loads),
#endif
        cmocka_unit_test(test_opencl_context_runs_opencl),
        cmocka_unit_test(test_build_error_reaches_message),
        cmocka_unit_test(test_density_same_bits),
    };
    return gdt_exit_code(cmocka_run_group_tests(tests, NULL, NULL), "opencl");
}
