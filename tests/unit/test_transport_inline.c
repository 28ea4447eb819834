/*
 * test_transport_inline.c - inline RPC handlers (TSR_RPC_INLINE,
 * transport/rpc_recv.c), in one process over loopback: two transports, a
 * server S and a client C, connected to each other.
 *
 * Checked against simple models:
 *  - registration: flags and types out of range are refused; a type
 *    registered inline and then plainly is no longer inline;
 *  - concurrent calls: 4 client threads make blocking calls with random
 *    payloads of 0..300 bytes (across the 64-byte in-request and 256-byte
 *    copy limits) to a handler that answers f(payload) (every byte + 1, and
 *    the length), checked byte for byte; every 16th request the handler
 *    keeps and another thread answers later (allowed by the contract); the
 *    handler records whether it ran inline (white-box: tsr__inline_owner)
 *    and on which thread (always S's progress thread), and S's rx_inline
 *    counter must equal the inline runs exactly;
 *  - dispatch mode: with TSR_DISPATCH_PROGRESS_ONLY a request that arrives
 *    while S's own thread is blocked in a call to C does not run there (not
 *    inline, not queued) but at S's next tsr_transport_wait, queued; with
 *    TSR_DISPATCH_ANY it runs inline inside that blocking call;
 *  - unregister: an inline type unregistered is answered UNSUPPORTED;
 *  - the contract's guard: an inline handler that calls a function it may
 *    not (tsr_transport_get_stats) aborts the process with a message rather
 *    than deadlocking (in a forked child, bounded by alarm()).
 * Killed peers and bad input with inline handlers: the transport.*_inline
 * integration tests (tests/integration/transport, TSR_TEST_INLINE=1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* white-box: tsr__inline_owner */
#include "transport.h"
#include "transport_test.h"

#define T_F 11      /* answers f(payload) */
#define T_PING 12   /* answers 8 bytes */
#define T_BAD 13    /* breaks the contract */
#define NTHREADS 4
#define NCALLS 1500
#define MAXLEN 300
#define HOLD_EVERY 16u

typedef struct srv {
    tsr_transport_t *t;
    atomic_uint runs, inline_runs, wrong_thread;
    pthread_t progress_thread; /* set once known (first run) */
    atomic_bool have_thread;
    /* requests the handler kept; the answerer thread answers them */
    pthread_mutex_t mu;
    tsr_rpc_req_t *held[256];
    unsigned nheld;
    atomic_bool stop;
} srv_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void env_setup(void)
{
    setenv("UCX_NET_DEVICES", "lo", 0);
    setenv("UCX_WARN_UNUSED_ENV_VARS", "n", 0);
}

static tsr_transport_t *make(uint32_t node, bool listen, tsr_dispatch_mode_t mode)
{
    tsr_transport_params_t p = {.node_id = node,
                                .listen_host = listen ? "127.0.0.1" : NULL,
                                .spin_us = 20,
                                .dispatch = mode};
    return test_transport_create(&p);
}


/* The model: reply = [len as u32] + every payload byte + 1. */
static size_t model_reply(const uint8_t *in, size_t len, uint8_t *out)
{
    uint32_t l = (uint32_t)len;
    memcpy(out, &l, 4);
    for (size_t i = 0; i < len; i++)
        out[4 + i] = (uint8_t)(in[i] + 1);
    return len + 4;
}

static void note_run(srv_t *s)
{
    atomic_fetch_add(&s->runs, 1);
    if (tsr__inline_owner == s->t)
        atomic_fetch_add(&s->inline_runs, 1);
    if (atomic_load(&s->have_thread) && !pthread_equal(pthread_self(), s->progress_thread))
        atomic_fetch_add(&s->wrong_thread, 1);
}

