/*
 * graph_internal.h - what a task graph holds (private to engine/graph/).
 *
 * Storage. Tasks and data handles live in chunks of GRAPH_CHUNK entries whose
 * addresses never change, so the public handles (tsr_task_t *, tsr_data_t *)
 * are plain pointers into them and stay valid while the graph grows; inside
 * the executor tasks are named by their 32-bit index. A task's input and
 * output handles are a slice of one shared array (refs), so adding a task
 * allocates nothing per task once the arrays have grown.
 *
 * Dependencies. Each data handle records the task that writes it (producer,
 * set when that task is added). Submit turns "task t reads a handle whose
 * producer is p" into an edge p -> t, in one CSR array of successors
 * (succ_off/nsucc per task), and sets each task's pending count to its number
 * of in-edges (a task reading two outputs of p has two edges from p: counts
 * and decrements stay consistent without deduplication).
 *
 * Threading. Before submit everything is touched by the user's thread only.
 * After submit the executor (graph_run.c) writes task state, timing and
 * status from its threads; a task's fields are written by the one thread that
 * runs it, and published to the tasks that depend on it by the acq_rel
 * decrement of their pending counts. The user's thread reads states with
 * atomic loads and everything else after the graph has ended (wait).
 */
#ifndef TSR_GRAPH_GRAPH_INTERNAL_H
#define TSR_GRAPH_GRAPH_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/context_internal.h"
#include "core/error.h"
#include "core/mem.h"
#include "table/table.h"
#include "tessera/graph.h"

#define GRAPH_CHUNK_SHIFT 10
#define GRAPH_CHUNK (1u << GRAPH_CHUNK_SHIFT)
#define GRAPH_NONE UINT32_MAX /* "no task" index */
#define GRAPH_MAX_TASKS (UINT32_MAX - 1u)

typedef enum graph_builtin {
    GRAPH_USER = 0, /* a registered kind: def->cpu */
    GRAPH_SQL,
    GRAPH_CONCAT,
    GRAPH_IDENTITY,
} graph_builtin_t;

/* A registered task kind (a copy of the user's tsr_task_def_t). */
typedef struct graph_kind {
    char *name;                /* owned */
    graph_builtin_t builtin;
    tsr_task_fn_t cpu;         /* GRAPH_USER */
    tsr_task_fn_t opencl;      /* GRAPH_USER, optional (graph_opencl.c) */
    tsr_task_fn_t cuda;        /* GRAPH_USER, optional (graph_cuda.c) */
    char *opencl_kernel;       /* owned, may be NULL */
    char *cuda_kernel;         /* owned, may be NULL */
    char *plugin;              /* owned: the plugin that brought it; NULL in-process */
} graph_kind_t;

/* A loaded plugin: what a cluster needs to load it on a worker too. */
typedef struct graph_plugin {
    void *lib;  /* dlopen handle */
    char *name; /* owned */
    char *path; /* owned, as given */
} graph_plugin_t;

/* The value a handle holds. A table value either owns its table or borrows
 * one (a catalog table, or another handle's value via "identity"). */
typedef struct graph_value {
    tsr_data_kind_t kind;
    void *bytes;          /* BYTES: owned buffer */
    size_t len;
    bool bytes_borrowed;  /* BYTES: bytes belong to another handle */
    tsr_table_t *table;   /* TABLE */
    bool table_owned;
    size_t *batch_start;  /* TABLE: nbatches + 1 row prefix sums (owned) */
} graph_value_t;

struct tsr_data {
    tsr_graph_t *graph;   /* the graph it belongs to (checked when used) */
    uint32_t index;       /* position among the graph's handles */
    uint32_t producer;    /* index of the task writing it; GRAPH_NONE */
    bool has_value;       /* created with a value (an input of the graph) */
    char *name;           /* owned; NULL when unnamed */
    graph_value_t v;
};

