/*
 * test_kv_remote.c - one-sided versioned reads (engine/kv/remote.c,
 * tsr_kv_remote_get_versioned) against the embedded store, in one process
 * over loopback: an owner transport S (a listener, its own progress
 * thread, a kv server with a version mask and an allow hook) and a reader
 * transport C.
 *
 * Checked against simple models:
 *  - random model: 3,000 random writes (insert, update, upsert, delete,
 *    and one-key transactional commits through the txn primitives, which
 *    take versions from the store's clock) on 300 keys (the empty key
 *    included, values of 0..200 bytes) in a table created small, so it
 *    rehashes several times under the reader (MOVED, descriptor refetch);
 *    after each write a random key is read one-sided and must equal, byte
 *    for byte, the model's value, and its version must equal the local
 *    versioned read's (tsr_kv_txn_read, what a worker's TGET answers) XOR
 *    the table's mask - absent keys answer present = false and
 *    TSR_KV_VERSION_ABSENT, as TGET's absent;
 *  - retire: a table dropped (and retired in the server) under a reader
 *    that holds its descriptor is never read again (the get fails), and a
 *    table re-created under the same name answers its own values with its
 *    own mask;
 *  - allow: a server whose allow hook refuses the reader answers its
 *    descriptor call TSR_ERR_AUTH;
 *  - bad input: NULL outputs, a key longer than the table allows.
 *
 * get_many (tsr_kv_remote_get_many, several gets in flight):
 *  - model: 2,000 keys in 3 partitions of a table created small; rounds of
 *    random writes (upserts, deletes: tombstones) between get_many calls of
 *    random key lists (present, deleted, never written, duplicates; n = 0,
 *    1, 2, primes, 256/257 around the in-flight cap, 1009, 1500), each
 *    checked key by key against the model (status, length, bytes, nok),
 *    with a short stride (a value copied in part) and results NULL too; the
 *    table rehashes between calls, so descriptors go stale (MOVED);
 *  - torn: a slot locked (odd version) and one with a corrupt value byte
 *    in the owner's memory, released by a thread 300 ms later: get_many
 *    retries and returns the whole values (torn_retries counted);
 *  - concurrent writers: a thread rewrites values (each self-checking)
 *    and inserts keys (rehashes) while get_many reads: every value read
 *    is whole, every stable key found;
 *  - retire: a dropped table fails the whole call NOT_FOUND, its results
 *    too; bad arguments fail INVALID_ARG;
 *  - the model, torn, churn and retire cases run over TCP too (UCX
 *    emulates the RMA gets there); the server sees descriptor calls only.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/kv.h"
#include "transport.h"
#include "transport_test.h"
#include "kv_torn_test.h"

#define NKEYS 300
#define MAXV 200
#define NOPS 3000

typedef struct env {
    tsr_transport_t *s, *c;
    tsr_peer_t *peer;
    tsr_kv_store_t *store;
    tsr_kv_server_t *srv;
    atomic_int allow_calls;
    bool refuse;
} env_t;

static uint64_t mask_of(void *arg, const tsr_kv_table_t *t)
{
    (void)arg;
    uint64_t id = t->id;
    return (tsr_hash_bytes(&id, sizeof(id)) ^ 0x5a5a5a5a00000000ULL) & ~1ULL;
}

static bool allow(void *arg, tsr_peer_t *peer)
{
    env_t *e = arg;
    (void)peer;
    atomic_fetch_add(&e->allow_calls, 1);
    return !e->refuse;
}

static tsr_transport_t *make(uint32_t node, bool listen, const char *tls)
{
    tsr_transport_params_t p = {
        .node_id = node, .listen_host = listen ? "127.0.0.1" : NULL, .spin_us = 20, .tls = tls};
    return test_transport_create(&p);
}

/* tls "tcp": RMA is emulated by UCX (the server's progress thread serves
 * the gets). */
static void env_up_tls(env_t *e, const char *tls)
{
    memset(e, 0, sizeof(*e));
    tsr_error_t err;
    tsr_error_clear(&err);
    e->s = make(1, true, tls);
    e->c = make(2, false, tls);
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_open(NULL, &e->store, &ke), TSR_OK);
    tsr_kv_server_params_t sp = {.version_mask = mask_of, .allow = allow, .allow_arg = e};
    assert_int_equal(tsr_kv_server_start_ex(e->store, e->s, &sp, &e->srv, &ke), TSR_OK);
    assert_int_equal(tsr_kv_server_rpc_type(e->srv), TSR_KV_RPC_DESC);
    assert_int_equal(tsr_transport_start_thread(e->s, &err), TSR_OK);
    assert_int_equal(
        tsr_transport_connect(e->c, "127.0.0.1", tsr_transport_port(e->s), 20000, &e->peer, &err),
        TSR_OK);
}

