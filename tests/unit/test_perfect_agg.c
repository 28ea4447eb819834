/*
 * test_perfect_agg.c - perfect-hash (direct-indexed) aggregation.
 *
 * The choice (tsr_agg_perfect_choose) is checked on its own: range limits,
 * negative and full-width ranges, always-NULL keys, DISTINCT, the size of
 * the input. The group-id formula against a plain per-row computation. Then
 * whole GROUP BYs through tsr_op_aggregate over random tables (INT64 keys
 * with negative ranges, BOOL and VARCHAR keys, NULL keys, several keys, more
 * than one batch, pre-filters, 1 and 2 threads, with and without table
 * statistics, ranges too wide for the direct path) against a model that
 * sorts the rows by key and aggregates runs; SUM overflow that shows only at
 * the end. The model knows nothing of slots or hashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec/exec_internal.h"
#include "exec/perfect_agg.h"
#include "exec_model.h"

/* ---- the choice ------------------------------------------------------------------- */

/* A bare aggregation plan with nkeys keys and the states of SUM(x) (NN and
 * SUM_I), as op_aggregate.c would build it. */
static void pa_bare_plan(tsr_agg_plan_t *ap, tsr_agg_scol_t *scols, size_t nkeys)
{
    memset(ap, 0, sizeof(*ap));
    ap->nkeys = nkeys;
    ap->scols = scols;
    ap->scols_cap = 3;
    ap->nscols = 2;
    scols[0] = (tsr_agg_scol_t){.kind = TSR_AGG_S_NN, .arg = 0};
    scols[1] = (tsr_agg_scol_t){.kind = TSR_AGG_S_SUM_I, .arg = 0};
}

static void test_choose_limits(void **state)
{
    (void)state;
    tsr_agg_plan_t ap;
    tsr_agg_scol_t scols[3];
    size_t big = (size_t)1 << 30;

    /* 1000 values and NULL: 1001 slots, ROWS added */
    int64_t lo[3] = {1, 0, 0}, hi[3] = {1000, 0, 0};
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 2);
    assert_true(ap.perfect.on);
    assert_int_equal(ap.perfect.ngroups, 1001);
    assert_int_equal(ap.nscols, 3);
    assert_int_equal(ap.scols[ap.perfect.rows_scol].kind, TSR_AGG_S_ROWS);

    /* negative range, and a second key (stride = slots of the first) */
    lo[0] = -5;
    hi[0] = 5;
    lo[1] = -1;
    hi[1] = 1;
    pa_bare_plan(&ap, scols, 2);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 2);
    assert_true(ap.perfect.on);
    assert_int_equal(ap.perfect.ngroups, 12 * 4);
    assert_int_equal(ap.perfect.stride[0], 1);
    assert_int_equal(ap.perfect.stride[1], 12);
    assert_int_equal((int64_t)ap.perfect.kmin[0], -5);

    /* exactly the most slots, then one more */
    lo[0] = 0;
    hi[0] = (int64_t)TSR_AGG_PERFECT_MAX_GROUPS - 2;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_true(ap.perfect.on);
    assert_int_equal(ap.perfect.ngroups, TSR_AGG_PERFECT_MAX_GROUPS);
    hi[0]++;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_false(ap.perfect.on);
    assert_int_equal(ap.nscols, 2); /* nothing added when off */

    /* the whole INT64 range must not overflow the span computation */
    lo[0] = INT64_MIN;
    hi[0] = INT64_MAX;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_false(ap.perfect.on);
    lo[0] = INT64_MAX - 10;
    hi[0] = INT64_MAX;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_true(ap.perfect.on);
    assert_int_equal(ap.perfect.ngroups, 12);

    /* the product of ranges, not each range, is limited */
    lo[0] = lo[1] = lo[2] = 0;
    hi[0] = hi[1] = hi[2] = 199; /* 200^3 = 8M slots */
    pa_bare_plan(&ap, scols, 3);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_false(ap.perfect.on);

    /* a key that is always NULL: one slot */
    lo[0] = 0;
    hi[0] = -1;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_true(ap.perfect.on);
    assert_int_equal(ap.perfect.ngroups, 1);

    /* few rows: only small slot counts pay off */
    lo[0] = 0;
    hi[0] = 99999;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, 1000, 2);
    assert_false(ap.perfect.on);
    hi[0] = 999;
    pa_bare_plan(&ap, scols, 1);
    tsr_agg_perfect_choose(&ap, lo, hi, 10, 2);
    assert_true(ap.perfect.on);

    /* DISTINCT aggregates and no keys stay on the hash path */
    pa_bare_plan(&ap, scols, 1);
    ap.ndsets = 1;
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_false(ap.perfect.on);
    pa_bare_plan(&ap, scols, 0);
    tsr_agg_perfect_choose(&ap, lo, hi, big, 1);
    assert_false(ap.perfect.on);
}

