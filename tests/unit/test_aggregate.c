/*
 * test_aggregate.c - hash aggregation (tsr_op_aggregate) against a naive
 * model: rows sorted by their key values, runs of equal keys aggregated one
 * row at a time with the reference evaluator of exec_model.h.
 *
 * Covered: random keys (columns of every type and computed expressions) and
 * aggregates (DISTINCT too) over ragged random tables, pre-filters, 1 and 2
 * threads, skew, many groups (parallel merge), SUM overflow (also in the
 * merge of partials), empty inputs, SELECT DISTINCT, dictionary ownership,
 * bad plans, and every allocation failing in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec/exec_internal.h"
#include "exec_model.h"

#define MAXK 4
#define MAXA 16

typedef struct ta_spec {
    size_t nkeys;
    tsr_expr_t *keys[MAXK];
    size_t naggs;
    tsr_agg_t aggs[MAXA];
    tsr_expr_t *pred; /* pre-filter, or NULL */
} ta_spec_t;

static tsr_type_t ta_result_type(tsr_agg_fn_t fn, const tsr_expr_t *arg)
{
    switch (fn) {
    case TSR_AGG_COUNT_STAR:
    case TSR_AGG_COUNT:
        return TSR_TYPE_INT64;
    case TSR_AGG_AVG:
        return TSR_TYPE_DOUBLE;
    default:
        return arg->type;
    }
}

static void ta_spec_agg(ta_spec_t *s, tsr_agg_fn_t fn, tsr_expr_t *arg, bool distinct)
{
    assert_true(s->naggs < MAXA);
    tsr_agg_t *a = &s->aggs[s->naggs++];
    a->fn = fn;
    a->arg = arg;
    a->distinct = distinct;
    a->type = ta_result_type(fn, arg);
}

/* ---- the model -------------------------------------------------------------- */

/* Total order of values of one type: NULL first, -0.0 == 0.0. */
static int ta_cmp(const mval_t *a, const mval_t *b)
{
    if (a->null || b->null)
        return (int)b->null - (int)a->null;
    bool un;
    return model_cmp3(a, b, &un);
}

typedef struct ta_row {
    mval_t k[MAXK];
    size_t i; /* row of the input, in batch order */
} ta_row_t;

static size_t ta_nkeys; /* for the qsort comparators (tests are single-threaded) */

static int ta_row_cmp(const void *pa, const void *pb)
{
    const ta_row_t *a = pa, *b = pb;
    for (size_t k = 0; k < ta_nkeys; k++) {
        int c = ta_cmp(&a->k[k], &b->k[k]);
        if (c)
            return c;
    }
    return 0;
}

static int ta_val_cmp_q(const void *pa, const void *pb)
{
    return ta_cmp(pa, pb);
}

/* A result: rows of ncols values, with a tolerance per value (0: exact). */
typedef struct ta_result {
    size_t nrows, ncols;
    mval_t *v;
    double *tol;
} ta_result_t;

static void ta_result_free(ta_result_t *r)
{
    free(r->v);
    free(r->tol);
    memset(r, 0, sizeof(*r));
}

static const tsr_type_t *ta_types(const tsr_table_t *t, tsr_type_t *buf)
{
    for (size_t c = 0; c < t->ncols; c++)
        buf[c] = t->fields[c].type;
    return buf;
}

/* Aggregates the values vals[0..n) (NULLs included) as agg does. Returns 1
 * when a SUM(INT64) does not fit. */
