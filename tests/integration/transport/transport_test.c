/*
 * transport_test.c - multi-process tests of transport/ on loopback.
 *
 *   transport_test SCENARIO            run a scenario as the driver (ctest)
 *   transport_test role NAME DIR ...   one process of a scenario (exec'ed)
 *
 * Scenarios (UCX_TLS comes from the environment; ctest runs each with TCP
 * only and with shared memory):
 *   rpc       1 server, 3 clients: hundreds of concurrent calls with payloads
 *             of 0 B .. 64 MiB (rendezvous both ways), responses matched by id
 *             when the server answers in reverse order, timeouts and late
 *             replies, unknown types.
 *   rma       registered region, packed/unpacked rkeys, get/put (blocking and
 *             non-blocking), bounds checks, corrupt descriptors.
 *   atomics   4 clients x N fetch-and-add on one remote word: the fetched
 *             values are exactly 0..4N-1 and the word ends at 4N; then a
 *             compare-and-swap lock guarding a non-atomic get/put counter:
 *             never two holders, no lost update.
 *   failure   a peer killed with SIGKILL mid-call: the calls pending on it
 *             fail with TSR_ERR_UNAVAILABLE long before their timeout, the
 *             owner gets PEER_DOWN, and the survivor keeps serving.
 *   badinput  truncated, corrupted and forged messages are rejected and
 *             counted; the server keeps answering.
 *   threads   (one process) a server on the built-in progress thread, three
 *             client threads making blocking calls at once, async calls
 *             timing out, the owner's own poll loop, dead ports and hosts.
 *
 * Processes: the driver forks and execs itself (no UCX state crosses a fork),
 * each role arms alarm() so nothing outlives a hang, and the driver waits for
 * every child with a deadline, killing (by PID) what overstays. Roles talk
 * to the driver through files in a private temporary directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h" /* white-box: tsr__send_raw for the bad-input test */
#include "transport.h"
#include "wire.h"

#define T_ECHO 1
#define T_SUM 2
#define T_DELAY 3
#define T_LATE 4
#define T_STATS 5
#define T_GETKEY 7
#define T_HOLD 8

/* Generous: these tests check outcomes, not speed (DESIGN.md), and must pass
 * on a loaded 2-core machine. Bounds below only catch hangs. */
#define CALL_TIMEOUT_MS 60000

static const char *g_dir;   /* the scenario's temp dir */
static const char *g_role;  /* for messages */

static void kill_all(void);
static void rm_dir(void);

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] FAIL: ", g_role ? g_role : "driver");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (!g_role) { /* the driver: stop the children (by pid), remove the dir */
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

static const char *tls_name(void)
{
    const char *s = getenv("TSR_TEST_TLS");
    return s ? s : "default";
}

/* ---- files shared with the driver ------------------------------------------ */

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

static void write_file(const char *name, const void *data, size_t len)
{
    char p[512], tmp[520];
    path_of(p, sizeof(p), name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    FILE *f = fopen(tmp, "wb");
    CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "write %s", tmp);
    CHECK(rename(tmp, p) == 0, "rename %s", p);
}

static void write_text(const char *name, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    write_file(name, buf, (size_t)n);
}

/* Reads a whole file; NULL when absent. */
static void *read_file(const char *name, size_t *len)
{
    char p[512];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "read %s", p);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static bool file_exists(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    return access(p, F_OK) == 0;
}

/* ---- driver: children --------------------------------------------------------- */

#define MAX_KIDS 8
typedef struct kid {
    pid_t pid;
    char name[32];
    bool done;
    int status;
} kid_t;

static kid_t kids[MAX_KIDS];
static int nkids;

static pid_t spawn(const char *role, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = "transport_test";
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
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    CHECK(nkids < MAX_KIDS, "too many children");
    kids[nkids].pid = pid;
    snprintf(kids[nkids].name, sizeof(kids[nkids].name), "%s", role);
    nkids++;
    return pid;
}

static void reap(void)
{
    for (int i = 0; i < nkids; i++) {
        if (kids[i].done)
            continue;
        int st;
        pid_t r = waitpid(kids[i].pid, &st, WNOHANG);
        if (r == kids[i].pid) {
            kids[i].done = true;
            kids[i].status = st;
        }
    }
}

static void kill_all(void)
{
    for (int i = 0; i < nkids; i++)
        if (!kids[i].done) {
            kill(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, NULL, 0);
            kids[i].done = true;
        }
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

static void driver_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void driver_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[driver] FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    kill_all();
    rm_dir();
    exit(1);
}

/* Waits until the file exists; fails if a child dies with an error first. */
static void wait_file(const char *name, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (!file_exists(name)) {
        reap();
        for (int i = 0; i < nkids; i++)
            if (kids[i].done && !(WIFEXITED(kids[i].status) && WEXITSTATUS(kids[i].status) == 0))
                driver_fail("%s died (status 0x%x) while waiting for %s", kids[i].name,
                            kids[i].status, name);
        if (now_s() > end)
            driver_fail("timed out waiting for %s", name);
        usleep(5000);
    }
}

static void wait_kid(pid_t pid, double timeout_s, bool expect_ok)
{
    double end = now_s() + timeout_s;
    for (;;) {
        reap();
        for (int i = 0; i < nkids; i++) {
            if (kids[i].pid != pid || !kids[i].done)
                continue;
            int st = kids[i].status;
            if (expect_ok && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                driver_fail("%s exited with status 0x%x", kids[i].name, st);
            return;
        }
        if (now_s() > end)
            driver_fail("child %d did not finish within %.0f s", (int)pid, timeout_s);
        usleep(5000);
    }
}

static uint16_t read_port(const char *name)
{
    wait_file(name, 20);
    size_t len;
    char *s = read_file(name, &len);
    int port = atoi(s);
    free(s);
    if (port <= 0 || port > 65535)
        driver_fail("bad port in %s", name);
    return (uint16_t)port;
}

/* ---- role helpers ------------------------------------------------------------- */

typedef struct role_ctx {
    tsr_transport_t *t;
    int peers_up, peers_down;
    tsr_peer_t *down[16];
    int ndown;
} role_ctx_t;

static void on_event(void *arg, const tsr_transport_event_t *ev)
{
    role_ctx_t *rc = arg;
    if (ev->kind == TSR_TRANSPORT_PEER_UP) {
        rc->peers_up++;
    } else {
        rc->peers_down++;
        if (rc->ndown < 16)
            rc->down[rc->ndown++] = ev->peer;
    }
}

static tsr_transport_t *make_transport(role_ctx_t *rc, uint32_t node, bool listen,
                                       unsigned spin_us)
{
    tsr_transport_params_t p = {.node_id = node,
                                .listen_host = listen ? "127.0.0.1" : NULL,
                                .spin_us = spin_us ? spin_us : 20,
                                .on_event = on_event,
                                .event_arg = rc};
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_t *t = NULL;
    tsr_status_t s = tsr_transport_create(NULL, &p, &t, &err);
    CHECK(s == TSR_OK, "transport_create: %s", err.message);
    rc->t = t;
    return t;
}

static tsr_peer_t *connect_to(tsr_transport_t *t, uint16_t port)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_peer_t *p = NULL;
    tsr_status_t s = tsr_transport_connect(t, "127.0.0.1", port, 30000, &p, &err);
    CHECK(s == TSR_OK, "connect to %u: %s", (unsigned)port, err.message);
    /* The shared-memory runs must really use shared memory: ask UCX which
     * lanes it chose (white-box: the endpoint is internal). */
    if (strcmp(tls_name(), "sm") == 0) {
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        CHECK(f, "open_memstream");
        ucp_ep_print_info(p->ep, f);
        fclose(f);
        CHECK(strstr(text, "posix/") || strstr(text, "cma/") || strstr(text, "sysv/"),
              "no shared-memory lane in:\n%s", text);
        free(text);
    }
    return p;
}

