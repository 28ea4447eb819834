/*
 * sched_txn_redo.c - the coordinator log's side of a cluster commit
 * (sched_txn.c is the commit itself; txn_log.c the file; docs/kv.md
 * "Transactions on a cluster", What is atomic, Recovery).
 *
 * With --data-dir, a commit whose writes touch two or more partitions
 * appends a PREPARE (txid and the write set by (table, gen, partition))
 * once validated and applies nothing before it is durable: the commit
 * point. After the apply it appends DONE and releases the turns only when
 * that is durable. The log's syncing thread group-commits the appends;
 * the scheduler's loop calls tsr_sched_txn_tick, which runs the waits
 * (kept in lsn order, as this thread appends) whose records are durable.
 *
 * Redo: a partition that must still get a decided commit's writes (loaded
 * from the log at start, or a live commit whose partition had no replica
 * take its apply) keeps its write turn; the tick retries it every
 * REDO_RETRY_MS on its usable replicas, and once one took it (the others
 * marked stale, the catalog saved), a DONE of that part, durable, hands
 * its turn on. At start, every outstanding PREPARE becomes a recovery
 * transaction that takes the turns of its partitions not done yet before
 * the scheduler serves anything, so every other writer waits behind it.
 *
 * A failed log write stops the log: what waits for it keeps its turns (a
 * restart redoes what the file holds), and the clients waiting for a
 * PREPARE hear TSR_ERR_IO ("outcome unknown").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sched_txn_internal.h"

#define REDO_RETRY_MS 500 /* a partition waiting for a usable replica is retried this often */

void tsr_stxn_own(stxn_t *x)
{
    struct stxn_coord *c = x->s->txn;
    if (x->owned)
        return;
    x->owned = true;
    x->oprev = NULL;
    x->onext = c->owned;
    if (c->owned)
        c->owned->oprev = x;
    c->owned = x;
}

/* ---- the coordinator log: waiting for durability ------------------------------------ */

static void durable(stxn_t *x, size_t pi, stxn_wait_kind_t kind, tsr_status_t rc, const char *why);

/* Says once that the log failed: what it holds stays held. */
static void note_failure(sched_t *s, const char *why)
{
    if (s->txn->failure_noted)
        return;
    s->txn->failure_noted = true;
    tsr_sched_log(s->p->log, "scheduler",
                  "error: %s; the partitions of the transactions in flight keep their write "
                  "turns until the scheduler restarts (it then redoes what the log holds)",
                  why);
}

/* Runs durable(x, pi, kind) once the log is durable up to lsn (the tick
 * polls; the waits are in lsn order, as this thread appends). */
static void after_durable(stxn_t *x, size_t pi, uint64_t lsn, stxn_wait_kind_t kind)
{
    struct stxn_coord *c = x->s->txn;
    stxn_wait_t *w = kind == STXN_W_DONE_PART ? &x->parts[pi].wait : &x->wait;
    w->x = x;
    w->pi = pi;
    w->lsn = lsn;
    w->kind = (int)kind;
    w->next = NULL;
    if (c->wtail)
        c->wtail->next = w;
    else
        c->whead = w;
    c->wtail = w;
}

/* Appends DONE of part (TSR_TXN_LOG_ALL: all) and continues with kind once
 * it is durable. */
void tsr_stxn_log_done(stxn_t *x, size_t pi, uint32_t part, stxn_wait_kind_t kind)
{
    uint64_t lsn = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = tsr_txn_log_done(x->s->txn->log, x->txid, part, &lsn, &e);
    if (rc != TSR_OK)
        durable(x, pi, kind, rc, e.message);
    else
        after_durable(x, pi, lsn, kind);
}

/* Every partition with writes is redone and its DONE durable: the end. */
static void maybe_end(stxn_t *x)
{
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].nwrites && x->parts[i].hold)
            return;
    for (size_t i = 0; i < x->nparts; i++)
        tsr_stxn_release(x, i);
    tsr_stxn_free(x);
}

