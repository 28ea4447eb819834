/*
 * kernel_ops.c - the hash join, filter and hash partitioning figures of
 * `tessera-bench kernels` on one device (kernel_ops.h). Inputs come from
 * host memory, the families' only way in, so on a GPU the figures include
 * the PCIe transfers (double-buffered where the backend does that).
 *
 *   join        build over nb = n/4 distinct BIGINT keys (a random
 *               permutation of 0..nb-1), then probe n keys uniform in
 *               [0, 2nb): about half match, each exactly one build row;
 *               build rows/s, probe rows/s (count + pairs)
 *   filter      `a < K AND b >= 0.5` on a BIGINT column (5% NULL) and a
 *               DOUBLE column, about 25% selected; rows/s and GB/s of
 *               input (16 B/row, bitmaps aside)
 *   partition   one BIGINT key column into P = 64 and P = 1024 partitions,
 *               row numbers out; rows/s and GB/s (8 B read + 4 B written)
 *
 * The first run's result is checked against an independent host model in O(n)
 * (join: each pair's keys are equal and the pair count is the number of
 * probe keys below nb; filter: the selection is exactly the rows where the
 * predicate holds; partition: offsets are the host's counts and each
 * partition lists its rows in ascending order), so a wrong answer exits 1;
 * later runs are checked by their counts only (the time is the best run's).
 */
#include <stdlib.h>
#include <string.h>

#include "device/filter.h"
#include "device/hashjoin.h"
#include "device/partition.h"
#include "kernel_ops.h"

typedef struct ko {
    tsr_dev_t *dev;
    size_t n, nb;
    unsigned repeat;
    int64_t *bkeys, *pkeys; /* join */
    int64_t *a;             /* filter */
    double *d;
    uint64_t *avalid;
    uint64_t *pk; /* partition keys */
    uint32_t *out32a, *out32b;
    uint64_t *offsets;
} ko_t;

static uint64_t ko_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)tsr_bench_rand(s) * n) >> 64);
}

int tsr_bench_kernel_emit(tsr_bench_report_t *r, const char *name, const char *label, double value,
                          const char *unit)
{
    return tsr_bench_emit(r, name, label, value, unit) != 0 ? TSR_BENCH_EXIT_FAIL : 0;
}

int tsr_bench_kernel_fail(const char *what, tsr_status_t rc, const tsr_error_t *err)
{
    tsr_bench_progress_clear();
    fprintf(stderr, "tessera: error: %s: %s\n", what,
            err->message[0] ? err->message : tsr_status_str(rc));
    if (err->hint[0])
        fprintf(stderr, "  hint: %s\n", err->hint);
    int code = tsr_status_exit_code(rc);
    return code == 0 ? TSR_BENCH_EXIT_FAIL : code;
}

static int ko_wrong(const char *what)
{
    tsr_bench_progress_clear();
    tsr_bench_error("kernels: wrong %s result on the device", what);
    return TSR_BENCH_EXIT_FAIL;
}

static void ko_free(ko_t *k)
{
    free(k->bkeys);
    free(k->pkeys);
    free(k->a);
    free(k->d);
    free(k->avalid);
    free(k->pk);
    free(k->out32a);
    free(k->out32b);
    free(k->offsets);
}

