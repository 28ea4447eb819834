/*
 * kv_msg.h - the messages of the cluster kv store (docs/kv.md "On a
 * cluster"): client -> scheduler (TSR_MSG_KV) and scheduler -> worker
 * (TSR_MSG_KV_RUN). Encoded with proto.h's wbuf/rbuf; "bytes" = u32 length,
 * then the bytes (keys and values are binary).
 *
 * TSR_MSG_KV: u8 op, str table, then
 *   CREATE   u32 partitions (0: 8), u32 replicas (0: 2 with 2+ workers, else 1),
 *            u32 max_key (0: default), u32 max_value (0: default) -> desc
 *   DROP     -> empty;  DESCRIBE -> desc;  LIST (table "") -> u32 n, n x desc
 *   PART     u32 partition, u8 pop, the pop's payload -> the pop's reply
 *            (pops PUT..LOAD only)
 *   TGET     bytes key -> u8 found, u64 version, bytes value: a transaction's
 *            versioned read, routed to the key's partition (TGET pop)
 *   TXN      (table "") a transaction's commit (sched_txn.c): u32 ntables,
 *            ntables x str name, u32 nreads, nreads x {u32 table, bytes key,
 *            u64 version (TSR_KV_TXN_ABSENT: read as absent)}, u32 nwrites,
 *            nwrites x {u32 table, u8 delete, bytes key, bytes value}, and
 *            when some writes are fenced: u32 n, n x {str lock, u64 token}
 *            -> empty; TSR_ERR_CONFLICT when a read changed, TSR_ERR_STALE
 *            when a token is stale (nothing written)
 *   VIEW     -> u64 gen, u32 partitions, u32 max_key, u32 max_value, then per
 *            partition str host, u32 port, u32 node id (the primary's worker
 *            listener: "" and 0 when no replica is usable), str store table
 *            ("<name>.<gen>.<p>"): where a transaction client reads the
 *            partition one-sided (txn_cluster.c; a hint, validated at commit)
 *   DECOMMISSION  (table = a worker id, as desc names it) -> u32 replicas it
 *            holds, which move to other workers (kv_rebalance.c)
 * desc: str name, u64 gen, u32 partitions, u32 replicas, u32 max_key,
 *   u32 max_value, then per partition u32 n, n x {str worker id, u8 state}
 *   (TSR_KV_REP_UP/DOWN/STALE), primary first.
 *
 * TSR_MSG_KV_RUN: str store table ("<name>.<gen>.<partition>", the worker's
 * local table for the partition), u32 max_key, u32 max_value, u8 pop, payload.
 *
 * Partition ops (pop) and payloads -> replies:
 *   PUT, INSERT, UPDATE  bytes key, bytes value -> empty
 *   GET                  bytes key -> bytes value
 *   DEL                  bytes key -> empty
 *   COUNT                -> u64
 *   SCAN                 u64 cursor (0 starts), u32 page[, ranges] -> u64 next
 *                        (0: done), u32 n, n x {bytes key, bytes value}; with
 *                        ranges only the pairs of those (a page may then
 *                        visit more pairs than it returns)
 *   LOAD                 u32 n, n x {bytes key, bytes value} -> u64 stored
 *                        (an upsert batch)
 *   DROP                 -> empty (scheduler -> worker only)
 *   FETCH                u32 n, n x bytes key -> u32 n, n x {u8 found, bytes
 *                        value} (absent: found 0, no bytes); a delta resync
 *                        reads the keys a stale copy missed (sched_kv_sync.c)
 *   RDIGEST              u32 n (a power of two, 1..TSR_KV_RANGES_MAX), u64
 *                        cursor (0 first) -> u64 next (0: the last chunk),
 *                        u64 pairs, u32 n, n x {u64 sum0, u64 sum1}: a chunk
 *                        of the copy's digest per hash range of the keys (a
 *                        mix of XXH3-64(key) mod n): per range, the sum over
 *                        its pairs of XXH3-128(value) seeded by XXH3-64(key)
 *                        (versions left out: they differ per replica), so
 *                        copies that hold the same pairs have the same
 *                        digests and the chunks' sums add up (kv_digest.c);
 *                        CONFLICT: rehashed between chunks, start over. A
 *                        comparison of fresh replicas in doubt asks for 1
 *                        range (kv_compare.c), a resync copies only the
 *                        ranges whose sums differ (kv_ranges.c)
 *   RDROP                ranges -> u64 keys deleted: every key of those
 *                        ranges, durably (the stale copy's, before a resync
 *                        by ranges refills them); CONFLICT when a key could
 *                        not be deleted (locked)
 *   ranges: u32 n (a power of two), then max(1, n / 8) bytes: bit i % 8 of
 *           byte i / 8 set for range i
 *   LIST                 (store table TSR_KV_LIST_TABLE) -> u32 n, n x str
 *                        store table: every table of the worker's store
 *                        (scheduler -> worker only; kv_orphans.c)
 * Transaction pops (scheduler -> worker only; scheduler/worker_txn.c):
 *   TGET       bytes key -> u8 found, u64 version, bytes value. The version
 *              is the slot's XOR the worker's epoch (random per worker
 *              process), so versions of different replicas never compare
 *              equal; absent: found 0, TSR_KV_TXN_ABSENT
 *   TVALIDATE  u32 n, n x {bytes key, u64 version} -> empty, or CONFLICT
 *              when a key's version (or absence) is not the one read
 *   TAPPLY     u32 n, n x {u8 delete, bytes key, bytes value} -> empty, once
 *              applied as ONE commit record (all or nothing) and durable
 * Errors are proto.h "rerr" payloads with the store's status (NOT_FOUND,
 * EXISTS, INVALID_ARG, ...).
 */
