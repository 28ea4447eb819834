/*
 * test_join_device.c - device hash joins (device/hashjoin.h) on every backend
 * present, against a plain C model that joins by sorting the build side.
 *
 * Every case runs on the cpu backend and on the first OpenCL device (PoCL
 * where there is no GPU; skipped, never passed, where there is none). Output
 * arrays are poisoned before the pairs are written and then checked element
 * by element, plus one element past the end, which must still be poisoned.
 * Pairs must come grouped by probe row in ascending order; the build rows
 * within one probe row may come in any order, so both sides sort them.
 *
 * Cases: sizes 0, 1, primes, powers of two +-1; more probe rows than one
 * launch (by default and with tiny launches and windows); one key holding 90%
 * of the rows on both sides; NULL keys on either side (with key values under
 * the NULLs that equal real keys); keys whose hashes share their low bits
 * (long probe runs, absent keys ending in full clusters); int64 keys over the
 * whole range and uint32 codes; several probes of one table; bad arguments
 * and call orders; allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "device/hashjoin.h"

/* ---- input --------------------------------------------------------------------------- */

typedef struct side {
    size_t n;
    void *keys;      /* int64_t or uint32_t */
    uint64_t *valid; /* NULL: no NULLs */
} side_t;

typedef struct gen {
    size_t n;
    uint64_t range;    /* distinct key values */
    unsigned skew_pct; /* rows forced onto value 0 */
    unsigned null_pct;
} gen_t;

static uint64_t key_of(tsr_dev_join_key_t type, uint64_t v)
{
    /* int64: spread over the whole range (sign bit included); codes as is */
    return type == TSR_DEV_JOIN_KEY_I64 ? v * 0x9e3779b97f4a7c15ULL : v;
}

static void side_make(tsr_dev_join_key_t type, const gen_t *g, uint64_t *seed, side_t *s)
{
    s->n = g->n;
    s->keys = dev_xalloc(g->n * (size_t)type);
    s->valid = g->null_pct ? dev_validity(g->n, g->null_pct, seed) : NULL;
    for (size_t i = 0; i < g->n; i++) {
        bool hot = dev_rng_below(seed, 100) < g->skew_pct;
        uint64_t v = hot ? 0 : dev_rng_below(seed, g->range ? g->range : 1);
        if (!dev_bit(s->valid, i) && dev_rng(seed) % 2)
            v = dev_rng(seed); /* garbage under a NULL */
        uint64_t k = key_of(type, v);
        if (type == TSR_DEV_JOIN_KEY_I64)
            ((int64_t *)s->keys)[i] = (int64_t)k;
        else
            ((uint32_t *)s->keys)[i] = (uint32_t)k;
    }
}

static void side_free(side_t *s)
{
    free(s->keys);
    free(s->valid);
    memset(s, 0, sizeof(*s));
}

static tsr_dev_join_keys_t side_keys(const side_t *s)
{
    return (tsr_dev_join_keys_t){.n = s->n, .keys = s->keys, .valid = s->valid};
}

/* ---- the model ------------------------------------------------------------------------- */

typedef struct kr {
    uint64_t key;
    uint32_t row;
} kr_t;

