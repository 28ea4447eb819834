/*
 * cudart_emu.c (test emulator) - the CUDA runtime subset of
 * tests/cudaemu/cuda_runtime_api.h on the host, and the kernel runner of
 * emu.h. One emulated device (TSR_EMU_* limits: small, so the backend's
 * batching, growth and occupancy code paths are exercised by small tests).
 *
 * Semantics kept from CUDA, because the backend relies on them:
 *  - streams are asynchronous and in order: each stream is a worker thread
 *    executing its queue; events complete when their stream reaches them;
 *    cudaStreamWaitEvent waits for the event's state at the time of the call;
 *  - cudaMemcpyAsync from pageable host memory copies the source into staging
 *    before it returns; into pageable host memory it returns only when done;
 *    with pinned memory (cudaHostAlloc) both are fully asynchronous;
 *  - cudaFree / cudaFreeHost / cudaEventDestroy wait for the device first;
 *  - kernel launches copy their arguments; bad configurations fail at launch;
 *  - device memory comes back uninitialised (poisoned here), copies and
 *    fills outside an allocation fail with cudaErrorInvalidValue, and the
 *    device has a fixed capacity (cudaErrorMemoryAllocation beyond it).
 * And for tests: injected failures of any fallible call, an absent device,
 * random delays in the stream workers, a count of default-stream uses.
 *
 * All state is behind one mutex and one condition variable (broadcast on
 * every completion), which is simple and plenty fast for tests. Kernels run
 * on runner_emu.c's block runners.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "emu.h"

static _Thread_local cudaError_t emu_last_error;

/* ---- errors ------------------------------------------------------------------------- */

