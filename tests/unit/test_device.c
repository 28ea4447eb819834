/*
 * test_device.c - the device layer (engine/device/device.h, tessera/device.h):
 * enumeration, selection by spec, buffers, transfers, fills, events, queues,
 * pinned host memory and error reporting, on every backend present.
 *
 * The cpu backend always runs. OpenCL tests run on the first OpenCL device
 * (PoCL on machines without a GPU) and are skipped, never passed, when this
 * machine has none. Devices are opened once per process (group setup).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dev_test.h"

#include "device/device.h"
#include "device/opencl_internal.h"

typedef dev_pair_t fixture_t; /* the OpenCL device in dev */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int group_setup(void **state)
{
    return dev_pair_setup(state, TSR_DEVICE_OPENCL);
}

static tsr_dev_t *need_cl(void **state)
{
    return dev_pair_need(*state);
}

/* ---- enumeration and selection -------------------------------------------------- */

static void test_backend_names(void **state)
{
    (void)state;
    assert_string_equal(tsr_device_backend_name(TSR_DEVICE_CPU), "cpu");
    assert_string_equal(tsr_device_backend_name(TSR_DEVICE_OPENCL), "opencl");
    assert_string_equal(tsr_device_backend_name(TSR_DEVICE_CUDA), "cuda");
    assert_string_equal(tsr_device_backend_name((tsr_device_backend_t)7), "unknown");
    assert_non_null(tsr_dev_backend(TSR_DEVICE_CPU));
    assert_non_null(tsr_dev_backend(TSR_DEVICE_OPENCL));
    assert_null(tsr_dev_backend((tsr_device_backend_t)-1));
    assert_null(tsr_dev_backend((tsr_device_backend_t)TSR_DEVICE_NBACKENDS));
}

static void test_list(void **state)
{
    fixture_t *f = *state;
    tsr_device_list_t *list = NULL;
    assert_int_equal(tsr_device_list_create(&list), TSR_OK);
    size_t n = tsr_device_list_count(list), sum = 0;
    assert_true(n >= 1);

    const tsr_device_backend_info_t *cpu = tsr_device_list_backend(list, TSR_DEVICE_CPU);
    assert_int_equal(cpu->built, 1);
    assert_int_equal(cpu->ndevices, 1);
    assert_string_equal(cpu->name, "cpu");
    assert_string_equal(cpu->note, "");

    const tsr_device_backend_info_t *cl = tsr_device_list_backend(list, TSR_DEVICE_OPENCL);
    assert_int_equal(cl->built, 1);
    assert_int_equal(cl->ndevices > 0, f->dev != NULL);
    if (cl->ndevices == 0)
        assert_true(strlen(cl->note) > 0); /* says why */

    const tsr_device_backend_info_t *cuda = tsr_device_list_backend(list, TSR_DEVICE_CUDA);
    assert_string_equal(cuda->name, "cuda");
#ifndef TSR_HAVE_CUDA
    assert_int_equal(cuda->built, 0);
    assert_int_equal(cuda->ndevices, 0);
    assert_string_equal(cuda->note, "backend not available in this build");
#endif
    assert_null(tsr_device_list_backend(list, (tsr_device_backend_t)9));

    /* Devices come in backend order, indices count up within a backend. */
    for (unsigned b = 0; b < TSR_DEVICE_NBACKENDS; b++)
        sum += tsr_device_list_backend(list, (tsr_device_backend_t)b)->ndevices;
    assert_int_equal(sum, n);
    const tsr_device_info_t *first = tsr_device_list_at(list, 0);
    assert_int_equal(first->backend, TSR_DEVICE_CPU);
    assert_int_equal(first->index, 0);
    for (size_t i = 0; i < n; i++) {
        const tsr_device_info_t *d = tsr_device_list_at(list, i);
        assert_true(strlen(d->name) > 0);
        assert_true(d->compute_units >= 1);
        assert_true(d->global_mem_bytes > 0);
        if (i > 0) {
            const tsr_device_info_t *p = tsr_device_list_at(list, i - 1);
            assert_true(p->backend < d->backend ||
                        (p->backend == d->backend && p->index + 1 == d->index));
        }
    }
    assert_null(tsr_device_list_at(list, n));
    tsr_device_list_destroy(list);
    tsr_device_list_destroy(NULL);
    assert_int_equal(tsr_device_list_count(NULL), 0);
}

