/*
 * table.c - columnar tables and vectors (see table.h).
 */
#include "table/table.h"

#include <string.h>
#include <strings.h>

const char *tsr_type_name(tsr_type_t type)
{
    switch (type) {
    case TSR_TYPE_NULL:
        return "NULL";
    case TSR_TYPE_BOOL:
        return "BOOLEAN";
    case TSR_TYPE_INT64:
        return "BIGINT";
    case TSR_TYPE_DOUBLE:
        return "DOUBLE";
    case TSR_TYPE_VARCHAR:
        return "VARCHAR";
    }
    return "UNKNOWN";
}

size_t tsr_type_width(tsr_type_t type)
{
    switch (type) {
    case TSR_TYPE_NULL:
    case TSR_TYPE_BOOL:
        return 1;
    case TSR_TYPE_INT64:
    case TSR_TYPE_DOUBLE:
        return 8;
    case TSR_TYPE_VARCHAR:
        return 4;
    }
    return 8;
}

tsr_status_t tsr_vector_alloc(tsr_mem_t *mem, tsr_type_t type, size_t len, bool with_validity,
                              const tsr_dict_t *dict, tsr_vector_t *out)
{
    tsr_vector_t v = {0};
    v.type = type;
    v.len = len;
    v.dict = dict;
    v.owned_data = tsr_mem_alloc_aligned(mem, (len ? len : 1) * tsr_type_width(type));
    if (!v.owned_data)
        return TSR_ERR_NOMEM;
    v.data = v.owned_data;
    if (with_validity) {
        size_t words = tsr_bitmap_words(len ? len : 1);
        v.owned_validity = tsr_mem_alloc_aligned(mem, words * sizeof(uint64_t));
        if (!v.owned_validity) {
            tsr_mem_free(mem, v.owned_data);
            return TSR_ERR_NOMEM;
        }
        memset(v.owned_validity, 0xff, words * sizeof(uint64_t));
        v.validity = v.owned_validity;
    }
    *out = v;
    return TSR_OK;
}

tsr_status_t tsr_vector_ensure_validity(tsr_mem_t *mem, tsr_vector_t *v)
{
    if (v->owned_validity)
        return TSR_OK;
    size_t words = tsr_bitmap_words(v->len ? v->len : 1);
    uint64_t *bm = tsr_mem_alloc_aligned(mem, words * sizeof(uint64_t));
    if (!bm)
        return TSR_ERR_NOMEM;
    if (v->validity)
        memcpy(bm, v->validity, words * sizeof(uint64_t));
    else
        memset(bm, 0xff, words * sizeof(uint64_t));
    v->owned_validity = bm;
    v->validity = bm;
    return TSR_OK;
}

tsr_vector_t tsr_vector_borrow(const tsr_vector_t *src)
{
    tsr_vector_t v = *src;
    v.owned_data = NULL;
    v.owned_validity = NULL;
    return v;
}

void tsr_vector_release(tsr_mem_t *mem, tsr_vector_t *v)
{
    if (!v)
        return;
    tsr_mem_free(mem, v->owned_data);
    tsr_mem_free(mem, v->owned_validity);
    memset(v, 0, sizeof(*v));
}

tsr_status_t tsr_table_create(tsr_mem_t *mem, const char *name, size_t ncols,
                              const char *const *names, const tsr_type_t *types, tsr_table_t **out)
{
    tsr_table_t *t = tsr_mem_calloc(mem, 1, sizeof(*t));
    if (!t)
        return TSR_ERR_NOMEM;
    t->mem = mem;
    t->ncols = ncols;
    if (name && !(t->name = tsr_mem_strdup(mem, name)))
        goto err_destroy;
    t->fields = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_field_t));
    t->dicts = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_dict_t *));
    if (!t->fields || !t->dicts)
        goto err_destroy;
    for (size_t i = 0; i < ncols; i++) {
        t->fields[i].type = types[i];
        if (!(t->fields[i].name = tsr_mem_strdup(mem, names[i])))
            goto err_destroy;
    }
    *out = t;
    return TSR_OK;

err_destroy:
    tsr_table_destroy(t);
    return TSR_ERR_NOMEM;
}

void tsr_table_destroy(tsr_table_t *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < t->nbatches; b++) {
        for (size_t c = 0; c < t->ncols; c++)
            tsr_vector_release(t->mem, &t->batches[b].cols[c]);
        tsr_mem_free(t->mem, t->batches[b].cols);
    }
    tsr_mem_free(t->mem, t->batches);
    if (t->fields)
        for (size_t c = 0; c < t->ncols; c++)
            tsr_mem_free(t->mem, t->fields[c].name);
    if (t->dicts)
        for (size_t c = 0; c < t->ncols; c++)
            tsr_dict_destroy(t->dicts[c]);
    tsr_mem_free(t->mem, t->fields);
    tsr_mem_free(t->mem, t->dicts);
    tsr_mem_free(t->mem, t->name);
    for (size_t i = 0; i < t->ndeps; i++)
        tsr_table_destroy(t->deps[i]);
    tsr_mem_free(t->mem, t->deps);
    tsr_mem_free(t->mem, t->stats);
    if (t->lazy) {
        if (t->lazy->destroy)
            t->lazy->destroy(t->mem, t->lazy->state);
        tsr_mem_free(t->mem, t->lazy->loaded);
        tsr_mem_free(t->mem, t->lazy);
    }
    tsr_mem_free(t->mem, t);
}

