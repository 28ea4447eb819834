/*
 * sched_graph.c - task graphs on the scheduler (`tessera submit` of a JSON
 * job, docs/cluster.md "Task graphs on the cluster").
 *
 * Request (GRAPH, version 1):
 *   {u8 version, u8 delim, u32 ntables x {str name, str path, str schema},
 *    u32 ntasks x {str id, str kind, str sql, str param, u8 sink,
 *                  u32 ninputs x {u8 is_task, u32 index}}}
 *   Tasks come in a topological order (the client's job-file parser sorts
 *   them): an input that is a task names an earlier task, one that is not
 *   names a table. The decoder checks exactly that, so a graph that passes
 *   it has no cycle and no dangling input, whatever the client sent.
 * Reply: {u32 n x {str id, value}} - the sink tasks' values (proto.h), in
 *   task order - then {u32 ntasks x {u32 worker, u64 ready_ns, u64 sent_ns,
 *   u64 done_ns}}: per task (request order) the worker that answered (its
 *   1-based id) and when it became ready, was last sent and was answered,
 *   in ns since the job started here (the C API's per-task timing).
 *
 * Each task becomes one TASK_GRAPH call (version 3) to a worker once every
 * task it reads has finished (worker_graph.c has the payload): its tables
 * travel as CSV paths (the worker reads the file), its task inputs either
 * inline (the bytes, for values of at most inline_max bytes, 64 KiB unless
 * TSR_GRAPH_INLINE_MAX says otherwise, and for sinks) or as the address of
 * the worker that keeps them (its listener and node id, handed out here as
 * LOCK_VIEW hands out lock homes): the reading worker fetches them from the
 * producer directly (value_fetch.h), or reads them in place when it is the
 * producer. A producer answers a kept value with its size and rows only, so
 * big intermediate values never pass through the scheduler. When the last
 * reader of a value has finished (and it is no sink) the scheduler lets it
 * go: VALUE_DROP to its holder, or frees the inline bytes; the job's end
 * (answered, failed or cancelled) drops whatever its workers still keep, and
 * a task answered after its job ended has its kept value dropped at once.
 *
 * Task states: WAITING (inputs not all done; `waiting` counts them, per
 * input edge), QUEUED (in the placer), INFLIGHT, DONE. Only a WAITING task's
 * count changes when an input finishes or is lost. Where values live, their
 * freeing and the lineage re-runs are sched_graph_values.c's.
 *
 * Lineage. A task lost with its worker (the call fails without an answer) is
 * sent again to another ready worker, at most MAX_ATTEMPTS times, as SQL
 * range tasks are (sched_job.c). A task whose kept input cannot be had (its
 * holder died, or no longer has it) answers TSR_ERR_STALE naming the lost
 * inputs (worker_task.h); those producers are "unfinished" (DONE ->
 * re-run): their own inputs that were already let go are unfinished too,
 * recursively, the tasks waiting on them count them again, and each runs
 * again on a live worker (avoiding the one that lost it); the reader runs
 * when they are done. Before sending a task, inputs whose holder is known
 * dead are unfinished the same way without a round trip. Re-runs are
 * bounded (MAX_RERUNS_PER_TASK per task of the job, in total). A task
 * that fails with an answer (a SQL error, a plugin's error, an unknown kind)
 * fails the job with its message, prefixed by the task's id.
 *
 * Placement (policy.h): a task that becomes ready is pushed to the
 * scheduler's placer with its home, the worker that produced its largest
 * task input (locality: under the default policy it runs there unless that
 * worker is gone, and an idle worker may steal it); the placer sends it when
 * a worker has a free slot, so a wide fan-out waits in the scheduler's
 * queues, never deep in a worker's, and a slow worker's backlog is stolen.
 * A lost task is pushed again (avoiding the worker it was lost on).
 * Version 2 requests carry each task's device constraint (proto.h): the
 * placer honours it, and a requirement no ready worker meets fails the job
 * before anything runs, naming the task.
 *
 * Cancel (CANCEL from the submitting client, sactive_t): the job answers
 * "cancelled", its queued tasks leave the placer's queues, and the answers
 * of the tasks already on workers are dropped when they come (at most the
 * placer's slots per worker).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "jobfile.h"
#include "sched_graph_internal.h"

uint64_t tsr_sgraph_now_ns(const sgraph_t *g)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - g->started_ns;
}

void tsr_sgraph_maybe_free(sgraph_t *g)
{
    if (!g->finished || g->outstanding > 0)
        return;
    sched_t *s = g->s;
    for (size_t i = 0; g->tasks && i < g->ntasks; i++) {
        tsr_wbuf_free(&g->tasks[i].payload);
        tsr_rpc_msg_release(s->t, &g->tasks[i].reply);
    }
    tsr_mem_free(s->mem, g->tasks);
    tsr_mem_free(s->mem, g->inputs);
    tsr_mem_free(s->mem, g->succ_at);
    tsr_mem_free(s->mem, g->succ);
    tsr_mem_free(s->mem, g->piped_on);
    tsr_mem_free(s->mem, g->copies_on);
    tsr_rpc_msg_release(s->t, &g->reqmsg);
    tsr_mem_free(s->mem, g);
}

/* The job ends: nothing more of it is placed, and every worker that still
 * keeps a value of it drops them all (one VALUE_DROP per holder). */
