/*
 * sched_kv_repl.c - the cluster kv store's write path in the scheduler:
 * a partition's writes queue in arrival order (one in flight); an upsert
 * (PUT, LOAD) runs on every usable replica at once, a conditional write
 * (INSERT, UPDATE, DEL) on the first usable replica (the primary; the next
 * one when it fails without answering), then its effect on every other
 * usable replica, and the client is answered when all have; a replica
 * that missed an acknowledged write is marked stale (saved before the
 * answer) and left for a resync, which gets every write's effect while it
 * copies (sched_kv_sync.c).
 * The design is described at the top of sched_kv.c and in docs/kv.md
 * "On a cluster".
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kv_msg.h"
#include "sched_kv.h"
#include "sched_txn.h"
#include "tessera/kv.h"

static bool usable(sched_t *s, const skv_table_t *t, uint32_t part, size_t r, sworker_t **w)
{
    const skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
    if (rep->stale || !rep->id[0])
        return false;
    *w = tsr_sched_kv_ready_worker(s, rep->id);
    return *w != NULL;
}

bool tsr_sched_kv_usable(sched_t *s, const skv_table_t *t, uint32_t part, size_t r, sworker_t **w)
{
    return usable(s, t, part, r, w);
}

static void op_free(kv_op_t *op)
{
    sched_t *s = op->s;
    kv_op_t *next = NULL;
    if (op->counted) {
        skv_part_t *sp = &op->t->parts[op->part];
        kv_sync_t *y = sp->sync;
        sp->writes--;
        /* the next waiting write runs unless a resync holds them: while it
         * starts (it may copy as soon as this write is done) or closes (it
         * ends once its target has the queue applied; its end runs them) */
        if (sp->writes > 0)
            ;
        else if (y && y->phase == KV_SYNC_WAITING) {
            if (tsr_sched_kv_sync_start(y) && y->phase == KV_SYNC_COPYING)
                next = tsr_sched_kv_dequeue(sp);
        } else if (y && y->phase == KV_SYNC_CLOSING)
            tsr_sched_kv_sync_poke(y);
        else if (y && y->phase == KV_SYNC_COMPARING)
            ; /* no write runs until its digests are back; its end runs them */
        else
            next = tsr_sched_kv_dequeue(sp); /* holds a table ref of its own */
    }
    while (op->riders) { /* answered with op */
        kv_op_t *r = op->riders;
        op->riders = r->next;
        tsr_wbuf_free(&r->msg);
        tsr_sched_kv_table_unref(s, r->t);
        tsr_mem_free(s->mem, r);
    }
    tsr_wbuf_free(&op->msg);
    tsr_wbuf_free(&op->effect);
    tsr_mem_free(s->mem, op->reply);
    tsr_mem_free(s->mem, op->ereply);
    tsr_sched_kv_table_unref(s, op->t);
    tsr_mem_free(s->mem, op);
    if (next)
        tsr_sched_kv_dispatch(next);
}

/* Answers op's client and every rider's with the same status and payload. */
static void answer(kv_op_t *op, tsr_status_t status, const void *data, size_t len)
{
    tsr_rpc_reply(op->s->t, op->req, status, data, len);
    for (kv_op_t *r = op->riders; r; r = r->next)
        tsr_rpc_reply(op->s->t, r->req, status, data, len);
}

static void answer_error(kv_op_t *op, tsr_status_t status, const char *msg, const char *hint)
{
    tsr_proto_reply_error(op->s->t, op->s->mem, op->req, status, msg, hint);
    for (kv_op_t *r = op->riders; r; r = r->next)
        tsr_proto_reply_error(op->s->t, op->s->mem, r->req, status, msg, hint);
}

kv_op_t *tsr_sched_kv_dequeue(skv_part_t *sp)
{
    kv_op_t *op = sp->qhead;
    if (op) {
        sp->qhead = op->next;
        if (!sp->qhead)
            sp->qtail = NULL;
        op->next = NULL;
    }
    return op;
}

static void try_primary(kv_op_t *op);
static void no_replica(kv_op_t *op);

void tsr_sched_kv_op_done(kv_op_t *op)
{
    op_free(op);
}

void tsr_sched_kv_mark_stale(sched_t *s, skv_table_t *t, uint32_t part, size_t r,
                             const tsr_wbuf_t *msg)
{
    skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
    if (rep->stale || !rep->id[0]) /* a free slot is no replica */
        return;
    rep->stale = true;
    tsr_sched_kv_missed_start(s, t, part, r, msg);
    tsr_sched_log(s->p->log, "scheduler",
                  "kv table '%s' partition %u: replica on %s missed a write; it is "
                  "stale and no longer used",
                  t->name, part, rep->id);
    /* before the write is acknowledged: a restarted scheduler must not take
     * this copy for a fresh one */
    tsr_sched_kv_persist(s);
}

