/*
 * test_graph_cuda.c - CUDA implementations of user task kinds
 * (engine/graph/graph_cuda.c) and plugins of API versions 1, 2 and 3.
 *
 * Kind "xform" has a cpu function and a cuda one that copies its input to
 * device memory on the task's stream, runs a kernel (the body in
 * tests/plugins/graph_cuda_xform.cuh), copies back and writes the output:
 * out[i] = (in[i] * 3 + 7) ^ (i * 31), bytes. Each function counts its runs
 * in the task's arg, so the test sees which one ran. On a context with a
 * CUDA device the cuda function runs for every task and its outputs equal
 * the model's over random inputs of 0, 1, prime and > 8192 bytes; on a CPU
 * or OpenCL context the cpu function runs and tsr_task_cuda answers
 * TSR_ERR_UNSUPPORTED there. Errors: a cuda function returning an error, a
 * CUDA runtime error turned into the message (tsr_task_cuda_check), a launch
 * error the function ignored (the engine's last-error check) and, on the
 * emulator, a stream that fails after the function returned OK. The
 * example's density kind (examples/plugins/density_cuda.h) gives the CPU's
 * doubles bit for bit. Plugins of versions 1, 2 (tests/plugins) and 3 load.
 *
 * Two builds: unit.test_graph_cuda against the real CUDA runtime (kernels
 * compiled by nvcc: graph_cuda_xform.cu, density_cuda.cu; it also loads the
 * nvcc-built density_cuda_plugin), whose CUDA cases skip without a device,
 * and unit.test_graph_cuda_emu on the CUDA emulator (tests/cudaemu), where
 * the same kernel bodies run on host threads, so the whole path runs on
 * every machine. Exit 77 (skipped) when no CUDA device could be opened,
 * after the tests that need none. The scaffolding shared with
 * test_graph_opencl.c (the cpu function, the sizes and model, the density
 * table, the version 1 plugin's graph) is in graph_dev_test.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tessera/context.h"
#include "tessera/graph.h"

#include "graph_dev_test.h"

#ifdef TSR_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "../../examples/plugins/density_task.h"

#include "../../examples/plugins/density_cuda.h"

/* graph_cuda_xform.cu (or the emulator's version below): queues the xform
 * kernel on s (block 0: the default size); returns the launch's error,
 * left in the runtime's last-error slot. */
cudaError_t graph_cuda_xform_launch(const uint8_t *in, uint8_t *out, uint64_t n, unsigned block,
                                    cudaStream_t s);
#endif

#ifdef TSR_CUDA_EMU
#include "emu.h"

#include "../../examples/plugins/density_cuda.cuh"
#include "../plugins/graph_cuda_xform.cuh"

/* The launchers of the .cu files, on the emulator: the same bodies, grids
 * within the emulated device's limits. */
static void emu_xform(const void *a, void *sh)
{
    (void)sh;
    xform_body(a);
}

cudaError_t graph_cuda_xform_launch(const uint8_t *in, uint8_t *out, uint64_t n, unsigned block,
                                    cudaStream_t s)
{
    xform_view_t v = {in, out, n};
    if (!block)
        block = 64;
    uint64_t blocks = (n + block - 1) / block;
    if (blocks > 8)
        blocks = 8;
    return tsr_emu_launch(s, (unsigned)(blocks ? blocks : 1), block, 0, emu_xform, &v, sizeof(v));
}

static void emu_density(const void *a, void *sh)
{
    (void)sh;
    density_body(a);
}

cudaError_t density_cuda_launch(const int64_t *pop, const double *area, const uint8_t *pop_null,
                                double *out, uint8_t *nulls, uint64_t n, cudaStream_t s)
{
    density_cuda_view_t v = {pop, area, pop_null, out, nulls, n};
    uint64_t blocks = (n + 63) / 64;
    if (blocks > 8)
        blocks = 8;
    return tsr_emu_launch(s, (unsigned)(blocks ? blocks : 1), 64, 0, emu_density, &v, sizeof(v));
}
#endif

