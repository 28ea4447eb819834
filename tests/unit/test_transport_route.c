/*
 * test_transport_route.c - the route table (transport/route.c) on fake
 * peers (white-box: no UCX worker involved).
 *
 * A route names the peer a request comes from: a slot (bits 0-15) and 48
 * random bits. Checked against a plain model (every route ever handed out,
 * with the peer it was given to and whether that peer still holds it):
 * every live route finds its peer, every released route finds nothing (not
 * even after its slot went to another peer), a route with the right slot
 * and any other bits finds nothing, no two live peers share a slot, a
 * reused slot never repeats its previous tag (bits 16-31), route 0 is never
 * handed out, and a full table (65536 peers) answers 0 ("use the reply
 * endpoint") instead of failing.
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
        assert_true(peers[i].route != 0);
        assert_true(tsr_wire_get_u64(peers[i].route_wire) == peers[i].route);
    }
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(tsr__route_lookup_locked(&t, peers[i].route), &peers[i]);
        for (int b = 16; b < 64; b++) /* any other random bit: nobody */
            assert_null(tsr__route_lookup_locked(&t, peers[i].route ^ (1ull << b)));
        for (int j = 0; j < i; j++) /* one slot each */
            assert_int_not_equal(TSR_WIRE_ROUTE_SLOT(peers[i].route),
                                 TSR_WIRE_ROUTE_SLOT(peers[j].route));
    }
    assert_null(tsr__route_lookup_locked(&t, 0));
    assert_null(tsr__route_lookup_locked(&t, 0xffffffffffffffffull)); /* beyond the table */
    uint64_t old = peers[7].route;
    tsr__route_release_locked(&t, &peers[7]);
    assert_true(peers[7].route == 0);
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
    /* The model: every route given and to whom, and each slot's last tag. */
    uint64_t *given = calloc(OPS, sizeof(*given));
    int *owner = calloc(OPS, sizeof(*owner));
    size_t *held = calloc(N, sizeof(*held)); /* peer -> index in given */
    uint32_t *last_tag = calloc(65536, sizeof(*last_tag));
    size_t ngiven = 0;
    assert_non_null(peers);
    assert_non_null(live);
    assert_non_null(given);
    assert_non_null(owner);
    assert_non_null(held);
    assert_non_null(last_tag);
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rnd() % N);
        if (!live[i]) {
            tsr__route_assign_locked(&t, &peers[i]);
            uint64_t r = peers[i].route;
            assert_true(r != 0);
            uint32_t slot = TSR_WIRE_ROUTE_SLOT(r);
            uint32_t tag = (uint32_t)(r >> 16) & 0xffffu;
            if (last_tag[slot]) /* a reused slot: never its previous tag */
                assert_int_not_equal(tag + 1, last_tag[slot]);
            last_tag[slot] = tag + 1; /* +1: 0 means "never used" here */
            for (int j = 0; j < N; j++)
                if (live[j])
                    assert_int_not_equal(TSR_WIRE_ROUTE_SLOT(peers[j].route), slot);
            live[i] = true;
            held[i] = ngiven;
            owner[ngiven] = i;
            given[ngiven++] = r;
        } else {
            tsr__route_release_locked(&t, &peers[i]);
            live[i] = false;
        }
        if (op % 1000 == 0) {
            for (size_t g = 0; g < ngiven; g++) {
                int o = owner[g];
                bool holds = live[o] && held[o] == g;
                tsr_peer_t *p = tsr__route_lookup_locked(&t, given[g]);
                if (holds)
                    assert_ptr_equal(p, &peers[o]);
                else
                    assert_null(p); /* released: dead, even if the slot has a new owner */
            }
            assert_true(t.nroutes <= 512); /* it grows with the live peers only */
        }
    }
    tsr__route_fini(&t);
    free(peers);
    free(live);
    free(given);
    free(owner);
    free(held);
    free(last_tag);
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
        assert_true(peers[i].route != 0);
    }
    tsr__route_assign_locked(&t, &peers[FULL]);
    assert_true(peers[FULL].route == 0);
    assert_true(tsr_wire_get_u64(peers[FULL].route_wire) == 0);
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
