/*
 * rpc_reply.c - the server side of RPC: the handler table, requests and
 * their replies, and running the queued items (handlers, completions,
 * events) outside the lock.
 *
 * A request's handler is looked up when the request arrives (rpc_recv.c)
 * and re-read when it runs only if tsr_rpc_register/unregister happened in
 * between (t->handler_epoch), so no queued request reaches a replaced or
 * removed handler. A handler owns its request until it answers
 * (tsr_rpc_reply, tsr_rpc_reply_zcopy) or drops it.
 *
 * Replies: most are small and leave at once; they try
 * UCP_OP_ATTR_FLAG_FORCE_IMM_CMPL first (header on the stack, no copy, no
 * allocation). Otherwise a tsr_send_t holds the header (and a copy of the
 * payload for tsr_rpc_reply) until UCX is done with them.
 */
#include <string.h>

#include "rpc_int.h"

static void send_free_cb(void *request, ucs_status_t status, void *user_data);

/* Responses up to this size try the immediate-completion path first. */
#define TSR_FAST_REPLY_MAX 4096u

/* [L] The latency path of a response: most are small and leave at once
 * (eager short/bcopy). FORCE_IMM_CMPL makes UCX either finish the send
 * inside this call - so the header may live on the stack and the payload
 * need not be copied - or refuse it (NO_RESOURCE). Returns true when the
 * response is dealt with (*rc: sent, or why not), false when the general
 * path must send it. Safe inside a UCX callback (an inline handler's
 * reply): UCX 1.13's ucp_am_send_nbx returns NO_RESOURCE rather than a
 * request with FORCE_IMM_CMPL (ucp_am.c). */
static inline bool send_response_now_locked(tsr_transport_t *t, tsr_peer_t *p, uint64_t call_id,
                                            uint16_t type, tsr_status_t status,
                                            const void *data, size_t len, tsr_status_t *rc)
{
    uint8_t hdr[TSR_WIRE_CALL_REQ_LEN]; /* the response takes the first 16 */
    tsr_wire_hdr_t fh = {
        .kind = TSR_WIRE_RESPONSE, .type = type, .status = status, .call_id = call_id};
    size_t hlen = tsr_wire_call_encode(&fh, hdr);
    /* No UCP_AM_SEND_FLAG_REPLY on responses (rpc_recv.c). */
    ucp_request_param_t fp = {.op_attr_mask = UCP_OP_ATTR_FLAG_FORCE_IMM_CMPL};
    void *r = ucp_am_send_nbx(p->ep, TSR_WIRE_CALL_AM_ID, hdr, hlen, data, len, &fp);
    if (r == NULL) {
        *rc = TSR_OK;
        return true;
    }
    if (UCS_PTR_IS_PTR(r)) {
        /* Not expected (above); stay correct anyway outside callbacks:
         * the stack header must outlive the send, so finish it here. */
        while (ucp_request_check_status(r) == UCS_INPROGRESS)
            ucp_worker_progress(t->worker);
        ucs_status_t rs = ucp_request_check_status(r);
        ucp_request_free(r);
        *rc = tsr__status_from_ucs(rs);
        return true;
    }
    if (UCS_PTR_STATUS(r) != UCS_ERR_NO_RESOURCE) {
        *rc = tsr__status_from_ucs(UCS_PTR_STATUS(r));
        return true;
    }
    return false;
}

/* [L] Sends a response header (+payload) to p. copy: duplicate the payload
 * if the send cannot finish at once; fast: may try the immediate-completion
 * path first (also from an inline handler, inside a UCX callback: see
 * above). */
