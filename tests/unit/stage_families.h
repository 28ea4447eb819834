/*
 * stage_families.h - the kernel families run from host memory on a device
 * under test and on the cpu device, outputs compared element by element
 * (poisoned past their ends): what test_cuda_stage.c and
 * test_opencl_stage.c run with tiny staging buffers, so every copy crosses
 * many pieces in rotation. Include after <cmocka.h> and dev_test.h.
 */
#ifndef TSR_TESTS_STAGE_FAMILIES_H
#define TSR_TESTS_STAGE_FAMILIES_H

#include "device/filter.h"
#include "device/hashagg.h"
#include "device/hashjoin.h"
#include "device/partition.h"

#define OK(call)                                                                                   \
    do {                                                                                           \
        tsr_error_t e_;                                                                            \
        tsr_error_clear(&e_);                                                                      \
        tsr_status_t rc_ = (call);                                                                 \
        if (rc_ != TSR_OK)                                                                         \
            fail_msg("%s: %d %s", #call, (int)rc_, e_.message);                                    \
    } while (0)
#define ERR (&e_)

/* Sizes every family runs at: empty, one row, primes around and past many
 * staging pieces and launches. */
static const size_t SIZES[] __attribute__((unused)) = {0, 1, 2, 63, 64, 97, 1021, 8191, 20011};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

/* ---- the kernel families from host memory, against the cpu device --------------------- */

static inline void st_agg(tsr_dev_t *cpu, tsr_dev_t *dut, size_t n, uint64_t seed)
{
    /* COUNT(*), SUM(v), MIN(v), MAX(d) by one key with NULLs */
    tsr_dev_hashagg_spec_t spec;
    memset(&spec, 0, sizeof(spec));
    spec.nkeys = 1;
    spec.naggs = 4;
    spec.aggs[0] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64};
    spec.aggs[1] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_SUM, TSR_TYPE_INT64};
    spec.aggs[2] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_MIN, TSR_TYPE_INT64};
    spec.aggs[3] = (tsr_dev_agg_spec_t){TSR_DEV_AGG_MAX, TSR_TYPE_DOUBLE};
    spec.expected_groups = 16;
    uint64_t *keys = dev_xalloc(n * 8 + 8), *kv = dev_validity(n, 5, &seed);
    int64_t *iv = dev_xalloc(n * 8 + 8);
    double *dv = dev_xalloc(n * 8 + 8);
    uint64_t *vv = dev_validity(n, 10, &seed);
    for (size_t i = 0; i < n; i++) {
        keys[i] = dev_rng_below(&seed, 300);
        iv[i] = (int64_t)dev_rng_below(&seed, 2000001) - 1000000;
        dv[i] = (double)(int64_t)dev_rng_below(&seed, 1000) / 8.0;
    }
    tsr_dev_hashagg_rows_t rows = {.n = n,
                                   .keys = {keys},
                                   .key_valid = {kv},
                                   .values = {NULL, iv, iv, dv},
                                   .valid = {NULL, vv, NULL, vv}};
    size_t ng[2] = {0, 0};
    uint64_t *ok[2], *okv[2], *st[2][TSR_DEV_HASHAGG_MAX_AGGS], *ct[2][TSR_DEV_HASHAGG_MAX_AGGS];
    tsr_dev_t *devs[2] = {cpu, dut};
    for (int d = 0; d < 2; d++) {
        tsr_dev_hashagg_t *ha = NULL;
        OK(tsr_dev_hashagg_create(devs[d], &spec, &ha, ERR));
        if (n)
            OK(tsr_dev_hashagg_update(ha, NULL, &rows, ERR));
        ng[d] = tsr_dev_hashagg_ngroups(ha);
        ok[d] = dev_poisoned64(ng[d] + 1);
        okv[d] = dev_poisoned64((ng[d] + 63) / 64 + 1);
        tsr_dev_hashagg_out_t out;
        memset(&out, 0, sizeof(out));
        out.keys[0] = ok[d];
        out.key_valid[0] = okv[d];
        for (size_t a = 0; a < spec.naggs; a++) {
            st[d][a] = dev_poisoned64(ng[d] + 1);
            ct[d][a] = dev_poisoned64(ng[d] + 1);
            out.counts[a] = (int64_t *)ct[d][a];
            if (a > 0)
                out.values[a] = st[d][a];
        }
        if (ng[d])
            OK(tsr_dev_hashagg_result(ha, NULL, &out, ERR));
        tsr_dev_hashagg_destroy(ha);
    }
    assert_int_equal(ng[0], ng[1]);
    /* groups may come in any order: match by key (NULL key: validity) */
    for (size_t g = 0; g < ng[1]; g++) {
        bool null1 = !dev_bit(okv[1], g);
        size_t h = 0;
        for (; h < ng[0]; h++)
            if (!dev_bit(okv[0], h) == null1 && (null1 || ok[0][h] == ok[1][g]))
                break;
        if (h == ng[0])
            fail_msg("n=%zu: device group %zu (key %llu) not in the cpu result", n, g,
                     (unsigned long long)ok[1][g]);
        for (size_t a = 0; a < spec.naggs; a++)
            if (st[0][a][h] != st[1][a][g] || ct[0][a][h] != ct[1][a][g])
                fail_msg("n=%zu: group %zu aggregate %zu: %llx, cpu %llx", n, g, a,
                         (unsigned long long)st[1][a][g], (unsigned long long)st[0][a][h]);
    }
    for (int d = 0; d < 2; d++) {
        if (ok[d][ng[d]] != DEV_POISON64 || ct[d][0][ng[d]] != DEV_POISON64 ||
            st[d][1][ng[d]] != DEV_POISON64)
            fail_msg("n=%zu: result written past %zu groups", n, ng[d]);
        free(ok[d]);
        free(okv[d]);
        for (size_t a = 0; a < spec.naggs; a++) {
            free(st[d][a]);
            free(ct[d][a]);
        }
    }
    free(keys);
    free(kv);
    free(iv);
    free(dv);
    free(vv);
}

