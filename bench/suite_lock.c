/*
 * suite_lock.c - `tessera-bench lock`: acquire+release latency and throughput
 * of engine/lock over UCX, next to two raw UCX atomic round trips measured
 * the same way, and (when bench/peers/lock_peers.sh gives a server) the usual
 * Redis lock with the same clients.
 *
 * Processes. The suite forks a lock home (a transport listening on
 * 127.0.0.1, a tsr_lock_home_t, and a small region for the raw atomics,
 * pinned to CPU 1) and, per measurement, N client *processes* (each with its
 * own transport, as distributed clients are), released together through a
 * pipe, each running acquire+release in a loop for --rows milliseconds
 * (default 400). Clients: 1, 2, 4, 8, 16, 32 (--threads T caps the count).
 * The parent never touches UCX, so forking is safe.
 *
 *   uncontended   each client cycles over 64 locks of its own (many locks)
 *   contended     every client uses one lock
 *   exclusive / shared modes; a lease of 10 s; a sample = one acquire+release
 *
 * Figures per (mode, contention, clients): ops_s (acquire+release pairs per
 * second, all clients), p50_us, p99_us. raw_2amo_p50/p99: one client doing
 * fetch-and-add + fetch-and-add on the home's region, per sample, and the
 * single-client uncontended exclusive latency's ratio to it (target 2.5x),
 * and the same ratio of client CPU time per pair (CLOCK_PROCESS_CPUTIME_ID
 * over the loop, two clock reads per sample included on both sides), which a
 * loaded machine's descheduling does not distort.
 * One client is pinned to CPU 0 and busy-polls (spin 2 s, as
 * ucx_perftest); with more clients they spin 50 us, then sleep, and float.
 *
 * Redis (env TSR_BENCH_REDIS=host:port): the same client processes run
 * `SET name token NX PX 10000` (retried at once while refused) and the
 * compare-and-delete script by EVALSHA, and the exclusive figures carry the
 * peer's value and ratio. Transport set: TSR_BENCH_TLS=sm (default:
 * posix,cma,self,tcp) or tcp.
 *
 * A cluster (--scheduler HOST:PORT): no home is forked and no raw atomics
 * are measured; each client process connects with tsr_lock_cluster_connect
 * (the lock view from the scheduler, then the workers' homes directly; the
 * token as every client reads it: $TESSERA_TOKEN_FILE or the default path;
 * the transport set the cluster's: UCX_TLS, AUTO path) and runs the same
 * loops. Figures are named cluster_<the embedded suite's name> (param
 * home=cluster); uncontended names spread over the view's homes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "tessera/lock.h"
#include "transport.h"

#define L_RAWKEY 911 /* the home uses 900 (descriptor) and 901 (served calls) */
#define L_MAX_CLIENTS 32
#define L_SAMPLES 8192
#define L_LOCKS 64

typedef enum { B_LOCK, B_RAW, B_REDIS, B_CLUSTER } backend_t;

typedef struct lcfg {
    backend_t backend;
    const char *tls;
    uint16_t port;       /* home (lock, raw) or redis */
    const char *redis_host;
    bool excl, contended;
    int clients;
    int idx;
    double seconds;
    const char *scheduler; /* B_CLUSTER */
} lcfg_t;