/* xform's cpu function (graph_dev_test.h) asks for a CUDA stream: it must
 * get TSR_ERR_UNSUPPORTED, no stream and device -1. */
static bool gdt_cpu_sees_device(tsr_task_ctx_t *tc)
{
    void *s = (void *)1;
    int dev = 5;
    return tsr_task_cuda(tc, &s, &dev) != TSR_ERR_UNSUPPORTED || s != NULL || dev != -1;
}

#ifdef TSR_HAVE_CUDA
/* The CUDA implementation. Param: "" the work; "fail" returns an error of
 * its own; "oom" a failed cudaMalloc through tsr_task_cuda_check;
 * "badlaunch" a launch of an impossible block size whose error it ignores
 * (returns TSR_OK); "streamfail" (emulator) the work, then the runtime's
 * next call fails: the engine's synchronization of the stream. */
static tsr_status_t xform_cuda(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                               tsr_data_t *const *out, size_t nout)
{
    tsr_status_t rc = xform_begin(tc, nin, nout, true);
    if (rc != TSR_OK)
        return rc;
    void *vs = NULL;
    int dev = -1, cur = -2;
    if (tsr_task_cuda(tc, &vs, &dev) != TSR_OK || !vs || dev < 0)
        return tsr_task_fail(tc, TSR_ERR_INTERNAL, "no CUDA stream");
    if (cudaGetDevice(&cur) != cudaSuccess || cur != dev)
        return tsr_task_fail(tc, TSR_ERR_INTERNAL, "current device %d, the task's %d", cur, dev);
    cudaStream_t s = vs;
    const char *mode = tsr_task_param(tc);
    if (strcmp(mode, "fail") == 0)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform refused: %s", "on purpose");
    if (strcmp(mode, "oom") == 0) {
        void *p = NULL;
        return tsr_task_cuda_check(tc, cudaMalloc(&p, (size_t)1 << 52), "cudaMalloc (4 PiB)");
    }
    if (strcmp(mode, "badlaunch") == 0) {
        (void)graph_cuda_xform_launch(NULL, NULL, 1, 4096, s);
        return TSR_OK;
    }
    size_t n = 0;
    const uint8_t *src = tsr_data_bytes(in[0], &n);
    uint8_t *dst = tsr_data_alloc_bytes(tc, out[0], n);
    if (!dst && n)
        return TSR_ERR_NOMEM;
    if (n == 0)
        return TSR_OK;
    uint8_t *d = NULL;
    rc = tsr_task_cuda_check(tc, cudaMalloc((void **)&d, 2 * n), "cudaMalloc");
    if (rc != TSR_OK)
        return rc;
    if ((rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(d, src, n, cudaMemcpyHostToDevice, s),
                                  "cudaMemcpyAsync in")) != TSR_OK ||
        (rc = tsr_task_cuda_check(tc, graph_cuda_xform_launch(d, d + n, n, 0, s),
                                  "xform launch")) != TSR_OK ||
        (rc = tsr_task_cuda_check(tc, cudaMemcpyAsync(dst, d + n, n, cudaMemcpyDeviceToHost, s),
                                  "cudaMemcpyAsync out")) != TSR_OK)
        goto out;
    rc = tsr_task_cuda_check(tc, cudaStreamSynchronize(s), "cudaStreamSynchronize");
out:
    cudaStreamSynchronize(s); /* nothing may still use d */
    cudaFree(d);
#ifdef TSR_CUDA_EMU
    if (rc == TSR_OK && strcmp(mode, "streamfail") == 0)
        tsr_emu_fail_after(0, cudaErrorLaunchFailure);
#endif
    return rc;
}
#endif

static const gdt_dev_t DEV_CUDA = {
    .device = "cuda0",
#ifdef TSR_HAVE_CUDA
    .fn = xform_cuda,
#endif
    .cuda = true,
};

static void test_cpu_context_runs_cpu(void **state)
{
    (void)state;
    expect_cpu_runs(&DEV_CUDA, "cpu", 7);
}

