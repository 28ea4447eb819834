/*
 * lock_cluster_client.c - one C-API lock client process of a real cluster,
 * driven by tests/integration/test_lock_cluster.py (which starts the
 * scheduler and workers, and kills what overstays by PID).
 *
 *   lock_cluster_client view SCHED TOKEN
 *       prints "homes N generation G"
 *   lock_cluster_client mutex SCHED TOKEN NAME COUNTER_FILE N
 *       N exclusive acquisitions of NAME, each a plain read-modify-write of
 *       the 8-byte counter in COUNTER_FILE (pread/pwrite); checks its tokens
 *       strictly increase; prints "ok FIRST LAST"
 *   lock_cluster_client acquire SCHED TOKEN NAME TIMEOUT_MS LEASE_MS HOLD_MS
 *       acquire (exit 4 when not granted in time), print "granted TOKEN",
 *       hold HOLD_MS (< 0: until killed), release (exit 4 if STALE)
 *   lock_cluster_client noauth HOST PORT
 *       dials a worker's listener without the handshake and asks for the lock
 *       home's descriptor and a served call: prints each status; exit 0 when
 *       both are refused with TSR_ERR_AUTH
 *   lock_cluster_client bench SCHED TOKEN K
 *       not a test: K uncontended exclusive acquire+release pairs cycling
 *       over 64 locks, against the cluster's homes and then against an
 *       embedded home in this process; prints p50/p99 and the mean of each
 *       (docs/locks.md, "Locks on a cluster": measured figures)
 *   lock_cluster_client failover SCHED TOKEN NAME
 *       the client's own refetch of a moved home: acquires NAME (prints
 *       "granted TOKEN home H"), finds a second name on home H and leaves it
 *       free, prints "ready", then waits for a line on stdin (the test kills
 *       home H's worker and lets a standby take over meanwhile); then, on the
 *       same connection: acquires the second name (must succeed: the client
 *       refetches the view and reconnects home H; prints "regranted TOKEN
 *       home H"), releases NAME's old grant (must be TSR_ERR_STALE: it died
 *       with the home), releases the new one; prints "ok generation G"
 *   lock_cluster_client dial HOST PORT TOKEN
 *       dials a worker's listener and runs the token handshake (handshake.h)
 *       with TOKEN: exit 0 when admitted, 5 when refused
 *
 * Exit codes: 0 fine, 1 a check failed, 4 not granted / stale, 5 the
 * cluster refused or is unreachable. Every process arms alarm(60).
 * Path: TSR_LOCK_PATH=atomics|served (default AUTO).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "handshake.h"
#include "tessera/lock.h"
#include "transport.h"

static int code_of(tsr_status_t rc)
{
    switch (rc) {
    case TSR_OK:
        return 0;
    case TSR_ERR_TIMEOUT:
    case TSR_ERR_STALE:
    case TSR_ERR_CONFLICT:
        return 4;
    case TSR_ERR_AUTH:
    case TSR_ERR_UNAVAILABLE:
        return 5;
    default:
        return 1;
    }
}

static int connect_cluster(const char *sched, const char *token, tsr_lock_cluster_t **cl)
{
    tsr_lock_cluster_params_t p = {.scheduler = sched, .token_file = token};
    const char *path = getenv("TSR_LOCK_PATH");
    if (path && strcmp(path, "atomics") == 0)
        p.path = TSR_LOCK_PATH_ATOMICS;
    else if (path && strcmp(path, "served") == 0)
        p.path = TSR_LOCK_PATH_SERVED;
    tsr_lock_err_t e = {0};
    tsr_status_t rc = tsr_lock_cluster_connect(&p, cl, &e);
    if (rc != TSR_OK)
        fprintf(stderr, "connect: %s (%s)\n", e.message, tsr_status_str(rc));
    return code_of(rc);
}

static int role_mutex(tsr_lock_client_t *c, const char *name, const char *file, long n)
{
    int fd = open(file, O_RDWR);
    if (fd < 0) {
        perror("open counter");
        return 1;
    }
    uint64_t first = 0, last = 0;
    for (long i = 0; i < n; i++) {
        tsr_lock_opts_t o = {.mode = TSR_LOCK_EXCLUSIVE, .lease_ms = 30000, .timeout_ms = 30000};
        uint64_t tok = 0;
        tsr_lock_err_t e = {0};
        tsr_status_t rc = tsr_lock_acquire(c, name, &o, &tok, &e);
        if (rc != TSR_OK) {
            fprintf(stderr, "acquire %ld: %s\n", i, e.message);
            close(fd);
            return code_of(rc);
        }
        if (tok <= last) {
            fprintf(stderr, "token %llu after %llu\n", (unsigned long long)tok,
                    (unsigned long long)last);
            close(fd);
            return 1;
        }
        if (!first)
            first = tok;
        last = tok;
        uint64_t v = 0;
        if (pread(fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
            perror("pread");
            close(fd);
            return 1;
        }
        v++;
        if (pwrite(fd, &v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
            perror("pwrite");
            close(fd);
            return 1;
        }
        rc = tsr_lock_release(c, name, tok, &e);
        if (rc != TSR_OK) {
            fprintf(stderr, "release %ld: %s\n", i, e.message);
            close(fd);
            return code_of(rc);
        }
    }
    close(fd);
    printf("ok %llu %llu\n", (unsigned long long)first, (unsigned long long)last);
    return 0;
}

static int role_acquire(tsr_lock_client_t *c, const char *name, long tmo, long lease, long hold)
{
    tsr_lock_opts_t o = {.mode = TSR_LOCK_EXCLUSIVE, .lease_ms = lease, .timeout_ms = tmo};
    uint64_t tok = 0;
    tsr_lock_err_t e = {0};
    tsr_status_t rc = tsr_lock_acquire(c, name, &o, &tok, &e);
    if (rc != TSR_OK) {
        fprintf(stderr, "acquire: %s\n", e.message);
        return code_of(rc);
    }
    printf("granted %llu\n", (unsigned long long)tok);
    fflush(stdout);
    if (hold < 0)
        for (;;)
            pause();
    struct timespec ts = {hold / 1000, (hold % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    rc = tsr_lock_release(c, name, tok, &e);
    if (rc != TSR_OK)
        fprintf(stderr, "release: %s\n", e.message);
    return code_of(rc);
}

static int role_noauth(const char *host, const char *port)
{
    tsr_transport_t *t = NULL;
    tsr_peer_t *peer = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_transport_params_t tp = {.node_id = 0x5eed0000u | (uint32_t)(getpid() & 0xffff)};
    if (tsr_transport_create(NULL, &tp, &t, &err) != TSR_OK ||
        tsr_transport_connect(t, host, (uint16_t)atoi(port), 5000, &peer, &err) != TSR_OK) {
        fprintf(stderr, "noauth: %s\n", err.message);
        tsr_transport_destroy(t);
        return 5;
    }
    int refused = 0;
    /* the descriptor call, then a served release of some token */
    uint16_t types[2] = {TSR_LOCK_RPC_INFO, TSR_LOCK_RPC_OPS};
    for (int i = 0; i < 2; i++) {
        tsr_rpc_msg_t reply = {0};
        tsr_error_clear(&err);
        unsigned char junk[32] = {0};
        tsr_status_t rc = tsr_rpc_call(t, peer, types[i], i ? junk : NULL, i ? sizeof(junk) : 0,
                                       5000, &reply, &err);
        printf("type %u: %s%s\n", types[i], tsr_status_str(rc),
               rc == TSR_OK && reply.len ? " (answered)" : "");
        tsr_rpc_msg_release(t, &reply);
        refused += rc == TSR_ERR_AUTH;
    }
    tsr_transport_destroy(t);
    return refused == 2 ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* K acquire+release pairs over 64 names: p50, p99, mean in microseconds. */
