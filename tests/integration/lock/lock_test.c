/*
 * lock_test.c - multi-process tests of engine/lock over the UCX transport.
 *
 *   lock_test SCENARIO            run a scenario as the driver (ctest)
 *   lock_test role NAME DIR ...   one process of a scenario (exec'ed)
 *
 * Scenarios (UCX_TLS from the environment; ctest runs each over TCP only and
 * over shared memory):
 *   mutex     two homes; 4 client processes x 10,000 exclusive acquisitions
 *             (TSR_LOCK_TEST_N; over TCP through the served path)
 *             of one lock, each a plain read-modify-write of a counter in a
 *             file (pread/pwrite): the counter ends at exactly 40,000, and
 *             every process sees its tokens strictly increase.
 *   shared    4 processes mixing shared and exclusive grants write a witness
 *             log of their hold intervals (CLOCK_MONOTONIC, taken inside the
 *             hold): readers' intervals overlap each other, and no writer's
 *             interval overlaps any other interval.
 *   fairness  3 reader processes keep a steady overlapping stream of shared
 *             grants; a writer process asks 30 times: no reader that asked
 *             after it is granted before it (tokens are queue places), and
 *             it waits for at most 6 reader grants (10 of 30 may exceed that:
 *             the count starts before its request reaches the lock).
 *   lease     a holder with a 300 ms lease is killed with SIGKILL; a waiter
 *             gets the lock after the lease, with a larger token; the dead
 *             holder's token is refused by the fencing check.
 *   timeout   against a held lock: try_acquire is refused at once, acquire
 *             with a 200 ms timeout gives up in time (and its abandoned
 *             ticket does not block the queue), bad input is refused, and
 *             status reports the holder and the waiters.
 *
 * Processes: the driver forks and execs itself, every role arms alarm(), the
 * driver bounds every wait and kills (by PID) what overstays. Roles talk to
 * the driver through files in a private temporary directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "tessera/lock.h"
#include "transport.h"

static const char *g_dir;
static const char *g_role;

#define MAX_KIDS 12
typedef struct kid {
    pid_t pid;
    char name[32];
    bool done;
    int status;
} kid_t;
static kid_t kids[MAX_KIDS];
static int nkids;

static void kill_all(void)
{
    for (int i = 0; i < nkids; i++)
        if (!kids[i].done) {
            kill(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, NULL, 0);
            kids[i].done = true;
        }
}

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static void rm_dir(void)
{
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        path_of(p, sizeof(p), e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(g_dir);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] FAIL: ", g_role ? g_role : "driver");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!g_role) {
        kill_all();
        if (g_dir)
            rm_dir();
    }
    exit(1);
}

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fail(__VA_ARGS__);                                                                 \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void write_text(const char *name, const char *fmt, ...)
{
    char p[512], tmp[520], buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    path_of(p, sizeof(p), name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    FILE *f = fopen(tmp, "wb");
    CHECK(f && fwrite(buf, 1, (size_t)n, f) == (size_t)n && fclose(f) == 0, "write %s", tmp);
    CHECK(rename(tmp, p) == 0, "rename %s", p);
}

static bool file_exists(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    return access(p, F_OK) == 0;
}

static long long read_num(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    CHECK(f, "open %s", p);
    long long v = 0;
    CHECK(fscanf(f, "%lld", &v) == 1, "parse %s", p);
    fclose(f);
    return v;
}

/* ---- driver helpers ------------------------------------------------------------- */

static pid_t spawn(const char *role, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = "lock_test";
    argv[n++] = "role";
    argv[n++] = (char *)role;
    argv[n++] = (char *)g_dir;
    va_list ap;
    va_start(ap, role);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    CHECK(nkids < MAX_KIDS, "too many children");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    kids[nkids].pid = pid;
    snprintf(kids[nkids].name, sizeof(kids[nkids].name), "%s", role);
    kids[nkids].done = false;
    nkids++;
    return pid;
}

static void reap(void)
{
    for (int i = 0; i < nkids; i++) {
        if (kids[i].done)
            continue;
        int st;
        if (waitpid(kids[i].pid, &st, WNOHANG) == kids[i].pid) {
            kids[i].done = true;
            kids[i].status = st;
        }
    }
}

