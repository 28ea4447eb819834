/*
 * dev_test.h - what the device kernel tests (test_join_device.c,
 * test_filter_device.c, test_partition_device.c) share: a fixture holding one
 * opened device per backend, the "skip where the device is absent" rule,
 * a seeded generator, bitmap helpers and poisoned output arrays.
 *
 * Include after <cmocka.h>. Tests run per backend through wrappers made by
 * DEV_TEST_ON(fn, suffix, backend): the wrapper sets f->which and calls fn,
 * which gets its device from dev_test_dev() (skipping, never passing, when
 * that backend has no device here). The program's exit code comes from
 * dev_test_exit(): cmocka's failures, else 77 (ctest's "skipped") when there
 * is no OpenCL device, so passing cpu tests never make the file count as
 * passed where the OpenCL kernels could not run.
 *
 * Every test also has a CUDA case (suffix _cuda): it runs on a CUDA device
 * where there is one and is skipped otherwise. Each test file is built a
 * second time against the CUDA emulator (tests/cudaemu, TSR_CUDA_EMU; see
 * tests/CMakeLists.txt), where only the CUDA cases run, on the emulated
 * device, and the exit code says whether they ran.
 */
#ifndef TSR_TESTS_DEV_TEST_H
#define TSR_TESTS_DEV_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/device.h"

#define DEV_POISON32 0xa5a5a5a5u
#define DEV_POISON64 0xa5a5a5a5a5a5a5a5ULL

typedef struct dev_fixture {
    tsr_dev_t *dev[TSR_DEVICE_NBACKENDS]; /* NULL where the backend has no device */
    char note[TSR_DEVICE_NBACKENDS][256]; /* why not */
    int which;                            /* the backend the running test uses */
} dev_fixture_t;

static inline int dev_test_setup(void **state)
{
    dev_fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    for (int b = 0; b < TSR_DEVICE_NBACKENDS; b++) {
        tsr_error_t err;
        tsr_error_clear(&err);
        if (tsr_dev_open_spec(NULL, tsr_device_backend_name((tsr_device_backend_t)b), &f->dev[b],
                              &err) != TSR_OK) {
            f->dev[b] = NULL;
            snprintf(f->note[b], sizeof(f->note[b]), "%s", err.message);
        }
    }
    if (!f->dev[TSR_DEVICE_CPU]) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int dev_test_teardown(void **state)
{
    dev_fixture_t *f = *state;
    for (int b = 0; b < TSR_DEVICE_NBACKENDS; b++)
        tsr_dev_close(f->dev[b]);
    free(f);
    return 0;
}

/* The device of the running test; skips the test when it is absent. */
static inline tsr_dev_t *dev_test_dev(void **state)
{
    dev_fixture_t *f = *state;
    tsr_dev_t *dev = f->dev[f->which];
#ifdef TSR_CUDA_EMU
    if (f->which != TSR_DEVICE_CUDA) {
        print_message("skipped: the emulator build runs the CUDA cases only\n");
        skip();
    }
#endif
    if (!dev) {
        print_message("skipped: no %s device (%s)\n",
                      tsr_device_backend_name((tsr_device_backend_t)f->which), f->note[f->which]);
        skip();
    }
    return dev;
}

/* The same device opened again on mem (whose allocations can be made to fail). */
/* A test group's state for suites about one backend: the CPU device (the reference) and
 * the first device of that backend, or why there is none (printed when a test skips). */
typedef struct dev_pair {
    tsr_dev_t *cpu;
    tsr_dev_t *dev; /* NULL: no such device here */
    tsr_device_backend_t backend;
    char note[300];
} dev_pair_t;

/* Opens *p; -1 only when the CPU device itself cannot be opened. */
static inline int dev_pair_open(dev_pair_t *p, tsr_device_backend_t backend)
{
    const char *name = tsr_device_backend_name(backend);
    p->backend = backend;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_dev_open_spec(NULL, "cpu", &p->cpu, &err) != TSR_OK)
        return -1;
    tsr_error_clear(&err);
    if (!tsr_dev_backend(backend)) {
        snprintf(p->note, sizeof(p->note), "%s support not compiled in", name);
    } else if (tsr_dev_open_spec(NULL, name, &p->dev, &err) != TSR_OK) {
        p->dev = NULL;
        snprintf(p->note, sizeof(p->note), "%s", err.message);
    }
    return 0;
}

static inline void dev_pair_close(dev_pair_t *p)
{
    tsr_dev_close(p->dev);
    tsr_dev_close(p->cpu);
}

