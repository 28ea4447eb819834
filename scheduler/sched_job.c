/*
 * sched_job.c - SQL jobs on the scheduler: plan, split, place, re-run, merge.
 *
 * A job is one client SQL request. Its life (rewrite.h for the shapes):
 *
 *   WHOLE:  one TASK_WHOLE on one worker; its answer goes back as is.
 *   AGG/SCAN:
 *     1. split the FROM table's file into byte ranges (split.h);
 *     2. INFER each range (workers load it and report the types of the
 *        columns the query reads, see worker_task.c); compute the types
 *        embedded mode would give the whole file: a column whose first
 *        20000 rows are all NULL is VARCHAR, any other the join of every
 *        range's value kinds; columns fixed by the user's --schema keep
 *        their type;
 *     3. check on empty tables in the job's own context: the original query
 *        (a real error is reported with its exact position and nothing runs),
 *        then the worker query and the merge query (if either does not bind,
 *        the job falls back to WHOLE);
 *     4. RUN each range (with the full schema where the range's own inference
 *        differs, so every range parses with the file's types);
 *     5. stack the partial rows in range order as the FROM table and run the
 *        merge query; answer the client.
 *
 * Placement: a task goes to the ready worker with the fewest tasks in flight
 * (ties in turn); a range's first RUN goes where its INFER ran (the range is
 * loaded there) while that worker is ready. A task whose call fails
 * without an answer (its worker died or refused) is placed again elsewhere,
 * with the full schema, at most MAX_ATTEMPTS times; a task that fails with
 * an answer (bad CSV, overflow) fails the job with that error. A job keeps itself alive until its last
 * call's callback ran (outstanding), even after it has answered the client.
 *
 * Progress (proto.h PROGRESS): after a task finishes, the client hears the
 * tasks done and known (INFER + RUN, or the one WHOLE task) and the rows of
 * the ranges whose RUN finished (from their INFER counts), at most every
 * 100 ms and one message at a time; only while the client's request is held
 * (its peer is then valid). The sprog_t helper here serves graphs too.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "rewrite.h"
#include "sched_internal.h"
#include "split.h"
#include "table/csv_internal.h" /* tsr_csv_join: the engine's widening rule */

#define MAX_ATTEMPTS 4
#define SAMPLE_ROWS 20000 /* the CSV reader's type-inference sample */
#define MAX_JOB_TABLES 64

typedef enum phase { PH_WHOLE, PH_INFER, PH_RUN } phase_t;

typedef struct stask {
    sjob_t *job;
    size_t idx;
    int worker;
    unsigned attempts;
    bool done;
    tsr_wbuf_t payload;  /* the request (kept valid while the call is in flight) */
    tsr_rpc_msg_t reply; /* kept until the job ends: merged strings point into it */
} stask_t;

typedef struct icol {
    const char *name; /* into the INFER reply */
    bool read;        /* the query reads it: only those get a type */
    tsr_type_t type, all;
    uint64_t first;
} icol_t;

struct sjob {
    sched_t *s;
    uint64_t id;
    tsr_rpc_req_t *req;   /* the client's; NULL once answered */
    tsr_rpc_msg_t reqmsg; /* the request payload: strings below point into it */
    const char *sql;
    char delim;
    size_t ntables;
    const char *names[MAX_JOB_TABLES], *paths[MAX_JOB_TABLES], *schemas[MAX_JOB_TABLES];
    tsr_dplan_t plan;
    size_t ti; /* the FROM table's index */
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
};

static const char *type_word(tsr_type_t t)
{
    switch (t) {
    case TSR_TYPE_BOOL:
        return "bool";
    case TSR_TYPE_INT64:
        return "int64";
    case TSR_TYPE_DOUBLE:
        return "double";
    default:
        return "varchar";
    }
}

static void tasks_free(sjob_t *j)
{
    for (size_t i = 0; j->tasks && i < j->ntasks; i++) {
        tsr_wbuf_free(&j->tasks[i].payload);
        tsr_rpc_msg_release(j->s->t, &j->tasks[i].reply);
    }
    tsr_mem_free(j->s->mem, j->tasks);
    j->tasks = NULL;
    j->ntasks = j->pending = 0;
}

