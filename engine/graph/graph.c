/*
 * graph.c - building task graphs: handles, data, tasks, and reading task
 * status (see tessera/graph.h; task kinds and plugins are graph_kinds.c, the
 * executor graph_run.c, the built-in kinds graph_ops.c).
 *
 * Everything here runs on the user's thread before submit, except the read
 * calls (state, info), which only load atomics or read what has ended.
 * Errors are recorded in the context's last error, as every public call does.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "graph/graph_internal.h"

static const struct {
    const char *name;
    graph_builtin_t builtin;
} BUILTINS[] = {{"sql", GRAPH_SQL}, {"concat", GRAPH_CONCAT}, {"identity", GRAPH_IDENTITY}};

/* tsr__context_begin for the calls made once per task: clearing the 1.3 KB
 * error record costs more than adding a task, and a record whose status is
 * TSR_OK is already clear (tsr_error_set fills status and text together). */
static inline void graph_begin(tsr_graph_t *g)
{
    if (g->ctx->last_error.status != TSR_OK)
        tsr_error_clear(&g->ctx->last_error);
}

/* ---- create / destroy ----------------------------------------------------------- */

tsr_status_t tsr_graph_create(tsr_context_t *ctx, const tsr_graph_params_t *params,
                              tsr_graph_t **out)
{
    if (!ctx)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(ctx);
    if (!out)
        return tsr__context_end(ctx, TSR_ERR_INVALID_ARG);
    tsr_mem_t *mem = &ctx->mem;
    tsr_status_t rc = TSR_ERR_NOMEM;
    tsr_graph_t *g = tsr_mem_calloc(mem, 1, sizeof(*g));
    if (!g)
        return tsr__context_end(ctx, rc);
    g->ctx = ctx;
    g->mem = mem;
    atomic_flag_clear(&g->sql_pool_busy);
    atomic_init(&g->cancel_flag, 0);
    if (params) {
        g->params = *params;
        g->params.scheduler = NULL;
        g->params.token_file = NULL;
        if (params->scheduler && !(g->scheduler = tsr_mem_strdup(mem, params->scheduler)))
            goto err_destroy;
        if (params->token_file && !(g->token_file = tsr_mem_strdup(mem, params->token_file)))
            goto err_destroy;
    }
    for (size_t i = 0; i < sizeof(BUILTINS) / sizeof(BUILTINS[0]); i++)
        if ((rc = tsr_graph_kind_add(g, BUILTINS[i].name, BUILTINS[i].builtin, NULL, NULL,
                           &ctx->last_error)) != TSR_OK)
            goto err_destroy;
    *out = g;
    return tsr__context_end(ctx, TSR_OK);

err_destroy:
    tsr_graph_destroy(g);
    return tsr__context_end(ctx, rc);
}

void tsr_graph_destroy(tsr_graph_t *g)
{
    if (!g)
        return;
    tsr_mem_t *mem = g->mem;
    /* first: a cluster backend may borrow values it set into the handles */
    if (g->remote_state)
        g->params.remote->destroy(g->remote_state);
    tsr_graph_run_free(g);
    for (uint32_t i = 0; i < g->ntasks; i++) {
        tsr_task_t *t = graph_task(g, i);
        tsr_mem_free(mem, t->label);
        tsr_mem_free(mem, t->sql);
        tsr_mem_free(mem, t->param);
        tsr_mem_free(mem, t->message);
    }
    /* Values borrow only from handles' values and catalog tables, never the
     * other way round, and freeing never reads a lender: any order works. */
    for (uint32_t i = 0; i < g->ndata; i++) {
        tsr_data_t *d = graph_data_at(g, i);
        tsr_graph_value_free(mem, &d->v);
        tsr_mem_free(mem, d->name);
    }
    for (size_t i = 0; i < g->ntchunks; i++)
        tsr_mem_free(mem, g->tchunks[i]);
    for (size_t i = 0; i < g->ndchunks; i++)
        tsr_mem_free(mem, g->dchunks[i]);
    tsr_mem_free(mem, g->tchunks);
    tsr_mem_free(mem, g->dchunks);
    tsr_mem_free(mem, g->refs);
    tsr_mem_free(mem, g->succ);
    tsr_graph_cl_free(g); /* after the run: no task uses a program any more */
    for (size_t i = 0; i < g->nkinds; i++)
        tsr_graph_kind_free(mem, g->kinds[i]);
    tsr_mem_free(mem, g->kinds);
    /* after the kinds: their functions live in the plugins */
    for (size_t i = 0; i < g->nplugins; i++) {
        dlclose(g->plugins[i].lib);
        tsr_mem_free(mem, g->plugins[i].name);
        tsr_mem_free(mem, g->plugins[i].path);
    }
    tsr_mem_free(mem, g->plugins);
    tsr_mem_free(mem, g->scheduler);
    tsr_mem_free(mem, g->token_file);
    if (g->holds_catalog && --g->ctx->live_results == 0)
        tsr__context_free_retired(g->ctx);
    tsr_mem_free(mem, g);
}

