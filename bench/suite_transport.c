/*
 * suite_transport.c - `tessera-bench transport`: the transport layer's
 * latency and bandwidth on each UCX transport set available on this host.
 *
 * For each transport set (tcp: UCX_TLS=tcp; sm: shared memory, posix+cma,
 * with TCP only for connection set-up) the suite re-executes itself as a
 * server process (env TSR_BENCH_TRANSPORT_SERVER=<tls>), pinned to CPU 1,
 * and measures from a client pinned to CPU 0, both busy-polling (spin time
 * 2 s, as ucx_perftest polls), over 127.0.0.1 with UCX_NET_DEVICES=lo unless
 * the environment sets it:
 *
 *   rpc_p50, rpc_p99   round trip of a blocking 8-byte RPC (us); rpc_avg the
 *                      mean. Every operation is one sample, timed by the TSC
 *                      (tsr_bench_ticks) as ucx_perftest times each iteration:
 *                      _p50 is what its "typical" latency is (the median of
 *                      single iterations), _avg its overall average
 *   rpc_rate           8-byte RPCs per second, 64 in flight
 *   get_bw, put_bw     1 MiB non-blocking gets / puts, B_WINDOW in flight,
 *                      between one registered local buffer (tsr_region_register
 *                      with UCX allocating it: page-aligned, as ucx_perftest's
 *                      ucp_mem_map'ed buffers) and one remote offset, as
 *                      ucx_perftest does, after a warm-up of B_BW_WARMUP
 *                      messages each way (first touches of the mapped remote
 *                      region are page faults, not transport work); MB/s, MB =
 *                      2^20 bytes as ucx_perftest counts; puts flushed
 *   cswap_p50/p99/avg, fadd_p50/p99/avg   blocking 64-bit remote atomics (us),
 *                      sampled the same way
 *
 * The server's echo handler is registered TSR_RPC_INLINE (it runs inside
 * the receive path and replies from there), as the lock service registers
 * its served calls: rpc_* measure the path a latency-critical service takes.
 * TSR_BENCH_RPC_QUEUED=1 registers it queued (the default path) instead.
 *
 * --rows N sets the latency iterations (default 20000); bandwidth moves
 * max(N/100, 64) MiB per direction. TSR_BENCH_TLS=tcp or =sm picks one set.
 * bench/peers/transport_peers.sh runs ucx_perftest under the same pinning
 * and prints the ratios. Exit 1 if any operation fails or a result is wrong
 * (every RPC reply and every get is checked).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "transport.h"

#define B_ECHO 1
#define B_GETKEY 2
#define B_DONE 3
#define B_REGION (8u << 20)
#define B_MSG (1u << 20)
#define B_WINDOW 16u /* bandwidth: operations in flight */
#define B_BW_WARMUP 16u /* bandwidth: untimed messages before each direction */
#define B_ATOMICS (B_REGION - 64) /* atomics' words; data goes below */

typedef struct tls_set {
    const char *name; /* figure params */
    const char *tls;  /* UCX_TLS */
} tls_set_t;

static const tls_set_t SETS[] = {{"tcp", "tcp"}, {"sm", "posix,cma,self,tcp"}};

