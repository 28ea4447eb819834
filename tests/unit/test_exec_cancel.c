/*
 * test_exec_cancel.c - interrupting a running query (exec.h "Cancel",
 * context.h cancel tokens): a token set before a query stops it at once; a
 * token set from another thread while a long query runs stops it within a
 * bound far below its full runtime, with everything freed (ASan); a token
 * installed but never set, or set at random moments, never changes the
 * rows of a query that completes (checked against a run without a token and
 * against a model computed here).
 *
 * The long query is a self-join with 1/8 of all row pairs matching and a
 * residual predicate no pair passes: its work is quadratic (5e9 pairs: about
 * 15 s on 2 threads of the 2-vCPU VM, release) while it holds no output, so
 * only the cancel checks can end it early.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tessera/tessera.h"

#define LONG_ROWS 200000  /* the long self-join: LONG_ROWS^2 / 8 pairs */
#define SHAPE_ROWS 300007 /* a prime, many batches of 8192 */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

/* Table name(k, v, s) of n rows: k = i % kmod, v = i, s one of 5 strings. */
static void register_table(tsr_context_t *ctx, const char *name, size_t n, int64_t kmod)
{
    static const char *const S[] = {"ant", "bee", "cat", "dog", "eel"};
    int64_t *k = malloc(n * sizeof(*k)), *v = malloc(n * sizeof(*v));
    const char **s = malloc(n * sizeof(*s));
    assert_non_null(k);
    assert_non_null(v);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        k[i] = (int64_t)i % kmod;
        v[i] = (int64_t)i;
        s[i] = S[(i * 7) % 5];
    }
    tsr_column_data_t cols[] = {{.name = "k", .type = TSR_TYPE_INT64, .values = k},
                                {.name = "v", .type = TSR_TYPE_INT64, .values = v},
                                {.name = "s", .type = TSR_TYPE_VARCHAR, .values = s}};
    assert_int_equal(tsr_table_register_columns(ctx, name, 3, cols, n), TSR_OK);
    free(k);
    free(v);
    free(s);
}

/* Every cell of res as text, one line per row (the comparison of results). */
static char *result_text(const tsr_result_t *res)
{
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t r = 0; r < tsr_result_row_count(res); r++) {
        for (size_t c = 0; c < tsr_result_column_count(res); c++) {
            char cell[128];
            if (tsr_result_is_null(res, r, c))
                snprintf(cell, sizeof(cell), "NULL|");
            else if (tsr_result_column_type(res, c) == TSR_TYPE_INT64)
                snprintf(cell, sizeof(cell), "%lld|", (long long)tsr_result_int64(res, r, c));
            else if (tsr_result_column_type(res, c) == TSR_TYPE_DOUBLE)
                snprintf(cell, sizeof(cell), "%.17g|", tsr_result_double(res, r, c));
            else if (tsr_result_column_type(res, c) == TSR_TYPE_BOOL)
                snprintf(cell, sizeof(cell), "%d|", (int)tsr_result_bool(res, r, c));
            else
                snprintf(cell, sizeof(cell), "%s|", tsr_result_string(res, r, c, NULL));
            size_t l = strlen(cell);
            while (len + l + 2 > cap) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            memcpy(out + len, cell, l + 1);
            len += l;
        }
        out[len++] = '\n';
        out[len] = '\0';
    }
    return out;
}

/* Runs sql, returns its rows as text (NULL: it failed, *rc says why). */
static char *run_text(tsr_context_t *ctx, const char *sql, tsr_status_t *rc)
{
    tsr_result_t *res = NULL;
    *rc = tsr_query(ctx, sql, &res);
    if (*rc != TSR_OK) {
        assert_null(res);
        return NULL;
    }
    char *text = result_text(res);
    tsr_result_destroy(res);
    return text;
}

/* Sets the token after delay_us, from its own thread. */
typedef struct setter {
    tsr_cancel_t *cancel;
    long delay_us;
    uint64_t set_ms; /* when it was set */
    pthread_t th;
} setter_t;

static void *setter_main(void *arg)
{
    setter_t *s = arg;
    sleep_us(s->delay_us);
    s->set_ms = now_ms();
    tsr_cancel_set(s->cancel);
    return NULL;
}

static void setter_start(setter_t *s, tsr_cancel_t *cancel, long delay_us)
{
    s->cancel = cancel;
    s->delay_us = delay_us;
    s->set_ms = 0;
    assert_int_equal(pthread_create(&s->th, NULL, setter_main, s), 0);
}

static const char LONG_SQL[] = "SELECT COUNT(*) AS n FROM big x JOIN big y ON x.k = y.k "
                               "WHERE x.v + y.v < 0";

