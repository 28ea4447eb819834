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
 * The worker dials the scheduler (it needs no listener) and proves the token
 * (auth.h); it also checks the scheduler's proof before taking any task. A
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
#include "proto.h"
#include "scheduler.h"
#include "transport.h"
#include "worker_kv.h"
#include "worker_lock.h"
#include "worker_task.h"

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
    unsigned busy;     /* tasks queued or running */
    unsigned delay_ms; /* TSR_TEST_TASK_DELAY_MS: tests make tasks slow to hit them mid-run */
    uint64_t done;
    tsr_wtask_env_t env;
    tsr_wlock_t *locks; /* this worker's lock home and client (worker_lock.c) */
    tsr_wkv_t *kv;      /* the kv partitions it hosts (worker_kv.c) */
} wstate_t;

static void on_event(void *arg, const tsr_transport_event_t *ev)
{
    wstate_t *w = arg;
    if (ev->kind == TSR_TRANSPORT_PEER_DOWN && ev->peer == w->sched) {
        w->sched_down = 1;
        tsr_sched_log(w->p->log, "worker", "lost the scheduler: %s",
                      ev->detail ? ev->detail : tsr_status_str(ev->status));
    }
}

static void on_ping(void *arg, tsr_rpc_req_t *req)
{
    wstate_t *w = arg;
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
        pthread_mutex_unlock(&w->mu);

        if (w->delay_ms) {
            struct timespec ts = {w->delay_ms / 1000, (long)(w->delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        size_t len = 0;
        const void *data = tsr_rpc_req_data(req, &len);
        tsr_wbuf_t out;
        tsr_wbuf_init(&out, NULL);
        tsr_status_t rc = tsr_wtask_run(&w->env, tsr_rpc_req_type(req), data, len, &out);
        if (out.failed)
            rc = TSR_ERR_NOMEM;
        tsr_rpc_reply(w->t, req, rc, out.data, out.failed ? 0 : out.len);
        tsr_wbuf_free(&out);

        pthread_mutex_lock(&w->mu);
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

/* HELLO and PROVE (auth.h). Returns an exit code (0 on success). */
static int join(wstate_t *w, const tsr_token_t *tok)
{
    const tsr_worker_params_t *p = w->p;
    tsr_error_t err;
    tsr_error_clear(&err);
    uint8_t cn[TSR_NONCE_LEN];
    tsr_auth_random(cn, sizeof(cn));
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_ROLE_WORKER);
    tsr_wbuf_bytes(&b, cn, sizeof(cn));
    tsr_rpc_msg_t reply = {0};
    tsr_status_t rc =
        tsr_rpc_call(w->t, w->sched, TSR_MSG_HELLO, b.data, b.len, 5000, &reply, &err);
    tsr_wbuf_free(&b);
    if (rc != TSR_OK || reply.len != TSR_NONCE_LEN + TSR_MAC_LEN) {
        tsr_rpc_msg_release(w->t, &reply);
        tsr_sched_log(p->log, "worker", "error: the scheduler did not answer the join: %s",
                      tsr_status_str(rc));
        return 5;
    }
    uint8_t sn[TSR_NONCE_LEN], smac[TSR_MAC_LEN], want[TSR_MAC_LEN];
    memcpy(sn, reply.data, TSR_NONCE_LEN);
    memcpy(smac, (const uint8_t *)reply.data + TSR_NONCE_LEN, TSR_MAC_LEN);
    tsr_rpc_msg_release(w->t, &reply);
    /* prove first (a refused proof is logged by the scheduler), then check
     * the scheduler's proof before taking any task */
    uint8_t mac[TSR_MAC_LEN];
    tsr_auth_mac(tok, "tsr-peer", TSR_ROLE_WORKER, sn, cn, mac);
    char host[128] = "";
    gethostname(host, sizeof(host) - 1);
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_bytes(&b, mac, sizeof(mac));
    tsr_wbuf_str(&b, p->device);
    tsr_wbuf_u32(&b, (uint32_t)getpid());
    tsr_wbuf_str(&b, host);
    tsr_wbuf_str(&b, p->data_dir ? p->data_dir : "");
    rc = tsr_rpc_call(w->t, w->sched, TSR_MSG_PROVE, b.data, b.len, 5000, &reply, &err);
    tsr_wbuf_free(&b);
    tsr_rpc_msg_release(w->t, &reply);
    if (rc == TSR_ERR_AUTH) {
        tsr_sched_log(p->log, "worker",
                      "error: authentication failed: the scheduler refused "
                      "our token");
        return 5;
    }
    if (rc != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: the scheduler did not accept the join: %s",
                      tsr_status_str(rc));
        return 5;
    }
    tsr_auth_mac(tok, "tsr-sched", TSR_ROLE_WORKER, cn, sn, want);
    if (!tsr_auth_mac_equal(smac, want)) {
        tsr_sched_log(p->log, "worker",
                      "error: authentication failed: the scheduler did not prove the token");
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
    const char *delay = getenv("TSR_TEST_TASK_DELAY_MS");
    w->delay_ms = delay ? (unsigned)strtoul(delay, NULL, 10) % 60000u : 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int code = 1, dead_ms = p->dead_ms > 0 ? p->dead_ms : 3000;
    bool thread_started = false;
    pthread_t th;
    tsr_token_t tok;
    tsr_error_t err;
    tsr_error_clear(&err);

    if ((code = device_check(p)) != 0)
        goto cleanup;
    if (tsr_wtask_env_load_plugins(&w->env, p->plugins, p->nplugins, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        code = tsr_status_exit_code(err.status);
        goto cleanup;
    }
    code = 1;
    if (tsr_auth_token_load(p->token_path, &tok, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        code = 5;
        goto cleanup;
    }
    tsr_transport_params_t tp = {.node_id = tsr_sched_node_id(),
                                 .dispatch = TSR_DISPATCH_PROGRESS_ONLY,
                                 .on_event = on_event,
                                 .event_arg = w};
    if (tsr_transport_create(NULL, &tp, &w->t, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: cannot start the transport: %s", err.message);
        goto cleanup;
    }
    if (tsr_rpc_register(w->t, TSR_MSG_PING, on_ping, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_INFER, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_RUN, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_WHOLE, on_task, w, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_TASK_GRAPH, on_task, w, &err) != TSR_OK ||
        tsr_wlock_create(w->t, p->log, &w->locks, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_LOCK_RUN, tsr_wlock_on_request, w->locks, &err) != TSR_OK ||
        tsr_wkv_create(w->t, p->data_dir, p->log, &w->kv, &err) != TSR_OK ||
        tsr_rpc_register(w->t, TSR_MSG_KV_RUN, tsr_wkv_on_request, w->kv, &err) != TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: %s", err.message);
        goto cleanup;
    }
    if (tsr_transport_connect(w->t, p->sched_host, p->sched_port, 5000, &w->sched, &err) !=
        TSR_OK) {
        tsr_sched_log(p->log, "worker", "error: cannot reach the scheduler at %s:%u: %s",
                      p->sched_host, p->sched_port, err.message);
        code = 5;
        goto cleanup;
    }
    if ((code = join(w, &tok)) != 0)
        goto cleanup;
    memset(&tok, 0, sizeof(tok));
    if (pthread_create(&th, NULL, executor, w) != 0) {
        code = 1;
        goto cleanup;
    }
    thread_started = true;
    tsr_sched_log(p->log, "worker", "joined the scheduler at %s:%u (device %s)", p->sched_host,
                  p->sched_port, p->device);
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
    tsr_wkv_destroy(w->kv); /* waits for the write each kv thread runs */
    w->kv = NULL;
    if (!tsr_wlock_quiesce(w->locks, 2000)) {
        /* a lock thread still blocks in an acquire on the transport: freeing
         * either under it would be a use after free; the process exits now */
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        return code;
    }
    tsr_transport_destroy(w->t);
    tsr_wlock_destroy(w->locks);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    tsr_mem_free(NULL, w);
    return code;
}
