/*
 * test_dev_columns.c - a query's columns stay on its device between the
 * device operators (engine/exec/dev_columns.c), and that changes nothing
 * but the traffic.
 *
 *   results    random filter + GROUP BY and filter + join queries give the
 *              CPU operators' rows exactly, with the cache roomy, squeezed
 *              (evictions) and too small for anything (every chunk falls
 *              back to per-operator copies)
 *   traffic    the device's byte counters (tsr_dev_t.stats) prove the reuse:
 *              a filter + aggregate query uploads each column it reads once
 *              and downloads no selection vector; with the cache too small
 *              the selection does come back (the counters can tell)
 *   failures   every host allocation of a query failing in turn, and every
 *              device allocation of the cache failing in turn (its
 *              fault-injection hook): errors or fallbacks, nothing leaks
 *              (the sanitizer build checks), the cache empties
 *
 * Devices: the cpu backend's model (put into the context directly, as
 * test_query_device.c does: every machine, fast, under the sanitizers) and
 * OpenCL through tsr_context_set_device where a device exists (PoCL here);
 * the OpenCL cases skip elsewhere. CUDA's backend takes host input only
 * (its device-input entry points are not there yet): its queries take the
 * per-operator copies, which test_query_device.c covers.
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
#include "exec/dev_columns.h"
#include "exec/dev_exec.h"
#include "tessera/tessera.h"

#include "query_rows.h"

#define T_ROWS 10007  /* prime, > 1 batch */
#define N_ROWS 100003 /* the traffic test: one device chunk, traffic far above the overheads */
/* bytes of programs, counters and the group table (its slots, read back
 * whole) a query moves besides its columns */
#define SLACK ((uint64_t)128 << 10)

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const STRS[] = {"a", "bb", "", "ccc", "dd", "e e", "f", "gg", "hh", "ii"};

/* ---- tables --------------------------------------------------------------------------- */

/* t(k BIGINT, g VARCHAR, b BOOL, v BIGINT, d DOUBLE); NULLs in every column
 * when nulls. Doubles are multiples of 1/4 (exact sums in any order). */
static void make_t(tab_t *t, size_t nrows, int keys, bool nulls)
{
    memset(t, 0, sizeof(*t));
    t->nrows = nrows;
    tab_col(t, "k", TSR_TYPE_INT64, nulls);
    tab_col(t, "g", TSR_TYPE_VARCHAR, nulls);
    tab_col(t, "b", TSR_TYPE_BOOL, nulls);
    tab_col(t, "v", TSR_TYPE_INT64, nulls);
    tab_col(t, "d", TSR_TYPE_DOUBLE, nulls);
    for (size_t i = 0; i < nrows; i++) {
        ((int64_t *)t->data[0])[i] = (int64_t)(rnd() % (uint64_t)keys) - 3;
        ((const char **)t->data[1])[i] = STRS[rnd() % 10];
        ((bool *)t->data[2])[i] = rnd() & 1;
        ((int64_t *)t->data[3])[i] = (int64_t)(rnd() % 2001) - 1000;
        uint64_t r = rnd() % 100;
        double d = (double)((int64_t)(rnd() % 4001) - 2000) / 4.0;
        ((double *)t->data[4])[i] = r == 0 ? NAN : (r == 1 ? -0.0 : d);
        for (size_t c = 0; nulls && c < t->ncols; c++)
            t->nulls[c][i] = rnd() % 19 == 0;
    }
}

/* u(k BIGINT, g VARCHAR, w DOUBLE), with NULLs. */
static void make_u(tab_t *u, size_t nrows, int keys)
{
    memset(u, 0, sizeof(*u));
    u->nrows = nrows;
    tab_col(u, "k", TSR_TYPE_INT64, true);
    tab_col(u, "g", TSR_TYPE_VARCHAR, true);
    tab_col(u, "w", TSR_TYPE_DOUBLE, true);
    for (size_t i = 0; i < nrows; i++) {
        ((int64_t *)u->data[0])[i] = (int64_t)(rnd() % (uint64_t)keys) - 3;
        ((const char **)u->data[1])[i] = STRS[rnd() % 10];
        ((double *)u->data[2])[i] = (double)((int64_t)(rnd() % 801) - 400) / 4.0;
        for (size_t c = 0; c < u->ncols; c++)
            u->nulls[c][i] = rnd() % 29 == 0;
    }
}

