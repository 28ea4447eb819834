/*
 * hashagg_model.h - the differential cases of device hash aggregation
 * (device/hashagg.h), shared by test_hashagg_device.c (cpu, OpenCL) and
 * test_cuda.c (CUDA, and the CUDA emulator): input generators, a plain C
 * model that groups by sorting, the run-and-compare driver, and the cases.
 *
 * A case runs on one device (hm_ctx_t: the device, the update strategy, and
 * another device for the "queue of another device" check). Output arrays are
 * poisoned before the result is read and then checked element by element
 * (and one element past the end, which must still be poisoned). Groups come
 * back in an unspecified order, so both sides are sorted by key.
 *
 * Cases: sizes 0, 1, primes, more than one launch of the device backends;
 * skewed keys; more groups than the initial table (resize and retry paths);
 * composite keys with NULLs; NULL values and all-NULL groups; SUM(BIGINT)
 * overflow (and a sum that overflows on the way but ends in range, which
 * must not fail); no key columns; NaN ordering of MIN/MAX; hash collisions;
 * bad arguments; allocation failures. The group hashes are checked against
 * the CPU executor's hash table (exec/hashtable.h), the cross-device contract.
 *
 * Include after <cmocka.h> (and its prerequisites). Everything is static.
 */
#ifndef TSR_TESTS_HASHAGG_MODEL_H
#define TSR_TESTS_HASHAGG_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/hashagg.h"
#include "exec/hashtable.h"

typedef struct hm_ctx hm_ctx_t;

/* Feeds one batch of rows to ha (the cases' data arrives in host memory;
 * a backend may test another way in, e.g. rows already on its device). */
typedef tsr_status_t (*hm_update_fn)(const hm_ctx_t *c, tsr_dev_hashagg_t *ha,
                                     const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err);

/* What a case runs on. */
struct hm_ctx {
    tsr_dev_t *dev;                      /* the device under test */
    tsr_dev_t *other;                    /* another open device, or NULL */
    tsr_dev_hashagg_strategy_t strategy; /* the update strategy */
    size_t large_rows;                   /* rows of the "large" case (past a launch or chunk) */
    hm_update_fn update;                 /* NULL: tsr_dev_hashagg_update(ha, NULL, ...) */
    void *arg;                           /* for update */
};

#define MAXK TSR_DEV_HASHAGG_MAX_KEYS
#define MAXA TSR_DEV_HASHAGG_MAX_AGGS
#define POISON 0xa5a5a5a5a5a5a5a5ULL

typedef __int128 i128;

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* ---- input data ------------------------------------------------------------------ */

typedef struct data {
    size_t n;
    tsr_dev_hashagg_spec_t spec;
    uint64_t *keys[MAXK];
    uint64_t *key_valid[MAXK]; /* NULL: no NULLs */
    uint64_t *vals[MAXA];      /* int64 or double bits */
    uint64_t *valid[MAXA];
} data_t;

static inline void data_free(data_t *d)
{
    for (size_t k = 0; k < MAXK; k++) {
        free(d->keys[k]);
        free(d->key_valid[k]);
    }
    for (size_t a = 0; a < MAXA; a++) {
        free(d->vals[a]);
        free(d->valid[a]);
    }
    memset(d, 0, sizeof(*d));
}

static inline uint64_t *alloc_words(size_t n)
{
    uint64_t *p = calloc(n ? n : 1, sizeof(uint64_t));
    assert_non_null(p);
    return p;
}

static inline bool bit(const uint64_t *bm, size_t i)
{
    return !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
}

