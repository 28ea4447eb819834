/*
 * server.c - the owner's side of remote transactions: tsr_txn_server, which
 * answers tsr_txn_db_remote clients (remote.c; messages in txn_wire.h).
 *
 * The server checks every length against the message before using it (a
 * malformed message is answered TSR_ERR_BAD_INPUT) and recomputes key
 * hashes itself. Reads are answered in the RPC handler (they take no lock).
 * Commits run steps 1-5 of the protocol (lock, validate, log, apply,
 * unlock: no I/O, no waiting) in the handler too. On a store without a log
 * that is the whole commit and the handler replies. On a store with a log
 * the reply must wait until the commit record is durable: the handler
 * queues (request, lsn) for the server's one syncer thread, which takes
 * every queued commit at once, waits for the largest lsn among them (one
 * group commit covers all records up to it: the log is written in lsn
 * order) and replies to all of them - over TCP, when the next round's
 * commits already wait, through a replier thread instead (below). So
 * however many clients commit at once, they share one
 * fdatasync per round (a pool of threads each waiting for its own commit
 * would share at most one per thread), the progress thread never waits for
 * a disk, and a commit is acknowledged only once its record is durable.
 * Why a replier of its own (over TCP): a reply there costs 30-110 us (the
 * send runs the loopback receive path and wakes the client), and while
 * the syncer sent a round's replies the next round's commits waited for
 * their fdatasync: with 16 SmallBank clients a round was 330 us of
 * fdatasync, 123 us of replies and 118 us of waiting for the next batch
 * (bench/RESULTS.md, 2026-11-29). Stopping the server drains both queues:
 * every commit already applied is acknowledged once durable, or answered
 * with the log's error.
 */
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "txn_internal.h"
#include "txn_wire.h"

/* A commit applied and logged, its reply waiting for the record's lsn. */
typedef struct job {
    tsr_rpc_req_t *req;
    uint64_t lsn;
    struct job *next;
} job_t;

struct tsr_txn_server {
    txn_local_t local;
    tsr_transport_t *t;
    uint16_t rpc_type;
    pthread_mutex_t mu; /* guards the two queues and the stop flags */
    pthread_cond_t cv;  /* the syncer's: a commit queued, or stop */
    job_t *head, *tail; /* waiting for durability, in arrival order */
    bool stop;
    pthread_t syncer;
    bool syncer_started;
    pthread_cond_t reply_cv;        /* the replier's: a batch handed over, or stop */
    job_t *reply_head, *reply_tail; /* durable, waiting for their replies */
    bool reply_stop;                /* set once the syncer has exited */
    pthread_t replier;
    bool replier_started;
    /* Hand batches to the replier: the transport is TCP only, where a
     * reply from a thread other than the progress thread cost about 110 us
     * with 16 SmallBank clients on 2 cores (20 us over shared memory). A
     * measured cost was tried as the rule instead: it swung around any
     * threshold with the load, handing over a third of the batches. */
    bool handoff;
};

static void reply_err(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t rc, const tsr_error_t *e)
{
    const char *msg = e && e->status != TSR_OK ? e->message : tsr_status_str(rc);
    tsr_rpc_reply(t, req, rc, msg, strlen(msg) + 1);
}

static bool read_name(rbuf_t *r, char *out)
{
    uint32_t n = get_u16(r);
    const unsigned char *p = take(r, n);
    if (!p || n == 0 || n > TSR_KV_NAME_MAX)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return memchr(out, '\0', n) == NULL;
}

/* Answers TSR_OK with b's bytes (or the out-of-memory error b ran into)
 * and frees them. */
static void reply_buf(tsr_txn_server_t *s, tsr_rpc_req_t *req, wbuf_t *b)
{
    if (b->oom) {
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
        reply_err(s->t, req, TSR_ERR_NOMEM, &e);
    } else {
        tsr_rpc_reply(s->t, req, TSR_OK, b->p, b->len);
    }
    tsr_mem_free(NULL, b->p);
    b->p = NULL;
}

