/*
 * test_filter_device.c - device filters (device/filter.h) on every backend
 * present, against a plain C model that evaluates the postfix program one
 * row at a time with scalar three-valued logic (independent of the backends'
 * 64-rows-at-a-time bitmaps).
 *
 * Every case runs on the cpu backend and on the first OpenCL device (PoCL
 * where there is no GPU; skipped, never passed, where there is none). The
 * selection array is poisoned before the run and checked element by element
 * afterwards: the selected rows in order, then poison up to and including
 * one element past n.
 *
 * Cases: random programs (comparisons on BIGINT and DOUBLE columns, IS [NOT]
 * NULL, AND, OR, NOT, nested) over random columns with NULLs, NaN, -0.0,
 * infinities and extreme integers; sizes 0, 1, 63, 64, 65, primes, more
 * than one work-group block and more than one launch (tiny launches, and
 * the default); skewed columns (90% one value: selections of nearly all or
 * nothing); SQL's NULL rules spelled out; bad programs and arguments;
 * allocation failures.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "device/filter.h"

#define NCOLS 4 /* 0, 1: BIGINT; 2, 3: DOUBLE */

typedef struct cols {
    size_t n;
    int64_t *i[2];
    double *d[2];
    uint64_t *valid[NCOLS];
} cols_t;

typedef struct gen {
    size_t n;
    unsigned null_pct;
    unsigned skew_pct; /* rows whose values are all the "hot" value 3 */
    uint64_t range;    /* values 0..range-1 (plus specials) */
} gen_t;

static double special_double(uint64_t r)
{
    static const double sp[] = {0.0, -0.0, INFINITY, -INFINITY, 1e308, -1e-308};
    return r % 7 == 6 ? NAN : sp[r % 6];
}

static void cols_make(const gen_t *g, uint64_t *seed, cols_t *c)
{
    memset(c, 0, sizeof(*c));
    c->n = g->n;
    for (int k = 0; k < 2; k++) {
        c->i[k] = dev_xalloc(g->n * 8);
        c->d[k] = dev_xalloc(g->n * 8);
    }
    for (size_t r = 0; r < g->n; r++) {
        bool hot = dev_rng_below(seed, 100) < g->skew_pct;
        for (int k = 0; k < 2; k++) {
            uint64_t x = dev_rng(seed);
            int64_t v = (int64_t)dev_rng_below(seed, g->range) - (int64_t)(g->range / 2);
            if (x % 50 == 0)
                v = x % 100 == 0 ? INT64_MIN : INT64_MAX;
            c->i[k][r] = hot ? 3 : v;
            double d = (double)((int64_t)dev_rng_below(seed, g->range) - (int64_t)(g->range / 2));
            if (x % 40 == 1)
                d = special_double(x >> 8);
            else if (x % 3 == 0)
                d += 0.5;
            c->d[k][r] = hot ? 3.0 : d;
        }
    }
    for (int k = 0; k < NCOLS; k++)
        c->valid[k] = g->null_pct ? dev_validity(g->n, g->null_pct, seed) : NULL;
}

static void cols_free(cols_t *c)
{
    for (int k = 0; k < 2; k++) {
        free(c->i[k]);
        free(c->d[k]);
    }
    for (int k = 0; k < NCOLS; k++)
        free(c->valid[k]);
}

static tsr_dev_filter_cols_t cols_in(const cols_t *c)
{
    tsr_dev_filter_cols_t in = {.n = c->n};
    in.values[0] = c->i[0];
    in.values[1] = c->i[1];
    in.values[2] = c->d[0];
    in.values[3] = c->d[1];
    for (int k = 0; k < NCOLS; k++)
        in.valid[k] = c->valid[k];
    return in;
}

static void spec_init(tsr_dev_filter_spec_t *s)
{
    memset(s, 0, sizeof(*s));
    s->ncols = NCOLS;
    s->types[0] = s->types[1] = TSR_TYPE_INT64;
    s->types[2] = s->types[3] = TSR_TYPE_DOUBLE;
}

static void emit(tsr_dev_filter_spec_t *s, tsr_dev_pred_op_t op, size_t col, int64_t i, double d)
{
    assert_true(s->ninstrs < TSR_DEV_FILTER_MAX_INSTRS);
    s->prog[s->ninstrs++] = (tsr_dev_pred_instr_t){op, col, i, d};
}

