/*
 * suite_groupby.c - `tessera-bench groupby`: in-memory hash aggregation.
 *
 * Data: N rows of k INT64 uniform in [0, K), v INT64 uniform in [0, 1000) and
 * price DOUBLE (whole cents in [0, 1000)), generated from --seed and handed to
 * tsr_table_register_columns (its time is the "load" figure, kept apart from
 * the query). Query, run R times:
 *   SELECT k, SUM(v), COUNT(*), AVG(price) FROM t GROUP BY k
 * Figures: best and median wall time of tsr_query (result materialised, not
 * printed) as rows/s and GB/s, where bytes are the 3 columns read (24 N); the
 * hand-written floor (floor.h) on the same arrays with the same threads, best
 * of R; and floor_ratio = Tessera's best time / the floor's best time (lower is
 * better; 1.0 would be no overhead at all).
 *
 * Every Tessera result is checked against the floor's groups (exact integers,
 * averages to 1e-9), so a fast wrong answer fails the run (exit 1).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "core/mem.h"
#include "core/pool.h"
#include "floor.h"

static const char *const GROUPBY_SQL = "SELECT k, SUM(v), COUNT(*), AVG(price) FROM t GROUP BY k";

typedef struct groupby_data {
    int64_t *keys;
    int64_t *values;
    double *prices;
} groupby_data_t;

static void groupby_data_free(groupby_data_t *d)
{
    tsr_mem_free(NULL, d->keys);
    tsr_mem_free(NULL, d->values);
    tsr_mem_free(NULL, d->prices);
    memset(d, 0, sizeof(*d));
}

static int groupby_data_make(size_t n, uint64_t nkeys, uint64_t seed, groupby_data_t *d)
{
    memset(d, 0, sizeof(*d));
    d->keys = tsr_mem_alloc_aligned(NULL, n * sizeof(int64_t));
    d->values = tsr_mem_alloc_aligned(NULL, n * sizeof(int64_t));
    d->prices = tsr_mem_alloc_aligned(NULL, n * sizeof(double));
    if (!d->keys || !d->values || !d->prices) {
        groupby_data_free(d);
        return -1;
    }
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        d->keys[i] = (int64_t)tsr_bench_rand_below(&st, nkeys);
        d->values[i] = (int64_t)tsr_bench_rand_below(&st, 1000);
        d->prices[i] = (double)tsr_bench_rand_below(&st, 100000) / 100.0;
    }
    return 0;
}

static int emit(tsr_bench_report_t *r, const char *name, const char *label, double value,
                const char *unit)
{
    tsr_bench_figure_t f = {.name = name, .label = label, .value = value, .unit = unit};
    if (tsr_bench_report_emit(r, &f) != 0) {
        tsr_bench_error("cannot write the figures");
        return -1;
    }
    return 0;
}

int tsr_bench_suite_groupby(const tsr_bench_opts_t *opts)
{
    int code = TSR_BENCH_EXIT_FAIL;
    size_t n = opts->rows ? (size_t)opts->rows : 10000000;
    uint64_t nkeys = opts->keys ? opts->keys : 1000;
    unsigned threads = opts->threads ? opts->threads : tsr_cpu_count();
    unsigned repeat = opts->repeat ? opts->repeat : 5;
    uint64_t seed = opts->seed_given ? opts->seed : 1;
    tsr_bench_report_t rep;
    groupby_data_t data = {0};
    tsr_context_t *ctx = NULL;
    tsr_result_t *res = NULL;
    tsr_bench_aggmap_t expect = {0};
    double *samples = NULL, *floor_samples = NULL, *cpu = NULL, *floor_cpu = NULL;
    tsr_status_t st;

    if (tsr_bench_report_init(&rep, "groupby", opts->json, stdout) != 0) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_param_int(&rep, "rows", (int64_t)n);
    tsr_bench_report_param_int(&rep, "keys", (int64_t)nkeys);
    tsr_bench_report_param_int(&rep, "threads", threads);
    tsr_bench_report_param_int(&rep, "repeat", repeat);
    tsr_bench_report_param_int(&rep, "seed", (int64_t)seed);
    tsr_bench_report_param_str(&rep, "query", GROUPBY_SQL);

    samples = tsr_mem_calloc(NULL, repeat, sizeof(double));
    floor_samples = tsr_mem_calloc(NULL, repeat, sizeof(double));
    cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    floor_cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    tsr_bench_progress("groupby: generating %zu rows", n);
    if (!samples || !floor_samples || !cpu || !floor_cpu || groupby_data_make(n, nkeys, seed, &data) != 0) {
        tsr_bench_error("out of memory generating %zu rows", n);
        goto cleanup;
    }
    tsr_bench_progress_clear();
    tsr_bench_report_title(&rep, "groupby: %zu rows, %llu keys, %u threads, best of %u", n,
                           (unsigned long long)nkeys, threads, repeat);
    tsr_bench_report_title(&rep, "  %s", GROUPBY_SQL);

    /* ---- Tessera: load, then R timed queries ---- */
    tsr_context_params_t params = {.threads = threads};
    st = tsr_context_create(&params, &ctx);
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(NULL, st, "creating the context");
        goto cleanup;
    }
    const tsr_column_data_t cols[3] = {
        {.name = "k", .type = TSR_TYPE_INT64, .values = data.keys},
        {.name = "v", .type = TSR_TYPE_INT64, .values = data.values},
        {.name = "price", .type = TSR_TYPE_DOUBLE, .values = data.prices},
    };
    tsr_bench_progress("groupby: loading");
    double t0 = tsr_bench_now();
    st = tsr_table_register_columns(ctx, "t", 3, cols, n);
    double load_s = tsr_bench_now() - t0;
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(ctx, st, "loading the table");
        goto cleanup;
    }
    tsr_bench_progress_clear();
    if (emit(&rep, "load_s", "load (register_columns)", load_s, "s") ||
        emit(&rep, "load_rows_per_s", "load throughput", (double)n / load_s, "rows/s"))
        goto cleanup;

    /* The floor first: its groups are the expected answer for every query. */
    for (unsigned i = 0; i < repeat; i++) {
        tsr_bench_progress("groupby: hand-written floor, run %u/%u", i + 1, repeat);
        tsr_bench_aggmap_free(&expect);
        double c0 = tsr_bench_cpu_now();
        t0 = tsr_bench_now();
        int frc = tsr_bench_floor_run(data.keys, data.values, data.prices, n, threads, &expect);
        floor_samples[i] = tsr_bench_now() - t0;
        floor_cpu[i] = tsr_bench_cpu_now() - c0;
        if (frc != 0) {
            tsr_bench_error("out of memory in the hand-written floor");
            goto cleanup;
        }
    }
    for (unsigned i = 0; i < repeat; i++) {
        tsr_bench_progress("groupby: query, run %u/%u", i + 1, repeat);
        double c0 = tsr_bench_cpu_now();
        t0 = tsr_bench_now();
        st = tsr_query(ctx, GROUPBY_SQL, &res);
        samples[i] = tsr_bench_now() - t0;
        cpu[i] = tsr_bench_cpu_now() - c0;
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "running the query");
            goto cleanup;
        }
        if (tsr_bench_verify_groupby(res, &expect) != 0)
            goto cleanup; /* a wrong answer is a bug: exit 1 */
        tsr_result_destroy(res);
        res = NULL;
    }
    tsr_bench_progress_clear();

    tsr_bench_stats_t q = tsr_bench_stats(samples, repeat);
    tsr_bench_stats_t f = tsr_bench_stats(floor_samples, repeat);
    tsr_bench_stats_t qc = tsr_bench_stats(cpu, repeat);
    tsr_bench_stats_t fc = tsr_bench_stats(floor_cpu, repeat);
    double bytes = 24.0 * (double)n;
    if (emit(&rep, "query_s", "query time (best)", q.best, "s") ||
        emit(&rep, "query_median_s", "query time (median)", q.median, "s") ||
        emit(&rep, "rows_per_s", "query throughput (best)", (double)n / q.best, "rows/s") ||
        emit(&rep, "rows_per_s_median", "query throughput (median)", (double)n / q.median,
             "rows/s") ||
        emit(&rep, "gb_per_s", "scan bandwidth (best)", bytes / q.best / 1e9, "GB/s") ||
        emit(&rep, "floor_s", "hand-written floor time (best)", f.best, "s") ||
        emit(&rep, "floor_rows_per_s", "hand-written floor throughput", (double)n / f.best,
             "rows/s") ||
        emit(&rep, "floor_ratio", "Tessera time / floor time", q.best / f.best, "x") ||
        emit(&rep, "query_cpu_s", "query CPU time, all threads (best)", qc.best, "s") ||
        emit(&rep, "floor_cpu_s", "floor CPU time, all threads (best)", fc.best, "s") ||
        emit(&rep, "floor_cpu_ratio", "Tessera CPU time / floor CPU time", qc.best / fc.best,
             "x"))
        goto cleanup;
    tsr_bench_report_note(&rep, "verified: all %u results match the hand-written loop "
                                "(%zu groups)", repeat, expect.n);
    code = TSR_BENCH_EXIT_OK;
cleanup:
    tsr_bench_progress_clear();
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    tsr_bench_aggmap_free(&expect);
    groupby_data_free(&data);
    tsr_mem_free(NULL, floor_cpu);
    tsr_mem_free(NULL, cpu);
    tsr_mem_free(NULL, floor_samples);
    tsr_mem_free(NULL, samples);
    tsr_bench_report_fini(&rep);
    return code;
}
