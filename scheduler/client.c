/*
 * client.c - talking to a running scheduler: connect and authenticate, run
 * SQL, read the cluster's status, run lock requests (see scheduler.h).
 *
 * A client must never hang on a scheduler that died or froze: the SQL call
 * itself has no timeout (queries may run long), but while it is pending the
 * client pings the scheduler every second (CLIENT_PING, answered by the
 * scheduler's main loop) and gives up with TSR_ERR_UNAVAILABLE when a ping
 * gets no answer within LIVENESS_MS; a scheduler that exits is noticed at once
 * (its endpoint goes down and the pending call fails).
 *
 * The result comes back as a result table (proto.h); it is registered in the
 * caller's context under neutral column names (c0, c1, ...: result names may
 * repeat) and re-selected with the real names as aliases, which gives the
 * caller an ordinary tsr_result_t for the CLI's formatters.
 *
 * Progress: the scheduler calls the client (PROGRESS, proto.h) while a job
 * runs; the handler decodes it and passes it to the caller's callback. With
 * the transport's default dispatch it runs inside our own waits and calls,
 * always on the calling thread.
 *
 * Graphs (GRAPH, sched_graph.c): the parsed job goes out in its topological
 * order; sink values come back in that order and are returned in file order.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "common.h"
#include "handshake.h"
#include "jobfile.h"
#include "proto.h"
#include "scheduler.h"
#include "transport.h"

#define LIVENESS_MS 5000
#define PING_EVERY_MS 1000

struct tsr_client {
    tsr_transport_t *t;
    tsr_peer_t *peer;
    volatile int down;
    tsr_client_progress_fn progress; /* may be NULL */
    void *progress_arg;
    atomic_int *abort; /* NULL, or set by another thread: stop waiting (graph_client.c) */
    void *stale;       /* a call's record a wait gave up on: the transport may still
                          write it, so it is freed after the transport */
    uint64_t *timing;  /* the last graph's per-task {worker, ready, sent, done} */
    size_t ntiming;
    bool has_device; /* tsr_client_set_device was called: requests carry it */
    char need[16], prefer[16];
};

tsr_status_t tsr_client_set_device(tsr_client_t *c, const char *device, tsr_error_t *err)
{
    const char *need, *prefer;
    if (!tsr_proto_device_constraint(device, &need, &prefer) || strlen(need) >= sizeof(c->need))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "unknown device '%s' (cpu, auto, gpu, cuda, opencl, cuda0, ...)",
                             device);
    snprintf(c->need, sizeof(c->need), "%s", need);
    snprintf(c->prefer, sizeof(c->prefer), "%s", prefer);
    c->has_device = true;
    return TSR_OK;
}

bool tsr_client_graph_timing(const tsr_client_t *c, size_t i, uint32_t *worker, uint64_t ns[3])
{
    if (!c || i >= c->ntiming)
        return false;
    *worker = (uint32_t)c->timing[i * 4];
    memcpy(ns, &c->timing[i * 4 + 1], 3 * sizeof(uint64_t));
    return true;
}

void tsr_client_set_abort(tsr_client_t *c, atomic_int *flag)
{
    c->abort = flag;
}

static void on_progress(void *arg, tsr_rpc_req_t *req)
{
    tsr_client_t *c = arg;
    size_t len = 0;
    const void *data = tsr_rpc_req_data(req, &len);
    tsr_progress_t p;
    bool ok = tsr_proto_decode_progress(data, len, &p);
    if (ok && c->progress)
        c->progress(c->progress_arg, p.done, p.total, p.rows, p.elapsed_ms);
    tsr_rpc_reply(c->t, req, ok ? TSR_OK : TSR_ERR_BAD_INPUT, NULL, 0);
}

void tsr_client_set_progress(tsr_client_t *c, tsr_client_progress_fn fn, void *arg)
{
    c->progress = fn;
    c->progress_arg = arg;
}

typedef struct pending {
    bool done;
    tsr_status_t status;
    tsr_rpc_msg_t reply;
} pending_t;

static void on_event(void *arg, const tsr_transport_event_t *ev)
{
    tsr_client_t *c = arg;
    if (ev->kind == TSR_TRANSPORT_PEER_DOWN && ev->peer == c->peer)
        c->down = 1;
}

