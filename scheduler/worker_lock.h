/*
 * worker_lock.h - a worker's share of the cluster's lock service: the lock
 * home it hosts and the lock client that holds grants on behalf of
 * `tessera lock` commands (docs/locks.md "Locks on a cluster").
 */
#ifndef TSR_WORKER_LOCK_H
#define TSR_WORKER_LOCK_H

#include <stdbool.h>
#include <stdio.h>

#include "core/error.h"
#include "transport.h"

typedef struct tsr_wlock tsr_wlock_t;

/* Creates the home, published on t (descriptor and served calls, for the
 * peers allow admits: NULL admits all), and the client the CLI's requests
 * run in; t is also the transport LOCK_RUN requests arrive on (replies
 * leave from the lock threads through it). */
tsr_status_t tsr_wlock_create(tsr_transport_t *t, FILE *log, bool (*allow)(void *, tsr_peer_t *),
                              void *allow_arg, tsr_wlock_t **out, tsr_error_t *err);
/* RPC handler for TSR_MSG_LOCK_RUN (arg: the tsr_wlock_t): runs the request
 * on a thread of its own, which replies. */
void tsr_wlock_on_request(void *arg, tsr_rpc_req_t *req);
/* Refuses new requests and waits up to wait_ms for running ones. false when
 * some still run: the caller must then leave l and the transport alone (the
 * process is about to exit). */
bool tsr_wlock_quiesce(tsr_wlock_t *l, int wait_ms);
/* Frees l (after a successful quiesce), before the transport: the home
 * unregisters its region and handlers. Accepts NULL. */
void tsr_wlock_destroy(tsr_wlock_t *l);

#endif /* TSR_WORKER_LOCK_H */
