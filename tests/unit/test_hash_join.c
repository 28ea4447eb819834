/*
 * test_hash_join.c - the inner hash join (tsr_op_hash_join) against a
 * nested-loop model over rows of values (exec_model.h's reference evaluator),
 * compared as multisets.
 *
 * Covered: keys of every type, composite and computed keys, duplicates on
 * both sides (many output chunks per probe batch), NULL keys, VARCHAR keys
 * across two dictionaries and within one, residual predicates over both
 * sides, empty sides, a join without keys, 1 and 2 threads, input
 * ownership, bad plans, and every allocation failing in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec/exec_internal.h"
#include "exec_model.h"

#define TJ_MAXK 3

typedef struct tj_spec {
    size_t nkeys;
    tsr_expr_t *lkeys[TJ_MAXK];
    tsr_expr_t *rkeys[TJ_MAXK];
    tsr_expr_t *residual;
} tj_spec_t;

/* Total order for sorting rows: NULL first, numbers by value, strings bytewise. */
static int tj_cmp1(const mval_t *a, const mval_t *b)
{
    if (a->null || b->null)
        return (int)b->null - (int)a->null;
    bool un;
    return model_cmp3(a, b, &un);
}

static size_t tj_ncols; /* for qsort (tests are single-threaded) */

static int tj_row_cmp(const void *pa, const void *pb)
{
    const mval_t *a = pa, *b = pb;
    for (size_t c = 0; c < tj_ncols; c++) {
        int d = tj_cmp1(&a[c], &b[c]);
        if (d)
            return d;
    }
    return 0;
}

/* Expected rows of the join; returns 1 when an expression overflows. */
static int tj_reference(const tsr_table_t *l, const tsr_table_t *r, const tj_spec_t *s,
                        mrows_t *out)
{
    mrows_t lm = model_from_table(l), rm = model_from_table(r);
    size_t ncols = l->ncols + r->ncols;
    int ovf = 0;
    mval_t *lk = calloc(lm.n * TJ_MAXK + 1, sizeof(mval_t));
    mval_t *rk = calloc(rm.n * TJ_MAXK + 1, sizeof(mval_t));
    assert_true(lk && rk);
    for (size_t i = 0; i < lm.n; i++)
        for (size_t k = 0; k < s->nkeys; k++)
            ovf |= model_eval(s->lkeys[k], mrow(&lm, i), &lk[i * TJ_MAXK + k]);
    for (size_t i = 0; i < rm.n; i++)
        for (size_t k = 0; k < s->nkeys; k++)
            ovf |= model_eval(s->rkeys[k], mrow(&rm, i), &rk[i * TJ_MAXK + k]);
    size_t cap = 1024;
    out->ncols = ncols;
    out->n = 0;
    out->v = malloc(cap * ncols * sizeof(mval_t));
    mval_t *joined = malloc((ncols ? ncols : 1) * sizeof(mval_t));
    assert_true(out->v && joined);
    for (size_t i = 0; i < lm.n; i++) {
        for (size_t j = 0; j < rm.n; j++) {
            bool match = true;
            for (size_t k = 0; k < s->nkeys && match; k++) {
                const mval_t *a = &lk[i * TJ_MAXK + k], *b = &rk[j * TJ_MAXK + k];
                match = !a->null && !b->null && model_cmp_op(TSR_OP_EQ, a, b);
            }
            if (!match)
                continue;
            memcpy(joined, mrow(&lm, i), l->ncols * sizeof(mval_t));
            memcpy(joined + l->ncols, mrow(&rm, j), r->ncols * sizeof(mval_t));
            if (s->residual) {
                mval_t v;
                ovf |= model_eval(s->residual, joined, &v);
                if (v.null || !v.i)
                    continue;
            }
            if (out->n == cap) {
                cap *= 2;
                out->v = realloc(out->v, cap * ncols * sizeof(mval_t));
                assert_non_null(out->v);
            }
            memcpy(mrow(out, out->n++), joined, ncols * sizeof(mval_t));
        }
    }
    free(joined);
    free(lk);
    free(rk);
    mrows_free(&lm);
    mrows_free(&rm);
    return ovf;
}