static int kr_cmp(const void *pa, const void *pb)
{
    const kr_t *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

static int u32_cmp(const void *pa, const void *pb)
{
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    return a < b ? -1 : a > b;
}

typedef struct model {
    kr_t *build; /* non-NULL build rows by (key, row) */
    size_t nb;
} model_t;

static void model_build(tsr_dev_join_key_t type, const side_t *b, model_t *m)
{
    m->build = dev_xalloc(b->n * sizeof(kr_t));
    m->nb = 0;
    for (size_t i = 0; i < b->n; i++)
        if (dev_bit(b->valid, i))
            m->build[m->nb++] = (kr_t){tsr_dev_join_key_at(type, b->keys, i), (uint32_t)i};
    qsort(m->build, m->nb, sizeof(kr_t), kr_cmp);
}

/* The build rows matching key: m->build[*first, *first + count). */
static size_t model_range(const model_t *m, uint64_t key, size_t *first)
{
    size_t lo = 0, hi = m->nb;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->build[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    size_t e = lo;
    while (e < m->nb && m->build[e].key == key)
        e++;
    return e - lo;
}

/* Probes p against hj and checks the pairs against the model. */
static void check_probe(tsr_dev_hashjoin_t *hj, tsr_dev_join_key_t type, const model_t *m,
                        const side_t *p)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_join_keys_t pk = side_keys(p);
    size_t npairs = (size_t)-1;
    assert_int_equal(tsr_dev_hashjoin_probe(hj, NULL, &pk, &npairs, &err), TSR_OK);
    /* the model's matches of each probe row: m->build[first[j], +count[j]) */
    size_t *first = dev_xalloc(p->n * sizeof(size_t)), *count = dev_xalloc(p->n * sizeof(size_t));
    size_t want = 0;
    for (size_t j = 0; j < p->n; j++) {
        count[j] = dev_bit(p->valid, j)
                       ? model_range(m, tsr_dev_join_key_at(type, p->keys, j), &first[j])
                       : 0;
        want += count[j];
    }
    assert_int_equal(npairs, want);

    uint32_t *pr = dev_poisoned32(npairs), *br = dev_poisoned32(npairs);
    assert_int_equal(tsr_dev_hashjoin_pairs(hj, NULL, pr, br, &err), TSR_OK);
    assert_int_equal(pr[npairs], DEV_POISON32);
    assert_int_equal(br[npairs], DEV_POISON32);
    size_t at = 0;
    for (size_t j = 0; j < p->n; j++) {
        size_t c = count[j];
        if (c == 0)
            continue;
        assert_true(at + c <= npairs);
        for (size_t t = 0; t < c; t++)
            assert_int_equal(pr[at + t], j);
        if (c > 1)
            qsort(br + at, c, sizeof(uint32_t), u32_cmp);
        for (size_t t = 0; t < c; t++)
            assert_int_equal(br[at + t], m->build[first[j] + t].row);
        at += c;
    }
    assert_int_equal(at, npairs);
    free(first);
    free(count);
    free(pr);
    free(br);
}

typedef struct jcase {
    tsr_dev_join_key_t type;
    gen_t build, probe;
    size_t launch_rows, window_pairs;
    uint64_t seed;
} jcase_t;

static void run_case(void **state, const jcase_t *c)
{
    tsr_dev_t *dev = dev_test_dev(state);
    uint64_t seed = c->seed;
    side_t b, p;
    side_make(c->type, &c->build, &seed, &b);
    side_make(c->type, &c->probe, &seed, &p);
    model_t m;
    model_build(c->type, &b, &m);

    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_hashjoin_spec_t spec = {
        .key = c->type, .launch_rows = c->launch_rows, .window_pairs = c->window_pairs};
    tsr_dev_hashjoin_t *hj = NULL;
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);
    tsr_dev_join_keys_t bk = side_keys(&b);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &bk, &err), TSR_OK);
    /* distinct non-NULL build keys */
    size_t distinct = 0;
    for (size_t i = 0; i < m.nb; i++)
        distinct += i == 0 || m.build[i].key != m.build[i - 1].key;
    assert_int_equal(hj->ndistinct, distinct);
    check_probe(hj, c->type, &m, &p);

    tsr_dev_hashjoin_destroy(hj);
    free(m.build);
    side_free(&b);
    side_free(&p);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_sizes(void **state)
{
    static const size_t nb[] = {0, 1, 2, 61, 64, 65, 1009};
    static const size_t np[] = {0, 1, 3, 127, 1013};
    uint64_t seed = 1;
    for (int t = 0; t < 2; t++) {
        tsr_dev_join_key_t type = t ? TSR_DEV_JOIN_KEY_U32 : TSR_DEV_JOIN_KEY_I64;
        for (size_t i = 0; i < sizeof(nb) / sizeof(nb[0]); i++)
            for (size_t j = 0; j < sizeof(np) / sizeof(np[0]); j++) {
                jcase_t c = {
                    .type = type,
                    .build = {.n = nb[i], .range = nb[i] / 3 + 2, .null_pct = 10},
                    .probe = {.n = np[j], .range = nb[i] / 2 + 3, .null_pct = 10},
                    .seed = seed++,
                };
                run_case(state, &c);
            }
    }
}