tsr_status_t tsr_client_connect(const char *host, uint16_t port, const char *token_path,
                                int timeout_ms, tsr_client_t **out, tsr_error_t *err)
{
    tsr_token_t tok;
    tsr_status_t rc = tsr_auth_token_load(token_path, &tok, err);
    if (rc != TSR_OK)
        return rc;
    tsr_client_t *c = tsr_mem_calloc(NULL, 1, sizeof(*c));
    if (!c)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_rpc_msg_t reply = {0};
    tsr_transport_params_t tp = {
        .node_id = tsr_sched_node_id(), .on_event = on_event, .event_arg = c};
    tsr_error_t e2;
    tsr_error_clear(&e2);
    if ((rc = tsr_transport_create(NULL, &tp, &c->t, err)) != TSR_OK ||
        (rc = tsr_rpc_register(c->t, TSR_MSG_PROGRESS, on_progress, c, err)) != TSR_OK)
        goto fail;
    if (tsr_transport_connect(c->t, host, port, timeout_ms, &c->peer, &e2) != TSR_OK) {
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cannot reach the scheduler at %s:%u", host,
                           port);
        tsr_error_hint(err, "is it running? 'tessera cluster status' or check --scheduler");
        goto fail;
    }
    char who[300];
    snprintf(who, sizeof(who), "the scheduler at %s:%u", host, port);
    rc = tsr_hs_dial(c->t, c->peer, &tok, TSR_ROLE_CLIENT, NULL, 0, timeout_ms, who, err);
    if (rc != TSR_OK)
        goto fail;
    memset(&tok, 0, sizeof(tok));
    *out = c;
    return TSR_OK;
fail:
    memset(&tok, 0, sizeof(tok));
    tsr_rpc_msg_release(c->t, &reply);
    tsr_client_destroy(c);
    return rc;
}

void tsr_client_destroy(tsr_client_t *c)
{
    if (!c)
        return;
    pending_t *stale = c->stale;
    if (stale && stale->done) /* answered after its wait gave up (a cancelled job) */
        tsr_rpc_msg_release(c->t, &stale->reply);
    tsr_transport_destroy(c->t); /* a call still pending fails without payload */
    tsr_mem_free(NULL, c->stale);
    tsr_mem_free(NULL, c->timing);
    tsr_mem_free(NULL, c);
}

static void on_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    pending_t *p = arg;
    p->status = status;
    p->reply = *reply;
    memset(reply, 0, sizeof(*reply));
    p->done = true;
}

static tsr_status_t lost(tsr_error_t *err)
{
    tsr_error_set(err, TSR_ERR_UNAVAILABLE, "lost the scheduler while the query ran");
    tsr_error_hint(err, "check the scheduler's log; run the query again when it is back");
    return TSR_ERR_UNAVAILABLE;
}

/* Sends one request and waits for its answer, pinging the scheduler while it
 * is pending. On return p holds the status and reply. */
static tsr_status_t call_watched(tsr_client_t *c, uint16_t type, const void *data, size_t len,
                                 pending_t *p, tsr_error_t *err)
{
    memset(p, 0, sizeof(*p));
    tsr_error_t e2;
    tsr_error_clear(&e2);
    if (tsr_rpc_call_async(c->t, c->peer, type, data, len, -1, on_done, p, &e2) != TSR_OK)
        return lost(err);
    uint64_t next_ping = tsr_sched_now_ms() + PING_EVERY_MS;
    while (!p->done) {
        tsr_transport_wait(c->t, 100);
        if (p->done)
            break;
        if (c->abort && atomic_load(c->abort)) /* p stays the transport's, as when lost */
            return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "cancelled while the job ran");
        if (c->down) {
            /* the failed call's callback comes with the endpoint's death */
            for (int i = 0; i < 50 && !p->done; i++)
                tsr_transport_wait(c->t, 20);
            if (!p->done)
                return lost(err); /* p is still referenced: leave it to the transport */
            break;
        }
        if (tsr_sched_now_ms() >= next_ping) {
            tsr_rpc_msg_t pong = {0};
            tsr_status_t rc =
                tsr_rpc_call(c->t, c->peer, TSR_MSG_CLIENT_PING, NULL, 0, LIVENESS_MS, &pong, &e2);
            tsr_rpc_msg_release(c->t, &pong);
            if (rc != TSR_OK && !p->done) {
                tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                              "the scheduler stopped answering (no reply for %d ms)", LIVENESS_MS);
                tsr_error_hint(err, "check the scheduler's log");
                return TSR_ERR_UNAVAILABLE;
            }
            next_ping = tsr_sched_now_ms() + PING_EVERY_MS;
        }
    }
    if ((p->status == TSR_ERR_UNAVAILABLE || p->status == TSR_ERR_TIMEOUT) && p->reply.len == 0)
        return lost(err);
    if (p->status != TSR_OK) {
        tsr_error_t e;
        tsr_proto_decode_error(p->reply.data, p->reply.len, p->status, &e);
        if (err)
            *err = e;
        tsr_rpc_msg_release(c->t, &p->reply);
        return e.status;
    }
    return TSR_OK;
}

