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
 *      another commit, a resync) runs until step 4.
 *   2. validates: one TVALIDATE per partition with reads, to its primary
 *      (the first usable replica; the next one when a call gets no answer,
 *      as reads fall over). Any read whose version changed (or an absent
 *      key that appeared) fails the commit with TSR_ERR_CONFLICT, nothing
 *      written. Reads and writes of the partitions are frozen by step 1, so
 *      what was validated is what the writes overwrite: serializable.
 *   3. applies: one TAPPLY per partition with writes, to every usable
 *      replica at once; each applies the partition's writes as ONE commit
 *      record of its store (all or nothing, durable before it answers). As
 *      for plain writes (sched_kv.c), a replica that missed an apply other
 *      replicas took is marked stale (resynced later); a partition none of
 *      whose replicas took it fails the commit with TSR_ERR_UNAVAILABLE
 *      (its other partitions' parts may have been applied: see the limits).
 *   4. releases the turns (the writes that waited run) and answers.
 *
 * Read-only transactions commit here too (steps 1, 2, 4): validating
 * partition by partition without the turns could pass a read set that saw
 * half of another commit's partitions.
 *
 * Limits (docs/kv.md): atomic across partitions unless the scheduler dies
 * between two partitions' applies (its catalog is in memory anyway) or all
 * replicas of a partition fail during the apply; the fix is a durable
 * prepare record with the participant list and recovery that finishes or
 * undoes it (FaRM-style). Fenced writes are refused by the client.
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

#include "common.h"
#include "core/hash.h"
#include "kv_msg.h"
#include "sched_kv.h"
#include "sched_txn.h"

#define MAX_TABLES 1024u

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
} stxn_part_t;

typedef struct stxn {
    sched_t *s;
    tsr_rpc_req_t *req;
    stxn_part_t *parts;
    size_t nparts, cap;
    size_t next;    /* acquiring: the next partition to take */
    bool waiting;   /* acquiring: parts[next] is queued */
    bool in_submit; /* acquiring: inside tsr_sched_kv_submit */
    unsigned pending;
    tsr_status_t rc;
    char msg[400];
    char hint[200];
} stxn_t;

typedef struct stxn_call {
    stxn_t *x;
    size_t pi, rep;
} stxn_call_t;

uint32_t tsr_sched_txn_part_of(const void *key, size_t klen, uint32_t nparts)
{
    uint64_t h = tsr_hash_bytes(key, klen);
    return (uint32_t)(((h >> 32) * nparts) >> 32);
}

/* Records the commit's first error. */
static void set_err(stxn_t *x, tsr_status_t rc, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(stxn_t *x, tsr_status_t rc, const char *hint, const char *fmt, ...)
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

static void txn_free(stxn_t *x)
{
    for (size_t i = 0; i < x->nparts; i++) {
        tsr_wbuf_free(&x->parts[i].reads);
        tsr_wbuf_free(&x->parts[i].writes);
        tsr_wbuf_free(&x->parts[i].msg);
        tsr_sched_kv_table_unref(x->s, x->parts[i].t);
    }
    tsr_mem_free(x->s->mem, x->parts);
    tsr_mem_free(x->s->mem, x);
}

/* Step 4: answer, then hand the turns on (which may start other commits). */
static void finish(stxn_t *x)
{
    sched_t *s = x->s;
    if (x->rc == TSR_OK)
        tsr_rpc_reply(s->t, x->req, TSR_OK, NULL, 0);
    else
        tsr_proto_reply_error(s->t, s->mem, x->req, x->rc, x->msg, x->hint[0] ? x->hint : NULL);
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].hold)
            tsr_sched_kv_op_done(x->parts[i].hold);
    txn_free(x);
}

/* The participant (t, part), added when new; NULL when out of memory. */
static stxn_part_t *participant(stxn_t *x, skv_table_t *t, uint32_t part)
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

static int cmp_part(const void *a, const void *b)
{
    const stxn_part_t *x = a, *y = b;
    int c = strcmp(x->t->name, y->t->name);
    if (c)
        return c;
    return x->part < y->part ? -1 : x->part > y->part;
}

/* The KV_RUN message of pop for p: u32 n, then the entries' body. */
static bool build_msg(stxn_t *x, stxn_part_t *p, uint8_t pop, uint32_t n, const tsr_wbuf_t *body)
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
        set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
    return ok;
}

