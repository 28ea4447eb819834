/*
 * suite_sched.c - `tessera-bench sched`: the task-graph executor's per-task
 * overhead on empty tasks (engine/graph/, docs/graph.md).
 *
 * Shapes, N tasks each (--rows N, default 100k), whose function returns at once:
 *   chain    task i reads the handle task i-1 writes: strictly serial, so the
 *            figure is the latency of one hand-over (end -> successor starts)
 *   fanout   one root writes a handle that N-1 tasks read: the root's end
 *            releases N-1 tasks at once, which every thread steals from
 * For each shape and each of R runs (--repeat R, default 5): build (create the
 * graph, register the kind, create handles, add N tasks), then run (submit +
 * wait), then destroy. Figures, per task, best of R:
 *   <shape>_overhead_ns   build + run (what a user pays per task; StarPU's
 *                         figure includes its submission too)
 *   <shape>_run_ns        submit + wait only
 *   <shape>_build_ns      building only
 *   <shape>_tasks_per_s   N / (build + run)
 *   <shape>_cpu_ns        CPU time (all threads) per task, build + run
 * Per-task timing (two clock reads per task) is on, as users get it.
 * Threads: --threads T (default: one per core). Every run is checked: all N
 * tasks must end DONE (else exit 1). bench/peers/sched_peers.sh runs the same
 * shapes on StarPU and Dask and prints the ratios.
 *
 * Cluster mode: with --scheduler HOST:PORT (else TESSERA_SCHEDULER=HOST:PORT
 * in the environment; the token as every client reads it: --token-file is
 * not an option here, TESSERA_TOKEN_FILE is), the same two shapes run through the C API's cluster
 * backend (tsr_graph_cluster(), docs/graph.md "On a cluster") on that
 * cluster, N tasks (default 10k) per graph. A task there cannot be a
 * function of this process, so the "empty" task is the built-in "identity"
 * of a one-row table (the graph's input, shipped once): each task is one
 * placement by the scheduler, one call to a worker and one tiny value
 * returned. Figures, best of R: cluster_<shape>_tasks_per_s (N / (build +
 * submit + wait, all values back in the handles)), cluster_<shape>_overhead_ns
 * (its inverse per task), cluster_<shape>_client_cpu_ns (this process's CPU
 * per task; the daemons' CPU is not counted). A chain runs pipelined on the
 * cluster (the scheduler sends a task ahead to the worker producing its
 * input: docs/cluster.md "Pipelining"; TSR_GRAPH_PIPELINE=0 in the
 * scheduler's environment turns that off). bench/peers/sched_peers.sh
 * --cluster W starts a local cluster of W workers, runs this and Dask's
 * LocalCluster with W workers on the same shapes and prints the ratio.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"
#include "core/pool.h"

#ifdef TSR_HAVE_SCHEDULER
#define HAVE_CLUSTER 1
#else
#define HAVE_CLUSTER 0
#endif

int tsr_bench_suite_sched(const tsr_bench_opts_t *opts);

static tsr_status_t empty_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                               tsr_data_t *const *out, size_t nout)
{
    (void)tc, (void)in, (void)nin, (void)out, (void)nout;
    return TSR_OK;
}

typedef enum shape { SHAPE_CHAIN, SHAPE_FANOUT } shape_t;
static const char *const SHAPE_NAMES[] = {"chain", "fanout"};

typedef struct sample {
    double build_s, run_s, cpu_s;
} sample_t;

/* One build + run + destroy of shape with n tasks. */
static tsr_status_t run_once(tsr_context_t *ctx, shape_t shape, size_t n, unsigned threads,
                             sample_t *out)
{
    double c0 = tsr_bench_cpu_now(), t0 = tsr_bench_now();
    tsr_graph_t *g = NULL;
    tsr_graph_params_t gp = {.threads = threads};
    tsr_status_t st = tsr_graph_create(ctx, &gp, &g);
    if (st != TSR_OK)
        return st;
    tsr_task_def_t def = {.name = "empty", .cpu = empty_task};
    if ((st = tsr_graph_register(g, &def)) != TSR_OK)
        goto out;
    tsr_data_t *prev = NULL, *d = NULL;
    for (size_t i = 0; i < n; i++) {
        bool writes = shape == SHAPE_CHAIN || i == 0;
        if (writes && (st = tsr_graph_data(g, NULL, &d)) != TSR_OK)
            goto out;
        tsr_task_params_t p = {.kind = "empty", .ninputs = prev ? 1 : 0, .inputs = &prev,
                               .noutputs = writes ? 1 : 0, .outputs = &d};
        if ((st = tsr_graph_add(g, &p, NULL)) != TSR_OK)
            goto out;
        if (writes)
            prev = d;
    }
    double t1 = tsr_bench_now();
    if ((st = tsr_graph_submit(g)) != TSR_OK || (st = tsr_graph_wait(g, -1)) != TSR_OK)
        goto out;
    double t2 = tsr_bench_now(), c2 = tsr_bench_cpu_now();
    tsr_graph_counts_t counts;
    tsr_graph_counts(g, &counts);
    if (counts.done != n) {
        tsr_bench_error("sched: %zu of %zu tasks done", counts.done, n);
        st = TSR_ERR_INTERNAL;
        goto out;
    }
    out->build_s = t1 - t0;
    out->run_s = t2 - t1;
    out->cpu_s = c2 - c0;
out:
    tsr_graph_destroy(g);
    return st;
}