static void check_kids_ok(const char *waiting_for)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i].done && !(WIFEXITED(kids[i].status) && WEXITSTATUS(kids[i].status) == 0) &&
            !(WIFSIGNALED(kids[i].status) && WTERMSIG(kids[i].status) == SIGKILL))
            fail("%s died (status 0x%x) while waiting for %s", kids[i].name, kids[i].status,
                 waiting_for);
}

static void wait_file(const char *name, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (!file_exists(name)) {
        reap();
        check_kids_ok(name);
        CHECK(now_s() < end, "timed out waiting for %s", name);
        usleep(5000);
    }
}

static int wait_kid(pid_t pid, double timeout_s)
{
    double end = now_s() + timeout_s;
    for (;;) {
        reap();
        for (int i = 0; i < nkids; i++)
            if (kids[i].pid == pid && kids[i].done)
                return kids[i].status;
        CHECK(now_s() < end, "child %d did not finish within %.0f s", (int)pid, timeout_s);
        usleep(5000);
    }
}

static void expect_ok(pid_t pid, double timeout_s)
{
    int st = wait_kid(pid, timeout_s);
    for (int i = 0; i < nkids; i++)
        if (kids[i].pid == pid)
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s exited with status 0x%x",
                  kids[i].name, st);
}

/* Starts n homes; their ports go to files port.0 .. port.n-1. */
static void start_homes(int n, char ports[][16])
{
    for (int i = 0; i < n; i++) {
        char idx[8], name[16];
        snprintf(idx, sizeof(idx), "%d", i);
        spawn("home", idx, NULL);
        snprintf(name, sizeof(name), "port.%d", i);
        wait_file(name, 30);
        snprintf(ports[i], 16, "%lld", read_num(name));
    }
}

static void stop_homes(void)
{
    write_text("stop", "1");
    for (int i = 0; i < nkids; i++)
        if (strcmp(kids[i].name, "home") == 0)
            expect_ok(kids[i].pid, 20);
}

/* ---- role helpers --------------------------------------------------------------- */

typedef struct role_env {
    tsr_transport_t *t;
    tsr_lock_client_t *c;
} role_env_t;

static void role_connect(role_env_t *e, uint32_t node, int nhomes, char **ports)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t p = {.node_id = node, .spin_us = 50};
    CHECK(tsr_transport_create(NULL, &p, &e->t, &err) == TSR_OK, "transport: %s", err.message);
    tsr_lock_home_addr_t homes[4];
    for (int i = 0; i < nhomes; i++)
        homes[i] = (tsr_lock_home_addr_t){"127.0.0.1", (uint16_t)atoi(ports[i]), 0};
    tsr_lock_client_params_t cp = {.transport = e->t, .homes = homes, .nhomes = (size_t)nhomes,
                                   .connect_timeout_ms = 20000, .op_timeout_ms = 20000};
    tsr_lock_err_t lerr = {0};
    CHECK(tsr_lock_client_create(&cp, &e->c, &lerr) == TSR_OK, "lock client: %s", lerr.message);
}

static void role_close(role_env_t *e)
{
    tsr_lock_client_destroy(e->c);
    tsr_transport_destroy(e->t);
}

static uint64_t must_acquire(role_env_t *e, const char *name, tsr_lock_mode_t mode,
                             int64_t lease_ms, int64_t timeout_ms)
{
    tsr_lock_opts_t o = {mode, lease_ms, timeout_ms};
    uint64_t tok = 0;
    tsr_lock_err_t err = {0};
    tsr_status_t rc = tsr_lock_acquire(e->c, name, &o, &tok, &err);
    CHECK(rc == TSR_OK, "acquire %s: %s (%s)", name, tsr_status_name(rc), err.message);
    return tok;
}

static void must_release(role_env_t *e, const char *name, uint64_t tok)
{
    tsr_lock_err_t err = {0};
    tsr_status_t rc = tsr_lock_release(e->c, name, tok, &err);
    CHECK(rc == TSR_OK, "release %s: %s (%s)", name, tsr_status_name(rc), err.message);
}