static void h_f(void *arg, tsr_rpc_req_t *req)
{
    srv_t *s = arg;
    note_run(s);
    size_t len = 0;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    if (len >= 1 && d[0] % HOLD_EVERY == 0) {
        /* Kept past return: the answerer thread answers (its reply waits for
         * the transport lock this handler holds while it runs inline). */
        pthread_mutex_lock(&s->mu);
        if (s->nheld < 256) {
            s->held[s->nheld++] = req;
            req = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (!req)
            return;
    }
    uint8_t out[MAXLEN + 4]; /* the reply from the stack */
    size_t n = model_reply(d, len, out);
    (void)tsr_rpc_reply(s->t, req, TSR_OK, out, n);
}

static void *answerer_main(void *arg)
{
    srv_t *s = arg;
    for (;;) {
        tsr_rpc_req_t *r = NULL;
        pthread_mutex_lock(&s->mu);
        if (s->nheld > 0)
            r = s->held[--s->nheld];
        pthread_mutex_unlock(&s->mu);
        if (!r) {
            if (atomic_load(&s->stop))
                return NULL;
            usleep(100);
            continue;
        }
        size_t len = 0;
        const uint8_t *d = tsr_rpc_req_data(r, &len);
        uint8_t out[MAXLEN + 4];
        size_t n = model_reply(d, len, out);
        (void)tsr_rpc_reply(s->t, r, TSR_OK, out, n);
    }
}

typedef struct caller {
    pthread_t th;
    tsr_transport_t *c;
    tsr_peer_t *p;
    unsigned seed;
    unsigned ok, bad;
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *k = arg;
    uint8_t in[MAXLEN], want[MAXLEN + 4];
    for (unsigned i = 0; i < NCALLS; i++) {
        size_t len = (size_t)(rand_r(&k->seed) % (MAXLEN + 1));
        if (i % 7 == 0) /* the edges: 0, 1, 64, 65, 256, 257 */
            len = (size_t[]){0, 1, 64, 65, 256, 257}[i / 7 % 6];
        for (size_t j = 0; j < len; j++)
            in[j] = (uint8_t)rand_r(&k->seed);
        size_t wn = model_reply(in, len, want);
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t rc = tsr_rpc_call(k->c, k->p, T_F, in, len, 30000, &reply, &err);
        if (rc == TSR_OK && reply.len == wn && memcmp(reply.data, want, wn) == 0)
            k->ok++;
        else
            k->bad++;
        tsr_rpc_msg_release(k->c, &reply);
    }
    return NULL;
}

/* The progress thread's id: the transport's (white-box). */
static void learn_progress_thread(srv_t *s)
{
    s->progress_thread = s->t->thread;
    atomic_store(&s->have_thread, true);
}

static void test_register_flags(void **state)
{
    (void)state;
    env_setup();
    tsr_transport_t *t = make(1, false, TSR_DISPATCH_ANY);
    srv_t s = {.t = t};
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_register_flags(t, T_F, h_f, &s, 4u, &err), TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_rpc_register_flags(t, 0, h_f, &s, TSR_RPC_INLINE, &err),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_rpc_register_flags(t, TSR_RPC_MAX_TYPES, h_f, &s, TSR_RPC_INLINE, &err),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_rpc_register_flags(NULL, T_F, h_f, &s, TSR_RPC_INLINE, &err),
                     TSR_ERR_INVALID_ARG);
    assert_int_equal(tsr_rpc_register_flags(t, T_F, h_f, &s, TSR_RPC_INLINE, &err), TSR_OK);
    assert_true(t->handlers[T_F].inline_);
    assert_int_equal(tsr_rpc_register(t, T_F, h_f, &s, &err), TSR_OK);
    assert_false(t->handlers[T_F].inline_);
    assert_int_equal(tsr_rpc_register_flags(t, T_F, NULL, NULL, TSR_RPC_INLINE, &err), TSR_OK);
    assert_false(t->handlers[T_F].inline_); /* no handler: nothing inline */
    tsr_transport_destroy(t);
}

