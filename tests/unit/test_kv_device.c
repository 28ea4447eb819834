/*
 * test_kv_device.c - kv batches as device kernels (engine/kv/part_device.c,
 * kernels/opencl/kv.cl) on PoCL's OpenCL device: skipped without one.
 *
 * - random sequences of insert/update/upsert/delete/get batches (duplicates
 *   inside a batch, deletes leaving tombstones that later inserts reuse,
 *   growth from the smallest table, sizes 0, 1, primes and > 8192, keys of 0
 *   and of max bytes, values of 0 bytes) run on a device store and on a CPU
 *   store side by side: per-pair results equal each other and a plain model,
 *   counts equal, and full scans equal the model;
 * - the kernel's check words (its XXH3 port) equal tsr_kv_slot_check for
 *   slot bodies on every XXH3 code path;
 * - a key locked by a transaction answers CONFLICT on both paths;
 * - readers during device batches (and CPU writes): local gets, device batch
 *   gets and raw slot copies accepted by the one-sided readers' rule (even
 *   version, matching check word) never see a torn value;
 * - WAL recovery after device batches gives the model's contents;
 * - the threshold: groups below min_batch stay on the CPU; the env override.
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
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "kv_internal.h"
#include "tessera/kv.h"

#define MAXK 32u
#define MAXV 48u
#define NKEYS 3000u

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Key i: empty for 0, else its index (4 bytes) and filler up to a length of
 * 4..MAXK (every 5th one MAXK). */
static size_t key_of(uint32_t i, unsigned char *k)
{
    if (i == 0)
        return 0;
    size_t len = i % 5 == 0 ? MAXK : 4 + (i * 7919u) % (MAXK - 3);
    memcpy(k, &i, 4);
    for (size_t b = 4; b < len; b++)
        k[b] = (unsigned char)(i * 31 + b);
    return len;
}
static uint32_t index_of(const void *k, size_t len)
{
    uint32_t i = 0;
    if (len >= 4)
        memcpy(&i, k, 4);
    return i;
}

typedef struct model {
    bool present[NKEYS];
    size_t vlen[NKEYS];
    unsigned char val[NKEYS][MAXV];
} model_t;

static bool have_device(void)
{
    tsr_kv_options_t o = {.device = "opencl"};
    tsr_kv_store_t *s = NULL;
    if (tsr_kv_open(&o, &s, NULL) != TSR_OK)
        return false;
    tsr_kv_device_stats_t ds;
    tsr_kv_device_stats(s, &ds);
    tsr_kv_close(s);
    return ds.active;
}

static tsr_kv_table_t *open_table(tsr_kv_store_t *s, uint32_t parts)
{
    tsr_kv_table_params_t tp = {.partitions = parts, .max_key = MAXK, .max_value = MAXV};
    tsr_kv_err_t e = {0};
    assert_int_equal(tsr_kv_table_create(s, "t", &tp, &e), TSR_OK);
    tsr_kv_table_t *t;
    assert_int_equal(tsr_kv_table_open(s, "t", &t, &e), TSR_OK);
    return t;
}

static tsr_kv_store_t *open_store(const char *device, uint32_t min_batch, const char *dir)
{
    tsr_kv_options_t o = {.device = device,
                          .device_min_batch = min_batch,
                          .data_dir = dir,
                          .sync = TSR_KV_SYNC_WRITE};
    tsr_kv_store_t *s = NULL;
    tsr_kv_err_t e = {0};
    tsr_status_t rc = tsr_kv_open(&o, &s, &e);
    if (rc != TSR_OK)
        fail_msg("open: %s", e.message);
    return s;
}

