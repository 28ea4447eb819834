/*
 * sched_job_internal.h - a SQL job's state on the scheduler, shared by
 * sched_job.c (its life: split, place, re-run, answer) and sched_job_merge.c
 * (the scheduler's own queries: the schema from the INFER answers, the
 * checks on empty tables, the merge of the partial rows). Everything runs on
 * the scheduler's one thread (sched_internal.h).
 */
#ifndef TSR_SCHED_JOB_INTERNAL_H
#define TSR_SCHED_JOB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "rewrite.h"
#include "sched_internal.h"
#include "split.h"

#define MAX_JOB_TABLES TSR_SQL_REQ_MAX_TABLES /* proto.h: the request's bound */

typedef enum phase { PH_WHOLE, PH_INFER, PH_RUN } phase_t;

typedef struct stask {
    sjob_t *job;
    size_t idx;
    int worker;
    unsigned attempts;
    bool done;
    tsr_wbuf_t payload;  /* the request (kept valid while the call is in flight) */
    tsr_rpc_msg_t reply; /* kept until the job ends: merged strings point into it */
    tsr_pq_item_t pq;    /* its place in the placer's queues */
} stask_t;

struct sjob {
    sched_t *s;
    uint64_t id;
    tsr_rpc_req_t *req;   /* the client's; NULL once answered */
    tsr_rpc_msg_t reqmsg; /* the request payload: strings below point into it */
    const char *sql;
    const char *need, *prefer; /* every task's device constraint (proto.h), "" none */
    char delim;
    size_t ntables;
    const char *names[MAX_JOB_TABLES], *paths[MAX_JOB_TABLES], *schemas[MAX_JOB_TABLES];
    tsr_dplan_t plan;
    size_t ti; /* the FROM table's index (JOIN: the split table's) */
    bool bcast[MAX_JOB_TABLES]; /* JOIN: read whole by every range task */
    tsr_split_t split;
    phase_t phase;
    stask_t *tasks;
    size_t ntasks, pending, outstanding;
    char *schema;        /* "name:type,..." of the FROM table's columns the query reads */
    char *check_schema;  /* every column (unread ones VARCHAR), for the checks */
    bool *range_differs; /* per range: its own inference differs from schema */
    tsr_context_t *ctx;  /* checks and the merge */
    uint64_t started_ms;
    bool finished;
    uint64_t *range_rows; /* per range, from its INFER answer */
    int *range_worker;    /* per range: where its INFER ran (and its load is cached) */
    tsr_progress_t prog;  /* what the client is told */
    sprog_t sprog;
    sactive_t act; /* in the scheduler's cancellable jobs while running */
};

/* sched_job.c: ends the job with e (or a message) / with its answer. */
void tsr_sjob_fail(sjob_t *j, const tsr_error_t *e);
void tsr_sjob_answer(sjob_t *j, const void *data, size_t len);
/* The SQL spelling of a column type ("BIGINT", ...). */
const char *tsr_sjob_type_word(tsr_type_t t);

/* sched_job_merge.c. The FROM table's schema from the INFER answers (false:
 * e says why); the checks of step 3 (1: go on distributed, 0: run WHOLE,
 * -1: the job failed and was answered); the merge of the finished ranges
 * (answers or fails the job). */
bool tsr_sjob_compute_schema(sjob_t *j, tsr_error_t *e);
int tsr_sjob_check_queries(sjob_t *j);
void tsr_sjob_merge(sjob_t *j);

#endif /* TSR_SCHED_JOB_INTERNAL_H */
