/*
 * graph_dev_test.h - the scaffolding shared by the task-graph device tests
 * (test_graph_opencl.c, test_graph_cuda.c and its CUDA emulator build).
 *
 * Both tests register kind "xform": a cpu function (here) and a device one
 * (the test file's: OpenCL or CUDA), out[i] = (in[i] * 3 + 7) ^ (i * 31),
 * bytes; each function counts its runs in the task's arg (runs_t), so a
 * test sees which one ran. What differs between the two files comes in a
 * gdt_dev_t (the device's name, its xform function, which of the kind's
 * function/kernel-name fields it fills) and in gdt_cpu_sees_device, which
 * the including file defines: whether its device query answered a device
 * inside a cpu function (wrong). Also shared: the random cities table of the
 * examples' density kind and the check of its output, the bit-for-bit
 * comparison of two runs, the version 1 plugin's graph, and the exit code
 * (77: skipped, when the device cannot be opened).
 *
 * Static inline helpers only (a header included by one test file each);
 * include it after <cmocka.h> and tessera/graph.h, tessera/context.h.
 */
#ifndef TSR_TESTS_GRAPH_DEV_TEST_H
#define TSR_TESTS_GRAPH_DEV_TEST_H

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/context.h"
#include "tessera/graph.h"

#define OK(x) assert_int_equal((x), TSR_OK)

typedef struct runs {
    atomic_int cpu, dev;  /* runs of xform's cpu / device function */
    atomic_int cpu_saw_dev; /* the device query answered a device inside cpu: wrong */
} runs_t;

/* The device a test file is about. */
typedef struct gdt_dev {
    const char *device; /* its tsr_context_set_device name: "opencl", "cuda0" */
    tsr_task_fn_t fn;   /* xform's implementation there; NULL where not built */
    bool cuda;          /* fn is the kind's cuda function (else its opencl one) */
} gdt_dev_t;

/* Defined by the including file: whether the device query of its API
 * (tsr_task_opencl, tsr_task_cuda) answered a device inside a cpu function. */
static bool gdt_cpu_sees_device(tsr_task_ctx_t *tc);

static const size_t SIZES[] = {0, 1, 2, 13, 8191, 8209, 40009};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

static inline uint8_t model(uint8_t in, size_t i)
{
    return (uint8_t)((uint8_t)(in * 3u + 7u) ^ (uint8_t)(i * 31u));
}

/* Every xform function's start: counts the run (the device's when dev) in
 * the task's runs_t; one input and one output, else the task fails. */
static inline tsr_status_t xform_begin(tsr_task_ctx_t *tc, size_t nin, size_t nout, bool dev)
{
    runs_t *r = tsr_task_arg(tc);
    atomic_fetch_add(dev ? &r->dev : &r->cpu, 1);
    if (!dev && gdt_cpu_sees_device(tc))
        atomic_fetch_add(&r->cpu_saw_dev, 1);
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "xform: one input, one output");
    return TSR_OK;
}

static inline tsr_status_t xform_cpu(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                     tsr_data_t *const *out, size_t nout)
{
    tsr_status_t rc = xform_begin(tc, nin, nout, false);
    if (rc != TSR_OK)
        return rc;
    size_t n = 0;
    const uint8_t *src = tsr_data_bytes(in[0], &n);
    uint8_t *dst = tsr_data_alloc_bytes(tc, out[0], n); /* never NULL for n == 0 but on OOM */
    if (!dst)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        dst[i] = model(src[i], i);
    return TSR_OK;
}

/* A context on device ("cpu", "cuda0", "opencl"); NULL when it cannot open. */
static inline tsr_context_t *new_ctx(const char *device)
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

static inline void register_xform(tsr_graph_t *g, const gdt_dev_t *dev)
{
    tsr_task_def_t def = {.name = "xform", .cpu = xform_cpu};
    if (dev->cuda)
        def.cuda = dev->fn;
    else
        def.opencl = dev->fn;
    OK(tsr_graph_register(g, &def));
}

/* Runs one xform task per size (concurrently, 3 threads) on ctx; checks
 * the outputs against the model; returns the counts in *r. */