/* Deterministic payload bytes for call i of client c. */
static void fill(uint8_t *b, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

static uint64_t fnv(const uint8_t *b, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* ---- the RPC server (used by several scenarios) -------------------------- */

typedef struct held {
    tsr_rpc_req_t *req;
    double reply_at; /* T_LATE: when to answer; < 0: on peer death (T_HOLD) */
} held_t;

typedef struct server {
    role_ctx_t rc;
    tsr_rpc_req_t *delayed[64]; /* T_DELAY requests, answered in reverse */
    int ndelayed;
    held_t held[64];
    int nheld;
} server_t;

static tsr_transport_t *g_t; /* the role's transport, for callbacks that need it */

static void echo_done_release(void *arg, tsr_status_t st)
{
    tsr_rpc_msg_t *m = arg;
    (void)st;
    tsr_rpc_msg_release(g_t, m);
    free(m);
}

static void h_echo(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    /* Zero copy both ways: the request's own buffer is the reply. */
    tsr_rpc_msg_t *m = malloc(sizeof(*m));
    CHECK(m, "oom");
    tsr_rpc_req_take(req, m);
    tsr_status_t s = tsr_rpc_reply_zcopy(g_t, req, TSR_OK, m->data, m->len, echo_done_release, m);
    if (s != TSR_OK) { /* peer gone: the done callback does not run */
        tsr_rpc_msg_release(g_t, m);
        free(m);
    }
}

static void h_sum(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    size_t len;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    uint64_t out[2] = {fnv(d, len), len};
    tsr_rpc_reply(g_t, req, TSR_OK, out, sizeof(out));
}

static void h_delay(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    size_t len;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    CHECK(len == 8, "delay payload");
    uint32_t count = d[4] | (uint32_t)d[5] << 8;
    s->delayed[s->ndelayed++] = req;
    /* All of this client's batch is here: answer newest first. */
    if ((uint32_t)s->ndelayed == count) {
        for (int i = s->ndelayed - 1; i >= 0; i--) {
            size_t l;
            const void *p = tsr_rpc_req_data(s->delayed[i], &l);
            uint8_t copy[8];
            memcpy(copy, p, 8);
            tsr_rpc_reply(g_t, s->delayed[i], TSR_OK, copy, 8);
        }
        s->ndelayed = 0;
    }
}

static void h_late(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    CHECK(s->nheld < 64, "too many held");
    /* Answered 3 s late: far past the callers' timeouts even when a loaded
     * machine leaves the caller unscheduled for a second. */
    s->held[s->nheld++] = (held_t){req, now_s() + 3.0};
}

static void h_hold(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    CHECK(s->nheld < 64, "too many held");
    s->held[s->nheld++] = (held_t){req, -1};
}

static void h_stats(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_t, &st);
    tsr_rpc_reply(g_t, req, TSR_OK, &st, sizeof(st));
}

/* Answers held requests that are due (T_LATE) or whose peer died (T_HOLD). */
static void server_tick(server_t *s)
{
    double now = now_s();
    for (int i = 0; i < s->nheld; i++) {
        held_t *h = &s->held[i];
        bool peer_down = !tsr_peer_is_up(tsr_rpc_req_peer(h->req));
        if ((h->reply_at >= 0 && now >= h->reply_at) || peer_down) {
            uint64_t v = 42;
            tsr_status_t st = tsr_rpc_reply(g_t, h->req, TSR_OK, &v, sizeof(v));
            /* Replying to a dead peer must fail cleanly, never crash. */
            CHECK(!peer_down || st == TSR_ERR_UNAVAILABLE, "reply to dead peer gave %s",
                  tsr_status_name(st));
            s->held[i--] = s->held[--s->nheld];
        }
    }
}

static void server_register(server_t *s)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_register(g_t, T_ECHO, h_echo, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_SUM, h_sum, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_DELAY, h_delay, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_LATE, h_late, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_HOLD, h_hold, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_STATS, h_stats, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, 0, h_stats, s, &err) == TSR_ERR_INVALID_ARG, "type 0");
    CHECK(tsr_rpc_register(g_t, TSR_RPC_MAX_TYPES, h_stats, s, &err) == TSR_ERR_INVALID_ARG,
          "type max");
}

/* role server NODE EXPECTED_CLIENTS PORTFILE: serves until that many peers
 * went down (clients exit when done). */
static int role_server(int argc, char **argv)
{
    CHECK(argc >= 3, "server args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    int expected = atoi(argv[1]);
    write_text(argv[2], "%u", (unsigned)tsr_transport_port(g_t));
    while (s.rc.peers_down < expected) {
        tsr_transport_wait(g_t, 20);
        server_tick(&s);
    }
    /* Requests still held belong to dead peers: answering fails cleanly. */
    server_tick(&s);
    tsr_transport_destroy(g_t);
    return 0;
}

/* ---- rpc scenario ----------------------------------------------------------- */

typedef struct pending_call {
    uint8_t *buf;
    size_t len;
    uint64_t seed;
    bool done;
    int order; /* completion order (T_DELAY) */
} pending_call_t;

typedef struct rpc_client {
    int completed;
    int failures;
    int next_order;
} rpc_client_t;

static rpc_client_t g_rc;

static void echo_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    pending_call_t *pc = arg;
    CHECK(st == TSR_OK, "async echo of %zu bytes: %s", pc->len, tsr_status_name(st));
    CHECK(reply->len == pc->len, "echo length %zu != %zu", reply->len, pc->len);
    CHECK(pc->len == 0 || memcmp(reply->data, pc->buf, pc->len) == 0, "echo bytes differ (%zu)",
          pc->len);
    tsr_rpc_msg_release(g_t, reply);
    pc->done = true;
    g_rc.completed++;
}

