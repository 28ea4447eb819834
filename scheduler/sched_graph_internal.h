/*
 * sched_graph_internal.h - a graph job's state on the scheduler, shared by
 * sched_graph.c (decoding, placing, answering, failing the job) and
 * sched_graph_values.c (where values live, freeing them, and lineage).
 * Everything runs on the scheduler's one thread (sched_internal.h).
 */
#ifndef TSR_SCHED_GRAPH_INTERNAL_H
#define TSR_SCHED_GRAPH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched_internal.h"

#define MAX_ATTEMPTS 4
#define MAX_GRAPH_TABLES 64
#define MAX_RERUNS_PER_TASK 4            /* lineage re-runs per task of the job, in total */
#define DEFAULT_INLINE_MAX (64u * 1024u) /* docs/cluster.md "Data movement" */
#define GRAPH_TASK_VERSION 4             /* TASK_GRAPH (worker_graph.c) */
#define DEFAULT_PIPELINE 4 /* tasks sent ahead per worker and job (sched_graph_pipe.c) */

/* A task's state: WAITING (inputs not all DONE: `waiting` counts them, per
 * input edge), QUEUED (in the placer's queues), INFLIGHT (sent), DONE. */
enum { T_WAITING = 0, T_QUEUED = 1, T_INFLIGHT = 2, T_DONE = 3 };

typedef struct ginput {
    uint8_t is_task;
    uint32_t index;
} ginput_t;

typedef struct sgraph sgraph_t;

typedef struct gtask {
    sgraph_t *g;
    const char *id, *kind, *sql, *param; /* into the request */
    const char *need, *prefer;           /* device constraint (version 2), "" none */
    bool sink;
    size_t in_at, nin; /* slice of g->inputs */
    size_t waiting;    /* task inputs not finished yet */
    size_t readers;    /* tasks that read this one and have not finished */
    int worker;        /* the worker it was last sent to */
    int avoid;         /* a worker it was lost on (placement avoids it), -1 none */
    unsigned attempts;
    uint8_t state; /* T_WAITING .. T_DONE */
    /* pipelining (sched_graph_pipe.c): sent ahead of its inputs to the
     * worker running them (not through the placer's slots); keep_local: its
     * last payload asked the worker to keep a copy of an inline output for
     * readers sent ahead there */
    bool piped, keep_local;
    /* its value, once DONE: inline (val into reply) or kept on holder */
    bool kept;
    bool released;   /* let go (no reader left): a re-run of a reader re-runs it */
    int holder;      /* kept: the worker slot keeping it */
    uint64_t vsize;  /* bytes (placement: a reader's home holds its largest input) */
    const void *val; /* inline: the value's bytes within reply */
    size_t vlen;
    uint64_t ready_ns, sent_ns, done_ns; /* since the job started (reply trailer) */
    tsr_wbuf_t payload;                  /* the TASK_GRAPH request, while in flight */
    tsr_rpc_msg_t reply;                 /* the answer holding an inline value, while needed */
    tsr_pq_item_t pq;                    /* its place in the placer's queues (item_task finds t) */
} gtask_t;

struct sgraph {
    sched_t *s;
    uint64_t id;
    tsr_rpc_req_t *req; /* the client's; NULL once answered */
    tsr_rpc_msg_t reqmsg;
    char delim;
    size_t ntables;
    const char *tnames[MAX_GRAPH_TABLES], *tpaths[MAX_GRAPH_TABLES], *tschemas[MAX_GRAPH_TABLES];
    size_t ntasks, ninputs, finished_tasks, outstanding;
    gtask_t *tasks;
    ginput_t *inputs;
    size_t *succ_at, *succ; /* CSR: the tasks reading task i */
    size_t inflight;
    size_t reruns;       /* lineage re-runs so far (bounded) */
    uint64_t inline_max; /* values up to this size travel inline */
    size_t nkept;        /* values kept on workers (moved directly), for the log */
    uint64_t kept_bytes, inline_bytes;
    bool finished;
    sactive_t act;      /* in the scheduler's cancellable jobs while running */
    unsigned pipe_max;  /* tasks sent ahead per worker (0: no pipelining) */
    uint32_t *piped_on; /* per worker slot: tasks sent ahead and not answered */
    uint8_t *copies_on; /* per worker slot: it may keep local copies (dropped at the end) */
    size_t pipe_cap;    /* entries of piped_on and copies_on */
    size_t npiped;      /* tasks sent ahead so far (the log) */
    uint64_t started_ms;
    uint64_t started_ns;
    tsr_progress_t prog;
    sprog_t sprog;
};

