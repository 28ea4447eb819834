/*
 * expr_kernels.h - typed inner loops of expression evaluation (expr_kernels.c).
 *
 * Every kernel works on one batch: operands are either a vector (a pointer to
 * n values) or a constant (pointer NULL, value passed). At most one operand is
 * a constant: constant-only subtrees are folded before a kernel runs. The
 * operator and the shape (vector-vector, vector-constant, constant-vector) are
 * dispatched once per call; each case is a plain loop over arrays that the
 * compiler vectorizes. Validity (NULLs) is handled by the caller on bitmaps;
 * kernels compute values for every row, NULL rows included, and never trap on
 * them (division by a garbage zero yields a placeholder value, not SIGFPE).
 */
#ifndef TSR_EXEC_EXPR_KERNELS_H
#define TSR_EXEC_EXPR_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sql/ast.h"

/* r = a op b for op in ADD SUB MUL, checked: returns true when some row
 * overflowed (NULL rows included: the caller rechecks with validity). */
bool tsr_kern_i64_addsubmul(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b, int64_t cb,
                            int64_t *r, size_t n);
/* Is there a row i, set in both bitmaps valid and care (NULL: all rows), whose
 * op overflows? (op ADD SUB MUL DIV). The rare path after a kernel reported
 * overflow. */
bool tsr_kern_i64_overflow_at_valid(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b,
                                    int64_t cb, const uint64_t *valid, const uint64_t *care,
                                    size_t n);
/* r = a / b or a % b truncating; rows with b == 0 get 0 and set *any_zero;
 * INT64_MIN / -1 sets *any_ovf (the caller rechecks validity). */
void tsr_kern_i64_divmod(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b, int64_t cb,
                         int64_t *r, size_t n, bool *any_zero, bool *any_ovf);
/* r = a op b for ADD SUB MUL DIV MOD; DIV/MOD rows with b == 0 get 0 and set
 * *any_zero. */
void tsr_kern_f64_arith(tsr_op_t op, const double *a, double ca, const double *b, double cb,
                        double *r, size_t n, bool *any_zero);
/* Clears in bitmap valid the rows whose divisor is zero. */
void tsr_kern_clear_zero_i64(const int64_t *b, uint64_t *valid, size_t n);
void tsr_kern_clear_zero_f64(const double *b, uint64_t *valid, size_t n);

/* r[i] = a op b (0/1) for comparison ops. */
void tsr_kern_cmp_i64(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b, int64_t cb,
                      uint8_t *r, size_t n);
void tsr_kern_cmp_f64(tsr_op_t op, const double *a, double ca, const double *b, double cb,
                      uint8_t *r, size_t n);
void tsr_kern_cmp_u8(tsr_op_t op, const uint8_t *a, uint8_t ca, const uint8_t *b, uint8_t cb,
                     uint8_t *r, size_t n);

/* The op that gives the same answer with its operands swapped (a<b == b>a). */
tsr_op_t tsr_kern_flip(tsr_op_t op);

/* Bit i of the returned word = (p[i] != 0), for cnt <= 64 bytes. */
static inline uint64_t tsr_kern_pack64(const uint8_t *p, size_t cnt)
{
    uint64_t w = 0;
    for (size_t j = 0; j < cnt; j++)
        w |= (uint64_t)(p[j] != 0) << j;
    return w;
}

#endif /* TSR_EXEC_EXPR_KERNELS_H */
