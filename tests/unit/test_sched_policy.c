/*
 * test_sched_policy.c - the scheduler's placer (scheduler/policy.c): per-
 * worker queues, bounded slots, work stealing, device constraints and the
 * built-in policies.
 *
 * The random test drives the placer with random workers (devices, joins,
 * deaths), random tasks (device needs, homes, avoids), completions, lost
 * tasks pushed again and cancellations, and checks it against a model that
 * tracks every task's state: a task is sent only when queued, only to a
 * worker that may run it; no worker exceeds its slots; after every pump no
 * ready worker with a free slot leaves a task it may run waiting anywhere
 * (stealing); and at the end every task ran to completion exactly once or
 * was reported unplaceable once (nothing lost, nothing duplicated).
 * Also the CANCEL / TASK_DROP payloads and tsr_wtask_job_of.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"
#include "proto.h"
#include "worker_task.h"

#define MAXT 600

typedef enum tstate { T_NEW, T_QUEUED, T_SENT, T_DONE, T_UNPLACEABLE, T_CANCELLED } tstate_t;

typedef struct mtask {
    tsr_pq_item_t pq; /* first member: the hooks find the task from the item */
    tstate_t state;
    int worker;
    unsigned runs;
} mtask_t;

typedef struct model {
    tsr_placer_t *pl;
    mtask_t t[MAXT];
    size_t nt;
    unsigned inflight[TSR_PLACER_MAX_WORKERS];
    bool fail_send; /* the next send fails (the owner handled it) */
    size_t sends, unplaceables;
} model_t;

static model_t *M; /* the hooks' way back to the model (tests run one at a time) */

static bool hook_send(tsr_pq_item_t *it, int w)
{
    mtask_t *t = (mtask_t *)(void *)it;
    assert_int_equal(t->state, T_QUEUED);
    assert_int_equal(it->queue, -1);
    assert_true(w >= 0 && (size_t)w < M->pl->nworkers);
    assert_true(M->pl->w[w].ready);
    assert_true(tsr_policy_device_ok(it->need, M->pl->w[w].device));
    M->inflight[w]++;
    assert_true(M->inflight[w] <= M->pl->slots);
    assert_int_equal(M->inflight[w], M->pl->w[w].inflight);
    M->sends++;
    if (M->fail_send) {
        M->fail_send = false;
        M->inflight[w]--;
        t->state = T_CANCELLED; /* the owner failed it */
        return false;
    }
    t->state = T_SENT;
    t->worker = w;
    return true;
}

static void hook_unplaceable(tsr_pq_item_t *it)
{
    mtask_t *t = (mtask_t *)(void *)it;
    assert_int_equal(t->state, T_QUEUED);
    assert_int_equal(it->queue, -1);
    t->state = T_UNPLACEABLE;
    M->unplaceables++;
}

static const char *const DEVICES[] = {"cpu", "cuda0", "opencl0", "cuda1"};
static const char *const NEEDS[] = {NULL, "", "gpu", "cuda", "opencl", "cpu", "cuda1"};

static void init_task(mtask_t *t, int home, int avoid, const char *need)
{
    memset(t, 0, sizeof(*t));
    t->pq.queue = -1;
    t->pq.home = home;
    t->pq.avoid = avoid;
    t->pq.need = need;
    t->pq.send = hook_send;
    t->pq.unplaceable = hook_unplaceable;
    t->worker = -1;
}

static bool any_can_run(const tsr_placer_t *pl, const tsr_pq_item_t *it)
{
    for (size_t w = 0; w < pl->nworkers; w++)
        if (tsr_placer_can_run(pl, w, it))
            return true;
    return false;
}

/* Queues are well formed and agree with the model; no ready worker with a
 * free slot could run a queued task (checked after pumps). */
