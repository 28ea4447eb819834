/*
 * csv_lazy.c - CSV files loaded column by column, on demand (projection
 * pushdown; see csv.h and tsr_table_lazy_t in table.h).
 *
 * Opening reads the file's bytes and runs the cheap steps of a read: header,
 * schema, type inference over the sample, and the chunk plan (row boundaries).
 * The table it returns has the file's schema and no batch. Each load parses
 * the whole body again with the reader's skip set to the columns not asked
 * for: every field is still delimited and quote-checked, so malformed rows
 * and field counts are reported exactly as an eager read reports them, but
 * only the asked columns are converted, interned and stored. The result is
 * built as a scratch table (csv_build.c) whose vectors then move into the
 * lazy table: all of its batches the first time, the new columns' vectors
 * into the existing batches later (the same bytes and plan give the same
 * batches, which is checked). When every column is loaded the bytes go.
 *
 * Semantics next to an eager read: a value that does not fit its column's
 * type is noticed only when the column is loaded (an unreferenced column is
 * never converted, as in DuckDB's read_csv projection pushdown); an inferred
 * type may widen at that load, before the query that loads it is planned.
 */
#include <string.h>

#include "table/csv_internal.h"

typedef struct csv_lazy {
    tsr_pool_t *pool;
    char *buf; /* the file's bytes (owned) */
    size_t len;
    char *name;              /* file name for errors (owned) */
    tsr_csv_reader_t rd;     /* names, types and fixed owned; skip set per load */
    tsr_csv_chunk_t *chunks; /* byte ranges; parsing state reset after each load */
    size_t nchunks;
} csv_lazy_t;

static void csv_lazy_destroy(tsr_mem_t *mem, void *state)
{
    csv_lazy_t *lz = state;
    if (!lz)
        return;
    for (size_t i = 0; lz->chunks && i < lz->nchunks; i++)
        tsr_csv_chunk_reset(&lz->rd, &lz->chunks[i]);
    tsr_mem_free(mem, lz->chunks);
    tsr_csv_reader_fini(&lz->rd);
    tsr_mem_free(mem, lz->buf);
    tsr_mem_free(mem, lz->name);
    tsr_mem_free(mem, lz);
}

/* Moves column c's vectors (and dictionary) from src into t. */
static void csv_lazy_move_column(tsr_table_t *t, tsr_table_t *src, size_t c)
{
    for (size_t b = 0; b < t->nbatches; b++) {
        tsr_vector_release(t->mem, &t->batches[b].cols[c]);
        t->batches[b].cols[c] = src->batches[b].cols[c];
        memset(&src->batches[b].cols[c], 0, sizeof(tsr_vector_t));
    }
    if (src->dicts[c]) {
        tsr_table_adopt_dict(t, c, src->dicts[c]);
        src->dicts[c] = NULL;
    }
    t->fields[c].type = src->fields[c].type; /* widened while loading, maybe */
}

static tsr_status_t csv_lazy_load(tsr_table_t *t, void *state, const bool *cols,
                                  const atomic_int *cancel, tsr_error_t *err)
{
    csv_lazy_t *lz = state;
    tsr_mem_t *mem = t->mem;
    tsr_table_lazy_t *tl = t->lazy;
    size_t ncols = t->ncols;
    bool *skip = tsr_mem_alloc(mem, (ncols ? ncols : 1) * sizeof(bool));
    /* the statistics' array now, so that computing them below cannot fail
     * once the columns have moved in */
    if (!t->stats)
        t->stats = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_colstats_t));
    if (!skip || !t->stats) {
        tsr_mem_free(mem, skip);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory while reading '%s'", lz->name);
    }
    for (size_t c = 0; c < ncols; c++)
        skip[c] = !cols[c];
    lz->rd.skip = skip;
    lz->rd.cancel = cancel;
    tsr_table_t *tmp = NULL;
    tsr_status_t rc = tsr_csv_parse_all(&lz->rd, lz->pool, lz->chunks, lz->nchunks, lz->name, err);
    if (rc == TSR_OK) {
        rc = tsr_csv_build(&lz->rd, lz->pool, lz->chunks, lz->nchunks, t->name, &tmp);
        if (rc != TSR_OK)
            tsr_error_set(err, rc, "cannot build the table of '%s': %s", lz->name,
                          tsr_status_str(rc));
    }
    for (size_t i = 0; i < lz->nchunks; i++)
        tsr_csv_chunk_reset(&lz->rd, &lz->chunks[i]);
    lz->rd.skip = NULL;
    lz->rd.cancel = NULL;
    tsr_mem_free(mem, skip);
    if (rc != TSR_OK)
        return rc;

    if (!tl->rows) {
        /* the first load: every batch moves (other columns' vectors are empty) */
        t->batches = tmp->batches;
        t->nbatches = tmp->nbatches;
        t->batches_cap = tmp->batches_cap;
        t->nrows = tmp->nrows;
        tmp->batches = NULL;
        tmp->nbatches = tmp->batches_cap = 0;
        for (size_t c = 0; c < ncols; c++) {
            t->fields[c].type = tmp->fields[c].type;
            if (cols[c] && tmp->dicts[c]) {
                tsr_table_adopt_dict(t, c, tmp->dicts[c]);
                tmp->dicts[c] = NULL;
            }
        }
        tl->rows = true;
    } else {
        bool same = tmp->nbatches == t->nbatches && tmp->nrows == t->nrows;
        for (size_t b = 0; same && b < t->nbatches; b++)
            same = tmp->batches[b].nrows == t->batches[b].nrows;
        if (!same) {
            tsr_table_destroy(tmp);
            return tsr_error_set(err, TSR_ERR_INTERNAL,
                                 "'%s' gave different rows on a second parse", lz->name);
        }
        for (size_t c = 0; c < ncols; c++)
            if (cols[c])
                csv_lazy_move_column(t, tmp, c);
    }
    tsr_table_destroy(tmp);
    for (size_t c = 0; c < ncols; c++)
        tl->loaded[c] |= cols[c];
    return tsr_table_compute_stats(t); /* allocates nothing: cannot fail */
}

