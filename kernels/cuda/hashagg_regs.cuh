/*
 * hashagg_regs.cuh - the "regs" update kernel of hash aggregation for very
 * few groups (at most TSR_CUDA_HA_REGS_MAX): per-thread partial states. The
 * table format, the aggregates' semantics and the helpers are hashagg.cuh's;
 * the wrappers are in hashagg.cu and the emulator's kernels_emu.c.
 *
 * Why: with a handful of groups every row of the local kernels ends in an
 * atomic on one of a few shared entries, and local+warp replaces those by
 * warp reductions that cost more instructions than the row's load (measured
 * on an H100: 1.25 G instructions for 64M rows over 8 keys). Here a thread
 * adds its rows to its own partial states with plain loads and stores (no
 * atomics, no shuffles) and the block merges the partials once at the end.
 *
 * Shared memory (tsr_cuda_ha_regs_bytes):
 *
 *   u32 blk_new, u32 ng        the block's claim counter; groups listed
 *   u32 rslot[REGS_MAX]        listed group i: its global slot,
 *   u32 rvm[REGS_MAX]          its key validity mask,
 *   u64 rkeys[nkeys][REGS_MAX] its keys
 *   i64 rmin, u32 rdirect, u32 pad, u8 rmap[REGS_MAP]
 *                              one key column: rmap[k - rmin] is key k's
 *                              listed group (0xFF none), complete when
 *                              rdirect (every listed non-NULL key within
 *                              REGS_MAP of rmin); replaces comparing a
 *                              row's key with every listed one
 *   u64 priv[rgroups][ncols][bdim]
 *                              thread t's partial of listed group g, state
 *                              column c, at ((g * ncols) + c) * bdim + t:
 *                              consecutive threads, consecutive words, so a
 *                              warp's accesses never conflict on a bank
 *
 * Registers cannot be indexed by a group number known only at run time (the
 * compiler would move the array to local memory), so the "registers" are this
 * private region: each word is touched by one thread only until the merge.
 *
 * The list: at the start each block scans the global table (at most
 * HA_R_SCAN slots) for OCC groups, which no block changes during a launch
 * (claims of this launch are ROWREF slots, skipped), and lists the first
 * rgroups it finds. A row whose key is listed (full key and mask compared)
 * goes to its thread's partial; any other row (a group new in this launch,
 * or beyond the list) takes the global kernel's path: find or claim its
 * slot, atomics on the global states, retry list when the table is full. So
 * the kernel is correct for any input and fast when the groups are few and
 * already in the table (the host picks it then).
 *
 * The merge: warp w folds listed groups w, w + warps, ...: each lane
 * combines every 32nd thread's partial, a shuffle butterfly combines the
 * lanes, and lane 0 applies the total to the global states with the same
 * atomics as ha_fold (128-bit SUM(BIGINT) pairs, CAS loops for doubles).
 */
#ifndef TSR_KERNELS_CUDA_HASHAGG_REGS_CUH
#define TSR_KERNELS_CUDA_HASHAGG_REGS_CUH

#include "hashagg.cuh"

#define HA_R_MAX TSR_CUDA_HA_REGS_MAX
#define HA_R_SCAN (1u << 14) /* larger tables are not scanned (many groups: not this kernel) */

/* Adds aggregate a of row `row` (value x) to a thread's partial p (column c
 * at p[c * bdim]). */
TSR_DEV void ha_priv_agg(const tsr_cuda_ha_view_t *v, uint32_t a, uint64_t *p, uint32_t bdim,
                         uint32_t row, uint64_t x)
{
    int op = v->op[a];
    if (op == TSR_CUDA_OP_COUNT_STAR)
        return;
    const uint64_t *bm = v->vvalid[a];
    if (bm && !ha_bit(bm, row)) {
        p[(uint64_t)v->nulls_col[a] * bdim] += 1;
        return;
    }
    if (op == TSR_CUDA_OP_COUNT)
        return;
    uint64_t *pl = p + (uint64_t)v->val_col[a] * bdim;
    uint64_t lo = *pl, hi = 0;
    if (op == TSR_CUDA_OP_SUM_I)
        hi = p[(uint64_t)v->hi_col[a] * bdim];
    ha_combine(op, &lo, &hi, x, (op == TSR_CUDA_OP_SUM_I && (int64_t)x < 0) ? ~0ULL : 0);
    *pl = lo;
    if (op == TSR_CUDA_OP_SUM_I)
        p[(uint64_t)v->hi_col[a] * bdim] = hi;
}

TSR_DEV void ha_priv_row(const tsr_cuda_ha_view_t *v, uint64_t *p, uint32_t bdim, uint32_t row,
                         const uint64_t *pf)
{
    p[0] += 1;
    TSR_UNROLL
    for (uint32_t a = 0; a < HA_PF; a++)
        if (a < v->naggs)
            ha_priv_agg(v, a, p, bdim, row, pf[a]);
    for (uint32_t a = HA_PF; a < v->naggs; a++)
        ha_priv_agg(v, a, p, bdim, row, v->vals[a] ? v->vals[a][row] : 0);
}

