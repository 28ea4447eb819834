/*
 * density_plugin.c - a task-graph plugin with the user task of
 * examples/graph_example.c, so the same graph runs on a cluster, where task
 * kinds come from plugins every worker loads (`tessera worker --plugin`).
 *
 *   cc -shared -fPIC -I include -o density_plugin.so examples/plugins/density_plugin.c
 *   tessera worker --scheduler HOST:PORT --plugin ./density_plugin.so
 *   tessera submit --scheduler HOST:PORT examples/graph_job.json
 *
 * Kind "density": cities(city, country, population, area_km2) -> (city
 * VARCHAR, density DOUBLE), people per km2; NULL where the population is NULL
 * or the area is not positive. It calls the host program's tsr_data_/tsr_task_
 * functions (the tessera binary exports them).
 */
#include <stdbool.h>
#include <stdlib.h>

#include "tessera/graph.h"

static tsr_status_t density_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *const *out, size_t nout)
{
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "density takes one input and one output");
    const tsr_data_t *cities = in[0];
    size_t n = tsr_data_row_count(cities);
    size_t c_city = 0, c_pop = 2, c_area = 3; /* city,country,population,area_km2 */
    if (tsr_data_column_count(cities) < 4 ||
        tsr_data_column_type(cities, c_area) != TSR_TYPE_DOUBLE)
        return tsr_task_fail(tc, TSR_ERR_TYPE, "cities has not the expected columns");
    const char **names = malloc((n + 1) * sizeof(*names));
    double *density = malloc((n + 1) * sizeof(*density));
    bool *nulls = malloc((n + 1) * sizeof(*nulls));
    tsr_status_t rc = TSR_ERR_NOMEM;
    if (!names || !density || !nulls)
        goto out;
    for (size_t r = 0; r < n; r++) {
        names[r] = tsr_data_string(cities, r, c_city, NULL);
        double area = tsr_data_double(cities, r, c_area);
        nulls[r] = tsr_data_is_null(cities, r, c_pop) || area <= 0;
        density[r] = nulls[r] ? 0 : (double)tsr_data_int64(cities, r, c_pop) / area;
    }
    tsr_column_data_t cols[] = {
        {.name = "city", .type = TSR_TYPE_VARCHAR, .values = names},
        {.name = "density", .type = TSR_TYPE_DOUBLE, .values = density, .nulls = nulls},
    };
    rc = tsr_data_set_columns(tc, out[0], 2, cols, n);
out:
    free(names);
    free(density);
    free(nulls);
    return rc;
}

static const tsr_task_def_t TASKS[] = {
    {.name = "density", .cpu = density_task},
};

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count);

const tsr_task_def_t *tsr_plugin_tasks(unsigned api_version, size_t *count)
{
    if (api_version != TSR_PLUGIN_API_VERSION)
        return NULL;
    *count = sizeof(TASKS) / sizeof(TASKS[0]);
    return TASKS;
}
