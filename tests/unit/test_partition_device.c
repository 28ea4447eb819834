/*
 * test_partition_device.c - device hash partitioning (device/partition.h) on
 * every backend present, against a plain C model: hashes from the CPU
 * executor's hash table (exec/hashtable.h, the cross-device contract), the
 * partition as the high word of hash * P, then a stable counting sort.
 *
 * Every case runs on the cpu backend and on the first OpenCL device (PoCL
 * where there is no GPU; skipped, never passed, where there is none). Outputs
 * (rows, offsets, scattered keys) are poisoned first and checked element by
 * element afterwards, plus one element past the end. Partitioning is stable,
 * so the expected output is exact, the same on every backend.
 *
 * Cases: sizes 0, 1, 63, 64, 65, primes, more than one launch (tiny
 * launches: the two-pass path); P from 1 to 65536 (counters in local memory
 * and in the count matrix); 1-4 key columns with NULLs; caller hashes; one
 * key holding 90% of the rows; P = 2^b taking exactly the top b bits (the
 * executor's tsr_ht_partition); bad arguments; allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "device/partition.h"
#include "exec/hashtable.h"

#define MAXK TSR_DEV_PARTITION_MAX_KEYS

typedef struct data {
    size_t n;
    tsr_dev_partition_spec_t spec;
    uint64_t *keys[MAXK];
    uint64_t *valid[MAXK];
} data_t;

typedef struct gen {
    size_t n;
    size_t nparts;
    size_t nkeys;
    bool hashed;
    uint64_t range;    /* distinct values per key column */
    unsigned skew_pct; /* rows forced onto value 0 */
    unsigned null_pct;
    size_t launch_rows;
} gen_t;

static void data_make(const gen_t *g, uint64_t seed, data_t *d)
{
    memset(d, 0, sizeof(*d));
    d->n = g->n;
    d->spec = (tsr_dev_partition_spec_t){.nparts = g->nparts,
                                         .nkeys = g->hashed ? 1 : g->nkeys,
                                         .hashed = g->hashed,
                                         .launch_rows = g->launch_rows};
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        d->keys[k] = dev_xalloc(g->n * 8);
        for (size_t i = 0; i < g->n; i++) {
            bool hot = dev_rng_below(&seed, 100) < g->skew_pct;
            uint64_t v = hot ? 0 : dev_rng_below(&seed, g->range ? g->range : 1);
            d->keys[k][i] = g->hashed ? dev_rng(&seed) : v * 0x9e3779b97f4a7c15ULL;
        }
        if (g->null_pct && !g->hashed)
            d->valid[k] = dev_validity(g->n, g->null_pct, &seed);
    }
}

static void data_free(data_t *d)
{
    for (size_t k = 0; k < MAXK; k++) {
        free(d->keys[k]);
        free(d->valid[k]);
    }
}

static tsr_dev_partition_in_t data_in(const data_t *d)
{
    tsr_dev_partition_in_t in = {.n = d->n};
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        in.keys[k] = d->keys[k];
        in.key_valid[k] = d->valid[k];
    }
    return in;
}

/* The model's partition of every row. */
static uint32_t *model_parts(const data_t *d)
{
    uint64_t *h = dev_xalloc(d->n * 8);
    if (d->spec.hashed) {
        memcpy(h, d->keys[0], d->n * 8);
    } else if (d->n) {
        tsr_ht_t ht;
        assert_int_equal(tsr_ht_init(&ht, NULL, d->spec.nkeys, NULL, 0), TSR_OK);
        const uint64_t *keys[MAXK], *valid[MAXK];
        for (size_t k = 0; k < d->spec.nkeys; k++) {
            keys[k] = d->keys[k];
            valid[k] = d->valid[k];
        }
        tsr_ht_rows_t rows = {.n = d->n, .keys = keys, .validity = valid};
        tsr_ht_hash(&ht, &rows, h);
        tsr_ht_fini(&ht);
    }
    size_t np = d->spec.nparts;
    unsigned bits = 0;
    while (((size_t)1 << bits) < np)
        bits++;
    uint32_t *part = dev_xalloc(d->n * 4);
    for (size_t i = 0; i < d->n; i++) {
        part[i] = (uint32_t)(((unsigned __int128)h[i] * np) >> 64);
        if (((size_t)1 << bits) == np && bits >= 1 && bits <= 16) /* P = 2^b: the top b bits */
            assert_int_equal(part[i], tsr_ht_partition(h[i], bits));
    }
    free(h);
    return part;
}

