/*
 * sched_kv.h - what the scheduler's kv files share (sched_kv.c: catalog,
 * placement, routing, replication; sched_kv_sync.c: resync of stale
 * replicas; kv_missed.c: missed keys, doubt and store identities;
 * kv_compare.c: the fresh replicas of a partition in doubt compared;
 * kv_catalog.c: the catalog on disk; kv_rebalance.c: partition
 * moves when a worker joins, replacement of replicas on workers gone for
 * good): the catalog's types and the calls between
 * them. Private to scheduler/.
 */
#ifndef TSR_SCHED_KV_H
#define TSR_SCHED_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_keyset.h"
#include "kv_msg.h"
#include "sched_internal.h"

#define KV_CALL_MS 30000
/* The puts of a partition that wait for its turn go out together, one
 * LOAD for all its replicas (one round of fdatasyncs for them all): at
 * most this many pairs, and this many bytes of them, per write. */
#define KV_GROUP_PAIRS 512u
#define KV_GROUP_BYTES (4u << 20)
#define KV_ID_MAX 400
enum { KV_RESYNC_DELTA, KV_RESYNC_RANGES, KV_RESYNC_WHOLE };
enum { KV_COMPARE_AGREE, KV_COMPARE_DIFFER, KV_COMPARE_FAILED };
#define KV_RETIRED_MAX 16     /* decommissioned worker ids remembered */
#define KV_REPLACE_BUSY_MAX 4 /* partitions copying for a replacement at once */
/* Resyncs (a stale replica refilled, the new copy of a move) running at
 * once in the whole cluster: each reads a partition through and writes it
 * on the target, so a worker that joins or comes back with many partitions
 * copies at most this many at a time (sched_kv_sync.c). */
#define KV_SYNC_MAX 4
/* A resync's queue for its target (pages and writes not yet applied there)
 * past which it gives up (retried later): the target is slower than the
 * partition's writes. The next page is asked for only while fewer than
 * KV_SYNC_PAGES_AHEAD pages are queued or in flight to the target. */
#define KV_SYNC_QUEUE_MAX (64u << 20)
#define KV_SYNC_PAGES_AHEAD 2
/* The written keys a resync remembers, in bytes, past which it gives up. */
#define KV_SYNC_KEYS_MAX (256u << 20)
/* A stale replica's missed keys, in bytes, past which they are forgotten
 * (its resync then copies the whole partition). */
#define KV_MISSED_MAX (64u << 20)
/* Every stale replica's missed keys together, in bytes (the scheduler's
 * memory): a set whose growth takes the sum past it is forgotten. */
#define KV_MISSED_TOTAL_MAX ((size_t)512u << 20)

/* One replica slot of a partition. An empty id is a free slot (no replica):
 * every partition has one spare slot (while the table has fewer than
 * TSR_KV_MAX_REPLICAS replicas) that a worker joining the ring fills during
 * a partition move (kv_rebalance.c). */
typedef struct skv_rep {
    char id[KV_ID_MAX];
    bool stale;   /* missed an acknowledged write: neither read nor written */
    bool leaving; /* displaced by a move: dropped once the new replica is fresh */
    /* While stale, since it went stale from fresh in this scheduler: the
     * keys of every write it missed, and the identity of the store that
     * holds its copy then (sworker_t.store_id). A resync whose target
     * comes back with that store refills only these keys (a delta,
     * sched_kv_sync.c). NULL: not known (a move's new copy, a catalog
     * loaded at start, past KV_MISSED_MAX, a full refill begun). */
    kv_keyset_t *missed;
    uint64_t missed_store;
    /* The identity of the store that holds this copy (sworker_t.store_id,
     * saved in the catalog; 0: not known): a worker that joins with
     * another store under this replica's id lost the copy (its data dir
     * was emptied or replaced), so the replica is stale (sched_kv_sync.c
     * tsr_sched_kv_check_stores). */
    uint64_t store;
} skv_rep_t;

struct kv_op;
struct kv_sync;

