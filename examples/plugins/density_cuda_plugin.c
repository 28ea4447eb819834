/*
 * density_cuda_plugin.c - the density plugin (density_plugin.c) with the
 * kind's CUDA implementation too: a worker started with --device cuda0 runs
 * density_cuda (density_cuda.h, kernel in density_cuda.cu), an OpenCL one
 * density_opencl (where the OpenCL header was found at build time), any
 * other worker density_task; the scheduler prefers CUDA workers for the
 * kind (its cuda function records the kind's name as its cuda_kernel).
 * Built by CMake where nvcc is found (target density_cuda_plugin; the manual
 * commands are at the top of density_cuda.cu):
 *
 *   tessera worker --scheduler HOST:PORT --device cuda0 --plugin ./density_cuda_plugin.so
 *
 * The CUDA runtime is linked into the plugin (statically); the stream it is
 * given comes from the engine's runtime: both use the device's primary
 * context, where streams and device pointers are shared.
 */
#include "tessera/graph.h"

#include "density_cuda.h"
#include "density_opencl.h"
#include "density_task.h"

static const tsr_task_def_t TASKS[] = {
#ifdef DENSITY_HAVE_OPENCL
    {.name = "density", .cpu = density_task, .opencl = density_opencl, .cuda = density_cuda},
#else
    {.name = "density", .cpu = density_task, .cuda = density_cuda},
#endif
};

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count);

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != TSR_PLUGIN_API_VERSION)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