bool tsr_sched_kv_stale_saved(sched_t *s, const skv_table_t *t, uint32_t part)
{
    bool stale = false;
    for (size_t r = 0; r < t->nrep; r++) {
        const skv_rep_t *rep = &t->reps[(size_t)part * t->nrep + r];
        stale |= rep->id[0] && rep->stale;
    }
    /* the save that failed is tried again (a full disk freed meanwhile):
     * each such write costs a catalog save while the disk refuses it, so
     * the first write after it is writable again is acknowledged */
    return !stale || !s->kv->unsaved || tsr_sched_kv_persist(s);
}

/* Every backup answered: acknowledge the client. */
static void finish_write(kv_op_t *op)
{
    sched_t *s = op->s;
    for (size_t r = 0; r < op->t->nrep; r++)
        if (op->failed[r] && op->t->reps[(size_t)op->part * op->t->nrep + r].id[0])
            tsr_sched_kv_mark_stale(s, op->t, op->part, r, &op->effect);
    /* a write that a stale replica lacks is acknowledged only once the
     * catalog on disk knows that replica is stale: after a restart it
     * could be taken for fresh and serve without the write. That holds for
     * every later write of the partition too, while the save fails */
    if (!tsr_sched_kv_stale_saved(s, op->t, op->part))
        answer_error(op, TSR_ERR_IO,
                     "the write was applied, but the kv catalog could not be saved: its outcome "
                     "is unknown",
                     "see the scheduler's log; check its --data-dir");
    else if (op->riders) /* puts: their answer is empty (op->reply is the LOAD's) */
        answer(op, TSR_OK, NULL, 0);
    else
        tsr_rpc_reply(s->t, op->req, TSR_OK, op->reply, op->reply_len);
    op_free(op);
}

static void on_backup(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_bcall_t *bc = arg;
    kv_op_t *op = bc->op;
    /* a backup that is in sync answers what the primary did; NOT_FOUND on a
     * delete is the same effect; anything else means it diverged */
    if (status != TSR_OK && !(status == TSR_ERR_NOT_FOUND && op->pop == TSR_KV_POP_DEL))
        op->failed[bc->rep] = true;
    tsr_rpc_msg_release(op->s->t, reply);
    tsr_mem_free(op->s->mem, bc);
    if (--op->pending == 0)
        finish_write(op);
}

/* Sends op->effect to replica r (fn answers; op->pending counts it); a
 * replica that is down, or a call that cannot start, misses the write
 * (op->failed[r]). */
static void send_effect(kv_op_t *op, size_t r, tsr_rpc_done_fn fn)
{
    sched_t *s = op->s;
    sworker_t *w = NULL;
    kv_bcall_t *bc = NULL;
    if (!usable(s, op->t, op->part, r, &w) || op->effect.failed ||
        !(bc = tsr_mem_calloc(s->mem, 1, sizeof(*bc)))) {
        op->failed[r] = true; /* down now (or no memory): it misses this write */
        return;
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    bc->op = op;
    bc->rep = r;
    op->pending++;
    if (tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, op->effect.data, op->effect.len,
                           KV_CALL_MS, fn, bc, &e) != TSR_OK) {
        op->pending--;
        op->failed[r] = true;
        tsr_mem_free(s->mem, bc);
    }
}

static void start_backups(kv_op_t *op)
{
    sched_t *s = op->s;
    uint8_t effect = op->pop == TSR_KV_POP_DEL    ? TSR_KV_POP_DEL
                     : op->pop == TSR_KV_POP_LOAD ? TSR_KV_POP_LOAD
                                                  : TSR_KV_POP_PUT;
    tsr_sched_kv_encode_run(op->t, op->part, effect, op->payload, op->plen, &op->effect);
    /* the primary applied it: stale replicas missed it; a resync copying
     * the partition gets it too */
    tsr_sched_kv_note_write(s, op->t, op->part, &op->effect);
    op->pending = 1; /* ours, until every call is out */
    for (size_t r = op->cur + 1; r < op->t->nrep; r++)
        if (!op->t->reps[(size_t)op->part * op->t->nrep + r].stale)
            send_effect(op, r, on_backup);
    if (--op->pending == 0)
        finish_write(op);
}

