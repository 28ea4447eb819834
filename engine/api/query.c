/*
 * query.c - running SQL on the embedded engine and reading the result
 * (see tessera/query.h).
 *
 * A query goes parse -> plan -> execute. The AST and plan live in one arena
 * released before returning; the executor copies what the result needs (names,
 * string constants) into the result table. The context's cancel token
 * (context.h) is read before planning and by the executor per batch; a CSV
 * column that planning loads is parsed to its end. The result may borrow column
 * storage from catalog tables, which is why it must die before its context,
 * and why the context keeps a table replaced while results live (retired
 * tables, see context_internal.h): each result counts itself live.
 *
 * Row access: batches have varying sizes (filters shrink them), so the result
 * keeps the prefix sums of batch sizes and finds a row's batch by binary search,
 * with a one-entry cache for the common sequential scan.
 */
#include <string.h>

#include "api/columns_internal.h"
#include "api/context_internal.h"
#include "exec/exec.h"
#include "sql/ast.h"
#include "sql/planner.h"
#include "tessera/query.h"

struct tsr_result {
    tsr_context_t *ctx; /* counts this result as live (see context_internal.h) */
    tsr_mem_t *mem;
    tsr_table_t *table;  /* owned */
    size_t *batch_start; /* nbatches + 1 prefix sums of batch row counts */
    size_t last_batch;   /* cache for sequential access (not thread-safe reads) */
};

tsr_status_t tsr_query(tsr_context_t *ctx, const char *sql, tsr_result_t **out)
{
    tsr__context_begin(ctx);
    if (!sql || !out)
        return tsr__context_end(ctx, TSR_ERR_INVALID_ARG);
    tsr_mem_t *mem = &ctx->mem;
    tsr_arena_t arena;
    tsr_arena_init(&arena, mem);
    tsr_ast_select_t *ast = NULL;
    tsr_plan_t *plan = NULL;
    tsr_table_t *table = NULL;
    tsr_result_t *res = NULL;
    tsr_status_t rc = tsr_sql_parse(&arena, sql, strlen(sql), &ast, &ctx->last_error);
    if (rc != TSR_OK)
        goto cleanup;
    if (tsr_cancel_is_set(ctx->cancel)) { /* before planning, which may load CSV columns */
        rc = tsr_error_set(&ctx->last_error, TSR_ERR_CANCELLED, "cancelled");
        goto cleanup;
    }
    ctx->catalog.cancel = tsr__context_cancel_flag(ctx); /* CSV loads while planning */
    rc = tsr_sql_plan(&arena, &ctx->catalog, sql, ast, &plan, &ctx->last_error);
    ctx->catalog.cancel = NULL;
    if (rc != TSR_OK)
        goto cleanup;
    tsr_exec_ctx_t ectx = {.mem = mem, .pool = ctx->pool, .cancel = tsr__context_cancel_flag(ctx)};
    rc = tsr_exec_run_dev(&ectx, ctx->dev, plan, &table, &ctx->last_error);
    if (rc != TSR_OK)
        goto cleanup;
    rc = TSR_ERR_NOMEM;
    res = tsr_mem_calloc(mem, 1, sizeof(*res));
    if (!res)
        goto cleanup;
    res->mem = mem;
    res->batch_start = tsr_columns_batch_starts(mem, table);
    if (!res->batch_start)
        goto cleanup;
    res->table = table;
    table = NULL;
    res->ctx = ctx;
    ctx->live_results++;
    *out = res;
    res = NULL;
    rc = TSR_OK;

cleanup:
    if (res) {
        tsr_mem_free(mem, res->batch_start);
        tsr_mem_free(mem, res);
    }
    tsr_table_destroy(table);
    tsr_arena_release(&arena);
    return tsr__context_end(ctx, rc);
}

void tsr_result_destroy(tsr_result_t *res)
{
    if (!res)
        return;
    tsr_context_t *ctx = res->ctx;
    tsr_table_destroy(res->table);
    tsr_mem_free(res->mem, res->batch_start);
    tsr_mem_free(res->mem, res);
    if (--ctx->live_results == 0)
        tsr__context_free_retired(ctx);
}

size_t tsr_result_column_count(const tsr_result_t *res)
{
    return res->table->ncols;
}

const char *tsr_result_column_name(const tsr_result_t *res, size_t col)
{
    return col < res->table->ncols ? res->table->fields[col].name : NULL;
}

tsr_type_t tsr_result_column_type(const tsr_result_t *res, size_t col)
{
    return col < res->table->ncols ? res->table->fields[col].type : TSR_TYPE_NULL;
}

size_t tsr_result_row_count(const tsr_result_t *res)
{
    return res->table->nrows;
}

/* The cell (row, col). Keeps the row's batch as the next call's hint
 * (sequential reads skip the search). */
static tsr_columns_cell_t result_cell(const tsr_result_t *res, size_t row, size_t col)
{
    size_t b = res->last_batch;
    tsr_columns_cell_t c = tsr_columns_cell(res->table, res->batch_start, row, col, &b);
    ((tsr_result_t *)res)->last_batch = b;
    return c;
}

bool tsr_result_is_null(const tsr_result_t *res, size_t row, size_t col)
{
    return tsr_columns_is_null(result_cell(res, row, col));
}

int64_t tsr_result_int64(const tsr_result_t *res, size_t row, size_t col)
{
    return tsr_columns_int64(result_cell(res, row, col));
}

double tsr_result_double(const tsr_result_t *res, size_t row, size_t col)
{
    return tsr_columns_double(result_cell(res, row, col));
}

bool tsr_result_bool(const tsr_result_t *res, size_t row, size_t col)
{
    return tsr_columns_bool(result_cell(res, row, col));
}

const char *tsr_result_string(const tsr_result_t *res, size_t row, size_t col, size_t *len_out)
{
    return tsr_columns_string(result_cell(res, row, col), len_out);
}