static inline void set_bit(uint64_t *bm, size_t i, bool v)
{
    if (v)
        bm[i >> 6] |= (uint64_t)1 << (i & 63);
    else
        bm[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* A bitmap with each bit NULL (clear) with probability null_pct/100. */
static inline uint64_t *make_validity(size_t n, unsigned null_pct, uint64_t *seed)
{
    uint64_t *bm = alloc_words((n + 63) / 64);
    for (size_t i = 0; i < n; i++)
        set_bit(bm, i, rng_below(seed, 100) >= null_pct);
    /* bits past n are garbage a kernel must not trust */
    for (size_t i = n; i < (n + 63) / 64 * 64; i++)
        set_bit(bm, i, rng_next(seed) & 1);
    return bm;
}

/* The standard mix of aggregates over columns of both types. */
static inline void spec_all_aggs(tsr_dev_hashagg_spec_t *s)
{
    static const tsr_dev_agg_spec_t aggs[] = {
        {TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64}, {TSR_DEV_AGG_COUNT, TSR_TYPE_INT64},
        {TSR_DEV_AGG_SUM, TSR_TYPE_INT64},        {TSR_DEV_AGG_MIN, TSR_TYPE_INT64},
        {TSR_DEV_AGG_MAX, TSR_TYPE_INT64},        {TSR_DEV_AGG_SUM, TSR_TYPE_DOUBLE},
        {TSR_DEV_AGG_MIN, TSR_TYPE_DOUBLE},       {TSR_DEV_AGG_MAX, TSR_TYPE_DOUBLE},
        {TSR_DEV_AGG_COUNT, TSR_TYPE_DOUBLE},
    };
    s->naggs = sizeof(aggs) / sizeof(aggs[0]);
    memcpy(s->aggs, aggs, sizeof(aggs));
}

typedef struct gen {
    size_t n;
    size_t nkeys;
    uint64_t key_range; /* distinct values per key column */
    unsigned skew_pct;  /* rows forced onto key 0 */
    unsigned key_null_pct;
    unsigned val_null_pct;
    bool nan;     /* some double values are NaN */
    size_t naggs; /* the first naggs of spec_all_aggs; 0: all */
    uint64_t seed;
} gen_t;

static inline void data_make(const gen_t *g, data_t *d)
{
    memset(d, 0, sizeof(*d));
    uint64_t s = g->seed;
    d->n = g->n;
    d->spec.nkeys = g->nkeys;
    spec_all_aggs(&d->spec);
    if (g->naggs && g->naggs < d->spec.naggs)
        d->spec.naggs = g->naggs;
    for (size_t k = 0; k < g->nkeys; k++) {
        d->keys[k] = alloc_words(g->n);
        for (size_t i = 0; i < g->n; i++) {
            bool hot = rng_below(&s, 100) < g->skew_pct;
            /* spread keys over the whole 64-bit range (sign bit included) */
            uint64_t v = hot ? 0 : rng_below(&s, g->key_range);
            d->keys[k][i] = v * 0x9e3779b97f4a7c15ULL;
        }
        if (g->key_null_pct)
            d->key_valid[k] = make_validity(g->n, g->key_null_pct, &s);
    }
    for (size_t a = 0; a < d->spec.naggs; a++) {
        d->vals[a] = alloc_words(g->n);
        bool dbl = d->spec.aggs[a].type == TSR_TYPE_DOUBLE;
        for (size_t i = 0; i < g->n; i++) {
            if (dbl) {
                double x = (double)((int64_t)rng_below(&s, 2000001) - 1000000) / 64.0;
                if (g->nan && rng_below(&s, 100) == 0)
                    x = NAN;
                memcpy(&d->vals[a][i], &x, 8);
            } else {
                d->vals[a][i] = (uint64_t)((int64_t)rng_below(&s, 2000001) - 1000000);
            }
        }
        if (g->val_null_pct && d->spec.aggs[a].kind != TSR_DEV_AGG_COUNT_STAR)
            d->valid[a] = make_validity(g->n, g->val_null_pct, &s);
        if (d->spec.aggs[a].kind == TSR_DEV_AGG_COUNT_STAR) {
            free(d->vals[a]);
            d->vals[a] = NULL;
        }
    }
}

/* ---- groups (model and device both end up as these) ------------------------------ */

typedef struct group {
    uint64_t key[MAXK];
    unsigned vmask;
    uint64_t hash;
    int64_t count[MAXA];
    uint64_t value[MAXA]; /* int64 or double bits; 0 when count is 0 */
    i128 wide[MAXA];      /* model: exact SUM(INT64) */
    double sumabs[MAXA];  /* model: sum of |x|, for the rounding tolerance */
} group_t;

static size_t g_nkeys; /* for qsort's comparator */

static inline int group_cmp(const void *pa, const void *pb)
{
    const group_t *a = pa, *b = pb;
    for (size_t k = 0; k < g_nkeys; k++) {
        unsigned va = (a->vmask >> k) & 1u, vb = (b->vmask >> k) & 1u;
        if (va != vb)
            return va < vb ? -1 : 1;
        if (va && a->key[k] != b->key[k])
            return a->key[k] < b->key[k] ? -1 : 1;
    }
    return 0;
}

static inline double as_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static inline uint64_t as_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* A row's key for sorting (group_t is too big to sort a million of). */
typedef struct mrow {
    uint64_t key[MAXK];
    unsigned vmask;
    size_t row;
} mrow_t;

static inline int mrow_cmp(const void *pa, const void *pb)
{
    const mrow_t *a = pa, *b = pb;
    for (size_t k = 0; k < g_nkeys; k++) {
        unsigned va = (a->vmask >> k) & 1u, vb = (b->vmask >> k) & 1u;
        if (va != vb)
            return va < vb ? -1 : 1;
        if (va && a->key[k] != b->key[k])
            return a->key[k] < b->key[k] ? -1 : 1;
    }
    return 0;
}

/* The model: sort the rows by key, then fold each run. *overflow: some
 * SUM(INT64) does not fit 64 bits. */
static inline group_t *model_groups(const data_t *d, size_t *ngroups, bool *overflow)
{
    size_t n = d->n, nk = d->spec.nkeys;
    mrow_t *rows = calloc(n ? n : 1, sizeof(mrow_t));
    assert_non_null(rows);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nk; k++) {
            bool v = bit(d->key_valid[k], i);
            rows[i].vmask |= (unsigned)v << k;
            rows[i].key[k] = v ? d->keys[k][i] : 0;
        }
        rows[i].row = i;
    }
    g_nkeys = nk;
    qsort(rows, n, sizeof(mrow_t), mrow_cmp);
    size_t ndistinct = n ? 1 : 0;
    for (size_t i = 1; i < n; i++)
        ndistinct += mrow_cmp(&rows[i - 1], &rows[i]) != 0;

    group_t *out = calloc(ndistinct ? ndistinct : 1, sizeof(group_t));
    assert_non_null(out);
    size_t ng = 0;
    *overflow = false;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && mrow_cmp(&rows[i], &rows[j]) == 0)
            j++;
        group_t *g = &out[ng++];
        memcpy(g->key, rows[i].key, sizeof(g->key));
        g->vmask = rows[i].vmask;
        g->hash = tsr_dev_hashagg_hash(nk, g->key, g->vmask);
        for (size_t a = 0; a < d->spec.naggs; a++) {
            tsr_dev_agg_kind_t kind = d->spec.aggs[a].kind;
            bool dbl = d->spec.aggs[a].type == TSR_TYPE_DOUBLE;
            int64_t cnt = 0, mi = INT64_MAX, ma = INT64_MIN;
            i128 sum = 0;
            double sd = 0, sabs = 0, md = NAN, xd = -INFINITY;
            for (size_t r = i; r < j; r++) {
                size_t row = rows[r].row;
                if (kind == TSR_DEV_AGG_COUNT_STAR) {
                    cnt++;
                    continue;
                }
                if (!bit(d->valid[a], row))
                    continue;
                cnt++;
                uint64_t v = d->vals[a][row];
                if (dbl) {
                    double x = as_double(v);
                    sd += x;
                    sabs += fabs(x);
                    if (x < md || isnan(md))
                        md = x;
                    if (x > xd || isnan(x))
                        xd = x;
                } else {
                    int64_t x = (int64_t)v;
                    sum += x;
                    mi = x < mi ? x : mi;
                    ma = x > ma ? x : ma;
                }
            }
            g->count[a] = cnt;
            g->sumabs[a] = sabs;
            g->wide[a] = sum;
            uint64_t val = 0;
            if (cnt && kind == TSR_DEV_AGG_SUM) {
                if (dbl) {
                    val = as_bits(sd);
                } else {
                    if (sum > INT64_MAX || sum < INT64_MIN)
                        *overflow = true;
                    val = (uint64_t)(int64_t)sum;
                }
            } else if (cnt && kind == TSR_DEV_AGG_MIN) {
                val = dbl ? as_bits(md) : (uint64_t)mi;
            } else if (cnt && kind == TSR_DEV_AGG_MAX) {
                val = dbl ? as_bits(xd) : (uint64_t)ma;
            }
            g->value[a] = val;
        }
        i = j;
    }
    free(rows);
    *ngroups = ng;
    return out;
}

