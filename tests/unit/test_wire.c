/*
 * test_wire.c - the transport wire format (transport/wire.c): headers and
 * remote memory descriptors.
 *
 * Model: an independent encoder written here byte by byte from the table in
 * wire.h (not calling tsr_wire_*_encode), so a mistake in the shared helpers
 * cannot hide in both the encoder and the check. Random headers round-trip;
 * every truncation, every single-byte corruption of a checked field, every
 * wrong length is refused with the right reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The model encoder: little-endian by hand, straight from wire.h's table. */
static void model_hdr(uint8_t *o, uint8_t kind, uint16_t type, uint32_t flags, int32_t status,
                      uint32_t src, uint64_t call, uint64_t plen)
{
    memset(o, 0, 40);
    o[0] = 0x54; /* 0x5354 little-endian: 'T' 'S' */
    o[1] = 0x53;
    o[2] = 2;
    o[3] = kind;
    o[4] = 40;
    o[6] = (uint8_t)type;
    o[7] = (uint8_t)(type >> 8);
    for (int i = 0; i < 4; i++) {
        o[8 + i] = (uint8_t)(flags >> (8 * i));
        o[12 + i] = (uint8_t)((uint32_t)status >> (8 * i));
        o[16 + i] = (uint8_t)(src >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        o[24 + i] = (uint8_t)(call >> (8 * i));
        o[32 + i] = (uint8_t)(plen >> (8 * i));
    }
}

static const int32_t valid_statuses[] = {0, -1, -2, -3, -4, -5, -10, -11, -12, -13, -14,
                                         -20, -30, -31, -32, -33, -40, -41};

static void random_valid(tsr_wire_hdr_t *h)
{
    memset(h, 0, sizeof(*h));
    h->kind = (uint8_t)(1 + rnd() % 4);
    h->src_node = (uint32_t)(rnd() | 1);
    if (h->kind == TSR_WIRE_REQUEST || h->kind == TSR_WIRE_RESPONSE) {
        h->type = (uint16_t)rnd();
        h->call_id = rnd() | 1;
        h->payload_len = rnd() % 3 == 0 ? 0 : rnd() % TSR_WIRE_MAX_PAYLOAD;
        if (h->kind == TSR_WIRE_RESPONSE)
            h->status = valid_statuses[rnd() % (sizeof(valid_statuses) / sizeof(int32_t))];
    }
}

static void test_header_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        tsr_wire_hdr_t h, d;
        random_valid(&h);
        uint8_t buf[40], model[40];
        tsr_wire_hdr_encode(&h, buf);
        model_hdr(model, h.kind, h.type, h.flags, h.status, h.src_node, h.call_id,
                  h.payload_len);
        assert_memory_equal(buf, model, 40);
        assert_int_equal(tsr_wire_hdr_decode(buf, 40, h.payload_len, &d), TSR_WIRE_OK);
        assert_int_equal(d.kind, h.kind);
        assert_int_equal(d.type, h.type);
        assert_int_equal(d.status, h.status);
        assert_int_equal(d.src_node, h.src_node);
        assert_true(d.call_id == h.call_id);
        assert_true(d.payload_len == h.payload_len);
    }
}

static void test_header_truncated(void **state)
{
    (void)state;
    uint8_t buf[40];
    tsr_wire_hdr_t h = {.kind = TSR_WIRE_REQUEST, .type = 3, .src_node = 7, .call_id = 9};
    tsr_wire_hdr_encode(&h, buf);
    tsr_wire_hdr_t d;
    memset(&d, 0xee, sizeof(d));
    for (size_t n = 0; n < 40; n++)
        assert_int_equal(tsr_wire_hdr_decode(buf, n, 0, &d), TSR_WIRE_ETRUNC);
    assert_int_equal(tsr_wire_hdr_decode(NULL, 40, 0, &d), TSR_WIRE_ETRUNC);
    assert_int_equal(d.kind, 0xee); /* untouched on failure */
    /* hdr_len says more than was delivered: truncated; less than 40: bad. */
    uint8_t big[64];
    memcpy(big, buf, 40);
    tsr_wire_put_u16(big + 4, 48);
    assert_int_equal(tsr_wire_hdr_decode(big, 40, 0, &d), TSR_WIRE_ETRUNC);
    assert_int_equal(tsr_wire_hdr_decode(big, 48, 0, &d), TSR_WIRE_OK); /* a v1.x extension */
    assert_int_equal(tsr_wire_hdr_decode(big, 47, 0, &d), TSR_WIRE_ETRUNC);
    tsr_wire_put_u16(big + 4, 39);
    assert_int_equal(tsr_wire_hdr_decode(big, 40, 0, &d), TSR_WIRE_EFIELD);
    tsr_wire_put_u16(big + 4, 40);
    assert_int_equal(tsr_wire_hdr_decode(big, 41, 0, &d), TSR_WIRE_ELENGTH);
}

