/*
 * kv_cluster.c - the "cluster" phase of `tessera-bench kv`: plain puts
 * through a running cluster's scheduler (docs/kv.md "On a cluster",
 * Replication), the path of `tessera kv put` without a process per call.
 *
 * Creates the 2-replica table "bench_kv_puts" (8 partitions, or
 * TSR_BENCH_KV_CLUSTER_PARTS: 1 puts every client on one partition, whose
 * writes the scheduler orders one round at a time; 8-byte keys, 16-byte
 * values) - refusing to run when it exists - and, for each client
 * count, runs that many threads, each with its own connection, putting
 * random keys of 100,000 back to back for the point's time. Each put is
 * acknowledged once durable on every replica (workers with a data dir
 * fdatasync each write). Figures: puts/s and p50/p99 latency per count.
 * Verified at the end: each thread's last value for one key of its own
 * is read back. The table is dropped at the end. Only in builds with the
 * cluster library.
 */
#define _GNU_SOURCE /* suite_kv_internal.h pins with sched_setaffinity */
#ifdef TSR_HAVE_SCHEDULER
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bench.h"
#include "cluster_admin.h"
#include "kv_msg.h"
#include "proto.h"
#include "sched_txn.h"
#include "scheduler.h"
#include "suite_kv_internal.h"

#define KC_TABLE "bench_kv_puts"
#define KC_PARTS 8u /* the default */
#define KC_KEYS 100000u
#define KC_VAL 16u

/* One partition request on key k: PUT of val, or GET (val gets the value). */
static tsr_status_t part_call(tsr_client_t *c, uint32_t parts, uint8_t pop, uint64_t k,
                              uint8_t *val, tsr_error_t *e)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_PART);
    tsr_wbuf_str(&b, KC_TABLE);
    tsr_wbuf_u32(&b, tsr_sched_txn_part_of(&k, 8, parts));
    tsr_wbuf_u8(&b, pop);
    tsr_wbuf_blob(&b, &k, 8);
    if (pop == TSR_KV_POP_PUT)
        tsr_wbuf_blob(&b, val, KC_VAL);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_status_t rc =
        b.failed ? TSR_ERR_NOMEM : tsr_client_call(c, TSR_MSG_KV, b.data, b.len, &rep, &rlen, e);
    if (rc == TSR_OK && pop == TSR_KV_POP_GET) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, rep, rlen);
        size_t n = 0;
        const void *v = tsr_rbuf_blob(&r, &n);
        if (!v || n != KC_VAL)
            rc = tsr_error_set(e, TSR_ERR_INTERNAL, "a get answered %zu bytes", rlen);
        else
            memcpy(val, v, KC_VAL);
    }
    tsr_mem_free(NULL, rep);
    tsr_wbuf_free(&b);
    return rc;
}

typedef struct kc_client {
    tsr_client_t *c;
    unsigned id;
    uint32_t parts; /* the table's */
    double until;
    double *lat; /* seconds per put */
    size_t n, cap;
    uint8_t last[KC_VAL]; /* the last value put on the thread's own key */
    int failed;
    char err[256];
} kc_client_t;

static void *kc_run(void *arg)
{
    kc_client_t *cl = arg;
    uint64_t rng = 0x5eed0000u + cl->id;
    uint64_t own = KC_KEYS + cl->id; /* a key no other thread writes */
    uint8_t val[KC_VAL];
    for (uint64_t i = 0; tsr_bench_now() < cl->until; i++) {
        uint64_t k = i % 16 == 0 ? own : tsr_bench_rand_below(&rng, KC_KEYS);
        snprintf((char *)val, sizeof(val), "%05u:%09" PRIu64, cl->id % 100000u, i % 1000000000u);
        tsr_error_t e;
        tsr_error_clear(&e);
        double t0 = tsr_bench_now();
        if (part_call(cl->c, cl->parts, TSR_KV_POP_PUT, k, val, &e) != TSR_OK) {
            cl->failed = 1;
            snprintf(cl->err, sizeof(cl->err), "%s", e.message);
            break;
        }
        if (cl->n == cl->cap) {
            size_t cap = cl->cap ? 2 * cl->cap : 4096;
            double *l = realloc(cl->lat, cap * sizeof(*l));
            if (!l) {
                cl->failed = 1;
                snprintf(cl->err, sizeof(cl->err), "out of memory");
                break;
            }
            cl->lat = l;
            cl->cap = cap;
        }
        cl->lat[cl->n++] = tsr_bench_now() - t0;
        if (k == own)
            memcpy(cl->last, val, KC_VAL);
    }
    return NULL;
}