static void serve_read(tsr_txn_server_t *s, tsr_rpc_req_t *req, rbuf_t *r)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    char name[NAME_CAP];
    bool ok = read_name(r, name);
    uint32_t klen = get_u32(r);
    const unsigned char *key = take(r, klen);
    if (!ok || r->bad || r->off != r->len) {
        tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: malformed read request");
        reply_err(s->t, req, TSR_ERR_BAD_INPUT, &e);
        return;
    }
    unsigned char *val = NULL;
    uint32_t vlen = 0;
    uint64_t ver = 0;
    tsr_status_t rc = tsr_txn_read_local(&s->local, name, tsr_hash_bytes(key, klen), key, klen,
                                         &val, &vlen, &ver, &e);
    if (rc != TSR_OK && !(rc == TSR_ERR_NOT_FOUND && ver == KV_TXN_ABSENT)) {
        reply_err(s->t, req, rc, &e);
        return;
    }
    wbuf_t b = {0};
    put_u8(&b, rc == TSR_OK);
    put_u64(&b, ver);
    put_bytes(&b, val, vlen);
    tsr_mem_free(NULL, val);
    reply_buf(s, req, &b);
}

/* READ_SNAP: after the reads, the read set validated as a read-only commit
 * would validate it (same versions or still absent, none locked), at once.
 * Then every key had the version read at one instant, between the last
 * read and the first check (versions only grow), so a transaction whose
 * reads are exactly these is serialized there and needs no commit call.
 * Keys point into the request. */
typedef struct snap_set {
    txn_sets_t sets;
    char (*names)[NAME_CAP];
    bool usable; /* every key read (a value or absent) */
} snap_set_t;

static bool snap_init(snap_set_t *ss, uint32_t n)
{
    memset(ss, 0, sizeof(*ss));
    ss->usable = true;
    ss->sets.tnames = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*ss->sets.tnames));
    ss->sets.reads = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*ss->sets.reads));
    ss->names = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*ss->names));
    return ss->sets.tnames && ss->sets.reads && ss->names;
}

static void snap_add(snap_set_t *ss, const char *name, uint64_t h, const unsigned char *key,
                     uint32_t klen, uint64_t ver)
{
    uint32_t i = ss->sets.ntabs++;
    memcpy(ss->names[i], name, NAME_CAP);
    ss->sets.tnames[i] = ss->names[i];
    ss->sets.reads[ss->sets.nreads++] =
        (txn_entry_t){.tab = i, .h = h, .key = (unsigned char *)key, .klen = klen, .ver = ver};
}

/* 1 when the reads were one consistent snapshot (see snap_set_t). */
static unsigned snap_check(tsr_txn_server_t *s, snap_set_t *ss)
{
    if (!ss->usable)
        return 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    uint64_t lsn = 0;
    return tsr_txn_commit_prepare(&s->local, &ss->sets, &lsn, &e) == TSR_OK && lsn == 0;
}

static void snap_fini(snap_set_t *ss)
{
    tsr_mem_free(NULL, ss->sets.tnames);
    tsr_mem_free(NULL, ss->sets.reads);
    tsr_mem_free(NULL, ss->names);
}

/* Every key's answer, in order, in one reply (see READ_MANY above); for
 * READ_SNAP (snap) followed by the u8 snapshot verdict. */
