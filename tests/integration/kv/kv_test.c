/*
 * kv_test.c - multi-process tests of engine/kv.
 *
 *   kv_test SCENARIO             run a scenario as the driver (ctest)
 *   kv_test role NAME DIR ...    one process of a scenario (exec'ed)
 *
 * Scenarios:
 *   remote [ucx|heap]
 *           an owner process (its tables in UCX-allocated or heap memory)
 *           keeps rewriting 500 keys (each value's bytes
 *           all equal one generation byte, its length derived from it) and
 *           churning 2,000 more (bulk inserts that rehash the partitions,
 *           then deletes); a reader process gets keys by one-sided RMA reads
 *           of the owner's registered table (UCX_TLS from the environment:
 *           ctest runs TCP only and shared memory). Every base key is found
 *           with a whole value, absent keys are not found, and the reader
 *           saw rehashes (descriptor refreshes).
 *   crash   a writer process with 4 threads upserts and deletes keys in a
 *           data dir (fdatasync group commit, snapshots every 64 KiB) and
 *           records each acknowledged write in a shared file; the driver
 *           kills it with SIGKILL mid-run, recovers the store and checks
 *           that every acknowledged write is there and that every value
 *           present is whole and at most one write newer than acknowledged.
 *
 * Processes: the driver forks and execs itself, every role arms alarm(), the
 * driver bounds every wait and kills (by PID) what overstays. Roles talk to
 * the driver through files in a private temporary directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tessera/kv.h"
#include "transport.h"

#define MP_PROG "kv_test"
#define MP_MAX_KIDS 4
#include "../mp_util.h"

/* ---- remote ------------------------------------------------------------------------ */

enum { R_BASE = 500, R_EXTRA = 2000, R_MV = 64 };

static void r_val(unsigned char *v, size_t *vl, unsigned gen)
{
    unsigned char b = (unsigned char)gen;
    *vl = 1 + (size_t)(b % (R_MV - 1));
    memset(v, b, *vl);
}

/* owner MEM: "ucx" allocates the tables through the transport, "heap" from
 * malloc (registered on the first descriptor request) */
static int role_owner(const char *memkind)
{
    alarm(50);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t tp = {.node_id = 1, .listen_host = "127.0.0.1", .spin_us = 200};
    tsr_transport_t *t;
    CHECK(tsr_transport_create(NULL, &tp, &t, &err) == TSR_OK, "transport: %s", err.message);
    tsr_kv_store_t *s;
    tsr_kv_err_t ke = {0};
    tsr_kv_options_t o = {.transport = strcmp(memkind, "ucx") == 0 ? t : NULL};
    CHECK(tsr_kv_open(&o, &s, &ke) == TSR_OK, "open: %s", ke.message);
    tsr_kv_table_params_t p = {.partitions = 2, .max_key = 16, .max_value = R_MV};
    CHECK(tsr_kv_table_create(s, "r", &p, &ke) == TSR_OK, "create: %s", ke.message);
    tsr_kv_table_t *tab;
    CHECK(tsr_kv_table_open(s, "r", &tab, &ke) == TSR_OK, "open table");
    unsigned char v[R_MV];
    size_t vl;
    unsigned gen = 0;
    for (uint32_t id = 0; id < R_BASE; id++) {
        r_val(v, &vl, gen++);
        CHECK(tsr_kv_insert(tab, &id, 4, v, vl, NULL, &ke) == TSR_OK, "insert: %s", ke.message);
    }
    tsr_kv_server_t *srv;
    CHECK(tsr_kv_server_start(s, t, 0, &srv, &ke) == TSR_OK, "server: %s", ke.message);
    CHECK(tsr_transport_start_thread(t, &err) == TSR_OK, "thread: %s", err.message);
    write_text("port", "%u", (unsigned)tsr_transport_port(t));
    double end = now() + 40;
    uint32_t extra = 1u << 20;
    long cycles = 0;
    while (!file_exists("stop") && now() < end) {
        for (uint32_t id = 0; id < R_BASE; id++) {
            r_val(v, &vl, gen++);
            CHECK(tsr_kv_update(tab, &id, 4, v, vl, NULL, &ke) == TSR_OK, "update: %s", ke.message);
        }
        uint32_t first = extra;
        for (int j = 0; j < R_EXTRA; j++, extra++) {
            r_val(v, &vl, extra);
            CHECK(tsr_kv_insert(tab, &extra, 4, v, vl, NULL, &ke) == TSR_OK, "insert x");
        }
        for (uint32_t id = first; id < extra; id++)
            CHECK(tsr_kv_delete(tab, &id, 4, NULL, &ke) == TSR_OK, "delete x");
        cycles++;
        usleep(2000); /* leave readers quiet stretches between rehashes too */
    }
    fprintf(stderr, "kv_test owner: %ld write cycles\n", cycles);
    tsr_transport_stop_thread(t);
    tsr_kv_server_stop(srv);
    tsr_kv_table_close(tab);
    tsr_kv_close(s);
    tsr_transport_destroy(t);
    return 0;
}

