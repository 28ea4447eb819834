/*
 * op_hash_join.c - inner equi-join (tsr_op_hash_join): build a hash table on
 * the right input, probe it with the left input in parallel, then keep the
 * pairs whose residual predicate is TRUE.
 *
 * Build (one pass over the right batches, then two over its rows):
 *
 *   right rows --keys--> normalise --tsr_ht_find_or_insert--> rgid[row]
 *   count per group -> off[g] (prefix sums: "count + prefix" layout)
 *   payload[c][off[g] ...]  = the right rows of group g, contiguous, for every
 *                             right column (one owned vector per column)
 *
 * Rows with a NULL key never match, so they are left out of the payload.
 * Grouping the payload by key makes the probe's gather of a group's matches a
 * run of consecutive rows, and duplicates on the build side cost nothing more
 * than their copy.
 *
 * Probe (one task per left batch, any worker): normalise the left keys, drop
 * rows with a NULL key, tsr_ht_find each row's group, then emit (left row,
 * payload row) index pairs for every match, TSR_BATCH_ROWS pairs at a time.
 * Each chunk of pairs is gathered into owned vectors (left columns, then
 * right), the residual is applied with tsr_expr_select, and the survivors
 * form one output batch. Output order: by left batch, then left row, then
 * right rows in input order.
 *
 * VARCHAR keys: the table hashes the right dictionary's string hashes. When
 * the left column has another dictionary, a code -> code map (left code to
 * the right code of the same string, or none) is built once, so the probe
 * compares integers only. DOUBLE keys compare by value with -0.0 == 0.0; a
 * NaN key never matches, like a NULL one, since NaN = NaN is not TRUE in a
 * WHERE clause either.
 *
 * Ownership: every output value is copied, but VARCHAR columns keep the
 * inputs' dictionaries, so an intermediate input owning one becomes a
 * dependency of the output (tsr_exec_finish_output).
 *
 * On a device: dev_join.c, which shares join_internal.h.
 */
#include <string.h>

#include "exec/join_internal.h"

#define JOIN_SLOT_BUDGET ((size_t)128 << 20) /* bytes of slots worth a sparser table */

/* ---- planning ------------------------------------------------------------------- */

static tsr_status_t join_check_key(const tsr_table_t *in, const tsr_expr_t *e, const char *side,
                                   tsr_error_t *err)
{
    if (e->kind == TSR_EXPR_COLUMN) {
        if (e->column >= in->ncols || in->fields[e->column].type != e->type)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "%s join key column %zu does not match",
                                 side, e->column);
    } else if (e->type == TSR_TYPE_VARCHAR) {
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "a VARCHAR join key must be a column, not a computed value");
    }
    return TSR_OK;
}

/* The dictionary every batch of VARCHAR column col shares (NULL: no batches). */
static tsr_status_t join_dict(const tsr_table_t *t, size_t col, const tsr_dict_t **out,
                              tsr_error_t *err)
{
    const tsr_dict_t *d = t->nbatches ? t->batches[0].cols[col].dict : NULL;
    for (size_t b = 1; b < t->nbatches; b++)
        if (t->batches[b].cols[col].dict != d)
            return tsr_error_set(err, TSR_ERR_INTERNAL,
                                 "VARCHAR column %zu has batches with different dictionaries", col);
    if (t->nbatches && (!d || !tsr_dict_frozen(d)))
        return tsr_error_set(err, TSR_ERR_INTERNAL, "VARCHAR column %zu has no frozen dictionary",
                             col);
    *out = d;
    return TSR_OK;
}

