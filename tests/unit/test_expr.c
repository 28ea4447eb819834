/*
 * test_expr.c - vectorized expression evaluation (tsr_expr_eval,
 * tsr_expr_select, tsr_expr_fold) against the row-at-a-time reference in
 * exec_model.h: random typed expression trees over random tables with NULLs
 * (garbage under them), edge batch sizes, plus targeted cases: overflow,
 * division by zero, three-valued logic truth tables, LIKE patterns, string
 * comparisons across dictionaries, IN lists, casts, and fault injection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "exec/exec_internal.h"
#include "exec_model.h"

/* ---- checking one expression over one batch ------------------------------------ */

static void fail_row(const tsr_expr_t *e, size_t b, size_t r, const mval_t *want, const mval_t *got)
{
    char w[128], g[128];
    mv_print(want, w, sizeof(w));
    mv_print(got, g, sizeof(g));
    print_error("expr kind %d op %d type %d: batch %zu row %zu: want %s got %s\n", (int)e->kind,
                (int)e->op, (int)e->type, b, r, w, g);
    fail();
}

/* Checks tsr_expr_eval (and tsr_expr_select for BOOL) on batch b of t; with
 * a memo (kept across the table's batches), the memoizing variants. */
static void check_expr_batch(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                             const tsr_table_t *t, size_t b)
{
    const tsr_batch_t *batch = &t->batches[b];
    size_t n = batch->nrows;
    tsr_type_t types[MC_NCOLS];
    for (size_t c = 0; c < t->ncols; c++)
        types[c] = t->fields[c].type;
    mval_t *want = calloc(n ? n : 1, sizeof(mval_t));
    bool ovf = false;
    mval_t row[MC_NCOLS];
    for (size_t r = 0; r < n; r++) {
        model_row(batch, types, t->ncols, r, row);
        if (model_eval(e, row, &want[r]))
            ovf = true;
    }
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_vector_t v;
    tsr_status_t rc = memo ? tsr_expr_eval_memo(mem, memo, e, batch, &v, &err)
                           : tsr_expr_eval(mem, e, batch, &v, &err);
    if (ovf) {
        assert_int_equal(rc, TSR_ERR_OVERFLOW);
        assert_int_equal(err.status, TSR_ERR_OVERFLOW);
        assert_string_equal(err.message, "integer overflow");
    } else {
        if (rc != TSR_OK)
            print_error("eval failed: %s\n", err.message);
        assert_int_equal(rc, TSR_OK);
        assert_int_equal(v.len, n);
        for (size_t r = 0; r < n; r++) {
            mval_t got = mv_cell(&v, e->type, r);
            if (!mv_same(&want[r], &got))
                fail_row(e, b, r, &want[r], &got);
        }
        tsr_vector_release(mem, &v);
    }
    if (e->type == TSR_TYPE_BOOL) {
        uint32_t *sel = malloc((n ? n : 1) * sizeof(uint32_t));
        size_t nsel = 12345;
        tsr_error_clear(&err);
        rc = memo ? tsr_expr_select_memo(mem, memo, e, batch, sel, &nsel, &err)
                  : tsr_expr_select(mem, e, batch, sel, &nsel, &err);
        if (ovf) {
            assert_int_equal(rc, TSR_ERR_OVERFLOW);
        } else {
            assert_int_equal(rc, TSR_OK);
            size_t k = 0;
            for (size_t r = 0; r < n; r++) {
                if (!want[r].null && want[r].i) {
                    assert_true(k < nsel);
                    assert_int_equal(sel[k], r);
                    k++;
                }
            }
            assert_int_equal(k, nsel);
        }
        free(sel);
    }
    free(want);
}

static void check_expr(tsr_mem_t *mem, const tsr_expr_t *e, const tsr_table_t *t)
{
    tsr_expr_memo_t memo;
    tsr_expr_memo_init(&memo, mem);
    for (size_t b = 0; b < t->nbatches; b++) {
        check_expr_batch(mem, NULL, e, t, b);
        check_expr_batch(mem, &memo, e, t, b);
    }
    tsr_expr_memo_free(&memo);
}

/* ---- random expressions over random tables ---------------------------------------- */