/* The model's outcome of one batch, pair by pair (the CPU path's rules). */
static void model_batch(model_t *m, kv_op_t op, const uint32_t *ix, const tsr_kv_pair_t *pairs,
                        size_t n, tsr_status_t *res)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t k = ix[i];
        tsr_status_t r = TSR_OK;
        if (op == KV_OP_INSERT && m->present[k])
            r = TSR_ERR_EXISTS;
        else if ((op == KV_OP_UPDATE || op == KV_OP_DELETE) && !m->present[k])
            r = TSR_ERR_NOT_FOUND;
        res[i] = r;
        if (r != TSR_OK)
            continue;
        if (op == KV_OP_DELETE) {
            m->present[k] = false;
        } else {
            m->present[k] = true;
            m->vlen[k] = pairs[i].vlen;
            if (pairs[i].vlen)
                memcpy(m->val[k], pairs[i].val, pairs[i].vlen);
        }
    }
}

static tsr_status_t run_batch(tsr_kv_table_t *t, kv_op_t op, const tsr_kv_pair_t *p, size_t n,
                              tsr_status_t *res)
{
    size_t nok;
    tsr_kv_err_t e = {0};
    tsr_status_t rc;
    switch (op) {
    case KV_OP_INSERT:
        rc = tsr_kv_insert_batch(t, p, n, NULL, res, &nok, &e);
        break;
    case KV_OP_UPSERT:
        rc = tsr_kv_upsert_batch(t, p, n, NULL, res, &nok, &e);
        break;
    case KV_OP_DELETE:
        rc = tsr_kv_delete_batch(t, p, n, NULL, res, &nok, &e);
        break;
    default: /* updates have no batch call: an update is an upsert of present keys */
        rc = TSR_ERR_INVALID_ARG;
        break;
    }
    if (rc != TSR_OK)
        fail_msg("batch: %s", e.message);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += res[i] == TSR_OK;
    assert_int_equal(ok, nok);
    return rc;
}

typedef struct scan_ctx {
    const model_t *m;
    size_t n, bad;
} scan_ctx_t;

static void scan_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    scan_ctx_t *c = arg;
    unsigned char kk[MAXK];
    uint32_t i = index_of(key, klen);
    c->n++;
    if (i >= NKEYS || key_of(i, kk) != klen || memcmp(kk, key, klen) != 0 || !c->m->present[i] ||
        c->m->vlen[i] != vlen || (vlen && memcmp(c->m->val[i], val, vlen) != 0))
        c->bad++;
}

static void check_contents(tsr_kv_table_t *t, const model_t *m)
{
    size_t want = 0;
    for (uint32_t i = 0; i < NKEYS; i++)
        want += m->present[i];
    uint64_t cnt;
    assert_int_equal(tsr_kv_count(t, &cnt), TSR_OK);
    assert_int_equal(cnt, want);
    scan_ctx_t c = {m, 0, 0};
    uint64_t cur = 0;
    do {
        assert_int_equal(tsr_kv_scan(t, &cur, 100000, scan_fn, &c, NULL), TSR_OK);
    } while (cur != 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.n, want);
}

typedef struct batch_buf {
    uint32_t ix[9000];
    tsr_kv_pair_t p[9000];
    unsigned char k[9000][MAXK];
    unsigned char v[9000][MAXV];
    tsr_status_t r_dev[9000], r_cpu[9000], r_model[9000];
    size_t vl_dev[9000], vl_cpu[9000];
    unsigned char g_dev[9000][MAXV], g_cpu[9000][MAXV];
} batch_buf_t;

static const size_t SIZES[] = {0, 1, 2, 3, 7, 13, 97, 1021, 4099, 8209};