static void graph_end(sgraph_t *g)
{
    sched_t *s = g->s;
    g->finished = true;
    tsr_sched_active_remove(s, &g->act);
    for (size_t i = 0; g->tasks && i < g->ntasks; i++)
        tsr_placer_remove(&s->placer, &g->tasks[i].pq);
    for (size_t i = 0; g->tasks && i < g->ntasks; i++) {
        gtask_t *t = &g->tasks[i];
        if (t->state != T_DONE || !t->kept || t->released)
            continue;
        int h = t->holder;
        tsr_sgraph_send_drop(s, h, g->id, NULL, 0);
        for (size_t k = i; k < g->ntasks; k++) /* the rest of that holder's go with it */
            if (g->tasks[k].kept && g->tasks[k].holder == h)
                g->tasks[k].released = true;
    }
    tsr_sgraph_pipe_end(g); /* local copies for tasks sent ahead */
}

static void graph_fail(sgraph_t *g, const tsr_error_t *e)
{
    sched_t *s = g->s;
    if (g->req) {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, s->mem);
        tsr_proto_encode_error(&b, e);
        tsr_rpc_reply(s->t, g->req, e->status, b.data, b.failed ? 0 : b.len);
        tsr_wbuf_free(&b);
        g->req = NULL;
    }
    tsr_sched_log(s->p->log, "scheduler", "graph job %llu failed: %s", (unsigned long long)g->id,
                  e->message);
    tsr_sched_http_job_end(s->http, g->id, false, e->message, 0);
    graph_end(g);
    tsr_sgraph_maybe_free(g);
}

void tsr_sgraph_fail_msg(sgraph_t *g, tsr_status_t st, const char *msg)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, st, "%s", msg);
    graph_fail(g, &e);
}

static void progress_settled(void *owner)
{
    sgraph_t *g = owner;
    g->outstanding--;
    tsr_sgraph_maybe_free(g);
}

/* Every task finished: the sinks' values go to the client. */
static void graph_answer(sgraph_t *g)
{
    sched_t *s = g->s;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    uint32_t n = 0;
    for (size_t i = 0; i < g->ntasks; i++)
        n += g->tasks[i].sink;
    tsr_wbuf_u32(&b, n);
    for (size_t i = 0; i < g->ntasks; i++) {
        const gtask_t *t = &g->tasks[i];
        if (!t->sink)
            continue;
        tsr_wbuf_str(&b, t->id);
        tsr_wbuf_bytes(&b, t->val, t->vlen); /* a checked value (sinks are inline) */
    }
    tsr_wbuf_u32(&b, (uint32_t)g->ntasks);
    for (size_t i = 0; i < g->ntasks; i++) {
        const gtask_t *t = &g->tasks[i];
        tsr_wbuf_u32(&b, (uint32_t)(t->worker + 1));
        tsr_wbuf_u64(&b, t->ready_ns);
        tsr_wbuf_u64(&b, t->sent_ns);
        tsr_wbuf_u64(&b, t->done_ns);
    }
    if (b.failed) {
        tsr_wbuf_free(&b);
        tsr_sgraph_fail_msg(g, TSR_ERR_NOMEM, "out of memory sending the results");
        return;
    }
    tsr_rpc_reply(s->t, g->req, TSR_OK, b.data, b.len);
    tsr_sched_http_job_end(s->http, g->id, true, NULL, b.len);
    tsr_wbuf_free(&b);
    g->req = NULL;
    tsr_sched_log(s->p->log, "scheduler",
                  "graph job %llu: %zu task(s) done in %llu ms (values: %zu kept on workers, "
                  "%llu bytes; %llu bytes inline; %zu lineage re-run(s); %zu sent ahead)",
                  (unsigned long long)g->id, g->ntasks,
                  (unsigned long long)(tsr_sched_now_ms() - g->started_ms), g->nkept,
                  (unsigned long long)g->kept_bytes, (unsigned long long)g->inline_bytes, g->reruns,
                  g->npiped);
    graph_end(g);
    tsr_sgraph_maybe_free(g);
}

