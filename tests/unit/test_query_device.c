/*
 * test_query_device.c - queries on a device (tsr_context_set_device,
 * engine/exec/dev_*.c) give the CPU operators' results.
 *
 * Every query of a list runs on a context without a device (the reference:
 * the executor's CPU operators) and on a context with one, and the results
 * are compared as multisets of rows, exactly: the doubles of the data are
 * multiples of 1/4 of small magnitude, so sums are exact in any order and
 * AVG divides the same sum by the same count. Devices:
 *
 *   cpu model  the device layer's cpu backend (sequential C models of the
 *              kernels), put into the context directly: the executor's device
 *              paths on every machine, fast, and under the sanitizers
 *   opencl     through the public tsr_context_set_device (PoCL here); the
 *              cases skip where there is no OpenCL device
 *
 * The queries cover every path: aggregation over each key type (with NULLs,
 * NaN, -0.0), no keys, an empty pre-filter, device-filtered and CPU-filtered
 * pre-filters, fallbacks (COUNT(DISTINCT), DISTINCT, computed predicates),
 * filters, joins on BIGINT and on strings across dictionaries, a second key
 * checked on the host, residuals, a join feeding an aggregation, more than
 * one chunk of rows. Plus the API: names, errors and their statuses.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/context_internal.h"
#include "device/device.h"
#include "exec/dev_exec.h"
#include "tessera/tessera.h"

#include "query_rows.h"

#define T_ROWS 12007 /* prime, > 1 batch */
#define U_ROWS 997
#define BIG_ROWS ((1 << 20) + 4099) /* more than one device chunk */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const STRS[] = {"a",   "bb", "",   "ccc", "dd", "e e", "f",  "gg,g", "hh", "ii",
                                   "jjj", "k",  "ll", "m",   "nn", "o",   "pp", "q",    "rr", "s"};

/* t(k BIGINT, g VARCHAR, b BOOL, v BIGINT, d DOUBLE), every column with NULLs. */
static void make_t(tab_t *t, size_t nrows, int keys)
{
    memset(t, 0, sizeof(*t));
    t->nrows = nrows;
    tab_col(t, "k", TSR_TYPE_INT64, true);
    tab_col(t, "g", TSR_TYPE_VARCHAR, true);
    tab_col(t, "b", TSR_TYPE_BOOL, true);
    tab_col(t, "v", TSR_TYPE_INT64, true);
    tab_col(t, "d", TSR_TYPE_DOUBLE, true);
    for (size_t i = 0; i < nrows; i++) {
        ((int64_t *)t->data[0])[i] = (int64_t)(rnd() % (uint64_t)keys) - 3;
        ((const char **)t->data[1])[i] = STRS[rnd() % 16];
        ((bool *)t->data[2])[i] = rnd() & 1;
        ((int64_t *)t->data[3])[i] = (int64_t)(rnd() % 2000001) - 1000000;
        double d = (double)((int64_t)(rnd() % 4001) - 2000) / 4.0;
        uint64_t r = rnd() % 100;
        ((double *)t->data[4])[i] = r == 0 ? NAN : (r == 1 ? -0.0 : d);
        for (size_t c = 0; c < t->ncols; c++)
            t->nulls[c][i] = rnd() % 23 == 0;
    }
}

/* u(k BIGINT, g VARCHAR (another dictionary, strings t lacks too), w DOUBLE). */
static void make_u(tab_t *u, size_t nrows)
{
    memset(u, 0, sizeof(*u));
    u->nrows = nrows;
    tab_col(u, "k", TSR_TYPE_INT64, true);
    tab_col(u, "g", TSR_TYPE_VARCHAR, true);
    tab_col(u, "w", TSR_TYPE_DOUBLE, true);
    for (size_t i = 0; i < nrows; i++) {
        ((int64_t *)u->data[0])[i] = (int64_t)(rnd() % 1000) - 3;
        ((const char **)u->data[1])[i] = STRS[4 + rnd() % 16];
        ((double *)u->data[2])[i] = (double)((int64_t)(rnd() % 801) - 400) / 4.0;
        for (size_t c = 0; c < u->ncols; c++)
            u->nulls[c][i] = rnd() % 31 == 0;
    }
}

/* sql gives the same rows and columns on both contexts; returns the row count. */
static size_t check_same(tsr_context_t *ref, tsr_context_t *dev, const char *sql)
{
    return check_same_rows(ref, dev, sql, true);
}

