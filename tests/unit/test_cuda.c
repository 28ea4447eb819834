/*
 * test_cuda.c - the CUDA backend: engine/device/cuda.c (buffers, transfers,
 * fills, events, queues, enumeration notes), hashagg_cuda.c with the kernels
 * of kernels/cuda/hashagg.cuh (the differential cases of hashagg_model.h,
 * shared with test_hashagg_device.c, with every update strategy, from host
 * memory and from device memory), and the static map (hashmap_cuda.c).
 *
 * Built twice (tests/CMakeLists.txt):
 *  - unit.test_cuda: against the real CUDA runtime. Without a CUDA device, or
 *    without CUDA in the build, every test reports skipped (cmocka skip())
 *    and the program exits 77, which ctest shows as skipped, never passed.
 *  - unit.test_cuda_emu: against the CUDA emulator (tests/cudaemu/), on every
 *    machine. It runs the same backend code and the same kernel bodies on
 *    host threads, plus what only an emulator can do: injected failures of
 *    every fallible runtime call (each must surface as TSR_ERR_NOMEM or
 *    TSR_ERR_DEVICE with CUDA's text, leaking nothing), a missing driver,
 *    (hash aggregation, the map, and join / filter / partitioning),
 *    random delays in the streams (ordering of the double-buffered uploads),
 *    and a check that the backend never used the legacy default stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "hashagg_model.h"

#include "device/filter.h"
#include "device/hashjoin.h"
#include "device/partition.h"

#ifdef TSR_HAVE_CUDA
#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/hashagg_cuda_internal.h"
#endif
#ifdef TSR_CUDA_EMU
#include "emu.h"
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSR_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TSR_TEST_ASAN 1
#endif
#if defined(TSR_TEST_ASAN) && !defined(TSR_CUDA_EMU)
/* The CUDA driver maps memory where ASan's shadow gap would be protected. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "protect_shadow_gap=0";
}
#endif

typedef struct fixture {
    dev_pair_t pair;                     /* first: the state is also a dev_pair_t */
    tsr_dev_hashagg_strategy_t strategy; /* of the running test */
    bool device_rows;                    /* feed rows from device memory */
} fixture_t;

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f || dev_pair_open(&f->pair, TSR_DEVICE_CUDA) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    dev_pair_close(&f->pair);
    free(f);
    return 0;
}

static tsr_dev_t *cuda_dev(void **state)
{
    fixture_t *f = *state;
    return dev_pair_need(&f->pair);
}

#ifdef TSR_HAVE_CUDA

/* ---- the backend ---------------------------------------------------------------------- */

static void test_list_and_info(void **state)
{
    tsr_dev_t *dev = cuda_dev(state);
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    const tsr_device_backend_info_t *bi = tsr_device_list_backend(list, TSR_DEVICE_CUDA);
    assert_true(bi->built);
    assert_true(bi->ndevices >= 1);
    tsr_device_list_destroy(list);
    assert_int_equal(dev->info.backend, TSR_DEVICE_CUDA);
    assert_true(dev->info.is_gpu);
    assert_true(dev->info.compute_units >= 1);
    assert_true(dev->info.global_mem_bytes > 0);
    assert_non_null(strstr(dev->info.version, "compute capability"));
    print_message("CUDA device: %s, %s, %u SMs\n", dev->info.name, dev->info.version,
                  dev->info.compute_units);
}

/* Round trips at offsets, non-blocking transfers with events, pinned memory. */
static void test_transfers(void **state)
{
    tsr_dev_t *dev = cuda_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    const size_t n = 100003;
    tsr_dev_buf_t *buf = NULL, *buf2 = NULL;
    tsr_dev_host_t *pin = NULL;
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf, &err), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf2, &err), TSR_OK);
    assert_int_equal(tsr_dev_host_alloc(dev, n, &pin, &err), TSR_OK);
    assert_int_equal((uintptr_t)pin->ptr % 64, 0);
    uint8_t *src = malloc(n), *dst = malloc(n);
    assert_non_null(src);
    assert_non_null(dst);
    uint64_t seed = 7;
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)rng_next(&seed);
    /* blocking write at an odd offset, read back */
    assert_int_equal(tsr_dev_write(dev->queue, buf, 3, src, n - 3, true, NULL, &err), TSR_OK);
    memset(dst, 0, n);
    assert_int_equal(tsr_dev_read(dev->queue, buf, 3, dst, n - 3, true, NULL, &err), TSR_OK);
    assert_memory_equal(src, dst, n - 3);
    /* non-blocking from pinned memory on a second queue, timed */
    tsr_dev_queue_t *q = NULL;
    assert_int_equal(tsr_dev_queue_create(dev, &q, &err), TSR_OK);
    memcpy(pin->ptr, src, n);
    tsr_dev_event_t *ev = NULL;
    assert_int_equal(tsr_dev_write(q, buf2, 0, pin->ptr, n, false, &ev, &err), TSR_OK);
    assert_non_null(ev);
    uint64_t ns = 0;
    assert_int_equal(tsr_dev_event_elapsed_ns(ev, &ns, &err), TSR_OK);
    tsr_dev_event_release(ev);
    memset(pin->ptr, 0, n);
    assert_int_equal(tsr_dev_read(q, buf2, 0, pin->ptr, n, false, NULL, &err), TSR_OK);
    assert_int_equal(tsr_dev_queue_finish(q, &err), TSR_OK);
    assert_memory_equal(src, pin->ptr, n);
    /* device-to-device */
    assert_int_equal(tsr_dev_cuda_copy(q, buf, 0, buf2, 1, n - 1, &err), TSR_OK);
    assert_int_equal(tsr_dev_read(q, buf, 0, dst, n - 1, true, NULL, &err), TSR_OK);
    assert_memory_equal(src + 1, dst, n - 1);
    assert_int_equal(tsr_dev_cuda_copy(q, buf, 1, buf2, 0, n, NULL), TSR_ERR_INVALID_ARG);
    /* ranges the wrappers refuse before the backend sees them */
    assert_int_equal(tsr_dev_read(q, buf, 1, dst, n, true, NULL, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_write(dev->queue, buf, 0, src, 0, true, NULL, NULL),
                     TSR_ERR_INVALID_ARG);
    tsr_dev_queue_destroy(q);
    tsr_dev_host_free(pin);
    tsr_dev_buf_free(buf2);
    tsr_dev_buf_free(buf);
    free(src);
    free(dst);
}

