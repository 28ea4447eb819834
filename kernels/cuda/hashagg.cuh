/*
 * hashagg.cuh - hash aggregation kernel bodies (common C / CUDA C++ subset;
 * see compat.cuh), built from the helpers of hashagg_ops.cuh. The __global__
 * wrappers and launchers are in hashagg.cu,
 * the host side in engine/device/hashagg_cuda.c, the semantics in
 * engine/device/hashagg.h. The algorithm and the table format are those of
 * kernels/opencl/hashagg.cl, so every backend groups and hashes alike.
 *
 * The global group table (device memory, slot-indexed struct of arrays; a
 * group lives in the slot claimed for it, so its states need no indirection):
 *
 *   slots[s]         0              empty
 *                    01|frag|row    ROWREF: claimed in this launch by input
 *                                   row `row`, whose key is the group's key;
 *                                   frag = bits 32..61 of the key's hash
 *                    10|hash62      OCC: a group whose key is in gkeys
 *   gkeys[k*nslots+s], gvalid[s] (bit k: key column k not NULL), ghash[s]
 *   states[c*nslots+s]              state column c (hashagg.h's layout)
 *
 * A composite key is too wide for one compare-and-swap, so a row claims an
 * empty slot by CAS-ing in a reference to itself: the key it refers to sits,
 * immutable, in the input, so every other thread can compare against it at
 * once and nobody waits for anybody. The persist kernel turns the launch's
 * ROWREF slots into OCC groups afterwards (keys copied into gkeys).
 *
 * Full tables: every probe loop is bounded (probe_limit). A row that finds
 * neither its group nor an empty slot touches nothing and is appended to
 * `retry` (counters[FAIL]); the host grows the table (rehash kernel) and
 * reruns only those rows. No row is lost and nothing loops forever.
 *
 * New slots are listed per block: block b writes the slots it claims to
 * newslots[b*region ...] counted by a shared-memory counter, then stores its
 * count in newcount[b] and adds it to counters[NEW] once. (One global
 * counter bumped by every claiming row would serialise a distinct-key
 * aggregation on a single address.)
 *
 * Aggregates: 64-bit atomics. SUM(INT64) keeps a 128-bit sum in two words:
 * atomicAdd on the low word returns the old value, which tells the carry out
 * of this very addition; the carry plus the sign extension go to the high
 * word, so the pair is the exact sum in any order (overflow is judged once,
 * on the host, from the final pair). SUM(DOUBLE) is atomicAdd(double);
 * MIN/MAX of doubles are CAS loops on the bit pattern (NaN above numbers).
 *
 * Three update kernels:
 *  - global: one thread per row, atomics on the global states (many groups);
 *  - local: each block folds a contiguous run of rows into a shared-memory
 *    table first, one atomic per group and column at the end (few groups);
 *  - local+warp: the same, and the lanes of a warp whose rows share a group
 *    combine their values with shuffles before one lane updates the shared
 *    entry (very few groups, where a warp's lanes would all hit one address).
 *  - local+coop: the same table, probed warp-cooperatively: the warp's lanes
 *    are grouped by key first (match on the hash, confirmed on the key), one
 *    leader per distinct key probes in a converged loop and claims, and the
 *    group's rows go to the entry combined (as local+warp) when some key
 *    repeats in the warp, else each lane updates its entry itself.
 *  - regs (hashagg_regs.cuh): very few groups; per-thread partial states.
 *
 * The shared-memory table is keyed by the key tuple itself, so a row whose
 * group is already in it never touches the global table:
 *
 *   tag[e]   0 empty, 1 being written, READY|hash when usable
 *   lkeys[k*lslots+e], lvm[e] (validity mask, 0xFFFFFFFF before use),
 *   lgs[e]   the group's global slot, resolved before the entry is claimed
 *   lst[c*lslots+e] the entry's states
 *
 * A thread that claims an entry resolves the global slot first (so a row that
 * must be retried never enters the local table), CASes the tag 0 -> 1, writes
 * key, mask and slot, fences, and publishes READY|hash. Readers that see 1 spin
 * (bounded; on timeout the row updates the global states directly). Readers
 * compare the full key, so a stale read can only cause a second entry for the
 * same group, which is harmless: entries fold into the global states by slot.
 * A row whose key finds no entry within HA_L_PROBES updates the global states.
 *
 * SUM(BIGINT) in a block table is split, not 128-bit: the entry's low column
 * L adds each amount's low 32 bits (unsigned), its high column H the rest
 * (arithmetic shift); the sum is H * 2^32 + L, turned into the global table's
 * hi:lo pair when the entry is folded (ha_fold). Neither column can overflow:
 * a launch has fewer than 2^32 rows, each adding under 2^32 to L and at most
 * 2^31 to |H|. Counts and L take native 32-bit shared atomics (a 64-bit
 * shared add is a compare-and-swap loop): a count in its word's low half, L
 * in its low half with the carry, told by the old value, into its high half
 * (ha_local_count, ha_sum_split).
 *
 * With one key column the block table also has a direct map (dmap, lslots
 * u32 after the counter and the least key): ha_direct_build.
 */
