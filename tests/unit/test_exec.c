/*
 * test_exec.c - running plans (tsr_exec_run) with SCAN, FILTER, PROJECT, SORT
 * and LIMIT against the reference plan runner in exec_model.h: random
 * pipelines over random tables (ragged batches, NULLs, string constants whose
 * dictionaries live in intermediate results), LIMIT/OFFSET edges, error
 * propagation, ownership (results outlive every intermediate), with and
 * without a thread pool, and fault injection over a whole plan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/pool.h"
#include "exec/exec.h"
#include "exec_model.h"

static tsr_pool_t *g_pool;

/* ---- plan builders (arena) ----------------------------------------------------------- */

static tsr_plan_t *pl_new(tsr_arena_t *ar, tsr_plan_kind_t kind, tsr_plan_t *child, size_t ncols)
{
    tsr_plan_t *p = tsr_arena_alloc(ar, sizeof(*p));
    p->kind = kind;
    p->child = child;
    p->ncols = ncols;
    p->types = tsr_arena_alloc(ar, (ncols ? ncols : 1) * sizeof(tsr_type_t));
    p->names = tsr_arena_alloc(ar, (ncols ? ncols : 1) * sizeof(char *));
    if (child && child->ncols == ncols) {
        for (size_t c = 0; c < ncols; c++) {
            p->types[c] = child->types[c];
            p->names[c] = child->names[c];
        }
    }
    return p;
}

static tsr_plan_t *pl_scan(tsr_arena_t *ar, const tsr_table_t *t, const size_t *col_ids, size_t n)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_SCAN, NULL, n);
    p->table = t;
    p->col_ids = tsr_arena_alloc(ar, (n ? n : 1) * sizeof(size_t));
    for (size_t c = 0; c < n; c++) {
        p->col_ids[c] = col_ids[c];
        p->types[c] = t->fields[col_ids[c]].type;
        char buf[32];
        snprintf(buf, sizeof(buf), "scan_%zu", c);
        p->names[c] = tsr_arena_strndup(ar, buf, strlen(buf));
    }
    return p;
}

static tsr_plan_t *pl_scan_all(tsr_arena_t *ar, const tsr_table_t *t)
{
    size_t ids[64];
    for (size_t c = 0; c < t->ncols; c++)
        ids[c] = c;
    return pl_scan(ar, t, ids, t->ncols);
}

static tsr_plan_t *pl_filter(tsr_arena_t *ar, tsr_plan_t *child, tsr_expr_t *pred)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_FILTER, child, child->ncols);
    p->pred = pred;
    return p;
}

static tsr_plan_t *pl_project(tsr_arena_t *ar, tsr_plan_t *child, tsr_expr_t **exprs, size_t n)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_PROJECT, child, n);
    p->exprs = tsr_arena_alloc(ar, (n ? n : 1) * sizeof(tsr_expr_t *));
    for (size_t c = 0; c < n; c++) {
        p->exprs[c] = exprs[c];
        p->types[c] = exprs[c]->type;
        char buf[32];
        snprintf(buf, sizeof(buf), "p%zu", c);
        p->names[c] = tsr_arena_strndup(ar, buf, strlen(buf));
    }
    return p;
}

static tsr_plan_t *pl_sort(tsr_arena_t *ar, tsr_plan_t *child, const tsr_sort_key_t *keys, size_t n)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_SORT, child, child->ncols);
    p->sort_keys = tsr_arena_alloc(ar, (n ? n : 1) * sizeof(tsr_sort_key_t));
    memcpy(p->sort_keys, keys, n * sizeof(tsr_sort_key_t));
    p->nsort_keys = n;
    return p;
}

static tsr_plan_t *pl_limit(tsr_arena_t *ar, tsr_plan_t *child, int64_t limit, int64_t offset)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_LIMIT, child, child->ncols);
    p->limit = limit;
    p->offset = offset;
    return p;
}