typedef struct pair {
    uint32_t p, b;
} pair_t;

static inline int pair_cmp(const void *x, const void *y)
{
    const pair_t *a = x, *b = y;
    return a->p != b->p ? (a->p < b->p ? -1 : 1) : a->b != b->b ? (a->b < b->b ? -1 : 1) : 0;
}

static inline void st_join(tsr_dev_t *cpu, tsr_dev_t *dut, size_t n, uint64_t seed)
{
    size_t nb = n / 2 + 1, np = n;
    int64_t *bk = dev_xalloc(nb * 8), *pk = dev_xalloc(np * 8 + 8);
    uint64_t *bv = dev_validity(nb, 10, &seed), *pv = dev_validity(np, 10, &seed);
    for (size_t i = 0; i < nb; i++)
        bk[i] = (int64_t)dev_rng_below(&seed, nb / 3 + 2);
    for (size_t i = 0; i < np; i++)
        pk[i] = (int64_t)dev_rng_below(&seed, nb / 2 + 5);
    tsr_dev_hashjoin_spec_t js = {.key = TSR_DEV_JOIN_KEY_I64, .launch_rows = 640,
                                  .window_pairs = 1000};
    tsr_dev_join_keys_t bks = {.n = nb, .keys = bk, .valid = bv};
    tsr_dev_join_keys_t pks = {.n = np, .keys = pk, .valid = pv};
    size_t npairs[2] = {0, 0};
    pair_t *pairs[2] = {NULL, NULL};
    tsr_dev_t *devs[2] = {cpu, dut};
    for (int d = 0; d < 2; d++) {
        tsr_dev_hashjoin_t *hj = NULL;
        OK(tsr_dev_hashjoin_create(devs[d], &js, &hj, ERR));
        OK(tsr_dev_hashjoin_build(hj, NULL, &bks, ERR));
        OK(tsr_dev_hashjoin_probe(hj, NULL, &pks, &npairs[d], ERR));
        uint32_t *pr = dev_poisoned32(npairs[d] + 1), *br = dev_poisoned32(npairs[d] + 1);
        if (npairs[d])
            OK(tsr_dev_hashjoin_pairs(hj, NULL, pr, br, ERR));
        if (pr[npairs[d]] != DEV_POISON32 || br[npairs[d]] != DEV_POISON32)
            fail_msg("n=%zu: pairs written past %zu", n, npairs[d]);
        pairs[d] = dev_xalloc((npairs[d] + 1) * sizeof(pair_t));
        for (size_t i = 0; i < npairs[d]; i++)
            pairs[d][i] = (pair_t){pr[i], br[i]};
        qsort(pairs[d], npairs[d], sizeof(pair_t), pair_cmp);
        free(pr);
        free(br);
        tsr_dev_hashjoin_destroy(hj);
    }
    assert_int_equal(npairs[0], npairs[1]);
    for (size_t i = 0; i < npairs[0]; i++)
        if (pair_cmp(&pairs[0][i], &pairs[1][i]) != 0)
            fail_msg("n=%zu: pair %zu (%u,%u), cpu (%u,%u)", n, i, pairs[1][i].p, pairs[1][i].b,
                     pairs[0][i].p, pairs[0][i].b);
    free(pairs[0]);
    free(pairs[1]);
    free(bk);
    free(pk);
    free(bv);
    free(pv);
}