/* Random batches on a device and a CPU store against the model. */
static void random_sequence(uint32_t parts, size_t rounds, const char *dir, model_t *m)
{
    tsr_kv_store_t *sd = open_store("opencl", 1, dir), *sc = open_store(NULL, 0, NULL);
    tsr_kv_table_t *td = open_table(sd, parts), *tc = open_table(sc, parts);
    batch_buf_t *b = calloc(1, sizeof(*b));
    memset(m, 0, sizeof(*m));
    /* the same batches whatever ran before: a test with reader threads
     * draws a varying count of numbers, and a sequence that happened to
     * hold no large get batch failed the device-get count below */
    rng_state = 0x2545f4914f6cdd1dull ^ ((uint64_t)parts << 32 | rounds);
    for (size_t r = 0; r < rounds; r++) {
        size_t n = SIZES[rnd() % (sizeof(SIZES) / sizeof(SIZES[0]))];
        /* a narrow key range makes duplicates inside the batch */
        uint32_t range = rnd() % 3 == 0 ? 50 : NKEYS;
        kv_op_t op;
        unsigned pick = (unsigned)(rnd() % 10);
        op = pick < 4   ? KV_OP_INSERT
             : pick < 6 ? KV_OP_UPSERT
             : pick < 8 ? KV_OP_DELETE
                        : KV_OP_UPDATE;
        bool get = rnd() % 4 == 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t k = (uint32_t)(rnd() % range);
            b->ix[i] = k;
            b->p[i].key = b->k[i];
            b->p[i].klen = key_of(k, b->k[i]);
            size_t vl = rnd() % 4 == 0 ? 0 : rnd() % (MAXV + 1);
            for (size_t j = 0; j < vl; j++)
                b->v[i][j] = (unsigned char)rnd();
            b->p[i].val = b->v[i];
            b->p[i].vlen = vl;
        }
        if (get) {
            size_t nd, nc;
            assert_int_equal(
                tsr_kv_get_batch(td, b->p, n, b->g_dev, MAXV, b->vl_dev, b->r_dev, &nd, NULL),
                TSR_OK);
            assert_int_equal(
                tsr_kv_get_batch(tc, b->p, n, b->g_cpu, MAXV, b->vl_cpu, b->r_cpu, &nc, NULL),
                TSR_OK);
            assert_int_equal(nd, nc);
            for (size_t i = 0; i < n; i++) {
                uint32_t k = b->ix[i];
                assert_int_equal(b->r_dev[i], m->present[k] ? TSR_OK : TSR_ERR_NOT_FOUND);
                assert_int_equal(b->r_cpu[i], b->r_dev[i]);
                if (m->present[k]) {
                    assert_int_equal(b->vl_dev[i], m->vlen[k]);
                    assert_int_equal(b->vl_cpu[i], m->vlen[k]);
                    if (m->vlen[k]) {
                        assert_memory_equal(b->g_dev[i], m->val[k], m->vlen[k]);
                        assert_memory_equal(b->g_cpu[i], m->val[k], m->vlen[k]);
                    }
                } else {
                    assert_int_equal(b->vl_dev[i], 0);
                }
            }
            continue;
        }
        if (op == KV_OP_UPDATE) {
            /* no update batch in the API: single updates on the CPU store,
             * the same pairs as one device upsert of present keys only */
            size_t w = 0;
            for (size_t i = 0; i < n; i++)
                if (m->present[b->ix[i]]) {
                    b->ix[w] = b->ix[i];
                    b->p[w] = b->p[i];
                    w++;
                }
            n = w;
            op = KV_OP_UPSERT;
        }
        model_batch(m, op, b->ix, b->p, n, b->r_model);
        run_batch(td, op, b->p, n, b->r_dev);
        run_batch(tc, op, b->p, n, b->r_cpu);
        for (size_t i = 0; i < n; i++) {
            if (b->r_dev[i] != b->r_model[i] || b->r_cpu[i] != b->r_model[i])
                fail_msg("round %zu op %d pair %zu of %zu: device %d cpu %d model %d", r, (int)op,
                         i, n, (int)b->r_dev[i], (int)b->r_cpu[i], (int)b->r_model[i]);
        }
        if (r % 8 == 7 || r + 1 == rounds) {
            check_contents(td, m);
            check_contents(tc, m);
        }
    }
    tsr_kv_device_stats_t ds;
    tsr_kv_device_stats(sd, &ds);
    assert_true(ds.active);
    assert_true(ds.pairs > 0);
    assert_true(ds.get_pairs > 0);
    assert_int_equal(ds.fallbacks, 0);
    free(b);
    tsr_kv_table_close(td);
    tsr_kv_table_close(tc);
    tsr_kv_close(sd);
    tsr_kv_close(sc);
}

