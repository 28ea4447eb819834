/*
 * hashagg.cl - hash aggregation kernels (OpenCL C 1.2 with 64-bit atomics).
 *
 * Host side: engine/device/hashagg_opencl.c; semantics: engine/device/hashagg.h;
 * the sequential model of the same algorithm: engine/device/hashagg_cpu.c.
 * Requires cl_khr_int64_base_atomics, cl_khr_int64_extended_atomics and
 * cl_khr_fp64 (the host checks before building this program).
 *
 * The group table (global memory, slot-indexed struct of arrays; a group lives
 * in the slot that was claimed for it, so its states need no indirection):
 *
 *   slots[s]        0              empty
 *                   01|frag|row    claimed in this launch by input row `row`
 *                                  (ROWREF): the group's key is that row's key,
 *                                  frag = bits 32..61 of the key's hash
 *                   10|hash62      a group whose key is in gkeys (OCC),
 *                                  hash62 = the low 62 bits of its hash
 *   gkeys[k*nslots + s], gvalid[s] (bit k: key column k not NULL), ghash[s]
 *                   the key and hash of an OCC group
 *   states[c*nslots + s]           state column c (hashagg.h's layout)
 *
 * Why ROWREF: a key tuple is up to 4 words and NULL flags, too wide to claim
 * with one compare-and-swap. A row claims an empty slot by CAS-ing in a
 * reference to itself; the key it refers to already sits, immutable, in the
 * input buffers, so any other work-item can compare against it at once and
 * nobody ever waits for another work-item to finish writing (no spin locks:
 * those deadlock where work-items of a group run in lockstep or one after the
 * other, as on PoCL). After the launch, tsr_hashagg_persist copies the keys of
 * the slots claimed in it into gkeys and turns them into OCC slots.
 *
 * Every probe loop is bounded (probe_limit). A row that finds neither its
 * group nor an empty slot within the bound touches nothing and is appended to
 * `retry`; the host grows the table (tsr_hashagg_rehash) and reruns just those
 * rows. So a full table costs a resize, never a lost row or a hang.
 *
 * Hash (bit for bit the one of core/hash.h and exec/hashtable.h): per column
 * tsr_hash_u64(v), or NULL_HASH when NULL, folded with tsr_hash_combine.
 *
 * Aggregate updates use 64-bit atomics. SUM(INT64) keeps a 128-bit sum in two
 * words: the low word with atom_add, whose old value tells the carry out of
 * this very addition, then the carry plus the sign extension of the value into
 * the high word. Both words receive every row's contribution exactly once, so
 * the pair is the exact sum whatever the order. Double SUM/MIN/MAX are
 * compare-and-swap loops on the bit pattern (lock-free: a failed CAS means
 * another work-item made progress).
 */
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
#pragma OPENCL EXTENSION cl_khr_int64_extended_atomics : enable
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

#define ST_MASK 0xC000000000000000UL
#define ST_ROWREF 0x4000000000000000UL
#define ST_OCC 0x8000000000000000UL
#define ROW_MASK 0x00000000FFFFFFFFUL
#define FRAG_MASK 0x3FFFFFFFUL
#define NULL_HASH 0x2545f4914f6cdd1dUL
#define MAX_KEYS 4

/* Helpers are forced inline: PoCL otherwise keeps them as calls inside its
 * work-item loops. */
#define INLINE inline __attribute__((always_inline))

/* tsr_dev_agg_op_t */
#define OP_COUNT_STAR 0
#define OP_COUNT 1
#define OP_SUM_I 2
#define OP_SUM_D 3
#define OP_MIN_I 4
#define OP_MAX_I 5
#define OP_MIN_D 6
#define OP_MAX_D 7

/* counters[] */
#define CNT_NEW 0  /* slots claimed (entries of newslots) */
#define CNT_FAIL 1 /* rows in retry; groups that did not fit in rehash */

INLINE ulong tsr_hash_u64(ulong x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdUL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53UL;
    x ^= x >> 33;
    return x;
}

