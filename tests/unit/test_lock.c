/*
 * test_lock.c - engine/lock in embedded mode (one process, threads as
 * clients, CPU atomics on the same words the distributed mode uses).
 *
 * The word helpers against an independent model of the DSLR counters; bad
 * input; exclusive/shared semantics and tokens; mutual exclusion with a plain
 * read-modify-write counter across threads (past the counters' wrap-around);
 * readers overlapping but never with a writer; waiters giving up at random
 * (withdrawn and abandoned tickets) without a violation or a stuck lock; a
 * status while a writer waits behind readers; a writer granted within a
 * bound under a stream of readers; lease expiry of a holder that vanished,
 * with the stale holder's release and fenced write refused; renewals keeping
 * a lock; timeouts, with the abandoned ticket skipped; name collisions on a
 * tiny table; the fence table against a model.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lock_internal.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct env {
    tsr_lock_home_t *home;
    tsr_lock_client_t *c;
} env_t;

static tsr_lock_client_t *new_client(tsr_lock_home_t *home)
{
    tsr_lock_client_params_t p = {.local = home};
    tsr_lock_client_t *c = NULL;
    tsr_lock_err_t err = {0};
    assert_int_equal(tsr_lock_client_create(&p, &c, &err), TSR_OK);
    return c;
}

static void env_init(env_t *e, uint32_t slots)
{
    tsr_lock_home_params_t hp = {.slots = slots};
    tsr_lock_err_t err = {0};
    assert_int_equal(tsr_lock_home_create(NULL, &hp, &e->home, &err), TSR_OK);
    e->c = new_client(e->home);
}

static void env_fini(env_t *e)
{
    tsr_lock_client_destroy(e->c);
    tsr_lock_home_destroy(e->home);
}

/* ---- the word against a model ------------------------------------------------------- */

static void test_word_model(void **state)
{
    (void)state;
    for (int i = 0; i < 100000; i++) {
        uint32_t f[5] = {(uint32_t)rnd() & 0xff, (uint32_t)rnd() & 0x3fff, (uint32_t)rnd() & 0x3fff,
                         (uint32_t)rnd() & 0x3fff, (uint32_t)rnd() & 0x3fff};
        uint64_t w = lk_word(f[0], f[1], f[2], f[3], f[4]);
        assert_int_equal(lk_epoch(w), f[0]);
        assert_int_equal(lk_max_x(w), f[1]);
        assert_int_equal(lk_max_s(w), f[2]);
        assert_int_equal(lk_now_x(w), f[3]);
        assert_int_equal(lk_now_s(w), f[4]);
        /* the adds touch exactly their field while it does not overflow */
        if (f[1] < 0x3fff)
            assert_int_equal(lk_max_x(w + LK_X_REQ), f[1] + 1);
        if (f[2] < 0x3fff)
            assert_int_equal(lk_max_s(w + LK_S_REQ), f[2] + 1);
        if (f[3] < 0x3fff)
            assert_int_equal(lk_now_x(w + LK_X_REL), f[3] + 1);
        if (f[4] > 0)
            assert_int_equal(lk_now_s(w - LK_S_REL), f[4] - 1);
        bool sat = f[1] >= 8192 || f[2] >= 8192;
        assert_int_equal(lk_saturated(w), sat);
        assert_int_equal(lk_idle(w), f[1] == f[3] && f[2] == f[4]);
        assert_int_equal(lk_reset_word(w), (uint64_t)((f[0] + 1) & 0xff) << 56);
        lk_ticket_t tk = {f[0], (uint32_t)rnd() & 0x3fff, (uint32_t)rnd() & 0x3fff, (rnd() & 1) != 0};
        if (rnd() & 1) { /* make grants likely */
            tk.tx = f[3];
            if (rnd() & 1)
                tk.ts = f[4];
        }
        bool model = tk.excl ? (tk.tx == f[3] && tk.ts == f[4]) : tk.tx == f[3];
        assert_int_equal(lk_granted(&tk, w), model);
        lk_ticket_t back = lk_abandon_ticket(lk_abandon_rec(&tk));
        assert_int_equal(back.epoch, tk.epoch);
        assert_int_equal(back.tx, tk.tx);
        assert_int_equal(back.ts, tk.ts);
        assert_int_equal(back.excl, tk.excl);
    }
    /* a queue replayed on the word: grants exactly in the model's FIFO order */
    uint64_t w = 0;
    lk_ticket_t q[64];
    int n = 0;
    for (int i = 0; i < 64; i++) {
        bool excl = (rnd() % 3) == 0;
        q[n++] = lk_ticket_of(w, excl);
        w += lk_req(excl);
    }
    /* release in FIFO order, checking who is granted at every step */
    bool done[64] = {0};
    for (int step = 0; step < n; step++) {
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            bool model = true;
            for (int j = 0; j < i; j++)
                if (!done[j] && (q[j].excl || q[i].excl))
                    model = false;
            assert_int_equal(lk_granted(&q[i], w), model);
        }
        w += lk_rel(q[step].excl);
        done[step] = true;
    }
    assert_true(lk_idle(w));
}

static void test_grant_low(void **state)
{
    (void)state;
    assert_int_equal(lk_lease_ms(lk_grant_low(true, 10000)), 10000);
    assert_int_equal(lk_lease_ms(lk_grant_low(false, 1)), 10); /* rounded up */
    assert_true(lk_grant_excl(lk_grant_low(true, 5)));
    assert_false(lk_grant_excl(lk_grant_low(false, 5)));
    assert_int_equal(lk_lease_ms(lk_grant_low(true, TSR_LOCK_MAX_LEASE_MS)), TSR_LOCK_MAX_LEASE_MS);
}