static void env_up(env_t *e)
{
    env_up_tls(e, NULL);
}

static void env_down(env_t *e)
{
    tsr_transport_destroy(e->c);
    tsr_transport_stop_thread(e->s);
    tsr_kv_server_stop(e->srv);
    tsr_kv_close(e->store);
    tsr_transport_destroy(e->s);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct mval {
    bool present;
    uint32_t len;
    unsigned char v[MAXV];
} mval_t;

static size_t key_of(int i, char *buf)
{
    if (i == 0)
        return 0; /* the empty key */
    size_t n = (size_t)snprintf(buf, 16, "k%d", i);
    return n < 16 ? n : 15; /* never clipped (at most 4 bytes); bounds it for GCC -Warray-bounds */
}

/* One-key commit through the transaction primitives (what commit.c does
 * for a write, without a log): a version from the store's clock. */
static void txn_write(tsr_kv_table_t *t, const char *key, size_t klen, bool del,
                      const unsigned char *v, uint32_t vlen)
{
    kv_txn_key_t k = {t, tsr_hash_bytes(key, klen), key, (uint32_t)klen};
    bool reserved = false;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_kv_txn_lock(&k, 0, &reserved, &err), TSR_OK);
    tsr_kv_txn_apply(&k, del, v, vlen, tsr_kv_txn_next_version(t->store));
}

/* The one-sided answer equals the local versioned read and the model. */
static void check_key(tsr_kv_remote_t *r, tsr_kv_table_t *t, const mval_t *m, const char *key,
                      size_t klen)
{
    unsigned char rbuf[MAXV], lbuf[MAXV];
    size_t rl = 99, ll = 0;
    uint64_t rver = 0, lver = 0;
    bool present = true;
    tsr_kv_err_t ke = {0};
    assert_int_equal(
        tsr_kv_remote_get_versioned(r, key, klen, rbuf, sizeof(rbuf), &rl, &rver, &present, &ke),
        TSR_OK);
    kv_txn_key_t k = {t, tsr_hash_bytes(key, klen), key, (uint32_t)klen};
    tsr_status_t lrc = tsr_kv_txn_read(&k, lbuf, sizeof(lbuf), &ll, &lver);
    assert_int_equal(present, m->present);
    if (!m->present) {
        assert_int_equal(lrc, TSR_ERR_NOT_FOUND);
        assert_true(rver == TSR_KV_VERSION_ABSENT);
        assert_int_equal(rl, 0);
        return;
    }
    assert_int_equal(lrc, TSR_OK);
    assert_int_equal(rl, m->len);
    assert_int_equal(ll, m->len);
    if (m->len)
        assert_memory_equal(rbuf, m->v, m->len);
    assert_true(rver == (lver ^ mask_of(NULL, t)));
    assert_true(rver != TSR_KV_VERSION_ABSENT && (rver & 1) == 0);
}

/* Creates and opens table name (partitions, 16-byte keys, values up to
 * max_value) in e's store. */
static tsr_kv_table_t *table_up(env_t *e, const char *name, uint32_t partitions,
                                uint32_t max_value)
{
    tsr_kv_err_t ke = {0};
    tsr_kv_table_params_t tp = {.partitions = partitions, .max_key = 16, .max_value = max_value};
    assert_int_equal(tsr_kv_table_create(e->store, name, &tp, &ke), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e->store, name, &t, &ke), TSR_OK);
    return t;
}