/* ---- running a case on a device ------------------------------------------------------ */

typedef struct outbufs {
    tsr_dev_hashagg_out_t out;
    size_t cap; /* elements allocated: ngroups + 1 (the last one must stay poisoned) */
} outbufs_t;

static inline uint64_t *poisoned(size_t n)
{
    uint64_t *p = malloc(n * sizeof(uint64_t));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = POISON;
    return p;
}

static inline void outbufs_make(outbufs_t *o, const tsr_dev_hashagg_spec_t *spec, size_t ngroups)
{
    memset(o, 0, sizeof(*o));
    o->cap = ngroups + 1;
    for (size_t k = 0; k < spec->nkeys; k++) {
        o->out.keys[k] = poisoned(o->cap);
        o->out.key_valid[k] = poisoned((ngroups + 63) / 64 + 1);
    }
    o->out.hashes = poisoned(o->cap);
    for (size_t a = 0; a < spec->naggs; a++) {
        o->out.counts[a] = (int64_t *)poisoned(o->cap);
        if (spec->aggs[a].kind != TSR_DEV_AGG_COUNT_STAR && spec->aggs[a].kind != TSR_DEV_AGG_COUNT)
            o->out.values[a] = poisoned(o->cap);
    }
}

static inline void outbufs_free(outbufs_t *o)
{
    for (size_t k = 0; k < MAXK; k++) {
        free(o->out.keys[k]);
        free(o->out.key_valid[k]);
    }
    free(o->out.hashes);
    for (size_t a = 0; a < MAXA; a++) {
        free(o->out.counts[a]);
        free(o->out.values[a]);
    }
}

static inline void check_value(const data_t *d, size_t a, const group_t *want, const group_t *got)
{
    tsr_dev_agg_kind_t kind = d->spec.aggs[a].kind;
    assert_int_equal(got->count[a], want->count[a]);
    if (kind == TSR_DEV_AGG_COUNT || kind == TSR_DEV_AGG_COUNT_STAR)
        return;
    bool dbl = d->spec.aggs[a].type == TSR_TYPE_DOUBLE;
    if (!dbl || want->count[a] == 0) {
        assert_int_equal(got->value[a], want->value[a]);
        return;
    }
    double w = as_double(want->value[a]), g = as_double(got->value[a]);
    if (isnan(w)) {
        assert_true(isnan(g));
    } else if (kind == TSR_DEV_AGG_SUM) {
        /* another summation order: within rounding of the magnitudes added */
        double tol = 1e-12 * want->sumabs[a] + 1e-300;
        if (fabs(w - g) > tol)
            fail_msg("SUM %zu: want %.17g got %.17g (tol %g)", a, w, g, tol);
    } else {
        assert_int_equal(got->value[a], want->value[a]);
    }
}

