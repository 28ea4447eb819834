/*
 * expr_eval.c - vectorized evaluation of bound expressions over one batch.
 *
 * Evaluation is a post-order walk of the expression tree in which every node
 * yields an operand: either a vector of batch->nrows values (borrowed from the
 * batch for COLUMN, owned otherwise) or a constant. A node whose operands are
 * all constants is computed once as a constant (constant folding happens per
 * batch, for free, and turns `x > -5` into column-versus-constant). Only then
 * are typed kernels (expr_kernels.c, expr_string.c) run: the dispatch on
 * (kind, op, type, shape) happens once per node per batch, the loops inside
 * are over plain arrays.
 *
 * NULLs. A vector's validity bitmap (NULL = no NULLs) is combined word-wise:
 * the result of an arithmetic or comparison node is valid where both inputs
 * are (AND of the words; no bitmap at all when neither input has one). Values
 * under NULL rows are computed but meaningless, so checked INT64 arithmetic
 * first accumulates overflow flags over all rows and, only when one is set,
 * rechecks the valid rows to decide whether to fail. A constant NULL operand
 * makes the whole node a NULL constant. Vectors of type NULL (a column of a
 * bare NULL literal) and VARCHAR vectors without a dictionary are all-NULL
 * and are turned into NULL constants as soon as they are produced.
 *
 * Guards. The walk carries a care bitmap: the rows whose value matters. An
 * integer overflow is an error only on a valid row in care. AND and OR
 * evaluate their left operand first and narrow care for the right one to the
 * rows the left one leaves open (not FALSE for AND, not TRUE for OR), or skip
 * it when the left one is a deciding constant: `a < 1000 AND a * a > 5`
 * cannot fail on the rows the guard rejects, as in SQLite and PostgreSQL.
 *
 * This file holds the walk, the entry points, arithmetic, comparisons, NOT,
 * NEG and CAST; predicates (AND/OR, IS NULL, IN, LIKE) are in expr_bool.c,
 * string kernels in expr_string.c, typed loops in expr_kernels.c.
 *
 * BOOL vectors hold one byte 0/1 per row. VARCHAR results come only from
 * COLUMN (borrowed, with the column's dictionary); a non-NULL VARCHAR constant
 * cannot be returned as a vector because it has no dictionary: PROJECT builds
 * one (see operators.h), and tsr_expr_eval reports an internal error.
 */
#include <string.h>

#include "exec/expr_internal.h"
#include "exec/expr_kernels.h"

static tsr_status_t overflow(tsr_error_t *err)
{
    return tsr_error_set(err, TSR_ERR_OVERFLOW, "integer overflow");
}

bool tsr_expr_care_any(const uint64_t *care, size_t n)
{
    if (!care)
        return n > 0;
    for (size_t w = 0; w * 64 < n; w++) {
        size_t cnt = n - w * 64 < 64 ? n - w * 64 : 64;
        uint64_t mask = cnt == 64 ? ~(uint64_t)0 : ((uint64_t)1 << cnt) - 1;
        if (care[w] & mask)
            return true;
    }
    return false;
}

tsr_status_t tsr_expr_new_vector(tsr_mem_t *mem, tsr_type_t type, size_t n, tsr_vector_t *out,
                                 tsr_error_t *err)
{
    if (tsr_vector_alloc(mem, type, n, false, NULL, out) != TSR_OK)
        return tsr_expr_nomem(err);
    return TSR_OK;
}

uint64_t *tsr_expr_new_bitmap(tsr_mem_t *mem, size_t n)
{
    return tsr_mem_alloc_aligned(mem, tsr_bitmap_words(n ? n : 1) * sizeof(uint64_t));
}

tsr_status_t tsr_expr_validity_and(tsr_mem_t *mem, const uint64_t *a, const uint64_t *b, size_t n,
                                   tsr_vector_t *r, tsr_error_t *err)
{
    if (!a && !b)
        return TSR_OK;
    uint64_t *bm = tsr_expr_new_bitmap(mem, n);
    if (!bm)
        return tsr_expr_nomem(err);
    size_t words = tsr_bitmap_words(n ? n : 1);
    if (a && b)
        for (size_t w = 0; w < words; w++)
            bm[w] = a[w] & b[w];
    else
        memcpy(bm, a ? a : b, words * sizeof(uint64_t));
    r->validity = r->owned_validity = bm;
    return TSR_OK;
}