static tsr_plan_t *pl_agg(tsr_arena_t *ar, tsr_plan_t *child, tsr_expr_t **keys, size_t nk,
                          const tsr_agg_t *aggs, size_t na)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_AGGREGATE, child, nk + na);
    p->keys = tsr_arena_alloc(ar, (nk ? nk : 1) * sizeof(tsr_expr_t *));
    p->aggs = tsr_arena_alloc(ar, (na ? na : 1) * sizeof(tsr_agg_t));
    p->nkeys = nk;
    p->naggs = na;
    for (size_t c = 0; c < nk + na; c++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "a%zu", c);
        p->names[c] = tsr_arena_strndup(ar, buf, strlen(buf));
        p->types[c] = c < nk ? keys[c]->type : aggs[c - nk].type;
        if (c < nk)
            p->keys[c] = keys[c];
        else
            p->aggs[c - nk] = aggs[c - nk];
    }
    return p;
}

static tsr_plan_t *pl_join(tsr_arena_t *ar, tsr_plan_t *left, tsr_plan_t *right, tsr_expr_t **lkeys,
                           tsr_expr_t **rkeys, size_t nk, tsr_expr_t *residual)
{
    tsr_plan_t *p = pl_new(ar, TSR_PLAN_HASH_JOIN, left, left->ncols + right->ncols);
    p->right = right;
    for (size_t c = 0; c < p->ncols; c++) {
        const tsr_plan_t *from = c < left->ncols ? left : right;
        size_t fc = c < left->ncols ? c : c - left->ncols;
        p->types[c] = from->types[fc];
        char buf[32];
        snprintf(buf, sizeof(buf), "j%zu", c);
        p->names[c] = tsr_arena_strndup(ar, buf, strlen(buf));
    }
    p->left_keys = tsr_arena_alloc(ar, nk * sizeof(tsr_expr_t *));
    p->right_keys = tsr_arena_alloc(ar, nk * sizeof(tsr_expr_t *));
    memcpy(p->left_keys, lkeys, nk * sizeof(tsr_expr_t *));
    memcpy(p->right_keys, rkeys, nk * sizeof(tsr_expr_t *));
    p->njoin_keys = nk;
    p->residual = residual;
    return p;
}

/* SORT on every column: a deterministic order for unordered results. */
static tsr_plan_t *pl_sort_all(tsr_arena_t *ar, tsr_plan_t *child)
{
    tsr_sort_key_t keys[64];
    for (size_t c = 0; c < child->ncols; c++) {
        keys[c].column = c;
        keys[c].desc = false;
    }
    return pl_sort(ar, child, keys, child->ncols);
}

/* ---- checking a plan ---------------------------------------------------------------------- */

/* Runs p with the engine and the model; they must agree on the rows or on
 * failing with an overflow. Returns true when the plan produced rows. */
static bool check_plan(const tsr_plan_t *p, tsr_pool_t *pool)
{
    mrows_t want = {0};
    int movf = model_run(p, &want);
    tsr_exec_ctx_t ctx = {.mem = NULL, .pool = pool};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_table_t *sentinel = (tsr_table_t *)&ctx, *out = sentinel;
    tsr_status_t rc = tsr_exec_run(&ctx, p, &out, &err);
    if (movf) {
        if (rc != TSR_ERR_OVERFLOW)
            print_error("want overflow, got %d (%s)\n", (int)rc, err.message);
        assert_int_equal(rc, TSR_ERR_OVERFLOW);
        assert_ptr_equal(out, sentinel); /* untouched on failure */
        return false;
    }
    if (rc != TSR_OK)
        print_error("exec failed: %s\n", err.message);
    assert_int_equal(rc, TSR_OK);
    assert_int_equal(out->ncols, p->ncols);
    for (size_t c = 0; c < p->ncols; c++) {
        assert_string_equal(out->fields[c].name, p->names[c]);
        assert_int_equal(out->fields[c].type, p->types[c]);
    }
    size_t total = 0;
    for (size_t b = 0; b < out->nbatches; b++) {
        assert_true(out->batches[b].nrows <= TSR_BATCH_ROWS);
        total += out->batches[b].nrows;
    }
    assert_int_equal(total, out->nrows);
    if (model_diff(&want, out) != SIZE_MAX)
        fail();
    mrows_free(&want);
    tsr_table_destroy(out);
    return true;
}