/* Runs d on c->dev in `parts` update calls (split at multiples of 64 rows)
 * and checks the result against the model. Returns the result's status
 * (TSR_ERR_OVERFLOW is checked to agree with the model). */
static inline tsr_status_t hm_run_case(const hm_ctx_t *c, const data_t *d, size_t parts)
{
    tsr_dev_t *dev = c->dev;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_hashagg_t *ha = NULL;
    tsr_dev_hashagg_spec_t spec = d->spec;
    spec.strategy = c->strategy;
    tsr_status_t rc = tsr_dev_hashagg_create(dev, &spec, &ha, &err);
    if (rc != TSR_OK)
        fail_msg("create on %s: %s", dev->info.name, err.message);
    size_t step = parts > 1 ? (d->n / parts + 63) / 64 * 64 : d->n;
    if (step == 0)
        step = 64;
    for (size_t start = 0; start < d->n || (d->n == 0 && start == 0); start += step) {
        tsr_dev_hashagg_rows_t rows;
        memset(&rows, 0, sizeof(rows));
        rows.n = d->n - start < step ? d->n - start : step;
        for (size_t k = 0; k < d->spec.nkeys; k++) {
            rows.keys[k] = d->keys[k] + start;
            rows.key_valid[k] = d->key_valid[k] ? d->key_valid[k] + start / 64 : NULL;
        }
        for (size_t a = 0; a < d->spec.naggs; a++) {
            rows.values[a] = d->vals[a] ? d->vals[a] + start : NULL;
            rows.valid[a] = d->valid[a] ? d->valid[a] + start / 64 : NULL;
        }
        rc = c->update ? c->update(c, ha, &rows, &err)
                       : tsr_dev_hashagg_update(ha, NULL, &rows, &err);
        if (rc != TSR_OK)
            fail_msg("update on %s: %s", dev->info.name, err.message);
        if (d->n == 0)
            break;
    }

    size_t nmodel = 0;
    bool overflow = false;
    group_t *want = model_groups(d, &nmodel, &overflow);
    size_t ng = tsr_dev_hashagg_ngroups(ha);
    assert_int_equal(ng, nmodel);

    outbufs_t o;
    outbufs_make(&o, &d->spec, ng);
    rc = tsr_dev_hashagg_result(ha, NULL, &o.out, &err);
    if (overflow) {
        assert_int_equal(rc, TSR_ERR_OVERFLOW);
        assert_int_equal(err.status, TSR_ERR_OVERFLOW);
        assert_non_null(strstr(err.message, "overflow in SUM"));
        goto done;
    }
    if (rc != TSR_OK)
        fail_msg("result on %s: %s", dev->info.name, err.message);

    /* nothing written past ngroups; bitmap bits past ngroups are 0 */
    assert_int_equal(o.out.hashes[ng], POISON);
    for (size_t k = 0; k < d->spec.nkeys; k++) {
        assert_int_equal(o.out.keys[k][ng], POISON);
        size_t words = (ng + 63) / 64;
        assert_int_equal(o.out.key_valid[k][words], POISON);
        if (ng % 64)
            assert_int_equal(o.out.key_valid[k][words - 1] >> (ng % 64), 0);
    }
    for (size_t a = 0; a < d->spec.naggs; a++) {
        assert_int_equal((uint64_t)o.out.counts[a][ng], POISON);
        if (o.out.values[a])
            assert_int_equal(((uint64_t *)o.out.values[a])[ng], POISON);
    }

    /* the hashes are those of the CPU executor's hash table */
    if (ng && d->spec.nkeys) {
        tsr_ht_t ht;
        assert_int_equal(tsr_ht_init(&ht, NULL, d->spec.nkeys, NULL, 0), TSR_OK);
        const uint64_t *keys[MAXK], *valid[MAXK];
        for (size_t k = 0; k < d->spec.nkeys; k++) {
            keys[k] = o.out.keys[k];
            valid[k] = o.out.key_valid[k];
        }
        tsr_ht_rows_t hr = {.n = ng, .keys = keys, .validity = valid};
        uint64_t *h = malloc(ng * sizeof(uint64_t));
        assert_non_null(h);
        tsr_ht_hash(&ht, &hr, h);
        for (size_t g = 0; g < ng; g++)
            assert_int_equal(h[g], o.out.hashes[g]);
        free(h);
        tsr_ht_fini(&ht);
    }

    group_t *got = calloc(ng ? ng : 1, sizeof(group_t));
    assert_non_null(got);
    for (size_t g = 0; g < ng; g++) {
        for (size_t k = 0; k < d->spec.nkeys; k++) {
            bool v = bit(o.out.key_valid[k], g);
            got[g].vmask |= (unsigned)v << k;
            got[g].key[k] = o.out.keys[k][g];
            if (!v)
                assert_int_equal(got[g].key[k], 0); /* 0 under NULL */
        }
        got[g].hash = o.out.hashes[g];
        for (size_t a = 0; a < d->spec.naggs; a++) {
            got[g].count[a] = o.out.counts[a][g];
            got[g].value[a] = o.out.values[a] ? ((uint64_t *)o.out.values[a])[g] : 0;
        }
    }
    g_nkeys = d->spec.nkeys;
    qsort(got, ng, sizeof(group_t), group_cmp);
    for (size_t g = 0; g < ng; g++) {
        assert_int_equal(group_cmp(&want[g], &got[g]), 0);
        assert_int_equal(got[g].hash, want[g].hash);
        for (size_t a = 0; a < d->spec.naggs; a++)
            check_value(d, a, &want[g], &got[g]);
    }
    free(got);

done:
    outbufs_free(&o);
    free(want);
    tsr_dev_hashagg_destroy(ha);
    return rc;
}

