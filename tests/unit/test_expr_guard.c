/*
 * test_expr_guard.c - AND / OR as guards: where the left operand already
 * decides the result (FALSE for AND, TRUE for OR), an error the right operand
 * would raise on that row (integer overflow) does not count, as in
 * `WHERE a < 1000 AND a * a > 5`. Rows the guard lets through still fail, and
 * the left operand is always evaluated (left to right, as SQLite does).
 *
 * Checked through the C API (filters, projections, aggregates with a fused
 * pre-filter, join residuals) and directly on tsr_expr_select.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_query.h"
#include "exec/exec_internal.h"
#include "tessera/tessera.h"

#define NROWS 10000 /* more than one batch */
#define BIG ((int64_t)1 << 62)

/* a: 0..NROWS-1 but BIG on every 10th row and INT64_MIN on row 7; b: -1 on
 * every 7th row, else 2. */
static tsr_context_t *guard_context(void)
{
    int64_t *a = malloc(NROWS * sizeof(*a)), *b = malloc(NROWS * sizeof(*b));
    int64_t *id = malloc(NROWS * sizeof(*id));
    for (size_t i = 0; i < NROWS; i++) {
        id[i] = (int64_t)i;
        a[i] = i % 10 == 0 ? BIG : (int64_t)i;
        b[i] = i % 7 == 0 ? -1 : 2;
    }
    a[7] = INT64_MIN; /* with b = -1: INT64_MIN / b overflows too */
    tsr_column_data_t cols[] = {{.name = "id", .type = TSR_TYPE_INT64, .values = id},
                                {.name = "a", .type = TSR_TYPE_INT64, .values = a},
                                {.name = "b", .type = TSR_TYPE_INT64, .values = b}};
    static const char *const names[] = {"t", "u", NULL};
    tsr_context_t *ctx = tq_context(names, cols, 3, NROWS);
    free(a);
    free(b);
    free(id);
    return ctx;
}

static void expect_overflow(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, sql, &res), TSR_ERR_OVERFLOW);
    assert_null(res);
}

/* Rows with a * a > 5 among the small ones (a < 1000, not INT64_MIN). */
static int64_t want_small_squares(void)
{
    int64_t n = 0;
    for (int64_t i = 0; i < NROWS; i++)
        if (i % 10 != 0 && i != 7 && i < 1000 && i * i > 5)
            n++;
    return n;
}

static void test_guards_in_where(void **state)
{
    (void)state;
    tsr_context_t *ctx = guard_context();
    int64_t want = want_small_squares();
    assert_int_equal(
        tq_int(ctx, "SELECT COUNT(*) FROM t WHERE a < 1000 AND a > -1000 AND a * a > 5"), want);
    assert_int_equal(
        tq_int(ctx, "SELECT COUNT(*) FROM t WHERE (a >= 1000 OR a <= -1000) OR a * a > 5"),
        NROWS - (1000 - 100 - 1 - want));
    assert_int_equal(
        tq_int(ctx, "SELECT COUNT(*) FROM t WHERE NOT (a >= 1000 OR a < 0 OR a * a <= 5)"), want);
    /* a constant guard decides every row */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t WHERE FALSE AND a * a > 5"), 0);
    /* negation and division of the extreme value, guarded */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t WHERE a <> -9223372036854775807 - 1 "
                                 "AND -a < 0 AND a < 1000"),
                     1000 - 100 - 1); /* a in 1..999, not a multiple of 10, not 7 */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t WHERE (a > -1000 OR b <> -1) AND "
                                 "(a > -1000 AND a / b < 0)"),
                     tq_int(ctx, "SELECT COUNT(*) FROM t WHERE a > -1000 AND b = -1 AND a > 0"));
    /* IN over a guarded product */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t WHERE a < 1000 AND a > -1000 AND "
                                 "a * a IN (9, 121, 10000)"),
                     2); /* a = 3, 11 (100 is a multiple of 10: BIG) */
    /* unguarded rows still fail; the left operand is always evaluated */
    expect_overflow(ctx, "SELECT COUNT(*) FROM t WHERE a > 0 AND a * a > 5");
    expect_overflow(ctx, "SELECT COUNT(*) FROM t WHERE a * a > 5 AND a < 1000");
    expect_overflow(ctx, "SELECT COUNT(*) FROM t WHERE a < 1000 OR a * a > 5");
    tsr_context_destroy(ctx);
}

