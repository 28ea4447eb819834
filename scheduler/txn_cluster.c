/*
 * txn_cluster.c - transactions on a cluster's kv tables for programs
 * (include/tessera/txn.h, tsr_txn_db_cluster; docs/kv.md "On a cluster",
 * Transactions): a backend of engine/txn's db (txn_internal.h,
 * tsr_txn_db_backend) over a scheduler client (client.c).
 *
 * engine/txn keeps the read and write sets (txn.c); this file only carries
 * its two kinds of calls (kv_msg.h):
 *   read    one-sided (below), else TGET: the scheduler routes the key to
 *           its partition's primary, which answers the value and its
 *           version (epoch-mixed, opaque here), or "absent".
 *   commit  TXN: the tables the entries use, the reads (key, version or
 *           TSR_KV_TXN_ABSENT) and the writes; the scheduler validates and
 *           applies (sched_txn.c). A transaction with no entries commits
 *           without a call; a read-only one is validated like any other.
 * The scheduler client is one connection; calls from several threads are
 * serialized by a mutex. Fenced writes (a lock token) go with the commit
 * as (lock, token) pairs; the scheduler's fence checks them.
 *
 * One-sided reads (default; TSR_TXN_ONE_SIDED=0 turns them off): the
 * client asks the scheduler once per table for its VIEW (each partition's
 * primary worker listener, node id and store table name), dials that
 * worker on a transport of its own and proves the cluster token there
 * (handshake.h, as lock clients and peer workers do), opens a kv reader of
 * the partition's table (engine/kv/remote.c; the worker serves it,
 * worker_kv.c) and reads the key's slots by RMA:
 * tsr_kv_remote_get_versioned answers the slot version XOR the table's
 * version mask from the worker's descriptor, which is exactly what TGET
 * would have answered (worker_txn.c). Connections and readers are cached.
 * Any failure (no view, no usable primary, the worker unreachable, the
 * partition never written there, a torn slot that stays locked, a peer
 * gone) falls back to TGET for that read, and makes the next read refetch
 * the view; a partition that failed is not tried one-sided again for
 * RETRY_MS (RETRY_DIAL_MS after a failed dial; a failed VIEW is not
 * asked again for RETRY_DIAL_MS either, so a dead address or an older
 * scheduler costs no stall per read). A commit that fails (a conflict included) marks every view
 * stale, and views are refetched every VIEW_MAX_AGE_MS anyway, so a client
 * never keeps reading a worker that stopped being the primary.
 *
 * Why a stale read is safe: the read is only recorded; TVALIDATE runs at
 * commit on the partition's current primary with the write turns held
 * (sched_txn.c). A version read on another replica, on a worker before a
 * restart, or from a dropped or reloaded copy carries another mask, so it
 * never matches (a conflict, retried by tsr_txn_run); an "absent" read is
 * validated as "still absent" on the primary whatever answered it. So a
 * stale one-sided read can cause a spurious conflict, never a wrong commit.
 * Reads run one at a time per db (rmu: a kv reader is single-threaded).
 *
 * Several first reads at once (tsr_txn_get_many, the backend's read_many):
 * the readers of every key's partition are opened first, then all the
 * keys that have one are read by one tsr_kv_remote_read_many - their
 * window reads, on one worker or several (one transport: rt), posted
 * together per round; what that call leaves undecided (a failure) marks
 * its partition as a failed single read does and, like every key without
 * a reader, is read by TGET.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "common.h"
#include "core/hash.h"
#include "handshake.h"
#include "kv_msg.h"
#include "proto.h"
#include "remote_int.h"
#include "scheduler.h"
#include "tessera/txn.h"
#include "transport.h"
#include "txn_internal.h"

#define VIEW_MAX_AGE_MS 2000
#define RETRY_MS 100
#define RETRY_DIAL_MS 1000 /* after a failed dial or view: no stall per read */
#define MAX_CONNS 64
#define STORE_NAME_MAX (TSR_KV_TABLE_NAME_MAX + 48)

/* A proven connection to a worker's listener. */
typedef struct rconn {
    char host[128];
    uint32_t port, node_id;
    tsr_peer_t *peer; /* NULL: free */
} rconn_t;