static void on_primary(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_op_t *op = arg;
    sched_t *s = op->s;
    if (status != TSR_OK && reply->len == 0) {
        /* no answer: the worker died or the call failed; whether it applied
         * the write is unknown, so it must not serve the partition again
         * once another replica took a write */
        tsr_rpc_msg_release(s->t, reply);
        op->failed[op->cur] = true;
        op->unanswered = true;
        op->cur++;
        try_primary(op);
        return;
    }
    if (status != TSR_OK || !op->write) {
        tsr_rpc_reply(s->t, op->req, status, reply->data, reply->len);
        tsr_rpc_msg_release(s->t, reply);
        if (op->write) /* nothing was written; the failed primaries are not behind */
            memset(op->failed, 0, sizeof(op->failed));
        if (op->write && op->unanswered) /* ... unless one that never answered applied it */
            tsr_sched_kv_doubt(s, op->t, op->part);
        op_free(op);
        return;
    }
    if (reply->len) {
        op->reply = tsr_mem_alloc(s->mem, reply->len);
        if (op->reply) {
            memcpy(op->reply, reply->data, reply->len);
            op->reply_len = reply->len;
        }
    }
    tsr_rpc_msg_release(s->t, reply);
    start_backups(op);
}

/* Sends the request to the first usable replica from op->cur on. */
static void try_primary(kv_op_t *op)
{
    sched_t *s = op->s;
    for (; op->cur < op->t->nrep; op->cur++) {
        sworker_t *w = NULL;
        if (!usable(s, op->t, op->part, op->cur, &w)) {
            op->failed[op->cur] = true; /* down: it misses a write taken by the next */
            continue;
        }
        tsr_error_t e;
        tsr_error_clear(&e);
        if (tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, op->msg.data, op->msg.len, KV_CALL_MS,
                               on_primary, op, &e) == TSR_OK)
            return;
        op->failed[op->cur] = true;
    }
    no_replica(op);
}

/* No replica took the request: UNAVAILABLE to the client; a write that one
 * got and never answered may be applied there (the partition in doubt). */
static void no_replica(kv_op_t *op)
{
    sched_t *s = op->s;
    char msg[300];
    const char *first = "";
    for (size_t r = 0; r < op->t->nrep && !first[0]; r++)
        first = op->t->reps[(size_t)op->part * op->t->nrep + r].id;
    snprintf(msg, sizeof(msg), "kv table '%s' partition %u: no replica is up (%s)", op->t->name,
             op->part, first);
    answer_error(op, TSR_ERR_UNAVAILABLE, msg,
                 "restart the partition's worker with its --data-dir: it recovers the partition "
                 "from its log");
    if (op->write && op->unanswered) /* a primary that died mid-call may have applied it */
        tsr_sched_kv_doubt(s, op->t, op->part);
    op_free(op);
}

/* ---- upserts: every fresh replica at once ------------------------------------------ */

/* Every replica answered (or failed): acknowledged when one applied it. */
static void finish_upsert(kv_op_t *op)
{
    sched_t *s = op->s;
    if (op->applied > 0) {
        finish_write(op); /* those that failed missed it: stale */
        return;
    }
    /* applied nowhere */
    memset(op->failed, 0, sizeof(op->failed));
    if (op->estatus == TSR_OK && op->partial) {
        /* stored in part everywhere that answered: some of its pairs are
         * there, which ones is not known here (the partition is in doubt:
         * its replicas are compared, kv_compare.c) */
        answer_error(op, TSR_ERR_IO,
                     "the batch was stored only in part on its replicas: its outcome is unknown",
                     "read the keys back; see the workers' logs");
        tsr_sched_kv_doubt(s, op->t, op->part);
        op_free(op);
        return;
    }
    if (op->estatus == TSR_OK) {
        no_replica(op);
        return;
    }
    answer(op, op->estatus, op->ereply, op->elen);
    if (op->unanswered) /* another replica got it and may have applied it */
        tsr_sched_kv_doubt(s, op->t, op->part);
    op_free(op);
}

/* A LOAD's answer: u64 pairs stored. One that stored fewer than another
 * replica holds other data: it is not counted as having applied it. */
static uint64_t load_stored(const tsr_rpc_msg_t *reply, bool *ok)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint64_t n = tsr_rbuf_u64(&r);
    *ok = tsr_rbuf_done(&r);
    return n;
}