/* A partition's traffic state: its write in flight (at most one: sched_kv.c
 * op_part), the writes waiting for their turn, and a resync of a stale
 * replica (writes wait only while it starts and while it closes). */
typedef struct skv_part {
    unsigned writes;             /* writes sent and not finished */
    struct kv_sync *sync;        /* non-NULL while a stale replica is being resynced */
    struct kv_op *qhead, *qtail; /* writes waiting: their turn, or the resync's start or end */
    uint64_t retry_ms;           /* no new resync before (after a failed one) */
    /* A write of the partition may have been applied on some replica and
     * not on others without any replica going stale for it (no replica
     * answered it; or the catalog was loaded at start, so writes in flight
     * when the last scheduler died are unknown): its replicas may differ
     * on keys no missed set names, so stale replicas are copied whole (no
     * delta) until a whole copy leaves every fresh replica a copy of one
     * (sched_kv_sync.c). */
    bool doubt;
    /* the last comparison of its fresh replicas failed (kv_compare.c): a
     * stale replica is resynced before the next one, so a replica that
     * cannot answer DIGEST does not hold every copy back */
    bool compare_failed;
    /* the last resync by ranges failed (kv_ranges.c): the next is whole, so
     * a copy that cannot be done by ranges (an RDROP too slow, a digest
     * queue overflowing) does not fail the same way forever */
    bool ranges_failed;
} skv_part_t;

typedef struct skv_table {
    char name[TSR_KV_TABLE_NAME_MAX + 1];
    uint64_t gen;
    uint32_t nparts;
    uint32_t nrep;     /* replica slots per partition: replicas + 1 spare (at most
                          TSR_KV_MAX_REPLICAS); the stride of reps */
    uint32_t replicas; /* the table's replica count (what create asked) */
    uint32_t max_key, max_value;
    skv_rep_t *reps; /* nparts x nrep; free slots have an empty id */
    skv_part_t *parts;
    unsigned refs; /* the catalog's + calls in flight */
} skv_table_t;

struct skv {
    skv_table_t **tables;
    size_t n, cap;
    uint64_t next_gen;
    bool unsaved;           /* the last save of the catalog failed (kv_catalog.c) */
    unsigned syncs;         /* resyncs running (at most KV_SYNC_MAX, sched_kv_sync.c) */
    uint32_t sync_page;     /* pairs per resync page; 0: by the table's sizes (test hook) */
    bool missed_file;       /* DIR/kv-missed was read at start, not removed yet */
    size_t missed_bytes;    /* every missed set's tsr_kv_keyset_bytes (kv_missed.c) */
    size_t missed_max;      /* their bound: KV_MISSED_TOTAL_MAX (or the test hook's) */
    bool sync_more_running; /* inside tsr_sched_kv_sync_more */
    /* group commit (sched_kv_repl.c gather_puts), logged at the stop: */
    uint64_t puts;        /* puts sent to their replicas */
    uint64_t put_writes;  /* the writes that carried them (a group is one) */
    uint64_t put_grouped; /* puts that went in a group of 2 or more */
    /* since start, for GET /metrics (http.c): resyncs ended by kind
     * (KV_RESYNC_DELTA/RANGES/WHOLE) and failed, pairs they copied, and
     * comparisons by outcome (KV_COMPARE_AGREE/DIFFER/FAILED) */
    uint64_t resyncs[3], resyncs_failed, resync_pairs;
    uint64_t compares[3];
    /* Replacing replicas of workers gone for good (kv_rebalance.c): */
    uint64_t next_replace_ms; /* the tick's next look */
    bool replace_blocked;     /* "no worker can take them" was logged */
    /* workers an operator decommissioned (`kv decommission`, saved in the
     * catalog): their replicas move away and they take no new ones; a mark
     * goes once its worker holds nothing and is stopped (kv_rebalance.c) */
    char retired[KV_RETIRED_MAX][KV_ID_MAX];
    size_t nretired;
    /* workers down when a replica of theirs left the placement (its copy
     * could not be dropped): if one rejoins, the partitions it no longer
     * holds are dropped on it (in memory only) */
    char evicted[KV_RETIRED_MAX][KV_ID_MAX];
    size_t nevicted;
};

