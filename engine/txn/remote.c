/*
 * remote.c - transactions on a store in another process: the client side of
 * tsr_txn_db_remote and the owner's tsr_txn_server.
 *
 * The client keeps its read and write sets itself (txn.c); it reads each
 * first read of a key one-sided (or calls the owner for it) and calls once
 * to commit, sending both sets. The first reads of one tsr_txn_get_many
 * (tsr_txn_remote_read_many) go out together: the one-sided ones - one
 * table or several - through tsr_kv_remote_read_many (engine/kv/
 * remote_many.c), every key's window read of a round posted at once and
 * reaped by one wait, so 2-3 reads cost one round trip, not 2-3; the
 * value is taken whole from the accepted slot copy (a slot holds its whole
 * value), with the copy's version, as the single read (rma_read) records
 * it. Reads of tables without descriptors go by call, one each. At
 * commit the owner runs the same commit protocol a local transaction runs
 * (commit.c) on its own store, so the locks, the validation, the commit
 * record and the apply all happen in the owner's process. A client that
 * dies at any point, mid-commit included, therefore leaves no lock behind:
 * the owner's commit runs to its end (applied and logged, or aborted and
 * unlocked) whether the client is still there to hear the answer or not.
 *
 * Wire format (one RPC type; all integers little-endian):
 *
 *   READ    u8 1, u16 table length, table, u32 klen, key
 *           reply TSR_OK: u8 found, u64 version, value; errors: status + text
 *   COMMIT  u8 2, u32 ntables, u32 nreads, u32 nwrites,
 *           ntables x [u16 length, name],
 *           nreads  x [u32 table, u32 klen, key, u64 version read],
 *           nwrites x [u32 table, u8 delete, u32 klen, key, u32 vlen, value,
 *                      u16 lock length, lock name, u64 token]
 *           reply: the commit's status, with an error text when not TSR_OK
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
 * order) and replies to all of them. So however many clients commit at
 * once, they share one fdatasync per round (a pool of threads each waiting
 * for its own commit would share at most one per thread), the progress
 * thread never waits for a disk, and a commit is acknowledged only once its
 * record is durable. Stopping the server drains the queue: every commit
 * already applied is acknowledged once durable, or answered with the log's
 * error.
 */
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "remote_int.h"
#include "txn_internal.h"

#define NAME_CAP (TSR_KV_NAME_MAX + 1)

/* ---- encoding ---------------------------------------------------------------------------- */

typedef struct wbuf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} wbuf_t;

