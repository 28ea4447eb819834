/*
 * sched_job.c - SQL jobs on the scheduler: plan, split, place, re-run, merge.
 *
 * A job is one client SQL request. Its life (rewrite.h for the shapes):
 *
 *   WHOLE:  one TASK_WHOLE on one worker; its answer goes back as is.
 *   AGG/SCAN/JOIN:
 *     1. split the FROM table's file into byte ranges (split.h); JOIN: the
 *        largest joined file, while the others total at most
 *        --broadcast-max; every RUN also reads those whole (broadcast);
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
 * Placement (policy.h): every task is pushed to the scheduler's placer with
 * a home: a range's INFER the worker a stable assignment of the file's
 * ranges names ((hash of the path + range) over the ready workers, so the
 * same file's ranges meet the same workers' page caches job after job), a
 * range's first RUN the worker its INFER ran on (the range is loaded
 * there). The placer sends tasks into free worker slots and lets idle
 * workers steal queued ones (a stolen RUN loads its range again). Every
 * task carries the job's device constraint (the request's optional trailer,
 * proto.h): a requirement no ready worker meets fails the job at once, and
 * the file is then split for the eligible workers. A task whose call fails
 * without an answer (its worker died or refused) is placed again elsewhere,
 * with the full schema, at most MAX_ATTEMPTS times; a task that fails with
 * an answer (bad CSV, overflow) fails the job with that error. A job keeps itself alive until its last
 * call's callback ran (outstanding), even after it has answered the client.
 * CANCEL (sactive_t) ends it "cancelled", takes its queued tasks out of the
 * placer and has the workers drop theirs (TASK_DROP, sched.c), which also
 * interrupts the job's running task there (its query stops at its next
 * batch); the answers of tasks already running are dropped. A WHOLE task
 * ends its payload with the job for that (worker_task.c).
 *
 * Progress (proto.h PROGRESS): after a task finishes, the client hears the
 * tasks done and known (INFER + RUN, or the one WHOLE task) and the rows of
 * the ranges whose RUN finished (from their INFER counts), at most every
 * 100 ms and one message at a time; only while the client's request is held
 * (its peer is then valid). The sprog_t helper here serves graphs too.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "sched_job_internal.h"

#define MAX_ATTEMPTS 4

const char *tsr_sjob_type_word(tsr_type_t t)
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
        tsr_placer_remove(&j->s->placer, &j->tasks[i].pq);
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

/* The job ends: nothing more of it is placed. */
static void job_end(sjob_t *j)
{
    j->finished = true;
    tsr_sched_active_remove(j->s, &j->act);
    for (size_t i = 0; j->tasks && i < j->ntasks; i++)
        tsr_placer_remove(&j->s->placer, &j->tasks[i].pq);
}

void tsr_sjob_fail(sjob_t *j, const tsr_error_t *e)
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
    job_end(j);
    job_maybe_free(j);
}

static void job_fail_msg(sjob_t *j, tsr_status_t st, const char *msg)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_error_set(&e, st, "%s", msg);
    tsr_sjob_fail(j, &e);
}

void tsr_sjob_answer(sjob_t *j, const void *data, size_t len)
{
    sched_t *s = j->s;
    if (j->req)
        tsr_rpc_reply(s->t, j->req, TSR_OK, data, len);
    j->req = NULL;
    tsr_sched_log(s->p->log, "scheduler", "job %llu done in %llu ms", (unsigned long long)j->id,
                  (unsigned long long)(tsr_sched_now_ms() - j->started_ms));
    tsr_sched_http_job_end(s->http, j->id, true, NULL, len);
    job_end(j);
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

static stask_t *item_task(tsr_pq_item_t *it)
{
    return (stask_t *)(void *)((char *)it - offsetof(stask_t, pq));
}

static bool dispatch(sjob_t *j, stask_t *t);

/* The placer's send hook: the task's call to worker wi. */
static bool send_task(tsr_pq_item_t *it, int wi)
{
    stask_t *t = item_task(it);
    sjob_t *j = t->job;
    sched_t *s = j->s;
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
        if (e.status == TSR_ERR_UNAVAILABLE && ++t->attempts < MAX_ATTEMPTS) {
            /* the worker's connection is gone but not yet noticed: it is
             * dead; the task is placed again elsewhere (a lost attempt) */
            t->worker = wi;
            dispatch(j, t); /* may end the job: only s is used after */
            tsr_sched_worker_dead(s, (size_t)wi, e.message);
            return false;
        }
        tsr_sjob_fail(j, &e);
        return false;
    }
    t->worker = wi;
    s->workers[wi]->inflight++;
    j->outstanding++;
    return true;
}

