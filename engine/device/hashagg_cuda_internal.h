/*
 * hashagg_cuda_internal.h - what the two halves of CUDA hash aggregation
 * share: hashagg_cuda.c (create, rounds, updates, result) and
 * hashagg_cuda_table.c (the group table, counters, growth, scratch and input
 * buffers, launch configuration). Private to engine/device/; see the top of
 * hashagg_cuda.c for the design.
 */
#ifndef TSR_DEVICE_HASHAGG_CUDA_INTERNAL_H
#define TSR_DEVICE_HASHAGG_CUDA_INTERNAL_H

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/hashagg.h"
#include "device/hashagg_host.h"

#define CU_HA_PROBE_LIMIT 128u /* slots a row probes before it is retried */
#define CU_HA_MIN_SLOTS ((size_t)1024)
#define CU_HA_MAX_SLOTS TSR_DEV_HASHAGG_MAX_SLOTS /* slot numbers are 32-bit in the kernels */
#define CU_HA_PROBE_ROWS ((size_t)1 << 16)
#define CU_HA_WARP_GROUPS 64
#define CU_HA_GLOBAL_BLOCK 256u /* hashagg.cu's launch bounds */
#define CU_HA_LOCAL_BLOCK 1024u
#define CU_HA_AUX_BLOCK 256u
#define CU_HA_LOCAL_MAX_SLOTS 8192u
#define CU_HA_LOCAL_MIN_SLOTS 64u
#define CU_HA_U TSR_CUDA_ROWS_PER_THREAD
#define CU_HA_LOCAL_ITERS 8   /* a local block gets at least this many loop iterations */
#define CU_HA_REGS_BLOCK 512u /* hashagg.cu's launch bounds of the regs kernel */
#define CU_HA_REGS_MIN_BLOCK 128u
#define CU_HA_ENV "TSR_CUDA_HASHAGG" /* auto|global|lane|warp|coop|regs (docs/devices.md) */

/* The group table (hashagg_host.h: shared with the OpenCL backend). */
typedef tsr_dev_hashagg_table_t cu_ha_table_t;

/* One input buffer set of the host path: column-major, in_cap rows. */
typedef struct cu_ha_input {
    tsr_dev_buf_t *keys;   /* uint64[nkeys * in_cap] */
    tsr_dev_buf_t *kvalid; /* uint64[nkeys * in_cap/64] */
    tsr_dev_buf_t *vals;   /* uint64[naggs * in_cap] */
    tsr_dev_buf_t *vvalid; /* uint64[naggs * in_cap/64] */
    cudaEvent_t uploaded;  /* recorded on the copy stream after its upload */
    cudaEvent_t consumed;  /* recorded on the queue after the last kernel reading it */
} cu_ha_input_t;

/* Device column pointers of one launch (its row 0). */
typedef struct cu_ha_cols {
    const uint64_t *keys[TSR_DEV_HASHAGG_MAX_KEYS];
    const uint64_t *kvalid[TSR_DEV_HASHAGG_MAX_KEYS];
    const uint64_t *vals[TSR_DEV_HASHAGG_MAX_AGGS];
    const uint64_t *vvalid[TSR_DEV_HASHAGG_MAX_AGGS];
} cu_ha_cols_t;