static void job_maybe_free(sjob_t *j)
{
    if (!j->finished || j->outstanding > 0)
        return;
    sched_t *s = j->s;
    tasks_free(j);
    tsr_rewrite_free(s->mem, &j->plan);
    tsr_split_free(s->mem, &j->split);
    tsr_mem_free(s->mem, j->schema);
    tsr_mem_free(s->mem, j->check_schema);
    tsr_mem_free(s->mem, j->range_differs);
    tsr_mem_free(s->mem, j->range_rows);
    tsr_mem_free(s->mem, j->range_worker);
    tsr_context_destroy(j->ctx);
    tsr_rpc_msg_release(s->t, &j->reqmsg);
    tsr_mem_free(s->mem, j);
}

static void job_fail(sjob_t *j, const tsr_error_t *e)
{
    sched_t *s = j->s;
    if (j->req) {
        tsr_wbuf_t b;
        tsr_wbuf_init(&b, s->mem);
        tsr_proto_encode_error(&b, e);
        tsr_rpc_reply(s->t, j->req, e->status, b.data, b.failed ? 0 : b.len);
        tsr_wbuf_free(&b);
        j->req = NULL;
    }
    tsr_sched_log(s->p->log, "scheduler", "job %llu failed: %s", (unsigned long long)j->id,
                  e->message);
    tsr_sched_http_job_end(s->http, j->id, false, e->message, 0);
    j->finished = true;
    job_maybe_free(j);
}

static void job_fail_msg(sjob_t *j, tsr_status_t st, const char *msg)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, st, "%s", msg);
    job_fail(j, &e);
}

static void job_answer(sjob_t *j, const void *data, size_t len)
{
    sched_t *s = j->s;
    if (j->req)
        tsr_rpc_reply(s->t, j->req, TSR_OK, data, len);
    j->req = NULL;
    tsr_sched_log(s->p->log, "scheduler", "job %llu done in %llu ms", (unsigned long long)j->id,
                  (unsigned long long)(tsr_sched_now_ms() - j->started_ms));
    tsr_sched_http_job_end(s->http, j->id, true, NULL, len);
    j->finished = true;
    job_maybe_free(j);
}

static void on_progress_sent(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    (void)status;
    sprog_t *sp = arg;
    tsr_rpc_msg_release(sp->s->t, reply);
    sp->inflight = false;
    sp->settled(sp->owner);
}

bool tsr_sched_progress(sprog_t *sp, tsr_rpc_req_t *req, const tsr_progress_t *p)
{
    uint64_t now = tsr_sched_now_ms();
    if (!req || sp->inflight || now - sp->last_ms < 100)
        return false;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, sp->s->mem);
    tsr_proto_encode_progress(&b, p);
    bool ok = !b.failed && b.len <= sizeof(sp->buf);
    if (ok)
        memcpy(sp->buf, b.data, b.len);
    size_t len = b.len;
    tsr_wbuf_free(&b);
    tsr_error_t e;
    tsr_error_clear(&e);
    /* a client that does not listen answers UNSUPPORTED: harmless */
    if (!ok || tsr_rpc_call_async(sp->s->t, tsr_rpc_req_peer(req), TSR_MSG_PROGRESS, sp->buf,
                                  len, 5000, on_progress_sent, sp, &e) != TSR_OK)
        return false;
    sp->inflight = true;
    sp->last_ms = now;
    return true;
}

static void job_progress_settled(void *owner)
{
    sjob_t *j = owner;
    j->outstanding--;
    job_maybe_free(j);
}

static void job_progress(sjob_t *j)
{
    j->prog.elapsed_ms = tsr_sched_now_ms() - j->started_ms;
    if (tsr_sched_progress(&j->sprog, j->req, &j->prog))
        j->outstanding++;
}

int tsr_sched_pick_worker(sched_t *s, int avoid)
{
    int best = -1;
    for (size_t k = 0; k < s->nworkers; k++) {
        size_t i = (s->rr + k) % s->nworkers;
        const sworker_t *w = s->workers[i];
        if (w->state != SW_READY || (int)i == avoid)
            continue;
        if (best < 0 || w->inflight < s->workers[best]->inflight)
            best = (int)i;
    }
    s->rr++;
    if (best < 0 && avoid >= 0 && (size_t)avoid < s->nworkers &&
        s->workers[avoid]->state == SW_READY)
        best = avoid;
    return best;
}

static void phase_done(sjob_t *j);
static void build_payload(sjob_t *j, stask_t *t);