/* A random predicate tree of at most `depth` levels, in postfix. */
static void gen_prog(tsr_dev_filter_spec_t *s, int depth, uint64_t range, uint64_t *seed)
{
    uint64_t r = dev_rng_below(seed, 10);
    if (depth <= 0 || r < 4) {
        size_t col = dev_rng_below(seed, NCOLS);
        if (dev_rng_below(seed, 8) == 0) {
            emit(s, dev_rng(seed) % 2 ? TSR_DEV_PRED_IS_NULL : TSR_DEV_PRED_IS_NOT_NULL, col, 0, 0);
            return;
        }
        tsr_dev_pred_op_t op = (tsr_dev_pred_op_t)dev_rng_below(seed, 6);
        int64_t k = (int64_t)dev_rng_below(seed, range) - (int64_t)(range / 2);
        double d = (double)k;
        uint64_t x = dev_rng(seed);
        if (x % 16 == 0)
            d = special_double(x >> 8);
        if (x % 32 == 1)
            k = x % 64 == 1 ? INT64_MIN : INT64_MAX;
        emit(s, op, col, k, d);
        return;
    }
    if (r < 6) {
        gen_prog(s, depth - 1, range, seed);
        emit(s, TSR_DEV_PRED_NOT, 0, 0, 0);
        return;
    }
    gen_prog(s, depth - 1, range, seed);
    gen_prog(s, depth - 1, range, seed);
    emit(s, r < 8 ? TSR_DEV_PRED_AND : TSR_DEV_PRED_OR, 0, 0, 0);
}

/* ---- the model: scalar three-valued logic, one row at a time ------------------------- */

enum { F3 = 0, T3 = 1, N3 = 2 };

static int model_cmp(tsr_dev_pred_op_t op, int c) /* c: <0, 0, >0 */
{
    switch (op) {
    case TSR_DEV_PRED_EQ:
        return c == 0;
    case TSR_DEV_PRED_NE:
        return c != 0;
    case TSR_DEV_PRED_LT:
        return c < 0;
    case TSR_DEV_PRED_LE:
        return c <= 0;
    case TSR_DEV_PRED_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

static int model_row(const tsr_dev_filter_spec_t *s, const cols_t *c, size_t r)
{
    int st[64];
    size_t sp = 0;
    for (size_t i = 0; i < s->ninstrs; i++) {
        const tsr_dev_pred_instr_t *in = &s->prog[i];
        if (in->op <= TSR_DEV_PRED_IS_NOT_NULL) {
            bool valid = dev_bit(c->valid[in->column], r);
            int v;
            if (in->op == TSR_DEV_PRED_IS_NULL)
                v = valid ? F3 : T3;
            else if (in->op == TSR_DEV_PRED_IS_NOT_NULL)
                v = valid ? T3 : F3;
            else if (!valid)
                v = N3;
            else if (in->column < 2) {
                int64_t x = c->i[in->column][r];
                v = model_cmp(in->op, x < in->i ? -1 : x > in->i) ? T3 : F3;
            } else {
                double x = c->d[in->column - 2][r], k = in->d;
                if (isnan(x) || isnan(k)) /* unordered: only <> holds */
                    v = in->op == TSR_DEV_PRED_NE ? T3 : F3;
                else
                    v = model_cmp(in->op, x < k ? -1 : x > k) ? T3 : F3;
            }
            st[sp++] = v;
            continue;
        }
        if (in->op == TSR_DEV_PRED_NOT) {
            st[sp - 1] = st[sp - 1] == N3 ? N3 : !st[sp - 1];
            continue;
        }
        int b = st[--sp], a = st[sp - 1];
        if (in->op == TSR_DEV_PRED_AND)
            st[sp - 1] = a == F3 || b == F3 ? F3 : (a == N3 || b == N3 ? N3 : T3);
        else
            st[sp - 1] = a == T3 || b == T3 ? T3 : (a == N3 || b == N3 ? N3 : F3);
    }
    assert_int_equal(sp, 1);
    return st[0];
}

/* Runs spec over c on the test's device and checks the selection. */
static void check_run(tsr_dev_filter_t *f, const tsr_dev_filter_spec_t *s, const cols_t *c)
{
    tsr_dev_filter_cols_t in = cols_in(c);
    uint32_t *sel = dev_poisoned32(c->n);
    size_t nsel = (size_t)-1;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err), TSR_OK);
    size_t k = 0;
    for (size_t r = 0; r < c->n; r++)
        if (model_row(s, c, r) == T3) {
            assert_true(k < nsel);
            assert_int_equal(sel[k], r);
            k++;
        }
    assert_int_equal(nsel, k);
    for (size_t i = nsel; i <= c->n; i++)
        assert_int_equal(sel[i], DEV_POISON32);
    free(sel);
}

