/*
 * common.c - error reporting, option parsing and small file helpers shared by
 * the commands.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("tessera: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Most bytes of the SQL line shown above the caret: a query on one long line
 * (a generated IN list) is shown as a window around the error. */
#define CARET_WINDOW 160

/* Prints line `line` (1-based) of sql and a caret under byte column `column`
 * (the display column: UTF-8 continuation bytes take no room, tabs stay tabs). */
static void print_caret(const char *sql, int line, int column)
{
    const char *p = sql;
    for (int l = 1; l < line && p; l++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return;
    size_t len = strcspn(p, "\r\n");
    size_t col = column > 1 ? (size_t)column - 1 : 0; /* byte offset of the caret */
    size_t from = 0, to = len;
    if (len > CARET_WINDOW) {
        from = col > CARET_WINDOW / 2 ? col - CARET_WINDOW / 2 : 0;
        to = from + CARET_WINDOW < len ? from + CARET_WINDOW : len;
        while (from > 0 && from < len && ((unsigned char)p[from] & 0xC0) == 0x80)
            from++; /* never start or end inside a UTF-8 sequence */
        while (to < len && to > from && ((unsigned char)p[to] & 0xC0) == 0x80)
            to--;
    }
    const char *pre = from > 0 ? "..." : "", *post = to < len ? "..." : "";
    fprintf(stderr, "  %s%.*s%s\n  %s", pre, (int)(to - from), p + from, post,
            from > 0 ? "   " : "");
    for (size_t c = from; c < col; c++) {
        unsigned char ch = c < len ? (unsigned char)p[c] : ' ';
        if ((ch & 0xC0) != 0x80)
            fputc(ch == '\t' ? '\t' : ' ', stderr);
    }
    fputs("^\n", stderr);
}

int cli_report_error(tsr_status_t status, const char *message, const char *file, int line,
                     int column, const char *hint, const char *sql)
{
    cli_error("%s", message[0] ? message : tsr_status_str(status));
    if (file[0] && line > 0) {
        if (column > 0)
            fprintf(stderr, "  at %s:%d:%d\n", file, line, column);
        else
            fprintf(stderr, "  at %s:%d\n", file, line);
    } else if (sql && line > 0) {
        fprintf(stderr, "  at line %d, column %d:\n", line, column);
        print_caret(sql, line, column);
    }
    if (hint[0])
        fprintf(stderr, "hint: %s\n", hint);
    return tsr_status_exit_code(status);
}

int cli_report_context_error(const tsr_context_t *ctx, const char *sql)
{
    tsr_error_info_t e;
    tsr_context_last_error(ctx, &e);
    return cli_report_error(e.status, e.message, e.file, e.line, e.column, e.hint, sql);
}

int cli_read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

int cli_cluster_default_dir(char *buf, size_t size)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (state && state[0] == '/')
        n = snprintf(buf, size, "%s/tessera/cluster", state);
    else if (home && home[0])
        n = snprintf(buf, size, "%s/.local/state/tessera/cluster", home);
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_error("option '%s' needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_cluster_opt(int argc, char **argv, int *i, const char **scheduler, const char **dir,
                    const char **token_file)
{
    int m;
    if ((m = cli_opt_value(argc, argv, i, "--scheduler", scheduler)) != 0)
        return m;
    if ((m = cli_opt_value(argc, argv, i, "--dir", dir)) != 0)
        return m;
    return cli_opt_value(argc, argv, i, "--token-file", token_file);
}

bool cli_parse_count(const char *opt, const char *text, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    if (!text[0] || text[0] == '-') {
        cli_error("option '%s' needs a non-negative integer, found '%s'", opt, text);
        return false;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end) {
        cli_error("option '%s' needs a non-negative integer, found '%s'", opt, text);
        return false;
    }
    *out = v;
    return true;
}

int cli_unknown_option(const char *cmd, const char *arg)
{
    cli_error("unknown option '%s'", arg);
    fprintf(stderr, "hint: run 'tessera %s --help' for the options\n", cmd);
    return TSR_EXIT_USAGE;
}

bool cli_parse_format(const char *text, cli_format_t *out)
{
    if (strcmp(text, "table") == 0)
        *out = CLI_FORMAT_TABLE;
    else if (strcmp(text, "csv") == 0)
        *out = CLI_FORMAT_CSV;
    else if (strcmp(text, "json") == 0)
        *out = CLI_FORMAT_JSON;
    else {
        cli_error("unknown format '%s'", text);
        fprintf(stderr, "hint: use --format table, csv or json\n");
        return false;
    }
    return true;
}
