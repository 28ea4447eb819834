/*
 * dev_filter.c - FILTER on a device: the predicate compiled into a program of
 * the filter kernel family (device/filter.h), evaluated over chunks of the
 * input's batches to a selection vector; the surviving rows are then
 * gathered on the host (pool), as op_filter.c does.
 *
 * Compilation is a post-order walk of the bound expression that emits the
 * postfix program: comparisons of a column with a constant (constant on the
 * left: the operator is mirrored), IS [NOT] NULL, IN lists as a chain of =
 * joined by OR (NOT for NOT IN), AND, OR, NOT. Anything else (arithmetic,
 * strings, casts, BOOL columns, NULL constants) makes the whole predicate
 * "not covered" and the CPU operator runs. The semantics match the
 * executor's (three-valued logic, NaN and -0.0 rules): filter.h.
 *
 * Output of a selection: per batch, ascending batch-relative row numbers at
 * sel[off[b]], off[b] = rows of the batches before b (dev_exec.h).
 *
 * Input: where the backend filters device-resident columns (filter.h
 * run_dev) the predicate's columns come from the query's column cache
 * (dev_columns.h) chunk by chunk, so a later device operator of the query
 * reading them finds them there; the selection is produced on the device
 * and read back only because the host gathers the rows (the aggregation
 * takes it on the device: tsr_dev_exec_select_resident). A chunk that does
 * not fit the device, or a backend with host input only, takes the
 * host-input path: the columns concatenated on the host and copied in by
 * tsr_dev_filter_run.
 */
#include <string.h>

#include "exec/dev_exec.h"
#include "exec/expr_kernels.h"

/* ---- predicate -> program ----------------------------------------------------------- */

typedef struct pred_compiler {
    tsr_dev_exec_pred_t *p;
    const tsr_table_t *in;
    size_t depth; /* values on the program's stack after what was emitted */
} pred_compiler_t;

static bool pc_emit(pred_compiler_t *pc, tsr_dev_pred_op_t op, size_t slot, int64_t i, double d)
{
    tsr_dev_filter_spec_t *s = &pc->p->spec;
    if (s->ninstrs == TSR_DEV_FILTER_MAX_INSTRS)
        return false;
    if (op == TSR_DEV_PRED_AND || op == TSR_DEV_PRED_OR)
        pc->depth--;
    else if (op != TSR_DEV_PRED_NOT)
        pc->depth++;
    if (pc->depth > TSR_DEV_FILTER_MAX_DEPTH)
        return false;
    s->prog[s->ninstrs++] = (tsr_dev_pred_instr_t){.op = op, .column = slot, .i = i, .d = d};
    return true;
}

/* The program's column for input column col (added when new); false when
 * the column's type is not one the kernels read. */
static bool pc_slot(pred_compiler_t *pc, const tsr_expr_t *e, size_t *slot)
{
    if (e->kind != TSR_EXPR_COLUMN || e->column >= pc->in->ncols)
        return false;
    tsr_type_t t = pc->in->fields[e->column].type;
    if (t != e->type || (t != TSR_TYPE_INT64 && t != TSR_TYPE_DOUBLE))
        return false;
    tsr_dev_filter_spec_t *s = &pc->p->spec;
    for (size_t k = 0; k < s->ncols; k++)
        if (pc->p->cols[k] == e->column) {
            *slot = k;
            return true;
        }
    if (s->ncols == TSR_DEV_FILTER_MAX_COLS)
        return false;
    s->types[s->ncols] = t;
    pc->p->cols[s->ncols] = e->column;
    *slot = s->ncols++;
    return true;
}

/* The non-NULL constant value of e (folded when it has no column). */
static bool pc_const(const tsr_expr_t *e, tsr_type_t type, tsr_value_t *v)
{
    if (e->kind == TSR_EXPR_COLUMN || e->type != type)
        return false;
    if (e->kind == TSR_EXPR_CONST) {
        *v = e->value;
    } else {
        bool folded = false;
        tsr_error_t err; /* a constant that fails to fold fails on the CPU too */
        tsr_error_clear(&err);
        if (tsr_expr_fold(e, &folded, v, &err) != TSR_OK || !folded)
            return false;
    }
    return !v->is_null && v->type == type;
}