static int ta_agg(const tsr_agg_t *agg, mval_t *vals, size_t n, mval_t *out, double *tol)
{
    *tol = 0;
    size_t m = 0; /* non-NULL values, moved to the front */
    for (size_t i = 0; i < n; i++)
        if (!vals[i].null)
            vals[m++] = vals[i];
    if (agg->distinct && agg->fn != TSR_AGG_MIN && agg->fn != TSR_AGG_MAX && m > 1) {
        qsort(vals, m, sizeof(mval_t), ta_val_cmp_q);
        size_t u = 1;
        for (size_t i = 1; i < m; i++)
            if (ta_cmp(&vals[i], &vals[u - 1]) != 0)
                vals[u++] = vals[i];
        m = u;
    }
    memset(out, 0, sizeof(*out));
    out->type = agg->type;
    if (agg->fn == TSR_AGG_COUNT_STAR || agg->fn == TSR_AGG_COUNT) {
        out->i = (int64_t)(agg->fn == TSR_AGG_COUNT_STAR ? n : m);
        return 0;
    }
    if (m == 0) {
        *out = mv_null(agg->type);
        return 0;
    }
    if (agg->fn == TSR_AGG_MIN || agg->fn == TSR_AGG_MAX) {
        mval_t best = vals[0];
        for (size_t i = 1; i < m; i++) {
            int c = ta_cmp(&vals[i], &best);
            if (agg->fn == TSR_AGG_MIN ? c < 0 : c > 0)
                best = vals[i];
        }
        *out = best;
        return 0;
    }
    if (vals[0].type == TSR_TYPE_DOUBLE) {
        double sum = 0, abs = 0;
        for (size_t i = 0; i < m; i++) {
            sum += vals[i].d;
            abs += fabs(vals[i].d);
        }
        out->d = agg->fn == TSR_AGG_AVG ? sum / (double)m : sum;
        *tol = 1e-12 * (agg->fn == TSR_AGG_AVG ? abs / (double)m : abs);
        return 0;
    }
    __int128 sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += vals[i].i;
    if (agg->fn == TSR_AGG_AVG) {
        out->d = (double)sum / (double)m;
        return 0;
    }
    if (sum > INT64_MAX || sum < INT64_MIN)
        return 1;
    out->i = (int64_t)sum;
    return 0;
}

/* The expected result of s over t. Returns 0, or 1 when the engine must
 * fail with TSR_ERR_OVERFLOW (an expression or a SUM overflows). */
static int ta_reference(const tsr_table_t *t, const ta_spec_t *s, ta_result_t *res)
{
    mrows_t all = model_from_table(t);
    ta_row_t *rows = calloc(t->nrows + 1, sizeof(ta_row_t));
    assert_non_null(rows);
    size_t n = 0;
    int ovf = 0;
    for (size_t i = 0; i < all.n; i++) {
        if (s->pred) {
            mval_t p;
            ovf |= model_eval(s->pred, mrow(&all, i), &p);
            if (p.null || !p.i)
                continue;
        }
        for (size_t k = 0; k < s->nkeys; k++)
            ovf |= model_eval(s->keys[k], mrow(&all, i), &rows[n].k[k]);
        rows[n++].i = i;
    }
    ta_nkeys = s->nkeys;
    qsort(rows, n, sizeof(ta_row_t), ta_row_cmp);
    size_t ncols = s->nkeys + s->naggs;
    res->ncols = ncols;
    res->nrows = 0;
    res->v = calloc((n + 1) * ncols + 1, sizeof(mval_t));
    res->tol = calloc((n + 1) * ncols + 1, sizeof(double));
    mval_t *vals = calloc(n + 1, sizeof(mval_t));
    assert_non_null(res->v);
    assert_non_null(res->tol);
    assert_non_null(vals);
    for (size_t lo = 0; lo < n || (lo == 0 && s->nkeys == 0);) {
        size_t hi = lo + 1;
        while (hi < n && ta_row_cmp(&rows[lo], &rows[hi]) == 0)
            hi++;
        if (n == 0)
            hi = 0; /* no keys, no rows: one row of empty aggregates */
        mval_t *out = &res->v[res->nrows * ncols];
        double *tol = &res->tol[res->nrows * ncols];
        for (size_t k = 0; k < s->nkeys; k++)
            out[k] = rows[lo].k[k];
        for (size_t a = 0; a < s->naggs; a++) {
            const tsr_agg_t *agg = &s->aggs[a];
            for (size_t i = lo; i < hi; i++) {
                if (agg->arg)
                    ovf |= model_eval(agg->arg, mrow(&all, rows[i].i), &vals[i - lo]);
                else
                    vals[i - lo] = mv_bool(true);
            }
            ovf |= ta_agg(agg, vals, hi - lo, &out[s->nkeys + a], &tol[s->nkeys + a]);
        }
        res->nrows++;
        if (hi <= lo)
            break;
        lo = hi;
    }
    free(vals);
    free(rows);
    mrows_free(&all);
    return ovf;
}

