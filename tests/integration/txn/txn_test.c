/*
 * txn_test.c - multi-process test of engine/txn over the real transport.
 *
 *   txn_test bank [rma|auto|rpc|rlock] [novictim]   run a scenario as the driver (ctest)
 *   txn_test ownercrash
 *   txn_test role NAME DIR ARG    one process of it (exec'ed)
 *
 * Scenario "bank" (the Jepsen bank check): an owner process keeps a table of
 * 20 accounts in a data dir and serves transactions (tsr_txn_server_start)
 * and, in mode rma (the default), kv descriptors so that clients read the
 * accounts with one-sided RMA (forced: TSR_TXN_READS_ONE_SIDED); in mode
 * auto too, but the clients choose (tsr_txn_db_set_reads' default: calls,
 * several keys in one, when the transport is TCP only, else one-sided);
 * in mode rpc the owner serves no descriptors (reads are calls). Clients
 * that read one-sided lock their write sets themselves by one-sided
 * compare-and-swap (tsr_txn_db_set_locks' default) unless the transport is
 * TCP only; mode rlock is rma with that forced (over TCP too), and the victim,
 * before it dies, also strands a lock of its own on an account (a one-sided
 * CAS of the account's version word to a lock tag, never committed): the
 * owner must break it after its lease (1 s) - the others' transfers and
 * audits of that account conflict or wait until then, and the owner's
 * final transaction over every account could not commit otherwise;
 * three client processes do random transfers between accounts in
 * transactions (tsr_txn_db_remote + tsr_txn_run) for two seconds, with a
 * read-only audit of the total every 8th transaction; a fourth client is
 * killed with SIGKILL in the middle of a commit (it kills itself a random
 * few microseconds after its transaction body handed the commit over).
 * Every client logs "I from to amount" before a transfer and "A" once it is
 * acknowledged ("F" when it gave up). At the end the owner commits one
 * transaction that reads and rewrites every account (it would fail if the
 * dead client had left a lock behind), writes the balances, and the driver
 * checks: the total never changed (audits and the end), and the balances
 * equal the start plus every acknowledged transfer exactly once - plus the
 * dead client's last transfer, which may or may not have committed.
 *
 * Scenario "ownercrash": the owner is killed with SIGKILL while three
 * clients transfer; recovered from its data dir, the store holds every
 * acknowledged transfer exactly once and any subset of the in-flight ones
 * (each whole or not at all).
 *
 * Client 0 first sends 300 malformed requests (random bodies for reads and
 * commits): each must be answered with an error, and the owner goes on;
 * then a well-formed commit claiming a lock tag nobody took (a conflict:
 * the balances check shows it changed nothing).
 *
 * Processes: every role arms alarm(), the driver bounds every wait and kills
 * (by PID) what overstays. UCX_TLS comes from the environment (ctest: TCP
 * only and shared memory).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remote_int.h" /* strand_lock: a remote lock by hand (kv_internal.h) */
#include "tessera/kv.h"
#include "tessera/txn.h"
#include "transport.h"

#define MP_PROG "txn_test"
#define MP_MAX_KIDS 6
#include "../mp_util.h"

enum { NACCT = 20, START = 1000, NCLIENTS = 3 };

static void acct_key(int i, char *k)
{
    snprintf(k, 16, "acct%02d", i);
}

/* ---- owner ------------------------------------------------------------------------------------
 */