static int ko_data(ko_t *k, uint64_t seed)
{
    size_t n = k->n, nb = k->nb, words = (n + 63) / 64;
    k->bkeys = malloc((nb ? nb : 1) * 8);
    k->pkeys = malloc(n * 8);
    k->a = malloc(n * 8);
    k->d = malloc(n * 8);
    k->avalid = calloc(words ? words : 1, 8);
    k->pk = malloc(n * 8);
    k->out32a = malloc(n * 4);
    k->out32b = malloc(n * 4);
    k->offsets = malloc((1024 + 1) * 8);
    if (!k->bkeys || !k->pkeys || !k->a || !k->d || !k->avalid || !k->pk || !k->out32a ||
        !k->out32b || !k->offsets)
        return -1;
    uint64_t s = seed ^ 0x6a09e667f3bcc909ULL;
    for (size_t i = 0; i < nb; i++)
        k->bkeys[i] = (int64_t)i;
    for (size_t i = nb; i > 1; i--) { /* Fisher-Yates */
        size_t j = ko_below(&s, i);
        int64_t t = k->bkeys[i - 1];
        k->bkeys[i - 1] = k->bkeys[j];
        k->bkeys[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        k->pkeys[i] = (int64_t)ko_below(&s, 2 * (uint64_t)nb);
        k->a[i] = (int64_t)ko_below(&s, 1000);
        k->d[i] = (double)ko_below(&s, 1024) / 1024.0;
        if (ko_below(&s, 100) >= 5)
            k->avalid[i >> 6] |= (uint64_t)1 << (i & 63);
        k->pk[i] = tsr_bench_rand(&s);
    }
    return 0;
}

/* ---- join ---------------------------------------------------------------------------- */

static int ko_join(ko_t *k, tsr_bench_report_t *r)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_hashjoin_spec_t spec = {.key = TSR_DEV_JOIN_KEY_I64};
    double best_build = 1e300, best_probe = 1e300;
    size_t want = 0;
    for (size_t i = 0; i < k->n; i++)
        want += (uint64_t)k->pkeys[i] < k->nb;
    for (unsigned it = 0; it < k->repeat; it++) {
        tsr_dev_hashjoin_t *hj = NULL;
        tsr_status_t rc = tsr_dev_hashjoin_create(k->dev, &spec, &hj, &err);
        if (rc != TSR_OK)
            return tsr_bench_kernel_fail("join", rc, &err);
        tsr_dev_join_keys_t b = {.n = k->nb, .keys = k->bkeys};
        tsr_dev_join_keys_t p = {.n = k->n, .keys = k->pkeys};
        size_t npairs = 0;
        double t0 = tsr_bench_now();
        rc = tsr_dev_hashjoin_build(hj, NULL, &b, &err);
        double t1 = tsr_bench_now();
        if (rc == TSR_OK)
            rc = tsr_dev_hashjoin_probe(hj, NULL, &p, &npairs, &err);
        if (rc == TSR_OK && npairs && npairs <= k->n)
            rc = tsr_dev_hashjoin_pairs(hj, NULL, k->out32a, k->out32b, &err);
        double t2 = tsr_bench_now();
        tsr_dev_hashjoin_destroy(hj);
        if (rc != TSR_OK)
            return tsr_bench_kernel_fail("join", rc, &err);
        if (npairs != want)
            return ko_wrong("join");
        for (size_t i = 0; it == 0 && i < npairs; i++) {
            uint32_t pr = k->out32a[i], br = k->out32b[i];
            if (pr >= k->n || br >= k->nb || k->pkeys[pr] != k->bkeys[br] ||
                (i && pr <= k->out32a[i - 1]))
                return ko_wrong("join");
        }
        best_build = t1 - t0 < best_build ? t1 - t0 : best_build;
        best_probe = t2 - t1 < best_probe ? t2 - t1 : best_probe;
    }
    int rc = tsr_bench_kernel_emit(r, "join_build_rows_per_s", "join build (distinct BIGINT keys)",
                                   (double)k->nb / best_build, "rows/s");
    if (rc == 0)
        rc = tsr_bench_kernel_emit(r, "join_probe_rows_per_s",
                                   "join probe, count + pairs (half match)",
                                   (double)k->n / best_probe, "rows/s");
    return rc;
}

/* ---- filter -------------------------------------------------------------------------- */

static int ko_filter(ko_t *k, tsr_bench_report_t *r, double copy_gbps)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_filter_spec_t spec = {
        .ncols = 2,
        .types = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE},
        .ninstrs = 3,
        .prog = {{.op = TSR_DEV_PRED_LT, .column = 0, .i = 500},
                 {.op = TSR_DEV_PRED_GE, .column = 1, .d = 0.5},
                 {.op = TSR_DEV_PRED_AND}},
    };
    tsr_dev_filter_cols_t cols = {.n = k->n, .values = {k->a, k->d}, .valid = {k->avalid, NULL}};
    tsr_dev_filter_t *f = NULL;
    tsr_status_t rc = tsr_dev_filter_create(k->dev, &spec, &f, &err);
    if (rc != TSR_OK)
        return tsr_bench_kernel_fail("filter", rc, &err);
    double best = 1e300;
    for (unsigned it = 0; it < k->repeat && rc == TSR_OK; it++) {
        size_t nsel = 0;
        double t0 = tsr_bench_now();
        rc = tsr_dev_filter_run(f, NULL, &cols, k->out32a, &nsel, &err);
        double t1 = tsr_bench_now();
        if (rc != TSR_OK)
            break;
        size_t j = it ? nsel : 0; /* the first run is checked in full */
        for (size_t i = 0; it == 0 && i < k->n; i++) {
            bool valid = (k->avalid[i >> 6] >> (i & 63)) & 1u;
            if (valid && k->a[i] < 500 && k->d[i] >= 0.5) {
                if (j >= nsel || k->out32a[j] != i) {
                    tsr_dev_filter_destroy(f);
                    return ko_wrong("filter");
                }
                j++;
            }
        }
        if (j != nsel) {
            tsr_dev_filter_destroy(f);
            return ko_wrong("filter");
        }
        best = t1 - t0 < best ? t1 - t0 : best;
    }
    tsr_dev_filter_destroy(f);
    if (rc != TSR_OK)
        return tsr_bench_kernel_fail("filter", rc, &err);
    double rows_s = (double)k->n / best, gbps = 16 * rows_s / 1e9;
    int e = tsr_bench_kernel_emit(r, "filter_rows_per_s",
                                  "filter a < K AND b >= 0.5 (25% selected)", rows_s, "rows/s");
    if (e == 0)
        e = tsr_bench_kernel_emit(r, "filter_bytes_per_s", "  input read (16 B/row)", gbps, "GB/s");
    if (e == 0)
        e = tsr_bench_kernel_emit(r, "filter_copy_fraction", "  as a fraction of copy bandwidth",
                                  gbps / copy_gbps, "x");
    return e;
}