static void run_prog(void **state, const tsr_dev_filter_spec_t *s, const cols_t *c)
{
    tsr_dev_t *dev = dev_test_dev(state);
    tsr_dev_filter_t *f = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_filter_create(dev, s, &f, &err), TSR_OK);
    check_run(f, s, c);
    tsr_dev_filter_destroy(f);
}

/* progs random programs over one random input. */
static void run_random(void **state, const gen_t *g, int progs, size_t launch_rows, uint64_t seed)
{
    cols_t c;
    dev_test_dev(state); /* a skip longjmps: before anything is allocated */
    cols_make(g, &seed, &c);
    for (int p = 0; p < progs; p++) {
        tsr_dev_filter_spec_t s;
        spec_init(&s);
        s.launch_rows = launch_rows;
        gen_prog(&s, 4, g->range, &seed);
        run_prog(state, &s, &c);
    }
    cols_free(&c);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 2, 63, 64, 65, 127, 1009, 16384 + 1, 65537};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        gen_t g = {.n = sizes[i], .null_pct = 15, .range = 20};
        run_random(state, &g, 12, 0, 100 + i);
    }
}

/* Tiny launches (rounded up to one work-group block): many launches. */
static void test_multi_launch(void **state)
{
    gen_t g = {.n = 100003, .null_pct = 10, .range = 50};
    run_random(state, &g, 6, 1, 201);
}

/* More rows than one default launch (2^22). */
static void test_large(void **state)
{
    gen_t g = {.n = ((size_t)1 << 22) + 4099, .null_pct = 5, .range = 1000};
    run_random(state, &g, 1, 0, 301);
}

static void test_skewed(void **state)
{
    gen_t g = {.n = 50021, .null_pct = 2, .skew_pct = 90, .range = 10};
    run_random(state, &g, 15, 0, 401);
    /* exactly the hot rows, nearly all rows, no rows */
    cols_t c;
    uint64_t seed = 402;
    cols_make(&g, &seed, &c);
    tsr_dev_filter_spec_t s;
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_EQ, 0, 3, 0);
    run_prog(state, &s, &c);
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_EQ, 0, 3, 0);
    emit(&s, TSR_DEV_PRED_NOT, 0, 0, 0);
    emit(&s, TSR_DEV_PRED_GE, 2, 0, -INFINITY);
    emit(&s, TSR_DEV_PRED_OR, 0, 0, 0);
    run_prog(state, &s, &c);
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_LT, 1, INT64_MIN, 0);
    run_prog(state, &s, &c);
    cols_free(&c);
}

