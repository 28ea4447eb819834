/*
 * suite_kv.c - `tessera-bench kv`: the kv store's local operation rates and
 * its one-sided remote get latency (docs/kv.md).
 *
 * Local (one thread, an in-memory store, 8-byte keys and values, one table
 * of 4 partitions sized by growth from empty):
 *   insert_rate       single inserts of N distinct keys (ops/s)
 *   get_rate          single gets of random present keys (ops/s)
 *   batch_insert_rate tsr_kv_insert_batch of 8,192 pairs at a time (ops/s)
 *   batch_get_rate    tsr_kv_get_batch of 8,192 keys at a time (ops/s)
 *   hot_get_rate      single gets on a table of 4,096 keys (cache resident:
 *                     what the code costs without a DRAM miss per get)
 * These are in-memory rates (no data dir: nothing is logged); a note gives
 * each phase's rate per CPU second too, the figure to compare on a shared
 * machine. Gets take the keys in a fixed stride order of the (random) key
 * array, so the only random memory access per get is the store's own.
 *   durable_insert_rate  inserts into a store in a temporary data dir with
 *                     fdatasync group commit, 4 writer threads (ops/s): a
 *                     write returns once durable, so this is bounded by
 *                     writers / fdatasync latency, not by the table
 *
 * Remote (per UCX transport set, tcp and sm = posix+cma; TSR_BENCH_TLS picks
 * one): the suite re-executes itself as an owner process (env
 * TSR_BENCH_KV_SERVER=<tls>, CPU 1) holding a table of 100,000 keys with
 * 64-byte values, allocated through the transport (UCX memory: shared-memory
 * peers map it and read it with loads; TSR_BENCH_KV_HEAP=1: heap memory,
 * which shared-memory peers read with one process_vm_readv per get); a reader (CPU 0) measures
 * blocking tsr_kv_remote_get of random present keys, p50 and p99 (us), and, as the peer, blocking
 * raw tsr_rma_get of the same number of bytes the kv get reads per RMA (its probe window) at random
 * offsets of a region of the same owner allocated the same way, of about the table's size (32 MiB):
 * the ratio says what the version check, the hashing and the probing cost over the wire's own round
 * trip.
 *
 * Client processes (phase "clients": gets and puts by 1..32 client
 * processes against one owner, the Redis peer's shape): suite_kv_clients.c,
 * which documents its figures and TSR_BENCH_KV_CLIENTS, TSR_BENCH_KV_MS,
 * TSR_BENCH_KV_CLIENT_SPIN. bench/peers/kv_peers.sh runs it next to Redis.
 *
 * Device batches (--device opencl; phase "device"; docs/kv.md "Device
 * batches"): the same keys as batch inserts, upserts of present keys (in
 * place) and gets in calls of TSR_BENCH_KV_DEV_BATCH pairs (default 65,536:
 * 16,384 per partition, past the 4,096 threshold), on a store with the
 * device and on a CPU store, tables sized up front (capacity: no growth):
 *   dev_batch_insert_rate, dev_batch_upsert_rate, dev_batch_get_rate and
 *   cpu_batch_*_rate (Mpairs/s wall; a note gives them per CPU second, PoCL's
 *   threads included: getrusage of the process).
 *
 * TSR_BENCH_KV_ONLY: a comma list of phases (local, durable, clients,
 * latency, device, cluster); all but cluster by default (cluster: plain
 * puts through a running cluster's scheduler, --scheduler HOST:PORT;
 * kv_cluster.c). --rows N sets the local keys (default 1M) and the remote
 * samples (N/50, at least 2,000). Every get is checked (value bytes); exit
 * 1 on a mismatch.
 */
#define _GNU_SOURCE
#include <pthread.h>
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

/* ---- local ----------------------------------------------------------------------- */

typedef struct dur_arg {
    tsr_kv_table_t *t;
    uint64_t base, n;
    int failed;
} dur_arg_t;

static void *dur_writer(void *p)
{
    dur_arg_t *a = p;
    for (uint64_t i = 0; i < a->n; i++) {
        uint64_t k = a->base + i;
        if (tsr_kv_insert(a->t, &k, 8, &k, 8, NULL, NULL) != TSR_OK)
            a->failed = 1;
    }
    return NULL;
}

