/*
 * cmd_worker.c - `tessera worker`: the long-running worker process. Option
 * parsing only; the daemon is scheduler/worker.c, the stop signals are
 * cmd_scheduler.c's.
 *
 * Under Slurm (`srun tessera worker --device slurm ...`) the device is the
 * GPU numbered $SLURM_LOCALID on its node (CUDA first, then OpenCL), else the
 * CPU; see docs/cluster.md.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#ifdef TSR_HAVE_SCHEDULER
#include "auth.h"
#include "scheduler.h"
#endif

void cmd_worker_usage(FILE *out)
{
    fprintf(out, "usage: tessera worker --scheduler HOST:PORT [options]\n"
                 "\n"
                 "Runs a worker in the foreground until SIGTERM or SIGINT, or until the\n"
                 "scheduler is lost (exit 5). One worker per device.\n"
                 "\n"
                 "options:\n"
                 "  --scheduler HOST:PORT     the scheduler to join (required)\n"
                 "  --device DEV              cpu (default), opencl, opencl1, cuda, cuda0, ... or\n"
                 "                            auto; under Slurm 'slurm' picks the GPU numbered\n"
                 "                            $SLURM_LOCALID (cuda, else opencl), else cpu\n"
                 "  --data-dir DIR            the worker's data directory (created)\n"
                 "  --listen HOST[:PORT]      where its transport listens for peers (lock\n"
                 "                            clients reaching its lock home; default\n"
                 "                            127.0.0.1 and a free port, reported to the\n"
                 "                            scheduler)\n"
                 "  --token-file F            the cluster token (as for 'tessera scheduler')\n"
                 "  --threads N               executor threads per task (default: one per core)\n"
                 "  --plugin PATH             a task-graph plugin library (.so) whose task kinds\n"
                 "                            graph jobs may use; repeatable (docs/graph.md)\n"
                 "  --heartbeat-timeout MS    the scheduler is lost after 2 x MS ms without a\n"
                 "                            heartbeat (default 3000)\n"
                 "  --help                    show this help\n");
}

#ifdef TSR_HAVE_SCHEDULER

/* --device slurm: the GPU numbered $SLURM_LOCALID, else cpu. */
static const char *slurm_device(char *buf, size_t size)
{
    const char *local = getenv("SLURM_LOCALID");
    if (!local || !*local)
        return "cpu";
    tsr_device_list_t *list = NULL;
    const char *dev = "cpu";
    unsigned long idx = strtoul(local, NULL, 10);
    if (tsr_device_list_create(&list) != TSR_OK)
        return dev;
    const tsr_device_backend_t order[] = {TSR_DEVICE_CUDA, TSR_DEVICE_OPENCL};
    for (size_t k = 0; k < 2 && dev[0] == 'c' && dev[1] == 'p'; k++) {
        const tsr_device_backend_info_t *b = tsr_device_list_backend(list, order[k]);
        if (b && b->ndevices > idx) {
            snprintf(buf, size, "%s%lu", tsr_device_backend_name(order[k]), idx);
            dev = buf;
        }
    }
    tsr_device_list_destroy(list);
    return dev;
}

int cmd_worker(int argc, char **argv)
{
    tsr_worker_params_t p = {.device = "cpu", .log = stderr};
    const char *token_file = NULL, *sched = NULL;
    char host[256], lhost[256], tok[4096], devbuf[32];
    enum { MAX_PLUGINS = 16 };
    char *plugins[MAX_PLUGINS]; /* realpath's, freed below */
    int code = TSR_EXIT_USAGE;
    unsigned long long v;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_worker_usage(stdout);
            code = TSR_EXIT_OK;
            goto done;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--scheduler", &val)) != 0) {
            if (m < 0)
                goto done;
            sched = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--device", &val)) != 0) {
            if (m < 0)
                goto done;
            p.device = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--listen", &val)) != 0) {
            if (m < 0)
                goto done;
            bool ok =
                strchr(val, ':')
                    ? tsr_sched_parse_addr(val, lhost, sizeof(lhost), &p.listen_port)
                    : val[0] && snprintf(lhost, sizeof(lhost), "%s", val) < (int)sizeof(lhost);
            if (!ok) {
                cli_error("--listen needs HOST or HOST:PORT, found '%s'", val);
                goto done;
            }
            p.listen_host = lhost;
        } else if ((m = cli_opt_value(argc, argv, &i, "--data-dir", &val)) != 0) {
            if (m < 0)
                goto done;
            p.data_dir = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--token-file", &val)) != 0) {
            if (m < 0)
                goto done;
            token_file = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--threads", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--threads", val, &v))
                goto done;
            if (v > 1024) {
                cli_error("--threads must be at most 1024");
                goto done;
            }
            p.threads = (unsigned)v;
        } else if ((m = cli_opt_value(argc, argv, &i, "--heartbeat-timeout", &val)) != 0) {
            if (m < 0 || cli_parse_ms("--heartbeat-timeout", val, &p.dead_ms) != 0)
                goto done;
        } else if ((m = cli_opt_value(argc, argv, &i, "--plugin", &val)) != 0) {
            if (m < 0)
                goto done;
            if (p.nplugins == MAX_PLUGINS) {
                cli_error("too many --plugin options (at most %d)", MAX_PLUGINS);
                goto done;
            }
            /* absolute: dlopen of a bare name would search the library path */
            if (!(plugins[p.nplugins] = realpath(val, NULL))) {
                cli_error("cannot open plugin '%s': %s", val, strerror(errno));
                code = TSR_EXIT_NOT_FOUND;
                goto done;
            }
            p.nplugins++;
            p.plugins = (const char *const *)plugins;
        } else {
            code = cli_unknown_option("worker", arg);
            goto done;
        }
    }
    if (!sched) {
        cli_error("tessera worker needs --scheduler HOST:PORT");
        goto done;
    }
    if (!tsr_sched_parse_addr(sched, host, sizeof(host), &p.sched_port) || p.sched_port == 0) {
        cli_error("--scheduler needs HOST:PORT, found '%s'", sched);
        goto done;
    }
    p.sched_host = host;
    if (strcmp(p.device, "slurm") == 0)
        p.device = slurm_device(devbuf, sizeof(devbuf));
    if (!tsr_auth_token_path(token_file, tok, sizeof(tok))) {
        cli_error("no cluster token: pass --token-file or set $TESSERA_TOKEN_FILE");
        code = TSR_EXIT_UNAVAILABLE;
        goto done;
    }
    p.token_path = tok;
    p.stop = cli_stop_flag();
    cli_install_stop_signals();
    code = tsr_worker_run(&p);
done:
    for (size_t k = 0; k < p.nplugins; k++)
        free(plugins[k]);
    return code;
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_worker(int argc, char **argv)
{
    return cmd_scheduler(argc, argv);
}

#endif