/* Every pattern size, aligned and not: memset for uniform patterns, the fill
 * kernel (word and byte paths) for the others. */
static void test_fills(void **state)
{
    tsr_dev_t *dev = cuda_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    const size_t n = 4096 + 512;
    tsr_dev_buf_t *buf = NULL;
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf, &err), TSR_OK);
    uint8_t *want = malloc(n), *got = malloc(n);
    assert_non_null(want);
    assert_non_null(got);
    uint64_t seed = 3;
    for (size_t psize = 1; psize <= 128; psize *= 2) {
        for (int uniform = 0; uniform < 2; uniform++) {
            static const size_t offs[] = {0, 1, 8, 128};
            for (size_t oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++) {
                size_t off = offs[oi] / psize * psize; /* offsets are pattern multiples */
                size_t size = (n - off - 256) / psize * psize;
                uint8_t pat[128];
                for (size_t i = 0; i < psize; i++)
                    pat[i] = uniform ? 0x5c : (uint8_t)rng_next(&seed);
                memset(want, 0xEE, n);
                assert_int_equal(tsr_dev_write(dev->queue, buf, 0, want, n, true, NULL, &err),
                                 TSR_OK);
                for (size_t i = 0; i < size; i++)
                    want[off + i] = pat[i % psize];
                tsr_dev_event_t *ev = NULL;
                assert_int_equal(tsr_dev_fill(dev->queue, buf, off, pat, psize, size, &ev, &err),
                                 TSR_OK);
                memset(pat, 0, sizeof(pat)); /* the fill owns its copy once queued */
                assert_int_equal(tsr_dev_event_wait(ev, &err), TSR_OK);
                tsr_dev_event_release(ev);
                assert_int_equal(tsr_dev_read(dev->queue, buf, 0, got, n, true, NULL, &err),
                                 TSR_OK);
                if (memcmp(want, got, n) != 0)
                    fail_msg("fill of a %zu-byte pattern (uniform %d) at %zu differs", psize,
                             uniform, off);
            }
        }
    }
    tsr_dev_buf_free(buf);
    free(want);
    free(got);
}

/* ---- hash aggregation ------------------------------------------------------------------- */

/* Feeds rows through device memory: each column uploaded to a buffer of its
 * own, then tsr_dev_hashagg_cuda_update_device in launches of *arg rows. */
static tsr_status_t update_from_device(const hm_ctx_t *c, tsr_dev_hashagg_t *ha,
                                       const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err)
{
    tsr_dev_t *dev = c->dev;
    size_t n = rows->n, words = (n + 63) / 64;
    tsr_cuda_ha_dev_rows_t dr;
    memset(&dr, 0, sizeof(dr));
    dr.launch_rows = *(const size_t *)c->arg;
    if (n == 0) /* nothing to upload; the entry point accepts no rows */
        return tsr_dev_hashagg_cuda_update_device(ha, NULL, &dr, err);
    dr.n = n;
    tsr_dev_buf_t *bufs[2 * (TSR_DEV_HASHAGG_MAX_KEYS + TSR_DEV_HASHAGG_MAX_AGGS)];
    size_t nb = 0;
    tsr_status_t rc = TSR_OK;
#define UPLOAD(dst, src, bytes)                                                                    \
    do {                                                                                           \
        tsr_dev_buf_t *b_ = NULL;                                                                  \
        if (rc == TSR_OK && (rc = tsr_dev_buf_alloc(dev, (bytes), &b_, err)) == TSR_OK) {          \
            bufs[nb++] = b_;                                                                       \
            rc = tsr_dev_write(dev->queue, b_, 0, (src), (bytes), true, NULL, err);                \
            (dst) = b_;                                                                            \
        }                                                                                          \
    } while (0)
    for (size_t k = 0; k < ha->spec.nkeys; k++) {
        UPLOAD(dr.keys[k], rows->keys[k], n * 8);
        if (rows->key_valid[k])
            UPLOAD(dr.key_valid[k], rows->key_valid[k], words * 8);
    }
    for (size_t a = 0; a < ha->spec.naggs; a++) {
        if (rows->values[a])
            UPLOAD(dr.values[a], rows->values[a], n * 8);
        if (rows->valid[a])
            UPLOAD(dr.valid[a], rows->valid[a], words * 8);
    }
#undef UPLOAD
    if (rc == TSR_OK)
        rc = tsr_dev_hashagg_cuda_update_device(ha, NULL, &dr, err);
    for (size_t i = 0; i < nb; i++)
        tsr_dev_buf_free(bufs[i]);
    return rc;
}

static void run_on(void **state, void (*fn)(const hm_ctx_t *))
{
    fixture_t *f = *state;
    static const size_t launch = 4096 + 64; /* several launches per call, odd ones */
    hm_ctx_t c = {
        .dev = cuda_dev(state), .other = f->pair.cpu, .strategy = f->strategy, .arg = (void *)&launch};
#ifdef TSR_CUDA_EMU
    c.large_rows = (1u << 20) + 4099; /* the emulated device uploads in 256K-row chunks */
#else
    c.large_rows = (4u << 20) + 4099; /* GPUs upload in 4M-row chunks */
#endif
    if (f->device_rows)
        c.update = update_from_device;
    fn(&c);
}

