/*
 * transport.h - Tessera's transport layer over UCX: one context per process,
 * peers by node id, RPC over active messages, registered memory, one-sided
 * get/put and 64-bit remote atomics.
 *
 * Everything here is a thin, checked layer over UCP (UCX's protocol layer);
 * UCX chooses the wires (shared memory, TCP, RDMA verbs, CUDA copies) from its
 * own settings (UCX_TLS, UCX_NET_DEVICES, ...; see docs/transport.md).
 *
 * Threads and progress. A tsr_transport_t owns one ucp_worker. Every UCX call
 * on it is serialized by the transport's mutex, so any thread may call any
 * function. A thread that polls (a blocking call, tsr_transport_wait, the
 * progress thread) keeps the mutex across its polling loop and hands it to
 * any other thread that asks, so the common single-threaded case takes it
 * once per operation and others wait about one poll (docs/transport.md).
 * Nothing happens on the wire unless some thread *progresses* the
 * worker: a blocking call progresses while it waits (spinning for
 * params.spin_us, then sleeping on the worker's event fd), and an owner whose
 * process also *serves* requests either runs its own loop over
 * tsr_transport_wait() / tsr_transport_fd(), or starts the built-in progress
 * thread (tsr_transport_start_thread). See docs/transport.md for why.
 *
 * Callbacks (RPC handlers, event callbacks, completions of *_async / *_nb
 * operations) never run inside UCX: they are queued and run by the thread that
 * progresses, with no lock held, so they may call any transport function.
 * The exception: handlers registered TSR_RPC_INLINE (tsr_rpc_register_flags),
 * which run inside the receive path under a stricter contract.
 * Handlers should be short; a handler that must wait keeps its tsr_rpc_req_t
 * and replies later from any thread.
 *
 * Failures. An endpoint error (peer died, connection reset, an operation that
 * could not be completed within its timeout) marks the peer DOWN: every call
 * pending on it fails with TSR_ERR_UNAVAILABLE (or TSR_ERR_TIMEOUT), and the
 * owner gets one TSR_TRANSPORT_PEER_DOWN event. Nothing hangs past its timeout.
 *
 * Errors: functions return tsr_status_t and fill err (may be NULL) once, where
 * the failure is detected, with UCX's own error text where it came from UCX.
 */
#ifndef TSR_TRANSPORT_H
#define TSR_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_transport tsr_transport_t;
typedef struct tsr_peer tsr_peer_t;
typedef struct tsr_rpc_req tsr_rpc_req_t;
typedef struct tsr_region tsr_region_t;
typedef struct tsr_rkey tsr_rkey_t;

/* ---- context ---------------------------------------------------------------- */

typedef enum tsr_transport_event_kind {
    TSR_TRANSPORT_PEER_UP = 1,   /* handshake done: peer's node id is known */
    TSR_TRANSPORT_PEER_DOWN = 2, /* endpoint failed or was closed; status says why */
} tsr_transport_event_kind_t;

typedef struct tsr_transport_event {
    tsr_transport_event_kind_t kind;
    tsr_peer_t *peer;    /* valid until tsr_peer_forget (or transport destroy); no event
                          * for a peer is delivered once tsr_peer_forget was called */
    uint32_t node_id;    /* the peer's node id (0 if it died before saying it) */
    tsr_status_t status; /* PEER_DOWN: TSR_ERR_UNAVAILABLE, TSR_ERR_TIMEOUT, ... */
    const char *detail;  /* PEER_DOWN: UCX's reason ("Connection reset by remote peer") */
} tsr_transport_event_t;

typedef void (*tsr_transport_event_fn)(void *arg, const tsr_transport_event_t *ev);

/* Which threads run RPC handlers and completion callbacks. */
typedef enum tsr_dispatch_mode {
    TSR_DISPATCH_ANY = 0,           /* any thread that progresses, blocking calls included */
    TSR_DISPATCH_PROGRESS_ONLY = 1, /* only tsr_transport_progress/wait and the thread */
} tsr_dispatch_mode_t;

