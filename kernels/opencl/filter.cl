/*
 * filter.cl - predicate evaluation and stream compaction (OpenCL C 1.2, no
 * extensions): rows where a predicate program is TRUE -> the sorted list of
 * their row numbers.
 *
 * Host side: engine/device/filter_opencl.c; semantics and the program format:
 * engine/device/filter.h; the sequential model of the evaluator:
 * tsr_dev_filter_eval64 in engine/device/filter.c.
 *
 * One work-item evaluates one word of 64 rows. A program value is two
 * bitmaps of those rows, T (TRUE) and F (FALSE), NULL being neither, so
 * AND/OR/NOT are word operations and only comparisons loop over rows
 * (a tight loop over 64 neighbouring values). Compaction, per launch:
 *
 *   tsr_filter_count    each work-item's selection word -> masks[w];
 *                       each work-group's popcount total -> counts[g]
 *   scan(counts)        (scan.cl) -> the first output position of each group
 *   tsr_filter_scatter  a local scan of the work-items' popcounts gives each
 *                       word its position; the word's set bits are written
 *                       in order. Groups, words and bits are in row order,
 *                       so the output is ascending.
 *
 * Inputs: the program's columns packed at cols + u*cap (their bits: int64 or
 * double) with validity words at valid + u*(cap/64) where bit u of vmask is
 * set. Code words (ulong2): x = code | slot << 8, y = the constant's bits.
 * Every loop is bounded by ncode (<= 64) or 64.
 */
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#define INLINE inline __attribute__((always_inline))
#define MAX_DEPTH 16

/* tsr_dev_filter_code_t */
#define FC_CMP_I 0
#define FC_CMP_D 8
#define FC_IS_NULL 16
#define FC_IS_NOT_NULL 17
#define FC_AND 18
#define FC_OR 19
#define FC_NOT 20

/* tsr_dev_pred_op_t order of the comparisons */
#define OP_EQ 0
#define OP_NE 1
#define OP_LT 2
#define OP_LE 3
#define OP_GT 4
#define OP_GE 5

#define CMP_LOOP(T, LOAD, K)                                                                      \
    for (uint i = 0; i < m; i++) {                                                                \
        T x = LOAD(col[i]);                                                                       \
        int b;                                                                                    \
        switch (op) {                                                                             \
        case OP_EQ: b = x == K; break;                                                            \
        case OP_NE: b = x != K; break;                                                            \
        case OP_LT: b = x < K; break;                                                             \
        case OP_LE: b = x <= K; break;                                                            \
        case OP_GT: b = x > K; break;                                                             \
        default: b = x >= K; break;                                                               \
        }                                                                                         \
        r |= (ulong)(b != 0) << i;                                                                \
    }

INLINE ulong cmp_i(uint op, __global const ulong *col, long k, uint m)
{
    ulong r = 0;
    CMP_LOOP(long, as_long, k)
    return r;
}

INLINE ulong cmp_d(uint op, __global const ulong *col, double k, uint m)
{
    ulong r = 0;
    CMP_LOOP(double, as_double, k)
    return r;
}

/* The selection bitmap of word w (rows w*64 .. of n). */
INLINE ulong eval64(__global const ulong *cols, __global const ulong *valid, uint vmask,
                    __global const ulong2 *code, uint ncode, uint n, uint cap, uint w)
{
    uint first = w * 64, m = n - first < 64 ? n - first : 64;
    ulong live = m == 64 ? ~0UL : (1UL << m) - 1;
    ulong t[MAX_DEPTH], f[MAX_DEPTH];
    uint sp = 0;
    for (uint pc = 0; pc < ncode; pc++) {
        ulong2 c = code[pc];
        uint op = (uint)(c.x & 0xff), s = (uint)(c.x >> 8);
        if (op < FC_AND) {
            ulong v = (((vmask >> s) & 1u) ? valid[(size_t)s * (cap / 64) + w] : ~0UL) & live;
            ulong a, b;
            if (op == FC_IS_NULL) {
                a = ~v & live;
                b = v;
            } else if (op == FC_IS_NOT_NULL) {
                a = v;
                b = ~v & live;
            } else {
                __global const ulong *col = cols + (size_t)s * cap + first;
                ulong r = op >= FC_CMP_D ? cmp_d(op - FC_CMP_D, col, as_double(c.y), m)
                                         : cmp_i(op, col, as_long(c.y), m);
                a = v & r;
                b = v & ~r;
            }
            if (sp < MAX_DEPTH) { /* the host checked the depth; this keeps it in bounds */
                t[sp] = a;
                f[sp] = b;
                sp++;
            }
            continue;
        }
        if (op == FC_NOT) {
            if (sp >= 1) {
                ulong x = t[sp - 1];
                t[sp - 1] = f[sp - 1];
                f[sp - 1] = x;
            }
            continue;
        }
        if (sp < 2)
            continue;
        sp--;
        if (op == FC_AND) {
            t[sp - 1] &= t[sp];
            f[sp - 1] |= f[sp];
        } else {
            t[sp - 1] |= t[sp];
            f[sp - 1] &= f[sp];
        }
    }
    return sp ? t[0] : 0;
}

/* Exclusive scan of one value per work-item (as in scan.cl). */
INLINE ulong wg_scan_excl(__local ulong *tmp, ulong v, uint lid, uint lsz, ulong *total)
{
    tmp[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint off = 1; off < lsz; off <<= 1) {
        ulong x = lid >= off ? tmp[lid - off] : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        tmp[lid] += x;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ulong incl = tmp[lid];
    *total = tmp[lsz - 1];
    barrier(CLK_LOCAL_MEM_FENCE);
    return incl - v;
}

__kernel void tsr_filter_count(__global const ulong *cols, __global const ulong *valid,
                               uint vmask, __global const ulong2 *code, uint ncode, uint n,
                               uint cap, __global ulong *masks, __global ulong *counts,
                               __local ulong *tmp)
{
    uint w = (uint)get_global_id(0), lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    uint words = (n + 63) / 64;
    ulong m = 0;
    if (w < words) {
        m = eval64(cols, valid, vmask, code, ncode, n, cap, w);
        masks[w] = m;
    }
    tmp[lid] = popcount(m);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint hs = lsz >> 1; hs > 0; hs >>= 1) {
        if (lid < hs)
            tmp[lid] += tmp[lid + hs];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        counts[get_group_id(0)] = tmp[0];
}

__kernel void tsr_filter_scatter(__global const ulong *masks, uint n,
                                 __global const ulong *offsets, uint row_base,
                                 __global uint *sel, __local ulong *tmp)
{
    uint w = (uint)get_global_id(0), lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    uint words = (n + 63) / 64;
    ulong m = w < words ? masks[w] : 0, total;
    ulong pos = offsets[get_group_id(0)] + wg_scan_excl(tmp, popcount(m), lid, lsz, &total);
    uint row = row_base + w * 64;
    for (uint k = 0; k < 64 && m; k++) {
        uint bit = 63 - (uint)clz(m & (~m + 1)); /* lowest set bit */
        sel[pos++] = row + bit;
        m &= m - 1;
    }
}