/* sql gives the same rows (as multisets) on both contexts; returns them. */
static size_t check_same(tsr_context_t *ref, tsr_context_t *dev, const char *sql)
{
    return check_same_rows(ref, dev, sql, false);
}

/* ---- devices ------------------------------------------------------------------------ */

static bool have_opencl(void)
{
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    bool have = tsr_device_list_backend(list, TSR_DEVICE_OPENCL)->ndevices > 0;
    tsr_device_list_destroy(list);
    return have;
}

/* Puts the device into ctx: "cpu-model" (the cpu backend, directly) or
 * "opencl" (the public API). */
static void use_device(tsr_context_t *ctx, const char *which)
{
    if (strcmp(which, "opencl") == 0) {
        assert_int_equal(tsr_context_set_device(ctx, "opencl"), TSR_OK);
        return;
    }
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(tsr__context_mem(ctx), "cpu", &ctx->dev, &err), TSR_OK);
    snprintf(ctx->device_name, sizeof(ctx->device_name), "cpu-model");
}

/* ---- random queries -------------------------------------------------------------------- */

/* One comparison the device filter covers (or, now and then, one it does
 * not: the CPU selects and the aggregation still runs on the device). */
static void rnd_atom(char *buf, size_t size, const char *tq)
{
    switch (rnd() % 8) {
    case 0:
        snprintf(buf, size, "%sv > %d", tq, (int)(rnd() % 2001) - 1000);
        break;
    case 1:
        snprintf(buf, size, "%sd <= %.2f", tq, (double)((int)(rnd() % 4001) - 2000) / 4.0);
        break;
    case 2:
        snprintf(buf, size, "%sk IN (%d, %d, %d)", tq, (int)(rnd() % 40) - 3, (int)(rnd() % 40) - 3,
                 (int)(rnd() % 40) - 3);
        break;
    case 3:
        snprintf(buf, size, "%sv IS NOT NULL", tq);
        break;
    case 4:
        snprintf(buf, size, "NOT (%sk = %d)", tq, (int)(rnd() % 40) - 3);
        break;
    case 5:
        snprintf(buf, size, "%sd <> 0.0", tq);
        break;
    case 6:
        snprintf(buf, size, "%sv BETWEEN %d AND %d", tq, -(int)(rnd() % 1000), (int)(rnd() % 1000));
        break;
    default:
        snprintf(buf, size, "%sv + 1 > %d", tq, (int)(rnd() % 2001) - 1000); /* CPU-only */
        break;
    }
}

static void rnd_pred(char *buf, size_t size, const char *tq)
{
    char a[96], b[96];
    rnd_atom(a, sizeof(a), tq);
    rnd_atom(b, sizeof(b), tq);
    switch (rnd() % 3) {
    case 0:
        snprintf(buf, size, "%s", a);
        break;
    case 1:
        snprintf(buf, size, "%s AND %s", a, b);
        break;
    default:
        snprintf(buf, size, "(%s OR %s)", a, b);
        break;
    }
}

static void rnd_group_query(char *sql, size_t size)
{
    static const char *const keys[] = {"k", "g", "b", "d", "k, g", "b, k", "d, b"};
    static const char *const aggs[] = {"COUNT(*)", "SUM(v)",   "MIN(d)", "MAX(v)",
                                       "AVG(d)",   "COUNT(g)", "SUM(d)", "AVG(v)"};
    char pred[256];
    rnd_pred(pred, sizeof(pred), "");
    const char *key = keys[rnd() % 7];
    const char *a1 = aggs[rnd() % 8], *a2 = aggs[rnd() % 8];
    if (rnd() % 5 == 0)
        snprintf(sql, size, "SELECT %s, %s FROM t WHERE %s", a1, a2, pred); /* no keys */
    else
        snprintf(sql, size, "SELECT %s, %s, %s FROM t WHERE %s GROUP BY %s", key, a1, a2, pred,
                 key);
}