static inline void run_sizes(tsr_context_t *ctx, const gdt_dev_t *dev, runs_t *r, unsigned seed)
{
    tsr_graph_params_t gp = {.threads = 3};
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, &gp, &g));
    register_xform(g, dev);
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
        if (dev->fn) {
            /* a device function without a kernel name records the kind's name */
            const char *kernel = dev->cuda ? info.cuda_kernel : info.opencl_kernel;
            assert_non_null(kernel);
            assert_string_equal(kernel, "xform");
            if (dev->cuda)
                assert_null(info.opencl_kernel);
        }
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

/* On a context of device (skipped where it cannot open), every xform task
 * runs the cpu function, which sees no device. */
static inline void expect_cpu_runs(const gdt_dev_t *dev, const char *device, unsigned seed)
{
    tsr_context_t *ctx = new_ctx(device);
    if (!ctx)
        skip();
    runs_t r = {0};
    run_sizes(ctx, dev, &r, seed);
    assert_int_equal(atomic_load(&r.cpu), (int)NSIZES);
    assert_int_equal(atomic_load(&r.dev), 0);
    assert_int_equal(atomic_load(&r.cpu_saw_dev), 0);
    tsr_context_destroy(ctx);
}

/* On ctx (the device's), every xform task runs the device function, in
 * each of two graphs (the second finds the first's caches). */
static inline void expect_device_runs(tsr_context_t *ctx, const gdt_dev_t *dev)
{
    for (unsigned round = 0; round < 2; round++) {
        runs_t r = {0};
        run_sizes(ctx, dev, &r, 11 + round);
        assert_int_equal(atomic_load(&r.dev), (int)NSIZES);
        assert_int_equal(atomic_load(&r.cpu), 0);
    }
}

/* A random cities(city, country, population, area_km2) table of n rows, as
 * the examples' density kind reads it: NULL populations and areas, zero and
 * negative areas among them. */
typedef struct gdt_cities {
    size_t n;
    const char **city;
    int64_t *pop;
    double *area;
    bool *pop_null, *area_null;
} gdt_cities_t;

/* Fills c with n random rows (seed) and registers them as table "cities" of
 * ctx; returns a buffer of n doubles for gdt_cities_check. */
static inline double *gdt_cities_register(tsr_context_t *ctx, gdt_cities_t *c, size_t n,
                                          unsigned seed)
{
    c->n = n;
    c->city = malloc((n + 1) * sizeof(*c->city));
    c->pop = malloc((n + 1) * sizeof(*c->pop));
    c->area = malloc((n + 1) * sizeof(*c->area));
    c->pop_null = malloc(n + 1);
    c->area_null = malloc(n + 1);
    double *got = malloc((n + 1) * sizeof(*got));
    assert_true(c->city && c->pop && c->area && c->pop_null && c->area_null && got);
    srand(seed);
    for (size_t r = 0; r < n; r++) {
        c->city[r] = r % 2 ? "a" : "b";
        c->pop[r] = (int64_t)rand() * rand() - (int64_t)rand();
        c->pop_null[r] = rand() % 10 == 0;
        int a = rand() % 20;
        c->area[r] = a == 0   ? 0.0
                     : a == 1 ? -3.5
                              : (double)rand() / ((double)rand() + 1.0) * 1e3;
        c->area_null[r] = rand() % 15 == 0;
    }
    tsr_column_data_t cols[] = {
        {.name = "city", .type = TSR_TYPE_VARCHAR, .values = c->city},
        {.name = "country", .type = TSR_TYPE_VARCHAR, .values = c->city},
        {.name = "population", .type = TSR_TYPE_INT64, .values = c->pop, .nulls = c->pop_null},
        {.name = "area_km2", .type = TSR_TYPE_DOUBLE, .values = c->area, .nulls = c->area_null},
    };
    OK(tsr_table_register_columns(ctx, "cities", 4, cols, n));
    return got;
}

/* Checks density's output out against c's rows (its row count and NULLs;
 * with check_city its city column too); stores the densities in got (NAN
 * for NULL) and returns it. */
static inline double *gdt_cities_check(gdt_cities_t *c, const tsr_data_t *out, bool check_city,
                                       double *got)
{
    assert_int_equal(tsr_data_row_count(out), c->n);
    for (size_t r = 0; r < c->n; r++) {
        bool want_null = c->pop_null[r] || c->area_null[r] || c->area[r] <= 0;
        assert_int_equal(tsr_data_is_null(out, r, 1), want_null);
        got[r] = want_null ? NAN : tsr_data_double(out, r, 1);
        if (check_city)
            assert_string_equal(tsr_data_string(out, r, 0, NULL), c->city[r]);
    }
    return got;
}