#ifndef TSR_KERNELS_CUDA_HASHAGG_CUH
#define TSR_KERNELS_CUDA_HASHAGG_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "hash.cuh"
#include "hashagg_ops.cuh"

/* ---- kernel bodies ------------------------------------------------------------------ */

/* Publishes this block's count of claimed slots (after a barrier). */
TSR_DEV void ha_block_done(const tsr_cuda_ha_view_t *v, uint32_t *blk_new)
{
    TSR_SYNC();
    if (TSR_TID == 0) {
        uint32_t n = *blk_new;
        v->newcount[TSR_BID] = n;
        if (n)
            tsr_atom_add_u32(v->counters + TSR_CUDA_CNT_NEW, n);
    }
}

/* One thread per row (grid-stride), atomics on the global states.
 * sh: 8 bytes of dynamic shared memory (the block's claim counter). */
TSR_DEV void ha_global_body(const tsr_cuda_ha_view_t *v, uint64_t *sh, uint32_t nkeys)
{
    uint32_t *blk_new = (uint32_t *)sh;
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    if (tid == 0)
        *blk_new = 0;
    TSR_SYNC();
    const uint32_t step = TSR_GDIM * bdim * HA_U;
    for (uint32_t it = TSR_BID * bdim * HA_U; it < v->n; it += step) {
        uint32_t row[HA_U];
        int act[HA_U];
        uint64_t k0[HA_U], pf[HA_U][HA_PF];
        TSR_SYNC_WARP(); /* whole-warp loads (the trip count is block-uniform) */
        TSR_UNROLL
        for (uint32_t u = 0; u < HA_U; u++) {
            uint32_t j = it + u * bdim + tid;
            act[u] = j < v->n;
            row[u] = act[u] ? (v->sel ? v->sel[j] : j) : 0;
            ha_prefetch(v, nkeys, row[u], act[u], &k0[u], pf[u]);
        }
        TSR_NOUNROLL
        for (uint32_t u = 0; u < HA_U; u++) { /* row u is at index 0 (ha_rows_shift) */
            int64_t s = -1;
            if (act[0]) {
                uint64_t k[TSR_CUDA_HA_MAX_KEYS];
                uint32_t vm = ha_key(v, nkeys, row[0], k0[0], k);
                uint64_t h = ha_hash(k, vm, nkeys);
                s = ha_find_slot(v, nkeys, row[0], k, vm, h, blk_new);
            }
            TSR_SYNC_WARP(); /* lanes leave the probe loop at different trips */
            if (s >= 0)
                ha_apply_row(v, v->t.states + s, v->t.nslots, row[0], pf[0], 0);
            ha_rows_shift(row, act, k0, pf);
        }
    }
    ha_block_done(v, blk_new);
}

/* The entry of key k/vm (hash h) in the block's table, claiming one if
 * needed (see the top of the file); HA_L_GLOBAL with *gs resolved (or -1,
 * unresolved) when there is none, HA_L_RETRIED when the row went to retry. */