static void test_versioned_model(void **state)
{
    (void)state;
    env_t e;
    env_up(&e);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_t *t = table_up(&e, "m", 1, MAXV);
    /* one key first: the reader's open needs the table */
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "m", 0, 10000, &r, &ke), TSR_OK);
    static mval_t model[NKEYS];
    memset(model, 0, sizeof(model));
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
    print_message("seed %llu\n", (unsigned long long)seed);
    char key[16], key2[16];
    for (int op = 0; op < NOPS; op++) {
        int i = (int)(rng_next(&seed) % NKEYS);
        size_t klen = key_of(i, key);
        mval_t *m = &model[i];
        unsigned char v[MAXV];
        uint32_t vlen = (uint32_t)(rng_next(&seed) % (MAXV + 1));
        if (rng_next(&seed) % 5 == 0)
            vlen = (uint32_t)(rng_next(&seed) % 3); /* 0..2 bytes often */
        for (uint32_t j = 0; j < vlen; j++)
            v[j] = (unsigned char)rng_next(&seed);
        unsigned kind = (unsigned)(rng_next(&seed) % 6);
        tsr_status_t rc = TSR_OK;
        switch (kind) {
        case 0:
            rc = tsr_kv_insert(t, key, klen, v, vlen, NULL, &ke);
            assert_int_equal(rc, m->present ? TSR_ERR_EXISTS : TSR_OK);
            break;
        case 1:
            rc = tsr_kv_update(t, key, klen, v, vlen, NULL, &ke);
            assert_int_equal(rc, m->present ? TSR_OK : TSR_ERR_NOT_FOUND);
            break;
        case 2:
            rc = tsr_kv_upsert(t, key, klen, v, vlen, NULL, &ke);
            assert_int_equal(rc, TSR_OK);
            break;
        case 3:
            rc = tsr_kv_delete(t, key, klen, NULL, &ke);
            assert_int_equal(rc, m->present ? TSR_OK : TSR_ERR_NOT_FOUND);
            if (rc == TSR_OK)
                m->present = false;
            rc = TSR_ERR_NOT_FOUND; /* nothing to copy into the model */
            break;
        default: { /* a transactional put, or delete of a present key */
            bool del = kind == 5 && m->present;
            txn_write(t, key, klen, del, v, vlen);
            if (del) {
                m->present = false;
                rc = TSR_ERR_NOT_FOUND;
            }
            break;
        }
        }
        if (rc == TSR_OK && kind != 3) {
            m->present = true;
            m->len = vlen;
            memcpy(m->v, v, vlen);
        }
        /* the key just written, and one at random */
        check_key(r, t, m, key, klen);
        int j = (int)(rng_next(&seed) % NKEYS);
        size_t k2 = key_of(j, key2);
        check_key(r, t, &model[j], key2, k2);
    }
    /* every key once more, and keys never written */
    for (int i = 0; i < NKEYS; i++) {
        size_t klen = key_of(i, key);
        check_key(r, t, &model[i], key, klen);
    }
    mval_t none = {0};
    check_key(r, t, &none, "never", 5);
    tsr_kv_remote_stats_t st;
    tsr_kv_remote_get_stats(r, &st);
    print_message("gets %llu rma %llu refreshes %llu torn %llu\n", (unsigned long long)st.gets,
                  (unsigned long long)st.rma_reads, (unsigned long long)st.refreshes,
                  (unsigned long long)st.torn_retries);
    assert_true(st.refreshes >= 1);       /* the table rehashed under the reader */
    assert_int_equal(st.torn_retries, 0); /* no concurrent writer */

    /* bad input */
    unsigned char b[8];
    size_t vl;
    uint64_t ver;
    bool present;
    assert_int_equal(
        tsr_kv_remote_get_versioned(r, "a", 1, b, sizeof(b), &vl, NULL, &present, NULL),
        TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_remote_get_versioned(r, "a", 1, b, sizeof(b), &vl, &ver, NULL, NULL),
                     TSR_ERR_INVALID_ARG);
    char longkey[17];
    memset(longkey, 'x', sizeof(longkey));
    assert_int_equal(tsr_kv_remote_get_versioned(r, longkey, sizeof(longkey), b, sizeof(b), &vl,
                                                 &ver, &present, NULL),
                     TSR_ERR_INVALID_ARG);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_retire(void **state)
{
    (void)state;
    env_t e;
    env_up(&e);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_params_t tp = {.partitions = 1, .max_key = 16, .max_value = 32};
    assert_int_equal(tsr_kv_table_create(e.store, "d", &tp, &ke), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e.store, "d", &t, &ke), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "a", 1, "old", 3, NULL, &ke), TSR_OK);
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "d", 0, 10000, &r, &ke), TSR_OK);
    char buf[32];
    size_t vl = 0;
    uint64_t ver = 0;
    bool present = false;
    assert_int_equal(
        tsr_kv_remote_get_versioned(r, "a", 1, buf, sizeof(buf), &vl, &ver, &present, &ke), TSR_OK);
    assert_true(present && vl == 3 && memcmp(buf, "old", 3) == 0);
    uint64_t old_mask = mask_of(NULL, t);
    assert_true(ver != TSR_KV_VERSION_ABSENT);
    tsr_kv_table_close(t);

    /* dropped and retired: the reader's descriptor is for the dropped copy */
    assert_int_equal(tsr_kv_table_drop(e.store, "d", &ke), TSR_OK);
    tsr_kv_server_retire(e.srv, "d");
    tsr_kv_server_retire(e.srv, "d"); /* idempotent */
    tsr_kv_err_t re = {0};
    tsr_status_t rc =
        tsr_kv_remote_get_versioned(r, "a", 1, buf, sizeof(buf), &vl, &ver, &present, &re);
    assert_int_equal(rc, TSR_ERR_NOT_FOUND); /* the descriptor call: no such table */
    assert_true(re.message[0] != '\0');

    /* re-created under the same name: its own values, its own mask */
    assert_int_equal(tsr_kv_table_create(e.store, "d", &tp, &ke), TSR_OK);
    assert_int_equal(tsr_kv_table_open(e.store, "d", &t, &ke), TSR_OK);
    assert_true(mask_of(NULL, t) != old_mask);
    assert_int_equal(tsr_kv_upsert(t, "a", 1, "new!", 4, NULL, &ke), TSR_OK);
    assert_int_equal(
        tsr_kv_remote_get_versioned(r, "a", 1, buf, sizeof(buf), &vl, &ver, &present, &ke), TSR_OK);
    assert_true(present && vl == 4 && memcmp(buf, "new!", 4) == 0);
    char lbuf[32];
    size_t ll;
    uint64_t lver;
    kv_txn_key_t k = {t, tsr_hash_bytes("a", 1), "a", 1};
    assert_int_equal(tsr_kv_txn_read(&k, lbuf, sizeof(lbuf), &ll, &lver), TSR_OK);
    assert_true(ver == (lver ^ mask_of(NULL, t)));
    /* absent in the new copy */
    assert_int_equal(
        tsr_kv_remote_get_versioned(r, "b", 1, buf, sizeof(buf), &vl, &ver, &present, &ke), TSR_OK);
    assert_false(present);
    assert_true(ver == TSR_KV_VERSION_ABSENT);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_allow(void **state)
{
    (void)state;
    env_t e;
    env_up(&e);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_params_t tp = {.partitions = 1};
    assert_int_equal(tsr_kv_table_create(e.store, "x", &tp, &ke), TSR_OK);
    e.refuse = true;
    tsr_kv_remote_t *r = NULL;
    tsr_kv_err_t re = {0};
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "x", 0, 10000, &r, &re), TSR_ERR_AUTH);
    assert_null(r);
    assert_true(atomic_load(&e.allow_calls) >= 1);
    e.refuse = false;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "x", 0, 10000, &r, &ke), TSR_OK);
    tsr_kv_remote_close(r);
    /* no such table: the open fails NOT_FOUND */
    re = (tsr_kv_err_t){0};
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "nope", 0, 10000, &r, &re), TSR_ERR_NOT_FOUND);
    env_down(&e);
}

