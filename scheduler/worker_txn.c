/*
 * worker_txn.c - the transaction pops a worker runs on the partitions it
 * hosts (docs/kv.md "On a cluster", Transactions; formats in kv_msg.h).
 * The scheduler coordinates (sched_txn.c); here each pop touches one
 * partition's table of the worker's store through engine/txn's local
 * protocol (commit.c), so the same code that makes a local transaction
 * all-or-nothing and durable does it for a partition's share of a cluster
 * commit:
 *
 *   TGET       a versioned lock-free read (tsr_txn_read_local).
 *   TVALIDATE  a read-only commit of the reads given: every key still has
 *              the version read (or is still absent).
 *   TAPPLY     a write-only commit of the writes given: locked, ONE commit
 *              record in the store's log (all or nothing at replay),
 *              applied, and durable (group commit) before the reply.
 *
 * Epoch: versions are the store's, so two replicas of a partition may give
 * the same key the same version with different values (a backup that took
 * a write the dead primary never did). The version a TGET hands out is the
 * slot's XOR this worker's epoch (random, even, drawn per process), and
 * TVALIDATE undoes it with its own epoch: a version read on another replica,
 * or before a restart, does not match (a spurious conflict, which is safe)
 * instead of matching by accident. The partition table's id in the store is
 * mixed in too: a resync DROPs a stale copy and loads the partition into a
 * fresh table (a new id) whose slots count versions from the start again,
 * so without it a key read before the resync could match a version of the
 * reloaded copy that holds another value. Versions are even (and so are
 * both mixes), so a mixed one is never TSR_KV_TXN_ABSENT.
 *
 * One-sided reads: the worker's kv server (worker_kv.c) hands the same
 * mix out in its descriptor replies (tsr_wkv_txn_mask), computed for the
 * table whose region it describes, so a client reading the slot by RMA
 * (txn_cluster.c) gets exactly the version TGET would have answered, and a
 * read of a dropped or reloaded copy carries that copy's mix (a conflict at
 * TVALIDATE, never a false match).
 *
 * Exclusion: the scheduler sends TVALIDATE and TAPPLY of a partition only
 * while it holds the partition's write turn (no other write of it runs), and
 * worker_kv.c runs one partition's requests in order on one thread.
 */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "kv_msg.h"
#include "txn_internal.h"
#include "worker_txn.h"

struct tsr_wkv_txn {
    tsr_kv_store_t *store;
    txn_local_t local;
    uint64_t epoch;
};

tsr_status_t tsr_wkv_txn_create(tsr_kv_store_t *store, tsr_wkv_txn_t **out, tsr_error_t *err)
{
    tsr_wkv_txn_t *x = tsr_mem_calloc(NULL, 1, sizeof(*x));
    if (!x)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    tsr_status_t rc = tsr_txn_local_init(&x->local, store, err);
    if (rc != TSR_OK) {
        tsr_mem_free(NULL, x);
        return rc;
    }
    x->store = store;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed[3] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid()};
    x->epoch = tsr_hash_bytes(seed, sizeof(seed)) & ~1ULL;
    *out = x;
    return TSR_OK;
}

void tsr_wkv_txn_destroy(tsr_wkv_txn_t *x)
{
    if (!x)
        return;
    tsr_txn_local_fini(&x->local);
    tsr_mem_free(NULL, x);
}

bool tsr_wkv_txn_pop(uint8_t pop)
{
    return pop == TSR_KV_POP_TGET || pop == TSR_KV_POP_TVALIDATE || pop == TSR_KV_POP_TAPPLY;
}

/* What a handed-out version is mixed with on this worker for table t
 * (even: see the top). */
static uint64_t mix_of(const tsr_wkv_txn_t *x, const tsr_kv_table_t *t)
{
    uint64_t id = t->id;
    return x->epoch ^ (tsr_hash_bytes(&id, sizeof(id)) & ~1ULL);
}

uint64_t tsr_wkv_txn_mask(void *x, const tsr_kv_table_t *t)
{
    return mix_of(x, t);
}

static tsr_status_t fail(tsr_kv_err_t *ke, tsr_status_t rc, const char *msg)
{
    snprintf(ke->message, sizeof(ke->message), "%s", msg);
    return rc;
}

static tsr_status_t tget(tsr_wkv_txn_t *x, const char *name, tsr_rbuf_t *r, tsr_wbuf_t *out,
                         tsr_kv_err_t *ke)
{
    size_t klen = 0;
    const unsigned char *key = tsr_rbuf_blob(r, &klen);
    if (!tsr_rbuf_done(r))
        return fail(ke, TSR_ERR_BAD_INPUT, "malformed kv request");
    unsigned char *val = NULL;
    uint32_t vlen = 0;
    uint64_t ver = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    /* the table read below (this partition's requests run in order on one
     * thread, so no drop comes in between) */
    tsr_kv_table_t *t = NULL;
    tsr_status_t rc = tsr_txn_local_table(&x->local, name, &t, &e);
    if (rc == TSR_OK)
        rc = tsr_txn_read_local(&x->local, name, tsr_hash_bytes(key, klen), key, klen, &val, &vlen,
                                &ver, &e);
    if (rc == TSR_ERR_NOT_FOUND) { /* absent, or the partition never written */
        tsr_wbuf_u8(out, 0);
        tsr_wbuf_u64(out, TSR_KV_TXN_ABSENT);
        tsr_wbuf_u32(out, 0);
        return TSR_OK;
    }
    if (rc != TSR_OK)
        return fail(ke, rc, e.message);
    tsr_wbuf_u8(out, 1);
    tsr_wbuf_u64(out, ver ^ mix_of(x, t));
    tsr_wbuf_u32(out, vlen);
    tsr_wbuf_bytes(out, val, vlen);
    tsr_mem_free(NULL, val);
    return TSR_OK;
}

