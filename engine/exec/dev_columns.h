/*
 * dev_columns.h - a query's columns on its device: the residency layer that
 * lets the device operators of one query (dev_filter.c, dev_aggregate.c,
 * dev_join.c) upload a column chunk once and reuse it, instead of each
 * operator copying its inputs in and its results out. Private to
 * engine/exec/.
 *
 * What is cached: a *column chunk*, the values of one column over the
 * batches [b0, b1) of a table (the chunks of dev_exec.h, at most
 * TSR_DEV_EXEC_CHUNK_ROWS rows), in one of three forms:
 *
 *   RAW    the 8-byte values as stored (INT64, DOUBLE), plus validity
 *   KEY    hash-aggregation keys normalised to 64 bits (exec/hashtable.h:
 *          DOUBLE -0.0 as 0.0 and one NaN, BOOL 0/1, VARCHAR codes widened),
 *          plus validity
 *   VALID  the validity only (COUNT(column) reads nothing else)
 *
 * Device layout of an entry: values, rows * 8 bytes; validity, a bitmap of
 * (rows + 63) / 64 words (bit i set = row i not NULL), absent when no batch
 * of the chunk has a bitmap. A VALID request is answered by any form of the
 * same chunk that carries its validity.
 *
 * Identity: a chunk is named by its batches' vectors (data and validity
 * addresses and lengths), compared exactly. Addresses only name data that
 * cannot change or be freed while the query runs, so only chunks of *base*
 * inputs (tsr_op_input_t.is_base: scans borrowing catalog storage) are
 * kept between operators (keep = true). Chunks of intermediate results
 * (whose memory the walk frees and may reuse within the query) are uploaded
 * as transient entries, dropped at the next unpin.
 *
 * Lifetime and bounds: one cache per query, inside the executor's walk
 * (dev_exec.h's tsr_exec_walk_t), emptied by tsr_dev_cols_clear when the
 * query ends. Entries a running operator uses are pinned until it calls
 * tsr_dev_cols_unpin (after each chunk). The bytes on the device stay
 * within a limit (tsr_dev_t.col_limit, else a quarter of the device's
 * memory): a new entry first evicts unpinned entries, least recently used
 * first; when it still does not fit, or the device cannot allocate it even
 * after evicting every unpinned entry, the request answers *fits = false
 * and the operator runs that chunk with per-operator copies (the host-input
 * kernels), counted in stats.col_fallbacks.
 *
 * Counting: uploads go through tsr_dev_write, so the device's
 * stats.bytes_h2d sees them; the cache adds its own counts to the device's
 * stats (col_uploads, col_hits, col_evictions, col_fallbacks) and to its
 * per-query copy (tsr_dev_cols_t.stats).
 */
#ifndef TSR_EXEC_DEV_COLUMNS_H
#define TSR_EXEC_DEV_COLUMNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device/device.h"
#include "table/table.h"

typedef enum tsr_dev_col_kind {
    TSR_DEV_COL_RAW,
    TSR_DEV_COL_KEY,
    TSR_DEV_COL_VALID,
    TSR_DEV_COL_SCRATCH, /* a query-owned device buffer with no host column (selections) */
} tsr_dev_col_kind_t;

/* A column chunk on the device, as operators see it (valid until unpin). */
typedef struct tsr_dev_col {
    size_t rows;
    tsr_dev_buf_t *values; /* rows * 8 bytes; NULL for VALID */
    tsr_dev_buf_t *valid;  /* NULL: no NULLs in the chunk */
} tsr_dev_col_t;

typedef struct tsr_dev_cols_entry tsr_dev_cols_entry_t;

typedef struct tsr_dev_cols {
    tsr_dev_t *dev;             /* NULL until first used */
    tsr_mem_t *mem;             /* host memory of entries and staging */
    size_t limit;               /* bytes entries may hold on the device */
    size_t used;                /* bytes they hold now */
    tsr_dev_cols_entry_t *head; /* entries, most recently used first */
    uint64_t *staging;          /* host staging of one upload (blocking writes) */
    size_t staging_words;
    long fail_after;       /* test hook: device allocations left before they
                              all fail (< 0: off) */
    tsr_dev_stats_t stats; /* this query's counts (col_* fields only) */
} tsr_dev_cols_t;

/* An empty cache for dev (limit: dev->col_limit, else a quarter of the
 * device's memory). Owns nothing yet. */
void tsr_dev_cols_init(tsr_dev_cols_t *c, tsr_mem_t *mem, tsr_dev_t *dev);

/* Frees every entry (pinned ones too) and the staging buffer; c can be
 * used again afterwards. Accepts a zeroed, never initialised cache. */
void tsr_dev_cols_clear(tsr_dev_cols_t *c);

/* The chunk [b0, b1) of column col of t in form kind (RAW: INT64 or DOUBLE
 * columns only; KEY: INT64, DOUBLE, BOOL or VARCHAR), resident and pinned
 * in *out. keep: t is a base input whose storage outlives the query (see
 * the top of the file), else the entry is dropped at the next unpin.
 * *fits = false (TSR_OK, *out untouched) when it cannot be placed on the
 * device; other failures are returned. */
tsr_status_t tsr_dev_cols_get(tsr_dev_cols_t *c, const tsr_table_t *t, size_t col, size_t b0,
                              size_t b1, tsr_dev_col_kind_t kind, bool keep, tsr_dev_col_t *out,
                              bool *fits, tsr_error_t *err);

/* A pinned scratch buffer of bytes (> 0) on the device, within the same
 * limit, freed at the next unpin (a filter's selection, which then feeds
 * the next operator without leaving the device). *fits as above. */
tsr_status_t tsr_dev_cols_scratch(tsr_dev_cols_t *c, size_t bytes, tsr_dev_buf_t **out, bool *fits,
                                  tsr_error_t *err);

/* Ends an operator's use of what it got: unpins every entry and frees the
 * transient ones and scratch buffers. */
void tsr_dev_cols_unpin(tsr_dev_cols_t *c);

/* Counts one chunk that fell back to per-operator copies. */
void tsr_dev_cols_note_fallback(tsr_dev_cols_t *c);

/* Entries and bytes resident now (tests). */
size_t tsr_dev_cols_count(const tsr_dev_cols_t *c);

#endif /* TSR_EXEC_DEV_COLUMNS_H */
