/*
 * test_graph.c - task graphs (engine/graph/, tessera/graph.h).
 *
 * The model: a graph is a DAG of tasks; each task writes one BYTES output, an
 * int64 computed from its own id and its inputs' values (mix()). Computing the
 * same values sequentially in index order (tasks only read handles of earlier
 * tasks here) gives what every output must hold, and each run records a
 * global sequence number, so "every task ran exactly once, after all its
 * inputs" is checked edge by edge. Shapes: chains, fan-outs (wider than one
 * deque, to reach the overflow list), diamonds, random DAGs; 1, 2 and 5
 * threads; 0, 1 and prime task counts. Then: failure propagation against the
 * ancestor model, cancel, wait timeouts, cycles and dangling handles, the
 * built-in kinds (sql, concat, identity), plugins, timing, allocation failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/context_internal.h"
#include "tessera/tessera.h"

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t mix(uint32_t id, int64_t acc)
{
    uint64_t s = ((uint64_t)id << 32) ^ (uint64_t)acc;
    return (int64_t)rnd(&s);
}

/* ---- the DAG model -------------------------------------------------------------- */

typedef struct dag {
    uint32_t n;
    uint32_t *in_off, *nin, *in; /* task i reads the outputs of in[in_off[i]..+nin[i]] (< i) */
    size_t nedges;
} dag_t;

typedef struct run_rec {
    atomic_uint seq;      /* global run order */
    atomic_uint *runs;    /* times each task ran */
    uint32_t *order;      /* sequence number of each task's run */
    bool *fails;          /* tasks told to fail */
    atomic_int *blocker;  /* task 0 spins while *blocker != 0 (when set) */
} run_rec_t;

typedef struct task_arg {
    run_rec_t *rec;
    uint32_t id;
} task_arg_t;

static void dag_free(dag_t *d)
{
    free(d->in_off);
    free(d->nin);
    free(d->in);
}

enum { SHAPE_CHAIN, SHAPE_FANOUT, SHAPE_DIAMOND, SHAPE_RANDOM };

static void dag_make(dag_t *d, int shape, uint32_t n, uint64_t *seed)
{
    d->n = n;
    d->in_off = calloc(n + 1, sizeof(uint32_t));
    d->nin = calloc(n + 1, sizeof(uint32_t));
    size_t cap = 4 * (size_t)n + 8;
    d->in = calloc(cap, sizeof(uint32_t));
    assert_non_null(d->in);
    size_t e = 0;
    for (uint32_t i = 0; i < n; i++) {
        d->in_off[i] = (uint32_t)e;
        switch (shape) {
        case SHAPE_CHAIN:
            if (i > 0)
                d->in[e++] = i - 1;
            break;
        case SHAPE_FANOUT: /* 0 -> 1..n-2 -> n-1 (the sink reads up to 3 of them) */
            if (i > 0 && i + 1 < n)
                d->in[e++] = 0;
            else if (i > 0)
                for (uint32_t k = 1; k < i && k <= 3; k++)
                    d->in[e++] = i - k;
            break;
        case SHAPE_DIAMOND: /* stacked diamonds: a -> b, c -> d -> ... */
            if (i % 3 == 1 || i % 3 == 2)
                d->in[e++] = i - (i % 3);
            else if (i > 0) {
                d->in[e++] = i - 1;
                d->in[e++] = i - 2;
            }
            break;
        default: { /* random: up to 3 inputs among earlier tasks, duplicates allowed */
            uint32_t k = i ? (uint32_t)(rnd(seed) % 4) : 0;
            for (uint32_t j = 0; j < k; j++)
                d->in[e++] = (uint32_t)(rnd(seed) % i);
        }
        }
        d->nin[i] = (uint32_t)e - d->in_off[i];
    }
    d->nedges = e;
}

static tsr_status_t rec_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    task_arg_t *a = tsr_task_arg(tc);
    run_rec_t *rec = a->rec;
    if (a->id == 0 && rec->blocker)
        while (atomic_load(rec->blocker)) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    rec->order[a->id] = atomic_fetch_add(&rec->seq, 1);
    atomic_fetch_add(&rec->runs[a->id], 1);
    uint64_t acc = 0; /* wraps: unsigned */
    for (size_t i = 0; i < nin; i++) {
        size_t len;
        const int64_t *v = tsr_data_bytes(in[i], &len);
        if (len != sizeof(int64_t))
            return tsr_task_fail(tc, TSR_ERR_INTERNAL, "input %zu has %zu bytes", i, len);
        acc += (uint64_t)*v;
    }
    if (rec->fails && rec->fails[a->id])
        return tsr_task_fail(tc, TSR_ERR_BAD_INPUT, "task %u told to fail", a->id);
    int64_t v = mix(a->id, (int64_t)acc);
    for (size_t o = 0; o < nout; o++)
        if (tsr_data_set_bytes(tc, out[o], &v, sizeof(v)) != TSR_OK)
            return TSR_ERR_NOMEM;
    return TSR_OK;
}

static tsr_context_t *new_ctx(unsigned threads)
{
    tsr_context_t *ctx = NULL;
    tsr_context_params_t p = {.threads = threads};
    assert_int_equal(tsr_context_create(&p, &ctx), TSR_OK);
    return ctx;
}

static void register_rec(tsr_graph_t *g)
{
    tsr_task_def_t def = {.name = "rec", .cpu = rec_task};
    assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
}

/* Builds the graph of dag d with rec tasks; outs[i] is task i's output. */
static void build(tsr_graph_t *g, const dag_t *d, task_arg_t *args, tsr_data_t **outs)
{
    tsr_data_t *ins[16];
    for (uint32_t i = 0; i < d->n; i++) {
        assert_int_equal(tsr_graph_data(g, NULL, &outs[i]), TSR_OK);
        for (uint32_t k = 0; k < d->nin[i]; k++)
            ins[k] = outs[d->in[d->in_off[i] + k]];
        tsr_task_params_t p = {.kind = "rec", .ninputs = d->nin[i], .inputs = ins,
                               .noutputs = 1, .outputs = &outs[i], .arg = &args[i]};
        assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    }
}

typedef struct harness {
    dag_t dag;
    run_rec_t rec;
    task_arg_t *args;
    tsr_data_t **outs;
    int64_t *expect;  /* model values */
    bool *expect_fail;/* model: failed by itself or by an ancestor */
} harness_t;

static void harness_init(harness_t *h, int shape, uint32_t n, uint64_t *seed)
{
    memset(h, 0, sizeof(*h));
    dag_make(&h->dag, shape, n, seed);
    h->rec.runs = calloc(n + 1, sizeof(atomic_uint));
    h->rec.order = calloc(n + 1, sizeof(uint32_t));
    h->args = calloc(n + 1, sizeof(task_arg_t));
    h->outs = calloc(n + 1, sizeof(tsr_data_t *));
    h->expect = calloc(n + 1, sizeof(int64_t));
    h->expect_fail = calloc(n + 1, sizeof(bool));
    atomic_init(&h->rec.seq, 0);
    for (uint32_t i = 0; i < n; i++) {
        h->args[i].rec = &h->rec;
        h->args[i].id = i;
        atomic_init(&h->rec.runs[i], 0);
    }
}