static void durable(stxn_t *x, size_t pi, stxn_wait_kind_t kind, tsr_status_t rc, const char *why)
{
    sched_t *s = x->s;
    if (rc != TSR_OK) {
        /* the PREPARE may be on disk or not, a DONE likewise: releasing the
         * turns would let later writes run that a restart's redo could
         * overwrite. They stay held (the transaction stays owned) */
        note_failure(s, why && why[0] ? why : "the transaction log failed");
        if (kind == STXN_W_FENCED) { /* nothing decided nor applied: it fails */
            tsr_stxn_set_err(x, TSR_ERR_IO, "see the scheduler's log; check its --data-dir",
                             "the coordinator log could not record a fencing token (nothing "
                             "was written)");
            tsr_stxn_finish(x);
            return;
        }
        if (kind == STXN_W_PREPARED) {
            tsr_stxn_set_err(
                x, TSR_ERR_IO, "see the scheduler's log; check its --data-dir",
                "the coordinator log could not be written: the transaction's outcome is "
                "unknown until the scheduler restarts");
            tsr_stxn_reply(x);
        }
        return;
    }
    switch (kind) {
    case STXN_W_FENCED: /* its tokens are durable: apply, unless a drop came meanwhile */
        if (!tsr_stxn_none_dropped(x)) { /* nothing decided: it fails */
            tsr_stxn_finish(x);
            break;
        }
        x->anext = 0;
        tsr_stxn_apply_from(x);
        break;
    case STXN_W_PREPARED: /* decided: apply */
        x->anext = 0;
        tsr_stxn_apply_from(x);
        break;
    case STXN_W_DONE_ALL:
        tsr_stxn_finish(x);
        break;
    case STXN_W_DONE_PART:
        tsr_stxn_release(x, pi);
        maybe_end(x);
        break;
    }
}

void tsr_sched_txn_tick(sched_t *s)
{
    struct stxn_coord *c = s->txn;
    if (!c || !c->log)
        return;
    if (c->whead) {
        uint64_t d = 0;
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_status_t rc = tsr_txn_log_durable(c->log, &d, &e);
        while (c->whead && (rc != TSR_OK || c->whead->lsn <= d)) {
            stxn_wait_t *w = c->whead;
            c->whead = w->next;
            if (!c->whead)
                c->wtail = NULL;
            durable(w->x, w->pi, (stxn_wait_kind_t)w->kind, w->lsn <= d ? TSR_OK : rc, e.message);
        }
    }
    uint64_t now = tsr_sched_now_ms();
    if (c->owned && now >= c->next_retry_ms) {
        c->next_retry_ms = now + REDO_RETRY_MS;
        for (stxn_t *x = c->owned, *next; x; x = next) {
            next = x->onext;
            for (size_t i = 0; x->held && i < x->nparts; i++)
                if (x->parts[i].redo && x->parts[i].inflight == 0)
                    tsr_stxn_try_redo(x, i);
        }
    }
}

bool tsr_sched_txn_busy(const sched_t *s)
{
    return s->txn && s->txn->whead;
}

/* ---- redo: a decided partition that no replica took yet ----------------------------- */

static void redo_done(stxn_t *x, size_t i)
{
    sched_t *s = x->s;
    stxn_part_t *p = &x->parts[i];
    if (p->applied == 0) {
        p->tries++;
        if ((p->tries & (p->tries - 1)) != 0)
            return; /* said at attempts 1, 2, 4, 8, ...: retried */
        tsr_sched_log(
            s->p->log, "scheduler",
            "txn %llu: kv table '%s' partition %u: no replica took the redo (%u attempt(s)); "
            "retried",
            (unsigned long long)x->txid, p->t->name, p->part, p->tries);
        return;
    }
    tsr_stxn_mark_missed(x, p);
    if (s->kv->unsaved && !tsr_sched_kv_persist(s))
        return; /* a restart could take a stale copy for fresh: retried (idempotent) */
    p->redo = false;
    s->txn->redone++;
    tsr_sched_log(s->p->log, "scheduler",
                  "txn %llu: kv table '%s' partition %u: the committed writes are applied on "
                  "%u replica(s)",
                  (unsigned long long)x->txid, p->t->name, p->part, p->applied);
    tsr_stxn_log_done(x, i, p->group, STXN_W_DONE_PART);
}

static void on_redo(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply_msg)
{
    stxn_call_t *c = arg;
    stxn_t *x = c->x;
    stxn_part_t *p = &x->parts[c->pi];
    if (status == TSR_OK && p->applied++ == 0) /* applied: stale replicas missed it */
        tsr_sched_kv_note_write(x->s, p->t, p->part, &p->msg);
    else if (status != TSR_OK)
        p->failed[c->rep] = true;
    tsr_rpc_msg_release(x->s->t, reply_msg);
    size_t pi = c->pi;
    tsr_mem_free(x->s->mem, c);
    x->pending--;
    if (--p->inflight == 0)
        redo_done(x, pi);
}