/* Tiny launches and windows: many probe launches, many pair windows. */
static void test_multi_launch(void **state)
{
    for (int t = 0; t < 2; t++) {
        jcase_t c = {
            .type = t ? TSR_DEV_JOIN_KEY_U32 : TSR_DEV_JOIN_KEY_I64,
            .build = {.n = 3001, .range = 1000, .null_pct = 5},
            .probe = {.n = 10007, .range = 1500, .null_pct = 5},
            .launch_rows = 3 * 64 + 1, /* rounded up to 256 */
            .window_pairs = 997,
            .seed = 11 + (uint64_t)t,
        };
        run_case(state, &c);
    }
}

/* More probe rows than one default launch of the OpenCL backend (2^20). */
static void test_large(void **state)
{
    jcase_t c = {
        .type = TSR_DEV_JOIN_KEY_I64,
        .build = {.n = 100003, .range = 60000, .null_pct = 1},
        .probe = {.n = ((size_t)1 << 20) + 1031, .range = 120000, .null_pct = 1},
        .seed = 21,
    };
    run_case(state, &c);
}

/* 90% of both sides on one key: ~1.4M pairs from one key, across windows. */
static void test_skewed(void **state)
{
    jcase_t c = {
        .type = TSR_DEV_JOIN_KEY_I64,
        .build = {.n = 1009, .range = 300, .skew_pct = 90},
        .probe = {.n = 1601, .range = 600, .skew_pct = 90, .null_pct = 3},
        .window_pairs = 100000,
        .seed = 31,
    };
    run_case(state, &c);
}

static void test_nulls(void **state)
{
    /* all-NULL sides, and mostly NULL ones */
    static const unsigned pct[][2] = {{100, 0}, {0, 100}, {100, 100}, {90, 90}};
    for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
        jcase_t c = {
            .type = TSR_DEV_JOIN_KEY_I64,
            .build = {.n = 500, .range = 20, .null_pct = pct[i][0]},
            .probe = {.n = 700, .range = 20, .null_pct = pct[i][1]},
            .seed = 41 + i,
        };
        run_case(state, &c);
    }
    /* NULL rows whose key value is a real key must not match */
    tsr_dev_t *dev = dev_test_dev(state);
    int64_t bkeys[4] = {7, 7, 8, 9}, pkeys[4] = {7, 8, 9, 7};
    uint64_t bvalid = 0x5, pvalid = 0x6; /* build: rows 0, 2; probe: rows 1, 2 */
    tsr_dev_hashjoin_spec_t spec = {.key = TSR_DEV_JOIN_KEY_I64};
    tsr_dev_hashjoin_t *hj = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);
    tsr_dev_join_keys_t bk = {4, bkeys, &bvalid}, pk = {4, pkeys, &pvalid};
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &bk, &err), TSR_OK);
    size_t npairs = 0;
    assert_int_equal(tsr_dev_hashjoin_probe(hj, NULL, &pk, &npairs, &err), TSR_OK);
    assert_int_equal(npairs, 1); /* probe row 1 (8) = build row 2 (8) */
    uint32_t pr[2] = {DEV_POISON32, DEV_POISON32}, br[2] = {DEV_POISON32, DEV_POISON32};
    assert_int_equal(tsr_dev_hashjoin_pairs(hj, NULL, pr, br, &err), TSR_OK);
    assert_int_equal(pr[0], 1);
    assert_int_equal(br[0], 2);
    assert_int_equal(pr[1], DEV_POISON32);
    tsr_dev_hashjoin_destroy(hj);
}

