/*
 * register.c - putting tables into a context's catalog: from CSV files and
 * from columns in memory (see tessera/table.h).
 */
#include <string.h>

#include "api/columns_internal.h"
#include "api/context_internal.h"
#include "table/csv.h"
#include "tessera/table.h"

static tsr_status_t check_table_name(tsr_context_t *ctx, const char *name)
{
    if (!name || !*name)
        return tsr_error_set(&ctx->last_error, TSR_ERR_INVALID_ARG, "a table needs a name");
    for (const char *p = name; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p != name && c >= '0' && c <= '9');
        if (!ok) {
            tsr_error_set(&ctx->last_error, TSR_ERR_INVALID_ARG, "invalid table name '%s'", name);
            tsr_error_hint(&ctx->last_error,
                           "table names are letters, digits and '_', starting with a letter");
            return TSR_ERR_INVALID_ARG;
        }
    }
    return TSR_OK;
}

tsr_status_t tsr_table_register_csv(tsr_context_t *ctx, const char *name, const char *path,
                                    const tsr_csv_params_t *params)
{
    tsr__context_begin(ctx);
    tsr_status_t rc = check_table_name(ctx, name);
    if (rc != TSR_OK)
        return rc;
    tsr_csv_options_t opts = {0};
    if (params) {
        opts.delimiter = params->delimiter;
        opts.schema = params->schema;
    }
    tsr_table_t *table = NULL;
    /* values load on demand, only the columns queries read (projection pushdown) */
    rc = tsr_csv_open_file(&ctx->mem, ctx->pool, path, name, &opts, &table, &ctx->last_error);
    if (rc != TSR_OK)
        return tsr__context_end(ctx, rc);
    return tsr__context_end(ctx, tsr__context_install(ctx, table));
}

tsr_status_t tsr_table_register_columns(tsr_context_t *ctx, const char *name, size_t ncols,
                                        const tsr_column_data_t *cols, size_t nrows)
{
    tsr__context_begin(ctx);
    tsr_mem_t *mem = &ctx->mem;
    tsr_status_t rc = check_table_name(ctx, name);
    if (rc != TSR_OK)
        return rc;
    tsr_table_t *table = NULL;
    rc = tsr_columns_build(mem, name, ncols, cols, nrows, &table, &ctx->last_error);
    if (rc != TSR_OK)
        return tsr__context_end(ctx, rc);
    return tsr__context_end(ctx, tsr__context_install(ctx, table)); /* takes the table */
}
