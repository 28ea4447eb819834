/*
 * test_opencl_user.c - the OpenCL device's cache of programs built from user
 * source (engine/device/opencl_user.c) and contexts that borrow another
 * context's device (tsr__context_borrow_device, engine/api/context_device.c),
 * the two pieces that let a cluster worker open its device and build a task
 * kind's program once instead of once per task.
 *
 * On PoCL's OpenCL device; skipped (cmocka skip) where there is none.
 *   - a (name, source) is built once: later calls return the same program
 *     (counted as hits), a different name or text builds anew; every
 *     returned program is retained for the caller;
 *   - past the cache's limit (lowered to 4 here: 64 builds take too long)
 *     the least recently used is dropped, and a
 *     program a caller still holds keeps working (a kernel from it runs);
 *   - a build error carries the compiler's log and caches nothing;
 *   - 4 threads asking for one new program at once get one build;
 *   - contexts borrowing an owner's device run device queries with the same
 *     answers as the owner, report its device name, do not close it (the
 *     owner, destroyed last, still works: ASan would see a double close), and
 *     a borrowed device given up for another (set_device "cpu") is not closed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/context_internal.h"
#include "device/opencl_internal.h"
#include "tessera/tessera.h"

#define KERNEL_FMT                                                                              \
    "__kernel void add_k(__global long *x) { size_t i = get_global_id(0); x[i] += %d; }\n"

typedef struct fixture {
    tsr_context_t *owner; /* its device: the OpenCL device under test */
    tsr_dev_t *dev;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    tsr_context_params_t cp = {.threads = 1};
    if (tsr_context_create(&cp, &f->owner) != TSR_OK) {
        free(f);
        return -1;
    }
    if (tsr_context_set_device(f->owner, "opencl") == TSR_OK)
        f->dev = f->owner->dev;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tsr_context_destroy(f->owner);
    free(f);
    return 0;
}

static tsr_dev_t *need_dev(void **state)
{
    fixture_t *f = *state;
    if (!f->dev) {
        print_message("skipped: no OpenCL device\n");
        skip();
    }
    return f->dev;
}

static char *kernel_text(int k)
{
    static char buf[64][160];
    snprintf(buf[k % 64], sizeof(buf[0]), KERNEL_FMT, k);
    return buf[k % 64];
}

/* Runs add_k of prog over 4 longs set to 1 on dev; returns x[0] (1 + the
 * program's constant). */
static long run_add(tsr_dev_t *dev, cl_program prog)
{
    tsr_cl_dev_t *cl = tsr_dev_cl(dev);
    cl_int code = CL_SUCCESS;
    cl_kernel k = clCreateKernel(prog, "add_k", &code);
    assert_int_equal(code, CL_SUCCESS);
    long x[4] = {1, 1, 1, 1};
    cl_mem m = clCreateBuffer(cl->context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof(x),
                              x, &code);
    assert_int_equal(code, CL_SUCCESS);
    cl_command_queue q = clCreateCommandQueue(cl->context, cl->device, 0, &code);
    assert_int_equal(code, CL_SUCCESS);
    assert_int_equal(clSetKernelArg(k, 0, sizeof(m), &m), CL_SUCCESS);
    size_t global = 4;
    assert_int_equal(clEnqueueNDRangeKernel(q, k, 1, NULL, &global, NULL, 0, NULL, NULL),
                     CL_SUCCESS);
    assert_int_equal(clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(x), x, 0, NULL, NULL),
                     CL_SUCCESS);
    clReleaseCommandQueue(q);
    clReleaseMemObject(m);
    clReleaseKernel(k);
    for (int i = 1; i < 4; i++)
        assert_int_equal(x[i], x[0]);
    return x[0];
}

