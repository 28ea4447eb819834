/*
 * exec_model.h - test support shared by test_expr.c, test_exec.c and
 * test_sort.c: random in-memory tables, expression-tree builders, and a
 * row-at-a-time reference evaluator of the semantics in engine/exec/plan.h.
 *
 * The reference is written independently of the engine on purpose: plain
 * per-row recursion over values, a backtracking LIKE matcher, no
 * dictionaries for comparisons (bytes only). The engine's vectorized results
 * are checked against it row by row.
 */
#ifndef TSR_TEST_EXEC_MODEL_H
#define TSR_TEST_EXEC_MODEL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "exec/operators.h"
#include "exec/plan.h"
#include "table/dict.h"
#include "table/table.h"

/* ---- random numbers --------------------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(rng_t *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

static inline bool rng_pct(rng_t *r, unsigned pct)
{
    return rng_below(r, 100) < pct;
}

/* ---- values ------------------------------------------------------------------- */

typedef struct mval {
    tsr_type_t type;
    bool null;
    int64_t i; /* INT64, BOOL */
    double d;
    const char *s; /* VARCHAR */
    size_t slen;
} mval_t;

static inline mval_t mv_null(tsr_type_t t)
{
    mval_t v = {0};
    v.type = t;
    v.null = true;
    return v;
}

static inline mval_t mv_bool(bool b)
{
    mval_t v = {0};
    v.type = TSR_TYPE_BOOL;
    v.i = b;
    return v;
}

/* The value of row r of a vector. */
static inline mval_t mv_cell(const tsr_vector_t *v, tsr_type_t type, size_t r)
{
    if (type == TSR_TYPE_NULL || !tsr_bit_get(v->validity, r))
        return mv_null(type);
    mval_t m = {0};
    m.type = type;
    switch (type) {
    case TSR_TYPE_BOOL:
        m.i = ((const uint8_t *)v->data)[r] != 0;
        break;
    case TSR_TYPE_INT64:
        m.i = ((const int64_t *)v->data)[r];
        break;
    case TSR_TYPE_DOUBLE:
        m.d = ((const double *)v->data)[r];
        break;
    case TSR_TYPE_VARCHAR:
        m.s = tsr_dict_get(v->dict, ((const uint32_t *)v->data)[r], &m.slen);
        break;
    default:
        break;
    }
    return m;
}

static inline int mv_strcmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (al > bl) - (al < bl);
}

/* Exact equality of two values (NULLs equal; doubles bitwise or both NaN). */
static inline bool mv_same(const mval_t *a, const mval_t *b)
{
    if (a->null || b->null)
        return a->null == b->null;
    switch (a->type) {
    case TSR_TYPE_DOUBLE:
        return (isnan(a->d) && isnan(b->d)) || a->d == b->d;
    case TSR_TYPE_VARCHAR:
        return mv_strcmp(a->s, a->slen, b->s, b->slen) == 0;
    default:
        return a->i == b->i;
    }
}

static inline void mv_print(const mval_t *v, char *buf, size_t cap)
{
    if (v->null)
        snprintf(buf, cap, "NULL");
    else if (v->type == TSR_TYPE_DOUBLE)
        snprintf(buf, cap, "%.17g", v->d);
    else if (v->type == TSR_TYPE_VARCHAR)
        snprintf(buf, cap, "'%.*s'", (int)v->slen, v->s);
    else
        snprintf(buf, cap, "%lld", (long long)v->i);
}

/* ---- the reference LIKE: plain backtracking over bytes --------------------- */

static inline bool model_like(const char *s, size_t sl, const char *p, size_t pl)
{
    if (pl == 0)
        return sl == 0;
    if (p[0] == '%') {
        for (size_t k = 0; k <= sl; k++)
            if (model_like(s + k, sl - k, p + 1, pl - 1))
                return true;
        return false;
    }
    if (sl == 0)
        return false;
    if (p[0] == '_' || p[0] == s[0])
        return model_like(s + 1, sl - 1, p + 1, pl - 1);
    return false;
}

/* ---- the reference evaluator ------------------------------------------------- */

/* Three-way compare of two non-NULL values of one type; *unordered for NaN. */
static inline int model_cmp3(const mval_t *a, const mval_t *b, bool *unordered)
{
    *unordered = false;
    switch (a->type) {
    case TSR_TYPE_DOUBLE:
        if (a->d < b->d)
            return -1;
        if (a->d > b->d)
            return 1;
        if (a->d == b->d)
            return 0;
        *unordered = true;
        return 0;
    case TSR_TYPE_VARCHAR:
        return mv_strcmp(a->s, a->slen, b->s, b->slen);
    default:
        return (a->i > b->i) - (a->i < b->i);
    }
}