void tsr_stxn_try_redo(stxn_t *x, size_t i)
{
    sched_t *s = x->s;
    stxn_part_t *p = &x->parts[i];
    if (tsr_sched_kv_find(s, p->t->name) != p->t) {
        /* dropped (the drop waited for nothing: drops take no turn): no
         * copy of it is read any more, nothing to apply */
        p->redo = false;
        tsr_stxn_log_done(x, i, p->group, STXN_W_DONE_PART);
        return;
    }
    size_t up = 0, fresh = 0;
    for (size_t r = 0; r < p->t->nrep; r++) {
        const skv_rep_t *rep = &p->t->reps[(size_t)p->part * p->t->nrep + r];
        sworker_t *w = NULL;
        up += tsr_sched_kv_usable(s, p->t, p->part, r, &w);
        fresh += rep->id[0] && !rep->stale;
    }
    if (up == 0)
        return; /* no usable replica yet: the tick retries */
    if (up < fresh && tsr_sched_now_ms() < s->started_ms + STXN_REDO_GRACE_MS) {
        /* a restarted scheduler: its workers rejoin one by one; a redo on
         * the first one alone would leave the others stale, to be copied
         * whole - so wait a little for them (the tick retries) */
        if (!p->waited)
            tsr_sched_log(s->p->log, "scheduler",
                          "txn %llu: kv table '%s' partition %u: %zu of its %zu replica(s) up; "
                          "the redo waits up to %u s after the start for the others",
                          (unsigned long long)x->txid, p->t->name, p->part, up, fresh,
                          STXN_REDO_GRACE_MS / 1000);
        p->waited = true;
        return;
    }
    if (!tsr_stxn_build_msg(x, p, TSR_KV_POP_TAPPLY, p->nwrites, &p->writes))
        return; /* out of memory: the tick retries */
    memset(p->failed, 0, sizeof(p->failed));
    p->applied = 0;
    p->inflight = 1; /* ours, until every call is out */
    for (size_t r = 0; r < p->t->nrep; r++) {
        const skv_rep_t *rep = &p->t->reps[(size_t)p->part * p->t->nrep + r];
        sworker_t *w = NULL;
        if (!rep->id[0] || rep->stale)
            continue;
        if (!tsr_sched_kv_usable(s, p->t, p->part, r, &w) || !tsr_stxn_send(x, i, r, w, on_redo))
            p->failed[r] = true; /* down now: it misses the redo */
        else
            p->inflight++;
    }
    if (--p->inflight == 0)
        redo_done(x, i);
}

/* Logs the PREPARE (the commit point) and applies once it is durable. */
void tsr_stxn_prepare(stxn_t *x)
{
    sched_t *s = x->s;
    struct stxn_coord *c = s->txn;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    uint32_t ng = 0;
    for (size_t i = 0; i < x->nparts; i++)
        ng += x->parts[i].nwrites > 0;
    tsr_wbuf_u32(&b, ng);
    ng = 0;
    for (size_t i = 0; i < x->nparts; i++) {
        stxn_part_t *p = &x->parts[i];
        if (p->nwrites == 0)
            continue;
        p->group = ng++;
        tsr_wbuf_str(&b, p->t->name);
        tsr_wbuf_u64(&b, p->t->gen);
        tsr_wbuf_u32(&b, p->part);
        tsr_wbuf_u32(&b, p->nwrites);
        tsr_wbuf_u32(&b, (uint32_t)p->writes.len);
        tsr_wbuf_bytes(&b, p->writes.data, p->writes.len);
    }
    uint64_t lsn = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    x->txid = tsr_txn_log_new_txid(c->log);
    tsr_status_t rc = b.failed ? TSR_ERR_NOMEM
                               : tsr_txn_log_prepare(c->log, x->txid, ng, b.data, b.len, &lsn, &e);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK) { /* nothing was appended: nothing decided */
        tsr_stxn_set_err(x, rc == TSR_ERR_NOMEM ? TSR_ERR_NOMEM : TSR_ERR_IO,
                         "see the scheduler's log; check its --data-dir",
                         "the commit was not logged (nothing was written): %s",
                         e.message[0] ? e.message : "out of memory");
        tsr_stxn_finish(x);
        return;
    }
    x->logged = true;
    c->logged++;
    tsr_stxn_own(x);
    after_durable(x, 0, lsn, STXN_W_PREPARED);
}