static tsr_status_t tj_run(tsr_mem_t *mem, tsr_pool_t *pool, const tj_spec_t *s, tsr_table_t *l,
                           bool lbase, tsr_table_t *r, bool rbase, tsr_table_t **out,
                           tsr_error_t *err)
{
    size_t ncols = l->ncols + r->ncols;
    tsr_type_t types[32];
    char *names[32];
    char namebuf[32][8];
    assert_true(ncols <= 32);
    for (size_t c = 0; c < ncols; c++) {
        types[c] = c < l->ncols ? l->fields[c].type : r->fields[c - l->ncols].type;
        snprintf(namebuf[c], sizeof(namebuf[c]), "c%zu", c);
        names[c] = namebuf[c];
    }
    tsr_plan_t plan;
    memset(&plan, 0, sizeof(plan));
    plan.kind = TSR_PLAN_HASH_JOIN;
    plan.ncols = ncols;
    plan.types = types;
    plan.names = names;
    plan.left_keys = (tsr_expr_t **)s->lkeys;
    plan.right_keys = (tsr_expr_t **)s->rkeys;
    plan.njoin_keys = s->nkeys;
    plan.residual = s->residual;
    tsr_exec_ctx_t ctx = {.mem = mem, .pool = pool};
    tsr_op_input_t li = {.table = l, .is_base = lbase}, ri = {.table = r, .is_base = rbase};
    tsr_error_clear(err);
    *out = NULL;
    return tsr_op_hash_join(&ctx, &plan, li, ri, out, err);
}

static void tj_check(tsr_table_t *l, tsr_table_t *r, const tj_spec_t *s, tsr_pool_t *pool)
{
    mrows_t want;
    int ovf = tj_reference(l, r, s, &want);
    tj_ncols = want.ncols;
    qsort(want.v, want.n, want.ncols * sizeof(mval_t), tj_row_cmp);
    for (int threads = 0; threads < 2; threads++) {
        tsr_table_t *out;
        tsr_error_t err;
        tsr_status_t rc = tj_run(NULL, threads ? pool : NULL, s, l, true, r, true, &out, &err);
        if (ovf) {
            assert_int_equal(rc, TSR_ERR_OVERFLOW);
            continue;
        }
        if (rc != TSR_OK)
            printf("join failed: %s\n", err.message);
        assert_int_equal(rc, TSR_OK);
        for (size_t b = 0; b < out->nbatches; b++) {
            assert_true(out->batches[b].nrows > 0 && out->batches[b].nrows <= TSR_BATCH_ROWS);
            for (size_t c = 0; c < out->ncols; c++)
                assert_int_equal(out->batches[b].cols[c].type, out->fields[c].type);
        }
        mrows_t got = model_from_table(out);
        qsort(got.v, got.n, got.ncols * sizeof(mval_t), tj_row_cmp);
        if (got.n != want.n)
            printf("rows: got %zu, want %zu (threads=%d)\n", got.n, want.n, threads);
        assert_int_equal(got.n, want.n);
        for (size_t i = 0; i < got.n; i++) {
            for (size_t c = 0; c < got.ncols; c++) {
                if (!mv_same(&mrow(&got, i)[c], &mrow(&want, i)[c])) {
                    char g[128], w[128];
                    mv_print(&mrow(&got, i)[c], g, sizeof(g));
                    mv_print(&mrow(&want, i)[c], w, sizeof(w));
                    printf("row %zu column %zu: got %s, want %s\n", i, c, g, w);
                }
                assert_true(mv_same(&mrow(&got, i)[c], &mrow(&want, i)[c]));
            }
        }
        mrows_free(&got);
        tsr_table_destroy(out);
    }
    mrows_free(&want);
}

static void tj_key(tsr_arena_t *ar, tj_spec_t *s, size_t lcol, size_t rcol)
{
    assert_true(s->nkeys < TJ_MAXK);
    s->lkeys[s->nkeys] = ex_col(ar, lcol, model_types[lcol]);
    s->rkeys[s->nkeys] = ex_col(ar, rcol, model_types[rcol]);
    s->nkeys++;
}

/* Right column c of the joined layout. */
static tsr_expr_t *tj_rcol(tsr_arena_t *ar, size_t c)
{
    return ex_col(ar, MC_NCOLS + c, model_types[c]);
}

