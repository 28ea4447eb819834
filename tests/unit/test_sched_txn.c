/*
 * test_sched_txn.c - a worker's transaction pops (scheduler/worker_txn.c:
 * TGET, TVALIDATE, TAPPLY of kv_msg.h) on an in-memory store, and the
 * coordinator's key routing (tsr_sched_txn_part_of).
 *
 * Model: random batches of puts and deletes applied with TAPPLY against a
 * dict; after each, TGET of every key of the pool equals the model, and the
 * versions TGET handed out validate (TVALIDATE) exactly for the keys no
 * later batch wrote (absent keys: exactly while still absent). A version
 * read on another worker (another epoch) never validates. A partition never
 * written reads as absent and validates only absences. Every truncation of
 * a payload, trailing bytes and an entry count past the payload are
 * refused (BAD_INPUT) and change nothing. A version read before the
 * partition's table was dropped and reloaded (a resync) never validates
 * against the reloaded copy. Routing follows the store's rule
 * and spreads keys over the partitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_msg.h"
#include "proto.h"
#include "sched_txn.h"
#include "tessera/kv.h"
#include "worker_txn.h"

#define NKEYS 13 /* a prime pool of keys */
#define PART "t.1.0"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

typedef struct env {
    tsr_kv_store_t *store;
    tsr_wkv_txn_t *x;
} env_t;

static void env_open(env_t *e)
{
    tsr_kv_options_t o = {0};
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_open(&o, &e->store, &ke), TSR_OK);
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_wkv_txn_create(e->store, &e->x, &err), TSR_OK);
}

static void env_close(env_t *e)
{
    tsr_wkv_txn_destroy(e->x);
    tsr_kv_close(e->store);
}

static tsr_status_t run(env_t *e, uint8_t pop, const tsr_wbuf_t *in, size_t len, tsr_wbuf_t *out)
{
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, in->data, len);
    tsr_kv_err_t ke = {0};
    tsr_wbuf_init(out, NULL);
    return tsr_wkv_txn_run(e->x, PART, 64, 256, pop, &r, out, &ke);
}

static void key_of(int i, char *buf)
{
    snprintf(buf, 16, "key-%d", i);
}

/* TGET of key i: found, its version and value. */
static bool tget(env_t *e, int i, uint64_t *ver, char *val, size_t *vlen)
{
    char k[16];
    key_of(i, k);
    tsr_wbuf_t in, out;
    tsr_wbuf_init(&in, NULL);
    tsr_wbuf_u32(&in, (uint32_t)strlen(k));
    tsr_wbuf_bytes(&in, k, strlen(k));
    assert_int_equal(run(e, TSR_KV_POP_TGET, &in, in.len, &out), TSR_OK);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, out.data, out.len);
    bool found = tsr_rbuf_u8(&r) != 0;
    *ver = tsr_rbuf_u64(&r);
    uint32_t n = tsr_rbuf_u32(&r);
    const void *p = tsr_rbuf_bytes(&r, n);
    assert_true(tsr_rbuf_done(&r));
    assert_true(n < 64);
    if (n)
        memcpy(val, p, n);
    *vlen = n;
    if (!found)
        assert_true(*ver == TSR_KV_TXN_ABSENT && n == 0);
    else
        assert_true(*ver != TSR_KV_TXN_ABSENT);
    tsr_wbuf_free(&in);
    tsr_wbuf_free(&out);
    return found;
}

static tsr_status_t validate1(env_t *e, int i, uint64_t ver)
{
    char k[16];
    key_of(i, k);
    tsr_wbuf_t in, out;
    tsr_wbuf_init(&in, NULL);
    tsr_wbuf_u32(&in, 1);
    tsr_wbuf_u32(&in, (uint32_t)strlen(k));
    tsr_wbuf_bytes(&in, k, strlen(k));
    tsr_wbuf_u64(&in, ver);
    tsr_status_t rc = run(e, TSR_KV_POP_TVALIDATE, &in, in.len, &out);
    assert_int_equal(out.len, 0);
    tsr_wbuf_free(&in);
    tsr_wbuf_free(&out);
    return rc;
}

/* A TAPPLY payload of n writes: key i, put (value) or delete. */
static void apply_msg(tsr_wbuf_t *b, int n, const int *keys, const bool *del, char vals[][32])
{
    tsr_wbuf_init(b, NULL);
    tsr_wbuf_u32(b, (uint32_t)n);
    for (int j = 0; j < n; j++) {
        char k[16];
        key_of(keys[j], k);
        tsr_wbuf_u8(b, del[j]);
        tsr_wbuf_u32(b, (uint32_t)strlen(k));
        tsr_wbuf_bytes(b, k, strlen(k));
        size_t vl = del[j] ? 0 : strlen(vals[j]);
        tsr_wbuf_u32(b, (uint32_t)vl);
        tsr_wbuf_bytes(b, vals[j], vl);
    }
}