INLINE ulong tsr_hash_combine(ulong seed, ulong h)
{
    return tsr_hash_u64(seed ^ (h + 0x9e3779b97f4a7c15UL + (seed << 6) + (seed >> 2)));
}

INLINE uint bit_get(__global const ulong *bm, uint i)
{
    return (uint)(bm[i >> 6] >> (i & 63)) & 1u;
}

/* Key of input row `row` into k[] (0 under NULL); returns its validity mask.
 * Column kk starts at keys_in + kk*cap, its bitmap at kvalid_in + kk*cap/64. */
INLINE uint load_key(__global const ulong *keys_in, __global const ulong *kvalid_in, uint row,
                     uint nkeys, uint kvalid_mask, uint cap, ulong *k)
{
    uint vmask = 0;
    for (uint kk = 0; kk < nkeys; kk++) {
        uint valid = ((kvalid_mask >> kk) & 1u) == 0 ||
                     bit_get(kvalid_in + (size_t)kk * (cap / 64), row);
        k[kk] = valid ? keys_in[(size_t)kk * cap + row] : 0;
        vmask |= valid << kk;
    }
    return vmask;
}

INLINE ulong key_hash(const ulong *k, uint vmask, uint nkeys)
{
    ulong h = 0;
    for (uint kk = 0; kk < nkeys; kk++) {
        ulong hk = ((vmask >> kk) & 1u) ? tsr_hash_u64(k[kk]) : NULL_HASH;
        h = kk == 0 ? hk : tsr_hash_combine(h, hk);
    }
    return h;
}

/* Does slot word w (not empty) at pos hold the key k/vmask with hash h? */
INLINE int slot_matches(ulong w, ulong pos, ulong h, const ulong *k, uint vmask, uint nkeys,
                        __global const ulong *gkeys, __global const uchar *gvalid, ulong nslots,
                        __global const ulong *keys_in, __global const ulong *kvalid_in,
                        uint kvalid_mask, uint cap)
{
    if ((w & ST_MASK) == ST_OCC) {
        if (w != (ST_OCC | (h & ~ST_MASK)) || gvalid[pos] != vmask)
            return 0;
        for (uint kk = 0; kk < nkeys; kk++)
            if (gkeys[(size_t)kk * nslots + pos] != k[kk])
                return 0;
        return 1;
    }
    if (((w >> 32) & FRAG_MASK) != ((h >> 32) & FRAG_MASK))
        return 0;
    ulong other[MAX_KEYS];
    uint ovmask = load_key(keys_in, kvalid_in, (uint)(w & ROW_MASK), nkeys, kvalid_mask, cap,
                           other);
    if (ovmask != vmask)
        return 0;
    for (uint kk = 0; kk < nkeys; kk++)
        if (other[kk] != k[kk])
            return 0;
    return 1;
}

/*
 * Aggregate updates, for states in global memory (suffix _g) and in a
 * work-group's local memory (_l): OpenCL 1.2 has no generic address space, so
 * one macro writes both. st points at the group's entry of state column 0;
 * column c is at st + c*stride.
 */
