/*
 * test_csv.c - the CSV reader (engine/table/csv*.c).
 *
 * Checks, besides hand-written cases for quoting, line ends, BOM, NULLs,
 * inference, widening, schemas and every error with its file:line:column:
 *   - structure of every table read (check_table): batch sizes, vector types
 *     and lengths, one frozen dictionary per VARCHAR column owned by the
 *     table, bitmaps only where a batch has a NULL;
 *   - a model: random tables written as CSV with random quoting, line ends,
 *     delimiters, BOM and trailing lines, read back (with a schema and by
 *     inference, sequentially and on 2 threads with tiny chunks) and compared
 *     value by value, string codes included (first-appearance order);
 *   - doubles equal to strtod's result, bit for bit;
 *   - fault injection: every allocation failure is a clean TSR_ERR_NOMEM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table/csv.h"
#include "table/csv_internal.h"

/* ---- helpers ------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rndn(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Every structural promise of a table from the reader. full: all batches but
 * the last hold TSR_BATCH_ROWS rows. */
static void check_table(const tsr_table_t *t, bool full)
{
    size_t rows = 0;
    for (size_t b = 0; b < t->nbatches; b++) {
        const tsr_batch_t *bt = &t->batches[b];
        assert_true(bt->nrows > 0 && bt->nrows <= TSR_BATCH_ROWS);
        if (full && b + 1 < t->nbatches)
            assert_int_equal(bt->nrows, TSR_BATCH_ROWS);
        rows += bt->nrows;
        for (size_t c = 0; c < t->ncols; c++) {
            const tsr_vector_t *v = &bt->cols[c];
            assert_int_equal(v->type, t->fields[c].type);
            assert_int_equal(v->len, bt->nrows);
            assert_non_null(v->data);
            if (v->validity) {
                bool any_null = false;
                for (size_t i = 0; i < v->len; i++)
                    any_null |= tsr_vector_is_null(v, i);
                assert_true(any_null);
            }
            if (v->type == TSR_TYPE_VARCHAR) {
                assert_ptr_equal(v->dict, t->dicts[c]);
                for (size_t i = 0; i < v->len; i++)
                    if (!tsr_vector_is_null(v, i))
                        assert_true(((const uint32_t *)v->data)[i] < tsr_dict_size(v->dict));
            }
        }
    }
    assert_int_equal(rows, t->nrows);
    for (size_t c = 0; c < t->ncols; c++) {
        if (t->fields[c].type == TSR_TYPE_VARCHAR) {
            assert_non_null(t->dicts[c]);
            assert_true(tsr_dict_frozen(t->dicts[c]));
        } else {
            assert_null(t->dicts[c]);
        }
    }
}

static const tsr_vector_t *cell(const tsr_table_t *t, size_t row, size_t col, size_t *i)
{
    for (size_t b = 0; b < t->nbatches; b++) {
        if (row < t->batches[b].nrows) {
            *i = row;
            return &t->batches[b].cols[col];
        }
        row -= t->batches[b].nrows;
    }
    fail_msg("row out of range");
    return NULL;
}

static bool is_null(const tsr_table_t *t, size_t row, size_t col)
{
    size_t i;
    const tsr_vector_t *v = cell(t, row, col, &i);
    return tsr_vector_is_null(v, i);
}

static int64_t get_i64(const tsr_table_t *t, size_t row, size_t col)
{
    size_t i;
    const tsr_vector_t *v = cell(t, row, col, &i);
    assert_int_equal(v->type, TSR_TYPE_INT64);
    assert_false(tsr_vector_is_null(v, i));
    return ((const int64_t *)v->data)[i];
}

static double get_f64(const tsr_table_t *t, size_t row, size_t col)
{
    size_t i;
    const tsr_vector_t *v = cell(t, row, col, &i);
    assert_int_equal(v->type, TSR_TYPE_DOUBLE);
    assert_false(tsr_vector_is_null(v, i));
    return ((const double *)v->data)[i];
}

static int get_bool(const tsr_table_t *t, size_t row, size_t col)
{
    size_t i;
    const tsr_vector_t *v = cell(t, row, col, &i);
    assert_int_equal(v->type, TSR_TYPE_BOOL);
    assert_false(tsr_vector_is_null(v, i));
    return ((const uint8_t *)v->data)[i];
}

static const char *get_str(const tsr_table_t *t, size_t row, size_t col, size_t *len)
{
    size_t i;
    const tsr_vector_t *v = cell(t, row, col, &i);
    assert_int_equal(v->type, TSR_TYPE_VARCHAR);
    assert_false(tsr_vector_is_null(v, i));
    return tsr_dict_get(v->dict, ((const uint32_t *)v->data)[i], len);
}

