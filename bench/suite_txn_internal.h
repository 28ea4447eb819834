/*
 * suite_txn_internal.h - what the two halves of `tessera-bench txn` share:
 * suite_txn.c (the SmallBank mix, the embedded phases, the driver) and
 * suite_txn_remote.c (the owner process and the remote phases).
 *
 * Tables "savings" and "checking", 8-byte customer keys, 8-byte balances,
 * START_BAL each at load: the verification (total = start + committed net
 * deposits) relies on both halves loading and running the same mix.
 * Not a public header: only bench/suite_txn*.c include it.
 */
#ifndef TSR_BENCH_SUITE_TXN_INTERNAL_H
#define TSR_BENCH_SUITE_TXN_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "tessera/kv.h"
#include "tessera/txn.h"

#define HOT 10
#define START_BAL 10000

/* One client of the mix: its db handle, its own random state, and what it
 * measured (latencies of committed transactions, their net deposits). */
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

/* Returns the status of e from the enclosing function unless it is TSR_OK. */
#define TRY(e)                                                                                     \
    do {                                                                                           \
        tsr_status_t rc_ = (e);                                                                    \
        if (rc_ != TSR_OK)                                                                         \
            return rc_;                                                                            \
    } while (0)

/* Reads customer c's balance in table tab within x. */
tsr_status_t tsr_bench_txn_bal_get(tsr_txn_t *x, const char *tab, uint64_t c, int64_t *v);

/* A client thread (or process body): runs the mix on c->db until c->until. */
void *tsr_bench_txn_client_run(void *p);

/* Runs n client threads on cl[i].db (set by the caller; the rest of cl[i] is reset) for secs
 * seconds, seeds seed0 + i, and joins them. Returns how many started; *el and *cpu get the
 * wall and this process's CPU seconds. */
unsigned tsr_bench_txn_clients_run(client_t *cl, pthread_t *th, unsigned n, uint64_t customers,
                                   uint64_t seed0, double secs, double *el, double *cpu);

/* Creates and fills "savings" and "checking" with customers at START_BAL. */
tsr_status_t tsr_bench_txn_load(tsr_kv_store_t *s, uint64_t customers);

/* Emits one client count's figures (latencies in all[0..total_n), sorted). */
int tsr_bench_txn_emit_point(tsr_bench_report_t *r, const char *what, unsigned n, size_t total_n,
                             const double *all, double el, double cpu, uint64_t commits,
                             uint64_t conflicts);

/* All clients' latencies in one sorted array (NULL when out of memory). */
double *tsr_bench_txn_gather(const client_t *cl, unsigned n, size_t *total);

/* suite_txn_remote.c: the owner process (TSR_BENCH_TXN_SERVER=<tls>). */
int tsr_bench_txn_run_server(const char *tls);

/* suite_txn_remote.c: one remote phase: an owner (its store in memory, or in
 * dir when non-NULL: durable) and counts[] clients over the UCX set tls
 * (named name in the figures), secs per point; verifies the owner's total
 * at the last point and stops the owner. Returns 0 or -1 (reported). */
int tsr_bench_txn_remote_phase(tsr_bench_report_t *r, const char *name, const char *tls,
                               uint64_t customers, const unsigned *counts, int ncounts, double secs,
                               const char *dir);

/* txn_cluster.c (builds with the cluster library): the mix through the
 * cluster whose scheduler is at sched (token: $TESSERA_TOKEN_FILE, else the
 * default), on tables it creates and drops. Returns 0 or -1 (reported). */
int tsr_bench_txn_cluster_phase(tsr_bench_report_t *r, const char *sched, uint64_t customers,
                                const unsigned *counts, int ncounts, double secs);

#endif