/* A shared counter page (MAP_SHARED file) for witnesses the lock does not guard. */
static _Atomic long *map_counters(void)
{
    char p[512];
    path_of(p, sizeof(p), "counters");
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "counters file");
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap");
    close(fd);
    return m;
}

/* ---- roles ---------------------------------------------------------------------- */

static int role_home(int argc, char **argv)
{
    int idx = atoi(argv[0]);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t p = {.node_id = 1 + (uint32_t)idx, .listen_host = "127.0.0.1",
                                .spin_us = 200};
    tsr_transport_t *t;
    CHECK(tsr_transport_create(NULL, &p, &t, &err) == TSR_OK, "transport: %s", err.message);
    tsr_lock_home_t *h;
    tsr_lock_home_params_t hp = {.slots = 1024};
    tsr_lock_err_t lerr = {0};
    CHECK(tsr_lock_home_create(t, &hp, &h, &lerr) == TSR_OK, "home: %s", lerr.message);
    CHECK(tsr_transport_start_thread(t, &err) == TSR_OK, "thread: %s", err.message);
    char name[16];
    snprintf(name, sizeof(name), "port.%d", idx);
    write_text(name, "%u", (unsigned)tsr_transport_port(t));
    while (!file_exists("stop"))
        usleep(10000);
    tsr_transport_stop_thread(t);
    tsr_lock_home_destroy(h);
    tsr_transport_destroy(t);
    (void)argc;
    return 0;
}

/* mutex IDX N NHOMES PORT... */
static int role_mutex(int argc, char **argv)
{
    int idx = atoi(argv[0]), n = atoi(argv[1]), nh = atoi(argv[2]);
    CHECK(argc >= 3 + nh, "usage");
    role_env_t e;
    role_connect(&e, 100 + (uint32_t)idx, nh, argv + 3);
    char p[512];
    path_of(p, sizeof(p), "counter");
    int fd = open(p, O_RDWR);
    CHECK(fd >= 0, "open counter");
    uint64_t last = 0;
    for (int i = 0; i < n; i++) {
        uint64_t tok = must_acquire(&e, "counter", TSR_LOCK_EXCLUSIVE, 5000, 30000);
        CHECK(tok > last, "token %llu after %llu", (unsigned long long)tok,
              (unsigned long long)last);
        last = tok;
        long long v;
        CHECK(pread(fd, &v, sizeof(v), 0) == sizeof(v), "pread");
        v++;
        CHECK(pwrite(fd, &v, sizeof(v), 0) == sizeof(v), "pwrite");
        must_release(&e, "counter", tok);
    }
    close(fd);
    role_close(&e);
    return 0;
}

/* rw IDX N PORT: mixed grants, hold intervals to log.IDX */
static int role_rw(int argc, char **argv)
{
    int idx = atoi(argv[0]), n = atoi(argv[1]);
    (void)argc;
    role_env_t e;
    role_connect(&e, 200 + (uint32_t)idx, 1, argv + 2);
    char p[512], name[32];
    snprintf(name, sizeof(name), "log.%d", idx);
    path_of(p, sizeof(p), name);
    FILE *log = fopen(p, "w");
    CHECK(log, "open log");
    unsigned seed = (unsigned)idx * 7919u + 1;
    for (int i = 0; i < n; i++) {
        bool w = rand_r(&seed) % 5 == 0;
        uint64_t tok = must_acquire(&e, "rw", w ? TSR_LOCK_EXCLUSIVE : TSR_LOCK_SHARED, 5000,
                                    30000);
        double a = now_s();
        usleep(200 + rand_r(&seed) % 300);
        double b = now_s();
        must_release(&e, "rw", tok);
        fprintf(log, "%c %.9f %.9f\n", w ? 'X' : 'S', a, b);
    }
    CHECK(fclose(log) == 0, "close log");
    role_close(&e);
    return 0;
}

