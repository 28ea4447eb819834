/*
 * rpc.c - typed request/response over UCX active messages.
 *
 * One UCX AM id (TSR_WIRE_AM_ID) carries every Tessera message; the wire
 * header (wire.h) says what it is. Requests are always sent with
 * UCP_AM_SEND_FLAG_REPLY so the receiver learns the endpoint, which names
 * the peer (and the handshake fixed its node id).
 *
 * Call ids: id = (generation << slot_bits) | slot. The slot indexes t->slots
 * directly, and the generation makes a stale id (a response arriving after
 * its call timed out, or a forged one) miss: the lookup compares the whole id.
 * Such responses are dropped and counted (stats.rx_late).
 *
 * Payloads are never copied on the way in when UCX can avoid it:
 *  - eager data that UCX lets us keep (UCP_AM_RECV_ATTR_FLAG_DATA) is handed
 *    to the handler / caller as UCX's own buffer, released later with
 *    ucp_am_data_release;
 *  - rendezvous data (large messages, UCP_AM_RECV_ATTR_FLAG_RNDV) is pulled by
 *    ucp_am_recv_data_nbx straight into the buffer the receiver will own;
 *  - only eager data UCX cannot keep (it lives in a transport's receive ring)
 *    is copied once;
 *  - small eager payloads (<= TSR_SMALL_COPY bytes) are copied even when UCX
 *    would let us keep them: a malloc and a memcpy of a few bytes cost less
 *    than keeping UCX's descriptor (the transport must then put a fresh one
 *    in its receive FIFO, and releasing it later needs the lock), and the
 *    caller's tsr_rpc_msg_release then takes no lock at all.
 *
 * Blocking calls take the transport lock once: start, poll until the
 * response (progress.c's owner fast path), collect, unlock. Their deadline
 * is fixed lazily by the polling loop, so a fast round trip reads no clock.
 * Outgoing payloads are sent from the caller's buffer (zero copy); a reply's
 * payload is copied only when its send cannot complete at once and the
 * replier did not use tsr_rpc_reply_zcopy.
 */
#include <string.h>

#include "internal.h"

/* ---- call table ----------------------------------------------------------- */

tsr_status_t tsr__rpc_init(tsr_transport_t *t, unsigned max_calls, tsr_error_t *err)
{
    unsigned bits = 1;
    while ((1u << bits) < max_calls && bits < 24)
        bits++;
    uint32_t n = 1u << bits;
    t->slot_bits = bits;
    t->slot_mask = n - 1;
    t->slots = tsr_mem_calloc(t->mem, n, sizeof(*t->slots));
    t->free_slots = tsr_mem_calloc(t->mem, n, sizeof(*t->free_slots));
    if (!t->slots || !t->free_slots) {
        tsr_mem_free(t->mem, t->slots);
        tsr_mem_free(t->mem, t->free_slots);
        t->slots = NULL;
        t->free_slots = NULL;
        return tsr_error_set(err, TSR_ERR_NOMEM, "transport: out of memory for %u calls", n);
    }
    for (uint32_t i = 0; i < n; i++)
        t->free_slots[i] = n - 1 - i; /* pop order 0, 1, 2 ... */
    t->nfree = n;
    t->call_gen = 1;
    return TSR_OK;
}

void tsr_rpc_msg_release(tsr_transport_t *t, tsr_rpc_msg_t *m)
{
    if (!m)
        return;
    if (m->ucx_desc_) {
        tsr__lock(t);
        ucp_am_data_release(t->worker, m->ucx_desc_);
        tsr__unlock(t);
    }
    if (m->heap_)
        tsr_mem_free(t->mem, m->heap_);
    memset(m, 0, sizeof(*m));
}

static void msg_release_locked(tsr_transport_t *t, tsr_rpc_msg_t *m)
{
    if (m->ucx_desc_)
        ucp_am_data_release(t->worker, m->ucx_desc_);
    if (m->heap_)
        tsr_mem_free(t->mem, m->heap_);
    memset(m, 0, sizeof(*m));
}

static tsr_call_t *call_lookup_locked(tsr_transport_t *t, uint64_t id)
{
    tsr_call_t *c = t->slots[id & t->slot_mask];
    return c && c->id == id ? c : NULL;
}

static void call_unlink_locked(tsr_transport_t *t, tsr_call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (t->pending == c)
        t->pending = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (t->slots[c->slot] == c) {
        t->slots[c->slot] = NULL;
        t->free_slots[t->nfree++] = c->slot;
    }
}

#define TSR_CACHE_MAX 256u

static void call_maybe_free_locked(tsr_transport_t *t, tsr_call_t *c)
{
    if (c->finished && c->sent && c->consumed) {
        msg_release_locked(t, &c->reply);
        tsr__peer_unref_locked(t, c->peer);
        if (t->ncall_cache < TSR_CACHE_MAX) {
            c->next = t->call_cache;
            t->call_cache = c;
            t->ncall_cache++;
        } else {
            tsr_mem_free(t->mem, c);
        }
    }
}

