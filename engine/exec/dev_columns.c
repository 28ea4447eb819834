/*
 * dev_columns.c - a query's column chunks resident on its device
 * (dev_columns.h): lookup by the chunk's vectors, upload through a host
 * staging buffer, pinning, LRU eviction within a byte limit, and the
 * fallback answer (*fits = false) when a chunk cannot be placed.
 *
 * Entries form one list, most recently used first; a cache holds a few
 * dozen entries at most (columns of a query times chunks that fit), so a
 * linear search is cheaper than any index. An entry's identity is copied
 * out of the table (per batch: data and validity addresses and the length),
 * so it never reads a table that is gone; see dev_columns.h for why the
 * addresses are a safe name for the chunks that are kept.
 */
#include "exec/dev_columns.h"

#include <string.h>

#include "exec/dev_exec.h"
#include "exec/hashtable.h"

/* One batch's vector as an entry remembers it. */
typedef struct dc_ident {
    const void *data;
    const void *validity;
    size_t len;
} dc_ident_t;

struct tsr_dev_cols_entry {
    tsr_dev_cols_entry_t *next;
    tsr_dev_col_kind_t kind;
    tsr_type_t type;
    size_t nbatches;
    dc_ident_t *ident; /* nbatches (NULL for scratch) */
    tsr_dev_col_t col; /* what operators get */
    size_t bytes;      /* device bytes of values and valid */
    unsigned pins;     /* operators using it now (0 or 1: one operator at a time) */
    bool keep;         /* survives unpin (a base input's chunk) */
};

/* ---- setup and teardown --------------------------------------------------------------- */

void tsr_dev_cols_init(tsr_dev_cols_t *c, tsr_mem_t *mem, tsr_dev_t *dev)
{
    memset(c, 0, sizeof(*c));
    c->dev = dev;
    c->mem = mem;
    c->fail_after = -1;
    if (dev && dev->col_limit)
        c->limit = dev->col_limit;
    else if (dev && dev->info.global_mem_bytes)
        c->limit = (size_t)(dev->info.global_mem_bytes / 4);
    else
        c->limit = (size_t)256 << 20; /* a device that does not say: 256 MiB */
}

static void dc_entry_free(tsr_dev_cols_t *c, tsr_dev_cols_entry_t *e)
{
    tsr_dev_buf_free(e->col.values);
    tsr_dev_buf_free(e->col.valid);
    c->used -= e->bytes;
    tsr_mem_free(c->mem, e->ident);
    tsr_mem_free(c->mem, e);
}

void tsr_dev_cols_clear(tsr_dev_cols_t *c)
{
    if (!c)
        return;
    while (c->head) {
        tsr_dev_cols_entry_t *e = c->head;
        c->head = e->next;
        dc_entry_free(c, e);
    }
    tsr_mem_free(c->mem, c->staging);
    c->staging = NULL;
    c->staging_words = 0;
}

void tsr_dev_cols_unpin(tsr_dev_cols_t *c)
{
    tsr_dev_cols_entry_t **pe = &c->head;
    while (*pe) {
        tsr_dev_cols_entry_t *e = *pe;
        e->pins = 0;
        if (!e->keep) {
            *pe = e->next;
            dc_entry_free(c, e);
        } else {
            pe = &e->next;
        }
    }
}

void tsr_dev_cols_note_fallback(tsr_dev_cols_t *c)
{
    c->stats.col_fallbacks++;
    if (c->dev)
        c->dev->stats.col_fallbacks++;
}

size_t tsr_dev_cols_count(const tsr_dev_cols_t *c)
{
    size_t n = 0;
    for (const tsr_dev_cols_entry_t *e = c->head; e; e = e->next)
        n++;
    return n;
}

/* ---- lookup ------------------------------------------------------------------------- */

static bool dc_same_chunk(const tsr_dev_cols_entry_t *e, const tsr_table_t *t, size_t col,
                          size_t b0, size_t b1)
{
    if (!e->ident || e->nbatches != b1 - b0 || e->type != t->fields[col].type)
        return false;
    for (size_t b = b0; b < b1; b++) {
        const tsr_vector_t *v = &t->batches[b].cols[col];
        const dc_ident_t *id = &e->ident[b - b0];
        if (id->data != v->data || id->validity != (const void *)v->validity || id->len != v->len)
            return false;
    }
    return true;
}