/* Group ids against slot arithmetic done row by row. */
static void test_gids(void **state)
{
    (void)state;
    rng_t rng = {42};
    tsr_agg_plan_t ap;
    tsr_agg_scol_t scols[3];
    int64_t lo[2] = {-50, 7}, hi[2] = {49, 9};
    pa_bare_plan(&ap, scols, 2);
    tsr_agg_perfect_choose(&ap, lo, hi, 1 << 20, 1);
    assert_true(ap.perfect.on);
    enum { N = 1000 };
    static uint64_t k0[N], k0n[N], k1[N], v0[(N + 63) / 64], v1[(N + 63) / 64];
    static uint32_t sel[N], gids[N];
    memset(v0, 0, sizeof(v0));
    memset(v1, 0, sizeof(v1));
    for (size_t i = 0; i < N; i++) {
        k0[i] = (uint64_t)(lo[0] + (int64_t)rng_below(&rng, 100));
        k1[i] = (uint64_t)(lo[1] + (int64_t)rng_below(&rng, 3));
        tsr_bit_set(v0, i, !rng_pct(&rng, 10));
        tsr_bit_set(v1, i, !rng_pct(&rng, 30));
        /* with validity, garbage under NULL must not matter */
        k0n[i] = tsr_bit_get(v0, i) ? k0[i] : rng_next(&rng);
    }
    size_t nsel = 0;
    for (size_t i = 0; i < N; i++)
        if (rng_pct(&rng, 50))
            sel[nsel++] = (uint32_t)i;
    for (int use_sel = 0; use_sel < 2; use_sel++) {
        for (int use_valid = 0; use_valid < 2; use_valid++) {
            const uint64_t *vp[2] = {v0, v1};
            const uint64_t *kp[2] = {use_valid ? k0n : k0, k1};
            size_t n = use_sel ? nsel : N;
            tsr_agg_perfect_gids(&ap.perfect, 2, kp, use_valid ? vp : NULL, use_sel ? sel : NULL, n,
                                 gids);
            for (size_t j = 0; j < n; j++) {
                size_t i = use_sel ? sel[j] : j;
                int64_t s0 = use_valid && !tsr_bit_get(v0, i) ? 0 : (int64_t)k0[i] - lo[0] + 1;
                int64_t s1 = use_valid && !tsr_bit_get(v1, i) ? 0 : (int64_t)k1[i] - lo[1] + 1;
                assert_int_equal(gids[j], (uint32_t)(s0 + 101 * s1));
                assert_true(gids[j] < ap.perfect.ngroups);
            }
        }
    }
}

/* ---- whole GROUP BYs against a model ---------------------------------------------- */

/* Input columns: 0 k (INT64), 1 b (BOOL), 2 s (VARCHAR), 3 v (INT64). */
enum { PA_K, PA_B, PA_S, PA_V, PA_NCOLS };
static const char *const pa_strs[] = {"", "apple", "pear", "a,b", "zz", "apple "};
#define PA_NSTR (sizeof(pa_strs) / sizeof(pa_strs[0]))

typedef struct pa_rows {
    size_t n;
    int64_t *k, *v;
    uint8_t *b;
    uint32_t *s; /* index into pa_strs */
    bool *nk, *nb, *ns, *nv;
} pa_rows_t;

static void pa_rows_free(pa_rows_t *r)
{
    free(r->k);
    free(r->v);
    free(r->b);
    free(r->s);
    free(r->nk);
    free(r->nb);
    free(r->ns);
    free(r->nv);
}