static void rnd_join_query(char *sql, size_t size)
{
    char pred[256];
    rnd_pred(pred, sizeof(pred), "t.");
    switch (rnd() % 3) {
    case 0:
        snprintf(sql, size, "SELECT t.k, t.v, u.w FROM t JOIN u ON t.k = u.k WHERE %s", pred);
        break;
    case 1:
        snprintf(sql, size,
                 "SELECT u.g, COUNT(*), SUM(t.v), MIN(u.w) FROM t JOIN u ON t.k = u.k WHERE %s "
                 "GROUP BY u.g",
                 pred);
        break;
    default:
        snprintf(sql, size,
                 "SELECT t.g, COUNT(*) FROM t JOIN u ON t.k = u.k AND t.g = u.g WHERE %s "
                 "GROUP BY t.g",
                 pred);
        break;
    }
}

/* nq random queries of each kind on dev with the cache limited to limit
 * bytes (0: the default), against ref. */
static void check_random(tsr_context_t *ref, tsr_context_t *dev, size_t limit, int nq)
{
    dev->dev->col_limit = limit;
    char sql[768];
    for (int q = 0; q < nq; q++) {
        rnd_group_query(sql, sizeof(sql));
        check_same(ref, dev, sql);
        rnd_join_query(sql, sizeof(sql));
        check_same(ref, dev, sql);
    }
    dev->dev->col_limit = 0;
}