/* A resident entry for the request, moved to the front; NULL when none. */
static tsr_dev_cols_entry_t *dc_find(tsr_dev_cols_t *c, const tsr_table_t *t, size_t col, size_t b0,
                                     size_t b1, tsr_dev_col_kind_t kind)
{
    for (tsr_dev_cols_entry_t **pe = &c->head; *pe; pe = &(*pe)->next) {
        tsr_dev_cols_entry_t *e = *pe;
        bool form =
            e->kind == kind || (kind == TSR_DEV_COL_VALID && e->kind != TSR_DEV_COL_SCRATCH);
        if (!form || !dc_same_chunk(e, t, col, b0, b1))
            continue;
        *pe = e->next; /* most recently used first */
        e->next = c->head;
        c->head = e;
        return e;
    }
    return NULL;
}

/* ---- room on the device --------------------------------------------------------------- */

/* Evicts unpinned entries, least recently used first, until bytes more fit
 * the limit; false when they cannot. */
static bool dc_make_room(tsr_dev_cols_t *c, size_t bytes)
{
    while (c->used + bytes > c->limit || c->used + bytes < c->used) {
        tsr_dev_cols_entry_t **victim = NULL;
        for (tsr_dev_cols_entry_t **pe = &c->head; *pe; pe = &(*pe)->next)
            if ((*pe)->pins == 0)
                victim = pe; /* the last unpinned one: least recently used */
        if (!victim)
            return false;
        tsr_dev_cols_entry_t *e = *victim;
        *victim = e->next;
        dc_entry_free(c, e);
        c->stats.col_evictions++;
        c->dev->stats.col_evictions++;
    }
    return true;
}

/* A device buffer of size bytes; *fits = false when the device is out of
 * memory (injected by fail_after, or reported) even after evicting every
 * unpinned entry. */
static tsr_status_t dc_alloc(tsr_dev_cols_t *c, size_t size, tsr_dev_buf_t **out, bool *fits,
                             tsr_error_t *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        tsr_status_t rc;
        tsr_error_t e;
        tsr_error_clear(&e);
        if (c->fail_after == 0) {
            rc = TSR_ERR_NOMEM;
        } else {
            if (c->fail_after > 0)
                c->fail_after--;
            rc = tsr_dev_buf_alloc(c->dev, size, out, &e);
        }
        if (rc == TSR_OK)
            return TSR_OK;
        if (rc != TSR_ERR_NOMEM) {
            *err = e;
            return rc;
        }
        if (attempt == 0)
            (void)dc_make_room(c, c->limit); /* everything unpinned goes, then once more */
    }
    *fits = false;
    return TSR_OK;
}

/* ---- upload ---------------------------------------------------------------------------- */

static tsr_status_t dc_staging(tsr_dev_cols_t *c, size_t words, tsr_error_t *err)
{
    if (words <= c->staging_words)
        return TSR_OK;
    uint64_t *s = tsr_mem_alloc(c->mem, words * sizeof(uint64_t));
    if (!s)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_mem_free(c->mem, c->staging);
    c->staging = s;
    c->staging_words = words;
    return TSR_OK;
}

/* The chunk's values in form kind into dst (rows words). */
static void dc_stage_values(const tsr_table_t *t, size_t col, size_t b0, size_t b1,
                            tsr_dev_col_kind_t kind, uint64_t *dst)
{
    tsr_type_t type = t->fields[col].type;
    if (kind == TSR_DEV_COL_RAW || type == TSR_TYPE_INT64) {
        tsr_dev_exec_concat_values(t, col, b0, b1, dst);
        return;
    }
    size_t at = 0;
    for (size_t b = b0; b < b1; b++) {
        const tsr_vector_t *v = &t->batches[b].cols[col];
        size_t n = t->batches[b].nrows;
        for (size_t i = 0; i < n; i++) {
            switch (type) {
            case TSR_TYPE_DOUBLE:
                dst[at + i] = tsr_ht_norm_double(((const double *)v->data)[i]);
                break;
            case TSR_TYPE_VARCHAR:
                dst[at + i] = ((const uint32_t *)v->data)[i];
                break;
            default: /* BOOL */
                dst[at + i] = ((const uint8_t *)v->data)[i] != 0;
                break;
            }
        }
        at += n;
    }
}

