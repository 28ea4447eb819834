/*
 * scan.cuh - exclusive prefix sums of uint64 on CUDA GPUs (common C / CUDA
 * C++ subset; see compat.cuh), the building block of stream compaction
 * (filter), count-then-write (hash join) and the partition offsets.
 *
 * Reduce-then-scan in three launches over tiles of block * SCAN_ITEMS
 * elements (tsr_cuda_scan_view_t in engine/device/cuda_kernels.h):
 *
 *   reduce   block b sums tile b           -> partial[b]
 *   spine    one block scans partial[]      -> tile offsets, partial[ntiles] = total
 *   down     block b scans tile b in place, starting at partial[b]
 *
 * Every element is read twice and written once: bandwidth-bound like a
 * single-pass (decoupled look-back) scan, within a factor 1.5 of it, with
 * no inter-block protocol (which the emulator could not order anyway).
 *
 * Inside a block: each thread sums SCAN_ITEMS consecutive elements, warps
 * scan with shuffles, warp totals go through shared memory (32 words).
 * Tiles are loaded through shared memory so global reads are coalesced.
 * sh: dynamic shared memory of block * SCAN_ITEMS + 33 words.
 */
#ifndef TSR_KERNELS_CUDA_SCAN_CUH
#define TSR_KERNELS_CUDA_SCAN_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"

#define SCAN_ITEMS TSR_CUDA_SCAN_ITEMS

/* Inclusive scan of v over the warp (all 32 lanes call it). */
TSR_DEV uint64_t scan_warp_incl(uint64_t v)
{
    const uint32_t lane = TSR_LANE;
    for (uint32_t off = 1; off < 32; off <<= 1) {
        uint64_t y = tsr_shfl_u64(v, lane >= off ? lane - off : lane);
        if (lane >= off)
            v += y;
    }
    return v;
}

/* Exclusive scan of one value per thread of the block; *total gets the
 * block's sum. wsh: 33 words of shared memory. Every thread calls it. */
TSR_DEV uint64_t scan_block_excl(uint64_t v, uint64_t *wsh, uint64_t *total)
{
    const uint32_t lane = TSR_LANE, warp = TSR_TID >> 5, nw = TSR_BDIM >> 5;
    uint64_t x = scan_warp_incl(v);
    if (lane == 31)
        wsh[warp] = x;
    TSR_SYNC();
    if (warp == 0) {
        uint64_t w = scan_warp_incl(lane < nw ? wsh[lane] : 0);
        if (lane < nw)
            wsh[lane] = w;
    }
    TSR_SYNC();
    uint64_t before = warp ? wsh[warp - 1] : 0;
    *total = wsh[nw - 1];
    TSR_SYNC(); /* wsh is reused by the caller's next call */
    return before + x - v;
}

/* Loads tile t (coalesced) into tsh and returns this thread's SCAN_ITEMS
 * consecutive elements' sum; missing elements are 0. */
TSR_DEV uint64_t scan_load_tile(const tsr_cuda_scan_view_t *v, uint64_t t, uint64_t *tsh)
{
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    const uint64_t base = t * bdim * SCAN_ITEMS;
    TSR_UNROLL
    for (uint32_t j = 0; j < SCAN_ITEMS; j++) {
        uint64_t i = base + (uint64_t)j * bdim + tid;
        tsh[j * bdim + tid] = i < v->n ? v->data[i] : 0;
    }
    TSR_SYNC();
    uint64_t s = 0;
    TSR_UNROLL
    for (uint32_t j = 0; j < SCAN_ITEMS; j++)
        s += tsh[tid * SCAN_ITEMS + j];
    return s;
}

TSR_DEV void scan_reduce_body(const tsr_cuda_scan_view_t *v, uint64_t *sh)
{
    uint64_t *wsh = sh, *tsh = sh + 33;
    for (uint64_t t = TSR_BID; t < v->ntiles; t += TSR_GDIM) {
        uint64_t total;
        scan_block_excl(scan_load_tile(v, t, tsh), wsh, &total);
        if (TSR_TID == 0)
            v->partial[t] = total;
    }
}

/* One block: partial[0..ntiles) -> exclusive offsets, the total after them. */
TSR_DEV void scan_spine_body(const tsr_cuda_scan_view_t *v, uint64_t *sh)
{
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    uint64_t *wsh = sh, carry = 0;
    if (TSR_BID != 0)
        return;
    for (uint64_t base = 0; base < v->ntiles; base += bdim) {
        uint64_t i = base + tid, x = i < v->ntiles ? v->partial[i] : 0, total;
        uint64_t e = scan_block_excl(x, wsh, &total);
        if (i < v->ntiles)
            v->partial[i] = carry + e;
        carry += total;
    }
    if (tid == 0) {
        v->partial[v->ntiles] = carry;
        if (v->total)
            *v->total = carry;
    }
}

TSR_DEV void scan_down_body(const tsr_cuda_scan_view_t *v, uint64_t *sh)
{
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    uint64_t *wsh = sh, *tsh = sh + 33;
    for (uint64_t t = TSR_BID; t < v->ntiles; t += TSR_GDIM) {
        uint64_t total, s = scan_load_tile(v, t, tsh);
        uint64_t run = v->partial[t] + scan_block_excl(s, wsh, &total);
        TSR_UNROLL
        for (uint32_t j = 0; j < SCAN_ITEMS; j++) {
            uint64_t x = tsh[tid * SCAN_ITEMS + j];
            tsh[tid * SCAN_ITEMS + j] = run;
            run += x;
        }
        TSR_SYNC();
        const uint64_t base = t * bdim * SCAN_ITEMS;
        TSR_UNROLL
        for (uint32_t j = 0; j < SCAN_ITEMS; j++) {
            uint64_t i = base + (uint64_t)j * bdim + tid;
            if (i < v->n)
                v->data[i] = tsh[j * bdim + tid];
        }
        TSR_SYNC(); /* tsh is reloaded by the next tile */
    }
}

#endif /* TSR_KERNELS_CUDA_SCAN_CUH */
