/*
 * test_sort.c - the SORT operator (tsr_op_sort) against a stable merge sort
 * of the rows (exec_model.h): random multi-key orders over every column type,
 * ASC/DESC, NULL placement, stability on heavy duplicates, doubles' special
 * values, edge sizes and ragged batches, with and without a thread pool, and
 * fault injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec_model.h"

static tsr_pool_t *g_pool;

static tsr_plan_t sort_plan(const tsr_table_t *t, tsr_sort_key_t *keys, size_t nkeys)
{
    tsr_plan_t p = {0};
    p.kind = TSR_PLAN_SORT;
    p.ncols = t->ncols;
    p.types = malloc(t->ncols * sizeof(tsr_type_t));
    p.names = malloc(t->ncols * sizeof(char *));
    for (size_t c = 0; c < t->ncols; c++) {
        p.types[c] = t->fields[c].type;
        p.names[c] = t->fields[c].name;
    }
    p.sort_keys = keys;
    p.nsort_keys = nkeys;
    return p;
}

static void free_plan(tsr_plan_t *p)
{
    free(p->types);
    free(p->names);
}

/* Sorts t by keys with the engine and the model and compares. */
static void check_sort(const tsr_table_t *t, tsr_sort_key_t *keys, size_t nkeys, tsr_pool_t *pool)
{
    tsr_plan_t p = sort_plan(t, keys, nkeys);
    tsr_exec_ctx_t ctx = {.mem = NULL, .pool = pool};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_table_t *out = NULL;
    tsr_op_input_t in = {(tsr_table_t *)t, true};
    assert_int_equal(tsr_op_sort(&ctx, &p, in, &out, &err), TSR_OK);
    assert_int_equal(out->nrows, t->nrows);
    /* full batches but the last */
    for (size_t b = 0; b < out->nbatches; b++) {
        if (b + 1 < out->nbatches)
            assert_int_equal(out->batches[b].nrows, TSR_BATCH_ROWS);
        else
            assert_true(out->batches[b].nrows > 0);
    }
    mrows_t want = model_from_table(t);
    model_sort(&want, keys, nkeys);
    if (model_diff(&want, out) != SIZE_MAX) {
        for (size_t k = 0; k < nkeys; k++)
            print_error("key %zu: col %zu %s\n", k, keys[k].column, keys[k].desc ? "DESC" : "ASC");
        fail();
    }
    mrows_free(&want);
    tsr_table_destroy(out);
    free_plan(&p);
}

static void random_sorts(size_t nrows, bool ragged, uint64_t seed, int rounds)
{
    tsr_table_t *t = model_table(NULL, nrows, seed, ragged);
    rng_t rng = {seed + 1000};
    for (int k = 0; k < rounds; k++) {
        tsr_sort_key_t keys[3];
        size_t nkeys = 1 + rng_below(&rng, 3);
        for (size_t j = 0; j < nkeys; j++) {
            keys[j].column = rng_below(&rng, MC_NCOLS);
            keys[j].desc = rng_pct(&rng, 50);
        }
        check_sort(t, keys, nkeys, k % 2 ? g_pool : NULL);
    }
    /* no keys at all: the input order */
    check_sort(t, NULL, 0, NULL);
    tsr_table_destroy(t);
}

static void test_sort_edge_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 8191, 8192, 8193, 3 * 8192 + 17};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        random_sorts(sizes[i], false, 10 + i, sizes[i] >= 8191 ? 6 : 16);
}

static void test_sort_ragged(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        random_sorts(4000 * seed, true, seed, 6);
}

/* Enough rows for the radix passes to split into parallel chunks. */
static void test_sort_parallel_chunks(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 70000, 31, false);
    tsr_sort_key_t k1[1] = {{MC_I3, true}};
    tsr_sort_key_t k3[3] = {{MC_B1, false}, {MC_S2, true}, {MC_D1, false}};
    check_sort(t, k1, 1, g_pool);
    check_sort(t, k3, 3, g_pool);
    check_sort(t, k3, 3, NULL);
    tsr_table_destroy(t);
}

/* A table (id INT64 unique, k INT64 with few values and NULLs, d DOUBLE). */
static tsr_table_t *dup_table(size_t n, uint64_t seed)
{
    const char *names[3] = {"id", "k", "d"};
    tsr_type_t types[3] = {TSR_TYPE_INT64, TSR_TYPE_INT64, TSR_TYPE_DOUBLE};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "dups", 3, names, types, &t), TSR_OK);
    rng_t rng = {seed};
    static const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 1.0, -1.0};
    for (size_t done = 0; done < n;) {
        size_t m = n - done < TSR_BATCH_ROWS ? n - done : TSR_BATCH_ROWS;
        tsr_vector_t *cols = calloc(3, sizeof(tsr_vector_t));
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, m, false, NULL, &cols[0]), TSR_OK);
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, m, true, NULL, &cols[1]), TSR_OK);
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_DOUBLE, m, true, NULL, &cols[2]), TSR_OK);
        for (size_t r = 0; r < m; r++) {
            ((int64_t *)cols[0].data)[r] = (int64_t)(done + r);
            ((int64_t *)cols[1].data)[r] = (int64_t)rng_below(&rng, 4) - 1;
            if (rng_pct(&rng, 15))
                tsr_bit_set(cols[1].owned_validity, r, false);
            ((double *)cols[2].data)[r] = specials[rng_below(&rng, 8)];
            if (rng_pct(&rng, 10))
                tsr_bit_set(cols[2].owned_validity, r, false);
        }
        assert_int_equal(tsr_table_append_batch(t, m, cols), TSR_OK);
        done += m;
    }
    return t;
}