struct tsr_task {
    tsr_graph_t *graph;
    uint32_t index;
    /* executor state (graph_run.c) */
    atomic_uint pending;        /* in-edges not yet satisfied */
    atomic_uint state;          /* tsr_task_state_t */
    atomic_uint upstream_failed;/* set by a failed predecessor before its decrement */
    atomic_uint cause;          /* the failed task this one's failure comes from,
                                   GRAPH_NONE when it failed by itself */
    uint32_t succ_off, nsucc;   /* successors in graph->succ */
    uint32_t in_off, nin;       /* inputs in graph->refs */
    uint32_t out_off, nout;     /* outputs in graph->refs, after the inputs */
    const graph_kind_t *kind;
    tsr_status_t status;
    unsigned thread;
    uint64_t t_queued, t_start, t_end;
    /* what it was given */
    char *label;                /* owned, NULL: "<kind>#<index>" made on demand */
    char *sql;                  /* owned ("sql") */
    char *param;                /* owned, may be NULL */
    void *arg;
    char *message;              /* owned failure message, NULL when none */
    char device[16];            /* tsr_graph_task_set_device ("" none): for a cluster */
};

typedef struct graph_run graph_run_t; /* the executor of one submit (graph_run.c) */

struct tsr_graph {
    tsr_context_t *ctx;
    tsr_mem_t *mem;             /* the context's allocator */
    tsr_graph_params_t params;  /* scheduler: NULL (kept as a copy below) */
    char *scheduler;            /* owned copy of params.scheduler */
    char *token_file;           /* owned copy of params.token_file */
    void *remote_state;         /* params.remote's, from submit to destroy */
    tsr_task_t **tchunks;       /* chunks of GRAPH_CHUNK tasks */
    size_t ntchunks, tchunks_cap;
    uint32_t ntasks;
    tsr_data_t **dchunks;       /* chunks of GRAPH_CHUNK handles */
    size_t ndchunks, dchunks_cap;
    uint32_t ndata;
    tsr_data_t **refs;          /* task inputs and outputs, sliced per task */
    size_t nrefs, refs_cap;
    graph_kind_t **kinds;       /* registered kinds (each its own allocation:
                                   tasks point at them), built-ins first */
    size_t nkinds, kinds_cap;
    size_t last_kind;           /* index of the kind the last task used */
    graph_plugin_t *plugins;    /* loaded plugins, closed at destroy */
    size_t nplugins, plugins_cap;
    bool holds_catalog;         /* counted in ctx->live_results (catalog tables used) */
    bool submitted;
    bool cancel_early;          /* cancelled before submit */
    bool run_here;              /* tsr_graph_run_here: one thread, run by the waiter */
    uint32_t *succ;             /* CSR successors, built at submit */
    graph_run_t *run;           /* the executor, from submit to destroy */
    atomic_flag sql_pool_busy;  /* one "sql" task at a time uses the context's pool */
    struct graph_cl_cache *cl_cache; /* programs of tsr_task_opencl_program
                                        (graph_opencl.c), NULL until one */
    atomic_int cancel_flag;     /* set by tsr_graph_cancel / destroy: what running
                                   tasks poll (tsr_task_cancelled, "sql" tasks'
                                   executor), beside the context's cancel token */
};

/* Is the graph cancelled: its own flag or its context's cancel token
 * (context.h)? Two relaxed loads: tasks poll it between chunks of work. */
static inline bool tsr_graph_is_cancelled(const tsr_graph_t *g)
{
    const atomic_int *tok = tsr__context_cancel_flag(g->ctx);
    return atomic_load_explicit(&g->cancel_flag, memory_order_relaxed) != 0 ||
           (tok && atomic_load_explicit(tok, memory_order_relaxed) != 0);
}

static inline tsr_task_t *graph_task(const tsr_graph_t *g, uint32_t i)
{
    return &g->tchunks[i >> GRAPH_CHUNK_SHIFT][i & (GRAPH_CHUNK - 1)];
}

static inline tsr_data_t *graph_data_at(const tsr_graph_t *g, uint32_t i)
{
    return &g->dchunks[i >> GRAPH_CHUNK_SHIFT][i & (GRAPH_CHUNK - 1)];
}

