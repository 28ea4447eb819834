/*
 * graph_run.c - the embedded executor of task graphs: submit-time checks,
 * dependency counting, work-stealing threads, wait and cancel.
 *
 * Why not the context's pool. core/pool.h is fork-join: tsr_pool_run blocks
 * its caller until a fixed set of indices is done, one job at a time. A graph
 * needs a non-blocking submit and a ready set that grows while it runs, so
 * each run owns its threads (as many as the pool has, by default), created at
 * submit and joined at the end; "sql" tasks still use the pool for their
 * operators when it is free (graph_ops.c). The exception: a graph of one
 * thread marked tsr_graph_run_here (graph_internal.h) starts none, and the
 * thread that waits runs worker 0's loop itself (a cluster worker's
 * one-task graphs: a thread start and two cross-core wake-ups per task cost
 * more than an empty task).
 *
 * Scheduling. Every worker owns a Chase-Lev deque of ready task indices
 * (Le, Pop, Cohen, Zappa Nardelli, "Correct and efficient work-stealing for
 * weak memory models", PPoPP 2013): the owner pushes and takes at the bottom
 * (LIFO: cache-hot successors first), idle workers steal at the top. When a
 * task ends, each successor's pending count is decremented (acq_rel: it
 * publishes the task's outputs); the first successor that becomes ready runs
 * next on the same thread without touching any queue (a chain never queues),
 * the others are pushed. Each task is pushed at most once, so deques never
 * need more than ntasks slots: they are allocated at submit with
 * min(ntasks, DEQUE_MAX) slots and a task that does not fit goes to a shared
 * overflow list (a mutex; only for fan-outs wider than DEQUE_MAX).
 *
 * Per task, the hot path does: two clock reads (unless params.no_timing),
 * two relaxed state stores, the function call, and one atomic decrement per
 * out-edge; no allocation, no lock, no shared counter: finished tasks are
 * counted per worker and added to the run's `remaining` only when the worker
 * runs out of work (the run ends when remaining reaches 0).
 *
 * Sleeping. A worker out of work spins briefly, then sleeps on a condition
 * variable with an event count: it reads `epoch`, announces itself in
 * `nsleep` (seq_cst), looks for work once more, and sleeps only while epoch is
 * unchanged; a pusher makes its push visible, issues a seq_cst fence and, if
 * nsleep > 0, bumps epoch under the lock and signals. One of the two always
 * sees the other (the store-load pattern both sides fence), so no wake-up is
 * lost. A thief that stole from a deque that still has work wakes one more
 * sleeper, so a wide fan-out spreads over all threads.
 *
 * Failure and cancel. A task that fails marks its successors upstream_failed
 * (with the index of the task that failed first) before decrementing them;
 * such a task is not run when it becomes ready but ends FAILED and passes the
 * mark on. Cancel sets a flag every worker reads before running a task: tasks
 * not yet started end CANCELLED as they become ready. It also sets the
 * graph's cancel_flag, which running tasks poll (tsr_task_cancelled, the
 * executor of "sql" tasks): a running task that then returns an error ends
 * CANCELLED, not FAILED; one that ignores it and finishes ends DONE. The
 * context's cancel token (context.h) counts as a cancel of the graph.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "graph/graph_internal.h"

#define DEQUE_MAX (1u << 17) /* slots per worker deque, at most (512 KiB) */
#define SPIN_ROUNDS 200      /* steal attempts before sleeping */
#define MAX_THREADS 256

typedef struct deque {
    _Alignas(64) atomic_llong top; /* thieves CAS it */
    _Alignas(64) atomic_llong bottom;
    atomic_uint *buf;
    long long mask;
} deque_t;

typedef struct gworker {
    deque_t dq;
    graph_run_t *run;
    unsigned id;
    uint64_t rng;   /* victim choice */
    pthread_t thread;
    bool started;
} gworker_t;