static void assert_str(const tsr_table_t *t, size_t row, size_t col, const char *want)
{
    size_t len;
    const char *s = get_str(t, row, col, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(s, want, len);
}

static tsr_status_t read_csv(const char *data, size_t len, const char *schema, tsr_table_t **out,
                             tsr_error_t *err)
{
    tsr_csv_options_t opts = {0};
    opts.schema = schema;
    tsr_error_clear(err);
    return tsr_csv_read_buffer(NULL, NULL, data, len, "t.csv", "t", &opts, out, err);
}

static tsr_table_t *read_ok_opts(const char *csv, const tsr_csv_options_t *opts)
{
    tsr_table_t *t = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc =
        tsr_csv_read_buffer(NULL, NULL, csv, strlen(csv), "t.csv", "t", opts, &t, &err);
    if (rc != TSR_OK)
        fail_msg("read failed: %s at %d:%d", err.message, err.line, err.column);
    check_table(t, true);
    return t;
}

static tsr_table_t *read_ok(const char *csv, const char *schema)
{
    tsr_csv_options_t opts = {0};
    opts.schema = schema;
    return read_ok_opts(csv, &opts);
}

/* A read that must fail with rc at line:col (0: not checked) with substr in the message. */
static void expect_error(const char *csv, size_t len, const char *schema, tsr_status_t rc, int line,
                         int col, const char *substr)
{
    tsr_table_t *t = NULL;
    tsr_error_t err;
    tsr_status_t got = read_csv(csv, len, schema, &t, &err);
    if (got != rc)
        fail_msg("expected %s, got %s (%s)", tsr_status_name(rc), tsr_status_name(got),
                 err.message);
    assert_null(t);
    assert_int_equal(err.status, rc);
    if (line) {
        if (err.line != line || err.column != col)
            fail_msg("expected %d:%d, got %d:%d (%s)", line, col, err.line, err.column,
                     err.message);
        assert_string_equal(err.file, "t.csv");
    }
    if (substr && !strstr(err.message, substr))
        fail_msg("message '%s' lacks '%s'", err.message, substr);
}

#define EXPECT_ERROR(csv, schema, rc, line, col, substr)                                           \
    expect_error(csv, sizeof(csv) - 1, schema, rc, line, col, substr)

/* ---- basics ----------------------------------------------------------------------- */

static void test_basic_types(void **state)
{
    (void)state;
    tsr_table_t *t = read_ok("id,price,name,ok\n1,2.5,apple,true\n-3,,\"pear, green\",FALSE\n"
                             "+7,1e3,,True\n",
                             NULL);
    assert_int_equal(t->ncols, 4);
    assert_int_equal(t->nrows, 3);
    assert_string_equal(t->name, "t");
    assert_string_equal(t->fields[0].name, "id");
    assert_int_equal(t->fields[0].type, TSR_TYPE_INT64);
    assert_int_equal(t->fields[1].type, TSR_TYPE_DOUBLE);
    assert_int_equal(t->fields[2].type, TSR_TYPE_VARCHAR);
    assert_int_equal(t->fields[3].type, TSR_TYPE_BOOL);
    assert_int_equal(get_i64(t, 0, 0), 1);
    assert_int_equal(get_i64(t, 1, 0), -3);
    assert_int_equal(get_i64(t, 2, 0), 7);
    assert_true(get_f64(t, 0, 1) == 2.5);
    assert_true(is_null(t, 1, 1));
    assert_true(get_f64(t, 2, 1) == 1000.0);
    assert_str(t, 0, 2, "apple");
    assert_str(t, 1, 2, "pear, green");
    assert_true(is_null(t, 2, 2));
    assert_int_equal(get_bool(t, 0, 3), 1);
    assert_int_equal(get_bool(t, 1, 3), 0);
    assert_int_equal(get_bool(t, 2, 3), 1);
    /* no NULL in id/ok: no bitmaps */
    assert_null(t->batches[0].cols[0].validity);
    assert_null(t->batches[0].cols[3].validity);
    assert_non_null(t->batches[0].cols[1].validity);
    tsr_table_destroy(t);
}

static void test_quoting(void **state)
{
    (void)state;
    const char csv[] = "\"a,b\",\"c\"\"d\",e\n"
                       "\"x,y\",\"he said \"\"hi\"\"\",\"\"\"\"\n"
                       "\"multi\nline\",\"cr\r\nlf\",plain\n"
                       "\"\",\"\",\"\"\n"
                       "x\ry,\"a\"\"\",\"\"\"b\"\n";
    tsr_table_t *t = read_ok(csv, NULL);
    assert_string_equal(t->fields[0].name, "a,b");
    assert_string_equal(t->fields[1].name, "c\"d");
    assert_int_equal(t->nrows, 4);
    assert_str(t, 0, 0, "x,y");
    assert_str(t, 0, 1, "he said \"hi\"");
    assert_str(t, 0, 2, "\"");
    assert_str(t, 1, 0, "multi\nline");
    assert_str(t, 1, 1, "cr\r\nlf");
    assert_str(t, 1, 2, "plain");
    for (size_t c = 0; c < 3; c++)
        assert_str(t, 2, c, ""); /* "" is the empty string, not NULL */
    assert_str(t, 3, 0, "x\ry"); /* a lone CR is data */
    assert_str(t, 3, 1, "a\"");
    assert_str(t, 3, 2, "\"b");
    tsr_table_destroy(t);

    /* quoted numbers and booleans are numbers and booleans */
    t = read_ok("a,b,c\n\"12\",\"1.5\",\"true\"\n3,2,false\n", NULL);
    assert_int_equal(t->fields[0].type, TSR_TYPE_INT64);
    assert_int_equal(t->fields[1].type, TSR_TYPE_DOUBLE);
    assert_int_equal(t->fields[2].type, TSR_TYPE_BOOL);
    assert_int_equal(get_i64(t, 0, 0), 12);
    assert_true(get_f64(t, 0, 1) == 1.5);
    tsr_table_destroy(t);
}

static void test_line_ends_bom(void **state)
{
    (void)state;
    const char *inputs[] = {
        "a,b\n1,x\n2,y\n",
        "a,b\n1,x\n2,y",
        "a,b\r\n1,x\r\n2,y\r\n",
        "a,b\r\n1,x\r\n2,y",
        "a,b\r\n1,x\n2,y\r",
        ("\xEF\xBB\xBF"
         "a,b\n1,x\n2,y\n"),
        "a,b\n1,x\n2,y\n\n\n",
        "a,b\n1,x\n2,y\r\n\r\n\n",
    };
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        tsr_table_t *t = read_ok(inputs[k], NULL);
        assert_string_equal(t->fields[0].name, "a");
        assert_string_equal(t->fields[1].name, "b");
        assert_int_equal(t->nrows, 2);
        assert_int_equal(get_i64(t, 1, 0), 2);
        assert_str(t, 0, 1, "x");
        assert_str(t, 1, 1, "y");
        tsr_table_destroy(t);
    }
    /* last field empty at the very end */
    tsr_table_t *t = read_ok("a,b\n1,", NULL);
    assert_int_equal(t->nrows, 1);
    assert_true(is_null(t, 0, 1));
    tsr_table_destroy(t);
}

static void test_header_only_and_single_column(void **state)
{
    (void)state;
    tsr_table_t *t = read_ok("a,b\n", NULL);
    assert_int_equal(t->nrows, 0);
    assert_int_equal(t->nbatches, 0);
    assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR); /* all-NULL: VARCHAR */
    tsr_table_destroy(t);
    t = read_ok("a,b", "a:int64");
    assert_int_equal(t->nrows, 0);
    assert_int_equal(t->fields[0].type, TSR_TYPE_INT64);
    tsr_table_destroy(t);

    /* single column: a blank line in the middle is a NULL, trailing ones are ignored */
    t = read_ok("n\n1\n\n2\n\n\n", NULL);
    assert_int_equal(t->nrows, 3);
    assert_int_equal(t->fields[0].type, TSR_TYPE_INT64);
    assert_int_equal(get_i64(t, 0, 0), 1);
    assert_true(is_null(t, 1, 0));
    assert_int_equal(get_i64(t, 2, 0), 2);
    tsr_table_destroy(t);
}