/* ---- get_many ---------------------------------------------------------------------- */

#define MKEYS 2000
#define MSTRIDE MAXV

/* Key i of the get_many tests; i >= MKEYS: never written. */
static size_t mkey_of(int i, char *buf)
{
    size_t n = (size_t)snprintf(buf, 16, i < MKEYS ? "g%d" : "never%d", i);
    return n < 16 ? n : 15;
}

/* get_many of the keys idx[0..n) against the model, with stride (a short
 * one copies part of each value) and results or not. */
static void check_many(tsr_kv_remote_t *r, const mval_t *model, const int *idx, size_t n,
                       size_t stride, bool with_results)
{
    static char kb[2048][16];
    static tsr_kv_pair_t keys[2048];
    static unsigned char vals[2048 * MSTRIDE];
    static size_t vlens[2048];
    static tsr_status_t res[2048];
    assert_true(n <= 2048);
    for (size_t k = 0; k < n; k++) {
        keys[k] = (tsr_kv_pair_t){kb[k], mkey_of(idx[k], kb[k]), NULL, 0};
        vlens[k] = 12345;
        res[k] = TSR_ERR_INTERNAL;
    }
    memset(vals, 0xEE, n * stride);
    size_t nok = 999999, want_ok = 0;
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_remote_get_many(r, keys, n, stride ? vals : NULL, stride, vlens,
                                            with_results ? res : NULL, &nok, &ke),
                     TSR_OK);
    for (size_t k = 0; k < n; k++) {
        const mval_t *m = idx[k] < MKEYS ? &model[idx[k]] : NULL;
        if (!m || !m->present) {
            if (with_results)
                assert_int_equal(res[k], TSR_ERR_NOT_FOUND);
            assert_int_equal(vlens[k], 0);
            continue;
        }
        want_ok++;
        if (with_results)
            assert_int_equal(res[k], TSR_OK);
        assert_int_equal(vlens[k], m->len);
        size_t c = m->len < stride ? m->len : stride;
        if (c)
            assert_memory_equal(vals + k * stride, m->v, c);
        if (c < stride) /* nothing written past the value */
            assert_int_equal(vals[k * stride + c], 0xEE);
    }
    assert_int_equal(nok, want_ok);
}