static inline bool model_cmp_op(tsr_op_t op, const mval_t *a, const mval_t *b)
{
    bool un;
    int c = model_cmp3(a, b, &un);
    if (un) /* IEEE: only <> holds for NaN */
        return op == TSR_OP_NE;
    switch (op) {
    case TSR_OP_EQ:
        return c == 0;
    case TSR_OP_NE:
        return c != 0;
    case TSR_OP_LT:
        return c < 0;
    case TSR_OP_LE:
        return c <= 0;
    case TSR_OP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

/* Row r of batch as values (types: the table's column types). */
static inline void model_row(const tsr_batch_t *batch, const tsr_type_t *types, size_t ncols,
                             size_t r, mval_t *row)
{
    for (size_t c = 0; c < ncols; c++)
        row[c] = mv_cell(&batch->cols[c], types[c], r);
}

/* Evaluates e over one row of values. Returns 0, or 1 on integer overflow. */
static inline int model_eval(const tsr_expr_t *e, const mval_t *row, mval_t *out)
{
    mval_t a, b;
    switch (e->kind) {
    case TSR_EXPR_COLUMN:
        *out = row[e->column];
        return 0;
    case TSR_EXPR_CONST:
        if (e->value.type == TSR_TYPE_NULL || e->value.is_null) {
            *out = mv_null(e->type);
            return 0;
        }
        memset(out, 0, sizeof(*out));
        out->type = e->value.type;
        out->i = e->value.i;
        out->d = e->value.d;
        out->s = e->value.s;
        out->slen = e->value.slen;
        return 0;
    case TSR_EXPR_UNARY:
        if (model_eval(e->args[0], row, &a))
            return 1;
        if (a.null) {
            *out = mv_null(e->type);
            return 0;
        }
        if (e->op == TSR_OP_NOT) {
            *out = mv_bool(!a.i);
            return 0;
        }
        *out = a;
        if (a.type == TSR_TYPE_DOUBLE) {
            out->d = -a.d;
            return 0;
        }
        if (a.i == INT64_MIN)
            return 1;
        out->i = -a.i;
        return 0;
    case TSR_EXPR_BINARY: {
        if (model_eval(e->args[0], row, &a))
            return 1;
        if (e->op == TSR_OP_AND || e->op == TSR_OP_OR) {
            /* left to right: where the left operand decides, the right one's
             * overflow does not count (a guard: a < 1000 AND a * a > 5) */
            bool decide = e->op == TSR_OP_OR;
            if (!a.null && (a.i != 0) == decide) {
                *out = mv_bool(decide);
                return 0;
            }
            if (model_eval(e->args[1], row, &b))
                return 1;
            if (!b.null && (b.i != 0) == decide)
                *out = mv_bool(decide);
            else if (a.null || b.null)
                *out = mv_null(TSR_TYPE_BOOL);
            else
                *out = mv_bool(!decide);
            return 0;
        }
        if (model_eval(e->args[1], row, &b))
            return 1;
        if (a.null || b.null) {
            *out = mv_null(e->type);
            return 0;
        }
        if (e->op >= TSR_OP_EQ && e->op <= TSR_OP_GE) {
            *out = mv_bool(model_cmp_op(e->op, &a, &b));
            return 0;
        }
        memset(out, 0, sizeof(*out));
        out->type = e->type;
        if (e->type == TSR_TYPE_DOUBLE) {
            double x = a.d, y = b.d;
            switch (e->op) {
            case TSR_OP_ADD:
                out->d = x + y;
                break;
            case TSR_OP_SUB:
                out->d = x - y;
                break;
            case TSR_OP_MUL:
                out->d = x * y;
                break;
            case TSR_OP_DIV:
                if (y == 0)
                    *out = mv_null(TSR_TYPE_DOUBLE);
                else
                    out->d = x / y;
                break;
            default:
                if (y == 0)
                    *out = mv_null(TSR_TYPE_DOUBLE);
                else
                    out->d = fmod(x, y);
                break;
            }
            return 0;
        }
        /* INT64 with the wide type as the judge of overflow */
        __int128 x = a.i, y = b.i, z;
        switch (e->op) {
        case TSR_OP_ADD:
            z = x + y;
            break;
        case TSR_OP_SUB:
            z = x - y;
            break;
        case TSR_OP_MUL:
            z = x * y;
            break;
        case TSR_OP_DIV:
            if (y == 0) {
                *out = mv_null(TSR_TYPE_INT64);
                return 0;
            }
            z = x / y;
            break;
        default:
            if (y == 0) {
                *out = mv_null(TSR_TYPE_INT64);
                return 0;
            }
            z = x % y;
            break;
        }
        if (z > INT64_MAX || z < INT64_MIN)
            return 1;
        out->i = (int64_t)z;
        return 0;
    }
    case TSR_EXPR_IS_NULL:
        if (model_eval(e->args[0], row, &a))
            return 1;
        *out = mv_bool(a.null != e->negated);
        return 0;
    case TSR_EXPR_IN: {
        if (model_eval(e->args[0], row, &a))
            return 1;
        bool found = false, any_null = false;
        for (size_t k = 1; k < e->nargs; k++) {
            if (model_eval(e->args[k], row, &b))
                return 1;
            if (b.null)
                any_null = true;
            else if (!a.null && model_cmp_op(TSR_OP_EQ, &a, &b))
                found = true;
        }
        if (a.null || (!found && any_null))
            *out = mv_null(TSR_TYPE_BOOL);
        else
            *out = mv_bool(found != e->negated);
        return 0;
    }
    case TSR_EXPR_LIKE:
        if (model_eval(e->args[0], row, &a) || model_eval(e->args[1], row, &b))
            return 1;
        if (a.null || b.null)
            *out = mv_null(TSR_TYPE_BOOL);
        else
            *out = mv_bool(model_like(a.s, a.slen, b.s, b.slen) != e->negated);
        return 0;
    case TSR_EXPR_CAST:
        if (model_eval(e->args[0], row, &a))
            return 1;
        if (a.null) {
            *out = mv_null(e->type);
            return 0;
        }
        memset(out, 0, sizeof(*out));
        out->type = e->type;
        if (e->type == TSR_TYPE_DOUBLE)
            out->d = a.type == TSR_TYPE_DOUBLE ? a.d : (double)a.i;
        else
            out->i = a.i;
        if (a.type == e->type)
            *out = a;
        return 0;
    }
    return 0;
}

/* ---- expression builders (arena) ---------------------------------------------- */

static inline tsr_expr_t *ex_new(tsr_arena_t *ar, tsr_expr_kind_t kind, tsr_type_t type)
{
    tsr_expr_t *e = tsr_arena_alloc(ar, sizeof(*e));
    e->kind = kind;
    e->type = type;
    return e;
}

static inline tsr_expr_t *ex_col(tsr_arena_t *ar, size_t col, tsr_type_t type)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_COLUMN, type);
    e->column = col;
    return e;
}

