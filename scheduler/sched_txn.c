/*
 * sched_txn.c - the scheduler as the coordinator of a transaction's commit
 * on cluster kv tables (docs/kv.md "On a cluster", Transactions; messages
 * in kv_msg.h: TXN from the client, TVALIDATE and TAPPLY to the workers,
 * whose side is worker_txn.c).
 *
 * A client buffers its writes and sends one TXN request with its read set
 * (key, version read on the partition's primary, or "absent") and write
 * set (put or delete). The commit:
 *
 *   1. groups the entries by participating partition (table, partition) and
 *      takes each one's write turn (a placeholder in sched_kv.c's
 *      per-partition write queue) one after the other in ascending (table
 *      name, partition) order: no cycle of waits, so no deadlock; once all
 *      are held no other writer of those partitions (plain kv writes,
 *      another commit, a resync) runs until step 5.
 *   2. validates: one TVALIDATE per partition with reads, to its primary
 *      (the first usable replica; the next one when a call gets no answer,
 *      as reads fall over). Any read whose version changed (or an absent
 *      key that appeared) fails the commit with TSR_ERR_CONFLICT, nothing
 *      written. Reads and writes of the partitions are frozen by step 1, so
 *      what was validated is what the writes overwrite: serializable.
 *   3. (with --data-dir, writes in two or more partitions) logs a PREPARE
 *      and waits until it is durable: the commit point (sched_txn_redo.c).
 *   4. applies: one TAPPLY per partition with writes, to every usable
 *      replica at once; each applies the partition's writes as ONE commit
 *      record of its store (all or nothing, durable before it answers). As
 *      for plain writes (sched_kv.c), a replica that missed an apply other
 *      replicas took is marked stale (resynced later; a catalog that cannot
 *      be saved answers TSR_ERR_IO, as plain writes do). A partition none
 *      of whose replicas took it fails the commit with TSR_ERR_UNAVAILABLE:
 *      a logged commit is decided, keeps that partition's turn and redoes
 *      it there later (sched_txn_redo.c); an unlogged one is partly applied.
 *   5. answers; a logged commit appends DONE and releases the turns once it
 *      is durable (else a later write could be acknowledged and then
 *      overwritten by a restart's redo), others release them at once.
 *
 * Fenced writes (a lock's fencing token, tessera/lock.h): after step 2 the
 * coordinator checks every (lock, token) of the commit with its fence -
 * the one place every cluster commit passes, so it sees every token used -
 * and refuses a stale one with TSR_ERR_STALE, nothing written. With
 * --data-dir a token larger than any before is first made durable in the
 * coordinator log (a FENCE record, before anything is applied: a restarted
 * scheduler must not accept an older token after a newer one's write),
 * and the fence is seeded from those records at start.
 *
 * Read-only transactions commit here too (steps 1, 2, 5): validating
 * partition by partition without the turns could pass a read set that saw
 * half of another commit's partitions. A commit of one partition is
 * atomic on each replica by the worker's own commit record and is not
 * logged; nothing is without --data-dir, where atomicity across partitions
 * depends on the scheduler surviving the apply.
 *
 * Test hook: TSR_TEST_TXN_CRASH_AFTER_APPLIES=N applies a commit's
 * partitions one at a time and _exit(9)s once N of them finished (N = 0:
 * after validation, before the PREPARE is appended).
 *
 * Everything runs on the scheduler's one thread; each participant (and
 * each placeholder) holds a reference to its table from parsing on, so a
 * drop during a commit - also of a table whose turn the commit has not yet
 * reached - frees nothing in use (a drop noticed before validation fails
 * the commit with NOT_FOUND).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "core/hash.h"
#include "sched_txn_internal.h"

#define MAX_TABLES 1024u
/* A partition's writes reach each replica as ONE commit record of its
 * store, whose log refuses a record past 64 MiB (engine/kv/wal.c,
 * WAL_MAX_REC); the record takes 4 bytes more per write than TAPPLY's
 * encoding (plus a header): a commit whose share of one partition would
 * not fit is refused here, with room to spare */
