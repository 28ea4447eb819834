/*
 * dev_join.c - HASH_JOIN on a device (tsr_dev_op_hash_join, dev_exec.h).
 *
 * When every key is a column and the first is INT64 or VARCHAR, the first
 * key pair is joined by the hashjoin kernels (device/hashjoin.h): the right
 * side's first key column is the build input, the left side is probed in
 * chunks of batches, VARCHAR left codes mapped into the right dictionary's
 * code space (a string the right side lacks: a NULL key, which never
 * matches). The payload is then simply the right columns concatenated
 * (payload row = right row, the device's build row number), and the pairs,
 * grouped by left row, go through tsr_join_flush as the CPU probe's do,
 * after the further keys are compared on the host (SQL equality: NaN never
 * equal, -0.0 = 0.0, strings across dictionaries through the code map).
 * Output order: by left batch and row; the right rows of one left row come
 * in the device's order.
 *
 * Device-resident keys: with an INT64 first key and a backend that takes
 * device keys (hashjoin.h build_dev / probe_dev), the build side (when it
 * is one chunk) and each probe chunk come from the query's column cache
 * (dev_columns.h): a key column another device operator of the query
 * already uploaded (a filter's, the other side of a self-join) is not
 * copied again. Chunks that do not fit the device are copied in per call.
 */
#include <string.h>

#include "device/hashjoin.h"
#include "exec/dev_exec.h"
#include "exec/join_internal.h"

/* One chunk of left batches and the device's pairs for it. */
typedef struct join_dev_chunk {
    size_t b0, b1;      /* left batches */
    const size_t *pof;  /* per batch - b0: first pair, b1 - b0 + 1 entries */
    const size_t *base; /* per batch - b0: its first row in the chunk */
    const uint32_t *probe, *build;
} join_dev_chunk_t;

typedef struct join_dev_job {
    join_run_t *r;
    const join_dev_chunk_t *ch;
} join_dev_job_t;

/* Whether the further keys (1..) of left row l and payload row q are equal. */
static bool join_dev_more_keys(const join_run_t *r, const tsr_batch_t *lb, size_t l, size_t q)
{
    for (size_t k = 1; k < r->nkeys; k++) {
        const join_key_t *key = &r->keys[k];
        const tsr_vector_t *a = &lb->cols[key->left->column];
        const tsr_vector_t *b = &r->payload[key->right->column];
        if (!tsr_bit_get(a->validity, l) || !tsr_bit_get(b->validity, q))
            return false;
        bool eq;
        switch (key->type) {
        case TSR_TYPE_DOUBLE: /* IEEE: NaN never equal, -0.0 == 0.0 */
            eq = ((const double *)a->data)[l] == ((const double *)b->data)[q];
            break;
        case TSR_TYPE_BOOL:
            eq = (((const uint8_t *)a->data)[l] != 0) == (((const uint8_t *)b->data)[q] != 0);
            break;
        case TSR_TYPE_VARCHAR: {
            uint32_t lc = ((const uint32_t *)a->data)[l], rc = ((const uint32_t *)b->data)[q];
            if (key->map)
                eq = lc < key->map_len && key->map[lc] == rc;
            else
                eq = a->dict == b->dict && lc == rc;
            break;
        }
        default:
            eq = ((const int64_t *)a->data)[l] == ((const int64_t *)b->data)[q];
            break;
        }
        if (!eq)
            return false;
    }
    return true;
}