static inline tsr_expr_t *ex_int(tsr_arena_t *ar, int64_t v)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_CONST, TSR_TYPE_INT64);
    e->value.type = TSR_TYPE_INT64;
    e->value.i = v;
    return e;
}

static inline tsr_expr_t *ex_dbl(tsr_arena_t *ar, double v)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_CONST, TSR_TYPE_DOUBLE);
    e->value.type = TSR_TYPE_DOUBLE;
    e->value.d = v;
    return e;
}

static inline tsr_expr_t *ex_bool(tsr_arena_t *ar, bool v)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_CONST, TSR_TYPE_BOOL);
    e->value.type = TSR_TYPE_BOOL;
    e->value.i = v;
    return e;
}

static inline tsr_expr_t *ex_str(tsr_arena_t *ar, const char *s, size_t len)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_CONST, TSR_TYPE_VARCHAR);
    e->value.type = TSR_TYPE_VARCHAR;
    e->value.s = tsr_arena_strndup(ar, s, len);
    e->value.slen = len;
    return e;
}

/* NULL literal typed t (as the planner types a NULL in context). */
static inline tsr_expr_t *ex_null(tsr_arena_t *ar, tsr_type_t t)
{
    tsr_expr_t *e = ex_new(ar, TSR_EXPR_CONST, t);
    e->value.type = TSR_TYPE_NULL;
    e->value.is_null = true;
    return e;
}

static inline tsr_expr_t *ex_args(tsr_arena_t *ar, tsr_expr_kind_t kind, tsr_type_t type,
                                  tsr_op_t op, size_t nargs, tsr_expr_t **args)
{
    tsr_expr_t *e = ex_new(ar, kind, type);
    e->op = op;
    e->nargs = nargs;
    e->args = tsr_arena_alloc(ar, nargs * sizeof(tsr_expr_t *));
    for (size_t k = 0; k < nargs; k++)
        e->args[k] = args[k];
    return e;
}

static inline tsr_expr_t *ex_bin(tsr_arena_t *ar, tsr_op_t op, tsr_expr_t *a, tsr_expr_t *b)
{
    tsr_type_t t = (op >= TSR_OP_EQ) ? TSR_TYPE_BOOL : a->type;
    tsr_expr_t *args[2] = {a, b};
    return ex_args(ar, TSR_EXPR_BINARY, t, op, 2, args);
}

static inline tsr_expr_t *ex_un(tsr_arena_t *ar, tsr_op_t op, tsr_expr_t *a)
{
    return ex_args(ar, TSR_EXPR_UNARY, op == TSR_OP_NOT ? TSR_TYPE_BOOL : a->type, op, 1, &a);
}

static inline tsr_expr_t *ex_isnull(tsr_arena_t *ar, tsr_expr_t *a, bool negated)
{
    tsr_expr_t *e = ex_args(ar, TSR_EXPR_IS_NULL, TSR_TYPE_BOOL, TSR_OP_NONE, 1, &a);
    e->negated = negated;
    return e;
}

static inline tsr_expr_t *ex_like(tsr_arena_t *ar, tsr_expr_t *a, tsr_expr_t *pat, bool negated)
{
    tsr_expr_t *args[2] = {a, pat};
    tsr_expr_t *e = ex_args(ar, TSR_EXPR_LIKE, TSR_TYPE_BOOL, TSR_OP_NONE, 2, args);
    e->negated = negated;
    return e;
}

static inline tsr_expr_t *ex_cast(tsr_arena_t *ar, tsr_expr_t *a, tsr_type_t to)
{
    return ex_args(ar, TSR_EXPR_CAST, to, TSR_OP_NONE, 1, &a);
}

/* ---- test tables --------------------------------------------------------------------- */

/* Columns of the standard random table (see model_table). */
enum {
    MC_I1, /* INT64 -50..50, no NULLs */
    MC_I2, /* INT64 with NULLs, -1000..1000, zeros */
    MC_I3, /* INT64 with NULLs, extremes (MIN, MAX, -1, 0, +-2^32) */
    MC_D1, /* DOUBLE with NULLs, incl. 0.0, -0.0 */
    MC_B1, /* BOOL with NULLs */
    MC_S1, /* VARCHAR with NULLs, dictionary A */
    MC_S2, /* VARCHAR, dictionary B (other codes for equal strings) */
    MC_S3, /* VARCHAR with NULLs, dictionary A too */
    MC_NCOLS
};