typedef struct lresult {
    uint64_t ops;
    double elapsed;
    double cpu; /* the client process' CPU seconds over the loop */
    uint32_t nsamples;
    int failed;
} lresult_t;

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    int n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    CPU_SET(cpu % (n > 0 ? n : 1), &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

static const char *tls_list(const char *name)
{
    return strcmp(name, "tcp") == 0 ? "tcp" : "posix,cma,self,tcp";
}

/* ---- the home process ------------------------------------------------------------ */

typedef struct lhome {
    tsr_transport_t *t;
    tsr_region_t *raw;
} lhome_t;

static void h_rawkey(void *arg, tsr_rpc_req_t *req)
{
    lhome_t *h = arg;
    void *buf = NULL;
    size_t len = 0;
    tsr_status_t rc = tsr_region_pack(h->t, h->raw, &buf, &len, NULL);
    (void)tsr_rpc_reply(h->t, req, rc, buf, rc == TSR_OK ? len : 0);
    tsr_mem_free(NULL, buf);
}

static int run_home(const char *tls, int out_fd)
{
    pin_to(1);
    alarm(900);
    lhome_t h = {0};
    tsr_error_t err;
    tsr_error_clear(&err);
    /* Over TCP the home's worker executes every (emulated) atomic: it polls
     * like ucx_perftest's server; with shared memory it has nothing to do. */
    bool tcp = strcmp(tls, "tcp") == 0;
    tsr_transport_params_t p = {.node_id = 1, .listen_host = "127.0.0.1", .tls = tls,
                                .spin_us = tcp ? 2000000 : 0};
    if (tsr_transport_create(NULL, &p, &h.t, &err) != TSR_OK) {
        fprintf(stderr, "tessera: error: lock home: %s\n", err.message);
        return 1;
    }
    tsr_lock_home_t *home = NULL;
    tsr_lock_err_t lerr = {0};
    if (tsr_lock_home_create(h.t, NULL, &home, &lerr) != TSR_OK ||
        tsr_region_register(h.t, NULL, 4096, &h.raw, &err) != TSR_OK) {
        fprintf(stderr, "tessera: error: lock home: %s%s\n", lerr.message, err.message);
        return 1;
    }
    tsr_rpc_register(h.t, L_RAWKEY, h_rawkey, &h, NULL);
    char line[32];
    int n = snprintf(line, sizeof(line), "%u\n", (unsigned)tsr_transport_port(h.t));
    if (write(out_fd, line, (size_t)n) != n)
        return 1;
    close(out_fd);
    for (;;) /* stopped by the parent with SIGKILL, by pid */
        tsr_transport_wait(h.t, 100);
}

/* ---- a client process ---------------------------------------------------------------- */

static double now(void)
{
    return tsr_bench_now();
}

/* CPU time of this process: a loaded machine deschedules the client, which
 * wall-clock latencies include and CPU time per operation does not. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Minimal RESP: sends argv, reads one reply line; returns its first byte
 * (+, -, :, $) and for $n bulk replies skips the body. */
static int resp_cmd(int fd, int argc, const char **argv, char *reply, size_t cap)
{
    char buf[1024];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
    if (write(fd, buf, n) != (ssize_t)n)
        return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t r = read(fd, reply + got, 1);
        if (r <= 0)
            return -1;
        got++;
        if (got >= 2 && reply[got - 2] == '\r' && reply[got - 1] == '\n')
            break;
    }
    reply[got] = 0;
    if (reply[0] == '$' && atoi(reply + 1) >= 0) { /* bulk: body (kept if it fits) + CRLF */
        size_t body = (size_t)atoi(reply + 1) + 2, keep = 0;
        char tmp[256];
        while (body > 0) {
            ssize_t r = read(fd, tmp, body < sizeof(tmp) ? body : sizeof(tmp));
            if (r <= 0)
                return -1;
            for (ssize_t i = 0; i < r && keep + 1 < cap; i++)
                reply[keep++] = tmp[i];
            body -= (size_t)r;
        }
        reply[keep >= 2 ? keep - 2 : 0] = 0; /* the body alone */
        return '$';
    }
    return reply[0];
}

static const char REDIS_UNLOCK[] =
    "if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) "
    "else return 0 end";