static void on_task_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply);

static bool dispatch(sjob_t *j, stask_t *t)
{
    sched_t *s = j->s;
    /* a range's first RUN goes where its INFER ran: that worker has the range
     * loaded (worker_task.c), anywhere else it is read and parsed again */
    int wi = -1;
    if (j->phase == PH_RUN && t->attempts == 0 && j->range_worker) {
        int iw = j->range_worker[t->idx];
        if (iw >= 0 && (size_t)iw < s->nworkers && s->workers[iw]->state == SW_READY)
            wi = iw;
    }
    if (wi < 0)
        wi = tsr_sched_pick_worker(s, t->attempts > 0 ? t->worker : -1);
    if (wi < 0) {
        job_fail_msg(j, TSR_ERR_UNAVAILABLE, "no workers are available");
        return false;
    }
    build_payload(j, t);
    if (t->payload.failed) {
        job_fail_msg(j, TSR_ERR_NOMEM, "out of memory");
        return false;
    }
    uint16_t type = j->phase == PH_WHOLE   ? TSR_MSG_TASK_WHOLE
                    : j->phase == PH_INFER ? TSR_MSG_TASK_INFER
                                           : TSR_MSG_TASK_RUN;
    tsr_error_t e;
    tsr_error_clear(&e);
    /* no call timeout: a task may run long; a dead worker is found by its
     * heartbeats, and forgetting it fails this call */
    if (tsr_rpc_call_async(s->t, s->workers[wi]->peer, type, t->payload.data, t->payload.len, -1,
                           on_task_done, t, &e) != TSR_OK) {
        job_fail(j, &e);
        return false;
    }
    t->worker = wi;
    s->workers[wi]->inflight++;
    j->outstanding++;
    return true;
}

static void on_task_done(void *arg, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    stask_t *t = arg;
    sjob_t *j = t->job;
    sched_t *s = j->s;
    sworker_t *w = s->workers[t->worker];
    j->outstanding--;
    if (w->inflight > 0)
        w->inflight--;
    w->tasks_done++;
    if (j->finished) {
        tsr_rpc_msg_release(s->t, reply);
        job_maybe_free(j);
        return;
    }
    if (status == TSR_OK) {
        t->reply = *reply;
        memset(reply, 0, sizeof(*reply));
        t->done = true;
        tsr_sched_http_task_end(s->http, j->id, TSR_SCHED_TASK_OK, t->payload.len + t->reply.len);
        j->prog.done++;
        if (j->phase == PH_RUN && j->range_rows)
            j->prog.rows += j->range_rows[t->idx];
        job_progress(j);
        if (--j->pending == 0)
            phase_done(j);
        return;
    }
    if ((status == TSR_ERR_UNAVAILABLE || status == TSR_ERR_TIMEOUT) && reply->len == 0) {
        tsr_rpc_msg_release(s->t, reply);
        tsr_sched_http_task_end(s->http, j->id,
                                t->attempts + 1 >= MAX_ATTEMPTS ? TSR_SCHED_TASK_FAILED
                                                                : TSR_SCHED_TASK_RERUN,
                                t->payload.len);
        if (++t->attempts >= MAX_ATTEMPTS) {
            job_fail_msg(j, TSR_ERR_UNAVAILABLE, "a task failed on every worker it was given to");
            return;
        }
        tsr_sched_log(s->p->log, "scheduler",
                      "job %llu: task %zu lost with worker %d (%s); placing it again",
                      (unsigned long long)j->id, t->idx, t->worker + 1, tsr_status_str(status));
        dispatch(j, t);
        return;
    }
    tsr_error_t e;
    tsr_proto_decode_error(reply->data, reply->len, status, &e);
    tsr_sched_http_task_end(s->http, j->id, TSR_SCHED_TASK_FAILED, t->payload.len + reply->len);
    tsr_rpc_msg_release(s->t, reply);
    job_fail(j, &e);
}

