/*
 * test_api.c - the public C API: contexts, registering tables, queries,
 * reading results, error details, and allocation failures at every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/context_internal.h"
#include "tessera/tessera.h"

#define NROWS 20000 /* more than two batches */

typedef struct api_fixture {
    int64_t ids[NROWS];
    double prices[NROWS];
    bool flags[NROWS];
    const char *names[NROWS];
    bool nulls[NROWS];
} api_fixture_t;

static const char *const NAMES[] = {"alpha", "beta", "gamma", "delta, with comma", "\"quoted\""};

static api_fixture_t *fixture_new(void)
{
    api_fixture_t *f = calloc(1, sizeof(*f));
    for (size_t i = 0; i < NROWS; i++) {
        f->ids[i] = (int64_t)i - 100;
        f->prices[i] = (double)(i % 400) * 0.25;
        f->flags[i] = i % 3 == 0;
        f->names[i] = NAMES[i % 5];
        f->nulls[i] = i % 7 == 0;
    }
    return f;
}

static tsr_status_t register_fixture(tsr_context_t *ctx, const api_fixture_t *f)
{
    tsr_column_data_t cols[] = {
        {.name = "id", .type = TSR_TYPE_INT64, .values = f->ids},
        {.name = "price", .type = TSR_TYPE_DOUBLE, .values = f->prices, .nulls = f->nulls},
        {.name = "flag", .type = TSR_TYPE_BOOL, .values = f->flags},
        {.name = "name", .type = TSR_TYPE_VARCHAR, .values = f->names},
    };
    return tsr_table_register_columns(ctx, "items", 4, cols, NROWS);
}

static void test_register_and_scan(void **state)
{
    (void)state;
    api_fixture_t *f = fixture_new();
    tsr_context_params_t params = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&params, &ctx), TSR_OK);
    assert_int_equal(register_fixture(ctx, f), TSR_OK);

    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT id, price, flag, name FROM items", &res), TSR_OK);
    assert_int_equal(tsr_result_column_count(res), 4);
    assert_int_equal(tsr_result_row_count(res), NROWS);
    assert_string_equal(tsr_result_column_name(res, 0), "id");
    assert_int_equal(tsr_result_column_type(res, 0), TSR_TYPE_INT64);
    assert_int_equal(tsr_result_column_type(res, 1), TSR_TYPE_DOUBLE);
    assert_int_equal(tsr_result_column_type(res, 2), TSR_TYPE_BOOL);
    assert_int_equal(tsr_result_column_type(res, 3), TSR_TYPE_VARCHAR);
    /* a scan keeps the order; read backwards too (exercises the batch lookup) */
    for (size_t k = 0; k < NROWS; k++) {
        size_t r = k % 2 ? k : NROWS - 1 - k;
        assert_int_equal(tsr_result_int64(res, r, 0), f->ids[r]);
        assert_int_equal(tsr_result_is_null(res, r, 1), f->nulls[r]);
        if (!f->nulls[r])
            assert_true(tsr_result_double(res, r, 1) == f->prices[r]);
        assert_int_equal(tsr_result_bool(res, r, 2), f->flags[r]);
        size_t len;
        const char *s = tsr_result_string(res, r, 3, &len);
        assert_string_equal(s, f->names[r]);
        assert_int_equal(len, strlen(f->names[r]));
    }
    /* out of range reads are NULL, not crashes */
    assert_true(tsr_result_is_null(res, NROWS, 0));
    assert_true(tsr_result_is_null(res, 0, 9));
    assert_null(tsr_result_column_name(res, 9));
    tsr_result_destroy(res);

    assert_int_equal(tsr_query(ctx, "SELECT name, COUNT(*), SUM(id) FROM items "
                                    "WHERE price IS NOT NULL GROUP BY name ORDER BY name",
                               &res),
                     TSR_OK);
    assert_int_equal(tsr_result_row_count(res), 5);
    int64_t total = 0, sum = 0;
    for (size_t r = 0; r < 5; r++) {
        total += tsr_result_int64(res, r, 1);
        sum += tsr_result_int64(res, r, 2);
    }
    int64_t want_total = 0, want_sum = 0;
    for (size_t i = 0; i < NROWS; i++)
        if (!f->nulls[i]) {
            want_total++;
            want_sum += f->ids[i];
        }
    assert_int_equal(total, want_total);
    assert_int_equal(sum, want_sum);
    /* ORDER BY name: bytewise order */
    assert_string_equal(tsr_result_string(res, 0, 0, NULL), "\"quoted\"");
    assert_string_equal(tsr_result_string(res, 4, 0, NULL), "gamma");
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    free(f);
}