static bool pc_cmp(pred_compiler_t *pc, tsr_op_t op, const tsr_expr_t *col, const tsr_expr_t *k)
{
    static const struct {
        tsr_op_t sql;
        tsr_dev_pred_op_t dev;
    } ops[] = {
        {TSR_OP_EQ, TSR_DEV_PRED_EQ}, {TSR_OP_NE, TSR_DEV_PRED_NE}, {TSR_OP_LT, TSR_DEV_PRED_LT},
        {TSR_OP_LE, TSR_DEV_PRED_LE}, {TSR_OP_GT, TSR_DEV_PRED_GT}, {TSR_OP_GE, TSR_DEV_PRED_GE},
    };
    size_t slot;
    tsr_value_t v;
    if (!pc_slot(pc, col, &slot) || !pc_const(k, col->type, &v))
        return false;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].sql == op)
            return pc_emit(pc, ops[i].dev, slot, v.i, v.d);
    return false;
}

static bool pc_expr(pred_compiler_t *pc, const tsr_expr_t *e)
{
    if (e->type != TSR_TYPE_BOOL)
        return false;
    switch (e->kind) {
    case TSR_EXPR_BINARY:
        if (e->nargs != 2)
            return false;
        switch (e->op) {
        case TSR_OP_AND:
        case TSR_OP_OR:
            return pc_expr(pc, e->args[0]) && pc_expr(pc, e->args[1]) &&
                   pc_emit(pc, e->op == TSR_OP_AND ? TSR_DEV_PRED_AND : TSR_DEV_PRED_OR, 0, 0, 0);
        case TSR_OP_EQ:
        case TSR_OP_NE:
        case TSR_OP_LT:
        case TSR_OP_LE:
        case TSR_OP_GT:
        case TSR_OP_GE:
            if (e->args[0]->kind == TSR_EXPR_COLUMN)
                return pc_cmp(pc, e->op, e->args[0], e->args[1]);
            if (e->args[1]->kind == TSR_EXPR_COLUMN)
                return pc_cmp(pc, tsr_kern_flip(e->op), e->args[1], e->args[0]);
            return false;
        default:
            return false;
        }
    case TSR_EXPR_UNARY:
        return e->op == TSR_OP_NOT && e->nargs == 1 && pc_expr(pc, e->args[0]) &&
               pc_emit(pc, TSR_DEV_PRED_NOT, 0, 0, 0);
    case TSR_EXPR_IS_NULL: {
        size_t slot;
        return e->nargs == 1 && pc_slot(pc, e->args[0], &slot) &&
               pc_emit(pc, e->negated ? TSR_DEV_PRED_IS_NOT_NULL : TSR_DEV_PRED_IS_NULL, slot, 0,
                       0);
    }
    case TSR_EXPR_IN:
        /* x IN (a, b) is x = a OR x = b under three-valued logic as long as
         * no list item is NULL (x NULL: NULL either way) */
        if (e->nargs < 2 || e->args[0]->kind != TSR_EXPR_COLUMN)
            return false;
        for (size_t k = 1; k < e->nargs; k++)
            if (!pc_cmp(pc, TSR_OP_EQ, e->args[0], e->args[k]) ||
                (k > 1 && !pc_emit(pc, TSR_DEV_PRED_OR, 0, 0, 0)))
                return false;
        return !e->negated || pc_emit(pc, TSR_DEV_PRED_NOT, 0, 0, 0);
    default:
        return false;
    }
}

bool tsr_dev_exec_pred_compile(const tsr_expr_t *pred, const tsr_table_t *in,
                               tsr_dev_exec_pred_t *out)
{
    memset(out, 0, sizeof(*out));
    pred_compiler_t pc = {.p = out, .in = in};
    return pred && pc_expr(&pc, pred) && pc.depth == 1 && out->spec.ncols > 0;
}

/* ---- selection -------------------------------------------------------------------------- */

