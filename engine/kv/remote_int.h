/*
 * remote_int.h - what the two halves of the kv remote reader share:
 * remote.c (the server, descriptors, the single get and the window judge)
 * and remote_many.c (get_many: several gets in flight; read_many: the same
 * over several readers, which the transaction clients use - engine/txn/
 * remote.c, scheduler/txn_cluster.c). Formats and the protocol are
 * described at the top of remote.c.
 */
#ifndef TSR_KV_REMOTE_INT_H
#define TSR_KV_REMOTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_internal.h"
#include "transport.h"

#define MAX_REFRESH 64u /* descriptors re-fetched by one get before it gives up */
#define WINDOW_SLOTS 4u
#define WINDOW_BYTES (16u << 10)
#define MAX_TORN 100000u

typedef struct rpart {
    tsr_rkey_t *rkey; /* NULL: no descriptor yet */
    uint64_t nslots;
    uint32_t slot_size;
    uint64_t epoch;
    uint64_t vmask; /* the version mask of the table this region belongs to */
    uint32_t gen;   /* descriptors fetched: get_many refetches a partition once per round */
    bool rlock_ok;  /* the owner lets clients lock slots one-sided (kv_internal.h) */
} rpart_t;

struct tsr_kv_remote {
    tsr_transport_t *t;
    tsr_peer_t *peer;
    char *name;
    uint16_t rpc_type;
    int timeout_ms;
    uint32_t nparts;
    uint32_t max_key, max_val;
    rpart_t *parts;
    unsigned char *win; /* one window of slots */
    size_t win_cap;
    void *many; /* remote_many.c: get_many's arrays, kept between calls */
    tsr_kv_remote_stats_t st;
};

/* What one window of slot copies, read from probe position i, says about
 * a key (scan_window). */
typedef enum wstep {
    W_FOUND, /* the key's slot: *hit */
    W_MISS,  /* an empty slot, or the whole table probed */
    W_NEXT,  /* not decided: read the next window */
    W_TORN,  /* a copy not whole: re-read from that slot */
    W_MOVED, /* the region was replaced: re-fetch the descriptor, start over */
} wstep_t;

/* Several readers' gets in flight at once (remote_many.c): the rounds of
 * tsr_kv_remote_get_many over keys that may belong to different readers
 * (tables, even owners) sharing one transport - every key's window reads of
 * a round go out in one tsr_rma_get_many. tsr_kv_remote_get_many is the
 * one-reader case. A decided key is handed to done: val NULL for a clean
 * miss (ver KV_TXN_ABSENT), else the value inside the accepted slot copy
 * (valid during the callback only; the whole value, whatever its length)
 * with that copy's raw version and its descriptor's version mask (as
 * tsr_kv_remote_get_versioned: ver ^ vmask). A status other than TSR_OK
 * from done stops the call with it. */
typedef tsr_status_t (*kv_many_fn)(void *arg, size_t k, const unsigned char *val, uint32_t vlen,
                                   uint64_t ver, uint64_t vmask, tsr_error_t *err);
/* The rkey and offset of loc's version word, if the descriptor it was read
 * with is still r's and its owner lets clients lock slots; else false. */
bool tsr_kv_remote_loc_word(const kv_slot_loc_t *loc, tsr_rkey_t **k, uint64_t *off);
/* A one-sided versioned get (tsr_kv_remote_get_ver) that also says where the
 * slot is (loc->r NULL for a miss). */
tsr_status_t tsr_kv_remote_get_loc(tsr_kv_remote_t *r, const void *key, size_t klen, void *buf,
                                   size_t cap, size_t *vlen, uint64_t *ver, kv_slot_loc_t *loc,
                                   tsr_kv_err_t *kerr);

typedef struct kv_many_req {
    tsr_kv_remote_t *const *readers; /* nreaders >= 1, all on one transport */
    size_t nreaders;
    const uint32_t *which; /* key k is read by readers[which[k]]; NULL: readers[0] */
    const tsr_kv_pair_t *keys;
    size_t n;
    kv_many_fn done;
    void *arg;
    tsr_status_t *results; /* may be NULL: TSR_OK, TSR_ERR_NOT_FOUND, or the call's failure */
    kv_slot_loc_t *locs;   /* may be NULL: where each found key's slot is (set before done) */
} kv_many_req_t;
/* Returns TSR_OK once every key is decided, else the call's failure (bad
 * input - a key longer than its table allows included -, a read that
 * failed, a table gone on its owner: TSR_ERR_NOT_FOUND); results[k] of
 * every key not yet decided then holds it. *nok (may be NULL): keys found.
 * Waits at most readers[0]'s timeout per round. *scratch holds the arrays
 * between calls (NULL at first; freed by tsr_kv_remote_scratch_free). */
tsr_status_t tsr_kv_remote_read_many(void **scratch, const kv_many_req_t *q, size_t *nok,
                                     tsr_error_t *err);
void tsr_kv_remote_scratch_free(void **scratch);

/* Fetches (again) the descriptor of partition part; r->parts is allocated
 * by the first call. */
tsr_status_t tsr_kv_remote_fetch_desc(tsr_kv_remote_t *r, uint32_t part, tsr_error_t *err);
/* The same, with sweep: the owner first breaks every remote lock past its
 * lease in that partition (a reader met one: its holder died). */
tsr_status_t tsr_kv_remote_fetch_desc_ex(tsr_kv_remote_t *r, uint32_t part, bool sweep,
                                         tsr_error_t *err);
/* Whether a slot copy is torn because of a remote lock past its lease. */
bool tsr_kv_remote_torn_by_stale_lock(const unsigned char *slot);
/* Frees what get_many kept in r (remote_many.c; NULL-safe). */
void tsr_kv_remote_many_free(tsr_kv_remote_t *r);
/* Slots per window read of rp (at most WINDOW_BYTES). */
uint32_t tsr_kv_remote_window_slots(const rpart_t *rp);
/* Judges n slot copies read from a key's probe position (remote.c). */
wstep_t tsr_kv_remote_scan_window(const tsr_kv_remote_t *r, const rpart_t *rp,
                                  const unsigned char *win, uint64_t n, uint64_t h, const void *key,
                                  size_t klen, uint64_t *probed, uint64_t *adv,
                                  const kv_slot_t **hit, uint64_t *hit_ver);

#endif