TSR_DEV int32_t ha_local_find(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint64_t *tag,
                              uint64_t *lkeys, uint32_t *lgs, uint32_t *lvm, uint32_t row,
                              const uint64_t *k, uint32_t vm, uint64_t h, int64_t *gs,
                              uint32_t *blk_new)
{
    const uint32_t ls = v->lslots, lmask = ls - 1;
    const uint64_t want = HA_L_READY | h;
    uint32_t pos = (uint32_t)(h >> 40) & lmask; /* other bits than the global table's */
    for (uint32_t p = 0; p < HA_L_PROBES; p++) {
        uint64_t cur = tsr_ld_volatile_u64(tag + pos);
        if (cur == HA_L_EMPTY) {
            if (*gs < 0) {
                *gs = ha_find_slot(v, nkeys, row, k, vm, h, blk_new);
                if (*gs < 0)
                    return HA_L_RETRIED;
            }
            cur = tsr_atom_cas_u64(tag + pos, HA_L_EMPTY, HA_L_BUSY);
            if (cur == HA_L_EMPTY) {
                TSR_UNROLL
                for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
                    if (c < nkeys)
                        lkeys[(uint64_t)c * ls + pos] = k[c];
                lvm[pos] = vm;
                lgs[pos] = (uint32_t)*gs;
                TSR_FENCE_BLOCK(); /* key, mask, slot before the tag */
                tsr_st_volatile_u64(tag + pos, want);
                return (int32_t)pos;
            }
        }
        if (cur == HA_L_BUSY) {
            for (uint32_t s = 0; s < HA_L_SPIN && cur == HA_L_BUSY; s++) {
                TSR_SPIN_PAUSE();
                cur = tsr_ld_volatile_u64(tag + pos);
            }
            if (cur == HA_L_BUSY)
                return HA_L_GLOBAL;
        }
        if (cur == want && tsr_ld_volatile_u32(lvm + pos) == vm) {
            int eq = 1;
            TSR_UNROLL
            for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
                if (c < nkeys && tsr_ld_volatile_u64(lkeys + (uint64_t)c * ls + pos) != k[c])
                    eq = 0;
            if (eq)
                return (int32_t)pos;
        }
        pos = (pos + 1) & lmask;
    }
    return HA_L_GLOBAL;
}

/* The steady state of ha_local_find for the lanes with probe set, in a loop
 * whose trip count is the warp's (all 32 lanes call it): each trip, every
 * lane still searching checks one entry, so the lanes stay converged. An
 * entry that is empty or busy, or no match within HA_L_PROBES, answers
 * HA_L_SLOW: the lane then takes ha_local_find (rare once the block's table
 * holds its groups). */
TSR_DEV int32_t ha_coop_probe(const tsr_cuda_ha_view_t *v, uint32_t nkeys, const uint64_t *tag,
                              const uint64_t *lkeys, const uint32_t *lvm, const uint64_t *k,
                              uint32_t vm, uint64_t h, int probe)
{
    const uint32_t ls = v->lslots, lmask = ls - 1;
    const uint64_t want = HA_L_READY | h;
    uint32_t pos = (uint32_t)(h >> 40) & lmask; /* as ha_local_find */
    int32_t res = probe ? HA_L_PENDING : HA_L_NONE;
    for (uint32_t p = 0; p < HA_L_PROBES; p++) {
        if (!tsr_any(res == HA_L_PENDING))
            break;
        if (res == HA_L_PENDING) {
            uint64_t cur = tsr_ld_volatile_u64(tag + pos);
            if (cur == want && tsr_ld_volatile_u32(lvm + pos) == vm) {
                int eq = 1;
                TSR_UNROLL
                for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
                    if (c < nkeys && tsr_ld_volatile_u64(lkeys + (uint64_t)c * ls + pos) != k[c])
                        eq = 0;
                if (eq)
                    res = (int32_t)pos;
            } else if (cur == HA_L_EMPTY || cur == HA_L_BUSY) {
                res = HA_L_SLOW;
            }
            if (res == HA_L_PENDING)
                pos = (pos + 1) & lmask;
        }
    }
    return res == HA_L_PENDING ? HA_L_SLOW : res;
}

/* One row per lane (act: the lane has one) into the block's table,
 * warp-cooperatively (local+coop; all 32 lanes call it). Lanes are grouped
 * by hash and the group confirmed against its leader's key (a lane whose key
 * differs despite the hash forms a group of its own), so a group is exactly
 * the lanes of one key; its leader finds or claims the entry and the others
 * take the answer by shuffle. A row that had to be retried takes its whole
 * group with it: each member appends its own row. */
