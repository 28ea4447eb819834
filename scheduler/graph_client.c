/*
 * graph_client.c - the cluster backend of the task-graph C API
 * (tsr_graph_cluster(), include/tessera/graph.h; docs/graph.md "On a cluster").
 *
 * Layering: libtessera (engine/graph) must not depend on this library, so the
 * engine only calls a tsr_graph_remote_t given in tsr_graph_params_t.remote;
 * this file is the one the cluster layer provides. It reads and writes the
 * graph's internals (graph_internal.h) because it fills task states and
 * handle values the way the embedded executor does.
 *
 * Submit (the caller's thread) turns the graph into a parsed graph job
 * (jobfile.h's tsr_job_t) and hands it to tsr_client_graph on a thread of
 * its own, so the same encoder, protocol and scheduler path as `tessera
 * submit JOB.json` run it:
 *   - tasks go in a topological order (Kahn over the handles' producers);
 *     a cycle or a dangling handle is refused as embedded (INVALID_ARG);
 *   - a task's id is the name of its one output handle (what "sql" tasks
 *     read), or "_t<index>"; every task with an output is a sink, so every
 *     value comes back and fills its handle;
 *   - an input handle holding a table is written to a CSV file (with a schema
 *     pinning its column types) in a private temporary folder, removed at
 *     destroy: workers must see the client's files (a local cluster, or a
 *     shared file system); byte-buffer inputs are refused (UNSUPPORTED);
 *   - user kinds must come from a plugin (the workers load it by name:
 *     `tessera worker --plugin`); a kind registered only by function pointer,
 *     a task with params.arg or with more than one output cannot run remotely
 *     and submit fails with TSR_ERR_UNSUPPORTED naming the task.
 *
 * Threads and lifetimes. The thread touches the graph only under mu and only
 * while !ended; cancel and the thread's end both set ended under mu, so
 * exactly one of them writes the tasks' final states. Cancel also sets
 * `abort`, which the client's wait loop checks every 100 ms
 * (tsr_client_set_abort): the thread stops waiting for the job, and destroy
 * (cancel + join) is bounded by that, or by the connect timeout. The
 * thread then sends CANCEL (proto.h) on the same connection, so the
 * scheduler drops the job's queued tasks and places nothing more of it
 * (tasks already running on workers finish there; their answers are
 * dropped); that call is bounded by the client's liveness watch.
 * Results are decoded into a private context (the caller's context is
 * single-threaded) and copied into the handles.
 *
 * Timing: the GRAPH reply ends with the scheduler's per-task times (ns since
 * the job started there: ready, sent, answered) and worker ids
 * (tsr_client_graph_timing); they are moved onto this process's clock from
 * the moment the job was sent, and the worker id goes into `thread`.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/columns_internal.h"
#include "auth.h"
#include "graph/graph_internal.h"
#include "jobfile.h"
#include "proto.h"
#include "scheduler.h"

#define CONNECT_MS_DEFAULT 5000


typedef struct gc_state {
    tsr_graph_t *g; /* NULL once the graph no longer waits for this state */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool ended;       /* the tasks' final states are set: wait returns */
    bool finished;    /* the thread is done with the job */
    atomic_int abort; /* cancel: the client stops waiting */
    char host[256];
    uint16_t port;
    char token_path[4096];
    int connect_ms;
    tsr_job_t job;
    char tmpdir[4096]; /* "" when no file was written */
    uint64_t submit_ns;
    /* the thread's outcome */
    tsr_context_t *rctx;
    tsr_client_output_t *outs;
    size_t nouts;
    tsr_error_t err;
    uint64_t sent_ns; /* when the job went out: the base of the scheduler's times */
    uint64_t *timing; /* per job task {worker, ready, sent, done}; NULL: none */
} gc_state_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void remove_tmpdir(gc_state_t *st)
{
    if (!st->tmpdir[0])
        return;
    DIR *d = opendir(st->tmpdir);
    if (d) {
        struct dirent *e;
        char path[4352];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof(path), "%s/%s", st->tmpdir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(st->tmpdir);
    st->tmpdir[0] = '\0';
}

static void state_free(gc_state_t *st)
{
    tsr_client_outputs_free(st->outs, st->nouts);
    tsr_mem_free(NULL, st->timing);
    tsr_context_destroy(st->rctx);
    tsr_job_free(&st->job);
    remove_tmpdir(st);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    tsr_mem_free(NULL, st);
}

/* ---- building the job ------------------------------------------------------------ */

static void csv_field(FILE *f, const char *s)
{
    bool quote = s[0] == '\0' || strpbrk(s, ",\"\r\n") != NULL;
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *schema_type(tsr_type_t t)
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

/* Writes a table handle as CSV into st->tmpdir (made on first use); the
 * path and a schema naming every column's type go into the job's arena. */
static tsr_status_t write_table(gc_state_t *st, const tsr_data_t *d, const char *name,
                                tsr_job_table_t *out, tsr_error_t *err)
{
    if (!st->tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(st->tmpdir, sizeof(st->tmpdir), "%s/tessera-graph-XXXXXX",
                 base && base[0] ? base : "/tmp");
        if (!mkdtemp(st->tmpdir)) {
            st->tmpdir[0] = '\0';
            return tsr_error_set(err, TSR_ERR_IO, "cannot create a temporary folder: %s",
                                 strerror(errno));
        }
    }
    char path[4352];
    snprintf(path, sizeof(path), "%s/%s.csv", st->tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return tsr_error_set(err, TSR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t ncols = tsr_data_column_count(d), nrows = tsr_data_row_count(d);
    size_t schema_len = 1;
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            fputc(',', f);
        csv_field(f, tsr_data_column_name(d, c));
        schema_len += strlen(tsr_data_column_name(d, c)) + 10;
    }
    fputc('\n', f);
    char num[64];
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                fputc(',', f);
            if (tsr_data_is_null(d, r, c))
                continue;
            switch (tsr_data_column_type(d, c)) {
            case TSR_TYPE_INT64:
                fprintf(f, "%lld", (long long)tsr_data_int64(d, r, c));
                break;
            case TSR_TYPE_DOUBLE:
                snprintf(num, sizeof(num), "%.17g", tsr_data_double(d, r, c));
                fputs(num, f);
                break;
            case TSR_TYPE_BOOL:
                fputs(tsr_data_bool(d, r, c) ? "true" : "false", f);
                break;
            default:
                csv_field(f, tsr_data_string(d, r, c, NULL));
                break;
            }
        }
        fputc('\n', f);
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad)
        return tsr_error_set(err, TSR_ERR_IO, "cannot write %s", path);
    char *schema = tsr_arena_alloc(&st->job.arena, schema_len);
    out->path = tsr_arena_strndup(&st->job.arena, path, strlen(path));
    out->name = name;
    if (!schema || !out->path)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    size_t at = 0;
    schema[0] = '\0';
    for (size_t c = 0; c < ncols; c++) {
        const char *cn = tsr_data_column_name(d, c);
        if (!tsr_job_ident_ok(cn))
            continue; /* no way to name it in a schema: the worker infers its type */
        at += (size_t)snprintf(schema + at, schema_len - at, "%s%s:%s", at ? "," : "", cn,
                               schema_type(tsr_data_column_type(d, c)));
    }
    out->schema = at ? schema : NULL;
    return TSR_OK;
}

static const char *task_label(const tsr_task_t *t, char *buf, size_t cap)
{
    return tsr_graph_task_label(t, buf, cap);
}

/* A graph task's job id: its output's name, or "_t<index>". */
static const char *task_id(gc_state_t *st, const tsr_graph_t *g, const tsr_task_t *t)
{
    if (t->nout == 1) {
        const tsr_data_t *d = g->refs[t->out_off];
        if (d->name && tsr_job_ident_ok(d->name))
            return tsr_arena_strndup(&st->job.arena, d->name, strlen(d->name));
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "_t%u", t->index);
    return tsr_arena_strndup(&st->job.arena, buf, strlen(buf));
}

/* Checks what a cluster can run and builds st->job. Errors into err. */
void tsr_graph_task_constraint(const tsr_task_t *t, const char **need, const char **prefer)
{
    *need = *prefer = NULL;
    if (t->device[0]) { /* the user's word: a requirement (or auto/cpu) */
        const char *n, *p;
        if (tsr_proto_device_constraint(t->device, &n, &p)) {
            *need = n[0] ? n : NULL;
            *prefer = p[0] ? p : NULL;
        }
    } else if (t->kind->cuda_kernel || t->kind->opencl_kernel) {
        /* a kernel is optional (the CPU function exists): a preference */
        *prefer = t->kind->cuda_kernel && t->kind->opencl_kernel ? "gpu"
                  : t->kind->cuda_kernel                         ? "cuda"
                                                                 : "opencl";
    }
}

static tsr_status_t build_job(gc_state_t *st, tsr_graph_t *g, tsr_error_t *err)
{
    uint32_t n = g->ntasks;
    tsr_status_t rc = TSR_ERR_NOMEM;
    uint32_t *indeg = tsr_mem_calloc(NULL, n ? n : 1, sizeof(uint32_t));
    uint32_t *order = tsr_mem_calloc(NULL, n ? n : 1, sizeof(uint32_t));
    uint32_t *pos = tsr_mem_calloc(NULL, n ? n : 1, sizeof(uint32_t));
    int32_t *table_of = tsr_mem_calloc(NULL, g->ndata ? g->ndata : 1, sizeof(int32_t));
    uint32_t *rd_at = NULL, *rd = NULL;
    char lb[64], db[64];
    tsr_arena_init(&st->job.arena, NULL);
    st->job.kind = TSR_JOB_GRAPH;
    st->job.delimiter = ',';
    if (!indeg || !order || !pos || !table_of) {
        tsr_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    /* what can run remotely, and in-degrees */
    size_t ntables = 0;
    for (uint32_t i = 0; i < n; i++) {
        const tsr_task_t *t = graph_task(g, i);
        const char *label = task_label(t, lb, sizeof(lb));
        if (t->kind->builtin == GRAPH_USER && !t->kind->plugin) {
            rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                               "task %s: kind '%s' is registered by a function pointer in this "
                               "process and cannot run on a cluster",
                               label, t->kind->name);
            tsr_error_hint(err, "put the kind in a plugin: tsr_graph_load_plugin here and "
                                "`tessera worker --plugin` on every worker");
            goto cleanup;
        }
        if (t->arg) {
            rc =
                tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                              "task %s: params.arg (a pointer) cannot be sent to a cluster", label);
            tsr_error_hint(err, "pass the task's parameters as the params.param string");
            goto cleanup;
        }
        if (t->nout > 1) {
            rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                               "task %s: a task on a cluster writes at most one output (it has "
                               "%u)",
                               label, t->nout);
            goto cleanup;
        }
        for (uint32_t k = 0; k < t->nin; k++) {
            const tsr_data_t *d = g->refs[t->in_off + k];
            if (d->producer != GRAPH_NONE) {
                indeg[i]++;
                continue;
            }
            if (!d->has_value) {
                rc = tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                   "task %s reads handle %s, which is dangling: it holds no "
                                   "value and no task writes it",
                                   label, tsr_graph_data_label(d, db, sizeof(db)));
                goto cleanup;
            }
            if (d->v.kind != TSR_DATA_TABLE) {
                rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                                   "task %s reads handle %s, a byte buffer: a cluster takes "
                                   "tables only as graph inputs",
                                   label, tsr_graph_data_label(d, db, sizeof(db)));
                goto cleanup;
            }
            ntables++;
        }
    }
    if (ntables > TSR_JOB_MAX_TABLES || n > TSR_JOB_MAX_TASKS) {
        rc = tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                           "a graph on a cluster has at most %d tasks and %d input tables",
                           TSR_JOB_MAX_TASKS, TSR_JOB_MAX_TABLES);
        goto cleanup;
    }
    /* Kahn: a task's successors are the readers of its output, found through
     * a CSR of each handle's readers (rd_at/rd) */
    rd_at = tsr_mem_calloc(NULL, (size_t)g->ndata + 1, sizeof(uint32_t));
    rd = tsr_mem_calloc(NULL, g->nrefs ? g->nrefs : 1, sizeof(uint32_t));
    if (!rd_at || !rd) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (uint32_t i = 0; i < n; i++) {
        const tsr_task_t *t = graph_task(g, i);
        for (uint32_t k = 0; k < t->nin; k++)
            rd_at[g->refs[t->in_off + k]->index + 1]++;
    }
    for (uint32_t d = 0; d < g->ndata; d++) {
        rd_at[d + 1] += rd_at[d];
        table_of[d] = (int32_t)rd_at[d];
    }
    for (uint32_t i = 0; i < n; i++) {
        const tsr_task_t *t = graph_task(g, i);
        for (uint32_t k = 0; k < t->nin; k++)
            rd[table_of[g->refs[t->in_off + k]->index]++] = i; /* table_of: fill cursor */
    }
    uint32_t head = 0, tail = 0;
    for (uint32_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        const tsr_task_t *t = graph_task(g, order[head++]);
        if (t->nout == 0)
            continue;
        uint32_t di = g->refs[t->out_off]->index;
        for (uint32_t e = rd_at[di]; e < rd_at[di + 1]; e++)
            if (--indeg[rd[e]] == 0)
                order[tail++] = rd[e];
    }
    if (tail < n) {
        for (uint32_t i = 0; i < n; i++)
            if (indeg[i] > 0) {
                rc = tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                   "the task graph has a cycle through task %s",
                                   task_label(graph_task(g, i), lb, sizeof(lb)));
                goto cleanup;
            }
    }
    for (uint32_t p = 0; p < n; p++)
        pos[order[p]] = p;
    /* tables and tasks */
    st->job.tables =
        tsr_arena_alloc(&st->job.arena, (ntables ? ntables : 1) * sizeof(tsr_job_table_t));
    st->job.tasks = tsr_arena_alloc(&st->job.arena, (n ? n : 1) * sizeof(tsr_job_task_t));
    if (!st->job.tables || !st->job.tasks) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (uint32_t i = 0; i < g->ndata; i++)
        table_of[i] = -1;
    for (uint32_t p = 0; p < n; p++) {
        const tsr_task_t *t = graph_task(g, order[p]);
        tsr_job_task_t *jt = &st->job.tasks[p];
        memset(jt, 0, sizeof(*jt));
        jt->id = task_id(st, g, t);
        jt->kind = t->kind->name;
        jt->sql = t->sql;
        jt->param = t->param;
        tsr_graph_task_constraint(t, &jt->need, &jt->prefer);
        jt->sink = t->nout == 1;
        jt->order = t->index;
        jt->ninputs = t->nin;
        jt->inputs =
            tsr_arena_alloc(&st->job.arena, (t->nin ? t->nin : 1) * sizeof(tsr_job_input_t));
        if (!jt->id || !jt->inputs) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        for (uint32_t k = 0; k < t->nin; k++) {
            const tsr_data_t *d = g->refs[t->in_off + k];
            if (d->producer != GRAPH_NONE) {
                jt->inputs[k].is_task = true;
                jt->inputs[k].index = pos[d->producer];
                continue;
            }
            if (table_of[d->index] < 0) {
                char nb[32];
                const char *name = d->name;
                if (!name || !tsr_job_ident_ok(name)) {
                    snprintf(nb, sizeof(nb), "_d%u", d->index);
                    name = nb;
                }
                name = tsr_arena_strndup(&st->job.arena, name, strlen(name));
                if (!name) {
                    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
                    goto cleanup;
                }
                tsr_job_table_t *jtab = &st->job.tables[st->job.ntables];
                if ((rc = write_table(st, d, name, jtab, err)) != TSR_OK)
                    goto cleanup;
                table_of[d->index] = (int32_t)st->job.ntables++;
            }
            jt->inputs[k].is_task = false;
            jt->inputs[k].index = (uint32_t)table_of[d->index];
        }
    }
    st->job.ntasks = n;
    rc = TSR_OK;