tsr_status_t tsr_dev_exec_select_resident(tsr_dev_cols_t *c, tsr_dev_filter_t *f,
                                          const tsr_dev_exec_pred_t *p, const tsr_table_t *in,
                                          bool base, size_t b0, size_t b1, tsr_dev_buf_t **sel,
                                          size_t *nsel, bool *fits, tsr_error_t *err)
{
    *sel = NULL;
    *nsel = 0;
    *fits = true;
    size_t rows = tsr_dev_exec_rows(in, b0, b1);
    if (rows == 0)
        return TSR_OK;
    tsr_dev_filter_dcols_t cols = {.n = rows};
    tsr_status_t rc;
    for (size_t s = 0; s < p->spec.ncols; s++) {
        tsr_dev_col_t dc;
        if ((rc = tsr_dev_cols_get(c, in, p->cols[s], b0, b1, TSR_DEV_COL_RAW, base, &dc, fits,
                                   err)) != TSR_OK ||
            !*fits)
            return rc;
        cols.values[s] = dc.values;
        cols.valid[s] = dc.valid;
    }
    tsr_dev_buf_t *buf = NULL;
    if ((rc = tsr_dev_cols_scratch(c, rows * sizeof(uint32_t), &buf, fits, err)) != TSR_OK ||
        !*fits)
        return rc;
    if ((rc = tsr_dev_filter_run_dev(f, NULL, &cols, buf, nsel, err)) != TSR_OK)
        return rc;
    if (*nsel > 0)
        *sel = buf;
    return TSR_OK;
}

/* The host-input path of one chunk: its used columns concatenated on the
 * host (vals/valid: chunk scratch) and copied in by the kernel call. */
static tsr_status_t select_chunk_host(tsr_dev_filter_t *f, const tsr_dev_exec_pred_t *p,
                                      const tsr_table_t *in, size_t b0, size_t b1, void **vals,
                                      uint64_t **valid, uint32_t *csel, size_t *n, tsr_error_t *err)
{
    size_t rows = tsr_dev_exec_rows(in, b0, b1);
    *n = 0;
    if (rows == 0)
        return TSR_OK;
    tsr_dev_filter_cols_t cols = {.n = rows};
    for (size_t s = 0; s < p->spec.ncols; s++) {
        tsr_dev_exec_concat_values(in, p->cols[s], b0, b1, vals[s]);
        cols.values[s] = vals[s];
        cols.valid[s] =
            tsr_dev_exec_concat_validity(in, p->cols[s], b0, b1, valid[s]) ? valid[s] : NULL;
    }
    return tsr_dev_filter_run(f, NULL, &cols, csel, n, err);
}

tsr_status_t tsr_dev_exec_select(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_expr_t *pred,
                                 const tsr_table_t *in, bool base, uint32_t *sel, size_t *nsel,
                                 bool *handled, tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    tsr_dev_exec_pred_t p;
    *handled = false;
    if (!dev || !tsr_dev_exec_pred_compile(pred, in, &p))
        return TSR_OK;
    tsr_dev_filter_t *f = NULL;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_status_t rc = tsr_dev_filter_create(dev, &p.spec, &f, &e);
    if (rc == TSR_ERR_UNSUPPORTED)
        return TSR_OK; /* the backend has no filter kernels: the CPU runs it */
    if (rc != TSR_OK) {
        *err = e;
        return rc;
    }
    /* device-resident columns where the backend takes them (the query's
     * cache, dev_columns.h); host staging only for chunks that fall back */
    tsr_dev_cols_t *cache = tsr_dev_filter_has_run_dev(f) ? tsr_exec_walk_cols(ctx) : NULL;
    size_t chunk = in->nrows < TSR_DEV_EXEC_CHUNK_ROWS ? in->nrows : TSR_DEV_EXEC_CHUNK_ROWS;
    if (chunk == 0)
        chunk = 1;
    size_t ncols = p.spec.ncols;
    void *vals[TSR_DEV_FILTER_MAX_COLS] = {0};
    uint64_t *valid[TSR_DEV_FILTER_MAX_COLS] = {0};
    uint32_t *csel = tsr_mem_alloc(mem, chunk * sizeof(uint32_t));
    rc = TSR_ERR_NOMEM;
    if (!csel)
        goto nomem;
    size_t off = 0;
    for (size_t b0 = 0; b0 < in->nbatches;) {
        size_t b1 = tsr_dev_exec_chunk_end(in, b0), n = 0;
        bool fits = false;
        if (cache) {
            tsr_dev_buf_t *dsel = NULL;
            rc =
                tsr_dev_exec_select_resident(cache, f, &p, in, base, b0, b1, &dsel, &n, &fits, err);
            /* the host gathers the surviving rows: the selection comes back */
            if (rc == TSR_OK && fits && n > 0)
                rc = tsr_dev_read(dev->queue, dsel, 0, csel, n * sizeof(uint32_t), true, NULL, err);
            tsr_dev_cols_unpin(cache);
            if (rc != TSR_OK)
                goto cleanup;
            if (!fits)
                tsr_dev_cols_note_fallback(cache);
        }
        if (!fits) {
            for (size_t s = 0; s < ncols && !vals[s]; s++) {
                vals[s] = tsr_mem_alloc(mem, chunk * sizeof(uint64_t));
                valid[s] = tsr_mem_alloc(mem, tsr_bitmap_words(chunk) * sizeof(uint64_t));
                if (!vals[s] || !valid[s])
                    goto nomem;
            }
            if ((rc = select_chunk_host(f, &p, in, b0, b1, vals, valid, csel, &n, err)) != TSR_OK)
                goto cleanup;
        }
        /* split the chunk's ascending selection at the batch boundaries */
        size_t j = 0, cbase = 0;
        for (size_t b = b0; b < b1; b++) {
            size_t end = cbase + in->batches[b].nrows, k = 0;
            for (; j < n && csel[j] < end; j++)
                sel[off + k++] = csel[j] - (uint32_t)cbase;
            nsel[b] = k;
            off += in->batches[b].nrows;
            cbase = end;
        }
        b0 = b1;
    }
    *handled = true;
    rc = TSR_OK;
    goto cleanup;

nomem:
    rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
cleanup:
    for (size_t s = 0; s < ncols; s++) {
        tsr_mem_free(mem, vals[s]);
        tsr_mem_free(mem, valid[s]);
    }
    tsr_mem_free(mem, csel);
    tsr_dev_filter_destroy(f);
    return rc;
}

