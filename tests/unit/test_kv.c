/*
 * test_kv.c - engine/kv in memory: the public API (include/tessera/kv.h)
 * against a plain model.
 *
 * Random sequences of insert/update/upsert/delete/get (keys of 0..max bytes,
 * values of 0..max bytes) across partitions, with growth from the smallest
 * table and delete-heavy phases that leave many tombstones, checked step by
 * step against a chained map in this file; count and paged scans compared
 * with the model; batches (beyond 8192 pairs, duplicates inside a batch) in
 * the same way; size limits; the catalog; fenced writes; and reader threads
 * running during writes and rehashes, never seeing a torn value or missing
 * a key that is always present; scan cursors invalidated by a rehash; bad
 * input; allocation failures (tsr_mem fault injection) in a partition.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/kv.h"
#include "tessera/lock.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the model: a chained map of byte strings ---------------------------------- */

#define MB 1024
typedef struct ment {
    unsigned char *k, *v;
    size_t kl, vl;
    struct ment *next;
} ment_t;
typedef struct model {
    ment_t *b[MB];
    size_t n;
} model_t;

static size_t mhash(const void *k, size_t kl)
{
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < kl; i++)
        h = (h ^ ((const unsigned char *)k)[i]) * 1099511628211ull;
    return h % MB;
}
static ment_t *mfind(model_t *m, const void *k, size_t kl)
{
    for (ment_t *e = m->b[mhash(k, kl)]; e; e = e->next)
        if (e->kl == kl && memcmp(e->k, k, kl) == 0)
            return e;
    return NULL;
}
static void mput(model_t *m, const void *k, size_t kl, const void *v, size_t vl)
{
    ment_t *e = mfind(m, k, kl);
    if (!e) {
        e = calloc(1, sizeof(*e));
        e->k = malloc(kl + 1);
        memcpy(e->k, k, kl);
        e->kl = kl;
        size_t h = mhash(k, kl);
        e->next = m->b[h];
        m->b[h] = e;
        m->n++;
    }
    free(e->v);
    e->v = malloc(vl + 1);
    memcpy(e->v, v, vl);
    e->vl = vl;
}
static bool mdel(model_t *m, const void *k, size_t kl)
{
    ment_t **pp = &m->b[mhash(k, kl)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->kl == kl && memcmp((*pp)->k, k, kl) == 0) {
            ment_t *e = *pp;
            *pp = e->next;
            free(e->k);
            free(e->v);
            free(e);
            m->n--;
            return true;
        }
    return false;
}
static void mfree(model_t *m)
{
    for (size_t i = 0; i < MB; i++)
        while (m->b[i]) {
            ment_t *e = m->b[i];
            m->b[i] = e->next;
            free(e->k);
            free(e->v);
            free(e);
        }
    m->n = 0;
}

/* key id -> bytes: length id % (maxk+1), content derived from id (distinct
 * ids give distinct keys: the id is in the first bytes when they fit; ids
 * whose length is short are made unique by using the length as the id) */
static size_t make_key(uint64_t id, unsigned char *k, size_t maxk)
{
    size_t kl = 8 + id % (maxk - 7); /* 8..maxk */
    if (id == 0)
        return 0; /* the empty key */
    memcpy(k, &id, 8);
    for (size_t i = 8; i < kl; i++)
        k[i] = (unsigned char)(id * 31 + i);
    return kl;
}
static size_t make_val(unsigned char *v, size_t maxv)
{
    size_t vl = rnd() % (maxv + 1);
    for (size_t i = 0; i < vl; i++)
        v[i] = (unsigned char)rnd();
    return vl;
}

typedef struct scan_ctx {
    model_t *m;
    size_t seen;
    int bad;
} scan_ctx_t;
static void scan_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    scan_ctx_t *c = arg;
    ment_t *e = mfind(c->m, k, kl);
    if (!e || e->vl != vl || memcmp(e->v, v, vl) != 0)
        c->bad++;
    c->seen++;
}

