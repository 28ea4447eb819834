/*
 * fill.cuh - the pattern fill behind tsr_dev_fill on CUDA devices (patterns
 * of 2..128 bytes; single bytes and uniform patterns go to cudaMemsetAsync).
 * Aligned fills write whole 64-bit words (a pattern of at most 8 bytes is
 * repeated into one word; a longer one is a cycle of words), anything else
 * goes byte by byte.
 */
#ifndef TSR_KERNELS_CUDA_FILL_CUH
#define TSR_KERNELS_CUDA_FILL_CUH

#include <string.h>

#include "compat.cuh"

typedef struct tsr_cuda_fill_view {
    uint8_t *dst;
    uint64_t n;       /* words (word mode) or bytes */
    uint64_t pat[16]; /* the pattern, repeated to a whole word when shorter */
    uint32_t period;  /* word mode: pattern words; byte mode: pattern bytes */
    uint32_t words;   /* 1: word mode */
} tsr_cuda_fill_view_t;

/* Host side: the view for filling size bytes at dst with pattern. */
static inline void tsr_cuda_fill_plan(tsr_cuda_fill_view_t *f, void *dst, size_t size,
                                      const void *pattern, size_t psize)
{
    memset(f, 0, sizeof(*f));
    f->dst = (uint8_t *)dst;
    uint8_t *pb = (uint8_t *)f->pat;
    for (size_t i = 0; i < (psize < 8 ? 8 : psize); i++)
        pb[i] = ((const uint8_t *)pattern)[i % psize];
    if (((uintptr_t)dst & 7) == 0 && size % 8 == 0) {
        f->words = 1;
        f->n = size / 8;
        f->period = psize < 8 ? 1 : (uint32_t)(psize / 8);
    } else {
        f->n = size;
        f->period = (uint32_t)psize;
    }
}

TSR_DEV void fill_body(const tsr_cuda_fill_view_t *f)
{
    const uint64_t step = (uint64_t)TSR_GDIM * TSR_BDIM;
    uint64_t i = (uint64_t)TSR_BID * TSR_BDIM + TSR_TID;
    if (f->words) {
        uint64_t *d = (uint64_t *)f->dst;
        for (; i < f->n; i += step)
            d[i] = f->pat[i % f->period];
    } else {
        const uint8_t *pb = (const uint8_t *)f->pat;
        for (; i < f->n; i += step)
            f->dst[i] = pb[i % f->period];
    }
}

#endif /* TSR_KERNELS_CUDA_FILL_CUH */
