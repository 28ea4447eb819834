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


/* ---- broadcast joins (rewrite_join.c) ---------------------------------------
 * Model: the engine on whole tables. t (NROWS rows, the data above) joins
 * u (37 rows: keys duplicated and NULL, a column named "Name" in the table
 * and name in the queries) and w (11 rows). Each query runs distributed with
 * EVERY table in turn as the split one (cut into random slices, the others
 * whole in every slice's context), and the merge must equal the whole: the
 * same names and types, the same rows as a multiset. */

#define UROWS 37
#define WROWS 11

typedef struct jdata {
    int64_t uk[UROWS], uw[UROWS], wid[WROWS], wx[WROWS];
    const char *un[UROWS], *wg[WROWS];
    bool ukn[UROWS], unn[UROWS], wxn[WROWS];
} jdata_t;

static void make_jdata(jdata_t *y)
{
    static const char *const names[] = {"ann", "bob", "x,y", "Zoe"};
    for (size_t i = 0; i < UROWS; i++) {
        y->uk[i] = (int64_t)(rnd() % 9); /* t.k is 0..6: some u keys never match */
        y->ukn[i] = rnd() % 8 == 0;
        y->uw[i] = (int64_t)(rnd() % 100);
        y->un[i] = names[rnd() % 4];
        y->unn[i] = rnd() % 10 == 0;
    }
    for (size_t i = 0; i < WROWS; i++) {
        y->wid[i] = (int64_t)i % 7;
        y->wx[i] = (int64_t)(rnd() % 50) - 25;
        y->wxn[i] = rnd() % 6 == 0;
        y->wg[i] = GROUPS[rnd() % 6];
    }
}

/* Registers rows [from, from+n) of table which (0 t, 1 u, 2 w). */
static void register_jslice(tsr_context_t *ctx, const data_t *x, const jdata_t *y, int which,
                            size_t from, size_t n)
{
    if (which == 0) {
        register_slice(ctx, x, from, n);
    } else if (which == 1) {
        tsr_column_data_t cols[3] = {
            {"k", TSR_TYPE_INT64, y->uk + from, y->ukn + from},
            {"uw", TSR_TYPE_INT64, y->uw + from, NULL},
            {"Name", TSR_TYPE_VARCHAR, y->un + from, y->unn + from},
        };
        assert_int_equal(tsr_table_register_columns(ctx, "u", 3, cols, n), TSR_OK);
    } else {
        tsr_column_data_t cols[3] = {
            {"id", TSR_TYPE_INT64, y->wid + from, NULL},
            {"x", TSR_TYPE_INT64, y->wx + from, y->wxn + from},
            {"wg", TSR_TYPE_VARCHAR, y->wg + from, NULL},
        };
        assert_int_equal(tsr_table_register_columns(ctx, "w", 3, cols, n), TSR_OK);
    }
}

static size_t jrows(int which)
{
    return which == 0 ? NROWS : which == 1 ? UROWS : WROWS;
}

static int jtable(const char *name)
{
    return strcmp(name, "t") == 0 ? 0 : strcmp(name, "u") == 0 ? 1 : 2;
}

/* One row as text, doubles rounded: a sort key for multiset comparison. */
static void row_text(const tsr_result_t *r, size_t row, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t c = 0; c < tsr_result_column_count(r) && o + 1 < size; c++) {
        int n;
        if (tsr_result_is_null(r, row, c))
            n = snprintf(buf + o, size - o, "NULL|");
        else if (tsr_result_column_type(r, c) == TSR_TYPE_DOUBLE)
            n = snprintf(buf + o, size - o, "%.6g|", tsr_result_double(r, row, c));
        else if (tsr_result_column_type(r, c) == TSR_TYPE_INT64)
            n = snprintf(buf + o, size - o, "%lld|", (long long)tsr_result_int64(r, row, c));
        else if (tsr_result_column_type(r, c) == TSR_TYPE_BOOL)
            n = snprintf(buf + o, size - o, "%d|", (int)tsr_result_bool(r, row, c));
        else
            n = snprintf(buf + o, size - o, "'%s'|", tsr_result_string(r, row, c, NULL));
        o += n > 0 ? (size_t)n : 0;
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **sorted_rows(const tsr_result_t *r)
{
    size_t n = tsr_result_row_count(r);
    char **rows = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        rows[i] = malloc(512);
        row_text(r, i, rows[i], 512);
    }
    qsort(rows, n, sizeof(char *), str_cmp);
    return rows;
}