static void join_dev_task(void *arg, size_t i, unsigned worker)
{
    join_dev_job_t *job = arg;
    join_run_t *r = job->r;
    const join_dev_chunk_t *ch = job->ch;
    if (tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    size_t b = ch->b0 + i;
    const tsr_batch_t *lb = &r->left->batches[b];
    join_worker_t *w = &r->w[worker];
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = TSR_OK;
    if (!w->ready && (rc = tsr_join_worker_setup(r, w)) != TSR_OK)
        tsr_error_set(&err, rc, "out of memory");
    size_t k = 0;
    for (size_t p = ch->pof[i]; p < ch->pof[i + 1] && rc == TSR_OK; p++) {
        uint32_t l = ch->probe[p] - (uint32_t)ch->base[i], q = ch->build[p];
        if (r->nkeys > 1 && !join_dev_more_keys(r, lb, l, q))
            continue;
        w->pl[k] = l;
        w->pq[k] = q;
        if (++k == JOIN_ROWS) {
            rc = tsr_join_flush(r, w, lb, k, &r->outs[b], &err);
            k = 0;
        }
    }
    if (rc == TSR_OK && k > 0)
        rc = tsr_join_flush(r, w, lb, k, &r->outs[b], &err);
    if (rc != TSR_OK) {
        if (err.status == TSR_OK)
            tsr_error_set(&err, rc, "join failed");
        tsr_exec_errslot_store(&r->errs, &err);
    }
}

/* The payload: the right columns concatenated (payload row = right row). */
static tsr_status_t join_dev_payload(join_run_t *r, tsr_error_t *err)
{
    const tsr_table_t *R = r->right;
    r->payload = tsr_mem_calloc(r->mem, R->ncols ? R->ncols : 1, sizeof(tsr_vector_t));
    if (!r->payload)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t c = 0; c < R->ncols; c++) {
        bool nulls = false;
        for (size_t b = 0; b < R->nbatches; b++)
            nulls |= R->batches[b].cols[c].validity != NULL;
        const tsr_dict_t *dict = R->nbatches ? R->batches[0].cols[c].dict : NULL;
        tsr_vector_t *v = &r->payload[c];
        if (tsr_vector_alloc(r->mem, R->fields[c].type, R->nrows, nulls, dict, v) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        tsr_dev_exec_concat_values(R, c, 0, R->nbatches, v->data);
        if (nulls)
            tsr_dev_exec_concat_validity(R, c, 0, R->nbatches, v->validity);
    }
    return TSR_OK;
}

/* Device-resident keys (dev_columns.h): INT64 first keys only (the
 * kernels' 8-byte keys are then the columns as stored); cache NULL: host
 * copies throughout. */
typedef struct join_dev_res {
    tsr_dev_cols_t *cache;
    bool left_base, right_base; /* the inputs are base inputs: their chunks stay cached */
} join_dev_res_t;

static tsr_status_t join_dev_pairs(join_run_t *r, tsr_dev_hashjoin_t *hj, size_t b0, size_t b1,
                                   size_t npairs, tsr_error_t *err);

/* Probes the left batches [b0, b1) and runs their pairs. keys/valid: chunk
 * scratch (TSR_DEV_EXEC_CHUNK_ROWS rows). */
static tsr_status_t join_dev_chunk(join_run_t *r, tsr_dev_hashjoin_t *hj, const join_dev_res_t *res,
                                   size_t b0, size_t b1, void *keys, uint64_t *valid,
                                   tsr_error_t *err)
{
    const tsr_table_t *L = r->left;
    const join_key_t *key = &r->keys[0];
    size_t col = key->left->column, rows = tsr_dev_exec_rows(L, b0, b1);
    size_t npairs = 0;
    tsr_status_t rc;
    if (res->cache) {
        /* the chunk's keys from the query's cache: no copy when resident */
        tsr_dev_col_t dc;
        bool fits = false;
        rc = tsr_dev_cols_get(res->cache, L, col, b0, b1, TSR_DEV_COL_RAW, res->left_base, &dc,
                              &fits, err);
        if (rc == TSR_OK && fits) {
            tsr_dev_join_dkeys_t dk = {.n = rows, .keys = dc.values, .valid = dc.valid};
            rc = tsr_dev_hashjoin_probe_dev(hj, NULL, &dk, &npairs, err);
        }
        tsr_dev_cols_unpin(res->cache); /* the probe state holds what pairs needs */
        if (rc != TSR_OK)
            return rc;
        if (fits)
            return join_dev_pairs(r, hj, b0, b1, npairs, err);
        tsr_dev_cols_note_fallback(res->cache);
    }
    tsr_dev_exec_concat_values(L, col, b0, b1, keys);
    bool nulls = tsr_dev_exec_concat_validity(L, col, b0, b1, valid);
    if (key->map) {
        /* left codes into the right dictionary's; absent strings become NULL */
        uint32_t *codes = keys;
        if (!nulls)
            memset(valid, 0xff, tsr_bitmap_words(rows) * sizeof(uint64_t));
        nulls = true;
        for (size_t i = 0; i < rows; i++) {
            uint32_t c = codes[i] < key->map_len ? key->map[codes[i]] : TSR_HT_NONE;
            codes[i] = c == TSR_HT_NONE ? 0 : c;
            if (c == TSR_HT_NONE)
                tsr_bit_set(valid, i, false);
        }
    }
    tsr_dev_join_keys_t pk = {.n = rows, .keys = keys, .valid = nulls ? valid : NULL};
    if ((rc = tsr_dev_hashjoin_probe(hj, NULL, &pk, &npairs, err)) != TSR_OK)
        return rc;
    return join_dev_pairs(r, hj, b0, b1, npairs, err);
}

/* The last probe's npairs pairs of the left batches [b0, b1), through the
 * host's gathers. */
static tsr_status_t join_dev_pairs(join_run_t *r, tsr_dev_hashjoin_t *hj, size_t b0, size_t b1,
                                   size_t npairs, tsr_error_t *err)
{
    const tsr_table_t *L = r->left;
    size_t nb = b1 - b0;
    tsr_status_t rc;
    if (npairs == 0)
        return TSR_OK;
    tsr_mem_t *mem = r->mem;
    uint32_t *probe = tsr_mem_alloc(mem, npairs * sizeof(uint32_t));
    uint32_t *build = tsr_mem_alloc(mem, npairs * sizeof(uint32_t));
    size_t *pof = tsr_mem_alloc(mem, (nb + 1) * sizeof(size_t));
    size_t *base = tsr_mem_alloc(mem, nb * sizeof(size_t));
    if (!probe || !build || !pof || !base) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = tsr_dev_hashjoin_pairs(hj, NULL, probe, build, err)) != TSR_OK)
        goto cleanup;
    /* pairs come grouped by probe row, ascending: each batch owns one run */
    size_t p = 0, at = 0;
    for (size_t i = 0; i < nb; i++) {
        base[i] = at;
        pof[i] = p;
        at += L->batches[b0 + i].nrows;
        while (p < npairs && probe[p] < at)
            p++;
    }
    pof[nb] = npairs;
    join_dev_chunk_t ch = {
        .b0 = b0, .b1 = b1, .pof = pof, .base = base, .probe = probe, .build = build};
    join_dev_job_t job = {.r = r, .ch = &ch};
    tsr_exec_parallel(r->ctx, nb, join_dev_task, &job);
    rc = tsr_exec_errslot_take(&r->errs, err);

