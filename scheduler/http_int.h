/*
 * http_int.h - what the scheduler's HTTP endpoint (http.c) shares with its
 * /metrics text (http_metrics.c): the job and worker tables and a text
 * buffer. Built only with libmicrohttpd and jansson (TSR_HAVE_MICROHTTPD).
 */
#ifndef TSR_SCHED_HTTP_INT_H
#define TSR_SCHED_HTTP_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "sched_internal.h"

#define JOB_SLOTS 128
#define TEXT_MAX 256
#define SNAPSHOT_WAIT_MS 1000

typedef enum hjob_state { HJ_FREE = 0, HJ_RUNNING, HJ_DONE, HJ_FAILED } hjob_state_t;

typedef struct hjob {
    uint64_t id;
    hjob_state_t state;
    char phase[8];            /* the phase its tasks are in: infer, run, whole */
    uint32_t tasks_total;     /* over all phases so far */
    uint32_t tasks_done;      /* answered OK */
    uint32_t tasks_rerun;     /* lost with a worker and placed again */
    uint32_t tasks_failed;    /* answered with an error, or lost too often */
    uint64_t started_unix_ms; /* wall clock, for people */
    uint64_t started_ms;      /* monotonic, for elapsed times */
    uint64_t ended_ms;        /* monotonic; 0 while running */
    uint64_t bytes;           /* task requests + replies + the answer */
    char sql[TEXT_MAX];
    char error[TEXT_MAX];
} hjob_t;

typedef struct hworker {
    uint32_t id;
    bool ready;
    char device[64];
    char host[128];
    uint32_t pid;
    uint32_t load; /* tasks in flight, as `cluster status` shows */
    uint64_t tasks_done;
} hworker_t;

struct tsr_sched_http {
    sched_t *s; /* read by tsr_sched_http_tick only (loop thread) */
    struct MHD_Daemon *mhd;
    uint16_t port;
    bool require_auth;
    char bearer[TSR_HTTP_BEARER_LEN + 1];
    char sched_addr[300];
    char url[320];
    uint32_t pid;

    /* Everything below is guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* snapshot taken (or stopping) */
    bool want;         /* a request waits for a worker snapshot */
    bool stopping;
    uint64_t snap_gen;  /* snapshots taken */
    uint64_t snap_ms;   /* monotonic time of the last one (0: none yet) */
    hworker_t *workers; /* the last snapshot */
    size_t nworkers, cap_workers;
    hjob_t jobs[JOB_SLOTS];
    size_t last_job;    /* slot of the last lookup (hooks come in runs per job) */
    uint64_t untracked; /* jobs begun while every slot ran a job */
    /* counters since start */
    uint64_t tasks_ok, tasks_rerun, tasks_failed;
    uint64_t jobs_ok, jobs_failed;
    uint64_t bytes_tasks, bytes_answers;
    uint64_t requests;
    tsr_sched_kv_stats_t kv; /* taken with the worker snapshot */
};

/* A growable text buffer (tsr_mem) for /metrics and JSON dumps. */
typedef struct tbuf {
    char *data;
    size_t len, cap;
    bool failed;
} tbuf_t;

/* Appends n bytes (a failed growth marks the buffer failed); the jansson
 * dump callback over it. */
void tsr_http_tb_add(tbuf_t *b, const char *s, size_t n);
int tsr_http_tb_dump(const char *s, size_t n, void *arg);

/* Milliseconds since the worker snapshot served was taken (mu held). */
uint64_t tsr_sched_http_snapshot_age(const tsr_sched_http_t *h);
/* The /metrics body, Prometheus text format 0.0.4 (mu held). */
void tsr_sched_http_metrics_text(tsr_sched_http_t *h, tbuf_t *b);

#endif /* TSR_SCHED_HTTP_INT_H */