/* Registers the result table and selects it back under its real names. */
static tsr_status_t rebuild_result(tsr_context_t *ctx, const tsr_rtab_t *t, const char *table,
                                   tsr_result_t **out, tsr_error_t *err)
{
    char **names = tsr_mem_calloc(NULL, t->ncols, sizeof(char *));
    tsr_wbuf_t q;
    tsr_wbuf_init(&q, NULL);
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!names)
        goto done;
    char tmp[32];
    tsr_wbuf_bytes(&q, "SELECT ", 7);
    for (size_t c = 0; c < t->ncols; c++) {
        snprintf(tmp, sizeof(tmp), "c%zu", c);
        if (!(names[c] = tsr_mem_strdup(NULL, tmp)))
            goto done;
        if (c)
            tsr_wbuf_bytes(&q, ", ", 2);
        tsr_wbuf_bytes(&q, tmp, strlen(tmp));
        tsr_wbuf_bytes(&q, " AS \"", 5);
        for (const char *p = t->names[c]; *p; p++) {
            if (*p == '"')
                tsr_wbuf_u8(&q, '"');
            tsr_wbuf_u8(&q, (uint8_t)*p);
        }
        tsr_wbuf_u8(&q, '"');
    }
    tsr_wbuf_bytes(&q, " FROM ", 6);
    tsr_wbuf_bytes(&q, table, strlen(table));
    tsr_wbuf_u8(&q, 0);
    if (q.failed)
        goto done;
    rc = tsr_proto_rtab_register(NULL, ctx, table, t, (const char *const *)names);
    if (rc == TSR_OK)
        rc = tsr_query(ctx, (const char *)q.data, out);
    if (rc != TSR_OK) {
        tsr_proto_context_error(ctx, err);
        rc = err ? err->status : rc;
    }
done:
    if (rc == TSR_ERR_NOMEM)
        tsr_error_set(err, rc, "out of memory reading the result");
    for (size_t c = 0; names && c < t->ncols; c++)
        tsr_mem_free(NULL, names[c]);
    tsr_mem_free(NULL, names);
    tsr_wbuf_free(&q);
    return rc;
}

tsr_status_t tsr_client_sql(tsr_client_t *c, tsr_context_t *ctx, const char *sql,
                            const tsr_client_table_t *tables, size_t ntables, char delimiter,
                            tsr_result_t **out, tsr_error_t *err)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_sql_req(&b, sql, delimiter, tables, ntables, c->has_device ? c->need : NULL,
                             c->prefer);
    if (b.failed) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    pending_t *p = tsr_mem_calloc(NULL, 1, sizeof(*p));
    if (!p) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    tsr_status_t rc = call_watched(c, TSR_MSG_SQL, b.data, b.len, p, err);
    if (rc == TSR_OK) {
        tsr_rtab_t t;
        rc = tsr_proto_decode_rtab(NULL, p->reply.data, p->reply.len, &t, err);
        if (rc == TSR_OK) {
            rc = rebuild_result(ctx, &t, "tsr_cluster_result", out, err);
            tsr_proto_rtab_free(NULL, &t);
        }
        tsr_rpc_msg_release(c->t, &p->reply);
    }
    if (p->done || rc == TSR_OK) /* else the transport still holds p: freed with it */
        tsr_mem_free(NULL, p);
    tsr_wbuf_free(&b);
    return rc;
}

