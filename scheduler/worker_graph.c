/*
 * worker_graph.c - one task of a task graph on a worker (TASK_GRAPH, from
 * sched_graph.c; worker_task.c dispatches here).
 *
 * GRAPH {u8 version (1 to 4), [>= 2: u64 job], [>= 3: u32 task, u64 inline_max],
 *        [4: u8 flags (bit 0: keep a local copy of an inline output)],
 *        str kind, str sql, str param, u8 delim, u32 ninputs x
 *        {str name, u8 src,
 *         src 1: str path, str schema (a CSV file) |
 *         src 2: value (proto.h: the bytes themselves) |
 *         src 3 (version >= 3): u32 task, u32 worker, u32 node_id, str host,
 *                u32 port (a value kept by the worker at host:port) |
 *         src 4 (version 4): u32 task, u8 last (produced by an earlier task
 *                of the job sent to this worker: read from the store)}}
 *   versions 1, 2 -> value
 *   versions 3, 4 -> {u8 form: 0 value | 1 u8 kind, u64 rows, u64 size}
 *
 * The inputs become handles of a one-task graph under their names (CSV
 * files and table values as tables of the task's context, bytes as bytes),
 * the task runs there with the worker's plugins loaded, and its output is
 * answered. Version 3 (docs/cluster.md "Data movement"): an output larger
 * than inline_max is kept in the worker's value store under (job, task)
 * and only its size goes back (form 1); a smaller one goes back inline
 * (form 0). A kept input (src 3) produced on this worker is read from the
 * store in place; one from another worker is fetched from it directly
 * (value_fetch.h). An input that cannot be had (producer unreachable, or
 * the value is gone) does not fail the task outright: every such input is
 * collected in env->lost and the task answers TSR_ERR_STALE, so the
 * scheduler re-runs the producers (lineage) and then this task.
 *
 * Version 4, pipelining (docs/cluster.md "Pipelining"): the scheduler may
 * send a task before its producers on this worker have finished. Tasks run
 * in arrival order on the one executor thread, so by the time it runs they
 * have ended: a producer that succeeded left its output in the store (kept,
 * or, flag bit 0, a local copy of an inline output under task | COPY_BIT),
 * and an input src 4 reads it in place. One that is not there (the producer
 * failed, was dropped or the job ended) makes the task answer "not run"
 * (TSR_ERR_UNAVAILABLE with a message) without running it; the scheduler
 * handles that. After a task whose src 4 input says `last` (no other reader
 * is waiting for it), the local copy is dropped here.
 */
#include <stdio.h>
#include <string.h>

#include "graph/graph_internal.h" /* tsr_graph_run_here */
#include "value_fetch.h"
#include "worker_task.h"
#include "worker_values.h"

#define COPY_BIT 0x80000000u /* the store's key of a local copy: task | COPY_BIT */

/* What one task holds for its inputs until it ends. */
typedef struct ginputs {
    tsr_data_t **ins;
    const char **names;
    tsr_wvalue_t **refs; /* borrowed from this worker's store */
    tsr_rpc_msg_t *msgs; /* fetched from peers */
    tsr_transport_t *t;  /* to release msgs */
    uint32_t *drops;     /* local copies to drop after the task (src 4, last) */
    uint32_t ndrops;
} ginputs_t;

/* A value's bytes into handle *h of g, named name. */
static tsr_status_t value_input(tsr_context_t *ctx, tsr_graph_t *g, const char *name,
                                const tsr_value_t *v, tsr_data_t **h, tsr_error_t *e)
{
    tsr_status_t rc;
    if (v->kind == TSR_DATA_TABLE) {
        tsr_rtab_t t;
        if ((rc = tsr_proto_decode_rtab(NULL, v->body, v->len, &t, e)) != TSR_OK)
            return rc;
        rc = tsr_proto_rtab_register(NULL, ctx, name, &t, NULL);
        tsr_proto_rtab_free(NULL, &t);
        if (rc == TSR_OK)
            rc = tsr_graph_data_table(g, name, h);
    } else {
        /* an EMPTY value becomes empty bytes: a handle nobody writes
         * would be refused as dangling */
        rc = tsr_graph_data_bytes(g, name, v->body ? v->body : "", v->len, h);
    }
    if (rc != TSR_OK)
        tsr_proto_context_error(ctx, e);
    return rc;
}

/* A kept input (src 3): borrowed from the store when it is here, else
 * fetched from its producer. TSR_ERR_STALE (recorded in env->lost, the
 * reason in e): it cannot be had. */