static void test_random_one_part(void **state)
{
    (void)state;
    model_t *m = malloc(sizeof(*m));
    random_sequence(1, 70, NULL, m);
    free(m);
}

static void test_random_three_parts(void **state)
{
    (void)state;
    model_t *m = malloc(sizeof(*m));
    random_sequence(3, 50, NULL, m);
    free(m);
}

/* Deletes leave tombstones; re-inserting the same keys reuses them, and the
 * counters stay right (a full table would otherwise grow). */
static void test_tombstone_reuse(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store("opencl", 1, NULL);
    tsr_kv_table_t *t = open_table(s, 1);
    batch_buf_t *b = calloc(1, sizeof(*b));
    for (uint32_t i = 0; i < 1000; i++) {
        b->p[i].key = b->k[i];
        b->p[i].klen = key_of(i + 1, b->k[i]);
        b->p[i].val = b->v[i];
        b->p[i].vlen = 8;
        memset(b->v[i], (int)i, 8);
    }
    run_batch(t, KV_OP_INSERT, b->p, 1000, b->r_dev);
    kv_tab_t *tab = atomic_load(&t->parts[0].tab);
    uint64_t nslots = tab->nslots;
    for (int round = 0; round < 5; round++) {
        run_batch(t, KV_OP_DELETE, b->p, 1000, b->r_dev);
        tab = atomic_load(&t->parts[0].tab);
        assert_int_equal(tab->used, 0);
        assert_int_equal(tab->tombs, 1000);
        run_batch(t, KV_OP_INSERT, b->p, 1000, b->r_dev);
        for (size_t i = 0; i < 1000; i++)
            assert_int_equal(b->r_dev[i], TSR_OK);
        tab = atomic_load(&t->parts[0].tab);
        /* tombstones reused (no growth), the counters as the slots say */
        assert_int_equal(tab->used, 1000);
        assert_true(tab->tombs < 1000);
        assert_int_equal(tab->nslots, nslots);
        uint64_t full = 0, tombs = 0;
        for (uint64_t i = 0; i < tab->nslots; i++) {
            kv_slot_t *sl = kv_slot_at(tab, i);
            full += sl->state == KV_FULL;
            tombs += sl->state == KV_TOMB;
            assert_int_equal(atomic_load(&sl->ver) & KV_VER_LOCKED, 0);
        }
        assert_int_equal(full, tab->used);
        assert_int_equal(tombs, tab->tombs);
    }
    free(b);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* A key a transaction holds locked: CONFLICT on both paths, the others go. */
static void test_txn_locked_conflict(void **state)
{
    (void)state;
    tsr_kv_store_t *sd = open_store("opencl", 1, NULL), *sc = open_store(NULL, 0, NULL);
    tsr_kv_table_t *td = open_table(sd, 1), *tc = open_table(sc, 1);
    batch_buf_t *b = calloc(1, sizeof(*b));
    for (uint32_t i = 0; i < 64; i++) {
        b->p[i].key = b->k[i];
        b->p[i].klen = key_of(i + 1, b->k[i]);
        b->p[i].val = b->v[i];
        b->p[i].vlen = 4;
    }
    run_batch(td, KV_OP_INSERT, b->p, 64, b->r_dev);
    run_batch(tc, KV_OP_INSERT, b->p, 64, b->r_cpu);
    tsr_kv_table_t *tabs[2] = {td, tc};
    kv_txn_key_t lk[2];
    for (int j = 0; j < 2; j++) {
        lk[j] = (kv_txn_key_t){tabs[j], tsr_hash_bytes(b->k[5], b->p[5].klen), b->k[5],
                               (uint32_t)b->p[5].klen};
        bool reserved;
        assert_int_equal(tsr_kv_txn_lock(&lk[j], 0, &reserved, NULL), TSR_OK);
    }
    kv_op_t ops[3] = {KV_OP_UPSERT, KV_OP_INSERT, KV_OP_DELETE};
    for (int o = 0; o < 3; o++) {
        run_batch(td, ops[o], b->p, 64, b->r_dev);
        run_batch(tc, ops[o], b->p, 64, b->r_cpu);
        assert_int_equal(b->r_dev[5], TSR_ERR_CONFLICT);
        for (size_t i = 0; i < 64; i++)
            assert_int_equal(b->r_dev[i], b->r_cpu[i]);
    }
    for (int j = 0; j < 2; j++)
        tsr_kv_txn_unlock(&lk[j]);
    free(b);
    tsr_kv_table_close(td);
    tsr_kv_table_close(tc);
    tsr_kv_close(sd);
    tsr_kv_close(sc);
}

/* The check words the kernel writes (its XXH3 port) equal the host's
 * tsr_kv_slot_check, over slot bodies of every XXH3 code path: 17..128,
 * 129..240 and longer bytes (several 1 KiB blocks), tombstones included. */
static void test_check_words(void **state)
{
    (void)state;
    static const uint32_t cfg[][2] = {{1, 1}, {8, 8}, {32, 200}, {16, 3000}};
    enum { N = 600 };
    unsigned char *vals = malloc((size_t)N * 3000);
    tsr_kv_pair_t *pr = calloc(N, sizeof(*pr));
    uint32_t *keys = calloc(N, sizeof(*keys));
    tsr_status_t *res = calloc(N, sizeof(*res));
    for (size_t c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
        tsr_kv_store_t *s = open_store("opencl", 1, NULL);
        tsr_kv_table_params_t tp = {.partitions = 1, .max_key = cfg[c][0], .max_value = cfg[c][1]};
        assert_int_equal(tsr_kv_table_create(s, "w", &tp, NULL), TSR_OK);
        tsr_kv_table_t *t;
        assert_int_equal(tsr_kv_table_open(s, "w", &t, NULL), TSR_OK);
        for (int round = 0; round < 3; round++) {
            for (uint32_t i = 0; i < N; i++) {
                keys[i] = i * 2654435761u;
                pr[i].key = &keys[i];
                pr[i].klen = cfg[c][0] < 4 ? cfg[c][0] : 4;
                if (cfg[c][0] < 4) /* 1-byte keys: 256 distinct at most */
                    keys[i] = i & 0xff;
                pr[i].vlen = rnd() % (cfg[c][1] + 1);
                pr[i].val = vals + (size_t)i * 3000;
                for (size_t b = 0; b < pr[i].vlen; b++)
                    vals[(size_t)i * 3000 + b] = (unsigned char)rnd();
            }
            run_batch(t, KV_OP_UPSERT, pr, N, res);
            run_batch(t, KV_OP_DELETE, pr, N / 3, res);
            kv_tab_t *tab = atomic_load(&t->parts[0].tab);
            size_t checked = 0;
            for (uint64_t i = 0; i < tab->nslots; i++) {
                kv_slot_t *sl = kv_slot_at(tab, i);
                if (sl->state == KV_EMPTY)
                    continue;
                uint64_t v = atomic_load(&sl->ver);
                assert_int_equal(v & 1, 0);
                if (tsr_kv_slot_check(v, sl, cfg[c][0]) != sl->check)
                    fail_msg("max_key %u max_val %u: slot %llu (vlen %u): check word differs",
                             cfg[c][0], cfg[c][1], (unsigned long long)i, sl->vlen);
                checked++;
            }
            assert_true(checked > 0);
        }
        tsr_kv_device_stats_t ds;
        tsr_kv_device_stats(s, &ds);
        assert_true(ds.pairs >= 3 * (N + N / 3));
        tsr_kv_table_close(t);
        tsr_kv_close(s);
    }
    free(vals);
    free(pr);
    free(keys);
    free(res);
}

/* ---- readers during device batches ---------------------------------------------------- */

#define RKEYS 2000u

/* A whole value of key i: length 8 + g % 33, every byte (i + g) & 0xff. */
static size_t make_val(uint32_t i, uint32_t g, unsigned char *v)
{
    size_t len = 8 + g % 33;
    memset(v, (int)((i + g) & 0xff), len);
    return len;
}
static bool whole(uint32_t i, const unsigned char *v, size_t len)
{
    (void)i;
    if (len < 8 || len > 40)
        return false;
    for (size_t b = 1; b < len; b++)
        if (v[b] != v[0])
            return false;
    return true;
}

#define PRIV 100u /* keys only the CPU writer writes: RKEYS+1 .. RKEYS+PRIV */

typedef struct rctx {
    tsr_kv_table_t *t;
    atomic_bool stop;
    atomic_ulong torn, reads, accepted;
    uint32_t last[PRIV]; /* the generation of each private key's last write (0: none) */
} rctx_t;

/* Local lock-free gets. */
static void *local_reader(void *arg)
{
    rctx_t *c = arg;
    unsigned char k[MAXK], v[MAXV];
    uint32_t i = 1;
    while (!atomic_load(&c->stop)) {
        i = i % RKEYS + 1;
        size_t kl = key_of(i, k), vl = 0;
        tsr_status_t rc = tsr_kv_get(c->t, k, kl, v, sizeof(v), &vl, NULL);
        if (rc != TSR_OK || !whole(i, v, vl))
            atomic_fetch_add(&c->torn, 1);
        atomic_fetch_add(&c->reads, 1);
    }
    return NULL;
}

/* The one-sided readers' rule on raw copies of the region (remote.c: bytes
 * of an RMA get come in no order): a copy counts only with an even version
 * and a matching check word. An accepted torn value fails the test. */
static void *raw_reader(void *arg)
{
    rctx_t *c = arg;
    kv_part_t *p = &c->t->parts[0];
    unsigned char *copy = malloc(4096);
    while (!atomic_load(&c->stop)) {
        atomic_ulong *cnt = tsr_kv_part_enter(p);
        kv_tab_t *t = atomic_load(&p->tab);
        for (uint64_t s = 0; s < t->nslots && !atomic_load(&c->stop); s++) {
            const unsigned char *src = (const unsigned char *)kv_slot_at(t, s);
            /* bytes in no particular order: the body first, the version last */
            memcpy(copy + 8, src + 8, t->slot_size - 8);
            atomic_thread_fence(memory_order_acquire);
            uint64_t v =
                atomic_load_explicit(&((kv_slot_t *)(void *)src)->ver, memory_order_relaxed);
            memcpy(copy, &v, 8);
            kv_slot_t *cs = (kv_slot_t *)(void *)copy;
            if ((v & (KV_VER_LOCKED | KV_VER_MOVED)) || cs->state != KV_FULL || cs->vlen > MAXV)
                continue;
            if (tsr_kv_slot_check(v, cs, MAXK) != cs->check)
                continue; /* torn: a remote reader re-reads */
            atomic_fetch_add(&c->accepted, 1);
            if (!whole(index_of(cs->data, cs->klen), cs->data + MAXK, cs->vlen))
                atomic_fetch_add(&c->torn, 1);
        }
        tsr_kv_part_leave(cnt);
        atomic_fetch_add(&c->reads, 1);
    }
    free(copy);
    return NULL;
}

/* CPU single upserts racing the device batches: of the batches' keys, and
 * of private keys in the same partition whose last writes must survive the
 * interleaved batches (no lost update, no slot of theirs claimed twice). */
static void *cpu_writer(void *arg)
{
    rctx_t *c = arg;
    unsigned char k[MAXK], v[MAXV];
    uint32_t g = 7;
    for (uint32_t it = 0; !atomic_load(&c->stop); it++) {
        uint32_t i = (uint32_t)(rnd() % RKEYS) + 1;
        size_t kl = key_of(i, k), vl = make_val(i, g++, v);
        if (tsr_kv_upsert(c->t, k, kl, v, vl, NULL, NULL) != TSR_OK)
            atomic_fetch_add(&c->torn, 1);
        uint32_t j = it % PRIV;
        kl = key_of(RKEYS + 1 + j, k);
        vl = make_val(RKEYS + 1 + j, g, v);
        if (tsr_kv_upsert(c->t, k, kl, v, vl, NULL, NULL) != TSR_OK)
            atomic_fetch_add(&c->torn, 1);
        c->last[j] = g++;
        usleep(50);
    }
    return NULL;
}

static void test_readers_never_torn(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store("opencl", 1, NULL);
    tsr_kv_table_t *t = open_table(s, 1);
    batch_buf_t *b = calloc(1, sizeof(*b));
    for (uint32_t i = 0; i < RKEYS; i++) {
        b->p[i].key = b->k[i];
        b->p[i].klen = key_of(i + 1, b->k[i]);
        b->p[i].val = b->v[i];
        b->p[i].vlen = make_val(i + 1, 0, b->v[i]);
    }
    run_batch(t, KV_OP_INSERT, b->p, RKEYS, b->r_dev);
    rctx_t c = {.t = t};
    pthread_t th[3];
    assert_int_equal(pthread_create(&th[0], NULL, local_reader, &c), 0);
    assert_int_equal(pthread_create(&th[1], NULL, raw_reader, &c), 0);
    assert_int_equal(pthread_create(&th[2], NULL, cpu_writer, &c), 0);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint32_t g = 1000;
    size_t batches = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        /* at least a second and 10 batches; bounded at 20 s on a loaded box */
        if ((el > 1.0 && batches >= 10 && atomic_load(&c.accepted) > 0) || el > 20.0)
            break;
        for (uint32_t i = 0; i < RKEYS; i++)
            b->p[i].vlen = make_val(i + 1, g, b->v[i]);
        g++;
        run_batch(t, KV_OP_UPSERT, b->p, RKEYS, b->r_dev);
        for (uint32_t i = 0; i < RKEYS; i++)
            assert_int_equal(b->r_dev[i], TSR_OK);
        /* a device batch get while the CPU writer runs */
        size_t nok;
        assert_int_equal(
            tsr_kv_get_batch(t, b->p, RKEYS, b->g_dev, MAXV, b->vl_dev, b->r_dev, &nok, NULL),
            TSR_OK);
        assert_int_equal(nok, RKEYS);
        for (uint32_t i = 0; i < RKEYS; i++)
            if (!whole(i + 1, b->g_dev[i], b->vl_dev[i]))
                fail_msg("device get of key %u: torn value", i + 1);
        batches++;
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&c.torn), 0);
    size_t kept = 0;
    for (uint32_t j = 0; j < PRIV; j++) {
        if (!c.last[j])
            continue;
        unsigned char k[MAXK], v[MAXV], want[MAXV];
        size_t kl = key_of(RKEYS + 1 + j, k), vl = 0;
        size_t wl = make_val(RKEYS + 1 + j, c.last[j], want);
        assert_int_equal(tsr_kv_get(t, k, kl, v, sizeof(v), &vl, NULL), TSR_OK);
        assert_int_equal(vl, wl);
        assert_memory_equal(v, want, wl);
        kept++;
    }
    assert_true(kept > 0);
    assert_true(atomic_load(&c.reads) > 0);
    assert_true(atomic_load(&c.accepted) > 0);
    tsr_kv_device_stats_t ds;
    tsr_kv_device_stats(s, &ds);
    assert_true(ds.batches >= 10);
    free(b);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
}

