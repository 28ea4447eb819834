/*
 * graph_ops.c - values of data handles (reading, writing) and the built-in
 * task kinds "sql", "concat" and "identity".
 *
 * Values. A handle's value is set by the one task that writes it, on that
 * task's thread, and read by the tasks that depend on it (after the write,
 * through the executor's acq_rel hand-over) and by the user after the graph
 * ends. Reads never mutate (no row cache), so any number of tasks read one
 * handle concurrently. A TABLE value keeps the prefix sums of its batch sizes
 * to find a row's batch by binary search.
 *
 * "sql". The inputs become a private catalog of *views*: shallow copies of the
 * input tables' headers renamed to the handles' names (batches, dictionaries
 * and statistics shared, never freed through the view), so a task can query
 * the same table under another name, or an intermediate result, without a
 * copy and without touching the context's catalog (which other threads may
 * be reading). The result may borrow the inputs' buffers; that is safe
 * because every value lives until the graph is destroyed. The operators run
 * on the context's pool when no other "sql" task holds it (a flag), else on
 * the task's own thread: the pool runs one job at a time.
 *
 * "concat". Bytes are appended. Tables must agree on column count and types;
 * numeric and BOOLEAN columns are borrowed batch by batch (no copy); a
 * VARCHAR column is borrowed when all inputs share its dictionary, else its
 * codes are re-encoded into one new dictionary (a table column has exactly
 * one dictionary, which the operators rely on).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/columns_internal.h"
#include "exec/exec.h"
#include "graph/graph_internal.h"
#include "sql/ast.h"
#include "sql/catalog.h"
#include "sql/planner.h"

/* ---- values ------------------------------------------------------------------------ */

void tsr_graph_value_free(tsr_mem_t *mem, graph_value_t *v)
{
    if (v->kind == TSR_DATA_BYTES && !v->bytes_borrowed)
        tsr_mem_free(mem, v->bytes);
    if (v->kind == TSR_DATA_TABLE && v->table_owned)
        tsr_table_destroy(v->table);
    tsr_mem_free(mem, v->batch_start);
    memset(v, 0, sizeof(*v));
}

tsr_status_t tsr_graph_value_set_table(tsr_mem_t *mem, graph_value_t *v, tsr_table_t *table,
                                       bool owned)
{
    size_t *bs = tsr_columns_batch_starts(mem, table);
    if (!bs) {
        if (owned)
            tsr_table_destroy(table);
        return TSR_ERR_NOMEM;
    }
    tsr_graph_value_free(mem, v);
    v->kind = TSR_DATA_TABLE;
    v->table = table;
    v->table_owned = owned;
    v->batch_start = bs;
    return TSR_OK;
}

/* A task may write only its own outputs (others' values may be read concurrently). */
static tsr_status_t check_output(tsr_task_ctx_t *tc, const tsr_data_t *out)
{
    const tsr_task_t *t = tc->task;
    for (uint32_t k = 0; k < t->nout; k++)
        if (tc->graph->refs[t->out_off + k] == out)
            return TSR_OK;
    char buf[64];
    return tsr_task_fail(tc, TSR_ERR_INVALID_ARG,
                         "data handle %s is not an output of this task",
                         out ? tsr_graph_data_label(out, buf, sizeof(buf)) : "NULL");
}

tsr_status_t tsr_data_set_bytes(tsr_task_ctx_t *tc, tsr_data_t *out, const void *bytes,
                                size_t len)
{
    if (!bytes && len)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "no bytes to set");
    void *p = tsr_data_alloc_bytes(tc, out, len);
    if (!p)
        return tc->task->status != TSR_OK ? tc->task->status : TSR_ERR_NOMEM;
    if (len)
        memcpy(p, bytes, len);
    return TSR_OK;
}

