/*
 * exec_util.c - helpers shared by the executor's operators (exec_internal.h):
 * the first-error slot for parallel tasks, running tasks on the pool, output
 * tables and the ownership rule for inputs, and row gathers.
 *
 * Gathers are specialised per value width (1, 4 or 8 bytes: BOOL, VARCHAR
 * codes, INT64/DOUBLE) so each is a plain indexed copy loop; validity bits
 * are gathered 64 at a time into whole words.
 */
#include "exec/exec_internal.h"

#include <string.h>

/* ---- first-error slot, parallel runs ---------------------------------------------- */

void tsr_exec_errslot_init(tsr_exec_errslot_t *slot)
{
    atomic_init(&slot->failed, 0);
    tsr_error_clear(&slot->err);
}

void tsr_exec_errslot_store(tsr_exec_errslot_t *slot, const tsr_error_t *e)
{
    int expected = 0;
    /* 0 -> 1 claims the slot; 2 publishes the copied error */
    if (atomic_compare_exchange_strong(&slot->failed, &expected, 1)) {
        slot->err = *e;
        if (slot->err.status == TSR_OK) /* a task that failed without a message */
            slot->err.status = TSR_ERR_INTERNAL;
        atomic_store(&slot->failed, 2);
    }
}

tsr_status_t tsr_exec_errslot_take(tsr_exec_errslot_t *slot, tsr_error_t *err)
{
    /* called after the join: the pool's completion orders the writes */
    if (atomic_load(&slot->failed) == 0)
        return TSR_OK;
    if (err && err->status == TSR_OK)
        *err = slot->err;
    return slot->err.status;
}

tsr_status_t tsr_exec_cancel_error(tsr_error_t *err)
{
    return tsr_error_set(err, TSR_ERR_CANCELLED, "cancelled");
}

bool tsr_exec_task_stop(const tsr_exec_ctx_t *ctx, tsr_exec_errslot_t *slot)
{
    if (tsr_exec_errslot_failed(slot))
        return true;
    if (!tsr_exec_cancelled(ctx))
        return false;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_exec_cancel_error(&e);
    tsr_exec_errslot_store(slot, &e);
    return true;
}

void tsr_exec_parallel(const tsr_exec_ctx_t *ctx, size_t ntasks, tsr_task_fn fn, void *arg)
{
    if (ntasks == 0)
        return;
    if (ctx->pool && ntasks > 1) {
        tsr_pool_run(ctx->pool, ntasks, fn, arg);
        return;
    }
    for (size_t i = 0; i < ntasks; i++)
        fn(arg, i, 0);
}

unsigned tsr_exec_nworkers(const tsr_exec_ctx_t *ctx)
{
    return ctx->pool ? tsr_pool_size(ctx->pool) : 1u;
}

/* ---- output tables ----------------------------------------------------------------- */

