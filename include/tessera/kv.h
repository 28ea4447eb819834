/*
 * tessera/kv.h - the embedded key-value store: named hash tables of byte
 * strings, durable through a write-ahead log and snapshots (docs/kv.md).
 *
 * A store lives in a data dir (or only in memory). A table has partitions,
 * each an open-addressing hash table in one contiguous region whose slots
 * carry a version+lock word, so readers take no lock (and remote readers can
 * read a partition with one-sided RMA gets; see the "remote" section).
 *
 * Durability: every write is appended to the store's log and the call returns
 * only once the record is durable (group commit: concurrent writers share one
 * fsync). A write may be visible to readers a moment before it is durable.
 * Opening a store recovers the snapshot plus the log; a torn tail record is
 * ignored (and cut off), tsr_kv_recovery_info says what happened.
 *
 * Fencing: a write may carry (lock name, fencing token) from the lock service
 * (tessera/lock.h); the store checks it with tsr_lock_fence_check against the
 * fence given at open and refuses a stale token with TSR_ERR_STALE.
 *
 * Threads: every call may be made from any thread, on the same handles.
 * Statuses: TSR_ERR_EXISTS (insert of a present key, create of a present
 * table), TSR_ERR_NOT_FOUND (missing key or table), TSR_ERR_INVALID_ARG
 * (key or value longer than the table's maximum, bad names), TSR_ERR_IO.
 */
#ifndef TESSERA_KV_H
#define TESSERA_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_kv_store tsr_kv_store_t;
typedef struct tsr_kv_table tsr_kv_table_t;
typedef struct tsr_kv_remote tsr_kv_remote_t;
typedef struct tsr_kv_server tsr_kv_server_t;
typedef struct tsr_lock_fence tsr_lock_fence_t; /* tessera/lock.h */
typedef struct tsr_transport tsr_transport_t;   /* transport/transport.h */
typedef struct tsr_peer tsr_peer_t;

#define TSR_KV_NAME_MAX 255u
#define TSR_KV_MAX_KEY_LIMIT 65535u
#define TSR_KV_MAX_VALUE_LIMIT (16u << 20)
#define TSR_KV_DEFAULT_MAX_KEY 64u
#define TSR_KV_DEFAULT_MAX_VALUE 256u
#define TSR_KV_RPC_DESC 910u /* default RPC type of a server's descriptor call */

typedef struct tsr_kv_err {
    tsr_status_t status; /* TSR_OK until an error is recorded */
    char message[256];
} tsr_kv_err_t;

typedef enum tsr_kv_sync {
    TSR_KV_SYNC_FSYNC = 0, /* fdatasync before acknowledging (default) */
    TSR_KV_SYNC_WRITE = 1, /* write(2) to the OS only: survives a process crash, not power loss */
} tsr_kv_sync_t;

typedef struct tsr_kv_options {
    const char *data_dir; /* NULL: in memory only (no log) */
    tsr_kv_sync_t sync;
    uint64_t snapshot_bytes; /* snapshot when the log passes this; 0 = 64 MiB */
    tsr_lock_fence_t *fence; /* checks writes' tokens; NULL: fenced writes are refused */
    /* Optional: allocate the tables' regions through this transport (UCX
     * memory, registered once), so peers on shared memory read them with
     * plain loads instead of a system call per get (docs/kv.md). The
     * transport must outlive the store. NULL: heap memory, registered on a
     * server's first descriptor request. */
    tsr_transport_t *transport;
    /* Optional: run batches as device kernels (docs/kv.md "Device batches"):
     * "opencl", "opencl0" or "opencl:1" (the store opens its own context on
     * that device). A partition's share of a batch of at least
     * device_min_batch pairs (0 = 4096; env TSR_KV_DEVICE_MIN_BATCH
     * overrides) runs on it, smaller ones on the CPU; results are the same.
     * NULL, "" or "cpu": CPU only. */
    const char *device;
    uint32_t device_min_batch;
} tsr_kv_options_t;