static const tsr_type_t model_types[MC_NCOLS] = {
    TSR_TYPE_INT64, TSR_TYPE_INT64,   TSR_TYPE_INT64,   TSR_TYPE_DOUBLE,
    TSR_TYPE_BOOL,  TSR_TYPE_VARCHAR, TSR_TYPE_VARCHAR, TSR_TYPE_VARCHAR};
static const char *const model_names[MC_NCOLS] = {"i1", "i2", "i3", "d1", "b1", "s1", "s2", "s3"};

/* Strings the tables and the tests draw from: prefixes, %, _, UTF-8, 0xff. */
static const char *const model_strings[] = {
    "",      "a",     "ab",          "abc",          "abd",    "b",   "ba",
    "bab",   "hello", "hello world", "h\xc3\xa9llo", "xyz%",   "a_c", "a%c",
    "HELLO", "zz",    "\xff",        "aaa",          "abcabc", "%",   "_"};
#define MODEL_NSTRINGS (sizeof(model_strings) / sizeof(model_strings[0]))

static inline tsr_dict_t *model_dict(tsr_mem_t *mem, rng_t *rng, bool all)
{
    tsr_dict_t *d;
    if (tsr_dict_create(mem, &d) != TSR_OK)
        return NULL;
    /* a random insertion order so codes differ from ranks and across dicts */
    size_t order[MODEL_NSTRINGS];
    for (size_t k = 0; k < MODEL_NSTRINGS; k++)
        order[k] = k;
    for (size_t k = MODEL_NSTRINGS; k > 1; k--) {
        size_t j = rng_below(rng, k);
        size_t t = order[k - 1];
        order[k - 1] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < MODEL_NSTRINGS; k++) {
        if (!all && rng_pct(rng, 25))
            continue;
        uint32_t code;
        const char *s = model_strings[order[k]];
        tsr_dict_intern(d, s, strlen(s), &code);
    }
    tsr_dict_freeze(d);
    return d;
}

static inline size_t model_next_batch_rows(rng_t *rng, bool ragged, size_t left)
{
    size_t n = TSR_BATCH_ROWS;
    if (ragged) {
        uint64_t pick = rng_below(rng, 4);
        n = pick == 0   ? 0
            : pick == 1 ? 1 + rng_below(rng, 100)
                        : 1 + rng_below(rng, TSR_BATCH_ROWS);
    }
    return n < left ? n : left;
}

/* A table of nrows random rows in the MC_* layout. ragged: batches of random
 * sizes (empty ones too) instead of full TSR_BATCH_ROWS batches. Values under
 * NULLs are garbage on purpose (extremes, out-of-range codes). */
static inline tsr_table_t *model_table(tsr_mem_t *mem, size_t nrows, uint64_t seed, bool ragged)
{
    rng_t rng = {seed};
    tsr_table_t *t;
    if (tsr_table_create(mem, "t", MC_NCOLS, model_names, model_types, &t) != TSR_OK)
        return NULL;
    tsr_dict_t *da = model_dict(mem, &rng, false), *db = model_dict(mem, &rng, true);
    tsr_table_adopt_dict(t, MC_S1, da);
    tsr_table_adopt_dict(t, MC_S2, db);
    uint32_t na = tsr_dict_size(da), nb = tsr_dict_size(db);
    static const int64_t extremes[] = {
        INT64_MIN,     INT64_MAX,     -1,          0, 1, 4294967296LL, -4294967296LL,
        INT64_MIN + 1, INT64_MAX - 1, 3037000500LL};
    static const double dvals[] = {0.0, -0.0, 1.5, -2.25, 1e300, -1e300, 3.0, 7.0};
    size_t left = nrows;
    /* zero-row tables still get one empty batch sometimes */
    bool first = true;
    while (left > 0 || (first && ragged && rng_pct(&rng, 50))) {
        first = false;
        size_t n = model_next_batch_rows(&rng, ragged, left);
        tsr_vector_t *cols = tsr_mem_calloc(mem, MC_NCOLS, sizeof(tsr_vector_t));
        for (size_t c = 0; c < MC_NCOLS; c++) {
            bool nulls = c != MC_I1 && c != MC_S2;
            const tsr_dict_t *d = c == MC_S2 ? db : (c == MC_S1 || c == MC_S3) ? da : NULL;
            tsr_vector_alloc(mem, model_types[c], n, nulls, d, &cols[c]);
            tsr_vector_t *v = &cols[c];
            for (size_t r = 0; r < n; r++) {
                bool isnull = nulls && rng_pct(&rng, 20);
                if (isnull)
                    tsr_bit_set(v->owned_validity, r, false);
                switch (c) {
                case MC_I1:
                    ((int64_t *)v->data)[r] = (int64_t)rng_below(&rng, 101) - 50;
                    break;
                case MC_I2:
                    ((int64_t *)v->data)[r] = isnull ? extremes[rng_below(&rng, 10)]
                                              : rng_pct(&rng, 10)
                                                  ? 0
                                                  : (int64_t)rng_below(&rng, 2001) - 1000;
                    break;
                case MC_I3:
                    ((int64_t *)v->data)[r] = rng_pct(&rng, 50) ? extremes[rng_below(&rng, 10)]
                                                                : (int64_t)rng_below(&rng, 21) - 10;
                    break;
                case MC_D1:
                    ((double *)v->data)[r] = rng_pct(&rng, 50)
                                                 ? dvals[rng_below(&rng, 8)]
                                                 : ((double)rng_below(&rng, 2001) - 1000) / 8.0;
                    break;
                case MC_B1:
                    ((uint8_t *)v->data)[r] =
                        isnull ? (uint8_t)rng_below(&rng, 4) : (uint8_t)rng_below(&rng, 2);
                    break;
                default: {
                    uint32_t size = c == MC_S2 ? nb : na;
                    ((uint32_t *)v->data)[r] = isnull ? (rng_pct(&rng, 50) ? UINT32_MAX : 0)
                                                      : (uint32_t)rng_below(&rng, size);
                    break;
                }
                }
            }
        }
        tsr_table_append_batch(t, n, cols);
        left -= n;
    }
    return t;
}

