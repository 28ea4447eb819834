/*
 * cpu.c - the cpu device backend: "device memory" is host memory and every
 * queued command runs at once, in the calling thread.
 *
 * It is always present (device 0 is the host) so code written against the
 * device interface runs everywhere, and it is the second implementation that
 * keeps the interface honest. Its kernels (hashagg_cpu.c) are plain
 * sequential C; the executor's parallel CPU operators (engine/exec) remain the
 * reference implementation and the fast CPU path.
 *
 * Events record host timestamps around each command (start_ns/end_ns).
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/pool.h"
#include "device/device.h"
#include "device/filter.h"
#include "device/hashagg.h"
#include "device/hashjoin.h"
#include "device/partition.h"

/* "model name : AMD EPYC ..." -> the value after the colon, trimmed. */
static void cpu_info_field(const char *line, const char *field, char *out, size_t size)
{
    size_t n = strlen(field);
    if (strncmp(line, field, n) != 0 || out[0] != '\0')
        return;
    const char *p = strchr(line + n, ':');
    if (!p)
        return;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    snprintf(out, size, "%s", p);
    size_t len = strlen(out);
    while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
        out[--len] = '\0';
}

static tsr_status_t cpu_enumerate(tsr_mem_t *mem, tsr_device_info_t **out, size_t *n, char *note,
                                  size_t note_size)
{
    tsr_device_info_t *info = tsr_mem_calloc(mem, 1, sizeof(*info));
    if (!info)
        return TSR_ERR_NOMEM;
    info->backend = TSR_DEVICE_CPU;
    info->index = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            cpu_info_field(line, "model name", info->name, sizeof(info->name));
            cpu_info_field(line, "vendor_id", info->vendor, sizeof(info->vendor));
        }
        fclose(f);
    }
    if (info->name[0] == '\0')
        snprintf(info->name, sizeof(info->name), "host CPU");
    struct utsname un;
    if (uname(&un) == 0)
        snprintf(info->version, sizeof(info->version), "%s %s %s", un.sysname, un.release,
                 un.machine);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    info->global_mem_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    info->compute_units = tsr_cpu_count();
    info->is_gpu = 0;
    *out = info;
    *n = 1;
    if (note_size)
        note[0] = '\0';
    return TSR_OK;
}

static tsr_status_t cpu_open(tsr_dev_t *dev, tsr_error_t *err)
{
    dev->impl = NULL;
    return TSR_OK;
}

static void cpu_close(tsr_dev_t *dev)
{
}

static tsr_status_t cpu_buf_alloc(tsr_dev_t *dev, size_t size, void **handle, tsr_error_t *err)
{
    void *p = tsr_mem_alloc_aligned(dev->mem, size);
    if (!p)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory allocating %zu bytes on %s", size,
                             dev->info.name);
    *handle = p;
    return TSR_OK;
}

static void cpu_buf_free(tsr_dev_t *dev, void *handle)
{
    tsr_mem_free(dev->mem, handle);
}

static tsr_status_t cpu_host_alloc(tsr_dev_t *dev, size_t size, void **ptr, void **handle,
                                   tsr_error_t *err)
{
    *handle = NULL;
    return cpu_buf_alloc(dev, size, ptr, err);
}

static void cpu_host_free(tsr_dev_t *dev, void *ptr, void *handle)
{
    tsr_mem_free(dev->mem, ptr);
}

static tsr_status_t cpu_queue_create(tsr_dev_t *dev, void **handle, tsr_error_t *err)
{
    *handle = NULL;
    return TSR_OK;
}

static void cpu_queue_destroy(tsr_dev_t *dev, void *handle)
{
}

static tsr_status_t cpu_queue_finish(tsr_dev_queue_t *q, tsr_error_t *err)
{
    return TSR_OK; /* commands complete when queued */
}

static tsr_status_t cpu_write(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                              const void *src, size_t size, bool blocking, tsr_dev_event_t *ev,
                              tsr_error_t *err)
{
    uint64_t t0 = ev ? tsr_dev_now_ns() : 0;
    memcpy((char *)dst->handle + offset, src, size);
    if (ev) {
        ev->start_ns = t0;
        ev->end_ns = tsr_dev_now_ns();
    }
    return TSR_OK;
}

static tsr_status_t cpu_read(tsr_dev_queue_t *q, const tsr_dev_buf_t *src, size_t offset, void *dst,
                             size_t size, bool blocking, tsr_dev_event_t *ev, tsr_error_t *err)
{
    uint64_t t0 = ev ? tsr_dev_now_ns() : 0;
    memcpy(dst, (const char *)src->handle + offset, size);
    if (ev) {
        ev->start_ns = t0;
        ev->end_ns = tsr_dev_now_ns();
    }
    return TSR_OK;
}

static tsr_status_t cpu_fill(tsr_dev_queue_t *q, tsr_dev_buf_t *dst, size_t offset,
                             const void *pattern, size_t pattern_size, size_t size,
                             tsr_dev_event_t *ev, tsr_error_t *err)
{
    uint64_t t0 = ev ? tsr_dev_now_ns() : 0;
    char *p = (char *)dst->handle + offset;
    if (pattern_size == 1) {
        memset(p, *(const unsigned char *)pattern, size);
    } else {
        /* Copy the pattern once, then double the filled prefix: log2 memcpys. */
        size_t done = pattern_size;
        memcpy(p, pattern, pattern_size);
        while (done < size) {
            size_t chunk = done < size - done ? done : size - done;
            memcpy(p + done, p, chunk);
            done += chunk;
        }
    }
    if (ev) {
        ev->start_ns = t0;
        ev->end_ns = tsr_dev_now_ns();
    }
    return TSR_OK;
}

static tsr_status_t cpu_event_wait(tsr_dev_event_t *ev, tsr_error_t *err)
{
    return TSR_OK;
}

static tsr_status_t cpu_event_times(tsr_dev_event_t *ev, uint64_t *start_ns, uint64_t *end_ns,
                                    tsr_error_t *err)
{
    *start_ns = ev->start_ns;
    *end_ns = ev->end_ns;
    return TSR_OK;
}

static void cpu_event_release(tsr_dev_event_t *ev)
{
}

const tsr_dev_backend_t tsr_dev_cpu_backend = {
    .id = TSR_DEVICE_CPU,
    .name = "cpu",
    .enumerate = cpu_enumerate,
    .open = cpu_open,
    .close = cpu_close,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .queue_create = cpu_queue_create,
    .queue_destroy = cpu_queue_destroy,
    .queue_finish = cpu_queue_finish,
    .write = cpu_write,
    .read = cpu_read,
    .fill = cpu_fill,
    .event_wait = cpu_event_wait,
    .event_times = cpu_event_times,
    .event_release = cpu_event_release,
    .hashagg = &tsr_dev_hashagg_cpu_ops,
    .hashjoin = &tsr_dev_hashjoin_cpu_ops,
    .filter = &tsr_dev_filter_cpu_ops,
    .partition = &tsr_dev_partition_cpu_ops,
};
