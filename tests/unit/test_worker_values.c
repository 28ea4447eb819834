/*
 * test_worker_values.c - graph values kept on a worker (docs/cluster.md
 * "Data movement"):
 *   - the value store (scheduler/worker_values.c) against a model under
 *     random puts, replaces, borrows held across drops, per-task and
 *     whole-job drops; stats agree; ASan checks that a borrowed value
 *     outlives its drop and that nothing leaks;
 *   - the VALUE_FETCH / VALUE_DROP payloads (value_fetch.c): round trips,
 *     every truncation and a trailing byte refused;
 *   - a GRAPH version 3 task (worker_graph.c, through tsr_wtask_run): an
 *     output above inline_max is kept in the store and answered by size
 *     and rows, one below goes inline; a reader whose kept input is on this
 *     worker reads it in place and gets the embedded answer; a reader of a
 *     value that is gone (or on a peer it cannot reach) answers
 *     TSR_ERR_STALE with the lost inputs after its error; every truncation
 *     of a version 3 request and a kept input in a version 2 one are
 *     refused; random byte corruptions never crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "value_fetch.h"
#include "worker_task.h"
#include "worker_values.h"

/* ---- the store against a model ------------------------------------------------- */

#define NJOBS 3
#define NTASKS 37 /* a prime: keys spread over buckets unevenly */

typedef struct model {
    bool live[NJOBS][NTASKS];
    uint32_t gen[NJOBS][NTASKS]; /* what the live value holds */
} model_t;

static void *make_value(uint64_t job, uint32_t task, uint32_t gen, size_t *len)
{
    *len = 16 + (size_t)(gen % 7) * 3;
    uint8_t *p = tsr_mem_alloc(NULL, *len);
    assert_non_null(p);
    for (size_t i = 0; i < *len; i++)
        p[i] = (uint8_t)(job * 31 + task * 7 + gen + i);
    return p;
}

static void check_value(const void *data, size_t len, uint64_t job, uint32_t task, uint32_t gen)
{
    size_t want = 16 + (size_t)(gen % 7) * 3;
    assert_int_equal(len, want);
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        assert_int_equal(p[i], (uint8_t)(job * 31 + task * 7 + gen + i));
}

