/*
 * hashagg.h - hash aggregation on a device: the host-side signature of the
 * kernel family, shared by every backend (hashagg_cpu.c, hashagg_opencl.c,
 * later hashagg_cuda.c).
 *
 * Use (cuCollections' pattern: an owning host object, bulk operations that
 * take a queue):
 *
 *   tsr_dev_hashagg_create(dev, &spec, &ha, err);
 *   tsr_dev_hashagg_update(ha, q, &rows, err);      // any number of times
 *   n = tsr_dev_hashagg_ngroups(ha);                // allocate outputs of n
 *   tsr_dev_hashagg_result(ha, q, &out, err);
 *   tsr_dev_hashagg_destroy(ha);
 *
 * Semantics (those of engine/exec, see exec/plan.h):
 *  - Keys: 0..4 columns handed over *normalised* to 64 bits (INT64 bits,
 *    DOUBLE bits with -0.0 as 0.0, BOOL 0/1, VARCHAR dictionary codes) with an
 *    optional validity bitmap each (bit i of word i/64 set = row i not NULL).
 *    Keys are equal when every column is equal or NULL on both sides (NULLs
 *    group together). With 0 key columns every row is the one group; no rows
 *    then means no group (the caller adds SQL's one empty-aggregate row).
 *  - Hash of a key (the cross-device contract of core/hash.h and
 *    exec/hashtable.h): tsr_hash_u64(v) per column, TSR_HT_NULL_HASH for a
 *    NULL, combined with tsr_hash_combine; 0 with no key columns. (A VARCHAR
 *    column hashes its code here, not the string; see docs/devices.md.)
 *  - Aggregates skip NULLs. COUNT_STAR counts rows, COUNT non-NULL values.
 *    SUM(INT64) is exact (128-bit state): it fails with TSR_ERR_OVERFLOW only
 *    when a final sum does not fit 64 bits, whatever the order of rows.
 *    SUM(DOUBLE) may differ from a sequential sum by rounding only. MIN/MAX of
 *    DOUBLE order NaN above every number (MIN skips NaN unless all are NaN).
 *    A group whose values are all NULL has count 0 and value 0 (SQL NULL).
 *    AVG is SUM / COUNT on the host.
 *  - Output order of groups is unspecified (differs between backends).
 */
#ifndef TSR_DEVICE_HASHAGG_H
#define TSR_DEVICE_HASHAGG_H

#include "core/hash.h"
#include "device/device.h"
#include "tessera/types.h"

#define TSR_DEV_HASHAGG_MAX_KEYS 4
#define TSR_DEV_HASHAGG_MAX_AGGS 16
/* State columns: rows, then per aggregate at most nulls, value, high word. */
#define TSR_DEV_HASHAGG_MAX_SCOLS (1 + 3 * TSR_DEV_HASHAGG_MAX_AGGS)
/* The hash of a NULL key value (same as exec/hashtable.h's TSR_HT_NULL_HASH). */
#define TSR_DEV_NULL_HASH 0x2545f4914f6cdd1dULL

typedef enum tsr_dev_agg_kind {
    TSR_DEV_AGG_COUNT_STAR, /* rows of the group (no argument) */
    TSR_DEV_AGG_COUNT,      /* non-NULL argument values */
    TSR_DEV_AGG_SUM,
    TSR_DEV_AGG_MIN,
    TSR_DEV_AGG_MAX,
} tsr_dev_agg_kind_t;

typedef struct tsr_dev_agg_spec {
    tsr_dev_agg_kind_t kind;
    tsr_type_t type; /* of the argument: TSR_TYPE_INT64 or TSR_TYPE_DOUBLE (COUNT_STAR: any) */
} tsr_dev_agg_spec_t;

/* How a backend with a choice updates its table (others ignore it). */
typedef enum tsr_dev_hashagg_strategy {
    TSR_DEV_HASHAGG_AUTO = 0, /* the backend picks (by the groups seen so far) */
    TSR_DEV_HASHAGG_GLOBAL,   /* every row updates the global table (many groups) */
    TSR_DEV_HASHAGG_LOCAL,    /* work-group pre-aggregation first (few groups) */
} tsr_dev_hashagg_strategy_t;

typedef struct tsr_dev_hashagg_spec {
    size_t nkeys; /* 0..TSR_DEV_HASHAGG_MAX_KEYS */
    size_t naggs; /* 0..TSR_DEV_HASHAGG_MAX_AGGS */
    tsr_dev_agg_spec_t aggs[TSR_DEV_HASHAGG_MAX_AGGS];
    size_t expected_groups; /* sizing hint; 0: a small default. Exceeding it only costs a resize */
    tsr_dev_hashagg_strategy_t strategy; /* AUTO unless testing or benchmarking one path */
} tsr_dev_hashagg_spec_t;

