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
 * each run by tsr_txn_run (retries with randomized backoff). A transaction's
 * reads of 2-3 balances are one tsr_txn_get_many call (a remote db posts
 * their one-sided reads together, or over TCP sends them in one call: one
 * round trip). Customers are
 * drawn uniformly, except that 25% of the draws go to 10 hot customers, so
 * conflicts happen and the abort rate means something.
 *
 * Figures per client count: committed transactions per second (wall and per
 * CPU second), abort rate in % (conflicts / commit attempts), p50/p99 latency of a
 * transaction including its retries. Two phases: in memory (no log) and
 * durable (a data dir, fdatasync group commit: a commit returns once its
 * record is on disk). Verified: the total of all balances equals the start
 * plus the net deposits of every committed transaction.
 *
 * Remote phases (remote_<tls>, remote_durable_<tls>: an owner process and
 * client processes over UCX): suite_txn_remote.c.
 * Environment: TSR_BENCH_TXN_CLIENTS="1,4,16" picks the client counts
 * (default 1, 2, 4, ..., --threads); TSR_BENCH_TXN_ONLY="durable,remote_durable"
 * picks phases (memory, durable, remote, remote_durable; default all but
 * remote_durable); TSR_BENCH_TLS=tcp|sm one transport set.
 * Cluster phase (cluster, only when listed in TSR_BENCH_TXN_ONLY): the mix
 * through a running cluster (--scheduler HOST:PORT, else $TESSERA_SCHEDULER):
 * txn_cluster.c.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "suite_txn_internal.h"
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h" /* tessera_txn is built with the transport; keeps this file and
                          * suite_txn_remote.c together when CMake stubs UCX suites */

static void key_of(uint64_t c, unsigned char k[8])
{
    memcpy(k, &c, 8);
}

tsr_status_t tsr_bench_txn_bal_get(tsr_txn_t *x, const char *tab, uint64_t c, int64_t *v)
{
    unsigned char k[8];
    key_of(c, k);
    size_t vl;
    return tsr_txn_get(x, tab, k, 8, v, 8, &vl, NULL);
}

/* Reads n balances in one call (tsr_txn_get_many: on a remote db their
 * one-sided reads go out together): the first failure, or an absent
 * customer's TSR_ERR_NOT_FOUND, as n tsr_bench_txn_bal_get calls would
 * return it. */
static tsr_status_t bal_get_many(tsr_txn_t *x, size_t n, const char *const *tabs,
                                 const uint64_t *cs, int64_t *const *vs)
{
    unsigned char k[4][8];
    tsr_txn_read_t rd[4];
    for (size_t i = 0; i < n; i++) {
        key_of(cs[i], k[i]);
        rd[i] = (tsr_txn_read_t){.table = tabs[i], .key = k[i], .klen = 8, .buf = vs[i], .cap = 8};
    }
    TRY(tsr_txn_get_many(x, rd, n, NULL));
    for (size_t i = 0; i < n; i++)
        TRY(rd[i].status);
    return TSR_OK;
}

static tsr_status_t bal_put(tsr_txn_t *x, const char *tab, uint64_t c, int64_t v)
{
    unsigned char k[8];
    key_of(c, k);
    return tsr_txn_put(x, tab, k, 8, &v, 8, NULL, NULL);
}