#define DEFINE_STATE_OPS(SUF, AS)                                                             \
    INLINE void update_sum_d_##SUF(volatile AS long *p, double v)                             \
    {                                                                                         \
        long old = *p;                                                                        \
        for (;;) {                                                                            \
            long seen = atom_cmpxchg(p, old, as_long(as_double(old) + v));                    \
            if (seen == old)                                                                  \
                return;                                                                       \
            old = seen;                                                                       \
        }                                                                                     \
    }                                                                                         \
    /* MIN (is_max 0) or MAX (1) of doubles, NaN above every number. */                      \
    INLINE void update_minmax_d_##SUF(volatile AS long *p, double v, int is_max)              \
    {                                                                                         \
        long old = *p;                                                                        \
        for (;;) {                                                                            \
            double m = as_double(old);                                                        \
            int better = is_max ? (v > m || isnan(v)) : (v < m || isnan(m));                  \
            if (!better)                                                                      \
                return;                                                                       \
            long seen = atom_cmpxchg(p, old, as_long(v));                                     \
            if (seen == old)                                                                  \
                return;                                                                       \
            old = seen;                                                                       \
        }                                                                                     \
    }                                                                                         \
    /* Adds a 128-bit (hi:lo) amount to the sum in (*phi:*plo). */                            \
    INLINE void update_sum_i_##SUF(volatile AS long *plo, volatile AS long *phi, ulong lo,    \
                                   long hi)                                                   \
    {                                                                                         \
        ulong old = (ulong)atom_add(plo, as_long(lo));                                        \
        long dhi = hi + (old + lo < old ? 1L : 0L);                                           \
        if (dhi != 0)                                                                         \
            atom_add(phi, dhi);                                                               \
    }                                                                                         \
    /* Adds input row `row` to the group at st. */                                            \
    INLINE void apply_row_##SUF(volatile AS long *st, ulong stride, __global const int4 *aggs, \
                                uint naggs, __global const ulong *vals_in,                    \
                                __global const ulong *vvalid_in, uint vvalid_mask, uint cap,  \
                                uint row)                                                     \
    {                                                                                         \
        atom_inc(st);                                                                         \
        for (uint a = 0; a < naggs; a++) {                                                    \
            int4 d = aggs[a];                                                                 \
            if (d.x == OP_COUNT_STAR)                                                         \
                continue;                                                                     \
            uint valid = ((vvalid_mask >> a) & 1u) == 0 ||                                    \
                         bit_get(vvalid_in + (size_t)a * (cap / 64), row);                    \
            if (!valid) {                                                                     \
                atom_inc(st + d.y * stride);                                                  \
                continue;                                                                     \
            }                                                                                 \
            if (d.x == OP_COUNT)                                                              \
                continue;                                                                     \
            ulong vb = vals_in[(size_t)a * cap + row];                                        \
            volatile AS long *p = st + d.z * stride;                                          \
            switch (d.x) {                                                                    \
            case OP_SUM_I:                                                                    \
                update_sum_i_##SUF(p, st + d.w * stride, vb, as_long(vb) < 0 ? -1L : 0L);    \
                break;                                                                        \
            case OP_SUM_D:                                                                    \
                update_sum_d_##SUF(p, as_double(vb));                                         \
                break;                                                                        \
            case OP_MIN_I:                                                                    \
                atom_min(p, as_long(vb));                                                     \
                break;                                                                        \
            case OP_MAX_I:                                                                    \
                atom_max(p, as_long(vb));                                                     \
                break;                                                                        \
            case OP_MIN_D:                                                                    \
                update_minmax_d_##SUF(p, as_double(vb), 0);                                   \
                break;                                                                        \
            case OP_MAX_D:                                                                    \
                update_minmax_d_##SUF(p, as_double(vb), 1);                                   \
                break;                                                                        \
            default:                                                                          \
                break;                                                                        \
            }                                                                                 \
        }                                                                                     \
    }

DEFINE_STATE_OPS(g, __global)
DEFINE_STATE_OPS(l, __local)

/* The global slot of input row `row`'s group, claiming an empty slot for a new
 * group (recorded in newslots); -1 after appending the row to retry when no
 * slot was found within probe_limit. */
INLINE long find_slot(__global ulong *slots, __global const ulong *gkeys,
                      __global const uchar *gvalid, __global const ulong *keys_in,
                      __global const ulong *kvalid_in, __global uint *counters,
                      __global uint *retry, __global uint *newslots, uint row, ulong nslots,
                      uint nkeys, uint kvalid_mask, uint cap, uint probe_limit)
{
    ulong k[MAX_KEYS];
    uint vmask = load_key(keys_in, kvalid_in, row, nkeys, kvalid_mask, cap, k);
    ulong h = key_hash(k, vmask, nkeys);
    ulong ref = ST_ROWREF | (((h >> 32) & FRAG_MASK) << 32) | (ulong)row;
    ulong mask = nslots - 1, pos = h & mask;
    for (uint p = 0; p < probe_limit; p++) {
        ulong w = ((volatile __global ulong *)slots)[pos];
        if (w == 0) {
            w = atom_cmpxchg((volatile __global ulong *)(slots + pos), 0UL, ref);
            if (w == 0) {
                newslots[atomic_inc(&counters[CNT_NEW])] = (uint)pos;
                return (long)pos;
            }
        }
        if (slot_matches(w, pos, h, k, vmask, nkeys, gkeys, gvalid, nslots, keys_in, kvalid_in,
                         kvalid_mask, cap))
            return (long)pos;
        pos = (pos + 1) & mask;
    }
    retry[atomic_inc(&counters[CNT_FAIL])] = row;
    return -1;
}