static int run_client(const lcfg_t *cfg, int go_fd, int res_fd)
{
    alarm(300);
    if (cfg->clients == 1)
        pin_to(0);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_t *t = NULL;
    tsr_lock_client_t *c = NULL;
#ifdef TSR_HAVE_SCHEDULER
    tsr_lock_cluster_t *cl = NULL;
#endif
    tsr_rkey_t *rk = NULL;
    tsr_peer_t *peer = NULL;
    int rfd = -1;
    char sha[64] = "";
    lresult_t res = {0};
    double *lat = calloc(L_SAMPLES, sizeof(double));
    if (!lat)
        return 1;
    if (cfg->backend == B_REDIS) {
        rfd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
        inet_pton(AF_INET, cfg->redis_host, &sa.sin_addr);
        int one = 1;
        setsockopt(rfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(rfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            res.failed = 1;
        char reply[128];
        const char *load[] = {"SCRIPT", "LOAD", REDIS_UNLOCK};
        if (!res.failed && resp_cmd(rfd, 3, load, reply, sizeof(reply)) == '$' &&
            strlen(reply) == 40)
            snprintf(sha, sizeof(sha), "%s", reply);
        else
            res.failed = 1;
    } else if (cfg->backend == B_CLUSTER) {
#ifdef TSR_HAVE_SCHEDULER
        tsr_lock_cluster_params_t cp = {.scheduler = cfg->scheduler,
                                        .connect_timeout_ms = 60000,
                                        .op_timeout_ms = 60000};
        tsr_lock_err_t le = {0};
        if (tsr_lock_cluster_connect(&cp, &cl, &le) != TSR_OK) {
            fprintf(stderr, "lock: client %d: %s\n", cfg->idx, le.message);
            res.failed = 1;
        } else {
            c = tsr_lock_cluster_client(cl);
        }
#else
        res.failed = 1;
#endif
    } else {
        tsr_transport_params_t p = {.node_id = 100 + (uint32_t)cfg->idx, .tls = cfg->tls,
                                    .spin_us = cfg->clients == 1 ? 2000000 : 50};
        if (tsr_transport_create(NULL, &p, &t, &err) != TSR_OK)
            res.failed = 1;
        if (!res.failed && cfg->backend == B_LOCK) {
            tsr_lock_home_addr_t a = {"127.0.0.1", cfg->port, 0};
            tsr_lock_client_params_t cp = {.transport = t, .homes = &a, .nhomes = 1,
                                           .connect_timeout_ms = 60000, .op_timeout_ms = 60000};
            if (tsr_lock_client_create(&cp, &c, NULL) != TSR_OK)
                res.failed = 1;
        } else if (!res.failed) {
            tsr_rpc_msg_t m = {0};
            if (tsr_transport_connect(t, "127.0.0.1", cfg->port, 60000, &peer, &err) != TSR_OK ||
                tsr_rpc_call(t, peer, L_RAWKEY, NULL, 0, 60000, &m, &err) != TSR_OK ||
                tsr_rkey_unpack(t, peer, m.data, m.len, &rk, &err) != TSR_OK)
                res.failed = 1;
            tsr_rpc_msg_release(t, &m);
        }
    }
    char names[L_LOCKS][48];
    for (int i = 0; i < L_LOCKS; i++) {
        if (cfg->contended)
            snprintf(names[i], sizeof(names[i]), "hot");
        else
            snprintf(names[i], sizeof(names[i]), "u.%d.%d.%d", (int)getpid(), cfg->idx, i);
    }
    char ready = res.failed ? 'F' : 'R', go;
    if (write(res_fd, &ready, 1) != 1 || read(go_fd, &go, 1) != 1)
        return 1;
    tsr_lock_opts_t o = {cfg->excl ? TSR_LOCK_EXCLUSIVE : TSR_LOCK_SHARED, 10000, 60000};
    double t0 = now(), end = t0 + cfg->seconds, c0 = cpu_now();
    char token[32], reply[128];
    while (!res.failed) {
        double a = now();
        if (a >= end)
            break;
        const char *name = names[res.ops % L_LOCKS];
        if (cfg->backend == B_LOCK || cfg->backend == B_CLUSTER) {
            uint64_t tok;
            if (tsr_lock_acquire(c, name, &o, &tok, NULL) != TSR_OK ||
                tsr_lock_release(c, name, tok, NULL) != TSR_OK)
                res.failed = 1;
        } else if (cfg->backend == B_RAW) {
            uint64_t old;
            if (tsr_atomic_fadd(t, rk, 0, 1, &old, 60000, NULL) != TSR_OK ||
                tsr_atomic_fadd(t, rk, 8, 1, &old, 60000, NULL) != TSR_OK)
                res.failed = 1;
        } else {
            snprintf(token, sizeof(token), "%d.%llu", cfg->idx, (unsigned long long)res.ops);
            const char *set[] = {"SET", name, token, "NX", "PX", "10000"};
            int r;
            while ((r = resp_cmd(rfd, 6, set, reply, sizeof(reply))) == '$' &&
                   strcmp(reply, "$-1\r\n") == 0)
                ; /* nil: held by someone else, retry at once */
            const char *del[] = {"EVALSHA", sha, "1", name, token};
            if (r != '+' || resp_cmd(rfd, 5, del, reply, sizeof(reply)) != ':' ||
                atoi(reply + 1) != 1)
                res.failed = 1;
        }
        lat[res.ops % L_SAMPLES] = (now() - a) * 1e6;
        res.ops++;
    }
    res.elapsed = now() - t0;
    res.cpu = cpu_now() - c0;
    res.nsamples = (uint32_t)(res.ops < L_SAMPLES ? res.ops : L_SAMPLES);
    int rc = 0;
    if (write(res_fd, &res, sizeof(res)) != (ssize_t)sizeof(res) ||
        write(res_fd, lat, res.nsamples * sizeof(double)) != (ssize_t)(res.nsamples * sizeof(double)))
        rc = 1;
    close(res_fd);
    if (rk)
        tsr_rkey_destroy(t, rk);
#ifdef TSR_HAVE_SCHEDULER
    if (cl) {
        tsr_lock_cluster_close(cl); /* owns c */
        c = NULL;
    }
#endif
    tsr_lock_client_destroy(c);
    tsr_transport_destroy(t);
    if (rfd >= 0)
        close(rfd);
    free(lat);
    return rc;
}

/* ---- the parent ------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct lstats {
    double ops_s, p50, p99;
    double cpu_ns_op; /* client CPU per operation, all clients */
    bool ok;
} lstats_t;

static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return r < 0 ? -1 : (ssize_t)got;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Runs one measurement with cfg->clients processes. */
static lstats_t run_set(const lcfg_t *cfg)
{
    lstats_t st = {0};
    int go[2];
    if (pipe(go) != 0)
        return st;
    pid_t pids[L_MAX_CLIENTS];
    int res[L_MAX_CLIENTS];
    int n = cfg->clients;
    for (int i = 0; i < n; i++) {
        int r[2];
        if (pipe(r) != 0)
            return st;
        lcfg_t one = *cfg;
        one.idx = i;
        pids[i] = fork();
        if (pids[i] == 0) {
            close(go[1]);
            close(r[0]);
            _exit(run_client(&one, go[0], r[1]));
        }
        close(r[1]);
        res[i] = r[0];
    }
    close(go[0]);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        char c = 0;
        if (read_full(res[i], &c, 1) != 1 || c != 'R')
            ok = false;
    }
    char gos[L_MAX_CLIENTS];
    memset(gos, 'G', sizeof(gos));
    size_t ngo = n > 0 && n <= L_MAX_CLIENTS ? (size_t)n : 0; /* n is checked by the caller */
    if (write(go[1], gos, ngo) != (ssize_t)ngo)
        ok = false;
    close(go[1]);
    double *all = malloc((size_t)n * L_SAMPLES * sizeof(double));
    size_t ns = 0;
    double cpu = 0, ops = 0;
    for (int i = 0; i < n; i++) {
        lresult_t r;
        if (read_full(res[i], &r, sizeof(r)) != (ssize_t)sizeof(r) || r.failed ||
            r.nsamples > L_SAMPLES || !all ||
            read_full(res[i], all + ns, r.nsamples * sizeof(double)) !=
                (ssize_t)(r.nsamples * sizeof(double))) {
            ok = false;
        } else {
            ns += r.nsamples;
            st.ops_s += r.elapsed > 0 ? (double)r.ops / r.elapsed : 0;
            cpu += r.cpu;
            ops += (double)r.ops;
        }
        close(res[i]);
    }
    for (int i = 0; i < n; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ok = false;
    }
    if (ok && ns > 0) {
        qsort(all, ns, sizeof(double), cmp_double);
        st.p50 = all[(size_t)(0.50 * (double)(ns - 1))];
        st.p99 = all[(size_t)(0.99 * (double)(ns - 1))];
        st.cpu_ns_op = ops > 0 ? cpu / ops * 1e9 : 0;
        st.ok = true;
    }
    free(all);
    return st;
}