/* Allocates and fills e's buffers; *fits as for tsr_dev_cols_get. */
static tsr_status_t dc_upload(tsr_dev_cols_t *c, tsr_dev_cols_entry_t *e, const tsr_table_t *t,
                              size_t col, size_t b0, size_t b1, bool *fits, tsr_error_t *err)
{
    size_t rows = e->col.rows, words = tsr_bitmap_words(rows);
    bool nulls = false;
    for (size_t b = b0; b < b1 && !nulls; b++)
        nulls = t->batches[b].cols[col].validity != NULL;
    size_t vbytes = e->kind == TSR_DEV_COL_VALID ? 0 : rows * 8, mbytes = nulls ? words * 8 : 0;
    e->bytes = vbytes + mbytes;
    if (e->bytes == 0)
        return TSR_OK; /* VALID of a column without NULLs: nothing to hold */
    if (!dc_make_room(c, e->bytes)) {
        *fits = false;
        return TSR_OK;
    }
    tsr_status_t rc = dc_staging(c, vbytes / 8 > words ? vbytes / 8 : words, err);
    if (rc != TSR_OK)
        return rc;
    if (vbytes) {
        if ((rc = dc_alloc(c, vbytes, &e->col.values, fits, err)) != TSR_OK || !*fits)
            return rc;
        dc_stage_values(t, col, b0, b1, e->kind, c->staging);
        if ((rc = tsr_dev_write(c->dev->queue, e->col.values, 0, c->staging, vbytes, true, NULL,
                                err)) != TSR_OK)
            return rc;
    }
    if (mbytes) {
        if ((rc = dc_alloc(c, mbytes, &e->col.valid, fits, err)) != TSR_OK || !*fits)
            return rc;
        tsr_dev_exec_concat_validity(t, col, b0, b1, c->staging);
        if ((rc = tsr_dev_write(c->dev->queue, e->col.valid, 0, c->staging, mbytes, true, NULL,
                                err)) != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_cols_get(tsr_dev_cols_t *c, const tsr_table_t *t, size_t col, size_t b0,
                              size_t b1, tsr_dev_col_kind_t kind, bool keep, tsr_dev_col_t *out,
                              bool *fits, tsr_error_t *err)
{
    *fits = true;
    if (!c->dev || col >= t->ncols || b0 >= b1 || b1 > t->nbatches || kind == TSR_DEV_COL_SCRATCH)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "device columns: bad request");
    tsr_type_t type = t->fields[col].type;
    if (kind == TSR_DEV_COL_RAW && type != TSR_TYPE_INT64 && type != TSR_TYPE_DOUBLE)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "device columns: raw %s column",
                             tsr_type_name(type));
    tsr_dev_cols_entry_t *e = dc_find(c, t, col, b0, b1, kind);
    if (e) {
        e->pins = 1;
        c->stats.col_hits++;
        c->dev->stats.col_hits++;
        *out = e->col;
        out->values = kind == TSR_DEV_COL_VALID ? NULL : e->col.values;
        return TSR_OK;
    }
    tsr_status_t rc = TSR_ERR_NOMEM;
    e = tsr_mem_calloc(c->mem, 1, sizeof(*e));
    if (e)
        e->ident = tsr_mem_calloc(c->mem, b1 - b0, sizeof(dc_ident_t));
    if (!e || !e->ident) {
        if (e)
            tsr_mem_free(c->mem, e);
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    }
    e->kind = kind;
    e->type = type;
    e->nbatches = b1 - b0;
    e->keep = keep;
    e->pins = 1;
    for (size_t b = b0; b < b1; b++) {
        const tsr_vector_t *v = &t->batches[b].cols[col];
        e->ident[b - b0] = (dc_ident_t){.data = v->data, .validity = v->validity, .len = v->len};
        e->col.rows += t->batches[b].nrows;
    }
    rc = dc_upload(c, e, t, col, b0, b1, fits, err);
    if (rc != TSR_OK || !*fits) {
        /* nothing half-made stays: its bytes were never added to used */
        tsr_dev_buf_free(e->col.values);
        tsr_dev_buf_free(e->col.valid);
        tsr_mem_free(c->mem, e->ident);
        tsr_mem_free(c->mem, e);
        return rc;
    }
    c->used += e->bytes;
    e->next = c->head;
    c->head = e;
    c->stats.col_uploads++;
    c->dev->stats.col_uploads++;
    *out = e->col;
    return TSR_OK;
}

tsr_status_t tsr_dev_cols_scratch(tsr_dev_cols_t *c, size_t bytes, tsr_dev_buf_t **out, bool *fits,
                                  tsr_error_t *err)
{
    *fits = true;
    if (!c->dev || bytes == 0)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "device columns: bad scratch request");
    tsr_dev_cols_entry_t *e = tsr_mem_calloc(c->mem, 1, sizeof(*e));
    if (!e)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    e->kind = TSR_DEV_COL_SCRATCH;
    e->pins = 1;
    e->bytes = bytes;
    tsr_status_t rc = TSR_OK;
    if (!dc_make_room(c, bytes))
        *fits = false;
    else
        rc = dc_alloc(c, bytes, &e->col.values, fits, err);
    if (rc != TSR_OK || !*fits) {
        tsr_dev_buf_free(e->col.values);
        tsr_mem_free(c->mem, e);
        return rc;
    }
    c->used += bytes;
    e->next = c->head;
    c->head = e;
    *out = e->col.values;
    return TSR_OK;
}
