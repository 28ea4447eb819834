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
 * A second floor, the dense floor, is told what the engine learns from its
 * column statistics - keys lie in [0, K) - and aggregates into arrays indexed
 * by key (per-thread partials, merged): the floor of Tessera's perfect-hash
 * path (engine/exec/perfect_agg.h). dense_ratio = Tessera / dense floor.
 *
 * Every Tessera result is checked against the floor's groups (exact integers,
 * averages to 1e-9), so a fast wrong answer fails the run (exit 1); the dense
 * floor's groups are checked against them too.
 */
#include <pthread.h>
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

/* ---- the dense floor ---------------------------------------------------------- */

typedef struct dense_part {
    const groupby_data_t *d;
    size_t lo, hi; /* rows */
    size_t nkeys;  /* keys are in [0, nkeys) */
    int64_t *sum, *cnt;
    double *psum;
    int failed;
} dense_part_t;

static void *dense_thread(void *arg)
{
    dense_part_t *p = arg;
    p->sum = tsr_mem_calloc(NULL, p->nkeys, sizeof(int64_t));
    p->cnt = tsr_mem_calloc(NULL, p->nkeys, sizeof(int64_t));
    p->psum = tsr_mem_calloc(NULL, p->nkeys, sizeof(double));
    if (!p->sum || !p->cnt || !p->psum) {
        p->failed = 1;
        return NULL;
    }
    const int64_t *k = p->d->keys, *v = p->d->values;
    const double *pr = p->d->prices;
    for (size_t i = p->lo; i < p->hi; i++) {
        size_t g = (size_t)k[i];
        p->sum[g] += v[i];
        p->cnt[g]++;
        p->psum[g] += pr[i];
    }
    return NULL;
}

static void dense_free(dense_part_t *parts, unsigned threads)
{
    for (unsigned t = 0; t < threads; t++) {
        tsr_mem_free(NULL, parts[t].sum);
        tsr_mem_free(NULL, parts[t].cnt);
        tsr_mem_free(NULL, parts[t].psum);
    }
    tsr_mem_free(NULL, parts);
}

/* Runs the dense floor; when expect is given, checks its groups against it.
 * 0, or -1 (out of memory, or a difference: printed). */
