/*
 * wire.h - Tessera's transport wire format: message headers and the remote
 * memory descriptor, encoded and decoded byte by byte.
 *
 * Every message Tessera sends over UCX is one active message (UCX AM id
 * TSR_WIRE_AM_ID) whose UCX *header* is the fixed header below and whose UCX
 * *data* is the payload. UCX delivers both lengths, so a decoder always knows
 * how many bytes it really has; it never trusts a length field before checking
 * it against them.
 *
 * Header, version 2, 40 bytes, all integers little-endian, no padding:
 *
 *   off size field
 *     0    2 magic        0x5354 ("TS" when read as bytes 'T','S')
 *     2    1 version      2; a receiver rejects any other major version
 *                         (2: handshakes carry a route payload, below)
 *     3    1 kind         tsr_wire_kind_t (HELLO, HELLO_ACK, REQUEST, RESPONSE)
 *     4    2 hdr_len      bytes of header the sender wrote (>= 40; later minor
 *                         revisions may append fields, which v1 ignores)
 *     6    2 type         RPC message type (REQUEST/RESPONSE), 0 otherwise
 *     8    4 flags        must be 0 in version 1 (reserved, checked)
 *    12    4 status       int32 tsr_status_t of a RESPONSE (0 otherwise); only
 *                         values of TSR_STATUS_LIST are accepted
 *    16    4 src_node     sender's node id (nonzero)
 *    20    4 reserved     must be 0
 *    24    8 call_id      REQUEST/RESPONSE: the caller's call id (nonzero)
 *    32    8 payload_len  bytes of UCX data that follow (must equal what UCX
 *                         delivered; at most TSR_WIRE_MAX_PAYLOAD)
 *
 * Remote memory descriptor (what tsr_region_pack produces and peers unpack),
 * version 1, 28 + rkey_len bytes, little-endian:
 *
 *     0    4 magic        0x4B525354 ("TSRK" as bytes)
 *     4    2 version      1
 *     6    2 reserved     must be 0
 *     8    8 addr         remote virtual address of the region's first byte
 *    16    8 len          region length in bytes (>= 1; addr + len no overflow)
 *    24    4 rkey_len     length of the packed UCX rkey (1..TSR_WIRE_MAX_RKEY)
 *    28    n rkey         ucp_rkey_pack output, opaque to Tessera
 *
 * The descriptor must be exactly 28 + rkey_len bytes: trailing bytes are an
 * error (they would mean the sender and receiver disagree on the format).
 *
 * Call header (UCX AM id TSR_WIRE_CALL_AM_ID): the short form requests and
 * responses travel with, version 2, little-endian:
 *
 *   off size field
 *     0    1 kind         REQUEST or RESPONSE (nothing else)
 *     1    1 version      TSR_WIRE_CALL_VERSION (2); others are rejected
 *     2    2 type         RPC message type
 *     4    4 status       RESPONSE: int32 tsr_status_t
 *              route_lo     REQUEST: low half of the sender's route (below)
 *     8    8 call_id      the caller's call id (nonzero)
 *    16    4 route_hi     REQUEST only: high half of the route
 *
 * A response is exactly 16 bytes, a request exactly 20 (more or fewer is an
 * error). The payload's length is the one UCX delivers, so there is no
 * length field to disagree with it (it must still be at most
 * TSR_WIRE_MAX_PAYLOAD), and there is no sender node: a request's sender is
 * the peer its route names - or, with route 0, the peer of the endpoint UCX
 * names (UCP_AM_SEND_FLAG_REPLY; a request with both is refused) - and a
 * response's is the peer its call went to. Why a short form: with the
 * 40-byte header an 8-byte request filled two cache lines of a shared-memory
 * FIFO element, with this one it fills one (28-byte element header, UCP's
 * 8-byte AM header, 8 bytes of payload, 20 of header: 64), and every line
 * is a cross-core transfer on the latency path (docs/transport.md, "The
 * call header", "Routes"). Handshakes keep the full header; requests and
 * responses in the full header are still accepted.
 *
 * Routes. HELLO and HELLO_ACK carry an 8-byte little-endian payload: the
 * route the sender wants the receiver's requests to carry (0: none - then
 * those requests name their sender by UCX's reply endpoint). A route is a
 * capability: bits 0-15 index the receiver's peer table (no search by
 * endpoint), bits 16-63 are random (getrandom), drawn anew whenever a slot
 * is given out, so a forgotten peer's stale route misses and another peer
 * cannot name itself as this one without guessing 48 random bits (a request
 * without the reply flag says nothing else about where it came from).
 * Without the reply flag a request carries no endpoint-id footer and UCX
 * does no endpoint lookup for it (docs/transport.md, "Routes").
 *
 * This module does not depend on UCX, so it is unit-tested and fuzzed alone.
 */
#ifndef TSR_TRANSPORT_WIRE_H
#define TSR_TRANSPORT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tessera/status.h"

