/*
 * test_kv_replace.c - the choice of the worker that takes a gone replica's
 * place (scheduler/kv_rebalance.c, tsr_sched_kv_pick_target; docs/kv.md
 * "Replacing a worker gone for good").
 *
 * Model: random clockwise orders of 0..16 distinct ids, random ready flags
 * and random holder sets (0..8 ids, some not in the order at all): the pick
 * is the first ready id of the order that holds nothing, or n when none is
 * (checked against a linear scan written here). On real rings (1..12
 * members, random partitions): with every member ready and the partition's
 * first R ring members as holders, the pick is the (R+1)-th member
 * clockwise, i.e. "the next ring member after the current replicas"; with
 * that one not ready, the one after it; with as many members as holders,
 * none. Edge cases: an empty order, every id held, none ready.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv_ring.h"
#include "sched_kv.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The model: a plain scan. */
static size_t model_pick(char ids[][16], size_t n, const bool *ready, char holders[][16], size_t nh)
{
    for (size_t i = 0; i < n; i++) {
        if (!ready[i])
            continue;
        size_t k = 0;
        while (k < nh && strcmp(ids[i], holders[k]) != 0)
            k++;
        if (k == nh)
            return i;
    }
    return n;
}

static void test_random_against_model(void **state)
{
    (void)state;
    char ids[16][16], holders[8][16];
    const char *order[16], *hp[8];
    bool ready[16];
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)(rnd() % 17), nh = (size_t)(rnd() % 9);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "w%zu", i); /* distinct, as a ring's */
            order[i] = ids[i];
            ready[i] = rnd() % 4 != 0;
        }
        for (size_t k = 0; k < nh; k++) {
            /* mostly ids of the order, sometimes an id outside it (a dead one) */
            unsigned v = (unsigned)(rnd() % (n + 3));
            snprintf(holders[k], sizeof(holders[k]), "w%u", v);
            hp[k] = holders[k];
        }
        size_t want = model_pick(ids, n, ready, holders, nh);
        assert_int_equal(tsr_sched_kv_pick_target(order, n, ready, hp, nh), want);
        if (want < n) {
            assert_true(ready[want]);
            for (size_t k = 0; k < nh; k++)
                assert_string_not_equal(order[want], hp[k]);
        }
    }
}

static void test_edges(void **state)
{
    (void)state;
    const char *order[3] = {"a", "b", "c"};
    const char *held[3] = {"c", "a", "b"};
    bool all[3] = {true, true, true}, none[3] = {false, false, false};
    assert_int_equal(tsr_sched_kv_pick_target(order, 0, all, held, 3), 0);
    assert_int_equal(tsr_sched_kv_pick_target(order, 3, all, held, 3), 3);  /* all held */
    assert_int_equal(tsr_sched_kv_pick_target(order, 3, none, held, 0), 3); /* none ready */
    assert_int_equal(tsr_sched_kv_pick_target(order, 3, all, held, 0), 0);
    assert_int_equal(tsr_sched_kv_pick_target(order, 3, all, held + 1, 1), 1);
    bool only_c[3] = {false, false, true};
    assert_int_equal(tsr_sched_kv_pick_target(order, 3, only_c, held + 1, 2), 2);
}

/* On real rings: the next member clockwise after the partition's replicas. */
static void test_next_on_ring(void **state)
{
    (void)state;
    char ids[12][32];
    const char *idp[12];
    for (int it = 0; it < 300; it++) {
        size_t n = 1 + (size_t)(rnd() % 12);
        for (size_t i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "host:/data/w%llu",
                     (unsigned long long)(rnd() % 1000000));
            for (size_t j = 0; j < i; j++)
                if (strcmp(ids[i], ids[j]) == 0) /* keep them distinct */
                    snprintf(ids[i], sizeof(ids[i]), "host:/data/x%zu", i);
            idp[i] = ids[i];
        }
        tsr_kvring_t ring = {0};
        assert_int_equal(tsr_kvring_build(NULL, idp, n, 0, &ring, NULL), TSR_OK);
        for (uint32_t p = 0; p < 20; p++) {
            uint32_t top[12];
            size_t got = tsr_kvring_lookup(&ring, tsr_kvring_part_hash("t", it, p), n, top);
            assert_int_equal(got, n);
            const char *order[12];
            bool ready[12];
            for (size_t k = 0; k < got; k++) {
                order[k] = idp[top[k]];
                ready[k] = true;
            }
            size_t r = 1 + (size_t)(rnd() % 3); /* the replicas: the first r members */
            size_t nh = r < n ? r : n;
            size_t at = tsr_sched_kv_pick_target(order, got, ready, order, nh);
            assert_int_equal(at, nh < n ? nh : n);
            if (nh + 1 < n) { /* that one down: the one after it */
                ready[nh] = false;
                assert_int_equal(tsr_sched_kv_pick_target(order, got, ready, order, nh), nh + 1);
            }
        }
        tsr_kvring_free(&ring);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_next_on_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
