/*
 * suite_txn_remote.c - the remote phases of `tessera-bench txn` (the rest of
 * the suite: suite_txn.c; what both share: suite_txn_internal.h).
 *
 * An owner process (the tables; a txn server and a kv server) and client
 * processes (the default; TSR_BENCH_TXN_CLIENT_MODE=threads: threads of this
 * process), each with its own transport (reads one-sided over shared
 * memory, by call - a transaction's reads in one - over TCP, where UCX
 * would emulate one-sided gets: tsr_txn_db_set_reads' default; a commit
 * call per transaction), per UCX set (tcp, sm):
 *   remote_<tls>          the owner's store in memory (no log)
 *   remote_durable_<tls>  the owner's store in a data dir, fdatasync group
 *                         commit: a commit is acknowledged once durable -
 *                         the shape of a database server over TCP, what
 *                         bench/peers/txn_peers.sh compares with PostgreSQL
 * Client processes are forked, released together through a pipe, and write
 * their counts and latencies back through their own pipes; this process
 * never touches UCX in process mode, so forking stays safe. The last point
 * verifies the owner's total with one remote transaction (from a child).
 * Figures as the embedded phases, plus txn per CPU second counting the
 * owner's CPU (from /proc/PID/stat). TSR_BENCH_TXN_CLIENT_SPIN and
 * TSR_BENCH_TXN_OWNER_SPIN: how long a waiting client process, and the
 * owner's progress thread, poll (us; default the transport's 100).
 * TSR_BENCH_TXN_LOCKS=owner|one_sided|auto: who locks write sets
 * (tsr_txn_db_set_locks; auto, the default: the clients' own one-sided CAS
 * over shared memory, the owner over TCP).
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "suite_txn_internal.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h" /* tessera_txn is built with the transport (a stub without it) */

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
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

#define TXN_RPC_DONE 921u

typedef struct owner {
    tsr_transport_t *t;
    atomic_bool done; /* a client said the run is over */
} owner_t;

static void s_done(void *arg, tsr_rpc_req_t *req)
{
    owner_t *o = arg;
    atomic_store(&o->done, true);
    (void)tsr_rpc_reply(o->t, req, TSR_OK, NULL, 0);
}

/* The owner (TSR_BENCH_TXN_SERVER=<tls>, TSR_BENCH_TXN_CUSTOMERS=K): the
 * tables in memory, or with TSR_BENCH_TXN_DIR=<dir> in a store in that data
 * dir (fdatasync group commit: a commit is acknowledged once durable), a txn
 * server and a kv server (one-sided reads). */
int tsr_bench_txn_run_server(const char *tls)
{
    alarm(600);
    const char *dir = getenv("TSR_BENCH_TXN_DIR");
    const char *ks = getenv("TSR_BENCH_TXN_CUSTOMERS");
    uint64_t customers = ks ? strtoull(ks, NULL, 10) : 1000;
    tsr_error_t err;
    tsr_error_clear(&err);
    /* TSR_BENCH_TXN_OWNER_SPIN: how long the owner's progress thread polls
     * for requests before it sleeps (us; default the transport's 100) */
    const char *os = getenv("TSR_BENCH_TXN_OWNER_SPIN");
    tsr_transport_params_t p = {.node_id = 1,
                                .listen_host = "127.0.0.1",
                                .tls = tls,
                                .spin_us = os && atoi(os) > 0 ? (unsigned)atoi(os) : 0};
    owner_t o = {0};
    tsr_kv_store_t *st = NULL;
    tsr_txn_server_t *ts = NULL;
    tsr_kv_server_t *ksrv = NULL;
    atomic_init(&o.done, false);
    int rc = 1;
    if (tsr_transport_create(NULL, &p, &o.t, &err) != TSR_OK)
        goto out;
    tsr_transport_t *t = o.t;
    tsr_kv_options_t ko = {.transport = t, .data_dir = dir, .sync = TSR_KV_SYNC_FSYNC};
    if (tsr_kv_open(&ko, &st, NULL) != TSR_OK || tsr_bench_txn_load(st, customers) != TSR_OK ||
        tsr_txn_server_start(st, t, 0, &ts, NULL) != TSR_OK ||
        tsr_kv_server_start(st, t, 0, &ksrv, NULL) != TSR_OK ||
        tsr_rpc_register(t, TXN_RPC_DONE, s_done, &o, &err) != TSR_OK ||
        tsr_transport_start_thread(t, &err) != TSR_OK)
        goto out;
    printf("%u\n", (unsigned)tsr_transport_port(t));
    fflush(stdout);
    while (!atomic_load(&o.done))
        usleep(10000);
    tsr_transport_stop_thread(t);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tessera: error: txn owner: %s\n", err.message);
    tsr_txn_server_stop(ts);
    tsr_kv_server_stop(ksrv);
    tsr_kv_close(st);
    tsr_transport_destroy(o.t);
    return rc;
}

