/*
 * threads.c - transport_test's one-process scenarios "threads" and "owner".
 *   threads   a server on the built-in progress thread, three client threads
 *             making blocking calls at once, async calls timing out, the
 *             owner's own poll loop, dead ports and hosts.
 *   owner     the lock's owner fast path: never-sleeping pollers on both
 *             transports while other threads make blocking, async and
 *             one-sided calls; the handover bounds every wait.
 */
#include "common.h"

/* ---- threads scenario (one process) ------------------------------------------ */

/* A server driven by the built-in progress thread, a client whose threads
 * make blocking calls at the same time, async-call timeouts, the owner's own
 * poll loop (fd + arm), and a connect to a port nobody listens on. */

typedef struct caller {
    pthread_t th;
    tsr_peer_t *srv;
    int index;
    int ok;
} caller_t;

static tsr_transport_t *g_client_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;
    for (int i = 0; i < 2000; i++) {
        uint64_t v = ((uint64_t)c->index << 32) | (uint64_t)i;
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t s = tsr_rpc_call(g_client_t, c->srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply,
                                      &err);
        if (s != TSR_OK || reply.len != 8 || memcmp(reply.data, &v, 8) != 0)
            fail("thread %d call %d: %s", c->index, i, err.message);
        tsr_rpc_msg_release(g_client_t, &reply);
        c->ok++;
    }
    return NULL;
}

static int g_async_timeouts;
static void timeout_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    (void)arg;
    tsr_rpc_msg_release(g_client_t, reply);
    CHECK(st == TSR_ERR_TIMEOUT, "async late call gave %s", tsr_status_name(st));
    g_async_timeouts++;
}

int scenario_threads(void)
{
    g_role = "threads";
    static server_t s;
    g_t = make_transport(&s.rc, 1, true, 0);
    server_register(&s);
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_transport_start_thread(g_t, &err) == TSR_OK, "thread: %s", err.message);
    static role_ctx_t crc;
    tsr_transport_params_t p = {.node_id = 10, .spin_us = 20, .on_event = on_event,
                                .event_arg = &crc};
    CHECK(tsr_transport_create(NULL, &p, &g_client_t, &err) == TSR_OK, "client: %s",
          err.message);
    tsr_peer_t *srv = NULL;
    CHECK(tsr_transport_connect(g_client_t, "127.0.0.1", tsr_transport_port(g_t), 10000, &srv,
                                &err) == TSR_OK,
          "connect: %s", err.message);
    caller_t callers[3];
    for (int i = 0; i < 3; i++) {
        callers[i] = (caller_t){.srv = srv, .index = i};
        CHECK(pthread_create(&callers[i].th, NULL, caller_main, &callers[i]) == 0, "pthread");
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(callers[i].th, NULL);
        CHECK(callers[i].ok == 2000, "thread %d did %d calls", i, callers[i].ok);
    }
    /* Async calls whose answers come after their timeout (the server's
     * thread answers T_LATE 1 s later; server_tick runs in this thread). */
    uint64_t v = 1;
    for (int i = 0; i < 3; i++)
        CHECK(tsr_rpc_call_async(g_client_t, srv, T_LATE, &v, 8, 150, timeout_cb, NULL, &err) ==
                  TSR_OK,
              "async: %s", err.message);
    /* The owner's own loop: poll the fd after arming, then progress. */
    double t0 = now_s();
    while (g_async_timeouts < 3) {
        if (tsr_transport_arm(g_client_t) == TSR_OK) {
            struct pollfd pfd = {.fd = tsr_transport_fd(g_client_t), .events = POLLIN};
            (void)poll(&pfd, 1, 10);
        }
        tsr_transport_progress(g_client_t);
        CHECK(now_s() - t0 < 30, "async timeouts did not fire");
    }
    double el = now_s() - t0;
    CHECK(el >= 0.14 && el < 20, "async timeouts after %.3f s (asked 0.15)", el);
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_client_t, &st);
    CHECK(st.calls_timed_out == 3, "timed out %llu", (unsigned long long)st.calls_timed_out);

    /* Connecting to a port nobody listens on fails, and fast. */
    tsr_peer_t *none = NULL;
    uint16_t dead = (uint16_t)(tsr_transport_port(g_t) + 1);
    t0 = now_s();
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_transport_connect(g_client_t, "127.0.0.1", dead, 3000, &none, &err);
    CHECK(rc == TSR_ERR_UNAVAILABLE || rc == TSR_ERR_TIMEOUT, "dead port gave %s",
          tsr_status_name(rc));
    CHECK(now_s() - t0 < 15, "dead port took %.1f s", now_s() - t0);
    CHECK(tsr_transport_connect(g_client_t, "no.such.host.invalid", 1, 1000, &none, &err) ==
              TSR_ERR_INVALID_ARG,
          "bad host");

    tsr_transport_destroy(g_client_t);
    /* The server saw the client go; its thread stops with destroy. */
    for (int i = 0; i < 200 && s.rc.peers_down == 0; i++)
        usleep(5000);
    CHECK(s.rc.peers_down >= 1, "server saw no PEER_DOWN");
    server_tick(&s); /* held T_LATE requests of the gone client: reply fails cleanly */
    if (inline_mode()) {
        /* The 6000 blocking echoes ran on the progress thread, inline. */
        tsr_transport_stats_t sst;
        tsr_transport_get_stats(g_t, &sst);
        CHECK(sst.rx_inline > 0 && sst.rx_inline == (uint64_t)atomic_load(&g_inline_runs),
              "inline runs: transport %llu, handlers %d", (unsigned long long)sst.rx_inline,
              atomic_load(&g_inline_runs));
        fprintf(stderr, "[threads] %llu requests ran inline\n",
                (unsigned long long)sst.rx_inline);
    }
    tsr_transport_destroy(g_t);
    return 0;
}

