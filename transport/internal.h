/*
 * internal.h - private structures of the transport layer, shared by
 * context.c, progress.c, rpc.c, rpc_recv.c, rpc_reply.c and rma.c (and
 * white-box tests).
 *
 * Locking: t->lock serializes every call into UCX on t->worker and every
 * field marked [L]. UCX callbacks run inside ucp_worker_progress, which we
 * only call with the lock held, so callbacks may touch [L] fields freely but
 * must never call a public transport function (they would re-lock).
 * User callbacks are therefore *queued* (t->dq_*) and run by tsr__dispatch
 * with no lock held.
 *
 * The owner fast path (progress.c): a thread that polls (a blocking call
 * waiting for its completion, tsr_transport_wait, the progress thread) takes
 * the lock once and keeps it across its polling iterations, instead of once
 * per ucp_worker_progress. Other threads announce themselves in
 * t->contenders (atomic) before they block on the lock; the polling owner
 * reads that counter (one relaxed load, no atomic RMW) every iteration and
 * hands the lock over when it is nonzero (and, for the rest of that wait,
 * releases it every iteration). So the uncontended case costs one
 * trylock/unlock pair per API call, and a contender waits about one polling
 * iteration. The lock is never held while user code runs.
 *
 * Ownership of a call (tsr_call_t): an async call's record lives until
 * three things are true: finished (response, error or timeout recorded),
 * sent (UCX no longer references its header and payload) and consumed (its
 * callback has run); tsr__call_maybe_free checks all three. A blocking
 * call's record is on its caller's stack: tsr_rpc_call returns only once it
 * is finished (which takes it out of the call table and t->pending) and
 * sent, so nothing refers to it afterwards.
 */
#ifndef TSR_TRANSPORT_INTERNAL_H
#define TSR_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ucp/api/ucp.h>

#include "transport.h"
#include "spin_budget.h"
#include "wire.h"

#define TSR_DEFAULT_SPIN_US 100u
#define TSR_DEFAULT_MAX_CALLS 4096u
/* A sleeping waiter re-checks at least this often, whatever happens. */
#define TSR_MAX_SLEEP_MS 100
/* Request payloads up to this size live inside the request (rpc_recv.c). */
#define TSR_REQ_INLINE 64u
/* Timeouts of async calls are checked at this granularity. */
#define TSR_TIMEOUT_SCAN_NS 1000000ll

typedef enum tsr_peer_state {
    TSR_PEER_CONNECTING = 0, /* endpoint created, handshake not done */
    TSR_PEER_UP = 1,         /* handshake done */
    TSR_PEER_DOWN = 2,       /* failed or closed; no new operations */
} tsr_peer_state_t;

struct tsr_peer {
    tsr_peer_t *prev, *next;     /* [L] t->peers list */
    tsr_transport_t *t;
    ucp_ep_h ep;                 /* [L] NULL once closed */
    void *close_req;             /* [L] in-flight ucp_ep_close_nbx request */
    uint32_t node_id;            /* [L] 0 until the handshake */
    tsr_peer_state_t state;      /* [L] */
    bool outgoing;               /* we connected (we send HELLO, expect ACK) */
    bool fail_pending;           /* [L] UCX reported an error; finish after progress */
    bool forgotten;              /* [L] owner called tsr_peer_forget: no more events */
    /* [L] Internal references that keep a forgotten peer's memory alive:
     * queued or running event items, unanswered requests, live calls and
     * timed non-blocking ops that point at it. A forgotten peer is freed
     * (tsr__peers_attend_locked) once refs is 0 and its close completed. */
    unsigned refs;
    /* Routes (route.c, wire.h): `route` is what this peer's requests to us
     * carry (we gave it in the handshake; 0 when the table was full: then
     * they name their sender by UCX's reply endpoint), `remote_route` what
     * ours to it carry (0 until its handshake gave one, or it gave none).
     * route_wire: our route as the handshake's payload, little-endian; it
     * lives here because UCX may still read it after the send call. */
    uint64_t route, remote_route;
    uint8_t route_wire[TSR_WIRE_ROUTE_LEN];
    tsr_status_t fail_status;    /* [L] why it went down */
    char fail_detail[96];        /* [L] UCX's text */
};

