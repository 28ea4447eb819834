/*
 * hash.cuh - Tessera's hash of 64-bit values on the device: bit for bit the
 * tsr_hash_u64 and tsr_hash_combine of engine/core/hash.h (and of
 * kernels/opencl/hashagg.cl), so group hashes agree across devices. The unit
 * tests compare the kernels' group hashes with the CPU executor's.
 */
#ifndef TSR_KERNELS_CUDA_HASH_CUH
#define TSR_KERNELS_CUDA_HASH_CUH

#include "compat.cuh"

#define TSR_K_NULL_HASH 0x2545f4914f6cdd1dULL /* the hash of a NULL key value */

/* murmur3/splitmix-style finaliser: bijective on 64 bits. */
TSR_DEV uint64_t tsr_k_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Combines the hash of one more key column into a running composite hash. */
TSR_DEV uint64_t tsr_k_hash_combine(uint64_t seed, uint64_t h)
{
    return tsr_k_hash_u64(seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

#endif /* TSR_KERNELS_CUDA_HASH_CUH */