static void test_key_types(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    /* batches of random sizes; two tables, hence two sets of dictionaries */
    tsr_table_t *l = model_table(NULL, 1500, 21, true), *r = model_table(NULL, 700, 22, true);
    static const size_t pairs[][2] = {{MC_I1, MC_I1}, {MC_I2, MC_I2}, {MC_D1, MC_D1},
                                      {MC_B1, MC_B1}, {MC_S1, MC_S1}, {MC_S1, MC_S2},
                                      {MC_S2, MC_S3}, {MC_I3, MC_I3}};
    for (size_t p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        tj_spec_t s;
        memset(&s, 0, sizeof(s));
        tj_key(&ar, &s, pairs[p][0], pairs[p][1]);
        if (pairs[p][0] == MC_B1) /* BOOL alone explodes; narrow it down */
            tj_key(&ar, &s, MC_I1, MC_I1);
        tj_check(l, r, &s, pool);
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(l);
    tsr_table_destroy(r);
    tsr_pool_destroy(pool);
}

static void test_composite_computed_residual(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *l = model_table(NULL, 8500, 31, false), *r = model_table(NULL, 600, 32, true);
    rng_t rng = {33};
    for (int iter = 0; iter < 8; iter++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        tj_spec_t s;
        memset(&s, 0, sizeof(s));
        switch (iter % 4) {
        case 0: /* composite of mixed types, cross-dictionary strings */
            tj_key(&ar, &s, MC_I1, MC_I1);
            tj_key(&ar, &s, MC_S1, MC_S2);
            break;
        case 1: /* computed keys: l.i1 + 1 = r.i2 */
            s.lkeys[0] =
                ex_bin(&ar, TSR_OP_ADD, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, 1));
            s.rkeys[0] = ex_col(&ar, MC_I2, TSR_TYPE_INT64);
            s.nkeys = 1;
            break;
        case 2: /* three keys */
            tj_key(&ar, &s, MC_B1, MC_B1);
            tj_key(&ar, &s, MC_S3, MC_S1);
            tj_key(&ar, &s, MC_I1, MC_I1);
            break;
        default: /* doubles, computed on the right */
            s.lkeys[0] = ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE);
            s.rkeys[0] =
                ex_bin(&ar, TSR_OP_MUL, ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE), ex_dbl(&ar, -1));
            s.nkeys = 1;
            break;
        }
        if (iter >= 4) /* residuals over both sides */
            s.residual = iter == 4 ? ex_bin(&ar, TSR_OP_LT, ex_col(&ar, MC_I2, TSR_TYPE_INT64),
                                            tj_rcol(&ar, MC_I2))
                                   : ex_bin(&ar, TSR_OP_OR, gen_expr(&ar, &rng, TSR_TYPE_BOOL, 2),
                                            ex_isnull(&ar, tj_rcol(&ar, MC_S3), false));
        tj_check(l, r, &s, pool);
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(l);
    tsr_table_destroy(r);
    tsr_pool_destroy(pool);
}

/* One dictionary on both sides (a self-join), and no keys at all. */
static void test_self_and_cross(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *t = model_table(NULL, 1200, 41, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    tj_key(&ar, &s, MC_S1, MC_S3);
    tj_check(t, t, &s, pool);
    memset(&s, 0, sizeof(s));
    tsr_table_t *small = model_table(NULL, 97, 42, true);
    s.residual = ex_bin(&ar, TSR_OP_EQ, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), tj_rcol(&ar, MC_B1));
    tj_check(t, small, &s, pool); /* no equi keys: every pair, then the residual */
    tsr_table_destroy(small);
    tsr_table_destroy(t);
    tsr_arena_release(&ar);
    tsr_pool_destroy(pool);
}

static void test_empty_sides(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *e1 = model_table(NULL, 0, 51, true), *e2 = model_table(NULL, 0, 52, false);
    tsr_table_t *t = model_table(NULL, 3000, 53, true), *one = model_table(NULL, 1, 54, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    tj_key(&ar, &s, MC_S1, MC_S1);
    tj_key(&ar, &s, MC_I2, MC_I2);
    tj_check(e1, t, &s, pool);
    tj_check(t, e2, &s, pool);
    tj_check(e1, e2, &s, pool);
    tj_check(one, t, &s, pool);
    tj_check(t, one, &s, pool);
    /* no match at all: a key no right row has */
    memset(&s, 0, sizeof(s));
    s.lkeys[0] = ex_bin(&ar, TSR_OP_ADD, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, 1000));
    s.rkeys[0] = ex_col(&ar, MC_I1, TSR_TYPE_INT64);
    s.nkeys = 1;
    tj_check(t, t, &s, pool);
    tsr_table_destroy(e1);
    tsr_table_destroy(e2);
    tsr_table_destroy(t);
    tsr_table_destroy(one);
    tsr_arena_release(&ar);
    tsr_pool_destroy(pool);
}