static tsr_status_t touch_all(tsr_txn_t *x, void *arg)
{
    int64_t *bal = arg;
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        size_t vl;
        tsr_status_t rc = tsr_txn_get(x, "bank", k, strlen(k), &bal[i], 8, &vl, NULL);
        if (rc == TSR_OK)
            rc = tsr_txn_put(x, "bank", k, strlen(k), &bal[i], 8, NULL, NULL);
        if (rc != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

/* owner MODE: "rma" also serves kv descriptors (clients read one-sided),
 * "rpc" does not (clients read through the txn server's read call) */
static int role_owner(const char *mode)
{
    bool crash = strcmp(mode, "crash") == 0; /* rma, and killed by the driver */
    bool rma = crash || strcmp(mode, "rma") == 0 || strcmp(mode, "auto") == 0 ||
               strcmp(mode, "rlock") == 0;
    alarm(50);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t tp = {.node_id = 1, .listen_host = "127.0.0.1", .spin_us = 100};
    tsr_transport_t *t;
    CHECK(tsr_transport_create(NULL, &tp, &t, &err) == TSR_OK, "transport: %s", err.message);
    char data[512];
    path_of(data, sizeof(data), "data");
    tsr_kv_options_t o = {.data_dir = data, .sync = TSR_KV_SYNC_WRITE, .transport = t};
    tsr_kv_store_t *s;
    tsr_kv_err_t ke = {0};
    CHECK(tsr_kv_open(&o, &s, &ke) == TSR_OK, "open: %s", ke.message);
    tsr_kv_table_params_t p = {.partitions = 4, .max_key = 16, .max_value = 8};
    CHECK(tsr_kv_table_create(s, "bank", &p, &ke) == TSR_OK, "create: %s", ke.message);
    tsr_txn_db_t *db;
    CHECK(tsr_txn_db_local(s, &db, NULL) == TSR_OK, "db");
    tsr_txn_t *x;
    CHECK(tsr_txn_begin(db, &x, NULL) == TSR_OK, "begin");
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = START;
        CHECK(tsr_txn_put(x, "bank", k, strlen(k), &v, 8, NULL, NULL) == TSR_OK, "put");
    }
    CHECK(tsr_txn_commit(x, NULL) == TSR_OK, "initial commit");
    tsr_txn_server_t *srv;
    tsr_txn_err_t xe = {0};
    CHECK(tsr_txn_server_start(s, t, 0, &srv, &xe) == TSR_OK, "server: %s", xe.message);
    tsr_kv_server_t *ksrv = NULL;
    if (rma)
        CHECK(tsr_kv_server_start(s, t, 0, &ksrv, &ke) == TSR_OK, "kv server: %s", ke.message);
    CHECK(tsr_transport_start_thread(t, &err) == TSR_OK, "thread: %s", err.message);
    write_text("port", "%u", (unsigned)tsr_transport_port(t));
    double end = now() + 40;
    while ((crash || !file_exists("stop")) && now() < end)
        usleep(10000);
    /* no lock left behind by the dead client: a transaction over every
     * account commits (a stranded lock would fail it every time) */
    int64_t bal[NACCT];
    tsr_txn_run_opts_t ro = {.max_attempts = 50};
    xe = (tsr_txn_err_t){0};
    CHECK(tsr_txn_run(db, touch_all, bal, &ro, NULL, &xe) == TSR_OK,
          "a transaction over every account failed: %s", xe.message);
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < NACCT; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%" PRId64 "\n", bal[i]);
    write_text("final", "%s", buf);
    tsr_transport_stop_thread(t);
    tsr_txn_server_stop(srv);
    tsr_kv_server_stop(ksrv);
    tsr_txn_db_close(db);
    tsr_kv_close(s);
    tsr_transport_destroy(t);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------------------
 */

typedef struct client {
    int from, to;
    int64_t amt;
    atomic_int *handing_over; /* victim: set when the body is done (commit next) */
    bool victim_now;
} client_t;

static tsr_status_t transfer(tsr_txn_t *x, void *arg)
{
    client_t *c = arg;
    char kf[16], kt[16];
    acct_key(c->from, kf);
    acct_key(c->to, kt);
    int64_t f = 0, to = 0;
    size_t vl;
    tsr_status_t rc = tsr_txn_get(x, "bank", kf, strlen(kf), &f, 8, &vl, NULL);
    if (rc == TSR_OK)
        rc = tsr_txn_get(x, "bank", kt, strlen(kt), &to, 8, &vl, NULL);
    if (rc != TSR_OK)
        return rc;
    f -= c->amt;
    to += c->amt;
    rc = tsr_txn_put(x, "bank", kf, strlen(kf), &f, 8, NULL, NULL);
    if (rc == TSR_OK)
        rc = tsr_txn_put(x, "bank", kt, strlen(kt), &to, 8, NULL, NULL);
    if (rc == TSR_OK && c->victim_now)
        atomic_store(c->handing_over, 1);
    return rc;
}

static tsr_status_t audit(tsr_txn_t *x, void *arg)
{
    int64_t *total = arg;
    *total = 0;
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = 0;
        size_t vl;
        tsr_status_t rc = tsr_txn_get(x, "bank", k, strlen(k), &v, 8, &vl, NULL);
        if (rc != TSR_OK)
            return rc;
        *total += v;
    }
    return TSR_OK;
}

typedef struct crun {
    tsr_txn_db_t *db;
    FILE *log;
    uint64_t seed;
    double until;
    bool victim;
    bool owner_dies; /* scenario ownercrash: stop at the first failed call */
    int victim_at;   /* the transfer during whose commit the victim dies */
    atomic_int handing_over;
    long acked, failed, audits;
} crun_t;

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *client_loop(void *p)
{
    crun_t *r = p;
    client_t c = {.handing_over = &r->handing_over};
    tsr_txn_run_opts_t o = {.max_attempts = 64, .backoff_us = 50, .backoff_max_us = 5000};
    for (int n = 0; r->victim || r->owner_dies || now() < r->until; n++) {
        if (r->owner_dies && now() > r->until)
            break; /* the owner was never killed: the driver will say so */
        o.seed = rnd(&r->seed) | 1;
        if (n % 8 == 7 && !r->owner_dies) { /* ownercrash: transfers only */
            int64_t total = 0;
            tsr_txn_err_t e = {0};
            tsr_status_t rc = tsr_txn_run(r->db, audit, &total, &o, NULL, &e);
            if (r->owner_dies && rc != TSR_OK && rc != TSR_ERR_CONFLICT)
                break;
            CHECK(rc == TSR_OK || rc == TSR_ERR_CONFLICT, "audit: %s", e.message);
            CHECK(rc != TSR_OK || total == (int64_t)NACCT * START, "audit saw a total of %" PRId64,
                  total);
            r->audits += rc == TSR_OK;
            continue;
        }
        c.from = (int)(rnd(&r->seed) % NACCT);
        c.to = (int)((c.from + 1 + rnd(&r->seed) % (NACCT - 1)) % NACCT);
        c.amt = (int64_t)(rnd(&r->seed) % 100) + 1;
        c.victim_now = r->victim && n == r->victim_at;
        fprintf(r->log, "I %d %d %" PRId64 "\n", c.from, c.to, c.amt);
        fflush(r->log); /* in the kernel before the commit: survives SIGKILL */
        tsr_txn_err_t e = {0};
        tsr_status_t rc = tsr_txn_run(r->db, transfer, &c, &o, NULL, &e);
        if (r->owner_dies && rc != TSR_OK && rc != TSR_ERR_CONFLICT) {
            fprintf(r->log, "U\n"); /* unknown: the owner died around it */
            fflush(r->log);
            break;
        }
        CHECK(rc == TSR_OK || rc == TSR_ERR_CONFLICT, "transfer: %s", e.message);
        fprintf(r->log, rc == TSR_OK ? "A\n" : "F\n");
        fflush(r->log);
        if (rc == TSR_OK)
            r->acked++;
        else
            r->failed++;
    }
    return NULL;
}

/* Locks account i the way a client committing with one-sided locks does
 * (kv_internal.h, "Remote locks": the version word from the version read
 * to a lock tag) and never commits: the victim dies holding it. */
static void strand_lock(tsr_transport_t *t, tsr_peer_t *peer, int i)
{
    char k[16];
    acct_key(i, k);
    tsr_kv_remote_t *r;
    CHECK(tsr_kv_remote_open(t, peer, "bank", 0, 10000, &r, NULL) == TSR_OK, "kv reader");
    for (int tries = 0; tries < 1000; tries++) {
        int64_t v;
        size_t vl;
        uint64_t ver, old = 0, off;
        kv_slot_loc_t loc;
        tsr_rkey_t *rk;
        CHECK(tsr_kv_remote_get_loc(r, k, strlen(k), &v, 8, &vl, &ver, &loc, NULL) == TSR_OK,
              "read of the account to strand");
        CHECK(tsr_kv_remote_loc_word(&loc, &rk, &off), "the owner offers no remote locks");
        uint64_t tag = kv_rlock_tag(0xdead, tsr_kv_rlock_now_ms());
        CHECK(tsr_atomic_cswap(t, rk, off, ver, tag, &old, 10000, NULL) == TSR_OK, "cswap");
        if (old == ver) {
            fprintf(stderr, "txn_test victim: account %d locked, never to commit\n", i);
            return; /* the reader is left open: the process dies next */
        }
    }
    CHECK(0, "could not strand a lock on account %d", i);
}

static void put_le(unsigned char **p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *(*p)++ = (unsigned char)(v >> (8 * i));
}

static void put_raw(unsigned char **p, const char *s)
{
    memcpy(*p, s, strlen(s));
    *p += strlen(s);
}

/* A well-formed COMMIT_LOCKED (engine/txn/txn_wire.h) whose write claims a
 * lock tag nobody took: the owner must refuse to adopt it (a conflict)
 * and change nothing. */
static void forged_lock(tsr_transport_t *t, tsr_peer_t *peer)
{
    unsigned char m[128], *p = m;
    const char *key = "acct00";
    int64_t val = 1000000;
    put_le(&p, 5, 1); /* TXN_MSG_COMMIT_LOCKED */
    put_le(&p, 1, 4);
    put_le(&p, 1, 4);
    put_le(&p, 1, 4);
    put_le(&p, 4, 2);
    put_raw(&p, "bank");
    put_le(&p, 0, 4); /* the read: table 0, key, a version */
    put_le(&p, strlen(key), 4);
    put_raw(&p, key);
    put_le(&p, 1000, 8);
    put_le(&p, 0, 4); /* the write: table 0, a put of val, unfenced, the tag */
    put_le(&p, 0, 1);
    put_le(&p, strlen(key), 4);
    put_raw(&p, key);
    put_le(&p, 8, 4);
    put_le(&p, (uint64_t)val, 8);
    put_le(&p, 0, 2);
    put_le(&p, 0, 8);
    put_le(&p, kv_rlock_tag(7, tsr_kv_rlock_now_ms()), 8);
    tsr_rpc_msg_t reply = {0};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t rc =
        tsr_rpc_call(t, peer, TSR_TXN_RPC, m, (size_t)(p - m), 10000, &reply, &err);
    tsr_rpc_msg_release(t, &reply);
    CHECK(rc == TSR_ERR_CONFLICT, "a forged lock tag: %s", tsr_status_str(rc));
}

static int role_client(const char *arg)
{
    alarm(50);
    int id = atoi(arg);
    bool owner_dies = strstr(arg, "crash") != NULL; /* "N:crash" */
    /* "N:rma", "N:auto", "N:rpc", "N:rlock" (rma, locks one-sided) or
     * "N:crash" (auto) */
    bool rlock = strstr(arg, ":rlock") != NULL;
    bool force_rma = rlock || strstr(arg, ":rma") != NULL;
    bool by_choice = owner_dies || strstr(arg, ":auto") != NULL;
    bool victim = id == NCLIENTS;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t tp = {.node_id = 10 + (uint32_t)id, .spin_us = 100};
    tsr_transport_t *t;
    CHECK(tsr_transport_create(NULL, &tp, &t, &err) == TSR_OK, "transport: %s", err.message);
    tsr_peer_t *peer;
    CHECK(tsr_transport_connect(t, "127.0.0.1", (uint16_t)read_num("port"), 10000, &peer, &err) ==
              TSR_OK,
          "connect: %s", err.message);
    if (id == 0 && !owner_dies) {
        /* malformed requests first: answered with an error, never a crash
         * or a hang (reads and commits with random bodies, random bytes) */
        uint64_t g = 0x2545F4914F6CDD1Dull;
        for (int i = 0; i < 300; i++) {
            unsigned char m[96];
            size_t n = (size_t)(rnd(&g) % sizeof(m));
            for (size_t j = 0; j < n; j++)
                m[j] = (unsigned char)rnd(&g);
            if (n && i % 6 != 5) /* a read, a commit, a read of many, a snapshot
                                   * read, a commit with one-sided locks */
                m[0] = (unsigned char)(1 + i % 6);
            tsr_rpc_msg_t reply = {0};
            tsr_status_t rc = tsr_rpc_call(t, peer, TSR_TXN_RPC, m, n, 10000, &reply, &err);
            tsr_rpc_msg_release(t, &reply);
            CHECK(rc != TSR_OK && rc != TSR_ERR_TIMEOUT && rc != TSR_ERR_UNAVAILABLE,
                  "garbage request %d: %s", i, tsr_status_str(rc));
        }
        forged_lock(t, peer);
    }
    tsr_txn_db_t *db;
    CHECK(tsr_txn_db_remote(t, peer, 0, 10000, &db, NULL) == TSR_OK, "db");
    if (force_rma)
        CHECK(tsr_txn_db_set_reads(db, TSR_TXN_READS_ONE_SIDED, NULL) == TSR_OK, "reads");
    if (rlock)
        CHECK(tsr_txn_db_set_locks(db, TSR_TXN_LOCKS_ONE_SIDED, NULL) == TSR_OK, "locks");
    /* auto: calls over TCP only, else one-sided */
    bool rma = force_rma || (by_choice && !tsr_transport_tcp_only(t));
    char name[64], p[512];
    snprintf(name, sizeof(name), "log%d", id);
    path_of(p, sizeof(p), name);
    crun_t r = {.db = db,
                .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(id + 1) | 1,
                .until = now() + 2.0,
                .victim = victim,
                .owner_dies = owner_dies};
    if (owner_dies)
        r.until = now() + 20; /* until the owner dies */
    r.log = fopen(p, "w");
    CHECK(r.log, "open %s", p);
    atomic_init(&r.handing_over, 0);
    r.victim_at = 20 + (int)(rnd(&r.seed) % 20);
    if (victim) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, client_loop, &r) == 0, "thread");
        double end = now() + 30;
        while (!atomic_load(&r.handing_over) && now() < end)
            usleep(20);
        CHECK(atomic_load(&r.handing_over), "the victim never reached its commit");
        /* the commit request is being sent or served right now */
        usleep((useconds_t)(rnd(&r.seed) % 300));
        if (rlock)
            strand_lock(t, peer, (int)(rnd(&r.seed) % NACCT));
        write_text("victim_died", "1");
        kill(getpid(), SIGKILL);
        for (;;)
            pause();
    }
    client_loop(&r);
    fclose(r.log);
    tsr_txn_stats_t st;
    tsr_txn_db_stats(db, &st);
    fprintf(stderr,
            "txn_test client %d (%s): %ld transfers acknowledged, %ld gave up, %ld audits; "
            "%llu one-sided reads, %llu read calls, %llu conflicts\n",
            id, tsr_transport_tls(t), r.acked, r.failed, r.audits, (unsigned long long)st.reads_rma,
            (unsigned long long)st.reads_rpc, (unsigned long long)st.conflicts);
    CHECK(rma ? st.reads_rma > 0 && st.reads_rpc == 0 : st.reads_rpc > 0 && st.reads_rma == 0,
          "reads went the wrong way (%s expected)", rma ? "one-sided" : "calls");
    fprintf(stderr, "txn_test client %d: %llu keys locked one-sided\n", id,
            (unsigned long long)st.locks_one_sided);
    /* the client locks when it reads one-sided, except over TCP only
     * (tsr_txn_db_set_locks' default), and when forced */
    bool by_client = rlock || (rma && !tsr_transport_tcp_only(t));
    CHECK(by_client ? st.locks_one_sided > 0 : st.locks_one_sided == 0,
          "locks went the wrong way (%s expected)", by_client ? "one-sided" : "by the owner");
    tsr_txn_db_close(db);
    tsr_transport_destroy(t);
    return 0;
}

