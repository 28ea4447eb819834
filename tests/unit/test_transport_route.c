/*
 * test_transport_route.c - the route table (transport/route.c) on fake
 * peers (white-box: no UCX worker involved).
 *
 * A route names the peer a request comes from: (generation << 16) | slot.
 * Checked against a plain model (a map from every route ever handed out to
 * the peer it was given to, and whether that peer still holds it): every
 * live route finds its peer, every released or never-given route finds
 * nothing, no two live peers share a slot, a reused slot never repeats the
 * generation it had just before, route 0 is never handed out, and a full
 * table (65536 peers) answers 0 ("use the reply endpoint") instead of
 * failing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_assign_lookup_release(void **state)
{
    (void)state;
    tsr_transport_t t;
    memset(&t, 0, sizeof(t));
    enum { N = 100 };
    tsr_peer_t peers[N];
    memset(peers, 0, sizeof(peers));
    for (int i = 0; i < N; i++) {
        tsr__route_assign_locked(&t, &peers[i]);
        assert_int_not_equal(peers[i].route, 0);
        assert_int_equal(tsr_wire_get_u32(peers[i].route_wire), peers[i].route);
    }
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(tsr__route_lookup_locked(&t, peers[i].route), &peers[i]);
        for (int j = 0; j < i; j++) /* one slot each */
            assert_int_not_equal(TSR_WIRE_ROUTE_SLOT(peers[i].route),
                                 TSR_WIRE_ROUTE_SLOT(peers[j].route));
    }
    assert_null(tsr__route_lookup_locked(&t, 0));
    assert_null(tsr__route_lookup_locked(&t, 0xffffffffu)); /* a slot beyond the table */
    uint32_t old = peers[7].route;
    tsr__route_release_locked(&t, &peers[7]);
    assert_int_equal(peers[7].route, 0);
    assert_null(tsr__route_lookup_locked(&t, old));
    tsr__route_release_locked(&t, &peers[7]); /* twice: nothing happens */
    tsr__route_fini(&t);
    assert_int_equal(t.nroutes, 0);
}

/* Random assign/release against the model. */
static void test_random_model(void **state)
{
    (void)state;
    tsr_transport_t t;
    memset(&t, 0, sizeof(t));
    enum { N = 300, OPS = 200000 };
    tsr_peer_t *peers = calloc(N, sizeof(*peers));
    bool *live = calloc(N, sizeof(*live));
    /* The model: the last route each slot carried, and every route ever
     * given (to check that a released one stays dead). */
    uint32_t *given = calloc(OPS, sizeof(*given));
    uint32_t *last_gen = calloc(65536, sizeof(*last_gen));
    size_t ngiven = 0;
    assert_non_null(peers);
    assert_non_null(live);
    assert_non_null(given);
    assert_non_null(last_gen);
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rnd() % N);
        if (!live[i]) {
            tsr__route_assign_locked(&t, &peers[i]);
            uint32_t r = peers[i].route;
            assert_int_not_equal(r, 0);
            uint32_t slot = TSR_WIRE_ROUTE_SLOT(r);
            assert_int_not_equal(r >> 16, last_gen[slot]); /* a reused slot: a new generation */
            last_gen[slot] = r >> 16;
            for (int j = 0; j < N; j++)
                if (live[j])
                    assert_int_not_equal(TSR_WIRE_ROUTE_SLOT(peers[j].route), slot);
            live[i] = true;
            given[ngiven++] = r;
        } else {
            tsr__route_release_locked(&t, &peers[i]);
            live[i] = false;
        }
        if (op % 1000 == 0) {
            size_t nlive = 0;
            for (int j = 0; j < N; j++)
                if (live[j]) {
                    nlive++;
                    assert_ptr_equal(tsr__route_lookup_locked(&t, peers[j].route), &peers[j]);
                }
            for (size_t g = 0; g < ngiven; g++) {
                tsr_peer_t *p = tsr__route_lookup_locked(&t, given[g]);
                assert_true(p == NULL || p->route == given[g]); /* dead, or its holder's */
            }
            assert_true(t.nroutes <= 512); /* it grows with the live peers only */
            (void)nlive;
        }
    }
    tsr__route_fini(&t);
    free(peers);
    free(live);
    free(given);
    free(last_gen);
}

/* 65536 live peers fill the table; the next gets route 0 and its handshake
 * tells the other side to name us by the reply endpoint. */
static void test_full_table(void **state)
{
    (void)state;
    tsr_transport_t t;
    memset(&t, 0, sizeof(t));
    enum { FULL = 65536 };
    tsr_peer_t *peers = calloc(FULL + 1, sizeof(*peers));
    assert_non_null(peers);
    for (int i = 0; i < FULL; i++) {
        tsr__route_assign_locked(&t, &peers[i]);
        assert_int_not_equal(peers[i].route, 0);
    }
    tsr__route_assign_locked(&t, &peers[FULL]);
    assert_int_equal(peers[FULL].route, 0);
    assert_int_equal(tsr_wire_get_u32(peers[FULL].route_wire), 0);
    tsr__route_release_locked(&t, &peers[123]); /* a slot frees up: usable again */
    tsr__route_assign_locked(&t, &peers[FULL]);
    assert_int_equal(TSR_WIRE_ROUTE_SLOT(peers[FULL].route), 123);
    assert_ptr_equal(tsr__route_lookup_locked(&t, peers[FULL].route), &peers[FULL]);
    tsr__route_fini(&t);
    free(peers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assign_lookup_release),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_full_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
