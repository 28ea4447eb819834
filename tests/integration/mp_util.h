/*
 * mp_util.h - what the multi-process C tests (kv/kv_test.c, txn/txn_test.c)
 * share: failing a process with its role named, the files in the scenario's
 * private directory through which roles and the driver talk, and the
 * driver's children (spawned by fork + exec of the test binary itself,
 * waited for with a bound, killed by PID when they overstay).
 *
 * Define before including:
 *   MP_PROG      the program's name ("kv_test"), argv[0] of the children and
 *                the prefix of failure messages
 *   MP_MAX_KIDS  how many children the driver may spawn
 * The header then defines g_dir (the scenario's directory; every role gets
 * it as argv[3]) and g_role ("driver", or the role a child runs).
 *
 * Files are written whole (a .tmp file renamed into place), so a reader never
 * sees half a value. The driver starts with driver_begin() and ends (also
 * through a failed CHECK) in driver_exit(). A child is "role NAME DIR ARG": execv of
 * /proc/self/exe, so the children run the very binary under test.
 */
#ifndef TSR_TESTS_MP_UTIL_H
#define TSR_TESTS_MP_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(MP_PROG) || !defined(MP_MAX_KIDS)
#error "define MP_PROG and MP_MAX_KIDS before including mp_util.h"
#endif

static const char *g_dir;
static const char *g_role = "driver";

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, MP_PROG " %s: FAIL %s:%d: ", g_role, __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- files in g_dir ----------------------------------------------------------------- */

static inline void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static inline bool file_exists(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    return access(p, F_OK) == 0;
}

/* Writes the formatted text (at most 4 KiB) as the file's whole content. */
static inline void write_text(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void write_text(const char *name, const char *fmt, ...)
{
    char p[512], tmp[520], buf[4096];
    path_of(p, sizeof(p), name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", p);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    FILE *f = fopen(tmp, "w");
    CHECK(f && fwrite(buf, 1, (size_t)n, f) == (size_t)n && fclose(f) == 0, "write %s", tmp);
    CHECK(rename(tmp, p) == 0, "rename %s", p);
}

/* The number the file starts with; -1 when it is absent or holds none. */
static inline long read_num(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static inline void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- the driver's children ------------------------------------------------------------ */

static pid_t kids[MP_MAX_KIDS];
static int nkids;

/* Starts "role ROLE g_dir ARG" (arg may be NULL). */
static inline pid_t spawn(const char *role, const char *arg)
{
    char *argv[6] = {MP_PROG, "role", (char *)role, (char *)g_dir, (char *)arg, NULL};
    CHECK(nkids < MP_MAX_KIDS, "too many children");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    kids[nkids++] = pid;
    return pid;
}

/* Waits at most timeout_s for pid; kills it (by PID) when it overstays.
 * Returns its wait status, -1 when it was killed for overstaying. */
static inline int wait_kid(pid_t pid, double timeout_s)
{
    double end = now() + timeout_s;
    int st;
    while (now() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    fprintf(stderr, MP_PROG ": child %d overstayed and was killed\n", (int)pid);
    return -1;
}

/* Kills (by PID) and reaps every child still running. */
static inline void kill_all(void)
{
    for (int i = 0; i < nkids; i++)
        if (kids[i] > 0 && waitpid(kids[i], NULL, WNOHANG) == 0) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], NULL, 0);
        }
}

/* The driver's exit, also through a failed CHECK: no child outlives it, and
 * the scenario's directory goes. */
static inline void driver_exit(void)
{
    kill_all();
    if (g_dir)
        rm_tree(g_dir);
}

/* The driver's start: arms alarm(alarm_s) (the driver is bounded too), makes
 * the private directory g_dir and registers driver_exit. */
static inline void driver_begin(unsigned alarm_s)
{
    alarm(alarm_s);
    static char tmpl[] = "/tmp/tsr_" MP_PROG "_XXXXXX"; /* outlives main: driver_exit */
    CHECK(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    g_dir = tmpl;
    atexit(driver_exit);
}

#endif /* TSR_TESTS_MP_UTIL_H */