/* reader PORT: shared grants until "stop-readers"; counts grants in counters[0] */
static int role_reader(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 300 + (uint32_t)getpid() % 1000, 1, argv);
    _Atomic long *cnt = map_counters();
    while (!file_exists("stop-readers")) {
        uint64_t tok = must_acquire(&e, "fair", TSR_LOCK_SHARED, 5000, 30000);
        atomic_fetch_add(&cnt[0], 1);
        /* the largest reader token granted so far (FIFO check: the writer's) */
        long cur = atomic_load(&cnt[2]);
        while ((long)tok > cur && !atomic_compare_exchange_weak(&cnt[2], &cur, (long)tok))
            ;
        if (atomic_load(&cnt[1]) != 0)
            fail("a reader holds while the writer holds");
        usleep(300);
        must_release(&e, "fair", tok);
    }
    role_close(&e);
    return 0;
}

/* writer PORT: 30 exclusive grants; the worst count of reader grants between
 * asking and getting goes to file "worst" */
static int role_writer(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 400, 1, argv);
    _Atomic long *cnt = map_counters();
    while (atomic_load(&cnt[0]) < 100)
        usleep(1000);
    long worst = 0, over = 0;
    for (int k = 0; k < 30; k++) {
        long before = atomic_load(&cnt[0]);
        uint64_t tok = must_acquire(&e, "fair", TSR_LOCK_EXCLUSIVE, 5000, 10000);
        atomic_store(&cnt[1], 1);
        /* FIFO, exactly: tokens are places in the queue, so no reader that
         * asked after us may have been granted before us */
        long rmax = atomic_load(&cnt[2]);
        CHECK(rmax < (long)tok, "a reader with token %ld was granted before the writer's %llu",
              rmax, (unsigned long long)tok);
        long between = atomic_load(&cnt[0]) - before;
        if (between > worst)
            worst = between;
        if (between > 6) /* 2 x the 3 readers: scenario_fairness */
            over++;
        usleep(500);
        atomic_store(&cnt[1], 0);
        must_release(&e, "fair", tok);
        usleep(2000);
    }
    write_text("worst", "%ld", worst);
    write_text("over", "%ld", over);
    role_close(&e);
    return 0;
}

/* victim PORT: holds "L" with a 300 ms lease, says its token, waits to be killed */
static int role_victim(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 500, 1, argv);
    uint64_t tok = must_acquire(&e, "L", TSR_LOCK_EXCLUSIVE, 300, 5000);
    write_text("victim-token", "%llu", (unsigned long long)tok);
    for (;;)
        pause();
    return 0; /* not reached: the test kills this process */
}

/* successor PORT: waits for "L", checks fencing against the victim's token */
static int role_successor(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 501, 1, argv);
    uint64_t vt = (uint64_t)read_num("victim-token");
    tsr_lock_fence_t *fence;
    CHECK(tsr_lock_fence_create(&fence, NULL) == TSR_OK, "fence");
    CHECK(tsr_lock_fence_check(fence, "L", vt, NULL) == TSR_OK, "victim's first write");
    /* the victim is being killed now; our acquire must wait out its lease */
    double t0 = now_s();
    uint64_t tok = must_acquire(&e, "L", TSR_LOCK_EXCLUSIVE, 5000, 10000);
    double waited = now_s() - t0;
    CHECK(tok > vt, "token %llu not larger than the dead holder's %llu",
          (unsigned long long)tok, (unsigned long long)vt);
    CHECK(tsr_lock_fence_check(fence, "L", tok, NULL) == TSR_OK, "new holder's write");
    tsr_lock_err_t err = {0};
    CHECK(tsr_lock_fence_check(fence, "L", vt, &err) == TSR_ERR_STALE,
          "stale write not refused");
    tsr_lock_status_t st;
    CHECK(tsr_lock_status(e.c, "L", &st, NULL) == TSR_OK && st.state == TSR_LOCK_HELD_EXCLUSIVE &&
              st.last_token == tok && st.epoch >= 1,
          "status after takeover");
    must_release(&e, "L", tok);
    write_text("successor", "%.3f %llu", waited, (unsigned long long)tok);
    tsr_lock_fence_destroy(fence);
    role_close(&e);
    return 0;
}