static void check(const model_t *m, bool after_pump)
{
    const tsr_placer_t *pl = m->pl;
    size_t queued = 0;
    for (size_t w = 0; w < pl->nworkers; w++) {
        const tsr_pworker_t *pw = &pl->w[w];
        size_t n = 0;
        const tsr_pq_item_t *prev = NULL;
        for (const tsr_pq_item_t *it = pw->head; it; it = it->next) {
            assert_int_equal(it->queue, (int)w);
            assert_ptr_equal(it->prev, prev);
            assert_true(pw->ready);
            assert_true(tsr_policy_device_ok(it->need, pw->device));
            assert_int_equal(((const mtask_t *)(const void *)it)->state, T_QUEUED);
            prev = it;
            n++;
        }
        assert_ptr_equal(pw->tail, prev);
        assert_int_equal(n, pw->qlen);
        queued += n;
        assert_true(pw->inflight <= pl->slots);
        assert_int_equal(pw->inflight, m->inflight[w]);
    }
    size_t mq = 0;
    for (size_t i = 0; i < m->nt; i++)
        mq += m->t[i].state == T_QUEUED;
    assert_int_equal(queued, mq);
    assert_int_equal(tsr_placer_queued(pl), mq);
    if (!after_pump)
        return;
    for (size_t w = 0; w < pl->nworkers; w++) {
        if (!pl->w[w].ready || pl->w[w].inflight >= pl->slots)
            continue;
        for (size_t i = 0; i < m->nt; i++)
            if (m->t[i].state == T_QUEUED)
                assert_false(tsr_placer_can_run(pl, w, &m->t[i].pq));
    }
}

static void complete(model_t *m, mtask_t *t, bool lost)
{
    assert_int_equal(t->state, T_SENT);
    m->inflight[t->worker]--;
    tsr_placer_done(m->pl, (size_t)t->worker);
    if (lost) { /* pushed again, avoiding the worker */
        t->pq.avoid = t->worker;
        t->state = T_QUEUED;
        if (!tsr_placer_push(m->pl, &t->pq)) {
            assert_false(any_can_run(m->pl, &t->pq));
            t->state = T_UNPLACEABLE;
        }
        return;
    }
    t->state = T_DONE;
    t->runs++;
}

