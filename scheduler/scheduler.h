/*
 * scheduler.h - the cluster processes and their clients, as the CLI uses them.
 *
 *   tsr_sched_run    the scheduler daemon (`tessera scheduler`)
 *   tsr_worker_run   the worker daemon (`tessera worker`)
 *   tsr_client_*     a client of a running scheduler (`tessera sql
 *                    --scheduler`, `tessera cluster status`)
 *
 * Daemons run until *stop becomes nonzero (the CLI's SIGTERM/SIGINT handler
 * sets it) or, for workers, until the scheduler is lost; they return a CLI
 * exit code. Logs are lines on params.log ("tessera scheduler: ...").
 * See docs/cluster.md for the protocol, authentication and failure handling.
 */
#ifndef TSR_SCHEDULER_H
#define TSR_SCHEDULER_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "tessera/lock.h"
#include "tessera/tessera.h"

/* Splits "HOST:PORT" (HOST may be empty: 127.0.0.1). false on bad syntax. */
bool tsr_sched_parse_addr(const char *text, char *host, size_t host_size, uint16_t *port);

typedef struct tsr_sched_params {
    const char *listen_host;    /* default 127.0.0.1 */
    uint16_t listen_port;       /* 0: any free port */
    const char *token_path;     /* resolved token file */
    const char *addr_file;      /* NULL, or where to write "HOST:PORT" once listening */
    int dead_ms;                /* a worker silent this long is dead (default 3000) */
    uint64_t min_range_bytes;   /* smallest CSV byte range per task (default 1 MiB) */
    unsigned ranges_per_worker; /* byte ranges per ready worker and file (default 2) */
    uint64_t broadcast_max;     /* joins: split the largest file only while the others,
                                   read whole by every range task, total at most this
                                   (0: default 64 MiB; docs/cluster.md) */
    const char *http_host;      /* NULL: no HTTP endpoint; else where it binds (http.h) */
    uint16_t http_port;         /* 0: any free port */
    bool http_auth;             /* HTTP requests need the bearer derived from the token */
    const char *http_addr_file; /* NULL, or where to write the HTTP "HOST:PORT" */
    const char *policy;         /* placement policy (policy.h): NULL = "locality" */
    unsigned slots;             /* tasks in flight per worker (0: default 2) */
    const char *data_dir;       /* NULL, or where the kv catalog persists (kv-catalog) */
    FILE *log;
    volatile sig_atomic_t *stop;
    int64_t kv_replace_after_ms; /* a kv replica's worker dead this long is replaced
                                    (kv_rebalance.c; 0: default 60 s; < 0: never) */
} tsr_sched_params_t;

int tsr_sched_run(const tsr_sched_params_t *p);

typedef struct tsr_worker_params {
    const char *sched_host;
    uint16_t sched_port;
    const char *token_path;
    const char *device;   /* "cpu", "opencl0", "cuda0", ... (validated) */
    const char *data_dir; /* may be NULL */
    unsigned threads;     /* executor threads per task; 0 = one per core */
    int dead_ms;          /* the scheduler silent this long is lost (default 3000) */
    FILE *log;
    volatile sig_atomic_t *stop;
    const char *const *plugins; /* task-graph plugin libraries (--plugin), loaded at start */
    size_t nplugins;
    const char *listen_host; /* its transport's listener (lock homes, peers): NULL 127.0.0.1 */
    uint16_t listen_port;    /* 0: any free port */
} tsr_worker_params_t;

int tsr_worker_run(const tsr_worker_params_t *p);

/* ---- client ------------------------------------------------------------------- */

typedef struct tsr_client tsr_client_t;

/* Connects and authenticates (timeout_ms bounds each step). Errors:
 * TSR_ERR_UNAVAILABLE (cannot reach), TSR_ERR_AUTH (token refused or missing). */
tsr_status_t tsr_client_connect(const char *host, uint16_t port, const char *token_path,
                                int timeout_ms, tsr_client_t **out, tsr_error_t *err);
void tsr_client_destroy(tsr_client_t *c);

typedef struct tsr_client_table {
    const char *name;
    const char *path;   /* made absolute by the client */
    const char *schema; /* NULL when none */
} tsr_client_table_t;

/* Runs sql on the cluster; on success *out is a result in ctx (the caller's
 * context, used to hold it). A scheduler that stops answering for dead_ms
 * fails the call with TSR_ERR_UNAVAILABLE; query errors come back with the
 * worker's or scheduler's message and position in err. */
tsr_status_t tsr_client_sql(tsr_client_t *c, tsr_context_t *ctx, const char *sql,
                            const tsr_client_table_t *tables, size_t ntables, char delimiter,
                            tsr_result_t **out, tsr_error_t *err);

/* The device constraint of this client's later SQL requests (every task of
 * the job) and of graph tasks that have none of their own: "auto" (prefer
 * GPU workers, run anywhere), "cpu" (any worker), "gpu", "cuda[N]",
 * "opencl[N]" (only workers whose --device matches; a job no ready worker can
 * run fails at once with TSR_ERR_UNAVAILABLE). Not called: requests carry
 * no constraint. TSR_ERR_INVALID_ARG for another word. */
tsr_status_t tsr_client_set_device(tsr_client_t *c, const char *device, tsr_error_t *err);

/* Progress of the job this client runs (the scheduler's PROGRESS messages,
 * at most ~10 a second): tasks done and known, input rows of finished tasks
 * (graphs: rows they produced), time since the job started. Called from
 * within tsr_client_sql/_graph on the calling thread. fn NULL: none. */