#define ON_CUDA(fn, suffix, strat, devrows)                                                        \
    static void test_##fn##suffix(void **state)                                                    \
    {                                                                                              \
        ((fixture_t *)*state)->strategy = strat;                                                   \
        ((fixture_t *)*state)->device_rows = devrows;                                              \
        run_on(state, hm_case_##fn);                                                               \
    }
/* the backend's choice (AUTO), each kernel forced, and rows from device memory */
#define ON_ALL(fn)                                                                                 \
    ON_CUDA(fn, _auto, TSR_DEV_HASHAGG_AUTO, false)                                                \
    ON_CUDA(fn, _global, TSR_DEV_HASHAGG_GLOBAL, false)                                            \
    ON_CUDA(fn, _local, TSR_DEV_HASHAGG_LOCAL, false)                                              \
    ON_CUDA(fn, _dev, TSR_DEV_HASHAGG_AUTO, true)
ON_ALL(sizes)
ON_CUDA(large, _auto, TSR_DEV_HASHAGG_AUTO, false)
ON_ALL(skewed)
ON_ALL(many_groups)
ON_ALL(composite_nulls)
ON_ALL(null_values)
ON_ALL(no_keys)
ON_ALL(sum_overflow)
ON_ALL(dense_keys)
ON_ALL(plain_aggs)
ON_ALL(nan_order)
ON_ALL(hash_collisions)
ON_CUDA(bad_args, _auto, TSR_DEV_HASHAGG_AUTO, false)
ON_CUDA(alloc_failures, _auto, TSR_DEV_HASHAGG_AUTO, false)

/* ---- kernel variants (TSR_CUDA_HASHAGG, docs/devices.md) ---------------------------- */

/* Few groups, the regs kernel's range: every group listed (8 keys, narrow
 * layout), a mix of listed and unlisted groups (20 keys; 2 keys x 3 values
 * with NULL keys and a wide layout: fewer listed), skew, NULL values, NaN,
 * no keys at all (one group); several update calls, so later launches find
 * the groups in the table. */
static void case_few_groups(const hm_ctx_t *c)
{
    gen_t g = {.n = 40009, .nkeys = 1, .key_range = 8, .naggs = 3, .val_null_pct = 5, .seed = 61};
    hm_run_gen(c, &g, 4);
    g = (gen_t){.n = 30011,
                .nkeys = 2,
                .key_range = 3,
                .skew_pct = 90,
                .key_null_pct = 10,
                .val_null_pct = 20,
                .nan = true,
                .naggs = 5,
                .seed = 62};
    hm_run_gen(c, &g, 3);
    g = (gen_t){.n = 20011, .nkeys = 1, .key_range = 20, .naggs = 2, .seed = 63};
    hm_run_gen(c, &g, 3);
    g = (gen_t){.n = 10007, .nkeys = 0, .val_null_pct = 10, .nan = true, .seed = 64};
    hm_run_gen(c, &g, 3);
}

/* Keys in runs of 4 and 16 equal rows, far more groups than the table's
 * first 1024 slots, in one launch: a warp holds a few rows of each of
 * several new keys when the table fills up, so whole groups of lanes of one
 * key go to the retry list (the coop kernel's leader and its members). */
static void case_key_runs(const hm_ctx_t *c)
{
    static const size_t runs[] = {4, 16};
    for (size_t r = 0; r < 2; r++) {
        gen_t g = {.n = 40009, .nkeys = 1 + r, .key_range = 2, .naggs = 4, .seed = 70 + r};
        if (r)
            g.key_null_pct = 5;
        data_t d;
        data_make(&g, &d);
        for (size_t i = 0; i < d.n; i++)
            d.keys[0][i] = (i / runs[r]) * 0x9e3779b97f4a7c15ULL;
        hm_run_case(c, &d, 1);
        data_free(&d);
    }
}

static int variant_teardown(void **state)
{
    (void)state;
    unsetenv(CU_HA_ENV);
    return 0;
}

/* Runs case fn with every launch on kernel `variant` (except retry rounds). */
static void run_variant(void **state, const char *variant, void (*fn)(const hm_ctx_t *),
                        bool devrows)
{
    fixture_t *f = *state;
    cuda_dev(state);
    assert_int_equal(setenv(CU_HA_ENV, variant, 1), 0);
    f->strategy = TSR_DEV_HASHAGG_AUTO;
    f->device_rows = devrows;
    run_on(state, fn);
    unsetenv(CU_HA_ENV);
}

/* (unused: the emulator build under ASan registers a subset, see main) */
#define ON_VARIANT(fn, variant)                                                                    \
    __attribute__((unused)) static void test_##fn##_##variant(void **state)                        \
    {                                                                                              \
        run_variant(state, #variant, hm_case_##fn, false);                                         \
    }
#define ON_VARIANTS(fn)                                                                            \
    ON_VARIANT(fn, lane) ON_VARIANT(fn, warp) ON_VARIANT(fn, coop) ON_VARIANT(fn, regs)
#define hm_case_few_groups case_few_groups
#define hm_case_key_runs case_key_runs
/* every case with each variant, except where the forced kernel is the one a
 * _local or _auto test above already runs (lane with many groups) or the case
 * adds little to key_runs for the time it takes under ASan */
ON_VARIANTS(few_groups)
ON_VARIANTS(key_runs)
ON_VARIANT(sizes, coop)
ON_VARIANT(sizes, regs)
ON_VARIANT(skewed, warp)
ON_VARIANT(skewed, coop)
ON_VARIANT(skewed, regs)
ON_VARIANT(many_groups, coop)
ON_VARIANTS(composite_nulls)
ON_VARIANTS(null_values)
ON_VARIANTS(no_keys)
ON_VARIANTS(sum_overflow)
ON_VARIANTS(dense_keys)
ON_VARIANTS(nan_order)
ON_VARIANTS(hash_collisions)

/* The new kernels over rows from device memory, several launches per call. */
static void test_few_groups_coop_dev(void **state)
{
    run_variant(state, "coop", case_few_groups, true);
}

static void test_few_groups_regs_dev(void **state)
{
    run_variant(state, "regs", case_few_groups, true);
}

/* The names, an unknown one, and AUTO's choice as groups appear. */
static void test_variant_pick(void **state)
{
    tsr_dev_t *dev = cuda_dev(state);
    assert_int_equal(tsr_hashagg_cuda_variant(NULL), -1);
    assert_int_equal(tsr_hashagg_cuda_variant(""), -1);
    assert_int_equal(tsr_hashagg_cuda_variant("auto"), -1);
    assert_int_equal(tsr_hashagg_cuda_variant("global"), TSR_CUDA_HA_GLOBAL);
    assert_int_equal(tsr_hashagg_cuda_variant("lane"), TSR_CUDA_HA_LOCAL);
    assert_int_equal(tsr_hashagg_cuda_variant("warp"), TSR_CUDA_HA_LOCAL_WARP);
    assert_int_equal(tsr_hashagg_cuda_variant("coop"), TSR_CUDA_HA_LOCAL_COOP);
    assert_int_equal(tsr_hashagg_cuda_variant("regs"), TSR_CUDA_HA_REGS);
    assert_int_equal(tsr_hashagg_cuda_variant("Regs"), -2);

    tsr_dev_hashagg_spec_t spec = {.nkeys = 1, .naggs = 3};
    spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
    spec.aggs[1] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64};
    spec.aggs[2] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_DOUBLE};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_hashagg_t *ha = NULL;
    assert_int_equal(setenv(CU_HA_ENV, "fastest", 1), 0);
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_ERR_INVALID_ARG);
    assert_null(ha);
    assert_non_null(strstr(err.message, "TSR_CUDA_HASHAGG=fastest"));
    unsetenv(CU_HA_ENV);

    /* the benchmark's layout (SUM, COUNT(*), SUM of a double) over 8 keys */
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_OK);
    const cu_ha_t *h = ha->impl;
    assert_true(h->rgroups >= 8);
    assert_int_equal(tsr_hashagg_cuda_pick(ha), TSR_CUDA_HA_LOCAL_WARP); /* no group yet */
    enum { N = 5000 };
    static uint64_t k[N], v[N];
    for (size_t i = 0; i < N; i++) {
        k[i] = i % 8;
        v[i] = i;
    }
    tsr_dev_hashagg_rows_t rows = {.n = N};
    rows.keys[0] = k;
    rows.values[0] = v;
    rows.values[2] = v;
    assert_int_equal(tsr_dev_hashagg_update(ha, NULL, &rows, &err), TSR_OK);
    assert_int_equal(tsr_dev_hashagg_ngroups(ha), 8);
    assert_int_equal(tsr_hashagg_cuda_pick(ha), TSR_CUDA_HA_REGS);
    for (size_t i = 0; i < N; i++)
        k[i] = i % 40;
    assert_int_equal(tsr_dev_hashagg_update(ha, NULL, &rows, &err), TSR_OK);
    assert_int_equal(tsr_dev_hashagg_ngroups(ha), 40);
    assert_int_equal(tsr_hashagg_cuda_pick(ha), TSR_CUDA_HA_LOCAL_WARP);
    tsr_dev_hashagg_destroy(ha);
    ha = NULL;

    /* forced: every launch, whatever the groups */
    assert_int_equal(setenv(CU_HA_ENV, "coop", 1), 0);
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_OK);
    assert_int_equal(tsr_hashagg_cuda_pick(ha), TSR_CUDA_HA_LOCAL_COOP);
    tsr_dev_hashagg_destroy(ha);
    assert_int_equal(setenv(CU_HA_ENV, "regs", 1), 0);
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_OK);
    assert_int_equal(tsr_hashagg_cuda_pick(ha), TSR_CUDA_HA_REGS);
    tsr_dev_hashagg_destroy(ha);
    unsetenv(CU_HA_ENV);
}