#define PART_WRITES_MAX ((64u << 20) - 4096u)

uint32_t tsr_sched_txn_part_of(const void *key, size_t klen, uint32_t nparts)
{
    uint64_t h = tsr_hash_bytes(key, klen);
    return (uint32_t)(((h >> 32) * nparts) >> 32);
}

void tsr_stxn_set_err(stxn_t *x, tsr_status_t rc, const char *hint, const char *fmt, ...)
{
    if (x->rc != TSR_OK)
        return;
    x->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
    va_end(ap);
    snprintf(x->hint, sizeof(x->hint), "%s", hint ? hint : "");
}

void tsr_stxn_free(stxn_t *x)
{
    if (x->owned) {
        struct stxn_coord *c = x->s->txn;
        if (x->oprev)
            x->oprev->onext = x->onext;
        else
            c->owned = x->onext;
        if (x->onext)
            x->onext->oprev = x->oprev;
    }
    for (size_t i = 0; i < x->nparts; i++) {
        tsr_wbuf_free(&x->parts[i].reads);
        tsr_wbuf_free(&x->parts[i].writes);
        tsr_wbuf_free(&x->parts[i].msg);
        tsr_sched_kv_table_unref(x->s, x->parts[i].t);
    }
    tsr_wbuf_free(&x->fences);
    tsr_mem_free(x->s->mem, x->parts);
    tsr_mem_free(x->s->mem, x);
}

/* Answers the client (once; a recovery has none). */
void tsr_stxn_reply(stxn_t *x)
{
    sched_t *s = x->s;
    if (!x->req)
        return;
    if (x->rc == TSR_OK)
        tsr_rpc_reply(s->t, x->req, TSR_OK, NULL, 0);
    else
        tsr_proto_reply_error(s->t, s->mem, x->req, x->rc, x->msg, x->hint[0] ? x->hint : NULL);
    x->req = NULL;
}

/* Hands parts[i]'s turn on (which may start other commits). */
void tsr_stxn_release(stxn_t *x, size_t i)
{
    kv_op_t *op = x->parts[i].hold;
    x->parts[i].hold = NULL;
    if (op)
        tsr_sched_kv_op_done(op);
}

/* Step 4: answer, then hand the turns on (which may start other commits). */
void tsr_stxn_finish(stxn_t *x)
{
    tsr_stxn_reply(x);
    for (size_t i = 0; i < x->nparts; i++)
        tsr_stxn_release(x, i);
    tsr_stxn_free(x);
}

/* The participant (t, part), added when new; NULL when out of memory. */
stxn_part_t *tsr_stxn_participant(stxn_t *x, skv_table_t *t, uint32_t part)
{
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].t == t && x->parts[i].part == part)
            return &x->parts[i];
    if (tsr_mem_grow(x->s->mem, (void **)&x->parts, &x->cap, x->nparts + 1, sizeof(*x->parts)) != 0)
        return NULL;
    stxn_part_t *p = &x->parts[x->nparts++];
    memset(p, 0, sizeof(*p));
    /* the participant's own reference, from now until txn_free: a commit
     * waiting for an earlier partition's turn must find the later ones'
     * tables alive when it gets there, also when one was dropped meanwhile
     * (validate notices the drop; the placeholder takes a reference too) */
    p->t = t;
    t->refs++;
    p->part = part;
    tsr_wbuf_init(&p->reads, x->s->mem);
    tsr_wbuf_init(&p->writes, x->s->mem);
    tsr_wbuf_init(&p->msg, x->s->mem);
    return p;
}

int tsr_stxn_cmp_part(const void *a, const void *b)
{
    const stxn_part_t *x = a, *y = b;
    int c = strcmp(x->t->name, y->t->name);
    if (c)
        return c;
    return x->part < y->part ? -1 : x->part > y->part;
}

