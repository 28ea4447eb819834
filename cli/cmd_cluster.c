/*
 * cmd_cluster.c - `tessera cluster up|status|down`, a local cluster for
 * development (`tessera sql --scheduler` is cluster_client.c).
 *
 * A local cluster lives in one directory (--dir; default
 * $XDG_STATE_HOME/tessera/cluster, else ~/.local/state/tessera/cluster):
 *   scheduler.pid, scheduler.addr ("127.0.0.1:PORT"), scheduler.log
 *   worker-N.pid, worker-N.log, worker-N/ (its data dir)    N = 1..workers
 *   token.path   the absolute path of the token file the cluster uses
 *   scheduler.http  "HOST:PORT" of the scheduler's HTTP endpoint (up --http)
 *   kv-catalog   the scheduler's kv tables (its --data-dir is DIR)
 * `up` starts the processes detached (setsid, output to the logs), each
 * running this same executable (/proc/self/exe), waits (bounded) until every
 * worker has joined, and prints the scheduler's address. `down` stops them by
 * the PIDs in the files: SIGTERM, then SIGKILL after DOWN_WAIT_MS; a PID is
 * only signalled when /proc says it is still a tessera scheduler/worker, so a
 * reused PID is never hit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#ifdef TSR_HAVE_SCHEDULER
#include "auth.h"
#include "scheduler.h"
#endif

#define MAX_UP_PLUGINS 8 /* cluster up --plugin */

#define UP_WAIT_MS 30000
#define DOWN_WAIT_MS 5000
#define MAX_LOCAL_WORKERS 256

void cmd_cluster_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera cluster up|status|down [options]\n"
            "\n"
            "Runs a scheduler and workers on this machine, in the background.\n"
            "\n"
            "  up        start a scheduler and N workers; prints the scheduler's address\n"
            "  status    list the workers: device, state, load, pid\n"
            "  down      stop the cluster's processes (SIGTERM, then SIGKILL after 5 s)\n"
            "\n"
            "options:\n"
            "  --dir DIR                 the cluster's directory (pids, logs, address);\n"
            "                            default $XDG_STATE_HOME/tessera/cluster, else\n"
            "                            ~/.local/state/tessera/cluster\n"
            "  --workers N               up: how many workers (default 2)\n"
            "  --device DEV              up: the workers' device (default cpu)\n"
            "  --threads N               up: executor threads per worker (default: all cores)\n"
            "  --token-file F            up: the token to use, created (mode 0600) when\n"
            "                            missing (default $TESSERA_TOKEN_FILE, else\n"
            "                            ~/.config/tessera/token)\n"
            "  --heartbeat-timeout MS    up: a silent worker is dead after MS (default 3000)\n"
            "  --min-range BYTES         up: smallest CSV byte range per task\n"
            "  --plugin PATH             up: a task-graph plugin every worker loads\n"
            "                            (repeatable, at most 8)\n"
            "  --http HOST:PORT          up: the scheduler serves GET /status /jobs /metrics\n"
            "                            there (port 0: a free one; status prints the URL)\n"
            "  --format FMT              status: table (default) or json\n"
            "  --scheduler HOST:PORT     status: ask that scheduler instead of DIR's (with\n"
            "                            --token-file)\n"
            "  --help                    show this help\n"
            "\n"
            "exit codes: up: 4 when a cluster already runs in DIR; status: 5 when none does\n");
}

/* Is pid a live (not zombie) process? Its start time (clock ticks after boot) goes to
 * *start so a later check can tell it from a new process that reused the PID. */
static bool proc_live(pid_t pid, unsigned long long *start)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (cli_read_small(path, buf, sizeof(buf)) != 0)
        return false;
    const char *rp = strrchr(buf, ')');
    if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
        return false;
    /* starttime is field 22; the state (field 3) follows the ')' of the comm field */
    const char *f = rp + 2;
    for (int field = 3; field < 22 && f; field++) {
        f = strchr(f, ' ');
        if (f)
            f++;
    }
    *start = f ? strtoull(f, NULL, 10) : 0;
    return true;
}

/* Is pid a live (not zombie) tessera process running `role`? Its start time goes to
 * *start (see proc_live). */
static bool is_ours(pid_t pid, const char *role, unsigned long long *start)
{
    char path[64], buf[4096];
    if (!proc_live(pid, start))
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    size_t a0 = strlen(buf);
    if ((size_t)n <= a0 + 1)
        return false;
    const char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    return strstr(base, "tessera") != NULL && strcmp(buf + a0 + 1, role) == 0;
}

