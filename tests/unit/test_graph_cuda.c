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
 * after the tests that need none.
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

#define OK(x) assert_int_equal((x), TSR_OK)

typedef struct runs {
    atomic_int cpu, cuda;
    atomic_int cpu_saw_cuda; /* tsr_task_cuda answered OK inside cpu: wrong */
} runs_t;

static uint8_t model(uint8_t in, size_t i)
{
    return (uint8_t)((uint8_t)(in * 3u + 7u) ^ (uint8_t)(i * 31u));
}

static tsr_status_t xform_cpu(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    runs_t *r = tsr_task_arg(tc);
    atomic_fetch_add(&r->cpu, 1);
    void *s = (void *)1;
    int dev = 5;
    if (tsr_task_cuda(tc, &s, &dev) != TSR_ERR_UNSUPPORTED || s != NULL || dev != -1)
        atomic_fetch_add(&r->cpu_saw_cuda, 1);
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform: one input, one output");
    size_t n = 0;
    const uint8_t *src = tsr_data_bytes(in[0], &n);
    uint8_t *dst = tsr_data_alloc_bytes(tc, out[0], n);
    if (!dst && n)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        dst[i] = model(src[i], i);
    return TSR_OK;
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
    runs_t *r = tsr_task_arg(tc);
    atomic_fetch_add(&r->cuda, 1);
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform: one input, one output");
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
    tsr_status_t rc = tsr_task_cuda_check(tc, cudaMalloc((void **)&d, 2 * n), "cudaMalloc");
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

static const size_t SIZES[] = {0, 1, 2, 13, 8191, 8209, 40009};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

/* A context on device ("cpu", "cuda0", "opencl"); NULL when it cannot open. */
static tsr_context_t *new_ctx(const char *device)
{
    tsr_context_params_t cp = {.threads = 2};
    tsr_context_t *ctx = NULL;
    OK(tsr_context_create(&cp, &ctx));
    if (strcmp(device, "cpu") != 0 && tsr_context_set_device(ctx, device) != TSR_OK) {
        tsr_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

static void register_xform(tsr_graph_t *g)
{
    tsr_task_def_t def = {.name = "xform", .cpu = xform_cpu};
#ifdef TSR_HAVE_CUDA
    def.cuda = xform_cuda;
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
#ifdef TSR_HAVE_CUDA
        /* a cuda function without a kernel name records the kind's name */
        assert_non_null(info.cuda_kernel);
        assert_string_equal(info.cuda_kernel, "xform");
        assert_null(info.opencl_kernel);
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
    tsr_context_t *ctx = new_ctx("cpu");
    runs_t r = {0};
    run_sizes(ctx, &r, 7);
    assert_int_equal(atomic_load(&r.cpu), (int)NSIZES);
    assert_int_equal(atomic_load(&r.cuda), 0);
    assert_int_equal(atomic_load(&r.cpu_saw_cuda), 0);
    tsr_context_destroy(ctx);
}

/* A kind with cpu and cuda functions (no opencl) runs cpu on OpenCL. */
static void test_opencl_context_runs_cpu(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("opencl");
    if (!ctx)
        skip();
    runs_t r = {0};
    run_sizes(ctx, &r, 9);
    assert_int_equal(atomic_load(&r.cpu), (int)NSIZES);
    assert_int_equal(atomic_load(&r.cuda), 0);
    assert_int_equal(atomic_load(&r.cpu_saw_cuda), 0);
    tsr_context_destroy(ctx);
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
/* Reads a handle's uint64 output. */
static uint64_t u64_of(const tsr_data_t *d)
{
    size_t len = 0;
    const void *v = tsr_data_bytes(d, &len);
    uint64_t got = 0;
    assert_int_equal(len, sizeof(got));
    memcpy(&got, v, sizeof(got));
    return got;
}

/* A CUDA context where there is one (the plugins' cpu functions must run
 * there), else a CPU one. *cuda: which. */
static tsr_context_t *cuda_or_cpu(bool *cuda)
{
    tsr_context_t *ctx = new_ctx("cuda0");
    *cuda = ctx != NULL;
    return ctx ? ctx : new_ctx("cpu");
}
#endif

#ifdef TSR_TEST_V1_PLUGIN
static void test_v1_plugin_loads(void **state)
{
    (void)state;
    bool cuda;
    tsr_context_t *ctx = cuda_or_cpu(&cuda);
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
    assert_null(info.cuda_kernel);
    tsr_task_info(t2, &info);
    assert_null(info.opencl_kernel);
    assert_null(info.cuda_kernel);
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 60000));
    assert_int_equal(u64_of(o1), 7);
    assert_int_equal(u64_of(o2), 5);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_TEST_V2_PLUGIN
static void test_v2_plugin_loads(void **state)
{
    (void)state;
    bool cuda;
    tsr_context_t *ctx = cuda_or_cpu(&cuda);
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    OK(tsr_graph_load_plugin(g, "v2", TSR_TEST_V2_PLUGIN));
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
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    OK(tsr_graph_load_plugin(g, "v3", TSR_TEST_V3_PLUGIN));
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
    for (unsigned round = 0; round < 2; round++) {
        runs_t r = {0};
        run_sizes(ctx, &r, 11 + round);
        assert_int_equal(atomic_load(&r.cuda), (int)NSIZES);
        assert_int_equal(atomic_load(&r.cpu), 0);
    }
#ifdef TSR_CUDA_EMU
    /* the functions worked on their own streams, and freed what they took */
    assert_int_equal(tsr_emu_null_stream_uses(), null_uses);
    assert_int_equal(tsr_emu_device_bytes(), dev_bytes);
#endif
    tsr_context_destroy(ctx);
}

/* Runs one xform task with param mode on ctx, and an identity task reading
 * its output; returns the wait's status; *info: the xform task's. */
static tsr_status_t run_mode(tsr_context_t *ctx, const char *mode, tsr_task_info_t *info,
                             tsr_task_state_t *after)
{
    tsr_graph_params_t gp = {.threads = 1};
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, &gp, &g));
    register_xform(g);
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
    assert_int_equal(atomic_load(&r.cuda), 1);
    tsr_task_info(t, info);
    /* the message lives with the graph: keep a copy in a static buffer */
    static char msg[1024];
    strncpy(msg, info->message, sizeof(msg) - 1);
    info->message = msg;
    info->label = info->kind = info->plugin = NULL;
    info->opencl_kernel = info->cuda_kernel = NULL;
    *after = tsr_task_state(u);
    if (rc != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, "xf"));
    }
    tsr_graph_destroy(g);
    return rc;
}

