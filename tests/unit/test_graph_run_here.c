/*
 * test_graph_run_here.c - tsr_graph_run_here (graph_internal.h): a graph of
 * one thread started no thread at submit and runs its tasks on the thread
 * that waits (or destroys it). Checked: the task ran on the waiter's thread,
 * a chain and a fan-out give every value (against a simple model: each task
 * appends its index), a failing task fails the wait with its message and its
 * readers are not run, a cancel before the wait cancels everything, a graph
 * destroyed without a wait neither hangs nor leaks, and the flag is ignored
 * after submit and for graphs of more threads (those still start threads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "graph/graph_internal.h"
#include "tessera/tessera.h"

/* kind "who": writes the id of the thread it runs on (8 bytes) */
static tsr_status_t who_fn(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *const *out, size_t nout)
{
    (void)in;
    (void)nin;
    pthread_t self = pthread_self();
    uint64_t id = 0;
    memcpy(&id, &self, sizeof(self) < sizeof(id) ? sizeof(self) : sizeof(id));
    return nout ? tsr_data_set_bytes(tc, out[0], &id, sizeof(id)) : TSR_OK;
}

/* kind "app": its input's bytes plus one byte, its arg (a uint8_t *) */
static tsr_status_t app_fn(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                           tsr_data_t *const *out, size_t nout)
{
    uint8_t buf[256];
    size_t len = 0;
    const void *b = nin ? tsr_data_bytes(in[0], &len) : NULL;
    if (len >= sizeof(buf))
        return tsr_task_fail(tc, TSR_ERR_BAD_INPUT, "too long");
    if (len)
        memcpy(buf, b, len);
    buf[len++] = *(const uint8_t *)tsr_task_arg(tc);
    return nout ? tsr_data_set_bytes(tc, out[0], buf, len) : TSR_OK;
}

static tsr_status_t fail_fn(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                            tsr_data_t *const *out, size_t nout)
{
    (void)in;
    (void)nin;
    (void)out;
    (void)nout;
    return tsr_task_fail(tc, TSR_ERR_BAD_INPUT, "meant to fail");
}

static tsr_graph_t *new_graph(tsr_context_t **ctx, unsigned threads)
{
    tsr_context_params_t cp = {.threads = 2};
    assert_int_equal(tsr_context_create(&cp, ctx), TSR_OK);
    tsr_graph_params_t gp = {.threads = threads};
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(*ctx, &gp, &g), TSR_OK);
    static const tsr_task_def_t defs[] = {{.name = "who", .cpu = who_fn},
                                          {.name = "app", .cpu = app_fn},
                                          {.name = "bad", .cpu = fail_fn}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(tsr_graph_register(g, &defs[i]), TSR_OK);
    return g;
}

static tsr_data_t *add(tsr_graph_t *g, const char *kind, tsr_data_t *in, void *arg)
{
    tsr_data_t *out = NULL;
    assert_int_equal(tsr_graph_data(g, NULL, &out), TSR_OK);
    tsr_task_params_t tp = {.kind = kind,
                            .ninputs = in ? 1 : 0,
                            .inputs = in ? &in : NULL,
                            .noutputs = 1,
                            .outputs = &out,
                            .arg = arg};
    assert_int_equal(tsr_graph_add(g, &tp, NULL), TSR_OK);
    return out;
}

static uint64_t thread_of(const tsr_data_t *d)
{
    size_t len = 0;
    const void *b = tsr_data_bytes(d, &len);
    assert_int_equal(len, 8);
    uint64_t id;
    memcpy(&id, b, 8);
    return id;
}

static uint64_t self_id(void)
{
    pthread_t self = pthread_self();
    uint64_t id = 0;
    memcpy(&id, &self, sizeof(self) < sizeof(id) ? sizeof(self) : sizeof(id));
    return id;
}

