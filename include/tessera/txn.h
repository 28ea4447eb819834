/*
 * tessera/txn.h - serializable optimistic transactions over the kv store
 * (include/tessera/kv.h; protocol and guarantees in docs/kv.md,
 * "Transactions").
 *
 * A transaction runs against a tsr_txn_db_t: either a local store
 * (tsr_txn_db_local), an owner process reached over the transport
 * (tsr_txn_db_remote, with tsr_txn_server_start on the owner), or a
 * cluster's kv tables (tsr_txn_db_cluster). Inside it,
 * get records the version of what it read, put and delete are buffered (a
 * later get of the same key sees them: read-your-writes), and commit runs the
 * FaRM-style protocol on the store: lock the write set (compare-and-swap on
 * the slots' lock words, no-wait), validate the read set's versions, append
 * one commit record to the store's write-ahead log, apply, unlock, and
 * acknowledge once the record is durable. Committed transactions are
 * serializable; a transaction that would break that fails with
 * TSR_ERR_CONFLICT and changes nothing (retry it: tsr_txn_run).
 *
 * Fencing: a write may carry (lock name, token) from the lock service
 * (tessera/lock.h); commit checks it with the store's fence after locking and
 * fails with TSR_ERR_STALE when the token is older than one already seen.
 *
 * Statuses: TSR_ERR_CONFLICT (validation or locking failed: nothing was
 * applied), TSR_ERR_STALE (a fenced write's token is stale: nothing applied),
 * TSR_ERR_NOT_FOUND (get of a missing key - the absence is recorded and
 * validated like a value; an unknown table), TSR_ERR_INVALID_ARG (key or
 * value too long for the table, bad arguments), TSR_ERR_IO (the log failed:
 * the commit's durability is unknown), TSR_ERR_UNAVAILABLE/TSR_ERR_TIMEOUT
 * (remote: the owner could not be reached; a commit whose reply was lost
 * may or may not have been applied).
 *
 * Threads: a db may be shared by threads (a remote db serializes its calls
 * on the transport); a transaction belongs to one thread at a time.
 */
#ifndef TESSERA_TXN_H
#define TESSERA_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/kv.h"
#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_txn_db tsr_txn_db_t;
typedef struct tsr_txn tsr_txn_t;
typedef struct tsr_txn_server tsr_txn_server_t;

#define TSR_TXN_RPC 920u /* default RPC type of a transaction server */

typedef struct tsr_txn_err {
    tsr_status_t status; /* TSR_OK until an error is recorded */
    char message[256];
} tsr_txn_err_t;

/* ---- where transactions run ---------------------------------------------------- */

/* Transactions on a local store (which must outlive the db). */
tsr_status_t tsr_txn_db_local(tsr_kv_store_t *store, tsr_txn_db_t **out, tsr_txn_err_t *err);
/* Transactions on the store of the owner behind peer, which runs
 * tsr_txn_server_start with the same rpc_type (0 = TSR_TXN_RPC). Reads are
 * one-sided RMA reads of the owner's slots (version checked) when the owner
 * also runs tsr_kv_server_start with the default descriptor type and the
 * transport has native RMA, else calls to the owner (the first reads of one
 * tsr_txn_get_many in one call); see tsr_txn_db_set_reads. A commit is one
 * call (the owner validates, logs, applies; the locks: tsr_txn_db_set_locks).
 * Every call waits at most timeout_ms (<= 0: 10 s). */
tsr_status_t tsr_txn_db_remote(tsr_transport_t *transport, tsr_peer_t *owner, uint16_t rpc_type,
                               int timeout_ms, tsr_txn_db_t **out, tsr_txn_err_t *err);
/* How a remote db reads. AUTO (the default): one-sided unless every
 * transport configured is TCP (tsr_transport_tcp_only): UCX then emulates
 * each one-sided get with a message the owner's worker serves, so a call
 * that reads all of a tsr_txn_get_many's keys takes one message each way
 * instead of one per key. ONE_SIDED and CALL force either (ONE_SIDED still
 * calls for tables whose owner serves no descriptors). The same values and
 * versions either way. TSR_ERR_UNSUPPORTED on a local or cluster db. */