static void same_multiset(const tsr_result_t *a, const tsr_result_t *b, const char *sql)
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
    }
    char **ra = sorted_rows(a), **rb = sorted_rows(b);
    for (size_t i = 0; i < nr; i++)
        if (strcmp(ra[i], rb[i]) != 0)
            fail_msg("%s: sorted row %zu: %s vs %s", sql, i, ra[i], rb[i]);
    for (size_t i = 0; i < nr; i++) {
        free(ra[i]);
        free(rb[i]);
    }
    free(ra);
    free(rb);
}

static tsr_result_t *must_query(tsr_context_t *ctx, const char *sql)
{
    tsr_result_t *r = NULL;
    if (tsr_query(ctx, sql, &r) != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        fail_msg("query failed: %s\n%s", e.message, sql);
    }
    return r;
}

/* Runs a JOIN plan with table `split` sliced, and compares with the whole. */
static void check_join_split(const data_t *x, const jdata_t *y, const char *sql,
                             tsr_dplan_t *plan, size_t split)
{
    assert_int_equal(tsr_rewrite_pick(NULL, plan, split), TSR_OK);
    int st = jtable(plan->table);
    tsr_context_t *whole = new_ctx(), *merge = new_ctx();
    for (int k = 0; k < 3; k++)
        register_jslice(whole, x, y, k, 0, jrows(k));
    tsr_result_t *expect = must_query(whole, sql);
    /* the probes bind exactly where an input column would shadow an alias */
    for (size_t i = 0; i < plan->nprobes; i++) {
        tsr_result_t *pr = NULL;
        if (tsr_query(whole, plan->probes[i], &pr) == TSR_OK)
            fail_msg("%s: probe binds: %s", sql, plan->probes[i]);
    }
    size_t total = jrows(st), nslices = 1 + rnd() % 5, from = 0;
    tsr_rtab_t all = {0};
    void *msgs[5] = {0};
    tsr_error_t err;
    for (size_t s = 0; s < nslices; s++) {
        size_t n = s + 1 == nslices ? total - from : rnd() % (total - from + 1);
        tsr_context_t *part = new_ctx();
        for (int k = 0; k < 3; k++)
            if (k == st)
                register_jslice(part, x, y, k, from, n);
            else
                register_jslice(part, x, y, k, 0, jrows(k));
        from += n;
        tsr_result_t *pr = must_query(part, plan->worker_sql);
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        assert_int_equal(tsr_proto_encode_result(&b, pr), TSR_OK);
        tsr_rtab_t rt;
        tsr_error_clear(&err);
        assert_int_equal(tsr_proto_decode_rtab(NULL, b.data, b.len, &rt, &err), TSR_OK);
        assert_int_equal(tsr_proto_rtab_append(NULL, &all, &rt, &err), TSR_OK);
        tsr_proto_rtab_free(NULL, &rt);
        msgs[s] = b.data;
        tsr_result_destroy(pr);
        tsr_context_destroy(part);
    }
    assert_int_equal(tsr_proto_rtab_register(NULL, merge, plan->part, &all, NULL), TSR_OK);
    tsr_result_t *got = must_query(merge, plan->final_sql);
    same_multiset(expect, got, sql);
    tsr_result_destroy(expect);
    tsr_result_destroy(got);
    tsr_proto_rtab_free(NULL, &all);
    for (size_t s = 0; s < 5; s++)
        free(msgs[s]);
    tsr_context_destroy(whole);
    tsr_context_destroy(merge);
}