/* The device-memory entry point refuses what it cannot read. */
static void test_device_rows_bad_args(void **state)
{
    fixture_t *f = *state;
    tsr_dev_t *dev = cuda_dev(state);
    tsr_dev_hashagg_spec_t spec = {.nkeys = 1, .naggs = 1};
    spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
    tsr_dev_hashagg_t *ha = NULL, *cpu_ha = NULL;
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, NULL), TSR_OK);
    assert_int_equal(tsr_dev_hashagg_create(f->pair.cpu, &spec, &cpu_ha, NULL), TSR_OK);
    tsr_dev_buf_t *k = NULL, *v = NULL, *cpu_buf = NULL;
    assert_int_equal(tsr_dev_buf_alloc(dev, 800, &k, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, 80, &v, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(f->pair.cpu, 800, &cpu_buf, NULL), TSR_OK);
    tsr_cuda_ha_dev_rows_t r = {.n = 100, .keys = {k}, .values = {v}};
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(ha, NULL, &r, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "aggregate 0"));
    r.values[0] = cpu_buf;
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(ha, NULL, &r, NULL), TSR_ERR_INVALID_ARG);
    r.values[0] = k;
    r.keys[0] = NULL;
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(ha, NULL, &r, NULL), TSR_ERR_INVALID_ARG);
    r.keys[0] = k;
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(cpu_ha, NULL, &r, NULL),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(ha, f->pair.cpu->queue, &r, NULL),
                     TSR_ERR_INVALID_ARG);
    r.n = 0;
    assert_int_equal(tsr_dev_hashagg_cuda_update_device(ha, NULL, &r, NULL), TSR_OK);
    tsr_dev_buf_free(k);
    tsr_dev_buf_free(v);
    tsr_dev_buf_free(cpu_buf);
    tsr_dev_hashagg_destroy(ha);
    tsr_dev_hashagg_destroy(cpu_ha);
}

