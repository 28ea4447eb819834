/*
 * suite_kv_clients.c - the "clients" phase of `tessera-bench kv` (the rest
 * of the suite: suite_kv.c; what both share: suite_kv_internal.h).
 *
 * Client processes (phase "clients", per transport set, before the latency
 * phase: this process must not have used UCX when it forks): an owner
 * process (CPU 1, polling 100 us then sleeping like any server) also holds
 * table "b", the Redis peer's shape: 100,000 keys "key:%012u" (16 bytes),
 * 64-byte values, in memory, and runs a txn server. For N in
 * TSR_BENCH_KV_CLIENTS (default 1,2,4,8,16,32; capped by --threads), N client
 * processes (each its own transport; N = 1 pinned to CPU 0 and polling, more
 * floating, polling TSR_BENCH_KV_CLIENT_SPIN us, default 50, with the
 * transport's spin_yield: they offer the core while they spin) released
 * together run for TSR_BENCH_KV_MS ms (default 300):
 *   get  tsr_kv_remote_get of a random key (one-sided), value checked
 *   put  a one-write transaction (tsr_txn_put + commit: one call; the same
 *        value bytes, so gets still check), a conflict retried and counted
 * Figures clients_{get,put}_{ops_s,p50,p99,cpu_us,total_cpu_us}_<set>_c<N>:
 * ops/s of all clients, latency percentiles (us), client CPU per op and
 * clients + owner CPU per op (the owner's from /proc/PID/stat).
 * Then, per N, the same gets in redis-benchmark's shape (-c N -P 1: one
 * process multiplexing N clients with one request outstanding each): ONE
 * client process (pinned to CPU 0, polling, like the single client) that
 * keeps N gets in flight with tsr_kv_remote_get_many, in lockstep rounds
 * of N random keys; figures clients_get_*_<set>_m<N> (latency = per
 * round, i.e. what each get of the round waited).
 * bench/peers/kv_peers.sh runs this phase next to Redis.
 *
 * Clients are forked processes released together through a pipe; each
 * writes its counts and up to K_SAMPLES latencies back through its own pipe.
 * The owner is stopped by an RPC from a forked child, so this process never
 * touches UCX and later phases may still fork.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "suite_kv_internal.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"

/* What one client process measures: remote gets of table "b" (one-sided
 * reads) or remote puts (one-write transactions, a commit call each). */
typedef struct kcfg {
    const char *tls;
    uint16_t port;
    bool put;
    int clients, idx;
    double seconds;
    int inflight; /* gets: > 0 = one process, this many gets in flight (get_many) */
} kcfg_t;

typedef struct kres {
    uint64_t ops;
    uint64_t retries; /* puts: commits refused with a conflict, retried */
    double elapsed;
    double cpu; /* the client process' CPU seconds over its loop */
    uint32_t nsamples;
    int failed;
} kres_t;