static int durable_rate(tsr_bench_report_t *r, uint64_t n)
{
    char dir[] = "/tmp/tsr_bench_kv_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    tsr_kv_options_t o = {.data_dir = dir, .sync = TSR_KV_SYNC_FSYNC};
    tsr_kv_store_t *s = NULL;
    tsr_kv_table_t *t = NULL;
    int rc = 1;
    if (tsr_kv_open(&o, &s, NULL) != TSR_OK || tsr_kv_table_create(s, "d", NULL, NULL) != TSR_OK ||
        tsr_kv_table_open(s, "d", &t, NULL) != TSR_OK)
        goto out;
    pthread_t th[4];
    dur_arg_t a[4];
    double t0 = tsr_bench_now(), c0 = tsr_bench_cpu_now();
    for (int i = 0; i < 4; i++) {
        a[i] = (dur_arg_t){t, (uint64_t)i << 40, n / 4, 0};
        pthread_create(&th[i], NULL, dur_writer, &a[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double el = tsr_bench_now() - t0, cpu = tsr_bench_cpu_now() - c0;
    rc = a[0].failed | a[1].failed | a[2].failed | a[3].failed;
    emit(r, "durable_insert_rate", "durable inserts (fdatasync, 4 threads)",
         (double)(n / 4 * 4) / el, "ops/s", NULL, 0, false);
    tsr_bench_report_note(r, "durable inserts: %.3f s wall, %.3f s CPU", el, cpu);
out:
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir); /* our own mkdtemp dir */
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}

static int local_rates(tsr_bench_report_t *r, uint64_t n)
{
    tsr_kv_store_t *s = NULL;
    tsr_kv_table_t *t = NULL, *tb = NULL;
    uint64_t *keys = malloc(n * sizeof(*keys));
    tsr_kv_pair_t *pr = malloc(8192 * sizeof(*pr));
    uint64_t *out = malloc(8192 * sizeof(*out));
    size_t *vls = malloc(8192 * sizeof(*vls));
    int rc = 1;
    tsr_kv_table_params_t p = {.partitions = 4, .max_key = 8, .max_value = 8};
    if (!keys || !pr || !out || !vls || tsr_kv_open(NULL, &s, NULL) != TSR_OK ||
        tsr_kv_table_create(s, "a", &p, NULL) != TSR_OK ||
        tsr_kv_table_create(s, "b", &p, NULL) != TSR_OK ||
        tsr_kv_table_open(s, "a", &t, NULL) != TSR_OK ||
        tsr_kv_table_open(s, "b", &tb, NULL) != TSR_OK)
        goto out;
    uint64_t st = 42;
    for (uint64_t i = 0; i < n; i++)
        keys[i] = tsr_bench_rand(&st);
    double w0 = tsr_bench_now(), c0 = tsr_bench_cpu_now();
    double t0 = tsr_bench_now(), u0 = tsr_bench_cpu_now();
    double cpu[4] = {0, 0, 0, 0}; /* per phase: CPU seconds (the machine may be shared) */
    for (uint64_t i = 0; i < n; i++)
        if (tsr_kv_insert(t, &keys[i], 8, &keys[i], 8, NULL, NULL) != TSR_OK)
            goto out;
    double ins = tsr_bench_now() - t0;
    cpu[0] = tsr_bench_cpu_now() - u0;
    t0 = tsr_bench_now();
    u0 = tsr_bench_cpu_now();
    for (uint64_t i = 0; i < n; i++) {
        /* keys[] in order: the keys are random, so the slots are; a random
         * index into the 8 MB key array would add a second cache miss per
         * get that is the benchmark's, not the store's */
        uint64_t k = keys[(i * 7919) % n], v = 0;
        size_t vl;
        if (tsr_kv_get(t, &k, 8, &v, 8, &vl, NULL) != TSR_OK || v != k)
            goto out;
    }
    double get = tsr_bench_now() - t0;
    cpu[1] = tsr_bench_cpu_now() - u0;
    double bins = 0, bget = 0;
    for (uint64_t b = 0; b < n; b += 8192) {
        size_t m = n - b < 8192 ? (size_t)(n - b) : 8192;
        for (size_t i = 0; i < m; i++)
            pr[i] = (tsr_kv_pair_t){&keys[b + i], 8, &keys[b + i], 8};
        size_t nok = 0;
        t0 = tsr_bench_now();
        u0 = tsr_bench_cpu_now();
        if (tsr_kv_insert_batch(tb, pr, m, NULL, NULL, &nok, NULL) != TSR_OK || nok != m)
            goto out;
        bins += tsr_bench_now() - t0;
        cpu[2] += tsr_bench_cpu_now() - u0;
    }
    for (uint64_t b = 0; b < n; b += 8192) {
        size_t m = n - b < 8192 ? (size_t)(n - b) : 8192;
        for (size_t i = 0; i < m; i++) {
            uint64_t *k = &keys[(b + i * 7919) % n];
            pr[i] = (tsr_kv_pair_t){k, 8, NULL, 0};
        }
        size_t nok = 0;
        t0 = tsr_bench_now();
        u0 = tsr_bench_cpu_now();
        if (tsr_kv_get_batch(tb, pr, m, out, 8, vls, NULL, &nok, NULL) != TSR_OK || nok != m)
            goto out;
        bget += tsr_bench_now() - t0;
        cpu[3] += tsr_bench_cpu_now() - u0;
        for (size_t i = 0; i < m; i++)
            if (out[i] != *(const uint64_t *)pr[i].key)
                goto out;
    }
    /* hot: the same gets on a table of 4,096 keys (about 1 MiB of slots,
     * cache resident): what the code costs when a get is not a DRAM miss */
    tsr_kv_table_t *tc = NULL;
    if (tsr_kv_table_create(s, "c", &p, NULL) != TSR_OK ||
        tsr_kv_table_open(s, "c", &tc, NULL) != TSR_OK)
        goto out;
    uint64_t nh = n < 4096 ? n : 4096;
    for (uint64_t i = 0; i < nh; i++)
        if (tsr_kv_insert(tc, &keys[i], 8, &keys[i], 8, NULL, NULL) != TSR_OK)
            goto out_c;
    t0 = tsr_bench_now();
    u0 = tsr_bench_cpu_now();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = keys[(i * 7919) % nh], v = 0;
        size_t vl;
        if (tsr_kv_get(tc, &k, 8, &v, 8, &vl, NULL) != TSR_OK || v != k)
            goto out_c;
    }
    double hget = tsr_bench_now() - t0, hcpu = tsr_bench_cpu_now() - u0;
    tsr_kv_table_close(tc);
    tc = NULL;
    emit(r, "insert_rate", "local inserts (1 thread)", (double)n / ins, "ops/s", NULL, 0, false);
    emit(r, "get_rate", "local gets (1 thread)", (double)n / get, "ops/s", NULL, 0, false);
    emit(r, "batch_insert_rate", "batch inserts (8192 per call)", (double)n / bins, "ops/s", NULL,
         0, false);
    emit(r, "batch_get_rate", "batch gets (8192 per call)", (double)n / bget, "ops/s", NULL, 0,
         false);
    emit(r, "hot_get_rate", "gets, 4,096 keys (cache resident)", (double)n / hget, "ops/s", NULL, 0,
         false);
    tsr_bench_report_note(r, "local phases: %.3f s wall, %.3f s CPU (the rates are wall-clock)",
                          tsr_bench_now() - w0, tsr_bench_cpu_now() - c0);
    tsr_bench_report_note(
        r,
        "per CPU second (in memory, no log): insert %.2f M/s, get %.2f M/s, "
        "batch insert %.2f M/s, batch get %.2f M/s",
        cpu[0] > 0 ? (double)n / cpu[0] / 1e6 : 0, cpu[1] > 0 ? (double)n / cpu[1] / 1e6 : 0,
        cpu[2] > 0 ? (double)n / cpu[2] / 1e6 : 0, cpu[3] > 0 ? (double)n / cpu[3] / 1e6 : 0);
    tsr_bench_report_note(r, "hot gets: %.2f M/s per CPU second", hcpu > 0 ? n / hcpu / 1e6 : 0);
    rc = 0;
out_c:
    tsr_kv_table_close(tc);
out:
    if (rc)
        tsr_bench_error("kv: a local operation failed or returned a wrong value");
    tsr_kv_table_close(t);
    tsr_kv_table_close(tb);
    tsr_kv_close(s);
    free(keys);
    free(pr);
    free(out);
    free(vls);
    return rc;
}

/* ---- device batches ---------------------------------------------------------------- */

/* One store's batch rates: insert, upsert (present keys), get; wall and CPU
 * seconds into w[3], c[3]. */
static int dev_phase_store(const char *device, uint64_t n, size_t bs, const uint64_t *keys,
                           double *w, double *c, tsr_kv_device_stats_t *ds)
{
    tsr_kv_options_t o = {.device = device};
    tsr_kv_store_t *s = NULL;
    tsr_kv_table_t *t = NULL;
    tsr_kv_pair_t *pr = malloc(bs * sizeof(*pr));
    uint64_t *out = malloc(bs * sizeof(*out)), *nv = malloc(bs * sizeof(*nv));
    size_t *vls = malloc(bs * sizeof(*vls));
    tsr_kv_table_params_t p = {.partitions = 4, .max_key = 8, .max_value = 8, .capacity = n};
    tsr_kv_err_t e = {0};
    int rc = 1;
    if (!pr || !out || !nv || !vls || tsr_kv_open(&o, &s, &e) != TSR_OK ||
        tsr_kv_table_create(s, "d", &p, &e) != TSR_OK ||
        tsr_kv_table_open(s, "d", &t, &e) != TSR_OK) {
        tsr_bench_error("kv device phase (%s): %s", device ? device : "cpu", e.message);
        goto out;
    }
    for (int ph = 0; ph < 3; ph++) {
        w[ph] = c[ph] = 0;
        for (uint64_t b = 0; b < n; b += bs) {
            size_t m = n - b < bs ? (size_t)(n - b) : bs;
            for (size_t i = 0; i < m; i++) {
                const uint64_t *k = ph == 2 ? &keys[(b + i * 7919) % n] : &keys[b + i];
                nv[i] = ~*k;
                pr[i] = (tsr_kv_pair_t){k, 8, ph == 0 ? (const void *)k : &nv[i], 8};
            }
            size_t nok = 0;
            double t0 = tsr_bench_now(), u0 = tsr_bench_cpu_now();
            tsr_status_t st = ph == 0   ? tsr_kv_insert_batch(t, pr, m, NULL, NULL, &nok, &e)
                              : ph == 1 ? tsr_kv_upsert_batch(t, pr, m, NULL, NULL, &nok, &e)
                                        : tsr_kv_get_batch(t, pr, m, out, 8, vls, NULL, &nok, &e);
            w[ph] += tsr_bench_now() - t0;
            c[ph] += tsr_bench_cpu_now() - u0;
            if (st != TSR_OK || nok != m)
                goto out;
            for (size_t i = 0; ph == 2 && i < m; i++)
                if (out[i] != ~*(const uint64_t *)pr[i].key)
                    goto out;
        }
    }
    tsr_kv_device_stats(s, ds);
    rc = 0;
out:
    if (rc)
        tsr_bench_error("kv device phase (%s): a batch failed or returned a wrong value",
                        device ? device : "cpu");
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    free(pr);
    free(out);
    free(nv);
    free(vls);
    return rc;
}

static int device_rates(tsr_bench_report_t *r, uint64_t n, const char *device)
{
    const char *bsv = getenv("TSR_BENCH_KV_DEV_BATCH");
    size_t bs = bsv && atol(bsv) > 0 ? (size_t)atol(bsv) : 65536;
    uint64_t *keys = malloc(n * sizeof(*keys));
    if (!keys)
        return 1;
    uint64_t st = 43;
    for (uint64_t i = 0; i < n; i++)
        keys[i] = tsr_bench_rand(&st);
    double wd[3], cd[3], wc[3], cc[3];
    tsr_kv_device_stats_t ds, dc;
    int rc = dev_phase_store(device, n, bs, keys, wd, cd, &ds);
    if (rc == 0)
        rc = dev_phase_store(NULL, n, bs, keys, wc, cc, &dc);
    free(keys);
    if (rc)
        return rc;
    if (!ds.active || ds.pairs == 0) {
        tsr_bench_error("kv: device batches did not run on %s: %s", device, ds.note);
        return 1;
    }
    static const char *const what[3] = {"insert", "upsert", "get"};
    for (int i = 0; i < 3; i++) {
        char name[64], label[96];
        snprintf(name, sizeof(name), "dev_batch_%s_rate", what[i]);
        snprintf(label, sizeof(label), "device batch %ss (%zu per call)", what[i], bs);
        emit(r, name, label, wd[i] > 0 ? (double)n / wd[i] : 0, "ops/s", NULL, 0, false);
        snprintf(name, sizeof(name), "cpu_batch_%s_rate", what[i]);
        snprintf(label, sizeof(label), "CPU batch %ss (%zu per call)", what[i], bs);
        emit(r, name, label, wc[i] > 0 ? (double)n / wc[i] : 0, "ops/s", NULL, 0, false);
    }
    tsr_bench_report_note(r,
                          "device batches on %s: per CPU second insert %.2f / upsert %.2f / get "
                          "%.2f M/s; CPU path %.2f / %.2f / %.2f M/s; %llu get retries",
                          ds.device, n / cd[0] / 1e6, n / cd[1] / 1e6, n / cd[2] / 1e6,
                          n / cc[0] / 1e6, n / cc[1] / 1e6, n / cc[2] / 1e6,
                          (unsigned long long)ds.get_retries);
    return 0;
}

/* ---- the owner process ----------------------------------------------------------- */

typedef struct kserver {
    tsr_transport_t *t;
    tsr_region_t *raw;
    void *raw_mem; /* TSR_BENCH_KV_HEAP: heap memory, registered like the table's */
    bool done;
} kserver_t;

static void s_rawkey(void *arg, tsr_rpc_req_t *req)
{
    kserver_t *s = arg;
    void *buf = NULL;
    size_t len = 0;
    tsr_status_t rc = tsr_region_pack(s->t, s->raw, &buf, &len, NULL);
    (void)tsr_rpc_reply(s->t, req, rc, buf, rc == TSR_OK ? len : 0);
    tsr_mem_free(NULL, buf);
}

static void s_done(void *arg, tsr_rpc_req_t *req)
{
    kserver_t *s = arg;
    s->done = true;
    (void)tsr_rpc_reply(s->t, req, TSR_OK, NULL, 0);
}

static int run_server(const char *tls, bool heap)
{
    pin_to(1);
    alarm(600);
    kserver_t s = {0};
    tsr_error_t err;
    tsr_error_clear(&err);
    /* TSR_BENCH_KV_SPIN: the clients phase lets the owner sleep after 100 us
     * like any server (a one-sided get over shared memory needs no owner CPU,
     * and a spinning owner would take a core from the clients) */
    const char *spin = getenv("TSR_BENCH_KV_SPIN");
    tsr_transport_params_t p = {.node_id = 1,
                                .listen_host = "127.0.0.1",
                                .tls = tls,
                                .spin_us = spin ? (unsigned)atoi(spin) : 2000000};
    tsr_kv_store_t *st = NULL;
    tsr_kv_server_t *srv = NULL;
    tsr_txn_server_t *ts = NULL;
    tsr_kv_table_t *t = NULL, *tb = NULL;
    int rc = 1;
    if (tsr_transport_create(NULL, &p, &s.t, &err) != TSR_OK)
        goto out;
    /* like the table's region: UCX memory when heap is false */
    if (heap) {
        s.raw_mem = tsr_mem_alloc_aligned(NULL, K_RAW_BYTES);
        if (!s.raw_mem)
            goto out;
        memset(s.raw_mem, 0x5a, K_RAW_BYTES);
    }
    if (tsr_region_register(s.t, s.raw_mem, K_RAW_BYTES, &s.raw, &err) != TSR_OK)
        goto out;
    tsr_kv_table_params_t tp = {
        .partitions = 1, .max_key = 8, .max_value = K_VAL, .capacity = K_REMOTE_KEYS};
    tsr_kv_options_t ko = {.transport = heap ? NULL : s.t};
    if (tsr_kv_open(&ko, &st, NULL) != TSR_OK ||
        tsr_kv_table_create(st, "r", &tp, NULL) != TSR_OK ||
        tsr_kv_table_open(st, "r", &t, NULL) != TSR_OK)
        goto out;
    unsigned char v[K_VAL];
    for (uint64_t k = 0; k < K_REMOTE_KEYS; k++) {
        remote_val(k, v);
        if (tsr_kv_insert(t, &k, 8, v, K_VAL, NULL, NULL) != TSR_OK)
            goto out;
    }
    /* table "b": the Redis peer's keys ("key:%012u", 16 bytes), same values */
    tsr_kv_table_params_t bp = {
        .partitions = 1, .max_key = K_BKEY, .max_value = K_VAL, .capacity = K_REMOTE_KEYS};
    if (tsr_kv_table_create(st, "b", &bp, NULL) != TSR_OK ||
        tsr_kv_table_open(st, "b", &tb, NULL) != TSR_OK)
        goto out;
    for (uint64_t k = 0; k < K_REMOTE_KEYS; k++) {
        char key[K_BKEY + 1];
        bkey(k, key);
        remote_val(k, v);
        if (tsr_kv_insert(tb, key, K_BKEY, v, K_VAL, NULL, NULL) != TSR_OK)
            goto out;
    }
    /* remote puts are one-write transactions: the txn server commits them
     * in its handler (the store has no log: in memory, like Redis without
     * persistence) */
    if (tsr_kv_server_start(st, s.t, 0, &srv, NULL) != TSR_OK ||
        tsr_txn_server_start(st, s.t, 0, &ts, NULL) != TSR_OK)
        goto out;
    tsr_rpc_register(s.t, K_RAWKEY, s_rawkey, &s, NULL);
    tsr_rpc_register(s.t, K_DONE, s_done, &s, NULL);
    printf("%u\n", (unsigned)tsr_transport_port(s.t));
    fflush(stdout);
    while (!s.done)
        tsr_transport_wait(s.t, 100);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "tessera: error: kv owner: %s\n", err.message);
    tsr_txn_server_stop(ts);
    tsr_kv_server_stop(srv);
    tsr_kv_table_close(t);
    tsr_kv_table_close(tb);
    tsr_kv_close(st);
    if (s.raw)
        tsr_region_unregister(s.t, s.raw);
    tsr_transport_destroy(s.t);
    tsr_mem_free(NULL, s.raw_mem);
    return rc;
}