static void random_round(const tsr_policy_ops_t *ops, unsigned seed)
{
    srand(seed);
    static model_t m;
    static tsr_placer_t pl;
    memset(&m, 0, sizeof(m));
    M = &m;
    m.pl = &pl;
    tsr_placer_init(&pl, ops, 1 + (unsigned)rand() % 3);
    size_t nw = 1 + (size_t)rand() % 7;
    for (size_t w = 0; w < nw; w++)
        assert_true(tsr_placer_add_worker(&pl, w, DEVICES[rand() % 4]));
    size_t steps = 300 + (size_t)rand() % 400;
    for (size_t s = 0; s < steps; s++) {
        int op = rand() % 100;
        if (op < 35 && m.nt < MAXT) { /* a new ready task */
            mtask_t *t = &m.t[m.nt++];
            int home = rand() % 3 == 0 ? -1 : rand() % (int)(pl.nworkers + 1);
            int avoid = rand() % 5 == 0 ? rand() % (int)pl.nworkers : -1;
            init_task(t, home, avoid, NEEDS[rand() % 7]);
            static const char *const PREFS[] = {NULL, "", "gpu", "cuda", "opencl0"};
            t->pq.prefer = PREFS[rand() % 5];
            t->state = T_QUEUED;
            if (!tsr_placer_push(&pl, &t->pq)) {
                assert_false(any_can_run(&pl, &t->pq));
                t->state = T_UNPLACEABLE;
            } else {
                assert_true(tsr_placer_can_run(&pl, (size_t)t->pq.queue, &t->pq));
                /* a preference is kept while a worker that may run it has it
                 * (the avoided one aside: it yields to any other) */
                bool pref_ready = false;
                for (size_t w = 0; w < pl.nworkers; w++)
                    pref_ready |= (int)w != t->pq.avoid && tsr_placer_can_run(&pl, w, &t->pq) &&
                                  tsr_policy_device_ok(t->pq.prefer, pl.w[w].device);
                if (pref_ready && t->pq.prefer && t->pq.prefer[0])
                    assert_true(tsr_policy_device_ok(t->pq.prefer, pl.w[t->pq.queue].device));
            }
        } else if (op < 65) { /* a sent task ends (sometimes lost) */
            size_t start = (size_t)rand();
            for (size_t k = 0; k < m.nt; k++) {
                mtask_t *t = &m.t[(start + k) % m.nt];
                if (t->state == T_SENT) {
                    complete(&m, t, rand() % 8 == 0);
                    break;
                }
            }
        } else if (op < 72) { /* a job cancels a queued task */
            size_t start = (size_t)rand();
            for (size_t k = 0; k < m.nt; k++) {
                mtask_t *t = &m.t[(start + k) % m.nt];
                if (t->state == T_QUEUED) {
                    tsr_placer_remove(&pl, &t->pq);
                    tsr_placer_remove(&pl, &t->pq); /* idempotent */
                    t->state = T_CANCELLED;
                    break;
                }
            }
        } else if (op < 75 && pl.nworkers < 10) { /* a worker joins */
            assert_true(tsr_placer_add_worker(&pl, pl.nworkers, DEVICES[rand() % 4]));
        } else if (op < 78) { /* a worker dies: its queue moves, its calls fail */
            size_t w = (size_t)rand() % pl.nworkers;
            if (pl.w[w].ready) {
                tsr_placer_worker_dead(&pl, w);
                check(&m, false);
                for (size_t i = 0; i < m.nt; i++)
                    if (m.t[i].state == T_SENT && m.t[i].worker == (int)w)
                        complete(&m, &m.t[i], true);
            }
        } else if (op < 80) {
            m.fail_send = true;
        } else {
            tsr_placer_pump(&pl);
            m.fail_send = false;
            check(&m, true);
        }
        check(&m, false);
    }
    /* drain: bring every worker back to life is not possible (slots are
     * never reused), so end what is sent, pump, until nothing moves */
    m.fail_send = false;
    for (int round = 0; round < 100000; round++) {
        tsr_placer_pump(&pl);
        check(&m, true);
        bool any = false;
        for (size_t i = 0; i < m.nt; i++)
            if (m.t[i].state == T_SENT) {
                complete(&m, &m.t[i], false);
                any = true;
            }
        if (!any)
            break;
    }
    for (size_t i = 0; i < m.nt; i++) {
        mtask_t *t = &m.t[i];
        if (t->state == T_QUEUED) /* only where no ready worker may run it */
            assert_false(any_can_run(&pl, &t->pq));
        else
            assert_true(t->state == T_DONE || t->state == T_UNPLACEABLE || t->state == T_CANCELLED);
        assert_true(t->runs <= 1);
        if (t->state == T_DONE)
            assert_int_equal(t->runs, 1);
    }
}

static void test_random_locality(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 300; seed++)
        random_round(tsr_policy_find("locality"), seed);
}

static void test_random_least_loaded(void **state)
{
    (void)state;
    for (unsigned seed = 1000; seed <= 1200; seed++)
        random_round(tsr_policy_find("least-loaded"), seed);
}

static void test_device_ok(void **state)
{
    (void)state;
    assert_true(tsr_policy_device_ok(NULL, "cpu"));
    assert_true(tsr_policy_device_ok("", "cuda0"));
    assert_true(tsr_policy_device_ok("gpu", "cuda0"));
    assert_true(tsr_policy_device_ok("gpu", "opencl1"));
    assert_false(tsr_policy_device_ok("gpu", "cpu"));
    assert_true(tsr_policy_device_ok("cuda", "cuda3"));
    assert_false(tsr_policy_device_ok("cuda", "opencl0"));
    assert_false(tsr_policy_device_ok("cuda1", "cuda0"));
    assert_true(tsr_policy_device_ok("cpu", NULL));
    /* a bare backend is its first device */
    assert_true(tsr_policy_device_ok("opencl0", "opencl"));
    assert_false(tsr_policy_device_ok("opencl1", "opencl"));
    assert_false(tsr_policy_device_ok("opencl00", "opencl"));
    assert_true(tsr_policy_device_ok("opencl", "opencl"));
    assert_false(tsr_policy_device_ok("cuda0", "cpu"));

    assert_true(tsr_policy_need_valid(NULL));
    assert_true(tsr_policy_need_valid(""));
    assert_true(tsr_policy_need_valid("gpu"));
    assert_true(tsr_policy_need_valid("cuda"));
    assert_true(tsr_policy_need_valid("opencl12"));
    assert_false(tsr_policy_need_valid("cpu")); /* not a requirement: "any" is "" */
    assert_false(tsr_policy_need_valid("auto"));
    assert_false(tsr_policy_need_valid("tpu"));
    assert_false(tsr_policy_need_valid("cuda-1"));
    assert_false(tsr_policy_need_valid("opencl123456"));
    assert_false(tsr_policy_need_valid("CUDA"));
}