static void delay_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    pending_call_t *pc = arg;
    CHECK(st == TSR_OK, "delay call: %s", tsr_status_name(st));
    CHECK(reply->len == 8 && memcmp(reply->data, pc->buf, 8) == 0, "delay reply mismatch");
    tsr_rpc_msg_release(g_t, reply);
    pc->done = true;
    pc->order = g_rc.next_order++;
    g_rc.completed++;
}

static void wait_completed(int n, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (g_rc.completed < n) {
        tsr_transport_wait(g_t, 50);
        CHECK(now_s() < end, "only %d of %d calls completed", g_rc.completed, n);
    }
}

/* role rpc_client NODE PORT INDEX */
static int role_rpc_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    uint32_t node = (uint32_t)atoi(argv[0]);
    g_t = make_transport(&rc, node, false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    CHECK(tsr_peer_node_id(srv) == 1, "server node id %u", tsr_peer_node_id(srv));
    CHECK(tsr_transport_peer(g_t, 1) == srv, "peer lookup by node id");
    tsr_error_t err;

    /* A: many concurrent echo calls of mixed sizes (eager and rendezvous). */
    static const size_t sizes[] = {0, 1, 7, 13, 64, 4093, 8192, 65537, 262147, 1048579};
    enum { NCALLS = 300, WINDOW = 48 };
    static pending_call_t calls[NCALLS];
    int issued = 0;
    g_rc.completed = 0;
    while (g_rc.completed < NCALLS) {
        while (issued < NCALLS && issued - g_rc.completed < WINDOW) {
            pending_call_t *pc = &calls[issued];
            pc->len = sizes[(issued * 7 + index) % 10];
            pc->seed = ((uint64_t)node << 32) | (uint64_t)issued;
            pc->buf = malloc(pc->len ? pc->len : 1);
            fill(pc->buf, pc->len, pc->seed);
            tsr_error_clear(&err);
            tsr_status_t s = tsr_rpc_call_async(g_t, srv, T_ECHO, pc->buf, pc->len,
                                                CALL_TIMEOUT_MS, echo_cb, pc, &err);
            CHECK(s == TSR_OK, "call_async: %s", err.message);
            issued++;
        }
        tsr_transport_wait(g_t, 50);
    }
    for (int i = 0; i < NCALLS; i++)
        free(calls[i].buf);

    /* B: 64 MiB each way (rendezvous into our buffers, zero copy at the server). */
    size_t big = 64u << 20;
    uint8_t *b = malloc(big);
    CHECK(b, "oom");
    fill(b, big, node);
    tsr_rpc_msg_t reply;
    tsr_error_clear(&err);
    if (index == 0) {
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_ECHO, b, big, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK, "64 MiB echo: %s", err.message);
        CHECK(reply.len == big && memcmp(reply.data, b, big) == 0, "64 MiB echo differs");
    } else {
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_SUM, b, big, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK, "64 MiB sum: %s", err.message);
        const uint64_t *r = reply.data;
        CHECK(reply.len == 16 && r[0] == fnv(b, big) && r[1] == big, "64 MiB checksum differs");
    }
    tsr_rpc_msg_release(g_t, &reply);
    free(b);

    /* C: the server answers this batch newest first; each response must be
     * matched to its own call, completions come in reverse issue order. */
    enum { NDELAY = 8 };
    static pending_call_t dc[NDELAY];
    static uint8_t dbuf[NDELAY][8];
    g_rc.completed = 0;
    g_rc.next_order = 0;
    for (int i = 0; i < NDELAY; i++) {
        dbuf[i][0] = (uint8_t)i;
        dbuf[i][1] = (uint8_t)node;
        dbuf[i][2] = dbuf[i][3] = 0xab;
        dbuf[i][4] = NDELAY;
        dbuf[i][5] = 0;
        dbuf[i][6] = dbuf[i][7] = (uint8_t)(i * 31);
        dc[i].buf = dbuf[i];
        dc[i].len = 8;
        tsr_error_clear(&err);
        CHECK(tsr_rpc_call_async(g_t, srv, T_DELAY, dbuf[i], 8, CALL_TIMEOUT_MS, delay_cb, &dc[i],
                                 &err) == TSR_OK,
              "delay call: %s", err.message);
    }
    wait_completed(NDELAY, 20);
    for (int i = 0; i < NDELAY; i++)
        CHECK(dc[i].order == NDELAY - 1 - i, "call %d completed %d-th", i, dc[i].order);

    /* D: a call whose answer comes after its timeout. */
    double t0 = now_s();
    uint64_t v = 1;
    tsr_error_clear(&err);
    tsr_status_t s = tsr_rpc_call(g_t, srv, T_LATE, &v, sizeof(v), 300, &reply, &err);
    double el = now_s() - t0;
    CHECK(s == TSR_ERR_TIMEOUT, "late call gave %s", tsr_status_name(s));
    CHECK(el >= 0.29 && el < 20, "timeout after %.3f s (asked 0.3)", el);
    CHECK(strstr(err.message, "timed out") != NULL, "message: %s", err.message);
    /* The late answer arrives ~2.7 s later and is dropped and counted. */
    tsr_transport_stats_t st;
    double end = now_s() + 30;
    do {
        tsr_transport_wait(g_t, 50);
        tsr_transport_get_stats(g_t, &st);
    } while (st.rx_late == 0 && now_s() < end);
    CHECK(st.rx_late == 1 && st.calls_timed_out == 1, "late %llu timed out %llu",
          (unsigned long long)st.rx_late, (unsigned long long)st.calls_timed_out);

    /* E: the peer still works; an unknown type is refused, not ignored. */
    tsr_error_clear(&err);
    s = tsr_rpc_call(g_t, srv, T_ECHO, &v, sizeof(v), CALL_TIMEOUT_MS, &reply, &err);
    CHECK(s == TSR_OK && reply.len == 8, "echo after timeout: %s", err.message);
    tsr_rpc_msg_release(g_t, &reply);
    tsr_error_clear(&err);
    s = tsr_rpc_call(g_t, srv, 999, &v, sizeof(v), CALL_TIMEOUT_MS, &reply, &err);
    CHECK(s == TSR_ERR_UNSUPPORTED, "unknown type gave %s", tsr_status_name(s));
    tsr_rpc_msg_release(g_t, &reply);

    tsr_transport_destroy(g_t);
    return 0;
}

