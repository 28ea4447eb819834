/*
 * test_sched_rewrite.c - splitting queries into worker and merge SQL
 * (scheduler/rewrite.c), and the result-table format that carries partial
 * results (scheduler/proto.c).
 *
 * Model: the embedded engine itself. A random table is cut into 1..6 random
 * row slices; each slice runs the worker query in its own context, its result
 * travels through tsr_proto_encode_result / tsr_proto_decode_rtab, the
 * partials are stacked and the merge query runs on them. The answer must equal
 * the original query on the whole table: same column names and types, same
 * rows (ORDER BY over all output columns where order matters), doubles within
 * rounding. Also: which shape each query gets, syntax errors with positions,
 * and every truncation of an encoded result refused.
 *
 * The INFER queries (tsr_rewrite_infer_sql): their text, and on random CSV
 * files registered lazily (sizes 0, 1, a prime, more than one batch; random
 * NULLs; random sets of read columns) that running them loads exactly the
 * read columns (column 0 too only when none is read) while the count is the
 * file's row count - a count that loads another column parses the range twice.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/context_internal.h" /* peeking at which columns a lazy table loaded */
#include "proto.h"
#include "rewrite.h"
#include "tessera/tessera.h"

static uint64_t rng = 0xD1B54A32D192ED03ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define NROWS 3001

typedef struct data {
    int64_t k[NROWS], v[NROWS];
    double d[NROWS];
    const char *g[NROWS];
    bool kn[NROWS], vn[NROWS], dn[NROWS], gn[NROWS];
} data_t;

static const char *const GROUPS[] = {"alpha", "beta", "x,y", "say \"hi\"", "Gamma", "z"};

static void make_data(data_t *x)
{
    for (size_t i = 0; i < NROWS; i++) {
        x->k[i] = (int64_t)(rnd() % 7);
        x->kn[i] = rnd() % 20 == 0;
        x->v[i] = (int64_t)(rnd() % 2001) - 1000;
        x->vn[i] = rnd() % 10 == 0;
        x->d[i] = (double)((int64_t)(rnd() % 8001) - 4000) / 4.0;
        x->dn[i] = rnd() % 10 == 0;
        x->g[i] = GROUPS[rnd() % 6];
        x->gn[i] = rnd() % 20 == 0;
    }
}

static void register_slice(tsr_context_t *ctx, const data_t *x, size_t from, size_t n)
{
    tsr_column_data_t cols[4] = {
        {"k", TSR_TYPE_INT64, x->k + from, x->kn + from},
        {"v", TSR_TYPE_INT64, x->v + from, x->vn + from},
        {"d", TSR_TYPE_DOUBLE, x->d + from, x->dn + from},
        {"g", TSR_TYPE_VARCHAR, x->g + from, x->gn + from},
    };
    assert_int_equal(tsr_table_register_columns(ctx, "t", 4, cols, n), TSR_OK);
}

static tsr_context_t *new_ctx(void)
{
    tsr_context_params_t p = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
    return ctx;
}

static void same_results(const tsr_result_t *a, const tsr_result_t *b, const char *sql)
{
    size_t nc = tsr_result_column_count(a), nr = tsr_result_row_count(a);
    if (nc != tsr_result_column_count(b) || nr != tsr_result_row_count(b))
        fail_msg("%s: shape %zux%zu vs %zux%zu", sql, nr, nc, tsr_result_row_count(b),
                 tsr_result_column_count(b));
    for (size_t c = 0; c < nc; c++) {
        if (strcmp(tsr_result_column_name(a, c), tsr_result_column_name(b, c)) != 0)
            fail_msg("%s: column %zu named '%s' vs '%s'", sql, c, tsr_result_column_name(a, c),
                     tsr_result_column_name(b, c));
        assert_int_equal(tsr_result_column_type(a, c), tsr_result_column_type(b, c));
        for (size_t r = 0; r < nr; r++) {
            bool na = tsr_result_is_null(a, r, c), nb = tsr_result_is_null(b, r, c);
            if (na || nb) {
                if (na != nb)
                    fail_msg("%s: row %zu col %zu NULL mismatch", sql, r, c);
                continue;
            }
            switch (tsr_result_column_type(a, c)) {
            case TSR_TYPE_INT64:
                if (tsr_result_int64(a, r, c) != tsr_result_int64(b, r, c))
                    fail_msg("%s: row %zu col %zu: %lld vs %lld", sql, r, c,
                             (long long)tsr_result_int64(a, r, c),
                             (long long)tsr_result_int64(b, r, c));
                break;
            case TSR_TYPE_DOUBLE: {
                double x = tsr_result_double(a, r, c), y = tsr_result_double(b, r, c);
                if (fabs(x - y) > 1e-9 * fmax(1.0, fabs(x)))
                    fail_msg("%s: row %zu col %zu: %.17g vs %.17g", sql, r, c, x, y);
                break;
            }
            case TSR_TYPE_BOOL:
                assert_int_equal(tsr_result_bool(a, r, c), tsr_result_bool(b, r, c));
                break;
            default:
                assert_string_equal(tsr_result_string(a, r, c, NULL),
                                    tsr_result_string(b, r, c, NULL));
            }
        }
    }
}