/* ---- running the engine ------------------------------------------------------------ */

static int ta_resrow_cmp(const void *pa, const void *pb)
{
    const mval_t *a = pa, *b = pb;
    for (size_t k = 0; k < ta_nkeys; k++) {
        int c = ta_cmp(&a[k], &b[k]);
        if (c)
            return c;
    }
    return 0;
}

static void ta_table_result(const tsr_table_t *t, ta_result_t *res)
{
    for (size_t b = 0; b < t->nbatches; b++) {
        assert_true(t->batches[b].nrows <= TSR_BATCH_ROWS);
        for (size_t c = 0; c < t->ncols; c++)
            assert_int_equal(t->batches[b].cols[c].type, t->fields[c].type);
    }
    mrows_t m = model_from_table(t);
    res->v = m.v;
    res->nrows = m.n;
    res->ncols = m.ncols;
    assert_int_equal(res->nrows, t->nrows);
}

static void ta_plan(const ta_spec_t *s, tsr_plan_t *plan, tsr_type_t *types, char **names,
                    char (*namebuf)[8])
{
    memset(plan, 0, sizeof(*plan));
    plan->kind = TSR_PLAN_AGGREGATE;
    plan->ncols = s->nkeys + s->naggs;
    for (size_t c = 0; c < plan->ncols; c++) {
        types[c] = c < s->nkeys ? s->keys[c]->type : s->aggs[c - s->nkeys].type;
        snprintf(namebuf[c], 8, "c%zu", c);
        names[c] = namebuf[c];
    }
    plan->types = types;
    plan->names = names;
    plan->keys = (tsr_expr_t **)s->keys;
    plan->nkeys = s->nkeys;
    plan->aggs = (tsr_agg_t *)s->aggs;
    plan->naggs = s->naggs;
}

static tsr_status_t ta_run(tsr_mem_t *mem, tsr_pool_t *pool, const ta_spec_t *s, tsr_table_t *t,
                           bool is_base, tsr_table_t **out, tsr_error_t *err)
{
    tsr_plan_t plan;
    tsr_type_t types[MAXK + MAXA];
    char *names[MAXK + MAXA];
    char namebuf[MAXK + MAXA][8];
    ta_plan(s, &plan, types, names, namebuf);
    tsr_exec_ctx_t ctx = {.mem = mem, .pool = pool};
    tsr_op_input_t in = {.table = t, .is_base = is_base};
    tsr_error_clear(err);
    return tsr_op_aggregate(&ctx, &plan, s->pred, in, out, err);
}

static void ta_print_row(const char *what, const mval_t *row, size_t ncols)
{
    char buf[64];
    printf("%s:", what);
    for (size_t c = 0; c < ncols; c++) {
        mv_print(&row[c], buf, sizeof(buf));
        printf(" %s", buf);
    }
    printf("\n");
}

/* Runs s over t with and without threads and compares with the model. */
static void ta_check(tsr_table_t *t, const ta_spec_t *s, tsr_pool_t *pool)
{
    ta_result_t want = {0};
    int ovf = ta_reference(t, s, &want);
    for (int threads = 0; threads < 2; threads++) {
        tsr_table_t *out = NULL;
        tsr_error_t err;
        tsr_status_t rc = ta_run(NULL, threads ? pool : NULL, s, t, true, &out, &err);
        if (ovf) {
            if (rc != TSR_ERR_OVERFLOW)
                printf("expected overflow, got %d (%s)\n", rc, err.message);
            assert_int_equal(rc, TSR_ERR_OVERFLOW);
            assert_true(err.message[0] != '\0');
            continue;
        }
        if (rc != TSR_OK)
            printf("aggregate failed: %s\n", err.message);
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(out->ncols, s->nkeys + s->naggs);
        ta_result_t got = {0};
        ta_table_result(out, &got);
        ta_nkeys = s->nkeys;
        qsort(got.v, got.nrows, got.ncols * sizeof(mval_t), ta_resrow_cmp);
        if (got.nrows != want.nrows)
            printf("rows: got %zu, want %zu\n", got.nrows, want.nrows);
        assert_int_equal(got.nrows, want.nrows);
        for (size_t r = 0; r < got.nrows; r++) {
            const mval_t *g = &got.v[r * got.ncols], *w = &want.v[r * got.ncols];
            const double *tol = &want.tol[r * got.ncols];
            for (size_t c = 0; c < got.ncols; c++) {
                bool same = mv_same(&g[c], &w[c]);
                if (!same && tol[c] > 0 && !g[c].null && !w[c].null)
                    same = fabs(g[c].d - w[c].d) <= tol[c];
                if (!same) {
                    printf("row %zu column %zu differs (threads=%d)\n", r, c, threads);
                    ta_print_row("got ", g, got.ncols);
                    ta_print_row("want", w, got.ncols);
                }
                assert_true(same);
            }
        }
        ta_result_free(&got);
        tsr_table_destroy(out);
    }
    ta_result_free(&want);
}

