/*
 * pool.h - a fork-join thread pool for morsel-driven parallelism.
 *
 * tsr_pool_run(pool, n, fn, arg) calls fn(arg, i, worker) once for every task
 * index i in [0, n), spread over the pool's threads, and returns when all are
 * done. The calling thread takes part as worker 0, so a pool of size 1 runs
 * everything inline with no threads at all. Tasks are handed out one index at
 * a time from an atomic counter, which balances skewed batches for free.
 *
 * worker is in [0, tsr_pool_size(pool)): use it to index per-thread state
 * (local hash tables, partial aggregates) without locks. Tasks report errors
 * through their arg (e.g. an atomic first-error slot), not through the pool.
 * One tsr_pool_run at a time per pool (nested calls run inline).
 */
#ifndef TSR_CORE_POOL_H
#define TSR_CORE_POOL_H

#include <stddef.h>

#include "core/mem.h"
#include "tessera/status.h"

typedef struct tsr_pool tsr_pool_t;
typedef void (*tsr_task_fn)(void *arg, size_t task_index, unsigned worker);

/* nthreads: total workers including the caller; 0 means one per online core. */
tsr_status_t tsr_pool_create(tsr_mem_t *mem, unsigned nthreads, tsr_pool_t **out);
void tsr_pool_destroy(tsr_pool_t *pool);
unsigned tsr_pool_size(const tsr_pool_t *pool);
void tsr_pool_run(tsr_pool_t *pool, size_t ntasks, tsr_task_fn fn, void *arg);

/* Number of online cores (at least 1). */
unsigned tsr_cpu_count(void);

#endif /* TSR_CORE_POOL_H */