/* ---- data handles --------------------------------------------------------------- */

static tsr_status_t check_name(tsr_graph_t *g, const char *name)
{
    if (!name)
        return TSR_OK;
    bool ok = *name != 0;
    for (const char *p = name; *p && ok; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
             (p != name && *p >= '0' && *p <= '9');
    if (ok)
        return TSR_OK;
    tsr_error_set(&g->ctx->last_error, TSR_ERR_INVALID_ARG, "invalid data handle name '%s'", name);
    tsr_error_hint(&g->ctx->last_error,
                   "names are letters, digits and '_', starting with a letter or '_'");
    return TSR_ERR_INVALID_ARG;
}

/* A new handle in chunked storage (stable address). */
static tsr_status_t data_new(tsr_graph_t *g, const char *name, tsr_data_t **out)
{
    tsr_error_t *err = &g->ctx->last_error;
    if (g->submitted)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "the graph was submitted: it is final");
    tsr_status_t rc = check_name(g, name);
    if (rc != TSR_OK)
        return rc;
    if (g->ndata >= GRAPH_MAX_TASKS)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "too many data handles");
    if ((g->ndata & (GRAPH_CHUNK - 1)) == 0 && g->ndata >> GRAPH_CHUNK_SHIFT == g->ndchunks) {
        if (tsr_mem_grow(g->mem, (void **)&g->dchunks, &g->dchunks_cap, g->ndchunks + 1,
                         sizeof(*g->dchunks)))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        tsr_data_t *chunk = tsr_mem_calloc(g->mem, GRAPH_CHUNK, sizeof(*chunk));
        if (!chunk)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        g->dchunks[g->ndchunks++] = chunk;
    }
    tsr_data_t *d = graph_data_at(g, g->ndata);
    memset(d, 0, sizeof(*d));
    if (name && !(d->name = tsr_mem_strdup(g->mem, name)))
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    d->graph = g;
    d->index = g->ndata++;
    d->producer = GRAPH_NONE;
    *out = d;
    return TSR_OK;
}

tsr_status_t tsr_graph_data(tsr_graph_t *g, const char *name, tsr_data_t **out)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    graph_begin(g);
    if (!out)
        return tsr__context_end(g->ctx, TSR_ERR_INVALID_ARG);
    return tsr__context_end(g->ctx, data_new(g, name, out));
}

tsr_status_t tsr_graph_data_bytes(tsr_graph_t *g, const char *name, const void *bytes,
                                  size_t len, tsr_data_t **out)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    if (!out || (!bytes && len))
        return tsr__context_end(g->ctx, TSR_ERR_INVALID_ARG);
    void *copy = tsr_mem_alloc(g->mem, len ? len : 1);
    if (!copy)
        return tsr__context_end(g->ctx, TSR_ERR_NOMEM);
    if (len)
        memcpy(copy, bytes, len);
    tsr_data_t *d;
    tsr_status_t rc = data_new(g, name, &d);
    if (rc != TSR_OK) {
        tsr_mem_free(g->mem, copy);
        return tsr__context_end(g->ctx, rc);
    }
    d->has_value = true;
    d->v.kind = TSR_DATA_BYTES;
    d->v.bytes = copy;
    d->v.len = len;
    *out = d;
    return tsr__context_end(g->ctx, TSR_OK);
}