#if HAVE_CLUSTER
/* One build + run + destroy of shape with n "identity" tasks on the cluster
 * at sched (the context holds the one-row table "seed"). */
static tsr_status_t run_once_cluster(tsr_context_t *ctx, shape_t shape, size_t n,
                                     const char *sched, sample_t *out)
{
    double c0 = tsr_bench_cpu_now(), t0 = tsr_bench_now();
    tsr_graph_t *g = NULL;
    tsr_graph_params_t gp = {.scheduler = sched, .remote = tsr_graph_cluster(),
                             .token_file = getenv("TESSERA_TOKEN_FILE")};
    tsr_status_t st = tsr_graph_create(ctx, &gp, &g);
    if (st != TSR_OK)
        return st;
    tsr_data_t *seed = NULL, *prev = NULL, *d = NULL;
    if ((st = tsr_graph_data_table(g, "seed", &seed)) != TSR_OK)
        goto out;
    prev = seed;
    for (size_t i = 0; i < n; i++) {
        if ((st = tsr_graph_data(g, NULL, &d)) != TSR_OK)
            goto out;
        tsr_task_params_t p = {.kind = "identity", .ninputs = 1, .inputs = &prev,
                               .noutputs = 1, .outputs = &d};
        if ((st = tsr_graph_add(g, &p, NULL)) != TSR_OK)
            goto out;
        if (shape == SHAPE_CHAIN || i == 0)
            prev = d;
    }
    double t1 = tsr_bench_now();
    if ((st = tsr_graph_submit(g)) != TSR_OK || (st = tsr_graph_wait(g, 600000)) != TSR_OK)
        goto out;
    double t2 = tsr_bench_now(), c2 = tsr_bench_cpu_now();
    tsr_graph_counts_t counts;
    tsr_graph_counts(g, &counts);
    if (counts.done != n || tsr_data_row_count(d) != 1) {
        tsr_bench_error("sched: %zu of %zu tasks done on the cluster", counts.done, n);
        st = TSR_ERR_INTERNAL;
        goto out;
    }
    out->build_s = t1 - t0;
    out->run_s = t2 - t1;
    out->cpu_s = c2 - c0;
out:
    tsr_graph_destroy(g);
    return st;
}