typedef struct tsr_transport_params {
    uint32_t node_id;          /* this process' node id, nonzero */
    const char *listen_host;   /* NULL: no listener; "127.0.0.1" is the safe default */
    uint16_t listen_port;      /* 0: any free port (see tsr_transport_port) */
    const char *tls;           /* NULL: UCX_TLS from the environment (UCX's default) */
    unsigned spin_us;          /* spin this long before sleeping; 0 = default (100) */
    /* While spinning, offer the core to other runnable threads about every
     * 10 us (sched_yield; it returns at once when none wants it). For
     * processes that may outnumber the cores and wait on each other (many
     * client processes of one server): the waiters' spinning then no
     * longer takes the CPU from the server they wait for. Off by default:
     * beside CPU-bound work, a yield can cost the waiter a time slice. */
    bool spin_yield;
    /* Spin the whole spin_us on every wait. By default a transport adapts
     * each wait's spin to what recent waits needed (docs/transport.md,
     * "Adaptive spin"): a spin that keeps ending in sleep only took the
     * CPU from whoever was to answer. For latency benchmarks on dedicated
     * cores. */
    bool spin_fixed;
    unsigned max_calls;        /* RPCs in flight at once; 0 = default (4096) */
    tsr_dispatch_mode_t dispatch;
    tsr_transport_event_fn on_event; /* may be NULL */
    void *event_arg;
} tsr_transport_params_t;

/* Creates the UCP context (AM, RMA, AMO64, TAG, WAKEUP), the worker, and the
 * listener when params->listen_host is set. mem may be NULL. */
tsr_status_t tsr_transport_create(tsr_mem_t *mem, const tsr_transport_params_t *params,
                                  tsr_transport_t **out, tsr_error_t *err);
/* Stops the thread, closes every endpoint, frees everything. Accepts NULL.
 * Requests a handler still holds and regions/rkeys not yet freed are released.
 * Messages (replies) not yet released must be released before: their bytes
 * may live in the transport's buffers, which go with it. */
void tsr_transport_destroy(tsr_transport_t *t);

uint32_t tsr_transport_node_id(const tsr_transport_t *t);
/* The listener's port (after binding port 0), 0 without a listener. */
uint16_t tsr_transport_port(const tsr_transport_t *t);
/* The transports UCX selected, e.g. "tcp" or "posix,cma", for reports. */
const char *tsr_transport_tls(const tsr_transport_t *t);
/* Whether every transport configured (params.tls, else UCX_TLS) is TCP (or
 * self): then UCX has no native RMA or atomics to any peer and emulates
 * each get, put and atomic with a message the target's worker executes,
 * so a call that does the same work costs no more and can carry several
 * operations. UCX does not say which transport an endpoint ended up on:
 * "default" and exclusion lists count as "may be native" (false). */
bool tsr_transport_tcp_only(const tsr_transport_t *t);

/* ---- progress --------------------------------------------------------------- */

/* One non-blocking round: progress UCX, expire timeouts, run queued callbacks.
 * Returns how many things happened (0: idle). */
unsigned tsr_transport_progress(tsr_transport_t *t);
/* Progress until something happens or timeout_ms passes (spin first, then
 * sleep on the event fd). timeout_ms < 0: no limit. Returns events handled. */
unsigned tsr_transport_wait(tsr_transport_t *t, int timeout_ms);
/* For an owner's own poll loop: poll this fd for POLLIN after tsr_transport_arm
 * returned TSR_OK; when it returns TSR_ERR_CONFLICT, progress again first. */
int tsr_transport_fd(const tsr_transport_t *t);
tsr_status_t tsr_transport_arm(tsr_transport_t *t);
/* Starts / stops a dedicated thread that runs tsr_transport_wait in a loop. */
tsr_status_t tsr_transport_start_thread(tsr_transport_t *t, tsr_error_t *err);
void tsr_transport_stop_thread(tsr_transport_t *t);

/* ---- peers ------------------------------------------------------------------- */

/* Connects to host:port and waits (at most timeout_ms) for the handshake.
 * On success *out is UP and its node id is the remote's. */
