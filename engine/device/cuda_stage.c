/*
 * cuda_stage.c - host <-> device copies of pageable host memory through a
 * small pool of pinned staging buffers (one pool per CUDA device).
 *
 * Why: a cudaMemcpyAsync from pageable memory makes the driver copy the
 * bytes into its own pinned bounce buffers and DMA from there, piece by
 * piece, with the host thread blocked throughout; on the first GPU run
 * every host-fed kernel was bound by that at 6-9 GB/s. Here the pool's
 * buffers rotate: the host copies piece j+1 into buffer (j+1) % count while
 * the DMA of piece j (from buffer j % count) runs, and a buffer is reused
 * only after the event recorded behind its last DMA has completed.
 *
 * Invariants:
 *  - done[i] is recorded on the stream right after the last DMA that reads
 *    (upload) or writes (download) buf[i]; the host waits for it
 *    (cudaEventSynchronize) before touching buf[i] again. An event never
 *    recorded counts as complete, so a fresh buffer is free.
 *  - tsr_dev_cuda_upload returns when the caller's source has been copied
 *    into pinned memory (the DMAs may still be queued), so nothing reads the
 *    caller's memory after it returns: the semantics of a pageable
 *    cudaMemcpyAsync, which callers relied on before. The device side is
 *    written in stream order.
 *  - tsr_dev_cuda_download returns when the bytes are in the caller's
 *    memory (like a pageable device-to-host cudaMemcpyAsync).
 *  - The pool is made on first use and freed with the device (cu_close).
 *    Objects of a device are used by one host thread at a time, so the pool
 *    needs no lock; buffers may be used by different streams of the device
 *    in turn, because reuse waits on the host for the previous DMA.
 *  - When pinned memory cannot be had (cudaHostAlloc fails, or staging is
 *    turned off: TSR_CUDA_STAGE=off, tsr_dev_cuda_stage_config(dev, 0, 0)),
 *    copies go straight from pageable memory as before; the reason is kept
 *    in the pool's note (tsr_dev_cuda_stage_note, for benchmarks and
 *    diagnostics), and a failed pool is tried again after 16, 32, ... 4096
 *    copies (an allocation failure may be transient).
 *
 * Host copies of a piece of at least 2 MiB are split over a few host
 * threads (a tsr_pool_t of min(4, cores / 2) workers made with the pool):
 * one thread's memcpy (~10 GB/s) is below what a PCIe 5 DMA takes from
 * pinned memory. TSR_CUDA_STAGE_THREADS=<n> sets the number (1: inline).
 *
 * Sizes: 3 buffers of 16 MiB on GPUs with at least 8 GiB (a PCIe 5 DMA of
 * 16 MiB takes ~0.3 ms, far above the per-copy overhead), 64 KiB on smaller
 * devices, such as the test emulator's, so tests cross many pieces.
 * TSR_CUDA_STAGE=<KiB> sets the piece size at open (for measurements).
 */
#ifdef TSR_HAVE_CUDA

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "device/cuda_internal.h"
#include "device/stage_common.h"

_Static_assert(TSR_CUDA_STAGE_MAX <= TSR_DEV_STAGE_MAX, "stage_common.h holds the pool");

static void cu_st_drop(cudaError_t e)
{
    if (e != cudaSuccess)
        cudaGetLastError();
}

void tsr_dev_cuda_stage_defaults(tsr_dev_t *dev)
{
    tsr_cuda_dev_t *cu = tsr_dev_cuda(dev);
    tsr_cuda_stage_t *st = &cu->stage;
    memset(st, 0, sizeof(*st));
    st->count = 3;
    st->piece = cu->total_mem >= ((size_t)8 << 30) ? (size_t)16 << 20 : (size_t)64 << 10;
    unsigned cores = tsr_cpu_count();
    st->threads = cores / 2 < 4 ? (cores / 2 ? cores / 2 : 1) : 4;
    const char *th = getenv("TSR_CUDA_STAGE_THREADS");
    if (th && *th) {
        char *end = NULL;
        unsigned long t = strtoul(th, &end, 10);
        if (end && !*end && t >= 1 && t <= 64)
            st->threads = (unsigned)t;
    }
    const char *env = getenv("TSR_CUDA_STAGE");
    if (env && *env) {
        if (strcmp(env, "off") == 0 || strcmp(env, "0") == 0) {
            st->state = TSR_CUDA_STAGE_OFF;
            snprintf(st->note, sizeof(st->note),
                     "pinned staging off (TSR_CUDA_STAGE=off): host copies are pageable");
        } else {
            char *end = NULL;
            unsigned long kib = strtoul(env, &end, 10);
            if (end && !*end && kib >= 4 && kib <= (1ul << 20))
                st->piece = (size_t)kib << 10;
        }
    }
}

