/*
 * test_csv_pushdown.c - CSV projection pushdown: tables opened with
 * tsr_csv_open_file / tsr_csv_open_buffer_tuned load only the columns asked
 * for (tsr_table_load_columns), and the planner asks for exactly the columns
 * a query's scans read.
 *
 * The model is the eager reader: random files (NULLs, negatives, quoted
 * strings with delimiters, quotes and newlines, a column that widens late)
 * are read eagerly and opened lazily; columns are loaded in random subsets
 * and orders, 1 and 2 threads, tiny and automatic chunks, and every loaded
 * column must equal the eager one value for value (strings by content, types
 * after widening, statistics). Errors: a malformed row fails every load at
 * the eager reader's file:line:column, an empty load included; a bad value in
 * a column nobody loads is no error, loading that column reports it exactly.
 * A cluster worker's byte range (tsr_csv_fd_range_bytes + tsr_csv_open_owned)
 * must be the header and the range's bytes exactly (model: memcpy at row
 * starts found by a naive quote-aware walk), and load like the eager read of
 * those bytes; bad and short ranges are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pool.h"
#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/planner.h"
#include "table/csv.h"
#include "table/csv_internal.h"

static uint64_t rs = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- a random file ---------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Columns: i INT64, d DOUBLE, s VARCHAR (quoted, with , " and newlines),
 * b BOOL, w INT64 in the sample then a double (widens), t VARCHAR codes. */
#define NC 6

static char *gen_file(size_t nrows, size_t *len)
{
    sbuf_t b = {0};
    sb_str(&b, "i,d,s,b,w,t\n");
    char buf[64];
    for (size_t r = 0; r < nrows; r++) {
        if (rnd() % 10)
            snprintf(buf, sizeof(buf), "%lld", (long long)(rnd() % 2001) - 1000);
        else
            buf[0] = '\0';
        sb_str(&b, buf);
        sb_str(&b, ",");
        if (rnd() % 10)
            snprintf(buf, sizeof(buf), "%.2f", (double)(rnd() % 100000) / 100.0 - 300.0);
        else
            buf[0] = '\0';
        sb_str(&b, buf);
        sb_str(&b, ",");
        switch (rnd() % 5) {
        case 0:
            break; /* NULL */
        case 1:
            sb_str(&b, "\"a,b\"\"c\"");
            break;
        case 2:
            sb_str(&b, "\"two\nlines\"");
            break;
        default:
            snprintf(buf, sizeof(buf), "word%u", (unsigned)(rnd() % 50));
            sb_str(&b, buf);
            break;
        }
        sb_str(&b, ",");
        sb_str(&b, rnd() % 2 ? "true" : "false");
        sb_str(&b, ",");
        if (r == nrows - 3)
            sb_str(&b, "2.5"); /* after the sample: w widens to DOUBLE */
        else
            snprintf(buf, sizeof(buf), "%u", (unsigned)(rnd() % 7)), sb_str(&b, buf);
        sb_str(&b, ",");
        snprintf(buf, sizeof(buf), "k%u", (unsigned)(rnd() % 3000));
        sb_str(&b, buf);
        sb_str(&b, rnd() % 4 ? "\n" : "\r\n");
    }
    *len = b.len;
    return b.p;
}

/* ---- comparing a lazy table's loaded columns with the eager table ----------------- */

