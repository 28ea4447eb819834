/*
 * cuda_internal.h - what cuda.c shares with the CUDA kernel host code
 * (hashagg_cuda.c, hashmap_cuda.c) and with the kernel benchmark: the
 * per-device state, error conversion, and the CUDA-only entry points that
 * work on data already in device memory. Private to engine/device/ and its
 * tests and benchmarks; built only with TSR_HAVE_CUDA.
 *
 * Error conversion: every CUDA runtime return code is checked where it
 * happens; tsr_dev_cuda_fail records "CUDA <call> failed on <device>:
 * <cudaErrorName>: <cudaGetErrorString>" and answers TSR_ERR_NOMEM for
 * allocation failures, TSR_ERR_DEVICE otherwise. It also clears the
 * runtime's last-error slot, so a failure cannot resurface in a later,
 * unrelated launch check.
 *
 * Devices: the runtime's current device is per host thread, so every entry
 * point that issues CUDA calls first makes dev current (tsr_dev_cuda_use).
 */
#ifndef TSR_DEVICE_CUDA_INTERNAL_H
#define TSR_DEVICE_CUDA_INTERNAL_H

#include <cuda_runtime_api.h>

#include "device/device.h"
#include "device/hashagg.h"

/* The pinned staging pool of a device (cuda_stage.c). */
#define TSR_CUDA_STAGE_MAX 4
enum {
    TSR_CUDA_STAGE_UNTRIED = 0, /* made on first use */
    TSR_CUDA_STAGE_READY,
    TSR_CUDA_STAGE_FAILED, /* cudaHostAlloc failed: pageable copies (note says why) */
    TSR_CUDA_STAGE_OFF,    /* turned off: pageable copies */
};
typedef struct tsr_cuda_stage {
    void *buf[TSR_CUDA_STAGE_MAX];        /* pinned, piece bytes each */
    cudaEvent_t done[TSR_CUDA_STAGE_MAX]; /* recorded after buf[i]'s last DMA */
    unsigned count;                       /* buffers in rotation */
    unsigned next;                        /* the next buffer to use */
    size_t piece;                         /* bytes per buffer */
    int state;                            /* TSR_CUDA_STAGE_* */
    unsigned backoff, retry_in;           /* FAILED: pageable copies before the next try */
    char note[256];                       /* why copies are pageable, or "" */
    uint64_t staged_bytes, direct_bytes;  /* bytes copied through the pool / pageable */
    struct tsr_pool *copiers;             /* host threads sharing large piece copies, or NULL */
    unsigned threads;                     /* workers wanted (1: copies inline) */
} tsr_cuda_stage_t;

typedef struct tsr_cuda_dev {
    int ordinal;                 /* the runtime's device number */
    unsigned sm_count;           /* multiprocessors */
    unsigned max_block;          /* threads per block */
    unsigned max_threads_per_sm; /* resident threads per multiprocessor */
    size_t shared_optin;         /* shared memory a block may opt in to */
    size_t total_mem;            /* device memory */
    int cc_major, cc_minor;      /* compute capability */
    cudaError_t kernels;         /* cudaSuccess when this binary can run kernels here */
    tsr_cuda_stage_t stage;      /* pinned staging of host copies (cuda_stage.c) */
} tsr_cuda_dev_t;

/* Records a CUDA failure of `what` on dev (see the top of the file). */
tsr_status_t tsr_dev_cuda_fail(tsr_error_t *err, const tsr_dev_t *dev, cudaError_t code,
                               const char *what);
/* Makes dev the calling thread's current device. */
tsr_status_t tsr_dev_cuda_use(tsr_dev_t *dev, tsr_error_t *err);
/* TSR_OK when this binary holds kernels the device can run; otherwise
 * TSR_ERR_UNSUPPORTED naming the architectures built and the device's. */
tsr_status_t tsr_dev_cuda_kernels_ok(tsr_dev_t *dev, tsr_error_t *err);

static inline tsr_cuda_dev_t *tsr_dev_cuda(const tsr_dev_t *dev)
{
    return (tsr_cuda_dev_t *)dev->impl;
}
static inline cudaStream_t tsr_dev_cuda_stream(const tsr_dev_queue_t *q)
{
    return (cudaStream_t)q->handle;
}
static inline void *tsr_dev_cuda_ptr(const tsr_dev_buf_t *buf)
{
    return buf->handle;
}

/* Queues a device-to-device copy of size bytes on q (the copy-bandwidth
 * reference of the kernel benchmark). */
tsr_status_t tsr_dev_cuda_copy(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t dst_off,
                               const tsr_dev_buf_t *src, size_t src_off, size_t size,
                               tsr_error_t *err);