static gtask_t *item_task(tsr_pq_item_t *it)
{
    return (gtask_t *)(void *)((char *)it - offsetof(gtask_t, pq));
}

/* The placer's send hook: one TASK_GRAPH call to worker wi. */
static bool send_task(tsr_pq_item_t *it, int wi)
{
    gtask_t *t = item_task(it);
    sgraph_t *g = t->g;
    sched_t *s = g->s;
    t->state = T_INFLIGHT;
    t->piped = false;
    /* inputs kept by a worker known dead: re-run their producers first
     * (g is held meanwhile: the lineage may end the job) */
    bool gone = false;
    g->outstanding++;
    for (size_t k = 0; k < t->nin; k++) {
        const ginput_t *in = &g->inputs[t->in_at + k];
        gtask_t *q = &g->tasks[in->index];
        if (in->is_task && q->state == T_DONE && tsr_sgraph_value_gone(g, q)) {
            if (!gone) {
                t->state = T_WAITING;
                gone = true;
            }
            tsr_sched_log(s->p->log, "scheduler",
                          "graph job %llu: task '%s' reads the value of '%s', lost with worker %d",
                          (unsigned long long)g->id, t->id, q->id, q->holder + 1);
            if (!tsr_sgraph_rerun_ok(g))
                break;
            tsr_sgraph_unfinish(g, q);
            if (g->finished)
                break;
        }
    }
    g->outstanding--;
    if (g->finished) {
        tsr_sgraph_maybe_free(g);
        return false;
    }
    if (gone) {
        t->waiting = tsr_sgraph_count_waiting(g, t);
        if (t->waiting == 0)
            tsr_sgraph_enqueue(g, t);
        return false;
    }
    t->keep_local = tsr_sgraph_wants_copy(g, t, wi); /* a reader may be sent ahead */
    tsr_sgraph_build_payload(g, t, wi);
    if (t->payload.failed) {
        tsr_sgraph_fail_msg(g, TSR_ERR_NOMEM, "out of memory");
        return false;
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    if (tsr_rpc_call_async(s->t, s->workers[wi]->peer, TSR_MSG_TASK_GRAPH, t->payload.data,
                           t->payload.len, -1, tsr_sgraph_on_task_done, t, &e) != TSR_OK) {
        if (e.status == TSR_ERR_UNAVAILABLE && ++t->attempts < MAX_ATTEMPTS) {
            /* the worker's connection is gone but not yet noticed: it is
             * dead; the task is placed again elsewhere (a lost attempt) */
            t->worker = wi;
            t->avoid = wi;
            tsr_sgraph_enqueue(g, t); /* may end the job: only s is used after */
            tsr_sched_worker_dead(s, (size_t)wi, e.message);
            return false;
        }
        graph_fail(g, &e);
        return false;
    }
    t->worker = wi;
    t->sent_ns = tsr_sgraph_now_ns(g);
    s->workers[wi]->inflight++;
    g->outstanding++;
    g->inflight++;
    if (t->keep_local)
        g->copies_on[wi] = 1;      /* wants_copy made room */
    tsr_sgraph_pipeline(g, t, wi); /* its readers may follow it there now */
    return true;
}

static void unplaceable(tsr_pq_item_t *it)
{
    gtask_t *t = item_task(it);
    tsr_sgraph_fail_msg(t->g, TSR_ERR_UNAVAILABLE, "no workers are available");
}

/* Task t is ready (again): into the placer's queues, at home with the
 * largest value it reads. The caller pumps. */
bool tsr_sgraph_enqueue(sgraph_t *g, gtask_t *t)
{
    tsr_pq_item_t *it = &t->pq;
    it->home = -1;
    size_t biggest = 0;
    for (size_t k = 0; k < t->nin; k++) {
        const ginput_t *in = &g->inputs[t->in_at + k];
        const gtask_t *src = &g->tasks[in->index];
        if (in->is_task && src->worker >= 0 && (it->home < 0 || src->vsize > biggest)) {
            /* with direct transfers a task at home reads this one in place */
            it->home = src->worker;
            biggest = src->vsize;
        }
    }
    t->state = T_QUEUED;
    it->avoid = t->avoid;
    it->need = t->need;
    it->prefer = t->prefer;
    it->job = g->id;
    it->send = send_task;
    it->unplaceable = unplaceable;
    if (!tsr_placer_push(&g->s->placer, it)) {
        tsr_sgraph_fail_msg(g, TSR_ERR_UNAVAILABLE, "no workers are available");
        return false;
    }
    return true;
}

static void task_finished(sgraph_t *g, gtask_t *t, tsr_rpc_msg_t *reply)
{
    tsr_value_t v = {0};
    bool kept = false;
    uint64_t rows = 0, size = 0;
    if (!tsr_sgraph_read_answer(reply, &kept, &v, &rows, &size)) {
        tsr_rpc_msg_release(g->s->t, reply);
        tsr_sgraph_fail_msg(g, TSR_ERR_INTERNAL,
                            "a worker answered a graph task with a malformed value");
        return;
    }
    tsr_rpc_msg_release(g->s->t, &t->reply);
    t->reply = *reply;
    memset(reply, 0, sizeof(*reply));
    t->kept = kept;
    t->released = false;
    t->holder = kept ? t->worker : -1;
    t->vsize = size;
    g->nkept += kept;
    *(kept ? &g->kept_bytes : &g->inline_bytes) += size;
    if (!kept) {
        /* the bytes of the value: kind, length, body (within the reply) */
        t->val = (const uint8_t *)t->reply.data + 1;
        t->vlen = t->reply.len - 1;
    }
    t->state = T_DONE;
    t->done_ns = tsr_sgraph_now_ns(g);
    tsr_wbuf_free(&t->payload);
    tsr_wbuf_init(&t->payload, g->s->mem);
    g->finished_tasks++;
    g->prog.done = (uint32_t)g->finished_tasks;
    g->prog.rows += rows;
    g->prog.elapsed_ms = tsr_sched_now_ms() - g->started_ms;
    if (tsr_sched_progress(&g->sprog, g->req, &g->prog))
        g->outstanding++;
    /* inputs nobody needs any more */
    for (size_t k = 0; k < t->nin; k++) {
        const ginput_t *in = &g->inputs[t->in_at + k];
        gtask_t *src = &g->tasks[in->index];
        if (in->is_task && --src->readers == 0 && !src->sink && src->state == T_DONE)
            tsr_sgraph_release_value(g, src);
    }
    if (t->readers == 0 && !t->sink)
        tsr_sgraph_release_value(g, t); /* read by nobody (a re-run whose readers are done) */
    if (g->finished_tasks == g->ntasks) {
        graph_answer(g);
        return;
    }
    size_t ti = (size_t)(t - g->tasks);
    for (size_t e = g->succ_at[ti]; e < g->succ_at[ti + 1]; e++) {
        gtask_t *next = &g->tasks[g->succ[e]];
        if (next->state == T_WAITING && --next->waiting == 0) {
            next->ready_ns = t->done_ns;
            if (!tsr_sgraph_enqueue(g, next))
                return;
        }
    }
    /* room again for tasks sent ahead to t's worker (t may have been one) */
    tsr_sgraph_pipeline(g, t, t->worker);
}

static void task_settle(sgraph_t *g, gtask_t *t, tsr_status_t status, tsr_rpc_msg_t *reply);

/* The call ended without an answer (the worker died or went away). */
static bool reply_lost(tsr_status_t status, const tsr_rpc_msg_t *reply)
{
    return (status == TSR_ERR_UNAVAILABLE || status == TSR_ERR_TIMEOUT) && reply->len == 0;
}

void tsr_sgraph_on_task_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    gtask_t *t = arg;
    sgraph_t *g = t->g;
    sched_t *s = g->s;
    sworker_t *w = s->workers[t->worker];
    g->outstanding--;
    g->inflight--;
    if (w->inflight > 0)
        w->inflight--;
    w->tasks_done++;
    if (t->piped) /* sent ahead: it took no placer slot */
        tsr_sgraph_pipe_done(g, t->worker);
    else
        tsr_placer_done(&s->placer, (size_t)t->worker);
    task_settle(g, t, status, reply);
    tsr_placer_pump(&s->placer); /* g may be gone: s is not */
}

