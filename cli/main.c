/*
 * main.c - the tessera command: dispatches to a subcommand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tessera <command> [options]\n"
            "\n"
            "Tessera is an analytics and coordination engine; this build runs the embedded\n"
            "engine (one process, all cores).\n"
            "\n"
            "commands:\n"
            "  sql       run a SQL query on CSV files\n"
            "  gen       generate a seeded sample data set as CSV\n"
            "  devices   list the compute devices (CPU, OpenCL, CUDA)\n"
            "  scheduler run a cluster scheduler (see docs/cluster.md)\n"
            "  worker    run a cluster worker that joins a scheduler\n"
            "  cluster   start, inspect and stop a local cluster: up|status|down\n"
            "  lock      distributed locks on a cluster: acquire|release|renew|status\n"
            "  kv        hash tables on a cluster: create|put|get|del|load|scan|count|drop|list\n"
            "  txn       a one-shot transaction on a cluster's kv table: get|put|del\n"
            "  submit    run a job file (SQL or a JSON task graph), on a cluster or embedded\n"
            "  help      show help for a command: tessera help sql\n"
            "\n"
            "options:\n"
            "  --version   print the version\n"
            "  --help      show this help\n"
            "\n"
            "exit codes: 0 ok, 1 runtime failure, 2 bad usage or input, 3 not found,\n"
            "            4 refused by state, 5 unavailable\n");
}

static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return TSR_EXIT_OK;
    }
    if (strcmp(argv[1], "sql") == 0)
        cmd_sql_usage(stdout);
    else if (strcmp(argv[1], "gen") == 0)
        cmd_gen_usage(stdout);
    else if (strcmp(argv[1], "devices") == 0)
        cmd_devices_usage(stdout);
    else if (strcmp(argv[1], "scheduler") == 0)
        cmd_scheduler_usage(stdout);
    else if (strcmp(argv[1], "worker") == 0)
        cmd_worker_usage(stdout);
    else if (strcmp(argv[1], "cluster") == 0)
        cmd_cluster_usage(stdout);
    else if (strcmp(argv[1], "lock") == 0)
        cmd_lock_usage(stdout);
    else if (strcmp(argv[1], "kv") == 0)
        cmd_kv_usage(stdout);
    else if (strcmp(argv[1], "txn") == 0)
        cmd_txn_usage(stdout);
    else if (strcmp(argv[1], "submit") == 0)
        cmd_submit_usage(stdout);
    else if (strcmp(argv[1], "help") == 0)
        usage(stdout);
    else {
        cli_error("unknown command '%s'", argv[1]);
        fprintf(stderr, "hint: run 'tessera help' to list the commands\n");
        return TSR_EXIT_USAGE;
    }
    return TSR_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TSR_EXIT_USAGE;
    }
    /* A scheduler or worker restarted on its address after a crash must not
     * wait out the TIME_WAIT of its predecessor's connections (60 s) to
     * listen again: SO_REUSEADDR on UCX's TCP listener, unless the user set
     * it. (UCX 1.13 ignores this key through ucp_config_modify, so it goes
     * through the environment, before any transport is made.) */
    setenv("UCX_TCP_CM_REUSEADDR", "y", 0);
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("tessera %s\n", tsr_version());
        return TSR_EXIT_OK;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return TSR_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0)
        return help(argc - 1, argv + 1);
    if (strcmp(cmd, "sql") == 0)
        return cmd_sql(argc - 1, argv + 1);
    if (strcmp(cmd, "gen") == 0)
        return cmd_gen(argc - 1, argv + 1);
    if (strcmp(cmd, "devices") == 0)
        return cmd_devices(argc - 1, argv + 1);
    if (strcmp(cmd, "scheduler") == 0)
        return cmd_scheduler(argc - 1, argv + 1);
    if (strcmp(cmd, "worker") == 0)
        return cmd_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "cluster") == 0)
        return cmd_cluster(argc - 1, argv + 1);
    if (strcmp(cmd, "lock") == 0)
        return cmd_lock(argc - 1, argv + 1);
    if (strcmp(cmd, "kv") == 0)
        return cmd_kv(argc - 1, argv + 1);
    if (strcmp(cmd, "txn") == 0)
        return cmd_txn(argc - 1, argv + 1);
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(argc - 1, argv + 1);
    if (cmd[0] == '-')
        cli_error("unknown option '%s'", cmd);
    else
        cli_error("unknown command '%s'", cmd);
    fprintf(stderr, "hint: run 'tessera help' to list the commands\n");
    return TSR_EXIT_USAGE;
}