static void many_model(const char *tls)
{
    env_t e;
    env_up_tls(&e, tls);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_t *t = table_up(&e, "gm", 3, MAXV);
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "gm", 0, 10000, &r, &ke), TSR_OK);
    static mval_t model[MKEYS];
    memset(model, 0, sizeof(model));
    uint64_t seed = 0x2545F4914F6CDD1DULL ^ (uint64_t)time(NULL);
    print_message("seed %llu\n", (unsigned long long)seed);
    static const size_t sizes[] = {0, 1, 2, 3, 7, 13, 31, 97, 255, 256, 257, 1009, 1500};
    static int idx[2048];
    char key[16];
    /* empty table: everything absent */
    for (size_t k = 0; k < 300; k++)
        idx[k] = (int)(rng_next(&seed) % (MKEYS + 50));
    check_many(r, model, idx, 300, MSTRIDE, true);
    for (int round = 0; round < 14; round++) {
        /* writes: mostly upserts early, more deletes later (tombstones) */
        int nw = round < 4 ? 500 : 150;
        for (int w = 0; w < nw; w++) {
            int i = (int)(rng_next(&seed) % MKEYS);
            size_t klen = mkey_of(i, key);
            mval_t *m = &model[i];
            if (rng_next(&seed) % 10 < (round < 4 ? 1u : 4u)) {
                tsr_status_t rc = tsr_kv_delete(t, key, klen, NULL, &ke);
                assert_int_equal(rc, m->present ? TSR_OK : TSR_ERR_NOT_FOUND);
                m->present = false;
                continue;
            }
            uint32_t vlen = (uint32_t)(rng_next(&seed) % (MAXV + 1));
            if (rng_next(&seed) % 5 == 0)
                vlen = (uint32_t)(rng_next(&seed) % 3);
            for (uint32_t j = 0; j < vlen; j++)
                m->v[j] = (unsigned char)rng_next(&seed);
            m->len = vlen;
            m->present = true;
            assert_int_equal(tsr_kv_upsert(t, key, klen, m->v, vlen, NULL, &ke), TSR_OK);
        }
        size_t n = sizes[(size_t)round % (sizeof(sizes) / sizeof(sizes[0]))];
        for (size_t k = 0; k < n; k++)
            idx[k] = (int)(rng_next(&seed) % (MKEYS + 100)); /* some never written */
        if (n > 4)
            idx[n - 1] = idx[0]; /* a duplicate */
        check_many(r, model, idx, n, MSTRIDE, true);
        check_many(r, model, idx, n, 5, round % 2 == 0); /* part of each value */
    }
    /* every key once, in one call of 2,000 (past the in-flight cap) */
    for (int i = 0; i < MKEYS; i++)
        idx[i] = i;
    check_many(r, model, idx, MKEYS, MSTRIDE, true);
    /* lengths only: no value buffer */
    check_many(r, model, idx, 64, 0, true);
    tsr_kv_remote_stats_t st;
    tsr_kv_remote_get_stats(r, &st);
    print_message("gets %llu rma %llu refreshes %llu torn %llu\n", (unsigned long long)st.gets,
                  (unsigned long long)st.rma_reads, (unsigned long long)st.refreshes,
                  (unsigned long long)st.torn_retries);
    assert_true(st.refreshes >= 1);       /* the table rehashed under the reader */
    assert_int_equal(st.torn_retries, 0); /* no concurrent writer */
    assert_true(st.rma_reads >= st.gets - 2);

    /* bad input: nothing read */
    tsr_kv_pair_t kp[2] = {{"a", 1, NULL, 0}, {"b", 1, NULL, 0}};
    unsigned char vb[2 * 8];
    size_t vl[2], nok = 7;
    tsr_status_t res[2];
    assert_int_equal(tsr_kv_remote_get_many(NULL, kp, 2, vb, 8, vl, res, &nok, NULL),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(nok, 0);
    assert_int_equal(tsr_kv_remote_get_many(r, NULL, 2, vb, 8, vl, res, &nok, NULL),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_remote_get_many(r, kp, 2, vb, 8, NULL, res, &nok, NULL),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_remote_get_many(r, kp, 2, NULL, 8, vl, res, &nok, NULL),
                     TSR_ERR_INVALID_ARG);
    char longkey[17];
    memset(longkey, 'x', sizeof(longkey));
    tsr_kv_pair_t bad[2] = {{"a", 1, NULL, 0}, {longkey, sizeof(longkey), NULL, 0}};
    tsr_kv_err_t be = {0};
    assert_int_equal(tsr_kv_remote_get_many(r, bad, 2, vb, 8, vl, res, &nok, &be),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(be.status, TSR_ERR_INVALID_ARG);
    bad[1] = (tsr_kv_pair_t){NULL, 3, NULL, 0};
    assert_int_equal(tsr_kv_remote_get_many(r, bad, 2, vb, 8, vl, res, &nok, NULL),
                     TSR_ERR_INVALID_ARG);
    /* n = 0 with NULL arrays is a no-op */
    nok = 7;
    assert_int_equal(tsr_kv_remote_get_many(r, NULL, 0, NULL, 0, NULL, NULL, &nok, NULL), TSR_OK);
    assert_int_equal(nok, 0);
    /* every window is an RMA get, over TCP too: the server saw the
     * handshake and descriptor calls only (open, 2 more partitions, at
     * most one per refresh), never a read through its handler */
    tsr_transport_stats_t ss;
    tsr_transport_get_stats(e.s, &ss);
    print_message("server messages %llu\n", (unsigned long long)ss.rx_msgs);
    assert_true(ss.rx_msgs <= 1 + 3 + st.refreshes);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_get_many_model(void **state)
{
    (void)state;
    many_model(NULL);
}

static void test_get_many_model_tcp(void **state)
{
    (void)state;
    many_model("tcp");
}


static void many_torn(const char *tls)
{
    env_t e;
    env_up_tls(&e, tls);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_t *t = table_up(&e, "tt", 2, 64);
    char kb[40][16];
    tsr_kv_pair_t keys[40];
    for (int i = 0; i < 40; i++) {
        keys[i] = (tsr_kv_pair_t){kb[i], (size_t)snprintf(kb[i], 16, "t%d", i), NULL, 0};
        unsigned char v[64];
        memset(v, 'a' + i % 26, sizeof(v));
        assert_int_equal(tsr_kv_upsert(t, kb[i], keys[i].klen, v, 10 + (size_t)i, NULL, &ke),
                         TSR_OK);
    }
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "tt", 0, 10000, &r, &ke), TSR_OK);
    heal_t h = {owner_slot(t, kb[3], keys[3].klen), owner_slot(t, kb[17], keys[17].klen),
                t->max_key, 0, false};
    assert_non_null(h.locked);
    assert_non_null(h.corrupt);
    pthread_mutex_t *w1 = &t->parts[kv_part_of(h.locked->hash, t->nparts)].wlock;
    pthread_mutex_lock(w1); /* no writer touches the table meanwhile (none runs anyway) */
    atomic_fetch_or(&h.locked->ver, KV_VER_LOCKED);
    h.saved = h.corrupt->data[t->max_key];
    h.corrupt->data[t->max_key] ^= 0x5a; /* the checksum no longer matches */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, heal_later, &h), 0);
    unsigned char vals[40 * 64];
    size_t vlens[40], nok = 0;
    tsr_status_t res[40];
    atomic_store(&h.started, true);
    assert_int_equal(tsr_kv_remote_get_many(r, keys, 40, vals, 64, vlens, res, &nok, &ke), TSR_OK);
    pthread_join(th, NULL);
    pthread_mutex_unlock(w1);
    assert_int_equal(nok, 40);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(res[i], TSR_OK);
        assert_int_equal(vlens[i], 10 + (size_t)i);
        for (size_t j = 0; j < vlens[i]; j++)
            assert_int_equal(vals[i * 64 + j], 'a' + i % 26);
    }
    tsr_kv_remote_stats_t st;
    tsr_kv_remote_get_stats(r, &st);
    print_message("torn retries %llu\n", (unsigned long long)st.torn_retries);
    assert_true(st.torn_retries >= 2);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_get_many_torn(void **state)
{
    (void)state;
    many_torn(NULL);
    many_torn("tcp");
}

