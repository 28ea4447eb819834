/*
 * rpc_recv.c - the receive path of RPC: the UCX active-message callback
 * (tsr__am_recv_cb), its checks, and taking a message's payload.
 *
 * Every Tessera message is one AM whose UCX header is a wire header
 * (wire.h): the full header on TSR_WIRE_AM_ID (handshakes; requests and
 * responses in the full form), the call header on TSR_WIRE_CALL_AM_ID
 * (requests, 20 bytes, and responses, 16); it is decoded and checked
 * before anything else is read. The sender of a request is the peer its
 * route names (a capability we gave that peer: a slot of our table and 48
 * random bits, all checked; route.c) or, with route 0, the peer of the
 * endpoint UCX names (UCP_AM_SEND_FLAG_REPLY), as for handshakes - never a
 * node id the header claims; a
 * response (sent without that flag: it costs an endpoint-id lookup per
 * message) must answer a live call id (slot + generation, known only to the
 * peer the request went to), come from a peer that is not down and, in the
 * full header, name that call's peer as src_node. Rejected
 * messages are counted (stats) and dropped; a rejected rendezvous is refused
 * so the sender's send fails instead of moving the data.
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
 * Everything here runs inside ucp_worker_progress (t->lock held): it only
 * records and queues; handlers and callbacks run later (tsr__run_item) -
 * except inline handlers (TSR_RPC_INLINE), which run here when the thread
 * that progresses may run handlers and nothing is queued ahead
 * (req_ready_locked), and reply from here (rpc_reply.c).
 */
#include <string.h>

#include "rpc_int.h"

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

/* Whether handler h may run right here, inside the receive path: it is
 * inline (TSR_RPC_INLINE), the thread that progresses may run handlers now
 * (t->inline_ok: set by the polling loop, so dispatch mode and nesting hold
 * as for queued handlers), nothing is queued ahead (callbacks keep their
 * order) and no inline handler runs already. */
static inline bool may_run_inline(const tsr_transport_t *t, const tsr_handler_t *h)
{
    return h->inline_ && t->inline_ok && !t->dq_head && !tsr__inline_owner;
}

/* [L] Puts req on t->reqs (every request not yet answered). */
static inline void reqs_link_locked(tsr_transport_t *t, tsr_rpc_req_t *req)
{
    req->prev = NULL;
    req->next = t->reqs;
    if (t->reqs)
        t->reqs->prev = req;
    t->reqs = req;
}

/* A request whose payload is in: queue it for its handler, or run an
 * inline handler (TSR_RPC_INLINE) right here. may_inline: the payload came
 * with the message (not a finished rendezvous) and is a copy of our own. */
