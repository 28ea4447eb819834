/*
 * tessera/lock.h - named, leased, fenced distributed locks.
 *
 * A lock is named by 1..255 bytes of UTF-8. The name hashes to one *home* (a
 * process that owns a table of lock slots in registered memory) and to a slot
 * there; the slot's words are changed by the clients themselves with 64-bit
 * atomics (one-sided UCX atomics across processes, CPU atomics in one
 * process), so an uncontended acquire or release never runs code on the
 * home. Locks are exclusive or shared, granted in FIFO order with DSLR-style
 * ticket counters (a waiting writer is never starved by later readers). See
 * docs/locks.md for the word layout and the protocol.
 *
 * Leases. Every grant has a lease (default TSR_LOCK_DEFAULT_LEASE_MS, set per
 * call, renewable). A holder that dies or stops renewing loses the lock once
 * the lease has run out with no activity on the lock: a waiter then resets it
 * and the queue starts over. Every grant returns a *fencing token* that is
 * strictly larger than every token granted before it for the same lock; give
 * it with every write to a protected resource, which checks it with
 * tsr_lock_fence_check and refuses writes older than one already seen.
 *
 * Modes of use:
 *   embedded     tsr_lock_home_create(NULL, ...) makes an in-process table;
 *                clients attach it (params.local) and threads use them.
 *   distributed  a worker hosts a home on its transport (it must keep that
 *                transport progressing: over TCP UCX emulates atomics with
 *                messages the home's worker executes); clients connect to the
 *                homes by address or node id. Every client must list the
 *                homes in the same order (the scheduler hands out the list:
 *                tsr_lock_cluster_connect below does it all for a cluster).
 *                Over TCP only, clients by default send acquire/release/renew
 *                as one call each that the home runs on its words (the
 *                served path, params.path), which is several times faster
 *                there than emulated atomics.
 *
 * Threads: a client may be shared by threads (its tables are locked), but
 * calls on one lock from one client block each other only on the wire. A
 * home may be used by any number of clients and threads.
 *
 * Errors: every call returns a tsr_status_t and fills err (may be NULL) with a
 * message. TSR_ERR_INVALID_ARG: bad name, lease, timeout or an unknown token;
 * TSR_ERR_TIMEOUT: not granted in time; TSR_ERR_CONFLICT: try_acquire found
 * the lock busy; TSR_ERR_STALE: the lease ran out and the lock was taken
 * over; TSR_ERR_NOT_FOUND: status of a lock never acquired;
 * TSR_ERR_UNAVAILABLE: a home cannot be reached.
 */
#ifndef TESSERA_LOCK_H
#define TESSERA_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_lock_home tsr_lock_home_t;
typedef struct tsr_lock_client tsr_lock_client_t;
typedef struct tsr_lock_fence tsr_lock_fence_t;
typedef struct tsr_transport tsr_transport_t; /* transport/transport.h */
typedef struct tsr_peer tsr_peer_t;           /* transport/transport.h */

#define TSR_LOCK_NAME_MAX 255u
#define TSR_LOCK_DEFAULT_LEASE_MS 10000
/* Leases are kept in 10 ms units in a 19-bit field (docs/locks.md). */
#define TSR_LOCK_MAX_LEASE_MS 5242870
#define TSR_LOCK_DEFAULT_SLOTS 65536u
#define TSR_LOCK_RPC_INFO 900u /* default RPC type of the home's descriptor call */
#define TSR_LOCK_RPC_OPS 901u  /* default RPC type of served lock calls: rpc_type + 1 */

typedef struct tsr_lock_err {
    tsr_status_t status; /* TSR_OK until an error is recorded */
    char message[256];
} tsr_lock_err_t;

typedef enum tsr_lock_mode {
    TSR_LOCK_EXCLUSIVE = 0,
    TSR_LOCK_SHARED = 1,
} tsr_lock_mode_t;

/* ---- homes ------------------------------------------------------------------- */

typedef struct tsr_lock_home_params {
    uint32_t slots;    /* lock slots (64 B each); 0 = TSR_LOCK_DEFAULT_SLOTS */
    uint16_t rpc_type; /* 0 = TSR_LOCK_RPC_INFO (distributed only); served
                        * lock calls use rpc_type + 1 */
    /* Distributed, optional: asked (on the thread that progresses the
     * transport) before the descriptor call and every served call is
     * answered; false refuses it with TSR_ERR_AUTH and nothing else. A
     * worker passes its table of peers that proved the cluster token
     * (docs/locks.md "Locks on a cluster"): without the descriptor a peer
     * has no remote key, so it cannot touch the words either. NULL: every
     * peer is allowed. */
    bool (*allow)(void *arg, tsr_peer_t *peer);
    void *allow_arg;
} tsr_lock_home_params_t;

/* transport NULL: an embedded (in-process) table. Otherwise registers the
 * table with the transport, answers descriptor calls on params.rpc_type and
 * lock calls of served clients on params.rpc_type + 1 (TSR_LOCK_PATH_SERVED:
 * a waiting acquire runs on a thread of the home, at most 256 at once); the
 * owner keeps the transport progressing. params may be NULL. */