/* Runs d on p (created for d->spec) with key outputs where want_keys has a
 * bit, and checks everything against the model. */
static void check_run(tsr_dev_partition_t *p, const data_t *d, unsigned want_keys)
{
    size_t n = d->n, np = d->spec.nparts;
    uint32_t *part = model_parts(d);
    /* the model: a stable counting sort by partition */
    uint64_t *offs = dev_xalloc((np + 1) * 8);
    memset(offs, 0, (np + 1) * 8);
    for (size_t i = 0; i < n; i++)
        offs[part[i] + 1]++;
    for (size_t k = 0; k < np; k++)
        offs[k + 1] += offs[k];
    uint64_t *cur = dev_xalloc((np + 1) * 8);
    memcpy(cur, offs, (np + 1) * 8);
    uint32_t *rows = dev_xalloc(n * 4);
    for (size_t i = 0; i < n; i++)
        rows[cur[part[i]]++] = (uint32_t)i;

    tsr_dev_partition_out_t out = {.rows = dev_poisoned32(n), .offsets = dev_poisoned64(np + 1)};
    for (size_t k = 0; k < d->spec.nkeys; k++)
        if ((want_keys >> k) & 1u)
            out.keys[k] = dev_poisoned64(n);
    tsr_dev_partition_in_t in = data_in(d);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_dev_partition_run(p, NULL, &in, &out, &err);
    if (rc != TSR_OK)
        print_error("%s\n", err.message);
    assert_int_equal(rc, TSR_OK);
    for (size_t k = 0; k <= np; k++)
        assert_int_equal(out.offsets[k], offs[k]);
    assert_int_equal(out.offsets[np + 1], DEV_POISON64);
    if (n) {
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out.rows[i], rows[i]);
    }
    assert_int_equal(out.rows[n], DEV_POISON32);
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        if (!out.keys[k])
            continue;
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out.keys[k][i], d->keys[k][rows[i]]);
        assert_int_equal(out.keys[k][n], DEV_POISON64);
        free(out.keys[k]);
    }
    free(out.rows);
    free(out.offsets);
    free(part);
    free(offs);
    free(cur);
    free(rows);
}

static void run_gen(void **state, const gen_t *g, unsigned want_keys, uint64_t seed)
{
    tsr_dev_t *dev = dev_test_dev(state);
    data_t d;
    data_make(g, seed, &d);
    tsr_dev_partition_t *p = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_partition_create(dev, &d.spec, &p, &err), TSR_OK);
    check_run(p, &d, want_keys);
    tsr_dev_partition_destroy(p);
    data_free(&d);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 1009, 65537};
    static const size_t parts[] = {1, 2, 3, 16, 1000, 4096};
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t j = 0; j < sizeof(parts) / sizeof(parts[0]); j++) {
            gen_t g = {.n = sizes[i],
                       .nparts = parts[j],
                       .nkeys = 1 + seed % MAXK,
                       .range = 5000,
                       .null_pct = 10};
            run_gen(state, &g, (unsigned)seed & 0xf, seed);
            seed++;
        }
}

/* Tiny launches: the two-pass path over many launches. */
static void test_multi_launch(void **state)
{
    static const size_t parts[] = {1, 13, 256, 4099};
    for (size_t j = 0; j < sizeof(parts) / sizeof(parts[0]); j++) {
        gen_t g = {.n = 100003,
                   .nparts = parts[j],
                   .nkeys = 2,
                   .range = 100000,
                   .null_pct = 5,
                   .launch_rows = 1000 + j};
        run_gen(state, &g, 0x3, 11 + j);
    }
}