static int emit(tsr_bench_report_t *r, const char *name, const char *label, double v,
                const char *unit, const char *peer, double pv, double ratio)
{
    tsr_bench_figure_t f = {.name = name, .label = label, .value = v, .unit = unit,
                            .peer = peer, .peer_value = pv, .ratio = ratio};
    return tsr_bench_report_emit(r, &f);
}

/* One (mode, contention, clients) point: the backend's run, the Redis run
 * beside it (exclusive only) and the three figures, names prefixed pre. */
static int point(tsr_bench_report_t *r, const lcfg_t *cfg, const char *pre, const char *rhost,
                 uint16_t rport, lstats_t *out)
{
    bool excl = cfg->excl, contended = cfg->contended;
    int n = cfg->clients;
    tsr_bench_progress("lock: %s%s %s, %d clients", pre, excl ? "exclusive" : "shared",
                       contended ? "contended" : "uncontended", n);
    lstats_t s = run_set(cfg);
    if (!s.ok) {
        tsr_bench_progress_clear();
        tsr_bench_error("lock: %s%s %s with %d clients failed", pre, excl ? "exclusive" : "shared",
                        contended ? "contended" : "uncontended", n);
        return -1;
    }
    lstats_t ps = {0};
    if (rhost && excl) {
        lcfg_t pc = *cfg;
        pc.backend = B_REDIS;
        pc.port = rport;
        pc.redis_host = rhost;
        ps = run_set(&pc);
        if (!ps.ok) {
            tsr_bench_progress_clear();
            tsr_bench_error("lock: the Redis lock failed with %d clients", n);
            return -1;
        }
    }
    tsr_bench_progress_clear();
    char name[80], label[160];
    const char *m = excl ? "excl" : "shared", *k = contended ? "cont" : "uncont";
    const char *ml = excl ? "exclusive" : "shared";
    const char *kl = contended ? "one lock" : "many locks";
    const char *lp = pre[0] ? "cluster, " : "";
    snprintf(name, sizeof(name), "%s%s_%s_c%d_ops_s", pre, m, k, n);
    snprintf(label, sizeof(label), "%s%s, %s, %d clients: acquire+release/s", lp, ml, kl, n);
    emit(r, name, label, s.ops_s, "ops/s", ps.ok ? "redis" : NULL, ps.ops_s,
         ps.ok && ps.ops_s > 0 ? s.ops_s / ps.ops_s : 0);
    snprintf(name, sizeof(name), "%s%s_%s_c%d_p50", pre, m, k, n);
    snprintf(label, sizeof(label), "%s%s, %s, %d clients: p50", lp, ml, kl, n);
    emit(r, name, label, s.p50, "us", ps.ok ? "redis" : NULL, ps.p50,
         ps.ok && s.p50 > 0 ? ps.p50 / s.p50 : 0);
    snprintf(name, sizeof(name), "%s%s_%s_c%d_p99", pre, m, k, n);
    snprintf(label, sizeof(label), "%s%s, %s, %d clients: p99", lp, ml, kl, n);
    emit(r, name, label, s.p99, "us", ps.ok ? "redis" : NULL, ps.p99,
         ps.ok && s.p99 > 0 ? ps.p99 / s.p99 : 0);
    if (n == 1 && !contended) {
        snprintf(name, sizeof(name), "%s%s_uncont_c1_cpu_ns", pre, m);
        snprintf(label, sizeof(label), "%s%s, many locks, 1 client: CPU per pair", lp, ml);
        emit(r, name, label, s.cpu_ns_op, "ns", NULL, 0, 0);
    }
    *out = s;
    return 0;
}