/* A partition as the view shows it, and its reader. */
typedef struct cpart {
    char host[128]; /* "" : no usable primary */
    uint32_t port, node_id;
    char store[STORE_NAME_MAX];
    tsr_kv_remote_t *r; /* NULL: not open */
    tsr_peer_t *peer;   /* r's connection */
    uint64_t retry_ms;  /* no one-sided read before */
} cpart_t;

typedef struct rtab {
    char name[TSR_KV_TABLE_NAME_MAX + 1];
    uint64_t gen;
    uint32_t nparts;
    cpart_t *parts;
    uint64_t fetched_ms;
    uint64_t retry_ms; /* a failed view: no VIEW call before (reads fall back) */
    bool stale;        /* refetch the view before the next read */
} rtab_t;

typedef struct txn_cluster {
    tsr_client_t *c;
    pthread_mutex_t mu; /* the scheduler client */
    tsr_txn_db_t *db;   /* for its read counters */
    int tmo;
    /* one-sided reads (rmu guards all below) */
    pthread_mutex_t rmu;
    bool one_sided;
    tsr_token_t tok;
    tsr_transport_t *rt;
    rconn_t conns[MAX_CONNS];
    rtab_t *tabs;
    size_t ntabs, tcap;
    void *many; /* read_many's arrays (engine/kv/remote_int.h) */
} txn_cluster_t;

static void copy_err(tsr_error_t *err, const tsr_error_t *e)
{
    tsr_error_set(err, e->status, "%s", e->message[0] ? e->message : tsr_status_str(e->status));
    if (e->hint[0])
        tsr_error_hint(err, "%s", e->hint);
}

/* One TSR_MSG_KV call; the reply (may be NULL) is the caller's to free. */
static tsr_status_t call(txn_cluster_t *tc, const tsr_wbuf_t *b, void **rep, size_t *rlen,
                         tsr_error_t *err)
{
    if (b->failed)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    tsr_error_t e;
    tsr_error_clear(&e);
    pthread_mutex_lock(&tc->mu);
    tsr_status_t rc = tsr_client_call(tc->c, TSR_MSG_KV, b->data, b->len, rep, rlen, &e);
    pthread_mutex_unlock(&tc->mu);
    if (rc != TSR_OK)
        copy_err(err, &e);
    return rc;
}

/* A read through the scheduler (TGET). */
static tsr_status_t sched_read(txn_cluster_t *tc, const char *table, const void *key, uint32_t klen,
                               unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_error_t *err)
{
    *val = NULL;
    *vlen = 0;
    *ver = 0; /* with NOT_FOUND: an unknown table */
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_TGET);
    tsr_wbuf_str(&b, table);
    tsr_wbuf_u32(&b, klen);
    tsr_wbuf_bytes(&b, key, klen);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_status_t rc = call(tc, &b, &rep, &rlen, err);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK)
        return rc;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, rep, rlen);
    uint8_t found = tsr_rbuf_u8(&r);
    uint64_t v = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    const void *p = r.bad ? NULL : tsr_rbuf_bytes(&r, n);
    if (!tsr_rbuf_done(&r)) {
        rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "txn: malformed read reply from the cluster");
    } else if (!found) {
        *ver = KV_TXN_ABSENT;
        rc = TSR_ERR_NOT_FOUND;
    } else if (!(*val = tsr_mem_alloc(NULL, n ? n : 1))) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    } else {
        if (n)
            memcpy(*val, p, n);
        *vlen = n;
        *ver = v;
    }
    tsr_mem_free(NULL, rep);
    return rc;
}

/* ---- one-sided reads (rmu held) --------------------------------------------------- */

static void part_close(cpart_t *p)
{
    tsr_kv_remote_close(p->r);
    p->r = NULL;
    p->peer = NULL;
}

/* Lets go of a connection and of every reader over it. */
static void conn_drop(txn_cluster_t *tc, rconn_t *c)
{
    for (size_t i = 0; i < tc->ntabs; i++)
        for (uint32_t p = 0; p < tc->tabs[i].nparts; p++)
            if (tc->tabs[i].parts[p].peer == c->peer)
                part_close(&tc->tabs[i].parts[p]);
    tsr_peer_forget(tc->rt, c->peer);
    c->peer = NULL;
}

/* The proven connection to the worker at host:port with node_id (dialled
 * and proven when there is none, or the cached one went down). */
