/*
 * api_query.h - small helpers for unit tests that check SQL semantics through
 * the public C API: a context with tables registered from columns, and
 * queries whose failure fails the test with the engine's message.
 * Include after <cmocka.h>.
 */
#ifndef TSR_TEST_API_QUERY_H
#define TSR_TEST_API_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/tessera.h"

/* A context with two executor threads (so batches run in parallel) holding
 * the same columns under each of the names (a NULL-terminated list). */
static inline tsr_context_t *tq_context(const char *const *names, const tsr_column_data_t *cols,
                                        size_t ncols, size_t nrows)
{
    tsr_context_params_t params = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&params, &ctx), TSR_OK);
    for (size_t i = 0; names[i]; i++)
        assert_int_equal(tsr_table_register_columns(ctx, names[i], ncols, cols, nrows), TSR_OK);
    return ctx;
}

/* Runs sql, which must succeed. */
static inline tsr_result_t *tq_run(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *res = NULL;
    if (tsr_query(ctx, sql, &res) != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        fail_msg("%s: %s", sql, e.message);
    }
    return res;
}

/* The BIGINT in the first column of the first row of sql's result. */
static inline int64_t tq_int(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *res = tq_run(ctx, sql);
    assert_true(tsr_result_row_count(res) >= 1);
    int64_t v = tsr_result_int64(res, 0, 0);
    tsr_result_destroy(res);
    return v;
}

/* The number of rows of sql's result. */
static inline size_t tq_rows(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *res = tq_run(ctx, sql);
    size_t n = tsr_result_row_count(res);
    tsr_result_destroy(res);
    return n;
}

#endif /* TSR_TEST_API_QUERY_H */
