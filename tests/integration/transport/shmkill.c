/*
 * shmkill.c - transport_test scenario "shmkill" (shared memory only): peers
 * die in the middle of sending to a server while another client keeps
 * calling it.
 *
 * Over UCX's shared-memory transports every process that sends to the
 * server writes into the server's one receive FIFO: claim the head element
 * (compare-and-swap), write it, flip its owner bit. A sender SIGKILLed
 * between the claim and the flip used to block the server's FIFO for good:
 * every later message from anyone - calls, replies, new connections - waited
 * behind the dead sender's element (transport/shm_guard.c explains the fix).
 * The window is a fraction of a microsecond, so the scenario makes it happen
 * for sure: the "poisoner" claims an element of the server's FIFO exactly as
 * UCX's sender does (white-box: UCX 1.13's layout, as shm_guard.c) and kills
 * itself before writing it. Around it, "spammer" clients that keep the
 * server's FIFO busy with async calls are SIGKILLed at random moments (the
 * natural way to hit the window, rarely). Meanwhile the "steady" client
 * calls the server without pause: it must get through within a few seconds
 * of the poisoning, a client connecting afterwards must too, and the server
 * must have counted the repair (stats.shm_repairs). Before the fix the
 * steady client waited forever (the driver gives up after 20 s).
 */
#include <sys/types.h>

#include "common.h"

/* UCX 1.13's mm FIFO control block (see transport/shm_guard.c). */
#define MM_CTL_TAIL 128u
#define MM_CTL_PID 136u
#define MM_HEAD_ARMED (1ull << 63)
#define MM_FIFO_SIZE 64u

/* role shm_server NODE PORTFILE: serves until the steady client is done
 * (the file "steady.done": stopping at "stop" could cut its last call off),
 * then writes its repair count to "server.repairs". */
int role_shm_server(int argc, char **argv)
{
    CHECK(argc >= 2, "args");
    static server_t s;
    g_t = make_transport(&s.rc, (uint32_t)atoi(argv[0]), true, 0);
    server_register(&s);
    write_text(argv[1], "%u", (unsigned)tsr_transport_port(g_t));
    while (!file_exists("steady.done")) {
        tsr_transport_wait(g_t, 20);
        server_tick(&s);
    }
    tsr_transport_stats_t st;
    tsr_transport_get_stats(g_t, &st);
    write_text("server.repairs", "%llu", (unsigned long long)st.shm_repairs);
    tsr_transport_destroy(g_t);
    return 0;
}

static uint64_t echo_once(tsr_peer_t *srv, uint64_t v, int timeout_ms)
{
    tsr_rpc_msg_t reply;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_status_t s = tsr_rpc_call(g_t, srv, T_ECHO, &v, 8, timeout_ms, &reply, &err);
    CHECK(s == TSR_OK && reply.len == 8, "echo %llu: %s", (unsigned long long)v, err.message);
    uint64_t got;
    memcpy(&got, reply.data, 8);
    tsr_rpc_msg_release(g_t, &reply);
    CHECK(got == v, "echo returned %llu for %llu", (unsigned long long)got,
          (unsigned long long)v);
    return got;
}

/* role steady NODE PORT MODE: MODE "loop" calls the server until "stop",
 * writing "steady.after" once 50 calls went through after "poisoned"
 * appeared, and "steady.done" when it has let go of the server; MODE "late" (started after the poisoning) connects and makes
 * 20 calls. */
int role_steady(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    if (strcmp(argv[2], "late") == 0) {
        for (uint64_t i = 0; i < 20; i++)
            echo_once(srv, i + 1000, 30000);
        tsr_transport_destroy(g_t);
        return 0;
    }
    write_text("steady.ready", "1");
    double worst = 0, poisoned_at = 0;
    int after = 0;
    for (uint64_t i = 0; !file_exists("stop"); i++) {
        double t0 = now_s();
        echo_once(srv, i, 30000);
        double dt = now_s() - t0;
        if (dt > worst)
            worst = dt;
        if (poisoned_at == 0 && file_exists("poisoned"))
            poisoned_at = now_s();
        if (poisoned_at > 0 && ++after == 50)
            write_text("steady.after", "%.3f", now_s() - poisoned_at);
    }
    fprintf(stderr, "[steady] longest call %.3f s, %d calls after the poisoning\n", worst,
            after);
    tsr_transport_destroy(g_t);
    write_text("steady.done", "1");
    return 0;
}

/* role spammer NODE PORT: keeps 16 async echo calls in flight to the
 * server (so it is nearly always writing into the server's FIFO) until it
 * is killed. */
static int g_spam_done;

static void spam_cb(void *arg, tsr_status_t st, tsr_rpc_msg_t *reply)
{
    (void)arg;
    (void)st;
    tsr_rpc_msg_release(g_t, reply);
    g_spam_done++;
}

