/*
 * remote.c - transactions on a store in another process: the client side,
 * tsr_txn_db_remote (the owner's side: server.c).
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
 * it. Reads go by call instead when the transport is TCP only (UCX would
 * emulate each one-sided get with a message the owner's worker serves;
 * tsr_txn_db_set_reads) and for tables without descriptors: the first
 * reads of one tsr_txn_get_many then go in ONE call (READ_MANY), as a
 * join reads two rows in one statement of a SQL database. At
 * commit the owner runs the same commit protocol a local transaction runs
 * (commit.c) on its own store: the validation, the commit record and the
 * apply happen in the owner's process. The locks too, unless the client
 * took them itself (tsr_txn_db_set_locks; the default where reads are
 * one-sided and atomics native): then, as in FaRM, one
 * tsr_atomic_cswap_many swaps each written key's version word (as read)
 * for this db's lock tag before the call, a key changed since fails the
 * commit with no call at all, and the owner adopts the tags
 * (COMMIT_LOCKED; docs/kv.md "One-sided locking by remote clients"). A
 * client that dies after handing its commit over holds nothing: the
 * owner's commit runs to its end (applied and logged, or aborted and
 * unlocked) whether the client is still there or not; one that dies
 * between its CAS and the call leaves tags the owner breaks after their
 * lease (1 s).
 *
 * Messages: txn_wire.h; the owner's side: server.c.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "remote_int.h"
#include "txn_internal.h"
#include "txn_wire.h"

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
    atomic_init(&db->by_call, tsr_transport_tcp_only(transport));
    atomic_init(&db->one_sided_locks, !tsr_transport_tcp_only(transport));
    /* the id in this db's lock tags: two live holders never share a tag
     * (the ms in it differ, or the lock is held), so a collision of ids
     * costs nothing; spread them anyway to tell holders apart when
     * debugging */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    db->rlock_id = (uint16_t)(((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 7 ^
                               (uintptr_t)db >> 4) * 0x9E3779B97F4A7C15ULL >> 48);
    if (pthread_mutex_init(&db->rmu, NULL) != 0) {
        tsr_mem_free(NULL, db);
        return TSR_ERR_INTERNAL;
    }
    *out = db;
    return TSR_OK;
}

/* A setting refused (why): UNSUPPORTED for a db that is not remote, else
 * INVALID_ARG; the first error is kept in xerr. */
static tsr_status_t refuse(const tsr_txn_db_t *db, const char *why, tsr_txn_err_t *xerr)
{
    tsr_status_t rc = db && !db->remote ? TSR_ERR_UNSUPPORTED : TSR_ERR_INVALID_ARG;
    if (xerr && xerr->status == TSR_OK) {
        xerr->status = rc;
        snprintf(xerr->message, sizeof(xerr->message), "%s", why);
    }
    return rc;
}

tsr_status_t tsr_txn_db_set_reads(tsr_txn_db_t *db, tsr_txn_reads_t how, tsr_txn_err_t *xerr)
{
    const char *why =
        !db           ? "txn: no db"
        : !db->remote ? "txn: only a remote db chooses how it reads"
        : how != TSR_TXN_READS_AUTO && how != TSR_TXN_READS_ONE_SIDED && how != TSR_TXN_READS_CALL
            ? "txn: unknown read mode"
            : NULL;
    if (why)
        return refuse(db, why, xerr);
    atomic_store(&db->by_call, how == TSR_TXN_READS_CALL ||
                                   (how == TSR_TXN_READS_AUTO && tsr_transport_tcp_only(db->t)));
    return TSR_OK;
}