typedef struct tsr_kv_recovery {
    uint64_t snapshot_lsn;     /* the snapshot's last lsn (0: none) */
    uint64_t records_replayed; /* log records applied after the snapshot */
    uint64_t last_lsn;         /* the newest lsn recovered */
    uint64_t bytes_dropped;    /* a torn/corrupt tail cut off the log */
    bool torn_tail;
    bool lsn_gap;      /* an lsn missing between records (a lost log file) */
    bool new_identity; /* the store's id was made at this open: first use, a
                          lost store-id, or records cut (tsr_kv_store_id) */
    char detail[256]; /* "" or what was cut and where */
} tsr_kv_recovery_t;

/* opts may be NULL (in memory). Creates data_dir if missing. */
tsr_status_t tsr_kv_open(const tsr_kv_options_t *opts, tsr_kv_store_t **out, tsr_kv_err_t *err);
/* Accepts NULL. Close every table handle and stop every server first. */
void tsr_kv_close(tsr_kv_store_t *store);
void tsr_kv_recovery_info(const tsr_kv_store_t *store, tsr_kv_recovery_t *out);
/* The identity of the store in its data dir (0: in memory): random, kept in
 * DIR/store-id, made anew when the dir has none and whenever recovery cut
 * records off the log, so two opens with one id hold the same writes (a
 * cluster refills a copy by the keys it missed only then; docs/kv.md). */
uint64_t tsr_kv_store_id(const tsr_kv_store_t *store);
/* Writes a snapshot now and drops the log files it covers. */
tsr_status_t tsr_kv_checkpoint(tsr_kv_store_t *store, tsr_kv_err_t *err);

/* ---- tables ------------------------------------------------------------------- */

typedef struct tsr_kv_table_params {
    uint32_t partitions; /* 0 = 1 */
    uint32_t max_key;    /* bytes; 0 = TSR_KV_DEFAULT_MAX_KEY */
    uint32_t max_value;  /* bytes; 0 = TSR_KV_DEFAULT_MAX_VALUE */
    uint64_t capacity;   /* expected keys (a hint); 0 = small */
} tsr_kv_table_params_t;

tsr_status_t tsr_kv_table_create(tsr_kv_store_t *store, const char *name,
                                 const tsr_kv_table_params_t *params, tsr_kv_err_t *err);
tsr_status_t tsr_kv_table_drop(tsr_kv_store_t *store, const char *name, tsr_kv_err_t *err);
/* *names: a NULL-terminated, sorted array; free with tsr_kv_names_free. */
tsr_status_t tsr_kv_table_list(tsr_kv_store_t *store, char ***names, size_t *n, tsr_kv_err_t *err);
void tsr_kv_names_free(char **names);

/* A handle on a table; ops on a dropped table's handle fail NOT_FOUND. */
tsr_status_t tsr_kv_table_open(tsr_kv_store_t *store, const char *name, tsr_kv_table_t **out,
                               tsr_kv_err_t *err);
void tsr_kv_table_close(tsr_kv_table_t *table);
void tsr_kv_table_info(const tsr_kv_table_t *table, tsr_kv_table_params_t *out);

/* ---- operations ----------------------------------------------------------------- */

/* A fenced write: lock name and token from tsr_lock_acquire. */
typedef struct tsr_kv_write_opts {
    const char *lock;
    uint64_t token;
} tsr_kv_write_opts_t;

typedef struct tsr_kv_pair {
    const void *key;
    size_t klen;
    const void *val; /* ignored by delete/get batches */
    size_t vlen;
} tsr_kv_pair_t;

/* wo may be NULL (unfenced). */
tsr_status_t tsr_kv_insert(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err);
tsr_status_t tsr_kv_update(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err);
tsr_status_t tsr_kv_upsert(tsr_kv_table_t *t, const void *key, size_t klen, const void *val,
                           size_t vlen, const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err);
tsr_status_t tsr_kv_delete(tsr_kv_table_t *t, const void *key, size_t klen,
                           const tsr_kv_write_opts_t *wo, tsr_kv_err_t *err);
/* Copies min(value length, cap) bytes into buf and sets *vlen to the
 * value's length (so a short buf can be retried). */
