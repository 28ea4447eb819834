/*
 * tessera/graph.h - task graphs: tasks connected by data handles.
 *
 * A graph is a set of tasks. A task is a built-in operator ("sql", "concat",
 * "identity") or a user task registered by name, either in-process with a
 * function pointer (tsr_graph_register) or from a plugin library
 * (tsr_graph_load_plugin). Tasks read and write *data handles*; a handle holds
 * a table or a byte buffer, or nothing yet. The engine infers the dependencies
 * from the handles: a task runs once every handle it reads has been written by
 * the task that produces it (no explicit edges).
 *
 *   tsr_graph_t *g;        tsr_graph_create(ctx, NULL, &g);
 *   tsr_data_t *sales, *totals;
 *   tsr_graph_data_table(g, "sales", &sales);        // a table of the context
 *   tsr_graph_data(g, "totals", &totals);            // written by a task
 *   tsr_task_params_t p = {.kind = "sql", .sql = "SELECT k, SUM(v) FROM sales GROUP BY k",
 *                          .ninputs = 1, .inputs = &sales, .noutputs = 1, .outputs = &totals};
 *   tsr_graph_add(g, &p, NULL);
 *   tsr_graph_submit(g);                    // returns at once; tasks run on threads
 *   tsr_graph_wait(g, -1);                  // or a timeout in ms
 *   ... tsr_data_row_count(totals) ...
 *   tsr_graph_destroy(g);
 *
 * Life cycle. Build (create handles, register task kinds, add tasks), submit
 * once, wait, read, destroy. A graph cannot be changed or re-submitted after
 * submit. Submit checks the graph: a cycle (TSR_ERR_INVALID_ARG, the message
 * names the tasks on it) or a handle that a task reads but nothing writes
 * (TSR_ERR_INVALID_ARG, "dangling") is refused and nothing runs.
 *
 * Execution. Embedded (no scheduler address), tasks run on threads the graph
 * run owns (as many as the context's pool by default); the cluster mode
 * (params.scheduler with params.remote = tsr_graph_cluster()) sends the graph
 * to the scheduler, which runs its tasks on workers (docs/graph.md "On a
 * cluster": user kinds must come from plugins the workers load too). While
 * a graph runs, the context must not be used for anything else (it is not
 * thread-safe; on a cluster the results are copied into the handles by the
 * backend's thread), including running a second graph:
 * one graph runs at a time per context (graphs may be built meanwhile). The
 * tsr_graph_, tsr_task_ and tsr_data_ read calls below may be called from the
 * thread that submitted.
 *
 * Outcomes. Each task ends DONE, FAILED or CANCELLED. A task that fails (its
 * function returns an error) fails every task that depends on it, directly or
 * not, with the same status and a message naming the first failed task; tasks
 * that do not depend on it still run. tsr_graph_cancel stops tasks that have
 * not started (CANCELLED) and asks running ones to stop: "sql" tasks stop
 * at their next batch, user tasks when they poll tsr_task_cancelled; a
 * running task that then returns an error ends CANCELLED (one that finishes
 * anyway ends DONE). Task functions run on graph threads, concurrently with
 * each other: they must not use the context.
 *
 * Ownership. The graph owns every handle and task; both live until
 * tsr_graph_destroy, and so do the tables and buffers they hold (values
 * read from handles are valid until then). A graph must be destroyed before its
 * context. Tables of the context used by a graph are kept alive by it even if
 * replaced in the meantime.
 */
#ifndef TESSERA_GRAPH_H
#define TESSERA_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tessera/context.h"
#include "tessera/status.h"
#include "tessera/table.h"
#include "tessera/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tsr_graph tsr_graph_t;
typedef struct tsr_task tsr_task_t;         /* a task of a graph */
typedef struct tsr_data tsr_data_t;         /* a data handle of a graph */
typedef struct tsr_task_ctx tsr_task_ctx_t; /* what a running task function sees */

/* ---- graphs ------------------------------------------------------------------ */

struct tsr_graph_remote;

typedef struct tsr_graph_params {
    unsigned threads;      /* embedded: threads running tasks; 0 = the context pool's size */
    const char *scheduler; /* "HOST:PORT" of a cluster scheduler; NULL = embedded */
    bool no_timing;        /* true: skip the per-task clock reads (timings read as 0) */
    /* cluster mode (scheduler != NULL): */
    const char *token_file; /* the cluster token; NULL = $TESSERA_TOKEN_FILE, else
                               ~/.config/tessera/token */
    const struct tsr_graph_remote *remote; /* the cluster backend: tsr_graph_cluster()
                                              (tessera_scheduler library); NULL with a
                                              scheduler: submit fails, TSR_ERR_UNAVAILABLE */
    long connect_timeout_ms; /* cluster: connecting and authenticating; 0 = 5000 */
} tsr_graph_params_t;