static int bench_one(tsr_lock_client_t *c, const char *what, long k, uint64_t *ns)
{
    char name[64];
    for (long i = -64; i < k; i++) { /* the first 64: each lock's first use (the stamp) */
        snprintf(name, sizeof(name), "bench-%ld", (i + 64) % 64);
        tsr_lock_opts_t o = {.mode = TSR_LOCK_EXCLUSIVE, .lease_ms = 10000, .timeout_ms = 5000};
        uint64_t tok = 0, t0 = now_ns();
        tsr_lock_err_t e = {0};
        tsr_status_t rc = tsr_lock_acquire(c, name, &o, &tok, &e);
        if (rc == TSR_OK)
            rc = tsr_lock_release(c, name, tok, &e);
        if (rc != TSR_OK) {
            fprintf(stderr, "bench: %s\n", e.message);
            return code_of(rc);
        }
        if (i >= 0)
            ns[i] = now_ns() - t0;
    }
    uint64_t sum = 0;
    for (long i = 0; i < k; i++)
        sum += ns[i];
    qsort(ns, (size_t)k, sizeof(*ns), cmp_u64);
    printf("%-10s acquire+release p50 %8.2f us  p99 %8.2f us  mean %8.2f us  (%ld pairs)\n", what,
           (double)ns[k / 2] / 1e3, (double)ns[(size_t)k * 99 / 100] / 1e3,
           (double)sum / (double)k / 1e3, k);
    return 0;
}