static tsr_call_t *call_alloc_locked(tsr_transport_t *t)
{
    tsr_call_t *c = t->call_cache;
    if (c) {
        t->call_cache = c->next;
        t->ncall_cache--;
        memset(c, 0, sizeof(*c));
        return c;
    }
    return tsr_mem_calloc(t->mem, 1, sizeof(*c));
}

static tsr_rpc_req_t *req_alloc_locked(tsr_transport_t *t)
{
    tsr_rpc_req_t *r = t->req_cache;
    if (r) {
        t->req_cache = r->next;
        t->nreq_cache--;
        memset(r, 0, sizeof(*r));
        return r;
    }
    return tsr_mem_calloc(t->mem, 1, sizeof(*r));
}

static void req_free_locked(tsr_transport_t *t, tsr_rpc_req_t *r)
{
    if (r->peer) {
        tsr__peer_unref_locked(t, r->peer);
        r->peer = NULL;
    }
    if (t->nreq_cache < TSR_CACHE_MAX) {
        r->next = t->req_cache;
        t->req_cache = r;
        t->nreq_cache++;
    } else {
        tsr_mem_free(t->mem, r);
    }
}

/* [L] Records the outcome of c (once) and hands it to its waiter. */
static void call_finish_locked(tsr_transport_t *t, tsr_call_t *c, tsr_status_t status,
                               tsr_rpc_msg_t *reply)
{
    if (c->finished) {
        if (reply)
            msg_release_locked(t, reply);
        return;
    }
    c->finished = true;
    c->status = status;
    if (reply)
        c->reply = *reply;
    call_unlink_locked(t, c);
    if (c->blocking) {
        if (c->waiter_sleeping)
            ucp_worker_signal(t->worker);
    } else {
        c->item.kind = TSR_ITEM_CALL_DONE;
        tsr__enqueue(t, &c->item);
    }
}

void tsr__rpc_fail_peer_locked(tsr_transport_t *t, tsr_peer_t *p, tsr_status_t status)
{
    tsr_call_t *c = t->pending;
    while (c) {
        tsr_call_t *next = c->next;
        if (c->peer == p)
            call_finish_locked(t, c, status, NULL);
        c = next;
    }
}

unsigned tsr__rpc_expire_locked(tsr_transport_t *t, int64_t now)
{
    unsigned n = 0;
    int64_t earliest = -1;
restart:
    for (tsr_call_t *c = t->pending; c; c = c->next) {
        if (c->deadline_ns < 0)
            continue;
        if (c->deadline_ns > now) {
            if (earliest < 0 || c->deadline_ns < earliest)
                earliest = c->deadline_ns;
            continue;
        }
        t->stats.calls_timed_out++;
        n++;
        if (!c->sent) {
            /* The request itself is still in UCX's hands (a rendezvous the
             * peer never pulled): only closing the endpoint gets it back. */
            tsr__peer_fail_locked(t, c->peer, TSR_ERR_TIMEOUT, "call timed out before sending");
            earliest = -1;
            goto restart; /* the failure finished other calls too */
        }
        call_finish_locked(t, c, TSR_ERR_TIMEOUT, NULL);
        earliest = -1;
        goto restart;
    }
    t->earliest_deadline_ns = earliest;
    return n;
}

/* ---- receiving ------------------------------------------------------------ */

typedef enum rx_target { RX_REQ = 1, RX_CALL = 2 } rx_target_t;

/* A rendezvous receive in flight: where the data goes when it lands. */
typedef struct tsr_rx {
    tsr_transport_t *t;
    rx_target_t target;
    tsr_rpc_req_t *req;  /* RX_REQ: owned here until the data is in */
    uint64_t call_id;    /* RX_CALL: looked up again at completion */
    int32_t status;      /* RX_CALL: the response's status */
    void *buf;
    size_t len;
} tsr_rx_t;

static void req_ready_locked(tsr_transport_t *t, tsr_rpc_req_t *req)
{
    /* The handler is looked up now, under the lock we hold anyway, rather
     * than by the dispatching thread with another lock round. */
    req->handler = t->handlers[req->type];
    req->handler_epoch = atomic_load_explicit(&t->handler_epoch, memory_order_relaxed);
    req->prev = NULL;
    req->next = t->reqs;
    if (t->reqs)
        t->reqs->prev = req;
    t->reqs = req;
    req->item.kind = TSR_ITEM_REQUEST;
    tsr__enqueue(t, &req->item);
}