/* ---- random pipelines ------------------------------------------------------------------------ */

/* Every node keeps the MC_* schema, so the random expressions of exec_model.h
 * apply at every level. */
static tsr_plan_t *gen_pipeline(tsr_arena_t *ar, rng_t *rng, const tsr_table_t *t, int depth)
{
    tsr_plan_t *p = pl_scan_all(ar, t);
    for (int d = 0; d < depth; d++) {
        switch (rng_below(rng, 5)) {
        case 0:
            p = pl_filter(ar, p, gen_expr(ar, rng, TSR_TYPE_BOOL, 1 + (int)rng_below(rng, 3)));
            break;
        case 1: {
            tsr_expr_t *exprs[MC_NCOLS];
            for (size_t c = 0; c < MC_NCOLS; c++) {
                if (rng_pct(rng, 40))
                    exprs[c] = ex_col(ar, c, model_types[c]);
                else if (model_types[c] == TSR_TYPE_VARCHAR && rng_pct(rng, 20))
                    exprs[c] = ex_null(ar, TSR_TYPE_VARCHAR);
                else
                    exprs[c] = gen_expr(ar, rng, model_types[c], (int)rng_below(rng, 3));
            }
            p = pl_project(ar, p, exprs, MC_NCOLS);
            break;
        }
        case 2: {
            tsr_sort_key_t keys[3];
            size_t n = 1 + rng_below(rng, 3);
            for (size_t k = 0; k < n; k++) {
                keys[k].column = rng_below(rng, MC_NCOLS);
                keys[k].desc = rng_pct(rng, 50);
            }
            p = pl_sort(ar, p, keys, n);
            break;
        }
        case 3: {
            int64_t lim = rng_pct(rng, 20) ? -1 : (int64_t)rng_below(rng, 20000);
            int64_t off = rng_pct(rng, 40) ? 0 : (int64_t)rng_below(rng, 12000);
            p = pl_limit(ar, p, lim, off);
            break;
        }
        default: /* a filter that keeps most rows (borrowed batches) */
            p = pl_filter(ar, p,
                          ex_bin(ar, TSR_OP_GE, ex_col(ar, MC_I1, TSR_TYPE_INT64),
                                 ex_int(ar, -(int64_t)rng_below(rng, 60))));
            break;
        }
    }
    return p;
}

static void run_pipelines(size_t nrows, bool ragged, uint64_t seed, int count)
{
    tsr_table_t *t = model_table(NULL, nrows, seed, ragged);
    rng_t rng = {seed * 31 + 7};
    int ok = 0;
    for (int k = 0; k < count; k++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        tsr_plan_t *p = gen_pipeline(&ar, &rng, t, 1 + (int)rng_below(&rng, 4));
        ok += check_plan(p, k % 2 ? g_pool : NULL);
        tsr_arena_release(&ar);
    }
    assert_true(count < 8 || ok > 0); /* not everything overflowed */
    tsr_table_destroy(t);
}

static void test_random_pipelines(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 8191, 8192, 8193, 3 * 8192 + 17};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        run_pipelines(sizes[i], false, 50 + i, sizes[i] >= 8191 ? 10 : 30);
    for (uint64_t seed = 1; seed <= 2; seed++)
        run_pipelines(7000 * seed, true, seed, 12);
}

/* ---- targeted plans -----------------------------------------------------------------------------
 */