tsr_status_t tsr_client_status(tsr_client_t *c, tsr_client_status_t *out, tsr_error_t *err)
{
    memset(out, 0, sizeof(*out));
    tsr_rpc_msg_t reply = {0};
    tsr_error_t e2;
    tsr_error_clear(&e2);
    tsr_status_t rc = tsr_rpc_call(c->t, c->peer, TSR_MSG_STATUS, NULL, 0, 5000, &reply, &e2);
    if (rc != TSR_OK) {
        tsr_rpc_msg_release(c->t, &reply);
        return tsr_error_set(err, TSR_ERR_UNAVAILABLE, "the scheduler did not answer: %s",
                             tsr_status_str(rc));
    }
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply.data, reply.len);
    out->sched_pid = tsr_rbuf_u32(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    if (!r.bad && n <= 65536)
        out->workers = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*out->workers));
    for (uint32_t i = 0; out->workers && i < n && !r.bad; i++) {
        tsr_client_worker_t *w = &out->workers[i];
        w->id = tsr_rbuf_u32(&r);
        snprintf(w->state, sizeof(w->state), "%s", tsr_rbuf_str(&r));
        snprintf(w->device, sizeof(w->device), "%s", tsr_rbuf_str(&r));
        snprintf(w->host, sizeof(w->host), "%s", tsr_rbuf_str(&r));
        w->pid = tsr_rbuf_u32(&r);
        w->load = tsr_rbuf_u32(&r);
        w->tasks_done = tsr_rbuf_u64(&r);
    }
    out->nworkers = n;
    bool ok = out->workers && tsr_rbuf_done(&r);
    tsr_rpc_msg_release(c->t, &reply);
    if (!ok) {
        tsr_client_status_free(out);
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed status from the scheduler");
    }
    return TSR_OK;
}

void tsr_client_status_free(tsr_client_status_t *s)
{
    tsr_mem_free(NULL, s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}

tsr_status_t tsr_client_lock(tsr_client_t *c, const tsr_client_lock_req_t *q, uint64_t *token,
                             tsr_lock_status_t *st, tsr_error_t *err)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_client_lock_req_t sent = *q;
    sent.home = 0; /* the scheduler's to fill */
    tsr_proto_encode_lock_req(&b, &sent);
    pending_t *p = tsr_mem_calloc(NULL, 1, sizeof(*p));
    if (b.failed || !p) {
        tsr_wbuf_free(&b);
        tsr_mem_free(NULL, p);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    /* watched: an acquire may wait long; a lost scheduler must not hang us */
    tsr_status_t rc = call_watched(c, TSR_MSG_LOCK, b.data, b.len, p, err);
    if (rc == TSR_OK) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, p->reply.data, p->reply.len);
        bool ok = true;
        if (q->op == TSR_CLIENT_LOCK_ACQUIRE) {
            uint64_t t = tsr_rbuf_u64(&r);
            ok = tsr_rbuf_done(&r);
            if (token)
                *token = t;
        } else if (q->op == TSR_CLIENT_LOCK_STATUS) {
            tsr_lock_status_t tmp;
            ok = tsr_proto_decode_lock_status(p->reply.data, p->reply.len, st ? st : &tmp);
        }
        if (!ok)
            rc = tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed lock reply from the scheduler");
        tsr_rpc_msg_release(c->t, &p->reply);
    }
    if (p->done || rc == TSR_OK) /* else the transport still holds p: freed with it */
        tsr_mem_free(NULL, p);
    tsr_wbuf_free(&b);
    return rc;
}

/* ---- graphs --------------------------------------------------------------------- */

void tsr_client_outputs_free(tsr_client_output_t *o, size_t n)
{
    for (size_t i = 0; o && i < n; i++) {
        tsr_mem_free(NULL, o[i].id);
        tsr_result_destroy(o[i].table);
        tsr_mem_free(NULL, o[i].bytes);
    }
    tsr_mem_free(NULL, o);
}

/* A task's device constraint: its own (job file "device", a kind's kernel,
 * tsr_graph_task_set_device), else the client's (tsr_client_set_device). */
static void task_device(const tsr_client_t *c, const tsr_job_task_t *t, const char **need,
                        const char **prefer)
{
    *need = t->need ? t->need : "";
    *prefer = t->prefer ? t->prefer : "";
    if (!(*need)[0] && !(*prefer)[0] && c->has_device) {
        *need = c->need;
        *prefer = c->prefer;
    }
}