static void rx_complete_locked(tsr_rx_t *rx, ucs_status_t st)
{
    tsr_transport_t *t = rx->t;
    tsr_rpc_msg_t m = {.data = rx->buf, .len = rx->len, .heap_ = rx->buf};
    if (rx->target == RX_REQ) {
        if (st == UCS_OK) {
            rx->req->msg = m;
            req_ready_locked(t, rx->req);
        } else {
            tsr_mem_free(t->mem, rx->buf);
            req_free_locked(t, rx->req);
        }
    } else {
        tsr_call_t *c = call_lookup_locked(t, rx->call_id);
        if (c && st == UCS_OK) {
            call_finish_locked(t, c, (tsr_status_t)rx->status, &m);
        } else {
            tsr_mem_free(t->mem, rx->buf);
            if (c)
                call_finish_locked(t, c, tsr__status_from_ucs(st), NULL);
            else
                t->stats.rx_late++;
        }
    }
    tsr_mem_free(t->mem, rx);
}

static void rx_done_cb(void *request, ucs_status_t status, size_t length, void *user_data)
{
    tsr_rx_t *rx = user_data;
    (void)length;
    rx_complete_locked(rx, status);
    ucp_request_free(request);
}

/* Eager payloads up to this size are copied out of UCX's buffer at once. */
#define TSR_SMALL_COPY 256u

/* Takes the payload of an incoming message. Returns what the AM callback must
 * return to UCX; *ready says the payload is in m now (else the rx finishes
 * it later, or it failed and was released). */
static ucs_status_t take_payload_locked(tsr_transport_t *t, void *data, size_t length,
                                        const ucp_am_recv_param_t *param, tsr_rpc_msg_t *m,
                                        tsr_rx_t *rx_tmpl, bool *ready)
{
    memset(m, 0, sizeof(*m));
    *ready = false;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        tsr_rx_t *rx = tsr_mem_alloc(t->mem, sizeof(*rx));
        void *buf = tsr_mem_alloc(t->mem, length ? length : 1);
        if (!rx || !buf) {
            tsr_mem_free(t->mem, rx);
            tsr_mem_free(t->mem, buf);
            return UCS_ERR_NO_MEMORY; /* the sender's send fails with it */
        }
        *rx = *rx_tmpl;
        rx->t = t;
        rx->buf = buf;
        rx->len = length;
        ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                                                   UCP_OP_ATTR_FIELD_USER_DATA,
                                   .cb.recv_am = rx_done_cb,
                                   .user_data = rx};
        void *r = ucp_am_recv_data_nbx(t->worker, data, buf, length, &prm);
        if (r == NULL) {
            rx_complete_locked(rx, UCS_OK);
        } else if (UCS_PTR_IS_ERR(r)) {
            rx_complete_locked(rx, UCS_PTR_STATUS(r));
        }
        /* UCX owns the descriptor now, whatever happened. */
        return UCS_OK;
    }
    if (length == 0) {
        *ready = true;
        return UCS_OK;
    }
    if (length <= TSR_SMALL_COPY) {
        void *small = tsr_mem_alloc(t->mem, length);
        if (small) {
            memcpy(small, data, length);
            m->data = small;
            m->len = length;
            m->heap_ = small;
            *ready = true;
            return UCS_OK;
        }
        /* out of memory: keep UCX's buffer below if it lets us */
    }
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_DATA) {
        m->data = data;
        m->len = length;
        m->ucx_desc_ = data;
        *ready = true;
        return UCS_INPROGRESS; /* keep UCX's buffer until released */
    }
    void *copy = tsr_mem_alloc(t->mem, length);
    if (!copy)
        return UCS_OK; /* dropped: the caller will time out */
    memcpy(copy, data, length);
    m->data = copy;
    m->len = length;
    m->heap_ = copy;
    *ready = true;
    return UCS_OK;
}

static void send_free_cb(void *request, ucs_status_t status, void *user_data);

/* [L] Sends a response header (+payload) on ep. copy: duplicate the payload
 * if the send cannot finish at once. */
#define TSR_FAST_REPLY_MAX 4096u

