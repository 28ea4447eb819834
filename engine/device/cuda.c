/*
 * cuda.c - the CUDA device backend (CUDA runtime API, linked statically so
 * binaries need no CUDA libraries at run time; only the NVIDIA driver).
 *
 * Devices are the runtime's, numbered as cudaGetDeviceCount/-Properties
 * report them (CUDA_VISIBLE_DEVICES applies); tsr_device_info_t.index is that
 * ordinal. Opening a device checks that the ordinal still names the device
 * listed, creates its primary context (cudaFree(NULL)) and checks that this
 * binary carries code for it (kernels built for CMAKE_CUDA_ARCHITECTURES run
 * on that architecture and, through the embedded PTX, on newer ones).
 *
 * Objects: buffers are cudaMalloc pointers; pinned host memory comes from
 * cudaHostAlloc; queues are streams created with cudaStreamNonBlocking (no
 * implicit synchronisation with the legacy default stream, which this
 * backend never uses); an event is a pair of CUDA events recorded around the
 * command, so its duration is measured on the device.
 *
 * No device (no driver, an old driver, no GPU) is not an error: enumeration
 * finds none and says why in its note, e.g. "CUDA support compiled in; no
 * CUDA device found (driver version is insufficient)
 * [cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA
 * runtime version]".
 *
 * Every runtime call's result is checked and converted where it happens
 * (tsr_dev_cuda_fail); see cuda_internal.h.
 */
#ifdef TSR_HAVE_CUDA

#include <stdio.h>
#include <string.h>

#include "device/cuda_internal.h"
#include "device/cuda_kernels.h"
#include "device/filter.h"
#include "device/hashagg.h"
#include "device/hashjoin.h"
#include "device/partition.h"

#ifndef TSR_CUDA_ARCHS
#define TSR_CUDA_ARCHS "?" /* CMAKE_CUDA_ARCHITECTURES, set by the build */
#endif

extern const tsr_dev_hashagg_ops_t tsr_dev_hashagg_cuda_ops;

tsr_status_t tsr_dev_cuda_fail(tsr_error_t *err, const tsr_dev_t *dev, cudaError_t code,
                               const char *what)
{
    cudaGetLastError(); /* clear it: it must not resurface in a later launch check */
    tsr_status_t st = code == cudaErrorMemoryAllocation ? TSR_ERR_NOMEM : TSR_ERR_DEVICE;
    return tsr_error_set(err, st, "CUDA %s failed on %s: %s: %s", what, dev ? dev->info.name : "?",
                         cudaGetErrorName(code), cudaGetErrorString(code));
}

tsr_status_t tsr_dev_cuda_use(tsr_dev_t *dev, tsr_error_t *err)
{
    cudaError_t e = cudaSetDevice(tsr_dev_cuda(dev)->ordinal);
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, dev, e, "cudaSetDevice");
}

tsr_status_t tsr_dev_cuda_kernels_ok(tsr_dev_t *dev, tsr_error_t *err)
{
    tsr_cuda_dev_t *cu = tsr_dev_cuda(dev);
    if (cu->kernels == cudaSuccess)
        return TSR_OK;
    tsr_error_set(err, TSR_ERR_UNSUPPORTED,
                  "this build's CUDA kernels (architectures %s) cannot run on %s (compute "
                  "capability %d.%d): %s",
                  TSR_CUDA_ARCHS, dev->info.name, cu->cc_major, cu->cc_minor,
                  cudaGetErrorString(cu->kernels));
    tsr_error_hint(err, "rebuild with -DCMAKE_CUDA_ARCHITECTURES=%d%d", cu->cc_major, cu->cc_minor);
    return TSR_ERR_UNSUPPORTED;
}

/* ---- enumeration ---------------------------------------------------------------------- */

/* Why there is no device, for `tessera devices`: a short reason in words,
 * then the runtime's own error name and text, e.g. "CUDA support compiled
 * in; no CUDA device found (driver version is insufficient)
 * [cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA
 * runtime version]" where no NVIDIA driver is loaded. */