static tsr_status_t kept_input(tsr_wtask_env_t *env, uint64_t job, uint32_t task,
                               const tsr_vaddr_t *from, ginputs_t *gi, uint32_t i, tsr_value_t *v,
                               tsr_error_t *e)
{
    const void *data = NULL;
    size_t len = 0;
    tsr_error_t fe;
    tsr_error_clear(&fe);
    tsr_status_t rc = TSR_OK;
    if (env->values && from->node_id == env->node_id) {
        /* produced here: read in place, no copy */
        if (!(gi->refs[i] = tsr_wvalues_get(env->values, job, task, &data, &len)))
            rc = tsr_error_set(&fe, TSR_ERR_NOT_FOUND, "value %u of job %llu is no longer here",
                               task, (unsigned long long)job);
    } else if (!env->fetch) {
        rc = tsr_error_set(&fe, TSR_ERR_UNSUPPORTED, "this worker cannot fetch kept values");
    } else if ((rc = tsr_vfetch_get(env->fetch, from, job, task, env->fetch_timeout_ms,
                                    &gi->msgs[i], &fe)) == TSR_OK) {
        data = gi->msgs[i].data;
        len = gi->msgs[i].len;
    }
    if (rc == TSR_ERR_NOMEM)
        return tsr_error_set(e, rc, "%s", fe.message);
    if (rc == TSR_OK) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, data, len);
        if (tsr_proto_read_value(&r, v) && tsr_rbuf_done(&r))
            return TSR_OK;
        tsr_error_set(&fe, TSR_ERR_BAD_INPUT, "worker %u sent a malformed value", from->worker);
    }
    if (env->nlost < TSR_WTASK_MAX_LOST) {
        env->lost[env->nlost][0] = task;
        env->lost[env->nlost][1] = from->node_id;
        env->nlost++;
    }
    if (e->status == TSR_OK) /* the first lost input names the reason */
        tsr_error_set(e, TSR_ERR_STALE, "%s", fe.message);
    return TSR_ERR_STALE;
}

/* A src 4 input (version 4): the output of an earlier task of the job on
 * this worker, kept or copied in the store. TSR_ERR_UNAVAILABLE: it is not
 * there (the producer failed or was dropped): the task must not run. */
static tsr_status_t piped_input(tsr_wtask_env_t *env, uint64_t job, uint32_t task, const char *name,
                                ginputs_t *gi, uint32_t i, tsr_value_t *v, tsr_error_t *e)
{
    const void *data = NULL;
    size_t len = 0;
    if (env->values && !(gi->refs[i] = tsr_wvalues_get(env->values, job, task, &data, &len)))
        gi->refs[i] = tsr_wvalues_get(env->values, job, task | COPY_BIT, &data, &len);
    if (!gi->refs[i])
        return tsr_error_set(e, TSR_ERR_UNAVAILABLE,
                             "not run: its input '%s' was not produced on this worker (that "
                             "task failed, was dropped or its job ended)",
                             name);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, data, len);
    if (tsr_proto_read_value(&r, v) && tsr_rbuf_done(&r))
        return TSR_OK;
    return tsr_error_set(e, TSR_ERR_INTERNAL, "a stored value of input '%s' is malformed", name);
}

/* Input i of a graph task into a handle of g named after it; an input named
 * like an earlier one (a task reading a value twice) shares its handle. */
static tsr_status_t graph_input(tsr_wtask_env_t *env, tsr_context_t *ctx, tsr_graph_t *g,
                                tsr_rbuf_t *r, uint8_t version, uint64_t job, char delim,
                                ginputs_t *gi, uint32_t i, tsr_error_t *e)
{
    const char *name = gi->names[i] = tsr_rbuf_str(r);
    tsr_data_t **h = &gi->ins[i];
    uint8_t src = tsr_rbuf_u8(r);
    const char *path = NULL, *schema = NULL;
    tsr_value_t v = {0};
    tsr_vaddr_t from = {0};
    uint32_t task = 0;
    if (src == 1) {
        path = tsr_rbuf_str(r);
        schema = tsr_rbuf_str(r);
    } else if (src == 2) {
        if (!tsr_proto_read_value(r, &v))
            r->bad = true;
    } else if (src == 4 && version >= 4) {
        task = tsr_rbuf_u32(r);
        uint8_t last = tsr_rbuf_u8(r);
        if (last > 1 || task >= COPY_BIT)
            r->bad = true;
        else if (last)
            gi->drops[gi->ndrops++] = task | COPY_BIT;
    } else if (src == 3 && version >= 3) {
        task = tsr_rbuf_u32(r);
        from.worker = tsr_rbuf_u32(r);
        from.node_id = tsr_rbuf_u32(r);
        from.host = tsr_rbuf_str(r);
        uint32_t port = tsr_rbuf_u32(r);
        if (port == 0 || port > 65535)
            r->bad = true;
        from.port = (uint16_t)port;
    } else {
        r->bad = true;
    }
    if (r->bad)
        return tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    for (uint32_t k = 0; k < i; k++)
        if (strcmp(gi->names[k], name) == 0) {
            gi->ins[i] = gi->ins[k];
            return TSR_OK;
        }
    tsr_status_t rc;
    if (src == 1) {
        tsr_csv_params_t cp = {.delimiter = delim, .schema = schema[0] ? schema : NULL};
        if ((rc = tsr_table_register_csv(ctx, name, path, &cp)) == TSR_OK)
            rc = tsr_graph_data_table(g, name, h);
        if (rc != TSR_OK)
            tsr_proto_context_error(ctx, e);
        return rc;
    }
    if (src == 3 && (rc = kept_input(env, job, task, &from, gi, i, &v, e)) != TSR_OK)
        return rc;
    if (src == 4 && (rc = piped_input(env, job, task, name, gi, i, &v, e)) != TSR_OK) {
        env->not_run = rc == TSR_ERR_UNAVAILABLE;
        return rc;
    }
    return value_input(ctx, g, name, &v, h, e);
}