/* Left code -> right code of the same string, TSR_HT_NONE when absent. */
static tsr_status_t join_code_map(tsr_mem_t *mem, const tsr_dict_t *dl, const tsr_dict_t *dr,
                                  join_key_t *key, tsr_error_t *err)
{
    uint32_t n = tsr_dict_size(dl);
    key->map = tsr_mem_alloc(mem, (n ? n : 1) * sizeof(uint32_t));
    if (!key->map)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    key->map_len = n;
    for (uint32_t c = 0; c < n; c++) {
        size_t len;
        const char *s = tsr_dict_get(dl, c, &len);
        uint32_t code;
        key->map[c] = tsr_dict_find(dr, s, len, &code) ? code : TSR_HT_NONE;
    }
    return TSR_OK;
}

tsr_status_t tsr_join_plan(join_run_t *r, tsr_error_t *err)
{
    const tsr_plan_t *plan = r->plan;
    const tsr_table_t *L = r->left, *R = r->right;
    if (plan->ncols != L->ncols + R->ncols)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "join has %zu columns for %zu + %zu",
                             plan->ncols, L->ncols, R->ncols);
    for (size_t c = 0; c < plan->ncols; c++) {
        tsr_type_t t = c < L->ncols ? L->fields[c].type : R->fields[c - L->ncols].type;
        if (plan->types[c] != t)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "join output column %zu has the wrong type",
                                 c);
    }
    for (size_t b = 0; b < L->nbatches; b++)
        if (L->batches[b].nrows > JOIN_ROWS)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "input batch of %zu rows",
                                 L->batches[b].nrows);
    for (size_t b = 0; b < R->nbatches; b++)
        if (R->batches[b].nrows > JOIN_ROWS)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "input batch of %zu rows",
                                 R->batches[b].nrows);
    if (R->nrows > UINT32_MAX)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                             "the build side of a join is limited to %u rows", UINT32_MAX);
    r->nkeys = plan->njoin_keys;
    r->keys = tsr_mem_calloc(r->mem, r->nkeys ? r->nkeys : 1, sizeof(join_key_t));
    r->code_hashes = tsr_mem_calloc(r->mem, r->nkeys ? r->nkeys : 1, sizeof(uint64_t *));
    if (!r->keys || !r->code_hashes)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < r->nkeys; k++) {
        join_key_t *key = &r->keys[k];
        key->left = plan->left_keys[k];
        key->right = plan->right_keys[k];
        key->type = key->left->type;
        tsr_status_t rc;
        if ((rc = join_check_key(L, key->left, "left", err)) != TSR_OK ||
            (rc = join_check_key(R, key->right, "right", err)) != TSR_OK)
            return rc;
        if (key->right->type != key->type)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "join key %zu compares %s with %s", k,
                                 tsr_type_name(key->type), tsr_type_name(key->right->type));
        if (key->type != TSR_TYPE_VARCHAR)
            continue;
        const tsr_dict_t *dl, *dr;
        if ((rc = join_dict(L, key->left->column, &dl, err)) != TSR_OK ||
            (rc = join_dict(R, key->right->column, &dr, err)) != TSR_OK)
            return rc;
        if (!dl || !dr)
            continue; /* a side without rows: nothing can match */
        r->code_hashes[k] = tsr_dict_hashes(dr);
        if (dl != dr && (rc = join_code_map(r->mem, dl, dr, key, err)) != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

/* ---- keys of one batch -------------------------------------------------------------- */

/* Evaluates the keys of batch b of one side into kvec/kptr and keeps in sel
 * the rows whose keys are all non-NULL and not NaN (and, for a mapped VARCHAR
 * key, exist on the build side). Returns the count in *nsel. */
static tsr_status_t join_batch_keys(join_run_t *r, bool left, const tsr_batch_t *b,
                                    tsr_vector_t *kvec, const uint64_t **kptr, uint64_t *kbuf,
                                    uint32_t *sel, size_t *nsel, tsr_error_t *err)
{
    size_t n = b->nrows, m = n;
    for (size_t i = 0; i < n; i++)
        sel[i] = (uint32_t)i;
    for (size_t k = 0; k < r->nkeys; k++) {
        const join_key_t *key = &r->keys[k];
        const tsr_expr_t *e = left ? key->left : key->right;
        tsr_status_t rc;
        if (e->kind == TSR_EXPR_COLUMN)
            kvec[k] = tsr_vector_borrow(&b->cols[e->column]);
        else if ((rc = tsr_expr_eval(r->mem, e, b, &kvec[k], err)) != TSR_OK)
            return rc;
        const uint64_t *valid = kvec[k].validity;
        uint64_t *out = kbuf + k * JOIN_ROWS;
        if (left && key->map) {
            const uint32_t *codes = kvec[k].data;
            size_t mm = 0;
            for (size_t j = 0; j < m; j++) {
                uint32_t i = sel[j];
                uint32_t c = tsr_bit_get(valid, i) && codes[i] < key->map_len ? key->map[codes[i]]
                                                                              : TSR_HT_NONE;
                out[i] = c;
                sel[mm] = i;
                mm += c != TSR_HT_NONE;
            }
            m = mm;
            kptr[k] = out;
            continue;
        }
        kptr[k] = tsr_ht_normalize(&kvec[k], sel, m, out);
        if (kvec[k].type == TSR_TYPE_DOUBLE) {
            /* NaN = NaN is not TRUE: such rows join nothing (normalised NaNs
             * all have the one bit pattern) */
            const uint64_t *kv = kptr[k];
            size_t mm = 0;
            for (size_t j = 0; j < m; j++) {
                uint32_t i = sel[j];
                sel[mm] = i;
                mm += tsr_bit_get(valid, i) & (kv[i] != TSR_HASH_NAN_BITS);
            }
            m = mm;
        } else if (valid) {
            size_t mm = 0;
            for (size_t j = 0; j < m; j++) {
                uint32_t i = sel[j];
                sel[mm] = i;
                mm += tsr_bit_get(valid, i);
            }
            m = mm;
        }
    }
    *nsel = m;
    return TSR_OK;
}

static void join_release_keys(join_run_t *r, tsr_vector_t *kvec)
{
    for (size_t k = 0; k < r->nkeys; k++)
        tsr_vector_release(r->mem, &kvec[k]);
}

/* ---- build -------------------------------------------------------------------------- */

/* Copies row src_row of src into row dst_row of the payload vector dst. */
static inline void join_copy_value(const tsr_vector_t *src, size_t src_row, tsr_vector_t *dst,
                                   size_t dst_row, size_t width)
{
    switch (width) {
    case 1:
        ((uint8_t *)dst->data)[dst_row] = ((const uint8_t *)src->data)[src_row];
        break;
    case 4:
        ((uint32_t *)dst->data)[dst_row] = ((const uint32_t *)src->data)[src_row];
        break;
    default:
        ((uint64_t *)dst->data)[dst_row] = ((const uint64_t *)src->data)[src_row];
        break;
    }
    if (dst->validity)
        tsr_bit_set(dst->validity, dst_row, tsr_bit_get(src->validity, src_row));
}

/* Fills the payload: the right rows with non-NULL keys, grouped by key. */
static tsr_status_t join_build_payload(join_run_t *r, const uint32_t *rgid, tsr_error_t *err)
{
    const tsr_table_t *R = r->right;
    size_t ngroups = r->ht.ngroups;
    r->off = tsr_mem_calloc(r->mem, ngroups + 1, sizeof(size_t));
    size_t *fill = tsr_mem_alloc(r->mem, (ngroups ? ngroups : 1) * sizeof(size_t));
    uint32_t *dst = tsr_mem_alloc(r->mem, (R->nrows ? R->nrows : 1) * sizeof(uint32_t));
    r->payload = tsr_mem_calloc(r->mem, R->ncols ? R->ncols : 1, sizeof(tsr_vector_t));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!r->off || !fill || !dst || !r->payload)
        goto cleanup;
    for (size_t i = 0; i < R->nrows; i++)
        if (rgid[i] != TSR_HT_NONE)
            r->off[rgid[i] + 1]++;
    for (size_t g = 0; g < ngroups; g++)
        r->off[g + 1] += r->off[g];
    memcpy(fill, r->off, ngroups * sizeof(size_t));
    for (size_t i = 0; i < R->nrows; i++)
        dst[i] = rgid[i] == TSR_HT_NONE ? UINT32_MAX : (uint32_t)fill[rgid[i]]++;
    size_t nbuild = r->off[ngroups];
    for (size_t c = 0; c < R->ncols; c++) {
        bool nulls = false;
        const tsr_dict_t *dict = NULL;
        for (size_t b = 0; b < R->nbatches; b++) {
            nulls |= R->batches[b].cols[c].validity != NULL;
            dict = R->batches[b].cols[c].dict;
        }
        tsr_vector_t *v = &r->payload[c];
        if (tsr_vector_alloc(r->mem, R->fields[c].type, nbuild, nulls, dict, v) != TSR_OK)
            goto cleanup;
        size_t width = tsr_type_width(R->fields[c].type);
        size_t base = 0;
        for (size_t b = 0; b < R->nbatches; b++) {
            const tsr_vector_t *src = &R->batches[b].cols[c];
            for (size_t i = 0; i < R->batches[b].nrows; i++)
                if (dst[base + i] != UINT32_MAX)
                    join_copy_value(src, i, v, dst[base + i], width);
            base += R->batches[b].nrows;
        }
    }
    rc = TSR_OK;

cleanup:
    tsr_mem_free(r->mem, fill);
    tsr_mem_free(r->mem, dst);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "out of memory");
    return TSR_OK;
}

