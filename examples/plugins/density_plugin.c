/*
 * density_plugin.c - a task-graph plugin with the user task of
 * examples/graph_example.c, so the same graph runs on a cluster, where task
 * kinds come from plugins every worker loads (`tessera worker --plugin`).
 *
 *   cc -shared -fPIC -I include -o density_plugin.so examples/plugins/density_plugin.c
 *   tessera worker --scheduler HOST:PORT --plugin ./density_plugin.so
 *   tessera submit --scheduler HOST:PORT examples/graph_job.json
 *
 * (The OpenCL implementation uses the host's cl* functions; the tessera
 * binary links libOpenCL. Building needs the OpenCL header, else the plugin
 * has the CPU implementation only.)
 *
 * Kind "density": cities(city, country, population, area_km2) -> (city
 * VARCHAR, density DOUBLE), people per km2; NULL where the population is NULL
 * or the area is not positive. It calls the host program's tsr_data_/tsr_task_
 * functions (the tessera binary exports them).
 */
#include "tessera/graph.h"

#include "density_opencl.h"
#include "density_task.h"

/* With the OpenCL header at build time the kind also has its OpenCL
 * implementation: a worker started with --device opencl0 runs it (and the
 * scheduler prefers such workers for the kind); others run density_task. */
static const tsr_task_def_t TASKS[] = {
#ifdef DENSITY_HAVE_OPENCL
    {.name = "density", .cpu = density_task, .opencl = density_opencl},
#else
    {.name = "density", .cpu = density_task},
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
