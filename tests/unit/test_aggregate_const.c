/*
 * test_aggregate_const.c - aggregates of constants that reach the executor:
 * MIN/MAX of a string constant without GROUP BY is the constant when there
 * are rows and NULL when there are none (SQLite gives the same); with GROUP
 * BY the binder folds it away. Numeric constants run as ordinary arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_query.h"
#include "tessera/tessera.h"

#define NROWS 9000

static tsr_context_t *const_context(void)
{
    int64_t *v = malloc(NROWS * sizeof(*v));
    const char **s = malloc(NROWS * sizeof(*s));
    for (size_t i = 0; i < NROWS; i++) {
        v[i] = (int64_t)(i % 5);
        s[i] = i % 2 ? "odd" : "even";
    }
    tsr_column_data_t cols[] = {{.name = "v", .type = TSR_TYPE_INT64, .values = v},
                                {.name = "s", .type = TSR_TYPE_VARCHAR, .values = s}};
    static const char *const names[] = {"t", NULL};
    tsr_context_t *ctx = tq_context(names, cols, 2, NROWS);
    free(v);
    free(s);
    return ctx;
}

static void test_min_max_of_string_constant(void **state)
{
    (void)state;
    tsr_context_t *ctx = const_context();
    tsr_result_t *res =
        tq_run(ctx, "SELECT MIN('abc'), MAX('x'), COUNT(*), MAX('abc'), MIN(s) FROM t WHERE v < 3");
    assert_int_equal(tsr_result_row_count(res), 1);
    assert_int_equal(tsr_result_column_type(res, 0), TSR_TYPE_VARCHAR);
    assert_string_equal(tsr_result_string(res, 0, 0, NULL), "abc");
    assert_string_equal(tsr_result_string(res, 0, 1, NULL), "x");
    assert_int_equal(tsr_result_int64(res, 0, 2), NROWS / 5 * 3);
    assert_string_equal(tsr_result_string(res, 0, 3, NULL), "abc");
    assert_string_equal(tsr_result_string(res, 0, 4, NULL), "even");
    tsr_result_destroy(res);
    /* no rows: NULL */
    res = tq_run(ctx, "SELECT MIN('abc'), MAX(''), COUNT(*) FROM t WHERE v > 100");
    assert_int_equal(tsr_result_row_count(res), 1);
    assert_true(tsr_result_is_null(res, 0, 0));
    assert_true(tsr_result_is_null(res, 0, 1));
    assert_int_equal(tsr_result_int64(res, 0, 2), 0);
    tsr_result_destroy(res);
    /* sorted and filtered above the aggregate, with HAVING */
    res = tq_run(ctx, "SELECT MAX('q') AS m FROM t HAVING COUNT(*) > 1 ORDER BY m");
    assert_int_equal(tsr_result_row_count(res), 1);
    assert_string_equal(tsr_result_string(res, 0, 0, NULL), "q");
    tsr_result_destroy(res);
    /* with GROUP BY (folded by the binder) */
    res = tq_run(ctx, "SELECT s, MIN('abc') FROM t GROUP BY s ORDER BY s");
    assert_int_equal(tsr_result_row_count(res), 2);
    assert_string_equal(tsr_result_string(res, 1, 1, NULL), "abc");
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_min_max_of_string_constant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
