/*
 * test_core.c - status codes, errors, the allocator with fault injection, the
 * arena and the thread pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/hash.h"
#include "core/mem.h"
#include "core/pool.h"

static void test_status_exit_codes(void **state)
{
    (void)state;
    assert_int_equal(tsr_status_exit_code(TSR_OK), 0);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_INTERNAL), 1);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_NOMEM), 1);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_OVERFLOW), 1);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_SYNTAX), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_BAD_INPUT), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_TYPE), 2);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_NOT_FOUND), 3);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_EXISTS), 4);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_CONFLICT), 4);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_TIMEOUT), 4);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_UNAVAILABLE), 5);
    assert_int_equal(tsr_status_exit_code(TSR_ERR_AUTH), 5);
    assert_string_equal(tsr_status_str(TSR_ERR_SYNTAX), "syntax error");
    assert_string_equal(tsr_status_name(TSR_ERR_NOT_FOUND), "TSR_ERR_NOT_FOUND");
    assert_string_equal(tsr_status_str((tsr_status_t)-99), "unknown status");
}

static void test_error_first_wins(void **state)
{
    (void)state;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_error_set_at(&err, TSR_ERR_SYNTAX, NULL, 2, 7, "bad %s", "token"),
                     TSR_ERR_SYNTAX);
    tsr_error_hint(&err, "try %d", 3);
    /* a later error does not overwrite the first */
    assert_int_equal(tsr_error_set(&err, TSR_ERR_IO, "later"), TSR_ERR_IO);
    assert_int_equal(err.status, TSR_ERR_SYNTAX);
    assert_string_equal(err.message, "bad token");
    assert_string_equal(err.hint, "try 3");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 7);
    assert_string_equal(err.file, "");
    /* NULL error pointers are accepted */
    assert_int_equal(tsr_error_set(NULL, TSR_ERR_IO, "x"), TSR_ERR_IO);
}

static void test_edit_distance(void **state)
{
    (void)state;
    assert_int_equal(tsr_edit_distance("sales", "sales"), 0);
    assert_int_equal(tsr_edit_distance("salse", "sales"), 2);
    assert_int_equal(tsr_edit_distance("QTY", "qty"), 0);
    assert_int_equal(tsr_edit_distance("", "abc"), 3);
    assert_int_equal(tsr_edit_distance("kitten", "sitting"), 3);
}

static void test_mem_fault_injection(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_mem_fail_after(&mem, 2);
    void *a = tsr_mem_alloc(&mem, 10);
    void *b = tsr_mem_calloc(&mem, 2, 10);
    void *c = tsr_mem_alloc(&mem, 10); /* the third fails */
    void *d = tsr_mem_alloc(&mem, 10); /* and only that one */
    assert_non_null(a);
    assert_non_null(b);
    assert_null(c);
    assert_non_null(d);
    assert_int_equal(atomic_load(&mem.failures), 1);
    tsr_mem_free(&mem, a);
    tsr_mem_free(&mem, b);
    tsr_mem_free(&mem, d);
    /* overflow is refused */
    assert_null(tsr_mem_calloc(&mem, SIZE_MAX / 2, 4));
    void *al = tsr_mem_alloc_aligned(&mem, 100);
    assert_non_null(al);
    assert_int_equal((uintptr_t)al % 64, 0);
    tsr_mem_free(&mem, al);
}

static void test_mem_grow(void **state)
{
    (void)state;
    int *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < 1000; i++) {
        assert_int_equal(tsr_mem_grow(NULL, (void **)&buf, &cap, i + 1, sizeof(int)), 0);
        buf[i] = (int)i;
    }
    assert_true(cap >= 1000);
    for (size_t i = 0; i < 1000; i++)
        assert_int_equal(buf[i], (int)i);
    free(buf);
}

static void test_arena(void **state)
{
    (void)state;
    tsr_arena_t arena;
    tsr_arena_init(&arena, NULL);
    char *prev = NULL;
    for (int i = 0; i < 5000; i++) {
        char *p = tsr_arena_alloc(&arena, (size_t)(i % 37) + 1);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (int k = 0; k < i % 37 + 1; k++)
            assert_int_equal(p[k], 0);
        memset(p, 0xab, (size_t)(i % 37) + 1);
        prev = p;
    }
    (void)prev;
    char *big = tsr_arena_alloc(&arena, 1 << 20); /* larger than a block */
    assert_non_null(big);
    char *s = tsr_arena_strndup(&arena, "hello world", 5);
    assert_string_equal(s, "hello");
    tsr_arena_release(&arena);
    assert_null(arena.head);

    tsr_mem_t mem;
    tsr_mem_init(&mem);
    tsr_arena_init(&arena, &mem);
    tsr_mem_fail_after(&mem, 0);
    assert_null(tsr_arena_alloc(&arena, 8));
    assert_non_null(tsr_arena_alloc(&arena, 8));
    tsr_arena_release(&arena);
}