/* The listed group of key k/vm, -1 when it is not listed (ng groups). */
TSR_DEV int32_t ha_regs_find(const uint64_t *rkeys, const uint32_t *rvm, uint32_t ng,
                             uint32_t nkeys, const uint64_t *k, uint32_t vm)
{
    int32_t g = -1;
    TSR_UNROLL
    for (uint32_t i = 0; i < HA_R_MAX; i++) {
        if (i < ng) {
            int eq = rvm[i] == vm;
            TSR_UNROLL
            for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
                if (c < nkeys && rkeys[(uint64_t)c * HA_R_MAX + i] != k[c])
                    eq = 0;
            if (eq)
                g = (int32_t)i;
        }
    }
    return g;
}

/* Fills the direct map of a one-column block list (thread 0; ng <= 16). */
TSR_DEV void ha_regs_map(const uint64_t *rkeys, const uint32_t *rvm, uint32_t ng, int64_t *rmin,
                         uint32_t *rdirect, uint8_t *rmap)
{
    int64_t mn = INT64_MAX;
    for (uint32_t i = 0; i < ng; i++)
        if (rvm[i] == 1 && (int64_t)rkeys[i] < mn)
            mn = (int64_t)rkeys[i];
    uint32_t ok = 1;
    for (uint32_t j = 0; j < TSR_CUDA_HA_REGS_MAP; j++)
        rmap[j] = 0xFF;
    for (uint32_t i = 0; i < ng; i++) {
        uint64_t idx = rkeys[i] - (uint64_t)mn; /* >= 0: no wrap */
        if (rvm[i] != 1)
            continue;
        if (idx < TSR_CUDA_HA_REGS_MAP)
            rmap[idx] = (uint8_t)i;
        else
            ok = 0;
    }
    *rmin = mn;
    *rdirect = ok;
}

/* Sum over the block's threads of one partial column q[t] (every lane gets
 * it; called by all 32 lanes). */
TSR_DEV uint64_t ha_regs_sum(const uint64_t *q, uint32_t bdim)
{
    const uint32_t lane = TSR_LANE;
    uint64_t s = 0;
    for (uint32_t t = lane; t < bdim; t += 32)
        s += q[t];
    for (uint32_t m = 16; m; m >>= 1)
        s += tsr_shfl_u64(s, lane ^ m);
    return s;
}

/* One warp folds the block's partials of one listed group (q: column 0 of
 * thread 0) into the global group at g. */
TSR_DEV void ha_regs_merge(const tsr_cuda_ha_view_t *v, const uint64_t *q, uint32_t bdim,
                           int64_t *g)
{
    const uint32_t lane = TSR_LANE;
    const uint64_t ns = v->t.nslots;
    uint64_t n = ha_regs_sum(q, bdim);
    if (lane == 0 && n)
        tsr_atom_add_u64((uint64_t *)g, n);
    for (uint32_t a = 0; a < v->naggs; a++) {
        int op = v->op[a];
        if (op == TSR_CUDA_OP_COUNT_STAR)
            continue;
        uint64_t nulls = ha_regs_sum(q + (uint64_t)v->nulls_col[a] * bdim, bdim);
        if (lane == 0 && nulls)
            tsr_atom_add_u64((uint64_t *)(g + (uint64_t)v->nulls_col[a] * ns), nulls);
        if (op == TSR_CUDA_OP_COUNT)
            continue;
        const uint64_t *ql = q + (uint64_t)v->val_col[a] * bdim;
        const uint64_t *qh = op == TSR_CUDA_OP_SUM_I ? q + (uint64_t)v->hi_col[a] * bdim : NULL;
        const uint64_t ident = (uint64_t)v->identity[v->val_col[a]];
        uint64_t lo = ident, hi = 0;
        for (uint32_t t = lane; t < bdim; t += 32)
            ha_combine(op, &lo, &hi, ql[t], qh ? qh[t] : 0);
        for (uint32_t m = 16; m; m >>= 1) {
            uint64_t olo = tsr_shfl_u64(lo, lane ^ m);
            uint64_t ohi = tsr_shfl_u64(hi, lane ^ m);
            ha_combine(op, &lo, &hi, olo, ohi);
        }
        if (lane == 0 && (lo != ident || hi != 0))
            ha_apply_value(v, a, g, ns, lo, hi, 0);
    }
}

/* Each block takes rows [b*rows_per_block, +rows_per_block) as the local
 * kernels do (see the top of the file). sh: tsr_cuda_ha_regs_bytes(
 * v->rgroups, nkeys, ncols, bdim) bytes. */