void tsr_dev_cuda_stage_free(tsr_dev_t *dev)
{
    tsr_cuda_stage_t *st = &tsr_dev_cuda(dev)->stage;
    for (unsigned i = 0; i < TSR_CUDA_STAGE_MAX; i++) {
        if (st->done[i]) {
            cu_st_drop(cudaEventSynchronize(st->done[i]));
            cu_st_drop(cudaEventDestroy(st->done[i]));
        }
        if (st->buf[i])
            cu_st_drop(cudaFreeHost(st->buf[i]));
        st->buf[i] = NULL;
        st->done[i] = NULL;
    }
    st->next = 0;
    tsr_pool_destroy(st->copiers);
    st->copiers = NULL;
    if (st->state == TSR_CUDA_STAGE_READY)
        st->state = TSR_CUDA_STAGE_UNTRIED;
}

tsr_status_t tsr_dev_cuda_stage_config(tsr_dev_t *dev, size_t piece, unsigned count,
                                       tsr_error_t *err)
{
    if (!dev || dev->backend->id != TSR_DEVICE_CUDA)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "staging: not a CUDA device");
    tsr_status_t rc = tsr_dev_stage_check(piece, count, TSR_CUDA_STAGE_MAX, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    tsr_dev_cuda_stage_free(dev);
    tsr_cuda_stage_t *st = &tsr_dev_cuda(dev)->stage;
    if (!piece) {
        st->state = TSR_CUDA_STAGE_OFF;
        snprintf(st->note, sizeof(st->note), "pinned staging off: host copies are pageable");
        return TSR_OK;
    }
    st->state = TSR_CUDA_STAGE_UNTRIED;
    st->note[0] = '\0';
    st->piece = piece;
    st->count = count;
    return TSR_OK;
}

tsr_status_t tsr_dev_cuda_stage_threads(tsr_dev_t *dev, unsigned threads, tsr_error_t *err)
{
    if (!dev || dev->backend->id != TSR_DEVICE_CUDA || threads < 1 || threads > 64)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "staging: %u copier threads on %s",
                             threads, dev ? dev->info.name : "no device");
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    tsr_dev_cuda_stage_free(dev); /* made again, with them, on next use */
    tsr_dev_cuda(dev)->stage.threads = threads;
    return TSR_OK;
}

const char *tsr_dev_cuda_stage_note(const tsr_dev_t *dev)
{
    return tsr_dev_cuda(dev)->stage.note;
}

void tsr_dev_cuda_stage_stats(const tsr_dev_t *dev, uint64_t *staged, uint64_t *direct)
{
    const tsr_cuda_stage_t *st = &tsr_dev_cuda(dev)->stage;
    tsr_dev_stage_stats_out(st->staged_bytes, st->direct_bytes, staged, direct);
}

/* The pool, made on first use; NULL when copies must go pageable (the
 * reason is in the note). */
static tsr_cuda_stage_t *cu_st_get(tsr_dev_t *dev)
{
    tsr_cuda_stage_t *st = &tsr_dev_cuda(dev)->stage;
    if (st->state == TSR_CUDA_STAGE_READY)
        return st;
    if (st->state == TSR_CUDA_STAGE_FAILED) {
        if (st->retry_in > 0) {
            st->retry_in--;
            return NULL;
        }
        st->state = TSR_CUDA_STAGE_UNTRIED; /* the failure may have been transient */
    }
    if (st->state != TSR_CUDA_STAGE_UNTRIED)
        return NULL;
    cudaError_t e = cudaSuccess;
    const char *what = "cudaHostAlloc";
    for (unsigned i = 0; i < st->count && e == cudaSuccess; i++) {
        e = cudaHostAlloc(&st->buf[i], st->piece, cudaHostAllocPortable);
        if (e != cudaSuccess) {
            st->buf[i] = NULL;
            break;
        }
        what = "cudaEventCreateWithFlags";
        e = cudaEventCreateWithFlags(&st->done[i], cudaEventDisableTiming);
        if (e != cudaSuccess)
            st->done[i] = NULL;
        what = "cudaHostAlloc";
    }
    /* no helper threads (out of memory or threads): copies stay inline */
    if (e == cudaSuccess && st->threads > 1 &&
        tsr_pool_create(dev->mem, st->threads, &st->copiers) != TSR_OK)
        st->copiers = NULL;
    if (e == cudaSuccess) {
        st->state = TSR_CUDA_STAGE_READY;
        st->backoff = 0;
        st->note[0] = '\0';
        return st;
    }
    /* fall back to pageable copies, and say why */
    snprintf(st->note, sizeof(st->note),
             "pinned staging unavailable (%s of %u x %zu bytes on %s: %s: %s); host copies are "
             "pageable",
             what, st->count, st->piece, dev->info.name, cudaGetErrorName(e),
             cudaGetErrorString(e));
    cudaGetLastError();
    tsr_dev_cuda_stage_free(dev);
    st->state = TSR_CUDA_STAGE_FAILED;
    /* try again after 16, 32, ... 4096 pageable copies */
    st->backoff = tsr_dev_stage_backoff(st->backoff);
    st->retry_in = st->backoff;
    return NULL;
}