tsr_status_t tsr_txn_db_set_locks(tsr_txn_db_t *db, tsr_txn_locks_t how, tsr_txn_err_t *xerr)
{
    const char *why = !db           ? "txn: no db"
                      : !db->remote ? "txn: only a remote db chooses who locks"
                      : how != TSR_TXN_LOCKS_AUTO && how != TSR_TXN_LOCKS_OWNER &&
                              how != TSR_TXN_LOCKS_ONE_SIDED
                          ? "txn: unknown lock mode"
                          : NULL;
    if (why)
        return refuse(db, why, xerr);
    atomic_store(&db->one_sided_locks,
                 how == TSR_TXN_LOCKS_ONE_SIDED ||
                     (how == TSR_TXN_LOCKS_AUTO && !tsr_transport_tcp_only(db->t)));
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
                             unsigned char **val, uint32_t *vlen, uint64_t *ver,
                             kv_slot_loc_t *loc, tsr_error_t *err)
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
        kv_slot_loc_t where;
        tsr_status_t rc = tsr_kv_remote_get_loc(r, key, klen, buf, cap, &vl, ver, &where, &ke);
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
            if (loc)
                *loc = where;
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
                                 kv_slot_loc_t *loc, tsr_error_t *err)
{
    *val = NULL;
    *vlen = 0;
    *ver = 0;
    if (loc)
        loc->r = NULL;
    tsr_status_t rc = TSR_OK;
    bool by_rpc = atomic_load(&db->by_call);
    if (!by_rpc) {
        pthread_mutex_lock(&db->rmu);
        txn_rtab_t *rt;
        rc = reader_of(db, table, &rt, err);
        if (rc == TSR_OK && rt->r)
            rc = rma_read(db, rt->r, key, klen, val, vlen, ver, loc, err);
        by_rpc = rc == TSR_OK && !rt->r; /* the owner serves no descriptors */
        pthread_mutex_unlock(&db->rmu);
    }
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
    if (atomic_load(&db->by_call)) {
        memset(by, BY_RPC, n);
        return;
    }
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
        x->st =
            rma_read(db, b.rd[0], x->key, x->klen, &x->val, &x->vlen, &x->ver, &x->loc, err);
    } else if (b.nb > 1) {
        atomic_fetch_add(&db->reads_rma, b.nb);
        tsr_txn_batch_read(&b, &db->many, err);
    }
    tsr_txn_batch_fini(&b);
}

/* The m keys f[idx[0..m-1]] in one READ_MANY call; with snap, a READ_SNAP
 * (unless the owner refused one before), and *snap tells whether the
 * owner found the reads one snapshot (txn_wire.h). */
static void call_read_many(tsr_txn_db_t *db, txn_fetch_t *f, const size_t *idx, size_t m,
                           bool *snap, tsr_error_t *err)
{
    atomic_fetch_add(&db->reads_rpc, m);
    bool ask = snap && !atomic_load_explicit(&db->no_snap, memory_order_relaxed);
    wbuf_t b = {0};
    put_u8(&b, ask ? TXN_MSG_READ_SNAP : TXN_MSG_READ_MANY);
    put_u32(&b, (uint32_t)m);
    for (size_t i = 0; i < m; i++) {
        const txn_fetch_t *x = &f[idx[i]];
        put_u16(&b, (uint32_t)strlen(x->table));
        put_bytes(&b, x->table, strlen(x->table));
        put_u32(&b, x->klen);
        put_bytes(&b, x->key, x->klen);
    }
    tsr_rpc_msg_t reply = {0};
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = call(db, &b, &reply, &e);
    if (ask && rc == TSR_ERR_BAD_INPUT && !b.oom) {
        /* an owner older than READ_SNAP ("unknown request"): the same
         * reads as READ_MANY, from now on */
        atomic_store(&db->no_snap, true);
        ask = false;
        b.p[0] = TXN_MSG_READ_MANY;
        tsr_rpc_msg_release(db->t, &reply);
        tsr_error_clear(&e);
        rc = call(db, &b, &reply, &e);
    }
    tsr_mem_free(NULL, b.p);
    rbuf_t r = {reply.data, reply.len, 0, false};
    for (size_t i = 0; i < m; i++) {
        txn_fetch_t *x = &f[idx[i]];
        tsr_status_t st = rc;
        uint64_t ver = 0;
        uint32_t len = 0;
        const unsigned char *bytes = NULL;
        if (rc == TSR_OK) {
            st = (tsr_status_t)get_u32(&r);
            ver = get_u64(&r);
            len = get_u32(&r);
            bytes = take(&r, len);
            if (r.bad)
                st = tsr_error_set(&e, TSR_ERR_BAD_INPUT, "txn: short read reply");
        }
        if (st == TSR_OK) {
            unsigned char *c = tsr_mem_alloc(NULL, len ? len : 1);
            if (!c) {
                st = tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
            } else {
                if (len)
                    memcpy(c, bytes, len);
                x->val = c;
                x->vlen = len;
                x->ver = ver;
            }
        } else if (st == TSR_ERR_NOT_FOUND && ver == KV_TXN_ABSENT && rc == TSR_OK) {
            x->ver = KV_TXN_ABSENT;
        } else if (rc == TSR_OK && !r.bad) { /* this key's error, with its text */
            const char *text = bytes && len ? (const char *)bytes : "";
            tsr_error_set(&e, st, "%.*s", (int)strnlen(text, len), text);
        }
        x->st = st;
        if (st != TSR_OK && !(st == TSR_ERR_NOT_FOUND && x->ver == KV_TXN_ABSENT))
            tsr_error_set(err, st, "%s", e.message);
    }
    if (ask && rc == TSR_OK) {
        unsigned verdict = get_u8(&r);
        *snap = !r.bad && r.off == r.len && verdict == 1;
    }
    tsr_rpc_msg_release(db->t, &reply);
}

