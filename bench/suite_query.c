/*
 * suite_query.c - `tessera-bench query`: time any SELECT over CSV tables held
 * in memory.
 *
 *   tessera-bench query --table sales=FILE.csv [--table ...] [--threads T]
 *                       [--repeat R] [--json] "SELECT ..."
 *
 * Loads each table once (the "load" figure), then runs the query R times and
 * reports the best and median wall time of tsr_query (result materialised, not
 * printed) and the least CPU time (all threads) one run took. The peer scripts (bench/peers/) use it to time Tessera's in-memory
 * side of a comparison on exactly the data and query the peers run.
 */
#include <string.h>

#include "bench.h"
#include "core/mem.h"
#include "core/pool.h"

int tsr_bench_suite_query(const tsr_bench_opts_t *opts)
{
    int code = TSR_BENCH_EXIT_FAIL;
    unsigned threads = opts->threads ? opts->threads : tsr_cpu_count();
    unsigned repeat = opts->repeat ? opts->repeat : 5;
    tsr_bench_report_t rep;
    tsr_context_t *ctx = NULL;
    tsr_result_t *res = NULL;
    double *samples = NULL, *cpu = NULL;
    size_t result_rows = 0;
    tsr_status_t st;

    if (!opts->sql || opts->ntables == 0) {
        tsr_bench_error(!opts->sql ? "missing the query text" : "no table given");
        fprintf(stderr, "  hint: tessera-bench query --table NAME=FILE.csv \"SELECT ...\"\n");
        return TSR_BENCH_EXIT_USAGE;
    }
    if (tsr_bench_report_init(&rep, "query", opts->json, stdout) != 0) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_param_int(&rep, "threads", threads);
    tsr_bench_report_param_int(&rep, "repeat", repeat);
    tsr_bench_report_param_str(&rep, "query", opts->sql);

    samples = tsr_mem_calloc(NULL, repeat, sizeof(double));
    cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    if (!samples || !cpu) {
        tsr_bench_error("out of memory");
        goto cleanup;
    }
    tsr_context_params_t params = {.threads = threads};
    st = tsr_context_create(&params, &ctx);
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(NULL, st, "creating the context");
        goto cleanup;
    }
    double load_s = 0;
    for (size_t t = 0; t < opts->ntables; t++) {
        const char *spec = opts->tables[t];
        const char *eq = strchr(spec, '=');
        char name[256];
        size_t len = (size_t)(eq - spec);
        if (len >= sizeof(name)) {
            tsr_bench_error("table name too long in '%s'", spec);
            code = TSR_BENCH_EXIT_USAGE;
            goto cleanup;
        }
        memcpy(name, spec, len);
        name[len] = '\0';
        tsr_bench_progress("query: loading %s", eq + 1);
        double t0 = tsr_bench_now();
        st = tsr_table_register_csv(ctx, name, eq + 1, NULL);
        load_s += tsr_bench_now() - t0;
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "loading a table");
            goto cleanup;
        }
    }
    tsr_bench_progress_clear();
    tsr_bench_report_title(&rep, "query: %u threads, best of %u", threads, repeat);
    tsr_bench_report_title(&rep, "  %s", opts->sql);
    if (tsr_bench_emit(&rep, "load_s", "CSV load time (all tables)", load_s, "s"))
        goto cleanup;
    for (unsigned i = 0; i < repeat; i++) {
        tsr_bench_progress("query: run %u/%u", i + 1, repeat);
        double c0 = tsr_bench_cpu_now();
        double t0 = tsr_bench_now();
        st = tsr_query(ctx, opts->sql, &res);
        samples[i] = tsr_bench_now() - t0;
        cpu[i] = tsr_bench_cpu_now() - c0;
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "running the query");
            goto cleanup;
        }
        result_rows = tsr_result_row_count(res);
        tsr_result_destroy(res);
        res = NULL;
    }
    tsr_bench_progress_clear();
    tsr_bench_stats_t q = tsr_bench_stats(samples, repeat);
    if (tsr_bench_emit(&rep, "query_s", "query time (best)", q.best, "s") ||
        tsr_bench_emit(&rep, "query_median_s", "query time (median)", q.median, "s") ||
        tsr_bench_emit(&rep, "query_cpu_s", "query CPU time, all threads (best)",
                       tsr_bench_stats(cpu, repeat).best, "s") ||
        tsr_bench_emit(&rep, "result_rows", "result rows", (double)result_rows, "rows"))
        goto cleanup;
    code = TSR_BENCH_EXIT_OK;
cleanup:
    tsr_bench_progress_clear();
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    tsr_mem_free(NULL, cpu);
    tsr_mem_free(NULL, samples);
    tsr_bench_report_fini(&rep);
    return code;
}