/* A kind with cpu and cuda functions (no opencl) runs cpu on OpenCL. */
static void test_opencl_context_runs_cpu(void **state)
{
    (void)state;
    expect_cpu_runs(&DEV_CUDA, "opencl", 9);
}

static void test_task_cuda_args(void **state)
{
    (void)state;
    void *s = (void *)1;
    int dev = 3;
    assert_int_equal(tsr_task_cuda(NULL, &s, &dev), TSR_ERR_UNSUPPORTED);
    assert_null(s);
    assert_int_equal(dev, -1);
    assert_int_equal(tsr_task_cuda(NULL, NULL, NULL), TSR_ERR_UNSUPPORTED);
    OK(tsr_task_cuda_check(NULL, 0, "nothing"));
    assert_int_equal(tsr_task_cuda_check(NULL, 2, "x"), TSR_ERR_INVALID_ARG);
}

#if defined(TSR_TEST_V1_PLUGIN) || defined(TSR_TEST_V2_PLUGIN)
/* A CUDA context where there is one (the plugins' cpu functions must run
 * there), else a CPU one. */
static tsr_context_t *cuda_or_cpu(void)
{
    tsr_context_t *ctx = new_ctx("cuda0");
    return ctx ? ctx : new_ctx("cpu");
}
#endif

#ifdef TSR_TEST_V1_PLUGIN
static void test_v1_plugin_loads(void **state)
{
    (void)state;
    tsr_context_t *ctx = cuda_or_cpu();
    tsr_data_t *o[2] = {NULL, NULL};
    tsr_task_info_t info[2];
    tsr_graph_t *g = gdt_v1_graph(ctx, TSR_TEST_V1_PLUGIN, o, info);
    assert_string_equal(info[0].opencl_kernel, "v1_k");
    assert_null(info[0].cuda_kernel);
    assert_null(info[1].opencl_kernel);
    assert_null(info[1].cuda_kernel);
    gdt_v1_finish(g, o);
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_TEST_V2_PLUGIN
static void test_v2_plugin_loads(void **state)
{
    (void)state;
    tsr_context_t *ctx = cuda_or_cpu();
    tsr_graph_t *g = gdt_plugin_graph(ctx, "v2", TSR_TEST_V2_PLUGIN);
    tsr_data_t *a = NULL, *o1 = NULL, *o2 = NULL;
    OK(tsr_graph_data_bytes(g, "a", "hello", 5, &a));
    OK(tsr_graph_data(g, "o1", &o1));
    OK(tsr_graph_data(g, "o2", &o2));
    tsr_task_params_t p1 = {.kind = "v2_len", .ninputs = 1, .inputs = &a, .noutputs = 1,
                            .outputs = &o1};
    tsr_task_params_t p2 = {.kind = "v2_len2", .ninputs = 1, .inputs = &a, .noutputs = 1,
                            .outputs = &o2};
    tsr_task_t *t1 = NULL, *t2 = NULL;
    OK(tsr_graph_add(g, &p1, &t1));
    OK(tsr_graph_add(g, &p2, &t2));
    tsr_task_info_t info;
    tsr_task_info(t1, &info);
    assert_string_equal(info.opencl_kernel, "v2_len"); /* its opencl function */
    assert_null(info.cuda_kernel);
    assert_string_equal(info.plugin, "v2");
    tsr_task_info(t2, &info);
    assert_null(info.opencl_kernel);
    assert_string_equal(info.cuda_kernel, "v2_k");
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 60000));
    assert_int_equal(u64_of(o1), 5); /* cpu (its opencl one adds 1000): CUDA or CPU here */
    assert_int_equal(u64_of(o2), 5);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_TEST_V3_PLUGIN