static void test_store_model(void **state)
{
    (void)state;
    srand(42);
    tsr_wvalues_t *vs = NULL;
    assert_int_equal(tsr_wvalues_create(NULL, &vs), TSR_OK);
    model_t m;
    memset(&m, 0, sizeof(m));
    /* borrowed references held across drops and replaces */
    tsr_wvalue_t *held[16] = {0};
    uint64_t hjob[16];
    uint32_t htask[16], hgen[16];
    uint32_t gen = 0;
    for (int step = 0; step < 20000; step++) {
        uint64_t job = (uint64_t)(rand() % NJOBS);
        uint32_t task = (uint32_t)(rand() % NTASKS);
        int op = rand() % 10;
        if (op < 4) { /* put (a replace when live) */
            size_t len = 0;
            void *v = make_value(job + 1, task, ++gen, &len);
            assert_int_equal(tsr_wvalues_put(vs, job + 1, task, v, len), TSR_OK);
            m.live[job][task] = true;
            m.gen[job][task] = gen;
        } else if (op < 6) { /* borrow, maybe keep it */
            const void *d = NULL;
            size_t len = 0;
            tsr_wvalue_t *v = tsr_wvalues_get(vs, job + 1, task, &d, &len);
            assert_int_equal(v != NULL, m.live[job][task]);
            if (!v)
                continue;
            check_value(d, len, job + 1, task, m.gen[job][task]);
            int slot = rand() % 16;
            tsr_wvalues_release(vs, held[slot]); /* NULL ok */
            held[slot] = v;
            hjob[slot] = job + 1;
            htask[slot] = task;
            hgen[slot] = m.gen[job][task];
        } else if (op < 8) { /* drop a few tasks */
            uint32_t tasks[3] = {task, (task + 5) % NTASKS, task};
            size_t want = m.live[job][tasks[0]] + m.live[job][tasks[1]];
            if (tasks[0] == tasks[1])
                want = m.live[job][tasks[0]];
            assert_int_equal(tsr_wvalues_drop(vs, job + 1, tasks, 3), want);
            m.live[job][tasks[0]] = m.live[job][tasks[1]] = false;
        } else if (op == 8) { /* drop the whole job */
            size_t want = 0;
            for (uint32_t t = 0; t < NTASKS; t++) {
                want += m.live[job][t];
                m.live[job][t] = false;
            }
            assert_int_equal(tsr_wvalues_drop(vs, job + 1, NULL, 0), want);
        } else { /* a drop of many tasks (the scan path) */
            uint32_t tasks[70];
            size_t want = 0;
            for (uint32_t i = 0; i < 70; i++)
                tasks[i] = (uint32_t)(i * 3 % NTASKS);
            for (uint32_t t = 0; t < NTASKS; t++) {
                bool named = false;
                for (uint32_t i = 0; i < 70; i++)
                    named |= tasks[i] == t;
                if (named) {
                    want += m.live[job][t];
                    m.live[job][t] = false;
                }
            }
            assert_int_equal(tsr_wvalues_drop(vs, job + 1, tasks, 70), want);
        }
        /* what every held reference borrowed is intact, dropped or not */
        for (int i = 0; i < 16; i++)
            if (held[i] && step % 97 == 0) {
                const void *d = NULL;
                size_t len = 0;
                tsr_wvalue_t *again = tsr_wvalues_get(vs, hjob[i], htask[i], &d, &len);
                if (again && again == held[i])
                    check_value(d, len, hjob[i], htask[i], hgen[i]);
                tsr_wvalues_release(vs, again);
            }
        if (step % 500 == 0) {
            size_t count = 0, want = 0;
            uint64_t bytes = 0, wbytes = 0;
            tsr_wvalues_stats(vs, &count, &bytes);
            for (int j = 0; j < NJOBS; j++)
                for (int t = 0; t < NTASKS; t++)
                    if (m.live[j][t]) {
                        want++;
                        wbytes += 16 + (m.gen[j][t] % 7) * 3;
                    }
            assert_int_equal(count, want);
            assert_int_equal(bytes, wbytes);
        }
    }
    for (int i = 0; i < 16; i++)
        tsr_wvalues_release(vs, held[i]);
    tsr_wvalues_destroy(vs);
    tsr_wvalues_destroy(NULL);
    tsr_wvalues_release(NULL, NULL);
}

static void test_borrow_outlives_drop(void **state)
{
    (void)state;
    tsr_wvalues_t *vs = NULL;
    assert_int_equal(tsr_wvalues_create(NULL, &vs), TSR_OK);
    size_t len = 0;
    void *v = make_value(9, 1, 5, &len);
    assert_int_equal(tsr_wvalues_put(vs, 9, 1, v, len), TSR_OK);
    const void *d = NULL;
    size_t n = 0;
    tsr_wvalue_t *ref = tsr_wvalues_get(vs, 9, 1, &d, &n);
    assert_non_null(ref);
    assert_int_equal(tsr_wvalues_drop(vs, 9, NULL, 0), 1);
    assert_null(tsr_wvalues_get(vs, 9, 1, &d, &n));
    check_value(d, n, 9, 1, 5); /* still readable: ASan would see a use after free */
    size_t count = 1;
    tsr_wvalues_stats(vs, &count, NULL);
    assert_int_equal(count, 0);
    tsr_wvalues_release(vs, ref);
    tsr_wvalues_destroy(vs);
}

/* ---- payloads ------------------------------------------------------------------------ */