static void check_all(tsr_kv_table_t *t, model_t *m, size_t page)
{
    uint64_t n = 0;
    assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
    assert_int_equal(n, m->n);
    scan_ctx_t c = {m, 0, 0};
    uint64_t cur = 0;
    int pages = 0;
    do {
        assert_int_equal(tsr_kv_scan(t, &cur, page, scan_cb, &c, NULL), TSR_OK);
        pages++;
    } while (cur != 0 && pages < 1000000);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.seen, m->n);
    /* every model key readable */
    unsigned char buf[512];
    for (size_t i = 0; i < MB; i++)
        for (ment_t *e = m->b[i]; e; e = e->next) {
            size_t vl = 0;
            assert_int_equal(tsr_kv_get(t, e->k, e->kl, buf, sizeof(buf), &vl, NULL), TSR_OK);
            assert_int_equal(vl, e->vl);
            assert_memory_equal(buf, e->v, vl);
        }
}

static tsr_kv_table_t *mk_table(tsr_kv_store_t *s, const char *name, uint32_t parts, uint32_t mk,
                                uint32_t mv)
{
    tsr_kv_table_params_t p = {.partitions = parts, .max_key = mk, .max_value = mv};
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_table_create(s, name, &p, &e), TSR_OK);
    tsr_kv_table_t *t = NULL;
    assert_int_equal(tsr_kv_table_open(s, name, &t, &e), TSR_OK);
    return t;
}

/* ---- tests ----------------------------------------------------------------------- */

