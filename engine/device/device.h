/*
 * device.h - the device layer: one interface, one backend per kind of device.
 *
 * A *backend* (cpu, opencl, cuda) is a table of function pointers with a name
 * (tsr_dev_backend_t), chosen at run time; the registry in device.c lists the
 * backends this build contains. Everything above this layer calls the tsr_dev_*
 * wrappers below, which check their arguments and dispatch to the backend, so a
 * new backend is one new file that fills the table (StarPU's driver model).
 *
 * Objects (all created through the wrappers, all owned by the caller):
 *
 *   tsr_dev_t         an opened device: its info, the backend's per-device
 *                     state (impl: OpenCL context and compiled programs, CUDA
 *                     context, ...) and its default queue
 *   tsr_dev_buf_t     device memory of a fixed size (handle: a host pointer for
 *                     cpu, a cl_mem for opencl, a device pointer for cuda)
 *   tsr_dev_host_t    pinned (page-locked) host memory for staging transfers
 *                     where the backend has it, plain host memory otherwise
 *   tsr_dev_queue_t   an in-order command queue (an OpenCL queue, a CUDA
 *                     stream); commands on one queue run in submission order
 *   tsr_dev_event_t   completion and timing of one command
 *
 * Kernel families (hash aggregation first, see hashagg.h) have one host-side
 * signature each and one implementation per backend; the backend table points
 * at its implementations (hashagg_cpu.c, hashagg_opencl.c, ...). A NULL entry
 * means the backend lacks that family: the wrapper answers TSR_ERR_UNSUPPORTED.
 *
 * Errors: every backend call converts its driver's error code to tsr_status_t
 * where it happens and records the driver's own text (error name, OpenCL build
 * log) in the tsr_error_t, together with the device's name. Allocation failures
 * on the device are TSR_ERR_NOMEM, every other driver failure TSR_ERR_DEVICE.
 *
 * Threads: a device and its objects are used by one thread at a time (the
 * worker that owns the device); two devices are independent.
 *
 * Asynchrony: writes, reads and fills are queued. A non-blocking write reads
 * the source memory until the command completes (wait for its event, or finish
 * the queue, before changing or freeing it); a non-blocking read fills its
 * destination only after completion. The cpu backend executes every command
 * at once, which is a valid schedule of the same program.
 */
#ifndef TSR_DEVICE_DEVICE_H
#define TSR_DEVICE_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/mem.h"
#include "tessera/device.h"

typedef struct tsr_dev tsr_dev_t;
typedef struct tsr_dev_backend tsr_dev_backend_t;
typedef struct tsr_dev_hashagg_ops tsr_dev_hashagg_ops_t;
typedef struct tsr_dev_hashjoin_ops tsr_dev_hashjoin_ops_t;
typedef struct tsr_dev_filter_ops tsr_dev_filter_ops_t;
typedef struct tsr_dev_partition_ops tsr_dev_partition_ops_t;

typedef struct tsr_dev_buf {
    tsr_dev_t *dev;
    size_t size;  /* bytes usable (the backend may have allocated a few more) */
    void *handle; /* backend's: host pointer / cl_mem / CUdeviceptr */
} tsr_dev_buf_t;

typedef struct tsr_dev_host {
    tsr_dev_t *dev;
    size_t size;
    void *ptr;    /* host address, 64-byte aligned */
    void *handle; /* backend's: the mapped cl_mem, NULL for plain memory */
} tsr_dev_host_t;

typedef struct tsr_dev_queue {
    tsr_dev_t *dev;
    void *handle; /* backend's: cl_command_queue / cudaStream_t / NULL */
} tsr_dev_queue_t;

typedef struct tsr_dev_event {
    tsr_dev_t *dev;
    void *handle;      /* backend's: cl_event / cudaEvent_t pair; NULL for cpu */
    uint64_t start_ns; /* set by backends that time commands on the host */
    uint64_t end_ns;
} tsr_dev_event_t;