static void test_header_fields(void **state)
{
    (void)state;
    uint8_t b[40];
    tsr_wire_hdr_t d;
#define DEC(plen) tsr_wire_hdr_decode(b, 40, (plen), &d)
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 11, 100);
    assert_int_equal(DEC(100), TSR_WIRE_OK);
    assert_int_equal(DEC(99), TSR_WIRE_ELENGTH);
    assert_int_equal(DEC(101), TSR_WIRE_ELENGTH);
    b[0] ^= 1;
    assert_int_equal(DEC(100), TSR_WIRE_EMAGIC);
    b[0] ^= 1;
    for (int v = 0; v < 256; v++) {
        b[2] = (uint8_t)v;
        assert_int_equal(DEC(100), v == 2 ? TSR_WIRE_OK : TSR_WIRE_EVERSION);
    }
    b[2] = 2;
    for (int k = 0; k < 256; k++) {
        b[3] = (uint8_t)k;
        /* kinds 1, 2 must have no payload/call: only 3 and 4 pass here
         * (status 0 is a valid response status too). */
        int ok = k == TSR_WIRE_REQUEST || k == TSR_WIRE_RESPONSE;
        assert_int_equal(DEC(100) == TSR_WIRE_OK, ok);
    }
    b[3] = TSR_WIRE_REQUEST;
    /* Every nonzero flags bit, the reserved word, node 0, call 0. */
    for (int bit = 0; bit < 32; bit++) {
        model_hdr(b, TSR_WIRE_REQUEST, 5, 1u << bit, 0, 3, 11, 100);
        assert_int_equal(DEC(100), TSR_WIRE_EFIELD);
    }
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 11, 100);
    b[21] = 1;
    assert_int_equal(DEC(100), TSR_WIRE_EFIELD);
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 0, 11, 100);
    assert_int_equal(DEC(100), TSR_WIRE_EFIELD);
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 0, 100);
    assert_int_equal(DEC(100), TSR_WIRE_EFIELD);
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, -12, 3, 11, 100); /* requests carry no status */
    assert_int_equal(DEC(100), TSR_WIRE_EFIELD);
    /* Payload limits: the maximum passes, one more does not. */
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 11, TSR_WIRE_MAX_PAYLOAD);
    assert_int_equal(DEC(TSR_WIRE_MAX_PAYLOAD), TSR_WIRE_OK);
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 11, TSR_WIRE_MAX_PAYLOAD + 1);
    assert_int_equal(DEC(TSR_WIRE_MAX_PAYLOAD + 1), TSR_WIRE_EFIELD);
    model_hdr(b, TSR_WIRE_REQUEST, 5, 0, 0, 3, 11, UINT64_MAX);
    assert_int_equal(DEC(SIZE_MAX), TSR_WIRE_EFIELD);
    /* Responses: only statuses Tessera knows. */
    for (int32_t s = -100; s <= 5; s++) {
        model_hdr(b, TSR_WIRE_RESPONSE, 5, 0, s, 3, 11, 0);
        int known = tsr_wire_status_valid(s);
        assert_int_equal(DEC(0) == TSR_WIRE_OK, known);
    }
    assert_true(tsr_wire_status_valid(0) && tsr_wire_status_valid(TSR_ERR_TIMEOUT));
    assert_false(tsr_wire_status_valid(-9) || tsr_wire_status_valid(1));
    model_hdr(b, TSR_WIRE_RESPONSE, 5, 0, INT32_MIN, 3, 11, 0);
    assert_int_equal(DEC(0), TSR_WIRE_EFIELD);
    /* Handshakes: nothing but the node id. */
    model_hdr(b, TSR_WIRE_HELLO, 0, 0, 0, 3, 0, 0);
    assert_int_equal(DEC(0), TSR_WIRE_OK);
    model_hdr(b, TSR_WIRE_HELLO_ACK, 1, 0, 0, 3, 0, 0);
    assert_int_equal(DEC(0), TSR_WIRE_EFIELD);
    model_hdr(b, TSR_WIRE_HELLO, 0, 0, 0, 3, 1, 0);
    assert_int_equal(DEC(0), TSR_WIRE_EFIELD);
    /* ... and as payload nothing or exactly a route (8 bytes). */
    for (uint64_t n = 0; n <= 64; n++) {
        model_hdr(b, TSR_WIRE_HELLO, 0, 0, 0, 3, 0, n);
        bool ok = n == 0 || n == TSR_WIRE_ROUTE_LEN;
        assert_int_equal(DEC(n), ok ? TSR_WIRE_OK : TSR_WIRE_EFIELD);
        model_hdr(b, TSR_WIRE_HELLO_ACK, 0, 0, 0, 3, 0, n);
        assert_int_equal(DEC(n), ok ? TSR_WIRE_OK : TSR_WIRE_EFIELD);
    }