/* SQL's NULL rules, one by one: x is NULL in row 1, y NULL in row 2. */
static void test_null_logic(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    int64_t x[4] = {1, 99, 7, 7};
    double y[4] = {2.0, 2.0, 99.0, NAN};
    uint64_t xv = 0xd, yv = 0xb; /* x: rows 0, 2, 3; y: rows 0, 1, 3 */
    tsr_dev_filter_cols_t in = {.n = 4};
    in.values[0] = x;
    in.values[1] = y;
    in.valid[0] = &xv;
    in.valid[1] = &yv;
    struct {
        tsr_dev_pred_instr_t prog[6];
        size_t n;
        uint64_t want; /* bit r: row r selected */
    } cases[] = {
        /* x < 5: row 0 (NULL row 1 not selected) */
        {{{TSR_DEV_PRED_LT, 0, 5, 0}}, 1, 0x1},
        /* NOT (x < 5): rows 2, 3 (NOT NULL is NULL) */
        {{{TSR_DEV_PRED_LT, 0, 5, 0}, {TSR_DEV_PRED_NOT, 0, 0, 0}}, 2, 0xc},
        /* x = 99 OR TRUE-ish: x > 100 is FALSE/NULL; NULL OR TRUE = TRUE */
        {{{TSR_DEV_PRED_GT, 0, 100, 0},
          {TSR_DEV_PRED_IS_NULL, 0, 0, 0},
          {TSR_DEV_PRED_OR, 0, 0, 0}},
         3,
         0x2},
        /* NOT (x > 100 AND y > 50): FALSE AND NULL = FALSE -> TRUE for row 2 ... */
        {{{TSR_DEV_PRED_GT, 0, 100, 0},
          {TSR_DEV_PRED_GT, 1, 0, 50.0},
          {TSR_DEV_PRED_AND, 0, 0, 0},
          {TSR_DEV_PRED_NOT, 0, 0, 0}},
         4,
         0xf /* x > 100 is FALSE or NULL, and NULL AND FALSE = FALSE: all rows */},
        /* y <> y's NaN row: NaN <> 2.0 is TRUE; y = NaN constant never */
        {{{TSR_DEV_PRED_NE, 1, 0, 2.0}}, 1, 0x8},
        {{{TSR_DEV_PRED_EQ, 1, 0, NAN}}, 1, 0x0},
        {{{TSR_DEV_PRED_NE, 1, 0, NAN}}, 1, 0xb},
        /* x IS NOT NULL AND y IS NULL: row 2 */
        {{{TSR_DEV_PRED_IS_NOT_NULL, 0, 0, 0},
          {TSR_DEV_PRED_IS_NULL, 1, 0, 0},
          {TSR_DEV_PRED_AND, 0, 0, 0}},
         3,
         0x4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tsr_dev_filter_spec_t s;
        memset(&s, 0, sizeof(s));
        s.ncols = 2;
        s.types[0] = TSR_TYPE_INT64;
        s.types[1] = TSR_TYPE_DOUBLE;
        s.ninstrs = cases[i].n;
        memcpy(s.prog, cases[i].prog, sizeof(cases[i].prog));
        tsr_dev_filter_t *f = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_dev_filter_create(dev, &s, &f, &err), TSR_OK);
        uint32_t sel[5];
        for (int k = 0; k < 5; k++)
            sel[k] = DEV_POISON32;
        size_t nsel = 0;
        assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err), TSR_OK);
        uint64_t got = 0;
        for (size_t k = 0; k < nsel; k++) {
            assert_true(sel[k] < 4);
            assert_true(k == 0 || sel[k] > sel[k - 1]);
            got |= (uint64_t)1 << sel[k];
        }
        if (got != cases[i].want)
            print_error("case %zu: got %#llx, want %#llx\n", i, (unsigned long long)got,
                        (unsigned long long)cases[i].want);
        assert_int_equal(got, cases[i].want);
        for (size_t k = nsel; k < 5; k++)
            assert_int_equal(sel[k], DEV_POISON32);
        tsr_dev_filter_destroy(f);
    }
}