static void run_random(uint32_t parts, size_t ops, size_t keyspace, int del_pct)
{
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    enum { MK = 24, MV = 40 };
    tsr_kv_table_t *t = mk_table(s, "t", parts, MK, MV);
    model_t m = {0};
    unsigned char k[MK], v[MV], buf[MV];
    for (size_t i = 0; i < ops; i++) {
        uint64_t id = rnd() % keyspace;
        size_t kl = make_key(id, k, MK);
        size_t vl = make_val(v, MV);
        ment_t *e = mfind(&m, k, kl);
        int op = (int)(rnd() % 100);
        tsr_status_t rc;
        if (op < del_pct) {
            rc = tsr_kv_delete(t, k, kl, NULL, NULL);
            assert_int_equal(rc, e ? TSR_OK : TSR_ERR_NOT_FOUND);
            mdel(&m, k, kl);
        } else if (op < del_pct + 20) {
            rc = tsr_kv_insert(t, k, kl, v, vl, NULL, NULL);
            assert_int_equal(rc, e ? TSR_ERR_EXISTS : TSR_OK);
            if (!e)
                mput(&m, k, kl, v, vl);
        } else if (op < del_pct + 35) {
            rc = tsr_kv_update(t, k, kl, v, vl, NULL, NULL);
            assert_int_equal(rc, e ? TSR_OK : TSR_ERR_NOT_FOUND);
            if (e)
                mput(&m, k, kl, v, vl);
        } else if (op < del_pct + 55) {
            assert_int_equal(tsr_kv_upsert(t, k, kl, v, vl, NULL, NULL), TSR_OK);
            mput(&m, k, kl, v, vl);
        } else {
            size_t gl = 0;
            rc = tsr_kv_get(t, k, kl, buf, sizeof(buf), &gl, NULL);
            assert_int_equal(rc, e ? TSR_OK : TSR_ERR_NOT_FOUND);
            if (e) {
                assert_int_equal(gl, e->vl);
                assert_memory_equal(buf, e->v, gl);
            }
        }
        if (i % 4999 == 0)
            check_all(t, &m, 1 + rnd() % 50);
    }
    check_all(t, &m, 7);
    mfree(&m);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

static void test_random_one_part(void **state)
{
    (void)state;
    run_random(1, 30000, 2000, 15);
}

static void test_random_parts(void **state)
{
    (void)state;
    run_random(3, 30000, 3000, 15);
}

static void test_delete_heavy(void **state)
{
    (void)state;
    /* deletes outnumber inserts: tombstones dominate, rehashes clean them */
    run_random(2, 40000, 500, 45);
}

static void test_batches(void **state)
{
    (void)state;
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    enum { MK = 16, MV = 16, N = 10007 };
    model_t m = {0};
    for (uint32_t parts = 1; parts <= 5; parts += 4) {
        char name[16];
        snprintf(name, sizeof(name), "b%u", parts);
        tsr_kv_table_t *t = mk_table(s, name, parts, MK, MV);
        unsigned char(*k)[MK] = malloc((size_t)N * MK);
        unsigned char(*v)[MV] = malloc((size_t)N * MV);
        tsr_kv_pair_t *pr = calloc(N, sizeof(*pr));
        tsr_status_t *res = calloc(N, sizeof(*res));
        size_t *vls = calloc(N, sizeof(*vls));
        unsigned char(*out)[MV] = malloc((size_t)N * MV);
        for (int round = 0; round < 6; round++) {
            size_t n = round == 0 ? N : 1 + rnd() % N;
            for (size_t i = 0; i < n; i++) {
                pr[i].klen = make_key(rnd() % 15000, k[i], MK);
                pr[i].key = k[i];
                pr[i].vlen = make_val(v[i], MV);
                pr[i].val = v[i];
            }
            int kind = round % 3;
            size_t nok = 0;
            if (kind == 0)
                assert_int_equal(tsr_kv_insert_batch(t, pr, n, NULL, res, &nok, NULL), TSR_OK);
            else if (kind == 1)
                assert_int_equal(tsr_kv_upsert_batch(t, pr, n, NULL, res, &nok, NULL), TSR_OK);
            else
                assert_int_equal(tsr_kv_delete_batch(t, pr, n, NULL, res, &nok, NULL), TSR_OK);
            size_t ok = 0;
            for (size_t i = 0; i < n; i++) {
                ment_t *e = mfind(&m, pr[i].key, pr[i].klen);
                if (kind == 0) {
                    assert_int_equal(res[i], e ? TSR_ERR_EXISTS : TSR_OK);
                    if (!e)
                        mput(&m, pr[i].key, pr[i].klen, pr[i].val, pr[i].vlen);
                } else if (kind == 1) {
                    assert_int_equal(res[i], TSR_OK);
                    mput(&m, pr[i].key, pr[i].klen, pr[i].val, pr[i].vlen);
                } else {
                    assert_int_equal(res[i], e ? TSR_OK : TSR_ERR_NOT_FOUND);
                    mdel(&m, pr[i].key, pr[i].klen);
                }
                ok += res[i] == TSR_OK;
            }
            assert_int_equal(ok, nok);
            /* batch get of the same keys */
            assert_int_equal(tsr_kv_get_batch(t, pr, n, out, MV, vls, res, &nok, NULL), TSR_OK);
            for (size_t i = 0; i < n; i++) {
                ment_t *e = mfind(&m, pr[i].key, pr[i].klen);
                assert_int_equal(res[i], e ? TSR_OK : TSR_ERR_NOT_FOUND);
                if (e) {
                    assert_int_equal(vls[i], e->vl);
                    assert_memory_equal(out[i], e->v, e->vl);
                }
            }
            check_all(t, &m, 4096);
        }
        /* an oversized key refuses the whole batch */
        unsigned char big[MK + 1] = {0};
        pr[0].key = big;
        pr[0].klen = MK + 1;
        tsr_kv_err_t e = {0};
        assert_int_equal(tsr_kv_upsert_batch(t, pr, 1, NULL, res, NULL, &e), TSR_ERR_INVALID_ARG);
        assert_non_null(strstr(e.message, "longer"));
        free(k);
        free(v);
        free(pr);
        free(res);
        free(vls);
        free(out);
        mfree(&m);
        tsr_kv_table_close(t);
    }
    tsr_kv_close(s);
}

static void test_sizes(void **state)
{
    (void)state;
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    /* max key 1, max value 1 */
    tsr_kv_table_t *t = mk_table(s, "tiny", 1, 1, 1);
    unsigned char buf[4];
    size_t vl = 9;
    assert_int_equal(tsr_kv_insert(t, "", 0, "", 0, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_get(t, "", 0, buf, 0, &vl, NULL), TSR_OK);
    assert_int_equal(vl, 0);
    assert_int_equal(tsr_kv_insert(t, "a", 1, "b", 1, NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_insert(t, "ab", 2, "b", 1, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_insert(t, "c", 1, "bb", 2, NULL, &e), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "value of 2 bytes"));
    for (int c = 0; c < 256; c++) { /* every 1-byte key: 257 keys in all */
        unsigned char kc = (unsigned char)c, vc = (unsigned char)(c ^ 0x5a);
        assert_int_equal(tsr_kv_upsert(t, &kc, 1, &vc, 1, NULL, NULL), TSR_OK);
    }
    uint64_t n;
    assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
    assert_int_equal(n, 257);
    for (int c = 0; c < 256; c++) {
        unsigned char kc = (unsigned char)c;
        assert_int_equal(tsr_kv_get(t, &kc, 1, buf, 1, &vl, NULL), TSR_OK);
        assert_int_equal(buf[0], c ^ 0x5a);
    }
    tsr_kv_table_close(t);
    /* large values: 1 MiB, exactly the max; a short buffer reports the length */
    enum { BIG = 1 << 20 };
    t = mk_table(s, "big", 2, 300, BIG);
    unsigned char *v = malloc(BIG), *out = malloc(BIG);
    unsigned char key[300];
    for (int i = 0; i < 12; i++) {
        memset(key, i, sizeof(key));
        for (size_t j = 0; j < BIG; j++)
            v[j] = (unsigned char)(j * 7 + (size_t)i);
        size_t len = i == 0 ? BIG : (size_t)(rnd() % BIG);
        assert_int_equal(tsr_kv_insert(t, key, 300, v, len, NULL, NULL), TSR_OK);
        assert_int_equal(tsr_kv_get(t, key, 300, out, BIG, &vl, NULL), TSR_OK);
        assert_int_equal(vl, len);
        assert_memory_equal(out, v, len);
        assert_int_equal(tsr_kv_get(t, key, 300, out, 3, &vl, NULL), TSR_OK);
        assert_int_equal(vl, len);
    }
    assert_int_equal(tsr_kv_insert(t, key, 300, v, BIG + 1, NULL, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_insert(t, key, 301, v, 1, NULL, NULL), TSR_ERR_INVALID_ARG);
    free(v);
    free(out);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

static void test_catalog(void **state)
{
    (void)state;
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_table_create(s, "b", NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_create(s, "a", NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_create(s, "b", NULL, &e), TSR_ERR_EXISTS);
    assert_non_null(strstr(e.message, "already exists"));
    assert_int_equal(tsr_kv_table_create(s, "", NULL, NULL), TSR_ERR_INVALID_ARG);
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[299] = '\0';
    assert_int_equal(tsr_kv_table_create(s, longname, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_table_params_t bad = {.max_value = TSR_KV_MAX_VALUE_LIMIT + 1};
    assert_int_equal(tsr_kv_table_create(s, "c", &bad, NULL), TSR_ERR_INVALID_ARG);
    char **names;
    size_t n;
    assert_int_equal(tsr_kv_table_list(s, &names, &n, NULL), TSR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_null(names[2]);
    tsr_kv_names_free(names);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "zz", &t, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_kv_table_open(s, "a", &t, NULL), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "v", 1, NULL, NULL), TSR_OK);
    tsr_kv_table_params_t info;
    tsr_kv_table_info(t, &info);
    assert_int_equal(info.partitions, 1);
    assert_int_equal(info.max_key, TSR_KV_DEFAULT_MAX_KEY);
    assert_int_equal(tsr_kv_table_drop(s, "a", NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_drop(s, "a", NULL), TSR_ERR_NOT_FOUND);
    char buf[4];
    size_t vl;
    assert_int_equal(tsr_kv_get(t, "k", 1, buf, 4, &vl, NULL), TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "v", 1, NULL, NULL), TSR_ERR_NOT_FOUND);
    tsr_kv_table_close(t);
    /* recreate with the same name: a fresh, empty table */
    assert_int_equal(tsr_kv_table_create(s, "a", NULL, NULL), TSR_OK);
    assert_int_equal(tsr_kv_table_open(s, "a", &t, NULL), TSR_OK);
    uint64_t cnt = 9;
    assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
    assert_int_equal(cnt, 0);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

static void test_fencing(void **state)
{
    (void)state;
    tsr_lock_fence_t *f = NULL;
    assert_int_equal(tsr_lock_fence_create(&f, NULL), TSR_OK);
    tsr_kv_options_t o = {.fence = f};
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(&o, &s, NULL), TSR_OK);
    tsr_kv_table_t *t = mk_table(s, "f", 1, 8, 8);
    tsr_kv_write_opts_t w5 = {"L", 5}, w3 = {"L", 3}, w7 = {"L", 7}, w0 = {"L", 0};
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "5", 1, &w5, NULL), TSR_OK);
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "3", 1, &w3, &e), TSR_ERR_STALE);
    assert_int_equal(e.status, TSR_ERR_STALE);
    assert_int_equal(tsr_kv_delete(t, "k", 1, &w3, NULL), TSR_ERR_STALE);
    tsr_kv_pair_t pr = {"k", 1, "b", 1};
    assert_int_equal(tsr_kv_upsert_batch(t, &pr, 1, &w3, NULL, NULL, NULL), TSR_ERR_STALE);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "0", 1, &w0, NULL), TSR_ERR_INVALID_ARG);
    char buf[8];
    size_t vl;
    assert_int_equal(tsr_kv_get(t, "k", 1, buf, 8, &vl, NULL), TSR_OK);
    assert_int_equal(buf[0], '5');
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "7", 1, &w7, NULL), TSR_OK);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "5", 1, &w5, NULL), TSR_ERR_STALE);
    assert_int_equal(tsr_kv_get(t, "k", 1, buf, 8, &vl, NULL), TSR_OK);
    assert_int_equal(buf[0], '7');
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    /* a store without a fence refuses fenced writes */
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    t = mk_table(s, "f", 1, 8, 8);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, "5", 1, &w5, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    tsr_lock_fence_destroy(f);
}