static inline void hm_run_gen(const hm_ctx_t *c, const gen_t *g, size_t parts)
{
    data_t d;
    data_make(g, &d);
    hm_run_case(c, &d, parts);
    data_free(&d);
}

/* ---- cases ------------------------------------------------------------------------ */

static inline void hm_case_sizes(const hm_ctx_t *c)
{
    static const size_t sizes[] = {0, 1, 2, 61, 8191, 8209, 100003};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        gen_t g = {.n = sizes[i], .nkeys = 1, .key_range = 97, .seed = 11 + i};
        hm_run_gen(c, &g, 1);
        g.val_null_pct = 10;
        g.key_null_pct = 5;
        g.nan = true;
        hm_run_gen(c, &g, 3);
    }
}

/* More rows than one OpenCL launch (1 << 20) in one update call: chunking,
 * bitmap offsets at the chunk boundary. (OpenCL only: the cpu backend has no
 * launches, and the model's sort of a million rows is the slow part.) */
static inline void hm_case_large(const hm_ctx_t *c)
{
    gen_t g = {.n = c->large_rows,
               .nkeys = 1,
               .key_range = 1000,
               .val_null_pct = 3,
               .key_null_pct = 1,
               .naggs = 4,
               .seed = 5};
    hm_run_gen(c, &g, 1);
}

static inline void hm_case_skewed(const hm_ctx_t *c)
{
    gen_t g = {.n = 50021, .nkeys = 1, .key_range = 5000, .skew_pct = 90, .seed = 21};
    hm_run_gen(c, &g, 1);
    g.nkeys = 2;
    g.key_range = 30;
    g.val_null_pct = 20;
    hm_run_gen(c, &g, 2);
}

/* Far more groups than the initial table (1024 slots): resize, retry. */
static inline void hm_case_many_groups(const hm_ctx_t *c)
{
    gen_t g = {.n = 60013, .nkeys = 1, .key_range = UINT64_MAX, .seed = 31};
    hm_run_gen(c, &g, 1);
    g.nkeys = 3;
    g.key_range = 64;
    g.key_null_pct = 10;
    g.seed = 32;
    hm_run_gen(c, &g, 4);
}

static inline void hm_case_composite_nulls(const hm_ctx_t *c)
{
    for (size_t nk = 2; nk <= MAXK; nk++) {
        gen_t g = {.n = 30011,
                   .nkeys = nk,
                   .key_range = 5,
                   .key_null_pct = 25,
                   .val_null_pct = 30,
                   .nan = true,
                   .seed = 40 + nk};
        hm_run_gen(c, &g, 2);
    }
    /* every key NULL: one group */
    gen_t g = {.n = 1000, .nkeys = 2, .key_range = 10, .key_null_pct = 100, .seed = 3};
    hm_run_gen(c, &g, 1);
}

/* Values all NULL in some groups: counts 0, values 0 (SQL NULL). */
static inline void hm_case_null_values(const hm_ctx_t *c)
{
    gen_t g = {.n = 4000, .nkeys = 1, .key_range = 50, .seed = 9};
    data_t d;
    data_make(&g, &d);
    for (size_t a = 0; a < d.spec.naggs; a++) {
        if (!d.vals[a] && d.spec.aggs[a].kind != TSR_DEV_AGG_COUNT)
            continue;
        d.valid[a] = alloc_words((d.n + 63) / 64);
        for (size_t i = 0; i < d.n; i++) /* keys with bit 7 clear: NULLs only */
            set_bit(d.valid[a], i, ((d.keys[0][i] >> 7) & 1) && i % 3);
    }
    hm_run_case(c, &d, 1);
    data_free(&d);
}

static inline void hm_case_no_keys(const hm_ctx_t *c)
{
    gen_t g = {.n = 10007, .nkeys = 0, .val_null_pct = 10, .nan = true, .seed = 77};
    hm_run_gen(c, &g, 3);
    g.n = 0;
    hm_run_gen(c, &g, 1);
}

/* SUM(BIGINT) overflows: detected; an overflow on the way that ends in
 * range: exact, no error (128-bit state). */