static void harness_model(harness_t *h)
{
    const dag_t *d = &h->dag;
    for (uint32_t i = 0; i < d->n; i++) {
        uint64_t acc = 0;
        bool f = h->rec.fails && h->rec.fails[i];
        for (uint32_t k = 0; k < d->nin[i]; k++) {
            uint32_t p = d->in[d->in_off[i] + k];
            acc += (uint64_t)h->expect[p];
            f |= h->expect_fail[p];
        }
        h->expect[i] = mix(i, (int64_t)acc);
        h->expect_fail[i] = f;
    }
}

static void harness_free(harness_t *h)
{
    dag_free(&h->dag);
    free(h->rec.runs);
    free(h->rec.order);
    free(h->rec.fails);
    free(h->args);
    free(h->outs);
    free(h->expect);
    free(h->expect_fail);
}

/* Every task ran once, after its inputs, and wrote the model's value. */
static void check_run(harness_t *h, tsr_graph_t *g)
{
    const dag_t *d = &h->dag;
    for (uint32_t i = 0; i < d->n; i++) {
        assert_int_equal(atomic_load(&h->rec.runs[i]), 1);
        for (uint32_t k = 0; k < d->nin[i]; k++)
            assert_true(h->rec.order[d->in[d->in_off[i] + k]] < h->rec.order[i]);
        size_t len;
        const int64_t *v = tsr_data_bytes(h->outs[i], &len);
        assert_int_equal(len, sizeof(int64_t));
        assert_true(*v == h->expect[i]);
        tsr_task_info_t info;
        tsr_task_info(tsr_graph_task_at(g, i), &info);
        assert_int_equal(info.state, TSR_TASK_DONE);
        assert_true(info.queued_ns <= info.start_ns && info.start_ns <= info.end_ns);
        assert_true(info.queued_ns > 0);
    }
    tsr_graph_counts_t c;
    tsr_graph_counts(g, &c);
    assert_int_equal(c.done, d->n);
}

static void run_shape(int shape, uint32_t n, unsigned threads, uint64_t seed)
{
    harness_t h;
    harness_init(&h, shape, n, &seed);
    harness_model(&h);
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    tsr_graph_params_t gp = {.threads = threads};
    assert_int_equal(tsr_graph_create(ctx, &gp, &g), TSR_OK);
    register_rec(g);
    build(g, &h.dag, h.args, h.outs);
    assert_int_equal(tsr_graph_task_count(g), n);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 60000), TSR_OK);
    check_run(&h, g);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
    harness_free(&h);
}

static void test_shapes(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 97, 1009, 8209};
    static const unsigned threads[] = {1, 2, 5};
    uint64_t seed = 42;
    for (int shape = SHAPE_CHAIN; shape <= SHAPE_RANDOM; shape++)
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
            for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++)
                run_shape(shape, sizes[s], threads[t], seed++);
}

/* Wider than one deque (DEQUE_MAX = 2^17): the overflow list takes the rest. */
static void test_wide_fanout(void **state)
{
    (void)state;
    run_shape(SHAPE_FANOUT, (1u << 17) + 1000, 2, 7);
}

static void test_empty_graph(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 0), TSR_ERR_INVALID_ARG); /* not submitted */
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 0), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_ERR_INVALID_ARG); /* only once */
    tsr_graph_destroy(g);
    tsr_graph_destroy(NULL);
    tsr_context_destroy(ctx);
}

/* ---- failures ---------------------------------------------------------------------- */

static void test_failure_propagation(void **state)
{
    (void)state;
    uint64_t seed = 99;
    for (int round = 0; round < 12; round++) {
        harness_t h;
        uint32_t n = 50 + (uint32_t)(rnd(&seed) % 400);
        harness_init(&h, round % 3 == 0 ? SHAPE_DIAMOND : SHAPE_RANDOM, n, &seed);
        h.rec.fails = calloc(n, sizeof(bool));
        for (int k = 0; k < 3; k++)
            h.rec.fails[rnd(&seed) % n] = true;
        harness_model(&h);
        uint32_t first = UINT32_MAX; /* lowest task failing by itself */
        for (uint32_t i = 0; i < n && first == UINT32_MAX; i++) {
            bool inherited = false;
            for (uint32_t k = 0; k < h.dag.nin[i]; k++)
                inherited |= h.expect_fail[h.dag.in[h.dag.in_off[i] + k]];
            if (h.rec.fails[i] && !inherited)
                first = i;
        }
        tsr_context_t *ctx = new_ctx(2);
        tsr_graph_t *g = NULL;
        tsr_graph_params_t gp = {.threads = 1 + (unsigned)(round % 3)};
        assert_int_equal(tsr_graph_create(ctx, &gp, &g), TSR_OK);
        register_rec(g);
        build(g, &h.dag, h.args, h.outs);
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        tsr_status_t rc = tsr_graph_wait(g, 60000);
        assert_int_equal(rc, first == UINT32_MAX ? TSR_OK : TSR_ERR_BAD_INPUT);
        if (first != UINT32_MAX) {
            tsr_error_info_t e;
            tsr_context_last_error(ctx, &e);
            char want[64];
            snprintf(want, sizeof(want), "rec#%u failed", first);
            assert_non_null(strstr(e.message, want));
        }
        for (uint32_t i = 0; i < n; i++) {
            tsr_task_info_t info;
            tsr_task_info(tsr_graph_task_at(g, i), &info);
            if (h.expect_fail[i]) {
                assert_int_equal(info.state, TSR_TASK_FAILED);
                assert_int_equal(info.status, TSR_ERR_BAD_INPUT);
                assert_true(info.message[0] != 0);
            } else {
                assert_int_equal(info.state, TSR_TASK_DONE);
                assert_int_equal(atomic_load(&h.rec.runs[i]), 1);
                size_t len;
                const int64_t *v = tsr_data_bytes(h.outs[i], &len);
                assert_int_equal(len, 8);
                assert_true(*v == h.expect[i]);
            }
            /* a task whose input failed never ran */
            bool inherited = false;
            for (uint32_t k = 0; k < h.dag.nin[i]; k++)
                inherited |= h.expect_fail[h.dag.in[h.dag.in_off[i] + k]];
            if (inherited)
                assert_int_equal(atomic_load(&h.rec.runs[i]), 0);
        }
        tsr_graph_destroy(g);
        tsr_context_destroy(ctx);
        harness_free(&h);
    }
}

/* ---- cancel and timeouts ----------------------------------------------------------- */