int role_spammer(int argc, char **argv)
{
    CHECK(argc >= 2, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    static uint8_t buf[48];
    int posted = 0;
    bool told = false;
    for (;;) { /* until SIGKILL */
        while (posted - g_spam_done < 16) {
            tsr_error_t err;
            CHECK(tsr_rpc_call_async(g_t, srv, T_ECHO, buf, sizeof(buf), CALL_TIMEOUT_MS,
                                     spam_cb, NULL, &err) == TSR_OK,
                  "spam call: %s", err.message);
            posted++;
        }
        tsr_transport_progress(g_t);
        if (!told && g_spam_done > 100) {
            char name[32];
            snprintf(name, sizeof(name), "spam.%s", argv[0]);
            write_text(name, "1");
            told = true;
        }
    }
}

/* The server's receive FIFO as mapped into this process (the endpoint to
 * the server maps it to send), or NULL. */
static uint8_t *find_server_fifo(pid_t server)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f, "maps");
    char line[512];
    uint8_t *found = NULL;
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long s, e, off, ino;
        char perms[8], dev[16];
        int at = 0;
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &s, &e, perms, &off, dev, &ino, &at) <
                6 ||
            at == 0 || strncmp(perms, "rw-s", 4) != 0 || e - s > 65536)
            continue;
        if (!strstr(line + at, "ucx_shm_posix_") && strncmp(line + at, "/SYSV", 5) != 0)
            continue;
        int32_t pid;
        memcpy(&pid, (uint8_t *)s + MM_CTL_PID, sizeof(pid));
        if (pid == (int32_t)server)
            found = (uint8_t *)s;
    }
    fclose(f);
    return found;
}

/* role poisoner NODE PORT SERVER_PID: claims an element of the server's
 * receive FIFO the way UCX's sender does, then dies without writing it. */
int role_poisoner(int argc, char **argv)
{
    CHECK(argc >= 3, "args");
    static role_ctx_t rc;
    g_t = make_transport(&rc, (uint32_t)atoi(argv[0]), false, 0);
    tsr_peer_t *srv = connect_to(g_t, (uint16_t)atoi(argv[1]));
    echo_once(srv, 7, 30000); /* the endpoint is fully wired */
    uint8_t *ctl = find_server_fifo((pid_t)atoi(argv[2]));
    CHECK(ctl, "no shared-memory FIFO of the server is mapped here (not over shared memory?)");
    uint64_t *head = (uint64_t *)ctl;
    uint64_t *tail = (uint64_t *)(ctl + MM_CTL_TAIL);
    for (;;) {
        uint64_t h = __atomic_load_n(head, __ATOMIC_ACQUIRE);
        uint64_t hh = h & ~MM_HEAD_ARMED;
        if (hh - __atomic_load_n(tail, __ATOMIC_ACQUIRE) >= MM_FIFO_SIZE)
            continue; /* full: the server drains it */
        if (__atomic_compare_exchange_n(head, &h, hh + 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            write_text("poisoned", "%llu", (unsigned long long)hh);
            raise(SIGKILL); /* claimed, never written */
        }
    }
}

/* wait_file, except that children this scenario SIGKILLed do not count as
 * failures. */
static void wait_file_killed_ok(const char *name, double timeout_s)
{
    double end = now_s() + timeout_s;
    while (!file_exists(name)) {
        reap();
        for (int i = 0; i < nkids; i++) {
            int st = kids[i].status;
            bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
            if (kids[i].done && !killed && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
                driver_fail("%s died (status 0x%x) while waiting for %s", kids[i].name, st,
                            name);
        }
        if (now_s() > end)
            driver_fail("timed out waiting for %s (%.0f s)", name, timeout_s);
        usleep(5000);
    }
}

int scenario_shmkill(void)
{
    if (strcmp(tls_name(), "sm") != 0) {
        fprintf(stderr, "shmkill needs TSR_TEST_TLS=sm\n");
        return 77;
    }
    pid_t srv = spawn("shm_server", "1", "port", NULL);
    uint16_t port = read_port("port");
    char ps[16], pids[16];
    snprintf(ps, sizeof(ps), "%u", (unsigned)port);
    snprintf(pids, sizeof(pids), "%d", (int)srv);
    pid_t steady = spawn("steady", "10", ps, "loop", NULL);
    wait_file("steady.ready", 20);

    /* Spammers killed at random moments while they hammer the server. */
    uint64_t x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL + 1;
    for (int i = 0; i < 3; i++) {
        char node[8], name[32];
        snprintf(node, sizeof(node), "%d", 20 + i);
        snprintf(name, sizeof(name), "spam.%d", 20 + i);
        pid_t sp = spawn("spammer", node, ps, NULL);
        wait_file_killed_ok(name, 20);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usleep((useconds_t)(x % 20000));
        CHECK(kill(sp, SIGKILL) == 0, "kill spammer");
        wait_kid(sp, 10, false);
    }

    /* The deterministic one: a claimed element that is never written. */
    pid_t poi = spawn("poisoner", "30", ps, pids, NULL);
    wait_kid(poi, 20, false);
    CHECK(file_exists("poisoned"), "the poisoner did not get to claim an element");
    double t0 = now_s();
    wait_file_killed_ok("steady.after", 20);
    double took = now_s() - t0;
    /* A new client gets through too (its wireup crosses the same FIFO). */
    pid_t late = spawn("steady", "40", ps, "late", NULL);
    wait_kid(late, 30, true);
    write_text("stop", "1");
    wait_kid(steady, 30, true);
    wait_kid(srv, 30, true);
    size_t len;
    char *rep = read_file("server.repairs", &len);
    CHECK(rep, "no server.repairs");
    unsigned long long repairs = strtoull(rep, NULL, 10);
    free(rep);
    fprintf(stderr, "[shmkill] calls flowed again %.3f s after the poisoning; server repaired "
                    "%llu FIFO element(s)\n",
            took, repairs);
    if (tsr__shm_guard_wanted())
        CHECK(repairs >= 1, "the server repaired no FIFO element");
    return 0;
}