/* -0.0 = 0.0, infinities, integer extremes. */
static void test_values(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    int64_t x[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
    double y[5] = {-0.0, 0.0, -INFINITY, INFINITY, NAN};
    tsr_dev_filter_cols_t in = {.n = 5};
    in.values[0] = x;
    in.values[1] = y;
    struct {
        tsr_dev_pred_instr_t in;
        uint64_t want;
    } cases[] = {
        {{TSR_DEV_PRED_LT, 0, 0, 0}, 0x3},         {{TSR_DEV_PRED_GE, 0, INT64_MIN, 0}, 0x1f},
        {{TSR_DEV_PRED_GT, 0, INT64_MAX, 0}, 0x0}, {{TSR_DEV_PRED_EQ, 0, INT64_MIN, 0}, 0x1},
        {{TSR_DEV_PRED_EQ, 1, 0, 0.0}, 0x3},       {{TSR_DEV_PRED_EQ, 1, 0, -0.0}, 0x3},
        {{TSR_DEV_PRED_LE, 1, 0, -INFINITY}, 0x4}, {{TSR_DEV_PRED_GT, 1, 0, 1e308}, 0x8},
        {{TSR_DEV_PRED_NE, 1, 0, INFINITY}, 0x17}, {{TSR_DEV_PRED_LT, 1, 0, INFINITY}, 0x7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tsr_dev_filter_spec_t s;
        memset(&s, 0, sizeof(s));
        s.ncols = 2;
        s.types[0] = TSR_TYPE_INT64;
        s.types[1] = TSR_TYPE_DOUBLE;
        s.ninstrs = 1;
        s.prog[0] = cases[i].in;
        tsr_dev_filter_t *f = NULL;
        tsr_error_t err;
        tsr_error_clear(&err);
        assert_int_equal(tsr_dev_filter_create(dev, &s, &f, &err), TSR_OK);
        uint32_t sel[6];
        size_t nsel = 0;
        assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err), TSR_OK);
        uint64_t got = 0;
        for (size_t k = 0; k < nsel; k++)
            got |= (uint64_t)1 << sel[k];
        if (got != cases[i].want)
            print_error("case %zu: got %#llx, want %#llx\n", i, (unsigned long long)got,
                        (unsigned long long)cases[i].want);
        assert_int_equal(got, cases[i].want);
        tsr_dev_filter_destroy(f);
    }
}

/* One filter, several runs of different sizes (buffers reused and grown). */
static void test_rerun(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    uint64_t seed = 501;
    tsr_dev_filter_spec_t s;
    spec_init(&s);
    gen_prog(&s, 4, 30, &seed);
    tsr_dev_filter_t *f = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_filter_create(dev, &s, &f, &err), TSR_OK);
    static const size_t sizes[] = {100, 70001, 0, 5, 40000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        gen_t g = {.n = sizes[i], .null_pct = 10, .range = 30};
        cols_t c;
        cols_make(&g, &seed, &c);
        check_run(f, &s, &c);
        cols_free(&c);
    }
    tsr_dev_filter_destroy(f);
}

static tsr_status_t create_status(tsr_dev_t *dev, const tsr_dev_filter_spec_t *s)
{
    tsr_dev_filter_t *f = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_dev_filter_create(dev, s, &f, &err);
    if (rc == TSR_OK)
        tsr_dev_filter_destroy(f);
    else
        assert_null(f);
    return rc;
}

static void test_bad_args(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    tsr_dev_filter_spec_t s;
    spec_init(&s);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG); /* empty program */
    emit(&s, TSR_DEV_PRED_AND, 0, 0, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG); /* underflow */
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_EQ, 0, 1, 0);
    emit(&s, TSR_DEV_PRED_EQ, 1, 1, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG); /* two values left */
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_EQ, NCOLS, 1, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG); /* no such column */
    spec_init(&s);
    emit(&s, (tsr_dev_pred_op_t)99, 0, 1, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG); /* bad op */
    spec_init(&s);
    emit(&s, TSR_DEV_PRED_NOT, 0, 0, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_INVALID_ARG);
    spec_init(&s);
    for (int i = 0; i < 17; i++)
        emit(&s, TSR_DEV_PRED_EQ, 0, i, 0);
    for (int i = 0; i < 16; i++)
        emit(&s, TSR_DEV_PRED_OR, 0, 0, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_UNSUPPORTED); /* 17 deep */
    spec_init(&s);
    for (int i = 0; i < 16; i++)
        emit(&s, TSR_DEV_PRED_EQ, 0, i, 0);
    for (int i = 0; i < 15; i++)
        emit(&s, TSR_DEV_PRED_OR, 0, 0, 0);
    assert_int_equal(create_status(dev, &s), TSR_OK); /* 16 deep is fine */
    spec_init(&s);
    s.types[1] = TSR_TYPE_VARCHAR;
    emit(&s, TSR_DEV_PRED_EQ, 0, 1, 0);
    assert_int_equal(create_status(dev, &s), TSR_ERR_UNSUPPORTED);
    spec_init(&s);
    s.ninstrs = TSR_DEV_FILTER_MAX_INSTRS + 1;
    assert_int_equal(create_status(dev, &s), TSR_ERR_UNSUPPORTED);
    assert_int_equal(tsr_dev_filter_create(dev, NULL, NULL, NULL), TSR_ERR_INVALID_ARG);

    spec_init(&s);
    emit(&s, TSR_DEV_PRED_EQ, 1, 1, 0);
    tsr_dev_filter_t *f = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_filter_create(dev, &s, &f, &err), TSR_OK);
    int64_t v[3] = {1, 2, 1};
    uint32_t sel[3];
    size_t nsel = 7;
    tsr_dev_filter_cols_t in = {.n = 3};
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err), TSR_ERR_INVALID_ARG);
    in.values[1] = v;
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, NULL, &nsel, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, NULL, &err), TSR_ERR_INVALID_ARG);
    dev_fixture_t *fx = *state;
    tsr_dev_t *other = fx->dev[fx->which == TSR_DEVICE_CPU ? TSR_DEVICE_OPENCL : TSR_DEVICE_CPU];
    if (other)
        assert_int_equal(tsr_dev_filter_run(f, other->queue, &in, sel, &nsel, &err),
                         TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err), TSR_OK);
    assert_int_equal(nsel, 2);
    assert_int_equal(sel[0], 0);
    assert_int_equal(sel[1], 2);
    in.n = 0;
    assert_int_equal(tsr_dev_filter_run(f, NULL, &in, NULL, &nsel, &err), TSR_OK);
    assert_int_equal(nsel, 0);
    tsr_dev_filter_destroy(f);
    tsr_dev_filter_destroy(NULL);
}