/* A one-column INT64 table of keys k (NULL where k is INT64_MIN). */
static tsr_table_t *tj_int_table(size_t n, const int64_t *k)
{
    static const char *const names[1] = {"k"};
    static const tsr_type_t types[1] = {TSR_TYPE_INT64};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, NULL, 1, names, types, &t), TSR_OK);
    for (size_t o = 0; o < n; o += TSR_BATCH_ROWS) {
        size_t m = n - o < TSR_BATCH_ROWS ? n - o : TSR_BATCH_ROWS;
        tsr_vector_t *cols = calloc(1, sizeof(tsr_vector_t));
        assert_non_null(cols);
        assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, m, true, NULL, &cols[0]), TSR_OK);
        for (size_t i = 0; i < m; i++) {
            ((int64_t *)cols[0].data)[i] = k[o + i];
            tsr_bit_set(cols[0].owned_validity, i, k[o + i] != INT64_MIN);
        }
        assert_int_equal(tsr_table_append_batch(t, m, cols), TSR_OK);
    }
    return t;
}

/* Exact output sizes around the TSR_BATCH_ROWS chunks of pairs: one pair,
 * one chunk, one chunk and one pair, one left row matching two chunks' worth. */
static void test_chunk_boundaries(void **state)
{
    (void)state;
    static const size_t sizes[] = {
        1, 2, TSR_BATCH_ROWS - 1, TSR_BATCH_ROWS, TSR_BATCH_ROWS + 1, 2 * TSR_BATCH_ROWS + 1};
    int64_t *rk = malloc((2 * TSR_BATCH_ROWS + 10) * sizeof(int64_t));
    assert_non_null(rk);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    s.lkeys[0] = ex_col(&ar, 0, TSR_TYPE_INT64);
    s.rkeys[0] = ex_col(&ar, 0, TSR_TYPE_INT64);
    s.nkeys = 1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        for (size_t j = 0; j < n + 3; j++)
            rk[j] = j < n ? 5 : j == n ? INT64_MIN : 6; /* n fives, a NULL, two sixes */
        tsr_table_t *r = tj_int_table(n + 3, rk);
        int64_t lk[3] = {5, INT64_MIN, 7};
        tsr_table_t *l = tj_int_table(3, lk);
        tsr_table_t *out;
        tsr_error_t err;
        assert_int_equal(tj_run(NULL, NULL, &s, l, true, r, true, &out, &err), TSR_OK);
        assert_int_equal(out->nrows, n);
        tsr_table_destroy(out);
        /* the other way round: n probe rows, one build row */
        assert_int_equal(tj_run(NULL, NULL, &s, r, true, l, true, &out, &err), TSR_OK);
        assert_int_equal(out->nrows, n);
        tsr_table_destroy(out);
        tj_check(l, r, &s, NULL);
        tsr_table_destroy(l);
        tsr_table_destroy(r);
    }
    free(rk);
    tsr_arena_release(&ar);
}

/* Intermediate inputs whose dictionaries the output uses become its
 * dependencies; an input the output does not reference stays the caller's. */
