/*
 * sched_txn.h - the scheduler as the coordinator of transactions on cluster
 * kv tables (sched_txn.c; docs/kv.md "On a cluster", Transactions). Private
 * to scheduler/.
 */
#ifndef TSR_SCHED_TXN_H
#define TSR_SCHED_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "sched_internal.h"

/* Serves a TSR_KV_OP_TXN request (r positioned after the op's table name):
 * validates the reads and applies the writes, or answers TSR_ERR_CONFLICT
 * with nothing written. */
void tsr_sched_txn_commit(sched_t *s, tsr_rpc_req_t *req, tsr_rbuf_t *r);
/* The key's partition: the store's rule (the high 32 bits of XXH3(key)
 * scaled by the partition count), as clients route plain requests. */
uint32_t tsr_sched_txn_part_of(const void *key, size_t klen, uint32_t nparts);

#endif /* TSR_SCHED_TXN_H */