TSR_DEV void ha_coop_row(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint64_t *tag,
                         uint64_t *lkeys, uint32_t *lgs, uint32_t *lvm, int64_t *lst,
                         uint32_t *blk_new, int act, uint32_t row, uint64_t k0, const uint64_t *pf)
{
    const uint32_t lane = TSR_LANE, ls = v->lslots;
    uint64_t k[TSR_CUDA_HA_MAX_KEYS] = {0};
    uint32_t vm = 0;
    uint64_t h = 0;
    if (act) {
        vm = ha_key(v, nkeys, row, k0, k);
        h = ha_hash(k, vm, nkeys);
    }
    const uint32_t actm = tsr_ballot(act);
    uint32_t peers = tsr_match_any_u64(h);
    peers = act ? peers & actm : 1u << lane;
    uint32_t lead = tsr_ffs(peers) - 1;
    int diff = (uint32_t)tsr_shfl_u64(vm, lead) != vm;
    TSR_UNROLL
    for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
        if (c < nkeys && tsr_shfl_u64(k[c], lead) != k[c])
            diff = 1;
    const uint32_t odd = tsr_ballot(act && diff); /* 64-bit hash collisions in the warp */
    peers = (act && diff) ? 1u << lane : peers & ~odd;
    lead = tsr_ffs(peers) - 1;
    const int leader = act && lead == lane;

    int32_t li = ha_coop_probe(v, nkeys, tag, lkeys, lvm, k, vm, h, leader);
    int64_t gs = -1;
    if (li == HA_L_SLOW) {
        li = ha_local_find(v, nkeys, tag, lkeys, lgs, lvm, row, k, vm, h, &gs, blk_new);
        if (li == HA_L_GLOBAL && gs < 0) {
            gs = ha_find_slot(v, nkeys, row, k, vm, h, blk_new);
            if (gs < 0)
                li = HA_L_RETRIED;
        }
    }
    li = (int32_t)(uint32_t)tsr_shfl_u64((uint32_t)li, lead);
    gs = (int64_t)tsr_shfl_u64((uint64_t)gs, lead);
    if (act && !leader && li == HA_L_RETRIED) /* the leader's row is on the list already */
        v->retry[tsr_atom_add_u32(v->counters + TSR_CUDA_CNT_FAIL, 1)] = row;
    const int ok = act && li != HA_L_RETRIED;
    if (tsr_any(act && (peers & (peers - 1u)) != 0)) {
        ha_target_t t = {lst, ls, li, gs};
        ha_warp_apply(v, ok, peers, &t, row, pf);
    } else {
        /* every key once in the warp: nothing to combine, no reductions */
        TSR_SYNC_WARP();
        if (ok && li >= 0)
            ha_apply_row(v, lst + li, ls, row, pf, 1);
        else if (ok)
            ha_apply_row(v, v->t.states + gs, v->t.nslots, row, pf, 0);
    }
}

/* Folds a block's entry (states at l, stride ls; SUM_I split) into the
 * global group at g. */
TSR_DEV void ha_fold(const tsr_cuda_ha_view_t *v, const int64_t *l, uint64_t ls, int64_t *g)
{
    const uint64_t ns = v->t.nslots;
    if (l[0])
        tsr_atom_add_u64((uint64_t *)g, (uint64_t)l[0]);
    for (uint32_t a = 0; a < v->naggs; a++) {
        int op = v->op[a];
        if (op == TSR_CUDA_OP_COUNT_STAR)
            continue;
        int64_t nulls = l[(uint64_t)v->nulls_col[a] * ls];
        if (nulls)
            tsr_atom_add_u64((uint64_t *)(g + (uint64_t)v->nulls_col[a] * ns), (uint64_t)nulls);
        if (op == TSR_CUDA_OP_COUNT)
            continue;
        uint64_t lo = (uint64_t)l[(uint64_t)v->val_col[a] * ls];
        uint64_t hi = 0;
        if (op == TSR_CUDA_OP_SUM_I) {
            /* split -> 128 bits: hi:lo = H * 2^32 + L (H signed, L unsigned) */
            uint64_t L = lo, H = (uint64_t)l[(uint64_t)v->hi_col[a] * ls];
            lo = (H << 32) + L;
            hi = (uint64_t)((int64_t)H >> 32) + (lo < L ? 1u : 0u);
        }
        if (lo == (uint64_t)v->identity[v->val_col[a]] && hi == 0)
            continue; /* nothing to fold */
        ha_apply_value(v, a, g, ns, lo, hi, 0);
    }
}