/* ---- the reader -------------------------------------------------------------------- */

static int remote_latency(tsr_bench_report_t *r, const char *name, const char *tls, size_t n)
{
    uint16_t port = 0;
    pid_t pid = tsr_bench_spawn_server("kv", "TSR_BENCH_KV_SERVER", tls, &port);
    if (pid < 0) {
        tsr_bench_error("kv %s: the owner did not start", name);
        return 1;
    }
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t p = {.node_id = 2, .tls = tls, .spin_us = 2000000};
    tsr_transport_t *t = NULL;
    tsr_peer_t *peer = NULL;
    tsr_kv_remote_t *kr = NULL;
    tsr_rkey_t *raw = NULL;
    tsr_rpc_msg_t reply = {0};
    double *lat = malloc(n * sizeof(double)), *rawlat = malloc(n * sizeof(double));
    int rc = 1;
    if (!lat || !rawlat || tsr_transport_create(NULL, &p, &t, &err) != TSR_OK ||
        tsr_transport_connect(t, "127.0.0.1", port, 10000, &peer, &err) != TSR_OK ||
        tsr_kv_remote_open(t, peer, "r", 0, 10000, &kr, NULL) != TSR_OK ||
        tsr_rpc_call(t, peer, K_RAWKEY, NULL, 0, 10000, &reply, &err) != TSR_OK ||
        tsr_rkey_unpack(t, peer, reply.data, reply.len, &raw, &err) != TSR_OK)
        goto out;
    uint64_t st = 7;
    unsigned char v[K_VAL], want[K_VAL], buf[4096];
    tsr_kv_remote_stats_t s0, s1;
    for (size_t i = 0; i < 2000 + n; i++) {
        uint64_t k = tsr_bench_rand_below(&st, K_REMOTE_KEYS);
        size_t vl = 0;
        if (i == 2000)
            tsr_kv_remote_get_stats(kr, &s0);
        double t0 = tsr_bench_now();
        if (tsr_kv_remote_get(kr, &k, 8, v, sizeof(v), &vl, NULL) != TSR_OK)
            goto out;
        if (i >= 2000)
            lat[i - 2000] = (tsr_bench_now() - t0) * 1e6;
        remote_val(k, want);
        if (vl != K_VAL || memcmp(v, want, K_VAL) != 0) {
            tsr_bench_error("kv %s: key %llu: wrong value", name, (unsigned long long)k);
            goto out;
        }
    }
    tsr_kv_remote_get_stats(kr, &s1);
    double reads = (double)(s1.rma_reads - s0.rma_reads) / (double)n;
    /* the bytes one kv get reads per RMA: its window of up to 4 slots */
    size_t slot = (40 + 8 + K_VAL + 7) & ~(size_t)7, win = 4 * slot;
    for (size_t i = 0; i < 2000 + n; i++) {
        uint64_t off = tsr_bench_rand_below(&st, K_RAW_BYTES / win) * win;
        double t0 = tsr_bench_now();
        if (tsr_rma_get(t, raw, off, buf, win, 10000, &err) != TSR_OK)
            goto out;
        if (i >= 2000)
            rawlat[i - 2000] = (tsr_bench_now() - t0) * 1e6;
    }
    qsort(lat, n, sizeof(double), cmp_double);
    qsort(rawlat, n, sizeof(double), cmp_double);
    char fname[64], label[96];
    snprintf(fname, sizeof(fname), "remote_get_p50_%s", name);
    snprintf(label, sizeof(label), "one-sided kv get p50 (%s)", name);
    emit(r, fname, label, pct(lat, n, 0.5), "us", "raw_rma_get", pct(rawlat, n, 0.5), true);
    snprintf(fname, sizeof(fname), "remote_get_p99_%s", name);
    snprintf(label, sizeof(label), "one-sided kv get p99 (%s)", name);
    emit(r, fname, label, pct(lat, n, 0.99), "us", "raw_rma_get", pct(rawlat, n, 0.99), true);
    tsr_bench_report_note(r,
                          "%s (%s): %.2f RMA reads per get, %zu-byte window; peer = one raw "
                          "tsr_rma_get of %zu bytes",
                          name, tsr_transport_tls(t), reads, win, win);
    rc = 0;
out:
    if (rc && err.status != TSR_OK)
        tsr_bench_error("kv %s: %s", name, err.message);
    if (t) {
        tsr_rpc_msg_release(t, &reply);
        if (peer) {
            tsr_rpc_msg_t done = {0};
            (void)tsr_rpc_call(t, peer, K_DONE, NULL, 0, 2000, &done, NULL);
            tsr_rpc_msg_release(t, &done);
        }
        if (raw)
            tsr_rkey_destroy(t, raw);
    }
    tsr_kv_remote_close(kr);
    tsr_transport_destroy(t);
    free(lat);
    free(rawlat);
    /* bounded wait for the owner, then stop it by its pid */
    tsr_bench_stop_server(pid, 5);
    return rc;
}

