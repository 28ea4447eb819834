/*
 * op_filter.c - FILTER: the rows of the input where the predicate is TRUE.
 *
 * One task per input batch: the predicate becomes a selection vector
 * (tsr_expr_select), then every column's surviving rows are gathered into
 * owned vectors that keep the input's dictionaries. A batch where every row
 * survives is not copied at all: its vectors are borrowed (then the output
 * owns the input as a dependency, unless it is a catalog table). A batch where
 * no row survives is dropped, so the output has at most one batch per input
 * batch, in input order.
 */
#include "exec/exec_internal.h"

typedef struct filter_job {
    const tsr_exec_ctx_t *ctx;
    const tsr_plan_t *plan;
    const tsr_table_t *in;
    tsr_vector_t **cols;    /* per input batch: the output columns, NULL when dropped */
    size_t *nrows;          /* per input batch: rows kept */
    bool *borrowed;         /* per input batch: cols borrow the input's vectors */
    tsr_expr_memo_t *memos; /* per pool worker: string predicate results */
    tsr_exec_errslot_t slot;
} filter_job_t;

static void filter_task(void *arg, size_t b, unsigned worker)
{
    filter_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot))
        return;
    tsr_mem_t *mem = job->ctx->mem;
    const tsr_batch_t *batch = &job->in->batches[b];
    size_t ncols = job->in->ncols, n = batch->nrows, nsel = 0;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_vector_t *cols = NULL;
    if (n == 0)
        return;
    uint32_t *sel = tsr_mem_alloc(mem, n * sizeof(uint32_t));
    if (!sel)
        goto nomem;
    if (tsr_expr_select_memo(mem, &job->memos[worker], job->plan->pred, batch, sel, &nsel, &err) !=
        TSR_OK)
        goto fail;
    if (nsel == 0) {
        tsr_mem_free(mem, sel);
        return;
    }
    cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    if (!cols)
        goto nomem;
    if (nsel == n) {
        for (size_t c = 0; c < ncols; c++)
            cols[c] = tsr_vector_borrow(&batch->cols[c]);
        job->borrowed[b] = true;
    } else {
        for (size_t c = 0; c < ncols; c++)
            if (tsr_exec_gather_sel(mem, &batch->cols[c], sel, nsel, &cols[c]) != TSR_OK)
                goto nomem;
    }
    tsr_mem_free(mem, sel);
    job->cols[b] = cols;
    job->nrows[b] = nsel;
    return;

nomem:
    tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
fail:
    tsr_exec_free_cols(mem, cols, ncols);
    tsr_mem_free(mem, sel);
    tsr_exec_errslot_store(&job->slot, &err);
}

tsr_status_t tsr_op_filter(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                           tsr_table_t **out, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *t = in.table;
    size_t nb = t->nbatches, ncols = t->ncols;
    if (plan->ncols != ncols || !plan->pred)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "filter over %zu columns outputs %zu", ncols,
                             plan->ncols);
    tsr_status_t rc;
    tsr_table_t *res = NULL;
    filter_job_t job = {.ctx = ctx, .plan = plan, .in = t};
    tsr_exec_errslot_init(&job.slot);
    job.cols = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.cols));
    job.nrows = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.nrows));
    job.borrowed = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.borrowed));
    unsigned nw = tsr_exec_nworkers(ctx);
    job.memos = tsr_expr_memos_new(mem, nw);
    if (!job.cols || !job.nrows || !job.borrowed || !job.memos) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    tsr_exec_parallel(ctx, nb, filter_task, &job);
    if ((rc = tsr_exec_errslot_take(&job.slot, err)) != TSR_OK)
        goto done;
    if ((rc = tsr_exec_new_output(ctx, plan, &res, err)) != TSR_OK)
        goto done;
    if ((rc = tsr_exec_collect(res, in, job.cols, job.nrows, job.borrowed, err)) != TSR_OK)
        goto done;
    *out = res;
    res = NULL;

done:
    tsr_table_destroy(res);
    if (job.cols)
        for (size_t b = 0; b < nb; b++)
            tsr_exec_free_cols(mem, job.cols[b], ncols);
    tsr_mem_free(mem, job.cols);
    tsr_mem_free(mem, job.nrows);
    tsr_mem_free(mem, job.borrowed);
    tsr_expr_memos_free(mem, job.memos, nw);
    return rc;
}