/* Something to run outside the lock: an event, a request, a completion. */
typedef enum tsr_item_kind {
    TSR_ITEM_EVENT = 1,
    TSR_ITEM_REQUEST = 2,
    TSR_ITEM_CALL_DONE = 3,
    TSR_ITEM_OP_DONE = 4,
    TSR_ITEM_SEND_DONE = 5,
} tsr_item_kind_t;

typedef struct tsr_item {
    struct tsr_item *next;
    tsr_item_kind_t kind;
} tsr_item_t;

typedef struct tsr_event_item {
    tsr_item_t item;
    tsr_transport_event_t ev;
    char detail[96];
} tsr_event_item_t;

typedef struct tsr_handler {
    tsr_rpc_handler_fn fn;
    void *arg;
    bool inline_;               /* TSR_RPC_INLINE: may run inside the receive path */
} tsr_handler_t;

struct tsr_rpc_req {
    tsr_item_t item;
    tsr_rpc_req_t *prev, *next; /* [L] t->reqs: every request not yet answered */
    tsr_peer_t *peer;
    uint16_t type;
    uint64_t call_id;
    tsr_handler_t handler;      /* looked up when the request arrived (under the lock) */
    unsigned handler_epoch;     /* t->handler_epoch at that lookup */
    tsr_rpc_msg_t msg;          /* the payload; may point into small[] */
    /* Eager payloads up to TSR_REQ_INLINE bytes are copied here instead of
     * into a heap buffer (no malloc/free per small request; the request
     * itself comes from a free list). Last, so recycling a request clears
     * only the fields before it. tsr_rpc_req_take copies it out. */
    _Alignas(16) uint8_t small[TSR_REQ_INLINE]; /* aligned like malloc memory */
};

typedef struct tsr_call {
    tsr_item_t item;            /* queued as TSR_ITEM_CALL_DONE when async */
    struct tsr_call *prev, *next; /* [L] t->pending (unfinished calls) */
    uint64_t id;
    uint32_t slot;
    uint16_t type;
    tsr_peer_t *peer;
    uint8_t hdr[TSR_WIRE_CALL_REQ_LEN]; /* must outlive the UCX send */
    int64_t deadline_ns;        /* < 0: none */
    bool finished, sent, consumed, blocking;
    bool waiter_sleeping;       /* [L] the blocking waiter sleeps on the fd */
    tsr_status_t status;
    tsr_rpc_msg_t reply;
    tsr_rpc_done_fn done;
    void *arg;
} tsr_call_t;

/* A pooled buffer for a small response's payload (rpc.c): one of a ring
 * the receive path takes from in order, under the lock; whoever releases
 * the message (any thread, no lock) gives it back by clearing `busy` - a
 * plain store, where a free-list push was a locked CAS on every call. 128
 * bytes: the flag and the payload share the first line. */
#define TSR_SMALLBUF_BYTES 112u
typedef struct tsr_smallbuf {
    atomic_uint busy;           /* 1 while a message holds it */
    _Alignas(16) uint8_t bytes[TSR_SMALLBUF_BYTES]; /* aligned like malloc memory */
} tsr_smallbuf_t;

/* A reply (or error response) being sent: header and optional payload copy. */
typedef struct tsr_send {
    tsr_item_t item;            /* queued as TSR_ITEM_SEND_DONE when done is set */
    tsr_transport_t *t;
    uint8_t hdr[TSR_WIRE_CALL_REQ_LEN]; /* a response uses TSR_WIRE_CALL_HDR_LEN */
    void *copy;                 /* payload copy we own, or NULL */
    void (*done)(void *done_arg, tsr_status_t status);
    void *done_arg;
    tsr_status_t status;
} tsr_send_t;

/* A non-blocking RMA/atomic operation. */
typedef struct tsr_op {
    tsr_item_t item;
    tsr_transport_t *t;
    struct tsr_op *tprev, *tnext; /* [L] t->timed_ops, while timed and in flight */
    tsr_peer_t *peer;           /* timed ops only (holds a peer reference) */
    int64_t deadline_ns;        /* timed ops only */
    bool timed;                 /* [L] on t->timed_ops */
    bool timed_out;             /* [L] its deadline passed: report TSR_ERR_TIMEOUT */
    uint64_t operand;           /* atomics: X of the UCX table */
    uint64_t result;            /* atomics: reply buffer (Z in, old value out) */
    tsr_rma_done_fn done;
    void *arg;
    tsr_status_t status;
} tsr_op_t;

