/*
 * kv_internal.h - the shared internals of engine/kv (docs/kv.md):
 * partitions (part.c), the write-ahead log and snapshots (wal.c), the store
 * behind include/tessera/kv.h (store.c) and one-sided remote reads (remote.c).
 *
 * A partition's table is ONE contiguous region, so it can be registered with
 * UCX (ucp_mem_map) and read by peers with RMA gets:
 *
 *   offset 0    header (64 B)  magic "TSRKVP01", nslots (power of two),
 *                              slot_size, max_key, max_val, epoch
 *   offset 64   nslots slots of slot_size bytes (a multiple of 8):
 *
 *     +0   ver    64-bit version+lock word. bit 0 = locked (a writer is
 *                 changing the slot: odd = torn), bit 63 = MOVED (the table
 *                 was replaced by a rehash: re-read the descriptor), bits
 *                 1..62 count the writes of the slot (+2 per write).
 *     +8   check  XXH3 seeded by ver of the bytes from hash to the end of
 *                 the value (hash..pad, the whole key area, vlen value bytes)
 *                 for readers that cannot order their loads (RMA)
 *     +16  hash   the key's tsr_hash_bytes
 *     +24  state  u32: 0 empty, 1 full, 2 tombstone
 *     +28  klen   u32
 *     +32  vlen   u32
 *     +36  pad    u32
 *     +40  key    max_key bytes, then the value: max_val bytes, padded to 8
 *                 (a slot of <= 64 bytes is padded to exactly 64: one line)
 *
 * Invariants: linear probing from hash & (nslots-1); a probe stops at the
 * first EMPTY slot. Deletion leaves a TOMBSTONE, so a key never moves while
 * the table lives (readers without locks never miss a present key because of
 * a concurrent delete of another key); tombstones are reused by inserts and
 * cleared by the next rehash. A slot never goes back to EMPTY. Writers of a
 * partition are serialized by its mutex; readers take no lock.
 */
#ifndef TSR_KV_INTERNAL_H
#define TSR_KV_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "tessera/kv.h"
#include "transport.h"

#define KV_MAGIC 0x313050564b525354ULL /* "TSRKVP01" little-endian */
#define KV_HDR_SIZE 64u
#define KV_SLOT_HDR 40u
#define KV_VER_LOCKED 1ULL
#define KV_VER_MOVED (1ULL << 63)

enum { KV_EMPTY = 0, KV_FULL = 1, KV_TOMB = 2 };

typedef struct kv_hdr {
    uint64_t magic;
    uint64_t nslots;
    uint32_t slot_size;
    uint32_t max_key;
    uint32_t max_val;
    uint32_t pad;
    uint64_t epoch; /* rehashes of this partition so far */
    uint8_t reserved[KV_HDR_SIZE - 40];
} kv_hdr_t;

typedef struct kv_slot {
    _Atomic uint64_t ver;
    uint64_t check;
    uint64_t hash;
    uint32_t state;
    uint32_t klen;
    uint32_t vlen;
    uint32_t pad;
    unsigned char data[]; /* key (max_key) then value (max_val) */
} kv_slot_t;

/* One table generation: the region and what the writer tracks beside it. */
typedef struct kv_tab {
    unsigned char *base; /* the region: header + slots (64-byte aligned) */
    size_t bytes;
    uint64_t nslots;
    uint64_t mask;
    uint32_t slot_size;
    uint64_t used;  /* FULL slots */
    uint64_t tombs; /* TOMBSTONE slots */
    uint64_t epoch;
    tsr_region_t *region; /* allocated by the transport (registered), or NULL: heap */
    struct kv_tab *next_retired;
} kv_tab_t;

static inline kv_slot_t *kv_slot_at(const kv_tab_t *t, uint64_t i)
{
    return (kv_slot_t *)(void *)(t->base + KV_HDR_SIZE + i * t->slot_size);
}

