/*
 * sched_graph_values.c - where a graph job's values live and lineage, on
 * the scheduler (docs/cluster.md "Data movement", "Worker death, lineage").
 *
 * A DONE task's value is either inline (the bytes inside the worker's
 * answer, kept here in t->reply: values up to the job's inline limit, and
 * sinks) or kept on the worker that produced it (t->holder; only its size
 * is here). A reader's request carries inline values as bytes and kept
 * ones as the holder's listener address and node id (build_payload).
 * When the last reader of a non-sink value finishes it is released: a
 * VALUE_DROP to its holder, or the bytes freed; released stays set so a
 * lineage re-run of a reader knows the value must be computed again.
 *
 * Lineage (unfinish): a DONE task whose value is gone goes back to
 * WAITING; each of its inputs counts it as a reader again and, when that
 * input's value is gone too, is unfinished first (recursively; the graph
 * is a DAG, so this ends at tasks reading only tables). Its successors that
 * were WAITING count it again, QUEUED ones leave the queues and wait; an
 * INFLIGHT one either answers (it had the value) or reports the loss
 * itself. Every re-run is charged to the job's budget (rerun_ok).
 */
#include <string.h>

#include "common.h"
#include "sched_graph_internal.h"
#include "value_fetch.h"

typedef struct vdrop {
    sched_t *s;
    tsr_wbuf_t b; /* the VALUE_DROP payload, alive while the call is */
} vdrop_t;

static void on_value_dropped(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    (void)status; /* best effort: a worker that misses it keeps the bytes until it exits */
    vdrop_t *d = arg;
    tsr_rpc_msg_release(d->s->t, reply);
    tsr_wbuf_free(&d->b);
    tsr_mem_free(d->s->mem, d);
}

void tsr_sgraph_send_drop(sched_t *s, int wi, uint64_t job, const uint32_t *tasks, size_t n)
{
    if (wi < 0 || (size_t)wi >= s->nworkers || s->workers[wi]->state != SW_READY ||
        !s->workers[wi]->peer)
        return;
    vdrop_t *d = tsr_mem_calloc(s->mem, 1, sizeof(*d));
    if (!d)
        return;
    d->s = s;
    tsr_wbuf_init(&d->b, s->mem);
    tsr_vfetch_encode_drop(&d->b, job, tasks, n);
    if (d->b.failed || tsr_rpc_call_async(s->t, s->workers[wi]->peer, TSR_MSG_VALUE_DROP, d->b.data,
                                          d->b.len, 10000, on_value_dropped, d, NULL) != TSR_OK) {
        tsr_wbuf_free(&d->b);
        tsr_mem_free(s->mem, d);
    }
}

/* Lets t's value go: its holder drops it, or its inline bytes are freed. */
void tsr_sgraph_release_value(sgraph_t *g, gtask_t *t)
{
    if (t->released)
        return;
    t->released = true;
    if (t->kept) {
        uint32_t idx = (uint32_t)(t - g->tasks);
        tsr_sgraph_send_drop(g->s, t->holder, g->id, &idx, 1);
    }
    tsr_rpc_msg_release(g->s->t, &t->reply);
    t->val = NULL;
    t->vlen = 0;
}

