/*
 * cmd_scheduler.c - `tessera scheduler`, the cluster's long-running
 * scheduler process, and the stop signals it shares with `tessera worker`
 * (cmd_worker.c). Option parsing and signals only; the daemon is
 * scheduler/sched.c.
 *
 * SIGTERM and SIGINT set a flag the daemon's loop checks at least every
 * 100 ms, so both stop cleanly (connections closed, queued tasks refused).
 * The flag is the one piece of process-wide state: a signal handler can reach
 * nothing else.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#ifdef TSR_HAVE_SCHEDULER
#include "auth.h"
#include "policy.h"
#include "scheduler.h"
#endif

static volatile sig_atomic_t stop_requested;

volatile sig_atomic_t *cli_stop_flag(void)
{
    return &stop_requested;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void cli_install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void cmd_scheduler_usage(FILE *out)
{
    fprintf(out, "usage: tessera scheduler [options]\n"
                 "\n"
                 "Runs the cluster scheduler in the foreground until SIGTERM or SIGINT. Workers\n"
                 "join it ('tessera worker --scheduler HOST:PORT'); clients send it queries\n"
                 "('tessera sql --scheduler HOST:PORT'). Everyone proves the cluster token.\n"
                 "\n"
                 "options:\n"
                 "  --listen HOST:PORT        address to listen on (default 127.0.0.1:7700;\n"
                 "                            port 0 picks a free port)\n"
                 "  --token-file F            the cluster token (default: $TESSERA_TOKEN_FILE,\n"
                 "                            else ~/.config/tessera/token)\n"
                 "  --addr-file F             write the address listened on to F (for scripts)\n"
                 "  --heartbeat-timeout MS    a silent worker is dead after MS ms (default 3000)\n"
                 "  --min-range BYTES         smallest CSV byte range per task (default 1048576)\n"
                 "  --ranges-per-worker N     byte ranges per worker and query (default 2)\n"
                 "  --broadcast-max BYTES     split a join's largest file only while the other\n"
                 "                            files, read whole by every task, total at most\n"
                 "                            BYTES (default 67108864; 0: joins run whole)\n"
                 "  --http HOST:PORT          serve read-only GET /status, /jobs, /metrics over\n"
                 "                            HTTP (JSON; Prometheus text); HOST defaults to\n"
                 "                            127.0.0.1, port 0 picks a free one\n"
                 "  --http-auth               HTTP requests need 'Authorization: Bearer B',\n"
                 "                            B = hex HMAC-SHA256(token, \"tsr-http\")\n"
                 "                            (docs/cluster.md \"HTTP\")\n"
                 "  --http-addr-file F        write the HTTP address to F (for scripts)\n"
                 "  --policy NAME             task placement: locality (default: run where a\n"
                 "                            task's inputs are, idle workers steal) or\n"
                 "                            least-loaded (ignore where inputs are)\n"
                 "  --slots N                 tasks sent to a worker at a time (default 8;\n"
                 "                            the rest wait in the scheduler's queues)\n"
                 "  --data-dir DIR            keep the kv catalog in DIR/kv-catalog (created\n"
                 "                            if missing): a restarted scheduler serves the\n"
                 "                            same kv tables (docs/kv.md); and the log of\n"
                 "                            cluster transactions, DIR/txn-log, that keeps\n"
                 "                            commits atomic across a scheduler crash\n"
                 "  --kv-replace-after SECONDS  a worker dead this long loses its kv replicas:\n"
                 "                            the next worker on the ring takes a copy of each\n"
                 "                            (default 60; 0: never; docs/kv.md)\n"
                 "  --help                    show this help\n");
}

int cli_parse_ms(const char *opt, const char *val, int *out)
{
    unsigned long long v;
    if (!cli_parse_count(opt, val, &v))
        return -1;
    if (v < 100 || v > 3600000) {
        cli_error("%s must be between 100 and 3600000 ms", opt);
        return -1;
    }
    *out = (int)v;
    return 0;
}

#ifdef TSR_HAVE_SCHEDULER

int cmd_scheduler(int argc, char **argv)
{
    tsr_sched_params_t p = {.listen_host = "127.0.0.1", .listen_port = 7700, .log = stderr};
    const char *token_file = NULL;
    char host[256], tok[4096], http_host[256];
    unsigned long long v;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_scheduler_usage(stdout);
            return TSR_EXIT_OK;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--listen", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (!tsr_sched_parse_addr(val, host, sizeof(host), &p.listen_port)) {
                cli_error("--listen needs HOST:PORT, found '%s'", val);
                return TSR_EXIT_USAGE;
            }
            p.listen_host = host;
        } else if ((m = cli_opt_value(argc, argv, &i, "--token-file", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            token_file = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--addr-file", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            p.addr_file = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--heartbeat-timeout", &val)) != 0) {
            if (m < 0 || cli_parse_ms("--heartbeat-timeout", val, &p.dead_ms) != 0)
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--min-range", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--min-range", val, &v))
                return TSR_EXIT_USAGE;
            p.min_range_bytes = v ? v : 1;
        } else if ((m = cli_opt_value(argc, argv, &i, "--ranges-per-worker", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--ranges-per-worker", val, &v))
                return TSR_EXIT_USAGE;
            if (v < 1 || v > 64) {
                cli_error("--ranges-per-worker must be 1 to 64");
                return TSR_EXIT_USAGE;
            }
            p.ranges_per_worker = (unsigned)v;
        } else if ((m = cli_opt_value(argc, argv, &i, "--broadcast-max", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--broadcast-max", val, &v))
                return TSR_EXIT_USAGE;
            p.broadcast_max = v ? v : 1; /* 1 byte: no file with a header fits */
        } else if ((m = cli_opt_value(argc, argv, &i, "--http", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (!tsr_sched_parse_addr(val, http_host, sizeof(http_host), &p.http_port)) {
                cli_error("--http needs HOST:PORT, found '%s'", val);
                fprintf(stderr, "hint: e.g. --http 127.0.0.1:8787 (port 0 picks a free one)\n");
                return TSR_EXIT_USAGE;
            }
            p.http_host = http_host;
        } else if (strcmp(arg, "--http-auth") == 0) {
            p.http_auth = true;
        } else if ((m = cli_opt_value(argc, argv, &i, "--http-addr-file", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            p.http_addr_file = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--policy", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (!tsr_policy_find(val) || !val[0]) {
                cli_error("unknown --policy '%s'", val);
                fprintf(stderr, "hint: known policies: %s\n", tsr_policy_names());
                return TSR_EXIT_USAGE;
            }
            p.policy = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--data-dir", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (!val[0]) {
                cli_error("--data-dir needs a directory");
                return TSR_EXIT_USAGE;
            }
            p.data_dir = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--kv-replace-after", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--kv-replace-after", val, &v))
                return TSR_EXIT_USAGE;
            if (v > 30u * 24 * 3600) {
                cli_error("--kv-replace-after must be 0 to 2592000 seconds");
                return TSR_EXIT_USAGE;
            }
            p.kv_replace_after_ms = v ? (int64_t)v * 1000 : -1; /* 0: never */
        } else if ((m = cli_opt_value(argc, argv, &i, "--slots", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--slots", val, &v))
                return TSR_EXIT_USAGE;
            if (v < 1 || v > 1024) {
                cli_error("--slots must be 1 to 1024");
                return TSR_EXIT_USAGE;
            }
            p.slots = (unsigned)v;
        } else {
            return cli_unknown_option("scheduler", arg);
        }
    }
    if (!tsr_auth_token_path(token_file, tok, sizeof(tok))) {
        cli_error("no cluster token: pass --token-file or set $TESSERA_TOKEN_FILE");
        return TSR_EXIT_UNAVAILABLE;
    }
    if ((p.http_auth || p.http_addr_file) && !p.http_host) {
        cli_error("%s needs --http HOST:PORT", p.http_auth ? "--http-auth" : "--http-addr-file");
        return TSR_EXIT_USAGE;
    }
    p.token_path = tok;
    p.stop = &stop_requested;
    cli_install_stop_signals();
    return tsr_sched_run(&p);
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_scheduler(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    (void)stop_requested;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
}

#endif