static void test_cancel_and_timeout(void **state)
{
    (void)state;
    for (int shape = SHAPE_CHAIN; shape <= SHAPE_FANOUT; shape++) {
        uint64_t seed = 5;
        harness_t h;
        uint32_t n = 200;
        harness_init(&h, shape, n, &seed);
        atomic_int blocker;
        atomic_init(&blocker, 1);
        h.rec.blocker = &blocker;
        tsr_context_t *ctx = new_ctx(2);
        tsr_graph_t *g = NULL;
        assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
        register_rec(g);
        build(g, &h.dag, h.args, h.outs);
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        assert_int_equal(tsr_graph_wait(g, 0), TSR_ERR_TIMEOUT);
        assert_int_equal(tsr_graph_wait(g, 30), TSR_ERR_TIMEOUT);
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, "30 ms"));
        /* task 0 is running (or about to): the rest wait for it */
        tsr_task_t *t0 = tsr_graph_task_at(g, 0);
        while (tsr_task_state(t0) != TSR_TASK_RUNNING) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        tsr_graph_counts_t c;
        tsr_graph_counts(g, &c);
        assert_int_equal(c.running, 1);
        assert_int_equal(c.pending, n - 1);
        tsr_graph_cancel(g);
        atomic_store(&blocker, 0);
        assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
        assert_int_equal(tsr_task_state(t0), TSR_TASK_DONE);
        for (uint32_t i = 1; i < n; i++) {
            assert_int_equal(tsr_task_state(tsr_graph_task_at(g, i)), TSR_TASK_CANCELLED);
            assert_int_equal(atomic_load(&h.rec.runs[i]), 0);
        }
        tsr_graph_cancel(g); /* after the end: harmless */
        tsr_graph_destroy(g);
        tsr_context_destroy(ctx);
        harness_free(&h);
    }
}

static void test_cancel_before_submit_and_destroy_running(void **state)
{
    (void)state;
    uint64_t seed = 6;
    harness_t h;
    harness_init(&h, SHAPE_RANDOM, 300, &seed);
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    register_rec(g);
    build(g, &h.dag, h.args, h.outs);
    tsr_graph_cancel(g);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    tsr_graph_counts_t c;
    tsr_graph_counts(g, &c);
    assert_int_equal(c.cancelled, 300);
    tsr_graph_destroy(g);

    /* destroying a running graph cancels it and waits for the running task */
    atomic_int blocker;
    atomic_init(&blocker, 1);
    harness_t h2;
    harness_init(&h2, SHAPE_CHAIN, 50, &seed);
    h2.rec.blocker = &blocker;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    register_rec(g);
    build(g, &h2.dag, h2.args, h2.outs);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    while (tsr_task_state(tsr_graph_task_at(g, 0)) != TSR_TASK_RUNNING) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&blocker, 0);
    tsr_graph_destroy(g);
    assert_int_equal(atomic_load(&h2.rec.runs[0]), 1);
    tsr_context_destroy(ctx);
    harness_free(&h);
    harness_free(&h2);
}

/* ---- interrupting running tasks (tsr_task_cancelled, "sql" tasks) ---------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wait_running(tsr_task_t *t)
{
    uint64_t t0 = mono_ms();
    while (tsr_task_state(t) != TSR_TASK_RUNNING) {
        assert_true(mono_ms() - t0 < 30000);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* A long user task: works in 1 ms steps for up to 60 s, polling
 * tsr_task_cancelled between steps; stops with an error when it says so. */