/* One batch of input rows, in host memory (any n; backends split it). */
typedef struct tsr_dev_hashagg_rows {
    size_t n;
    const uint64_t *keys[TSR_DEV_HASHAGG_MAX_KEYS];      /* n normalised values each */
    const uint64_t *key_valid[TSR_DEV_HASHAGG_MAX_KEYS]; /* NULL: no NULLs */
    const void *values[TSR_DEV_HASHAGG_MAX_AGGS];    /* n int64_t or double; NULL for COUNT_STAR */
    const uint64_t *valid[TSR_DEV_HASHAGG_MAX_AGGS]; /* NULL: no NULLs */
} tsr_dev_hashagg_rows_t;

/* The same input already in device memory (exec/dev_columns.h keeps a
 * query's columns there), with an optional selection: buffers of n 8-byte
 * values and optional validity buffers of (n + 63) / 64 words (NULL: no
 * NULLs); with sel, only rows sel[0 .. nsel) (uint32, each < n) are added,
 * the filter's selection straight from the device (filter.h run_dev). At
 * most TSR_DEV_HASHAGG_DEV_MAX_ROWS rows. */
#define TSR_DEV_HASHAGG_DEV_MAX_ROWS ((size_t)1 << 20)
typedef struct tsr_dev_hashagg_drows {
    size_t n;
    tsr_dev_buf_t *keys[TSR_DEV_HASHAGG_MAX_KEYS];
    tsr_dev_buf_t *key_valid[TSR_DEV_HASHAGG_MAX_KEYS];
    tsr_dev_buf_t *values[TSR_DEV_HASHAGG_MAX_AGGS]; /* NULL for COUNT_STAR and COUNT */
    tsr_dev_buf_t *valid[TSR_DEV_HASHAGG_MAX_AGGS];
    tsr_dev_buf_t *sel; /* NULL: every row */
    size_t nsel;
} tsr_dev_hashagg_drows_t;

/* Caller-allocated outputs with room for tsr_dev_hashagg_ngroups() groups
 * (bitmaps: tsr words of 64 groups). Every array below nkeys / naggs must be
 * given, except hashes and values[] of COUNT kinds (may be NULL). */
typedef struct tsr_dev_hashagg_out {
    uint64_t *keys[TSR_DEV_HASHAGG_MAX_KEYS];      /* normalised keys, 0 under NULL */
    uint64_t *key_valid[TSR_DEV_HASHAGG_MAX_KEYS]; /* bit g: key column not NULL in group g */
    uint64_t *hashes;                              /* NULL, or the groups' hashes */
    int64_t *counts[TSR_DEV_HASHAGG_MAX_AGGS];     /* COUNT_STAR rows, else non-NULL values */
    void *values[TSR_DEV_HASHAGG_MAX_AGGS];        /* SUM/MIN/MAX: int64_t or double */
} tsr_dev_hashagg_out_t;

/* ---- shared by the backends ------------------------------------------------------ */

/* Per-aggregate operation, as kernels switch on it (also in hashagg.cl). */
typedef enum tsr_dev_agg_op {
    TSR_DEV_OP_COUNT_STAR = 0,
    TSR_DEV_OP_COUNT = 1,
    TSR_DEV_OP_SUM_I = 2,
    TSR_DEV_OP_SUM_D = 3,
    TSR_DEV_OP_MIN_I = 4,
    TSR_DEV_OP_MAX_I = 5,
    TSR_DEV_OP_MIN_D = 6,
    TSR_DEV_OP_MAX_D = 7,
} tsr_dev_agg_op_t;

/* State columns of a group table (int64 each, group-indexed, struct of arrays):
 *   column 0           rows of the group
 *   nulls_col[a]       NULL argument values seen (counting NULLs, not values,
 *                      keeps the common no-NULL case free of a counter update)
 *   val_col[a]         SUM: low 64 bits of the 128-bit sum (INT64) or the
 *                      double's bits; MIN/MAX: the int64 or the double's bits
 *   hi_col[a]          SUM(INT64): high 64 bits (two's complement 128-bit sum)
 * -1 where the aggregate has no such column. identity[c]: a new group's value. */