static int dense_floor_run(const groupby_data_t *d, size_t n, size_t nkeys, unsigned threads,
                           const tsr_bench_aggmap_t *expect)
{
    dense_part_t *parts = tsr_mem_calloc(NULL, threads, sizeof(*parts));
    pthread_t *tid = tsr_mem_calloc(NULL, threads, sizeof(*tid));
    if (!parts || !tid) {
        tsr_mem_free(NULL, parts);
        tsr_mem_free(NULL, tid);
        return -1;
    }
    int rc = 0;
    unsigned started = 0;
    for (unsigned t = 0; t < threads; t++) {
        parts[t] = (dense_part_t){
            .d = d, .lo = n * t / threads, .hi = n * (t + 1) / threads, .nkeys = nkeys};
        if (pthread_create(&tid[t], NULL, dense_thread, &parts[t]) != 0) {
            rc = -1;
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(tid[t], NULL);
        rc |= -parts[t].failed;
    }
    tsr_mem_free(NULL, tid);
    if (rc == 0) {
        for (unsigned t = 1; t < threads; t++)
            for (size_t g = 0; g < nkeys; g++) {
                parts[0].sum[g] += parts[t].sum[g];
                parts[0].cnt[g] += parts[t].cnt[g];
                parts[0].psum[g] += parts[t].psum[g];
            }
    }
    for (size_t g = 0; rc == 0 && expect && g < nkeys; g++) {
        const tsr_bench_agg_t *e = tsr_bench_aggmap_find(expect, (int64_t)g);
        if (parts[0].cnt[g] == 0 ? e != NULL
                                 : !e || e->count != parts[0].cnt[g] || e->sum != parts[0].sum[g]) {
            tsr_bench_error("the dense floor disagrees with the hash floor on key %zu", g);
            rc = -1;
        }
    }
    dense_free(parts, threads);
    return rc;
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
    double *dense_samples = NULL, *dense_cpu = NULL;
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
    dense_samples = tsr_mem_calloc(NULL, repeat, sizeof(double));
    dense_cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    if (!dense_samples || !dense_cpu) {
        tsr_bench_error("out of memory");
        goto cleanup;
    }
    tsr_bench_progress("groupby: generating %zu rows", n);
    if (!samples || !floor_samples || !cpu || !floor_cpu ||
        groupby_data_make(n, nkeys, seed, &data) != 0) {
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
    if (tsr_bench_emit(&rep, "load_s", "load (register_columns)", load_s, "s") ||
        tsr_bench_emit(&rep, "load_rows_per_s", "load throughput", (double)n / load_s, "rows/s"))
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
        tsr_bench_progress("groupby: dense floor, run %u/%u", i + 1, repeat);
        double c0 = tsr_bench_cpu_now();
        t0 = tsr_bench_now();
        int drc = dense_floor_run(&data, n, (size_t)nkeys, threads, i == 0 ? &expect : NULL);
        dense_samples[i] = tsr_bench_now() - t0;
        dense_cpu[i] = tsr_bench_cpu_now() - c0;
        if (drc != 0) {
            tsr_bench_error("the dense floor failed");
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
    tsr_bench_stats_t df = tsr_bench_stats(dense_samples, repeat);
    tsr_bench_stats_t dc = tsr_bench_stats(dense_cpu, repeat);
    double bytes = 24.0 * (double)n;
    if (tsr_bench_emit(&rep, "query_s", "query time (best)", q.best, "s") ||
        tsr_bench_emit(&rep, "query_median_s", "query time (median)", q.median, "s") ||
        tsr_bench_emit(&rep, "rows_per_s", "query throughput (best)", (double)n / q.best,
                       "rows/s") ||
        tsr_bench_emit(&rep, "rows_per_s_median", "query throughput (median)", (double)n / q.median,
                       "rows/s") ||
        tsr_bench_emit(&rep, "gb_per_s", "scan bandwidth (best)", bytes / q.best / 1e9, "GB/s") ||
        tsr_bench_emit(&rep, "floor_s", "hand-written floor time (best)", f.best, "s") ||
        tsr_bench_emit(&rep, "floor_rows_per_s", "hand-written floor throughput",
                       (double)n / f.best, "rows/s") ||
        tsr_bench_emit(&rep, "floor_ratio", "Tessera time / floor time", q.best / f.best, "x") ||
        tsr_bench_emit(&rep, "query_cpu_s", "query CPU time, all threads (best)", qc.best, "s") ||
        tsr_bench_emit(&rep, "floor_cpu_s", "floor CPU time, all threads (best)", fc.best, "s") ||
        tsr_bench_emit(&rep, "floor_cpu_ratio", "Tessera CPU time / floor CPU time",
                       qc.best / fc.best, "x") ||
        tsr_bench_emit(&rep, "dense_floor_s", "dense floor time (best)", df.best, "s") ||
        tsr_bench_emit(&rep, "dense_ratio", "Tessera time / dense floor time", q.best / df.best,
                       "x") ||
        tsr_bench_emit(&rep, "dense_floor_cpu_s", "dense floor CPU time (best)", dc.best, "s") ||
        tsr_bench_emit(&rep, "dense_cpu_ratio", "Tessera CPU time / dense floor CPU time",
                       qc.best / dc.best, "x"))
        goto cleanup;
    tsr_bench_report_note(&rep,
                          "verified: all %u results match the hand-written loop "
                          "(%zu groups)",
                          repeat, expect.n);
    code = TSR_BENCH_EXIT_OK;
cleanup:
    tsr_bench_progress_clear();
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    tsr_bench_aggmap_free(&expect);
    groupby_data_free(&data);
    tsr_mem_free(NULL, floor_cpu);
    tsr_mem_free(NULL, dense_samples);
    tsr_mem_free(NULL, dense_cpu);
    tsr_mem_free(NULL, cpu);
    tsr_mem_free(NULL, floor_samples);
    tsr_mem_free(NULL, samples);
    tsr_bench_report_fini(&rep);
    return code;
}