static tsr_status_t poll_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                              tsr_data_t *const *out, size_t nout)
{
    (void)in, (void)nin;
    atomic_int *stopped = tsr_task_arg(tc);
    uint64_t t0 = mono_ms();
    while (mono_ms() - t0 < 60000) {
        if (tsr_task_cancelled(tc)) {
            if (stopped)
                atomic_fetch_add(stopped, 1);
            return tsr_task_fail(tc, TSR_ERR_CANCELLED, "stopped early");
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return nout ? tsr_data_set_bytes(tc, out[0], "done", 4) : TSR_OK;
}

/* tsr_graph_cancel reaches running tasks: polling user tasks and "sql" tasks
 * stop within a bound far below their runtime and end CANCELLED (not
 * FAILED), tasks after them do not run, wait returns TSR_OK; the context's
 * cancel token does the same; destroying a running graph is prompt. */
static void test_cancel_running_tasks(void **state)
{
    (void)state;
    enum { ROWS = 200000 }; /* the self-join below: ROWS^2 / 8 pairs, ~15 s */
    int64_t *k = malloc(ROWS * sizeof(int64_t)), *v = malloc(ROWS * sizeof(int64_t));
    assert_non_null(k);
    assert_non_null(v);
    for (int64_t i = 0; i < ROWS; i++) {
        k[i] = i % 8;
        v[i] = i;
    }
    tsr_column_data_t cols[] = {{.name = "k", .type = TSR_TYPE_INT64, .values = k},
                                {.name = "v", .type = TSR_TYPE_INT64, .values = v}};
    for (int how = 0; how < 3; how++) { /* tsr_graph_cancel, context token, destroy */
        tsr_context_t *ctx = new_ctx(2);
        assert_int_equal(tsr_table_register_columns(ctx, "big", 2, cols, ROWS), TSR_OK);
        tsr_cancel_t *tok = NULL;
        assert_int_equal(tsr_cancel_create(&tok), TSR_OK);
        tsr_context_set_cancel(ctx, tok);
        tsr_graph_t *g = NULL;
        tsr_graph_params_t gp = {.threads = 3};
        assert_int_equal(tsr_graph_create(ctx, &gp, &g), TSR_OK);
        tsr_task_def_t def = {.name = "poll", .cpu = poll_task};
        assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
        atomic_int stopped;
        atomic_init(&stopped, 0);
        tsr_data_t *big, *p1, *after, *q;
        assert_int_equal(tsr_graph_data_table(g, "big", &big), TSR_OK);
        assert_int_equal(tsr_graph_data(g, "p1", &p1), TSR_OK);
        assert_int_equal(tsr_graph_data(g, "after", &after), TSR_OK);
        assert_int_equal(tsr_graph_data(g, "q", &q), TSR_OK);
        tsr_task_t *tp, *ta, *tq;
        tsr_task_params_t pp = {.kind = "poll", .noutputs = 1, .outputs = &p1, .arg = &stopped};
        assert_int_equal(tsr_graph_add(g, &pp, &tp), TSR_OK);
        tsr_task_params_t ap = {.kind = "poll",
                                .ninputs = 1,
                                .inputs = &p1,
                                .noutputs = 1,
                                .outputs = &after,
                                .arg = &stopped};
        assert_int_equal(tsr_graph_add(g, &ap, &ta), TSR_OK);
        tsr_task_params_t sp = {.kind = "sql",
                                .sql = "SELECT COUNT(*) AS n FROM big x JOIN big y "
                                       "ON x.k = y.k WHERE x.v + y.v < 0",
                                .ninputs = 1,
                                .inputs = &big,
                                .noutputs = 1,
                                .outputs = &q};
        assert_int_equal(tsr_graph_add(g, &sp, &tq), TSR_OK);
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        wait_running(tp);
        wait_running(tq);
        struct timespec ts = {0, 50000000}; /* both well under way */
        nanosleep(&ts, NULL);
        assert_false(tsr_cancel_is_set(tok));
        uint64_t t0 = mono_ms();
        if (how == 0)
            tsr_graph_cancel(g);
        else if (how == 1)
            tsr_cancel_set(tok);
        if (how == 2) {
            tsr_graph_destroy(g); /* cancels and waits for the running tasks */
            g = NULL;
        } else {
            assert_int_equal(tsr_graph_wait(g, 30000), TSR_OK);
        }
        uint64_t lag = mono_ms() - t0;
        print_message("how %d: running tasks ended %llu ms after the cancel\n", how,
                      (unsigned long long)lag);
        assert_true(lag < 3000); /* they would run 15-60 s */
        assert_int_equal(atomic_load(&stopped), 1);
        if (g) {
            tsr_task_info_t info;
            tsr_task_info(tp, &info);
            assert_int_equal(info.state, TSR_TASK_CANCELLED);
            assert_int_equal(info.status, TSR_OK);
            assert_string_equal(info.message, "");
            assert_int_equal(tsr_task_state(tq), TSR_TASK_CANCELLED);
            assert_int_equal(tsr_task_state(ta), TSR_TASK_CANCELLED); /* never ran */
            assert_int_equal(tsr_data_kind(q), TSR_DATA_EMPTY);
            tsr_graph_counts_t c;
            tsr_graph_counts(g, &c);
            assert_int_equal(c.cancelled, 3);
            tsr_graph_destroy(g);
        }
        tsr_context_destroy(ctx);
        tsr_cancel_destroy(tok);
    }
    free(k);
    free(v);
}

/* ---- refused graphs ------------------------------------------------------------------ */

static tsr_status_t nop_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    (void)tc, (void)in, (void)nin, (void)out, (void)nout;
    return TSR_OK;
}

static void add_nop(tsr_graph_t *g, const char *label, size_t nin, tsr_data_t **in, size_t nout,
                    tsr_data_t **out, tsr_status_t want)
{
    tsr_task_params_t p = {.kind = "nop", .label = label, .ninputs = nin, .inputs = in,
                           .noutputs = nout, .outputs = out};
    assert_int_equal(tsr_graph_add(g, &p, NULL), want);
}

static tsr_graph_t *nop_graph(tsr_context_t *ctx)
{
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_task_def_t def = {.name = "nop", .cpu = nop_task, .cuda_kernel = "nop_kernel"};
    assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
    return g;
}

static void expect_submit_error(tsr_context_t *ctx, tsr_graph_t *g, tsr_status_t want,
                                const char *const *needles)
{
    assert_int_equal(tsr_graph_submit(g), want);
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    for (; *needles; needles++) {
        if (!strstr(e.message, *needles))
            fail_msg("'%s' not in '%s'", *needles, e.message);
    }
}

static void test_cycles_rejected(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_data_t *x, *y, *z, *w;

    /* two tasks feeding each other */
    tsr_graph_t *g = nop_graph(ctx);
    tsr_graph_data(g, "x", &x);
    tsr_graph_data(g, "y", &y);
    add_nop(g, "a", 1, &x, 1, &y, TSR_OK);
    add_nop(g, "b", 1, &y, 1, &x, TSR_OK);
    expect_submit_error(ctx, g, TSR_ERR_INVALID_ARG,
                        (const char *[]){"cycle", "a -> b", NULL});
    assert_int_equal(tsr_task_state(tsr_graph_task_at(g, 0)), TSR_TASK_PENDING);
    tsr_graph_destroy(g);

    /* a task reading its own output */
    g = nop_graph(ctx);
    tsr_graph_data(g, "x", &x);
    add_nop(g, "self", 1, &x, 1, &x, TSR_OK);
    expect_submit_error(ctx, g, TSR_ERR_INVALID_ARG, (const char *[]){"self -> self", NULL});
    tsr_graph_destroy(g);

    /* a 3-cycle behind a valid prefix, with a task downstream of it */
    g = nop_graph(ctx);
    tsr_data_t *src, *v;
    assert_int_equal(tsr_graph_data_bytes(g, "src", "abc", 3, &src), TSR_OK);
    tsr_graph_data(g, "x", &x);
    tsr_graph_data(g, "y", &y);
    tsr_graph_data(g, "z", &z);
    tsr_graph_data(g, "w", &w);
    tsr_graph_data(g, "v", &v);
    add_nop(g, "head", 1, &src, 1, &v, TSR_OK);
    add_nop(g, "p", 2, (tsr_data_t *[]){v, z}, 1, &x, TSR_OK);
    add_nop(g, "q", 1, &x, 1, &y, TSR_OK);
    add_nop(g, "r", 1, &y, 1, &z, TSR_OK);
    add_nop(g, "tail", 1, &z, 1, &w, TSR_OK);
    expect_submit_error(ctx, g, TSR_ERR_INVALID_ARG,
                        (const char *[]){"cycle", "p", "q", "r", NULL});
    tsr_graph_destroy(g);

    /* dangling: read but never written */
    g = nop_graph(ctx);
    tsr_graph_data(g, "orphan", &x);
    tsr_graph_data(g, NULL, &y);
    add_nop(g, "reader", 1, &x, 1, &y, TSR_OK);
    expect_submit_error(ctx, g, TSR_ERR_INVALID_ARG,
                        (const char *[]){"reader", "orphan", "dangling", NULL});
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* tsr_graph_task_set_device: the words a cluster understands, kept per task;
 * unknown words and calls after submit refused; embedded runs ignore it. */
static void test_task_device(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = nop_graph(ctx);
    tsr_data_t *src, *x;
    assert_int_equal(tsr_graph_data_bytes(g, "src", "abc", 3, &src), TSR_OK);
    tsr_graph_data(g, "x", &x);
    tsr_task_t *t = NULL;
    tsr_task_params_t p = {.kind = "identity", .ninputs = 1, .inputs = &src, .noutputs = 1,
                           .outputs = &x};
    assert_int_equal(tsr_graph_add(g, &p, &t), TSR_OK);
    assert_string_equal(tsr_task_device(t), "");
    static const char *const OK[] = {"cpu", "auto", "gpu", "cuda", "opencl", "cuda0", "opencl12"};
    for (size_t k = 0; k < sizeof(OK) / sizeof(OK[0]); k++) {
        assert_int_equal(tsr_graph_task_set_device(t, OK[k]), TSR_OK);
        assert_string_equal(tsr_task_device(t), OK[k]);
    }
    static const char *const BAD[] = {"tpu", "CUDA", "cuda-1", "opencl123456", "cpu0", " gpu"};
    for (size_t k = 0; k < sizeof(BAD) / sizeof(BAD[0]); k++) {
        assert_int_equal(tsr_graph_task_set_device(t, BAD[k]), TSR_ERR_INVALID_ARG);
        tsr_error_info_t e;
        tsr_context_last_error(ctx, &e);
        assert_non_null(strstr(e.message, "unknown device"));
        assert_string_equal(tsr_task_device(t), "opencl12"); /* unchanged */
    }
    assert_int_equal(tsr_graph_task_set_device(t, NULL), TSR_OK);
    assert_string_equal(tsr_task_device(t), "");
    assert_int_equal(tsr_graph_task_set_device(t, "cuda"), TSR_OK);
    assert_int_equal(tsr_graph_task_set_device(NULL, "cuda"), TSR_ERR_INVALID_ARG);
    assert_string_equal(tsr_task_device(NULL), "");
    assert_int_equal(tsr_graph_submit(g), TSR_OK); /* embedded: runs on the CPU anyway */
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    assert_int_equal(tsr_task_state(t), TSR_TASK_DONE);
    assert_int_equal(tsr_graph_task_set_device(t, "gpu"), TSR_ERR_INVALID_ARG);
    assert_string_equal(tsr_task_device(t), "cuda");
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

static void test_bad_builds(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = nop_graph(ctx), *g2 = nop_graph(ctx);
    tsr_data_t *a, *b, *c, *other, *val;
    assert_int_equal(tsr_graph_data(g, "a", &a), TSR_OK);
    assert_int_equal(tsr_graph_data(g, "b", &b), TSR_OK);
    assert_int_equal(tsr_graph_data(g, NULL, &c), TSR_OK);
    assert_int_equal(tsr_graph_data(g2, "o", &other), TSR_OK);
    assert_int_equal(tsr_graph_data_bytes(g, "val", "x", 1, &val), TSR_OK);
    assert_int_equal(tsr_graph_data(g, "1bad", &c), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_graph_data(g, "sp ace", &c), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_graph_data_table(g, "nosuch", &c), TSR_ERR_NOT_FOUND);

    tsr_task_def_t dup = {.name = "nop", .cpu = nop_task};
    assert_int_equal(tsr_graph_register(g, &dup), TSR_ERR_EXISTS);
    dup.name = "sql";
    assert_int_equal(tsr_graph_register(g, &dup), TSR_ERR_EXISTS);
    dup.cpu = NULL;
    dup.name = "x";
    assert_int_equal(tsr_graph_register(g, &dup), TSR_ERR_INVALID_ARG);

    tsr_task_params_t p = {.kind = "nosuch"};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_ERR_NOT_FOUND);
    add_nop(g, NULL, 1, &other, 1, &a, TSR_ERR_INVALID_ARG); /* another graph's handle */
    add_nop(g, NULL, 0, NULL, 1, &val, TSR_ERR_INVALID_ARG); /* output holds a value */
    add_nop(g, NULL, 0, NULL, 2, (tsr_data_t *[]){a, a}, TSR_ERR_INVALID_ARG);
    add_nop(g, "w1", 1, &val, 1, &a, TSR_OK);
    add_nop(g, "w2", 0, NULL, 1, &a, TSR_ERR_INVALID_ARG); /* written twice */
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "already written"));
    /* built-in arities */
    p = (tsr_task_params_t){.kind = "identity", .ninputs = 2, .inputs = (tsr_data_t *[]){a, val},
                            .noutputs = 1, .outputs = &b};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_ERR_INVALID_ARG);
    p = (tsr_task_params_t){.kind = "sql", .ninputs = 1, .inputs = &a, .noutputs = 1,
                            .outputs = &b};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_ERR_INVALID_ARG); /* no SQL */
    p.sql = "SELECT 1";
    p.inputs = &c; /* unnamed input */
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_ERR_INVALID_ARG);
    p = (tsr_task_params_t){.kind = "concat", .noutputs = 1, .outputs = &b};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_ERR_INVALID_ARG);

    add_nop(g, "fine", 1, &a, 1, &b, TSR_OK);
    /* kinds registered after tasks were added (the kind table grows) */
    for (int i = 0; i < 40; i++) {
        char kn[16];
        snprintf(kn, sizeof(kn), "k%d", i);
        tsr_task_def_t more = {.name = kn, .cpu = nop_task};
        assert_int_equal(tsr_graph_register(g, &more), TSR_OK);
    }
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    add_nop(g, "late", 1, &a, 1, &c, TSR_ERR_INVALID_ARG); /* after submit */
    assert_int_equal(tsr_graph_data(g, "late", &c), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    tsr_graph_destroy(g);
    tsr_graph_destroy(g2);

    /* cluster mode is not there yet */
    tsr_graph_params_t gp = {.scheduler = "127.0.0.1:7000"};
    assert_int_equal(tsr_graph_create(ctx, &gp, &g), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_ERR_UNAVAILABLE);
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "not available"));
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* ---- built-in kinds ---------------------------------------------------------------- */