static const struct {
    cudaError_t code;
    const char *name;
    const char *text;
} EMU_ERRORS[] = {
    {cudaSuccess, "cudaSuccess", "no error"},
    {cudaErrorInvalidValue, "cudaErrorInvalidValue", "invalid argument"},
    {cudaErrorMemoryAllocation, "cudaErrorMemoryAllocation", "out of memory"},
    {cudaErrorInitializationError, "cudaErrorInitializationError", "initialization error"},
    {cudaErrorInvalidConfiguration, "cudaErrorInvalidConfiguration",
     "invalid configuration argument"},
    {cudaErrorInvalidDevicePointer, "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {cudaErrorInsufficientDriver, "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {cudaErrorInvalidDeviceFunction, "cudaErrorInvalidDeviceFunction", "invalid device function"},
    {cudaErrorNoDevice, "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {cudaErrorInvalidDevice, "cudaErrorInvalidDevice", "invalid device ordinal"},
    {cudaErrorNoKernelImageForDevice, "cudaErrorNoKernelImageForDevice",
     "no kernel image is available for execution on the device"},
    {cudaErrorInvalidResourceHandle, "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {cudaErrorNotReady, "cudaErrorNotReady", "device not ready"},
    {cudaErrorIllegalAddress, "cudaErrorIllegalAddress",
     "an illegal memory access was encountered"},
    {cudaErrorLaunchFailure, "cudaErrorLaunchFailure", "unspecified launch failure"},
    {cudaErrorUnknown, "cudaErrorUnknown", "unknown error"},
};

const char *cudaGetErrorName(cudaError_t error)
{
    for (size_t i = 0; i < sizeof(EMU_ERRORS) / sizeof(EMU_ERRORS[0]); i++)
        if (EMU_ERRORS[i].code == error)
            return EMU_ERRORS[i].name;
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t error)
{
    for (size_t i = 0; i < sizeof(EMU_ERRORS) / sizeof(EMU_ERRORS[0]); i++)
        if (EMU_ERRORS[i].code == error)
            return EMU_ERRORS[i].text;
    return "unrecognized error code";
}

static cudaError_t emu_ret(cudaError_t e)
{
    if (e != cudaSuccess)
        emu_last_error = e;
    return e;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = emu_last_error;
    emu_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return emu_last_error;
}

/* ---- shared state ------------------------------------------------------------------- */

typedef struct emu_alloc {
    char *ptr;
    size_t size;
    bool pinned;
} emu_alloc_t;

typedef enum emu_op_kind { OP_COPY, OP_SET, OP_KERNEL, OP_RECORD, OP_WAIT } emu_op_kind_t;

typedef struct emu_op {
    struct emu_op *next;
    emu_op_kind_t kind;
    void *dst;
    const void *src;
    size_t size;
    void *owned; /* freed after the op: staging copy, kernel arguments */
    int value;
    tsr_emu_kernel_fn fn;
    unsigned grid, block;
    size_t shmem;
    struct tsr_emu_event *ev;
    uint64_t epoch;
} emu_op_t;

struct tsr_emu_stream {
    pthread_t thread;
    emu_op_t *head, *tail;
    uint64_t queued, done; /* ops queued and completed so far */
    bool quit;
    struct tsr_emu_stream *next; /* all streams, for device-wide waits */
};

struct tsr_emu_event {
    uint64_t recorded;  /* records issued */
    uint64_t completed; /* the latest record reached by its stream */
    uint64_t t_ns;      /* when it was reached */
    bool timing;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    emu_alloc_t *allocs;
    size_t nallocs, cap;
    size_t dev_bytes;
    long fail_countdown;
    cudaError_t fail_code;
    long injected;
    cudaError_t no_device;
    int jitter;
    long null_uses;
    struct tsr_emu_stream *streams;
} E = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
    .fail_countdown = -1,
};

static uint64_t emu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One injected failure, when armed (see tsr_emu_fail_after). */
static cudaError_t emu_inject(void)
{
    cudaError_t r = cudaSuccess;
    pthread_mutex_lock(&E.mu);
    if (E.fail_countdown == 0) {
        r = E.fail_code;
        E.fail_countdown = -1;
        E.injected++;
    } else if (E.fail_countdown > 0) {
        E.fail_countdown--;
    }
    pthread_mutex_unlock(&E.mu);
    return r;
}

void tsr_emu_fail_after(long n, cudaError_t code)
{
    pthread_mutex_lock(&E.mu);
    E.fail_countdown = n < 0 ? -1 : n;
    E.fail_code = code;
    pthread_mutex_unlock(&E.mu);
}

long tsr_emu_injected(void)
{
    pthread_mutex_lock(&E.mu);
    long n = E.injected;
    pthread_mutex_unlock(&E.mu);
    return n;
}

void tsr_emu_set_no_device(cudaError_t code)
{
    pthread_mutex_lock(&E.mu);
    E.no_device = code;
    pthread_mutex_unlock(&E.mu);
}

void tsr_emu_set_jitter(int on)
{
    pthread_mutex_lock(&E.mu);
    E.jitter = on;
    pthread_mutex_unlock(&E.mu);
}

long tsr_emu_null_stream_uses(void)
{
    pthread_mutex_lock(&E.mu);
    long n = E.null_uses;
    pthread_mutex_unlock(&E.mu);
    return n;
}

size_t tsr_emu_device_bytes(void)
{
    pthread_mutex_lock(&E.mu);
    size_t n = E.dev_bytes;
    pthread_mutex_unlock(&E.mu);
    return n;
}

/* The allocation holding p, or NULL (pageable host memory). Locked. */
static emu_alloc_t *emu_find_locked(const void *p)
{
    const char *c = p;
    for (size_t i = 0; i < E.nallocs; i++)
        if (c >= E.allocs[i].ptr && c < E.allocs[i].ptr + E.allocs[i].size)
            return &E.allocs[i];
    return NULL;
}

/* 0 pageable host, 1 pinned host, 2 device; -1 when [p, p+n) overruns its
 * allocation. */
static int emu_classify(const void *p, size_t n)
{
    pthread_mutex_lock(&E.mu);
    emu_alloc_t *a = emu_find_locked(p);
    int r = 0;
    if (a) {
        r = a->pinned ? 1 : 2;
        if ((const char *)p + n > a->ptr + a->size)
            r = -1;
    }
    pthread_mutex_unlock(&E.mu);
    return r;
}

/* ---- streams ------------------------------------------------------------------------- */

static void emu_execute(const emu_op_t *op)
{
    switch (op->kind) {
    case OP_COPY:
        memmove(op->dst, op->owned ? op->owned : op->src, op->size);
        break;
    case OP_SET:
        memset(op->dst, op->value, op->size);
        break;
    case OP_KERNEL:
        tsr_emu_run_grid(op->grid, op->block, op->shmem, op->fn, op->owned);
        break;
    default:
        break;
    }
}

static void emu_op_free(emu_op_t *op)
{
    free(op->owned);
    free(op);
}

static void *emu_worker(void *arg)
{
    struct tsr_emu_stream *s = arg;
    unsigned seed = (unsigned)(uintptr_t)s;
    pthread_mutex_lock(&E.mu);
    for (;;) {
        while (!s->head && !s->quit)
            pthread_cond_wait(&E.cv, &E.mu);
        if (!s->head)
            break;
        emu_op_t *op = s->head;
        if (op->kind == OP_WAIT)
            while (op->ev->completed < op->epoch)
                pthread_cond_wait(&E.cv, &E.mu);
        int jitter = E.jitter;
        pthread_mutex_unlock(&E.mu);
        if (jitter && rand_r(&seed) % 3 == 0)
            usleep((useconds_t)(rand_r(&seed) % 300));
        emu_execute(op);
        pthread_mutex_lock(&E.mu);
        if (op->kind == OP_RECORD) {
            if (op->ev->completed < op->epoch)
                op->ev->completed = op->epoch;
            op->ev->t_ns = emu_now_ns();
        }
        s->head = op->next;
        if (!s->head)
            s->tail = NULL;
        s->done++;
        pthread_cond_broadcast(&E.cv);
        pthread_mutex_unlock(&E.mu);
        emu_op_free(op);
        pthread_mutex_lock(&E.mu);
    }
    pthread_mutex_unlock(&E.mu);
    return NULL;
}

/* Waits (locked) until every stream has drained. */
static void emu_drain_locked(void)
{
    for (;;) {
        bool busy = false;
        for (struct tsr_emu_stream *s = E.streams; s; s = s->next)
            busy |= s->done < s->queued;
        if (!busy)
            return;
        pthread_cond_wait(&E.cv, &E.mu);
    }
}

/* Queues op on s and returns its sequence number; on the default stream
 * (s == NULL) executes it at once after the device has drained. */
static uint64_t emu_enqueue(cudaStream_t s, emu_op_t *op)
{
    pthread_mutex_lock(&E.mu);
    if (!s) {
        E.null_uses++;
        emu_drain_locked();
        pthread_mutex_unlock(&E.mu);
        emu_execute(op);
        pthread_mutex_lock(&E.mu);
        if (op->kind == OP_RECORD) {
            if (op->ev->completed < op->epoch)
                op->ev->completed = op->epoch;
            op->ev->t_ns = emu_now_ns();
            pthread_cond_broadcast(&E.cv);
        }
        pthread_mutex_unlock(&E.mu);
        emu_op_free(op);
        return 0;
    }
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    uint64_t seq = ++s->queued;
    pthread_cond_broadcast(&E.cv);
    pthread_mutex_unlock(&E.mu);
    return seq;
}

static void emu_wait_seq(cudaStream_t s, uint64_t seq)
{
    if (!s)
        return;
    pthread_mutex_lock(&E.mu);
    while (s->done < seq)
        pthread_cond_wait(&E.cv, &E.mu);
    pthread_mutex_unlock(&E.mu);
}

static emu_op_t *emu_op_new(emu_op_kind_t kind)
{
    emu_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        fprintf(stderr, "cudaemu: out of memory\n");
        abort();
    }
    op->kind = kind;
    return op;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    struct tsr_emu_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return emu_ret(cudaErrorMemoryAllocation);
    if (pthread_create(&s->thread, NULL, emu_worker, s) != 0) {
        free(s);
        return emu_ret(cudaErrorUnknown);
    }
    pthread_mutex_lock(&E.mu);
    s->next = E.streams;
    E.streams = s;
    pthread_mutex_unlock(&E.mu);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    if (!s)
        return emu_ret(cudaErrorInvalidResourceHandle);
    pthread_mutex_lock(&E.mu);
    s->quit = true;
    pthread_cond_broadcast(&E.cv);
    pthread_mutex_unlock(&E.mu);
    pthread_join(s->thread, NULL); /* the worker drains its queue first */
    pthread_mutex_lock(&E.mu);
    for (struct tsr_emu_stream **p = &E.streams; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    pthread_mutex_unlock(&E.mu);
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    cudaError_t e = emu_inject();
    if (!s) {
        cudaDeviceSynchronize();
        return emu_ret(e);
    }
    pthread_mutex_lock(&E.mu);
    while (s->done < s->queued)
        pthread_cond_wait(&E.cv, &E.mu);
    pthread_mutex_unlock(&E.mu);
    return emu_ret(e);
}

cudaError_t cudaDeviceSynchronize(void)
{
    pthread_mutex_lock(&E.mu);
    emu_drain_locked();
    pthread_mutex_unlock(&E.mu);
    return cudaSuccess;
}

/* ---- events -------------------------------------------------------------------------- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    struct tsr_emu_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return emu_ret(cudaErrorMemoryAllocation);
    ev->timing = !(flags & cudaEventDisableTiming);
    *event = ev;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t s)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (!ev)
        return emu_ret(cudaErrorInvalidResourceHandle);
    emu_op_t *op = emu_op_new(OP_RECORD);
    pthread_mutex_lock(&E.mu);
    op->ev = ev;
    op->epoch = ++ev->recorded;
    pthread_mutex_unlock(&E.mu);
    emu_enqueue(s, op);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t ev, unsigned int flags)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (!ev)
        return emu_ret(cudaErrorInvalidResourceHandle);
    pthread_mutex_lock(&E.mu);
    uint64_t epoch = ev->recorded; /* the event's state now, as CUDA captures it */
    pthread_mutex_unlock(&E.mu);
    if (epoch == 0)
        return cudaSuccess; /* never recorded: nothing to wait for */
    emu_op_t *op = emu_op_new(OP_WAIT);
    op->ev = ev;
    op->epoch = epoch;
    if (!s) {
        pthread_mutex_lock(&E.mu);
        while (ev->completed < epoch)
            pthread_cond_wait(&E.cv, &E.mu);
        pthread_mutex_unlock(&E.mu);
    }
    emu_enqueue(s, op);
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t ev)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (!ev)
        return emu_ret(cudaErrorInvalidResourceHandle);
    pthread_mutex_lock(&E.mu);
    while (ev->completed < ev->recorded)
        pthread_cond_wait(&E.cv, &E.mu);
    pthread_mutex_unlock(&E.mu);
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!start || !end || !start->timing || !end->timing)
        return emu_ret(cudaErrorInvalidResourceHandle);
    pthread_mutex_lock(&E.mu);
    cudaError_t e = cudaSuccess;
    if (start->recorded == 0 || end->recorded == 0)
        e = cudaErrorInvalidResourceHandle;
    else if (start->completed < start->recorded || end->completed < end->recorded)
        e = cudaErrorNotReady;
    else
        *ms = (float)((double)((int64_t)end->t_ns - (int64_t)start->t_ns) / 1e6);
    pthread_mutex_unlock(&E.mu);
    return emu_ret(e);
}

