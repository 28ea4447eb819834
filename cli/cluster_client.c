/*
 * cluster_client.c - what the commands that talk to a running cluster share
 * (`tessera sql --scheduler|--dir`, `tessera submit`, `tessera lock`):
 *
 *   cli_cluster_resolve   which scheduler and token: --scheduler HOST:PORT;
 *                         else the `cluster up` directory (--dir, else the
 *                         default one): its scheduler.addr and token.path;
 *                         else 127.0.0.1:7700. The token: --token-file, else
 *                         the cluster dir's, else $TESSERA_TOKEN_FILE, else
 *                         ~/.config/tessera/token.
 *   cli_progress_*        the progress bar: one line on stderr, only when
 *                         stderr is a terminal, redrawn at most every 100 ms
 *                         from the scheduler's PROGRESS messages, cleared
 *                         before anything else is printed.
 *   cli_cluster_sql       SQL statements on the cluster, results printed as
 *                         embedded `tessera sql` prints them.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#ifdef TSR_HAVE_SCHEDULER
#include "auth.h"
#include "scheduler.h"
#endif

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cli_progress_init(cli_progress_t *p, FILE *out)
{
    memset(p, 0, sizeof(*p));
    p->out = out;
    p->enabled = out && isatty(fileno(out));
}

/* "1.2M" for 1234567. */
static void human(double v, char *buf, size_t size)
{
    static const char *units[] = {"", "k", "M", "G", "T"};
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, size, u ? "%.1f%s" : "%.0f%s", v, units[u]);
}

void cli_progress_update(cli_progress_t *p, uint32_t done, uint32_t total, uint64_t rows,
                         uint64_t elapsed_ms)
{
    if (!p->enabled)
        return;
    uint64_t t = now_ms();
    if (p->drawn && t - p->last_ms < 100 && done < total)
        return; /* at most ~10 redraws a second */
    p->last_ms = t;
    enum { BAR = 24 };
    char bar[BAR + 1], rate[32] = "";
    size_t fill = total ? (size_t)((uint64_t)done * BAR / total) : 0;
    for (size_t i = 0; i < BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR] = '\0';
    if (elapsed_ms > 0 && rows > 0) { /* embedded graphs count no rows */
        char h[16];
        human((double)rows * 1000.0 / (double)elapsed_ms, h, sizeof(h));
        snprintf(rate, sizeof(rate), "  %s rows/s", h);
    }
    /* \r and clear-to-end: one line, redrawn in place */
    int n = fprintf(p->out, "\r\033[K[%s] %u/%u tasks%s", bar, done, total, rate);
    fflush(p->out);
    p->drawn = n > 0;
}

void cli_progress_clear(cli_progress_t *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
    }
    p->drawn = false;
}

#ifdef TSR_HAVE_SCHEDULER

int cli_cluster_resolve(const char *scheduler, const char *dir, const char *token_file,
                        cli_cluster_t *out)
{
    char addr[300] = "127.0.0.1:7700", dbuf[PATH_MAX], path[PATH_MAX + 32];
    bool from_dir = false;
    memset(out, 0, sizeof(*out));
    if (scheduler) {
        snprintf(addr, sizeof(addr), "%s", scheduler);
    } else if (dir || cli_cluster_default_dir(dbuf, sizeof(dbuf)) == 0) {
        if (dir)
            snprintf(dbuf, sizeof(dbuf), "%s", dir);
        snprintf(path, sizeof(path), "%s/scheduler.addr", dbuf);
        if (cli_read_small(path, addr, sizeof(addr)) == 0 && strchr(addr, ':'))
            from_dir = true;
        else if (dir) {
            cli_error("no cluster is running in %s", dir);
            fprintf(stderr, "hint: start one with 'tessera cluster up --dir %s'\n", dir);
            return TSR_EXIT_UNAVAILABLE;
        } else
            snprintf(addr, sizeof(addr), "127.0.0.1:7700");
    }
    if (!tsr_sched_parse_addr(addr, out->host, sizeof(out->host), &out->port) || out->port == 0) {
        cli_error("--scheduler needs HOST:PORT, found '%s'", addr);
        return TSR_EXIT_USAGE;
    }
    if (!token_file && from_dir) {
        snprintf(path, sizeof(path), "%s/token.path", dbuf);
        if (cli_read_small(path, out->token, sizeof(out->token)) == 0 && out->token[0])
            return TSR_EXIT_OK;
    }
    if (!tsr_auth_token_path(token_file, out->token, sizeof(out->token))) {
        cli_error("no cluster token: pass --token-file");
        return TSR_EXIT_UNAVAILABLE;
    }
    return TSR_EXIT_OK;
}