/* Makes a table: n rows of (k VARCHAR from names[i % nnames] or NULL every 7th,
 * v INT64 = i + base). */
typedef struct gen_arg {
    size_t n;
    int64_t base;
    const char *const *names;
    size_t nnames;
} gen_arg_t;

static tsr_status_t gen_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                             tsr_data_t *const *out, size_t nout)
{
    (void)in, (void)nin, (void)nout;
    const gen_arg_t *a = tsr_task_arg(tc);
    const char **ks = malloc((a->n + 1) * sizeof(char *));
    int64_t *vs = malloc((a->n + 1) * sizeof(int64_t));
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return TSR_ERR_NOMEM;
    }
    for (size_t i = 0; i < a->n; i++) {
        ks[i] = i % 7 == 3 ? NULL : a->names[i % a->nnames];
        vs[i] = (int64_t)i + a->base;
    }
    tsr_column_data_t cols[] = {{.name = "k", .type = TSR_TYPE_VARCHAR, .values = ks},
                                {.name = "v", .type = TSR_TYPE_INT64, .values = vs}};
    tsr_status_t rc = tsr_data_set_columns(tc, out[0], 2, cols, a->n);
    free(ks);
    free(vs);
    return rc;
}

static void test_sql_concat_identity(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    int64_t tv[] = {5, 7, 11, 13};
    const char *tk[] = {"a", "b", "a", "c"};
    tsr_column_data_t cols[] = {{.name = "k", .type = TSR_TYPE_VARCHAR, .values = tk},
                                {.name = "v", .type = TSR_TYPE_INT64, .values = tv}};
    assert_int_equal(tsr_table_register_columns(ctx, "base", 2, cols, 4), TSR_OK);

    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_task_def_t def = {.name = "gen", .cpu = gen_task};
    assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
    static const char *const n1[] = {"a", "b", "c"}, *const n2[] = {"c", "d", "a", "e"};
    gen_arg_t g1 = {.n = 10000, .base = 0, .names = n1, .nnames = 3};  /* > one batch */
    gen_arg_t g2 = {.n = 97, .base = 1000000, .names = n2, .nnames = 4};
    tsr_data_t *base, *t1, *t2, *all, *same, *agg, *joined, *bad, *after_bad;
    assert_int_equal(tsr_graph_data_table(g, "base", &base), TSR_OK);
    assert_string_equal(tsr_data_name(base), "base");
    tsr_graph_data(g, "t1", &t1);
    tsr_graph_data(g, "t2", &t2);
    tsr_graph_data(g, "allrows", &all);
    tsr_graph_data(g, "same", &same);
    tsr_graph_data(g, "agg", &agg);
    tsr_graph_data(g, "joined", &joined);
    tsr_graph_data(g, "bad", &bad);
    tsr_graph_data(g, "after_bad", &after_bad);
    tsr_task_params_t p = {.kind = "gen", .noutputs = 1, .outputs = &t1, .arg = &g1};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p.outputs = &t2;
    p.arg = &g2;
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "concat", .ninputs = 2, .inputs = (tsr_data_t *[]){t1, t2},
                            .noutputs = 1, .outputs = &all};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "identity", .ninputs = 1, .inputs = &all, .noutputs = 1,
                            .outputs = &same};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "sql", .label = "aggregate",
                            .sql = "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM same "
                                   "GROUP BY k ORDER BY k",
                            .ninputs = 1, .inputs = &same, .noutputs = 1, .outputs = &agg};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "sql",
                            .sql = "SELECT base.k, base.v, agg.n FROM base JOIN agg "
                                   "ON base.k = agg.k ORDER BY base.v",
                            .ninputs = 2, .inputs = (tsr_data_t *[]){base, agg}, .noutputs = 1,
                            .outputs = &joined};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "sql", .label = "broken", .sql = "SELECT nosuch FROM base",
                            .ninputs = 1, .inputs = &base, .noutputs = 1, .outputs = &bad};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "identity", .label = "downstream", .ninputs = 1,
                            .inputs = &bad, .noutputs = 1, .outputs = &after_bad};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);

    /* replacing the catalog table while the graph holds it is safe */
    int64_t tv2[] = {1};
    const char *tk2[] = {"z"};
    tsr_column_data_t cols2[] = {{.name = "k", .type = TSR_TYPE_VARCHAR, .values = tk2},
                                 {.name = "v", .type = TSR_TYPE_INT64, .values = tv2}};
    assert_int_equal(tsr_table_register_columns(ctx, "base", 2, cols2, 1), TSR_OK);

    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 60000), TSR_ERR_NOT_FOUND);
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "broken"));
    tsr_task_info_t info;
    tsr_task_info(tsr_graph_task_at(g, 7), &info);
    assert_int_equal(info.state, TSR_TASK_FAILED);
    assert_non_null(strstr(info.message, "broken"));

    /* the model of agg: both generated tables together */
    int64_t cnt[5] = {0}, sum[5] = {0}, nulls = 0, nullsum = 0;
    const gen_arg_t *gs[] = {&g1, &g2};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < gs[t]->n; i++) {
            int64_t v = (int64_t)i + gs[t]->base;
            if (i % 7 == 3) {
                nulls++;
                nullsum += v;
                continue;
            }
            int k = gs[t]->names[i % gs[t]->nnames][0] - 'a';
            cnt[k]++;
            sum[k] += v;
        }
    assert_int_equal(tsr_data_row_count(all), g1.n + g2.n);
    assert_int_equal(tsr_data_row_count(same), g1.n + g2.n);
    assert_int_equal(tsr_data_column_count(agg), 3);
    assert_string_equal(tsr_data_column_name(agg, 2), "s");
    assert_int_equal(tsr_data_column_type(agg, 1), TSR_TYPE_INT64);
    assert_int_equal(tsr_data_row_count(agg), 6); /* NULL, a, b, c, d, e */
    assert_true(tsr_data_is_null(agg, 0, 0));
    assert_int_equal(tsr_data_int64(agg, 0, 1), nulls);
    assert_int_equal(tsr_data_int64(agg, 0, 2), nullsum);
    for (size_t r = 1; r < 6; r++) {
        size_t len;
        const char *k = tsr_data_string(agg, r, 0, &len);
        assert_int_equal(len, 1);
        assert_int_equal(k[0], 'a' + (int)(r - 1));
        assert_int_equal(tsr_data_int64(agg, r, 1), cnt[r - 1]);
        assert_int_equal(tsr_data_int64(agg, r, 2), sum[r - 1]);
    }
    /* the old "base" (4 rows) was used, not its replacement */
    assert_int_equal(tsr_data_row_count(joined), 4);
    for (size_t r = 0; r < 4; r++) {
        assert_int_equal(tsr_data_int64(joined, r, 1), tv[r]);
        assert_int_equal(tsr_data_int64(joined, r, 2), cnt[tk[r][0] - 'a']);
    }
    assert_int_equal(tsr_data_kind(bad), TSR_DATA_EMPTY);
    assert_int_equal(tsr_data_kind(after_bad), TSR_DATA_EMPTY);
    assert_int_equal(tsr_data_row_count(bad), 0);
    assert_true(tsr_data_is_null(agg, 99, 0)); /* out of range */
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