/* A batch of a million rows in one launch, keys scattered. */
static void test_large(void **state)
{
#ifdef TSR_CUDA_EMU
    /* the emulator runs every lane as a coroutine: a million rows take minutes
     * under ASan, and CUDA's launches (2^24 rows) are covered by
     * test_multi_launch with small launches */
    print_message("skipped: too large for the CUDA emulator\n");
    skip();
#endif
    gen_t g = {.n = ((size_t)1 << 20) + 7, .nparts = 64, .nkeys = 1, .range = 1 << 30};
    run_gen(state, &g, 0x1, 21);
}

static void test_skewed(void **state)
{
    gen_t g = {.n = 200003, .nparts = 32, .nkeys = 1, .range = 1000, .skew_pct = 90};
    run_gen(state, &g, 0x1, 31);
    g.launch_rows = 4096;
    g.nkeys = 3;
    g.null_pct = 20;
    run_gen(state, &g, 0x5, 32);
}

/* Caller hashes, including P = 2^16 (top 16 bits) and P = 1. */
static void test_hashed(void **state)
{
    static const size_t parts[] = {1, 2, 7, 1024, 65536};
    for (size_t j = 0; j < sizeof(parts) / sizeof(parts[0]); j++) {
        gen_t g = {.n = 30011, .nparts = parts[j], .hashed = true};
        run_gen(state, &g, 0x1, 41 + j);
    }
}

/* Far more partitions than rows: most are empty. */
static void test_sparse(void **state)
{
    gen_t g = {.n = 1000, .nparts = 65536, .nkeys = 4, .range = 1 << 20, .null_pct = 30};
    run_gen(state, &g, 0xf, 51);
    g.launch_rows = 128;
    run_gen(state, &g, 0xa, 52);
}

/* One object, batches of different sizes (buffers reused and grown). */
static void test_rerun(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    tsr_dev_partition_spec_t spec = {.nparts = 100, .nkeys = 2};
    tsr_dev_partition_t *p = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_partition_create(dev, &spec, &p, &err), TSR_OK);
    static const size_t sizes[] = {10, 50000, 0, 3, 20000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        gen_t g = {.n = sizes[i], .nparts = 100, .nkeys = 2, .range = 777, .null_pct = 3};
        data_t d;
        data_make(&g, 61 + i, &d);
        check_run(p, &d, (unsigned)i & 3);
        data_free(&d);
    }
    tsr_dev_partition_destroy(p);
}

static tsr_status_t create_status(tsr_dev_t *dev, tsr_dev_partition_spec_t spec)
{
    tsr_dev_partition_t *p = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_dev_partition_create(dev, &spec, &p, &err);
    if (rc == TSR_OK)
        tsr_dev_partition_destroy(p);
    else
        assert_null(p);
    return rc;
}