/* The KV_RUN message of pop for p: u32 n, then the entries' body. */
bool tsr_stxn_build_msg(stxn_t *x, stxn_part_t *p, uint8_t pop, uint32_t n, const tsr_wbuf_t *body)
{
    tsr_wbuf_t pl;
    tsr_wbuf_init(&pl, x->s->mem);
    tsr_wbuf_u32(&pl, n);
    tsr_wbuf_bytes(&pl, body->data, body->len);
    tsr_wbuf_free(&p->msg);
    tsr_wbuf_init(&p->msg, x->s->mem);
    if (!pl.failed && !body->failed)
        tsr_sched_kv_encode_run(p->t, p->part, pop, pl.data, pl.len, &p->msg);
    bool ok = !pl.failed && !body->failed && !p->msg.failed;
    tsr_wbuf_free(&pl);
    if (!ok)
        tsr_stxn_set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
    return ok;
}

/* Sends p->msg to replica rep; false when it could not be sent. */
bool tsr_stxn_send(stxn_t *x, size_t pi, size_t rep, sworker_t *w, tsr_rpc_done_fn fn)
{
    sched_t *s = x->s;
    stxn_call_t *c = tsr_mem_calloc(s->mem, 1, sizeof(*c));
    if (!c)
        return false;
    c->x = x;
    c->pi = pi;
    c->rep = rep;
    tsr_error_t e;
    tsr_error_clear(&e);
    stxn_part_t *p = &x->parts[pi];
    if (tsr_rpc_call_async(s->t, w->peer, TSR_MSG_KV_RUN, p->msg.data, p->msg.len, KV_CALL_MS, fn,
                           c, &e) != TSR_OK) {
        tsr_mem_free(s->mem, c);
        return false;
    }
    x->pending++;
    return true;
}

/* Marks the replicas of parts[i] that missed what others took stale;
 * true when one was marked. */
bool tsr_stxn_mark_missed(stxn_t *x, stxn_part_t *p)
{
    bool marked = false;
    for (size_t r = 0; r < p->t->nrep; r++)
        if (p->failed[r] && p->t->reps[(size_t)p->part * p->t->nrep + r].id[0]) {
            tsr_sched_kv_mark_stale(x->s, p->t, p->part, r, &p->msg);
            marked = true;
        }
    return marked;
}

/* ---- 3. apply ------------------------------------------------------------------------ */

static void applied(stxn_t *x)
{
    sched_t *s = x->s;
    bool some = false, redo = false, unsaved = false;
    for (size_t i = 0; i < x->nparts; i++)
        some |= x->parts[i].applied > 0;
    for (size_t i = 0; i < x->nparts; i++) {
        stxn_part_t *p = &x->parts[i];
        if (p->nwrites == 0)
            continue;
        if (p->applied == 0 && x->logged) {
            /* decided (the PREPARE is durable): it completes when the
             * partition has a usable replica again */
            p->redo = true;
            redo = true;
            tsr_stxn_set_err(
                x, TSR_ERR_UNAVAILABLE,
                "it completes by itself once the partition's worker is back (restart it "
                "with its --data-dir)",
                "kv table '%s' partition %u: no replica took the commit; the transaction is "
                "committed (the coordinator log holds it) and its writes there are applied "
                "when the partition has a usable replica again",
                p->t->name, p->part);
            continue;
        }
        if (p->applied == 0) {
            /* a replica that got the TAPPLY and failed may have applied it */
            tsr_sched_kv_doubt(s, p->t, p->part);
            tsr_stxn_set_err(
                x, TSR_ERR_UNAVAILABLE,
                "restart the partition's worker with its --data-dir: it recovers the "
                "partition from its log",
                "kv table '%s' partition %u: no replica took the commit%s", p->t->name, p->part,
                some ? " (its other partitions' writes were applied: the transaction is "
                       "partly committed)"
                     : "");
            continue;
        }
        tsr_stxn_mark_missed(x, p);
        /* as for plain writes: a restart could take a stale copy for fresh */
        unsaved |= !tsr_sched_kv_stale_saved(s, p->t, p->part);
    }
    if (unsaved)
        tsr_stxn_set_err(
            x, TSR_ERR_IO, "see the scheduler's log; check its --data-dir",
            "the commit was applied, but the kv catalog could not be saved (a replica that "
            "missed it is marked stale in memory only): its outcome is unknown");
    if (!x->logged) {
        tsr_stxn_finish(x);
        return;
    }
    /* the client may go on; the turns wait for the durable DONE */
    tsr_stxn_reply(x);
    if (!redo) {
        tsr_stxn_log_done(x, 0, TSR_TXN_LOG_ALL, STXN_W_DONE_ALL);
        return;
    }
    for (size_t i = 0; i < x->nparts; i++) {
        stxn_part_t *p = &x->parts[i];
        if (p->nwrites == 0)
            tsr_stxn_release(x, i); /* a read-only participant: nothing to redo */
        else if (!p->redo)
            tsr_stxn_log_done(x, i, p->group, STXN_W_DONE_PART);
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "txn %llu: committed, but a partition took none of it yet: it is redone "
                  "when the partition has a usable replica",
                  (unsigned long long)x->txid);
}

