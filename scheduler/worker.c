/*
 * worker.c - the worker daemon (`tessera worker`): joins the scheduler,
 * answers heartbeats, runs tasks.
 *
 * Threads: the main thread progresses the transport (all RPC handlers run
 * there: TSR_DISPATCH_PROGRESS_ONLY) and watches for a stop request and for
 * the scheduler's loss; one executor thread takes task requests from a queue,
 * runs them (worker_task.c) and replies from its own thread (the transport
 * allows replies from any thread). So a long task never delays a heartbeat,
 * and the scheduler can tell a busy worker from a dead one.
 *
 * Locks: the worker hosts one lock home and the lock client that holds
 * grants for `tessera lock` (worker_lock.c); the scheduler sends it the
 * requests of the names its home owns (LOCK_RUN).
 *
 * KV: the worker hosts the kv partitions the scheduler placed on it, in one
 * store under --data-dir (worker_kv.c, KV_RUN).
 *
 * The worker dials the scheduler and proves the token (handshake.h); it
 * also checks the scheduler's proof before taking any task. Only the
 * scheduler's connection may send it work (PING, TASK_*, LOCK_RUN, KV_RUN):
 * any other peer is answered TSR_ERR_AUTH.
 *
 * Listener. The worker's transport also listens (127.0.0.1 and a port the
 * OS picks unless --listen says otherwise) and reports where in its join;
 * the scheduler hands the addresses out (LOCK_VIEW), so lock clients reach
 * the worker's lock home directly (docs/locks.md "Locks on a cluster").
 * Graph values move over the same listener: a task's large output stays in
 * the worker's value store (worker_values.h) and the workers whose tasks
 * read it fetch it from here (VALUE_FETCH, value_fetch.h).
 * Peers that dial it prove the token with the same handshake as at the
 * scheduler (handshake.h, HELLO/PROVE answered here); the peer table below
 * holds each one's state, and the lock home answers only peers that passed
 * (its allow hook). The table lives on the main thread (handlers and events
 * run there), so it needs no lock. A
 * scheduler that goes away (PEER_DOWN) or stops sending heartbeats for
 * 2 x its heartbeat timeout (sent in every PING; at least our own --heartbeat-
 * timeout) ends the worker with exit 5: workers are cheap to restart and a
 * scheduler restart starts from an empty cluster anyway.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "common.h"
#include "handshake.h"
#include "proto.h"
#include "scheduler.h"
#include "transport.h"
#include "value_fetch.h"
#include "worker_kv.h"
#include "worker_lock.h"
#include "worker_task.h"
#include "worker_values.h"

#define QUEUE_MAX 1024

typedef struct wstate {
    const tsr_worker_params_t *p;
    tsr_transport_t *t;
    tsr_peer_t *sched;
    volatile int sched_down; /* set by the event callback (main thread) */
    uint64_t last_ping_ms;
    uint32_t sched_dead_ms; /* the scheduler's heartbeat timeout, from its pings */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tsr_rpc_req_t *queue[QUEUE_MAX]; /* FIFO ring of task requests */
    size_t qhead, qlen;
    bool quit;         /* executor: stop after the current task */
    bool running;      /* the executor runs a task of job running_job (TASK_DROP */
    uint64_t running_job; /* interrupts it through env.cancel; both under mu) */
    unsigned busy;     /* tasks queued or running */
    unsigned delay_ms; /* TSR_TEST_TASK_DELAY_MS: tests make tasks slow to hit them mid-run */
    uint64_t done;
    tsr_wtask_env_t env;
    tsr_wlock_t *locks;  /* this worker's lock home and client (worker_lock.c) */
    tsr_wkv_t *kv;       /* the kv partitions it hosts (worker_kv.c) */
    tsr_wvalues_t *values; /* graph values it keeps for their readers (worker_values.h) */
    tsr_token_t tok;     /* for the peers dialling our listener */
    struct wpeer *peers; /* peers that said HELLO to our listener (main thread only) */
    size_t npeers, cappeers;
} wstate_t;

