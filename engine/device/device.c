/*
 * device.c - the backend registry, device enumeration and selection, and the
 * checked wrappers every caller goes through (see device.h).
 *
 * The registry is a constant table indexed by tsr_device_backend_t; a backend
 * this build lacks is a NULL entry (CUDA where nvcc was not found at build
 * time: TSR_HAVE_CUDA undefined; OpenCL only in a TSR_GPU_CHECK build without
 * OpenCL headers: TSR_NO_OPENCL), which the device list reports as "not
 * available in this build". Wrappers check what
 * a backend must never see (ranges outside a buffer, objects of another
 * device, zero sizes) so that backends stay thin.
 */
#include "device/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const tsr_dev_backend_t *const DEV_BACKENDS[TSR_DEVICE_NBACKENDS] = {
    [TSR_DEVICE_CPU] = &tsr_dev_cpu_backend,
#ifndef TSR_NO_OPENCL
    [TSR_DEVICE_OPENCL] = &tsr_dev_opencl_backend,
#endif
#ifdef TSR_HAVE_CUDA
    [TSR_DEVICE_CUDA] = &tsr_dev_cuda_backend,
#endif
};

static const char *const DEV_BACKEND_NAMES[TSR_DEVICE_NBACKENDS] = {
    [TSR_DEVICE_CPU] = "cpu",
    [TSR_DEVICE_OPENCL] = "opencl",
    [TSR_DEVICE_CUDA] = "cuda",
};

const char *tsr_device_backend_name(tsr_device_backend_t b)
{
    if ((unsigned)b >= TSR_DEVICE_NBACKENDS)
        return "unknown";
    return DEV_BACKEND_NAMES[b];
}

const tsr_dev_backend_t *tsr_dev_backend(tsr_device_backend_t b)
{
    if ((unsigned)b >= TSR_DEVICE_NBACKENDS)
        return NULL;
    return DEV_BACKENDS[b];
}

uint64_t tsr_dev_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the public device list ------------------------------------------------------- */

struct tsr_device_list {
    tsr_device_info_t *devices; /* ndevices, backend order */
    size_t ndevices;
    tsr_device_backend_info_t backends[TSR_DEVICE_NBACKENDS];
};

tsr_status_t tsr_device_list_create(tsr_device_list_t **out)
{
    if (!out)
        return TSR_ERR_INVALID_ARG;
    tsr_device_list_t *list = tsr_mem_calloc(NULL, 1, sizeof(*list));
    if (!list)
        return TSR_ERR_NOMEM;
    tsr_status_t rc = TSR_OK;
    for (unsigned b = 0; b < TSR_DEVICE_NBACKENDS; b++) {
        tsr_device_backend_info_t *bi = &list->backends[b];
        bi->backend = (tsr_device_backend_t)b;
        bi->name = DEV_BACKEND_NAMES[b];
        const tsr_dev_backend_t *be = DEV_BACKENDS[b];
        if (!be) {
            snprintf(bi->note, sizeof(bi->note), "backend not available in this build");
            continue;
        }
        bi->built = 1;
        tsr_device_info_t *found = NULL;
        size_t n = 0;
        if ((rc = be->enumerate(NULL, &found, &n, bi->note, sizeof(bi->note))) != TSR_OK)
            goto err_free_list;
        if (n) {
            tsr_device_info_t *all =
                tsr_mem_realloc(NULL, list->devices, (list->ndevices + n) * sizeof(*all));
            if (!all) {
                tsr_mem_free(NULL, found);
                rc = TSR_ERR_NOMEM;
                goto err_free_list;
            }
            memcpy(all + list->ndevices, found, n * sizeof(*all));
            list->devices = all;
            list->ndevices += n;
        }
        tsr_mem_free(NULL, found);
        bi->ndevices = n;
        if (n == 0 && bi->note[0] == '\0')
            snprintf(bi->note, sizeof(bi->note), "no %s device found", bi->name);
    }
    *out = list;
    return TSR_OK;

err_free_list:
    tsr_device_list_destroy(list);
    return rc;
}

void tsr_device_list_destroy(tsr_device_list_t *list)
{
    if (!list)
        return;
    tsr_mem_free(NULL, list->devices);
    tsr_mem_free(NULL, list);
}