/* [L] fast: may try the immediate-completion path (not inside a UCX callback). */
static tsr_status_t send_response_locked(tsr_transport_t *t, tsr_peer_t *p, uint64_t call_id,
                                         uint16_t type, tsr_status_t status, const void *data,
                                         size_t len, bool copy, bool fast,
                                         void (*done)(void *, tsr_status_t), void *done_arg)
{
    if (p->state == TSR_PEER_DOWN || !p->ep)
        return TSR_ERR_UNAVAILABLE;
    if (fast && !done && len <= TSR_FAST_REPLY_MAX) {
        /* Latency path: most replies are small and leave at once (eager
         * short/bcopy). FORCE_IMM_CMPL makes UCX either finish the send
         * inside this call - so the header may live on the stack and the
         * payload need not be copied - or refuse it (NO_RESOURCE), in which
         * case the general path below runs. */
        uint8_t hdr[TSR_WIRE_HDR_LEN];
        tsr_wire_hdr_t fh = {.kind = TSR_WIRE_RESPONSE,
                             .type = type,
                             .status = status,
                             .src_node = t->node_id,
                             .call_id = call_id,
                             .payload_len = len};
        tsr_wire_hdr_encode(&fh, hdr);
        ucp_request_param_t fp = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS |
                                                  UCP_OP_ATTR_FLAG_FORCE_IMM_CMPL,
                                  .flags = UCP_AM_SEND_FLAG_REPLY};
        void *r = ucp_am_send_nbx(p->ep, TSR_WIRE_AM_ID, hdr, TSR_WIRE_HDR_LEN, data, len, &fp);
        if (r == NULL)
            return TSR_OK;
        if (UCS_PTR_IS_PTR(r)) {
            /* Not expected with FORCE_IMM_CMPL; stay correct anyway: the
             * stack header must outlive the send, so finish it here (we are
             * not inside a UCX callback on this path). */
            while (ucp_request_check_status(r) == UCS_INPROGRESS)
                ucp_worker_progress(t->worker);
            ucs_status_t rs = ucp_request_check_status(r);
            ucp_request_free(r);
            return tsr__status_from_ucs(rs);
        }
        if (UCS_PTR_STATUS(r) != UCS_ERR_NO_RESOURCE)
            return tsr__status_from_ucs(UCS_PTR_STATUS(r));
    }
    tsr_send_t *s = tsr_mem_calloc(t->mem, 1, sizeof(*s));
    if (!s)
        return TSR_ERR_NOMEM;
    tsr_wire_hdr_t h = {.kind = TSR_WIRE_RESPONSE,
                        .type = type,
                        .status = status,
                        .src_node = t->node_id,
                        .call_id = call_id,
                        .payload_len = len};
    tsr_wire_hdr_encode(&h, s->hdr);
    if (copy && len > 0) {
        s->copy = tsr_mem_alloc(t->mem, len);
        if (!s->copy) {
            tsr_mem_free(t->mem, s);
            return TSR_ERR_NOMEM;
        }
        memcpy(s->copy, data, len);
        data = s->copy;
    }
    s->t = t;
    s->done = done;
    s->done_arg = done_arg;
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                                               UCP_OP_ATTR_FIELD_USER_DATA |
                                               UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_AM_SEND_FLAG_REPLY,
                               .cb.send = send_free_cb,
                               .user_data = s};
    void *r = ucp_am_send_nbx(p->ep, TSR_WIRE_AM_ID, s->hdr, TSR_WIRE_HDR_LEN, data, len, &prm);
    if (UCS_PTR_IS_PTR(r))
        return TSR_OK; /* send_free_cb finishes */
    send_free_cb(NULL, UCS_PTR_STATUS(r), s);
    return r == NULL ? TSR_OK : tsr__status_from_ucs(UCS_PTR_STATUS(r));
}

static void send_free_cb(void *request, ucs_status_t status, void *user_data)
{
    tsr_send_t *s = user_data;
    tsr_transport_t *t = s->t;
    if (request)
        ucp_request_free(request);
    s->status = tsr__status_from_ucs(status);
    if (s->done) {
        /* The replier's callback runs outside the lock, later. */
        s->item.kind = TSR_ITEM_SEND_DONE;
        tsr__enqueue(t, &s->item);
        return;
    }
    tsr_mem_free(t->mem, s->copy);
    tsr_mem_free(t->mem, s);
}

static void count_reject(tsr_transport_t *t, tsr_wire_err_t e)
{
    t->stats.rx_rejected++;
    switch (e) {
    case TSR_WIRE_ETRUNC:
        t->stats.rx_truncated++;
        break;
    case TSR_WIRE_EMAGIC:
    case TSR_WIRE_EVERSION:
        t->stats.rx_bad_magic++;
        break;
    default:
        t->stats.rx_bad_field++;
        break;
    }
}