static void serve_read_many(tsr_txn_server_t *s, tsr_rpc_req_t *req, rbuf_t *r, bool snap)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    uint32_t n = get_u32(r);
    /* every key takes at least 7 bytes: a cheap bound before encoding */
    if (r->bad || n > (r->len - r->off) / 7) {
        tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: malformed read request");
        reply_err(s->t, req, TSR_ERR_BAD_INPUT, &e);
        return;
    }
    snap_set_t ss = {0};
    if (snap && !snap_init(&ss, n)) {
        snap_fini(&ss);
        tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
        reply_err(s->t, req, TSR_ERR_NOMEM, &e);
        return;
    }
    wbuf_t b = {0};
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        char name[NAME_CAP];
        bool ok = read_name(r, name);
        uint32_t klen = get_u32(r);
        const unsigned char *key = take(r, klen);
        if (!ok)
            r->bad = true;
        if (r->bad)
            break;
        unsigned char *val = NULL;
        uint32_t vlen = 0;
        uint64_t ver = 0;
        tsr_error_t ke;
        tsr_error_clear(&ke);
        uint64_t h = tsr_hash_bytes(key, klen);
        tsr_status_t rc = tsr_txn_read_local(&s->local, name, h, key, klen, &val, &vlen, &ver, &ke);
        bool absent = rc == TSR_ERR_NOT_FOUND && ver == KV_TXN_ABSENT;
        const char *msg = ke.status != TSR_OK ? ke.message : tsr_status_str(rc);
        put_u32(&b, (uint32_t)rc);
        put_u64(&b, rc == TSR_OK || absent ? ver : 0);
        if (rc == TSR_OK) {
            put_u32(&b, vlen);
            put_bytes(&b, val, vlen);
        } else if (absent) {
            put_u32(&b, 0);
        } else {
            put_u32(&b, (uint32_t)strlen(msg));
            put_bytes(&b, msg, strlen(msg));
        }
        if (snap && (rc == TSR_OK || absent))
            snap_add(&ss, name, h, key, klen, ver);
        else if (snap)
            ss.usable = false;
        tsr_mem_free(NULL, val);
    }
    if (r->bad || r->off != r->len) {
        if (snap)
            snap_fini(&ss);
        tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: malformed read request");
        reply_err(s->t, req, TSR_ERR_BAD_INPUT, &e);
        tsr_mem_free(NULL, b.p);
        return;
    }
    if (snap) {
        put_u8(&b, snap_check(s, &ss));
        snap_fini(&ss);
    }
    reply_buf(s, req, &b);
}

/* Decodes a commit request into sets whose keys/values point into the
 * message (the entries' pointers are not owned: freed by free_sets only). */
static tsr_status_t decode_commit(rbuf_t *r, bool tagged, txn_sets_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    uint32_t nt = get_u32(r), nr = get_u32(r), nw = get_u32(r);
    /* every entry takes at least 8 bytes: a cheap bound before allocating */
    if (r->bad || nt > r->len || nr > r->len / 8 || nw > r->len / 8)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed commit request");
    out->tnames = tsr_mem_calloc(NULL, nt ? nt : 1, sizeof(*out->tnames));
    out->reads = tsr_mem_calloc(NULL, nr ? nr : 1, sizeof(*out->reads));
    out->writes = tsr_mem_calloc(NULL, nw ? nw : 1, sizeof(*out->writes));
    if (!out->tnames || !out->reads || !out->writes)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    for (uint32_t i = 0; i < nt; i++) {
        char name[NAME_CAP];
        if (!read_name(r, name))
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed table name");
        if (!(out->tnames[i] = tsr_mem_strdup(NULL, name)))
            return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        out->ntabs = i + 1;
    }
    for (uint32_t i = 0; i < nr; i++) {
        txn_entry_t *e = &out->reads[i];
        e->tab = get_u32(r);
        e->klen = get_u32(r);
        e->key = (unsigned char *)take(r, e->klen);
        e->ver = get_u64(r);
        if (r->bad || e->tab >= nt)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed read set");
        e->h = tsr_hash_bytes(e->key, e->klen);
        out->nreads = i + 1;
    }
    for (uint32_t i = 0; i < nw; i++) {
        txn_entry_t *e = &out->writes[i];
        e->tab = get_u32(r);
        e->del = get_u8(r) != 0;
        e->klen = get_u32(r);
        e->key = (unsigned char *)take(r, e->klen);
        e->vlen = get_u32(r);
        e->val = (unsigned char *)take(r, e->vlen);
        uint32_t ll = get_u16(r);
        const unsigned char *lock = take(r, ll);
        e->token = get_u64(r);
        e->rtag = tagged ? get_u64(r) : 0;
        if (r->bad || e->tab >= nt || (e->rtag && !kv_is_rlock(e->rtag)))
            return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed write set");
        if (ll) {
            if (!(e->lock = tsr_mem_strndup(NULL, (const char *)lock, ll)))
                return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        }
        e->h = tsr_hash_bytes(e->key, e->klen);
        out->nwrites = i + 1;
    }
    if (r->off != r->len)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: trailing bytes in a commit request");
    /* one write per key: a duplicate would lock its own key twice */
    for (size_t i = 0; i < out->nwrites; i++)
        for (size_t j = i + 1; j < out->nwrites; j++) {
            const txn_entry_t *a = &out->writes[i], *b = &out->writes[j];
            if (a->tab == b->tab && a->h == b->h && a->klen == b->klen &&
                memcmp(a->key, b->key, a->klen) == 0)
                return tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: a key written twice");
        }
    return TSR_OK;
}

