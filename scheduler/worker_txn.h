/*
 * worker_txn.h - a worker's part of transactions on cluster kv tables
 * (docs/kv.md "On a cluster", Transactions; pops TGET, TVALIDATE, TAPPLY in
 * kv_msg.h): versioned reads, read validation and the atomic apply of a
 * partition's share of a commit, on the worker's kv store. Private to
 * scheduler/; called from worker_kv.c's partition threads.
 */
#ifndef TSR_WORKER_TXN_H
#define TSR_WORKER_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "proto.h"
#include "tessera/kv.h"

typedef struct tsr_wkv_txn tsr_wkv_txn_t;

/* Over store (which must outlive it); draws the worker's version epoch. */
tsr_status_t tsr_wkv_txn_create(tsr_kv_store_t *store, tsr_wkv_txn_t **out, tsr_error_t *err);
/* Accepts NULL. */
void tsr_wkv_txn_destroy(tsr_wkv_txn_t *x);
/* Whether pop is one of the transaction pops served here. */
bool tsr_wkv_txn_pop(uint8_t pop);
/* Runs a transaction pop on the partition table name (created on TAPPLY
 * with the sizes given when missing); r is positioned at the pop's payload,
 * the reply goes to out. */
tsr_status_t tsr_wkv_txn_run(tsr_wkv_txn_t *x, const char *name, uint32_t max_key,
                             uint32_t max_value, uint8_t pop, tsr_rbuf_t *r, tsr_wbuf_t *out,
                             tsr_kv_err_t *ke);
/* The version mask of table t on this worker (epoch XOR the table id's
 * mix): what TGET XORs into a slot's version and TVALIDATE takes out. The
 * worker's kv server puts it into its descriptor replies
 * (tsr_kv_server_params_t.version_mask; arg: the tsr_wkv_txn_t), so a
 * one-sided reader turns a raw slot version into exactly TGET's answer. */
uint64_t tsr_wkv_txn_mask(void *x, const tsr_kv_table_t *t);

#endif /* TSR_WORKER_TXN_H */