static tsr_status_t smallbank(tsr_txn_t *x, void *arg)
{
    client_t *c = arg;
    int64_t s1 = 0, k1 = 0, k2 = 0;
    c->tx_delta = 0;
    switch (c->kind) {
    case 0: /* Balance */
        return bal_get_many(x, 2, (const char *[]){"savings", "checking"},
                            (uint64_t[]){c->c1, c->c1}, (int64_t *[]){&s1, &k1});
    case 1: /* DepositChecking */
        TRY(tsr_bench_txn_bal_get(x, "checking", c->c1, &k1));
        c->tx_delta = c->amount;
        return bal_put(x, "checking", c->c1, k1 + c->amount);
    case 2: /* TransactSavings */
        TRY(tsr_bench_txn_bal_get(x, "savings", c->c1, &s1));
        c->tx_delta = c->amount;
        return bal_put(x, "savings", c->c1, s1 + c->amount);
    case 3: /* Amalgamate */
        TRY(bal_get_many(x, 3, (const char *[]){"savings", "checking", "checking"},
                         (uint64_t[]){c->c1, c->c1, c->c2}, (int64_t *[]){&s1, &k1, &k2}));
        TRY(bal_put(x, "savings", c->c1, 0));
        TRY(bal_put(x, "checking", c->c1, 0));
        return bal_put(x, "checking", c->c2, k2 + s1 + k1);
    case 4: /* WriteCheck */
        TRY(bal_get_many(x, 2, (const char *[]){"savings", "checking"}, (uint64_t[]){c->c1, c->c1},
                         (int64_t *[]){&s1, &k1}));
        c->tx_delta = -c->amount;
        return bal_put(x, "checking", c->c1, k1 - c->amount);
    default: /* SendPayment */
        TRY(bal_get_many(x, 2, (const char *[]){"checking", "checking"}, (uint64_t[]){c->c1, c->c2},
                         (int64_t *[]){&k1, &k2}));
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

void *tsr_bench_txn_client_run(void *p)
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

tsr_status_t tsr_bench_txn_load(tsr_kv_store_t *s, uint64_t customers)
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
int tsr_bench_txn_emit_point(tsr_bench_report_t *r, const char *what, unsigned n, size_t total_n,
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
double *tsr_bench_txn_gather(const client_t *cl, unsigned n, size_t *total)
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

unsigned tsr_bench_txn_clients_run(client_t *cl, pthread_t *th, unsigned n, uint64_t customers,
                                   uint64_t seed0, double secs, double *el, double *cpu)
{
    double t0 = tsr_bench_now(), cpu0 = tsr_bench_cpu_now();
    unsigned started = 0;
    for (unsigned i = 0; i < n; i++) {
        tsr_txn_db_t *db = cl[i].db;
        cl[i] = (client_t){
            .db = db, .customers = customers, .seed = seed0 + i, .until = t0 + secs};
        if (pthread_create(&th[i], NULL, tsr_bench_txn_client_run, &cl[i]) != 0)
            break;
        started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    *el = tsr_bench_now() - t0;
    *cpu = tsr_bench_cpu_now() - cpu0;
    return started;
}

/* One phase: a fresh store (in memory or in dir), each client count. */
static int phase(tsr_bench_report_t *r, const char *what, const char *dir, uint64_t customers,
                 const unsigned *counts, int ncounts, double secs)
{
    int rc = 0;
    for (int ci = 0; ci < ncounts && rc == 0; ci++) {
        unsigned n = counts[ci];
        tsr_kv_options_t o = {.data_dir = dir, .sync = TSR_KV_SYNC_FSYNC};
        tsr_kv_store_t *s = NULL;
        tsr_txn_db_t *db = NULL;
        client_t *cl = calloc(n, sizeof(*cl));
        pthread_t *th = calloc(n, sizeof(*th));
        if (!cl || !th || tsr_kv_open(&o, &s, NULL) != TSR_OK ||
            tsr_bench_txn_load(s, customers) != TSR_OK ||
            tsr_txn_db_local(s, &db, NULL) != TSR_OK) {
            tsr_bench_error("txn: setting up the store failed");
            rc = -1;
            goto next;
        }
        tsr_bench_progress("txn %s: %u clients", what, n);
        for (unsigned i = 0; i < n; i++)
            cl[i].db = db;
        double el, cpu;
        unsigned started = tsr_bench_txn_clients_run(cl, th, n, customers, 1000, secs, &el, &cpu);
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
        double *all = started == n ? tsr_bench_txn_gather(cl, n, &got_n) : NULL;
        if (!all) {
            rc = -1;
            goto next;
        }
        tsr_txn_stats_t st;
        tsr_txn_db_stats(db, &st);
        rc |= tsr_bench_txn_emit_point(r, what, n, total_n, all, el, cpu, st.commits, st.conflicts);
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

/* True when name is one of the comma-separated words of list (so "durable"
 * is not found in "remote_durable"). */
static bool phase_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p += len + (e ? 1 : 0);
    }
    return false;
}

int tsr_bench_suite_txn(const tsr_bench_opts_t *opts)
{
    const char *server_tls = getenv("TSR_BENCH_TXN_SERVER");
    if (!getenv("UCX_NET_DEVICES"))
        setenv("UCX_NET_DEVICES", "lo", 1);
    if (server_tls)
        return tsr_bench_txn_run_server(server_tls);
    uint64_t customers = opts->keys ? opts->keys : 1000;
    unsigned max_clients = opts->threads ? opts->threads : 8;
    double secs = (opts->rows ? (double)opts->rows : 500.0) / 1000.0;
    if (customers <= HOT) {
        tsr_bench_error("txn: --keys must be more than %d customers", HOT);
        return TSR_BENCH_EXIT_USAGE;
    }
    /* TSR_BENCH_TXN_CLIENTS: the client counts (e.g. "1,4,16"); default
     * 1, 2, 4, ..., --threads */
    unsigned counts[16];
    int ncounts = 0;
    const char *cl = getenv("TSR_BENCH_TXN_CLIENTS");
    if (cl) {
        while (*cl && ncounts < 16) {
            char *e;
            long v = strtol(cl, &e, 10);
            if (e == cl || v < 1 || v > 256 || (*e && *e != ',')) {
                ncounts = 0;
                break;
            }
            counts[ncounts++] = (unsigned)v;
            cl = *e ? e + 1 : e;
        }
        if (ncounts == 0) {
            tsr_bench_error("txn: TSR_BENCH_TXN_CLIENTS must be counts 1..256, e.g. 1,4,16");
            return TSR_BENCH_EXIT_USAGE;
        }
    } else {
        for (unsigned n = 1; n <= max_clients && ncounts < 16; n *= 2)
            counts[ncounts++] = n;
    }
    /* TSR_BENCH_TXN_ONLY: a comma list of phases (memory, durable, remote,
     * remote_durable); by default all but remote_durable.
     * bench/peers/txn_peers.sh runs "durable,remote_durable". */
    const char *only_ph = getenv("TSR_BENCH_TXN_ONLY");
    bool ph_mem = !only_ph || phase_listed(only_ph, "memory");
    bool ph_dur = !only_ph || phase_listed(only_ph, "durable");
    bool ph_rem = !only_ph || phase_listed(only_ph, "remote");
    bool ph_rdur = only_ph && phase_listed(only_ph, "remote_durable");
    bool ph_cluster = only_ph && phase_listed(only_ph, "cluster");
    const char *sched = opts->scheduler ? opts->scheduler : getenv("TESSERA_SCHEDULER");
    if (ph_cluster && !sched) {
        tsr_bench_error("txn: the cluster phase needs --scheduler HOST:PORT (or "
                        "TESSERA_SCHEDULER)");
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
    int rc = ph_mem ? phase(&r, "memory", NULL, customers, counts, ncounts, secs) : 0;
    if (rc == 0 && ph_dur)
        rc = phase(&r, "durable", dir, customers, counts, ncounts, secs);
    const char *only = getenv("TSR_BENCH_TLS");
    static const char *const sets[][2] = {{"tcp", "tcp"}, {"sm", "posix,cma,self,tcp"}};
    for (size_t i = 0; ph_rem && rc == 0 && i < 2; i++)
        if (!only || strcmp(only, sets[i][0]) == 0)
            rc = tsr_bench_txn_remote_phase(&r, sets[i][0], sets[i][1], customers, counts, ncounts,
                                            secs, NULL);
    for (size_t i = 0; ph_rdur && rc == 0 && i < 2; i++)
        if (!only || strcmp(only, sets[i][0]) == 0)
            rc = tsr_bench_txn_remote_phase(&r, sets[i][0], sets[i][1], customers, counts, ncounts,
                                            secs, dir);
#ifdef TSR_HAVE_SCHEDULER
    if (rc == 0 && ph_cluster)
        rc = tsr_bench_txn_cluster_phase(&r, sched, customers, counts, ncounts, secs);
#else
    if (rc == 0 && ph_cluster) {
        tsr_bench_error("txn: the cluster phase needs a build with the cluster library");
        rc = -1;
    }
#endif
    tsr_bench_report_fini(&r);
    return rc ? TSR_BENCH_EXIT_FAIL : TSR_BENCH_EXIT_OK;
}