struct graph_run {
    tsr_graph_t *g;
    unsigned nworkers;
    gworker_t *workers;  /* 64-byte aligned array */
    bool timing;
    _Alignas(64) atomic_llong remaining; /* tasks not yet counted as ended */
    atomic_bool cancel;
    atomic_bool finished;
    _Alignas(64) atomic_int nsleep;      /* workers announced as going to sleep */
    atomic_ulong epoch;                  /* bumped under lock to wake sleepers */
    pthread_mutex_t lock;
    pthread_cond_t wake;                 /* sleeping workers */
    pthread_cond_t done;                 /* tsr_graph_wait */
    bool joined;
    bool here; /* tsr_graph_run_here: no thread started; the waiter runs worker 0 */
    /* overflow of full deques: each task enters at most once, so ntasks slots */
    pthread_mutex_t ovf_lock;
    uint32_t *ovf;
    size_t ovf_head, ovf_tail;
    atomic_size_t ovf_count;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- the deque (owner: push/take at the bottom; thieves: steal at the top) ----- */

static bool deque_push(deque_t *q, uint32_t x)
{
    long long b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    long long t = atomic_load_explicit(&q->top, memory_order_acquire);
    if (b - t > q->mask)
        return false; /* full: the caller uses the overflow list */
    atomic_store_explicit(&q->buf[b & q->mask], x, memory_order_relaxed);
    /* a release store rather than the paper's release fence + relaxed store:
     * the same instructions on x86, and ThreadSanitizer understands it */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
    return true;
}

static bool deque_take(deque_t *q, uint32_t *x)
{
    long long b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    long long t = atomic_load_explicit(&q->top, memory_order_relaxed);
    if (t > b) { /* empty */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        return false;
    }
    *x = atomic_load_explicit(&q->buf[b & q->mask], memory_order_relaxed);
    if (t == b) { /* the last one: race the thieves for it */
        bool won = atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                           memory_order_seq_cst,
                                                           memory_order_relaxed);
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        return won;
    }
    return true;
}