static void test_built_once(void **state)
{
    tsr_dev_t *dev = need_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    uint64_t b0, h0, b, h;
    tsr_dev_cl_user_counts(dev, &b0, &h0);
    cl_program p1 = NULL, p2 = NULL, p3 = NULL, p4 = NULL;
    assert_int_equal(tsr_dev_cl_user_program(dev, "a", kernel_text(1000), &p1, &err), TSR_OK);
    assert_int_equal(tsr_dev_cl_user_program(dev, "a", kernel_text(1000), &p2, &err), TSR_OK);
    assert_ptr_equal(p1, p2);
    tsr_dev_cl_user_counts(dev, &b, &h);
    assert_int_equal(b - b0, 1);
    assert_int_equal(h - h0, 1);
    /* same text under another name, and another text under the same name */
    assert_int_equal(tsr_dev_cl_user_program(dev, "b", kernel_text(1000), &p3, &err), TSR_OK);
    assert_int_equal(tsr_dev_cl_user_program(dev, "a", kernel_text(1001), &p4, &err), TSR_OK);
    assert_ptr_not_equal(p3, p1);
    assert_ptr_not_equal(p4, p1);
    tsr_dev_cl_user_counts(dev, &b, &h);
    assert_int_equal(b - b0, 3);
    assert_int_equal(run_add(dev, p1), 1001);
    assert_int_equal(run_add(dev, p4), 1002);
    /* each call retained its program for the caller */
    cl_uint refs = 0;
    assert_int_equal(clGetProgramInfo(p1, CL_PROGRAM_REFERENCE_COUNT, sizeof(refs), &refs, NULL),
                     CL_SUCCESS);
    assert_int_equal(refs, 3); /* the cache's and two callers' */
    clReleaseProgram(p1);
    clReleaseProgram(p2);
    clReleaseProgram(p3);
    clReleaseProgram(p4);
}

static void test_eviction(void **state)
{
    tsr_dev_t *dev = need_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    cl_program held = NULL, again = NULL;
    tsr_dev_cl_user_limit(dev, 4);
    assert_int_equal(tsr_dev_cl_user_program(dev, "held", kernel_text(7), &held, &err), TSR_OK);
    /* 5 other programs push "held" out (it is the least recently used) */
    for (int k = 0; k < 5; k++) {
        cl_program p = NULL;
        assert_int_equal(tsr_dev_cl_user_program(dev, "many", kernel_text(100 + k), &p, &err),
                         TSR_OK);
        clReleaseProgram(p);
    }
    uint64_t b0, h0, b, h;
    tsr_dev_cl_user_counts(dev, &b0, &h0);
    assert_int_equal(tsr_dev_cl_user_program(dev, "held", kernel_text(7), &again, &err), TSR_OK);
    tsr_dev_cl_user_counts(dev, &b, &h);
    assert_int_equal(b - b0, 1); /* built again: it had been dropped */
    assert_ptr_not_equal(again, held);
    /* the dropped one still works for the caller holding it */
    assert_int_equal(run_add(dev, held), 8);
    assert_int_equal(run_add(dev, again), 8);
    clReleaseProgram(held);
    clReleaseProgram(again);
    /* the most recent ones are still there */
    cl_program last = NULL;
    tsr_dev_cl_user_counts(dev, &b0, &h0);
    assert_int_equal(tsr_dev_cl_user_program(dev, "many", kernel_text(104), &last, &err),
                     TSR_OK);
    tsr_dev_cl_user_counts(dev, &b, &h);
    assert_int_equal(b, b0);
    assert_int_equal(h - h0, 1);
    clReleaseProgram(last);
    tsr_dev_cl_user_limit(dev, 64);
}

static void test_build_error(void **state)
{
    tsr_dev_t *dev = need_dev(state);
    tsr_error_t err;
    tsr_error_clear(&err);
    const char *bad = "__kernel void broken(__global long *x) { x[0] = undefined_name; }\n";
    cl_program p = (cl_program)(uintptr_t)1;
    for (int round = 0; round < 2; round++) { /* nothing cached: the log both times */
        tsr_error_clear(&err);
        assert_int_not_equal(tsr_dev_cl_user_program(dev, "broken.cl", bad, &p, &err), TSR_OK);
        assert_null(p);
        assert_non_null(strstr(err.message, "broken.cl"));
        assert_non_null(strstr(err.message, "undefined_name"));
    }
}

typedef struct racer {
    tsr_dev_t *dev;
    const char *text;
    cl_program got;
    tsr_status_t rc;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    tsr_error_t err;
    tsr_error_clear(&err);
    r->rc = tsr_dev_cl_user_program(r->dev, "race", r->text, &r->got, &err);
    return NULL;
}