static void cu_no_device_note(cudaError_t e, char *note, size_t size)
{
    if (!size)
        return;
    if (e == cudaSuccess) {
        snprintf(note, size, "CUDA support compiled in; no CUDA device found");
        return;
    }
    const char *why = e == cudaErrorInsufficientDriver ? "driver version is insufficient"
                      : e == cudaErrorNoDevice         ? "no CUDA-capable device is detected"
                                                       : "cudaGetDeviceCount failed";
    snprintf(note, size, "CUDA support compiled in; no CUDA device found (%s) [%s: %s]", why,
             cudaGetErrorName(e), cudaGetErrorString(e));
}

static void cu_describe(const struct cudaDeviceProp *p, int ordinal, int driver, int runtime,
                        tsr_device_info_t *info)
{
    memset(info, 0, sizeof(*info));
    info->backend = TSR_DEVICE_CUDA;
    info->index = (unsigned)ordinal;
    size_t len = strnlen(p->name, sizeof(info->name) - 1); /* names longer than ours: cut */
    memcpy(info->name, p->name, len);
    info->name[len] = '\0';
    snprintf(info->vendor, sizeof(info->vendor), "NVIDIA");
    snprintf(info->version, sizeof(info->version),
             "compute capability %d.%d, driver %d.%d, runtime %d.%d", p->major, p->minor,
             driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
    info->global_mem_bytes = p->totalGlobalMem;
    info->compute_units = (unsigned)p->multiProcessorCount;
    info->is_gpu = 1;
}

static tsr_status_t cu_enumerate(tsr_mem_t *mem, tsr_device_info_t **out, size_t *n, char *note,
                                 size_t note_size)
{
    *out = NULL;
    *n = 0;
    if (note_size)
        note[0] = '\0';
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        cudaGetLastError();
        cu_no_device_note(e, note, note_size);
        return TSR_OK;
    }
    tsr_device_info_t *infos = tsr_mem_calloc(mem, (size_t)count, sizeof(*infos));
    if (!infos)
        return TSR_ERR_NOMEM;
    int driver = 0, runtime = 0;
    if (cudaDriverGetVersion(&driver) != cudaSuccess ||
        cudaRuntimeGetVersion(&runtime) != cudaSuccess)
        cudaGetLastError(); /* versions are only shown */
    size_t found = 0;
    for (int d = 0; d < count; d++) {
        struct cudaDeviceProp p;
        e = cudaGetDeviceProperties(&p, d);
        if (e != cudaSuccess) { /* e.g. a device taken exclusively: list the others */
            cudaGetLastError();
            if (note_size && !note[0])
                snprintf(note, note_size, "CUDA device %d skipped: %s", d, cudaGetErrorString(e));
            continue;
        }
        cu_describe(&p, d, driver, runtime, &infos[found++]);
    }
    if (!found) {
        tsr_mem_free(mem, infos);
        infos = NULL;
    }
    *out = infos;
    *n = found;
    return TSR_OK;
}

/* ---- devices ---------------------------------------------------------------------- */

static tsr_status_t cu_open(tsr_dev_t *dev, tsr_error_t *err)
{
    int ord = (int)dev->info.index;
    struct cudaDeviceProp p;
    cudaError_t e = cudaSetDevice(ord);
    if (e == cudaSuccess)
        e = cudaGetDeviceProperties(&p, ord);
    if (e != cudaSuccess) {
        tsr_status_t rc = tsr_dev_cuda_fail(err, dev, e, "cudaGetDeviceProperties");
        tsr_error_hint(err, "run 'tessera devices' to list the devices");
        return rc;
    }
    if (strncmp(p.name, dev->info.name, sizeof(dev->info.name) - 1) != 0)
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "CUDA device %d (%s) is no longer present",
                             ord, dev->info.name);
    if ((e = cudaFree(NULL)) != cudaSuccess) /* creates the primary context now */
        return tsr_dev_cuda_fail(err, dev, e, "context creation (cudaFree(NULL))");
    tsr_cuda_dev_t *cu = tsr_mem_calloc(dev->mem, 1, sizeof(*cu));
    if (!cu)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    cu->ordinal = ord;
    cu->sm_count = p.multiProcessorCount > 0 ? (unsigned)p.multiProcessorCount : 1;
    cu->max_block = p.maxThreadsPerBlock > 0 ? (unsigned)p.maxThreadsPerBlock : 32;
    cu->max_threads_per_sm =
        p.maxThreadsPerMultiProcessor > 0 ? (unsigned)p.maxThreadsPerMultiProcessor : cu->max_block;
    cu->shared_optin = p.sharedMemPerBlockOptin;
    cu->total_mem = p.totalGlobalMem;
    cu->cc_major = p.major;
    cu->cc_minor = p.minor;
    cu->kernels = tsr_cuda_kernels_check();
    if (cu->kernels != cudaSuccess)
        cudaGetLastError(); /* reported when a kernel family is used */
    dev->impl = cu;
    tsr_dev_cuda_stage_defaults(dev);
    return TSR_OK;
}