static void test_scan(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 3 * 8192 + 17, 4, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    size_t ids[4] = {MC_S2, MC_I1, MC_I1, MC_D1}; /* reordered, repeated */
    tsr_plan_t *p = pl_scan(&ar, t, ids, 4);
    check_plan(p, NULL);
    /* a scan copies nothing */
    tsr_exec_ctx_t ctx = {.mem = NULL, .pool = NULL};
    tsr_error_t err;
    tsr_table_t *out;
    assert_int_equal(tsr_exec_run(&ctx, p, &out, &err), TSR_OK);
    assert_ptr_equal(out->batches[1].cols[0].data, t->batches[1].cols[MC_S2].data);
    assert_null(out->batches[1].cols[0].owned_data);
    tsr_table_destroy(out);
    /* a table without columns, and one without batches */
    check_plan(pl_scan(&ar, t, ids, 0), NULL);
    tsr_table_t *empty = model_table(NULL, 0, 1, false);
    check_plan(pl_scan_all(&ar, empty), g_pool);
    check_plan(pl_filter(&ar, pl_scan_all(&ar, empty), ex_bool(&ar, true)), g_pool);
    tsr_table_destroy(empty);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

static void test_limit_edges(void **state)
{
    (void)state;
    size_t n = 3 * 8192 + 17;
    tsr_table_t *t = model_table(NULL, n, 8, false);
    tsr_table_t *r = model_table(NULL, 20000, 9, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    static const int64_t cases[][2] = {
        {0, 0},      {-1, 0},       {-1, 8192},      {10, 8190},    {8192, 0},  {8192, 1},
        {5, 100000}, {-1, 24593},   {1, 24592},      {20000, 5000}, {3, -5},    {-1, 8191},
        {1, 0},      {16384, 8192}, {100, 8192 * 3}, {24593, 0},    {24594, 0}, {0, 5}};
    size_t ids[3] = {MC_I2, MC_S1, MC_D1};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        check_plan(pl_limit(&ar, pl_scan(&ar, t, ids, 3), cases[k][0], cases[k][1]), NULL);
        check_plan(pl_limit(&ar, pl_scan(&ar, r, ids, 3), cases[k][0], cases[k][1]), NULL);
        /* over an intermediate result (borrowed batches make it a dependency) */
        tsr_plan_t *f =
            pl_filter(&ar, pl_scan_all(&ar, r),
                      ex_bin(&ar, TSR_OP_GT, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, -45)));
        check_plan(pl_limit(&ar, f, cases[k][0], cases[k][1]), g_pool);
    }
    /* LIMIT over LIMIT */
    check_plan(pl_limit(&ar, pl_limit(&ar, pl_scan_all(&ar, t), 9000, 100), 50, 8150), NULL);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
    tsr_table_destroy(r);
}

/* A string constant's dictionary belongs to the PROJECT's output; operators
 * that copy rows above it must keep that output alive. */
