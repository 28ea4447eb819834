/*
 * op_limit.c - LIMIT: skip `offset` rows, then keep at most `limit` rows
 * (limit < 0: all of them).
 *
 * The window is cut across batches in order. A batch that lies wholly inside
 * the window is borrowed (no copy; the output then owns an intermediate input
 * as a dependency); the at most two batches cut by the window's edges are
 * copied, which is cheap (a batch at most each). Runs on the calling thread:
 * there is nothing worth spreading.
 */
#include "exec/exec_internal.h"

tsr_status_t tsr_op_limit(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                          tsr_table_t **out, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *t = in.table;
    size_t ncols = t->ncols;
    if (plan->ncols != ncols)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "limit over %zu columns outputs %zu", ncols,
                             plan->ncols);
    tsr_table_t *res;
    tsr_status_t rc = tsr_exec_new_output(ctx, plan, &res, err);
    if (rc != TSR_OK)
        return rc;
    uint64_t skip = plan->offset > 0 ? (uint64_t)plan->offset : 0;
    uint64_t left = plan->limit < 0 ? UINT64_MAX : (uint64_t)plan->limit;
    bool borrowed = false;
    tsr_vector_t *cols = NULL;
    for (size_t b = 0; b < t->nbatches && left > 0; b++) {
        const tsr_batch_t *batch = &t->batches[b];
        size_t n = batch->nrows;
        if (skip >= n) {
            skip -= n;
            continue;
        }
        size_t from = (size_t)skip;
        size_t cnt = n - from;
        if ((uint64_t)cnt > left)
            cnt = (size_t)left;
        skip = 0;
        left -= cnt;
        cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
        if (!cols)
            goto nomem;
        if (from == 0 && cnt == n) {
            for (size_t c = 0; c < ncols; c++)
                cols[c] = tsr_vector_borrow(&batch->cols[c]);
            borrowed = true;
        } else {
            for (size_t c = 0; c < ncols; c++)
                if (tsr_exec_copy_range(mem, &batch->cols[c], from, cnt, &cols[c]) != TSR_OK)
                    goto nomem;
        }
        if (tsr_table_append_batch(res, cnt, cols) != TSR_OK)
            goto nomem;
        cols = NULL;
    }
    if ((rc = tsr_exec_finish_output(res, in, borrowed, err)) != TSR_OK)
        goto fail;
    *out = res;
    return TSR_OK;

nomem:
    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
fail:
    tsr_exec_free_cols(mem, cols, ncols);
    tsr_table_destroy(res);
    return rc;
}