static tsr_peer_t *conn_get(txn_cluster_t *tc, const char *host, uint32_t port, uint32_t node_id)
{
    rconn_t *free_slot = NULL;
    for (size_t i = 0; i < MAX_CONNS; i++) {
        rconn_t *c = &tc->conns[i];
        if (!c->peer) {
            free_slot = free_slot ? free_slot : c;
            continue;
        }
        if (c->node_id != node_id || c->port != port || strcmp(c->host, host) != 0)
            continue;
        if (tsr_peer_is_up(c->peer))
            return c->peer;
        conn_drop(tc, c);
        free_slot = free_slot ? free_slot : c;
    }
    if (!free_slot) { /* all taken: let the first go (its readers reopen later) */
        free_slot = &tc->conns[0];
        conn_drop(tc, free_slot);
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_peer_t *peer = NULL;
    int tmo = tc->tmo < 2000 ? tc->tmo : 2000;
    if (tsr_transport_connect(tc->rt, host, (uint16_t)port, tmo, &peer, &e) != TSR_OK)
        return NULL;
    char who[300];
    snprintf(who, sizeof(who), "worker at %s:%u", host, port);
    if (tsr_peer_node_id(peer) != node_id || /* another process took the address */
        tsr_hs_dial(tc->rt, peer, &tc->tok, TSR_ROLE_CLIENT, NULL, 0, tmo, who, &e) != TSR_OK) {
        tsr_peer_forget(tc->rt, peer);
        return NULL;
    }
    snprintf(free_slot->host, sizeof(free_slot->host), "%s", host);
    free_slot->port = port;
    free_slot->node_id = node_id;
    free_slot->peer = peer;
    return peer;
}

/* Fetches table's VIEW into *t (readers of partitions whose primary or
 * store table changed are closed). false: no view (the fallback reads). */
static bool view_fetch(txn_cluster_t *tc, rtab_t *t)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_VIEW);
    tsr_wbuf_str(&b, t->name);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = call(tc, &b, &rep, &rlen, &e);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK)
        return false;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, rep, rlen);
    uint64_t gen = tsr_rbuf_u64(&r);
    uint32_t nparts = tsr_rbuf_u32(&r);
    (void)tsr_rbuf_u32(&r); /* max_key, max_value: the reader learns them */
    (void)tsr_rbuf_u32(&r);
    bool ok = !r.bad && nparts > 0 && nparts <= TSR_KV_MAX_PARTITIONS;
    if (ok && (gen != t->gen || nparts != t->nparts)) { /* another table: start afresh */
        for (uint32_t p = 0; p < t->nparts; p++)
            part_close(&t->parts[p]);
        tsr_mem_free(NULL, t->parts);
        t->parts = tsr_mem_calloc(NULL, nparts, sizeof(*t->parts));
        t->nparts = t->parts ? nparts : 0;
        t->gen = gen;
        ok = t->parts != NULL;
    }
    for (uint32_t p = 0; ok && p < nparts; p++) {
        const char *host = tsr_rbuf_str(&r);
        uint32_t port = tsr_rbuf_u32(&r), node = tsr_rbuf_u32(&r);
        const char *store = tsr_rbuf_str(&r);
        if (r.bad || strlen(host) >= sizeof(t->parts[p].host) || strlen(store) >= STORE_NAME_MAX) {
            ok = false;
            break;
        }
        cpart_t *rp = &t->parts[p];
        if (strcmp(rp->host, host) != 0 || rp->port != port || rp->node_id != node ||
            strcmp(rp->store, store) != 0) {
            part_close(rp);
            snprintf(rp->host, sizeof(rp->host), "%s", host);
            rp->port = port;
            rp->node_id = node;
            snprintf(rp->store, sizeof(rp->store), "%s", store);
            rp->retry_ms = 0;
        }
    }
    ok = ok && tsr_rbuf_done(&r);
    tsr_mem_free(NULL, rep);
    t->fetched_ms = tsr_sched_now_ms();
    t->stale = !ok;
    return ok;
}

