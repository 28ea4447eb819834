/*
 * sched_internal.h - the scheduler daemon's state, shared by sched.c
 * (connections, authentication, membership, heartbeats) and sched_job.c
 * (SQL jobs: splitting, placing tasks, re-running, merging).
 *
 * Everything runs on the daemon's one thread: RPC handlers and completion
 * callbacks are dispatched by tsr_transport_wait in the main loop
 * (TSR_DISPATCH_PROGRESS_ONLY), so no state here needs a lock. The HTTP
 * endpoint's thread (http.c, --http) never reads it: the loop hands it
 * copies under http.c's own mutex.
 *
 * Workers are slots that are never reused (a dead worker stays listed as
 * dead), so a callback can name its worker by index and find it safe.
 */
#ifndef TSR_SCHED_INTERNAL_H
#define TSR_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "handshake.h"
#include "http.h"
#include "policy.h"
#include "proto.h"
#include "scheduler.h"
#include "transport.h"

#define SCHED_MAX_WORKERS 1024
#define SCHED_MAX_CONNS 4096

typedef enum sworker_state { SW_READY = 1, SW_DEAD = 2 } sworker_state_t;

typedef struct sworker {
    sworker_state_t state;
    tsr_peer_t *peer; /* NULL once dead */
    char device[64];
    char host[128];
    char data_dir[256];
    char addr_host[128]; /* where its transport listens, as it reported (lock homes) */
    uint16_t addr_port;
    uint64_t store_id; /* its kv store's identity (0: none); kv delta resyncs */
    uint32_t node_id;  /* its transport's node id */
    uint32_t pid;
    uint32_t inflight;     /* tasks this scheduler has sent and not seen answered */
    uint32_t load;         /* the worker's own count, from the last heartbeat */
    uint64_t tasks_done;   /* answered tasks */
    uint64_t last_pong_ms; /* last heartbeat answer */
    uint64_t dead_at_ms;   /* when it was declared dead (kv replacement's grace) */
    bool ping_inflight;
    struct sched *s; /* back pointer and slot: the heartbeat callback's argument */
    size_t idx;
} sworker_t;

typedef struct sconn {
    tsr_peer_t *peer;
    uint32_t node_id; /* the peer's, to tell its events from a stale one whose
                         freed peer address was reused (see on_event) */
    tsr_hs_t hs;      /* the token handshake's state (handshake.h) */
    int worker;       /* slot, -1 for clients */
} sconn_t;

typedef struct sjob sjob_t;

/* A job that may still be cancelled (SQL or graph): linked into the
 * scheduler's list while it runs, so CANCEL finds it by id or by the client
 * connection that submitted it. cancel ends the job "cancelled" (answering
 * the client, dropping its queued tasks) and unlinks it. */
typedef struct sactive {
    struct sactive *prev, *next;
    uint64_t id;
    tsr_rpc_req_t *const *req; /* the job's held client request (NULL once answered) */
    void (*cancel)(struct sactive *a);
} sactive_t;

typedef struct sched {
    const tsr_sched_params_t *p;
    tsr_mem_t *mem;
    tsr_transport_t *t;
    tsr_token_t token;
    int dead_ms;
    /* a worker joined: the next loop pings at once. Until its first ping
     * tells it our timeout, a worker counts on its own default (3 s), and
     * a beat every dead_ms / 6 (10 s for --heartbeat-timeout 60000) came
     * too late for it */
    bool beat_now;
    sworker_t *workers[SCHED_MAX_WORKERS];
    size_t nworkers;
    sconn_t *conns[SCHED_MAX_CONNS];
    size_t nconns;
    uint64_t next_job;
    unsigned rr;             /* round-robin cursor for ties */
    uint8_t ping_payload[4]; /* PING: u32 dead_ms (lives as long as every ping) */
    /* The lock view (sched_lock.c): worker slots hosting the lock homes, in
     * the order names map to; formed at the first lock request. */
    size_t lock_view[SCHED_MAX_WORKERS];
    size_t lock_nview;
    uint64_t lock_gen; /* bumped whenever a home moves to another worker (LOCK_VIEW) */
    /* The kv table catalog (sched_kv.c), NULL until the first kv request. */
    struct skv *kv;
    /* Cluster transactions' coordinator log and recovery (sched_txn.c). */
    struct stxn_coord *txn;
    /* The HTTP endpoint (http.h), NULL without --http: its hooks take NULL. */
    struct tsr_sched_http *http;
    /* Task placement (policy.h): per-worker queues, slots, stealing. */
    tsr_placer_t placer;
    /* Jobs that can be cancelled (sactive_t). */
    sactive_t *active;
    uint64_t started_ms; /* when the loop started (a kv replica's worker never seen
                            since is down since then, kv_rebalance.c) */
} sched_t;

/* Links / unlinks a running job (sched.c). remove is idempotent. */
void tsr_sched_active_add(sched_t *s, sactive_t *a);
void tsr_sched_active_remove(sched_t *s, sactive_t *a);
/* CANCEL handler (sched.c): {u64 job (0: every job of this connection)};
 * replies {u32 jobs cancelled}. */