/* ---- owner scenario (one process): the lock's owner fast path ------------- */

/* A thread that polls keeps the transport lock across its polling loop and
 * hands it over only when another thread announces itself (progress.c). Here
 * both transports have polling owners that never sleep (spin 30 s): the
 * server's progress thread, and a client thread looping in
 * tsr_transport_wait. Three other client threads make blocking RPCs, blocking
 * atomics and gets, async calls and posted atomics at the same time, and the
 * main thread reads the server's counters. If the handover did not work,
 * a contender would wait for an owner's wait to time out (10 s on the
 * client, 0.1 s per round on the server's thread, which then retakes the
 * unfair mutex first); the scenario bounds the slowest call and the typical
 * lock wait.
 * Also: a blocking call's lazily started timeout still fires on time. */

#define OWNER_CALLS 200
#define OWNER_SPIN_US 30000000u
#define OFF_MAX 20000 /* the largest off-thread payload */

static tsr_transport_t *g_oc;        /* the client transport */
static tsr_peer_t *g_osrv;           /* its peer: the server */
static tsr_rkey_t *g_okey;           /* the server's region, through g_osrv */
static atomic_bool g_ostop;
static atomic_int g_oasync_done;     /* async completions (callbacks) */
static atomic_int g_oasync_bad;
static _Atomic double g_omax_call_s; /* slowest blocking call of any thread */
static atomic_int g_ocalls, g_oslow;   /* calls made, calls slower than 100 ms */
static atomic_ulong g_owaits;        /* tsr_transport_wait returns in the owner */

static void owner_note(double t0)
{
    double d = now_s() - t0;
    atomic_fetch_add(&g_ocalls, 1);
    if (d > 0.1)
        atomic_fetch_add(&g_oslow, 1);
    double cur = atomic_load(&g_omax_call_s);
    while (d > cur && !atomic_compare_exchange_weak(&g_omax_call_s, &cur, d))
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void h_drop(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    tsr_rpc_req_drop(g_t, req); /* the caller times out */
}

static void *owner_poller(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_ostop))
        if (tsr_transport_wait(g_oc, 10000) > 0)
            atomic_fetch_add(&g_owaits, 1);
    return NULL;
}

static void *owner_rpc_worker(void *arg)
{
    (void)arg;
    uint8_t buf[1000], back[1000];
    for (int i = 0; i < OWNER_CALLS; i++) {
        size_t len = i % 5 == 0 ? sizeof(buf) : 8;
        fill(buf, len, (uint64_t)i + 1000);
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        double t0 = now_s();
        tsr_status_t st =
            tsr_rpc_call(g_oc, g_osrv, T_ECHO, buf, len, CALL_TIMEOUT_MS, &reply, &err);
        owner_note(t0);
        CHECK(st == TSR_OK && reply.len == len, "owner rpc %d: %s", i, err.message);
        memcpy(back, reply.data, len);
        CHECK(memcmp(back, buf, len) == 0, "owner rpc %d: wrong echo", i);
        tsr_rpc_msg_release(g_oc, &reply);
    }
    return NULL;
}

