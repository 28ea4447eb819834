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
 * after the tests that need none.
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

#define OK(x) assert_int_equal((x), TSR_OK)

typedef struct runs {
    atomic_int cpu, opencl;
    atomic_int cpu_saw_cl; /* tsr_task_opencl answered OK inside cpu: wrong */
} runs_t;

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

static uint8_t model(uint8_t in, size_t i)
{
    return (uint8_t)((uint8_t)(in * 3u + 7u) ^ (uint8_t)(i * 31u));
}

static tsr_status_t xform_cpu(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    runs_t *r = tsr_task_arg(tc);
    atomic_fetch_add(&r->cpu, 1);
    void *q = (void *)1;
    if (tsr_task_opencl(tc, NULL, &q, NULL) == TSR_OK || q != NULL)
        atomic_fetch_add(&r->cpu_saw_cl, 1);
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform: one input, one output");
    size_t n = 0;
    const uint8_t *src = tsr_data_bytes(in[0], &n);
    uint8_t *dst = tsr_data_alloc_bytes(tc, out[0], n);
    if (!dst)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        dst[i] = model(src[i], i);
    return TSR_OK;
}

#ifndef TSR_NO_OPENCL
/* The OpenCL implementation: param "bad" builds BAD_CL instead. */
static tsr_status_t xform_cl(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    runs_t *r = tsr_task_arg(tc);
    atomic_fetch_add(&r->opencl, 1);
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform: one input, one output");
    void *vctx = NULL, *vq = NULL, *vdev = NULL, *vprog = NULL;
    tsr_status_t rc = tsr_task_opencl(tc, &vctx, &vq, &vdev);
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

static const size_t SIZES[] = {0, 1, 2, 13, 8191, 8209, 40009};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

static tsr_context_t *new_ctx(bool opencl)
{
    tsr_context_params_t cp = {.threads = 2};
    tsr_context_t *ctx = NULL;
    OK(tsr_context_create(&cp, &ctx));
    if (opencl && tsr_context_set_device(ctx, "opencl") != TSR_OK) {
        tsr_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

static void register_xform(tsr_graph_t *g)
{
    tsr_task_def_t def = {.name = "xform", .cpu = xform_cpu};
#ifndef TSR_NO_OPENCL
    def.opencl = xform_cl;
#endif
    OK(tsr_graph_register(g, &def));
}

/* Runs one xform task per size (concurrently, 3 threads) on ctx; checks
 * the outputs against the model; returns the counts in *r. */
static void run_sizes(tsr_context_t *ctx, runs_t *r, unsigned seed)
{
    tsr_graph_params_t gp = {.threads = 3};
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, &gp, &g));
    register_xform(g);
    uint8_t *inputs[NSIZES];
    tsr_data_t *outs[NSIZES];
    srand(seed);
    for (size_t s = 0; s < NSIZES; s++) {
        inputs[s] = malloc(SIZES[s] + 1);
        assert_non_null(inputs[s]);
        for (size_t i = 0; i < SIZES[s]; i++)
            inputs[s][i] = (uint8_t)rand();
        tsr_data_t *in = NULL;
        OK(tsr_graph_data_bytes(g, NULL, inputs[s], SIZES[s], &in));
        OK(tsr_graph_data(g, NULL, &outs[s]));
        tsr_task_params_t p = {.kind = "xform", .ninputs = 1, .inputs = &in, .noutputs = 1,
                               .outputs = &outs[s], .arg = r};
        tsr_task_t *t = NULL;
        OK(tsr_graph_add(g, &p, &t));
        tsr_task_info_t info;
        tsr_task_info(t, &info);
#ifndef TSR_NO_OPENCL
        /* an opencl function without a kernel name records the kind's name */
        assert_non_null(info.opencl_kernel);
        assert_string_equal(info.opencl_kernel, "xform");
#endif
    }
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 120000));
    for (size_t s = 0; s < NSIZES; s++) {
        size_t len = 99;
        const uint8_t *got = tsr_data_bytes(outs[s], &len);
        assert_int_equal(len, SIZES[s]);
        assert_int_equal(tsr_data_kind(outs[s]), TSR_DATA_BYTES);
        for (size_t i = 0; i < SIZES[s]; i++)
            if (got[i] != model(inputs[s][i], i))
                fail_msg("size %zu: byte %zu is %u, want %u", SIZES[s], i, got[i],
                         model(inputs[s][i], i));
        free(inputs[s]);
    }
    tsr_graph_destroy(g);
}

static void test_cpu_context_runs_cpu(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(false);
    runs_t r = {0};
    run_sizes(ctx, &r, 7);
    assert_int_equal(atomic_load(&r.cpu), (int)NSIZES);
    assert_int_equal(atomic_load(&r.opencl), 0);
    assert_int_equal(atomic_load(&r.cpu_saw_cl), 0);
    tsr_context_destroy(ctx);
}

static void test_opencl_context_runs_opencl(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(true);
    if (!ctx)
        skip();
    for (unsigned round = 0; round < 2; round++) { /* the second graph: PoCL's disk cache */
        runs_t r = {0};
        run_sizes(ctx, &r, 11 + round);
        assert_int_equal(atomic_load(&r.opencl), (int)NSIZES);
        assert_int_equal(atomic_load(&r.cpu), 0);
    }
    tsr_context_destroy(ctx);
}

