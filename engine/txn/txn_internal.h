/*
 * txn_internal.h - the shared internals of engine/txn (docs/kv.md,
 * "Transactions"): a transaction's read and write sets (txn.c), the commit
 * protocol on a local store (commit.c) and the remote client and server
 * (remote.c).
 *
 * A transaction keeps its tables by name (index into tnames) and its sets as
 * arrays of entries that own copies of their keys and values. The commit
 * protocol takes the sets as plain arrays so the server runs exactly the
 * code a local commit runs, on the sets a client sent.
 */
#ifndef TSR_TXN_INTERNAL_H
#define TSR_TXN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "kv_internal.h"
#include "tessera/txn.h"

/* One read or write of a transaction. */
typedef struct txn_entry {
    uint32_t tab;       /* index into the transaction's table names */
    uint64_t h;         /* tsr_hash_bytes of the key */
    unsigned char *key; /* owned copy */
    uint32_t klen;
    unsigned char *val; /* read: the value read; write: the value to write (owned) */
    uint32_t vlen;
    uint64_t ver; /* read: the version read, KV_TXN_ABSENT when absent */
    bool del;     /* write: a delete */
    char *lock;   /* write: fencing lock name (owned), NULL: unfenced */
    uint64_t token;
    kv_slot_loc_t loc; /* read (remote db): where its slot was read one-sided */
    uint64_t rtag;     /* write (owner side): the remote lock its client holds, 0: none */
} txn_entry_t;

/* A table cache on a local store: handles opened once, by name. */
typedef struct txn_local {
    tsr_kv_store_t *store;
    pthread_mutex_t mu;
    tsr_kv_table_t **tabs;
    size_t ntabs, cap;
} txn_local_t;

tsr_status_t tsr_txn_local_init(txn_local_t *l, tsr_kv_store_t *store, tsr_error_t *err);
void tsr_txn_local_fini(txn_local_t *l);
/* The open handle of a table (borrowed: valid until fini). */
tsr_status_t tsr_txn_local_table(txn_local_t *l, const char *name, tsr_kv_table_t **out,
                                 tsr_error_t *err);

/* What a commit is given: the sets, their tables by name. */
typedef struct txn_sets {
    char **tnames;
    uint32_t ntabs;
    txn_entry_t *reads;
    size_t nreads;
    txn_entry_t *writes; /* at most one per key */
    size_t nwrites;
} txn_sets_t;

/* Runs the commit protocol (commit.c; it sorts a copy of the write set). TSR_OK once the
 * commit record is durable; TSR_ERR_CONFLICT / TSR_ERR_STALE with nothing
 * applied. */
tsr_status_t tsr_txn_commit_local(txn_local_t *l, txn_sets_t *sets, tsr_error_t *err);
/* Steps 1-5 of the commit (commit.c): locked, validated, logged, applied and
 * unlocked; *lsn is the commit record's lsn, 0 when nothing was logged
 * (read-only, or a store without a log). The commit is acknowledged only
 * after tsr_kv_wal_commit(store->wal, *lsn) succeeds. */
tsr_status_t tsr_txn_commit_prepare(txn_local_t *l, txn_sets_t *sets, uint64_t *lsn,
                                    tsr_error_t *err);

/* A versioned read on a local store (commit.c): value into a fresh buffer. */
tsr_status_t tsr_txn_read_local(txn_local_t *l, const char *table, uint64_t h, const void *key,
                                uint32_t klen, unsigned char **val, uint32_t *vlen, uint64_t *ver,
                                tsr_error_t *err);

void tsr_txn_entry_free(txn_entry_t *e);

/* A remote db's reader of one table: one-sided (the owner runs a kv
 * server) or, when the owner has none, the txn server's read call. */
typedef struct txn_rtab {
    char *name;
    tsr_kv_remote_t *r; /* NULL: reads by RPC */
} txn_rtab_t;

/* One first read of a batch (tsr_txn_get_many): table and key in; out as
 * the backend's read answers (value in a fresh buffer, *ver KV_TXN_ABSENT
 * with TSR_ERR_NOT_FOUND for an absent key, another ver with
 * TSR_ERR_NOT_FOUND for an unknown table) and st, the read's status. */
typedef struct txn_fetch {
    const char *table;
    const void *key;
    uint32_t klen;
    unsigned char *val; /* out: owned by the caller */
    uint32_t vlen;
    uint64_t ver;
    tsr_status_t st;
    kv_slot_loc_t loc; /* out: where a one-sided read found the slot (r NULL: not known) */
} txn_fetch_t;

/* A batch of one-sided first reads over several kv readers that share a
 * transport (batch.c): the keys are added with their reader, then read by
 * one tsr_kv_remote_read_many (engine/kv/remote_int.h) - every key's
 * window read of a round posted at once. A decided key's f gets its value
 * (a fresh buffer, the whole value) and version, or KV_TXN_ABSENT with
 * TSR_ERR_NOT_FOUND; a key the call left undecided gets the call's
 * failure in f->st. masked: versions are slot version XOR the descriptor's
 * mask (what a cluster's TGET answers), else raw (what a remote owner's
 * commit validates). Up to TXN_BATCH_STACK keys take no allocation. */