/* Recovers the owner's store from its data dir and writes the balances. */
static int role_recover(void)
{
    alarm(50);
    char data[512];
    path_of(data, sizeof(data), "data");
    tsr_kv_options_t o = {.data_dir = data};
    tsr_kv_store_t *s;
    tsr_kv_err_t ke = {0};
    CHECK(tsr_kv_open(&o, &s, &ke) == TSR_OK, "reopen: %s", ke.message);
    tsr_kv_table_t *tab;
    CHECK(tsr_kv_table_open(s, "bank", &tab, &ke) == TSR_OK, "table: %s", ke.message);
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < NACCT; i++) {
        char k[16];
        acct_key(i, k);
        int64_t v = 0;
        size_t vl = 0;
        CHECK(tsr_kv_get(tab, k, strlen(k), &v, 8, &vl, &ke) == TSR_OK && vl == 8,
              "account %d after recovery: %s", i, ke.message);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%" PRId64 "\n", v);
    }
    write_text("final", "%s", buf);
    tsr_kv_table_close(tab);
    tsr_kv_close(s);
    return 0;
}

/* ---- driver --------------------------------------------------------------------------------- */

/* Applies client id's log to want; returns whether a transfer was left
 * without an outcome (only the victim may), and which. */
static bool apply_log(int id, int64_t *want, int *pf, int *pt, int64_t *pa, long *acked)
{
    char name[64], p[512];
    snprintf(name, sizeof(name), "log%d", id);
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    CHECK(f, "no log of client %d", id);
    char line[128];
    bool open = false;
    int from = 0, to = 0;
    int64_t amt = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == 'I') {
            CHECK(!open, "client %d: two transfers in flight", id);
            CHECK(sscanf(line, "I %d %d %" SCNd64, &from, &to, &amt) == 3, "bad log line");
            open = true;
        } else if (line[0] == 'A' || line[0] == 'F') {
            CHECK(open, "client %d: an outcome without a transfer", id);
            if (line[0] == 'A') {
                want[from] -= amt;
                want[to] += amt;
                (*acked)++;
            }
            open = false;
        }
    }
    fclose(f);
    *pf = from;
    *pt = to;
    *pa = amt;
    return open;
}