/* Rows of an encoded table value (its rtab header), 0 for other kinds. */
static uint64_t encoded_rows(const uint8_t *val, size_t len)
{
    tsr_rbuf_t r;
    tsr_value_t v;
    tsr_rbuf_init(&r, val, len);
    if (!tsr_proto_read_value(&r, &v) || v.kind != TSR_DATA_TABLE)
        return 0;
    tsr_rbuf_init(&r, v.body, v.len);
    (void)tsr_rbuf_u32(&r);
    uint64_t n = tsr_rbuf_u64(&r);
    return r.bad ? 0 : n;
}

/* The output of a version 3 task: inline when small (or when nothing may be
 * kept), else into the store with its size answered. */
static tsr_status_t answer_v3(tsr_wtask_env_t *env, uint64_t job, uint32_t task,
                              uint64_t inline_max, bool copy, tsr_data_t *res, tsr_wbuf_t *out,
                              tsr_error_t *e)
{
    tsr_wbuf_t val;
    tsr_wbuf_init(&val, env->mem);
    tsr_status_t rc = tsr_proto_encode_data(&val, res);
    if (rc != TSR_OK || val.failed) {
        tsr_wbuf_free(&val);
        return tsr_error_set(e, TSR_ERR_NOMEM, "out of memory encoding the result");
    }
    if (!env->values || val.len <= inline_max) {
        tsr_wbuf_u8(out, 0);
        tsr_wbuf_bytes(out, val.data, val.len);
        if (out->failed) {
            tsr_wbuf_free(&val);
            return tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
        }
        if (copy && env->values) /* for readers sent ahead here (the store takes val) */
            return tsr_wvalues_put(env->values, job, task | COPY_BIT, val.data, val.len) == TSR_OK
                       ? TSR_OK
                       : tsr_error_set(e, TSR_ERR_NOMEM, "out of memory keeping a copy");
        tsr_wbuf_free(&val);
        return TSR_OK;
    }
    uint8_t kind = val.data[0];
    uint64_t rows = encoded_rows(val.data, val.len), size = val.len;
    /* the store takes the buffer (same allocator: env->mem) */
    if ((rc = tsr_wvalues_put(env->values, job, task, val.data, val.len)) != TSR_OK)
        return tsr_error_set(e, rc, "out of memory keeping the result");
    env->kept = true;
    env->kept_job = job;
    env->kept_task = task;
    env->kept_bytes = size;
    tsr_wbuf_u8(out, 1);
    tsr_wbuf_u8(out, kind);
    tsr_wbuf_u64(out, rows);
    tsr_wbuf_u64(out, size);
    if (out->failed) {
        tsr_wvalues_drop(env->values, job, &task, 1);
        env->kept = false;
        return tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
    }
    return TSR_OK;
}

