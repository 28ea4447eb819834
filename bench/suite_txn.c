/*
 * suite_txn.c - `tessera-bench txn`: a SmallBank-style transaction mix on the
 * embedded store (include/tessera/txn.h), 1..T client threads.
 *
 * Tables "savings" and "checking", one 8-byte balance per customer (8-byte
 * keys), K customers. The mix (SmallBank, as in H-Store/OLTP-Bench):
 *   Balance          15%  read savings + checking (read-only)
 *   DepositChecking  15%  checking += 1..100
 *   TransactSavings  15%  savings += 1..100
 *   Amalgamate       15%  c1's savings + checking move to c2's checking
 *   WriteCheck       25%  checking -= amount (read both balances)
 *   SendPayment      15%  checking c1 -> checking c2
 * each run by tsr_txn_run (retries with randomized backoff). Customers are
 * drawn uniformly, except that 25% of the draws go to 10 hot customers, so
 * conflicts happen and the abort rate means something.
 *
 * Figures per client count: committed transactions per second (wall and per
 * CPU second), abort rate in % (conflicts / commit attempts), p50/p99 latency of a
 * transaction including its retries. Two phases: in memory (no log) and
 * durable (a data dir, fdatasync group commit: a commit returns once its
 * record is on disk). Verified: the total of all balances equals the start
 * plus the net deposits of every committed transaction.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h" /* tessera_txn is built with the transport (a stub without it) */

#define HOT 10
#define START_BAL 10000

typedef struct client {
    tsr_txn_db_t *db;
    uint64_t customers;
    uint64_t seed;
    double until;
    int64_t delta; /* net money added by this client's commits */
    double *lat;   /* per-transaction latencies (s) */
    size_t nlat, cap;
    long gave_up;
    int failed; /* an unexpected status */
    /* the current transaction */
    int kind;
    uint64_t c1, c2;
    int64_t amount, tx_delta;
} client_t;

static void key_of(uint64_t c, unsigned char k[8])
{
    memcpy(k, &c, 8);
}

static tsr_status_t bal_get(tsr_txn_t *x, const char *tab, uint64_t c, int64_t *v)
{
    unsigned char k[8];
    key_of(c, k);
    size_t vl;
    return tsr_txn_get(x, tab, k, 8, v, 8, &vl, NULL);
}

static tsr_status_t bal_put(tsr_txn_t *x, const char *tab, uint64_t c, int64_t v)
{
    unsigned char k[8];
    key_of(c, k);
    return tsr_txn_put(x, tab, k, 8, &v, 8, NULL, NULL);
}

#define TRY(e)                                                                                     \
    do {                                                                                           \
        tsr_status_t rc_ = (e);                                                                    \
        if (rc_ != TSR_OK)                                                                         \
            return rc_;                                                                            \
    } while (0)

static tsr_status_t smallbank(tsr_txn_t *x, void *arg)
{
    client_t *c = arg;
    int64_t s1 = 0, k1 = 0, k2 = 0;
    c->tx_delta = 0;
    switch (c->kind) {
    case 0: /* Balance */
        TRY(bal_get(x, "savings", c->c1, &s1));
        TRY(bal_get(x, "checking", c->c1, &k1));
        return TSR_OK;
    case 1: /* DepositChecking */
        TRY(bal_get(x, "checking", c->c1, &k1));
        c->tx_delta = c->amount;
        return bal_put(x, "checking", c->c1, k1 + c->amount);
    case 2: /* TransactSavings */
        TRY(bal_get(x, "savings", c->c1, &s1));
        c->tx_delta = c->amount;
        return bal_put(x, "savings", c->c1, s1 + c->amount);
    case 3: /* Amalgamate */
        TRY(bal_get(x, "savings", c->c1, &s1));
        TRY(bal_get(x, "checking", c->c1, &k1));
        TRY(bal_get(x, "checking", c->c2, &k2));
        TRY(bal_put(x, "savings", c->c1, 0));
        TRY(bal_put(x, "checking", c->c1, 0));
        return bal_put(x, "checking", c->c2, k2 + s1 + k1);
    case 4: /* WriteCheck */
        TRY(bal_get(x, "savings", c->c1, &s1));
        TRY(bal_get(x, "checking", c->c1, &k1));
        c->tx_delta = -c->amount;
        return bal_put(x, "checking", c->c1, k1 - c->amount);
    default: /* SendPayment */
        TRY(bal_get(x, "checking", c->c1, &k1));
        TRY(bal_get(x, "checking", c->c2, &k2));
        TRY(bal_put(x, "checking", c->c1, k1 - c->amount));
        return bal_put(x, "checking", c->c2, k2 + c->amount);
    }
}

