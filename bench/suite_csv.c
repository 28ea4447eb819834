/*
 * suite_csv.c - `tessera-bench csv`: loading CSV, and a query from CSV end to end.
 *
 * Data: byte for byte what `tessera gen sales --rows N --keys K --seed S`
 * writes (cli/cmd_gen.c; the generator is mirrored here so the suite needs no
 * CLI), in a fresh temporary directory ($TMPDIR or /tmp) removed at the end:
 *   id,store,region,product,quantity,price
 *   1,417,"south, west",product-0042,7,123.45
 * id 1..N; store INT64 uniform in [0, K); region one of 8 names (one quoted);
 * product one of 500, skewed; quantity INT64 in [-3, 100], NULL in ~1% of
 * rows; price DOUBLE in [0.50, 499.99] with two decimals.
 *
 * Figures (best and median of R runs; the file is in the page cache, so this
 * measures parsing, not the disk):
 *   load   tsr_table_register_csv of the file into a live context, then
 *          SELECT * FROM sales LIMIT 1, which loads every column (registering
 *          alone only reads the bytes, the header and the sample: values load
 *          on demand, see docs/sql.md), as MB/s of file bytes and rows/s;
 *   e2e    create a context, register the CSV, run
 *            SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store
 *          and hold the result: what `tessera sql --table sales=FILE` does,
 *          minus process start and printing. Projection pushdown: only store,
 *          quantity and price are converted.
 * Every end-to-end result is checked against sums kept while writing the file.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "core/mem.h"
#include "core/pool.h"
#include "floor.h"

static const char *const CSV_SQL =
    "SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store";

static const char *const REGIONS[] = {
    "north", "south", "east", "west", "central", "north east", "south, west", "overseas",
};

/* cmd_gen.c's draw: uniform in [0, n) by a 64x64->128 multiply-shift. It must
 * stay identical to the CLI's so both write the same file. */
static uint64_t gen_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)tsr_bench_rand(state) * n) >> 64);
}

/* Appends the decimal digits of v to p; returns the new end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Writes the sales file and fills expect with its groups. Returns 0, or -1
 * after reporting the error. *bytes_out gets the file size. */
static int write_sales_csv(const char *path, size_t n, uint64_t nkeys, uint64_t seed,
                           tsr_bench_aggmap_t *expect, size_t *bytes_out)
{
    int rc = -1;
    const size_t cap = 1 << 20;
    char *buf = tsr_mem_alloc(NULL, cap);
    FILE *f = fopen(path, "wb");
    size_t bytes = 0;
    if (!buf || !f) {
        tsr_bench_error(buf ? "cannot create %s" : "out of memory writing %s", path);
        goto cleanup;
    }
    static const char header[] = "id,store,region,product,quantity,price\n";
    memcpy(buf, header, sizeof(header) - 1);
    char *p = buf + sizeof(header) - 1;
    uint64_t st = seed;
    for (size_t i = 0; i < n; i++) {
        if ((size_t)(p - buf) > cap - 128) {
            size_t len = (size_t)(p - buf);
            if (fwrite(buf, 1, len, f) != len)
                goto write_error;
            bytes += len;
            p = buf;
        }
        uint64_t store = gen_below(&st, nkeys);
        const char *region = REGIONS[gen_below(&st, 8)];
        uint64_t u = gen_below(&st, 1000);
        uint64_t product = u * u / 2000; /* skewed: a few products sell most */
        bool qty_null = gen_below(&st, 100) == 0;
        int64_t qty = qty_null ? 0 : (int64_t)gen_below(&st, 104) - 3;
        uint64_t cents = 50 + gen_below(&st, 49950);
        p = put_u64(p, i + 1);
        *p++ = ',';
        p = put_u64(p, store);
        *p++ = ',';
        size_t rl = strlen(region);
        bool quote = memchr(region, ',', rl) != NULL;
        if (quote)
            *p++ = '"';
        memcpy(p, region, rl);
        p += rl;
        if (quote)
            *p++ = '"';
        memcpy(p, ",product-", 9);
        p += 9;
        for (uint64_t d = 1000; d; d /= 10)
            *p++ = (char)('0' + (product / d) % 10);
        *p++ = ',';
        if (!qty_null) {
            if (qty < 0)
                *p++ = '-';
            p = put_u64(p, (uint64_t)(qty < 0 ? -qty : qty));
        }
        *p++ = ',';
        p = put_u64(p, cents / 100);
        *p++ = '.';
        *p++ = (char)('0' + (cents / 10) % 10);
        *p++ = (char)('0' + cents % 10);
        *p++ = '\n';
        /* cents / 100.0 is the double nearest the decimal text, as a correct
         * CSV parser reads it. */
        if (tsr_bench_aggmap_add(expect, (int64_t)store, qty, !qty_null, (double)cents / 100.0) !=
            0) {
            tsr_bench_error("out of memory writing %s", path);
            goto cleanup;
        }
    }
    size_t len = (size_t)(p - buf);
    if (fwrite(buf, 1, len, f) != len)
        goto write_error;
    bytes += len;
    if (fclose(f) != 0) {
        f = NULL;
        goto write_error;
    }
    f = NULL;
    *bytes_out = bytes;
    rc = 0;
    goto cleanup;
write_error:
    tsr_bench_error("cannot write %s (disk full?)", path);
cleanup:
    if (f)
        fclose(f);
    tsr_mem_free(NULL, buf);
    return rc;
}

