/*
 * rpc.c - typed request/response over UCX active messages: the calls.
 *
 * Requests and responses travel on TSR_WIRE_CALL_AM_ID with the call header
 * (16 bytes, 20 for a request), handshakes on TSR_WIRE_AM_ID with the full
 * one (wire.h). A request names its sender by the route the receiver gave
 * in the handshake (route.c), or, to a peer that gave none, by
 * UCP_AM_SEND_FLAG_REPLY (the receiver learns the endpoint); either names
 * the peer, whose node id the handshake fixed.
 *
 * Call ids: id = (generation << slot_bits) | slot. The slot indexes t->slots
 * directly, and the generation makes a stale id (a response arriving after
 * its call timed out, or a forged one) miss: the lookup compares the whole id.
 * Such responses are dropped and counted (stats.rx_late).
 *
 * This file: the call table (slots, generations, free lists of calls and
 * requests), the small-response buffer ring, the client side (blocking and
 * async calls), timeouts and teardown. The receive path is rpc_recv.c, the server side rpc_reply.c;
 * what they share is rpc_int.h.
 *
 * Blocking calls take the transport lock once: start, poll until the
 * response (progress.c's owner fast path), collect, unlock; their call
 * record lives on the caller's stack. Their deadline is fixed lazily by
 * the polling loop, so a fast round trip reads no clock.
 * Outgoing payloads are sent from the caller's buffer (zero copy); a reply's
 * payload is copied only when its send cannot complete at once and the
 * replier did not use tsr_rpc_reply_zcopy.
 */
#include <stddef.h>
#include <string.h>

#include "rpc_int.h"

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

/* ---- small response buffers ------------------------------------------------
 * A blocking call's 8-byte answer used to cost a malloc and a free (about
 * 140 instructions of the ~1,100 Tessera spends per round trip), then a
 * lock-free stack push (a locked CAS, ~20 cycles, in the caller's path
 * between two calls). Now: a ring, taken in order under the lock (the
 * receive path holds it); tsr_rpc_msg_release clears the buffer's busy
 * flag, a plain store, from any thread. A buffer still held when the
 * cursor comes round again is skipped for that one payload (the heap takes
 * it), so a caller that keeps replies costs a malloc per lap, not a stall. */

tsr_smallbuf_t *tsr__small_ring_alloc_locked(tsr_transport_t *t)
{
    t->small_ring = tsr_mem_calloc(t->mem, TSR_SMALL_RING, sizeof(*t->small_ring));
    return t->small_ring ? tsr__small_get_locked(t) : NULL;
}

static inline void small_put(tsr_smallbuf_t *b)
{
    atomic_store_explicit(&b->busy, 0, memory_order_release);
}

static void small_fini(tsr_transport_t *t)
{
    tsr_mem_free(t->mem, t->small_ring);
    t->small_ring = NULL;
    t->small_next = 0;
}

void tsr_rpc_msg_release(tsr_transport_t *t, tsr_rpc_msg_t *m)
{
    if (!m)
        return;
    if (m->small_)
        small_put(m->small_);
    if (m->ucx_desc_) {
        bool held = tsr__inline_owner == t; /* from an inline handler: held already */
        if (!held)
            tsr__lock(t);
        ucp_am_data_release(t->worker, m->ucx_desc_);
        if (!held)
            tsr__unlock(t);
    }
    if (m->heap_)
        tsr_mem_free(t->mem, m->heap_);
    memset(m, 0, sizeof(*m));
}

void tsr__msg_release_locked(tsr_transport_t *t, tsr_rpc_msg_t *m)
{
    if (m->small_)
        small_put(m->small_);
    if (m->ucx_desc_)
        ucp_am_data_release(t->worker, m->ucx_desc_);
    if (m->heap_)
        tsr_mem_free(t->mem, m->heap_);
    memset(m, 0, sizeof(*m));
}

/* [L] Back to the free list (or the heap): an async call never sent. */
static void call_recycle_locked(tsr_transport_t *t, tsr_call_t *c)
{
    if (t->ncall_cache < TSR_CACHE_MAX) {
        c->next = t->call_cache;
        t->call_cache = c;
        t->ncall_cache++;
    } else {
        tsr_mem_free(t->mem, c);
    }
}

