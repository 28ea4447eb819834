/*
 * context_device.c - choosing the device a context's queries run on
 * (tsr_context_set_device, see tessera/context.h and docs/devices.md).
 *
 * Names: "cpu" (the executor's own parallel CPU operators; the default),
 * "opencl", "cuda" (the backend's first device), an index after the backend
 * ("opencl1" or "opencl:1"), and "auto": the first CUDA GPU, else the first
 * OpenCL GPU, else cpu. An OpenCL device that is a CPU (PoCL) is not a GPU,
 * so auto does not pick it: on a CPU the executor's operators are the fast
 * path (docs/devices.md has the measurements).
 *
 * The chosen device is opened once and kept by the context, so what a
 * backend builds per device (OpenCL programs, CUDA module state) is built
 * by the first query that needs it and reused by the later ones. A process
 * that makes many short-lived contexts (a cluster worker: one per task)
 * opens the device once in a context of its own and lends it to the others
 * (tsr__context_borrow_device).
 *
 * Errors map to the CLI's exit codes through their status (DESIGN.md):
 * an unknown name is bad usage (TSR_ERR_INVALID_ARG, exit 2); a backend this
 * build lacks or one that finds no device is TSR_ERR_UNAVAILABLE (exit 5); an
 * index past the devices found is TSR_ERR_NOT_FOUND (exit 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/context_internal.h"
#include "device/device.h"

#define DEVICE_HINT "run 'tessera devices' to list the devices; cpu or auto always works"

static const char *const BACKEND_LABEL[TSR_DEVICE_NBACKENDS] = {"CPU", "OpenCL", "CUDA"};

/* "NAME", "NAMEn" or "NAME:n" -> backend (or auto) and index (-1: none). */
static tsr_status_t parse_device(const char *name, bool *is_auto, tsr_device_backend_t *b,
                                 long *index, tsr_error_t *err)
{
    static const char *const names[] = {"cpu", "opencl", "cuda", "auto"};
    size_t len = strcspn(name, "0123456789:");
    size_t k = 0;
    for (; k < 4; k++)
        if (strlen(names[k]) == len && strncmp(name, names[k], len) == 0)
            break;
    const char *rest = name + len;
    if (*rest == ':')
        rest++;
    char *end = NULL;
    long v = -1;
    if (k < 4 && *rest) {
        v = (rest[0] >= '0' && rest[0] <= '9') ? strtol(rest, &end, 10) : -1;
        if (v < 0 || v > 65535 || *end)
            k = 4;
    } else if (k < 4 && rest != name + len) {
        k = 4; /* "opencl:" */
    }
    if (k == 4 || (k == 3 && v >= 0)) {
        tsr_error_set(err, TSR_ERR_INVALID_ARG, "unknown device '%s'", name);
        tsr_error_hint(err, "devices are cpu, opencl, cuda or auto, optionally with an index "
                            "(opencl1); run 'tessera devices' to list them");
        return TSR_ERR_INVALID_ARG;
    }
    *is_auto = k == 3;
    *b = (tsr_device_backend_t)(k < 3 ? k : 0);
    *index = v;
    return TSR_OK;
}

/* The devices of backend b into *found and *n (tsr_mem_alloc'ed on mem); note
 * says why there are none. A backend missing from the build has none. */
static tsr_status_t list_backend(tsr_mem_t *mem, tsr_device_backend_t b, tsr_device_info_t **found,
                                 size_t *n, char *note, size_t note_size, tsr_error_t *err)
{
    *found = NULL;
    *n = 0;
    const tsr_dev_backend_t *be = tsr_dev_backend(b);
    if (!be) {
        snprintf(note, note_size, "backend not available in this build");
        return TSR_OK;
    }
    if (be->enumerate(mem, found, n, note, note_size) != TSR_OK)
        return tsr_error_set(err, TSR_ERR_NOMEM, "out of memory listing %s devices",
                             tsr_device_backend_name(b));
    return TSR_OK;
}