static tsr_status_t join_build(join_run_t *r, tsr_error_t *err)
{
    const tsr_table_t *R = r->right;
    tsr_mem_t *mem = r->mem;
    tsr_status_t rc = tsr_ht_init(&r->ht, mem, r->nkeys, r->code_hashes, 1024);
    if (rc != TSR_OK)
        return tsr_error_set(err, rc, "out of memory");
    uint32_t *rgid = tsr_mem_alloc(mem, (R->nrows ? R->nrows : 1) * sizeof(uint32_t));
    uint32_t *sel = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    uint32_t *gids = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    uint64_t *kbuf = tsr_mem_alloc(mem, (r->nkeys ? r->nkeys : 1) * JOIN_ROWS * sizeof(uint64_t));
    const uint64_t **kptr = tsr_mem_calloc(mem, r->nkeys ? r->nkeys : 1, sizeof(*kptr));
    tsr_vector_t *kvec = tsr_mem_calloc(mem, r->nkeys ? r->nkeys : 1, sizeof(tsr_vector_t));
    if (!rgid || !sel || !gids || !kbuf || !kptr || !kvec) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    size_t base = 0;
    for (size_t b = 0; b < R->nbatches; b++) {
        const tsr_batch_t *batch = &R->batches[b];
        size_t nsel;
        if (tsr_exec_cancelled(r->ctx)) { /* the build is serial: check per batch */
            rc = tsr_exec_cancel_error(err);
            goto cleanup;
        }
        rc = join_batch_keys(r, false, batch, kvec, kptr, kbuf, sel, &nsel, err);
        if (rc == TSR_OK) {
            tsr_ht_rows_t rows = {.n = nsel, .sel = sel, .keys = kptr};
            if ((rc = tsr_ht_find_or_insert(&r->ht, &rows, gids)) != TSR_OK)
                tsr_error_set(
                    err, rc, rc == TSR_ERR_NOMEM ? "out of memory" : "too many distinct join keys");
        }
        join_release_keys(r, kvec);
        if (rc != TSR_OK)
            goto cleanup;
        for (size_t i = 0; i < batch->nrows; i++)
            rgid[base + i] = TSR_HT_NONE;
        for (size_t j = 0; j < nsel; j++)
            rgid[base + sel[j]] = gids[j];
        base += batch->nrows;
    }
    /* Probes that miss walk to an empty slot: at load 1/8 instead of 1/2
     * they stop after ~1.1 slots instead of ~2.5 (measured: 2x faster probes
     * at 50% misses), within a memory budget for the slots. */
    size_t want = 8 * r->ht.ngroups;
    while (want > 2 * r->ht.ngroups && want * sizeof(tsr_ht_slot_t) > JOIN_SLOT_BUDGET)
        want /= 2;
    if ((rc = tsr_ht_reserve_slots(&r->ht, want)) != TSR_OK) {
        tsr_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    rc = join_build_payload(r, rgid, err);

cleanup:
    tsr_mem_free(mem, rgid);
    tsr_mem_free(mem, sel);
    tsr_mem_free(mem, gids);
    tsr_mem_free(mem, kbuf);
    tsr_mem_free(mem, (void *)kptr);
    tsr_mem_free(mem, kvec);
    return rc;
}

/* ---- probe -------------------------------------------------------------------------- */

tsr_status_t tsr_join_worker_setup(join_run_t *r, join_worker_t *w)
{
    tsr_mem_t *mem = r->mem;
    w->ready = true;
    w->sel = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    w->gids = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    w->pl = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    w->pq = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    w->rsel = tsr_mem_alloc(mem, JOIN_ROWS * sizeof(uint32_t));
    w->kbuf = tsr_mem_alloc(mem, (r->nkeys ? r->nkeys : 1) * JOIN_ROWS * sizeof(uint64_t));
    w->kptr = tsr_mem_calloc(mem, r->nkeys ? r->nkeys : 1, sizeof(*w->kptr));
    w->kvec = tsr_mem_calloc(mem, r->nkeys ? r->nkeys : 1, sizeof(tsr_vector_t));
    if (!w->sel || !w->gids || !w->pl || !w->pq || !w->rsel || !w->kbuf || !w->kptr || !w->kvec)
        return TSR_ERR_NOMEM;
    return TSR_OK;
}

static void join_worker_free(tsr_mem_t *mem, join_worker_t *w)
{
    tsr_mem_free(mem, w->sel);
    tsr_mem_free(mem, w->gids);
    tsr_mem_free(mem, w->pl);
    tsr_mem_free(mem, w->pq);
    tsr_mem_free(mem, w->rsel);
    tsr_mem_free(mem, w->kbuf);
    tsr_mem_free(mem, (void *)w->kptr);
    tsr_mem_free(mem, w->kvec);
    memset(w, 0, sizeof(*w));
}

static tsr_status_t join_outs_push(tsr_mem_t *mem, join_outs_t *o, size_t nrows, tsr_vector_t *cols)
{
    size_t c1 = o->cap, c2 = o->cap;
    if (tsr_mem_grow(mem, (void **)&o->nrows, &c1, o->n + 1, sizeof(size_t)) ||
        tsr_mem_grow(mem, (void **)&o->cols, &c2, o->n + 1, sizeof(tsr_vector_t *)))
        return TSR_ERR_NOMEM;
    o->cap = c1 < c2 ? c1 : c2;
    o->nrows[o->n] = nrows;
    o->cols[o->n++] = cols;
    return TSR_OK;
}

/* Gathers k pairs (w->pl, w->pq) into an output batch, applies the residual
 * and appends what survives to o. */
tsr_status_t tsr_join_flush(join_run_t *r, join_worker_t *w, const tsr_batch_t *lb, size_t k,
                            join_outs_t *o, tsr_error_t *err)
{
    tsr_mem_t *mem = r->mem;
    size_t nl = r->left->ncols, ncols = r->plan->ncols;
    tsr_vector_t *cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    if (!cols)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_status_t rc = TSR_OK;
    for (size_t c = 0; c < ncols && rc == TSR_OK; c++)
        rc = c < nl ? tsr_exec_gather_sel(mem, &lb->cols[c], w->pl, k, &cols[c])
                    : tsr_exec_gather_sel(mem, &r->payload[c - nl], w->pq, k, &cols[c]);
    if (rc != TSR_OK) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto err_free;
    }
    size_t n = k;
    if (r->plan->residual) {
        tsr_batch_t joined = {.nrows = k, .cols = cols};
        if ((rc = tsr_expr_select(mem, r->plan->residual, &joined, w->rsel, &n, err)) != TSR_OK)
            goto err_free;
        if (n == 0) {
            tsr_exec_free_cols(mem, cols, ncols);
            return TSR_OK;
        }
        for (size_t c = 0; c < ncols && n < k; c++) {
            tsr_vector_t kept;
            if (tsr_exec_gather_sel(mem, &cols[c], w->rsel, n, &kept) != TSR_OK) {
                rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
                goto err_free;
            }
            tsr_vector_release(mem, &cols[c]);
            cols[c] = kept;
        }
    }
    if (join_outs_push(mem, o, n, cols) != TSR_OK) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto err_free;
    }
    return TSR_OK;