/* ---- recovery and the threshold ---------------------------------------------------------- */

static void test_wal_recovery(void **state)
{
    (void)state;
    char dir[] = "/tmp/tsr_kv_device_XXXXXX";
    assert_non_null(mkdtemp(dir));
    model_t *m = malloc(sizeof(*m));
    random_sequence(2, 24, dir, m);
    for (int dev = 0; dev < 2; dev++) {
        tsr_kv_store_t *s = open_store(dev ? "opencl" : NULL, 1, dir);
        tsr_kv_table_t *t;
        assert_int_equal(tsr_kv_table_open(s, "t", &t, NULL), TSR_OK);
        check_contents(t, m);
        tsr_kv_table_close(t);
        tsr_kv_close(s);
    }
    free(m);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_threshold(void **state)
{
    (void)state;
    tsr_kv_store_t *s = open_store("opencl", 100, NULL);
    tsr_kv_table_t *t = open_table(s, 1);
    batch_buf_t *b = calloc(1, sizeof(*b));
    for (uint32_t i = 0; i < 300; i++) {
        b->p[i].key = b->k[i];
        b->p[i].klen = key_of(i + 1, b->k[i]);
        b->p[i].val = b->v[i];
        b->p[i].vlen = 3;
    }
    tsr_kv_device_stats_t ds;
    run_batch(t, KV_OP_INSERT, b->p, 99, b->r_dev);
    tsr_kv_device_stats(s, &ds);
    assert_int_equal(ds.min_batch, 100);
    assert_int_equal(ds.pairs, 0); /* below the threshold: CPU */
    run_batch(t, KV_OP_INSERT, b->p + 99, 100, b->r_dev);
    tsr_kv_device_stats(s, &ds);
    assert_int_equal(ds.pairs, 100);
    size_t nok;
    assert_int_equal(tsr_kv_get_batch(t, b->p, 50, b->g_dev, MAXV, b->vl_dev, NULL, &nok, NULL),
                     TSR_OK);
    assert_int_equal(nok, 50);
    tsr_kv_device_stats(s, &ds);
    assert_int_equal(ds.get_pairs, 0);
    assert_int_equal(tsr_kv_get_batch(t, b->p, 250, b->g_dev, MAXV, b->vl_dev, NULL, &nok, NULL),
                     TSR_OK);
    assert_int_equal(nok, 199);
    tsr_kv_device_stats(s, &ds);
    assert_int_equal(ds.get_pairs, 250);
    free(b);
    tsr_kv_table_close(t);
    tsr_kv_close(s);

    /* the env override; a CPU store and "cpu" have no device */
    setenv("TSR_KV_DEVICE_MIN_BATCH", "7", 1);
    s = open_store("opencl0", 0, NULL);
    tsr_kv_device_stats(s, &ds);
    assert_int_equal(ds.min_batch, 7);
    tsr_kv_close(s);
    unsetenv("TSR_KV_DEVICE_MIN_BATCH");
    s = open_store("cpu", 0, NULL);
    tsr_kv_device_stats(s, &ds);
    assert_false(ds.active);
    assert_int_equal(ds.device[0], '\0');
    tsr_kv_close(s);
    tsr_kv_options_t o = {.device = "cuda7"};
    tsr_kv_err_t e = {0};
    assert_int_not_equal(tsr_kv_open(&o, &s, &e), TSR_OK);
}

static int group_setup(void **state)
{
    (void)state;
    if (!have_device()) {
        print_message("no OpenCL device: kv device tests skipped\n");
        return 0;
    }
    return 0;
}

#define DEV_TEST(fn)                                                                               \
    static void fn##_run(void **state)                                                             \
    {                                                                                              \
        if (!have_device())                                                                        \
            skip();                                                                                \
        fn(state);                                                                                 \
    }

DEV_TEST(test_random_one_part)
DEV_TEST(test_random_three_parts)
DEV_TEST(test_tombstone_reuse)
DEV_TEST(test_check_words)
DEV_TEST(test_txn_locked_conflict)
DEV_TEST(test_readers_never_torn)
DEV_TEST(test_wal_recovery)
DEV_TEST(test_threshold)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_one_part_run),
        cmocka_unit_test(test_random_three_parts_run),
        cmocka_unit_test(test_tombstone_reuse_run),
        cmocka_unit_test(test_check_words_run),
        cmocka_unit_test(test_txn_locked_conflict_run),
        cmocka_unit_test(test_readers_never_torn_run),
        cmocka_unit_test(test_wal_recovery_run),
        cmocka_unit_test(test_threshold_run),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