/* Runs v3_dev and v3_dev2 on ctx; checks what each wrote. */
static void v3_run(tsr_context_t *ctx, const char *want_dev)
{
    tsr_graph_t *g = gdt_plugin_graph(ctx, "v3", TSR_TEST_V3_PLUGIN);
    tsr_data_t *o1 = NULL, *o2 = NULL;
    OK(tsr_graph_data(g, "o1", &o1));
    OK(tsr_graph_data(g, "o2", &o2));
    tsr_task_params_t p1 = {.kind = "v3_dev", .noutputs = 1, .outputs = &o1};
    tsr_task_params_t p2 = {.kind = "v3_dev2", .noutputs = 1, .outputs = &o2};
    tsr_task_t *t1 = NULL, *t2 = NULL;
    OK(tsr_graph_add(g, &p1, &t1));
    OK(tsr_graph_add(g, &p2, &t2));
    tsr_task_info_t info;
    tsr_task_info(t1, &info);
    assert_string_equal(info.cuda_kernel, "v3_dev");
    assert_null(info.opencl_kernel);
    tsr_task_info(t2, &info);
    assert_null(info.cuda_kernel);
    OK(tsr_graph_submit(g));
    tsr_status_t rc = tsr_graph_wait(g, 60000);
    if (rc != TSR_OK) {
        tsr_task_info(t1, &info);
        fail_msg("v3 graph: %s", info.message);
    }
    size_t len = 0;
    const char *got = tsr_data_bytes(o1, &len);
    assert_int_equal(len, strlen(want_dev));
    assert_memory_equal(got, want_dev, len);
    got = tsr_data_bytes(o2, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "cpu", 3);
    tsr_graph_destroy(g);
}

static void test_v3_plugin_loads(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cpu");
    v3_run(ctx, "cpu");
    tsr_context_destroy(ctx);
    if (!(ctx = new_ctx("cuda0")))
        skip();
    v3_run(ctx, "cuda 0 1"); /* the device's ordinal, a stream */
    tsr_context_destroy(ctx);
}
#endif

static void test_cuda_context_runs_cuda(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
#ifdef TSR_CUDA_EMU
    long null_uses = tsr_emu_null_stream_uses();
    size_t dev_bytes = tsr_emu_device_bytes();
#endif
    expect_device_runs(ctx, &DEV_CUDA);
#ifdef TSR_CUDA_EMU
    /* the functions worked on their own streams, and freed what they took */
    assert_int_equal(tsr_emu_null_stream_uses(), null_uses);
    assert_int_equal(tsr_emu_device_bytes(), dev_bytes);
#endif
    tsr_context_destroy(ctx);
}

/* Opens a CUDA context (skipped without one) and runs one xform task with
 * param mode there, and an identity task reading its output: the wait
 * answers want, the xform task and its dependant failed; *info: the xform
 * task's. Returns the context (the caller destroys it). */
static tsr_context_t *mode_fails(const char *mode, tsr_status_t want, tsr_task_info_t *info)
{
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
    tsr_graph_params_t gp = {.threads = 1};
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, &gp, &g));
    register_xform(g, &DEV_CUDA);
    runs_t r = {0};
    tsr_data_t *in = NULL, *mid = NULL, *out = NULL;
    OK(tsr_graph_data_bytes(g, "in", "abcdef", 6, &in));
    OK(tsr_graph_data(g, "mid", &mid));
    OK(tsr_graph_data(g, "out", &out));
    tsr_task_params_t p = {.kind = "xform", .label = "xf", .param = mode, .ninputs = 1,
                           .inputs = &in, .noutputs = 1, .outputs = &mid, .arg = &r};
    tsr_task_params_t q = {.kind = "identity", .ninputs = 1, .inputs = &mid, .noutputs = 1,
                           .outputs = &out};
    tsr_task_t *t = NULL, *u = NULL;
    OK(tsr_graph_add(g, &p, &t));
    OK(tsr_graph_add(g, &q, &u));
    OK(tsr_graph_submit(g));
    tsr_status_t rc = tsr_graph_wait(g, 120000);
    assert_int_equal(atomic_load(&r.dev), 1);
    tsr_task_info(t, info);
    /* the message lives with the graph: keep a copy in a static buffer */
    static char msg[1024];
    strncpy(msg, info->message, sizeof(msg) - 1);
    info->message = msg;
    info->label = info->kind = info->plugin = NULL;
    info->opencl_kernel = info->cuda_kernel = NULL;
    tsr_task_state_t after = tsr_task_state(u);
    if (rc != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, "xf"));
    }
    tsr_graph_destroy(g);
    assert_int_equal(rc, want);
    assert_int_equal(info->state, TSR_TASK_FAILED);
    assert_int_equal(after, TSR_TASK_FAILED); /* its dependant fails too */
    return ctx;
}

