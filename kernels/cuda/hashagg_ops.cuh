/*
 * hashagg_ops.cuh - the pieces hash aggregation's kernel bodies
 * (hashagg.cuh, hashagg_regs.cuh) are made of: the slot word and block
 * table constants, keys and their hash, finding a group's global slot, the
 * aggregate updates (128-bit sums, a block table's split sums, MIN/MAX) and
 * the warp combining of the local+warp kernel. The table format they act on
 * is described in hashagg.cuh.
 */
#ifndef TSR_KERNELS_CUDA_HASHAGG_OPS_CUH
#define TSR_KERNELS_CUDA_HASHAGG_OPS_CUH

#include "compat.cuh"
#include "device/cuda_kernels.h"
#include "hash.cuh"

#define HA_ST_MASK 0xC000000000000000ULL
#define HA_ST_ROWREF 0x4000000000000000ULL
#define HA_ST_OCC 0x8000000000000000ULL
#define HA_ROW_MASK 0x00000000FFFFFFFFULL
#define HA_FRAG_MASK 0x3FFFFFFFULL

#define HA_U TSR_CUDA_ROWS_PER_THREAD
#define HA_PF 4 /* aggregates whose values are loaded ahead with the keys */

#define HA_L_EMPTY 0ULL
#define HA_L_BUSY 1ULL
#define HA_L_READY 0x8000000000000000ULL
#define HA_L_NOMASK 0xFFFFFFFFu
#define HA_L_PROBES 8u
#define HA_L_SPIN 4096u
/* ha_local_find's answers besides an entry index */
#define HA_L_GLOBAL (-1)  /* no entry: update the global slot *gs */
#define HA_L_RETRIED (-2) /* the row went to the retry list: touch nothing */
/* ha_coop_probe's answers besides an entry index */
#define HA_L_SLOW (-3)        /* take the per-lane path (claim, wait for a busy entry, not found) */
#define HA_L_NONE (-4)        /* this lane does not probe (not a leader) */
#define HA_L_PENDING (-5)     /* still probing */
#define HA_D_NONE 0xFFFFFFFFu /* a direct map's index with no entry */
#define HA_D_SCAN 8u          /* the map is built where nslots <= HA_D_SCAN * lslots */
/* update modes of ha_local_body */
#define HA_MODE_LANE 0
#define HA_MODE_WARP 1
#define HA_MODE_COOP 2
#define HA_MODE_PLAIN 3 /* LANE, block table entries by ha_apply_row_plain (v->plain) */

TSR_DEV uint32_t ha_bit(const uint64_t *bm, uint32_t i)
{
    return (uint32_t)(bm[i >> 6] >> (i & 63)) & 1u;
}

/* Row `row`'s key into k[] (0 under NULL), column 0's raw value given as k0
 * (loaded ahead); returns the validity mask (bit c: column c not NULL). */
TSR_DEV uint32_t ha_key(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint32_t row, uint64_t k0,
                        uint64_t *k)
{
    uint32_t vm = 0;
    TSR_UNROLL
    for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++) {
        k[c] = 0;
        if (c < nkeys) {
            const uint64_t *bm = v->kvalid[c];
            uint32_t ok = bm == NULL || ha_bit(bm, row);
            if (ok)
                k[c] = c == 0 ? k0 : v->keys[c][row];
            vm |= ok << c;
        }
    }
    return vm;
}

TSR_DEV uint64_t ha_hash(const uint64_t *k, uint32_t vm, uint32_t nkeys)
{
    uint64_t h = 0;
    TSR_UNROLL
    for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++) {
        if (c < nkeys) {
            uint64_t hk = ((vm >> c) & 1u) ? tsr_k_hash_u64(k[c]) : TSR_K_NULL_HASH;
            h = c == 0 ? hk : tsr_k_hash_combine(h, hk);
        }
    }
    return h;
}

/* Does the non-empty slot word w at pos hold the key k/vm (hash h)? */
TSR_DEV int ha_slot_matches(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint64_t w, uint64_t pos,
                            uint64_t occ, uint64_t frag, const uint64_t *k, uint32_t vm)
{
    if ((w & HA_ST_MASK) == HA_ST_OCC) {
        /* OCC slots were written by earlier launches: immutable now */
        if (w != occ || v->t.gvalid[pos] != vm)
            return 0;
        TSR_UNROLL
        for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++)
            if (c < nkeys && v->t.gkeys[(uint64_t)c * v->t.nslots + pos] != k[c])
                return 0;
        return 1;
    }
    if (((w >> 32) & HA_FRAG_MASK) != frag)
        return 0;
    uint32_t other = (uint32_t)(w & HA_ROW_MASK);
    TSR_UNROLL
    for (uint32_t c = 0; c < TSR_CUDA_HA_MAX_KEYS; c++) {
        if (c < nkeys) {
            const uint64_t *bm = v->kvalid[c];
            uint32_t ok = bm == NULL || ha_bit(bm, other);
            if (ok != ((vm >> c) & 1u))
                return 0;
            if (ok && v->keys[c][other] != k[c])
                return 0;
        }
    }
    return 1;
}