/* The cached view of table (fetched or refreshed as needed), or NULL. */
static rtab_t *view_get(txn_cluster_t *tc, const char *table)
{
    if (strlen(table) > TSR_KV_TABLE_NAME_MAX)
        return NULL;
    rtab_t *t = NULL;
    for (size_t i = 0; i < tc->ntabs && !t; i++)
        if (strcmp(tc->tabs[i].name, table) == 0)
            t = &tc->tabs[i];
    if (!t) {
        if (tsr_mem_grow(NULL, (void **)&tc->tabs, &tc->tcap, tc->ntabs + 1, sizeof(*tc->tabs)) !=
            0)
            return NULL;
        t = &tc->tabs[tc->ntabs++];
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", table);
        t->stale = true;
    }
    uint64_t now = tsr_sched_now_ms();
    if (t->stale || now - t->fetched_ms > VIEW_MAX_AGE_MS) {
        if (now < t->retry_ms)
            return NULL;
        if (!view_fetch(tc, t)) { /* an older scheduler, an unknown table, ... */
            t->retry_ms = now + RETRY_DIAL_MS;
            return NULL;
        }
    }
    return t;
}

/* The partition of key in table with its reader open (rmu held), or NULL:
 * read it by TGET (no view, no usable primary, a partition resting after a
 * failure, the worker unreachable, the partition never written there). */
static cpart_t *part_reader(txn_cluster_t *tc, const char *table, const void *key, uint32_t klen,
                            rtab_t **tout)
{
    rtab_t *t = view_get(tc, table);
    if (!t)
        return NULL;
    cpart_t *p = &t->parts[kv_part_of(tsr_hash_bytes(key, klen), t->nparts)];
    uint64_t now = tsr_sched_now_ms();
    if (!p->host[0] || now < p->retry_ms)
        return NULL;
    if (!p->r) {
        tsr_kv_err_t ke = {0};
        tsr_peer_t *peer = conn_get(tc, p->host, p->port, p->node_id);
        /* a bounded wait: the fallback is there when the worker is slow */
        int tmo = tc->tmo < 2000 ? tc->tmo : 2000;
        if (!peer || tsr_kv_remote_open(tc->rt, peer, p->store, 0, tmo, &p->r, &ke) != TSR_OK) {
            /* unreachable, or the partition never written there (no table) */
            p->r = NULL;
            p->retry_ms = now + (peer ? RETRY_MS : RETRY_DIAL_MS);
            t->stale = true;
            return NULL;
        }
        p->peer = peer;
    }
    *tout = t;
    return p;
}

/* A one-sided read failed (peer gone, a slot that stays locked, ...):
 * start over with a fresh reader and view, later (rmu held). */
static void part_failed(rtab_t *t, cpart_t *p)
{
    part_close(p);
    p->retry_ms = tsr_sched_now_ms() + RETRY_MS;
    t->stale = true;
}

/* A one-sided read. true: answered (rc and the outputs as the backend's
 * read returns them); false: fall back to TGET. */
static bool rma_read(txn_cluster_t *tc, const char *table, const void *key, uint32_t klen,
                     unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_status_t *rc,
                     tsr_error_t *err)
{
    rtab_t *t = NULL;
    cpart_t *p = part_reader(tc, table, key, klen, &t);
    if (!p)
        return false;
    tsr_kv_err_t ke = {0};
    size_t cap = 256;
    unsigned char *buf = NULL;
    for (int attempt = 0; attempt < 4; attempt++) {
        tsr_mem_free(NULL, buf);
        if (!(buf = tsr_mem_alloc(NULL, cap))) {
            *rc = tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
            return true;
        }
        size_t vl = 0;
        uint64_t v = 0;
        bool present = false;
        if (tsr_kv_remote_get_versioned(p->r, key, klen, buf, cap, &vl, &v, &present, &ke) !=
            TSR_OK)
            break;
        if (!present) {
            tsr_mem_free(NULL, buf);
            *ver = KV_TXN_ABSENT;
            *rc = TSR_ERR_NOT_FOUND;
            return true;
        }
        if (vl <= cap) {
            *val = buf;
            *vlen = (uint32_t)vl;
            *ver = v;
            *rc = TSR_OK;
            return true;
        }
        cap = vl; /* longer than the first buffer: read again, whole */
    }
    tsr_mem_free(NULL, buf);
    part_failed(t, p);
    return false;
}