static void *owner_atomic_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < OWNER_CALLS; i++) {
        uint64_t old = 0;
        tsr_error_t err;
        tsr_error_clear(&err);
        double t0 = now_s();
        tsr_status_t st = tsr_atomic_fadd(g_oc, g_okey, 8, 1, &old, CALL_TIMEOUT_MS, &err);
        owner_note(t0);
        /* Only this thread adds to word 1 (offset 8): old is exactly i. */
        CHECK(st == TSR_OK && old == (uint64_t)i, "owner fadd %d: old %llu (%s)", i,
              (unsigned long long)old, err.message);
        if (i % 20 == 0) {
            uint8_t got[64];
            t0 = now_s();
            st = tsr_rma_get(g_oc, g_okey, 64, got, sizeof(got), CALL_TIMEOUT_MS, &err);
            owner_note(t0);
            uint8_t want[64];
            fill(want, sizeof(want), 5); /* the region's pattern (below) */
            CHECK(st == TSR_OK && memcmp(got, want, sizeof(got)) == 0, "owner get %d: %s", i,
                  err.message);
        }
    }
    return NULL;
}

static void owner_async_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    uint64_t want = (uint64_t)(uintptr_t)arg;
    uint64_t got = 0;
    if (st == TSR_OK && reply->len == 8)
        memcpy(&got, reply->data, 8);
    if (st != TSR_OK || got != want)
        atomic_fetch_add(&g_oasync_bad, 1);
    tsr_rpc_msg_release(g_oc, reply);
    atomic_fetch_add(&g_oasync_done, 1);
}

static void owner_post_cb(void *arg, tsr_status_t st, uint64_t old)
{
    (void)arg;
    (void)old;
    if (st != TSR_OK)
        atomic_fetch_add(&g_oasync_bad, 1);
    atomic_fetch_add(&g_oasync_done, 1);
}

/* ---- replies from a thread that is not polling (owner scenario) ----------
 * A log syncer's shape: the handler queues each request for a replier
 * thread, which answers while the server's never-sleeping progress thread
 * holds the lock (the replier takes it through the handover). */

typedef struct offq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tsr_rpc_req_t *reqs[OWNER_CALLS];
    int head, tail;
    bool stop;
} offq_t;

static offq_t g_offq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, false};

static void h_offthread(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    pthread_mutex_lock(&g_offq.mu);
    CHECK(g_offq.tail < OWNER_CALLS, "more off-thread requests than calls");
    g_offq.reqs[g_offq.tail++] = req;
    pthread_cond_signal(&g_offq.cv);
    pthread_mutex_unlock(&g_offq.mu);
}

/* Answers with the request's bytes reversed, from a copy the handler's
 * buffer no longer backs once the reply is made. */
static void *offthread_replier(void *arg)
{
    (void)arg;
    static uint8_t out[OFF_MAX];
    pthread_mutex_lock(&g_offq.mu);
    for (;;) {
        while (g_offq.head == g_offq.tail && !g_offq.stop)
            pthread_cond_wait(&g_offq.cv, &g_offq.mu);
        if (g_offq.head == g_offq.tail)
            break;
        tsr_rpc_req_t *req = g_offq.reqs[g_offq.head++];
        pthread_mutex_unlock(&g_offq.mu);
        size_t len;
        const uint8_t *d = tsr_rpc_req_data(req, &len);
        CHECK(len <= OFF_MAX, "off-thread request of %zu bytes", len);
        for (size_t i = 0; i < len; i++)
            out[i] = d[len - 1 - i];
        CHECK(tsr_rpc_reply(g_t, req, TSR_OK, out, len) == TSR_OK, "off-thread reply");
        pthread_mutex_lock(&g_offq.mu);
    }
    pthread_mutex_unlock(&g_offq.mu);
    return NULL;
}

/* Calls answered by the replier: sizes on both sides of the request's
 * inline buffer (a queued reply's payload goes there or to the heap). */