static void build_payload(sjob_t *j, stask_t *t)
{
    tsr_wbuf_t *b = &t->payload;
    tsr_wbuf_free(b);
    tsr_wbuf_init(b, j->s->mem);
    if (j->phase == PH_WHOLE) {
        tsr_wbuf_u8(b, (uint8_t)j->delim);
        tsr_wbuf_u32(b, (uint32_t)j->ntables);
        for (size_t i = 0; i < j->ntables; i++) {
            tsr_wbuf_str(b, j->names[i]);
            tsr_wbuf_str(b, j->paths[i]);
            tsr_wbuf_str(b, j->schemas[i]);
        }
        tsr_wbuf_str(b, j->sql);
        return;
    }
    const tsr_split_range_t *r = &j->split.ranges[t->idx];
    tsr_wbuf_u64(b, j->id);
    tsr_wbuf_u32(b, (uint32_t)t->idx);
    tsr_wbuf_str(b, j->names[j->ti]);
    tsr_wbuf_str(b, j->paths[j->ti]);
    tsr_wbuf_u8(b, (uint8_t)j->delim);
    tsr_wbuf_u64(b, j->split.header_end);
    tsr_wbuf_u64(b, r->start);
    tsr_wbuf_u64(b, r->end);
    if (j->phase == PH_INFER) {
        tsr_wbuf_str(b, j->schemas[j->ti]);
        tsr_wbuf_str(b, j->plan.columns);
    } else {
        /* a range inferred like the file may use the worker's cached load;
         * anything else parses with the file's types */
        bool cache_ok = !j->range_differs[t->idx] && t->attempts == 0;
        tsr_wbuf_str(b, j->schema);
        tsr_wbuf_u8(b, cache_ok);
        tsr_wbuf_str(b, j->plan.worker_sql);
    }
}

static bool start_tasks(sjob_t *j, phase_t phase, size_t n)
{
    tasks_free(j);
    j->phase = phase;
    j->tasks = tsr_mem_calloc(j->s->mem, n, sizeof(*j->tasks));
    if (!j->tasks) {
        job_fail_msg(j, TSR_ERR_NOMEM, "out of memory");
        return false;
    }
    j->ntasks = j->pending = n;
    tsr_sched_http_job_tasks(j->s->http, j->id,
                             phase == PH_WHOLE ? "whole" : phase == PH_INFER ? "infer" : "run", n);
    j->prog.total += (uint32_t)n;
    if (phase == PH_INFER)
        j->prog.total += (uint32_t)n; /* the RUN of every range follows */
    else if (phase == PH_RUN && j->prog.total > j->prog.done + n)
        j->prog.total = j->prog.done + (uint32_t)n; /* already counted with INFER */
    for (size_t i = 0; i < n; i++) {
        j->tasks[i].job = j;
        j->tasks[i].idx = i;
        j->tasks[i].worker = -1;
        tsr_wbuf_init(&j->tasks[i].payload, j->s->mem);
    }
    for (size_t i = 0; i < n; i++)
        if (!dispatch(j, &j->tasks[i]))
            return false;
    return true;
}

static void run_whole(sjob_t *j, const char *why)
{
    tsr_sched_log(j->s->p->log, "scheduler", "job %llu: whole on one worker (%s)",
                  (unsigned long long)j->id, why);
    start_tasks(j, PH_WHOLE, 1);
}

/* Is column `name` fixed by the user's schema string "a:int64,b:double"? */
static bool schema_fixes(const char *schema, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = schema; p && *p;) {
        while (*p == ' ')
            p++;
        const char *colon = strchr(p, ':');
        if (!colon)
            return false;
        const char *e = colon;
        while (e > p && e[-1] == ' ')
            e--;
        if ((size_t)(e - p) == nl && strncasecmp(p, name, nl) == 0)
            return true;
        p = strchr(colon, ',');
        if (p)
            p++;
    }
    return false;
}