tsr_status_t tsr_expr_ensure_validity(tsr_mem_t *mem, tsr_vector_t *r, size_t n, tsr_error_t *err)
{
    if (r->owned_validity)
        return TSR_OK;
    uint64_t *bm = tsr_expr_new_bitmap(mem, n);
    if (!bm)
        return tsr_expr_nomem(err);
    memset(bm, 0xff, tsr_bitmap_words(n ? n : 1) * sizeof(uint64_t));
    r->validity = r->owned_validity = bm;
    return TSR_OK;
}

/* Normalises an operand just produced: all-NULL vectors become constants. */
static void normalise(tsr_mem_t *mem, tsr_operand_t *o)
{
    if (o->is_const) {
        if (o->c.type == TSR_TYPE_NULL)
            o->c.is_null = true;
        return;
    }
    if (o->v.type == TSR_TYPE_NULL || (o->v.type == TSR_TYPE_VARCHAR && !o->v.dict)) {
        tsr_type_t t = o->v.type;
        tsr_vector_release(mem, &o->v);
        tsr_opnd_set_null(o, t);
    }
}

tsr_status_t tsr_expr_coerce(tsr_mem_t *mem, tsr_operand_t *o, tsr_type_t t, size_t n,
                             tsr_error_t *err)
{
    tsr_type_t from = tsr_opnd_type(o);
    if (from == t || tsr_opnd_is_null(o)) {
        if (tsr_opnd_is_null(o))
            o->c.type = t;
        return TSR_OK;
    }
    bool ok = (from == TSR_TYPE_INT64 && t == TSR_TYPE_DOUBLE) ||
              (from == TSR_TYPE_BOOL && (t == TSR_TYPE_INT64 || t == TSR_TYPE_DOUBLE));
    if (!ok)
        return tsr_error_set(err, TSR_ERR_TYPE, "cannot convert %s to %s", tsr_type_name(from),
                             tsr_type_name(t));
    if (o->is_const) {
        if (t == TSR_TYPE_DOUBLE)
            o->c.d = (double)o->c.i;
        o->c.type = t;
        return TSR_OK;
    }
    tsr_vector_t r;
    tsr_status_t rc = tsr_expr_new_vector(mem, t, n, &r, err);
    if (rc != TSR_OK)
        return rc;
    if (from == TSR_TYPE_INT64) {
        const int64_t *a = o->v.data;
        double *d = r.data;
        for (size_t i = 0; i < n; i++)
            d[i] = (double)a[i];
    } else if (t == TSR_TYPE_INT64) {
        const uint8_t *a = o->v.data;
        int64_t *d = r.data;
        for (size_t i = 0; i < n; i++)
            d[i] = a[i] != 0;
    } else {
        const uint8_t *a = o->v.data;
        double *d = r.data;
        for (size_t i = 0; i < n; i++)
            d[i] = a[i] != 0;
    }
    /* the validity travels with its ownership */
    r.validity = o->v.validity;
    r.owned_validity = o->v.owned_validity;
    o->v.owned_validity = NULL;
    tsr_vector_release(mem, &o->v);
    o->v = r;
    return TSR_OK;
}
/* ---- arithmetic ----------------------------------------------------------------- */

/* counts: whether an overflow is an error (some row in care, see tsr_expr_walk);
 * when not, the result is a NULL nobody reads. */