static inline void hm_case_sum_overflow(const hm_ctx_t *c)
{
    for (int fits = 0; fits < 2; fits++) {
        data_t d;
        memset(&d, 0, sizeof(d));
        d.n = 3000;
        d.spec.nkeys = 1;
        d.spec.naggs = 2;
        d.spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
        d.spec.aggs[1] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
        d.keys[0] = alloc_words(d.n);
        d.vals[0] = alloc_words(d.n);
        d.vals[1] = alloc_words(d.n);
        for (size_t i = 0; i < d.n; i++) {
            d.keys[0][i] = i % 3;
            /* key 0: +MAX, +MAX, -MAX, -MAX ... ; key 1, 2: small */
            int64_t big = (i / 3) % 2 == 0 ? INT64_MAX : -INT64_MAX;
            d.vals[0][i] = (uint64_t)(i % 3 == 0 ? big : (int64_t)i);
            /* column 1: all +MAX in key 0 (overflows) unless `fits` */
            d.vals[1][i] = (uint64_t)(i % 3 == 0 && !fits ? INT64_MAX : (int64_t)i - 1500);
        }
        /* 1000 rows of key 0 alternate from +MAX: the running sum passes
         * INT64_MAX at every other row and ends at 0 */
        tsr_status_t rc = hm_run_case(c, &d, 2);
        assert_int_equal(rc, fits ? TSR_OK : TSR_ERR_OVERFLOW);
        data_free(&d);
    }
    /* INT64_MIN sums: -2^63 fits, -2^63 - 1 does not */
    for (int over = 0; over < 2; over++) {
        data_t d;
        memset(&d, 0, sizeof(d));
        d.n = 2;
        d.spec.nkeys = 1;
        d.spec.naggs = 1;
        d.spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
        d.keys[0] = alloc_words(2);
        d.vals[0] = alloc_words(2);
        d.vals[0][0] = (uint64_t)INT64_MIN;
        d.vals[0][1] = (uint64_t)(int64_t)-over;
        assert_int_equal(hm_run_case(c, &d, 1), over ? TSR_ERR_OVERFLOW : TSR_OK);
        data_free(&d);
    }
}

/* Dense one-column keys (base + 0..range), the CUDA local kernels' direct
 * map: ranges inside and beyond a block table, around zero and at both ends
 * of the int64 range; NULL keys; groups that first appear in later update
 * calls (the last third of the rows reaches twice as far); integer values up
 * to +-2^40 of both signs, so SUM(BIGINT)'s split halves carry. */
static inline void hm_case_dense_keys(const hm_ctx_t *c)
{
    static const int64_t bases[] = {0, -700, INT64_MIN, INT64_MAX - 2 * 5000};
    static const uint64_t ranges[] = {300, 5000};
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        for (size_t r = 0; r < 2; r++) {
            gen_t g = {.n = 30011, .nkeys = 1, .key_range = 1, .seed = 90 + b * 2 + r};
            g.key_null_pct = r ? 3 : 0;
            g.val_null_pct = 5;
            data_t d;
            data_make(&g, &d);
            uint64_t s = g.seed;
            for (size_t i = 0; i < d.n; i++) {
                uint64_t span = i < d.n / 3 * 2 ? ranges[r] : 2 * ranges[r];
                d.keys[0][i] = (uint64_t)bases[b] + rng_below(&s, span);
                for (size_t a = 0; a < d.spec.naggs; a++)
                    if (d.vals[a] && d.spec.aggs[a].type == TSR_TYPE_INT64)
                        d.vals[a][i] = (uint64_t)((int64_t)rng_below(&s, (2ULL << 40) + 1) -
                                                  ((int64_t)1 << 40));
            }
            assert_int_equal(hm_run_case(c, &d, 3), TSR_OK);
            data_free(&d);
        }
    }
}

/* Plain aggregate lists: COUNT(*), COUNT, SUM(BIGINT), SUM(DOUBLE) with no
 * NULL bitmaps (the CUDA lane kernel's specialised row update,
 * tsr_cuda_ha_plain): 8, 1000 (a block table's size) and 3000 keys, one
 * and two key columns; BIGINT values up to +-2^40, so a block entry's low
 * 32-bit half carries at almost every row; then the same with one NULL
 * bitmap (the generic update) for contrast. */
static inline void hm_case_plain_aggs(const hm_ctx_t *c)
{
    static const uint64_t ranges[] = {8, 1000, 3000};
    for (size_t r = 0; r < 3 * 2; r++) {
        gen_t g = {.n = 40009,
                   .nkeys = 1 + r % 2,
                   .key_range = ranges[r / 2],
                   .naggs = 3,
                   .seed = 120 + r};
        data_t d;
        data_make(&g, &d); /* COUNT(*), COUNT(BIGINT), SUM(BIGINT) */
        uint64_t s = g.seed;
        d.spec.aggs[3] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_DOUBLE};
        d.spec.naggs = 4;
        d.vals[3] = alloc_words(d.n);
        for (size_t i = 0; i < d.n; i++) {
            d.vals[2][i] =
                (uint64_t)((int64_t)rng_below(&s, (2ULL << 40) + 1) - ((int64_t)1 << 40));
            double x = (double)((int64_t)rng_below(&s, 2000001) - 1000000) / 64.0;
            memcpy(&d.vals[3][i], &x, 8);
        }
        assert_int_equal(hm_run_case(c, &d, 3), TSR_OK);
        d.valid[3] = make_validity(d.n, 5, &s);
        assert_int_equal(hm_run_case(c, &d, 2), TSR_OK);
        data_free(&d);
    }
}

/* tsr_hash_u64 is a bijection; its inverse lets tests build keys with
 * chosen hashes. */