static void encode_graph(const tsr_client_t *c, tsr_wbuf_t *b, const tsr_job_t *job)
{
    /* version 2 carries per-task device constraints; a graph without any is
     * sent as version 1, which every scheduler reads */
    uint8_t version = 1;
    for (size_t i = 0; i < job->ntasks && version == 1; i++) {
        const char *need, *prefer;
        task_device(c, &job->tasks[i], &need, &prefer);
        if (need[0] || prefer[0])
            version = 2;
    }
    tsr_wbuf_u8(b, version);
    tsr_wbuf_u8(b, (uint8_t)job->delimiter);
    tsr_wbuf_u32(b, (uint32_t)job->ntables);
    for (size_t i = 0; i < job->ntables; i++) {
        tsr_wbuf_str(b, job->tables[i].name);
        tsr_wbuf_str(b, job->tables[i].path);
        tsr_wbuf_str(b, job->tables[i].schema);
    }
    tsr_wbuf_u32(b, (uint32_t)job->ntasks);
    for (size_t i = 0; i < job->ntasks; i++) {
        const tsr_job_task_t *t = &job->tasks[i];
        tsr_wbuf_str(b, t->id);
        tsr_wbuf_str(b, t->kind);
        tsr_wbuf_str(b, t->sql);
        tsr_wbuf_str(b, t->param);
        tsr_wbuf_u8(b, t->sink);
        if (version >= 2) {
            const char *need, *prefer;
            task_device(c, t, &need, &prefer);
            tsr_proto_encode_device(b, need, prefer);
        }
        tsr_wbuf_u32(b, (uint32_t)t->ninputs);
        for (size_t k = 0; k < t->ninputs; k++) {
            tsr_wbuf_u8(b, t->inputs[k].is_task);
            tsr_wbuf_u32(b, t->inputs[k].index);
        }
    }
}

static int by_order(const void *a, const void *b)
{
    size_t x = ((const tsr_client_output_t *)a)->order, y = ((const tsr_client_output_t *)b)->order;
    return x < y ? -1 : x > y;
}

/* Decodes the GRAPH reply into outputs (sinks in the job's task order). */
static tsr_status_t decode_outputs(tsr_client_t *c, tsr_context_t *ctx, const tsr_job_t *job,
                                   const void *data, size_t len, tsr_client_output_t *o,
                                   size_t nsinks, tsr_error_t *err)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    if (tsr_rbuf_u32(&r) != nsinks || r.bad)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed graph result from the scheduler");
    size_t k = 0;
    for (size_t i = 0; i < job->ntasks; i++) {
        const tsr_job_task_t *t = &job->tasks[i];
        if (!t->sink)
            continue;
        const char *id = tsr_rbuf_str(&r);
        tsr_value_t v;
        if (!tsr_proto_read_value(&r, &v) || strcmp(id, t->id) != 0)
            return tsr_error_set(err, TSR_ERR_BAD_INPUT,
                                 "malformed graph result from the scheduler");
        tsr_client_output_t *out = &o[k++];
        out->order = t->order;
        out->kind = v.kind;
        if (!(out->id = tsr_mem_strdup(NULL, t->id)))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        if (v.kind == TSR_DATA_BYTES) {
            if (!(out->bytes = tsr_mem_alloc(NULL, v.len ? v.len : 1)))
                return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            if (v.len)
                memcpy(out->bytes, v.body, v.len);
            out->len = v.len;
        } else if (v.kind == TSR_DATA_TABLE) {
            tsr_rtab_t tab;
            char name[64];
            snprintf(name, sizeof(name), "tsr_cluster_result_%zu", k);
            tsr_status_t rc = tsr_proto_decode_rtab(NULL, v.body, v.len, &tab, err);
            if (rc != TSR_OK)
                return rc;
            rc = rebuild_result(ctx, &tab, name, &out->table, err);
            tsr_proto_rtab_free(NULL, &tab);
            if (rc != TSR_OK)
                return rc;
        }
    }
    /* per-task timing (sched_graph.c's trailer) */
    uint32_t nt = tsr_rbuf_u32(&r);
    if (r.bad || nt != job->ntasks || (r.len - r.pos) / 28 < nt)
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed graph result from the scheduler");
    tsr_mem_free(NULL, c->timing);
    c->ntiming = 0;
    if (!(c->timing = tsr_mem_calloc(NULL, (size_t)nt * 4 + 1, sizeof(uint64_t))))
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++) {
        c->timing[i * 4] = tsr_rbuf_u32(&r);
        for (size_t f = 1; f < 4; f++)
            c->timing[i * 4 + f] = tsr_rbuf_u64(&r);
    }
    c->ntiming = nt;
    if (!tsr_rbuf_done(&r))
        return tsr_error_set(err, TSR_ERR_BAD_INPUT, "malformed graph result from the scheduler");
    return TSR_OK;
}