typedef struct pool_sum {
    atomic_ullong sum;
    atomic_uint hits[4096];
    unsigned nworkers;
    atomic_int bad_worker;
} pool_sum_t;

static void pool_sum_task(void *arg, size_t i, unsigned worker)
{
    pool_sum_t *ps = arg;
    if (worker >= ps->nworkers)
        atomic_store(&ps->bad_worker, 1);
    atomic_fetch_add(&ps->sum, i);
    atomic_fetch_add(&ps->hits[i], 1);
}

static void test_pool_runs_every_task_once(void **state)
{
    (void)state;
    for (unsigned threads = 1; threads <= 4; threads++) {
        tsr_pool_t *pool = NULL;
        assert_int_equal(tsr_pool_create(NULL, threads, &pool), TSR_OK);
        assert_int_equal(tsr_pool_size(pool), threads);
        for (int round = 0; round < 20; round++) {
            size_t n = (size_t)(round * 211) % 4096;
            pool_sum_t *ps = calloc(1, sizeof(*ps));
            ps->nworkers = threads;
            tsr_pool_run(pool, n, pool_sum_task, ps);
            assert_int_equal(atomic_load(&ps->sum), n ? n * (n - 1) / 2 : 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(atomic_load(&ps->hits[i]), 1);
            assert_int_equal(atomic_load(&ps->bad_worker), 0);
            free(ps);
        }
        tsr_pool_destroy(pool);
    }
    tsr_pool_destroy(NULL);
}

typedef struct nested_arg {
    tsr_pool_t *pool;
    atomic_ullong count;
} nested_arg_t;

static void nested_inner(void *arg, size_t i, unsigned worker)
{
    (void)i;
    (void)worker;
    atomic_fetch_add(&((nested_arg_t *)arg)->count, 1);
}

static void nested_outer(void *arg, size_t i, unsigned worker)
{
    (void)i;
    (void)worker;
    nested_arg_t *na = arg;
    tsr_pool_run(na->pool, 10, nested_inner, na); /* runs inline */
}

static void test_pool_nested_runs_inline(void **state)
{
    (void)state;
    nested_arg_t na;
    assert_int_equal(tsr_pool_create(NULL, 2, &na.pool), TSR_OK);
    atomic_init(&na.count, 0);
    tsr_pool_run(na.pool, 50, nested_outer, &na);
    assert_int_equal(atomic_load(&na.count), 500);
    tsr_pool_destroy(na.pool);
}

static void test_pool_create_fails_cleanly(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    for (long n = 0; n < 10; n++) {
        tsr_pool_t *pool = NULL;
        tsr_mem_fail_after(&mem, n);
        tsr_status_t rc = tsr_pool_create(&mem, 3, &pool);
        tsr_mem_fail_after(&mem, -1);
        if (rc == TSR_OK) {
            tsr_pool_destroy(pool);
            break;
        }
        assert_int_equal(rc, TSR_ERR_NOMEM);
    }
}

static void test_hash_properties(void **state)
{
    (void)state;
    assert_int_equal(tsr_hash_double(0.0), tsr_hash_double(-0.0));
    assert_int_not_equal(tsr_hash_u64(1), tsr_hash_u64(2));
    assert_int_equal(tsr_hash_bytes("abc", 3), tsr_hash_bytes("abc", 3));
    /* a fixed value pins the function: GPU kernels must produce the same bits */
    assert_true(tsr_hash_u64(0) == 0);
    assert_true(tsr_hash_u64(1) == 0xb456bcfc34c2cb2cULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_exit_codes),
        cmocka_unit_test(test_error_first_wins),
        cmocka_unit_test(test_edit_distance),
        cmocka_unit_test(test_mem_fault_injection),
        cmocka_unit_test(test_mem_grow),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_pool_runs_every_task_once),
        cmocka_unit_test(test_pool_nested_runs_inline),
        cmocka_unit_test(test_pool_create_fails_cleanly),
        cmocka_unit_test(test_hash_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