#define TSR_WIRE_AM_ID 17u      /* the UCX active-message id of full headers */
#define TSR_WIRE_CALL_AM_ID 18u /* ... and of call headers */
#define TSR_WIRE_CALL_VERSION 2u
#define TSR_WIRE_CALL_HDR_LEN 16u /* a response's call header */
#define TSR_WIRE_CALL_REQ_LEN 20u /* a request's: the route's high half appended */
#define TSR_WIRE_ROUTE_LEN 8u     /* the route payload of HELLO / HELLO_ACK */
#define TSR_WIRE_ROUTE_SLOT(r) ((uint32_t)((r) & 0xffffu))
#define TSR_WIRE_MAGIC 0x5354u
#define TSR_WIRE_VERSION 2u /* 2: handshakes carry routes */
#define TSR_WIRE_HDR_LEN 40u
/* Largest payload a header may announce: 1 TiB, far above any real message,
 * small enough that size arithmetic on it cannot overflow. */
#define TSR_WIRE_MAX_PAYLOAD (1ull << 40)

#define TSR_WIRE_RMEM_MAGIC 0x4B525354u
#define TSR_WIRE_RMEM_VERSION 1u
#define TSR_WIRE_RMEM_FIXED 28u
#define TSR_WIRE_MAX_RKEY 4096u /* packed rkeys are tens to hundreds of bytes */

typedef enum tsr_wire_kind {
    TSR_WIRE_HELLO = 1,     /* connector -> acceptor: "I am node src_node" */
    TSR_WIRE_HELLO_ACK = 2, /* acceptor -> connector: "and I am src_node" */
    TSR_WIRE_REQUEST = 3,   /* RPC request of `type`, `call_id` */
    TSR_WIRE_RESPONSE = 4,  /* RPC response to `call_id`, with `status` */
} tsr_wire_kind_t;

typedef struct tsr_wire_hdr {
    uint8_t version;       /* TSR_WIRE_VERSION */
    uint8_t kind;          /* tsr_wire_kind_t */
    uint16_t type;         /* RPC type */
    uint32_t flags;        /* 0 */
    int32_t status;        /* tsr_status_t of a response */
    uint64_t route;        /* a call header's request: the sender's route (or 0) */
    uint32_t src_node;     /* sender's node id */
    uint64_t call_id;      /* RPC call id */
    uint64_t payload_len;  /* bytes of payload */
} tsr_wire_hdr_t;

/* Why a decode failed (the transport counts each reason). */
typedef enum tsr_wire_err {
    TSR_WIRE_OK = 0,
    TSR_WIRE_ETRUNC,    /* fewer bytes than the fixed part or than announced */
    TSR_WIRE_EMAGIC,    /* wrong magic */
    TSR_WIRE_EVERSION,  /* unknown version */
    TSR_WIRE_EFIELD,    /* a field holds a value it may not (kind, flags, status, ids) */
    TSR_WIRE_ELENGTH,   /* a length disagrees with what was delivered */
} tsr_wire_err_t;

const char *tsr_wire_err_str(tsr_wire_err_t e);

/* Encodes h into out[TSR_WIRE_HDR_LEN]. h->version is written as TSR_WIRE_VERSION. */
void tsr_wire_hdr_encode(const tsr_wire_hdr_t *h, uint8_t out[TSR_WIRE_HDR_LEN]);

/* Decodes a header of buf_len bytes and checks every field, including that
 * the payload UCX delivered (payload_len) matches what the header announces.
 * Returns TSR_WIRE_OK and fills *h, or the reason it refused (h untouched). */
tsr_wire_err_t tsr_wire_hdr_decode(const void *buf, size_t buf_len, size_t payload_len,
                                   tsr_wire_hdr_t *h);


typedef struct tsr_wire_rmem {
    uint64_t addr;        /* remote address of the region */
    uint64_t len;         /* region length */
    uint32_t rkey_len;    /* bytes at rkey */
    const uint8_t *rkey;  /* decode: points into the decoded buffer */
} tsr_wire_rmem_t;

/* Bytes tsr_wire_rmem_encode writes for an rkey of rkey_len bytes. */
static inline size_t tsr_wire_rmem_size(uint32_t rkey_len)
{
    return (size_t)TSR_WIRE_RMEM_FIXED + rkey_len;
}

/* Encodes m into out (cap bytes). Returns bytes written, or 0 when cap is too
 * small or m is invalid (len 0, rkey_len 0 or > TSR_WIRE_MAX_RKEY, overflow). */
size_t tsr_wire_rmem_encode(const tsr_wire_rmem_t *m, uint8_t *out, size_t cap);

/* Decodes a descriptor of exactly len bytes; m->rkey points into buf. */
tsr_wire_err_t tsr_wire_rmem_decode(const void *buf, size_t len, tsr_wire_rmem_t *m);