static void test_nulls_vs_empty(void **state)
{
    (void)state;
    tsr_table_t *t = read_ok("s,i,d,b\n,,,\n\"\",\"\",\"\",\"\"\nx,1,1.5,true\n", NULL);
    assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR);
    assert_int_equal(t->fields[1].type, TSR_TYPE_INT64);
    assert_int_equal(t->fields[2].type, TSR_TYPE_DOUBLE);
    assert_int_equal(t->fields[3].type, TSR_TYPE_BOOL);
    for (size_t c = 0; c < 4; c++)
        assert_true(is_null(t, 0, c));
    assert_str(t, 1, 0, "");
    for (size_t c = 1; c < 4; c++)
        assert_true(is_null(t, 1, c)); /* "" is NULL for non-VARCHAR types */
    assert_str(t, 2, 0, "x");
    tsr_table_destroy(t);

    /* a column of only "" and NULLs is VARCHAR, "" staying the empty string */
    t = read_ok("s\n\"\"\n\n\"\"\n", NULL);
    assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR);
    assert_int_equal(t->nrows, 3);
    assert_str(t, 0, 0, "");
    assert_true(is_null(t, 1, 0));
    assert_str(t, 2, 0, "");
    tsr_table_destroy(t);
}

/* ---- inference --------------------------------------------------------------------- */

static tsr_type_t infer_one(const char *values)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "v\n%s\n", values);
    tsr_table_t *t = read_ok(buf, NULL);
    tsr_type_t type = t->fields[0].type;
    tsr_table_destroy(t);
    return type;
}

static void test_inference(void **state)
{
    (void)state;
    assert_int_equal(infer_one("true\nFALSE\nTrue\ntRuE"), TSR_TYPE_BOOL);
    assert_int_equal(infer_one("1\n0\n1"), TSR_TYPE_INT64);
    assert_int_equal(infer_one("true\n1"), TSR_TYPE_VARCHAR);
    assert_int_equal(infer_one("1\n2.5"), TSR_TYPE_DOUBLE);
    assert_int_equal(infer_one("-1.5E-3\n.5\n5.\n1e5\n+2e+2"), TSR_TYPE_DOUBLE);
    assert_int_equal(infer_one("9223372036854775807\n-9223372036854775808"), TSR_TYPE_INT64);
    assert_int_equal(infer_one("9223372036854775808"), TSR_TYPE_DOUBLE);
    assert_int_equal(infer_one("-9223372036854775809"), TSR_TYPE_DOUBLE);
    assert_int_equal(infer_one("000000000000000000000000001\n-0"), TSR_TYPE_INT64);
    const char *not_numbers[] = {"inf", "nan",   "NaN", "Infinity", "-inf", "-",    "+",   ".",
                                 "e5",  "1e",    "1e+", "0x10",     " 12",  "12 ",  "1,5", "1.2.3",
                                 "--1", "1_000", "t",   "yes",      "1d",   "0x1p3"};
    for (size_t k = 0; k < sizeof(not_numbers) / sizeof(not_numbers[0]); k++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "\"%s\"", not_numbers[k]);
        if (infer_one(buf) != TSR_TYPE_VARCHAR)
            fail_msg("'%s' should be VARCHAR", not_numbers[k]);
    }
    assert_int_equal(infer_one(""), TSR_TYPE_VARCHAR); /* header only */

    tsr_table_t *t = read_ok("i,u\n9223372036854775807,-9223372036854775808\n"
                             "000000000000000000000000042,-0\n",
                             NULL);
    assert_true(get_i64(t, 0, 0) == INT64_MAX);
    assert_true(get_i64(t, 0, 1) == INT64_MIN);
    assert_int_equal(get_i64(t, 1, 0), 42);
    assert_int_equal(get_i64(t, 1, 1), 0);
    tsr_table_destroy(t);
}

/* Builds "v\n<rows...>" where rows[k] = fmt(k). */
static char *gen_col(size_t n, const char *(*fmt)(size_t k, char *buf))
{
    size_t cap = 64 + n * 32, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s, cap, "v,w\n");
    for (size_t k = 0; k < n; k++) {
        char buf[32];
        len += (size_t)snprintf(s + len, cap - len, "%s,%zu\n", fmt(k, buf), k);
    }
    return s;
}

static const char *fmt_int_then_double(size_t k, char *buf)
{
    if (k == 700)
        return "2.5";
    snprintf(buf, 32, "%zu", k);
    return buf;
}

static const char *fmt_int_then_text(size_t k, char *buf)
{
    if (k == 3)
        return "007";
    if (k == 4)
        return "+5";
    if (k == 900)
        return "abc";
    snprintf(buf, 32, "%zu", k);
    return buf;
}

static const char *fmt_bool_then_text(size_t k, char *buf)
{
    (void)buf;
    if (k == 12000)
        return "maybe";
    return k % 3 ? "true" : "False";
}

static const char *fmt_null_then_int(size_t k, char *buf)
{
    if (k < 10)
        return "";
    snprintf(buf, 32, "%zu", k);
    return buf;
}

static void test_widening(void **state)
{
    (void)state;
    tsr_csv_options_t opts = {0};
    opts.sample_rows = 100;
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_csv_tuning_t tune = {.chunk_bytes = 1000, .chunk_rows = 37};
    for (int par = 0; par < 2; par++) {
        char *csv = gen_col(1000, fmt_int_then_double);
        tsr_table_t *t = NULL;
        tsr_error_t err;
        assert_int_equal(tsr_csv_read_buffer_tuned(NULL, par ? pool : NULL, csv, strlen(csv),
                                                   "w.csv", "t", &opts, par ? &tune : NULL, &t,
                                                   &err),
                         TSR_OK);
        check_table(t, !par);
        assert_int_equal(t->fields[0].type, TSR_TYPE_DOUBLE);
        assert_int_equal(t->fields[1].type, TSR_TYPE_INT64);
        for (size_t k = 0; k < 1000; k++)
            assert_true(get_f64(t, k, 0) == (k == 700 ? 2.5 : (double)k));
        tsr_table_destroy(t);
        free(csv);

        csv = gen_col(1000, fmt_int_then_text);
        assert_int_equal(tsr_csv_read_buffer_tuned(NULL, par ? pool : NULL, csv, strlen(csv),
                                                   "w.csv", "t", &opts, par ? &tune : NULL, &t,
                                                   &err),
                         TSR_OK);
        check_table(t, !par);
        assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR);
        assert_str(t, 3, 0, "007"); /* the text as written, not the number */
        assert_str(t, 4, 0, "+5");
        assert_str(t, 900, 0, "abc");
        assert_str(t, 999, 0, "999");
        tsr_table_destroy(t);
        free(csv);

        csv = gen_col(20000, fmt_bool_then_text);
        assert_int_equal(tsr_csv_read_buffer_tuned(NULL, par ? pool : NULL, csv, strlen(csv),
                                                   "w.csv", "t", &opts, par ? &tune : NULL, &t,
                                                   &err),
                         TSR_OK);
        check_table(t, !par);
        assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR);
        assert_str(t, 0, 0, "False");
        assert_str(t, 1, 0, "true");
        assert_str(t, 12000, 0, "maybe");
        assert_int_equal(tsr_dict_size(t->dicts[0]), 3);
        tsr_table_destroy(t);
        free(csv);
    }
    /* an all-NULL sample makes VARCHAR, which later numbers fit */
    opts.sample_rows = 5;
    char *csv = gen_col(50, fmt_null_then_int);
    tsr_table_t *t = read_ok_opts(csv, &opts);
    assert_int_equal(t->fields[0].type, TSR_TYPE_VARCHAR);
    assert_true(is_null(t, 0, 0));
    assert_str(t, 10, 0, "10");
    tsr_table_destroy(t);
    free(csv);
    tsr_pool_destroy(pool);
}