static void test_open_spec(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        tsr_status_t want;
    } cases[] = {
        {"bogus", TSR_ERR_INVALID_ARG},  {"", TSR_ERR_INVALID_ARG},
        {"cpu:", TSR_ERR_INVALID_ARG},   {"cpu:x", TSR_ERR_INVALID_ARG},
        {"cpu:-1", TSR_ERR_INVALID_ARG}, {"cpu:1", TSR_ERR_NOT_FOUND},
        {"cpus", TSR_ERR_INVALID_ARG},   {"opencl:999", TSR_ERR_NOT_FOUND},
#ifndef TSR_HAVE_CUDA
        {"cuda", TSR_ERR_NOT_FOUND},
#endif
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_dev_t *dev = (tsr_dev_t *)0x1;
        assert_int_equal(tsr_dev_open_spec(NULL, cases[i].spec, &dev, &err), cases[i].want);
        assert_ptr_equal(dev, (tsr_dev_t *)0x1); /* untouched on failure */
        assert_int_equal(err.status, cases[i].want);
        assert_true(strlen(err.message) > 0);
    }
    tsr_dev_t *dev = NULL;
    assert_int_equal(tsr_dev_open_spec(NULL, "cpu:0", &dev, NULL), TSR_OK);
    assert_int_equal(dev->info.backend, TSR_DEVICE_CPU);
    assert_non_null(dev->queue);
    tsr_dev_close(dev);
    tsr_dev_close(NULL);
}

/* Opening, allocating and queueing fail cleanly when memory runs out at any
 * allocation (ASan reports anything left behind). */
static void test_alloc_failures(void **state)
{
    fixture_t *f = *state;
    const char *specs[] = {"cpu", "opencl"};
    for (size_t s = 0; s < 2; s++) {
        if (s == 1 && !f->dev)
            continue;
        bool done = false;
        for (long n = 0; !done && n < 64; n++) {
            tsr_mem_t mem;
            tsr_mem_init(&mem);
            tsr_mem_fail_after(&mem, n);
            tsr_error_t err;
            tsr_error_clear(&err);
            tsr_dev_t *dev = NULL;
            tsr_dev_buf_t *buf = NULL;
            tsr_dev_event_t *ev = NULL;
            uint64_t x = 42, y = 0;
            tsr_status_t rc = tsr_dev_open_spec(&mem, specs[s], &dev, &err);
            if (rc == TSR_OK)
                rc = tsr_dev_buf_alloc(dev, 64, &buf, &err);
            if (rc == TSR_OK)
                rc = tsr_dev_write(dev->queue, buf, 8, &x, 8, true, &ev, &err);
            if (rc == TSR_OK)
                rc = tsr_dev_read(dev->queue, buf, 8, &y, 8, true, NULL, &err);
            if (rc == TSR_OK) {
                assert_int_equal(y, 42);
                done = true;
            } else {
                assert_int_equal(rc, TSR_ERR_NOMEM);
                assert_int_equal(err.status, TSR_ERR_NOMEM);
            }
            tsr_dev_event_release(ev);
            tsr_dev_buf_free(buf);
            tsr_dev_close(dev);
        }
        assert_true(done);
    }
}

/* ---- buffers and transfers ------------------------------------------------------ */

static void check_round_trips(tsr_dev_t *dev)
{
    static const size_t sizes[] = {1, 7, 64, 4099, 1 << 20};
    uint64_t seed = 7;
    tsr_error_t err;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *src = malloc(n), *dst = malloc(n);
        assert_non_null(src);
        assert_non_null(dst);
        for (size_t j = 0; j < n; j++)
            src[j] = (uint8_t)rng_next(&seed);
        memset(dst, 0xa5, n);
        tsr_dev_buf_t *buf = NULL;
        tsr_error_clear(&err);
        assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf, &err), TSR_OK);
        assert_int_equal(buf->size, n);
        /* whole buffer, non-blocking write then blocking read (in order) */
        assert_int_equal(tsr_dev_write(dev->queue, buf, 0, src, n, false, NULL, &err), TSR_OK);
        assert_int_equal(tsr_dev_read(dev->queue, buf, 0, dst, n, true, NULL, &err), TSR_OK);
        assert_memory_equal(src, dst, n);
        /* a sub-range at an odd offset */
        if (n > 3) {
            uint8_t patch[3] = {1, 2, 3}, back[3] = {0};
            size_t off = n / 2 | 1;
            if (off + 3 > n)
                off = n - 3;
            assert_int_equal(tsr_dev_write(dev->queue, buf, off, patch, 3, true, NULL, &err),
                             TSR_OK);
            assert_int_equal(tsr_dev_read(dev->queue, buf, 0, dst, n, false, NULL, &err), TSR_OK);
            assert_int_equal(tsr_dev_queue_finish(dev->queue, &err), TSR_OK);
            memcpy(src + off, patch, 3);
            assert_memory_equal(src, dst, n);
            assert_int_equal(tsr_dev_read(dev->queue, buf, off, back, 3, true, NULL, &err), TSR_OK);
            assert_memory_equal(back, patch, 3);
        }
        tsr_dev_buf_free(buf);
        free(src);
        free(dst);
    }
}