/* Little-endian helpers (also used by tests and the fuzz target): one load
 * or store each (memcpy: no alignment assumed), swapped on big-endian
 * hosts. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TSR_WIRE_LE16(v) __builtin_bswap16(v)
#define TSR_WIRE_LE32(v) __builtin_bswap32(v)
#define TSR_WIRE_LE64(v) __builtin_bswap64(v)
#else
#define TSR_WIRE_LE16(v) (v)
#define TSR_WIRE_LE32(v) (v)
#define TSR_WIRE_LE64(v) (v)
#endif
static inline void tsr_wire_put_u16(uint8_t *p, uint16_t v)
{
    v = TSR_WIRE_LE16(v);
    memcpy(p, &v, 2);
}
static inline void tsr_wire_put_u32(uint8_t *p, uint32_t v)
{
    v = TSR_WIRE_LE32(v);
    memcpy(p, &v, 4);
}
static inline void tsr_wire_put_u64(uint8_t *p, uint64_t v)
{
    v = TSR_WIRE_LE64(v);
    memcpy(p, &v, 8);
}
static inline uint16_t tsr_wire_get_u16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return TSR_WIRE_LE16(v);
}
static inline uint32_t tsr_wire_get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return TSR_WIRE_LE32(v);
}
static inline uint64_t tsr_wire_get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return TSR_WIRE_LE64(v);
}

/* The call header's functions are inline: each runs twice per round trip,
 * on the latency path of both ends. */

/* True when s is a status of TSR_STATUS_LIST. */
static inline int tsr_wire_status_valid(int32_t s)
{
    switch (s) {
#define TSR_WIRE_STATUS_CASE_(name, value, text) case value:
        TSR_STATUS_LIST(TSR_WIRE_STATUS_CASE_)
#undef TSR_WIRE_STATUS_CASE_
        return 1;
    default:
        return 0;
    }
}

/* Encodes h's kind, type, call_id and status (a response) or route (a
 * request) as a call header into out (TSR_WIRE_CALL_REQ_LEN bytes of room);
 * returns its length: TSR_WIRE_CALL_REQ_LEN for a request, else
 * TSR_WIRE_CALL_HDR_LEN. */
static inline size_t tsr_wire_call_encode(const tsr_wire_hdr_t *h,
                                          uint8_t out[TSR_WIRE_CALL_REQ_LEN])
{
    out[0] = h->kind;
    out[1] = TSR_WIRE_CALL_VERSION;
    tsr_wire_put_u16(out + 2, h->type);
    tsr_wire_put_u64(out + 8, h->call_id);
    if (h->kind != TSR_WIRE_REQUEST) {
        tsr_wire_put_u32(out + 4, (uint32_t)h->status);
        return TSR_WIRE_CALL_HDR_LEN;
    }
    tsr_wire_put_u32(out + 4, (uint32_t)h->route);
    tsr_wire_put_u32(out + 16, (uint32_t)(h->route >> 32));
    return TSR_WIRE_CALL_REQ_LEN;
}

/* Decodes and checks a call header of buf_len bytes carrying payload_len
 * bytes of payload. On TSR_WIRE_OK fills *h as tsr_wire_hdr_decode would,
 * with src_node 0 (unknown), payload_len as delivered, and a request's
 * route (any value: whether it names a peer is the transport's question). */
static inline tsr_wire_err_t tsr_wire_call_decode(const void *buf, size_t buf_len,
                                                  size_t payload_len, tsr_wire_hdr_t *h)
{
    const uint8_t *p = buf;
    if (p == NULL || buf_len < TSR_WIRE_CALL_HDR_LEN)
        return TSR_WIRE_ETRUNC;
    if (p[1] != TSR_WIRE_CALL_VERSION)
        return TSR_WIRE_EVERSION;
    size_t want = p[0] == TSR_WIRE_REQUEST ? TSR_WIRE_CALL_REQ_LEN : TSR_WIRE_CALL_HDR_LEN;
    if (buf_len != want)
        return buf_len < want ? TSR_WIRE_ETRUNC : TSR_WIRE_ELENGTH;
    tsr_wire_hdr_t d = {.version = TSR_WIRE_VERSION,
                        .kind = p[0],
                        .type = tsr_wire_get_u16(p + 2),
                        .call_id = tsr_wire_get_u64(p + 8),
                        .payload_len = payload_len};
    if (d.call_id == 0 || payload_len > TSR_WIRE_MAX_PAYLOAD)
        return TSR_WIRE_EFIELD;
    uint32_t word = tsr_wire_get_u32(p + 4); /* a request's route, a response's status */
    if (d.kind == TSR_WIRE_REQUEST)
        d.route = word | (uint64_t)tsr_wire_get_u32(p + 16) << 32;
    else if (d.kind == TSR_WIRE_RESPONSE && tsr_wire_status_valid((int32_t)word))
        d.status = (int32_t)word;
    else
        return TSR_WIRE_EFIELD;
    *h = d;
    return TSR_WIRE_OK;
}

#endif /* TSR_TRANSPORT_WIRE_H */