static void cu_close(tsr_dev_t *dev)
{
    if (cudaSetDevice(tsr_dev_cuda(dev)->ordinal) != cudaSuccess)
        cudaGetLastError();
    tsr_dev_cuda_stage_free(dev);
    /* the primary context stays: other users in this process may share it */
    tsr_mem_free(dev->mem, dev->impl);
    dev->impl = NULL;
}

/* ---- memory ------------------------------------------------------------------------- */

static tsr_status_t cu_buf_alloc(tsr_dev_t *dev, size_t size, void **handle, tsr_error_t *err)
{
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof(what), "cudaMalloc(%zu bytes)", size);
        return tsr_dev_cuda_fail(err, dev, e, what);
    }
    *handle = p;
    return TSR_OK;
}

/* Destructors return void: failures are dropped (and cleared), but every
 * release is attempted whatever failed before it. */
static void cu_release(cudaError_t e)
{
    if (e != cudaSuccess)
        cudaGetLastError();
}

static void cu_buf_free(tsr_dev_t *dev, void *handle)
{
    cu_release(cudaSetDevice(tsr_dev_cuda(dev)->ordinal));
    cu_release(cudaFree(handle));
}

static tsr_status_t cu_host_alloc(tsr_dev_t *dev, size_t size, void **ptr, void **handle,
                                  tsr_error_t *err)
{
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, size, cudaHostAllocPortable);
    if (e != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof(what), "cudaHostAlloc(%zu bytes)", size);
        return tsr_dev_cuda_fail(err, dev, e, what);
    }
    *ptr = p; /* page-aligned */
    *handle = NULL;
    return TSR_OK;
}

static void cu_host_free(tsr_dev_t *dev, void *ptr, void *handle)
{
    cu_release(cudaFreeHost(ptr));
}

/* ---- queues ------------------------------------------------------------------------- */

static tsr_status_t cu_queue_create(tsr_dev_t *dev, void **handle, tsr_error_t *err)
{
    tsr_status_t rc = tsr_dev_cuda_use(dev, err);
    if (rc != TSR_OK)
        return rc;
    cudaStream_t s = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    if (e != cudaSuccess)
        return tsr_dev_cuda_fail(err, dev, e, "cudaStreamCreateWithFlags");
    *handle = s;
    return TSR_OK;
}

static void cu_queue_destroy(tsr_dev_t *dev, void *handle)
{
    cudaStream_t s = handle;
    cu_release(cudaSetDevice(tsr_dev_cuda(dev)->ordinal));
    cu_release(cudaStreamSynchronize(s));
    cu_release(cudaStreamDestroy(s));
}

static tsr_status_t cu_queue_finish(tsr_dev_queue_t *q, tsr_error_t *err)
{
    cudaError_t e = cudaStreamSynchronize(tsr_dev_cuda_stream(q));
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, q->dev, e, "cudaStreamSynchronize");
}

/* ---- events --------------------------------------------------------------------------- */

/* The backend's part of an event: CUDA events recorded before and after. */
typedef struct cu_event {
    cudaEvent_t start;
    cudaEvent_t end;
} cu_event_t;

static void cu_event_free(tsr_dev_event_t *ev)
{
    cu_event_t *ce = ev->handle;
    if (!ce)
        return;
    if (ce->start)
        cu_release(cudaEventDestroy(ce->start));
    if (ce->end)
        cu_release(cudaEventDestroy(ce->end));
    tsr_mem_free(ev->dev->mem, ce);
    ev->handle = NULL;
}