tsr_status_t tsr_table_load_columns(tsr_table_t *t, const bool *need, tsr_error_t *err)
{
    return tsr_table_load_columns_cancel(t, need, NULL, err);
}

tsr_status_t tsr_table_load_columns_cancel(tsr_table_t *t, const bool *need,
                                           const atomic_int *cancel, tsr_error_t *err)
{
    tsr_table_lazy_t *lz = t->lazy;
    if (!lz)
        return TSR_OK;
    bool *want = tsr_mem_calloc(t->mem, t->ncols ? t->ncols : 1, sizeof(bool));
    if (!want)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    bool any = !lz->rows;
    for (size_t c = 0; c < t->ncols; c++) {
        want[c] = (!need || need[c]) && !lz->loaded[c];
        any |= want[c];
    }
    tsr_status_t rc = any ? lz->load(t, lz->state, want, cancel, err) : TSR_OK;
    tsr_mem_free(t->mem, want);
    if (rc != TSR_OK)
        return rc;
    bool all = lz->rows;
    for (size_t c = 0; c < t->ncols; c++)
        all &= lz->loaded[c];
    if (all) { /* nothing left to load: the loader's state (a file's bytes) goes */
        lz->destroy(t->mem, lz->state);
        tsr_mem_free(t->mem, lz->loaded);
        tsr_mem_free(t->mem, lz);
        t->lazy = NULL;
    }
    return TSR_OK;
}

tsr_status_t tsr_table_add_dep(tsr_table_t *t, tsr_table_t *dep)
{
    if (tsr_mem_grow(t->mem, (void **)&t->deps, &t->deps_cap, t->ndeps + 1, sizeof(*t->deps)))
        return TSR_ERR_NOMEM;
    t->deps[t->ndeps++] = dep;
    return TSR_OK;
}

/* On failure the caller keeps ownership of cols. */
tsr_status_t tsr_table_append_batch(tsr_table_t *t, size_t nrows, tsr_vector_t *cols)
{
    if (tsr_mem_grow(t->mem, (void **)&t->batches, &t->batches_cap, t->nbatches + 1,
                     sizeof(tsr_batch_t)))
        return TSR_ERR_NOMEM;
    t->batches[t->nbatches].nrows = nrows;
    t->batches[t->nbatches].cols = cols;
    t->nbatches++;
    t->nrows += nrows;
    /* new rows may fall outside the old bounds */
    tsr_mem_free(t->mem, t->stats);
    t->stats = NULL;
    return TSR_OK;
}

tsr_status_t tsr_table_set_stats(tsr_table_t *t, size_t col, const tsr_colstats_t *st)
{
    if (col >= t->ncols)
        return TSR_ERR_INVALID_ARG;
    if (!t->stats && !(t->stats = tsr_mem_calloc(t->mem, t->ncols, sizeof(tsr_colstats_t))))
        return TSR_ERR_NOMEM;
    t->stats[col] = *st;
    return TSR_OK;
}

/* Min and max of the non-NULL values of one INT64 vector into *st. The
 * loop without NULLs is branch-free so it vectorises. */
static void stats_vector(const tsr_vector_t *v, size_t n, int64_t *lo, int64_t *hi)
{
    const int64_t *x = v->data;
    int64_t mn = *lo, mx = *hi;
    if (!v->validity) {
        for (size_t i = 0; i < n; i++) {
            mn = x[i] < mn ? x[i] : mn;
            mx = x[i] > mx ? x[i] : mx;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (!tsr_bit_get(v->validity, i))
                continue;
            mn = x[i] < mn ? x[i] : mn;
            mx = x[i] > mx ? x[i] : mx;
        }
    }
    *lo = mn;
    *hi = mx;
}

tsr_status_t tsr_table_compute_stats(tsr_table_t *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        if (t->fields[c].type != TSR_TYPE_INT64)
            continue;
        int64_t lo = INT64_MAX, hi = INT64_MIN;
        bool loaded = true;
        for (size_t b = 0; b < t->nbatches && loaded; b++) {
            const tsr_vector_t *v = &t->batches[b].cols[c];
            loaded = v->data || t->batches[b].nrows == 0;
            if (loaded)
                stats_vector(v, t->batches[b].nrows, &lo, &hi);
        }
        if (!loaded)
            continue; /* a column not loaded yet (tsr_table_load_columns) */
        tsr_colstats_t st = {.known = true, .min = lo, .max = hi};
        if (lo > hi)
            st.min = st.max = 0; /* no non-NULL value */
        if (tsr_table_set_stats(t, c, &st) != TSR_OK)
            return TSR_ERR_NOMEM;
    }
    return TSR_OK;
}

long tsr_table_find_column(const tsr_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcasecmp(t->fields[i].name, name) == 0)
            return (long)i;
    return -1;
}

void tsr_table_adopt_dict(tsr_table_t *t, size_t col, tsr_dict_t *dict)
{
    tsr_dict_destroy(t->dicts[col]);
    t->dicts[col] = dict;
}