/* Preferences: a task that prefers a GPU goes to the GPU worker, home or
 * not, while one is ready; idle CPU workers may still steal it; a preference
 * no worker has changes nothing. Requirements vs preferences side by side. */
static void test_prefer(void **state)
{
    (void)state;
    static model_t m;
    static tsr_placer_t pl;
    memset(&m, 0, sizeof(m));
    M = &m;
    m.pl = &pl;
    tsr_placer_init(&pl, tsr_policy_find("locality"), 1);
    tsr_placer_add_worker(&pl, 0, "cpu");
    tsr_placer_add_worker(&pl, 1, "cpu");
    tsr_placer_add_worker(&pl, 2, "opencl0");
    char devs[64];
    tsr_placer_ready_devices(&pl, devs, sizeof(devs));
    assert_string_equal(devs, "cpu, opencl0");
    tsr_placer_ready_devices(&pl, devs, 6);
    assert_string_equal(devs, "cpu");
    assert_true(tsr_placer_any_ready(&pl, "opencl"));
    assert_true(tsr_placer_any_ready(&pl, NULL));
    assert_false(tsr_placer_any_ready(&pl, "cuda"));
    for (size_t i = 0; i < 3; i++) {
        init_task(&m.t[i], 0, -1, NULL); /* home: a CPU worker */
        m.t[i].pq.prefer = "gpu";
        m.t[i].state = T_QUEUED;
        assert_true(tsr_placer_push(&pl, &m.t[i].pq));
        assert_int_equal(m.t[i].pq.queue, 2);
    }
    init_task(&m.t[3], 0, -1, NULL); /* a preference nobody has: home wins */
    m.t[3].pq.prefer = "cuda";
    m.t[3].state = T_QUEUED;
    assert_true(tsr_placer_push(&pl, &m.t[3].pq));
    assert_int_equal(m.t[3].pq.queue, 0);
    init_task(&m.t[4], 0, -1, "opencl"); /* a requirement: only worker 2 */
    m.t[4].state = T_QUEUED;
    assert_true(tsr_placer_push(&pl, &m.t[4].pq));
    assert_int_equal(m.t[4].pq.queue, 2);
    m.nt = 5;
    tsr_placer_pump(&pl); /* one slot each: 2 runs its head, 1 steals a preferred one */
    check(&m, true);
    assert_int_equal(m.t[0].worker, 2);
    assert_int_equal(m.t[3].worker, 0);
    assert_true(m.t[4].state == T_QUEUED || m.t[4].worker == 2);
    for (int round = 0; round < 10; round++) { /* drain */
        for (size_t i = 0; i < m.nt; i++)
            if (m.t[i].state == T_SENT)
                complete(&m, &m.t[i], false);
        tsr_placer_pump(&pl);
        check(&m, true);
    }
    for (size_t i = 0; i < m.nt; i++)
        assert_int_equal(m.t[i].state, T_DONE);
    assert_int_equal(m.t[4].worker, 2); /* the requirement held through stealing */
    tsr_placer_worker_dead(&pl, 2);
    init_task(&m.t[5], -1, -1, "opencl");
    assert_false(tsr_placer_push(&pl, &m.t[5].pq));
    tsr_placer_worker_dead(&pl, 0);
    tsr_placer_worker_dead(&pl, 1);
    tsr_placer_ready_devices(&pl, devs, sizeof(devs));
    assert_string_equal(devs, "none");
}

static void test_find(void **state)
{
    (void)state;
    assert_string_equal(tsr_policy_find(NULL)->name, "locality");
    assert_string_equal(tsr_policy_find("locality")->name, "locality");
    assert_string_equal(tsr_policy_find("least-loaded")->name, "least-loaded");
    assert_null(tsr_policy_find("fastest"));
    assert_non_null(strstr(tsr_policy_names(), "least-loaded"));
}