static int suite_cluster(const tsr_bench_opts_t *opts, const char *sched)
{
    size_t n = opts->rows ? (size_t)opts->rows : 10000;
    unsigned repeat = opts->repeat ? opts->repeat : 3;
    if (n < 2 || n > 100000) {
        tsr_bench_error("sched: on a cluster --rows (tasks) must be in [2, 100k]");
        return TSR_BENCH_EXIT_USAGE;
    }
    tsr_bench_report_t rep;
    if (tsr_bench_report_init(&rep, "sched", opts->json, stdout) != 0) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_param_int(&rep, "tasks", (int64_t)n);
    tsr_bench_report_param_int(&rep, "repeat", repeat);
    tsr_bench_report_param_str(&rep, "mode", "cluster");
    tsr_bench_report_param_str(&rep, "scheduler", sched);
    tsr_bench_report_title(&rep, "sched: identity tasks on the cluster at %s, %zu per graph, "
                                 "best of %u", sched, n, repeat);
    int code = TSR_BENCH_EXIT_FAIL;
    tsr_context_t *ctx = NULL;
    tsr_context_params_t cp = {.threads = 1};
    tsr_status_t st = tsr_context_create(&cp, &ctx);
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(NULL, st, "creating the context");
        goto cleanup;
    }
    int64_t one = 1;
    tsr_column_data_t col = {.name = "x", .type = TSR_TYPE_INT64, .values = &one};
    if ((st = tsr_table_register_columns(ctx, "seed", 1, &col, 1)) != TSR_OK) {
        code = tsr_bench_engine_error(ctx, st, "registering the seed table");
        goto cleanup;
    }
    for (int shape = SHAPE_CHAIN; shape <= SHAPE_FANOUT; shape++) {
        const char *sn = SHAPE_NAMES[shape];
        sample_t warm, best = {1e30, 1e30, 1e30};
        if ((st = run_once_cluster(ctx, (shape_t)shape, n < 100 ? n : 100, sched, &warm)) !=
            TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "running a graph on the cluster");
            goto cleanup;
        }
        for (unsigned i = 0; i < repeat; i++) {
            sample_t s;
            tsr_bench_progress("sched: cluster %s, run %u/%u", sn, i + 1, repeat);
            if ((st = run_once_cluster(ctx, (shape_t)shape, n, sched, &s)) != TSR_OK) {
                code = tsr_bench_engine_error(ctx, st, "running a graph on the cluster");
                goto cleanup;
            }
            if (s.build_s + s.run_s < best.build_s + best.run_s)
                best = s;
        }
        tsr_bench_progress_clear();
        double tot = best.build_s + best.run_s;
        char name[3][48], label[3][72];
        snprintf(name[0], 48, "cluster_%s_tasks_per_s", sn);
        snprintf(label[0], 72, "cluster %s: throughput (build + run)", sn);
        snprintf(name[1], 48, "cluster_%s_overhead_ns", sn);
        snprintf(label[1], 72, "cluster %s: per task, build + run", sn);
        snprintf(name[2], 48, "cluster_%s_client_cpu_ns", sn);
        snprintf(label[2], 72, "cluster %s: client CPU per task", sn);
        if (tsr_bench_emit(&rep, name[0], label[0], (double)n / tot, "tasks/s") ||
            tsr_bench_emit(&rep, name[1], label[1], tot / (double)n * 1e9, "ns") ||
            tsr_bench_emit(&rep, name[2], label[2], best.cpu_s / (double)n * 1e9, "ns"))
            goto cleanup;
    }
    tsr_bench_report_note(&rep, "every run verified: all tasks done, the last value back");
    code = TSR_BENCH_EXIT_OK;
cleanup:
    tsr_bench_progress_clear();
    tsr_context_destroy(ctx);
    tsr_bench_report_fini(&rep);
    return code;
}
#endif