static void pa_gen(rng_t *rng, size_t n, int64_t klo, uint64_t kspan, int64_t vlo, uint64_t vspan,
                   unsigned nullpct, pa_rows_t *r)
{
    r->n = n;
    size_t m = n ? n : 1;
    r->k = calloc(m, sizeof(int64_t));
    r->v = calloc(m, sizeof(int64_t));
    r->b = calloc(m, 1);
    r->s = calloc(m, sizeof(uint32_t));
    r->nk = calloc(m, 1);
    r->nb = calloc(m, 1);
    r->ns = calloc(m, 1);
    r->nv = calloc(m, 1);
    assert_true(r->k && r->v && r->b && r->s && r->nk && r->nb && r->ns && r->nv);
    for (size_t i = 0; i < n; i++) {
        r->k[i] = (int64_t)((uint64_t)klo + rng_below(rng, kspan));
        r->v[i] = (int64_t)((uint64_t)vlo + rng_below(rng, vspan));
        r->b[i] = (uint8_t)rng_below(rng, 2);
        r->s[i] = (uint32_t)rng_below(rng, PA_NSTR);
        r->nk[i] = rng_pct(rng, nullpct);
        r->nb[i] = rng_pct(rng, nullpct);
        r->ns[i] = rng_pct(rng, nullpct);
        r->nv[i] = rng_pct(rng, nullpct);
    }
}

/* The rows as a table in batches of bs rows; VARCHAR codes interned in a
 * shuffled order so that codes differ from pa_strs indexes. */
static tsr_table_t *pa_table(const pa_rows_t *r, size_t bs, bool stats)
{
    static const char *const names[PA_NCOLS] = {"k", "b", "s", "v"};
    static const tsr_type_t types[PA_NCOLS] = {TSR_TYPE_INT64, TSR_TYPE_BOOL, TSR_TYPE_VARCHAR,
                                               TSR_TYPE_INT64};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "p", PA_NCOLS, names, types, &t), TSR_OK);
    tsr_dict_t *d;
    assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
    uint32_t code[PA_NSTR];
    for (size_t i = PA_NSTR; i-- > 0;)
        assert_int_equal(tsr_dict_intern(d, pa_strs[i], strlen(pa_strs[i]), &code[i]), TSR_OK);
    assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    tsr_table_adopt_dict(t, PA_S, d);
    for (size_t o = 0; o < r->n; o += bs) {
        size_t m = r->n - o < bs ? r->n - o : bs;
        tsr_vector_t *cols = calloc(PA_NCOLS, sizeof(tsr_vector_t));
        assert_non_null(cols);
        for (size_t c = 0; c < PA_NCOLS; c++)
            assert_int_equal(
                tsr_vector_alloc(NULL, types[c], m, true, c == PA_S ? d : NULL, &cols[c]), TSR_OK);
        for (size_t i = 0; i < m; i++) {
            size_t x = o + i;
            ((int64_t *)cols[PA_K].data)[i] = r->nk[x] ? 12345 : r->k[x]; /* junk under NULL */
            ((uint8_t *)cols[PA_B].data)[i] = r->b[x];
            ((uint32_t *)cols[PA_S].data)[i] = code[r->s[x]];
            ((int64_t *)cols[PA_V].data)[i] = r->v[x];
            tsr_bit_set(cols[PA_K].validity, i, !r->nk[x]);
            tsr_bit_set(cols[PA_B].validity, i, !r->nb[x]);
            tsr_bit_set(cols[PA_S].validity, i, !r->ns[x]);
            tsr_bit_set(cols[PA_V].validity, i, !r->nv[x]);
        }
        assert_int_equal(tsr_table_append_batch(t, m, cols), TSR_OK);
    }
    if (stats)
        assert_int_equal(tsr_table_compute_stats(t), TSR_OK);
    return t;
}

/* One result row in comparable form: keys (null flag + value; strings as
 * their pa_strs index found by content), then COUNT(*), COUNT(v), SUM(v)
 * (null when no value), MIN, MAX, AVG. */
typedef struct pa_res {
    bool kn[3];
    int64_t kv[3];
    int64_t cnt, cntv;
    bool sum_null;
    int64_t sum, mn, mx;
    double avg;
} pa_res_t;

static size_t pa_nk; /* keys in use, for the comparator (tests are single-threaded) */

static int pa_key_cmp(const void *pa, const void *pb)
{
    const pa_res_t *a = pa, *b = pb;
    for (size_t k = 0; k < pa_nk; k++) {
        if (a->kn[k] != b->kn[k])
            return a->kn[k] ? -1 : 1;
        if (!a->kn[k] && a->kv[k] != b->kv[k])
            return a->kv[k] < b->kv[k] ? -1 : 1;
    }
    return 0;
}

