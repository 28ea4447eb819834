/*
 * partition.cl - hash partitioning (OpenCL C 1.2, no extensions): rows -> P
 * partitions by the top bits of their key hash, as row numbers grouped by
 * partition, stable within a partition.
 *
 * Host side: engine/device/partition_opencl.c; semantics and the partition
 * function: engine/device/partition.h; the sequential model:
 * engine/device/partition_cpu.c.
 *
 * Stability without atomics: the launch's m rows are cut into T runs of
 * `per` consecutive rows, one work-item per run, and every pass walks its run
 * in order. The counts live in a matrix hist[p*T + t] (partition-major), so
 * one exclusive scan over the whole matrix (scan.cl) gives run t the first
 * position of its rows of partition p: after all partitions < p, and after
 * the rows of partition p in runs < t. Passes:
 *
 *   tsr_part_hist     run t counts its rows per partition -> column t
 *   scan(hist)        -> the positions described above; hist[P*T] = m
 *   tsr_part_starts   starts[p] = hist[p*T]: each partition's first row
 *   tsr_part_scatter  run t walks its rows again, each to the next position
 *                     of its partition
 *
 * A run's P counters are private to its work-item: in local memory when
 * P * work-group size fits (use_local; written to the matrix at the end,
 * where neighbouring work-items write neighbouring entries), else directly in
 * the matrix. Nobody shares a counter, so no atomics are needed.
 *
 * Hash (bit for bit core/hash.h and hashagg.cl's key hash): per key column
 * tsr_hash_u64(v), or NULL_HASH when NULL, folded with tsr_hash_combine; or
 * the caller's hashes (hashed). Partition = mul_hi(h, P).
 */
#define INLINE inline __attribute__((always_inline))
#define NULL_HASH 0x2545f4914f6cdd1dUL
#define MAX_KEYS 4

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

/* Row i's partition. Key column k at keys + k*cap, its validity words at
 * kvalid + k*(cap/64) when bit k of kvmask is set. */
INLINE uint part_of(__global const ulong *keys, __global const ulong *kvalid, uint kvmask,
                    uint nkeys, uint hashed, uint cap, uint i, uint nparts)
{
    ulong h;
    if (hashed) {
        h = keys[i];
    } else {
        h = 0;
        for (uint k = 0; k < nkeys && k < MAX_KEYS; k++) {
            uint valid = ((kvmask >> k) & 1u) == 0 ||
                         ((kvalid[(size_t)k * (cap / 64) + (i >> 6)] >> (i & 63)) & 1u);
            ulong hk = valid ? tsr_hash_u64(keys[(size_t)k * cap + i]) : NULL_HASH;
            h = k == 0 ? hk : tsr_hash_combine(h, hk);
        }
    }
    return (uint)mul_hi(h, (ulong)nparts);
}

__kernel void tsr_part_hist(__global const ulong *keys, __global const ulong *kvalid,
                            uint kvmask, uint nkeys, uint hashed, uint cap, uint m, uint per,
                            uint nparts, uint T, __global ulong *hist, __local uint *lc,
                            uint use_local)
{
    uint t = (uint)get_global_id(0);
    if (t >= T)
        return;
    uint begin = t * per, end = m - begin < per ? m : begin + per;
    if (use_local) {
        __local uint *c = lc + (size_t)get_local_id(0) * nparts;
        for (uint p = 0; p < nparts; p++)
            c[p] = 0;
        for (uint i = begin; i < end; i++)
            c[part_of(keys, kvalid, kvmask, nkeys, hashed, cap, i, nparts)]++;
        for (uint p = 0; p < nparts; p++)
            hist[(size_t)p * T + t] = c[p];
    } else {
        for (uint p = 0; p < nparts; p++)
            hist[(size_t)p * T + t] = 0;
        for (uint i = begin; i < end; i++)
            hist[(size_t)part_of(keys, kvalid, kvmask, nkeys, hashed, cap, i, nparts) * T + t]++;
    }
}

__kernel void tsr_part_starts(__global const ulong *hist, uint T, uint nparts,
                              __global ulong *starts)
{
    uint p = (uint)get_global_id(0);
    if (p <= nparts)
        starts[p] = hist[(size_t)p * T];
}

/* out_keys: key column k at out_keys + k*cap where bit k of want_keys is set. */
__kernel void tsr_part_scatter(__global const ulong *keys, __global const ulong *kvalid,
                               uint kvmask, uint nkeys, uint hashed, uint cap, uint m, uint per,
                               uint nparts, uint T, __global ulong *hist, __global uint *out_rows,
                               __global ulong *out_keys, uint want_keys, uint row_base,
                               __local uint *lc, uint use_local)
{
    uint t = (uint)get_global_id(0);
    if (t >= T)
        return;
    uint begin = t * per, end = m - begin < per ? m : begin + per;
    __local uint *c = lc + (size_t)get_local_id(0) * nparts;
    if (use_local)
        for (uint p = 0; p < nparts; p++)
            c[p] = (uint)hist[(size_t)p * T + t];
    for (uint i = begin; i < end; i++) {
        uint p = part_of(keys, kvalid, kvmask, nkeys, hashed, cap, i, nparts);
        uint at = use_local ? c[p]++ : (uint)hist[(size_t)p * T + t]++;
        out_rows[at] = row_base + i;
        for (uint k = 0; k < nkeys && k < MAX_KEYS; k++)
            if ((want_keys >> k) & 1u)
                out_keys[(size_t)k * cap + at] = keys[(size_t)k * cap + i];
    }
}