/* ---- pinned staging of host copies (cuda_stage.c) ------------------------------------- */

/* Queues a copy of size bytes of pageable host memory at src to device
 * memory at dst on stream s, through the device's pinned staging buffers
 * (pageable cudaMemcpyAsync when there are none). Returns when src may be
 * reused; dst is written in stream order. what: for the error message. */
tsr_status_t tsr_dev_cuda_upload(tsr_dev_t *dev, cudaStream_t s, void *dst, const void *src,
                                 size_t size, const char *what, tsr_error_t *err);
/* Copies size bytes of device memory at src into pageable host memory at
 * dst, after what is queued on s, through the staging buffers; returns when
 * the bytes are in dst. */
tsr_status_t tsr_dev_cuda_download(tsr_dev_t *dev, cudaStream_t s, void *dst, const void *src,
                                   size_t size, const char *what, tsr_error_t *err);
/* Sets the pool's buffers (count of piece bytes, made on next use; piece 0:
 * staging off). Tests and benchmarks. */
tsr_status_t tsr_dev_cuda_stage_config(tsr_dev_t *dev, size_t piece, unsigned count,
                                       tsr_error_t *err);
/* Host threads sharing the copy of a piece of >= 2 MiB (1: inline). */
tsr_status_t tsr_dev_cuda_stage_threads(tsr_dev_t *dev, unsigned threads, tsr_error_t *err);
/* Why copies are pageable ("" while staging works or has not been tried). */
const char *tsr_dev_cuda_stage_note(const tsr_dev_t *dev);
/* Bytes copied through the pool and pageable since the device was opened. */
void tsr_dev_cuda_stage_stats(const tsr_dev_t *dev, uint64_t *staged, uint64_t *direct);
/* cuda.c: defaults at open (TSR_CUDA_STAGE), and the pool's release at close. */
void tsr_dev_cuda_stage_defaults(tsr_dev_t *dev);
void tsr_dev_cuda_stage_free(tsr_dev_t *dev);

/* ---- hash aggregation over columns already in device memory --------------------------- */

/* Column c of aggregate or key i starts at buffer offset 0 and holds n rows
 * (bitmaps: (n+63)/64 words); NULL bitmaps mean no NULLs. */
typedef struct tsr_cuda_ha_dev_rows {
    size_t n;
    const tsr_dev_buf_t *keys[TSR_DEV_HASHAGG_MAX_KEYS];
    const tsr_dev_buf_t *key_valid[TSR_DEV_HASHAGG_MAX_KEYS];
    const tsr_dev_buf_t *values[TSR_DEV_HASHAGG_MAX_AGGS]; /* NULL for COUNT kinds */
    const tsr_dev_buf_t *valid[TSR_DEV_HASHAGG_MAX_AGGS];
    size_t launch_rows; /* rows per launch; 0: the backend's choice (tests pass small ones) */
} tsr_cuda_ha_dev_rows_t;

/* tsr_dev_hashagg_update for rows in device memory of ha's CUDA device: no
 * transfer, the kernels read the buffers in place. Returns when the rows have
 * been aggregated (q finished). */
tsr_status_t tsr_dev_hashagg_cuda_update_device(tsr_dev_hashagg_t *ha, tsr_dev_queue_t *q,
                                                const tsr_cuda_ha_dev_rows_t *rows,
                                                tsr_error_t *err);

/* ---- static map (hashmap_cuda.c): 64-bit keys -> 64-bit values ------------------------ */

typedef struct tsr_cuda_map tsr_cuda_map_t;

/* A map for at least `capacity` keys at load factor <= 1/2 (it grows beyond). */
tsr_status_t tsr_cuda_map_create(tsr_dev_t *dev, size_t capacity, tsr_cuda_map_t **out,
                                 tsr_error_t *err);
void tsr_cuda_map_destroy(tsr_cuda_map_t *m);
/* Inserts keys[i] -> vals[i] for i < n (uint64 columns in device memory), or
 * assigns the value where the key is present; for a key repeated within one
 * call one of its values wins. Returns after the pairs are in the map. */
tsr_status_t tsr_cuda_map_upsert(tsr_cuda_map_t *m, tsr_dev_queue_t *q, const tsr_dev_buf_t *keys,
                                 const tsr_dev_buf_t *vals, size_t n, tsr_error_t *err);
/* out[i] = the value of keys[i] (0 when absent), found[i] = 1 when present
 * (uint8 column); device memory, n rows. */
tsr_status_t tsr_cuda_map_find(tsr_cuda_map_t *m, tsr_dev_queue_t *q, const tsr_dev_buf_t *keys,
                               tsr_dev_buf_t *out, tsr_dev_buf_t *found, size_t n,
                               tsr_error_t *err);