static uint64_t pick(client_t *c)
{
    if (tsr_bench_rand_below(&c->seed, 4) == 0)
        return tsr_bench_rand_below(&c->seed, HOT);
    return tsr_bench_rand_below(&c->seed, c->customers);
}

static void *client_run(void *p)
{
    client_t *c = p;
    tsr_txn_run_opts_t o = {.max_attempts = 100, .backoff_us = 20, .backoff_max_us = 5000};
    static const int mix[20] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5};
    while (tsr_bench_now() < c->until) {
        c->kind = mix[tsr_bench_rand_below(&c->seed, 20)];
        c->c1 = pick(c);
        do
            c->c2 = pick(c);
        while (c->c2 == c->c1);
        c->amount = (int64_t)tsr_bench_rand_below(&c->seed, 100) + 1;
        o.seed = tsr_bench_rand(&c->seed) | 1;
        double t0 = tsr_bench_now();
        tsr_status_t rc = tsr_txn_run(c->db, smallbank, c, &o, NULL, NULL);
        double el = tsr_bench_now() - t0;
        if (rc == TSR_ERR_CONFLICT) {
            c->gave_up++;
            continue;
        }
        if (rc != TSR_OK) {
            c->failed = rc;
            break;
        }
        c->delta += c->tx_delta;
        if (c->nlat == c->cap) {
            size_t ncap = c->cap ? 2 * c->cap : 4096;
            double *nl = realloc(c->lat, ncap * sizeof(*nl));
            if (!nl) {
                c->failed = TSR_ERR_NOMEM;
                break;
            }
            c->lat = nl;
            c->cap = ncap;
        }
        c->lat[c->nlat++] = el;
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static tsr_status_t load(tsr_kv_store_t *s, uint64_t customers)
{
    tsr_kv_table_params_t p = {
        .partitions = 8, .max_key = 8, .max_value = 8, .capacity = customers};
    tsr_status_t rc = tsr_kv_table_create(s, "savings", &p, NULL);
    if (rc == TSR_OK)
        rc = tsr_kv_table_create(s, "checking", &p, NULL);
    const char *names[2] = {"savings", "checking"};
    for (int t = 0; t < 2 && rc == TSR_OK; t++) {
        tsr_kv_table_t *tab;
        rc = tsr_kv_table_open(s, names[t], &tab, NULL);
        for (uint64_t c = 0; c < customers && rc == TSR_OK; c++) {
            int64_t v = START_BAL;
            rc = tsr_kv_upsert(tab, &c, 8, &v, 8, NULL, NULL);
        }
        if (tab)
            tsr_kv_table_close(tab);
    }
    return rc;
}

static int64_t total_of(tsr_kv_store_t *s, uint64_t customers)
{
    int64_t total = 0;
    const char *names[2] = {"savings", "checking"};
    for (int t = 0; t < 2; t++) {
        tsr_kv_table_t *tab;
        if (tsr_kv_table_open(s, names[t], &tab, NULL) != TSR_OK)
            return INT64_MIN;
        for (uint64_t c = 0; c < customers; c++) {
            int64_t v = 0;
            size_t vl;
            if (tsr_kv_get(tab, &c, 8, &v, 8, &vl, NULL) != TSR_OK)
                v = INT64_MIN / 4;
            total += v;
        }
        tsr_kv_table_close(tab);
    }
    return total;
}

/* Emits one client count's figures (latencies in all[0..total_n), sorted). */
static int emit_point(tsr_bench_report_t *r, const char *what, unsigned n, size_t total_n,
                      const double *all, double el, double cpu, uint64_t commits,
                      uint64_t conflicts)
{
    int rc = 0;
    double attempts = (double)(commits + conflicts);
    char name[64], label[128];
    snprintf(name, sizeof(name), "%s_txn_per_s_c%u", what, n);
    snprintf(label, sizeof(label), "%s, %u clients: committed txn/s", what, n);
    rc |= tsr_bench_emit(r, name, label, (double)total_n / el, "txn/s");
    snprintf(name, sizeof(name), "%s_txn_per_cpu_s_c%u", what, n);
    snprintf(label, sizeof(label), "%s, %u clients: txn per CPU second", what, n);
    rc |= tsr_bench_emit(r, name, label, cpu > 0 ? (double)total_n / cpu : 0, "txn/s");
    snprintf(name, sizeof(name), "%s_abort_pct_c%u", what, n);
    snprintf(label, sizeof(label), "%s, %u clients: abort rate", what, n);
    rc |= tsr_bench_emit(r, name, label, attempts > 0 ? 100.0 * (double)conflicts / attempts : 0,
                         "%");
    snprintf(name, sizeof(name), "%s_p50_c%u", what, n);
    snprintf(label, sizeof(label), "%s, %u clients: latency p50", what, n);
    rc |= tsr_bench_emit(r, name, label, total_n ? all[total_n / 2] : 0, "s");
    snprintf(name, sizeof(name), "%s_p99_c%u", what, n);
    snprintf(label, sizeof(label), "%s, %u clients: latency p99", what, n);
    rc |= tsr_bench_emit(r, name, label, total_n ? all[(size_t)((double)total_n * 0.99)] : 0, "s");
    return rc;
}

/* All clients' latencies in one sorted array (NULL when out of memory). */
static double *gather(const client_t *cl, unsigned n, size_t *total)
{
    size_t t = 0;
    for (unsigned i = 0; i < n; i++)
        t += cl[i].nlat;
    double *all = malloc((t ? t : 1) * sizeof(*all));
    if (!all)
        return NULL;
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + k, cl[i].lat, cl[i].nlat * sizeof(*all));
        k += cl[i].nlat;
    }
    qsort(all, t, sizeof(*all), cmp_d);
    *total = t;
    return all;
}