/* ---- random specs ------------------------------------------------------------------- */

static tsr_expr_t *ta_gen_key(tsr_arena_t *ar, rng_t *rng)
{
    if (rng_pct(rng, 20)) {
        static const tsr_type_t ts[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE, TSR_TYPE_BOOL};
        return gen_expr(ar, rng, ts[rng_below(rng, 3)], 2);
    }
    size_t c = rng_below(rng, MC_NCOLS);
    return ex_col(ar, c, model_types[c]);
}

static tsr_expr_t *ta_gen_arg(tsr_arena_t *ar, rng_t *rng, bool numeric)
{
    if (rng_pct(rng, 20)) {
        static const tsr_type_t ts[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE};
        return gen_expr(ar, rng, ts[rng_below(rng, 2)], 2);
    }
    static const size_t num[] = {MC_I1, MC_I2, MC_I3, MC_D1, MC_I2, MC_D1};
    size_t c = numeric ? num[rng_below(rng, 6)] : rng_below(rng, MC_NCOLS);
    return ex_col(ar, c, model_types[c]);
}

static void ta_gen_spec(tsr_arena_t *ar, rng_t *rng, ta_spec_t *s)
{
    memset(s, 0, sizeof(*s));
    s->nkeys = rng_below(rng, 4);
    for (size_t k = 0; k < s->nkeys; k++)
        s->keys[k] = ta_gen_key(ar, rng);
    size_t naggs = rng_below(rng, 7) + (s->nkeys == 0);
    for (size_t a = 0; a < naggs; a++) {
        tsr_agg_fn_t fn = (tsr_agg_fn_t)rng_below(rng, 6);
        bool distinct = rng_pct(rng, 25);
        switch (fn) {
        case TSR_AGG_COUNT_STAR:
            ta_spec_agg(s, fn, NULL, false);
            break;
        case TSR_AGG_SUM:
        case TSR_AGG_AVG:
            ta_spec_agg(s, fn, ta_gen_arg(ar, rng, true), distinct);
            break;
        default:
            ta_spec_agg(s, fn, ta_gen_arg(ar, rng, false), distinct);
            break;
        }
    }
    if (rng_pct(rng, 40))
        s->pred = gen_expr(ar, rng, TSR_TYPE_BOOL, 2);
}

static void test_random(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    static const size_t sizes[] = {0, 1, 7, 8191, 8192, 8193, 3 * 8192 + 17, 20011};
    rng_t rng = {12345};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        for (int ragged = 0; ragged < 2; ragged++) {
            tsr_table_t *t = model_table(NULL, sizes[si], 100 + si * 2 + (size_t)ragged, ragged);
            assert_non_null(t);
            for (int iter = 0; iter < 4; iter++) {
                tsr_arena_t ar;
                tsr_arena_init(&ar, NULL);
                ta_spec_t s;
                ta_gen_spec(&ar, &rng, &s);
                ta_check(t, &s, pool);
                tsr_arena_release(&ar);
            }
            tsr_table_destroy(t);
        }
    }
    tsr_pool_destroy(pool);
}