TSR_DEV void ha_regs_body(const tsr_cuda_ha_view_t *v, uint64_t *sh, uint32_t nkeys)
{
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM, ncols = v->ncols;
    const uint32_t rg = v->rgroups < HA_R_MAX ? v->rgroups : HA_R_MAX;
    uint32_t *blk_new = (uint32_t *)sh, *ngp = blk_new + 1;
    uint32_t *rslot = (uint32_t *)(sh + 1), *rvm = rslot + HA_R_MAX;
    uint64_t *rkeys = sh + 1 + HA_R_MAX; /* 2 * HA_R_MAX u32 = HA_R_MAX u64 */
    int64_t *rminp = (int64_t *)(rkeys + (uint64_t)HA_R_MAX * nkeys);
    uint32_t *rdirp = (uint32_t *)(rminp + 1);
    uint8_t *rmap = (uint8_t *)(rminp + 2);
    uint64_t *priv = (uint64_t *)(rmap + TSR_CUDA_HA_REGS_MAP);
    for (uint32_t g = 0; g < rg; g++)
        for (uint32_t c = 0; c < ncols; c++)
            priv[((uint64_t)g * ncols + c) * bdim + tid] = (uint64_t)v->identity[c];
    if (tid == 0) {
        *blk_new = 0;
        *ngp = 0;
    }
    TSR_SYNC();
    const uint64_t ns = v->t.nslots;
    if (ns <= HA_R_SCAN) {
        for (uint64_t s = tid; s < ns; s += bdim) {
            uint64_t w = tsr_ld_volatile_u64(v->t.slots + s);
            if ((w & HA_ST_MASK) != HA_ST_OCC)
                continue; /* empty, or claimed in this launch (its key is not in gkeys yet) */
            uint32_t i = tsr_atom_add_u32(ngp, 1);
            if (i >= rg)
                continue;
            rslot[i] = (uint32_t)s;
            rvm[i] = v->t.gvalid[s];
            for (uint32_t c = 0; c < nkeys; c++)
                rkeys[(uint64_t)c * HA_R_MAX + i] = v->t.gkeys[(uint64_t)c * ns + s];
        }
    }
    TSR_SYNC();
    const uint32_t ng = *ngp < rg ? *ngp : rg;
    if (tid == 0) {
        *rdirp = 0;
        *rminp = 0;
        if (nkeys == 1)
            ha_regs_map(rkeys, rvm, ng, rminp, rdirp, rmap);
    }
    TSR_SYNC();
    const int direct = *rdirp != 0; /* block-uniform */
    const uint64_t rmin = (uint64_t)*rminp;

    const uint32_t begin = TSR_BID * v->rows_per_block;
    const uint32_t end = begin >= v->n                      ? begin
                         : v->n - begin < v->rows_per_block ? v->n
                                                            : begin + v->rows_per_block;
    uint64_t *mine = priv + tid;
    for (uint32_t it = begin; it < end; it += bdim * HA_U) {
        uint32_t row[HA_U];
        int act[HA_U];
        uint64_t k0[HA_U], pf[HA_U][HA_PF];
        TSR_SYNC_WARP(); /* whole-warp loads */
        TSR_UNROLL
        for (uint32_t u = 0; u < HA_U; u++) {
            row[u] = it + u * bdim + tid;
            act[u] = row[u] < end;
            ha_prefetch(v, nkeys, row[u], act[u], &k0[u], pf[u]);
        }
        TSR_UNROLL
        for (uint32_t u = 0; u < HA_U; u++) {
            uint64_t k[TSR_CUDA_HA_MAX_KEYS] = {0};
            uint32_t vm = 0;
            int32_t g = -1;
            if (act[u]) {
                vm = ha_key(v, nkeys, row[u], k0[u], k);
                if (direct && vm == 1) {
                    uint64_t idx = k[0] - rmin;
                    uint32_t m = idx < TSR_CUDA_HA_REGS_MAP ? rmap[idx] : 0xFFu;
                    g = m == 0xFFu ? -1 : (int32_t)m;
                } else {
                    g = ha_regs_find(rkeys, rvm, ng, nkeys, k, vm);
                }
                if (g >= 0)
                    ha_priv_row(v, mine + (uint64_t)g * ncols * bdim, bdim, row[u], pf[u]);
            }
            TSR_SYNC_WARP(); /* the rare unlisted rows below diverge */
            if (act[u] && g < 0) {
                uint64_t h = ha_hash(k, vm, nkeys);
                int64_t s = ha_find_slot(v, nkeys, row[u], k, vm, h, blk_new);
                if (s >= 0)
                    ha_apply_row(v, v->t.states + s, ns, row[u], pf[u], 0);
            }
        }
    }
    TSR_SYNC();
    const uint32_t nw = bdim / 32;
    for (uint32_t g = tid / 32; g < ng; g += nw) /* warp-uniform */
        ha_regs_merge(v, priv + (uint64_t)g * ncols * bdim, bdim, v->t.states + rslot[g]);
    ha_block_done(v, blk_new);
}

#endif /* TSR_KERNELS_CUDA_HASHAGG_REGS_CUH */