/* One partition request being served. */
typedef struct kv_op {
    sched_t *s;
    tsr_rpc_req_t *req;
    skv_table_t *t;
    uint32_t part;
    uint8_t pop;
    bool write;
    const uint8_t *payload; /* into req's data */
    size_t plen;
    size_t cur;                       /* the replica tried as primary */
    bool failed[TSR_KV_MAX_REPLICAS]; /* replicas whose call failed */
    unsigned pending;                 /* backup (or upsert) calls in flight */
    tsr_wbuf_t msg;                   /* the primary's message */
    tsr_wbuf_t effect;                /* the backups' (an upsert's: every replica's) message */
    uint8_t *reply;                   /* the primary's (an upsert's first) answer */
    size_t reply_len;
    bool counted;    /* counted in its partition's writes */
    bool unanswered; /* a replica got it and never answered: maybe applied there */
    bool partial;    /* a replica stored only part of the upsert's batch */
    /* an upsert sent to every fresh replica at once (sched_kv_repl.c) */
    unsigned applied;     /* replicas that applied it */
    tsr_status_t estatus; /* the first replica's error (TSR_OK: none) */
    uint8_t *ereply;      /* its answer (a proto.h "rerr"), for the client */
    size_t elen;
    struct kv_op *next; /* in the partition's queue, or among riders */
    /* puts that waited behind this one and go out with it as one LOAD
     * (sched_kv_repl.c gather_puts): answered as it is, freed with it */
    struct kv_op *riders;
    uint32_t pairs; /* an upsert's pairs (its effect's; a put: 1 + riders) */
    /* non-NULL: a placeholder that only holds the partition's write turn
     * for a transaction's commit (sched_txn.c): when its turn comes,
     * granted(op) runs instead of a send; the turn ends with
     * tsr_sched_kv_op_done(op) */
    void (*granted)(struct kv_op *op);
    void *arg;
} kv_op_t;

/* A resync (sched_kv_sync.c): DROP the stale copy, then copy the partition
 * page by page (SCAN on a fresh replica, LOAD into the stale one) while
 * the partition's writes go on, each also queued for the stale copy. */
typedef enum kv_sync_phase {
    KV_SYNC_WAITING,   /* the writes in flight finish; new ones wait */
    KV_SYNC_COPYING,   /* pages and writes' effects flow to the copy */
    KV_SYNC_CLOSING,   /* the copy caught up: new writes wait for the end */
    KV_SYNC_COMPARING, /* a comparison's digests are asked for: writes wait */
} kv_sync_phase_t;

/* One replica's digest of its copy per hash range of the keys, asked
 * chunk by chunk (RDIGEST) of the process it is on and added up
 * (kv_digest.c): a comparison's (1 range), a resync by ranges'. */
typedef struct kv_digest {
    struct kv_sync *y;
    size_t rep;         /* the replica (index in its partition's slots) */
    uint32_t nranges;   /* 1, or TSR_KV_RESYNC_RANGES */
    const sworker_t *w; /* the process asked: every chunk goes to it */
    uint64_t cursor;    /* where the next chunk starts */
    unsigned restarts;  /* started over (rehashed between chunks) */
    bool asked;
    bool answered;  /* every chunk came back, from the process the replica is still on */
    uint64_t pairs; /* the copy's */
    uint64_t *sums; /* 2 per range, added up over the chunks */
    void (*done)(struct kv_digest *d); /* once: answered, or failed */
} kv_digest_t;

/* One message for the stale copy, in the order it must be applied. */
typedef struct kv_sync_item {
    struct kv_sync_item *next;
    size_t len;
    uint8_t pop; /* a DEL may answer NOT_FOUND: the same effect */
    bool page;   /* a page of the copy (counted in kv_sync_t.pages) */
    uint8_t data[];
} kv_sync_item_t;