/* Records the start of a command on q when an event is wanted. */
static tsr_status_t cu_event_begin(tsr_dev_queue_t *q, tsr_dev_event_t *ev, tsr_error_t *err)
{
    if (!ev)
        return TSR_OK;
    cu_event_t *ce = tsr_mem_calloc(q->dev->mem, 1, sizeof(*ce));
    if (!ce)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    ev->handle = ce;
    cudaError_t e = cudaEventCreate(&ce->start);
    if (e == cudaSuccess)
        e = cudaEventCreate(&ce->end);
    if (e == cudaSuccess)
        e = cudaEventRecord(ce->start, tsr_dev_cuda_stream(q));
    if (e != cudaSuccess) {
        tsr_status_t rc = tsr_dev_cuda_fail(err, q->dev, e, "cudaEventRecord");
        cu_event_free(ev);
        return rc;
    }
    ev->start_ns = tsr_dev_now_ns();
    return TSR_OK;
}

/* Records the end of the command; on rc != TSR_OK (the command failed) frees
 * the event's CUDA part, since the wrapper then frees only its own. */
static tsr_status_t cu_event_end(tsr_dev_queue_t *q, tsr_dev_event_t *ev, tsr_status_t rc,
                                 tsr_error_t *err)
{
    if (!ev)
        return rc;
    if (rc == TSR_OK) {
        cudaError_t e = cudaEventRecord(((cu_event_t *)ev->handle)->end, tsr_dev_cuda_stream(q));
        if (e != cudaSuccess)
            rc = tsr_dev_cuda_fail(err, q->dev, e, "cudaEventRecord");
    }
    if (rc != TSR_OK)
        cu_event_free(ev);
    return rc;
}

static tsr_status_t cu_event_wait(tsr_dev_event_t *ev, tsr_error_t *err)
{
    cudaError_t e = cudaEventSynchronize(((cu_event_t *)ev->handle)->end);
    return e == cudaSuccess ? TSR_OK : tsr_dev_cuda_fail(err, ev->dev, e, "cudaEventSynchronize");
}

/* CUDA events give durations, not timestamps: the start is the host clock at
 * submission, the end that plus the duration measured on the device. */
static tsr_status_t cu_event_times(tsr_dev_event_t *ev, uint64_t *start_ns, uint64_t *end_ns,
                                   tsr_error_t *err)
{
    tsr_status_t rc = cu_event_wait(ev, err);
    if (rc != TSR_OK)
        return rc;
    cu_event_t *ce = ev->handle;
    float ms = 0;
    cudaError_t e = cudaEventElapsedTime(&ms, ce->start, ce->end);
    if (e != cudaSuccess)
        return tsr_dev_cuda_fail(err, ev->dev, e, "cudaEventElapsedTime");
    *start_ns = ev->start_ns;
    *end_ns = ev->start_ns + (uint64_t)((double)(ms > 0 ? ms : 0) * 1e6);
    return TSR_OK;
}

static void cu_event_release(tsr_dev_event_t *ev)
{
    cu_event_free(ev);
}

/* ---- transfers --------------------------------------------------------------------------- */

/* Host copies of at least this many bytes go through the pinned staging
 * buffers (cuda_stage.c); smaller ones cost the same either way. Staged
 * copies complete on the host side before they return (a non-blocking read
 * into pinned memory of the caller's would lose its asynchrony, and a
 * non-blocking write returns once the source is staged). */
#define CU_STAGE_MIN 4096

static tsr_status_t cu_copy(tsr_dev_queue_t *q, void *dst, const void *src, size_t size,
                            enum cudaMemcpyKind kind, bool blocking, tsr_dev_event_t *ev,
                            const char *what, tsr_error_t *err)
{
    cudaStream_t s = tsr_dev_cuda_stream(q);
    tsr_status_t rc = tsr_dev_cuda_use(q->dev, err);
    if (rc == TSR_OK)
        rc = cu_event_begin(q, ev, err);
    if (rc != TSR_OK)
        return rc;
    cudaError_t e = cudaSuccess;
    if (size >= CU_STAGE_MIN && kind == cudaMemcpyHostToDevice) /* through pinned buffers */
        rc = tsr_dev_cuda_upload(q->dev, s, dst, src, size, what, err);
    else if (size >= CU_STAGE_MIN && kind == cudaMemcpyDeviceToHost)
        rc = tsr_dev_cuda_download(q->dev, s, dst, src, size, what, err);
    else if ((e = cudaMemcpyAsync(dst, src, size, kind, s)) != cudaSuccess)
        rc = tsr_dev_cuda_fail(err, q->dev, e, what);
    rc = cu_event_end(q, ev, rc, err);
    if (rc == TSR_OK && blocking && (e = cudaStreamSynchronize(s)) != cudaSuccess)
        rc = tsr_dev_cuda_fail(err, q->dev, e, "cudaStreamSynchronize");
    return rc;
}

