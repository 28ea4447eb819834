/*
 * expr_bool.c - the predicate nodes of expression evaluation: AND / OR
 * (three-valued), IS [NOT] NULL, [NOT] IN and [NOT] LIKE. See expr_eval.c for
 * the walk and the operand model, expr_internal.h for what is shared.
 *
 * Three-valued logic on bitmaps: with a/b the value bits and va/vb the
 * validity bits of the operands,
 *   AND: value a&b, valid (va&vb) | (va&~a) | (vb&~b)   (a known FALSE decides)
 *   OR:  value a|b, valid (va&vb) | (va&a)  | (vb&b)    (a known TRUE decides)
 *
 * IN over constants (the usual case) collects the non-NULL constants once per
 * batch - for strings, their codes in the column's dictionary - and tests
 * membership with one vectorizable pass per constant for short lists, or a
 * binary search in the sorted constants for long ones; a NULL constant makes
 * unmatched rows NULL. IN over general expressions is an OR of equalities.
 * LIKE compiles its constant pattern once per batch (expr_string.c).
 */
#include <stdlib.h>

#include "exec/expr_internal.h"
#include "exec/expr_kernels.h"

/* ---- AND / OR / NOT --------------------------------------------------------------- */

/* three-valued scalar: value/null of a op b */
static void scalar_logic(tsr_op_t op, const tsr_value_t *x, const tsr_value_t *y,
                         tsr_operand_t *out)
{
    bool is_and = op == TSR_OP_AND;
    /* the deciding value: FALSE for AND, TRUE for OR */
    bool decide = !is_and;
    if ((!x->is_null && (x->i != 0) == decide) || (!y->is_null && (y->i != 0) == decide)) {
        tsr_opnd_set_bool(out, decide);
        return;
    }
    if (x->is_null || y->is_null) {
        tsr_opnd_set_null(out, TSR_TYPE_BOOL);
        return;
    }
    tsr_opnd_set_bool(out, !decide);
}

tsr_status_t tsr_expr_logic(tsr_mem_t *mem, tsr_op_t op, tsr_operand_t *a, tsr_operand_t *b,
                            size_t n, tsr_operand_t *out, tsr_error_t *err)
{
    bool is_and = op == TSR_OP_AND;
    if (a->is_const && b->is_const) {
        scalar_logic(op, &a->c, &b->c, out);
        return TSR_OK;
    }
    if (a->is_const) {
        tsr_operand_t *tmp = a;
        a = b;
        b = tmp;
    }
    tsr_status_t rc;
    tsr_vector_t r;
    const uint8_t *av = a->v.data;
    const uint64_t *va = a->v.validity;
    size_t words = tsr_bitmap_words(n ? n : 1);
    if (b->is_const) {
        if (!b->c.is_null) {
            if ((b->c.i != 0) == !is_and) /* TRUE OR x, FALSE AND x */
                tsr_opnd_set_bool(out, !is_and);
            else /* TRUE AND x, FALSE OR x: x itself */
                tsr_opnd_move(out, a);
            return TSR_OK;
        }
        /* x AND NULL: FALSE where x is FALSE, else NULL; OR: TRUE where x is TRUE */
        if ((rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err)) != TSR_OK)
            return rc;
        memset(r.data, is_and ? 0 : 1, n);
        if ((rc = tsr_expr_ensure_validity(mem, &r, n, err)) != TSR_OK) {
            tsr_vector_release(mem, &r);
            return rc;
        }
        for (size_t w = 0; w < words; w++) {
            size_t cnt = (w + 1) * 64 <= n ? 64 : n - w * 64;
            uint64_t bits = tsr_kern_pack64(av + w * 64, cnt);
            uint64_t v = va ? va[w] : ~(uint64_t)0;
            r.owned_validity[w] = v & (is_and ? ~bits : bits);
        }
        memset(out, 0, sizeof(*out));
        out->v = r;
        return TSR_OK;
    }
    const uint8_t *bv = b->v.data;
    const uint64_t *vb = b->v.validity;
    if ((rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err)) != TSR_OK)
        return rc;
    uint8_t *rv = r.data;
    if (is_and)
        for (size_t i = 0; i < n; i++)
            rv[i] = (av[i] != 0) & (bv[i] != 0);
    else
        for (size_t i = 0; i < n; i++)
            rv[i] = (av[i] != 0) | (bv[i] != 0);
    if (va || vb) {
        if ((rc = tsr_expr_ensure_validity(mem, &r, n, err)) != TSR_OK) {
            tsr_vector_release(mem, &r);
            return rc;
        }
        for (size_t w = 0; w < words; w++) {
            size_t cnt = (w + 1) * 64 <= n ? 64 : n - w * 64;
            uint64_t x = tsr_kern_pack64(av + w * 64, cnt);
            uint64_t y = tsr_kern_pack64(bv + w * 64, cnt);
            uint64_t vx = va ? va[w] : ~(uint64_t)0, vy = vb ? vb[w] : ~(uint64_t)0;
            if (is_and)
                r.owned_validity[w] = (vx & vy) | (vx & ~x) | (vy & ~y);
            else
                r.owned_validity[w] = (vx & vy) | (vx & x) | (vy & y);
        }
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;
}