/* ---- the static map ----------------------------------------------------------------------- */

typedef struct map_run {
    tsr_dev_buf_t *keys, *vals, *out, *found;
    size_t n;
} map_run_t;

static void map_bufs(tsr_dev_t *dev, const uint64_t *keys, const uint64_t *vals, size_t n,
                     map_run_t *r)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    assert_int_equal(tsr_dev_buf_alloc(dev, n * 8, &r->keys, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, n * 8, &r->vals, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, n * 8, &r->out, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &r->found, NULL), TSR_OK);
    assert_int_equal(tsr_dev_write(dev->queue, r->keys, 0, keys, n * 8, true, NULL, NULL), TSR_OK);
    if (vals)
        assert_int_equal(tsr_dev_write(dev->queue, r->vals, 0, vals, n * 8, true, NULL, NULL),
                         TSR_OK);
}

static void map_bufs_free(map_run_t *r)
{
    tsr_dev_buf_free(r->keys);
    tsr_dev_buf_free(r->vals);
    tsr_dev_buf_free(r->out);
    tsr_dev_buf_free(r->found);
}

/* Looks keys up and checks each against want (found when want_found[i]). */
static void map_check(tsr_dev_t *dev, tsr_cuda_map_t *m, const uint64_t *keys, const uint64_t *want,
                      const uint8_t *want_found, size_t n)
{
    map_run_t r;
    map_bufs(dev, keys, NULL, n, &r);
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_cuda_map_find(m, NULL, r.keys, r.out, r.found, n, &err) != TSR_OK)
        fail_msg("map find: %s", err.message);
    uint64_t *out = malloc(n * 8);
    uint8_t *found = malloc(n);
    assert_non_null(out);
    assert_non_null(found);
    assert_int_equal(tsr_dev_read(dev->queue, r.out, 0, out, n * 8, true, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_dev_read(dev->queue, r.found, 0, found, n, true, NULL, NULL), TSR_OK);
    for (size_t i = 0; i < n; i++) {
        if (found[i] != want_found[i] || (found[i] && out[i] != want[i]))
            fail_msg("key %zu (%#llx): found %d value %#llx, want %d %#llx", i,
                     (unsigned long long)keys[i], found[i], (unsigned long long)out[i],
                     want_found[i], (unsigned long long)want[i]);
    }
    free(out);
    free(found);
    map_bufs_free(&r);
}

/* Upserts from a tiny initial capacity (growth, retries), every bit pattern
 * of key (the empty-slot marker and 0 included), reassignment, duplicates
 * within one call, lookups of absent keys. */
