/*
 * util.c - option parsing, error reporting, clocks and statistics for
 * tessera-bench (see bench.h).
 *
 * Options are `--name VALUE` or `--name=VALUE`; counts accept a k/M/G suffix
 * (powers of 1000) so `--rows 10M` reads as 10,000,000. Anything malformed is a
 * usage error (exit 2) reported once, on stderr, in the CLI's format.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "bench.h"

void tsr_bench_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tessera: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int tsr_bench_engine_error(tsr_context_t *ctx, tsr_status_t status, const char *what)
{
    tsr_error_info_t info = {0};
    if (ctx)
        tsr_context_last_error(ctx, &info);
    tsr_bench_progress_clear();
    if (info.message && info.message[0])
        fprintf(stderr, "tessera: error: %s: %s\n", what, info.message);
    else
        fprintf(stderr, "tessera: error: %s: %s\n", what, tsr_status_str(status));
    if (info.file && info.file[0] && info.line > 0)
        fprintf(stderr, "  at %s:%d:%d\n", info.file, info.line, info.column);
    else if (info.line > 0)
        fprintf(stderr, "  at line %d, column %d\n", info.line, info.column);
    if (info.hint && info.hint[0])
        fprintf(stderr, "  hint: %s\n", info.hint);
    int code = tsr_status_exit_code(status);
    return code == 0 ? TSR_BENCH_EXIT_FAIL : code;
}

double tsr_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double tsr_bench_cpu_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

uint64_t tsr_bench_ticks(void)
{
#if defined(__x86_64__)
    return __rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

void tsr_bench_tickcal_start(tsr_bench_tickcal_t *c)
{
    c->t0 = tsr_bench_now();
    c->k0 = tsr_bench_ticks();
}

double tsr_bench_tickcal_end(const tsr_bench_tickcal_t *c)
{
    uint64_t k = tsr_bench_ticks();
    double t = tsr_bench_now();
    return k > c->k0 ? (t - c->t0) / (double)(k - c->k0) : 0.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

tsr_bench_stats_t tsr_bench_stats(double *samples, size_t n)
{
    tsr_bench_stats_t s = {0, 0};
    if (n == 0)
        return s;
    qsort(samples, n, sizeof(*samples), cmp_double);
    s.best = samples[0];
    s.median = (n % 2) ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
    return s;
}

void tsr_bench_progress(const char *fmt, ...)
{
    if (!isatty(STDERR_FILENO))
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr); /* carriage return + erase line */
    vfprintf(stderr, fmt, ap);
    fflush(stderr);
    va_end(ap);
}

