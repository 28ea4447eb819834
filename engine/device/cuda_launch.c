/*
 * cuda_launch.c - what the CUDA kernel families (hash join, filter,
 * partitioning) share on the host side: block and grid sizes from the
 * device's properties, the exclusive prefix sum (kernels/cuda/scan.cuh)
 * with its scratch, growing scratch buffers, checked async copies, and the
 * double-buffered upload pipeline (a copy stream and events).
 *
 * Grids are capped at what the device holds resident (multiprocessors x
 * threads per multiprocessor): the kernels loop grid-stride beyond, so a
 * launch over a billion rows costs no more blocks than the GPU can run at
 * once. The same code sizes launches for the test emulator's small device.
 */
#ifdef TSR_HAVE_CUDA

#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"

unsigned tsr_dev_cuda_block(const tsr_dev_t *dev, unsigned want)
{
    unsigned max = tsr_dev_cuda(dev)->max_block, b = want;
    while (b > 32 && b > max)
        b /= 2;
    return b;
}

unsigned tsr_dev_cuda_grid(const tsr_dev_t *dev, size_t items, size_t per_block, unsigned block)
{
    const tsr_cuda_dev_t *cu = tsr_dev_cuda(dev);
    size_t resident = (size_t)cu->sm_count * (cu->max_threads_per_sm / block);
    size_t g = per_block ? (items + per_block - 1) / per_block : 1;
    if (g > resident)
        g = resident;
    return (unsigned)(g ? g : 1);
}

tsr_status_t tsr_dev_cuda_scan(tsr_dev_queue_t *q, tsr_dev_cuda_scan_buf_t *sb, uint64_t *data,
                               size_t n, uint64_t *total_at, tsr_error_t *err)
{
    tsr_dev_t *dev = q->dev;
    unsigned block = tsr_dev_cuda_block(dev, 256);
    size_t tile = (size_t)block * TSR_CUDA_SCAN_ITEMS, ntiles = (n + tile - 1) / tile;
    tsr_status_t rc = tsr_dev_cuda_ensure(q, &sb->partial, (ntiles + 1) * 8, err);
    if (rc != TSR_OK)
        return rc;
    tsr_cuda_scan_view_t v = {
        .data = data,
        .partial = tsr_dev_cuda_ptr(sb->partial),
        .total = total_at,
        .n = n,
        .ntiles = ntiles,
    };
    cudaError_t e =
        tsr_cuda_scan(&v, tsr_dev_cuda_grid(dev, ntiles, 1, block), block, tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, dev, e, "scan kernel launch");
}

void tsr_dev_cuda_scan_free(tsr_dev_cuda_scan_buf_t *sb)
{
    tsr_dev_buf_free(sb->partial);
    sb->partial = NULL;
}

tsr_status_t tsr_dev_cuda_ensure(tsr_dev_queue_t *q, tsr_dev_buf_t **buf, size_t size,
                                 tsr_error_t *err)
{
    if (*buf && (*buf)->size >= size)
        return TSR_OK;
    tsr_status_t rc;
    if (*buf && (rc = tsr_dev_queue_finish(q, err)) != TSR_OK)
        return rc;
    tsr_dev_buf_t *nb = NULL;
    if ((rc = tsr_dev_buf_alloc(q->dev, size ? size : 8, &nb, err)) != TSR_OK)
        return rc;
    tsr_dev_buf_free(*buf);
    *buf = nb;
    return TSR_OK;
}

tsr_status_t tsr_dev_cuda_memcpy(tsr_dev_queue_t *q, void *dst, const void *src, size_t size,
                                 enum cudaMemcpyKind kind, const char *what, tsr_error_t *err)
{
    if (!size)
        return TSR_OK;
    /* host memory is the caller's pageable memory: through pinned staging */
    if (kind == cudaMemcpyHostToDevice)
        return tsr_dev_cuda_upload(q->dev, tsr_dev_cuda_stream(q), dst, src, size, what, err);
    if (kind == cudaMemcpyDeviceToHost)
        return tsr_dev_cuda_download(q->dev, tsr_dev_cuda_stream(q), dst, src, size, what, err);
    cudaError_t e = cudaMemcpyAsync(dst, src, size, kind, tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, q->dev, e, what);
}