static int role_bench(tsr_lock_client_t *cluster, long k)
{
    if (k < 1 || k > 10000000)
        return 2;
    uint64_t *ns = calloc((size_t)k, sizeof(*ns));
    if (!ns)
        return 1;
    int code = bench_one(cluster, "cluster", k, ns);
    tsr_lock_home_t *h = NULL;
    tsr_lock_client_t *c = NULL;
    tsr_lock_client_params_t cp = {0};
    tsr_lock_err_t e = {0};
    if (code == 0 && tsr_lock_home_create(NULL, NULL, &h, &e) == TSR_OK) {
        cp.local = h;
        if (tsr_lock_client_create(&cp, &c, &e) == TSR_OK)
            code = bench_one(c, "embedded", k, ns);
    }
    tsr_lock_client_destroy(c);
    tsr_lock_home_destroy(h);
    free(ns);
    return code;
}

static int role_failover(tsr_lock_cluster_t *cl, const char *name)
{
    tsr_lock_client_t *c = tsr_lock_cluster_client(cl);
    tsr_lock_opts_t o = {.mode = TSR_LOCK_EXCLUSIVE, .lease_ms = 30000, .timeout_ms = 5000};
    uint64_t tok = 0, tok2 = 0;
    tsr_lock_err_t e = {0};
    tsr_lock_status_t st;
    tsr_status_t rc = tsr_lock_acquire(c, name, &o, &tok, &e);
    if (rc == TSR_OK)
        rc = tsr_lock_status(c, name, &st, &e);
    if (rc != TSR_OK) {
        fprintf(stderr, "failover: acquire: %s\n", e.message);
        return code_of(rc);
    }
    uint32_t home = st.home;
    printf("granted %llu home %u\n", (unsigned long long)tok, home);
    /* a second name on the same home: used once, left free */
    char other[64] = "";
    for (int i = 0; i < 1000 && !other[0]; i++) {
        char cand[64];
        snprintf(cand, sizeof(cand), "%s-%d", name, i);
        if ((rc = tsr_lock_acquire(c, cand, &o, &tok2, &e)) != TSR_OK ||
            (rc = tsr_lock_status(c, cand, &st, &e)) != TSR_OK ||
            (rc = tsr_lock_release(c, cand, tok2, &e)) != TSR_OK) {
            fprintf(stderr, "failover: %s: %s\n", cand, e.message);
            return code_of(rc);
        }
        if (st.home == home)
            snprintf(other, sizeof(other), "%s", cand);
    }
    if (!other[0])
        return 1;
    printf("ready\n");
    char line[16];
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    o.timeout_ms = 20000;
    rc = tsr_lock_acquire(c, other, &o, &tok2, &e);
    if (rc == TSR_OK)
        rc = tsr_lock_status(c, other, &st, &e);
    if (rc != TSR_OK) {
        fprintf(stderr, "failover: acquire after the home moved: %s (%s)\n", e.message,
                tsr_status_str(rc));
        return code_of(rc) == 4 ? 1 : code_of(rc);
    }
    printf("regranted %llu home %u\n", (unsigned long long)tok2, st.home);
    rc = tsr_lock_release(c, name, tok, &e);
    if (rc != TSR_ERR_STALE) {
        fprintf(stderr, "failover: release of the lost grant: %s, wanted STALE (%s)\n",
                tsr_status_str(rc), e.message);
        return 1;
    }
    rc = tsr_lock_release(c, other, tok2, &e);
    if (rc != TSR_OK) {
        fprintf(stderr, "failover: release: %s\n", e.message);
        return code_of(rc);
    }
    uint64_t gen = 0;
    (void)tsr_lock_cluster_homes(cl, &gen);
    printf("ok generation %llu\n", (unsigned long long)gen);
    return 0;
}