/* Runs sql distributed over random slices of x and compares with the whole. */
static void check_query(const data_t *x, const char *sql, tsr_dplan_kind_t want)
{
    tsr_dplan_t plan;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rewrite_plan(NULL, sql, &plan, &err), TSR_OK);
    if (plan.kind != want)
        fail_msg("%s: planned %s, expected %s (%s)", sql, tsr_rewrite_kind_name(plan.kind),
                 tsr_rewrite_kind_name(want), plan.why ? plan.why : "");
    if (plan.kind == TSR_DPLAN_WHOLE)
        return;
    tsr_context_t *whole = new_ctx(), *merge = new_ctx();
    register_slice(whole, x, 0, NROWS);
    tsr_result_t *expect = NULL, *got = NULL;
    assert_int_equal(tsr_query(whole, sql, &expect), TSR_OK);
    size_t nslices = 1 + rnd() % 6, from = 0;
    tsr_rtab_t all = {0};
    void *msgs[6] = {0};
    for (size_t s = 0; s < nslices; s++) {
        size_t n = s + 1 == nslices ? NROWS - from : rnd() % (NROWS - from + 1);
        tsr_context_t *part = new_ctx();
        register_slice(part, x, from, n);
        from += n;
        tsr_result_t *pr = NULL;
        if (tsr_query(part, plan.worker_sql, &pr) != TSR_OK) {
            tsr_error_info_t e;
            tsr_context_last_error(part, &e);
            fail_msg("worker sql failed: %s\n%s", e.message, plan.worker_sql);
        }
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        assert_int_equal(tsr_proto_encode_result(&b, pr), TSR_OK);
        tsr_rtab_t rt;
        assert_int_equal(tsr_proto_decode_rtab(NULL, b.data, b.len, &rt, &err), TSR_OK);
        assert_int_equal(tsr_proto_rtab_append(NULL, &all, &rt, &err), TSR_OK);
        tsr_proto_rtab_free(NULL, &rt);
        msgs[s] = b.data; /* the stacked strings point into it */
        tsr_result_destroy(pr);
        tsr_context_destroy(part);
    }
    assert_int_equal(tsr_proto_rtab_register(NULL, merge, plan.table, &all, NULL), TSR_OK);
    if (tsr_query(merge, plan.final_sql, &got) != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(merge, &e);
        fail_msg("final sql failed: %s\n%s", e.message, plan.final_sql);
    }
    same_results(expect, got, sql);
    tsr_result_destroy(expect);
    tsr_result_destroy(got);
    tsr_proto_rtab_free(NULL, &all);
    for (size_t s = 0; s < 6; s++)
        free(msgs[s]);
    tsr_context_destroy(whole);
    tsr_context_destroy(merge);
    tsr_rewrite_free(NULL, &plan);
}

