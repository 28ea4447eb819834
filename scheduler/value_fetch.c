/*
 * value_fetch.c - worker-to-worker value transfer, both sides (see
 * value_fetch.h for the messages and the threading).
 *
 * The cache holds at most CACHE_MAX proven connections, by producer node
 * id; the oldest is let go when a new producer needs a slot. A connection
 * whose peer went down (the producer died or restarted) is let go the next
 * time it is looked up, and the fetch dials again once: a dead producer
 * then fails the dial, which the task reports as a lost input.
 */
#include "value_fetch.h"

#include <stdio.h>
#include <string.h>

#include "handshake.h"

#define CACHE_MAX 64

typedef struct vconn {
    uint32_t node_id;
    tsr_peer_t *peer; /* NULL: free slot */
    uint64_t stamp;   /* last use, for eviction */
} vconn_t;

struct tsr_vfetch {
    tsr_mem_t *mem;
    tsr_transport_t *t;
    const tsr_token_t *tok;
    vconn_t conns[CACHE_MAX];
    uint64_t stamp;
};

tsr_status_t tsr_vfetch_create(tsr_mem_t *mem, tsr_transport_t *t, const tsr_token_t *tok,
                               tsr_vfetch_t **out)
{
    tsr_vfetch_t *vf = tsr_mem_calloc(mem, 1, sizeof(*vf));
    if (!vf)
        return TSR_ERR_NOMEM;
    vf->mem = mem;
    vf->t = t;
    vf->tok = tok;
    *out = vf;
    return TSR_OK;
}

static void conn_drop(tsr_vfetch_t *vf, vconn_t *c)
{
    if (c->peer)
        tsr_peer_forget(vf->t, c->peer);
    c->peer = NULL;
}

void tsr_vfetch_destroy(tsr_vfetch_t *vf)
{
    if (!vf)
        return;
    for (size_t i = 0; i < CACHE_MAX; i++)
        conn_drop(vf, &vf->conns[i]);
    tsr_mem_free(vf->mem, vf);
}

/* The cached, still-up connection to node_id, or NULL. */
static vconn_t *conn_find(tsr_vfetch_t *vf, uint32_t node_id)
{
    for (size_t i = 0; i < CACHE_MAX; i++) {
        vconn_t *c = &vf->conns[i];
        if (!c->peer || c->node_id != node_id)
            continue;
        if (!tsr_peer_is_up(c->peer)) {
            conn_drop(vf, c);
            return NULL;
        }
        c->stamp = ++vf->stamp;
        return c;
    }
    return NULL;
}

/* Dials and proves the token at from; the connection takes a free slot or
 * the oldest one. */
static tsr_status_t conn_open(tsr_vfetch_t *vf, const tsr_vaddr_t *from, int tmo, vconn_t **out,
                              tsr_error_t *err)
{
    char who[400];
    snprintf(who, sizeof(who), "worker %u at %s:%u", from->worker, from->host, from->port);
    tsr_peer_t *peer = NULL;
    tsr_error_t e2;
    tsr_error_clear(&e2);
    if (tsr_transport_connect(vf->t, from->host, from->port, tmo, &peer, &e2) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cannot reach %s: %s", who, e2.message);
    if (tsr_peer_node_id(peer) != from->node_id) {
        uint32_t other = tsr_peer_node_id(peer);
        tsr_peer_forget(vf->t, peer);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                             "%s: another process (node %u, not %u) answers there", who, other,
                             from->node_id);
    }
    tsr_status_t rc = tsr_hs_dial(vf->t, peer, vf->tok, TSR_ROLE_WORKER, NULL, 0, tmo, who, err);
    if (rc != TSR_OK) {
        tsr_peer_forget(vf->t, peer);
        return rc;
    }
    vconn_t *slot = &vf->conns[0];
    for (size_t i = 0; i < CACHE_MAX; i++) {
        if (!vf->conns[i].peer) {
            slot = &vf->conns[i];
            break;
        }
        if (vf->conns[i].stamp < slot->stamp)
            slot = &vf->conns[i];
    }
    conn_drop(vf, slot);
    slot->peer = peer;
    slot->node_id = from->node_id;
    slot->stamp = ++vf->stamp;
    *out = slot;
    return TSR_OK;
}

tsr_status_t tsr_vfetch_get(tsr_vfetch_t *vf, const tsr_vaddr_t *from, uint64_t job, uint32_t task,
                            int timeout_ms, tsr_rpc_msg_t *out, tsr_error_t *err)
{
    uint8_t key[12];
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, vf->mem);
    tsr_vfetch_encode_key(&b, job, task);
    if (b.failed || b.len != sizeof(key)) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    memcpy(key, b.data, sizeof(key));
    tsr_wbuf_free(&b);
    int tmo = timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000; /* dialling */
    for (int attempt = 0;; attempt++) {
        vconn_t *c = conn_find(vf, from->node_id);
        bool cached = c != NULL;
        tsr_status_t rc = TSR_OK;
        if (!c && (rc = conn_open(vf, from, tmo, &c, err)) != TSR_OK)
            return rc;
        tsr_error_t e2;
        tsr_error_clear(&e2);
        memset(out, 0, sizeof(*out));
        rc = tsr_rpc_call(vf->t, c->peer, TSR_MSG_VALUE_FETCH, key, sizeof(key), timeout_ms, out,
                          &e2);
        if (rc == TSR_OK)
            return TSR_OK;
        tsr_error_t re;
        tsr_proto_decode_error(out->data, out->len, rc, &re);
        tsr_rpc_msg_release(vf->t, out);
        if (rc == TSR_ERR_UNAVAILABLE || rc == TSR_ERR_TIMEOUT) {
            conn_drop(vf, c); /* the connection is no good any more */
            if (cached && attempt == 0)
                continue; /* a stale cached connection: dial once more */
        }
        return tsr_error_set(err, rc, "fetching value %u of job %llu from worker %u at %s:%u: %s",
                             task, (unsigned long long)job, from->worker, from->host, from->port,
                             rc == TSR_ERR_UNAVAILABLE || rc == TSR_ERR_TIMEOUT ? e2.message
                                                                                : re.message);
    }
}