static int64_t pa_row_key(const pa_rows_t *r, size_t i, size_t col, bool *null)
{
    switch (col) {
    case PA_K:
        *null = r->nk[i];
        return r->k[i];
    case PA_B:
        *null = r->nb[i];
        return r->b[i];
    default:
        *null = r->ns[i];
        return r->s[i];
    }
}

/* Model: one pa_res_t per row, sorted by key, runs merged. */
static size_t pa_model(const pa_rows_t *r, const size_t *kcols, size_t nk, int64_t vmin,
                       pa_res_t **out)
{
    pa_res_t *x = calloc(r->n ? r->n : 1, sizeof(pa_res_t));
    assert_non_null(x);
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->nv[i] || r->v[i] < vmin) { /* the pre-filter: v >= vmin (NULL: dropped) */
            if (vmin != INT64_MIN)
                continue;
        }
        pa_res_t *e = &x[n++];
        for (size_t k = 0; k < nk; k++)
            e->kv[k] = pa_row_key(r, i, kcols[k], &e->kn[k]);
        e->cnt = 1;
        e->cntv = !r->nv[i];
        e->sum_null = r->nv[i];
        e->sum = e->mn = e->mx = r->v[i];
    }
    pa_nk = nk;
    qsort(x, n, sizeof(*x), pa_key_cmp);
    size_t g = 0;
    for (size_t i = 0; i < n;) {
        pa_res_t acc = x[i];
        __int128 sum = acc.sum_null ? 0 : acc.sum;
        size_t j = i + 1;
        for (; j < n && pa_key_cmp(&x[j], &x[i]) == 0; j++) {
            acc.cnt++;
            if (x[j].sum_null)
                continue;
            if (acc.sum_null) {
                acc.mn = acc.mx = x[j].mn;
                acc.sum_null = false;
            }
            acc.cntv++;
            sum += x[j].sum;
            acc.mn = x[j].mn < acc.mn ? x[j].mn : acc.mn;
            acc.mx = x[j].mx > acc.mx ? x[j].mx : acc.mx;
        }
        acc.sum = (int64_t)sum;
        acc.avg = acc.cntv ? (double)sum / (double)acc.cntv : 0.0;
        x[g++] = acc;
        i = j;
    }
    *out = x;
    return g;
}

/* Reads the engine's output (keys then COUNT(*), COUNT(v), SUM, MIN, MAX, AVG). */
static size_t pa_read(const tsr_table_t *t, const size_t *kcols, size_t nk, pa_res_t **out)
{
    pa_res_t *x = calloc(t->nrows ? t->nrows : 1, sizeof(pa_res_t));
    assert_non_null(x);
    size_t n = 0;
    for (size_t b = 0; b < t->nbatches; b++) {
        const tsr_batch_t *bt = &t->batches[b];
        for (size_t i = 0; i < bt->nrows; i++, n++) {
            pa_res_t *e = &x[n];
            for (size_t k = 0; k < nk; k++) {
                const tsr_vector_t *v = &bt->cols[k];
                e->kn[k] = tsr_vector_is_null(v, i);
                if (e->kn[k])
                    continue;
                if (kcols[k] == PA_K) {
                    e->kv[k] = ((const int64_t *)v->data)[i];
                } else if (kcols[k] == PA_B) {
                    e->kv[k] = ((const uint8_t *)v->data)[i];
                } else {
                    size_t len;
                    const char *s = tsr_dict_get(v->dict, ((const uint32_t *)v->data)[i], &len);
                    e->kv[k] = -1;
                    for (size_t q = 0; q < PA_NSTR; q++)
                        if (strlen(pa_strs[q]) == len && memcmp(pa_strs[q], s, len) == 0)
                            e->kv[k] = (int64_t)q;
                    assert_true(e->kv[k] >= 0);
                }
            }
            const tsr_vector_t *c = &bt->cols[nk];
            e->cnt = ((const int64_t *)c[0].data)[i];
            e->cntv = ((const int64_t *)c[1].data)[i];
            e->sum_null = tsr_vector_is_null(&c[2], i);
            assert_int_equal(e->sum_null, tsr_vector_is_null(&c[5], i));
            if (!e->sum_null) {
                e->sum = ((const int64_t *)c[2].data)[i];
                e->mn = ((const int64_t *)c[3].data)[i];
                e->mx = ((const int64_t *)c[4].data)[i];
                e->avg = ((const double *)c[5].data)[i];
            }
        }
    }
    pa_nk = nk;
    qsort(x, n, sizeof(*x), pa_key_cmp);
    *out = x;
    return n;
}