/* ---- the CPU's selection, for predicates the device does not cover ------------------- */

typedef struct cpu_select_job {
    const tsr_exec_ctx_t *ctx;
    const tsr_expr_t *pred;
    const tsr_table_t *in;
    const size_t *off; /* per batch: its first entry in sel */
    uint32_t *sel;
    size_t *nsel;
    tsr_expr_memo_t *memos;
    tsr_exec_errslot_t slot;
} cpu_select_job_t;

static void cpu_select_task(void *arg, size_t b, unsigned worker)
{
    cpu_select_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot))
        return;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_expr_select_memo(job->ctx->mem, &job->memos[worker], job->pred, &job->in->batches[b],
                             job->sel + job->off[b], &job->nsel[b], &err) != TSR_OK)
        tsr_exec_errslot_store(&job->slot, &err);
}

tsr_status_t tsr_dev_exec_select_any(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev,
                                     const tsr_expr_t *pred, const tsr_table_t *in, bool base,
                                     uint32_t *sel, size_t *nsel, tsr_error_t *err)
{
    bool handled = false;
    tsr_status_t rc = tsr_dev_exec_select(ctx, dev, pred, in, base, sel, nsel, &handled, err);
    if (rc != TSR_OK || handled)
        return rc;
    tsr_mem_t *mem = ctx->mem;
    size_t nb = in->nbatches;
    unsigned nw = tsr_exec_nworkers(ctx);
    cpu_select_job_t job = {.ctx = ctx, .pred = pred, .in = in, .sel = sel, .nsel = nsel};
    tsr_exec_errslot_init(&job.slot);
    size_t *off = tsr_mem_alloc(mem, (nb ? nb : 1) * sizeof(size_t));
    job.memos = tsr_expr_memos_new(mem, nw);
    if (!off || !job.memos) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t b = 0, o = 0; b < nb; b++) {
        off[b] = o;
        o += in->batches[b].nrows;
    }
    job.off = off;
    tsr_exec_parallel(ctx, nb, cpu_select_task, &job);
    rc = tsr_exec_errslot_take(&job.slot, err);

cleanup:
    tsr_mem_free(mem, off);
    tsr_expr_memos_free(mem, job.memos, nw);
    return rc;
}

/* ---- the operator ---------------------------------------------------------------------- */