static void test_constant_dictionaries_survive(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 20000, 12, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *exprs[3] = {ex_str(&ar, "const!", 6), ex_col(&ar, MC_I2, TSR_TYPE_INT64),
                            ex_null(&ar, TSR_TYPE_VARCHAR)};
    tsr_plan_t *proj = pl_project(&ar, pl_scan_all(&ar, t), exprs, 3);
    tsr_expr_t *pred = ex_bin(&ar, TSR_OP_LT, ex_col(&ar, 1, TSR_TYPE_INT64), ex_int(&ar, 0));
    tsr_sort_key_t key = {1, true};
    tsr_plan_t *plans[] = {
        proj,
        pl_filter(&ar, proj, pred),
        pl_sort(&ar, proj, &key, 1),
        pl_limit(&ar, pl_filter(&ar, proj, pred), 100, 3),
        pl_sort(&ar, pl_filter(&ar, proj, pred), &key, 1),
    };
    for (size_t k = 0; k < sizeof(plans) / sizeof(plans[0]); k++) {
        check_plan(plans[k], NULL);
        check_plan(plans[k], g_pool);
    }
    /* compare a string constant with a column: different dictionaries */
    tsr_expr_t *e2[2] = {ex_str(&ar, "abc", 3), ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR)};
    tsr_plan_t *p2 = pl_project(&ar, pl_scan_all(&ar, t), e2, 2);
    check_plan(pl_filter(&ar, p2,
                         ex_bin(&ar, TSR_OP_LE, ex_col(&ar, 0, TSR_TYPE_VARCHAR),
                                ex_col(&ar, 1, TSR_TYPE_VARCHAR))),
               g_pool);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* AGGREGATE over FILTER over SCAN runs fused (the filter's predicate as the
 * aggregate's pre-filter); over anything else, after its child. Group order is
 * unspecified: a SORT on the keys on top makes it comparable. */
static void test_aggregate_inputs(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 3 * 8192 + 17, 15, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *keys[2] = {ex_col(&ar, MC_B1, TSR_TYPE_BOOL), ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR)};
    tsr_agg_t aggs[5] = {
        {TSR_AGG_COUNT_STAR, false, NULL, TSR_TYPE_INT64},
        {TSR_AGG_SUM, false, ex_col(&ar, MC_I1, TSR_TYPE_INT64), TSR_TYPE_INT64},
        {TSR_AGG_COUNT, false, ex_col(&ar, MC_I2, TSR_TYPE_INT64), TSR_TYPE_INT64},
        {TSR_AGG_MIN, false, ex_col(&ar, MC_I2, TSR_TYPE_INT64), TSR_TYPE_INT64},
        {TSR_AGG_MAX, false, ex_col(&ar, MC_S2, TSR_TYPE_VARCHAR), TSR_TYPE_VARCHAR},
    };
    tsr_expr_t *pred = ex_bin(&ar, TSR_OP_GT, ex_col(&ar, MC_I1, TSR_TYPE_INT64), ex_int(&ar, -20));
    tsr_plan_t *inputs[] = {
        pl_scan_all(&ar, t),
        pl_filter(&ar, pl_scan_all(&ar, t), pred),
        pl_filter(&ar, pl_sort(&ar, pl_scan_all(&ar, t), (tsr_sort_key_t[]){{MC_I2, false}}, 1),
                  pred),
        pl_filter(&ar, pl_scan_all(&ar, t), ex_bool(&ar, false)),
    };
    tsr_sort_key_t order[2] = {{0, false}, {1, false}};
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        for (size_t nk = 0; nk <= 2; nk++) {
            tsr_plan_t *agg = pl_agg(&ar, inputs[k], keys, nk, aggs, 5);
            check_plan(nk ? pl_sort(&ar, agg, order, nk) : agg, k % 2 ? g_pool : NULL);
        }
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* HASH_JOIN between scans and intermediate results (both sides), INT64 and
 * string keys (different dictionaries), with a residual; output unordered,
 * so a SORT on every column on top. */
static void test_join_inputs(void **state)
{
    (void)state;
    tsr_table_t *t1 = model_table(NULL, 1500, 16, true);
    tsr_table_t *t2 = model_table(NULL, 1200, 17, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    size_t ids[3] = {MC_I1, MC_S1, MC_I2};
    size_t ids2[3] = {MC_I1, MC_S2, MC_D1};
    tsr_expr_t *li[1] = {ex_col(&ar, 0, TSR_TYPE_INT64)};
    tsr_expr_t *ri[1] = {ex_col(&ar, 0, TSR_TYPE_INT64)};
    tsr_expr_t *ls[2] = {ex_col(&ar, 1, TSR_TYPE_VARCHAR), ex_col(&ar, 0, TSR_TYPE_INT64)};
    tsr_expr_t *rs[2] = {ex_col(&ar, 1, TSR_TYPE_VARCHAR), ex_col(&ar, 0, TSR_TYPE_INT64)};
    /* over the joined output: i2 (left col 2) > d1 (right col 2) as doubles */
    tsr_expr_t *resid =
        ex_bin(&ar, TSR_OP_GT, ex_cast(&ar, ex_col(&ar, 2, TSR_TYPE_INT64), TSR_TYPE_DOUBLE),
               ex_col(&ar, 5, TSR_TYPE_DOUBLE));
    tsr_expr_t *pred = ex_bin(&ar, TSR_OP_LT, ex_col(&ar, 0, TSR_TYPE_INT64), ex_int(&ar, 10));
    for (int pool = 0; pool < 2; pool++) {
        tsr_pool_t *pl = pool ? g_pool : NULL;
        tsr_plan_t *l = pl_scan(&ar, t1, ids, 3), *r = pl_scan(&ar, t2, ids2, 3);
        tsr_plan_t *lf = pl_filter(&ar, pl_scan(&ar, t1, ids, 3), pred);
        tsr_plan_t *rf = pl_filter(&ar, pl_scan(&ar, t2, ids2, 3), pred);
        check_plan(pl_sort_all(&ar, pl_join(&ar, l, r, li, ri, 1, NULL)), pl);
        check_plan(pl_sort_all(&ar, pl_join(&ar, lf, r, li, ri, 1, resid)), pl);
        check_plan(pl_sort_all(&ar, pl_join(&ar, l, rf, ls, rs, 2, NULL)), pl);
        check_plan(pl_sort_all(&ar, pl_join(&ar, lf, rf, ls, rs, 1, resid)), pl);
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t1);
    tsr_table_destroy(t2);
}

static void test_errors(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 20000, 13, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    /* an overflow in a filter below a sort */
    tsr_expr_t *boom =
        ex_bin(&ar, TSR_OP_MUL, ex_col(&ar, MC_I3, TSR_TYPE_INT64), ex_int(&ar, INT64_MAX));
    tsr_plan_t *p =
        pl_filter(&ar, pl_scan_all(&ar, t), ex_bin(&ar, TSR_OP_GT, boom, ex_int(&ar, 0)));
    tsr_sort_key_t key = {0, false};
    for (int pool = 0; pool < 2; pool++) {
        tsr_exec_ctx_t ctx = {.mem = NULL, .pool = pool ? g_pool : NULL};
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_table_t *out = NULL;
        assert_int_equal(tsr_exec_run(&ctx, pl_sort(&ar, p, &key, 1), &out, &err),
                         TSR_ERR_OVERFLOW);
        assert_null(out);
        assert_string_equal(err.message, "integer overflow");
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

static void test_exec_fault_injection(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 9000, 14, true);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *exprs[4] = {ex_str(&ar, "x", 1), ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR),
                            ex_bin(&ar, TSR_OP_ADD, ex_col(&ar, MC_I2, TSR_TYPE_INT64),
                                   ex_col(&ar, MC_I1, TSR_TYPE_INT64)),
                            ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE)};
    tsr_plan_t *p = pl_project(&ar, pl_scan_all(&ar, t), exprs, 4);
    p = pl_filter(&ar, p,
                  ex_like(&ar, ex_col(&ar, 1, TSR_TYPE_VARCHAR), ex_str(&ar, "%a%", 3), false));
    tsr_sort_key_t keys[2] = {{1, false}, {2, true}};
    p = pl_sort(&ar, p, keys, 2);
    p = pl_limit(&ar, p, 500, 7);
    for (int use_pool = 0; use_pool < 2; use_pool++) {
        long n;
        for (n = 0; n < 100000; n++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, n);
            tsr_exec_ctx_t ctx = {.mem = &mem, .pool = use_pool ? g_pool : NULL};
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_table_t *out = NULL;
            tsr_status_t rc = tsr_exec_run(&ctx, p, &out, &err);
            if (atomic_load(&mem.failures) == 0) {
                assert_int_equal(rc, TSR_OK);
                assert_int_equal(out->nrows, 500);
                tsr_table_destroy(out);
                break;
            }
            if (rc != TSR_ERR_NOMEM)
                print_error("allocation %ld: %d %s\n", n, (int)rc, err.message);
            assert_int_equal(rc, TSR_ERR_NOMEM);
            assert_int_equal(err.status, TSR_ERR_NOMEM);
            assert_null(out);
        }
        assert_true(n > 10);
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

static int setup(void **state)
{
    (void)state;
    return tsr_pool_create(NULL, 2, &g_pool) == TSR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tsr_pool_destroy(g_pool);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_limit_edges),
        cmocka_unit_test(test_constant_dictionaries_survive),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_aggregate_inputs),
        cmocka_unit_test(test_join_inputs),
        cmocka_unit_test(test_random_pipelines),
        cmocka_unit_test(test_exec_fault_injection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
