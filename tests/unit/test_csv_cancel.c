/*
 * test_csv_cancel.c - a cancelled query stops loading CSV columns (table.h
 * tsr_table_load_columns_cancel, the reader's per-batch check in
 * csv_chunk.c, the planner's loads under tsr_query with a context's cancel
 * token), and a cancelled load leaves the table as it was: a later load or
 * query gives exactly the rows of a load that was never interrupted.
 *
 *   - a set flag fails every load at once with TSR_ERR_CANCELLED
 *     ("cancelled"), nothing loaded, on 1 and 2 threads; clearing it, the
 *     same table loads and its sums equal a model computed here;
 *   - after a first load of some columns, a cancelled load of others keeps
 *     the first ones intact and the table still loads the rest;
 *   - a flag set from another thread at random moments while tsr_query
 *     plans over the file (its columns loaded then): each query either
 *     answers the model's rows or fails TSR_ERR_CANCELLED, and the next
 *     query on the same context, token reset, answers the model's rows.
 * The file: 200,003 rows (a prime; about 25 batches of 8192 rows).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/pool.h"
#include "table/csv.h"
#include "table/table.h"
#include "tessera/tessera.h"

#define ROWS 200003

typedef struct fixture {
    char path[64];
    int64_t sum_a, sum_b; /* the model */
    size_t nonempty_s;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->path, sizeof(f->path), "/tmp/tsr_csv_cancel_XXXXXX");
    int fd = mkstemp(f->path);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!fp) {
        free(f);
        return -1;
    }
    fprintf(fp, "a,b,s\n");
    uint64_t x = 7;
    for (size_t i = 0; i < ROWS; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t a = (int64_t)(x >> 40) - (1 << 23), b = (int64_t)(i % 1000);
        f->sum_a += a;
        f->sum_b += b;
        fprintf(fp, "%lld,%lld,w%u\n", (long long)a, (long long)b, (unsigned)(x >> 58));
    }
    fclose(fp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    unlink(f->path);
    free(f);
    return 0;
}

static int64_t column_sum(const tsr_table_t *t, size_t col)
{
    int64_t s = 0;
    for (size_t b = 0; b < t->nbatches; b++) {
        const int64_t *v = t->batches[b].cols[col].data;
        for (size_t r = 0; r < t->batches[b].nrows; r++)
            s += v[r];
    }
    return s;
}

static void test_flag_set_loads_nothing(void **state)
{
    fixture_t *f = *state;
    for (unsigned threads = 1; threads <= 2; threads++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_pool_t *pool = NULL;
        assert_int_equal(tsr_pool_create(&mem, threads, &pool), TSR_OK);
        tsr_table_t *t = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_csv_open_file(&mem, pool, f->path, "t", NULL, &t, &err), TSR_OK);
        atomic_int flag = 1;
        bool a_only[3] = {true, false, false}, b_only[3] = {false, true, false};
        for (int round = 0; round < 2; round++) {
            tsr_error_clear(&err);
            assert_int_equal(tsr_table_load_columns_cancel(t, a_only, &flag, &err),
                             TSR_ERR_CANCELLED);
            assert_string_equal(err.message, "cancelled");
            assert_false(tsr_table_column_loaded(t, 0));
            assert_int_equal(t->nbatches, 0);
        }
        /* no flag set: it loads, the same rows as the model */
        atomic_store(&flag, 0);
        tsr_error_clear(&err);
        assert_int_equal(tsr_table_load_columns_cancel(t, a_only, &flag, &err), TSR_OK);
        assert_int_equal(t->nrows, ROWS);
        assert_int_equal(column_sum(t, 0), f->sum_a);
        /* a cancelled load of b keeps a; then b loads */
        atomic_store(&flag, 1);
        assert_int_equal(tsr_table_load_columns_cancel(t, b_only, &flag, &err),
                         TSR_ERR_CANCELLED);
        assert_true(tsr_table_column_loaded(t, 0));
        assert_false(tsr_table_column_loaded(t, 1));
        assert_int_equal(column_sum(t, 0), f->sum_a);
        tsr_error_clear(&err);
        assert_int_equal(tsr_table_load_columns(t, NULL, &err), TSR_OK);
        assert_int_equal(column_sum(t, 0), f->sum_a);
        assert_int_equal(column_sum(t, 1), f->sum_b);
        assert_null(t->lazy); /* every column loaded: the file's bytes went */
        tsr_table_destroy(t);
        tsr_pool_destroy(pool);
    }
}

typedef struct setter {
    tsr_cancel_t *cancel;
    long delay_us;
    pthread_t th;
} setter_t;

static void *setter_main(void *arg)
{
    setter_t *s = arg;
    struct timespec ts = {s->delay_us / 1000000, (s->delay_us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
    tsr_cancel_set(s->cancel);
    return NULL;
}

/* SUM(a), SUM(b) of the one row of res ("" when it failed). */
static void expect_sums(const fixture_t *f, tsr_result_t *res)
{
    assert_int_equal(tsr_result_row_count(res), 1);
    assert_int_equal(tsr_result_int64(res, 0, 0), f->sum_a);
    assert_int_equal(tsr_result_int64(res, 0, 1), f->sum_b);
    assert_int_equal(tsr_result_int64(res, 0, 2), ROWS);
}

static void test_random_cancel_points(void **state)
{
    fixture_t *f = *state;
    static const char SQL[] = "SELECT SUM(a), SUM(b), COUNT(s) FROM t";
    uint64_t seed = 12345;
    unsigned cancelled = 0, answered = 0;
    for (int round = 0; round < 12; round++) {
        tsr_context_params_t p = {.threads = 1 + (unsigned)(round % 2)};
        tsr_context_t *ctx = NULL;
        tsr_cancel_t *c = NULL;
        assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
        assert_int_equal(tsr_cancel_create(&c), TSR_OK);
        assert_int_equal(tsr_table_register_csv(ctx, "t", f->path, NULL), TSR_OK);
        tsr_context_set_cancel(ctx, c);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        setter_t s = {.cancel = c, .delay_us = (long)((seed >> 33) % 60000)};
        assert_int_equal(pthread_create(&s.th, NULL, setter_main, &s), 0);
        tsr_result_t *res = NULL;
        tsr_status_t rc = tsr_query(ctx, SQL, &res);
        assert_int_equal(pthread_join(s.th, NULL), 0);
        if (rc == TSR_OK) {
            expect_sums(f, res);
            tsr_result_destroy(res);
            answered++;
        } else {
            assert_int_equal(rc, TSR_ERR_CANCELLED);
            assert_null(res);
            cancelled++;
        }
        /* the same context, the token reset: the whole answer */
        tsr_cancel_reset(c);
        assert_int_equal(tsr_query(ctx, SQL, &res), TSR_OK);
        expect_sums(f, res);
        tsr_result_destroy(res);
        tsr_context_destroy(ctx);
        tsr_cancel_destroy(c);
    }
    print_message("%u queries cancelled, %u answered\n", cancelled, answered);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_set_loads_nothing),
        cmocka_unit_test(test_random_cancel_points),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