static void test_model(void **state)
{
    (void)state;
    env_t e;
    env_open(&e);
    char model[NKEYS][32];
    bool present[NKEYS] = {0};
    uint64_t seen[NKEYS];
    bool seen_ok[NKEYS]; /* the version in seen still holds */
    /* never written: every key absent, absences validate, versions do not */
    for (int i = 0; i < NKEYS; i++) {
        char v[64];
        size_t vl;
        assert_false(tget(&e, i, &seen[i], v, &vl));
        seen_ok[i] = true;
        assert_int_equal(validate1(&e, i, TSR_KV_TXN_ABSENT), TSR_OK);
        assert_int_equal(validate1(&e, i, 2), TSR_ERR_CONFLICT);
    }
    for (int round = 0; round < 60; round++) {
        int n = (int)(rnd() % 5) + (round == 0); /* 0..4 writes, 1..5 the first time */
        int keys[5];
        bool del[5];
        char vals[5][32];
        for (int j = 0; j < n; j++) {
            bool dup;
            do { /* one write per key, as a client's write set */
                keys[j] = (int)(rnd() % NKEYS);
                dup = false;
                for (int q = 0; q < j; q++)
                    dup |= keys[q] == keys[j];
            } while (dup);
            del[j] = rnd() % 3 == 0;
            snprintf(vals[j], sizeof(vals[j]), "v%d-%llu", round,
                     (unsigned long long)(rnd() % 1000));
        }
        tsr_wbuf_t in, out;
        apply_msg(&in, n, keys, del, vals);
        assert_int_equal(run(&e, TSR_KV_POP_TAPPLY, &in, in.len, &out), TSR_OK);
        tsr_wbuf_free(&in);
        tsr_wbuf_free(&out);
        for (int j = 0; j < n; j++) {
            int k = keys[j];
            /* a write invalidates the version read, except the delete of an
             * absent key (still absent) */
            if (!(del[j] && !present[k]))
                seen_ok[k] = false;
            present[k] = !del[j];
            if (!del[j])
                snprintf(model[k], sizeof(model[k]), "%s", vals[j]);
        }
        for (int i = 0; i < NKEYS; i++) {
            assert_int_equal(validate1(&e, i, seen[i]), seen_ok[i] ? TSR_OK : TSR_ERR_CONFLICT);
            uint64_t ver;
            char v[64];
            size_t vl;
            bool found = tget(&e, i, &ver, v, &vl);
            assert_int_equal(found, present[i]);
            if (found) {
                assert_int_equal(vl, strlen(model[i]));
                assert_memory_equal(v, model[i], vl);
            }
            seen[i] = ver;
            seen_ok[i] = true;
            assert_int_equal(validate1(&e, i, ver), TSR_OK);
        }
    }
    /* another worker: the same writes, other versions */
    env_t f;
    env_open(&f);
    int keys[NKEYS];
    bool del[NKEYS];
    char vals[NKEYS][32];
    int n = 0;
    for (int i = 0; i < NKEYS; i++)
        if (present[i]) {
            keys[n] = i;
            del[n] = false;
            snprintf(vals[n], sizeof(vals[n]), "%s", model[i]);
            n++;
        }
    tsr_wbuf_t in, out;
    apply_msg(&in, n, keys, del, vals);
    assert_int_equal(run(&f, TSR_KV_POP_TAPPLY, &in, in.len, &out), TSR_OK);
    tsr_wbuf_free(&in);
    tsr_wbuf_free(&out);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(validate1(&f, i, seen[i]),
                         present[i] ? TSR_ERR_CONFLICT : TSR_OK); /* absence is absence */
    env_close(&f);
    env_close(&e);
}

