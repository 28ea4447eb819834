/*
 * graph_example.c - a task graph with a user task and a SQL task.
 *
 *   example_graph_example [DATA_DIR] [--scheduler HOST:PORT] [--plugin PATH]
 *                         [--token-file F] [--timeout MS] [--device DEV]
 *                         [--task-device WORD]
 *
 * Loads DATA_DIR/cities.csv (default tests/data) as table `cities`, then runs
 * a graph of two tasks:
 *
 *   cities --> [density: user task, C function] --> density
 *   cities, density --> [sql: join + group by] --> report
 *
 * Embedded (the default) the user task is registered in-process by function
 * pointer; it reads the table through the tsr_data_ accessors and writes a
 * new table. The engine sees that the SQL task reads `density` and runs it
 * after the user task.
 *
 * On a cluster (--scheduler, or $TESSERA_SCHEDULER) the same graph goes to
 * the scheduler and runs on its workers. Workers cannot call a function of
 * this process, so the kind comes from the plugin
 * examples/plugins/density_plugin.c (--plugin PATH or $TESSERA_GRAPH_PLUGIN),
 * which every worker loads too (`tessera worker --plugin` or `tessera cluster
 * up --plugin`). Without a plugin the graph keeps the function-pointer kind
 * and submit refuses it (TSR_ERR_UNSUPPORTED, naming the task). The output
 * is the same both ways.
 *
 * The kind has two implementations (StarPU-style): the C function of
 * density_task.h and, where the OpenCL header was found, the host function
 * of density_opencl.h that runs a kernel. With --device opencl (embedded)
 * the context gets that device and the OpenCL one runs; the output is the
 * same, and stderr says which implementation ran. On a cluster, a worker
 * started with --device opencl0 runs the OpenCL one; the scheduler prefers
 * such a worker for the kind, and --task-device opencl requires one
 * (tsr_graph_task_set_device).
 *
 * --timeout MS (default 60000) bounds the wait; when it passes, the example
 * cancels the graph, prints each task's state and exits with the timeout's
 * exit code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/tessera.h"

#include "plugins/density_opencl.h" /* its OpenCL implementation */
#include "plugins/density_task.h"   /* the user task, shared with the plugin */

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
    const char *data_dir = "tests/data", *scheduler = getenv("TESSERA_SCHEDULER");
    const char *plugin = getenv("TESSERA_GRAPH_PLUGIN"), *token_file = NULL, *device = NULL;
    const char *task_device = NULL;
    long timeout_ms = 60000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scheduler") == 0 && i + 1 < argc)
            scheduler = argv[++i];
        else if (strcmp(argv[i], "--plugin") == 0 && i + 1 < argc)
            plugin = argv[++i];
        else if (strcmp(argv[i], "--token-file") == 0 && i + 1 < argc)
            token_file = argv[++i];
        else if (strcmp(argv[i], "--task-device") == 0 && i + 1 < argc)
            task_device = argv[++i];
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_ms = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] != '-')
            data_dir = argv[i];
        else {
            fprintf(stderr,
                    "usage: %s [DATA_DIR] [--scheduler HOST:PORT] [--plugin PATH] "
                    "[--token-file F] [--timeout MS] [--device DEV] [--task-device WORD]\n",
                    argv[0]);
            return 2;
        }
    }
    if (scheduler && !scheduler[0])
        scheduler = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/cities.csv", data_dir);

    tsr_context_t *ctx = NULL;
    if (tsr_context_create(NULL, &ctx) != TSR_OK) {
        fprintf(stderr, "graph_example: cannot create a context\n");
        return 1;
    }
    int rc = 0;
    tsr_graph_t *graph = NULL;
    if (device && tsr_context_set_device(ctx, device) != TSR_OK) {
        rc = fail(ctx, "choosing the device");
        goto cleanup;
    }
    if (tsr_table_register_csv(ctx, "cities", path, NULL) != TSR_OK) {
        rc = fail(ctx, "loading cities.csv");
        goto cleanup;
    }

    tsr_graph_params_t params = {.scheduler = scheduler, .token_file = token_file};
#ifdef TSR_HAVE_SCHEDULER
    params.remote = tsr_graph_cluster(); /* used only with a scheduler address */
#endif
    if (tsr_graph_create(ctx, &params, &graph) != TSR_OK) {
        rc = fail(ctx, "creating the graph");
        goto cleanup;
    }
    /* the user task kind: in-process by function pointer, or on a cluster
     * from the plugin the workers load too */
    tsr_task_def_t def = {.name = "density", .cpu = density_task};
#ifdef DENSITY_HAVE_OPENCL
    def.opencl = density_opencl; /* runs instead when the context's device is OpenCL */
#endif
    const char *ran = NULL; /* set by the implementation that runs (in-process only) */
    tsr_status_t kst = scheduler && plugin ? tsr_graph_load_plugin(graph, "density", plugin)
                                           : tsr_graph_register(graph, &def);
    tsr_data_t *cities, *density, *report;
    if (kst != TSR_OK ||
        tsr_graph_data_table(graph, "cities", &cities) != TSR_OK ||
        tsr_graph_data(graph, "density", &density) != TSR_OK ||
        tsr_graph_data(graph, "report", &report) != TSR_OK) {
        rc = fail(ctx, "building the graph");
        goto cleanup;
    }
    tsr_task_params_t user = {.kind = "density", .label = "compute density", .ninputs = 1,
                              .inputs = &cities, .noutputs = 1, .outputs = &density,
                              .arg = scheduler ? NULL : &ran}; /* no pointers to a cluster */
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
    tsr_task_t *user_task = NULL;
    if (tsr_graph_add(graph, &user, &user_task) != TSR_OK ||
        (task_device && tsr_graph_task_set_device(user_task, task_device) != TSR_OK) ||
        tsr_graph_add(graph, &sql, NULL) != TSR_OK) {
        rc = fail(ctx, "adding tasks");
        goto cleanup;
    }

    if (tsr_graph_submit(graph) != TSR_OK) {
        rc = fail(ctx, "submitting the graph");
        goto cleanup;
    }
    tsr_status_t wst = tsr_graph_wait(graph, timeout_ms);
    if (wst == TSR_ERR_TIMEOUT) {
        rc = fail(ctx, "running the graph");
        tsr_graph_cancel(graph); /* tasks not finished end "cancelled" */
        for (size_t i = 0; i < tsr_graph_task_count(graph); i++) {
            tsr_task_info_t info;
            tsr_task_info(tsr_graph_task_at(graph, i), &info);
            fprintf(stderr, "task %s: %s\n", info.label, tsr_task_state_name(info.state));
        }
        goto cleanup;
    }
    if (wst != TSR_OK) {
        rc = fail(ctx, "running the graph");
        goto cleanup;
    }

    if (device && ran)
        fprintf(stderr, "graph_example: density ran its %s implementation\n", ran);
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