/* Sends p->msg to replica rep; false when it could not be sent. */
static bool send(stxn_t *x, size_t pi, size_t rep, sworker_t *w, tsr_rpc_done_fn fn)
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

/* ---- 3. apply ------------------------------------------------------------------------ */

static void applied(stxn_t *x)
{
    bool some = false;
    for (size_t i = 0; i < x->nparts; i++)
        some |= x->parts[i].applied > 0;
    for (size_t i = 0; i < x->nparts; i++) {
        stxn_part_t *p = &x->parts[i];
        if (p->nwrites == 0)
            continue;
        if (p->applied == 0) {
            set_err(x, TSR_ERR_UNAVAILABLE,
                    "restart the partition's worker with its --data-dir: it recovers the "
                    "partition from its log",
                    "kv table '%s' partition %u: no replica took the commit%s", p->t->name, p->part,
                    some ? " (its other partitions' writes were applied: the transaction is "
                           "partly committed)"
                         : "");
            continue;
        }
        for (size_t r = 0; r < p->t->nrep; r++)
            if (p->failed[r])
                tsr_sched_kv_mark_stale(x->s, p->t, p->part, r);
    }
    finish(x);
}

static void on_apply(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    stxn_call_t *c = arg;
    stxn_t *x = c->x;
    stxn_part_t *p = &x->parts[c->pi];
    if (status == TSR_OK)
        p->applied++;
    else
        p->failed[c->rep] = true;
    tsr_rpc_msg_release(x->s->t, reply);
    tsr_mem_free(x->s->mem, c);
    if (--x->pending == 0)
        applied(x);
}

static void apply(stxn_t *x)
{
    sched_t *s = x->s;
    x->pending = 1; /* ours, until every call is out */
    for (size_t i = 0; i < x->nparts; i++) {
        stxn_part_t *p = &x->parts[i];
        if (p->nwrites == 0)
            continue;
        if (!build_msg(x, p, TSR_KV_POP_TAPPLY, p->nwrites, &p->writes)) {
            /* nothing of this partition was sent: it counts as not applied */
            continue;
        }
        for (size_t r = 0; r < p->t->nrep; r++) {
            sworker_t *w = NULL;
            if (p->t->reps[(size_t)p->part * p->t->nrep + r].stale)
                continue;
            if (!tsr_sched_kv_usable(s, p->t, p->part, r, &w) || !send(x, i, r, w, on_apply))
                p->failed[r] = true; /* down now: it misses this commit */
        }
    }
    if (--x->pending == 0)
        applied(x);
}

/* ---- 2. validate --------------------------------------------------------------------- */

static void validated(stxn_t *x)
{
    /* a drop answered while the validations were out: applying now would
     * acknowledge writes to a table that is gone (and recreate its
     * partition as an orphan on the workers, as TAPPLY creates a missing
     * table) - the commit fails as for a drop seen before validation */
    for (size_t i = 0; i < x->nparts && x->rc == TSR_OK; i++)
        if (x->parts[i].nwrites && tsr_sched_kv_find(x->s, x->parts[i].t->name) != x->parts[i].t)
            set_err(x, TSR_ERR_NOT_FOUND, NULL, "kv table '%s' was dropped during the transaction",
                    x->parts[i].t->name);
    if (x->rc != TSR_OK)
        finish(x);
    else
        apply(x);
}

/* Sends parts[pi]'s validation to its first usable replica from cur on. */
static void send_validate(stxn_t *x, size_t pi);

static void on_validate(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    stxn_call_t *c = arg;
    stxn_t *x = c->x;
    stxn_part_t *p = &x->parts[c->pi];
    if (status != TSR_OK && reply->len == 0) {
        /* no answer: ask the next replica (whose versions differ: the reads
         * made there, after a failover, pass; older ones conflict) */
        p->cur++;
        send_validate(x, c->pi);
    } else if (status != TSR_OK) {
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_proto_decode_error(reply->data, reply->len, status, &e);
        set_err(x, status,
                status == TSR_ERR_CONFLICT
                    ? "another transaction or write changed what it read: run it again "
                      "(tsr_txn_run, or 'tessera txn --retries N')"
                    : NULL,
                "kv table '%s': %s", p->t->name, e.message[0] ? e.message : tsr_status_str(status));
    }
    tsr_rpc_msg_release(x->s->t, reply);
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
            send(x, pi, p->cur, w, on_validate))
            return;
    }
    set_err(x, TSR_ERR_UNAVAILABLE,
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
            set_err(x, TSR_ERR_NOT_FOUND, NULL, "kv table '%s' was dropped during the transaction",
                    p->t->name);
        else if (p->nreads && build_msg(x, p, TSR_KV_POP_TVALIDATE, p->nreads, &p->reads))
            send_validate(x, i);
    }
    if (--x->pending == 0)
        validated(x);
}

