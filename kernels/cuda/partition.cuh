/*
 * partition.cuh - hash partitioning kernel bodies (common C / CUDA C++
 * subset; see compat.cuh). The __global__ wrappers are in partition.cu, the
 * host side in engine/device/partition_cuda.c, the partition function and
 * output format in engine/device/partition.h (the same on every backend):
 *
 *   h = hashagg's key hash (or the caller's hashes), partition = (h * P) >> 64
 *
 * Stable: rows keep their input order within a partition, so every backend
 * writes the same output. The launch's rows are cut into runs of `run`
 * consecutive rows, one warp per run (a column of a partition-major count
 * matrix cnt[p * nruns + r]):
 *
 *   hist      the warp walks its run 32 rows at a time; lanes with the same
 *             partition are grouped with match_any and their leader adds
 *             the group's size (warp-aggregated: one update per distinct
 *             partition per 32 rows, no atomics: only this warp touches the
 *             column). Counters sit in shared memory (P words per warp)
 *             when they fit, else directly in the matrix column
 *   scan      (scan.cuh) over the matrix -> each run's first position in
 *             each partition, in (partition, run) order, i.e. stable
 *   offsets   offsets[p] = cnt[p * nruns], offsets[P] = n
 *   scatter   the same walk: each lane's position is its group's cursor
 *             plus its rank among the group's lower lanes; the leader moves
 *             the cursor on. Row numbers (and wanted keys) are written there.
 *
 * Warps read their run's keys coalesced (32 neighbouring rows per step);
 * the writes of one step go to at most 32 places. __syncwarp orders a
 * cursor's update by one lane before its read by another in the next step.
 */
#ifndef TSR_KERNELS_CUDA_PARTITION_CUH
#define TSR_KERNELS_CUDA_PARTITION_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "hash.cuh"

#define PART_NONE 0xFFFFFFFFu

TSR_DEV uint64_t part_hash(const tsr_cuda_part_view_t *v, uint64_t i, uint32_t nkeys)
{
    if (v->hashed)
        return v->keys[0][i];
    uint64_t h = 0;
    for (uint32_t c = 0; c < nkeys; c++) {
        const uint64_t *bm = v->kvalid[c];
        int valid = !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
        uint64_t hk = valid ? tsr_k_hash_u64(v->keys[c][i]) : TSR_K_NULL_HASH;
        h = c == 0 ? hk : tsr_k_hash_combine(h, hk);
    }
    return h;
}

/* The partition of launch row i, PART_NONE when inactive. */
TSR_DEV uint32_t part_of(const tsr_cuda_part_view_t *v, uint64_t i, int act, uint32_t nkeys)
{
    return act ? (uint32_t)tsr_mulhi_u64(part_hash(v, i, nkeys), v->nparts) : PART_NONE;
}

TSR_DEV void part_hist_body(const tsr_cuda_part_view_t *v, uint32_t *sh, uint32_t nkeys)
{
    const uint32_t lane = TSR_LANE, wib = TSR_TID >> 5, wpb = TSR_BDIM >> 5;
    const uint64_t P = v->nparts;
    uint32_t *hist = v->shared ? sh + (uint64_t)wib * P : (uint32_t *)0;
    for (uint32_t r = TSR_BID * wpb + wib; r < v->nruns; r += TSR_GDIM * wpb) {
        const uint64_t start = (uint64_t)r * v->run;
        const uint64_t end = start + v->run < v->n ? start + v->run : v->n;
        if (hist)
            for (uint64_t p = lane; p < P; p += 32)
                hist[p] = 0;
        tsr_syncwarp();
        for (uint64_t b = start; b < end; b += 32) {
            const uint64_t i = b + lane;
            const int act = i < end;
            const uint32_t p = part_of(v, i, act, nkeys);
            const uint32_t m = tsr_match_any(p);
            if (act && lane == tsr_ffs(m) - 1) {
                if (hist)
                    hist[p] += tsr_popc(m);
                else
                    v->cnt[(uint64_t)p * v->nruns + r] += tsr_popc(m);
            }
            tsr_syncwarp();
        }
        if (hist)
            for (uint64_t p = lane; p < P; p += 32)
                v->cnt[p * v->nruns + r] = hist[p];
        tsr_syncwarp();
    }
}

TSR_DEV void part_scatter_body(const tsr_cuda_part_view_t *v, uint32_t *sh, uint32_t nkeys)
{
    const uint32_t lane = TSR_LANE, wib = TSR_TID >> 5, wpb = TSR_BDIM >> 5;
    const uint64_t P = v->nparts;
    const uint32_t below = (1u << lane) - 1u;
    uint32_t *cur = v->shared ? sh + (uint64_t)wib * P : (uint32_t *)0;
    for (uint32_t r = TSR_BID * wpb + wib; r < v->nruns; r += TSR_GDIM * wpb) {
        const uint64_t start = (uint64_t)r * v->run;
        const uint64_t end = start + v->run < v->n ? start + v->run : v->n;
        if (cur)
            for (uint64_t p = lane; p < P; p += 32)
                cur[p] = (uint32_t)v->cnt[p * v->nruns + r];
        tsr_syncwarp();
        for (uint64_t b = start; b < end; b += 32) {
            const uint64_t i = b + lane;
            const int act = i < end;
            const uint32_t p = part_of(v, i, act, nkeys);
            const uint32_t m = tsr_match_any(p);
            uint64_t base = 0;
            if (act)
                base = cur ? cur[p] : v->cnt[(uint64_t)p * v->nruns + r];
            tsr_syncwarp(); /* every lane has read its cursor */
            if (act && lane == tsr_ffs(m) - 1) {
                if (cur)
                    cur[p] = (uint32_t)(base + tsr_popc(m));
                else
                    v->cnt[(uint64_t)p * v->nruns + r] = base + tsr_popc(m);
            }
            if (act) {
                const uint64_t pos = base + tsr_popc(m & below);
                v->rows_out[pos] = v->row_base + (uint32_t)i;
                for (uint32_t c = 0; c < nkeys; c++)
                    if (v->keys_out[c])
                        v->keys_out[c][pos] = v->keys[c][i];
            }
            tsr_syncwarp(); /* the cursor's update is seen by the next step */
        }
    }
}

TSR_DEV void part_offsets_body(const tsr_cuda_part_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t p = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; p <= v->nparts; p += step)
        v->offsets[p] = p < v->nparts ? v->cnt[p * v->nruns] : v->n;
}

#endif /* TSR_KERNELS_CUDA_PARTITION_CUH */