tsr_status_t tsr_client_graph(tsr_client_t *c, tsr_context_t *ctx, const tsr_job_t *job,
                              tsr_client_output_t **out, size_t *nout, tsr_error_t *err)
{
    *out = NULL;
    *nout = 0;
    size_t nsinks = 0;
    for (size_t i = 0; i < job->ntasks; i++)
        nsinks += job->tasks[i].sink;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    encode_graph(c, &b, job);
    pending_t *p = tsr_mem_calloc(NULL, 1, sizeof(*p));
    tsr_client_output_t *o = tsr_mem_calloc(NULL, nsinks ? nsinks : 1, sizeof(*o));
    if (b.failed || !p || !o) {
        tsr_wbuf_free(&b);
        tsr_mem_free(NULL, p);
        tsr_mem_free(NULL, o);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    tsr_status_t rc = call_watched(c, TSR_MSG_GRAPH, b.data, b.len, p, err);
    if (rc == TSR_OK) {
        rc = decode_outputs(c, ctx, job, p->reply.data, p->reply.len, o, nsinks, err);
        tsr_rpc_msg_release(c->t, &p->reply);
    }
    if (p->done || rc == TSR_OK)
        tsr_mem_free(NULL, p);
    else if (!c->stale) /* the transport still holds p: freed after it */
        c->stale = p;
    tsr_wbuf_free(&b);
    if (rc != TSR_OK) {
        tsr_client_outputs_free(o, nsinks);
        return rc;
    }
    qsort(o, nsinks, sizeof(*o), by_order);
    *out = o;
    *nout = nsinks;
    return TSR_OK;
}

tsr_status_t tsr_client_data_result(tsr_context_t *ctx, const tsr_data_t *d, const char *table,
                                    tsr_result_t **out, tsr_error_t *err)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_status_t rc = tsr_proto_encode_data(&b, d);
    if (rc != TSR_OK) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, rc, "out of memory reading the result");
    }
    tsr_rbuf_t r;
    tsr_value_t v;
    tsr_rbuf_init(&r, b.data, b.len);
    if (!tsr_proto_read_value(&r, &v) || v.kind != TSR_DATA_TABLE) {
        tsr_wbuf_free(&b);
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "the value is not a table");
    }
    tsr_rtab_t t;
    if ((rc = tsr_proto_decode_rtab(NULL, v.body, v.len, &t, err)) == TSR_OK) {
        rc = rebuild_result(ctx, &t, table, out, err);
        tsr_proto_rtab_free(NULL, &t);
    }
    tsr_wbuf_free(&b);
    return rc;
}

/* ---- raw calls (kv) ------------------------------------------------------------- */

tsr_status_t tsr_client_call(tsr_client_t *c, uint16_t type, const void *data, size_t len,
                             void **reply, size_t *rlen, tsr_error_t *err)
{
    *reply = NULL;
    *rlen = 0;
    pending_t *p = tsr_mem_calloc(NULL, 1, sizeof(*p));
    if (!p)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_status_t rc = call_watched(c, type, data, len, p, err);
    if (rc == TSR_OK) {
        if (p->reply.len) {
            *reply = tsr_mem_alloc(NULL, p->reply.len);
            if (*reply) {
                memcpy(*reply, p->reply.data, p->reply.len);
                *rlen = p->reply.len;
            } else {
                rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            }
        }
        tsr_rpc_msg_release(c->t, &p->reply);
    }
    if (p->done || rc == TSR_OK) /* else the transport still holds p: freed with it */
        tsr_mem_free(NULL, p);
    return rc;
}
