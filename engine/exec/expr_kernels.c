/*
 * expr_kernels.c - typed inner loops of expression evaluation.
 *
 * See expr_kernels.h for the contract. FOR_SHAPES expands one statement, which
 * reads x and y and writes row i, into three loops: vector-vector,
 * vector-constant and constant-vector. Callers switch on the operator outside
 * it, so each loop body is straight-line code over arrays.
 */
#include "exec/expr_kernels.h"

#include <math.h>

#include "table/table.h"

#define FOR_SHAPES(T, STMT)                                                                        \
    do {                                                                                           \
        if (a && b) {                                                                              \
            for (size_t i = 0; i < n; i++) {                                                       \
                T x = a[i], y = b[i];                                                              \
                STMT;                                                                              \
            }                                                                                      \
        } else if (a) {                                                                            \
            for (size_t i = 0; i < n; i++) {                                                       \
                T x = a[i], y = cb;                                                                \
                STMT;                                                                              \
            }                                                                                      \
        } else {                                                                                   \
            for (size_t i = 0; i < n; i++) {                                                       \
                T x = ca, y = b[i];                                                                \
                STMT;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

bool tsr_kern_i64_addsubmul(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b, int64_t cb,
                            int64_t *r, size_t n)
{
    /* accumulate the flags branch-free; the rare overflow is located later */
    bool ovf = false;
    switch (op) {
    case TSR_OP_ADD:
        FOR_SHAPES(int64_t, ovf |= __builtin_add_overflow(x, y, &r[i]));
        break;
    case TSR_OP_SUB:
        FOR_SHAPES(int64_t, ovf |= __builtin_sub_overflow(x, y, &r[i]));
        break;
    case TSR_OP_MUL:
        FOR_SHAPES(int64_t, ovf |= __builtin_mul_overflow(x, y, &r[i]));
        break;
    default:
        break;
    }
    return ovf;
}

/* One row's overflow test; only used on the rare path, so the switch per row
 * costs nothing that matters. */
static bool i64_row_overflows(tsr_op_t op, int64_t x, int64_t y)
{
    int64_t t;
    switch (op) {
    case TSR_OP_ADD:
        return __builtin_add_overflow(x, y, &t);
    case TSR_OP_SUB:
        return __builtin_sub_overflow(x, y, &t);
    case TSR_OP_MUL:
        return __builtin_mul_overflow(x, y, &t);
    case TSR_OP_DIV:
        return x == INT64_MIN && y == -1;
    default:
        return false;
    }
}

bool tsr_kern_i64_overflow_at_valid(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b,
                                    int64_t cb, const uint64_t *valid, const uint64_t *care,
                                    size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!tsr_bit_get(valid, i) || !tsr_bit_get(care, i))
            continue;
        if (i64_row_overflows(op, a ? a[i] : ca, b ? b[i] : cb))
            return true;
    }
    return false;
}

void tsr_kern_i64_divmod(tsr_op_t op, const int64_t *a, int64_t ca, const int64_t *b, int64_t cb,
                         int64_t *r, size_t n, bool *any_zero, bool *any_ovf)
{
    /* Divisors 0 and -1 are replaced by 1 so the hardware never traps (x/0,
     * INT64_MIN/-1); -1 is then applied as a wrapping negation, and the
     * caller turns zero divisors into NULL and INT64_MIN/-1 into an error. */
    bool zero = false, ovf = false;
    if (op == TSR_OP_DIV) {
        FOR_SHAPES(int64_t, {
            zero |= y == 0;
            ovf |= (y == -1) & (x == INT64_MIN);
            int64_t q = x / (((y == 0) | (y == -1)) ? 1 : y);
            r[i] = y == -1 ? (int64_t)(0 - (uint64_t)x) : (y == 0 ? 0 : q);
        });
    } else {
        FOR_SHAPES(int64_t, {
            zero |= y == 0;
            int64_t m = x % (((y == 0) | (y == -1)) ? 1 : y);
            r[i] = ((y == 0) | (y == -1)) ? 0 : m;
        });
    }
    *any_zero = zero;
    *any_ovf = ovf;
}

void tsr_kern_f64_arith(tsr_op_t op, const double *a, double ca, const double *b, double cb,
                        double *r, size_t n, bool *any_zero)
{
    bool zero = false;
    switch (op) {
    case TSR_OP_ADD:
        FOR_SHAPES(double, r[i] = x + y);
        break;
    case TSR_OP_SUB:
        FOR_SHAPES(double, r[i] = x - y);
        break;
    case TSR_OP_MUL:
        FOR_SHAPES(double, r[i] = x * y);
        break;
    case TSR_OP_DIV:
        FOR_SHAPES(double, {
            zero |= y == 0.0;
            r[i] = y == 0.0 ? 0.0 : x / y;
        });
        break;
    case TSR_OP_MOD:
        FOR_SHAPES(double, {
            zero |= y == 0.0;
            r[i] = y == 0.0 ? 0.0 : fmod(x, y);
        });
        break;
    default:
        break;
    }
    *any_zero = zero;
}

void tsr_kern_clear_zero_i64(const int64_t *b, uint64_t *valid, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] == 0)
            valid[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

void tsr_kern_clear_zero_f64(const double *b, uint64_t *valid, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] == 0.0)
            valid[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

#define DEF_CMP(NAME, T)                                                                           \
    void NAME(tsr_op_t op, const T *a, T ca, const T *b, T cb, uint8_t *r, size_t n)               \
    {                                                                                              \
        switch (op) {                                                                              \
        case TSR_OP_EQ:                                                                            \
            FOR_SHAPES(T, r[i] = x == y);                                                          \
            break;                                                                                 \
        case TSR_OP_NE:                                                                            \
            FOR_SHAPES(T, r[i] = x != y);                                                          \
            break;                                                                                 \
        case TSR_OP_LT:                                                                            \
            FOR_SHAPES(T, r[i] = x < y);                                                           \
            break;                                                                                 \
        case TSR_OP_LE:                                                                            \
            FOR_SHAPES(T, r[i] = x <= y);                                                          \
            break;                                                                                 \
        case TSR_OP_GT:                                                                            \
            FOR_SHAPES(T, r[i] = x > y);                                                           \
            break;                                                                                 \
        case TSR_OP_GE:                                                                            \
            FOR_SHAPES(T, r[i] = x >= y);                                                          \
            break;                                                                                 \
        default:                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    }

DEF_CMP(tsr_kern_cmp_i64, int64_t)
DEF_CMP(tsr_kern_cmp_f64, double)
DEF_CMP(tsr_kern_cmp_u8, uint8_t)

tsr_op_t tsr_kern_flip(tsr_op_t op)
{
    switch (op) {
    case TSR_OP_LT:
        return TSR_OP_GT;
    case TSR_OP_LE:
        return TSR_OP_GE;
    case TSR_OP_GT:
        return TSR_OP_LT;
    case TSR_OP_GE:
        return TSR_OP_LE;
    default:
        return op;
    }
}