void tsr_txn_remote_read_many(tsr_txn_db_t *db, txn_fetch_t *f, size_t n, bool *snap,
                              tsr_error_t *err)
{
    if (snap)
        *snap = false;
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
    /* by call (TCP only, or tables whose owner serves no descriptors): one
     * key as a single read, more in one READ_MANY */
    size_t m = 0, one = 0;
    for (size_t k = 0; k < n; k++)
        if (by[k] == BY_RPC) {
            one = k;
            m++;
        }
    size_t idx_stack[TXN_BATCH_STACK];
    size_t *idx = m > TXN_BATCH_STACK ? tsr_mem_alloc(NULL, m * sizeof(*idx)) : idx_stack;
    if (m == 1 || (m > 1 && !idx)) {
        for (size_t k = m == 1 ? one : 0; k < n; k++) {
            if (by[k] != BY_RPC)
                continue;
            tsr_error_t e;
            tsr_error_clear(&e);
            f[k].st = tsr_txn_remote_read(db, f[k].table, f[k].key, f[k].klen, &f[k].val,
                                          &f[k].vlen, &f[k].ver, NULL, &e);
            if (f[k].st != TSR_OK && !(f[k].st == TSR_ERR_NOT_FOUND && f[k].ver == KV_TXN_ABSENT))
                tsr_error_set(err, f[k].st, "%s", e.message);
        }
    } else if (m > 1) {
        m = 0;
        for (size_t k = 0; k < n; k++)
            if (by[k] == BY_RPC)
                idx[m++] = k;
        call_read_many(db, f, idx, m, m == n ? snap : NULL, err);
    }
    if (idx != idx_stack)
        tsr_mem_free(NULL, idx);
    if (by != by_stack)
        tsr_mem_free(NULL, by);
}

/* ---- one-sided locks (tsr_txn_db_set_locks) ------------------------------------------ */

/* The read of the key write w names, if any. */
static const txn_entry_t *read_of(const txn_sets_t *s, const txn_entry_t *w)
{
    for (size_t j = 0; j < s->nreads; j++) {
        const txn_entry_t *r = &s->reads[j];
        if (r->tab == w->tab && r->h == w->h && r->klen == w->klen &&
            (w->klen == 0 || memcmp(r->key, w->key, w->klen) == 0))
            return r;
    }
    return NULL;
}

/* Gives back the one-sided locks taken (tags[i] != 0), all at once, best
 * effort: a lock that cannot be given back is broken by the owner at its
 * lease. */
static void unlock_one_sided(tsr_txn_db_t *db, const txn_sets_t *s, const uint64_t *tags,
                             tsr_atomic_cswapv_t *ops)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nwrites; i++) {
        const txn_entry_t *r = tags[i] ? read_of(s, &s->writes[i]) : NULL;
        tsr_rkey_t *k;
        uint64_t off;
        if (r && tsr_kv_remote_loc_word(&r->loc, &k, &off))
            ops[n++] = (tsr_atomic_cswapv_t){.k = k, .offset = off, .compare = tags[i],
                                             .value = r->ver};
    }
    (void)tsr_atomic_cswap_many(db->t, ops, n, db->timeout_ms, NULL);
}

/* Locks every written key that was read one-sided (present) with a
 * compare-and-swap of its version word, from the version read to this
 * db's tag, all posted at once (one round trip); tags[i] = the tag for
 * those locked, 0 for keys left to the owner. TSR_ERR_CONFLICT (nothing
 * left locked) when a key was locked or changed since it was read. A key
 * whose region a rehash replaced since the read (MOVED) is left to the
 * owner; a failed atomic gives back what it took and leaves every key to
 * the owner (TSR_OK, no tags). ops: room for nwrites. rmu held. */