static void test_runs_on_waiter(void **state)
{
    (void)state;
    tsr_context_t *ctx;
    tsr_graph_t *g = new_graph(&ctx, 1);
    tsr_graph_run_here(g);
    tsr_data_t *d = add(g, "who", NULL, NULL);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    assert_true(thread_of(d) == self_id());
    assert_int_equal(tsr_graph_wait(g, 0), TSR_OK); /* again: already ended */
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);

    /* without the flag (and with it but 2 threads) the task runs elsewhere */
    for (int k = 0; k < 2; k++) {
        g = new_graph(&ctx, k ? 2 : 1);
        if (k)
            tsr_graph_run_here(g);
        d = add(g, "who", NULL, NULL);
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
        assert_true(thread_of(d) != self_id());
        tsr_graph_destroy(g);
        tsr_context_destroy(ctx);
    }
}

/* A chain of n and a fan-out of n below its head, checked against the model. */
static void test_chain_and_fanout(void **state)
{
    (void)state;
    static uint8_t idx[200];
    for (size_t i = 0; i < sizeof(idx); i++)
        idx[i] = (uint8_t)i;
    const size_t sizes[] = {1, 2, 7, 97, 199};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        tsr_context_t *ctx;
        tsr_graph_t *g = new_graph(&ctx, 1);
        tsr_graph_run_here(g);
        tsr_data_t *chain[200], *fan[200];
        for (size_t i = 0; i < n; i++)
            chain[i] = add(g, "app", i ? chain[i - 1] : NULL, &idx[i]);
        for (size_t i = 0; i < n; i++)
            fan[i] = add(g, "app", chain[0], &idx[i]);
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
        size_t len = 0;
        const uint8_t *b = tsr_data_bytes(chain[n - 1], &len);
        assert_int_equal(len, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(b[i], i);
        for (size_t i = 0; i < n; i++) {
            b = tsr_data_bytes(fan[i], &len);
            assert_int_equal(len, 2);
            assert_int_equal(b[0], 0);
            assert_int_equal(b[1], i);
        }
        tsr_graph_destroy(g);
        tsr_context_destroy(ctx);
    }
}

static void test_failure_and_cancel(void **state)
{
    (void)state;
    static uint8_t one = 1;
    tsr_context_t *ctx;
    tsr_graph_t *g = new_graph(&ctx, 1);
    tsr_graph_run_here(g);
    tsr_data_t *bad = add(g, "bad", NULL, NULL);
    (void)add(g, "app", bad, &one);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_ERR_BAD_INPUT);
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "meant to fail"));
    assert_int_equal(tsr_task_state(tsr_graph_task_at(g, 0)), TSR_TASK_FAILED);
    assert_int_not_equal(tsr_task_state(tsr_graph_task_at(g, 1)), TSR_TASK_DONE);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);

    /* cancelled after submit, before the wait: nothing runs to DONE */
    g = new_graph(&ctx, 1);
    tsr_graph_run_here(g);
    tsr_data_t *d = add(g, "app", NULL, &one);
    (void)add(g, "app", d, &one);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    tsr_graph_cancel(g);
    (void)tsr_graph_wait(g, -1);
    for (uint32_t i = 0; i < 2; i++)
        assert_int_equal(tsr_task_state(tsr_graph_task_at(g, i)), TSR_TASK_CANCELLED);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);

    /* destroyed without a wait: runs (cancelled) inside destroy, no hang */
    g = new_graph(&ctx, 1);
    tsr_graph_run_here(g);
    (void)add(g, "app", NULL, &one);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);

    /* after submit the flag changes nothing (the thread has started) */
    g = new_graph(&ctx, 1);
    d = add(g, "who", NULL, NULL);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    tsr_graph_run_here(g);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    assert_true(thread_of(d) != self_id());
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);

    /* an empty graph */
    g = new_graph(&ctx, 1);
    tsr_graph_run_here(g);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_on_waiter),
        cmocka_unit_test(test_chain_and_fanout),
        cmocka_unit_test(test_failure_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