/* ---- random expressions ------------------------------------------------------------------ */

static inline tsr_expr_t *gen_expr(tsr_arena_t *ar, rng_t *rng, tsr_type_t type, int depth);

static inline tsr_expr_t *gen_str_const(tsr_arena_t *ar, rng_t *rng)
{
    if (rng_pct(rng, 15)) { /* a string no table holds */
        return ex_str(ar, "nope", 4);
    }
    const char *s = model_strings[rng_below(rng, MODEL_NSTRINGS)];
    return ex_str(ar, s, strlen(s));
}

static inline tsr_expr_t *gen_pattern(tsr_arena_t *ar, rng_t *rng)
{
    static const char *const pats[] = {"",    "%",    "a%",     "%c",      "%b%",    "a_c",
                                       "_",   "___",  "a%c",    "%a%b%",   "h%o",    "h_llo",
                                       "%%",  "a",    "abc",    "%abc%",   "%\xc3%", "%\xff",
                                       "_%_", "xyz%", "ab%ab%", "%a%a%a%", "b_b",    "%_"};
    const char *p = pats[rng_below(rng, sizeof(pats) / sizeof(pats[0]))];
    return ex_str(ar, p, strlen(p));
}

static inline tsr_expr_t *gen_expr(tsr_arena_t *ar, rng_t *rng, tsr_type_t type, int depth)
{
    bool leaf = depth <= 0 || rng_pct(rng, 25);
    switch (type) {
    case TSR_TYPE_INT64:
        if (leaf) {
            uint64_t k = rng_below(rng, 10);
            if (k < 5) {
                static const size_t cols[] = {MC_I1, MC_I2, MC_I3};
                return ex_col(ar, cols[rng_below(rng, 3)], TSR_TYPE_INT64);
            }
            if (k == 5)
                return ex_null(ar, TSR_TYPE_INT64);
            if (k == 6) {
                static const int64_t special[] = {INT64_MIN, INT64_MAX, -1, 0, 1, 2, 3037000500LL};
                return ex_int(ar, special[rng_below(rng, 7)]);
            }
            return ex_int(ar, (int64_t)rng_below(rng, 41) - 20);
        }
        switch (rng_below(rng, 4)) {
        case 0:
            return ex_un(ar, TSR_OP_NEG, gen_expr(ar, rng, TSR_TYPE_INT64, depth - 1));
        case 1:
            return ex_cast(ar, gen_expr(ar, rng, TSR_TYPE_BOOL, depth - 1), TSR_TYPE_INT64);
        default:
            return ex_bin(ar, (tsr_op_t)(TSR_OP_ADD + rng_below(rng, 5)),
                          gen_expr(ar, rng, TSR_TYPE_INT64, depth - 1),
                          gen_expr(ar, rng, TSR_TYPE_INT64, depth - 1));
        }
    case TSR_TYPE_DOUBLE:
        if (leaf) {
            uint64_t k = rng_below(rng, 8);
            if (k < 4)
                return ex_col(ar, MC_D1, TSR_TYPE_DOUBLE);
            if (k == 4)
                return ex_null(ar, TSR_TYPE_DOUBLE);
            if (k == 5)
                return ex_dbl(ar, rng_pct(rng, 50) ? 0.0 : -0.0);
            return ex_dbl(ar, ((double)rng_below(rng, 41) - 20) / 4.0);
        }
        switch (rng_below(rng, 4)) {
        case 0:
            return ex_un(ar, TSR_OP_NEG, gen_expr(ar, rng, TSR_TYPE_DOUBLE, depth - 1));
        case 1:
            return ex_cast(ar, gen_expr(ar, rng, TSR_TYPE_INT64, depth - 1), TSR_TYPE_DOUBLE);
        default:
            return ex_bin(ar, (tsr_op_t)(TSR_OP_ADD + rng_below(rng, 5)),
                          gen_expr(ar, rng, TSR_TYPE_DOUBLE, depth - 1),
                          gen_expr(ar, rng, TSR_TYPE_DOUBLE, depth - 1));
        }
    case TSR_TYPE_VARCHAR:
        if (rng_pct(rng, 30))
            return gen_str_const(ar, rng);
        {
            static const size_t cols[] = {MC_S1, MC_S2, MC_S3};
            return ex_col(ar, cols[rng_below(rng, 3)], TSR_TYPE_VARCHAR);
        }
    default: /* BOOL */
        if (leaf) {
            uint64_t k = rng_below(rng, 6);
            if (k < 3)
                return ex_col(ar, MC_B1, TSR_TYPE_BOOL);
            if (k == 3)
                return ex_null(ar, TSR_TYPE_BOOL);
            if (k == 4)
                return ex_bool(ar, rng_pct(rng, 50));
            return ex_bin(ar, (tsr_op_t)(TSR_OP_EQ + rng_below(rng, 6)),
                          gen_expr(ar, rng, TSR_TYPE_INT64, 0),
                          ex_int(ar, (int64_t)rng_below(rng, 21) - 10));
        }
        switch (rng_below(rng, 9)) {
        case 0:
        case 1: {
            static const tsr_type_t ts[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE, TSR_TYPE_VARCHAR,
                                            TSR_TYPE_BOOL};
            tsr_type_t t = ts[rng_below(rng, 4)];
            return ex_bin(ar, (tsr_op_t)(TSR_OP_EQ + rng_below(rng, 6)),
                          gen_expr(ar, rng, t, depth - 1), gen_expr(ar, rng, t, depth - 1));
        }
        case 2:
        case 3:
            return ex_bin(ar, rng_pct(rng, 50) ? TSR_OP_AND : TSR_OP_OR,
                          gen_expr(ar, rng, TSR_TYPE_BOOL, depth - 1),
                          gen_expr(ar, rng, TSR_TYPE_BOOL, depth - 1));
        case 4:
            return ex_un(ar, TSR_OP_NOT, gen_expr(ar, rng, TSR_TYPE_BOOL, depth - 1));
        case 5: {
            static const tsr_type_t ts[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE, TSR_TYPE_VARCHAR,
                                            TSR_TYPE_BOOL};
            return ex_isnull(ar, gen_expr(ar, rng, ts[rng_below(rng, 4)], depth - 1),
                             rng_pct(rng, 50));
        }
        case 6: {
            static const tsr_type_t ts[] = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE, TSR_TYPE_VARCHAR,
                                            TSR_TYPE_BOOL};
            tsr_type_t t = ts[rng_below(rng, 4)];
            size_t nargs = 2 + rng_below(rng, rng_pct(rng, 20) ? 30 : 4);
            tsr_expr_t **args = tsr_arena_alloc(ar, nargs * sizeof(tsr_expr_t *));
            args[0] = gen_expr(ar, rng, t, depth - 1);
            bool general = rng_pct(rng, 20); /* non-constant list elements */
            for (size_t k = 1; k < nargs; k++) {
                if (general)
                    args[k] = gen_expr(ar, rng, t, 1);
                else if (rng_pct(rng, 8))
                    args[k] = ex_null(ar, t);
                else if (t == TSR_TYPE_VARCHAR)
                    args[k] = gen_str_const(ar, rng);
                else if (t == TSR_TYPE_INT64)
                    args[k] = ex_int(ar, (int64_t)rng_below(rng, 61) - 30);
                else if (t == TSR_TYPE_DOUBLE)
                    args[k] = ex_dbl(ar, ((double)rng_below(rng, 41) - 20) / 8.0);
                else
                    args[k] = ex_bool(ar, rng_pct(rng, 50));
            }
            tsr_expr_t *e = ex_args(ar, TSR_EXPR_IN, TSR_TYPE_BOOL, TSR_OP_NONE, nargs, args);
            e->negated = rng_pct(rng, 40);
            return e;
        }
        default:
            return ex_like(ar, gen_expr(ar, rng, TSR_TYPE_VARCHAR, depth - 1),
                           rng_pct(rng, 5) ? ex_null(ar, TSR_TYPE_VARCHAR) : gen_pattern(ar, rng),
                           rng_pct(rng, 30));
        }
    }
}

