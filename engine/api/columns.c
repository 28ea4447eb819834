/*
 * columns.c - building a table from user columns and reading its cells by
 * row number, shared by the public API (register.c, query.c) and the task
 * graph's data handles (graph/graph_ops.c). See columns_internal.h.
 *
 * Invariants: a built table has one dictionary per VARCHAR column, frozen,
 * and its statistics computed (the planner reads the INT64 ranges); every
 * batch but the last holds TSR_BATCH_ROWS rows. Readers never mutate the
 * table, so concurrent reads are safe as long as each reader keeps its own
 * batch hint.
 */
#include <string.h>
#include <strings.h>

#include "api/columns_internal.h"
#include "table/dict.h"

/* Rows [start, start+n) of one user column into an owned vector. */
static tsr_status_t copy_slice(tsr_mem_t *mem, const tsr_column_data_t *col, tsr_dict_t *dict,
                               size_t start, size_t n, tsr_vector_t *out)
{
    bool nulls = false;
    for (size_t i = 0; col->nulls && i < n && !nulls; i++)
        nulls = col->nulls[start + i];
    if (col->type == TSR_TYPE_VARCHAR) /* a NULL string pointer is a NULL value too */
        for (size_t i = 0; i < n && !nulls; i++)
            nulls = ((const char *const *)col->values)[start + i] == NULL;
    tsr_status_t rc = tsr_vector_alloc(mem, col->type, n, nulls, dict, out);
    if (rc != TSR_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        bool isnull = col->nulls && col->nulls[start + i];
        switch (col->type) {
        case TSR_TYPE_INT64:
            ((int64_t *)out->data)[i] = ((const int64_t *)col->values)[start + i];
            break;
        case TSR_TYPE_DOUBLE:
            ((double *)out->data)[i] = ((const double *)col->values)[start + i];
            break;
        case TSR_TYPE_BOOL:
            ((uint8_t *)out->data)[i] = ((const bool *)col->values)[start + i] ? 1 : 0;
            break;
        case TSR_TYPE_VARCHAR: {
            const char *s = ((const char *const *)col->values)[start + i];
            uint32_t *codes = out->data;
            isnull |= s == NULL;
            codes[i] = 0;
            if (!isnull && (rc = tsr_dict_intern(dict, s, strlen(s), &codes[i])) != TSR_OK) {
                tsr_vector_release(mem, out);
                return rc;
            }
            break;
        }
        case TSR_TYPE_NULL:
            break;
        }
        if (isnull)
            tsr_bit_set(out->validity, i, false);
    }
    return TSR_OK;
}

tsr_status_t tsr_columns_build(tsr_mem_t *mem, const char *name, size_t ncols,
                               const tsr_column_data_t *cols, size_t nrows, tsr_table_t **out,
                               tsr_error_t *err)
{
    if (ncols == 0 || !cols)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "a table needs columns");
    const char **names = tsr_mem_calloc(mem, ncols, sizeof(char *));
    tsr_type_t *types = tsr_mem_calloc(mem, ncols, sizeof(tsr_type_t));
    tsr_table_t *table = NULL;
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!names || !types)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        rc = TSR_ERR_INVALID_ARG;
        if (!cols[c].name || !*cols[c].name) {
            tsr_error_set(err, rc, "column %zu has no name", c);
            goto cleanup;
        }
        if (cols[c].type == TSR_TYPE_NULL || cols[c].type > TSR_TYPE_VARCHAR ||
            (!cols[c].values && nrows > 0)) {
            tsr_error_set(err, rc, "column '%s': bad type or no values", cols[c].name);
            goto cleanup;
        }
        for (size_t d = 0; d < c; d++)
            if (strcasecmp(cols[d].name, cols[c].name) == 0) {
                tsr_error_set(err, rc, "duplicate column name '%s'", cols[c].name);
                goto cleanup;
            }
        names[c] = cols[c].name;
        types[c] = cols[c].type;
    }
    if ((rc = tsr_table_create(mem, name, ncols, names, types, &table)) != TSR_OK)
        goto cleanup;
    for (size_t c = 0; c < ncols; c++) {
        tsr_dict_t *dict = NULL;
        if (types[c] != TSR_TYPE_VARCHAR)
            continue;
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
        size_t c = 0;
        for (; c < ncols; c++)
            if ((rc = copy_slice(mem, &cols[c], table->dicts[c], start, n, &vecs[c])) != TSR_OK)
                break;
        if (rc == TSR_OK && (rc = tsr_table_append_batch(table, n, vecs)) != TSR_OK)
            c = ncols;
        if (rc != TSR_OK) {
            for (size_t d = 0; d < c; d++)
                tsr_vector_release(mem, &vecs[d]);
            tsr_mem_free(mem, vecs);
            goto cleanup;
        }
    }
    for (size_t c = 0; c < ncols; c++)
        if (table->dicts[c] && (rc = tsr_dict_freeze(table->dicts[c])) != TSR_OK)
            goto cleanup;
    if ((rc = tsr_table_compute_stats(table)) != TSR_OK) /* INT64 ranges for the planner */
        goto cleanup;
    *out = table;
    table = NULL;