#undef DEC
}

/* Any single corrupted byte of a valid header either still decodes to the
 * same meaning for unchecked bytes (type, call id, node ...) or is refused;
 * it never crashes, and never decodes to a different kind. */
static void test_header_corruption(void **state)
{
    (void)state;
    for (int i = 0; i < 3000; i++) {
        tsr_wire_hdr_t h, d;
        random_valid(&h);
        uint8_t b[40];
        tsr_wire_hdr_encode(&h, b);
        size_t pos = rnd() % 40;
        uint8_t x = (uint8_t)(rnd() | 1);
        b[pos] ^= x;
        tsr_wire_err_t e = tsr_wire_hdr_decode(b, 40, h.payload_len, &d);
        if (pos < 6 || (pos >= 8 && pos < 12) || (pos >= 20 && pos < 24) || pos >= 32) {
            /* magic, version, kind, hdr_len, flags, reserved, payload_len:
             * checked exactly (a kind may flip to another valid kind only
             * when that kind's constraints happen to hold). */
            if (pos == 3 && e == TSR_WIRE_OK)
                assert_true(d.kind >= 1 && d.kind <= 4);
            else
                assert_int_not_equal(e, TSR_WIRE_OK);
        }
    }
}

static void test_rmem(void **state)
{
    (void)state;
    uint8_t rkey[TSR_WIRE_MAX_RKEY];
    for (size_t i = 0; i < sizeof(rkey); i++)
        rkey[i] = (uint8_t)rnd();
    static const uint32_t lens[] = {1, 2, 13, 24, 97, 4095, TSR_WIRE_MAX_RKEY};
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
        tsr_wire_rmem_t m = {.addr = rnd() >> 1, .len = (rnd() >> 20) + 1, .rkey_len = lens[li],
                             .rkey = rkey};
        size_t n = tsr_wire_rmem_size(m.rkey_len);
        uint8_t *buf = malloc(n + 8);
        assert_int_equal(tsr_wire_rmem_encode(&m, buf, n - 1), 0); /* too small */
        assert_int_equal(tsr_wire_rmem_encode(&m, buf, n + 8), n);
        /* Model check of the fixed part. */
        assert_int_equal(buf[0], 'T');
        assert_int_equal(buf[1], 'S');
        assert_int_equal(buf[2], 'R');
        assert_int_equal(buf[3], 'K');
        assert_true(tsr_wire_get_u64(buf + 8) == m.addr);
        tsr_wire_rmem_t d;
        assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_OK);
        assert_true(d.addr == m.addr && d.len == m.len && d.rkey_len == m.rkey_len);
        assert_memory_equal(d.rkey, rkey, m.rkey_len);
        for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : 97))
            assert_int_equal(tsr_wire_rmem_decode(buf, cut, &d), TSR_WIRE_ETRUNC);
        assert_int_equal(tsr_wire_rmem_decode(buf, n + 1, &d), TSR_WIRE_ELENGTH);
        free(buf);
    }
    /* Invalid descriptors are neither encoded nor decoded. */
    uint8_t buf[64];
    tsr_wire_rmem_t bad = {.addr = 1, .len = 0, .rkey_len = 4, .rkey = rkey};
    assert_int_equal(tsr_wire_rmem_encode(&bad, buf, sizeof(buf)), 0);
    bad.len = UINT64_MAX;
    assert_int_equal(tsr_wire_rmem_encode(&bad, buf, sizeof(buf)), 0); /* wraps */
    bad.len = 8;
    bad.rkey_len = 0;
    assert_int_equal(tsr_wire_rmem_encode(&bad, buf, sizeof(buf)), 0);
    bad.rkey_len = TSR_WIRE_MAX_RKEY + 1;
    assert_int_equal(tsr_wire_rmem_encode(&bad, buf, sizeof(buf)), 0);

    tsr_wire_rmem_t m = {.addr = 4096, .len = 64, .rkey_len = 4, .rkey = rkey}, d;
    size_t n = tsr_wire_rmem_encode(&m, buf, sizeof(buf));
    assert_int_equal(n, 32);
    buf[4] = 2; /* version */
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_EVERSION);
    buf[4] = 1;
    buf[6] = 1; /* reserved */
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_EFIELD);
    buf[6] = 0;
    tsr_wire_put_u64(buf + 16, 0); /* len 0 */
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_EFIELD);
    tsr_wire_put_u64(buf + 8, UINT64_MAX - 10); /* addr + len wraps */
    tsr_wire_put_u64(buf + 16, 64);
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_EFIELD);
    tsr_wire_put_u64(buf + 8, 4096);
    tsr_wire_put_u32(buf + 24, 0xffffffffu); /* huge rkey length */
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_EFIELD);
    tsr_wire_put_u32(buf + 24, 5); /* one more than present */
    assert_int_equal(tsr_wire_rmem_decode(buf, n, &d), TSR_WIRE_ETRUNC);
    assert_int_equal(tsr_wire_rmem_decode(NULL, n, &d), TSR_WIRE_ETRUNC);
}