tsr_status_t tsr_transport_connect(tsr_transport_t *t, const char *host, uint16_t port,
                                   int timeout_ms, tsr_peer_t **out, tsr_error_t *err);
/* The newest UP peer with that node id, or NULL. */
tsr_peer_t *tsr_transport_peer(tsr_transport_t *t, uint32_t node_id);
uint32_t tsr_peer_node_id(const tsr_peer_t *p);
bool tsr_peer_is_up(const tsr_peer_t *p);
/* Lets go of a peer: fails its pending calls and ops (TSR_ERR_UNAVAILABLE),
 * starts a forced close of its endpoint and returns at once (it never waits
 * for the remote, so a frozen peer cannot stall it). The handle is invalid
 * for the caller afterwards. Events: none is delivered for p after forget
 * (neither the PEER_DOWN it causes nor ones already queued); a callback that
 * is already running may still finish with its ev->peer, whose memory stays
 * valid until everything that names it (queued events, requests a handler
 * holds, calls, timed atomics, rkeys unpacked through it) is done or
 * destroyed; progress then frees it (destroy at the latest). A
 * request from p that a handler still holds can be answered or dropped as
 * usual (the reply fails with TSR_ERR_UNAVAILABLE). Safe from an event
 * callback or handler, on that callback's own peer too. */
void tsr_peer_forget(tsr_transport_t *t, tsr_peer_t *p);

/* ---- RPC over active messages -------------------------------------------- */

#define TSR_RPC_MAX_TYPES 1024u /* message types are 1..1023 */

/* A received message (a request's payload or a response). data is valid until
 * tsr_rpc_msg_release; it may be UCX's own receive buffer (no copy). */
typedef struct tsr_rpc_msg {
    const void *data;
    size_t len;
    /* private */
    void *ucx_desc_;
    void *heap_;
    void *small_; /* a pooled buffer of the transport's (rpc.c) */
} tsr_rpc_msg_t;

void tsr_rpc_msg_release(tsr_transport_t *t, tsr_rpc_msg_t *m);

/* Handler for one message type. It owns req and must eventually call
 * tsr_rpc_reply* or tsr_rpc_req_drop exactly once (now or from another thread). */
typedef void (*tsr_rpc_handler_fn)(void *arg, tsr_rpc_req_t *req);

/* Sets (replaces) the handler of a type. fn NULL is the same as
 * tsr_rpc_unregister. Requests that arrived before the change but have not
 * started yet run the handler in place when they start (none reaches a
 * replaced or removed handler or its arg); with none, they are answered
 * TSR_ERR_UNSUPPORTED. */
tsr_status_t tsr_rpc_register(tsr_transport_t *t, uint16_t type, tsr_rpc_handler_fn fn,
                              void *arg, tsr_error_t *err);

/* Flags of tsr_rpc_register_flags. */
#define TSR_RPC_INLINE 1u /* run the handler inside the receive path (below) */

/* tsr_rpc_register with flags. TSR_RPC_INLINE: a request of this type whose
 * payload arrived whole (eager, not rendezvous) runs the handler at once,
 * inside the progress call that received it, on the thread that progresses
 * (only one that may run handlers: dispatch mode and nesting as for queued
 * handlers), while the transport lock is held - no queueing, no extra lock
 * round, and a small reply leaves from there without any allocation. A
 * request that has queued items ahead of it (events, completions) or a
 * rendezvous payload is queued and runs the usual way, so the order of
 * callbacks stays the same.
 *
 * The contract of an inline handler (a violation deadlocks; the transport
 * aborts with a message instead where it can tell):
 *  - it is short and never blocks: no sleeping, no waiting for another
 *    thread, no mutex that any thread may hold while it calls into this
 *    transport (that thread would wait for the lock the handler holds);
 *  - of this transport it calls only tsr_rpc_req_type/_peer/_data/_take,
 *    tsr_rpc_reply, tsr_rpc_reply_zcopy, tsr_rpc_req_drop,
 *    tsr_rpc_msg_release, tsr_peer_node_id and tsr_peer_is_up (on any
 *    request it holds, not only the one it was given); every other
 *    function (calls, RMA, registration, connect, forget) is off limits;
 *  - it may keep req and answer later from another thread, as any handler
 *    (that thread's reply waits until the handler has returned).
 * Handlers that do not meet it must not be registered inline. */