static void test_map(void **state)
{
    tsr_dev_t *dev = cuda_dev(state);
    const size_t n = 100003, absent = 5000;
    uint64_t *keys = malloc((n + absent) * 8), *vals = malloc(n * 8),
             *want = malloc((n + absent) * 8);
    uint8_t *wf = malloc(n + absent);
    assert_non_null(keys);
    assert_non_null(vals);
    assert_non_null(want);
    assert_non_null(wf);
    for (size_t i = 0; i < n + absent; i++) {
        keys[i] = tsr_hash_u64(i + 1) ^ 0x5555; /* distinct: the mix is a bijection */
        if (i < n) {
            vals[i] = i * 3 + 1;
            want[i] = vals[i];
        }
        wf[i] = i < n;
    }
    keys[7] = TSR_CUDA_MAP_EMPTY;
    keys[8] = 0;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_cuda_map_t *m = NULL;
    assert_int_equal(tsr_cuda_map_create(dev, 16, &m, &err), TSR_OK);
    map_run_t r;
    map_bufs(dev, keys, vals, n, &r);
    if (tsr_cuda_map_upsert(m, NULL, r.keys, r.vals, n, &err) != TSR_OK)
        fail_msg("map upsert: %s", err.message);
    assert_int_equal(tsr_cuda_map_size(m), n);
    assert_true(2 * tsr_cuda_map_size(m) <= tsr_cuda_map_slots(m));
    map_check(dev, m, keys, want, wf, n + absent);

    /* the first half again with new values, plus every key twice in one call */
    for (size_t i = 0; i < n / 2; i++) {
        vals[i] = ~(uint64_t)i;
        want[i] = vals[i];
    }
    map_bufs_free(&r);
    map_bufs(dev, keys, vals, n / 2, &r);
    assert_int_equal(tsr_cuda_map_upsert(m, NULL, r.keys, r.vals, n / 2, &err), TSR_OK);
    assert_int_equal(tsr_cuda_map_size(m), n);
    map_check(dev, m, keys, want, wf, n + absent);
    uint64_t dup_keys[64], dup_vals[64];
    for (size_t i = 0; i < 64; i++) {
        dup_keys[i] = keys[n + i % 2]; /* two absent keys, 32 times each */
        dup_vals[i] = 1000 + i;
    }
    map_bufs_free(&r);
    map_bufs(dev, dup_keys, dup_vals, 64, &r);
    assert_int_equal(tsr_cuda_map_upsert(m, NULL, r.keys, r.vals, 64, &err), TSR_OK);
    assert_int_equal(tsr_cuda_map_size(m), n + 2);
    map_run_t f;
    map_bufs(dev, keys + n, NULL, 2, &f);
    assert_int_equal(tsr_cuda_map_find(m, NULL, f.keys, f.out, f.found, 2, &err), TSR_OK);
    uint64_t out[2];
    assert_int_equal(tsr_dev_read(dev->queue, f.out, 0, out, 16, true, NULL, NULL), TSR_OK);
    assert_true(out[0] >= 1000 && out[0] < 1064 && out[0] % 2 == 0); /* one of its values */
    assert_true(out[1] >= 1000 && out[1] < 1064 && out[1] % 2 == 1);
    map_bufs_free(&f);
    /* arguments */
    assert_int_equal(tsr_cuda_map_upsert(m, NULL, r.keys, r.vals, 65, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_cuda_map_upsert(m, NULL, r.keys, r.vals, 0, NULL), TSR_OK);
    assert_int_equal(
        tsr_cuda_map_create(((fixture_t *)*state)->pair.cpu, 8, &(tsr_cuda_map_t *){NULL}, NULL),
        TSR_ERR_INVALID_ARG);
    map_bufs_free(&r);
    tsr_cuda_map_destroy(m);
    tsr_cuda_map_destroy(NULL);
    free(keys);
    free(vals);
    free(want);
    free(wf);
}

#ifdef TSR_CUDA_EMU

/* ---- emulator only: injected failures, no driver, stream jitter ------------------------ */

/* One aggregation with growth, retries and two update calls; *rc the first
 * failure. Everything is released whatever happened. */
static tsr_status_t emu_aggregate_once(tsr_dev_t *dev, bool device_rows, tsr_error_t *err)
{
    /* ~700 groups: the table (1024 slots at first) grows once */
    gen_t g = {.n = 1201,
               .nkeys = 1,
               .key_range = 1000,
               .key_null_pct = 5,
               .val_null_pct = 5,
               .naggs = 6,
               .seed = 99};
    data_t d;
    data_make(&g, &d);
    tsr_dev_hashagg_t *ha = NULL;
    tsr_status_t rc = tsr_dev_hashagg_create(dev, &d.spec, &ha, err);
    static const size_t launch = 512;
    hm_ctx_t c = {.dev = dev, .strategy = TSR_DEV_HASHAGG_AUTO, .arg = (void *)&launch};
    for (size_t part = 0; part < 2 && rc == TSR_OK; part++) {
        size_t start = part ? 640 : 0, m = part ? d.n - 640 : 640;
        tsr_dev_hashagg_rows_t rows;
        memset(&rows, 0, sizeof(rows));
        rows.n = m;
        for (size_t k = 0; k < d.spec.nkeys; k++) {
            rows.keys[k] = d.keys[k] + start;
            rows.key_valid[k] = d.key_valid[k] ? d.key_valid[k] + start / 64 : NULL;
        }
        for (size_t a = 0; a < d.spec.naggs; a++) {
            rows.values[a] = d.vals[a] ? d.vals[a] + start : NULL;
            rows.valid[a] = d.valid[a] ? d.valid[a] + start / 64 : NULL;
        }
        rc = device_rows ? update_from_device(&c, ha, &rows, err)
                         : tsr_dev_hashagg_update(ha, NULL, &rows, err);
    }
    if (rc == TSR_OK) {
        outbufs_t o;
        outbufs_make(&o, &d.spec, tsr_dev_hashagg_ngroups(ha));
        rc = tsr_dev_hashagg_result(ha, NULL, &o.out, err);
        outbufs_free(&o);
    }
    tsr_dev_hashagg_destroy(ha);
    data_free(&d);
    return rc;
}

static tsr_status_t emu_map_once(tsr_dev_t *dev, tsr_error_t *err)
{
    enum { N = 1500 }; /* from 64 keys of capacity: grows several times */
    static uint64_t keys[N], vals[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = tsr_hash_u64(i);
        vals[i] = i;
    }
    tsr_cuda_map_t *m = NULL;
    tsr_dev_buf_t *k = NULL, *v = NULL, *o = NULL, *f = NULL;
    tsr_status_t rc = tsr_cuda_map_create(dev, 64, &m, err);
    if (rc == TSR_OK)
        rc = tsr_dev_buf_alloc(dev, sizeof(keys), &k, err);
    if (rc == TSR_OK)
        rc = tsr_dev_buf_alloc(dev, sizeof(vals), &v, err);
    if (rc == TSR_OK)
        rc = tsr_dev_buf_alloc(dev, sizeof(vals), &o, err);
    if (rc == TSR_OK)
        rc = tsr_dev_buf_alloc(dev, N, &f, err);
    if (rc == TSR_OK)
        rc = tsr_dev_write(dev->queue, k, 0, keys, sizeof(keys), true, NULL, err);
    if (rc == TSR_OK)
        rc = tsr_dev_write(dev->queue, v, 0, vals, sizeof(vals), true, NULL, err);
    if (rc == TSR_OK)
        rc = tsr_cuda_map_upsert(m, NULL, k, v, N, err);
    if (rc == TSR_OK)
        rc = tsr_cuda_map_find(m, NULL, k, o, f, N, err);
    tsr_dev_buf_free(k);
    tsr_dev_buf_free(v);
    tsr_dev_buf_free(o);
    tsr_dev_buf_free(f);
    tsr_cuda_map_destroy(m);
    return rc;
}

/* Join, filter and partitioning over a few launches each (small launch
 * sizes), outputs checked only for not failing: the fault sweep's workload
 * for the other kernel families (their results are checked by the
 * cross-device tests, test_{join,filter,partition}_device in their
 * emulator builds). */
static tsr_status_t emu_families_once(tsr_dev_t *dev, tsr_error_t *err)
{
    enum { N = 700 };
    static int64_t a[N];
    static double d[N];
    static uint64_t k[N], valid[(N + 63) / 64];
    static uint32_t r1[N], r2[N];
    static uint64_t offsets[17], kout[N];
    for (size_t i = 0; i < N; i++) {
        a[i] = (int64_t)(i % 97);
        d[i] = (double)(i % 10) / 10.0;
        k[i] = tsr_hash_u64(i) % 300;
        valid[i / 64] = i % 64 == 0 ? 0x7fffffffffffffffULL : valid[i / 64];
    }
    tsr_dev_hashjoin_spec_t js = {
        .key = TSR_DEV_JOIN_KEY_I64, .launch_rows = 512, .window_pairs = 300};
    tsr_dev_hashjoin_t *hj = NULL;
    tsr_status_t rc = tsr_dev_hashjoin_create(dev, &js, &hj, err);
    tsr_dev_join_keys_t bk = {.n = N / 2, .keys = k, .valid = valid};
    tsr_dev_join_keys_t pk = {.n = N, .keys = k};
    size_t npairs = 0;
    if (rc == TSR_OK)
        rc = tsr_dev_hashjoin_build(hj, NULL, &bk, err);
    if (rc == TSR_OK)
        rc = tsr_dev_hashjoin_probe(hj, NULL, &pk, &npairs, err);
    if (rc == TSR_OK && npairs) {
        uint32_t *pp = malloc(npairs * 4), *bp = malloc(npairs * 4);
        rc = pp && bp ? tsr_dev_hashjoin_pairs(hj, NULL, pp, bp, err) : TSR_ERR_NOMEM;
        free(pp);
        free(bp);
    }
    tsr_dev_hashjoin_destroy(hj);
    if (rc != TSR_OK)
        return rc;

    tsr_dev_filter_spec_t fs = {.ncols = 2,
                                .types = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE},
                                .ninstrs = 3,
                                .prog = {{.op = TSR_DEV_PRED_LT, .column = 0, .i = 50},
                                         {.op = TSR_DEV_PRED_GE, .column = 1, .d = 0.5},
                                         {.op = TSR_DEV_PRED_OR}},
                                .launch_rows = 256};
    tsr_dev_filter_cols_t fc = {.n = N, .values = {a, d}, .valid = {valid, NULL}};
    tsr_dev_filter_t *f = NULL;
    size_t nsel = 0;
    rc = tsr_dev_filter_create(dev, &fs, &f, err);
    if (rc == TSR_OK)
        rc = tsr_dev_filter_run(f, NULL, &fc, r1, &nsel, err);
    tsr_dev_filter_destroy(f);
    if (rc != TSR_OK)
        return rc;

    tsr_dev_partition_spec_t ps = {.nparts = 16, .nkeys = 1, .launch_rows = 512};
    tsr_dev_partition_in_t pin = {.n = N, .keys = {k}, .key_valid = {valid}};
    tsr_dev_partition_out_t pout = {.rows = r2, .offsets = offsets, .keys = {kout}};
    tsr_dev_partition_t *pa = NULL;
    rc = tsr_dev_partition_create(dev, &ps, &pa, err);
    if (rc == TSR_OK)
        rc = tsr_dev_partition_run(pa, NULL, &pin, &pout, err);
    tsr_dev_partition_destroy(pa);
    return rc;
}