/* The TASK_GRAPH request (version 4, worker_graph.c) of t for worker wi. */
void tsr_sgraph_build_payload(sgraph_t *g, gtask_t *t, int wi)
{
    sched_t *s = g->s;
    tsr_wbuf_t *b = &t->payload;
    tsr_wbuf_free(b);
    tsr_wbuf_init(b, s->mem);
    tsr_wbuf_u8(b, GRAPH_TASK_VERSION);
    tsr_wbuf_u64(b, g->id);
    tsr_wbuf_u32(b, (uint32_t)(t - g->tasks));
    /* sinks go to the client through here anyway; a worker with no
     * listener to serve from keeps nothing */
    bool may_keep = !t->sink && s->workers[wi]->addr_port != 0;
    tsr_wbuf_u64(b, may_keep ? g->inline_max : UINT64_MAX);
    tsr_wbuf_u8(b, t->keep_local ? 1 : 0); /* version 4 flags: keep a local copy */
    tsr_wbuf_str(b, t->kind);
    tsr_wbuf_str(b, t->sql);
    tsr_wbuf_str(b, t->param);
    tsr_wbuf_u8(b, (uint8_t)g->delim);
    tsr_wbuf_u32(b, (uint32_t)t->nin);
    for (size_t k = 0; k < t->nin; k++) {
        const ginput_t *in = &g->inputs[t->in_at + k];
        if (in->is_task) {
            const gtask_t *src = &g->tasks[in->index];
            tsr_wbuf_str(b, src->id);
            if (src->state != T_DONE) {
                /* in flight on wi, t sent ahead (sched_graph_pipe.c): read
                 * from wi's store once produced; last: no other reader of
                 * it is still waiting, so wi drops its copy after t */
                bool last = true;
                for (size_t e = g->succ_at[in->index]; e < g->succ_at[in->index + 1]; e++)
                    last = last && g->tasks[g->succ[e]].state != T_WAITING;
                tsr_wbuf_u8(b, 4);
                tsr_wbuf_u32(b, in->index);
                tsr_wbuf_u8(b, last ? 1 : 0);
            } else if (src->kept) {
                const sworker_t *h = s->workers[src->holder];
                tsr_wbuf_u8(b, 3);
                tsr_wbuf_u32(b, in->index);
                tsr_wbuf_u32(b, (uint32_t)(src->holder + 1));
                tsr_wbuf_u32(b, h->node_id);
                tsr_wbuf_str(b, h->addr_host);
                tsr_wbuf_u32(b, h->addr_port);
            } else {
                tsr_wbuf_u8(b, 2);
                tsr_wbuf_bytes(b, src->val, src->vlen);
            }
        } else {
            tsr_wbuf_str(b, g->tnames[in->index]);
            tsr_wbuf_u8(b, 1);
            tsr_wbuf_str(b, g->tpaths[in->index]);
            tsr_wbuf_str(b, g->tschemas[in->index]);
        }
    }
}

/* Task inputs of t that are not DONE (per edge). */
size_t tsr_sgraph_count_waiting(const sgraph_t *g, const gtask_t *t)
{
    size_t n = 0;
    for (size_t k = 0; k < t->nin; k++) {
        const ginput_t *in = &g->inputs[t->in_at + k];
        n += in->is_task && g->tasks[in->index].state != T_DONE;
    }
    return n;
}

/* Lineage budget: false (the job has failed) when spent. */
bool tsr_sgraph_rerun_ok(sgraph_t *g)
{
    if (++g->reruns <= (size_t)MAX_RERUNS_PER_TASK * g->ntasks)
        return true;
    tsr_sgraph_fail_msg(g, TSR_ERR_UNAVAILABLE,
                        "graph values were lost too many times (workers keep dying)");
    return false;
}

/* Is DONE task q's value gone (let go, or kept by a worker that died)? */
bool tsr_sgraph_value_gone(const sgraph_t *g, const gtask_t *q)
{
    return q->released || (q->kept && g->s->workers[q->holder]->state != SW_READY);
}

/* Rows of a table value (its rtab header), 0 for other kinds. */
static uint64_t value_rows(const tsr_value_t *v)
{
    if (v->kind != TSR_DATA_TABLE)
        return 0;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, v->body, v->len);
    (void)tsr_rbuf_u32(&r);
    uint64_t n = tsr_rbuf_u64(&r);
    return r.bad ? 0 : n;
}

/* Reads a version 3 answer: {u8 form: 0 value | 1 u8 kind, u64 rows,
 * u64 size}. false: malformed. */
bool tsr_sgraph_read_answer(const tsr_rpc_msg_t *reply, bool *kept, tsr_value_t *v, uint64_t *rows,
                            uint64_t *size)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    uint8_t form = tsr_rbuf_u8(&r);
    *kept = form == 1;
    if (form == 0) {
        if (!tsr_proto_read_value(&r, v) || !tsr_rbuf_done(&r))
            return false;
        *rows = value_rows(v);
        *size = v->len;
        return true;
    }
    uint8_t kind = tsr_rbuf_u8(&r);
    *rows = tsr_rbuf_u64(&r);
    *size = tsr_rbuf_u64(&r);
    return form == 1 && kind <= TSR_DATA_TABLE && tsr_rbuf_done(&r);
}

/* Lineage: DONE task p's value is gone; p runs again. Its inputs that were
 * let go run again first (recursively), and the tasks waiting on p count
 * it again (a queued one goes back to waiting). */
