/*
 * dev_exec.h - the executor's operators on a device (engine/device/): FILTER
 * through the filter kernel family, hash AGGREGATE through hashagg, HASH_JOIN
 * through hashjoin. Private to engine/exec/.
 *
 * Selection: tsr_exec_run_dev (exec.h) walks the plan with a device; for a
 * FILTER, AGGREGATE or HASH_JOIN node exec.c first offers the node to the
 * device operator here. Each answers *handled = false, without side effects
 * and with err untouched, when the device's kernels do not cover the node
 * (an expression the kernels cannot evaluate, COUNT(DISTINCT), a key type
 * they lack, a backend without the family: TSR_ERR_UNSUPPORTED at create):
 * exec.c then runs the CPU operator (operators.h) for that node. Every other
 * node always runs on the CPU. Results are the CPU operators' (same rows,
 * same types; doubles within rounding; group and join order may differ).
 *
 * Data movement: the operators work on chunks of the input's batches
 * (TSR_BATCH_ROWS rows each) of up to TSR_DEV_EXEC_CHUNK_ROWS rows: few,
 * large transfers and launches instead of one per batch. Where the backend
 * takes device-resident input (filter.h run_dev, hashagg.h update_dev) a
 * chunk's columns come from the query's column cache (dev_columns.h, owned
 * by the walk below): uploaded once per query and reused by every later
 * device operator that reads them, and a filter's selection stays on the
 * device for the aggregation that consumes it. Elsewhere, or when a chunk
 * does not fit the device, the chunk is copied in per call (the host-input
 * kernels). Results come back to host memory after each operator (see
 * docs/devices.md, "What runs on the device").
 *
 * Threads: the device is used only from the thread that runs the plan; the
 * host-side parts around it (gathers, output building) use the pool.
 */
#ifndef TSR_EXEC_DEV_EXEC_H
#define TSR_EXEC_DEV_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device/device.h"
#include "device/filter.h"
#include "exec/dev_columns.h"
#include "exec/exec_internal.h"

/* The plan walk of tsr_exec_run_dev (exec.c): every ctx exec.c's walk hands
 * around is the ctx member of one of these, so the walk's hooks find the
 * device from the ctx alone; operators never see the rest. */
typedef struct tsr_exec_walk {
    tsr_exec_ctx_t ctx;  /* first: a pointer to it is a pointer to the walk */
    tsr_dev_t *dev;      /* NULL: CPU operators only */
    tsr_dev_cols_t cols; /* the query's columns on dev (zeroed: set up on first use);
                            emptied by tsr_exec_walk_end */
} tsr_exec_walk_t;

/* The device of the walk whose ctx this is (only for exec.c's walk). */
static inline tsr_dev_t *tsr_exec_walk_dev(const tsr_exec_ctx_t *ctx)
{
    return ((const tsr_exec_walk_t *)(const void *)ctx)->dev;
}

/* The column cache of the walk whose ctx this is (NULL without a device).
 * The walk itself is a mutable object of exec.c; operators get its ctx as
 * const only because they must not change the ctx part. */
static inline tsr_dev_cols_t *tsr_exec_walk_cols(const tsr_exec_ctx_t *ctx)
{
    tsr_exec_walk_t *w = (tsr_exec_walk_t *)(void *)(uintptr_t)(const void *)ctx;
    if (!w->dev)
        return NULL;
    if (!w->cols.dev)
        tsr_dev_cols_init(&w->cols, ctx->mem, w->dev);
    return &w->cols;
}

/* The end of a walk (exec.c, success or not): frees the query's device
 * columns. */
static inline void tsr_exec_walk_end(tsr_exec_walk_t *w)
{
    tsr_dev_cols_clear(&w->cols);
}

/* Rows per device call (transfers and launches): 2^20, the kernels' own
 * launch size, so one call is one launch on OpenCL. */
#define TSR_DEV_EXEC_CHUNK_ROWS ((size_t)1 << 20)

/* ---- chunks of batches (dev_util.c) ------------------------------------------------- */

/* The end of the chunk that starts at batch b0: the batches [b0, end) hold at
 * most TSR_DEV_EXEC_CHUNK_ROWS rows together (always at least one batch). */
size_t tsr_dev_exec_chunk_end(const tsr_table_t *t, size_t b0);

/* Rows of batches [b0, b1). */
size_t tsr_dev_exec_rows(const tsr_table_t *t, size_t b0, size_t b1);

/* Copies the values of column col of batches [b0, b1) one after another into
 * dst (the type's width each). */