static inline void gdt_cities_free(gdt_cities_t *c)
{
    free(c->city);
    free(c->pop);
    free(c->area);
    free(c->pop_null);
    free(c->area_null);
}

/* A CPU context (*cpu) and one of device, returned, for a comparison of
 * the two; skipped (the CPU one destroyed) where device cannot open. */
static inline tsr_context_t *gdt_cpu_and(const char *device, tsr_context_t **cpu)
{
    *cpu = new_ctx("cpu");
    tsr_context_t *ctx = new_ctx(device);
    if (!ctx) {
        tsr_context_destroy(*cpu);
        skip();
    }
    return ctx;
}

/* a (the CPU's densities) and b (device's) are the same bits, row by row;
 * frees both. */
static inline void gdt_same_bits(double *a, double *b, size_t rows, const char *device)
{
    for (size_t r = 0; r < rows; r++)
        if (memcmp(&a[r], &b[r], sizeof(double)) != 0)
            fail_msg("rows %zu: row %zu: cpu %.17g, %s %.17g", rows, r, a[r], device, b[r]);
    free(a);
    free(b);
}

/* Reads a handle's uint64 output. */
static inline uint64_t u64_of(const tsr_data_t *d)
{
    size_t len = 0;
    const void *v = tsr_data_bytes(d, &len);
    uint64_t got = 0;
    assert_int_equal(len, sizeof(got));
    memcpy(&got, v, sizeof(got));
    return got;
}

/* A new graph on ctx, with the plugin at path loaded as name. */
static inline tsr_graph_t *gdt_plugin_graph(tsr_context_t *ctx, const char *name, const char *path)
{
    tsr_graph_t *g = NULL;
    OK(tsr_graph_create(ctx, NULL, &g));
    OK(tsr_graph_load_plugin(g, name, path));
    return g;
}

/* The version 1 plugin's graph (tests/plugins/graph_v1_plugin.c): loads
 * path into a new graph on ctx and adds v1_len (inputs "hello", "xy") and
 * v1_len2 ("hello"), writing o[0] and o[1]; info[0] and info[1]: theirs,
 * as added (valid while the graph lives). */
static inline tsr_graph_t *gdt_v1_graph(tsr_context_t *ctx, const char *path, tsr_data_t **o,
                                        tsr_task_info_t *info)
{
    tsr_graph_t *g = gdt_plugin_graph(ctx, "v1", path);
    tsr_data_t *a = NULL, *b = NULL;
    OK(tsr_graph_data_bytes(g, "a", "hello", 5, &a));
    OK(tsr_graph_data_bytes(g, "b", "xy", 2, &b));
    OK(tsr_graph_data(g, "o1", &o[0]));
    OK(tsr_graph_data(g, "o2", &o[1]));
    tsr_data_t *ins[] = {a, b};
    tsr_task_params_t p1 = {.kind = "v1_len", .ninputs = 2, .inputs = ins, .noutputs = 1,
                            .outputs = &o[0]};
    tsr_task_params_t p2 = {.kind = "v1_len2", .ninputs = 1, .inputs = &a, .noutputs = 1,
                            .outputs = &o[1]};
    tsr_task_t *t1 = NULL, *t2 = NULL;
    OK(tsr_graph_add(g, &p1, &t1));
    OK(tsr_graph_add(g, &p2, &t2));
    tsr_task_info(t1, &info[0]);
    tsr_task_info(t2, &info[1]);
    return g;
}

/* Runs gdt_v1_graph's graph: v1_len wrote 5 + 2, v1_len2 5; destroys g. */
static inline void gdt_v1_finish(tsr_graph_t *g, tsr_data_t *const *o)
{
    OK(tsr_graph_submit(g));
    OK(tsr_graph_wait(g, 60000));
    assert_int_equal(u64_of(o[0]), 7);
    assert_int_equal(u64_of(o[1]), 5);
    tsr_graph_destroy(g);
}

/* main's exit code after the cmocka group: 1 if a test failed, 77
 * (skipped) when device could not be opened, else 0. */
static inline int gdt_exit_code(int failed, const char *device)
{
    if (failed)
        return 1;
    tsr_context_t *probe = new_ctx(device);
    if (!probe)
        return 77;
    tsr_context_destroy(probe);
    return 0;
}

#endif /* TSR_TESTS_GRAPH_DEV_TEST_H */