static int role_reader(const char *port_s)
{
    alarm(50);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t tp = {.node_id = 2, .spin_us = 200};
    tsr_transport_t *t;
    CHECK(tsr_transport_create(NULL, &tp, &t, &err) == TSR_OK, "transport: %s", err.message);
    tsr_peer_t *peer;
    CHECK(tsr_transport_connect(t, "127.0.0.1", (uint16_t)atoi(port_s), 10000, &peer, &err) ==
              TSR_OK,
          "connect: %s", err.message);
    tsr_kv_remote_t *r;
    tsr_kv_err_t ke = {0};
    CHECK(tsr_kv_remote_open(t, peer, "nope", 0, 10000, &r, &ke) == TSR_ERR_NOT_FOUND,
          "a missing table must be NOT_FOUND: %s", ke.message);
    ke = (tsr_kv_err_t){0};
    CHECK(tsr_kv_remote_open(t, peer, "r", 0, 10000, &r, &ke) == TSR_OK, "remote: %s", ke.message);
    uint64_t x = 88172645463325252ull;
    unsigned char v[R_MV];
    long found = 0, absent = 0;
    double t0 = now();
    double end = t0 + 2.0;
    tsr_kv_remote_stats_t st = {0};
    while (now() < end || found < 1000 || st.refreshes == 0) {
        CHECK(now() < t0 + 30, "no refresh seen in 30 s");
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t id = (uint32_t)(x % (R_BASE + 100));
        bool present = id < R_BASE;
        if (!present)
            id = (1u << 30) + id; /* never written */
        size_t vl = 0;
        tsr_status_t rc = tsr_kv_remote_get(r, &id, 4, v, sizeof(v), &vl, &ke);
        if (present) {
            CHECK(rc == TSR_OK, "key %u: %s (%s)", id, tsr_status_str(rc), ke.message);
            bool ok = vl == 1 + (size_t)(v[0] % (R_MV - 1));
            for (size_t i = 1; ok && i < vl; i++)
                ok = v[i] == v[0];
            CHECK(ok, "key %u: torn value (len %zu, bytes %u..%u)", id, vl, v[0], v[vl - 1]);
            found++;
        } else {
            CHECK(rc == TSR_ERR_NOT_FOUND, "absent key %u: %s", id, tsr_status_str(rc));
            absent++;
        }
        tsr_kv_remote_get_stats(r, &st);
    }
    double el = now() - t0;
    fprintf(stderr,
            "kv_test reader (%s): %ld found, %ld absent in %.2f s (%.1f us/get); %llu RMA reads, "
            "%llu torn retries, %llu refreshes\n",
            tsr_transport_tls(t), found, absent, el, el * 1e6 / (double)(found + absent),
            (unsigned long long)st.rma_reads, (unsigned long long)st.torn_retries,
            (unsigned long long)st.refreshes);
    tsr_kv_remote_close(r);
    tsr_transport_destroy(t);
    return 0;
}

static int scenario_remote(const char *memkind)
{
    spawn("owner", memkind);
    double end = now() + 20;
    long port = -1;
    while (now() < end && (port = read_num("port")) <= 0)
        usleep(10000);
    CHECK(port > 0, "the owner did not publish its port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%ld", port);
    pid_t rd = spawn("reader", ps);
    int st = wait_kid(rd, 45);
    write_text("stop", "1");
    int so = wait_kid(kids[0], 15);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader failed (status %d)", st);
    CHECK(so >= 0 && WIFEXITED(so) && WEXITSTATUS(so) == 0, "owner failed (status %d)", so);
    return 0;
}