static void unplaceable(tsr_pq_item_t *it)
{
    job_fail_msg(item_task(it)->job, TSR_ERR_UNAVAILABLE, "no workers are available");
}

/* FNV-1a of a path: the stable part of a range's home. */
static uint64_t path_hash(const char *p)
{
    uint64_t h = 1469598103934665603ull;
    for (; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

/* The worker a task should run on (see the top), -1: none in particular. */
static int task_home(sjob_t *j, const stask_t *t)
{
    sched_t *s = j->s;
    if (j->phase == PH_RUN && t->attempts == 0 && j->range_worker) {
        int iw = j->range_worker[t->idx];
        return iw >= 0 && (size_t)iw < s->nworkers && s->workers[iw]->state == SW_READY ? iw : -1;
    }
    if (j->phase != PH_INFER)
        return -1;
    size_t ready = tsr_sched_ready_count(s);
    if (ready == 0)
        return -1;
    size_t k = (size_t)((path_hash(j->paths[j->ti]) + t->idx) % ready);
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i]->state == SW_READY && k-- == 0)
            return (int)i;
    return -1;
}

/* Task t is ready (again): into the placer's queues. The caller pumps. */
static bool dispatch(sjob_t *j, stask_t *t)
{
    tsr_pq_item_t *it = &t->pq;
    it->home = task_home(j, t);
    it->avoid = t->attempts > 0 ? t->worker : -1;
    it->need = j->need;
    it->prefer = j->prefer;
    it->job = j->id;
    it->send = send_task;
    it->unplaceable = unplaceable;
    if (!tsr_placer_push(&j->s->placer, it)) {
        job_fail_msg(j, TSR_ERR_UNAVAILABLE, "no workers are available");
        return false;
    }
    return true;
}

static void task_settle(sjob_t *j, stask_t *t, tsr_status_t status, tsr_rpc_msg_t *reply);

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
    tsr_placer_done(&s->placer, (size_t)t->worker);
    task_settle(j, t, status, reply);
    tsr_placer_pump(&s->placer); /* j may be gone: s is not */
}

static void task_settle(sjob_t *j, stask_t *t, tsr_status_t status, tsr_rpc_msg_t *reply)
{
    sched_t *s = j->s;
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
    tsr_sjob_fail(j, &e);
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
        tsr_wbuf_u64(b, j->id); /* so TASK_DROP can interrupt it on the worker */
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
        if (j->plan.kind == TSR_DPLAN_JOIN) { /* the broadcast tables (worker_task.h) */
            uint32_t nb = 0;
            for (size_t i = 0; i < j->ntables; i++)
                nb += j->bcast[i];
            tsr_wbuf_u32(b, nb);
            for (size_t i = 0; i < j->ntables; i++) {
                if (!j->bcast[i])
                    continue;
                tsr_wbuf_str(b, j->names[i]);
                tsr_wbuf_str(b, j->paths[i]);
                tsr_wbuf_str(b, j->schemas[i]);
            }
        }
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
        j->tasks[i].pq.queue = -1;
        tsr_wbuf_init(&j->tasks[i].payload, j->s->mem);
    }
    for (size_t i = 0; i < n; i++)
        if (!dispatch(j, &j->tasks[i]))
            return false;
    tsr_placer_pump(&j->s->placer);
    return true;
}

static void run_whole(sjob_t *j, const char *why)
{
    tsr_sched_log(j->s->p->log, "scheduler", "job %llu: whole on one worker (%s)",
                  (unsigned long long)j->id, why);
    start_tasks(j, PH_WHOLE, 1);
}