/* Slot checksum: covers everything a reader uses, seeded by the version. */
uint64_t tsr_kv_slot_check(uint64_t ver, const kv_slot_t *s, uint32_t max_key);

/* The write a partition applies (and the log records). */
typedef enum kv_op {
    KV_OP_INSERT = 1, /* fails TSR_ERR_EXISTS */
    KV_OP_UPDATE = 2, /* fails TSR_ERR_NOT_FOUND */
    KV_OP_UPSERT = 3,
    KV_OP_DELETE = 4, /* fails TSR_ERR_NOT_FOUND */
} kv_op_t;

/* Called under the partition's mutex after an op was validated and before
 * it is applied: the store appends the effect to its log. An error aborts
 * the op (nothing applied). del: the effect is a delete, else a put. */
typedef tsr_status_t (*kv_log_fn)(void *arg, bool del, const void *key, uint32_t klen,
                                  const void *val, uint32_t vlen, tsr_error_t *err);

/* Called under the mutex when a rehash replaced the table (after the new one
 * is published and the old one marked MOVED). */
typedef void (*kv_grow_fn)(void *arg, kv_tab_t *old_tab, kv_tab_t *new_tab);

/* One reader-counter stripe, 128 bytes apart so that no two share a cache
 * line whatever the alignment of the partition array. */
#define KV_RSTRIPES 16
typedef struct kv_rstripe {
    atomic_ulong n;
    unsigned char pad[128 - sizeof(atomic_ulong)];
} kv_rstripe_t;

typedef struct kv_part {
    tsr_mem_t *mem;
    tsr_transport_t *transport; /* allocates regions when set (else the heap) */
    uint32_t max_key;
    uint32_t max_val;
    _Atomic(kv_tab_t *) tab; /* current generation (readers load it) */
    kv_rstripe_t readers[KV_RSTRIPES]; /* local readers inside a table right now */
    kv_tab_t *retired;       /* replaced generations not yet freed */
    bool keep_retired;       /* exposed to remote readers: free at destroy only */
    pthread_mutex_t wlock;   /* serializes writers */
    kv_grow_fn on_grow;
    void *grow_arg;
    /* The store whose version clock a key placed in a slot it did not hold
     * starts past (NULL: slot versions only). Without it a key deleted and
     * written again into another slot could come back with a version a
     * transaction read before (ABA), and validation would pass. */
    struct tsr_kv_store *store;
} kv_part_t;

tsr_status_t tsr_kv_part_init(kv_part_t *p, tsr_mem_t *mem, tsr_transport_t *transport,
                              uint32_t max_key, uint32_t max_val, uint64_t capacity,
                              tsr_error_t *err);
void tsr_kv_part_fini(kv_part_t *p);

/* One write. log may be NULL. */
tsr_status_t tsr_kv_part_write(kv_part_t *p, kv_op_t op, uint64_t h, const void *key, uint32_t klen,
                               const void *val, uint32_t vlen, kv_log_fn log, void *log_arg,
                               tsr_error_t *err);
/* n writes under one hold of the mutex: hashes computed by the caller,
 * slots prefetched ahead of the probes. results[i] per write. Returns the
 * first whole-call failure (a log error); per-key outcomes only in results. */
tsr_status_t tsr_kv_part_write_batch(kv_part_t *p, kv_op_t op, size_t n, const uint64_t *h,
                                     const tsr_kv_pair_t *pairs, tsr_status_t *results,
                                     kv_log_fn log, void *log_arg, tsr_error_t *err);
/* tsr_kv_part_write_batch with the mutex already held (reclaim is the
 * caller's: tsr_kv_part_reclaim_locked before unlocking). */
tsr_status_t tsr_kv_part_write_batch_locked(kv_part_t *p, kv_op_t op, size_t n, const uint64_t *h,
                                            const tsr_kv_pair_t *pairs, tsr_status_t *results,
                                            kv_log_fn log, void *log_arg, tsr_error_t *err);