err_free:
    tsr_exec_free_cols(mem, cols, ncols);
    return rc;
}

static tsr_status_t join_probe_batch(join_run_t *r, join_worker_t *w, size_t t, tsr_error_t *err)
{
    const tsr_batch_t *lb = &r->left->batches[t];
    size_t nsel;
    tsr_status_t rc = join_batch_keys(r, true, lb, w->kvec, w->kptr, w->kbuf, w->sel, &nsel, err);
    if (rc == TSR_OK) {
        tsr_ht_rows_t rows = {.n = nsel, .sel = w->sel, .keys = w->kptr};
        tsr_ht_find(&r->ht, &rows, w->gids);
    }
    join_release_keys(r, w->kvec);
    if (rc != TSR_OK)
        return rc;
    size_t k = 0;
    for (size_t j = 0; j < nsel; j++) {
        uint32_t g = w->gids[j];
        if (g == TSR_HT_NONE)
            continue;
        for (size_t q = r->off[g]; q < r->off[g + 1]; q++) {
            w->pl[k] = w->sel[j];
            w->pq[k] = (uint32_t)q;
            if (++k == JOIN_ROWS) {
                if ((rc = tsr_join_flush(r, w, lb, k, &r->outs[t], err)) != TSR_OK)
                    return rc;
                k = 0;
                /* a batch of many matches per row can be long: check per
                 * output batch too (one load per JOIN_ROWS pairs) */
                if (tsr_exec_cancelled(r->ctx))
                    return tsr_exec_cancel_error(err);
            }
        }
    }
    if (k > 0)
        return tsr_join_flush(r, w, lb, k, &r->outs[t], err);
    return TSR_OK;
}

