/*
 * hashjoin.h - hash join (build and probe of an inner equi-join on one key
 * column) on a device: the host-side signature of the kernel family, shared
 * by every backend (hashjoin_cpu.c, hashjoin_opencl.c, hashjoin_cuda.c).
 *
 * Use (an owning host object; bulk operations take a queue):
 *
 *   tsr_dev_hashjoin_create(dev, &spec, &hj, err);
 *   tsr_dev_hashjoin_build(hj, q, &build_keys, err);          // once
 *   tsr_dev_hashjoin_probe(hj, q, &probe_keys, &npairs, err);  // count
 *   tsr_dev_hashjoin_pairs(hj, q, probe_rows, build_rows, err); // write npairs
 *   ... probe / pairs again for the next probe batch ...
 *   tsr_dev_hashjoin_destroy(hj);
 *
 * "Count then write": probe counts the matches of every probe row, a prefix
 * sum over the counts gives each row its first output position, and pairs
 * writes the (probe row, build row) pairs there. The caller allocates exactly
 * npairs entries per array; no output buffer can overflow, whatever the skew.
 *
 * Semantics (those of exec/plan.h's HASH_JOIN on one key column):
 *  - Keys are integers: INT64 values (TSR_DEV_JOIN_KEY_I64, 8 bytes each) or
 *    dictionary codes (TSR_DEV_JOIN_KEY_U32, 4 bytes each). Strings join by
 *    code only when both sides' codes are in one code space: the host maps
 *    one side's codes into the other's dictionary beforehand (exec's
 *    cross-dictionary code maps), a probe string absent from the build
 *    dictionary getting any code the build side does not use.
 *  - Two keys match when their values are equal. NULL keys (validity bit
 *    clear) never match, on either side.
 *  - Duplicates on both sides: every matching (probe row, build row)
 *    combination is one pair.
 *  - Row numbers are uint32, relative to the build input and to the probe
 *    batch; each side has at most TSR_DEV_JOIN_MAX_ROWS rows per call.
 *  - Output order: pairs are grouped by probe row in ascending order (the
 *    prefix sum places them); the order of build rows within one probe row
 *    is unspecified (differs between backends and runs).
 *
 * Hash (the cross-device contract of core/hash.h): tsr_hash_u64 of the key
 * widened to 64 bits; slot = hash & (nslots - 1).
 */
#ifndef TSR_DEVICE_HASHJOIN_H
#define TSR_DEVICE_HASHJOIN_H

#include "core/hash.h"
#include "device/device.h"

/* Row numbers are uint32 and UINT32_MAX means "no slot" in the kernels. */
#define TSR_DEV_JOIN_MAX_ROWS ((size_t)UINT32_MAX - 1)
/* "No slot": a NULL probe key, or a key the build side does not hold. */
#define TSR_DEV_JOIN_NONE UINT32_MAX

typedef enum tsr_dev_join_key {
    TSR_DEV_JOIN_KEY_I64 = 8, /* int64_t keys (the value is the width in bytes) */
    TSR_DEV_JOIN_KEY_U32 = 4, /* uint32_t dictionary codes in one code space */
} tsr_dev_join_key_t;

typedef struct tsr_dev_hashjoin_spec {
    tsr_dev_join_key_t key; /* the type of both sides' keys */
    /* Tuning for backends that launch kernels (0: their defaults; tests use
     * small values to cover the multi-launch paths with small inputs): */
    size_t launch_rows;  /* probe rows per launch (rounded up to a multiple of 64) */
    size_t window_pairs; /* pairs written per launch */
} tsr_dev_hashjoin_spec_t;

/* One side's key column in host memory. */
typedef struct tsr_dev_join_keys {
    size_t n;
    const void *keys;      /* n int64_t or uint32_t (spec.key) */
    const uint64_t *valid; /* bit i of word i/64 set = row i not NULL; NULL: no NULLs */
} tsr_dev_join_keys_t;

/* One side's key column already in device memory (exec/dev_columns.h
 * keeps a query's columns there): n keys of the spec's width and an
 * optional validity buffer of (n + 63) / 64 words (NULL: no NULLs). */
typedef struct tsr_dev_join_dkeys {
    size_t n;
    tsr_dev_buf_t *keys;
    tsr_dev_buf_t *valid;
} tsr_dev_join_dkeys_t;

typedef struct tsr_dev_hashjoin {
    tsr_dev_t *dev;
    tsr_dev_hashjoin_spec_t spec;
    bool built;       /* build has succeeded */
    size_t nbuild;    /* build rows (NULLs included) */
    size_t ndistinct; /* distinct non-NULL build keys (kept by the backend's build) */
    size_t nslots;    /* the backend's table: tsr_dev_hashjoin_slots(rows) */
    bool probed;      /* a probe has succeeded and its pairs are available */
    size_t nprobe;    /* rows of the last probe */
    size_t npairs;    /* pairs of the last probe */
    void *impl;       /* backend's table and probe state */
} tsr_dev_hashjoin_t;