void tsr_dev_cuda_drain(tsr_dev_queue_t *q)
{
    if (cudaStreamSynchronize(tsr_dev_cuda_stream(q)) != cudaSuccess)
        cudaGetLastError();
}

/* ---- double-buffered uploads ------------------------------------------------------- */

static void cu_drop(cudaError_t e)
{
    if (e != cudaSuccess)
        cudaGetLastError();
}

tsr_status_t tsr_dev_cuda_pipe_init(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, tsr_error_t *err)
{
    memset(p, 0, sizeof(*p));
    cudaError_t e = cudaStreamCreateWithFlags(&p->copy, cudaStreamNonBlocking);
    const char *what = "cudaStreamCreateWithFlags";
    for (int b = 0; b < 2 && e == cudaSuccess; b++) {
        what = "cudaEventCreateWithFlags";
        e = cudaEventCreateWithFlags(&p->uploaded[b], cudaEventDisableTiming);
        if (e == cudaSuccess)
            e = cudaEventCreateWithFlags(&p->consumed[b], cudaEventDisableTiming);
    }
    if (e == cudaSuccess)
        return TSR_OK;
    tsr_status_t rc = tsr_dev_cuda_fail(err, dev, e, what);
    tsr_dev_cuda_pipe_free(p);
    return rc;
}

void tsr_dev_cuda_pipe_free(tsr_dev_cuda_pipe_t *p)
{
    if (p->copy)
        cu_drop(cudaStreamSynchronize(p->copy));
    for (int b = 0; b < 2; b++) {
        if (p->uploaded[b])
            cu_drop(cudaEventDestroy(p->uploaded[b]));
        if (p->consumed[b])
            cu_drop(cudaEventDestroy(p->consumed[b]));
    }
    if (p->copy)
        cu_drop(cudaStreamDestroy(p->copy));
    memset(p, 0, sizeof(*p));
}

tsr_status_t tsr_dev_cuda_pipe_upload_begin(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, int b,
                                            tsr_error_t *err)
{
    /* an event never recorded is complete: a fresh set is free */
    cudaError_t e = cudaStreamWaitEvent(p->copy, p->consumed[b], 0);
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, dev, e, "cudaStreamWaitEvent");
}

tsr_status_t tsr_dev_cuda_pipe_upload_end(tsr_dev_t *dev, tsr_dev_cuda_pipe_t *p, int b,
                                          tsr_error_t *err)
{
    cudaError_t e = cudaEventRecord(p->uploaded[b], p->copy);
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, dev, e, "cudaEventRecord");
}

tsr_status_t tsr_dev_cuda_pipe_use(tsr_dev_queue_t *q, tsr_dev_cuda_pipe_t *p, int b,
                                   tsr_error_t *err)
{
    cudaError_t e = cudaStreamWaitEvent(tsr_dev_cuda_stream(q), p->uploaded[b], 0);
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, q->dev, e, "cudaStreamWaitEvent");
}

tsr_status_t tsr_dev_cuda_pipe_release(tsr_dev_queue_t *q, tsr_dev_cuda_pipe_t *p, int b,
                                       tsr_error_t *err)
{
    cudaError_t e = cudaEventRecord(p->consumed[b], tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, q->dev, e, "cudaEventRecord");
}

void tsr_dev_cuda_pipe_drain(tsr_dev_cuda_pipe_t *p, tsr_dev_queue_t *q)
{
    if (p->copy)
        cu_drop(cudaStreamSynchronize(p->copy));
    tsr_dev_cuda_drain(q);
}

#else
typedef int tsr_dev_cuda_launch_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