tsr_status_t tsr_wtask_graph(tsr_wtask_env_t *env, tsr_rbuf_t *r, tsr_wbuf_t *out, tsr_error_t *e)
{
    uint8_t version = tsr_rbuf_u8(r);
    uint64_t job = 0, inline_max = UINT64_MAX;
    uint32_t task = 0;
    uint8_t flags = 0;
    if (version >= 2)
        job = tsr_rbuf_u64(r); /* for TASK_DROP, and the store's key */
    if (version >= 3) {
        task = tsr_rbuf_u32(r);
        inline_max = tsr_rbuf_u64(r);
    }
    if (version >= 4)
        flags = tsr_rbuf_u8(r);
    const char *kind = tsr_rbuf_str(r), *sql = tsr_rbuf_str(r), *param = tsr_rbuf_str(r);
    char delim = (char)tsr_rbuf_u8(r);
    uint32_t nin = tsr_rbuf_u32(r);
    env->nlost = 0;
    env->kept = false;
    env->not_run = false;
    if (r->bad || version < 1 || version > 4 || nin > 4096 || flags > 1 || task >= COPY_BIT)
        return tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
    tsr_context_t *ctx = NULL;
    tsr_graph_t *g = NULL;
    tsr_data_t *res = NULL;
    size_t n1 = nin ? nin : 1;
    ginputs_t gi = {.ins = tsr_mem_calloc(env->mem, n1, sizeof(*gi.ins)),
                    .names = tsr_mem_calloc(env->mem, n1, sizeof(*gi.names)),
                    .refs = tsr_mem_calloc(env->mem, n1, sizeof(*gi.refs)),
                    .msgs = tsr_mem_calloc(env->mem, n1, sizeof(*gi.msgs)),
                    .drops = tsr_mem_calloc(env->mem, n1, sizeof(*gi.drops)),
                    .t = env->t};
    tsr_status_t rc = TSR_OK;
    if (!gi.ins || !gi.names || !gi.refs || !gi.msgs || !gi.drops) {
        rc = tsr_error_set(e, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = tsr_wtask_new_context(env, &ctx, e)) != TSR_OK)
        goto done;
    tsr_graph_params_t gp = {.threads = 1};
    if ((rc = tsr_graph_create(ctx, &gp, &g)) != TSR_OK) {
        tsr_proto_context_error(ctx, e);
        goto done;
    }
    tsr_graph_run_here(g); /* the task runs on this (the executor's) thread */
    if ((rc = tsr_wtask_load_plugins(env, ctx, g, e)) != TSR_OK)
        goto done;
    tsr_status_t stale = TSR_OK;
    for (uint32_t i = 0; i < nin; i++) {
        rc = graph_input(env, ctx, g, r, version, job, delim, &gi, i, e);
        if (rc == TSR_ERR_STALE) /* look at every input: report all lost ones at once */
            stale = rc;
        else if (rc != TSR_OK)
            goto done;
    }
    if (!tsr_rbuf_done(r)) {
        env->nlost = 0;
        rc = tsr_error_set(e, TSR_ERR_BAD_INPUT, "malformed task");
        goto done;
    }
    if ((rc = stale) != TSR_OK)
        goto done;
    tsr_task_params_t tp = {.kind = kind,
                            .sql = sql[0] ? sql : NULL,
                            .param = param[0] ? param : NULL,
                            .ninputs = nin,
                            .inputs = gi.ins,
                            .noutputs = 1,
                            .outputs = &res};
    if ((rc = tsr_graph_data(g, NULL, &res)) != TSR_OK ||
        (rc = tsr_graph_add(g, &tp, NULL)) != TSR_OK) {
        tsr_proto_context_error(ctx, e);
        if (rc == TSR_ERR_NOT_FOUND)
            tsr_error_hint(e,
                           "start every worker with --plugin PATH of the library that defines "
                           "task kind '%s'",
                           kind);
        goto done;
    }
    if ((rc = tsr_graph_submit(g)) != TSR_OK || (rc = tsr_graph_wait(g, -1)) != TSR_OK) {
        tsr_proto_context_error(ctx, e);
        goto done;
    }
    if (tsr_cancel_is_set(env->cancel) &&
        tsr_task_state(tsr_graph_task_at(g, 0)) == TSR_TASK_CANCELLED) {
        /* TASK_DROP stopped it (env->cancel is the context's token): the
         * graph calls that a success with the task CANCELLED and no output */
        rc = tsr_error_set(e, TSR_ERR_CANCELLED, "job %llu was cancelled", (unsigned long long)job);
        goto done;
    }
    if (version >= 3)
        rc = answer_v3(env, job, task, inline_max, (flags & 1) != 0, res, out, e);
    else if ((rc = tsr_proto_encode_data(out, res)) != TSR_OK)
        tsr_error_set(e, rc, "out of memory encoding the result");
done:
    if (rc != TSR_ERR_STALE)
        env->nlost = 0;
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
    for (uint32_t i = 0; gi.refs && i < nin; i++)
        tsr_wvalues_release(env->values, gi.refs[i]);
    for (uint32_t i = 0; gi.msgs && i < nin; i++)
        tsr_rpc_msg_release(env->t, &gi.msgs[i]);
    if (gi.ndrops > 0 && env->values) /* copies no other reader here waits for */
        tsr_wvalues_drop(env->values, job, gi.drops, gi.ndrops);
    tsr_mem_free(env->mem, gi.ins);
    tsr_mem_free(env->mem, gi.names);
    tsr_mem_free(env->mem, gi.refs);
    tsr_mem_free(env->mem, gi.msgs);
    tsr_mem_free(env->mem, gi.drops);
    return rc;
}