/* 1: stolen, 0: empty, -1: lost a race (try again) */
static int deque_steal(deque_t *q, uint32_t *x)
{
    long long t = atomic_load_explicit(&q->top, memory_order_acquire);
    atomic_thread_fence(memory_order_seq_cst);
    long long b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return 0;
    *x = atomic_load_explicit(&q->buf[t & q->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return -1;
    return 1;
}

static bool deque_nonempty(deque_t *q)
{
    return atomic_load_explicit(&q->bottom, memory_order_relaxed) >
           atomic_load_explicit(&q->top, memory_order_relaxed);
}

/* ---- waking ------------------------------------------------------------------------ */

static void wake_one(graph_run_t *r)
{
    pthread_mutex_lock(&r->lock);
    atomic_fetch_add_explicit(&r->epoch, 1, memory_order_relaxed);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

/* After making work visible: wake a sleeper if there is one. */
static void maybe_wake(graph_run_t *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->nsleep, memory_order_relaxed) > 0)
        wake_one(r);
}

static void push_ready(gworker_t *w, uint32_t ti)
{
    graph_run_t *r = w->run;
    if (deque_push(&w->dq, ti))
        return;
    pthread_mutex_lock(&r->ovf_lock);
    r->ovf[r->ovf_tail++] = ti;
    atomic_store_explicit(&r->ovf_count, r->ovf_tail - r->ovf_head, memory_order_relaxed);
    pthread_mutex_unlock(&r->ovf_lock);
}

static bool overflow_pop(graph_run_t *r, uint32_t *x)
{
    if (atomic_load_explicit(&r->ovf_count, memory_order_relaxed) == 0)
        return false;
    bool got = false;
    pthread_mutex_lock(&r->ovf_lock);
    if (r->ovf_head < r->ovf_tail) {
        *x = r->ovf[r->ovf_head++];
        got = true;
    }
    atomic_store_explicit(&r->ovf_count, r->ovf_tail - r->ovf_head, memory_order_relaxed);
    pthread_mutex_unlock(&r->ovf_lock);
    return got;
}

static bool find_work(gworker_t *w, uint32_t *x)
{
    graph_run_t *r = w->run;
    if (deque_take(&w->dq, x) || overflow_pop(r, x))
        return true;
    unsigned n = r->nworkers;
    for (int attempt = 0; attempt < 4; attempt++) {
        bool raced = false;
        w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned start = (unsigned)(w->rng >> 33) % n;
        for (unsigned k = 0; k < n; k++) {
            gworker_t *v = &r->workers[(start + k) % n];
            if (v == w)
                continue;
            int s = deque_steal(&v->dq, x);
            if (s > 0) {
                /* more where that came from: let another sleeper help */
                if (deque_nonempty(&v->dq) &&
                    atomic_load_explicit(&r->nsleep, memory_order_relaxed) > 0)
                    wake_one(r);
                return true;
            }
            raced |= s < 0;
        }
        if (!raced)
            return false;
    }
    return false;
}

/* ---- running one task --------------------------------------------------------------- */

/* A failure inherited from upstream: the status and a message naming the cause. */
static void inherit_failure(tsr_graph_t *g, tsr_task_t *t)
{
    uint32_t ci = atomic_load_explicit(&t->cause, memory_order_relaxed);
    tsr_task_t *cause = graph_task(g, ci);
    t->status = cause->status;
    char buf[64], msg[256];
    snprintf(msg, sizeof(msg), "task %s, which it depends on, failed",
             tsr_graph_task_label(cause, buf, sizeof(buf)));
    t->message = tsr_mem_strdup(g->mem, msg); /* NULL: the status alone tells */
}

/* Runs task ti (or ends it as cancelled/failed) and releases its successors;
 * returns the successor to run next on this thread, GRAPH_NONE when none.
 * *clock: 0, or the time the previous task on this thread ended, just before
 * it handed over ti (a continuation): then it is ti's start time, which saves
 * a clock read per task in chains. Set to this task's end. */
static uint32_t run_task(gworker_t *w, uint32_t ti, uint64_t *clock)
{
    graph_run_t *r = w->run;
    tsr_graph_t *g = r->g;
    tsr_task_t *t = graph_task(g, ti);
    t->thread = w->id;
    if (r->timing)
        t->t_start = *clock ? *clock : now_ns();
    unsigned final;
    if (atomic_load_explicit(&r->cancel, memory_order_relaxed) ||
        tsr_graph_is_cancelled(g)) { /* the context's token too */
        final = TSR_TASK_CANCELLED;
    } else if (atomic_load_explicit(&t->upstream_failed, memory_order_relaxed)) {
        inherit_failure(g, t);
        final = TSR_TASK_FAILED;
    } else {
        atomic_store_explicit(&t->state, TSR_TASK_RUNNING, memory_order_relaxed);
        tsr_task_ctx_t tc = {.graph = g, .task = t, .thread = w->id};
        tsr_data_t *const *in = g->refs + t->in_off;
        tsr_data_t *const *out = g->refs + t->out_off;
        const tsr_data_t *const *cin = (const tsr_data_t *const *)in;
        tsr_status_t rc;
        if (t->kind->builtin != GRAPH_USER)
            rc = tsr_graph_op_run(&tc, cin, t->nin, out, t->nout);
        else if (tsr_graph_cuda_wanted(g, t)) /* the kind's CUDA implementation */
            rc = tsr_graph_cuda_run(&tc, cin, t->nin, out, t->nout);
        else if (tsr_graph_cl_wanted(g, t)) /* the kind's OpenCL implementation */
            rc = tsr_graph_cl_run(&tc, cin, t->nin, out, t->nout);
        else
            rc = t->kind->cpu(&tc, cin, t->nin, out, t->nout);
        if (rc != TSR_OK && tsr_graph_is_cancelled(g)) {
            /* it stopped early because it was asked to (tsr_task_cancelled,
             * or an "sql" task's TSR_ERR_CANCELLED): cancelled, not failed,
             * so nothing downstream fails and wait reports the caller's
             * own decision as TSR_OK */
            tsr_mem_free(g->mem, t->message);
            t->message = NULL;
            t->status = TSR_OK;
            final = TSR_TASK_CANCELLED;
        } else {
            t->status = rc;
            final = rc == TSR_OK ? TSR_TASK_DONE : TSR_TASK_FAILED;
        }
    }
    uint64_t end = r->timing ? now_ns() : 0;
    t->t_end = end;
    *clock = end;
    atomic_store_explicit(&t->state, final, memory_order_release);

    uint32_t cause = GRAPH_NONE;
    if (final == TSR_TASK_FAILED) {
        cause = atomic_load_explicit(&t->cause, memory_order_relaxed);
        if (cause == GRAPH_NONE)
            cause = ti;
    }
    uint32_t next = GRAPH_NONE;
    bool pushed = false;
    const uint32_t *succ = g->succ + t->succ_off;
    for (uint32_t k = 0; k < t->nsucc; k++) {
        tsr_task_t *s = graph_task(g, succ[k]);
        if (cause != GRAPH_NONE) {
            atomic_store_explicit(&s->cause, cause, memory_order_relaxed);
            atomic_store_explicit(&s->upstream_failed, 1, memory_order_relaxed);
        }
        if (atomic_fetch_sub_explicit(&s->pending, 1, memory_order_acq_rel) == 1) {
            s->t_queued = end;
            atomic_store_explicit(&s->state, TSR_TASK_READY, memory_order_relaxed);
            if (next == GRAPH_NONE) {
                next = succ[k];
            } else {
                push_ready(w, succ[k]);
                pushed = true;
            }
        }
    }
    if (pushed)
        maybe_wake(r);
    return next;
}

static void finish(graph_run_t *r)
{
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->finished, true);
    atomic_fetch_add_explicit(&r->epoch, 1, memory_order_relaxed);
    pthread_cond_broadcast(&r->wake);
    pthread_cond_broadcast(&r->done);
    pthread_mutex_unlock(&r->lock);
}