static void test_guards_elsewhere(void **state)
{
    (void)state;
    tsr_context_t *ctx = guard_context();
    int64_t want = want_small_squares();
    /* a projection: FALSE on the guarded rows, no error */
    tsr_result_t *res = NULL;
    assert_int_equal(
        tsr_query(ctx, "SELECT id, a < 1000 AND a > -1000 AND a * a > 5 FROM t ORDER BY id", &res),
        TSR_OK);
    assert_int_equal(tsr_result_row_count(res), NROWS);
    assert_false(tsr_result_bool(res, 10, 1));
    assert_true(tsr_result_bool(res, 11, 1));
    tsr_result_destroy(res);
    /* an aggregate over a fused pre-filter */
    assert_int_equal(tq_int(ctx, "SELECT SUM(1) FROM t WHERE a < 1000 AND a > -1000 AND a * a > 5"),
                     want);
    assert_int_equal(tsr_query(ctx,
                               "SELECT b, COUNT(*) FROM t WHERE a < 1000 AND a > -1000 "
                               "AND a * a > 5 GROUP BY b",
                               &res),
                     TSR_OK);
    int64_t total = 0;
    for (size_t r = 0; r < tsr_result_row_count(res); r++)
        total += tsr_result_int64(res, r, 1);
    assert_int_equal(total, want);
    tsr_result_destroy(res);
    /* a join residual that mixes both sides */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t JOIN u ON t.id = u.id AND "
                                 "(t.a - u.b < 1000 AND t.a * u.a > 5 AND t.a > -1000)"),
                     want);
    tsr_context_destroy(ctx);
}

/* The same on tsr_expr_select, with a batch built by hand: a guard that is
 * FALSE on an overflowing row, and a NULL guard (which does not decide). */
static void test_guard_select_direct(void **state)
{
    (void)state;
    int64_t vals[4] = {3, BIG, 4, BIG};
    uint64_t valid = 0xF;
    tsr_vector_t col = {.type = TSR_TYPE_INT64, .len = 4, .data = vals, .validity = &valid};
    tsr_batch_t batch = {.nrows = 4, .cols = &col};
    tsr_expr_t c0 = {.kind = TSR_EXPR_COLUMN, .type = TSR_TYPE_INT64, .column = 0};
    tsr_expr_t k1000 = {.kind = TSR_EXPR_CONST,
                        .type = TSR_TYPE_INT64,
                        .value = {.type = TSR_TYPE_INT64, .i = 1000}};
    tsr_expr_t k5 = {
        .kind = TSR_EXPR_CONST, .type = TSR_TYPE_INT64, .value = {.type = TSR_TYPE_INT64, .i = 5}};
    tsr_expr_t *lt_args[2] = {&c0, &k1000};
    tsr_expr_t lt = {.kind = TSR_EXPR_BINARY,
                     .type = TSR_TYPE_BOOL,
                     .op = TSR_OP_LT,
                     .args = lt_args,
                     .nargs = 2};
    tsr_expr_t *mul_args[2] = {&c0, &c0};
    tsr_expr_t mul = {.kind = TSR_EXPR_BINARY,
                      .type = TSR_TYPE_INT64,
                      .op = TSR_OP_MUL,
                      .args = mul_args,
                      .nargs = 2};
    tsr_expr_t *gt_args[2] = {&mul, &k5};
    tsr_expr_t gt = {.kind = TSR_EXPR_BINARY,
                     .type = TSR_TYPE_BOOL,
                     .op = TSR_OP_GT,
                     .args = gt_args,
                     .nargs = 2};
    tsr_expr_t *and_args[2] = {&lt, &gt};
    tsr_expr_t and_ = {.kind = TSR_EXPR_BINARY,
                       .type = TSR_TYPE_BOOL,
                       .op = TSR_OP_AND,
                       .args = and_args,
                       .nargs = 2};
    uint32_t sel[4];
    size_t nsel = 0;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_expr_select(NULL, &and_, &batch, sel, &nsel, &err), TSR_OK);
    assert_int_equal(nsel, 2);
    assert_int_equal(sel[0], 0);
    assert_int_equal(sel[1], 2);
    /* row 1 NULL: its guard is NULL, the product is NULL too: no error */
    valid = 0xD;
    assert_int_equal(tsr_expr_select(NULL, &and_, &batch, sel, &nsel, &err), TSR_OK);
    /* a NULL guard over a valid overflowing row does not protect it: make
     * the guard NULL where the product is computed from another column */
    int64_t other[4] = {3, BIG, 4, BIG};
    uint64_t other_valid = 0x5; /* rows 1 and 3 NULL */
    tsr_vector_t cols2[2] = {
        {.type = TSR_TYPE_INT64, .len = 4, .data = other, .validity = &other_valid},
        {.type = TSR_TYPE_INT64, .len = 4, .data = vals, .validity = NULL}};
    tsr_batch_t batch2 = {.nrows = 4, .cols = cols2};
    tsr_expr_t c1 = {.kind = TSR_EXPR_COLUMN, .type = TSR_TYPE_INT64, .column = 1};
    tsr_expr_t *mul2_args[2] = {&c1, &c1};
    tsr_expr_t mul2 = {.kind = TSR_EXPR_BINARY,
                       .type = TSR_TYPE_INT64,
                       .op = TSR_OP_MUL,
                       .args = mul2_args,
                       .nargs = 2};
    gt_args[0] = &mul2;
    tsr_error_clear(&err);
    assert_int_equal(tsr_expr_select(NULL, &and_, &batch2, sel, &nsel, &err), TSR_ERR_OVERFLOW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guards_in_where),
        cmocka_unit_test(test_guards_elsewhere),
        cmocka_unit_test(test_guard_select_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
