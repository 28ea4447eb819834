/*
 * test_hashagg_device.c - device hash aggregation (device/hashagg.h) on every
 * backend present, against a plain C model that groups by sorting (the model
 * and the cases are in hashagg_model.h, shared with test_cuda.c).
 *
 * Every case runs on the cpu backend and on the first OpenCL device (PoCL
 * where there is no GPU; skipped, never passed, where there is none). Output
 * arrays are poisoned before the result is read and then checked element by
 * element (and one element past the end, which must still be poisoned).
 * Groups come back in an unspecified order, so both sides are sorted by key.
 *
 * Cases: sizes 0, 1, primes, more than one launch of the OpenCL backend;
 * skewed keys; more groups than the initial table (resize and retry paths);
 * composite keys with NULLs; NULL values and all-NULL groups; SUM(BIGINT)
 * overflow (and a sum that overflows on the way but ends in range, which
 * must not fail); no key columns; NaN ordering of MIN/MAX; bad arguments;
 * allocation failures. The group hashes are checked against the CPU
 * executor's hash table (exec/hashtable.h), the cross-device contract.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hashagg_model.h"

typedef struct fixture {
    tsr_dev_t *dev[2];                   /* cpu, opencl (NULL when absent) */
    int which;                           /* the device the running test uses */
    tsr_dev_hashagg_strategy_t strategy; /* and the update strategy */
    char cl_note[256];
} fixture_t;

/* ---- fixtures ---------------------------------------------------------------------- */

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_dev_open_spec(NULL, "cpu", &f->dev[0], &err) != TSR_OK) {
        free(f);
        return -1;
    }
    tsr_error_clear(&err);
    if (tsr_dev_open_spec(NULL, "opencl", &f->dev[1], &err) != TSR_OK) {
        f->dev[1] = NULL;
        snprintf(f->cl_note, sizeof(f->cl_note), "%s", err.message);
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    tsr_dev_close(f->dev[0]);
    tsr_dev_close(f->dev[1]);
    free(f);
    return 0;
}

/* The device of the running test: f->which, set by the wrapper (see main). */
static tsr_dev_t *test_dev(void **state)
{
    fixture_t *f = *state;
    tsr_dev_t *dev = f->dev[f->which];
    if (!dev) {
        print_message("skipped: no OpenCL device (%s)\n", f->cl_note);
        skip();
    }
    return dev;
}

/* Runs a case of hashagg_model.h on the device and strategy the wrapper chose. */
static void run_on(void **state, void (*fn)(const hm_ctx_t *))
{
    fixture_t *f = *state;
    hm_ctx_t c = {.dev = test_dev(state),
                  .other = f->dev[1 - f->which],
                  .strategy = f->strategy,
                  .large_rows = (1u << 20) + 4099};
    fn(&c);
}

/* Each case runs on the cpu backend and on OpenCL with the backend's own
 * choice of strategy (test_x_cpu, test_x_cl); the data cases also with each
 * OpenCL strategy forced (test_x_clg: global atomics only; test_x_cll:
 * work-group pre-aggregation even with many groups, so local tables overflow). */
#define ON_DEV(fn, suffix, dev, strat)                                                             \
    static void test_##fn##suffix(void **state)                                                    \
    {                                                                                              \
        ((fixture_t *)*state)->which = dev;                                                        \
        ((fixture_t *)*state)->strategy = strat;                                                   \
        run_on(state, hm_case_##fn);                                                               \
    }
#define ON_BOTH(fn)                                                                                \
    ON_DEV(fn, _cpu, 0, TSR_DEV_HASHAGG_AUTO)                                                      \
    ON_DEV(fn, _cl, 1, TSR_DEV_HASHAGG_AUTO)
#define ON_ALL(fn)                                                                                 \
    ON_BOTH(fn)                                                                                    \
    ON_DEV(fn, _clg, 1, TSR_DEV_HASHAGG_GLOBAL)                                                    \
    ON_DEV(fn, _cll, 1, TSR_DEV_HASHAGG_LOCAL)
ON_ALL(sizes)
ON_DEV(large, _cl, 1, TSR_DEV_HASHAGG_AUTO)
ON_ALL(skewed)
ON_ALL(many_groups)
ON_ALL(composite_nulls)
ON_ALL(null_values)
ON_ALL(no_keys)
ON_ALL(sum_overflow)
ON_ALL(dense_keys)
ON_ALL(plain_aggs)
ON_ALL(nan_order)
ON_ALL(hash_collisions)
ON_BOTH(bad_args)
ON_BOTH(alloc_failures)

#define BOTH(fn) cmocka_unit_test(fn##_cpu), cmocka_unit_test(fn##_cl)
#define ALL(fn) BOTH(fn), cmocka_unit_test(fn##_clg), cmocka_unit_test(fn##_cll)

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
        ALL(test_sizes),           cmocka_unit_test(test_large_cl),
        ALL(test_skewed),          ALL(test_many_groups),
        ALL(test_composite_nulls), ALL(test_null_values),
        ALL(test_no_keys),         ALL(test_sum_overflow),
        ALL(test_dense_keys),      ALL(test_plain_aggs),
        ALL(test_nan_order),       ALL(test_hash_collisions),
        BOTH(test_bad_args),       BOTH(test_alloc_failures),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return failed ? failed : opencl_skip_code();
}
