/*
 * exec_internal.h - helpers shared by the executor's files: the plan walk
 * (exec.c), the operators (op_*.c) and expression evaluation (expr_*.c).
 * Implemented in exec_util.c (tasks, outputs, gathers), expr_eval.c (fold,
 * memoizing entry points) and expr_string.c (strings, LIKE, the memo).
 * Private to engine/exec/.
 *
 * Parallel tasks. Operators split work into one task per batch and run them
 * with tsr_exec_parallel (the pool, or inline when ctx->pool is NULL). Tasks
 * never share a tsr_error_t: each fills a local one and hands it to an
 * atomic first-error slot; the operator copies the winner into the caller's
 * err after the join, so exactly the first failure is reported.
 *
 * Ownership of an operator's input (see operators.h): the output takes the
 * input as a dependency when it borrows the input's buffers, or references a
 * dictionary that lives inside the input's tree of owned tables (a dictionary
 * built by a PROJECT for a string constant). tsr_exec_finish_output applies
 * that rule; exec.c then destroys every intermediate input its consumer did not
 * take. Operators never destroy their inputs themselves.
 */
#ifndef TSR_EXEC_EXEC_INTERNAL_H
#define TSR_EXEC_EXEC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/operators.h"

/* ---- first-error slot ------------------------------------------------------ */

typedef struct tsr_exec_errslot {
    atomic_int failed; /* 0 until a task stored its error */
    tsr_error_t err;   /* the first failing task's error (valid once failed) */
} tsr_exec_errslot_t;

void tsr_exec_errslot_init(tsr_exec_errslot_t *slot);
/* Keeps e when it is the first error stored; later ones are dropped. */
void tsr_exec_errslot_store(tsr_exec_errslot_t *slot, const tsr_error_t *e);
static inline bool tsr_exec_errslot_failed(tsr_exec_errslot_t *slot)
{
    return atomic_load_explicit(&slot->failed, memory_order_relaxed) != 0;
}
/* Cancel (exec.h): one relaxed load per flag; call per batch, not per row. */
static inline bool tsr_exec_cancelled(const tsr_exec_ctx_t *ctx)
{
    return (ctx->cancel && atomic_load_explicit(ctx->cancel, memory_order_relaxed) != 0) ||
           (ctx->cancel_also && atomic_load_explicit(ctx->cancel_also, memory_order_relaxed) != 0);
}
/* Records TSR_ERR_CANCELLED in err ("cancelled"); returns it. */
tsr_status_t tsr_exec_cancel_error(tsr_error_t *err);
/* What a parallel task checks first: true when it must not run its batch
 * because a task failed or the run is cancelled (then the slot holds
 * TSR_ERR_CANCELLED, so the operator returns it after the join). */
bool tsr_exec_task_stop(const tsr_exec_ctx_t *ctx, tsr_exec_errslot_t *slot);

/* After the join: TSR_OK, or the stored status with its error copied to err. */
tsr_status_t tsr_exec_errslot_take(tsr_exec_errslot_t *slot, tsr_error_t *err);

/* Runs fn(arg, i, worker) for i in [0, ntasks) on ctx->pool or inline. */
void tsr_exec_parallel(const tsr_exec_ctx_t *ctx, size_t ntasks, tsr_task_fn fn, void *arg);

/* Worker count usable to size per-worker state (1 without a pool). */
unsigned tsr_exec_nworkers(const tsr_exec_ctx_t *ctx);

/* ---- output tables ---------------------------------------------------------- */

/* An empty table with plan's output names and types. */
tsr_status_t tsr_exec_new_output(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan,
                                 tsr_table_t **out, tsr_error_t *err);

/* Makes out take in.table as a dependency when it must (see the top of this
 * file): borrowed says out's vectors borrow in's buffers. On failure out is
 * untouched and the caller destroys it; in stays the caller's. */
tsr_status_t tsr_exec_finish_output(tsr_table_t *out, tsr_op_input_t in, bool borrowed,
                                    tsr_error_t *err);

/* Moves the batches one task per input batch produced into out, in input
 * order: cols[b] (NULL: batch b produced nothing) with nrows[b] rows (nrows
 * NULL: as many as input batch b), taking each (cols[b] = NULL); then
 * tsr_exec_finish_output, borrowed when some borrowed[b] is. On failure what
 * was not moved stays in cols. */
tsr_status_t tsr_exec_collect(tsr_table_t *out, tsr_op_input_t in, tsr_vector_t **cols,
                              const size_t *nrows, const bool *borrowed, tsr_error_t *err);

/* True when dep is one of t's direct dependencies. */
bool tsr_exec_has_dep(const tsr_table_t *t, const tsr_table_t *dep);

/* Frees the columns of a batch built by a task that never reached a table. */
void tsr_exec_free_cols(tsr_mem_t *mem, tsr_vector_t *cols, size_t ncols);

/* ---- gathers ---------------------------------------------------------------- */

