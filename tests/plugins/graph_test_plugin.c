/*
 * graph_test_plugin.c - a task-graph plugin for tests/unit/test_graph.c.
 *
 * Built as a MODULE library (tests/CMakeLists.txt) and loaded with
 * tsr_graph_load_plugin. It exports tsr_plugin_tasks and calls back into the
 * host program's tsr_data_ and tsr_task_ functions (the test is linked with
 * ENABLE_EXPORTS for that). Kinds:
 *   plug_sum   inputs: BYTES holding int64 values; output: one int64, the sum
 *              of every value plus the integer in the task's param string
 *   plug_fail  fails with TSR_ERR_BAD_INPUT and a message
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/graph.h"

static tsr_status_t plug_sum(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    int64_t sum = strtoll(tsr_task_param(tc), NULL, 10);
    for (size_t i = 0; i < nin; i++) {
        size_t len;
        const int64_t *v = tsr_data_bytes(in[i], &len);
        if (len % sizeof(int64_t))
            return tsr_task_fail(tc, TSR_ERR_BAD_INPUT, "input %zu is not int64 values", i);
        for (size_t k = 0; k < len / sizeof(int64_t); k++) {
            int64_t x;
            memcpy(&x, (const char *)v + k * sizeof(int64_t), sizeof(x));
            sum += x;
        }
    }
    for (size_t o = 0; o < nout; o++) {
        tsr_status_t rc = tsr_data_set_bytes(tc, out[o], &sum, sizeof(sum));
        if (rc != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

static tsr_status_t plug_fail(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    (void)in, (void)nin, (void)out, (void)nout;
    return tsr_task_fail(tc, TSR_ERR_BAD_INPUT, "plug_fail always fails");
}

static const tsr_task_def_t TASKS[] = {
    {.name = "plug_sum", .cpu = plug_sum, .opencl_kernel = "plug_sum_cl"},
    {.name = "plug_fail", .cpu = plug_fail},
};

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count);

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != TSR_PLUGIN_API_VERSION)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
