/*
 * test_cuda_stage.c - pinned staging of host copies on CUDA
 * (engine/device/cuda_stage.c) and the CUDA kernel families fed through it
 * from host memory, checked against the cpu device's results, element by
 * element into poisoned outputs.
 *
 * Built twice (tests/CMakeLists.txt), like test_cuda.c: against the real
 * runtime (skipped without a CUDA device: exit 77) and against the CUDA
 * emulator (tests/cudaemu), where the stream workers get random delays
 * (tsr_emu_set_jitter) and the staging buffers are made tiny, so every copy
 * crosses many pieces in rotation and any missing wait (a staging buffer
 * refilled before its DMA ran, a piece copied out before its DMA landed)
 * corrupts data the checks see. Emulator only: a failed pinned allocation
 * falls back to pageable copies, says why, and is retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "stage_families.h"

#include "device/filter.h"
#include "device/hashagg.h"
#include "device/hashjoin.h"
#include "device/partition.h"

#ifdef TSR_HAVE_CUDA
#include "device/cuda_internal.h"
#endif
#ifdef TSR_CUDA_EMU
#include "emu.h"
#endif

static int st_setup(void **state)
{
    return dev_pair_setup(state, TSR_DEVICE_CUDA);
}

static int st_teardown(void **state)
{
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(0);
#endif
    return dev_pair_teardown(state);
}

static tsr_dev_t *st_cuda(void **state)
{
    return dev_pair_need(*state);
}

#ifdef TSR_HAVE_CUDA

/* Small pieces so the rotation is exercised (on a GPU too: correctness is
 * the same, only slower); count buffers in rotation. */
static void st_config(tsr_dev_t *dev, size_t piece, unsigned count)
{
    OK(tsr_dev_cuda_stage_config(dev, piece, count, ERR));
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(1);
#endif
}

static void st_reset(tsr_dev_t *dev)
{
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(0);
#endif
    OK(tsr_dev_cuda_stage_config(dev, 16u << 10, 3, ERR));
}

static void fill_random(uint8_t *p, size_t n, uint64_t *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)dev_rng(seed);
}

static void expect_bytes(const uint8_t *want, const uint8_t *got, size_t n, const char *what,
                         size_t size)
{
    for (size_t i = 0; i < n; i++)
        if (want[i] != got[i])
            fail_msg("%s of %zu bytes: byte %zu is 0x%02x, want 0x%02x", what, size, i, got[i],
                     want[i]);
}

/* Round trips through tsr_dev_write / tsr_dev_read (staged from 4 KiB) and
 * through tsr_dev_cuda_upload / _download directly, on two queues in turn,
 * at offsets, into poisoned memory. */