static void test_concurrent_build(void **state)
{
    tsr_dev_t *dev = need_dev(state);
    uint64_t b0, h0, b, h;
    tsr_dev_cl_user_counts(dev, &b0, &h0);
    racer_t r[4];
    pthread_t th[4];
    /* made once, before any racer runs: kernel_text rewrites a static
     * buffer, and a racer reading it while the next call's snprintf ran
     * saw a torn text (a second build; CI 2026-11-29) */
    const char *text = kernel_text(5000);
    for (int i = 0; i < 4; i++) {
        r[i] = (racer_t){.dev = dev, .text = text};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    tsr_dev_cl_user_counts(dev, &b, &h);
    assert_int_equal(b - b0, 1);
    assert_int_equal(h - h0, 3);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].rc, TSR_OK);
        assert_ptr_equal(r[i].got, r[0].got);
    }
    assert_int_equal(run_add(dev, r[0].got), 5001);
    for (int i = 0; i < 4; i++)
        clReleaseProgram(r[i].got);
}

/* A table of n rows (k, v) registered in ctx from CSV text. */
static void register_rows(tsr_context_t *ctx, size_t n)
{
    char path[] = "/tmp/tsr_opencl_user_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    fprintf(fp, "k,v\n");
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        fprintf(fp, "%u,%d\n", (unsigned)(s >> 60), (int)((s >> 20) % 1000) - 500);
    }
    fclose(fp);
    assert_int_equal(tsr_table_register_csv(ctx, "t", path, NULL), TSR_OK);
    unlink(path);
}

/* SUM(v) per k as a string "k:sum;..." (ORDER BY k). */
static void group_sums(tsr_context_t *ctx, char *out, size_t size)
{
    tsr_result_t *res = NULL;
    assert_int_equal(tsr_query(ctx, "SELECT k, SUM(v) FROM t GROUP BY k ORDER BY k", &res),
                     TSR_OK);
    size_t o = 0;
    out[0] = '\0';
    for (size_t r = 0; r < tsr_result_row_count(res) && o < size; r++)
        o += (size_t)snprintf(out + o, size - o, "%lld:%lld;",
                              (long long)tsr_result_int64(res, r, 0),
                              (long long)tsr_result_int64(res, r, 1));
    tsr_result_destroy(res);
}

static void test_borrowed_device(void **state)
{
    tsr_dev_t *dev = need_dev(state);
    fixture_t *f = *state;
    char want[4096], got[4096];
    register_rows(f->owner, 20011);
    group_sums(f->owner, want, sizeof(want));
    for (int round = 0; round < 3; round++) {
        tsr_context_params_t cp = {.threads = 2};
        tsr_context_t *a = NULL, *b = NULL;
        assert_int_equal(tsr_context_create(&cp, &a), TSR_OK);
        assert_int_equal(tsr_context_create(&cp, &b), TSR_OK);
        tsr__context_borrow_device(a, f->owner);
        tsr__context_borrow_device(b, f->owner);
        assert_ptr_equal(a->dev, dev);
        assert_string_equal(tsr_context_device(a), tsr_context_device(f->owner));
        register_rows(a, 20011);
        register_rows(b, 20011);
        group_sums(a, got, sizeof(got));
        assert_string_equal(got, want);
        group_sums(b, got, sizeof(got));
        assert_string_equal(got, want);
        if (round == 1) /* giving a borrowed device up does not close it */
            assert_int_equal(tsr_context_set_device(b, "cpu"), TSR_OK);
        tsr_context_destroy(a);
        tsr_context_destroy(b);
    }
    /* the owner's device survived every borrower */
    group_sums(f->owner, got, sizeof(got));
    assert_string_equal(got, want);
    /* borrowing from a cpu owner makes the borrower cpu */
    tsr_context_params_t cp = {.threads = 1};
    tsr_context_t *cpu_owner = NULL, *c = NULL;
    assert_int_equal(tsr_context_create(&cp, &cpu_owner), TSR_OK);
    assert_int_equal(tsr_context_create(&cp, &c), TSR_OK);
    tsr__context_borrow_device(c, f->owner);
    tsr__context_borrow_device(c, cpu_owner); /* lets the first go, closes nothing */
    assert_null(c->dev);
    assert_string_equal(tsr_context_device(c), "cpu");
    tsr_context_destroy(c);
    tsr_context_destroy(cpu_owner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_built_once),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_concurrent_build),
        cmocka_unit_test(test_borrowed_device),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