/* Copies a's validity into r (an owned copy; none when a has none). */ /* ---- IS NULL, CAST
                                                                           ---------------------------------------------------------------------
                                                                         */

tsr_status_t tsr_expr_is_null(tsr_mem_t *mem, bool negated, const tsr_operand_t *a, size_t n,
                              tsr_operand_t *out, tsr_error_t *err)
{
    if (a->is_const) {
        tsr_opnd_set_bool(out, a->c.is_null != negated);
        return TSR_OK;
    }
    tsr_vector_t r;
    tsr_status_t rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err);
    if (rc != TSR_OK)
        return rc;
    uint8_t *y = r.data;
    const uint64_t *v = a->v.validity;
    if (!v) {
        memset(y, negated, n);
    } else {
        uint8_t flip = !negated; /* IS NULL = NOT valid */
        for (size_t i = 0; i < n; i++)
            y[i] = (uint8_t)(((v[i >> 6] >> (i & 63)) & 1) ^ flip);
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;
}
/* ---- IN ---------------------------------------------------------------------------------- */

static int cmp_i64(const void *p, const void *q)
{
    int64_t x = *(const int64_t *)p, y = *(const int64_t *)q;
    return (x > y) - (x < y);
}

static int cmp_f64(const void *p, const void *q)
{
    double x = *(const double *)p, y = *(const double *)q;
    return (x > y) - (x < y);
}

/* Short lists: one vectorizable OR-pass per key; long ones: sorted keys and
 * a binary search per row. */