static void test_against_whole(void **state)
{
    (void)state;
    static data_t x;
    make_data(&x);
    static const struct {
        const char *sql;
        tsr_dplan_kind_t kind;
    } qs[] = {
        {"SELECT COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), AVG(v) FROM t", TSR_DPLAN_AGG},
        {"select k, sum(v), avg(d) from t group by k order by k", TSR_DPLAN_AGG},
        {"SELECT g, COUNT(*) AS n, MIN(d), MAX(g) FROM t WHERE v > 0 GROUP BY g ORDER BY g",
         TSR_DPLAN_AGG},
        {"SELECT k, g, SUM(v) AS s FROM t GROUP BY k, g HAVING COUNT(*) > 10 "
         "ORDER BY s DESC, k, g LIMIT 5 OFFSET 1",
         TSR_DPLAN_AGG},
        {"SELECT x.k, SUM(x.v) * 2 + COUNT(*) AS e, MAX(x.d) - MIN(x.d) FROM t AS x "
         "WHERE x.d IS NOT NULL AND x.g <> 'z' GROUP BY x.k ORDER BY x.k",
         TSR_DPLAN_AGG},
        {"SELECT AVG(v) FROM t WHERE v > 100000", TSR_DPLAN_AGG},
        {"SELECT g FROM t GROUP BY g ORDER BY g", TSR_DPLAN_AGG},
        {"SELECT k, AVG(v) FROM t GROUP BY k HAVING AVG(v) > -3 ORDER BY 2 DESC, 1", TSR_DPLAN_AGG},
        {"SELECT DISTINCT k, COUNT(*) > 0 FROM t GROUP BY k ORDER BY 1", TSR_DPLAN_AGG},
        {"SELECT k, v FROM t WHERE v BETWEEN 5 AND 9 ORDER BY k, v", TSR_DPLAN_SCAN},
        {"SELECT * FROM t WHERE g = 'x,y' AND k = 3 ORDER BY v, d LIMIT 4", TSR_DPLAN_SCAN},
        {"SELECT DISTINCT g FROM t ORDER BY g", TSR_DPLAN_SCAN},
        {"SELECT k, SUM((v)) AS s, -MIN(d) FROM t WHERE (v > 0) OR (k = 1) AND NOT (g = 'z') "
         "GROUP BY k ORDER BY (k)",
         TSR_DPLAN_AGG},
        {"SELECT k /* c */, COUNT(*) -- n\n FROM t\nWHERE g LIKE '%a%' -- x\nGROUP BY k "
         "ORDER BY COUNT(*) DESC, k",
         TSR_DPLAN_AGG},
        {"SELECT COUNT(DISTINCT g) FROM t", TSR_DPLAN_WHOLE},
        {"SELECT k % 3, COUNT(*) FROM t GROUP BY k % 3", TSR_DPLAN_WHOLE},
        {"SELECT a.k FROM t a JOIN t b ON a.k = b.k", TSR_DPLAN_WHOLE},
        {"SELECT 1 + 1", TSR_DPLAN_WHOLE},
        {"SELECT * FROM t GROUP BY k", TSR_DPLAN_WHOLE},
    };
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
            check_query(&x, qs[i].sql, qs[i].kind);
}

static void test_syntax_error(void **state)
{
    (void)state;
    tsr_dplan_t plan;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rewrite_plan(NULL, "SELECT k,\n  SUM(v FROM t", &plan, &err),
                     TSR_ERR_SYNTAX);
    assert_int_equal(err.line, 2);
    assert_true(err.column > 1);
}

static void test_aliases_keep_names(void **state)
{
    (void)state;
    tsr_dplan_t plan;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rewrite_plan(NULL, "SELECT SUM(\"v\") FROM t", &plan, &err), TSR_OK);
    assert_int_equal(plan.kind, TSR_DPLAN_AGG);
    assert_non_null(strstr(plan.final_sql, "AS \"SUM(\"\"v\"\")\""));
    tsr_rewrite_free(NULL, &plan);
}

static void test_rtab_truncations(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx();
    static data_t x;
    make_data(&x);
    register_slice(ctx, &x, 0, 5);
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT * FROM t", &res), TSR_OK);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    assert_int_equal(tsr_proto_encode_result(&b, res), TSR_OK);
    tsr_error_t err;
    tsr_rtab_t t;
    for (size_t n = 0; n < b.len; n++) {
        tsr_error_clear(&err);
        assert_int_not_equal(tsr_proto_decode_rtab(NULL, b.data, n, &t, &err), TSR_OK);
    }
    /* random corruptions never crash; a decode that passes has the shape */
    uint8_t *copy = malloc(b.len);
    for (int i = 0; i < 2000; i++) {
        memcpy(copy, b.data, b.len);
        copy[rnd() % b.len] = (uint8_t)rnd();
        tsr_error_clear(&err);
        if (tsr_proto_decode_rtab(NULL, copy, b.len, &t, &err) == TSR_OK) {
            assert_int_equal(t.ncols, 4);
            tsr_proto_rtab_free(NULL, &t);
        }
    }
    free(copy);
    tsr_wbuf_free(&b);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
}