/* A writer thread: rewrites the values of keys "w0".."w63" (each value is
 * one byte repeated, its length a function of that byte, so a read can
 * tell a whole value from a mix) and inserts fresh keys (rehashes). */
typedef struct wr {
    tsr_kv_table_t *t;
    int nkeys;
    bool churn; /* insert and delete fresh keys (tombstones: a rehash every few dozen) */
    atomic_bool stop;
    atomic_int writes;
    atomic_int allowed; /* fresh keys the reader's progress allows so far (churn) */
} wr_t;

static size_t wlen_of(unsigned char b)
{
    return 1 + (size_t)b % 60;
}

static void *writer(void *arg)
{
    wr_t *w = arg;
    uint64_t seed = 0x1234567ULL;
    int fresh = 0;
    while (!atomic_load(&w->stop)) {
        char k[16];
        unsigned char v[64];
        unsigned char b = (unsigned char)rng_next(&seed);
        size_t kl =
            (size_t)snprintf(k, sizeof(k), "w%d", (int)(rng_next(&seed) % (uint64_t)w->nkeys));
        memset(v, b, sizeof(v));
        tsr_kv_err_t ke = {0};
        if (tsr_kv_upsert(w->t, k, kl, v, wlen_of(b), NULL, &ke) != TSR_OK)
            break;
        if (fresh < (w->churn ? atomic_load(&w->allowed) : 20000) &&
            (atomic_load(&w->writes) & 3) == 0) {
            kl = (size_t)snprintf(k, sizeof(k), "f%d", fresh++);
            if (tsr_kv_upsert(w->t, k, kl, v, 1, NULL, &ke) != TSR_OK)
                break;
            if (w->churn && tsr_kv_delete(w->t, k, kl, NULL, &ke) != TSR_OK)
                break;
        }
        atomic_fetch_add(&w->writes, 1);
    }
    return NULL;
}