static void pin_to(int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % n, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

/* ---- the server process ------------------------------------------------------ */

typedef struct bserver {
    tsr_transport_t *t;
    tsr_region_t *region;
    bool done;
} bserver_t;

static void s_echo(void *arg, tsr_rpc_req_t *req)
{
    bserver_t *s = arg;
    size_t len;
    const void *d = tsr_rpc_req_data(req, &len);
    (void)tsr_rpc_reply(s->t, req, TSR_OK, d, len);
}

static void s_getkey(void *arg, tsr_rpc_req_t *req)
{
    bserver_t *s = arg;
    void *buf = NULL;
    size_t len = 0;
    tsr_status_t rc = tsr_region_pack(s->t, s->region, &buf, &len, NULL);
    (void)tsr_rpc_reply(s->t, req, rc, buf, rc == TSR_OK ? len : 0);
    tsr_mem_free(NULL, buf);
}

static void s_done(void *arg, tsr_rpc_req_t *req)
{
    bserver_t *s = arg;
    s->done = true;
    (void)tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
}

static int run_server(const char *tls)
{
    pin_to(1);
    alarm(300); /* never outlive a lost client */
    bserver_t s = {0};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t p = {.node_id = 1, .listen_host = "127.0.0.1", .tls = tls,
                                .spin_us = 2000000};
    if (tsr_transport_create(NULL, &p, &s.t, &err) != TSR_OK) {
        fprintf(stderr, "tessera: error: transport server: %s\n", err.message);
        return 1;
    }
    int rc = 1;
    if (tsr_region_register(s.t, NULL, B_REGION, &s.region, &err) != TSR_OK) {
        fprintf(stderr, "tessera: error: transport server: %s\n", err.message);
        goto out;
    }
    uint8_t *mem = tsr_region_addr(s.region);
    for (size_t i = 0; i < B_REGION; i++)
        mem[i] = (uint8_t)(i * 7);
    memset(mem + B_ATOMICS, 0, 64); /* the atomics' words start at 0 */
    /* Inline, as the latency-critical services register their short
     * handlers (the lock service's served calls): the figure measures the
     * path they take. TSR_BENCH_RPC_QUEUED=1 measures the queued path. */
    const char *queued = getenv("TSR_BENCH_RPC_QUEUED");
    tsr_rpc_register_flags(s.t, B_ECHO, s_echo, &s,
                           queued && *queued == '1' ? 0u : TSR_RPC_INLINE, NULL);
    tsr_rpc_register(s.t, B_GETKEY, s_getkey, &s, NULL);
    tsr_rpc_register(s.t, B_DONE, s_done, &s, NULL);
    printf("%u\n", (unsigned)tsr_transport_port(s.t));
    fflush(stdout);
    while (!s.done)
        tsr_transport_wait(s.t, 100);
    rc = 0;
out:
    if (s.region)
        tsr_region_unregister(s.t, s.region);
    tsr_transport_destroy(s.t);
    return rc;
}

/* ---- the client ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static int emit(tsr_bench_report_t *r, const char *name, const char *label, double v,
                const char *unit)
{
    tsr_bench_figure_t f = {.name = name, .label = label, .value = v, .unit = unit};
    return tsr_bench_report_emit(r, &f);
}

/* Emits NAME_p50, NAME_p99 and NAME_avg (us) of n per-operation samples in
 * ticks (sorted in place). */
static void emit_lat(tsr_bench_report_t *r, const char *name, const char *what, double *ticks,
                     size_t n, double sec_per_tick)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += ticks[i];
    qsort(ticks, n, sizeof(double), cmp_double);
    static const struct {
        const char *suffix, *label;
        double p;
    } figs[] = {{"p50", "p50", 0.5}, {"p99", "p99", 0.99}, {"avg", "mean", -1}};
    for (size_t f = 0; f < sizeof(figs) / sizeof(figs[0]); f++) {
        char fname[32], label[96];
        snprintf(fname, sizeof(fname), "%s_%s", name, figs[f].suffix);
        snprintf(label, sizeof(label), "%s (%s)", what, figs[f].label);
        double v = figs[f].p < 0 ? sum / (double)n : pct(ticks, n, figs[f].p);
        emit(r, fname, label, v * sec_per_tick * 1e6, "us");
    }
}

typedef struct bclient {
    tsr_transport_t *t;
    tsr_peer_t *srv;
    tsr_rkey_t *k;
    size_t inflight;
    size_t completed;
    bool failed;
} bclient_t;

static void rate_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    bclient_t *c = arg;
    if (st != TSR_OK || reply->len != 8)
        c->failed = true;
    tsr_rpc_msg_release(c->t, reply);
    c->inflight--;
    c->completed++;
}

static void rma_cb(void *arg, tsr_status_t st, uint64_t old)
{
    bclient_t *c = arg;
    (void)old;
    if (st != TSR_OK)
        c->failed = true;
    c->inflight--;
    c->completed++;
}

/* Moves n messages of B_MSG bytes between buf and the remote region's
 * offset 0 (one local buffer and one remote offset, as ucx_perftest does:
 * the figure is the transport's, not DRAM's), B_WINDOW in flight; puts are
 * flushed before it returns. */
static tsr_status_t bw_run(bclient_t *c, uint8_t *buf, bool put, size_t n, tsr_error_t *err)
{
    size_t issued = 0;
    c->completed = 0;
    while (c->completed < n && !c->failed) {
        while (issued < n && c->inflight < B_WINDOW) {
            tsr_status_t s = put ? tsr_rma_put_nb(c->t, c->k, 0, buf, B_MSG, rma_cb, c, err)
                                 : tsr_rma_get_nb(c->t, c->k, 0, buf, B_MSG, rma_cb, c, err);
            if (s != TSR_OK)
                return s;
            c->inflight++;
            issued++;
        }
        tsr_transport_progress(c->t);
    }
    if (c->failed)
        return TSR_ERR_IO;
    return put ? tsr_rma_flush(c->t, c->srv, 10000, err) : TSR_OK;
}