static void plan_of(const char *sql, tsr_dplan_t *plan)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rewrite_plan(NULL, sql, plan, &err), TSR_OK);
}

static void test_join_against_whole(void **state)
{
    (void)state;
    static data_t x;
    static jdata_t y;
    make_data(&x);
    make_jdata(&y);
    static const struct {
        const char *sql;
        bool agg;
    } qs[] = {
        {"SELECT u.name, COUNT(*), SUM(t.v), AVG(t.d), MIN(t.g), MAX(u.uw) FROM t JOIN u "
         "ON t.k = u.k GROUP BY u.name ORDER BY u.name",
         true},
        {"SELECT COUNT(*) AS n, SUM(a.v) AS s, AVG(b.uw) FROM t a INNER JOIN u b ON a.k = b.k "
         "WHERE a.v > 0 AND b.name <> 'bob'",
         true},
        {"SELECT a.k, b.name AS nm, COUNT(*) AS c, SUM(a.v) + 1 FROM t AS a JOIN u AS b "
         "ON a.k = b.k GROUP BY a.k, b.name HAVING COUNT(*) > 2 ORDER BY c DESC, a.k, nm",
         true},
        {"SELECT w.wg, t.g, COUNT(t.v), MAX(w.x) - MIN(t.d) FROM t JOIN u ON t.k = u.k JOIN w "
         "ON w.id = u.k GROUP BY w.wg, t.g ORDER BY 1, 2",
         true},
        {"SELECT DISTINCT u.name FROM u JOIN t ON u.k = t.k GROUP BY u.name", true},
        {"SELECT t.k, u.name, t.v + u.uw FROM t JOIN u ON t.k = u.k AND t.g <> 'z' "
         "WHERE t.v BETWEEN -100 AND 100",
         false},
        {"SELECT t.k AS kk, u.uw FROM t JOIN u ON t.k = u.k ORDER BY t.v DESC, kk, u.uw", false},
        {"SELECT DISTINCT u.name AS n2, t.k FROM t JOIN u ON t.k = u.k ORDER BY n2, 2", false},
        {"SELECT * FROM w JOIN u ON w.id = u.k WHERE w.x > 0", false},
        {"SELECT t.g, w.x FROM t JOIN u ON t.k = u.k JOIN w ON w.id = t.k WHERE u.uw < 50", false},
        {"SELECT t.v, u.name FROM t JOIN u ON t.k = u.k ORDER BY t.v, u.name, u.uw, t.d, t.g "
         "LIMIT 7 OFFSET 3",
         false},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        tsr_dplan_t plan;
        plan_of(qs[i].sql, &plan);
        if (plan.kind != TSR_DPLAN_JOIN)
            fail_msg("%s: planned %s (%s)", qs[i].sql, tsr_rewrite_kind_name(plan.kind),
                     plan.why ? plan.why : "");
        assert_int_equal(plan.join_agg, qs[i].agg);
        for (size_t split = 0; split < plan.ntables; split++)
            check_join_split(&x, &y, qs[i].sql, &plan, split);
        tsr_rewrite_free(NULL, &plan);
    }
}