static void task_settle(sgraph_t *g, gtask_t *t, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    sched_t *s = g->s;
    if (g->finished) {
        /* answered after its job ended: a value it kept is of no use now */
        tsr_value_t v;
        bool kept = false;
        uint64_t rows, size;
        if (status == TSR_OK && t->keep_local) /* a local copy after the end's drop */
            tsr_sgraph_send_drop(s, t->worker, g->id, NULL, 0);
        else if (status == TSR_OK && tsr_sgraph_read_answer(reply, &kept, &v, &rows, &size) &&
                 kept) {
            uint32_t idx = (uint32_t)(t - g->tasks);
            tsr_sgraph_send_drop(s, t->worker, g->id, &idx, 1);
        }
        tsr_rpc_msg_release(s->t, reply);
        tsr_sgraph_maybe_free(g);
        return;
    }
    if (status == TSR_OK) {
        tsr_sched_http_task_end(s->http, g->id, TSR_SCHED_TASK_OK, t->payload.len + reply->len);
        task_finished(g, t, reply);
        return;
    }
    if (t->piped && tsr_sgraph_count_waiting(g, t) > 0) {
        /* sent ahead, and an input did not finish (failed, lost, re-run): it
         * answered "not run" or was lost with its worker; it waits for its
         * inputs again like any other task */
        if (reply_lost(status, reply))
            t->avoid = t->worker;
        tsr_rpc_msg_release(s->t, reply);
        t->state = T_WAITING;
        t->waiting = tsr_sgraph_count_waiting(g, t);
        return;
    }
    if (reply_lost(status, reply) || (t->piped && status == TSR_ERR_UNAVAILABLE)) {
        /* lost with its worker; or sent ahead and "not run" although its
         * inputs are done (their copy was gone): placed again, bounded */
        tsr_rpc_msg_release(s->t, reply);
        tsr_sched_http_task_end(s->http, g->id,
                                t->attempts + 1 >= MAX_ATTEMPTS ? TSR_SCHED_TASK_FAILED
                                                                : TSR_SCHED_TASK_RERUN,
                                t->payload.len);
        if (++t->attempts >= MAX_ATTEMPTS) {
            tsr_sgraph_fail_msg(g, TSR_ERR_UNAVAILABLE,
                                "a graph task failed on every worker it was given to");
            return;
        }
        tsr_sched_log(s->p->log, "scheduler",
                      "graph job %llu: task '%s' lost with worker %d (%s); placing it again",
                      (unsigned long long)g->id, t->id, t->worker + 1, tsr_status_str(status));
        t->avoid = t->worker;
        if ((t->waiting = tsr_sgraph_count_waiting(g, t)) > 0)
            t->state = T_WAITING; /* an input is being re-run: it goes when that is done */
        else
            tsr_sgraph_enqueue(g, t);
        return;
    }
    if (status == TSR_ERR_STALE && tsr_sgraph_inputs_lost(g, t, reply)) {
        tsr_rpc_msg_release(s->t, reply); /* s: g may be gone */
        return;
    }
    tsr_error_t e, pre;
    tsr_proto_decode_error(reply->data, reply->len, status, &e);
    tsr_sched_http_task_end(s->http, g->id, TSR_SCHED_TASK_FAILED, t->payload.len + reply->len);
    tsr_rpc_msg_release(s->t, reply);
    pre = e;
    snprintf(pre.message, sizeof(pre.message), "task '%s': %s", t->id, e.message);
    graph_fail(g, &pre);
}