/* holder PORT: holds "T" (long lease) until "release-T", then releases */
static int role_holder(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 600, 1, argv);
    uint64_t tok = must_acquire(&e, "T", TSR_LOCK_EXCLUSIVE, 20000, 5000);
    write_text("holder-token", "%llu", (unsigned long long)tok);
    while (!file_exists("release-T"))
        usleep(2000);
    must_release(&e, "T", tok);
    write_text("released-T", "%.6f", now_s());
    role_close(&e);
    return 0;
}

/* prober PORT: against the held "T" */
static int role_prober(int argc, char **argv)
{
    (void)argc;
    role_env_t e;
    role_connect(&e, 601, 1, argv);
    uint64_t tok;
    tsr_lock_err_t err = {0};
    tsr_lock_opts_t x = {TSR_LOCK_EXCLUSIVE, 1000, 200};
    CHECK(tsr_lock_try_acquire(e.c, "T", &x, &tok, NULL) == TSR_ERR_CONFLICT, "try on held");
    double t0 = now_s();
    tsr_status_t rc = tsr_lock_acquire(e.c, "T", &x, &tok, &err);
    double el = now_s() - t0;
    CHECK(rc == TSR_ERR_TIMEOUT, "acquire with timeout: %s", tsr_status_name(rc));
    CHECK(el >= 0.195 && el < 3.0, "timeout took %.3f s", el);
    tsr_lock_opts_t s = {TSR_LOCK_SHARED, 1000, 100};
    CHECK(tsr_lock_acquire(e.c, "T", &s, &tok, NULL) == TSR_ERR_TIMEOUT, "shared timeout");
    /* bad input over the wire path too */
    CHECK(tsr_lock_acquire(e.c, "", NULL, &tok, NULL) == TSR_ERR_INVALID_ARG, "empty name");
    tsr_lock_opts_t neg = {TSR_LOCK_EXCLUSIVE, -1, 100};
    CHECK(tsr_lock_acquire(e.c, "T", &neg, &tok, NULL) == TSR_ERR_INVALID_ARG, "negative lease");
    CHECK(tsr_lock_release(e.c, "T", 42, NULL) == TSR_ERR_INVALID_ARG, "unknown token");
    tsr_lock_status_t st;
    CHECK(tsr_lock_status(e.c, "nope", &st, NULL) == TSR_ERR_NOT_FOUND, "unknown lock");
    CHECK(tsr_lock_status(e.c, "T", &st, NULL) == TSR_OK, "status");
    CHECK(st.state == TSR_LOCK_HELD_EXCLUSIVE && st.holders == 1, "status state %d holders %u",
          (int)st.state, st.holders);
    CHECK(st.last_token == (uint64_t)read_num("holder-token"), "status token");
    /* now queue for real behind the abandoned tickets; the holder lets go */
    write_text("release-T", "1");
    tsr_lock_opts_t w = {TSR_LOCK_EXCLUSIVE, 1000, 5000};
    rc = tsr_lock_acquire(e.c, "T", &w, &tok, &err);
    double got = now_s();
    CHECK(rc == TSR_OK, "acquire after release: %s (%s)", tsr_status_name(rc), err.message);
    double rel = 0;
    for (int i = 0; i < 200 && !file_exists("released-T"); i++)
        usleep(5000);
    char p[512];
    path_of(p, sizeof(p), "released-T");
    FILE *f = fopen(p, "r");
    CHECK(f && fscanf(f, "%lf", &rel) == 1, "released-T");
    fclose(f);
    /* long before the holder's 20 s lease or the abandoned tickets' expiry */
    CHECK(got - rel < 2.0, "granted %.3f s after the release", got - rel);
    must_release(&e, "T", tok);
    role_close(&e);
    return 0;
}

/* ---- scenarios ------------------------------------------------------------------ */