/* What a running task function sees (one on the stack of the running thread). */
struct tsr_task_ctx {
    tsr_graph_t *graph;
    tsr_task_t *task;
    unsigned thread;
    void *cl_queue; /* the run's cl_command_queue while an opencl function runs */
    void *cuda_stream; /* the run's cudaStream_t while a cuda function runs */
    int cuda_device;   /* its device's runtime ordinal (valid with cuda_stream) */
};

/* ---- graph.c ------------------------------------------------------------------ */

/* The task's label, or "<kind>#<index>" written into buf. */
const char *tsr_graph_task_label(const tsr_task_t *t, char *buf, size_t cap);
/* A handle's name, or "#<index>" written into buf. */
const char *tsr_graph_data_label(const tsr_data_t *d, char *buf, size_t cap);
/* Frees a handle's value (not the handle). */
void tsr_graph_value_free(tsr_mem_t *mem, graph_value_t *v);

/* ---- graph_kinds.c -------------------------------------------------------------- */

/* Frees one kind. */
void tsr_graph_kind_free(tsr_mem_t *mem, graph_kind_t *k);
/* Copies def into the kind table; fails on a taken name (plugin: the
 * plugin's name, or NULL). */
tsr_status_t tsr_graph_kind_add(tsr_graph_t *g, const char *name, graph_builtin_t builtin,
                                const tsr_task_def_t *def, const char *plugin, tsr_error_t *err);

/* ---- graph_run.c ---------------------------------------------------------------- */

/* Validates (cycles, dangling handles), builds the successor lists and
 * starts the executor threads. Errors go to err. */
tsr_status_t tsr_graph_run_start(tsr_graph_t *g, tsr_error_t *err);
/* Before submit: a graph of params.threads == 1 starts no thread; its tasks
 * run on the thread that waits (or destroys it). For callers that submit and
 * wait at once (a cluster worker's one-task graphs): no thread start and no
 * cross-core wake-up per graph. Cancel still works (tasks poll the flags). */
void tsr_graph_run_here(tsr_graph_t *g);
/* Waits for the run's end (timeout_ms < 0: forever); TSR_ERR_TIMEOUT. */
tsr_status_t tsr_graph_run_wait(tsr_graph_t *g, long timeout_ms);
void tsr_graph_run_cancel(tsr_graph_t *g);
/* Cancels, waits for the end, joins and frees the executor. */
void tsr_graph_run_free(tsr_graph_t *g);

/* ---- graph_opencl.c: OpenCL implementations of user kinds -------------------------- */

/* Whether task t runs its kind's opencl function: the kind has one and the
 * graph's context has an OpenCL device. */
bool tsr_graph_cl_wanted(const tsr_graph_t *g, const tsr_task_t *t);
/* Runs t's opencl function with a queue of its own in tc (made here,
 * finished and released after); errors become the task's message. */
tsr_status_t tsr_graph_cl_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout);
/* Makes the program cache (a kind with an opencl function is registered;
 * before submit, one thread). */
tsr_status_t tsr_graph_cl_prepare(tsr_graph_t *g, tsr_error_t *err);
/* Releases the program cache (graph destroy). */
void tsr_graph_cl_free(tsr_graph_t *g);

/* ---- graph_cuda.c: CUDA implementations of user kinds ------------------------------ */

/* Whether task t runs its kind's cuda function: the kind has one and the
 * graph's context has a CUDA device. */
bool tsr_graph_cuda_wanted(const tsr_graph_t *g, const tsr_task_t *t);
/* Runs t's cuda function on the graph thread with the device current and a
 * stream of its own in tc (made here, synchronized and destroyed after);
 * CUDA errors become the task's message. */
tsr_status_t tsr_graph_cuda_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                tsr_data_t *const *out, size_t nout);

/* ---- graph_ops.c: built-in kinds and writing values --------------------------------- */

/* Runs a built-in kind on task t (inputs and outputs from g->refs). */
tsr_status_t tsr_graph_op_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout);
/* Sets a handle's value to table (owned or borrowed), computing the row index. */
tsr_status_t tsr_graph_value_set_table(tsr_mem_t *mem, graph_value_t *v, tsr_table_t *table,
                                       bool owned);

#endif /* TSR_GRAPH_GRAPH_INTERNAL_H */
