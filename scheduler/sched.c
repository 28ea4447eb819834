/*
 * sched.c - the scheduler daemon (`tessera scheduler`): listener,
 * authentication, worker membership, heartbeats, cluster status. SQL jobs are
 * in sched_job.c. See sched_internal.h for the threading model.
 *
 * Heartbeats. Every dead_ms/6 the scheduler sends PING to each ready worker
 * that has none outstanding (timeout dead_ms). A worker is declared dead when
 * a ping fails, when its last answer is older than dead_ms, or at once when
 * the transport reports its endpoint down (a killed process: TCP reset).
 * Declaring it dead forgets its endpoint, which fails every call pending on
 * it with TSR_ERR_UNAVAILABLE; the jobs' completion callbacks then place
 * those tasks on other workers (lineage: a task is its input byte range and
 * its SQL, so re-running it anywhere gives the same rows).
 *
 * HTTP (http.h, --http): a read-only view served from its own thread; the
 * loop calls tsr_sched_http_tick each iteration (it copies the worker table
 * when a request waits) and sched_job.c reports jobs and tasks to it.
 *
 * Authentication (auth.h): until a connection has passed PROVE, every request
 * but HELLO/PROVE is answered TSR_ERR_AUTH and nothing else; a failed proof is
 * logged here with the peer's node id and answered with a bare
 * "authentication failed".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "sched_internal.h"
#include "sched_txn.h"

static sconn_t *conn_find(sched_t *s, const tsr_peer_t *peer)
{
    for (size_t i = 0; i < s->nconns; i++)
        if (s->conns[i]->peer == peer)
            return s->conns[i];
    return NULL;
}

static void conn_remove(sched_t *s, const tsr_peer_t *peer)
{
    for (size_t i = 0; i < s->nconns; i++) {
        if (s->conns[i]->peer == peer) {
            tsr_mem_free(s->mem, s->conns[i]);
            s->conns[i] = s->conns[--s->nconns];
            return;
        }
    }
}

size_t tsr_sched_ready_count(const sched_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        n += s->workers[i]->state == SW_READY;
    return n;
}

void tsr_sched_worker_dead(sched_t *s, size_t i, const char *why)
{
    sworker_t *w = s->workers[i];
    if (w->state != SW_READY)
        return;
    w->state = SW_DEAD;
    w->dead_at_ms = tsr_sched_now_ms();
    tsr_sched_log(s->p->log, "scheduler", "worker %zu (pid %u on %s) is dead: %s", i + 1, w->pid,
                  w->host, why);
    tsr_peer_t *peer = w->peer;
    w->peer = NULL;
    conn_remove(s, peer);
    /* its queued tasks move to other queues (or fail their job when no
     * worker left can run them), then its calls in flight fail */
    tsr_placer_worker_dead(&s->placer, i);
    tsr_peer_forget(s->t, peer); /* fails its pending calls: their tasks move */
    tsr_placer_pump(&s->placer);
}

void tsr_sched_active_add(sched_t *s, sactive_t *a)
{
    a->prev = NULL;
    a->next = s->active;
    if (s->active)
        s->active->prev = a;
    s->active = a;
}

void tsr_sched_active_remove(sched_t *s, sactive_t *a)
{
    if (!a->prev && s->active != a)
        return; /* not linked */
    if (a->prev)
        a->prev->next = a->next;
    else
        s->active = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
}

typedef struct sdrop {
    sched_t *s;
    uint8_t buf[8]; /* the TASK_DROP payload, alive while the call is */
} sdrop_t;

static void on_dropped(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    (void)status; /* best effort: a worker that misses it runs the tasks */
    sdrop_t *d = arg;
    tsr_rpc_msg_release(d->s->t, reply);
    tsr_mem_free(d->s->mem, d);
}

/* Tells every ready worker to drop its queued tasks of job (TASK_DROP). */
static void drop_on_workers(sched_t *s, uint64_t job)
{
    for (size_t i = 0; i < s->nworkers; i++) {
        sworker_t *w = s->workers[i];
        if (w->state != SW_READY || !w->peer)
            continue;
        sdrop_t *d = tsr_mem_calloc(s->mem, 1, sizeof(*d));
        if (!d)
            return;
        d->s = s;
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, s->mem);
        tsr_proto_encode_cancel(&b, job);
        bool ok = !b.failed && b.len == sizeof(d->buf);
        if (ok)
            memcpy(d->buf, b.data, b.len);
        tsr_wbuf_free(&b);
        if (!ok || tsr_rpc_call_async(s->t, w->peer, TSR_MSG_TASK_DROP, d->buf, sizeof(d->buf),
                                      5000, on_dropped, d, NULL) != TSR_OK)
            tsr_mem_free(s->mem, d);
    }
}

