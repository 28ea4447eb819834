/*
 * test_opencl_stage.c - pinned staging of host copies on OpenCL
 * (engine/device/opencl_stage.c): round trips through tsr_dev_write /
 * tsr_dev_read and the pool's own functions, and every kernel family fed
 * from host memory through tiny staging buffers (2 and 3 in rotation),
 * checked against the cpu device element by element (stage_families.h).
 * Staging is off by default on CPU devices such as PoCL; the tests turn it
 * on (tsr_dev_cl_stage_config), and check that it is off by default there.
 * Skipped (exit 77) without an OpenCL device.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dev_test.h"
#include "stage_families.h"

#include "device/opencl_internal.h"

static int cl_setup(void **state)
{
    return dev_pair_setup(state, TSR_DEVICE_OPENCL);
}

static tsr_dev_t *cl_dev(void **state)
{
    return dev_pair_need(*state);
}

static void test_defaults(void **state)
{
    tsr_dev_t *dev = cl_dev(state);
    if (!dev->info.is_gpu)
        assert_non_null(strstr(tsr_dev_cl_stage_note(dev), "pinned staging off"));
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_cl_stage_config(dev, 4096, 1, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_cl_stage_config(dev, 100, 2, &err), TSR_ERR_INVALID_ARG);
    dev_pair_t *f = *state;
    assert_int_equal(tsr_dev_cl_stage_config(f->cpu, 4096, 2, &err), TSR_ERR_INVALID_ARG);
}

static void test_round_trips(void **state)
{
    tsr_dev_t *dev = cl_dev(state);
    static const size_t sizes[] = {0, 1, 63, 4095, 4096, 4099, 12289, 100003};
    static const struct {
        size_t piece;
        unsigned count;
    } cfgs[] = {{4096, 2}, {1024, 3}, {64, 4}};
    size_t max = 100003 + 64;
    uint8_t *src = dev_xalloc(max), *dst = dev_xalloc(max), *want = dev_xalloc(max);
    tsr_dev_buf_t *buf = NULL;
    OK(tsr_dev_buf_alloc(dev, max, &buf, ERR));
    uint64_t seed = 3;
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        OK(tsr_dev_cl_stage_config(dev, cfgs[c].piece, cfgs[c].count, ERR));
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i], off = (i * 8) % 64;
            for (int via = 0; via < 2; via++) {
                for (size_t b = 0; b < n; b++)
                    src[b] = want[b] = (uint8_t)dev_rng(&seed);
                uint64_t s0, s1;
                tsr_dev_cl_stage_stats(dev, &s0, NULL);
                if (n && !via)
                    OK(tsr_dev_write(dev->queue, buf, off, src, n, false, NULL, ERR));
                else if (n)
                    OK(tsr_dev_cl_upload(dev, tsr_dev_cl_queue(dev->queue), tsr_dev_cl_mem(buf),
                                         off, src, n, ERR));
                /* the source is free once a staged upload returned (a small
                 * non-blocking write reads it until the queue finishes) */
                if (via || n >= 4096)
                    memset(src, 0x5a, n);
                OK(tsr_dev_queue_finish(dev->queue, ERR));
                memset(dst, 0xa5, max);
                if (n && !via) {
                    OK(tsr_dev_read(dev->queue, buf, off, dst, n, false, NULL, ERR));
                    OK(tsr_dev_queue_finish(dev->queue, ERR));
                } else if (n) {
                    OK(tsr_dev_cl_download(dev, tsr_dev_cl_queue(dev->queue), tsr_dev_cl_mem(buf),
                                           off, dst, n, ERR));
                }
                for (size_t b = 0; b < n; b++)
                    if (dst[b] != want[b])
                        fail_msg("%zu bytes (via %d): byte %zu is 0x%02x, want 0x%02x", n, via, b,
                                 dst[b], want[b]);
                for (size_t b = n; b < max; b++)
                    if (dst[b] != 0xa5)
                        fail_msg("copy of %zu bytes wrote byte %zu", n, b);
                tsr_dev_cl_stage_stats(dev, &s1, NULL);
                if ((via || n >= 4096) && s1 - s0 != 2 * (uint64_t)n)
                    fail_msg("%zu-byte copies staged %llu bytes", n,
                             (unsigned long long)(s1 - s0));
            }
        }
    }
    OK(tsr_dev_cl_stage_config(dev, 0, 0, ERR));
    tsr_dev_buf_free(buf);
    free(src);
    free(dst);
    free(want);
}

static void test_families(void **state)
{
    dev_pair_t *f = *state;
    tsr_dev_t *dev = cl_dev(state);
    static const struct {
        size_t piece;
        unsigned count;
    } cfgs[] = {{256, 2}, {1024, 3}};
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        OK(tsr_dev_cl_stage_config(dev, cfgs[c].piece, cfgs[c].count, ERR));
        uint64_t s0, s1;
        tsr_dev_cl_stage_stats(dev, &s0, NULL);
        for (size_t i = 0; i < NSIZES; i++) {
            if (c > 0 && i % 3 != 2)
                continue;
            uint64_t seed = 500 * c + i;
            st_agg(f->cpu, dev, SIZES[i], seed);
            st_join(f->cpu, dev, SIZES[i], seed);
            st_filter(f->cpu, dev, SIZES[i], seed);
            st_partition(f->cpu, dev, SIZES[i], seed);
        }
        tsr_dev_cl_stage_stats(dev, &s1, NULL);
        assert_true(s1 - s0 > 20011 * 8);
    }
    OK(tsr_dev_cl_stage_config(dev, 0, 0, ERR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_families),
    };
    int failed = cmocka_run_group_tests(tests, cl_setup, dev_pair_teardown);
    if (failed)
        return 1;
    tsr_dev_t *probe = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    bool have = tsr_dev_open_spec(NULL, "opencl", &probe, &err) == TSR_OK;
    tsr_dev_close(probe);
    return have ? 0 : 77;
}
