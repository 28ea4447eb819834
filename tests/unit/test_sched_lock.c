/*
 * test_sched_lock.c - the lock request and status payloads the CLI, the
 * scheduler and the workers exchange (scheduler/proto.c, "lock requests").
 *
 * Model: random requests and statuses round-trip field for field; every
 * truncation of an encoded message and every trailing byte is refused; an
 * unknown op, a mode byte other than 0/1, a string without its NUL and an
 * unknown lock state are refused; names of 0, 1, 255 and 256 bytes travel
 * unchanged (the codec does not judge names: the worker does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_request_roundtrip(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 2, 7, 255, 256, 1000};
    char name[1001];
    for (int it = 0; it < 2000; it++) {
        size_t n = lens[it % 7];
        for (size_t i = 0; i < n; i++)
            name[i] = (char)(1 + rnd() % 255); /* any byte but NUL */
        name[n] = '\0';
        tsr_client_lock_req_t q = {.op = (uint8_t)(1 + rnd() % 4),
                                   .name = name,
                                   .shared = rnd() & 1,
                                   .lease_ms = (int64_t)rnd(),
                                   .timeout_ms = (int64_t)rnd(),
                                   .token = rnd(),
                                   .home = (uint32_t)rnd()};
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_proto_encode_lock_req(&b, &q);
        assert_false(b.failed);
        tsr_client_lock_req_t d;
        assert_true(tsr_proto_decode_lock_req(b.data, b.len, &d));
        assert_int_equal(d.op, q.op);
        assert_string_equal(d.name, q.name);
        assert_int_equal(d.shared, q.shared);
        assert_true(d.lease_ms == q.lease_ms && d.timeout_ms == q.timeout_ms);
        assert_true(d.token == q.token && d.home == q.home);
        if (it < 50)
            for (size_t cut = 0; cut < b.len; cut++)
                assert_false(tsr_proto_decode_lock_req(b.data, cut, &d));
        uint8_t *longer = malloc(b.len + 1);
        assert_non_null(longer);
        memcpy(longer, b.data, b.len);
        longer[b.len] = 0;
        assert_false(tsr_proto_decode_lock_req(longer, b.len + 1, &d));
        free(longer);
        tsr_wbuf_free(&b);
    }
}

static void test_request_refused(void **state)
{
    (void)state;
    tsr_client_lock_req_t q = {.op = TSR_CLIENT_LOCK_ACQUIRE, .name = "a"};
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_lock_req(&b, &q);
    tsr_client_lock_req_t d;
    assert_true(tsr_proto_decode_lock_req(b.data, b.len, &d));
    uint8_t *m = b.data;
    uint8_t ops[] = {0, 5, 255};
    for (size_t i = 0; i < sizeof(ops); i++) {
        m[0] = ops[i];
        assert_false(tsr_proto_decode_lock_req(m, b.len, &d));
    }
    m[0] = TSR_CLIENT_LOCK_STATUS;
    assert_true(tsr_proto_decode_lock_req(m, b.len, &d));
    /* op(1) | len(4) "a" NUL | mode: byte 7 */
    m[7] = 2;
    assert_false(tsr_proto_decode_lock_req(m, b.len, &d));
    m[7] = 1;
    assert_true(tsr_proto_decode_lock_req(m, b.len, &d));
    assert_true(d.shared);
    m[6] = 'x'; /* the string's NUL */
    assert_false(tsr_proto_decode_lock_req(m, b.len, &d));
    assert_false(tsr_proto_decode_lock_req(NULL, 0, &d));
    tsr_wbuf_free(&b);
}

static void test_status_roundtrip(void **state)
{
    (void)state;
    for (int it = 0; it < 1000; it++) {
        tsr_lock_status_t st = {.state = (tsr_lock_state_t)(rnd() % 3),
                                .holders = (uint32_t)rnd(),
                                .holders_exact = rnd() & 1,
                                .waiters = (uint32_t)rnd(),
                                .last_token = rnd(),
                                .lease_ms = (int64_t)(rnd() % 5242871),
                                .home = (uint32_t)rnd(),
                                .slot = (uint32_t)rnd(),
                                .epoch = (uint32_t)(rnd() % 256)};
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_proto_encode_lock_status(&b, &st);
        tsr_lock_status_t d;
        assert_true(tsr_proto_decode_lock_status(b.data, b.len, &d));
        assert_int_equal(d.state, st.state);
        assert_int_equal(d.holders, st.holders);
        assert_int_equal(d.holders_exact, st.holders_exact);
        assert_int_equal(d.waiters, st.waiters);
        assert_true(d.last_token == st.last_token && d.lease_ms == st.lease_ms);
        assert_true(d.home == st.home && d.slot == st.slot && d.epoch == st.epoch);
        for (size_t cut = 0; cut < b.len; cut++)
            assert_false(tsr_proto_decode_lock_status(b.data, cut, &d));
        ((uint8_t *)b.data)[0] = 3; /* no such state */
        assert_false(tsr_proto_decode_lock_status(b.data, b.len, &d));
        tsr_wbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_request_refused),
        cmocka_unit_test(test_status_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
