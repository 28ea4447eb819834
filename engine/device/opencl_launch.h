/*
 * opencl_launch.h - what the OpenCL kernel families (hashjoin_opencl.c,
 * filter_opencl.c, partition_opencl.c) share on the host: creating kernels,
 * setting arguments and launching them with every return code checked, and
 * the device-wide exclusive prefix sum (kernels/opencl/scan.cl) that all
 * three build on. Private to engine/device/.
 *
 * Scan contract (the same a CUDA version would offer): data is a device
 * buffer of at least n + 1 ulongs; afterwards data[i] = the sum of the old
 * data[0..i) and data[n] = the total. Queued like any other command.
 */
#ifndef TSR_DEVICE_OPENCL_LAUNCH_H
#define TSR_DEVICE_OPENCL_LAUNCH_H

#include "device/opencl_internal.h"

/* One kernel argument: a value (size and address) or, with value NULL, a
 * __local buffer of size bytes. */
typedef struct tsr_cl_arg {
    size_t size;
    const void *value;
} tsr_cl_arg_t;

// clang-format off
#define TSR_CL_ARG(v) {sizeof(v), &(v)}
#define TSR_CL_LOCAL(bytes) {(bytes), NULL}
#define TSR_CL_NARGS(a) (sizeof(a) / sizeof((a)[0]))
// clang-format on

/* Work-groups of the families are at most this big (and a power of two). */
#define TSR_CL_MAX_WG ((size_t)256)

/* Kernel `name` of program `which`, with its work-group size: the largest
 * power of two the kernel allows, at most TSR_CL_MAX_WG. */
tsr_status_t tsr_dev_cl_kernel_create(tsr_dev_t *dev, tsr_cl_prog_t which, const char *name,
                                      cl_kernel *k, size_t *wg, tsr_error_t *err);
void tsr_dev_cl_kernel_release(cl_kernel k); /* accepts NULL */

tsr_status_t tsr_dev_cl_set_args(tsr_dev_t *dev, cl_kernel k, const tsr_cl_arg_t *args,
                                 size_t nargs, tsr_error_t *err);
/* Queues k over `items` work-items (rounded up to whole work-groups of wg);
 * nothing is queued when items is 0. */
tsr_status_t tsr_dev_cl_launch(tsr_dev_queue_t *q, cl_kernel k, size_t wg, size_t items,
                               tsr_error_t *err);
/* Sets the arguments, then launches. */
tsr_status_t tsr_dev_cl_run(tsr_dev_queue_t *q, cl_kernel k, size_t wg, size_t items,
                            const tsr_cl_arg_t *args, size_t nargs, tsr_error_t *err);

/* Copies size bytes between device buffers (queued). */
tsr_status_t tsr_dev_cl_copy(tsr_dev_queue_t *q, tsr_dev_buf_t *src, size_t src_off,
                             tsr_dev_buf_t *dst, size_t dst_off, size_t size, tsr_error_t *err);

/* ---- the prefix sum ------------------------------------------------------------------ */

typedef struct tsr_cl_scan {
    tsr_dev_t *dev;
    cl_kernel k_reduce, k_blocks, k_apply;
    size_t wg;           /* of all three kernels (the smallest of their limits) */
    tsr_dev_buf_t *sums; /* ulong[cap + 1]: block sums */
    size_t cap;          /* blocks the sums buffer holds */
} tsr_cl_scan_t;

/* Entries one work-item scans (a block is wg * TSR_CL_SCAN_ITEMS entries). */
#define TSR_CL_SCAN_ITEMS 8u

tsr_status_t tsr_dev_cl_scan_init(tsr_dev_t *dev, tsr_cl_scan_t *s, tsr_error_t *err);
void tsr_dev_cl_scan_free(tsr_cl_scan_t *s);
/* Exclusive prefix sum of data[0..n) in place, total into data[n] (see above).
 * n < 2^32 * block size. */
tsr_status_t tsr_dev_cl_scan(tsr_cl_scan_t *s, tsr_dev_queue_t *q, tsr_dev_buf_t *data, size_t n,
                             tsr_error_t *err);

#endif /* TSR_DEVICE_OPENCL_LAUNCH_H */