void *tsr_data_alloc_bytes(tsr_task_ctx_t *tc, tsr_data_t *out, size_t len)
{
    tsr_status_t rc = check_output(tc, out);
    if (rc != TSR_OK) {
        tc->task->status = rc;
        return NULL;
    }
    void *p = tsr_mem_alloc(tc->graph->mem, len ? len : 1);
    if (!p) {
        tsr_task_fail(tc, TSR_ERR_NOMEM, "out of memory for %zu bytes", len);
        return NULL;
    }
    tsr_graph_value_free(tc->graph->mem, &out->v);
    out->v.kind = TSR_DATA_BYTES;
    out->v.bytes = p;
    out->v.len = len;
    return p;
}

tsr_status_t tsr_data_set_columns(tsr_task_ctx_t *tc, tsr_data_t *out, size_t ncols,
                                  const tsr_column_data_t *cols, size_t nrows)
{
    tsr_status_t rc = check_output(tc, out);
    if (rc != TSR_OK)
        return rc;
    tsr_mem_t *mem = tc->graph->mem;
    tsr_table_t *table = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    rc = tsr_columns_build(mem, NULL, ncols, cols, nrows, &table, &err);
    if (rc == TSR_OK)
        rc = tsr_graph_value_set_table(mem, &out->v, table, true); /* takes table */
    if (rc != TSR_OK && err.status != TSR_OK)
        tsr_task_fail(tc, rc, "%s", err.message);
    else if (rc != TSR_OK)
        tsr_task_fail(tc, rc, "cannot build the output table: %s", tsr_status_str(rc));
    return rc;
}

/* ---- reading ------------------------------------------------------------------------ */

tsr_data_kind_t tsr_data_kind(const tsr_data_t *d)
{
    return d ? d->v.kind : TSR_DATA_EMPTY;
}

const char *tsr_data_name(const tsr_data_t *d)
{
    return d && d->name ? d->name : "";
}

const void *tsr_data_bytes(const tsr_data_t *d, size_t *len)
{
    bool ok = d && d->v.kind == TSR_DATA_BYTES;
    if (len)
        *len = ok ? d->v.len : 0;
    return ok ? d->v.bytes : NULL;
}

static const tsr_table_t *data_table(const tsr_data_t *d)
{
    return d && d->v.kind == TSR_DATA_TABLE ? d->v.table : NULL;
}

size_t tsr_data_row_count(const tsr_data_t *d)
{
    const tsr_table_t *t = data_table(d);
    return t ? t->nrows : 0;
}

size_t tsr_data_column_count(const tsr_data_t *d)
{
    const tsr_table_t *t = data_table(d);
    return t ? t->ncols : 0;
}

const char *tsr_data_column_name(const tsr_data_t *d, size_t col)
{
    const tsr_table_t *t = data_table(d);
    return t && col < t->ncols ? t->fields[col].name : NULL;
}

tsr_type_t tsr_data_column_type(const tsr_data_t *d, size_t col)
{
    const tsr_table_t *t = data_table(d);
    return t && col < t->ncols ? t->fields[col].type : TSR_TYPE_NULL;
}

/* The cell (row, col); out of range when d is not a table. No batch cache:
 * reads must not mutate (concurrent readers). */
static tsr_columns_cell_t cell(const tsr_data_t *d, size_t row, size_t col)
{
    size_t b = 0;
    return tsr_columns_cell(data_table(d), d ? d->v.batch_start : NULL, row, col, &b);
}

bool tsr_data_is_null(const tsr_data_t *d, size_t row, size_t col)
{
    return tsr_columns_is_null(cell(d, row, col));
}

int64_t tsr_data_int64(const tsr_data_t *d, size_t row, size_t col)
{
    return tsr_columns_int64(cell(d, row, col));
}

double tsr_data_double(const tsr_data_t *d, size_t row, size_t col)
{
    return tsr_columns_double(cell(d, row, col));
}

bool tsr_data_bool(const tsr_data_t *d, size_t row, size_t col)
{
    return tsr_columns_bool(cell(d, row, col));
}