typedef struct kv_sync {
    sched_t *s;
    skv_table_t *t;
    uint32_t part;
    size_t src, dst;        /* replica indexes */
    const sworker_t *src_w; /* the process the scan reads (a new one: from slot 0) */
    const sworker_t *dst_w; /* the process the copy is written in (another: it fails) */
    kv_sync_phase_t phase;
    bool delta;     /* refills only dst's missed keys (FETCH), no DROP */
    uint64_t end;   /* delta: the missed set's bytes to go through */
    uint32_t batch; /* delta: keys in the FETCH in flight */
    bool failed;    /* ends (stale still) once nothing is in flight */
    bool scanning;  /* a SCAN call to src in flight */
    bool scanned;   /* the last page came */
    uint64_t cursor;
    unsigned rescans;                    /* scans started over (the source rehashed) */
    uint64_t copied, skipped, forwarded; /* pairs loaded, pairs left out, writes */
    kv_sync_item_t *head, *tail;         /* for dst, in order; one call at a time */
    kv_sync_item_t *sending;             /* the item whose call to dst is in flight */
    size_t queued;                       /* bytes of the items queued */
    unsigned pages;                      /* pages queued or in flight to dst */
    kv_keyset_t written;                 /* keys the forwarded writes touched */
    tsr_wbuf_t scan;                     /* the SCAN call's message */
    /* A copy by ranges (kv_ranges.c): both copies' digests per hash
     * range are asked for first (digesting: nothing goes to dst, no page
     * is read), then only the ranges that differ are emptied on dst (an
     * RDROP first in its queue) and copied. */
    bool digesting;
    uint8_t *ranges;  /* the ranges copied (bits, TSR_KV_RESYNC_RANGES); NULL: all */
    uint32_t nranges; /* how many of them */
    bool by_ranges;   /* the digests were compared (none may have differed) */
    /* A comparison instead of a copy (kv_compare.c): the partition is in
     * doubt and all its fresh replicas are up; each is asked for its
     * digest while the writes wait, and those that differ from src's go
     * stale. dst is unused. */
    bool compare;
    unsigned digests;                     /* digests not done yet */
    kv_digest_t dig[TSR_KV_MAX_REPLICAS]; /* per replica: src's and dst's, or every fresh one's */
} kv_sync_t;

typedef struct kv_bcall {
    kv_op_t *op;
    size_t rep;
} kv_bcall_t;

/* The newest ready worker with this replica id; NULL when none is up. */
/* Worker slot i's replica id ("host:data-dir", else "worker-N"). */
void tsr_sched_kv_worker_id(const sched_t *s, size_t i, char *buf, size_t size);
/* Saves the catalog to the scheduler's data dir (kv_catalog.c), when it has
 * one; a failure is logged (the catalog in memory stays authoritative) and
 * returns false (true: saved, or no data dir). */
bool tsr_sched_kv_persist(sched_t *s);
/* Allocates an empty table (nslots replica slots per partition, all free). */
skv_table_t *tsr_sched_kv_table_new(sched_t *s, uint32_t nparts, uint32_t nslots);
/* Adds t to the catalog (which then holds its reference); false: no memory. */
bool tsr_sched_kv_table_add(sched_t *s, skv_table_t *t);
/* After a resync made a replica fresh: ends the partition's move, if one is
 * pending and complete (kv_rebalance.c): the displaced replica leaves the
 * placement (persisted) and its copy is dropped on its worker. */
void tsr_sched_kv_move_settle(sched_t *s, skv_table_t *t, uint32_t part);
/* Sends a best-effort DROP of the partition's copy to replica id's worker. */
void tsr_sched_kv_drop_copy(sched_t *s, const skv_table_t *t, uint32_t part, const char *id);
/* Drops store table "<name>.<gen>.<part>" on worker w (best effort, async). */
void tsr_sched_kv_drop_store_table(sched_t *s, sworker_t *w, const char *store_table);
/* Asks worker wi (just joined) for its store tables and drops those the
 * catalog does not give it (kv_orphans.c); only with a --data-dir catalog
 * and a worker with a data dir. */