static pid_t read_pid(const char *dir, const char *name)
{
    char path[PATH_MAX], buf[32];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (cli_read_small(path, buf, sizeof(buf)) != 0)
        return 0;
    long v = strtol(buf, NULL, 10);
    return v > 1 && v < INT_MAX ? (pid_t)v : 0;
}

/* ---- down ------------------------------------------------------------------------ */

/* Waits up to ms for the processes to end, zeroing each pids[i] that has. It waits on
 * the process state, not is_ours: an exiting process's cmdline reads empty while it is
 * still tearing down, before it becomes a zombie. */
static void wait_gone(pid_t *pids, const unsigned long long *starts, size_t n, int ms)
{
    struct timespec step = {0, 20 * 1000000L};
    for (int waited = 0;; waited += 20) {
        bool alive = false;
        for (size_t i = 0; i < n; i++) {
            unsigned long long start;
            if (!pids[i])
                continue;
            if (proc_live(pids[i], &start) && start == starts[i])
                alive = true;
            else
                pids[i] = 0;
        }
        if (!alive || waited >= ms)
            return;
        nanosleep(&step, NULL);
    }
}

static int cluster_down_q(const char *dir, bool quiet);

static int cluster_down(const char *dir)
{
    return cluster_down_q(dir, false);
}

/* Stops what the pid files of dir name; quiet: print nothing (cleanup). */
static int cluster_down_q(const char *dir, bool quiet)
{
    pid_t pids[MAX_LOCAL_WORKERS + 1];
    unsigned long long starts[MAX_LOCAL_WORKERS + 1];
    char names[MAX_LOCAL_WORKERS + 1][32];
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (!quiet)
            printf("no cluster in %s\n", dir);
        return TSR_EXIT_OK;
    }
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_LOCAL_WORKERS + 1) {
        size_t l = strlen(de->d_name);
        if (l < 5 || l >= sizeof(names[0]) || strcmp(de->d_name + l - 4, ".pid") != 0)
            continue;
        snprintf(names[n], sizeof(names[n]), "%s", de->d_name);
        pids[n] = read_pid(dir, de->d_name);
        starts[n] = 0;
        const char *role = strncmp(de->d_name, "worker-", 7) == 0 ? "worker" : "scheduler";
        if (pids[n] && !is_ours(pids[n], role, &starts[n]))
            pids[n] = 0; /* gone already, or the PID now belongs to someone else */
        n++;
    }
    closedir(d);
    size_t signalled = 0;
    for (size_t i = 0; i < n; i++)
        if (pids[i] && kill(pids[i], SIGTERM) == 0)
            signalled++;
    wait_gone(pids, starts, n, DOWN_WAIT_MS);
    size_t killed = 0;
    for (size_t i = 0; i < n; i++)
        if (pids[i] && kill(pids[i], SIGKILL) == 0)
            killed++;
    if (killed)
        wait_gone(pids, starts, n, DOWN_WAIT_MS);
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/scheduler.addr", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/scheduler.http", dir);
    unlink(path);
    if (quiet)
        return TSR_EXIT_OK;
    if (signalled == 0)
        printf("no cluster running in %s\n", dir);
    else if (killed)
        printf("stopped %zu process(es); %zu did not stop in time and were killed\n", signalled,
               killed);
    else
        printf("stopped %zu process(es)\n", signalled);
    return TSR_EXIT_OK;
}

#ifdef TSR_HAVE_SCHEDULER

static int mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            if (!c)
                break;
            *p = c;
        }
    }
    return 0;
}

static int write_small(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* ---- up ---------------------------------------------------------------------------- */

/* Starts this executable with args, detached, output appended to log. */
static pid_t spawn(char *const *args, const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* -1 on error */
    setsid();
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0)
        _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execv("/proc/self/exe", args);
    _exit(127);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits for the scheduler's address file; 0 when it came, -1 when it did
 * not, else the scheduler's exit code (e.g. 5: its --http port is taken). */
static int wait_addr(const char *path, pid_t pid, char *addr, size_t size)
{
    for (int waited = 0; waited < UP_WAIT_MS; waited += 20) {
        if (cli_read_small(path, addr, size) == 0 && strchr(addr, ':'))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) > 1 ? WEXITSTATUS(st) : -1;
        sleep_ms(20);
    }
    return -1;
}