/* ---- 1. the partitions' write turns -------------------------------------------------- */

static void acquire(stxn_t *x);

static void on_granted(kv_op_t *op)
{
    stxn_t *x = op->arg;
    x->waiting = false;
    x->next++;
    if (!x->in_submit) /* queued earlier: go on from here */
        acquire(x);
}

static void acquire(stxn_t *x)
{
    sched_t *s = x->s;
    while (x->next < x->nparts) {
        stxn_part_t *p = &x->parts[x->next];
        kv_op_t *op = tsr_mem_calloc(s->mem, 1, sizeof(*op));
        if (!op) {
            set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
            finish(x);
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
    validate(x);
}

/* ---- the request ------------------------------------------------------------------------ */

static const uint8_t *get_bytes(tsr_rbuf_t *r, uint32_t *n)
{
    *n = tsr_rbuf_u32(r);
    return r->bad ? NULL : tsr_rbuf_bytes(r, *n);
}

static void put_bytes(tsr_wbuf_t *b, const void *p, uint32_t n)
{
    tsr_wbuf_u32(b, n);
    tsr_wbuf_bytes(b, p, n);
}

/* Parses the sets into x's participants; false after recording the error. */
static bool parse(stxn_t *x, tsr_rbuf_t *r)
{
    uint32_t ntabs = tsr_rbuf_u32(r);
    if (r->bad || ntabs > MAX_TABLES) {
        set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
        return false;
    }
    skv_table_t *tabs[MAX_TABLES];
    for (uint32_t i = 0; i < ntabs; i++) {
        const char *name = tsr_rbuf_str(r);
        if (r->bad) {
            set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
            return false;
        }
        tabs[i] = tsr_sched_kv_find(x->s, name);
        if (!tabs[i]) {
            set_err(x, TSR_ERR_NOT_FOUND, "'tessera kv list' shows the tables",
                    "no kv table '%.80s'", name);
            return false;
        }
    }
    for (int writes = 0; writes < 2; writes++) {
        uint32_t n = tsr_rbuf_u32(r);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            uint32_t tab = tsr_rbuf_u32(r);
            uint8_t del = writes ? tsr_rbuf_u8(r) : 0;
            uint32_t klen = 0, vlen = 0;
            const uint8_t *key = get_bytes(r, &klen);
            const uint8_t *val = writes ? get_bytes(r, &vlen) : NULL;
            uint64_t ver = writes ? 0 : tsr_rbuf_u64(r);
            if (r->bad || tab >= ntabs) {
                r->bad = true; /* refused below */
                break;
            }
            skv_table_t *t = tabs[tab];
            if (klen > t->max_key || vlen > t->max_value) {
                set_err(x, TSR_ERR_INVALID_ARG, NULL,
                        "a key or value is longer than kv table '%s' allows (%u, %u bytes)",
                        t->name, t->max_key, t->max_value);
                return false;
            }
            stxn_part_t *p = participant(x, t, tsr_sched_txn_part_of(key, klen, t->nparts));
            if (!p) {
                set_err(x, TSR_ERR_NOMEM, NULL, "out of memory for a kv transaction");
                return false;
            }
            if (writes) {
                tsr_wbuf_u8(&p->writes, del ? 1 : 0);
                put_bytes(&p->writes, key, klen);
                put_bytes(&p->writes, val, del ? 0 : vlen);
                p->nwrites++;
            } else {
                put_bytes(&p->reads, key, klen);
                tsr_wbuf_u64(&p->reads, ver);
                p->nreads++;
            }
        }
    }
    if (!tsr_rbuf_done(r)) {
        set_err(x, TSR_ERR_BAD_INPUT, NULL, "malformed kv transaction");
        return false;
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
    if (!parse(x, r)) {
        finish(x); /* no turn taken yet */
        return;
    }
    /* ascending (table, partition): every commit takes its turns in one
     * global order, so none waits for a turn held by one waiting for its */
    qsort(x->parts, x->nparts, sizeof(*x->parts), cmp_part);
    acquire(x);
}