static void test_function_error(void **state)
{
    (void)state;
    tsr_task_info_t info;
    tsr_context_t *ctx = mode_fails("fail", TSR_ERR_INVALID_ARG, &info);
    assert_int_equal(info.status, TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(info.message, "xform refused: on purpose"));
    tsr_context_destroy(ctx);
}

#ifdef TSR_HAVE_CUDA
static void test_runtime_error_reaches_message(void **state)
{
    (void)state;
    tsr_task_info_t info;
    tsr_context_t *ctx = mode_fails("oom", TSR_ERR_NOMEM, &info);
    /* "CUDA cudaMalloc (4 PiB) failed on <device>: cudaErrorMemoryAllocation: out of memory" */
    assert_non_null(strstr(info.message, "cudaMalloc (4 PiB)"));
    assert_non_null(strstr(info.message, "cudaErrorMemoryAllocation"));
    assert_non_null(strstr(info.message, cudaGetErrorString(cudaErrorMemoryAllocation)));
    /* the device is fine afterwards */
    runs_t r = {0};
    run_sizes(ctx, &DEV_CUDA, &r, 5);
    assert_int_equal(atomic_load(&r.dev), (int)NSIZES);
    tsr_context_destroy(ctx);
}

/* A launch error the function ignored still fails the task (the engine
 * reads the runtime's last error after the function). A block of 4096
 * threads is refused as cudaErrorInvalidConfiguration by the emulator and
 * older runtimes, as cudaErrorInvalidValue by CUDA 13 (measured on an H200,
 * driver 580). */
