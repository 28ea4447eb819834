/*
 * test_sched_proto.c - the scheduler protocol's progress message and graph
 * values (scheduler/proto.c): round trips, every truncation refused, version
 * rules, a graph handle's table encoded and read back value for value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "scheduler.h"

static void test_progress(void **state)
{
    (void)state;
    tsr_progress_t p = {
        .job = 7, .done = 3, .total = 9, .rows = 123456789012ull, .elapsed_ms = 250};
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_progress(&b, &p);
    assert_false(b.failed);
    assert_int_equal(b.len, 33);
    tsr_progress_t q;
    assert_true(tsr_proto_decode_progress(b.data, b.len, &q));
    assert_int_equal(q.job, 7);
    assert_int_equal(q.done, 3);
    assert_int_equal(q.total, 9);
    assert_int_equal(q.rows, 123456789012ull);
    assert_int_equal(q.elapsed_ms, 250);
    for (size_t n = 0; n < b.len; n++) /* every truncation */
        assert_false(tsr_proto_decode_progress(b.data, n, &q));
    /* version 1 with a trailing byte is malformed; version 2 may append */
    tsr_wbuf_u8(&b, 0xee);
    assert_false(tsr_proto_decode_progress(b.data, b.len, &q));
    b.data[0] = 2;
    assert_true(tsr_proto_decode_progress(b.data, b.len, &q));
    assert_int_equal(q.total, 9);
    b.data[0] = 0;
    assert_false(tsr_proto_decode_progress(b.data, b.len, &q));
    tsr_wbuf_free(&b);
}

static tsr_status_t fill_table(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                               tsr_data_t *const *out, size_t nout)
{
    (void)in, (void)nin, (void)nout;
    enum { N = 8193 }; /* more than one batch */
    int64_t *iv = malloc(N * sizeof(int64_t));
    double *dv = malloc(N * sizeof(double));
    const char **sv = malloc(N * sizeof(char *));
    bool *nulls = malloc(N * sizeof(bool));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (iv && dv && sv && nulls) {
        static const char *words[] = {"", "a", "b\"c", "naïve"};
        for (size_t r = 0; r < N; r++) {
            iv[r] = (int64_t)r * 1000003 - 77;
            dv[r] = (double)r / 7.0;
            sv[r] = words[r % 4];
            nulls[r] = r % 5 == 0;
        }
        tsr_column_data_t cols[] = {
            {.name = "i", .type = TSR_TYPE_INT64, .values = iv, .nulls = nulls},
            {.name = "d", .type = TSR_TYPE_DOUBLE, .values = dv},
            {.name = "s", .type = TSR_TYPE_VARCHAR, .values = sv},
        };
        rc = tsr_data_set_columns(tc, out[0], 3, cols, N);
    }
    free(iv);
    free(dv);
    free(sv);
    free(nulls);
    return rc;
}