/* With the mutex held: grows the table when n more keys would pass the load
 * limit (as a batch of n inserts does first); frees replaced regions no
 * reader is inside. */
tsr_status_t tsr_kv_part_make_room_locked(kv_part_t *p, uint64_t n, tsr_error_t *err);
void tsr_kv_part_reclaim_locked(kv_part_t *p);
/* Lock-free read. TSR_OK: *vlen set and min(vlen, cap) bytes copied;
 * TSR_ERR_NOT_FOUND. */
tsr_status_t tsr_kv_part_get(kv_part_t *p, uint64_t h, const void *key, uint32_t klen, void *buf,
                             size_t cap, size_t *vlen);
/* Registers the calling thread as a local reader of p (tables it may be
 * inside are not freed) until tsr_kv_part_leave with the returned counter;
 * tsr_kv_part_get_in reads inside such a registration (batches register
 * once per chunk instead of once per key). */
atomic_ulong *tsr_kv_part_enter(kv_part_t *p);
void tsr_kv_part_leave(atomic_ulong *cnt);
tsr_status_t tsr_kv_part_get_in(kv_part_t *p, uint64_t h, const void *key, uint32_t klen,
                                void *buf, size_t cap, size_t *vlen);
/* Prefetches the home slot of hash h (batch probes). */
void tsr_kv_part_prefetch(kv_part_t *p, uint64_t h);
uint64_t tsr_kv_part_count(kv_part_t *p);
/* Scan from slot *pos of the table generation *epoch (0/0 to start): calls
 * fn for up to max pairs, under the mutex (a consistent page). *pos is the
 * next slot, UINT64_MAX at the end. TSR_ERR_CONFLICT when the table was
 * rehashed since the cursor was made. */
tsr_status_t tsr_kv_part_scan(kv_part_t *p, uint64_t *epoch, uint64_t *pos, size_t max,
                              tsr_kv_scan_fn fn, void *arg, size_t *visited);
/* Grows the table (if needed) so that n more keys fit without a rehash. */
tsr_status_t tsr_kv_part_reserve(kv_part_t *p, uint64_t n, tsr_error_t *err);

/* Which partition of nparts a hash goes to (high bits; slots use low bits). */
static inline uint32_t kv_part_of(uint64_t h, uint32_t nparts)
{
    return (uint32_t)(((h >> 32) * (uint64_t)nparts) >> 32);
}

/* ---- device batches (part_device.c, kernels/opencl/kv.cl) -------------------------- */
/*
 * A store opened with options.device runs batches of at least min_batch pairs
 * (per partition group) as OpenCL kernels over the partition's region used in
 * place; smaller ones stay on the CPU path. Same per-pair results, log
 * records and final contents as the CPU path (docs/kv.md "Device batches").
 * The store opens its own context on the device (one thread at a time per
 * tsr_dev_t: the worker's query threads keep theirs); kv_dev serializes the
 * store's batches on it with its own mutex.
 */
typedef struct kv_dev kv_dev_t;

/* spec: "opencl", "opencl0", "opencl:1"; min_batch 0 = 4096 (env
 * TSR_KV_DEVICE_MIN_BATCH overrides). A device that cannot hold the table in
 * place (no unified host memory) opens with device batches off (note says
 * why). */
tsr_status_t tsr_kv_dev_open(const char *spec, uint32_t min_batch, kv_dev_t **out,
                             tsr_error_t *err);
void tsr_kv_dev_close(kv_dev_t *d); /* accepts NULL */
/* Pairs a partition group needs for the device path (SIZE_MAX: never). */
size_t tsr_kv_dev_min_batch(const kv_dev_t *d);
void tsr_kv_dev_stats(kv_dev_t *d, tsr_kv_device_stats_t *out);
/* tsr_kv_part_write_batch on the device. *ran false: nothing was done (the
 * device failed before any change, or the batch does not fit the staging
 * limits): run the CPU path instead. */
