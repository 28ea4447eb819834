/*
 * cuda_kernels.h - the boundary between the CUDA host code (cuda.c,
 * hashagg_cuda.c, hashmap_cuda.c; plain C) and the CUDA kernels
 * (kernels/cuda/{*.cu}; CUDA C++): the plain-data views kernels take by value,
 * and the launchers, extern "C" functions that configure and launch one kernel
 * on a stream and return the launch's cudaError_t.
 *
 * cuCollections' pattern: the host object (a hash aggregation, a map) owns the
 * device memory; a view is pointers and sizes only, copied into the kernel's
 * parameters at launch, so the host may reuse or change its view right after.
 * Kernels know nothing but their view.
 *
 * Launchers never synchronise and never allocate. Their grid, block and
 * dynamic shared-memory sizes are decided by the host code from the device's
 * properties (see hashagg_cuda.c), so the same host code drives the CUDA
 * emulator the tests use (tests/cudaemu/), whose fake device is small.
 *
 * This header is included from C and from CUDA C++; it needs the CUDA runtime
 * API types (cudaError_t, cudaStream_t) only.
 */
#ifndef TSR_DEVICE_CUDA_KERNELS_H
#define TSR_DEVICE_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_CUDA_HA_MAX_KEYS 4
#define TSR_CUDA_HA_MAX_AGGS 16
#define TSR_CUDA_HA_MAX_SCOLS (1 + 3 * TSR_CUDA_HA_MAX_AGGS)

/* Aggregate operations: the values of tsr_dev_agg_op_t (hashagg.h; checked
 * by a static assertion in hashagg_cuda.c). */
#define TSR_CUDA_OP_COUNT_STAR 0
#define TSR_CUDA_OP_COUNT 1
#define TSR_CUDA_OP_SUM_I 2
#define TSR_CUDA_OP_SUM_D 3
#define TSR_CUDA_OP_MIN_I 4
#define TSR_CUDA_OP_MAX_I 5
#define TSR_CUDA_OP_MIN_D 6
#define TSR_CUDA_OP_MAX_D 7

/* Rows each thread takes per loop iteration of the row kernels: a warp reads
 * this many coalesced runs of 32 rows at once (several loads in flight). */
#define TSR_CUDA_ROWS_PER_THREAD 2

/* counters[] of an update, rehash or map insert launch */
#define TSR_CUDA_CNT_NEW 0  /* slots claimed (groups or keys that are new) */
#define TSR_CUDA_CNT_FAIL 1 /* rows appended to retry / groups that did not fit */

/* ---- hash aggregation (kernels/cuda/hashagg.cuh has the table format) --------------- */

/* The group table in device memory, slot-indexed struct of arrays. */
typedef struct tsr_cuda_ha_table {
    uint64_t *slots; /* [nslots] slot words: 0 empty, ROWREF, OCC */
    uint64_t *gkeys; /* [nkeys * nslots] keys of OCC groups */
    uint8_t *gvalid; /* [nslots] bit k: key column k not NULL */
    uint64_t *ghash; /* [nslots] the group's hash */
    int64_t *states; /* [ncols * nslots] state columns (hashagg.h's layout) */
    uint64_t nslots; /* a power of two, at most 2^31 */
} tsr_cuda_ha_table_t;

/* One launch over rows of device memory. Column pointers point at the
 * launch's row 0; bitmap word 0 holds its rows 0..63 (launches start at
 * multiples of 64 rows of the caller's columns). */