/* Heavy duplicates: equal keys keep the input order (ids ascending). */
static void test_sort_stable(void **state)
{
    (void)state;
    tsr_table_t *t = dup_table(40000, 3);
    for (int desc = 0; desc < 2; desc++) {
        for (size_t col = 1; col <= 2; col++) {
            tsr_sort_key_t key = {col, desc};
            check_sort(t, &key, 1, desc ? g_pool : NULL);
            tsr_plan_t p = sort_plan(t, &key, 1);
            tsr_exec_ctx_t ctx = {.mem = NULL, .pool = NULL};
            tsr_error_t err;
            tsr_table_t *out;
            tsr_op_input_t in = {t, true};
            assert_int_equal(tsr_op_sort(&ctx, &p, in, &out, &err), TSR_OK);
            mrows_t got = model_from_table(out);
            size_t nulls = 0;
            for (size_t i = 0; i < got.n; i++)
                nulls += mrow(&got, i)[col].null;
            assert_true(nulls > 0);
            for (size_t i = 0; i < got.n; i++) {
                mval_t *row = mrow(&got, i);
                /* NULLs are first in ASC and last in DESC */
                assert_int_equal(row[col].null, desc ? i >= got.n - nulls : i < nulls);
                if (i == 0)
                    continue;
                mval_t *prev = mrow(&got, i - 1);
                int c = model_sort_cmp1(&prev[col], &row[col]);
                assert_true(desc ? c >= 0 : c <= 0);
                if (c == 0) /* ties: ascending ids */
                    assert_true(prev[0].i < row[0].i);
            }
            /* NaN is the largest non-NULL value, -0.0 equals 0.0 */
            if (col == 2 && !desc) {
                assert_true(isnan(mrow(&got, got.n - 1)[2].d));
            }
            mrows_free(&got);
            tsr_table_destroy(out);
            free_plan(&p);
        }
    }
    /* two keys: k DESC then d ASC */
    tsr_sort_key_t keys[2] = {{1, true}, {2, false}};
    check_sort(t, keys, 2, g_pool);
    tsr_table_destroy(t);
}

/* Extremes of INT64 order correctly (sign handling of the normalized key). */
static void test_sort_int_extremes(void **state)
{
    (void)state;
    const char *names[1] = {"x"};
    tsr_type_t types[1] = {TSR_TYPE_INT64};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "x", 1, names, types, &t), TSR_OK);
    static const int64_t vals[] = {0, INT64_MIN, INT64_MAX, -1, 1, INT64_MIN + 1, 255, 256, -256};
    size_t n = sizeof(vals) / sizeof(vals[0]);
    tsr_vector_t *cols = calloc(1, sizeof(tsr_vector_t));
    assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, n, false, NULL, &cols[0]), TSR_OK);
    memcpy(cols[0].data, vals, sizeof(vals));
    assert_int_equal(tsr_table_append_batch(t, n, cols), TSR_OK);
    tsr_sort_key_t key = {0, false};
    check_sort(t, &key, 1, NULL);
    key.desc = true;
    check_sort(t, &key, 1, NULL);
    tsr_table_destroy(t);
}

static void test_sort_fault_injection(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 3000, 21, true);
    tsr_sort_key_t keys[2] = {{MC_S1, false}, {MC_D1, true}};
    tsr_plan_t p = sort_plan(t, keys, 2);
    for (int use_pool = 0; use_pool < 2; use_pool++) {
        for (long n = 0; n < 100000; n++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, n);
            tsr_exec_ctx_t ctx = {.mem = &mem, .pool = use_pool ? g_pool : NULL};
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_table_t *out = NULL;
            tsr_op_input_t in = {t, true};
            tsr_status_t rc = tsr_op_sort(&ctx, &p, in, &out, &err);
            if (atomic_load(&mem.failures) == 0) {
                assert_int_equal(rc, TSR_OK);
                tsr_table_destroy(out);
                break;
            }
            assert_int_equal(rc, TSR_ERR_NOMEM);
            assert_int_equal(err.status, TSR_ERR_NOMEM);
            assert_null(out);
        }
    }
    free_plan(&p);
    tsr_table_destroy(t);
}

static int setup(void **state)
{
    (void)state;
    return tsr_pool_create(NULL, 2, &g_pool) == TSR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsr_pool_destroy(g_pool);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_int_extremes),    cmocka_unit_test(test_sort_stable),
        cmocka_unit_test(test_sort_edge_sizes),      cmocka_unit_test(test_sort_ragged),
        cmocka_unit_test(test_sort_parallel_chunks), cmocka_unit_test(test_sort_fault_injection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