/* Out of work: spin, then sleep. True with *x when work was found, false when
 * the run has finished. */
static bool idle_wait(gworker_t *w, uint32_t *x)
{
    graph_run_t *r = w->run;
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&r->finished, memory_order_acquire))
            return false;
        if (find_work(w, x))
            return true;
        if (i < SPIN_ROUNDS / 2)
            cpu_relax();
        else
            sched_yield(); /* the machine may have fewer cores than threads */
    }
    for (;;) {
        unsigned long e = atomic_load_explicit(&r->epoch, memory_order_acquire);
        atomic_fetch_add_explicit(&r->nsleep, 1, memory_order_seq_cst);
        atomic_thread_fence(memory_order_seq_cst);
        bool found = find_work(w, x);
        if (found || atomic_load(&r->finished)) {
            atomic_fetch_sub_explicit(&r->nsleep, 1, memory_order_relaxed);
            return found;
        }
        pthread_mutex_lock(&r->lock);
        while (atomic_load_explicit(&r->epoch, memory_order_relaxed) == e &&
               !atomic_load(&r->finished))
            pthread_cond_wait(&r->wake, &r->lock);
        pthread_mutex_unlock(&r->lock);
        atomic_fetch_sub_explicit(&r->nsleep, 1, memory_order_relaxed);
        if (find_work(w, x))
            return true;
        if (atomic_load(&r->finished))
            return false;
    }
}

static void *worker_main(void *arg)
{
    gworker_t *w = arg;
    graph_run_t *r = w->run;
    long long ended = 0; /* tasks ended here and not yet subtracted from remaining */
    for (;;) {
        uint32_t ti;
        if (!find_work(w, &ti)) {
            if (ended) {
                if (atomic_fetch_sub_explicit(&r->remaining, ended, memory_order_acq_rel) ==
                    ended)
                    finish(r);
                ended = 0;
            }
            if (!idle_wait(w, &ti))
                break;
        }
        uint64_t clock = 0; /* a task from a queue: read the clock */
        while (ti != GRAPH_NONE) {
            ti = run_task(w, ti, &clock);
            ended++;
        }
    }
    return NULL;
}

/* ---- submit: checks and set-up ------------------------------------------------------ */

/* Names a cycle among the tasks Kahn's algorithm could not order (indeg > 0):
 * walking from such a task to a predecessor that is also unordered must come
 * back to a task already seen. seen[] is scratch of ntasks entries. */