typedef enum tsr_txn_reads {
    TSR_TXN_READS_AUTO = 0,
    TSR_TXN_READS_ONE_SIDED = 1,
    TSR_TXN_READS_CALL = 2,
} tsr_txn_reads_t;
tsr_status_t tsr_txn_db_set_reads(tsr_txn_db_t *db, tsr_txn_reads_t how, tsr_txn_err_t *err);
/* Who locks a remote db's write set at commit. ONE_SIDED: the client
 * itself, as FaRM does, with a one-sided compare-and-swap on the version
 * word of each written key it read one-sided (from the version read to a
 * lock tag that names this db and the time), all posted at once before
 * the commit call; a key locked or changed since fails the commit with
 * TSR_ERR_CONFLICT without any call, and the owner's CPU only takes those
 * locks over (keys written without a one-sided read, inserts included, it
 * still locks itself). A lock whose client died is broken by the owner
 * after a lease of 1 s; until then readers of that key wait (docs/kv.md,
 * "One-sided locking by remote clients"). OWNER: the owner takes every
 * lock inside the one commit call. AUTO (the default): ONE_SIDED unless
 * every transport configured is TCP (tsr_transport_tcp_only: UCX would
 * emulate each atomic with a message the owner's worker serves, which
 * costs more than locking inside the commit call). Either way the same
 * serializable outcome; an owner that does not offer remote locks (device
 * batches, or an older owner) gets OWNER. TSR_ERR_UNSUPPORTED on a local
 * or cluster db. */
typedef enum tsr_txn_locks {
    TSR_TXN_LOCKS_AUTO = 0,
    TSR_TXN_LOCKS_OWNER = 1,
    TSR_TXN_LOCKS_ONE_SIDED = 2,
} tsr_txn_locks_t;
tsr_status_t tsr_txn_db_set_locks(tsr_txn_db_t *db, tsr_txn_locks_t how, tsr_txn_err_t *err);
/* Transactions on the kv tables of a running cluster (docs/kv.md, "On a
 * cluster", Transactions): connects to the scheduler and proves the cluster
 * token. A read goes to the key's partition primary and records the
 * replica's version: by one-sided RMA reads of its slots (the primary's
 * worker dialled directly; docs/kv.md, "Transactions on a cluster"), else, and with
 * scheduler_reads, through the scheduler. A stale read can only fail
 * validation, never commit. A commit is one call to the scheduler, which
 * takes the participating partitions' write turns, validates the reads on
 * their primaries and applies each partition's writes as one record on
 * every replica. Fenced writes (wo->lock) are checked by the scheduler, the
 * one fence of the cluster's transactions: TSR_ERR_STALE when a commit
 * already used a larger token of that lock (remembered across its
 * restarts when it has a --data-dir).
 * Implemented by the cluster library (tessera_scheduler,
 * scheduler/txn_cluster.c). TSR_ERR_AUTH: token refused or missing;
 * TSR_ERR_UNAVAILABLE: the scheduler cannot be reached. */
typedef struct tsr_txn_cluster_params {
    const char *scheduler;  /* "HOST:PORT" (required) */
    const char *token_file; /* NULL: $TESSERA_TOKEN_FILE, else ~/.config/tessera/token */
    int timeout_ms;         /* connecting; 0 = 10000 */
    bool scheduler_reads;   /* every read through the scheduler: no worker is dialled, which
                               saves a short-lived client (one script) its set-up;
                               TSR_TXN_ONE_SIDED=0 in the environment does the same */
} tsr_txn_cluster_params_t;
tsr_status_t tsr_txn_db_cluster(const tsr_txn_cluster_params_t *params, tsr_txn_db_t **out,
                                tsr_txn_err_t *err);
/* Accepts NULL. Finish (commit or roll back) its transactions first. */
void tsr_txn_db_close(tsr_txn_db_t *db);

typedef struct tsr_txn_stats {
    uint64_t commits;   /* committed read-write and read-only transactions */
    uint64_t conflicts; /* commits that failed with TSR_ERR_CONFLICT */
    uint64_t aborts;    /* other failed commits and rollbacks */
    uint64_t reads_rma; /* remote db: reads served by one-sided RMA */
    uint64_t reads_rpc; /* remote db: reads served by a call to the owner */
    uint64_t commits_snapshot; /* remote db: read-only commits decided without a
                                * call (their reads were one snapshot) */
    uint64_t locks_one_sided;  /* remote db: write-set keys locked by the client's
                                * own compare-and-swap (TSR_TXN_LOCKS_ONE_SIDED) */
} tsr_txn_stats_t;
void tsr_txn_db_stats(tsr_txn_db_t *db, tsr_txn_stats_t *out);

/* ---- one transaction --------------------------------------------------------------- */

tsr_status_t tsr_txn_begin(tsr_txn_db_t *db, tsr_txn_t **out, tsr_txn_err_t *err);
/* Copies min(value length, cap) bytes into buf and sets *vlen to the value's
 * length. The first read of a key records its version (or its absence);
 * later reads of it return the same value, or what this transaction wrote.
 * TSR_ERR_CONFLICT: the key is being committed by another transaction right
 * now (retry the transaction). */
tsr_status_t tsr_txn_get(tsr_txn_t *x, const char *table, const void *key, size_t klen, void *buf,
                         size_t cap, size_t *vlen, tsr_txn_err_t *err);