static inline uint64_t inv_odd(uint64_t c)
{
    uint64_t x = c; /* Newton: each step doubles the correct low bits */
    for (int i = 0; i < 6; i++)
        x *= 2 - c * x;
    return x;
}

static inline uint64_t unmix(uint64_t y)
{
    y ^= y >> 33;
    y *= inv_odd(0xc4ceb9fe1a85ec53ULL);
    y ^= y >> 33;
    y *= inv_odd(0xff51afd7ed558ccdULL);
    y ^= y >> 33;
    return y;
}

/* Rows alternating between two key tuples a and b (nk columns, NULL where
 * the mask bit is clear) with the same 64-bit hash: two groups, found by the
 * key/validity comparison alone (in one launch, and across update calls). */
static inline void hm_run_collision(const hm_ctx_t *c, size_t nk, const uint64_t *a, unsigned va,
                                    const uint64_t *b, unsigned vb)
{
    assert_int_equal(tsr_dev_hashagg_hash(nk, a, va), tsr_dev_hashagg_hash(nk, b, vb));
    data_t d;
    memset(&d, 0, sizeof(d));
    d.n = 256;
    d.spec.nkeys = nk;
    d.spec.naggs = 1;
    d.spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
    d.vals[0] = alloc_words(d.n);
    for (size_t k = 0; k < nk; k++) {
        d.keys[k] = alloc_words(d.n);
        d.key_valid[k] = alloc_words(d.n / 64);
    }
    for (size_t i = 0; i < d.n; i++) {
        const uint64_t *key = i % 2 ? b : a;
        unsigned vm = i % 2 ? vb : va;
        for (size_t k = 0; k < nk; k++) {
            d.keys[k][i] = (vm >> k) & 1u ? key[k] : 0;
            set_bit(d.key_valid[k], i, (vm >> k) & 1u);
        }
        d.vals[0][i] = i;
    }
    size_t ng;
    bool of;
    group_t *m = model_groups(&d, &ng, &of);
    assert_int_equal(ng, 2);
    free(m);
    hm_run_case(c, &d, 1);
    hm_run_case(c, &d, 4); /* rows of later calls meet stored groups */
    data_free(&d);
}

static inline void hm_case_hash_collisions(const hm_ctx_t *c)
{
    /* one column: v* hashes like NULL (the hash is a bijection: invert it) */
    uint64_t vstar = unmix(TSR_DEV_NULL_HASH), zero = 0;
    assert_int_equal(tsr_hash_u64(vstar), TSR_DEV_NULL_HASH);
    hm_run_collision(c, 1, &vstar, 1, &zero, 0);

    /* two different valid tuples with one hash, (1, a1, 9) and (2, b1, 9):
     * combine(s, h) = mix(s ^ (h + C + (s << 6) + (s >> 2))) and mix is a
     * bijection, so for the second column's hash of b we solve
     * sA ^ (hA + C + f(sA)) == sB ^ (hB + C + f(sB)) for hB. */
    uint64_t sa = tsr_hash_u64(1), sb = tsr_hash_u64(2), ha = tsr_hash_u64(5);
    const uint64_t gold = 0x9e3779b97f4a7c15ULL;
    uint64_t inner = sa ^ (ha + gold + (sa << 6) + (sa >> 2));
    uint64_t hb = (inner ^ sb) - gold - (sb << 6) - (sb >> 2);
    assert_int_equal(tsr_hash_combine(sa, ha), tsr_hash_combine(sb, hb));
    uint64_t a[3] = {1, 5, 9}, b[3] = {2, unmix(hb), 9};
    hm_run_collision(c, 2, a, 3, b, 3);
    hm_run_collision(c, 3, a, 7, b, 7);
    /* (A NULL against a valid 0 with all else equal collides only when a
     * later column cancels the difference, a 2^-32 event per prefix: the
     * validity comparison is not reachable by a cheap construction.) */
}

/* MIN/MAX of doubles: NaN above every number. */
static inline void hm_case_nan_order(const hm_ctx_t *c)
{
    data_t d;
    memset(&d, 0, sizeof(d));
    d.n = 6;
    d.spec.nkeys = 1;
    d.spec.naggs = 2;
    d.spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_MIN, TSR_TYPE_DOUBLE};
    d.spec.aggs[1] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_MAX, TSR_TYPE_DOUBLE};
    d.keys[0] = alloc_words(6);
    const double v[6] = {NAN, 2.5, -INFINITY, NAN, NAN, 7.0}; /* keys 0 0 0 1 1 2 */
    const uint64_t k[6] = {0, 0, 0, 1, 1, 2};
    for (size_t a = 0; a < 2; a++) {
        d.vals[a] = alloc_words(6);
        for (size_t i = 0; i < 6; i++)
            d.vals[a][i] = as_bits(v[i]);
    }
    memcpy(d.keys[0], k, sizeof(k));
    hm_run_case(c, &d, 1); /* the model implements the rule; compare to it */
    /* and spot-check the rule itself */
    size_t ng;
    bool of;
    group_t *m = model_groups(&d, &ng, &of);
    assert_int_equal(ng, 3);
    assert_true(as_double(m[0].value[0]) == -INFINITY);
    assert_true(isnan(as_double(m[0].value[1])));
    assert_true(isnan(as_double(m[1].value[0])));
    free(m);
    data_free(&d);
}