size_t tsr_cuda_map_size(const tsr_cuda_map_t *m);
/* Slots of the table (a power of two; the load factor is size / slots). */
size_t tsr_cuda_map_slots(const tsr_cuda_map_t *m);

/* ---- launch helpers for the kernel families (cuda_launch.c) -------------------------- */

/* Threads per block of the row kernels: `want` (a power of two, at most
 * 1024), lowered to what the device allows (the emulator's is small). */
unsigned tsr_dev_cuda_block(const tsr_dev_t *dev, unsigned want);
/* Blocks for `items` work items of `per_block` each: enough to cover them,
 * at most what the device holds resident (grid-stride loops do the rest),
 * at least 1. */
unsigned tsr_dev_cuda_grid(const tsr_dev_t *dev, size_t items, size_t per_block, unsigned block);

/* Scratch of tsr_dev_cuda_scan (its tile sums), kept between calls. */
typedef struct tsr_dev_cuda_scan_buf {
    tsr_dev_buf_t *partial;
} tsr_dev_cuda_scan_buf_t;

/* Queues the exclusive prefix sum of n uint64 at the start of data, in
 * place; when total_at is not NULL the sum of all n goes there too (device
 * memory, e.g. data + n). sb grows as needed; free it with
 * tsr_dev_cuda_scan_free. */
tsr_status_t tsr_dev_cuda_scan(tsr_dev_queue_t *q, tsr_dev_cuda_scan_buf_t *sb, uint64_t *data,
                               size_t n, uint64_t *total_at, tsr_error_t *err);
void tsr_dev_cuda_scan_free(tsr_dev_cuda_scan_buf_t *sb);

/* Replaces *buf by a buffer of at least size bytes unless it holds that many
 * (waits for q first: commands queued earlier may still use the old one). */
tsr_status_t tsr_dev_cuda_ensure(tsr_dev_queue_t *q, tsr_dev_buf_t **buf, size_t size,
                                 tsr_error_t *err);
/* Queues an async copy and converts a failure (what: for the message).
 * Copies from or to host memory (pageable, the caller's) go through the
 * pinned staging buffers: tsr_dev_cuda_upload / tsr_dev_cuda_download. */
tsr_status_t tsr_dev_cuda_memcpy(tsr_dev_queue_t *q, void *dst, const void *src, size_t size,
                                 enum cudaMemcpyKind kind, const char *what, tsr_error_t *err);
/* Waits for q, dropping any error (error paths: nothing may run on after). */
void tsr_dev_cuda_drain(tsr_dev_queue_t *q);

/* Double buffering of uploads: two input buffer sets, a copy stream that
 * uploads set b after the kernel that last read it (consumed[b]), and a
 * queue that runs a kernel on set b after its upload (uploaded[b]). So the
 * upload of launch i+1 overlaps the kernels of launch i. */
typedef struct tsr_dev_cuda_pipe {
    cudaStream_t copy;
    cudaEvent_t uploaded[2]; /* recorded on copy after set b's upload */
    cudaEvent_t consumed[2]; /* recorded on the queue after the last kernel reading set b */
} tsr_dev_cuda_pipe_t;

tsr_status_t tsr_dev_cuda_pipe_init(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, tsr_error_t *err);
/* Waits for the copy stream, then destroys (accepts a partly made pipe). */
void tsr_dev_cuda_pipe_free(tsr_dev_cuda_pipe_t *p);
/* Copy stream: wait until set b is free (before queuing its upload). */
tsr_status_t tsr_dev_cuda_pipe_upload_begin(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, int b,
                                            tsr_error_t *err);
/* Copy stream: set b's upload is queued. */
tsr_status_t tsr_dev_cuda_pipe_upload_end(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, int b,
                                          tsr_error_t *err);
/* Queue q: wait for set b's upload (before the kernel reading it). */
tsr_status_t tsr_dev_cuda_pipe_use(tsr_dev_queue_t *q, tsr_dev_cuda_pipe_t *p, int b,
                                   tsr_error_t *err);
/* Queue q: the last kernel reading set b is queued. */
tsr_status_t tsr_dev_cuda_pipe_release(tsr_dev_queue_t *q, tsr_dev_cuda_pipe_t *p, int b,
                                       tsr_error_t *err);
/* Error paths: waits for the copy stream and q, dropping errors. */
void tsr_dev_cuda_pipe_drain(tsr_dev_cuda_pipe_t *p, tsr_dev_queue_t *q);

#endif /* TSR_DEVICE_CUDA_INTERNAL_H */
