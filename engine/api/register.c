/*
 * register.c - putting tables into a context's catalog: from CSV files and
 * from columns in memory (see tessera/table.h).
 */
#include <string.h>
#include <strings.h>

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
    rc = tsr_csv_read_file(&ctx->mem, ctx->pool, path, name, &opts, &table, &ctx->last_error);
    if (rc != TSR_OK)
        return tsr__context_end(ctx, rc);
    return tsr__context_end(ctx, tsr__context_install(ctx, table));
}

/* Copies rows [start, start+n) of one user column into an owned vector. */
static tsr_status_t copy_column_slice(tsr_mem_t *mem, const tsr_column_data_t *col,
                                      tsr_dict_t *dict, size_t start, size_t n, tsr_vector_t *out)
{
    bool has_nulls = false;
    if (col->nulls)
        for (size_t i = 0; i < n && !has_nulls; i++)
            has_nulls = col->nulls[start + i];
    tsr_status_t rc = tsr_vector_alloc(mem, col->type, n, has_nulls, dict, out);
    if (rc != TSR_OK)
        return rc;
    if (has_nulls)
        for (size_t i = 0; i < n; i++)
            tsr_bit_set(out->validity, i, !col->nulls[start + i]);
    switch (col->type) {
    case TSR_TYPE_INT64:
        memcpy(out->data, (const int64_t *)col->values + start, n * sizeof(int64_t));
        break;
    case TSR_TYPE_DOUBLE:
        memcpy(out->data, (const double *)col->values + start, n * sizeof(double));
        break;
    case TSR_TYPE_BOOL: {
        const bool *src = (const bool *)col->values + start;
        uint8_t *dst = out->data;
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i] ? 1 : 0;
        break;
    }
    case TSR_TYPE_VARCHAR: {
        const char *const *src = (const char *const *)col->values + start;
        uint32_t *codes = out->data;
        for (size_t i = 0; i < n; i++) {
            const char *s = src[i];
            if (!s) { /* a NULL pointer is a NULL value */
                if ((rc = tsr_vector_ensure_validity(mem, out)) != TSR_OK)
                    goto err_release;
                tsr_bit_set(out->validity, i, false);
                codes[i] = 0;
                continue;
            }
            if (has_nulls && col->nulls[start + i]) {
                codes[i] = 0;
                continue;
            }
            if ((rc = tsr_dict_intern(dict, s, strlen(s), &codes[i])) != TSR_OK)
                goto err_release;
        }
        break;
    }
    case TSR_TYPE_NULL:
        break;
    }
    return TSR_OK;

err_release:
    tsr_vector_release(mem, out);
    return rc;
}

tsr_status_t tsr_table_register_columns(tsr_context_t *ctx, const char *name, size_t ncols,
                                        const tsr_column_data_t *cols, size_t nrows)
{
    tsr__context_begin(ctx);
    tsr_mem_t *mem = &ctx->mem;
    tsr_status_t rc = check_table_name(ctx, name);
    if (rc != TSR_OK)
        return rc;
    if (ncols == 0 || !cols)
        return tsr_error_set(&ctx->last_error, TSR_ERR_INVALID_ARG, "a table needs columns");
    const char **names = tsr_mem_calloc(mem, ncols, sizeof(char *));
    tsr_type_t *types = tsr_mem_calloc(mem, ncols, sizeof(tsr_type_t));
    tsr_table_t *table = NULL;
    rc = TSR_ERR_NOMEM;
    if (!names || !types)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        rc = TSR_ERR_INVALID_ARG;
        if (!cols[c].name || !*cols[c].name) {
            tsr_error_set(&ctx->last_error, rc, "column %zu has no name", c);
            goto cleanup;
        }
        if (cols[c].type == TSR_TYPE_NULL || cols[c].type > TSR_TYPE_VARCHAR ||
            (!cols[c].values && nrows > 0)) {
            tsr_error_set(&ctx->last_error, rc, "column '%s': bad type or no values",
                          cols[c].name);
            goto cleanup;
        }
        for (size_t d = 0; d < c; d++)
            if (strcasecmp(cols[d].name, cols[c].name) == 0) {
                tsr_error_set(&ctx->last_error, rc, "duplicate column name '%s'", cols[c].name);
                goto cleanup;
            }
        names[c] = cols[c].name;
        types[c] = cols[c].type;
    }
    if ((rc = tsr_table_create(mem, name, ncols, names, types, &table)) != TSR_OK)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        if (types[c] != TSR_TYPE_VARCHAR)
            continue;
        tsr_dict_t *dict = NULL;
        if ((rc = tsr_dict_create(mem, &dict)) != TSR_OK)
            goto cleanup;
        tsr_table_adopt_dict(table, c, dict);
    }
    for (size_t start = 0; start < nrows; start += TSR_BATCH_ROWS) {
        size_t n = nrows - start < TSR_BATCH_ROWS ? nrows - start : TSR_BATCH_ROWS;
        tsr_vector_t *vecs = tsr_mem_calloc(mem, ncols, sizeof(tsr_vector_t));
        rc = TSR_ERR_NOMEM;
        if (!vecs)
            goto cleanup;
        for (size_t c = 0; c < ncols; c++) {
            rc = copy_column_slice(mem, &cols[c], table->dicts[c], start, n, &vecs[c]);
            if (rc != TSR_OK) {
                for (size_t d = 0; d < c; d++)
                    tsr_vector_release(mem, &vecs[d]);
                tsr_mem_free(mem, vecs);
                goto cleanup;
            }
        }
        if ((rc = tsr_table_append_batch(table, n, vecs)) != TSR_OK) {
            for (size_t c = 0; c < ncols; c++)
                tsr_vector_release(mem, &vecs[c]);
            tsr_mem_free(mem, vecs);
            goto cleanup;
        }
    }
    for (size_t c = 0; c < ncols; c++)
        if (table->dicts[c] && (rc = tsr_dict_freeze(table->dicts[c])) != TSR_OK)
            goto cleanup;
    rc = tsr__context_install(ctx, table); /* takes the table, even on failure */
    table = NULL;

cleanup:
    tsr_table_destroy(table);
    tsr_mem_free(mem, names);
    tsr_mem_free(mem, types);
    return tsr__context_end(ctx, rc);
}