/* Every aggregate over every column type, with fixed keys of each type. */
static void test_all_aggregates(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 20011, 7, true);
    static const size_t keycols[] = {MC_I1, MC_I2, MC_D1, MC_B1, MC_S1, MC_S2, MC_S3};
    for (size_t kc = 0; kc <= sizeof(keycols) / sizeof(keycols[0]); kc++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        ta_spec_t s;
        memset(&s, 0, sizeof(s));
        if (kc < sizeof(keycols) / sizeof(keycols[0])) {
            s.keys[s.nkeys++] = ex_col(&ar, keycols[kc], model_types[keycols[kc]]);
        } else { /* composite of mixed types */
            s.keys[s.nkeys++] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
            s.keys[s.nkeys++] = ex_col(&ar, MC_B1, TSR_TYPE_BOOL);
            s.keys[s.nkeys++] = ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE);
            s.keys[s.nkeys++] = ex_col(&ar, MC_I2, TSR_TYPE_INT64);
        }
        ta_spec_agg(&s, TSR_AGG_COUNT_STAR, NULL, false);
        ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, MC_S3, TSR_TYPE_VARCHAR), false);
        ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_I2, TSR_TYPE_INT64), false);
        ta_spec_agg(&s, TSR_AGG_AVG, ex_col(&ar, MC_I3, TSR_TYPE_INT64), false);
        ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), false);
        ta_spec_agg(&s, TSR_AGG_MIN, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), false);
        ta_spec_agg(&s, TSR_AGG_MAX, ex_col(&ar, MC_S2, TSR_TYPE_VARCHAR), false);
        ta_spec_agg(&s, TSR_AGG_MIN, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), false);
        ta_spec_agg(&s, TSR_AGG_MAX, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), false);
        ta_spec_agg(&s, TSR_AGG_MIN, ex_col(&ar, MC_I3, TSR_TYPE_INT64), false);
        ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), true);
        ta_spec_agg(&s, TSR_AGG_AVG, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), true);
        ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), false);
        s.aggs[s.naggs - 1].type = TSR_TYPE_INT64; /* SUM over BOOL counts TRUEs */
        ta_check(t, &s, pool);
        /* the same over the pre-filter i2 > 0 */
        s.pred = ex_bin(&ar, TSR_OP_GT, ex_col(&ar, MC_I2, TSR_TYPE_INT64), ex_int(&ar, 0));
        ta_check(t, &s, pool);
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(t);
    tsr_pool_destroy(pool);
}

/* Expressions of keys and arguments see only the rows the pre-filter keeps:
 * i3 * 2 overflows on the extremes of i3, which the filter removes. */
static void test_prefilter_guards_expressions(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 20000, 12, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *i3 = ex_col(&ar, MC_I3, TSR_TYPE_INT64);
    ta_spec_t s;
    memset(&s, 0, sizeof(s));
    s.keys[s.nkeys++] = ex_bin(&ar, TSR_OP_MUL, i3, ex_int(&ar, 2));
    s.keys[s.nkeys++] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
    ta_spec_agg(&s, TSR_AGG_SUM, ex_bin(&ar, TSR_OP_MUL, i3, ex_int(&ar, 3)), false);
    ta_spec_agg(&s, TSR_AGG_MAX, ex_col(&ar, MC_I2, TSR_TYPE_INT64), false);
    s.pred = ex_bin(&ar, TSR_OP_AND, ex_bin(&ar, TSR_OP_GE, i3, ex_int(&ar, -10)),
                    ex_bin(&ar, TSR_OP_LE, i3, ex_int(&ar, 10)));
    ta_check(t, &s, pool);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
    tsr_pool_destroy(pool);
}

/* ---- custom INT64 tables -------------------------------------------------------------- */

/* A table of INT64 columns k, v (v NULL where nullv says) in batches of bs rows. */
static tsr_table_t *ta_int_table(size_t n, size_t bs, const int64_t *k, const int64_t *v,
                                 const bool *nullv)
{
    static const char *const names[2] = {"k", "v"};
    static const tsr_type_t types[2] = {TSR_TYPE_INT64, TSR_TYPE_INT64};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "ints", 2, names, types, &t), TSR_OK);
    for (size_t o = 0; o < n; o += bs) {
        size_t m = n - o < bs ? n - o : bs;
        tsr_vector_t *cols = calloc(2, sizeof(tsr_vector_t));
        assert_non_null(cols);
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, m, false, NULL, &cols[0]), TSR_OK);
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, m, nullv != NULL, NULL, &cols[1]),
                         TSR_OK);
        memcpy(cols[0].data, k + o, m * sizeof(int64_t));
        memcpy(cols[1].data, v + o, m * sizeof(int64_t));
        for (size_t i = 0; nullv && i < m; i++)
            tsr_bit_set(cols[1].owned_validity, i, !nullv[o + i]);
        assert_int_equal(tsr_table_append_batch(t, m, cols), TSR_OK);
    }
    return t;
}