/* ---- schema ------------------------------------------------------------------------ */

static void test_schema(void **state)
{
    (void)state;
    const char *csv = "a,b,c,d\n1,007,2,true\n2,8,,false\n";
    tsr_table_t *t = read_ok(csv, " A : Double ,b:TEXT,c:integer,d:boolean,");
    assert_int_equal(t->fields[0].type, TSR_TYPE_DOUBLE);
    assert_int_equal(t->fields[1].type, TSR_TYPE_VARCHAR);
    assert_int_equal(t->fields[2].type, TSR_TYPE_INT64);
    assert_int_equal(t->fields[3].type, TSR_TYPE_BOOL);
    assert_true(get_f64(t, 1, 0) == 2.0);
    assert_str(t, 0, 1, "007");
    assert_true(is_null(t, 1, 2));
    tsr_table_destroy(t);
    const char *synonyms[][2] = {
        {"int64", "BIGINT"}, {"bigint", "BIGINT"},  {"int", "BIGINT"},      {"float", "DOUBLE"},
        {"real", "DOUBLE"},  {"string", "VARCHAR"}, {"varchar", "VARCHAR"}, {"bool", "BOOLEAN"}};
    for (size_t k = 0; k < sizeof(synonyms) / sizeof(synonyms[0]); k++) {
        char schema[64];
        snprintf(schema, sizeof(schema), "d:%s", synonyms[k][0]);
        t = read_ok("d\n1\n0\n", k >= 7 ? NULL : schema);
        if (k < 7)
            assert_string_equal(tsr_type_name(t->fields[0].type), synonyms[k][1]);
        tsr_table_destroy(t);
    }

    EXPECT_ERROR("a,b\n1,2\n", "c:int", TSR_ERR_NOT_FOUND, 0, 0, "'c'");
    EXPECT_ERROR("a,b\n1,2\n", "a:decimal", TSR_ERR_INVALID_ARG, 0, 0, "decimal");
    EXPECT_ERROR("a,b\n1,2\n", "a", TSR_ERR_INVALID_ARG, 0, 0, "name:type");
    EXPECT_ERROR("a,b\n1,2\n", "a:int,A:double", TSR_ERR_INVALID_ARG, 0, 0, "twice");
    EXPECT_ERROR("a,price\n1,2.5\n2,abc\n", "price:double", TSR_ERR_BAD_INPUT, 3, 3,
                 "column 'price': expected a DOUBLE, found 'abc'");
    EXPECT_ERROR("a,n\n1,2\n2,2.5\n", "n:int64", TSR_ERR_BAD_INPUT, 3, 3,
                 "column 'n': expected a BIGINT, found '2.5'");
    EXPECT_ERROR("a,n\n1,2\n2,\" 3\"\n", "n:int64", TSR_ERR_BAD_INPUT, 3, 3, "found ' 3'");
    EXPECT_ERROR("a,f\n1,true\n2,1\n", "f:bool", TSR_ERR_BAD_INPUT, 3, 3,
                 "expected a BOOLEAN, found '1'");
    EXPECT_ERROR("a,n\n1,9223372036854775808\n", "n:int", TSR_ERR_BAD_INPUT, 2, 3, NULL);
    EXPECT_ERROR("a,d\n1,inf\n", "d:double", TSR_ERR_BAD_INPUT, 2, 3, "found 'inf'");

    /* "did you mean" */
    tsr_table_t *none = NULL;
    tsr_error_t err;
    assert_int_equal(read_csv("price,qty\n1,2\n", 15, "prise:double", &none, &err),
                     TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.hint, "price"));
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    EXPECT_ERROR("a,b\n1,2\n3\n", NULL, TSR_ERR_BAD_INPUT, 3, 2, "expected 2 fields, found 1");
    EXPECT_ERROR("a,b\n1,2\n3,4,5,6\n", NULL, TSR_ERR_BAD_INPUT, 3, 5,
                 "expected 2 fields, found 4");
    EXPECT_ERROR("a,b\r\n1,2\r\n3\r\n", NULL, TSR_ERR_BAD_INPUT, 3, 2, "found 1");
    EXPECT_ERROR("a,b\n1,\"x\n\n", NULL, TSR_ERR_BAD_INPUT, 2, 3, "unterminated");
    EXPECT_ERROR("a,b\n1,2\n3,\"x\"\"\n4,5\n", NULL, TSR_ERR_BAD_INPUT, 3, 3, "unterminated");
    EXPECT_ERROR("a\nab\"c\n", NULL, TSR_ERR_BAD_INPUT, 2, 3, "quote inside an unquoted");
    EXPECT_ERROR("a,b\n\"x\"y,1\n", NULL, TSR_ERR_BAD_INPUT, 2, 4, "after a closing quote");
    EXPECT_ERROR("a,,c\n1,2,3\n", NULL, TSR_ERR_BAD_INPUT, 1, 3, "empty name");
    EXPECT_ERROR("a,b,\n", NULL, TSR_ERR_BAD_INPUT, 1, 5, "empty name");
    EXPECT_ERROR("\xEF\xBB\xBF"
                 "a,,b\n",
                 NULL, TSR_ERR_BAD_INPUT, 1, 3, "empty name");
    EXPECT_ERROR("a,B,b\n", NULL, TSR_ERR_BAD_INPUT, 1, 5, "duplicate column name 'b'");
    EXPECT_ERROR("x,a,y,A,a\n", NULL, TSR_ERR_BAD_INPUT, 1, 7, "duplicate column name 'A'");
    EXPECT_ERROR("a,b\n1,2\n\n3,4\n", NULL, TSR_ERR_BAD_INPUT, 3, 1, "blank line");
    EXPECT_ERROR("", NULL, TSR_ERR_BAD_INPUT, 1, 1, "header");
    EXPECT_ERROR("\xEF\xBB\xBF", NULL, TSR_ERR_BAD_INPUT, 1, 1, "header");
    EXPECT_ERROR("\n\n", NULL, TSR_ERR_BAD_INPUT, 1, 1, "empty name");
    EXPECT_ERROR("a\0b\n1\n", NULL, TSR_ERR_BAD_INPUT, 1, 1, "NUL");
    /* a multi-line quoted field before the error: lines count physical lines */
    EXPECT_ERROR("a,b\n\"x\ny\",1\n1\n", NULL, TSR_ERR_BAD_INPUT, 4, 2, "found 1");
    /* columns count UTF-8 characters */
    EXPECT_ERROR("a,b\n\"\xc3\xa9\",1,2\n", NULL, TSR_ERR_BAD_INPUT, 2, 7, "found 3");
    /* the first error wins even when a later one is on an earlier column */
    EXPECT_ERROR("a,b\n1,2,3\n\"\n", NULL, TSR_ERR_BAD_INPUT, 2, 5, "found 3");

    tsr_csv_options_t opts = {0};
    tsr_table_t *t = NULL;
    tsr_error_t err;
    opts.delimiter = '"';
    assert_int_equal(tsr_csv_read_buffer(NULL, NULL, "a\n", 2, "t.csv", "t", &opts, &t, &err),
                     TSR_ERR_INVALID_ARG);
    assert_null(t);
}