/* The global slot of row `row`'s group, claiming an empty slot for a new
 * group (listed in this block's newslots region, counted in *blk_new); -1
 * after appending the row to retry when no slot was found within the bound. */
TSR_DEV int64_t ha_find_slot(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint32_t row,
                             const uint64_t *k, uint32_t vm, uint64_t h, uint32_t *blk_new)
{
    uint64_t *slots = v->t.slots;
    const uint64_t mask = v->t.nslots - 1;
    const uint64_t frag = (h >> 32) & HA_FRAG_MASK;
    const uint64_t ref = HA_ST_ROWREF | (frag << 32) | (uint64_t)row;
    const uint64_t occ = HA_ST_OCC | (h & ~HA_ST_MASK);
    uint64_t pos = h & mask;
    for (uint32_t p = 0; p < v->probe_limit; p++) {
        uint64_t w = tsr_ld_volatile_u64(slots + pos);
        if (w == 0) {
            w = tsr_atom_cas_u64(slots + pos, 0, ref);
            if (w == 0) {
                uint32_t i = tsr_atom_add_u32(blk_new, 1);
                v->newslots[(uint64_t)TSR_BID * v->region + i] = (uint32_t)pos;
                return (int64_t)pos;
            }
        }
        if (ha_slot_matches(v, nkeys, w, pos, occ, frag, k, vm))
            return (int64_t)pos;
        pos = (pos + 1) & mask;
    }
    v->retry[tsr_atom_add_u32(v->counters + TSR_CUDA_CNT_FAIL, 1)] = row;
    return -1;
}

/* ---- aggregate updates (st: a group's state column 0; column c at st + c*stride) -------- */

/* Adds the 128-bit amount hi:lo to the sum in *phi:*plo. */
TSR_DEV void ha_sum_i(int64_t *plo, int64_t *phi, uint64_t lo, int64_t hi)
{
    uint64_t old = tsr_atom_add_u64((uint64_t *)plo, lo);
    uint64_t dhi = (uint64_t)hi + (old + lo < old ? 1u : 0u); /* two's complement */
    if (dhi != 0)
        tsr_atom_add_u64((uint64_t *)phi, dhi);
}

/* MIN (is_max 0) or MAX (1) of doubles, NaN above every number. Lock-free:
 * a failed CAS means another thread made progress. */
TSR_DEV void ha_minmax_d(int64_t *p, uint64_t xb, int is_max)
{
    double x = tsr_as_f64(xb);
    uint64_t old = tsr_ld_volatile_u64((uint64_t *)p);
    for (;;) {
        double m = tsr_as_f64(old);
        int better = is_max ? (x > m || tsr_isnan(x)) : (x < m || tsr_isnan(m));
        if (!better)
            return;
        uint64_t seen = tsr_atom_cas_u64((uint64_t *)p, old, xb);
        if (seen == old)
            return;
        old = seen;
    }
}

/* Adds x to the 64-bit word at p of a block table whose total stays below
 * 2^32 (a count: a launch has fewer than 2^32 rows) with a 32-bit atomic on
 * the word's low half (little-endian, as every CUDA device): shared memory
 * has native 32-bit atomic adds, while a 64-bit one is a compare-and-swap
 * loop on sm_90 (the profile of the local kernel at 1000 keys had its
 * stall samples at the 64-bit shared adds, bench/RESULTS.md). The high half
 * stays 0, so the word reads as the count. */
TSR_DEV void ha_local_count(int64_t *p, uint32_t x)
{
    tsr_atom_add_u32((uint32_t *)p, x);
}

/* Adds the 128-bit amount hi:lo to a block table's split sum (see the top
 * of the file): its low 32 bits to *plo, the rest (arithmetic shift) to *phi.
 * *plo takes them with a native 32-bit add on its low half whose old value
 * tells the carry, which goes to the high half (ha_local_count's reason);
 * the word is then the exact sum of the low parts (fewer than 2^32 carries
 * in a launch). *phi's old value is not needed: the thread does not wait. */
