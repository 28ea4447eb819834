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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/kv.h"
#include "transport.h"

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

static tsr_transport_t *make(uint32_t node, bool listen)
{
    tsr_transport_params_t p = {
        .node_id = node, .listen_host = listen ? "127.0.0.1" : NULL, .spin_us = 20};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_t *t = NULL;
    tsr_status_t rc = tsr_transport_create(NULL, &p, &t, &err);
    if (rc != TSR_OK)
        fprintf(stderr, "transport_create: %s\n", err.message);
    assert_int_equal(rc, TSR_OK);
    return t;
}

static void env_up(env_t *e)
{
    memset(e, 0, sizeof(*e));
    tsr_error_t err;
    tsr_error_clear(&err);
    e->s = make(1, true);
    e->c = make(2, false);
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

static void test_versioned_model(void **state)
{
    (void)state;
    env_t e;
    env_up(&e);
    tsr_kv_err_t ke = {0};
    tsr_kv_table_params_t tp = {.partitions = 1, .max_key = 16, .max_value = MAXV};
    assert_int_equal(tsr_kv_table_create(e.store, "m", &tp, &ke), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(e.store, "m", &t, &ke), TSR_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versioned_model),
        cmocka_unit_test(test_retire),
        cmocka_unit_test(test_allow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
