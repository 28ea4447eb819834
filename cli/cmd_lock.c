/*
 * cmd_lock.c - `tessera lock acquire|release|renew|status`: the cluster's
 * distributed locks from the shell (docs/locks.md "Locks on a cluster").
 *
 * This process is short-lived: it authenticates to the scheduler like
 * `tessera sql --scheduler`, sends one request and exits. The scheduler
 * forwards the request to the worker hosting the lock's home, whose lock
 * client takes the grant and keeps it after we exit, keyed by the fencing
 * token we print; `release`/`renew` from any later command name the grant by
 * (NAME, --token). A grant nobody releases ends with its lease.
 *
 * Which scheduler: --scheduler HOST:PORT; else the running `cluster up`
 * cluster of --dir (default $XDG_STATE_HOME/tessera/cluster, else
 * ~/.local/state/tessera/cluster: its scheduler.addr and token.path); else
 * 127.0.0.1:7700, the scheduler's default listener (docs/cluster.md). The
 * token: --token-file, else the cluster dir's, else $TESSERA_TOKEN_FILE,
 * else ~/.config/tessera/token.
 *
 * Exit codes (DESIGN.md): 0 ok; 2 bad usage or input (empty/oversized or
 * non-UTF-8 name, malformed or zero token, negative lease/timeout); 3 not
 * found (status of a lock never acquired, a token that names no live grant:
 * wrong, released or expired); 4 refused by state (not granted within
 * --timeout-ms; release/renew after the lease ran out and the lock was
 * taken over: STALE); 5 unavailable (no scheduler, token refused, the lock's
 * home worker down).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "tessera/lock.h"
#ifdef TSR_HAVE_SCHEDULER
#include "auth.h"
#include "scheduler.h"
#endif

void cmd_lock_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera lock acquire NAME [--shared] [--lease-ms N] [--timeout-ms N]\n"
            "       tessera lock release NAME --token T\n"
            "       tessera lock renew NAME --token T [--lease-ms N]\n"
            "       tessera lock status NAME [--format table|json]\n"
            "\n"
            "Named, leased, fenced locks held by the cluster's workers (docs/locks.md).\n"
            "acquire prints the fencing token and leaves the lock held after it exits,\n"
            "until 'release' with that token or until the lease runs out ('renew' extends\n"
            "it). Give the token with every write to the protected resource.\n"
            "\n"
            "options:\n"
            "  --shared                acquire: shared (reader) mode; default exclusive\n"
            "  --lease-ms N            acquire, renew: lease in ms, 1..%d (default %d)\n"
            "  --timeout-ms N          acquire: give up after N ms (exit 4); 0 tries once;\n"
            "                          default: wait without limit\n"
            "  --token T               release, renew: the token acquire printed\n"
            "  --format FMT            status: table (default) or json\n"
            "  --scheduler HOST:PORT   the cluster's scheduler (default: the running 'cluster\n"
            "                          up' cluster of --dir, else 127.0.0.1:7700)\n"
            "  --dir DIR               the 'cluster up' directory to look in\n"
            "  --token-file F          the cluster token (default: the cluster dir's, else\n"
            "                          $TESSERA_TOKEN_FILE, else ~/.config/tessera/token)\n"
            "  --help                  show this help\n"
            "\n"
            "exit codes: 2 bad input, 3 unknown lock or token, 4 not granted in time or\n"
            "            lease lost, 5 cluster unavailable or token refused\n",
            TSR_LOCK_MAX_LEASE_MS, TSR_LOCK_DEFAULT_LEASE_MS);
}

typedef struct lock_args {
    const char *op, *name;
    bool shared;
    long long lease_ms;   /* 0: default */
    long long timeout_ms; /* -1: no limit */
    unsigned long long token;
    bool have_token;
    cli_format_t format;
    const char *scheduler, *dir, *token_file;
} lock_args_t;

