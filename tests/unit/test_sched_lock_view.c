/*
 * test_sched_lock_view.c - the lock view message (scheduler/proto.c, LOCK_VIEW:
 * the published lock homes a C-API client connects to) and the listener side
 * of the token handshake (scheduler/handshake.c) that workers and the
 * scheduler share.
 *
 * Model: random views (1, 2, 3, 7 and 1024 homes; hosts of 1..200 bytes,
 * ports 1..65535) round-trip field for field; every truncation and a
 * trailing byte are refused; versions other than 1, counts 0 and 1025, a
 * count the message cannot hold (refused before allocating), port 0 and
 * 65536 and an empty host are refused. Handshake: a dialer's MAC computed
 * with the same token is accepted (and the listener's MAC checks out for
 * the dialer); a wrong token is refused and needs a fresh HELLO; a second
 * HELLO, PROVE before HELLO, a short PROVE, a bad role or length are
 * refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "handshake.h"
#include "proto.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_view_roundtrip(void **state)
{
    (void)state;
    static const size_t counts[] = {1, 2, 3, 7, 1024};
    static char hosts[1024][201];
    static tsr_lock_view_home_t homes[1024];
    for (int it = 0; it < 40; it++) {
        size_t n = counts[it % 5];
        for (size_t i = 0; i < n; i++) {
            size_t hl = 1 + rnd() % 200;
            for (size_t k = 0; k < hl; k++)
                hosts[i][k] = (char)('a' + rnd() % 26);
            hosts[i][hl] = '\0';
            homes[i].worker = (uint32_t)rnd();
            homes[i].node_id = (uint32_t)rnd();
            homes[i].host = hosts[i];
            homes[i].port = (uint16_t)(1 + rnd() % 65535);
        }
        uint64_t gen = rnd();
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, NULL);
        tsr_proto_encode_lock_view(&b, gen, homes, n);
        assert_false(b.failed);
        tsr_lock_view_t v;
        assert_true(tsr_proto_decode_lock_view(NULL, b.data, b.len, &v));
        assert_int_equal(v.generation, gen);
        assert_int_equal(v.nhomes, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(v.homes[i].worker, homes[i].worker);
            assert_int_equal(v.homes[i].node_id, homes[i].node_id);
            assert_int_equal(v.homes[i].port, homes[i].port);
            assert_string_equal(v.homes[i].host, homes[i].host);
        }
        tsr_proto_lock_view_free(NULL, &v);
        if (n <= 7) { /* every truncation, and one byte too many */
            for (size_t cut = 0; cut < b.len; cut++)
                assert_false(tsr_proto_decode_lock_view(NULL, b.data, cut, &v));
            tsr_wbuf_u8(&b, 0);
            assert_false(tsr_proto_decode_lock_view(NULL, b.data, b.len, &v));
        }
        tsr_wbuf_free(&b);
    }
}

/* A view message written field by field, to break one field at a time. */
static void raw_view(tsr_wbuf_t *b, uint8_t version, uint32_t n, const char *host, uint32_t port)
{
    tsr_wbuf_init(b, NULL);
    tsr_wbuf_u8(b, version);
    tsr_wbuf_u64(b, 1);
    tsr_wbuf_u32(b, n);
    for (uint32_t i = 0; i < n && i < 4; i++) {
        tsr_wbuf_u32(b, i + 1);
        tsr_wbuf_u32(b, 7);
        tsr_wbuf_str(b, host);
        tsr_wbuf_u32(b, port);
    }
}

static void test_view_refused(void **state)
{
    (void)state;
    tsr_wbuf_t b;
    tsr_lock_view_t v;
    raw_view(&b, 1, 2, "127.0.0.1", 4000); /* the control: accepted */
    assert_true(tsr_proto_decode_lock_view(NULL, b.data, b.len, &v));
    tsr_proto_lock_view_free(NULL, &v);
    tsr_wbuf_free(&b);
    const struct {
        uint8_t version;
        uint32_t n;
        const char *host;
        uint32_t port;
    } bad[] = {
        {0, 2, "h", 4000}, {2, 2, "h", 4000},       {1, 0, "h", 4000},
        {1, 2, "h", 0},    {1, 2, "h", 65536},      {1, 2, "", 4000},
        {1, 1025, "h", 1}, {1, 1000000, "h", 4000}, {1, 0xffffffffu, "h", 4000},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        raw_view(&b, bad[i].version, bad[i].n, bad[i].host, bad[i].port);
        assert_false(tsr_proto_decode_lock_view(NULL, b.data, b.len, &v));
        assert_null(v.homes);
        tsr_wbuf_free(&b);
    }
    assert_false(tsr_proto_decode_lock_view(NULL, NULL, 0, &v));
}