cleanup:
    tsr_mem_free(NULL, indeg);
    tsr_mem_free(NULL, order);
    tsr_mem_free(NULL, pos);
    tsr_mem_free(NULL, table_of);
    tsr_mem_free(NULL, rd_at);
    tsr_mem_free(NULL, rd);
    return rc;
}

/* ---- applying the answer (under mu, the graph alive, not ended) ------------------- */

/* Copies a result into a handle as an owned table value. */
static tsr_status_t set_table(tsr_graph_t *g, tsr_data_t *d, const tsr_result_t *res)
{
    size_t ncols = tsr_result_column_count(res), nrows = tsr_result_row_count(res);
    tsr_status_t rc = TSR_ERR_NOMEM;
    tsr_column_data_t *cols = tsr_mem_calloc(NULL, ncols ? ncols : 1, sizeof(*cols));
    tsr_table_t *table = NULL;
    if (!cols)
        return rc;
    for (size_t c = 0; c < ncols; c++) {
        tsr_type_t ty = tsr_result_column_type(res, c);
        size_t w = ty == TSR_TYPE_INT64    ? sizeof(int64_t)
                   : ty == TSR_TYPE_DOUBLE ? sizeof(double)
                   : ty == TSR_TYPE_BOOL   ? sizeof(bool)
                                           : sizeof(const char *);
        bool *nulls = tsr_mem_calloc(NULL, nrows ? nrows : 1, sizeof(bool));
        void *vals = tsr_mem_calloc(NULL, nrows ? nrows : 1, w);
        cols[c] = (tsr_column_data_t){.name = tsr_result_column_name(res, c),
                                      .type = ty == TSR_TYPE_NULL ? TSR_TYPE_VARCHAR : ty,
                                      .values = vals,
                                      .nulls = nulls};
        if (!nulls || !vals)
            goto cleanup;
        for (size_t r = 0; r < nrows; r++) {
            nulls[r] = tsr_result_is_null(res, r, c);
            if (ty == TSR_TYPE_INT64)
                ((int64_t *)vals)[r] = tsr_result_int64(res, r, c);
            else if (ty == TSR_TYPE_DOUBLE)
                ((double *)vals)[r] = tsr_result_double(res, r, c);
            else if (ty == TSR_TYPE_BOOL)
                ((bool *)vals)[r] = tsr_result_bool(res, r, c);
            else
                ((const char **)vals)[r] = nulls[r] ? NULL : tsr_result_string(res, r, c, NULL);
        }
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    rc = tsr_columns_build(g->mem, NULL, ncols, cols, nrows, &table, &e);
    if (rc == TSR_OK) {
        tsr_graph_value_free(g->mem, &d->v);
        rc = tsr_graph_value_set_table(g->mem, &d->v, table, true); /* takes table */
    }
cleanup:
    for (size_t c = 0; c < ncols; c++) {
        tsr_mem_free(NULL, (void *)cols[c].values);
        tsr_mem_free(NULL, (void *)cols[c].nulls);
    }
    tsr_mem_free(NULL, cols);
    return rc;
}

static tsr_status_t set_bytes(tsr_graph_t *g, tsr_data_t *d, const void *bytes, size_t len)
{
    void *copy = tsr_mem_alloc(g->mem, len ? len : 1);
    if (!copy)
        return TSR_ERR_NOMEM;
    if (len)
        memcpy(copy, bytes, len);
    tsr_graph_value_free(g->mem, &d->v);
    d->v.kind = TSR_DATA_BYTES;
    d->v.bytes = copy;
    d->v.len = len;
    return TSR_OK;
}

static void task_end(tsr_graph_t *g, tsr_task_t *t, tsr_task_state_t state, tsr_status_t status,
                     uint32_t cause, const char *message, uint64_t t0, uint64_t t1)
{
    t->status = status;
    if (message && !t->message)
        t->message = tsr_mem_strdup(g->mem, message); /* NULL: the status names it */
    if (!g->params.no_timing) {
        t->t_queued = t->t_start = t0;
        t->t_end = t1;
    }
    t->thread = 0;
    atomic_store(&t->cause, cause);
    atomic_store(&t->state, (unsigned)state);
}

/* The job failed: the task the scheduler names failed by itself, every other
 * unfinished one with it (the whole job stops on the cluster). */
static void apply_failure(gc_state_t *st, tsr_graph_t *g, uint64_t t1)
{
    uint32_t culprit = g->ntasks ? 0 : GRAPH_NONE;
    const char *msg = st->err.message;
    if (strncmp(msg, "task '", 6) == 0) {
        const char *end = strchr(msg + 6, '\'');
        for (size_t p = 0; end && p < st->job.ntasks; p++) {
            const char *id = st->job.tasks[p].id;
            if (strlen(id) == (size_t)(end - msg - 6) && strncmp(id, msg + 6, strlen(id)) == 0) {
                culprit = (uint32_t)st->job.tasks[p].order;
                msg = end[1] == ':' ? end + 2 : end + 1;
                break;
            }
        }
    }
    char lb[64], why[320];
    if (culprit != GRAPH_NONE)
        snprintf(why, sizeof(why), "the cluster job stopped when task %s failed",
                 task_label(graph_task(g, culprit), lb, sizeof(lb)));
    for (uint32_t i = 0; i < g->ntasks; i++) {
        tsr_task_t *t = graph_task(g, i);
        if (i == culprit)
            task_end(g, t, TSR_TASK_FAILED, st->err.status, GRAPH_NONE, msg, st->submit_ns, t1);
        else
            task_end(g, t, TSR_TASK_FAILED, st->err.status, culprit, why, st->submit_ns, t1);
    }
}

static void apply_answer(gc_state_t *st, tsr_graph_t *g, tsr_status_t rc)
{
    uint64_t t1 = now_ns();
    if (rc != TSR_OK && st->err.status == TSR_OK) /* every failure carries a status */
        tsr_error_set(&st->err, rc, "%s", tsr_status_str(rc));
    if (rc == TSR_OK) {
        for (size_t k = 0; k < st->nouts && rc == TSR_OK; k++) {
            const tsr_client_output_t *o = &st->outs[k];
            tsr_task_t *t = graph_task(g, (uint32_t)o->order);
            tsr_data_t *d = g->refs[t->out_off];
            if (o->kind == TSR_DATA_TABLE && o->table)
                rc = set_table(g, d, o->table);
            else if (o->kind == TSR_DATA_BYTES)
                rc = set_bytes(g, d, o->bytes, o->len);
        }
        if (rc != TSR_OK)
            tsr_error_set(&st->err, rc, "cannot store the cluster's results: %s",
                          tsr_status_str(rc));
    }
    if (rc != TSR_OK) {
        apply_failure(st, g, t1);
        return;
    }
    /* the scheduler's per-task times, moved onto this clock from the moment
     * the job went out; thread = the worker that ran the task (1-based);
     * states last, so a task that reads DONE has its times */
    for (size_t p = 0; p < st->job.ntasks; p++) {
        tsr_task_t *t = graph_task(g, (uint32_t)st->job.tasks[p].order);
        const uint64_t *tm = st->timing ? &st->timing[p * 4] : NULL;
        t->status = TSR_OK;
        t->thread = tm ? (unsigned)tm[0] : 0;
        if (!g->params.no_timing) {
            t->t_queued = tm ? st->sent_ns + tm[1] : st->submit_ns;
            t->t_start = tm ? st->sent_ns + tm[2] : st->submit_ns;
            t->t_end = tm ? st->sent_ns + tm[3] : t1;
        }
        atomic_store(&t->cause, GRAPH_NONE);
    }
    for (uint32_t i = 0; i < g->ntasks; i++)
        atomic_store(&graph_task(g, i)->state, (unsigned)TSR_TASK_DONE);
}

/* ---- the thread ----------------------------------------------------------------- */

/* Tells the scheduler to cancel every job of this connection (the one we
 * stopped waiting for); its answer does not matter. */
static void send_cancel(tsr_client_t *c)
{
    tsr_client_set_abort(c, NULL); /* this call must not give up at once */
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_cancel(&b, 0);
    void *reply = NULL;
    size_t rlen = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!b.failed)
        (void)tsr_client_call(c, TSR_MSG_CANCEL, b.data, b.len, &reply, &rlen, &e);
    tsr_mem_free(NULL, reply);
    tsr_wbuf_free(&b);
}