static tsr_status_t scalar_arith(tsr_op_t op, tsr_type_t t, const tsr_value_t *x,
                                 const tsr_value_t *y, bool counts, tsr_operand_t *out,
                                 tsr_error_t *err)
{
    tsr_opnd_set_null(out, t);
    if (t == TSR_TYPE_INT64) {
        int64_t a = x->i, b = y->i, r = 0;
        bool ovf = false;
        switch (op) {
        case TSR_OP_ADD:
            ovf = __builtin_add_overflow(a, b, &r);
            break;
        case TSR_OP_SUB:
            ovf = __builtin_sub_overflow(a, b, &r);
            break;
        case TSR_OP_MUL:
            ovf = __builtin_mul_overflow(a, b, &r);
            break;
        case TSR_OP_DIV:
        case TSR_OP_MOD:
            if (b == 0)
                return TSR_OK; /* NULL */
            if (b == -1) {
                ovf = op == TSR_OP_DIV && a == INT64_MIN;
                r = op == TSR_OP_DIV ? (int64_t)(0 - (uint64_t)a) : 0;
            } else {
                r = op == TSR_OP_DIV ? a / b : a % b;
            }
            break;
        default:
            return tsr_error_set(err, TSR_ERR_INTERNAL, "bad arithmetic operator");
        }
        if (ovf)
            return counts ? overflow(err) : TSR_OK;
        out->c.i = r;
    } else {
        bool zero = false;
        tsr_kern_f64_arith(op, NULL, x->d, &y->d, 0, &out->c.d, 1, &zero);
        if (zero)
            return TSR_OK; /* NULL */
    }
    out->c.is_null = false;
    return TSR_OK;
}