tsr_status_t tsr_rpc_register_flags(tsr_transport_t *t, uint16_t type, tsr_rpc_handler_fn fn,
                                    void *arg, unsigned flags, tsr_error_t *err);
/* Removes the handler of a type: new and queued requests of that type are
 * answered TSR_ERR_UNSUPPORTED (the caller's tsr_rpc_call returns it).
 * Not waited for: a handler already running on another thread, and
 * requests a handler already holds (they are still answered normally). Call
 * it from the thread that progresses (or with no progress running) before
 * freeing the handler's arg. TSR_ERR_INVALID_ARG for a type out of range. */
tsr_status_t tsr_rpc_unregister(tsr_transport_t *t, uint16_t type, tsr_error_t *err);

uint16_t tsr_rpc_req_type(const tsr_rpc_req_t *req);
tsr_peer_t *tsr_rpc_req_peer(const tsr_rpc_req_t *req);
const void *tsr_rpc_req_data(const tsr_rpc_req_t *req, size_t *len);

/* Moves the request's payload out of req into *out (the caller releases it
 * with tsr_rpc_msg_release); req's payload is empty afterwards. Lets a handler
 * keep or forward the bytes (e.g. answer with them via tsr_rpc_reply_zcopy)
 * without copying - except payloads of up to 64 bytes, which live inside req
 * and are copied to a buffer of the caller's own (out of memory: *out is
 * empty). */
void tsr_rpc_req_take(tsr_rpc_req_t *req, tsr_rpc_msg_t *out);

/* Sends the response (status and payload; the payload is copied when the send
 * cannot finish at once) and frees req. */
tsr_status_t tsr_rpc_reply(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t status,
                           const void *data, size_t len);
/* Same without copying: data stays untouched until done(done_arg, status) runs. */
tsr_status_t tsr_rpc_reply_zcopy(tsr_transport_t *t, tsr_rpc_req_t *req, tsr_status_t status,
                                 const void *data, size_t len,
                                 void (*done)(void *done_arg, tsr_status_t status),
                                 void *done_arg);
/* Frees req without answering (the caller will time out). */
void tsr_rpc_req_drop(tsr_transport_t *t, tsr_rpc_req_t *req);

/* Blocking call: sends type+payload to peer and waits for the response, at
 * most timeout_ms (< 0: no limit). Returns TSR_OK with *reply filled (release
 * it), the remote handler's status (reply filled too: it may hold an error
 * text), TSR_ERR_TIMEOUT, or TSR_ERR_UNAVAILABLE when the peer went down. */
tsr_status_t tsr_rpc_call(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                          const void *data, size_t len, int timeout_ms, tsr_rpc_msg_t *reply,
                          tsr_error_t *err);

/* Completion of an async call. The callback owns *reply (empty unless the
 * peer answered) and must tsr_rpc_msg_release it, now or later. */
typedef void (*tsr_rpc_done_fn)(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply);

/* Non-blocking call; data must stay valid until done runs. done runs exactly
 * once (unless this returns an error), from a progressing thread. */
tsr_status_t tsr_rpc_call_async(tsr_transport_t *t, tsr_peer_t *peer, uint16_t type,
                                const void *data, size_t len, int timeout_ms,
                                tsr_rpc_done_fn done, void *arg, tsr_error_t *err);

/* ---- memory: registration, remote keys, get/put ------------------------- */

/* Registers [addr, addr+len) for remote access (ucp_mem_map). addr NULL:
 * UCX allocates len bytes (zeroed here: UCX does not promise it) and frees
 * them at unregister. */
tsr_status_t tsr_region_register(tsr_transport_t *t, void *addr, size_t len,
                                 tsr_region_t **out, tsr_error_t *err);