/* tsr_hash_u64 is a bijection; its inverse builds keys with chosen hashes. */
static uint64_t inv_odd(uint64_t c)
{
    uint64_t x = c; /* Newton: each step doubles the correct low bits */
    for (int i = 0; i < 6; i++)
        x *= 2 - c * x;
    return x;
}

static uint64_t unmix(uint64_t y)
{
    y ^= y >> 33;
    y *= inv_odd(0xc4ceb9fe1a85ec53ULL);
    y ^= y >> 33;
    y *= inv_odd(0xff51afd7ed558ccdULL);
    y ^= y >> 33;
    return y;
}

/* Keys whose hashes agree in their low 40 bits all start at one slot: the
 * table is one long run, and absent keys walk all of it to the empty end. */
static void test_collisions(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    const size_t nkeys = 300, dup = 3;
    side_t b = {.n = nkeys * dup}, p = {.n = 2 * nkeys};
    b.keys = dev_xalloc(b.n * 8);
    p.keys = dev_xalloc(p.n * 8);
    for (size_t i = 0; i < b.n; i++)
        ((int64_t *)b.keys)[i] = (int64_t)unmix(0x1234567890ULL + ((uint64_t)(i % nkeys) << 40));
    for (size_t j = 0; j < p.n; j++) /* half present, half absent */
        ((int64_t *)p.keys)[j] = (int64_t)unmix(0x1234567890ULL + ((uint64_t)(j * 7 % p.n) << 40));
    assert_int_equal(tsr_hash_u64((uint64_t)((int64_t *)b.keys)[5]) & 0xffffffffffULL,
                     0x1234567890ULL);
    model_t m;
    model_build(TSR_DEV_JOIN_KEY_I64, &b, &m);
    tsr_dev_hashjoin_spec_t spec = {.key = TSR_DEV_JOIN_KEY_I64};
    tsr_dev_hashjoin_t *hj = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);
    tsr_dev_join_keys_t bk = side_keys(&b);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &bk, &err), TSR_OK);
    assert_int_equal(hj->ndistinct, nkeys);
    check_probe(hj, TSR_DEV_JOIN_KEY_I64, &m, &p);
    tsr_dev_hashjoin_destroy(hj);
    free(m.build);
    side_free(&b);
    side_free(&p);
}

/* Extreme values: 0, -1, INT64_MIN/MAX; codes near UINT32_MAX. */
static void test_extremes(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    for (int t = 0; t < 2; t++) {
        tsr_dev_join_key_t type = t ? TSR_DEV_JOIN_KEY_U32 : TSR_DEV_JOIN_KEY_I64;
        static const int64_t iv[] = {0, -1, INT64_MIN, INT64_MAX, 1, INT64_MIN + 1};
        static const uint32_t uv[] = {0, UINT32_MAX, UINT32_MAX - 1, 1, 0x80000000u, 2};
        size_t n = 6 * 5;
        side_t b = {.n = n}, p = {.n = n + 7};
        b.keys = dev_xalloc(n * (size_t)type);
        p.keys = dev_xalloc(p.n * (size_t)type);
        for (size_t i = 0; i < b.n; i++) {
            if (t)
                ((uint32_t *)b.keys)[i] = uv[i % 6];
            else
                ((int64_t *)b.keys)[i] = iv[i % 6];
        }
        for (size_t j = 0; j < p.n; j++) {
            if (t)
                ((uint32_t *)p.keys)[j] = j % 4 == 3 ? 12345u : uv[(j * 5) % 6];
            else
                ((int64_t *)p.keys)[j] = j % 4 == 3 ? 12345 : iv[(j * 5) % 6];
        }
        model_t m;
        model_build(type, &b, &m);
        tsr_dev_hashjoin_spec_t spec = {.key = type};
        tsr_dev_hashjoin_t *hj = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);
        tsr_dev_join_keys_t bk = side_keys(&b);
        assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &bk, &err), TSR_OK);
        assert_int_equal(hj->ndistinct, 6);
        check_probe(hj, type, &m, &p);
        tsr_dev_hashjoin_destroy(hj);
        free(m.build);
        side_free(&b);
        side_free(&p);
    }
}