static void run_random(size_t nrows, bool ragged, uint64_t seed, int nexprs)
{
    tsr_table_t *t = model_table(NULL, nrows, seed, ragged);
    assert_non_null(t);
    assert_int_equal(t->nrows, nrows);
    rng_t rng = {seed * 7 + 1};
    static const tsr_type_t types[] = {TSR_TYPE_BOOL, TSR_TYPE_BOOL, TSR_TYPE_INT64,
                                       TSR_TYPE_DOUBLE};
    for (int k = 0; k < nexprs; k++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        tsr_expr_t *e = gen_expr(&ar, &rng, types[k % 4], 1 + (int)rng_below(&rng, 4));
        check_expr(NULL, e, t);
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(t);
}

static void test_random_edge_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 8191, 8192, 8193, 3 * 8192 + 17};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        run_random(sizes[i], false, 100 + i, sizes[i] >= 8191 ? 28 : 100);
}

static void test_random_ragged(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        run_random(1000 + 4000 * seed, true, seed, 36);
}

/* ---- a small table of chosen values ------------------------------------------------------ */

/* One batch; columns given as arrays with a parallel null mask. */
typedef struct small_col {
    const char *name;
    tsr_type_t type;
    const int64_t *i;
    const double *d;
    const char *const *s; /* strings (dictionary built here) */
    const bool *null;
} small_col_t;

static tsr_table_t *small_table(const small_col_t *cols, size_t ncols, size_t n)
{
    const char *names[16];
    tsr_type_t types[16];
    for (size_t c = 0; c < ncols; c++) {
        names[c] = cols[c].name;
        types[c] = cols[c].type;
    }
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "small", ncols, names, types, &t), TSR_OK);
    tsr_vector_t *vs = calloc(ncols, sizeof(tsr_vector_t));
    for (size_t c = 0; c < ncols; c++) {
        tsr_dict_t *d = NULL;
        if (cols[c].type == TSR_TYPE_VARCHAR) {
            assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
            tsr_table_adopt_dict(t, c, d);
        }
        assert_int_equal(tsr_vector_alloc(NULL, cols[c].type, n, cols[c].null != NULL, d, &vs[c]),
                         TSR_OK);
        for (size_t r = 0; r < n; r++) {
            if (cols[c].null && cols[c].null[r])
                tsr_bit_set(vs[c].owned_validity, r, false);
            switch (cols[c].type) {
            case TSR_TYPE_BOOL:
                ((uint8_t *)vs[c].data)[r] = (uint8_t)cols[c].i[r];
                break;
            case TSR_TYPE_INT64:
                ((int64_t *)vs[c].data)[r] = cols[c].i[r];
                break;
            case TSR_TYPE_DOUBLE:
                ((double *)vs[c].data)[r] = cols[c].d[r];
                break;
            default: {
                uint32_t code;
                const char *s = cols[c].s[r] ? cols[c].s[r] : "";
                assert_int_equal(tsr_dict_intern(d, s, strlen(s), &code), TSR_OK);
                ((uint32_t *)vs[c].data)[r] = code;
                break;
            }
            }
        }
        if (d)
            assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    }
    assert_int_equal(tsr_table_append_batch(t, n, vs), TSR_OK);
    return t;
}

/* Evaluates e over the single batch of t; returns row r's value via out. */
static tsr_status_t eval1(const tsr_expr_t *e, const tsr_table_t *t, mval_t *out, size_t nout,
                          tsr_error_t *err)
{
    tsr_vector_t v;
    tsr_error_clear(err);
    tsr_status_t rc = tsr_expr_eval(NULL, e, &t->batches[0], &v, err);
    if (rc != TSR_OK)
        return rc;
    for (size_t r = 0; r < nout; r++)
        out[r] = mv_cell(&v, e->type, r);
    tsr_vector_release(NULL, &v);
    return TSR_OK;
}

/* ---- three-valued logic ------------------------------------------------------------------- */

/* 0 = FALSE, 1 = TRUE, 2 = NULL */
static int tv_and(int a, int b)
{
    if (a == 0 || b == 0)
        return 0;
    if (a == 2 || b == 2)
        return 2;
    return 1;
}