/* --scheduler: the same points against a cluster's lock homes. */
static int suite_cluster(const tsr_bench_opts_t *opts, const char *sched, double seconds,
                         int maxc, const char *rhost, uint16_t rport)
{
    tsr_bench_report_t r;
    if (tsr_bench_report_init(&r, "lock", opts->json, stdout) != 0)
        return TSR_BENCH_EXIT_FAIL;
    const char *ucx = getenv("UCX_TLS") ? getenv("UCX_TLS") : "default";
    r.device = "cpu";
    tsr_bench_report_param_str(&r, "home", "cluster");
    tsr_bench_report_param_str(&r, "scheduler", sched);
    tsr_bench_report_param_str(&r, "ucx_tls", ucx);
    tsr_bench_report_param_str(&r, "clients", "processes");
    tsr_bench_report_param_int(&r, "ms_per_point", (int64_t)(seconds * 1000));
    tsr_bench_report_title(&r, "locks on the cluster at %s (its workers' homes, UCX_TLS=%s): "
                               "client processes, AUTO path",
                           sched, ucx);
    int rc = TSR_BENCH_EXIT_OK;
    for (int contended = 0; contended < 2 && rc == TSR_BENCH_EXIT_OK; contended++)
        for (int excl = 1; excl >= 0 && rc == TSR_BENCH_EXIT_OK; excl--)
            for (int n = 1; n <= maxc; n *= 2) {
                lcfg_t cfg = {.backend = B_CLUSTER, .excl = excl != 0,
                              .contended = contended != 0, .clients = n, .seconds = seconds,
                              .scheduler = sched};
                lstats_t s;
                if (point(&r, &cfg, "cluster_", rhost, rport, &s) != 0) {
                    rc = TSR_BENCH_EXIT_FAIL;
                    break;
                }
            }
    tsr_bench_report_fini(&r);
    return rc;
}