struct tsr_region {
    tsr_region_t *prev, *next;  /* [L] t->regions */
    ucp_mem_h memh;
    void *addr;
    size_t len;
};

struct tsr_rkey {
    tsr_rkey_t *prev, *next;    /* [L] t->rkeys */
    tsr_peer_t *peer;
    ucp_rkey_h rkey;            /* NULL once its peer was forgotten */
    uint64_t addr;
    uint64_t len;
};

/* shm_guard.c: our shared-memory receive FIFOs, watched for an element a
 * dead sender claimed but never wrote (it would block the FIFO for good). */
#define TSR_SHM_MAX_FIFOS 4
typedef struct tsr_shm_fifo {
    uint8_t *ctl;               /* UCX's FIFO control block (mapping start) */
    unsigned long inode;        /* its mapping's (registered process-wide) */
    unsigned size, elem_size;
    uint64_t stale_index;       /* [L] claimed-but-unwritten element last seen, or ~0 */
    int64_t stale_since_ns;     /* [L] since when */
} tsr_shm_fifo_t;

typedef struct tsr_shm_guard {
    tsr_shm_fifo_t fifo[TSR_SHM_MAX_FIFOS];
    unsigned n;                 /* 0: nothing to watch (no shared memory, other UCX) */
    unsigned tick;              /* [L] progress calls since the last look */
    int64_t next_check_ns;      /* [L] */
} tsr_shm_guard_t;

struct tsr_transport {
    tsr_mem_t *mem;
    /* The transport lock (progress.c): 0 free, 1 held, 2 held and some
     * thread may sleep on it (a futex). Not a pthread mutex: the
     * uncontended pair is one CAS and one exchange, inline. */
    atomic_int lock;
    ucp_context_h ucp;
    ucp_worker_h worker;
    ucp_listener_h listener;
    int efd;                    /* the worker's event fd */
    uint16_t port;
    uint32_t node_id;
    int64_t spin_ns;            /* the longest spin: params.spin_us */
    bool spin_yield;            /* params.spin_yield (progress.c) */
    bool spin_fixed;            /* params.spin_fixed: every wait spins spin_ns */
    /* [L] What waits spin now (spin_budget.h): one budget for
     * callers waiting for their own operation, one for tsr_transport_wait
     * (a server waiting for requests), whose waits differ. */
    tsr_spin_budget_t spin_call, spin_serve;
    /* [L] Idle polls between two clock reads in the wait loops (progress.c:
     * adapted to what an idle poll costs, so spin_ns means time on every
     * wire); 0 until the first measurement (TSR_WAIT_CLOCK_EVERY). */
    unsigned clock_every;
    tsr_dispatch_mode_t dispatch;
    tsr_transport_event_fn on_event;
    void *event_arg;
    char tls[128];              /* transports in use, for reports */
    uint8_t hello_hdr[TSR_WIRE_HDR_LEN]; /* constant: live as long as t */
    uint8_t ack_hdr[TSR_WIRE_HDR_LEN];

    tsr_peer_t *peers;          /* [L] */
    bool peer_attention;        /* [L] some peer has fail_pending or close_req */
    /* [L] The route table (route.c): slot -> peer (NULL: free), the slot's
     * last random tag (bits 16-31, so a reuse never repeats it), how many
     * slots exist, where the next search starts. */
    tsr_peer_t **routes;
    uint16_t *route_tag;
    uint32_t nroutes, route_next;

    tsr_call_t **slots;         /* [L] call id -> call: slot = id & slot_mask */
    uint32_t slot_mask;
    unsigned slot_bits;
    uint32_t *free_slots;       /* [L] stack of free slot indices */
    uint32_t nfree;
    uint64_t call_gen;          /* [L] generation counter for call ids */
    tsr_call_t *pending;        /* [L] unfinished calls, for timeouts */
    int64_t next_scan_ns;       /* [L] */
    unsigned scan_tick;         /* [L] progress calls since the clock was read */
    int64_t earliest_deadline_ns; /* [L] < 0: no async deadline pending */