tsr_status_t tsr_kv_get(tsr_kv_table_t *t, const void *key, size_t klen, void *buf, size_t cap,
                        size_t *vlen, tsr_kv_err_t *err);
tsr_status_t tsr_kv_count(tsr_kv_table_t *t, uint64_t *out);

/* Scan in pages: *cursor 0 starts; fn gets each pair (valid during the call);
 * on return *cursor is where the next page starts, 0 when done. A page is
 * consistent; a table that was rehashed between pages makes the next page
 * fail with TSR_ERR_CONFLICT (start over). */
typedef void (*tsr_kv_scan_fn)(void *arg, const void *key, size_t klen, const void *val,
                               size_t vlen);
tsr_status_t tsr_kv_scan(tsr_kv_table_t *t, uint64_t *cursor, size_t page, tsr_kv_scan_fn fn,
                         void *arg, tsr_kv_err_t *err);

/* Batches: results[i] (may be NULL) gets each pair's status; the call
 * returns TSR_OK unless the whole call failed (bad input, I/O, a stale
 * fence), and *nok (may be NULL) counts the pairs that succeeded. Keys are
 * hashed first, then grouped by partition, prefetched and probed. */
tsr_status_t tsr_kv_insert_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err);
tsr_status_t tsr_kv_upsert_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err);
tsr_status_t tsr_kv_delete_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *pairs, size_t n,
                                 const tsr_kv_write_opts_t *wo, tsr_status_t *results, size_t *nok,
                                 tsr_kv_err_t *err);
/* Value i goes to vals + i * stride (at most stride bytes), its length to
 * vlens[i]; results[i] is TSR_OK or TSR_ERR_NOT_FOUND. */
tsr_status_t tsr_kv_get_batch(tsr_kv_table_t *t, const tsr_kv_pair_t *keys, size_t n, void *vals,
                              size_t stride, size_t *vlens, tsr_status_t *results, size_t *nok,
                              tsr_kv_err_t *err);

/* What device batches did (all zero on a store without a device). */
typedef struct tsr_kv_device_stats {
    char device[128];     /* the device's name, "" when none */
    bool active;          /* batches run on it (false: see note) */
    uint64_t min_batch;   /* pairs per partition group for the device path */
    uint64_t batches;     /* partition groups of writes run as kernels */
    uint64_t pairs;       /* ... their pairs */
    uint64_t get_pairs;   /* keys of batch gets run as kernels */
    uint64_t get_retries; /* ... re-read on the CPU (slot mid-write) */
    uint64_t fallbacks;   /* groups the device could not run (CPU instead) */
    char note[256];       /* why device batches are off or fell back, else "" */
} tsr_kv_device_stats_t;
void tsr_kv_device_stats(tsr_kv_store_t *store, tsr_kv_device_stats_t *out);

/* ---- remote, one-sided reads ---------------------------------------------------- */

/* The owner serves its tables' descriptors on its transport (it keeps the
 * transport progressing); the regions are registered on first request.
 * rpc_type 0 = TSR_KV_RPC_DESC. Stop the server before closing the store. */
tsr_status_t tsr_kv_server_start(tsr_kv_store_t *store, tsr_transport_t *transport,
                                 uint16_t rpc_type, tsr_kv_server_t **out, tsr_kv_err_t *err);
void tsr_kv_server_stop(tsr_kv_server_t *server);

/* A server with options (tsr_kv_server_start is this with rpc_type only).
 * version_mask: what the owner XORs into the versions it hands out for a
 * table (e.g. a transaction layer's per-process epoch and per-table mix);
 * each descriptor reply carries it for the table it describes, and
 * tsr_kv_remote_get_versioned returns slot version XOR that mask. Called
 * under the server's mutex, on the transport's handler thread; NULL: 0.
 * allow: descriptor calls from peers it refuses are answered TSR_ERR_AUTH
 * (NULL: every peer); called on the handler thread. */