/* One step: every partition at once, or (test hook) the next one. */
static void apply_step(stxn_t *x)
{
    struct stxn_coord *c = x->s->txn;
    if (c->crash_after > 0 && x->step_sent && ++x->crash_done >= (unsigned long)c->crash_after) {
        tsr_sched_log(x->s->p->log, "scheduler",
                      "test hook: exiting after %u partition apply(s) of a commit "
                      "(TSR_TEST_TXN_CRASH_AFTER_APPLIES)",
                      x->crash_done);
        if (x->s->p->log)
            fflush(x->s->p->log);
        _exit(9);
    }
    if (x->anext < x->nparts)
        tsr_stxn_apply_from(x);
    else
        applied(x);
}

static void on_apply(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply_msg)
{
    stxn_call_t *c = arg;
    stxn_t *x = c->x;
    stxn_part_t *p = &x->parts[c->pi];
    if (status == TSR_OK && p->applied++ == 0) /* applied: stale replicas missed it */
        tsr_sched_kv_note_write(x->s, p->t, p->part, &p->msg);
    else if (status != TSR_OK)
        p->failed[c->rep] = true;
    tsr_rpc_msg_release(x->s->t, reply_msg);
    tsr_mem_free(x->s->mem, c);
    if (--x->pending == 0)
        apply_step(x);
}

void tsr_stxn_apply_from(stxn_t *x)
{
    sched_t *s = x->s;
    bool one = s->txn->crash_after > 0; /* the test hook: one partition at a time */
    x->pending = 1;                     /* ours, until every call is out */
    x->step_sent = false;
    while (x->anext < x->nparts) {
        stxn_part_t *p = &x->parts[x->anext++];
        if (p->nwrites == 0)
            continue;
        if (x->logged && tsr_sched_kv_find(s, p->t->name) != p->t) {
            /* dropped while the PREPARE was synced (a drop takes no turn):
             * nothing reads it any more, and a TAPPLY would recreate the
             * partition as an orphan; it counts as done */
            p->applied = 1;
            continue;
        }
        x->step_sent = true;
        /* a message that cannot be built: the partition counts as not applied */
        if (tsr_stxn_build_msg(x, p, TSR_KV_POP_TAPPLY, p->nwrites, &p->writes)) {
            for (size_t r = 0; r < p->t->nrep; r++) {
                sworker_t *w = NULL;
                if (p->t->reps[(size_t)p->part * p->t->nrep + r].stale)
                    continue;
                if (!tsr_sched_kv_usable(s, p->t, p->part, r, &w) ||
                    !tsr_stxn_send(x, (size_t)(p - x->parts), r, w, on_apply))
                    p->failed[r] = true; /* down now: it misses this commit */
            }
        }
        if (one)
            break;
    }
    if (--x->pending == 0)
        apply_step(x);
}