void tsr_sched_cancel_request(sched_t *s, tsr_rpc_req_t *req);

/* Ready workers now. */
size_t tsr_sched_ready_count(const sched_t *s);
/* Declares worker i dead (logs, forgets its peer: its calls fail and their
 * tasks are placed again). */
void tsr_sched_worker_dead(sched_t *s, size_t i, const char *why);

/* LOCK handler (sched_lock.c): forwards req to the lock's home worker and
 * relays its answer. */
void tsr_sched_lock_request(sched_t *s, tsr_rpc_req_t *req);
/* LOCK_VIEW handler (sched_lock.c): the lock view's homes and addresses. */
void tsr_sched_lock_view(sched_t *s, tsr_rpc_req_t *req);

/* KV handler (sched_kv.c): the kv catalog and partition requests, routed to
 * the partitions' replicas; tsr_sched_kv_free drops the catalog at exit. */
void tsr_sched_kv_request(sched_t *s, tsr_rpc_req_t *req);
void tsr_sched_kv_free(sched_t *s);
/* At a clean stop (the loop ended, the transport still up), with a data
 * dir (kv_missed_file.c): the partitions with nothing in flight and not in
 * doubt, and the missed keys of their stale replicas, to DIR/kv-missed for
 * the next start (a delta resync then needs no whole copy). */
void tsr_sched_kv_missed_save(sched_t *s);
/* The cluster kv store's state and counters since start (GET /metrics). */
typedef struct tsr_sched_kv_stats {
    uint64_t tables, partitions, in_doubt;
    uint64_t replicas_up, replicas_down, replicas_stale; /* as `kv describe` shows them */
    uint64_t resyncs_running, writes_waiting;
    uint64_t resyncs[3]; /* ended: by missed keys, by ranges, whole */
    uint64_t resyncs_failed, resync_pairs;
    uint64_t compares[3]; /* agreed, found a replica different, failed */
    uint64_t puts, put_writes, put_grouped;
} tsr_sched_kv_stats_t;
void tsr_sched_kv_stats(sched_t *s, tsr_sched_kv_stats_t *out);
/* Logs how many puts went out to their replicas in how many writes (their
 * group commit, sched_kv_repl.c), at the stop. */
void tsr_sched_kv_log_puts(sched_t *s);
/* Once listening, before the loop serves anything: removes (durably) the
 * DIR/kv-missed this start read; an error must stop the scheduler (a later
 * start would take those sets for current). */
tsr_status_t tsr_sched_kv_missed_drop(sched_t *s, tsr_error_t *err);
/* Start-up (kv_catalog.c): the empty catalog, loaded from
 * <data dir>/kv-catalog when the scheduler has a data dir. An unreadable or
 * corrupted file fails (err says why): never a silently empty catalog. */
tsr_status_t tsr_sched_kv_open(sched_t *s, tsr_error_t *err);
/* A worker joined (slot i, kv_rebalance.c): partitions whose ring placement
 * now includes it move to it; stale replicas on it are resynced. */
void tsr_sched_kv_worker_joined(sched_t *s, size_t i);
/* Called from the main loop (kv_rebalance.c, at most every 500 ms does
 * something): replicas on workers dead for longer than
 * kv_replace_after_ms, or decommissioned, are replaced by the next ring
 * member, a few partitions at a time. */
void tsr_sched_kv_tick(sched_t *s);

/* SQL handler (sched_job.c): takes req, replies when the job ends. */
void tsr_sched_job_start(sched_t *s, tsr_rpc_req_t *req);

/* GRAPH handler (sched_graph.c): takes req, replies when the graph ends. */
void tsr_sched_graph_start(sched_t *s, tsr_rpc_req_t *req);
/* Decodes and checks a GRAPH request as the handler does, nothing else (for
 * tests): true when it would be accepted; *ntasks (may be NULL) its tasks. */
bool tsr_sched_graph_check(tsr_mem_t *mem, const void *msg, size_t len, size_t *ntasks);

/* The ready worker with the fewest tasks in flight, avoiding `avoid` when
 * another is ready; -1 when none is (sched_job.c). Tasks of jobs go through
 * the placer instead; this serves one-off requests. */
int tsr_sched_pick_worker(sched_t *s, int avoid);

/* A job's progress messages to its client (sched_job.c): at most one call in
 * flight (buf is its payload) and one every 100 ms. */
typedef struct sprog {
    sched_t *s;
    uint64_t last_ms; /* when the last one was sent */
    bool inflight;    /* a PROGRESS call is pending: buf is in use */
    uint8_t buf[64];
    void (*settled)(void *owner); /* runs when the call ends (the owner may free itself) */
    void *owner;
} sprog_t;

/* Sends p to the client whose request req the job still holds (a held
 * request keeps the client's peer valid). Returns true when a call started:
 * the owner counts it as outstanding until settled runs. */
bool tsr_sched_progress(sprog_t *sp, tsr_rpc_req_t *req, const tsr_progress_t *p);

#endif /* TSR_SCHED_INTERNAL_H */