static tsr_status_t cl_read(void *arg, const char *table, const void *key, uint32_t klen,
                            unsigned char **val, uint32_t *vlen, uint64_t *ver, tsr_error_t *err)
{
    txn_cluster_t *tc = arg;
    *val = NULL;
    *vlen = 0;
    *ver = 0;
    if (tc->one_sided) {
        tsr_status_t rc = TSR_OK;
        pthread_mutex_lock(&tc->rmu);
        bool done = rma_read(tc, table, key, klen, val, vlen, ver, &rc, err);
        pthread_mutex_unlock(&tc->rmu);
        if (done) {
            if (tc->db)
                atomic_fetch_add(&tc->db->reads_rma, 1);
            return rc;
        }
    }
    if (tc->db)
        atomic_fetch_add(&tc->db->reads_rpc, 1);
    return sched_read(tc, table, key, klen, val, vlen, ver, err);
}

/* The partition that key's one-sided read would use now, its reader open,
 * or NULL (rmu held; changes nothing: the readers were opened before). */
static cpart_t *part_now(txn_cluster_t *tc, const txn_fetch_t *f, rtab_t **tout)
{
    for (size_t i = 0; i < tc->ntabs; i++)
        if (strcmp(tc->tabs[i].name, f->table) == 0 && tc->tabs[i].nparts > 0) {
            rtab_t *t = &tc->tabs[i];
            cpart_t *p = &t->parts[kv_part_of(tsr_hash_bytes(f->key, f->klen), t->nparts)];
            *tout = t;
            return p->r ? p : NULL;
        }
    return NULL;
}

/* Posts the one-sided reads of f (rmu held): every key whose partition has
 * a reader, all in one tsr_rma_get_many per round over their workers (one
 * transport: tc->rt); versions as tsr_kv_remote_get_versioned answers
 * them (slot version XOR the descriptor's mask: what TGET answers).
 * done[k] says which were answered. */
static void rma_read_many(txn_cluster_t *tc, txn_fetch_t *f, size_t n, bool *done)
{
    /* first open what is needed (opening may drop a connection and the
     * readers over it, or refetch a view), then collect what stands */
    for (size_t k = 0; k < n; k++) {
        rtab_t *t;
        /* done[] marks, for now, the keys a single read would read
         * one-sided (a usable view and reader: not a stale view whose
         * refetch failed, not a partition resting after a failure) */
        done[k] = part_reader(tc, f[k].table, f[k].key, f[k].klen, &t) != NULL;
    }
    txn_batch_t b;
    tsr_txn_batch_init(&b, n, true);
    for (size_t k = 0; k < n; k++) {
        bool usable = done[k];
        done[k] = false;
        if (!usable)
            continue;
        rtab_t *t;
        cpart_t *p = part_now(tc, &f[k], &t);
        if (p && f[k].klen <= p->r->max_key) /* else TGET answers (a key too long included) */
            tsr_txn_batch_add(&b, p->r, &f[k]);
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_txn_batch_read(&b, &tc->many, &e);
    for (size_t i = 0; i < b.nb; i++) {
        txn_fetch_t *x = b.of[i];
        size_t k = (size_t)(x - f);
        if (x->st == TSR_OK || (x->st == TSR_ERR_NOT_FOUND && x->ver == KV_TXN_ABSENT)) {
            done[k] = true;
            continue;
        }
        /* not decided: its partition starts over later, TGET answers */
        x->st = TSR_OK;
        rtab_t *t;
        cpart_t *p = part_now(tc, x, &t);
        if (p)
            part_failed(t, p);
    }
    tsr_txn_batch_fini(&b);
}

/* n first reads: the one-sided ones together (their workers read in one
 * round trip), the rest by TGET one after another. */
static void cl_read_many(void *arg, txn_fetch_t *f, size_t n, tsr_error_t *err)
{
    txn_cluster_t *tc = arg;
    bool *done = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*done));
    for (size_t k = 0; k < n; k++) {
        f[k].val = NULL;
        f[k].vlen = 0;
        f[k].ver = 0;
        f[k].st = TSR_OK;
    }
    if (tc->one_sided && done) {
        pthread_mutex_lock(&tc->rmu);
        rma_read_many(tc, f, n, done);
        pthread_mutex_unlock(&tc->rmu);
    }
    for (size_t k = 0; k < n; k++) {
        if (done && done[k]) {
            if (tc->db)
                atomic_fetch_add(&tc->db->reads_rma, 1);
            continue;
        }
        if (tc->db)
            atomic_fetch_add(&tc->db->reads_rpc, 1);
        tsr_error_t e;
        tsr_error_clear(&e);
        f[k].st =
            sched_read(tc, f[k].table, f[k].key, f[k].klen, &f[k].val, &f[k].vlen, &f[k].ver, &e);
        if (f[k].st != TSR_OK && !(f[k].st == TSR_ERR_NOT_FOUND && f[k].ver == KV_TXN_ABSENT))
            tsr_error_set(err, f[k].st, "%s", e.message);
    }
    tsr_mem_free(NULL, done);
}

