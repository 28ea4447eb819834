/*
 * graph_cuda_v3_plugin.c - a task-graph plugin of plugin API version 3 (the
 * current tsr_task_def_t, with .cuda), for tests/unit/test_graph_cuda.c.
 * Its functions use no CUDA call (the plugin needs no CUDA to build): they
 * report what the engine gave them. Kinds:
 *   v3_dev     output bytes: "cpu" from the cpu function; from the cuda one
 *              "cuda <ordinal> <1 when the stream is not NULL>"
 *   v3_dev2    cpu only (a second entry: the stride must be right)
 */
#include <stdio.h>
#include <string.h>

#include "tessera/graph.h"

static tsr_status_t v3_cpu(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *const *out, size_t nout)
{
    (void)in;
    (void)nin;
    if (nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "v3_dev writes one output");
    void *s = (void *)1;
    int dev = 7;
    if (tsr_task_cuda(tc, &s, &dev) != TSR_ERR_UNSUPPORTED || s || dev != -1)
        return tsr_task_fail(tc, TSR_ERR_INTERNAL, "tsr_task_cuda answered in a cpu function");
    return tsr_data_set_bytes(tc, out[0], "cpu", 3);
}

static tsr_status_t v3_cuda(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                            tsr_data_t *const *out, size_t nout)
{
    (void)in;
    (void)nin;
    if (nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "v3_dev writes one output");
    void *s = NULL;
    int dev = -1;
    tsr_status_t rc = tsr_task_cuda(tc, &s, &dev);
    if (rc != TSR_OK)
        return tsr_task_fail(tc, rc, "tsr_task_cuda failed in the cuda function");
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "cuda %d %d", dev, s != NULL);
    return tsr_data_set_bytes(tc, out[0], buf, (size_t)len);
}

static const tsr_task_def_t TASKS[] = {
    {.name = "v3_dev", .cpu = v3_cpu, .cuda = v3_cuda},
    {.name = "v3_dev2", .cpu = v3_cpu},
};

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count);

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != 3)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
