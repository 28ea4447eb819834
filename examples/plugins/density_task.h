/*
 * density_task.h - the user task of examples/graph_example.c, shared with
 * its plugin (examples/plugins/density_plugin.c), which workers load so the
 * same graph runs on a cluster. A header of one static function, so the
 * plugin still builds from one source file with a plain `cc -shared`.
 *
 * density(cities) -> (city VARCHAR, density DOUBLE): people per km2, from
 * cities(city, country, population, area_km2); NULL where the population is
 * NULL or the area is not positive. density_opencl.h has its OpenCL
 * implementation (same results).
 */
#ifndef TSR_EXAMPLE_DENSITY_TASK_H
#define TSR_EXAMPLE_DENSITY_TASK_H

#include <stdbool.h>
#include <stdlib.h>

#include "tessera/graph.h"

static tsr_status_t density_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *const *out, size_t nout)
{
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "density takes one input and one output");
    if (tsr_task_arg(tc)) /* in-process: say which implementation ran */
        *(const char **)tsr_task_arg(tc) = "cpu";
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

#endif /* TSR_EXAMPLE_DENSITY_TASK_H */