static void test_bytes_concat_and_types(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_data_t *a, *b, *e, *ab, *ab2, *mixed, *sq;
    assert_int_equal(tsr_graph_data_bytes(g, "a", "hello ", 6, &a), TSR_OK);
    assert_int_equal(tsr_graph_data_bytes(g, "b", "world", 5, &b), TSR_OK);
    assert_int_equal(tsr_graph_data_bytes(g, "e", NULL, 0, &e), TSR_OK);
    tsr_graph_data(g, "ab", &ab);
    tsr_graph_data(g, "ab2", &ab2);
    tsr_graph_data(g, "mixed", &mixed);
    tsr_graph_data(g, "sq", &sq);
    tsr_task_params_t p = {.kind = "concat", .ninputs = 3,
                           .inputs = (tsr_data_t *[]){a, e, b}, .noutputs = 1, .outputs = &ab};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "identity", .ninputs = 1, .inputs = &ab, .noutputs = 1,
                            .outputs = &ab2};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "sql", .sql = "SELECT 1", .ninputs = 1, .inputs = &a,
                            .noutputs = 1, .outputs = &sq};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_ERR_TYPE); /* sql over bytes */
    size_t len;
    const char *s = tsr_data_bytes(ab2, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(s, "hello world", 11);
    assert_int_equal(tsr_data_kind(e), TSR_DATA_BYTES);
    assert_null(tsr_data_bytes(sq, &len));
    assert_int_equal(len, 0);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* Misbehaving user tasks and bad SQL fail cleanly, with a message. */
static tsr_status_t misbehave_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                                   tsr_data_t *const *out, size_t nout)
{
    (void)nin, (void)nout;
    const char *what = tsr_task_param(tc);
    int64_t v = 1;
    if (strcmp(what, "write_input") == 0) /* not its output */
        return tsr_data_set_bytes(tc, (tsr_data_t *)in[0], &v, sizeof(v));
    if (strcmp(what, "dup_columns") == 0) {
        tsr_column_data_t cols[] = {{.name = "a", .type = TSR_TYPE_INT64, .values = &v},
                                    {.name = "A", .type = TSR_TYPE_INT64, .values = &v}};
        return tsr_data_set_columns(tc, out[0], 2, cols, 1);
    }
    if (strcmp(what, "no_columns") == 0)
        return tsr_data_set_columns(tc, out[0], 0, NULL, 0);
    if (strcmp(what, "ints") == 0) {
        tsr_column_data_t col = {.name = "a", .type = TSR_TYPE_INT64, .values = &v};
        return tsr_data_set_columns(tc, out[0], 1, &col, 1);
    }
    if (strcmp(what, "doubles") == 0) {
        double d = 1.5;
        tsr_column_data_t col = {.name = "a", .type = TSR_TYPE_DOUBLE, .values = &d};
        return tsr_data_set_columns(tc, out[0], 1, &col, 1);
    }
    return TSR_ERR_INTERNAL; /* no message: the status alone */
}