static void on_progress(void *arg, uint32_t done, uint32_t total, uint64_t rows,
                        uint64_t elapsed_ms)
{
    cli_progress_update(arg, done, total, rows, elapsed_ms);
}

int cli_cluster_connect(const cli_cluster_t *cl, cli_progress_t *progress, tsr_client_t **out)
{
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_client_connect(cl->host, cl->port, cl->token, 5000, out, &err) != TSR_OK)
        return cli_report_error(err.status, err.message, err.file, err.line, err.column, err.hint,
                                NULL);
    if (cl->device[0] && tsr_client_set_device(*out, cl->device, &err) != TSR_OK) {
        tsr_client_destroy(*out);
        *out = NULL;
        cli_error("--device: %s", err.message);
        return TSR_EXIT_USAGE;
    }
    if (progress)
        tsr_client_set_progress(*out, on_progress, progress);
    return TSR_EXIT_OK;
}

int cli_cluster_sql(const cli_cluster_t *cl, size_t ntables, const char *const *names,
                    const char *const *paths, const char *const *schemas, char delimiter,
                    size_t nstmts, const char *const *stmts, cli_format_t format)
{
    tsr_client_table_t *tabs = calloc(ntables ? ntables : 1, sizeof(*tabs));
    char(*abs)[PATH_MAX] = calloc(ntables ? ntables : 1, PATH_MAX);
    tsr_client_t *c = NULL;
    tsr_context_t *ctx = NULL;
    int code = TSR_EXIT_FAILURE;
    cli_progress_t pb;
    cli_progress_init(&pb, stderr);
    if (!tabs || !abs)
        goto done;
    for (size_t i = 0; i < ntables; i++) {
        /* workers open the files: they need paths that do not depend on our cwd */
        if (!realpath(paths[i], abs[i])) {
            cli_error("cannot open '%s': %s", paths[i], strerror(errno));
            code = TSR_EXIT_NOT_FOUND;
            goto done;
        }
        tabs[i].name = names[i];
        tabs[i].path = abs[i];
        tabs[i].schema = schemas[i];
    }
    tsr_context_params_t cp = {.threads = 1};
    if (tsr_context_create(&cp, &ctx) != TSR_OK) {
        cli_error("cannot start the engine");
        goto done;
    }
    if ((code = cli_cluster_connect(cl, NULL, &c)) != TSR_EXIT_OK)
        goto done;
    for (size_t s = 0; s < nstmts; s++) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_result_t *res = NULL;
        tsr_client_set_progress(c, on_progress, &pb);
        tsr_status_t rc = tsr_client_sql(c, ctx, stmts[s], tabs, ntables, delimiter, &res, &err);
        /* a late message must not draw over the result */
        tsr_client_set_progress(c, NULL, NULL);
        cli_progress_clear(&pb);
        if (rc != TSR_OK) {
            code = cli_report_error(err.status, err.message, err.file, err.line, err.column,
                                    err.hint, stmts[s]);
            goto done;
        }
        if (s > 0 && format == CLI_FORMAT_TABLE)
            fputc('\n', stdout);
        int w = cli_write_result(stdout, res, format);
        tsr_result_destroy(res);
        if (w != 0 || fflush(stdout) != 0) {
            cli_error("cannot write the result to standard output");
            code = TSR_EXIT_FAILURE;
            goto done;
        }
    }
    code = TSR_EXIT_OK;
done:
    cli_progress_clear(&pb);
    tsr_context_destroy(ctx);
    tsr_client_destroy(c);
    free(tabs);
    free(abs);
    return code;
}

#endif /* TSR_HAVE_SCHEDULER */