/* All tasks at home on worker 0: the others steal, 2 slots each. */
static void test_steal(void **state)
{
    (void)state;
    static model_t m;
    static tsr_placer_t pl;
    memset(&m, 0, sizeof(m));
    M = &m;
    m.pl = &pl;
    tsr_placer_init(&pl, tsr_policy_find("locality"), 0);
    assert_int_equal(pl.slots, TSR_PLACER_DEFAULT_SLOTS);
    tsr_placer_init(&pl, tsr_policy_find("locality"), 2);
    assert_int_equal(pl.slots, 2);
    for (size_t w = 0; w < 3; w++)
        tsr_placer_add_worker(&pl, w, "cpu");
    for (size_t i = 0; i < 10; i++) {
        init_task(&m.t[i], 0, -1, NULL);
        m.t[i].state = T_QUEUED;
        assert_true(tsr_placer_push(&pl, &m.t[i].pq));
        assert_int_equal(m.t[i].pq.queue, 0); /* locality: at home */
    }
    m.nt = 10;
    tsr_placer_pump(&pl);
    check(&m, true);
    for (size_t w = 0; w < 3; w++)
        assert_int_equal(pl.w[w].inflight, 2);
    assert_int_equal(pl.w[1].stolen + pl.w[2].stolen, 4);
    assert_int_equal(pl.w[0].qlen, 4);
    /* the owner runs its queue in order; thieves take from the tail */
    assert_int_equal(m.t[0].worker, 0);
    assert_int_equal(m.t[9].state, T_SENT);
    assert_int_not_equal(m.t[9].worker, 0);
    /* worker 0 stalls: the others finish everything */
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < m.nt; i++)
            if (m.t[i].state == T_SENT && m.t[i].worker != 0)
                complete(&m, &m.t[i], false);
        tsr_placer_pump(&pl);
        check(&m, true);
    }
    size_t done = 0;
    for (size_t i = 0; i < m.nt; i++)
        done += m.t[i].state == T_DONE;
    assert_int_equal(done, 8); /* the two on the stalled worker wait */
    assert_int_equal(tsr_placer_queued(&pl), 0);
}

/* Device needs: a GPU task waits for a GPU worker, never a CPU one; when
 * the only GPU worker dies, its queued GPU tasks are unplaceable. */
static void test_devices(void **state)
{
    (void)state;
    static model_t m;
    static tsr_placer_t pl;
    memset(&m, 0, sizeof(m));
    M = &m;
    m.pl = &pl;
    tsr_placer_init(&pl, tsr_policy_find("least-loaded"), 1);
    tsr_placer_add_worker(&pl, 0, "cpu");
    init_task(&m.t[0], -1, -1, "gpu");
    assert_false(tsr_placer_push(&pl, &m.t[0].pq));
    tsr_placer_add_worker(&pl, 1, "cuda0");
    for (size_t i = 0; i < 5; i++) {
        init_task(&m.t[i], 0, -1, "gpu"); /* home on the CPU worker: ignored */
        m.t[i].state = T_QUEUED;
        assert_true(tsr_placer_push(&pl, &m.t[i].pq));
        assert_int_equal(m.t[i].pq.queue, 1);
    }
    init_task(&m.t[5], -1, -1, NULL);
    m.t[5].state = T_QUEUED;
    assert_true(tsr_placer_push(&pl, &m.t[5].pq));
    m.nt = 6;
    tsr_placer_pump(&pl);
    check(&m, true);
    assert_int_equal(pl.w[0].inflight, 1); /* the CPU worker took the CPU task only */
    assert_int_equal(m.t[5].worker, 0);
    assert_int_equal(pl.w[1].inflight, 1);
    tsr_placer_worker_dead(&pl, 1);
    assert_int_equal(m.unplaceables, 4);
    check(&m, false);
}

