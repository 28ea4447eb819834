/*
 * wire.c - encode and check Tessera's transport headers and remote memory
 * descriptors (format in wire.h).
 *
 * Decoders follow one rule: read nothing before checking that the bytes are
 * there, and accept a value only when the receiver knows what it means. A
 * field that is reserved in this version must be zero, so a newer sender's
 * meaning is never silently misread by an older receiver.
 */
#include "wire.h"

#include <stdbool.h>
#include <string.h>

const char *tsr_wire_err_str(tsr_wire_err_t e)
{
    switch (e) {
    case TSR_WIRE_OK:
        return "ok";
    case TSR_WIRE_ETRUNC:
        return "truncated";
    case TSR_WIRE_EMAGIC:
        return "bad magic";
    case TSR_WIRE_EVERSION:
        return "unsupported version";
    case TSR_WIRE_EFIELD:
        return "invalid field";
    case TSR_WIRE_ELENGTH:
        return "length mismatch";
    }
    return "unknown";
}

void tsr_wire_hdr_encode(const tsr_wire_hdr_t *h, uint8_t out[TSR_WIRE_HDR_LEN])
{
    tsr_wire_put_u16(out + 0, TSR_WIRE_MAGIC);
    out[2] = TSR_WIRE_VERSION;
    out[3] = h->kind;
    tsr_wire_put_u16(out + 4, TSR_WIRE_HDR_LEN);
    tsr_wire_put_u16(out + 6, h->type);
    tsr_wire_put_u32(out + 8, h->flags);
    tsr_wire_put_u32(out + 12, (uint32_t)h->status);
    tsr_wire_put_u32(out + 16, h->src_node);
    tsr_wire_put_u32(out + 20, 0);
    tsr_wire_put_u64(out + 24, h->call_id);
    tsr_wire_put_u64(out + 32, h->payload_len);
}

tsr_wire_err_t tsr_wire_hdr_decode(const void *buf, size_t buf_len, size_t payload_len,
                                   tsr_wire_hdr_t *h)
{
    const uint8_t *p = buf;
    if (p == NULL || buf_len < TSR_WIRE_HDR_LEN)
        return TSR_WIRE_ETRUNC;
    if (tsr_wire_get_u16(p) != TSR_WIRE_MAGIC)
        return TSR_WIRE_EMAGIC;
    if (p[2] != TSR_WIRE_VERSION)
        return TSR_WIRE_EVERSION;
    uint16_t hdr_len = tsr_wire_get_u16(p + 4);
    /* A v1 header is at least 40 bytes and the sender must have sent every
     * byte it announces: a shorter delivery is truncation, not an extension. */
    if (hdr_len < TSR_WIRE_HDR_LEN)
        return TSR_WIRE_EFIELD;
    if (hdr_len != buf_len)
        return buf_len < hdr_len ? TSR_WIRE_ETRUNC : TSR_WIRE_ELENGTH;

    tsr_wire_hdr_t d;
    d.route = 0; /* the full header has none: such requests come with UCX's reply endpoint */
    d.version = p[2];
    d.kind = p[3];
    d.type = tsr_wire_get_u16(p + 6);
    d.flags = tsr_wire_get_u32(p + 8);
    d.status = (int32_t)tsr_wire_get_u32(p + 12);
    d.src_node = tsr_wire_get_u32(p + 16);
    uint32_t reserved = tsr_wire_get_u32(p + 20);
    d.call_id = tsr_wire_get_u64(p + 24);
    d.payload_len = tsr_wire_get_u64(p + 32);

    if (d.flags != 0 || reserved != 0 || d.src_node == 0)
        return TSR_WIRE_EFIELD;
    switch (d.kind) {
    case TSR_WIRE_HELLO:
    case TSR_WIRE_HELLO_ACK:
        /* Handshakes carry no type, status or call, and as payload at
         * most the sender's route (wire.h, "Routes"). */
        if (d.type != 0 || d.status != 0 || d.call_id != 0 ||
            (d.payload_len != 0 && d.payload_len != TSR_WIRE_ROUTE_LEN))
            return TSR_WIRE_EFIELD;
        break;
    case TSR_WIRE_REQUEST:
        if (d.status != 0 || d.call_id == 0)
            return TSR_WIRE_EFIELD;
        break;
    case TSR_WIRE_RESPONSE:
        if (d.call_id == 0 || !tsr_wire_status_valid(d.status))
            return TSR_WIRE_EFIELD;
        break;
    default:
        return TSR_WIRE_EFIELD;
    }
    if (d.payload_len > TSR_WIRE_MAX_PAYLOAD)
        return TSR_WIRE_EFIELD;
    if (d.payload_len != payload_len)
        return TSR_WIRE_ELENGTH;
    *h = d;
    return TSR_WIRE_OK;
}

static int rmem_valid(uint64_t addr, uint64_t len, uint32_t rkey_len)
{
    if (len == 0 || rkey_len == 0 || rkey_len > TSR_WIRE_MAX_RKEY)
        return 0;
    return addr <= UINT64_MAX - len; /* the region does not wrap around */
}

size_t tsr_wire_rmem_encode(const tsr_wire_rmem_t *m, uint8_t *out, size_t cap)
{
    if (m == NULL || out == NULL || !rmem_valid(m->addr, m->len, m->rkey_len) ||
        m->rkey == NULL)
        return 0;
    size_t need = tsr_wire_rmem_size(m->rkey_len);
    if (cap < need)
        return 0;
    tsr_wire_put_u32(out + 0, TSR_WIRE_RMEM_MAGIC);
    tsr_wire_put_u16(out + 4, TSR_WIRE_RMEM_VERSION);
    tsr_wire_put_u16(out + 6, 0);
    tsr_wire_put_u64(out + 8, m->addr);
    tsr_wire_put_u64(out + 16, m->len);
    tsr_wire_put_u32(out + 24, m->rkey_len);
    memcpy(out + TSR_WIRE_RMEM_FIXED, m->rkey, m->rkey_len);
    return need;
}

tsr_wire_err_t tsr_wire_rmem_decode(const void *buf, size_t len, tsr_wire_rmem_t *m)
{
    const uint8_t *p = buf;
    if (p == NULL || len < TSR_WIRE_RMEM_FIXED)
        return TSR_WIRE_ETRUNC;
    if (tsr_wire_get_u32(p) != TSR_WIRE_RMEM_MAGIC)
        return TSR_WIRE_EMAGIC;
    if (tsr_wire_get_u16(p + 4) != TSR_WIRE_RMEM_VERSION)
        return TSR_WIRE_EVERSION;
    if (tsr_wire_get_u16(p + 6) != 0)
        return TSR_WIRE_EFIELD;
    uint64_t addr = tsr_wire_get_u64(p + 8);
    uint64_t rlen = tsr_wire_get_u64(p + 16);
    uint32_t rkey_len = tsr_wire_get_u32(p + 24);
    if (!rmem_valid(addr, rlen, rkey_len))
        return TSR_WIRE_EFIELD;
    /* rkey_len <= 4096, so the sum cannot overflow. */
    size_t need = tsr_wire_rmem_size(rkey_len);
    if (len < need)
        return TSR_WIRE_ETRUNC;
    if (len != need)
        return TSR_WIRE_ELENGTH;
    m->addr = addr;
    m->len = rlen;
    m->rkey_len = rkey_len;
    m->rkey = p + TSR_WIRE_RMEM_FIXED;
    return TSR_WIRE_OK;
}