void tsr_sched_kv_sweep_orphans(sched_t *s, size_t wi);
sworker_t *tsr_sched_kv_ready_worker(sched_t *s, const char *id);
/* A KV_RUN message for partition part of t: pop with payload. */
void tsr_sched_kv_encode_run(const skv_table_t *t, uint32_t part, uint8_t pop, const void *payload,
                             size_t plen, tsr_wbuf_t *b);
/* Sends op to its partition's replicas (counting a write as in flight). */
void tsr_sched_kv_dispatch(kv_op_t *op);
/* Dispatches op, or queues it behind its partition's write in flight or
 * resync (a write). */
void tsr_sched_kv_submit(sched_t *s, kv_op_t *op);
/* Ends op (a write's turn passes to the next waiting one) and frees it. */
void tsr_sched_kv_op_done(kv_op_t *op);
/* The catalog's table of that name; NULL when none. */
skv_table_t *tsr_sched_kv_find(sched_t *s, const char *name);
/* Whether replica r of the partition is usable (not stale, its worker up: *w). */
bool tsr_sched_kv_usable(sched_t *s, const skv_table_t *t, uint32_t part, size_t r, sworker_t **w);
/* Marks replica r of the partition stale (it missed an acknowledged write):
 * msg is that write's KV_RUN (its keys start the replica's missed set), or
 * NULL when unknown. */
void tsr_sched_kv_mark_stale(sched_t *s, skv_table_t *t, uint32_t part, size_t r,
                             const tsr_wbuf_t *msg);
/* Whether the catalog on disk knows every stale replica of the partition
 * (none, or the last save worked, or a new try does): a write a stale
 * replica lacks must not be acknowledged before (sched_kv_repl.c). */
bool tsr_sched_kv_stale_saved(sched_t *s, const skv_table_t *t, uint32_t part);
/* Starts replica r's missed set (it just went stale) with msg's keys
 * (sched_kv_sync.c); none when msg is NULL or its store is not known. */
void tsr_sched_kv_missed_start(sched_t *s, skv_table_t *t, uint32_t part, size_t r,
                               const tsr_wbuf_t *msg);
/* A write of the partition ended with its outcome unknown on some replica
 * (sent, never answered) and no replica marked stale for it: the partition
 * is in doubt (skv_part_t.doubt; its missed sets are forgotten and a
 * running resync fails, to be retried as a whole copy). */
void tsr_sched_kv_doubt(sched_t *s, skv_table_t *t, uint32_t part);
/* Forgets a replica's missed keys (its copy is about to be refilled whole,
 * or is fresh again, or the slot is freed). */
void tsr_sched_kv_forget_missed(sched_t *s, skv_rep_t *rep);
void tsr_sched_kv_table_unref(sched_t *s, skv_table_t *t);
/* The partition's first waiting write (NULL when none), taken off its queue. */
kv_op_t *tsr_sched_kv_dequeue(skv_part_t *sp);
/* Starts a resync of the partition if a stale replica's worker is up, a
 * fresh replica exists and fewer than KV_SYNC_MAX resyncs run
 * (sched_kv_sync.c). */
void tsr_sched_kv_maybe_sync(sched_t *s, skv_table_t *t, uint32_t part);
/* Starts waiting resyncs, in catalog order, while fewer than KV_SYNC_MAX
 * run (after one ended, and at every kv tick). */
void tsr_sched_kv_sync_more(sched_t *s);
/* Worker wi joined: each replica under its id whose copy was in another
 * store (its data dir was emptied or replaced) is marked stale, to be
 * refilled whole before anyone reads it; a replica whose store was not
 * known takes the worker's. Saves the catalog when it changed. */
void tsr_sched_kv_check_stores(sched_t *s, size_t wi);
/* At start, after the catalog (kv_missed_file.c): what the last clean
 * stop kept (tsr_sched_kv_missed_save, sched_internal.h): partitions out of
 * doubt, missed sets back (a file that does not decode is not used); the
 * file is removed by tsr_sched_kv_missed_drop (sched_internal.h). */
void tsr_sched_kv_missed_load(sched_t *s);
/* Adds the keys a KV_RUN message (PUT, DEL, LOAD or TAPPLY) writes to set
 * (kv_missed.c); false when it cannot be read or out of memory. *pop: its
 * pop. */