void tsr_dev_exec_concat_values(const tsr_table_t *t, size_t col, size_t b0, size_t b1, void *dst);

/* Concatenates the validity of column col of batches [b0, b1) into dst
 * (tsr_bitmap_words(rows) words); batches without a bitmap contribute set
 * bits. Returns false, leaving dst alone, when no batch has a bitmap (the
 * column has no NULLs: pass NULL to the device). */
bool tsr_dev_exec_concat_validity(const tsr_table_t *t, size_t col, size_t b0, size_t b1,
                                  uint64_t *dst);

/* Appends n bits of src (from bit 0; NULL: all set) at bit `at` of dst,
 * whose words from bit `at` on are zero. */
void tsr_dev_exec_append_bits(uint64_t *dst, size_t at, const uint64_t *src, size_t n);

/* ---- filter (dev_filter.c) ------------------------------------------------------------- */

/* A predicate compiled for the filter kernel family: spec column s reads
 * input column cols[s]. */
typedef struct tsr_dev_exec_pred {
    tsr_dev_filter_spec_t spec;
    size_t cols[TSR_DEV_FILTER_MAX_COLS];
} tsr_dev_exec_pred_t;

/* Translates pred (BOOL over in's columns) into a filter program; false when
 * the kernels cannot evaluate it (then *out is unspecified). Covered:
 * comparisons of an INT64 or DOUBLE column with a constant of its type
 * (either side), IS [NOT] NULL of such a column, [NOT] IN lists of non-NULL
 * constants, AND, OR, NOT, and constant subtrees that fold. */
bool tsr_dev_exec_pred_compile(const tsr_expr_t *pred, const tsr_table_t *in,
                               tsr_dev_exec_pred_t *out);

/* The rows of in where pred is TRUE, per batch: sel[off[b] ..] holds the
 * nsel[b] selected rows of batch b (ascending, batch-relative), where off[b]
 * is the rows of the batches before b; sel has room for in->nrows entries
 * (at least 1), nsel for in->nbatches. *handled = false (nothing written,
 * err untouched) when the kernels do not cover pred or dev lacks filters.
 * base: in is a base input (its columns may stay in the query's cache). */
tsr_status_t tsr_dev_exec_select(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_expr_t *pred,
                                 const tsr_table_t *in, bool base, uint32_t *sel, size_t *nsel,
                                 bool *handled, tsr_error_t *err);

/* tsr_dev_exec_select, or where the device does not cover pred (or dev is
 * NULL) the CPU's tsr_expr_select over the batches on the pool: always
 * answers. */
tsr_status_t tsr_dev_exec_select_any(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev,
                                     const tsr_expr_t *pred, const tsr_table_t *in, bool base,
                                     uint32_t *sel, size_t *nsel, tsr_error_t *err);

/* The filter f (compiled from p) over the chunk [b0, b1) of in with its
 * columns from the query's cache c: the selection (chunk-relative rows,
 * ascending uint32) stays on the device in *sel, a scratch buffer pinned
 * until tsr_dev_cols_unpin, its length in *nsel. *fits = false when the
 * chunk cannot be placed (the caller copies it in instead); *sel is NULL
 * when nothing was selected. */
tsr_status_t tsr_dev_exec_select_resident(tsr_dev_cols_t *c, tsr_dev_filter_t *f,
                                          const tsr_dev_exec_pred_t *p, const tsr_table_t *in,
                                          bool base, size_t b0, size_t b1, tsr_dev_buf_t **sel,
                                          size_t *nsel, bool *fits, tsr_error_t *err);

/* ---- the operators ---------------------------------------------------------------- */

/* FILTER (dev_filter.c): the selection on dev, the gathers on the pool. */
tsr_status_t tsr_dev_op_filter(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                               tsr_op_input_t in, tsr_table_t **out, bool *handled,
                               tsr_error_t *err);

/* AGGREGATE (dev_aggregate.c), arguments as tsr_op_aggregate. */
tsr_status_t tsr_dev_op_aggregate(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                                  const tsr_expr_t *prefilter, tsr_op_input_t in, tsr_table_t **out,
                                  bool *handled, tsr_error_t *err);

/* HASH_JOIN (op_hash_join.c): the first key pair's build and probe on dev,
 * further keys and the residual on the host. */
tsr_status_t tsr_dev_op_hash_join(const tsr_exec_ctx_t *ctx, tsr_dev_t *dev, const tsr_plan_t *plan,
                                  tsr_op_input_t left, tsr_op_input_t right, tsr_table_t **out,
                                  bool *handled, tsr_error_t *err);

#endif /* TSR_EXEC_DEV_EXEC_H */