/* Is column `name` fixed by the user's schema string "a:int64,b:double"? */
static void phase_done(sjob_t *j)
{
    switch (j->phase) {
    case PH_WHOLE:
        tsr_sjob_answer(j, j->tasks[0].reply.data, j->tasks[0].reply.len);
        return;
    case PH_INFER: {
        tsr_error_t e;
        tsr_error_clear(&e);
        if (!tsr_sjob_compute_schema(j, &e)) {
            if (e.status == TSR_ERR_UNSUPPORTED)
                run_whole(j, e.message);
            else
                tsr_sjob_fail(j, &e);
            return;
        }
        int c = tsr_sjob_check_queries(j);
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
        tsr_sjob_merge(j);
        return;
    }
}

/* Ready workers whose device satisfies need. */
static size_t eligible_count(const sched_t *s, const char *need)
{
    size_t n = 0;
    for (size_t i = 0; i < s->placer.nworkers; i++)
        n += s->placer.w[i].ready && tsr_policy_device_ok(need, s->placer.w[i].device);
    return n;
}

/* Decodes the client's request into j (strings point into j->reqmsg). */
static bool decode_request(sjob_t *j)
{
    tsr_sql_req_t q;
    if (!tsr_proto_decode_sql_req(j->reqmsg.data, j->reqmsg.len, &q))
        return false;
    j->sql = q.sql;
    j->delim = q.delim;
    j->ntables = q.ntables;
    for (size_t i = 0; i < q.ntables; i++) {
        j->names[i] = q.names[i];
        j->paths[i] = q.paths[i];
        j->schemas[i] = q.schemas[i];
    }
    j->need = q.need;
    j->prefer = q.prefer;
    return true;
}

static void job_cancel(sactive_t *a)
{
    sjob_t *j = (sjob_t *)(void *)((char *)a - offsetof(sjob_t, act));
    char msg[96];
    snprintf(msg, sizeof(msg), "job %llu was cancelled", (unsigned long long)j->id);
    job_fail_msg(j, TSR_ERR_UNAVAILABLE, msg);
}

/* JOIN: split the largest file, broadcast the others (split.h). false when
 * the job went WHOLE or failed instead. */
static bool pick_join_table(sjob_t *j)
{
    sched_t *s = j->s;
    const char *paths[MAX_JOB_TABLES];
    size_t idx[MAX_JOB_TABLES], n = j->plan.ntables, pick = 0;
    if (n > MAX_JOB_TABLES) {
        run_whole(j, "too many joined tables");
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        idx[k] = j->ntables;
        for (size_t i = 0; i < j->ntables; i++)
            if (strcasecmp(j->names[i], j->plan.tables[k]) == 0)
                idx[k] = i;
        if (idx[k] == j->ntables) {
            run_whole(j, "a joined table is not a loaded file"); /* the worker says what */
            return false;
        }
        paths[k] = j->paths[idx[k]];
    }
    uint64_t max = s->p->broadcast_max ? s->p->broadcast_max : (64u << 20), rest = 0;
    const char *why = tsr_split_pick(n, paths, max, &pick, &rest);
    if (why) {
        run_whole(j, why);
        return false;
    }
    if (tsr_rewrite_pick(s->mem, &j->plan, pick) != TSR_OK) {
        job_fail_msg(j, TSR_ERR_NOMEM, "out of memory");
        return false;
    }
    for (size_t k = 0; k < n; k++)
        j->bcast[idx[k]] = k != pick;
    tsr_sched_log(s->p->log, "scheduler", "job %llu: join splits '%s', broadcasts %zu table(s) "
                  "of %llu bytes", (unsigned long long)j->id, paths[pick], n - 1,
                  (unsigned long long)rest);
    return true;
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
    j->act.id = j->id;
    j->act.req = &j->req;
    j->act.cancel = job_cancel;
    tsr_sched_active_add(s, &j->act);
    tsr_rpc_req_take(req, &j->reqmsg);
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!decode_request(j)) {
        job_fail_msg(j, TSR_ERR_BAD_INPUT, "malformed SQL request");
        return;
    }
    tsr_sched_http_job_begin(s->http, j->id, j->sql, strlen(j->sql));
    if (tsr_rewrite_plan(s->mem, j->sql, &j->plan, &e) != TSR_OK) {
        tsr_sjob_fail(j, &e); /* a syntax error, with its position */
        return;
    }
    size_t ready = tsr_sched_ready_count(s);
    if (ready == 0) {
        job_fail_msg(j, TSR_ERR_UNAVAILABLE, "no workers are available");
        return;
    }
    if (!tsr_placer_any_ready(&s->placer, j->need)) {
        /* at once, not a hang: nothing queues a task no worker may take */
        char devs[256];
        tsr_placer_ready_devices(&s->placer, devs, sizeof(devs));
        tsr_error_set(&e, TSR_ERR_UNAVAILABLE,
                      "no ready worker has a device matching '%s' (ready: %s)", j->need, devs);
        tsr_error_hint(&e, "start one (tessera worker --device %s...) or run with --device auto",
                       j->need);
        tsr_sjob_fail(j, &e);
        return;
    }
    if (j->need[0]) /* ranges for the workers that may run them */
        ready = eligible_count(s, j->need);
    if (j->plan.kind == TSR_DPLAN_WHOLE) {
        run_whole(j, j->plan.why);
        return;
    }
    if (j->plan.kind == TSR_DPLAN_JOIN && !pick_join_table(j))
        return;
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
        tsr_sjob_fail(j, &e);
        return;
    }
    tsr_sched_log(s->p->log, "scheduler", "job %llu: %s over %zu range(s) of '%s' on %zu worker(s)",
                  (unsigned long long)j->id, tsr_rewrite_kind_name(j->plan.kind), j->split.nranges,
                  j->paths[j->ti], ready);
    start_tasks(j, PH_INFER, j->split.nranges);
}