size_t tsr_device_list_count(const tsr_device_list_t *list)
{
    return list ? list->ndevices : 0;
}

const tsr_device_info_t *tsr_device_list_at(const tsr_device_list_t *list, size_t i)
{
    if (!list || i >= list->ndevices)
        return NULL;
    return &list->devices[i];
}

const tsr_device_backend_info_t *tsr_device_list_backend(const tsr_device_list_t *list,
                                                         tsr_device_backend_t b)
{
    if (!list || (unsigned)b >= TSR_DEVICE_NBACKENDS)
        return NULL;
    return &list->backends[b];
}

/* ---- opening devices ------------------------------------------------------------------ */

tsr_status_t tsr_dev_open(tsr_mem_t *mem, const tsr_device_info_t *info, tsr_dev_t **out,
                          tsr_error_t *err)
{
    const tsr_dev_backend_t *be = info ? tsr_dev_backend(info->backend) : NULL;
    if (!be)
        return tsr_error_set(err, TSR_ERR_NOT_FOUND, "device backend '%s' is not in this build",
                             info ? tsr_device_backend_name(info->backend) : "(none)");
    tsr_dev_t *dev = tsr_mem_calloc(mem, 1, sizeof(*dev));
    if (!dev)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory opening a device");
    dev->backend = be;
    dev->mem = mem;
    dev->info = *info;
    tsr_status_t rc = be->open(dev, err);
    if (rc != TSR_OK)
        goto err_free_dev;
    if ((rc = tsr_dev_queue_create(dev, &dev->queue, err)) != TSR_OK)
        goto err_close;
    *out = dev;
    return TSR_OK;

err_close:
    be->close(dev);
err_free_dev:
    tsr_mem_free(mem, dev);
    return rc;
}

/* Parses "backend[:index]". */
static tsr_status_t dev_parse_spec(const char *spec, tsr_device_backend_t *backend, unsigned *index,
                                   tsr_error_t *err)
{
    const char *colon = spec ? strchr(spec, ':') : NULL;
    size_t len = spec ? (colon ? (size_t)(colon - spec) : strlen(spec)) : 0;
    unsigned b = 0;
    for (; b < TSR_DEVICE_NBACKENDS; b++)
        if (strlen(DEV_BACKEND_NAMES[b]) == len && strncmp(spec, DEV_BACKEND_NAMES[b], len) == 0)
            break;
    if (b == TSR_DEVICE_NBACKENDS) {
        tsr_error_set(err, TSR_ERR_INVALID_ARG, "unknown device '%s'", spec ? spec : "");
        tsr_error_hint(err, "devices are named cpu, opencl or cuda, optionally with :INDEX");
        return TSR_ERR_INVALID_ARG;
    }
    *backend = (tsr_device_backend_t)b;
    *index = 0;
    if (colon) {
        char *end = NULL;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || v > 65535)
            return tsr_error_set(err, TSR_ERR_INVALID_ARG, "bad device index in '%s'", spec);
        *index = (unsigned)v;
    }
    return TSR_OK;
}

tsr_status_t tsr_dev_open_spec(tsr_mem_t *mem, const char *spec, tsr_dev_t **out, tsr_error_t *err)
{
    tsr_device_backend_t b;
    unsigned index;
    tsr_status_t rc = dev_parse_spec(spec, &b, &index, err);
    if (rc != TSR_OK)
        return rc;
    const tsr_dev_backend_t *be = DEV_BACKENDS[b];
    if (!be)
        return tsr_error_set(err, TSR_ERR_NOT_FOUND,
                             "device backend '%s' is not available in this build",
                             DEV_BACKEND_NAMES[b]);
    tsr_device_info_t *found = NULL;
    size_t n = 0;
    char note[256] = "";
    if ((rc = be->enumerate(mem, &found, &n, note, sizeof(note))) != TSR_OK)
        return tsr_error_set(err, rc, "out of memory listing %s devices", DEV_BACKEND_NAMES[b]);
    if (index >= n) {
        if (n == 0)
            rc = tsr_error_set(err, TSR_ERR_NOT_FOUND, "no %s device: %s", DEV_BACKEND_NAMES[b],
                               note[0] ? note : "none found");
        else
            rc = tsr_error_set(err, TSR_ERR_NOT_FOUND, "no device %s:%u (%zu found)",
                               DEV_BACKEND_NAMES[b], index, n);
        tsr_error_hint(err, "run 'tessera devices' to list the devices");
    } else {
        rc = tsr_dev_open(mem, &found[index], out, err);
    }
    tsr_mem_free(mem, found);
    return rc;
}