static void test_build_error_reaches_message(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(true);
    if (!ctx)
        skip();
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    register_xform(g);
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
    assert_int_equal(atomic_load(&r.opencl), 1);
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
    const char **city = malloc((n + 1) * sizeof(*city));
    int64_t *pop = malloc((n + 1) * sizeof(*pop));
    double *area = malloc((n + 1) * sizeof(*area));
    bool *pop_null = malloc(n + 1), *area_null = malloc(n + 1);
    double *got = malloc((n + 1) * sizeof(*got));
    assert_true(city && pop && area && pop_null && area_null && got);
    srand(seed);
    for (size_t r = 0; r < n; r++) {
        city[r] = r % 2 ? "a" : "b";
        pop[r] = (int64_t)rand() * rand() - (int64_t)rand();
        pop_null[r] = rand() % 10 == 0;
        int a = rand() % 20;
        area[r] = a == 0 ? 0.0 : a == 1 ? -3.5 : (double)rand() / ((double)rand() + 1.0) * 1e3;
        area_null[r] = rand() % 15 == 0;
    }
    tsr_column_data_t cols[] = {
        {.name = "city", .type = TSR_TYPE_VARCHAR, .values = city},
        {.name = "country", .type = TSR_TYPE_VARCHAR, .values = city},
        {.name = "population", .type = TSR_TYPE_INT64, .values = pop, .nulls = pop_null},
        {.name = "area_km2", .type = TSR_TYPE_DOUBLE, .values = area, .nulls = area_null},
    };
    OK(tsr_table_register_columns(ctx, "cities", 4, cols, n));
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
    assert_int_equal(tsr_data_row_count(out), n);
    for (size_t r = 0; r < n; r++) {
        bool want_null = pop_null[r] || area_null[r] || area[r] <= 0;
        assert_int_equal(tsr_data_is_null(out, r, 1), want_null);
        got[r] = want_null ? NAN : tsr_data_double(out, r, 1);
    }
    tsr_graph_destroy(g);
    free(city);
    free(pop);
    free(area);
    free(pop_null);
    free(area_null);
    return got;
}

/* The example's density kind: its OpenCL implementation gives the CPU one's
 * doubles bit for bit (and the same NULLs). */
static void test_density_same_bits(void **state)
{
    (void)state;
    static const size_t rows[] = {0, 1, 8209};
    for (size_t s = 0; s < sizeof(rows) / sizeof(rows[0]); s++) {
        tsr_context_t *cpu = new_ctx(false), *ocl = new_ctx(true);
        if (!ocl) {
            tsr_context_destroy(cpu);
            skip();
        }
        const char *ran_cpu = NULL, *ran_cl = NULL;
        double *a = density_run(cpu, rows[s], 31 + (unsigned)s, &ran_cpu);
        double *b = density_run(ocl, rows[s], 31 + (unsigned)s, &ran_cl);
        assert_string_equal(ran_cpu, "cpu");
#ifdef DENSITY_HAVE_OPENCL
        assert_string_equal(ran_cl, "opencl");
#endif
        for (size_t r = 0; r < rows[s]; r++)
            if (memcmp(&a[r], &b[r], sizeof(double)) != 0)
                fail_msg("rows %zu: row %zu: cpu %.17g, opencl %.17g", rows[s], r, a[r], b[r]);
        free(a);
        free(b);
        tsr_context_destroy(cpu);
        tsr_context_destroy(ocl);
    }
}

#ifdef TSR_TEST_V1_PLUGIN
static void test_v1_plugin_loads(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(true); /* OpenCL where there is one: v1 kinds run cpu */
    if (!ctx)
        ctx = new_ctx(false);
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    OK(tsr_graph_load_plugin(g, "v1", TSR_TEST_V1_PLUGIN));
    tsr_data_t *a = NULL, *b = NULL, *o1 = NULL, *o2 = NULL;
    OK(tsr_graph_data_bytes(g, "a", "hello", 5, &a));
    OK(tsr_graph_data_bytes(g, "b", "xy", 2, &b));
    OK(tsr_graph_data(g, "o1", &o1));
    OK(tsr_graph_data(g, "o2", &o2));
    tsr_data_t *ins[] = {a, b};
    tsr_task_params_t p1 = {.kind = "v1_len", .ninputs = 2, .inputs = ins, .noutputs = 1,
                            .outputs = &o1};
    tsr_task_params_t p2 = {.kind = "v1_len2", .ninputs = 1, .inputs = &a, .noutputs = 1,
                            .outputs = &o2};
    tsr_task_t *t1 = NULL, *t2 = NULL;
    OK(tsr_graph_add(g, &p1, &t1));
    OK(tsr_graph_add(g, &p2, &t2));
    tsr_task_info_t info;
    tsr_task_info(t1, &info);
    assert_string_equal(info.opencl_kernel, "v1_k");
    assert_string_equal(info.plugin, "v1");
    tsr_task_info(t2, &info);
    assert_null(info.opencl_kernel);
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 60000));
    size_t len = 0;
    const void *v = tsr_data_bytes(o1, &len);
    uint64_t got = 0;
    assert_int_equal(len, sizeof(got));
    memcpy(&got, v, sizeof(got));
    assert_int_equal(got, 7);
    v = tsr_data_bytes(o2, &len);
    assert_int_equal(len, sizeof(got));
    memcpy(&got, v, sizeof(got));
    assert_int_equal(got, 5);
    tsr_graph_destroy(g);
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
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed)
        return 1;
    tsr_context_t *probe = new_ctx(true);
    if (!probe)
        return 77;
    tsr_context_destroy(probe);
    return 0;
}
