/*
 * csv_build.c - from parsed chunks to the table: dictionaries and batches.
 *
 * Dictionaries. Each chunk interned its VARCHAR fields into its own string
 * map (no locks while parsing). The column's dictionary is built by interning
 * the distinct strings of chunks 0..n in chunk order and local code order,
 * which leaves codes in order of first appearance in the file - the same
 * codes a sequential reader would give, so chunk 0 needs no remap - and
 * yields per-chunk remap arrays (local code -> column code). One task per
 * VARCHAR column, then the dictionary is frozen.
 *
 * Batches. Chunks were parsed straight into batches; codes of chunks 1..n
 * are remapped in place (one task per batch), every VARCHAR vector is pointed
 * at its column's dictionary, and the batches move into the table in chunk
 * order. Nothing is copied.
 */
#include "table/csv_internal.h"

#include <string.h>

typedef struct build_ctx {
    const tsr_csv_reader_t *rd;
    tsr_csv_chunk_t *chunks;
    size_t nchunks;
    size_t *batch_start;   /* nchunks + 1: index of each chunk's first batch, prefix sums */
    tsr_dict_t **dicts;    /* ncols: the column dictionaries being built */
    tsr_status_t *dict_rc; /* ncols */
} build_ctx_t;

static void merge_task(void *arg, size_t c, unsigned worker)
{
    (void)worker;
    build_ctx_t *bx = arg;
    const tsr_csv_reader_t *rd = bx->rd;
    if (rd->types[c] != TSR_TYPE_VARCHAR || (rd->skip && rd->skip[c]))
        return;
    const tsr_csv_sentry_t **order = NULL;
    size_t order_cap = 0;
    tsr_dict_t *dict = NULL;
    tsr_status_t rc = tsr_dict_create(rd->mem, &dict);
    for (size_t i = 0; i < bx->nchunks && rc == TSR_OK; i++) {
        tsr_csv_ccol_t *col = &bx->chunks[i].cols[c];
        const tsr_csv_smap_t *m = &col->map;
        if (m->count == 0)
            continue;
        if (tsr_mem_grow(rd->mem, (void **)&order, &order_cap, m->count, sizeof(*order))) {
            rc = TSR_ERR_NOMEM;
            break;
        }
        for (size_t k = 0; k < m->nslots; k++)
            if (m->slots[k].code != UINT32_MAX)
                order[m->slots[k].code] = &m->slots[k];
        /* chunk 0's strings go first into an empty dictionary: same codes */
        if (i > 0 && !(col->remap = tsr_mem_alloc(rd->mem, m->count * sizeof(uint32_t)))) {
            rc = TSR_ERR_NOMEM;
            break;
        }
        for (size_t k = 0; k < m->count && rc == TSR_OK; k++) {
            uint32_t code;
            rc = tsr_dict_intern(dict, tsr_csv_sentry_bytes(order[k]), order[k]->len, &code);
            if (col->remap)
                col->remap[k] = code;
        }
    }
    if (rc == TSR_OK)
        rc = tsr_dict_freeze(dict);
    tsr_mem_free(rd->mem, order);
    bx->dicts[c] = dict;
    bx->dict_rc[c] = rc;
}

static void remap_task(void *arg, size_t g, unsigned worker)
{
    (void)worker;
    build_ctx_t *bx = arg;
    const tsr_csv_reader_t *rd = bx->rd;
    size_t lo = 0, hi = bx->nchunks; /* the chunk holding global batch g */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (bx->batch_start[mid] <= g)
            lo = mid;
        else
            hi = mid;
    }
    while (bx->batch_start[lo + 1] <= g)
        lo++; /* skip chunks without batches */
    const tsr_csv_chunk_t *ck = &bx->chunks[lo];
    tsr_vector_t *cols = ck->batches[g - bx->batch_start[lo]];
    for (size_t c = 0; c < rd->ncols; c++) {
        if (rd->types[c] != TSR_TYPE_VARCHAR || (rd->skip && rd->skip[c]))
            continue;
        tsr_vector_t *v = &cols[c];
        v->dict = bx->dicts[c];
        const uint32_t *remap = ck->cols[c].remap;
        if (!remap)
            continue;
        uint32_t *codes = v->data;
        for (size_t i = 0; i < v->len; i++)
            codes[i] = remap[codes[i]];
    }
}

tsr_status_t tsr_csv_build(const tsr_csv_reader_t *rd, tsr_pool_t *pool, tsr_csv_chunk_t *chunks,
                           size_t nchunks, const char *table_name, tsr_table_t **out)
{
    tsr_mem_t *mem = rd->mem;
    size_t ncols = rd->ncols;
    build_ctx_t bx;
    memset(&bx, 0, sizeof(bx));
    bx.rd = rd;
    bx.chunks = chunks;
    bx.nchunks = nchunks;

    tsr_table_t *t = NULL;
    tsr_status_t rc =
        tsr_table_create(mem, table_name, ncols, (const char *const *)rd->names, rd->types, &t);
    if (rc != TSR_OK)
        return rc;
    rc = TSR_ERR_NOMEM;
    bx.dicts = tsr_mem_calloc(mem, ncols, sizeof(*bx.dicts));
    bx.dict_rc = tsr_mem_calloc(mem, ncols, sizeof(*bx.dict_rc));
    bx.batch_start = tsr_mem_alloc(mem, (nchunks + 1) * sizeof(*bx.batch_start));
    if (!bx.dicts || !bx.dict_rc || !bx.batch_start)
        goto err_free;
    bx.batch_start[0] = 0;
    for (size_t i = 0; i < nchunks; i++)
        bx.batch_start[i + 1] = bx.batch_start[i] + chunks[i].nbatches;

    tsr_pool_run(pool, ncols, merge_task, &bx);
    rc = TSR_OK;
    for (size_t c = 0; c < ncols; c++) {
        if (bx.dicts[c])
            tsr_table_adopt_dict(t, c, bx.dicts[c]); /* the table frees it, even on failure */
        if (bx.dict_rc[c] != TSR_OK && rc == TSR_OK)
            rc = bx.dict_rc[c];
    }
    if (rc != TSR_OK)
        goto err_free;

    tsr_pool_run(pool, bx.batch_start[nchunks], remap_task, &bx);
    for (size_t i = 0; i < nchunks; i++) {
        for (size_t b = 0; b < chunks[i].nbatches; b++) {
            tsr_vector_t *cols = chunks[i].batches[b];
            if ((rc = tsr_table_append_batch(t, cols[0].len, cols)) != TSR_OK)
                goto err_free; /* what was not moved is freed with the chunks */
            chunks[i].batches[b] = NULL;
        }
    }
    /* INT64 min/max, for plans that depend on value ranges (perfect-hash GROUP BY) */
    if (!rd->skip && (rc = tsr_table_compute_stats(t)) != TSR_OK) /* lazy loads: the caller */
        goto err_free;
    *out = t;
    t = NULL;

err_free:
    tsr_mem_free(mem, bx.batch_start);
    tsr_mem_free(mem, bx.dicts);
    tsr_mem_free(mem, bx.dict_rc);
    tsr_table_destroy(t);
    return rc;
}