static void test_join_decisions(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *why; /* NULL: JOIN */
    } qs[] = {
        {"SELECT a.k FROM t a JOIN t b ON a.k = b.k", "a table joined with itself"},
        {"SELECT COUNT(*) FROM t JOIN u ON t.k = u.k JOIN T ON 1 = 1",
         "a table joined with itself"},
        {"SELECT COUNT(*) FROM t JOIN tsr__part p ON t.k = p.k", "a table named tsr__*"},
        {"SELECT COUNT(DISTINCT u.k) FROM t JOIN u ON t.k = u.k", "an aggregate with DISTINCT"},
        {"SELECT t.k % 2, COUNT(*) FROM t JOIN u ON t.k = u.k GROUP BY t.k % 2",
         "GROUP BY on an expression"},
        {"SELECT t.k, u.k, COUNT(*) FROM t JOIN u ON t.k = u.k GROUP BY t.k, u.k",
         "GROUP BY columns of one name"},
        {"SELECT t.v, COUNT(*) FROM t JOIN u ON t.k = u.k GROUP BY t.k",
         "a column that is neither grouped nor a select alias"},
        {"SELECT u.k, COUNT(*) FROM t JOIN u ON t.k = u.k GROUP BY t.k",
         "a column that is neither grouped nor a select alias"},
        {"SELECT *, t.k FROM t JOIN u ON t.k = u.k", "SELECT * with other items"},
        {"SELECT * FROM t JOIN u ON t.k = u.k GROUP BY t.k", "SELECT * with aggregates"},
        {"SELECT DISTINCT t.k FROM t JOIN u ON t.k = u.k ORDER BY t.v",
         "DISTINCT ordered by an expression not selected"},
        {"SELECT * FROM t JOIN u ON t.k = u.k ORDER BY t.v + 1",
         "SELECT * ordered by an expression"},
        {"SELECT t.k AS g, COUNT(*) FROM t JOIN u ON t.k = u.k GROUP BY t.k, u.g ORDER BY g",
         "a name that is both a grouped column and a select alias"},
        {"SELECT t.k FROM t JOIN u ON t.k = u.k", NULL},
        {"SELECT t.k, COUNT(*) AS c FROM t JOIN u ON t.k = u.k GROUP BY t.k ORDER BY c", NULL},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        tsr_dplan_t plan;
        plan_of(qs[i].sql, &plan);
        if (qs[i].why) {
            if (plan.kind != TSR_DPLAN_WHOLE || strcmp(plan.why, qs[i].why) != 0)
                fail_msg("%s: planned %s (%s), expected whole (%s)", qs[i].sql,
                         tsr_rewrite_kind_name(plan.kind), plan.why ? plan.why : "", qs[i].why);
            assert_null(plan.worker_sql);
            assert_null(plan.tables);
        } else {
            assert_int_equal(plan.kind, TSR_DPLAN_JOIN);
        }
        tsr_rewrite_free(NULL, &plan);
    }
}

static void test_join_texts(void **state)
{
    (void)state;
    tsr_dplan_t plan;
    plan_of("SELECT b.name, COUNT(*), AVG(a.v) AS av FROM big a JOIN dim b ON a.k = b.k "
            "WHERE a.v > 0 GROUP BY b.name HAVING SUM(a.v) > 3 ORDER BY av DESC",
            &plan);
    assert_int_equal(plan.kind, TSR_DPLAN_JOIN);
    assert_true(plan.join_agg);
    assert_null(plan.table);
    assert_int_equal(plan.ntables, 2);
    assert_string_equal(plan.tables[0], "big");
    assert_string_equal(plan.tables[1], "dim");
    assert_string_equal(plan.part, "tsr__part");
    assert_string_equal(plan.worker_sql,
                        "SELECT b.name, count(*) AS tsr__p0, SUM(a.v) AS tsr__p1s, COUNT(a.v) AS "
                        "tsr__p1c, sum(a.v) AS tsr__p2\nFROM big a JOIN dim b ON a.k = b.k\n"
                        "WHERE (a.v > 0)\nGROUP BY b.name");
    assert_string_equal(plan.final_sql,
                        "SELECT \"name\", SUM(tsr__p0) AS \"COUNT(*)\", (SUM(tsr__p1s) * 1.0 / "
                        "SUM(tsr__p1c)) AS av FROM tsr__part WHERE TRUE GROUP BY \"name\" "
                        "HAVING sum(tsr__p2) > 3 ORDER BY av DESC");
    assert_int_equal(plan.nprobes, 1);
    assert_string_equal(plan.probes[0], "SELECT \"av\" FROM big a JOIN dim b ON a.k = b.k LIMIT 0");
    assert_string_equal(plan.columns, "v,v,name,v,name,av,k,k");
    assert_int_equal(tsr_rewrite_pick(NULL, &plan, 1), TSR_OK);
    assert_string_equal(plan.table, "dim");
    assert_int_equal(tsr_rewrite_pick(NULL, &plan, 2), TSR_ERR_INVALID_ARG);
    tsr_rewrite_free(NULL, &plan);

    plan_of("SELECT a.k, a.v * 2 AS dv, b.w + 1 FROM big a JOIN dim b ON a.k = b.k "
            "ORDER BY a.d LIMIT 3 OFFSET 2",
            &plan);
    assert_int_equal(plan.kind, TSR_DPLAN_JOIN);
    assert_false(plan.join_agg);
    assert_string_equal(plan.worker_sql,
                        "SELECT a.k, a.v * 2 AS tsr__c1, b.w + 1 AS tsr__c2, a.d AS tsr__o0\n"
                        "FROM big a JOIN dim b ON a.k = b.k");
    assert_string_equal(plan.final_sql,
                        "SELECT \"k\", tsr__c1 AS \"dv\", tsr__c2 AS \"b.w + 1\"\n"
                        "FROM tsr__part\nORDER BY tsr__o0\nLIMIT 3 OFFSET 2");
    assert_int_equal(plan.nprobes, 0);
    tsr_rewrite_free(NULL, &plan);

    /* no ORDER BY: LIMIT n + OFFSET m pushed down */
    plan_of("SELECT * FROM big JOIN dim ON big.k = dim.k WHERE dim.w > 1 LIMIT 4 OFFSET 1", &plan);
    assert_string_equal(plan.worker_sql,
                        "SELECT *\nFROM big JOIN dim ON big.k = dim.k\nWHERE (dim.w > 1)\nLIMIT 5");
    assert_string_equal(plan.final_sql, "SELECT *\nFROM tsr__part\nLIMIT 4 OFFSET 1");
    assert_string_equal(plan.columns, "*");
    tsr_rewrite_free(NULL, &plan);
}