static void test_malformed(void **state)
{
    (void)state;
    env_t e;
    env_open(&e);
    int keys[2] = {1, 2};
    bool del[2] = {false, true};
    char vals[2][32] = {"one", ""};
    tsr_wbuf_t in, out;
    apply_msg(&in, 2, keys, del, vals);
    /* every truncation is refused and writes nothing */
    for (size_t len = 0; len < in.len; len++) {
        assert_int_equal(run(&e, TSR_KV_POP_TAPPLY, &in, len, &out), TSR_ERR_BAD_INPUT);
        tsr_wbuf_free(&out);
        uint64_t ver;
        char v[64];
        size_t vl;
        assert_false(tget(&e, 1, &ver, v, &vl));
    }
    /* a trailing byte */
    tsr_wbuf_u8(&in, 0);
    assert_int_equal(run(&e, TSR_KV_POP_TAPPLY, &in, in.len, &out), TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&in);
    /* a count past the payload */
    tsr_wbuf_init(&in, NULL);
    tsr_wbuf_u32(&in, 0xffffffffu);
    assert_int_equal(run(&e, TSR_KV_POP_TVALIDATE, &in, in.len, &out), TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    assert_int_equal(run(&e, TSR_KV_POP_TGET, &in, in.len, &out), TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    assert_int_equal(run(&e, TSR_KV_POP_PUT, &in, in.len, &out), TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&in);
    /* an empty apply and an empty validation are fine */
    tsr_wbuf_init(&in, NULL);
    tsr_wbuf_u32(&in, 0);
    assert_int_equal(run(&e, TSR_KV_POP_TVALIDATE, &in, in.len, &out), TSR_OK);
    tsr_wbuf_free(&out);
    assert_int_equal(run(&e, TSR_KV_POP_TAPPLY, &in, in.len, &out), TSR_OK);
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&in);
    assert_true(tsr_wkv_txn_pop(TSR_KV_POP_TGET) && tsr_wkv_txn_pop(TSR_KV_POP_TAPPLY) &&
                tsr_wkv_txn_pop(TSR_KV_POP_TVALIDATE) && !tsr_wkv_txn_pop(TSR_KV_POP_PUT) &&
                !tsr_wkv_txn_pop(TSR_KV_POP_DROP));
    env_close(&e);
}

/* Plain upsert of key i = val into the partition's table (creating it), as
 * worker_kv.c's PUT or a resync's LOAD writes: slot versions, not the
 * transaction clock. */
static void plain_put(env_t *e, int i, const char *val)
{
    tsr_kv_table_params_t tp = {.partitions = 1, .max_key = 64, .max_value = 256};
    tsr_kv_err_t ke = {0};
    tsr_status_t rc = tsr_kv_table_create(e->store, PART, &tp, &ke);
    assert_true(rc == TSR_OK || rc == TSR_ERR_EXISTS);
    tsr_kv_table_t *t = NULL;
    assert_int_equal(tsr_kv_table_open(e->store, PART, &t, &ke), TSR_OK);
    char k[16];
    key_of(i, k);
    assert_int_equal(tsr_kv_upsert(t, k, strlen(k), val, strlen(val), NULL, &ke), TSR_OK);
    tsr_kv_table_close(t);
}

/* A resync DROPs a stale copy and reloads the partition into a fresh table,
 * on the same worker (same epoch): a version read before must not validate
 * against the reloaded copy, whose slots count versions from the start
 * again (here the same slot version with another value). */
static void test_resync_reload(void **state)
{
    (void)state;
    env_t e;
    env_open(&e);
    plain_put(&e, 3, "before");
    uint64_t ver, ver2;
    char v[64];
    size_t vl;
    assert_true(tget(&e, 3, &ver, v, &vl));
    assert_int_equal(validate1(&e, 3, ver), TSR_OK);
    tsr_kv_err_t ke = {0};
    assert_int_equal(tsr_kv_table_drop(e.store, PART, &ke), TSR_OK);
    plain_put(&e, 3, "after!"); /* the reload: a fresh table, the first version again */
    assert_true(tget(&e, 3, &ver2, v, &vl));
    assert_int_equal(vl, 6);
    assert_memory_equal(v, "after!", 6);
    assert_int_equal(validate1(&e, 3, ver), TSR_ERR_CONFLICT);
    assert_int_equal(validate1(&e, 3, ver2), TSR_OK);
    /* dropped and never reloaded: every key is absent, a version read is gone */
    assert_int_equal(tsr_kv_table_drop(e.store, PART, &ke), TSR_OK);
    assert_int_equal(validate1(&e, 3, ver2), TSR_ERR_CONFLICT);
    assert_int_equal(validate1(&e, 3, TSR_KV_TXN_ABSENT), TSR_OK);
    assert_false(tget(&e, 3, &ver, v, &vl));
    env_close(&e);
}

static void test_routing(void **state)
{
    (void)state;
    static const uint32_t nparts[] = {1, 2, 7, 8, 1024};
    for (size_t t = 0; t < sizeof(nparts) / sizeof(nparts[0]); t++) {
        uint32_t n = nparts[t], hits[1024] = {0};
        for (int i = 0; i < 20000; i++) {
            char k[32];
            size_t kl = (size_t)snprintf(k, sizeof(k), "k%llu", (unsigned long long)rnd());
            if (kl >= sizeof(k)) /* never (at most 21 bytes); bounds it for GCC's -Warray-bounds */
                kl = sizeof(k) - 1;
            uint32_t p = tsr_sched_txn_part_of(k, kl, n);
            uint64_t h = tsr_hash_bytes(k, kl);
            assert_int_equal(p, (uint32_t)(((h >> 32) * n) >> 32));
            assert_true(p < n);
            hits[p]++;
        }
        if (n <= 8)
            for (uint32_t p = 0; p < n; p++)
                assert_true(hits[p] > 20000 / n / 2);
    }
    assert_int_equal(tsr_sched_txn_part_of("", 0, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_resync_reload),
        cmocka_unit_test(test_routing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
