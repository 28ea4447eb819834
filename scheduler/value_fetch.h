/*
 * value_fetch.h - graph task values moving directly between workers
 * (docs/cluster.md "Data movement"): the consumer side (a cache of proven
 * connections to peer workers, and the fetch) and the producer side (the
 * VALUE_FETCH and VALUE_DROP handlers' bodies over worker_values.h).
 *
 *   consumer -> producer  VALUE_FETCH {u64 job, u32 task}
 *                         reply: the value's bytes (proto.h "value"), or
 *                         TSR_ERR_NOT_FOUND with an error payload
 *   scheduler -> worker   VALUE_DROP  {u64 job, u32 n, n x u32 task}
 *                         (n == 0: every value of the job); reply {u32 dropped}
 *
 * A consumer dials the producer's listener (the address the scheduler put
 * in the task's request, with the producer's node id: another process
 * answering at that address is refused) and proves the cluster token with
 * the handshake every listener uses (handshake.h); the producer serves only
 * peers that passed. Connections are cached per worker (one per producer
 * node id) and used by the executor thread only, so the cache has no lock.
 * Payloads of any size ride one RPC: the transport sends large ones by
 * rendezvous, and the producer answers zero-copy from its store.
 */
#ifndef TSR_SCHED_VALUE_FETCH_H
#define TSR_SCHED_VALUE_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "proto.h"
#include "transport.h"
#include "worker_values.h"

/* Where a kept value lives: its producer's listener. */
typedef struct tsr_vaddr {
    uint32_t worker;  /* the scheduler's 1-based worker id (messages) */
    uint32_t node_id; /* the producer's transport node id */
    const char *host;
    uint16_t port;
} tsr_vaddr_t;

typedef struct tsr_vfetch tsr_vfetch_t;

/* tok must outlive the cache (the worker's). */
tsr_status_t tsr_vfetch_create(tsr_mem_t *mem, tsr_transport_t *t, const tsr_token_t *tok,
                               tsr_vfetch_t **out);
/* Lets go of every cached connection. NULL ok. */
void tsr_vfetch_destroy(tsr_vfetch_t *vf);

/* Fetches value (job, task) from its producer at *from into *out (release
 * it with tsr_rpc_msg_release). A cached connection that fails is dialled
 * once more before giving up. Errors (err names the producer):
 * TSR_ERR_UNAVAILABLE (unreachable, another process there, the call
 * failed), TSR_ERR_TIMEOUT, TSR_ERR_NOT_FOUND (the producer has no such
 * value), TSR_ERR_AUTH. */
tsr_status_t tsr_vfetch_get(tsr_vfetch_t *vf, const tsr_vaddr_t *from, uint64_t job, uint32_t task,
                            int timeout_ms, tsr_rpc_msg_t *out, tsr_error_t *err);

/* Producer side, called by the worker's handlers once the peer is known
 * to be allowed: answers req (VALUE_FETCH) from vs, zero-copy. */
void tsr_vfetch_serve(tsr_transport_t *t, tsr_wvalues_t *vs, tsr_rpc_req_t *req);
/* Answers req (VALUE_DROP) after dropping what it names. Returns how many
 * values it dropped; *job and *whole (every value of the job) say what it
 * named (for the worker's log). */
size_t tsr_vfetch_serve_drop(tsr_transport_t *t, tsr_wvalues_t *vs, tsr_rpc_req_t *req,
                             uint64_t *job, bool *whole);

/* The payloads (decoders check every length and refuse trailing bytes). */
void tsr_vfetch_encode_key(tsr_wbuf_t *b, uint64_t job, uint32_t task);
bool tsr_vfetch_decode_key(const void *msg, size_t len, uint64_t *job, uint32_t *task);
void tsr_vfetch_encode_drop(tsr_wbuf_t *b, uint64_t job, const uint32_t *tasks, size_t n);
/* *tasks points into an array of mem the caller frees (NULL when n == 0). */
bool tsr_vfetch_decode_drop(tsr_mem_t *mem, const void *msg, size_t len, uint64_t *job,
                            uint32_t **tasks, size_t *n);

#endif /* TSR_SCHED_VALUE_FETCH_H */