/* ---- crash ------------------------------------------------------------------------- */

enum { C_THREADS = 4, C_KEYS = 300, C_MV = 48 };

/* The op a key's seq-th write is (seq >= 1): every 7th (seq % 7 == 3) a delete. */
static bool c_is_del(uint64_t seq)
{
    return seq % 7 == 3;
}

static size_t c_val(uint32_t key, uint64_t seq, unsigned char *v)
{
    size_t vl = 8 + (size_t)((seq * 13 + key) % (C_MV - 8));
    memcpy(v, &seq, 8);
    for (size_t j = 8; j < vl; j++)
        v[j] = (unsigned char)(key * 7 + seq + j);
    return vl;
}

static bool c_whole(uint32_t key, const unsigned char *v, size_t vl, uint64_t *seq)
{
    if (vl < 8)
        return false;
    memcpy(seq, v, 8);
    unsigned char w[C_MV];
    return c_val(key, *seq, w) == vl && memcmp(w, v, vl) == 0;
}

typedef struct c_arg {
    tsr_kv_table_t *t;
    _Atomic uint64_t *acks; /* shared file: acked seq per key */
    int idx;
} c_arg_t;

static void *c_writer(void *p)
{
    c_arg_t *a = p;
    uint64_t seq[C_KEYS] = {0};
    for (uint64_t n = 0;; n++) {
        uint32_t k = (uint32_t)(n % C_KEYS);
        uint32_t key = (uint32_t)a->idx * 100000u + k;
        uint64_t s = ++seq[k];
        unsigned char v[C_MV];
        tsr_kv_err_t ke = {0};
        tsr_status_t rc;
        if (c_is_del(s)) {
            rc = tsr_kv_delete(a->t, &key, 4, NULL, &ke);
            CHECK(rc == TSR_OK || rc == TSR_ERR_NOT_FOUND, "delete: %s", ke.message);
        } else {
            size_t vl = c_val(key, s, v);
            rc = tsr_kv_upsert(a->t, &key, 4, v, vl, NULL, &ke);
            CHECK(rc == TSR_OK, "upsert: %s", ke.message);
        }
        atomic_store(&a->acks[a->idx * C_KEYS + (int)k], s); /* acknowledged */
    }
    return NULL;
}

static _Atomic uint64_t *map_acks(bool create)
{
    char p[512];
    path_of(p, sizeof(p), "acks");
    int fd = open(p, O_RDWR | (create ? O_CREAT : 0), 0644);
    CHECK(fd >= 0, "open %s", p);
    size_t len = sizeof(uint64_t) * C_THREADS * C_KEYS;
    CHECK(!create || ftruncate(fd, (off_t)len) == 0, "ftruncate");
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    CHECK(m != MAP_FAILED, "mmap");
    return m;
}

static int role_writer(void)
{
    alarm(50);
    _Atomic uint64_t *acks = map_acks(false);
    char data[512];
    path_of(data, sizeof(data), "data");
    tsr_kv_options_t o = {.data_dir = data, .sync = TSR_KV_SYNC_FSYNC, .snapshot_bytes = 64 << 10};
    tsr_kv_store_t *s;
    tsr_kv_err_t ke = {0};
    CHECK(tsr_kv_open(&o, &s, &ke) == TSR_OK, "open: %s", ke.message);
    tsr_kv_table_params_t tp = {.partitions = 3, .max_key = 4, .max_value = C_MV};
    CHECK(tsr_kv_table_create(s, "c", &tp, &ke) == TSR_OK, "create: %s", ke.message);
    tsr_kv_table_t *t;
    CHECK(tsr_kv_table_open(s, "c", &t, &ke) == TSR_OK, "open table");
    write_text("ready", "1");
    pthread_t th[C_THREADS];
    c_arg_t a[C_THREADS];
    for (int i = 0; i < C_THREADS; i++) {
        a[i] = (c_arg_t){t, acks, i};
        CHECK(pthread_create(&th[i], NULL, c_writer, &a[i]) == 0, "thread");
    }
    for (;;)
        pause(); /* until SIGKILL (or the alarm) */
}