static ucs_status_t on_request_locked(tsr_transport_t *t, tsr_peer_t *p,
                                      const tsr_wire_hdr_t *h, void *data, size_t length,
                                      const ucp_am_recv_param_t *param)
{
    if (p->state != TSR_PEER_UP) {
        count_reject(t, TSR_WIRE_EFIELD); /* a request before the handshake */
        return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_REJECTED : UCS_OK;
    }
    if (h->type >= TSR_RPC_MAX_TYPES || !t->handlers[h->type].fn) {
        t->stats.rx_unknown_type++;
        (void)send_response_locked(t, p, h->call_id, h->type, TSR_ERR_UNSUPPORTED, NULL, 0,
                                   false, false, NULL, NULL);
        return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_UNSUPPORTED : UCS_OK;
    }
    tsr_rpc_req_t *req = req_alloc_locked(t);
    if (!req)
        return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_NO_MEMORY : UCS_OK;
    req->peer = p;
    tsr__peer_ref_locked(p); /* the handler may reply after a forget */
    req->type = h->type;
    req->call_id = h->call_id;
    tsr_rx_t tmpl = {.target = RX_REQ, .req = req};
    bool ready;
    ucs_status_t ret = take_payload_locked(t, data, length, param, &req->msg, &tmpl, &ready);
    if (ready)
        req_ready_locked(t, req);
    else if (!(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
        req_free_locked(t, req); /* eager copy failed: dropped */
    else if (ret != UCS_OK)
        req_free_locked(t, req); /* rendezvous could not start */
    return ret;
}

static ucs_status_t on_response_locked(tsr_transport_t *t, tsr_peer_t *p,
                                       const tsr_wire_hdr_t *h, void *data, size_t length,
                                       const ucp_am_recv_param_t *param)
{
    tsr_call_t *c = call_lookup_locked(t, h->call_id);
    if (!c || c->finished) {
        t->stats.rx_late++;
        return UCS_OK; /* for a rendezvous: UCX drops it, the sender completes */
    }
    if (c->peer != p || c->type != h->type) {
        count_reject(t, TSR_WIRE_EFIELD); /* a response for someone else's call */
        return UCS_OK;
    }
    tsr_rx_t tmpl = {.target = RX_CALL, .call_id = h->call_id, .status = h->status};
    tsr_rpc_msg_t m;
    bool ready;
    ucs_status_t ret = take_payload_locked(t, data, length, param, &m, &tmpl, &ready);
    if (ready)
        call_finish_locked(t, c, (tsr_status_t)h->status, &m);
    else if (ret != UCS_OK || !(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
        call_finish_locked(t, c, TSR_ERR_NOMEM, NULL);
    return ret;
}

ucs_status_t tsr__am_recv_cb(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param)
{
    tsr_transport_t *t = arg;
    bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    tsr_wire_hdr_t h;
    tsr_wire_err_t e = tsr_wire_hdr_decode(header, header_length, length, &h);
    if (e != TSR_WIRE_OK) {
        count_reject(t, e);
        /* Refusing a rendezvous fails the sender's send instead of pulling
         * bytes we would throw away. */
        return rndv ? UCS_ERR_INVALID_PARAM : UCS_OK;
    }
    tsr_peer_t *p = NULL;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP)
        p = tsr__peer_by_ep(t, param->reply_ep);
    if (!p || p->state == TSR_PEER_DOWN) {
        count_reject(t, TSR_WIRE_EFIELD);
        return rndv ? UCS_ERR_INVALID_PARAM : UCS_OK;
    }
    switch (h.kind) {
    case TSR_WIRE_HELLO:
        if (p->outgoing || p->state != TSR_PEER_CONNECTING) {
            count_reject(t, TSR_WIRE_EFIELD);
            return UCS_OK;
        }
        t->stats.rx_msgs++;
        p->node_id = h.src_node;
        p->state = TSR_PEER_UP;
        tsr__send_hello_ack_locked(t, p);
        tsr__event_locked(t, TSR_TRANSPORT_PEER_UP, p, TSR_OK, NULL);
        return UCS_OK;
    case TSR_WIRE_HELLO_ACK:
        if (!p->outgoing || p->state != TSR_PEER_CONNECTING) {
            count_reject(t, TSR_WIRE_EFIELD);
            return UCS_OK;
        }
        t->stats.rx_msgs++;
        p->node_id = h.src_node;
        p->state = TSR_PEER_UP;
        tsr__event_locked(t, TSR_TRANSPORT_PEER_UP, p, TSR_OK, NULL);
        return UCS_OK;
    case TSR_WIRE_REQUEST:
        t->stats.rx_msgs++;
        return on_request_locked(t, p, &h, data, length, param);
    case TSR_WIRE_RESPONSE:
        t->stats.rx_msgs++;
        return on_response_locked(t, p, &h, data, length, param);
    default:
        count_reject(t, TSR_WIRE_EFIELD); /* unreachable: the decoder checked */
        return UCS_OK;
    }
}

/* ---- server side ---------------------------------------------------------- */

tsr_status_t tsr_rpc_register(tsr_transport_t *t, uint16_t type, tsr_rpc_handler_fn fn,
                              void *arg, tsr_error_t *err)
{
    if (type == 0 || type >= TSR_RPC_MAX_TYPES)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "RPC type %u out of range 1..%u",
                             (unsigned)type, TSR_RPC_MAX_TYPES - 1);
    tsr__lock(t);
    t->handlers[type].fn = fn;
    t->handlers[type].arg = arg;
    /* Requests queued before this change look their handler up again when
     * they run (tsr__run_item), so none reaches a handler (or arg) that was
     * replaced or removed; a NULL fn answers them TSR_ERR_UNSUPPORTED. */
    atomic_fetch_add_explicit(&t->handler_epoch, 1, memory_order_release);
    tsr__unlock(t);
    return TSR_OK;
}

tsr_status_t tsr_rpc_unregister(tsr_transport_t *t, uint16_t type, tsr_error_t *err)
{
    if (!t)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rpc_unregister: no transport");
    return tsr_rpc_register(t, type, NULL, NULL, err);
}

uint16_t tsr_rpc_req_type(const tsr_rpc_req_t *req)
{
    return req->type;
}

tsr_peer_t *tsr_rpc_req_peer(const tsr_rpc_req_t *req)
{
    return req->peer;
}

const void *tsr_rpc_req_data(const tsr_rpc_req_t *req, size_t *len)
{
    if (len)
        *len = req->msg.len;
    return req->msg.data;
}

void tsr_rpc_req_take(tsr_rpc_req_t *req, tsr_rpc_msg_t *out)
{
    *out = req->msg;
    memset(&req->msg, 0, sizeof(req->msg));
}

static void req_unlink_free_locked(tsr_transport_t *t, tsr_rpc_req_t *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else if (t->reqs == req)
        t->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    msg_release_locked(t, &req->msg);
    req_free_locked(t, req);
}

static tsr_status_t reply_common(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t status,
                                 const void *data, size_t len, bool copy,
                                 void (*done)(void *, tsr_status_t), void *done_arg)
{
    if (!t || !req)
        return TSR_ERR_INVALID_ARG;
    if (!tsr_wire_status_valid(status))
        status = TSR_ERR_INTERNAL;
    if (len > TSR_WIRE_MAX_PAYLOAD)
        return TSR_ERR_INVALID_ARG;
    tsr__lock(t);
    tsr_status_t rc = send_response_locked(t, req->peer, req->call_id, req->type, status, data,
                                           len, copy, true, done, done_arg);
    req_unlink_free_locked(t, req);
    tsr__unlock(t);
    return rc;
}

tsr_status_t tsr_rpc_reply(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t status,
                           const void *data, size_t len)
{
    return reply_common(t, req, status, data, len, true, NULL, NULL);
}

tsr_status_t tsr_rpc_reply_zcopy(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t status,
                                 const void *data, size_t len,
                                 void (*done)(void *done_arg, tsr_status_t status),
                                 void *done_arg)
{
    return reply_common(t, req, status, data, len, false, done, done_arg);
}

void tsr_rpc_req_drop(tsr_transport_t *t, tsr_rpc_req_t *req)
{
    if (!t || !req)
        return;
    tsr__lock(t);
    req_unlink_free_locked(t, req);
    tsr__unlock(t);
}

/* ---- client side ------------------------------------------------------------ */

static void call_send_cb(void *request, ucs_status_t status, void *user_data)
{
    tsr_call_t *c = user_data;
    tsr_transport_t *t = c->peer->t;
    ucp_request_free(request);
    c->sent = true;
    if (status != UCS_OK)
        call_finish_locked(t, c, tsr__status_from_ucs(status), NULL);
    call_maybe_free_locked(t, c);
}

/* [L] Creates and sends a call. On error nothing is left behind. */
static tsr_status_t call_start_locked(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                                      const void *data, size_t len, int timeout_ms,
                                      bool blocking, tsr_rpc_done_fn done, void *arg,
                                      tsr_call_t **out, tsr_error_t *err)
{
    if (peer->state != TSR_PEER_UP || !peer->ep)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "peer %u is %s", peer->node_id,
                             peer->state == TSR_PEER_DOWN ? "down" : "not connected");
    if (t->nfree == 0)
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                             "too many RPCs in flight (%u); raise max_calls",
                             t->slot_mask + 1);
    tsr_call_t *c = call_alloc_locked(t);
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "RPC: out of memory");
    c->slot = t->free_slots[--t->nfree];
    uint64_t gen = t->call_gen++;
    if ((gen << t->slot_bits) >> t->slot_bits != gen) /* 2^40 calls later: wrap */
        t->call_gen = gen = 1;
    c->id = (gen << t->slot_bits) | c->slot;
    c->type = type;
    c->peer = peer;
    c->blocking = blocking;
    c->done = done;
    c->arg = arg;
    /* A blocking call's waiter enforces its timeout itself (lazily, without
     * a clock read when the answer comes quickly); async calls are expired
     * by whoever progresses. */
    c->deadline_ns = blocking ? -1 : tsr__deadline(timeout_ms);
    t->slots[c->slot] = c;
    c->next = t->pending;
    if (t->pending)
        t->pending->prev = c;
    t->pending = c;
    if (c->deadline_ns >= 0 &&
        (t->earliest_deadline_ns < 0 || c->deadline_ns < t->earliest_deadline_ns))
        t->earliest_deadline_ns = c->deadline_ns;

    tsr_wire_hdr_t h = {.kind = TSR_WIRE_REQUEST,
                        .type = type,
                        .src_node = t->node_id,
                        .call_id = c->id,
                        .payload_len = len};
    tsr_wire_hdr_encode(&h, c->hdr);
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                                               UCP_OP_ATTR_FIELD_USER_DATA |
                                               UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_AM_SEND_FLAG_REPLY,
                               .cb.send = call_send_cb,
                               .user_data = c};
    void *r = ucp_am_send_nbx(peer->ep, TSR_WIRE_AM_ID, c->hdr, TSR_WIRE_HDR_LEN, data, len,
                              &prm);
    if (UCS_PTR_IS_ERR(r)) {
        ucs_status_t s = UCS_PTR_STATUS(r);
        call_unlink_locked(t, c);
        tsr_mem_free(t->mem, c);
        return tsr_error_set(err, tsr__status_from_ucs(s), "RPC send to peer %u: %s",
                             peer->node_id, ucs_status_string(s));
    }
    tsr__peer_ref_locked(peer); /* call_send_cb and the waiter read c->peer */
    if (r == NULL)
        c->sent = true;
    *out = c;
    return TSR_OK;
}