static void random_on(const char *which, int nq)
{
    rng_state = 0x243f6a8885a308d3ULL;
    tab_t t, u;
    make_t(&t, T_ROWS, 37, true);
    make_u(&u, 613, 37);
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    use_device(dev, which);
    tsr_dev_stats_t s0 = dev->dev->stats;
    check_random(ref, dev, 0, nq);
    tsr_dev_stats_t s1 = dev->dev->stats;
    assert_true(s1.col_uploads > s0.col_uploads); /* the cache was used ... */
    assert_true(s1.col_hits > s0.col_hits);       /* ... and reused */
    assert_int_equal(s1.col_fallbacks, s0.col_fallbacks);
    /* room for about one column chunk: evictions (and some fallbacks) */
    check_random(ref, dev, T_ROWS * 8 + 4096, nq);
    tsr_dev_stats_t s2 = dev->dev->stats;
    assert_true(s2.col_evictions > s1.col_evictions);
    /* room for nothing: every chunk falls back to per-operator copies */
    check_random(ref, dev, 1, nq);
    tsr_dev_stats_t s3 = dev->dev->stats;
    assert_true(s3.col_fallbacks > s2.col_fallbacks);
    assert_int_equal(s3.col_uploads, s2.col_uploads);
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

static void test_random_cpu_model(void **state)
{
    (void)state;
    random_on("cpu-model", 8);
}

static void test_random_opencl(void **state)
{
    (void)state;
    if (!have_opencl())
        skip();
    random_on("opencl", 4);
}

/* ---- traffic -------------------------------------------------------------------------- */

typedef struct traffic {
    uint64_t h2d, d2h, uploads, hits, fallbacks;
} traffic_t;

static traffic_t query_traffic(tsr_context_t *ref, tsr_context_t *dev, const char *sql)
{
    tsr_dev_stats_t a = dev->dev->stats;
    tsr_result_t *res = run(dev, sql);
    tsr_dev_stats_t b = dev->dev->stats;
    tsr_result_destroy(res);
    check_same(ref, dev, sql);
    traffic_t r = {.h2d = b.bytes_h2d - a.bytes_h2d,
                   .d2h = b.bytes_d2h - a.bytes_d2h,
                   .uploads = b.col_uploads - a.col_uploads,
                   .hits = b.col_hits - a.col_hits,
                   .fallbacks = b.col_fallbacks - a.col_fallbacks};
    if (getenv("TSR_TEST_VERBOSE")) /* the figures docs/devices.md quotes */
        printf("%s [limit %zu]: h2d %llu d2h %llu uploads %llu hits %llu fallbacks %llu\n", sql,
               dev->dev->col_limit, (unsigned long long)r.h2d, (unsigned long long)r.d2h,
               (unsigned long long)r.uploads, (unsigned long long)r.hits,
               (unsigned long long)r.fallbacks);
    return r;
}

static void traffic_on(const char *which)
{
    rng_state = 0x13198a2e03707344ULL;
    tab_t t;
    make_t(&t, N_ROWS, 50, false); /* no NULLs: a column is exactly rows * 8 bytes */
    tsr_context_t *ref = new_context(&t, NULL), *dev = new_context(&t, NULL);
    use_device(dev, which);
    const uint64_t col = (uint64_t)N_ROWS * 8;
    /* v > -900 keeps ~95% of the rows: the selection would be ~1.1 MB */
    const char *sql = "SELECT k, COUNT(*), SUM(v), MIN(v) FROM t WHERE v > -900 GROUP BY k";
    traffic_t r = query_traffic(ref, dev, sql);
    /* two columns (v: filter and aggregates, k: key), each uploaded once */
    assert_int_equal(r.uploads, 2);
    assert_true(r.hits >= 1); /* the aggregation found v resident */
    assert_int_equal(r.fallbacks, 0);
    if (r.h2d < 2 * col || r.h2d > 2 * col + SLACK)
        fail_msg("%s: %llu bytes uploaded for two columns of %llu", which,
                 (unsigned long long)r.h2d, (unsigned long long)col);
    if (r.d2h > SLACK) /* groups only: no selection vector came back */
        fail_msg("%s: %llu bytes downloaded", which, (unsigned long long)r.d2h);

    /* a second query is a new cache: the same uploads again, nothing kept */
    traffic_t r2 = query_traffic(ref, dev, sql);
    assert_int_equal(r2.uploads, 2);
    assert_true(r2.h2d >= 2 * col && r2.h2d <= 2 * col + SLACK);

    /* a DOUBLE key and a DOUBLE argument: the key normalised, the value raw
     * (two forms of d), the filter's v reused by nothing: three uploads */
    r = query_traffic(ref, dev, "SELECT d, SUM(d), COUNT(*) FROM t WHERE v < 0 GROUP BY d");
    assert_int_equal(r.uploads, 3);
    assert_true(r.h2d >= 3 * col && r.h2d <= 3 * col + SLACK);

    /* a pre-filter the device lacks (arithmetic): the CPU selects, and its
     * selection (4 bytes a row) goes up instead of the gathered columns */
    r = query_traffic(ref, dev,
                      "SELECT k, COUNT(*), SUM(v), MIN(v) FROM t WHERE v + 1 > -899 GROUP BY k");
    assert_int_equal(r.uploads, 2);
    assert_int_equal(r.fallbacks, 0);
    if (r.h2d < 2 * col + (uint64_t)N_ROWS * 4 * 9 / 10 || r.h2d > 2 * col + N_ROWS * 4 + SLACK)
        fail_msg("%s: %llu bytes uploaded with a CPU selection", which, (unsigned long long)r.h2d);
    assert_true(r.d2h <= SLACK);

    /* the cache too small for anything: per-operator copies, and the
     * counters see the selection come back (~4 bytes a selected row) */
    dev->dev->col_limit = 1;
    r = query_traffic(ref, dev, sql);
    dev->dev->col_limit = 0;
    assert_int_equal(r.uploads, 0);
    assert_true(r.fallbacks >= 1);
    if (strcmp(which, "opencl") == 0) { /* the cpu model's kernels read host memory in place */
        assert_true(r.d2h > (uint64_t)N_ROWS * 4 * 9 / 10);
        assert_true(r.h2d > 2 * col); /* v twice: for the filter, then for the aggregates */
    }

    /* a plain FILTER: the same columns, the selection downloaded (the host
     * gathers the rows), each column once */
    r = query_traffic(ref, dev, "SELECT k, v FROM t WHERE v > 990 AND d > 0.0");
    assert_int_equal(r.uploads, 2);
    assert_true(r.h2d >= 2 * col && r.h2d <= 2 * col + SLACK);
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);

    /* a join key column reused: the self-join's build side (u.k, one
     * chunk) is the very chunk the probe reads */
    tab_t u;
    make_u(&u, 4099, 300);
    ref = new_context(&u, NULL);
    dev = new_context(&u, NULL);
    use_device(dev, which);
    r = query_traffic(ref, dev, "SELECT COUNT(*) FROM t a JOIN t b ON a.k = b.k");
    assert_int_equal(r.uploads, 1);
    assert_int_equal(r.hits, 1);
    assert_true(r.h2d >= 4099 * 8 && r.h2d < 4099 * 8 + 4096);
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&u);
}