int tsr_bench_suite_lock(const tsr_bench_opts_t *opts)
{
    if (!getenv("UCX_NET_DEVICES"))
        setenv("UCX_NET_DEVICES", "lo", 1);
    const char *set = getenv("TSR_BENCH_TLS") ? getenv("TSR_BENCH_TLS") : "sm";
    const char *tls = tls_list(set);
    /* a cluster's clients take the cluster's UCX settings as they are: a
     * client with UCX_MAX_RNDV_LANES=0 beside a scheduler without it trips
     * an assertion in UCX 1.13's wireup (the scheduler dies) */
    if (!opts->scheduler)
        (void)tsr_bench_sm_lanes_begin(set); /* kept for the whole run */
    double seconds = (opts->rows ? (double)opts->rows : 400.0) / 1000.0;
    int maxc = opts->threads ? (int)opts->threads : L_MAX_CLIENTS;
    if (maxc > L_MAX_CLIENTS)
        maxc = L_MAX_CLIENTS;
    char rhost[64] = "";
    uint16_t rport = 0;
    const char *redis = getenv("TSR_BENCH_REDIS");
    if (redis) {
        const char *colon = strrchr(redis, ':');
        if (!colon || colon - redis >= (long)sizeof(rhost) || atoi(colon + 1) <= 0) {
            tsr_bench_error("TSR_BENCH_REDIS must be host:port, not '%s'", redis);
            return TSR_BENCH_EXIT_USAGE;
        }
        memcpy(rhost, redis, (size_t)(colon - redis));
        rport = (uint16_t)atoi(colon + 1);
    }

    const char *sched = opts->scheduler;
#ifndef TSR_HAVE_SCHEDULER
    if (sched) {
        tsr_bench_error("lock: --scheduler needs a build with the cluster library");
        return TSR_BENCH_EXIT_USAGE;
    }
#endif
    if (sched)
        return suite_cluster(opts, sched, seconds, maxc, redis ? rhost : NULL, rport);
    int pfd[2];
    if (pipe(pfd) != 0)
        return TSR_BENCH_EXIT_FAIL;
    pid_t home = fork();
    if (home == 0) {
        close(pfd[0]);
        _exit(run_home(tls, pfd[1]));
    }
    close(pfd[1]);
    char line[32] = "";
    ssize_t got = read_full(pfd[0], line, sizeof(line) - 1);
    close(pfd[0]);
    int port = got > 0 ? atoi(line) : 0;
    if (port <= 0) {
        tsr_bench_error("lock: the home did not start");
        kill(home, SIGKILL);
        waitpid(home, NULL, 0);
        return TSR_BENCH_EXIT_FAIL;
    }
    tsr_bench_report_t r;
    if (tsr_bench_report_init(&r, "lock", opts->json, stdout) != 0)
        return TSR_BENCH_EXIT_FAIL;
    r.device = "cpu";
    tsr_bench_report_param_str(&r, "tls", set);
    tsr_bench_report_param_str(&r, "ucx_tls", tls);
    tsr_bench_report_param_str(&r, "clients", "processes");
    tsr_bench_report_param_int(&r, "ms_per_point", (int64_t)(seconds * 1000));
    tsr_bench_report_title(&r, "locks over UCX (%s, UCX_TLS=%s): client processes, home on CPU 1; "
                               "1 client pinned to CPU 0 and polling",
                           set, tls);
    int rc = TSR_BENCH_EXIT_OK;
    lcfg_t raw = {B_RAW, tls, (uint16_t)port, NULL, true, false, 1, 0, seconds, NULL};
    lstats_t rs = run_set(&raw);
    if (!rs.ok) {
        tsr_bench_error("lock: the raw atomics run failed");
        rc = TSR_BENCH_EXIT_FAIL;
        goto out;
    }
    emit(&r, "raw_2amo_p50", "2 raw UCX atomic round trips, p50", rs.p50, "us", NULL, 0, 0);
    emit(&r, "raw_2amo_p99", "2 raw UCX atomic round trips, p99", rs.p99, "us", NULL, 0, 0);
    emit(&r, "raw_2amo_cpu_ns", "2 raw UCX atomic round trips, client CPU per pair", rs.cpu_ns_op,
         "ns", NULL, 0, 0);
    for (int contended = 0; contended < 2; contended++) {
        for (int excl = 1; excl >= 0; excl--) {
            for (int n = 1; n <= maxc; n *= 2) {
                lcfg_t cfg = {B_LOCK, tls, (uint16_t)port, NULL, excl != 0, contended != 0, n, 0,
                              seconds, NULL};
                lstats_t s;
                if (point(&r, &cfg, "", redis ? rhost : NULL, rport, &s) != 0) {
                    rc = TSR_BENCH_EXIT_FAIL;
                    goto out;
                }
                if (n == 1 && excl && !contended) {
                    emit(&r, "uncont_vs_2amo",
                         "uncontended acquire+release p50 / 2 raw atomics p50", s.p50 / rs.p50,
                         "x", NULL, 0, 0);
                    emit(&r, "uncont_vs_2amo_cpu",
                         "uncontended acquire+release CPU / 2 raw atomics CPU (load-proof)",
                         rs.cpu_ns_op > 0 ? s.cpu_ns_op / rs.cpu_ns_op : 0, "x", NULL, 0, 0);
                }
            }
        }
    }
out:
    tsr_bench_report_fini(&r);
    kill(home, SIGKILL);
    waitpid(home, NULL, 0);
    return rc;
}