/* get_many of nkeys keys while the writer runs. max_value decides the
 * window: 64-byte values read 4 slots per window; 8 KiB values one, so a
 * probe past the home slot takes several rounds, and a descriptor that
 * another key re-fetched between two of them must restart it. */
static void concurrent_run(int nkeys, uint32_t max_value, bool churn, const char *tls)
{
    env_t e;
    env_up_tls(&e, tls);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_t *t = table_up(&e, "cw", 2, max_value);
    char kb[64][16];
    tsr_kv_pair_t keys[64];
    for (int i = 0; i < nkeys; i++) {
        keys[i] = (tsr_kv_pair_t){kb[i], (size_t)snprintf(kb[i], 16, "w%d", i), NULL, 0};
        unsigned char v[64];
        memset(v, 7, sizeof(v));
        assert_int_equal(tsr_kv_upsert(t, kb[i], keys[i].klen, v, wlen_of(7), NULL, &ke), TSR_OK);
    }
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "cw", 0, 10000, &r, &ke), TSR_OK);
    wr_t w = {.t = t, .nkeys = nkeys, .churn = churn};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, &w), 0);
    unsigned char vals[64 * 64];
    size_t vlens[64], nok;
    tsr_status_t res[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int calls = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        int wn = atomic_load(&w.writes);
        if (calls >= 20 && ((el > 1.5 && wn > 0) || el > 20 || (calls >= 400 && wn > 8000)))
            break;
        tsr_status_t rc =
            tsr_kv_remote_get_many(r, keys, (size_t)nkeys, vals, 64, vlens, res, &nok, &ke);
        if (rc != TSR_OK)
            print_message("get_many: %s\n", ke.message);
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(nok, nkeys);
        for (int i = 0; i < nkeys; i++) {
            assert_int_equal(res[i], TSR_OK);
            unsigned char b = vals[i * 64];
            assert_int_equal(vlens[i], wlen_of(b));
            for (size_t j = 1; j < vlens[i]; j++)
                assert_int_equal(vals[i * 64 + j], b);
        }
        calls++;
        atomic_store(&w.allowed,
                     calls * 4); /* churn spread over the reads: a rehash every few calls */
    }
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    tsr_kv_remote_stats_t st;
    tsr_kv_remote_get_stats(r, &st);
    print_message("calls %d writes %d refreshes %llu torn %llu\n", calls, atomic_load(&w.writes),
                  (unsigned long long)st.refreshes, (unsigned long long)st.torn_retries);
    assert_true(atomic_load(&w.writes) > 0);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_get_many_concurrent(void **state)
{
    (void)state;
    concurrent_run(64, 64, false, NULL);
    concurrent_run(24, 8192, true, NULL);
    concurrent_run(24, 8192, true, "tcp");
}