const char *tsr_data_string(const tsr_data_t *d, size_t row, size_t col, size_t *len)
{
    return tsr_columns_string(cell(d, row, col), len);
}

/* ---- "sql" ---------------------------------------------------------------------------- */

static tsr_status_t op_sql(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *out)
{
    tsr_graph_t *g = tc->graph;
    tsr_mem_t *mem = g->mem;
    const char *sql = tc->task->sql;
    char buf[64];
    for (size_t i = 0; i < nin; i++)
        if (in[i]->v.kind != TSR_DATA_TABLE)
            return tsr_task_fail(tc, TSR_ERR_TYPE, "input %s is not a table",
                                 tsr_graph_data_label(in[i], buf, sizeof(buf)));
    tsr_table_t *views = tsr_mem_calloc(mem, nin ? nin : 1, sizeof(tsr_table_t));
    tsr_table_t **ptrs = tsr_mem_calloc(mem, nin ? nin : 1, sizeof(tsr_table_t *));
    tsr_arena_t arena;
    tsr_arena_init(&arena, mem);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_table_t *result = NULL;
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!views || !ptrs) {
        tsr_error_set(&err, rc, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < nin; i++) {
        views[i] = *in[i]->v.table;
        views[i].name = in[i]->name; /* borrowed: the view is never destroyed */
        views[i].lazy = NULL;        /* loaded in full when the handle was made */
        ptrs[i] = &views[i];
    }
    tsr_catalog_t cat = {.mem = mem, .tables = ptrs, .ntables = nin, .cap = nin};
    tsr_ast_select_t *ast = NULL;
    tsr_plan_t *plan = NULL;
    if ((rc = tsr_sql_parse(&arena, sql, strlen(sql), &ast, &err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_sql_plan(&arena, &cat, sql, ast, &plan, &err)) != TSR_OK)
        goto cleanup;
    bool pooled = !atomic_flag_test_and_set_explicit(&g->sql_pool_busy, memory_order_acquire);
    tsr_exec_ctx_t ectx = {.mem = mem,
                           .pool = pooled ? g->ctx->pool : NULL,
                           .cancel = &g->cancel_flag, /* stops with the graph */
                           .cancel_also = tsr__context_cancel_flag(g->ctx)};
    rc = tsr_exec_run(&ectx, plan, &result, &err);
    if (pooled)
        atomic_flag_clear_explicit(&g->sql_pool_busy, memory_order_release);
    if (rc != TSR_OK)
        goto cleanup;
    rc = tsr_graph_value_set_table(mem, &out->v, result, true); /* takes result */
    result = NULL;
    if (rc != TSR_OK)
        tsr_error_set(&err, rc, "out of memory");

cleanup:
    tsr_table_destroy(result);
    tsr_arena_release(&arena);
    tsr_mem_free(mem, ptrs);
    tsr_mem_free(mem, views);
    if (rc != TSR_OK) {
        if (err.line > 0)
            tsr_task_fail(tc, rc, "%s (at line %d, column %d of the query)", err.message,
                          err.line, err.column);
        else
            tsr_task_fail(tc, rc, "%s", err.status != TSR_OK ? err.message : tsr_status_str(rc));
    }
    return rc;
}

/* ---- "concat" ------------------------------------------------------------------------- */

static tsr_status_t concat_bytes(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *out)
{
    size_t total = 0;
    for (size_t i = 0; i < nin; i++)
        total += in[i]->v.len;
    uint8_t *p = tsr_data_alloc_bytes(tc, out, total);
    if (!p)
        return TSR_ERR_NOMEM;
    for (size_t i = 0; i < nin; i++) {
        if (in[i]->v.len)
            memcpy(p, in[i]->v.bytes, in[i]->v.len);
        p += in[i]->v.len;
    }
    return TSR_OK;
}

/* Column c of every input re-encoded into dict: maps[i][code] = new code. */
static tsr_status_t reencode_maps(tsr_mem_t *mem, const tsr_data_t *const *in, size_t nin,
                                  size_t c, tsr_dict_t *dict, uint32_t **maps)
{
    for (size_t i = 0; i < nin; i++) {
        const tsr_table_t *t = in[i]->v.table;
        const tsr_dict_t *src = NULL;
        for (size_t b = 0; b < t->nbatches && !src; b++)
            src = t->batches[b].cols[c].dict;
        uint32_t n = src ? tsr_dict_size(src) : 0;
        maps[i] = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
        if (!maps[i])
            return TSR_ERR_NOMEM;
        for (uint32_t k = 0; k < n; k++) {
            size_t len;
            const char *s = tsr_dict_get(src, k, &len);
            tsr_status_t rc = tsr_dict_intern(dict, s, len, &maps[i][k]);
            if (rc != TSR_OK)
                return rc;
        }
    }
    return TSR_OK;
}

static tsr_status_t concat_tables(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                  tsr_data_t *out)
{
    tsr_mem_t *mem = tc->graph->mem;
    const tsr_table_t *first = in[0]->v.table;
    size_t ncols = first->ncols;
    char buf[64];
    for (size_t i = 1; i < nin; i++) {
        const tsr_table_t *t = in[i]->v.table;
        bool same = t->ncols == ncols;
        for (size_t c = 0; same && c < ncols; c++)
            same = t->fields[c].type == first->fields[c].type;
        if (!same)
            return tsr_task_fail(tc, TSR_ERR_TYPE,
                                 "input %s has other column types than the first input",
                                 tsr_graph_data_label(in[i], buf, sizeof(buf)));
    }
    const char **names = tsr_mem_calloc(mem, ncols, sizeof(char *));
    tsr_type_t *types = tsr_mem_calloc(mem, ncols, sizeof(tsr_type_t));
    uint32_t ***maps = tsr_mem_calloc(mem, ncols, sizeof(uint32_t **)); /* [col][input] */
    tsr_table_t *table = NULL;
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!names || !types || !maps)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        names[c] = first->fields[c].name;
        types[c] = first->fields[c].type;
    }
    if ((rc = tsr_table_create(mem, NULL, ncols, names, types, &table)) != TSR_OK)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        if (types[c] != TSR_TYPE_VARCHAR)
            continue;
        const tsr_dict_t *shared = NULL;
        bool one = true;
        for (size_t i = 0; i < nin && one; i++) {
            const tsr_table_t *t = in[i]->v.table;
            for (size_t b = 0; b < t->nbatches && one; b++) {
                const tsr_dict_t *dd = t->batches[b].cols[c].dict;
                if (!shared)
                    shared = dd;
                one = dd == shared;
            }
        }
        if (one)
            continue; /* borrow the vectors as they are */
        tsr_dict_t *dict;
        rc = TSR_ERR_NOMEM;
        if (!(maps[c] = tsr_mem_calloc(mem, nin, sizeof(uint32_t *))) ||
            (rc = tsr_dict_create(mem, &dict)) != TSR_OK)
            goto cleanup;
        tsr_table_adopt_dict(table, c, dict);
        if ((rc = reencode_maps(mem, in, nin, c, dict, maps[c])) != TSR_OK ||
            (rc = tsr_dict_freeze(dict)) != TSR_OK)
            goto cleanup;
    }
    for (size_t i = 0; i < nin; i++) {
        const tsr_table_t *t = in[i]->v.table;
        for (size_t b = 0; b < t->nbatches; b++) {
            const tsr_batch_t *src = &t->batches[b];
            if (tsr_task_cancelled(tc)) { /* re-encoding is per row: check per batch */
                rc = TSR_ERR_CANCELLED;
                goto cleanup;
            }
            tsr_vector_t *vecs = tsr_mem_calloc(mem, ncols, sizeof(tsr_vector_t));
            rc = TSR_ERR_NOMEM;
            if (!vecs)
                goto cleanup;
            size_t c = 0;
            rc = TSR_OK;
            for (; c < ncols && rc == TSR_OK; c++) {
                if (!maps[c]) {
                    vecs[c] = tsr_vector_borrow(&src->cols[c]);
                    continue;
                }
                const tsr_vector_t *sv = &src->cols[c];
                rc = tsr_vector_alloc(mem, TSR_TYPE_VARCHAR, src->nrows, false,
                                      table->dicts[c], &vecs[c]);
                if (rc != TSR_OK)
                    break;
                vecs[c].validity = sv->validity; /* borrowed */
                const uint32_t *codes = sv->data;
                uint32_t *dst = vecs[c].data;
                uint32_t n = sv->dict ? tsr_dict_size(sv->dict) : 0;
                for (size_t r = 0; r < src->nrows; r++)
                    dst[r] = codes[r] < n ? maps[c][i][codes[r]] : 0;
            }
            if (rc == TSR_OK && (rc = tsr_table_append_batch(table, src->nrows, vecs)) != TSR_OK)
                c = ncols;
            if (rc != TSR_OK) {
                for (size_t d = 0; d < c && d < ncols; d++)
                    tsr_vector_release(mem, &vecs[d]);
                tsr_mem_free(mem, vecs);
                goto cleanup;
            }
        }
    }
    rc = tsr_graph_value_set_table(mem, &out->v, table, true); /* takes table */
    table = NULL;