static void check_fills(tsr_dev_t *dev)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    const size_t n = 4096;
    tsr_dev_buf_t *buf = NULL;
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf, &err), TSR_OK);
    uint8_t *back = malloc(n);
    assert_non_null(back);
    static const size_t psizes[] = {1, 2, 4, 8, 16, 64};
    for (size_t p = 0; p < sizeof(psizes) / sizeof(psizes[0]); p++) {
        size_t ps = psizes[p];
        uint8_t pattern[64], zero = 0;
        for (size_t j = 0; j < ps; j++)
            pattern[j] = (uint8_t)(j * 37 + ps);
        assert_int_equal(tsr_dev_fill(dev->queue, buf, 0, &zero, 1, n, NULL, &err), TSR_OK);
        size_t off = 128, len = n - 256; /* multiples of every pattern size */
        assert_int_equal(tsr_dev_fill(dev->queue, buf, off, pattern, ps, len, NULL, &err), TSR_OK);
        assert_int_equal(tsr_dev_read(dev->queue, buf, 0, back, n, true, NULL, &err), TSR_OK);
        for (size_t j = 0; j < n; j++) {
            uint8_t want = j >= off && j < off + len ? pattern[(j - off) % ps] : 0;
            assert_int_equal(back[j], want);
        }
    }
    /* bad patterns */
    uint8_t pat[4] = {0};
    assert_int_equal(tsr_dev_fill(dev->queue, buf, 0, pat, 3, 12, NULL, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_fill(dev->queue, buf, 2, pat, 4, 8, NULL, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_dev_fill(dev->queue, buf, 0, pat, 4, 6, NULL, &err), TSR_ERR_INVALID_ARG);
    free(back);
    tsr_dev_buf_free(buf);
}

static void check_bad_ranges(tsr_dev_t *dev, tsr_dev_t *other)
{
    tsr_error_t err;
    tsr_dev_buf_t *buf = NULL, *empty = NULL;
    uint8_t x[16] = {0};
    assert_int_equal(tsr_dev_buf_alloc(dev, 8, &buf, NULL), TSR_OK);
    assert_int_equal(tsr_dev_buf_alloc(dev, 0, &empty, NULL), TSR_OK);
    assert_int_equal(empty->size, 0);
    struct {
        tsr_dev_buf_t *b;
        size_t off, size;
    } bad[] = {
        {buf, 0, 9},        {buf, 8, 1},        {buf, 9, 0},   {buf, 0, 0},
        {buf, SIZE_MAX, 2}, {buf, 4, SIZE_MAX}, {empty, 0, 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tsr_error_clear(&err);
        assert_int_equal(
            tsr_dev_write(dev->queue, bad[i].b, bad[i].off, x, bad[i].size, true, NULL, &err),
            TSR_ERR_INVALID_ARG);
        assert_int_equal(err.status, TSR_ERR_INVALID_ARG);
        tsr_dev_event_t *ev = (tsr_dev_event_t *)0x1;
        assert_int_equal(
            tsr_dev_read(dev->queue, bad[i].b, bad[i].off, x, bad[i].size, true, &ev, NULL),
            TSR_ERR_INVALID_ARG);
        assert_ptr_equal(ev, (tsr_dev_event_t *)0x1);
    }
    assert_int_equal(tsr_dev_write(dev->queue, buf, 0, NULL, 8, true, NULL, NULL),
                     TSR_ERR_INVALID_ARG);
    /* a queue of another device */
    if (other)
        assert_int_equal(tsr_dev_write(other->queue, buf, 0, x, 8, true, NULL, NULL),
                         TSR_ERR_INVALID_ARG);
    tsr_dev_buf_free(empty);
    tsr_dev_buf_free(buf);
    tsr_dev_buf_free(NULL);
}

static void check_events_queues_pinned(tsr_dev_t *dev)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    const size_t n = 1 << 16;
    tsr_dev_queue_t *q2 = NULL;
    tsr_dev_host_t *host = NULL;
    tsr_dev_buf_t *buf = NULL;
    tsr_dev_event_t *ev = NULL;
    assert_int_equal(tsr_dev_queue_create(dev, &q2, &err), TSR_OK);
    assert_int_equal(tsr_dev_host_alloc(dev, n, &host, &err), TSR_OK);
    assert_non_null(host->ptr);
    assert_int_equal((uintptr_t)host->ptr % 8, 0);
    assert_int_equal(tsr_dev_buf_alloc(dev, n, &buf, &err), TSR_OK);
    uint8_t *p = host->ptr;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7);
    /* staged upload on the second queue, timed by its event */
    assert_int_equal(tsr_dev_write(q2, buf, 0, host->ptr, n, false, &ev, &err), TSR_OK);
    assert_non_null(ev);
    assert_int_equal(tsr_dev_event_wait(ev, &err), TSR_OK);
    uint64_t ns = UINT64_MAX;
    assert_int_equal(tsr_dev_event_elapsed_ns(ev, &ns, &err), TSR_OK);
    assert_true(ns < 60ULL * 1000000000ULL);
    tsr_dev_event_release(ev);
    tsr_dev_event_release(NULL);
    assert_int_equal(tsr_dev_queue_finish(q2, &err), TSR_OK);
    memset(host->ptr, 0, n);
    assert_int_equal(tsr_dev_read(dev->queue, buf, 0, host->ptr, n, true, NULL, &err), TSR_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (uint8_t)(i * 7));
    tsr_dev_buf_free(buf);
    tsr_dev_host_free(host);
    tsr_dev_host_free(NULL);
    tsr_dev_queue_destroy(q2);
    tsr_dev_queue_destroy(NULL);
}