typedef struct pa_query {
    size_t nk;
    size_t kcols[3];
    int64_t vmin; /* pre-filter v >= vmin; INT64_MIN: none */
} pa_query_t;

static tsr_status_t pa_run_mem(tsr_mem_t *mem, tsr_pool_t *pool, const pa_query_t *q,
                               tsr_table_t *t, tsr_table_t **out, tsr_error_t *err)
{
    static const tsr_type_t ktype[PA_NCOLS] = {TSR_TYPE_INT64, TSR_TYPE_BOOL, TSR_TYPE_VARCHAR,
                                               TSR_TYPE_INT64};
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *keys[3];
    tsr_type_t types[9];
    char *names[9];
    char namebuf[9][8];
    tsr_agg_t aggs[6];
    for (size_t k = 0; k < q->nk; k++) {
        keys[k] = ex_col(&ar, q->kcols[k], ktype[q->kcols[k]]);
        types[k] = ktype[q->kcols[k]];
    }
    tsr_expr_t *v = ex_col(&ar, PA_V, TSR_TYPE_INT64);
    tsr_agg_fn_t fns[6] = {TSR_AGG_COUNT_STAR, TSR_AGG_COUNT, TSR_AGG_SUM,
                           TSR_AGG_MIN,        TSR_AGG_MAX,   TSR_AGG_AVG};
    for (size_t a = 0; a < 6; a++) {
        aggs[a] = (tsr_agg_t){.fn = fns[a], .arg = a ? v : NULL};
        aggs[a].type = fns[a] == TSR_AGG_AVG ? TSR_TYPE_DOUBLE : TSR_TYPE_INT64;
        types[q->nk + a] = aggs[a].type;
    }
    tsr_plan_t plan;
    memset(&plan, 0, sizeof(plan));
    plan.kind = TSR_PLAN_AGGREGATE;
    plan.ncols = q->nk + 6;
    for (size_t c = 0; c < plan.ncols; c++) {
        snprintf(namebuf[c], 8, "c%zu", c);
        names[c] = namebuf[c];
    }
    plan.types = types;
    plan.names = names;
    plan.keys = keys;
    plan.nkeys = q->nk;
    plan.aggs = aggs;
    plan.naggs = 6;
    tsr_expr_t *pred = NULL;
    if (q->vmin != INT64_MIN)
        pred = ex_bin(&ar, TSR_OP_GE, ex_col(&ar, PA_V, TSR_TYPE_INT64), ex_int(&ar, q->vmin));
    tsr_exec_ctx_t ctx = {.mem = mem, .pool = pool};
    tsr_op_input_t in = {.table = t, .is_base = true};
    tsr_error_clear(err);
    tsr_status_t rc = tsr_op_aggregate(&ctx, &plan, pred, in, out, err);
    tsr_arena_release(&ar);
    return rc;
}

static tsr_status_t pa_run(tsr_pool_t *pool, const pa_query_t *q, tsr_table_t *t, tsr_table_t **out,
                           tsr_error_t *err)
{
    return pa_run_mem(NULL, pool, q, t, out, err);
}

static void pa_check(tsr_pool_t *pool, const pa_rows_t *r, tsr_table_t *t, const pa_query_t *q)
{
    pa_res_t *want, *got;
    size_t nw = pa_model(r, q->kcols, q->nk, q->vmin, &want);
    for (int threads = 0; threads < 2; threads++) {
        tsr_table_t *out = NULL;
        tsr_error_t err;
        assert_int_equal(pa_run(threads ? pool : NULL, q, t, &out, &err), TSR_OK);
        size_t ng = pa_read(out, q->kcols, q->nk, &got);
        assert_int_equal(ng, nw);
        for (size_t g = 0; g < nw; g++) {
            assert_int_equal(pa_key_cmp(&got[g], &want[g]), 0);
            assert_int_equal(got[g].cnt, want[g].cnt);
            assert_int_equal(got[g].cntv, want[g].cntv);
            assert_int_equal(got[g].sum_null, want[g].sum_null);
            if (!want[g].sum_null) {
                assert_int_equal(got[g].sum, want[g].sum);
                assert_int_equal(got[g].mn, want[g].mn);
                assert_int_equal(got[g].mx, want[g].mx);
                assert_true(fabs(got[g].avg - want[g].avg) <= 1e-9 * (1 + fabs(want[g].avg)));
            }
        }
        free(got);
        tsr_table_destroy(out);
    }
    free(want);
}