typedef struct tsr_cuda_ha_view {
    tsr_cuda_ha_table_t t;
    const uint64_t *keys[TSR_CUDA_HA_MAX_KEYS];   /* normalised key columns */
    const uint64_t *kvalid[TSR_CUDA_HA_MAX_KEYS]; /* NULL: no NULLs in the column */
    const uint64_t *vals[TSR_CUDA_HA_MAX_AGGS];   /* int64 / double bits; NULL for COUNT kinds */
    const uint64_t *vvalid[TSR_CUDA_HA_MAX_AGGS]; /* NULL: no NULLs */
    const uint32_t *sel; /* NULL: rows 0..n-1; else the rows sel[0..n) (a retry round) */
    uint32_t *counters;  /* [2]: TSR_CUDA_CNT_NEW, TSR_CUDA_CNT_FAIL */
    uint32_t *retry;     /* rows that found no slot within probe_limit */
    uint32_t *newslots;  /* slots claimed by block b at [b*region, +newcount[b]) */
    uint32_t *newcount;  /* [grid] slots claimed per block */
    int64_t identity[TSR_CUDA_HA_MAX_SCOLS]; /* state of an empty group, per column */
    int8_t op[TSR_CUDA_HA_MAX_AGGS];         /* TSR_CUDA_OP_* */
    int8_t nulls_col[TSR_CUDA_HA_MAX_AGGS];  /* -1 where the aggregate has no such column */
    int8_t val_col[TSR_CUDA_HA_MAX_AGGS];
    int8_t hi_col[TSR_CUDA_HA_MAX_AGGS];
    uint32_t n;              /* rows of this launch (at most 2^30) */
    uint32_t nkeys;          /* 0..4 */
    uint32_t naggs;          /* 0..16 */
    uint32_t ncols;          /* state columns */
    uint32_t probe_limit;    /* slots a row probes in the global table before it is retried */
    uint32_t lslots;         /* local kernels: entries of the per-block table (power of two) */
    uint32_t rows_per_block; /* local kernels: each block folds a contiguous run of rows */
    uint32_t region;         /* newslots entries per block: at least the rows a block visits */
    uint32_t rgroups;        /* regs kernel: groups each thread keeps partials of (<= REGS_MAX) */
    uint32_t plain;          /* tsr_cuda_ha_plain(): the local kernel's specialised row update */
} tsr_cuda_ha_view_t;

/* Aggregates a "plain" launch may have (the values the kernels load ahead). */
#define TSR_CUDA_HA_PLAIN_AGGS 4

/* 1 when every aggregate of the launch is COUNT(*), COUNT, or SUM over
 * BIGINT or DOUBLE, none has a NULL bitmap, and there are at most
 * TSR_CUDA_HA_PLAIN_AGGS: the lane kernel then updates its block table with
 * a row update specialised for that (hashagg_ops.cuh ha_apply_row_plain),
 * without the NULL checks and the dispatch over every op. */
static inline uint32_t tsr_cuda_ha_plain(const tsr_cuda_ha_view_t *v)
{
    if (v->naggs > TSR_CUDA_HA_PLAIN_AGGS)
        return 0;
    for (uint32_t a = 0; a < v->naggs; a++) {
        int op = v->op[a];
        if (v->vvalid[a] || (op != TSR_CUDA_OP_COUNT_STAR && op != TSR_CUDA_OP_COUNT &&
                             op != TSR_CUDA_OP_SUM_I && op != TSR_CUDA_OP_SUM_D))
            return 0;
    }
    return 1;
}

/* Moving every group of one table into another (growth). */
typedef struct tsr_cuda_ha_rehash_view {
    tsr_cuda_ha_table_t from;
    tsr_cuda_ha_table_t to; /* empty, states at their identities */
    uint32_t *counters;     /* [TSR_CUDA_CNT_FAIL]: groups that found no slot */
    uint32_t nkeys;
    uint32_t ncols;
    uint32_t probe_limit;
} tsr_cuda_ha_rehash_view_t;

typedef enum tsr_cuda_ha_kernel {
    TSR_CUDA_HA_GLOBAL = 0,     /* every row updates the global table with atomics */
    TSR_CUDA_HA_LOCAL = 1,      /* per-block shared-memory pre-aggregation */
    TSR_CUDA_HA_LOCAL_WARP = 2, /* the same, rows of one group in a warp combined first */
    TSR_CUDA_HA_LOCAL_COOP = 3, /* local, lanes grouped by key first: one leader probes per key */
    TSR_CUDA_HA_REGS = 4,       /* few groups: per-thread partials, merged once per block */
    TSR_CUDA_HA_NKERNELS = 5,
} tsr_cuda_ha_kernel_t;

/* Bytes of dynamic shared memory of a local kernel with lslots entries (tag,
 * keys, states, global slot, validity mask, direct map) plus the block's
 * claim counter and the direct map's least key.
 * The global kernel takes TSR_CUDA_HA_GLOBAL_SHMEM bytes (the counter). */