tsr_status_t tsr_graph_data_table(tsr_graph_t *g, const char *table, tsr_data_t **out)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    tsr_error_t *err = &g->ctx->last_error;
    if (!out || !table)
        return tsr__context_end(g->ctx, TSR_ERR_INVALID_ARG);
    const tsr_table_t *t = tsr_catalog_find(&g->ctx->catalog, table);
    if (!t)
        return tsr__context_end(g->ctx, tsr_error_set(err, TSR_ERR_NOT_FOUND,
                                                      "no table '%s' in the context", table));
    /* A CSV table may load its columns on demand (table.h: lazy), which is
     * not thread-safe: load them all now, on the user's thread, so tasks
     * only ever read it. */
    tsr_status_t rc = tsr_table_load_columns((tsr_table_t *)t, NULL, err);
    if (rc != TSR_OK)
        return tsr__context_end(g->ctx, rc);
    tsr_data_t *d;
    if ((rc = data_new(g, t->name, &d)) != TSR_OK)
        return tsr__context_end(g->ctx, rc);
    /* Borrowed: the context keeps the table alive (retired when replaced)
     * while the graph counts as a live result. */
    if ((rc = tsr_graph_value_set_table(g->mem, &d->v, (tsr_table_t *)t, false)) != TSR_OK) {
        g->ndata--; /* the slot is reused by the next handle */
        tsr_mem_free(g->mem, d->name);
        return tsr__context_end(g->ctx, tsr_error_set(err, rc, "out of memory"));
    }
    d->has_value = true;
    if (!g->holds_catalog) {
        g->holds_catalog = true;
        g->ctx->live_results++;
    }
    *out = d;
    return tsr__context_end(g->ctx, TSR_OK);
}

/* ---- tasks ---------------------------------------------------------------------- */

static tsr_status_t check_arity(tsr_graph_t *g, const graph_kind_t *k,
                                const tsr_task_params_t *p)
{
    tsr_error_t *err = &g->ctx->last_error;
    switch (k->builtin) {
    case GRAPH_SQL:
        if (!p->sql)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a \"sql\" task needs params.sql");
        if (p->noutputs != 1)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a \"sql\" task has one output");
        for (size_t i = 0; i < p->ninputs; i++)
            if (!p->inputs[i]->name)
                return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                     "input %zu of a \"sql\" task has no name to query it by",
                                     i);
        return TSR_OK;
    case GRAPH_CONCAT:
        if (p->noutputs != 1 || p->ninputs == 0)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "a \"concat\" task has inputs and one output");
        return TSR_OK;
    case GRAPH_IDENTITY:
        if (p->noutputs != 1 || p->ninputs != 1)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "an \"identity\" task has one input and one output");
        return TSR_OK;
    case GRAPH_USER:
        return TSR_OK;
    }
    return TSR_OK;
}

