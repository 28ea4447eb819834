/*
 * scan.cl - exclusive prefix sum of a ulong array (OpenCL C 1.2, no
 * extensions), the building block of stream compaction (filter.cl), "count
 * then write" joins (hashjoin.cl) and partitioning (partition.cl).
 *
 * Host side: engine/device/opencl_launch.c (tsr_dev_cl_scan). The array has
 * n + 1 entries; afterwards data[i] = sum of the old data[0..i) and data[n] =
 * the total, so a count array becomes an offset array in place.
 *
 * Three launches (the classic reduce-then-scan; no work-group waits for
 * another, which OpenCL 1.2 cannot promise):
 *
 *   tsr_scan_reduce  work-group g sums its block [g*B, (g+1)*B), B = lsz*items,
 *                    into sums[g]
 *   tsr_scan_blocks  one work-group turns sums[0..nblocks) into their exclusive
 *                    prefix sum, sums[nblocks] = the total (loops over the
 *                    sums lsz at a time: nblocks/lsz rounds)
 *   tsr_scan_apply   work-group g stages its block in local memory (coalesced
 *                    loads), each work-item scans a contiguous run of `items`
 *                    entries, a local scan of the run totals gives each run
 *                    its start, and the block is written back plus sums[g]
 *
 * The work-group size is a power of two (the host rounds it down), which the
 * tree reduction and the Hillis-Steele local scan below rely on. Every loop is
 * bounded by the launch's sizes.
 */

/* Exclusive scan of one value per work-item over the work-group; tmp holds
 * lsz entries. Returns the exclusive prefix; *total gets the group's sum. */
inline ulong wg_scan_excl(__local ulong *tmp, ulong v, uint lid, uint lsz, ulong *total)
{
    tmp[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint off = 1; off < lsz; off <<= 1) {
        ulong t = lid >= off ? tmp[lid - off] : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        tmp[lid] += t;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    ulong incl = tmp[lid];
    *total = tmp[lsz - 1];
    barrier(CLK_LOCAL_MEM_FENCE); /* tmp is reused by the caller */
    return incl - v;
}

__kernel void tsr_scan_reduce(__global const ulong *data, ulong n, uint items,
                              __global ulong *sums, __local ulong *tmp)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    ulong base = (ulong)get_group_id(0) * lsz * items;
    ulong s = 0;
    /* strided by lsz: neighbouring work-items read neighbouring entries */
    for (uint i = 0; i < items; i++) {
        ulong idx = base + (ulong)i * lsz + lid;
        if (idx < n)
            s += data[idx];
    }
    tmp[lid] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint hs = lsz >> 1; hs > 0; hs >>= 1) {
        if (lid < hs)
            tmp[lid] += tmp[lid + hs];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        sums[get_group_id(0)] = tmp[0];
}

__kernel void tsr_scan_blocks(__global ulong *sums, uint nblocks, __local ulong *tmp)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    ulong carry = 0;
    for (uint start = 0; start < nblocks; start += lsz) {
        uint i = start + lid;
        ulong v = i < nblocks ? sums[i] : 0, total;
        ulong ex = wg_scan_excl(tmp, v, lid, lsz, &total);
        if (i < nblocks)
            sums[i] = carry + ex;
        carry += total;
    }
    if (lid == 0)
        sums[nblocks] = carry;
}

__kernel void tsr_scan_apply(__global ulong *data, ulong n, uint items,
                             __global const ulong *sums, uint nblocks, __local ulong *block,
                             __local ulong *tmp)
{
    uint lid = (uint)get_local_id(0), lsz = (uint)get_local_size(0);
    uint g = (uint)get_group_id(0);
    ulong base = (ulong)g * lsz * items;
    uint bsize = lsz * items;
    for (uint i = lid; i < bsize; i += lsz)
        block[i] = base + i < n ? data[base + i] : 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    /* this work-item's run: block[lid*items, (lid+1)*items) */
    ulong run = 0;
    for (uint i = 0; i < items; i++)
        run += block[lid * items + i];
    ulong total;
    ulong acc = sums[g] + wg_scan_excl(tmp, run, lid, lsz, &total);
    for (uint i = 0; i < items; i++) {
        ulong v = block[lid * items + i];
        block[lid * items + i] = acc;
        acc += v;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint i = lid; i < bsize; i += lsz)
        if (base + i < n)
            data[base + i] = block[i];
    if (g == 0 && lid == 0)
        data[n] = sums[nblocks];
}