/* ---- 2. validate --------------------------------------------------------------------- */

/* Checks the commit's fenced writes (all turns held, reads validated) and
 * records new largest tokens in the log; *lsn: what must be durable
 * before the writes apply (0: nothing). False after recording the error. */
static bool check_fences(stxn_t *x, uint64_t *lsn)
{
    struct stxn_coord *c = x->s->txn;
    *lsn = 0;
    for (int pass = 0; pass < 2; pass++) { /* check every one, then log them */
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, x->fences.data, x->fences.len);
        for (uint32_t i = 0; i < x->nfences; i++) {
            const char *lock = tsr_rbuf_str(&r);
            uint64_t token = tsr_rbuf_u64(&r);
            if (pass == 0) {
                tsr_lock_err_t le = {0};
                tsr_status_t rc = tsr_lock_fence_check(c->fence, lock, token, &le);
                if (rc == TSR_ERR_STALE)
                    tsr_stxn_set_err(x, rc,
                                     "acquire the lock again: a newer holder's token fences "
                                     "out this one",
                                     "fenced write: token %llu of lock '%.100s' is stale (%s)",
                                     (unsigned long long)token, lock, le.message);
                else if (rc != TSR_OK)
                    tsr_stxn_set_err(x, rc, NULL, "fenced write: %s", le.message);
                if (rc != TSR_OK)
                    return false;
                continue;
            }
            if (!c->log)
                return true;
            uint64_t l = 0;
            tsr_error_t e;
            tsr_error_clear(&e);
            if (tsr_txn_log_fence(c->log, lock, token, &l, &e) != TSR_OK) {
                tsr_stxn_set_err(x, TSR_ERR_IO, "see the scheduler's log; check its --data-dir",
                                 "the coordinator log could not record a fencing token "
                                 "(nothing was written): %s",
                                 e.message);
                return false;
            }
            if (l > *lsn)
                *lsn = l;
        }
    }
    uint64_t d = 0;
    if (*lsn && tsr_txn_log_durable(c->log, &d, NULL) == TSR_OK && d >= *lsn)
        *lsn = 0;
    return true;
}

bool tsr_stxn_none_dropped(stxn_t *x)
{
    for (size_t i = 0; i < x->nparts && x->rc == TSR_OK; i++)
        if (x->parts[i].nwrites && tsr_sched_kv_find(x->s, x->parts[i].t->name) != x->parts[i].t)
            tsr_stxn_set_err(x, TSR_ERR_NOT_FOUND, NULL,
                             "kv table '%s' was dropped during the transaction",
                             x->parts[i].t->name);
    return x->rc == TSR_OK;
}

static void validated(stxn_t *x)
{
    struct stxn_coord *c = x->s->txn;
    /* a drop answered while the validations were out: applying now would
     * acknowledge writes to a table that is gone (and recreate its
     * partition as an orphan on the workers, as TAPPLY creates a missing
     * table) - the commit fails as for a drop seen before validation */
    (void)tsr_stxn_none_dropped(x);
    uint64_t fence_lsn = 0;
    if (x->rc != TSR_OK || (x->nfences && !check_fences(x, &fence_lsn))) {
        tsr_stxn_finish(x);
        return;
    }
    size_t nw = 0;
    for (size_t i = 0; i < x->nparts; i++)
        nw += x->parts[i].nwrites > 0;
    if (nw > 0 && c->crash_after == 0) {
        tsr_sched_log(x->s->p->log, "scheduler",
                      "test hook: exiting before a commit's PREPARE "
                      "(TSR_TEST_TXN_CRASH_AFTER_APPLIES=0)");
        if (x->s->p->log)
            fflush(x->s->p->log);
        _exit(9);
    }
    c->commits += nw > 0;
    /* a commit of one partition is all or nothing on each replica by the
     * worker's own commit record: only two or more need the log */
    if (c->log && nw >= 2) {
        tsr_stxn_prepare(x); /* appended after the FENCEs: its durability covers them */
        return;
    }
    if (fence_lsn) {
        tsr_stxn_apply_when_fenced(x, fence_lsn);
        return;
    }
    x->anext = 0;
    tsr_stxn_apply_from(x);
}