static void test_concurrent_inline(void **state)
{
    (void)state;
    env_setup();
    static srv_t s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    s.t = make(1, true, TSR_DISPATCH_ANY);
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_register_flags(s.t, T_F, h_f, &s, TSR_RPC_INLINE, &err), TSR_OK);
    assert_int_equal(tsr_transport_start_thread(s.t, &err), TSR_OK);
    learn_progress_thread(&s);
    tsr_transport_t *c = make(10, false, TSR_DISPATCH_ANY);
    tsr_peer_t *p = test_transport_connect(c, s.t);
    pthread_t ans;
    assert_int_equal(pthread_create(&ans, NULL, answerer_main, &s), 0);
    caller_t k[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        k[i] = (caller_t){.c = c, .p = p, .seed = 1234u + (unsigned)i * 77u};
        assert_int_equal(pthread_create(&k[i].th, NULL, caller_main, &k[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(k[i].th, NULL);
        assert_int_equal(k[i].bad, 0);
        assert_int_equal(k[i].ok, NCALLS);
    }
    atomic_store(&s.stop, true);
    pthread_join(ans, NULL);
    tsr_transport_stats_t st;
    tsr_transport_get_stats(s.t, &st);
    unsigned runs = atomic_load(&s.runs), inl = atomic_load(&s.inline_runs);
    fprintf(stderr, "[inline] %u runs, %u inline, transport counted %llu\n", runs, inl,
            (unsigned long long)st.rx_inline);
    assert_int_equal(runs, NTHREADS * NCALLS);
    assert_int_equal(atomic_load(&s.wrong_thread), 0);
    assert_int_equal(st.rx_inline, inl);
    /* Nearly all run inline (a request behind a queued item waits its turn);
     * at least some must, or the path was not taken at all. */
    assert_true(inl > 0);
    tsr_transport_destroy(c);
    tsr_transport_destroy(s.t);
    pthread_mutex_destroy(&s.mu);
}

/* ---- dispatch mode ---------------------------------------------------------- */

typedef struct ping_srv {
    tsr_transport_t *t;
    atomic_uint runs, inline_runs;
} ping_srv_t;

static void h_ping(void *arg, tsr_rpc_req_t *req)
{
    ping_srv_t *s = arg;
    atomic_fetch_add(&s->runs, 1);
    if (tsr__inline_owner == s->t)
        atomic_fetch_add(&s->inline_runs, 1);
    uint64_t v = 77;
    (void)tsr_rpc_reply(s->t, req, TSR_OK, &v, sizeof(v));
}

/* C answers S's calls on its own progress thread. */
static void h_c_answer(void *arg, tsr_rpc_req_t *req)
{
    tsr_transport_t *c = arg;
    uint64_t v = 5;
    (void)tsr_rpc_reply(c, req, TSR_OK, &v, sizeof(v));
}

static atomic_int g_async_done;

static void ping_done(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    tsr_transport_t *c = arg;
    if (st == TSR_OK && reply->len == 8)
        atomic_fetch_add(&g_async_done, 1);
    tsr_rpc_msg_release(c, reply);
}

static void run_dispatch_case(tsr_dispatch_mode_t mode)
{
    env_setup();
    static ping_srv_t s;
    memset(&s, 0, sizeof(s));
    atomic_store(&g_async_done, 0);
    s.t = make(1, true, mode);
    tsr_transport_t *c = make(10, true, TSR_DISPATCH_ANY);
    tsr_error_t err;
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_register_flags(s.t, T_PING, h_ping, &s, TSR_RPC_INLINE, &err),
                     TSR_OK);
    assert_int_equal(tsr_rpc_register(c, T_PING, h_c_answer, c, &err), TSR_OK);
    /* Both directions connected, while both progress threads run. */
    assert_int_equal(tsr_transport_start_thread(s.t, &err), TSR_OK);
    assert_int_equal(tsr_transport_start_thread(c, &err), TSR_OK);
    tsr_peer_t *to_s = test_transport_connect(c, s.t);
    tsr_peer_t *to_c = test_transport_connect(s.t, c);
    tsr_transport_stop_thread(s.t); /* from now on only this thread progresses S */

    /* C posts a call to S; C's thread sends it at once. Its request reaches
     * S's receive queue before C answers S's own call below (same
     * connection, in order), so S receives it during that blocking call. */
    uint64_t v = 1;
    assert_int_equal(tsr_rpc_call_async(c, to_s, T_PING, &v, 8, 30000, ping_done, c, &err),
                     TSR_OK);
    usleep(20000); /* let it land (not required for correctness) */
    tsr_rpc_msg_t reply;
    assert_int_equal(tsr_rpc_call(s.t, to_c, T_PING, &v, 8, 30000, &reply, &err), TSR_OK);
    tsr_rpc_msg_release(s.t, &reply);
    unsigned during = atomic_load(&s.runs);
    if (mode == TSR_DISPATCH_PROGRESS_ONLY) {
        assert_int_equal(during, 0); /* neither inline nor queued-run in the call */
        double t0 = now_s();
        while (atomic_load(&s.runs) == 0 && now_s() - t0 < 20)
            tsr_transport_wait(s.t, 10);
        assert_int_equal(atomic_load(&s.runs), 1);
        assert_int_equal(atomic_load(&s.inline_runs), 0); /* it was queued */
    } else {
        /* Either inline inside the call or, at the latest, in the next wait. */
        double t0 = now_s();
        while (atomic_load(&s.runs) == 0 && now_s() - t0 < 20)
            tsr_transport_wait(s.t, 10);
        assert_int_equal(atomic_load(&s.runs), 1);
        assert_int_equal(atomic_load(&s.inline_runs), 1);
        assert_int_equal(during, 1); /* inside the blocking call */
    }
    double t0 = now_s();
    while (atomic_load(&g_async_done) == 0 && now_s() - t0 < 20)
        tsr_transport_wait(s.t, 10); /* S sends the reply; C's thread takes it */
    assert_int_equal(atomic_load(&g_async_done), 1);

    /* Unregistered: inline type answered UNSUPPORTED, handler not run. */
    assert_int_equal(tsr_rpc_unregister(s.t, T_PING, &err), TSR_OK);
    assert_int_equal(tsr_transport_start_thread(s.t, &err), TSR_OK);
    tsr_error_clear(&err);
    assert_int_equal(tsr_rpc_call(c, to_s, T_PING, &v, 8, 30000, &reply, &err),
                     TSR_ERR_UNSUPPORTED);
    tsr_rpc_msg_release(c, &reply);
    assert_int_equal(atomic_load(&s.runs), 1);
    tsr_transport_destroy(c);
    tsr_transport_destroy(s.t);
}

static void test_dispatch_progress_only(void **state)
{
    (void)state;
    run_dispatch_case(TSR_DISPATCH_PROGRESS_ONLY);
}

static void test_dispatch_any(void **state)
{
    (void)state;
    run_dispatch_case(TSR_DISPATCH_ANY);
}

/* ---- the contract's guard --------------------------------------------------- */

static void h_bad(void *arg, tsr_rpc_req_t *req)
{
    tsr_transport_t *t = arg;
    tsr_transport_stats_t st;
    tsr_transport_get_stats(t, &st); /* not allowed inline: aborts */
    (void)tsr_rpc_reply(t, req, TSR_OK, NULL, 0);
}

static void test_misuse_aborts(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a deadlock instead of the abort ends here, as SIGALRM */
        setenv("UCX_HANDLE_ERRORS", "none", 1); /* the plain SIGABRT, no UCX handler */
        env_setup();
        tsr_transport_params_t p = {.node_id = 1, .listen_host = "127.0.0.1", .spin_us = 20};
        tsr_transport_t *s = NULL, *c = NULL;
        if (tsr_transport_create(NULL, &p, &s, NULL) != TSR_OK)
            _exit(3);
        tsr_transport_params_t q = {.node_id = 2, .spin_us = 20};
        if (tsr_transport_create(NULL, &q, &c, NULL) != TSR_OK)
            _exit(3);
        if (tsr_rpc_register_flags(s, T_BAD, h_bad, s, TSR_RPC_INLINE, NULL) != TSR_OK ||
            tsr_transport_start_thread(s, NULL) != TSR_OK)
            _exit(3);
        tsr_peer_t *peer = NULL;
        if (tsr_transport_connect(c, "127.0.0.1", tsr_transport_port(s), 20000, &peer, NULL) !=
            TSR_OK)
            _exit(3);
        tsr_rpc_msg_t reply;
        (void)tsr_rpc_call(c, peer, T_BAD, NULL, 0, 20000, &reply, NULL);
        _exit(4); /* not reached: the server thread aborted the process */
    }
    int st = 0;
    double t0 = now_s();
    pid_t r = 0;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && now_s() - t0 < 60)
        usleep(10000);
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("child did not end");
    }
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

int main(void)
{
    env_setup(); /* before UCX reads its configuration */
    const struct CMUnitTest tests[] = {
        /* first: it forks, before this process has used UCX */
        cmocka_unit_test(test_misuse_aborts),
        cmocka_unit_test(test_register_flags),
        cmocka_unit_test(test_concurrent_inline),
        cmocka_unit_test(test_dispatch_progress_only),
        cmocka_unit_test(test_dispatch_any),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