cudaError_t cudaEventDestroy(cudaEvent_t ev)
{
    if (!ev)
        return emu_ret(cudaErrorInvalidResourceHandle);
    pthread_mutex_lock(&E.mu);
    emu_drain_locked(); /* queued waits may still refer to it */
    pthread_mutex_unlock(&E.mu);
    free(ev);
    return cudaSuccess;
}

/* ---- memory and transfers ------------------------------------------------------------- */

static cudaError_t emu_register(void *p, size_t size, bool pinned)
{
    pthread_mutex_lock(&E.mu);
    if (E.nallocs == E.cap) {
        size_t cap = E.cap ? 2 * E.cap : 64;
        emu_alloc_t *a = realloc(E.allocs, cap * sizeof(*a));
        if (!a) {
            pthread_mutex_unlock(&E.mu);
            return cudaErrorMemoryAllocation;
        }
        E.allocs = a;
        E.cap = cap;
    }
    E.allocs[E.nallocs++] = (emu_alloc_t){p, size, pinned};
    if (!pinned)
        E.dev_bytes += size;
    pthread_mutex_unlock(&E.mu);
    return cudaSuccess;
}

/* Drains the device, then unregisters p (exactly an allocation's start). */
static cudaError_t emu_unregister(void *p, bool pinned)
{
    pthread_mutex_lock(&E.mu);
    emu_drain_locked();
    for (size_t i = 0; i < E.nallocs; i++) {
        if (E.allocs[i].ptr == p && E.allocs[i].pinned == pinned) {
            if (!pinned)
                E.dev_bytes -= E.allocs[i].size;
            E.allocs[i] = E.allocs[--E.nallocs];
            if (E.nallocs == 0) {
                free(E.allocs);
                E.allocs = NULL;
                E.cap = 0;
            }
            pthread_mutex_unlock(&E.mu);
            return cudaSuccess;
        }
    }
    pthread_mutex_unlock(&E.mu);
    return pinned ? cudaErrorInvalidValue : cudaErrorInvalidDevicePointer;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    size_t rounded = (size + 255) / 256 * 256;
    if (rounded == 0)
        rounded = 256;
    pthread_mutex_lock(&E.mu);
    bool fits = E.dev_bytes + rounded <= TSR_EMU_MEMORY;
    pthread_mutex_unlock(&E.mu);
    void *p = fits ? aligned_alloc(256, rounded) : NULL;
    if (!p)
        return emu_ret(cudaErrorMemoryAllocation);
    memset(p, 0xCD, rounded); /* uninitialised, visibly */
    if ((e = emu_register(p, rounded, false)) != cudaSuccess) {
        free(p);
        return emu_ret(e);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr)
        return cudaSuccess; /* the idiom that initialises a context */
    cudaError_t e = emu_unregister(ptr, false);
    if (e == cudaSuccess)
        free(ptr);
    return emu_ret(e);
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    size_t rounded = (size + 4095) / 4096 * 4096;
    void *p = aligned_alloc(4096, rounded ? rounded : 4096);
    if (!p)
        return emu_ret(cudaErrorMemoryAllocation);
    if ((e = emu_register(p, rounded ? rounded : 4096, true)) != cudaSuccess) {
        free(p);
        return emu_ret(e);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    cudaError_t e = emu_unregister(ptr, true);
    if (e == cudaSuccess)
        free(ptr);
    return emu_ret(e);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t s)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (count == 0)
        return cudaSuccess;
    if (!dst || !src)
        return emu_ret(cudaErrorInvalidValue);
    int cd = emu_classify(dst, count), cs = emu_classify(src, count);
    if (cd < 0 || cs < 0)
        return emu_ret(cudaErrorInvalidValue); /* overruns an allocation */
    bool dd = cd == 2, sd = cs == 2;
    if ((kind == cudaMemcpyHostToDevice && (!dd || sd)) ||
        (kind == cudaMemcpyDeviceToHost && (dd || !sd)) ||
        (kind == cudaMemcpyDeviceToDevice && (!dd || !sd)) || kind == cudaMemcpyHostToHost)
        return emu_ret(cudaErrorInvalidValue);
    emu_op_t *op = emu_op_new(OP_COPY);
    op->dst = dst;
    op->src = src;
    op->size = count;
    if (cs == 0) { /* pageable source: staged before the call returns */
        op->owned = malloc(count);
        if (!op->owned) {
            free(op);
            return emu_ret(cudaErrorMemoryAllocation);
        }
        memcpy(op->owned, src, count);
    }
    uint64_t seq = emu_enqueue(s, op);
    if (cd == 0) /* pageable destination: synchronous */
        emu_wait_seq(s, seq);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t s)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (count == 0)
        return cudaSuccess;
    if (!ptr || emu_classify(ptr, count) != 2)
        return emu_ret(cudaErrorInvalidValue);
    emu_op_t *op = emu_op_new(OP_SET);
    op->dst = ptr;
    op->value = value;
    op->size = count;
    emu_enqueue(s, op);
    return cudaSuccess;
}