int tsr_bench_suite_kv(const tsr_bench_opts_t *opts)
{
    const char *server_tls = getenv("TSR_BENCH_KV_SERVER");
    if (!getenv("UCX_NET_DEVICES"))
        setenv("UCX_NET_DEVICES", "lo", 1);
    if (server_tls)
        return run_server(server_tls, getenv("TSR_BENCH_KV_HEAP") != NULL);
    uint64_t n = opts->rows ? opts->rows : 1000000;
    size_t samples = n / 50 < 2000 ? 2000 : (size_t)(n / 50);
    /* TSR_BENCH_KV_ONLY: a comma list of phases (local, durable, clients,
     * latency); all by default. bench/peers/kv_peers.sh runs "clients". */
    const char *phases = getenv("TSR_BENCH_KV_ONLY");
    bool do_local = !phases || strstr(phases, "local"),
         do_dur = !phases || strstr(phases, "durable");
    bool do_cli = !phases || strstr(phases, "clients"),
         do_lat = !phases || strstr(phases, "latency");
    bool do_dev = opts->device && strncmp(opts->device, "opencl", 6) == 0 &&
                  (!phases || strstr(phases, "device"));
    /* "cluster" only when listed: it needs a running cluster */
    bool do_cluster = phases && strstr(phases, "cluster");
    const char *sched = opts->scheduler ? opts->scheduler : getenv("TESSERA_SCHEDULER");
    if (do_cluster && !sched) {
        tsr_bench_error("kv: the cluster phase needs --scheduler HOST:PORT (or "
                        "TESSERA_SCHEDULER)");
        return TSR_BENCH_EXIT_USAGE;
    }
    int counts[16];
    int ncounts = tsr_bench_kv_client_counts(opts->threads, counts);
    const char *ms = getenv("TSR_BENCH_KV_MS");
    double seconds = (ms ? atof(ms) : 300.0) / 1000.0;
    if (ncounts < 0 || (do_cli && ncounts == 0) || seconds <= 0) {
        tsr_bench_error("kv: TSR_BENCH_KV_CLIENTS must be counts 1..%d (e.g. 1,4,16) within "
                        "--threads, TSR_BENCH_KV_MS a positive number",
                        K_MAX_CLIENTS);
        return TSR_BENCH_EXIT_USAGE;
    }
    tsr_bench_report_t r;
    if (tsr_bench_report_init(&r, "kv", opts->json, stdout) != 0)
        return TSR_BENCH_EXIT_FAIL;
    r.device = "cpu";
    tsr_bench_report_param_int(&r, "keys", (int64_t)n);
    tsr_bench_report_param_int(&r, "remote_keys", K_REMOTE_KEYS);
    tsr_bench_report_param_int(&r, "value_bytes", K_VAL);
    tsr_bench_report_param_int(&r, "ms_per_point", (int64_t)(seconds * 1000));
    tsr_bench_report_param_str(&r, "clients", "processes");
    tsr_bench_report_title(&r, "kv: %llu 8-byte keys locally; remote: %u keys, %u-byte values",
                           (unsigned long long)n, K_REMOTE_KEYS, K_VAL);
    int rc = do_local ? local_rates(&r, n) : 0;
    if (rc == 0 && do_dev)
        rc = device_rates(&r, n, opts->device);
    if (rc == 0 && do_dur)
        rc = durable_rate(&r, n / 50 < 4000 ? 4000 : n / 50);
    const char *only = getenv("TSR_BENCH_TLS");
    static const char *const sets[][2] = {{"tcp", "tcp"}, {"sm", "posix,cma,self,tcp"}};
    /* client processes first: the latency phase uses UCX in this process
     * (and pins it), after which forking clients would not be safe */
    for (size_t i = 0; do_cli && rc == 0 && i < 2; i++) {
        if (only && strcmp(only, sets[i][0]) != 0)
            continue;
        bool lanes = tsr_bench_sm_lanes_begin(sets[i][0]); /* owner and clients start here */
        rc = tsr_bench_kv_clients_phase(&r, sets[i][0], sets[i][1], counts, ncounts, seconds);
        tsr_bench_sm_lanes_end(lanes);
    }
    for (size_t i = 0; do_lat && rc == 0 && i < 2; i++) {
        if (only && strcmp(only, sets[i][0]) != 0)
            continue;
        pin_to(0);
        bool lanes = tsr_bench_sm_lanes_begin(sets[i][0]);
        rc = remote_latency(&r, sets[i][0], sets[i][1], samples);
        tsr_bench_sm_lanes_end(lanes);
    }
#ifdef TSR_HAVE_SCHEDULER
    if (rc == 0 && do_cluster)
        rc = tsr_bench_kv_cluster_phase(&r, sched, counts, ncounts, seconds);
#else
    if (rc == 0 && do_cluster) {
        tsr_bench_error("kv: the cluster phase needs a build with the cluster library");
        rc = -1;
    }
#endif
    tsr_bench_report_fini(&r);
    return rc ? TSR_BENCH_EXIT_FAIL : TSR_BENCH_EXIT_OK;
}