/* One phase: a fresh store (in memory or in dir), each client count. */
static int phase(tsr_bench_report_t *r, const char *what, const char *dir, uint64_t customers,
                 unsigned max_clients, double secs)
{
    int rc = 0;
    for (unsigned n = 1; n <= max_clients && rc == 0; n *= 2) {
        tsr_kv_options_t o = {.data_dir = dir};
        tsr_kv_store_t *s = NULL;
        tsr_txn_db_t *db = NULL;
        client_t *cl = calloc(n, sizeof(*cl));
        pthread_t *th = calloc(n, sizeof(*th));
        if (!cl || !th || tsr_kv_open(&o, &s, NULL) != TSR_OK || load(s, customers) != TSR_OK ||
            tsr_txn_db_local(s, &db, NULL) != TSR_OK) {
            tsr_bench_error("txn: setting up the store failed");
            rc = -1;
            goto next;
        }
        tsr_bench_progress("txn %s: %u clients", what, n);
        double t0 = tsr_bench_now(), cpu0 = tsr_bench_cpu_now();
        unsigned started = 0;
        for (unsigned i = 0; i < n; i++) {
            cl[i] =
                (client_t){.db = db, .customers = customers, .seed = 1000 + i, .until = t0 + secs};
            if (pthread_create(&th[i], NULL, client_run, &cl[i]) != 0)
                break;
            started++;
        }
        for (unsigned i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        double el = tsr_bench_now() - t0, cpu = tsr_bench_cpu_now() - cpu0;
        size_t total_n = 0;
        int64_t delta = 0;
        for (unsigned i = 0; i < started; i++) {
            total_n += cl[i].nlat;
            delta += cl[i].delta;
            if (cl[i].failed) {
                tsr_bench_error("txn: a transaction failed: %s",
                                tsr_status_str((tsr_status_t)cl[i].failed));
                rc = -1;
            }
        }
        int64_t want = 2 * (int64_t)customers * START_BAL + delta;
        int64_t got = total_of(s, customers);
        if (got != want) {
            tsr_bench_error("txn: balances total %" PRId64 ", expected %" PRId64, got, want);
            rc = -1;
        }
        size_t got_n = 0;
        double *all = started == n ? gather(cl, n, &got_n) : NULL;
        if (!all) {
            rc = -1;
            goto next;
        }
        tsr_txn_stats_t st;
        tsr_txn_db_stats(db, &st);
        rc |= emit_point(r, what, n, total_n, all, el, cpu, st.commits, st.conflicts);
        tsr_bench_report_note(r, "%s, %u clients: %.2f s wall, %.2f s CPU; verified total", what, n,
                              el, cpu);
        free(all);
    next:
        for (unsigned i = 0; cl && i < n; i++)
            free(cl[i].lat);
        free(cl);
        free(th);
        tsr_txn_db_close(db);
        tsr_kv_close(s);
        if (dir) { /* a fresh dir per point */
            char cmd[600];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
            if (system(cmd) != 0)
                rc = -1;
        }
    }
    tsr_bench_progress_clear();
    return rc;
}

/* ---- remote: an owner process, client threads with a transport each --------------- */

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
 * tables in memory, a txn server and a kv server (one-sided reads). */
static int run_server(const char *tls)
{
    alarm(600);
    const char *ks = getenv("TSR_BENCH_TXN_CUSTOMERS");
    uint64_t customers = ks ? strtoull(ks, NULL, 10) : 1000;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t p = {.node_id = 1, .listen_host = "127.0.0.1", .tls = tls};
    owner_t o = {0};
    tsr_kv_store_t *st = NULL;
    tsr_txn_server_t *ts = NULL;
    tsr_kv_server_t *ksrv = NULL;
    atomic_init(&o.done, false);
    int rc = 1;
    if (tsr_transport_create(NULL, &p, &o.t, &err) != TSR_OK)
        goto out;
    tsr_transport_t *t = o.t;
    tsr_kv_options_t ko = {.transport = t};
    if (tsr_kv_open(&ko, &st, NULL) != TSR_OK || load(st, customers) != TSR_OK ||
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

static void *rclient_run(void *p)
{
    rclient_t *rc = p;
    tsr_txn_db_t *db = NULL;
    tsr_transport_params_t tp = {.node_id = 10 + (uint32_t)rc->c.seed, .tls = rc->tls};
    if (tsr_transport_create(NULL, &tp, &rc->t, NULL) != TSR_OK ||
        tsr_transport_connect(rc->t, "127.0.0.1", rc->port, 10000, &rc->peer, NULL) != TSR_OK ||
        tsr_txn_db_remote(rc->t, rc->peer, 0, 10000, &db, NULL) != TSR_OK) {
        rc->c.failed = TSR_ERR_UNAVAILABLE;
        return NULL;
    }
    rc->c.db = db;
    client_run(&rc->c);
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
        TRY(bal_get(x, "savings", c, &a));
        TRY(bal_get(x, "checking", c, &b));
        sum += a + b;
    }
    tot[1] = sum;
    return TSR_OK;
}

static int remote_phase(tsr_bench_report_t *r, const char *name, const char *tls,
                        uint64_t customers, unsigned max_clients, double secs)
{
    char cs[32];
    snprintf(cs, sizeof(cs), "%llu", (unsigned long long)customers);
    setenv("TSR_BENCH_TXN_CUSTOMERS", cs, 1);
    uint16_t port = 0;
    pid_t pid = tsr_bench_spawn_server("txn", "TSR_BENCH_TXN_SERVER", tls, &port);
    if (pid < 0) {
        tsr_bench_error("txn %s: the owner did not start", name);
        return -1;
    }
    char what[32];
    snprintf(what, sizeof(what), "remote_%s", name);
    int rc = 0;
    int64_t delta = 0;
    for (unsigned n = 1; n <= max_clients && rc == 0; n *= 2) {
        rclient_t *cl = calloc(n, sizeof(*cl));
        client_t *plain = calloc(n, sizeof(*plain));
        pthread_t *th = calloc(n, sizeof(*th));
        if (!cl || !plain || !th) {
            rc = -1;
            goto next;
        }
        tsr_bench_progress("txn %s: %u clients", what, n);
        double t0 = tsr_bench_now(), cpu0 = tsr_bench_cpu_now();
        unsigned started = 0;
        for (unsigned i = 0; i < n; i++) {
            cl[i].c = (client_t){.customers = customers, .seed = 1 + i, .until = t0 + secs};
            cl[i].tls = tls;
            cl[i].port = port;
            if (pthread_create(&th[i], NULL, rclient_run, &cl[i]) != 0)
                break;
            started++;
        }
        for (unsigned i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        double el = tsr_bench_now() - t0, cpu = tsr_bench_cpu_now() - cpu0;
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
        double *all = rc == 0 && started == n ? gather(plain, n, &total_n) : NULL;
        if (!all) {
            rc = -1;
        } else {
            rc |= emit_point(r, what, n, total_n, all, el, cpu, commits, conflicts);
            tsr_bench_report_note(r, "%s (%s), %u clients: %.2f s wall, %.2f s CPU (clients)", what,
                                  tls, n, el, cpu);
        }
        free(all);
        /* the last point: verify the owner's total with one remote txn */
        if (rc == 0 && n * 2 > max_clients && cl[0].t) {
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
    return rc;
}

int tsr_bench_suite_txn(const tsr_bench_opts_t *opts)
{
    const char *server_tls = getenv("TSR_BENCH_TXN_SERVER");
    if (!getenv("UCX_NET_DEVICES"))
        setenv("UCX_NET_DEVICES", "lo", 1);
    if (server_tls)
        return run_server(server_tls);
    uint64_t customers = opts->keys ? opts->keys : 1000;
    unsigned max_clients = opts->threads ? opts->threads : 8;
    double secs = (opts->rows ? (double)opts->rows : 500.0) / 1000.0;
    if (customers <= HOT) {
        tsr_bench_error("txn: --keys must be more than %d customers", HOT);
        return TSR_BENCH_EXIT_USAGE;
    }
    tsr_bench_report_t r;
    if (tsr_bench_report_init(&r, "txn", opts->json, stdout) != 0)
        return TSR_BENCH_EXIT_FAIL;
    tsr_bench_report_param_int(&r, "customers", (int64_t)customers);
    tsr_bench_report_param_int(&r, "ms_per_point", (int64_t)(secs * 1000));
    tsr_bench_report_title(&r,
                           "txn: SmallBank mix, %llu customers (25%% of draws on %d hot), "
                           "%.0f ms per point",
                           (unsigned long long)customers, HOT, secs * 1000);
    char dir[128];
    snprintf(dir, sizeof(dir), "/tmp/tsr_bench_txn_%d", (int)getpid());
    int rc = phase(&r, "memory", NULL, customers, max_clients, secs);
    if (rc == 0)
        rc = phase(&r, "durable", dir, customers, max_clients, secs);
    const char *only = getenv("TSR_BENCH_TLS");
    static const char *const sets[][2] = {{"tcp", "tcp"}, {"sm", "posix,cma,self,tcp"}};
    for (size_t i = 0; rc == 0 && i < 2; i++)
        if (!only || strcmp(only, sets[i][0]) == 0)
            rc = remote_phase(&r, sets[i][0], sets[i][1], customers, max_clients, secs);
    tsr_bench_report_fini(&r);
    return rc ? TSR_BENCH_EXIT_FAIL : TSR_BENCH_EXIT_OK;
}