int tsr_bench_suite_csv(const tsr_bench_opts_t *opts)
{
    int code = TSR_BENCH_EXIT_FAIL;
    size_t n = opts->rows ? (size_t)opts->rows : 5000000;
    uint64_t nkeys = opts->keys ? opts->keys : 1000;
    unsigned threads = opts->threads ? opts->threads : tsr_cpu_count();
    unsigned repeat = opts->repeat ? opts->repeat : 5;
    uint64_t seed = opts->seed_given ? opts->seed : 1;
    tsr_bench_report_t rep;
    tsr_bench_aggmap_t expect = {0};
    tsr_context_t *ctx = NULL;
    tsr_result_t *res = NULL;
    double *load = NULL, *e2e = NULL, *load_cpu = NULL, *e2e_cpu = NULL;
    char dir[512] = "", path[600] = "";
    size_t bytes = 0;
    tsr_status_t st;

    if (tsr_bench_report_init(&rep, "csv", opts->json, stdout) != 0) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_param_int(&rep, "rows", (int64_t)n);
    tsr_bench_report_param_int(&rep, "keys", (int64_t)nkeys);
    tsr_bench_report_param_int(&rep, "threads", threads);
    tsr_bench_report_param_int(&rep, "repeat", repeat);
    tsr_bench_report_param_int(&rep, "seed", (int64_t)seed);
    tsr_bench_report_param_str(&rep, "query", CSV_SQL);

    load = tsr_mem_calloc(NULL, repeat, sizeof(double));
    e2e = tsr_mem_calloc(NULL, repeat, sizeof(double));
    load_cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    e2e_cpu = tsr_mem_calloc(NULL, repeat, sizeof(double));
    if (!load || !e2e || !load_cpu || !e2e_cpu ||
        tsr_bench_aggmap_init(&expect, nkeys < 1000000 ? nkeys : 1000000)) {
        tsr_bench_error("out of memory");
        goto cleanup;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/tessera-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        tsr_bench_error("cannot create a temporary directory like %s", dir);
        dir[0] = '\0';
        goto cleanup;
    }
    snprintf(path, sizeof(path), "%s/sales.csv", dir);
    tsr_bench_progress("csv: writing %zu rows to %s", n, path);
    if (write_sales_csv(path, n, nkeys, seed, &expect, &bytes) != 0)
        goto cleanup;
    tsr_bench_progress_clear();
    tsr_bench_report_param_int(&rep, "bytes", (int64_t)bytes);
    tsr_bench_report_title(&rep, "csv: %zu rows (%.1f MB), %llu stores, %u threads, best of %u", n,
                           (double)bytes / 1e6, (unsigned long long)nkeys, threads, repeat);

    /* ---- load only: re-register the same file into one context ---- */
    tsr_context_params_t params = {.threads = threads};
    st = tsr_context_create(&params, &ctx);
    if (st != TSR_OK) {
        code = tsr_bench_engine_error(NULL, st, "creating the context");
        goto cleanup;
    }
    for (unsigned i = 0; i < repeat; i++) {
        tsr_bench_progress("csv: load, run %u/%u", i + 1, repeat);
        double c0 = tsr_bench_cpu_now();
        double t0 = tsr_bench_now();
        st = tsr_table_register_csv(ctx, "sales", path, NULL);
        if (st == TSR_OK) /* every column */
            st = tsr_query(ctx, "SELECT * FROM sales LIMIT 1", &res);
        tsr_result_destroy(res);
        res = NULL;
        load[i] = tsr_bench_now() - t0;
        load_cpu[i] = tsr_bench_cpu_now() - c0;
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "loading the CSV");
            goto cleanup;
        }
    }
    tsr_context_destroy(ctx); /* frees the table before the end-to-end runs */
    ctx = NULL;
    tsr_bench_progress_clear();
    double mb = (double)bytes / 1e6;
    tsr_bench_stats_t l = tsr_bench_stats(load, repeat);
    if (tsr_bench_emit(&rep, "load_s", "CSV load time (best)", l.best, "s") ||
        tsr_bench_emit(&rep, "load_median_s", "CSV load time (median)", l.median, "s") ||
        tsr_bench_emit(&rep, "load_mb_per_s", "CSV load (best)", mb / l.best, "MB/s") ||
        tsr_bench_emit(&rep, "load_rows_per_s", "CSV load (best)", (double)n / l.best, "rows/s") ||
        tsr_bench_emit(&rep, "load_cpu_s", "CSV load CPU time, all threads (best)",
                       tsr_bench_stats(load_cpu, repeat).best, "s"))
        goto cleanup;

    /* ---- end to end: fresh context, load, query ---- */
    for (unsigned i = 0; i < repeat; i++) {
        tsr_bench_progress("csv: load + query, run %u/%u", i + 1, repeat);
        double c0 = tsr_bench_cpu_now();
        double t0 = tsr_bench_now();
        st = tsr_context_create(&params, &ctx);
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(NULL, st, "creating the context");
            goto cleanup;
        }
        st = tsr_table_register_csv(ctx, "sales", path, NULL);
        if (st == TSR_OK)
            st = tsr_query(ctx, CSV_SQL, &res);
        e2e[i] = tsr_bench_now() - t0;
        e2e_cpu[i] = tsr_bench_cpu_now() - c0;
        if (st != TSR_OK) {
            code = tsr_bench_engine_error(ctx, st, "loading the CSV and running the query");
            goto cleanup;
        }
        if (tsr_bench_verify_groupby(res, &expect) != 0)
            goto cleanup;
        tsr_result_destroy(res);
        res = NULL;
        tsr_context_destroy(ctx);
        ctx = NULL;
    }
    tsr_bench_progress_clear();

    tsr_bench_stats_t e = tsr_bench_stats(e2e, repeat);
    if (tsr_bench_emit(&rep, "e2e_s", "load + group-by time (best)", e.best, "s") ||
        tsr_bench_emit(&rep, "e2e_median_s", "load + group-by time (median)", e.median, "s") ||
        tsr_bench_emit(&rep, "e2e_mb_per_s", "load + group-by (best)", mb / e.best, "MB/s") ||
        tsr_bench_emit(&rep, "e2e_rows_per_s", "load + group-by (best)", (double)n / e.best,
                       "rows/s") ||
        tsr_bench_emit(&rep, "e2e_cpu_s", "load + group-by CPU time (best)",
                       tsr_bench_stats(e2e_cpu, repeat).best, "s"))
        goto cleanup;
    tsr_bench_report_note(&rep, "query: %s", CSV_SQL);
    tsr_bench_report_note(&rep,
                          "verified: all %u results match sums kept while writing "
                          "(%zu groups)",
                          repeat, expect.n);
    code = TSR_BENCH_EXIT_OK;
cleanup:
    tsr_bench_progress_clear();
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    if (path[0])
        unlink(path);
    if (dir[0])
        rmdir(dir);
    tsr_bench_aggmap_free(&expect);
    tsr_mem_free(NULL, e2e_cpu);
    tsr_mem_free(NULL, load_cpu);
    tsr_mem_free(NULL, e2e);
    tsr_mem_free(NULL, load);
    tsr_bench_report_fini(&rep);
    return code;
}