static void report_cycle(tsr_graph_t *g, const uint32_t *indeg, uint32_t *seen, tsr_error_t *err)
{
    uint32_t n = g->ntasks, start = 0;
    while (start < n && indeg[start] == 0)
        start++;
    for (uint32_t i = 0; i < n; i++)
        seen[i] = 0;
    uint32_t cur = start, step = 1;
    while (!seen[cur]) {
        seen[cur] = step++;
        tsr_task_t *t = graph_task(g, cur);
        uint32_t pred = GRAPH_NONE;
        for (uint32_t k = 0; k < t->nin && pred == GRAPH_NONE; k++) {
            uint32_t p = g->refs[t->in_off + k]->producer;
            if (p != GRAPH_NONE && indeg[p] > 0)
                pred = p;
        }
        if (pred == GRAPH_NONE) /* cannot be: an unordered task has an unordered predecessor */
            break;
        cur = pred;
    }
    /* cur starts the cycle; the walk went backwards along it */
    char text[400] = "", buf[64];
    size_t len = 0, count = 0;
    uint32_t first = cur;
    uint32_t path[9];
    uint32_t x = cur;
    do {
        if (count < 9)
            path[count] = x;
        count++;
        tsr_task_t *t = graph_task(g, x);
        uint32_t pred = GRAPH_NONE;
        for (uint32_t k = 0; k < t->nin && pred == GRAPH_NONE; k++) {
            uint32_t p = g->refs[t->in_off + k]->producer;
            if (p != GRAPH_NONE && indeg[p] > 0) /* the first walk's choice */
                pred = p;
        }
        x = pred;
    } while (x != first && x != GRAPH_NONE && count < n);
    size_t shown = count < 9 ? count : 8;
    for (size_t i = shown; i-- > 0;) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s -> ",
                                tsr_graph_task_label(graph_task(g, path[i]), buf, sizeof(buf)));
        if (len >= sizeof(text))
            break;
    }
    if (len < sizeof(text))
        snprintf(text + len, sizeof(text) - len, "%s%s", count > shown ? "... -> " : "",
                 tsr_graph_task_label(graph_task(g, path[shown - 1]), buf, sizeof(buf)));
    tsr_error_set(err, TSR_ERR_INVALID_ARG, "the task graph has a cycle: %s", text);
    tsr_error_hint(err, "a task cannot depend, even indirectly, on its own output");
}

static tsr_status_t check_and_link(tsr_graph_t *g, tsr_error_t *err)
{
    uint32_t n = g->ntasks;
    char b1[64], b2[64];
    uint32_t *indeg = tsr_mem_calloc(g->mem, n ? n : 1, sizeof(uint32_t));
    uint32_t *queue = tsr_mem_alloc(g->mem, (n ? n : 1) * sizeof(uint32_t));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!indeg || !queue) {
        tsr_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    /* One pass over every task's inputs: dangling handles, in- and out-degrees
     * (the passes over 100k tasks are memory-bound: keep them few). */
    bool backward = false; /* an edge p -> i with p >= i: a cycle is possible */
    size_t nedges = 0;
    for (uint32_t i = 0; i < n; i++)
        graph_task(g, i)->nsucc = 0;
    for (uint32_t i = 0; i < n; i++) {
        tsr_task_t *t = graph_task(g, i);
        for (uint32_t k = 0; k < t->nin; k++) {
            tsr_data_t *d = g->refs[t->in_off + k];
            uint32_t p = d->producer;
            if (p == GRAPH_NONE) {
                if (d->has_value)
                    continue;
                tsr_error_set(err, TSR_ERR_INVALID_ARG,
                              "task %s reads data handle %s, which has no value and no task "
                              "writes it (dangling)",
                              tsr_graph_task_label(t, b1, sizeof(b1)),
                              tsr_graph_data_label(d, b2, sizeof(b2)));
                tsr_error_hint(err, "add the task that writes it, or create it with a value");
                rc = TSR_ERR_INVALID_ARG;
                goto cleanup;
            }
            graph_task(g, p)->nsucc++;
            indeg[i]++;
            nedges++;
            backward |= p >= i;
        }
    }
    if (nedges > UINT32_MAX) {
        rc = tsr_error_set(err, TSR_ERR_INVALID_ARG, "too many dependencies");
        goto cleanup;
    }
    g->succ = tsr_mem_alloc(g->mem, (nedges ? nedges : 1) * sizeof(uint32_t));
    if (!g->succ) {
        tsr_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    /* CSR: prefix sums of the out-degrees, then fill (nsucc is the fill cursor) */
    uint32_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        tsr_task_t *t = graph_task(g, i);
        t->succ_off = off;
        off += t->nsucc;
        t->nsucc = 0;
        atomic_init(&t->pending, indeg[i]);
    }
    for (uint32_t i = 0; i < n; i++) {
        tsr_task_t *t = graph_task(g, i);
        for (uint32_t k = 0; k < t->nin; k++) {
            uint32_t p = g->refs[t->in_off + k]->producer;
            if (p != GRAPH_NONE) {
                tsr_task_t *pt = graph_task(g, p);
                g->succ[pt->succ_off + pt->nsucc++] = i;
            }
        }
    }
    /* Kahn: whatever cannot be ordered lies on or behind a cycle. When every
     * edge goes from a lower index to a higher one (tasks added after the
     * tasks they read from: the usual way to build), index order is already
     * a topological order and the pass is skipped. */
    rc = TSR_OK;
    if (backward) {
        uint32_t head = 0, tail = 0;
        for (uint32_t i = 0; i < n; i++)
            if (indeg[i] == 0)
                queue[tail++] = i;
        while (head < tail) {
            tsr_task_t *t = graph_task(g, queue[head++]);
            for (uint32_t k = 0; k < t->nsucc; k++) {
                uint32_t s = g->succ[t->succ_off + k];
                if (--indeg[s] == 0)
                    queue[tail++] = s;
            }
        }
        if (tail < n) {
            report_cycle(g, indeg, queue, err);
            rc = TSR_ERR_INVALID_ARG;
        }
    }

cleanup:
    if (rc != TSR_OK) {
        tsr_mem_free(g->mem, g->succ);
        g->succ = NULL;
    }
    tsr_mem_free(g->mem, queue);
    tsr_mem_free(g->mem, indeg);
    return rc;
}