static void test_input_ownership(void **state)
{
    (void)state;
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    tj_key(&ar, &s, MC_I1, MC_I1);
    tsr_table_t *l = model_table(NULL, 500, 61, false), *r = model_table(NULL, 300, 62, false);
    tsr_table_t *out;
    tsr_error_t err;
    assert_int_equal(tj_run(NULL, NULL, &s, l, false, r, false, &out, &err), TSR_OK);
    assert_true(out->nrows > 0);
    assert_true(tsr_exec_has_dep(out, l));
    assert_true(tsr_exec_has_dep(out, r));
    tsr_table_destroy(out); /* and l, r with it */

    /* a right side with no VARCHAR column is not needed after the join */
    static const char *const names[1] = {"x"};
    static const tsr_type_t types[1] = {TSR_TYPE_INT64};
    tsr_table_t *ints;
    assert_int_equal(tsr_table_create(NULL, NULL, 1, names, types, &ints), TSR_OK);
    tsr_vector_t *cols = calloc(1, sizeof(tsr_vector_t));
    assert_non_null(cols);
    assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_INT64, 3, false, NULL, &cols[0]), TSR_OK);
    ((int64_t *)cols[0].data)[0] = 1;
    ((int64_t *)cols[0].data)[1] = 2;
    ((int64_t *)cols[0].data)[2] = 1;
    assert_int_equal(tsr_table_append_batch(ints, 3, cols), TSR_OK);
    l = model_table(NULL, 500, 63, false);
    memset(&s, 0, sizeof(s));
    s.lkeys[0] = ex_col(&ar, MC_I1, TSR_TYPE_INT64);
    s.rkeys[0] = ex_col(&ar, 0, TSR_TYPE_INT64);
    s.nkeys = 1;
    assert_int_equal(tj_run(NULL, NULL, &s, l, true, ints, false, &out, &err), TSR_OK);
    assert_false(tsr_exec_has_dep(out, ints));
    tsr_table_destroy(out);
    tsr_table_destroy(ints);
    tsr_table_destroy(l);
    tsr_arena_release(&ar);
}

static void test_bad_plans(void **state)
{
    (void)state;
    tsr_table_t *l = model_table(NULL, 50, 71, false), *r = model_table(NULL, 50, 72, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    s.lkeys[0] = ex_col(&ar, MC_I1, TSR_TYPE_INT64);
    s.rkeys[0] = ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE); /* types differ */
    s.nkeys = 1;
    tsr_table_t *out;
    tsr_error_t err;
    assert_int_equal(tj_run(NULL, NULL, &s, l, true, r, true, &out, &err), TSR_ERR_INTERNAL);
    assert_null(out);
    s.rkeys[0] = ex_col(&ar, 40, TSR_TYPE_INT64); /* no such column */
    assert_int_equal(tj_run(NULL, NULL, &s, l, true, r, true, &out, &err), TSR_ERR_INTERNAL);
    s.lkeys[0] = ex_str(&ar, "a", 1); /* a computed VARCHAR key */
    s.rkeys[0] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
    assert_int_equal(tj_run(NULL, NULL, &s, l, true, r, true, &out, &err), TSR_ERR_UNSUPPORTED);
    tsr_arena_release(&ar);
    tsr_table_destroy(l);
    tsr_table_destroy(r);
}

static void test_fault_injection(void **state)
{
    (void)state;
    tsr_pool_t *pool;
    assert_int_equal(tsr_pool_create(NULL, 2, &pool), TSR_OK);
    tsr_table_t *l = model_table(NULL, 3000, 81, true), *r = model_table(NULL, 300, 82, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tj_spec_t s;
    memset(&s, 0, sizeof(s));
    tj_key(&ar, &s, MC_I1, MC_I1);
    tj_key(&ar, &s, MC_S1, MC_S2);
    s.residual = ex_bin(&ar, TSR_OP_NE, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), tj_rcol(&ar, MC_B1));
    for (int threads = 0; threads < 2; threads++) {
        bool done = false;
        for (long fail = 0; fail < 100000 && !done; fail++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, fail);
            tsr_table_t *out;
            tsr_error_t err;
            tsr_status_t rc = tj_run(&mem, threads ? pool : NULL, &s, l, true, r, true, &out, &err);
            if (atomic_load(&mem.failures) == 0) {
                assert_int_equal(rc, TSR_OK);
                done = true;
            } else {
                assert_int_equal(rc, TSR_ERR_NOMEM);
                assert_null(out);
            }
            tsr_table_destroy(out);
        }
        assert_true(done);
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(l);
    tsr_table_destroy(r);
    tsr_pool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_types),       cmocka_unit_test(test_composite_computed_residual),
        cmocka_unit_test(test_self_and_cross),  cmocka_unit_test(test_empty_sides),
        cmocka_unit_test(test_input_ownership), cmocka_unit_test(test_bad_plans),
        cmocka_unit_test(test_fault_injection), cmocka_unit_test(test_chunk_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