/* Decodes the request (strings point into g->reqmsg) and builds the task
 * table and its successor lists. false: malformed (or out of memory: *nomem). */
static bool decode_request(sgraph_t *g, bool *nomem)
{
    tsr_mem_t *mem = g->s->mem;
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, g->reqmsg.data, g->reqmsg.len);
    uint8_t version = tsr_rbuf_u8(&r);
    g->delim = (char)tsr_rbuf_u8(&r);
    uint32_t nt = tsr_rbuf_u32(&r);
    if (r.bad || version < 1 || version > 2 || nt > MAX_GRAPH_TABLES)
        return false;
    g->ntables = nt;
    for (uint32_t i = 0; i < nt; i++) {
        g->tnames[i] = tsr_rbuf_str(&r);
        g->tpaths[i] = tsr_rbuf_str(&r);
        g->tschemas[i] = tsr_rbuf_str(&r);
        if (!tsr_job_ident_ok(g->tnames[i]))
            r.bad = true;
    }
    uint32_t n = tsr_rbuf_u32(&r);
    /* every task takes at least 25 bytes: bounds the allocation by the message */
    if (r.bad || n == 0 || n > TSR_JOB_MAX_TASKS || n > (r.len - r.pos) / 25)
        return false;
    size_t cap = 0;
    if (!(g->tasks = tsr_mem_calloc(mem, n, sizeof(*g->tasks))) ||
        !(g->succ_at = tsr_mem_calloc(mem, (size_t)n + 2, sizeof(size_t))))
        goto nomem;
    g->ntasks = n;
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        gtask_t *t = &g->tasks[i];
        t->g = g;
        t->worker = t->avoid = t->holder = -1;
        t->state = T_WAITING;
        t->pq.queue = -1;
        tsr_wbuf_init(&t->payload, mem);
        t->id = tsr_rbuf_str(&r);
        t->kind = tsr_rbuf_str(&r);
        t->sql = tsr_rbuf_str(&r);
        t->param = tsr_rbuf_str(&r);
        t->sink = tsr_rbuf_u8(&r) != 0;
        t->need = t->prefer = "";
        if (version >= 2) /* the task's device constraint (proto.h) */
            tsr_proto_read_device(&r, &t->need, &t->prefer);
        uint32_t nin = tsr_rbuf_u32(&r);
        if (r.bad || !tsr_job_ident_ok(t->id) || !tsr_job_ident_ok(t->kind) ||
            nin > (r.len - r.pos) / 5)
            return false;
        t->in_at = g->ninputs;
        t->nin = nin;
        if (tsr_mem_grow(mem, (void **)&g->inputs, &cap, g->ninputs + nin + 1, sizeof(ginput_t)))
            goto nomem;
        for (uint32_t k = 0; k < nin; k++) {
            ginput_t *in = &g->inputs[g->ninputs++];
            in->is_task = tsr_rbuf_u8(&r);
            in->index = tsr_rbuf_u32(&r);
            if (in->is_task > 1 || (in->is_task ? in->index >= i : in->index >= nt))
                r.bad = true; /* not topological (a cycle), or a dangling table */
            else if (in->is_task) {
                t->waiting++;
                g->tasks[in->index].readers++;
                g->succ_at[in->index + 2]++;
            }
        }
    }
    if (!tsr_rbuf_done(&r))
        return false;
    /* CSR of successors: succ_at[i + 1] counts, prefix sums, then fill */
    for (size_t i = 0; i < n; i++)
        g->succ_at[i + 2] += g->succ_at[i + 1];
    if (!(g->succ = tsr_mem_calloc(mem, g->ninputs ? g->ninputs : 1, sizeof(size_t))))
        goto nomem;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < g->tasks[i].nin; k++) {
            const ginput_t *in = &g->inputs[g->tasks[i].in_at + k];
            if (in->is_task)
                g->succ[g->succ_at[in->index + 1]++] = i;
        }
    return true;