/* The direct map of a one-key block table (ha_local_body): entries for the
 * groups already in the global table are claimed before any row, and
 * dmap[k - kmin] (kmin: the least such key) names key k's entry, so a row of
 * such a group finds its entry with one shared load instead of hashing and
 * probing (most of the local kernel's instructions and its lane divergence:
 * lanes leave a probe loop at different trips). Keys further than lslots
 * from kmin, NULL keys and new groups take the probe. Returns kmin; called by
 * every thread of the block (barriers). */
TSR_DEV uint64_t ha_direct_build(const tsr_cuda_ha_view_t *v, uint64_t *tag, uint64_t *lkeys,
                                 uint32_t *lgs, uint32_t *lvm, int64_t *dmin, uint32_t *dmap,
                                 uint32_t *blk_new)
{
    const uint64_t ns = v->t.nslots, ls = v->lslots;
    const uint32_t tid = TSR_TID, bdim = TSR_BDIM;
    /* OCC groups were written by earlier launches: immutable during this one */
    for (uint64_t s = tid; s < ns; s += bdim)
        if ((tsr_ld_volatile_u64(v->t.slots + s) & HA_ST_MASK) == HA_ST_OCC && v->t.gvalid[s] == 1)
            tsr_atom_min_i64(dmin, (int64_t)v->t.gkeys[s]);
    TSR_SYNC();
    const uint64_t kmin = (uint64_t)*dmin;
    for (uint64_t s = tid; s < ns; s += bdim) {
        if ((tsr_ld_volatile_u64(v->t.slots + s) & HA_ST_MASK) != HA_ST_OCC || v->t.gvalid[s] != 1)
            continue;
        uint64_t k = v->t.gkeys[s], idx = k - kmin; /* k >= kmin: no wrap */
        if (idx >= ls)
            continue;
        int64_t gs = (int64_t)s; /* resolved: ha_local_find claims no global slot */
        int32_t li =
            ha_local_find(v, 1, tag, lkeys, lgs, lvm, 0, &k, 1u, v->t.ghash[s], &gs, blk_new);
        if (li >= 0)
            dmap[idx] = (uint32_t)li;
    }
    TSR_SYNC();
    return kmin;
}

/* Row `row`'s entry by the direct map (k0: its raw key), HA_L_NONE when the
 * map has none (the row probes). */
TSR_DEV int32_t ha_direct_find(const tsr_cuda_ha_view_t *v, const uint32_t *dmap, uint32_t ls,
                               uint64_t kmin, uint32_t row, uint64_t k0)
{
    const uint64_t *bm = v->kvalid[0];
    uint64_t idx = k0 - kmin;
    if (idx >= ls || (bm && !ha_bit(bm, row)))
        return HA_L_NONE;
    uint32_t li = dmap[idx];
    return li == HA_D_NONE ? HA_L_NONE : (int32_t)li;
}

/* One row of the local kernels' lane and warp modes (ha_local_body): its
 * entry by the direct map or a probe (a claim if new; the global slot when
 * the block table has no room), then its aggregates. All 32 lanes call it
 * (warp collectives); act: this lane has a row. */
