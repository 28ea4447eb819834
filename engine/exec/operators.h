/*
 * operators.h - the executor's internal interface between its parts.
 *
 * exec.c walks the plan and calls one function per operator. Each takes its
 * already-computed input table(s) and returns a new table. An output may borrow
 * buffers from its input; then it takes ownership of the input as a dependency
 * (tsr_table_add_dep), unless the input is a catalog table (is_base), which
 * outlives every result. On failure the input stays the caller's.
 *
 * Expression evaluation (expr_eval.c) is shared by all operators.
 */
#ifndef TSR_EXEC_OPERATORS_H
#define TSR_EXEC_OPERATORS_H

#include <stdbool.h>

#include "exec/exec.h"

/* One input relation: a table, and whether it is a catalog table (borrowed,
 * never owned by an output) or an intermediate result (owned by the caller,
 * handed to the output when the output borrows from it). */
typedef struct tsr_op_input {
    tsr_table_t *table;
    bool is_base;
} tsr_op_input_t;

/* Evaluates expression e over the nrows rows of batch into *out, a vector of
 * e->type and length batch->nrows. COLUMN expressions borrow the input vector
 * (no copy); others produce owned vectors (release with tsr_vector_release).
 * VARCHAR-typed results come only from COLUMN expressions (borrowed, keeping
 * the column's dictionary) or from a VARCHAR CONST; for the latter, PROJECT
 * (the only operator that outputs computed columns) builds a one-entry
 * dictionary owned by its output table instead of calling tsr_expr_eval. */
tsr_status_t tsr_expr_eval(tsr_mem_t *mem, const tsr_expr_t *e, const tsr_batch_t *batch,
                           tsr_vector_t *out, tsr_error_t *err);

/* Fills sel with the indices of rows where the BOOL predicate is TRUE; returns
 * their count in *nsel. sel has room for batch->nrows entries. */
tsr_status_t tsr_expr_select(tsr_mem_t *mem, const tsr_expr_t *pred, const tsr_batch_t *batch,
                             uint32_t *sel, size_t *nsel, tsr_error_t *err);

tsr_status_t tsr_op_filter(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                           tsr_table_t **out, tsr_error_t *err);
tsr_status_t tsr_op_project(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                            tsr_table_t **out, tsr_error_t *err);
tsr_status_t tsr_op_sort(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                         tsr_table_t **out, tsr_error_t *err);
tsr_status_t tsr_op_limit(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_op_input_t in,
                          tsr_table_t **out, tsr_error_t *err);
/* Hash aggregation: plan->keys/aggs over in. May run directly on a base table
 * (a SCAN child) with optional pre-filter pred (plan->child->kind == FILTER
 * fused by exec.c: pass that FILTER's pred, or NULL). */
tsr_status_t tsr_op_aggregate(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                              const tsr_expr_t *prefilter, tsr_op_input_t in, tsr_table_t **out,
                              tsr_error_t *err);
tsr_status_t tsr_op_hash_join(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                              tsr_op_input_t left, tsr_op_input_t right, tsr_table_t **out,
                              tsr_error_t *err);

#endif /* TSR_EXEC_OPERATORS_H */
