/*
 * exec.c - running a physical plan (tsr_exec_run).
 *
 * The plan is evaluated bottom-up, one operator at a time; each operator
 * consumes whole tables and produces a table (operators.h). What flows between
 * two operators is a tsr_op_input_t:
 *
 *   SCAN         -> a fresh table whose batches borrow the catalog table's
 *                   vectors for the scan's col_ids (no copy), marked is_base:
 *                   operators above never take it as a dependency, and it is
 *                   destroyed here once consumed (what it lends is catalog
 *                   storage, which outlives every result).
 *   other nodes  -> an intermediate result owned by this walk until consumed.
 *
 * After an operator succeeds, each intermediate input is either a dependency
 * of the operator's output (the output borrows from it) or is destroyed at
 * once, so memory is released as early as the plan allows. On failure every
 * table built so far is destroyed and the first error is returned.
 *
 * AGGREGATE over FILTER over SCAN (or over SCAN) runs fused: the aggregate
 * gets the scan table and the filter's predicate as a pre-filter, so no
 * filtered copy of the rows is ever materialised.
 *
 * Cancel (exec.h): checked before each operator, after each (so a finished
 * operator's output is destroyed at once), and per batch inside them.
 */
#include "exec/exec_internal.h"

#include <string.h>

#include "exec/dev_exec.h"

/* ---- the plan walk ------------------------------------------------------------------------ */

/* The catalog table's columns col_ids as a table of borrowed vectors. */
static tsr_status_t run_scan(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_table_t **out,
                             tsr_error_t *err)
{
    const tsr_table_t *base = plan->table;
    if (!base)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "scan without a table");
    for (size_t i = 0; i < plan->ncols; i++)
        if (plan->col_ids[i] >= base->ncols)
            return tsr_error_set(err, TSR_ERR_INTERNAL, "scan of column %zu of a %zu-column table",
                                 plan->col_ids[i], base->ncols);
    tsr_table_t *t;
    tsr_status_t rc = tsr_exec_new_output(ctx, plan, &t, err);
    if (rc != TSR_OK)
        return rc;
    for (size_t b = 0; b < base->nbatches; b++) {
        const tsr_batch_t *src = &base->batches[b];
        tsr_vector_t *cols =
            tsr_mem_calloc(ctx->mem, plan->ncols ? plan->ncols : 1, sizeof(tsr_vector_t));
        if (!cols)
            goto nomem;
        for (size_t i = 0; i < plan->ncols; i++)
            cols[i] = tsr_vector_borrow(&src->cols[plan->col_ids[i]]);
        if (tsr_table_append_batch(t, src->nrows, cols) != TSR_OK) {
            tsr_mem_free(ctx->mem, cols);
            goto nomem;
        }
    }
    for (size_t i = 0; i < plan->ncols; i++) /* column statistics come along */
        if (tsr_table_stats(base, plan->col_ids[i]) &&
            tsr_table_set_stats(t, i, tsr_table_stats(base, plan->col_ids[i])) != TSR_OK)
            goto nomem;
    *out = t;
    return TSR_OK;

nomem:
    tsr_table_destroy(t);
    return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
}

static tsr_status_t run_node(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t *res,
                             tsr_error_t *err);

/* After an operator: an input not taken by out is not needed any more. */
static void release_input(tsr_op_input_t in, const tsr_table_t *out)
{
    if (in.is_base || !out || !tsr_exec_has_dep(out, in.table))
        tsr_table_destroy(in.table);
}

/* AGGREGATE: fused with a FILTER over SCAN (or a SCAN) below it. */
static tsr_status_t run_aggregate(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                                  tsr_table_t **out, tsr_error_t *err)
{
    const tsr_plan_t *child = plan->child;
    const tsr_expr_t *prefilter = NULL;
    tsr_op_input_t in = {0};
    tsr_status_t rc;
    if (child->kind == TSR_PLAN_FILTER && child->child && child->child->kind == TSR_PLAN_SCAN) {
        prefilter = child->pred;
        child = child->child;
    }
    if (child->kind == TSR_PLAN_SCAN) {
        if ((rc = run_scan(ctx, child, &in.table, err)) != TSR_OK)
            return rc;
        in.is_base = true;
    } else if ((rc = run_node(ctx, child, &in, err)) != TSR_OK) {
        return rc;
    }
    *out = NULL;
    bool done = false; /* on the walk's device (dev_exec.h), else on the CPU */
    rc = tsr_dev_op_aggregate(ctx, tsr_exec_walk_dev(ctx), plan, prefilter, in, out, &done, err);
    if (rc == TSR_OK && !done)
        rc = tsr_op_aggregate(ctx, plan, prefilter, in, out, err);
    release_input(in, rc == TSR_OK ? *out : NULL);
    return rc;
}