static inline size_t tsr_cuda_ha_local_bytes(uint32_t lslots, uint32_t nkeys, uint32_t ncols)
{
    return (size_t)lslots * (8 + 8 * (size_t)nkeys + 8 * (size_t)ncols + 4 + 4 + 4) + 16;
}
#define TSR_CUDA_HA_GLOBAL_SHMEM 8

/* The regs kernel: a block lists up to TSR_CUDA_HA_REGS_MAX groups of the
 * table (slot, validity mask, keys; a direct map of one-column keys) and
 * each of its threads keeps partial states of rgroups of them (ncols columns
 * each) in a private region of shared memory. Bytes of dynamic shared memory
 * for `block` threads: */
#define TSR_CUDA_HA_REGS_MAX 16
#define TSR_CUDA_HA_REGS_MAP 64 /* direct map entries (u8 each) */
static inline size_t tsr_cuda_ha_regs_bytes(uint32_t rgroups, uint32_t nkeys, uint32_t ncols,
                                            unsigned block)
{
    return 8 + (size_t)TSR_CUDA_HA_REGS_MAX * (8 + 8 * (size_t)nkeys) + 16 + TSR_CUDA_HA_REGS_MAP +
           (size_t)rgroups * ncols * block * 8;
}

/* Raises kernel `which`'s dynamic shared-memory limit to the device's
 * maximum (for the key count nkeys, which selects an instantiation) and
 * reports how many blocks of `block` threads using shmem bytes one
 * multiprocessor holds (0: none fits); cudaErrorInvalidValue when shmem is
 * beyond what a block may have. */
cudaError_t tsr_cuda_ha_prepare(tsr_cuda_ha_kernel_t which, uint32_t nkeys, unsigned block,
                                size_t shmem, int *blocks_per_sm);
/* The update kernel `which` over v->n rows. */
cudaError_t tsr_cuda_ha_update(const tsr_cuda_ha_view_t *v, tsr_cuda_ha_kernel_t which,
                               unsigned grid, unsigned block, size_t shmem, cudaStream_t s);
/* Turns the slots the nblocks blocks of the last update launch over v claimed
 * (newslots/newcount) from ROWREF into OCC groups. */
cudaError_t tsr_cuda_ha_persist(const tsr_cuda_ha_view_t *v, uint32_t nblocks, unsigned grid,
                                unsigned block, cudaStream_t s);
cudaError_t tsr_cuda_ha_rehash(const tsr_cuda_ha_rehash_view_t *r, unsigned grid, unsigned block,
                               cudaStream_t s);

/* ---- static map: 64-bit keys -> 64-bit values (kernels/cuda/hashmap.cuh) ---------- */

/* Key of an empty slot. The key with these bits itself lives in sentinel[]. */
#define TSR_CUDA_MAP_EMPTY 0xFFFFFFFFFFFFFFFFULL

typedef struct tsr_cuda_map_view {
    uint64_t *slots;      /* [2 * nslots]: key, value of slot s at 2s, 2s+1 */
    uint64_t nslots;      /* a power of two */
    uint64_t *sentinel;   /* [2]: 1 when the key TSR_CUDA_MAP_EMPTY is present; its value */
    const uint64_t *keys; /* insert, find: [n] */
    const uint64_t *vals; /* insert: [n] */
    const uint32_t *sel;  /* insert: NULL, or the rows sel[0..n) (a retry round) */
    uint64_t *out;        /* find: [n] the value, 0 when absent */
    uint8_t *found;       /* find: [n] 1 when present */
    uint32_t *counters;   /* insert: [NEW] keys added, [FAIL] rows in retry */
    uint32_t *retry;      /* insert: rows that found no slot */
    uint32_t n;
    uint32_t probe_limit;
} tsr_cuda_map_view_t;

cudaError_t tsr_cuda_map_insert_launch(const tsr_cuda_map_view_t *v, unsigned grid, unsigned block,
                                       cudaStream_t s);
cudaError_t tsr_cuda_map_find_launch(const tsr_cuda_map_view_t *v, unsigned grid, unsigned block,
                                     cudaStream_t s);
/* Moves every key of from (nslots of it) into to (empty); keys that find no
 * slot count in to->counters[TSR_CUDA_CNT_FAIL]. */