static tsr_status_t lock_one_sided(tsr_txn_db_t *db, const txn_sets_t *s, uint64_t *tags,
                                   tsr_atomic_cswapv_t *ops, size_t *nlocked, tsr_error_t *err)
{
    uint64_t tag = kv_rlock_tag(db->rlock_id, tsr_kv_rlock_now_ms());
    size_t n = 0;
    *nlocked = 0;
    for (size_t i = 0; i < s->nwrites; i++) {
        tags[i] = 0;
        const txn_entry_t *r = read_of(s, &s->writes[i]);
        tsr_rkey_t *k;
        uint64_t off;
        if (r && r->ver != KV_TXN_ABSENT && tsr_kv_remote_loc_word(&r->loc, &k, &off)) {
            ops[n++] = (tsr_atomic_cswapv_t){.k = k, .offset = off, .compare = r->ver,
                                             .value = tag};
            tags[i] = tag; /* tentatively: the op's outcome decides below */
        }
    }
    if (n == 0)
        return TSR_OK;
    tsr_status_t rc = tsr_atomic_cswap_many(db->t, ops, n, db->timeout_ms, NULL);
    bool conflict = false;
    for (size_t i = 0, o = 0; i < s->nwrites; i++) {
        if (!tags[i])
            continue;
        const tsr_atomic_cswapv_t *op = &ops[o++];
        bool won = op->status == TSR_OK && op->old == op->compare;
        if (!won)
            tags[i] = 0;
        if (!won && op->status == TSR_OK && op->old != (op->compare | KV_VER_MOVED))
            conflict = true; /* locked or changed since the read */
        *nlocked += won;
    }
    if (rc == TSR_OK && !conflict)
        return TSR_OK;
    unlock_one_sided(db, s, tags, ops);
    memset(tags, 0, s->nwrites * sizeof(*tags));
    *nlocked = 0;
    if (!conflict)
        return TSR_OK; /* an atomic failed: the owner locks them all */
    return tsr_error_set(err, TSR_ERR_CONFLICT, "txn: conflict: a written key is locked or changed");
}

tsr_status_t tsr_txn_remote_commit(tsr_txn_db_t *db, const txn_sets_t *s, tsr_error_t *err)
{
    uint64_t tags_s[16], *tags = NULL;
    tsr_atomic_cswapv_t ops_s[16], *ops = NULL;
    size_t nlocked = 0;
    tsr_status_t rc;
    if (s->nwrites && atomic_load(&db->one_sided_locks)) {
        bool small = s->nwrites <= 16;
        tags = small ? tags_s : tsr_mem_alloc(NULL, s->nwrites * sizeof(*tags));
        ops = small ? ops_s : tsr_mem_alloc(NULL, s->nwrites * sizeof(*ops));
        if (!tags || !ops) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
            goto out;
        }
        pthread_mutex_lock(&db->rmu);
        rc = lock_one_sided(db, s, tags, ops, &nlocked, err);
        pthread_mutex_unlock(&db->rmu);
        if (rc != TSR_OK)
            goto out;
        atomic_fetch_add(&db->locks_one_sided, nlocked);
    }
    wbuf_t b = {0};
    put_u8(&b, nlocked ? TXN_MSG_COMMIT_LOCKED : TXN_MSG_COMMIT);
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
        if (nlocked)
            put_u64(&b, tags[i]);
    }
    tsr_rpc_msg_t reply = {0};
    rc = call(db, &b, &reply, err);
    tsr_mem_free(NULL, b.p);
    tsr_rpc_msg_release(db->t, &reply);
    /* A commit the owner refused before taking the locks over (bad input)
     * leaves them ours: give them back. After a conflict or any later
     * failure the owner gave back or applied them; a lost reply leaves
     * them to the lease. */
    if (nlocked && rc == TSR_ERR_BAD_INPUT) {
        pthread_mutex_lock(&db->rmu);
        unlock_one_sided(db, s, tags, ops);
        pthread_mutex_unlock(&db->rmu);
    }
out:
    if (tags != tags_s)
        tsr_mem_free(NULL, tags);
    if (ops != ops_s)
        tsr_mem_free(NULL, ops);
    return rc;
}
