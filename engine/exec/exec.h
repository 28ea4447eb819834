/*
 * exec.h - running a physical plan.
 *
 * tsr_exec_run evaluates the plan tree bottom-up and returns the result as a
 * new table (schema = root's names/types). Operators run vectorized, batch at a
 * time, with batches spread over the pool's threads. The result owns or
 * borrows its buffers: it may borrow column storage (and dictionaries) from the
 * catalog tables the plan scans, so it must be destroyed before them.
 * VARCHAR result vectors point at their source dictionaries; string constants
 * in expressions get dictionaries owned by the result table.
 *
 * Cancel. ctx->cancel and ctx->cancel_also (each may be NULL) are flags the
 * caller owns; once either reads nonzero the run stops at the next batch
 * boundary of whatever operator is running (scan, filter, project, aggregate
 * build and merge, join build and probe, sort phases) and returns
 * TSR_ERR_CANCELLED ("cancelled"), with everything it built freed. Checks
 * cost one relaxed load per flag per batch, never per row. Setting a flag
 * from another thread (or a signal handler) is the way to interrupt a run.
 */
#ifndef TSR_EXEC_EXEC_H
#define TSR_EXEC_EXEC_H

#include <stdatomic.h>

#include "core/error.h"
#include "core/mem.h"
#include "core/pool.h"
#include "exec/plan.h"
#include "table/table.h"

typedef struct tsr_exec_ctx {
    tsr_mem_t *mem;
    tsr_pool_t *pool; /* may be NULL: run on the calling thread */
    /* cancel flags (see above; NULL: none): a graph's own and its context's */
    const atomic_int *cancel;
    const atomic_int *cancel_also;
} tsr_exec_ctx_t;

tsr_status_t tsr_exec_run(const tsr_exec_ctx_t *ctx, const tsr_plan_t *plan, tsr_table_t **out,
                          tsr_error_t *err);

/* tsr_exec_run with a device (engine/device/device.h; NULL: CPU operators
 * only, the same as tsr_exec_run): FILTER, AGGREGATE and HASH_JOIN run their
 * hot loops on dev where the device's kernels cover the operator, else on the
 * CPU (exec/dev_exec.h). dev is used from the calling thread only. */
struct tsr_dev;
tsr_status_t tsr_exec_run_dev(const tsr_exec_ctx_t *ctx, struct tsr_dev *dev,
                              const tsr_plan_t *plan, tsr_table_t **out, tsr_error_t *err);

#endif /* TSR_EXEC_EXEC_H */