static void ta_sum_spec(tsr_arena_t *ar, ta_spec_t *s, bool with_key)
{
    memset(s, 0, sizeof(*s));
    if (with_key)
        s->keys[s->nkeys++] = ex_col(ar, 0, TSR_TYPE_INT64);
    ta_spec_agg(s, TSR_AGG_SUM, ex_col(ar, 1, TSR_TYPE_INT64), false);
    ta_spec_agg(s, TSR_AGG_COUNT_STAR, NULL, false);
    ta_spec_agg(s, TSR_AGG_AVG, ex_col(ar, 1, TSR_TYPE_INT64), false);
}

/* SUM(INT64) fails only when the final sum does not fit, wherever the
 * partial sums were added (one batch per value: with 2 threads the values
 * land in different partials and the overflow shows only in the merge). */
static void test_sum_overflow(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    struct {
        int64_t v[4];
        size_t n;
        bool overflow;
    } cases[] = {
        {{INT64_MAX, 1}, 2, true},
        {{INT64_MIN, -1}, 2, true},
        {{INT64_MAX, 1, -5}, 3, false}, /* fits in the end */
        {{INT64_MAX / 2 + 1, INT64_MAX / 2 + 1}, 2, true},
        {{INT64_MIN, INT64_MAX, INT64_MAX}, 3, false},
        {{INT64_MIN, 0}, 2, false},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        int64_t k[4] = {7, 7, 7, 7};
        for (size_t bs = 1; bs <= 4; bs += 3) {
            tsr_table_t *t = ta_int_table(cases[c].n, bs, k, cases[c].v, NULL);
            for (int with_key = 0; with_key < 2; with_key++) {
                tsr_arena_t ar;
                tsr_arena_init(&ar, NULL);
                ta_spec_t s;
                ta_sum_spec(&ar, &s, with_key);
                for (int threads = 0; threads < 2; threads++) {
                    tsr_table_t *out = NULL;
                    tsr_error_t err;
                    tsr_status_t rc = ta_run(NULL, threads ? pool : NULL, &s, t, true, &out, &err);
                    if (cases[c].overflow) {
                        assert_int_equal(rc, TSR_ERR_OVERFLOW);
                        assert_string_equal(err.message, "integer overflow in SUM");
                        assert_null(out);
                    } else {
                        assert_int_equal(rc, TSR_OK);
                        tsr_table_destroy(out);
                    }
                }
                ta_check(t, &s, pool);
                tsr_arena_release(&ar);
            }
            tsr_table_destroy(t);
        }
    }
    tsr_pool_destroy(pool);
}

/* One key holds 90% of the rows; tens of thousands of other keys make the
 * merge of two workers' partials run in parallel by partition. */
static void test_skew_and_many_groups(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    static const size_t ns[] = {100003, 45007};
    for (size_t ni = 0; ni < 2; ni++) {
        size_t n = ns[ni];
        int64_t *k = malloc(n * sizeof(int64_t)), *v = malloc(n * sizeof(int64_t));
        bool *nv = malloc(n * sizeof(bool));
        assert_true(k && v && nv);
        rng_t rng = {99 + ni};
        for (size_t i = 0; i < n; i++) {
            bool skew = ni == 0 ? rng_pct(&rng, 90) : rng_pct(&rng, 5);
            k[i] = skew ? -42 : (int64_t)rng_below(&rng, 50000) - 25000;
            v[i] = (int64_t)rng_below(&rng, 1000) - 500;
            nv[i] = rng_pct(&rng, 10);
        }
        tsr_table_t *t = ta_int_table(n, TSR_BATCH_ROWS, k, v, nv);
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        ta_spec_t s;
        ta_sum_spec(&ar, &s, true);
        ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, 1, TSR_TYPE_INT64), true);
        ta_spec_agg(&s, TSR_AGG_MIN, ex_col(&ar, 1, TSR_TYPE_INT64), false);
        ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, 1, TSR_TYPE_INT64), true);
        ta_check(t, &s, pool);
        /* two keys, one computed: (k, v % 3) */
        s.keys[s.nkeys++] = ex_bin(&ar, TSR_OP_MOD, ex_col(&ar, 1, TSR_TYPE_INT64), ex_int(&ar, 3));
        ta_check(t, &s, pool);
        tsr_arena_release(&ar);
        tsr_table_destroy(t);
        free(k);
        free(v);
        free(nv);
    }
    tsr_pool_destroy(pool);
}