/* A failure after a DMA from or into a staging buffer was queued: that DMA
 * may not be covered by its buffer's event, so wait for the stream before
 * the buffer can be reused (errors dropped: the failure is reported). */
static tsr_status_t cu_st_fail(tsr_dev_t *dev, cudaStream_t s, cudaError_t e, const char *what,
                               tsr_error_t *err)
{
    tsr_status_t rc = tsr_dev_cuda_fail(err, dev, e, what);
    cu_st_drop(cudaStreamSynchronize(s));
    return rc;
}

tsr_status_t tsr_dev_cuda_upload(tsr_dev_t *dev, cudaStream_t s, void *dst, const void *src,
                                 size_t size, const char *what, tsr_error_t *err)
{
    if (!size)
        return TSR_OK;
    tsr_cuda_stage_t *st = cu_st_get(dev);
    cudaError_t e;
    if (!st) {
        if ((e = cudaMemcpyAsync(dst, src, size, cudaMemcpyHostToDevice, s)) != cudaSuccess)
            return tsr_dev_cuda_fail(err, dev, e, what);
        tsr_dev_cuda(dev)->stage.direct_bytes += size;
        return TSR_OK;
    }
    for (size_t off = 0; off < size;) {
        unsigned i;
        size_t len = tsr_dev_stage_next(&st->next, st->count, st->piece, size - off, &i);
        /* buf[i] is free once its last DMA is done */
        if ((e = cudaEventSynchronize(st->done[i])) != cudaSuccess)
            return cu_st_fail(dev, s, e, "cudaEventSynchronize(staging buffer)", err);
        tsr_dev_stage_memcpy(st->copiers, st->buf[i], (const char *)src + off, len);
        if ((e = cudaMemcpyAsync((char *)dst + off, st->buf[i], len, cudaMemcpyHostToDevice, s)) !=
            cudaSuccess)
            return cu_st_fail(dev, s, e, what, err);
        if ((e = cudaEventRecord(st->done[i], s)) != cudaSuccess)
            return cu_st_fail(dev, s, e, "cudaEventRecord(staging buffer)", err);
        off += len;
        st->staged_bytes += len;
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_cuda_download(tsr_dev_t *dev, cudaStream_t s, void *dst, const void *src,
                                   size_t size, const char *what, tsr_error_t *err)
{
    if (!size)
        return TSR_OK;
    tsr_cuda_stage_t *st = cu_st_get(dev);
    cudaError_t e;
    if (!st) { /* into pageable memory: returns when the bytes are there */
        if ((e = cudaMemcpyAsync(dst, src, size, cudaMemcpyDeviceToHost, s)) != cudaSuccess)
            return tsr_dev_cuda_fail(err, dev, e, what);
        tsr_dev_cuda(dev)->stage.direct_bytes += size;
        return TSR_OK;
    }
    /* pieces in flight, oldest first: up to count DMAs queued ahead of the
     * host's copy-out, which overlaps the next pieces' DMAs */
    tsr_dev_stage_fl_t fl = {0};
    size_t off = 0;
    while (off < size || fl.n) {
        if (off < size && fl.n < st->count) {
            unsigned i;
            size_t len = tsr_dev_stage_next(&st->next, st->count, st->piece, size - off, &i);
            /* the buffer's previous DMA (an upload's, maybe on another
             * stream) must be done before this one overwrites it */
            if ((e = cudaEventSynchronize(st->done[i])) != cudaSuccess ||
                (e = cudaMemcpyAsync(st->buf[i], (const char *)src + off, len,
                                     cudaMemcpyDeviceToHost, s)) != cudaSuccess ||
                (e = cudaEventRecord(st->done[i], s)) != cudaSuccess)
                return cu_st_fail(dev, s, e, what, err);
            tsr_dev_stage_fl_push(&fl, i, off, len);
            off += len;
            continue;
        }
        unsigned i;
        size_t poff, plen;
        tsr_dev_stage_fl_pop(&fl, &i, &poff, &plen);
        if ((e = cudaEventSynchronize(st->done[i])) != cudaSuccess)
            return cu_st_fail(dev, s, e, "cudaEventSynchronize(staging buffer)", err);
        tsr_dev_stage_memcpy(st->copiers, (char *)dst + poff, st->buf[i], plen);
        st->staged_bytes += plen;
    }
    return TSR_OK;
}

#else
typedef int tsr_dev_cuda_stage_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