nomem:
    *nomem = true;
    return false;
}

static void graph_cancel(sactive_t *a)
{
    sgraph_t *g = (sgraph_t *)(void *)((char *)a - offsetof(sgraph_t, act));
    char msg[96];
    snprintf(msg, sizeof(msg), "job %llu was cancelled", (unsigned long long)g->id);
    tsr_sgraph_fail_msg(g, TSR_ERR_UNAVAILABLE, msg);
}

bool tsr_sched_graph_check(tsr_mem_t *mem, const void *msg, size_t len, size_t *ntasks)
{
    sched_t s = {.mem = mem};
    sgraph_t g = {.s = &s};
    g.reqmsg.data = msg;
    g.reqmsg.len = len;
    bool nomem = false, ok = decode_request(&g, &nomem);
    if (ok && ntasks)
        *ntasks = g.ntasks;
    tsr_mem_free(mem, g.tasks); /* no payloads or replies yet: nothing else to free */
    tsr_mem_free(mem, g.inputs);
    tsr_mem_free(mem, g.succ_at);
    tsr_mem_free(mem, g.succ);
    return ok;
}

void tsr_sched_graph_start(sched_t *s, tsr_rpc_req_t *req)
{
    sgraph_t *g = tsr_mem_calloc(s->mem, 1, sizeof(*g));
    if (!g) {
        tsr_rpc_reply(s->t, req, TSR_ERR_NOMEM, NULL, 0);
        return;
    }
    g->s = s;
    g->id = s->next_job++;
    g->req = req;
    g->started_ms = tsr_sched_now_ms();
    g->started_ns = tsr_sgraph_now_ns(g); /* started_ns is 0 here: the absolute time */
    g->prog.job = g->id;
    g->sprog.s = s;
    g->sprog.settled = progress_settled;
    g->sprog.owner = g;
    g->sprog.last_ms = g->started_ms;
    g->inline_max = DEFAULT_INLINE_MAX;
    g->pipe_max = DEFAULT_PIPELINE;
    const char *pm = getenv("TSR_GRAPH_PIPELINE"); /* 0: no pipelining (docs/cluster.md) */
    if (pm && *pm)
        g->pipe_max = (unsigned)(strtoul(pm, NULL, 10) % 1025u);
    const char *im = getenv("TSR_GRAPH_INLINE_MAX"); /* tuning and tests (docs/cluster.md) */
    if (im && *im)
        g->inline_max = strtoull(im, NULL, 10);
    tsr_rpc_req_take(req, &g->reqmsg);
    bool nomem = false;
    /* in the HTTP job table next to SQL jobs (http.c: kind "graph") */
    tsr_sched_http_job_begin(s->http, g->id, "(task graph)", strlen("(task graph)"));
    if (!decode_request(g, &nomem)) {
        tsr_sgraph_fail_msg(g, nomem ? TSR_ERR_NOMEM : TSR_ERR_BAD_INPUT,
                            nomem ? "out of memory" : "malformed task graph request");
        return;
    }
    if (tsr_sched_ready_count(s) == 0) {
        tsr_sgraph_fail_msg(g, TSR_ERR_UNAVAILABLE, "no workers are available");
        return;
    }
    for (size_t i = 0; i < g->ntasks; i++) {
        /* a requirement no ready worker meets fails the job now, not when
         * the task becomes ready (nor does it wait for one to join) */
        const gtask_t *t = &g->tasks[i];
        if (tsr_placer_any_ready(&s->placer, t->need))
            continue;
        char devs[256];
        tsr_error_t e;
        tsr_error_clear(&e);
        tsr_placer_ready_devices(&s->placer, devs, sizeof(devs));
        tsr_error_set(&e, TSR_ERR_UNAVAILABLE,
                      "task '%s': no ready worker has a device matching '%s' (ready: %s)", t->id,
                      t->need, devs);
        tsr_error_hint(&e, "start one (tessera worker --device %s...) or drop the task's device",
                       t->need);
        graph_fail(g, &e);
        return;
    }
    g->prog.total = (uint32_t)g->ntasks;
    tsr_sched_http_job_tasks(s->http, g->id, "graph", g->ntasks);
    tsr_sched_log(s->p->log, "scheduler", "graph job %llu: %zu task(s) on %zu worker(s)",
                  (unsigned long long)g->id, g->ntasks, tsr_sched_ready_count(s));
    g->act.id = g->id;
    g->act.req = &g->req;
    g->act.cancel = graph_cancel;
    tsr_sched_active_add(s, &g->act);
    for (size_t i = 0; i < g->ntasks; i++)
        if (g->tasks[i].waiting == 0 && !tsr_sgraph_enqueue(g, &g->tasks[i]))
            return;
    tsr_placer_pump(&s->placer);
}
