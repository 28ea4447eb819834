/*
 * partition.h - hash partitioning on a device, the shuffle building block of
 * the cluster: rows -> P partitions by the hash of their key, as a
 * permutation of row numbers grouped by partition. The host-side signature of
 * the kernel family, shared by every backend (partition_cpu.c,
 * partition_opencl.c, partition_cuda.c).
 *
 * Use:
 *
 *   tsr_dev_partition_create(dev, &spec, &p, err);
 *   tsr_dev_partition_run(p, q, &in, &out, err);   // any number of batches
 *   tsr_dev_partition_destroy(p);
 *
 * Partition of a row (the cross-device contract; every backend and every
 * worker computes the same):
 *
 *   h = the row's key hash: tsr_dev_partition_hash (hashagg.h's key hash:
 *       tsr_hash_u64 per column, TSR_DEV_NULL_HASH for NULL, combined with
 *       tsr_hash_combine), or the caller's own hashes (spec.hashed)
 *   partition = (h * P) >> 64   (the high 64 bits of the 128-bit product)
 *
 * i.e. the top bits of h: for P = 2^b exactly the top b bits, and for any P
 * an even split of the hash range, without a 64-bit division. Hash tables
 * index slots with the *low* bits (h & (nslots - 1)), so the rows a
 * partition receives still spread over a table's slots.
 *
 * VARCHAR keys: dictionary codes differ between workers, so a shuffle must
 * partition by the hash of the string: pass per-row hashes (e.g. the
 * dictionary's per-code hashes gathered by code) with spec.hashed.
 *
 * Output: rows[] holds the input's row numbers (uint32) grouped by partition,
 * partition p at rows[offsets[p] .. offsets[p+1]), offsets[P] = n; within a
 * partition rows keep their input order (stable), so the output is the same
 * on every backend. keys[k] (optional) get the key values in the same order.
 */
#ifndef TSR_DEVICE_PARTITION_H
#define TSR_DEVICE_PARTITION_H

#include "device/hashagg.h"

#define TSR_DEV_PARTITION_MAX_KEYS TSR_DEV_HASHAGG_MAX_KEYS
#define TSR_DEV_PARTITION_MAX_PARTS ((size_t)1 << 16)
#define TSR_DEV_PARTITION_MAX_ROWS ((size_t)UINT32_MAX)

typedef struct tsr_dev_partition_spec {
    size_t nparts;      /* P: 1 .. TSR_DEV_PARTITION_MAX_PARTS */
    size_t nkeys;       /* key columns, 1 .. TSR_DEV_PARTITION_MAX_KEYS (1 when hashed) */
    bool hashed;        /* keys[0] holds the rows' 64-bit hashes (no validity) */
    size_t launch_rows; /* rows per launch (0: the backend's default; tests use small values) */
} tsr_dev_partition_spec_t;

/* One batch of rows in host memory. */
typedef struct tsr_dev_partition_in {
    size_t n;
    const uint64_t *keys[TSR_DEV_PARTITION_MAX_KEYS];      /* normalised keys, or hashes */
    const uint64_t *key_valid[TSR_DEV_PARTITION_MAX_KEYS]; /* NULL: no NULLs */
} tsr_dev_partition_in_t;

/* Caller-allocated outputs: rows and keys[k] of n entries, offsets of P + 1. */
typedef struct tsr_dev_partition_out {
    uint32_t *rows;
    uint64_t *offsets;
    uint64_t *keys[TSR_DEV_PARTITION_MAX_KEYS]; /* NULL: not wanted */
} tsr_dev_partition_out_t;

typedef struct tsr_dev_partition {
    tsr_dev_t *dev;
    tsr_dev_partition_spec_t spec;
    void *impl;
} tsr_dev_partition_t;

struct tsr_dev_partition_ops {
    tsr_status_t (*create)(tsr_dev_partition_t *p, tsr_error_t *err);
    void (*destroy)(tsr_dev_partition_t *p);
    /* in->n > 0 and the arrays checked; writes rows, offsets and the wanted keys. */
    tsr_status_t (*run)(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                        const tsr_dev_partition_in_t *in, const tsr_dev_partition_out_t *out,
                        tsr_error_t *err);
};

extern const tsr_dev_partition_ops_t tsr_dev_partition_cpu_ops;
extern const tsr_dev_partition_ops_t tsr_dev_partition_opencl_ops;
#ifdef TSR_HAVE_CUDA
extern const tsr_dev_partition_ops_t tsr_dev_partition_cuda_ops;
#endif

/* ---- the host API ------------------------------------------------------------------ */

tsr_status_t tsr_dev_partition_create(tsr_dev_t *dev, const tsr_dev_partition_spec_t *spec,
                                      tsr_dev_partition_t **out, tsr_error_t *err);
void tsr_dev_partition_destroy(tsr_dev_partition_t *p);

/* Partitions a batch (see the top). q: a queue of p's device (NULL: its
 * default queue). Returns after the input has been consumed and the outputs
 * written. With n = 0 only offsets is written (all 0). */
tsr_status_t tsr_dev_partition_run(tsr_dev_partition_t *p, tsr_dev_queue_t *q,
                                   const tsr_dev_partition_in_t *in,
                                   const tsr_dev_partition_out_t *out, tsr_error_t *err);

/* ---- the partition function (shared by the backends and their callers) ------------ */

/* Row i's hash (see the top). */
static inline uint64_t tsr_dev_partition_hash(const tsr_dev_partition_spec_t *spec,
                                              const tsr_dev_partition_in_t *in, size_t i)
{
    if (spec->hashed)
        return in->keys[0][i];
    uint64_t keys[TSR_DEV_PARTITION_MAX_KEYS];
    unsigned valid = 0;
    for (size_t k = 0; k < spec->nkeys; k++) {
        const uint64_t *bm = in->key_valid[k];
        bool v = !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
        keys[k] = in->keys[k][i];
        valid |= (unsigned)v << k;
    }
    return tsr_dev_hashagg_hash(spec->nkeys, keys, valid);
}

/* The partition of hash h among nparts: (h * nparts) >> 64. */
static inline uint32_t tsr_dev_partition_of(uint64_t h, size_t nparts)
{
    return (uint32_t)(((unsigned __int128)h * nparts) >> 64);
}

#endif /* TSR_DEVICE_PARTITION_H */