static void same_column(const tsr_table_t *lz, const tsr_table_t *eg, size_t c)
{
    assert_int_equal(lz->fields[c].type, eg->fields[c].type);
    assert_int_equal(lz->nbatches, eg->nbatches);
    assert_int_equal(lz->nrows, eg->nrows);
    for (size_t b = 0; b < eg->nbatches; b++) {
        const tsr_vector_t *x = &lz->batches[b].cols[c], *y = &eg->batches[b].cols[c];
        size_t n = eg->batches[b].nrows;
        assert_int_equal(lz->batches[b].nrows, n);
        assert_int_equal(x->len, y->len);
        assert_int_equal(x->type, y->type);
        assert_non_null(x->data);
        for (size_t i = 0; i < n; i++) {
            bool nx = tsr_vector_is_null(x, i), ny = tsr_vector_is_null(y, i);
            assert_int_equal(nx, ny);
            if (ny)
                continue;
            switch (y->type) {
            case TSR_TYPE_INT64:
                assert_int_equal(((int64_t *)x->data)[i], ((int64_t *)y->data)[i]);
                break;
            case TSR_TYPE_DOUBLE:
                assert_memory_equal(&((double *)x->data)[i], &((double *)y->data)[i],
                                    sizeof(double));
                break;
            case TSR_TYPE_BOOL:
                assert_int_equal(((uint8_t *)x->data)[i], ((uint8_t *)y->data)[i]);
                break;
            default: {
                size_t lx, ly;
                const char *sx = tsr_dict_get(x->dict, ((uint32_t *)x->data)[i], &lx);
                const char *sy = tsr_dict_get(y->dict, ((uint32_t *)y->data)[i], &ly);
                assert_int_equal(lx, ly);
                assert_memory_equal(sx, sy, lx);
                assert_ptr_equal(x->dict, lz->dicts[c]); /* the lazy table owns it */
                break;
            }
            }
        }
    }
    const tsr_colstats_t *sx = tsr_table_stats(lz, c), *sy = tsr_table_stats(eg, c);
    assert_int_equal(sx != NULL, sy != NULL);
    if (sx) {
        assert_int_equal(sx->min, sy->min);
        assert_int_equal(sx->max, sy->max);
    }
}

static void test_random_subsets(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    static const size_t sizes[] = {0, 1, 5, 997, 20011};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t len;
        char *csv = gen_file(sizes[si], &len);
        tsr_csv_options_t opts = {.sample_rows = 100};
        for (int variant = 0; variant < 3; variant++) {
            tsr_pool_t *p = variant == 0 ? NULL : pool;
            tsr_csv_tuning_t tun = {.chunk_bytes = variant == 2 ? 4096 : 0};
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_table_t *eg = NULL, *lz = NULL;
            assert_int_equal(
                tsr_csv_read_buffer_tuned(NULL, p, csv, len, "f.csv", "t", &opts, &tun, &eg, &err),
                TSR_OK);
            for (int round = 0; round < 3; round++) {
                assert_int_equal(tsr_csv_open_buffer_tuned(NULL, p, csv, len, "f.csv", "t", &opts,
                                                           &tun, &lz, &err),
                                 TSR_OK);
                assert_non_null(lz->lazy);
                assert_int_equal(lz->nbatches, 0);
                assert_int_equal(lz->ncols, NC);
                bool done[NC] = {false};
                for (int step = 0; step < 4 && lz->lazy; step++) {
                    bool need[NC];
                    for (size_t c = 0; c < NC; c++)
                        need[c] = rnd() % 3 == 0;
                    assert_int_equal(tsr_table_load_columns(lz, need, &err), TSR_OK);
                    assert_int_equal(lz->nrows, eg->nrows);
                    for (size_t c = 0; c < NC; c++) {
                        done[c] |= need[c];
                        assert_int_equal(tsr_table_column_loaded(lz, c), done[c]);
                        if (done[c])
                            same_column(lz, eg, c);
                    }
                }
                assert_int_equal(tsr_table_load_columns(lz, NULL, &err), TSR_OK);
                assert_null(lz->lazy); /* all loaded: the bytes are gone */
                for (size_t c = 0; c < NC; c++)
                    same_column(lz, eg, c);
                tsr_table_destroy(lz);
            }
            tsr_table_destroy(eg);
        }
        free(csv);
    }
    tsr_pool_destroy(pool);
}

/* ---- errors ------------------------------------------------------------------------ */

static void expect_load_error(const char *csv, const char *schema, const bool *need,
                              tsr_status_t rc, int line, int col)
{
    tsr_csv_options_t opts = {.schema = schema};
    tsr_error_t err, eager;
    tsr_table_t *t = NULL;
    /* the eager reader's report: the lazy loads must give the very same */
    tsr_error_clear(&eager);
    assert_int_equal(
        tsr_csv_read_buffer(NULL, NULL, csv, strlen(csv), "bad.csv", "t", &opts, &t, &eager), rc);
    assert_int_equal(eager.line, line);
    assert_int_equal(eager.column, col);
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_open_buffer_tuned(NULL, NULL, csv, strlen(csv), "bad.csv", "t", &opts,
                                               NULL, &t, &err),
                     TSR_OK);
    for (int again = 0; again < 2; again++) { /* a failed load fails the same way again */
        tsr_error_clear(&err);
        assert_int_equal(tsr_table_load_columns(t, need, &err), rc);
        assert_string_equal(err.file, "bad.csv");
        assert_int_equal(err.line, line);
        assert_int_equal(err.column, col);
        assert_string_equal(err.message, eager.message);
    }
    tsr_table_destroy(t);
}