typedef struct up_opts {
    unsigned long long workers;
    const char *device, *token_file, *hb, *min_range;
    unsigned long long threads;
    const char *http; /* HOST:PORT for the scheduler's --http, or NULL */
    const char *const *plugins; /* absolute paths, passed as workers' --plugin */
    size_t nplugins;
} up_opts_t;

static int cluster_up_locked(const char *dir, const up_opts_t *o, pid_t *wpids);

/* Holds DIR/.lock while starting, so two `up` on one directory cannot both
 * start a cluster; stops whatever it started when it fails. */
static int cluster_up(const char *dir, const up_opts_t *o)
{
    if (mkdirs(dir, 0700) != 0) {
        cli_error("cannot create %s: %s", dir, strerror(errno));
        return TSR_EXIT_FAILURE;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
        cli_error("another 'tessera cluster up' is starting a cluster in %s", dir);
        if (lock >= 0)
            close(lock);
        return TSR_EXIT_REFUSED;
    }
    pid_t wpids[MAX_LOCAL_WORKERS + 1] = {0};
    int code = cluster_up_locked(dir, o, wpids);
    if (code != TSR_EXIT_OK && code != TSR_EXIT_REFUSED) {
        cluster_down_q(dir, true);
        for (size_t i = 0; i <= MAX_LOCAL_WORKERS; i++) /* reap our children */
            if (wpids[i] > 0)
                waitpid(wpids[i], NULL, WNOHANG);
    }
    close(lock); /* releases the flock */
    return code;
}