typedef struct rclient {
    client_t c;
    const char *tls;
    uint16_t port;
    tsr_transport_t *t;
    tsr_peer_t *peer;
    tsr_txn_stats_t st;
} rclient_t;

/* A client db as the run asks: TSR_BENCH_TXN_LOCKS=owner|one_sided|auto
 * (tsr_txn_db_set_locks; default auto: the client's own CAS unless TCP). */
static tsr_status_t client_db(rclient_t *rc, tsr_txn_db_t **db)
{
    tsr_status_t st = tsr_txn_db_remote(rc->t, rc->peer, 0, 10000, db, NULL);
    const char *lk = getenv("TSR_BENCH_TXN_LOCKS");
    if (st == TSR_OK && lk)
        st = tsr_txn_db_set_locks(*db,
                                  strcmp(lk, "one_sided") == 0 ? TSR_TXN_LOCKS_ONE_SIDED
                                  : strcmp(lk, "owner") == 0   ? TSR_TXN_LOCKS_OWNER
                                                               : TSR_TXN_LOCKS_AUTO,
                                  NULL);
    return st;
}

static void *rclient_run(void *p)
{
    rclient_t *rc = p;
    tsr_txn_db_t *db = NULL;
    tsr_transport_params_t tp = {.node_id = 10 + (uint32_t)rc->c.seed, .tls = rc->tls};
    if (tsr_transport_create(NULL, &tp, &rc->t, NULL) != TSR_OK ||
        tsr_transport_connect(rc->t, "127.0.0.1", rc->port, 10000, &rc->peer, NULL) != TSR_OK ||
        client_db(rc, &db) != TSR_OK) {
        rc->c.failed = TSR_ERR_UNAVAILABLE;
        return NULL;
    }
    rc->c.db = db;
    tsr_bench_txn_client_run(&rc->c);
    tsr_txn_db_stats(db, &rc->st);
    tsr_txn_db_close(db);
    return NULL;
}

static tsr_status_t remote_total(tsr_txn_t *x, void *arg)
{
    int64_t *tot = arg; /* tot[0] = customers in, total out */
    uint64_t customers = (uint64_t)tot[0];
    int64_t sum = 0;
    for (uint64_t c = 0; c < customers; c++) {
        int64_t a = 0, b = 0;
        TRY(tsr_bench_txn_bal_get(x, "savings", c, &a));
        TRY(tsr_bench_txn_bal_get(x, "checking", c, &b));
        sum += a + b;
    }
    tot[1] = sum;
    return TSR_OK;
}

/* ---- remote clients as processes (the default; TSR_BENCH_TXN_CLIENT_MODE=threads:
 * threads of this process, each with its own transport) ---------------------------- */

typedef struct presult {
    int64_t delta;
    uint64_t nlat, commits, conflicts;
    double elapsed, cpu;
    int failed;
} presult_t;

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

static int write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, (const char *)buf + put, n - put);
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

/* A client process: connect, say ready, wait for go, run the mix for secs,
 * report (header, then its latencies). */