static tsr_status_t cl_commit(void *arg, const txn_sets_t *sets, tsr_error_t *err)
{
    txn_cluster_t *tc = arg;
    if (sets->nreads == 0 && sets->nwrites == 0)
        return TSR_OK;
    /* only the tables the entries use (a get of an unknown table names
     * one that no entry uses): index remapped */
    uint32_t *map = tsr_mem_alloc(NULL, (sets->ntabs ? sets->ntabs : 1) * sizeof(*map));
    if (!map)
        return tsr_error_set(err, TSR_ERR_NOMEM, "txn: out of memory");
    for (uint32_t i = 0; i < sets->ntabs; i++)
        map[i] = UINT32_MAX;
    uint32_t nused = 0;
    for (size_t i = 0; i < sets->nreads + sets->nwrites; i++) {
        const txn_entry_t *e = i < sets->nreads ? &sets->reads[i] : &sets->writes[i - sets->nreads];
        if (map[e->tab] == UINT32_MAX)
            map[e->tab] = nused++;
    }
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_TXN);
    tsr_wbuf_str(&b, "");
    tsr_wbuf_u32(&b, nused);
    for (uint32_t k = 0; k < nused; k++)
        for (uint32_t i = 0; i < sets->ntabs; i++)
            if (map[i] == k)
                tsr_wbuf_str(&b, sets->tnames[i]);
    tsr_wbuf_u32(&b, (uint32_t)sets->nreads);
    for (size_t i = 0; i < sets->nreads; i++) {
        const txn_entry_t *e = &sets->reads[i];
        tsr_wbuf_u32(&b, map[e->tab]);
        tsr_wbuf_blob(&b, e->key, e->klen);
        tsr_wbuf_u64(&b, e->ver == KV_TXN_ABSENT ? TSR_KV_TXN_ABSENT : e->ver);
    }
    tsr_wbuf_u32(&b, (uint32_t)sets->nwrites);
    for (size_t i = 0; i < sets->nwrites; i++) {
        const txn_entry_t *e = &sets->writes[i];
        tsr_wbuf_u32(&b, map[e->tab]);
        tsr_wbuf_u8(&b, e->del ? 1 : 0);
        tsr_wbuf_blob(&b, e->key, e->klen);
        tsr_wbuf_blob(&b, e->val, e->del ? 0 : e->vlen);
    }
    uint32_t nfenced = 0;
    for (size_t i = 0; i < sets->nwrites; i++)
        nfenced += sets->writes[i].lock != NULL;
    if (nfenced) { /* checked by the scheduler's fence (sched_txn.c) */
        tsr_wbuf_u32(&b, nfenced);
        for (size_t i = 0; i < sets->nwrites; i++)
            if (sets->writes[i].lock) {
                tsr_wbuf_str(&b, sets->writes[i].lock);
                tsr_wbuf_u64(&b, sets->writes[i].token);
            }
    }
    tsr_mem_free(NULL, map);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_status_t rc = call(tc, &b, &rep, &rlen, err);
    tsr_wbuf_free(&b);
    tsr_mem_free(NULL, rep);
    if (rc != TSR_OK && tc->one_sided) {
        /* a conflict may come from reads of a worker that is no longer the
         * primary: the next reads ask the scheduler where the primaries are */
        pthread_mutex_lock(&tc->rmu);
        for (size_t i = 0; i < tc->ntabs; i++)
            tc->tabs[i].stale = true;
        pthread_mutex_unlock(&tc->rmu);
    }
    return rc;
}