static inline void hm_case_bad_args(const hm_ctx_t *c)
{
    tsr_dev_t *dev = c->dev;
    tsr_error_t err;
    tsr_dev_hashagg_t *ha = NULL;
    tsr_dev_hashagg_spec_t spec = {.nkeys = MAXK + 1};
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_ERR_UNSUPPORTED);
    spec = (tsr_dev_hashagg_spec_t){.nkeys = 1, .naggs = 1};
    spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_VARCHAR};
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, &err), TSR_ERR_UNSUPPORTED);
    spec.aggs[0] = (tsr_dev_agg_spec_t){(tsr_dev_agg_kind_t)99, TSR_TYPE_INT64};
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, NULL), TSR_ERR_INVALID_ARG);
    assert_null(ha);

    spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
    assert_int_equal(tsr_dev_hashagg_create(dev, &spec, &ha, NULL), TSR_OK);
    uint64_t keys[2] = {1, 2};
    int64_t vals[2] = {3, 4};
    tsr_dev_hashagg_rows_t rows = {.n = 2, .keys = {keys}, .values = {vals}};
    tsr_dev_hashagg_rows_t no_vals = {.n = 2, .keys = {keys}};
    tsr_dev_hashagg_rows_t no_keys = {.n = 2, .values = {vals}};
    assert_int_equal(tsr_dev_hashagg_update(ha, NULL, &no_vals, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashagg_update(ha, NULL, &no_keys, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashagg_update(ha, NULL, NULL, NULL), TSR_ERR_INVALID_ARG);
    /* a queue of the other device */
    tsr_dev_t *other = c->other;
    if (other)
        assert_int_equal(tsr_dev_hashagg_update(ha, other->queue, &rows, NULL),
                         TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_hashagg_update(ha, dev->queue, &rows, NULL), TSR_OK);
    assert_int_equal(tsr_dev_hashagg_ngroups(ha), 2);
    uint64_t okeys[2], ovalid[1];
    int64_t ocnt[2], osum[2];
    tsr_dev_hashagg_out_t out = {.keys = {okeys}, .key_valid = {ovalid}, .counts = {ocnt}};
    assert_int_equal(tsr_dev_hashagg_result(ha, NULL, &out, NULL), TSR_ERR_INVALID_ARG);
    out.values[0] = osum;
    assert_int_equal(tsr_dev_hashagg_result(ha, NULL, &out, NULL), TSR_OK);
    assert_int_equal(ocnt[0] + ocnt[1], 2);
    assert_int_equal(osum[0] + osum[1], 7);
    assert_int_equal(ovalid[0], 3);
    tsr_dev_hashagg_destroy(ha);
    tsr_dev_hashagg_destroy(NULL);
    assert_int_equal(tsr_dev_hashagg_ngroups(NULL), 0);
}

/* Allocation failures anywhere in create/update/result: TSR_ERR_NOMEM and
 * nothing leaked (ASan), then success once allocations stop failing. */
static inline void hm_case_alloc_failures(const hm_ctx_t *c)
{
    tsr_dev_t *dev = c->dev;
    gen_t g = {.n = 5000, .nkeys = 2, .key_range = 40, .key_null_pct = 5, .seed = 1};
    data_t d;
    data_make(&g, &d);
    tsr_dev_hashagg_rows_t rows;
    memset(&rows, 0, sizeof(rows));
    rows.n = d.n;
    for (size_t k = 0; k < d.spec.nkeys; k++) {
        rows.keys[k] = d.keys[k];
        rows.key_valid[k] = d.key_valid[k];
    }
    for (size_t a = 0; a < d.spec.naggs; a++)
        rows.values[a] = d.vals[a];
    bool done = false;
    for (long n = 0; !done && n < 200; n++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_dev_t *mdev = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        /* a device of the same backend whose host allocations can fail */
        char spec[32];
        snprintf(spec, sizeof(spec), "%s:%u", tsr_device_backend_name(dev->info.backend),
                 dev->info.index);
        assert_int_equal(tsr_dev_open_spec(&mem, spec, &mdev, &err), TSR_OK);
        tsr_mem_fail_after(&mem, n);
        tsr_dev_hashagg_t *ha = NULL;
        tsr_status_t rc = tsr_dev_hashagg_create(mdev, &d.spec, &ha, &err);
        if (rc == TSR_OK)
            rc = tsr_dev_hashagg_update(ha, NULL, &rows, &err);
        outbufs_t o;
        memset(&o, 0, sizeof(o));
        if (rc == TSR_OK) {
            outbufs_make(&o, &d.spec, tsr_dev_hashagg_ngroups(ha));
            rc = tsr_dev_hashagg_result(ha, NULL, &o.out, &err);
        }
        if (rc == TSR_OK)
            done = true;
        else
            assert_int_equal(rc, TSR_ERR_NOMEM);
        outbufs_free(&o);
        tsr_dev_hashagg_destroy(ha);
        tsr_mem_fail_after(&mem, -1);
        tsr_dev_close(mdev);
    }
    assert_true(done);
    data_free(&d);
}

#endif /* TSR_TESTS_HASHAGG_MODEL_H */