cleanup:
    tsr_table_destroy(table);
    tsr_mem_free(mem, names);
    tsr_mem_free(mem, types);
    return rc;
}

size_t *tsr_columns_batch_starts(tsr_mem_t *mem, const tsr_table_t *t)
{
    size_t *bs = tsr_mem_alloc(mem, (t->nbatches + 1) * sizeof(size_t));
    if (!bs)
        return NULL;
    bs[0] = 0;
    for (size_t b = 0; b < t->nbatches; b++)
        bs[b + 1] = bs[b] + t->batches[b].nrows;
    return bs;
}

tsr_columns_cell_t tsr_columns_cell(const tsr_table_t *t, const size_t *batch_start, size_t row,
                                    size_t col, size_t *batch)
{
    tsr_columns_cell_t c = {NULL, 0};
    if (!t || row >= t->nrows || col >= t->ncols)
        return c;
    size_t b = *batch;
    if (b >= t->nbatches || row < batch_start[b] || row >= batch_start[b + 1]) {
        size_t lo = 0, hi = t->nbatches; /* the last b with batch_start[b] <= row */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (batch_start[mid] <= row)
                lo = mid;
            else
                hi = mid;
        }
        b = lo;
        while (batch_start[b + 1] <= row) /* skip empty batches */
            b++;
    }
    *batch = b;
    c.v = &t->batches[b].cols[col];
    c.i = row - batch_start[b];
    return c;
}

bool tsr_columns_is_null(tsr_columns_cell_t c)
{
    const tsr_vector_t *v = c.v;
    size_t i = c.i;
    return !v || v->type == TSR_TYPE_NULL || tsr_vector_is_null(v, i);
}

int64_t tsr_columns_int64(tsr_columns_cell_t c)
{
    const tsr_vector_t *v = c.v;
    size_t i = c.i;
    if (!v || tsr_vector_is_null(v, i))
        return 0;
    if (v->type == TSR_TYPE_INT64)
        return ((const int64_t *)v->data)[i];
    if (v->type == TSR_TYPE_BOOL)
        return ((const uint8_t *)v->data)[i];
    return 0;
}

double tsr_columns_double(tsr_columns_cell_t c)
{
    const tsr_vector_t *v = c.v;
    size_t i = c.i;
    if (!v || tsr_vector_is_null(v, i))
        return 0.0;
    if (v->type == TSR_TYPE_DOUBLE)
        return ((const double *)v->data)[i];
    if (v->type == TSR_TYPE_INT64)
        return (double)((const int64_t *)v->data)[i];
    return 0.0;
}

bool tsr_columns_bool(tsr_columns_cell_t c)
{
    const tsr_vector_t *v = c.v;
    size_t i = c.i;
    if (!v || tsr_vector_is_null(v, i) || v->type != TSR_TYPE_BOOL)
        return false;
    return ((const uint8_t *)v->data)[i] != 0;
}

const char *tsr_columns_string(tsr_columns_cell_t c, size_t *len)
{
    const tsr_vector_t *v = c.v;
    size_t i = c.i;
    if (!v || tsr_vector_is_null(v, i) || v->type != TSR_TYPE_VARCHAR || !v->dict) {
        if (len)
            *len = 0;
        return "";
    }
    return tsr_dict_get(v->dict, ((const uint32_t *)v->data)[i], len);
}