void tsr_dev_close(tsr_dev_t *dev)
{
    if (!dev)
        return;
    tsr_dev_queue_destroy(dev->queue);
    dev->backend->close(dev);
    tsr_mem_free(dev->mem, dev);
}

/* ---- memory ------------------------------------------------------------------------- */

tsr_status_t tsr_dev_buf_alloc(tsr_dev_t *dev, size_t size, tsr_dev_buf_t **out, tsr_error_t *err)
{
    tsr_dev_buf_t *buf = tsr_mem_calloc(dev->mem, 1, sizeof(*buf));
    if (!buf)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    buf->dev = dev;
    buf->size = size;
    /* Drivers refuse empty buffers; an empty one is a valid degenerate case
     * for callers (a batch of 0 rows), so it gets one unusable byte. */
    tsr_status_t rc = dev->backend->buf_alloc(dev, size ? size : 1, &buf->handle, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, buf);
        return rc;
    }
    *out = buf;
    return TSR_OK;
}

void tsr_dev_buf_free(tsr_dev_buf_t *buf)
{
    if (!buf)
        return;
    buf->dev->backend->buf_free(buf->dev, buf->handle);
    tsr_mem_free(buf->dev->mem, buf);
}

tsr_status_t tsr_dev_host_alloc(tsr_dev_t *dev, size_t size, tsr_dev_host_t **out, tsr_error_t *err)
{
    tsr_dev_host_t *host = tsr_mem_calloc(dev->mem, 1, sizeof(*host));
    if (!host)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    host->dev = dev;
    host->size = size;
    tsr_status_t rc =
        dev->backend->host_alloc(dev, size ? size : 1, &host->ptr, &host->handle, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, host);
        return rc;
    }
    *out = host;
    return TSR_OK;
}

void tsr_dev_host_free(tsr_dev_host_t *host)
{
    if (!host)
        return;
    host->dev->backend->host_free(host->dev, host->ptr, host->handle);
    tsr_mem_free(host->dev->mem, host);
}

/* ---- queues ------------------------------------------------------------------------- */

tsr_status_t tsr_dev_queue_create(tsr_dev_t *dev, tsr_dev_queue_t **out, tsr_error_t *err)
{
    tsr_dev_queue_t *q = tsr_mem_calloc(dev->mem, 1, sizeof(*q));
    if (!q)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    q->dev = dev;
    tsr_status_t rc = dev->backend->queue_create(dev, &q->handle, err);
    if (rc != TSR_OK) {
        tsr_mem_free(dev->mem, q);
        return rc;
    }
    *out = q;
    return TSR_OK;
}

void tsr_dev_queue_destroy(tsr_dev_queue_t *q)
{
    if (!q)
        return;
    q->dev->backend->queue_destroy(q->dev, q->handle);
    tsr_mem_free(q->dev->mem, q);
}

tsr_status_t tsr_dev_queue_finish(tsr_dev_queue_t *q, tsr_error_t *err)
{
    return q->dev->backend->queue_finish(q, err);
}

/* ---- transfers ------------------------------------------------------------------------ */

tsr_status_t tsr_dev_event_new(tsr_dev_t *dev, bool want, tsr_dev_event_t **out, tsr_error_t *err)
{
    *out = NULL;
    if (!want)
        return TSR_OK;
    tsr_dev_event_t *ev = tsr_mem_calloc(dev->mem, 1, sizeof(*ev));
    if (!ev)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory");
    ev->dev = dev;
    *out = ev;
    return TSR_OK;
}