static void run_free_memory(tsr_mem_t *mem, graph_run_t *r)
{
    if (r->workers)
        for (unsigned i = 0; i < r->nworkers; i++)
            tsr_mem_free(mem, r->workers[i].dq.buf);
    tsr_mem_free(mem, r->workers);
    tsr_mem_free(mem, r->ovf);
    tsr_mem_free(mem, r);
}

tsr_status_t tsr_graph_run_start(tsr_graph_t *g, tsr_error_t *err)
{
    tsr_status_t rc = check_and_link(g, err);
    if (rc != TSR_OK)
        return rc;
    tsr_mem_t *mem = g->mem;
    uint32_t n = g->ntasks;
    unsigned nw = g->params.threads ? g->params.threads : tsr_pool_size(g->ctx->pool);
    if (nw > MAX_THREADS)
        nw = MAX_THREADS;
    if (nw > n)
        nw = n ? n : 1;
    rc = TSR_ERR_NOMEM;
    graph_run_t *r = tsr_mem_calloc(mem, 1, sizeof(*r));
    if (!r)
        goto err_unlink;
    r->g = g;
    r->timing = !g->params.no_timing;
    r->nworkers = nw;
    r->workers = tsr_mem_alloc_aligned(mem, nw * sizeof(gworker_t));
    if (r->workers) /* before anything can fail: run_free_memory reads it */
        memset(r->workers, 0, nw * sizeof(gworker_t));
    r->ovf = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    if (!r->workers || !r->ovf)
        goto err_free_run;
    size_t cap = 16;
    while (cap < n && cap < DEQUE_MAX)
        cap <<= 1;
    for (unsigned i = 0; i < nw; i++) {
        gworker_t *w = &r->workers[i];
        w->run = r;
        w->id = i;
        w->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        w->dq.mask = (long long)cap - 1;
        atomic_init(&w->dq.top, 0);
        atomic_init(&w->dq.bottom, 0);
        if (!(w->dq.buf = tsr_mem_alloc(mem, cap * sizeof(atomic_uint))))
            goto err_free_run;
    }
    atomic_init(&r->remaining, (long long)n);
    atomic_init(&r->cancel, g->cancel_early);
    atomic_init(&r->finished, n == 0);
    atomic_init(&r->nsleep, 0);
    atomic_init(&r->epoch, 0);
    atomic_init(&r->ovf_count, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->ovf_lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->done, &ca);
    pthread_condattr_destroy(&ca);

    /* roots round-robin over the deques, before any thread exists */
    uint64_t t0 = r->timing ? now_ns() : 0;
    unsigned rr = 0;
    for (uint32_t i = 0; i < n; i++) {
        tsr_task_t *t = graph_task(g, i);
        if (atomic_load_explicit(&t->pending, memory_order_relaxed) == 0) {
            t->t_queued = t0;
            atomic_store_explicit(&t->state, TSR_TASK_READY, memory_order_relaxed);
            push_ready(&r->workers[rr], i);
            rr = (rr + 1) % nw;
        }
    }
    g->run = r;
    g->submitted = true;
    if (n == 0) {
        r->joined = true;
        return TSR_OK;
    }
    if (g->run_here && g->params.threads == 1) {
        r->here = true; /* no thread: the waiter runs worker 0 (tsr_graph_run_wait) */
        return TSR_OK;
    }
    for (unsigned i = 0; i < nw; i++) {
        if (pthread_create(&r->workers[i].thread, NULL, worker_main, &r->workers[i]) != 0) {
            if (i == 0) { /* nothing runs: undo */
                g->run = NULL;
                g->submitted = false;
                rc = tsr_error_set(err, TSR_ERR_INTERNAL, "cannot start a thread");
                goto err_destroy_sync;
            }
            break; /* fewer threads still run everything: any worker steals from any */
        }
        r->workers[i].started = true;
    }
    return TSR_OK;

err_destroy_sync:
    pthread_cond_destroy(&r->done);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->ovf_lock);
    pthread_mutex_destroy(&r->lock);
    for (uint32_t i = 0; i < n; i++)
        atomic_store(&graph_task(g, i)->state, TSR_TASK_PENDING);
