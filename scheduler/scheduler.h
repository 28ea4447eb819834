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
    FILE *log;
    volatile sig_atomic_t *stop;
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

#endif /* TSR_SCHEDULER_H */