#define TXN_BATCH_STACK 16
typedef struct txn_batch {
    tsr_kv_remote_t **rd; /* distinct readers */
    uint32_t *which;      /* per key: index into rd */
    tsr_kv_pair_t *keys;
    txn_fetch_t **of; /* per key: its answer */
    tsr_status_t *res;
    size_t nr, nb;
    bool masked, oom;
    tsr_kv_remote_t *rd_s[TXN_BATCH_STACK];
    uint32_t which_s[TXN_BATCH_STACK];
    tsr_kv_pair_t keys_s[TXN_BATCH_STACK];
    txn_fetch_t *of_s[TXN_BATCH_STACK];
    tsr_status_t res_s[TXN_BATCH_STACK];
    kv_slot_loc_t *locs;
    kv_slot_loc_t locs_s[TXN_BATCH_STACK];
} txn_batch_t;
/* Room for n keys (b->oom when out of memory: adds are then dropped). */
void tsr_txn_batch_init(txn_batch_t *b, size_t n, bool masked);
void tsr_txn_batch_add(txn_batch_t *b, tsr_kv_remote_t *r, txn_fetch_t *f);
/* Reads the batch (*scratch: the caller's read_many arrays). */
void tsr_txn_batch_read(txn_batch_t *b, void **scratch, tsr_error_t *err);
void tsr_txn_batch_fini(txn_batch_t *b);

/* A db whose reads and commits another module serves (a cluster table:
 * scheduler/txn_cluster.c). read answers like tsr_txn_remote_read (value in
 * a fresh buffer, *ver = KV_TXN_ABSENT for an absent key, TSR_ERR_NOT_FOUND
 * with another *ver for an unknown table); commit takes the whole sets;
 * close frees arg. Calls may come from several threads. */
typedef struct txn_backend {
    tsr_status_t (*read)(void *arg, const char *table, const void *key, uint32_t klen,
                         unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_error_t *err);
    tsr_status_t (*commit)(void *arg, const txn_sets_t *sets, tsr_error_t *err);
    void (*close)(void *arg);
    /* Optional (NULL: one read after another): n first reads at once,
     * each answered in its f[i] as read answers; err holds the first
     * failure's text. */
    void (*read_many)(void *arg, txn_fetch_t *f, size_t n, tsr_error_t *err);
} txn_backend_t;

/* A db over a backend (txn.c); the db owns arg from here on (closed with
 * it, also when this fails). */
tsr_status_t tsr_txn_db_backend(const txn_backend_t *be, void *arg, tsr_txn_db_t **out,
                                tsr_error_t *err);

struct tsr_txn_db {
    const txn_backend_t *be; /* non-NULL: a backend's db (be_arg) */
    void *be_arg;
    txn_local_t local; /* local db: its store's tables */
    bool remote;
    tsr_transport_t *t; /* remote db */
    tsr_peer_t *peer;
    uint16_t rpc_type;
    int timeout_ms;
    pthread_mutex_t rmu; /* remote: guards rtabs (a kv remote reader is single-threaded) */
    txn_rtab_t *rtabs;
    size_t nrtabs, rtcap;
    void *many; /* remote, under rmu: the readers' read_many arrays (engine/kv/remote_int.h) */
    atomic_bool by_call; /* remote: read by call, not one-sided (tsr_txn_db_set_reads) */
    atomic_bool no_snap; /* remote: the owner refused READ_SNAP (older than it) */
    atomic_bool one_sided_locks; /* remote: the client locks (tsr_txn_db_set_locks) */
    uint16_t rlock_id;   /* remote: this db's id in its lock tags (kv_internal.h) */
    atomic_uint_fast64_t commits, conflicts, aborts, reads_rma, reads_rpc, commits_snapshot,
        locks_one_sided;
};

/* Remote calls (remote.c). */
/* loc (may be NULL): where a one-sided read found the slot. */
tsr_status_t tsr_txn_remote_read(tsr_txn_db_t *db, const char *table, const void *key,
                                 uint32_t klen, unsigned char **val, uint32_t *vlen, uint64_t *ver,
                                 kv_slot_loc_t *loc, tsr_error_t *err);
/* n first reads at once (tsr_txn_get_many): the one-sided ones posted
 * together, those by call in one call; answers in f[i]. */
/* snap (may be NULL): ask the owner to check the reads as one snapshot
 * (READ_SNAP, when all n go by one call); true when it did and they are. */
void tsr_txn_remote_read_many(tsr_txn_db_t *db, txn_fetch_t *f, size_t n, bool *snap,
                              tsr_error_t *err);
tsr_status_t tsr_txn_remote_commit(tsr_txn_db_t *db, const txn_sets_t *sets, tsr_error_t *err);
void tsr_txn_remote_fini(tsr_txn_db_t *db); /* the readers and the mutex */

/* Wire kinds: the first byte of every request. */
enum {
    TXN_MSG_READ = 1,
    TXN_MSG_COMMIT = 2,
    TXN_MSG_READ_MANY = 3,
    TXN_MSG_READ_SNAP = 4,
    TXN_MSG_COMMIT_LOCKED = 5, /* COMMIT whose client locked some writes one-sided */
};

#endif /* TSR_TXN_INTERNAL_H */