/* The backend's device, or a cmocka skip saying why there is none. */
static inline tsr_dev_t *dev_pair_need(const dev_pair_t *p)
{
    if (!p->dev) {
        print_message("skipped: no %s device (%s)\n", tsr_device_backend_name(p->backend),
                      p->note);
        skip();
    }
    return p->dev;
}

/* cmocka group setup/teardown for a state that is a dev_pair_t. */
static inline int dev_pair_setup(void **state, tsr_device_backend_t backend)
{
    dev_pair_t *p = calloc(1, sizeof(*p));
    if (!p || dev_pair_open(p, backend) != 0) {
        free(p);
        return -1;
    }
    *state = p;
    return 0;
}

static inline int dev_pair_teardown(void **state)
{
    dev_pair_close(*state);
    free(*state);
    return 0;
}

static inline tsr_dev_t *dev_test_reopen(tsr_dev_t *dev, tsr_mem_t *mem)
{
    char spec[32];
    snprintf(spec, sizeof(spec), "%s:%u", tsr_device_backend_name(dev->info.backend),
             dev->info.index);
    tsr_dev_t *out = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_dev_open_spec(mem, spec, &out, &err), TSR_OK);
    return out;
}

#define DEV_TEST_ON(fn, suffix, backend)                                                           \
    static void fn##suffix(void **state) __attribute__((unused));                                  \
    static void fn##suffix(void **state)                                                           \
    {                                                                                              \
        ((dev_fixture_t *)*state)->which = backend;                                                \
        fn(state);                                                                                 \
    }
#define DEV_TEST_BOTH(fn)                                                                          \
    DEV_TEST_ON(fn, _cpu, TSR_DEVICE_CPU)                                                          \
    DEV_TEST_ON(fn, _cl, TSR_DEVICE_OPENCL)                                                        \
    DEV_TEST_ON(fn, _cuda, TSR_DEVICE_CUDA)
#define DEV_TESTS(fn)                                                                              \
    cmocka_unit_test(fn##_cpu), cmocka_unit_test(fn##_cl), cmocka_unit_test(fn##_cuda)

/* cmocka's result, else 77 when there is no OpenCL device (the emulator
 * build: no CUDA device) (see the top). */
static inline int dev_test_exit(int failed)
{
    if (failed)
        return failed;
    tsr_device_list_t *list = NULL;
    if (tsr_device_list_create(&list) != TSR_OK)
        return 1;
#ifdef TSR_CUDA_EMU
    size_t n = tsr_device_list_backend(list, TSR_DEVICE_CUDA)->ndevices;
#else
    size_t n = tsr_device_list_backend(list, TSR_DEVICE_OPENCL)->ndevices;
#endif
    tsr_device_list_destroy(list);
    return n ? 0 : 77;
}

/* ---- data ----------------------------------------------------------------------------- */

static inline uint64_t dev_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t dev_rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)dev_rng(s) * n) >> 64);
}

static inline void *dev_xalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    assert_non_null(p);
    return p;
}

static inline bool dev_bit(const uint64_t *bm, size_t i)
{
    return !bm || ((bm[i >> 6] >> (i & 63)) & 1u);
}

/* A validity bitmap with each row NULL with probability null_pct/100, and
 * random bits past n (garbage a kernel must not trust). */
static inline uint64_t *dev_validity(size_t n, unsigned null_pct, uint64_t *seed)
{
    size_t words = (n + 63) / 64;
    uint64_t *bm = dev_xalloc((words ? words : 1) * 8);
    for (size_t w = 0; w < words; w++)
        bm[w] = dev_rng(seed);
    for (size_t i = 0; i < n; i++) {
        uint64_t b = (uint64_t)1 << (i & 63);
        if (dev_rng_below(seed, 100) >= null_pct)
            bm[i >> 6] |= b;
        else
            bm[i >> 6] &= ~b;
    }
    return bm;
}

/* Output arrays of n entries plus one sentinel, all poisoned. */
static inline uint32_t *dev_poisoned32(size_t n)
{
    uint32_t *p = dev_xalloc((n + 1) * 4);
    for (size_t i = 0; i <= n; i++)
        p[i] = DEV_POISON32;
    return p;
}

static inline uint64_t *dev_poisoned64(size_t n)
{
    uint64_t *p = dev_xalloc((n + 1) * 8);
    for (size_t i = 0; i <= n; i++)
        p[i] = DEV_POISON64;
    return p;
}

#endif /* TSR_TESTS_DEV_TEST_H */