/* ---- relations as rows of values, and a reference plan runner -------------------- */

typedef struct mrows {
    size_t n, ncols;
    mval_t *v; /* n * ncols, row-major */
} mrows_t;

static inline mval_t *mrow(const mrows_t *m, size_t i)
{
    return m->v + i * m->ncols;
}

static inline void mrows_free(mrows_t *m)
{
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

/* Every row of t, in batch order. */
static inline mrows_t model_from_table(const tsr_table_t *t)
{
    mrows_t m = {0, t->ncols, NULL};
    m.v = calloc((t->nrows ? t->nrows : 1) * (t->ncols ? t->ncols : 1), sizeof(mval_t));
    tsr_type_t types[64];
    for (size_t c = 0; c < t->ncols; c++)
        types[c] = t->fields[c].type;
    for (size_t b = 0; b < t->nbatches; b++)
        for (size_t r = 0; r < t->batches[b].nrows; r++)
            model_row(&t->batches[b], types, t->ncols, r, mrow(&m, m.n++));
    return m;
}

/* SQL sort order of two values of one column: NULL smallest, -0.0 == 0.0,
 * NaN above everything else. */
static inline int model_sort_cmp1(const mval_t *a, const mval_t *b)
{
    if (a->null || b->null)
        return (int)b->null - (int)a->null;
    if (a->type == TSR_TYPE_DOUBLE) {
        bool na = isnan(a->d), nb = isnan(b->d);
        if (na || nb)
            return (int)na - (int)nb;
        return (a->d > b->d) - (a->d < b->d);
    }
    if (a->type == TSR_TYPE_VARCHAR)
        return mv_strcmp(a->s, a->slen, b->s, b->slen);
    return (a->i > b->i) - (a->i < b->i);
}

static inline int model_sort_cmp(const mval_t *a, const mval_t *b, const tsr_sort_key_t *keys,
                                 size_t nkeys)
{
    for (size_t k = 0; k < nkeys; k++) {
        int c = model_sort_cmp1(&a[keys[k].column], &b[keys[k].column]);
        if (c)
            return keys[k].desc ? -c : c;
    }
    return 0;
}

/* Stable: a plain top-down merge sort of row indices. */
static inline void model_msort(const mrows_t *m, size_t *idx, size_t *tmp, size_t n,
                               const tsr_sort_key_t *keys, size_t nkeys)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    model_msort(m, idx, tmp, h, keys, nkeys);
    model_msort(m, idx + h, tmp, n - h, keys, nkeys);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] =
            model_sort_cmp(mrow(m, idx[j]), mrow(m, idx[i]), keys, nkeys) < 0 ? idx[j++] : idx[i++];
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof(size_t));
}