/* A group column spelled in another case than the file's header keeps the
 * file's spelling as its output name, as embedded (the partial column is
 * named by the engine, not by the query's text). */
static void test_group_column_case(void **state)
{
    (void)state;
    static const char *const qs[] = {
        "SELECT kk, COUNT(*) FROM t GROUP BY kk ORDER BY kk",
        "SELECT x.KK, SUM(x.v) FROM t AS x GROUP BY x.kk ORDER BY 1",
    };
    int64_t k[5] = {1, 2, 1, 3, 2}, v[5] = {10, 20, 30, 40, 50};
    tsr_column_data_t cols[2] = {{"Kk", TSR_TYPE_INT64, k, NULL}, {"v", TSR_TYPE_INT64, v, NULL}};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        tsr_dplan_t plan;
        plan_of(qs[i], &plan);
        assert_int_equal(plan.kind, TSR_DPLAN_AGG);
        tsr_context_t *whole = new_ctx(), *merge = new_ctx();
        assert_int_equal(tsr_table_register_columns(whole, "t", 2, cols, 5), TSR_OK);
        tsr_result_t *expect = must_query(whole, qs[i]), *part = must_query(whole, plan.worker_sql);
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        assert_int_equal(tsr_proto_encode_result(&b, part), TSR_OK);
        tsr_rtab_t rt;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_proto_decode_rtab(NULL, b.data, b.len, &rt, &err), TSR_OK);
        assert_int_equal(tsr_proto_rtab_register(NULL, merge, plan.part, &rt, NULL), TSR_OK);
        tsr_result_t *got = must_query(merge, plan.final_sql);
        assert_string_equal(tsr_result_column_name(expect, 0), "Kk");
        same_results(expect, got, qs[i]);
        tsr_result_destroy(expect);
        tsr_result_destroy(part);
        tsr_result_destroy(got);
        tsr_proto_rtab_free(NULL, &rt);
        tsr_wbuf_free(&b);
        tsr_context_destroy(whole);
        tsr_context_destroy(merge);
        tsr_rewrite_free(NULL, &plan);
    }
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
        cmocka_unit_test(test_join_against_whole),
        cmocka_unit_test(test_join_decisions),
        cmocka_unit_test(test_join_texts),
        cmocka_unit_test(test_group_column_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