tsr_status_t tsr_kv_part_write_batch_dev(kv_dev_t *d, kv_part_t *p, kv_op_t op, size_t n,
                                         const uint64_t *h, const tsr_kv_pair_t *pairs,
                                         tsr_status_t *results, kv_log_fn log, void *log_arg,
                                         bool *ran, tsr_error_t *err);
/* tsr_kv_get_batch's body on the device (arguments checked by the caller):
 * partition groups of at least min_batch keys run as kernels, the rest and
 * every key the kernel saw mid-write (RETRY) on the CPU. */
void tsr_kv_dev_get_batch(kv_dev_t *d, tsr_kv_table_t *t, const tsr_kv_pair_t *keys, size_t n,
                          void *vals, size_t stride, size_t *vlens, tsr_status_t *results,
                          size_t *nok);

/* ---- write-ahead log and snapshots (wal.c) ------------------------------------- */

uint32_t tsr_kv_crc32c(uint32_t crc, const void *data, size_t len);

typedef enum kv_rec {
    KV_REC_PUT = 1,    /* u32 table, u32 klen, u32 vlen, key, value */
    KV_REC_DEL = 2,    /* u32 table, u32 klen, key */
    KV_REC_CREATE = 3, /* u32 table, u32 parts, u32 max_key, u32 max_val, u32 nlen, name */
    KV_REC_DROP = 4,   /* u32 table */
    KV_REC_TXN = 5,    /* a transaction's commit record (txn_apply.c): all its writes */
} kv_rec_t;

typedef struct kv_wal kv_wal_t;

/* Opens (creating) the log in dir, appending to a new file that starts at
 * lsn first_lsn. */
tsr_status_t tsr_kv_wal_open(tsr_mem_t *mem, const char *dir, tsr_kv_sync_t sync,
                             uint64_t first_lsn, kv_wal_t **out, tsr_error_t *err);
void tsr_kv_wal_close(kv_wal_t *w);
/* A record's payload in pieces, concatenated (header, key, value). */
typedef struct kv_piece {
    const void *p;
    size_t n;
} kv_piece_t;

/* Appends one record to the buffer; returns its lsn. Not yet durable. */
tsr_status_t tsr_kv_wal_append(kv_wal_t *w, kv_rec_t type, const kv_piece_t *pc, int npc,
                               uint64_t *lsn, tsr_error_t *err);
/* Waits until lsn is durable (group commit: one writer flushes and syncs
 * for all that wait). TSR_ERR_INVALID_ARG for an lsn never assigned. */
tsr_status_t tsr_kv_wal_commit(kv_wal_t *w, uint64_t lsn, tsr_error_t *err);
uint64_t tsr_kv_wal_last_lsn(kv_wal_t *w);
uint64_t tsr_kv_wal_bytes(kv_wal_t *w); /* bytes in the current file */
/* Flushes everything, then starts a new file at the next lsn; returns the
 * last lsn of the old files (for the snapshot), and the old files' names
 * are deleted by tsr_kv_wal_drop_old after the snapshot is durable. */
tsr_status_t tsr_kv_wal_rotate(kv_wal_t *w, uint64_t *last_lsn, tsr_error_t *err);
void tsr_kv_wal_drop_old(kv_wal_t *w, uint64_t upto_lsn);

/* Replay: calls fn for each whole record with lsn > after_lsn, in order,
 * over every log file in dir; stops at the first torn or corrupt record and
 * truncates that file there. */
typedef tsr_status_t (*kv_replay_fn)(void *arg, uint64_t lsn, kv_rec_t type, const unsigned char *p,
                                     size_t len, tsr_error_t *err);
tsr_status_t tsr_kv_wal_replay(tsr_mem_t *mem, const char *dir, uint64_t after_lsn, kv_replay_fn fn,
                               void *arg, tsr_kv_recovery_t *info, tsr_error_t *err);