/*
 * One work-item per input row (rows sel[0..n) when use_sel, else 0..n), each
 * updating its group's states in global memory with atomics.
 * aggs[a] = (op, nulls_col, val_col, hi_col). Values of aggregate a start at
 * vals_in + a*cap (bits of int64 or double), its bitmap at vvalid_in + a*cap/64;
 * bit a of vvalid_mask / bit kk of kvalid_mask say whether a bitmap was given.
 */
__kernel void tsr_hashagg_update(__global ulong *slots, __global const ulong *gkeys,
                                 __global const uchar *gvalid, __global long *states,
                                 __global const int4 *aggs, __global const ulong *keys_in,
                                 __global const ulong *kvalid_in, __global const ulong *vals_in,
                                 __global const ulong *vvalid_in, __global const uint *sel,
                                 __global uint *counters, __global uint *retry,
                                 __global uint *newslots, uint n, uint use_sel, ulong nslots,
                                 uint nkeys, uint naggs, uint kvalid_mask, uint vvalid_mask,
                                 uint cap, uint probe_limit)
{
    uint j = (uint)get_global_id(0);
    if (j >= n)
        return;
    uint row = use_sel ? sel[j] : j;
    long slot = find_slot(slots, gkeys, gvalid, keys_in, kvalid_in, counters, retry, newslots,
                          row, nslots, nkeys, kvalid_mask, cap, probe_limit);
    if (slot >= 0)
        apply_row_g((volatile __global long *)(states + slot), nslots, aggs, naggs, vals_in,
                    vvalid_in, vvalid_mask, cap, row);
}

#define LOCAL_EMPTY 0xFFFFFFFFu
#define LOCAL_PROBES 8u

/*
 * The same with work-group pre-aggregation, for tables with few groups where
 * every row would otherwise hit the same few global cache lines. A work-group
 * takes rows [group*rows_per_wg, +rows_per_wg) (of sel when use_sel). Each row
 * finds its global slot as above, then accumulates into a small local table
 * keyed by that global slot id (lkeys[lslots], lstates[ncols*lslots], at
 * `identity` when empty); a row whose slot id finds no local entry within
 * LOCAL_PROBES updates the global states directly (states merge in any order,
 * so both paths may serve one group). At the end the work-group folds its
 * local entries into the global states with atomics: one update per group and
 * state column instead of one per row.
 *
 * Direct map (dslots > 0: one key column, a table the host judged small
 * enough to scan): the work-group first lists the groups already in the
 * table (OCC slots, immutable during a launch) by key, dmap[k - kmin] = slot
 * (kmin: their least key), so a row of a known group takes its slot with one
 * local load instead of hashing and probing the global table (the CUDA
 * kernels' direct map, kernels/cuda/hashagg.cuh). Other rows probe.
 */