/* ---- partition ----------------------------------------------------------------------- */

static int ko_partition(ko_t *k, tsr_bench_report_t *r, size_t P, double copy_gbps)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_dev_partition_spec_t spec = {.nparts = P, .nkeys = 1};
    tsr_dev_partition_in_t in = {.n = k->n, .keys = {k->pk}};
    tsr_dev_partition_out_t out = {.rows = k->out32a, .offsets = k->offsets};
    uint64_t *count = calloc(P + 1, 8);
    if (!count) {
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    for (size_t i = 0; i < k->n; i++)
        count[tsr_dev_partition_of(tsr_dev_partition_hash(&spec, &in, i), P) + 1]++;
    for (size_t p = 0; p < P; p++)
        count[p + 1] += count[p]; /* the expected offsets */
    tsr_dev_partition_t *pa = NULL;
    tsr_status_t rc = tsr_dev_partition_create(k->dev, &spec, &pa, &err);
    double best = 1e300;
    bool wrong = false;
    for (unsigned it = 0; it < k->repeat && rc == TSR_OK && !wrong; it++) {
        double t0 = tsr_bench_now();
        rc = tsr_dev_partition_run(pa, NULL, &in, &out, &err);
        double t1 = tsr_bench_now();
        if (rc != TSR_OK)
            break;
        for (size_t p = 0; p <= P && !wrong; p++)
            wrong = k->offsets[p] != count[p];
        for (size_t p = 0; it == 0 && p < P && !wrong; p++)
            for (uint64_t j = count[p]; j < count[p + 1] && !wrong; j++) {
                uint32_t row = k->out32a[j];
                wrong = row >= k->n || (j > count[p] && row <= k->out32a[j - 1]) ||
                        tsr_dev_partition_of(tsr_dev_partition_hash(&spec, &in, row), P) != p;
            }
        best = t1 - t0 < best ? t1 - t0 : best;
    }
    tsr_dev_partition_destroy(pa);
    free(count);
    if (rc != TSR_OK)
        return tsr_bench_kernel_fail("partition", rc, &err);
    if (wrong)
        return ko_wrong("partition");
    char name[64], label[96];
    double rows_s = (double)k->n / best, gbps = 12 * rows_s / 1e9;
    snprintf(name, sizeof(name), "partition%zu_rows_per_s", P);
    snprintf(label, sizeof(label), "hash partitioning, P = %zu (row numbers)", P);
    int e = tsr_bench_kernel_emit(r, name, label, rows_s, "rows/s");
    snprintf(name, sizeof(name), "partition%zu_bytes_per_s", P);
    if (e == 0)
        e = tsr_bench_kernel_emit(r, name, "  read + written (12 B/row)", gbps, "GB/s");
    snprintf(name, sizeof(name), "partition%zu_copy_fraction", P);
    if (e == 0)
        e = tsr_bench_kernel_emit(r, name, "  as a fraction of copy bandwidth", gbps / copy_gbps,
                                  "x");
    return e;
}

int tsr_bench_kernel_ops(tsr_bench_report_t *r, tsr_dev_t *dev, size_t n, unsigned repeat,
                         uint64_t seed, double copy_gbps)
{
    ko_t k;
    memset(&k, 0, sizeof(k));
    k.dev = dev;
    k.n = n < TSR_BENCH_OPS_MAX_ROWS ? n : TSR_BENCH_OPS_MAX_ROWS;
    k.nb = k.n / 4 ? k.n / 4 : 1;
    k.repeat = repeat ? repeat : 1;
    if (k.n == 0)
        return 0;
    tsr_bench_progress("generating %zu rows for join, filter, partition", k.n);
    int rc = ko_data(&k, seed);
    tsr_bench_progress_clear();
    if (rc != 0) {
        ko_free(&k);
        tsr_bench_error("out of memory");
        return TSR_BENCH_EXIT_FAIL;
    }
    if (copy_gbps <= 0)
        copy_gbps = 1;
    if ((rc = ko_join(&k, r)) == 0 && (rc = ko_filter(&k, r, copy_gbps)) == 0 &&
        (rc = ko_partition(&k, r, 64, copy_gbps)) == 0)
        rc = ko_partition(&k, r, 1024, copy_gbps);
    if (rc == 0)
        tsr_bench_report_note(r, "join, filter, partition: %zu rows from host memory, verified",
                              k.n);
    ko_free(&k);
    return rc;
}