static int scenario_crash(void)
{
    _Atomic uint64_t *acks = map_acks(true);
    pid_t w = spawn("writer", "");
    double t0 = now(), end = t0 + 20;
    uint64_t total = 0;
    while (now() < end) {
        total = 0;
        for (int i = 0; i < C_THREADS * C_KEYS; i++)
            total += atomic_load(&acks[i]);
        if (total >= 4000 && now() > t0 + 0.5)
            break;
        usleep(2000);
    }
    CHECK(total > 0, "the writer acknowledged nothing in 20 s");
    kill(w, SIGKILL);
    int st;
    waitpid(w, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer died before the kill");
    /* recover and compare with the acknowledgements */
    char data[512];
    path_of(data, sizeof(data), "data");
    tsr_kv_options_t o = {.data_dir = data};
    tsr_kv_store_t *s;
    tsr_kv_err_t ke = {0};
    CHECK(tsr_kv_open(&o, &s, &ke) == TSR_OK, "recover: %s", ke.message);
    tsr_kv_recovery_t rec;
    tsr_kv_recovery_info(s, &rec);
    tsr_kv_table_t *t;
    CHECK(tsr_kv_table_open(s, "c", &t, &ke) == TSR_OK, "table: %s", ke.message);
    long present = 0, ahead = 0;
    uint64_t acked_total = 0;
    for (int i = 0; i < C_THREADS; i++)
        for (uint32_t k = 0; k < C_KEYS; k++) {
            uint32_t key = (uint32_t)i * 100000u + k;
            uint64_t a = atomic_load(&acks[i * C_KEYS + (int)k]);
            acked_total += a;
            unsigned char v[C_MV];
            size_t vl = 0;
            tsr_status_t rc = tsr_kv_get(t, &key, 4, v, sizeof(v), &vl, NULL);
            if (rc == TSR_ERR_NOT_FOUND) {
                /* absent: never written, acked a delete, or the one write in
                 * flight (unacknowledged) was a delete */
                CHECK(a == 0 || c_is_del(a) || c_is_del(a + 1),
                      "key %u: acked seq %llu (a put) is missing", key, (unsigned long long)a);
                continue;
            }
            CHECK(rc == TSR_OK, "key %u: %s", key, tsr_status_str(rc));
            uint64_t seq;
            CHECK(c_whole(key, v, vl, &seq), "key %u: value not whole", key);
            /* the acked write, or the one in flight after it; never older */
            CHECK(seq == a || seq == a + 1, "key %u: value of seq %llu, acked %llu", key,
                  (unsigned long long)seq, (unsigned long long)a);
            ahead += seq == a + 1;
            present++;
        }
    fprintf(stderr,
            "kv_test crash: %llu acked writes; recovered snapshot lsn %llu + %llu log records%s%s; "
            "%ld keys present, %ld one unacked write ahead\n",
            (unsigned long long)acked_total, (unsigned long long)rec.snapshot_lsn,
            (unsigned long long)rec.records_replayed, rec.torn_tail ? "; torn tail: " : "",
            rec.detail, present, ahead);
    tsr_kv_table_close(t);
    tsr_kv_close(s);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "role") == 0) {
        g_role = argv[2];
        g_dir = argv[3];
        const char *arg = argc > 4 ? argv[4] : "";
        if (strcmp(g_role, "owner") == 0)
            return role_owner(arg);
        if (strcmp(g_role, "reader") == 0)
            return role_reader(arg);
        if (strcmp(g_role, "writer") == 0)
            return role_writer();
        fprintf(stderr, "kv_test: unknown role %s\n", g_role);
        return 2;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: kv_test remote [ucx|heap] | crash\n");
        return 2;
    }
    driver_begin(55);
    int rc;
    if (strcmp(argv[1], "remote") == 0) {
        rc = scenario_remote(argc > 2 ? argv[2] : "heap");
    } else if (strcmp(argv[1], "crash") == 0) {
        rc = scenario_crash();
    } else {
        fprintf(stderr, "kv_test: unknown scenario %s\n", argv[1]);
        rc = 2;
    }
    if (rc == 0)
        printf("kv_test %s: ok\n", argv[1]);
    return rc;
}