/* The model of the call header (wire.h's second table): word is a
 * response's status or a request's route, whose high half a request
 * appends (20 bytes; a response is 16). Returns the length. */
static size_t model_call(uint8_t *o, uint8_t kind, uint16_t type, uint64_t word, uint64_t call)
{
    o[0] = kind;
    o[1] = 2;
    o[2] = (uint8_t)type;
    o[3] = (uint8_t)(type >> 8);
    for (int i = 0; i < 4; i++)
        o[4 + i] = (uint8_t)(word >> (8 * i));
    for (int i = 0; i < 8; i++)
        o[8 + i] = (uint8_t)(call >> (8 * i));
    if (kind != TSR_WIRE_REQUEST)
        return 16;
    for (int i = 0; i < 4; i++)
        o[16 + i] = (uint8_t)(word >> (32 + 8 * i));
    return 20;
}

static void test_call_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        tsr_wire_hdr_t h;
        do
            random_valid(&h);
        while (h.kind != TSR_WIRE_REQUEST && h.kind != TSR_WIRE_RESPONSE);
        if (h.kind == TSR_WIRE_REQUEST)
            h.route = rnd(); /* any value: the transport judges it */
        uint8_t buf[20], model[20];
        size_t n = tsr_wire_call_encode(&h, buf);
        size_t mn = model_call(model, h.kind, h.type,
                               h.kind == TSR_WIRE_REQUEST ? h.route : (uint32_t)h.status,
                               h.call_id);
        assert_int_equal(n, mn);
        assert_memory_equal(buf, model, n);
        tsr_wire_hdr_t d;
        memset(&d, 0xee, sizeof(d));
        assert_int_equal(tsr_wire_call_decode(buf, n, h.payload_len, &d), TSR_WIRE_OK);
        assert_int_equal(d.version, TSR_WIRE_VERSION);
        assert_int_equal(d.kind, h.kind);
        assert_int_equal(d.type, h.type);
        assert_int_equal(d.flags, 0);
        assert_int_equal(d.status, h.status);
        assert_int_equal(d.route, h.kind == TSR_WIRE_REQUEST ? h.route : 0);
        assert_int_equal(d.src_node, 0); /* not carried: the route or endpoint says */
        assert_true(d.call_id == h.call_id);
        assert_true(d.payload_len == h.payload_len); /* what UCX delivered */
    }
}

