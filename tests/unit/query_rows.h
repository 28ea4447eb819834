/*
 * query_rows.h - what the device query tests (test_query_device.c,
 * test_dev_columns.c) share: tables built from columns in test memory, a
 * context holding them as t (and u), and the comparison of one query's rows
 * on a reference context and a device context.
 *
 * Results compare as multisets of rows: each row is written as text
 * ("v1|v2|...|", NULL, nan, -0.0 as 0, doubles to 17 digits, strings quoted)
 * and the lists are sorted, so the operators' row orders do not matter but
 * every value does, exactly. Plus a query run with each of its host
 * allocations failing in turn. Include after <cmocka.h>.
 */
#ifndef TSR_TESTS_QUERY_ROWS_H
#define TSR_TESTS_QUERY_ROWS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "api/context_internal.h"
#include "core/mem.h"
#include "tessera/tessera.h"

#define QR_MAX_COLS 6

/* One table's columns and their storage (plain malloc: test data). */
typedef struct tab {
    size_t nrows, ncols;
    tsr_column_data_t cols[QR_MAX_COLS];
    void *data[QR_MAX_COLS];
    bool *nulls[QR_MAX_COLS];
} tab_t;

/* Appends a zeroed column of t->nrows rows; with a NULL map when nulls. */
static inline void tab_col(tab_t *t, const char *name, tsr_type_t type, bool nulls)
{
    assert_true(t->ncols < QR_MAX_COLS);
    size_t c = t->ncols++;
    size_t w = type == TSR_TYPE_VARCHAR ? sizeof(char *)
                                        : (type == TSR_TYPE_BOOL ? sizeof(bool) : sizeof(int64_t));
    t->data[c] = calloc(t->nrows ? t->nrows : 1, w);
    t->nulls[c] = nulls ? calloc(t->nrows ? t->nrows : 1, sizeof(bool)) : NULL;
    assert_non_null(t->data[c]);
    if (nulls)
        assert_non_null(t->nulls[c]);
    t->cols[c] =
        (tsr_column_data_t){.name = name, .type = type, .values = t->data[c], .nulls = t->nulls[c]};
}

static inline void tab_free(tab_t *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        free(t->data[c]);
        free(t->nulls[c]);
    }
}

/* A context (two executor threads) with t registered as "t" and, when u is
 * not NULL, u as "u". */
static inline tsr_context_t *new_context(const tab_t *t, const tab_t *u)
{
    tsr_context_params_t params = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&params, &ctx), TSR_OK);
    assert_int_equal(tsr_table_register_columns(ctx, "t", t->ncols, t->cols, t->nrows), TSR_OK);
    if (u)
        assert_int_equal(tsr_table_register_columns(ctx, "u", u->ncols, u->cols, u->nrows), TSR_OK);
    return ctx;
}

/* ---- results as sorted lists of rows ----------------------------------------------- */

static inline int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The rows of res as text, sorted; *n rows. */
static inline char **result_rows(const tsr_result_t *res, size_t *n)
{
    size_t rows = tsr_result_row_count(res), ncols = tsr_result_column_count(res);
    char **out = calloc(rows ? rows : 1, sizeof(char *));
    assert_non_null(out);
    for (size_t r = 0; r < rows; r++) {
        char buf[1024];
        size_t at = 0;
        for (size_t c = 0; c < ncols && at < sizeof(buf) - 64; c++) {
            char v[128];
            if (tsr_result_is_null(res, r, c)) {
                snprintf(v, sizeof(v), "NULL");
            } else {
                switch (tsr_result_column_type(res, c)) {
                case TSR_TYPE_INT64:
                    snprintf(v, sizeof(v), "%lld", (long long)tsr_result_int64(res, r, c));
                    break;
                case TSR_TYPE_DOUBLE: {
                    double d = tsr_result_double(res, r, c);
                    if (isnan(d))
                        snprintf(v, sizeof(v), "nan");
                    else
                        snprintf(v, sizeof(v), "%.17g", d == 0 ? 0.0 : d);
                    break;
                }
                case TSR_TYPE_BOOL:
                    snprintf(v, sizeof(v), "%s", tsr_result_bool(res, r, c) ? "true" : "false");
                    break;
                default:
                    snprintf(v, sizeof(v), "'%s'", tsr_result_string(res, r, c, NULL));
                    break;
                }
            }
            at += (size_t)snprintf(buf + at, sizeof(buf) - at, "%s|", v);
        }
        out[r] = strdup(buf);
        assert_non_null(out[r]);
    }
    qsort(out, rows, sizeof(char *), cmp_str);
    *n = rows;
    return out;
}

static inline void free_rows(char **rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(rows[i]);
    free(rows);
}

/* Runs sql, which must succeed (the failure names the context's device). */
static inline tsr_result_t *run(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *res = NULL;
    if (tsr_query(ctx, sql, &res) != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        fail_msg("%s (device %s): %s", sql, tsr_context_device(ctx), e.message);
    }
    return res;
}

/* sql gives the same rows (as multisets) on both contexts, and with
 * check_names the same column types and names; returns the row count. */
static inline size_t check_same_rows(tsr_context_t *ref, tsr_context_t *dev, const char *sql,
                                     bool check_names)
{
    tsr_result_t *a = run(ref, sql), *b = run(dev, sql);
    assert_int_equal(tsr_result_column_count(a), tsr_result_column_count(b));
    for (size_t c = 0; check_names && c < tsr_result_column_count(a); c++) {
        assert_int_equal(tsr_result_column_type(a, c), tsr_result_column_type(b, c));
        assert_string_equal(tsr_result_column_name(a, c), tsr_result_column_name(b, c));
    }
    size_t na, nb;
    char **ra = result_rows(a, &na), **rb = result_rows(b, &nb);
    if (na != nb)
        fail_msg("%s: %zu rows on the CPU, %zu on %s", sql, na, nb, tsr_context_device(dev));
    for (size_t i = 0; i < na; i++)
        if (strcmp(ra[i], rb[i]) != 0)
            fail_msg("%s: row %zu differs: CPU %s, %s %s", sql, i, ra[i], tsr_context_device(dev),
                     rb[i]);
    free_rows(ra, na);
    free_rows(rb, nb);
    tsr_result_destroy(a);
    tsr_result_destroy(b);
    return na;
}

/* Runs sql on ctx with its n-th host allocation failing, for n = 0, 1, ...
 * until a run sees no injected failure: each run either succeeds (a fallback
 * absorbed the failure) or fails with TSR_ERR_NOMEM, never otherwise.
 * Returns how many runs failed. */
static inline size_t fail_each_allocation(tsr_context_t *ctx, const char *sql)
{
    tsr_mem_t *mem = tsr__context_mem(ctx);
    size_t nfail = 0;
    for (long n = 0;; n++) {
        long before = atomic_load(&mem->failures);
        tsr_mem_fail_after(mem, n);
        tsr_result_t *res = NULL;
        tsr_status_t rc = tsr_query(ctx, sql, &res);
        tsr_mem_fail_after(mem, -1);
        bool injected = atomic_load(&mem->failures) != before;
        if (rc == TSR_OK) {
            tsr_result_destroy(res);
            if (!injected)
                break;
            continue; /* a failure that a fallback absorbed is fine */
        }
        if (rc != TSR_ERR_NOMEM || !injected)
            fail_msg("%s: allocation %ld: status %d", sql, n, (int)rc);
        assert_true(n < 5000);
        nfail++;
    }
    return nfail;
}

#endif /* TSR_TESTS_QUERY_ROWS_H */