static int cluster_up_locked(const char *dir, const up_opts_t *o, pid_t *wpids)
{
    char path[PATH_MAX], tok[PATH_MAX], addr[300], logp[PATH_MAX];
    pid_t sp = read_pid(dir, "scheduler.pid");
    if (sp && is_ours(sp, "scheduler", &(unsigned long long){0})) {
        cli_error("a cluster is already running in %s (scheduler pid %d)", dir, (int)sp);
        fprintf(stderr, "hint: 'tessera cluster status' shows it; 'tessera cluster down' "
                        "stops it\n");
        return TSR_EXIT_REFUSED;
    }
    char tokrel[PATH_MAX];
    if (!tsr_auth_token_path(o->token_file, tokrel, sizeof(tokrel))) {
        cli_error("no place for the cluster token: pass --token-file");
        return TSR_EXIT_USAGE;
    }
    tsr_error_t err;
    tsr_error_clear(&err);
    bool created = false;
    if (tsr_auth_token_ensure(tokrel, &created, &err) != TSR_OK) {
        cli_error("%s", err.message);
        return TSR_EXIT_FAILURE;
    }
    if (!realpath(tokrel, tok)) {
        cli_error("cannot resolve the token file '%s'", tokrel);
        return TSR_EXIT_FAILURE;
    }
    if (created)
        fprintf(stderr, "tessera: created the cluster token %s (mode 0600)\n", tok);
    snprintf(path, sizeof(path), "%s/token.path", dir);
    write_small(path, tok);
    snprintf(path, sizeof(path), "%s/scheduler.addr", dir);
    unlink(path);

    char addr_file[PATH_MAX];
    snprintf(addr_file, sizeof(addr_file), "%s/scheduler.addr", dir);
    snprintf(logp, sizeof(logp), "%s/scheduler.log", dir);
    char http_file[PATH_MAX];
    snprintf(http_file, sizeof(http_file), "%s/scheduler.http", dir);
    unlink(http_file);
    char *sargs[20];
    int a = 0;
    sargs[a++] = "tessera";
    sargs[a++] = "scheduler";
    sargs[a++] = "--listen";
    sargs[a++] = "127.0.0.1:0";
    sargs[a++] = "--token-file";
    sargs[a++] = tok;
    sargs[a++] = "--addr-file";
    sargs[a++] = addr_file;
    sargs[a++] = "--data-dir"; /* the kv catalog survives a scheduler restart */
    sargs[a++] = (char *)dir;
    if (o->hb) {
        sargs[a++] = "--heartbeat-timeout";
        sargs[a++] = (char *)o->hb;
    }
    if (o->min_range) {
        sargs[a++] = "--min-range";
        sargs[a++] = (char *)o->min_range;
    }
    if (o->http) {
        sargs[a++] = "--http";
        sargs[a++] = (char *)o->http;
        sargs[a++] = "--http-addr-file";
        sargs[a++] = http_file;
    }
    sargs[a] = NULL;
    pid_t spid = spawn(sargs, logp);
    wpids[0] = spid;
    if (spid < 0) {
        cli_error("cannot start the scheduler: %s", strerror(errno));
        return TSR_EXIT_FAILURE;
    }
    char num[32];
    snprintf(num, sizeof(num), "%d\n", (int)spid);
    snprintf(path, sizeof(path), "%s/scheduler.pid", dir);
    write_small(path, num);
    int wa = wait_addr(addr_file, spid, addr, sizeof(addr));
    if (wa != 0) {
        cli_error("the scheduler did not start; see %s", logp);
        kill(spid, SIGKILL);
        return wa > 0 ? wa : TSR_EXIT_FAILURE;
    }
    char threads[32];
    snprintf(threads, sizeof(threads), "%llu", o->threads);
    for (unsigned long long i = 1; i <= o->workers; i++) {
        char data[PATH_MAX];
        snprintf(data, sizeof(data), "%s/worker-%llu", dir, i);
        mkdir(data, 0700);
        snprintf(logp, sizeof(logp), "%s/worker-%llu.log", dir, i);
        char *wargs[16 + 2 * MAX_UP_PLUGINS];
        a = 0;
        wargs[a++] = "tessera";
        wargs[a++] = "worker";
        wargs[a++] = "--scheduler";
        wargs[a++] = addr;
        wargs[a++] = "--device";
        wargs[a++] = (char *)o->device;
        wargs[a++] = "--data-dir";
        wargs[a++] = data;
        wargs[a++] = "--token-file";
        wargs[a++] = tok;
        if (o->threads) {
            wargs[a++] = "--threads";
            wargs[a++] = threads;
        }
        if (o->hb) {
            wargs[a++] = "--heartbeat-timeout";
            wargs[a++] = (char *)o->hb;
        }
        for (size_t k = 0; k < o->nplugins; k++) {
            wargs[a++] = "--plugin";
            wargs[a++] = (char *)o->plugins[k];
        }
        wargs[a] = NULL;
        pid_t wpid = spawn(wargs, logp);
        if (wpid < 0) {
            cli_error("cannot start worker %llu: %s", i, strerror(errno));
            return TSR_EXIT_FAILURE;
        }
        wpids[i] = wpid;
        snprintf(num, sizeof(num), "%d\n", (int)wpid);
        snprintf(path, sizeof(path), "%s/worker-%llu.pid", dir, i);
        write_small(path, num);
    }
    /* every worker joined? (bounded; a worker that fails says why in its log) */
    char host[256];
    uint16_t port = 0;
    tsr_sched_parse_addr(addr, host, sizeof(host), &port);
    tsr_client_t *c = NULL;
    if (tsr_client_connect(host, port, tok, 5000, &c, &err) != TSR_OK) {
        cli_error("cannot talk to the new scheduler: %s", err.message);
        return tsr_status_exit_code(err.status);
    }
    size_t ready = 0;
    for (int waited = 0; waited < UP_WAIT_MS && ready < o->workers; waited += 50) {
        for (unsigned long long i = 1; i <= o->workers; i++) {
            int wst;
            if (wpids[i] > 0 && waitpid(wpids[i], &wst, WNOHANG) == wpids[i]) {
                tsr_client_destroy(c);
                cli_error("worker %llu exited (code %d); see %s/worker-%llu.log", i,
                          WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst), dir, i);
                return WIFEXITED(wst) && WEXITSTATUS(wst) == 2 ? TSR_EXIT_USAGE
                                                               : TSR_EXIT_UNAVAILABLE;
            }
        }
        tsr_client_status_t st;
        if (tsr_client_status(c, &st, &err) == TSR_OK) {
            ready = 0;
            for (size_t i = 0; i < st.nworkers; i++)
                ready += strcmp(st.workers[i].state, "ready") == 0;
            tsr_client_status_free(&st);
        }
        if (ready < o->workers)
            sleep_ms(50);
    }
    tsr_client_destroy(c);
    if (ready < o->workers) {
        cli_error("only %zu of %llu workers joined in time; see the logs in %s", ready, o->workers,
                  dir);
        return TSR_EXIT_UNAVAILABLE;
    }
    printf("%s\n", addr);
    return TSR_EXIT_OK;
}