tsr_status_t tsr_lock_home_create(tsr_transport_t *transport, const tsr_lock_home_params_t *params,
                                  tsr_lock_home_t **out, tsr_lock_err_t *err);
/* Accepts NULL. Clients must be gone (or never touch it again). Distributed:
 * call it with the transport's progress stopped or from the progressing
 * thread (the transport's rule for a handler's arg); served acquires still
 * waiting are answered TSR_ERR_UNAVAILABLE (sent with the next progress). */
void tsr_lock_home_destroy(tsr_lock_home_t *home);
uint32_t tsr_lock_home_slots(const tsr_lock_home_t *home);

/* ---- clients ------------------------------------------------------------------ */

typedef struct tsr_lock_home_addr {
    const char *host; /* connect to host:port; NULL: use the peer with node_id */
    uint16_t port;
    uint32_t node_id; /* used when host is NULL (an already connected peer) */
} tsr_lock_home_addr_t;

/* How a distributed client reaches its homes (docs/locks.md, transports). */
typedef enum tsr_lock_path {
    TSR_LOCK_PATH_AUTO = 0,    /* served when the transport set is TCP only
                                * (UCX_TLS=tcp: atomics would be emulated by
                                * messages anyway), else atomics */
    TSR_LOCK_PATH_ATOMICS = 1, /* one-sided atomics on the home's words */
    TSR_LOCK_PATH_SERVED = 2,  /* one call per acquire/release/renew, run by the
                                * home on its own words (status stays one-sided) */
} tsr_lock_path_t;

typedef struct tsr_lock_client_params {
    tsr_lock_home_t *local;        /* embedded: an in-process home; also a distributed
                                    * home of this process (its owner's client: CPU
                                    * atomics on the same words, like the served path;
                                    * leave transport NULL) */
    tsr_transport_t *transport;    /* distributed: this process' transport */
    const tsr_lock_home_addr_t *homes; /* distributed: the homes, same order everywhere */
    size_t nhomes;
    uint16_t rpc_type;             /* 0 = TSR_LOCK_RPC_INFO */
    int connect_timeout_ms;        /* 0 = 10000 */
    int op_timeout_ms;             /* one atomic's limit; 0 = 10000 */
    tsr_lock_path_t path;          /* distributed: default AUTO */
    /* Optional (distributed): a home that answers TSR_ERR_UNAVAILABLE may
     * have moved (a cluster's standby took the dead worker's place). rehome
     * then looks for home's replacement within budget_ms and, TSR_OK, fills
     * *addr with it (host NULL: a peer already dialled by node id; host
     * points into the hook's own memory until its next call). The client
     * reconnects that home, forgets its grants there, and retries an acquire
     * or try_acquire once; release and renew of a grant on the old home answer
     * TSR_ERR_STALE (the grant died with the home). Other statuses: the
     * home did not move; the call fails as it would have. Calls are
     * serialized per client. NULL: no rehoming (tsr_lock_cluster_connect
     * sets it). */
    tsr_status_t (*rehome)(void *arg, uint32_t home, int budget_ms, tsr_lock_home_addr_t *addr);
    void *rehome_arg;
} tsr_lock_client_params_t;

tsr_status_t tsr_lock_client_create(const tsr_lock_client_params_t *params,
                                    tsr_lock_client_t **out, tsr_lock_err_t *err);
/* Accepts NULL. Locks still held are left to their leases. */
void tsr_lock_client_destroy(tsr_lock_client_t *client);

typedef struct tsr_lock_opts {
    tsr_lock_mode_t mode; /* default exclusive */
    int64_t lease_ms;     /* 0 = TSR_LOCK_DEFAULT_LEASE_MS; 1..TSR_LOCK_MAX_LEASE_MS */
    int64_t timeout_ms;   /* acquire: < 0 waits without limit, 0 = try once */
} tsr_lock_opts_t;

/* Blocks until granted or opts->timeout_ms passes (TSR_ERR_TIMEOUT); *token
 * gets the fencing token. opts may be NULL (exclusive, default lease, no
 * limit). A waiter that gives up leaves its place in the queue to be skipped. */
tsr_status_t tsr_lock_acquire(tsr_lock_client_t *c, const char *name,
                              const tsr_lock_opts_t *opts, uint64_t *token, tsr_lock_err_t *err);
/* Grants only when the lock is free for the mode now, without queueing;
 * TSR_ERR_CONFLICT when it is not. opts->timeout_ms is ignored. */
tsr_status_t tsr_lock_try_acquire(tsr_lock_client_t *c, const char *name,
                                  const tsr_lock_opts_t *opts, uint64_t *token,
                                  tsr_lock_err_t *err);
/* Releases the grant (name, token) this client holds. TSR_ERR_INVALID_ARG
 * when it holds no such grant; TSR_ERR_STALE when its lease ran out and the
 * lock was reset meanwhile (the grant is forgotten either way). */