static void test_random_groupby(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    rng_t rng = {7};
    static const struct {
        size_t n, bs;
        int64_t klo;
        uint64_t kspan;
        unsigned nullpct;
    } shapes[] = {
        {0, 8192, 0, 10, 0},
        {1, 8192, 5, 1, 0},
        {997, 97, -40, 81, 10},           /* negative range, ragged batches */
        {20011, 8192, -1000000, 1000, 5}, /* > 2 batches */
        {20011, 8192, 0, 3000000, 5},     /* too wide: the hash path */
        {5003, 1000, INT64_MAX - 50, 51, 20},
        {5003, 1000, INT64_MIN, 64, 100}, /* every key NULL */
    };
    static const pa_query_t queries[] = {
        {1, {PA_K}, INT64_MIN},
        {1, {PA_S}, INT64_MIN},
        {1, {PA_B}, INT64_MIN},
        {2, {PA_K, PA_B}, INT64_MIN},
        {3, {PA_S, PA_K, PA_B}, INT64_MIN},
        {2, {PA_B, PA_K}, 0},
        {1, {PA_K}, 500},
    };
    for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++) {
        pa_rows_t r;
        pa_gen(&rng, shapes[sh].n, shapes[sh].klo, shapes[sh].kspan, -1000, 2000,
               shapes[sh].nullpct, &r);
        for (int stats = 0; stats < 2; stats++) {
            tsr_table_t *t = pa_table(&r, shapes[sh].bs, stats);
            for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]); q++)
                pa_check(pool, &r, t, &queries[q]);
            tsr_table_destroy(t);
        }
        pa_rows_free(&r);
    }
    tsr_pool_destroy(pool);
}

/* Statistics wider than the data (still true bounds) change nothing. */
static void test_loose_stats(void **state)
{
    (void)state;
    rng_t rng = {9};
    pa_rows_t r;
    pa_gen(&rng, 3000, -10, 20, 0, 100, 10, &r);
    tsr_table_t *t = pa_table(&r, 512, false);
    tsr_colstats_t st = {.known = true, .min = -300, .max = 400};
    assert_int_equal(tsr_table_set_stats(t, PA_K, &st), TSR_OK);
    assert_non_null(tsr_table_stats(t, PA_K));
    pa_query_t q = {2, {PA_K, PA_S}, INT64_MIN};
    pa_check(NULL, &r, t, &q);
    tsr_table_destroy(t);
    pa_rows_free(&r);
}

/* Table statistics: bounds of the non-NULL values, dropped by an append. */
static void test_table_stats(void **state)
{
    (void)state;
    rng_t rng = {11};
    pa_rows_t r;
    pa_gen(&rng, 10000, -77, 500, 0, 1, 30, &r);
    tsr_table_t *t = pa_table(&r, 4096, true);
    const tsr_colstats_t *st = tsr_table_stats(t, PA_K);
    assert_non_null(st);
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; i < r.n; i++) {
        if (r.nk[i])
            continue;
        lo = r.k[i] < lo ? r.k[i] : lo;
        hi = r.k[i] > hi ? r.k[i] : hi;
    }
    assert_int_equal(st->min, lo);
    assert_int_equal(st->max, hi);
    assert_null(tsr_table_stats(t, PA_S)); /* only INT64 columns */
    tsr_vector_t *cols = calloc(PA_NCOLS, sizeof(tsr_vector_t));
    assert_non_null(cols);
    for (size_t c = 0; c < PA_NCOLS; c++)
        assert_int_equal(tsr_vector_alloc(NULL, t->fields[c].type, 1, false,
                                          c == PA_S ? t->dicts[PA_S] : NULL, &cols[c]),
                         TSR_OK);
    memset(cols[PA_S].data, 0, 4);
    ((int64_t *)cols[PA_K].data)[0] = INT64_MIN;
    assert_int_equal(tsr_table_append_batch(t, 1, cols), TSR_OK);
    assert_null(tsr_table_stats(t, PA_K));
    tsr_table_destroy(t);
    pa_rows_free(&r);

    /* only NULLs: 0..0 */
    pa_rows_t z;
    pa_gen(&rng, 100, 0, 10, 0, 1, 100, &z);
    t = pa_table(&z, 64, true);
    st = tsr_table_stats(t, PA_K);
    assert_non_null(st);
    assert_int_equal(st->min, 0);
    assert_int_equal(st->max, 0);
    tsr_table_destroy(t);
    pa_rows_free(&z);
}

