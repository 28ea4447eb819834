/*
 * worker_task.h - what a worker computes for one task (worker_task.c); the
 * daemon around it (joining, heartbeats, the queue) is worker.c.
 *
 * Tasks run on the worker's executor thread, one at a time, each in its own
 * engine context. A byte range loaded by INFER is kept (keyed by job and
 * range) so the RUN that usually follows on the same worker does not parse it
 * again; RUN on any other worker (a re-run after a failure) loads it anew.
 */
#ifndef TSR_SCHED_WORKER_TASK_H
#define TSR_SCHED_WORKER_TASK_H

#include <stdint.h>

#include "proto.h"

#define TSR_RANGE_CACHE 16
#define TSR_WTASK_MAX_LOST 64

typedef struct tsr_range_cache_entry {
    uint64_t job;
    uint32_t range;
    tsr_context_t *ctx; /* NULL: free slot */
    uint64_t stamp;     /* insertion order, for eviction */
    char mpath[64];     /* the memfd path it was registered under (error mapping) */
    uint64_t header_lines;
} tsr_range_cache_entry_t;

typedef struct tsr_wtask_env {
    tsr_mem_t *mem;
    unsigned threads;
    const char *device; /* tsr_context_set_device name for every task context */
    /* the device, opened once (at the first task that needs it) in a context
     * of its own and lent to every task context (tsr__context_borrow_device):
     * opening an OpenCL device and building its kernels costs about 0.2 s,
     * more than most tasks; NULL until then, or on cpu */
    tsr_context_t *dev_owner;
    tsr_range_cache_entry_t cache[TSR_RANGE_CACHE];
    uint64_t stamp;
    /* task-graph plugins (tessera worker --plugin): every graph task loads
     * them all into its graph; the worker keeps each dlopen'ed for its whole
     * life, so a task's load finds the library already mapped */
    const char *const *plugins;
    size_t nplugins;
    void **plugin_handles;
    /* graph values kept on this worker and fetched from peers (GRAPH
     * version 3, docs/cluster.md "Data movement"); NULL: version 3 tasks
     * keep nothing and read only inline inputs */
    struct tsr_wvalues *values;
    struct tsr_vfetch *fetch;
    struct tsr_transport *t; /* the worker's (releases fetched values) */
    uint32_t node_id; /* this worker's transport node id: a kept input here is local */
    int fetch_timeout_ms;
    /* the inputs the last task could not get (TSR_ERR_STALE): {task, node id} */
    uint32_t lost[TSR_WTASK_MAX_LOST][2];
    size_t nlost;
    /* the last task's output stayed here (for the worker's log) */
    bool kept;
    uint64_t kept_job, kept_bytes;
    uint32_t kept_task;
    /* the last task was sent ahead and did not run: an input it reads on
     * this worker was not produced (GRAPH version 4; for the worker's log) */
    bool not_run;
    /* installed on every task's context (NULL: none): set by TASK_DROP while
     * a task of the dropped job runs, so its query or graph stops at its next
     * batch (context.h); owned here (freed by tsr_wtask_env_free), reset by
     * worker.c before each task */
    tsr_cancel_t *cancel;
} tsr_wtask_env_t;

/* Opens the n plugins at paths (kept open until tsr_wtask_env_free) and
 * checks that they load together into a graph (API version, no kind twice).
 * Errors: TSR_ERR_NOT_FOUND (cannot load), TSR_ERR_UNSUPPORTED, TSR_ERR_EXISTS. */
tsr_status_t tsr_wtask_env_load_plugins(tsr_wtask_env_t *env, const char *const *paths, size_t n,
                                        tsr_error_t *err);

/* Runs one task message (type and payload) and writes the response payload
 * into out: a result/info on TSR_OK, an error payload otherwise. A GRAPH
 * version 3 task that could not get a kept input (its producer is gone or
 * no longer has it) returns TSR_ERR_STALE, and its error payload is
 * followed by {u32 n x {u32 task, u32 node id}}: the inputs it lost. */
tsr_status_t tsr_wtask_run(tsr_wtask_env_t *env, uint16_t type, const void *data, size_t len,
                           tsr_wbuf_t *out);
void tsr_wtask_env_free(tsr_wtask_env_t *env);

/* For worker_graph.c: a task's fresh engine context (on env's device), the
 * worker's plugins loaded into graph g, and the GRAPH task itself. */
tsr_status_t tsr_wtask_new_context(tsr_wtask_env_t *env, tsr_context_t **out, tsr_error_t *e);
tsr_status_t tsr_wtask_load_plugins(const tsr_wtask_env_t *env, tsr_context_t *ctx, tsr_graph_t *g,
                                    tsr_error_t *e);
tsr_status_t tsr_wtask_graph(tsr_wtask_env_t *env, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_error_t *e);
/* The job a task message belongs to (INFER, RUN, WHOLE with its job field,
 * GRAPH version 2 to 4); false when it names none (an older scheduler's
 * WHOLE, GRAPH version 1) or is malformed. */
bool tsr_wtask_job_of(uint16_t type, const void *data, size_t len, uint64_t *job);

#endif /* TSR_SCHED_WORKER_TASK_H */