typedef struct gather_job {
    const tsr_exec_ctx_t *ctx;
    const tsr_table_t *in;
    const uint32_t *sel;
    const size_t *off, *nsel;
    tsr_vector_t **cols; /* per batch: output columns, NULL when nothing survives */
    bool *borrowed;      /* per batch: every row survived, cols borrow the input's */
    tsr_exec_errslot_t slot;
} gather_job_t;

static void gather_task(void *arg, size_t b, unsigned worker)
{
    (void)worker;
    gather_job_t *job = arg;
    if (tsr_exec_task_stop(job->ctx, &job->slot))
        return;
    tsr_mem_t *mem = job->ctx->mem;
    const tsr_batch_t *batch = &job->in->batches[b];
    size_t ncols = job->in->ncols, n = job->nsel[b];
    if (n == 0)
        return;
    tsr_vector_t *cols = tsr_mem_calloc(mem, ncols ? ncols : 1, sizeof(tsr_vector_t));
    if (!cols)
        goto nomem;
    if (n == batch->nrows) {
        for (size_t c = 0; c < ncols; c++)
            cols[c] = tsr_vector_borrow(&batch->cols[c]);
        job->borrowed[b] = true;
    } else {
        for (size_t c = 0; c < ncols; c++)
            if (tsr_exec_gather_sel(mem, &batch->cols[c], job->sel + job->off[b], n, &cols[c]) !=
                TSR_OK)
                goto nomem;
    }
    job->cols[b] = cols;
    return;

nomem:
    tsr_exec_free_cols(mem, cols, ncols);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_error_set(&err, TSR_ERR_NOMEM, "out of memory");
    tsr_exec_errslot_store(&job->slot, &err);
}

tsr_status_t tsr_dev_op_filter(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                               tsr_op_input_t in, tsr_table_t **out, bool *handled,
                               tsr_error_t *err)
{
    tsr_mem_t *mem = ctx->mem;
    const tsr_table_t *t = in.table;
    size_t nb = t->nbatches, ncols = t->ncols;
    tsr_dev_exec_pred_t probe;
    *handled = false;
    if (!dev || plan->ncols != ncols || !plan->pred ||
        !tsr_dev_exec_pred_compile(plan->pred, t, &probe))
        return TSR_OK; /* the CPU operator runs (and reports a bad plan) */
    tsr_table_t *res = NULL;
    gather_job_t job = {.ctx = ctx, .in = t};
    tsr_exec_errslot_init(&job.slot);
    uint32_t *sel = tsr_mem_alloc(mem, (t->nrows ? t->nrows : 1) * sizeof(uint32_t));
    size_t *nsel = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(size_t));
    size_t *off = tsr_mem_alloc(mem, (nb ? nb : 1) * sizeof(size_t));
    job.cols = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(*job.cols));
    job.borrowed = tsr_mem_calloc(mem, nb ? nb : 1, sizeof(bool));
    tsr_status_t rc;
    if (!sel || !nsel || !off || !job.cols || !job.borrowed) {
        rc = tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
        goto cleanup;
    }
    if ((rc = tsr_dev_exec_select(ctx, dev, plan->pred, t, in.is_base, sel, nsel, handled, err)) !=
            TSR_OK ||
        !*handled)
        goto cleanup;
    for (size_t b = 0, o = 0; b < nb; b++) {
        off[b] = o;
        o += t->batches[b].nrows;
    }
    job.sel = sel;
    job.off = off;
    job.nsel = nsel;
    tsr_exec_parallel(ctx, nb, gather_task, &job);
    if ((rc = tsr_exec_errslot_take(&job.slot, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_new_output(ctx, plan, &res, err)) != TSR_OK)
        goto cleanup;
    if ((rc = tsr_exec_collect(res, in, job.cols, nsel, job.borrowed, err)) != TSR_OK)
        goto cleanup;
    *out = res;
    res = NULL;

cleanup:
    tsr_table_destroy(res);
    if (job.cols)
        for (size_t b = 0; b < nb; b++)
            tsr_exec_free_cols(mem, job.cols[b], ncols);
    tsr_mem_free(mem, job.cols);
    tsr_mem_free(mem, job.borrowed);
    tsr_mem_free(mem, sel);
    tsr_mem_free(mem, nsel);
    tsr_mem_free(mem, off);
    return rc;
}
