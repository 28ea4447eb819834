/*
 * worker_kv.h - a worker's share of the cluster kv store: the partitions it
 * hosts, kept in one embedded store (include/tessera/kv.h) under its data
 * dir (docs/kv.md "On a cluster").
 */
#ifndef TSR_WORKER_KV_H
#define TSR_WORKER_KV_H

#include <stdbool.h>
#include <stdio.h>

#include "core/error.h"
#include "transport.h"

typedef struct tsr_wkv tsr_wkv_t;

/* Opens the store in data_dir/kv (recovering it), or in memory when
 * data_dir is NULL or "", and starts the partition threads. Replies leave
 * through t from those threads. device: the worker's --device; an OpenCL
 * device ("opencl0", ...) runs large kv batches as kernels (docs/kv.md
 * "Device batches"), anything else (NULL, "cpu", "cuda0") keeps them on the
 * CPU. */
tsr_status_t tsr_wkv_create(tsr_transport_t *t, const char *data_dir, const char *device, FILE *log,
                            tsr_wkv_t **out, tsr_error_t *err);
/* Serves the partition tables to one-sided readers on the transport
 * (descriptor RPC TSR_KV_RPC_DESC, answered only to peers allow admits; the
 * versions come out mixed as TGET's: worker_txn.h). Call once, after
 * create, before the transport progresses requests of others. */
tsr_status_t tsr_wkv_serve_reads(tsr_wkv_t *k, bool (*allow)(void *, tsr_peer_t *), void *allow_arg,
                                 tsr_error_t *err);
/* The kv store's identity (random, kept in its data dir; 0 without one):
 * reported when the worker joins, so the scheduler knows whether a stale
 * copy it comes back with is the one that went stale. */
uint64_t tsr_wkv_store_id(const tsr_wkv_t *k);
/* RPC handler for TSR_MSG_KV_RUN (arg: the tsr_wkv_t): queues the request on
 * its partition's thread. */
void tsr_wkv_on_request(void *arg, tsr_rpc_req_t *req);
/* Stops the threads (finishing the request each runs, answering the queued
 * ones UNAVAILABLE), closes the store, frees k. Accepts NULL. Call before
 * destroying the transport. */
void tsr_wkv_destroy(tsr_wkv_t *k);

#endif /* TSR_WORKER_KV_H */