/* Errors deep in a large input, found by a later chunk on 2 threads. */
static size_t row_line(size_t k)
{
    /* rows k' % 1000 == 5 span two lines */
    return 2 + k + k / 1000 + (k % 1000 > 5 ? 1 : 0);
}

static void test_errors_in_later_chunks(void **state)
{
    (void)state;
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    const size_t n = 30000, bad = 25123, early = 400;
    size_t cap = n * 40, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s, cap, "id,s,x\n");
    size_t bad_col = 0;
    for (size_t k = 0; k < n; k++) {
        if (k % 1000 == 5)
            len += (size_t)snprintf(s + len, cap - len, "%zu,\"two\nlines\",%zu\n", k, k);
        else if (k == bad)
            bad_col = (size_t)snprintf(s + len, cap - len, "%zu,\"s%zu\",%zu,", k, k % 77, k) + 1,
            len += (size_t)snprintf(s + len, cap - len, "%zu,\"s%zu\",%zu,x\n", k, k % 77, k);
        else
            len += (size_t)snprintf(s + len, cap - len, "%zu,\"s%zu\",%zu\n", k, k % 77, k);
    }
    const tsr_csv_tuning_t tunes[] = {{0, 0}, {4096, 0}, {1000, 7}, {3, 1}};
    for (size_t k = 0; k < sizeof(tunes) / sizeof(tunes[0]); k++) {
        for (int par = 0; par < 2; par++) {
            tsr_table_t *t = NULL;
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_status_t rc = tsr_csv_read_buffer_tuned(NULL, par ? pool : NULL, s, len, "big.csv",
                                                        "t", NULL, &tunes[k], &t, &err);
            assert_int_equal(rc, TSR_ERR_BAD_INPUT);
            if (err.line != (int)row_line(bad) || err.column != (int)bad_col)
                fail_msg("tune %zu: got %d:%d want %zu:%zu (%s)", k, err.line, err.column,
                         row_line(bad), bad_col, err.message);
            assert_non_null(strstr(err.message, "expected 3 fields, found 4"));
            assert_string_equal(err.file, "big.csv");
        }
    }
    /* an earlier error in another chunk wins: "400,"s.. becomes ""00,"s.. */
    char *p = strstr(s, "\n400,");
    assert_non_null(p);
    p[1] = '"';
    for (size_t k = 0; k < sizeof(tunes) / sizeof(tunes[0]); k++) {
        tsr_table_t *t = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_csv_read_buffer_tuned(NULL, pool, s, len, "big.csv", "t", NULL,
                                                   &tunes[k], &t, &err),
                         TSR_ERR_BAD_INPUT);
        if (err.line != (int)row_line(early) || err.column != 6)
            fail_msg("tune %zu: got %d:%d (%s)", k, err.line, err.column, err.message);
        assert_non_null(strstr(err.message, "closing quote"));
    }
    free(s);
    tsr_pool_destroy(pool);
}

/* ---- doubles ------------------------------------------------------------------------ */

static void test_doubles_exact(void **state)
{
    (void)state;
    const char *fixed[] = {
        "0",
        "-0",
        "0.0",
        "-0.0",
        "1",
        "0.1",
        "0.2",
        "0.3",
        "1e22",
        "1e23",
        "9007199254740992",
        "9007199254740993",
        "9007199254740995",
        "123456789012345678901234567890",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "4.9e-324",
        "5e-324",
        "2e-324",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1e309",
        "-1e309",
        "1e-400",
        "0.000000000000000000000000000001",
        "3.14159265358979323846264338327950288",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.000000000000000111022302462515654042363166809082031250000001",
        ".5",
        "5.",
        "+.5e-0",
        "1E+2",
        "00000.00001",
        "1e0000000000000000000001",
        "100000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000001.5",
    };
    size_t n = sizeof(fixed) / sizeof(fixed[0]) + 3000;
    size_t cap = 64 + n * 300, len = 0;
    char *s = malloc(cap);
    char **texts = calloc(n, sizeof(char *));
    len += (size_t)snprintf(s, cap, "d\n");
    for (size_t k = 0; k < n; k++) {
        char buf[300];
        if (k < sizeof(fixed) / sizeof(fixed[0])) {
            snprintf(buf, sizeof(buf), "%s", fixed[k]);
        } else {
            double v;
            do {
                uint64_t bits = rnd();
                memcpy(&v, &bits, sizeof(v));
            } while (!isfinite(v));
            if (k % 4 == 0)
                v = (double)(int64_t)(rnd() % 2000000) / 1000.0 - 1000.0;
            static const char *fmts[] = {"%.17g", "%.3f", "%e", "%.20e", "%g", "%.1f"};
            snprintf(buf, sizeof(buf), fmts[rndn(6)], v);
        }
        texts[k] = strdup(buf);
        len += (size_t)snprintf(s + len, cap - len, "%s\n", buf);
    }
    tsr_table_t *t = NULL;
    tsr_error_t err;
    assert_int_equal(read_csv(s, len, "d:double", &t, &err), TSR_OK);
    assert_int_equal(t->nrows, n);
    for (size_t k = 0; k < n; k++) {
        double want = strtod(texts[k], NULL), got = get_f64(t, k, 0);
        if (memcmp(&want, &got, sizeof(want)) != 0)
            fail_msg("'%s': got %.17g want %.17g", texts[k], got, want);
        free(texts[k]);
    }
    tsr_table_destroy(t);
    free(texts);
    free(s);
}

/* ---- model: random tables round-trip ---------------------------------------------- */

typedef struct model_col {
    tsr_type_t type;
    bool *null;
    int64_t *i;
    double *d;
    uint8_t *b;
    size_t *s;   /* VARCHAR: index into strs */
    char **strs; /* the column's distinct strings */
    size_t *slens;
    size_t nstrs;
} model_col_t;

typedef struct model {
    size_t ncols, nrows;
    model_col_t *cols;
} model_t;

