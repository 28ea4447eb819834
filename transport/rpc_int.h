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
tsr_call_t *tsr__call_lookup_locked(tsr_transport_t *t, uint64_t id);
/* Takes c off t->pending and frees its slot (idempotent). */
void tsr__call_unlink_locked(tsr_transport_t *t, tsr_call_t *c);
/* Frees (or caches) c once it is finished, sent and consumed. */
void tsr__call_maybe_free_locked(tsr_transport_t *t, tsr_call_t *c);
/* Records the outcome of c (once) and hands it to its waiter; a reply
 * given for an already finished call is released. */
void tsr__call_finish_locked(tsr_transport_t *t, tsr_call_t *c, tsr_status_t status,
                             tsr_rpc_msg_t *reply);
/* A pooled buffer for a small response (TSR_SMALLBUF_BYTES), or NULL
 * when the pool is at its cap or memory is out (then use the heap). */
tsr_smallbuf_t *tsr__small_get_locked(tsr_transport_t *t);
/* A zeroed request from the free list (or the heap); NULL when out of memory. */
tsr_rpc_req_t *tsr__req_alloc_locked(tsr_transport_t *t);
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