int tsr_bench_suite_sched(const tsr_bench_opts_t *opts)
{
#if HAVE_CLUSTER
    const char *sched = opts->scheduler ? opts->scheduler : getenv("TESSERA_SCHEDULER");
    if (sched && sched[0])
        return suite_cluster(opts, sched);
#else
    if (opts->scheduler) {
        tsr_bench_error("sched: --scheduler needs a build with the cluster (UCX) support");
        return TSR_BENCH_EXIT_USAGE;
    }
#endif
    size_t n = opts->rows ? (size_t)opts->rows : 100000;
    unsigned threads = opts->threads ? opts->threads : tsr_cpu_count();
    unsigned repeat = opts->repeat ? opts->repeat : 5;
    if (n < 2 || n > 100000000) {
        tsr_bench_error("sched: --rows (tasks) must be in [2, 100M]");
        return TSR_BENCH_EXIT_USAGE;
    }
    tsr_bench_report_t rep;
    if (tsr_bench_report_init(&rep, "sched", opts->json, stdout) != 0) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_param_int(&rep, "tasks", (int64_t)n);
    tsr_bench_report_param_int(&rep, "threads", threads);
    tsr_bench_report_param_int(&rep, "repeat", repeat);
    tsr_bench_report_param_str(&rep, "mode", "embedded");
    tsr_bench_report_title(&rep, "sched: empty tasks, %zu per graph, %u threads, best of %u", n,
                           threads, repeat);
    int code = TSR_BENCH_EXIT_FAIL;
    tsr_context_t *ctx = NULL;
    sample_t *s = tsr_mem_calloc(NULL, repeat, sizeof(*s));
    double *tot = tsr_mem_calloc(NULL, repeat, sizeof(double));
    if (!s || !tot) {
        tsr_bench_error("out of memory");
        goto cleanup;
    }
    tsr_context_params_t cp = {.threads = threads};
    tsr_status_t st = tsr_context_create(&cp, &ctx);
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(NULL, st, "creating the context");
        goto cleanup;
    }
    for (int shape = SHAPE_CHAIN; shape <= SHAPE_FANOUT; shape++) {
        const char *sn = SHAPE_NAMES[shape];
        sample_t warm;
        if ((st = run_once(ctx, (shape_t)shape, n < 1000 ? n : 1000, threads, &warm)) != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "running a graph");
            goto cleanup;
        }
        for (unsigned i = 0; i < repeat; i++) {
            tsr_bench_progress("sched: %s, run %u/%u", sn, i + 1, repeat);
            if ((st = run_once(ctx, (shape_t)shape, n, threads, &s[i])) != TSR_OK) {
                code = tsr_bench_engine_error(ctx, st, "running a graph");
                goto cleanup;
            }
        }
        tsr_bench_progress_clear();
        double best_build = 1e30, best_run = 1e30, best_cpu = 1e30;
        for (unsigned i = 0; i < repeat; i++) {
            tot[i] = s[i].build_s + s[i].run_s;
            best_build = s[i].build_s < best_build ? s[i].build_s : best_build;
            best_run = s[i].run_s < best_run ? s[i].run_s : best_run;
            best_cpu = s[i].cpu_s < best_cpu ? s[i].cpu_s : best_cpu;
        }
        tsr_bench_stats_t total = tsr_bench_stats(tot, repeat);
        char name[5][48], label[5][64];
        snprintf(name[0], 48, "%s_overhead_ns", sn);
        snprintf(label[0], 64, "%s: per task, build + run", sn);
        snprintf(name[1], 48, "%s_run_ns", sn);
        snprintf(label[1], 64, "%s: per task, submit + wait", sn);
        snprintf(name[2], 48, "%s_build_ns", sn);
        snprintf(label[2], 64, "%s: per task, building", sn);
        snprintf(name[3], 48, "%s_tasks_per_s", sn);
        snprintf(label[3], 64, "%s: throughput (build + run)", sn);
        snprintf(name[4], 48, "%s_cpu_ns", sn);
        snprintf(label[4], 64, "%s: CPU time per task (all threads)", sn);
        if (tsr_bench_emit(&rep, name[0], label[0], total.best / (double)n * 1e9, "ns") ||
            tsr_bench_emit(&rep, name[1], label[1], best_run / (double)n * 1e9, "ns") ||
            tsr_bench_emit(&rep, name[2], label[2], best_build / (double)n * 1e9, "ns") ||
            tsr_bench_emit(&rep, name[3], label[3], (double)n / total.best, "tasks/s") ||
            tsr_bench_emit(&rep, name[4], label[4], best_cpu / (double)n * 1e9, "ns"))
            goto cleanup;
    }
    tsr_bench_report_note(&rep, "every run verified: all tasks done");
    code = TSR_BENCH_EXIT_OK;

cleanup:
    tsr_bench_progress_clear();
    tsr_context_destroy(ctx);
    tsr_mem_free(NULL, s);
    tsr_mem_free(NULL, tot);
    tsr_bench_report_fini(&rep);
    return code;
}