void *tsr_region_addr(const tsr_region_t *r);
size_t tsr_region_len(const tsr_region_t *r);
/* Packs the region's descriptor (address, length, UCX rkey; wire.h) into a
 * buffer to send to peers; free it with tsr_mem_free(mem, *buf). */
tsr_status_t tsr_region_pack(tsr_transport_t *t, const tsr_region_t *r, void **buf,
                             size_t *len, tsr_error_t *err);
void tsr_region_unregister(tsr_transport_t *t, tsr_region_t *r);

/* Unpacks a descriptor received from the region's owner, for use through peer. */
tsr_status_t tsr_rkey_unpack(tsr_transport_t *t, tsr_peer_t *peer, const void *buf,
                             size_t len, tsr_rkey_t **out, tsr_error_t *err);
uint64_t tsr_rkey_len(const tsr_rkey_t *k);
void tsr_rkey_destroy(tsr_transport_t *t, tsr_rkey_t *k);

/* Completion of a non-blocking RMA or atomic operation. old: the fetched value
 * (atomics; 0 for get/put). */
typedef void (*tsr_rma_done_fn)(void *arg, tsr_status_t status, uint64_t old);

/* Blocking get/put of len bytes at offset in the remote region. put returns
 * when the local buffer may be reused; tsr_rma_flush makes puts visible. */
tsr_status_t tsr_rma_get(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *dst,
                         size_t len, int timeout_ms, tsr_error_t *err);
tsr_status_t tsr_rma_put(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, const void *src,
                         size_t len, int timeout_ms, tsr_error_t *err);
/* Non-blocking forms: buffers stay untouched until done runs. */
tsr_status_t tsr_rma_get_nb(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset, void *dst,
                            size_t len, tsr_rma_done_fn done, void *arg, tsr_error_t *err);
tsr_status_t tsr_rma_put_nb(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                            const void *src, size_t len, tsr_rma_done_fn done, void *arg,
                            tsr_error_t *err);
/* Several blocking gets at once: posts every op (each with its own rkey,
 * so several peers may be read), then waits once until all completed or
 * timeout_ms passed (< 0: no limit). ops[i].status says how each ended;
 * returns TSR_OK when all succeeded, else the first failure's status (err
 * describes it). An op that does not complete in time fails its peer, as a
 * blocking get does. Over TCP (RMA served by the owner's progress) the n
 * requests travel together and their replies are reaped by one wait, so a
 * reader keeps n gets in flight instead of one. n == 0: TSR_OK. */
typedef struct tsr_rma_getv {
    tsr_rkey_t *k;
    uint64_t offset;
    void *dst;
    size_t len;
    tsr_status_t status; /* out */
    void *req_;          /* private */
} tsr_rma_getv_t;
tsr_status_t tsr_rma_get_many(tsr_transport_t *t, tsr_rma_getv_t *ops, size_t n, int timeout_ms,
                              tsr_error_t *err);
/* Waits until every put issued to peer is complete at the target. */
tsr_status_t tsr_rma_flush(tsr_transport_t *t, tsr_peer_t *peer, int timeout_ms,
                           tsr_error_t *err);

/* ---- 64-bit remote atomics -------------------------------------------------- */

typedef enum tsr_atomic_op {
    TSR_ATOMIC_FADD = 1,  /* old = *p; *p += operand */
    TSR_ATOMIC_SWAP = 2,  /* old = *p; *p = operand */
    TSR_ATOMIC_CSWAP = 3, /* old = *p; if (old == compare) *p = operand */
} tsr_atomic_op_t;

/* offset must be 8-byte aligned and inside the region. */
tsr_status_t tsr_atomic_fadd(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                             uint64_t add, uint64_t *old, int timeout_ms, tsr_error_t *err);
tsr_status_t tsr_atomic_swap(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                             uint64_t value, uint64_t *old, int timeout_ms, tsr_error_t *err);
tsr_status_t tsr_atomic_cswap(tsr_transport_t *t, tsr_rkey_t *k, uint64_t offset,
                              uint64_t compare, uint64_t value, uint64_t *old, int timeout_ms,
                              tsr_error_t *err);