static void test_token_basics(void **state)
{
    (void)state;
    tsr_cancel_t *c = NULL;
    assert_int_equal(tsr_cancel_create(&c), TSR_OK);
    assert_int_equal(tsr_cancel_is_set(c), 0);
    tsr_cancel_set(c);
    assert_int_equal(tsr_cancel_is_set(c), 1);
    tsr_cancel_set(c); /* idempotent */
    assert_int_equal(tsr_cancel_is_set(c), 1);
    tsr_cancel_reset(c);
    assert_int_equal(tsr_cancel_is_set(c), 0);
    assert_int_equal(tsr_cancel_is_set(NULL), 0);
    tsr_cancel_set(NULL); /* harmless */
    tsr_cancel_reset(NULL);
    tsr_cancel_destroy(c);
    tsr_cancel_destroy(NULL);
    assert_int_equal(tsr_cancel_create(NULL), TSR_ERR_INVALID_ARG);
    assert_string_equal(tsr_status_str(TSR_ERR_CANCELLED), "cancelled");
    assert_int_equal(tsr_status_exit_code(TSR_ERR_CANCELLED), 4);
}

/* A token set before the query: it returns at once, nothing runs. */
static void test_set_before_start(void **state)
{
    (void)state;
    tsr_context_params_t p = {.threads = 2};
    tsr_context_t *ctx = NULL;
    tsr_cancel_t *c = NULL;
    assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
    assert_int_equal(tsr_cancel_create(&c), TSR_OK);
    register_table(ctx, "big", LONG_ROWS, 8);
    tsr_context_set_cancel(ctx, c);
    tsr_cancel_set(c);
    uint64_t t0 = now_ms();
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, LONG_SQL, &res), TSR_ERR_CANCELLED);
    assert_null(res);
    assert_true(now_ms() - t0 < 2000); /* a fraction of a ms unloaded */
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_int_equal(e.status, TSR_ERR_CANCELLED);
    assert_string_equal(e.message, "cancelled");
    /* the flag stays until reset; then the context works as before */
    assert_int_equal(tsr_query(ctx, "SELECT COUNT(*) FROM big", &res), TSR_ERR_CANCELLED);
    tsr_cancel_reset(c);
    assert_int_equal(tsr_query(ctx, "SELECT COUNT(*) FROM big", &res), TSR_OK);
    assert_int_equal(tsr_result_int64(res, 0, 0), LONG_ROWS);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    tsr_cancel_destroy(c);
}

/* The long join cancelled from another thread after ~50 ms returns
 * "cancelled" within a bound far below its full runtime. */
static void test_cancel_long_query(void **state)
{
    (void)state;
    for (unsigned threads = 1; threads <= 2; threads++) {
        tsr_context_params_t p = {.threads = threads};
        tsr_context_t *ctx = NULL;
        tsr_cancel_t *c = NULL;
        assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
        assert_int_equal(tsr_cancel_create(&c), TSR_OK);
        register_table(ctx, "big", LONG_ROWS, 8);
        tsr_context_set_cancel(ctx, c);
        setter_t s;
        uint64_t t0 = now_ms();
        setter_start(&s, c, 50000);
        tsr_result_t *res = NULL;
        tsr_status_t rc = tsr_query(ctx, LONG_SQL, &res);
        uint64_t t1 = now_ms();
        assert_int_equal(pthread_join(s.th, NULL), 0);
        /* it never completes in time: 5e9 pairs take ~15 s */
        assert_int_equal(rc, TSR_ERR_CANCELLED);
        assert_null(res);
        uint64_t lag = t1 - s.set_ms;
        print_message("threads %u: cancelled %llu ms after the token was set (ran %llu ms)\n",
                      threads, (unsigned long long)lag, (unsigned long long)(t1 - t0));
        /* one output batch of pairs per check: ~1 ms; generous for a loaded
         * machine and sanitizers */
        assert_true(lag < 3000);
        tsr_context_destroy(ctx);
        tsr_cancel_destroy(c);
    }
}

/* The shapes of query whose operators check the flag. */
static const char *const SHAPES[] = {
    "SELECT k, COUNT(*) AS n, SUM(v) AS sv, MIN(s) AS ms FROM t GROUP BY k ORDER BY k",
    "SELECT s, SUM(v) AS sv FROM t WHERE v % 3 = 1 GROUP BY s ORDER BY s",
    "SELECT v, k FROM t WHERE v % 1000 < 3 ORDER BY k DESC, v LIMIT 200",
    "SELECT v + k AS w, s FROM t WHERE s = 'cat' AND v > 1000 ORDER BY w LIMIT 50",
    ("SELECT a.k, COUNT(*) AS n, SUM(b.v) AS sb FROM t a JOIN small b ON a.k = b.k "
     "GROUP BY a.k ORDER BY a.k"),
    "SELECT v, s FROM t ORDER BY s, v DESC LIMIT 100",
};
#define NSHAPES (sizeof(SHAPES) / sizeof(SHAPES[0]))