cleanup:
    tsr_mem_free(mem, probe);
    tsr_mem_free(mem, build);
    tsr_mem_free(mem, pof);
    tsr_mem_free(mem, base);
    return rc;
}

/* The build from the cache when the right side is one chunk; *done =
 * false (nothing built) when it is not, or does not fit. */
static tsr_status_t join_dev_build_resident(join_run_t *r, tsr_dev_hashjoin_t *hj,
                                            const join_dev_res_t *res, bool *done, tsr_error_t *err)
{
    const tsr_table_t *R = r->right;
    *done = false;
    if (!res->cache || R->nbatches == 0 || tsr_dev_exec_chunk_end(R, 0) != R->nbatches)
        return TSR_OK;
    tsr_dev_col_t dc;
    bool fits = false;
    tsr_status_t rc = tsr_dev_cols_get(res->cache, R, r->keys[0].right->column, 0, R->nbatches,
                                       TSR_DEV_COL_RAW, res->right_base, &dc, &fits, err);
    if (rc == TSR_OK && fits) {
        tsr_dev_join_dkeys_t dk = {.n = R->nrows, .keys = dc.values, .valid = dc.valid};
        rc = tsr_dev_hashjoin_build_dev(hj, NULL, &dk, err);
        *done = rc == TSR_OK;
    }
    tsr_dev_cols_unpin(res->cache); /* the table holds copies of the keys */
    if (rc == TSR_OK && !fits)
        tsr_dev_cols_note_fallback(res->cache);
    return rc;
}

/* Build on the device, then probe chunk by chunk. */
static tsr_status_t join_dev_run(join_run_t *r, tsr_dev_hashjoin_t *hj, const join_dev_res_t *res,
                                 tsr_error_t *err)
{
    tsr_mem_t *mem = r->mem;
    const tsr_table_t *L = r->left, *R = r->right;
    const join_key_t *key = &r->keys[0];
    size_t width = tsr_type_width(key->type);
    size_t rcol = key->right->column;
    size_t chunk = L->nrows < TSR_DEV_EXEC_CHUNK_ROWS ? L->nrows : TSR_DEV_EXEC_CHUNK_ROWS;
    void *bkeys = tsr_mem_alloc(mem, R->nrows * width);
    uint64_t *bvalid = tsr_mem_alloc(mem, tsr_bitmap_words(R->nrows) * sizeof(uint64_t));
    void *pkeys = tsr_mem_alloc(mem, chunk * width);
    uint64_t *pvalid = tsr_mem_alloc(mem, tsr_bitmap_words(chunk) * sizeof(uint64_t));
    tsr_status_t rc;
    if (!bkeys || !bvalid || !pkeys || !pvalid) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    bool built = false;
    if ((rc = join_dev_build_resident(r, hj, res, &built, err)) != TSR_OK)
        goto cleanup;
    if (!built) {
        tsr_dev_exec_concat_values(R, rcol, 0, R->nbatches, bkeys);
        bool nulls = tsr_dev_exec_concat_validity(R, rcol, 0, R->nbatches, bvalid);
        tsr_dev_join_keys_t bk = {.n = R->nrows, .keys = bkeys, .valid = nulls ? bvalid : NULL};
        if ((rc = tsr_dev_hashjoin_build(hj, NULL, &bk, err)) != TSR_OK)
            goto cleanup;
    }
    if ((rc = join_dev_payload(r, err)) != TSR_OK)
        goto cleanup;
    r->nworkers = tsr_exec_nworkers(r->ctx);
    r->w = tsr_mem_calloc(mem, r->nworkers, sizeof(join_worker_t));
    r->outs = tsr_mem_calloc(mem, L->nbatches, sizeof(join_outs_t));
    if (!r->w || !r->outs) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t b0 = 0; b0 < L->nbatches;) {
        size_t b1 = tsr_dev_exec_chunk_end(L, b0);
        if ((rc = join_dev_chunk(r, hj, res, b0, b1, pkeys, pvalid, err)) != TSR_OK)
            goto cleanup;
        b0 = b1;
    }