static int tv_or(int a, int b)
{
    if (a == 1 || b == 1)
        return 1;
    if (a == 2 || b == 2)
        return 2;
    return 0;
}

static int tv_of(const mval_t *v)
{
    return v->null ? 2 : (int)(v->i != 0);
}

static tsr_expr_t *tv_const(tsr_arena_t *ar, int v)
{
    return v == 2 ? ex_null(ar, TSR_TYPE_BOOL) : ex_bool(ar, v == 1);
}

static void test_truth_tables(void **state)
{
    (void)state;
    /* all 9 combinations, garbage (1) under NULLs */
    static const int64_t av[9] = {0, 0, 0, 1, 1, 1, 1, 1, 1};
    static const int64_t bv[9] = {0, 1, 1, 0, 1, 1, 0, 1, 1};
    static const bool an[9] = {0, 0, 0, 0, 0, 0, 1, 1, 1};
    static const bool bn[9] = {0, 0, 1, 0, 0, 1, 0, 0, 1};
    small_col_t cols[2] = {{"a", TSR_TYPE_BOOL, av, NULL, NULL, an},
                           {"b", TSR_TYPE_BOOL, bv, NULL, NULL, bn}};
    tsr_table_t *t = small_table(cols, 2, 9);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *a = ex_col(&ar, 0, TSR_TYPE_BOOL), *b = ex_col(&ar, 1, TSR_TYPE_BOOL);
    mval_t got[9];
    tsr_error_t err;
    int ta[9], tb[9];
    for (int r = 0; r < 9; r++) {
        ta[r] = an[r] ? 2 : (int)av[r];
        tb[r] = bn[r] ? 2 : (int)bv[r];
    }
    /* vector op vector */
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_AND, a, b), t, got, 9, &err), TSR_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(tv_of(&got[r]), tv_and(ta[r], tb[r]));
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_OR, a, b), t, got, 9, &err), TSR_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(tv_of(&got[r]), tv_or(ta[r], tb[r]));
    assert_int_equal(eval1(ex_un(&ar, TSR_OP_NOT, b), t, got, 9, &err), TSR_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(tv_of(&got[r]), tb[r] == 2 ? 2 : !tb[r]);
    /* vector op constant, constant op vector, constant op constant */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(eval1(ex_bin(&ar, TSR_OP_AND, a, tv_const(&ar, k)), t, got, 9, &err),
                         TSR_OK);
        for (int r = 0; r < 9; r++)
            assert_int_equal(tv_of(&got[r]), tv_and(ta[r], k));
        assert_int_equal(eval1(ex_bin(&ar, TSR_OP_OR, tv_const(&ar, k), b), t, got, 9, &err),
                         TSR_OK);
        for (int r = 0; r < 9; r++)
            assert_int_equal(tv_of(&got[r]), tv_or(k, tb[r]));
        for (int j = 0; j < 3; j++) {
            assert_int_equal(
                eval1(ex_bin(&ar, TSR_OP_AND, tv_const(&ar, j), tv_const(&ar, k)), t, got, 9, &err),
                TSR_OK);
            assert_int_equal(tv_of(&got[4]), tv_and(j, k));
            assert_int_equal(
                eval1(ex_bin(&ar, TSR_OP_OR, tv_const(&ar, j), tv_const(&ar, k)), t, got, 9, &err),
                TSR_OK);
            assert_int_equal(tv_of(&got[4]), tv_or(j, k));
        }
    }
    /* IS [NOT] NULL never yields NULL */
    assert_int_equal(eval1(ex_isnull(&ar, a, false), t, got, 9, &err), TSR_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(tv_of(&got[r]), an[r] ? 1 : 0);
    assert_int_equal(eval1(ex_isnull(&ar, a, true), t, got, 9, &err), TSR_OK);
    for (int r = 0; r < 9; r++)
        assert_int_equal(tv_of(&got[r]), an[r] ? 0 : 1);
    /* a filter keeps TRUE only */
    uint32_t sel[9];
    size_t nsel;
    assert_int_equal(
        tsr_expr_select(NULL, ex_bin(&ar, TSR_OP_OR, a, b), &t->batches[0], sel, &nsel, &err),
        TSR_OK);
    size_t k = 0;
    for (int r = 0; r < 9; r++)
        if (tv_or(ta[r], tb[r]) == 1)
            assert_int_equal(sel[k++], r);
    assert_int_equal(k, nsel);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* ---- arithmetic edges ------------------------------------------------------------------------ */

static void test_overflow(void **state)
{
    (void)state;
    static const int64_t xv[4] = {INT64_MAX, INT64_MIN, 5, INT64_MAX};
    static const bool xn[4] = {0, 0, 0, 1};
    static const int64_t yv[4] = {1, -1, 0, 2};
    small_col_t cols[2] = {{"x", TSR_TYPE_INT64, xv, NULL, NULL, xn},
                           {"y", TSR_TYPE_INT64, yv, NULL, NULL, NULL}};
    tsr_table_t *t = small_table(cols, 2, 4);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *x = ex_col(&ar, 0, TSR_TYPE_INT64), *y = ex_col(&ar, 1, TSR_TYPE_INT64);
    mval_t got[4];
    tsr_error_t err;
    /* column op constant and constant op constant */
    tsr_expr_t *bad[] = {
        ex_bin(&ar, TSR_OP_ADD, x, ex_int(&ar, 1)),
        ex_bin(&ar, TSR_OP_SUB, ex_int(&ar, INT64_MIN), ex_int(&ar, 1)),
        ex_bin(&ar, TSR_OP_MUL, ex_int(&ar, 2), x),
        ex_bin(&ar, TSR_OP_DIV, ex_int(&ar, INT64_MIN), ex_int(&ar, -1)),
        ex_bin(&ar, TSR_OP_DIV, x, ex_int(&ar, -1)),
        ex_un(&ar, TSR_OP_NEG, ex_int(&ar, INT64_MIN)),
        ex_un(&ar, TSR_OP_NEG, x),
        ex_bin(&ar, TSR_OP_ADD, x, y),
        ex_bin(&ar, TSR_OP_SUB, x, ex_int(&ar, INT64_MAX)),
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        assert_int_equal(eval1(bad[k], t, got, 4, &err), TSR_ERR_OVERFLOW);
        assert_string_equal(err.message, "integer overflow");
    }
    /* overflow hidden under a NULL is no error: row 3 is NULL (MAX beneath) */
    static const int64_t pv[2] = {INT64_MAX, 1};
    static const bool pn[2] = {1, 0};
    small_col_t pc[1] = {{"p", TSR_TYPE_INT64, pv, NULL, NULL, pn}};
    tsr_table_t *tp = small_table(pc, 1, 2);
    tsr_expr_t *p = ex_col(&ar, 0, TSR_TYPE_INT64);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_ADD, p, ex_int(&ar, 1)), tp, got, 2, &err), TSR_OK);
    assert_true(got[0].null);
    assert_int_equal(got[1].i, 2);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_MUL, p, p), tp, got, 2, &err), TSR_OK);
    assert_true(got[0].null);
    assert_int_equal(eval1(ex_un(&ar, TSR_OP_NEG, p), tp, got, 2, &err), TSR_OK);
    assert_int_equal(got[1].i, -1);
    /* MIN % -1 is 0, not a trap */
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_MOD, x, ex_int(&ar, -1)), t, got, 4, &err), TSR_OK);
    assert_int_equal(got[1].i, 0);
    assert_int_equal(got[0].i, 0);
    /* division by zero: NULL, for columns and constants, INT64 and DOUBLE */
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_DIV, x, y), t, got, 4, &err), TSR_ERR_OVERFLOW);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_MOD, x, y), t, got, 4, &err), TSR_OK);
    assert_false(got[0].null);
    assert_int_equal(got[0].i, 0);
    assert_true(got[2].null); /* 5 % 0 */
    assert_true(got[3].null);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_DIV, ex_int(&ar, 7), y), t, got, 4, &err), TSR_OK);
    assert_int_equal(got[0].i, 7);
    assert_int_equal(got[1].i, -7);
    assert_true(got[2].null);
    assert_int_equal(got[3].i, 3);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_DIV, x, ex_int(&ar, 0)), t, got, 4, &err), TSR_OK);
    for (int r = 0; r < 4; r++)
        assert_true(got[r].null);
    assert_int_equal(
        eval1(ex_bin(&ar, TSR_OP_DIV, ex_int(&ar, -7), ex_int(&ar, 2)), t, got, 4, &err), TSR_OK);
    assert_int_equal(got[0].i, -3); /* truncation toward zero */
    assert_int_equal(
        eval1(ex_bin(&ar, TSR_OP_MOD, ex_int(&ar, -7), ex_int(&ar, 2)), t, got, 4, &err), TSR_OK);
    assert_int_equal(got[0].i, -1);
    tsr_expr_t *dx = ex_cast(&ar, y, TSR_TYPE_DOUBLE);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_DIV, ex_dbl(&ar, 1.0), dx), t, got, 4, &err), TSR_OK);
    assert_true(got[2].null);
    assert_true(got[0].d == 1.0);
    assert_true(got[1].d == -1.0);
    assert_int_equal(eval1(ex_bin(&ar, TSR_OP_MOD, dx, ex_dbl(&ar, -0.0)), t, got, 4, &err),
                     TSR_OK);
    for (int r = 0; r < 4; r++)
        assert_true(got[r].null);
    /* NULL operands: NULL, no error even where the garbage would overflow */
    assert_int_equal(
        eval1(ex_bin(&ar, TSR_OP_ADD, ex_null(&ar, TSR_TYPE_INT64), x), t, got, 4, &err), TSR_OK);
    for (int r = 0; r < 4; r++)
        assert_true(got[r].null);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
    tsr_table_destroy(tp);
}