static void gen_string(char *buf, size_t *len, bool infer)
{
    static const char alpha[] = "abcXYZ ,;|\t\"\r\n'\\0123456789";
    size_t n = rndn(4) == 0 ? 0 : 1 + rndn(12);
    size_t k = 0;
    if (infer) {
        buf[k++] = 'x'; /* never a number or a boolean */
        n++;
    }
    for (; k < n; k++) {
        size_t r = rndn(40);
        if (r < sizeof(alpha) - 1)
            buf[k] = alpha[r];
        else if (r < 38)
            buf[k] = r == 36 ? '\0' : 'm';
        else if (k + 1 < n) { /* a 2-byte UTF-8 character */
            buf[k++] = (char)0xc3;
            buf[k] = (char)0xa9;
        } else {
            buf[k] = 'e';
        }
    }
    *len = n;
}

static void model_gen(model_t *m, size_t ncols, size_t nrows, bool infer)
{
    m->ncols = ncols;
    m->nrows = nrows;
    m->cols = calloc(ncols, sizeof(model_col_t));
    for (size_t c = 0; c < ncols; c++) {
        model_col_t *col = &m->cols[c];
        col->type = (tsr_type_t)(TSR_TYPE_BOOL + rndn(4));
        if (infer && nrows == 0)
            col->type = TSR_TYPE_VARCHAR; /* nothing to infer from */
        col->null = calloc(nrows + 1, sizeof(bool));
        col->i = calloc(nrows + 1, sizeof(int64_t));
        col->d = calloc(nrows + 1, sizeof(double));
        col->b = calloc(nrows + 1, 1);
        col->s = calloc(nrows + 1, sizeof(size_t));
        col->nstrs = 1 + rndn(50);
        col->strs = calloc(col->nstrs, sizeof(char *));
        col->slens = calloc(col->nstrs, sizeof(size_t));
        for (size_t k = 0; k < col->nstrs; k++) {
            col->strs[k] = malloc(32);
            gen_string(col->strs[k], &col->slens[k], infer);
        }
        size_t null_pct = rndn(3) == 0 ? 0 : rndn(30);
        for (size_t r = 0; r < nrows; r++) {
            col->null[r] = rndn(100) < null_pct;
            if (infer && r == 0)
                col->null[r] = false; /* something to infer from */
            if (ncols == 1 && r + 1 == nrows)
                col->null[r] = false; /* else a trailing blank line, which is ignored */
            switch (col->type) {
            case TSR_TYPE_BOOL:
                col->b[r] = rnd() & 1;
                break;
            case TSR_TYPE_INT64: {
                size_t kind = rndn(4);
                col->i[r] = kind == 0   ? (int64_t)rnd()
                            : kind == 1 ? (int64_t)rndn(100) - 50
                            : kind == 2 ? (rnd() & 1 ? INT64_MAX : INT64_MIN)
                                        : (int64_t)(rnd() % 1000000000);
                break;
            }
            case TSR_TYPE_DOUBLE: {
                double v;
                if (rnd() & 1) {
                    v = ((double)(int64_t)(rnd() % 200000) - 100000.0) / 100.0;
                } else {
                    do {
                        uint64_t bits = rnd();
                        memcpy(&v, &bits, sizeof(v));
                    } while (!isfinite(v));
                }
                col->d[r] = v;
                break;
            }
            default:
                col->s[r] = rndn(col->nstrs);
                break;
            }
        }
    }
}

static void model_free(model_t *m)
{
    for (size_t c = 0; c < m->ncols; c++) {
        model_col_t *col = &m->cols[c];
        for (size_t k = 0; k < col->nstrs; k++)
            free(col->strs[k]);
        free(col->strs);
        free(col->slens);
        free(col->null);
        free(col->i);
        free(col->d);
        free(col->b);
        free(col->s);
    }
    free(m->cols);
}