static int scenario_mutex(void)
{
    char ports[2][16];
    start_homes(2, ports);
    char p[512];
    path_of(p, sizeof(p), "counter");
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    long long zero = 0;
    CHECK(fd >= 0 && pwrite(fd, &zero, sizeof(zero), 0) == sizeof(zero), "counter file");
    close(fd);
    /* TSR_LOCK_TEST_N: ctest sets 10000 for both sets; over TCP the clients
     * take the served path (docs/locks.md, transports) */
    const int N = getenv("TSR_LOCK_TEST_N") ? atoi(getenv("TSR_LOCK_TEST_N")) : 10000;
    char ns[16];
    snprintf(ns, sizeof(ns), "%d", N);
    pid_t c[4];
    double t0 = now_s();
    for (int i = 0; i < 4; i++) {
        char idx[8];
        snprintf(idx, sizeof(idx), "%d", i);
        c[i] = spawn("mutex", idx, ns, "2", ports[0], ports[1], NULL);
    }
    for (int i = 0; i < 4; i++)
        expect_ok(c[i], 90);
    double el = now_s() - t0;
    fd = open(p, O_RDONLY);
    long long v = -1;
    CHECK(fd >= 0 && pread(fd, &v, sizeof(v), 0) == sizeof(v), "read counter");
    close(fd);
    CHECK(v == 4LL * N, "counter %lld, want %d", v, 4 * N);
    stop_homes();
    printf("mutex: 4 x %d exclusive grants, counter %lld, %.2f s (%s)\n", N, v, el,
           getenv("TSR_TEST_TLS") ? getenv("TSR_TEST_TLS") : "default");
    return 0;
}

typedef struct ival {
    char mode;
    double a, b;
} ival_t;

static int cmp_ival(const void *x, const void *y)
{
    const ival_t *p = x, *q = y;
    return p->a < q->a ? -1 : p->a > q->a;
}

static int scenario_shared(void)
{
    char ports[1][16];
    start_homes(1, ports);
    /* over TCP every poll is served by the home's CPU: half as many */
    const char *tls = getenv("TSR_TEST_TLS");
    enum { NP = 4, NMAX = 400 };
    const int N = tls && strcmp(tls, "tcp") == 0 ? NMAX / 2 : NMAX;
    char ns[16];
    snprintf(ns, sizeof(ns), "%d", N);
    pid_t c[NP];
    for (int i = 0; i < NP; i++) {
        char idx[8];
        snprintf(idx, sizeof(idx), "%d", i);
        c[i] = spawn("rw", idx, ns, ports[0], NULL);
    }
    for (int i = 0; i < NP; i++)
        expect_ok(c[i], 90);
    stop_homes();
    static ival_t iv[NP * NMAX];
    int n = 0;
    for (int i = 0; i < NP; i++) {
        char p[512], name[32];
        snprintf(name, sizeof(name), "log.%d", i);
        path_of(p, sizeof(p), name);
        FILE *f = fopen(p, "r");
        CHECK(f, "log %d", i);
        while (n < NP * N && fscanf(f, " %c %lf %lf", &iv[n].mode, &iv[n].a, &iv[n].b) == 3)
            n++;
        fclose(f);
    }
    CHECK(n == NP * N, "witness log has %d intervals, want %d", n, NP * N);
    qsort(iv, (size_t)n, sizeof(iv[0]), cmp_ival);
    int overlaps = 0, writers = 0;
    for (int i = 0; i < n; i++) {
        writers += iv[i].mode == 'X';
        for (int j = i + 1; j < n && iv[j].a < iv[i].b; j++) {
            CHECK(iv[i].mode == 'S' && iv[j].mode == 'S',
                  "%c [%.6f, %.6f] overlaps %c [%.6f, %.6f]", iv[i].mode, iv[i].a, iv[i].b,
                  iv[j].mode, iv[j].a, iv[j].b);
            overlaps++;
        }
    }
    CHECK(writers > 0, "no writer in the mix");
    CHECK(overlaps > 0, "shared holders never overlapped");
    printf("shared: %d intervals (%d exclusive), %d reader overlaps, no writer overlap\n", n,
           writers, overlaps);
    return 0;
}