static void test_function_error(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
    tsr_task_info_t info;
    tsr_task_state_t after;
    assert_int_equal(run_mode(ctx, "fail", &info, &after), TSR_ERR_INVALID_ARG);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    assert_int_equal(info.status, TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(info.message, "xform refused: on purpose"));
    assert_int_equal(after, TSR_TASK_FAILED); /* its dependant fails too */
    tsr_context_destroy(ctx);
}

#ifdef TSR_HAVE_CUDA
static void test_runtime_error_reaches_message(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
    tsr_task_info_t info;
    tsr_task_state_t after;
    assert_int_equal(run_mode(ctx, "oom", &info, &after), TSR_ERR_NOMEM);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    /* "CUDA cudaMalloc (4 PiB) failed on <device>: cudaErrorMemoryAllocation: out of memory" */
    assert_non_null(strstr(info.message, "cudaMalloc (4 PiB)"));
    assert_non_null(strstr(info.message, "cudaErrorMemoryAllocation"));
    assert_non_null(strstr(info.message, cudaGetErrorString(cudaErrorMemoryAllocation)));
    assert_int_equal(after, TSR_TASK_FAILED);
    /* the device is fine afterwards */
    runs_t r = {0};
    run_sizes(ctx, &r, 5);
    assert_int_equal(atomic_load(&r.cuda), (int)NSIZES);
    tsr_context_destroy(ctx);
}

/* A launch error the function ignored still fails the task (the engine
 * reads the runtime's last error after the function). */
static void test_unchecked_launch_error(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
    tsr_task_info_t info;
    tsr_task_state_t after;
    assert_int_equal(run_mode(ctx, "badlaunch", &info, &after), TSR_ERR_DEVICE);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    assert_non_null(strstr(info.message, "cudaErrorInvalidConfiguration"));
    assert_int_equal(after, TSR_TASK_FAILED);
    tsr_context_destroy(ctx);
}
#endif

#ifdef TSR_CUDA_EMU
/* The function returned OK, the stream's synchronization fails: the task
 * fails with the CUDA error string. */
static void test_stream_failure_after_ok(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx("cuda0");
    if (!ctx)
        skip();
    long before = tsr_emu_injected();
    tsr_task_info_t info;
    tsr_task_state_t after;
    assert_int_equal(run_mode(ctx, "streamfail", &info, &after), TSR_ERR_DEVICE);
    tsr_emu_fail_after(-1, cudaSuccess);
    assert_int_equal(tsr_emu_injected(), before + 1);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    assert_non_null(strstr(info.message, "cudaStreamSynchronize"));
    assert_non_null(strstr(info.message, "cudaErrorLaunchFailure"));
    assert_non_null(strstr(info.message, "unspecified launch failure"));
    assert_int_equal(after, TSR_TASK_FAILED);
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
    assert_int_equal(tsr_data_row_count(out), n);
    for (size_t r = 0; r < n; r++) {
        bool want_null = pop_null[r] || area_null[r] || area[r] <= 0;
        assert_int_equal(tsr_data_is_null(out, r, 1), want_null);
        got[r] = want_null ? NAN : tsr_data_double(out, r, 1);
        assert_string_equal(tsr_data_string(out, r, 0, NULL), city[r]);
    }
    tsr_graph_destroy(g);
    free(city);
    free(pop);
    free(area);
    free(pop_null);
    free(area_null);
    return got;
}

/* Compares the density kind's CUDA implementation (in-process, or from
 * plugin_path) with its CPU one over 0, 1, 13 and 8209 rows. */
static void density_same_bits(const char *plugin_path)
{
    static const size_t rows[] = {0, 1, 13, 8209};
    for (size_t s = 0; s < sizeof(rows) / sizeof(rows[0]); s++) {
        tsr_context_t *cpu = new_ctx("cpu"), *cu = new_ctx("cuda0");
        if (!cu) {
            tsr_context_destroy(cpu);
            skip();
        }
        const char *ran_cpu = NULL, *ran_cu = NULL;
        double *a = density_run(cpu, rows[s], 31 + (unsigned)s, NULL, &ran_cpu);
        double *b = density_run(cu, rows[s], 31 + (unsigned)s, plugin_path, &ran_cu);
        assert_string_equal(ran_cpu, "cpu");
        if (!plugin_path)
            assert_string_equal(ran_cu, "cuda");
        for (size_t r = 0; r < rows[s]; r++)
            if (memcmp(&a[r], &b[r], sizeof(double)) != 0)
                fail_msg("rows %zu: row %zu: cpu %.17g, cuda %.17g", rows[s], r, a[r], b[r]);
        free(a);
        free(b);
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
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed)
        return 1;
    tsr_context_t *probe = new_ctx("cuda0");
    if (!probe)
        return 77;
    tsr_context_destroy(probe);
    return 0;
}