static tsr_status_t task_add(tsr_graph_t *g, const tsr_task_params_t *p, tsr_task_t **out)
{
    tsr_error_t *err = &g->ctx->last_error;
    if (g->submitted)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "the graph was submitted: it is final");
    if (!p->kind)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a task needs a kind");
    if ((p->ninputs && !p->inputs) || (p->noutputs && !p->outputs))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "inputs or outputs array missing");
    if (g->ntasks >= GRAPH_MAX_TASKS || p->ninputs + p->noutputs > UINT32_MAX / 2)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "too many tasks or handles");
    /* graphs add runs of tasks of one kind: try the last one first */
    const graph_kind_t *kind = NULL;
    if (g->last_kind < g->nkinds && strcmp(g->kinds[g->last_kind]->name, p->kind) == 0)
        kind = g->kinds[g->last_kind];
    for (size_t i = 0; i < g->nkinds && !kind; i++)
        if (strcmp(g->kinds[i]->name, p->kind) == 0) {
            kind = g->kinds[i];
            g->last_kind = i;
        }
    if (!kind) {
        tsr_error_set(err, TSR_ERR_NOT_FOUND, "unknown task kind '%s'", p->kind);
        tsr_error_hint(err, "register it with tsr_graph_register or tsr_graph_load_plugin");
        return TSR_ERR_NOT_FOUND;
    }
    for (size_t i = 0; i < p->ninputs + p->noutputs; i++) {
        const tsr_data_t *d = i < p->ninputs ? p->inputs[i] : p->outputs[i - p->ninputs];
        if (!d || d->graph != g)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "%s %zu of task kind '%s' is not a handle of this graph",
                                 i < p->ninputs ? "input" : "output",
                                 i < p->ninputs ? i : i - p->ninputs, p->kind);
    }
    char buf[64];
    for (size_t i = 0; i < p->noutputs; i++) {
        const tsr_data_t *d = p->outputs[i];
        if (d->has_value)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "output %s already holds a value: tasks write only empty handles",
                                 tsr_graph_data_label(d, buf, sizeof(buf)));
        bool twice = d->producer != GRAPH_NONE;
        for (size_t j = 0; j < i && !twice; j++)
            twice = p->outputs[j] == d;
        if (twice)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                 "output %s is already written by another task",
                                 tsr_graph_data_label(d, buf, sizeof(buf)));
    }
    tsr_status_t rc = check_arity(g, kind, p);
    if (rc != TSR_OK)
        return rc;
    /* room: a new chunk when the last is full, and the refs slice */
    if ((g->ntasks & (GRAPH_CHUNK - 1)) == 0 && g->ntasks >> GRAPH_CHUNK_SHIFT == g->ntchunks) {
        if (tsr_mem_grow(g->mem, (void **)&g->tchunks, &g->tchunks_cap, g->ntchunks + 1,
                         sizeof(*g->tchunks)))
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        tsr_task_t *chunk = tsr_mem_calloc(g->mem, GRAPH_CHUNK, sizeof(*chunk));
        if (!chunk)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        g->tchunks[g->ntchunks++] = chunk;
    }
    size_t nref = p->ninputs + p->noutputs;
    if (g->nrefs + nref > UINT32_MAX)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "too many task inputs and outputs");
    if (nref && tsr_mem_grow(g->mem, (void **)&g->refs, &g->refs_cap, g->nrefs + nref,
                             sizeof(*g->refs)))
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_task_t *t = graph_task(g, g->ntasks);
    memset(t, 0, sizeof(*t));
    if ((p->label && !(t->label = tsr_mem_strdup(g->mem, p->label))) ||
        (p->sql && kind->builtin == GRAPH_SQL && !(t->sql = tsr_mem_strdup(g->mem, p->sql))) ||
        (p->param && !(t->param = tsr_mem_strdup(g->mem, p->param)))) {
        tsr_mem_free(g->mem, t->label);
        tsr_mem_free(g->mem, t->sql);
        tsr_mem_free(g->mem, t->param);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    t->graph = g;
    t->index = g->ntasks;
    t->kind = kind;
    t->arg = p->arg;
    atomic_init(&t->cause, GRAPH_NONE);
    atomic_init(&t->state, TSR_TASK_PENDING);
    t->in_off = (uint32_t)g->nrefs;
    t->nin = (uint32_t)p->ninputs;
    t->out_off = t->in_off + t->nin;
    t->nout = (uint32_t)p->noutputs;
    for (size_t i = 0; i < p->ninputs; i++)
        g->refs[g->nrefs++] = p->inputs[i];
    for (size_t i = 0; i < p->noutputs; i++) {
        g->refs[g->nrefs++] = p->outputs[i];
        p->outputs[i]->producer = t->index;
    }
    g->ntasks++;
    if (out)
        *out = t;
    return TSR_OK;
}

tsr_status_t tsr_graph_add(tsr_graph_t *g, const tsr_task_params_t *params, tsr_task_t **out)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    graph_begin(g);
    if (!params)
        return tsr__context_end(g->ctx, TSR_ERR_INVALID_ARG);
    return tsr__context_end(g->ctx, task_add(g, params, out));
}

size_t tsr_graph_task_count(const tsr_graph_t *g)
{
    return g ? g->ntasks : 0;
}