cudaError_t tsr_emu_launch(cudaStream_t s, unsigned grid, unsigned block, size_t shmem,
                           tsr_emu_kernel_fn fn, const void *args, size_t args_size)
{
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    if (grid == 0 || block == 0 || block > TSR_EMU_MAX_BLOCK || block % 32 ||
        shmem > TSR_EMU_SHARED_PER_BLOCK)
        return emu_ret(cudaErrorInvalidConfiguration);
    emu_op_t *op = emu_op_new(OP_KERNEL);
    op->owned = malloc(args_size);
    if (!op->owned) {
        free(op);
        return emu_ret(cudaErrorMemoryAllocation);
    }
    memcpy(op->owned, args, args_size);
    op->fn = fn;
    op->grid = grid;
    op->block = block;
    op->shmem = shmem;
    emu_enqueue(s, op);
    return cudaSuccess;
}

/* ---- the device ------------------------------------------------------------------------ */

cudaError_t cudaGetDeviceCount(int *count)
{
    pthread_mutex_lock(&E.mu);
    cudaError_t e = E.no_device;
    pthread_mutex_unlock(&E.mu);
    *count = e == cudaSuccess ? 1 : 0;
    return emu_ret(e);
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (device != 0)
        return emu_ret(cudaErrorInvalidDevice);
    cudaError_t e = emu_inject();
    if (e != cudaSuccess)
        return emu_ret(e);
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "Tessera CUDA emulator");
    prop->totalGlobalMem = TSR_EMU_MEMORY;
    prop->maxThreadsPerBlock = TSR_EMU_MAX_BLOCK;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = TSR_EMU_SMS;
    prop->l2CacheSize = 1 << 20;
    prop->maxThreadsPerMultiProcessor = TSR_EMU_THREADS_PER_SM;
    prop->sharedMemPerBlockOptin = TSR_EMU_SHARED_PER_BLOCK;
    prop->sharedMemPerMultiprocessor = TSR_EMU_SHARED_PER_SM;
    prop->pciBusID = 0;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    if (device != 0)
        return emu_ret(cudaErrorInvalidDevice);
    return emu_ret(emu_inject());
}

cudaError_t cudaGetDevice(int *device)
{
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    *version = 13000;
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    pthread_mutex_lock(&E.mu);
    *free_bytes = TSR_EMU_MEMORY - E.dev_bytes;
    *total_bytes = TSR_EMU_MEMORY;
    pthread_mutex_unlock(&E.mu);
    return cudaSuccess;
}