/* A cluster backend: how a graph with params.scheduler runs. The engine
 * library does not depend on the cluster layer; the tessera_scheduler library
 * provides one (scheduler/graph_client.c), returned by tsr_graph_cluster()
 * (declared here, defined there: link tessera_scheduler to call it).
 * submit checks and sends the graph (errors in the graph's context, nothing
 * runs); the others act on the state it returned. wait returns TSR_OK once
 * every task has ended (their states, statuses, messages and timings are then
 * set), TSR_ERR_TIMEOUT before. */
typedef struct tsr_graph_remote {
    const char *name;
    tsr_status_t (*submit)(tsr_graph_t *graph, void **state);
    tsr_status_t (*wait)(void *state, long timeout_ms);
    void (*cancel)(void *state);
    void (*destroy)(void *state); /* cancels, frees; bounded (does not wait for the job) */
} tsr_graph_remote_t;

const tsr_graph_remote_t *tsr_graph_cluster(void);

/* params may be NULL for defaults. */
tsr_status_t tsr_graph_create(tsr_context_t *ctx, const tsr_graph_params_t *params,
                              tsr_graph_t **out);
/* Cancels a running graph, waits for its running tasks, frees everything. */
void tsr_graph_destroy(tsr_graph_t *graph);

/* ---- data handles ------------------------------------------------------------ */

typedef enum tsr_data_kind {
    TSR_DATA_EMPTY = 0, /* no value (yet): written by a task, or left empty by it */
    TSR_DATA_BYTES = 1, /* an opaque byte buffer */
    TSR_DATA_TABLE = 2, /* a table */
} tsr_data_kind_t;

/* A handle a task will write. name (may be NULL) is how "sql" tasks that read
 * it refer to it and how messages name it; names are letters, digits and '_'. */
tsr_status_t tsr_graph_data(tsr_graph_t *graph, const char *name, tsr_data_t **out);
/* A handle holding a copy of len bytes. */
tsr_status_t tsr_graph_data_bytes(tsr_graph_t *graph, const char *name, const void *bytes,
                                  size_t len, tsr_data_t **out);
/* A handle holding the context's table `table` (not copied), named after it.
 * A table loaded lazily from CSV is loaded in full now (its errors, e.g.
 * TSR_ERR_BAD_INPUT, are reported here). TSR_ERR_NOT_FOUND: no such table. */
tsr_status_t tsr_graph_data_table(tsr_graph_t *graph, const char *table, tsr_data_t **out);

tsr_data_kind_t tsr_data_kind(const tsr_data_t *data);
const char *tsr_data_name(const tsr_data_t *data); /* "" when unnamed */
/* The bytes of a BYTES handle (NULL, *len 0 otherwise); len may be NULL. */
const void *tsr_data_bytes(const tsr_data_t *data, size_t *len);

/* Reading a TABLE handle, as a tsr_result_t is read (tessera/query.h): NULLs
 * and out-of-range reads give 0/0.0/""/false; other kinds have 0 rows and columns. */
size_t tsr_data_row_count(const tsr_data_t *data);
size_t tsr_data_column_count(const tsr_data_t *data);
const char *tsr_data_column_name(const tsr_data_t *data, size_t col);
tsr_type_t tsr_data_column_type(const tsr_data_t *data, size_t col);
bool tsr_data_is_null(const tsr_data_t *data, size_t row, size_t col);
int64_t tsr_data_int64(const tsr_data_t *data, size_t row, size_t col);
double tsr_data_double(const tsr_data_t *data, size_t row, size_t col);
bool tsr_data_bool(const tsr_data_t *data, size_t row, size_t col);
const char *tsr_data_string(const tsr_data_t *data, size_t row, size_t col, size_t *len);

/* ---- task kinds ---------------------------------------------------------------- */

/* A task function: reads inputs, writes outputs with tsr_data_set_* (an output
 * it leaves alone stays EMPTY, which is fine for pure ordering). Returns TSR_OK,
 * or an error (tsr_task_fail records a message with it). Runs on a graph thread. */
typedef tsr_status_t (*tsr_task_fn_t)(tsr_task_ctx_t *tc, const tsr_data_t *const *inputs,
                                      size_t ninputs, tsr_data_t *const *outputs,
                                      size_t noutputs);