typedef struct tsr_dev_hashagg_layout {
    size_t ncols;
    tsr_dev_agg_op_t op[TSR_DEV_HASHAGG_MAX_AGGS];
    int nulls_col[TSR_DEV_HASHAGG_MAX_AGGS];
    int val_col[TSR_DEV_HASHAGG_MAX_AGGS];
    int hi_col[TSR_DEV_HASHAGG_MAX_AGGS];
    uint64_t identity[TSR_DEV_HASHAGG_MAX_SCOLS];
} tsr_dev_hashagg_layout_t;

typedef struct tsr_dev_hashagg {
    tsr_dev_t *dev;
    tsr_dev_hashagg_spec_t spec;
    tsr_dev_hashagg_layout_t layout;
    size_t ngroups; /* groups so far (kept by the backend's update) */
    void *impl;     /* backend's table */
} tsr_dev_hashagg_t;

/* Raw per-group states a backend's result hands back, ngroups rows each, in
 * the order of the keys it wrote; state[c] is state column c. */
typedef struct tsr_dev_hashagg_raw {
    int64_t *state[TSR_DEV_HASHAGG_MAX_SCOLS];
} tsr_dev_hashagg_raw_t;

struct tsr_dev_hashagg_ops {
    tsr_status_t (*create)(tsr_dev_hashagg_t *ha, tsr_error_t *err);
    void (*destroy)(tsr_dev_hashagg_t *ha);
    /* rows->n > 0, checked. Must keep ha->ngroups current. */
    tsr_status_t (*update)(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                           const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err);
    /* Optional (NULL: host input only): rows in device memory (checked;
     * rows->n > 0 and, with a selection, rows->nsel > 0). */
    tsr_status_t (*update_dev)(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                               const tsr_dev_hashagg_drows_t *rows, tsr_error_t *err);
    /* Writes keys, key_valid (whole words) and hashes (when non-NULL) of out,
     * and the raw states; ha->ngroups > 0, checked. */
    tsr_status_t (*result)(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                           const tsr_dev_hashagg_out_t *out, tsr_dev_hashagg_raw_t *raw,
                           tsr_error_t *err);
};

/* The implementations, one per backend (named by the backend tables). */
extern const tsr_dev_hashagg_ops_t tsr_dev_hashagg_cpu_ops;
extern const tsr_dev_hashagg_ops_t tsr_dev_hashagg_opencl_ops;

/* ---- the host API ----------------------------------------------------------------- */

tsr_status_t tsr_dev_hashagg_create(tsr_dev_t *dev, const tsr_dev_hashagg_spec_t *spec,
                                    tsr_dev_hashagg_t **out, tsr_error_t *err);
void tsr_dev_hashagg_destroy(tsr_dev_hashagg_t *ha);

/* Adds rows into the groups. q: a queue of ha's device (NULL: its default
 * queue). Returns after the rows have been consumed (their memory may change). */
tsr_status_t tsr_dev_hashagg_update(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                    const tsr_dev_hashagg_rows_t *rows, tsr_error_t *err);

/* tsr_dev_hashagg_update over device-resident rows (see
 * tsr_dev_hashagg_drows_t): nothing crosses to the host but the table's
 * own counters. TSR_ERR_UNSUPPORTED (err untouched) when the backend has no
 * device-input update: the caller copies the rows in instead. */
tsr_status_t tsr_dev_hashagg_update_dev(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                        const tsr_dev_hashagg_drows_t *rows, tsr_error_t *err);

/* Whether ha's backend takes device-resident rows (update_dev). */
bool tsr_dev_hashagg_has_update_dev(const tsr_dev_hashagg_t *ha);

size_t tsr_dev_hashagg_ngroups(const tsr_dev_hashagg_t *ha);

/* Writes the groups into out (see tsr_dev_hashagg_out_t). TSR_ERR_OVERFLOW
 * when a SUM(INT64) does not fit 64 bits (out is then partly written). */
tsr_status_t tsr_dev_hashagg_result(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                    const tsr_dev_hashagg_out_t *out, tsr_error_t *err);

/* The hash of one row's key (see above); bit k of valid_mask set = key
 * column k is not NULL (keys[k] is then ignored when clear). */
static inline uint64_t tsr_dev_hashagg_hash(size_t nkeys, const uint64_t *keys, unsigned valid_mask)
{
    uint64_t h = 0;
    for (size_t k = 0; k < nkeys; k++) {
        uint64_t hk = (valid_mask >> k) & 1u ? tsr_hash_u64(keys[k]) : TSR_DEV_NULL_HASH;
        h = k == 0 ? hk : tsr_hash_combine(h, hk);
    }
    return h;
}

#endif /* TSR_DEVICE_HASHAGG_H */