/* Integer option in lo..hi; prints the error (exit 2) otherwise. */
static bool parse_range(const char *opt, const char *val, long long lo, long long hi,
                        long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (!val[0] || errno || *end) {
        cli_error("option '%s' needs an integer, found '%s'", opt, val);
        return false;
    }
    if (v < lo || v > hi) {
        cli_error("option '%s' must be in %lld..%lld, found %lld", opt, lo, hi, v);
        return false;
    }
    *out = v;
    return true;
}

static int parse(int argc, char **argv, lock_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->timeout_ms = -1;
    a->format = CLI_FORMAT_TABLE;
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int m;
        long long v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cmd_lock_usage(stdout);
            return -1;
        } else if (strcmp(argv[i], "--shared") == 0) {
            a->shared = true;
        } else if ((m = cli_opt_value(argc, argv, &i, "--lease-ms", &val)) != 0) {
            if (m < 0 || !parse_range("--lease-ms", val, 1, TSR_LOCK_MAX_LEASE_MS, &v))
                return TSR_EXIT_USAGE;
            a->lease_ms = v;
        } else if ((m = cli_opt_value(argc, argv, &i, "--timeout-ms", &val)) != 0) {
            if (m < 0 || !parse_range("--timeout-ms", val, 0, 86400000, &v))
                return TSR_EXIT_USAGE;
            a->timeout_ms = v;
        } else if ((m = cli_opt_value(argc, argv, &i, "--token", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--token", val, &a->token))
                return TSR_EXIT_USAGE;
            if (a->token == 0) {
                cli_error("option '--token' must be a token 'tessera lock acquire' printed "
                          "(a positive integer), found 0");
                return TSR_EXIT_USAGE;
            }
            a->have_token = true;
        } else if ((m = cli_opt_value(argc, argv, &i, "--format", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (!cli_parse_format(val, &a->format) || a->format == CLI_FORMAT_CSV) {
                cli_error("unknown format '%s' for lock status", val);
                fprintf(stderr, "hint: use table or json\n");
                return TSR_EXIT_USAGE;
            }
        } else if ((m = cli_cluster_opt(argc, argv, &i, &a->scheduler, &a->dir, &a->token_file)) !=
                   0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_unknown_option("lock", argv[i]);
        } else if (!a->op) {
            a->op = argv[i];
        } else if (!a->name) {
            a->name = argv[i];
        } else {
            cli_error("unexpected argument '%s'", argv[i]);
            fprintf(stderr, "hint: quote a lock name with spaces; see 'tessera help lock'\n");
            return TSR_EXIT_USAGE;
        }
    }
    if (!a->op) {
        cli_error("missing the lock command (acquire, release, renew or status)");
        fprintf(stderr, "hint: see 'tessera help lock'\n");
        return TSR_EXIT_USAGE;
    }
    bool acq = strcmp(a->op, "acquire") == 0, rel = strcmp(a->op, "release") == 0;
    bool ren = strcmp(a->op, "renew") == 0, st = strcmp(a->op, "status") == 0;
    if (!acq && !rel && !ren && !st) {
        cli_error("unknown lock command '%s'", a->op);
        fprintf(stderr, "hint: use acquire, release, renew or status\n");
        return TSR_EXIT_USAGE;
    }
    if (!a->name) {
        cli_error("missing the lock NAME");
        return TSR_EXIT_USAGE;
    }
    /* the worker checks names fully (UTF-8); these two need no cluster */
    size_t n = strlen(a->name);
    if (n == 0 || n > TSR_LOCK_NAME_MAX) {
        cli_error("lock name is %s (1..%u bytes of UTF-8)", n ? "too long" : "empty",
                  TSR_LOCK_NAME_MAX);
        return TSR_EXIT_USAGE;
    }
    if ((rel || ren) != a->have_token) {
        cli_error(a->have_token ? "--token is only for release and renew"
                                : "%s needs --token T (the token acquire printed)",
                  a->op);
        return TSR_EXIT_USAGE;
    }
    if ((a->shared || a->timeout_ms >= 0) && !acq) {
        cli_error("--shared and --timeout-ms are only for acquire");
        return TSR_EXIT_USAGE;
    }
    if (a->lease_ms && !acq && !ren) {
        cli_error("--lease-ms is only for acquire and renew");
        return TSR_EXIT_USAGE;
    }
    return TSR_EXIT_OK;
}

#ifdef TSR_HAVE_SCHEDULER

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static const char *state_name(tsr_lock_state_t s)
{
    return s == TSR_LOCK_HELD_EXCLUSIVE ? "exclusive"
           : s == TSR_LOCK_HELD_SHARED  ? "shared"
                                        : "free";
}

static void print_status(const char *name, const tsr_lock_status_t *st, cli_format_t format)
{
    if (format == CLI_FORMAT_JSON) {
        printf("{\"name\":");
        json_str(stdout, name);
        printf(",\"state\":\"%s\",\"holders\":%u,\"holders_exact\":%s,\"waiters\":%u,"
               "\"last_token\":%llu,\"lease_ms\":%lld,\"home\":%u,\"slot\":%u,\"epoch\":%u}\n",
               state_name(st->state), st->holders, st->holders_exact ? "true" : "false",
               st->waiters, (unsigned long long)st->last_token, (long long)st->lease_ms, st->home,
               st->slot, st->epoch);
        return;
    }
    printf("lock        %s\n", name);
    printf("state       %s\n", state_name(st->state));
    printf("holders     %u%s\n", st->holders, st->holders_exact ? "" : " (at least)");
    printf("waiters     %u\n", st->waiters);
    printf("last token  %llu\n", (unsigned long long)st->last_token);
    printf("lease       %lld ms\n", (long long)st->lease_ms);
    printf("home        %u (slot %u, epoch %u)\n", st->home, st->slot, st->epoch);
}

int cmd_lock(int argc, char **argv)
{
    lock_args_t a;
    int code = parse(argc, argv, &a);
    if (code != TSR_EXIT_OK)
        return code < 0 ? TSR_EXIT_OK : code;
    cli_cluster_t cl; /* see the top comment; shared with sql and submit */
    if ((code = cli_cluster_resolve(a.scheduler, a.dir, a.token_file, &cl)) != TSR_EXIT_OK)
        return code;
    tsr_client_lock_req_t q = {.name = a.name,
                               .shared = a.shared,
                               .lease_ms = a.lease_ms,
                               .timeout_ms = a.timeout_ms,
                               .token = a.token};
    q.op = strcmp(a.op, "acquire") == 0   ? TSR_CLIENT_LOCK_ACQUIRE
           : strcmp(a.op, "release") == 0 ? TSR_CLIENT_LOCK_RELEASE
           : strcmp(a.op, "renew") == 0   ? TSR_CLIENT_LOCK_RENEW
                                          : TSR_CLIENT_LOCK_STATUS;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_client_t *c = NULL;
    uint64_t token = 0;
    tsr_lock_status_t st;
    memset(&st, 0, sizeof(st));
    if (tsr_client_connect(cl.host, cl.port, cl.token, 5000, &c, &err) != TSR_OK ||
        tsr_client_lock(c, &q, &token, &st, &err) != TSR_OK) {
        cli_error("%s", err.message[0] ? err.message : tsr_status_str(err.status));
        if (err.hint[0])
            fprintf(stderr, "hint: %s\n", err.hint);
        tsr_client_destroy(c);
        /* a malformed reply or request is the cluster's fault, not the user's */
        return err.status == TSR_ERR_BAD_INPUT ? TSR_EXIT_FAILURE
                                               : tsr_status_exit_code(err.status);
    }
    tsr_client_destroy(c);
    if (q.op == TSR_CLIENT_LOCK_ACQUIRE)
        printf("%llu\n", (unsigned long long)token);
    else if (q.op == TSR_CLIENT_LOCK_STATUS)
        print_status(a.name, &st, a.format);
    if (fflush(stdout) != 0) {
        cli_error("cannot write to standard output");
        return TSR_EXIT_FAILURE;
    }
    return TSR_EXIT_OK;
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_lock(int argc, char **argv)
{
    lock_args_t a;
    int code = parse(argc, argv, &a);
    if (code != TSR_EXIT_OK)
        return code < 0 ? TSR_EXIT_OK : code;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
}

#endif
