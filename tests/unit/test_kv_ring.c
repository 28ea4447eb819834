/*
 * test_kv_ring.c - the consistent-hash ring that places kv partitions on
 * workers (engine/kv/ring.c): random worker sets, balance within bounds,
 * minimal movement on add and remove, distinct replicas, bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_ring.h"

#define NKEYS 20000

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    return tsr_hash_u64(*s);
}

/* n random worker ids like the scheduler's ("host:/data/dir") */
static char **make_ids(uint64_t *seed, size_t n)
{
    char **ids = calloc(n, sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        ids[i] = malloc(64);
        snprintf(ids[i], 64, "host%llu:/data/w%zu", (unsigned long long)(rng_next(seed) % 1000), i);
    }
    return ids;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

static void test_balance(void **state)
{
    (void)state;
    uint64_t seed = 42;
    for (int round = 0; round < 20; round++) {
        size_t n = 1 + rng_next(&seed) % 16;
        char **ids = make_ids(&seed, n);
        tsr_kvring_t r;
        assert_int_equal(tsr_kvring_build(NULL, (const char *const *)ids, n, 0, &r, NULL), TSR_OK);
        size_t count[16] = {0};
        for (int k = 0; k < NKEYS; k++) {
            uint32_t m;
            assert_int_equal(tsr_kvring_lookup(&r, rng_next(&seed), 1, &m), 1);
            assert_true(m < n);
            count[m]++;
        }
        double mean = (double)NKEYS / (double)n;
        for (size_t i = 0; i < n; i++) {
            /* 128 vnodes: the share's spread is ~1/sqrt(128) ~ 9%; allow 4x */
            assert_true(count[i] > 0.6 * mean);
            assert_true(count[i] < 1.45 * mean);
        }
        tsr_kvring_free(&r);
        free_ids(ids, n);
    }
}

static void test_minimal_movement(void **state)
{
    (void)state;
    uint64_t seed = 7;
    for (int round = 0; round < 20; round++) {
        size_t n = 1 + rng_next(&seed) % 12;
        char **ids = make_ids(&seed, n + 1); /* ids[n] joins */
        tsr_kvring_t before, after;
        assert_int_equal(tsr_kvring_build(NULL, (const char *const *)ids, n, 0, &before, NULL),
                         TSR_OK);
        assert_int_equal(tsr_kvring_build(NULL, (const char *const *)ids, n + 1, 0, &after, NULL),
                         TSR_OK);
        size_t moved = 0;
        for (int k = 0; k < NKEYS; k++) {
            uint64_t h = rng_next(&seed);
            uint32_t a[3], b[3];
            size_t na = tsr_kvring_lookup(&before, h, 3, a);
            size_t nb = tsr_kvring_lookup(&after, h, 3, b);
            assert_int_equal(na, n < 3 ? n : 3);
            assert_int_equal(nb, n + 1 < 3 ? n + 1 : 3);
            if (a[0] != b[0]) {
                /* a key only ever moves to the new member (add) - and back
                 * to its old owner when the member leaves (remove) */
                assert_int_equal(b[0], (uint32_t)n);
                moved++;
            }
            /* replica lists: the new list is the old one with the new member
             * inserted somewhere (nothing else reorders) */
            size_t j = 0;
            for (size_t i = 0; i < nb; i++)
                if (b[i] != (uint32_t)n) {
                    assert_true(j < na);
                    assert_int_equal(b[i], a[j]);
                    j++;
                }
        }
        /* its share: about 1/(n+1) of the keys, bounded as in test_balance */
        double share = (double)NKEYS / (double)(n + 1);
        assert_true(moved > 0.6 * share);
        assert_true(moved < 1.45 * share);
        tsr_kvring_free(&before);
        tsr_kvring_free(&after);
        free_ids(ids, n + 1);
    }
}

static void test_replicas_distinct(void **state)
{
    (void)state;
    uint64_t seed = 99;
    const char *ids[] = {"a", "b", "c", "d", "e"};
    tsr_kvring_t r;
    assert_int_equal(tsr_kvring_build(NULL, ids, 5, 3, &r, NULL), TSR_OK);
    for (int k = 0; k < 2000; k++) {
        uint32_t m[8];
        size_t got = tsr_kvring_lookup(&r, rng_next(&seed), 8, m);
        assert_int_equal(got, 5); /* capped at the members */
        for (size_t i = 0; i < got; i++)
            for (size_t j = i + 1; j < got; j++)
                assert_true(m[i] != m[j]);
    }
    /* the same partition always lands in the same place */
    uint32_t x, y;
    tsr_kvring_lookup(&r, tsr_kvring_part_hash("t", 1, 3), 1, &x);
    tsr_kvring_lookup(&r, tsr_kvring_part_hash("t", 1, 3), 1, &y);
    assert_int_equal(x, y);
    assert_true(tsr_kvring_part_hash("t", 1, 3) != tsr_kvring_part_hash("t", 2, 3));
    assert_int_equal(tsr_kvring_lookup(&r, 5, 0, &x), 0);
    tsr_kvring_free(&r);
}

static void test_single_and_bad(void **state)
{
    (void)state;
    const char *one[] = {"only"};
    tsr_kvring_t r;
    assert_int_equal(tsr_kvring_build(NULL, one, 1, 1, &r, NULL), TSR_OK);
    uint32_t m[2] = {9, 9};
    assert_int_equal(tsr_kvring_lookup(&r, UINT64_MAX, 2, m), 1); /* wraps */
    assert_int_equal(m[0], 0);
    assert_int_equal(tsr_kvring_lookup(&r, 0, 1, m), 1);
    tsr_kvring_free(&r);
    tsr_kvring_free(NULL);
    tsr_error_t e;
    tsr_error_clear(&e);
    assert_int_equal(tsr_kvring_build(NULL, one, 0, 0, &r, &e), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kvring_lookup(&r, 1, 1, m), 0); /* an empty ring finds nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_minimal_movement),
        cmocka_unit_test(test_replicas_distinct),
        cmocka_unit_test(test_single_and_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