/* Cancels the jobs peer submitted and still waits for (job 0: all, else
 * that one); the workers drop their queued tasks. Returns how many. */
static uint32_t cancel_jobs(sched_t *s, const tsr_peer_t *peer, uint64_t job, const char *why)
{
    uint32_t n = 0;
    /* a cancel unlinks its job (and nothing else): rescan from the head */
    for (sactive_t *a = s->active; a;) {
        tsr_rpc_req_t *held = *a->req;
        if (held && tsr_rpc_req_peer(held) == peer && (job == 0 || a->id == job)) {
            uint64_t id = a->id;
            tsr_sched_log(s->p->log, "scheduler", "job %llu: %s", (unsigned long long)id, why);
            a->cancel(a); /* may free the job */
            drop_on_workers(s, id);
            n++;
            a = s->active;
            continue;
        }
        a = a->next;
    }
    return n;
}

void tsr_sched_cancel_request(sched_t *s, tsr_rpc_req_t *req)
{
    size_t len = 0;
    const void *d = tsr_rpc_req_data(req, &len);
    uint64_t job = 0;
    if (!tsr_proto_decode_cancel(d, len, &job)) {
        tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_BAD_INPUT, "malformed cancel request",
                              NULL);
        return;
    }
    uint32_t n = cancel_jobs(s, tsr_rpc_req_peer(req), job, "cancelled by its client");
    uint8_t out[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    tsr_rpc_reply(s->t, req, TSR_OK, out, sizeof(out));
}

static void on_event(void *arg, const tsr_transport_event_t *ev)
{
    sched_t *s = arg;
    if (ev->kind != TSR_TRANSPORT_PEER_DOWN)
        return;
    /* The transport delivers no event for a peer we forgot, so every event
     * is of a live peer; still, only peers in the table (same node id) are
     * acted on: a peer that never said HELLO has no entry, and stays until
     * the transport ends. */
    sconn_t *c = conn_find(s, ev->peer);
    if (!c || c->node_id != ev->node_id)
        return;
    if (c->worker >= 0 && s->workers[c->worker]->state == SW_READY) {
        tsr_sched_worker_dead(s, (size_t)c->worker,
                              ev->detail ? ev->detail : tsr_status_str(ev->status));
        return;
    }
    /* a client that went away (killed, or ^C) cancels what it waits for */
    cancel_jobs(s, ev->peer, 0, "its client went away");
    conn_remove(s, ev->peer);
    tsr_peer_forget(s->t, ev->peer);
}

/* The connection of an authenticated peer, or NULL after answering AUTH. */
static sconn_t *authed(sched_t *s, tsr_rpc_req_t *req)
{
    sconn_t *c = conn_find(s, tsr_rpc_req_peer(req));
    if (c && c->hs.authed)
        return c;
    tsr_sched_log(s->p->log, "scheduler",
                  "refused a request (type %u) from an unauthenticated "
                  "peer (node %u)",
                  tsr_rpc_req_type(req), tsr_peer_node_id(tsr_rpc_req_peer(req)));
    tsr_rpc_reply(s->t, req, TSR_ERR_AUTH, NULL, 0);
    return NULL;
}

