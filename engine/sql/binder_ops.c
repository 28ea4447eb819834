/*
 * binder_ops.c - typed expression constructors and constant folding (binder.h).
 *
 * The binder (binder.c) checks what the user wrote and reports errors; these
 * constructors receive operands whose types are already known to fit (or do
 * the one check whose message needs both types: comparisons and arithmetic),
 * insert the casts that make both operands agree, and fold constants.
 *
 * Folding. Constants are folded where the result is certain and cheap to get
 * right (NULL propagation, negative literals, casts of literals, comparisons,
 * AND/OR/NOT identities, IS NULL, IN and LIKE on constants, exact integer
 * arithmetic). Besides saving work, this keeps expressions the executor would
 * find odd (a VARCHAR constant compared with a VARCHAR constant) out of plans.
 * Arithmetic that would overflow or produce a non-finite double is left for
 * the executor, which reports it. The fold of LIKE and of comparisons follows
 * plan.h's semantics exactly (bytewise, case-sensitive, % and _ only).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sql/binder.h"

/* ---- expression constructors ---------------------------------------------- */

static tsr_expr_t *mk(tsr_binder_t *b, tsr_expr_kind_t kind, tsr_type_t type, size_t nargs)
{
    tsr_expr_t *e = tsr_binder_alloc(b, 1, sizeof(*e));
    if (!e)
        return NULL;
    e->kind = kind;
    e->type = type;
    if (nargs) {
        e->args = tsr_binder_alloc(b, nargs, sizeof(*e->args));
        if (!e->args)
            return NULL;
        e->nargs = nargs;
    }
    return e;
}

tsr_expr_t *tsr_binder_mk_const(tsr_binder_t *b, tsr_type_t type)
{
    tsr_expr_t *e = mk(b, TSR_EXPR_CONST, type, 0);
    if (e)
        e->value.type = type;
    return e;
}

tsr_expr_t *tsr_binder_mk_null(tsr_binder_t *b, tsr_type_t type)
{
    tsr_expr_t *e = tsr_binder_mk_const(b, type);
    if (e)
        e->value.is_null = true;
    return e;
}

tsr_expr_t *tsr_binder_mk_bool(tsr_binder_t *b, bool v)
{
    tsr_expr_t *e = tsr_binder_mk_const(b, TSR_TYPE_BOOL);
    if (e)
        e->value.i = v;
    return e;
}

tsr_expr_t *tsr_binder_mk_column(tsr_binder_t *b, size_t column, tsr_type_t type)
{
    tsr_expr_t *e = mk(b, TSR_EXPR_COLUMN, type, 0);
    if (e)
        e->column = column;
    return e;
}

static tsr_expr_t *mk2(tsr_binder_t *b, tsr_expr_kind_t kind, tsr_op_t op, tsr_type_t type,
                       tsr_expr_t *x, tsr_expr_t *y)
{
    tsr_expr_t *e = mk(b, kind, type, y ? 2 : 1);
    if (!e)
        return NULL;
    e->op = op;
    e->args[0] = x;
    if (y)
        e->args[1] = y;
    return e;
}

/* x converted to type: only INT64->DOUBLE, BOOL->INT64 and NULL->any occur;
 * constants are converted on the spot. */
tsr_expr_t *tsr_binder_mk_cast(tsr_binder_t *b, tsr_expr_t *x, tsr_type_t type)
{
    if (!x || x->type == type)
        return x;
    if (x->kind == TSR_EXPR_CONST) {
        if (x->value.is_null)
            return tsr_binder_mk_null(b, type);
        tsr_expr_t *c = tsr_binder_mk_const(b, type);
        if (!c)
            return NULL;
        if (x->type == TSR_TYPE_INT64 && type == TSR_TYPE_DOUBLE) {
            c->value.d = (double)x->value.i;
            return c;
        }
        if (x->type == TSR_TYPE_BOOL && type == TSR_TYPE_INT64) {
            c->value.i = x->value.i;
            return c;
        }
    }
    tsr_expr_t *e = mk(b, TSR_EXPR_CAST, type, 1);
    if (e)
        e->args[0] = x;
    return e;
}

