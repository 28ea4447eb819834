/*
 * worker_kv_ranges.h - a worker's partition seen as hash ranges of its
 * keys (worker_kv_ranges.c): digests of a copy, whole or per range, and
 * the scan and delete of chosen ranges, with which the scheduler compares
 * replicas (kv_compare.c) and refills a stale copy by the ranges that
 * differ (kv_ranges.c). Messages in kv_msg.h. Private to scheduler/.
 */
#ifndef TSR_WORKER_KV_RANGES_H
#define TSR_WORKER_KV_RANGES_H

#include <stdint.h>

#include "proto.h"
#include "tessera/kv.h"

/* Pairs a ranged SCAN or an RDIGEST chunk visits at most in one call (a
 * partition's thread serves other tables too): the worker's visit_max. */
#define TSR_WKV_VISIT_MAX ((size_t)1 << 18)
/* Keys an RDROP deletes per batch (one log commit each). */
#define TSR_WKV_DROP_CHUNK ((size_t)1 << 16)

/* A ranges set as a message carries it: u32 n (a power of two, 1..
 * TSR_KV_RANGES_MAX), then n / 8 bytes of bits (at least 1), bit i of byte
 * i / 8 for range i. */
typedef struct wkv_ranges {
    uint32_t n;
    const uint8_t *bits;
} wkv_ranges_t;

/* Reads a ranges set from r; false when malformed (r->bad set). */
bool tsr_wkv_ranges_read(tsr_rbuf_t *r, wkv_ranges_t *out);

/* A chunk of RDIGEST (nranges 1..TSR_KV_RANGES_MAX, a power of two) of
 * t (NULL: a partition never written, empty): from *cursor (0 first), at
 * most visit_max pairs; *cursor is set to where the next chunk starts, 0
 * after the last. */
tsr_status_t tsr_wkv_digest(tsr_kv_table_t *t, uint32_t nranges, uint64_t *cursor, size_t visit_max,
                            tsr_wbuf_t *out, tsr_kv_err_t *ke);

/* A SCAN page that keeps only the pairs of the ranges in rs: visits pairs
 * from *cursor until page of them matched (at most page go out), the end,
 * or a bound on the pairs visited (the page may then hold none, with
 * *cursor not 0); appends "bytes key, bytes value" of each match to pairs
 * and counts them in *n. */
tsr_status_t tsr_wkv_scan_ranges(tsr_kv_table_t *t, uint64_t *cursor, uint32_t page,
                                 const wkv_ranges_t *rs, size_t visit_max, tsr_wbuf_t *pairs,
                                 uint32_t *n, tsr_kv_err_t *ke);

/* RDROP: deletes every key of the ranges in rs (durable, in batches of
 * chunk keys: the worker's TSR_WKV_DROP_CHUNK); appends u64 keys deleted to out. A key it cannot
 * delete (a transaction holds it locked) fails it: TSR_ERR_CONFLICT. */
tsr_status_t tsr_wkv_drop_ranges(tsr_kv_table_t *t, const wkv_ranges_t *rs, size_t chunk,
                                 tsr_wbuf_t *out, tsr_kv_err_t *ke);

#endif /* TSR_WORKER_KV_RANGES_H */