/* What moved between host and device, cumulative since the device was
 * opened (a query's share is the difference around it). Bytes count every
 * tsr_dev_write / tsr_dev_read and the uploads kernel families queue
 * themselves; device-to-device copies are not transfers and are not counted.
 * The col_* fields are the executor's per-query column cache's
 * (exec/dev_columns.h), added up over its queries. */
typedef struct tsr_dev_stats {
    uint64_t bytes_h2d;     /* host -> device */
    uint64_t bytes_d2h;     /* device -> host */
    uint64_t col_uploads;   /* column chunks uploaded into a query's cache */
    uint64_t col_hits;      /* ... found there already resident */
    uint64_t col_evictions; /* ... dropped to make room */
    uint64_t col_fallbacks; /* chunks run with per-operator copies (did not fit) */
} tsr_dev_stats_t;

struct tsr_dev {
    const tsr_dev_backend_t *backend;
    tsr_mem_t *mem;         /* host allocations of the device layer */
    tsr_device_info_t info; /* what enumeration said about it */
    void *impl;             /* backend's per-device state */
    tsr_dev_queue_t *queue; /* default queue, created by tsr_dev_open */
    tsr_dev_stats_t stats;  /* transfers (one thread uses a device: plain counters) */
    size_t col_limit;       /* bytes a query's column cache may hold on this device;
                               0: a quarter of its memory (tests set it small) */
};

/* The backend table. Wrappers have checked arguments (buffer ranges, that
 * queue, buffers and events belong to one device, size > 0) before a call;
 * ev may be NULL (no event wanted); backends record errors with the device's
 * name in err. */
struct tsr_dev_backend {
    tsr_device_backend_t id;
    const char *name;

    /* Devices of this backend into *out (*n of them, tsr_mem_alloc'ed on mem;
     * *out may be NULL when *n is 0). Finding none is not an error: say why
     * in note. Fails only for TSR_ERR_NOMEM. */
    tsr_status_t (*enumerate)(tsr_mem_t *mem, tsr_device_info_t **out, size_t *n, char *note,
                              size_t note_size);
    /* dev->info and dev->mem are set; create dev->impl. */
    tsr_status_t (*open)(tsr_dev_t *dev, tsr_error_t *err);
    void (*close)(tsr_dev_t *dev);

    tsr_status_t (*buf_alloc)(tsr_dev_t *dev, size_t size, void **handle, tsr_error_t *err);
    void (*buf_free)(tsr_dev_t *dev, void *handle);
    tsr_status_t (*host_alloc)(tsr_dev_t *dev, size_t size, void **ptr, void **handle,
                               tsr_error_t *err);
    void (*host_free)(tsr_dev_t *dev, void *ptr, void *handle);

    tsr_status_t (*queue_create)(tsr_dev_t *dev, void **handle, tsr_error_t *err);
    void (*queue_destroy)(tsr_dev_t *dev, void *handle);
    tsr_status_t (*queue_finish)(tsr_dev_queue_t *q, tsr_error_t *err);

    tsr_status_t (*write)(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *src,
                          size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err);
    tsr_status_t (*read)(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                         size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err);
    /* size is a multiple of pattern_size (1, 2, 4, 8 ...), offset too. */
    tsr_status_t (*fill)(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *pattern,
                         size_t pattern_size, size_t size, tsr_dev_event_t *ev, tsr_error_t *err);

    tsr_status_t (*event_wait)(tsr_dev_event_t *ev, tsr_error_t *err);
    /* Start and end of the command in ns on the device's clock (waits first). */
    tsr_status_t (*event_times)(tsr_dev_event_t *ev, uint64_t *start_ns, uint64_t *end_ns,
                                tsr_error_t *err);
    void (*event_release)(tsr_dev_event_t *ev);

    /* Kernel families (NULL: not implemented by this backend). */
    const tsr_dev_hashagg_ops_t *hashagg;
    const tsr_dev_hashjoin_ops_t *hashjoin;   /* hashjoin.h */
    const tsr_dev_filter_ops_t *filter;       /* filter.h */
    const tsr_dev_partition_ops_t *partition; /* partition.h */
};