tsr_expr_t *tsr_binder_materialize(tsr_binder_t *b, tsr_expr_t *e)
{
    return e && e->type == TSR_TYPE_NULL ? tsr_binder_mk_cast(b, e, TSR_TYPE_INT64) : e;
}

static bool is_const(const tsr_expr_t *e)
{
    return e->kind == TSR_EXPR_CONST;
}

static bool is_null_const(const tsr_expr_t *e)
{
    return e->kind == TSR_EXPR_CONST && e->value.is_null;
}

static bool is_bool_const(const tsr_expr_t *e, bool v)
{
    return e->kind == TSR_EXPR_CONST && !e->value.is_null && e->type == TSR_TYPE_BOOL &&
           (e->value.i != 0) == v;
}

static bool is_numeric(tsr_type_t t)
{
    return t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE;
}

tsr_expr_t *tsr_binder_mk_and(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t *y)
{
    if (!x)
        return y;
    if (!y)
        return x;
    return mk2(b, TSR_EXPR_BINARY, TSR_OP_AND, TSR_TYPE_BOOL, x, y);
}

tsr_expr_t *tsr_binder_clone(tsr_binder_t *b, const tsr_expr_t *x)
{
    tsr_expr_t *e = tsr_binder_alloc(b, 1, sizeof(*e));
    if (!e)
        return NULL;
    *e = *x;
    if (x->nargs) {
        e->args = tsr_binder_alloc(b, x->nargs, sizeof(*e->args));
        if (!e->args)
            return NULL;
        for (size_t i = 0; i < x->nargs; i++)
            if (!(e->args[i] = tsr_binder_clone(b, x->args[i])))
                return NULL;
    }
    return e;
}

/* ---- comparing and folding constants -------------------------------------- */

static bool value_equal(const tsr_value_t *x, const tsr_value_t *y, tsr_type_t type)
{
    if (x->is_null || y->is_null)
        return x->is_null == y->is_null;
    switch (type) {
    case TSR_TYPE_BOOL:
    case TSR_TYPE_INT64:
        return x->i == y->i;
    case TSR_TYPE_DOUBLE:
        return memcmp(&x->d, &y->d, sizeof(double)) == 0;
    case TSR_TYPE_VARCHAR:
        return x->slen == y->slen && (x->slen == 0 || memcmp(x->s, y->s, x->slen) == 0);
    case TSR_TYPE_NULL:
        return true;
    }
    return false;
}

/* Order of two non-NULL constants of one type, as the executor compares. */
static int value_cmp(const tsr_value_t *x, const tsr_value_t *y, tsr_type_t type)
{
    switch (type) {
    case TSR_TYPE_BOOL:
    case TSR_TYPE_INT64:
        return (x->i > y->i) - (x->i < y->i);
    case TSR_TYPE_DOUBLE:
        return (x->d > y->d) - (x->d < y->d);
    case TSR_TYPE_VARCHAR:
        return tsr_str_cmp(x->s, x->slen, y->s, y->slen);
    case TSR_TYPE_NULL:
        break;
    }
    return 0;
}

/* LIKE: % any run of bytes, _ one byte, everything else itself (case-sensitive). */
static bool like_match(const char *s, size_t n, const char *p, size_t m)
{
    size_t si = 0, pi = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < n) {
        if (pi < m && p[pi] == '%') {
            star_p = pi++;
            star_s = si;
        } else if (pi < m && (p[pi] == '_' || p[pi] == s[si])) {
            si++;
            pi++;
        } else if (star_p != SIZE_MAX) {
            pi = star_p + 1;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < m && p[pi] == '%')
        pi++;
    return pi == m;
}

/* Folds x op y for non-NULL numeric constants of type t; false when the
 * result is not certain here (overflow, non-finite, DOUBLE %). */