/* ---- status ------------------------------------------------------------------------- */

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

/* The scheduler address and token of the cluster in dir (or --scheduler). */
static int cluster_target(const char *dir, const char *sched, const char *token_file, char *host,
                          size_t hsize, uint16_t *port, char *tok, size_t tsize)
{
    char addr[300];
    if (sched) {
        snprintf(addr, sizeof(addr), "%s", sched);
    } else {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/scheduler.addr", dir);
        if (cli_read_small(path, addr, sizeof(addr)) != 0) {
            cli_error("no cluster is running in %s", dir);
            fprintf(stderr, "hint: start one with 'tessera cluster up'\n");
            return TSR_EXIT_UNAVAILABLE;
        }
    }
    if (!tsr_sched_parse_addr(addr, host, hsize, port)) {
        cli_error("bad scheduler address '%s'", addr);
        return TSR_EXIT_USAGE;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/token.path", dir);
    if (!token_file && !sched && cli_read_small(path, tok, tsize) == 0)
        return TSR_EXIT_OK;
    if (!tsr_auth_token_path(token_file, tok, tsize)) {
        cli_error("no cluster token: pass --token-file");
        return TSR_EXIT_UNAVAILABLE;
    }
    return TSR_EXIT_OK;
}

static int cluster_status(const char *dir, const char *sched, const char *token_file,
                          cli_format_t format)
{
    char host[256], tok[PATH_MAX];
    uint16_t port = 0;
    int code = cluster_target(dir, sched, token_file, host, sizeof(host), &port, tok, sizeof(tok));
    if (code != TSR_EXIT_OK)
        return code;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_client_t *c = NULL;
    tsr_client_status_t st;
    if (tsr_client_connect(host, port, tok, 3000, &c, &err) != TSR_OK ||
        tsr_client_status(c, &st, &err) != TSR_OK) {
        tsr_client_destroy(c);
        cli_error("%s", err.message);
        if (err.hint[0])
            fprintf(stderr, "hint: %s\n", err.hint);
        return tsr_status_exit_code(err.status);
    }
    tsr_client_destroy(c);
    /* the HTTP endpoint's URL, known for DIR's cluster (up --http wrote it) */
    char http[340] = "", hp[300];
    char hpath[PATH_MAX];
    snprintf(hpath, sizeof(hpath), "%s/scheduler.http", dir);
    if (!sched && cli_read_small(hpath, hp, sizeof(hp)) == 0 && strchr(hp, ':')) {
        hp[strcspn(hp, "\r\n")] = '\0';
        bool v6 = strchr(hp, ':') != strrchr(hp, ':'); /* an IPv6 host: bracket it */
        if (v6) {
            char *colon = strrchr(hp, ':');
            *colon = '\0';
            snprintf(http, sizeof(http), "http://[%s]:%s/", hp, colon + 1);
        } else {
            snprintf(http, sizeof(http), "http://%s/", hp);
        }
    }
    if (format == CLI_FORMAT_JSON) {
        printf("{\"scheduler\":{\"address\":");
        char addr[300];
        snprintf(addr, sizeof(addr), "%s:%u", host, port);
        json_str(stdout, addr);
        printf(",\"pid\":%u", st.sched_pid);
        if (http[0]) {
            printf(",\"http\":");
            json_str(stdout, http);
        }
        printf("},\"workers\":[");
        for (size_t i = 0; i < st.nworkers; i++) {
            const tsr_client_worker_t *w = &st.workers[i];
            printf("%s{\"id\":%u,\"state\":", i ? "," : "", w->id);
            json_str(stdout, w->state);
            printf(",\"device\":");
            json_str(stdout, w->device);
            printf(",\"host\":");
            json_str(stdout, w->host);
            printf(",\"pid\":%u,\"load\":%u,\"tasks_done\":%llu}", w->pid, w->load,
                   (unsigned long long)w->tasks_done);
        }
        printf("]}\n");
    } else {
        printf("scheduler %s:%u (pid %u), %zu worker(s)\n", host, port, st.sched_pid, st.nworkers);
        if (http[0])
            printf("http %s\n", http);
        printf("%-4s %-6s %-10s %-20s %-8s %-5s %s\n", "id", "state", "device", "host", "pid",
               "load", "tasks");
        for (size_t i = 0; i < st.nworkers; i++) {
            const tsr_client_worker_t *w = &st.workers[i];
            printf("%-4u %-6s %-10s %-20s %-8u %-5u %llu\n", w->id, w->state, w->device, w->host,
                   w->pid, w->load, (unsigned long long)w->tasks_done);
        }
    }
    tsr_client_status_free(&st);
    return TSR_EXIT_OK;
}

#endif /* TSR_HAVE_SCHEDULER */

int cmd_cluster(int argc, char **argv)
{
    if (argc < 2) {
        cmd_cluster_usage(stderr);
        return TSR_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        cmd_cluster_usage(stdout);
        return TSR_EXIT_OK;
    }
    if (strcmp(sub, "up") != 0 && strcmp(sub, "down") != 0 && strcmp(sub, "status") != 0) {
        cli_error("unknown cluster command '%s'", sub);
        fprintf(stderr, "hint: tessera cluster up|status|down\n");
        return TSR_EXIT_USAGE;
    }
    char dirbuf[PATH_MAX];
    const char *dir = NULL, *sched = NULL, *token_file = NULL, *hb = NULL, *minr = NULL;
    const char *http = NULL;
    const char *device = "cpu";
    char plugbuf[MAX_UP_PLUGINS][PATH_MAX];
    const char *plugins[MAX_UP_PLUGINS];
    size_t nplugins = 0;
    unsigned long long workers = 2, threads = 0, v;
    cli_format_t format = CLI_FORMAT_TABLE;
    int hbms;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_cluster_usage(stdout);
            return TSR_EXIT_OK;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--dir", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            dir = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--workers", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--workers", val, &workers))
                return TSR_EXIT_USAGE;
            if (workers < 1 || workers > MAX_LOCAL_WORKERS) {
                cli_error("--workers must be 1 to %d", MAX_LOCAL_WORKERS);
                return TSR_EXIT_USAGE;
            }
        } else if ((m = cli_opt_value(argc, argv, &i, "--device", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            device = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--threads", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--threads", val, &threads))
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--token-file", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            token_file = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--scheduler", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            sched = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--heartbeat-timeout", &val)) != 0) {
            if (m < 0 || cli_parse_ms("--heartbeat-timeout", val, &hbms) != 0)
                return TSR_EXIT_USAGE;
            hb = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--min-range", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--min-range", val, &v))
                return TSR_EXIT_USAGE;
            minr = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--plugin", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (nplugins == MAX_UP_PLUGINS) {
                cli_error("at most %d --plugin options", MAX_UP_PLUGINS);
                return TSR_EXIT_USAGE;
            }
            /* absolute: the workers run in the cluster's directory */
            if (!realpath(val, plugbuf[nplugins])) {
                cli_error("--plugin %s: %s", val, strerror(errno));
                return TSR_EXIT_USAGE;
            }
            plugins[nplugins] = plugbuf[nplugins];
            nplugins++;
        } else if ((m = cli_opt_value(argc, argv, &i, "--http", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
#ifdef TSR_HAVE_SCHEDULER
            char hh[256];
            uint16_t hport;
            if (!tsr_sched_parse_addr(val, hh, sizeof(hh), &hport)) {
                cli_error("--http needs HOST:PORT, found '%s'", val);
                return TSR_EXIT_USAGE;
            }
#endif
            http = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--format", &val)) != 0) {
            if (m < 0 || !cli_parse_format(val, &format))
                return TSR_EXIT_USAGE;
            if (format == CLI_FORMAT_CSV) {
                cli_error("cluster status prints table or json");
                return TSR_EXIT_USAGE;
            }
        } else {
            return cli_unknown_option("cluster", arg);
        }
    }
    if (!dir) {
        if (cli_cluster_default_dir(dirbuf, sizeof(dirbuf)) != 0) {
            cli_error("no cluster directory: pass --dir (HOME is not set)");
            return TSR_EXIT_USAGE;
        }
        dir = dirbuf;
    }
    if (strcmp(sub, "down") == 0)
        return cluster_down(dir);
#ifdef TSR_HAVE_SCHEDULER
    if (strcmp(sub, "up") == 0) {
        up_opts_t o = {workers, device, token_file, hb, minr, threads, http, plugins, nplugins};
        return cluster_up(dir, &o);
    }
    return cluster_status(dir, sched, token_file, format);
#else
    (void)sched, (void)token_file, (void)hb, (void)minr, (void)device, (void)workers, (void)http;
    (void)threads, (void)format, (void)plugins, (void)nplugins;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
#endif
}