static void *job_thread(void *arg)
{
    gc_state_t *st = arg;
    tsr_client_t *c = NULL;
    tsr_context_params_t cp = {.threads = 1};
    tsr_status_t rc = tsr_context_create(&cp, &st->rctx);
    if (rc != TSR_OK)
        tsr_error_set(&st->err, rc, "cannot create the client's context");
    if (rc == TSR_OK)
        rc = tsr_client_connect(st->host, st->port, st->token_path, st->connect_ms, &c, &st->err);
    if (rc == TSR_OK) {
        tsr_client_set_abort(c, &st->abort);
        st->sent_ns = now_ns();
        rc = tsr_client_graph(c, st->rctx, &st->job, &st->outs, &st->nouts, &st->err);
        if (rc != TSR_OK && atomic_load(&st->abort))
            send_cancel(c);
        uint32_t w;
        uint64_t ns[3];
        if (rc == TSR_OK && tsr_client_graph_timing(c, st->job.ntasks - 1, &w, ns) &&
            (st->timing = tsr_mem_calloc(NULL, st->job.ntasks * 4, sizeof(uint64_t))))
            for (size_t i = 0; i < st->job.ntasks; i++) {
                tsr_client_graph_timing(c, i, &w, ns);
                st->timing[i * 4] = w;
                memcpy(&st->timing[i * 4 + 1], ns, sizeof(ns));
            }
    }
    tsr_client_destroy(c);
    pthread_mutex_lock(&st->mu);
    st->finished = true;
    if (!st->ended && st->g) {
        apply_answer(st, st->g, rc);
        st->ended = true;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* ---- the backend ---------------------------------------------------------------- */

static tsr_status_t gc_submit(tsr_graph_t *g, void **out)
{
    tsr_error_t *err = &g->ctx->last_error;
    gc_state_t *st = tsr_mem_calloc(NULL, 1, sizeof(*st));
    if (!st)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&st->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cv, &ca);
    pthread_condattr_destroy(&ca);
    st->g = g;
    st->connect_ms =
        g->params.connect_timeout_ms > 0 ? (int)g->params.connect_timeout_ms : CONNECT_MS_DEFAULT;
    tsr_status_t rc;
    if (!tsr_sched_parse_addr(g->scheduler, st->host, sizeof(st->host), &st->port)) {
        rc = tsr_error_set(err, TSR_ERR_INVALID_ARG,
                           "bad scheduler address '%s' (expected HOST:PORT)", g->scheduler);
        goto fail;
    }
    if (!tsr_auth_token_path(g->token_file, st->token_path, sizeof(st->token_path))) {
        rc = tsr_error_set(err, TSR_ERR_AUTH, "no cluster token file");
        tsr_error_hint(err, "set params.token_file or $TESSERA_TOKEN_FILE");
        goto fail;
    }
    if ((rc = build_job(st, g, err)) != TSR_OK)
        goto fail;
    st->submit_ns = now_ns();
    for (uint32_t i = 0; i < g->ntasks; i++) {
        tsr_task_t *t = graph_task(g, i);
        if (!g->params.no_timing)
            t->t_queued = st->submit_ns;
        atomic_store(&t->state, TSR_TASK_READY); /* queued at the scheduler */
    }
    if (g->ntasks == 0) { /* nothing to send (a scheduler refuses empty jobs) */
        st->ended = st->finished = true;
        *out = st;
        return TSR_OK;
    }
    if (pthread_create(&st->thread, NULL, job_thread, st) != 0) {
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "cannot start the client's thread");
        goto fail;
    }
    st->thread_started = true;
    *out = st;
    return TSR_OK;
fail:
    state_free(st);
    return rc;
}