/* ---- readers during writes ------------------------------------------------------------ */

enum { CR_BASE = 200, CR_MV = 100 };
typedef struct cr_ctx {
    tsr_kv_table_t *t;
    atomic_bool stop;
    atomic_long reads, bad, missing;
} cr_ctx_t;

/* a value is whole when its length is 1 + (byte % CR_MV) and all bytes agree */
static void fill_val(unsigned char *v, size_t *vl, unsigned gen)
{
    unsigned char b = (unsigned char)gen;
    *vl = 1 + (size_t)(b % (CR_MV - 1));
    memset(v, b, *vl);
}

static void *cr_reader(void *arg)
{
    cr_ctx_t *c = arg;
    uint64_t x = (uint64_t)(uintptr_t)&x;
    unsigned char v[CR_MV];
    while (!atomic_load(&c->stop)) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t id = (uint32_t)(x >> 33) % CR_BASE;
        size_t vl = 0;
        tsr_status_t rc = tsr_kv_get(c->t, &id, sizeof(id), v, sizeof(v), &vl, NULL);
        atomic_fetch_add(&c->reads, 1);
        if (rc != TSR_OK) {
            atomic_fetch_add(&c->missing, 1);
            continue;
        }
        bool ok = vl == 1 + (size_t)(v[0] % (CR_MV - 1));
        for (size_t i = 1; ok && i < vl; i++)
            ok = v[i] == v[0];
        if (!ok)
            atomic_fetch_add(&c->bad, 1);
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    tsr_kv_table_t *t = mk_table(s, "c", 1, 8, CR_MV);
    unsigned char v[CR_MV];
    size_t vl;
    for (uint32_t id = 0; id < CR_BASE; id++) {
        fill_val(v, &vl, id);
        assert_int_equal(tsr_kv_insert(t, &id, sizeof(id), v, vl, NULL, NULL), TSR_OK);
    }
    cr_ctx_t c = {.t = t};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, cr_reader, &c), 0);
    /* the writer: rewrites the base keys and churns extra keys (inserted in
     * bulk to force rehashes, then deleted) for a bounded time */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned gen = 0;
    uint32_t extra = 1u << 20;
    double el = 0;
    while (el < 1.0) {
        for (uint32_t id = 0; id < CR_BASE; id++) {
            fill_val(v, &vl, gen++);
            assert_int_equal(tsr_kv_update(t, &id, sizeof(id), v, vl, NULL, NULL), TSR_OK);
        }
        uint32_t first = extra;
        for (int j = 0; j < 2000; j++, extra++) {
            fill_val(v, &vl, extra);
            assert_int_equal(tsr_kv_insert(t, &extra, sizeof(extra), v, vl, NULL, NULL), TSR_OK);
        }
        for (uint32_t id = first; id < extra; id++)
            assert_int_equal(tsr_kv_delete(t, &id, sizeof(id), NULL, NULL), TSR_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    print_message("readers: %ld reads, %ld torn, %ld missing; %u writes\n", atomic_load(&c.reads),
                  atomic_load(&c.bad), atomic_load(&c.missing), gen);
    assert_true(atomic_load(&c.reads) > 0);
    assert_int_equal(atomic_load(&c.bad), 0);
    assert_int_equal(atomic_load(&c.missing), 0);
    uint64_t n;
    assert_int_equal(tsr_kv_count(t, &n), TSR_OK);
    assert_int_equal(n, CR_BASE);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

static void count_cb(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    (*(size_t *)arg)++;
}

/* A rehash between pages invalidates the cursor; bad input is refused. */
static void test_scan_conflict_and_bad_input(void **state)
{
    (void)state;
    tsr_kv_store_t *s = NULL;
    assert_int_equal(tsr_kv_open(NULL, &s, NULL), TSR_OK);
    tsr_kv_table_t *t = mk_table(s, "s", 1, 8, 8);
    for (uint32_t k = 0; k < 6; k++)
        assert_int_equal(tsr_kv_insert(t, &k, 4, &k, 4, NULL, NULL), TSR_OK);
    uint64_t cur = 0;
    size_t seen = 0;
    assert_int_equal(tsr_kv_scan(t, &cur, 2, count_cb, &seen, NULL), TSR_OK);
    assert_int_equal(seen, 2);
    assert_true(cur != 0);
    for (uint32_t k = 100; k < 200; k++) /* grows the table: a new epoch */
        assert_int_equal(tsr_kv_insert(t, &k, 4, &k, 4, NULL, NULL), TSR_OK);
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_scan(t, &cur, 2, count_cb, &seen, &e), TSR_ERR_CONFLICT);
    assert_non_null(strstr(e.message, "start over"));
    cur = 0;
    seen = 0;
    do
        assert_int_equal(tsr_kv_scan(t, &cur, 1000, count_cb, &seen, NULL), TSR_OK);
    while (cur != 0);
    assert_int_equal(seen, 106);
    /* bad input */
    char buf[8];
    size_t vl;
    assert_int_equal(tsr_kv_scan(t, &cur, 0, count_cb, &seen, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_scan(t, NULL, 1, count_cb, &seen, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_get(NULL, "k", 1, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_get(t, "k", 1, buf, 8, NULL, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_get(t, NULL, 3, buf, 8, &vl, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_upsert(t, "k", 1, NULL, 3, NULL, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_insert(NULL, "k", 1, "v", 1, NULL, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_count(t, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_kv_open(NULL, NULL, NULL), TSR_ERR_INVALID_ARG);
    tsr_kv_options_t bad = {.data_dir = "/proc/no/such/dir"};
    tsr_kv_store_t *s2 = NULL;
    assert_int_equal(tsr_kv_open(&bad, &s2, &e), TSR_ERR_IO);
    assert_null(s2);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* Allocation failures (tsr_mem fault injection) in a partition: creating it,
 * and a rehash that cannot get its new region leaves the table as it was. */
static void test_part_alloc_failure(void **state)
{
    (void)state;
    tsr_mem_t mem;
    tsr_mem_init(&mem);
    kv_part_t p;
    tsr_error_t e;
    for (long n = 0; n < 2; n++) { /* the table struct, then its region */
        tsr_error_clear(&e);
        tsr_mem_fail_after(&mem, n);
        assert_int_equal(tsr_kv_part_init(&p, &mem, NULL, 8, 8, 0, &e), TSR_ERR_NOMEM);
    }
    tsr_mem_fail_after(&mem, -1);
    tsr_error_clear(&e);
    assert_int_equal(tsr_kv_part_init(&p, &mem, NULL, 8, 8, 0, &e), TSR_OK);
    uint64_t k = 0, v;
    size_t vl;
    tsr_status_t rc = TSR_OK;
    tsr_mem_fail_after(&mem, 0); /* the next allocation (the rehash's) fails */
    for (; k < 100 && rc == TSR_OK; k++)
        rc = tsr_kv_part_write(&p, KV_OP_INSERT, tsr_hash_bytes(&k, 8), &k, 8, &k, 8, NULL, NULL,
                               &e);
    assert_int_equal(rc, TSR_ERR_NOMEM);
    uint64_t kept = k - 1;
    assert_int_equal(tsr_kv_part_count(&p), kept);
    for (uint64_t i = 0; i < kept; i++) {
        assert_int_equal(tsr_kv_part_get(&p, tsr_hash_bytes(&i, 8), &i, 8, &v, 8, &vl), TSR_OK);
        assert_int_equal(v, i);
    }
    k = kept; /* the failed key was not inserted: retry it, now with memory */
    assert_int_equal(tsr_kv_part_get(&p, tsr_hash_bytes(&k, 8), &k, 8, &v, 8, &vl),
                     TSR_ERR_NOT_FOUND);
    for (; k < 1000; k++)
        assert_int_equal(tsr_kv_part_write(&p, KV_OP_INSERT, tsr_hash_bytes(&k, 8), &k, 8, &k, 8,
                                           NULL, NULL, NULL),
                         TSR_OK);
    assert_int_equal(tsr_kv_part_count(&p), 1000);
    tsr_kv_part_fini(&p);
}

/* The slot layout is what remote readers rely on. */
static void test_layout(void **state)
{
    (void)state;
    assert_int_equal(offsetof(kv_slot_t, check), 8);
    assert_int_equal(offsetof(kv_slot_t, hash), 16);
    assert_int_equal(offsetof(kv_slot_t, state), 24);
    assert_int_equal(offsetof(kv_slot_t, data), KV_SLOT_HDR);
    assert_int_equal(sizeof(kv_hdr_t), KV_HDR_SIZE);
    /* CRC-32C check value */
    assert_int_equal(tsr_kv_crc32c(0, "123456789", 9), 0xe3069283u);
}

/* Every non-empty slot's checksum verifies (what remote readers check),
 * also for slots a rehash moved whole, version and checksum included; small
 * slots are one cache line; versions never go down across a rehash. */
static void check_slots(const kv_part_t *p, uint64_t *nfull)
{
    const kv_tab_t *t = atomic_load(&p->tab);
    *nfull = 0;
    for (uint64_t i = 0; i < t->nslots; i++) {
        kv_slot_t *sl = kv_slot_at(t, i);
        uint64_t ver = atomic_load(&sl->ver);
        assert_int_equal(ver & (KV_VER_LOCKED | KV_VER_MOVED), 0);
        if (sl->state == KV_EMPTY)
            continue;
        assert_true(sl->vlen <= p->max_val && sl->klen <= p->max_key);
        assert_true(tsr_kv_slot_check(ver, sl, p->max_key) == sl->check);
        *nfull += sl->state == KV_FULL;
    }
}

static void test_slot_checks_across_rehash(void **state)
{
    (void)state;
    kv_part_t p;
    assert_int_equal(tsr_kv_part_init(&p, NULL, NULL, 8, 8, 0, NULL), TSR_OK);
    assert_int_equal(atomic_load(&p.tab)->slot_size, 64); /* 40 + 8 + 8 = 56 -> 64 */
    uint64_t n, first_ver = 0, k0 = 0;
    for (uint64_t k = 0; k < 3000; k++) {
        uint64_t v = k * 3;
        assert_int_equal(tsr_kv_part_write(&p, KV_OP_UPSERT, tsr_hash_bytes(&k, 8), &k, 8, &v,
                                           (uint32_t)(k % 9), NULL, NULL, NULL),
                         TSR_OK);
        if (k == 0) {
            uint64_t v2 = 7;
            assert_int_equal(tsr_kv_part_write(&p, KV_OP_UPDATE, tsr_hash_bytes(&k0, 8), &k0, 8,
                                               &v2, 8, NULL, NULL, NULL),
                             TSR_OK);
            const kv_tab_t *t = atomic_load(&p.tab);
            for (uint64_t i = 0; i < t->nslots; i++)
                if (kv_slot_at(t, i)->state == KV_FULL)
                    first_ver = atomic_load(&kv_slot_at(t, i)->ver);
        }
    }
    assert_true(atomic_load(&p.tab)->epoch > 3); /* grew from 16 slots */
    for (uint64_t k = 1; k < 3000; k += 3)
        assert_int_equal(tsr_kv_part_write(&p, KV_OP_DELETE, tsr_hash_bytes(&k, 8), &k, 8, NULL, 0,
                                           NULL, NULL, NULL),
                         TSR_OK);
    check_slots(&p, &n);
    assert_int_equal(n, 2000);
    /* key 0 moved through every rehash with its version (4: two writes) */
    assert_int_equal(first_ver, 4);
    const kv_tab_t *t = atomic_load(&p.tab);
    bool seen = false;
    for (uint64_t i = 0; i < t->nslots; i++) {
        kv_slot_t *sl = kv_slot_at(t, i);
        if (sl->state == KV_FULL && sl->klen == 8 && memcmp(sl->data, &k0, 8) == 0) {
            assert_int_equal(atomic_load(&sl->ver), 4);
            seen = true;
        }
    }
    assert_true(seen);
    assert_int_equal(tsr_kv_part_reserve(&p, 100000, NULL), TSR_OK); /* one more rehash */
    check_slots(&p, &n);
    assert_int_equal(n, 2000);
    for (uint64_t k = 0; k < 3000; k++) {
        uint64_t v = 0;
        size_t vl = 99;
        tsr_status_t rc = tsr_kv_part_get(&p, tsr_hash_bytes(&k, 8), &k, 8, &v, 8, &vl);
        if (k % 3 == 1) {
            assert_int_equal(rc, TSR_ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(rc, TSR_OK);
        if (k == 0) {
            assert_int_equal(vl, 8);
            assert_true(v == 7);
        } else {
            uint64_t want = k * 3;
            assert_int_equal(vl, k % 9);
            assert_memory_equal(&v, &want, vl);
        }
    }
    tsr_kv_part_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_slot_checks_across_rehash),
        cmocka_unit_test(test_random_one_part),
        cmocka_unit_test(test_random_parts),
        cmocka_unit_test(test_delete_heavy),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_scan_conflict_and_bad_input),
        cmocka_unit_test(test_part_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