/* ---- strings ------------------------------------------------------------------------------------
 */

static void test_like_patterns(void **state)
{
    (void)state;
    static const struct {
        const char *s, *p;
        bool match;
    } cases[] = {
        {"", "", true},
        {"a", "", false},
        {"", "%", true},
        {"abc", "%", true},
        {"abc", "abc", true},
        {"abc", "ab", false},
        {"ab", "abc", false},
        {"abc", "a%", true},
        {"abc", "%c", true},
        {"abc", "%b%", true},
        {"abc", "a_c", true},
        {"abc", "___", true},
        {"abc", "____", false},
        {"abc", "__", false},
        {"ac", "a_c", false},
        {"abc", "a%b%c", true},
        {"abc", "a%%c", true},
        {"aXbXc", "a%b%c", true},
        {"acb", "a%b%c", false},
        {"abab", "%ab", true},
        {"abab", "ab%ab", true},
        {"aba", "ab%ab", false},
        {"mississippi", "%iss%ipp%", true},
        {"mississippi", "m%ss%ss%i", true},
        {"mississippi", "%s_s%", true},
        {"ABC", "abc", false},
        {"h\xc3\xa9llo", "h_llo", false},
        {"h\xc3\xa9llo", "h__llo", true},
        {"h\xc3\xa9llo", "h%llo", true},
        {"a%c", "a%c", true},
        {"a_c", "a_c", true},
        {"abc", "%abc%", true},
        {"x", "%x%x%", false},
        {"xx", "%x%x%", true},
        {"aaa", "%a%a%a%", true},
        {"aa", "%a%a%a%", false},
        {"", "_", false},
        {"short", "much longer pattern%", false},
        {"abcabc", "%bc", true},
        {"abcabd", "%bc", false},
        {"\xff", "%\xff", true},
    };
    size_t nc = sizeof(cases) / sizeof(cases[0]);
    const char **strs = calloc(nc, sizeof(char *));
    for (size_t k = 0; k < nc; k++)
        strs[k] = cases[k].s;
    small_col_t col = {"s", TSR_TYPE_VARCHAR, NULL, NULL, strs, NULL};
    tsr_table_t *t = small_table(&col, 1, nc);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    mval_t *got = calloc(nc, sizeof(mval_t));
    tsr_error_t err;
    for (size_t k = 0; k < nc; k++) {
        /* the reference agrees with the table */
        assert_int_equal(model_like(cases[k].s, strlen(cases[k].s), cases[k].p, strlen(cases[k].p)),
                         cases[k].match);
        tsr_expr_t *pat = ex_str(&ar, cases[k].p, strlen(cases[k].p));
        for (int neg = 0; neg < 2; neg++) {
            /* column LIKE pattern (every row), and constant LIKE pattern */
            assert_int_equal(
                eval1(ex_like(&ar, ex_col(&ar, 0, TSR_TYPE_VARCHAR), pat, neg), t, got, nc, &err),
                TSR_OK);
            for (size_t r = 0; r < nc; r++) {
                bool want = model_like(cases[r].s, strlen(cases[r].s), cases[k].p,
                                       strlen(cases[k].p)) != neg;
                if ((got[r].i != 0) != want) {
                    print_error("'%s' %sLIKE '%s'\n", cases[r].s, neg ? "NOT " : "", cases[k].p);
                    fail();
                }
            }
            tsr_expr_t *s = ex_str(&ar, cases[k].s, strlen(cases[k].s));
            assert_int_equal(eval1(ex_like(&ar, s, pat, neg), t, got, 1, &err), TSR_OK);
            assert_int_equal(got[0].i != 0, cases[k].match != neg);
        }
    }
    /* NULL pattern: NULL */
    assert_int_equal(
        eval1(ex_like(&ar, ex_col(&ar, 0, TSR_TYPE_VARCHAR), ex_null(&ar, TSR_TYPE_VARCHAR), false),
              t, got, nc, &err),
        TSR_OK);
    assert_true(got[0].null);
    free(got);
    free(strs);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* Dictionaries much larger than the batch take the per-row paths. */
static void test_large_dictionary(void **state)
{
    (void)state;
    enum { NSTR = 3000, NROWS = 50 };
    tsr_dict_t *d;
    assert_int_equal(tsr_dict_create(NULL, &d), TSR_OK);
    char buf[32];
    for (int k = NSTR; k-- > 0;) {
        uint32_t code;
        int len = snprintf(buf, sizeof(buf), "s%05d", (k * 7919) % NSTR);
        assert_int_equal(tsr_dict_intern(d, buf, (size_t)len, &code), TSR_OK);
    }
    assert_int_equal(tsr_dict_freeze(d), TSR_OK);
    const char *names[1] = {"s"};
    tsr_type_t types[1] = {TSR_TYPE_VARCHAR};
    tsr_table_t *t;
    assert_int_equal(tsr_table_create(NULL, "big", 1, names, types, &t), TSR_OK);
    tsr_table_adopt_dict(t, 0, d);
    tsr_vector_t *cols = calloc(1, sizeof(tsr_vector_t));
    assert_int_equal(tsr_vector_alloc(NULL, TSR_TYPE_VARCHAR, NROWS, true, d, &cols[0]), TSR_OK);
    rng_t rng = {42};
    for (size_t r = 0; r < NROWS; r++) {
        ((uint32_t *)cols[0].data)[r] = (uint32_t)rng_below(&rng, NSTR);
        if (r % 7 == 3) {
            tsr_bit_set(cols[0].owned_validity, r, false);
            ((uint32_t *)cols[0].data)[r] = UINT32_MAX; /* garbage code */
        }
    }
    assert_int_equal(tsr_table_append_batch(t, NROWS, cols), TSR_OK);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    tsr_expr_t *s = ex_col(&ar, 0, TSR_TYPE_VARCHAR);
    for (int op = TSR_OP_EQ; op <= TSR_OP_GE; op++) {
        check_expr(NULL, ex_bin(&ar, (tsr_op_t)op, s, ex_str(&ar, "s01500", 6)), t);
        check_expr(NULL, ex_bin(&ar, (tsr_op_t)op, ex_str(&ar, "s015", 4), s), t);
    }
    check_expr(NULL, ex_like(&ar, s, ex_str(&ar, "%1_0%", 5), false), t);
    check_expr(NULL, ex_like(&ar, s, ex_str(&ar, "s00%", 4), true), t);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

static void test_string_compare_across_dicts(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 2000, 77, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    static const size_t pairs[][2] = {
        {MC_S1, MC_S2}, {MC_S2, MC_S1}, {MC_S1, MC_S3}, {MC_S3, MC_S3}, {MC_S2, MC_S2}};
    for (size_t p = 0; p < 5; p++) {
        tsr_expr_t *a = ex_col(&ar, pairs[p][0], TSR_TYPE_VARCHAR);
        tsr_expr_t *b = ex_col(&ar, pairs[p][1], TSR_TYPE_VARCHAR);
        for (int op = TSR_OP_EQ; op <= TSR_OP_GE; op++)
            check_expr(NULL, ex_bin(&ar, (tsr_op_t)op, a, b), t);
    }
    for (size_t k = 0; k < MODEL_NSTRINGS; k++) {
        const char *s = model_strings[k];
        for (int op = TSR_OP_EQ; op <= TSR_OP_GE; op++) {
            check_expr(NULL,
                       ex_bin(&ar, (tsr_op_t)op, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR),
                              ex_str(&ar, s, strlen(s))),
                       t);
            check_expr(NULL,
                       ex_bin(&ar, (tsr_op_t)op, ex_str(&ar, s, strlen(s)),
                              ex_col(&ar, MC_S2, TSR_TYPE_VARCHAR)),
                       t);
        }
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* ---- IN, CAST, fold ----------------------------------------------------------------------------
 */

static void test_in_lists(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 2500, 5, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    for (int neg = 0; neg < 2; neg++) {
        for (size_t len = 1; len <= 40; len += 13) {
            for (int with_null = 0; with_null < 2; with_null++) {
                tsr_expr_t *args[64];
                args[0] = ex_col(&ar, MC_I2, TSR_TYPE_INT64);
                for (size_t k = 1; k <= len; k++)
                    args[k] = ex_int(&ar, (int64_t)k * 37 - 500);
                if (with_null)
                    args[len / 2 + 1] = ex_null(&ar, TSR_TYPE_INT64);
                tsr_expr_t *e =
                    ex_args(&ar, TSR_EXPR_IN, TSR_TYPE_BOOL, TSR_OP_NONE, len + 1, args);
                e->negated = neg;
                check_expr(NULL, e, t);
                /* strings, some not in the dictionary */
                args[0] = ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR);
                for (size_t k = 1; k <= len; k++) {
                    const char *s = k % 5 == 0 ? "absent" : model_strings[k % MODEL_NSTRINGS];
                    args[k] = ex_str(&ar, s, strlen(s));
                }
                if (with_null)
                    args[1] = ex_null(&ar, TSR_TYPE_VARCHAR);
                e = ex_args(&ar, TSR_EXPR_IN, TSR_TYPE_BOOL, TSR_OP_NONE, len + 1, args);
                e->negated = neg;
                check_expr(NULL, e, t);
                /* doubles and booleans */
                args[0] = ex_col(&ar, MC_D1, TSR_TYPE_DOUBLE);
                for (size_t k = 1; k <= len; k++)
                    args[k] = ex_dbl(&ar, k % 3 == 0 ? -0.0 : ((double)k - 20) / 8.0);
                e = ex_args(&ar, TSR_EXPR_IN, TSR_TYPE_BOOL, TSR_OP_NONE, len + 1, args);
                e->negated = neg;
                check_expr(NULL, e, t);
                args[0] = ex_col(&ar, MC_B1, TSR_TYPE_BOOL);
                args[1] = with_null ? ex_null(&ar, TSR_TYPE_BOOL) : ex_bool(&ar, len % 2);
                e = ex_args(&ar, TSR_EXPR_IN, TSR_TYPE_BOOL, TSR_OP_NONE, 2, args);
                e->negated = neg;
                check_expr(NULL, e, t);
            }
        }
    }
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

static void test_cast_and_fold(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 300, 9, false);
    tsr_arena_t ar;
    tsr_arena_init(&ar, NULL);
    check_expr(NULL, ex_cast(&ar, ex_col(&ar, MC_I2, TSR_TYPE_INT64), TSR_TYPE_DOUBLE), t);
    check_expr(NULL, ex_cast(&ar, ex_col(&ar, MC_B1, TSR_TYPE_BOOL), TSR_TYPE_INT64), t);
    check_expr(NULL, ex_cast(&ar, ex_null(&ar, TSR_TYPE_NULL), TSR_TYPE_INT64), t);
    check_expr(NULL, ex_cast(&ar, ex_int(&ar, 3), TSR_TYPE_DOUBLE), t);
    check_expr(NULL,
               ex_bin(&ar, TSR_OP_GT, ex_col(&ar, MC_I1, TSR_TYPE_INT64),
                      ex_un(&ar, TSR_OP_NEG, ex_int(&ar, 5))),
               t);
    /* a NULL-typed constant evaluates to an all-NULL vector */
    tsr_vector_t v;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_expr_eval(NULL, ex_null(&ar, TSR_TYPE_NULL), &t->batches[0], &v, &err),
                     TSR_OK);
    for (size_t r = 0; r < t->batches[0].nrows; r++)
        assert_true(tsr_vector_is_null(&v, r));
    tsr_vector_release(NULL, &v);
    /* COLUMN borrows */
    assert_int_equal(
        tsr_expr_eval(NULL, ex_col(&ar, MC_S1, TSR_TYPE_VARCHAR), &t->batches[0], &v, &err),
        TSR_OK);
    assert_ptr_equal(v.data, t->batches[0].cols[MC_S1].data);
    assert_null(v.owned_data);
    /* folding */
    bool folded;
    tsr_value_t val;
    assert_int_equal(
        tsr_expr_fold(ex_bin(&ar, TSR_OP_MUL, ex_int(&ar, 6), ex_int(&ar, 7)), &folded, &val, &err),
        TSR_OK);
    assert_true(folded);
    assert_int_equal(val.i, 42);
    assert_int_equal(tsr_expr_fold(ex_col(&ar, 0, TSR_TYPE_INT64), &folded, &val, &err), TSR_OK);
    assert_false(folded);
    assert_int_equal(tsr_expr_fold(ex_str(&ar, "hey", 3), &folded, &val, &err), TSR_OK);
    assert_true(folded);
    assert_int_equal(val.slen, 3);
    assert_memory_equal(val.s, "hey", 3);
    assert_int_equal(
        tsr_expr_fold(ex_un(&ar, TSR_OP_NEG, ex_int(&ar, INT64_MIN)), &folded, &val, &err),
        TSR_ERR_OVERFLOW);
    tsr_arena_release(&ar);
    tsr_table_destroy(t);
}

/* ---- fault injection --------------------------------------------------------------------------
 */

static void test_fault_injection(void **state)
{
    (void)state;
    tsr_table_t *t = model_table(NULL, 700, 3, false);
    rng_t rng = {11};
    for (int k = 0; k < 40; k++) {
        tsr_arena_t ar;
        tsr_arena_init(&ar, NULL);
        tsr_expr_t *e = gen_expr(&ar, &rng, k % 2 ? TSR_TYPE_BOOL : TSR_TYPE_DOUBLE, 3);
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_error_t err;
        tsr_status_t clean;
        tsr_vector_t v;
        tsr_error_clear(&err);
        clean = tsr_expr_eval(&mem, e, &t->batches[0], &v, &err);
        if (clean == TSR_OK)
            tsr_vector_release(&mem, &v);
        for (long n = 0; n < 10000; n++) {
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, n);
            tsr_error_clear(&err);
            tsr_status_t rc = tsr_expr_eval(&mem, e, &t->batches[0], &v, &err);
            if (atomic_load(&mem.failures) == 0) {
                assert_int_equal(rc, clean); /* ran to the end without a failure */
                if (rc == TSR_OK)
                    tsr_vector_release(&mem, &v);
                break;
            }
            if (rc != TSR_ERR_NOMEM) {
                print_error("failure %ld: %s\n", n, err.message);
                assert_int_equal(rc, TSR_ERR_NOMEM);
            }
            assert_int_equal(err.status, TSR_ERR_NOMEM);
        }
        tsr_arena_release(&ar);
    }
    tsr_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truth_tables),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_like_patterns),
        cmocka_unit_test(test_large_dictionary),
        cmocka_unit_test(test_string_compare_across_dicts),
        cmocka_unit_test(test_in_lists),
        cmocka_unit_test(test_cast_and_fold),
        cmocka_unit_test(test_random_edge_sizes),
        cmocka_unit_test(test_random_ragged),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