static inline void st_filter(tsr_dev_t *cpu, tsr_dev_t *dut, size_t n, uint64_t seed)
{
    int64_t *a = dev_xalloc(n * 8 + 8);
    double *b = dev_xalloc(n * 8 + 8);
    uint64_t *av = dev_validity(n, 7, &seed);
    for (size_t i = 0; i < n; i++) {
        a[i] = (int64_t)dev_rng_below(&seed, 100);
        b[i] = (double)dev_rng_below(&seed, 1000) / 1000.0;
    }
    tsr_dev_filter_spec_t fs = {.ncols = 2,
                                .types = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE},
                                .ninstrs = 3,
                                .prog = {{.op = TSR_DEV_PRED_LT, .column = 0, .i = 40},
                                         {.op = TSR_DEV_PRED_GE, .column = 1, .d = 0.75},
                                         {.op = TSR_DEV_PRED_OR}},
                                .launch_rows = 512};
    tsr_dev_filter_cols_t fc = {.n = n, .values = {a, b}, .valid = {av, NULL}};
    size_t nsel[2] = {0, 0};
    uint32_t *sel[2];
    tsr_dev_t *devs[2] = {cpu, dut};
    for (int d = 0; d < 2; d++) {
        tsr_dev_filter_t *f = NULL;
        sel[d] = dev_poisoned32(n + 1);
        OK(tsr_dev_filter_create(devs[d], &fs, &f, ERR));
        OK(tsr_dev_filter_run(f, NULL, &fc, sel[d], &nsel[d], ERR));
        tsr_dev_filter_destroy(f);
        for (size_t i = nsel[d]; i <= n; i++)
            if (sel[d][i] != DEV_POISON32)
                fail_msg("n=%zu: selection written at %zu past %zu", n, i, nsel[d]);
    }
    assert_int_equal(nsel[0], nsel[1]);
    for (size_t i = 0; i < nsel[0]; i++)
        if (sel[0][i] != sel[1][i])
            fail_msg("n=%zu: selected row %zu is %u, cpu %u", n, i, sel[1][i], sel[0][i]);
    free(sel[0]);
    free(sel[1]);
    free(a);
    free(b);
    free(av);
}

static inline void st_partition(tsr_dev_t *cpu, tsr_dev_t *dut, size_t n, uint64_t seed)
{
    enum { P = 13 };
    uint64_t *k = dev_xalloc(n * 8 + 8), *kv = dev_validity(n, 5, &seed);
    for (size_t i = 0; i < n; i++)
        k[i] = dev_rng(&seed);
    tsr_dev_partition_spec_t ps = {.nparts = P, .nkeys = 1, .launch_rows = 1024};
    tsr_dev_partition_in_t pin = {.n = n, .keys = {k}, .key_valid = {kv}};
    uint32_t *rows[2];
    uint64_t *offs[2], *kout[2];
    tsr_dev_t *devs[2] = {cpu, dut};
    for (int d = 0; d < 2; d++) {
        rows[d] = dev_poisoned32(n + 1);
        offs[d] = dev_poisoned64(P + 2);
        kout[d] = dev_poisoned64(n + 1);
        tsr_dev_partition_out_t pout = {.rows = rows[d], .offsets = offs[d], .keys = {kout[d]}};
        tsr_dev_partition_t *pa = NULL;
        OK(tsr_dev_partition_create(devs[d], &ps, &pa, ERR));
        OK(tsr_dev_partition_run(pa, NULL, &pin, &pout, ERR));
        tsr_dev_partition_destroy(pa);
        if (rows[d][n] != DEV_POISON32 || kout[d][n] != DEV_POISON64 ||
            offs[d][P + 1] != DEV_POISON64)
            fail_msg("n=%zu: partition output written past its end", n);
    }
    for (size_t p = 0; p <= P; p++)
        if (offs[0][p] != offs[1][p])
            fail_msg("n=%zu: offset %zu is %llu, cpu %llu", n, p, (unsigned long long)offs[1][p],
                     (unsigned long long)offs[0][p]);
    for (size_t i = 0; i < n; i++)
        if (rows[0][i] != rows[1][i] || kout[0][i] != kout[1][i])
            fail_msg("n=%zu: output row %zu is %u (key %llx), cpu %u (key %llx)", n, i, rows[1][i],
                     (unsigned long long)kout[1][i], rows[0][i], (unsigned long long)kout[0][i]);
    for (int d = 0; d < 2; d++) {
        free(rows[d]);
        free(offs[d]);
        free(kout[d]);
    }
    free(k);
    free(kv);
}

#endif /* TSR_TESTS_STAGE_FAMILIES_H */
