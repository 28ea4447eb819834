/*
 * op_project.c - PROJECT: one output column per expression over the input.
 *
 * One task per input batch evaluates every expression with tsr_expr_eval.
 * COLUMN expressions (and casts to the same type) borrow the input's vectors,
 * so a projection that only picks and reorders columns copies nothing; then
 * the output owns the input as a dependency (unless it is a catalog table).
 *
 * VARCHAR constants cannot be evaluated into a vector without a dictionary:
 * for each such column the operator builds one frozen single-entry dictionary,
 * owned by the output table (tsr_table_adopt_dict), and every row holds code 0.
 * A NULL of type VARCHAR gets the same treatment with an all-zero validity
 * bitmap (the dictionary then holds "" so readers never see a NULL dict).
 * Empty input batches are dropped.
 */
#include <string.h>

#include "exec/exec_internal.h"

typedef struct project_job {
    const tsr_exec_ctx_t *ctx;
    const tsr_plan_t *plan;
    const tsr_table_t *in;
    const tsr_dict_t **const_dict; /* per output column: dictionary of a VARCHAR constant */
    bool *const_null;              /* per output column: that constant is NULL */
    tsr_vector_t **cols;           /* per input batch: output columns */
    bool *borrowed;                /* per input batch: some column borrows the input */
    tsr_expr_memo_t *memos;        /* per pool worker: string predicate results */
    tsr_exec_errslot_t slot;
} project_job_t;

/* n rows of code 0 of dict d (all NULL when is_null). */
static tsr_status_t const_string_vector(tsr_mem_t *mem, const tsr_dict_t *d, bool is_null, size_t n,
                                        tsr_vector_t *out)
{
    tsr_vector_t v;
    if (tsr_vector_alloc(mem, TSR_TYPE_VARCHAR, n, is_null, d, &v) != TSR_OK)
        return TSR_ERR_NOMEM;
    memset(v.data, 0, (n ? n : 1) * sizeof(uint32_t));
    if (is_null)
        memset(v.owned_validity, 0, tsr_bitmap_words(n ? n : 1) * sizeof(uint64_t));
    *out = v;
    return TSR_OK;
}

static void project_task(void *arg, size_t b, unsigned worker)
{
    project_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot))
        return;
    tsr_mem_t *mem = job->ctx->mem;
    const tsr_batch_t *batch = &job->in->batches[b];
    size_t ncols = job->plan->ncols, n = batch->nrows;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (n == 0)
        return;
    tsr_vector_t *cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    if (!cols) {
        tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    bool borrowed = false;
    for (size_t c = 0; c < ncols; c++) {
        if (job->const_dict[c]) {
            if (const_string_vector(mem, job->const_dict[c], job->const_null[c], n, &cols[c]) !=
                TSR_OK) {
                tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
                goto fail;
            }
            continue;
        }
        if (tsr_expr_eval_memo(mem, &job->memos[worker], job->plan->exprs[c], batch, &cols[c],
                               &err) != TSR_OK)
            goto fail;
        /* a vector without owned storage views the input's */
        if ((cols[c].data && !cols[c].owned_data) || (cols[c].validity && !cols[c].owned_validity))
            borrowed = true;
    }
    job->cols[b] = cols;
    job->borrowed[b] = borrowed;
    return;

fail:
    tsr_exec_free_cols(mem, cols, ncols);
    tsr_exec_errslot_store(&job->slot, &err);
}

/* For every VARCHAR expression that folds to a constant, a one-entry
 * dictionary adopted by res. */
static tsr_status_t make_const_dicts(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                                     tsr_table_t *res, project_job_t *job, tsr_error_t *err)
{
    for (size_t c = 0; c < plan->ncols; c++) {
        const tsr_expr_t *e = plan->exprs[c];
        if (e->type != TSR_TYPE_VARCHAR || e->kind == TSR_EXPR_COLUMN)
            continue;
        bool folded = false;
        tsr_value_t v;
        tsr_status_t rc = tsr_expr_fold(e, &folded, &v, err);
        if (rc != TSR_OK)
            return rc;
        if (!folded)
            continue;
        tsr_dict_t *d;
        uint32_t code;
        if (tsr_dict_create(ctx->mem, &d) != TSR_OK)
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        const char *s = v.is_null || !v.s ? "" : v.s;
        size_t len = v.is_null || !v.s ? 0 : v.slen;
        if (tsr_dict_intern(d, s, len, &code) != TSR_OK || tsr_dict_freeze(d) != TSR_OK) {
            tsr_dict_destroy(d);
            return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        }
        tsr_table_adopt_dict(res, c, d);
        job->const_dict[c] = d;
        job->const_null[c] = v.is_null;
    }
    return TSR_OK;
}

tsr_status_t tsr_op_project(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                            tsr_table_t **out, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *t = in.table;
    size_t nb = t->nbatches, ncols = plan->ncols;
    for (size_t c = 0; c < ncols; c++)
        if (!plan->exprs || !plan->exprs[c])
            return tsr_error_set(err, TSR_ERR_INTERNAL, "projection without expression %zu", c);
    tsr_status_t rc;
    tsr_table_t *res = NULL;
    project_job_t job = {.ctx = ctx, .plan = plan, .in = t};
    tsr_exec_errslot_init(&job.slot);
    job.const_dict = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*job.const_dict));
    job.const_null = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(*job.const_null));
    job.cols = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.cols));
    job.borrowed = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.borrowed));
    unsigned nw = tsr_exec_nworkers(ctx);
    job.memos = tsr_expr_memos_new(mem, nw);
    if (!job.const_dict || !job.const_null || !job.cols || !job.borrowed || !job.memos) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = tsr_exec_new_output(ctx, plan, &res, err)) != TSR_OK)
        goto done;
    if ((rc = make_const_dicts(ctx, plan, res, &job, err)) != TSR_OK)
        goto done;
    tsr_exec_parallel(ctx, nb, project_task, &job);
    if ((rc = tsr_exec_errslot_take(&job.slot, err)) != TSR_OK)
        goto done;
    if ((rc = tsr_exec_collect(res, in, job.cols, NULL, job.borrowed, err)) != TSR_OK)
        goto done;
    *out = res;
    res = NULL;

done:
    tsr_table_destroy(res);
    if (job.cols)
        for (size_t b = 0; b < nb; b++)
            tsr_exec_free_cols(mem, job.cols[b], ncols);
    tsr_mem_free(mem, job.const_dict);
    tsr_mem_free(mem, job.const_null);
    tsr_mem_free(mem, job.cols);
    tsr_mem_free(mem, job.borrowed);
    tsr_expr_memos_free(mem, job.memos, nw);
    return rc;
}