static tsr_status_t run_join(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_table_t **out,
                             tsr_error_t *err)
{
    tsr_op_input_t left, right;
    tsr_status_t rc = run_node(ctx, plan->child, &left, err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = run_node(ctx, plan->right, &right, err)) != TSR_OK) {
        tsr_table_destroy(left.table);
        return rc;
    }
    *out = NULL;
    bool done = false; /* on the walk's device (dev_exec.h), else on the CPU */
    rc = tsr_dev_op_hash_join(ctx, tsr_exec_walk_dev(ctx), plan, left, right, out, &done, err);
    if (rc == TSR_OK && !done)
        rc = tsr_op_hash_join(ctx, plan, left, right, out, err);
    release_input(left, rc == TSR_OK ? *out : NULL);
    release_input(right, rc == TSR_OK ? *out : NULL);
    return rc;
}

static tsr_status_t run_node(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t *res,
                             tsr_error_t *err)
{
    tsr_status_t rc;
    tsr_table_t *out = NULL;
    if (tsr_exec_cancelled(ctx)) /* before each operator; inside, per batch */
        return tsr_exec_cancel_error(err);
    if (plan->kind == TSR_PLAN_SCAN) {
        if ((rc = run_scan(ctx, plan, &res->table, err)) != TSR_OK)
            return rc;
        res->is_base = true;
        return TSR_OK;
    }
    if (!plan->child || (plan->kind == TSR_PLAN_HASH_JOIN && !plan->right))
        return tsr_error_set(err, TSR_ERR_INTERNAL, "plan node %d without its input",
                             (int)plan->kind);
    switch (plan->kind) {
    case TSR_PLAN_AGGREGATE:
        rc = run_aggregate(ctx, plan, &out, err);
        break;
    case TSR_PLAN_HASH_JOIN:
        rc = run_join(ctx, plan, &out, err);
        break;
    case TSR_PLAN_FILTER:
    case TSR_PLAN_PROJECT:
    case TSR_PLAN_SORT:
    case TSR_PLAN_LIMIT: {
        tsr_op_input_t in;
        if ((rc = run_node(ctx, plan->child, &in, err)) != TSR_OK)
            return rc;
        switch (plan->kind) {
        case TSR_PLAN_FILTER: {
            bool done = false; /* on the walk's device (dev_exec.h), else on the CPU */
            rc = tsr_dev_op_filter(ctx, tsr_exec_walk_dev(ctx), plan, in, &out, &done, err);
            if (rc == TSR_OK && !done)
                rc = tsr_op_filter(ctx, plan, in, &out, err);
            break;
        }
        case TSR_PLAN_PROJECT:
            rc = tsr_op_project(ctx, plan, in, &out, err);
            break;
        case TSR_PLAN_SORT:
            rc = tsr_op_sort(ctx, plan, in, &out, err);
            break;
        default:
            rc = tsr_op_limit(ctx, plan, in, &out, err);
            break;
        }
        release_input(in, rc == TSR_OK ? out : NULL);
        break;
    }
    default:
        return tsr_error_set(err, TSR_ERR_INTERNAL, "bad plan node kind %d", (int)plan->kind);
    }
    if (rc == TSR_OK && tsr_exec_cancelled(ctx)) {
        /* an operator whose batches all ran before the flag was seen (or one
         * without per-batch checks, LIMIT): stop here, not one level up */
        tsr_table_destroy(out);
        rc = tsr_exec_cancel_error(err);
    }
    if (rc != TSR_OK)
        return rc;
    res->table = out;
    res->is_base = false;
    return TSR_OK;
}

tsr_status_t tsr_exec_run(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_table_t **out,
                          tsr_error_t *err)
{
    return tsr_exec_run_dev(ctx, NULL, plan, out, err);
}

tsr_status_t tsr_exec_run_dev(const tsr_exec_ctx_t *ctx, struct tsr_dev *dev,
                              const tsr_plan_t *plan, tsr_table_t **out, tsr_error_t *err)
{
    tsr_exec_walk_t walk = {.ctx = *ctx, .dev = dev};
    ctx = &walk.ctx; /* the walk's hooks find dev from it (dev_exec.h) */
    tsr_op_input_t res;
    tsr_status_t rc = run_node(ctx, plan, &res, err);
    tsr_exec_walk_end(&walk); /* the query's device columns go with it */
    if (rc != TSR_OK)
        return rc;
    tsr_table_t *t = res.table;
    if (t->ncols != plan->ncols) {
        tsr_table_destroy(t);
        return tsr_error_set(err, TSR_ERR_INTERNAL, "result has %zu columns, plan %zu", t->ncols,
                             plan->ncols);
    }
    /* the result's schema is the root's, whatever an operator named it */
    for (size_t c = 0; c < t->ncols; c++) {
        t->fields[c].type = plan->types[c];
        if (strcmp(t->fields[c].name, plan->names[c]) != 0) {
            char *name = tsr_mem_strdup(ctx->mem, plan->names[c]);
            if (!name) {
                tsr_table_destroy(t);
                return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
            }
            tsr_mem_free(ctx->mem, t->fields[c].name);
            t->fields[c].name = name;
        }
    }
    *out = t;
    return TSR_OK;
}