static void test_task_errors(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_task_def_t def = {.name = "mis", .cpu = misbehave_task};
    assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
    static const char *const whats[] = {"write_input", "dup_columns", "no_columns", "silent",
                                        "ints", "doubles"};
    tsr_data_t *src, *o[6], *mixed, *bad_sql, *typo_sql;
    assert_int_equal(tsr_graph_data_bytes(g, "src", "x", 1, &src), TSR_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tsr_graph_data(g, NULL, &o[i]), TSR_OK);
        tsr_task_params_t p = {.kind = "mis", .label = whats[i], .param = whats[i], .ninputs = 1,
                               .inputs = &src, .noutputs = 1, .outputs = &o[i]};
        assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    }
    tsr_graph_data(g, "mixed", &mixed);
    tsr_graph_data(g, "bad_sql", &bad_sql);
    tsr_graph_data(g, "typo_sql", &typo_sql);
    tsr_task_params_t p = {.kind = "concat", .label = "mixed", .ninputs = 2,
                           .inputs = (tsr_data_t *[]){o[4], o[5]}, .noutputs = 1,
                           .outputs = &mixed};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "concat", .label = "bytes_and_table", .ninputs = 2,
                            .inputs = (tsr_data_t *[]){src, o[4]}, .noutputs = 1,
                            .outputs = &bad_sql};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    tsr_data_t *ints;
    tsr_graph_data(g, "ints", &ints);
    p = (tsr_task_params_t){.kind = "identity", .ninputs = 1, .inputs = &o[4], .noutputs = 1,
                            .outputs = &ints};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "sql", .label = "typo", .sql = "SELECT a FROM ints WHERE",
                            .ninputs = 1, .inputs = &ints, .noutputs = 1, .outputs = &typo_sql};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_ERR_INVALID_ARG); /* the first: write_input */
    static const struct {
        tsr_status_t status;
        const char *msg; /* NULL: succeeds */
    } want[] = {
        {TSR_ERR_INVALID_ARG, "not an output"}, {TSR_ERR_INVALID_ARG, "duplicate column"},
        {TSR_ERR_INVALID_ARG, "needs columns"}, {TSR_ERR_INTERNAL, ""},
        {TSR_OK, NULL},                         {TSR_OK, NULL},
        {TSR_ERR_TYPE, "other column types"},   {TSR_ERR_TYPE, "all inputs must be"},
        {TSR_OK, NULL},                         {TSR_ERR_SYNTAX, "at line 1, column"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        tsr_task_info_t info;
        tsr_task_info(tsr_graph_task_at(g, i), &info);
        if (!want[i].msg) {
            assert_int_equal(info.state, TSR_TASK_DONE);
            continue;
        }
        assert_int_equal(info.state, TSR_TASK_FAILED);
        assert_int_equal(info.status, want[i].status);
        if (!strstr(info.message, want[i].msg))
            fail_msg("task %zu: '%s' not in '%s'", i, want[i].msg, info.message);
    }
    assert_int_equal(tsr_data_kind(src), TSR_DATA_BYTES); /* the input was not written */
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* A CSV table loads its columns on demand: the graph loads them up front. */
static void test_csv_table(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    assert_int_equal(tsr_table_register_csv(ctx, "cities", TSR_TEST_DATA_DIR "/cities.csv", NULL),
                     TSR_OK);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    tsr_data_t *c, *o;
    assert_int_equal(tsr_graph_data_table(g, "cities", &c), TSR_OK);
    assert_int_equal(tsr_graph_data(g, "o", &o), TSR_OK);
    tsr_task_params_t p = {.kind = "sql", .sql = "SELECT COUNT(*), SUM(area_km2) FROM cities",
                           .ninputs = 1, .inputs = &c, .noutputs = 1, .outputs = &o};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
    assert_int_equal(tsr_data_row_count(c), 8);
    assert_int_equal(tsr_data_column_count(c), 4);
    assert_string_equal(tsr_data_string(c, 0, 0, NULL), "Paris");
    assert_int_equal(tsr_data_int64(o, 0, 0), 8);
    assert_true(tsr_data_double(o, 0, 1) > 105.0);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* ---- plugins -------------------------------------------------------------------------- */

static void test_plugin(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    tsr_graph_t *g = NULL;
    assert_int_equal(tsr_graph_create(ctx, NULL, &g), TSR_OK);
    assert_int_equal(tsr_graph_load_plugin(g, "missing", "/nonexistent/plugin.so"),
                     TSR_ERR_NOT_FOUND);
    assert_int_equal(tsr_graph_load_plugin(g, "libm", "libm.so.6"), TSR_ERR_NOT_FOUND);
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "tsr_plugin_tasks"));
    assert_int_equal(tsr_graph_load_plugin(g, "testplug", TSR_TEST_PLUGIN), TSR_OK);
    assert_int_equal(tsr_graph_load_plugin(g, "again", TSR_TEST_PLUGIN), TSR_ERR_EXISTS);

    int64_t xs[] = {1, 2, 3}, ys[] = {100};
    tsr_data_t *x, *y, *s1, *s2, *f, *after;
    tsr_graph_data_bytes(g, "x", xs, sizeof(xs), &x);
    tsr_graph_data_bytes(g, "y", ys, sizeof(ys), &y);
    tsr_graph_data(g, "s1", &s1);
    tsr_graph_data(g, "s2", &s2);
    tsr_graph_data(g, "f", &f);
    tsr_graph_data(g, "after", &after);
    tsr_task_params_t p = {.kind = "plug_sum", .param = "1000", .ninputs = 2,
                           .inputs = (tsr_data_t *[]){x, y}, .noutputs = 1, .outputs = &s1};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "plug_sum", .ninputs = 2, .inputs = (tsr_data_t *[]){s1, x},
                            .noutputs = 1, .outputs = &s2};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "plug_fail", .label = "doomed", .noutputs = 1, .outputs = &f};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    p = (tsr_task_params_t){.kind = "plug_sum", .ninputs = 1, .inputs = &f, .noutputs = 1,
                            .outputs = &after};
    assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
    assert_int_equal(tsr_graph_submit(g), TSR_OK);
    assert_int_equal(tsr_graph_wait(g, 60000), TSR_ERR_BAD_INPUT);
    tsr_context_last_error(ctx, &e);
    assert_non_null(strstr(e.message, "plug_fail always fails"));
    size_t len;
    const int64_t *v = tsr_data_bytes(s1, &len);
    assert_int_equal(len, 8);
    assert_int_equal(*v, 1106);
    v = tsr_data_bytes(s2, &len);
    assert_int_equal(*v, 1112);
    assert_int_equal(tsr_task_state(tsr_graph_task_at(g, 3)), TSR_TASK_FAILED);
    tsr_task_info_t info;
    tsr_task_info(tsr_graph_task_at(g, 0), &info);
    assert_string_equal(info.kind, "plug_sum");
    assert_string_equal(info.opencl_kernel, "plug_sum_cl");
    assert_null(info.cuda_kernel);
    assert_string_equal(info.plugin, "testplug");
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
}