static void test_alloc_failures(void **state)
{
    tsr_dev_t *dev = dev_test_dev(state);
    uint64_t seed = 601;
    gen_t g = {.n = 40000, .null_pct = 10, .range = 30};
    cols_t c;
    cols_make(&g, &seed, &c);
    tsr_dev_filter_spec_t s;
    spec_init(&s);
    s.launch_rows = 1;
    gen_prog(&s, 3, 30, &seed);
    bool done = false;
    long failures = 0;
    for (long n = 0; !done && n < 200; n++) {
        tsr_mem_t mem;
        tsr_mem_init(&mem);
        tsr_dev_t *mdev = dev_test_reopen(dev, &mem);
        tsr_mem_fail_after(&mem, n);
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_dev_filter_t *f = NULL;
        tsr_status_t rc = tsr_dev_filter_create(mdev, &s, &f, &err);
        if (rc == TSR_OK) {
            tsr_dev_filter_cols_t in = cols_in(&c);
            uint32_t *sel = dev_poisoned32(c.n);
            size_t nsel = 0;
            rc = tsr_dev_filter_run(f, NULL, &in, sel, &nsel, &err);
            free(sel);
        }
        if (rc == TSR_OK) {
            done = true;
            tsr_mem_fail_after(&mem, -1);
            check_run(f, &s, &c);
        } else {
            assert_int_equal(rc, TSR_ERR_NOMEM);
        }
        failures += atomic_load(&mem.failures);
        tsr_dev_filter_destroy(f);
        tsr_mem_fail_after(&mem, -1);
        tsr_dev_close(mdev);
    }
    assert_true(done);
    assert_true(failures > 0);
    cols_free(&c);
}

DEV_TEST_BOTH(test_sizes)
DEV_TEST_BOTH(test_multi_launch)
DEV_TEST_ON(test_large, _cl, TSR_DEVICE_OPENCL)
DEV_TEST_BOTH(test_skewed)
DEV_TEST_BOTH(test_null_logic)
DEV_TEST_BOTH(test_values)
DEV_TEST_BOTH(test_rerun)
DEV_TEST_BOTH(test_bad_args)
DEV_TEST_BOTH(test_alloc_failures)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DEV_TESTS(test_sizes),  DEV_TESTS(test_multi_launch), cmocka_unit_test(test_large_cl),
        DEV_TESTS(test_skewed), DEV_TESTS(test_null_logic),   DEV_TESTS(test_values),
        DEV_TESTS(test_rerun),  DEV_TESTS(test_bad_args),     DEV_TESTS(test_alloc_failures),
    };
    return dev_test_exit(cmocka_run_group_tests(tests, dev_test_setup, dev_test_teardown));
}
