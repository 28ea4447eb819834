/*
 * opencl_internal.h - what opencl.c shares with the OpenCL kernel host code
 * (hashagg_opencl.c, ...): the per-device state, error conversion and the
 * program cache. Private to engine/device/.
 *
 * Programs are built from the embedded sources (cl_sources.h) the first time
 * a kernel family is used on a device, then kept for the device's lifetime.
 * PoCL additionally caches the compiled binary on disk (~/.cache/pocl), so
 * only the first process on a machine pays the LLVM compile.
 */
#ifndef TSR_DEVICE_OPENCL_INTERNAL_H
#define TSR_DEVICE_OPENCL_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "device/device.h"

typedef enum tsr_cl_prog {
    TSR_CL_PROG_HASHAGG,   /* kernels/opencl/hashagg.cl */
    TSR_CL_PROG_SCAN,      /* kernels/opencl/scan.cl (prefix sums, opencl_launch.h) */
    TSR_CL_PROG_HASHJOIN,  /* kernels/opencl/hashjoin.cl */
    TSR_CL_PROG_FILTER,    /* kernels/opencl/filter.cl */
    TSR_CL_PROG_PARTITION, /* kernels/opencl/partition.cl */
    TSR_CL_PROG_KV,        /* kernels/opencl/kv.cl (engine/kv/part_device.c) */
    TSR_CL_NPROGS,
} tsr_cl_prog_t;

/* The pinned staging pool of a device (opencl_stage.c). */
#define TSR_CL_STAGE_MAX 4
enum {
    TSR_CL_STAGE_UNTRIED = 0, /* made on first use */
    TSR_CL_STAGE_READY,
    TSR_CL_STAGE_FAILED, /* could not be made: direct copies (note says why) */
    TSR_CL_STAGE_OFF,    /* not used (CPU devices by default): direct copies */
};
typedef struct tsr_cl_stage {
    cl_command_queue mapq;           /* maps and unmaps the buffers */
    cl_mem mem[TSR_CL_STAGE_MAX];    /* CL_MEM_ALLOC_HOST_PTR, piece bytes each */
    void *ptr[TSR_CL_STAGE_MAX];     /* mapped for the pool's lifetime */
    cl_event done[TSR_CL_STAGE_MAX]; /* buffer i's last transfer (NULL: none) */
    unsigned count, next;
    size_t piece;
    int state; /* TSR_CL_STAGE_* */
    char note[256];
    uint64_t staged_bytes, direct_bytes;
} tsr_cl_stage_t;

typedef struct tsr_cl_dev {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_program progs[TSR_CL_NPROGS]; /* built on first use, NULL before */
    bool int64_atomics;              /* cl_khr_int64_base + extended atomics */
    bool fp64;                       /* cl_khr_fp64 */
    uint64_t max_alloc;              /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem;              /* CL_DEVICE_LOCAL_MEM_SIZE (per work-group) */
    tsr_cl_stage_t stage;            /* pinned staging of host copies (opencl_stage.c) */
    struct tsr_cl_user_progs *user;  /* programs of user source (opencl_user.c) */
} tsr_cl_dev_t;

/* "CL_OUT_OF_RESOURCES" etc.; "CL_ERROR" for codes it does not know. */
const char *tsr_dev_cl_error_name(cl_int code);

/* Records an OpenCL failure of `what` (the API call) on dev: TSR_ERR_NOMEM
 * for allocation failures, TSR_ERR_DEVICE otherwise. Returns the status. */
tsr_status_t tsr_dev_cl_fail(tsr_error_t *err, const tsr_dev_t *dev, cl_int code, const char *what);

/* The device's built program `which` (building it on first use; a build
 * failure carries the compiler's log in err). */
tsr_status_t tsr_dev_cl_program(tsr_dev_t *dev, tsr_cl_prog_t which, cl_program *out,
                                tsr_error_t *err);

/* Builds program text (named name, for messages) for dev; used by
 * tsr_dev_cl_program, and by tests to check how build errors surface. */
tsr_status_t tsr_dev_cl_build(tsr_dev_t *dev, const char *name, const char *text, size_t len,
                              cl_program *out, tsr_error_t *err);

/* ---- programs of user source (opencl_user.c) ------------------------------------ */

/* Makes / frees dev's cache of programs built from user source (called by
 * the backend's open and close). */
tsr_status_t tsr_dev_cl_user_init(tsr_dev_t *dev, tsr_error_t *err);
void tsr_dev_cl_user_free(tsr_dev_t *dev);
/* The program of source (named name in messages) on dev: built at the first
 * call for (name, source), then the cached one; *out is retained for the
 * caller, who releases it. A build failure carries the compiler's log. */
tsr_status_t tsr_dev_cl_user_program(tsr_dev_t *dev, const char *name, const char *source,
                                     cl_program *out, tsr_error_t *err);
/* How many programs the cache built and how many calls it answered from
 * what it held (since dev was opened). */
void tsr_dev_cl_user_counts(tsr_dev_t *dev, uint64_t *builds, uint64_t *hits);
/* Caps the cache at max programs (1..64; 64 by default), dropping the oldest
 * beyond it: for tests, which cannot afford 65 builds. */
void tsr_dev_cl_user_limit(tsr_dev_t *dev, size_t max);

/* ---- pinned staging of host copies (opencl_stage.c) ---------------------------- */

/* Queues a copy of size bytes of pageable host memory into dst at dst_off
 * on cq through the staging buffers (a blocking write when staging is off
 * or unavailable); returns when src may be reused. */
tsr_status_t tsr_dev_cl_upload(tsr_dev_t *dev, cl_command_queue cq, cl_mem dst, size_t dst_off,
                               const void *src, size_t size, tsr_error_t *err);
/* Copies size bytes of src at src_off into host memory after what is
 * queued on cq; returns when they are in dst. */
tsr_status_t tsr_dev_cl_download(tsr_dev_t *dev, cl_command_queue cq, cl_mem src, size_t src_off,
                                 void *dst, size_t size, tsr_error_t *err);
/* Whether copies go through the pool (making it on first call). */
bool tsr_dev_cl_stage_active(tsr_dev_t *dev);
/* count buffers of piece bytes (made on next use); piece 0: off. */
tsr_status_t tsr_dev_cl_stage_config(tsr_dev_t *dev, size_t piece, unsigned count,
                                     tsr_error_t *err);
/* Why copies are direct ("" while staging works or has not been tried). */
const char *tsr_dev_cl_stage_note(const tsr_dev_t *dev);
/* Bytes copied through the pool / directly by these functions. */
void tsr_dev_cl_stage_stats(const tsr_dev_t *dev, uint64_t *staged, uint64_t *direct);
/* opencl.c: defaults at open (TSR_OPENCL_STAGE), release at close. */
void tsr_dev_cl_stage_defaults(tsr_dev_t *dev);
void tsr_dev_cl_stage_free(tsr_dev_t *dev);

static inline tsr_cl_dev_t *tsr_dev_cl(const tsr_dev_t *dev)
{
    return (tsr_cl_dev_t *)dev->impl;
}
static inline cl_command_queue tsr_dev_cl_queue(const tsr_dev_queue_t *q)
{
    return (cl_command_queue)q->handle;
}
static inline cl_mem tsr_dev_cl_mem(const tsr_dev_buf_t *buf)
{
    return (cl_mem)buf->handle;
}

#endif /* TSR_DEVICE_OPENCL_INTERNAL_H */
