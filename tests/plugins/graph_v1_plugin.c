/*
 * graph_v1_plugin.c - a task-graph plugin built for plugin API version 1,
 * for tests/unit/test_graph_opencl.c: its array has the version 1 layout
 * (four fields, declared here as that version's header had them), and it
 * answers version 1 only, so the host must fall back from version 2 and
 * read the shorter stride. Kinds:
 *   v1_len     output: one uint64, the total bytes of its inputs
 *   v1_len2    the same (a second entry: the stride must be right)
 */
#include <stdint.h>
#include <string.h>

#include "tessera/graph.h"

typedef struct v1_def {
    const char *name;
    tsr_task_fn_t cpu;
    const char *opencl_kernel;
    const char *cuda_kernel;
} v1_def_t;

static tsr_status_t v1_len(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *const *out, size_t nout)
{
    uint64_t total = 0;
    for (size_t i = 0; i < nin; i++) {
        size_t len = 0;
        tsr_data_bytes(in[i], &len);
        total += len;
    }
    if (nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "v1_len writes one output");
    return tsr_data_set_bytes(tc, out[0], &total, sizeof(total));
}

static const v1_def_t TASKS[] = {
    {.name = "v1_len", .cpu = v1_len, .opencl_kernel = "v1_k"},
    {.name = "v1_len2", .cpu = v1_len},
};

const void *tsr_plugin_tasks(unsigned api_version, size_t *count);

const void *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != 1)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