typedef void (*tsr_client_progress_fn)(void *arg, uint32_t done, uint32_t total, uint64_t rows,
                                       uint64_t elapsed_ms);
void tsr_client_set_progress(tsr_client_t *c, tsr_client_progress_fn fn, void *arg);

/* One printed result of a task graph: a sink task's value. */
typedef struct tsr_client_output {
    char *id;            /* the task's id */
    size_t order;        /* the task's position in the job file */
    uint8_t kind;        /* tsr_data_kind_t */
    tsr_result_t *table; /* TABLE: a result in the caller's context */
    void *bytes;         /* BYTES: a copy of the bytes (len below) */
    size_t len;
} tsr_client_output_t;

struct tsr_job;
/* Runs a parsed graph job (jobfile.h) on the cluster; *out gets its sinks'
 * values in job-file order (free with tsr_client_outputs_free). Task errors
 * come back as "task 'ID': message" with the worker's position and hint. */
tsr_status_t tsr_client_graph(tsr_client_t *c, tsr_context_t *ctx, const struct tsr_job *job,
                              tsr_client_output_t **out, size_t *nout, tsr_error_t *err);
void tsr_client_outputs_free(tsr_client_output_t *o, size_t n);
/* The device constraint a C API graph task carries to the scheduler
 * (graph_client.c; proto.h spelling, NULL: none): its
 * tsr_graph_task_set_device word, else a preference for the backend of its
 * kind's kernels ("gpu" when it names both). */
struct tsr_task;
void tsr_graph_task_constraint(const struct tsr_task *t, const char **need, const char **prefer);
/* The last tsr_client_graph's timing of task i (job order): the worker that
 * ran it (1-based, 0: none) and ns since the job started on the scheduler
 * when it became ready, was sent, was answered. false: no such task. */
bool tsr_client_graph_timing(const tsr_client_t *c, size_t i, uint32_t *worker, uint64_t ns[3]);
/* Makes the client's waits give up (TSR_ERR_UNAVAILABLE, "cancelled") once
 * *flag becomes nonzero, set from another thread; the task-graph backend's
 * cancel uses it (the protocol has no cancel message yet). */
void tsr_client_set_abort(tsr_client_t *c, atomic_int *flag);
/* The value of a TABLE graph handle as a result in ctx (registered as
 * `table`), the way graph outputs from a cluster are read: `tessera submit`
 * prints embedded and cluster results through the same path. */
tsr_status_t tsr_client_data_result(tsr_context_t *ctx, const tsr_data_t *d, const char *table,
                                    tsr_result_t **out, tsr_error_t *err);

typedef struct tsr_client_worker {
    uint32_t id;
    char state[16]; /* "ready", "dead" */
    char device[64];
    char host[128];
    uint32_t pid;
    uint32_t load; /* tasks in flight on it */
    uint64_t tasks_done;
} tsr_client_worker_t;

typedef struct tsr_client_status {
    uint32_t sched_pid;
    size_t nworkers;
    tsr_client_worker_t *workers; /* free with tsr_client_status_free */
} tsr_client_status_t;

tsr_status_t tsr_client_status(tsr_client_t *c, tsr_client_status_t *out, tsr_error_t *err);
void tsr_client_status_free(tsr_client_status_t *s);

/* ---- locks (`tessera lock`, docs/locks.md "Locks on a cluster") ---------------- */

typedef enum tsr_client_lock_op {
    TSR_CLIENT_LOCK_ACQUIRE = 1,
    TSR_CLIENT_LOCK_RELEASE = 2,
    TSR_CLIENT_LOCK_RENEW = 3,
    TSR_CLIENT_LOCK_STATUS = 4,
} tsr_client_lock_op_t;

typedef struct tsr_client_lock_req {
    uint8_t op; /* tsr_client_lock_op_t */
    const char *name;
    bool shared;        /* acquire */
    int64_t lease_ms;   /* acquire, renew: 0 = the default lease */
    int64_t timeout_ms; /* acquire: < 0 waits without limit, 0 tries once */
    uint64_t token;     /* release, renew */
    uint32_t home;      /* set by the scheduler (the home's index in its lock view) */
} tsr_client_lock_req_t;

/* Runs one lock request on the cluster: the scheduler forwards it to the
 * lock's home worker, whose lock client holds the grant (keyed by its token)
 * after this process exits. acquire fills *token; status fills *st (either
 * may be NULL for the other ops). Errors carry the lock layer's status
 * (TSR_ERR_TIMEOUT, _STALE, _INVALID_ARG, _NOT_FOUND for an unknown lock or
 * token, _UNAVAILABLE). */
tsr_status_t tsr_client_lock(tsr_client_t *c, const tsr_client_lock_req_t *q, uint64_t *token,
                             tsr_lock_status_t *st, tsr_error_t *err);

/* One request of the given type (the kv messages, scheduler/kv_msg.h):
 * sends data and waits for the answer, watching the scheduler. On TSR_OK
 * *reply (free with tsr_mem_free(NULL, ...); NULL when empty) and *rlen hold
 * a copy of the answer; else err holds the scheduler's error. */
tsr_status_t tsr_client_call(tsr_client_t *c, uint16_t type, const void *data, size_t len,
                             void **reply, size_t *rlen, tsr_error_t *err);

#endif /* TSR_SCHEDULER_H */