typedef struct tsr_task_def {
    const char *name;          /* the kind tasks name in tsr_task_params_t.kind */
    tsr_task_fn_t cpu;         /* the CPU implementation (required: the fallback) */
    const char *opencl_kernel; /* optional kernel names, recorded for device-aware */
    const char *cuda_kernel;   /*   placement by the cluster scheduler (NULL: none) */
    /* Plugin API version 2 (fields added at the end; a version 1 plugin's
     * array has the four fields above only): */
    tsr_task_fn_t opencl;      /* optional OpenCL implementation: a host function
                                  that drives the device (tsr_task_opencl); runs
                                  instead of cpu when the graph's context has an
                                  OpenCL device (tsr_context_set_device, a worker's
                                  --device opencl0), cpu everywhere else. A kind
                                  with one and no opencl_kernel name records its
                                  own name there (so placement prefers OpenCL). */
    /* Plugin API version 3 (a version 2 plugin's array ends above): */
    tsr_task_fn_t cuda;        /* optional CUDA implementation: a host function that
                                  launches its own kernels on the stream of
                                  tsr_task_cuda; runs instead of cpu (and opencl)
                                  when the graph's context has a CUDA device
                                  (tsr_context_set_device(ctx, "cuda0"), a worker's
                                  --device cuda0), cpu everywhere else. A kind with
                                  one and no cuda_kernel name records its own name
                                  there (so placement prefers CUDA). */
} tsr_task_def_t;

/* Registers a task kind with this graph (name copied; the function pointer
 * must stay valid). TSR_ERR_EXISTS when the name is taken (built-ins included). */
tsr_status_t tsr_graph_register(tsr_graph_t *graph, const tsr_task_def_t *def);

/* A plugin is a shared library that exports
 *     const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count);
 * returning a static array of count task kinds (NULL when it does not support
 * api_version). tsr_graph_load_plugin dlopens `path` and registers its kinds;
 * `name` identifies the plugin in messages (and, in cluster mode, to the workers
 * that load it too). The library stays loaded until the graph is destroyed.
 * Its functions call the tsr_data_/tsr_task_ functions of the host program,
 * which must therefore export them (link it with -rdynamic / ENABLE_EXPORTS).
 * Errors: TSR_ERR_NOT_FOUND (cannot load, no tsr_plugin_tasks), TSR_ERR_UNSUPPORTED
 * (api version), TSR_ERR_EXISTS (a kind already registered). */
/* The host asks for version 3 first (tsr_task_def_t with .cuda), then 2
 * (the array read with the five fields of version 2: up to .opencl), then 1
 * (the four fields of version 1), so plugins built for any of them load. A
 * plugin answers the version it was built for (NULL to others). */
#define TSR_PLUGIN_API_VERSION 3u
typedef const tsr_task_def_t *(*tsr_plugin_tasks_fn)(unsigned api_version, size_t *count);
tsr_status_t tsr_graph_load_plugin(tsr_graph_t *graph, const char *name, const char *path);

/* ---- tasks --------------------------------------------------------------------- */

/* Built-in kinds:
 *   "sql"       runs params.sql over its inputs (tables, each named by its handle's
 *               name), writes the result table to its one output.
 *   "concat"    one output: the inputs' bytes one after the other, or their rows
 *               (tables of the same column types; names from the first).
 *   "identity"  one input, one output: the same value (shared, not copied). */
typedef struct tsr_task_params {
    const char *kind;                /* built-in or registered kind (required) */
    const char *label;               /* for status and messages; NULL = "<kind>#<n>" */
    size_t ninputs;
    tsr_data_t *const *inputs;       /* handles read (any graph handle) */
    size_t noutputs;
    tsr_data_t *const *outputs;      /* handles written: each by one task only, and
                                        not one created with a value */
    const char *sql;                 /* "sql": the SELECT to run */
    const char *param;               /* user kinds: a string for the function (copied;
                                        what a cluster can ship), tsr_task_param */
    void *arg;                       /* user kinds: a pointer for the function
                                        (in-process only), tsr_task_arg */
} tsr_task_params_t;

/* Adds a task; *out (may be NULL) receives its handle. Errors: TSR_ERR_NOT_FOUND
 * (unknown kind), TSR_ERR_INVALID_ARG (a handle of another graph, an output
 * written twice or that holds a value, wrong arity for a built-in, after submit). */
