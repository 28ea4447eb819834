/*
 * hash.h - the one hash function of Tessera (XXH3, 64-bit).
 *
 * Every component (CPU operators, and later the OpenCL and CUDA kernels) must
 * hash the same value to the same 64 bits, so results and partitioning agree
 * across devices. Integers hash through tsr_hash_u64 (a cheap, strong mixer that
 * kernels can reimplement in a few lines); strings through XXH3 of their bytes.
 * Doubles hash their bit pattern after normalising -0.0 to 0.0 and every NaN
 * to one quiet NaN (TSR_HASH_NAN_BITS).
 */
#ifndef TSR_CORE_HASH_H
#define TSR_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* murmur3/splitmix-style finaliser: bijective on 64 bits. */
static inline uint64_t tsr_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The bits of every NaN, once normalised: NaNs differ in sign and payload
 * (inf - inf and its negation), but group, hash and sort as one value. */
#define TSR_HASH_NAN_BITS 0x7ff8000000000000ULL

static inline uint64_t tsr_hash_double(double d)
{
    uint64_t bits;
    if (d == 0.0)
        d = 0.0; /* -0.0 == 0.0 must hash alike */
    memcpy(&bits, &d, sizeof(bits));
    if (d != d)
        bits = TSR_HASH_NAN_BITS;
    return tsr_hash_u64(bits);
}

static inline uint64_t tsr_hash_bytes(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

/* Combines the hash of one more key column into a running composite hash. */
static inline uint64_t tsr_hash_combine(uint64_t seed, uint64_t h)
{
    return tsr_hash_u64(seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

#endif /* TSR_CORE_HASH_H */
