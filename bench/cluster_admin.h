/*
 * cluster_admin.h - what the benches that run against a cluster share
 * (txn_cluster.c, kv_cluster.c): creating and dropping their own kv tables
 * through the scheduler. Only in builds with the cluster library.
 */
#ifndef TSR_BENCH_CLUSTER_ADMIN_H
#define TSR_BENCH_CLUSTER_ADMIN_H

#ifdef TSR_HAVE_SCHEDULER
#include <stdint.h>

#include "scheduler.h"

/* One KV create (partitions, replicas - 0: the cluster's default - and the
 * largest key and value) or drop (TSR_KV_OP_DROP: the sizes are ignored)
 * of table name; 0, or -1 reported as "<who>: kv create 'name': why" (a
 * table that exists: "drop it: the bench uses its own tables"). */
int tsr_bench_cluster_table(tsr_client_t *c, const char *who, uint8_t op, const char *name,
                            uint32_t partitions, uint32_t replicas, uint32_t max_key,
                            uint32_t max_value);
#endif

#endif /* TSR_BENCH_CLUSTER_ADMIN_H */