static void on_upsert(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    kv_bcall_t *bc = arg;
    kv_op_t *op = bc->op;
    sched_t *s = op->s;
    bool whole = true;
    uint64_t stored = 0;
    if (status == TSR_OK && (op->pop == TSR_KV_POP_LOAD || op->riders)) {
        /* every pair of the batch stored (one rejected on a replica, as
         * too large for it, would leave the copies different) */
        stored = load_stored(reply, &whole);
        whole = whole && stored == op->pairs;
    }
    if (status == TSR_OK && whole) {
        /* the first to apply it: stale replicas missed it; a resync
         * copying the partition gets it too */
        if (op->applied++ == 0)
            tsr_sched_kv_note_write(s, op->t, op->part, &op->effect);
        if (!op->reply && reply->len) {
            op->reply = tsr_mem_alloc(s->mem, reply->len);
            if (op->reply) {
                memcpy(op->reply, reply->data, reply->len);
                op->reply_len = reply->len;
            }
        }
    } else if (status == TSR_OK) {
        /* part of the batch: that copy differs from the others */
        op->failed[bc->rep] = true;
        op->unanswered = true; /* applied in part: as good as unknown */
        op->partial = true;
    } else {
        op->failed[bc->rep] = true;
        /* no answer (the worker died, the call failed), or an I/O or
         * memory failure that may come after the write was applied */
        if (reply->len == 0 || status == TSR_ERR_IO || status == TSR_ERR_NOMEM)
            op->unanswered = true;
        if (reply->len && op->estatus == TSR_OK) {
            op->estatus = status; /* answered: not applied there */
            op->ereply = tsr_mem_alloc(s->mem, reply->len);
            if (op->ereply) {
                memcpy(op->ereply, reply->data, reply->len);
                op->elen = reply->len;
            }
        }
    }
    tsr_rpc_msg_release(s->t, reply);
    tsr_mem_free(s->mem, bc);
    if (--op->pending == 0)
        finish_upsert(op);
}

/* Whether put op's pair fits its table: one that does not is answered
 * INVALID_ARG by the replicas, and must not fail the puts it would ride
 * with. */
static bool put_fits(const kv_op_t *op)
{
    tsr_rbuf_t r;
    size_t kl = 0, vl = 0;
    tsr_rbuf_init(&r, op->payload, op->plen);
    tsr_rbuf_blob(&r, &kl);
    tsr_rbuf_blob(&r, &vl);
    return tsr_rbuf_done(&r) && kl <= op->t->max_key && vl <= op->t->max_value;
}

/* Group commit: the puts waiting right behind put op (the partition's
 * queue is in arrival order) become its riders, and op's effect the LOAD
 * of all their pairs in that order - each replica applies them as one
 * batch (a key put twice ends with the later value, as one by one) with
 * one fdatasync, and every put is acknowledged when the batch is applied
 * everywhere, or fails with it. At most KV_GROUP_PAIRS pairs and
 * KV_GROUP_BYTES; a put that does not fit its table, a conditional write
 * or a transaction's turn ends the group. False when there is nothing to
 * group (or no memory: op goes alone). */
/* Whether q (waiting right behind put op, whose group holds bytes of
 * pairs) may ride with it. */
static bool can_ride(const kv_op_t *op, const kv_op_t *q, size_t bytes)
{
    return q && q->pop == TSR_KV_POP_PUT && !q->granted && op->pairs < KV_GROUP_PAIRS &&
           bytes + q->plen <= KV_GROUP_BYTES && put_fits(q);
}

static bool gather_puts(kv_op_t *op)
{
    sched_t *s = op->s;
    skv_part_t *sp = &op->t->parts[op->part];
    kv_op_t *q = NULL;
    if (op->pop != TSR_KV_POP_PUT || !put_fits(op) || !can_ride(op, sp->qhead, op->plen))
        return false; /* alone: its own PUT */
    tsr_wbuf_t pl;
    tsr_wbuf_init(&pl, s->mem);
    tsr_wbuf_u32(&pl, 0); /* the count, set below */
    tsr_wbuf_bytes(&pl, op->payload, op->plen);
    size_t bytes = op->plen;
    kv_op_t **tail = &op->riders;
    while (can_ride(op, q = sp->qhead, bytes)) {
        tsr_sched_kv_dequeue(sp);
        *tail = q;
        tail = &q->next;
        tsr_wbuf_bytes(&pl, q->payload, q->plen);
        bytes += q->plen;
        op->pairs++;
    }
    if (!pl.failed)
        for (int i = 0; i < 4; i++)
            pl.data[i] = (uint8_t)(op->pairs >> (8 * i));
    tsr_sched_kv_encode_run(op->t, op->part, TSR_KV_POP_LOAD, pl.data, pl.len, &op->effect);
    tsr_wbuf_free(&pl);
    if (pl.failed || op->effect.failed) {
        /* no memory for the batch: the riders wait again, first in line */
        *tail = sp->qhead;
        sp->qhead = op->riders;
        if (!sp->qtail)
            for (sp->qtail = sp->qhead; sp->qtail->next; sp->qtail = sp->qtail->next)
                ;
        op->riders = NULL;
        op->pairs = 1;
        tsr_wbuf_free(&op->effect);
        tsr_wbuf_init(&op->effect, s->mem);
        return false;
    }
    return true;
}