static void test_errors(void **state)
{
    (void)state;
    bool none[3] = {false, false, false}, first[3] = {true, false, false};
    bool last[3] = {false, false, true};
    /* too many / too few fields, blank line, unterminated quote: whatever is loaded */
    const char *many = "a,b,c\n1,2,3\n4,5,6,7\n";
    expect_load_error(many, NULL, none, TSR_ERR_BAD_INPUT, 3, 7);
    expect_load_error(many, NULL, first, TSR_ERR_BAD_INPUT, 3, 7);
    const char *few = "a,b,c\n1,2,3\n4,5\n7,8,9\n";
    expect_load_error(few, NULL, first, TSR_ERR_BAD_INPUT, 3, 4);
    const char *blank = "a,b,c\n1,2,3\n\n7,8,9\n";
    expect_load_error(blank, NULL, last, TSR_ERR_BAD_INPUT, 3, 1);
    const char *quote = "a,b,c\n1,2,3\n4,\"open,6\n";
    expect_load_error(quote, NULL, first, TSR_ERR_BAD_INPUT, 3, 3);

    /* a value that does not fit a schema type: only when its column loads */
    const char *badval = "a,b,c\n1,2,3\n4,x,6\n";
    tsr_csv_options_t opts = {.schema = "b:int64"};
    tsr_error_t err;
    tsr_table_t *t = NULL;
    assert_int_equal(tsr_csv_open_buffer_tuned(NULL, NULL, badval, strlen(badval), "bad.csv", "t",
                                               &opts, NULL, &t, &err),
                     TSR_OK);
    bool ac[3] = {true, false, true};
    assert_int_equal(tsr_table_load_columns(t, ac, &err), TSR_OK);
    assert_int_equal(t->nrows, 2);
    assert_int_equal(((int64_t *)t->batches[0].cols[2].data)[1], 6);
    tsr_table_destroy(t);
    bool bonly[3] = {false, true, false};
    expect_load_error(badval, "b:int64", bonly, TSR_ERR_BAD_INPUT, 3, 3);

    /* header errors are still reported when the file is opened */
    tsr_error_clear(&err);
    const char *dup = "a,A\n1,2\n";
    assert_int_equal(tsr_csv_open_buffer_tuned(NULL, NULL, dup, strlen(dup), "bad.csv", "t", NULL,
                                               NULL, &t, &err),
                     TSR_ERR_BAD_INPUT);
    assert_int_equal(err.line, 1);
}

/* ---- the planner loads what the query reads ------------------------------------- */

static tsr_status_t plan_sql(tsr_catalog_t *cat, const char *sql, tsr_plan_t **plan,
                             tsr_arena_t *ar, tsr_error_t *err)
{
    tsr_ast_select_t *ast;
    tsr_error_clear(err);
    tsr_status_t rc = tsr_sql_parse(ar, sql, strlen(sql), &ast, err);
    return rc == TSR_OK ? tsr_sql_plan(ar, cat, sql, ast, plan, err) : rc;
}