static void test_round_trips(void **state)
{
    tsr_dev_t *dev = st_cuda(state);
    static const size_t sizes[] = {0, 1, 7, 63, 64, 65, 4093, 4096, 4099, 12289, 65537, 100003};
    static const struct {
        size_t piece;
        unsigned count;
    } cfgs[] = {{4096, 2}, {64, 4}, {65536, 3}};
    tsr_dev_queue_t *q2 = NULL;
    OK(tsr_dev_queue_create(dev, &q2, ERR));
    uint64_t seed = 7;
    size_t max = 100003 + 64;
    uint8_t *src = dev_xalloc(max), *dst = dev_xalloc(max);
    tsr_dev_buf_t *buf = NULL;
    OK(tsr_dev_buf_alloc(dev, max, &buf, ERR));
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        st_config(dev, cfgs[c].piece, cfgs[c].count);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i], off = (i * 8) % 64;
            for (int via = 0; via < 2; via++) {
                fill_random(src, n, &seed);
                uint64_t staged0 = 0, staged1 = 0;
                tsr_dev_cuda_stage_stats(dev, &staged0, NULL);
                tsr_dev_queue_t *qw = via ? q2 : dev->queue, *qr = via ? dev->queue : q2;
                if (n && !via) {
                    OK(tsr_dev_write(qw, buf, off, src, n, false, NULL, ERR));
                } else if (n) {
                    OK(tsr_dev_cuda_upload(dev, tsr_dev_cuda_stream(qw),
                                           (char *)tsr_dev_cuda_ptr(buf) + off, src, n, "test",
                                           ERR));
                }
                /* the source may change once the upload returned */
                uint8_t *copy = dev_xalloc(n ? n : 1);
                memcpy(copy, src, n);
                memset(src, 0x5a, n);
                OK(tsr_dev_queue_finish(qw, ERR));
                memset(dst, 0xa5, max);
                if (n && !via) {
                    OK(tsr_dev_read(qr, buf, off, dst, n, false, NULL, ERR));
                    OK(tsr_dev_queue_finish(qr, ERR));
                } else if (n) {
                    OK(tsr_dev_cuda_download(dev, tsr_dev_cuda_stream(qr), dst,
                                             (const char *)tsr_dev_cuda_ptr(buf) + off, n, "test",
                                             ERR));
                }
                expect_bytes(copy, dst, n, via ? "upload/download" : "write/read", n);
                for (size_t b = n; b < max; b++)
                    if (dst[b] != 0xa5)
                        fail_msg("copy of %zu bytes wrote byte %zu", n, b);
                tsr_dev_cuda_stage_stats(dev, &staged1, NULL);
                if ((via || n >= 4096) && staged1 - staged0 != 2 * (uint64_t)n)
                    fail_msg("%zu-byte copies staged %llu bytes", n,
                             (unsigned long long)(staged1 - staged0));
                free(copy);
            }
        }
    }
    /* pieces of 4 MiB copied by 3 host threads: 9 MiB + 13 bytes each way */
    OK(tsr_dev_cuda_stage_threads(dev, 3, ERR));
    st_config(dev, (size_t)4 << 20, 2);
    size_t big = ((size_t)9 << 20) + 13;
    uint8_t *bs = dev_xalloc(big), *bd = dev_xalloc(big), *bw = dev_xalloc(big);
    fill_random(bs, big, &seed);
    memcpy(bw, bs, big);
    tsr_dev_buf_t *bb = NULL;
    OK(tsr_dev_buf_alloc(dev, big, &bb, ERR));
    OK(tsr_dev_write(dev->queue, bb, 0, bs, big, false, NULL, ERR));
    memset(bs, 0, big);
    memset(bd, 0xa5, big);
    OK(tsr_dev_queue_finish(dev->queue, ERR));
    OK(tsr_dev_read(q2, bb, 0, bd, big, true, NULL, ERR));
    expect_bytes(bw, bd, big, "threaded", big);
    tsr_dev_buf_free(bb);
    free(bs);
    free(bd);
    free(bw);
    OK(tsr_dev_cuda_stage_threads(dev, 1, ERR));
    st_reset(dev);
    assert_string_equal(tsr_dev_cuda_stage_note(dev), "");
    tsr_dev_buf_free(buf);
    tsr_dev_queue_destroy(q2);
    free(src);
    free(dst);
}

static void test_config_bad_args(void **state)
{
    tsr_dev_t *dev = st_cuda(state);
    dev_pair_t *f = *state;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_cuda_stage_config(dev, 4096, 1, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_cuda_stage_config(dev, 4096, TSR_CUDA_STAGE_MAX + 1, &err),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_cuda_stage_config(dev, 100, 2, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_cuda_stage_config(f->cpu, 4096, 2, &err), TSR_ERR_INVALID_ARG);
    /* off: copies are pageable and the note says so */
    OK(tsr_dev_cuda_stage_config(dev, 0, 0, ERR));
    assert_non_null(strstr(tsr_dev_cuda_stage_note(dev), "pinned staging off"));
    uint64_t d0 = 0, d1 = 0, s0 = 0, s1 = 0;
    tsr_dev_cuda_stage_stats(dev, &s0, &d0);
    uint8_t src[8192], dst[8192];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 7);
    tsr_dev_buf_t *buf = NULL;
    OK(tsr_dev_buf_alloc(dev, sizeof(src), &buf, ERR));
    OK(tsr_dev_write(dev->queue, buf, 0, src, sizeof(src), true, NULL, ERR));
    OK(tsr_dev_read(dev->queue, buf, 0, dst, sizeof(dst), true, NULL, ERR));
    expect_bytes(src, dst, sizeof(src), "pageable", sizeof(src));
    tsr_dev_cuda_stage_stats(dev, &s1, &d1);
    assert_int_equal(s1, s0);
    assert_int_equal(d1 - d0, 2 * sizeof(src));
    tsr_dev_buf_free(buf);
    st_reset(dev);
}

