/*
 * txn_log.h - the coordinator log of cluster transactions (txn_log.c;
 * docs/kv.md "Transactions on a cluster", Coordinator log): PREPARE and
 * DONE records in <data dir>/txn-log, group-committed with fdatasync,
 * loaded at start-up to find the commits that were decided but may not
 * have reached every partition; and FENCE records, the largest fencing
 * token each lock's fenced writes used, which a restarted coordinator
 * must not forget. Private to scheduler/.
 *
 * Thread-safe: appends and syncs may come from several threads; the
 * scheduler appends from its one thread and lets the log's syncing thread
 * (params.syncer) make the records durable, polling tsr_txn_log_durable.
 */
#ifndef TSR_TXN_LOG_H
#define TSR_TXN_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

/* A DONE record's part for the whole transaction. */
#define TSR_TXN_LOG_ALL UINT32_MAX
#define TSR_TXN_LOG_FILE "txn-log"
#define TSR_TXN_LOG_DEFAULT_MAX (4u << 20)

typedef struct tsr_txn_log tsr_txn_log_t;

typedef struct tsr_txn_log_params {
    const char *dir;    /* the log is <dir>/txn-log (the directory must exist) */
    uint64_t max_bytes; /* compact the file once it grows past this (0: 4 MiB) */
    bool syncer;        /* start a thread that syncs whatever is appended */
    /* messages worth a line in the daemon's log (a torn tail ignored, a
     * compaction); may be NULL */
    void (*note)(void *arg, const char *msg);
    void *note_arg;
} tsr_txn_log_params_t;

/* A PREPARE without DONE for all its parts (an outstanding transaction). */
typedef struct tsr_txn_log_pending {
    uint64_t txid;
    uint32_t nparts;
    const uint8_t *done; /* nparts flags: 1 = that part's DONE is logged */
    const uint8_t *payload;
    size_t len;
} tsr_txn_log_pending_t;

typedef struct tsr_txn_log_stats {
    uint64_t syncs;       /* fdatasyncs of appended records */
    uint64_t records;     /* records appended since open */
    uint64_t file_bytes;  /* the file's size as written */
    uint64_t compactions; /* rewrites keeping only the outstanding records */
    uint64_t torn_bytes;  /* ignored at open (a torn or damaged tail) */
    size_t outstanding;   /* prepared transactions without their DONE */
} tsr_txn_log_stats_t;

/* Opens (creates) <dir>/txn-log and loads it: every outstanding PREPARE is
 * then listed by tsr_txn_log_pending. A torn or damaged tail is cut off at
 * the last whole record (noted); a file that is not a txn log fails. */
tsr_status_t tsr_txn_log_open(tsr_mem_t *mem, const tsr_txn_log_params_t *p, tsr_txn_log_t **out,
                              tsr_error_t *err);
/* Stops the syncer, syncs what was appended (best effort), closes. NULL ok. */
void tsr_txn_log_close(tsr_txn_log_t *log);

/* Outstanding transaction i (0..count-1) as of now; its pointers stay valid
 * until the next append. Meant for start-up, before any append. */
size_t tsr_txn_log_pending_count(tsr_txn_log_t *log);
bool tsr_txn_log_pending_get(tsr_txn_log_t *log, size_t i, tsr_txn_log_pending_t *out);

/* A transaction id no record of the file has used. */
uint64_t tsr_txn_log_new_txid(tsr_txn_log_t *log);

/* Appends a PREPARE of nparts parts with its payload (copied) or a DONE of
 * one part (TSR_TXN_LOG_ALL: every part); *lsn is what tsr_txn_log_sync or
 * tsr_txn_log_durable must reach for the record to be durable. Nothing is
 * written here. Fails once a write or sync of the file failed. */
tsr_status_t tsr_txn_log_prepare(tsr_txn_log_t *log, uint64_t txid, uint32_t nparts,
                                 const void *payload, size_t len, uint64_t *lsn, tsr_error_t *err);
tsr_status_t tsr_txn_log_done(tsr_txn_log_t *log, uint64_t txid, uint32_t part, uint64_t *lsn,
                              tsr_error_t *err);

/* Records that a commit used token for lock name (1..255 bytes): appends a
 * FENCE when token is larger than the one recorded (or name is new).
 * *lsn is what must be durable for the recorded token (>= token) to
 * survive a restart: that of the record just appended, or of the one
 * appended earlier (0 when it was loaded at open). The caller checks that
 * the token is not stale (tsr_lock_fence_check) first: a smaller token
 * than the recorded one changes nothing here. */
tsr_status_t tsr_txn_log_fence(tsr_txn_log_t *log, const char *name, uint64_t token,
                               uint64_t *lsn, tsr_error_t *err);
/* The fences recorded (loaded at open and appended since): name i's
 * largest token; *name stays valid until the log is closed. */
size_t tsr_txn_log_fence_count(tsr_txn_log_t *log);
bool tsr_txn_log_fence_get(tsr_txn_log_t *log, size_t i, const char **name, uint64_t *token);

/* Blocks until every record up to lsn is durable (group commit: one thread
 * writes and fdatasyncs what all threads appended, the others wait).
 * lsns count from the open: TSR_ERR_INVALID_ARG for one not handed out. */
tsr_status_t tsr_txn_log_sync(tsr_txn_log_t *log, uint64_t lsn, tsr_error_t *err);
/* Non-blocking: *lsn = what is durable now; an error once the log failed. */
tsr_status_t tsr_txn_log_durable(tsr_txn_log_t *log, uint64_t *lsn, tsr_error_t *err);

void tsr_txn_log_get_stats(tsr_txn_log_t *log, tsr_txn_log_stats_t *out);

#endif /* TSR_TXN_LOG_H */