static void pin_all(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (long i = 0; i < n && i < CPU_SETSIZE; i++)
        CPU_SET((int)i, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

static double proc_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

/* One put as a transaction; a conflict (another client committing the same
 * key at that moment) is retried at once, up to 100 times. */
static tsr_status_t put_one(tsr_txn_db_t *db, const char *key, const unsigned char *v,
                            uint64_t *retries)
{
    tsr_status_t rc = TSR_ERR_CONFLICT;
    for (int a = 0; a < 100 && rc == TSR_ERR_CONFLICT; a++) {
        tsr_txn_t *x = NULL;
        rc = tsr_txn_begin(db, &x, NULL);
        if (rc == TSR_OK)
            rc = tsr_txn_put(x, "b", key, K_BKEY, v, K_VAL, NULL, NULL);
        if (rc == TSR_OK)
            rc = tsr_txn_commit(x, NULL);
        else
            tsr_txn_rollback(x);
        if (rc == TSR_ERR_CONFLICT)
            (*retries)++;
    }
    return rc;
}

/* redis-benchmark's shape (-c N -P 1: N clients multiplexed by one
 * process, one request outstanding each): cfg->inflight random keys per
 * tsr_kv_remote_get_many call, every value checked. The N gets of a call
 * are issued together and reaped by one wait (lockstep rounds: a get's
 * slot is refilled when its round ends, not the moment its own reply
 * lands, which is at most as fast as redis-benchmark's refill). Latency:
 * one sample per round (what each of its gets waited). */
static void many_loop(const kcfg_t *cfg, tsr_kv_remote_t *kr, uint64_t *st, double end, double *lat,
                      kres_t *res)
{
    int n = cfg->inflight;
    char(*keys)[K_BKEY + 1] = calloc((size_t)n, sizeof(*keys));
    tsr_kv_pair_t *kp = calloc((size_t)n, sizeof(*kp));
    uint64_t *ks = calloc((size_t)n, sizeof(*ks));
    unsigned char *vals = calloc((size_t)n, K_VAL);
    size_t *vlens = calloc((size_t)n, sizeof(*vlens));
    tsr_status_t *rs = calloc((size_t)n, sizeof(*rs));
    unsigned char want[K_VAL];
    uint64_t rounds = 0;
    if (!keys || !kp || !ks || !vals || !vlens || !rs)
        res->failed = 1;
    while (!res->failed) {
        double a = tsr_bench_now();
        if (a >= end)
            break;
        for (int i = 0; i < n; i++) {
            ks[i] = tsr_bench_rand_below(st, K_REMOTE_KEYS);
            bkey(ks[i], keys[i]);
            kp[i] = (tsr_kv_pair_t){keys[i], K_BKEY, NULL, 0};
        }
        size_t nok = 0;
        if (tsr_kv_remote_get_many(kr, kp, (size_t)n, vals, K_VAL, vlens, rs, &nok, NULL) !=
                TSR_OK ||
            nok != (size_t)n)
            res->failed = 1;
        for (int i = 0; i < n && !res->failed; i++) {
            remote_val(ks[i], want);
            if (vlens[i] != K_VAL || memcmp(vals + (size_t)i * K_VAL, want, K_VAL) != 0)
                res->failed = 1;
        }
        lat[rounds++ % K_SAMPLES] = (tsr_bench_now() - a) * 1e6;
        res->ops += (uint64_t)n;
    }
    res->nsamples = (uint32_t)(rounds < K_SAMPLES ? rounds : K_SAMPLES);
    free(keys);
    free(kp);
    free(ks);
    free(vals);
    free(vlens);
    free(rs);
}

static int run_kclient(const kcfg_t *cfg, int go_fd, int res_fd)
{
    alarm(300);
    if (cfg->clients == 1)
        pin_to(0);
    else
        pin_all();
    /* TSR_BENCH_KV_CLIENT_SPIN: how long a waiting client polls when there
     * are several (default 50 us); one client polls (2 s) like ucx_perftest */
    const char *cs = getenv("TSR_BENCH_KV_CLIENT_SPIN");
    unsigned spin = cs && atoi(cs) > 0 ? (unsigned)atoi(cs) : 50;
    /* several client processes share the cores with the owner: their
     * spinning offers the core (spin_yield) instead of taking it */
    tsr_transport_params_t p = {.node_id = 100 + (uint32_t)cfg->idx,
                                .tls = cfg->tls,
                                .spin_us = cfg->clients == 1 ? 2000000 : spin,
                                .spin_yield = cfg->clients > 1};
    tsr_transport_t *t = NULL;
    tsr_peer_t *peer = NULL;
    tsr_kv_remote_t *kr = NULL;
    tsr_txn_db_t *db = NULL;
    kres_t res = {0};
    double *lat = calloc(K_SAMPLES, sizeof(double));
    if (!lat || tsr_transport_create(NULL, &p, &t, NULL) != TSR_OK ||
        tsr_transport_connect(t, "127.0.0.1", cfg->port, 60000, &peer, NULL) != TSR_OK ||
        (cfg->put ? tsr_txn_db_remote(t, peer, 0, 60000, &db, NULL)
                  : tsr_kv_remote_open(t, peer, "b", 0, 60000, &kr, NULL)) != TSR_OK)
        res.failed = 1;
    char ready = res.failed ? 'F' : 'R', go = 0;
    if (write(res_fd, &ready, 1) != 1 || read(go_fd, &go, 1) != 1)
        res.failed = 1;
    uint64_t st = 0x51ed + (uint64_t)cfg->idx * 7919;
    unsigned char v[K_VAL], want[K_VAL];
    char key[K_BKEY + 1];
    double t0 = tsr_bench_now(), end = t0 + cfg->seconds, c0 = proc_cpu_now();
    if (!res.failed && cfg->inflight > 0) {
        many_loop(cfg, kr, &st, end, lat, &res);
        goto done;
    }
    while (!res.failed) {
        double a = tsr_bench_now();
        if (a >= end)
            break;
        uint64_t k = tsr_bench_rand_below(&st, K_REMOTE_KEYS);
        bkey(k, key);
        remote_val(k, want); /* puts write the value every get checks */
        if (cfg->put) {
            if (put_one(db, key, want, &res.retries) != TSR_OK)
                res.failed = 1;
        } else {
            size_t vl = 0;
            if (tsr_kv_remote_get(kr, key, K_BKEY, v, sizeof(v), &vl, NULL) != TSR_OK ||
                vl != K_VAL || memcmp(v, want, K_VAL) != 0)
                res.failed = 1;
        }
        lat[res.ops % K_SAMPLES] = (tsr_bench_now() - a) * 1e6;
        res.ops++;
    }
done:
    res.elapsed = tsr_bench_now() - t0;
    res.cpu = proc_cpu_now() - c0;
    if (cfg->inflight <= 0)
        res.nsamples = (uint32_t)(res.ops < K_SAMPLES ? res.ops : K_SAMPLES);
    int rc = 0;
    if (write(res_fd, &res, sizeof(res)) != (ssize_t)sizeof(res) ||
        (lat && write(res_fd, lat, res.nsamples * sizeof(double)) !=
                    (ssize_t)(res.nsamples * sizeof(double))))
        rc = 1;
    close(res_fd);
    tsr_txn_db_close(db);
    tsr_kv_remote_close(kr);
    tsr_transport_destroy(t);
    free(lat);
    return rc;
}

typedef struct kstats {
    double ops_s, p50, p99;
    double cpu_us_op; /* client CPU per operation */
    double ops;       /* operations, all clients */
    uint64_t retries;
    bool ok;
} kstats_t;

/* Forks cfg->clients client processes, starts them together, gathers. The
 * caller has not touched UCX in this process (forking is safe). */
static kstats_t run_kset(const kcfg_t *cfg)
{
    kstats_t st = {0};
    int n = cfg->clients, go[2];
    if (n < 1 || n > K_MAX_CLIENTS || pipe(go) != 0)
        return st;
    pid_t pids[K_MAX_CLIENTS];
    int res[K_MAX_CLIENTS], started = 0;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int r[2];
        if (pipe(r) != 0) {
            ok = false;
            break;
        }
        kcfg_t one = *cfg;
        one.idx = i;
        pid_t pid = fork();
        if (pid == 0) {
            close(go[1]);
            close(r[0]);
            _exit(run_kclient(&one, go[0], r[1]));
        }
        close(r[1]);
        if (pid < 0) {
            close(r[0]);
            ok = false;
            break;
        }
        pids[started] = pid;
        res[started++] = r[0];
    }
    close(go[0]);
    for (int i = 0; i < started; i++) {
        char c = 0;
        if (read_full(res[i], &c, 1) != 1 || c != 'R')
            ok = false;
    }
    char gos[K_MAX_CLIENTS];
    memset(gos, 'G', sizeof(gos));
    if (write(go[1], gos, (size_t)started) != (ssize_t)started)
        ok = false;
    close(go[1]); /* a client that missed its 'G' reads EOF and fails */
    double *all = malloc((size_t)(started ? started : 1) * K_SAMPLES * sizeof(double));
    size_t ns = 0;
    double cpu = 0, ops = 0;
    for (int i = 0; i < started; i++) {
        kres_t r;
        if (read_full(res[i], &r, sizeof(r)) != (ssize_t)sizeof(r) || r.failed ||
            r.nsamples > K_SAMPLES || !all ||
            read_full(res[i], all + ns, r.nsamples * sizeof(double)) !=
                (ssize_t)(r.nsamples * sizeof(double))) {
            ok = false;
        } else {
            ns += r.nsamples;
            st.ops_s += r.elapsed > 0 ? (double)r.ops / r.elapsed : 0;
            st.retries += r.retries;
            cpu += r.cpu;
            ops += (double)r.ops;
        }
        close(res[i]);
    }
    for (int i = 0; i < started; i++) { /* each client exits after its report (alarm: 300 s) */
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            ok = false;
    }
    if (ok && started == n && ns > 0) {
        qsort(all, ns, sizeof(double), cmp_double);
        st.p50 = pct(all, ns, 0.50);
        st.p99 = pct(all, ns, 0.99);
        st.cpu_us_op = ops > 0 ? cpu / ops * 1e6 : 0;
        st.ops = ops;
        st.ok = true;
    }
    free(all);
    return st;
}

/* CPU seconds (user + system) the process pid has used so far, from
 * /proc/pid/stat (clock ticks); < 0 when unreadable. */
static double pid_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, stt = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + stt) / (double)(hz > 0 ? hz : 100);
}