/* dst = src rows sel[0..n) (an owned vector; validity only when src has one). */
tsr_status_t tsr_exec_gather_sel(tsr_mem_t *mem, const tsr_vector_t *src, const uint32_t *sel,
                                 size_t n, tsr_vector_t *dst);
/* dst = src rows [from, from + n) copied into an owned vector. */
tsr_status_t tsr_exec_copy_range(tsr_mem_t *mem, const tsr_vector_t *src, size_t from, size_t n,
                                 tsr_vector_t *dst);

/* ---- expressions (expr_eval.c) --------------------------------------------- */

/* Evaluates e when it references no column. *folded says whether it did; then
 * *out holds the value (type e->type; VARCHAR values point into the plan's
 * arena). Errors (integer overflow) are returned as usual. */
tsr_status_t tsr_expr_fold(const tsr_expr_t *e, bool *folded, tsr_value_t *out, tsr_error_t *err);

/* ---- strings (expr_string.c) -------------------------------------------------- */

/* A compiled LIKE pattern: the pattern split at '%' into literal segments
 * (which may contain '_'). */
typedef struct tsr_like {
    const char *pat; /* the pattern bytes (not owned) */
    size_t len;
    bool has_pct;    /* at least one '%' */
    size_t nsegs;    /* segments between '%'s, empty ones included */
    size_t *seg_off; /* nsegs offsets into pat */
    size_t *seg_len; /* nsegs lengths */
    bool *seg_any;   /* nsegs: the segment contains '_' */
} tsr_like_t;

tsr_status_t tsr_like_compile(tsr_mem_t *mem, const char *pat, size_t len, tsr_like_t *out);
void tsr_like_free(tsr_mem_t *mem, tsr_like_t *like);
bool tsr_like_match(const tsr_like_t *like, const char *s, size_t len);

/* A per-worker cache of string predicates decided per dictionary code, kept
 * by an operator across all the batches one worker evaluates: for each
 * (expression node, dictionary) pair a state per code, 0 = not decided yet,
 * 1 = FALSE, 2 = TRUE, filled lazily as codes show up. Each distinct string
 * is then matched at most once per worker, whatever the number of rows. */
typedef struct tsr_expr_memo_entry tsr_expr_memo_entry_t;
typedef struct tsr_expr_memo {
    tsr_mem_t *mem;
    tsr_expr_memo_entry_t *entries;
    size_t n, cap;
} tsr_expr_memo_t;

void tsr_expr_memo_init(tsr_expr_memo_t *memo, tsr_mem_t *mem);
void tsr_expr_memo_free(tsr_expr_memo_t *memo);
/* One initialised memo per pool worker (index by the task's worker), or NULL
 * when out of memory; freed with tsr_expr_memos_free (accepts NULL). */
tsr_expr_memo_t *tsr_expr_memos_new(tsr_mem_t *mem, unsigned nworkers);
void tsr_expr_memos_free(tsr_mem_t *mem, tsr_expr_memo_t *memos, unsigned nworkers);
/* The state array of (key, dict) in *state (NULL when dict is too large to
 * be worth caching); TSR_ERR_NOMEM when it cannot be allocated. */
tsr_status_t tsr_expr_memo_get(tsr_expr_memo_t *memo, const void *key, const tsr_dict_t *dict,
                               uint8_t **state);

/* tsr_expr_eval / tsr_expr_select with a memo (may be NULL): what FILTER and
 * PROJECT call, one memo per pool worker. */
tsr_status_t tsr_expr_eval_memo(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                                const tsr_batch_t *batch, tsr_vector_t *out, tsr_error_t *err);
tsr_status_t tsr_expr_select_memo(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *pred,
                                  const tsr_batch_t *batch, uint32_t *sel, size_t *nsel,
                                  tsr_error_t *err);

/* r[i] = (string of codes[i]) op (c) for the comparison op, over n codes of
 * dict. With a memo state array (see above) each code is decided once; else
 * per-code tables or per-row compares are chosen by dictionary size. */
tsr_status_t tsr_str_cmp_const(tsr_mem_t *mem, tsr_op_t op, const tsr_dict_t *dict,
                               const uint32_t *codes, const char *c, size_t clen, uint8_t *state,
                               uint8_t *r, size_t n);
/* r[i] = a-string op b-string for codes of two columns (da, db may differ). */
tsr_status_t tsr_str_cmp_cols(tsr_mem_t *mem, tsr_op_t op, const tsr_dict_t *da, const uint32_t *a,
                              const tsr_dict_t *db, const uint32_t *b, uint8_t *r, size_t n);
/* r[i] = like matches code codes[i]'s string (no negation); state as above. */
tsr_status_t tsr_str_like(tsr_mem_t *mem, const tsr_like_t *like, const tsr_dict_t *dict,
                          const uint32_t *codes, uint8_t *state, uint8_t *r, size_t n);

#endif /* TSR_EXEC_EXEC_INTERNAL_H */