tsr_status_t tsr_graph_add(tsr_graph_t *graph, const tsr_task_params_t *params,
                           tsr_task_t **out);

/* The device a task must or should run on in cluster mode (docs/graph.md):
 * "cuda", "opencl", "gpu" or an indexed name ("cuda0", "opencl1") require a
 * worker of that device (a job no ready worker can run fails at submit with
 * TSR_ERR_UNAVAILABLE); "auto" prefers a GPU worker; "cpu", "" or NULL lift
 * the constraint (any worker). Without a call, a task whose kind has an
 * OpenCL/CUDA kernel prefers a worker of that backend. Embedded graphs
 * ignore it (the kind's opencl or cuda function runs when the context's
 * device is OpenCL or CUDA, its cpu function otherwise). Before submit only; errors:
 * TSR_ERR_INVALID_ARG (unknown word, after submit). tsr_task_device: the
 * word set, "" none. */
tsr_status_t tsr_graph_task_set_device(tsr_task_t *task, const char *device);
const char *tsr_task_device(const tsr_task_t *task);

size_t tsr_graph_task_count(const tsr_graph_t *graph);
tsr_task_t *tsr_graph_task_at(tsr_graph_t *graph, size_t i); /* in order added */

/* ---- running ------------------------------------------------------------------- */

/* Checks the graph and starts it; returns without waiting. */
tsr_status_t tsr_graph_submit(tsr_graph_t *graph);
/* Waits until every task has ended, at most timeout_ms (< 0: no limit; 0: poll).
 * Returns TSR_OK when every task ended DONE or CANCELLED, the status of the
 * first failed task when one failed (its message in tsr_context_last_error),
 * TSR_ERR_TIMEOUT when tasks are still pending or running at the deadline,
 * TSR_ERR_INVALID_ARG before submit. */
tsr_status_t tsr_graph_wait(tsr_graph_t *graph, long timeout_ms);
/* Tasks not started yet will not start (CANCELLED); running tasks are asked
 * to stop (tsr_task_cancelled turns true, "sql" tasks stop at their next
 * batch) and are not waited for here: tsr_graph_wait waits for them. A
 * context's cancel token (context.h) set while the graph runs acts the same.
 * Embedded, it may be called from any thread while the submitting thread
 * waits (after submit returned). Harmless before submit (the graph then runs
 * nothing) and after the end. */
void tsr_graph_cancel(tsr_graph_t *graph);

typedef struct tsr_graph_counts {
    size_t pending, ready, running, done, failed, cancelled;
} tsr_graph_counts_t;
void tsr_graph_counts(const tsr_graph_t *graph, tsr_graph_counts_t *out);

/* ---- task status --------------------------------------------------------------- */

typedef enum tsr_task_state {
    TSR_TASK_PENDING = 0,   /* waiting for inputs (or for submit) */
    TSR_TASK_READY = 1,     /* inputs ready, queued for a thread */
    TSR_TASK_RUNNING = 2,
    TSR_TASK_DONE = 3,
    TSR_TASK_FAILED = 4,    /* its function failed, or a task it depends on did */
    TSR_TASK_CANCELLED = 5,
} tsr_task_state_t;

/* "pending", "ready", "running", "done", "failed", "cancelled". */
const char *tsr_task_state_name(tsr_task_state_t state);

typedef struct tsr_task_info {
    tsr_task_state_t state;
    tsr_status_t status;    /* TSR_OK unless FAILED */
    const char *label;      /* params.label, or the kind's name when none */
    const char *kind;
    const char *message;    /* why it failed; "" otherwise */
    uint64_t queued_ns;     /* CLOCK_MONOTONIC: became ready / started / ended */
    uint64_t start_ns;      /*   (0 when not reached, or with params.no_timing) */
    uint64_t end_ns;
    unsigned thread;        /* the graph thread that ran it */
    const char *opencl_kernel; /* the kind's kernel names (tsr_task_def_t; the kind's
                                  name when it has an opencl function and no
                                  name); NULL: none */
    const char *cuda_kernel;   /* (the kind's name when it has a cuda function and
                                  no name) */
    const char *plugin;     /* the plugin that registered the kind; NULL: in-process */
} tsr_task_info_t;

tsr_task_state_t tsr_task_state(const tsr_task_t *task);
/* Stable once the task has ended; while it runs, fields may be mid-update. */
void tsr_task_info(const tsr_task_t *task, tsr_task_info_t *out);

/* ---- inside a task function ---------------------------------------------------- */