static void req_ready_locked(tsr_transport_t *t, tsr_rpc_req_t *req, bool may_inline)
{
    /* The handler is looked up now, under the lock we hold anyway, rather
     * than by the dispatching thread with another lock round. */
    req->handler = t->handlers[req->type];
    req->handler_epoch = atomic_load_explicit(&t->handler_epoch, memory_order_relaxed);
    reqs_link_locked(t, req);
    /* Inline: only on a thread that may run handlers now (t->inline_ok:
     * set by the polling loop, so dispatch mode and nesting hold as for
     * queued handlers), and only with nothing queued ahead, so callbacks
     * keep their order (a PEER_UP or a completion queued before this
     * request still runs before its handler). The handler runs with the
     * lock held (transport.h states what it may call); its reply and drop
     * see tsr__inline_owner and do not lock again. */
    if (may_inline && may_run_inline(t, &req->handler)) {
        t->stats.rx_inline++;
        tsr__inline_owner = t;
        req->handler.fn(req->handler.arg, req); /* req belongs to the handler now */
        tsr__inline_owner = NULL;
        return;
    }
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
            req_ready_locked(t, rx->req, false);
        } else {
            tsr_mem_free(t->mem, rx->buf);
            tsr__req_free_locked(t, rx->req);
        }
    } else {
        tsr_call_t *c = tsr__call_lookup_locked(t, rx->call_id);
        if (c && st == UCS_OK) {
            tsr__call_finish_locked(t, c, (tsr_status_t)rx->status, &m);
        } else {
            tsr_mem_free(t->mem, rx->buf);
            if (c)
                tsr__call_finish_locked(t, c, tsr__status_from_ucs(st), NULL);
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
 * it later, or it failed and was released). An eager payload of at most
 * inl_cap bytes is copied into inl (a request's own small[]; NULL for
 * responses, whose payload outlives the call record). */
static ucs_status_t take_payload_locked(tsr_transport_t *t, void *data, size_t length,
                                        const ucp_am_recv_param_t *param, tsr_rpc_msg_t *m,
                                        tsr_rx_t *rx_tmpl, void *inl, size_t inl_cap,
                                        bool *ready)
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
    if (inl && length <= inl_cap) {
        memcpy(inl, data, length);
        m->data = inl;
        m->len = length;
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

/* The latency path of a request: a small eager payload for an inline
 * handler that may run now (req_ready_locked's conditions). The request is
 * filled field by field (not zeroed first), and it joins t->reqs and takes
 * a peer reference only if the handler returns without answering - most
 * answer at once, and an answered inline request needs neither
 * (t->inline_req marks it for tsr__req_free_locked). */
static inline ucs_status_t on_request_inline_locked(tsr_transport_t *t, tsr_peer_t *p,
                                                    uint16_t type, uint64_t call_id,
                                                    tsr_handler_t handler, const void *data,
                                                    size_t length)
{
    tsr_rpc_req_t *req = tsr__req_get_locked(t);
    if (!req)
        return UCS_OK; /* dropped: the caller times out */
    req->item = (tsr_item_t){.kind = TSR_ITEM_REQUEST};
    req->prev = req->next = NULL;
    req->peer = p;
    req->type = type;
    req->call_id = call_id;
    req->handler = handler;
    req->handler_epoch = atomic_load_explicit(&t->handler_epoch, memory_order_relaxed);
    tsr__copy_small(req->small, data, length);
    req->msg = (tsr_rpc_msg_t){.data = length ? req->small : NULL, .len = length};
    t->stats.rx_inline++;
    t->inline_req = req;
    tsr__inline_owner = t;
    handler.fn(handler.arg, req); /* req belongs to the handler now */
    tsr__inline_owner = NULL;
    if (t->inline_req == req) {
        /* Kept for later: now it is an unanswered request like any other. */
        t->inline_req = NULL;
        tsr__peer_ref_locked(p);
        reqs_link_locked(t, req);
    }
    return UCS_OK;
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
        (void)tsr__send_response_locked(t, p, h->call_id, h->type, TSR_ERR_UNSUPPORTED, NULL,
                                        0, false, false, NULL, NULL);
        return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_UNSUPPORTED : UCS_OK;
    }
    bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    tsr_handler_t handler = t->handlers[h->type];
    if (!rndv && length <= sizeof(((tsr_rpc_req_t *)0)->small) && may_run_inline(t, &handler))
        return on_request_inline_locked(t, p, h->type, h->call_id, handler, data, length);
    tsr_rpc_req_t *req = tsr__req_alloc_locked(t);
    if (!req)
        return rndv ? UCS_ERR_NO_MEMORY : UCS_OK;
    req->peer = p;
    tsr__peer_ref_locked(p); /* the handler may reply after a forget */
    req->type = h->type;
    req->call_id = h->call_id;
    if (!(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) && length <= sizeof(req->small)) {
        /* The common case, inline: a small eager payload into the request. */
        if (length)
            memcpy(req->small, data, length);
        req->msg = (tsr_rpc_msg_t){.data = length ? req->small : NULL, .len = length};
        req_ready_locked(t, req, true);
        return UCS_OK;
    }
    tsr_rx_t tmpl = {.target = RX_REQ, .req = req};
    bool ready;
    ucs_status_t ret = take_payload_locked(t, data, length, param, &req->msg, &tmpl, req->small,
                                           sizeof(req->small), &ready);
    /* Inline only when the payload is ours (copied, or none): one we keep
     * as UCX's descriptor (UCS_INPROGRESS) must not be released by a reply
     * from inside this callback, before UCX learns we kept it. */
    if (ready)
        req_ready_locked(t, req, ret == UCS_OK);
    else if (!(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
        tsr__req_free_locked(t, req); /* eager copy failed: dropped */
    else if (ret != UCS_OK)
        tsr__req_free_locked(t, req); /* rendezvous could not start */
    return ret;
}

/* [L] Finishes live call c with a small eager payload copied into a
 * pooled buffer (rpc.c) - the common response, on both receive paths
 * (always inlined: the latency path's 30 instructions). False when no
 * buffer is free (the caller then takes the payload another way). */
static inline __attribute__((always_inline)) bool
finish_small_response_locked(tsr_transport_t *t, tsr_call_t *c, tsr_status_t status,
                             const void *data, size_t length)
{
    tsr_smallbuf_t *b = NULL;
    if (length) {
        b = tsr__small_get_locked(t);
        if (!b)
            return false;
        tsr__copy_small(b->bytes, data, length);
    }
    tsr_rpc_msg_t m = {.data = b ? b->bytes : NULL, .len = length, .small_ = b};
    tsr__call_finish_locked(t, c, status, &m);
    return true;
}

static ucs_status_t on_response_locked(tsr_transport_t *t, tsr_peer_t *p,
                                       const tsr_wire_hdr_t *h, void *data, size_t length,
                                       const ucp_am_recv_param_t *param)
{
    tsr_call_t *c = tsr__call_lookup_locked(t, h->call_id);
    if (!c || c->finished) {
        t->stats.rx_late++;
        return UCS_OK; /* for a rendezvous: UCX drops it, the sender completes */
    }
    /* p is NULL for a response sent without UCP_AM_SEND_FLAG_REPLY (all of
     * ours, see rpc_reply.c): the call names its peer, whose node id the
     * handshake fixed, and the id's generation is known only to the peer the
     * request went to. */
    bool wrong_peer = p ? c->peer != p
                        : (h->src_node != 0 && c->peer->node_id != h->src_node) ||
                              c->peer->state == TSR_PEER_DOWN;
    if (wrong_peer || c->type != h->type) {
        count_reject(t, TSR_WIRE_EFIELD); /* a response for someone else's call */
        return UCS_OK;
    }
    if (!(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) && length <= TSR_SMALLBUF_BYTES &&
        finish_small_response_locked(t, c, (tsr_status_t)h->status, data, length))
        return UCS_OK; /* the common case */
    tsr_rpc_msg_t m;
    tsr_rx_t tmpl = {.target = RX_CALL, .call_id = h->call_id, .status = h->status};
    bool ready;
    ucs_status_t ret = take_payload_locked(t, data, length, param, &m, &tmpl, NULL, 0, &ready);
    if (ready)
        tsr__call_finish_locked(t, c, (tsr_status_t)h->status, &m);
    else if (ret != UCS_OK || !(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV))
        tsr__call_finish_locked(t, c, TSR_ERR_NOMEM, NULL);
    return ret;
}

/* The route a handshake's payload gives us for our requests to its sender
 * (wire.h, "Routes"): 0 - none, use the reply endpoint - for an empty
 * payload (the sender had no route to give) or anything that is not
 * exactly 8 eager bytes. */
static uint64_t handshake_route(const void *data, size_t length, bool rndv)
{
    if (rndv || length != TSR_WIRE_ROUTE_LEN || !data)
        return 0;
    return tsr_wire_get_u64(data);
}

/* A message whose header h decoded (either form): to its kind's handling. */
static ucs_status_t on_message_locked(tsr_transport_t *t, const tsr_wire_hdr_t *hp, void *data,
                                      size_t length, const ucp_am_recv_param_t *param)
{
    const tsr_wire_hdr_t h = *hp;
    bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
    tsr_peer_t *p = NULL;
    if (h.route != 0) {
        /* A request naming its sender by the route we gave it (route.c);
         * one that also came with the reply endpoint is refused (two
         * answers to one question). */
        if (!(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP))
            p = tsr__route_lookup_locked(t, h.route);
    } else if (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) {
        p = tsr__peer_by_ep(t, param->reply_ep);
    } else if (h.kind == TSR_WIRE_RESPONSE) {
        /* Responses come without the reply endpoint (it costs UCX an ep-id
         * lookup per message); on_response_locked checks the sender. */
        t->stats.rx_msgs++;
        return on_response_locked(t, NULL, &h, data, length, param);
    }
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
        p->remote_route = handshake_route(data, length, rndv);
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
        p->remote_route = handshake_route(data, length, rndv);
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

/* Refusing a rendezvous fails the sender's send instead of pulling bytes we
 * would throw away. */
static ucs_status_t on_reject(tsr_transport_t *t, tsr_wire_err_t e,
                              const ucp_am_recv_param_t *param)
{
    count_reject(t, e);
    return (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) ? UCS_ERR_INVALID_PARAM : UCS_OK;
}

/* Decodes with dec (one header form), then on to the message's handling.
 * Always inlined, so each callback calls its decoder directly (inlined
 * too) rather than through a pointer: they run on every message. */
static inline __attribute__((always_inline)) ucs_status_t
on_am(tsr_transport_t *t, tsr_wire_err_t (*dec)(const void *, size_t, size_t, tsr_wire_hdr_t *),
      const void *header, size_t header_length, void *data, size_t length,
      const ucp_am_recv_param_t *param)
{
    tsr_wire_hdr_t h;
    tsr_wire_err_t e = dec(header, header_length, length, &h);
    if (e != TSR_WIRE_OK)
        return on_reject(t, e, param);
    return on_message_locked(t, &h, data, length, param);
}

ucs_status_t tsr__am_recv_cb(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param)
{
    return on_am(arg, tsr_wire_hdr_decode, header, header_length, data, length, param);
}

/* The latency path of a response: a call header of the response form
 * with a small eager payload, sent (as all of ours are) without the reply
 * endpoint. It checks what tsr_wire_call_decode and on_response_locked
 * check - length, version, a nonzero call id, a valid status, a live call
 * of that type whose peer is not down - straight from the bytes, and
 * hands the payload over in a pooled buffer. Returns false to leave the
 * message to the general path (which also counts every refusal). */
static inline bool on_small_response_locked(tsr_transport_t *t, const uint8_t *p, void *data,
                                            size_t length)
{
    uint64_t id = tsr_wire_get_u64(p + 8);
    int32_t status = (int32_t)tsr_wire_get_u32(p + 4);
    if (id == 0 || !tsr_wire_status_valid(status))
        return false;
    tsr_call_t *c = tsr__call_lookup_locked(t, id);
    if (!c || c->finished || c->peer->state == TSR_PEER_DOWN ||
        c->type != tsr_wire_get_u16(p + 2))
        return false;
    if (!finish_small_response_locked(t, c, (tsr_status_t)status, data, length))
        return false;
    t->stats.rx_msgs++;
    return true;
}

/* The latency path of a request: the request form of the call header,
 * naming its sender by route, with a small eager payload for an inline
 * handler that may run now - the checks of tsr_wire_call_decode,
 * on_message_locked and on_request_locked straight from the bytes. Returns
 * false to leave the message to the general path (which counts refusals). */
static inline bool on_small_request_locked(tsr_transport_t *t, const uint8_t *p, void *data,
                                           size_t length)
{
    uint64_t id = tsr_wire_get_u64(p + 8);
    uint64_t route = tsr_wire_get_u32(p + 4) | (uint64_t)tsr_wire_get_u32(p + 16) << 32;
    uint16_t type = tsr_wire_get_u16(p + 2);
    if (id == 0 || route == 0 || type >= TSR_RPC_MAX_TYPES)
        return false;
    tsr_peer_t *peer = tsr__route_lookup_locked(t, route);
    if (!peer || peer->state != TSR_PEER_UP)
        return false;
    tsr_handler_t handler = t->handlers[type];
    if (!handler.fn || !may_run_inline(t, &handler))
        return false;
    t->stats.rx_msgs++;
    (void)on_request_inline_locked(t, peer, type, id, handler, data, length);
    return true;
}

/* Everything else on TSR_WIRE_CALL_AM_ID. Not inlined, so the latency
 * paths do not pay for its frame. */
static __attribute__((noinline)) ucs_status_t on_call_general(tsr_transport_t *t,
                                                              const void *header,
                                                              size_t header_length, void *data,
                                                              size_t length,
                                                              const ucp_am_recv_param_t *param)
{
    return on_am(t, tsr_wire_call_decode, header, header_length, data, length, param);
}

ucs_status_t tsr__am_call_cb(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param)
{
    tsr_transport_t *t = arg;
    const uint8_t *p = header;
    /* Small eager messages without the reply endpoint (all of ours once the
     * handshake gave routes) take the latency paths above. */
    if (p && header_length >= TSR_WIRE_CALL_HDR_LEN && p[1] == TSR_WIRE_CALL_VERSION &&
        !(param->recv_attr & (UCP_AM_RECV_ATTR_FIELD_REPLY_EP | UCP_AM_RECV_ATTR_FLAG_RNDV))) {
        if (p[0] == TSR_WIRE_RESPONSE && header_length == TSR_WIRE_CALL_HDR_LEN &&
            length <= TSR_SMALLBUF_BYTES && on_small_response_locked(t, p, data, length))
            return UCS_OK;
        if (p[0] == TSR_WIRE_REQUEST && header_length == TSR_WIRE_CALL_REQ_LEN &&
            length <= TSR_REQ_INLINE && on_small_request_locked(t, p, data, length))
            return UCS_OK;
    }
    return on_call_general(t, header, header_length, data, length, param);
}