/* A PUT or LOAD sets its pairs whatever the copy holds, so the request is
 * its own effect: it goes to every fresh replica at once - one round of
 * fdatasyncs in parallel rather than the primary's, then the backups' -
 * and is acknowledged once every replica answered and one applied it (the
 * others, down or failed, are marked stale, as backups are). INSERT,
 * UPDATE and DEL depend on what the copy holds: the primary decides them
 * and the backups get its effect (start_backups). */
static void send_upsert(kv_op_t *op)
{
    if (op->pop == TSR_KV_POP_LOAD) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, op->payload, op->plen);
        uint32_t n = tsr_rbuf_u32(&r); /* the batch: u32 n, then the pairs */
        op->pairs = r.bad ? 0 : n;     /* malformed: the replicas refuse it (BAD_INPUT) */
    } else
        op->pairs = 1;
    bool grouped = gather_puts(op);
    if (op->pop == TSR_KV_POP_PUT && op->s->kv) {
        op->s->kv->puts += op->pairs;
        op->s->kv->put_writes++;
        op->s->kv->put_grouped += grouped ? op->pairs : 0;
    }
    if (!grouped) {
        /* the request is its own effect: its message, encoded (and checked)
         * when it was submitted, moves over rather than being encoded again */
        op->effect = op->msg;
        tsr_wbuf_init(&op->msg, op->s->mem);
    }
    op->pending = 1; /* ours, until every call is out */
    for (size_t r = 0; r < op->t->nrep; r++) {
        const skv_rep_t *rep = &op->t->reps[(size_t)op->part * op->t->nrep + r];
        if (!rep->stale && rep->id[0]) /* a stale one: a resync brings it up to date */
            send_effect(op, r, on_upsert);
    }
    if (--op->pending == 0)
        finish_upsert(op);
}

void tsr_sched_kv_dispatch(kv_op_t *op)
{
    if (op->write) {
        op->t->parts[op->part].writes++;
        op->counted = true;
    }
    if (op->write && !op->granted && tsr_sched_kv_find(op->s, op->t->name) != op->t) {
        /* dropped while it waited for its turn: a write now would make the
         * workers recreate the table's copies (orphans) */
        char msg[200];
        snprintf(msg, sizeof(msg), "no kv table '%s' (dropped)", op->t->name);
        tsr_proto_reply_error(op->s->t, op->s->mem, op->req, TSR_ERR_NOT_FOUND, msg, NULL);
        op_free(op); /* the next waiting write meets the same */
        return;
    }
    if (op->granted)
        op->granted(op); /* a transaction's turn (sched_txn.c) */
    else if (op->write && (op->pop == TSR_KV_POP_PUT || op->pop == TSR_KV_POP_LOAD))
        send_upsert(op);
    else
        try_primary(op);
}

void tsr_sched_kv_submit(sched_t *s, kv_op_t *op)
{
    tsr_sched_kv_maybe_sync(s, op->t, op->part);
    skv_part_t *sp = &op->t->parts[op->part];
    /* one write of a partition at a time: every replica applies the
     * partition's writes in the same order, also for concurrent writers of
     * one key; the others (and all of them while a resync starts or
     * closes) wait here */
    bool held = sp->sync && sp->sync->phase != KV_SYNC_COPYING;
    if (op->write && (held || sp->writes > 0 || sp->qhead)) {
        if (sp->qtail)
            sp->qtail->next = op;
        else
            sp->qhead = op;
        sp->qtail = op;
        return;
    }
    tsr_sched_kv_dispatch(op);
}

void tsr_sched_kv_log_puts(sched_t *s)
{
    if (s->kv && s->kv->puts)
        tsr_sched_log(s->p->log, "scheduler",
                      "kv: %llu put(s) went to their replicas in %llu write(s) (%llu of them in "
                      "groups)",
                      (unsigned long long)s->kv->puts, (unsigned long long)s->kv->put_writes,
                      (unsigned long long)s->kv->put_grouped);
}