/* The client counts: TSR_BENCH_KV_CLIENTS ("1,2,4,8,16,32" by default),
 * capped at --threads when given. Returns how many. */
int tsr_bench_kv_client_counts(unsigned cap, int *out)
{
    const char *s = getenv("TSR_BENCH_KV_CLIENTS");
    if (!s)
        s = "1,2,4,8,16,32";
    int n = 0;
    while (*s && n < 16) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s)
            return -1;
        if (v < 1 || v > K_MAX_CLIENTS)
            return -1;
        if (!cap || v <= (long)cap)
            out[n++] = (int)v;
        s = *e == ',' ? e + 1 : e;
        if (*e && *e != ',')
            return -1;
    }
    return n;
}

/* The figures of one point: shape 'c' (n client processes) or 'm' (one
 * process, n gets in flight). */
static void emit_point(tsr_bench_report_t *r, const char *what, const char *name, char shape, int n,
                       const kstats_t *s, double oc0, double oc1)
{
    char fname[64], label[160], who[64];
    if (shape == 'c')
        snprintf(who, sizeof(who), "%d client processes", n);
    else
        snprintf(who, sizeof(who), "1 process, %d in flight", n);
    snprintf(fname, sizeof(fname), "clients_%s_ops_s_%s_%c%d", what, name, shape, n);
    snprintf(label, sizeof(label), "%s %ss, %s", name, what, who);
    emit(r, fname, label, s->ops_s, "ops/s", NULL, 0, false);
    snprintf(fname, sizeof(fname), "clients_%s_p50_%s_%c%d", what, name, shape, n);
    snprintf(label, sizeof(label), "%s %ss, %s: p50", name, what, who);
    emit(r, fname, label, s->p50, "us", NULL, 0, true);
    snprintf(fname, sizeof(fname), "clients_%s_p99_%s_%c%d", what, name, shape, n);
    snprintf(label, sizeof(label), "%s %ss, %s: p99", name, what, who);
    emit(r, fname, label, s->p99, "us", NULL, 0, true);
    snprintf(fname, sizeof(fname), "clients_%s_cpu_us_%s_%c%d", what, name, shape, n);
    snprintf(label, sizeof(label), "%s %ss, %s: client CPU per op", name, what, who);
    emit(r, fname, label, s->cpu_us_op, "us", NULL, 0, true);
    /* clients' and owner's CPU per operation: what the machine spent,
     * which its other load barely changes (the owner's by clock tick) */
    if (oc0 >= 0 && oc1 >= oc0 && s->ops > 0) {
        snprintf(fname, sizeof(fname), "clients_%s_total_cpu_us_%s_%c%d", what, name, shape, n);
        snprintf(label, sizeof(label), "%s %ss, %s: clients+owner CPU per op", name, what, who);
        emit(r, fname, label, s->cpu_us_op + (oc1 - oc0) / s->ops * 1e6, "us", NULL, 0, true);
    }
}