static int scenario_fairness(void)
{
    char ports[1][16];
    start_homes(1, ports);
    _Atomic long *cnt = map_counters();
    (void)cnt;
    enum { NR = 3 };
    for (int i = 0; i < NR; i++)
        spawn("reader", ports[0], NULL);
    pid_t w = spawn("writer", ports[0], NULL);
    expect_ok(w, 90);
    write_text("stop-readers", "1");
    for (int i = 0; i < nkids; i++)
        if (strcmp(kids[i].name, "reader") == 0)
            expect_ok(kids[i].pid, 30);
    long long worst = read_num("worst"), over = read_num("over");
    stop_homes();
    /* FIFO is checked exactly by the writer with tokens. The count: at most
     * the readers queued ahead (NR) plus those granted between the writer's
     * snapshot and its ticket (NR again), unless the writer was descheduled
     * in between or, served, its call was slow to reach the home (seen in 2
     * of 30 rounds under ASan at load 10): a starved writer would exceed it
     * every time, so 10 of 30 are allowed */
    CHECK(over <= 10, "writer waited for more than %d reader grants %lld times (worst %lld)",
          2 * NR, over, worst);
    printf("fairness: a writer waited at most %lld reader grants (bound %d exceeded %lld of 30 "
           "times)\n",
           worst, 2 * NR, over);
    return 0;
}

static int scenario_lease(void)
{
    char ports[1][16];
    start_homes(1, ports);
    pid_t v = spawn("victim", ports[0], NULL);
    wait_file("victim-token", 30);
    kill(v, SIGKILL);
    wait_kid(v, 10);
    pid_t s = spawn("successor", ports[0], NULL);
    expect_ok(s, 60);
    stop_homes();
    char p[512];
    path_of(p, sizeof(p), "successor");
    FILE *f = fopen(p, "r");
    double waited;
    unsigned long long tok;
    CHECK(f && fscanf(f, "%lf %llu", &waited, &tok) == 2, "successor file");
    fclose(f);
    printf("lease: holder killed, successor granted after %.0f ms with token %llu > %lld; stale "
           "write refused\n",
           waited * 1000, tok, read_num("victim-token"));
    return 0;
}

static int scenario_timeout(void)
{
    char ports[1][16];
    start_homes(1, ports);
    pid_t h = spawn("holder", ports[0], NULL);
    wait_file("holder-token", 30);
    pid_t p = spawn("prober", ports[0], NULL);
    expect_ok(p, 60);
    expect_ok(h, 30);
    stop_homes();
    printf("timeout: try refused, 200 ms timeout honoured, abandoned tickets skipped\n");
    return 0;
}

static int run_role(const char *role, int argc, char **argv)
{
    if (strcmp(role, "home") == 0)
        return role_home(argc, argv);
    if (strcmp(role, "mutex") == 0)
        return role_mutex(argc, argv);
    if (strcmp(role, "rw") == 0)
        return role_rw(argc, argv);
    if (strcmp(role, "reader") == 0)
        return role_reader(argc, argv);
    if (strcmp(role, "writer") == 0)
        return role_writer(argc, argv);
    if (strcmp(role, "victim") == 0)
        return role_victim(argc, argv);
    if (strcmp(role, "successor") == 0)
        return role_successor(argc, argv);
    if (strcmp(role, "holder") == 0)
        return role_holder(argc, argv);
    if (strcmp(role, "prober") == 0)
        return role_prober(argc, argv);
    fail("unknown role %s", role);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "role") == 0) {
        g_role = argv[2];
        g_dir = argv[3];
        alarm(100); /* no child outlives a hang */
        return run_role(argv[2], argc - 4, argv + 4);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: lock_test mutex|shared|fairness|lease|timeout\n");
        return 2;
    }
    char tmpl[] = "/tmp/tsr_lock_test.XXXXXX";
    CHECK(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    g_dir = tmpl;
    int rc;
    if (strcmp(argv[1], "mutex") == 0)
        rc = scenario_mutex();
    else if (strcmp(argv[1], "shared") == 0)
        rc = scenario_shared();
    else if (strcmp(argv[1], "fairness") == 0)
        rc = scenario_fairness();
    else if (strcmp(argv[1], "lease") == 0)
        rc = scenario_lease();
    else if (strcmp(argv[1], "timeout") == 0)
        rc = scenario_timeout();
    else {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        rc = 2;
    }
    kill_all();
    rm_dir();
    return rc;
}