/* No grouping keys: one row even for no input; with keys: no rows. */
static void test_empty_input(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 0, 5, false);
    assert_int_equal(t->nbatches, 0);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    ta_spec_t s;
    memset(&s, 0, sizeof(s));
    ta_spec_agg(&s, TSR_AGG_COUNT_STAR, NULL, false);
    ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_I2, TSR_TYPE_INT64), false);
    ta_spec_agg(&s, TSR_AGG_MIN, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), false);
    ta_spec_agg(&s, TSR_AGG_AVG, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), true);
    ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), false);
    ta_check(t, &s, pool);

    /* the same over a scan-like table that owns no dictionary */
    tsr_table_t *bare;
    tsr_type_t types[MC_NCOLS];
    assert_int_equal(tsr_table_create(NULL, NULL, MC_NCOLS, model_names, ta_types(t, types), &bare),
                     TSR_OK);
    tsr_table_t *out;
    tsr_error_t err;
    assert_int_equal(ta_run(NULL, pool, &s, bare, true, &out, &err), TSR_OK);
    assert_int_equal(out->nrows, 1);
    assert_non_null(out->batches[0].cols[2].dict);
    assert_true(tsr_vector_is_null(&out->batches[0].cols[2], 0));
    assert_int_equal(((int64_t *)out->batches[0].cols[0].data)[0], 0);
    tsr_table_destroy(out);

    /* a pre-filter that rejects everything of a non-empty table */
    tsr_table_t *full = model_table(NULL, 9000, 6, true);
    s.pred = ex_bool(&ar, false);
    ta_check(full, &s, pool);
    s.keys[s.nkeys++] = ex_col(&ar, MC_S2, TSR_TYPE_VARCHAR);
    ta_check(full, &s, pool);
    ta_check(t, &s, pool);
    tsr_table_destroy(full);
    tsr_table_destroy(bare);
    tsr_table_destroy(t);
    tsr_arena_release(&ar);
    tsr_pool_destroy(pool);
}

/* SELECT DISTINCT: keys only. */
static void test_select_distinct(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 25000, 8, true);
    static const size_t sets[][3] = {
        {MC_S1, MC_B1, 99}, {MC_I1, MC_I2, 99}, {MC_D1, 99, 99}, {MC_S3, MC_S2, MC_I1}};
    for (size_t i = 0; i < 4; i++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        ta_spec_t s;
        memset(&s, 0, sizeof(s));
        for (size_t k = 0; k < 3 && sets[i][k] != 99; k++)
            s.keys[s.nkeys++] = ex_col(&ar, sets[i][k], model_types[sets[i][k]]);
        ta_check(t, &s, pool);
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(t);
    tsr_pool_destroy(pool);
}

/* An intermediate input owning a dictionary the output uses becomes a
 * dependency of the output; otherwise it stays the caller's. */