static bool call_finished(void *arg)
{
    tsr_call_t *c = arg;
    return c->finished;
}

static bool call_sent(void *arg)
{
    tsr_call_t *c = arg;
    return c->sent;
}

tsr_status_t tsr_rpc_call(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                          const void *data, size_t len, int timeout_ms, tsr_rpc_msg_t *reply,
                          tsr_error_t *err)
{
    if (!t || !peer || !reply || (len > 0 && !data))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rpc_call: missing argument");
    memset(reply, 0, sizeof(*reply));
    tsr_call_t *c = NULL;
    /* One critical section for the whole call: progress.c's owner fast path
     * releases the lock only to sleep, to run callbacks or for a contender. */
    tsr__lock(t);
    tsr_status_t rc = call_start_locked(t, peer, type, data, len, timeout_ms, true, NULL, NULL,
                                        &c, err);
    if (rc != TSR_OK) {
        tsr__unlock(t);
        return rc;
    }
    if (!c->finished)
        (void)tsr__wait_locked(t, call_finished, c, -1, timeout_ms, &c->waiter_sleeping);
    if (!c->finished) {
        t->stats.calls_timed_out++;
        if (!c->sent)
            tsr__peer_fail_locked(t, peer, TSR_ERR_TIMEOUT, "call timed out before sending");
        call_finish_locked(t, c, TSR_ERR_TIMEOUT, NULL);
    }
    if (!c->sent) /* UCX still reads our header and the caller's payload */
        (void)tsr__wait_locked(t, call_sent, c, -1, -1, NULL);
    tsr_status_t status = c->status;
    *reply = c->reply;
    memset(&c->reply, 0, sizeof(c->reply));
    c->consumed = true;
    call_maybe_free_locked(t, c);
    tsr__unlock(t);
    if (status == TSR_ERR_TIMEOUT)
        return tsr_error_set(err, status, "RPC type %u to node %u timed out after %d ms",
                             (unsigned)type, peer->node_id, timeout_ms);
    if (status == TSR_ERR_UNAVAILABLE)
        return tsr_error_set(err, status, "RPC type %u: node %u went down (%s)", (unsigned)type,
                             peer->node_id, peer->fail_detail[0] ? peer->fail_detail : "closed");
    if (status != TSR_OK)
        tsr_error_set(err, status, "RPC type %u: node %u answered: %s", (unsigned)type,
                      peer->node_id, tsr_status_str(status));
    return status;
}

