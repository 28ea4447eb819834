/*
 * suite_kv_internal.h - what the two halves of `tessera-bench kv` share:
 * suite_kv.c (local rates, the owner process, the one-sided get latency,
 * the driver) and suite_kv_clients.c (the client-processes phase).
 *
 * The owner holds table "r" (8-byte keys) and table "b" (the Redis peer's
 * 16-byte keys "key:%012u"), K_REMOTE_KEYS each, values remote_val(k) of
 * K_VAL bytes: both halves must agree on that shape to check every value.
 * Not a public header: only bench/suite_kv*.c include it.
 */
#ifndef TSR_BENCH_SUITE_KV_INTERNAL_H
#define TSR_BENCH_SUITE_KV_INTERNAL_H

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

#define K_RAWKEY 2 /* owner RPC: the packed raw region (latency phase) */
#define K_DONE 3   /* owner RPC: stop */
#define K_REMOTE_KEYS 100000u
#define K_VAL 64u
#define K_RAW_BYTES (32u << 20) /* about the table's region: same cache and TLB reach */
#define K_BKEY 16u              /* "key:%012u" */
#define K_SAMPLES 8192u         /* latency samples kept per client process */
#define K_MAX_CLIENTS 64

static inline void pin_to(int cpu)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % n, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static inline void remote_val(uint64_t k, unsigned char *v)
{
    for (unsigned i = 0; i < K_VAL; i++)
        v[i] = (unsigned char)(k * 131 + i);
}

/* The Redis peer's key for k: what redis-benchmark -r makes of
 * "key:__rand_int__" (12 digits, zero-padded). */
static inline void bkey(uint64_t k, char key[K_BKEY + 1])
{
    snprintf(key, K_BKEY + 1, "key:%012llu", (unsigned long long)k);
}

static inline int emit(tsr_bench_report_t *r, const char *name, const char *label, double v,
                       const char *unit, const char *peer, double pv, bool time_unit)
{
    tsr_bench_figure_t f = {name, label, v, unit, peer, pv, 0};
    if (peer && pv > 0 && v > 0)
        f.ratio = time_unit ? pv / v : v / pv;
    return tsr_bench_report_emit(r, &f);
}

/* suite_kv_clients.c: the client counts from TSR_BENCH_KV_CLIENTS ("1,2,4,
 * 8,16,32" by default), capped at cap (--threads) when non-zero; returns how
 * many went to out[16], -1 when the variable is malformed. */
int tsr_bench_kv_client_counts(unsigned cap, int *out);

/* suite_kv_clients.c: gets and puts by counts[] client processes against
 * one owner process over the UCX set tls (named name in the figures), each
 * point seconds long. This process must not have used UCX (it forks).
 * Returns 0, or 1 after reporting a failure. */
int tsr_bench_kv_clients_phase(tsr_bench_report_t *r, const char *name, const char *tls,
                               const int *counts, int ncounts, double seconds);

/* kv_cluster.c (builds with the cluster library): plain puts through the
 * scheduler at sched (HOST:PORT) by counts[] client threads, secs each. */
int tsr_bench_kv_cluster_phase(tsr_bench_report_t *r, const char *sched, const int *counts,
                               int ncounts, double secs);

#endif