/* Gets and puts by 1..32 client processes against one owner (CPU 1). */
int tsr_bench_kv_clients_phase(tsr_bench_report_t *r, const char *name, const char *tls,
                               const int *counts, int ncounts, double seconds)
{
    setenv("TSR_BENCH_KV_SPIN", "100", 1);
    uint16_t port = 0;
    pid_t pid = tsr_bench_spawn_server("kv", "TSR_BENCH_KV_SERVER", tls, &port);
    unsetenv("TSR_BENCH_KV_SPIN");
    if (pid < 0) {
        tsr_bench_error("kv %s: the owner did not start", name);
        return 1;
    }
    int rc = 0;
    for (int op = 0; op < 2 && rc == 0; op++) {
        for (int i = 0; i < ncounts && rc == 0; i++) {
            kcfg_t cfg = {tls, port, op == 1, counts[i], 0, seconds, 0};
            tsr_bench_progress("kv %s: %s, %d clients", name, op ? "puts" : "gets", counts[i]);
            double oc0 = pid_cpu(pid);
            kstats_t s = run_kset(&cfg);
            double oc1 = pid_cpu(pid);
            tsr_bench_progress_clear();
            if (!s.ok) {
                tsr_bench_error("kv %s: %s with %d client processes failed", name,
                                op ? "puts" : "gets", counts[i]);
                rc = 1;
                break;
            }
            emit_point(r, op ? "put" : "get", name, 'c', counts[i], &s, oc0, oc1);
            if (op == 0) { /* the same N gets in flight from one process */
                kcfg_t mc = {tls, port, false, 1, 0, seconds, counts[i]};
                tsr_bench_progress("kv %s: gets, 1 process, %d in flight", name, counts[i]);
                oc0 = pid_cpu(pid);
                kstats_t ms = run_kset(&mc);
                oc1 = pid_cpu(pid);
                tsr_bench_progress_clear();
                if (!ms.ok) {
                    tsr_bench_error("kv %s: gets with %d in flight failed", name, counts[i]);
                    rc = 1;
                    break;
                }
                emit_point(r, "get", name, 'm', counts[i], &ms, oc0, oc1);
            }
            if (op && s.retries)
                tsr_bench_report_note(r, "%s puts, %d clients: %llu commits retried (conflict)",
                                      name, counts[i], (unsigned long long)s.retries);
        }
    }
    if (rc == 0)
        tsr_bench_report_note(
            r,
            "%s: %d-%d client processes (1: pinned to CPU 0, polling; more: "
            "floating, spin 50 us offering the core), owner pinned to CPU 1 (spin 100 us); "
            "_m<N>: one process (CPU 0, polling) with N gets in flight "
            "(tsr_kv_remote_get_many)",
            name, counts[0], counts[ncounts - 1]);
    /* tell the owner to stop from a child process (this one stays free of
     * UCX, so later phases may fork), then a bounded wait and SIGKILL by pid */
    pid_t stopper = fork();
    if (stopper == 0) {
        alarm(20);
        tsr_transport_params_t p = {.node_id = 99, .tls = tls};
        tsr_transport_t *t = NULL;
        tsr_peer_t *peer = NULL;
        tsr_rpc_msg_t done = {0};
        int x = tsr_transport_create(NULL, &p, &t, NULL) != TSR_OK ||
                tsr_transport_connect(t, "127.0.0.1", port, 5000, &peer, NULL) != TSR_OK ||
                tsr_rpc_call(t, peer, K_DONE, NULL, 0, 5000, &done, NULL) != TSR_OK;
        if (t)
            tsr_rpc_msg_release(t, &done);
        tsr_transport_destroy(t);
        _exit(x);
    }
    if (stopper > 0)
        waitpid(stopper, NULL, 0);
    tsr_bench_stop_server(pid, 5);
    return rc;
}
