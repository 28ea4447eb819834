/*
 * test_exec_nan.c - NaN is one value wherever the executor groups, hashes
 * or sorts doubles, and never equal to anything where SQL's = decides.
 *
 * NaNs come out of arithmetic with different bit patterns (inf - inf is a
 * negative quiet NaN on x86, its negation a positive one). GROUP BY, DISTINCT
 * and COUNT(DISTINCT) must put them in one group, as ORDER BY already sorts
 * them as one value (after +inf). A join's ON x = y must agree with WHERE
 * x = y, where NaN = NaN is not TRUE: NaN keys never match.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_query.h"
#include "core/hash.h"
#include "exec/hashtable.h"
#include "tessera/tessera.h"

#define NROWS 9000 /* two batches, so partial aggregates get merged */

/* A NaN with the sign bit set or clear, as arithmetic produces them. */
static double nan_with_sign(bool negative)
{
    uint64_t bits = negative ? 0xfff8000000000000ULL : 0x7ff8000000000000ULL;
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void test_hash_contract_folds_nan(void **state)
{
    (void)state;
    double pos = nan_with_sign(false), neg = nan_with_sign(true);
    uint64_t payload_bits = 0x7ff0000000000123ULL; /* a signalling NaN with a payload */
    double payload;
    memcpy(&payload, &payload_bits, sizeof(payload));
    assert_true(tsr_ht_norm_double(pos) == tsr_ht_norm_double(neg));
    assert_true(tsr_ht_norm_double(pos) == tsr_ht_norm_double(payload));
    assert_true(tsr_hash_double(pos) == tsr_hash_double(neg));
    assert_true(tsr_hash_double(pos) == tsr_hash_u64(tsr_ht_norm_double(neg)));
    /* the normalised NaN reads back as a NaN; numbers keep their bits */
    uint64_t n = tsr_ht_norm_double(neg);
    double back;
    memcpy(&back, &n, sizeof(back));
    assert_true(isnan(back));
    assert_true(tsr_ht_norm_double(-0.0) == tsr_ht_norm_double(0.0));
    double x = -2.5;
    uint64_t xb;
    memcpy(&xb, &x, sizeof(xb));
    assert_true(tsr_ht_norm_double(x) == xb);
}

static tsr_context_t *nan_context(void)
{
    double *d = malloc(NROWS * sizeof(*d));
    int64_t *id = malloc(NROWS * sizeof(*id));
    for (size_t i = 0; i < NROWS; i++) {
        id[i] = (int64_t)i;
        switch (i % 4) {
        case 0:
            d[i] = nan_with_sign(false);
            break;
        case 1:
            d[i] = nan_with_sign(true);
            break;
        case 2:
            d[i] = 1.5;
            break;
        default:
            d[i] = (double)(i % 8); /* 3.0 or 7.0 */
            break;
        }
    }
    tsr_column_data_t cols[] = {{.name = "id", .type = TSR_TYPE_INT64, .values = id},
                                {.name = "d", .type = TSR_TYPE_DOUBLE, .values = d}};
    static const char *const names[] = {"t", "u", NULL};
    tsr_context_t *ctx = tq_context(names, cols, 2, NROWS);
    free(d);
    free(id);
    return ctx;
}

static void test_grouping_folds_nan(void **state)
{
    (void)state;
    tsr_context_t *ctx = nan_context();
    /* NaN, 1.5, 3.0, 7.0 */
    assert_int_equal(tq_rows(ctx, "SELECT d, COUNT(*) FROM t GROUP BY d"), 4);
    assert_int_equal(tq_rows(ctx, "SELECT DISTINCT d FROM t"), 4);
    assert_int_equal(tq_int(ctx, "SELECT COUNT(DISTINCT d) FROM t"), 4);
    /* the NaN group holds every NaN row */
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT d, COUNT(*) FROM t GROUP BY d ORDER BY d DESC", &res),
                     TSR_OK);
    assert_true(isnan(tsr_result_double(res, 0, 0)));
    assert_int_equal(tsr_result_int64(res, 0, 1), NROWS / 2);
    tsr_result_destroy(res);
    /* grouping on a computed NaN of either sign */
    assert_int_equal(tq_rows(ctx, "SELECT -d, COUNT(*) FROM t GROUP BY -d"), 4);
    tsr_context_destroy(ctx);
}

static void test_join_never_matches_nan(void **state)
{
    (void)state;
    tsr_context_t *ctx = nan_context();
    /* non-NaN rows: 1.5 x 1.5, 3.0 x 3.0, 7.0 x 7.0 */
    int64_t n15 = NROWS / 4, n3 = 0, n7 = 0;
    for (size_t i = 0; i < NROWS; i++) {
        n3 += i % 4 == 3 && i % 8 == 3;
        n7 += i % 4 == 3 && i % 8 == 7;
    }
    int64_t want = n15 * n15 + n3 * n3 + n7 * n7;
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t JOIN u ON t.d = u.d"), want);
    /* the same as WHERE on the matching rows of a join on id */
    assert_int_equal(tq_int(ctx, "SELECT COUNT(*) FROM t JOIN u ON t.id = u.id AND t.d = u.d"),
                     NROWS / 2);
    assert_int_equal(
        tq_int(ctx, "SELECT COUNT(*) FROM t JOIN u ON t.id = u.id AND t.d + 0.0 = u.d"), NROWS / 2);
    tsr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_contract_folds_nan),
        cmocka_unit_test(test_grouping_folds_nan),
        cmocka_unit_test(test_join_never_matches_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