tsr_task_t *tsr_graph_task_at(tsr_graph_t *g, size_t i)
{
    return g && i < g->ntasks ? graph_task(g, (uint32_t)i) : NULL;
}

/* cpu, auto, gpu, cuda[N], opencl[N] (the scheduler's spelling, proto.h). */
static bool device_word_ok(const char *d)
{
    if (strcmp(d, "cpu") == 0 || strcmp(d, "auto") == 0 || strcmp(d, "gpu") == 0)
        return true;
    size_t n = strncmp(d, "cuda", 4) == 0 ? 4 : strncmp(d, "opencl", 6) == 0 ? 6 : 0;
    if (!n)
        return false;
    size_t digits = strspn(d + n, "0123456789");
    return d[n + digits] == '\0' && digits <= 4;
}

tsr_status_t tsr_graph_task_set_device(tsr_task_t *task, const char *device)
{
    if (!task)
        return TSR_ERR_INVALID_ARG;
    tsr_graph_t *g = task->graph;
    tsr_error_t *err = &g->ctx->last_error;
    if (g->submitted)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "the graph was submitted: it is final");
    if (!device || !device[0]) {
        task->device[0] = '\0';
        return TSR_OK;
    }
    if (!device_word_ok(device))
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "unknown device '%s' (cpu, auto, gpu, cuda, opencl, cuda0, ...)",
                             device);
    snprintf(task->device, sizeof(task->device), "%s", device);
    return TSR_OK;
}

const char *tsr_task_device(const tsr_task_t *task)
{
    return task ? task->device : "";
}

/* ---- running (the executor is graph_run.c) ---------------------------------------- */

tsr_status_t tsr_graph_submit(tsr_graph_t *g)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    tsr_error_t *err = &g->ctx->last_error;
    if (g->submitted)
        return tsr__context_end(g->ctx, tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                                      "the graph was already submitted"));
    if (g->scheduler) {
        if (!g->params.remote) {
            tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                          "cluster mode is not available: no cluster backend "
                          "(params.remote) for scheduler %s", g->scheduler);
            tsr_error_hint(err, "link the tessera_scheduler library and set params.remote = "
                                "tsr_graph_cluster(), or leave params.scheduler NULL to run "
                                "the graph embedded");
            return tsr__context_end(g->ctx, TSR_ERR_UNAVAILABLE);
        }
        if (g->cancel_early) { /* cancelled before submit: nothing runs */
            for (uint32_t i = 0; i < g->ntasks; i++)
                atomic_store(&graph_task(g, i)->state, TSR_TASK_CANCELLED);
            g->submitted = true;
            return tsr__context_end(g->ctx, TSR_OK);
        }
        tsr_status_t rc = g->params.remote->submit(g, &g->remote_state);
        if (rc == TSR_OK)
            g->submitted = true;
        return tsr__context_end(g->ctx, rc);
    }
    return tsr__context_end(g->ctx, tsr_graph_run_start(g, err));
}

tsr_status_t tsr_graph_wait(tsr_graph_t *g, long timeout_ms)
{
    if (!g)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(g->ctx);
    tsr_error_t *err = &g->ctx->last_error;
    if (!g->submitted)
        return tsr__context_end(g->ctx, tsr_error_set(err, TSR_ERR_INVALID_ARG,
                                                      "the graph was not submitted"));
    tsr_status_t rc = g->remote_state ? g->params.remote->wait(g->remote_state, timeout_ms)
                      : g->scheduler  ? TSR_OK /* cancelled before submit */
                                      : tsr_graph_run_wait(g, timeout_ms);
    if (rc == TSR_ERR_TIMEOUT)
        return tsr__context_end(g->ctx, tsr_error_set(err, rc,
                                                      "the graph did not end within %ld ms",
                                                      timeout_ms));
    /* the first task that failed by itself (not by inheritance) */
    for (uint32_t i = 0; i < g->ntasks; i++) {
        tsr_task_t *t = graph_task(g, i);
        if (atomic_load_explicit(&t->state, memory_order_relaxed) == TSR_TASK_FAILED &&
            atomic_load_explicit(&t->cause, memory_order_relaxed) == GRAPH_NONE) {
            char buf[64];
            tsr_error_set(err, t->status, "task %s failed: %s",
                          tsr_graph_task_label(t, buf, sizeof(buf)),
                          t->message ? t->message : tsr_status_str(t->status));
            return tsr__context_end(g->ctx, t->status);
        }
    }
    return tsr__context_end(g->ctx, TSR_OK);
}