static void on_hello(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    size_t len = 0;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    tsr_peer_t *peer = tsr_rpc_req_peer(req);
    sconn_t *c = conn_find(s, peer);
    if (len != 1 + TSR_NONCE_LEN || (d[0] != TSR_ROLE_WORKER && d[0] != TSR_ROLE_CLIENT) ||
        (c && c->hs.hello) || (!c && s->nconns == SCHED_MAX_CONNS)) {
        tsr_rpc_reply(s->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    if (!c) {
        c = tsr_mem_calloc(s->mem, 1, sizeof(*c));
        if (!c) {
            tsr_rpc_reply(s->t, req, TSR_ERR_NOMEM, NULL, 0);
            return;
        }
        c->peer = peer;
        c->node_id = tsr_peer_node_id(peer);
        c->worker = -1;
        s->conns[s->nconns++] = c;
    }
    uint8_t out[TSR_HS_HELLO_REPLY];
    tsr_status_t rc = tsr_hs_hello(&c->hs, &s->token, d, len, out);
    tsr_rpc_reply(s->t, req, rc, rc == TSR_OK ? out : NULL, rc == TSR_OK ? sizeof(out) : 0);
}

static void on_prove(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    size_t len = 0;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    tsr_peer_t *peer = tsr_rpc_req_peer(req);
    sconn_t *c = conn_find(s, peer);
    if (!c) {
        tsr_rpc_reply(s->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    /* a worker's join info is checked before its proof counts */
    tsr_hs_t before = c->hs;
    const uint8_t *rest = NULL;
    size_t rest_len = 0;
    tsr_status_t prc = tsr_hs_prove(&c->hs, &s->token, d, len, &rest, &rest_len);
    const char *role = c->hs.role == TSR_ROLE_WORKER ? "worker" : "client";
    if (prc == TSR_ERR_AUTH) {
        tsr_sched_log(s->p->log, "scheduler",
                      "authentication failed: a %s (node %u) did not prove the cluster token", role,
                      tsr_peer_node_id(peer));
        tsr_proto_reply_error(s->t, s->mem, req, TSR_ERR_AUTH, "authentication failed", NULL);
        return;
    }
    if (prc != TSR_OK) {
        tsr_rpc_reply(s->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    if (c->hs.role == TSR_ROLE_CLIENT) {
        tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
        return;
    }
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, rest, rest_len);
    const char *device = tsr_rbuf_str(&r);
    uint32_t pid = tsr_rbuf_u32(&r);
    const char *host = tsr_rbuf_str(&r), *dir = tsr_rbuf_str(&r);
    /* where the worker's transport listens (its lock home, docs/locks.md) */
    const char *ahost = tsr_rbuf_str(&r);
    uint32_t aport = tsr_rbuf_u32(&r);
    uint64_t store_id = tsr_rbuf_u64(&r); /* its kv store's identity (worker_kv.c) */
    sworker_t *w = NULL;
    if (!tsr_rbuf_done(&r) || aport > 65535 || s->nworkers == SCHED_MAX_WORKERS ||
        !(w = tsr_mem_calloc(s->mem, 1, sizeof(*w)))) {
        c->hs = before; /* not admitted */
        tsr_rpc_reply(s->t, req, TSR_ERR_BAD_INPUT, NULL, 0);
        return;
    }
    snprintf(w->device, sizeof(w->device), "%s", device);
    snprintf(w->host, sizeof(w->host), "%s", host);
    snprintf(w->data_dir, sizeof(w->data_dir), "%s", dir);
    snprintf(w->addr_host, sizeof(w->addr_host), "%s", ahost);
    w->addr_port = (uint16_t)aport;
    w->store_id = store_id;
    w->node_id = tsr_peer_node_id(peer);
    w->pid = pid;
    w->peer = peer;
    w->s = s;
    w->idx = s->nworkers;
    w->state = SW_READY;
    w->last_pong_ms = tsr_sched_now_ms();
    c->worker = (int)s->nworkers;
    tsr_placer_add_worker(&s->placer, s->nworkers, w->device);
    s->workers[s->nworkers++] = w;
    tsr_sched_log(s->p->log, "scheduler", "worker %zu joined: pid %u on %s, device %s", s->nworkers,
                  pid, w->host, w->device);
    tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
    s->beat_now = true;
    tsr_sched_kv_worker_joined(s, s->nworkers - 1); /* kv partitions move to it */
}

static void on_client_ping(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
}

static void on_status(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (!authed(s, req))
        return;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    tsr_wbuf_u32(&b, (uint32_t)getpid());
    tsr_wbuf_u32(&b, (uint32_t)s->nworkers);
    for (size_t i = 0; i < s->nworkers; i++) {
        const sworker_t *w = s->workers[i];
        tsr_wbuf_u32(&b, (uint32_t)(i + 1));
        tsr_wbuf_str(&b, w->state == SW_READY ? "ready" : "dead");
        tsr_wbuf_str(&b, w->device);
        tsr_wbuf_str(&b, w->host);
        tsr_wbuf_u32(&b, w->pid);
        tsr_wbuf_u32(&b, w->state == SW_READY ? w->inflight : 0);
        tsr_wbuf_u64(&b, w->tasks_done);
    }
    tsr_rpc_reply(s->t, req, b.failed ? TSR_ERR_NOMEM : TSR_OK, b.data, b.failed ? 0 : b.len);
    tsr_wbuf_free(&b);
}

static void on_sql(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_job_start(s, req);
}

static void on_graph(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_graph_start(s, req);
}

static void on_lock(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_lock_request(s, req);
}

static void on_lock_view(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_lock_view(s, req);
}

static void on_kv(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_kv_request(s, req);
}

static void on_cancel(void *arg, tsr_rpc_req_t *req)
{
    sched_t *s = arg;
    if (authed(s, req))
        tsr_sched_cancel_request(s, req);
}

static void on_pong(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    sworker_t *w = arg;
    sched_t *s = w->s;
    w->ping_inflight = false;
    if (status == TSR_OK && w->state == SW_READY) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, reply->data, reply->len);
        uint32_t load = tsr_rbuf_u32(&r);
        (void)tsr_rbuf_u64(&r);
        if (!r.bad)
            w->load = load;
        w->last_pong_ms = tsr_sched_now_ms();
    } else if (w->state == SW_READY) {
        tsr_sched_worker_dead(s, w->idx,
                              status == TSR_ERR_TIMEOUT ? "no heartbeat answer in time"
                                                        : tsr_status_str(status));
    }
    tsr_rpc_msg_release(s->t, reply);
}

static void heartbeat(sched_t *s)
{
    uint64_t now = tsr_sched_now_ms();
    for (size_t i = 0; i < s->nworkers; i++) {
        sworker_t *w = s->workers[i];
        if (w->state != SW_READY)
            continue;
        if (now - w->last_pong_ms > (uint64_t)s->dead_ms) {
            tsr_sched_worker_dead(s, i, "no heartbeat answer in time");
            continue;
        }
        if (w->ping_inflight)
            continue;
        /* the ping's own timeout: what is left of this worker's allowance */
        int left = (int)((uint64_t)s->dead_ms - (now - w->last_pong_ms));
        /* the payload tells the worker our timeout, so it can tell how long a
         * silence means a lost scheduler whatever its own settings */
        if (tsr_rpc_call_async(s->t, w->peer, TSR_MSG_PING, &s->ping_payload,
                               sizeof(s->ping_payload), left > 50 ? left : 50, on_pong, w,
                               NULL) == TSR_OK)
            w->ping_inflight = true;
    }
}

static int write_addr_file(const char *path, const char *host, uint16_t port)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%s:%u\n", host, port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int tsr_sched_run(const tsr_sched_params_t *p)
{
    sched_t *s = tsr_mem_calloc(NULL, 1, sizeof(*s));
    if (!s)
        return 1;
    s->p = p;
    s->dead_ms = p->dead_ms > 0 ? p->dead_ms : 3000;
    for (int i = 0; i < 4; i++) /* u32 little-endian (proto.h) */
        s->ping_payload[i] = (uint8_t)((uint32_t)s->dead_ms >> (8 * i));
    s->next_job = 1;
    int code = 1;
    tsr_error_t err;
    tsr_error_clear(&err);
    const tsr_policy_ops_t *policy = tsr_policy_find(p->policy);
    if (!policy) {
        tsr_sched_log(p->log, "scheduler", "error: unknown policy '%s' (known: %s)", p->policy,
                      tsr_policy_names());
        code = 2;
        goto cleanup;
    }
    tsr_placer_init(&s->placer, policy, p->slots);
    const char *host = p->listen_host ? p->listen_host : "127.0.0.1";
    if (tsr_auth_token_load(p->token_path, &s->token, &err) != TSR_OK) {
        tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
        code = 5;
        goto cleanup;
    }
    /* the kv catalog (--data-dir): a corrupted one stops us here, exit 1 */
    if (tsr_sched_kv_open(s, &err) != TSR_OK) {
        tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
        if (err.status == TSR_ERR_BAD_INPUT) /* a damaged file, not a missing dir */
            tsr_sched_log(p->log, "scheduler",
                          "hint: restore the file from a backup, or move it away to start with "
                          "no kv tables (the workers keep their data under the old names)");
        goto cleanup;
    }
    /* the coordinator log of cluster transactions: redoes what it holds */
    if (tsr_sched_txn_open(s, &err) != TSR_OK) {
        tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
        goto cleanup;
    }
    tsr_transport_params_t tp = {.node_id = 1,
                                 .listen_host = host,
                                 .listen_port = p->listen_port,
                                 .dispatch = TSR_DISPATCH_PROGRESS_ONLY,
                                 .on_event = on_event,
                                 .event_arg = s};
    if (tsr_transport_create(NULL, &tp, &s->t, &err) != TSR_OK) {
        tsr_sched_log(p->log, "scheduler", "error: cannot listen on %s:%u: %s", host,
                      p->listen_port, err.message);
        code = 5;
        goto cleanup;
    }
    struct {
        uint16_t type;
        tsr_rpc_handler_fn fn;
    } handlers[] = {{TSR_MSG_HELLO, on_hello},
                    {TSR_MSG_PROVE, on_prove},
                    {TSR_MSG_CLIENT_PING, on_client_ping},
                    {TSR_MSG_SQL, on_sql},
                    {TSR_MSG_STATUS, on_status},
                    {TSR_MSG_LOCK, on_lock},
                    {TSR_MSG_LOCK_VIEW, on_lock_view},
                    {TSR_MSG_KV, on_kv},
                    {TSR_MSG_GRAPH, on_graph},
                    {TSR_MSG_CANCEL, on_cancel}};
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (tsr_rpc_register(s->t, handlers[i].type, handlers[i].fn, s, &err) != TSR_OK) {
            tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
            goto cleanup;
        }
    uint16_t port = tsr_transport_port(s->t);
    if (p->http_host) {
        /* before the address file: whoever waits for that one (cluster up)
         * finds the HTTP address already written */
        char saddr[300];
        snprintf(saddr, sizeof(saddr), "%s:%u", host, port);
        tsr_sched_http_params_t hp = {.host = p->http_host,
                                      .port = p->http_port,
                                      .require_auth = p->http_auth,
                                      .sched_addr = saddr};
        if (tsr_sched_http_start(s, &hp, &s->http, &err) != TSR_OK) {
            tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
            if (err.hint[0])
                tsr_sched_log(p->log, "scheduler", "hint: %s", err.hint);
            code = tsr_status_exit_code(err.status); /* in use: 5, like the listener */
            goto cleanup;
        }
        uint16_t hport = tsr_sched_http_port(s->http);
        if (p->http_addr_file && write_addr_file(p->http_addr_file, p->http_host, hport) != 0) {
            tsr_sched_log(p->log, "scheduler", "error: cannot write '%s': %s", p->http_addr_file,
                          strerror(errno));
            goto cleanup;
        }
        tsr_sched_log(p->log, "scheduler", "http: serving /status /jobs /metrics on %s:%u%s",
                      p->http_host, hport, p->http_auth ? " (bearer required)" : "");
    }
    if (p->addr_file && write_addr_file(p->addr_file, host, port) != 0) {
        tsr_sched_log(p->log, "scheduler", "error: cannot write '%s': %s", p->addr_file,
                      strerror(errno));
        goto cleanup;
    }
    /* the missed keys a clean stop kept are in memory now: their file goes
     * before any write can make it out of date */
    if (tsr_sched_kv_missed_drop(s, &err) != TSR_OK) {
        tsr_sched_log(p->log, "scheduler", "error: %s", err.message);
        goto cleanup;
    }
    tsr_sched_log(p->log, "scheduler", "listening on %s:%u", host, port);
    uint64_t next_beat = 0;
    s->started_ms = tsr_sched_now_ms();
    int beat_ms = s->dead_ms / 6 > 10 ? s->dead_ms / 6 : 10;
    while (!*p->stop) {
        /* a commit waiting for the txn log's fdatasync polls it soon */
        tsr_transport_wait(s->t, tsr_sched_txn_busy(s) ? 1 : beat_ms < 100 ? beat_ms : 100);
        tsr_sched_txn_tick(s);
        tsr_sched_http_tick(s->http); /* a worker snapshot, when a request waits */
        uint64_t now = tsr_sched_now_ms();
        if (now >= next_beat || s->beat_now) {
            s->beat_now = false;
            heartbeat(s);
            next_beat = now + (uint64_t)beat_ms;
        }
        tsr_sched_kv_tick(s); /* replaces kv replicas of workers gone for good */
    }
    tsr_sched_log(p->log, "scheduler", "stopping");
    /* before the transport fails what is in flight (its partitions are not
     * clean): the missed keys of stale kv replicas, for the next start */
    tsr_sched_kv_missed_save(s);
    tsr_sched_kv_log_puts(s);
    code = 0;

cleanup:
    /* first: a request may be waiting for this loop, which ticks no more */
    tsr_sched_http_stop(s->http);
    tsr_transport_destroy(s->t); /* fails what is pending; callbacks do not run after this */
    tsr_sched_txn_close(s);
    tsr_sched_kv_free(s);
    for (size_t i = 0; i < s->nworkers; i++)
        tsr_mem_free(NULL, s->workers[i]);
    for (size_t i = 0; i < s->nconns; i++)
        tsr_mem_free(NULL, s->conns[i]);
    memset(&s->token, 0, sizeof(s->token));
    tsr_mem_free(NULL, s);
    return code;
}
