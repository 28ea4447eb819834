/*
 * test_query_cuda.c - queries on a CUDA device give the CPU operators'
 * results, with the query's columns kept on the device between operators
 * (engine/exec/dev_columns.c): filter -> aggregation and filter -> join
 * read the filter's columns and selection where they are, through the CUDA
 * device-input entry points (hashagg update_dev with a selection, filter
 * run_dev, hashjoin build_dev / probe_dev).
 *
 * Built twice (tests/CMakeLists.txt), like test_cuda.c: against the real
 * runtime (skipped without a CUDA device: exit 77) and against the CUDA
 * emulator (tests/cudaemu), where it runs everywhere, with random delays in
 * the emulated streams. Results are compared as multisets of rows with the
 * same context on the CPU; the device's column-cache counters must show the
 * resident path was taken (uploads, and hits where one operator reuses the
 * columns another uploaded).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/context_internal.h"
#include "device/device.h"
#include "tessera/tessera.h"

#include "query_rows.h"

#ifdef TSR_CUDA_EMU
#include "emu.h"
#endif

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const STRS[] = {"a", "bb", "", "ccc", "dd", "e e", "f", "gg,g"};

/* t(k BIGINT, g VARCHAR, v BIGINT, d DOUBLE) and u(k BIGINT, w DOUBLE),
 * with NULLs; doubles are quarters, so sums are exact in any order. */
static void make_tables(tab_t *t, tab_t *u, size_t nt, size_t nu, int keys)
{
    memset(t, 0, sizeof(*t));
    t->nrows = nt;
    tab_col(t, "k", TSR_TYPE_INT64, true);
    tab_col(t, "g", TSR_TYPE_VARCHAR, true);
    tab_col(t, "v", TSR_TYPE_INT64, true);
    tab_col(t, "d", TSR_TYPE_DOUBLE, true);
    for (size_t i = 0; i < nt; i++) {
        ((int64_t *)t->data[0])[i] = (int64_t)(rnd() % (uint64_t)keys) - 3;
        ((const char **)t->data[1])[i] = STRS[rnd() % 8];
        ((int64_t *)t->data[2])[i] = (int64_t)(rnd() % 2000001) - 1000000;
        uint64_t r = rnd() % 100;
        double d = (double)((int64_t)(rnd() % 4001) - 2000) / 4.0;
        ((double *)t->data[3])[i] = r == 0 ? NAN : (r == 1 ? -0.0 : d);
        for (size_t c = 0; c < t->ncols; c++)
            t->nulls[c][i] = rnd() % 23 == 0;
    }
    memset(u, 0, sizeof(*u));
    u->nrows = nu;
    tab_col(u, "k", TSR_TYPE_INT64, true);
    tab_col(u, "w", TSR_TYPE_DOUBLE, true);
    for (size_t i = 0; i < nu; i++) {
        ((int64_t *)u->data[0])[i] = (int64_t)(rnd() % (uint64_t)(keys + 10)) - 3;
        ((double *)u->data[1])[i] = (double)((int64_t)(rnd() % 801) - 400) / 4.0;
        for (size_t c = 0; c < u->ncols; c++)
            u->nulls[c][i] = rnd() % 31 == 0;
    }
}

static const char *const QUERIES[] = {
    /* filter -> aggregation: the selection stays on the device */
    "SELECT k, COUNT(*), SUM(v), MIN(d), MAX(v) FROM t WHERE v > 0 GROUP BY k",
    "SELECT k, COUNT(*), SUM(v) FROM t WHERE v BETWEEN -1000 AND 500000 OR d IS NULL GROUP BY k",
    "SELECT g, COUNT(*), AVG(d) FROM t WHERE d >= 0.5 GROUP BY g",
    "SELECT COUNT(*), SUM(v), MIN(d) FROM t WHERE v > 2000000",
    "SELECT COUNT(*), SUM(v), MAX(d) FROM t WHERE d < 0.0 AND v < 0",
    /* aggregation without a filter; filters alone */
    "SELECT k, COUNT(*), SUM(v), MIN(v), MAX(d), COUNT(d) FROM t GROUP BY k",
    "SELECT * FROM t WHERE d >= 0.5 AND NOT (k = 3)",
    "SELECT k, v FROM t WHERE v < 0",
    /* joins, and join -> aggregation, filtered sides */
    "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k",
    "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k WHERE t.v > 0",
    ("SELECT u.k, COUNT(*), SUM(t.v), AVG(u.w) FROM t JOIN u ON t.k = u.k WHERE t.d > 1.0 "
     "GROUP BY u.k"),
    "SELECT t.k FROM t JOIN u ON t.k = u.k WHERE u.k > 5000",
};

static bool have_cuda(void)
{
    if (!tsr_dev_backend(TSR_DEVICE_CUDA))
        return false;
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    bool have = tsr_device_list_backend(list, TSR_DEVICE_CUDA)->ndevices > 0;
    tsr_device_list_destroy(list);
    return have;
}

static void run_sizes(const size_t *sizes, size_t nsizes, int keys, bool jitter)
{
    if (!have_cuda()) {
        print_message("skipped: no CUDA device\n");
        skip();
    }
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(jitter);
#else
    (void)jitter;
#endif
    for (size_t s = 0; s < nsizes; s++) {
        rng_state = 0x9e3779b97f4a7c15ULL + s;
        tab_t t, u;
        make_tables(&t, &u, sizes[s], sizes[s] / 7 + 1, keys);
        tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
        assert_int_equal(tsr_context_set_device(dev, "cuda"), TSR_OK);
        assert_string_equal(tsr_context_device(dev), "cuda:0");
        for (size_t q = 0; q < sizeof(QUERIES) / sizeof(QUERIES[0]); q++)
            check_same_rows(ref, dev, QUERIES[q], true);
        /* the resident path ran: columns uploaded once and reused */
        const tsr_dev_stats_t *st = &dev->dev->stats;
        if (sizes[s] > 0 && (st->col_uploads == 0 || st->col_hits == 0))
            fail_msg("%zu rows: column cache unused (uploads %llu, hits %llu, fallbacks %llu)",
                     sizes[s], (unsigned long long)st->col_uploads,
                     (unsigned long long)st->col_hits, (unsigned long long)st->col_fallbacks);
        tsr_context_destroy(ref);
        tsr_context_destroy(dev);
        tab_free(&t);
        tab_free(&u);
    }
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(0);
#endif
}

static void test_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 64, 97, 8191, 12007};
    run_sizes(sizes, sizeof(sizes) / sizeof(sizes[0]), 53, false);
}

/* Random delays in the emulated streams, more rows than a batch. */
static void test_jitter(void **state)
{
    (void)state;
    static const size_t sizes[] = {20011};
    run_sizes(sizes, 1, 700, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_jitter),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    return failed ? 1 : have_cuda() ? 0 : 77;
}
