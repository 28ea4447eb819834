/*
 * sched_graph_pipe.c - pipelining of graph tasks on the scheduler: a task
 * whose only unfinished inputs are being produced on one worker is sent to
 * that worker before they finish (docs/cluster.md "Pipelining").
 *
 * Why: a chain is otherwise bound by one scheduler round trip per task
 * (answer -> scheduler -> next task -> worker, each a cross-core wakeup).
 * A worker runs its graph tasks in arrival order on one executor thread, so
 * a task sent after its producers runs after them; it reads their outputs
 * from the worker's value store (TASK_GRAPH version 4, input src 4), and
 * the scheduler still gets every task's answer.
 *
 * Rules (all on the scheduler's thread):
 *   - A task S may be sent ahead to worker wi when it is WAITING, wi may run
 *     it (device need, no preference, not the worker it was lost on), every
 *     task input of S is either DONE with its value still there, or INFLIGHT
 *     on wi with keep_local (the producer's payload asked wi to keep a copy
 *     of an inline output: worker_graph.c), and fewer than g->pipe_max tasks
 *     of the job are sent ahead to wi and unanswered (a separate bound: the
 *     placer's slots are not used; TSR_GRAPH_PIPELINE, default 4, 0 off).
 *   - It is sent INFLIGHT with piped set; ready_ns = sent_ns = now.
 *   - Triggers: a task was sent to wi (by the placer or ahead), and a task
 *     of wi was answered (the bound has room again): the walk goes down
 *     through the readers already sent ahead there (at most pipe_max deep).
 *   - Failures (sched_graph.c task_settle): a task sent ahead whose producer
 *     failed, was dropped or lost finds no value in the store and answers
 *     "not run" without running; an answer other than success from a task
 *     sent ahead whose inputs are not all DONE puts it back to WAITING (it
 *     runs when they are; if the job failed, nothing more is placed). A
 *     worker's death loses its tasks sent ahead like any other in flight.
 *   - Local copies: the worker keeps them beside kept values (worker_graph.c),
 *     drops one itself after the reader the scheduler marks as its last
 *     (no other reader of the producer is still WAITING), and the job's end
 *     drops every value of the job on each worker that may keep copies.
 */
#include <string.h>

#include "policy.h"
#include "sched_graph_internal.h"

/* Room for worker slot wi in the per-worker arrays. false: out of memory. */
static bool pipe_room(sgraph_t *g, int wi)
{
    size_t need = (size_t)wi + 1;
    if (need <= g->pipe_cap)
        return true;
    size_t cap = g->pipe_cap, cap2 = g->pipe_cap;
    tsr_mem_t *mem = g->s->mem;
    if (tsr_mem_grow(mem, (void **)&g->piped_on, &cap, need, sizeof(*g->piped_on)) ||
        tsr_mem_grow(mem, (void **)&g->copies_on, &cap2, need, sizeof(*g->copies_on)))
        return false;
    size_t n = cap < cap2 ? cap : cap2;
    memset(g->piped_on + g->pipe_cap, 0, (n - g->pipe_cap) * sizeof(*g->piped_on));
    memset(g->copies_on + g->pipe_cap, 0, (n - g->pipe_cap) * sizeof(*g->copies_on));
    g->pipe_cap = n;
    return true;
}

/* May worker wi run s at all (device need, no preference, not avoided)? */
static bool worker_fits(const sgraph_t *g, const gtask_t *s, int wi)
{
    const sched_t *sc = g->s;
    if (wi < 0 || (size_t)wi >= sc->nworkers || sc->workers[wi]->state != SW_READY ||
        !sc->workers[wi]->peer || s->avoid == wi || (s->prefer && s->prefer[0]))
        return false;
    return (size_t)wi < sc->placer.nworkers &&
           tsr_policy_device_ok(s->need, sc->placer.w[wi].device);
}