static void test_call_refused(void **state)
{
    (void)state;
    uint8_t b[24] = {0};
    tsr_wire_hdr_t d;
    memset(&d, 0xee, sizeof(d));
#define CDEC(n, plen) tsr_wire_call_decode(b, (n), (plen), &d)
    /* A request is 20 bytes, a response 16: anything shorter is truncated,
     * anything longer a length error. */
    model_call(b, TSR_WIRE_REQUEST, 7, 0, 99);
    for (size_t n = 0; n < 20; n++)
        assert_int_equal(CDEC(n, 8), TSR_WIRE_ETRUNC);
    assert_int_equal(tsr_wire_call_decode(NULL, 20, 8, &d), TSR_WIRE_ETRUNC);
    assert_int_equal(d.kind, 0xee); /* untouched on failure */
    assert_int_equal(CDEC(21, 8), TSR_WIRE_ELENGTH);
    assert_int_equal(CDEC(24, 8), TSR_WIRE_ELENGTH);
    assert_int_equal(CDEC(20, 8), TSR_WIRE_OK);
    assert_int_equal(CDEC(20, TSR_WIRE_MAX_PAYLOAD), TSR_WIRE_OK);
    assert_int_equal(CDEC(20, TSR_WIRE_MAX_PAYLOAD + 1), TSR_WIRE_EFIELD);
    model_call(b, TSR_WIRE_RESPONSE, 7, 0, 99);
    for (size_t n = 0; n < 16; n++)
        assert_int_equal(CDEC(n, 8), TSR_WIRE_ETRUNC);
    assert_int_equal(CDEC(16, 8), TSR_WIRE_OK);
    assert_int_equal(CDEC(17, 8), TSR_WIRE_ELENGTH);
    assert_int_equal(CDEC(20, 8), TSR_WIRE_ELENGTH);
    for (int v = 0; v < 256; v++) {
        b[1] = (uint8_t)v;
        assert_int_equal(CDEC(16, 8), v == 2 ? TSR_WIRE_OK : TSR_WIRE_EVERSION);
    }
    b[1] = 2;
    for (int k = 0; k < 256; k++) { /* only requests and responses */
        b[0] = (uint8_t)k;
        bool ok = k == TSR_WIRE_REQUEST || k == TSR_WIRE_RESPONSE;
        size_t n = k == TSR_WIRE_REQUEST ? 20 : 16;
        assert_int_equal(CDEC(n, 8), ok ? TSR_WIRE_OK : TSR_WIRE_EFIELD);
    }
    model_call(b, TSR_WIRE_REQUEST, 7, 0, 0); /* call id 0 */
    assert_int_equal(CDEC(20, 0), TSR_WIRE_EFIELD);
    model_call(b, TSR_WIRE_REQUEST, 7, 0x0123456789abcdefull, 5); /* the route: any value */
    assert_int_equal(CDEC(20, 0), TSR_WIRE_OK);
    assert_int_equal(d.status, 0);
    assert_true(d.route == 0x0123456789abcdefull);
    model_call(b, TSR_WIRE_RESPONSE, 7, (uint32_t)-1, 5);
    assert_int_equal(CDEC(16, 0), TSR_WIRE_OK);
    assert_int_equal(d.status, -1);
    assert_true(d.route == 0);
    for (int32_t s = -100; s <= 100; s++) { /* a response's status must exist */
        model_call(b, TSR_WIRE_RESPONSE, 7, (uint32_t)s, 5);
        assert_int_equal(CDEC(16, 0), tsr_wire_status_valid(s) ? TSR_WIRE_OK : TSR_WIRE_EFIELD);
    }
#undef CDEC
}

static void test_le_helpers(void **state)
{
    (void)state;
    uint8_t b[8];
    for (int i = 0; i < 1000; i++) {
        uint64_t v = rnd();
        tsr_wire_put_u64(b, v);
        for (int k = 0; k < 8; k++)
            assert_int_equal(b[k], (uint8_t)(v >> (8 * k)));
        assert_true(tsr_wire_get_u64(b) == v);
        tsr_wire_put_u32(b, (uint32_t)v);
        assert_true(tsr_wire_get_u32(b) == (uint32_t)v);
        tsr_wire_put_u16(b, (uint16_t)v);
        assert_true(tsr_wire_get_u16(b) == (uint16_t)v);
    }
    for (int e = 0; e <= TSR_WIRE_ELENGTH; e++)
        assert_non_null(tsr_wire_err_str((tsr_wire_err_t)e));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_roundtrip),  cmocka_unit_test(test_header_truncated),
        cmocka_unit_test(test_header_fields),     cmocka_unit_test(test_header_corruption),
        cmocka_unit_test(test_rmem),              cmocka_unit_test(test_le_helpers),
        cmocka_unit_test(test_call_roundtrip),    cmocka_unit_test(test_call_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