static void test_payloads(void **state)
{
    (void)state;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_vfetch_encode_key(&b, 0x1122334455667788ull, 77);
    uint64_t job = 0;
    uint32_t task = 0;
    assert_true(tsr_vfetch_decode_key(b.data, b.len, &job, &task));
    assert_int_equal(job, 0x1122334455667788ull);
    assert_int_equal(task, 77);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_false(tsr_vfetch_decode_key(b.data, cut, &job, &task));
    tsr_wbuf_u8(&b, 0);
    assert_false(tsr_vfetch_decode_key(b.data, b.len, &job, &task));
    tsr_wbuf_free(&b);

    const uint32_t tasks[5] = {1, 2, 3, 5, 4000000000u};
    for (size_t n = 0; n <= 5; n++) {
        tsr_wbuf_init(&b, NULL);
        tsr_vfetch_encode_drop(&b, 42, tasks, n);
        uint32_t *got = NULL;
        size_t gn = 99;
        assert_true(tsr_vfetch_decode_drop(NULL, b.data, b.len, &job, &got, &gn));
        assert_int_equal(job, 42);
        assert_int_equal(gn, n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(got[i], tasks[i]);
        tsr_mem_free(NULL, got);
        for (size_t cut = 0; cut < b.len; cut++) {
            assert_false(tsr_vfetch_decode_drop(NULL, b.data, cut, &job, &got, &gn));
            assert_null(got);
        }
        tsr_wbuf_u8(&b, 1);
        assert_false(tsr_vfetch_decode_drop(NULL, b.data, b.len, &job, &got, &gn));
        tsr_wbuf_free(&b);
    }
    /* a count far beyond the message */
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u64(&b, 1);
    tsr_wbuf_u32(&b, 0xFFFFFFFFu);
    uint32_t *got = NULL;
    size_t gn = 0;
    assert_false(tsr_vfetch_decode_drop(NULL, b.data, b.len, &job, &got, &gn));
    tsr_wbuf_free(&b);
}

/* ---- GRAPH version 3 on one worker --------------------------------------------------- */

#define NODE 1234u

/* A version 3 request: one task over inputs given as (name, src, ...) by
 * the caller's writer. */
static void v3_head(tsr_wbuf_t *b, uint64_t job, uint32_t task, uint64_t inline_max,
                    const char *sql, uint32_t nin)
{
    tsr_wbuf_init(b, NULL);
    tsr_wbuf_u8(b, 3);
    tsr_wbuf_u64(b, job);
    tsr_wbuf_u32(b, task);
    tsr_wbuf_u64(b, inline_max);
    tsr_wbuf_str(b, "sql");
    tsr_wbuf_str(b, sql);
    tsr_wbuf_str(b, "");
    tsr_wbuf_u8(b, ',');
    tsr_wbuf_u32(b, nin);
}

static void kept_input(tsr_wbuf_t *b, const char *name, uint32_t task, uint32_t node)
{
    tsr_wbuf_str(b, name);
    tsr_wbuf_u8(b, 3);
    tsr_wbuf_u32(b, task);
    tsr_wbuf_u32(b, 1); /* worker id, for messages */
    tsr_wbuf_u32(b, node);
    tsr_wbuf_str(b, "127.0.0.1");
    tsr_wbuf_u32(b, 1); /* nobody listens there: never dialled in these tests */
}

static char *write_csv(int rows)
{
    char *path = tsr_mem_alloc(NULL, 64);
    assert_non_null(path);
    snprintf(path, 64, "/tmp/tsr_test_wvalues_%d.csv", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "id,grp\n");
    for (int i = 0; i < rows; i++)
        fprintf(f, "%d,%d\n", i, i % 7);
    fclose(f);
    return path;
}

static void test_graph_v3(void **state)
{
    (void)state;
    char *csv = write_csv(3001);
    tsr_wvalues_t *vs = NULL;
    assert_int_equal(tsr_wvalues_create(NULL, &vs), TSR_OK);
    tsr_wtask_env_t env;
    memset(&env, 0, sizeof(env));
    env.threads = 1;
    env.values = vs;
    env.node_id = NODE;

    /* producer: every row, kept (inline_max 0) */
    tsr_wbuf_t req, out;
    v3_head(&req, 7, 0, 0, "SELECT id, grp FROM t", 1);
    tsr_wbuf_str(&req, "t");
    tsr_wbuf_u8(&req, 1);
    tsr_wbuf_str(&req, csv);
    tsr_wbuf_str(&req, "");
    tsr_wbuf_init(&out, NULL);
    assert_int_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, req.len, &out), TSR_OK);
    assert_true(env.kept);
    tsr_rbuf_t r;
    tsr_rbuf_init(&r, out.data, out.len);
    assert_int_equal(tsr_rbuf_u8(&r), 1);              /* form: kept */
    assert_int_equal(tsr_rbuf_u8(&r), TSR_DATA_TABLE); /* kind */
    assert_int_equal(tsr_rbuf_u64(&r), 3001);          /* rows */
    uint64_t size = tsr_rbuf_u64(&r);
    assert_true(tsr_rbuf_done(&r));
    size_t count = 0;
    uint64_t bytes = 0;
    tsr_wvalues_stats(vs, &count, &bytes);
    assert_int_equal(count, 1);
    assert_int_equal(bytes, size);
    tsr_wbuf_free(&out);
    /* job_of reads version 3's job */
    uint64_t job = 0;
    assert_true(tsr_wtask_job_of(TSR_MSG_TASK_GRAPH, req.data, req.len, &job));
    assert_int_equal(job, 7);
    /* every truncation of the request is refused without a crash */
    for (size_t cut = 0; cut < req.len; cut++) {
        tsr_wbuf_init(&out, NULL);
        assert_int_not_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, cut, &out), TSR_OK);
        tsr_wbuf_free(&out);
    }
    tsr_wbuf_free(&req);

    /* reader on the same worker (in place), small output: inline */
    v3_head(&req, 7, 1, 64 * 1024, "SELECT grp, COUNT(*) AS n FROM p GROUP BY grp ORDER BY grp", 1);
    kept_input(&req, "p", 0, NODE);
    tsr_wbuf_init(&out, NULL);
    assert_int_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, req.len, &out), TSR_OK);
    assert_false(env.kept);
    tsr_rbuf_init(&r, out.data, out.len);
    assert_int_equal(tsr_rbuf_u8(&r), 0); /* form: inline */
    tsr_value_t v;
    assert_true(tsr_proto_read_value(&r, &v));
    assert_true(tsr_rbuf_done(&r));
    assert_int_equal(v.kind, TSR_DATA_TABLE);
    tsr_rtab_t tab;
    tsr_error_t e;
    tsr_error_clear(&e);
    assert_int_equal(tsr_proto_decode_rtab(NULL, v.body, v.len, &tab, &e), TSR_OK);
    assert_int_equal(tab.nrows, 7);
    int64_t total = 0;
    for (size_t i = 0; i < tab.nrows; i++)
        total += ((int64_t *)tab.values[1])[i];
    assert_int_equal(total, 3001);
    tsr_proto_rtab_free(NULL, &tab);
    tsr_wbuf_free(&out);
    /* random single-byte corruptions of a reader's request never crash (ASan
     * checks) and never answer TSR_OK with a malformed body */
    srand(7);
    for (int i = 0; i < 300; i++) {
        uint8_t *bad = tsr_mem_alloc(NULL, req.len);
        assert_non_null(bad);
        memcpy(bad, req.data, req.len);
        bad[(size_t)rand() % req.len] ^= (uint8_t)(1 + rand() % 255);
        tsr_wbuf_init(&out, NULL);
        if (tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, bad, req.len, &out) == TSR_OK) {
            tsr_rbuf_init(&r, out.data, out.len);
            uint8_t form = tsr_rbuf_u8(&r);
            if (form == 0)
                assert_true(tsr_proto_read_value(&r, &v));
            else
                assert_int_equal(form, 1);
        }
        tsr_wbuf_free(&out);
        tsr_mem_free(NULL, bad);
    }
    tsr_wvalues_drop(vs, 7, (const uint32_t[]){1}, 1); /* a corrupted task index may keep */
    tsr_wbuf_free(&req);

    /* readers of values that are gone: here (dropped) and on a peer this
     * worker cannot fetch from: STALE, both lost inputs listed */
    assert_int_equal(tsr_wvalues_drop(vs, 7, NULL, 0), 1);
    v3_head(&req, 7, 2, 0, "SELECT COUNT(*) FROM p", 3);
    kept_input(&req, "p", 0, NODE);
    kept_input(&req, "q", 5, NODE + 1);
    tsr_wbuf_str(&req, "p"); /* the same value twice: one handle, one loss */
    tsr_wbuf_u8(&req, 3);
    tsr_wbuf_u32(&req, 0);
    tsr_wbuf_u32(&req, 1);
    tsr_wbuf_u32(&req, NODE);
    tsr_wbuf_str(&req, "127.0.0.1");
    tsr_wbuf_u32(&req, 1);
    tsr_wbuf_init(&out, NULL);
    assert_int_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, req.len, &out),
                     TSR_ERR_STALE);
    tsr_rbuf_init(&r, out.data, out.len);
    const char *msg = tsr_rbuf_str(&r);
    assert_non_null(strstr(msg, "no longer here"));
    (void)tsr_rbuf_str(&r);
    (void)tsr_rbuf_str(&r);
    (void)tsr_rbuf_i32(&r);
    (void)tsr_rbuf_i32(&r);
    assert_int_equal(tsr_rbuf_u32(&r), 2);
    assert_int_equal(tsr_rbuf_u32(&r), 0);
    assert_int_equal(tsr_rbuf_u32(&r), NODE);
    assert_int_equal(tsr_rbuf_u32(&r), 5);
    assert_int_equal(tsr_rbuf_u32(&r), NODE + 1);
    assert_true(tsr_rbuf_done(&r));
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&req);

    /* a kept input in a version 2 request, and a port out of range: refused */
    tsr_wbuf_init(&req, NULL);
    tsr_wbuf_u8(&req, 2);
    tsr_wbuf_u64(&req, 7);
    tsr_wbuf_str(&req, "sql");
    tsr_wbuf_str(&req, "SELECT 1");
    tsr_wbuf_str(&req, "");
    tsr_wbuf_u8(&req, ',');
    tsr_wbuf_u32(&req, 1);
    kept_input(&req, "p", 0, NODE);
    tsr_wbuf_init(&out, NULL);
    assert_int_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, req.len, &out),
                     TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&req);
    v3_head(&req, 7, 3, 0, "SELECT 1", 1);
    tsr_wbuf_str(&req, "p");
    tsr_wbuf_u8(&req, 3);
    tsr_wbuf_u32(&req, 0);
    tsr_wbuf_u32(&req, 1);
    tsr_wbuf_u32(&req, NODE);
    tsr_wbuf_str(&req, "127.0.0.1");
    tsr_wbuf_u32(&req, 70000);
    tsr_wbuf_init(&out, NULL);
    assert_int_equal(tsr_wtask_run(&env, TSR_MSG_TASK_GRAPH, req.data, req.len, &out),
                     TSR_ERR_BAD_INPUT);
    tsr_wbuf_free(&out);
    tsr_wbuf_free(&req);

    tsr_wtask_env_free(&env);
    tsr_wvalues_destroy(vs);
    remove(csv);
    tsr_mem_free(NULL, csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_model),
        cmocka_unit_test(test_borrow_outlives_drop),
        cmocka_unit_test(test_payloads),
        cmocka_unit_test(test_graph_v3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
