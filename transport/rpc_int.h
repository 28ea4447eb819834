/*
 * rpc_int.h - what the three RPC files share (private to transport/):
 *
 *   rpc.c        the call table and the free lists of calls and requests,
 *                the client side (tsr_rpc_call, tsr_rpc_call_async),
 *                timeouts, teardown
 *   rpc_recv.c   the receive path: the UCX AM callback, header checks,
 *                taking payloads (eager copy, kept UCX buffer, rendezvous)
 *   rpc_reply.c  the server side: handler table, requests, replies, and
 *                running queued items (tsr__run_item / recycle)
 *
 * Every function here is [L]: called with t->lock held (or from a UCX
 * callback, which runs inside ucp_worker_progress under the lock).
 */
#ifndef TSR_TRANSPORT_RPC_INT_H
#define TSR_TRANSPORT_RPC_INT_H

#include "internal.h"

/* Free-list caps for calls and requests (a burst beyond them is freed). */
#define TSR_CACHE_MAX 256u

/* ---- rpc.c ---- */
/* Releases a message's UCX descriptor or heap copy and clears it. */
void tsr__msg_release_locked(tsr_transport_t *t, tsr_rpc_msg_t *m);
/* The live call with exactly this id (slot and generation), or NULL. */
static inline tsr_call_t *tsr__call_lookup_locked(tsr_transport_t *t, uint64_t id)
{
    tsr_call_t *c = t->slots[id & t->slot_mask];
    return c && c->id == id ? c : NULL;
}
/* Takes c off t->pending and frees its slot (idempotent). */
static inline void tsr__call_unlink_locked(tsr_transport_t *t, tsr_call_t *c)
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
/* Frees (or caches) c once it is finished, sent and consumed. */
void tsr__call_maybe_free_locked(tsr_transport_t *t, tsr_call_t *c);
/* Records the outcome of c (once) and hands it to its waiter; a reply
 * given for an already finished call is released. Inline: every response
 * ends here. */
static inline void tsr__call_finish_locked(tsr_transport_t *t, tsr_call_t *c,
                                           tsr_status_t status, tsr_rpc_msg_t *reply)
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
/* A pooled buffer for a small response (TSR_SMALLBUF_BYTES) from the ring
 * (rpc.c), or NULL when the one under the cursor is still held or memory
 * is out (then use the heap). */
#define TSR_SMALL_RING 256u /* a power of two */
tsr_smallbuf_t *tsr__small_ring_alloc_locked(tsr_transport_t *t);
static inline tsr_smallbuf_t *tsr__small_get_locked(tsr_transport_t *t)
{
    if (__builtin_expect(!t->small_ring, 0))
        return tsr__small_ring_alloc_locked(t);
    tsr_smallbuf_t *b = &t->small_ring[t->small_next];
    t->small_next = (t->small_next + 1) & (TSR_SMALL_RING - 1);
    /* Acquire: the releaser's reads of the old bytes come before our writes. */
    if (atomic_load_explicit(&b->busy, memory_order_acquire))
        return NULL;
    atomic_store_explicit(&b->busy, 1, memory_order_relaxed);
    return b;
}
/* A zeroed request from the free list (or the heap); NULL when out of memory. */
tsr_rpc_req_t *tsr__req_alloc_locked(tsr_transport_t *t);
/* The same, not zeroed: the caller sets every field before the small[]. */
tsr_rpc_req_t *tsr__req_get_locked(tsr_transport_t *t);
/* Drops the request's peer reference and caches or frees it. */
void tsr__req_free_locked(tsr_transport_t *t, tsr_rpc_req_t *r);

/* ---- rpc_reply.c ---- */
/* Sends a response header (+payload) to p. copy: duplicate the payload if
 * the send cannot finish at once; fast: may try the immediate-completion
 * path (UCX sends at once or refuses: safe inside a UCX callback, as an
 * inline handler's reply is); done: called (queued) when the payload is no
 * longer used. */
tsr_status_t tsr__send_response_locked(tsr_transport_t *t, tsr_peer_t *p, uint64_t call_id,
                                       uint16_t type, tsr_status_t status, const void *data,
                                       size_t len, bool copy, bool fast,
                                       void (*done)(void *, tsr_status_t), void *done_arg);
/* Takes req off t->reqs, releases its payload and frees it. */
void tsr__req_unlink_free_locked(tsr_transport_t *t, tsr_rpc_req_t *req);

#endif /* TSR_TRANSPORT_RPC_INT_H */
