/*
 * filter.cuh - predicate evaluation and stream compaction kernel bodies
 * (common C / CUDA C++ subset; see compat.cuh). The __global__ wrappers are
 * in filter.cu, the host side in engine/device/filter_cuda.c, the program
 * format and semantics in engine/device/filter.h (the sequential model is
 * tsr_dev_filter_eval64 in filter.c; the OpenCL kernel is filter.cl).
 *
 * One thread evaluates one row, so a warp reads 32 neighbouring values of
 * each column (coalesced; OpenCL's one-item-per-64-rows layout would stride
 * by 512 bytes between lanes). The program (at most 64 instructions) sits
 * in the kernel's parameters, which every lane reads alike (a broadcast).
 * A program value is a pair of bits (TRUE, FALSE; NULL is neither), the
 * stack of at most 16 values two 32-bit words.
 *
 * Compaction, per launch, in tiles of block * FILTER_ITERS rows:
 *
 *   count     each warp's ballot of selected rows -> masks[row / 32];
 *             the tile's popcount total -> counts[tile]
 *   scan      (scan.cuh) counts -> each tile's first output position
 *   scatter   per block-row of the tile, a block scan of the selected
 *             flags gives each row its position; rows are visited in row
 *             order, so the output is ascending. Reads 1 bit per row.
 *
 * sh: dynamic shared memory of 33 words (scan_block_excl).
 */
#ifndef TSR_KERNELS_CUDA_FILTER_CUH
#define TSR_KERNELS_CUDA_FILTER_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "scan.cuh"

/* tsr_dev_filter_code_t (filter.h) */
#define FI_CMP_I 0
#define FI_CMP_D 8
#define FI_IS_NULL 16
#define FI_IS_NOT_NULL 17
#define FI_AND 18
#define FI_OR 19
#define FI_NOT 20
#define FI_MAX_DEPTH 16

/* tsr_dev_pred_op_t's comparisons: EQ NE LT LE GT GE */
TSR_DEV int fi_cmp_i(uint32_t op, int64_t x, int64_t k)
{
    switch (op) {
    case 0:
        return x == k;
    case 1:
        return x != k;
    case 2:
        return x < k;
    case 3:
        return x <= k;
    case 4:
        return x > k;
    default:
        return x >= k;
    }
}

TSR_DEV int fi_cmp_d(uint32_t op, double x, double k)
{
    switch (op) {
    case 0:
        return x == k;
    case 1:
        return x != k;
    case 2:
        return x < k;
    case 3:
        return x <= k;
    case 4:
        return x > k;
    default:
        return x >= k;
    }
}

/* 1 when the program is TRUE for launch row `row` (< n). */
TSR_DEV int fi_eval_row(const tsr_cuda_filter_view_t *v, uint32_t row)
{
    uint32_t t = 0, f = 0, sp = 0; /* bit i of t / f: stack entry i is TRUE / FALSE */
    for (uint32_t pc = 0; pc < v->ncode; pc++) {
        const uint64_t w = v->code[2 * pc];
        const uint32_t op = (uint32_t)(w & 0xff), s = (uint32_t)(w >> 8);
        if (op < FI_AND) {
            uint32_t valid = 1, a, b;
            if ((v->vmask >> s) & 1u)
                valid =
                    (uint32_t)(v->valid[(uint64_t)s * (v->cap / 64) + row / 64] >> (row & 63)) & 1u;
            if (op == FI_IS_NULL) {
                a = !valid;
                b = valid;
            } else if (op == FI_IS_NOT_NULL) {
                a = valid;
                b = !valid;
            } else {
                uint64_t x = v->cols[(uint64_t)s * v->cap + row], k = v->code[2 * pc + 1];
                int r = op >= FI_CMP_D ? fi_cmp_d(op - FI_CMP_D, tsr_as_f64(x), tsr_as_f64(k))
                                       : fi_cmp_i(op, (int64_t)x, (int64_t)k);
                a = valid & (uint32_t)(r != 0);
                b = valid & (uint32_t)(r == 0);
            }
            if (sp < FI_MAX_DEPTH) { /* the host checked the depth; this keeps it in bounds */
                t = (t & ~(1u << sp)) | (a << sp);
                f = (f & ~(1u << sp)) | (b << sp);
                sp++;
            }
            continue;
        }
        if (op == FI_NOT) {
            if (sp >= 1) {
                uint32_t bit = 1u << (sp - 1), tt = t & bit;
                t = (t & ~bit) | (f & bit);
                f = (f & ~bit) | tt;
            }
            continue;
        }
        if (sp < 2)
            continue;
        sp--;
        uint32_t ta = (t >> (sp - 1)) & 1u, fa = (f >> (sp - 1)) & 1u;
        uint32_t tb = (t >> sp) & 1u, fb = (f >> sp) & 1u, rt, rf;
        if (op == FI_AND) {
            rt = ta & tb;
            rf = fa | fb;
        } else {
            rt = ta | tb;
            rf = fa & fb;
        }
        uint32_t bit = 1u << (sp - 1);
        t = (t & ~bit) | (rt << (sp - 1));
        f = (f & ~bit) | (rf << (sp - 1));
    }
    return sp ? (int)(t & 1u) : 0;
}

TSR_DEV void filter_count_body(const tsr_cuda_filter_view_t *v, uint64_t *sh)
{
    const uint32_t tid = TSR_TID, lane = TSR_LANE, bdim = TSR_BDIM;
    for (uint32_t tile = TSR_BID; tile < v->ntiles; tile += TSR_GDIM) {
        uint64_t cnt = 0;
        for (uint32_t it = 0; it < TSR_CUDA_FILTER_ITERS; it++) {
            const uint64_t row = (uint64_t)tile * v->tile + (uint64_t)it * bdim + tid;
            const uint64_t first = row - lane; /* the warp's first row */
            uint32_t m = tsr_ballot(row < v->n && fi_eval_row(v, (uint32_t)row));
            if (lane == 0 && first < v->n) {
                v->masks[first / 32] = m;
                cnt += tsr_popc(m);
            }
        }
        uint64_t total;
        scan_block_excl(cnt, sh, &total);
        if (tid == 0)
            v->counts[tile] = total;
    }
}

TSR_DEV void filter_scatter_body(const tsr_cuda_filter_view_t *v, uint64_t *sh)
{
    const uint32_t tid = TSR_TID, lane = TSR_LANE, bdim = TSR_BDIM;
    for (uint32_t tile = TSR_BID; tile < v->ntiles; tile += TSR_GDIM) {
        uint64_t pos = v->counts[tile];
        if (v->counts[tile + 1] == pos)
            continue; /* nothing selected in the tile (block-uniform) */
        for (uint32_t it = 0; it < TSR_CUDA_FILTER_ITERS; it++) {
            const uint64_t row = (uint64_t)tile * v->tile + (uint64_t)it * bdim + tid;
            const uint64_t first = row - lane;
            uint32_t m = first < v->n ? v->masks[first / 32] : 0;
            uint32_t sel = (m >> lane) & 1u;
            uint64_t total, rank = scan_block_excl(sel, sh, &total);
            if (sel)
                v->sel[pos + rank] = v->row_base + (uint32_t)row;
            pos += total;
        }
    }
}

#endif /* TSR_KERNELS_CUDA_FILTER_CUH */
