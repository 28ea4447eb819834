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
    TSR_CL_NPROGS,
} tsr_cl_prog_t;

typedef struct tsr_cl_dev {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_program progs[TSR_CL_NPROGS]; /* built on first use, NULL before */
    bool int64_atomics;              /* cl_khr_int64_base + extended atomics */
    bool fp64;                       /* cl_khr_fp64 */
    uint64_t max_alloc;              /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    uint64_t local_mem;              /* CL_DEVICE_LOCAL_MEM_SIZE (per work-group) */
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