cudaError_t tsr_cuda_map_rehash_launch(const tsr_cuda_map_view_t *from,
                                       const tsr_cuda_map_view_t *to, unsigned grid, unsigned block,
                                       cudaStream_t s);

/* ---- exclusive prefix sum of uint64 (kernels/cuda/scan.cuh) -------------------------- */

/* Elements one thread of a scan block handles per tile. */
#define TSR_CUDA_SCAN_ITEMS 4

/* data[0..n) becomes its exclusive prefix sums, in place, in three launches:
 * tile sums into partial[], one block scans partial[] (and writes the total
 * to partial[ntiles] and, when total is not NULL, to *total), each tile is
 * scanned from its offset. A tile is block * TSR_CUDA_SCAN_ITEMS elements. */
typedef struct tsr_cuda_scan_view {
    uint64_t *data;
    uint64_t *partial; /* [ntiles + 1] */
    uint64_t *total;   /* NULL, or where the sum of all elements goes too */
    uint64_t n;
    uint64_t ntiles;
} tsr_cuda_scan_view_t;

/* Queues the scan with blocks of `block` threads (a power of two, 32..1024)
 * and at most `grid` blocks per launch (grid-stride beyond). */
cudaError_t tsr_cuda_scan(const tsr_cuda_scan_view_t *v, unsigned grid, unsigned block,
                          cudaStream_t s);

/* ---- hash join (kernels/cuda/hashjoin.cuh; hashjoin.h has the semantics) -------------- */

typedef struct tsr_cuda_join_view {
    /* build */
    const void *bkeys;      /* [nb] int64 or uint32 (width) */
    const uint64_t *bvalid; /* NULL: no NULLs */
    uint32_t *ref;          /* [nslots] 0 empty, else 1 + a build row holding the key */
    uint64_t *cnt;          /* [nslots + 1] rows per slot, then (scan) the start of each */
    uint64_t *cursor;       /* [nslots] rows placed so far */
    uint32_t *row_slot;     /* [nb] slot of each build row (NONE: NULL key) */
    uint32_t *rows;         /* [non-NULL build rows] build rows slot by slot */
    uint64_t *table;        /* [2 * nslots] (key, start | count << 32), (0, 0) empty */
    uint32_t *counters;     /* [2]: distinct keys, rows without a slot */
    uint64_t nslots;        /* a power of two */
    uint32_t nb;
    /* probe */
    const void *pkeys;      /* [np] launch rows (width) */
    const uint64_t *pvalid; /* NULL: no NULLs */
    uint32_t np;            /* rows of the launch */
    uint32_t pbase;         /* probe row of launch row 0 */
    uint32_t *pstart;       /* [probe rows] first match in rows[] */
    uint64_t *offsets;      /* [probe rows + 1] counts, then (scan) output positions */
    /* pairs */
    uint32_t nprobe;                 /* probe rows */
    uint64_t win;                    /* first output position of this window */
    uint64_t wcap;                   /* pairs the window holds */
    uint32_t *out_probe, *out_build; /* [wcap] */
    uint32_t width;                  /* key bytes: 8 or 4 */
} tsr_cuda_join_view_t;

typedef enum tsr_cuda_join_kernel {
    TSR_CUDA_JOIN_INSERT = 0,  /* per build row: claim / find its slot, count it */
    TSR_CUDA_JOIN_SCATTER = 1, /* per build row: its place in rows[] */
    TSR_CUDA_JOIN_FINISH = 2,  /* per slot: the probe table entry */
    TSR_CUDA_JOIN_PROBE = 3,   /* per probe row of a launch: count, first match */
    TSR_CUDA_JOIN_WRITE = 4,   /* per probe row: its pairs inside the window */
    TSR_CUDA_JOIN_NKERNELS = 5,
} tsr_cuda_join_kernel_t;

cudaError_t tsr_cuda_join(const tsr_cuda_join_view_t *v, tsr_cuda_join_kernel_t which,
                          unsigned grid, unsigned block, cudaStream_t s);

/* ---- filter (kernels/cuda/filter.cuh; filter.h has the program format) -------------- */

#define TSR_CUDA_FILTER_MAX_CODE 64

