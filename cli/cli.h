/*
 * cli.h - what the tessera CLI's commands share: error reporting in the
 * DESIGN.md format, option parsing helpers, and result output.
 *
 * The CLI is a thin layer over the public API (include/tessera/): it never
 * reaches into engine internals.
 */
#ifndef TSR_CLI_H
#define TSR_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tessera/tessera.h"

/* Exit codes (DESIGN.md). */
enum {
    TSR_EXIT_OK = 0,
    TSR_EXIT_FAILURE = 1,
    TSR_EXIT_USAGE = 2,
    TSR_EXIT_NOT_FOUND = 3,
    TSR_EXIT_REFUSED = 4,
    TSR_EXIT_UNAVAILABLE = 5,
};

/* "tessera: error: <fmt>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints ctx's last error: message, then where (file:line:column for input
 * files; line/column and the source line with a caret for SQL text, when sql is
 * given), then the hint. Returns the exit code of the error's status. */
int cli_report_context_error(const tsr_context_t *ctx, const char *sql);
/* The same for an error given by its parts (a tsr_error_t of the cluster
 * client): message, "at FILE:LINE[:COL]" or the SQL line with a caret, hint.
 * sql may be NULL. Returns the exit code for status. */
int cli_report_error(tsr_status_t status, const char *message, const char *file, int line,
                     int column, const char *hint, const char *sql);
/* Reads a small text file (a pid, address or token) into buf, NUL-terminated,
 * trailing newlines and spaces cut. Returns 0, or -1 when it cannot be read. */
int cli_read_small(const char *path, char *buf, size_t size);
/* The cluster's default state directory (docs/cluster.md):
 * $XDG_STATE_HOME/tessera/cluster, else ~/.local/state/tessera/cluster.
 * Returns 0, or -1 when neither is set or buf is too small. */
int cli_cluster_default_dir(char *buf, size_t size);

/* Option parsing: argv[*i] is "--name" or "--name=value". When it matches,
 * stores the value (the next argument or the part after '=') and advances *i.
 * Returns 1 when matched, 0 when not this option, -1 (after printing an error)
 * when the value is missing. */
int cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value);

/* The options by which a cluster client finds the scheduler (docs/cluster.md):
 * --scheduler ADDR, --dir DIR (the cluster's state directory), --token-file
 * PATH, stored into the matching pointer. Returns like cli_opt_value: 1 when
 * argv[*i] is one of them, 0 when not, -1 (after printing an error) when its
 * value is missing. */
int cli_cluster_opt(int argc, char **argv, int *i, const char **scheduler, const char **dir,
                    const char **token_file);

/* Parses a non-negative integer option value; prints an error and returns false
 * when it is not one. */
bool cli_parse_count(const char *opt, const char *text, unsigned long long *out);

/* Unknown option: prints the error and a hint naming the command's help. */
int cli_unknown_option(const char *cmd, const char *arg);

typedef enum cli_format { CLI_FORMAT_TABLE, CLI_FORMAT_CSV, CLI_FORMAT_JSON } cli_format_t;
bool cli_parse_format(const char *text, cli_format_t *out);

/* Writes res to out in the format. Returns 0, or -1 on a write error. */
int cli_write_result(FILE *out, const tsr_result_t *res, cli_format_t format);

/* Shortest decimal text that reads back as exactly d ("1.5", "0.1", "3.0",
 * "1e+300"); integral values keep a ".0" so they read as doubles. */
void cli_format_double(double d, char *buf, size_t size);

int cmd_sql(int argc, char **argv);
int cmd_gen(int argc, char **argv);
void cmd_sql_usage(FILE *out);
void cmd_gen_usage(FILE *out);
int cmd_devices(int argc, char **argv);
void cmd_devices_usage(FILE *out);

/* Cluster commands (cmd_scheduler.c, cmd_worker.c, cmd_cluster.c). */
int cmd_scheduler(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
void cmd_scheduler_usage(FILE *out);
void cmd_worker_usage(FILE *out);
void cmd_cluster_usage(FILE *out);
/* `tessera lock acquire|release|renew|status` (cmd_lock.c). */
int cmd_lock(int argc, char **argv);
void cmd_lock_usage(FILE *out);
/* `tessera kv ...`: the cluster's hash tables (cmd_kv.c). */
int cmd_kv(int argc, char **argv);
void cmd_kv_usage(FILE *out);
/* `tessera txn NAME -e SCRIPT`: a one-shot transaction on a kv table (cmd_txn.c). */
int cmd_txn(int argc, char **argv);
void cmd_txn_usage(FILE *out);
/* SIGTERM/SIGINT set the flag cli_stop_flag() points to (a sig_atomic_t). */
void cli_install_stop_signals(void);
volatile sig_atomic_t *cli_stop_flag(void);
/* Milliseconds option in 100..3600000; prints the error and returns -1. */
int cli_parse_ms(const char *opt, const char *val, int *out);
/* ---- talking to a running cluster (cluster_client.c) -------------------------- */

/* A one-line progress bar on a terminal (docs/cli.md): tasks done/total and
 * rows/s, redrawn at most ~10 times a second; nothing when out is not a tty. */
typedef struct cli_progress {
    FILE *out;
    bool enabled; /* out is a terminal */
    bool drawn;   /* a bar is on the line now */
    unsigned long long last_ms;
} cli_progress_t;
void cli_progress_init(cli_progress_t *p, FILE *out);
void cli_progress_update(cli_progress_t *p, uint32_t done, uint32_t total, uint64_t rows,
                         uint64_t elapsed_ms);
/* Erases the bar (before printing anything else). */
void cli_progress_clear(cli_progress_t *p);

/* The scheduler and token a cluster command uses. */
typedef struct cli_cluster {
    char host[256];
    uint16_t port;
    char token[4096]; /* the token file's path */
    char device[16];  /* --device for the cluster's jobs ("" none; set after resolve) */
} cli_cluster_t;
/* --scheduler HOST:PORT, else the `cluster up` directory dir (NULL: the
 * default one, when it holds a running cluster), else 127.0.0.1:7700; the
 * token from token_file, else the cluster dir's, else the default places.
 * Prints the error and returns its exit code, or TSR_EXIT_OK. */
int cli_cluster_resolve(const char *scheduler, const char *dir, const char *token_file,
                        cli_cluster_t *out);
struct tsr_client;
/* Connects (progress may be NULL) and gives the client cl->device (exit 2
 * for an unknown word); prints the error and returns its exit code. */
int cli_cluster_connect(const cli_cluster_t *cl, cli_progress_t *progress,
                        struct tsr_client **out);
/* Runs the statements on the cluster one after the other and prints each
 * result as embedded `tessera sql` does (table results separated by a blank
 * line), with the progress bar on a terminal. Stops at the first error.
 * Returns the exit code. */
int cli_cluster_sql(const cli_cluster_t *cl, size_t ntables, const char *const *names,
                    const char *const *paths, const char *const *schemas, char delimiter,
                    size_t nstmts, const char *const *stmts, cli_format_t format);

/* `tessera submit` (cmd_submit.c). */
int cmd_submit(int argc, char **argv);
void cmd_submit_usage(FILE *out);

#endif /* TSR_CLI_H */