/* TVALIDATE (writes false) or TAPPLY (writes true): the entries into a
 * one-table set, then one local commit. */
static tsr_status_t tcommit(tsr_wkv_txn_t *x, const char *name, uint32_t max_key,
                            uint32_t max_value, bool writes, tsr_rbuf_t *r, tsr_kv_err_t *ke)
{
    uint32_t n = tsr_rbuf_u32(r);
    if (r->bad || n > (r->len - r->pos) / 5) /* each entry takes 5 bytes at least */
        return fail(ke, TSR_ERR_BAD_INPUT, "malformed kv request");
    txn_entry_t *ents = tsr_mem_calloc(NULL, n ? n : 1, sizeof(*ents));
    if (!ents)
        return fail(ke, TSR_ERR_NOMEM, "out of memory");
    bool all_absent = true;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        txn_entry_t *en = &ents[i];
        if (writes)
            en->del = tsr_rbuf_u8(r) != 0;
        /* the commit only reads the entries: they point into the message */
        size_t kl = 0, vl = 0; /* u32 on the wire */
        en->key = (unsigned char *)tsr_rbuf_blob(r, &kl);
        en->klen = (uint32_t)kl;
        if (writes) {
            en->val = (unsigned char *)tsr_rbuf_blob(r, &vl);
            en->vlen = (uint32_t)vl;
        } else {
            uint64_t v = tsr_rbuf_u64(r);
            en->ver = v; /* unmixed below, once the table is known */
            all_absent &= v == TSR_KV_TXN_ABSENT;
        }
        if (!r->bad)
            en->h = tsr_hash_bytes(en->key, en->klen);
    }
    tsr_status_t rc = TSR_OK;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (!tsr_rbuf_done(r)) {
        rc = fail(ke, TSR_ERR_BAD_INPUT, "malformed kv request");
        goto cleanup;
    }
    tsr_kv_table_t *t = NULL;
    rc = tsr_txn_local_table(&x->local, name, &t, &e);
    if (rc != TSR_OK && rc != TSR_ERR_NOT_FOUND) {
        rc = fail(ke, rc, e.message);
        goto cleanup;
    }
    if (rc == TSR_ERR_NOT_FOUND && !writes) { /* never written: every key is absent */
        rc = all_absent ? TSR_OK : fail(ke, TSR_ERR_CONFLICT, "txn: conflict: a key read has gone");
        goto cleanup;
    }
    if (rc == TSR_ERR_NOT_FOUND) {
        tsr_kv_table_params_t tp = {.partitions = 1, .max_key = max_key, .max_value = max_value};
        tsr_kv_err_t ce = {0};
        rc = tsr_kv_table_create(x->store, name, &tp, &ce);
        if (rc != TSR_OK && rc != TSR_ERR_EXISTS) {
            rc = fail(ke, rc, ce.message);
            goto cleanup;
        }
        tsr_error_clear(&e);
    }
    if (!writes) {
        uint64_t mix = mix_of(x, t);
        for (uint32_t i = 0; i < n; i++)
            ents[i].ver = ents[i].ver == TSR_KV_TXN_ABSENT ? KV_TXN_ABSENT : ents[i].ver ^ mix;
    }
    char *tn = (char *)name;
    txn_sets_t sets = {.tnames = &tn, .ntabs = 1};
    if (writes) {
        sets.writes = ents;
        sets.nwrites = n;
    } else {
        sets.reads = ents;
        sets.nreads = n;
    }
    rc = tsr_txn_commit_local(&x->local, &sets, &e);
    if (rc != TSR_OK)
        fail(ke, rc, e.message);
cleanup:
    tsr_mem_free(NULL, ents);
    return rc;
}

tsr_status_t tsr_wkv_txn_run(tsr_wkv_txn_t *x, const char *name, uint32_t max_key,
                             uint32_t max_value, uint8_t pop, tsr_rbuf_t *r, tsr_wbuf_t *out,
                             tsr_kv_err_t *ke)
{
    switch (pop) {
    case TSR_KV_POP_TGET:
        return tget(x, name, r, out, ke);
    case TSR_KV_POP_TVALIDATE:
        return tcommit(x, name, max_key, max_value, false, r, ke);
    case TSR_KV_POP_TAPPLY:
        return tcommit(x, name, max_key, max_value, true, r, ke);
    default:
        return fail(ke, TSR_ERR_BAD_INPUT, "malformed kv request");
    }
}