const char *tsr_task_param(const tsr_task_ctx_t *tc); /* params.param, "" when none */
void *tsr_task_arg(const tsr_task_ctx_t *tc);          /* params.arg */
unsigned tsr_task_thread(const tsr_task_ctx_t *tc);   /* 0..threads-1 */
/* True once the task's graph is cancelled: tsr_graph_cancel, tsr_graph_destroy
 * of a running graph, the context's cancel token (context.h), or, for a task
 * run by a cluster worker, the job's cancel reaching that worker. A long task
 * polls it between chunks of its work (it costs two relaxed atomic loads:
 * fine every few thousand rows, not per row) and, when true, returns early
 * with any error status (tsr_task_fail optional): the task then ends
 * CANCELLED, its outputs as it left them (read nothing from them), and
 * tasks that depend on it do not run. Returning TSR_OK instead ends it DONE. */
bool tsr_task_cancelled(const tsr_task_ctx_t *tc);
/* Records why the task fails; returns status (return it from the function). */
tsr_status_t tsr_task_fail(tsr_task_ctx_t *tc, tsr_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The OpenCL objects of a task running its kind's opencl function: the
 * context's cl_context, a cl_command_queue of this task run (in order; the
 * engine finishes and releases it after the function returns) and the
 * cl_device_id (void * so this header needs no CL header; any out may be
 * NULL). TSR_ERR_UNSUPPORTED (outs set to NULL) when the task runs its cpu
 * function. */
tsr_status_t tsr_task_opencl(tsr_task_ctx_t *tc, void **cl_context, void **cl_command_queue,
                             void **cl_device_id);
/* The cl_program built from source (named name in messages) for the task's
 * OpenCL device: built at first use, then cached by the graph (keyed by name
 * and text; released at tsr_graph_destroy), so concurrent tasks share one
 * build. Do not release it. A build failure records the compiler's log as
 * the task's message (the caller just returns the status); TSR_ERR_UNSUPPORTED
 * off OpenCL. */
tsr_status_t tsr_task_opencl_program(tsr_task_ctx_t *tc, const char *name, const char *source,
                                     void **cl_program);

/* The CUDA objects of a task running its kind's cuda function: a
 * cudaStream_t made for this task run (void * so this header needs no CUDA
 * header; non-blocking; the engine synchronizes and destroys it after the
 * function returns) and the device's runtime ordinal (the runtime's current
 * device is already that one on the calling thread). Either out may be NULL.
 * TSR_ERR_UNSUPPORTED (outs NULL and -1) when the task runs its cpu function.
 * After the function returns TSR_OK the engine fails the task anyway when
 * the stream's synchronization or the runtime's last error reports a CUDA
 * error (its cudaGetErrorString in the message), so a kernel fault the
 * function did not wait for still reaches the user (the last error is the
 * engine's runtime's: a plugin linking its own runtime checks its launches). */
tsr_status_t tsr_task_cuda(tsr_task_ctx_t *tc, void **cuda_stream, int *cuda_device);
/* Turns a CUDA runtime return code (a cudaError_t, as int) into the task's
 * outcome: 0 (cudaSuccess) returns TSR_OK and records nothing; any other
 * records "CUDA <what> failed on <device>: <cudaGetErrorName>:
 * <cudaGetErrorString>" as the task's message (tsr_task_fail) and returns
 * TSR_ERR_NOMEM for cudaErrorMemoryAllocation, TSR_ERR_DEVICE otherwise. It
 * also clears the engine runtime's last error. Usage:
 *     if ((rc = tsr_task_cuda_check(tc, cudaMalloc(&p, n), "cudaMalloc")) != TSR_OK)
 *         goto out;
 * Builds without CUDA record "CUDA <what> failed: error <code>". */
tsr_status_t tsr_task_cuda_check(tsr_task_ctx_t *tc, int cuda_error, const char *what);

/* Writing an output (each replaces an earlier value of the handle). */
tsr_status_t tsr_data_set_bytes(tsr_task_ctx_t *tc, tsr_data_t *out, const void *bytes,
                                size_t len);
/* A writable buffer of len bytes owned by the handle: fill it in place. */
void *tsr_data_alloc_bytes(tsr_task_ctx_t *tc, tsr_data_t *out, size_t len);
/* A table copied from columns (as tsr_table_register_columns takes them). */
tsr_status_t tsr_data_set_columns(tsr_task_ctx_t *tc, tsr_data_t *out, size_t ncols,
                                  const tsr_column_data_t *cols, size_t nrows);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_GRAPH_H */