/* Fails the n-th fallible runtime call of a whole workload, for every n until
 * a run completes untouched: each failure must come back as the status its
 * CUDA error maps to, with CUDA's text, and leave no device memory behind. */
static void emu_sweep(tsr_dev_t *dev, int which)
{
    static const cudaError_t codes[] = {cudaErrorMemoryAllocation, cudaErrorLaunchFailure};
    for (size_t ci = 0; ci < sizeof(codes) / sizeof(codes[0]); ci++) {
        size_t base = tsr_emu_device_bytes();
        bool clean = false;
        for (long n = 0; !clean && n < 5000; n++) {
            long before = tsr_emu_injected();
            tsr_emu_fail_after(n, codes[ci]);
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_status_t rc = which == 0   ? emu_aggregate_once(dev, false, &err)
                              : which == 1 ? emu_aggregate_once(dev, true, &err)
                              : which == 2 ? emu_map_once(dev, &err)
                                           : emu_families_once(dev, &err);
            tsr_emu_fail_after(-1, cudaSuccess);
            clean = tsr_emu_injected() == before;
            if (clean) {
                if (rc != TSR_OK)
                    fail_msg("run without injection failed: %s", err.message);
            } else if (rc != TSR_OK) {
                tsr_status_t want =
                    codes[ci] == cudaErrorMemoryAllocation ? TSR_ERR_NOMEM : TSR_ERR_DEVICE;
                if (rc != want || !strstr(err.message, cudaGetErrorString(codes[ci])))
                    fail_msg("injected %s at call %ld: status %d, '%s'",
                             cudaGetErrorName(codes[ci]), n, (int)rc, err.message);
            }
            /* (an injected failure of a call whose result is ignored, such as
             * a destructor's, may leave the run successful) */
            if (tsr_emu_device_bytes() != base)
                fail_msg("injected %s at call %ld (status %d, '%s'): %zu device bytes leaked",
                         cudaGetErrorName(codes[ci]), n, (int)rc, err.message,
                         tsr_emu_device_bytes() - base);
        }
        assert_true(clean);
    }
}

static void test_emu_faults_hashagg(void **state)
{
    emu_sweep(cuda_dev(state), 0);
}

static void test_emu_faults_device_rows(void **state)
{
    emu_sweep(cuda_dev(state), 1);
}

static void test_emu_faults_map(void **state)
{
    emu_sweep(cuda_dev(state), 2);
}

static void test_emu_faults_families(void **state)
{
    emu_sweep(cuda_dev(state), 3);
}