TSR_DEV void ha_sum_split(int64_t *plo, int64_t *phi, uint64_t lo, uint64_t hi)
{
    uint32_t *half = (uint32_t *)plo, add = (uint32_t)lo;
    uint32_t old = tsr_atom_add_u32(half, add);
    if ((uint32_t)(old + add) < old)
        tsr_atom_add_u32(half + 1, 1);
    uint64_t up = (hi << 32) | (lo >> 32);
    if (up != 0)
        tsr_atom_add_u64((uint64_t *)phi, up);
}

/* Folds the amount lo (and hi for SUM_I) into aggregate a's value column.
 * split: st is an entry of a block table (SUM_I split, see the top of the
 * file), else a group of the global table. */
TSR_DEV void ha_apply_value(const tsr_cuda_ha_view_t *v, uint32_t a, int64_t *st, uint64_t stride,
                            uint64_t lo, uint64_t hi, int split)
{
    int64_t *p = st + (uint64_t)v->val_col[a] * stride;
    switch (v->op[a]) {
    case TSR_CUDA_OP_SUM_I:
        if (split)
            ha_sum_split(p, st + (uint64_t)v->hi_col[a] * stride, lo, hi);
        else
            ha_sum_i(p, st + (uint64_t)v->hi_col[a] * stride, lo, (int64_t)hi);
        break;
    case TSR_CUDA_OP_SUM_D:
        tsr_atom_add_f64((double *)p, tsr_as_f64(lo));
        break;
    case TSR_CUDA_OP_MIN_I:
        tsr_atom_min_i64(p, (int64_t)lo);
        break;
    case TSR_CUDA_OP_MAX_I:
        tsr_atom_max_i64(p, (int64_t)lo);
        break;
    case TSR_CUDA_OP_MIN_D:
        ha_minmax_d(p, lo, 0);
        break;
    case TSR_CUDA_OP_MAX_D:
        ha_minmax_d(p, lo, 1);
        break;
    default:
        break;
    }
}

/* Adds row `row` (value x, loaded by the caller) to aggregate a of st
 * (split: as ha_apply_value). */
TSR_DEV void ha_apply_agg(const tsr_cuda_ha_view_t *v, uint32_t a, int64_t *st, uint64_t stride,
                          uint32_t row, uint64_t x, int split)
{
    int op = v->op[a];
    if (op == TSR_CUDA_OP_COUNT_STAR)
        return;
    const uint64_t *bm = v->vvalid[a];
    if (bm && !ha_bit(bm, row)) {
        /* NULLs are counted (not values), so the no-NULL case costs nothing */
        int64_t *pn = st + (uint64_t)v->nulls_col[a] * stride;
        if (split)
            ha_local_count(pn, 1);
        else
            tsr_atom_add_u64((uint64_t *)pn, 1);
        return;
    }
    if (op == TSR_CUDA_OP_COUNT)
        return;
    uint64_t hi = (op == TSR_CUDA_OP_SUM_I && (int64_t)x < 0) ? ~0ULL : 0;
    ha_apply_value(v, a, st, stride, x, hi, split);
}

/* Adds row `row` to the group at st; pf[a]: values of aggregates a < HA_PF;
 * split: st is a block table's entry (ha_apply_value). One loop over the
 * aggregates, not unrolled: the prefetched values move down a register each
 * trip (q[0] is aggregate a's), so the update code (a switch over the ops,
 * atomics, CAS loops) is in the kernel once rather than once per prefetched
 * value. The profile of the local kernel showed 40% of its stall samples as
 * "no instruction" with 73 KB of machine code (bench/RESULTS.md). */
TSR_DEV void ha_apply_row(const tsr_cuda_ha_view_t *v, int64_t *st, uint64_t stride, uint32_t row,
                          const uint64_t *pf, int split)
{
    if (split)
        ha_local_count(st, 1);
    else
        tsr_atom_add_u64((uint64_t *)st, 1);
    uint64_t q[HA_PF];
    TSR_UNROLL
    for (uint32_t a = 0; a < HA_PF; a++)
        q[a] = pf[a];
    TSR_NOUNROLL
    for (uint32_t a = 0; a < v->naggs; a++) {
        uint64_t x = a < HA_PF ? q[0] : v->vals[a] ? v->vals[a][row] : 0;
        ha_apply_agg(v, a, st, stride, row, x, split);
        TSR_UNROLL
        for (uint32_t b = 0; b + 1 < HA_PF; b++)
            q[b] = q[b + 1];
    }
}