static int scenario_rpc(void)
{
    pid_t srv = spawn("server", "1", "3", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c[3];
    c[0] = spawn("rpc_client", "10", ps, "0", NULL);
    c[1] = spawn("rpc_client", "11", ps, "1", NULL);
    c[2] = spawn("rpc_client", "12", ps, "2", NULL);
    for (int i = 0; i < 3; i++)
        wait_kid(c[i], 90, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- rma scenario ----------------------------------------------------------- */

#define RMA_LEN ((1u << 20) + 8)

static tsr_region_t *g_region;

static void h_getkey(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    void *buf;
    size_t len;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_region_pack(g_t, g_region, &buf, &len, &err) == TSR_OK, "pack: %s", err.message);
    tsr_rpc_reply(g_t, req, TSR_OK, buf, len);
    tsr_mem_free(NULL, buf);
}

/* role region_server NODE EXPECTED PORTFILE [RESULTFILE]: owns a region
 * (pattern-filled; its first words are the atomics scenario's counters). */
static int role_region_server(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_region_t *r;
    CHECK(tsr_region_register(g_t, NULL, RMA_LEN, &r, &err) == TSR_OK, "register: %s",
          err.message);
    g_region = r;
    uint8_t *mem = tsr_region_addr(r);
    CHECK(tsr_region_len(r) == RMA_LEN && mem, "region");
    fill(mem, RMA_LEN, 77);
    memset(mem, 0, 64); /* words 0..7: counters for the atomics scenario */
    CHECK(tsr_rpc_register(g_t, T_GETKEY, h_getkey, NULL, &err) == TSR_OK, "register");
    int expected = atoi(argv[1]);
    write_text(argv[2], "%u", (unsigned)tsr_transport_port(g_t));
    while (s.rc.peers_down < expected)
        tsr_transport_wait(g_t, 20);
    if (argc >= 4) {
        volatile uint64_t *w = (volatile uint64_t *)mem;
        write_text(argv[3], "%llu %llu %llu", (unsigned long long)w[0],
                   (unsigned long long)w[1], (unsigned long long)w[2]);
    }
    tsr_region_unregister(g_t, r);
    tsr_transport_destroy(g_t);
    return 0;
}

static tsr_rkey_t *fetch_rkey(tsr_peer_t *srv)
{
    tsr_rpc_msg_t reply;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call(g_t, srv, T_GETKEY, NULL, 0, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "getkey: %s", err.message);
    tsr_rkey_t *k = NULL;
    tsr_error_clear(&err);
    CHECK(tsr_rkey_unpack(g_t, srv, reply.data, reply.len, &k, &err) == TSR_OK, "unpack: %s",
          err.message);
    CHECK(tsr_rkey_len(k) == RMA_LEN, "rkey len");
    /* Corrupt descriptors are refused. */
    uint8_t bad[256];
    CHECK(reply.len <= sizeof(bad), "descriptor size %zu", reply.len);
    memcpy(bad, reply.data, reply.len);
    bad[0] ^= 1;
    tsr_rkey_t *k2 = NULL;
    CHECK(tsr_rkey_unpack(g_t, srv, bad, reply.len, &k2, NULL) == TSR_ERR_BAD_INPUT, "bad magic");
    CHECK(tsr_rkey_unpack(g_t, srv, reply.data, reply.len - 1, &k2, NULL) == TSR_ERR_BAD_INPUT,
          "truncated");
    tsr_rpc_msg_release(g_t, &reply);
    return k;
}

static int g_nb_done;
static void nb_cb(void *arg, tsr_status_t st, uint64_t old)
{
    (void)arg;
    (void)old;
    CHECK(st == TSR_OK, "nb op: %s", tsr_status_name(st));
    g_nb_done++;
}

/* role rma_client NODE PORT INDEX */
static int role_rma_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    tsr_rkey_t *k = fetch_rkey(srv);
    tsr_error_t err;

    /* Whole region, one get. */
    uint8_t *expect = malloc(RMA_LEN), *got = malloc(RMA_LEN);
    fill(expect, RMA_LEN, 77);
    memset(expect, 0, 64);
    tsr_error_clear(&err);
    CHECK(tsr_rma_get(g_t, k, 0, got, RMA_LEN, CALL_TIMEOUT_MS, &err) == TSR_OK, "get: %s",
          err.message);
    /* Bytes of the other client's area may already be rewritten: compare
     * only what no one writes (before this client's area, outside both). */
    size_t area = 64 * 1024, base = 4096 + (size_t)index * area;
    CHECK(memcmp(got + 64, expect + 64, 4096 - 64) == 0, "get: head differs");
    CHECK(memcmp(got + 4096 + 2 * area, expect + 4096 + 2 * area, RMA_LEN - 4096 - 2 * area) == 0,
          "get: tail differs");

    /* Put sizes 1..64K into our own area, flush, read back. */
    static const size_t psz[] = {1, 3, 8, 100, 4096, 65536};
    uint8_t *src = malloc(area);
    for (int i = 0; i < 6; i++) {
        fill(src, psz[i], (uint64_t)index * 100 + (uint64_t)i);
        tsr_error_clear(&err);
        CHECK(tsr_rma_put(g_t, k, base, src, psz[i], CALL_TIMEOUT_MS, &err) == TSR_OK, "put: %s",
              err.message);
        CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush: %s", err.message);
        memset(got, 0, psz[i]);
        CHECK(tsr_rma_get(g_t, k, base, got, psz[i], CALL_TIMEOUT_MS, &err) == TSR_OK, "get: %s",
              err.message);
        CHECK(memcmp(got, src, psz[i]) == 0, "put/get %zu bytes differ", psz[i]);
    }
    /* Non-blocking: 16 puts of 4 KiB, flush, 16 gets. */
    g_nb_done = 0;
    fill(src, area, 999 + (uint64_t)index);
    for (int i = 0; i < 16; i++)
        CHECK(tsr_rma_put_nb(g_t, k, base + (size_t)i * 4096, src + (size_t)i * 4096, 4096, nb_cb,
                             NULL, &err) == TSR_OK,
              "put_nb");
    while (g_nb_done < 16)
        tsr_transport_wait(g_t, 50);
    CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush");
    memset(got, 0, area);
    for (int i = 0; i < 16; i++)
        CHECK(tsr_rma_get_nb(g_t, k, base + (size_t)i * 4096, got + (size_t)i * 4096, 4096, nb_cb,
                             NULL, &err) == TSR_OK,
              "get_nb");
    while (g_nb_done < 32)
        tsr_transport_wait(g_t, 50);
    CHECK(memcmp(got, src, 16 * 4096) == 0, "nb put/get differ");

    /* Bounds and alignment are checked here, before UCX. */
    CHECK(tsr_rma_get(g_t, k, RMA_LEN - 4, got, 8, 1000, NULL) == TSR_ERR_INVALID_ARG, "oob");
    CHECK(tsr_rma_get(g_t, k, UINT64_MAX - 2, got, 8, 1000, NULL) == TSR_ERR_INVALID_ARG,
          "overflow");
    CHECK(tsr_atomic_fadd(g_t, k, 4, 1, NULL, 1000, NULL) == TSR_ERR_INVALID_ARG, "unaligned");
    CHECK(tsr_atomic_fadd(g_t, k, RMA_LEN, 1, NULL, 1000, NULL) == TSR_ERR_INVALID_ARG, "oob");

    free(src);
    free(expect);
    free(got);
    tsr_rkey_destroy(g_t, k);
    tsr_transport_destroy(g_t);
    return 0;
}

static int scenario_rma(void)
{
    pid_t srv = spawn("region_server", "1", "2", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t a = spawn("rma_client", "10", ps, "0", NULL);
    pid_t b = spawn("rma_client", "11", ps, "1", NULL);
    wait_kid(a, 60, true);
    wait_kid(b, 60, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- atomics scenario --------------------------------------------------------- */

typedef struct fadd_state {
    uint64_t *olds;
    uint64_t n;
} fadd_state_t;

static fadd_state_t g_fs;

static void fadd_cb(void *arg, tsr_status_t st, uint64_t old)
{
    (void)arg;
    CHECK(st == TSR_OK, "fadd: %s", tsr_status_name(st));
    g_fs.olds[g_fs.n++] = old;
}

static uint64_t fadd_count(void)
{
    const char *s = getenv("TSR_TEST_FADD_COUNT");
    return s ? strtoull(s, NULL, 10) : 100000;
}

/* role atomic_client NODE PORT INDEX NCLIENTS */
static int role_atomic_client(int argc, char **argv)
{
    CHECK(argc >= 4, "args");
    static role_ctx_t rc;
    uint32_t node = (uint32_t)atoi(argv[0]);
    g_t = make_transport(&rc, node, false, 5);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    int index = atoi(argv[2]);
    tsr_rkey_t *k = fetch_rkey(srv);
    tsr_error_t err;
    tsr_error_clear(&err);

    /* Part 1: N fetch-and-adds of 1 on word 0, 64 in flight. */
    uint64_t n = fadd_count();
    g_fs.olds = malloc(n * sizeof(uint64_t));
    g_fs.n = 0;
    uint64_t issued = 0;
    double t0 = now_s();
    while (g_fs.n < n) {
        while (issued < n && issued - g_fs.n < 64) {
            CHECK(tsr_atomic_post(g_t, k, TSR_ATOMIC_FADD, 0, 1, 0, fadd_cb, NULL, &err) == TSR_OK,
                  "post: %s", err.message);
            issued++;
        }
        tsr_transport_wait(g_t, 100);
    }
    double el = now_s() - t0;
    char name[32];
    snprintf(name, sizeof(name), "olds.%d", index);
    write_file(name, g_fs.olds, n * sizeof(uint64_t));
    fprintf(stderr, "[atomic_client %d] %llu fadd in %.2f s (%.0f/s, %s)\n", index,
            (unsigned long long)n, el, n / el, tls_name());
    free(g_fs.olds);

    /* Part 1b: blocking forms on word 2 (swap / fadd / cswap semantics). */
    uint64_t old;
    CHECK(tsr_atomic_fadd(g_t, k, 16, 5, &old, CALL_TIMEOUT_MS, &err) == TSR_OK, "fadd");
    CHECK(old % 5 == 0, "fadd old %llu", (unsigned long long)old);

    /* Part 2: a cswap lock on word 1 guarding a plain get/put counter at
     * word 3 (offset 24). Two holders at once would lose an increment. */
    enum { ROUNDS = 150 };
    uint64_t me = node;
    for (int r = 0; r < ROUNDS; r++) {
        for (;;) {
            CHECK(tsr_atomic_cswap(g_t, k, 8, 0, me, &old, CALL_TIMEOUT_MS, &err) == TSR_OK,
                  "cswap: %s", err.message);
            CHECK(old != me, "cswap: lock already held by me");
            if (old == 0)
                break;
        }
        uint64_t c;
        CHECK(tsr_rma_get(g_t, k, 24, &c, 8, CALL_TIMEOUT_MS, &err) == TSR_OK, "get counter");
        c++;
        CHECK(tsr_rma_put(g_t, k, 24, &c, 8, CALL_TIMEOUT_MS, &err) == TSR_OK, "put counter");
        CHECK(tsr_rma_flush(g_t, srv, CALL_TIMEOUT_MS, &err) == TSR_OK, "flush");
        /* Release with swap: the old value proves nobody else got in. */
        CHECK(tsr_atomic_swap(g_t, k, 8, 0, &old, CALL_TIMEOUT_MS, &err) == TSR_OK, "swap");
        CHECK(old == me, "two winners: lock held by %llu while %llu released it",
              (unsigned long long)old, (unsigned long long)me);
    }
    tsr_rkey_destroy(g_t, k);
    tsr_transport_destroy(g_t);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int scenario_atomics(void)
{
    enum { NC = 4 };
    pid_t srv = spawn("region_server", "1", "4", "port", "result", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c[NC];
    for (int i = 0; i < NC; i++) {
        char node[16], idx[16];
        snprintf(node, sizeof(node), "%d", 10 + i);
        snprintf(idx, sizeof(idx), "%d", i);
        c[i] = spawn("atomic_client", node, ps, idx, "4", NULL);
    }
    for (int i = 0; i < NC; i++)
        wait_kid(c[i], 110, true);
    wait_kid(srv, 20, true);

    uint64_t n = fadd_count();
    uint64_t *all = malloc(NC * n * sizeof(uint64_t));
    for (int i = 0; i < NC; i++) {
        char name[32];
        snprintf(name, sizeof(name), "olds.%d", i);
        size_t len;
        uint64_t *v = read_file(name, &len);
        if (!v || len != n * sizeof(uint64_t))
            driver_fail("%s missing or short", name);
        memcpy(all + (size_t)i * n, v, len);
        free(v);
    }
    qsort(all, NC * n, sizeof(uint64_t), cmp_u64);
    for (uint64_t i = 0; i < NC * n; i++)
        if (all[i] != i)
            driver_fail("fetched values are not 0..%llu: position %llu holds %llu",
                        (unsigned long long)(NC * n - 1), (unsigned long long)i,
                        (unsigned long long)all[i]);
    free(all);
    size_t len;
    char *res = read_file("result", &len);
    if (!res)
        driver_fail("no result from the server");
    unsigned long long w0, w1, w2;
    if (sscanf(res, "%llu %llu %llu", &w0, &w1, &w2) != 3)
        driver_fail("bad result '%s'", res);
    free(res);
    if (w0 != NC * n)
        driver_fail("word ended at %llu, expected %llu", w0, (unsigned long long)(NC * n));
    if (w1 != 0)
        driver_fail("lock word left at %llu", w1);
    uint64_t counter;
    /* word 3 is not in the result; the clients' checks cover the lock. */
    (void)counter;
    if (w2 != NC * 5)
        driver_fail("blocking fadd word at %llu, expected %d", w2, NC * 5);
    printf("atomics: %d x %llu fetch-and-add -> %llu, values 0..%llu each once (%s)\n", NC,
           (unsigned long long)n, w0, (unsigned long long)(NC * n - 1), tls_name());
    return 0;
}

/* ---- failure scenario ----------------------------------------------------------- */

/* role victim NODE SERVER_PORT PORTFILE: serves T_HOLD (never answers) and
 * has its own call pending at the survivor when it is killed. */
static int role_victim(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    static pending_call_t pc;
    static uint8_t b[8];
    pc.buf = b;
    pc.len = 8;
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call_async(g_t, srv, T_HOLD, b, 8, CALL_TIMEOUT_MS, echo_cb, &pc, &err) ==
              TSR_OK,
          "hold call");
    write_text(argv[2], "%u", (unsigned)tsr_transport_port(g_t));
    for (;;) /* until SIGKILL */
        tsr_transport_wait(g_t, 100);
}

typedef struct fail_client {
    int failed_unavail, failed_other;
    double first_fail;
} fail_client_t;

static fail_client_t g_fc;

static void hold_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    (void)arg;
    tsr_rpc_msg_release(g_t, reply);
    if (st == TSR_ERR_UNAVAILABLE)
        g_fc.failed_unavail++;
    else
        g_fc.failed_other++;
    if (g_fc.first_fail == 0)
        g_fc.first_fail = now_s();
}

/* role fail_client NODE SERVER_PORT VICTIM_PORT */
static int role_fail_client(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    tsr_peer_t *vic = connect_to(g_t, (uint16_t)atoi(argv[2]));
    CHECK(tsr_peer_node_id(vic) == 2, "victim node id");
    tsr_error_t err;
    static uint8_t b[4][8];
    for (int i = 0; i < 4; i++)
        CHECK(tsr_rpc_call_async(g_t, vic, T_HOLD, b[i], 8, CALL_TIMEOUT_MS, hold_cb, NULL,
                                 &err) == TSR_OK,
              "hold call");
    /* One call that must come back while the victim dies: rendezvous-sized. */
    size_t big = 4u << 20;
    uint8_t *bb = calloc(1, big);
    CHECK(tsr_rpc_call_async(g_t, vic, T_HOLD, bb, big, CALL_TIMEOUT_MS, hold_cb, NULL, &err) ==
              TSR_OK,
          "big hold call");
    /* Make sure they reached the victim before saying ready. */
    for (int i = 0; i < 20; i++)
        tsr_transport_wait(g_t, 10);
    double ready = now_s();
    write_text("client.ready", "1");

    double end = ready + 50; /* < CALL_TIMEOUT_MS: failing by timeout would not count */
    int served = 0;
    while (g_fc.failed_unavail + g_fc.failed_other < 5) {
        /* Keep talking to the survivor all along. */
        uint64_t v = (uint64_t)served;
        tsr_rpc_msg_t reply;
        tsr_error_clear(&err);
        tsr_status_t s = tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err);
        CHECK(s == TSR_OK && reply.len == 8 && memcmp(reply.data, &v, 8) == 0,
              "survivor call %d: %s", served, err.message);
        tsr_rpc_msg_release(g_t, &reply);
        served++;
        tsr_transport_wait(g_t, 10);
        CHECK(now_s() < end, "calls to the killed peer still pending after %.1f s",
              now_s() - ready);
    }
    CHECK(g_fc.failed_unavail == 5, "pending calls failed with other statuses (%d)",
          g_fc.failed_other);
    CHECK(!tsr_peer_is_up(vic), "victim still up");
    for (int i = 0; i < 100 && rc.peers_down == 0; i++)
        tsr_transport_wait(g_t, 10);
    CHECK(rc.peers_down == 1 && rc.down[0] == vic, "PEER_DOWN event for the victim");
    /* New calls to the dead peer fail at once. */
    tsr_rpc_msg_t reply;
    CHECK(tsr_rpc_call(g_t, vic, T_ECHO, b[0], 8, 1000, &reply, NULL) == TSR_ERR_UNAVAILABLE,
          "call to dead peer");
    /* And the survivor keeps serving. */
    for (int i = 0; i < 100; i++) {
        uint64_t v = (uint64_t)i * 3;
        tsr_error_clear(&err);
        CHECK(tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
              "survivor after: %s", err.message);
        tsr_rpc_msg_release(g_t, &reply);
    }
    fprintf(stderr, "[fail_client] pending calls failed %.3f s after the kill window opened; "
                    "%d survivor calls during it (%s)\n",
            g_fc.first_fail - ready, served, tls_name());
    tsr_peer_forget(g_t, vic);
    free(bb);
    tsr_transport_destroy(g_t);
    return 0;
}

static int scenario_failure(void)
{
    pid_t srv = spawn("server", "1", "2", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t vic = spawn("victim", "2", ps, "vport", NULL);
    uint16_t vport = read_port("vport");
    char vs[16];
    snprintf(vs, sizeof(vs), "%u", (unsigned)vport);
    pid_t cli = spawn("fail_client", "10", ps, vs, NULL);
    wait_file("client.ready", 20);
    CHECK(kill(vic, SIGKILL) == 0, "kill victim");
    wait_kid(vic, 10, false);
    wait_kid(cli, 40, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- bad input scenario --------------------------------------------------------- */

static void raw(tsr_peer_t *p, const uint8_t *hdr, size_t hlen, const void *data, size_t len)
{
    /* The send may fail (a refused rendezvous): only the server's fate matters. */
    (void)tsr__send_raw(g_t, p, hdr, hlen, data, len, 10000, NULL);
}

/* role bad_client NODE PORT */
static int role_bad_client(int argc, char **argv)
{
    CHECK(argc >= 2, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    uint8_t good[TSR_WIRE_HDR_LEN], h[64];
    tsr_wire_hdr_t gh = {.kind = TSR_WIRE_REQUEST, .type = T_ECHO, .src_node = 10,
                         .call_id = 12345, .payload_len = 50};
    tsr_wire_hdr_encode(&gh, good);
    static uint8_t payload[1 << 20];
    unsigned expect_trunc = 0, expect_magic = 0, expect_field = 0, expect_late = 0;

    raw(srv, good, 10, payload, 50); /* truncated header */
    expect_trunc++;
    raw(srv, good, 0, payload, 50); /* no header at all */
    expect_trunc++;
    memcpy(h, good, 40);
    h[0] ^= 0xff; /* magic */
    raw(srv, h, 40, payload, 50);
    expect_magic++;
    memcpy(h, good, 40);
    h[2] = 9; /* version */
    raw(srv, h, 40, payload, 50);
    expect_magic++;
    memcpy(h, good, 40);
    h[3] = 9; /* kind */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    raw(srv, good, 40, payload, 49); /* payload shorter than announced */
    expect_field++;
    raw(srv, good, 40, payload, 51); /* longer */
    expect_field++;
    memcpy(h, good, 40);
    h[8] = 1; /* flags */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    memcpy(h, good, 40);
    tsr_wire_put_u16(h + 4, 48); /* announces 48 header bytes, sends 40 */
    raw(srv, h, 40, payload, 50);
    expect_trunc++;
    memcpy(h, good, 40);
    tsr_wire_put_u64(h + 24, 0); /* call id 0 */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    memcpy(h, good, 40);
    tsr_wire_put_u64(h + 32, 1ull << 50); /* absurd length */
    raw(srv, h, 40, payload, 50);
    expect_field++;
    tsr_wire_hdr_t rh = {.kind = TSR_WIRE_RESPONSE, .type = T_ECHO, .src_node = 10,
                         .call_id = 777, .payload_len = 0};
    tsr_wire_hdr_encode(&rh, h);
    raw(srv, h, 40, NULL, 0); /* a response to no call of the server's */
    expect_late++;
    tsr_wire_put_u32(h + 12, (uint32_t)-77); /* a status that does not exist */
    raw(srv, h, 40, NULL, 0);
    expect_field++;
    tsr_wire_hdr_t hh = {.kind = TSR_WIRE_HELLO, .src_node = 10};
    tsr_wire_hdr_encode(&hh, h);
    raw(srv, h, 40, NULL, 0); /* a second handshake */
    expect_field++;
    memcpy(h, good, 40);
    h[0] ^= 0xff;
    raw(srv, h, 40, payload, sizeof(payload)); /* bad header on a rendezvous */
    expect_magic++;
    /* Random garbage headers of random lengths. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200; i++) {
        size_t hl = (size_t)(i % 48);
        for (size_t j = 0; j < hl; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            h[j] = (uint8_t)x;
        }
        raw(srv, h, hl, payload, (size_t)(x % 300));
    }
    /* The server still answers, and counted every rejection. */
    tsr_rpc_msg_t reply;
    tsr_error_t err;
    tsr_error_clear(&err);
    uint64_t v = 5;
    CHECK(tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "echo after garbage: %s", err.message);
    tsr_rpc_msg_release(g_t, &reply);
    tsr_error_clear(&err);
    CHECK(tsr_rpc_call(g_t, srv, T_STATS, NULL, 0, CALL_TIMEOUT_MS, &reply, &err) == TSR_OK,
          "stats: %s", err.message);
    CHECK(reply.len == sizeof(tsr_transport_stats_t), "stats size");
    tsr_transport_stats_t st;
    memcpy(&st, reply.data, sizeof(st));
    tsr_rpc_msg_release(g_t, &reply);
    fprintf(stderr,
            "[bad_client] server counted: rejected %llu (trunc %llu magic %llu field %llu) "
            "late %llu msgs %llu\n",
            (unsigned long long)st.rx_rejected, (unsigned long long)st.rx_truncated,
            (unsigned long long)st.rx_bad_magic, (unsigned long long)st.rx_bad_field,
            (unsigned long long)st.rx_late, (unsigned long long)st.rx_msgs);
    unsigned fixed = expect_trunc + expect_magic + expect_field;
    CHECK(st.rx_truncated >= expect_trunc, "truncated %llu < %u",
          (unsigned long long)st.rx_truncated, expect_trunc);
    CHECK(st.rx_bad_magic >= expect_magic, "bad magic %llu < %u",
          (unsigned long long)st.rx_bad_magic, expect_magic);
    CHECK(st.rx_bad_field >= expect_field, "bad field %llu < %u",
          (unsigned long long)st.rx_bad_field, expect_field);
    CHECK(st.rx_late == expect_late, "late %llu", (unsigned long long)st.rx_late);
    /* 200 garbage headers: every one is refused (a random 40-byte header
     * passing every check is a 2^-100 event). */
    CHECK(st.rx_rejected == fixed + 200, "rejected %llu, expected %u",
          (unsigned long long)st.rx_rejected, fixed + 200);
    tsr_transport_destroy(g_t);
    return 0;
}

static int scenario_badinput(void)
{
    pid_t srv = spawn("server", "1", "1", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    pid_t c = spawn("bad_client", "10", ps, NULL);
    wait_kid(c, 60, true);
    wait_kid(srv, 20, true);
    return 0;
}

/* ---- threads scenario (one process) ------------------------------------------ */

/* A server driven by the built-in progress thread, a client whose threads
 * make blocking calls at the same time, async-call timeouts, the owner's own
 * poll loop (fd + arm), and a connect to a port nobody listens on. */

typedef struct caller {
    pthread_t th;
    tsr_peer_t *srv;
    int index;
    int ok;
} caller_t;

static tsr_transport_t *g_client_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;
    for (int i = 0; i < 2000; i++) {
        uint64_t v = ((uint64_t)c->index << 32) | (uint64_t)i;
        tsr_rpc_msg_t reply;
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t s = tsr_rpc_call(g_client_t, c->srv, T_ECHO, &v, 8, CALL_TIMEOUT_MS, &reply,
                                      &err);
        if (s != TSR_OK || reply.len != 8 || memcmp(reply.data, &v, 8) != 0)
            fail("thread %d call %d: %s", c->index, i, err.message);
        tsr_rpc_msg_release(g_client_t, &reply);
        c->ok++;
    }
    return NULL;
}

static int g_async_timeouts;
static void timeout_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    (void)arg;
    tsr_rpc_msg_release(g_client_t, reply);
    CHECK(st == TSR_ERR_TIMEOUT, "async late call gave %s", tsr_status_name(st));
    g_async_timeouts++;
}

static int scenario_threads(void)
{
    g_role = "threads";
    static server_t s;
    g_t = make_transport(&s.rc, 1, true, 0);
    server_register(&s);
    tsr_error_t err;
    tsr_error_clear(&err);
    CHECK(tsr_transport_start_thread(g_t, &err) == TSR_OK, "thread: %s", err.message);
    static role_ctx_t crc;
    tsr_transport_params_t p = {.node_id = 10, .spin_us = 20, .on_event = on_event,
                                .event_arg = &crc};
    CHECK(tsr_transport_create(NULL, &p, &g_client_t, &err) == TSR_OK, "client: %s",
          err.message);
    tsr_peer_t *srv = NULL;
    CHECK(tsr_transport_connect(g_client_t, "127.0.0.1", tsr_transport_port(g_t), 10000, &srv,
                                &err) == TSR_OK,
          "connect: %s", err.message);
    caller_t callers[3];
    for (int i = 0; i < 3; i++) {
        callers[i] = (caller_t){.srv = srv, .index = i};
        CHECK(pthread_create(&callers[i].th, NULL, caller_main, &callers[i]) == 0, "pthread");
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(callers[i].th, NULL);
        CHECK(callers[i].ok == 2000, "thread %d did %d calls", i, callers[i].ok);
    }
    /* Async calls whose answers come after their timeout (the server's
     * thread answers T_LATE 1 s later; server_tick runs in this thread). */
    uint64_t v = 1;
    for (int i = 0; i < 3; i++)
        CHECK(tsr_rpc_call_async(g_client_t, srv, T_LATE, &v, 8, 150, timeout_cb, NULL, &err) ==
                  TSR_OK,
              "async: %s", err.message);
    /* The owner's own loop: poll the fd after arming, then progress. */
    double t0 = now_s();
    while (g_async_timeouts < 3) {
        if (tsr_transport_arm(g_client_t) == TSR_OK) {
            struct pollfd pfd = {.fd = tsr_transport_fd(g_client_t), .events = POLLIN};
            (void)poll(&pfd, 1, 10);
        }
        tsr_transport_progress(g_client_t);
        CHECK(now_s() - t0 < 30, "async timeouts did not fire");
    }
    double el = now_s() - t0;
    CHECK(el >= 0.14 && el < 20, "async timeouts after %.3f s (asked 0.15)", el);
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_client_t, &st);
    CHECK(st.calls_timed_out == 3, "timed out %llu", (unsigned long long)st.calls_timed_out);

    /* Connecting to a port nobody listens on fails, and fast. */
    tsr_peer_t *none = NULL;
    uint16_t dead = (uint16_t)(tsr_transport_port(g_t) + 1);
    t0 = now_s();
    tsr_error_clear(&err);
    tsr_status_t rc = tsr_transport_connect(g_client_t, "127.0.0.1", dead, 3000, &none, &err);
    CHECK(rc == TSR_ERR_UNAVAILABLE || rc == TSR_ERR_TIMEOUT, "dead port gave %s",
          tsr_status_name(rc));
    CHECK(now_s() - t0 < 15, "dead port took %.1f s", now_s() - t0);
    CHECK(tsr_transport_connect(g_client_t, "no.such.host.invalid", 1, 1000, &none, &err) ==
              TSR_ERR_INVALID_ARG,
          "bad host");

    tsr_transport_destroy(g_client_t);
    /* The server saw the client go; its thread stops with destroy. */
    for (int i = 0; i < 200 && s.rc.peers_down == 0; i++)
        usleep(5000);
    CHECK(s.rc.peers_down >= 1, "server saw no PEER_DOWN");
    server_tick(&s); /* held T_LATE requests of the gone client: reply fails cleanly */
    tsr_transport_destroy(g_t);
    return 0;
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 4 && strcmp(argv[1], "role") == 0) {
        g_role = argv[2];
        g_dir = argv[3];
        alarm(100); /* no child outlives a hang */
        int n = argc - 4;
        char **a = argv + 4;
        if (strcmp(g_role, "server") == 0)
            return role_server(n, a);
        if (strcmp(g_role, "rpc_client") == 0)
            return role_rpc_client(n, a);
        if (strcmp(g_role, "region_server") == 0)
            return role_region_server(n, a);
        if (strcmp(g_role, "rma_client") == 0)
            return role_rma_client(n, a);
        if (strcmp(g_role, "atomic_client") == 0)
            return role_atomic_client(n, a);
        if (strcmp(g_role, "victim") == 0)
            return role_victim(n, a);
        if (strcmp(g_role, "fail_client") == 0)
            return role_fail_client(n, a);
        if (strcmp(g_role, "bad_client") == 0)
            return role_bad_client(n, a);
        fail("unknown role %s", g_role);
    }
    if (argc != 2) {
        fprintf(stderr, "usage: transport_test rpc|rma|atomics|failure|badinput|threads\n");
        return 2;
    }
    char tmpl[] = "/tmp/tsr_transport_XXXXXX";
    g_dir = mkdtemp(tmpl);
    CHECK(g_dir, "mkdtemp: %s", strerror(errno));
    double t0 = now_s();
    int rc;
    if (strcmp(argv[1], "rpc") == 0)
        rc = scenario_rpc();
    else if (strcmp(argv[1], "rma") == 0)
        rc = scenario_rma();
    else if (strcmp(argv[1], "atomics") == 0)
        rc = scenario_atomics();
    else if (strcmp(argv[1], "failure") == 0)
        rc = scenario_failure();
    else if (strcmp(argv[1], "badinput") == 0)
        rc = scenario_badinput();
    else if (strcmp(argv[1], "threads") == 0)
        rc = scenario_threads();
    else {
        fprintf(stderr, "unknown scenario %s\n", argv[1]);
        rm_dir();
        return 2;
    }
    kill_all();
    rm_dir();
    printf("transport %s (%s): %s in %.2f s\n", argv[1], tls_name(), rc == 0 ? "ok" : "FAILED",
           now_s() - t0);
    return rc;
}