static int scenario_bank(const char *mode, bool with_victim)
{
    pid_t owner = spawn("owner", mode);
    double end = now() + 20;
    while (now() < end && read_num("port") <= 0)
        usleep(10000);
    CHECK(read_num("port") > 0, "the owner did not publish its port");
    pid_t cl[NCLIENTS + 1];
    for (int i = 0; i <= NCLIENTS - !with_victim; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d:%s", i, mode);
        cl[i] = spawn("client", a);
    }
    if (with_victim) {
        int vs = wait_kid(cl[NCLIENTS], 30);
        CHECK(vs >= 0 && WIFSIGNALED(vs) && WTERMSIG(vs) == SIGKILL && file_exists("victim_died"),
              "the victim client did not die mid-commit (status %d)", vs);
    }
    for (int i = 0; i < NCLIENTS; i++) {
        int st = wait_kid(cl[i], 30);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed (status %d)", i,
              st);
    }
    write_text("stop", "1");
    int so = wait_kid(owner, 20);
    CHECK(so >= 0 && WIFEXITED(so) && WEXITSTATUS(so) == 0, "owner failed (status %d)", so);

    int64_t want[NACCT], got[NACCT];
    for (int i = 0; i < NACCT; i++)
        want[i] = START;
    long acked = 0;
    int vf = 0, vt = 0;
    int64_t va = 0;
    for (int i = 0; i < NCLIENTS; i++)
        CHECK(!apply_log(i, want, &vf, &vt, &va, &acked), "client %d left a transfer open", i);
    /* the victim's last transfer has no outcome (unless it was answered
     * within the few microseconds before the kill: then it is counted) */
    bool victim_open = with_victim && apply_log(NCLIENTS, want, &vf, &vt, &va, &acked);
    char p[512];
    path_of(p, sizeof(p), "final");
    FILE *f = fopen(p, "r");
    CHECK(f, "no final balances");
    int64_t total = 0;
    for (int i = 0; i < NACCT; i++) {
        CHECK(fscanf(f, "%" SCNd64, &got[i]) == 1, "short final balances");
        total += got[i];
    }
    fclose(f);
    CHECK(total == (int64_t)NACCT * START, "the total changed: %" PRId64, total);
    bool exact = memcmp(got, want, sizeof(got)) == 0;
    want[vf] -= va;
    want[vt] += va;
    bool plus_victim = victim_open && memcmp(got, want, sizeof(got)) == 0;
    CHECK(exact || plus_victim,
          "balances differ from the acknowledged transfers (each applied exactly once)");
    CHECK(acked > 30, "too few transfers acknowledged (%ld)", acked);
    fprintf(stderr,
            "txn_test bank: %ld acknowledged transfers applied exactly once; the killed client's "
            "in-flight transfer %s\n",
            acked,
            !with_victim ? "(none: no client killed)"
            : exact      ? "was not applied"
                         : "was applied whole");
    return 0;
}