static bool fold_arith(tsr_op_t op, tsr_type_t t, const tsr_value_t *x, const tsr_value_t *y,
                       tsr_value_t *r, bool *is_null)
{
    *is_null = false;
    if (t == TSR_TYPE_INT64) {
        int64_t a = x->i, c = y->i;
        switch (op) {
        case TSR_OP_ADD:
            return !__builtin_add_overflow(a, c, &r->i);
        case TSR_OP_SUB:
            return !__builtin_sub_overflow(a, c, &r->i);
        case TSR_OP_MUL:
            return !__builtin_mul_overflow(a, c, &r->i);
        case TSR_OP_DIV:
        case TSR_OP_MOD:
            if (c == 0) {
                *is_null = true;
                return true;
            }
            if (c == -1) {
                if (op == TSR_OP_MOD) {
                    r->i = 0;
                    return true;
                }
                return !__builtin_sub_overflow((int64_t)0, a, &r->i);
            }
            r->i = op == TSR_OP_DIV ? a / c : a % c;
            return true;
        default:
            return false;
        }
    }
    double a = x->d, c = y->d;
    switch (op) {
    case TSR_OP_ADD:
        r->d = a + c;
        break;
    case TSR_OP_SUB:
        r->d = a - c;
        break;
    case TSR_OP_MUL:
        r->d = a * c;
        break;
    case TSR_OP_DIV:
        if (c == 0) {
            *is_null = true;
            return true;
        }
        r->d = a / c;
        break;
    default:
        return false;
    }
    return isfinite(r->d);
}

const char *tsr_binder_op_text(tsr_op_t op)
{
    switch (op) {
    case TSR_OP_ADD:
        return "+";
    case TSR_OP_SUB:
        return "-";
    case TSR_OP_MUL:
        return "*";
    case TSR_OP_DIV:
        return "/";
    case TSR_OP_MOD:
        return "%";
    case TSR_OP_EQ:
        return "=";
    case TSR_OP_NE:
        return "<>";
    case TSR_OP_LT:
        return "<";
    case TSR_OP_LE:
        return "<=";
    case TSR_OP_GT:
        return ">";
    case TSR_OP_GE:
        return ">=";
    case TSR_OP_AND:
        return "AND";
    case TSR_OP_OR:
        return "OR";
    case TSR_OP_NEG:
        return "-";
    case TSR_OP_NOT:
        return "NOT";
    case TSR_OP_NONE:
        break;
    }
    return "?";
}

/* ---- typed operators ------------------------------------------------------ */

/* The common type two operands are compared in; false when incomparable. */
static bool comparable(tsr_type_t x, tsr_type_t y, tsr_type_t *out)
{
    if (x == TSR_TYPE_NULL && y == TSR_TYPE_NULL)
        *out = TSR_TYPE_INT64;
    else if (x == TSR_TYPE_NULL || x == y)
        *out = y;
    else if (y == TSR_TYPE_NULL)
        *out = x;
    else if (is_numeric(x) && is_numeric(y))
        *out = TSR_TYPE_DOUBLE;
    else
        return false;
    return true;
}

tsr_status_t tsr_binder_mk_compare(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                   tsr_src_span_t at, tsr_expr_t **out)
{
    tsr_type_t t;
    if (!comparable(x->type, y->type, &t))
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, at, "cannot compare %s with %s",
                                  tsr_type_name(x->type), tsr_type_name(y->type));
    x = tsr_binder_mk_cast(b, x, t);
    y = tsr_binder_mk_cast(b, y, t);
    if (!x || !y)
        return TSR_ERR_NOMEM;
    if (is_null_const(x) || is_null_const(y)) { /* x = NULL is NULL, whatever x is */
        *out = tsr_binder_mk_null(b, TSR_TYPE_BOOL);
    } else if (is_const(x) && is_const(y)) {
        *out = tsr_binder_mk_bool(b, tsr_cmp_apply(op, value_cmp(&x->value, &y->value, t)));
    } else {
        *out = mk2(b, TSR_EXPR_BINARY, op, TSR_TYPE_BOOL, x, y);
    }
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