void tsr_bench_progress_clear(void)
{
    if (!isatty(STDERR_FILENO))
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

/* ---- option parsing ------------------------------------------------------------ */

/* Parses a count: decimal digits with an optional k/M/G suffix (x1000^n).
 * Returns 0 and sets *out, or -1 on anything else (sign, garbage, overflow). */
static int parse_count(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1000ULL;
    else if (*end == 'm' || *end == 'M')
        mul = 1000000ULL;
    else if (*end == 'g' || *end == 'G')
        mul = 1000000000ULL;
    if (mul != 1)
        end++;
    if (*end != '\0')
        return -1;
    if (v != 0 && (uint64_t)v > UINT64_MAX / mul)
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static int usage_error(const char *suite, const char *fmt, const char *arg)
{
    fputs("tessera: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    fprintf(stderr, "  hint: see 'tessera-bench %s --help'\n", suite);
    return TSR_BENCH_EXIT_USAGE;
}

/* Matches argv[*i] against --name or --name=VALUE. Returns 1 with *value set
 * (consuming the next argument for the first form), 0 when it is another
 * option, -1 when the value is missing. */
static int take_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

int tsr_bench_parse_opts(const char *suite, int argc, char **argv, int first, bool allow_sql,
                         tsr_bench_opts_t *opts)
{
    static const char *const count_flags[] = {"--rows", "--keys", "--threads", "--repeat",
                                              "--seed"};
    memset(opts, 0, sizeof(*opts));
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            opts->json = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            opts->help = true;
            continue;
        }
        bool matched = false;
        for (size_t f = 0; f < sizeof(count_flags) / sizeof(count_flags[0]); f++) {
            const char *value = NULL;
            int m = take_value(argc, argv, &i, count_flags[f], &value);
            if (m == 0)
                continue;
            if (m < 0)
                return usage_error(suite, "option '%s' needs a value", count_flags[f]);
            uint64_t v;
            if (parse_count(value, &v) != 0)
                return usage_error(suite, "bad number '%s' (expected digits, optionally "
                                          "with a k/M/G suffix)", value);
            switch (f) {
            case 0:
                if (v == 0)
                    return usage_error(suite, "%s must be at least 1", count_flags[f]);
                opts->rows = v;
                break;
            case 1:
                if (v == 0 || v > UINT32_MAX)
                    return usage_error(suite, "%s must be in [1, 4294967295]", count_flags[f]);
                opts->keys = v;
                break;
            case 2:
                if (v > 1024)
                    return usage_error(suite, "%s must be in [0, 1024] (0: one per core)",
                                       count_flags[f]);
                opts->threads = (unsigned)v;
                break;
            case 3:
                if (v == 0 || v > 1000)
                    return usage_error(suite, "%s must be in [1, 1000]", count_flags[f]);
                opts->repeat = (unsigned)v;
                break;
            default:
                opts->seed = v;
                opts->seed_given = true;
                break;
            }
            matched = true;
            break;
        }
        if (matched)
            continue;
        const char *device = NULL;
        int dm = take_value(argc, argv, &i, "--device", &device);
        if (dm < 0)
            return usage_error(suite, "option '%s' needs a value", "--device");
        if (dm > 0) {
            opts->device = device;
            continue;
        }
        const char *sched = NULL;
        int sm = take_value(argc, argv, &i, "--scheduler", &sched);
        if (sm < 0 || (sm > 0 && sched[0] == '\0'))
            return usage_error(suite, "option '%s' needs a value", "--scheduler HOST:PORT");
        if (sm > 0) {
            opts->scheduler = sched;
            continue;
        }
        const char *table = NULL;
        int m = allow_sql ? take_value(argc, argv, &i, "--table", &table) : 0;
        if (m < 0)
            return usage_error(suite, "option '%s' needs a value", "--table NAME=FILE.csv");
        if (m > 0) {
            const char *eq = strchr(table, '=');
            if (!eq || eq == table || eq[1] == '\0')
                return usage_error(suite, "bad table '%s' (expected NAME=FILE.csv)", table);
            if (opts->ntables == sizeof(opts->tables) / sizeof(opts->tables[0]))
                return usage_error(suite, "too many tables (at most 16): '%s'", table);
            opts->tables[opts->ntables++] = table;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            return usage_error(suite, "unknown option '%s'", a);
        if (allow_sql && !opts->sql) {
            opts->sql = a;
            continue;
        }
        return usage_error(suite, "unexpected argument '%s'", a);
    }
    return 0;
}

bool tsr_bench_sm_lanes_begin(const char *set)
{
    if (strcmp(set, "sm") != 0 || getenv("UCX_MAX_RNDV_LANES"))
        return false;
    setenv("UCX_MAX_RNDV_LANES", "0", 1);
    return true;
}

void tsr_bench_sm_lanes_end(bool was_set)
{
    if (was_set)
        unsetenv("UCX_MAX_RNDV_LANES");
}

pid_t tsr_bench_spawn_server(const char *suite, const char *env_name, const char *env_value,
                             uint16_t *port)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        setenv(env_name, env_value, 1);
        execl("/proc/self/exe", "tessera-bench", suite, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    /* UCX logs to stdout by default: skip anything but the port line. */
    unsigned p = 0;
    char line[512];
    while (f && p == 0 && fgets(line, sizeof(line), f))
        if (line[0] >= '1' && line[0] <= '9' && strspn(line, "0123456789\n") == strlen(line))
            p = (unsigned)atoi(line);
    if (f)
        fclose(f);
    else
        close(fds[0]);
    if (p == 0 || p > 65535) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *port = (uint16_t)p;
    return pid;
}

void tsr_bench_stop_server(pid_t pid, double timeout_s)
{
    double end = tsr_bench_now() + timeout_s;
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (tsr_bench_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        usleep(10000);
    }
}