static void token_of(tsr_token_t *t, const char *s)
{
    t->len = strlen(s);
    memcpy(t->bytes, s, t->len);
}

static void test_handshake(void **state)
{
    (void)state;
    tsr_token_t tok, wrong;
    token_of(&tok, "the-cluster-token-0123456789abcdef");
    token_of(&wrong, "not-the-cluster-token-0123456789");
    for (int it = 0; it < 20; it++) {
        uint8_t role = it % 2 ? TSR_ROLE_WORKER : TSR_ROLE_CLIENT;
        uint8_t hello[1 + TSR_NONCE_LEN], reply[TSR_HS_HELLO_REPLY], mac[TSR_MAC_LEN + 5];
        hello[0] = role;
        for (size_t i = 0; i < TSR_NONCE_LEN; i++)
            hello[1 + i] = (uint8_t)rnd();
        tsr_hs_t hs = {0};
        const uint8_t *rest = NULL;
        size_t rest_len = 0;
        /* PROVE before HELLO */
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, TSR_MAC_LEN, NULL, NULL), TSR_ERR_BAD_INPUT);
        assert_int_equal(tsr_hs_hello(&hs, &tok, hello, sizeof(hello), reply), TSR_OK);
        assert_int_equal(tsr_hs_hello(&hs, &tok, hello, sizeof(hello), reply), TSR_ERR_BAD_INPUT);
        /* the listener's MAC is what a dialer with the token expects */
        uint8_t want[TSR_MAC_LEN];
        tsr_auth_mac(&tok, "tsr-sched", role, hello + 1, reply, want);
        assert_true(tsr_auth_mac_equal(reply + TSR_NONCE_LEN, want));
        /* a dialer with the wrong token: refused, a new HELLO needed */
        tsr_auth_mac(&wrong, "tsr-peer", role, reply, hello + 1, mac);
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, TSR_MAC_LEN, NULL, NULL), TSR_ERR_AUTH);
        assert_false(hs.authed);
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, TSR_MAC_LEN, NULL, NULL), TSR_ERR_BAD_INPUT);
        assert_int_equal(tsr_hs_hello(&hs, &tok, hello, sizeof(hello), reply), TSR_OK);
        /* short, then right with 5 bytes of join info */
        tsr_auth_mac(&tok, "tsr-peer", role, reply, hello + 1, mac);
        memcpy(mac + TSR_MAC_LEN, "join!", 5);
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, TSR_MAC_LEN - 1, NULL, NULL),
                         TSR_ERR_BAD_INPUT);
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, sizeof(mac), &rest, &rest_len), TSR_OK);
        assert_true(hs.authed);
        assert_int_equal(rest_len, 5);
        assert_memory_equal(rest, "join!", 5);
        assert_int_equal(tsr_hs_prove(&hs, &tok, mac, sizeof(mac), NULL, NULL), TSR_ERR_BAD_INPUT);
    }
    tsr_hs_t hs = {0};
    uint8_t hello[2 + TSR_NONCE_LEN] = {9}, reply[TSR_HS_HELLO_REPLY];
    assert_int_equal(tsr_hs_hello(&hs, &tok, hello, 1 + TSR_NONCE_LEN, reply), TSR_ERR_BAD_INPUT);
    hello[0] = TSR_ROLE_CLIENT;
    assert_int_equal(tsr_hs_hello(&hs, &tok, hello, sizeof(hello), reply), TSR_ERR_BAD_INPUT);
    assert_int_equal(tsr_hs_hello(&hs, &tok, hello, TSR_NONCE_LEN, reply), TSR_ERR_BAD_INPUT);
    assert_false(hs.hello);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_roundtrip),
        cmocka_unit_test(test_view_refused),
        cmocka_unit_test(test_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