static tsr_status_t gc_wait(void *state, long timeout_ms)
{
    gc_state_t *st = state;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms > 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&st->mu);
    while (!st->ended && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&st->cv, &st->mu);
        else if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) == ETIMEDOUT)
            break;
    }
    bool ended = st->ended;
    pthread_mutex_unlock(&st->mu);
    return ended ? TSR_OK : TSR_ERR_TIMEOUT;
}

static void gc_cancel(void *state)
{
    gc_state_t *st = state;
    atomic_store(&st->abort, 1);
    pthread_mutex_lock(&st->mu);
    if (!st->ended) {
        /* the thread tells the scheduler (CANCEL); tasks already running
         * on workers finish there, and their answer is dropped */
        uint64_t t1 = now_ns();
        tsr_graph_t *g = st->g;
        for (uint32_t i = 0; i < g->ntasks; i++)
            task_end(g, graph_task(g, i), TSR_TASK_CANCELLED, TSR_OK, GRAPH_NONE, NULL,
                     st->submit_ns, t1);
        st->ended = true;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
}

static void gc_destroy(void *state)
{
    gc_state_t *st = state;
    gc_cancel(st); /* the thread stops waiting within ~100 ms */
    pthread_mutex_lock(&st->mu);
    st->g = NULL;
    pthread_mutex_unlock(&st->mu);
    if (st->thread_started)
        pthread_join(st->thread, NULL);
    state_free(st);
}

static const tsr_graph_remote_t CLUSTER = {
    .name = "cluster",
    .submit = gc_submit,
    .wait = gc_wait,
    .cancel = gc_cancel,
    .destroy = gc_destroy,
};

const tsr_graph_remote_t *tsr_graph_cluster(void)
{
    return &CLUSTER;
}