void tsr_sgraph_unfinish(sgraph_t *g, gtask_t *p)
{
    sched_t *s = g->s;
    size_t pi = (size_t)(p - g->tasks);
    if (!p->released)
        tsr_sgraph_release_value(g, p); /* a holder that is alive but unreachable drops it */
    p->released = p->kept = false;
    p->avoid = p->holder >= 0 ? p->holder : p->worker;
    p->holder = -1;
    p->state = T_WAITING;
    g->finished_tasks--;
    g->prog.done = (uint32_t)g->finished_tasks;
    tsr_sched_http_task_end(s->http, g->id, TSR_SCHED_TASK_RERUN, 0);
    tsr_sched_http_job_tasks(s->http, g->id, "graph", 1); /* it answers once more */
    tsr_sched_log(s->p->log, "scheduler", "graph job %llu: running task '%s' again (lineage)",
                  (unsigned long long)g->id, p->id);
    for (size_t k = 0; k < p->nin && !g->finished; k++) {
        const ginput_t *in = &g->inputs[p->in_at + k];
        if (!in->is_task)
            continue;
        gtask_t *q = &g->tasks[in->index];
        q->readers++;
        if (q->state == T_DONE && tsr_sgraph_value_gone(g, q) && tsr_sgraph_rerun_ok(g))
            tsr_sgraph_unfinish(g, q);
    }
    for (size_t e = g->succ_at[pi]; e < g->succ_at[pi + 1] && !g->finished; e++) {
        gtask_t *next = &g->tasks[g->succ[e]];
        if (next->state == T_WAITING) {
            next->waiting++;
        } else if (next->state == T_QUEUED) {
            tsr_placer_remove(&s->placer, &next->pq);
            next->state = T_WAITING;
            next->waiting = 1;
        } /* in flight: it answers, or reports the loss itself */
    }
    if (g->finished)
        return;
    p->waiting = tsr_sgraph_count_waiting(g, p);
    if (p->waiting == 0) {
        p->ready_ns = tsr_sgraph_now_ns(g);
        tsr_sgraph_enqueue(g, p);
    }
}

/* TSR_ERR_STALE from t (worker_task.h): rerr, then {u32 n x {u32 task,
 * u32 node}}, each a task input of t. Re-runs the producers whose value is
 * still believed to be where t looked, then t. false: not such an answer. */
bool tsr_sgraph_inputs_lost(sgraph_t *g, gtask_t *t, const tsr_rpc_msg_t *reply)
{
    sched_t *s = g->s;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, reply->data, reply->len);
    const char *msg = tsr_rbuf_str(&r);
    (void)tsr_rbuf_str(&r);
    (void)tsr_rbuf_str(&r);
    (void)tsr_rbuf_i32(&r);
    (void)tsr_rbuf_i32(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    if (r.bad || n == 0 || n > (r.len - r.pos) / 8 || (r.len - r.pos) != (size_t)n * 8)
        return false;
    tsr_rbuf_t list = r;
    for (uint32_t i = 0; i < n; i++) { /* every one must be an input of t */
        uint32_t qi = tsr_rbuf_u32(&r);
        (void)tsr_rbuf_u32(&r);
        bool found = false;
        for (size_t k = 0; k < t->nin && !found; k++)
            found = g->inputs[t->in_at + k].is_task && g->inputs[t->in_at + k].index == qi;
        if (!found)
            return false;
    }
    tsr_sched_log(s->p->log, "scheduler", "graph job %llu: task '%s' lost %u input(s): %s",
                  (unsigned long long)g->id, t->id, n, msg);
    tsr_sched_http_task_end(s->http, g->id, TSR_SCHED_TASK_RERUN, t->payload.len + reply->len);
    t->state = T_WAITING;
    g->outstanding++; /* g stays while the lineage may end the job */
    for (uint32_t i = 0; i < n && !g->finished; i++) {
        gtask_t *q = &g->tasks[tsr_rbuf_u32(&list)];
        uint32_t node = tsr_rbuf_u32(&list);
        /* still where t looked: not re-run (or re-run inline) meanwhile */
        if (q->state == T_DONE && q->kept && s->workers[q->holder]->node_id == node &&
            tsr_sgraph_rerun_ok(g))
            tsr_sgraph_unfinish(g, q);
    }
    if (!g->finished) {
        t->waiting = tsr_sgraph_count_waiting(g, t);
        if (t->waiting == 0 && tsr_sgraph_rerun_ok(g))
            tsr_sgraph_enqueue(g, t); /* the value was there after all (re-run meanwhile) */
    }
    g->outstanding--;
    tsr_sgraph_maybe_free(g);
    return true;
}