bool tsr_sched_kv_msg_keys(kv_keyset_t *set, const tsr_wbuf_t *msg, uint8_t *pop);
/* Queues a write's effect (applied on a fresh replica) for a copying
 * resync's target and remembers its keys (sched_kv_sync.c); nothing before
 * the copy began. */
void tsr_sched_kv_sync_forward(kv_sync_t *y, const tsr_wbuf_t *msg);
/* Fails a running resync (it ends, stale still, once its calls are back). */
void tsr_sched_kv_sync_fail(kv_sync_t *y);
/* Frees every running resync (the scheduler stops; its transport is gone,
 * so no call of theirs answers any more). */
void tsr_sched_kv_sync_free_all(sched_t *s);
/* Runs a resync whose partition has no write in flight any more; true
 * when it is copying (writes may go on), false when it ended at once. */
bool tsr_sched_kv_sync_start(kv_sync_t *y);
/* Asks d->rep's process for its digest (d->y, rep, nranges and done set);
 * false when it cannot be asked (done is not called then). */
bool tsr_sched_kv_digest_ask(kv_digest_t *d);
/* Frees the digests' sums of y. */
void tsr_sched_kv_digests_free(kv_sync_t *y);
/* A whole copy is starting (its missed keys are not known): asks src and
 * dst for their digests per range (kv_ranges.c); false when they cannot
 * be asked (the copy goes whole at once). */
bool tsr_sched_kv_ranges_start(kv_sync_t *y);
/* Frees what a copy by ranges holds. */
void tsr_sched_kv_ranges_free(kv_sync_t *y);
/* Puts a message for dst first in its queue (nothing was sent to dst
 * yet); false when out of memory (sched_kv_sync.c). */
bool tsr_sched_kv_sync_push_first(kv_sync_t *y, uint8_t pop, const void *msg, size_t len);
/* Ends y (its calls all answered; y is freed): the partition's waiting
 * writes run, and with settle a pending move may end and the next resync
 * start (sched_kv_sync.c). */
void tsr_sched_kv_sync_release(kv_sync_t *y, bool settle);
/* Whether the partition's fresh replicas are to be compared: it is in
 * doubt, it has 2 or more, and each one's worker is up; *src: the first
 * (the primary, whose copy the others must equal; kv_compare.c). */
bool tsr_sched_kv_compare_due(sched_t *s, const skv_table_t *t, uint32_t part, size_t *src);
/* No write of the partition is in flight: asks every fresh replica for its
 * digest (y->compare). False when y ended at once (freed). */
bool tsr_sched_kv_compare_start(kv_sync_t *y);
/* A closing resync's partition has no write in flight any more: it ends
 * once its target has applied everything queued. */
void tsr_sched_kv_sync_poke(kv_sync_t *y);
/* A write's effect, msg (a KV_RUN of PUT, DEL, LOAD or TAPPLY), was applied
 * on a fresh replica of the partition: its keys join the missed set of
 * each stale replica, and while a resync of the partition copies, the
 * effect is queued for its target too and its keys are remembered so no
 * page read before it brings an older value back. */
void tsr_sched_kv_note_write(sched_t *s, skv_table_t *t, uint32_t part, const tsr_wbuf_t *msg);
/* The replacement's target (kv_rebalance.c, pure): the first of the n ring
 * members in clockwise order (order) that is ready and not one of the
 * partition's nholders replica ids; n when none is. */
size_t tsr_sched_kv_pick_target(const char *const *order, size_t n, const bool *ready,
                                const char *const *holders, size_t nholders);
/* Whether an operator decommissioned worker id (kv_rebalance.c). */
bool tsr_sched_kv_retired(const sched_t *s, const char *id);
/* DECOMMISSION (kv_msg.h): marks worker id retired; its replicas move away
 * at the next tick. */
void tsr_sched_kv_decommission(sched_t *s, tsr_rpc_req_t *req, const char *id);

#endif /* TSR_SCHED_KV_H */