cleanup:
    tsr_table_destroy(table);
    if (maps)
        for (size_t c = 0; c < ncols; c++) {
            for (size_t i = 0; maps[c] && i < nin; i++)
                tsr_mem_free(mem, maps[c][i]);
            tsr_mem_free(mem, maps[c]);
        }
    tsr_mem_free(mem, maps);
    tsr_mem_free(mem, names);
    tsr_mem_free(mem, types);
    if (rc != TSR_OK)
        tsr_task_fail(tc, rc, "concat: %s", tsr_status_str(rc));
    return rc;
}

static tsr_status_t op_concat(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *out)
{
    tsr_data_kind_t k = in[0]->v.kind;
    char buf[64];
    for (size_t i = 0; i < nin; i++)
        if (in[i]->v.kind != k || k == TSR_DATA_EMPTY)
            return tsr_task_fail(tc, TSR_ERR_TYPE,
                                 "concat: input %s is %s; all inputs must be tables or all bytes",
                                 tsr_graph_data_label(in[i], buf, sizeof(buf)),
                                 in[i]->v.kind == TSR_DATA_EMPTY ? "empty" : "of another kind");
    return k == TSR_DATA_BYTES ? concat_bytes(tc, in, nin, out) : concat_tables(tc, in, nin, out);
}

/* ---- dispatch ------------------------------------------------------------------------- */

tsr_status_t tsr_graph_op_run(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    (void)nout; /* arity was checked when the task was added */
    switch (tc->task->kind->builtin) {
    case GRAPH_SQL:
        return op_sql(tc, in, nin, out[0]);
    case GRAPH_CONCAT:
        return op_concat(tc, in, nin, out[0]);
    case GRAPH_IDENTITY: {
        const graph_value_t *v = &in[0]->v;
        if (v->kind == TSR_DATA_TABLE) {
            tsr_status_t rc = tsr_graph_value_set_table(tc->graph->mem, &out[0]->v, v->table,
                                                        false);
            return rc == TSR_OK ? rc : tsr_task_fail(tc, rc, "out of memory");
        }
        tsr_graph_value_free(tc->graph->mem, &out[0]->v);
        out[0]->v.kind = v->kind;
        out[0]->v.bytes = v->bytes;
        out[0]->v.len = v->len;
        out[0]->v.bytes_borrowed = true;
        return TSR_OK;
    }
    case GRAPH_USER:
        break;
    }
    return tsr_task_fail(tc, TSR_ERR_INTERNAL, "not a built-in task kind");
}