/* ---- sched_graph.c -------------------------------------------------------------- */

/* ns since the job started (its absolute start while started_ns is 0). */
uint64_t tsr_sgraph_now_ns(const sgraph_t *g);
/* Fails the job with st and msg (answers the client, ends it; g may be freed). */
void tsr_sgraph_fail_msg(sgraph_t *g, tsr_status_t st, const char *msg);
/* Task t is ready (again): into the placer's queues at its home. false: the
 * job has failed (g may be gone). The caller pumps. */
bool tsr_sgraph_enqueue(sgraph_t *g, gtask_t *t);
/* The answer of a TASK_GRAPH call (arg: the gtask_t). */
void tsr_sgraph_on_task_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply);
/* Frees g once it has finished and nothing of it is outstanding. */
void tsr_sgraph_maybe_free(sgraph_t *g);

/* ---- sched_graph_pipe.c (pipelining, docs/cluster.md "Pipelining") -------------- */

/* Should t, about to be sent to worker wi, keep a local copy of an inline
 * output (a reader of it may be sent ahead there)? */
bool tsr_sgraph_wants_copy(sgraph_t *g, const gtask_t *t, int wi);
/* t is in flight on worker wi: sends ahead the readers of t (and, through
 * the tasks already sent ahead there, of theirs) whose every unfinished
 * input is in flight on wi, within the job's bound per worker. */
void tsr_sgraph_pipeline(sgraph_t *g, gtask_t *t, int wi);
/* A task sent ahead to worker wi was answered: its bound is freed. */
void tsr_sgraph_pipe_done(sgraph_t *g, int wi);
/* The job ends: workers that may keep local copies drop the job's values. */
void tsr_sgraph_pipe_end(sgraph_t *g);

/* ---- sched_graph_values.c ------------------------------------------------------- */

/* The TASK_GRAPH request (version 4) of t for worker wi into t->payload;
 * an input not DONE (t sent ahead: sched_graph_pipe.c) goes as src 4. */
void tsr_sgraph_build_payload(sgraph_t *g, gtask_t *t, int wi);
/* Reads a version 3 answer: {u8 form: 0 value | 1 u8 kind, u64 rows,
 * u64 size}. false: malformed. */
bool tsr_sgraph_read_answer(const tsr_rpc_msg_t *reply, bool *kept, tsr_value_t *v, uint64_t *rows,
                            uint64_t *size);
/* VALUE_DROP to worker wi (best effort): the n values (job, tasks[i]), or
 * all of the job (n == 0); nothing for a dead worker. */
void tsr_sgraph_send_drop(sched_t *s, int wi, uint64_t job, const uint32_t *tasks, size_t n);
/* Lets t's value go: its holder drops it, or its inline bytes are freed. */
void tsr_sgraph_release_value(sgraph_t *g, gtask_t *t);
/* Task inputs of t that are not DONE (per edge). */
size_t tsr_sgraph_count_waiting(const sgraph_t *g, const gtask_t *t);
/* Lineage budget: false (the job has failed) when spent. */
bool tsr_sgraph_rerun_ok(sgraph_t *g);
/* Is DONE task q's value gone (let go, or kept by a worker that died)? */
bool tsr_sgraph_value_gone(const sgraph_t *g, const gtask_t *q);
/* Lineage: DONE task p's value is gone; p runs again (see the .c). */
void tsr_sgraph_unfinish(sgraph_t *g, gtask_t *p);
/* t answered TSR_ERR_STALE: re-runs the inputs it lost, then t. false: the
 * answer is not a well-formed lost-inputs answer (a plain error). */
bool tsr_sgraph_inputs_lost(sgraph_t *g, gtask_t *t, const tsr_rpc_msg_t *reply);

#endif /* TSR_SCHED_GRAPH_INTERNAL_H */
