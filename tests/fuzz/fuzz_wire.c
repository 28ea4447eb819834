/*
 * fuzz_wire.c - libFuzzer target for the transport's decoders
 * (transport/wire.c: message headers, call headers and remote memory
 * descriptors).
 *
 * Input layout: byte 0 picks the decoder (bit 0: a descriptor, else bit 2:
 * a call header, else a full header),
 * bytes 1..8 are the payload length UCX would report (header decoder), the
 * rest is the buffer to decode.
 *
 * Oracle: besides "no crash, no out-of-bounds read, no sanitizer report":
 *  - whatever decodes re-encodes to exactly the bytes it came from (for a
 *    40-byte header) or to the same fields, so nothing is accepted that the
 *    encoder could not have produced;
 *  - an accepted header satisfies every documented rule (kind, status or
 *    route, ids, payload length equal to the reported one);
 *  - an accepted descriptor's rkey lies inside the input.
 * The input buffer is copied to an exact-size heap block so ASan catches any
 * read past its end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

static void fuzz_header(const uint8_t *buf, size_t len, uint64_t plen)
{
    tsr_wire_hdr_t h;
    if (tsr_wire_hdr_decode(buf, len, (size_t)plen, &h) != TSR_WIRE_OK)
        return;
    check(len >= TSR_WIRE_HDR_LEN && len == tsr_wire_get_u16(buf + 4));
    check(h.kind >= TSR_WIRE_HELLO && h.kind <= TSR_WIRE_RESPONSE);
    check(h.flags == 0 && h.src_node != 0);
    check(h.payload_len == plen && h.payload_len <= TSR_WIRE_MAX_PAYLOAD);
    check(tsr_wire_status_valid(h.status));
    if (h.kind == TSR_WIRE_REQUEST || h.kind == TSR_WIRE_RESPONSE)
        check(h.call_id != 0);
    else /* handshakes: at most a route as payload */
        check(h.call_id == 0 && h.type == 0 &&
              (h.payload_len == 0 || h.payload_len == TSR_WIRE_ROUTE_LEN));
    if (h.kind != TSR_WIRE_RESPONSE)
        check(h.status == 0);
    check(h.route == 0); /* the full header carries none */
    uint8_t again[TSR_WIRE_HDR_LEN];
    tsr_wire_hdr_encode(&h, again);
    if (len == TSR_WIRE_HDR_LEN)
        check(memcmp(again, buf, TSR_WIRE_HDR_LEN) == 0);
    else /* a longer (extended) header: the v1 part still round-trips */
        check(memcmp(again + 6, buf + 6, TSR_WIRE_HDR_LEN - 6) == 0);
}

static void fuzz_call(const uint8_t *buf, size_t len, uint64_t plen)
{
    tsr_wire_hdr_t h;
    if (tsr_wire_call_decode(buf, len, (size_t)plen, &h) != TSR_WIRE_OK)
        return;
    check(len == (h.kind == TSR_WIRE_REQUEST ? TSR_WIRE_CALL_REQ_LEN : TSR_WIRE_CALL_HDR_LEN));
    check(h.kind == TSR_WIRE_REQUEST || h.kind == TSR_WIRE_RESPONSE);
    check(h.flags == 0 && h.src_node == 0 && h.call_id != 0);
    check(h.payload_len == plen && h.payload_len <= TSR_WIRE_MAX_PAYLOAD);
    check(tsr_wire_status_valid(h.status));
    if (h.kind == TSR_WIRE_REQUEST) /* a request's word and tail are its route */
        check(h.status == 0 && (uint32_t)h.route == tsr_wire_get_u32(buf + 4) &&
              (uint32_t)(h.route >> 32) == tsr_wire_get_u32(buf + 16));
    else
        check(h.route == 0);
    uint8_t again[TSR_WIRE_CALL_REQ_LEN];
    check(tsr_wire_call_encode(&h, again) == len);
    check(memcmp(again, buf, len) == 0);
}

static void fuzz_rmem(const uint8_t *buf, size_t len)
{
    tsr_wire_rmem_t m;
    if (tsr_wire_rmem_decode(buf, len, &m) != TSR_WIRE_OK)
        return;
    check(m.len > 0 && m.addr + m.len >= m.addr);
    check(m.rkey_len > 0 && m.rkey_len <= TSR_WIRE_MAX_RKEY);
    check(m.rkey == buf + TSR_WIRE_RMEM_FIXED && TSR_WIRE_RMEM_FIXED + m.rkey_len == len);
    uint8_t *again = malloc(len);
    check(again != NULL);
    check(tsr_wire_rmem_encode(&m, again, len) == len);
    check(memcmp(again, buf, len) == 0);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint8_t mode = data[0];
    uint64_t plen = tsr_wire_get_u64(data + 1);
    if (mode & 2) /* half the time: a realistic small payload length */
        plen &= 0xffff;
    size_t len = size - 9;
    uint8_t *buf = malloc(len ? len : 1);
    check(buf != NULL);
    memcpy(buf, data + 9, len);
    if (mode & 1)
        fuzz_rmem(buf, len);
    else if (mode & 4)
        fuzz_call(buf, len, plen);
    else
        fuzz_header(buf, len, plen);
    free(buf);
    return 0;
}