TSR_DEV void ha_local_row(const tsr_cuda_ha_view_t *v, uint32_t nkeys, int mode, int direct,
                          uint64_t *tag, uint64_t *lkeys, uint32_t *lgs, uint32_t *lvm,
                          int64_t *lst, const uint32_t *dmap, uint64_t kmin, uint32_t *blk_new,
                          int act, uint32_t row, uint64_t k0, const uint64_t *pf)
{
    const uint32_t ls = v->lslots, lane = TSR_LANE;
    int32_t li = HA_L_RETRIED;
    int64_t gs = -1;
    if (act)
        li = direct ? ha_direct_find(v, dmap, ls, kmin, row, k0) : HA_L_NONE;
    if (li == HA_L_NONE) {
        uint64_t k[TSR_CUDA_HA_MAX_KEYS];
        uint32_t vm = ha_key(v, nkeys, row, k0, k);
        uint64_t h = ha_hash(k, vm, nkeys);
        li = ha_local_find(v, nkeys, tag, lkeys, lgs, lvm, row, k, vm, h, &gs, blk_new);
        if (li == HA_L_GLOBAL && gs < 0) {
            gs = ha_find_slot(v, nkeys, row, k, vm, h, blk_new);
            if (gs < 0)
                li = HA_L_RETRIED;
        }
    }
    if (mode == HA_MODE_LANE || mode == HA_MODE_PLAIN) {
        /* the updates converged (1 instruction for 32 lanes, not 4-8) */
        TSR_SYNC_WARP();
        if (li >= 0 && mode == HA_MODE_PLAIN)
            ha_apply_row_plain(v, lst + li, ls, pf);
        else if (li >= 0)
            ha_apply_row(v, lst + li, ls, row, pf, 1);
        else if (li == HA_L_GLOBAL)
            ha_apply_row(v, v->t.states + gs, v->t.nslots, row, pf, 0);
    } else {
        /* lanes without a local entry form groups of their own */
        ha_target_t t = {lst, ls, li, gs};
        uint32_t id = li >= 0 ? (uint32_t)li : 0x80000000u | lane;
        uint32_t peers = tsr_match_any(id);
        ha_warp_apply(v, li != HA_L_RETRIED, peers, &t, row, pf);
    }
}

/* Each block folds rows [b*rows_per_block, +rows_per_block) into its
 * shared-memory table, then the table into the global states. sh: dynamic
 * shared memory of tsr_cuda_ha_local_bytes(lslots) + 8 bytes. Rows come in
 * directly (no sel: retry rounds use the global kernel). mode: how a warp's
 * rows reach the table (HA_MODE_LANE: each lane alone; _PLAIN: the same, by
 * the specialised update of a plain launch; _WARP: lanes of one
 * entry combined; _COOP: ha_coop_row). */
TSR_DEV void ha_local_body(const tsr_cuda_ha_view_t *v, uint64_t *sh, uint32_t nkeys, int mode)
{
    const uint32_t ls = v->lslots, tid = TSR_TID, bdim = TSR_BDIM;
    uint64_t *tag = sh;
    uint64_t *lkeys = tag + ls;
    int64_t *lst = (int64_t *)(lkeys + (uint64_t)nkeys * ls);
    uint32_t *lgs = (uint32_t *)(lst + (uint64_t)v->ncols * ls);
    uint32_t *lvm = lgs + ls;
    uint32_t *blk_new = lvm + ls;
    int64_t *dmin = (int64_t *)(blk_new + 2); /* ls is even: 8-byte aligned */
    uint32_t *dmap = (uint32_t *)(dmin + 1);
    for (uint32_t i = tid; i < ls; i += bdim) {
        tag[i] = HA_L_EMPTY;
        lvm[i] = HA_L_NOMASK; /* matches no row's mask */
        lgs[i] = 0;
        dmap[i] = HA_D_NONE;
        for (uint32_t c = 0; c < v->ncols; c++)
            lst[(uint64_t)c * ls + i] = v->identity[c];
    }
    if (tid == 0) {
        *blk_new = 0;
        *dmin = INT64_MAX;
    }
    TSR_SYNC();
    /* block-uniform: nkeys is the kernel's, nslots the launch's */
    const int direct =
        nkeys == 1 && mode != HA_MODE_COOP && v->t.nslots <= (uint64_t)HA_D_SCAN * ls;
    const uint64_t kmin =
        direct ? ha_direct_build(v, tag, lkeys, lgs, lvm, dmin, dmap, blk_new) : 0;

    const uint32_t begin = TSR_BID * v->rows_per_block;
    const uint32_t end = begin >= v->n                      ? begin
                         : v->n - begin < v->rows_per_block ? v->n
                                                            : begin + v->rows_per_block;
    /* block-uniform trip count: every lane reaches the warp collectives */
    for (uint32_t it = begin; it < end; it += bdim * HA_U) {
        uint32_t row[HA_U];
        int act[HA_U];
        uint64_t k0[HA_U], pf[HA_U][HA_PF];
        TSR_SYNC_WARP(); /* whole-warp loads, not per diverged lane group */
        TSR_UNROLL
        for (uint32_t u = 0; u < HA_U; u++) {
            row[u] = it + u * bdim + tid;
            act[u] = row[u] < end;
            ha_prefetch(v, nkeys, row[u], act[u], &k0[u], pf[u]);
        }
        TSR_NOUNROLL
        for (uint32_t u = 0; u < HA_U; u++) { /* row u is at index 0 (ha_rows_shift) */
            if (mode == HA_MODE_COOP)
                ha_coop_row(v, nkeys, tag, lkeys, lgs, lvm, lst, blk_new, act[0], row[0], k0[0],
                            pf[0]);
            else
                ha_local_row(v, nkeys, mode, direct, tag, lkeys, lgs, lvm, lst, dmap, kmin, blk_new,
                             act[0], row[0], k0[0], pf[0]);
            ha_rows_shift(row, act, k0, pf);
        }
    }
    TSR_SYNC();
    for (uint32_t i = tid; i < ls; i += bdim)
        if (tag[i] & HA_L_READY) /* no entry is half-written after the barrier */
            ha_fold(v, lst + i, ls, v->t.states + lgs[i]);
    ha_block_done(v, blk_new);
}