static void free_sets(txn_sets_t *s)
{
    for (uint32_t i = 0; i < s->ntabs; i++)
        tsr_mem_free(NULL, s->tnames[i]);
    for (size_t i = 0; s->writes && i < s->nwrites; i++)
        tsr_mem_free(NULL, s->writes[i].lock);
    tsr_mem_free(NULL, s->tnames);
    tsr_mem_free(NULL, s->reads);
    tsr_mem_free(NULL, s->writes);
}

/* Runs steps 1-5 of a commit in the handler; replies at once unless the
 * commit logged a record, which is queued for the syncer instead. */
static void serve_commit(tsr_txn_server_t *s, tsr_rpc_req_t *req)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    size_t len;
    const unsigned char *p = tsr_rpc_req_data(req, &len);
    rbuf_t r = {p, len, 1, false};
    txn_sets_t sets;
    uint64_t lsn = 0;
    tsr_status_t rc = decode_commit(&r, p[0] == TXN_MSG_COMMIT_LOCKED, &sets, &e);
    if (rc == TSR_OK)
        rc = tsr_txn_commit_prepare(&s->local, &sets, &lsn, &e);
    free_sets(&sets);
    if (rc != TSR_OK) {
        reply_err(s->t, req, rc, &e);
        return;
    }
    if (!lsn) { /* read-only, or no log: nothing to wait for */
        tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
        return;
    }
    job_t *j = tsr_mem_calloc(NULL, 1, sizeof(*j));
    if (!j) {
        /* applied already: wait here rather than acknowledge early */
        rc = tsr_kv_wal_commit(s->local.store->wal, lsn, &e);
        if (rc == TSR_OK)
            tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
        else
            reply_err(s->t, req, rc, &e);
        return;
    }
    j->req = req;
    j->lsn = lsn;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Answers every job of the list (rc: the log's verdict on all of them,
 * e its error) and frees them. */
static void reply_jobs(tsr_txn_server_t *s, job_t *j, tsr_status_t rc, const tsr_error_t *e)
{
    while (j) {
        job_t *n = j->next;
        if (rc == TSR_OK)
            tsr_rpc_reply(s->t, j->req, TSR_OK, NULL, 0);
        else
            reply_err(s->t, j->req, rc, e);
        tsr_mem_free(NULL, j);
        j = n;
    }
}

/* The syncer: takes every queued commit, waits once for the largest lsn
 * (the log is durable in lsn order, so that covers them all) and replies
 * to each - or, over TCP (s->handoff) when commits for the next round are
 * already queued, hands the batch to the replier, so that round's
 * fdatasync starts while these replies go out. Otherwise replying here
 * saves the wake-up of another thread: one client over TCP lost 2.2-2.7 k
 * -> 1.8-2.2 k txn/s when every batch went through the replier, and 16
 * clients over shared memory, whose replies are cheap, 7% when every batch
 * with a next round did (8 alternated pairs). A failed log is answered
 * here (the order of replies to different clients does not matter). Runs
 * until stopped with an empty queue. */