typedef struct strbuf {
    char *p;
    size_t len, cap;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(strbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_field(strbuf_t *b, const char *s, size_t n, char delim, bool force_quote)
{
    bool need = force_quote || n == 0;
    for (size_t k = 0; k < n && !need; k++)
        need = s[k] == delim || s[k] == '"' || s[k] == '\r' || s[k] == '\n';
    if (!need) {
        sb_add(b, s, n);
        return;
    }
    sb_add(b, "\"", 1);
    for (size_t k = 0; k < n; k++) {
        if (s[k] == '"')
            sb_add(b, "\"", 1);
        sb_add(b, &s[k], 1);
    }
    sb_add(b, "\"", 1);
}

static char *model_write(const model_t *m, char delim, bool infer, size_t *len_out)
{
    strbuf_t b = {0};
    int ends = (int)rndn(3); /* LF, CRLF, mixed */
    if (rndn(4) == 0)
        sb_str(&b, "\xEF\xBB\xBF");
    for (size_t c = 0; c < m->ncols; c++) {
        char name[32];
        snprintf(name, sizeof(name), rnd() & 1 ? "col %zu" : "COL %zu", c);
        if (c)
            sb_add(&b, &delim, 1);
        sb_field(&b, name, strlen(name), delim, rndn(4) == 0);
    }
    for (size_t r = 0; r <= m->nrows; r++) {
        bool crlf = ends == 1 || (ends == 2 && (rnd() & 1));
        if (r == m->nrows) { /* after the last row: optional newline, blank lines */
            size_t extra = rndn(4);
            if (extra == 0)
                break;
            while (extra--)
                sb_str(&b, crlf ? "\r\n" : "\n");
            break;
        }
        sb_str(&b, crlf ? "\r\n" : "\n");
        for (size_t c = 0; c < m->ncols; c++) {
            const model_col_t *col = &m->cols[c];
            if (c)
                sb_add(&b, &delim, 1);
            bool q = rndn(5) == 0;
            if (col->null[r]) {
                /* NULL: empty, or "" for non-VARCHAR types */
                if (col->type != TSR_TYPE_VARCHAR && q)
                    sb_str(&b, "\"\"");
                continue;
            }
            char buf[64];
            switch (col->type) {
            case TSR_TYPE_BOOL: {
                const char *v =
                    col->b[r] ? (rnd() & 1 ? "true" : "TRUE") : (rnd() & 1 ? "false" : "False");
                sb_field(&b, v, strlen(v), delim, q);
                break;
            }
            case TSR_TYPE_INT64:
                snprintf(buf, sizeof(buf), "%lld", (long long)col->i[r]);
                sb_field(&b, buf, strlen(buf), delim, q);
                break;
            case TSR_TYPE_DOUBLE:
                snprintf(buf, sizeof(buf), "%.17g", col->d[r]);
                if (infer && !strpbrk(buf, ".e"))
                    strcat(buf, ".0"); /* else it reads as an integer */
                sb_field(&b, buf, strlen(buf), delim, q);
                break;
            default:
                sb_field(&b, col->strs[col->s[r]], col->slens[col->s[r]], delim, q);
                break;
            }
        }
    }
    *len_out = b.len;
    return b.p;
}

static void model_compare(const model_t *m, const tsr_table_t *t)
{
    assert_int_equal(t->ncols, m->ncols);
    assert_int_equal(t->nrows, m->nrows);
    for (size_t c = 0; c < m->ncols; c++) {
        const model_col_t *col = &m->cols[c];
        char name[32];
        snprintf(name, sizeof(name), "col %zu", c);
        assert_true(strcasecmp(t->fields[c].name, name) == 0);
        assert_int_equal(t->fields[c].type, col->type);
        /* codes in order of first appearance */
        uint32_t next_code = 0;
        size_t row = 0;
        for (size_t b = 0; b < t->nbatches; b++) {
            const tsr_vector_t *v = &t->batches[b].cols[c];
            for (size_t i = 0; i < v->len; i++, row++) {
                if (col->null[row]) {
                    if (!tsr_vector_is_null(v, i))
                        fail_msg("col %zu row %zu: want NULL", c, row);
                    continue;
                }
                if (tsr_vector_is_null(v, i))
                    fail_msg("col %zu row %zu: unexpected NULL", c, row);
                switch (col->type) {
                case TSR_TYPE_BOOL:
                    assert_int_equal(((const uint8_t *)v->data)[i], col->b[row]);
                    break;
                case TSR_TYPE_INT64:
                    assert_true(((const int64_t *)v->data)[i] == col->i[row]);
                    break;
                case TSR_TYPE_DOUBLE:
                    assert_memory_equal(&((const double *)v->data)[i], &col->d[row],
                                        sizeof(double));
                    break;
                default: {
                    uint32_t code = ((const uint32_t *)v->data)[i];
                    size_t len;
                    const char *s = tsr_dict_get(v->dict, code, &len);
                    if (len != col->slens[col->s[row]] ||
                        memcmp(s, col->strs[col->s[row]], len) != 0)
                        fail_msg("col %zu row %zu: string differs", c, row);
                    assert_true(code <= next_code);
                    if (code == next_code)
                        next_code++;
                    break;
                }
                }
            }
        }
        if (col->type == TSR_TYPE_VARCHAR)
            assert_int_equal(tsr_dict_size(t->dicts[c]), next_code);
    }
}

static void round_trip(tsr_pool_t *pool, size_t ncols, size_t nrows, bool infer,
                       const tsr_csv_tuning_t *tune)
{
    model_t m;
    model_gen(&m, ncols, nrows, infer);
    static const char delims[] = ",;\t|";
    char delim = delims[rndn(4)];
    size_t len;
    char *csv = model_write(&m, delim, infer, &len);
    char schema[1024] = "";
    size_t sl = 0;
    tsr_csv_options_t opts = {0};
    opts.delimiter = delim;
    if (!infer) {
        static const char *names[] = {"", "bool", "int64", "double", "varchar"};
        for (size_t c = 0; c < ncols; c++)
            sl += (size_t)snprintf(schema + sl, sizeof(schema) - sl, "%sCol %zu:%s", c ? "," : "",
                                   c, names[m.cols[c].type]);
        opts.schema = schema;
        opts.sample_rows = 1 + rndn(5); /* the schema, not the sample, decides */
    }
    tsr_table_t *t = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc =
        tsr_csv_read_buffer_tuned(NULL, pool, csv, len, "rt.csv", "t", &opts, tune, &t, &err);
    if (rc != TSR_OK)
        fail_msg("round trip: %s at %d:%d", err.message, err.line, err.column);
    check_table(t, !tune || !tune->chunk_rows);
    model_compare(&m, t);
    tsr_table_destroy(t);
    free(csv);
    model_free(&m);
}

static void test_round_trip(void **state)
{
    (void)state;
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    for (int iter = 0; iter < 60; iter++) {
        size_t ncols = 1 + rndn(5);
        static const size_t sizes[] = {0, 1, 2, 3, 7, 31, 127, 1000, 8191, 8192, 8193};
        size_t nrows = sizes[rndn(sizeof(sizes) / sizeof(sizes[0]))];
        tsr_csv_tuning_t tune = {1 + rndn(2000), rndn(3) ? 1 + rndn(50) : 0};
        bool infer = iter % 2;
        round_trip(iter % 3 ? pool : NULL, ncols, nrows, infer, iter % 4 ? &tune : NULL);
    }
    tsr_pool_destroy(pool);
}

/* ---- large inputs ------------------------------------------------------------------ */

/* name column: "q,N" (quoted) every 7th row when quoted, else "qN"; "nN" otherwise */
static char *gen_large(size_t n, bool quoted, size_t *len_out)
{
    size_t cap = 64 + n * 64, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s, cap, "id,val,name,flag\n");
    for (size_t k = 0; k < n; k++) {
        size_t id = (k * 7919) % 1009;
        char name[32];
        if (k % 7)
            snprintf(name, sizeof(name), "n%zu", id);
        else
            snprintf(name, sizeof(name), quoted ? "\"q,%zu\"" : "q%zu", id);
        len += (size_t)snprintf(s + len, cap - len, "%zu,%zu.%02zu,%s,%s\n", k, k % 1000, k % 100,
                                name, k % 5 ? "true" : "");
    }
    *len_out = len;
    return s;
}

static void check_large(const tsr_table_t *t, size_t n, bool quoted)
{
    assert_int_equal(t->nrows, n);
    assert_int_equal(t->fields[0].type, TSR_TYPE_INT64);
    assert_int_equal(t->fields[1].type, TSR_TYPE_DOUBLE);
    assert_int_equal(t->fields[2].type, TSR_TYPE_VARCHAR);
    assert_int_equal(t->fields[3].type, TSR_TYPE_BOOL);
    size_t row = 0;
    for (size_t b = 0; b < t->nbatches; b++) {
        const tsr_batch_t *bt = &t->batches[b];
        for (size_t i = 0; i < bt->nrows; i++, row++) {
            assert_true(((const int64_t *)bt->cols[0].data)[i] == (int64_t)row);
            char want[32];
            snprintf(want, sizeof(want), "%zu.%02zu", row % 1000, row % 100);
            assert_true(((const double *)bt->cols[1].data)[i] == strtod(want, NULL));
            snprintf(want, sizeof(want),
                     row % 7  ? "n%zu"
                     : quoted ? "q,%zu"
                              : "q%zu",
                     (row * 7919) % 1009);
            size_t len;
            const char *s =
                tsr_dict_get(bt->cols[2].dict, ((const uint32_t *)bt->cols[2].data)[i], &len);
            assert_int_equal(len, strlen(want));
            assert_memory_equal(s, want, len);
            assert_int_equal(tsr_vector_is_null(&bt->cols[3], i), row % 5 == 0);
        }
    }
}

static void test_large(void **state)
{
    (void)state;
    size_t n = 100003, len;
    char *s = gen_large(n, true, &len);
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    const tsr_csv_tuning_t tunes[] = {{0, 0}, {65536, 0}, {100000, 0}, {5000, 3}};
    tsr_table_t *first = NULL;
    for (size_t k = 0; k < sizeof(tunes) / sizeof(tunes[0]); k++) {
        for (int par = 0; par < 2; par++) {
            tsr_table_t *t = NULL;
            tsr_error_t err;
            assert_int_equal(tsr_csv_read_buffer_tuned(NULL, par ? pool : NULL, s, len, "large.csv",
                                                       "t", NULL, &tunes[k], &t, &err),
                             TSR_OK);
            check_table(t, tunes[k].chunk_rows == 0);
            check_large(t, n, true);
            if (!first) {
                first = t;
                assert_int_equal(t->nbatches, (n + TSR_BATCH_ROWS - 1) / TSR_BATCH_ROWS);
                continue;
            }
            /* the same codes whatever the chunking: first-appearance order */
            size_t row = 0;
            for (size_t bb = 0; bb < t->nbatches; bb++) {
                for (size_t i = 0; i < t->batches[bb].nrows; i++, row++) {
                    size_t j;
                    const tsr_vector_t *v = cell(first, row, 2, &j);
                    assert_int_equal(((const uint32_t *)t->batches[bb].cols[2].data)[i],
                                     ((const uint32_t *)v->data)[j]);
                }
            }
            tsr_table_destroy(t);
        }
    }
    tsr_table_destroy(first);
    tsr_pool_destroy(pool);
    free(s);
}

/* ---- files ------------------------------------------------------------------------- */

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/tsr_csv_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/data.csv", dir);
    size_t n = 20000, len;
    char *s = gen_large(n, false, &len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, len, f), len);
    fclose(f);
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_read_file(NULL, pool, path, "data", NULL, &t, &err), TSR_OK);
    check_table(t, true);
    assert_int_equal(t->nrows, n);
    assert_string_equal(t->name, "data");
    check_large(t, n, false);
    tsr_table_destroy(t);

    /* errors carry the path */
    f = fopen(path, "wb");
    fputs("a,b\n1,2\n3\n", f);
    fclose(f);
    t = NULL;
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_read_file(NULL, pool, path, "data", NULL, &t, &err),
                     TSR_ERR_BAD_INPUT);
    assert_string_equal(err.file, path);
    assert_int_equal(err.line, 3);

    /* an empty file has no header */
    f = fopen(path, "wb");
    fclose(f);
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_read_file(NULL, pool, path, "data", NULL, &t, &err),
                     TSR_ERR_BAD_INPUT);

    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.csv", dir);
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_read_file(NULL, pool, missing, "m", NULL, &t, &err),
                     TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.message, missing));
    tsr_error_clear(&err);
    assert_int_equal(tsr_csv_read_file(NULL, pool, dir, "m", NULL, &t, &err), TSR_ERR_IO);
    assert_non_null(strstr(err.message, dir));
    assert_null(t);

    unlink(path);
    rmdir(dir);
    tsr_pool_destroy(pool);
    free(s);
}