/* Turns the slots claimed by update block b (newslots[b*region ..
 * +newcount[b]), b < nblocks) from ROWREF into OCC, copying their keys out of
 * the launch's input. Grid-stride over (block, entry) pairs. */
TSR_DEV void ha_persist_body(const tsr_cuda_ha_view_t *v, uint32_t nblocks, uint32_t nkeys)
{
    const uint64_t ns = v->t.nslots;
    for (uint32_t b = TSR_BID; b < nblocks; b += TSR_GDIM) {
        uint32_t count = v->newcount[b];
        for (uint32_t j = TSR_TID; j < count; j += TSR_BDIM) {
            uint64_t s = v->newslots[(uint64_t)b * v->region + j];
            uint32_t row = (uint32_t)(v->t.slots[s] & HA_ROW_MASK);
            uint64_t k[TSR_CUDA_HA_MAX_KEYS];
            uint32_t vm = ha_key(v, nkeys, row, nkeys ? v->keys[0][row] : 0, k);
            uint64_t h = ha_hash(k, vm, nkeys);
            TSR_UNROLL
            for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
                if (c < nkeys)
                    v->t.gkeys[(uint64_t)c * ns + s] = k[c];
            v->t.gvalid[s] = (uint8_t)vm;
            v->t.ghash[s] = h;
            v->t.slots[s] = HA_ST_OCC | (h & ~HA_ST_MASK);
        }
    }
}

/* Moves every group of r->from (all OCC) into r->to; a group that finds no
 * empty slot within the bound counts in counters[FAIL] (the host then tries a
 * table twice as big). Grid-stride over the old slots. */
TSR_DEV void ha_rehash_body(const tsr_cuda_ha_rehash_view_t *r)
{
    const uint64_t ons = r->from.nslots, nns = r->to.nslots, mask = nns - 1;
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    for (uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID; i < ons; i += step) {
        uint64_t w = r->from.slots[i];
        if (w == 0)
            continue;
        uint64_t h = r->from.ghash[i], pos = h & mask;
        int placed = 0;
        for (uint32_t p = 0; p < r->probe_limit && !placed; p++) {
            if (tsr_atom_cas_u64(r->to.slots + pos, 0, w) == 0) {
                for (uint32_t c = 0; c < r->nkeys; c++)
                    r->to.gkeys[(uint64_t)c * nns + pos] = r->from.gkeys[(uint64_t)c * ons + i];
                r->to.gvalid[pos] = r->from.gvalid[i];
                r->to.ghash[pos] = h;
                for (uint32_t c = 0; c < r->ncols; c++)
                    r->to.states[(uint64_t)c * nns + pos] = r->from.states[(uint64_t)c * ons + i];
                placed = 1;
            } else {
                pos = (pos + 1) & mask;
            }
        }
        if (!placed)
            tsr_atom_add_u32(r->counters + TSR_CUDA_CNT_FAIL, 1);
    }
}

#endif /* TSR_KERNELS_CUDA_HASHAGG_CUH */
