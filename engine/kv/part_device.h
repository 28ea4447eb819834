/*
 * part_device.h - what part_device.c (open, staging, writes) and
 * part_device_get.c (batch gets) share: the store's device state and the
 * staging helpers. Private to engine/kv/ (docs/kv.md "Device batches").
 */
#ifndef TSR_KV_PART_DEVICE_H
#define TSR_KV_PART_DEVICE_H

#include "kv_internal.h"

#define KVD_DEFAULT_MIN 4096u
#define KVD_CHUNK ((size_t)1 << 18)   /* pairs per launch */
#define KVD_BYTES ((size_t)256 << 20) /* staged key or value bytes per launch */
#define KVD_ABSENT UINT64_MAX
#define KVD_DEL_BIT (1ULL << 63)

#ifndef TSR_NO_OPENCL
#include "device/opencl_launch.h"

struct kv_dev {
    tsr_dev_t *dev;
    pthread_mutex_t mu; /* one batch at a time on the device's queue */
    bool active;
    size_t min_batch;
    cl_kernel k_probe, k_apply, k_get;
    size_t wg_probe, wg_apply, wg_get;
    uint32_t per; /* keys per work-item (kv.cl): 16 on CPU devices, 1 on GPUs */
    tsr_dev_buf_t *meta, *keys, *vals, *out, *gvals, *gst;
    tsr_kv_device_stats_t st;
};

/* A device buffer of at least bytes (grown by doubling, contents lost). */
tsr_status_t tsr_kv_dev_ensure(kv_dev_t *d, tsr_dev_buf_t **b, size_t bytes, tsr_error_t *err);
/* Blocking copies host -> device / device -> host (nothing for 0 bytes). */
tsr_status_t tsr_kv_dev_upload(kv_dev_t *d, tsr_dev_buf_t *b, const void *src, size_t bytes,
                               tsr_error_t *err);
tsr_status_t tsr_kv_dev_download(kv_dev_t *d, tsr_dev_buf_t *b, void *dst, size_t bytes,
                                 tsr_error_t *err);
/* The region as a buffer, in place (CL_MEM_USE_HOST_PTR). */
tsr_status_t tsr_kv_dev_tab_mem(kv_dev_t *d, const kv_tab_t *t, cl_mem *m, tsr_error_t *err);
/* Makes what kernels wrote visible in the host region, drops the buffer. */
tsr_status_t tsr_kv_dev_tab_release(kv_dev_t *d, cl_mem m, size_t bytes, tsr_error_t *err);
/* Stages n keys (pairs[idx[i]], or pairs[i] when idx is NULL) into d->meta
 * (hash, offset | length << 32) and d->keys, through the host scratch meta
 * (2n words) and kb (their bytes). */
tsr_status_t tsr_kv_dev_stage_keys(kv_dev_t *d, size_t n, const uint64_t *h,
                                   const tsr_kv_pair_t *pairs, const size_t *idx, uint64_t *meta,
                                   unsigned char *kb, tsr_error_t *err);
#endif

#endif /* TSR_KV_PART_DEVICE_H */