/* ---- producer side ------------------------------------------------------------ */

typedef struct vserve {
    tsr_wvalues_t *vs;
    tsr_wvalue_t *v;
} vserve_t;

static void served(void *arg, tsr_status_t status)
{
    (void)status; /* the consumer reports a failed fetch itself */
    vserve_t *sv = arg;
    tsr_wvalues_release(sv->vs, sv->v);
    tsr_mem_free(NULL, sv);
}

void tsr_vfetch_serve(tsr_transport_t *t, tsr_wvalues_t *vs, tsr_rpc_req_t *req)
{
    size_t len = 0;
    const void *msg = tsr_rpc_req_data(req, &len);
    uint64_t job = 0;
    uint32_t task = 0;
    if (!tsr_vfetch_decode_key(msg, len, &job, &task)) {
        tsr_proto_reply_error(t, NULL, req, TSR_ERR_BAD_INPUT, "malformed value fetch", NULL);
        return;
    }
    const void *data = NULL;
    size_t n = 0;
    tsr_wvalue_t *v = tsr_wvalues_get(vs, job, task, &data, &n);
    if (!v) {
        char m[128];
        snprintf(m, sizeof(m), "value %u of job %llu is not here (dropped, or never kept)", task,
                 (unsigned long long)job);
        tsr_proto_reply_error(t, NULL, req, TSR_ERR_NOT_FOUND, m, NULL);
        return;
    }
    vserve_t *sv = tsr_mem_calloc(NULL, 1, sizeof(*sv));
    if (!sv) {
        tsr_wvalues_release(vs, v);
        tsr_rpc_reply(t, req, TSR_ERR_NOMEM, NULL, 0);
        return;
    }
    sv->vs = vs;
    sv->v = v;
    /* the bytes stay borrowed (a drop now only unlinks them) until sent */
    /* On an error the transport may or may not have run done (a send
     * that fails inside UCX runs it, a peer already down does not): the
     * reference is left to done, so a consumer dying at this instant can
     * keep the bytes alive until the worker exits, but nothing is freed
     * twice. */
    (void)tsr_rpc_reply_zcopy(t, req, TSR_OK, data, n, served, sv);
}

size_t tsr_vfetch_serve_drop(tsr_transport_t *t, tsr_wvalues_t *vs, tsr_rpc_req_t *req,
                             uint64_t *job, bool *whole)
{
    size_t len = 0;
    const void *msg = tsr_rpc_req_data(req, &len);
    uint32_t *tasks = NULL;
    size_t n = 0;
    *whole = false;
    if (!tsr_vfetch_decode_drop(NULL, msg, len, job, &tasks, &n)) {
        tsr_rpc_reply(t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return 0;
    }
    *whole = n == 0;
    size_t dropped = tsr_wvalues_drop(vs, *job, tasks, n);
    tsr_mem_free(NULL, tasks);
    uint8_t out[4] = {(uint8_t)dropped, (uint8_t)(dropped >> 8), (uint8_t)(dropped >> 16),
                      (uint8_t)(dropped >> 24)};
    tsr_rpc_reply(t, req, TSR_OK, out, sizeof(out));
    return dropped;
}

/* ---- payloads -------------------------------------------------------------------- */

void tsr_vfetch_encode_key(tsr_wbuf_t *b, uint64_t job, uint32_t task)
{
    tsr_wbuf_u64(b, job);
    tsr_wbuf_u32(b, task);
}

bool tsr_vfetch_decode_key(const void *msg, size_t len, uint64_t *job, uint32_t *task)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    *job = tsr_rbuf_u64(&r);
    *task = tsr_rbuf_u32(&r);
    return tsr_rbuf_done(&r);
}

void tsr_vfetch_encode_drop(tsr_wbuf_t *b, uint64_t job, const uint32_t *tasks, size_t n)
{
    tsr_wbuf_u64(b, job);
    tsr_wbuf_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        tsr_wbuf_u32(b, tasks[i]);
}

bool tsr_vfetch_decode_drop(tsr_mem_t *mem, const void *msg, size_t len, uint64_t *job,
                            uint32_t **tasks, size_t *n)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, msg, len);
    *job = tsr_rbuf_u64(&r);
    uint32_t cnt = tsr_rbuf_u32(&r);
    *tasks = NULL;
    *n = 0;
    if (r.bad || cnt > (r.len - r.pos) / 4 || (r.len - r.pos) != (size_t)cnt * 4)
        return false;
    if (cnt > 0) {
        if (!(*tasks = tsr_mem_calloc(mem, cnt, sizeof(uint32_t))))
            return false;
        for (uint32_t i = 0; i < cnt; i++)
            (*tasks)[i] = tsr_rbuf_u32(&r);
    }
    *n = cnt;
    return true;
}
