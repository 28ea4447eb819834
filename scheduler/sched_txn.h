/*
 * sched_txn.h - the scheduler as the coordinator of transactions on cluster
 * kv tables (sched_txn.c; docs/kv.md "On a cluster", Transactions). Private
 * to scheduler/.
 */
#ifndef TSR_SCHED_TXN_H
#define TSR_SCHED_TXN_H

#include <stdbool.h>
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

/* Start-up, after the kv catalog (tsr_sched_kv_open): with a data dir,
 * opens <dir>/txn-log (txn_log.c) and queues the redo of every commit it
 * holds that was decided but not applied everywhere. A damaged log file
 * fails (err says why). Reads the test hook TSR_TEST_TXN_CRASH_AFTER_APPLIES. */
tsr_status_t tsr_sched_txn_open(sched_t *s, tsr_error_t *err);
/* At exit, after the transport is gone: frees what the coordinator holds. */
void tsr_sched_txn_close(sched_t *s);
/* Every loop iteration: continues the commits whose log records became
 * durable and retries redos that wait for a usable replica. */
void tsr_sched_txn_tick(sched_t *s);
/* True while a commit waits for the log: the loop should poll soon. */
bool tsr_sched_txn_busy(const sched_t *s);

#endif /* TSR_SCHED_TXN_H */