typedef uint64_t (*tsr_kv_mask_fn)(void *arg, const tsr_kv_table_t *table);
typedef bool (*tsr_kv_allow_fn)(void *arg, tsr_peer_t *peer);
typedef struct tsr_kv_server_params {
    uint16_t rpc_type; /* 0 = TSR_KV_RPC_DESC */
    tsr_kv_mask_fn version_mask;
    void *mask_arg;
    tsr_kv_allow_fn allow;
    void *allow_arg;
} tsr_kv_server_params_t;
tsr_status_t tsr_kv_server_start_ex(tsr_kv_store_t *store, tsr_transport_t *transport,
                                    const tsr_kv_server_params_t *params, tsr_kv_server_t **out,
                                    tsr_kv_err_t *err);
/* The RPC type the server answers (to unregister its handler). */
uint16_t tsr_kv_server_rpc_type(const tsr_kv_server_t *server);
/* Call after tsr_kv_table_drop of a table the server may have described:
 * marks every slot of the dropped table MOVED, so readers holding its
 * descriptor re-fetch it (and find the new table of that name, or none)
 * instead of reading the dropped copy. Its memory stays until the server
 * stops. Any thread. */
void tsr_kv_server_retire(tsr_kv_server_t *server, const char *table);

/* A reader of one remote table through peer: gets are RMA reads of the key's
 * probe sequence with a version and checksum check (retried on a torn read),
 * and never run code on the owner (except to fetch a descriptor after a
 * rehash). Not thread-safe: one per thread. */
tsr_status_t tsr_kv_remote_open(tsr_transport_t *transport, tsr_peer_t *peer, const char *table,
                                uint16_t rpc_type, int timeout_ms, tsr_kv_remote_t **out,
                                tsr_kv_err_t *err);
void tsr_kv_remote_close(tsr_kv_remote_t *r);
tsr_status_t tsr_kv_remote_get(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                               size_t cap, size_t *vlen, tsr_kv_err_t *err);
/* A versioned get: TSR_OK with *present true, the value as tsr_kv_remote_get
 * copies it and *ver = the accepted slot copy's version XOR the table's
 * version mask (the server's version_mask; even, so never ABSENT); or TSR_OK
 * with *present false, *ver = TSR_KV_VERSION_ABSENT and *vlen = 0 when the
 * key's probe sequence ends without it. Every other status is a failure to
 * read (the table not found on the owner included). */
#define TSR_KV_VERSION_ABSENT UINT64_MAX
tsr_status_t tsr_kv_remote_get_versioned(tsr_kv_remote_t *r, const void *key, size_t klen,
                                         void *buf, size_t cap, size_t *vlen, uint64_t *ver,
                                         bool *present, tsr_kv_err_t *err);

/* Several gets in flight at once (an MGET): every key's window reads of a
 * round are posted together and reaped by one wait (tsr_rma_get_many), so
 * one thread keeps up to 256 gets outstanding instead of one. Each key is
 * read exactly as tsr_kv_remote_get reads it (version and checksum check,
 * torn copies re-read, MOVED re-fetches the descriptor, once per round
 * for a partition). Value i goes to vals + i * stride (at most stride
 * bytes), its length to vlens[i] (0 when absent); results[i] (may be NULL)
 * is TSR_OK or TSR_ERR_NOT_FOUND; *nok (may be NULL) counts the keys
 * found. Returns TSR_OK, or the failure of the whole call - bad input (a
 * key longer than the table allows included), a read that failed, the
 * table gone on the owner (TSR_ERR_NOT_FOUND with err set) - and then
 * results[i] of every key not yet decided holds that status. */
tsr_status_t tsr_kv_remote_get_many(tsr_kv_remote_t *r, const tsr_kv_pair_t *keys, size_t n,
                                    void *vals, size_t stride, size_t *vlens,
                                    tsr_status_t *results, size_t *nok, tsr_kv_err_t *err);

typedef struct tsr_kv_remote_stats {
    uint64_t gets;
    uint64_t rma_reads;    /* RMA gets issued */
    uint64_t torn_retries; /* slots re-read: odd version or bad checksum */
    uint64_t refreshes;    /* descriptors re-fetched after a rehash */
    uint64_t sweeps;       /* owner asked to break remote locks past their lease */
} tsr_kv_remote_stats_t;
void tsr_kv_remote_get_stats(const tsr_kv_remote_t *r, tsr_kv_remote_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_KV_H */