/* Every family, every size, with tiny pieces (2 and 3 buffers). */
static void test_families(void **state)
{
    dev_pair_t *f = *state;
    tsr_dev_t *dev = st_cuda(state);
    static const struct {
        size_t piece;
        unsigned count;
    } cfgs[] = {{256, 2}, {1024, 3}};
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        st_config(dev, cfgs[c].piece, cfgs[c].count);
        uint64_t s0 = 0, s1 = 0;
        tsr_dev_cuda_stage_stats(dev, &s0, NULL);
        for (size_t i = 0; i < NSIZES; i++) {
            if (c > 0 && i != 1 && i + 1 != NSIZES)
                continue; /* the second configuration: 1 and 20011 rows */
            uint64_t seed = 1000 * c + i;
            st_agg(f->cpu, dev, SIZES[i], seed);
            st_join(f->cpu, dev, SIZES[i], seed);
            st_filter(f->cpu, dev, SIZES[i], seed);
            st_partition(f->cpu, dev, SIZES[i], seed);
        }
        tsr_dev_cuda_stage_stats(dev, &s1, NULL);
        assert_true(s1 - s0 > 20011 * 8); /* the copies did go through the pool */
    }
    st_reset(dev);
}

/* ---- device-resident inputs (filter run_dev -> hashagg update_dev with the
 * selection; hashjoin build_dev / probe_dev), against the cpu device on
 * host memory ----------------------------------------------------------------------- */

static tsr_dev_buf_t *st_upload(tsr_dev_t *dev, const void *src, size_t bytes)
{
    tsr_dev_buf_t *b = NULL;
    OK(tsr_dev_buf_alloc(dev, bytes ? bytes : 8, &b, ERR));
    if (bytes)
        OK(tsr_dev_write(dev->queue, b, 0, src, bytes, true, NULL, ERR));
    return b;
}

typedef struct kv {
    uint64_t key;
    int64_t count, sum;
} kv_t;