static void test_traffic_cpu_model(void **state)
{
    (void)state;
    traffic_on("cpu-model");
}

static void test_traffic_opencl(void **state)
{
    (void)state;
    if (!have_opencl())
        skip();
    traffic_on("opencl");
}

/* ---- failures ------------------------------------------------------------------------- */

/* Every host allocation of a device query fails in turn: TSR_ERR_NOMEM (or
 * a fallback that absorbed it), nothing leaks, and the context works. */
static void test_host_alloc_failures(void **state)
{
    (void)state;
    static const char *const queries[] = {
        "SELECT k, g, COUNT(*), SUM(v), AVG(d) FROM t WHERE v > -500 AND d < 100.0 GROUP BY k, g",
        "SELECT t.k, u.w FROM t JOIN u ON t.k = u.k WHERE t.v > 0",
    };
    rng_state = 0x99ULL;
    tab_t t, u;
    make_t(&t, 300, 9, true);
    make_u(&u, 40, 9);
    tsr_context_t *ref = new_context(&t, &u), *dev = new_context(&t, &u);
    use_device(dev, "cpu-model");
    for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++) {
        assert_true(fail_each_allocation(dev, queries[q]) > 10);
        check_same(ref, dev, queries[q]);
    }
    tsr_context_destroy(ref);
    tsr_context_destroy(dev);
    tab_free(&t);
    tab_free(&u);
}

/* A table of n rows in batches of `batch` rows: INT64 column x (NULL every
 * 7th row when nulls), DOUBLE column y. */
static tsr_table_t *make_table(tsr_mem_t *mem, size_t n, size_t batch, bool nulls)
{
    static const char *const names[] = {"x", "y"};
    static const tsr_type_t types[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE};
    tsr_table_t *t = NULL;
    assert_int_equal(tsr_table_create(mem, "c", 2, names, types, &t), TSR_OK);
    for (size_t r0 = 0; r0 < n; r0 += batch) {
        size_t m = n - r0 < batch ? n - r0 : batch;
        tsr_vector_t *cols = tsr_mem_calloc(mem, 2, sizeof(tsr_vector_t));
        assert_non_null(cols);
        assert_int_equal(tsr_vector_alloc(mem, TSR_TYPE_INT64, m, nulls, NULL, &cols[0]), TSR_OK);
        assert_int_equal(tsr_vector_alloc(mem, TSR_TYPE_DOUBLE, m, false, NULL, &cols[1]), TSR_OK);
        for (size_t i = 0; i < m; i++) {
            ((int64_t *)cols[0].data)[i] = (int64_t)(r0 + i);
            ((double *)cols[1].data)[i] = (r0 + i) % 3 ? -0.0 : 0.5;
            if (nulls)
                tsr_bit_set(cols[0].validity, i, (r0 + i) % 7 != 0);
        }
        assert_int_equal(tsr_table_append_batch(t, m, cols), TSR_OK);
    }
    return t;
}

/* The cache module itself on the cpu backend: hits, forms, pinning,
 * eviction order, transient entries, and device allocation failures at
 * every point (the fault-injection hook) answering "does not fit". */