static const char *const QUERIES[] = {
    /* aggregation: every key type, every aggregate, NULLs, NaN, -0.0 */
    "SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), AVG(v), COUNT(v) FROM t GROUP BY k",
    "SELECT g, SUM(d), MIN(d), MAX(d), AVG(d), COUNT(d), COUNT(*) FROM t GROUP BY g",
    "SELECT b, d, COUNT(*), SUM(v) FROM t GROUP BY b, d",
    "SELECT k, g, b, d, COUNT(*) FROM t GROUP BY k, g, b, d",
    "SELECT COUNT(*), SUM(v), AVG(d), MIN(d), MAX(v), COUNT(g) FROM t",
    "SELECT COUNT(*), SUM(v), MIN(d) FROM t WHERE v > 2000000",
    "SELECT k, SUM(v) FROM t WHERE v > 2000000 GROUP BY k",
    "SELECT v, COUNT(*) FROM t GROUP BY v",
    /* fused pre-filters: on the device, and ones it lacks (CPU selection) */
    "SELECT k, g, COUNT(*), SUM(d) FROM t WHERE v BETWEEN -1000 AND 500000 OR d IS NULL "
    "GROUP BY k, g",
    "SELECT k, COUNT(*) FROM t WHERE 0.5 <= d AND NOT (k = 3) AND k IN (1, 2, 3, 4, 9) GROUP BY k",
    "SELECT k, COUNT(*), MAX(d) FROM t WHERE g = 'bb' GROUP BY k",
    "SELECT k, COUNT(*) FROM t WHERE v + 1 > 5 GROUP BY k",
    "SELECT k, COUNT(*) FROM t WHERE k NOT IN (1, 2) AND d <> 0.0 GROUP BY k",
    /* not covered by the device: the CPU operator runs */
    "SELECT k, COUNT(DISTINCT v), SUM(v) FROM t GROUP BY k",
    "SELECT DISTINCT g FROM t",
    "SELECT g, MIN(g) FROM t GROUP BY g",
    "SELECT k + 1, SUM(v) FROM t GROUP BY k + 1",
    /* filters */
    "SELECT * FROM t WHERE d >= 0.5 AND NOT (k = 3)",
    "SELECT k, v FROM t WHERE k IN (1, 2, 7) AND v IS NOT NULL",
    "SELECT * FROM t WHERE v < 0 OR d > 100.0",
    "SELECT * FROM t WHERE d IS NULL",
    "SELECT * FROM t WHERE k > 1000",
    "SELECT * FROM t WHERE k >= -1000",
    "SELECT g, d FROM t WHERE b AND d < 0.0",
    "SELECT t.k, t.d, u.w FROM t JOIN u ON t.k = u.k WHERE t.d < 10.0 + u.w AND t.v > 0",
    "SELECT t.k, t.d, u.w FROM t JOIN u ON t.k = u.k WHERE t.d < 10.0 OR u.w IS NULL",
    /* joins */
    "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k",
    "SELECT t.g, t.k, u.w FROM t JOIN u ON t.g = u.g",
    "SELECT t.k, u.w, t.g FROM t JOIN u ON t.k = u.k AND t.g = u.g",
    "SELECT t.k, u.w FROM t JOIN u ON u.k = t.k AND t.d = u.w",
    "SELECT t.k, u.w FROM t JOIN u ON t.k = u.k WHERE t.d > u.w",
    "SELECT u.g, COUNT(*), SUM(t.v), AVG(u.w) FROM t JOIN u ON t.k = u.k WHERE t.d > 1.0 "
    "GROUP BY u.g",
    "SELECT a.k, b.v FROM t AS a JOIN t AS b ON a.v = b.v WHERE a.k < 5",
    "SELECT t.k FROM t JOIN u ON t.k = u.k WHERE u.k > 5000",
    "SELECT t.k, u.k FROM t JOIN u ON t.d = u.w",
};

/* Runs every query on ref and dev. */
static void check_queries(tsr_context_t *ref, tsr_context_t *dev)
{
    for (size_t q = 0; q < sizeof(QUERIES) / sizeof(QUERIES[0]); q++)
        check_same(ref, dev, QUERIES[q]);
}

/* A context whose device is the cpu backend's model (not reachable by name:
 * "cpu" is the executor's operators), put in as tsr_context_set_device does. */
static void use_cpu_model(tsr_context_t *ctx)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(tsr__context_mem(ctx), "cpu", &ctx->dev, &err), TSR_OK);
    snprintf(ctx->device_name, sizeof(ctx->device_name), "cpu-model");
}

/* Whether the named backend has a device here. */
static bool have_backend(tsr_device_backend_t b)
{
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    bool have = tsr_device_list_backend(list, b)->ndevices > 0;
    tsr_device_list_destroy(list);
    return have;
}