static void read_final(int64_t *got)
{
    char p[512];
    path_of(p, sizeof(p), "final");
    FILE *f = fopen(p, "r");
    CHECK(f, "no final balances");
    for (int i = 0; i < NACCT; i++)
        CHECK(fscanf(f, "%" SCNd64, &got[i]) == 1, "short final balances");
    fclose(f);
}

/* Scenario "ownercrash": the owner is killed with SIGKILL while 3 clients
 * transfer; each client stops at its first failed call and logs that
 * transfer's outcome as unknown ("U"). The store recovered from the data dir
 * must hold every acknowledged transfer exactly once, plus any subset of the
 * unknown ones (each whole or not at all), and the constant total. */
static int scenario_ownercrash(void)
{
    pid_t owner = spawn("owner", "crash");
    double end = now() + 20;
    while (now() < end && read_num("port") <= 0)
        usleep(10000);
    CHECK(read_num("port") > 0, "the owner did not publish its port");
    pid_t cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        char a[16];
        snprintf(a, sizeof(a), "%d:crash", i);
        cl[i] = spawn("client", a);
    }
    usleep(1200000);
    kill(owner, SIGKILL);
    int so = wait_kid(owner, 10);
    CHECK(so >= 0 && WIFSIGNALED(so), "the owner was not killed (status %d)", so);
    for (int i = 0; i < NCLIENTS; i++) {
        int st = wait_kid(cl[i], 30);
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed (status %d)", i,
              st);
    }
    pid_t rec = spawn("recover", "");
    int sr = wait_kid(rec, 20);
    CHECK(sr >= 0 && WIFEXITED(sr) && WEXITSTATUS(sr) == 0, "recovery failed (status %d)", sr);
    int64_t want[NACCT], got[NACCT];
    for (int i = 0; i < NACCT; i++)
        want[i] = START;
    long acked = 0;
    int uf[NCLIENTS], ut[NCLIENTS], nu = 0;
    int64_t ua[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++)
        if (apply_log(i, want, &uf[nu], &ut[nu], &ua[nu], &acked))
            nu++;
    read_final(got);
    int64_t total = 0;
    for (int i = 0; i < NACCT; i++)
        total += got[i];
    CHECK(total == (int64_t)NACCT * START, "the total changed: %" PRId64, total);
    bool ok = false;
    int which = -1;
    for (int m = 0; m < (1 << nu) && !ok; m++) {
        int64_t w[NACCT];
        memcpy(w, want, sizeof(w));
        for (int j = 0; j < nu; j++)
            if (m & (1 << j)) {
                w[uf[j]] -= ua[j];
                w[ut[j]] += ua[j];
            }
        if (memcmp(w, got, sizeof(w)) == 0) {
            ok = true;
            which = m;
        }
    }
    CHECK(ok, "recovered balances differ from the acknowledged transfers (+ unknown ones)");
    CHECK(acked > 10, "too few transfers acknowledged before the crash (%ld)", acked);
    fprintf(stderr,
            "txn_test ownercrash: %ld acknowledged transfers recovered exactly once; %d of %d "
            "in-flight transfers were committed\n",
            acked, __builtin_popcount((unsigned)which), nu);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "role") == 0) {
        g_role = argv[2];
        g_dir = argv[3];
        const char *arg = argc > 4 ? argv[4] : "";
        if (strcmp(g_role, "owner") == 0)
            return role_owner(arg);
        if (strcmp(g_role, "client") == 0)
            return role_client(arg);
        if (strcmp(g_role, "recover") == 0)
            return role_recover();
        fprintf(stderr, "txn_test: unknown role %s\n", g_role);
        return 2;
    }
    const char *mode = argc > 2 ? argv[2] : "rma";
    bool crash = argc >= 2 && strcmp(argv[1], "ownercrash") == 0;
    bool victim = !(argc > 3 && strcmp(argv[3], "novictim") == 0);
    if (argc < 2 || (!crash && strcmp(argv[1], "bank") != 0) ||
        (strcmp(mode, "rma") != 0 && strcmp(mode, "rpc") != 0 && strcmp(mode, "auto") != 0 &&
         strcmp(mode, "rlock") != 0)) {
        fprintf(stderr, "usage: txn_test bank [rma|auto|rpc|rlock] [novictim] | ownercrash\n");
        return 2;
    }
    driver_begin(58);
    int rc = crash ? scenario_ownercrash() : scenario_bank(mode, victim);
    if (rc == 0)
        printf("txn_test %s: ok\n", argv[1]);
    return rc;
}