struct tsr_dev_hashjoin_ops {
    tsr_status_t (*create)(tsr_dev_hashjoin_t *hj, tsr_error_t *err);
    void (*destroy)(tsr_dev_hashjoin_t *hj);
    /* Builds the table of keys (hj->nslots set, keys->n may be 0); sets
     * hj->ndistinct. Called once. */
    tsr_status_t (*build)(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                          const tsr_dev_join_keys_t *keys, tsr_error_t *err);
    /* Counts the matches of every probe row (keys->n may be 0), keeps what
     * pairs needs, and returns the total in *npairs. */
    tsr_status_t (*probe)(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                          const tsr_dev_join_keys_t *keys, size_t *npairs, tsr_error_t *err);
    /* Writes the last probe's hj->npairs pairs (> 0, checked). */
    tsr_status_t (*pairs)(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q, uint32_t *probe_rows,
                          uint32_t *build_rows, tsr_error_t *err);
    /* Optional, both or neither (NULL: host input only): build and probe
     * with device-resident keys (checked; as build / probe otherwise). */
    tsr_status_t (*build_dev)(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                              const tsr_dev_join_dkeys_t *keys, tsr_error_t *err);
    tsr_status_t (*probe_dev)(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                              const tsr_dev_join_dkeys_t *keys, size_t *npairs, tsr_error_t *err);
};

extern const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_cpu_ops;
extern const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_opencl_ops;
#ifdef TSR_HAVE_CUDA
extern const tsr_dev_hashjoin_ops_t tsr_dev_hashjoin_cuda_ops;
#endif

/* ---- the host API ------------------------------------------------------------------ */

tsr_status_t tsr_dev_hashjoin_create(tsr_dev_t *dev, const tsr_dev_hashjoin_spec_t *spec,
                                     tsr_dev_hashjoin_t **out, tsr_error_t *err);
void tsr_dev_hashjoin_destroy(tsr_dev_hashjoin_t *hj);

/* Builds the hash table over the build side's keys (once per object). q: a
 * queue of hj's device (NULL: its default queue). Returns after the keys have
 * been consumed (their memory may change). */
tsr_status_t tsr_dev_hashjoin_build(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys, tsr_error_t *err);

/* Counts the pairs of a probe batch into *npairs (the keys are consumed when
 * it returns). A later probe replaces this one's pairs. */
tsr_status_t tsr_dev_hashjoin_probe(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    const tsr_dev_join_keys_t *keys, size_t *npairs,
                                    tsr_error_t *err);

/* Writes the last probe's pairs into caller arrays of *npairs entries each
 * (may be NULL when npairs is 0): pair i is (probe_rows[i], build_rows[i]). */
tsr_status_t tsr_dev_hashjoin_pairs(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                    uint32_t *probe_rows, uint32_t *build_rows, tsr_error_t *err);

/* Whether hj's backend takes device-resident keys (build_dev, probe_dev). */
bool tsr_dev_hashjoin_has_dev(const tsr_dev_hashjoin_t *hj);

/* tsr_dev_hashjoin_build / _probe with the keys in device memory: nothing
 * but counters crosses to the host. TSR_ERR_UNSUPPORTED (err untouched)
 * when the backend lacks them. */
tsr_status_t tsr_dev_hashjoin_build_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                        const tsr_dev_join_dkeys_t *keys, tsr_error_t *err);
tsr_status_t tsr_dev_hashjoin_probe_dev(tsr_dev_hashjoin_t *hj, tsr_dev_queue_t *q,
                                        const tsr_dev_join_dkeys_t *keys, size_t *npairs,
                                        tsr_error_t *err);

/* ---- shared by the backends ----------------------------------------------------------- */

/* Slots of the table for `rows` build rows: a power of two >= 2 * rows (load
 * <= 1/2 even if every key is distinct), at least 64. Linear probing then
 * always finds a key or an empty slot within nslots probes. */
size_t tsr_dev_hashjoin_slots(size_t rows);

/* The key of row i of a side, widened to 64 bits. */
static inline uint64_t tsr_dev_join_key_at(tsr_dev_join_key_t type, const void *keys, size_t i)
{
    return type == TSR_DEV_JOIN_KEY_U32 ? ((const uint32_t *)keys)[i]
                                        : (uint64_t)((const int64_t *)keys)[i];
}

static inline bool tsr_dev_join_valid(const uint64_t *valid, size_t i)
{
    return !valid || ((valid[i >> 6] >> (i & 63)) & 1u);
}

#endif /* TSR_DEVICE_HASHJOIN_H */