typedef struct tsr_cuda_filter_view {
    const uint64_t *cols;  /* used column u at cols + u * cap (int64 / double bits) */
    const uint64_t *valid; /* its validity words at valid + u * cap / 64 (bit u of vmask) */
    uint32_t *masks;       /* [cap / 32] selection bits of 32 rows (row order) */
    uint64_t *counts;      /* [ntiles + 1] rows selected per tile, then (scan) offsets */
    uint32_t *sel;         /* [cap] selected rows (absolute numbers) */
    uint64_t code[2 * TSR_CUDA_FILTER_MAX_CODE]; /* op word, constant bits */
    uint32_t ncode;
    uint32_t vmask;
    uint32_t n;        /* rows of the launch */
    uint32_t cap;      /* rows the column buffers hold (a multiple of 64) */
    uint32_t row_base; /* absolute number of launch row 0 */
    uint32_t tile;     /* rows per tile: block * TSR_CUDA_FILTER_ITERS */
    uint32_t ntiles;
} tsr_cuda_filter_view_t;

/* Block-rows a filter block evaluates per tile. */
#define TSR_CUDA_FILTER_ITERS 8

/* count: masks and per-tile counts; scatter: after the scan of counts,
 * the selected rows in row order. */
cudaError_t tsr_cuda_filter_count(const tsr_cuda_filter_view_t *v, unsigned grid, unsigned block,
                                  cudaStream_t s);
cudaError_t tsr_cuda_filter_scatter(const tsr_cuda_filter_view_t *v, unsigned grid, unsigned block,
                                    cudaStream_t s);

/* ---- hash partitioning (kernels/cuda/partition.cuh; partition.h) -------------------- */

#define TSR_CUDA_PART_MAX_KEYS 4

typedef struct tsr_cuda_part_view {
    const uint64_t *keys[TSR_CUDA_PART_MAX_KEYS];   /* launch row 0 first */
    const uint64_t *kvalid[TSR_CUDA_PART_MAX_KEYS]; /* NULL: no NULLs */
    uint64_t *cnt;      /* [nparts * nruns] partition-major counts, then (scan) positions */
    uint64_t *offsets;  /* [nparts + 1] (offsets kernel) */
    uint32_t *rows_out; /* [n] */
    uint64_t *keys_out[TSR_CUDA_PART_MAX_KEYS]; /* NULL: not wanted */
    uint64_t nparts;
    uint32_t nkeys;
    uint32_t hashed; /* keys[0] holds hashes */
    uint32_t n;      /* rows of the launch */
    uint32_t row_base;
    uint32_t run;    /* rows per warp run (multiple of 32) */
    uint32_t nruns;  /* ceil(n / run) */
    uint32_t shared; /* 1: per-warp counters in shared memory (nparts * 4 bytes a warp) */
} tsr_cuda_part_view_t;

typedef enum tsr_cuda_part_kernel {
    TSR_CUDA_PART_HIST = 0,    /* counts of every run */
    TSR_CUDA_PART_SCATTER = 1, /* rows (and keys) to their places */
    TSR_CUDA_PART_OFFSETS = 2, /* offsets[p] = cnt[p * nruns], offsets[nparts] = n */
    TSR_CUDA_PART_NKERNELS = 3,
} tsr_cuda_part_kernel_t;

/* shmem: warps per block * nparts * 4 when v->shared, else 0. */
cudaError_t tsr_cuda_part(const tsr_cuda_part_view_t *v, tsr_cuda_part_kernel_t which,
                          unsigned grid, unsigned block, size_t shmem, cudaStream_t s);

/* ---- utilities (kernels/cuda/util.cu) ----------------------------------------------- */

/* Repeats pattern (psize bytes: 1..128, a power of two) over size bytes at dst
 * (size a multiple of psize). */
cudaError_t tsr_cuda_fill(void *dst, size_t size, const void *pattern, size_t psize,
                          cudaStream_t s);
/* cudaSuccess when this binary holds code the current device can run (else
 * cudaErrorNoKernelImageForDevice or cudaErrorInvalidDeviceFunction). */
cudaError_t tsr_cuda_kernels_check(void);

#ifdef __cplusplus
}
#endif

#endif /* TSR_DEVICE_CUDA_KERNELS_H */