static void test_planner_pushdown(void **state)
{
    (void)state;
    /* w is BIGINT in the sample of 2 rows, DOUBLE once loaded */
    const char *csv = "id,name,w,x\n1,a,5,7\n2,b,6,8\n3,c,2.5,9\n";
    tsr_csv_options_t opts = {.sample_rows = 2};
    tsr_error_t err;
    tsr_table_t *t;
    assert_int_equal(tsr_csv_open_buffer_tuned(NULL, NULL, csv, strlen(csv), "p.csv", "p", &opts,
                                               NULL, &t, &err),
                     TSR_OK);
    assert_int_equal(t->fields[2].type, TSR_TYPE_INT64);
    tsr_catalog_t cat;
    tsr_catalog_init(&cat, NULL);
    assert_int_equal(tsr_catalog_add(&cat, t), TSR_OK);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_plan_t *plan;

    /* a syntax or name error loads nothing */
    assert_int_equal(plan_sql(&cat, "SELECT nope FROM p", &plan, &ar, &err), TSR_ERR_NOT_FOUND);
    assert_non_null(t->lazy);
    assert_false(t->lazy->rows);

    assert_int_equal(plan_sql(&cat, "SELECT name, SUM(x) FROM p GROUP BY name", &plan, &ar, &err),
                     TSR_OK);
    assert_true(tsr_table_column_loaded(t, 1));
    assert_true(tsr_table_column_loaded(t, 3));
    assert_false(tsr_table_column_loaded(t, 0));
    assert_false(tsr_table_column_loaded(t, 2));
    assert_int_equal(t->nrows, 3);

    /* loading w widens it: the plan is bound again with DOUBLE */
    assert_int_equal(plan_sql(&cat, "SELECT SUM(w) AS s FROM p", &plan, &ar, &err), TSR_OK);
    assert_int_equal(t->fields[2].type, TSR_TYPE_DOUBLE);
    assert_int_equal(plan->types[0], TSR_TYPE_DOUBLE);
    assert_false(tsr_table_column_loaded(t, 0));

    /* COUNT(*) reads one column; SELECT * loads the rest */
    assert_int_equal(plan_sql(&cat, "SELECT * FROM p", &plan, &ar, &err), TSR_OK);
    assert_null(t->lazy);
    tsr_arena_release(&ar);
    tsr_catalog_free(&cat);
}

/* A file on disk through tsr_csv_open_file: the bytes are read once, then
 * the file may go away. */
static void test_open_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tsr_pushdown_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len;
    char *csv = gen_file(3000, &len);
    assert_int_equal(write(fd, csv, len), (ssize_t)len);
    close(fd);
    tsr_error_t err;
    tsr_table_t *t, *eg;
    tsr_csv_options_t opts = {.sample_rows = 100};
    assert_int_equal(tsr_csv_open_file(NULL, NULL, path, "t", &opts, &t, &err), TSR_OK);
    assert_int_equal(tsr_csv_read_file(NULL, NULL, path, "t", &opts, &eg, &err), TSR_OK);
    unlink(path);
    bool need[NC] = {false, true, false, false, true, false};
    assert_int_equal(tsr_table_load_columns(t, need, &err), TSR_OK);
    same_column(t, eg, 1);
    same_column(t, eg, 4);
    assert_int_equal(tsr_table_load_columns(t, NULL, &err), TSR_OK);
    for (size_t c = 0; c < NC; c++)
        same_column(t, eg, c);
    tsr_table_destroy(t);
    tsr_table_destroy(eg);
    assert_int_equal(tsr_csv_open_file(NULL, NULL, path, "t", NULL, &t, &err), TSR_ERR_NOT_FOUND);
    free(csv);
}