void tsr_stxn_apply_when_fenced(stxn_t *x, uint64_t lsn)
{
    tsr_stxn_own(x); /* not logged: owned only so that a stop frees it */
    after_durable(x, 0, lsn, STXN_W_FENCED);
}

/* ---- start-up: the coordinator log and recovery ------------------------------------- */

static void log_note(void *arg, const char *msg)
{
    sched_t *s = arg;
    tsr_sched_log(s->p->log, "scheduler", "%s", msg);
}

/* Queues the redo of one outstanding PREPARE: a recovery transaction that
 * takes the turns of the partitions not done yet. */
static tsr_status_t recover_one(sched_t *s, const tsr_txn_log_pending_t *pd, tsr_error_t *err)
{
    struct stxn_coord *c = s->txn;
    stxn_t *x = tsr_mem_calloc(s->mem, 1, sizeof(*x));
    if (!x)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory recovering transactions");
    x->s = s;
    x->recovery = true;
    x->logged = true;
    x->txid = pd->txid;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, pd->payload, pd->len);
    uint32_t ng = tsr_rbuf_u32(&r);
    bool bad = r.bad || ng != pd->nparts;
    for (uint32_t g = 0; g < ng && !bad; g++) {
        const char *name = tsr_rbuf_str(&r);
        uint64_t gen = tsr_rbuf_u64(&r);
        uint32_t part = tsr_rbuf_u32(&r), nw = tsr_rbuf_u32(&r), blen = tsr_rbuf_u32(&r);
        const void *body = r.bad ? NULL : tsr_rbuf_bytes(&r, blen);
        if ((bad = r.bad || !body))
            break;
        if (pd->done[g])
            continue;
        skv_table_t *t = tsr_sched_kv_find(s, name);
        if (!t || t->gen != gen || part >= t->nparts) {
            /* dropped since: nothing reads that table any more */
            uint64_t lsn = 0;
            tsr_txn_log_done(c->log, x->txid, g, &lsn, NULL);
            continue;
        }
        stxn_part_t *p = tsr_stxn_participant(x, t, part);
        if (!p) {
            tsr_stxn_free(x);
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory recovering transactions");
        }
        p->nwrites = nw;
        p->group = g;
        p->redo = true;
        tsr_wbuf_bytes(&p->writes, body, blen);
    }
    if (bad || !tsr_rbuf_done(&r)) {
        tsr_stxn_free(x);
        return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                             "txn log in '%s': the PREPARE of transaction %llu is malformed",
                             s->p->data_dir, (unsigned long long)pd->txid);
    }
    if (x->nparts == 0) {
        tsr_stxn_free(x);
        return TSR_OK;
    }
    tsr_sched_log(s->p->log, "scheduler",
                  "txn %llu: committed before the scheduler stopped, not applied everywhere: "
                  "redone on %zu partition(s) (their writes wait for it)",
                  (unsigned long long)x->txid, x->nparts);
    qsort(x->parts, x->nparts, sizeof(*x->parts), tsr_stxn_cmp_part);
    tsr_stxn_own(x);
    tsr_stxn_acquire(x); /* no other writer yet: every turn is granted now */
    return TSR_OK;
}

