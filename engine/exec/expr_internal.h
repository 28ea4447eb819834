/*
 * expr_internal.h - what expr_eval.c and expr_bool.c share: the operand a
 * node of an expression yields while a batch is evaluated, and the helpers
 * and node evaluators the two files call across. Private to engine/exec/.
 *
 * An operand is either a constant (is_const: c holds the value, NULL
 * included) or a vector of the batch's n rows in v, owned or borrowed.
 * Releasing an operand frees what it owns; a moved-from operand is an empty
 * constant whose release is a no-op. Node evaluators never consume their
 * input operands (the caller releases them) except by an explicit move.
 */
#ifndef TSR_EXEC_EXPR_INTERNAL_H
#define TSR_EXEC_EXPR_INTERNAL_H

#include <string.h>

#include "exec/exec_internal.h"

typedef struct tsr_operand {
    bool is_const;  /* c is the value; otherwise v */
    tsr_value_t c;  /* is_const: type, is_null, i/d/s */
    tsr_vector_t v; /* !is_const: n values, owned or borrowed */
} tsr_operand_t;

static inline tsr_status_t tsr_expr_nomem(tsr_error_t *err)
{
    return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
}

static inline void tsr_opnd_release(tsr_mem_t *mem, tsr_operand_t *o)
{
    if (!o->is_const)
        tsr_vector_release(mem, &o->v);
    memset(o, 0, sizeof(*o));
    o->is_const = true;
    o->c.is_null = true;
}

/* Moves src into dst, leaving src empty (releasing it is a no-op). */
static inline void tsr_opnd_move(tsr_operand_t *dst, tsr_operand_t *src)
{
    *dst = *src;
    memset(src, 0, sizeof(*src));
    src->is_const = true;
    src->c.is_null = true;
}

static inline void tsr_opnd_set_null(tsr_operand_t *o, tsr_type_t type)
{
    memset(o, 0, sizeof(*o));
    o->is_const = true;
    o->c.type = type;
    o->c.is_null = true;
}

static inline void tsr_opnd_set_bool(tsr_operand_t *o, bool b)
{
    memset(o, 0, sizeof(*o));
    o->is_const = true;
    o->c.type = TSR_TYPE_BOOL;
    o->c.i = b;
}

static inline tsr_type_t tsr_opnd_type(const tsr_operand_t *o)
{
    return o->is_const ? o->c.type : o->v.type;
}

static inline bool tsr_opnd_is_null(const tsr_operand_t *o)
{
    return o->is_const && o->c.is_null;
}

static inline const uint64_t *tsr_opnd_validity(const tsr_operand_t *o)
{
    return o->is_const ? NULL : o->v.validity;
}

/* ---- vectors and bitmaps (expr_eval.c) -------------------------------------------- */

/* A fresh owned vector of n values; its validity is set by the caller. */
tsr_status_t tsr_expr_new_vector(tsr_mem_t *mem, tsr_type_t type, size_t n, tsr_vector_t *out,
                                 tsr_error_t *err);
uint64_t *tsr_expr_new_bitmap(tsr_mem_t *mem, size_t n);
/* r's validity = a AND b (either may be NULL = all valid); none when both are. */
tsr_status_t tsr_expr_validity_and(tsr_mem_t *mem, const uint64_t *a, const uint64_t *b, size_t n,
                                   tsr_vector_t *r, tsr_error_t *err);
/* Ensures r has an owned bitmap (all valid when it had none). */
tsr_status_t tsr_expr_ensure_validity(tsr_mem_t *mem, tsr_vector_t *r, size_t n, tsr_error_t *err);
/* Copies a's validity into r (an owned copy; none when a has none). */
tsr_status_t tsr_expr_copy_validity(tsr_mem_t *mem, const tsr_operand_t *a, size_t n,
                                    tsr_vector_t *r, tsr_error_t *err);
/* Converts o in place to type t (INT64->DOUBLE, BOOL->INT64, BOOL->DOUBLE). */
tsr_status_t tsr_expr_coerce(tsr_mem_t *mem, tsr_operand_t *o, tsr_type_t t, size_t n,
                             tsr_error_t *err);

/* ---- node evaluators -------------------------------------------------------------------- */

/* The walk: evaluates e over batch into out (expr_eval.c). memo may be NULL.
 *
 * care: the rows whose value of e matters (a bitmap of batch->nrows bits;
 * NULL: all). Values are computed for every row, but a row-dependent error
 * (integer overflow) is raised only on rows in care. AND and OR narrow it
 * for their right operand to the rows the left one does not decide, so
 * `a < 1000 AND a * a > 5` never fails on a row where a >= 1000; an error of
 * a constant subtree counts when any row is in care. */
tsr_status_t tsr_expr_walk(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                           const tsr_batch_t *batch, const uint64_t *care, tsr_operand_t *out,
                           tsr_error_t *err);
/* Whether some row of [0, n) is in care (NULL: all rows, so when n > 0). */
bool tsr_expr_care_any(const uint64_t *care, size_t n);
/* x op y for one type t, both non-NULL constants (expr_eval.c). */
bool tsr_expr_scalar_cmp(tsr_op_t op, tsr_type_t t, const tsr_value_t *x, const tsr_value_t *y);
/* Comparison and unary (NOT, NEG) nodes (expr_eval.c). */
/* key: the node, under which per-code string results are memoized (memo may
 * be NULL). */
tsr_status_t tsr_expr_compare(tsr_mem_t *mem, tsr_expr_memo_t *memo, const void *key, tsr_op_t op,
                              tsr_operand_t *a, tsr_operand_t *b, size_t n, tsr_operand_t *out,
                              tsr_error_t *err);
tsr_status_t tsr_expr_unary(tsr_mem_t *mem, const tsr_expr_t *e, tsr_operand_t *a, size_t n,
                            const uint64_t *care, tsr_operand_t *out, tsr_error_t *err);
/* AND / OR, IS [NOT] NULL, [NOT] IN, [NOT] LIKE (expr_bool.c). */
tsr_status_t tsr_expr_logic(tsr_mem_t *mem, tsr_op_t op, tsr_operand_t *a, tsr_operand_t *b,
                            size_t n, tsr_operand_t *out, tsr_error_t *err);
tsr_status_t tsr_expr_is_null(tsr_mem_t *mem, bool negated, const tsr_operand_t *a, size_t n,
                              tsr_operand_t *out, tsr_error_t *err);
tsr_status_t tsr_expr_in(tsr_mem_t *mem, tsr_expr_memo_t *memo, const tsr_expr_t *e,
                         const tsr_batch_t *batch, const uint64_t *care, tsr_operand_t *out,
                         tsr_error_t *err);
tsr_status_t tsr_expr_like(tsr_mem_t *mem, tsr_expr_memo_t *memo, const void *key, bool negated,
                           tsr_operand_t *x, tsr_operand_t *pat, size_t n, tsr_operand_t *out,
                           tsr_error_t *err);

#endif /* TSR_EXEC_EXPR_INTERNAL_H */