static void join_probe_task(void *arg, size_t t, unsigned worker)
{
    join_run_t *r = arg;
    if (tsr_exec_task_stop(r->ctx, &r->errs))
        return;
    join_worker_t *w = &r->w[worker];
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = TSR_OK;
    if (!w->ready && (rc = tsr_join_worker_setup(r, w)) != TSR_OK)
        tsr_error_set(&err, rc, "out of memory");
    if (rc == TSR_OK)
        rc = join_probe_batch(r, w, t, &err);
    if (rc != TSR_OK) {
        if (err.status == TSR_OK)
            tsr_error_set(&err, rc, "join failed");
        tsr_exec_errslot_store(&r->errs, &err);
    }
}

/* ---- shared with dev_join.c --------------------------------------------------------------- */

void tsr_join_run_init(join_run_t *r, const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                       tsr_op_input_t left, tsr_op_input_t right)
{
    memset(r, 0, sizeof(*r));
    r->ctx = ctx;
    r->mem = ctx->mem;
    r->plan = plan;
    r->left = left.table;
    r->right = right.table;
    tsr_exec_errslot_init(&r->errs);
}

tsr_status_t tsr_join_end(join_run_t *r, tsr_status_t rc, tsr_table_t *t, tsr_op_input_t left,
                          tsr_op_input_t right, tsr_table_t **out, tsr_error_t *err)
{
    if (rc == TSR_OK && t && (rc = tsr_exec_finish_output(t, left, false, err)) == TSR_OK &&
        (rc = tsr_exec_finish_output(t, right, false, err)) == TSR_OK) {
        *out = t;
        t = NULL;
    }
    if (t && rc != TSR_OK && t->ndeps > 0) {
        /* finish_output took the left input before the right failed: hand it
         * back, the caller still owns its inputs on failure */
        t->ndeps = 0;
    }
    tsr_table_destroy(t);
    tsr_join_run_free(r);
    return rc;
}