typedef struct cu_ha {
    cu_ha_table_t t;
    tsr_cuda_ha_view_t tmpl; /* aggregate descriptors, identities, sizes */
    /* scratch for launches of up to cap rows */
    size_t cap;
    tsr_dev_buf_t *sel;      /* uint32[cap]: rows of a retry round */
    tsr_dev_buf_t *retry;    /* uint32[cap] */
    tsr_dev_buf_t *newslots; /* uint32[cap + slack] */
    tsr_dev_buf_t *newcount; /* uint32[max_grid] */
    tsr_dev_buf_t *counters; /* uint32[2] */
    tsr_dev_host_t *hc;      /* pinned uint32[2]: the counters' copy */
    cudaEvent_t counters_ready;
    /* host path */
    cu_ha_input_t in[2];
    size_t in_cap; /* rows per input set (0: not allocated) */
    cudaStream_t copy;
    size_t chunk;      /* rows per host chunk */
    size_t dev_launch; /* rows per launch over device-resident rows */
    /* launch configuration */
    unsigned global_block, global_grid;        /* grid: the most blocks worth launching */
    unsigned local_block;                      /* 0: no local kernels */
    unsigned local_grid[TSR_CUDA_HA_NKERNELS]; /* per kernel: SMs x blocks per SM */
    uint32_t lslots;
    size_t local_shmem;
    unsigned aux_block, aux_grid; /* persist, rehash */
    unsigned regs_block;          /* regs kernel (0: unavailable for this layout) */
    uint32_t rgroups;             /* groups a regs thread keeps partials of */
    size_t regs_shmem;
    int force;   /* TSR_CUDA_HASHAGG: -1 auto, else the tsr_cuda_ha_kernel_t of every launch */
    bool probed; /* AUTO's small first launch is behind us */
} cu_ha_t;

/* One update launch and what its retry loop needs. */
typedef struct cu_ha_round {
    tsr_cuda_ha_view_t v;
    unsigned nblocks; /* blocks of the last update launch (for persist) */
} cu_ha_round_t;

static inline tsr_status_t cu_ha_fail(tsr_dev_hashagg_t *ha, cudaError_t e, const char *what,
                                      tsr_error_t *err)
{
    return tsr_dev_cuda_fail(err, ha->dev, e, what);
}

/* ---- hashagg_cuda_table.c ------------------------------------------------------------ */

void tsr_hashagg_cuda_table_view(const cu_ha_table_t *t, tsr_cuda_ha_table_t *v);

/* The launch counters: zeroed on s before a launch; copied to pinned memory
 * after it (fetch) and read once the copy is done (wait: out[NEW], out[FAIL];
 * a failed kernel surfaces here). */
tsr_status_t tsr_hashagg_cuda_counters_reset(tsr_dev_hashagg_t *ha, cudaStream_t s,
                                             tsr_error_t *err);
tsr_status_t tsr_hashagg_cuda_counters_fetch(tsr_dev_hashagg_t *ha, cudaStream_t s,
                                             tsr_error_t *err);
tsr_status_t tsr_hashagg_cuda_counters_wait(tsr_dev_hashagg_t *ha, uint32_t out[2],
                                            tsr_error_t *err);

/* Moves every group into a table of at least 2*need slots. */
tsr_status_t tsr_hashagg_cuda_grow(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q, size_t need,
                                   tsr_error_t *err);

/* Scratch (sel, retry, newslots, newcount) for launches of up to cap rows. */
tsr_status_t tsr_hashagg_cuda_scratch(tsr_dev_hashagg_t *ha, size_t cap, tsr_error_t *err);
void tsr_hashagg_cuda_scratch_free(cu_ha_t *h);
/* The two input sets of the host path, cap rows each (a multiple of 64). */
tsr_status_t tsr_hashagg_cuda_inputs(tsr_dev_hashagg_t *ha, size_t cap, tsr_error_t *err);
void tsr_hashagg_cuda_inputs_free(cu_ha_t *h);

/* The update kernel of the next launch (not of retry rounds, which are
 * global): forced by TSR_CUDA_HASHAGG when the kernel is available for this
 * layout, else chosen by group count (docs/devices.md, "Kernel variants"). */
tsr_cuda_ha_kernel_t tsr_hashagg_cuda_pick(const tsr_dev_hashagg_t *ha);
/* TSR_CUDA_HASHAGG's value -> -1 (auto: NULL, "" or "auto") or a kernel;
 * -2 for a name it does not know. */
int tsr_hashagg_cuda_variant(const char *name);

/* Launch sizes, the shared table and the batch sizes from the device. */
tsr_status_t tsr_hashagg_cuda_configure(tsr_dev_hashagg_t *ha, tsr_error_t *err);
/* Waits for the aggregation's streams, releases everything, frees ha->impl. */
void tsr_hashagg_cuda_free(tsr_dev_hashagg_t *ha);

#endif /* TSR_DEVICE_HASHAGG_CUDA_INTERNAL_H */