/* Several compare-and-swaps at once (each with its own rkey, so several
 * peers may be addressed): posts every op, then waits once until all
 * completed or timeout_ms passed (< 0: no limit), as tsr_rma_get_many.
 * ops[i].old is the value found (the swap happened iff old == compare),
 * ops[i].status how the op ended; returns TSR_OK when every op completed,
 * else the first failure's status. n == 0: TSR_OK. */
typedef struct tsr_atomic_cswapv {
    tsr_rkey_t *k; /* first: the waits find the peer through it */
    uint64_t offset;
    uint64_t compare, value;
    uint64_t old;        /* out */
    tsr_status_t status; /* out */
    uint64_t cmp_;       /* private */
    void *req_;          /* private */
} tsr_atomic_cswapv_t;
tsr_status_t tsr_atomic_cswap_many(tsr_transport_t *t, tsr_atomic_cswapv_t *ops, size_t n,
                                   int timeout_ms, tsr_error_t *err);
/* Non-blocking form of all three; done gets the old value. No timeout: on a
 * stuck peer done runs only when the peer fails (or is forgotten). */
tsr_status_t tsr_atomic_post(tsr_transport_t *t, tsr_rkey_t *k, tsr_atomic_op_t op,
                             uint64_t offset, uint64_t operand, uint64_t compare,
                             tsr_rma_done_fn done, void *arg, tsr_error_t *err);
/* Same with a timeout (timeout_ms < 0: none, as tsr_atomic_post). If the op
 * has not completed timeout_ms after posting (checked by whoever
 * progresses: within a few progress rounds while a thread polls, at most
 * 100 ms late when it sleeps; nobody progressing, nothing expires), its peer is failed
 * like a blocking call's (the endpoint is closed: only that makes UCX give
 * the op back), so done runs with TSR_ERR_TIMEOUT for this op and
 * TSR_ERR_TIMEOUT or TSR_ERR_UNAVAILABLE for other ops on that peer, and
 * the owner gets PEER_DOWN (status TSR_ERR_TIMEOUT). A dead peer completes
 * it with TSR_ERR_UNAVAILABLE as soon as UCX notices, at the latest then. */
tsr_status_t tsr_atomic_post_timeout(tsr_transport_t *t, tsr_rkey_t *k, tsr_atomic_op_t op,
                                     uint64_t offset, uint64_t operand, uint64_t compare,
                                     int timeout_ms, tsr_rma_done_fn done, void *arg,
                                     tsr_error_t *err);

/* ---- counters ------------------------------------------------------------------ */

typedef struct tsr_transport_stats {
    uint64_t rx_msgs;        /* well-formed messages received */
    uint64_t rx_rejected;    /* messages refused by the decoder (all reasons) */
    uint64_t rx_truncated;   /*   of which: truncated */
    uint64_t rx_bad_magic;   /*   bad magic or version */
    uint64_t rx_bad_field;   /*   a field out of range or a length mismatch */
    uint64_t rx_unknown_type;/* requests for a type with no handler (answered UNSUPPORTED) */
    uint64_t rx_late;        /* responses to calls that had already timed out */
    uint64_t calls_timed_out;
    uint64_t peers_failed;   /* PEER_DOWN events */
    uint64_t shm_repairs;    /* shared-memory receive slots a dead sender had left
                              * half-written, published by us (docs/transport.md) */
    uint64_t rx_inline;      /* requests whose handler ran inline (TSR_RPC_INLINE) */
    /* Spinning: waits that got their event while spinning past the first
     * clock stride, and spins that ran out (the wait slept), counted with
     * params.spin_fixed too; the adaptive budgets now, for callers' waits
     * and for the waits of tsr_transport_wait (ns). */
    uint64_t spin_hits, spin_misses;
    uint64_t spin_call_ns, spin_serve_ns;
} tsr_transport_stats_t;

void tsr_transport_get_stats(tsr_transport_t *t, tsr_transport_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TSR_TRANSPORT_H */
