/*
 * compat.cuh - the few CUDA built-ins the kernels use, behind names that also
 * exist in the CUDA emulator of the tests (tests/cudaemu/emu.h).
 *
 * The kernel bodies (hashagg.cuh, hashmap.cuh, fill.cuh) are written in the
 * common subset of C and CUDA C++ and use only these names for thread
 * indices, barriers, atomics and warp collectives. hashagg.cu etc. compile
 * them for the GPU; the emulator compiles the very same bodies as C, one host
 * thread per CUDA thread, so the tests execute the kernels' logic (probing,
 * claiming, retry lists, 128-bit sums, warp reductions) on every machine.
 *
 * Rules for code behind this header:
 *  - warp collectives (tsr_match_any[_u64], tsr_ballot, tsr_any, tsr_shfl_u64) are
 *    called by all 32 lanes of the warp (full mask): loops around them have a
 *    warp-uniform trip count and inactive lanes pass neutral values;
 *  - register arrays are indexed with constants only (TSR_UNROLL loops; a
 *    TSR_NOUNROLL loop over them moves the elements down a slot per trip
 *    and reads slot 0, as hashagg_ops.cuh's ha_rows_shift);
 *  - words other threads write concurrently are read with tsr_ld_volatile_*.
 */
#ifndef TSR_KERNELS_CUDA_COMPAT_CUH
#define TSR_KERNELS_CUDA_COMPAT_CUH

#include <stdint.h>

#ifdef TSR_CUDA_EMU
#include "emu.h" /* tests/cudaemu: the same names, on host threads */
#else

#define TSR_DEV static __device__ __forceinline__
#define TSR_UNROLL _Pragma("unroll")
#define TSR_NOUNROLL _Pragma("unroll 1") /* one copy of the body in the code (i-cache) */
#define TSR_TID ((uint32_t)threadIdx.x)
#define TSR_BID ((uint32_t)blockIdx.x)
#define TSR_BDIM ((uint32_t)blockDim.x)
#define TSR_GDIM ((uint32_t)gridDim.x)
#define TSR_LANE ((uint32_t)threadIdx.x & 31u)
#define TSR_SYNC() __syncthreads()
/* Reconverges the warp (all 32 lanes call it). After divergent per-row work
 * (probing, claims, atomics) lanes do not reconverge by themselves, and the
 * next rows' loads then issue as several partial requests fetching the same
 * sectors again (measured: 6 of 32 lanes per load, 3x the input's sectors). */
#define TSR_SYNC_WARP() __syncwarp()
#define TSR_FENCE_BLOCK() __threadfence_block()
#define TSR_SPIN_PAUSE() __nanosleep(32)

TSR_DEV uint64_t tsr_ld_volatile_u64(const uint64_t *p)
{
    return *(const volatile uint64_t *)p;
}
TSR_DEV uint32_t tsr_ld_volatile_u32(const uint32_t *p)
{
    return *(const volatile uint32_t *)p;
}
TSR_DEV void tsr_st_volatile_u64(uint64_t *p, uint64_t v)
{
    *(volatile uint64_t *)p = v;
}
TSR_DEV uint64_t tsr_atom_cas_u64(uint64_t *p, uint64_t cmp, uint64_t val)
{
    return (uint64_t)atomicCAS((unsigned long long *)p, (unsigned long long)cmp,
                               (unsigned long long)val);
}
TSR_DEV uint32_t tsr_atom_cas_u32(uint32_t *p, uint32_t cmp, uint32_t val)
{
    return atomicCAS((unsigned *)p, cmp, val);
}
/* Loads the 16-byte pair p[0], p[1] (p 16-byte aligned) in one access. */
TSR_DEV void tsr_ld_u64x2(const uint64_t *p, uint64_t *a, uint64_t *b)
{
    ulonglong2 v = *(const ulonglong2 *)p;
    *a = (uint64_t)v.x;
    *b = (uint64_t)v.y;
}
/* Orders the memory accesses of the warp's lanes (all 32 call it). */
TSR_DEV void tsr_syncwarp(void)
{
    __syncwarp(0xffffffffu);
}
TSR_DEV uint64_t tsr_atom_exch_u64(uint64_t *p, uint64_t val)
{
    return (uint64_t)atomicExch((unsigned long long *)p, (unsigned long long)val);
}
TSR_DEV uint64_t tsr_atom_add_u64(uint64_t *p, uint64_t v)
{
    return (uint64_t)atomicAdd((unsigned long long *)p, (unsigned long long)v);
}
TSR_DEV uint32_t tsr_atom_add_u32(uint32_t *p, uint32_t v)
{
    return atomicAdd((unsigned *)p, v);
}
TSR_DEV void tsr_atom_min_i64(int64_t *p, int64_t v)
{
    atomicMin((long long *)p, (long long)v);
}
TSR_DEV void tsr_atom_max_i64(int64_t *p, int64_t v)
{
    atomicMax((long long *)p, (long long)v);
}
TSR_DEV void tsr_atom_add_f64(double *p, double v)
{
    atomicAdd(p, v);
}
TSR_DEV uint32_t tsr_match_any(uint32_t v)
{
    return __match_any_sync(0xffffffffu, v);
}
/* Lanes whose 64-bit v equals this lane's (hash aggregation groups lanes by
 * their key's hash: one MATCH.ANY.U64). */
TSR_DEV uint32_t tsr_match_any_u64(uint64_t v)
{
    return __match_any_sync(0xffffffffu, (unsigned long long)v);
}
TSR_DEV uint32_t tsr_ballot(int pred)
{
    return __ballot_sync(0xffffffffu, pred);
}
TSR_DEV int tsr_any(int pred)
{
    return __any_sync(0xffffffffu, pred);
}
TSR_DEV uint64_t tsr_shfl_u64(uint64_t v, uint32_t src)
{
    return (uint64_t)__shfl_sync(0xffffffffu, (unsigned long long)v, (int)src);
}
TSR_DEV uint32_t tsr_popc(uint32_t m)
{
    return (uint32_t)__popc(m);
}
/* 1-based index of the lowest set bit, 0 for 0 */
TSR_DEV uint32_t tsr_ffs(uint32_t m)
{
    return (uint32_t)__ffs((int)m);
}
/* The high 64 bits of the 128-bit product a * b. */
TSR_DEV uint64_t tsr_mulhi_u64(uint64_t a, uint64_t b)
{
    return (uint64_t)__umul64hi((unsigned long long)a, (unsigned long long)b);
}
TSR_DEV double tsr_as_f64(uint64_t b)
{
    return __longlong_as_double((long long)b);
}
TSR_DEV uint64_t tsr_as_u64(double d)
{
    return (uint64_t)__double_as_longlong(d);
}
TSR_DEV int tsr_isnan(double d)
{
    return isnan(d);
}

#endif /* TSR_CUDA_EMU */

#endif /* TSR_KERNELS_CUDA_COMPAT_CUH */