/* Opens data (owned from here on, freed on failure too) for lazy loading. */
static tsr_status_t csv_open(tsr_mem_t *mem, tsr_pool_t *pool, char *data, size_t len,
                             const char *name, const char *table_name,
                             const tsr_csv_options_t *opts, const tsr_csv_tuning_t *tuning,
                             tsr_table_t **out, tsr_error_t *err)
{
    tsr_table_t *t = NULL;
    csv_lazy_t *lz = tsr_mem_calloc(mem, 1, sizeof(*lz));
    if (!lz) {
        tsr_mem_free(mem, data);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory while reading '%s'", name);
    }
    lz->pool = pool;
    lz->buf = data;
    lz->len = len;
    tsr_status_t rc = tsr_csv_prepare(&lz->rd, mem, pool, data ? data : "", len, name, opts, tuning,
                                      &lz->chunks, &lz->nchunks, err);
    if (rc != TSR_OK)
        goto err_free;
    rc = TSR_ERR_NOMEM;
    if (!(lz->name = tsr_mem_strdup(mem, name)) ||
        tsr_table_create(mem, table_name, lz->rd.ncols, (const char *const *)lz->rd.names,
                         lz->rd.types, &t) != TSR_OK) {
        tsr_error_set(err, rc, "out of memory while reading '%s'", name);
        goto err_free;
    }
    if (!(t->lazy = tsr_mem_calloc(mem, 1, sizeof(*t->lazy))) ||
        !(t->lazy->loaded = tsr_mem_calloc(mem, lz->rd.ncols ? lz->rd.ncols : 1, sizeof(bool)))) {
        tsr_error_set(err, rc, "out of memory while reading '%s'", name);
        goto err_free;
    }
    t->lazy->state = lz;
    t->lazy->load = csv_lazy_load;
    t->lazy->destroy = csv_lazy_destroy;
    *out = t;
    return TSR_OK;

err_free:
    if (t && t->lazy && t->lazy->state)
        lz = NULL; /* freed with the table */
    tsr_table_destroy(t);
    csv_lazy_destroy(mem, lz);
    return rc;
}

tsr_status_t tsr_csv_open_file(tsr_mem_t *mem, tsr_pool_t *pool, const char *path,
                               const char *table_name, const tsr_csv_options_t *opts,
                               tsr_table_t **out, tsr_error_t *err)
{
    char *buf;
    size_t len;
    tsr_status_t rc = tsr_csv_file_bytes(mem, pool, path, &buf, &len, err);
    if (rc != TSR_OK)
        return rc;
    return csv_open(mem, pool, buf, len, path, table_name, opts, NULL, out, err);
}

tsr_status_t tsr_csv_open_owned(tsr_mem_t *mem, tsr_pool_t *pool, char *data, size_t len,
                                const char *display_name, const char *table_name,
                                const tsr_csv_options_t *opts, tsr_table_t **out, tsr_error_t *err)
{
    const char *name = display_name ? display_name : "<buffer>";
    if (!data && len)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "no CSV data for '%s'", name);
    return csv_open(mem, pool, data, len, name, table_name, opts, NULL, out, err);
}

tsr_status_t tsr_csv_open_buffer_tuned(tsr_mem_t *mem, tsr_pool_t *pool, const char *data,
                                       size_t len, const char *display_name, const char *table_name,
                                       const tsr_csv_options_t *opts,
                                       const tsr_csv_tuning_t *tuning, tsr_table_t **out,
                                       tsr_error_t *err)
{
    const char *name = display_name ? display_name : "<buffer>";
    if (!data && len)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "no CSV data for '%s'", name);
    char *copy = tsr_mem_alloc(mem, len ? len : 1);
    if (!copy)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory while reading '%s'", name);
    if (len)
        memcpy(copy, data, len);
    return csv_open(mem, pool, copy, len, name, table_name, opts, tuning, out, err);
}