extern const tsr_dev_backend_t tsr_dev_cpu_backend;
extern const tsr_dev_backend_t tsr_dev_opencl_backend;
#ifdef TSR_HAVE_CUDA
extern const tsr_dev_backend_t tsr_dev_cuda_backend;
#endif

/* ---- registry and selection --------------------------------------------------------- */

/* The backend with id b, or NULL when this build does not contain it. */
const tsr_dev_backend_t *tsr_dev_backend(tsr_device_backend_t b);

/* Opens the device described by info (one entry of a device list). */
tsr_status_t tsr_dev_open(tsr_mem_t *mem, const tsr_device_info_t *info, tsr_dev_t **out,
                          tsr_error_t *err);
/* Opens a device by spec: "cpu", "opencl", "cuda" (the backend's first device)
 * or "opencl:1" (its device 1). Unknown backend: TSR_ERR_INVALID_ARG; backend
 * not built, or no such device: TSR_ERR_NOT_FOUND. */
tsr_status_t tsr_dev_open_spec(tsr_mem_t *mem, const char *spec, tsr_dev_t **out, tsr_error_t *err);
/* Closes the default queue and the device; accepts NULL. Every buffer, queue
 * and kernel object of the device must be released first. */
void tsr_dev_close(tsr_dev_t *dev);

/* ---- memory ------------------------------------------------------------------------- */

/* A device buffer of size bytes (0 allowed: a buffer nothing can be copied to). */
tsr_status_t tsr_dev_buf_alloc(tsr_dev_t *dev, size_t size, tsr_dev_buf_t **out, tsr_error_t *err);
void tsr_dev_buf_free(tsr_dev_buf_t *buf);

/* Pinned host memory for staging (plain aligned memory where the backend has
 * no pinned memory). */
tsr_status_t tsr_dev_host_alloc(tsr_dev_t *dev, size_t size, tsr_dev_host_t **out,
                                tsr_error_t *err);
void tsr_dev_host_free(tsr_dev_host_t *host);

/* ---- queues, transfers, events ------------------------------------------------------ */

tsr_status_t tsr_dev_queue_create(tsr_dev_t *dev, tsr_dev_queue_t **out, tsr_error_t *err);
void tsr_dev_queue_destroy(tsr_dev_queue_t *q);
/* Waits until every command queued on q has completed. */
tsr_status_t tsr_dev_queue_finish(tsr_dev_queue_t *q, tsr_error_t *err);

/* Queues a copy host->device (write) or device->host (read) of size bytes at
 * offset in the buffer; blocking returns after completion. ev: NULL, or gets
 * an event to wait for or time (release with tsr_dev_event_release). */
tsr_status_t tsr_dev_write(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *src,
                           size_t size, bool blocking, tsr_dev_event_t **ev, tsr_error_t *err);
tsr_status_t tsr_dev_read(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                          size_t size, bool blocking, tsr_dev_event_t **ev, tsr_error_t *err);
/* Repeats pattern (pattern_size 1, 2, 4, 8, 16, 32, 64 or 128 bytes) over
 * size bytes at offset; both multiples of pattern_size. */
tsr_status_t tsr_dev_fill(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                          const void *pattern, size_t pattern_size, size_t size,
                          tsr_dev_event_t **ev, tsr_error_t *err);

tsr_status_t tsr_dev_event_wait(tsr_dev_event_t *ev, tsr_error_t *err);
/* Duration of the command in ns (waits for it first). */
tsr_status_t tsr_dev_event_elapsed_ns(tsr_dev_event_t *ev, uint64_t *ns, tsr_error_t *err);
void tsr_dev_event_release(tsr_dev_event_t *ev);

/* ---- helpers for backends ---------------------------------------------------------- */

/* Allocates the generic event object a backend fills (NULL when !want). */
tsr_status_t tsr_dev_event_new(tsr_dev_t *dev, bool want, tsr_dev_event_t **out, tsr_error_t *err);
/* Monotonic clock in ns, for backends that time commands on the host. */
uint64_t tsr_dev_now_ns(void);

#endif /* TSR_DEVICE_DEVICE_H */