static int measure(const tls_set_t *set, const tsr_bench_opts_t *opts, tsr_bench_report_t *r)
{
    size_t iters = opts->rows ? (size_t)opts->rows : 20000;
    if (iters < 512)
        iters = 512;
    size_t bw_msgs = iters / 100 < 64 ? 64 : iters / 100;
    uint16_t port = 0;
    pid_t pid = tsr_bench_spawn_server("transport", "TSR_BENCH_TRANSPORT_SERVER", set->tls, &port);
    if (pid < 0) {
        tsr_bench_error("transport %s: the server did not start", set->name);
        return TSR_BENCH_EXIT_FAIL;
    }
    int rc = TSR_BENCH_EXIT_FAIL;
    tsr_error_t err;
    tsr_error_clear(&err);
    bclient_t c = {0};
    double *lat = malloc(iters * sizeof(double));
    tsr_region_t *lreg = NULL; /* the local side of get/put */
    uint8_t *buf = NULL;
    tsr_transport_params_t p = {.node_id = 2, .tls = set->tls, .spin_us = 2000000};
    if (!lat || tsr_transport_create(NULL, &p, &c.t, &err) != TSR_OK ||
        tsr_region_register(c.t, NULL, B_MSG, &lreg, &err) != TSR_OK ||
        tsr_transport_connect(c.t, "127.0.0.1", port, 10000, &c.srv, &err) != TSR_OK) {
        tsr_bench_error("transport %s: %s", set->name, err.message[0] ? err.message : "oom");
        goto out;
    }
    buf = tsr_region_addr(lreg);
    tsr_rpc_msg_t reply;
    if (tsr_rpc_call(c.t, c.srv, B_GETKEY, NULL, 0, 10000, &reply, &err) != TSR_OK ||
        tsr_rkey_unpack(c.t, c.srv, reply.data, reply.len, &c.k, &err) != TSR_OK) {
        tsr_rpc_msg_release(c.t, &reply);
        tsr_bench_error("transport %s: %s", set->name, err.message);
        goto out;
    }
    tsr_rpc_msg_release(c.t, &reply);

    /* RPC round trip. */
    uint64_t v = 0;
    for (size_t i = 0; i < iters / 10 + 100; i++) { /* warm-up */
        if (tsr_rpc_call(c.t, c.srv, B_ECHO, &v, 8, 10000, &reply, &err) != TSR_OK)
            goto fail;
        tsr_rpc_msg_release(c.t, &reply);
    }
    /* One sample per call: the TSC read after each call (8 ns here), the
     * difference to the previous read, as ucx_perftest samples. Earlier
     * builds took the mean of 8 calls as a sample; on this VM single round
     * trips are bimodal, and such means put the slow ones into every
     * sample, so their median was no match for ucx_perftest's. */
    tsr_bench_tickcal_t cal;
    tsr_bench_tickcal_start(&cal);
    uint64_t prev = tsr_bench_ticks();
    for (size_t i = 0; i < iters; i++) {
        v = i;
        tsr_status_t s = tsr_rpc_call(c.t, c.srv, B_ECHO, &v, 8, 10000, &reply, &err);
        if (s != TSR_OK || reply.len != 8 || memcmp(reply.data, &v, 8) != 0)
            goto fail;
        tsr_rpc_msg_release(c.t, &reply);
        uint64_t k = tsr_bench_ticks();
        lat[i] = (double)(k - prev);
        prev = k;
    }
    emit_lat(r, "rpc", "RPC round trip, 8 B", lat, iters, tsr_bench_tickcal_end(&cal));

    /* RPC rate, 64 in flight. */
    size_t total = iters * 2;
    size_t issued = 0;
    c.completed = 0;
    double t0 = tsr_bench_now();
    while (c.completed < total && !c.failed) {
        while (issued < total && c.inflight < 64) {
            if (tsr_rpc_call_async(c.t, c.srv, B_ECHO, &v, 8, 10000, rate_cb, &c, &err) != TSR_OK)
                goto fail;
            c.inflight++;
            issued++;
        }
        tsr_transport_progress(c.t);
    }
    if (c.failed)
        goto fail;
    emit(r, "rpc_rate", "RPC rate, 8 B, 64 in flight", total / (tsr_bench_now() - t0),
         "calls/s");

    /* Bandwidth: 1 MiB messages, B_WINDOW in flight; B_BW_WARMUP untimed
     * messages (and a flush) first in each direction, as ucx_perftest warms up. */
    for (int put = 1; put >= 0; put--) {
        memset(buf, put ? 0x5a : 0, B_MSG);
        if (bw_run(&c, buf, put, B_BW_WARMUP, &err) != TSR_OK)
            goto fail;
        t0 = tsr_bench_now();
        if (bw_run(&c, buf, put, bw_msgs, &err) != TSR_OK)
            goto fail;
        double mbs = (double)bw_msgs * B_MSG / (1 << 20) / (tsr_bench_now() - t0);
        emit(r, put ? "put_bw" : "get_bw", put ? "put bandwidth, 1 MiB" : "get bandwidth, 1 MiB",
             mbs, "MB/s");
    }
    /* The last gets read what the puts wrote: check one message. */
    for (size_t i = 0; i < B_MSG; i++)
        if (buf[i] != 0x5a) {
            tsr_bench_error("transport %s: get returned wrong bytes at %zu", set->name, i);
            goto out;
        }

    /* Atomics latency. */
    for (int op = 0; op < 2; op++) {
        uint64_t old = 0;
        for (size_t i = 0; i < iters / 10 + 100; i++)
            if (tsr_atomic_fadd(c.t, c.k, B_ATOMICS, 0, &old, 10000, &err) != TSR_OK)
                goto fail;
        tsr_bench_tickcal_start(&cal);
        prev = tsr_bench_ticks();
        for (uint64_t n = 0; n < iters; n++) {
            tsr_status_t s =
                op == 0 ? tsr_atomic_cswap(c.t, c.k, B_ATOMICS + 8, n, n + 1, &old, 10000, &err)
                        : tsr_atomic_fadd(c.t, c.k, B_ATOMICS + 16, 1, &old, 10000, &err);
            if (s != TSR_OK || old != n)
                goto fail_value;
            uint64_t k = tsr_bench_ticks();
            lat[n] = (double)(k - prev);
            prev = k;
        }
        emit_lat(r, op == 0 ? "cswap" : "fadd", op == 0 ? "compare-and-swap" : "fetch-and-add", lat,
                 iters, tsr_bench_tickcal_end(&cal));
    }
    rc = TSR_BENCH_EXIT_OK;
    goto out;
fail_value:
    if (!err.message[0]) {
        tsr_bench_error("transport %s: an atomic returned a wrong old value", set->name);
        goto out;
    }
fail:
    tsr_bench_error("transport %s: %s", set->name,
                    err.message[0] ? err.message : "a call failed or returned wrong data");
out:
    if (c.t && c.srv && tsr_peer_is_up(c.srv)) {
        if (tsr_rpc_call(c.t, c.srv, B_DONE, NULL, 0, 5000, &reply, NULL) == TSR_OK)
            tsr_rpc_msg_release(c.t, &reply);
    }
    if (c.k)
        tsr_rkey_destroy(c.t, c.k);
    if (lreg)
        tsr_region_unregister(c.t, lreg);
    tsr_transport_destroy(c.t);
    free(lat);
    /* Bounded wait for the server, then stop it by its pid. */
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return rc;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return rc;
}