/* The note `tessera devices` prints when the driver is missing or too old. */
static void test_emu_no_driver(void **state)
{
    cuda_dev(state);
    tsr_emu_set_no_device(cudaErrorInsufficientDriver);
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    const tsr_device_backend_info_t *bi = tsr_device_list_backend(list, TSR_DEVICE_CUDA);
    assert_int_equal(bi->ndevices, 0);
    assert_string_equal(bi->note, "CUDA support compiled in; no CUDA device found (driver version "
                                  "is insufficient) [cudaErrorInsufficientDriver: CUDA driver "
                                  "version is insufficient for CUDA runtime version]");
    tsr_device_list_destroy(list);
    tsr_dev_t *dev = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(NULL, "cuda", &dev, &err), TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.message, "no CUDA device found"));
    tsr_emu_set_no_device(cudaErrorNoDevice);
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    assert_string_equal(tsr_device_list_backend(list, TSR_DEVICE_CUDA)->note,
                        "CUDA support compiled in; no CUDA device found (no CUDA-capable device "
                        "is detected) [cudaErrorNoDevice: no CUDA-capable device is detected]");
    tsr_device_list_destroy(list);
    tsr_emu_set_no_device(cudaErrorUnknown);
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    assert_string_equal(tsr_device_list_backend(list, TSR_DEVICE_CUDA)->note,
                        "CUDA support compiled in; no CUDA device found (cudaGetDeviceCount "
                        "failed) [cudaErrorUnknown: unknown error]");
    tsr_device_list_destroy(list);
    tsr_emu_set_no_device(cudaSuccess);
}

/* Random delays in every stream worker: uploads, kernels and readbacks must
 * still be ordered by the backend's events alone. */
static void test_emu_jitter(void **state)
{
    fixture_t *f = *state;
    tsr_emu_set_jitter(1);
    gen_t g = {.n = (1u << 19) + 777,
               .nkeys = 1,
               .key_range = 300,
               .val_null_pct = 2,
               .naggs = 3,
               .seed = 12};
    f->strategy = TSR_DEV_HASHAGG_AUTO;
    f->device_rows = false;
    hm_ctx_t c = {.dev = cuda_dev(state), .other = f->pair.cpu, .strategy = TSR_DEV_HASHAGG_AUTO};
    hm_run_gen(&c, &g, 2);
    tsr_emu_set_jitter(0);
}

/* Last: nothing above may have touched the legacy default stream. */
static void test_emu_no_default_stream(void **state)
{
    cuda_dev(state);
    assert_int_equal(tsr_emu_null_stream_uses(), 0);
}

#endif /* TSR_CUDA_EMU */
#endif /* TSR_HAVE_CUDA */

#define ALL(fn)                                                                                    \
    cmocka_unit_test(test_##fn##_auto), cmocka_unit_test(test_##fn##_global),                      \
        cmocka_unit_test(test_##fn##_local), cmocka_unit_test(test_##fn##_dev)

#define VARIANT(fn, variant) cmocka_unit_test_teardown(test_##fn##_##variant, variant_teardown)
#define VARIANTS(fn) VARIANT(fn, lane), VARIANT(fn, warp), VARIANT(fn, coop), VARIANT(fn, regs)

#ifndef TSR_HAVE_CUDA
static void test_nothing(void **state)
{
    cuda_dev(state); /* skipped: this build has no CUDA backend */
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef TSR_HAVE_CUDA
        cmocka_unit_test(test_list_and_info),
        cmocka_unit_test(test_transfers),
        cmocka_unit_test(test_fills),
        ALL(sizes),
        cmocka_unit_test(test_large_auto),
        ALL(skewed),
        ALL(many_groups),
        ALL(composite_nulls),
        ALL(null_values),
        ALL(no_keys),
        ALL(sum_overflow),
        ALL(dense_keys),
        ALL(plain_aggs),
        ALL(nan_order),
        ALL(hash_collisions),
        cmocka_unit_test(test_bad_args_auto),
        cmocka_unit_test(test_alloc_failures_auto),
        cmocka_unit_test(test_device_rows_bad_args),
        cmocka_unit_test(test_map),
        VARIANTS(few_groups),
        VARIANTS(key_runs),
        VARIANT(skewed, coop),
        VARIANT(skewed, regs),
        VARIANTS(composite_nulls),
        VARIANTS(nan_order),
        VARIANT(dense_keys, lane),
        VARIANT(dense_keys, warp),
#if !(defined(TSR_TEST_ASAN) && defined(TSR_CUDA_EMU))
        /* The rest of the forced-variant cases run in the release emulator
         * build and on GPUs; under ASan the emulated warps cost ~10x and
         * the subset above already drives every variant's host code and
         * every kernel path (listed groups, retries, NULLs, NaN). */
        VARIANT(sizes, coop),
        VARIANT(sizes, regs),
        VARIANT(skewed, warp),
        VARIANT(many_groups, coop),
        VARIANTS(null_values),
        VARIANTS(no_keys),
        VARIANTS(sum_overflow),
        VARIANT(dense_keys, coop),
        VARIANT(dense_keys, regs),
        VARIANTS(hash_collisions),
#endif
        cmocka_unit_test_teardown(test_few_groups_coop_dev, variant_teardown),
        cmocka_unit_test_teardown(test_few_groups_regs_dev, variant_teardown),
        cmocka_unit_test_teardown(test_variant_pick, variant_teardown),
#ifdef TSR_CUDA_EMU
        cmocka_unit_test(test_emu_faults_hashagg),
        cmocka_unit_test(test_emu_faults_device_rows),
        cmocka_unit_test(test_emu_faults_map),
        cmocka_unit_test(test_emu_faults_families),
        cmocka_unit_test(test_emu_no_driver),
        cmocka_unit_test(test_emu_jitter),
        cmocka_unit_test(test_emu_no_default_stream),
#endif
#else
        cmocka_unit_test(test_nothing),
#endif
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    if (failed)
        return failed;
    /* 77 (ctest's "skipped") when the CUDA tests could not run here */
    tsr_device_list_t *list = NULL;
    if (tsr_device_list_create(&list) != TSR_OK)
        return 1;
    size_t n = tsr_device_list_backend(list, TSR_DEVICE_CUDA)->ndevices;
    tsr_device_list_destroy(list);
    return n ? 0 : 77;
}