/* Resolves name to a device: *info (when *is_cpu is false). */
static tsr_status_t resolve(tsr_mem_t *mem, const char *name, tsr_device_info_t *info, bool *is_cpu,
                            tsr_error_t *err)
{
    bool is_auto;
    tsr_device_backend_t b;
    long index;
    tsr_status_t rc = parse_device(name, &is_auto, &b, &index, err);
    if (rc != TSR_OK)
        return rc;
    *is_cpu = false;
    if (!is_auto && b == TSR_DEVICE_CPU) {
        if (index > 0) {
            tsr_error_set(err, TSR_ERR_NOT_FOUND, "%s: no such device (the CPU is device 0)", name);
            tsr_error_hint(err, DEVICE_HINT);
            return TSR_ERR_NOT_FOUND;
        }
        *is_cpu = true;
        return TSR_OK;
    }
    char note[256];
    tsr_device_info_t *found = NULL;
    size_t n = 0;
    if (is_auto) {
        /* CUDA GPU > OpenCL GPU > the CPU operators */
        static const tsr_device_backend_t order[] = {TSR_DEVICE_CUDA, TSR_DEVICE_OPENCL};
        for (size_t o = 0; o < 2; o++) {
            note[0] = '\0';
            if ((rc = list_backend(mem, order[o], &found, &n, note, sizeof(note), err)) != TSR_OK)
                return rc;
            for (size_t i = 0; i < n; i++)
                if (found[i].is_gpu) {
                    *info = found[i];
                    tsr_mem_free(mem, found);
                    return TSR_OK;
                }
            tsr_mem_free(mem, found);
        }
        *is_cpu = true;
        return TSR_OK;
    }
    note[0] = '\0';
    if ((rc = list_backend(mem, b, &found, &n, note, sizeof(note), err)) != TSR_OK)
        return rc;
    const char *bname = tsr_device_backend_name(b);
    size_t want = index < 0 ? 0 : (size_t)index;
    if (!tsr_dev_backend(b)) {
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                           "%s: %s support is not compiled into this build", bname,
                           BACKEND_LABEL[b]);
        tsr_error_hint(err, DEVICE_HINT);
    } else if (n == 0) {
        /* the backend's note may repeat what the message says: keep its why */
        const char *why = strstr(note, "device found");
        why = why ? why + strlen("device found") : note;
        why += strspn(why, " :;,");
        rc = tsr_error_set(err, TSR_ERR_UNAVAILABLE,
                           "%s: %s support is compiled but no device was found%s%s", bname,
                           BACKEND_LABEL[b], why[0] ? " " : "", why);
        tsr_error_hint(err, DEVICE_HINT);
    } else if (want >= n) {
        rc = tsr_error_set(err, TSR_ERR_NOT_FOUND, "%s: no such device (%zu %s device%s found)",
                           name, n, bname, n == 1 ? "" : "s");
        tsr_error_hint(err, DEVICE_HINT);
    } else {
        *info = found[want];
    }
    tsr_mem_free(mem, found);
    return rc;
}

tsr_status_t tsr_context_set_device(tsr_context_t *ctx, const char *device)
{
    if (!ctx)
        return TSR_ERR_INVALID_ARG;
    tsr__context_begin(ctx);
    tsr_error_t *err = &ctx->last_error;
    tsr_device_info_t info;
    bool is_cpu = true;
    tsr_status_t rc = resolve(&ctx->mem, device ? device : "cpu", &info, &is_cpu, err);
    if (rc != TSR_OK)
        return tsr__context_end(ctx, rc);
    tsr_dev_t *dev = NULL;
    if (!is_cpu && (rc = tsr_dev_open(&ctx->mem, &info, &dev, err)) != TSR_OK)
        return tsr__context_end(ctx, rc);
    tsr__context_close_device(ctx);
    ctx->dev = dev;
    if (is_cpu)
        snprintf(ctx->device_name, sizeof(ctx->device_name), "cpu");
    else
        snprintf(ctx->device_name, sizeof(ctx->device_name), "%s:%u",
                 tsr_device_backend_name(info.backend), info.index);
    return TSR_OK;
}

const char *tsr_context_device(const tsr_context_t *ctx)
{
    return ctx && ctx->device_name[0] ? ctx->device_name : "cpu";
}

void tsr__context_close_device(tsr_context_t *ctx)
{
    if (!ctx->dev_borrowed)
        tsr_dev_close(ctx->dev);
    ctx->dev = NULL;
    ctx->dev_borrowed = false;
}

void tsr__context_borrow_device(tsr_context_t *ctx, const tsr_context_t *owner)
{
    tsr__context_close_device(ctx);
    ctx->dev = owner->dev;
    ctx->dev_borrowed = owner->dev != NULL;
    snprintf(ctx->device_name, sizeof(ctx->device_name), "%s", tsr_context_device(owner));
}