/* Sends parts[pi]'s validation to its first usable replica from cur on. */
static void send_validate(stxn_t *x, size_t pi);

static void on_validate(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply_msg)
{
    stxn_call_t *c = arg;
    stxn_t *x = c->x;
    stxn_part_t *p = &x->parts[c->pi];
    if (status != TSR_OK && reply_msg->len == 0) {
        /* no answer: ask the next replica (whose versions differ: the reads
         * made there, after a failover, pass; older ones conflict) */
        p->cur++;
        send_validate(x, c->pi);
    } else if (status != TSR_OK) {
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_proto_decode_error(reply_msg->data, reply_msg->len, status, &e);
        tsr_stxn_set_err(x, status,
                         status == TSR_ERR_CONFLICT
                             ? "another transaction or write changed what it read: run it again "
                               "(tsr_txn_run, or 'tessera txn --retries N')"
                             : NULL,
                         "kv table '%s': %s", p->t->name,
                         e.message[0] ? e.message : tsr_status_str(status));
    }
    tsr_rpc_msg_release(x->s->t, reply_msg);
    tsr_mem_free(x->s->mem, c);
    if (--x->pending == 0)
        validated(x);
}

static void send_validate(stxn_t *x, size_t pi)
{
    stxn_part_t *p = &x->parts[pi];
    for (; p->cur < p->t->nrep; p->cur++) {
        sworker_t *w = NULL;
        if (tsr_sched_kv_usable(x->s, p->t, p->part, p->cur, &w) &&
            tsr_stxn_send(x, pi, p->cur, w, on_validate))
            return;
    }
    tsr_stxn_set_err(
        x, TSR_ERR_UNAVAILABLE,
        "restart the partition's worker with its --data-dir: it recovers the partition "
        "from its log",
        "kv table '%s' partition %u: no replica is up", p->t->name, p->part);
}

static void validate(stxn_t *x)
{
    x->pending = 1;
    for (size_t i = 0; i < x->nparts && x->rc == TSR_OK; i++) {
        stxn_part_t *p = &x->parts[i];
        if (tsr_sched_kv_find(x->s, p->t->name) != p->t)
            tsr_stxn_set_err(x, TSR_ERR_NOT_FOUND, NULL,
                             "kv table '%s' was dropped during the transaction", p->t->name);
        else if (p->nreads && tsr_stxn_build_msg(x, p, TSR_KV_POP_TVALIDATE, p->nreads, &p->reads))
            send_validate(x, i);
    }
    if (--x->pending == 0)
        validated(x);
}

/* ---- 1. the partitions' write turns -------------------------------------------------- */

/* Every turn is held: validate a commit, redo a recovered one. */
static void held(stxn_t *x)
{
    x->held = true;
    if (!x->recovery) {
        validate(x);
        return;
    }
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].redo && x->parts[i].inflight == 0)
            tsr_stxn_try_redo(x, i);
}

static void on_granted(kv_op_t *op)
{
    stxn_t *x = op->arg;
    x->waiting = false;
    x->next++;
    if (!x->in_submit) /* queued earlier: go on from here */
        tsr_stxn_acquire(x);
}