static int pclient(rclient_t *rc, double secs, int go_fd, int res_fd)
{
    alarm(600);
    tsr_txn_db_t *db = NULL;
    presult_t res = {0};
    /* TSR_BENCH_TXN_CLIENT_SPIN: how long a waiting client process polls
     * (us; default the transport's 100) */
    const char *cs = getenv("TSR_BENCH_TXN_CLIENT_SPIN");
    tsr_transport_params_t tp = {.node_id = 10 + (uint32_t)rc->c.seed,
                                 .tls = rc->tls,
                                 .spin_us = cs && atoi(cs) > 0 ? (unsigned)atoi(cs) : 0};
    if (tsr_transport_create(NULL, &tp, &rc->t, NULL) != TSR_OK ||
        tsr_transport_connect(rc->t, "127.0.0.1", rc->port, 10000, &rc->peer, NULL) != TSR_OK ||
        client_db(rc, &db) != TSR_OK)
        res.failed = TSR_ERR_UNAVAILABLE;
    char ready = res.failed ? 'F' : 'R', go = 0;
    if (write(res_fd, &ready, 1) != 1 || read(go_fd, &go, 1) != 1)
        res.failed = TSR_ERR_UNAVAILABLE;
    if (!res.failed) {
        double t0 = tsr_bench_now(), c0 = tsr_bench_cpu_now();
        rc->c.db = db;
        rc->c.until = t0 + secs;
        tsr_bench_txn_client_run(&rc->c);
        res.elapsed = tsr_bench_now() - t0;
        res.cpu = tsr_bench_cpu_now() - c0;
        tsr_txn_stats_t st;
        tsr_txn_db_stats(db, &st);
        res.commits = st.commits;
        res.conflicts = st.conflicts;
        res.delta = rc->c.delta;
        res.nlat = rc->c.nlat;
        res.failed = rc->c.failed;
    }
    int x = write_full(res_fd, &res, sizeof(res)) != 0 ||
            write_full(res_fd, rc->c.lat, res.nlat * sizeof(double)) != 0;
    close(res_fd);
    tsr_txn_db_close(db);
    tsr_transport_destroy(rc->t);
    free(rc->c.lat);
    return x;
}

/* Runs one point with n client processes; fills cl[i].c (nlat, lat, delta,
 * failed) and cl[i].st, *el (the longest client loop) and *cpu (the
 * clients' CPU). This process never touches UCX, so forking is safe. */
static int proc_point(rclient_t *cl, unsigned n, double secs, double *el, double *cpu)
{
    int go[2], rc = 0;
    if (pipe(go) != 0)
        return -1;
    pid_t *pids = calloc(n, sizeof(*pids));
    int *res = calloc(n, sizeof(*res));
    unsigned started = 0;
    for (unsigned i = 0; pids && res && i < n; i++) {
        int r[2];
        if (pipe(r) != 0) {
            rc = -1;
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(go[1]);
            close(r[0]);
            _exit(pclient(&cl[i], secs, go[0], r[1]));
        }
        close(r[1]);
        if (pid < 0) {
            close(r[0]);
            rc = -1;
            break;
        }
        pids[started] = pid;
        res[started++] = r[0];
    }
    close(go[0]);
    for (unsigned i = 0; i < started; i++) {
        char c = 0;
        if (read_full(res[i], &c, 1) != 1 || c != 'R')
            rc = -1;
    }
    for (unsigned i = 0; i < started; i++)
        if (write(go[1], "G", 1) != 1)
            rc = -1;
    close(go[1]); /* a client that missed its 'G' reads EOF and fails */
    *el = 0;
    *cpu = 0;
    for (unsigned i = 0; i < started; i++) {
        presult_t p;
        if (read_full(res[i], &p, sizeof(p)) != (ssize_t)sizeof(p) || p.nlat > (1u << 28)) {
            rc = -1;
        } else {
            cl[i].c.lat = malloc((p.nlat ? p.nlat : 1) * sizeof(double));
            if (!cl[i].c.lat || read_full(res[i], cl[i].c.lat, p.nlat * sizeof(double)) !=
                                    (ssize_t)(p.nlat * sizeof(double)))
                rc = -1;
            else
                cl[i].c.nlat = cl[i].c.cap = p.nlat;
            cl[i].c.delta = p.delta;
            cl[i].c.failed = p.failed;
            cl[i].st.commits = p.commits;
            cl[i].st.conflicts = p.conflicts;
            if (p.elapsed > *el)
                *el = p.elapsed;
            *cpu += p.cpu;
        }
        close(res[i]);
    }
    for (unsigned i = 0; i < started; i++) { /* each exits after its report (alarm: 600 s) */
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = -1;
    }
    if (started != n)
        rc = -1;
    free(pids);
    free(res);
    return rc;
}