#ifndef TSR_KV_MSG_H
#define TSR_KV_MSG_H

#include <stdint.h>

enum {
    TSR_KV_OP_CREATE = 1,
    TSR_KV_OP_DROP = 2,
    TSR_KV_OP_LIST = 3,
    TSR_KV_OP_DESCRIBE = 4,
    TSR_KV_OP_PART = 5,
    TSR_KV_OP_TGET = 6,
    TSR_KV_OP_TXN = 7,
    TSR_KV_OP_VIEW = 8,
    TSR_KV_OP_DECOMMISSION = 9,
};

enum {
    TSR_KV_POP_PUT = 1,
    TSR_KV_POP_INSERT = 2,
    TSR_KV_POP_UPDATE = 3,
    TSR_KV_POP_GET = 4,
    TSR_KV_POP_DEL = 5,
    TSR_KV_POP_COUNT = 6,
    TSR_KV_POP_SCAN = 7,
    TSR_KV_POP_LOAD = 8,
    TSR_KV_POP_DROP = 9,
    TSR_KV_POP_TGET = 10,
    TSR_KV_POP_TVALIDATE = 11,
    TSR_KV_POP_TAPPLY = 12,
    TSR_KV_POP_LIST = 13,
    TSR_KV_POP_FETCH = 14,
    /* 15: unused (a whole-copy digest, now RDIGEST of 1 range) */
    TSR_KV_POP_RDIGEST = 16,
    TSR_KV_POP_RDROP = 17,
};

/* Hash ranges of a partition's keys (worker_kv_ranges.c): at most this
 * many in a ranges set; a resync compares TSR_KV_RESYNC_RANGES of them. */
#define TSR_KV_RANGES_MAX 65536u
#define TSR_KV_RESYNC_RANGES 4096u

#define TSR_KV_LIST_TABLE "*" /* LIST's store table: no table has this name */

#define TSR_KV_TXN_ABSENT UINT64_MAX /* a transaction's read of an absent key */

enum { TSR_KV_REP_UP = 0, TSR_KV_REP_DOWN = 1, TSR_KV_REP_STALE = 2 };

#define TSR_KV_TABLE_NAME_MAX 64u
#define TSR_KV_DEFAULT_PARTITIONS 8u
#define TSR_KV_MAX_PARTITIONS 1024u
#define TSR_KV_MAX_REPLICAS 8u
#define TSR_KV_SCAN_PAGE_MAX 65536u

#endif /* TSR_KV_MSG_H */