tsr_status_t tsr_exec_new_output(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                                 tsr_table_t **out, tsr_error_t *err)
{
    if (tsr_table_create(ctx->mem, NULL, plan->ncols, (const char *const *)plan->names, plan->types,
                         out) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

bool tsr_exec_has_dep(const tsr_table_t *t, const tsr_table_t *dep)
{
    for (size_t i = 0; i < t->ndeps; i++)
        if (t->deps[i] == dep)
            return true;
    return false;
}

/* Is d owned by t or by one of the tables t depends on? */
static bool tree_owns_dict(const tsr_table_t *t, const tsr_dict_t *d)
{
    for (size_t c = 0; c < t->ncols; c++)
        if (t->dicts[c] == d)
            return true;
    for (size_t i = 0; i < t->ndeps; i++)
        if (tree_owns_dict(t->deps[i], d))
            return true;
    return false;
}

tsr_status_t tsr_exec_finish_output(tsr_table_t *out, tsr_op_input_t in, bool borrowed,
                                    tsr_error_t *err)
{
    if (in.is_base)
        return TSR_OK;
    bool need = borrowed;
    /* a copied VARCHAR column still points at its dictionary: keep its owner */
    for (size_t c = 0; c < out->ncols && !need && out->nbatches; c++) {
        for (size_t b = 0; b < out->nbatches; b++) {
            const tsr_dict_t *d = out->batches[b].cols[c].dict;
            if (d) {
                need = tree_owns_dict(in.table, d);
                break;
            }
        }
    }
    if (need && tsr_table_add_dep(out, in.table) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    return TSR_OK;
}

tsr_status_t tsr_exec_collect(tsr_table_t *out, tsr_op_input_t in, tsr_vector_t **cols,
                              const size_t *nrows, const bool *borrowed, tsr_error_t *err)
{
    bool any_borrowed = false;
    for (size_t b = 0; b < in.table->nbatches; b++) {
        if (!cols[b])
            continue;
        size_t n = nrows ? nrows[b] : in.table->batches[b].nrows;
        if (tsr_table_append_batch(out, n, cols[b]) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        cols[b] = NULL; /* the table owns them now */
        any_borrowed |= borrowed[b];
    }
    return tsr_exec_finish_output(out, in, any_borrowed, err);
}

void tsr_exec_free_cols(tsr_mem_t *mem, tsr_vector_t *cols, size_t ncols)
{
    if (!cols)
        return;
    for (size_t c = 0; c < ncols; c++)
        tsr_vector_release(mem, &cols[c]);
    tsr_mem_free(mem, cols);
}

/* ---- gathers --------------------------------------------------------------------------- */

tsr_status_t tsr_exec_gather_sel(tsr_mem_t *mem, const tsr_vector_t *src, const uint32_t *sel,
                                 size_t n, tsr_vector_t *dst)
{
    tsr_vector_t v;
    if (tsr_vector_alloc(mem, src->type, n, src->validity != NULL, src->dict, &v) != TSR_OK)
        return TSR_ERR_NOMEM;
    switch (tsr_type_width(src->type)) {
    case 1: {
        const uint8_t *s = src->data;
        uint8_t *d = v.data;
        for (size_t i = 0; i < n; i++)
            d[i] = s[sel[i]];
        break;
    }
    case 4: {
        const uint32_t *s = src->data;
        uint32_t *d = v.data;
        for (size_t i = 0; i < n; i++)
            d[i] = s[sel[i]];
        break;
    }
    default: {
        const uint64_t *s = src->data;
        uint64_t *d = v.data;
        for (size_t i = 0; i < n; i++)
            d[i] = s[sel[i]];
        break;
    }
    }
    if (src->validity) {
        const uint64_t *sv = src->validity;
        for (size_t w = 0; w * 64 < n; w++) {
            size_t cnt = n - w * 64 < 64 ? n - w * 64 : 64;
            const uint32_t *s = sel + w * 64;
            uint64_t word = 0;
            for (size_t j = 0; j < cnt; j++)
                word |= ((sv[s[j] >> 6] >> (s[j] & 63)) & 1) << j;
            v.owned_validity[w] = word;
        }
    }
    *dst = v;
    return TSR_OK;
}

tsr_status_t tsr_exec_copy_range(tsr_mem_t *mem, const tsr_vector_t *src, size_t from, size_t n,
                                 tsr_vector_t *dst)
{
    tsr_vector_t v;
    if (tsr_vector_alloc(mem, src->type, n, src->validity != NULL, src->dict, &v) != TSR_OK)
        return TSR_ERR_NOMEM;
    size_t w = tsr_type_width(src->type);
    if (n)
        memcpy(v.data, (const char *)src->data + from * w, n * w);
    if (src->validity) {
        memset(v.owned_validity, 0, tsr_bitmap_words(n ? n : 1) * sizeof(uint64_t));
        for (size_t i = 0; i < n; i++)
            if (tsr_bit_get(src->validity, from + i))
                v.owned_validity[i >> 6] |= (uint64_t)1 << (i & 63);
    }
    *dst = v;
    return TSR_OK;
}