/* Step 2: the file's types from the ranges' INFER answers. */
static bool compute_schema(sjob_t *j, tsr_error_t *e)
{
    sched_t *s = j->s;
    size_t nr = j->ntasks, ncols = 0;
    icol_t *cols = NULL;
    bool ok = false;
    uint64_t *nrows = tsr_mem_calloc(s->mem, nr, sizeof(*nrows));
    j->range_differs = tsr_mem_calloc(s->mem, nr, sizeof(bool));
    j->range_rows = tsr_mem_calloc(s->mem, nr, sizeof(uint64_t));
    j->range_worker = tsr_mem_calloc(s->mem, nr, sizeof(int));
    if (!nrows || !j->range_differs || !j->range_rows || !j->range_worker)
        goto nomem;
    for (size_t r = 0; r < nr; r++)
        j->range_worker[r] = j->tasks[r].worker;
    for (size_t r = 0; r < nr; r++) {
        tsr_rbuf_t rb;
        tsr_rbuf_init(&rb, j->tasks[r].reply.data, j->tasks[r].reply.len);
        nrows[r] = tsr_rbuf_u64(&rb);
        if (j->range_rows)
            j->range_rows[r] = nrows[r];
        uint32_t nc = tsr_rbuf_u32(&rb);
        if (r == 0) {
            ncols = nc;
            if (nc == 0 || nc > 100000 || rb.bad)
                goto bad;
            if (!(cols = tsr_mem_calloc(s->mem, ncols * nr, sizeof(*cols))))
                goto nomem;
        }
        if (nc != ncols)
            goto bad;
        for (size_t c = 0; c < ncols; c++) {
            icol_t *ic = &cols[r * ncols + c];
            ic->name = tsr_rbuf_str(&rb);
            ic->read = tsr_rbuf_u8(&rb) != 0;
            ic->type = (tsr_type_t)tsr_rbuf_u8(&rb);
            ic->all = (tsr_type_t)tsr_rbuf_u8(&rb);
            ic->first = tsr_rbuf_u64(&rb);
            if (ic->type > TSR_TYPE_VARCHAR || ic->all > TSR_TYPE_VARCHAR ||
                strcasecmp(ic->name, cols[c].name) != 0)
                rb.bad = true;
        }
        if (!tsr_rbuf_done(&rb))
            goto bad;
    }
    /* b: the types of the columns the query reads (what RUN parses with);
     * cb: every column, unread ones as VARCHAR placeholders, for the checks */
    tsr_wbuf_t b, cb;
    tsr_wbuf_init(&b, s->mem);
    tsr_wbuf_init(&cb, s->mem);
    for (size_t c = 0; c < ncols; c++) {
        const char *name = cols[c].name;
        bool odd = strpbrk(name, ",:") || name[0] == ' ';
        tsr_type_t t = TSR_TYPE_VARCHAR;
        if (!cols[c].read) {
            if (odd)
                continue; /* not read, not needed for binding */
        } else if (odd) {
            tsr_wbuf_free(&b);
            tsr_wbuf_free(&cb);
            tsr_error_set(e, TSR_ERR_UNSUPPORTED, "column name not expressible in a schema");
            goto done;
        } else if (schema_fixes(j->schemas[j->ti], name)) {
            t = cols[c].type; /* the user's type, the same in every range */
        } else {
            uint64_t before = 0, first = UINT64_MAX;
            t = TSR_TYPE_NULL;
            for (size_t r = 0; r < nr; r++) {
                const icol_t *ic = &cols[r * ncols + c];
                if (first == UINT64_MAX && ic->first != UINT64_MAX)
                    first = before + ic->first;
                before += nrows[r];
                t = tsr_csv_join(t, ic->all);
            }
            if (first >= SAMPLE_ROWS || t == TSR_TYPE_NULL)
                t = TSR_TYPE_VARCHAR; /* the engine's sample saw only NULLs */
        }
        if (cols[c].read) {
            for (size_t r = 0; r < nr; r++)
                j->range_differs[r] |= cols[r * ncols + c].type != t;
            if (b.len > 0)
                tsr_wbuf_u8(&b, ',');
            tsr_wbuf_bytes(&b, name, strlen(name));
            tsr_wbuf_u8(&b, ':');
            tsr_wbuf_bytes(&b, type_word(t), strlen(type_word(t)));
        }
        if (cb.len > 0)
            tsr_wbuf_u8(&cb, ',');
        tsr_wbuf_bytes(&cb, name, strlen(name));
        tsr_wbuf_u8(&cb, ':');
        tsr_wbuf_bytes(&cb, type_word(t), strlen(type_word(t)));
    }
    tsr_wbuf_u8(&b, 0);
    tsr_wbuf_u8(&cb, 0);
    if (b.failed || cb.failed) {
        tsr_wbuf_free(&b);
        tsr_wbuf_free(&cb);
        goto nomem;
    }
    j->schema = (char *)b.data;
    j->check_schema = (char *)cb.data;
    ok = true;
    goto done;
bad:
    tsr_error_set(e, TSR_ERR_INTERNAL, "workers disagree on the columns of '%s'", j->paths[j->ti]);
    goto done;
nomem:
    tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
done:
    tsr_mem_free(s->mem, cols);
    tsr_mem_free(s->mem, nrows);
    return ok;
}