void tsr_stxn_acquire(stxn_t *x)
{
    sched_t *s = x->s;
    while (x->next < x->nparts) {
        stxn_part_t *p = &x->parts[x->next];
        kv_op_t *op = tsr_mem_calloc(s->mem, 1, sizeof(*op));
        if (!op) {
            if (x->recovery) { /* keeps what it holds; the tick cannot help: say so */
                tsr_sched_log(s->p->log, "scheduler",
                              "error: out of memory queueing the redo of txn %llu",
                              (unsigned long long)x->txid);
                return;
            }
            tsr_stxn_set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
            tsr_stxn_finish(x);
            return;
        }
        op->s = s;
        op->t = p->t;
        p->t->refs++;
        op->part = p->part;
        op->write = true;
        op->granted = on_granted;
        op->arg = x;
        tsr_wbuf_init(&op->msg, s->mem);
        tsr_wbuf_init(&op->effect, s->mem);
        p->hold = op;
        x->waiting = true;
        x->in_submit = true;
        tsr_sched_kv_submit(s, op);
        x->in_submit = false;
        if (x->waiting)
            return; /* on_granted goes on once it is this commit's turn */
    }
    held(x);
}

/* ---- the request ------------------------------------------------------------------------ */

typedef struct wkey {
    const uint8_t *key;
    uint32_t klen;
} wkey_t;

static int cmp_wkey(const void *a, const void *b)
{
    const wkey_t *x = a, *y = b;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    return x->klen ? memcmp(x->key, y->key, x->klen) : 0;
}

/* 1 when p's writes name one key twice, 0 when not, -1 out of memory. A
 * client's write set has one entry per key; a TAPPLY with two would fail
 * its second lock on every replica, every time, and a logged commit would
 * then hold the partition's turn for good (redone at every restart). */
static int dup_writes(sched_t *s, const stxn_part_t *p)
{
    if (p->nwrites < 2)
        return 0;
    wkey_t *k = tsr_mem_alloc(s->mem, (size_t)p->nwrites * sizeof(*k));
    if (!k)
        return -1;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, p->writes.data, p->writes.len);
    for (uint32_t i = 0; i < p->nwrites && !r.bad; i++) {
        (void)tsr_rbuf_u8(&r);
        k[i].klen = tsr_rbuf_u32(&r);
        k[i].key = r.bad ? NULL : tsr_rbuf_bytes(&r, k[i].klen);
        uint32_t vlen = tsr_rbuf_u32(&r);
        if (!r.bad)
            (void)tsr_rbuf_bytes(&r, vlen);
    }
    int dup = 0;
    if (!r.bad) { /* our own encoding: only a failed buffer is short */
        qsort(k, p->nwrites, sizeof(*k), cmp_wkey);
        for (uint32_t i = 1; i < p->nwrites && !dup; i++)
            dup = cmp_wkey(&k[i - 1], &k[i]) == 0;
    }
    tsr_mem_free(s->mem, k);
    return dup;
}