static void test_values(void **state)
{
    (void)state;
    tsr_context_t *ctx = NULL;
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_task_def_t def = {.name = "fill", .cpu = fill_table};
    assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
    tsr_data_t *out = NULL, *bytes = NULL;
    assert_int_equal(tsr_graph_data(g, "t", &out), TSR_OK);
    assert_int_equal(tsr_graph_data_bytes(g, "b", "xyz", 3, &bytes), TSR_OK);
    tsr_task_params_t tp = {.kind = "fill", .noutputs = 1, .outputs = &out};
    assert_int_equal(tsr_graph_add(g, &tp, NULL), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 20000), TSR_OK);

    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    assert_int_equal(tsr_proto_encode_data(&b, out), TSR_OK);
    tsr_rbuf_t r;
    tsr_value_t v;
    tsr_rbuf_init(&r, b.data, b.len);
    assert_true(tsr_proto_read_value(&r, &v));
    assert_true(tsr_rbuf_done(&r));
    assert_int_equal(v.kind, TSR_DATA_TABLE);
    tsr_rtab_t t;
    tsr_error_t e;
    tsr_error_clear(&e);
    assert_int_equal(tsr_proto_decode_rtab(NULL, v.body, v.len, &t, &e), TSR_OK);
    assert_int_equal(t.nrows, tsr_data_row_count(out));
    assert_int_equal(t.ncols, 3);
    for (size_t row = 0; row < t.nrows; row++) {
        assert_int_equal(t.nulls[0][row], tsr_data_is_null(out, row, 0));
        if (!t.nulls[0][row])
            assert_int_equal(((int64_t *)t.values[0])[row], tsr_data_int64(out, row, 0));
        assert_true(((double *)t.values[1])[row] == tsr_data_double(out, row, 1));
        assert_string_equal(((const char **)t.values[2])[row], tsr_data_string(out, row, 2, NULL));
    }
    tsr_proto_rtab_free(NULL, &t);
    /* a truncated value is refused, at every length */
    for (size_t n = 0; n < b.len; n += 1 + n / 3) {
        tsr_rbuf_init(&r, b.data, n);
        assert_false(tsr_proto_read_value(&r, &v));
    }
    /* bytes round-trip through write_value */
    tsr_wbuf_t c;
    tsr_wbuf_init(&c, NULL);
    assert_int_equal(tsr_proto_encode_data(&c, bytes), TSR_OK);
    tsr_rbuf_init(&r, c.data, c.len);
    assert_true(tsr_proto_read_value(&r, &v));
    assert_int_equal(v.kind, TSR_DATA_BYTES);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.body, "xyz", 3);
    tsr_wbuf_t d;
    tsr_wbuf_init(&d, NULL);
    tsr_proto_write_value(&d, &v);
    assert_int_equal(d.len, c.len);
    assert_memory_equal(d.data, c.data, c.len);
    /* an unknown kind is refused */
    d.data[0] = 9;
    tsr_rbuf_init(&r, d.data, d.len);
    assert_false(tsr_proto_read_value(&r, &v));
    tsr_wbuf_free(&b);
    tsr_wbuf_free(&c);
    tsr_wbuf_free(&d);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* SQL requests with and without the device trailer: round trips, every
 * truncation refused except the one cut exactly before the trailer (an old
 * client's request: no constraint), invalid spellings and trailing bytes
 * refused. */
static void test_sql_req(void **state)
{
    (void)state;
    const tsr_client_table_t tabs[2] = {{"t", "/data/t.csv", "a:int64"}, {"u", "/u.csv", NULL}};
    static const char *const NEEDS[][2] = {
        {NULL, NULL}, {"", "gpu"}, {"cuda", ""}, {"opencl1", "gpu"}, {"", ""}};
    for (size_t k = 0; k < sizeof(NEEDS) / sizeof(NEEDS[0]); k++) {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_proto_encode_sql_req(&b, "SELECT 1", ';', tabs, 2, NEEDS[k][0], NEEDS[k][1]);
        assert_false(b.failed);
        tsr_sql_req_t q;
        assert_true(tsr_proto_decode_sql_req(b.data, b.len, &q));
        assert_string_equal(q.sql, "SELECT 1");
        assert_int_equal(q.delim, ';');
        assert_int_equal(q.ntables, 2);
        assert_string_equal(q.names[1], "u");
        assert_string_equal(q.paths[0], "/data/t.csv");
        assert_string_equal(q.schemas[0], "a:int64");
        assert_string_equal(q.schemas[1], "");
        assert_string_equal(q.need, NEEDS[k][0] ? NEEDS[k][0] : "");
        assert_string_equal(q.prefer, NEEDS[k][0] && NEEDS[k][1] ? NEEDS[k][1] : "");
        /* the request without trailer ends here */
        tsr_wbuf_t base;
        tsr_wbuf_init(&base, NULL);
        tsr_proto_encode_sql_req(&base, "SELECT 1", ';', tabs, 2, NULL, NULL);
        for (size_t cut = 0; cut < b.len; cut++)
            assert_int_equal(tsr_proto_decode_sql_req(b.data, cut, &q), cut == base.len);
        tsr_wbuf_u8(&b, 0); /* a trailing byte */
        assert_false(tsr_proto_decode_sql_req(b.data, b.len, &q));
        tsr_wbuf_free(&base);
        tsr_wbuf_free(&b);
    }
    static const char *const BAD[][2] = {
        {"cpu", ""}, {"", "auto"}, {"tpu", ""}, {"cuda-1", ""}, {"", "CUDA"}};
    for (size_t k = 0; k < sizeof(BAD) / sizeof(BAD[0]); k++) {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_proto_encode_sql_req(&b, "SELECT 1", ',', NULL, 0, BAD[k][0], BAD[k][1]);
        tsr_sql_req_t q;
        assert_false(tsr_proto_decode_sql_req(b.data, b.len, &q));
        tsr_wbuf_free(&b);
    }
    /* too many tables */
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_str(&b, "SELECT 1");
    tsr_wbuf_u8(&b, ',');
    tsr_wbuf_u32(&b, TSR_SQL_REQ_MAX_TABLES + 1);
    for (size_t i = 0; i <= TSR_SQL_REQ_MAX_TABLES; i++) {
        tsr_wbuf_str(&b, "t");
        tsr_wbuf_str(&b, "/t");
        tsr_wbuf_str(&b, "");
    }
    tsr_sql_req_t q;
    assert_false(tsr_proto_decode_sql_req(b.data, b.len, &q));
    tsr_wbuf_free(&b);
}

/* The user's words as constraints, and the pair's reader alone. */
static void test_device_words(void **state)
{
    (void)state;
    static const char *const W[][3] = {
        {NULL, "", "gpu"},        {"", "", "gpu"},        {"auto", "", "gpu"},
        {"cpu", "", ""},          {"gpu", "gpu", ""},     {"cuda", "cuda", ""},
        {"opencl", "opencl", ""}, {"cuda0", "cuda0", ""}, {"opencl12", "opencl12", ""},
    };
    for (size_t k = 0; k < sizeof(W) / sizeof(W[0]); k++) {
        const char *need = "x", *prefer = "x";
        assert_true(tsr_proto_device_constraint(W[k][0], &need, &prefer));
        assert_string_equal(need, W[k][1]);
        assert_string_equal(prefer, W[k][2]);
    }
    static const char *const BAD[] = {"tpu", "Cuda", "cuda_0", "opencl-1", "cpu0", " cuda"};
    for (size_t k = 0; k < sizeof(BAD) / sizeof(BAD[0]); k++) {
        const char *need, *prefer;
        assert_false(tsr_proto_device_constraint(BAD[k], &need, &prefer));
    }
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_device(&b, "cuda1", "gpu");
    for (size_t cut = 0; cut <= b.len; cut++) {
        tsr_rbuf_t r;
        const char *need, *prefer;
        tsr_rbuf_init(&r, b.data, cut);
        bool ok = tsr_proto_read_device(&r, &need, &prefer);
        assert_int_equal(ok, cut == b.len);
        assert_int_equal(r.bad, cut != b.len);
        if (ok) {
            assert_string_equal(need, "cuda1");
            assert_string_equal(prefer, "gpu");
        } else {
            assert_string_equal(need, "");
        }
    }
    tsr_wbuf_free(&b);
}

/* What a C API graph task carries to the scheduler (graph_client.c): its
 * tsr_graph_task_set_device word, else its kind's kernels as a preference. */
static void test_graph_task_constraint(void **state)
{
    (void)state;
    tsr_context_t *ctx = NULL;
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    static const tsr_task_def_t defs[] = {
        {.name = "plain", .cpu = fill_table},
        {.name = "cl", .cpu = fill_table, .opencl_kernel = "k_cl"},
        {.name = "cu", .cpu = fill_table, .cuda_kernel = "k_cu"},
        {.name = "both", .cpu = fill_table, .opencl_kernel = "k_cl", .cuda_kernel = "k_cu"},
    };
    static const char *const want_prefer[] = {NULL, "opencl", "cuda", "gpu"};
    tsr_task_t *t[4];
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(tsr_graph_register(g, &defs[k]), TSR_OK);
        tsr_data_t *out = NULL;
        assert_int_equal(tsr_graph_data(g, NULL, &out), TSR_OK);
        tsr_task_params_t tp = {.kind = defs[k].name, .noutputs = 1, .outputs = &out};
        assert_int_equal(tsr_graph_add(g, &tp, &t[k]), TSR_OK);
        const char *need = "x", *prefer = "x";
        tsr_graph_task_constraint(t[k], &need, &prefer);
        assert_null(need);
        if (want_prefer[k])
            assert_string_equal(prefer, want_prefer[k]);
        else
            assert_null(prefer);
    }
    /* the user's word wins over the kernels */
    static const char *const W[][3] = {
        {"cuda", "cuda", NULL}, {"opencl1", "opencl1", NULL}, {"auto", NULL, "gpu"},
        {"cpu", NULL, NULL},    {"gpu", "gpu", NULL},
    };
    for (size_t k = 0; k < sizeof(W) / sizeof(W[0]); k++) {
        assert_int_equal(tsr_graph_task_set_device(t[3], W[k][0]), TSR_OK);
        const char *need = "x", *prefer = "x";
        tsr_graph_task_constraint(t[3], &need, &prefer);
        if (W[k][1])
            assert_string_equal(need, W[k][1]);
        else
            assert_null(need);
        if (W[k][2])
            assert_string_equal(prefer, W[k][2]);
        else
            assert_null(prefer);
    }
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_sql_req),
        cmocka_unit_test(test_device_words),
        cmocka_unit_test(test_graph_task_constraint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