static int kv_cmp(const void *x, const void *y)
{
    const kv_t *a = x, *b = y;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* COUNT(*), SUM(v) by k (no NULL keys) of the rows the caller fed; sorted. */
static kv_t *st_groups(tsr_dev_hashagg_t *ha, size_t *ng)
{
    *ng = tsr_dev_hashagg_ngroups(ha);
    kv_t *r = dev_xalloc((*ng + 1) * sizeof(kv_t));
    uint64_t *keys = dev_poisoned64(*ng), *kv = dev_poisoned64(*ng / 64 + 1);
    uint64_t *cnt = dev_poisoned64(*ng), *scnt = dev_poisoned64(*ng), *sum = dev_poisoned64(*ng);
    tsr_dev_hashagg_out_t out = {.keys = {keys},
                                 .key_valid = {kv},
                                 .counts = {(int64_t *)cnt, (int64_t *)scnt},
                                 .values = {NULL, sum}};
    if (*ng)
        OK(tsr_dev_hashagg_result(ha, NULL, &out, ERR));
    for (size_t g = 0; g < *ng; g++)
        r[g] = (kv_t){keys[g], (int64_t)cnt[g], (int64_t)sum[g]};
    if (keys[*ng] != DEV_POISON64 || sum[*ng] != DEV_POISON64)
        fail_msg("aggregation result written past %zu groups", *ng);
    qsort(r, *ng, sizeof(kv_t), kv_cmp);
    free(keys);
    free(kv);
    free(cnt);
    free(scnt);
    free(sum);
    return r;
}

static void st_dev_inputs(tsr_dev_t *cpu, tsr_dev_t *cuda, size_t n, size_t nused, uint64_t seed)
{
    int64_t *a = dev_xalloc(n * 8 + 8);
    double *b = dev_xalloc(n * 8 + 8);
    uint64_t *k = dev_xalloc(n * 8 + 8), *av = dev_validity(n, 7, &seed);
    for (size_t i = 0; i < n; i++) {
        a[i] = (int64_t)dev_rng_below(&seed, 100);
        b[i] = (double)dev_rng_below(&seed, 1000) / 1000.0;
        k[i] = dev_rng_below(&seed, 61);
    }
    size_t words = (n + 63) / 64;
    tsr_dev_buf_t *da = st_upload(cuda, a, n * 8), *db = st_upload(cuda, b, n * 8);
    tsr_dev_buf_t *dk = st_upload(cuda, k, n * 8), *dav = st_upload(cuda, av, words * 8);
    tsr_dev_buf_t *dsel = NULL;
    OK(tsr_dev_buf_alloc(cuda, n ? n * 4 : 8, &dsel, ERR));
    OK(tsr_dev_fill(cuda->queue, dsel, 0, &(uint32_t){DEV_POISON32}, 4, dsel->size, NULL, ERR));

    /* filter: a < 40 (one column: read in place), or a < 40 OR b >= 0.75 */
    tsr_dev_filter_spec_t fs = {.ncols = 2,
                                .types = {TSR_TYPE_INT64, TSR_TYPE_DOUBLE},
                                .ninstrs = nused == 1 ? 1 : 3,
                                .prog = {{.op = TSR_DEV_PRED_LT, .column = 0, .i = 40},
                                         {.op = TSR_DEV_PRED_GE, .column = 1, .d = 0.75},
                                         {.op = TSR_DEV_PRED_OR}},
                                .launch_rows = 256};
    tsr_dev_filter_cols_t fc = {.n = n, .values = {a, b}, .valid = {av, NULL}};
    tsr_dev_filter_dcols_t dc = {.n = n, .values = {da, db}, .valid = {dav, NULL}};
    uint32_t *want = dev_poisoned32(n), *got = dev_poisoned32(n);
    size_t nwant = 0, ngot = 0;
    tsr_dev_filter_t *f = NULL;
    OK(tsr_dev_filter_create(cpu, &fs, &f, ERR));
    OK(tsr_dev_filter_run(f, NULL, &fc, want, &nwant, ERR));
    tsr_dev_filter_destroy(f);
    OK(tsr_dev_filter_create(cuda, &fs, &f, ERR));
    assert_true(tsr_dev_filter_has_run_dev(f));
    OK(tsr_dev_filter_run_dev(f, NULL, &dc, dsel, &ngot, ERR));
    tsr_dev_filter_destroy(f);
    assert_int_equal(ngot, nwant);
    if (n)
        OK(tsr_dev_read(cuda->queue, dsel, 0, got, n * 4, true, NULL, ERR));
    for (size_t i = 0; i < n; i++)
        if (i < nwant ? got[i] != want[i] : got[i] != DEV_POISON32)
            fail_msg("n=%zu, %zu columns: device selection[%zu] = %u, want %u", n, nused, i,
                     got[i], i < nwant ? want[i] : DEV_POISON32);

    /* the selected rows' COUNT(*), SUM(a) BY k: device selection vs the cpu
     * device on the compacted host rows */
    tsr_dev_hashagg_spec_t hs = {.nkeys = 1,
                                 .naggs = 2,
                                 .aggs = {{TSR_DEV_AGG_COUNT_STAR, TSR_TYPE_INT64},
                                          {TSR_DEV_AGG_SUM, TSR_TYPE_INT64}}};
    uint64_t *ck = dev_xalloc(nwant * 8 + 8), *cav = dev_validity(nwant, 0, &seed);
    int64_t *ca = dev_xalloc(nwant * 8 + 8);
    for (size_t i = 0; i < nwant; i++) {
        ck[i] = k[want[i]];
        ca[i] = a[want[i]];
        if (!dev_bit(av, want[i]))
            cav[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
    tsr_dev_hashagg_rows_t hr = {
        .n = nwant, .keys = {ck}, .values = {NULL, ca}, .valid = {NULL, cav}};
    tsr_dev_hashagg_drows_t dr = {.n = n,
                                  .keys = {dk},
                                  .values = {NULL, da},
                                  .valid = {NULL, dav},
                                  .sel = dsel,
                                  .nsel = ngot};
    tsr_dev_hashagg_t *ha = NULL;
    OK(tsr_dev_hashagg_create(cpu, &hs, &ha, ERR));
    if (nwant)
        OK(tsr_dev_hashagg_update(ha, NULL, &hr, ERR));
    size_t ng0, ng1;
    kv_t *g0 = st_groups(ha, &ng0);
    tsr_dev_hashagg_destroy(ha);
    OK(tsr_dev_hashagg_create(cuda, &hs, &ha, ERR));
    assert_true(tsr_dev_hashagg_has_update_dev(ha));
    OK(tsr_dev_hashagg_update_dev(ha, NULL, &dr, ERR));
    kv_t *g1 = st_groups(ha, &ng1);
    tsr_dev_hashagg_destroy(ha);
    assert_int_equal(ng0, ng1);
    for (size_t g = 0; g < ng0; g++)
        if (kv_cmp(&g0[g], &g1[g]) != 0 || g0[g].count != g1[g].count || g0[g].sum != g1[g].sum)
            fail_msg("n=%zu: group %zu: key %llu count %lld sum %lld, cpu %llu %lld %lld", n, g,
                     (unsigned long long)g1[g].key, (long long)g1[g].count, (long long)g1[g].sum,
                     (unsigned long long)g0[g].key, (long long)g0[g].count, (long long)g0[g].sum);
    free(g0);
    free(g1);

    /* join: build on k's first half (device), probe with all of k */
    size_t nb = n / 2;
    tsr_dev_hashjoin_spec_t js = {.key = TSR_DEV_JOIN_KEY_I64, .launch_rows = 640,
                                  .window_pairs = 700};
    tsr_dev_join_keys_t bk = {.n = nb, .keys = k, .valid = av}, pk = {.n = n, .keys = k};
    tsr_dev_join_dkeys_t dbk = {.n = nb, .keys = dk, .valid = dav}, dpk = {.n = n, .keys = dk};
    size_t np[2];
    pair_t *pairs[2];
    for (int d = 0; d < 2; d++) {
        tsr_dev_hashjoin_t *hj = NULL;
        OK(tsr_dev_hashjoin_create(d ? cuda : cpu, &js, &hj, ERR));
        if (d) {
            assert_true(tsr_dev_hashjoin_has_dev(hj));
            OK(tsr_dev_hashjoin_build_dev(hj, NULL, &dbk, ERR));
            OK(tsr_dev_hashjoin_probe_dev(hj, NULL, &dpk, &np[d], ERR));
        } else {
            OK(tsr_dev_hashjoin_build(hj, NULL, &bk, ERR));
            OK(tsr_dev_hashjoin_probe(hj, NULL, &pk, &np[d], ERR));
        }
        uint32_t *pr = dev_poisoned32(np[d]), *br = dev_poisoned32(np[d]);
        if (np[d])
            OK(tsr_dev_hashjoin_pairs(hj, NULL, pr, br, ERR));
        tsr_dev_hashjoin_destroy(hj);
        pairs[d] = dev_xalloc((np[d] + 1) * sizeof(pair_t));
        for (size_t i = 0; i < np[d]; i++)
            pairs[d][i] = (pair_t){pr[i], br[i]};
        qsort(pairs[d], np[d], sizeof(pair_t), pair_cmp);
        free(pr);
        free(br);
    }
    assert_int_equal(np[0], np[1]);
    for (size_t i = 0; i < np[0]; i++)
        if (pair_cmp(&pairs[0][i], &pairs[1][i]) != 0)
            fail_msg("n=%zu: device-key pair %zu (%u,%u), cpu (%u,%u)", n, i, pairs[1][i].p,
                     pairs[1][i].b, pairs[0][i].p, pairs[0][i].b);
    free(pairs[0]);
    free(pairs[1]);

    tsr_dev_buf_free(da);
    tsr_dev_buf_free(db);
    tsr_dev_buf_free(dk);
    tsr_dev_buf_free(dav);
    tsr_dev_buf_free(dsel);
    free(want);
    free(got);
    free(ck);
    free(ca);
    free(cav);
    free(a);
    free(b);
    free(k);
    free(av);
}

static void test_dev_inputs(void **state)
{
    dev_pair_t *f = *state;
    tsr_dev_t *dev = st_cuda(state);
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(1);
#endif
    for (size_t i = 0; i < NSIZES; i++)
        st_dev_inputs(f->cpu, dev, SIZES[i], 1 + i % 2, 77 + i);
#ifdef TSR_CUDA_EMU
    tsr_emu_set_jitter(0);
#endif
}

#ifdef TSR_CUDA_EMU
/* A pinned allocation that fails: the copy goes pageable, the note says why,
 * and the pool is tried again after 16 copies. */
static void test_emu_pinned_failure(void **state)
{
    tsr_dev_t *dev = st_cuda(state);
    OK(tsr_dev_cuda_stage_config(dev, 4096, 3, ERR));
    enum { N = 10000 };
    static uint8_t src[N], dst[N];
    for (size_t i = 0; i < N; i++)
        src[i] = (uint8_t)(i * 13 + 1);
    tsr_dev_buf_t *buf = NULL;
    OK(tsr_dev_buf_alloc(dev, N, &buf, ERR));
    uint64_t s0, d0, s1, d1;
    tsr_dev_cuda_stage_stats(dev, &s0, &d0);
    /* call 0: cudaSetDevice; call 1: the pool's first cudaHostAlloc */
    tsr_emu_fail_after(1, cudaErrorMemoryAllocation);
    long inj = tsr_emu_injected();
    OK(tsr_dev_write(dev->queue, buf, 0, src, N, true, NULL, ERR));
    tsr_emu_fail_after(-1, cudaSuccess);
    assert_int_equal(tsr_emu_injected(), inj + 1);
    const char *note = tsr_dev_cuda_stage_note(dev);
    if (!strstr(note, "pinned staging unavailable") || !strstr(note, "cudaErrorMemoryAllocation") ||
        !strstr(note, "pageable"))
        fail_msg("note: '%s'", note);
    tsr_dev_cuda_stage_stats(dev, &s1, &d1);
    if (s1 != s0 || d1 - d0 != N)
        fail_msg("staged %llu, pageable %llu bytes; note '%s'", (unsigned long long)(s1 - s0),
                 (unsigned long long)(d1 - d0), note);
    memset(dst, 0, N);
    OK(tsr_dev_read(dev->queue, buf, 0, dst, N, true, NULL, ERR));
    expect_bytes(src, dst, N, "pageable fallback", N);
    /* 15 more pageable copies (the read was one), then the pool again */
    for (int i = 0; i < 15; i++)
        OK(tsr_dev_read(dev->queue, buf, 0, dst, N, true, NULL, ERR));
    tsr_dev_cuda_stage_stats(dev, &s0, &d0);
    assert_int_equal(s0, s1);
    memset(dst, 0, N);
    OK(tsr_dev_read(dev->queue, buf, 0, dst, N, true, NULL, ERR));
    expect_bytes(src, dst, N, "staged again", N);
    tsr_dev_cuda_stage_stats(dev, &s1, &d1);
    assert_int_equal(s1 - s0, N);
    assert_string_equal(tsr_dev_cuda_stage_note(dev), "");
    tsr_dev_buf_free(buf);
    st_reset(dev);
}
#endif

#endif /* TSR_HAVE_CUDA */

static void test_nothing(void **state)
{
    st_cuda(state); /* skipped: this build has no CUDA backend */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef TSR_HAVE_CUDA
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_config_bad_args),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_dev_inputs),
#ifdef TSR_CUDA_EMU
        cmocka_unit_test(test_emu_pinned_failure),
#endif
#endif
        cmocka_unit_test(test_nothing),
    };
    int failed = cmocka_run_group_tests(tests, st_setup, st_teardown);
    /* 77 (ctest's "skipped") when there was no CUDA device to test */
    tsr_dev_t *probe = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    bool have = tsr_dev_backend(TSR_DEVICE_CUDA) &&
                tsr_dev_open_spec(NULL, "cuda", &probe, &err) == TSR_OK;
    tsr_dev_close(probe);
    return failed ? 1 : have ? 0 : 77;
}