static void test_cache_module(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_dev_t *dev = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(&mem, "cpu", &dev, &err), TSR_OK);
    const size_t n = 1009;
    tsr_table_t *t = make_table(&mem, n, 100, true);
    tsr_dev_cols_t c;
    tsr_dev_cols_init(&c, &mem, dev);
    tsr_dev_col_t a, b;
    bool fits;

    /* RAW x: values and validity as the host has them */
    assert_int_equal(
        tsr_dev_cols_get(&c, t, 0, 0, t->nbatches, TSR_DEV_COL_RAW, true, &a, &fits, &err), TSR_OK);
    assert_true(fits);
    assert_int_equal(a.rows, n);
    assert_non_null(a.valid);
    const int64_t *xv = a.values->handle;
    const uint64_t *xm = a.valid->handle;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(xv[i], (int64_t)i);
        assert_int_equal((xm[i / 64] >> (i % 64)) & 1, i % 7 != 0);
    }
    /* the same chunk again: a hit; VALID of it: a hit on the RAW entry */
    assert_int_equal(
        tsr_dev_cols_get(&c, t, 0, 0, t->nbatches, TSR_DEV_COL_RAW, true, &b, &fits, &err), TSR_OK);
    assert_ptr_equal(a.values, b.values);
    assert_int_equal(
        tsr_dev_cols_get(&c, t, 0, 0, t->nbatches, TSR_DEV_COL_VALID, true, &b, &fits, &err),
        TSR_OK);
    assert_null(b.values);
    assert_ptr_equal(a.valid, b.valid);
    assert_int_equal(c.stats.col_uploads, 1);
    assert_int_equal(c.stats.col_hits, 2);
    /* KEY y: -0.0 normalised to 0.0; no NULLs: no validity */
    assert_int_equal(tsr_dev_cols_get(&c, t, 1, 2, 5, TSR_DEV_COL_KEY, false, &b, &fits, &err),
                     TSR_OK);
    assert_int_equal(b.rows, 300);
    assert_null(b.valid);
    for (size_t i = 0; i < 300; i++) {
        double want = (200 + i) % 3 ? 0.0 : 0.5, got;
        memcpy(&got, (const uint64_t *)b.values->handle + i, sizeof(got));
        assert_true(got == want && !signbit(got));
    }
    assert_int_equal(tsr_dev_cols_count(&c), 2);
    tsr_dev_cols_unpin(&c); /* the transient KEY entry goes */
    assert_int_equal(tsr_dev_cols_count(&c), 1);

    /* a limit of two chunks of 100 rows: the least recently used goes */
    tsr_dev_cols_clear(&c);
    tsr_dev_cols_init(&c, &mem, dev);
    c.limit = 2 * 100 * 8 + 2 * 16;
    tsr_dev_col_t ch[3];
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(
            tsr_dev_cols_get(&c, t, 1, k, k + 1, TSR_DEV_COL_RAW, true, &ch[k], &fits, &err),
            TSR_OK);
        assert_true(fits == (k < 2)); /* the first two are pinned: the third cannot fit */
    }
    tsr_dev_cols_note_fallback(&c);
    tsr_dev_cols_unpin(&c);
    assert_int_equal(tsr_dev_cols_get(&c, t, 1, 1, 2, TSR_DEV_COL_RAW, true, &b, &fits, &err),
                     TSR_OK); /* chunk 1 is now the most recent */
    assert_int_equal(tsr_dev_cols_get(&c, t, 1, 2, 3, TSR_DEV_COL_RAW, true, &b, &fits, &err),
                     TSR_OK);
    assert_true(fits);
    assert_int_equal(c.stats.col_evictions, 1); /* chunk 0 went */
    assert_int_equal(tsr_dev_cols_count(&c), 2);
    assert_true(c.used <= c.limit);
    tsr_dev_buf_t *sb = NULL;
    assert_int_equal(tsr_dev_cols_scratch(&c, 1 << 20, &sb, &fits, &err), TSR_OK);
    assert_false(fits); /* over the limit, everything pinned */
    tsr_dev_cols_unpin(&c);
    assert_int_equal(tsr_dev_cols_scratch(&c, 64, &sb, &fits, &err), TSR_OK);
    assert_true(fits);
    assert_non_null(sb);
    tsr_dev_cols_unpin(&c);
    assert_int_equal(c.stats.col_evictions, 2); /* the scratch made room: chunk 1 went */
    assert_int_equal(tsr_dev_cols_count(&c), 1);

    /* device allocations failing from the k-th on: "does not fit", nothing
     * half-made stays, the bytes add up */
    for (long k = 0; k < 6; k++) {
        tsr_dev_cols_clear(&c);
        tsr_dev_cols_init(&c, &mem, dev);
        c.fail_after = k;
        size_t placed = 0;
        for (size_t col = 0; col < 2; col++)
            for (size_t b0 = 0; b0 < t->nbatches; b0 += 5) {
                size_t b1 = b0 + 5 < t->nbatches ? b0 + 5 : t->nbatches;
                assert_int_equal(
                    tsr_dev_cols_get(&c, t, col, b0, b1, TSR_DEV_COL_RAW, true, &b, &fits, &err),
                    TSR_OK);
                placed += fits;
            }
        assert_true(placed <= (size_t)k);
        assert_int_equal(tsr_dev_cols_count(&c), placed);
        assert_true(c.used <= c.limit);
        tsr_dev_cols_unpin(&c);
        tsr_dev_cols_clear(&c);
        assert_int_equal(c.used, 0); /* every placed byte was accounted */
    }
    tsr_dev_cols_clear(&c);
    assert_int_equal(tsr_dev_cols_count(&c), 0);
    tsr_table_destroy(t);
    tsr_dev_close(dev); /* leaks of buffers or staging: the sanitizer build */
}