static int role_dial(const char *host, const char *port, const char *token)
{
    tsr_transport_t *t = NULL;
    tsr_peer_t *peer = NULL;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_token_t tok;
    tsr_transport_params_t tp = {.node_id = 0x5eed0000u | (uint32_t)(getpid() & 0xffff)};
    tsr_status_t rc = tsr_auth_token_load(token, &tok, &err);
    if (rc == TSR_OK && (rc = tsr_transport_create(NULL, &tp, &t, &err)) == TSR_OK &&
        (rc = tsr_transport_connect(t, host, (uint16_t)atoi(port), 5000, &peer, &err)) == TSR_OK)
        rc = tsr_hs_dial(t, peer, &tok, TSR_ROLE_CLIENT, NULL, 0, 5000, "the worker", &err);
    if (rc != TSR_OK)
        fprintf(stderr, "dial: %s\n", err.message);
    tsr_transport_destroy(t);
    return code_of(rc);
}

int main(int argc, char **argv)
{
    alarm(60);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "noauth") == 0)
        return role_noauth(argv[2], argv[3]);
    if (argc == 5 && strcmp(argv[1], "dial") == 0)
        return role_dial(argv[2], argv[3], argv[4]);
    if (argc < 4) {
        fprintf(stderr, "usage: lock_cluster_client ROLE SCHED TOKEN ...\n");
        return 2;
    }
    const char *role = argv[1];
    bool ok =
        (strcmp(role, "view") == 0 && argc == 4) || (strcmp(role, "mutex") == 0 && argc == 7) ||
        (strcmp(role, "bench") == 0 && argc == 5) || (strcmp(role, "acquire") == 0 && argc == 8) ||
        (strcmp(role, "failover") == 0 && argc == 5);
    if (!ok) {
        fprintf(stderr, "lock_cluster_client: bad arguments for '%s'\n", role);
        return 2;
    }
    tsr_lock_cluster_t *cl = NULL;
    int code = connect_cluster(argv[2], argv[3], &cl);
    if (code != 0)
        return code;
    tsr_lock_client_t *c = tsr_lock_cluster_client(cl);
    if (strcmp(role, "view") == 0) {
        uint64_t gen = 0;
        size_t n = tsr_lock_cluster_homes(cl, &gen);
        printf("homes %zu generation %llu\n", n, (unsigned long long)gen);
    } else if (strcmp(role, "bench") == 0) {
        code = role_bench(c, atol(argv[4]));
    } else if (strcmp(role, "failover") == 0) {
        code = role_failover(cl, argv[4]);
    } else if (strcmp(role, "mutex") == 0) {
        code = role_mutex(c, argv[4], argv[5], atol(argv[6]));
    } else {
        code = role_acquire(c, argv[4], atol(argv[5]), atol(argv[6]), atol(argv[7]));
    }
    tsr_lock_cluster_close(cl);
    return code;
}
