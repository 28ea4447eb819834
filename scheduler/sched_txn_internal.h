/*
 * sched_txn_internal.h - what the coordinator's two files share:
 * sched_txn.c (a commit: parse, write turns, validate, apply, answer) and
 * sched_txn_redo.c (the coordinator log: PREPARE/DONE, waiting for their
 * durability, recovery and redo of decided commits). Private to
 * scheduler/; docs/kv.md "Transactions on a cluster".
 *
 * Everything runs on the scheduler's one thread (the log's syncing thread
 * touches only the log, txn_log.c).
 */
#ifndef TSR_SCHED_TXN_INTERNAL_H
#define TSR_SCHED_TXN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_msg.h"
#include "sched_kv.h"
#include "sched_txn.h"
#include "tessera/lock.h"
#include "txn_log.h"

typedef struct stxn_part {
    skv_table_t *t;
    uint32_t part;
    uint32_t nreads, nwrites;
    tsr_wbuf_t reads, writes;         /* the entries' bodies, encoded as in kv_msg.h */
    tsr_wbuf_t msg;                   /* the KV_RUN message in flight (validate, then apply) */
    kv_op_t *hold;                    /* the placeholder holding the partition's write turn */
    size_t cur;                       /* validate: the replica asked */
    bool failed[TSR_KV_MAX_REPLICAS]; /* apply: replicas that did not take it */
    unsigned applied;                 /* apply: replicas that took it */
    /* logged commits (the coordinator log) */
    uint32_t group;    /* its index among the PREPARE's parts (the partitions with writes) */
    bool redo;         /* decided, not applied on any replica yet: retried by the tick */
    unsigned inflight; /* redo: calls out (+1 while sending) */
    unsigned tries;    /* redo: attempts that no replica took (logged at powers of 2) */
    bool waited;       /* redo: it waited for replicas to rejoin (logged once) */
    struct stxn_wait {
        struct stxn *x;
        size_t pi;
        uint64_t lsn;
        int kind; /* stxn_wait_kind_t */
        struct stxn_wait *next;
    } wait; /* its DONE's, while queued */
} stxn_part_t;

typedef struct stxn {
    sched_t *s;
    tsr_rpc_req_t *req; /* NULL once answered, and for a recovery */
    stxn_part_t *parts;
    size_t nparts, cap;
    size_t next;    /* acquiring: the next partition to take */
    bool waiting;   /* acquiring: parts[next] is queued */
    bool in_submit; /* acquiring: inside tsr_sched_kv_submit */
    unsigned pending;
    tsr_wbuf_t fences; /* the fenced writes' (str lock, u64 token) */
    uint32_t nfences;
    tsr_status_t rc;
    char msg[400];
    char hint[200];
    /* the coordinator log */
    bool logged;   /* its PREPARE is in the log: turns go only with a durable DONE */
    bool recovery; /* loaded from the log at start: nothing to validate or answer */
    bool held;     /* every turn is held */
    bool owned;    /* on the coordinator's list (freed by it at exit) */
    uint64_t txid;
    size_t anext;        /* apply: the next partition to send */
    bool step_sent;      /* apply, test hook: this step sent a partition */
    unsigned crash_done; /* test hook: partitions applied */
    struct stxn *oprev, *onext;
    struct stxn_wait wait; /* the PREPARE's or the DONE of all, while queued */
} stxn_t;

typedef struct stxn_call {
    stxn_t *x;
    size_t pi, rep;
} stxn_call_t;

/* How long after its start a scheduler's redo waits for every fresh
 * replica of the partition to be up (its workers rejoining one by one),
 * rather than applying on those up and leaving the rest stale. */
#define STXN_REDO_GRACE_MS 10000u

/* What runs once the log is durable up to a wait's lsn. */
typedef enum { STXN_W_PREPARED, STXN_W_DONE_ALL, STXN_W_DONE_PART, STXN_W_FENCED } stxn_wait_kind_t;
typedef struct stxn_wait stxn_wait_t;

struct stxn_coord {
    tsr_txn_log_t *log;      /* NULL without --data-dir */
    tsr_lock_fence_t *fence; /* the largest token per lock of fenced writes (seeded from the log) */
    stxn_wait_t *whead, *wtail; /* in lsn order (appends come from this thread) */
    stxn_t *owned;              /* logged transactions not finished yet */
    long crash_after;           /* TSR_TEST_TXN_CRASH_AFTER_APPLIES; -1: off */
    bool failure_noted;
    uint64_t next_retry_ms;
    uint64_t commits, logged,
        redone; /* commits with writes, logged ones, partitions redone (the exit line) */
};

/* Records the commit's first error. */
void tsr_stxn_set_err(stxn_t *x, tsr_status_t rc, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers the client (once; a recovery has none). */
void tsr_stxn_reply(stxn_t *x);
/* Hands parts[i]'s turn on (which may start other commits). */
void tsr_stxn_release(stxn_t *x, size_t i);
/* Answers, hands every turn on and frees x. */
void tsr_stxn_finish(stxn_t *x);
/* Frees x (taking it off the coordinator's list); its turns must be gone. */
void tsr_stxn_free(stxn_t *x);
/* The participant (t, part), added when new; NULL when out of memory. */
stxn_part_t *tsr_stxn_participant(stxn_t *x, skv_table_t *t, uint32_t part);
/* qsort order of participants: (table name, partition). */
int tsr_stxn_cmp_part(const void *a, const void *b);
/* p->msg = the KV_RUN message of pop: u32 n, then body; false: no memory. */
bool tsr_stxn_build_msg(stxn_t *x, stxn_part_t *p, uint8_t pop, uint32_t n, const tsr_wbuf_t *body);
/* Sends parts[pi].msg to replica rep (x->pending counts it); false: not sent. */
bool tsr_stxn_send(stxn_t *x, size_t pi, size_t rep, sworker_t *w, tsr_rpc_done_fn fn);
/* Marks the replicas of p that missed what others took stale; true if one was. */
bool tsr_stxn_mark_missed(stxn_t *x, stxn_part_t *p);
/* Applies from parts[x->anext] on (all at once, or one under the test hook). */
void tsr_stxn_apply_from(stxn_t *x);
/* Takes the turns from parts[x->next] on; then validates (or redoes). */
void tsr_stxn_acquire(stxn_t *x);

/* sched_txn_redo.c */
/* Puts x on the coordinator's list (it frees x at exit). */
void tsr_stxn_own(stxn_t *x);
/* Logs x's PREPARE (the commit point) and applies once it is durable. */
void tsr_stxn_prepare(stxn_t *x);
/* Applies x once the log is durable up to lsn (its fences' records); x is
 * owned meanwhile (freed by the coordinator if the scheduler stops). */
void tsr_stxn_apply_when_fenced(stxn_t *x, uint64_t lsn);
/* False, with x's error set (TSR_ERR_NOT_FOUND), when a table x writes was
 * dropped since x began: applying would recreate its partitions as orphans
 * on the workers and acknowledge writes nobody can read. */
bool tsr_stxn_none_dropped(stxn_t *x);
/* Appends the DONE of part (TSR_TXN_LOG_ALL: all) and runs kind once durable. */
void tsr_stxn_log_done(stxn_t *x, size_t pi, uint32_t part, stxn_wait_kind_t kind);
/* Applies a decided parts[i] on its usable replicas (none: retried later). */
void tsr_stxn_try_redo(stxn_t *x, size_t i);

#endif /* TSR_SCHED_TXN_INTERNAL_H */