/* Bad requests are errors, not crashes. */
static void test_bad_requests(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_dev_t *dev = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(&mem, "cpu", &dev, &err), TSR_OK);
    tsr_table_t *t = make_table(&mem, 10, 10, false);
    tsr_dev_cols_t c;
    memset(&c, 0, sizeof(c));
    tsr_dev_cols_clear(&c); /* a zeroed cache clears */
    tsr_dev_col_t a;
    bool fits;
    assert_int_equal(tsr_dev_cols_get(&c, t, 0, 0, 1, TSR_DEV_COL_RAW, true, &a, &fits, &err),
                     TSR_ERR_INTERNAL); /* not initialised */
    tsr_dev_cols_init(&c, &mem, dev);
    assert_int_equal(tsr_dev_cols_get(&c, t, 2, 0, 1, TSR_DEV_COL_RAW, true, &a, &fits, &err),
                     TSR_ERR_INTERNAL);
    assert_int_equal(tsr_dev_cols_get(&c, t, 0, 1, 1, TSR_DEV_COL_RAW, true, &a, &fits, &err),
                     TSR_ERR_INTERNAL);
    assert_int_equal(tsr_dev_cols_get(&c, t, 0, 0, 2, TSR_DEV_COL_RAW, true, &a, &fits, &err),
                     TSR_ERR_INTERNAL);
    tsr_dev_buf_t *sb;
    assert_int_equal(tsr_dev_cols_scratch(&c, 0, &sb, &fits, &err), TSR_ERR_INTERNAL);
    /* device-input kernels check their buffers */
    tsr_dev_filter_spec_t spec = {.ncols = 1, .types = {TSR_TYPE_INT64}, .ninstrs = 1};
    spec.prog[0] = (tsr_dev_pred_instr_t){.op = TSR_DEV_PRED_GT, .column = 0, .i = 3};
    tsr_dev_filter_t *f = NULL;
    assert_int_equal(tsr_dev_filter_create(dev, &spec, &f, &err), TSR_OK);
    assert_int_equal(tsr_dev_cols_get(&c, t, 0, 0, 1, TSR_DEV_COL_RAW, true, &a, &fits, &err),
                     TSR_OK);
    tsr_dev_filter_dcols_t dc = {.n = 10, .values = {a.values}};
    size_t nsel = 99;
    assert_int_equal(tsr_dev_cols_scratch(&c, 8, &sb, &fits, &err), TSR_OK);
    assert_int_equal(tsr_dev_filter_run_dev(f, NULL, &dc, sb, &nsel, &err), TSR_ERR_INVALID_ARG);
    tsr_dev_cols_unpin(&c);
    assert_int_equal(tsr_dev_cols_scratch(&c, 40, &sb, &fits, &err), TSR_OK);
    dc.n = 11; /* more rows than the column holds */
    assert_int_equal(tsr_dev_filter_run_dev(f, NULL, &dc, sb, &nsel, &err), TSR_ERR_INVALID_ARG);
    dc.n = 10;
    assert_int_equal(tsr_dev_filter_run_dev(f, NULL, &dc, sb, &nsel, &err), TSR_OK);
    assert_int_equal(nsel, 6); /* 4..9 */
    const uint32_t *s = sb->handle;
    for (size_t i = 0; i < nsel; i++)
        assert_int_equal(s[i], 4 + i);
    tsr_dev_filter_destroy(f);
    tsr_dev_cols_clear(&c);
    tsr_table_destroy(t);
    tsr_dev_close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_module),        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_traffic_cpu_model),   cmocka_unit_test(test_traffic_opencl),
        cmocka_unit_test(test_random_cpu_model),    cmocka_unit_test(test_random_opencl),
        cmocka_unit_test(test_host_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