/* fsync of a directory (a file created, renamed or removed in it). */
tsr_status_t tsr_kv_sync_dir(const char *dir, tsr_error_t *err);

/* The store's identity in dir/store-id (store_id.c): read, or made (and
 * *made set) when absent or unreadable. Forget removes it durably: replay
 * calls it before cutting records off the log. */
tsr_status_t tsr_kv_store_id_load(const char *dir, uint64_t *id, bool *made, tsr_error_t *err);
tsr_status_t tsr_kv_store_id_forget(const char *dir, tsr_error_t *err);

/* Snapshot writer: a file built in dir/snapshot.tmp, renamed over
 * dir/snapshot once complete and synced. */
typedef struct kv_snap_writer kv_snap_writer_t;
tsr_status_t tsr_kv_snap_begin(tsr_mem_t *mem, const char *dir, uint64_t lsn,
                               kv_snap_writer_t **out, tsr_error_t *err);
tsr_status_t tsr_kv_snap_add(kv_snap_writer_t *s, kv_rec_t type, const kv_piece_t *pc, int npc,
                             tsr_error_t *err);
tsr_status_t tsr_kv_snap_finish(kv_snap_writer_t *s, tsr_error_t *err); /* frees s */
void tsr_kv_snap_abort(kv_snap_writer_t *s);
/* Loads dir/snapshot (absent: *lsn = 0, TSR_OK); each record goes to fn
 * (lsn argument 0). A checksum mismatch is TSR_ERR_BAD_INPUT. */
tsr_status_t tsr_kv_snap_load(tsr_mem_t *mem, const char *dir, kv_replay_fn fn, void *arg,
                              uint64_t *lsn, tsr_error_t *err);