/* ---- bad input ------------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    uint64_t tok = 0;
    tsr_lock_err_t err = {0};
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[256] = 0; /* 256 bytes */
    assert_int_equal(tsr_lock_acquire(e.c, "", NULL, &tok, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "empty"));
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_acquire(e.c, longname, NULL, &tok, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "255"));
    longname[255] = 0; /* 255 bytes: fine */
    assert_int_equal(tsr_lock_acquire(e.c, longname, NULL, &tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, longname, tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_acquire(e.c, NULL, NULL, &tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_acquire(e.c, "bad\xff", NULL, &tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_acquire(e.c, "\xc0\x80", NULL, &tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_acquire(e.c, "\xed\xa0\x80", NULL, &tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_acquire(e.c, "caf\xc3\xa9 \xf0\x9f\x94\x92", NULL, &tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "caf\xc3\xa9 \xf0\x9f\x94\x92", tok, NULL), TSR_OK);

    tsr_lock_opts_t neg = {TSR_LOCK_EXCLUSIVE, -5, -1};
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_acquire(e.c, "x", &neg, &tok, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "negative"));
    tsr_lock_opts_t huge = {TSR_LOCK_EXCLUSIVE, (int64_t)TSR_LOCK_MAX_LEASE_MS + 1, -1};
    assert_int_equal(tsr_lock_acquire(e.c, "x", &huge, &tok, NULL), TSR_ERR_INVALID_ARG);
    tsr_lock_opts_t badmode = {(tsr_lock_mode_t)7, 0, -1};
    assert_int_equal(tsr_lock_acquire(e.c, "x", &badmode, &tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_acquire(e.c, "x", NULL, NULL, NULL), TSR_ERR_INVALID_ARG);

    /* releasing what one does not hold is an error, not a no-op */
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_release(e.c, "x", 12345, &err), TSR_ERR_INVALID_ARG);
    assert_non_null(strstr(err.message, "not held"));
    assert_int_equal(tsr_lock_acquire(e.c, "x", NULL, &tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "x", tok + 1, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_release(e.c, "y", tok, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_renew(e.c, "x", tok, -1, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_renew(e.c, "x", tok + 7, 0, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_release(e.c, "x", tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "x", tok, NULL), TSR_ERR_INVALID_ARG); /* twice */

    tsr_lock_status_t st;
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_status(e.c, "never", &st, &err), TSR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.message, "never"));
    assert_int_equal(tsr_lock_status(e.c, "", &st, NULL), TSR_ERR_INVALID_ARG);

    /* client parameters */
    tsr_lock_client_t *c2 = NULL;
    tsr_lock_client_params_t none = {0};
    assert_int_equal(tsr_lock_client_create(&none, &c2, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_client_create(NULL, &c2, NULL), TSR_ERR_INVALID_ARG);
    tsr_lock_client_destroy(NULL);
    tsr_lock_home_destroy(NULL);
    env_fini(&e);
}

/* ---- semantics -------------------------------------------------------------------------- */

static void test_basic_semantics(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 1024);
    tsr_lock_client_t *c2 = new_client(e.home);
    uint64_t t1, t2, t3, t4, prev = 0;
    tsr_lock_err_t err = {0};
    tsr_lock_opts_t sh = {TSR_LOCK_SHARED, 0, -1};
    tsr_lock_opts_t ex = {TSR_LOCK_EXCLUSIVE, 0, -1};

    for (int i = 0; i < 100; i++) {
        assert_int_equal(tsr_lock_acquire(e.c, "a", NULL, &t1, NULL), TSR_OK);
        assert_true(t1 > prev); /* strictly increasing */
        prev = t1;
        assert_int_equal(tsr_lock_release(e.c, "a", t1, NULL), TSR_OK);
    }
    /* exclusive excludes everyone, also through try_acquire */
    assert_int_equal(tsr_lock_acquire(e.c, "a", &ex, &t1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_try_acquire(c2, "a", &ex, &t2, &err), TSR_ERR_CONFLICT);
    assert_non_null(strstr(err.message, "busy"));
    assert_int_equal(tsr_lock_try_acquire(c2, "a", &sh, &t2, NULL), TSR_ERR_CONFLICT);
    tsr_lock_status_t st;
    assert_int_equal(tsr_lock_status(c2, "a", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_HELD_EXCLUSIVE);
    assert_int_equal(st.holders, 1);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.last_token, t1);
    assert_int_equal(st.lease_ms, TSR_LOCK_DEFAULT_LEASE_MS);
    assert_int_equal(tsr_lock_release(e.c, "a", t1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_status(c2, "a", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_FREE);

    /* shared holders overlap; a writer then is refused by try */
    assert_int_equal(tsr_lock_acquire(e.c, "a", &sh, &t1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_try_acquire(c2, "a", &sh, &t2, NULL), TSR_OK);
    assert_true(t2 > t1);
    assert_int_equal(tsr_lock_try_acquire(c2, "a", &ex, &t3, NULL), TSR_ERR_CONFLICT);
    assert_int_equal(tsr_lock_status(c2, "a", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_HELD_SHARED);
    assert_int_equal(st.holders, 2);
    assert_true(st.holders_exact);
    /* the same client may hold a lock twice (two grants, two tokens) */
    assert_int_equal(tsr_lock_acquire(e.c, "a", &sh, &t3, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "a", t1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "a", t3, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c2, "a", t2, NULL), TSR_OK);
    assert_int_equal(tsr_lock_try_acquire(c2, "a", &ex, &t4, NULL), TSR_OK);
    assert_true(t4 > t3);
    assert_int_equal(tsr_lock_release(c2, "a", t4, NULL), TSR_OK);
    /* timeout 0 means try */
    assert_int_equal(tsr_lock_acquire(e.c, "a", &ex, &t1, NULL), TSR_OK);
    tsr_lock_opts_t zero = {TSR_LOCK_EXCLUSIVE, 0, 0};
    assert_int_equal(tsr_lock_acquire(c2, "a", &zero, &t2, NULL), TSR_ERR_CONFLICT);
    /* other names are other locks */
    assert_int_equal(tsr_lock_try_acquire(c2, "b", &ex, &t2, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c2, "b", t2, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "a", t1, NULL), TSR_OK);
    tsr_lock_client_destroy(c2);
    env_fini(&e);
}

/* Names colliding on a 3-slot table are independent; the 4th name finds the
 * table full. */
static void test_collisions(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 3);
    const char *names[3] = {"n0", "n1", "n2"};
    uint64_t tok[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(tsr_lock_try_acquire(e.c, names[i], NULL, &tok[i], NULL), TSR_OK);
    for (int i = 0; i < 3; i++) {
        tsr_lock_status_t st;
        assert_int_equal(tsr_lock_status(e.c, names[i], &st, NULL), TSR_OK);
        assert_int_equal(st.state, TSR_LOCK_HELD_EXCLUSIVE);
        assert_int_equal(st.last_token, tok[i]);
    }
    tsr_lock_err_t err = {0};
    uint64_t t;
    assert_int_equal(tsr_lock_try_acquire(e.c, "n3", NULL, &t, &err), TSR_ERR_NOMEM);
    assert_non_null(strstr(err.message, "full"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(tsr_lock_release(e.c, names[i], tok[i], NULL), TSR_OK);
    /* a second client finds the same slots (no cache) */
    tsr_lock_client_t *c2 = new_client(e.home);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tsr_lock_try_acquire(c2, names[i], NULL, &t, NULL), TSR_OK);
        assert_true(t > tok[i]);
        assert_int_equal(tsr_lock_release(c2, names[i], t, NULL), TSR_OK);
    }
    tsr_lock_client_destroy(c2);
    env_fini(&e);
}

/* ---- threads ------------------------------------------------------------------------------ */

typedef struct shared_state {
    tsr_lock_home_t *home;
    const char *name;
    int iters;
    volatile long counter;   /* plain read-modify-write under the lock */
    _Atomic int readers, writers;
    _Atomic int violations;
    _Atomic long grants;
    _Atomic int max_readers;
    _Atomic int stop;
    _Atomic uint64_t last_token;
    _Atomic int token_regressions;
} shared_state_t;

static void *mutex_worker(void *arg)
{
    shared_state_t *s = arg;
    tsr_lock_client_t *c = new_client(s->home);
    for (int i = 0; i < s->iters; i++) {
        uint64_t tok;
        if (tsr_lock_acquire(c, s->name, NULL, &tok, NULL) != TSR_OK) {
            atomic_fetch_add(&s->violations, 1);
            break;
        }
        if (tok <= atomic_load(&s->last_token))
            atomic_fetch_add(&s->token_regressions, 1);
        atomic_store(&s->last_token, tok);
        long v = s->counter;
        if ((i & 63) == 0)
            sched_yield(); /* widen the window a broken lock would show */
        s->counter = v + 1;
        if (tsr_lock_release(c, s->name, tok, NULL) != TSR_OK)
            atomic_fetch_add(&s->violations, 1);
    }
    tsr_lock_client_destroy(c);
    return NULL;
}

static void test_threads_mutex(void **state)
{
    (void)state;
    shared_state_t s = {.name = "counter", .iters = 6000};
    tsr_lock_home_params_t hp = {.slots = 16};
    assert_int_equal(tsr_lock_home_create(NULL, &hp, &s.home, NULL), TSR_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, mutex_worker, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s.violations), 0);
    assert_int_equal(atomic_load(&s.token_regressions), 0);
    assert_int_equal(s.counter, 4 * 6000); /* 24000 > 2 x 8192: wrapped twice */
    tsr_lock_client_t *c = new_client(s.home);
    tsr_lock_status_t st;
    assert_int_equal(tsr_lock_status(c, "counter", &st, NULL), TSR_OK);
    assert_true(st.epoch >= 2);
    assert_int_equal(st.state, TSR_LOCK_FREE);
    tsr_lock_client_destroy(c);
    tsr_lock_home_destroy(s.home);
}

static void rw_body(shared_state_t *s, tsr_lock_client_t *c, bool writer)
{
    tsr_lock_opts_t o = {writer ? TSR_LOCK_EXCLUSIVE : TSR_LOCK_SHARED, 0, -1};
    uint64_t tok;
    if (tsr_lock_acquire(c, s->name, &o, &tok, NULL) != TSR_OK) {
        atomic_fetch_add(&s->violations, 1);
        return;
    }
    atomic_fetch_add(&s->grants, 1);
    if (writer) {
        if (atomic_fetch_add(&s->writers, 1) != 0 || atomic_load(&s->readers) != 0)
            atomic_fetch_add(&s->violations, 1);
        sched_yield();
        atomic_fetch_sub(&s->writers, 1);
    } else {
        int r = atomic_fetch_add(&s->readers, 1) + 1;
        if (atomic_load(&s->writers) != 0)
            atomic_fetch_add(&s->violations, 1);
        int m = atomic_load(&s->max_readers);
        while (r > m && !atomic_compare_exchange_weak(&s->max_readers, &m, r))
            ;
        sched_yield();
        atomic_fetch_sub(&s->readers, 1);
    }
    if (tsr_lock_release(c, s->name, tok, NULL) != TSR_OK)
        atomic_fetch_add(&s->violations, 1);
}

static void *reader_worker(void *arg)
{
    shared_state_t *s = arg;
    tsr_lock_client_t *c = new_client(s->home);
    while (!atomic_load(&s->stop))
        rw_body(s, c, false);
    tsr_lock_client_destroy(c);
    return NULL;
}

static void *mixed_worker(void *arg)
{
    shared_state_t *s = arg;
    tsr_lock_client_t *c = new_client(s->home);
    unsigned seed = (unsigned)(uintptr_t)&c;
    for (int i = 0; i < s->iters; i++)
        rw_body(s, c, (rand_r(&seed) % 4) == 0);
    tsr_lock_client_destroy(c);
    return NULL;
}

static void test_threads_shared(void **state)
{
    (void)state;
    shared_state_t s = {.name = "rw", .iters = 3000};
    assert_int_equal(tsr_lock_home_create(NULL, NULL, &s.home, NULL), TSR_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, mixed_worker, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s.violations), 0);
    assert_int_equal(atomic_load(&s.grants), 4 * 3000);
    assert_true(atomic_load(&s.max_readers) >= 2); /* readers did overlap */
    tsr_lock_home_destroy(s.home);
}

/* Waiters giving up at random (abandoned tickets, records, and the lease
 * fallback when the records run out) never break mutual exclusion, and the
 * lock keeps being granted. */
static void *timeout_worker(void *arg)
{
    shared_state_t *s = arg;
    tsr_lock_client_t *c = new_client(s->home);
    unsigned seed = (unsigned)(uintptr_t)&c ^ 0x5bd1e995u;
    for (int i = 0; i < s->iters; i++) {
        bool writer = rand_r(&seed) % 3 == 0;
        tsr_lock_opts_t o = {writer ? TSR_LOCK_EXCLUSIVE : TSR_LOCK_SHARED, 200,
                             (int64_t)(rand_r(&seed) % 3)};
        uint64_t tok;
        tsr_status_t rc = tsr_lock_acquire(c, s->name, &o, &tok, NULL);
        if (rc == TSR_ERR_TIMEOUT || rc == TSR_ERR_CONFLICT)
            continue;
        if (rc != TSR_OK) {
            atomic_fetch_add(&s->violations, 1);
            continue;
        }
        atomic_fetch_add(&s->grants, 1);
        if (writer) {
            if (atomic_fetch_add(&s->writers, 1) != 0 || atomic_load(&s->readers) != 0)
                atomic_fetch_add(&s->violations, 1);
            sched_yield();
            atomic_fetch_sub(&s->writers, 1);
        } else {
            atomic_fetch_add(&s->readers, 1);
            if (atomic_load(&s->writers) != 0)
                atomic_fetch_add(&s->violations, 1);
            sched_yield();
            atomic_fetch_sub(&s->readers, 1);
        }
        rc = tsr_lock_release(c, s->name, tok, NULL);
        if (rc != TSR_OK && rc != TSR_ERR_STALE) /* a 200 ms lease may run out under load */
            atomic_fetch_add(&s->violations, 1);
    }
    tsr_lock_client_destroy(c);
    return NULL;
}

static void test_threads_timeouts(void **state)
{
    (void)state;
    shared_state_t s = {.name = "flaky", .iters = 1500};
    assert_int_equal(tsr_lock_home_create(NULL, NULL, &s.home, NULL), TSR_OK);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, timeout_worker, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    print_message("timeouts: %ld grants of 6000 attempts\n", (long)atomic_load(&s.grants));
    assert_int_equal(atomic_load(&s.violations), 0);
    assert_true(atomic_load(&s.grants) > 0);
    /* whatever was left in the queue clears (records, or lease expiry) */
    tsr_lock_client_t *c = new_client(s.home);
    tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 1000, 5000};
    uint64_t tok;
    assert_int_equal(tsr_lock_acquire(c, s.name, &o, &tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c, s.name, tok, NULL), TSR_OK);
    tsr_lock_client_destroy(c);
    tsr_lock_home_destroy(s.home);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* A writer under a steady stream of readers is granted after at most the
 * requests queued ahead of it (FIFO), not starved: every acquire returns
 * within its 5 s timeout, and in a typical round (the median of 50) at most
 * 2 * NR reader grants are counted between the writer's snapshot of the
 * count and its grant. Not every round: a writer preempted between its
 * snapshot and its request (a loaded CI machine, sanitizers) sees readers
 * cycle meanwhile, legitimately. */
static void test_fairness(void **state)
{
    (void)state;
    shared_state_t s = {.name = "fair"};
    assert_int_equal(tsr_lock_home_create(NULL, NULL, &s.home, NULL), TSR_OK);
    enum { NR = 3 };
    pthread_t th[NR];
    for (int i = 0; i < NR; i++)
        pthread_create(&th[i], NULL, reader_worker, &s);
    tsr_lock_client_t *w = new_client(s.home);
    while (atomic_load(&s.grants) < 200)
        sched_yield();
    long worst = 0, between[50];
    for (int k = 0; k < 50; k++) {
        long before = atomic_load(&s.grants);
        uint64_t tok;
        tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 0, 5000};
        assert_int_equal(tsr_lock_acquire(w, s.name, &o, &tok, NULL), TSR_OK);
        between[k] = atomic_load(&s.grants) - before;
        if (between[k] > worst)
            worst = between[k];
        assert_int_equal(atomic_load(&s.readers), 0);
        assert_int_equal(tsr_lock_release(w, s.name, tok, NULL), TSR_OK);
        usleep(200);
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i < NR; i++)
        pthread_join(th[i], NULL);
    /* readers ahead of the writer (at most NR) plus those granted between the
     * snapshot and the writer's ticket (at most NR again, unless the writer
     * was preempted in between) */
    qsort(between, 50, sizeof(between[0]), cmp_long);
    print_message("fairness: median %ld, worst %ld reader grants before the writer\n",
                  between[25], worst);
    assert_true(between[25] <= 2 * NR);
    assert_int_equal(atomic_load(&s.violations), 0);
    tsr_lock_client_destroy(w);
    tsr_lock_home_destroy(s.home);
}

/* ---- leases, fencing, timeouts ----------------------------------------------------------- */

static void test_lease_expiry_and_fencing(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    tsr_lock_client_t *dead = new_client(e.home);
    tsr_lock_fence_t *fence;
    assert_int_equal(tsr_lock_fence_create(&fence, NULL), TSR_OK);
    tsr_lock_opts_t shortl = {TSR_LOCK_EXCLUSIVE, 150, -1};
    uint64_t t_dead, t_new;
    assert_int_equal(tsr_lock_acquire(dead, "L", &shortl, &t_dead, NULL), TSR_OK);
    assert_int_equal(tsr_lock_fence_check(fence, "L", t_dead, NULL), TSR_OK);
    /* the holder "dies" (never renews); a waiter gets the lock after the lease */
    double t0 = now_s();
    tsr_lock_opts_t wait = {TSR_LOCK_EXCLUSIVE, 1000, 5000};
    assert_int_equal(tsr_lock_acquire(e.c, "L", &wait, &t_new, NULL), TSR_OK);
    double waited = now_s() - t0;
    print_message("lease expiry after %.0f ms (lease 150 ms)\n", waited * 1000);
    assert_true(waited >= 0.14);
    assert_true(waited < 3.0);
    assert_true(t_new > t_dead);
    assert_int_equal(tsr_lock_fence_check(fence, "L", t_new, NULL), TSR_OK);
    /* the stale holder comes back: its write and its release are refused */
    tsr_lock_err_t err = {0};
    assert_int_equal(tsr_lock_fence_check(fence, "L", t_dead, &err), TSR_ERR_STALE);
    assert_non_null(strstr(err.message, "refused"));
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_renew(dead, "L", t_dead, 0, &err), TSR_ERR_STALE);
    assert_non_null(strstr(err.message, "reset"));
    /* the stale renew forgot the grant: releasing it now is an unknown token */
    assert_int_equal(tsr_lock_release(dead, "L", t_dead, NULL), TSR_ERR_INVALID_ARG);
    /* and the new holder is unaffected */
    tsr_lock_status_t st;
    assert_int_equal(tsr_lock_status(e.c, "L", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_HELD_EXCLUSIVE);
    assert_int_equal(tsr_lock_release(e.c, "L", t_new, NULL), TSR_OK);

    /* a stale release (no renew first) is refused too */
    uint64_t t2;
    assert_int_equal(tsr_lock_acquire(dead, "L2", &shortl, &t_dead, NULL), TSR_OK);
    assert_int_equal(tsr_lock_acquire(e.c, "L2", &wait, &t2, NULL), TSR_OK);
    assert_true(t2 > t_dead);
    memset(&err, 0, sizeof(err));
    assert_int_equal(tsr_lock_release(dead, "L2", t_dead, &err), TSR_ERR_STALE);
    assert_non_null(strstr(err.message, "lease"));
    assert_int_equal(tsr_lock_release(e.c, "L2", t2, NULL), TSR_OK);

    /* dead shared holders expire the same way */
    tsr_lock_opts_t sh = {TSR_LOCK_SHARED, 120, -1};
    uint64_t s1, s2;
    assert_int_equal(tsr_lock_acquire(dead, "S", &sh, &s1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_acquire(dead, "S", &sh, &s2, NULL), TSR_OK);
    assert_int_equal(tsr_lock_acquire(e.c, "S", &wait, &t2, NULL), TSR_OK);
    assert_true(t2 > s1 && t2 > s2);
    assert_int_equal(tsr_lock_release(e.c, "S", t2, NULL), TSR_OK);

    /* a holder past its lease with nobody waiting may still release */
    assert_int_equal(tsr_lock_acquire(dead, "M", &shortl, &t_dead, NULL), TSR_OK);
    usleep(200 * 1000);
    assert_int_equal(tsr_lock_release(dead, "M", t_dead, NULL), TSR_OK);
    assert_int_equal(tsr_lock_try_acquire(e.c, "M", NULL, &t_new, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "M", t_new, NULL), TSR_OK);
    tsr_lock_fence_destroy(fence);
    tsr_lock_client_destroy(dead);
    env_fini(&e);
}

typedef struct renew_arg {
    tsr_lock_home_t *home;
    _Atomic int got;
    uint64_t token;
} renew_arg_t;

static void *renew_waiter(void *arg)
{
    renew_arg_t *a = arg;
    tsr_lock_client_t *c = new_client(a->home);
    tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 1000, 5000};
    if (tsr_lock_acquire(c, "R", &o, &a->token, NULL) == TSR_OK) {
        atomic_store(&a->got, 1);
        tsr_lock_release(c, "R", a->token, NULL);
    } else {
        atomic_store(&a->got, -1);
    }
    tsr_lock_client_destroy(c);
    return NULL;
}

static void test_renew(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    /* a 250 ms lease renewed every 30 ms: a loaded machine may stall the
     * renewing thread for a while, and a stall past the lease (plus grace)
     * rightly lets the waiter reset the lock */
    tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 250, -1};
    uint64_t tok;
    assert_int_equal(tsr_lock_acquire(e.c, "R", &o, &tok, NULL), TSR_OK);
    renew_arg_t a = {.home = e.home};
    pthread_t th;
    pthread_create(&th, NULL, renew_waiter, &a);
    for (int i = 0; i < 24; i++) { /* 24 x 30 ms = 720 ms, much longer than the lease */
        usleep(30 * 1000);
        assert_int_equal(tsr_lock_renew(e.c, "R", tok, 250, NULL), TSR_OK);
        assert_int_equal(atomic_load(&a.got), 0);
    }
    assert_int_equal(tsr_lock_release(e.c, "R", tok, NULL), TSR_OK);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&a.got), 1);
    assert_true(a.token > tok);
    env_fini(&e);
}

typedef struct tmo_arg {
    tsr_lock_home_t *home;
    const char *name;
    tsr_lock_mode_t mode;
    int64_t timeout_ms;
    tsr_status_t rc;
    double elapsed;
} tmo_arg_t;

static void *timed_acquirer(void *arg)
{
    tmo_arg_t *a = arg;
    tsr_lock_client_t *c = new_client(a->home);
    tsr_lock_opts_t o = {a->mode, 10000, a->timeout_ms};
    uint64_t tok;
    double t0 = now_s();
    a->rc = tsr_lock_acquire(c, a->name, &o, &tok, NULL);
    a->elapsed = now_s() - t0;
    if (a->rc == TSR_OK)
        tsr_lock_release(c, a->name, tok, NULL);
    tsr_lock_client_destroy(c);
    return NULL;
}

static void test_timeouts(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    uint64_t tok;
    tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 10000, -1}; /* long lease: no expiry here */
    assert_int_equal(tsr_lock_acquire(e.c, "T", &o, &tok, NULL), TSR_OK);
    /* a waiter gives up in time ... */
    tsr_lock_client_t *c2 = new_client(e.home);
    tsr_lock_opts_t w = {TSR_LOCK_EXCLUSIVE, 10000, 80};
    uint64_t t2;
    tsr_lock_err_t err = {0};
    double t0 = now_s();
    assert_int_equal(tsr_lock_acquire(c2, "T", &w, &t2, &err), TSR_ERR_TIMEOUT);
    double el = now_s() - t0;
    assert_true(el >= 0.079 && el < 2.0);
    assert_non_null(strstr(err.message, "not granted"));
    /* ... and a shared one too, while a second waiter stays queued */
    tmo_arg_t late = {e.home, "T", TSR_LOCK_EXCLUSIVE, 3000, TSR_ERR_INTERNAL, 0};
    pthread_t th;
    pthread_create(&th, NULL, timed_acquirer, &late);
    usleep(20 * 1000);
    tsr_lock_opts_t ws = {TSR_LOCK_SHARED, 10000, 50};
    assert_int_equal(tsr_lock_acquire(c2, "T", &ws, &t2, NULL), TSR_ERR_TIMEOUT);
    /* after the release, the queue moves past the abandoned tickets at once
     * (long before any lease could expire) */
    usleep(20 * 1000);
    t0 = now_s();
    assert_int_equal(tsr_lock_release(e.c, "T", tok, NULL), TSR_OK);
    pthread_join(th, NULL);
    assert_int_equal(late.rc, TSR_OK);
    print_message("queued waiter granted %.1f ms after the release\n", (now_s() - t0) * 1000);
    assert_true(now_s() - t0 < 2.0);
    /* and fresh acquirers are served at once */
    assert_int_equal(tsr_lock_acquire(c2, "T", &w, &t2, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c2, "T", t2, NULL), TSR_OK);
    tsr_lock_client_destroy(c2);
    env_fini(&e);
}

/* Status while a writer waits behind readers: shared, holders a lower bound. */
static void test_status_queue(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    tsr_lock_opts_t sh = {TSR_LOCK_SHARED, 10000, -1};
    uint64_t s1, s2;
    assert_int_equal(tsr_lock_acquire(e.c, "Q", &sh, &s1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_acquire(e.c, "Q", &sh, &s2, NULL), TSR_OK);
    tmo_arg_t w = {e.home, "Q", TSR_LOCK_EXCLUSIVE, 400, TSR_ERR_INTERNAL, 0};
    pthread_t th;
    pthread_create(&th, NULL, timed_acquirer, &w);
    tsr_lock_status_t st;
    for (int i = 0; i < 200; i++) { /* until the writer is queued */
        assert_int_equal(tsr_lock_status(e.c, "Q", &st, NULL), TSR_OK);
        if (st.waiters > 0)
            break;
        usleep(1000);
    }
    assert_int_equal(st.state, TSR_LOCK_HELD_SHARED);
    assert_false(st.holders_exact);
    assert_true(st.holders >= 1);
    assert_true(st.waiters >= 1);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, TSR_ERR_TIMEOUT);
    /* the abandoned writer is skipped as soon as the readers leave */
    assert_int_equal(tsr_lock_release(e.c, "Q", s1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(e.c, "Q", s2, NULL), TSR_OK);
    tsr_lock_opts_t ex = {TSR_LOCK_EXCLUSIVE, 10000, 2000};
    assert_int_equal(tsr_lock_acquire(e.c, "Q", &ex, &s1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_status(e.c, "Q", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_HELD_EXCLUSIVE);
    assert_true(st.holders_exact);
    assert_int_equal(tsr_lock_release(e.c, "Q", s1, NULL), TSR_OK);
    env_fini(&e);
}

/* ---- fence -------------------------------------------------------------------------------- */

static void test_fence_model(void **state)
{
    (void)state;
    tsr_lock_fence_t *f;
    assert_int_equal(tsr_lock_fence_create(&f, NULL), TSR_OK);
    enum { N = 300 };
    uint64_t model[N] = {0};
    char name[32];
    for (int i = 0; i < 20000; i++) {
        int k = (int)(rnd() % N);
        uint64_t tok = 1 + rnd() % 1000;
        snprintf(name, sizeof(name), "lock-%d", k);
        tsr_status_t want = tok >= model[k] ? TSR_OK : TSR_ERR_STALE;
        assert_int_equal(tsr_lock_fence_check(f, name, tok, NULL), want);
        if (want == TSR_OK)
            model[k] = tok;
    }
    assert_int_equal(tsr_lock_fence_check(f, "x", 0, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_fence_check(f, "", 5, NULL), TSR_ERR_INVALID_ARG);
    tsr_lock_fence_destroy(f);
    tsr_lock_fence_destroy(NULL);
}


/* ---- the fast path: two word operations per uncontended acquire+release -------- */

static uint64_t remote_ops(tsr_lock_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->remote_ops;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ops of one acquire+release of name by c */
static uint64_t pair_ops(tsr_lock_client_t *c, const char *name, tsr_lock_mode_t mode,
                         int64_t lease, uint64_t *tok)
{
    tsr_lock_opts_t o = {mode, lease, -1};
    uint64_t n0 = remote_ops(c);
    assert_int_equal(tsr_lock_acquire(c, name, &o, tok, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c, name, *tok, NULL), TSR_OK);
    return remote_ops(c) - n0;
}

static void test_fast_path_ops(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 4096);
    tsr_lock_client_t *other = new_client(e.home);
    uint64_t tok, prev = 0;
    bool two_x = false, two_s = false;
    /* the fast path depends on a 2 ms window (a loaded machine may pause us
     * longer): any of a few tries must show it */
    for (int attempt = 0; attempt < 20 && !(two_x && two_s); attempt++) {
        /* first use: probe + request + stamp + release */
        assert_true(pair_ops(e.c, "fast", TSR_LOCK_EXCLUSIVE, 0, &tok) >= 3);
        assert_true(tok > prev);
        prev = tok;
        uint64_t n = pair_ops(e.c, "fast", TSR_LOCK_EXCLUSIVE, 0, &tok);
        assert_true(tok > prev);
        prev = tok;
        two_x |= n == 2;
        n = pair_ops(e.c, "fast", TSR_LOCK_SHARED, 0, &tok);
        assert_true(tok > prev); /* the mode changed: a stamp (3 ops) */
        prev = tok;
        assert_true(n >= 3);
        n = pair_ops(e.c, "fast", TSR_LOCK_SHARED, 0, &tok);
        assert_true(tok > prev);
        prev = tok;
        two_s |= n == 2;
        /* a different lease must be stamped */
        assert_true(pair_ops(e.c, "fast", TSR_LOCK_SHARED, 20000, &tok) >= 3);
        assert_true(tok > prev);
        prev = tok;
        /* another client in between: the next pair cannot trust its cache */
        assert_true(pair_ops(other, "fast", TSR_LOCK_EXCLUSIVE, 0, &tok) >= 3);
        assert_true(tok > prev);
        prev = tok;
        assert_true(pair_ops(e.c, "fast", TSR_LOCK_EXCLUSIVE, 0, &tok) >= 3);
        assert_true(tok > prev);
        prev = tok;
        tsr_lock_status_t st;
        assert_int_equal(tsr_lock_status(e.c, "fast", &st, NULL), TSR_OK);
        assert_int_equal(st.state, TSR_LOCK_FREE);
        assert_int_equal(st.last_token, tok);
        assert_int_equal(st.lease_ms, TSR_LOCK_DEFAULT_LEASE_MS);
        /* a grant with the lease the grant word does not say: stamped */
        tsr_lock_opts_t shortl = {TSR_LOCK_EXCLUSIVE, 300, -1};
        assert_int_equal(tsr_lock_acquire(e.c, "fast", &shortl, &tok, NULL), TSR_OK);
        assert_int_equal(tsr_lock_status(other, "fast", &st, NULL), TSR_OK);
        assert_int_equal(st.lease_ms, 300);
        assert_int_equal(st.last_token, tok);
        assert_int_equal(tsr_lock_release(e.c, "fast", tok, NULL), TSR_OK);
        prev = tok;
    }
    assert_true(two_x);
    assert_true(two_s);
    tsr_lock_client_destroy(other);
    env_fini(&e);
}

/* Tokens keep growing across resets and the wrap-around of word 1's 8-bit
 * epoch, whether the grant took the fast path or stamped. The lock is moved
 * to epoch 250 first (E with it, as 250 resets would have left it), so a few
 * hundred thousand grants cross 255 -> 0. */
static void test_tokens_across_epochs(void **state)
{
    (void)state;
    env_t e;
    env_init(&e, 64);
    tsr_lock_client_t *other = new_client(e.home);
    tsr_lock_client_t *cs[2] = {e.c, other};
    uint64_t prev = 0, tok;
    tsr_lock_status_t st;
    assert_int_equal(pair_ops(e.c, "wrap", TSR_LOCK_EXCLUSIVE, 0, &prev) > 0, 1);
    assert_int_equal(tsr_lock_status(e.c, "wrap", &st, NULL), TSR_OK);
    assert_int_equal(st.epoch, 0);
    _Atomic uint64_t *w = &e.home->words[(size_t)st.slot * LK_SLOT_WORDS];
    uint64_t w2 = atomic_load(&w[LK_W_GRANT]);
    atomic_store(&w[LK_W_LOCK], lk_word(250, 0, 0, 0, 0));
    atomic_store(&w[LK_W_GRANT], w2 + 250 * LK_E_ONE);
    /* about 12 epochs (a reset every 8192 tickets of one kind) */
    long grants = 12l * 9000;
    for (long i = 0; i < grants; i++) {
        tsr_lock_client_t *c = cs[(i / 7) % 2]; /* runs of 7: fast and stamped grants */
        tsr_lock_opts_t o = {(i % 5) == 4 ? TSR_LOCK_SHARED : TSR_LOCK_EXCLUSIVE, 0, -1};
        assert_int_equal(tsr_lock_acquire(c, "wrap", &o, &tok, NULL), TSR_OK);
        if (tok <= prev)
            fail_msg("grant %ld: token %llu after %llu", i, (unsigned long long)tok,
                     (unsigned long long)prev);
        prev = tok;
        assert_int_equal(tsr_lock_release(c, "wrap", tok, NULL), TSR_OK);
    }
    assert_int_equal(tsr_lock_status(e.c, "wrap", &st, NULL), TSR_OK);
    print_message("tokens across epochs: epoch 250 -> %u, last token %llu\n", st.epoch,
                  (unsigned long long)st.last_token);
    assert_true(st.epoch >= 1 && st.epoch < 20); /* wrapped */
    assert_true(st.last_token >= prev);
    /* E moved with every reset: 250 + resets since, 256 epochs past the start */
    uint64_t e_now = lk_w2_epoch_full(atomic_load(&w[LK_W_GRANT]));
    assert_int_equal(e_now & 0xffu, st.epoch);
    assert_true(e_now >= lk_w2_epoch_full(w2) + 256);
    tsr_lock_client_destroy(other);
    env_fini(&e);
}


/* ---- the served path (one process, two transports over TCP) ---------------------- */

typedef struct served_wait {
    tsr_lock_client_t *c;
    tsr_status_t rc;
    _Atomic int done;
} served_wait_t;

static void *served_waiter(void *arg)
{
    served_wait_t *w = arg;
    uint64_t tok;
    tsr_lock_opts_t o = {TSR_LOCK_EXCLUSIVE, 0, -1};
    w->rc = tsr_lock_acquire(w->c, "S", &o, &tok, NULL);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_served(void **state)
{
    (void)state;
    setenv("UCX_NET_DEVICES", "lo", 0);
    setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
    tsr_transport_t *th = NULL, *tc = NULL;
    tsr_transport_params_t hp = {.node_id = 1, .listen_host = "127.0.0.1", .tls = "tcp"};
    tsr_transport_params_t cp = {.node_id = 2, .tls = "tcp"};
    if (tsr_transport_create(NULL, &hp, &th, NULL) != TSR_OK ||
        tsr_transport_create(NULL, &cp, &tc, NULL) != TSR_OK) {
        tsr_transport_destroy(th);
        skip(); /* no UCX TCP on loopback here */
    }
    assert_int_equal(tsr_transport_start_thread(th, NULL), TSR_OK);
    tsr_lock_home_t *home = NULL;
    assert_int_equal(tsr_lock_home_create(th, NULL, &home, NULL), TSR_OK);
    tsr_lock_home_addr_t a = {"127.0.0.1", tsr_transport_port(th), 0};
    tsr_lock_client_params_t p = {.transport = tc, .homes = &a, .nhomes = 1};
    tsr_lock_client_t *c = NULL, *c2 = NULL, *one = NULL;
    assert_int_equal(tsr_lock_client_create(&p, &c, NULL), TSR_OK); /* AUTO: tcp only */
    assert_true(c->homes[0].served);
    p.path = TSR_LOCK_PATH_ATOMICS;
    assert_int_equal(tsr_lock_client_create(&p, &one, NULL), TSR_OK);
    assert_false(one->homes[0].served);
    p.path = TSR_LOCK_PATH_SERVED;
    assert_int_equal(tsr_lock_client_create(&p, &c2, NULL), TSR_OK);

    uint64_t t1, t2, t3;
    tsr_lock_opts_t x = {TSR_LOCK_EXCLUSIVE, 0, 1000};
    assert_int_equal(tsr_lock_acquire(c, "S", &x, &t1, NULL), TSR_OK);
    /* refused and timed out through the home; messages come back */
    tsr_lock_err_t err = {0};
    assert_int_equal(tsr_lock_try_acquire(c2, "S", NULL, &t2, &err), TSR_ERR_CONFLICT);
    assert_non_null(strstr(err.message, "busy"));
    tsr_lock_opts_t quick = {TSR_LOCK_EXCLUSIVE, 0, 50};
    assert_int_equal(tsr_lock_acquire(c2, "S", &quick, &t2, NULL), TSR_ERR_TIMEOUT);
    /* the one-sided client sees the same words */
    assert_int_equal(tsr_lock_try_acquire(one, "S", NULL, &t2, NULL), TSR_ERR_CONFLICT);
    tsr_lock_status_t st;
    assert_int_equal(tsr_lock_status(c2, "S", &st, NULL), TSR_OK);
    assert_int_equal(st.state, TSR_LOCK_HELD_EXCLUSIVE);
    assert_int_equal(st.last_token, t1);
    /* release and renew by token, from any served client of this home */
    assert_int_equal(tsr_lock_release(c, "S", t1 + 1, NULL), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_lock_renew(c2, "S", t1, 2000, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c2, "S", t1, NULL), TSR_OK);
    assert_int_equal(tsr_lock_release(c, "S", t1, NULL), TSR_ERR_INVALID_ARG);
    /* a waiting acquire is granted by the release of a one-sided holder */
    assert_int_equal(tsr_lock_acquire(one, "S", &x, &t2, NULL), TSR_OK);
    assert_true(t2 > t1);
    served_wait_t w = {c2, TSR_ERR_INTERNAL, 0};
    pthread_t thr;
    pthread_create(&thr, NULL, served_waiter, &w);
    usleep(50 * 1000);
    assert_int_equal(tsr_lock_release(one, "S", t2, NULL), TSR_OK);
    pthread_join(thr, NULL);
    assert_int_equal(w.rc, TSR_OK);
    /* held by the waiter's grant now; another waiter is cancelled when the
     * home stops */
    assert_int_equal(tsr_lock_status(c, "S", &st, NULL), TSR_OK);
    t3 = st.last_token;
    assert_true(t3 > t2);
    w.c = c;
    w.rc = TSR_ERR_INTERNAL;
    atomic_store(&w.done, 0);
    pthread_create(&thr, NULL, served_waiter, &w);
    /* until the home queued it (a loaded machine may take a while) */
    for (int i = 0; i < 500; i++) {
        assert_int_equal(tsr_lock_status(one, "S", &st, NULL), TSR_OK);
        if (st.waiters >= 1)
            break;
        usleep(10 * 1000);
    }
    assert_true(st.waiters >= 1);
    /* the transport's rule: no progress thread while a handler's arg goes */
    tsr_transport_stop_thread(th);
    tsr_lock_home_destroy(home);
    for (int i = 0; i < 5000 && !atomic_load(&w.done); i++) {
        tsr_transport_progress(th); /* the cancelled call's answer leaves */
        usleep(1000);
    }
    pthread_join(thr, NULL);
    assert_int_equal(w.rc, TSR_ERR_UNAVAILABLE);
    tsr_lock_client_destroy(c);
    tsr_lock_client_destroy(c2);
    tsr_lock_client_destroy(one);
    tsr_transport_destroy(tc);
    tsr_transport_destroy(th);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_word_model),
        cmocka_unit_test(test_fast_path_ops),
        cmocka_unit_test(test_tokens_across_epochs),
        cmocka_unit_test(test_served),
        cmocka_unit_test(test_grant_low),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_basic_semantics),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_threads_mutex),
        cmocka_unit_test(test_threads_shared),
        cmocka_unit_test(test_threads_timeouts),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_lease_expiry_and_fencing),
        cmocka_unit_test(test_renew),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_status_queue),
        cmocka_unit_test(test_fence_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
