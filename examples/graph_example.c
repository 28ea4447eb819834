/*
 * graph_example.c - a task graph with a user task and a SQL task.
 *
 *   build/bin/example_graph_example [DATA_DIR] [--scheduler HOST:PORT]
 *
 * Loads DATA_DIR/cities.csv (default tests/data) as table `cities`, then runs
 * a graph of two tasks:
 *
 *   cities --> [density: user task, C function] --> density
 *   cities, density --> [sql: join + group by] --> report
 *
 * The user task is registered in-process by function pointer; it reads the
 * table through the tsr_data_ accessors and writes a new table. The engine
 * sees that the SQL task reads `density` and runs it after the user task.
 * Without --scheduler the graph runs embedded; with it, it would run on a
 * cluster, which is not available yet: the example says so and exits 5.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/tessera.h"

/* density(cities) -> (city VARCHAR, density DOUBLE): people per km2. */
static tsr_status_t density_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                 tsr_data_t *const *out, size_t nout)
{
    (void)nin, (void)nout;
    const tsr_data_t *cities = in[0];
    size_t n = tsr_data_row_count(cities);
    size_t c_city = 0, c_pop = 2, c_area = 3; /* city,country,population,area_km2 */
    if (tsr_data_column_count(cities) < 4 || tsr_data_column_type(cities, c_area) != TSR_TYPE_DOUBLE)
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

static int fail(tsr_context_t *ctx, const char *what)
{
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    fprintf(stderr, "graph_example: %s: %s\n", what, e.message);
    if (e.hint[0])
        fprintf(stderr, "  hint: %s\n", e.hint);
    return tsr_status_exit_code(e.status);
}

int main(int argc, char **argv)
{
    const char *data_dir = "tests/data", *scheduler = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scheduler") == 0 && i + 1 < argc)
            scheduler = argv[++i];
        else if (argv[i][0] != '-')
            data_dir = argv[i];
        else {
            fprintf(stderr, "usage: %s [DATA_DIR] [--scheduler HOST:PORT]\n", argv[0]);
            return 2;
        }
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/cities.csv", data_dir);

    tsr_context_t *ctx = NULL;
    if (tsr_context_create(NULL, &ctx) != TSR_OK) {
        fprintf(stderr, "graph_example: cannot create a context\n");
        return 1;
    }
    int rc = 0;
    tsr_graph_t *graph = NULL;
    if (tsr_table_register_csv(ctx, "cities", path, NULL) != TSR_OK) {
        rc = fail(ctx, "loading cities.csv");
        goto cleanup;
    }

    tsr_graph_params_t params = {.scheduler = scheduler};
    if (tsr_graph_create(ctx, &params, &graph) != TSR_OK) {
        rc = fail(ctx, "creating the graph");
        goto cleanup;
    }
    /* the user task kind, registered in-process by function pointer */
    tsr_task_def_t def = {.name = "density", .cpu = density_task};
    tsr_data_t *cities, *density, *report;
    if (tsr_graph_register(graph, &def) != TSR_OK ||
        tsr_graph_data_table(graph, "cities", &cities) != TSR_OK ||
        tsr_graph_data(graph, "density", &density) != TSR_OK ||
        tsr_graph_data(graph, "report", &report) != TSR_OK) {
        rc = fail(ctx, "building the graph");
        goto cleanup;
    }
    tsr_task_params_t user = {.kind = "density", .label = "compute density", .ninputs = 1,
                              .inputs = &cities, .noutputs = 1, .outputs = &density};
    tsr_task_params_t sql = {
        .kind = "sql",
        .label = "report",
        .sql = "SELECT c.country, COUNT(*) AS cities, MAX(d.density) AS max_density "
               "FROM cities c JOIN density d ON c.city = d.city "
               "GROUP BY c.country ORDER BY max_density DESC",
        .ninputs = 2,
        .inputs = (tsr_data_t *[]){cities, density},
        .noutputs = 1,
        .outputs = &report,
    };
    if (tsr_graph_add(graph, &user, NULL) != TSR_OK || tsr_graph_add(graph, &sql, NULL) != TSR_OK) {
        rc = fail(ctx, "adding tasks");
        goto cleanup;
    }

    if (tsr_graph_submit(graph) != TSR_OK) {
        if (scheduler)
            fprintf(stderr, "graph_example: cluster mode is not yet available "
                            "(scheduler %s); run without --scheduler to run embedded\n",
                    scheduler);
        rc = fail(ctx, "submitting the graph");
        goto cleanup;
    }
    if (tsr_graph_wait(graph, 60000) != TSR_OK) {
        rc = fail(ctx, "running the graph");
        goto cleanup;
    }

    printf("country\tcities\tmax_density\n");
    for (size_t r = 0; r < tsr_data_row_count(report); r++) {
        printf("%s\t%lld\t", tsr_data_string(report, r, 0, NULL),
               (long long)tsr_data_int64(report, r, 1));
        if (tsr_data_is_null(report, r, 2))
            printf("NULL\n");
        else
            printf("%.1f\n", tsr_data_double(report, r, 2));
    }
    printf("\n");
    for (size_t i = 0; i < tsr_graph_task_count(graph); i++) {
        tsr_task_info_t info;
        tsr_task_info(tsr_graph_task_at(graph, i), &info);
        printf("task %-16s %-9s ran %.3f ms (waited %.3f ms)\n", info.label,
               tsr_task_state_name(info.state), (double)(info.end_ns - info.start_ns) / 1e6,
               (double)(info.start_ns - info.queued_ns) / 1e6);
    }

cleanup:
    tsr_graph_destroy(graph);
    tsr_context_destroy(ctx);
    return rc;
}