/* Random byte ranges of whole rows of a file on disk, under its header. */
static void test_fd_range(void **state)
{
    (void)state;
    char path[] = "/tmp/tsr_pushdown_range_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len;
    char *csv = gen_file(2 * 8192 + 3, &len);
    assert_int_equal(write(fd, csv, len), (ssize_t)len);
    /* row starts: after a '\n' outside quotes (every '"' toggles) */
    size_t *starts = calloc(len + 1, sizeof(*starts)), ns = 0;
    assert_non_null(starts);
    bool odd = false;
    for (size_t i = 0; i < len; i++) {
        odd ^= csv[i] == '"';
        if (csv[i] == '\n' && !odd)
            starts[ns++] = i + 1;
    }
    assert_true(ns > 2);
    size_t header_end = starts[0];
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_error_t err;
    for (int round = 0; round < 12; round++) {
        size_t a = rnd() % ns, b = rnd() % ns;
        if (round == 0)
            a = b = ns - 1; /* an empty range: the header alone */
        if (round == 1)
            a = 0, b = ns - 1; /* every row */
        if (a > b) {
            size_t x = a;
            a = b;
            b = x;
        }
        size_t start = starts[a], end = starts[b];
        char *buf = NULL;
        size_t blen = 0;
        tsr_error_clear(&err);
        assert_int_equal(tsr_csv_fd_range_bytes(NULL, round % 2 ? pool : NULL, fd, path,
                                                header_end, start, end, &buf, &blen, &err),
                         TSR_OK);
        assert_int_equal(blen, header_end + end - start);
        assert_memory_equal(buf, csv, header_end);
        if (end > start)
            assert_memory_equal(buf + header_end, csv + start, end - start);
        tsr_table_t *t, *eg;
        tsr_csv_options_t opts = {.sample_rows = 100};
        assert_int_equal(
            tsr_csv_read_buffer(NULL, NULL, buf, blen, "range.csv", "t", &opts, &eg, &err),
            TSR_OK);
        assert_int_equal(
            tsr_csv_open_owned(NULL, pool, buf, blen, "range.csv", "t", &opts, &t, &err), TSR_OK);
        assert_int_equal(tsr_table_load_columns(t, NULL, &err), TSR_OK);
        assert_int_equal(t->nrows, eg->nrows);
        for (size_t c = 0; c < NC; c++)
            same_column(t, eg, c);
        tsr_table_destroy(t);
        tsr_table_destroy(eg);
    }
    char *buf = NULL;
    size_t blen = 0;
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_fd_range_bytes(NULL, pool, fd, path, header_end, starts[2], starts[1],
                                            &buf, &blen, &err),
                     TSR_ERR_INVALID_ARG); /* start > end */
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_fd_range_bytes(NULL, pool, fd, path, starts[2], starts[1], len, &buf,
                                            &blen, &err),
                     TSR_ERR_INVALID_ARG); /* header past the start */
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_fd_range_bytes(NULL, pool, fd, path, header_end, starts[1], len + 10,
                                            &buf, &blen, &err),
                     TSR_ERR_IO); /* past the end of the file */
    assert_null(buf);
    assert_int_equal(blen, 0);
    tsr_pool_destroy(pool);
    close(fd);
    unlink(path);
    free(starts);
    free(csv);
}

/* Every allocation of an open and two loads failing in turn: a clean
 * TSR_ERR_NOMEM, nothing leaked (ASan), and the table still loads right
 * once memory is back. */
static void test_fault_injection(void **state)
{
    (void)state;
    size_t len;
    char *csv = gen_file(300, &len);
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_csv_options_t opts = {.sample_rows = 50};
    tsr_csv_tuning_t tun = {.chunk_bytes = 2048, .chunk_rows = 64};
    tsr_error_t err;
    tsr_table_t *eg;
    assert_int_equal(
        tsr_csv_read_buffer_tuned(NULL, pool, csv, len, "f.csv", "t", &opts, &tun, &eg, &err),
        TSR_OK);
    bool first[NC] = {false, true, true, false, false, false};
    bool second[NC] = {true, false, false, true, true, true};
    size_t injected = 0;
    for (long n = 0;; n++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_mem_fail_after(&mem, n);
        tsr_table_t *t = NULL;
        tsr_error_clear(&err);
        tsr_status_t rc =
            tsr_csv_open_buffer_tuned(&mem, pool, csv, len, "f.csv", "t", &opts, &tun, &t, &err);
        if (rc == TSR_OK) {
            rc = tsr_table_load_columns(t, first, &err);
            if (rc == TSR_OK)
                rc = tsr_table_load_columns(t, second, &err);
        }
        bool failed = atomic_load(&mem.failures) > 0;
        injected += failed;
        if (rc != TSR_OK)
            assert_int_equal(rc, TSR_ERR_NOMEM);
        else
            assert_false(t->lazy); /* every column asked for at some point */
        tsr_mem_fail_after(&mem, -1);
        if (t) { /* what failed loads again, and right */
            assert_int_equal(tsr_table_load_columns(t, NULL, &err), TSR_OK);
            for (size_t c = 0; c < NC; c++)
                same_column(t, eg, c);
            tsr_table_destroy(t);
        }
        if (!failed)
            break; /* the whole sequence ran without reaching allocation n */
    }
    assert_true(injected > 10);
    tsr_table_destroy(eg);
    tsr_pool_destroy(pool);
    free(csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_subsets),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_planner_pushdown), cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_fd_range),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