/* Checks a transfer of size bytes at offset into a buffer of q's device. */
static tsr_status_t dev_check_range(const tsr_dev_queue_t *q, const tsr_dev_buf_t *buf,
                                    size_t offset, size_t size, const void *host, const char *what,
                                    tsr_error_t *err)
{
    if (!q || !buf || buf->dev != q->dev)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "%s: buffer and queue of different devices",
                             what);
    if (size == 0 || !host)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG, "%s: empty transfer", what);
    if (offset > buf->size || size > buf->size - offset)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "%s: %zu bytes at offset %zu outside a buffer of %zu bytes", what,
                             size, offset, buf->size);
    return TSR_OK;
}

/* Hands the caller the event the backend filled, or frees it on failure. */
static tsr_status_t dev_finish_event(tsr_status_t rc, tsr_dev_event_t *ev, tsr_dev_event_t **out)
{
    if (rc != TSR_OK) {
        if (ev)
            tsr_mem_free(ev->dev->mem, ev);
        return rc;
    }
    if (out)
        *out = ev;
    return TSR_OK;
}

tsr_status_t tsr_dev_write(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset, const void *src,
                           size_t size, bool blocking, tsr_dev_event_t **ev, tsr_error_t *err)
{
    tsr_status_t rc = dev_check_range(q, dst, offset, size, src, "device write", err);
    tsr_dev_event_t *e = NULL;
    if (rc == TSR_OK)
        rc = tsr_dev_event_new(q->dev, ev != NULL, &e, err);
    if (rc == TSR_OK)
        rc = q->dev->backend->write(q, dst, offset, src, size, blocking, e, err);
    if (rc == TSR_OK)
        q->dev->stats.bytes_h2d += size;
    return dev_finish_event(rc, e, ev);
}

tsr_status_t tsr_dev_read(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                          size_t size, bool blocking, tsr_dev_event_t **ev, tsr_error_t *err)
{
    tsr_status_t rc = dev_check_range(q, src, offset, size, dst, "device read", err);
    tsr_dev_event_t *e = NULL;
    if (rc == TSR_OK)
        rc = tsr_dev_event_new(q->dev, ev != NULL, &e, err);
    if (rc == TSR_OK)
        rc = q->dev->backend->read(q, src, offset, dst, size, blocking, e, err);
    if (rc == TSR_OK)
        q->dev->stats.bytes_d2h += size;
    return dev_finish_event(rc, e, ev);
}

tsr_status_t tsr_dev_fill(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                          const void *pattern, size_t pattern_size, size_t size,
                          tsr_dev_event_t **ev, tsr_error_t *err)
{
    tsr_status_t rc = dev_check_range(q, dst, offset, size, pattern, "device fill", err);
    if (rc != TSR_OK)
        return rc;
    if (pattern_size == 0 || pattern_size > 128 || (pattern_size & (pattern_size - 1)) ||
        size % pattern_size || offset % pattern_size)
        return tsr_error_set(err, TSR_ERR_INVALID_ARG,
                             "device fill: pattern of %zu bytes does not tile %zu bytes at %zu",
                             pattern_size, size, offset);
    tsr_dev_event_t *e = NULL;
    rc = tsr_dev_event_new(q->dev, ev != NULL, &e, err);
    if (rc == TSR_OK)
        rc = q->dev->backend->fill(q, dst, offset, pattern, pattern_size, size, e, err);
    return dev_finish_event(rc, e, ev);
}

/* ---- events ------------------------------------------------------------------------- */

tsr_status_t tsr_dev_event_wait(tsr_dev_event_t *ev, tsr_error_t *err)
{
    return ev->dev->backend->event_wait(ev, err);
}

tsr_status_t tsr_dev_event_elapsed_ns(tsr_dev_event_t *ev, uint64_t *ns, tsr_error_t *err)
{
    uint64_t start = 0, end = 0;
    tsr_status_t rc = ev->dev->backend->event_times(ev, &start, &end, err);
    if (rc != TSR_OK)
        return rc;
    *ns = end > start ? end - start : 0;
    return TSR_OK;
}

void tsr_dev_event_release(tsr_dev_event_t *ev)
{
    if (!ev)
        return;
    ev->dev->backend->event_release(ev);
    tsr_mem_free(ev->dev->mem, ev);
}