static void *syncer(void *arg)
{
    tsr_txn_server_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break; /* stopped and drained */
        job_t *batch = s->head, *last = s->tail;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        uint64_t upto = 0;
        for (job_t *j = batch; j; j = j->next)
            if (j->lsn > upto)
                upto = j->lsn;
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_status_t rc = tsr_kv_wal_commit(s->local.store->wal, upto, &e);
        pthread_mutex_lock(&s->mu);
        bool next_round = s->head != NULL;
        if (rc == TSR_OK && next_round && s->handoff) {
            if (s->reply_tail)
                s->reply_tail->next = batch;
            else
                s->reply_head = batch;
            s->reply_tail = last;
            pthread_cond_signal(&s->reply_cv);
            batch = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        reply_jobs(s, batch, rc, &e);
        tsr_kv_store_maybe_snapshot(s->local.store);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The replier: acknowledges the durable batches the syncer hands over, in
 * the order they became durable. Runs until the syncer has exited and the
 * queue is empty. */
static void *replier(void *arg)
{
    tsr_txn_server_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->reply_head && !s->reply_stop)
            pthread_cond_wait(&s->reply_cv, &s->mu);
        if (!s->reply_head)
            break; /* the syncer is gone and everything was answered */
        job_t *batch = s->reply_head;
        s->reply_head = s->reply_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        reply_jobs(s, batch, TSR_OK, NULL);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void handler(void *arg, tsr_rpc_req_t *req)
{
    tsr_txn_server_t *s = arg;
    size_t len;
    const unsigned char *p = tsr_rpc_req_data(req, &len);
    if (len >= 1 && p[0] == TXN_MSG_READ) {
        rbuf_t r = {p, len, 1, false};
        serve_read(s, req, &r);
        return;
    }
    if (len >= 1 && (p[0] == TXN_MSG_READ_MANY || p[0] == TXN_MSG_READ_SNAP)) {
        rbuf_t r = {p, len, 1, false};
        serve_read_many(s, req, &r, p[0] == TXN_MSG_READ_SNAP);
        return;
    }
    if (len >= 1 && (p[0] == TXN_MSG_COMMIT || p[0] == TXN_MSG_COMMIT_LOCKED)) {
        serve_commit(s, req);
        return;
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: unknown request");
    reply_err(s->t, req, TSR_ERR_BAD_INPUT, &e);
}

/* Stops the syncer once it drained the queue (commits already applied are
 * acknowledged once durable, or answered with the log's error), then the
 * replier once it answered what the syncer handed over, and frees s. */
static void drain_and_free(tsr_txn_server_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->syncer_started)
        pthread_join(s->syncer, NULL);
    pthread_mutex_lock(&s->mu);
    s->reply_stop = true;
    pthread_cond_broadcast(&s->reply_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->replier_started)
        pthread_join(s->replier, NULL);
    pthread_cond_destroy(&s->reply_cv);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tsr_txn_local_fini(&s->local);
    tsr_mem_free(NULL, s);
}

tsr_status_t tsr_txn_server_start(tsr_kv_store_t *store, tsr_transport_t *transport,
                                  uint16_t rpc_type, tsr_txn_server_t **out, tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = TSR_OK;
    if (!store || !transport || !out) {
        rc = TSR_ERR_INVALID_ARG;
        goto report;
    }
    tsr_txn_server_t *s = tsr_mem_calloc(NULL, 1, sizeof(*s));
    if (!s) {
        rc = TSR_ERR_NOMEM;
        goto report;
    }
    s->t = transport;
    s->handoff = tsr_transport_tcp_only(transport);
    s->rpc_type = rpc_type ? rpc_type : TSR_TXN_RPC;
    rc = tsr_txn_local_init(&s->local, store, &e);
    if (rc != TSR_OK)
        goto err_free;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->reply_cv, NULL);
    if (store->wal) { /* without a log no commit waits: no syncer */
        if (s->handoff && pthread_create(&s->replier, NULL, replier, s) != 0) {
            rc = tsr_error_set(&e, TSR_ERR_INTERNAL, "txn: pthread_create failed");
            goto err_stop;
        }
        s->replier_started = s->handoff;
        if (pthread_create(&s->syncer, NULL, syncer, s) != 0) {
            rc = tsr_error_set(&e, TSR_ERR_INTERNAL, "txn: pthread_create failed");
            goto err_stop;
        }
        s->syncer_started = true;
    }
    rc = tsr_rpc_register(transport, s->rpc_type, handler, s, &e);
    if (rc != TSR_OK)
        goto err_stop;
    *out = s;
    return TSR_OK;

err_stop:
    drain_and_free(s);
    goto report;
err_free:
    tsr_mem_free(NULL, s);
report:
    if (xerr && xerr->status == TSR_OK) {
        xerr->status = rc;
        snprintf(xerr->message, sizeof(xerr->message), "%s",
                 e.status != TSR_OK ? e.message : tsr_status_str(rc));
    }
    return rc;
}

void tsr_txn_server_stop(tsr_txn_server_t *s)
{
    if (!s)
        return;
    /* Call from the progressing thread or with progress stopped (as
     * tsr_rpc_unregister asks): no handler runs on s after this. */
    tsr_rpc_unregister(s->t, s->rpc_type, NULL);
    drain_and_free(s);
}