static void test_errors_carry_detail(void **state)
{
    (void)state;
    api_fixture_t *f = fixture_new();
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(register_fixture(ctx, f), TSR_OK);
    tsr_result_t *res = NULL;
    tsr_error_info_t e;

    assert_int_equal(tsr_query(ctx, "SELECT id FROM itemz", &res), TSR_ERR_NOT_FOUND);
    assert_null(res);
    tsr_context_last_error(ctx, &e);
    assert_int_equal(e.status, TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(e.message, "itemz"));
    assert_non_null(strstr(e.hint, "items"));
    assert_int_equal(e.line, 1);
    assert_int_equal(e.column, 16);

    assert_int_equal(tsr_query(ctx, "SELECT prise FROM items", &res), TSR_ERR_NOT_FOUND);
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.hint, "price"));
    assert_int_equal(e.column, 8);

    assert_int_equal(tsr_query(ctx, "SELECT id FROM items WHERE", &res), TSR_ERR_SYNTAX);
    assert_int_equal(tsr_query(ctx, "SELECT id FROM items WHERE name > 3", &res), TSR_ERR_TYPE);

    /* success clears the last error */
    assert_int_equal(tsr_query(ctx, "SELECT COUNT(*) FROM items", &res), TSR_OK);
    tsr_context_last_error(ctx, &e);
    assert_int_equal(e.status, TSR_OK);
    assert_int_equal(tsr_result_int64(res, 0, 0), NROWS);
    tsr_result_destroy(res);

    /* bad registrations */
    tsr_column_data_t bad[] = {{.name = "x", .type = TSR_TYPE_INT64, .values = f->ids},
                               {.name = "X", .type = TSR_TYPE_INT64, .values = f->ids}};
    assert_int_equal(tsr_table_register_columns(ctx, "dup", 2, bad, 3), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_table_register_columns(ctx, "bad name", 1, bad, 3), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_table_register_columns(ctx, "t", 0, bad, 3), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_table_register_csv(ctx, "t", "/nonexistent/file.csv", NULL),
                     TSR_ERR_NOT_FOUND);
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "/nonexistent/file.csv"));
    tsr_context_destroy(ctx);
    tsr_context_destroy(NULL);
    free(f);
}

static void test_overflow_is_an_error(void **state)
{
    (void)state;
    int64_t big[3] = {INT64_MAX, 1, 5}; /* the true sum does not fit */
    tsr_column_data_t cols[] = {{.name = "v", .type = TSR_TYPE_INT64, .values = big}};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(tsr_table_register_columns(ctx, "t", 1, cols, 3), TSR_OK);
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT SUM(v) FROM t", &res), TSR_ERR_OVERFLOW);
    assert_int_equal(tsr_query(ctx, "SELECT v + 1 FROM t", &res), TSR_ERR_OVERFLOW);
    assert_int_equal(tsr_query(ctx, "SELECT SUM(v) FROM t WHERE v < 100", &res), TSR_OK);
    assert_int_equal(tsr_result_int64(res, 0, 0), 6);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
}

/* Runs op with the n-th allocation failing, for n = 0, 1, ... until op succeeds
 * with no failure injected. Each injected failure must surface as a clean
 * TSR_ERR_NOMEM (ASan/LSan check that nothing leaks). */
typedef tsr_status_t (*api_op_fn)(tsr_context_t *ctx, const api_fixture_t *f);

static void fail_each_allocation(tsr_context_t *ctx, const api_fixture_t *f, api_op_fn op)
{
    tsr_mem_t *mem = tsr__context_mem(ctx);
    for (long n = 0;; n++) {
        long failures_before = atomic_load(&mem->failures);
        tsr_mem_fail_after(mem, n);
        tsr_status_t rc = op(ctx, f);
        tsr_mem_fail_after(mem, -1);
        bool injected = atomic_load(&mem->failures) != failures_before;
        if (!injected) {
            assert_int_equal(rc, TSR_OK);
            return;
        }
        assert_int_equal(rc, TSR_ERR_NOMEM);
        assert_true(n < 100000);
    }
}

static tsr_status_t op_query(tsr_context_t *ctx, const api_fixture_t *f)
{
    (void)f;
    const char *sql = "SELECT name, COUNT(*), SUM(id), AVG(price) FROM items WHERE id % 2 = 0 "
                      "GROUP BY name HAVING COUNT(*) > 1 ORDER BY 2 DESC, name LIMIT 3";
    tsr_result_t *res = NULL;
    tsr_status_t rc = tsr_query(ctx, sql, &res);
    if (rc == TSR_OK) {
        assert_int_equal(tsr_result_row_count(res), 3);
        tsr_result_destroy(res);
    }
    return rc;
}

static void test_allocation_failures(void **state)
{
    (void)state;
    api_fixture_t *f = fixture_new();
    tsr_context_params_t params = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&params, &ctx), TSR_OK);
    fail_each_allocation(ctx, f, register_fixture);
    fail_each_allocation(ctx, f, op_query);
    tsr_context_destroy(ctx);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_scan),
        cmocka_unit_test(test_errors_carry_detail),
        cmocka_unit_test(test_overflow_is_an_error),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
