/*
 * test_api_lifetime.c - results stay readable while their context changes:
 * a result borrows the storage of the catalog tables it scanned, so replacing
 * such a table (registering another one of the same name) must not free what
 * a live result still reads. Run under ASan to see a use-after-free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/context_internal.h"
#include "tessera/tessera.h"

#define NROWS 10000 /* more than one batch */

static tsr_status_t register_gen(tsr_context_t *ctx, int64_t base)
{
    int64_t *v = malloc(NROWS * sizeof(*v));
    const char **s = malloc(NROWS * sizeof(*s));
    static const char *const words[] = {"red", "green", "blue"};
    for (size_t i = 0; i < NROWS; i++) {
        v[i] = base + (int64_t)i;
        s[i] = words[(size_t)(base + (int64_t)i) % 3];
    }
    tsr_column_data_t cols[] = {{.name = "x", .type = TSR_TYPE_INT64, .values = v},
                                {.name = "s", .type = TSR_TYPE_VARCHAR, .values = s}};
    tsr_status_t rc = tsr_table_register_columns(ctx, "t", 2, cols, NROWS);
    free(v);
    free(s);
    return rc;
}

static void check_gen(const tsr_result_t *res, int64_t base)
{
    static const char *const words[] = {"red", "green", "blue"};
    assert_int_equal(tsr_result_row_count(res), NROWS);
    for (size_t r = 0; r < NROWS; r += 997) {
        assert_int_equal(tsr_result_int64(res, r, 0), base + (int64_t)r);
        assert_string_equal(tsr_result_string(res, r, 1, NULL),
                            words[(size_t)(base + (int64_t)r) % 3]);
    }
}

/* The scan borrows the catalog table: replace it, then read the result. */
static void test_result_outlives_replaced_table(void **state)
{
    (void)state;
    tsr_context_params_t params = {.threads = 2};
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(&params, &ctx), TSR_OK);
    assert_int_equal(register_gen(ctx, 0), TSR_OK);
    tsr_result_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT x, s FROM t", &r1), TSR_OK);
    assert_int_equal(register_gen(ctx, 100), TSR_OK);
    assert_int_equal(tsr_query(ctx, "SELECT x, s FROM t", &r2), TSR_OK);
    assert_int_equal(register_gen(ctx, 200), TSR_OK); /* replaces a table r2 reads */
    check_gen(r1, 0);
    check_gen(r2, 100);
    tsr_result_destroy(r1);
    check_gen(r2, 100);
    assert_int_equal(register_gen(ctx, 300), TSR_OK);
    check_gen(r2, 100);
    tsr_result_destroy(r2);
    /* no result alive: the next replacement frees the old table at once */
    assert_int_equal(register_gen(ctx, 400), TSR_OK);
    assert_int_equal(tsr_query(ctx, "SELECT x, s FROM t", &r3), TSR_OK);
    check_gen(r3, 400);
    tsr_result_destroy(r3);
    tsr_context_destroy(ctx);
}

/* The same through a CSV file, with a result still alive at context
 * destruction's doorstep (destroyed first, as documented). */
static void test_result_outlives_replaced_csv(void **state)
{
    (void)state;
    char path[] = "/tmp/tsr_lifetime_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "x,s\n");
    for (int i = 0; i < NROWS; i++)
        fprintf(f, "%d,%s\n", i, i % 3 == 0 ? "red" : i % 3 == 1 ? "green" : "blue");
    fclose(f);
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(tsr_table_register_csv(ctx, "t", path, NULL), TSR_OK);
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT x, s FROM t WHERE x >= 0", &res), TSR_OK);
    assert_int_equal(tsr_table_register_csv(ctx, "T", path, NULL), TSR_OK);
    check_gen(res, 0);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    unlink(path);
}

/* Keeping a replaced table costs one allocation; when it fails, the
 * registration fails cleanly and the old table (and the result) stay. */
static void test_replace_allocation_failure(void **state)
{
    (void)state;
    tsr_context_t *ctx = NULL;
    assert_int_equal(tsr_context_create(NULL, &ctx), TSR_OK);
    assert_int_equal(register_gen(ctx, 0), TSR_OK);
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT x, s FROM t", &res), TSR_OK);
    tsr_mem_t *mem = tsr__context_mem(ctx);
    for (long n = 0;; n++) {
        long before = atomic_load(&mem->failures);
        tsr_mem_fail_after(mem, n);
        tsr_status_t rc = register_gen(ctx, 100);
        tsr_mem_fail_after(mem, -1);
        if (atomic_load(&mem->failures) == before) {
            assert_int_equal(rc, TSR_OK);
            break;
        }
        assert_int_equal(rc, TSR_ERR_NOMEM);
        check_gen(res, 0);
        assert_true(n < 10000);
    }
    check_gen(res, 0);
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_outlives_replaced_table),
        cmocka_unit_test(test_result_outlives_replaced_csv),
        cmocka_unit_test(test_replace_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