void tsr_graph_cancel(tsr_graph_t *g)
{
    if (!g)
        return;
    atomic_store(&g->cancel_flag, 1); /* running tasks that poll it stop early */
    if (!g->submitted)
        g->cancel_early = true;
    else if (g->remote_state)
        g->params.remote->cancel(g->remote_state);
    else if (!g->scheduler)
        tsr_graph_run_cancel(g);
}

void tsr_graph_counts(const tsr_graph_t *g, tsr_graph_counts_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!g)
        return;
    for (uint32_t i = 0; i < g->ntasks; i++) {
        switch ((tsr_task_state_t)atomic_load_explicit(&graph_task(g, i)->state,
                                                       memory_order_relaxed)) {
        case TSR_TASK_PENDING: out->pending++; break;
        case TSR_TASK_READY: out->ready++; break;
        case TSR_TASK_RUNNING: out->running++; break;
        case TSR_TASK_DONE: out->done++; break;
        case TSR_TASK_FAILED: out->failed++; break;
        case TSR_TASK_CANCELLED: out->cancelled++; break;
        }
    }
}

/* ---- status ---------------------------------------------------------------------- */

const char *tsr_task_state_name(tsr_task_state_t s)
{
    static const char *const NAMES[] = {"pending", "ready", "running",
                                        "done",    "failed", "cancelled"};
    return (unsigned)s < sizeof(NAMES) / sizeof(NAMES[0]) ? NAMES[s] : "unknown";
}

const char *tsr_graph_task_label(const tsr_task_t *t, char *buf, size_t cap)
{
    if (t->label)
        return t->label;
    snprintf(buf, cap, "%s#%u", t->kind->name, (unsigned)t->index);
    return buf;
}

const char *tsr_graph_data_label(const tsr_data_t *d, char *buf, size_t cap)
{
    if (d->name)
        return d->name;
    snprintf(buf, cap, "#%u", (unsigned)d->index);
    return buf;
}

tsr_task_state_t tsr_task_state(const tsr_task_t *t)
{
    return (tsr_task_state_t)atomic_load_explicit(&t->state, memory_order_acquire);
}

void tsr_task_info(const tsr_task_t *t, tsr_task_info_t *out)
{
    out->state = tsr_task_state(t);
    out->status = t->status;
    out->label = t->label ? t->label : t->kind->name;
    out->kind = t->kind->name;
    out->message = t->message ? t->message : "";
    out->queued_ns = t->t_queued;
    out->start_ns = t->t_start;
    out->end_ns = t->t_end;
    out->thread = t->thread;
    out->opencl_kernel = t->kind->opencl_kernel;
    out->cuda_kernel = t->kind->cuda_kernel;
    out->plugin = t->kind->plugin;
}

/* ---- inside task functions --------------------------------------------------------- */

const char *tsr_task_param(const tsr_task_ctx_t *tc)
{
    return tc->task->param ? tc->task->param : "";
}

void *tsr_task_arg(const tsr_task_ctx_t *tc)
{
    return tc->task->arg;
}

unsigned tsr_task_thread(const tsr_task_ctx_t *tc)
{
    return tc->thread;
}

bool tsr_task_cancelled(const tsr_task_ctx_t *tc)
{
    return tc && tsr_graph_is_cancelled(tc->graph);
}

tsr_status_t tsr_task_fail(tsr_task_ctx_t *tc, tsr_status_t status, const char *fmt, ...)
{
    tsr_task_t *t = tc->task;
    if (t->message) /* the first message wins, as with tsr_error_set */
        return status;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    t->message = tsr_mem_strdup(tc->graph->mem, buf); /* NULL: the status alone tells */
    return status;
}