tsr_status_t tsr_rpc_call_async(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                                const void *data, size_t len, int timeout_ms,
                                tsr_rpc_done_fn done, void *arg, tsr_error_t *err)
{
    if (!t || !peer || !done || (len > 0 && !data))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rpc_call_async: missing argument");
    tsr_call_t *c = NULL;
    tsr__lock(t);
    tsr_status_t rc = call_start_locked(t, peer, type, data, len, timeout_ms, false, done, arg,
                                        &c, err);
    tsr__unlock(t);
    return rc;
}

/* ---- dispatch of queued items ------------------------------------------- */

bool tsr__run_item(tsr_transport_t *t, tsr_item_t *it)
{
    switch (it->kind) {
    case TSR_ITEM_EVENT: {
        tsr_event_item_t *e = (tsr_event_item_t *)it;
        /* Read now, not when queued: destroy clears on_event first, and a
         * peer forgotten since it was queued gets no more events (its
         * memory is still valid: the item holds a reference). */
        tsr__lock(t);
        tsr_transport_event_fn fn = e->ev.peer->forgotten ? NULL : t->on_event;
        void *arg = t->event_arg;
        tsr__unlock(t);
        if (fn)
            fn(arg, &e->ev);
        return true;
    }
    case TSR_ITEM_REQUEST: {
        tsr_rpc_req_t *req = (tsr_rpc_req_t *)it;
        tsr_handler_t h = req->handler;
        /* One relaxed load on the latency path; the lock only after a
         * (rare) register/unregister since the request arrived. */
        if (atomic_load_explicit(&t->handler_epoch, memory_order_acquire) !=
            req->handler_epoch) {
            tsr__lock(t);
            h = t->handlers[req->type];
            tsr__unlock(t);
        }
        if (h.fn)
            h.fn(h.arg, req);
        else
            (void)tsr_rpc_reply(t, req, TSR_ERR_UNSUPPORTED, NULL, 0);
        return false; /* the handler owns req */
    }
    case TSR_ITEM_CALL_DONE: {
        tsr_call_t *c = (tsr_call_t *)it;
        tsr_rpc_msg_t reply = c->reply;
        memset(&c->reply, 0, sizeof(c->reply));
        c->done(c->arg, c->status, &reply);
        return true;
    }
    case TSR_ITEM_OP_DONE: {
        tsr_op_t *op = (tsr_op_t *)it;
        op->done(op->arg, op->status, op->result);
        return true;
    }
    case TSR_ITEM_SEND_DONE: {
        tsr_send_t *s = (tsr_send_t *)it;
        s->done(s->done_arg, s->status);
        return true;
    }
    }
    return false;
}