/* Registers an empty table `name` with the columns and types of schema
 * "a:int64,b:varchar" (names without ',' or ':'). */
static tsr_status_t register_empty(sjob_t *j, const char *name, const char *schema)
{
    tsr_mem_t *mem = j->s->mem;
    size_t n = 1;
    for (const char *p = schema; *p; p++)
        n += *p == ',';
    tsr_column_data_t *cols = tsr_mem_calloc(mem, n, sizeof(*cols));
    char *copy = tsr_mem_strdup(mem, schema);
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!cols || !copy)
        goto done;
    char *save = NULL;
    size_t i = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && i < n; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *ty = colon + 1;
        cols[i].name = tok;
        cols[i].type = strcmp(ty, "int64") == 0    ? TSR_TYPE_INT64
                       : strcmp(ty, "double") == 0 ? TSR_TYPE_DOUBLE
                       : strcmp(ty, "bool") == 0   ? TSR_TYPE_BOOL
                                                   : TSR_TYPE_VARCHAR;
        i++;
    }
    rc = tsr_table_register_columns(j->ctx, name, i, cols, 0);
done:
    tsr_mem_free(mem, cols);
    tsr_mem_free(mem, copy);
    return rc;
}

/* Step 3. Returns 1 to go on distributed, 0 to run WHOLE, -1 when the job
 * failed (answered). */
static int check_queries(sjob_t *j)
{
    tsr_error_t e;
    tsr_result_t *res = NULL;
    if (register_empty(j, j->names[j->ti], j->check_schema) != TSR_OK)
        return 0;
    if (tsr_query(j->ctx, j->sql, &res) != TSR_OK) {
        tsr_proto_context_error(j->ctx, &e);
        job_fail(j, &e);
        return -1;
    }
    tsr_result_destroy(res);
    if (tsr_query(j->ctx, j->plan.worker_sql, &res) != TSR_OK)
        return 0;
    size_t nc = tsr_result_column_count(res);
    tsr_column_data_t *cols = tsr_mem_calloc(j->s->mem, nc ? nc : 1, sizeof(*cols));
    int ok = 0;
    if (cols) {
        for (size_t c = 0; c < nc; c++) {
            cols[c].name = tsr_result_column_name(res, c);
            cols[c].type = tsr_result_column_type(res, c);
        }
        ok = tsr_table_register_columns(j->ctx, j->plan.table, nc, cols, 0) == TSR_OK;
    }
    tsr_mem_free(j->s->mem, cols);
    tsr_result_destroy(res);
    if (!ok)
        return 0;
    res = NULL;
    if (tsr_query(j->ctx, j->plan.final_sql, &res) != TSR_OK)
        return 0;
    tsr_result_destroy(res);
    return 1;
}

static void merge(sjob_t *j)
{
    sched_t *s = j->s;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_rtab_t all = {0};
    tsr_result_t *res = NULL;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, s->mem);
    for (size_t i = 0; i < j->ntasks; i++) {
        tsr_rtab_t part;
        if (tsr_proto_decode_rtab(s->mem, j->tasks[i].reply.data, j->tasks[i].reply.len, &part,
                                  &e) != TSR_OK)
            goto fail;
        tsr_status_t rc = tsr_proto_rtab_append(s->mem, &all, &part, &e);
        tsr_proto_rtab_free(s->mem, &part);
        if (rc != TSR_OK)
            goto fail;
    }
    if (tsr_proto_rtab_register(s->mem, j->ctx, j->plan.table, &all, NULL) != TSR_OK ||
        tsr_query(j->ctx, j->plan.final_sql, &res) != TSR_OK) {
        tsr_proto_context_error(j->ctx, &e);
        goto fail;
    }
    if (tsr_proto_encode_result(&b, res) != TSR_OK) {
        tsr_error_set(&e, TSR_ERR_NOMEM, "out of memory encoding the result");
        goto fail;
    }
    tsr_result_destroy(res);
    tsr_proto_rtab_free(s->mem, &all);
    job_answer(j, b.data, b.len);
    tsr_wbuf_free(&b);
    return;
fail:
    tsr_result_destroy(res);
    tsr_proto_rtab_free(s->mem, &all);
    tsr_wbuf_free(&b);
    job_fail(j, &e);
}