tsr_status_t tsr_lock_release(tsr_lock_client_t *c, const char *name, uint64_t token,
                              tsr_lock_err_t *err);
/* Extends the grant's lease to lease_ms (0 = the default) from now. */
tsr_status_t tsr_lock_renew(tsr_lock_client_t *c, const char *name, uint64_t token,
                            int64_t lease_ms, tsr_lock_err_t *err);

typedef enum tsr_lock_state {
    TSR_LOCK_FREE = 0,
    TSR_LOCK_HELD_SHARED = 1,
    TSR_LOCK_HELD_EXCLUSIVE = 2,
} tsr_lock_state_t;

typedef struct tsr_lock_status {
    tsr_lock_state_t state;
    uint32_t holders;     /* 1 for exclusive; shared: see holders_exact */
    bool holders_exact;   /* false: shared holders ahead of a queued writer (a lower bound) */
    uint32_t waiters;     /* queued requests not yet granted (approximate when !holders_exact) */
    uint64_t last_token;  /* the newest token issued: the holder's while a writer holds,
                           * the newest reader's with no writer queued; with no
                           * grant yet in this epoch a value above every earlier
                           * token; a lower bound while a writer waits on readers */
    int64_t lease_ms;     /* the lease of the newest grant */
    uint32_t home;        /* index of the home in the client's list */
    uint32_t slot;        /* slot in the home's table */
    uint32_t epoch;       /* resets so far (mod 256) */
} tsr_lock_status_t;

/* Reads the lock's words (one-sided). TSR_ERR_NOT_FOUND for a name never acquired. */
tsr_status_t tsr_lock_status(tsr_lock_client_t *c, const char *name, tsr_lock_status_t *out,
                             tsr_lock_err_t *err);

/* ---- clusters (docs/locks.md "Locks on a cluster") ---------------------------
 * A client of a running cluster's lock homes (one per worker of the
 * scheduler's lock view). Connecting fetches the view from the scheduler
 * (authenticated with the cluster token, which never crosses the wire),
 * dials each home's worker at the address it reported and proves the token
 * there too, then creates a lock client over those homes on a transport of
 * its own: uncontended acquire/release are then one-sided atomics on the
 * homes' words (or served calls over TCP only, params.path's AUTO rule);
 * the scheduler is not involved any more. CLI holders (`tessera lock`) use
 * the same words, so both kinds of holders exclude each other.
 * Implemented by the cluster library (tessera_scheduler, scheduler/
 * lock_cluster.c). When a home's worker dies, the client refetches the view
 * (within the call's timeout, or op_timeout_ms for a try): once a standby
 * worker took the dead home's place (a new generation), it reconnects that
 * home and retries an acquire or try_acquire once; release and renew of a
 * grant held on the dead home answer TSR_ERR_STALE (the grant is gone). With
 * no replacement in time the call fails with TSR_ERR_UNAVAILABLE. */

typedef struct tsr_lock_cluster tsr_lock_cluster_t;

typedef struct tsr_lock_cluster_params {
    const char *scheduler;  /* "HOST:PORT" (required) */
    const char *token_file; /* NULL: $TESSERA_TOKEN_FILE, else ~/.config/tessera/token */
    int connect_timeout_ms; /* each step; 0 = 10000 */
    int op_timeout_ms;      /* one atomic's limit; 0 = 10000 */
    tsr_lock_path_t path;   /* as for tsr_lock_client_params_t */
} tsr_lock_cluster_params_t;

/* TSR_ERR_AUTH: the token was refused (or is missing); TSR_ERR_UNAVAILABLE:
 * the scheduler or a home cannot be reached, or no worker joined yet. */
tsr_status_t tsr_lock_cluster_connect(const tsr_lock_cluster_params_t *params,
                                      tsr_lock_cluster_t **out, tsr_lock_err_t *err);
/* The lock client (owned by the cluster handle; valid until close). */
tsr_lock_client_t *tsr_lock_cluster_client(tsr_lock_cluster_t *cl);
/* The view's homes and generation (the scheduler bumps it when a home moves). */
size_t tsr_lock_cluster_homes(const tsr_lock_cluster_t *cl, uint64_t *generation);
/* Accepts NULL. Locks still held are left to their leases. */
void tsr_lock_cluster_close(tsr_lock_cluster_t *cl);

/* ---- fencing ------------------------------------------------------------------ */

/* The check a protected resource (kv, txn) runs on every write: remembers the
 * largest token seen per lock name. Thread-safe. */
tsr_status_t tsr_lock_fence_create(tsr_lock_fence_t **out, tsr_lock_err_t *err);
void tsr_lock_fence_destroy(tsr_lock_fence_t *f);
/* TSR_OK (and remembers token) when token >= the largest seen for name;
 * TSR_ERR_STALE when an older token; TSR_ERR_INVALID_ARG for a bad name or
 * token 0. */
tsr_status_t tsr_lock_fence_check(tsr_lock_fence_t *f, const char *name, uint64_t token,
                                  tsr_lock_err_t *err);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_LOCK_H */