tsr_status_t tsr_binder_mk_arith(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                 tsr_src_span_t at, tsr_expr_t **out)
{
    bool xok = is_numeric(x->type) || x->type == TSR_TYPE_NULL;
    bool yok = is_numeric(y->type) || y->type == TSR_TYPE_NULL;
    if (!xok || !yok)
        return tsr_binder_fail_at(b, TSR_ERR_TYPE, at, "cannot apply '%s' to %s and %s",
                                  tsr_binder_op_text(op), tsr_type_name(x->type),
                                  tsr_type_name(y->type));
    tsr_type_t t = TSR_TYPE_NULL;
    if (x->type == TSR_TYPE_DOUBLE || y->type == TSR_TYPE_DOUBLE)
        t = TSR_TYPE_DOUBLE;
    else if (x->type == TSR_TYPE_INT64 || y->type == TSR_TYPE_INT64)
        t = TSR_TYPE_INT64;
    if (is_null_const(x) || is_null_const(y)) { /* NULL op anything is NULL */
        *out = tsr_binder_mk_null(b, t);
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    }
    x = tsr_binder_mk_cast(b, x, t);
    y = tsr_binder_mk_cast(b, y, t);
    if (!x || !y)
        return TSR_ERR_NOMEM;
    if (is_const(x) && is_const(y)) {
        tsr_value_t r = {.type = t};
        bool is_null;
        if (fold_arith(op, t, &x->value, &y->value, &r, &is_null)) {
            *out = is_null ? tsr_binder_mk_null(b, t) : tsr_binder_mk_const(b, t);
            if (*out && !is_null)
                (*out)->value = r;
            return *out ? TSR_OK : TSR_ERR_NOMEM;
        }
    }
    *out = mk2(b, TSR_EXPR_BINARY, op, t, x, y);
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

/* AND/OR of two BOOL-or-NULL operands (checked by the caller), with the
 * identities of three-valued logic folded away (TRUE AND x is x). */
tsr_status_t tsr_binder_mk_logic(tsr_binder_t *b, tsr_op_t op, tsr_expr_t *x, tsr_expr_t *y,
                                 tsr_expr_t **out)
{
    x = tsr_binder_mk_cast(b, x, TSR_TYPE_BOOL);
    y = tsr_binder_mk_cast(b, y, TSR_TYPE_BOOL);
    if (!x || !y)
        return TSR_ERR_NOMEM;
    bool absorbing = op == TSR_OP_OR; /* TRUE for OR, FALSE for AND */
    /* x AND FALSE is FALSE, but folding it would hide x from the planner,
     * which needs ON's equalities as join keys: absorb constants only. */
    if (is_const(x) && is_const(y) && (is_bool_const(x, absorbing) || is_bool_const(y, absorbing)))
        *out = tsr_binder_mk_bool(b, absorbing);
    else if (is_bool_const(x, !absorbing))
        *out = y;
    else if (is_bool_const(y, !absorbing))
        *out = x;
    else if (is_null_const(x) && is_null_const(y))
        *out = x;
    else
        *out = mk2(b, TSR_EXPR_BINARY, op, TSR_TYPE_BOOL, x, y);
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

/* ---- unary, IS NULL, IN, LIKE ---------------------------------------------- */

tsr_status_t tsr_binder_mk_neg(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t **out)
{
    if (x->type == TSR_TYPE_NULL || is_null_const(x)) {
        *out = x;
        return TSR_OK;
    }
    if (is_const(x) && !(x->type == TSR_TYPE_INT64 && x->value.i == INT64_MIN)) {
        if ((*out = tsr_binder_mk_const(b, x->type))) {
            if (x->type == TSR_TYPE_INT64)
                (*out)->value.i = -x->value.i;
            else
                (*out)->value.d = -x->value.d;
        }
    } else {
        *out = mk2(b, TSR_EXPR_UNARY, TSR_OP_NEG, x->type, x, NULL);
    }
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

tsr_status_t tsr_binder_mk_not(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t **out)
{
    if (is_const(x))
        *out = x->value.is_null ? tsr_binder_mk_null(b, TSR_TYPE_BOOL)
                                : tsr_binder_mk_bool(b, !x->value.i);
    else
        *out = mk2(b, TSR_EXPR_UNARY, TSR_OP_NOT, TSR_TYPE_BOOL, x, NULL);
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

tsr_status_t tsr_binder_mk_is_null(tsr_binder_t *b, tsr_expr_t *x, bool negated, tsr_expr_t **out)
{
    if (!(x = tsr_binder_materialize(b, x)))
        return TSR_ERR_NOMEM;
    if (is_const(x)) {
        *out = tsr_binder_mk_bool(b, x->value.is_null != negated);
    } else if ((*out = mk2(b, TSR_EXPR_IS_NULL, TSR_OP_NONE, TSR_TYPE_BOOL, x, NULL))) {
        (*out)->negated = negated;
    }
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

tsr_status_t tsr_binder_mk_in(tsr_binder_t *b, tsr_expr_t **x, size_t n, tsr_type_t type,
                              bool negated, tsr_expr_t **out)
{
    for (size_t i = 0; i < n; i++)
        if (!(x[i] = tsr_binder_mk_cast(b, x[i], type)))
            return TSR_ERR_NOMEM;
    if (is_const(x[0])) { /* three-valued: found -> TRUE, else any NULL -> NULL */
        bool found = false, any_null = x[0]->value.is_null;
        for (size_t i = 1; i < n && !x[0]->value.is_null; i++) {
            if (x[i]->value.is_null)
                any_null = true;
            else if (value_cmp(&x[0]->value, &x[i]->value, type) == 0)
                found = true;
        }
        if (found)
            *out = tsr_binder_mk_bool(b, !negated);
        else
            *out = any_null ? tsr_binder_mk_null(b, TSR_TYPE_BOOL) : tsr_binder_mk_bool(b, negated);
        return *out ? TSR_OK : TSR_ERR_NOMEM;
    }
    tsr_expr_t *e = mk(b, TSR_EXPR_IN, TSR_TYPE_BOOL, 0);
    if (!e)
        return TSR_ERR_NOMEM;
    e->negated = negated;
    e->args = x;
    e->nargs = n;
    *out = e;
    return TSR_OK;
}

tsr_status_t tsr_binder_mk_like(tsr_binder_t *b, tsr_expr_t *x, tsr_expr_t *pattern, bool negated,
                                tsr_expr_t **out)
{
    if (x->type == TSR_TYPE_NULL || is_null_const(x) || is_null_const(pattern)) {
        *out = tsr_binder_mk_null(b, TSR_TYPE_BOOL);
    } else if (is_const(x)) {
        bool m = like_match(x->value.s, x->value.slen, pattern->value.s, pattern->value.slen);
        *out = tsr_binder_mk_bool(b, m != negated);
    } else if ((*out = mk2(b, TSR_EXPR_LIKE, TSR_OP_NONE, TSR_TYPE_BOOL, x, pattern))) {
        (*out)->negated = negated;
    }
    return *out ? TSR_OK : TSR_ERR_NOMEM;
}

/* ---- structure ------------------------------------------------------------ */

bool tsr_binder_has_columns(const tsr_expr_t *e)
{
    if (e->kind == TSR_EXPR_COLUMN)
        return true;
    for (size_t i = 0; i < e->nargs; i++)
        if (tsr_binder_has_columns(e->args[i]))
            return true;
    return false;
}

bool tsr_binder_expr_equal(const tsr_expr_t *x, const tsr_expr_t *y)
{
    if (x == y)
        return true;
    if (!x || !y || x->kind != y->kind || x->type != y->type || x->op != y->op ||
        x->negated != y->negated || x->nargs != y->nargs)
        return false;
    if (x->kind == TSR_EXPR_COLUMN && x->column != y->column)
        return false;
    if (x->kind == TSR_EXPR_CONST && !value_equal(&x->value, &y->value, x->type))
        return false;
    for (size_t i = 0; i < x->nargs; i++)
        if (!tsr_binder_expr_equal(x->args[i], y->args[i]))
            return false;
    return true;
}

static void range_walk(const tsr_binder_t *b, const tsr_expr_t *e, size_t *tmin, size_t *tmax,
                       bool *any)
{
    if (e->kind == TSR_EXPR_COLUMN) {
        size_t t = b->col_table[e->column];
        if (!*any || t < *tmin)
            *tmin = t;
        if (!*any || t > *tmax)
            *tmax = t;
        *any = true;
    }
    for (size_t i = 0; i < e->nargs; i++)
        range_walk(b, e->args[i], tmin, tmax, any);
}

bool tsr_binder_table_range(const tsr_binder_t *b, const tsr_expr_t *e, size_t *tmin, size_t *tmax)
{
    bool any = false;
    *tmin = *tmax = 0;
    range_walk(b, e, tmin, tmax, &any);
    return any;
}