/* One client count: n threads for secs; figures and the read-back check. */
static int kc_point(tsr_bench_report_t *r, const char *host, uint16_t port, const char *token,
                    uint32_t parts, unsigned n, double secs)
{
    kc_client_t *cl = calloc(n, sizeof(*cl));
    pthread_t *th = calloc(n, sizeof(*th));
    unsigned opened = 0, started = 0;
    int rc = 0;
    for (; cl && th && opened < n; opened++) {
        tsr_error_t e;
        tsr_error_clear(&e);
        if (tsr_client_connect(host, port, token, 10000, &cl[opened].c, &e) != TSR_OK) {
            tsr_bench_error("kv cluster: %s", e.message);
            break;
        }
    }
    if (!cl || !th || opened < n) {
        rc = -1;
        goto out;
    }
    tsr_bench_progress("kv cluster: %u clients", n);
    double t0 = tsr_bench_now();
    for (; started < n; started++) {
        cl[started].id = started;
        cl[started].parts = parts;
        cl[started].until = t0 + secs;
        if (pthread_create(&th[started], NULL, kc_run, &cl[started]) != 0)
            break;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double el = tsr_bench_now() - t0;
    size_t total = 0;
    for (unsigned i = 0; i < started; i++) {
        total += cl[i].n;
        if (cl[i].failed) {
            tsr_bench_error("kv cluster: a put failed: %s", cl[i].err);
            rc = -1;
        }
    }
    if (started < n || total == 0 || rc != 0) {
        rc = -1;
        goto out;
    }
    double *all = malloc(total * sizeof(*all));
    if (!all) {
        rc = -1;
        goto out;
    }
    size_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + at, cl[i].lat, cl[i].n * sizeof(*all));
        at += cl[i].n;
    }
    qsort(all, total, sizeof(*all), cmp_double);
    char name[64], label[96];
    snprintf(name, sizeof(name), "cluster_puts_per_s_c%u", n);
    snprintf(label, sizeof(label), "cluster puts, %u clients", n);
    rc |= tsr_bench_emit(r, name, label, (double)total / el, "ops/s");
    snprintf(name, sizeof(name), "cluster_put_p50_c%u", n);
    snprintf(label, sizeof(label), "cluster put p50, %u clients", n);
    rc |= tsr_bench_emit(r, name, label, all[total / 2], "s");
    snprintf(name, sizeof(name), "cluster_put_p99_c%u", n);
    snprintf(label, sizeof(label), "cluster put p99, %u clients", n);
    rc |= tsr_bench_emit(r, name, label, all[(size_t)((double)total * 0.99)], "s");
    free(all);
    /* every thread's own key holds the last value it put */
    for (unsigned i = 0; i < n && rc == 0; i++) {
        uint8_t got[KC_VAL];
        tsr_error_t e;
        tsr_error_clear(&e);
        if (cl[i].last[0] == 0)
            continue; /* it never reached its own key */
        if (part_call(cl[i].c, parts, TSR_KV_POP_GET, KC_KEYS + i, got, &e) != TSR_OK ||
            memcmp(got, cl[i].last, KC_VAL) != 0) {
            tsr_bench_error("kv cluster: client %u's key does not hold its last put (%s)", i,
                            e.message[0] ? e.message : "another value");
            rc = -1;
        }
    }
    if (rc == 0)
        tsr_bench_report_note(
            r, "cluster, %u clients: %zu puts in %.2f s on %u partition(s), read back", n, total,
            el, parts);
out:
    for (unsigned i = 0; cl && i < opened; i++) {
        free(cl[i].lat);
        tsr_client_destroy(cl[i].c);
    }
    free(cl);
    free(th);
    return rc;
}

int tsr_bench_kv_cluster_phase(tsr_bench_report_t *r, const char *sched, const int *counts,
                               int ncounts, double secs)
{
    char host[256], token[4096];
    uint16_t port = 0;
    if (!tsr_sched_parse_addr(sched, host, sizeof(host), &port) || port == 0) {
        tsr_bench_error("kv cluster: the scheduler must be HOST:PORT, not '%s'", sched);
        return -1;
    }
    if (!tsr_auth_token_path(NULL, token, sizeof(token))) {
        tsr_bench_error("kv cluster: no cluster token: set TESSERA_TOKEN_FILE");
        return -1;
    }
    uint32_t parts = KC_PARTS;
    const char *pe = getenv("TSR_BENCH_KV_CLUSTER_PARTS");
    if (pe && pe[0]) {
        char *end = NULL;
        unsigned long v = strtoul(pe, &end, 10);
        if (*end || v < 1 || v > TSR_KV_MAX_PARTITIONS) {
            tsr_bench_error("kv cluster: TSR_BENCH_KV_CLUSTER_PARTS must be 1..%u, not '%s'",
                            TSR_KV_MAX_PARTITIONS, pe);
            return -1;
        }
        parts = (uint32_t)v;
    }
    tsr_client_t *c = NULL;
    tsr_error_t e;
    tsr_error_clear(&e);
    if (tsr_client_connect(host, port, token, 10000, &c, &e) != TSR_OK) {
        tsr_bench_error("kv cluster: %s", e.message);
        return -1;
    }
    int rc =
        tsr_bench_cluster_table(c, "kv cluster", TSR_KV_OP_CREATE, KC_TABLE, parts, 2, 8, KC_VAL);
    bool created = rc == 0;
    for (int i = 0; i < ncounts && rc == 0; i++)
        rc = kc_point(r, host, port, token, parts, (unsigned)counts[i], secs);
    tsr_bench_progress_clear();
    if (created &&
        tsr_bench_cluster_table(c, "kv cluster", TSR_KV_OP_DROP, KC_TABLE, 0, 0, 0, 0) != 0)
        rc = -1;
    tsr_client_destroy(c);
    return rc;
}
#endif