/* SUM fails only when the final sum does not fit, wherever partials were. */
static void test_overflow_at_end(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    struct {
        int64_t v[3];
        size_t n;
        bool overflow;
    } cases[] = {
        {{INT64_MAX, 1}, 2, true},
        {{INT64_MIN, -1}, 2, true},
        {{INT64_MAX, 1, -5}, 3, false},
        {{INT64_MIN, INT64_MAX, INT64_MAX}, 3, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        pa_rows_t r;
        rng_t rng = {c};
        pa_gen(&rng, cases[c].n, 3, 1, 0, 1, 0, &r);
        memcpy(r.v, cases[c].v, cases[c].n * sizeof(int64_t));
        tsr_table_t *t = pa_table(&r, 1, true); /* one row per batch: separate partials */
        pa_query_t q = {1, {PA_K}, INT64_MIN};
        for (int threads = 0; threads < 2; threads++) {
            tsr_table_t *out = NULL;
            tsr_error_t err;
            tsr_status_t rc = pa_run(threads ? pool : NULL, &q, t, &out, &err);
            if (cases[c].overflow) {
                assert_int_equal(rc, TSR_ERR_OVERFLOW);
                assert_null(out);
            } else {
                assert_int_equal(rc, TSR_OK);
                assert_int_equal(out->nrows, 1);
                tsr_table_destroy(out);
            }
        }
        tsr_table_destroy(t);
        pa_rows_free(&r);
    }
    tsr_pool_destroy(pool);
}

/* Every allocation of a perfect-path GROUP BY failing in turn (with and
 * without statistics, so the min/max pass fails too): TSR_ERR_NOMEM or the
 * right answer, nothing leaked. */
static void test_fault_injection(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    rng_t rng = {5};
    pa_rows_t r;
    pa_gen(&rng, 20000, -30, 60, 0, 100, 10, &r);
    pa_query_t q = {2, {PA_K, PA_S}, INT64_MIN};
    pa_res_t *want;
    size_t nw = pa_model(&r, q.kcols, q.nk, q.vmin, &want);
    for (int stats = 0; stats < 2; stats++) {
        tsr_table_t *t = pa_table(&r, 8192, stats);
        size_t injected = 0;
        for (long n = 0;; n++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, n);
            tsr_table_t *out = NULL;
            tsr_error_t err;
            tsr_status_t rc = pa_run_mem(&mem, pool, &q, t, &out, &err);
            bool failed = atomic_load(&mem.failures) > 0;
            injected += failed;
            if (rc != TSR_OK) {
                assert_int_equal(rc, TSR_ERR_NOMEM);
                assert_null(out);
            } else {
                pa_res_t *got;
                assert_int_equal(pa_read(out, q.kcols, q.nk, &got), nw);
                for (size_t g = 0; g < nw; g++) {
                    assert_int_equal(pa_key_cmp(&got[g], &want[g]), 0);
                    assert_int_equal(got[g].cnt, want[g].cnt);
                    assert_int_equal(got[g].sum, want[g].sum);
                }
                free(got);
                tsr_table_destroy(out);
            }
            if (!failed)
                break;
        }
        assert_true(injected > 5);
        tsr_table_destroy(t);
    }
    free(want);
    pa_rows_free(&r);
    tsr_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_limits),   cmocka_unit_test(test_gids),
        cmocka_unit_test(test_random_groupby),  cmocka_unit_test(test_loose_stats),
        cmocka_unit_test(test_table_stats),     cmocka_unit_test(test_overflow_at_end),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