    tsr_handler_t *handlers;    /* [L] TSR_RPC_MAX_TYPES entries */
    tsr_rpc_req_t *reqs;        /* [L] requests not yet answered */
    tsr_region_t *regions;      /* [L] */
    tsr_rkey_t *rkeys;          /* [L] */

    tsr_item_t *dq_head, *dq_tail; /* [L] dispatch queue */
    /* [L] Set by the polling loops around ucp_worker_progress when the
     * thread that progresses may run handlers now (dispatch mode, not
     * nested in a callback): only then does an inline handler run inside
     * the receive path (rpc_recv.c). False everywhere else. */
    bool inline_ok;
    /* [L] The request whose inline handler runs now, while it is neither
     * on t->reqs nor holding a peer reference (rpc_recv.c: both are taken
     * only if the handler returns without answering); NULL otherwise. */
    tsr_rpc_req_t *inline_req;
    /* [L] Free lists of calls and requests: one of each per RPC otherwise
     * costs a calloc/free pair on the latency path. Capped, see rpc.c. */
    tsr_call_t *call_cache;
    tsr_rpc_req_t *req_cache;
    unsigned ncall_cache, nreq_cache;
    tsr_op_t *op_cache;         /* [L] non-blocking RMA/atomic ops (rma.c), same cap */
    /* Small responses' buffers (rpc.c): a ring of TSR_SMALL_RING, taken in
     * turn from small_next; NULL until the first small response. */
    tsr_smallbuf_t *small_ring;
    unsigned small_next;        /* [L] */
    tsr_op_t *timed_ops;        /* [L] posted atomics with a deadline (rma.c) */
    /* Bumped by tsr_rpc_unregister: a request whose handler was looked up
     * under an older epoch looks it up again before it runs (rpc.c). */
    atomic_uint handler_epoch;
    unsigned nop_cache;
    tsr_transport_stats_t stats;   /* [L] */
    tsr_shm_guard_t shm;        /* shm_guard.c */

    atomic_int sleepers;        /* threads asleep in poll() on efd */
    unsigned blind_sleepers;    /* [L] of which waiters no finisher signals (progress.c) */
    bool blind_signaled;        /* [L] signaled them since the last one went to sleep */
    atomic_int contenders;      /* threads waiting for t->lock (see above) */
    pthread_t thread;
    bool thread_running;
    atomic_bool thread_stop;
};

/* Copies a small payload (an RPC's usual 8-32 bytes) with a few moves
 * instead of a call into libc's memcpy (two per round trip, ~25
 * instructions each with the call); longer ones go to memcpy. src and dst
 * do not overlap. */
static inline void tsr__copy_small(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n > 16 && n <= 32) {
        uint64_t a[2], b[2];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(d, a, 16);
        memcpy(d + n - 16, b, 16);
    } else if (n > 0) {
        memcpy(d, s, n);
    }
}

/* ---- shared helpers (progress.c) ---- */
int64_t tsr__now_ns(void);
int64_t tsr__deadline(int timeout_ms); /* < 0 when timeout_ms < 0 */
/* Slow halves of tsr__lock / tsr__unlock (progress.c). */
void tsr__lock_slow(tsr_transport_t *t);
void tsr__unlock_wake(tsr_transport_t *t);
/* Takes t->lock: one CAS when free (the uncontended fast path); otherwise
 * counts itself in t->contenders so a polling owner hands the lock over,
 * spins briefly, then sleeps on the lock word (futex). */