static void test_unchecked_launch_error(void **state)
{
    (void)state;
    tsr_task_info_t info;
    tsr_context_t *ctx = mode_fails("badlaunch", TSR_ERR_DEVICE, &info);
    assert_non_null(strstr(info.message, "launch in the task (cudaGetLastError)"));
    bool named = strstr(info.message, "cudaErrorInvalidConfiguration") ||
                 strstr(info.message, "cudaErrorInvalidValue");
    if (!named)
        print_message("task message: %s\n", info.message);
    assert_true(named);
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_CUDA_EMU
/* The function returned OK, the stream's synchronization fails: the task
 * fails with the CUDA error string. */
static void test_stream_failure_after_ok(void **state)
{
    (void)state;
    long before = tsr_emu_injected();
    tsr_task_info_t info;
    tsr_context_t *ctx = mode_fails("streamfail", TSR_ERR_DEVICE, &info);
    tsr_emu_fail_after(-1, cudaSuccess);
    assert_int_equal(tsr_emu_injected(), before + 1);
    assert_non_null(strstr(info.message, "cudaStreamSynchronize"));
    assert_non_null(strstr(info.message, "cudaErrorLaunchFailure"));
    assert_non_null(strstr(info.message, "unspecified launch failure"));
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_HAVE_CUDA
/* Runs the density kind over a random cities table of n rows on ctx, from
 * def (in-process) or plugin_path; returns the densities (NAN for NULL)
 * and, in-process, which function ran. */
static double *density_run(tsr_context_t *ctx, size_t n, unsigned seed, const char *plugin_path,
                           const char **ran)
{
    gdt_cities_t c;
    double *got = gdt_cities_register(ctx, &c, n, seed);
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    if (plugin_path) {
        OK(tsr_graph_load_plugin(g, "density", plugin_path));
    } else {
        tsr_task_def_t def = {.name = "density", .cpu = density_task, .cuda = density_cuda};
        OK(tsr_graph_register(g, &def));
    }
    tsr_data_t *in = NULL, *out = NULL;
    OK(tsr_graph_data_table(g, "cities", &in));
    OK(tsr_graph_data(g, "density", &out));
    tsr_task_params_t p = {.kind = "density", .ninputs = 1, .inputs = &in, .noutputs = 1,
                           .outputs = &out, .arg = plugin_path ? NULL : ran};
    tsr_task_t *t = NULL;
    OK(tsr_graph_add(g, &p, &t));
    tsr_task_info_t ki;
    tsr_task_info(t, &ki);
    assert_string_equal(ki.cuda_kernel, "density"); /* its cuda function's doing */
    OK(tsr_graph_submit(g));
    if (tsr_graph_wait(g, 120000) != TSR_OK) {
        tsr_task_info_t info;
        tsr_task_info(t, &info);
        fail_msg("density: %s", info.message);
    }
    gdt_cities_check(&c, out, true, got);
    tsr_graph_destroy(g);
    gdt_cities_free(&c);
    return got;
}

/* Compares the density kind's CUDA implementation (in-process, or from
 * plugin_path) with its CPU one over 0, 1, 13 and 8209 rows. */
static void density_same_bits(const char *plugin_path)
{
    static const size_t rows[] = {0, 1, 13, 8209};
    for (size_t s = 0; s < sizeof(rows) / sizeof(rows[0]); s++) {
        tsr_context_t *cpu = NULL, *cu = gdt_cpu_and("cuda0", &cpu);
        const char *ran_cpu = NULL, *ran_cu = NULL;
        double *a = density_run(cpu, rows[s], 31 + (unsigned)s, NULL, &ran_cpu);
        double *b = density_run(cu, rows[s], 31 + (unsigned)s, plugin_path, &ran_cu);
        assert_string_equal(ran_cpu, "cpu");
        if (!plugin_path)
            assert_string_equal(ran_cu, "cuda");
        gdt_same_bits(a, b, rows[s], "cuda");
        tsr_context_destroy(cpu);
        tsr_context_destroy(cu);
    }
}

static void test_density_same_bits(void **state)
{
    (void)state;
    density_same_bits(NULL);
}

#ifdef TSR_TEST_DENSITY_CUDA_PLUGIN
/* The nvcc-built example plugin (its own static CUDA runtime, the engine's
 * stream). */
static void test_density_plugin_same_bits(void **state)
{
    (void)state;
    density_same_bits(TSR_TEST_DENSITY_CUDA_PLUGIN);
}

/* ... which loads on any machine (its static runtime needs no GPU to load)
 * and runs its cpu function on a CPU context. */
static void test_density_plugin_loads_on_cpu(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cpu");
    const char *ran = NULL;
    free(density_run(ctx, 13, 3, TSR_TEST_DENSITY_CUDA_PLUGIN, &ran));
    tsr_context_destroy(ctx);
}
#endif
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_cuda_args),
        cmocka_unit_test(test_cpu_context_runs_cpu),
        cmocka_unit_test(test_opencl_context_runs_cpu),
#ifdef TSR_TEST_V1_PLUGIN
        cmocka_unit_test(test_v1_plugin_loads),
#endif
#ifdef TSR_TEST_V2_PLUGIN
        cmocka_unit_test(test_v2_plugin_loads),
#endif
#ifdef TSR_TEST_V3_PLUGIN
        cmocka_unit_test(test_v3_plugin_loads),
#endif
        cmocka_unit_test(test_cuda_context_runs_cuda),
        cmocka_unit_test(test_function_error),
#ifdef TSR_HAVE_CUDA
        cmocka_unit_test(test_runtime_error_reaches_message),
        cmocka_unit_test(test_unchecked_launch_error),
#endif
#ifdef TSR_CUDA_EMU
        cmocka_unit_test(test_stream_failure_after_ok),
#endif
#ifdef TSR_HAVE_CUDA
        cmocka_unit_test(test_density_same_bits),
#ifdef TSR_TEST_DENSITY_CUDA_PLUGIN
        cmocka_unit_test(test_density_plugin_loads_on_cpu),
        cmocka_unit_test(test_density_plugin_same_bits),
#endif
#endif
    };
    return gdt_exit_code(cmocka_run_group_tests(tests, NULL, NULL), "cuda0");
}