/* Parses the sets into x's participants; false after recording the error. */
static bool parse(stxn_t *x, tsr_rbuf_t *r)
{
    uint32_t ntabs = tsr_rbuf_u32(r);
    if (r->bad || ntabs > MAX_TABLES) {
        tsr_stxn_set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
        return false;
    }
    skv_table_t *tabs[MAX_TABLES];
    for (uint32_t i = 0; i < ntabs; i++) {
        const char *name = tsr_rbuf_str(r);
        if (r->bad) {
            tsr_stxn_set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
            return false;
        }
        tabs[i] = tsr_sched_kv_find(x->s, name);
        if (!tabs[i]) {
            tsr_stxn_set_err(x, TSR_ERR_NOT_FOUND, "'tessera kv list' shows the tables",
                             "no kv table '%.80s'", name);
            return false;
        }
    }
    for (int writes = 0; writes < 2; writes++) {
        uint32_t n = tsr_rbuf_u32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            uint32_t tab = tsr_rbuf_u32(r);
            uint8_t del = writes ? tsr_rbuf_u8(r) : 0;
            size_t klen = 0, vlen = 0;
            const uint8_t *key = tsr_rbuf_blob(r, &klen);
            const uint8_t *val = writes ? tsr_rbuf_blob(r, &vlen) : NULL;
            uint64_t ver = writes ? 0 : tsr_rbuf_u64(r);
            if (r->bad || tab >= ntabs) {
                r->bad = true; /* refused below */
                break;
            }
            skv_table_t *t = tabs[tab];
            if (klen > t->max_key || vlen > t->max_value) {
                tsr_stxn_set_err(
                    x, TSR_ERR_INVALID_ARG, NULL,
                    "a key or value is longer than kv table '%s' allows (%u, %u bytes)", t->name,
                    t->max_key, t->max_value);
                return false;
            }
            stxn_part_t *p =
                tsr_stxn_participant(x, t, tsr_sched_txn_part_of(key, klen, t->nparts));
            if (!p) {
                tsr_stxn_set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
                return false;
            }
            if (writes) {
                tsr_wbuf_u8(&p->writes, del ? 1 : 0);
                tsr_wbuf_blob(&p->writes, key, klen);
                tsr_wbuf_blob(&p->writes, val, del ? 0 : vlen);
                p->nwrites++;
            } else {
                tsr_wbuf_blob(&p->reads, key, klen);
                tsr_wbuf_u64(&p->reads, ver);
                p->nreads++;
            }
        }
    }
    if (!r->bad && r->pos < r->len) { /* the fenced writes' (lock, token) */
        uint32_t n = tsr_rbuf_u32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            const char *lock = tsr_rbuf_str(r);
            uint64_t token = tsr_rbuf_u64(r);
            if (r->bad)
                break;
            tsr_wbuf_str(&x->fences, lock);
            tsr_wbuf_u64(&x->fences, token);
            x->nfences++;
        }
        if (x->fences.failed) {
            tsr_stxn_set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
            return false;
        }
    }
    if (!tsr_rbuf_done(r)) {
        tsr_stxn_set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
        return false;
    }
    /* before anything is decided: a logged commit that no replica can take
     * would keep the partition's turn for good (and be redone, and fail,
     * at every restart) */
    for (size_t i = 0; i < x->nparts; i++) {
        const stxn_part_t *p = &x->parts[i];
        if (p->writes.len + 4u * (size_t)p->nwrites > PART_WRITES_MAX) {
            tsr_stxn_set_err(x, TSR_ERR_INVALID_ARG, "split it into smaller transactions",
                             "the writes to kv table '%s' partition %u take %zu bytes; one "
                             "transaction may write at most %u bytes to a partition",
                             p->t->name, p->part, p->writes.len, PART_WRITES_MAX);
            return false;
        }
        int dup = dup_writes(x->s, p);
        if (dup != 0) {
            tsr_stxn_set_err(x, dup < 0 ? TSR_ERR_NOMEM : TSR_ERR_BAD_INPUT, NULL,
                             dup < 0 ? "out of memory for a kv transaction"
                                     : "malformed kv transaction: a key is written twice");
            return false;
        }
    }
    return true;
}

void tsr_sched_txn_commit(sched_t *s, tsr_rpc_req_t *req, tsr_rbuf_t *r)
{
    stxn_t *x = tsr_mem_calloc(s->mem, 1, sizeof(*x));
    if (!x) {
        tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_NOMEM, "out of memory", NULL);
        return;
    }
    x->s = s;
    x->req = req;
    tsr_wbuf_init(&x->fences, s->mem);
    if (!parse(x, r)) {
        tsr_stxn_finish(x); /* no turn taken yet */
        return;
    }
    /* ascending (table, partition): every commit takes its turns in one
     * global order, so none waits for a turn held by one waiting for its */
    qsort(x->parts, x->nparts, sizeof(*x->parts), tsr_stxn_cmp_part);
    tsr_stxn_acquire(x);
}