__kernel void tsr_hashagg_update_local(
    __global ulong *slots, __global const ulong *gkeys, __global const uchar *gvalid,
    __global long *states, __global const int4 *aggs, __global const ulong *keys_in,
    __global const ulong *kvalid_in, __global const ulong *vals_in,
    __global const ulong *vvalid_in, __global const uint *sel, __global uint *counters,
    __global uint *retry, __global uint *newslots, uint n, uint use_sel, ulong nslots, uint nkeys,
    uint naggs, uint kvalid_mask, uint vvalid_mask, uint cap, uint probe_limit,
    __global const long *identity, uint ncols, uint rows_per_wg, __local uint *lkeys,
    __local long *lstates, uint lslots, uint contiguous, __local uint *dmap, __local long *dmin,
    uint dslots)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    uint lmask = lslots - 1;
    for (uint i = lid; i < lslots; i += lsz)
        lkeys[i] = LOCAL_EMPTY;
    for (uint c = 0; c < ncols; c++) {
        long id = identity[c];
        for (uint i = lid; i < lslots; i += lsz)
            lstates[c * lslots + i] = id;
    }
    long kmin = 0;
    if (dslots) {
        if (lid == 0)
            *dmin = LONG_MAX;
        for (uint i = lid; i < dslots; i += lsz)
            dmap[i] = LOCAL_EMPTY;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (dslots) {
        for (ulong s = lid; s < nslots; s += lsz)
            if ((slots[s] & ST_MASK) == ST_OCC && gvalid[s] == 1)
                atom_min((volatile __local long *)dmin, (long)gkeys[s]);
        barrier(CLK_LOCAL_MEM_FENCE);
        kmin = *dmin;
        for (ulong s = lid; s < nslots; s += lsz) {
            if ((slots[s] & ST_MASK) != ST_OCC || gvalid[s] != 1)
                continue;
            ulong idx = gkeys[s] - (ulong)kmin; /* >= 0: kmin is the least */
            if (idx < dslots)
                dmap[idx] = (uint)s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    uint begin = (uint)get_group_id(0) * rows_per_wg;
    uint end = begin >= n ? begin : (n - begin < rows_per_wg ? n : begin + rows_per_wg);
    /* GPUs: work-items interleave (neighbours read neighbouring rows, which
     * coalesces). CPUs (PoCL runs a group's work-items one after another on
     * one thread): each work-item takes a contiguous block, so rows stream
     * through the cache instead of being visited with a stride. */
    uint step = lsz, first = begin + lid;
    if (contiguous) {
        uint per = (end - begin + lsz - 1) / lsz;
        first = begin + lid * per;
        end = first >= end ? first : (end - first < per ? end : first + per);
        step = 1;
    }
    for (uint j = first; j < end; j += step) {
        uint row = use_sel ? sel[j] : j;
        long slot = -1;
        if (dslots && ((kvalid_mask & 1u) == 0 || bit_get(kvalid_in, row))) {
            ulong idx = keys_in[row] - (ulong)kmin;
            uint s = idx < dslots ? dmap[idx] : LOCAL_EMPTY;
            if (s != LOCAL_EMPTY)
                slot = (long)s;
        }
        if (slot < 0)
            slot = find_slot(slots, gkeys, gvalid, keys_in, kvalid_in, counters, retry, newslots,
                             row, nslots, nkeys, kvalid_mask, cap, probe_limit);
        if (slot < 0)
            continue;
        uint id = (uint)slot, pos = (id ^ (id >> 13)) & lmask;
        int li = -1;
        for (uint p = 0; p < LOCAL_PROBES; p++) {
            uint cur = ((volatile __local uint *)lkeys)[pos];
            if (cur == LOCAL_EMPTY)
                cur = atomic_cmpxchg((volatile __local uint *)(lkeys + pos), LOCAL_EMPTY, id);
            if (cur == LOCAL_EMPTY || cur == id) {
                li = (int)pos;
                break;
            }
            pos = (pos + 1) & lmask;
        }
        if (li >= 0)
            apply_row_l((volatile __local long *)(lstates + li), lslots, aggs, naggs, vals_in,
                        vvalid_in, vvalid_mask, cap, row);
        else
            apply_row_g((volatile __global long *)(states + slot), nslots, aggs, naggs, vals_in,
                        vvalid_in, vvalid_mask, cap, row);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    for (uint i = lid; i < lslots; i += lsz) {
        uint id = lkeys[i];
        if (id == LOCAL_EMPTY)
            continue;
        volatile __global long *g = (volatile __global long *)(states + id);
        __local long *l = lstates + i;
        atom_add(g, l[0]);
        for (uint a = 0; a < naggs; a++) {
            int4 d = aggs[a];
            if (d.x == OP_COUNT_STAR)
                continue;
            long nulls = l[d.y * lslots];
            if (nulls)
                atom_add(g + d.y * nslots, nulls);
            if (d.x == OP_COUNT)
                continue;
            long v = l[d.z * lslots];
            if (v == identity[d.z] && d.x != OP_SUM_I)
                continue; /* nothing to fold (a no-op for SUM_D, MIN, MAX) */
            volatile __global long *p = g + d.z * nslots;
            switch (d.x) {
            case OP_SUM_I:
                update_sum_i_g(p, g + d.w * nslots, (ulong)v, l[d.w * lslots]);
                break;
            case OP_SUM_D:
                update_sum_d_g(p, as_double(v));
                break;
            case OP_MIN_I:
                atom_min(p, v);
                break;
            case OP_MAX_I:
                atom_max(p, v);
                break;
            case OP_MIN_D:
                update_minmax_d_g(p, as_double(v), 0);
                break;
            case OP_MAX_D:
                update_minmax_d_g(p, as_double(v), 1);
                break;
            default:
                break;
            }
        }
    }
}

/* Turns the slots claimed in the last update launch (newslots[0..count)) from
 * ROWREF into OCC, copying their keys out of the input buffers. */
__kernel void tsr_hashagg_persist(__global ulong *slots, __global ulong *gkeys,
                                  __global uchar *gvalid, __global ulong *ghash,
                                  __global const ulong *keys_in, __global const ulong *kvalid_in,
                                  __global const uint *newslots, uint count, ulong nslots,
                                  uint nkeys, uint kvalid_mask, uint cap)
{
    uint j = (uint)get_global_id(0);
    if (j >= count)
        return;
    size_t s = newslots[j];
    ulong k[MAX_KEYS];
    uint row = (uint)(slots[s] & ROW_MASK);
    uint vmask = load_key(keys_in, kvalid_in, row, nkeys, kvalid_mask, cap, k);
    ulong h = key_hash(k, vmask, nkeys);
    for (uint kk = 0; kk < nkeys; kk++)
        gkeys[(size_t)kk * nslots + s] = k[kk];
    gvalid[s] = (uchar)vmask;
    ghash[s] = h;
    slots[s] = ST_OCC | (h & ~ST_MASK);
}

/* Moves every group of the old table (all OCC) into the new, empty one whose
 * states are at their identities. A group that finds no empty slot within
 * probe_limit counts in counters[CNT_FAIL]; the host then retries with a
 * bigger table. */
__kernel void tsr_hashagg_rehash(__global const ulong *oslots, __global const ulong *ogkeys,
                                 __global const uchar *ogvalid, __global const ulong *oghash,
                                 __global const long *ostates, ulong onslots,
                                 __global ulong *nslots_w, __global ulong *ngkeys,
                                 __global uchar *ngvalid, __global ulong *nghash,
                                 __global long *nstates, ulong nnslots, uint nkeys, uint ncols,
                                 uint probe_limit, __global uint *counters)
{
    size_t i = get_global_id(0);
    if (i >= onslots)
        return;
    ulong w = oslots[i];
    if (w == 0)
        return;
    ulong h = oghash[i], mask = nnslots - 1, pos = h & mask;
    for (uint p = 0; p < probe_limit; p++) {
        if (atom_cmpxchg((volatile __global ulong *)(nslots_w + pos), 0UL, w) == 0) {
            for (uint kk = 0; kk < nkeys; kk++)
                ngkeys[(size_t)kk * nnslots + pos] = ogkeys[(size_t)kk * onslots + i];
            ngvalid[pos] = ogvalid[i];
            nghash[pos] = h;
            for (uint c = 0; c < ncols; c++)
                nstates[(size_t)c * nnslots + pos] = ostates[(size_t)c * onslots + i];
            return;
        }
        pos = (pos + 1) & mask;
    }
    atomic_inc(&counters[CNT_FAIL]);
}
