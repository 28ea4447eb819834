/*
 * split.h - cutting a CSV file into byte ranges of whole rows.
 *
 * The scheduler splits each input file so every worker parses its own share.
 * Cut points are row starts found quote-aware: a '\n' ends a row only when an
 * even number of '"' precede it (RFC 4180: every quote, escaped "" included,
 * toggles the in-quotes state), so a quoted field holding newlines is never
 * cut. Finding them reads the file once with memchr (the scheduler needs the
 * file on a path it can read: one host, or a shared file system); parsing
 * stays on the workers.
 *
 * A worker loads range [start, end) as the header bytes [0, header_end)
 * followed by the range's bytes: a well-formed CSV file of its own.
 */
#ifndef TSR_SCHED_SPLIT_H
#define TSR_SCHED_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"

typedef struct tsr_split_range {
    uint64_t start; /* first byte of the range's first row */
    uint64_t end;   /* one past its last byte (the next range's start) */
} tsr_split_range_t;

typedef struct tsr_split {
    uint64_t size;       /* file size when split */
    uint64_t header_end; /* one past the header row's '\n' (size when none) */
    size_t nranges;      /* at least 1; a header-only file has one empty range */
    tsr_split_range_t *ranges;
} tsr_split_t;

/* Splits the file into at most want ranges of at least min_bytes each (0:
 * no minimum). TSR_ERR_NOT_FOUND when the file cannot be opened. */
tsr_status_t tsr_split_csv(tsr_mem_t *mem, const char *path, size_t want, uint64_t min_bytes,
                           tsr_split_t *out, tsr_error_t *err);
void tsr_split_free(tsr_mem_t *mem, tsr_split_t *s);

/* Broadcast joins (rewrite.h JOIN): which of n files to split. The largest
 * file (by size on disk; the first of equal ones) is split and the others
 * are read whole by every range task, which is worth it only while they are
 * small: their sizes together must be at most max_rest.
 * Returns NULL with *pick and *rest (the others' bytes) set, else why not
 * (static text): a file that cannot be stat'ed (the worker reports the real
 * error when the query runs whole), or the others too large. */
const char *tsr_split_pick(size_t n, const char *const *paths, uint64_t max_rest, size_t *pick,
                           uint64_t *rest);

/* The same on a buffer (tests). */
tsr_status_t tsr_split_buffer(tsr_mem_t *mem, const char *data, size_t len, size_t want,
                              uint64_t min_bytes, tsr_split_t *out);

#endif /* TSR_SCHED_SPLIT_H */