/* ---- fault injection --------------------------------------------------------------- */

static void fault_loop(tsr_pool_t *pool, const char *path, const char *csv, size_t len,
                       const char *schema, size_t sample, const tsr_csv_tuning_t *tune)
{
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_csv_options_t opts = {0};
    opts.schema = schema;
    opts.sample_rows = sample;
    for (long n = 0;; n++) {
        assert_true(n < 100000);
        tsr_mem_fail_after(&mem, n);
        long before = atomic_load(&mem.failures);
        tsr_table_t *t = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t rc = path ? tsr_csv_read_file(&mem, pool, path, "t", &opts, &t, &err)
                               : tsr_csv_read_buffer_tuned(&mem, pool, csv, len, "f.csv", "t",
                                                           &opts, tune, &t, &err);
        bool failed = atomic_load(&mem.failures) != before;
        tsr_mem_fail_after(&mem, -1);
        if (rc == TSR_OK) {
            assert_false(failed); /* an allocation failure is never swallowed */
            check_table(t, !tune || !tune->chunk_rows);
            tsr_table_destroy(t);
            break;
        }
        if (rc != TSR_ERR_NOMEM)
            fail_msg("n=%ld: %s (%s)", n, tsr_status_name(rc), err.message);
        assert_int_equal(err.status, TSR_ERR_NOMEM);
        assert_null(t);
    }
}

static void test_fault_injection(void **state)
{
    (void)state;
    const char csv[] = "id,s,d,b,w\n1,\"a\"\"b\",1.5,true,1\n2,x,,false,2\n3,\"y\",2.5e400,,3\n"
                       "4,x,\"1.0000000000000000000000000000000000000000000000000000000000000000"
                       "000000000000000000000000000000000000000000000000000000000000000000000001\","
                       "true,4.5\n5,zz,7,true,\n6,,8,false,x\n7,x,1,true,7\n8,9,1.5,true,8\n";
    tsr_pool_t *pool = NULL;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_csv_tuning_t tune = {16, 2};
    fault_loop(NULL, NULL, csv, sizeof(csv) - 1, NULL, 0, NULL);
    fault_loop(NULL, NULL, csv, sizeof(csv) - 1, NULL, 0, &tune);
    fault_loop(pool, NULL, csv, sizeof(csv) - 1, NULL, 0, &tune);
    fault_loop(pool, NULL, csv, sizeof(csv) - 1, "id:double,b:varchar", 0, &tune);
    /* widening past a one-row sample: w goes INT64 -> DOUBLE -> VARCHAR */
    fault_loop(pool, NULL, csv, sizeof(csv) - 1, NULL, 1, &tune);
    fault_loop(NULL, NULL, csv, sizeof(csv) - 1, NULL, 1, NULL);
    char dir[] = "/tmp/tsr_csv_fault_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/f.csv", dir);
    FILE *f = fopen(path, "wb");
    fwrite(csv, 1, sizeof(csv) - 1, f);
    fclose(f);
    fault_loop(pool, path, NULL, 0, NULL, 0, NULL);
    unlink(path);
    rmdir(dir);
    tsr_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_types),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_line_ends_bom),
        cmocka_unit_test(test_header_only_and_single_column),
        cmocka_unit_test(test_nulls_vs_empty),
        cmocka_unit_test(test_inference),
        cmocka_unit_test(test_widening),
        cmocka_unit_test(test_schema),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_errors_in_later_chunks),
        cmocka_unit_test(test_doubles_exact),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