/* The model of shape 0 (k, COUNT, SUM(v)) for the kmod used below. */
static void check_shape0_model(const char *text, size_t n, int64_t kmod)
{
    char *expect = malloc((size_t)kmod * 96 + 1), *o = expect;
    assert_non_null(expect);
    static const char *const S[] = {"ant", "bee", "cat", "dog", "eel"};
    for (int64_t k = 0; k < kmod; k++) {
        long long cnt = 0, sum = 0;
        const char *mn = NULL;
        for (size_t i = (size_t)k; i < n; i += (size_t)kmod) {
            cnt++;
            sum += (long long)i;
            const char *s = S[(i * 7) % 5];
            if (!mn || strcmp(s, mn) < 0)
                mn = s;
        }
        o += sprintf(o, "%lld|%lld|%lld|%s|\n", (long long)k, cnt, sum, mn);
    }
    assert_string_equal(text, expect);
    free(expect);
}

/* A token installed and never set changes nothing; set at random moments it
 * either leaves a completed query's rows as they were or ends it
 * "cancelled": never another error, never other rows. */
static void test_random_points(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    print_message("seed %u\n", seed);
    srand(seed);
    tsr_context_params_t p = {.threads = 2};
    tsr_context_t *plain = NULL, *ctx = NULL;
    tsr_cancel_t *c = NULL;
    assert_int_equal(tsr_context_create(&p, &plain), TSR_OK);
    assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
    assert_int_equal(tsr_cancel_create(&c), TSR_OK);
    const int64_t kmod = 97;
    register_table(plain, "t", SHAPE_ROWS, kmod);
    register_table(ctx, "t", SHAPE_ROWS, kmod);
    register_table(plain, "small", 500, 13);
    register_table(ctx, "small", 500, 13);
    tsr_context_set_cancel(ctx, c);
    char *ref[NSHAPES];
    long run_us[NSHAPES]; /* each shape's runtime here: the range of set moments */
    unsigned ncancelled = 0, ncompleted = 0;
    for (size_t q = 0; q < NSHAPES; q++) {
        tsr_status_t rc;
        ref[q] = run_text(plain, SHAPES[q], &rc);
        assert_int_equal(rc, TSR_OK);
        uint64_t t0 = now_ms();
        char *same = run_text(ctx, SHAPES[q], &rc); /* token installed, not set */
        run_us[q] = (long)(now_ms() - t0) * 1000 + 1000;
        assert_int_equal(rc, TSR_OK);
        assert_string_equal(same, ref[q]);
        free(same);
        if (q == 0)
            check_shape0_model(ref[q], SHAPE_ROWS, kmod);
    }
    for (int round = 0; round < 24; round++) {
        size_t q = (size_t)rand() % NSHAPES;
        /* before, during or after the query (as fast as it ran above) */
        long delay = (long)((double)rand() / RAND_MAX * 1.5 * (double)run_us[q]);
        tsr_cancel_reset(c);
        setter_t s;
        setter_start(&s, c, delay);
        tsr_status_t rc;
        char *text = run_text(ctx, SHAPES[q], &rc);
        assert_int_equal(pthread_join(s.th, NULL), 0);
        if (rc == TSR_OK) {
            assert_string_equal(text, ref[q]);
            ncompleted++;
        } else {
            assert_int_equal(rc, TSR_ERR_CANCELLED);
            ncancelled++;
        }
        free(text);
    }
    print_message("%u completed, %u cancelled\n", ncompleted, ncancelled);
    /* and the context is fine afterwards */
    tsr_cancel_reset(c);
    for (size_t q = 0; q < NSHAPES; q++) {
        tsr_status_t rc;
        char *text = run_text(ctx, SHAPES[q], &rc);
        assert_int_equal(rc, TSR_OK);
        assert_string_equal(text, ref[q]);
        free(text);
        free(ref[q]);
    }
    tsr_context_set_cancel(ctx, NULL);
    tsr_context_destroy(plain);
    tsr_context_destroy(ctx);
    tsr_cancel_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_basics),
        cmocka_unit_test(test_set_before_start),
        cmocka_unit_test(test_cancel_long_query),
        cmocka_unit_test(test_random_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