static inline void model_sort(mrows_t *m, const tsr_sort_key_t *keys, size_t nkeys)
{
    size_t n = m->n;
    size_t *idx = malloc((n ? n : 1) * sizeof(size_t)), *tmp = malloc((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    model_msort(m, idx, tmp, n, keys, nkeys);
    mval_t *v = calloc((n ? n : 1) * (m->ncols ? m->ncols : 1), sizeof(mval_t));
    for (size_t i = 0; i < n; i++)
        memcpy(v + i * m->ncols, mrow(m, idx[i]), m->ncols * sizeof(mval_t));
    free(m->v);
    m->v = v;
    free(idx);
    free(tmp);
}

/* GROUP BY keys with COUNT(*), COUNT, SUM, MIN, MAX (no DISTINCT, no AVG):
 * groups in order of first appearance; NULL keys group together. */
static inline int model_aggregate(const tsr_plan_t *p, const mrows_t *in, mrows_t *m)
{
    size_t nk = p->nkeys, na = p->naggs;
    size_t ng = 0;
    int rc = 0;
    free(m->v);
    m->v = calloc((in->n + 1) * (nk + na), sizeof(mval_t));
    int64_t *counts = calloc((in->n + 1) * (na ? na : 1), sizeof(int64_t));
    mval_t key[16];
    for (size_t i = 0; i < in->n; i++) {
        for (size_t k = 0; k < nk; k++)
            if (model_eval(p->keys[k], mrow(in, i), &key[k]))
                rc = 1;
        size_t g;
        for (g = 0; g < ng; g++) {
            bool same = true;
            for (size_t k = 0; k < nk && same; k++)
                same = mv_same(&mrow(m, g)[k], &key[k]);
            if (same)
                break;
        }
        if (g == ng) {
            ng++;
            for (size_t k = 0; k < nk; k++)
                mrow(m, g)[k] = key[k];
            for (size_t a = 0; a < na; a++)
                mrow(m, g)[nk + a] = mv_null(p->aggs[a].type);
        }
        for (size_t a = 0; a < na; a++) {
            const tsr_agg_t *ag = &p->aggs[a];
            mval_t *acc = &mrow(m, g)[nk + a];
            mval_t v = mv_bool(true);
            if (ag->arg && model_eval(ag->arg, mrow(in, i), &v))
                rc = 1;
            if (v.null)
                continue;
            counts[g * na + a]++;
            if (ag->fn == TSR_AGG_COUNT_STAR || ag->fn == TSR_AGG_COUNT)
                continue;
            if (acc->null) {
                *acc = v;
                continue;
            }
            if (ag->fn == TSR_AGG_SUM) {
                if (__builtin_add_overflow(acc->i, v.i, &acc->i))
                    rc = 1;
            } else {
                int c = model_sort_cmp1(&v, acc);
                if ((ag->fn == TSR_AGG_MIN && c < 0) || (ag->fn == TSR_AGG_MAX && c > 0))
                    *acc = v;
            }
        }
    }
    if (nk == 0 && ng == 0) { /* no keys: exactly one row */
        ng = 1;
        for (size_t a = 0; a < na; a++)
            mrow(m, 0)[a] = mv_null(p->aggs[a].type);
    }
    for (size_t g = 0; g < ng; g++)
        for (size_t a = 0; a < na; a++)
            if (p->aggs[a].fn == TSR_AGG_COUNT_STAR || p->aggs[a].fn == TSR_AGG_COUNT) {
                mval_t c = {0};
                c.type = TSR_TYPE_INT64;
                c.i = counts[g * na + a];
                mrow(m, g)[nk + a] = c;
            }
    m->n = ng;
    free(counts);
    return rc;
}

/* Runs plans row at a time (AGGREGATE: see model_aggregate). Returns 0, or 1
 * when some row overflowed (the engine must then fail). */
static inline int model_run(const tsr_plan_t *p, mrows_t *out)
{
    mrows_t in = {0};
    int rc = 0;
    if (p->kind != TSR_PLAN_SCAN && (rc = model_run(p->child, &in)) != 0)
        return rc;
    mrows_t m = {0, p->ncols, NULL};
    size_t cap = p->kind == TSR_PLAN_SCAN ? p->table->nrows : in.n;
    m.v = calloc((cap ? cap : 1) * (p->ncols ? p->ncols : 1), sizeof(mval_t));
    switch (p->kind) {
    case TSR_PLAN_SCAN: {
        mrows_t all = model_from_table(p->table);
        for (size_t i = 0; i < all.n; i++, m.n++)
            for (size_t c = 0; c < p->ncols; c++)
                mrow(&m, i)[c] = mrow(&all, i)[p->col_ids[c]];
        mrows_free(&all);
        break;
    }
    case TSR_PLAN_FILTER:
        for (size_t i = 0; i < in.n; i++) {
            mval_t v;
            if (model_eval(p->pred, mrow(&in, i), &v))
                rc = 1;
            else if (!v.null && v.i)
                memcpy(mrow(&m, m.n++), mrow(&in, i), p->ncols * sizeof(mval_t));
        }
        break;
    case TSR_PLAN_PROJECT:
        for (size_t i = 0; i < in.n; i++, m.n++)
            for (size_t c = 0; c < p->ncols; c++)
                if (model_eval(p->exprs[c], mrow(&in, i), &mrow(&m, i)[c]))
                    rc = 1;
        break;
    case TSR_PLAN_SORT:
        memcpy(m.v, in.v, in.n * in.ncols * sizeof(mval_t));
        m.n = in.n;
        model_sort(&m, p->sort_keys, p->nsort_keys);
        break;
    case TSR_PLAN_LIMIT: {
        size_t from = p->offset > 0 ? (size_t)p->offset : 0;
        for (size_t i = from; i < in.n && (p->limit < 0 || m.n < (size_t)p->limit); i++)
            memcpy(mrow(&m, m.n++), mrow(&in, i), p->ncols * sizeof(mval_t));
        break;
    }
    case TSR_PLAN_AGGREGATE:
        rc = model_aggregate(p, &in, &m);
        break;
    case TSR_PLAN_HASH_JOIN: {
        /* a nested loop: keys equal and not NULL, then the residual */
        mrows_t right = {0};
        if ((rc = model_run(p->right, &right)) != 0)
            break;
        free(m.v);
        size_t jcap = 1024;
        m.v = calloc(jcap * p->ncols, sizeof(mval_t));
        mval_t *row = calloc(p->ncols ? p->ncols : 1, sizeof(mval_t));
        for (size_t i = 0; i < in.n && !rc; i++) {
            for (size_t j = 0; j < right.n && !rc; j++) {
                bool match = true;
                for (size_t k = 0; k < p->njoin_keys && match; k++) {
                    mval_t a, b;
                    rc |= model_eval(p->left_keys[k], mrow(&in, i), &a);
                    rc |= model_eval(p->right_keys[k], mrow(&right, j), &b);
                    match = !a.null && !b.null && model_cmp_op(TSR_OP_EQ, &a, &b);
                }
                if (!match)
                    continue;
                memcpy(row, mrow(&in, i), in.ncols * sizeof(mval_t));
                memcpy(row + in.ncols, mrow(&right, j), right.ncols * sizeof(mval_t));
                if (p->residual) {
                    mval_t v;
                    rc |= model_eval(p->residual, row, &v);
                    if (v.null || !v.i)
                        continue;
                }
                if (m.n == jcap) {
                    jcap *= 2;
                    m.v = realloc(m.v, jcap * p->ncols * sizeof(mval_t));
                }
                memcpy(mrow(&m, m.n++), row, p->ncols * sizeof(mval_t));
            }
        }
        free(row);
        mrows_free(&right);
        break;
    }
    default:
        rc = 1;
        break;
    }
    mrows_free(&in);
    if (rc) {
        mrows_free(&m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Checks that table t holds exactly the rows of want, in order; returns the
 * index of the first difference or SIZE_MAX when equal. */
static inline size_t model_diff(const mrows_t *want, const tsr_table_t *t)
{
    mrows_t got = model_from_table(t);
    size_t bad = SIZE_MAX;
    if (got.n != want->n || got.ncols != want->ncols) {
        fprintf(stderr, "rows: want %zu x %zu, got %zu x %zu\n", want->n, want->ncols, got.n,
                got.ncols);
        bad = 0;
    }
    for (size_t i = 0; bad == SIZE_MAX && i < got.n; i++) {
        for (size_t c = 0; c < got.ncols; c++) {
            if (!mv_same(&mrow(want, i)[c], &mrow(&got, i)[c])) {
                char w[128], g[128];
                mv_print(&mrow(want, i)[c], w, sizeof(w));
                mv_print(&mrow(&got, i)[c], g, sizeof(g));
                fprintf(stderr, "row %zu col %zu: want %s got %s\n", i, c, w, g);
                bad = i;
                break;
            }
        }
    }
    mrows_free(&got);
    return bad;
}

#endif /* TSR_TEST_EXEC_MODEL_H */