/* avoid: a lost task goes elsewhere when it can, back when it must. */
static void test_avoid(void **state)
{
    (void)state;
    static model_t m;
    static tsr_placer_t pl;
    memset(&m, 0, sizeof(m));
    M = &m;
    m.pl = &pl;
    tsr_placer_init(&pl, tsr_policy_find("locality"), 2);
    tsr_placer_add_worker(&pl, 0, "cpu");
    tsr_placer_add_worker(&pl, 1, "cpu");
    init_task(&m.t[0], 0, 0, NULL);
    assert_true(tsr_placer_push(&pl, &m.t[0].pq));
    assert_int_equal(m.t[0].pq.queue, 1);
    tsr_placer_remove(&pl, &m.t[0].pq);
    tsr_placer_worker_dead(&pl, 1);
    assert_true(tsr_placer_push(&pl, &m.t[0].pq));
    assert_int_equal(m.t[0].pq.queue, 0);
    tsr_placer_remove(&pl, &m.t[0].pq);
    assert_false(tsr_placer_add_worker(&pl, TSR_PLACER_MAX_WORKERS, "cpu"));
}

/* CANCEL / TASK_DROP payloads: round trip, every truncation and a trailing
 * byte refused; the job of a task message found where it is carried. */
static void test_cancel_payloads(void **state)
{
    (void)state;
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_proto_encode_cancel(&b, 0x0102030405060708ull);
    uint64_t job = 0;
    assert_true(tsr_proto_decode_cancel(b.data, b.len, &job));
    assert_true(job == 0x0102030405060708ull);
    for (size_t n = 0; n < b.len; n++)
        assert_false(tsr_proto_decode_cancel(b.data, n, &job));
    tsr_wbuf_u8(&b, 0);
    assert_false(tsr_proto_decode_cancel(b.data, b.len, &job));
    tsr_wbuf_free(&b);

    tsr_wbuf_init(&b, NULL); /* GRAPH version 2: u8 2, u64 job, ... */
    tsr_wbuf_u8(&b, 2);
    tsr_wbuf_u64(&b, 77);
    tsr_wbuf_str(&b, "sql");
    assert_true(tsr_wtask_job_of(TSR_MSG_TASK_GRAPH, b.data, b.len, &job));
    assert_true(job == 77);
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_GRAPH, b.data, 5, &job));
    b.data[0] = 1; /* version 1 carries no job */
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_GRAPH, b.data, b.len, &job));
    tsr_wbuf_free(&b);
    tsr_wbuf_init(&b, NULL); /* INFER/RUN: u64 job first */
    tsr_wbuf_u64(&b, 9);
    tsr_wbuf_u32(&b, 3);
    assert_true(tsr_wtask_job_of(TSR_MSG_TASK_RUN, b.data, b.len, &job));
    assert_true(job == 9);
    assert_true(tsr_wtask_job_of(TSR_MSG_TASK_INFER, b.data, b.len, &job));
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_RUN, b.data, 7, &job));
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_WHOLE, b.data, b.len, &job));
    tsr_wbuf_free(&b);
    /* WHOLE: {u8 delim, u32 n, n x 3 str, str sql, [u64 job]} (the job is last,
     * optional: an older scheduler's WHOLE names none) */
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, ',');
    tsr_wbuf_u32(&b, 2);
    for (int i = 0; i < 6; i++)
        tsr_wbuf_str(&b, i % 3 == 1 ? "/tmp/x.csv" : "t");
    tsr_wbuf_str(&b, "SELECT 1");
    size_t old_len = b.len;
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_WHOLE, b.data, old_len, &job));
    tsr_wbuf_u64(&b, 0x0a0b0c0d0e0f1011ull);
    job = 0;
    assert_true(tsr_wtask_job_of(TSR_MSG_TASK_WHOLE, b.data, b.len, &job));
    assert_true(job == 0x0a0b0c0d0e0f1011ull);
    for (size_t n = 0; n < b.len; n++) /* every truncation is refused */
        assert_false(tsr_wtask_job_of(TSR_MSG_TASK_WHOLE, b.data, n, &job));
    tsr_wbuf_u8(&b, 0); /* and trailing bytes */
    assert_false(tsr_wtask_job_of(TSR_MSG_TASK_WHOLE, b.data, b.len, &job));
    tsr_wbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_ok),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_steal),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_prefer),
        cmocka_unit_test(test_avoid),
        cmocka_unit_test(test_random_locality),
        cmocka_unit_test(test_random_least_loaded),
        cmocka_unit_test(test_cancel_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