static tsr_status_t eval_arith(tsr_mem_t *mem, tsr_op_t op, tsr_type_t t, tsr_operand_t *a,
                               tsr_operand_t *b, size_t n, const uint64_t *care, tsr_operand_t *out,
                               tsr_error_t *err)
{
    if (t != TSR_TYPE_INT64 && t != TSR_TYPE_DOUBLE)
        return tsr_error_set(err, TSR_ERR_TYPE, "arithmetic on %s", tsr_type_name(t));
    if (tsr_opnd_is_null(a) || tsr_opnd_is_null(b)) {
        tsr_opnd_set_null(out, t);
        return TSR_OK;
    }
    tsr_status_t rc = tsr_expr_coerce(mem, a, t, n, err);
    if (rc == TSR_OK)
        rc = tsr_expr_coerce(mem, b, t, n, err);
    if (rc != TSR_OK)
        return rc;
    if (a->is_const && b->is_const)
        return scalar_arith(op, t, &a->c, &b->c, tsr_expr_care_any(care, n), out, err);
    bool divmod = op == TSR_OP_DIV || op == TSR_OP_MOD;
    if (divmod && b->is_const && (t == TSR_TYPE_INT64 ? b->c.i == 0 : b->c.d == 0.0)) {
        tsr_opnd_set_null(out, t); /* x / 0 */
        return TSR_OK;
    }
    tsr_vector_t r;
    if ((rc = tsr_expr_new_vector(mem, t, n, &r, err)) != TSR_OK)
        return rc;
    if ((rc = tsr_expr_validity_and(mem, tsr_opnd_validity(a), tsr_opnd_validity(b), n, &r, err)) !=
        TSR_OK)
        goto fail;
    bool any_zero = false;
    if (t == TSR_TYPE_INT64) {
        const int64_t *av = a->is_const ? NULL : a->v.data;
        const int64_t *bv = b->is_const ? NULL : b->v.data;
        bool ovf;
        if (divmod)
            tsr_kern_i64_divmod(op, av, a->c.i, bv, b->c.i, r.data, n, &any_zero, &ovf);
        else
            ovf = tsr_kern_i64_addsubmul(op, av, a->c.i, bv, b->c.i, r.data, n);
        if (ovf &&
            tsr_kern_i64_overflow_at_valid(op, av, a->c.i, bv, b->c.i, r.validity, care, n)) {
            rc = overflow(err);
            goto fail;
        }
        if (any_zero) {
            if ((rc = tsr_expr_ensure_validity(mem, &r, n, err)) != TSR_OK)
                goto fail;
            tsr_kern_clear_zero_i64(bv, r.owned_validity, n);
        }
    } else {
        const double *av = a->is_const ? NULL : a->v.data;
        const double *bv = b->is_const ? NULL : b->v.data;
        tsr_kern_f64_arith(op, av, a->c.d, bv, b->c.d, r.data, n, &any_zero);
        if (any_zero) {
            if ((rc = tsr_expr_ensure_validity(mem, &r, n, err)) != TSR_OK)
                goto fail;
            tsr_kern_clear_zero_f64(bv, r.owned_validity, n);
        }
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;

fail:
    tsr_vector_release(mem, &r);
    return rc;
}
/* ---- comparisons ------------------------------------------------------------------ */

bool tsr_expr_scalar_cmp(tsr_op_t op, tsr_type_t t, const tsr_value_t *x, const tsr_value_t *y)
{
    uint8_t r = 0;
    switch (t) {
    case TSR_TYPE_INT64:
        tsr_kern_cmp_i64(op, NULL, x->i, &y->i, 0, &r, 1);
        break;
    case TSR_TYPE_DOUBLE:
        tsr_kern_cmp_f64(op, NULL, x->d, &y->d, 0, &r, 1);
        break;
    case TSR_TYPE_BOOL: {
        uint8_t yb = y->i != 0;
        tsr_kern_cmp_u8(op, NULL, x->i != 0, &yb, 0, &r, 1);
        break;
    }
    case TSR_TYPE_VARCHAR:
        r = tsr_cmp_apply(op, tsr_str_cmp(x->s, x->slen, y->s, y->slen));
        break;
    default:
        break;
    }
    return r != 0;
}

tsr_status_t tsr_expr_compare(tsr_mem_t *mem, tsr_expr_memo_t *memo, const void *key, tsr_op_t op,
                              tsr_operand_t *a, tsr_operand_t *b, size_t n, tsr_operand_t *out,
                              tsr_error_t *err)
{
    if (tsr_opnd_is_null(a) || tsr_opnd_is_null(b)) {
        tsr_opnd_set_null(out, TSR_TYPE_BOOL);
        return TSR_OK;
    }
    tsr_type_t ta = tsr_opnd_type(a), tb = tsr_opnd_type(b);
    tsr_status_t rc;
    if (ta != tb) { /* the planner casts; tolerate a missing INT64->DOUBLE */
        tsr_type_t t =
            (ta == TSR_TYPE_DOUBLE || tb == TSR_TYPE_DOUBLE) ? TSR_TYPE_DOUBLE : TSR_TYPE_INT64;
        if ((rc = tsr_expr_coerce(mem, a, t, n, err)) != TSR_OK ||
            (rc = tsr_expr_coerce(mem, b, t, n, err)) != TSR_OK)
            return rc;
        ta = t;
    }
    if (a->is_const && b->is_const) {
        tsr_opnd_set_bool(out, tsr_expr_scalar_cmp(op, ta, &a->c, &b->c));
        return TSR_OK;
    }
    if (a->is_const) { /* constant op vector == vector flip(op) constant */
        tsr_operand_t *tmp = a;
        a = b;
        b = tmp;
        op = tsr_kern_flip(op);
    }
    tsr_vector_t r;
    if ((rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err)) != TSR_OK)
        return rc;
    if ((rc = tsr_expr_validity_and(mem, tsr_opnd_validity(a), tsr_opnd_validity(b), n, &r, err)) !=
        TSR_OK)
        goto fail;
    const void *bv = b->is_const ? NULL : b->v.data;
    switch (ta) {
    case TSR_TYPE_INT64:
        tsr_kern_cmp_i64(op, a->v.data, 0, bv, b->c.i, r.data, n);
        break;
    case TSR_TYPE_DOUBLE:
        tsr_kern_cmp_f64(op, a->v.data, 0, bv, b->c.d, r.data, n);
        break;
    case TSR_TYPE_BOOL:
        tsr_kern_cmp_u8(op, a->v.data, 0, bv, b->c.i != 0, r.data, n);
        break;
    case TSR_TYPE_VARCHAR:
        if (b->is_const) {
            uint8_t *state = NULL;
            if (op != TSR_OP_EQ && op != TSR_OP_NE)
                rc = tsr_expr_memo_get(memo, key, a->v.dict, &state);
            if (rc == TSR_OK)
                rc = tsr_str_cmp_const(mem, op, a->v.dict, a->v.data, b->c.s, b->c.slen, state,
                                       r.data, n);
        } else
            rc = tsr_str_cmp_cols(mem, op, a->v.dict, a->v.data, b->v.dict, b->v.data, r.data, n);
        if (rc != TSR_OK) {
            rc = tsr_expr_nomem(err);
            goto fail;
        }
        break;
    default:
        rc = tsr_error_set(err, TSR_ERR_TYPE, "cannot compare %s values", tsr_type_name(ta));
        goto fail;
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;

fail:
    tsr_vector_release(mem, &r);
    return rc;
}
/* ---- NOT, NEG, CAST -------------------------------------------------------------------- */

tsr_status_t tsr_expr_copy_validity(tsr_mem_t *mem, const tsr_operand_t *a, size_t n,
                                    tsr_vector_t *r, tsr_error_t *err)
{
    return tsr_expr_validity_and(mem, tsr_opnd_validity(a), NULL, n, r, err);
}
tsr_status_t tsr_expr_unary(tsr_mem_t *mem, const tsr_expr_t *e, tsr_operand_t *a, size_t n,
                            const uint64_t *care, tsr_operand_t *out, tsr_error_t *err)
{
    if (tsr_opnd_is_null(a)) {
        tsr_opnd_set_null(out, e->type);
        return TSR_OK;
    }
    tsr_type_t t = tsr_opnd_type(a);
    if (e->op == TSR_OP_NOT) {
        if (a->is_const) {
            tsr_opnd_set_bool(out, a->c.i == 0);
            return TSR_OK;
        }
    } else if (e->op == TSR_OP_NEG) {
        if (t != TSR_TYPE_INT64 && t != TSR_TYPE_DOUBLE)
            return tsr_error_set(err, TSR_ERR_TYPE, "cannot negate %s", tsr_type_name(t));
        if (a->is_const) {
            *out = *a;
            if (t == TSR_TYPE_DOUBLE) {
                out->c.d = -a->c.d;
            } else if (a->c.i == INT64_MIN) {
                tsr_opnd_set_null(out, t); /* read by nobody unless it counts */
                return tsr_expr_care_any(care, n) ? overflow(err) : TSR_OK;
            } else {
                out->c.i = -a->c.i;
            }
            return TSR_OK;
        }
    } else {
        return tsr_error_set(err, TSR_ERR_INTERNAL, "bad unary operator");
    }
    tsr_vector_t r;
    tsr_status_t rc = tsr_expr_new_vector(mem, e->op == TSR_OP_NOT ? TSR_TYPE_BOOL : t, n, &r, err);
    if (rc != TSR_OK)
        return rc;
    if ((rc = tsr_expr_copy_validity(mem, a, n, &r, err)) != TSR_OK)
        goto fail;
    if (e->op == TSR_OP_NOT) {
        const uint8_t *x = a->v.data;
        uint8_t *y = r.data;
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] == 0;
    } else if (t == TSR_TYPE_DOUBLE) {
        const double *x = a->v.data;
        double *y = r.data;
        for (size_t i = 0; i < n; i++)
            y[i] = -x[i];
    } else {
        const int64_t *x = a->v.data;
        int64_t *y = r.data;
        bool ovf = false;
        for (size_t i = 0; i < n; i++) {
            ovf |= x[i] == INT64_MIN;
            y[i] = (int64_t)(0 - (uint64_t)x[i]);
        }
        if (ovf) {
            for (size_t i = 0; i < n; i++) {
                if (x[i] == INT64_MIN && tsr_bit_get(r.validity, i) && tsr_bit_get(care, i)) {
                    rc = overflow(err);
                    goto fail;
                }
            }
        }
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;

fail:
    tsr_vector_release(mem, &r);
    return rc;
}
static tsr_status_t eval_cast(tsr_mem_t *mem, tsr_type_t t, tsr_operand_t *a, size_t n,
                              tsr_operand_t *out, tsr_error_t *err)
{
    if (tsr_opnd_is_null(a)) {
        tsr_opnd_set_null(out, t);
        return TSR_OK;
    }
    tsr_status_t rc = tsr_expr_coerce(mem, a, t, n, err);
    if (rc != TSR_OK)
        return rc;
    tsr_opnd_move(out, a);
    return TSR_OK;
}
/* ---- the walk ----------------------------------------------------------------------------------
 */

/* AND / OR once the left operand a is known: the right operand is evaluated
 * (into b, which the caller releases) with care narrowed to the rows a does
 * not decide, or not at all when a is a deciding constant. */
static tsr_status_t eval_guarded(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                                 const tsr_batch_t *batch, const uint64_t *care, tsr_operand_t *a,
                                 tsr_operand_t *b, tsr_operand_t *out, tsr_error_t *err)
{
    size_t n = batch->nrows;
    bool decide = e->op == TSR_OP_OR; /* the value that settles it: TRUE for OR */
    tsr_status_t rc;
    if (a->is_const) {
        if (!a->c.is_null && (a->c.i != 0) == decide) {
            tsr_opnd_set_bool(out, decide);
            return TSR_OK;
        }
        rc = tsr_expr_walk(mem, memo, e->args[1], batch, care, b, err);
    } else {
        uint64_t *care_b = tsr_expr_new_bitmap(mem, n);
        if (!care_b)
            return tsr_expr_nomem(err);
        const uint8_t *av = a->v.data;
        for (size_t w = 0; w * 64 < n; w++) {
            size_t cnt = n - w * 64 < 64 ? n - w * 64 : 64;
            uint64_t bits = tsr_kern_pack64(av + w * 64, cnt);
            uint64_t valid = a->v.validity ? a->v.validity[w] : ~(uint64_t)0;
            uint64_t decided = valid & (decide ? bits : ~bits);
            care_b[w] = (care ? care[w] : ~(uint64_t)0) & ~decided;
        }
        rc = tsr_expr_walk(mem, memo, e->args[1], batch, care_b, b, err);
        tsr_mem_free(mem, care_b);
    }
    if (rc != TSR_OK)
        return rc;
    return tsr_expr_logic(mem, e->op, a, b, n, out, err);
}

tsr_status_t tsr_expr_walk(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                           const tsr_batch_t *batch, const uint64_t *care, tsr_operand_t *out,
                           tsr_error_t *err)
{
    size_t n = batch->nrows;
    tsr_operand_t a, b;
    tsr_opnd_set_null(&a, TSR_TYPE_NULL);
    tsr_opnd_set_null(&b, TSR_TYPE_NULL);
    tsr_status_t rc = TSR_OK;
    switch (e->kind) {
    case TSR_EXPR_COLUMN:
        memset(out, 0, sizeof(*out));
        out->v = tsr_vector_borrow(&batch->cols[e->column]);
        normalise(mem, out);
        return TSR_OK;
    case TSR_EXPR_CONST:
        memset(out, 0, sizeof(*out));
        out->is_const = true;
        out->c = e->value;
        if (out->c.type == TSR_TYPE_NULL) /* a typed NULL keeps the expression's type */
            out->c.type = e->type;
        out->c.is_null |= e->value.type == TSR_TYPE_NULL;
        return TSR_OK;
    case TSR_EXPR_IN:
        return tsr_expr_in(mem, memo, e, batch, care, out, err);
    default:
        break;
    }
    if (e->nargs < 1)
        return tsr_error_set(err, TSR_ERR_INTERNAL, "expression without operands");
    if ((rc = tsr_expr_walk(mem, memo, e->args[0], batch, care, &a, err)) != TSR_OK)
        goto done;
    if (e->kind == TSR_EXPR_BINARY && (e->op == TSR_OP_AND || e->op == TSR_OP_OR) && e->nargs > 1) {
        if ((rc = eval_guarded(mem, memo, e, batch, care, &a, &b, out, err)) == TSR_OK)
            normalise(mem, out);
        goto done;
    }
    if (e->nargs > 1 && (rc = tsr_expr_walk(mem, memo, e->args[1], batch, care, &b, err)) != TSR_OK)
        goto done;
    switch (e->kind) {
    case TSR_EXPR_UNARY:
        rc = tsr_expr_unary(mem, e, &a, n, care, out, err);
        break;
    case TSR_EXPR_BINARY:
        if (e->nargs < 2) {
            rc = tsr_error_set(err, TSR_ERR_INTERNAL, "binary expression without operands");
            break;
        }
        switch (e->op) {
        case TSR_OP_ADD:
        case TSR_OP_SUB:
        case TSR_OP_MUL:
        case TSR_OP_DIV:
        case TSR_OP_MOD:
            rc = eval_arith(mem, e->op, e->type, &a, &b, n, care, out, err);
            break;
        case TSR_OP_EQ:
        case TSR_OP_NE:
        case TSR_OP_LT:
        case TSR_OP_LE:
        case TSR_OP_GT:
        case TSR_OP_GE:
            rc = tsr_expr_compare(mem, memo, e, e->op, &a, &b, n, out, err);
            break;
        default:
            rc = tsr_error_set(err, TSR_ERR_INTERNAL, "bad binary operator");
            break;
        }
        break;
    case TSR_EXPR_IS_NULL:
        rc = tsr_expr_is_null(mem, e->negated, &a, n, out, err);
        break;
    case TSR_EXPR_LIKE:
        if (e->nargs < 2) {
            rc = tsr_error_set(err, TSR_ERR_INTERNAL, "LIKE without a pattern");
            break;
        }
        rc = tsr_expr_like(mem, memo, e, e->negated, &a, &b, n, out, err);
        break;
    case TSR_EXPR_CAST:
        rc = eval_cast(mem, e->type, &a, n, out, err);
        break;
    default:
        rc = tsr_error_set(err, TSR_ERR_INTERNAL, "bad expression kind %d", (int)e->kind);
        break;
    }
    if (rc == TSR_OK)
        normalise(mem, out);
done:
    tsr_opnd_release(mem, &a);
    tsr_opnd_release(mem, &b);
    return rc;
}

/* ---- entry points
 * --------------------------------------------------------------------------------- */

/* A vector of n copies of constant c (type t). */
static tsr_status_t broadcast(tsr_mem_t *mem, tsr_type_t t, const tsr_value_t *c, size_t n,
                              tsr_vector_t *out, tsr_error_t *err)
{
    if (t == TSR_TYPE_VARCHAR && !c->is_null)
        return tsr_error_set(err, TSR_ERR_INTERNAL,
                             "string constant evaluated without a dictionary");
    tsr_vector_t r;
    tsr_status_t rc = tsr_expr_new_vector(mem, t, n, &r, err);
    if (rc != TSR_OK)
        return rc;
    if (c->is_null) {
        memset(r.data, 0, (n ? n : 1) * tsr_type_width(t));
        uint64_t *bm = tsr_expr_new_bitmap(mem, n);
        if (!bm) {
            tsr_vector_release(mem, &r);
            return tsr_expr_nomem(err);
        }
        memset(bm, 0, tsr_bitmap_words(n ? n : 1) * sizeof(uint64_t));
        r.validity = r.owned_validity = bm;
    } else if (t == TSR_TYPE_INT64) {
        int64_t *d = r.data;
        for (size_t i = 0; i < n; i++)
            d[i] = c->i;
    } else if (t == TSR_TYPE_DOUBLE) {
        double *d = r.data;
        for (size_t i = 0; i < n; i++)
            d[i] = c->d;
    } else {
        memset(r.data, c->i != 0, n);
    }
    *out = r;
    return TSR_OK;
}

tsr_status_t tsr_expr_eval(tsr_mem_t *mem, const tsr_expr_t *e, const tsr_batch_t *batch,
                           tsr_vector_t *out, tsr_error_t *err)
{
    return tsr_expr_eval_memo(mem, NULL, e, batch, out, err);
}

tsr_status_t tsr_expr_eval_memo(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                                const tsr_batch_t *batch, tsr_vector_t *out, tsr_error_t *err)
{
    size_t n = batch->nrows;
    if (e->kind == TSR_EXPR_COLUMN) {
        *out = tsr_vector_borrow(&batch->cols[e->column]);
        return TSR_OK;
    }
    if (n == 0) /* nothing to evaluate, hence nothing that could fail */
        return tsr_expr_new_vector(mem, e->type, 0, out, err);
    tsr_operand_t r;
    tsr_opnd_set_null(&r, TSR_TYPE_NULL);
    tsr_status_t rc = tsr_expr_walk(mem, memo, e, batch, NULL, &r, err);
    if (rc == TSR_OK && tsr_opnd_type(&r) != e->type && e->type != TSR_TYPE_NULL)
        rc = tsr_expr_coerce(mem, &r, e->type, n, err); /* the planner's type wins */
    if (rc != TSR_OK) {
        tsr_opnd_release(mem, &r);
        return rc;
    }
    if (!r.is_const) {
        *out = r.v;
        return TSR_OK;
    }
    return broadcast(mem, e->type, &r.c, n, out, err);
}

tsr_status_t tsr_expr_select(tsr_mem_t *mem, const tsr_expr_t *pred, const tsr_batch_t *batch,
                             uint32_t *sel, size_t *nsel, tsr_error_t *err)
{
    return tsr_expr_select_memo(mem, NULL, pred, batch, sel, nsel, err);
}

tsr_status_t tsr_expr_select_memo(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *pred,
                                  const tsr_batch_t *batch, uint32_t *sel, size_t *nsel,
                                  tsr_error_t *err)
{
    size_t n = batch->nrows;
    *nsel = 0;
    if (n == 0)
        return TSR_OK;
    tsr_operand_t r;
    tsr_status_t rc = tsr_expr_walk(mem, memo, pred, batch, NULL, &r, err);
    if (rc != TSR_OK)
        return rc;
    size_t k = 0;
    if (r.is_const) {
        if (!r.c.is_null && r.c.i != 0)
            for (size_t i = 0; i < n; i++)
                sel[k++] = (uint32_t)i;
    } else {
        const uint8_t *v = r.v.data;
        const uint64_t *valid = r.v.validity;
        /* branch-free compaction: always write, advance only on TRUE */
        if (!valid) {
            for (size_t i = 0; i < n; i++) {
                sel[k] = (uint32_t)i;
                k += v[i] != 0;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                sel[k] = (uint32_t)i;
                k += (v[i] != 0) & (unsigned)((valid[i >> 6] >> (i & 63)) & 1);
            }
        }
    }
    tsr_opnd_release(mem, &r);
    *nsel = k;
    return TSR_OK;
}

static bool expr_has_column(const tsr_expr_t *e)
{
    if (e->kind == TSR_EXPR_COLUMN)
        return true;
    for (size_t k = 0; k < e->nargs; k++)
        if (expr_has_column(e->args[k]))
            return true;
    return false;
}

tsr_status_t tsr_expr_fold(const tsr_expr_t *e, bool *folded, tsr_value_t *out, tsr_error_t *err)
{
    *folded = false;
    if (expr_has_column(e))
        return TSR_OK;
    /* a column-free tree folds bottom-up to a constant without touching rows;
     * one dummy row only gives the kernels a size */
    tsr_batch_t one = {.nrows = 1, .cols = NULL};
    tsr_operand_t r;
    tsr_status_t rc = tsr_expr_walk(NULL, NULL, e, &one, NULL, &r, err);
    if (rc != TSR_OK)
        return rc;
    if (rc == TSR_OK && tsr_opnd_type(&r) != e->type && e->type != TSR_TYPE_NULL)
        rc = tsr_expr_coerce(NULL, &r, e->type, 1, err);
    if (rc != TSR_OK || !r.is_const) {
        tsr_opnd_release(NULL, &r);
        return rc;
    }
    *out = r.c;
    out->type = e->type;
    *folded = true;
    return TSR_OK;
}
