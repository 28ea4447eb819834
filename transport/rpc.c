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
 * requests), the client side (blocking and async calls), timeouts and
 * teardown. The receive path is rpc_recv.c, the server side rpc_reply.c;
 * what they share is rpc_int.h.
 *
 * Blocking calls take the transport lock once: start, poll until the
 * response (progress.c's owner fast path), collect, unlock. Their deadline
 * is fixed lazily by the polling loop, so a fast round trip reads no clock.
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
 * 140 instructions of the ~1,100 Tessera spends per round trip). Buffers
 * are taken under the lock (the receive path holds it) and given back
 * without it, by whichever thread releases the message: a push onto
 * small_back, which the taker empties in one exchange when its own list
 * runs dry. One taker at a time (the lock) and pushes only otherwise, so
 * no ABA. */

#define TSR_SMALL_MAX 256u /* buffers per transport; more payloads go to the heap */

static void small_put(tsr_transport_t *t, tsr_smallbuf_t *b)
{
    tsr_smallbuf_t *head = atomic_load_explicit(&t->small_back, memory_order_relaxed);
    do
        b->next = head;
    while (!atomic_compare_exchange_weak_explicit(&t->small_back, &head, b,
                                                  memory_order_release, memory_order_relaxed));
}

tsr_smallbuf_t *tsr__small_get_locked(tsr_transport_t *t)
{
    tsr_smallbuf_t *b = t->small_free;
    if (!b) {
        b = atomic_exchange_explicit(&t->small_back, NULL, memory_order_acquire);
        if (!b) {
            if (t->nsmall >= TSR_SMALL_MAX)
                return NULL;
            b = tsr_mem_alloc(t->mem, sizeof(*b));
            if (b)
                t->nsmall++;
            return b;
        }
    }
    t->small_free = b->next;
    return b;
}

static void small_fini(tsr_transport_t *t)
{
    tsr_smallbuf_t *lists[2] = {t->small_free, atomic_exchange(&t->small_back, NULL)};
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            tsr_smallbuf_t *next = lists[i]->next;
            tsr_mem_free(t->mem, lists[i]);
            lists[i] = next;
        }
    t->small_free = NULL;
    t->nsmall = 0;
}

void tsr_rpc_msg_release(tsr_transport_t *t, tsr_rpc_msg_t *m)
{
    if (!m)
        return;
    if (m->small_)
        small_put(t, m->small_);
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
        small_put(t, m->small_);
    if (m->ucx_desc_)
        ucp_am_data_release(t->worker, m->ucx_desc_);
    if (m->heap_)
        tsr_mem_free(t->mem, m->heap_);
    memset(m, 0, sizeof(*m));
}

tsr_call_t *tsr__call_lookup_locked(tsr_transport_t *t, uint64_t id)
{
    tsr_call_t *c = t->slots[id & t->slot_mask];
    return c && c->id == id ? c : NULL;
}

void tsr__call_unlink_locked(tsr_transport_t *t, tsr_call_t *c)
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


void tsr__call_maybe_free_locked(tsr_transport_t *t, tsr_call_t *c)
{
    if (c->finished && c->sent && c->consumed) {
        tsr__msg_release_locked(t, &c->reply);
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

tsr_rpc_req_t *tsr__req_alloc_locked(tsr_transport_t *t)
{
    tsr_rpc_req_t *r = t->req_cache;
    if (r) {
        t->req_cache = r->next;
        t->nreq_cache--;
        memset(r, 0, offsetof(tsr_rpc_req_t, small)); /* small[] is written before read */
        return r;
    }
    return tsr_mem_calloc(t->mem, 1, sizeof(*r));
}

void tsr__req_free_locked(tsr_transport_t *t, tsr_rpc_req_t *r)
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
void tsr__call_finish_locked(tsr_transport_t *t, tsr_call_t *c, tsr_status_t status,
                             tsr_rpc_msg_t *reply)
{
    if (c->finished) {
        if (reply)
            tsr__msg_release_locked(t, reply);
        return;
    }
    c->finished = true;
    c->status = status;
    if (reply)
        c->reply = *reply;
    tsr__call_unlink_locked(t, c);
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
    if (UCS_PTR_IS_ERR(r)) {
        ucs_status_t s = UCS_PTR_STATUS(r);
        tsr__call_unlink_locked(t, c);
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
        tsr__call_finish_locked(t, c, TSR_ERR_TIMEOUT, NULL);
    }
    if (!c->sent) /* UCX still reads our header and the caller's payload */
        (void)tsr__wait_locked(t, call_sent, c, -1, -1, NULL);
    tsr_status_t status = c->status;
    *reply = c->reply;
    memset(&c->reply, 0, sizeof(c->reply));
    c->consumed = true;
    tsr__call_maybe_free_locked(t, c);
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