#define PEERS_MAX 4096

typedef struct wpeer {
    tsr_peer_t *peer;
    uint32_t node_id; /* to tell its events from a stale one (as the scheduler does) */
    tsr_hs_t hs;
} wpeer_t;

static wpeer_t *peer_find(wstate_t *w, const tsr_peer_t *peer)
{
    for (size_t i = 0; i < w->npeers; i++)
        if (w->peers[i].peer == peer)
            return &w->peers[i];
    return NULL;
}

/* The lock home's allow hook: only peers that proved the token. */
static bool peer_allowed(void *arg, tsr_peer_t *peer)
{
    wpeer_t *p = peer_find(arg, peer);
    return p && p->hs.authed;
}

static bool from_sched(wstate_t *w, tsr_rpc_req_t *req)
{
    if (w->sched && tsr_rpc_req_peer(req) == w->sched)
        return true;
    tsr_rpc_reply(w->t, req, TSR_ERR_AUTH, NULL, 0);
    return false;
}

static void on_peer_hello(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_peer_t *peer = tsr_rpc_req_peer(req);
    wpeer_t *p = peer_find(w, peer);
    if (!p && peer != w->sched && w->npeers < PEERS_MAX) {
        if (w->npeers == w->cappeers) {
            size_t cap = w->cappeers ? w->cappeers * 2 : 16;
            wpeer_t *np = tsr_mem_realloc(NULL, w->peers, cap * sizeof(*np));
            if (!np) {
                tsr_rpc_reply(w->t, req, TSR_ERR_NOMEM, NULL, 0);
                return;
            }
            w->peers = np;
            w->cappeers = cap;
        }
        p = &w->peers[w->npeers++];
        memset(p, 0, sizeof(*p));
        p->peer = peer;
        p->node_id = tsr_peer_node_id(peer);
    }
    if (!p) {
        tsr_rpc_reply(w->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    uint8_t out[TSR_HS_HELLO_REPLY];
    tsr_status_t rc = tsr_hs_hello(&p->hs, &w->tok, data, len, out);
    tsr_rpc_reply(w->t, req, rc, rc == TSR_OK ? out : NULL, rc == TSR_OK ? sizeof(out) : 0);
}

static void on_peer_prove(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_peer_t *peer = tsr_rpc_req_peer(req);
    wpeer_t *p = peer_find(w, peer);
    tsr_status_t rc = p ? tsr_hs_prove(&p->hs, &w->tok, data, len, NULL, NULL) : TSR_ERR_BAD_INPUT;
    if (rc == TSR_ERR_AUTH) {
        tsr_sched_log(w->p->log, "worker",
                      "authentication failed: a peer (node %u) did not prove the cluster token",
                      tsr_peer_node_id(peer));
        tsr_proto_reply_error(w->t, NULL, req, TSR_ERR_AUTH, "authentication failed", NULL);
        return;
    }
    tsr_rpc_reply(w->t, req, rc, NULL, 0);
}

static void on_lock_run(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (from_sched(w, req))
        tsr_wlock_on_request(w->locks, req);
}

/* VALUE_FETCH (value_fetch.h): a peer worker that proved the token (or
 * the scheduler) reads a kept graph value. */
static void on_value_fetch(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    tsr_peer_t *peer = tsr_rpc_req_peer(req);
    if (peer != w->sched && !peer_allowed(w, peer)) {
        tsr_rpc_reply(w->t, req, TSR_ERR_AUTH, NULL, 0);
        return;
    }
    tsr_vfetch_serve(w->t, w->values, req);
}

/* VALUE_DROP: the scheduler lets go of kept graph values. */
static void on_value_drop(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (!from_sched(w, req))
        return;
    uint64_t job = 0;
    bool whole = false;
    size_t n = tsr_vfetch_serve_drop(w->t, w->values, req, &job, &whole);
    if (whole && n > 0) /* a job that ended with values still here (failed, cancelled) */
        tsr_sched_log(w->p->log, "worker", "dropped %zu kept graph value(s) of job %llu", n,
                      (unsigned long long)job);
}

static void on_kv_run(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (from_sched(w, req))
        tsr_wkv_on_request(w->kv, req);
}

static void on_event(void *arg, const tsr_transport_event_t *ev)
{
    wstate_t *w = arg;
    if (ev->kind == TSR_TRANSPORT_PEER_DOWN && ev->peer == w->sched) {
        w->sched_down = 1;
        tsr_sched_log(w->p->log, "worker", "lost the scheduler: %s",
                      ev->detail ? ev->detail : tsr_status_str(ev->status));
        return;
    }
    if (ev->kind != TSR_TRANSPORT_PEER_DOWN)
        return;
    wpeer_t *p = peer_find(w, ev->peer);
    if (!p || p->node_id != ev->node_id)
        return;
    *p = w->peers[--w->npeers];
    tsr_peer_forget(w->t, ev->peer);
}

static void on_ping(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (!from_sched(w, req))
        return;
    w->last_ping_ms = tsr_sched_now_ms();
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    uint32_t sched_dead_ms = tsr_rbuf_u32(&r);
    if (tsr_rbuf_done(&r) && sched_dead_ms >= 100)
        w->sched_dead_ms = sched_dead_ms;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    pthread_mutex_lock(&w->mu);
    tsr_wbuf_u32(&b, w->busy);
    tsr_wbuf_u64(&b, w->done);
    pthread_mutex_unlock(&w->mu);
    tsr_rpc_reply(w->t, req, b.failed ? TSR_ERR_NOMEM : TSR_OK, b.data, b.len);
    tsr_wbuf_free(&b);
}

static void on_task(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (!from_sched(w, req))
        return;
    pthread_mutex_lock(&w->mu);
    if (w->qlen == QUEUE_MAX || w->quit) {
        pthread_mutex_unlock(&w->mu);
        tsr_rpc_reply(w->t, req, TSR_ERR_UNAVAILABLE, NULL, 0);
        return;
    }
    w->queue[(w->qhead + w->qlen) % QUEUE_MAX] = req;
    w->qlen++;
    w->busy++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* TASK_DROP (proto.h): the queued tasks of a cancelled job are answered
 * "cancelled" without running; the one running, when it is the job's, is
 * interrupted (env.cancel) and answers TSR_ERR_CANCELLED within a batch. */
static void on_task_drop(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
    if (!from_sched(w, req))
        return;
    size_t len = 0;
    const void *d = tsr_rpc_req_data(req, &len);
    uint64_t job = 0;
    if (!tsr_proto_decode_cancel(d, len, &job)) {
        tsr_rpc_reply(w->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, TSR_ERR_UNAVAILABLE, "job %llu was cancelled", (unsigned long long)job);
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_error(&b, &e);
    uint32_t n = 0;
    pthread_mutex_lock(&w->mu);
    size_t kept = 0;
    for (size_t k = 0; k < w->qlen; k++) {
        tsr_rpc_req_t *q = w->queue[(w->qhead + k) % QUEUE_MAX];
        size_t qlen = 0;
        const void *qd = tsr_rpc_req_data(q, &qlen);
        uint64_t qjob = 0;
        if (tsr_wtask_job_of(tsr_rpc_req_type(q), qd, qlen, &qjob) && qjob == job) {
            /* a payload, so the scheduler does not take it for a lost task */
            tsr_rpc_reply(w->t, q, TSR_ERR_UNAVAILABLE, b.data, b.failed ? 0 : b.len);
            w->busy--;
            n++;
            continue;
        }
        w->queue[(w->qhead + kept++) % QUEUE_MAX] = q;
    }
    w->qlen = kept;
    /* the task of the job running now stops at its next batch (its query or
     * graph polls env.cancel) and answers "cancelled": its slot frees now,
     * not when it would have finished */
    bool interrupted = w->running && w->running_job == job;
    if (interrupted)
        tsr_cancel_set(w->env.cancel);
    pthread_mutex_unlock(&w->mu);
    tsr_wbuf_free(&b);
    size_t nv = tsr_wvalues_drop(w->values, job, NULL, 0); /* its kept graph values too */
    if (nv > 0)
        tsr_sched_log(w->p->log, "worker", "dropped %zu kept graph value(s) of job %llu", nv,
                      (unsigned long long)job);
    if (n > 0)
        tsr_sched_log(w->p->log, "worker", "dropped %u queued task(s) of cancelled job %llu", n,
                      (unsigned long long)job);
    if (interrupted)
        tsr_sched_log(w->p->log, "worker", "interrupting the running task of cancelled job %llu",
                      (unsigned long long)job);
    uint8_t out[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    tsr_rpc_reply(w->t, req, TSR_OK, out, sizeof(out));
}

static void *executor(void *arg)
{
    wstate_t *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->qlen == 0 && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        tsr_rpc_req_t *req = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % QUEUE_MAX;
        w->qlen--;
        size_t len = 0;
        const void *data = tsr_rpc_req_data(req, &len);
        /* from here TASK_DROP of this job interrupts it: the flag is reset
         * under the same lock it is set under, so a drop meant for the task
         * before never reaches this one */
        w->running = tsr_wtask_job_of(tsr_rpc_req_type(req), data, len, &w->running_job);
        tsr_cancel_reset(w->env.cancel);
        pthread_mutex_unlock(&w->mu);

        if (w->delay_ms) {
            struct timespec ts = {w->delay_ms / 1000, (long)(w->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        tsr_wbuf_t out;
        tsr_wbuf_init(&out, NULL);
        tsr_status_t rc = tsr_wtask_run(&w->env, tsr_rpc_req_type(req), data, len, &out);
        if (out.failed)
            rc = TSR_ERR_NOMEM;
        if (rc == TSR_OK && w->env.kept) /* one line per value kept here (> 64 KiB) */
            tsr_sched_log(w->p->log, "worker", "kept graph value %u of job %llu (%llu bytes)",
                          w->env.kept_task, (unsigned long long)w->env.kept_job,
                          (unsigned long long)w->env.kept_bytes);
        if (rc != TSR_OK && w->env.not_run) /* sent ahead; its producer here failed */
            tsr_sched_log(w->p->log, "worker",
                          "graph task not run: an input it reads here was not produced");
        tsr_rpc_reply(w->t, req, rc, out.data, out.failed ? 0 : out.len);
        tsr_wbuf_free(&out);

        pthread_mutex_lock(&w->mu);
        w->running = false;
        w->busy--;
        w->done++;
        pthread_mutex_unlock(&w->mu);
    }
}

/* Opens the device once in a scratch context: a wrong name fails the worker
 * at start, not its first task. Returns an exit code (0: fine). */
static int device_check(const tsr_worker_params_t *p)
{
    tsr_context_params_t cp = {.threads = 1};
    tsr_context_t *ctx = NULL;
    if (tsr_context_create(&cp, &ctx) != TSR_OK)
        return 1;
    int code = 0;
    if (tsr_context_set_device(ctx, p->device) != TSR_OK) {
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        tsr_sched_log(p->log, "worker", "error: device '%s': %s", p->device, e.message);
        code = tsr_status_exit_code(e.status);
    }
    tsr_context_destroy(ctx);
    return code;
}

/* Where peers reach our listener: the address it is bound to, or this
 * host's name when bound to every interface. */
static void advertised_host(const char *listen_host, char *buf, size_t size)
{
    if (strcmp(listen_host, "0.0.0.0") == 0 || strcmp(listen_host, "::") == 0 ||
        listen_host[0] == '\0') {
        buf[0] = '\0';
        gethostname(buf, size - 1);
        buf[size - 1] = '\0';
        if (buf[0])
            return;
    }
    snprintf(buf, size, "%s", listen_host);
}

/* HELLO and PROVE (handshake.h) with the join info. Returns an exit code (0
 * on success). */
static int join(wstate_t *w, const char *listen_host)
{
    const tsr_worker_params_t *p = w->p;
    tsr_error_t err;
    tsr_error_clear(&err);
    char host[128] = "", adv[256];
    gethostname(host, sizeof(host) - 1);
    advertised_host(listen_host, adv, sizeof(adv));
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_str(&b, p->device);
    tsr_wbuf_u32(&b, (uint32_t)getpid());
    tsr_wbuf_str(&b, host);
    tsr_wbuf_str(&b, p->data_dir ? p->data_dir : "");
    tsr_wbuf_str(&b, adv);
    tsr_wbuf_u32(&b, tsr_transport_port(w->t));
    tsr_wbuf_u64(&b, tsr_wkv_store_id(w->kv)); /* its kv copies' identity */
    char who[300];
    snprintf(who, sizeof(who), "the scheduler at %s:%u", p->sched_host, p->sched_port);
    tsr_status_t rc = b.failed ? tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory")
                               : tsr_hs_dial(w->t, w->sched, &w->tok, TSR_ROLE_WORKER, b.data,
                                             b.len, 5000, who, &err);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        return 5;
    }
    return 0;
}

int tsr_worker_run(const tsr_worker_params_t *p)
{
    wstate_t *w = tsr_mem_calloc(NULL, 1, sizeof(*w));
    if (!w)
        return 1;
    w->p = p;
    w->env.threads = p->threads;
    w->env.device = p->device;
    if (tsr_cancel_create(&w->env.cancel) != TSR_OK) {
        tsr_mem_free(NULL, w);
        return 1;
    }
    const char *delay = getenv("TSR_TEST_TASK_DELAY_MS");
    w->delay_ms = delay ? (unsigned)strtoul(delay, NULL, 10) % 60000u : 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int code = 1, dead_ms = p->dead_ms > 0 ? p->dead_ms : 3000;
    bool thread_started = false;
    pthread_t th;
    tsr_error_t err;
    tsr_error_clear(&err);
    const char *listen_host = p->listen_host && p->listen_host[0] ? p->listen_host : "127.0.0.1";

    if ((code = device_check(p)) != 0)
        goto cleanup;
    if (tsr_wtask_env_load_plugins(&w->env, p->plugins, p->nplugins, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        code = tsr_status_exit_code(err.status);
        goto cleanup;
    }
    code = 1;
    if (tsr_auth_token_load(p->token_path, &w->tok, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        code = 5;
        goto cleanup;
    }
    tsr_transport_params_t tp = {.node_id = tsr_sched_node_id(),
                                 .listen_host = listen_host,
                                 .listen_port = p->listen_port,
                                 .dispatch = TSR_DISPATCH_PROGRESS_ONLY,
                                 .on_event = on_event,
                                 .event_arg = w};
    if (tsr_wvalues_create(NULL, &w->values) != TSR_OK)
        goto cleanup;
    if (tsr_transport_create(NULL, &tp, &w->t, &err) != TSR_OK) {
        /* the transport names the address (a port in use, a foreign host) */
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        tsr_sched_log(p->log, "worker", "hint: pick another --listen address or port");
        code = 5;
        goto cleanup;
    }
    if (tsr_rpc_register(w->t, TSR_MSG_PING, on_ping, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_INFER, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_RUN, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_WHOLE, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_GRAPH, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_DROP, on_task_drop, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_HELLO, on_peer_hello, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_PROVE, on_peer_prove, w, &err) != TSR_OK ||
        tsr_wlock_create(w->t, p->log, peer_allowed, w, &w->locks, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_LOCK_RUN, on_lock_run, w, &err) != TSR_OK ||
        tsr_wkv_create(w->t, p->data_dir, p->device, p->log, &w->kv, &err) != TSR_OK ||
        tsr_wkv_serve_reads(w->kv, peer_allowed, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_KV_RUN, on_kv_run, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_VALUE_FETCH, on_value_fetch, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_VALUE_DROP, on_value_drop, w, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        goto cleanup;
    }
    /* graph values: kept here, fetched from peers by the executor thread */
    if (tsr_vfetch_create(NULL, w->t, &w->tok, &w->env.fetch) != TSR_OK)
        goto cleanup;
    w->env.values = w->values;
    w->env.t = w->t;
    w->env.node_id = tsr_transport_node_id(w->t);
    w->env.fetch_timeout_ms = 120000; /* a big value on a slow link; a dead peer fails at once */
    if (tsr_transport_connect(w->t, p->sched_host, p->sched_port, 5000, &w->sched, &err) !=
        TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: cannot reach the scheduler at %s:%u: %s",
                      p->sched_host, p->sched_port, err.message);
        code = 5;
        goto cleanup;
    }
    if ((code = join(w, listen_host)) != 0)
        goto cleanup;
    if (pthread_create(&th, NULL, executor, w) != 0) {
        code = 1;
        goto cleanup;
    }
    thread_started = true;
    tsr_sched_log(p->log, "worker", "joined the scheduler at %s:%u (device %s, listening on %s:%u)",
                  p->sched_host, p->sched_port, p->device, listen_host, tsr_transport_port(w->t));
    w->last_ping_ms = tsr_sched_now_ms();
    code = 0;
    while (!*p->stop) {
        tsr_transport_wait(w->t, 100);
        if (w->sched_down) {
            code = 5;
            break;
        }
        uint64_t limit = 2u * (uint64_t)(w->sched_dead_ms > (uint32_t)dead_ms ? w->sched_dead_ms
                                                                              : (uint32_t)dead_ms);
        if (tsr_sched_now_ms() - w->last_ping_ms > limit) {
            tsr_sched_log(p->log, "worker", "error: the scheduler stopped sending heartbeats");
            code = 5;
            break;
        }
    }
    if (*p->stop)
        tsr_sched_log(p->log, "worker", "stopping");

cleanup:
    if (thread_started) {
        pthread_mutex_lock(&w->mu);
        w->quit = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(th, NULL);
        while (w->qlen > 0) { /* queued, never started: tell the scheduler */
            tsr_rpc_reply(w->t, w->queue[w->qhead], TSR_ERR_UNAVAILABLE, NULL, 0);
            w->qhead = (w->qhead + 1) % QUEUE_MAX;
            w->qlen--;
        }
        for (int i = 0; i < 5; i++) /* let the replies leave */
            tsr_transport_progress(w->t);
    }
    tsr_wtask_env_free(&w->env);
    tsr_vfetch_destroy(w->env.fetch); /* its connections, before the transport goes */
    w->env.fetch = NULL;
    tsr_wkv_destroy(w->kv); /* waits for the write each kv thread runs */
    w->kv = NULL;
    if (!tsr_wlock_quiesce(w->locks, 2000)) {
        /* a lock thread still blocks in an acquire on the transport: freeing
         * either under it would be a use after free; the process exits now */
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return code;
    }
    /* the home's handlers and region go first: its destroy needs the transport */
    tsr_wlock_destroy(w->locks);
    tsr_transport_destroy(w->t);
    tsr_wvalues_destroy(w->values); /* after the transport: no reply borrows them now */
    memset(&w->tok, 0, sizeof(w->tok));
    tsr_mem_free(NULL, w->peers);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    tsr_mem_free(NULL, w);
    return code;
}