static void put_bytes(wbuf_t *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (tsr_mem_grow(NULL, (void **)&b->p, &b->cap, b->len + n, 1) != 0) {
        b->oom = true;
        return;
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u8(wbuf_t *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put_bytes(b, &c, 1);
}

static void put_u16(wbuf_t *b, uint32_t v)
{
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put_bytes(b, c, 2);
}

static void put_u32(wbuf_t *b, uint32_t v)
{
    unsigned char c[4];
    kv_put32(c, v);
    put_bytes(b, c, 4);
}

static void put_u64(wbuf_t *b, uint64_t v)
{
    unsigned char c[8];
    kv_put64(c, v);
    put_bytes(b, c, 8);
}

/* A bounds-checked reader: any short read sets bad and yields zeros. */
typedef struct rbuf {
    const unsigned char *p;
    size_t len, off;
    bool bad;
} rbuf_t;

static const unsigned char *take(rbuf_t *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t get_u8(rbuf_t *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

static uint32_t get_u16(rbuf_t *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : 0;
}

static uint32_t get_u32(rbuf_t *r)
{
    const unsigned char *p = take(r, 4);
    return p ? kv_get32(p) : 0;
}

static uint64_t get_u64(rbuf_t *r)
{
    const unsigned char *p = take(r, 8);
    return p ? kv_get64(p) : 0;
}

/* ---- client --------------------------------------------------------------------------------- */

tsr_status_t tsr_txn_db_remote(tsr_transport_t *transport, tsr_peer_t *owner, uint16_t rpc_type,
                               int timeout_ms, tsr_txn_db_t **out, tsr_txn_err_t *xerr)
{
    if (!transport || !owner || !out) {
        if (xerr && xerr->status == TSR_OK) {
            xerr->status = TSR_ERR_INVALID_ARG;
            snprintf(xerr->message, sizeof(xerr->message), "txn: bad arguments");
        }
        return TSR_ERR_INVALID_ARG;
    }
    tsr_txn_db_t *db = tsr_mem_calloc(NULL, 1, sizeof(*db));
    if (!db) {
        if (xerr && xerr->status == TSR_OK) {
            xerr->status = TSR_ERR_NOMEM;
            snprintf(xerr->message, sizeof(xerr->message), "txn: out of memory");
        }
        return TSR_ERR_NOMEM;
    }
    db->remote = true;
    db->t = transport;
    db->peer = owner;
    db->rpc_type = rpc_type ? rpc_type : TSR_TXN_RPC;
    db->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    if (pthread_mutex_init(&db->rmu, NULL) != 0) {
        tsr_mem_free(NULL, db);
        return TSR_ERR_INTERNAL;
    }
    *out = db;
    return TSR_OK;
}

void tsr_txn_remote_fini(tsr_txn_db_t *db)
{
    for (size_t i = 0; i < db->nrtabs; i++) {
        tsr_kv_remote_close(db->rtabs[i].r);
        tsr_mem_free(NULL, db->rtabs[i].name);
    }
    tsr_mem_free(NULL, db->rtabs);
    tsr_kv_remote_scratch_free(&db->many);
    pthread_mutex_destroy(&db->rmu);
}

/* The reader of a table (rmu held): opened on first use; NULL reader when
 * the owner serves no descriptors (reads go by RPC then). */
static tsr_status_t reader_of(tsr_txn_db_t *db, const char *table, txn_rtab_t **out,
                              tsr_error_t *err)
{
    for (size_t i = 0; i < db->nrtabs; i++)
        if (strcmp(db->rtabs[i].name, table) == 0) {
            *out = &db->rtabs[i];
            return TSR_OK;
        }
    if (tsr_mem_grow(NULL, (void **)&db->rtabs, &db->rtcap, db->nrtabs + 1, sizeof(*db->rtabs)) !=
        0)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    tsr_kv_remote_t *r = NULL;
    tsr_kv_err_t ke = {0};
    tsr_status_t rc = tsr_kv_remote_open(db->t, db->peer, table, 0, db->timeout_ms, &r, &ke);
    if (rc != TSR_OK && rc != TSR_ERR_UNSUPPORTED)
        return tsr_error_set(err, rc, "txn: %s", ke.message);
    char *name = tsr_mem_strdup(NULL, table);
    if (!name) {
        tsr_kv_remote_close(r);
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    }
    db->rtabs[db->nrtabs] = (txn_rtab_t){name, r};
    *out = &db->rtabs[db->nrtabs++];
    return TSR_OK;
}

/* A one-sided versioned read into a fresh buffer of the value's size. */
static tsr_status_t rma_read(tsr_txn_db_t *db, tsr_kv_remote_t *r, const void *key, uint32_t klen,
                             unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_error_t *err)
{
    size_t cap = 256;
    unsigned char *buf = NULL;
    for (;;) {
        unsigned char *nb = tsr_mem_alloc(NULL, cap);
        if (!nb) {
            tsr_mem_free(NULL, buf);
            return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        }
        tsr_mem_free(NULL, buf);
        buf = nb;
        size_t vl = 0;
        tsr_kv_err_t ke = {0};
        tsr_status_t rc = tsr_kv_remote_get_ver(r, key, klen, buf, cap, &vl, ver, &ke);
        atomic_fetch_add(&db->reads_rma, 1);
        if (rc == TSR_ERR_NOT_FOUND) {
            tsr_mem_free(NULL, buf);
            *ver = KV_TXN_ABSENT;
            return rc;
        }
        if (rc != TSR_OK) {
            tsr_mem_free(NULL, buf);
            return tsr_error_set(err, rc, "txn: %s", ke.message);
        }
        if (vl <= cap) { /* whole: version and value from one copy */
            *val = buf;
            *vlen = (uint32_t)vl;
            return TSR_OK;
        }
        cap = vl; /* read again, whole this time (maybe a newer version) */
    }
}

/* One call; a failed call's error text (if the owner sent one) goes to err. */
static tsr_status_t call(tsr_txn_db_t *db, const wbuf_t *b, tsr_rpc_msg_t *reply, tsr_error_t *err)
{
    if (b->oom)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory for a request");
    tsr_status_t rc =
        tsr_rpc_call(db->t, db->peer, db->rpc_type, b->p, b->len, db->timeout_ms, reply, err);
    if (rc != TSR_OK && reply->data && reply->len > 0) {
        size_t n = strnlen(reply->data, reply->len);
        tsr_error_set(err, rc, "%.*s", (int)n, (const char *)reply->data);
    }
    return rc;
}

tsr_status_t tsr_txn_remote_read(tsr_txn_db_t *db, const char *table, const void *key,
                                 uint32_t klen, unsigned char **val, uint32_t *vlen, uint64_t *ver,
                                 tsr_error_t *err)
{
    *val = NULL;
    *vlen = 0;
    *ver = 0;
    pthread_mutex_lock(&db->rmu);
    txn_rtab_t *rt;
    tsr_status_t rc = reader_of(db, table, &rt, err);
    if (rc == TSR_OK && rt->r)
        rc = rma_read(db, rt->r, key, klen, val, vlen, ver, err);
    bool by_rpc = rc == TSR_OK && !rt->r; /* the owner serves no descriptors */
    pthread_mutex_unlock(&db->rmu);
    if (!by_rpc)
        return rc;
    atomic_fetch_add(&db->reads_rpc, 1);
    wbuf_t b = {0};
    put_u8(&b, TXN_MSG_READ);
    put_u16(&b, (uint32_t)strlen(table));
    put_bytes(&b, table, strlen(table));
    put_u32(&b, klen);
    put_bytes(&b, key, klen);
    tsr_rpc_msg_t reply = {0};
    rc = call(db, &b, &reply, err);
    tsr_mem_free(NULL, b.p);
    if (rc != TSR_OK)
        goto out;
    rbuf_t r = {reply.data, reply.len, 0, false};
    uint32_t found = get_u8(&r);
    uint64_t v = get_u64(&r);
    if (r.bad) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: short read reply");
        goto out;
    }
    if (!found) {
        *ver = KV_TXN_ABSENT;
        rc = TSR_ERR_NOT_FOUND;
        goto out;
    }
    size_t n = reply.len - r.off;
    unsigned char *c = tsr_mem_alloc(NULL, n ? n : 1);
    if (!c) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        goto out;
    }
    if (n)
        memcpy(c, reply.data + r.off, n);
    *val = c;
    *vlen = (uint32_t)n;
    *ver = v;
out:
    tsr_rpc_msg_release(db->t, &reply);
    return rc;
}

/* How a key of a batch is read. */
enum { BY_NONE = 0, BY_RMA = 1, BY_RPC = 2 };

/* The reads of a batch (rmu held): each key's reader opened (an unknown
 * table fails its reads only), then the one-sided ones - every key's window
 * reads in one tsr_rma_get_many per round over all the readers involved;
 * one key alone takes the single read's path. by[k] says which keys are
 * left to read by call. Readers are collected only once all are open:
 * opening one may move db->rtabs. */
static void rma_read_many(tsr_txn_db_t *db, txn_fetch_t *f, unsigned char *by, size_t n,
                          tsr_error_t *err)
{
    for (size_t k = 0; k < n; k++) {
        txn_rtab_t *rt = NULL;
        f[k].st = reader_of(db, f[k].table, &rt, err);
        by[k] = f[k].st != TSR_OK ? BY_NONE : rt->r ? BY_RMA : BY_RPC;
    }
    txn_batch_t b;
    tsr_txn_batch_init(&b, n, false);
    for (size_t k = 0; k < n; k++) {
        if (by[k] != BY_RMA)
            continue;
        txn_rtab_t *rt = NULL;
        (void)reader_of(db, f[k].table, &rt, err); /* open already: a lookup */
        tsr_kv_remote_t *r = rt->r;
        if (f[k].klen > r->max_key) /* as the single read: this key only */
            f[k].st = tsr_error_set(err, TSR_ERR_INVALID_ARG, "txn: key too long for table %s",
                                    f[k].table);
        else if (b.oom)
            f[k].st = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
        else
            tsr_txn_batch_add(&b, r, &f[k]);
    }
    if (b.nb == 1) {
        txn_fetch_t *x = b.of[0];
        x->st = rma_read(db, b.rd[0], x->key, x->klen, &x->val, &x->vlen, &x->ver, err);
    } else if (b.nb > 1) {
        atomic_fetch_add(&db->reads_rma, b.nb);
        tsr_txn_batch_read(&b, &db->many, err);
    }
    tsr_txn_batch_fini(&b);
}

void tsr_txn_remote_read_many(tsr_txn_db_t *db, txn_fetch_t *f, size_t n, tsr_error_t *err)
{
    unsigned char by_stack[TXN_BATCH_STACK];
    unsigned char *by = n > TXN_BATCH_STACK ? tsr_mem_alloc(NULL, n) : by_stack;
    for (size_t k = 0; k < n; k++) {
        f[k].val = NULL;
        f[k].vlen = 0;
        f[k].ver = 0;
        f[k].st = by ? TSR_OK : tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    }
    if (!by)
        return;
    pthread_mutex_lock(&db->rmu);
    rma_read_many(db, f, by, n, err);
    pthread_mutex_unlock(&db->rmu);
    /* tables whose owner serves no descriptors: one call each */
    for (size_t k = 0; k < n; k++)
        if (by[k] == BY_RPC) {
            tsr_error_t e;
            tsr_error_clear(&e);
            f[k].st = tsr_txn_remote_read(db, f[k].table, f[k].key, f[k].klen, &f[k].val,
                                          &f[k].vlen, &f[k].ver, &e);
            if (f[k].st != TSR_OK && !(f[k].st == TSR_ERR_NOT_FOUND && f[k].ver == KV_TXN_ABSENT))
                tsr_error_set(err, f[k].st, "%s", e.message);
        }
    if (by != by_stack)
        tsr_mem_free(NULL, by);
}

tsr_status_t tsr_txn_remote_commit(tsr_txn_db_t *db, const txn_sets_t *s, tsr_error_t *err)
{
    wbuf_t b = {0};
    put_u8(&b, TXN_MSG_COMMIT);
    put_u32(&b, s->ntabs);
    put_u32(&b, (uint32_t)s->nreads);
    put_u32(&b, (uint32_t)s->nwrites);
    for (uint32_t i = 0; i < s->ntabs; i++) {
        put_u16(&b, (uint32_t)strlen(s->tnames[i]));
        put_bytes(&b, s->tnames[i], strlen(s->tnames[i]));
    }
    for (size_t i = 0; i < s->nreads; i++) {
        const txn_entry_t *e = &s->reads[i];
        put_u32(&b, e->tab);
        put_u32(&b, e->klen);
        put_bytes(&b, e->key, e->klen);
        put_u64(&b, e->ver);
    }
    for (size_t i = 0; i < s->nwrites; i++) {
        const txn_entry_t *e = &s->writes[i];
        size_t ll = e->lock ? strlen(e->lock) : 0;
        put_u32(&b, e->tab);
        put_u8(&b, e->del);
        put_u32(&b, e->klen);
        put_bytes(&b, e->key, e->klen);
        put_u32(&b, e->del ? 0 : e->vlen);
        put_bytes(&b, e->val, e->del ? 0 : e->vlen);
        put_u16(&b, (uint32_t)ll);
        put_bytes(&b, e->lock, ll);
        put_u64(&b, e->token);
    }
    tsr_rpc_msg_t reply = {0};
    tsr_status_t rc = call(db, &b, &reply, err);
    tsr_mem_free(NULL, b.p);
    tsr_rpc_msg_release(db->t, &reply);
    return rc;
}

/* ---- server ------------------------------------------------------------------------------------
 */

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
    pthread_mutex_t mu; /* guards head, tail, stop */
    pthread_cond_t cv;
    job_t *head, *tail; /* waiting for durability, in arrival order */
    bool stop;
    pthread_t syncer;
    bool syncer_started;
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
    if (b.oom) {
        tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
        reply_err(s->t, req, TSR_ERR_NOMEM, &e);
    } else {
        tsr_rpc_reply(s->t, req, TSR_OK, b.p, b.len);
    }
    tsr_mem_free(NULL, b.p);
}

/* Decodes a commit request into sets whose keys/values point into the
 * message (the entries' pointers are not owned: freed by free_sets only). */
static tsr_status_t decode_commit(rbuf_t *r, txn_sets_t *out, tsr_error_t *err)
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
        if (r->bad || e->tab >= nt)
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
    tsr_status_t rc = decode_commit(&r, &sets, &e);
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

/* The syncer: takes every queued commit, waits once for the largest lsn
 * (the log is durable in lsn order, so that covers them all), replies to
 * each. Runs until stopped with an empty queue. */
static void *syncer(void *arg)
{
    tsr_txn_server_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head)
            break; /* stopped and drained */
        job_t *batch = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        uint64_t upto = 0;
        for (job_t *j = batch; j; j = j->next)
            if (j->lsn > upto)
                upto = j->lsn;
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_status_t rc = tsr_kv_wal_commit(s->local.store->wal, upto, &e);
        for (job_t *j = batch; j;) {
            job_t *n = j->next;
            if (rc == TSR_OK)
                tsr_rpc_reply(s->t, j->req, TSR_OK, NULL, 0);
            else
                reply_err(s->t, j->req, rc, &e);
            tsr_mem_free(NULL, j);
            j = n;
        }
        tsr_kv_store_maybe_snapshot(s->local.store);
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
    if (len >= 1 && p[0] == TXN_MSG_COMMIT) {
        serve_commit(s, req);
        return;
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: unknown request");
    reply_err(s->t, req, TSR_ERR_BAD_INPUT, &e);
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
    s->rpc_type = rpc_type ? rpc_type : TSR_TXN_RPC;
    rc = tsr_txn_local_init(&s->local, store, &e);
    if (rc != TSR_OK)
        goto err_free;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (store->wal) { /* without a log no commit waits: no syncer */
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
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->syncer_started)
        pthread_join(s->syncer, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tsr_txn_local_fini(&s->local);
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
    /* the syncer drains the queue before it exits: commits already applied
     * are acknowledged once durable (or answered with the log's error) */
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->syncer_started)
        pthread_join(s->syncer, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tsr_txn_local_fini(&s->local);
    tsr_mem_free(NULL, s);
}