static void test_bad_args(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    assert_int_equal(create_status(dev, (tsr_dev_partition_spec_t){.nparts = 0, .nkeys = 1}),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(create_status(dev, (tsr_dev_partition_spec_t){.nparts = 65537, .nkeys = 1}),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(create_status(dev, (tsr_dev_partition_spec_t){.nparts = 4, .nkeys = 0}),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(create_status(dev, (tsr_dev_partition_spec_t){.nparts = 4, .nkeys = 5}),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(
        create_status(dev, (tsr_dev_partition_spec_t){.nparts = 4, .nkeys = 2, .hashed = true}),
        TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_partition_create(dev, NULL, NULL, NULL), TSR_ERR_INVALID_ARG);

    tsr_dev_partition_spec_t spec = {.nparts = 4, .nkeys = 2};
    tsr_dev_partition_t *p = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_partition_create(dev, &spec, &p, &err), TSR_OK);
    uint64_t k0[3] = {1, 2, 3}, offs[6];
    uint32_t rows[3];
    tsr_dev_partition_in_t in = {.n = 3, .keys = {k0}};
    tsr_dev_partition_out_t out = {.rows = rows, .offsets = offs};
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_ERR_INVALID_ARG);
    in.keys[1] = k0;
    out.rows = NULL;
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_ERR_INVALID_ARG);
    out.rows = rows;
    out.offsets = NULL;
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_ERR_INVALID_ARG);
    out.offsets = offs;
    dev_fixture_t *f = *state;
    tsr_dev_t *other = f->dev[f->which == TSR_DEVICE_CPU ? TSR_DEVICE_OPENCL : TSR_DEVICE_CPU];
    if (other)
        assert_int_equal(tsr_dev_partition_run(p, other->queue, &in, &out, &err),
                         TSR_ERR_INVALID_ARG);
    in.n = (size_t)UINT32_MAX + 1;
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_ERR_UNSUPPORTED);
    in.n = 3;
    offs[5] = DEV_POISON64;
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_OK);
    assert_int_equal(offs[4], 3);
    assert_int_equal(offs[5], DEV_POISON64);
    in.n = 0;
    out.rows = NULL;
    offs[2] = 99;
    assert_int_equal(tsr_dev_partition_run(p, NULL, &in, &out, &err), TSR_OK);
    for (int k = 0; k <= 4; k++)
        assert_int_equal(offs[k], 0);
    tsr_dev_partition_destroy(p);
    tsr_dev_partition_destroy(NULL);
}

static void test_alloc_failures(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    gen_t g = {
        .n = 5000, .nparts = 37, .nkeys = 2, .range = 1000, .null_pct = 5, .launch_rows = 1024};
    data_t d;
    data_make(&g, 71, &d);
    bool done = false;
    long failures = 0;
    for (long n = 0; !done && n < 200; n++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_dev_t *mdev = dev_test_reopen(dev, &mem);
        tsr_mem_fail_after(&mem, n);
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_dev_partition_t *p = NULL;
        tsr_status_t rc = tsr_dev_partition_create(mdev, &d.spec, &p, &err);
        if (rc == TSR_OK) {
            tsr_dev_partition_in_t in = data_in(&d);
            tsr_dev_partition_out_t out = {.rows = dev_poisoned32(d.n),
                                           .offsets = dev_poisoned64(g.nparts + 1),
                                           .keys = {dev_poisoned64(d.n)}};
            rc = tsr_dev_partition_run(p, NULL, &in, &out, &err);
            free(out.rows);
            free(out.offsets);
            free(out.keys[0]);
        }
        if (rc == TSR_OK) {
            done = true;
            tsr_mem_fail_after(&mem, -1);
            check_run(p, &d, 0x3);
        } else {
            assert_int_equal(rc, TSR_ERR_NOMEM);
        }
        failures += atomic_load(&mem.failures);
        tsr_dev_partition_destroy(p);
        tsr_mem_fail_after(&mem, -1);
        tsr_dev_close(mdev);
    }
    assert_true(done);
    assert_true(failures > 0);
    data_free(&d);
}

DEV_TEST_BOTH(test_sizes)
DEV_TEST_BOTH(test_multi_launch)
DEV_TEST_BOTH(test_large)
DEV_TEST_BOTH(test_skewed)
DEV_TEST_BOTH(test_hashed)
DEV_TEST_BOTH(test_sparse)
DEV_TEST_BOTH(test_rerun)
DEV_TEST_BOTH(test_bad_args)
DEV_TEST_BOTH(test_alloc_failures)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DEV_TESTS(test_sizes),  DEV_TESTS(test_multi_launch), DEV_TESTS(test_large),
        DEV_TESTS(test_skewed), DEV_TESTS(test_hashed),       DEV_TESTS(test_sparse),
        DEV_TESTS(test_rerun),  DEV_TESTS(test_bad_args),     DEV_TESTS(test_alloc_failures),
    };
    return dev_test_exit(cmocka_run_group_tests(tests, dev_test_setup, dev_test_teardown));
}
