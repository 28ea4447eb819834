/*
 * txn_log_int.h - what the coordinator log's two files share: txn_log.c
 * (records, loading, appending) and txn_log_sync.c (group commit and
 * compaction). Private to scheduler/.
 */
#ifndef TSR_TXN_LOG_INT_H
#define TSR_TXN_LOG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txn_log.h"
#include "wire.h" /* tsr_wire_put_u32 and the other little-endian helpers */

#define LOG_MAGIC "TSRTXLG1"
/* a log that holds FENCE records: a build that does not know them refuses
 * the file (bad magic) instead of cutting it at the first one as a torn
 * tail, which would lose the decided PREPAREs after it */
#define LOG_MAGIC2 "TSRTXLG2"
#define REC_HEAD 12u              /* u32 len + u64 check */
#define BODY_HEAD 13u             /* u8 type + u64 txid + u32 aux */
#define LOG_MAX_READ (1ull << 31) /* refuse to load a larger file */

enum { REC_PREPARE = 1, REC_DONE = 2, REC_FENCE = 3 };
#define FENCE_NAME_MAX 255u /* as the lock service's names */

typedef struct txl_buf {
    uint8_t *data;
    size_t len, cap;
} txl_buf_t;

/* An outstanding transaction: its PREPARE record (for compaction and
 * tsr_txn_log_pending_get) and which parts are done. */
typedef struct txl_pend {
    uint64_t txid;
    uint32_t nparts, ndone;
    uint8_t *done;
    uint8_t *rec; /* the whole PREPARE record, header included */
    size_t rec_len;
} txl_pend_t;

struct tsr_txn_log {
    tsr_mem_t *mem;
    char path[4200], tmp[4210], dir[4096];
    int fd;
    uint64_t max_bytes;
    void (*note)(void *arg, const char *msg);
    void *note_arg;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* durable moved, a leader finished, or work for the syncer */
    txl_buf_t buf;     /* appended, not yet taken by a leader */
    txl_buf_t spare;   /* the other buffer (swapped in by the leader) */
    bool magic2;       /* the file starts with LOG_MAGIC2 */
    bool want_magic2;  /* a FENCE was appended: the next write makes it so */
    uint64_t appended; /* lsn: bytes ever appended */
    uint64_t durable;  /* bytes ever made durable */
    bool syncing;      /* a leader is writing */
    tsr_status_t failed;
    char failmsg[300];
    txl_pend_t **pend; /* outstanding transactions */
    size_t npend, pcap;
    uint64_t next_txid;
    struct txl_fence {
        char *name;
        uint64_t token;
        uint64_t lsn; /* where its record ends (0: loaded, durable) */
    } * fences;       /* the largest token per lock name */
    size_t nfences, fcap;
    tsr_txn_log_stats_t st;

    bool has_syncer, stop;
    pthread_t syncer;
};

/* A FENCE record's size for a name of len bytes. */
#define FENCE_REC(len) (REC_HEAD + BODY_HEAD + 8u + (len))

/* txn_log.c */
/* A line for the daemon's log (params.note), if any. */
void tsr__txl_note(tsr_txn_log_t *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Room for more bytes at the end of b; false: no memory. */
bool tsr__txl_buf_reserve(tsr_mem_t *mem, txl_buf_t *b, size_t more);
/* Encodes one record at the end of b (reserved by the caller). */
void tsr__txl_encode(txl_buf_t *b, uint8_t type, uint64_t txid, uint32_t aux, const void *payload,
                     size_t len);
/* Encodes name's FENCE record at the end of b (reserved by the caller). */
void tsr__txl_encode_fence(txl_buf_t *b, const char *name, uint64_t token);

/* txn_log_sync.c */
/* One leader round: called with the lock held, !syncing and something
 * appended; returns with the lock held. */
void tsr__txl_sync_round(tsr_txn_log_t *log);
/* The syncing thread (params.syncer). */
void *tsr__txl_syncer_main(void *arg);

#endif /* TSR_TXN_LOG_INT_H */
