/*
 * stage_common.h - the backend-independent part of the pinned staging pools
 * of cuda_stage.c and opencl_stage.c: validation of a pool's shape, the
 * rotation of its buffers piece by piece, the queue of downloads in flight,
 * the retry backoff after a failed pool, and host copies split over helper
 * threads. The buffers, events and transfers stay in the backend files.
 *
 * Invariant: a pool has at most TSR_DEV_STAGE_MAX buffers (each backend's
 * own maximum is checked against it at compile time).
 */
#ifndef TSR_DEVICE_STAGE_COMMON_H
#define TSR_DEVICE_STAGE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/pool.h"

#define TSR_DEV_STAGE_MAX 4

/* Checks a requested pool shape: piece 0 (staging off), or 2..max buffers
 * of a multiple of 64 bytes (at least 64). */
tsr_status_t tsr_dev_stage_check(size_t piece, unsigned count, unsigned max, tsr_error_t *err);

/* The next piece of a copy with left bytes to go: returns its length
 * (at most piece), sets *buf to the buffer it uses and rotates *next. */
size_t tsr_dev_stage_next(unsigned *next, unsigned count, size_t piece, size_t left,
                          unsigned *buf);

/* Copies the staged/direct byte counters out (either pointer may be NULL). */
void tsr_dev_stage_stats_out(uint64_t staged, uint64_t direct, uint64_t *staged_out,
                             uint64_t *direct_out);

/* The pieces of a download in flight, oldest first. */
typedef struct tsr_dev_stage_fl {
    struct {
        unsigned buf;
        size_t off, len;
    } e[TSR_DEV_STAGE_MAX];
    unsigned head, n;
} tsr_dev_stage_fl_t;

void tsr_dev_stage_fl_push(tsr_dev_stage_fl_t *fl, unsigned buf, size_t off, size_t len);
/* Removes the oldest piece (fl->n > 0) and returns it through buf/off/len. */
void tsr_dev_stage_fl_pop(tsr_dev_stage_fl_t *fl, unsigned *buf, size_t *off, size_t *len);

/* The next backoff (in copies) after a pool failed: 16, 32, ... 4096. */
unsigned tsr_dev_stage_backoff(unsigned backoff);

/* memcpy, split over copiers (may be NULL: inline) when len is large. */
void tsr_dev_stage_memcpy(tsr_pool_t *copiers, void *dst, const void *src, size_t len);

#endif /* TSR_DEVICE_STAGE_COMMON_H */