static void phase_done(sjob_t *j)
{
    switch (j->phase) {
    case PH_WHOLE:
        job_answer(j, j->tasks[0].reply.data, j->tasks[0].reply.len);
        return;
    case PH_INFER: {
        tsr_error_t e;
        tsr_error_clear(&e);
        if (!compute_schema(j, &e)) {
            if (e.status == TSR_ERR_UNSUPPORTED)
                run_whole(j, e.message);
            else
                job_fail(j, &e);
            return;
        }
        int c = check_queries(j);
        if (c < 0)
            return;
        if (c == 0) {
            run_whole(j, "the split queries did not bind");
            return;
        }
        start_tasks(j, PH_RUN, j->split.nranges);
        return;
    }
    case PH_RUN:
        merge(j);
        return;
    }
}

/* Decodes the client's request into j (strings point into j->reqmsg). */
static bool decode_request(sjob_t *j)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, j->reqmsg.data, j->reqmsg.len);
    j->sql = tsr_rbuf_str(&r);
    j->delim = (char)tsr_rbuf_u8(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    if (r.bad || n > MAX_JOB_TABLES)
        return false;
    j->ntables = n;
    for (uint32_t i = 0; i < n; i++) {
        j->names[i] = tsr_rbuf_str(&r);
        j->paths[i] = tsr_rbuf_str(&r);
        j->schemas[i] = tsr_rbuf_str(&r);
    }
    return tsr_rbuf_done(&r);
}

void tsr_sched_job_start(sched_t *s, tsr_rpc_req_t *req)
{
    sjob_t *j = tsr_mem_calloc(s->mem, 1, sizeof(*j));
    if (!j) {
        tsr_rpc_reply(s->t, req, TSR_ERR_NOMEM, NULL, 0);
        return;
    }
    j->s = s;
    j->id = s->next_job++;
    j->req = req;
    j->started_ms = tsr_sched_now_ms();
    j->prog.job = j->id;
    j->sprog.s = s;
    j->sprog.settled = job_progress_settled;
    j->sprog.owner = j;
    j->sprog.last_ms = j->started_ms;
    tsr_rpc_req_take(req, &j->reqmsg);
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!decode_request(j)) {
        job_fail_msg(j, TSR_ERR_BAD_INPUT, "malformed SQL request");
        return;
    }
    tsr_sched_http_job_begin(s->http, j->id, j->sql, strlen(j->sql));
    if (tsr_rewrite_plan(s->mem, j->sql, &j->plan, &e) != TSR_OK) {
        job_fail(j, &e); /* a syntax error, with its position */
        return;
    }
    size_t ready = tsr_sched_ready_count(s);
    if (ready == 0) {
        job_fail_msg(j, TSR_ERR_UNAVAILABLE, "no workers are available");
        return;
    }
    if (j->plan.kind == TSR_DPLAN_WHOLE) {
        run_whole(j, j->plan.why);
        return;
    }
    j->ti = j->ntables;
    for (size_t i = 0; i < j->ntables; i++)
        if (strcasecmp(j->names[i], j->plan.table) == 0)
            j->ti = i;
    if (j->ti == j->ntables) {
        run_whole(j, "its table is not a loaded file"); /* the worker says what is wrong */
        return;
    }
    tsr_context_params_t cp = {.threads = 0};
    if (tsr_context_create(&cp, &j->ctx) != TSR_OK) {
        job_fail_msg(j, TSR_ERR_INTERNAL, "cannot start the engine on the scheduler");
        return;
    }
    unsigned per = s->p->ranges_per_worker ? s->p->ranges_per_worker : 2;
    uint64_t min_bytes = s->p->min_range_bytes ? s->p->min_range_bytes : (1u << 20);
    if (tsr_split_csv(s->mem, j->paths[j->ti], ready * per, min_bytes, &j->split, &e) != TSR_OK) {
        job_fail(j, &e);
        return;
    }
    tsr_sched_log(s->p->log, "scheduler", "job %llu: %s over %zu range(s) of '%s' on %zu worker(s)",
                  (unsigned long long)j->id, tsr_rewrite_kind_name(j->plan.kind), j->split.nranges,
                  j->paths[j->ti], ready);
    start_tasks(j, PH_INFER, j->split.nranges);
}