tsr_status_t tsr_sched_txn_open(sched_t *s, tsr_error_t *err)
{
    struct stxn_coord *c = tsr_mem_calloc(s->mem, 1, sizeof(*c));
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory for the transaction coordinator");
    s->txn = c;
    c->crash_after = -1;
    tsr_lock_err_t le = {0};
    if (tsr_lock_fence_create(&c->fence, &le) != TSR_OK)
        return tsr_error_set(err, le.status, "transaction coordinator: %s", le.message);
    const char *hook = getenv("TSR_TEST_TXN_CRASH_AFTER_APPLIES");
    if (hook && hook[0]) {
        char *end = NULL;
        long n = strtol(hook, &end, 10);
        if (*end == '\0' && n >= 0) {
            c->crash_after = n;
            tsr_sched_log(s->p->log, "scheduler",
                          "test hook: TSR_TEST_TXN_CRASH_AFTER_APPLIES=%ld (exits mid-commit)", n);
        }
    }
    if (!s->p->data_dir)
        return TSR_OK; /* no log: atomic across partitions while the scheduler lives */
    tsr_txn_log_params_t lp = {
        .dir = s->p->data_dir, .syncer = true, .note = log_note, .note_arg = s};
    tsr_status_t rc = tsr_txn_log_open(s->mem, &lp, &c->log, err);
    if (rc != TSR_OK)
        return rc;
    size_t nf = tsr_txn_log_fence_count(c->log);
    for (size_t i = 0; i < nf; i++) {
        const char *name = NULL;
        uint64_t token = 0;
        if (tsr_txn_log_fence_get(c->log, i, &name, &token) &&
            tsr_lock_fence_check(c->fence, name, token, &le) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn log in '%s': lock fence: %s",
                                 s->p->data_dir, le.message);
    }
    if (nf)
        tsr_sched_log(s->p->log, "scheduler", "txn log: the fencing tokens of %zu lock(s) restored",
                      nf);
    size_t n = tsr_txn_log_pending_count(c->log);
    /* copied first: recovering appends DONEs (for dropped tables), which
     * changes the log's list */
    tsr_txn_log_pending_t *pds = n ? tsr_mem_calloc(s->mem, n, sizeof(*pds)) : NULL;
    uint8_t **copies = n ? tsr_mem_calloc(s->mem, n, sizeof(*copies)) : NULL;
    if (n && (!pds || !copies)) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory recovering transactions");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        tsr_txn_log_pending_get(c->log, i, &pds[i]);
        copies[i] = tsr_mem_alloc(s->mem, pds[i].len + pds[i].nparts + 1);
        if (!copies[i]) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory recovering transactions");
            goto cleanup;
        }
        memcpy(copies[i], pds[i].payload, pds[i].len);
        memcpy(copies[i] + pds[i].len, pds[i].done, pds[i].nparts);
        pds[i].payload = copies[i];
        pds[i].done = copies[i] + pds[i].len;
    }
    for (size_t i = 0; i < n && rc == TSR_OK; i++)
        rc = recover_one(s, &pds[i], err);
    if (rc == TSR_OK && n)
        tsr_sched_log(s->p->log, "scheduler",
                      "txn log: %zu transaction(s) committed and not applied everywhere before "
                      "the last stop: redone as their partitions get a usable replica",
                      n);
cleanup:
    for (size_t i = 0; copies && i < n; i++)
        tsr_mem_free(s->mem, copies[i]);
    tsr_mem_free(s->mem, copies);
    tsr_mem_free(s->mem, pds);
    return rc;
}

/* Frees a placeholder without handing its turn on (at exit: nothing runs
 * any more; the partition's queue goes with its table). */
static void drop_hold(sched_t *s, kv_op_t *op)
{
    if (!op)
        return;
    tsr_wbuf_free(&op->msg);
    tsr_wbuf_free(&op->effect);
    tsr_mem_free(s->mem, op->reply);
    tsr_sched_kv_table_unref(s, op->t);
    tsr_mem_free(s->mem, op);
}

void tsr_sched_txn_close(sched_t *s)
{
    struct stxn_coord *c = s->txn;
    if (!c)
        return;
    c->whead = c->wtail = NULL; /* embedded in the transactions freed below */
    while (c->owned) {
        stxn_t *x = c->owned;
        for (size_t i = 0; i < x->nparts; i++) {
            drop_hold(s, x->parts[i].hold);
            x->parts[i].hold = NULL;
        }
        tsr_stxn_free(x);
    }
    if (c->log) {
        tsr_txn_log_stats_t st;
        tsr_txn_log_get_stats(c->log, &st);
        tsr_sched_log(s->p->log, "scheduler",
                      "txn log: %llu commit(s) with writes, %llu logged, %llu record(s), %llu "
                      "fdatasync(s), %llu compaction(s), %llu partition(s) redone, %zu outstanding",
                      (unsigned long long)c->commits, (unsigned long long)c->logged,
                      (unsigned long long)st.records, (unsigned long long)st.syncs,
                      (unsigned long long)st.compactions, (unsigned long long)c->redone,
                      st.outstanding);
        tsr_txn_log_close(c->log);
    }
    tsr_lock_fence_destroy(c->fence);
    tsr_mem_free(s->mem, c);
    s->txn = NULL;
}