static inline void tsr__lock(tsr_transport_t *t)
{
    int free_ = 0;
    if (!atomic_compare_exchange_strong_explicit(&t->lock, &free_, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        tsr__lock_slow(t);
}
static inline void tsr__unlock(tsr_transport_t *t)
{
    if (atomic_exchange_explicit(&t->lock, 0, memory_order_release) == 2)
        tsr__unlock_wake(t); /* someone may sleep on it */
}
/* The transport whose lock this thread holds while it runs an inline
 * handler (rpc_recv.c), else NULL. A reply or drop from inside such a
 * handler must not take the lock again; tsr__lock_slow aborts with a
 * message instead of deadlocking when anything else tries. Thread-local by
 * nature: it describes this thread's stack. */
extern _Thread_local tsr_transport_t *tsr__inline_owner;
/* [L] Appends an item to the dispatch queue. */
void tsr__enqueue(tsr_transport_t *t, tsr_item_t *it);
/* ucp_worker_progress plus everything that must follow it. [L]
 * inline_ok: this thread may run handlers now (see t->inline_ok). */
unsigned tsr__progress_locked(tsr_transport_t *t, bool inline_ok);
/* Runs queued callbacks (no lock held on entry). */
unsigned tsr__dispatch(tsr_transport_t *t);
/* Waits until cond(arg) (evaluated with the lock held) or the deadline.
 * Returns TSR_OK or TSR_ERR_TIMEOUT. sleeping (may be NULL) is set [L] while
 * this thread sleeps, so a finisher knows to signal. */
typedef bool (*tsr_cond_fn)(void *arg);
tsr_status_t tsr__wait_cond(tsr_transport_t *t, tsr_cond_fn cond, void *arg,
                            int64_t deadline_ns, bool *sleeping);
/* [L] Same, entered and left with the lock held (it is released only to
 * sleep, to run callbacks, or to hand it to a contender). The deadline is
 * deadline_ns when >= 0, else timeout_ms after the first time the loop reads
 * the clock (lazily: a wait that ends within a few polls reads no clock),
 * else none (both < 0). */
tsr_status_t tsr__wait_locked(tsr_transport_t *t, tsr_cond_fn cond, void *arg,
                              int64_t deadline_ns, int timeout_ms, bool *sleeping);
/* Waits for a UCX request (status ptr) to complete; frees it. */
tsr_status_t tsr__wait_request(tsr_transport_t *t, void *req, int64_t deadline_ns,
                               tsr_peer_t *peer, tsr_error_t *err, const char *what);
/* [L] Same with the lock held and a lazy timeout (see tsr__wait_locked). A
 * request that already completed (checked inline) costs no polling. */
tsr_status_t tsr__wait_request_locked(tsr_transport_t *t, void *req, int timeout_ms,
                                      tsr_peer_t *peer, tsr_error_t *err, const char *what);
tsr_status_t tsr__status_from_ucs(ucs_status_t s);

/* ---- context.c ---- */
/* [L] The peer whose endpoint is ep, or NULL. */
tsr_peer_t *tsr__peer_by_ep(tsr_transport_t *t, ucp_ep_h ep);
/* [L] Routes (route.c): gives p a route (p->route; 0 when none is left -
 * the table holds 65536 - or no random bytes came), takes it back (the
 * slot's next user gets new random bits), and finds the live peer a
 * request's route names (NULL for a stale, forged or freed one: the whole
 * 64 bits must match). tsr__route_fini frees the table. */
void tsr__route_assign_locked(tsr_transport_t *t, tsr_peer_t *p);
void tsr__route_release_locked(tsr_transport_t *t, tsr_peer_t *p);
static inline tsr_peer_t *tsr__route_lookup_locked(const tsr_transport_t *t, uint64_t route)
{
    uint32_t slot = TSR_WIRE_ROUTE_SLOT(route);
    tsr_peer_t *p = slot < t->nroutes ? t->routes[slot] : NULL;
    return p && p->route == route ? p : NULL;
}
void tsr__route_fini(tsr_transport_t *t);
/* [L] Marks the peer DOWN now: fails its calls, closes its endpoint (force),
 * queues PEER_DOWN. Safe outside UCX callbacks only. */
void tsr__peer_fail_locked(tsr_transport_t *t, tsr_peer_t *p, tsr_status_t status,
                           const char *detail);
/* [L] Finishes pending peer failures and endpoint closes (after progress). */
unsigned tsr__peers_attend_locked(tsr_transport_t *t);
void tsr__event_locked(tsr_transport_t *t, tsr_transport_event_kind_t kind, tsr_peer_t *p,
                       tsr_status_t status, const char *detail);
void tsr__send_hello_ack_locked(tsr_transport_t *t, tsr_peer_t *p);
/* [L] Peer references (see struct tsr_peer). Unref never frees at once (it
 * may run inside a UCX callback): it flags the peer for attention. */
static inline void tsr__peer_ref_locked(tsr_peer_t *p)
{
    p->refs++;
}
static inline void tsr__peer_unref_locked(tsr_transport_t *t, tsr_peer_t *p)
{
    if (p->refs > 0)
        p->refs--;
    if (p->refs == 0 && p->forgotten)
        t->peer_attention = true; /* freed by the next tsr__peers_attend_locked */
}

/* ---- rpc.c, rpc_recv.c, rpc_reply.c (rpc_int.h: what they share) ---- */
/* The AM callbacks of full headers (TSR_WIRE_AM_ID) and call headers
 * (TSR_WIRE_CALL_AM_ID). */
ucs_status_t tsr__am_recv_cb(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param);
ucs_status_t tsr__am_call_cb(void *arg, const void *header, size_t header_length, void *data,
                             size_t length, const ucp_am_recv_param_t *param);
tsr_status_t tsr__rpc_init(tsr_transport_t *t, unsigned max_calls, tsr_error_t *err);
void tsr__rpc_fini(tsr_transport_t *t);
/* [L] Fails every unfinished call on p with status. */
void tsr__rpc_fail_peer_locked(tsr_transport_t *t, tsr_peer_t *p, tsr_status_t status);
/* [L] Expires calls past their deadline. */
unsigned tsr__rpc_expire_locked(tsr_transport_t *t, int64_t now);
/* Runs one queued item's user callback (no lock held). Returns true when
 * the item must then go through tsr__recycle_item_locked. */
bool tsr__run_item(tsr_transport_t *t, tsr_item_t *it);
/* [L] Frees or caches an item whose callback has run. */
void tsr__recycle_item_locked(tsr_transport_t *t, tsr_item_t *it);
/* For tests: sends a raw message (any header bytes) to the peer on
 * TSR_WIRE_AM_ID with UCP_AM_SEND_FLAG_REPLY (as requests are sent), or on
 * am_id with am_flags. */
tsr_status_t tsr__send_raw(tsr_transport_t *t, tsr_peer_t *p, const void *hdr, size_t hdr_len,
                           const void *data, size_t len, int timeout_ms, tsr_error_t *err);
tsr_status_t tsr__send_raw_flags(tsr_transport_t *t, tsr_peer_t *p, unsigned am_id,
                                 const void *hdr, size_t hdr_len, const void *data, size_t len,
                                 uint32_t am_flags, int timeout_ms, tsr_error_t *err);

/* ---- shm_guard.c ---- */
/* Whether to watch shared-memory FIFOs (UCX 1.13, or TSR_SHM_GUARD=1). */
bool tsr__shm_guard_wanted(void);
/* Inodes of UCX's shared-memory mappings now (before the worker exists). */
unsigned tsr__shm_guard_snapshot(unsigned long *inodes, unsigned cap);
/* Finds the receive FIFOs the new worker created (not in before[], nor
 * registered by another transport) and registers them. Between begin and
 * end (the process-wide mutex: snapshot, worker creation, init). */
void tsr__shm_guard_begin(void);
void tsr__shm_guard_end(void);
void tsr__shm_guard_init(tsr_transport_t *t, const unsigned long *before, unsigned nbefore);
/* Unregisters t's FIFOs (before its worker, and so the mappings, go). */
void tsr__shm_guard_fini(tsr_transport_t *t);
/* [L] At most every 50 ms: publishes an element a dead sender left claimed
 * but unwritten for 1 s. Returns how many it repaired. */
unsigned tsr__shm_guard_check_locked(tsr_transport_t *t, int64_t now);

/* ---- rma.c ---- */
void tsr__rma_fini(tsr_transport_t *t);
/* [L] Returns a finished op to the free list (or frees it). */
void tsr__op_free_locked(tsr_transport_t *t, tsr_op_t *op);
/* [L] Destroys the UCX rkeys unpacked through p (its endpoint is closing). */
void tsr__rma_peer_closing_locked(tsr_transport_t *t, tsr_peer_t *p);
/* [L] Fails the peers of timed ops past their deadline (their ops then
 * complete with TSR_ERR_TIMEOUT). Returns how many expired. */
unsigned tsr__rma_expire_locked(tsr_transport_t *t, int64_t now);

#endif /* TSR_TRANSPORT_INTERNAL_H */