static void test_cpu_model(void **state)
{
    (void)state;
    rng_state = 0x9e3779b97f4a7c15ULL;
    tab_t t, u;
    make_t(&t, T_ROWS, 53);
    make_u(&u, U_ROWS);
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    use_cpu_model(dev);
    check_queries(ref, dev);
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

/* Edge sizes: no rows, one row, one short batch. */
static void test_cpu_model_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 8191, 8192, 8193};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        rng_state = 0x1234567ULL + s;
        tab_t t, u;
        make_t(&t, sizes[s], 7);
        make_u(&u, sizes[s] < 5 ? sizes[s] : 5);
        tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
        use_cpu_model(dev);
        check_queries(ref, dev);
        tsr_context_destroy(ref);
        tsr_context_destroy(dev);
        tab_free(&t);
        tab_free(&u);
    }
}

static void test_opencl(void **state)
{
    (void)state;
    if (!have_backend(TSR_DEVICE_OPENCL))
        skip();
    rng_state = 0x9e3779b97f4a7c15ULL;
    tab_t t, u;
    make_t(&t, T_ROWS, 53);
    make_u(&u, U_ROWS);
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    assert_int_equal(tsr_context_set_device(dev, "opencl"), TSR_OK);
    assert_string_equal(tsr_context_device(dev), "opencl:0");
    check_queries(ref, dev);
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

/* More rows than one device chunk: several update / probe / filter calls. */
static void test_chunks(void **state)
{
    (void)state;
    rng_state = 0xabcdef12345ULL;
    tab_t t, u;
    make_t(&t, BIG_ROWS, 1000);
    make_u(&u, U_ROWS);
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    bool ocl = have_backend(TSR_DEVICE_OPENCL);
    if (ocl)
        assert_int_equal(tsr_context_set_device(dev, "opencl"), TSR_OK);
    else
        use_cpu_model(dev);
    assert_true(check_same(ref, dev, "SELECT k, COUNT(*), SUM(v), MIN(d) FROM t GROUP BY k") > 900);
    check_same(ref, dev, "SELECT COUNT(*), SUM(v) FROM t WHERE d > 100.0 AND v < 0");
    check_same(ref, dev, "SELECT k, v FROM t WHERE d > 499.0");
    check_same(ref, dev,
               "SELECT u.g, COUNT(*), SUM(u.w), MAX(t.v) FROM t JOIN u ON t.k = u.k "
               "GROUP BY u.g");
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

static void test_names(void **state)
{
    (void)state;
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    tsr_error_info_t e;
    assert_string_equal(tsr_context_device(ctx), "cpu");
    assert_int_equal(tsr_context_set_device(ctx, NULL), TSR_OK);
    assert_int_equal(tsr_context_set_device(ctx, "cpu"), TSR_OK);
    assert_int_equal(tsr_context_set_device(ctx, "cpu0"), TSR_OK);
    assert_string_equal(tsr_context_device(ctx), "cpu");
    assert_int_equal(tsr_context_set_device(ctx, "cpu:1"), TSR_ERR_NOT_FOUND);
    static const char *const bad[] = {"",     "gpu",      "opencl:",          "opencl:x", "auto1",
                                      "CUDA", "opencl-1", "cuda:99999999999", "cpu 0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tsr_context_set_device(ctx, bad[i]), TSR_ERR_INVALID_ARG);
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, "unknown device"));
        assert_string_equal(tsr_context_device(ctx), "cpu"); /* unchanged */
    }

    /* auto: a CUDA GPU, else an OpenCL GPU, else cpu (PoCL is a CPU device) */
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    const char *expect = "cpu";
    for (size_t i = 0; i < tsr_device_list_count(list) && !strcmp(expect, "cpu"); i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        if (d->backend == TSR_DEVICE_CUDA && d->is_gpu)
            expect = "cuda:0";
    }
    for (size_t i = 0; i < tsr_device_list_count(list) && !strcmp(expect, "cpu"); i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        if (d->backend == TSR_DEVICE_OPENCL && d->is_gpu)
            expect = d->index == 0 ? "opencl:0" : "opencl:1";
    }
    assert_int_equal(tsr_context_set_device(ctx, "auto"), TSR_OK);
    if (strcmp(expect, "opencl:1") != 0)
        assert_string_equal(tsr_context_device(ctx), expect);

    /* cuda: unavailable here unless a device exists */
    const tsr_device_backend_info_t *cu = tsr_device_list_backend(list, TSR_DEVICE_CUDA);
    tsr_status_t rc = tsr_context_set_device(ctx, "cuda");
    if (cu->ndevices == 0) {
        assert_int_equal(rc, TSR_ERR_UNAVAILABLE);
        assert_int_equal(tsr_status_exit_code(rc), 5);
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, cu->built ? "cuda: CUDA support is compiled but no "
                                                      "device was found"
                                                    : "cuda: CUDA support is not compiled"));
    } else {
        assert_int_equal(rc, TSR_OK);
        assert_string_equal(tsr_context_device(ctx), "cuda:0");
    }
    /* an index past the devices */
    const tsr_device_backend_info_t *ocl = tsr_device_list_backend(list, TSR_DEVICE_OPENCL);
    char name[32];
    snprintf(name, sizeof(name), "opencl%zu", ocl->ndevices);
    assert_int_equal(tsr_context_set_device(ctx, name),
                     ocl->ndevices ? TSR_ERR_NOT_FOUND : TSR_ERR_UNAVAILABLE);
    if (ocl->ndevices) {
        assert_int_equal(tsr_context_set_device(ctx, "opencl:0"), TSR_OK);
        assert_string_equal(tsr_context_device(ctx), "opencl:0");
        assert_int_equal(tsr_context_set_device(ctx, "opencl0"), TSR_OK);
        assert_int_equal(tsr_context_set_device(ctx, "cpu"), TSR_OK);
        assert_string_equal(tsr_context_device(ctx), "cpu");
    }
    assert_int_equal(tsr_context_set_device(NULL, "cpu"), TSR_ERR_INVALID_ARG);
    tsr_device_list_destroy(list);
    tsr_context_destroy(ctx);
}