void tsr_join_run_free(join_run_t *r)
{
    tsr_mem_t *mem = r->mem;
    for (size_t k = 0; r->keys && k < r->nkeys; k++)
        tsr_mem_free(mem, r->keys[k].map);
    tsr_mem_free(mem, r->keys);
    tsr_mem_free(mem, (void *)r->code_hashes);
    tsr_ht_fini(&r->ht);
    tsr_mem_free(mem, r->off);
    if (r->payload)
        tsr_exec_free_cols(mem, r->payload, r->right->ncols);
    for (unsigned i = 0; r->w && i < r->nworkers; i++)
        join_worker_free(mem, &r->w[i]);
    tsr_mem_free(mem, r->w);
    for (size_t t = 0; r->outs && t < r->left->nbatches; t++) {
        for (size_t b = 0; b < r->outs[t].n; b++)
            tsr_exec_free_cols(mem, r->outs[t].cols[b], r->plan->ncols);
        tsr_mem_free(mem, r->outs[t].nrows);
        tsr_mem_free(mem, r->outs[t].cols);
    }
    tsr_mem_free(mem, r->outs);
}

/* Moves the probe tasks' output batches into t, in left batch order. */
tsr_status_t tsr_join_collect(join_run_t *r, tsr_table_t *t, tsr_error_t *err)
{
    for (size_t b = 0; r->outs && b < r->left->nbatches; b++) {
        join_outs_t *o = &r->outs[b];
        for (size_t i = 0; i < o->n; i++) {
            if (tsr_table_append_batch(t, o->nrows[i], o->cols[i]) != TSR_OK)
                return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            o->cols[i] = NULL; /* the table owns it now */
        }
    }
    return TSR_OK;
}

