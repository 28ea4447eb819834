/*
 * hashjoin.cuh - hash join kernel bodies (common C / CUDA C++ subset; see
 * compat.cuh). The __global__ wrappers are in hashjoin.cu, the host side in
 * engine/device/hashjoin_cuda.c, the semantics in engine/device/hashjoin.h.
 *
 * The algorithm and table are those of kernels/opencl/hashjoin.cl, so every
 * backend hashes and matches alike: keys of `width` bytes widened to 64
 * bits, slot = tsr_hash_u64(key) & (nslots - 1), linear probing in a table
 * of nslots >= 2 * build rows (every probe loop ends within nslots steps).
 *
 *   build   insert: a row claims an empty slot by CAS of 1 + its own row
 *           number into ref[] (its key is already in bkeys, so others
 *           compare against it at once: nobody waits for anybody), and
 *           counts itself in cnt[slot]; scan(cnt) -> start of each slot;
 *           scatter: each row takes the next place of its slot (atomic
 *           cursor); finish: table[s] = (key, start | count << 32), one
 *           16-byte entry a probe reads with one load
 *   probe   per probe row: count and first match -> offsets[], pstart[];
 *           scan(offsets) -> output positions (count then write: exact)
 *   write   per probe row: its pairs inside the output window [win, +wcap)
 *
 * GPU specifics: grid-stride loops over warp-aligned ranges; the distinct
 * counter is bumped once per warp (ballot + popcount), not once per row;
 * keys and table entries are read with 8- and 16-byte loads of neighbouring
 * memory (coalesced rows, one sector per probe step).
 */
#ifndef TSR_KERNELS_CUDA_HASHJOIN_CUH
#define TSR_KERNELS_CUDA_HASHJOIN_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "hash.cuh"

#define JOIN_NONE 0xFFFFFFFFu
#define JOIN_CNT_DISTINCT 0
#define JOIN_CNT_FAIL 1

TSR_DEV uint64_t join_key(const void *keys, uint32_t width, uint64_t i)
{
    return width == 8 ? ((const uint64_t *)keys)[i] : (uint64_t)((const uint32_t *)keys)[i];
}

TSR_DEV int join_valid(const uint64_t *valid, uint64_t i)
{
    return !valid || ((valid[i >> 6] >> (i & 63)) & 1u);
}

TSR_DEV void join_insert_body(const tsr_cuda_join_view_t *v)
{
    const uint64_t mask = v->nslots - 1, step = (uint64_t)TSR_GDIM * TSR_BDIM;
    /* warp-aligned grid stride: the lanes of a warp run the same trips, so
     * the ballots below see all 32 */
    for (uint64_t b = ((uint64_t)TSR_BID * TSR_BDIM + TSR_TID) & ~(uint64_t)31; b < v->nb;
         b += step) {
        const uint64_t i = b + TSR_LANE;
        const int act = i < v->nb;
        uint32_t slot = JOIN_NONE;
        int claimed = 0, failed = 0;
        if (act && join_valid(v->bvalid, i)) {
            uint64_t key = join_key(v->bkeys, v->width, i);
            uint64_t pos = tsr_k_hash_u64(key) & mask;
            for (uint64_t p = 0; p < v->nslots; p++) {
                uint32_t r = tsr_ld_volatile_u32(v->ref + pos);
                if (r == 0) {
                    r = tsr_atom_cas_u32(v->ref + pos, 0u, (uint32_t)i + 1);
                    if (r == 0) {
                        claimed = 1;
                        slot = (uint32_t)pos;
                        break;
                    }
                }
                if (join_key(v->bkeys, v->width, r - 1) == key) {
                    slot = (uint32_t)pos;
                    break;
                }
                pos = (pos + 1) & mask;
            }
            if (slot != JOIN_NONE)
                tsr_atom_add_u64(v->cnt + slot, 1);
            else
                failed = 1;
        }
        if (act)
            v->row_slot[i] = slot;
        uint32_t nc = tsr_popc(tsr_ballot(claimed)), nf = tsr_popc(tsr_ballot(failed));
        if (TSR_LANE == 0 && nc)
            tsr_atom_add_u32(v->counters + JOIN_CNT_DISTINCT, nc);
        if (TSR_LANE == 0 && nf)
            tsr_atom_add_u32(v->counters + JOIN_CNT_FAIL, nf);
    }
}

TSR_DEV void join_scatter_body(const tsr_cuda_join_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; i < v->nb; i += step) {
        uint32_t s = v->row_slot[i];
        if (s == JOIN_NONE)
            continue;
        uint64_t at = v->cnt[s] + tsr_atom_add_u64(v->cursor + s, 1);
        v->rows[at] = (uint32_t)i;
    }
}

/* cnt[] holds the slots' starts (exclusive scan), cnt[nslots] the total. */
TSR_DEV void join_finish_body(const tsr_cuda_join_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t s = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; s < v->nslots; s += step) {
        uint32_t r = v->ref[s];
        uint64_t k = 0, y = 0;
        if (r != 0) {
            k = join_key(v->bkeys, v->width, r - 1);
            y = v->cnt[s] | ((v->cnt[s + 1] - v->cnt[s]) << 32);
        }
        v->table[2 * s] = k;
        v->table[2 * s + 1] = y;
    }
}

TSR_DEV void join_probe_body(const tsr_cuda_join_view_t *v)
{
    const uint64_t mask = v->nslots - 1, step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t j = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; j < v->np; j += step) {
        uint32_t first = 0;
        uint64_t c = 0;
        if (join_valid(v->pvalid, j)) {
            uint64_t key = join_key(v->pkeys, v->width, j);
            uint64_t pos = tsr_k_hash_u64(key) & mask;
            for (uint64_t p = 0; p < v->nslots; p++) {
                uint64_t k, y;
                tsr_ld_u64x2(v->table + 2 * pos, &k, &y);
                if (y == 0)
                    break;
                if (k == key) {
                    first = (uint32_t)y;
                    c = y >> 32;
                    break;
                }
                pos = (pos + 1) & mask;
            }
        }
        v->pstart[v->pbase + j] = first;
        v->offsets[v->pbase + j] = c;
    }
}

TSR_DEV void join_write_body(const tsr_cuda_join_view_t *v)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM, wend = v->win + v->wcap;
    for (uint64_t j = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; j < v->nprobe; j += step) {
        uint64_t o = v->offsets[j], e = v->offsets[j + 1];
        uint64_t lo = o > v->win ? o : v->win, hi = e < wend ? e : wend;
        if (lo >= hi)
            continue;
        uint64_t b = v->pstart[j] + (lo - o);
        for (uint64_t t = lo; t < hi; t++) {
            v->out_probe[t - v->win] = (uint32_t)j;
            v->out_build[t - v->win] = v->rows[b + (t - lo)];
        }
    }
}

#endif /* TSR_KERNELS_CUDA_HASHJOIN_CUH */