#define IN_SHORT_LIST 16
#define DEF_IN(NAME, T, CMP)                                                                       \
    static void NAME(const T *a, T *keys, size_t nk, uint8_t *r, size_t n)                         \
    {                                                                                              \
        memset(r, 0, n);                                                                           \
        if (nk <= IN_SHORT_LIST) {                                                                 \
            for (size_t k = 0; k < nk; k++) {                                                      \
                T key = keys[k];                                                                   \
                for (size_t i = 0; i < n; i++)                                                     \
                    r[i] |= a[i] == key;                                                           \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        qsort(keys, nk, sizeof(T), CMP);                                                           \
        for (size_t i = 0; i < n; i++) {                                                           \
            T x = a[i];                                                                            \
            size_t lo = 0, hi = nk;                                                                \
            while (lo < hi) {                                                                      \
                size_t mid = lo + (hi - lo) / 2;                                                   \
                if (keys[mid] < x)                                                                 \
                    lo = mid + 1;                                                                  \
                else                                                                               \
                    hi = mid;                                                                      \
            }                                                                                      \
            r[i] = lo < nk && keys[lo] == x;                                                       \
        }                                                                                          \
    }

DEF_IN(in_i64, int64_t, cmp_i64)
DEF_IN(in_f64, double, cmp_f64)

static int cmp_u32(const void *p, const void *q)
{
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    return (x > y) - (x < y);
}
DEF_IN(in_u32, uint32_t, cmp_u32)

/* x IN (constants): found[i] per row, NULL-aware via has_null. */
static tsr_status_t in_consts(tsr_mem_t *mem, const tsr_expr_t *e, tsr_operand_t *x,
                              tsr_operand_t *elems, size_t nel, size_t n, tsr_operand_t *out,
                              tsr_error_t *err)
{
    tsr_type_t t = tsr_opnd_type(x);
    tsr_status_t rc;
    bool has_null = false;
    for (size_t k = 0; k < nel; k++) {
        if (tsr_opnd_is_null(&elems[k]))
            has_null = true;
        else if ((rc = tsr_expr_coerce(mem, &elems[k], t, n, err)) != TSR_OK)
            return rc;
    }
    if (x->is_const) {
        bool found = false;
        for (size_t k = 0; k < nel; k++)
            if (!tsr_opnd_is_null(&elems[k]) &&
                tsr_expr_scalar_cmp(TSR_OP_EQ, t, &x->c, &elems[k].c))
                found = true;
        if (!found && has_null)
            tsr_opnd_set_null(out, TSR_TYPE_BOOL);
        else
            tsr_opnd_set_bool(out, found != e->negated);
        return TSR_OK;
    }
    tsr_vector_t r;
    if ((rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err)) != TSR_OK)
        return rc;
    uint8_t *rv = r.data;
    size_t width = t == TSR_TYPE_VARCHAR ? sizeof(uint32_t) : sizeof(int64_t);
    void *keys = tsr_mem_alloc(mem, (nel ? nel : 1) * width);
    if (!keys) {
        rc = tsr_expr_nomem(err);
        goto fail;
    }
    size_t nk = 0;
    bool has_true = false, has_false = false;
    for (size_t k = 0; k < nel; k++) {
        const tsr_value_t *c = &elems[k].c;
        if (c->is_null)
            continue;
        switch (t) {
        case TSR_TYPE_INT64:
            ((int64_t *)keys)[nk++] = c->i;
            break;
        case TSR_TYPE_DOUBLE:
            ((double *)keys)[nk++] = c->d;
            break;
        case TSR_TYPE_BOOL:
            has_true |= c->i != 0;
            has_false |= c->i == 0;
            break;
        case TSR_TYPE_VARCHAR: {
            uint32_t code; /* a string missing from the dictionary matches no row */
            if (tsr_dict_find(x->v.dict, c->s, c->slen, &code))
                ((uint32_t *)keys)[nk++] = code;
            break;
        }
        default:
            break;
        }
    }
    switch (t) {
    case TSR_TYPE_INT64:
        in_i64(x->v.data, keys, nk, rv, n);
        break;
    case TSR_TYPE_DOUBLE:
        in_f64(x->v.data, keys, nk, rv, n);
        break;
    case TSR_TYPE_VARCHAR:
        in_u32(x->v.data, keys, nk, rv, n);
        break;
    case TSR_TYPE_BOOL: {
        const uint8_t *a = x->v.data;
        for (size_t i = 0; i < n; i++)
            rv[i] = a[i] ? has_true : has_false;
        break;
    }
    default:
        tsr_mem_free(mem, keys);
        rc = tsr_error_set(err, TSR_ERR_TYPE, "IN on %s values", tsr_type_name(t));
        goto fail;
    }
    tsr_mem_free(mem, keys);
    if ((rc = tsr_expr_copy_validity(mem, x, n, &r, err)) != TSR_OK)
        goto fail;
    if (has_null) { /* not found and a NULL in the list: NULL */
        if ((rc = tsr_expr_ensure_validity(mem, &r, n, err)) != TSR_OK)
            goto fail;
        size_t words = tsr_bitmap_words(n ? n : 1);
        for (size_t w = 0; w < words; w++) {
            size_t cnt = (w + 1) * 64 <= n ? 64 : n - w * 64;
            r.owned_validity[w] &= tsr_kern_pack64(rv + w * 64, cnt);
        }
    }
    if (e->negated)
        for (size_t i = 0; i < n; i++)
            rv[i] = !rv[i];
    memset(out, 0, sizeof(*out));
    out->v = r;
    return TSR_OK;

fail:
    tsr_vector_release(mem, &r);
    return rc;
}

tsr_status_t tsr_expr_in(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                         const tsr_batch_t *batch, const uint64_t *care, tsr_operand_t *out,
                         tsr_error_t *err)
{
    size_t n = batch->nrows, nel = e->nargs - 1;
    tsr_operand_t *ops = tsr_mem_calloc(mem, e->nargs, sizeof(tsr_operand_t));
    if (!ops)
        return tsr_expr_nomem(err);
    for (size_t k = 0; k < e->nargs; k++)
        tsr_opnd_set_null(&ops[k], TSR_TYPE_NULL);
    tsr_status_t rc = TSR_OK;
    bool all_const = true;
    for (size_t k = 0; k < e->nargs && rc == TSR_OK; k++) {
        rc = tsr_expr_walk(mem, memo, e->args[k], batch, care, &ops[k], err);
        all_const &= k == 0 || ops[k].is_const;
    }
    if (rc != TSR_OK)
        goto done;
    if (tsr_opnd_is_null(&ops[0])) {
        tsr_opnd_set_null(out, TSR_TYPE_BOOL);
    } else if (all_const) {
        rc = in_consts(mem, e, &ops[0], ops + 1, nel, n, out, err);
    } else {
        /* general lists: OR of equalities, then NOT for NOT IN */
        tsr_operand_t acc, eq, tmp;
        tsr_opnd_set_bool(&acc, false);
        for (size_t k = 1; k <= nel && rc == TSR_OK; k++) {
            rc = tsr_expr_compare(mem, NULL, NULL, TSR_OP_EQ, &ops[0], &ops[k], n, &eq, err);
            if (rc != TSR_OK)
                break;
            rc = tsr_expr_logic(mem, TSR_OP_OR, &acc, &eq, n, &tmp, err);
            tsr_opnd_release(mem, &eq);
            tsr_opnd_release(mem, &acc);
            if (rc == TSR_OK)
                acc = tmp;
        }
        if (rc == TSR_OK && e->negated) {
            tsr_expr_t not_e = {.kind = TSR_EXPR_UNARY, .type = TSR_TYPE_BOOL, .op = TSR_OP_NOT};
            rc = tsr_expr_unary(mem, &not_e, &acc, n, NULL, &tmp, err);
            tsr_opnd_release(mem, &acc);
            if (rc == TSR_OK)
                acc = tmp;
        }
        if (rc == TSR_OK)
            *out = acc;
        else
            tsr_opnd_release(mem, &acc);
    }
done:
    for (size_t k = 0; k < e->nargs; k++)
        tsr_opnd_release(mem, &ops[k]);
    tsr_mem_free(mem, ops);
    return rc;
}
/* ---- LIKE -------------------------------------------------------------------------------- */

tsr_status_t tsr_expr_like(tsr_mem_t *mem, tsr_expr_memo_t *memo, const void *key, bool negated,
                           tsr_operand_t *x, tsr_operand_t *pat, size_t n, tsr_operand_t *out,
                           tsr_error_t *err)
{
    if (tsr_opnd_is_null(x) || tsr_opnd_is_null(pat)) {
        tsr_opnd_set_null(out, TSR_TYPE_BOOL);
        return TSR_OK;
    }
    if (!pat->is_const)
        return tsr_error_set(err, TSR_ERR_UNSUPPORTED, "LIKE pattern must be a constant");
    if (tsr_opnd_type(x) != TSR_TYPE_VARCHAR || pat->c.type != TSR_TYPE_VARCHAR)
        return tsr_error_set(err, TSR_ERR_TYPE, "LIKE needs strings");
    tsr_like_t like;
    if (tsr_like_compile(mem, pat->c.s, pat->c.slen, &like) != TSR_OK)
        return tsr_expr_nomem(err);
    tsr_status_t rc = TSR_OK;
    if (x->is_const) {
        tsr_opnd_set_bool(out, tsr_like_match(&like, x->c.s, x->c.slen) != negated);
        goto done;
    }
    tsr_vector_t r;
    if ((rc = tsr_expr_new_vector(mem, TSR_TYPE_BOOL, n, &r, err)) != TSR_OK)
        goto done;
    uint8_t *state = NULL;
    if (tsr_expr_memo_get(memo, key, x->v.dict, &state) != TSR_OK ||
        tsr_str_like(mem, &like, x->v.dict, x->v.data, state, r.data, n) != TSR_OK ||
        tsr_expr_copy_validity(mem, x, n, &r, err) != TSR_OK) {
        tsr_vector_release(mem, &r);
        rc = tsr_expr_nomem(err);
        goto done;
    }
    if (negated) {
        uint8_t *rv = r.data;
        for (size_t i = 0; i < n; i++)
            rv[i] = !rv[i];
    }
    memset(out, 0, sizeof(*out));
    out->v = r;
done:
    tsr_like_free(mem, &like);
    return rc;
}