void tsr__call_maybe_free_locked(tsr_transport_t *t, tsr_call_t *c)
{
    if (c->blocking)
        return; /* on its caller's stack: tsr_rpc_call cleans up itself */
    if (c->finished && c->sent && c->consumed) {
        tsr__msg_release_locked(t, &c->reply);
        tsr__peer_unref_locked(t, c->peer);
        call_recycle_locked(t, c);
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

tsr_rpc_req_t *tsr__req_get_locked(tsr_transport_t *t)
{
    tsr_rpc_req_t *r = t->req_cache;
    if (r) {
        t->req_cache = r->next;
        t->nreq_cache--;
        return r;
    }
    return tsr_mem_alloc(t->mem, sizeof(*r));
}

tsr_rpc_req_t *tsr__req_alloc_locked(tsr_transport_t *t)
{
    tsr_rpc_req_t *r = tsr__req_get_locked(t);
    if (r)
        memset(r, 0, offsetof(tsr_rpc_req_t, small)); /* small[] is written before read */
    return r;
}

void tsr__req_free_locked(tsr_transport_t *t, tsr_rpc_req_t *r)
{
    if (r->peer) {
        if (__builtin_expect(t->inline_req == r, 1))
            t->inline_req = NULL; /* answered inline: it took no reference */
        else
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

void tsr__rpc_fail_peer_locked(tsr_transport_t *t, tsr_peer_t *p, tsr_status_t status)
{
    tsr_call_t *c = t->pending;
    while (c) {
        tsr_call_t *next = c->next;
        if (c->peer == p)
            tsr__call_finish_locked(t, c, status, NULL);
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
        tsr__call_finish_locked(t, c, TSR_ERR_TIMEOUT, NULL);
        earliest = -1;
        goto restart;
    }
    t->earliest_deadline_ns = earliest;
    return n;
}

/* ---- client side ------------------------------------------------------------ */

static void call_send_cb(void *request, ucs_status_t status, void *user_data)
{
    tsr_call_t *c = user_data;
    tsr_transport_t *t = c->peer->t;
    ucp_request_free(request);
    c->sent = true;
    if (status != UCS_OK)
        tsr__call_finish_locked(t, c, tsr__status_from_ucs(status), NULL);
    tsr__call_maybe_free_locked(t, c);
}

/* [L] Sends call c (zeroed by the caller: from the free list, or on a
 * blocking caller's stack) and records it. On error nothing is left
 * behind (c is the caller's to free). Only what the send needs - the id
 * and the header - comes before it; the rest (the pending list, the peer
 * reference, a deadline) is done after it, while the request travels: no
 * completion or response can run before this thread progresses the
 * worker, which it holds the lock for. */
static tsr_status_t call_start_locked(tsr_transport_t *t, tsr_call_t *c, tsr_peer_t *peer,
                                      uint16_t type, const void *data, size_t len,
                                      int timeout_ms, tsr_error_t *err)
{
    if (__builtin_expect(peer->state != TSR_PEER_UP || !peer->ep, 0))
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "peer %u is %s", peer->node_id,
                             peer->state == TSR_PEER_DOWN ? "down" : "not connected");
    if (__builtin_expect(t->nfree == 0, 0))
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                             "too many RPCs in flight (%u); raise max_calls",
                             t->slot_mask + 1);
    c->slot = t->free_slots[--t->nfree];
    uint64_t gen = t->call_gen++;
    if (__builtin_expect((gen << t->slot_bits) >> t->slot_bits != gen, 0)) /* 2^40 calls: wrap */
        t->call_gen = gen = 1;
    c->id = (gen << t->slot_bits) | c->slot;
    c->type = type;
    c->peer = peer;
    t->slots[c->slot] = c;

    /* The peer names us by the route it gave us (route.c) or, if it gave
     * none, by UCX's reply endpoint. */
    tsr_wire_hdr_t h = {
        .kind = TSR_WIRE_REQUEST, .type = type, .call_id = c->id, .route = peer->remote_route};
    size_t hlen = tsr_wire_call_encode(&h, c->hdr);
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                                               UCP_OP_ATTR_FIELD_USER_DATA |
                                               UCP_OP_ATTR_FIELD_FLAGS,
                               .flags = peer->remote_route ? 0u : UCP_AM_SEND_FLAG_REPLY,
                               .cb.send = call_send_cb,
                               .user_data = c};
    void *r = ucp_am_send_nbx(peer->ep, TSR_WIRE_CALL_AM_ID, c->hdr, hlen, data, len, &prm);
    if (__builtin_expect(UCS_PTR_IS_ERR(r), 0)) {
        ucs_status_t s = UCS_PTR_STATUS(r);
        t->slots[c->slot] = NULL;
        t->free_slots[t->nfree++] = c->slot;
        return tsr_error_set(err, tsr__status_from_ucs(s), "RPC send to peer %u: %s",
                             peer->node_id, ucs_status_string(s));
    }
    /* The request is on its way. */
    if (r == NULL)
        c->sent = true;
    tsr__peer_ref_locked(peer); /* call_send_cb and the waiter read c->peer */
    if (__builtin_expect(!c->finished, 1)) {
        /* (Finished already only if UCX ever delivered the answer inside
         * the send - UCX 1.13 does not, even to a transport's own
         * listener: a finished call must not join the pending list.) */
        c->next = t->pending;
        if (t->pending)
            t->pending->prev = c;
        t->pending = c;
    }
    /* A blocking call's waiter enforces its timeout itself (lazily, without
     * a clock read when the answer comes quickly); async calls are expired
     * by whoever progresses. */
    if (!c->blocking) {
        c->deadline_ns = tsr__deadline(timeout_ms);
        if (c->deadline_ns >= 0 &&
            (t->earliest_deadline_ns < 0 || c->deadline_ns < t->earliest_deadline_ns))
            t->earliest_deadline_ns = c->deadline_ns;
    } else {
        c->deadline_ns = -1;
    }
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
    /* The call record lives here: this function returns only once the call
     * is finished and UCX is done with its header (sent), and finishing
     * takes it out of the call table, so nothing refers to it afterwards.
     * A late response then finds no call (stats.rx_late). */
    tsr_call_t c = {.blocking = true};
    /* One critical section for the whole call: progress.c's owner fast path
     * releases the lock only to sleep, to run callbacks or for a contender. */
    tsr__lock(t);
    tsr_status_t rc = call_start_locked(t, &c, peer, type, data, len, timeout_ms, err);
    if (rc != TSR_OK) {
        tsr__unlock(t);
        memset(reply, 0, sizeof(*reply));
        return rc;
    }
    if (!c.finished)
        (void)tsr__wait_locked(t, call_finished, &c, -1, timeout_ms, &c.waiter_sleeping);
    if (__builtin_expect(!c.finished, 0)) {
        t->stats.calls_timed_out++;
        if (!c.sent)
            tsr__peer_fail_locked(t, peer, TSR_ERR_TIMEOUT, "call timed out before sending");
        tsr__call_finish_locked(t, &c, TSR_ERR_TIMEOUT, NULL);
    }
    if (__builtin_expect(!c.sent, 0)) /* UCX still reads our header and the caller's payload */
        (void)tsr__wait_locked(t, call_sent, &c, -1, -1, NULL);
    tsr_status_t status = c.status;
    *reply = c.reply; /* the caller's now (zero when there is none) */
    if (__builtin_expect(status != TSR_OK, 0)) {
        /* Said while our reference keeps the peer (a forgotten one is freed
         * once its last reference goes). */
        if (status == TSR_ERR_TIMEOUT)
            tsr_error_set(err, status, "RPC type %u to node %u timed out after %d ms",
                          (unsigned)type, peer->node_id, timeout_ms);
        else if (status == TSR_ERR_UNAVAILABLE)
            tsr_error_set(err, status, "RPC type %u: node %u went down (%s)", (unsigned)type,
                          peer->node_id, peer->fail_detail[0] ? peer->fail_detail : "closed");
        else
            tsr_error_set(err, status, "RPC type %u: node %u answered: %s", (unsigned)type,
                          peer->node_id, tsr_status_str(status));
    }
    tsr__peer_unref_locked(t, peer);
    tsr__unlock(t);
    return status;
}

tsr_status_t tsr_rpc_call_async(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                                const void *data, size_t len, int timeout_ms,
                                tsr_rpc_done_fn done, void *arg, tsr_error_t *err)
{
    if (!t || !peer || !done || (len > 0 && !data))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "rpc_call_async: missing argument");
    tsr__lock(t);
    tsr_call_t *c = call_alloc_locked(t);
    if (!c) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_NOMEM, "RPC: out of memory");
    }
    c->done = done;
    c->arg = arg;
    tsr_status_t rc = call_start_locked(t, c, peer, type, data, len, timeout_ms, err);
    if (rc != TSR_OK)
        call_recycle_locked(t, c);
    tsr__unlock(t);
    return rc;
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
            tsr__msg_release_locked(t, &c->reply);
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
        tsr__req_unlink_free_locked(t, t->reqs);
    while (t->pending) {
        tsr_call_t *c = t->pending;
        tsr__call_unlink_locked(t, c);
        if (c->blocking)
            continue; /* its caller's (a destroy during a call is the caller's bug) */
        tsr__msg_release_locked(t, &c->reply);
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
    small_fini(t);
    tsr_mem_free(t->mem, t->slots);
    tsr_mem_free(t->mem, t->free_slots);
    t->slots = NULL;
    t->free_slots = NULL;
}

tsr_status_t tsr__send_raw(tsr_transport_t *t, tsr_peer_t *p, const void *hdr, size_t hdr_len,
                           const void *data, size_t len, int timeout_ms, tsr_error_t *err)
{
    return tsr__send_raw_flags(t, p, TSR_WIRE_AM_ID, hdr, hdr_len, data, len,
                               UCP_AM_SEND_FLAG_REPLY, timeout_ms, err);
}

tsr_status_t tsr__send_raw_flags(tsr_transport_t *t, tsr_peer_t *p, unsigned am_id,
                                 const void *hdr, size_t hdr_len, const void *data, size_t len,
                                 uint32_t am_flags, int timeout_ms, tsr_error_t *err)
{
    tsr__lock(t);
    if (!p->ep) {
        tsr__unlock(t);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "peer is down");
    }
    ucp_request_param_t prm = {.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS, .flags = am_flags};
    void *r = ucp_am_send_nbx(p->ep, am_id, hdr, hdr_len, data, len, &prm);
    tsr__unlock(t);
    return tsr__wait_request(t, r, tsr__deadline(timeout_ms), p, err, "raw send");
}
