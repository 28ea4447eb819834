/*
 * perfect_agg.h - perfect-hash (direct-indexed) aggregation, the fast path of
 * tsr_op_aggregate (the idea of DuckDB's PerfectHashAggregate).
 *
 * When every GROUP BY key has a small, known set of values - an INT64 column
 * whose min..max the table statistics give (or one parallel pass computes), a
 * dictionary-coded VARCHAR column (codes 0..size-1), any BOOL - the group of a
 * row is computed, not looked up:
 *
 *   gid = sum_k slot_k * stride_k,  slot_k = 0 for NULL, else v_k - kmin_k + 1
 *
 * (v_k the normalised key of tsr_ht_normalize). Every worker owns dense state
 * arrays of ngroups entries (the same state columns as the hash path, so the
 * update loops, merging and output are shared); no hashing, no probing, no key
 * stored per group. At the end the workers' arrays are folded into one, the
 * slots that saw a row (the ROWS state, added to the plan if no aggregate
 * needs it) become the output groups, and their keys are decoded from the
 * slot index into an ordinary final part, which the hash path's output code
 * emits. Semantics are the hash path's: NULLs group together, 128-bit SUM
 * with the overflow error at output, empty groups never appear.
 *
 * Not used (the hash path runs): DISTINCT aggregates, DOUBLE or computed
 * non-BOOL keys, more than TSR_AGG_PERFECT_MAXKEYS keys, no keys, or more
 * slots than TSR_AGG_PERFECT_MAX_GROUPS or than pay off for the input's size
 * (see tsr_agg_perfect_choose).
 */
#ifndef TSR_EXEC_PERFECT_AGG_H
#define TSR_EXEC_PERFECT_AGG_H

#include "exec/agg_internal.h"

/* Most slots (groups incl. NULL combinations) the direct-indexed path takes. */
#define TSR_AGG_PERFECT_MAX_GROUPS ((size_t)1 << 20)
/* Below this many slots the path is taken whatever the input size. */
#define TSR_AGG_PERFECT_SMALL ((size_t)1 << 12)
/* Most bytes of state arrays all workers together may allocate. */
#define TSR_AGG_PERFECT_MAX_BYTES ((size_t)64 << 20)

/* The value ranges of the keys: lo[k]..hi[k] as signed normalised values
 * (hi < lo: the key is always NULL). Fills ap->perfect (on or off) from them;
 * nrows and nworkers size the decision. Adds the ROWS state column when on.
 * Exposed for tests; tsr_agg_perfect_plan calls it. */
void tsr_agg_perfect_choose(tsr_agg_plan_t *ap, const int64_t *lo, const int64_t *hi, size_t nrows,
                            unsigned nworkers);

/* Decides whether this run aggregates by direct index (sets ap->perfect). May
 * run a parallel min/max pass over INT64 key columns without statistics.
 * Never fails: anything unexpected leaves the hash path on. */
void tsr_agg_perfect_plan(tsr_agg_plan_t *ap, const tsr_exec_ctx_t *ctx, const tsr_table_t *in,
                          unsigned nworkers);

/* Group ids of n rows (row j reads index sel[j], or j) from the normalised
 * keys kptr[k] and their validity kvalid[k] (NULL: no NULLs). */
void tsr_agg_perfect_gids(const tsr_agg_perfect_t *pf, size_t nkeys, const uint64_t *const *kptr,
                          const uint64_t *const *kvalid, const uint32_t *sel, size_t n,
                          uint32_t *gids);

/* Folds the workers' dense partials into r->parts (one final part with only
 * the groups that exist, keys decoded); r->nparts = 1. */
tsr_status_t tsr_agg_perfect_merge(tsr_agg_run_t *r, tsr_error_t *err);

#endif /* TSR_EXEC_PERFECT_AGG_H */