/* Several reads of x at once: the same as one tsr_txn_get per element in
 * order (read-your-writes, the first read of a key records its version or
 * its absence, a key repeated in the call is read once), except that the
 * first reads of keys not yet in x's sets go to the store together: on a
 * remote db their one-sided reads - on one table or several - are posted
 * at once and reaped by one wait (one round trip instead of one per key);
 * on a cluster db the one-sided reads go to their workers together (keys
 * without a usable reader are read through the scheduler); on a local db
 * they run one after another. Each element's status says how it ended:
 * TSR_OK (min(vlen, cap) bytes copied to buf, vlen = the value's full
 * length), TSR_ERR_NOT_FOUND (the key is absent, or deleted by x: vlen
 * untouched), or a failure: the read's own, or - when a batch of reads
 * fails as a whole (the owner unreachable, its table gone) - the batch's,
 * for every read it had not decided yet. Returns TSR_OK when every read was decided (TSR_OK or an absent
 * key), else the first failure in order: TSR_ERR_NOT_FOUND for an unknown
 * table, TSR_ERR_CONFLICT (a key being committed right now: retried by
 * tsr_txn_run like a get's), TSR_ERR_INVALID_ARG (bad arguments, a key too
 * long for its table: with bad arguments nothing is read and every status
 * says so). n == 0: TSR_OK. */
typedef struct tsr_txn_read {
    const char *table;
    const void *key;
    size_t klen;
    void *buf; /* the value is copied here, at most cap bytes */
    size_t cap;
    size_t vlen;         /* out: the value's full length */
    tsr_status_t status; /* out */
} tsr_txn_read_t;
tsr_status_t tsr_txn_get_many(tsr_txn_t *x, tsr_txn_read_t *reads, size_t n, tsr_txn_err_t *err);
/* Buffered until commit (an upsert); wo (may be NULL) fences the write. */
tsr_status_t tsr_txn_put(tsr_txn_t *x, const char *table, const void *key, size_t klen,
                         const void *val, size_t vlen, const tsr_kv_write_opts_t *wo,
                         tsr_txn_err_t *err);
/* Buffered until commit; deleting a missing key is not an error. */
tsr_status_t tsr_txn_delete(tsr_txn_t *x, const char *table, const void *key, size_t klen,
                            const tsr_kv_write_opts_t *wo, tsr_txn_err_t *err);
/* Commits and frees x whatever the outcome: TSR_OK once the commit record is
 * durable, TSR_ERR_CONFLICT / TSR_ERR_STALE with nothing applied. */
tsr_status_t tsr_txn_commit(tsr_txn_t *x, tsr_txn_err_t *err);
/* Drops the buffered writes and frees x. Accepts NULL. */
void tsr_txn_rollback(tsr_txn_t *x);

/* ---- retrying ------------------------------------------------------------------------ */

/* The body of a transaction: reads and writes through x and returns TSR_OK
 * to commit, anything else to roll back and stop with that status
 * (TSR_ERR_CONFLICT from a get is retried like a failed commit). It must not
 * commit or roll back x itself. */
typedef tsr_status_t (*tsr_txn_fn)(tsr_txn_t *x, void *arg);

typedef struct tsr_txn_run_opts {
    unsigned max_attempts;   /* 0 = 16 */
    unsigned backoff_us;     /* first backoff ceiling; 0 = 50 us */
    unsigned backoff_max_us; /* 0 = 20 ms */
    uint64_t seed;           /* backoff jitter; 0 = from the clock and thread */
} tsr_txn_run_opts_t;

/* Runs fn in a new transaction and commits, retrying on TSR_ERR_CONFLICT
 * after a random sleep in [0, ceiling) whose ceiling doubles per attempt
 * (randomized exponential backoff). Returns the last status (TSR_ERR_CONFLICT
 * after max_attempts conflicts); *attempts (may be NULL) says how many ran. */
tsr_status_t tsr_txn_run(tsr_txn_db_t *db, tsr_txn_fn fn, void *arg, const tsr_txn_run_opts_t *opts,
                         unsigned *attempts, tsr_txn_err_t *err);

/* ---- serving remote clients --------------------------------------------------------- */

/* Serves transactions on store to remote tsr_txn_db_remote clients: reads
 * by call (when the owner runs no kv server) and commits, which run here:
 * by a pool of 4 threads when the store has a log (a commit waits for its
 * write), in the handler otherwise. The caller keeps the transport
 * progressing (e.g. tsr_transport_start_thread); stop the progress (or call
 * from the progressing thread) before tsr_txn_server_stop, and stop the
 * server before closing the store. */
tsr_status_t tsr_txn_server_start(tsr_kv_store_t *store, tsr_transport_t *transport,
                                  uint16_t rpc_type, tsr_txn_server_t **out, tsr_txn_err_t *err);
void tsr_txn_server_stop(tsr_txn_server_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_TXN_H */