/* ---- the operator ------------------------------------------------------------------------ */

tsr_status_t tsr_op_hash_join(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                              tsr_op_input_t left, tsr_op_input_t right, tsr_table_t **out,
                              tsr_error_t *err)
{
    join_run_t r;
    tsr_join_run_init(&r, ctx, plan, left, right);
    tsr_table_t *t = NULL;
    tsr_status_t rc = tsr_join_plan(&r, err);
    if (rc != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_new_output(ctx, plan, &t, err)) != TSR_OK)
        goto cleanup;
    if (r.left->nrows > 0 && r.right->nrows > 0) {
        if ((rc = join_build(&r, err)) != TSR_OK)
            goto cleanup;
        r.nworkers = tsr_exec_nworkers(ctx);
        r.w = tsr_mem_calloc(r.mem, r.nworkers, sizeof(join_worker_t));
        r.outs = tsr_mem_calloc(r.mem, r.left->nbatches, sizeof(join_outs_t));
        if (!r.w || !r.outs) {
            rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            goto cleanup;
        }
        if (r.ht.ngroups > 0)
            tsr_exec_parallel(ctx, r.left->nbatches, join_probe_task, &r);
        if ((rc = tsr_exec_errslot_take(&r.errs, err)) != TSR_OK)
            goto cleanup;
        if ((rc = tsr_join_collect(&r, t, err)) != TSR_OK)
            goto cleanup;
    }

cleanup:
    return tsr_join_end(&r, rc, t, left, right, out, err);
}