tsr_status_t tsr__send_response_locked(tsr_transport_t *t, tsr_peer_t *p, uint64_t call_id,
                                       uint16_t type, tsr_status_t status, const void *data,
                                       size_t len, bool copy, bool fast,
                                       void (*done)(void *, tsr_status_t), void *done_arg)
{
    if (p->state == TSR_PEER_DOWN || !p->ep)
        return TSR_ERR_UNAVAILABLE;
    tsr_status_t rc;
    if (fast && !done && len <= TSR_FAST_REPLY_MAX &&
        send_response_now_locked(t, p, call_id, type, status, data, len, &rc))
        return rc;
    tsr_send_t *s = tsr_mem_calloc(t->mem, 1, sizeof(*s));
    if (!s)
        return TSR_ERR_NOMEM;
    tsr_wire_hdr_t h = {
        .kind = TSR_WIRE_RESPONSE, .type = type, .status = status, .call_id = call_id};
    size_t hlen = tsr_wire_call_encode(&h, s->hdr);
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
                               .flags = 0, /* no REPLY: see rpc_recv.c */
                               .cb.send = send_free_cb,
                               .user_data = s};
    void *r = ucp_am_send_nbx(p->ep, TSR_WIRE_CALL_AM_ID, s->hdr, hlen, data, len, &prm);
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

/* ---- server side ---------------------------------------------------------- */

tsr_status_t tsr_rpc_register_flags(tsr_transport_t *t, uint16_t type, tsr_rpc_handler_fn fn,
                                    void *arg, unsigned flags, tsr_error_t *err)
{
    if (!t)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rpc_register: no transport");
    if (type == 0 || type >= TSR_RPC_MAX_TYPES)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "RPC type %u out of range 1..%u",
                             (unsigned)type, TSR_RPC_MAX_TYPES - 1);
    if (flags & ~TSR_RPC_INLINE)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "RPC type %u: unknown flags 0x%x",
                             (unsigned)type, flags & ~TSR_RPC_INLINE);
    tsr__lock(t);
    t->handlers[type].fn = fn;
    t->handlers[type].arg = arg;
    t->handlers[type].inline_ = fn && (flags & TSR_RPC_INLINE);
    /* Requests queued before this change look their handler up again when
     * they run (tsr__run_item), so none reaches a handler (or arg) that was
     * replaced or removed; a NULL fn answers them TSR_ERR_UNSUPPORTED. */
    atomic_fetch_add_explicit(&t->handler_epoch, 1, memory_order_release);
    tsr__unlock(t);
    return TSR_OK;
}

tsr_status_t tsr_rpc_register(tsr_transport_t *t, uint16_t type, tsr_rpc_handler_fn fn,
                              void *arg, tsr_error_t *err)
{
    return tsr_rpc_register_flags(t, type, fn, arg, 0, err);
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
    if (out->len > 0 && out->data == req->small) {
        /* The bytes live inside req, which the reply frees: give the caller
         * its own copy (the rare path; small requests are answered in place
         * far more often than kept). Out of memory: an empty message. */
        void *copy = tsr_mem_alloc(req->peer->t->mem, out->len);
        if (copy)
            memcpy(copy, req->small, out->len);
        out->data = copy;
        out->heap_ = copy;
        if (!copy)
            out->len = 0;
    }
}

void tsr__req_unlink_free_locked(tsr_transport_t *t, tsr_rpc_req_t *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else if (t->reqs == req)
        t->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    tsr__msg_release_locked(t, &req->msg);
    tsr__req_free_locked(t, req);
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
    /* From an inline handler this thread holds the lock already (inside
     * ucp_worker_progress): send from here. The immediate-completion try
     * is safe there too: UCX 1.13 either sends a short message at once or
     * refuses with NO_RESOURCE, it never returns a request for it. */
    bool held = tsr__inline_owner == t;
    if (!held)
        tsr__lock(t);
    tsr_status_t rc;
    tsr_peer_t *p = req->peer;
    /* The latency path in place (no call), else the general one, which
     * does not try it again. */
    if (done || len > TSR_FAST_REPLY_MAX || p->state == TSR_PEER_DOWN || !p->ep ||
        !send_response_now_locked(t, p, req->call_id, req->type, status, data, len, &rc))
        rc = tsr__send_response_locked(t, p, req->call_id, req->type, status, data, len, copy,
                                       false, done, done_arg);
    tsr__req_unlink_free_locked(t, req);
    if (!held)
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
    bool held = tsr__inline_owner == t; /* from an inline handler: see reply_common */
    if (!held)
        tsr__lock(t);
    tsr__req_unlink_free_locked(t, req);
    if (!held)
        tsr__unlock(t);
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
        tsr__call_maybe_free_locked(t, c);
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