#if HA_PF < TSR_CUDA_HA_PLAIN_AGGS
#error "a plain launch's values must all be loaded ahead (ha_apply_row_plain)"
#endif

/* ha_apply_row for a block table entry st of a plain launch (v->plain,
 * tsr_cuda_ha_plain: COUNT(*), COUNT and SUMs, no NULLs, every value in pf):
 * no NULL checks, no dispatch over every op, no values moved between
 * registers. Unrolled: each aggregate's code is a sum's few instructions
 * (the generic update was about 380 instructions a warp per row at 1000
 * keys on an H200, most of them branches and moves: bench/RESULTS.md). */
TSR_DEV void ha_apply_row_plain(const tsr_cuda_ha_view_t *v, int64_t *st, uint64_t stride,
                                const uint64_t *pf)
{
    ha_local_count(st, 1);
    TSR_UNROLL
    for (uint32_t a = 0; a < HA_PF; a++) {
        if (a >= v->naggs)
            break;
        /* COUNT(*) and COUNT have no value column (val_col -1): no address */
        int op = v->op[a];
        if (op == TSR_CUDA_OP_SUM_I)
            ha_sum_split(st + (uint64_t)v->val_col[a] * stride,
                         st + (uint64_t)v->hi_col[a] * stride, pf[a],
                         (int64_t)pf[a] < 0 ? ~0ULL : 0);
        else if (op == TSR_CUDA_OP_SUM_D)
            tsr_atom_add_f64((double *)(st + (uint64_t)v->val_col[a] * stride), tsr_as_f64(pf[a]));
    }
}

/* Moves a trip's rows 1.. (and their prefetched key and values) down by one:
 * the row loops then name row 0 only and their body is in the kernel once,
 * not HA_U times (see ha_apply_row). */
TSR_DEV void ha_rows_shift(uint32_t *row, int *act, uint64_t *k0, uint64_t (*pf)[HA_PF])
{
    TSR_UNROLL
    for (uint32_t w = 0; w + 1 < HA_U; w++) {
        row[w] = row[w + 1];
        act[w] = act[w + 1];
        k0[w] = k0[w + 1];
        TSR_UNROLL
        for (uint32_t a = 0; a < HA_PF; a++)
            pf[w][a] = pf[w + 1][a];
    }
}

/* Loads row `row`'s first key column and first HA_PF values ahead of the
 * work on earlier rows (independent loads in flight). */
TSR_DEV void ha_prefetch(const tsr_cuda_ha_view_t *v, uint32_t nkeys, uint32_t row, int act,
                         uint64_t *k0, uint64_t *pf)
{
    *k0 = (act && nkeys) ? v->keys[0][row] : 0;
    TSR_UNROLL
    for (uint32_t a = 0; a < HA_PF; a++)
        pf[a] = (act && a < v->naggs && v->vals[a]) ? v->vals[a][row] : 0;
}

/* ---- warp combining (local+warp kernel) -------------------------------------------- */

/* hi:lo (+)= ohi:olo under op (the state merge of one aggregate). */
TSR_DEV void ha_combine(int op, uint64_t *lo, uint64_t *hi, uint64_t olo, uint64_t ohi)
{
    double a = tsr_as_f64(*lo), b = tsr_as_f64(olo);
    switch (op) {
    case TSR_CUDA_OP_SUM_I: {
        uint64_t s = *lo + olo;
        *hi = *hi + ohi + (s < *lo ? 1u : 0u);
        *lo = s;
        break;
    }
    case TSR_CUDA_OP_SUM_D:
        *lo = tsr_as_u64(a + b);
        break;
    case TSR_CUDA_OP_MIN_I:
        if ((int64_t)olo < (int64_t)*lo)
            *lo = olo;
        break;
    case TSR_CUDA_OP_MAX_I:
        if ((int64_t)olo > (int64_t)*lo)
            *lo = olo;
        break;
    case TSR_CUDA_OP_MIN_D:
        if (b < a || tsr_isnan(a))
            *lo = olo;
        break;
    case TSR_CUDA_OP_MAX_D:
        if (b > a || tsr_isnan(b))
            *lo = olo;
        break;
    default:
        break;
    }
}

/* Combines hi:lo over each group of lanes (peers: this lane's group, from
 * tsr_match_any); afterwards the group's lowest lane holds the group's total.
 * A tree over the lanes' ranks in their group: in round i the lanes whose
 * rank has bit i set are done (their value has been taken), the others add
 * the value of their next remaining peer. Called by all 32 lanes. */