static void test_infer_sql_text(void **state)
{
    (void)state;
    const char *names[] = {"id", "st\"ore", "q"};
    bool read[] = {false, true, true}, none[] = {false, false, false};
    char *sample = NULL, *count = NULL;
    assert_int_equal(tsr_rewrite_infer_sql(NULL, "sa\"les", names, read, 3, 20000, &sample, &count),
                     TSR_OK);
    assert_string_equal(sample, "SELECT \"st\"\"ore\", \"q\" FROM \"sa\"\"les\" LIMIT 20000");
    assert_string_equal(count, "SELECT COUNT(*), COUNT(\"st\"\"ore\") FROM \"sa\"\"les\"");
    tsr_mem_free(NULL, sample);
    tsr_mem_free(NULL, count);
    assert_int_equal(tsr_rewrite_infer_sql(NULL, "t", names, none, 3, 5, &sample, &count), TSR_OK);
    assert_null(sample);
    assert_string_equal(count, "SELECT COUNT(*) FROM \"t\"");
    tsr_mem_free(NULL, count);
    assert_int_equal(tsr_rewrite_infer_sql(NULL, "t", names, none, 0, 5, &sample, &count), TSR_OK);
    assert_null(sample);
    tsr_mem_free(NULL, count);
}

#define INFER_COLS 5

/* Random CSV files, lazily registered: the INFER queries load the read
 * columns only and count every row. */
static void test_infer_sql_loads_once(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 97, 8191, 8192, 8193, 20011};
    const char *names[INFER_COLS] = {"id", "s", "q", "p", "r"};
    char path[] = "/tmp/tsr_test_infer_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (size_t round = 0; round < 24; round++) {
        size_t nrows = sizes[round % 8];
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("id,s,q,p,r\n", f);
        for (size_t i = 0; i < nrows; i++) {
            /* NULLs everywhere but in id: COUNT(col) < COUNT(*) */
            fprintf(f, "%zu,", i);
            if (rnd() % 5)
                fprintf(f, "s%u", (unsigned)(rnd() % 37));
            fputc(',', f);
            if (rnd() % 5)
                fprintf(f, "%d", (int)(rnd() % 1000) - 500);
            fputc(',', f);
            if (rnd() % 5)
                fprintf(f, "%.2f", (double)(rnd() % 100000) / 100.0);
            fputc(',', f);
            if (rnd() % 5)
                fputs(rnd() % 2 ? "true" : "false", f);
            fputc('\n', f);
        }
        fclose(f);
        bool read[INFER_COLS];
        bool any = false;
        for (size_t c = 0; c < INFER_COLS; c++)
            any |= read[c] = round % 4 == 3 ? false : rnd() % 2 == 0;
        tsr_context_params_t cp = {.threads = 2};
        tsr_context_t *ctx = NULL;
        assert_int_equal(tsr_context_create(&cp, &ctx), TSR_OK);
        assert_int_equal(tsr_table_register_csv(ctx, "r", path, NULL), TSR_OK);
        char *sample = NULL, *count = NULL;
        assert_int_equal(
            tsr_rewrite_infer_sql(NULL, "r", names, read, INFER_COLS, 20000, &sample, &count),
            TSR_OK);
        assert_true((sample != NULL) == any);
        tsr_result_t *res = NULL;
        if (sample) {
            assert_int_equal(tsr_query(ctx, sample, &res), TSR_OK);
            assert_int_equal(tsr_result_row_count(res), nrows);
            tsr_result_destroy(res);
        }
        assert_int_equal(tsr_query(ctx, count, &res), TSR_OK);
        assert_int_equal(tsr_result_int64(res, 0, 0), (int64_t)nrows);
        tsr_result_destroy(res);
        const tsr_table_t *t = tsr_catalog_find(&ctx->catalog, "r");
        assert_non_null(t);
        for (size_t c = 0; c < INFER_COLS; c++) {
            bool want = any ? read[c] : c == 0; /* COUNT(*) alone reads column 0 */
            bool loaded = !t->lazy || t->lazy->loaded[c];
            assert_true(loaded == want);
        }
        tsr_mem_free(NULL, sample);
        tsr_mem_free(NULL, count);
        tsr_context_destroy(ctx);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_whole),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_aliases_keep_names),
        cmocka_unit_test(test_rtab_truncations),
        cmocka_unit_test(test_infer_sql_text),
        cmocka_unit_test(test_infer_sql_loads_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