int tsr_bench_suite_transport(const tsr_bench_opts_t *opts)
{
    const char *server_tls = getenv("TSR_BENCH_TRANSPORT_SERVER");
    if (!getenv("UCX_NET_DEVICES"))
        setenv("UCX_NET_DEVICES", "lo", 1); /* all of it is local traffic */
    if (server_tls)
        return run_server(server_tls);
    const char *only = getenv("TSR_BENCH_TLS");
    pin_to(0);
    int rc = TSR_BENCH_EXIT_OK;
    for (size_t i = 0; i < sizeof(SETS) / sizeof(SETS[0]); i++) {
        if (only && strcmp(only, SETS[i].name) != 0)
            continue;
        tsr_bench_report_t r;
        if (tsr_bench_report_init(&r, "transport", opts->json, stdout) != 0)
            return TSR_BENCH_EXIT_FAIL;
        r.device = "cpu";
        tsr_bench_report_param_str(&r, "tls", SETS[i].name);
        tsr_bench_report_param_str(&r, "ucx_tls", SETS[i].tls);
        tsr_bench_report_param_str(&r, "pinning", "client cpu0, server cpu1 (sched_setaffinity)");
        tsr_bench_report_param_int(&r, "iterations", opts->rows ? (int64_t)opts->rows : 20000);
        tsr_bench_report_title(&r, "transport over UCX (%s, UCX_TLS=%s), loopback, client on "
                                   "CPU 0, server on CPU 1, both polling",
                               SETS[i].name, SETS[i].tls);
        bool set_lanes = tsr_bench_sm_lanes_begin(SETS[i].name);
        tsr_bench_report_param_str(&r, "ucx_max_rndv_lanes",
                                   getenv("UCX_MAX_RNDV_LANES") ? getenv("UCX_MAX_RNDV_LANES")
                                                                : "default");
        int one = measure(&SETS[i], opts, &r);
        tsr_bench_sm_lanes_end(set_lanes);
        tsr_bench_report_fini(&r);
        if (one != TSR_BENCH_EXIT_OK)
            rc = one;
    }
    return rc;
}