static void *owner_offthread_worker(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {0, 8, 64, 65, 1000, OFF_MAX};
    static uint8_t buf[OFF_MAX], want[OFF_MAX];
    for (int i = 0; i < OWNER_CALLS; i++) {
        size_t len = sizes[i % 6];
        fill(buf, len, (uint64_t)i + 77);
        for (size_t k = 0; k < len; k++)
            want[k] = buf[len - 1 - k];
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        double t0 = now_s();
        tsr_status_t st =
            tsr_rpc_call(g_oc, g_osrv, T_OFFTHREAD, buf, len, CALL_TIMEOUT_MS, &reply, &err);
        owner_note(t0);
        CHECK(st == TSR_OK && reply.len == len, "off-thread call %d (%zu bytes): %s", i, len,
              err.message);
        CHECK(len == 0 || memcmp(reply.data, want, len) == 0, "off-thread call %d: wrong reply",
              i);
        tsr_rpc_msg_release(g_oc, &reply);
    }
    return NULL;
}

static uint64_t g_opayload[OWNER_CALLS]; /* async payloads: must live until done */

static void *owner_async_worker(void *arg)
{
    (void)arg;
    /* This thread never progresses: the owner thread (or a blocking caller)
     * runs its callbacks. */
    for (int i = 0; i < OWNER_CALLS; i++) {
        g_opayload[i] = 0xabc000u + (uint64_t)i;
        tsr_error_t err;
        tsr_error_clear(&err);
        double t0 = now_s();
        tsr_status_t st = tsr_rpc_call_async(g_oc, g_osrv, T_ECHO, &g_opayload[i], 8,
                                             CALL_TIMEOUT_MS, owner_async_cb,
                                             (void *)(uintptr_t)g_opayload[i], &err);
        CHECK(st == TSR_OK, "owner async %d: %s", i, err.message);
        st = tsr_atomic_post(g_oc, g_okey, TSR_ATOMIC_FADD, 16, 1, 0, owner_post_cb, NULL, &err);
        owner_note(t0);
        CHECK(st == TSR_OK, "owner post %d: %s", i, err.message);
    }
    return NULL;
}