bool tsr_sgraph_wants_copy(sgraph_t *g, const gtask_t *t, int wi)
{
    if (g->pipe_max == 0)
        return false;
    size_t ti = (size_t)(t - g->tasks);
    for (size_t e = g->succ_at[ti]; e < g->succ_at[ti + 1]; e++) {
        const gtask_t *s = &g->tasks[g->succ[e]];
        if (s->state == T_WAITING && worker_fits(g, s, wi))
            return pipe_room(g, wi);
    }
    return false;
}

/* Can s be sent ahead to wi now? */
static bool can_pipe(sgraph_t *g, const gtask_t *s, int wi)
{
    if (s->state != T_WAITING || s->waiting == 0 || !worker_fits(g, s, wi) || !pipe_room(g, wi) ||
        g->piped_on[wi] >= g->pipe_max)
        return false;
    for (size_t k = 0; k < s->nin; k++) {
        const ginput_t *in = &g->inputs[s->in_at + k];
        if (!in->is_task)
            continue;
        const gtask_t *q = &g->tasks[in->index];
        if (q->state == T_DONE) {
            if (tsr_sgraph_value_gone(g, q))
                return false;
        } else if (q->state != T_INFLIGHT || q->worker != wi || !q->keep_local) {
            return false;
        }
    }
    return true;
}

/* Sends s ahead to wi. false: not sent (it stays WAITING). */
static bool pipe_send(sgraph_t *g, gtask_t *s, int wi)
{
    sched_t *sc = g->s;
    s->state = T_INFLIGHT; /* before the payload: "last reader" looks at states */
    s->keep_local = tsr_sgraph_wants_copy(g, s, wi);
    tsr_sgraph_build_payload(g, s, wi);
    if (s->payload.failed) {
        s->state = T_WAITING;
        s->keep_local = false;
        return false;
    }
    if (tsr_rpc_call_async(sc->t, sc->workers[wi]->peer, TSR_MSG_TASK_GRAPH, s->payload.data,
                           s->payload.len, -1, tsr_sgraph_on_task_done, s, NULL) != TSR_OK) {
        /* the worker is going: it waits for its inputs like any other */
        s->state = T_WAITING;
        s->keep_local = false;
        return false;
    }
    if (s->keep_local)
        g->copies_on[wi] = 1;
    s->piped = true;
    s->worker = wi;
    s->ready_ns = s->sent_ns = tsr_sgraph_now_ns(g);
    sc->workers[wi]->inflight++;
    g->piped_on[wi]++;
    g->npiped++;
    g->outstanding++;
    g->inflight++;
    return true;
}

/* The walk from t (in flight on wi), depth bounded by the job's bound. */
static void pipeline_walk(sgraph_t *g, gtask_t *t, int wi, unsigned depth)
{
    if (depth > g->pipe_max || g->finished)
        return;
    size_t ti = (size_t)(t - g->tasks);
    for (size_t e = g->succ_at[ti]; e < g->succ_at[ti + 1] && !g->finished; e++) {
        gtask_t *s = &g->tasks[g->succ[e]];
        if (s->state == T_INFLIGHT && s->piped && s->worker == wi)
            pipeline_walk(g, s, wi, depth + 1);
        else if (can_pipe(g, s, wi) && pipe_send(g, s, wi))
            pipeline_walk(g, s, wi, depth + 1);
    }
}

void tsr_sgraph_pipeline(sgraph_t *g, gtask_t *t, int wi)
{
    if (g->pipe_max == 0 || g->finished)
        return;
    pipeline_walk(g, t, wi, 0);
}

void tsr_sgraph_pipe_done(sgraph_t *g, int wi)
{
    if (wi >= 0 && (size_t)wi < g->pipe_cap && g->piped_on[wi] > 0)
        g->piped_on[wi]--;
}

void tsr_sgraph_pipe_end(sgraph_t *g)
{
    for (size_t wi = 0; wi < g->pipe_cap; wi++)
        if (g->copies_on[wi])
            tsr_sgraph_send_drop(g->s, (int)wi, g->id, NULL, 0);
}
