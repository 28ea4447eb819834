/*
 * density_task.h - the user task of examples/graph_example.c, shared with
 * its plugin (examples/plugins/density_plugin.c), which workers load so the
 * same graph runs on a cluster. A header of one static function, so the
 * plugin still builds from one source file with a plain `cc -shared`.
 *
 * density(cities) -> (city VARCHAR, density DOUBLE): people per km2, from
 * cities(city, country, population, area_km2); NULL where the population is
 * NULL or the area is not positive. density_opencl.h has its OpenCL
 * implementation, density_cuda.h its CUDA one (same results); the pieces
 * every implementation shares (checking the task and its input, gathering
 * the columns a kernel reads, writing the output) are the inline helpers
 * below, which those headers include from here.
 */
#ifndef TSR_EXAMPLE_DENSITY_TASK_H
#define TSR_EXAMPLE_DENSITY_TASK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "tessera/graph.h"

/* The columns read of cities(city, country, population, area_km2). */
enum { DENSITY_C_CITY = 0, DENSITY_C_POP = 2, DENSITY_C_AREA = 3 };

/* Every implementation's start: one input (cities, whose columns are
 * checked) and one output, else the task fails; *n: the input's rows.
 * In-process (the task's arg is set) it stores the implementation's device
 * word there ("cpu", "opencl", "cuda"), to say which one ran. */
static inline tsr_status_t density_begin(tsr_task_ctx_t *tc, const tsr_data_t *const *in,
                                         size_t nin, size_t nout, const char *word, size_t *n)
{
    if (nin != 1 || nout != 1)
        return tsr_task_fail(tc, TSR_ERR_INVALID_ARG, "density takes one input and one output");
    if (tsr_task_arg(tc))
        *(const char **)tsr_task_arg(tc) = word;
    *n = tsr_data_row_count(in[0]);
    if (tsr_data_column_count(in[0]) < 4 ||
        tsr_data_column_type(in[0], DENSITY_C_AREA) != TSR_TYPE_DOUBLE)
        return tsr_task_fail(tc, TSR_ERR_TYPE, "cities has not the expected columns");
    return TSR_OK;
}

/* The device implementations' host side: gathers the n rows' city names
 * (for the output) and what the kernel reads (population, its NULL flags,
 * area) into host arrays of n. */
static inline void density_gather(const tsr_data_t *cities, size_t n, const char **names,
                                  int64_t *pop, uint8_t *pop_null, double *area)
{
    for (size_t r = 0; r < n; r++) {
        names[r] = tsr_data_string(cities, r, DENSITY_C_CITY, NULL);
        pop[r] = tsr_data_int64(cities, r, DENSITY_C_POP);
        pop_null[r] = tsr_data_is_null(cities, r, DENSITY_C_POP);
        area[r] = tsr_data_double(cities, r, DENSITY_C_AREA);
    }
}

/* Writes the output table (city, density) of n rows. */
static inline tsr_status_t density_write(tsr_task_ctx_t *tc, tsr_data_t *out, size_t n,
                                         const char **names, const double *density,
                                         const bool *nulls)
{
    tsr_column_data_t cols[] = {
        {.name = "city", .type = TSR_TYPE_VARCHAR, .values = names},
        {.name = "density", .type = TSR_TYPE_DOUBLE, .values = density, .nulls = nulls},
    };
    return tsr_data_set_columns(tc, out, 2, cols, n);
}

static tsr_status_t density_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *const *out, size_t nout)
{
    size_t n = 0;
    tsr_status_t rc = density_begin(tc, in, nin, nout, "cpu", &n);
    if (rc != TSR_OK)
        return rc;
    const tsr_data_t *cities = in[0];
    const char **names = malloc((n + 1) * sizeof(*names));
    double *density = malloc((n + 1) * sizeof(*density));
    bool *nulls = malloc((n + 1) * sizeof(*nulls));
    rc = TSR_ERR_NOMEM;
    if (!names || !density || !nulls)
        goto out;
    for (size_t r = 0; r < n; r++) {
        names[r] = tsr_data_string(cities, r, DENSITY_C_CITY, NULL);
        double area = tsr_data_double(cities, r, DENSITY_C_AREA);
        nulls[r] = tsr_data_is_null(cities, r, DENSITY_C_POP) || area <= 0;
        density[r] = nulls[r] ? 0 : (double)tsr_data_int64(cities, r, DENSITY_C_POP) / area;
    }
    rc = density_write(tc, out[0], n, names, density, nulls);
out:
    free(names);
    free(density);
    free(nulls);
    return rc;
}

#endif /* TSR_EXAMPLE_DENSITY_TASK_H */