static void many_retire(const char *tls)
{
    env_t e;
    env_up_tls(&e, tls);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_params_t tp = {.partitions = 2, .max_key = 16, .max_value = 32};
    assert_int_equal(tsr_kv_table_create(e.store, "d", &tp, &ke), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e.store, "d", &t, &ke), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "a", 1, "old", 3, NULL, &ke), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "b", 1, "bee", 3, NULL, &ke), TSR_OK);
    tsr_kv_remote_t *r;
    assert_int_equal(tsr_kv_remote_open(e.c, e.peer, "d", 0, 10000, &r, &ke), TSR_OK);
    tsr_kv_pair_t kp[3] = {{"a", 1, NULL, 0}, {"b", 1, NULL, 0}, {"c", 1, NULL, 0}};
    char vals[3 * 32];
    size_t vl[3], nok = 0;
    tsr_status_t res[3];
    assert_int_equal(tsr_kv_remote_get_many(r, kp, 3, vals, 32, vl, res, &nok, &ke), TSR_OK);
    assert_int_equal(nok, 2);
    assert_true(res[0] == TSR_OK && res[1] == TSR_OK && res[2] == TSR_ERR_NOT_FOUND);
    assert_memory_equal(vals, "old", 3);
    assert_memory_equal(vals + 32, "bee", 3);
    tsr_kv_table_close(t);
    assert_int_equal(tsr_kv_table_drop(e.store, "d", &ke), TSR_OK);
    tsr_kv_server_retire(e.srv, "d");
    tsr_kv_err_t re = {0};
    assert_int_equal(tsr_kv_remote_get_many(r, kp, 3, vals, 32, vl, res, &nok, &re),
                     TSR_ERR_NOT_FOUND);
    assert_true(re.message[0] != '\0');
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i], TSR_ERR_NOT_FOUND);
    /* re-created: its own values */
    assert_int_equal(tsr_kv_table_create(e.store, "d", &tp, &ke), TSR_OK);
    assert_int_equal(tsr_kv_table_open(e.store, "d", &t, &ke), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "c", 1, "new!", 4, NULL, &ke), TSR_OK);
    assert_int_equal(tsr_kv_remote_get_many(r, kp, 3, vals, 32, vl, res, &nok, &ke), TSR_OK);
    assert_int_equal(nok, 1);
    assert_true(res[0] == TSR_ERR_NOT_FOUND && res[1] == TSR_ERR_NOT_FOUND && res[2] == TSR_OK);
    assert_int_equal(vl[2], 4);
    assert_memory_equal(vals + 64, "new!", 4);
    tsr_kv_remote_close(r);
    tsr_kv_table_close(t);
    env_down(&e);
}

static void test_get_many_retire(void **state)
{
    (void)state;
    many_retire(NULL);
    many_retire("tcp");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versioned_model),
        cmocka_unit_test(test_retire),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_get_many_model),
        cmocka_unit_test(test_get_many_model_tcp),
        cmocka_unit_test(test_get_many_torn),
        cmocka_unit_test(test_get_many_concurrent),
        cmocka_unit_test(test_get_many_retire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