/* One table, several probes (bigger, empty, smaller): each replaces the last. */
static void test_reprobe(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    uint64_t seed = 51;
    gen_t bg = {.n = 2003, .range = 700, .null_pct = 5};
    side_t b;
    side_make(TSR_DEV_JOIN_KEY_I64, &bg, &seed, &b);
    model_t m;
    model_build(TSR_DEV_JOIN_KEY_I64, &b, &m);
    tsr_dev_hashjoin_spec_t spec = {.key = TSR_DEV_JOIN_KEY_I64, .launch_rows = 1024};
    tsr_dev_hashjoin_t *hj = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);
    tsr_dev_join_keys_t bk = side_keys(&b);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &bk, &err), TSR_OK);
    static const size_t sizes[] = {5003, 0, 17, 4099, 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        gen_t pg = {.n = sizes[i], .range = 1000, .null_pct = 5};
        side_t p;
        side_make(TSR_DEV_JOIN_KEY_I64, &pg, &seed, &p);
        check_probe(hj, TSR_DEV_JOIN_KEY_I64, &m, &p);
        side_free(&p);
    }
    tsr_dev_hashjoin_destroy(hj);
    free(m.build);
    side_free(&b);
}

static void test_bad_args(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_hashjoin_t *hj = NULL;
    tsr_dev_hashjoin_spec_t spec = {.key = (tsr_dev_join_key_t)3};
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_ERR_INVALID_ARG);
    assert_null(hj);
    assert_int_equal(tsr_dev_hashjoin_create(dev, NULL, &hj, &err), TSR_ERR_INVALID_ARG);
    spec.key = TSR_DEV_JOIN_KEY_I64;
    assert_int_equal(tsr_dev_hashjoin_create(dev, &spec, &hj, &err), TSR_OK);

    int64_t keys[3] = {1, 2, 2};
    uint32_t out[4];
    size_t npairs = 0;
    tsr_dev_join_keys_t k = {3, keys, NULL}, nokeys = {3, NULL, NULL};
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashjoin_probe(hj, NULL, &k, &npairs, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "before build"));
    assert_int_equal(tsr_dev_hashjoin_pairs(hj, NULL, out, out, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &nokeys, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, NULL, &err), TSR_ERR_INVALID_ARG);
    tsr_dev_join_keys_t huge = {(size_t)UINT32_MAX, keys, NULL};
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &huge, &err), TSR_ERR_UNSUPPORTED);

    /* a queue of another device */
    dev_fixture_t *f = *state;
    tsr_dev_t *other = f->dev[f->which == TSR_DEVICE_CPU ? TSR_DEVICE_OPENCL : TSR_DEVICE_CPU];
    if (other) {
        assert_int_equal(tsr_dev_hashjoin_build(hj, other->queue, &k, &err), TSR_ERR_INVALID_ARG);
        assert_int_equal(tsr_dev_hashjoin_pairs(hj, other->queue, out, out, &err),
                         TSR_ERR_INVALID_ARG);
    }
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &k, &err), TSR_OK);
    assert_int_equal(tsr_dev_hashjoin_build(hj, NULL, &k, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashjoin_pairs(hj, NULL, out, out, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashjoin_probe(hj, NULL, &k, NULL, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashjoin_probe(hj, NULL, &k, &npairs, &err), TSR_OK);
    assert_int_equal(npairs, 5);
    assert_int_equal(tsr_dev_hashjoin_pairs(hj, NULL, NULL, out, &err), TSR_ERR_INVALID_ARG);
    tsr_dev_hashjoin_destroy(hj);
    tsr_dev_hashjoin_destroy(NULL);
}

/* Every host allocation of create/build/probe/pairs failing in turn. */
static void test_alloc_failures(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    uint64_t seed = 61;
    gen_t bg = {.n = 700, .range = 100, .null_pct = 5}, pg = {.n = 900, .range = 150};
    side_t b, p;
    side_make(TSR_DEV_JOIN_KEY_I64, &bg, &seed, &b);
    side_make(TSR_DEV_JOIN_KEY_I64, &pg, &seed, &p);
    model_t m;
    model_build(TSR_DEV_JOIN_KEY_I64, &b, &m);
    bool done = false;
    long failures = 0;
    for (long n = 0; !done && n < 200; n++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_dev_t *mdev = dev_test_reopen(dev, &mem);
        tsr_mem_fail_after(&mem, n);
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_dev_hashjoin_spec_t spec = {.key = TSR_DEV_JOIN_KEY_I64, .launch_rows = 256};
        tsr_dev_hashjoin_t *hj = NULL;
        tsr_dev_join_keys_t bk = side_keys(&b), pk = side_keys(&p);
        size_t npairs = 0;
        tsr_status_t rc = tsr_dev_hashjoin_create(mdev, &spec, &hj, &err);
        if (rc == TSR_OK)
            rc = tsr_dev_hashjoin_build(hj, NULL, &bk, &err);
        if (rc == TSR_OK)
            rc = tsr_dev_hashjoin_probe(hj, NULL, &pk, &npairs, &err);
        if (rc == TSR_OK) {
            uint32_t *pr = dev_poisoned32(npairs), *br = dev_poisoned32(npairs);
            rc = tsr_dev_hashjoin_pairs(hj, NULL, pr, br, &err);
            free(pr);
            free(br);
        }
        if (rc == TSR_OK) {
            done = true;
            tsr_mem_fail_after(&mem, -1);
            check_probe(hj, TSR_DEV_JOIN_KEY_I64, &m, &p); /* still usable */
        } else {
            assert_int_equal(rc, TSR_ERR_NOMEM);
            assert_true(err.message[0] != '\0');
        }
        failures += atomic_load(&mem.failures);
        tsr_dev_hashjoin_destroy(hj);
        tsr_mem_fail_after(&mem, -1);
        tsr_dev_close(mdev);
    }
    assert_true(done);
    assert_true(failures > 3);
    free(m.build);
    side_free(&b);
    side_free(&p);
}

DEV_TEST_BOTH(test_sizes)
DEV_TEST_BOTH(test_multi_launch)
DEV_TEST_ON(test_large, _cl, TSR_DEVICE_OPENCL)
DEV_TEST_BOTH(test_skewed)
DEV_TEST_BOTH(test_nulls)
DEV_TEST_BOTH(test_collisions)
DEV_TEST_BOTH(test_extremes)
DEV_TEST_BOTH(test_reprobe)
DEV_TEST_BOTH(test_bad_args)
DEV_TEST_BOTH(test_alloc_failures)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DEV_TESTS(test_sizes),           DEV_TESTS(test_multi_launch),
        cmocka_unit_test(test_large_cl), DEV_TESTS(test_skewed),
        DEV_TESTS(test_nulls),           DEV_TESTS(test_collisions),
        DEV_TESTS(test_extremes),        DEV_TESTS(test_reprobe),
        DEV_TESTS(test_bad_args),        DEV_TESTS(test_alloc_failures),
    };
    return dev_test_exit(cmocka_run_group_tests(tests, dev_test_setup, dev_test_teardown));
}
