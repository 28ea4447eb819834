/*
 * tessera/device.h - the compute devices this process can use.
 *
 * Tessera runs its hot operators on a device: the host's CPU cores, an OpenCL
 * device (a GPU, or PoCL on the CPU where there is no GPU) or a CUDA GPU. Each
 * kind of device is reached through a *backend*; a backend may be missing from
 * a build (not compiled in) or find no device at run time. This header lists
 * what was found, for `tessera devices` and for programs that want to choose.
 *
 *   tsr_device_list_t *list;
 *   if (tsr_device_list_create(&list) == TSR_OK) {
 *       for (size_t i = 0; i < tsr_device_list_count(list); i++)
 *           puts(tsr_device_list_at(list, i)->name);
 *       tsr_device_list_destroy(list);
 *   }
 *
 * A list is a snapshot taken when it is created; it owns everything it hands
 * out. Creating one is not free (OpenCL and CUDA load their drivers), so keep
 * it rather than creating one per question.
 */
#ifndef TESSERA_DEVICE_H
#define TESSERA_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tsr_device_backend {
    TSR_DEVICE_CPU = 0,    /* the host's cores; always present */
    TSR_DEVICE_OPENCL = 1, /* any OpenCL 1.2+ device with 64-bit atomics */
    TSR_DEVICE_CUDA = 2,   /* NVIDIA GPUs */
} tsr_device_backend_t;

#define TSR_DEVICE_NBACKENDS 3

typedef struct tsr_device_info {
    tsr_device_backend_t backend;
    unsigned index; /* position among the backend's devices (0-based) */
    char name[128]; /* as the driver names it, e.g. "NVIDIA H100" */
    char vendor[64];
    char version[128];         /* driver / platform version text */
    uint64_t global_mem_bytes; /* device memory (host RAM for CPU devices) */
    unsigned compute_units;    /* cores, OpenCL compute units or CUDA SMs */
    int is_gpu;                /* 1 for GPUs, 0 for CPUs and other accelerators */
} tsr_device_info_t;

typedef struct tsr_device_backend_info {
    tsr_device_backend_t backend;
    const char *name; /* "cpu", "opencl", "cuda" */
    int built;        /* 1 when this build contains the backend */
    size_t ndevices;  /* devices it found */
    char note[256];   /* why it found none ("no OpenCL platform found"), else "" */
} tsr_device_backend_info_t;

typedef struct tsr_device_list tsr_device_list_t;

/* Enumerates the devices of every backend built in. A backend that fails to
 * enumerate (no driver, no platform) contributes no devices and says why in its
 * note; only running out of memory fails the call (TSR_ERR_NOMEM). */
tsr_status_t tsr_device_list_create(tsr_device_list_t **out);
void tsr_device_list_destroy(tsr_device_list_t *list);

/* Devices in backend order (cpu, opencl, cuda), then by index. */
size_t tsr_device_list_count(const tsr_device_list_t *list);
const tsr_device_info_t *tsr_device_list_at(const tsr_device_list_t *list, size_t i);

/* The state of backend b (every backend has one, built or not). */
const tsr_device_backend_info_t *tsr_device_list_backend(const tsr_device_list_t *list,
                                                         tsr_device_backend_t b);

/* "cpu", "opencl", "cuda"; "unknown" for other values. */
const char *tsr_device_backend_name(tsr_device_backend_t b);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_DEVICE_H */