/* From a child process: one remote transaction reads every balance and
 * compares the total with want; then the owner is told to stop. Returns 0
 * when the total matched. */
static int verify_child(const char *tls, uint16_t port, uint64_t customers, int64_t want)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        alarm(120);
        tsr_transport_params_t tp = {.node_id = 9, .tls = tls};
        tsr_transport_t *t = NULL;
        tsr_peer_t *peer = NULL;
        tsr_txn_db_t *db = NULL;
        int64_t tot[2] = {(int64_t)customers, 0};
        int x = 1;
        if (tsr_transport_create(NULL, &tp, &t, NULL) == TSR_OK &&
            tsr_transport_connect(t, "127.0.0.1", port, 10000, &peer, NULL) == TSR_OK &&
            tsr_txn_db_remote(t, peer, 0, 10000, &db, NULL) == TSR_OK &&
            tsr_txn_run(db, remote_total, tot, NULL, NULL, NULL) == TSR_OK)
            x = tot[1] == want ? 0 : 2;
        if (x)
            tsr_bench_error("txn: the owner's total is %" PRId64 ", expected %" PRId64, tot[1],
                            want);
        tsr_txn_db_close(db);
        if (peer) {
            tsr_rpc_msg_t done = {0};
            (void)tsr_rpc_call(t, peer, TXN_RPC_DONE, NULL, 0, 2000, &done, NULL);
            tsr_rpc_msg_release(t, &done);
        }
        tsr_transport_destroy(t);
        _exit(x);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int tsr_bench_txn_remote_phase(tsr_bench_report_t *r, const char *name, const char *tls,
                               uint64_t customers, const unsigned *counts, int ncounts, double secs,
                               const char *dir)
{
    char cs[32];
    snprintf(cs, sizeof(cs), "%llu", (unsigned long long)customers);
    setenv("TSR_BENCH_TXN_CUSTOMERS", cs, 1);
    if (dir)
        setenv("TSR_BENCH_TXN_DIR", dir, 1);
    /* the owner, the clients and the verifier all start from here */
    bool lanes = tsr_bench_sm_lanes_begin(name);
    uint16_t port = 0;
    pid_t pid = tsr_bench_spawn_server("txn", "TSR_BENCH_TXN_SERVER", tls, &port);
    unsetenv("TSR_BENCH_TXN_DIR");
    if (pid < 0) {
        tsr_bench_sm_lanes_end(lanes);
        tsr_bench_error("txn %s: the owner did not start", name);
        return -1;
    }
    char what[40];
    snprintf(what, sizeof(what), dir ? "remote_durable_%s" : "remote_%s", name);
    const char *mode = getenv("TSR_BENCH_TXN_CLIENT_MODE");
    bool procs = !mode || strcmp(mode, "threads") != 0;
    int rc = 0;
    int64_t delta = 0;
    for (int ci = 0; ci < ncounts && rc == 0; ci++) {
        unsigned n = counts[ci];
        rclient_t *cl = calloc(n, sizeof(*cl));
        client_t *plain = calloc(n, sizeof(*plain));
        pthread_t *th = calloc(n, sizeof(*th));
        if (!cl || !plain || !th) {
            rc = -1;
            goto next;
        }
        tsr_bench_progress("txn %s: %u clients", what, n);
        double oc0 = pid_cpu(pid);
        double t0 = tsr_bench_now(), cpu0 = tsr_bench_cpu_now(), el = 0, cpu = 0;
        unsigned started = 0;
        for (unsigned i = 0; i < n; i++) {
            cl[i].c = (client_t){.customers = customers, .seed = 1 + i, .until = t0 + secs};
            cl[i].tls = tls;
            cl[i].port = port;
        }
        if (procs) {
            if (proc_point(cl, n, secs, &el, &cpu) != 0) {
                tsr_bench_error("txn %s: a client process failed", what);
                rc = -1;
            }
            started = n;
        } else {
            for (unsigned i = 0; i < n; i++) {
                if (pthread_create(&th[i], NULL, rclient_run, &cl[i]) != 0)
                    break;
                started++;
            }
            for (unsigned i = 0; i < started; i++)
                pthread_join(th[i], NULL);
            el = tsr_bench_now() - t0;
            cpu = tsr_bench_cpu_now() - cpu0;
        }
        double oc1 = pid_cpu(pid);
        uint64_t commits = 0, conflicts = 0;
        for (unsigned i = 0; i < started; i++) {
            plain[i] = cl[i].c;
            delta += cl[i].c.delta;
            commits += cl[i].st.commits;
            conflicts += cl[i].st.conflicts;
            if (cl[i].c.failed) {
                tsr_bench_error("txn %s: a client failed: %s", what,
                                tsr_status_str((tsr_status_t)cl[i].c.failed));
                rc = -1;
            }
        }
        size_t total_n = 0;
        double *all = rc == 0 && started == n ? tsr_bench_txn_gather(plain, n, &total_n) : NULL;
        if (!all) {
            rc = -1;
        } else {
            rc |= tsr_bench_txn_emit_point(r, what, n, total_n, all, el, cpu, commits, conflicts);
            /* clients' and owner's CPU together: what the machine spent */
            if (oc0 >= 0 && oc1 >= oc0 && cpu + oc1 - oc0 > 0) {
                char fname[64], label[128];
                snprintf(fname, sizeof(fname), "%s_txn_per_total_cpu_s_c%u", what, n);
                snprintf(label, sizeof(label), "%s, %u clients: txn per CPU second (+owner)", what,
                         n);
                rc |= tsr_bench_emit(r, fname, label, (double)total_n / (cpu + oc1 - oc0), "txn/s");
            }
            tsr_bench_report_note(r,
                                  "%s (%s), %u clients: %.2f s wall, %.2f s CPU (clients), "
                                  "%.2f s CPU (owner)",
                                  what, tls, n, el, cpu, oc1 - oc0);
        }
        free(all);
        /* the last point: verify the owner's total with one remote txn */
        if (rc == 0 && ci == ncounts - 1 && procs) {
            int64_t want = 2 * (int64_t)customers * START_BAL + delta;
            if (verify_child(tls, port, customers, want) != 0)
                rc = -1;
            else
                tsr_bench_report_note(r, "%s: verified total", what);
        } else if (rc == 0 && ci == ncounts - 1 && cl[0].t) {
            tsr_txn_db_t *db = NULL;
            int64_t tot[2] = {(int64_t)customers, 0};
            if (tsr_txn_db_remote(cl[0].t, cl[0].peer, 0, 10000, &db, NULL) != TSR_OK ||
                tsr_txn_run(db, remote_total, tot, NULL, NULL, NULL) != TSR_OK ||
                tot[1] != 2 * (int64_t)customers * START_BAL + delta) {
                tsr_bench_error("txn %s: the owner's total is %" PRId64 ", expected %" PRId64, what,
                                tot[1], 2 * (int64_t)customers * START_BAL + delta);
                rc = -1;
            } else {
                tsr_bench_report_note(r, "%s: verified total", what);
            }
            tsr_txn_db_close(db);
            tsr_rpc_msg_t done = {0};
            (void)tsr_rpc_call(cl[0].t, cl[0].peer, TXN_RPC_DONE, NULL, 0, 2000, &done, NULL);
            tsr_rpc_msg_release(cl[0].t, &done);
        }
    next:
        for (unsigned i = 0; cl && i < n; i++) {
            free(cl[i].c.lat);
            tsr_transport_destroy(cl[i].t);
        }
        free(cl);
        free(plain);
        free(th);
    }
    tsr_bench_progress_clear();
    /* bounded wait for the owner, then stop it by its pid */
    tsr_bench_stop_server(pid, 5);
    tsr_bench_sm_lanes_end(lanes);
    if (dir) { /* the owner's data dir */
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            rc = -1;
    }
    return rc;
}