static inline void kv_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static inline uint32_t kv_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void kv_put64(unsigned char *p, uint64_t v)
{
    kv_put32(p, (uint32_t)v);
    kv_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t kv_get64(const unsigned char *p)
{
    return (uint64_t)kv_get32(p) | (uint64_t)kv_get32(p + 4) << 32;
}

/* ---- the store (store.c, ops.c) ----------------------------------------------------- */

struct tsr_kv_table {
    tsr_kv_store_t *store;
    char *name;
    uint32_t id;
    uint32_t nparts;
    uint32_t max_key;
    uint32_t max_val;
    kv_part_t *parts;
    atomic_int refs;
    atomic_bool dropped;
};

struct tsr_kv_store {
    tsr_mem_t *mem;
    char *dir;
    kv_wal_t *wal;
    tsr_lock_fence_t *fence;
    tsr_transport_t *transport;
    uint64_t snapshot_bytes;
    pthread_rwlock_t rw;
    pthread_mutex_t cat_mu; /* guards the catalog array for lookups */
    pthread_mutex_t snap_mu; /* one snapshot at a time */
    tsr_kv_table_t **tabs;
    size_t ntabs, cap;
    uint32_t next_id;
    atomic_bool snapping;  /* an automatic snapshot is asked for or running */
    pthread_mutex_t bg_mu; /* guards snap_wanted, snap_stop */
    pthread_cond_t bg_cv;
    bool snap_wanted, snap_stop;
    pthread_t snapper; /* takes the automatic snapshots (store.c) */
    bool snapper_started;
    tsr_kv_recovery_t rec;
    uint64_t store_id; /* store_id.c; 0 in memory */
    _Atomic uint64_t txn_clock; /* versions given by transaction commits (txn_apply.c) */
    kv_dev_t *dev;              /* device batches (part_device.c); NULL: CPU only */
};

/* A table's partitions (remote.c). */
kv_part_t *tsr_kv_table_parts(tsr_kv_table_t *t, uint32_t *nparts);
void tsr_kv_store_maybe_snapshot(tsr_kv_store_t *s);

/* Records a status in a public tsr_kv_err_t (NULL allowed). */
tsr_status_t tsr_kv_err_from(tsr_kv_err_t *out, const tsr_error_t *err, tsr_status_t st);

/* ---- transactions (txn_apply.c, used by engine/txn) -------------------------------- */
/*
 * A transaction locks the slots of its write set by setting bit 0 (LOCKED) of
 * their version words with compare-and-swap, so readers wait (local) or retry
 * (remote, torn) while it commits, and non-transactional writers of a locked
 * key get TSR_ERR_CONFLICT. A key that is absent is locked by RESERVING a
 * slot: a FULL slot holding the key, no value, pad = KV_TXN_RESERVED and the
 * version locked; it becomes the inserted value or a tombstone at apply or
 * abort. A committing transaction holds the store's rwlock shared from its
 * first lock to its last apply, so a snapshot's log rotation never splits a
 * commit; the snapshot's copy after it may meet locked slots (their
 * committed values) and reservations (skipped).
 */
#define KV_TXN_ABSENT UINT64_MAX /* a read that found no key */
#define KV_TXN_RESERVED 1u       /* slot pad: reserved by a locked insert */

/*
 * Remote locks (docs/kv.md, "One-sided locking by remote clients"). A remote
 * transaction client may lock a slot it read with a one-sided
 * compare-and-swap of the version word, from the version it read to a
 * *tag*: LOCKED | RLOCK | the client's 16-bit id << 1 | the lock time in
 * ms (CLOCK_REALTIME) << 17. The slot's body is not touched and stays the
 * committed value. The owner's commit *adopts* the lock (tag -> version
 * read | LOCKED, under the partition mutex: only the tag's holder names it)
 * and from there runs the owner's own commit. Versions stay below 2^62, so
 * no version word is ever mistaken for a tag. A tag older than the lease
 * belongs to a client that died or stalled: owner code that meets one
 * breaks it (tsr_kv_rlock_break_locked) to a fresh version; a late commit
 * of its holder then finds another word and fails to adopt (conflict).
 */
#define KV_VER_RLOCK (1ULL << 62)
#define KV_RLOCK_LEASE_MS 1000u

static inline bool kv_is_rlock(uint64_t w)
{
    return (w & (KV_VER_RLOCK | KV_VER_LOCKED)) == (KV_VER_RLOCK | KV_VER_LOCKED);
}

static inline uint64_t kv_rlock_tag(uint16_t id, uint64_t ms)
{
    return KV_VER_RLOCK | KV_VER_LOCKED | (uint64_t)id << 1 | (ms & ((1ULL << 45) - 1)) << 17;
}

static inline uint64_t kv_rlock_ms(uint64_t w)
{
    return (w >> 17) & ((1ULL << 45) - 1);
}

/* Where a remote reader read a key's slot: enough to address its version
 * word later (a remote lock) while the reader's descriptor of that
 * partition is still the one read (gen). r NULL: not known. */
typedef struct kv_slot_loc {
    tsr_kv_remote_t *r;
    uint32_t part, gen;
    uint64_t slot;
} kv_slot_loc_t;

/* ms since 1970, the clock tags carry (kept to 45 bits as tags do). */
uint64_t tsr_kv_rlock_now_ms(void);
/* Whether tag word w is older than the lease (now_ms from the clock above;
 * a tag stamped in the future by a skewed clock is not). */
static inline bool kv_rlock_expired(uint64_t w, uint64_t now_ms)
{
    uint64_t ms = kv_rlock_ms(w);
    return now_ms > ms && now_ms - ms > KV_RLOCK_LEASE_MS;
}
/* With p's mutex held: if s holds a tag past its lease, replaces it with a
 * fresh version of the store's clock (the body is the committed value; the
 * checksum is rewritten for the new version). True when s is no longer
 * remote-locked afterwards. */
bool tsr_kv_rlock_break_locked(kv_part_t *p, kv_slot_t *s);
/* Breaks every expired tag of p's current table (a remote reader that met
 * one asks for this: kv server, remote.c). Returns how many. */
uint64_t tsr_kv_rlock_sweep(kv_part_t *p);

typedef struct kv_txn_key {
    tsr_kv_table_t *t;
    uint64_t h; /* tsr_hash_bytes of the key */
    const void *key;
    uint32_t klen;
} kv_txn_key_t;

/* A versioned lock-free read: TSR_OK with *ver (even) and the value copied as
 * tsr_kv_part_get does, TSR_ERR_NOT_FOUND with *ver = KV_TXN_ABSENT, or
 * TSR_ERR_CONFLICT when the key stays locked by a committing transaction. */
tsr_status_t tsr_kv_txn_read(const kv_txn_key_t *k, void *buf, size_t cap, size_t *vlen,
                             uint64_t *ver);
/* Locks one key (under its partition's mutex, then CAS on the version word).
 * expect: 0 = any state; KV_TXN_ABSENT = the key must be absent; else the
 * version the transaction read (must be unchanged). TSR_ERR_CONFLICT when it
 * is locked by another transaction or changed; *reserved says whether a slot
 * was reserved for an absent key. */
tsr_status_t tsr_kv_txn_lock(const kv_txn_key_t *k, uint64_t expect, bool *reserved,
                             tsr_error_t *err);
/* Takes over a remote client's lock on k (its slot's word must be exactly
 * tag): the word becomes expect | LOCKED, as tsr_kv_txn_lock would have
 * left it, so apply and unlock work as for a lock taken here. expect is the
 * version the client read (and swapped from). TSR_ERR_CONFLICT when the
 * word is anything else (the lock was lost: broken, or taken on a region a
 * rehash had already copied). */
tsr_status_t tsr_kv_txn_adopt(const kv_txn_key_t *k, uint64_t tag, uint64_t expect);
/* Gives back a remote lock that will not be adopted (the commit failed
 * before): tag -> expect when the word is still tag. */
void tsr_kv_txn_release(const kv_txn_key_t *k, uint64_t tag, uint64_t expect);
/* Releases a lock taken by tsr_kv_txn_lock without writing (abort): the
 * version comes back unchanged, a reservation becomes a tombstone. */
void tsr_kv_txn_unlock(const kv_txn_key_t *k);
/* Checks one read of the read set (a key not locked by this transaction):
 * TSR_OK when its version is still ver (or still absent), else CONFLICT. */
tsr_status_t tsr_kv_txn_validate(const kv_txn_key_t *k, uint64_t ver);
/* Applies a locked key's new value (or deletion) with version ver and
 * unlocks it. */
void tsr_kv_txn_apply(const kv_txn_key_t *k, bool del, const void *val, uint32_t vlen,
                      uint64_t ver);
/* The version the writes of one commit get: larger than any version the
 * store gave before (a clock seeded from the wall clock at first use). */
uint64_t tsr_kv_txn_next_version(tsr_kv_store_t *s);
/* Commit record: appends one KV_REC_TXN record with every write (all or
 * nothing at replay) and returns its lsn (0: the store has no log). */
typedef struct kv_txn_wrec {
    const kv_txn_key_t *k;
    bool del;
    const void *val;
    uint32_t vlen;
} kv_txn_wrec_t;
tsr_status_t tsr_kv_txn_log(tsr_kv_store_t *s, const kv_txn_wrec_t *w, size_t n, uint64_t *lsn,
                            tsr_error_t *err);
/* A one-sided remote get that also returns the version of the slot copy
 * (remote.c; transactions record it as their read version). */
tsr_status_t tsr_kv_remote_get_ver(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                                   size_t cap, size_t *vlen, uint64_t *ver, tsr_kv_err_t *err);
/* Replays a KV_REC_TXN record (store.c's recovery). */
tsr_status_t tsr_kv_txn_replay(tsr_kv_store_t *s, const unsigned char *p, size_t len,
                               tsr_error_t *err);

#endif /* TSR_KV_INTERNAL_H */