TSR_DEV void ha_warp_reduce(int op, uint32_t peers, uint64_t *lo, uint64_t *hi)
{
    const uint32_t lane = TSR_LANE;
    uint32_t rank = tsr_popc(peers & ((1u << lane) - 1u));
    uint32_t rest = peers & ~((2u << lane) - 1u); /* peers above this lane */
    while (tsr_any(rest != 0)) {
        uint32_t next = tsr_ffs(rest);
        uint32_t src = next ? next - 1 : lane;
        uint64_t olo = tsr_shfl_u64(*lo, src);
        uint64_t ohi = tsr_shfl_u64(*hi, src);
        if (next)
            ha_combine(op, lo, hi, olo, ohi);
        rest &= ~tsr_ballot((int)(rank & 1u));
        rank >>= 1;
    }
}

/* Where a warp lane's row goes: entry li of the block's table (lst, stride
 * ls) when li >= 0, else global slot gs. The two cases are separate calls so
 * the compiler knows each pointer's memory space (shared atomics are faster
 * than the generic ones a pointer chosen at run time would need). */
typedef struct ha_target {
    int64_t *lst;
    uint32_t ls;
    int32_t li;
    int64_t gs;
} ha_target_t;

/* Adds a count x (at most 32: lanes of a warp) to column col of the target. */
TSR_DEV void ha_target_add(const tsr_cuda_ha_view_t *v, const ha_target_t *t, int col, uint32_t x)
{
    if (t->li >= 0)
        ha_local_count(t->lst + (uint64_t)col * t->ls + t->li, x);
    else
        tsr_atom_add_u64((uint64_t *)(v->t.states + (uint64_t)col * v->t.nslots + t->gs), x);
}

TSR_DEV void ha_target_value(const tsr_cuda_ha_view_t *v, const ha_target_t *t, uint32_t a,
                             uint64_t lo, uint64_t hi)
{
    if (t->li >= 0)
        ha_apply_value(v, a, t->lst + t->li, t->ls, lo, hi, 1);
    else
        ha_apply_value(v, a, v->t.states + t->gs, v->t.nslots, lo, hi, 0);
}

/* Aggregate a of one row per lane, combined per group of lanes; the group's
 * leader updates the target. act: the lane has a row and a target. */
TSR_DEV void ha_warp_agg(const tsr_cuda_ha_view_t *v, uint32_t a, int act, int leader,
                         uint32_t peers, const ha_target_t *t, uint32_t row, uint64_t x)
{
    int op = v->op[a];
    if (op == TSR_CUDA_OP_COUNT_STAR)
        return;
    const uint64_t *bm = v->vvalid[a];
    int valid = act && (bm == NULL || ha_bit(bm, row));
    if (bm) {
        uint32_t nulls = tsr_ballot(act && !valid) & peers;
        if (leader && nulls)
            ha_target_add(v, t, v->nulls_col[a], tsr_popc(nulls));
    }
    if (op == TSR_CUDA_OP_COUNT)
        return;
    uint64_t ident = (uint64_t)v->identity[v->val_col[a]];
    uint64_t lo = valid ? x : ident;
    uint64_t hi = (valid && op == TSR_CUDA_OP_SUM_I && (int64_t)x < 0) ? ~0ULL : 0;
    ha_warp_reduce(op, peers, &lo, &hi);
    if (leader && (lo != ident || hi != 0))
        ha_target_value(v, t, a, lo, hi);
}

TSR_DEV void ha_warp_apply(const tsr_cuda_ha_view_t *v, int act, uint32_t peers,
                           const ha_target_t *t, uint32_t row, const uint64_t *pf)
{
    const int leader = act && (peers & ((1u << TSR_LANE) - 1u)) == 0;
    if (leader)
        ha_target_add(v, t, 0, tsr_popc(peers));
    uint64_t q[HA_PF]; /* as ha_apply_row: one copy of the loop body */
    TSR_UNROLL
    for (uint32_t a = 0; a < HA_PF; a++)
        q[a] = pf[a];
    TSR_NOUNROLL
    for (uint32_t a = 0; a < v->naggs; a++) { /* warp-uniform trip count */
        uint64_t x = a < HA_PF ? q[0] : (act && v->vals[a]) ? v->vals[a][row] : 0;
        ha_warp_agg(v, a, act, leader, peers, t, row, x);
        TSR_UNROLL
        for (uint32_t b = 0; b + 1 < HA_PF; b++)
            q[b] = q[b + 1];
    }
}

#endif /* TSR_KERNELS_CUDA_HASHAGG_OPS_CUH */