int scenario_owner(void)
{
    g_role = "owner";
    static server_t s;
    g_t = make_transport(&s.rc, 1, true, OWNER_SPIN_US);
    server_register(&s);
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_register(g_t, T_LATE, h_drop, NULL, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_GETKEY, h_getkey, NULL, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_OFFTHREAD, h_offthread, NULL, &err) == TSR_OK, "register");
    pthread_t replier;
    CHECK(pthread_create(&replier, NULL, offthread_replier, NULL) == 0, "pthread");
    CHECK(tsr_region_register(g_t, NULL, RMA_LEN, &g_region, &err) == TSR_OK, "region: %s",
          err.message);
    uint8_t *mem = tsr_region_addr(g_region);
    memset(mem, 0, 64);
    fill(mem + 64, 64, 5);
    CHECK(tsr_transport_start_thread(g_t, &err) == TSR_OK, "thread: %s", err.message);

    static role_ctx_t crc;
    tsr_transport_params_t p = {.node_id = 20, .spin_us = OWNER_SPIN_US, .on_event = on_event,
                                .event_arg = &crc};
    CHECK(tsr_transport_create(NULL, &p, &g_oc, &err) == TSR_OK, "client: %s", err.message);
    CHECK(tsr_transport_connect(g_oc, "127.0.0.1", tsr_transport_port(g_t), 10000, &g_osrv,
                                &err) == TSR_OK,
          "connect: %s", err.message);
    tsr_rpc_msg_t reply;
    CHECK(tsr_rpc_call(g_oc, g_osrv, T_GETKEY, NULL, 0, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "getkey: %s", err.message);
    CHECK(tsr_rkey_unpack(g_oc, g_osrv, reply.data, reply.len, &g_okey, &err) == TSR_OK,
          "unpack: %s", err.message);
    tsr_rpc_msg_release(g_oc, &reply);

    double t0 = now_s();
    pthread_t poller, workers[4];
    CHECK(pthread_create(&poller, NULL, owner_poller, NULL) == 0, "pthread");
    usleep(20000); /* the poller owns the client's lock now */
    void *(*fns[4])(void *) = {owner_rpc_worker, owner_atomic_worker, owner_async_worker,
                               owner_offthread_worker};
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&workers[i], NULL, fns[i], NULL) == 0, "pthread");
    /* Meanwhile this thread contends for the server's lock, which its
     * never-sleeping progress thread holds. */
    double stats_lat[200];
    for (int i = 0; i < 200; i++) {
        double s0 = now_s();
        tsr_transport_stats_t st;
        tsr_transport_get_stats(g_t, &st);
        stats_lat[i] = now_s() - s0;
        usleep(500);
    }
    qsort(stats_lat, 200, sizeof(double), cmp_double);
    for (int i = 0; i < 4; i++)
        pthread_join(workers[i], NULL);
    pthread_mutex_lock(&g_offq.mu);
    g_offq.stop = true;
    pthread_cond_signal(&g_offq.cv);
    pthread_mutex_unlock(&g_offq.mu);
    pthread_join(replier, NULL);
    while (atomic_load(&g_oasync_done) < 2 * OWNER_CALLS && now_s() - t0 < 60)
        usleep(1000);
    CHECK(atomic_load(&g_oasync_done) == 2 * OWNER_CALLS, "async: %d of %d completed",
          atomic_load(&g_oasync_done), 2 * OWNER_CALLS);
    CHECK(atomic_load(&g_oasync_bad) == 0, "async: %d failed or wrong",
          atomic_load(&g_oasync_bad));
    double el = now_s() - t0;

    /* A blocking call whose answer never comes: the lazily fixed deadline
     * still ends it after 200 ms (not before), while the poller spins. */
    double c0 = now_s();
    uint64_t v = 7;
    tsr_status_t rc = tsr_rpc_call(g_oc, g_osrv, T_LATE, &v, 8, 200, &reply, &err);
    double cel = now_s() - c0;
    CHECK(rc == TSR_ERR_TIMEOUT, "dropped call gave %s", tsr_status_name(rc));
    CHECK(cel >= 0.2 && cel < 10, "dropped call timed out after %.3f s (asked 0.2)", cel);
    tsr_rpc_msg_release(g_oc, &reply);

    /* Stop the poller: an async call's completion makes its wait return. */
    atomic_store(&g_ostop, true);
    v = 0xabc000u;
    CHECK(tsr_rpc_call_async(g_oc, g_osrv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, owner_async_cb,
                             (void *)(uintptr_t)v, &err) == TSR_OK,
          "async: %s", err.message);
    pthread_join(poller, NULL);
    /* Every word has exactly its adds: fadds (word 1) and posted adds (word 2). */
    volatile uint64_t *w = (volatile uint64_t *)mem;
    CHECK(w[1] == OWNER_CALLS && w[2] == OWNER_CALLS, "words %llu %llu",
          (unsigned long long)w[1], (unsigned long long)w[2]);
    double worst = atomic_load(&g_omax_call_s);
    int calls = atomic_load(&g_ocalls), slow = atomic_load(&g_oslow);
    printf("owner: %d calls/thread in %.2f s; %d of %d blocking calls over 100 ms, slowest "
           "%.1f ms; contended get_stats median %.3f ms, slowest %.1f ms; poller returned "
           "%lu times\n",
           OWNER_CALLS, el, slow, calls, worst * 1e3, stats_lat[100] * 1e3,
           stats_lat[199] * 1e3, atomic_load(&g_owaits));
    /* Without the handover a contender waits until an owner's wait ends: up
     * to 10 s on the client (its poller's timeout), 0.1 s on the server (the
     * progress thread's), and pthread mutexes let the owner retake the lock
     * first. Single calls may still be slow when a loaded machine
     * deschedules a thread, so the bounds are generous. */
    CHECK(worst < 4.0, "a call waited %.2f s for the lock", worst);
    CHECK(slow * 4 < calls, "%d of %d calls waited over 100 ms for the lock", slow, calls);
    CHECK(stats_lat[100] < 0.005, "get_stats waited %.3f ms (median) for the server's lock",
          stats_lat[100] * 1e3);

    tsr_rkey_destroy(g_oc, g_okey);
    tsr_transport_destroy(g_oc);
    tsr_region_unregister(g_t, g_region);
    tsr_transport_destroy(g_t);
    return 0;
}