cleanup:
    tsr_mem_free(mem, bkeys);
    tsr_mem_free(mem, bvalid);
    tsr_mem_free(mem, pkeys);
    tsr_mem_free(mem, pvalid);
    return rc;
}

/* Whether the device kernels cover the join (r planned). */
static bool join_dev_covered(const join_run_t *r)
{
    if (r->nkeys == 0 || r->right->nrows > TSR_DEV_JOIN_MAX_ROWS)
        return false;
    for (size_t k = 0; k < r->nkeys; k++) {
        const join_key_t *key = &r->keys[k];
        if (key->left->kind != TSR_EXPR_COLUMN || key->right->kind != TSR_EXPR_COLUMN)
            return false;
        tsr_type_t t = key->type;
        if (k == 0 ? (t != TSR_TYPE_INT64 && t != TSR_TYPE_VARCHAR)
                   : (t != TSR_TYPE_INT64 && t != TSR_TYPE_DOUBLE && t != TSR_TYPE_BOOL &&
                      t != TSR_TYPE_VARCHAR))
            return false;
    }
    return true;
}

tsr_status_t tsr_dev_op_hash_join(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                                  tsr_op_input_t left, tsr_op_input_t right, tsr_table_t **out,
                                  bool *handled, tsr_error_t *err)
{
    *handled = false;
    if (!dev)
        return TSR_OK;
    join_run_t r;
    tsr_join_run_init(&r, ctx, plan, left, right);
    tsr_table_t *t = NULL;
    tsr_dev_hashjoin_t *hj = NULL;
    bool ran = false;
    tsr_error_t e;
    tsr_error_clear(&e);
    /* a plan the CPU operator would refuse is left to it, to report */
    tsr_status_t rc = tsr_join_plan(&r, &e);
    if (rc != TSR_OK || !join_dev_covered(&r)) {
        rc = TSR_OK;
        goto cleanup;
    }
    tsr_dev_hashjoin_spec_t spec = {.key = r.keys[0].type == TSR_TYPE_INT64 ? TSR_DEV_JOIN_KEY_I64
                                                                            : TSR_DEV_JOIN_KEY_U32};
    rc = tsr_dev_hashjoin_create(dev, &spec, &hj, &e);
    if (rc != TSR_OK) {
        if (rc != TSR_ERR_UNSUPPORTED) /* else: the backend lacks join kernels */
            *err = e;
        else
            rc = TSR_OK;
        goto cleanup;
    }
    if ((rc = tsr_exec_new_output(ctx, plan, &t, err)) != TSR_OK)
        goto cleanup;
    join_dev_res_t res = {.left_base = left.is_base, .right_base = right.is_base};
    if (r.keys[0].type == TSR_TYPE_INT64 && !r.keys[0].map && tsr_dev_hashjoin_has_dev(hj))
        res.cache = tsr_exec_walk_cols(ctx);
    if (r.left->nrows > 0 && r.right->nrows > 0) {
        if ((rc = join_dev_run(&r, hj, &res, err)) != TSR_OK)
            goto cleanup;
        if ((rc = tsr_join_collect(&r, t, err)) != TSR_OK)
            goto cleanup;
    }
    ran = true;

cleanup:
    tsr_dev_hashjoin_destroy(hj);
    rc = tsr_join_end(&r, rc, t, left, right, out, err); /* t NULL: nothing ran */
    *handled = ran && rc == TSR_OK;
    return rc;
}