void tsr__recycle_item_locked(tsr_transport_t *t, tsr_item_t *it)
{
    switch (it->kind) {
    case TSR_ITEM_CALL_DONE: {
        tsr_call_t *c = (tsr_call_t *)it;
        c->consumed = true;
        call_maybe_free_locked(t, c);
        break;
    }
    case TSR_ITEM_OP_DONE:
        tsr__op_free_locked(t, (tsr_op_t *)it);
        break;
    case TSR_ITEM_SEND_DONE: {
        tsr_send_t *s = (tsr_send_t *)it;
        tsr_mem_free(t->mem, s->copy);
        tsr_mem_free(t->mem, s);
        break;
    }
    case TSR_ITEM_EVENT:
        tsr__peer_unref_locked(t, ((tsr_event_item_t *)it)->ev.peer);
        tsr_mem_free(t->mem, it);
        break;
    case TSR_ITEM_REQUEST:
        break;
    }
}

void tsr__rpc_fini(tsr_transport_t *t)
{
    /* Items still queued: nobody will run them now. */
    tsr_item_t *it = t->dq_head;
    t->dq_head = t->dq_tail = NULL;
    while (it) {
        tsr_item_t *next = it->next;
        switch (it->kind) {
        case TSR_ITEM_REQUEST:
            break; /* also on t->reqs, freed below */
        case TSR_ITEM_CALL_DONE: {
            tsr_call_t *c = (tsr_call_t *)it;
            msg_release_locked(t, &c->reply);
            tsr_mem_free(t->mem, c);
            break;
        }
        case TSR_ITEM_SEND_DONE: {
            tsr_send_t *s = (tsr_send_t *)it;
            tsr_mem_free(t->mem, s->copy);
            tsr_mem_free(t->mem, s);
            break;
        }
        default:
            tsr_mem_free(t->mem, it);
            break;
        }
        it = next;
    }
    while (t->reqs)
        req_unlink_free_locked(t, t->reqs);
    while (t->pending) {
        tsr_call_t *c = t->pending;
        call_unlink_locked(t, c);
        msg_release_locked(t, &c->reply);
        tsr_mem_free(t->mem, c);
    }
    while (t->call_cache) {
        tsr_call_t *c = t->call_cache;
        t->call_cache = c->next;
        tsr_mem_free(t->mem, c);
    }
    while (t->req_cache) {
        tsr_rpc_req_t *r = t->req_cache;
        t->req_cache = r->next;
        tsr_mem_free(t->mem, r);
    }
    t->ncall_cache = t->nreq_cache = 0;
    tsr_mem_free(t->mem, t->slots);
    tsr_mem_free(t->mem, t->free_slots);
    t->slots = NULL;
    t->free_slots = NULL;
}

tsr_status_t tsr__send_raw(tsr_transport_t *t, tsr_peer_t *p, const void *hdr, size_t hdr_len,
                           const void *data, size_t len, int timeout_ms, tsr_error_t *err)
{
    tsr__lock(t);
    if (!p->ep) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "peer is down");
    }
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = UCP_AM_SEND_FLAG_REPLY};
    void *r = ucp_am_send_nbx(p->ep, TSR_WIRE_AM_ID, hdr, hdr_len, data, len, &prm);
    tsr__unlock(t);
    return tsr__wait_request(t, r, tsr__deadline(timeout_ms), p, err, "raw send");
}
