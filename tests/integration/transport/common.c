/*
 * common.c - the shared part of transport_test (see common.h): failure
 * reporting, the driver's child management and files, the role helpers
 * (transport, connect, payloads) and the RPC server role that several
 * scenarios talk to.
 */
#include "common.h"

const char *g_dir;  /* the scenario's temp dir */
const char *g_role; /* for messages */

void fail(const char *fmt, ...)
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

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *tls_name(void)
{
    const char *s = getenv("TSR_TEST_TLS");
    return s ? s : "default";
}

/* ---- files shared with the driver ------------------------------------------ */

void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

void write_file(const char *name, const void *data, size_t len)
{
    char p[512], tmp[520];
    path_of(p, sizeof(p), name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    FILE *f = fopen(tmp, "wb");
    CHECK(f && fwrite(data, 1, len, f) == len && fclose(f) == 0, "write %s", tmp);
    CHECK(rename(tmp, p) == 0, "rename %s", p);
}

void write_text(const char *name, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    write_file(name, buf, (size_t)n);
}

/* Reads a whole file; NULL when absent. */
void *read_file(const char *name, size_t *len)
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

bool file_exists(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    return access(p, F_OK) == 0;
}

/* ---- driver: children --------------------------------------------------------- */

kid_t kids[MAX_KIDS];
int nkids;

pid_t spawn(const char *role, ...)
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

void reap(void)
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

void kill_all(void)
{
    for (int i = 0; i < nkids; i++)
        if (!kids[i].done) {
            kill(kids[i].pid, SIGKILL);
            waitpid(kids[i].pid, NULL, 0);
            kids[i].done = true;
        }
}

void rm_dir(void)
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

void driver_fail(const char *fmt, ...)
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
void wait_file(const char *name, double timeout_s)
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

void wait_kid(pid_t pid, double timeout_s, bool expect_ok)
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

uint16_t read_port(const char *name)
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

void on_event(void *arg, const tsr_transport_event_t *ev)
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

tsr_transport_t *make_transport(role_ctx_t *rc, uint32_t node, bool listen,
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

tsr_peer_t *connect_to(tsr_transport_t *t, uint16_t port)
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
void fill(uint8_t *b, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

uint64_t fnv(const uint8_t *b, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

/* ---- the RPC server (used by several scenarios) -------------------------- */

tsr_transport_t *g_t; /* the role's transport, for callbacks that need it */

static void echo_done_release(void *arg, tsr_status_t st)
{
    tsr_rpc_msg_t *m = arg;
    (void)st;
    tsr_rpc_msg_release(g_t, m);
    free(m);
}

atomic_int g_inline_runs;

/* Counts handler runs inside the receive path (white-box: the transport
 * marks the thread while an inline handler runs). */
static void note_inline(void)
{
    if (tsr__inline_owner == g_t)
        atomic_fetch_add(&g_inline_runs, 1);
}

static void h_echo(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    note_inline();
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
    note_inline();
    size_t len;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    uint64_t out[2] = {fnv(d, len), len};
    tsr_rpc_reply(g_t, req, TSR_OK, out, sizeof(out));
}

static void h_delay(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    note_inline();
    size_t len;
    const uint8_t *d = tsr_rpc_req_data(req, &len);
    CHECK(len == 8, "delay payload");
    uint32_t count = d[4] | (uint32_t)d[5] << 8;
    unsigned node = d[1] % 8;
    CHECK(s->ndelayed[node] < 64 && count <= 64, "delay batch too large");
    tsr_rpc_req_t **batch = s->delayed[node];
    batch[s->ndelayed[node]++] = req;
    /* All of this client's batch is here: answer newest first. */
    if ((uint32_t)s->ndelayed[node] == count) {
        for (int i = s->ndelayed[node] - 1; i >= 0; i--) {
            size_t l;
            const void *p = tsr_rpc_req_data(batch[i], &l);
            uint8_t copy[8];
            memcpy(copy, p, 8);
            tsr_rpc_reply(g_t, batch[i], TSR_OK, copy, 8);
        }
        s->ndelayed[node] = 0;
    }
}

static void h_late(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    note_inline();
    CHECK(s->nheld < 64, "too many held");
    /* Answered 3 s late: far past the callers' timeouts even when a loaded
     * machine leaves the caller unscheduled for a second. */
    s->held[s->nheld++] = (held_t){req, now_s() + 3.0};
}

static void h_hold(void *arg, tsr_rpc_req_t *req)
{
    server_t *s = arg;
    note_inline();
    CHECK(s->nheld < 64, "too many held");
    s->held[s->nheld++] = (held_t){req, -1};
}

static void h_stats(void *arg, tsr_rpc_req_t *req)
{
    (void)arg;
    CHECK(tsr__inline_owner == NULL, "a queued handler ran inline");
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_t, &st);
    tsr_rpc_reply(g_t, req, TSR_OK, &st, sizeof(st));
}

/* Answers held requests that are due (T_LATE) or whose peer died (T_HOLD). */
void server_tick(server_t *s)
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

bool inline_mode(void)
{
    const char *v = getenv("TSR_TEST_INLINE");
    return v && strcmp(v, "1") == 0;
}

void server_register(server_t *s)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    /* TSR_TEST_INLINE=1 (the *_inline tests): every handler that keeps the
     * inline contract (transport.h) runs inside the receive path - echo,
     * sum, the reverse-order batch (it answers requests it held), the held
     * ones (answered later by server_tick). T_STATS calls
     * tsr_transport_get_stats, so it never may. */
    unsigned fl = inline_mode() ? TSR_RPC_INLINE : 0;
    CHECK(tsr_rpc_register_flags(g_t, T_ECHO, h_echo, s, fl, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register_flags(g_t, T_SUM, h_sum, s, fl, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register_flags(g_t, T_DELAY, h_delay, s, fl, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register_flags(g_t, T_LATE, h_late, s, fl, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register_flags(g_t, T_HOLD, h_hold, s, fl, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register(g_t, T_STATS, h_stats, s, &err) == TSR_OK, "register");
    CHECK(tsr_rpc_register_flags(g_t, T_STATS, h_stats, s, 2u, &err) == TSR_ERR_INVALID_ARG,
          "unknown flag");
    CHECK(tsr_rpc_register_flags(g_t, 0, h_stats, s, fl, &err) == TSR_ERR_INVALID_ARG,
          "type 0 (flags)");
    CHECK(tsr_rpc_register(g_t, 0, h_stats, s, &err) == TSR_ERR_INVALID_ARG, "type 0");
    CHECK(tsr_rpc_register(g_t, TSR_RPC_MAX_TYPES, h_stats, s, &err) == TSR_ERR_INVALID_ARG,
          "type max");
}

/* role server NODE EXPECTED_CLIENTS PORTFILE: serves until that many peers
 * went down (clients exit when done). */
int role_server(int argc, char **argv)
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
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_t, &st);
    int runs = atomic_load(&g_inline_runs);
    if (inline_mode()) {
        /* Every inline run was one of ours, and the inline path was taken. */
        CHECK(st.rx_inline > 0 && st.rx_inline == (uint64_t)runs,
              "inline runs: transport %llu, handlers %d", (unsigned long long)st.rx_inline,
              runs);
        fprintf(stderr, "[server] %llu of %llu requests ran inline (%s)\n",
                (unsigned long long)st.rx_inline, (unsigned long long)st.rx_msgs, tls_name());
    } else {
        CHECK(st.rx_inline == 0 && runs == 0, "inline runs without TSR_RPC_INLINE");
    }
    tsr_transport_destroy(g_t);
    return 0;
}

/* ---- async echo calls (rpc and failure scenarios) ---- */

rpc_client_t g_rc;

void echo_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
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