static void cl_close(void *arg)
{
    txn_cluster_t *tc = arg;
    for (size_t i = 0; i < tc->ntabs; i++) {
        for (uint32_t p = 0; p < tc->tabs[i].nparts; p++)
            part_close(&tc->tabs[i].parts[p]);
        tsr_mem_free(NULL, tc->tabs[i].parts);
    }
    tsr_mem_free(NULL, tc->tabs);
    tsr_kv_remote_scratch_free(&tc->many);
    for (size_t i = 0; i < MAX_CONNS; i++)
        if (tc->conns[i].peer)
            tsr_peer_forget(tc->rt, tc->conns[i].peer);
    tsr_transport_destroy(tc->rt); /* NULL without one-sided reads */
    memset(&tc->tok, 0, sizeof(tc->tok));
    tsr_client_destroy(tc->c);
    pthread_mutex_destroy(&tc->rmu);
    pthread_mutex_destroy(&tc->mu);
    tsr_mem_free(NULL, tc);
}

static const txn_backend_t cluster_backend = {cl_read, cl_commit, cl_close, cl_read_many};

static tsr_status_t out_err(tsr_txn_err_t *xerr, const tsr_error_t *e)
{
    if (xerr && xerr->status == TSR_OK) {
        xerr->status = e->status;
        snprintf(xerr->message, sizeof(xerr->message), "%s%s%s", e->message,
                 e->hint[0] ? " (hint: " : "", e->hint[0] ? e->hint : "");
        if (e->hint[0] && strlen(xerr->message) + 1 < sizeof(xerr->message))
            strcat(xerr->message, ")");
    }
    return e->status;
}

tsr_status_t tsr_txn_db_cluster(const tsr_txn_cluster_params_t *params, tsr_txn_db_t **out,
                                tsr_txn_err_t *xerr)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    char host[256];
    uint16_t port = 0;
    if (!params || !out || !params->scheduler ||
        !tsr_sched_parse_addr(params->scheduler, host, sizeof(host), &port) || port == 0) {
        tsr_error_set(&e, TSR_ERR_INVALID_ARG, "txn: the scheduler address must be HOST:PORT");
        return out_err(xerr, &e);
    }
    txn_cluster_t *tc = tsr_mem_calloc(NULL, 1, sizeof(*tc));
    if (!tc) {
        tsr_error_set(&e, TSR_ERR_NOMEM, "txn: out of memory");
        return out_err(xerr, &e);
    }
    if (pthread_mutex_init(&tc->mu, NULL) != 0) {
        tsr_mem_free(NULL, tc);
        tsr_error_set(&e, TSR_ERR_INTERNAL, "txn: pthread_mutex_init failed");
        return out_err(xerr, &e);
    }
    if (pthread_mutex_init(&tc->rmu, NULL) != 0) {
        pthread_mutex_destroy(&tc->mu);
        tsr_mem_free(NULL, tc);
        tsr_error_set(&e, TSR_ERR_INTERNAL, "txn: pthread_mutex_init failed");
        return out_err(xerr, &e);
    }
    int tmo = params->timeout_ms > 0 ? params->timeout_ms : 10000;
    char token[4096];
    if (!tsr_auth_token_path(params->token_file, token, sizeof(token))) {
        pthread_mutex_destroy(&tc->rmu);
        pthread_mutex_destroy(&tc->mu);
        tsr_mem_free(NULL, tc);
        tsr_error_set(&e, TSR_ERR_AUTH, "txn: no cluster token");
        tsr_error_hint(&e, "pass a token file, or set $TESSERA_TOKEN_FILE");
        return out_err(xerr, &e);
    }
    if (tsr_client_connect(host, port, token, tmo, &tc->c, &e) != TSR_OK) {
        pthread_mutex_destroy(&tc->rmu);
        pthread_mutex_destroy(&tc->mu);
        tsr_mem_free(NULL, tc);
        return out_err(xerr, &e);
    }
    tc->tmo = tmo;
    /* one-sided reads: a transport of our own to dial the workers (its
     * calls and RMA gets progress it); without it every read is a TGET */
    const char *os = getenv("TSR_TXN_ONE_SIDED");
    if (!params->scheduler_reads && !(os && strcmp(os, "0") == 0)) {
        tsr_error_t e2;
        tsr_error_clear(&e2);
        tsr_transport_params_t tp = {.node_id = tsr_sched_node_id()};
        tc->one_sided = tsr_auth_token_load(token, &tc->tok, &e2) == TSR_OK &&
                        tsr_transport_create(NULL, &tp, &tc->rt, &e2) == TSR_OK;
    }
    if (tsr_txn_db_backend(&cluster_backend, tc, out, &e) != TSR_OK) /* closes tc */
        return out_err(xerr, &e);
    tc->db = *out;
    return TSR_OK;
}
