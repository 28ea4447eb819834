/*
 * txn_wire.h - the messages of remote transactions (tsr_txn_db_remote's
 * client in remote.c, the owner's tsr_txn_server in server.c) and their
 * bounds-checked encoders and decoders. Private to engine/txn.
 *
 * Wire format (one RPC type; all integers little-endian):
 *
 *   READ    u8 1, u16 table length, table, u32 klen, key
 *           reply TSR_OK: u8 found, u64 version, value; errors: status + text
 *   READ_MANY  u8 3, u32 n, n x [u16 table length, table, u32 klen, key]
 *           reply TSR_OK: n x [u32 status, u64 version, u32 len, bytes]:
 *           TSR_OK with the value, TSR_ERR_NOT_FOUND with version
 *           KV_TXN_ABSENT for an absent key, another status with its
 *           error text (an unknown table: that key only)
 *   READ_SNAP  u8 4, then as READ_MANY; reply as READ_MANY's, then u8 1
 *           when the owner validated the keys read, after reading them
 *           all, as a read-only commit would (a snapshot: the reader's
 *           commit needs no call), else 0. An owner older than READ_SNAP
 *           answers TSR_ERR_BAD_INPUT; the client then reads by READ_MANY.
 *   COMMIT  u8 2, u32 ntables, u32 nreads, u32 nwrites,
 *           ntables x [u16 length, name],
 *           nreads  x [u32 table, u32 klen, key, u64 version read],
 *           nwrites x [u32 table, u8 delete, u32 klen, key, u32 vlen, value,
 *                      u16 lock length, lock name, u64 token]
 *           reply: the commit's status, with an error text when not TSR_OK
 *   COMMIT_LOCKED  u8 5, then as COMMIT with a u64 after each write's token:
 *           the lock tag its client holds on the key (one-sided CAS,
 *           kv_internal.h "Remote locks"), 0 for a key the owner locks.
 *           Sent only to owners whose kv server offers remote locks.
 *
 * (the first byte's values: TXN_MSG_* in txn_internal.h)
 */
#ifndef TSR_TXN_WIRE_H
#define TSR_TXN_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"
#include "kv_internal.h"

#define NAME_CAP (TSR_KV_NAME_MAX + 1)

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} wbuf_t;

static inline void put_bytes(wbuf_t *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (tsr_mem_grow(NULL, (void **)&b->p, &b->cap, b->len + n, 1) != 0) {
        b->oom = true;
        return;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static inline void put_u8(wbuf_t *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put_bytes(b, &c, 1);
}

static inline void put_u16(wbuf_t *b, uint32_t v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put_bytes(b, c, 2);
}

static inline void put_u32(wbuf_t *b, uint32_t v)
{
    unsigned char c[4];
    kv_put32(c, v);
    put_bytes(b, c, 4);
}

static inline void put_u64(wbuf_t *b, uint64_t v)
{
    unsigned char c[8];
    kv_put64(c, v);
    put_bytes(b, c, 8);
}

/* A bounds-checked reader: any short read sets bad and yields zeros. */
typedef struct rbuf {
    const unsigned char *p;
    size_t len, off;
    bool bad;
} rbuf_t;

static inline const unsigned char *take(rbuf_t *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

static inline uint32_t get_u8(rbuf_t *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

static inline uint32_t get_u16(rbuf_t *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : 0;
}

static inline uint32_t get_u32(rbuf_t *r)
{
    const unsigned char *p = take(r, 4);
    return p ? kv_get32(p) : 0;
}

static inline uint64_t get_u64(rbuf_t *r)
{
    const unsigned char *p = take(r, 8);
    return p ? kv_get64(p) : 0;
}

#endif /* TSR_TXN_WIRE_H */