/* Every allocation of a device query fails in turn (the device layer's too:
 * it allocates on the context's allocator): each must fail the query with
 * TSR_ERR_NOMEM, leak nothing (the sanitizer build checks), and leave the
 * context usable; then the query must succeed with the CPU's rows. */
static void test_alloc_failures(void **state)
{
    (void)state;
    static const char *const queries[] = {
        "SELECT k, g, COUNT(*), SUM(v), AVG(d), MIN(d) FROM t WHERE v > -500000 GROUP BY k, g",
        "SELECT k, v, g FROM t WHERE d >= 0.5 OR v IS NULL",
        "SELECT t.k, u.w, t.g FROM t JOIN u ON t.k = u.k AND t.g = u.g WHERE t.d < u.w",
        "SELECT t.g, COUNT(*) FROM t JOIN u ON t.g = u.g GROUP BY t.g",
    };
    rng_state = 0x77ULL;
    tab_t t, u;
    make_t(&t, 300, 9);
    make_u(&u, 40);
    for (size_t i = 0; i < u.nrows; i++) /* keys that meet t's */
        ((int64_t *)u.data[0])[i] %= 9;
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    use_cpu_model(dev);
    for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
        /* the failures did hit the query */
        assert_true(fail_each_allocation(dev, queries[q]) > 20);
        check_same(ref, dev, queries[q]);
    }
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

/* tsr_dev_exec_append_bits against bit-by-bit copying: every offset within
 * a word, lengths around word sizes, random bits and all-set (NULL). */
static void test_append_bits(void **state)
{
    (void)state;
    rng_state = 0x5555aaaa1234ULL;
    uint64_t src[8], got[12], want[12];
    for (size_t at = 0; at < 130; at++) {
        for (size_t n = 0; n <= 200; n += (n < 70 ? 1 : 13)) {
            for (int pass = 0; pass < 2; pass++) {
                for (size_t w = 0; w < 8; w++)
                    src[w] = rnd();
                memset(got, 0, sizeof(got));
                memset(want, 0, sizeof(want));
                /* bits before `at` are set already and must stay */
                for (size_t i = 0; i < at; i++) {
                    bool v = (rnd() & 1) != 0;
                    tsr_bit_set(got, i, v);
                    tsr_bit_set(want, i, v);
                }
                const uint64_t *s = pass ? NULL : src;
                for (size_t i = 0; i < n; i++)
                    tsr_bit_set(want, at + i, !s || tsr_bit_get(s, i));
                tsr_dev_exec_append_bits(got, at, s, n);
                assert_memory_equal(got, want, sizeof(got));
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_bits),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_cpu_model),
        cmocka_unit_test(test_cpu_model_sizes),
        cmocka_unit_test(test_opencl),
        cmocka_unit_test(test_chunks),
    };
    if (getenv("TSR_TEST_FILTER")) /* e.g. test_chunks: run one case */
        cmocka_set_test_filter(getenv("TSR_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