static tsr_status_t cu_write(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *src,
                             size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err)
{
    return cu_copy(q, (char *)tsr_dev_cuda_ptr(dst) + offset, src, size, cudaMemcpyHostToDevice,
                   blocking, ev, "cudaMemcpyAsync(host to device)", err);
}

static tsr_status_t cu_read(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                            size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err)
{
    return cu_copy(q, dst, (const char *)tsr_dev_cuda_ptr(src) + offset, size,
                   cudaMemcpyDeviceToHost, blocking, ev, "cudaMemcpyAsync(device to host)", err);
}

tsr_status_t tsr_dev_cuda_copy(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t dst_off,
                               const tsr_dev_buf_t *src, size_t src_off, size_t size,
                               tsr_error_t *err)
{
    if (!q || !dst || !src || dst->dev != q->dev || src->dev != q->dev ||
        q->dev->backend->id != TSR_DEVICE_CUDA)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "CUDA copy: objects of different devices");
    if (dst_off > dst->size || size > dst->size - dst_off || src_off > src->size ||
        size > src->size - src_off)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "CUDA copy: %zu bytes outside a buffer",
                             size);
    if (size == 0)
        return TSR_OK;
    return cu_copy(q, (char *)tsr_dev_cuda_ptr(dst) + dst_off,
                   (const char *)tsr_dev_cuda_ptr(src) + src_off, size, cudaMemcpyDeviceToDevice,
                   false, NULL, "cudaMemcpyAsync(device to device)", err);
}

static tsr_status_t cu_fill(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                            const void *pattern, size_t pattern_size, size_t size,
                            tsr_dev_event_t *ev, tsr_error_t *err)
{
    const unsigned char *pb = pattern;
    bool bytewise = true; /* every byte of the pattern alike: a memset */
    for (size_t i = 1; i < pattern_size && bytewise; i++)
        bytewise = pb[i] == pb[0];
    tsr_status_t rc = tsr_dev_cuda_use(q->dev, err);
    if (rc == TSR_OK && !bytewise)
        rc = tsr_dev_cuda_kernels_ok(q->dev, err);
    if (rc == TSR_OK)
        rc = cu_event_begin(q, ev, err);
    if (rc != TSR_OK)
        return rc;
    char *p = (char *)tsr_dev_cuda_ptr(dst) + offset;
    cudaStream_t s = tsr_dev_cuda_stream(q);
    /* the fill kernel copies the pattern into its parameters at launch */
    cudaError_t e = bytewise ? cudaMemsetAsync(p, pb[0], size, s)
                             : tsr_cuda_fill(p, size, pattern, pattern_size, s);
    if (e != cudaSuccess)
        rc = tsr_dev_cuda_fail(err, q->dev, e, bytewise ? "cudaMemsetAsync" : "fill kernel launch");
    return cu_event_end(q, ev, rc, err);
}

const tsr_dev_backend_t tsr_dev_cuda_backend = {
    .id = TSR_DEVICE_CUDA,
    .name = "cuda",
    .enumerate = cu_enumerate,
    .open = cu_open,
    .close = cu_close,
    .buf_alloc = cu_buf_alloc,
    .buf_free = cu_buf_free,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .queue_create = cu_queue_create,
    .queue_destroy = cu_queue_destroy,
    .queue_finish = cu_queue_finish,
    .write = cu_write,
    .read = cu_read,
    .fill = cu_fill,
    .event_wait = cu_event_wait,
    .event_times = cu_event_times,
    .event_release = cu_event_release,
    .hashagg = &tsr_dev_hashagg_cuda_ops,
    .hashjoin = &tsr_dev_hashjoin_cuda_ops,
    .filter = &tsr_dev_filter_cuda_ops,
    .partition = &tsr_dev_partition_cuda_ops,
};

#else
typedef int tsr_dev_cuda_not_built; /* TSR_HAVE_CUDA undefined: nothing to build */
#endif /* TSR_HAVE_CUDA */
