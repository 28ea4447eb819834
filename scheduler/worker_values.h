/*
 * worker_values.h - a worker's store of the graph task values it produced
 * and keeps for their readers (docs/cluster.md "Data movement").
 *
 * A value is the encoded bytes a graph task answered with (proto.h "value":
 * u8 kind, u64 length, body), keyed by (job id, task index). The executor
 * thread puts a value when its task ends; the main thread serves it to
 * peers (VALUE_FETCH, zero-copy: the reply borrows the bytes) and drops it
 * when the scheduler says so (VALUE_DROP); a task on this worker that reads
 * it borrows it in place. Borrowing counts references, so a drop while a
 * reply or a task still reads the bytes unlinks the entry at once and frees
 * it when the last reference goes. Every call takes the store's mutex:
 * any thread may call any function.
 */
#ifndef TSR_SCHED_WORKER_VALUES_H
#define TSR_SCHED_WORKER_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "tessera/status.h"

typedef struct tsr_wvalues tsr_wvalues_t;
typedef struct tsr_wvalue tsr_wvalue_t; /* a borrowed reference */

tsr_status_t tsr_wvalues_create(tsr_mem_t *mem, tsr_wvalues_t **out);
/* Frees every value (references still out must be released first). NULL ok. */
void tsr_wvalues_destroy(tsr_wvalues_t *vs);

/* Keeps data (len bytes, allocated through the store's mem) under
 * (job, task), replacing any value there; the store owns data from now on,
 * also on failure (TSR_ERR_NOMEM: data is freed). */
tsr_status_t tsr_wvalues_put(tsr_wvalues_t *vs, uint64_t job, uint32_t task, void *data,
                             size_t len);
/* Borrows the value at (job, task): NULL when there is none. */
tsr_wvalue_t *tsr_wvalues_get(tsr_wvalues_t *vs, uint64_t job, uint32_t task, const void **data,
                              size_t *len);
/* Gives a borrowed reference back. NULL ok. */
void tsr_wvalues_release(tsr_wvalues_t *vs, tsr_wvalue_t *v);
/* Drops the n values (job, tasks[i]); n == 0 drops every value of job.
 * Returns how many were there. */
size_t tsr_wvalues_drop(tsr_wvalues_t *vs, uint64_t job, const uint32_t *tasks, size_t n);
/* Values and bytes held now (dropped ones still borrowed not counted). */
void tsr_wvalues_stats(tsr_wvalues_t *vs, size_t *count, uint64_t *bytes);

#endif /* TSR_SCHED_WORKER_VALUES_H */
