/*
 * graph_cuda_v2_plugin.c - a task-graph plugin built for plugin API version
 * 2, for tests/unit/test_graph_cuda.c: its array has the version 2 layout
 * (five fields, declared here as that version's header had them, without
 * .cuda) and it answers version 2 only, so the host must fall back from
 * version 3 and read the shorter stride. Kinds:
 *   v2_len     cpu and opencl functions: output one uint64, the total bytes
 *              of its inputs (+ 1000 from the opencl function)
 *   v2_len2    cpu only (a second entry: the stride must be right)
 */
#include <stdint.h>
#include <string.h>

#include "tessera/graph.h"

typedef struct v2_def {
    const char *name;
    tsr_task_fn_t cpu;
    const char *opencl_kernel;
    const char *cuda_kernel;
    tsr_task_fn_t opencl;
} v2_def_t;

static tsr_status_t len_plus(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout, uint64_t plus)
{
    uint64_t total = plus;
    for (size_t i = 0; i < nin; i++) {
        size_t len = 0;
        tsr_data_bytes(in[i], &len);
        total += len;
    }
    if (nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "v2_len writes one output");
    return tsr_data_set_bytes(tc, out[0], &total, sizeof(total));
}

static tsr_status_t v2_len(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *const *out, size_t nout)
{
    return len_plus(tc, in, nin, out, nout, 0);
}

static tsr_status_t v2_len_cl(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    return len_plus(tc, in, nin, out, nout, 1000);
}

static const v2_def_t TASKS[] = {
    {.name = "v2_len", .cpu = v2_len, .opencl = v2_len_cl},
    {.name = "v2_len2", .cpu = v2_len, .cuda_kernel = "v2_k"},
};

const void *tsr_plugin_tasks(unsigned api_version, size_t *count);

const void *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != 2)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