err_free_run:
    run_free_memory(mem, r);
err_unlink:
    if (rc == TSR_ERR_NOMEM)
        tsr_error_set(err, rc, "out of memory");
    tsr_mem_free(mem, g->succ);
    g->succ = NULL;
    return rc;
}

/* ---- wait, cancel, free ------------------------------------------------------------ */

static void join_all(graph_run_t *r)
{
    if (r->joined)
        return;
    for (unsigned i = 0; i < r->nworkers; i++)
        if (r->workers[i].started)
            pthread_join(r->workers[i].thread, NULL);
    r->joined = true;
}

void tsr_graph_run_here(tsr_graph_t *g)
{
    if (!g->submitted)
        g->run_here = true;
}

tsr_status_t tsr_graph_run_wait(tsr_graph_t *g, long timeout_ms)
{
    graph_run_t *r = g->run;
    if (r->here && !r->joined) {
        /* no thread was started: this one runs every task, to the end */
        r->joined = true;
        worker_main(&r->workers[0]);
    }
    if (!atomic_load_explicit(&r->finished, memory_order_acquire)) {
        if (timeout_ms == 0)
            return TSR_ERR_TIMEOUT;
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        if (timeout_ms > 0) {
            dl.tv_sec += timeout_ms / 1000;
            dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
        }
        pthread_mutex_lock(&r->lock);
        while (!atomic_load(&r->finished)) {
            if (timeout_ms < 0) {
                pthread_cond_wait(&r->done, &r->lock);
            } else if (pthread_cond_timedwait(&r->done, &r->lock, &dl) != 0 &&
                       !atomic_load(&r->finished)) {
                pthread_mutex_unlock(&r->lock);
                return TSR_ERR_TIMEOUT;
            }
        }
        pthread_mutex_unlock(&r->lock);
    }
    join_all(r); /* every thread is on its way out once finished is set */
    return TSR_OK;
}

void tsr_graph_run_cancel(tsr_graph_t *g)
{
    if (g->run)
        atomic_store(&g->run->cancel, true);
}

void tsr_graph_run_free(tsr_graph_t *g)
{
    graph_run_t *r = g->run;
    if (!r)
        return;
    atomic_store(&r->cancel, true);
    atomic_store(&g->cancel_flag, 1); /* running tasks that poll it stop early */
    tsr_graph_run_wait(g, -1);
    pthread_cond_destroy(&r->done);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->ovf_lock);
    pthread_mutex_destroy(&r->lock);
    run_free_memory(g->mem, r);
    g->run = NULL;
}