static void test_input_ownership(void **state)
{
    (void)state;
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    ta_spec_t s;
    memset(&s, 0, sizeof(s));
    s.keys[s.nkeys++] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
    ta_spec_agg(&s, TSR_AGG_COUNT_STAR, NULL, false);
    tsr_table_t *t = model_table(NULL, 1000, 9, false), *out;
    tsr_error_t err;
    assert_int_equal(ta_run(NULL, NULL, &s, t, false, &out, &err), TSR_OK);
    assert_true(tsr_exec_has_dep(out, t));
    assert_true(out->batches[0].cols[0].dict == t->dicts[MC_S1]);
    tsr_table_destroy(out); /* destroys t too */

    memset(&s, 0, sizeof(s));
    s.keys[s.nkeys++] = ex_col(&ar, MC_I1, TSR_TYPE_INT64);
    ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), true);
    t = model_table(NULL, 1000, 9, false);
    assert_int_equal(ta_run(NULL, NULL, &s, t, false, &out, &err), TSR_OK);
    assert_false(tsr_exec_has_dep(out, t));
    tsr_table_destroy(out);
    tsr_table_destroy(t);
    tsr_arena_release(&ar);
}

static void test_bad_plans(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 100, 10, false), *out = NULL;
    tsr_error_t err;
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    ta_spec_t s;
    memset(&s, 0, sizeof(s));
    s.keys[s.nkeys++] = ex_col(&ar, MC_NCOLS + 3, TSR_TYPE_INT64); /* no such column */
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_INTERNAL);
    s.keys[0] = ex_col(&ar, MC_I1, TSR_TYPE_DOUBLE); /* wrong type */
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_INTERNAL);
    s.keys[0] = ex_str(&ar, "x", 1); /* a computed VARCHAR key */
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_UNSUPPORTED);
    s.keys[0] = ex_col(&ar, MC_I1, TSR_TYPE_INT64);
    ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), false); /* SUM(VARCHAR) */
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_INTERNAL);
    s.aggs[0].arg = ex_col(&ar, MC_B1, TSR_TYPE_BOOL); /* SUM(BOOL) typed BOOL */
    s.aggs[0].type = TSR_TYPE_BOOL;
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_INTERNAL);
    s.aggs[0].fn = TSR_AGG_AVG; /* AVG typed BIGINT */
    s.aggs[0].type = TSR_TYPE_INT64;
    assert_int_equal(ta_run(NULL, NULL, &s, t, true, &out, &err), TSR_ERR_INTERNAL);
    assert_null(out);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* Each allocation failing in turn: a clean NOMEM (ASan checks leaks), until
 * a run needs no more allocations than the countdown allows. */
static void test_fault_injection(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 6000, 11, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    ta_spec_t s;
    memset(&s, 0, sizeof(s));
    s.keys[s.nkeys++] = ex_col(&ar, MC_I2, TSR_TYPE_INT64);
    s.keys[s.nkeys++] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
    ta_spec_agg(&s, TSR_AGG_SUM, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), false);
    ta_spec_agg(&s, TSR_AGG_COUNT, ex_col(&ar, MC_I1, TSR_TYPE_INT64), true);
    ta_spec_agg(&s, TSR_AGG_MAX, ex_col(&ar, MC_S3, TSR_TYPE_VARCHAR), false);
    ta_spec_agg(&s, TSR_AGG_SUM,
                ex_bin(&ar, TSR_OP_MUL, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, 2)), false);
    s.pred = ex_bin(&ar, TSR_OP_NE, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, 3));
    for (int threads = 0; threads < 2; threads++) {
        bool done = false;
        long fail;
        for (fail = 0; fail < 100000 && !done; fail++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, fail);
            tsr_table_t *out = NULL;
            tsr_error_t err;
            tsr_status_t rc = ta_run(&mem, threads ? pool : NULL, &s, t, true, &out, &err);
            if (atomic_load(&mem.failures) == 0) {
                assert_int_equal(rc, TSR_OK);
                done = true;
            } else {
                assert_int_equal(rc, TSR_ERR_NOMEM);
                assert_null(out);
            }
            tsr_table_destroy(out);
        }
        printf("fault injection, %d thread(s): %ld allocations\n", threads + 1, fail);
        assert_true(done);
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
    tsr_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),          cmocka_unit_test(test_all_aggregates),
        cmocka_unit_test(test_sum_overflow),    cmocka_unit_test(test_skew_and_many_groups),
        cmocka_unit_test(test_empty_input),     cmocka_unit_test(test_select_distinct),
        cmocka_unit_test(test_input_ownership), cmocka_unit_test(test_bad_plans),
        cmocka_unit_test(test_fault_injection), cmocka_unit_test(test_prefilter_guards_expressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
