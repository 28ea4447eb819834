/*
 * hashjoin.cl - hash join kernels: build a table of the build side's keys,
 * count each probe row's matches, write (probe row, build row) pairs
 * (OpenCL C 1.2 with cl_khr_int64_base_atomics).
 *
 * Host side: engine/device/hashjoin_opencl.c; semantics: hashjoin.h; the
 * sequential model of the same passes: engine/device/hashjoin_cpu.c.
 *
 * Keys are integers of `width` bytes (8: int64 values, 4: dictionary codes),
 * widened to ulong; hash = tsr_hash_u64(key) (core/hash.h), slot = hash &
 * (nslots - 1). The table (global memory, nslots a power of two >= 2 * build
 * rows, so linear probing always meets the key or an empty slot within
 * nslots steps: every probe loop is bounded by nslots):
 *
 *   ref[s]     0 empty, else 1 + a build row whose key the slot holds. A row
 *              claims an empty slot by compare-and-swap of a reference to
 *              itself; its key already sits, immutable, in bkeys, so others
 *              compare against it at once and nobody waits for anybody (no
 *              spin locks, which deadlock where work-items run one after the
 *              other, as on PoCL)
 *   start[s]   first entry of slot s's build rows in rows[]; start[nslots]
 *              is the number of non-NULL build rows
 *   rows[]     the build rows of every distinct key, slot by slot
 *
 * Build: tsr_join_insert (count rows per slot into cnt, 64-bit atomics),
 * exclusive scan cnt -> start (scan.cl), tsr_join_scatter (each row takes
 * the next place of its slot with an atomic cursor: the order within a key is
 * the order the atomics ran in, unspecified), then tsr_join_finish packs what
 * probes need into one 16-byte entry per slot (ref, start and the build keys
 * are then dropped):
 *
 *   table[s]   (key, start | count << 32), (0, 0) when empty: a probe step
 *              is one load of neighbouring memory, not ref -> bkeys -> start.
 *              count >= 1 in a used slot, so y == 0 only when empty; start
 *              and count fit 32 bits as rows are numbered in uint
 *
 * Probe: tsr_join_probe writes each probe row's match count and where its
 * matches start in rows[] (so the write pass reads no table), a scan turns
 * the counts into output offsets, and tsr_join_write copies each probe row's
 * matches to its offset, clipped to the output window
 * [win, win + wcap) so the output buffer has a fixed size however many pairs
 * there are.
 *
 * NULL keys (validity bit clear) are neither inserted nor looked up.
 */
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable

#define NONE 0xFFFFFFFFu
#define INLINE inline __attribute__((always_inline))

/* counters[] */
#define CNT_DISTINCT 0 /* slots claimed */
#define CNT_FAIL 1     /* rows that found no slot (a bug: the table is never full) */

INLINE ulong tsr_hash_u64(ulong x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdUL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53UL;
    x ^= x >> 33;
    return x;
}

INLINE ulong key_at(__global const uchar *keys, uint width, ulong i)
{
    return width == 8 ? ((__global const ulong *)keys)[i]
                      : (ulong)((__global const uint *)keys)[i];
}

INLINE uint valid_at(__global const ulong *valid, uint has_valid, ulong i)
{
    return !has_valid || ((valid[i >> 6] >> (i & 63)) & 1u);
}

/* One work-item per build row i < n. */
__kernel void tsr_join_insert(__global const uchar *bkeys, __global const ulong *bvalid,
                              uint has_valid, uint n, uint width, __global uint *ref,
                              __global ulong *cnt, __global uint *row_slot, ulong nslots,
                              __global uint *counters)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    if (!valid_at(bvalid, has_valid, i)) {
        row_slot[i] = NONE;
        return;
    }
    ulong key = key_at(bkeys, width, i);
    ulong mask = nslots - 1, pos = tsr_hash_u64(key) & mask;
    for (ulong p = 0; p < nslots; p++) {
        uint r = ((volatile __global uint *)ref)[pos];
        if (r == 0) {
            r = atomic_cmpxchg((volatile __global uint *)(ref + pos), 0u, i + 1);
            if (r == 0) {
                atomic_inc(&counters[CNT_DISTINCT]);
                atom_inc((volatile __global ulong *)(cnt + pos));
                row_slot[i] = (uint)pos;
                return;
            }
        }
        if (key_at(bkeys, width, r - 1) == key) {
            atom_inc((volatile __global ulong *)(cnt + pos));
            row_slot[i] = (uint)pos;
            return;
        }
        pos = (pos + 1) & mask;
    }
    atomic_inc(&counters[CNT_FAIL]);
    row_slot[i] = NONE;
}

/* One work-item per build row: its place among its slot's rows. cursor[] is
 * zeroed by the host. */
__kernel void tsr_join_scatter(__global const uint *row_slot, uint n, __global const ulong *start,
                               __global ulong *cursor, __global uint *rows)
{
    uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    uint s = row_slot[i];
    if (s == NONE)
        return;
    ulong at = start[s] + atom_inc((volatile __global ulong *)(cursor + s));
    rows[at] = i;
}

/* One work-item per slot: the probe table entry (see the top). */
__kernel void tsr_join_finish(__global const uchar *bkeys, uint width, __global const uint *ref,
                              __global const ulong *start, ulong nslots, __global ulong2 *table)
{
    size_t s = get_global_id(0);
    if (s >= nslots)
        return;
    uint r = ref[s];
    ulong2 e = (ulong2)(0, 0);
    if (r != 0)
        e = (ulong2)(key_at(bkeys, width, r - 1), start[s] | ((start[s + 1] - start[s]) << 32));
    table[s] = e;
}

/* One work-item per probe row j < m of a launch whose first row is `base`:
 * the row's match count (0: NULL or absent key) and first match in rows[]. */
__kernel void tsr_join_probe(__global const uchar *pkeys, __global const ulong *pvalid,
                             uint has_valid, uint m, uint width, uint base,
                             __global const ulong2 *table, ulong nslots, __global uint *pstart,
                             __global ulong *counts)
{
    uint j = (uint)get_global_id(0);
    if (j >= m)
        return;
    uint first = 0;
    ulong c = 0;
    if (valid_at(pvalid, has_valid, j)) {
        ulong key = key_at(pkeys, width, j);
        ulong mask = nslots - 1, pos = tsr_hash_u64(key) & mask;
        for (ulong p = 0; p < nslots; p++) {
            ulong2 e = table[pos];
            if (e.y == 0)
                break;
            if (e.x == key) {
                first = (uint)e.y;
                c = e.y >> 32;
                break;
            }
            pos = (pos + 1) & mask;
        }
    }
    pstart[(ulong)base + j] = first;
    counts[(ulong)base + j] = c;
}

/* One work-item per probe row j < n: writes the pairs of row j that fall in
 * the output window [win, win + wcap) to out_*[position - win]. */
__kernel void tsr_join_write(__global const uint *pstart, __global const ulong *offsets, uint n,
                             __global const uint *rows, ulong win, ulong wcap,
                             __global uint *out_probe, __global uint *out_build)
{
    uint j = (uint)get_global_id(0);
    if (j >= n)
        return;
    ulong o = offsets[j], e = offsets[j + 1];
    ulong lo = o > win ? o : win, hi = e < win + wcap ? e : win + wcap;
    if (lo >= hi)
        return;
    ulong b = pstart[j] + (lo - o);
    for (ulong t = lo; t < hi; t++) {
        out_probe[t - win] = j;
        out_build[t - win] = rows[b + (t - lo)];
    }
}
