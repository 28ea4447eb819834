/*
 * sched_internal.h - the scheduler daemon's state, shared by sched.c
 * (connections, authentication, membership, heartbeats) and sched_job.c
 * (SQL jobs: splitting, placing tasks, re-running, merging).
 *
 * Everything runs on the daemon's one thread: RPC handlers and completion
 * callbacks are dispatched by tsr_transport_wait in the main loop
 * (TSR_DISPATCH_PROGRESS_ONLY), so no state here needs a lock.
 *
 * Workers are slots that are never reused (a dead worker stays listed as
 * dead), so a callback can name its worker by index and find it safe.
 */
#ifndef TSR_SCHED_INTERNAL_H
#define TSR_SCHED_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
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
    uint32_t pid;
    uint32_t inflight;     /* tasks this scheduler has sent and not seen answered */
    uint32_t load;         /* the worker's own count, from the last heartbeat */
    uint64_t tasks_done;   /* answered tasks */
    uint64_t last_pong_ms; /* last heartbeat answer */
    bool ping_inflight;
    struct sched *s; /* back pointer and slot: the heartbeat callback's argument */
    size_t idx;
} sworker_t;

typedef struct sconn {
    tsr_peer_t *peer;
    uint32_t node_id; /* the peer's, to tell its events from a stale one whose
                         freed peer address was reused (see on_event) */
    uint8_t role;
    bool hello;  /* HELLO seen: nonces set */
    bool authed; /* PROVE checked */
    uint8_t cn[TSR_NONCE_LEN];
    uint8_t sn[TSR_NONCE_LEN];
    int worker; /* slot, -1 for clients */
} sconn_t;

typedef struct sjob sjob_t;

typedef struct sched {
    const tsr_sched_params_t *p;
    tsr_mem_t *mem;
    tsr_transport_t *t;
    tsr_token_t token;
    int dead_ms;
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
} sched_t;

/* Ready workers now. */
size_t tsr_sched_ready_count(const sched_t *s);
/* Declares worker i dead (logs, forgets its peer: its calls fail and their
 * tasks are placed again). */
void tsr_sched_worker_dead(sched_t *s, size_t i, const char *why);

/* LOCK handler (sched_lock.c): forwards req to the lock's home worker and
 * relays its answer. */
void tsr_sched_lock_request(sched_t *s, tsr_rpc_req_t *req);

/* SQL handler (sched_job.c): takes req, replies when the job ends. */
void tsr_sched_job_start(sched_t *s, tsr_rpc_req_t *req);

#endif /* TSR_SCHED_INTERNAL_H */