/* ---- timing, threads ------------------------------------------------------------------ */

static tsr_status_t sleep_task(tsr_task_ctx_t *tc, const tsr_data_t *const *in, size_t nin,
                               tsr_data_t *const *out, size_t nout)
{
    (void)in, (void)nin, (void)out, (void)nout;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    unsigned *threads = tsr_task_arg(tc);
    if (threads)
        threads[tsr_task_thread(tc)] = 1;
    return TSR_OK;
}

static void test_timing(void **state)
{
    (void)state;
    tsr_context_t *ctx = new_ctx(2);
    for (int no_timing = 0; no_timing < 2; no_timing++) {
        tsr_graph_t *g = NULL;
        tsr_graph_params_t gp = {.threads = 3, .no_timing = no_timing};
        assert_int_equal(tsr_graph_create(ctx, &gp, &g), TSR_OK);
        tsr_task_def_t def = {.name = "sleep", .cpu = sleep_task};
        assert_int_equal(tsr_graph_register(g, &def), TSR_OK);
        unsigned used[3] = {0};
        tsr_data_t *d[3];
        for (int i = 0; i < 3; i++) {
            tsr_graph_data(g, NULL, &d[i]);
            tsr_task_params_t p = {.kind = "sleep", .ninputs = i ? 1 : 0, .inputs = &d[i ? i - 1 : 0],
                                   .noutputs = 1, .outputs = &d[i], .arg = used};
            assert_int_equal(tsr_graph_add(g, &p, NULL), TSR_OK);
        }
        assert_int_equal(tsr_graph_submit(g), TSR_OK);
        assert_int_equal(tsr_graph_wait(g, -1), TSR_OK);
        uint64_t prev_end = 0;
        for (int i = 0; i < 3; i++) {
            tsr_task_info_t info;
            tsr_task_info(tsr_graph_task_at(g, i), &info);
            assert_string_equal(info.kind, "sleep");
            assert_string_equal(tsr_task_state_name(info.state), "done");
            assert_true(info.thread < 3);
            if (no_timing) {
                assert_true(info.start_ns == 0 && info.end_ns == 0);
                continue;
            }
            assert_true(info.end_ns - info.start_ns >= 1000000); /* slept 2 ms */
            assert_true(info.queued_ns >= prev_end && info.start_ns >= info.queued_ns);
            prev_end = info.end_ns;
        }
        tsr_graph_destroy(g);
    }
    assert_string_equal(tsr_task_state_name((tsr_task_state_t)42), "unknown");
    tsr_context_destroy(ctx);
}

/* ---- allocation failures ---------------------------------------------------------------- */

/* Builds and runs a small graph (user, sql, concat tasks) with the n-th
 * allocation failing: every call fails cleanly with NOMEM or succeeds, and
 * nothing leaks (LeakSanitizer). Returns true when everything succeeded. */
static bool alloc_round(long n)
{
    tsr_context_t *ctx = new_ctx(2);
    int64_t tv[] = {1, 2, 3};
    tsr_column_data_t col = {.name = "v", .type = TSR_TYPE_INT64, .values = tv};
    assert_int_equal(tsr_table_register_columns(ctx, "t", 1, &col, 3), TSR_OK);
    tsr_mem_fail_after(tsr__context_mem(ctx), n);
    bool ok = false;
    tsr_graph_t *g = NULL;
    tsr_status_t rc = tsr_graph_create(ctx, NULL, &g);
    if (rc != TSR_OK)
        goto out;
    static const char *const names[] = {"p", "q"};
    gen_arg_t ga = {.n = 20, .names = names, .nnames = 2};
    tsr_task_def_t def = {.name = "gen", .cpu = gen_task};
    tsr_data_t *t, *gd, *s1, *s2, *cat;
    if ((rc = tsr_graph_register(g, &def)) != TSR_OK ||
        (rc = tsr_graph_data_table(g, "t", &t)) != TSR_OK ||
        (rc = tsr_graph_data(g, "gd", &gd)) != TSR_OK ||
        (rc = tsr_graph_data(g, "s1", &s1)) != TSR_OK ||
        (rc = tsr_graph_data(g, "s2", &s2)) != TSR_OK ||
        (rc = tsr_graph_data(g, "cat", &cat)) != TSR_OK)
        goto out;
    tsr_task_params_t p1 = {.kind = "gen", .noutputs = 1, .outputs = &gd, .arg = &ga};
    tsr_task_params_t p2 = {.kind = "sql", .sql = "SELECT k, SUM(v) AS v FROM gd GROUP BY k",
                            .ninputs = 1, .inputs = &gd, .noutputs = 1, .outputs = &s1};
    tsr_task_params_t p3 = {.kind = "sql", .sql = "SELECT 'x' AS k, v FROM t", .ninputs = 1,
                            .inputs = &t, .noutputs = 1, .outputs = &s2};
    tsr_task_params_t p4 = {.kind = "concat", .ninputs = 2, .inputs = (tsr_data_t *[]){s1, s2},
                            .noutputs = 1, .outputs = &cat};
    if ((rc = tsr_graph_add(g, &p1, NULL)) != TSR_OK || (rc = tsr_graph_add(g, &p2, NULL)) != TSR_OK ||
        (rc = tsr_graph_add(g, &p3, NULL)) != TSR_OK || (rc = tsr_graph_add(g, &p4, NULL)) != TSR_OK ||
        (rc = tsr_graph_submit(g)) != TSR_OK)
        goto out;
    rc = tsr_graph_wait(g, -1);
    if (rc == TSR_OK) {
        assert_int_equal(tsr_data_row_count(cat), 6); /* NULL, p, q + 3 */
        ok = true;
    }
out:
    if (rc != TSR_OK && rc != TSR_ERR_NOMEM)
        fail_msg("allocation %ld failing gave %s", n, tsr_status_name(rc));
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
    return ok;
}

static void test_alloc_failures(void **state)
{
    (void)state;
    long n = 0;
    while (!alloc_round(n) && n < 2000)
        n++;
    assert_true(n > 10 && n < 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_wide_fanout),
        cmocka_unit_test(test_empty_graph),
        cmocka_unit_test(test_task_device),
        cmocka_unit_test(test_failure_propagation),
        cmocka_unit_test(test_cancel_and_timeout),
        cmocka_unit_test(test_cancel_before_submit_and_destroy_running),
        cmocka_unit_test(test_cancel_running_tasks),
        cmocka_unit_test(test_cycles_rejected),
        cmocka_unit_test(test_bad_builds),
        cmocka_unit_test(test_sql_concat_identity),
        cmocka_unit_test(test_bytes_concat_and_types),
        cmocka_unit_test(test_task_errors),
        cmocka_unit_test(test_csv_table),
        cmocka_unit_test(test_plugin),
        cmocka_unit_test(test_timing),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