static void test_cpu_buffers(void **state)
{
    fixture_t *f = *state;
    check_round_trips(f->cpu);
    check_fills(f->cpu);
    check_bad_ranges(f->cpu, f->dev);
    check_events_queues_pinned(f->cpu);
}

static void test_opencl_buffers(void **state)
{
    fixture_t *f = *state;
    tsr_dev_t *cl = need_cl(state);
    check_round_trips(cl);
    check_fills(cl);
    check_bad_ranges(cl, f->cpu);
    check_events_queues_pinned(cl);
}

/* A kernel that does not compile reaches the caller with the compiler's log. */
static void test_opencl_build_log(void **state)
{
    tsr_dev_t *cl = need_cl(state);
    static const char bad[] = "__kernel void broken(__global int *x) { x[0] = no_such_name; }\n";
    tsr_error_t err;
    tsr_error_clear(&err);
    cl_program prog = NULL;
    assert_int_equal(tsr_dev_cl_build(cl, "broken", bad, sizeof(bad) - 1, &prog, &err),
                     TSR_ERR_DEVICE);
    assert_null(prog);
    assert_int_equal(err.status, TSR_ERR_DEVICE);
    assert_non_null(strstr(err.message, "broken.cl"));
    assert_non_null(strstr(err.message, "CL_BUILD_PROGRAM_FAILURE"));
    assert_non_null(strstr(err.message, "no_such_name")); /* from the build log */
    /* and a good one builds */
    static const char good[] = "__kernel void ok(__global int *x) { x[0] = 1; }\n";
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_cl_build(cl, "ok", good, sizeof(good) - 1, &prog, &err), TSR_OK);
    clReleaseProgram(prog);
}

/* 77 (ctest's "skipped") when the OpenCL tests could not run here: the cpu
 * tests' passing must not make the file count as passed. */
static int opencl_skip_code(void)
{
    tsr_device_list_t *list = NULL;
    if (tsr_device_list_create(&list) != TSR_OK)
        return 1;
    size_t n = tsr_device_list_backend(list, TSR_DEVICE_OPENCL)->ndevices;
    tsr_device_list_destroy(list);
    return n ? 0 : 77;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_names),    cmocka_unit_test(test_list),
        cmocka_unit_test(test_open_spec),        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_cpu_buffers),      cmocka_unit_test(test_opencl_buffers),
        cmocka_unit_test(test_opencl_build_log),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, dev_pair_teardown);
    return failed ? failed : opencl_skip_code();
}
