/*
 * txn_cluster.c - the "cluster" phase of `tessera-bench txn`: the same
 * SmallBank mix (suite_txn.c) through a running cluster's scheduler
 * (tsr_txn_db_cluster; docs/kv.md "On a cluster", Transactions).
 *
 * Creates 2-replica tables "savings" and "checking" (8 partitions, 8-byte
 * keys and values) on the cluster - refusing to run when they exist - and
 * fills them with START_BAL per customer in transactions of 250 puts. Each
 * client count runs that many threads, each with its own connection (a
 * cluster db serializes its calls), for the point's time. Verified at the
 * end: the total of all balances (read in one transaction) is the start
 * plus the net deposits of every committed transaction. The tables are
 * dropped at the end. Only in builds with the cluster library.
 */
#ifdef TSR_HAVE_SCHEDULER
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cluster_admin.h"
#include "kv_msg.h"
#include "proto.h"
#include "scheduler.h"
#include "suite_txn_internal.h"

static const char *const tabs[2] = {"savings", "checking"};

typedef struct span {
    uint64_t from, to;
    int64_t total;
} span_t;

static tsr_status_t fn_load(tsr_txn_t *x, void *arg)
{
    const span_t *s = arg;
    int64_t v = START_BAL;
    for (uint64_t c = s->from; c < s->to; c++)
        for (int t = 0; t < 2; t++)
            TRY(tsr_txn_put(x, tabs[t], &c, 8, &v, 8, NULL, NULL));
    return TSR_OK;
}

static tsr_status_t fn_total(tsr_txn_t *x, void *arg)
{
    span_t *s = arg;
    s->total = 0;
    for (uint64_t c = s->from; c < s->to; c++)
        for (int t = 0; t < 2; t++) {
            int64_t v = 0;
            TRY(tsr_bench_txn_bal_get(x, tabs[t], c, &v));
            s->total += v;
        }
    return TSR_OK;
}

int tsr_bench_txn_cluster_phase(tsr_bench_report_t *r, const char *sched, uint64_t customers,
                                const unsigned *counts, int ncounts, double secs)
{
    char host[256];
    uint16_t port = 0;
    if (!tsr_sched_parse_addr(sched, host, sizeof(host), &port) || port == 0) {
        tsr_bench_error("txn cluster: the scheduler must be HOST:PORT, not '%s'", sched);
        return -1;
    }
    tsr_client_t *c = NULL;
    tsr_txn_db_t *db = NULL;
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_txn_err_t xe = {0};
    tsr_txn_cluster_params_t cp = {.scheduler = sched};
    int rc = 0, created = 0;
    char token[4096];
    if (!tsr_auth_token_path(NULL, token, sizeof(token))) {
        tsr_bench_error("txn cluster: no cluster token: set TESSERA_TOKEN_FILE");
        return -1;
    }
    if (tsr_client_connect(host, port, token, 10000, &c, &e) != TSR_OK) {
        tsr_bench_error("txn cluster: %s", e.message);
        return -1;
    }
    for (; created < 2 && rc == 0; created++)
        rc = tsr_bench_cluster_table(c, "txn cluster", TSR_KV_OP_CREATE, tabs[created], 8, 0, 8, 8);
    if (rc != 0) {
        created--; /* the failed one was not created */
        goto out;
    }
    if (tsr_txn_db_cluster(&cp, &db, &xe) != TSR_OK) {
        tsr_bench_error("txn cluster: %s", xe.message);
        rc = -1;
        goto out;
    }
    tsr_bench_progress("txn cluster: loading %" PRIu64 " customers", customers);
    for (uint64_t from = 0; from < customers && rc == 0; from += 250) {
        span_t s = {from, from + 250 < customers ? from + 250 : customers, 0};
        if (tsr_txn_run(db, fn_load, &s, NULL, NULL, &xe) != TSR_OK) {
            tsr_bench_error("txn cluster: loading: %s", xe.message);
            rc = -1;
        }
    }
    int64_t delta = 0;
    for (int ci = 0; ci < ncounts && rc == 0; ci++) {
        unsigned n = counts[ci];
        client_t *cl = calloc(n, sizeof(*cl));
        pthread_t *th = calloc(n, sizeof(*th));
        unsigned opened = 0, started = 0;
        for (; cl && th && opened < n; opened++)
            if (tsr_txn_db_cluster(&cp, &cl[opened].db, &xe) != TSR_OK)
                break;
        if (!cl || !th || opened < n) {
            tsr_bench_error("txn cluster: %s", xe.message[0] ? xe.message : "out of memory");
            rc = -1;
            goto next;
        }
        tsr_bench_progress("txn cluster: %u clients", n);
        double el, cpu;
        started = tsr_bench_txn_clients_run(cl, th, n, customers, 7000, secs, &el, &cpu);
        uint64_t commits = 0, conflicts = 0;
        for (unsigned i = 0; i < started; i++) {
            delta += cl[i].delta;
            tsr_txn_stats_t st;
            tsr_txn_db_stats(cl[i].db, &st);
            commits += st.commits;
            conflicts += st.conflicts;
            if (cl[i].failed) {
                tsr_bench_error("txn cluster: a transaction failed: %s",
                                tsr_status_str((tsr_status_t)cl[i].failed));
                rc = -1;
            }
        }
        size_t total_n = 0;
        double *all = started == n ? tsr_bench_txn_gather(cl, n, &total_n) : NULL;
        if (!all) {
            rc = -1;
            goto next;
        }
        rc |= tsr_bench_txn_emit_point(r, "cluster", n, total_n, all, el, cpu, commits, conflicts);
        tsr_bench_report_note(r,
                              "cluster, %u clients: %.2f s wall, %.2f s CPU of this process "
                              "(the scheduler and workers are other processes)",
                              n, el, cpu);
        free(all);
    next:
        for (unsigned i = 0; cl && i < opened; i++) {
            free(cl[i].lat);
            tsr_txn_db_close(cl[i].db);
        }
        free(cl);
        free(th);
    }
    if (rc == 0) {
        span_t s = {0, customers, 0};
        tsr_txn_run_opts_t ro = {.max_attempts = 64};
        int64_t want = 2 * (int64_t)customers * START_BAL + delta;
        if (tsr_txn_run(db, fn_total, &s, &ro, NULL, &xe) != TSR_OK) {
            tsr_bench_error("txn cluster: reading the balances: %s", xe.message);
            rc = -1;
        } else if (s.total != want) {
            tsr_bench_error("txn cluster: balances total %" PRId64 ", expected %" PRId64, s.total,
                            want);
            rc = -1;
        } else {
            tsr_bench_report_note(r, "cluster: verified total %" PRId64, s.total);
        }
    }
out:
    tsr_bench_progress_clear();
    tsr_txn_db_close(db);
    for (int t = 0; t < created; t++)
        tsr_bench_cluster_table(c, "txn cluster", TSR_KV_OP_DROP, tabs[t], 0, 0, 0, 0);
    tsr_client_destroy(c);
    return rc;
}

#else
typedef int tsr_bench_txn_cluster_none; /* ISO C: no empty translation unit */
#endif /* TSR_HAVE_SCHEDULER */
