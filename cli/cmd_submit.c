/*
 * cmd_submit.c - `tessera submit [--scheduler HOST:PORT | --dir DIR] JOB`:
 * run a job file (scheduler/jobfile.h) on a cluster, or embedded without
 * --scheduler/--dir (like `tessera sql`).
 *
 *   JOB.sql    statements, each run like `tessera sql` and printed in turn;
 *              --table/--schema/--delimiter load the CSV files they read.
 *   JOB.json   a task graph (docs/cluster.md "Job files"): on a cluster the
 *              scheduler places its tasks on the workers (user task kinds come
 *              from the workers' --plugin libraries); embedded it runs in this
 *              process with this command's --plugin libraries. The sink
 *              tasks' tables print like `tessera sql` results (through the
 *              same conversion in both modes, so the output is identical);
 *              bytes print raw.
 *
 * The whole file is parsed and checked before anything runs: a malformed
 * file exits 2 with the file:line:column (JSON syntax) or the task's id
 * (unknown task, cycle, dangling input). On a terminal a progress bar shows
 * on stderr while the job runs (cluster_client.c), cleared before results
 * print.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli.h"
#ifdef TSR_HAVE_SCHEDULER
#include "jobfile.h"
#include "scheduler.h"
#endif

#define MAX_TABLES 64
#define MAX_PLUGINS 16

void cmd_submit_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera submit [options] JOB\n"
            "\n"
            "Runs a job file: SQL statements (JOB.sql, ';' between them) or a task graph\n"
            "(JOB.json, see docs/cluster.md). With --scheduler or --dir it runs on a cluster\n"
            "(a progress bar shows on stderr when it is a terminal); without, embedded.\n"
            "\n"
            "options:\n"
            "  --scheduler HOST:PORT   the cluster's scheduler\n"
            "  --dir DIR               the cluster 'tessera cluster up --dir DIR' started\n"
            "  --token-file F          the cluster token (default: the cluster dir's, else\n"
            "                          $TESSERA_TOKEN_FILE, else ~/.config/tessera/token)\n"
            "  --format FMT            table (default), csv or json\n"
            "  --table NAME=PATH.csv   SQL jobs: load a CSV file as table NAME; repeatable\n"
            "  --schema NAME=SPEC      SQL jobs: column types for table NAME\n"
            "  --delimiter C           SQL jobs: field delimiter of the CSV files (default ,)\n"
            "  --plugin PATH           embedded graph jobs: a plugin library with user task\n"
            "                          kinds; repeatable (cluster workers take their own)\n"
            "  --threads N             embedded: executor threads (default: one per core)\n"
            "  --device DEV            cluster: where the job's tasks may run: auto (SQL's\n"
            "                          default: prefer GPU workers), cpu (any worker), gpu,\n"
            "                          cuda, opencl, cuda0, ... (only such workers; none\n"
            "                          ready: exit 5); graph tasks' own \"device\" wins.\n"
            "                          Embedded SQL jobs: the engine's device, as in\n"
            "                          tessera sql; embedded graphs ignore it\n"
            "  --help                  show this help\n"
            "\n"
            "exit codes: 2 malformed job file (with file:line or the task's id), 3 a file\n"
            "            or task kind not found, 5 cluster unavailable or token refused\n");
}

#ifdef TSR_HAVE_SCHEDULER

typedef struct submit_args {
    const char *job, *scheduler, *dir, *token_file, *device;
    cli_format_t format;
    size_t ntables, nschemas, nplugins;
    const char *tnames_arg[MAX_TABLES], *schemas[MAX_TABLES], *plugins[MAX_PLUGINS];
    char delim;
    unsigned long long threads;
} submit_args_t;

static int parse(int argc, char **argv, submit_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->format = CLI_FORMAT_TABLE;
    a->delim = ',';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_submit_usage(stdout);
            return -1;
        }
        if ((m = cli_cluster_opt(argc, argv, &i, &a->scheduler, &a->dir, &a->token_file)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--format", &val)) != 0) {
            if (m < 0 || !cli_parse_format(val, &a->format))
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--table", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (a->ntables == MAX_TABLES) {
                cli_error("too many --table options (at most %d)", MAX_TABLES);
                return TSR_EXIT_USAGE;
            }
            a->tnames_arg[a->ntables++] = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--schema", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (a->nschemas == MAX_TABLES || !strchr(val, '=')) {
                cli_error("--schema needs NAME=col:type,..., found '%s'", val);
                return TSR_EXIT_USAGE;
            }
            a->schemas[a->nschemas++] = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--delimiter", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (strcmp(val, "\\t") == 0 || strcmp(val, "tab") == 0)
                val = "\t";
            if (strlen(val) != 1 || val[0] == '"' || val[0] == '\n' || val[0] == '\r') {
                cli_error("--delimiter needs one character other than a quote or newline");
                return TSR_EXIT_USAGE;
            }
            a->delim = val[0];
        } else if ((m = cli_opt_value(argc, argv, &i, "--device", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (strlen(val) >= sizeof(((cli_cluster_t *)0)->device)) {
                cli_error("--device: unknown device '%s'", val);
                return TSR_EXIT_USAGE;
            }
            a->device = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--plugin", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            if (a->nplugins == MAX_PLUGINS) {
                cli_error("too many --plugin options (at most %d)", MAX_PLUGINS);
                return TSR_EXIT_USAGE;
            }
            a->plugins[a->nplugins++] = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--threads", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--threads", val, &a->threads))
                return TSR_EXIT_USAGE;
            if (a->threads > 1024) {
                cli_error("--threads must be at most 1024, found %llu", a->threads);
                return TSR_EXIT_USAGE;
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_unknown_option("submit", arg);
        } else if (a->job) {
            cli_error("more than one job file given ('%s' and '%s')", a->job, arg);
            return TSR_EXIT_USAGE;
        } else {
            a->job = arg;
        }
    }
    if (!a->job) {
        cli_error("missing the JOB file");
        fprintf(stderr, "hint: tessera submit --scheduler HOST:PORT job.sql|job.json\n");
        return TSR_EXIT_USAGE;
    }
    return TSR_EXIT_OK;
}

/* --table NAME=PATH / PATH and --schema NAME=SPEC into parallel arrays
 * (names are heap copies, freed by the caller). */
static int sql_tables(const submit_args_t *a, char **names, const char **paths,
                      const char **schemas)
{
    for (size_t t = 0; t < a->ntables; t++) {
        const char *arg = a->tnames_arg[t], *eq = strchr(arg, '=');
        if (eq) {
            names[t] = strndup(arg, (size_t)(eq - arg));
            paths[t] = eq + 1;
        } else {
            const char *base = strrchr(arg, '/');
            base = base ? base + 1 : arg;
            names[t] = strndup(base, strcspn(base, "."));
            paths[t] = arg;
        }
        schemas[t] = NULL;
        if (!names[t] || !names[t][0] || !paths[t][0]) {
            cli_error("--table needs NAME=PATH.csv, found '%s'", arg);
            return TSR_EXIT_USAGE;
        }
    }
    for (size_t s = 0; s < a->nschemas; s++) {
        const char *eq = strchr(a->schemas[s], '=');
        size_t n = (size_t)(eq - a->schemas[s]), t = 0;
        while (t < a->ntables &&
               !(strlen(names[t]) == n && strncasecmp(names[t], a->schemas[s], n) == 0))
            t++;
        if (t == a->ntables) {
            cli_error("--schema names table '%.*s', which no --table loads", (int)n, a->schemas[s]);
            return TSR_EXIT_USAGE;
        }
        schemas[t] = eq + 1;
    }
    return TSR_EXIT_OK;
}

static int run_sql_embedded(const submit_args_t *a, const tsr_job_t *job, size_t ntables,
                            char *const *names, const char *const *paths,
                            const char *const *schemas)
{
    tsr_context_params_t params = {.threads = (unsigned)a->threads};
    tsr_context_t *ctx = NULL;
    if (tsr_context_create(&params, &ctx) != TSR_OK) {
        cli_error("cannot start the engine");
        return TSR_EXIT_FAILURE;
    }
    int code = TSR_EXIT_OK;
    /* embedded, --device is the engine's device, as for `tessera sql` */
    if (a->device && tsr_context_set_device(ctx, a->device) != TSR_OK)
        code = cli_report_context_error(ctx, NULL);
    for (size_t t = 0; t < ntables && code == TSR_EXIT_OK; t++) {
        tsr_csv_params_t cp = {.delimiter = a->delim, .schema = schemas[t]};
        if (tsr_table_register_csv(ctx, names[t], paths[t], &cp) != TSR_OK)
            code = cli_report_context_error(ctx, NULL);
    }
    for (size_t s = 0; s < job->nstmts && code == TSR_EXIT_OK; s++) {
        tsr_result_t *res = NULL;
        if (tsr_query(ctx, job->stmts[s].sql, &res) != TSR_OK) {
            code = cli_report_context_error(ctx, job->stmts[s].sql);
            break;
        }
        if (s > 0 && a->format == CLI_FORMAT_TABLE)
            fputc('\n', stdout);
        if (cli_write_result(stdout, res, a->format) != 0 || fflush(stdout) != 0) {
            cli_error("cannot write the result to standard output");
            code = TSR_EXIT_FAILURE;
        }
        tsr_result_destroy(res);
    }
    tsr_context_destroy(ctx);
    return code;
}

/* Prints one sink's value: a table as `tessera sql` would, bytes raw. */
static int print_output(const submit_args_t *a, size_t k, size_t n, const char *id,
                        const tsr_result_t *table, const void *bytes, size_t len)
{
    if (a->format == CLI_FORMAT_TABLE && n > 1)
        printf("%s== %s ==\n", k ? "\n" : "", id);
    if (table && cli_write_result(stdout, table, a->format) != 0)
        goto fail;
    if (bytes && len && fwrite(bytes, 1, len, stdout) != len)
        goto fail;
    if (fflush(stdout) != 0)
        goto fail;
    return TSR_EXIT_OK;
fail:
    cli_error("cannot write the result to standard output");
    return TSR_EXIT_FAILURE;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The graph in this process: tables into the context, one handle per task
 * (named by its id), tasks added in the job's (topological) order. */
static int run_graph_embedded(const submit_args_t *a, const tsr_job_t *job)
{
    tsr_context_params_t params = {.threads = (unsigned)a->threads};
    tsr_context_t *ctx = NULL;
    tsr_graph_t *g = NULL;
    tsr_data_t **tdata = calloc(job->ntables ? job->ntables : 1, sizeof(*tdata));
    tsr_data_t **out = calloc(job->ntasks, sizeof(*out));
    tsr_data_t **ins = NULL;
    size_t *sinks = NULL;
    int code = TSR_EXIT_FAILURE;
    cli_progress_t pb;
    cli_progress_init(&pb, stderr);
    if (!tdata || !out || tsr_context_create(&params, &ctx) != TSR_OK) {
        cli_error("cannot start the engine");
        goto done;
    }
    if (tsr_graph_create(ctx, NULL, &g) != TSR_OK)
        goto ctx_error;
    for (size_t i = 0; i < a->nplugins; i++) {
        char real[PATH_MAX];
        if (!realpath(a->plugins[i], real)) {
            cli_error("cannot open plugin '%s': %s", a->plugins[i], strerror(errno));
            code = TSR_EXIT_NOT_FOUND;
            goto done;
        }
        const char *base = strrchr(real, '/');
        if (tsr_graph_load_plugin(g, base ? base + 1 : real, real) != TSR_OK)
            goto ctx_error;
    }
    for (size_t t = 0; t < job->ntables; t++) {
        tsr_csv_params_t cp = {.delimiter = job->delimiter, .schema = job->tables[t].schema};
        if (tsr_table_register_csv(ctx, job->tables[t].name, job->tables[t].path, &cp) != TSR_OK ||
            tsr_graph_data_table(g, job->tables[t].name, &tdata[t]) != TSR_OK)
            goto ctx_error;
    }
    for (size_t i = 0; i < job->ntasks; i++) {
        const tsr_job_task_t *t = &job->tasks[i];
        free(ins);
        if (!(ins = calloc(t->ninputs ? t->ninputs : 1, sizeof(*ins))))
            goto done;
        for (size_t k = 0; k < t->ninputs; k++)
            ins[k] = t->inputs[k].is_task ? out[t->inputs[k].index] : tdata[t->inputs[k].index];
        tsr_task_params_t tp = {.kind = t->kind,
                                .label = t->id,
                                .sql = t->sql,
                                .param = t->param,
                                .ninputs = t->ninputs,
                                .inputs = ins,
                                .noutputs = 1,
                                .outputs = &out[i]};
        if (tsr_graph_data(g, t->id, &out[i]) != TSR_OK || tsr_graph_add(g, &tp, NULL) != TSR_OK)
            goto ctx_error;
    }
    if (tsr_graph_submit(g) != TSR_OK)
        goto ctx_error;
    uint64_t t0 = mono_ms();
    tsr_status_t rc;
    while ((rc = tsr_graph_wait(g, 100)) == TSR_ERR_TIMEOUT) {
        tsr_graph_counts_t c;
        tsr_graph_counts(g, &c);
        cli_progress_update(&pb, (uint32_t)(c.done + c.failed + c.cancelled), (uint32_t)job->ntasks,
                            0, mono_ms() - t0);
    }
    cli_progress_clear(&pb);
    if (rc != TSR_OK)
        goto ctx_error;
    /* the sinks in file order, as the cluster path prints them (order is a
     * permutation of the task indices) */
    size_t nsinks = 0;
    if (!(sinks = calloc(job->ntasks, sizeof(*sinks))))
        goto done;
    for (size_t i = 0; i < job->ntasks; i++)
        sinks[job->tasks[i].order] = i;
    for (size_t o = 0; o < job->ntasks; o++)
        if (job->tasks[sinks[o]].sink)
            sinks[nsinks++] = sinks[o];
    for (size_t k = 0; k < nsinks; k++) {
        size_t i = sinks[k];
        tsr_result_t *res = NULL;
        size_t len = 0;
        const void *bytes = tsr_data_bytes(out[i], &len);
        if (tsr_data_kind(out[i]) == TSR_DATA_TABLE) {
            char name[64];
            tsr_error_t err;
            tsr_error_clear(&err);
            snprintf(name, sizeof(name), "tsr_graph_result_%zu", k);
            if (tsr_client_data_result(ctx, out[i], name, &res, &err) != TSR_OK) {
                code = cli_report_error(err.status, err.message, err.file, err.line, err.column,
                                        err.hint, NULL);
                goto done;
            }
        }
        code = print_output(a, k, nsinks, job->tasks[i].id, res, bytes, len);
        tsr_result_destroy(res);
        if (code != TSR_EXIT_OK)
            goto done;
    }
    code = TSR_EXIT_OK;
    goto done;
ctx_error:
    cli_progress_clear(&pb);
    code = cli_report_context_error(ctx, NULL);
done:
    free(ins);
    free(sinks);
    tsr_graph_destroy(g);
    tsr_context_destroy(ctx);
    free(tdata);
    free(out);
    return code;
}

static int run_graph_cluster(const submit_args_t *a, const tsr_job_t *job, const cli_cluster_t *cl)
{
    tsr_context_params_t cp = {.threads = 1};
    tsr_context_t *ctx = NULL;
    tsr_client_t *c = NULL;
    tsr_client_output_t *outs = NULL;
    size_t nouts = 0;
    cli_progress_t pb;
    cli_progress_init(&pb, stderr);
    if (tsr_context_create(&cp, &ctx) != TSR_OK) {
        cli_error("cannot start the engine");
        return TSR_EXIT_FAILURE;
    }
    int code = cli_cluster_connect(cl, &pb, &c);
    if (code == TSR_EXIT_OK) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_status_t rc = tsr_client_graph(c, ctx, job, &outs, &nouts, &err);
        tsr_client_set_progress(c, NULL, NULL); /* nothing may draw over the results */
        cli_progress_clear(&pb);
        if (rc != TSR_OK)
            code = cli_report_error(err.status, err.message, err.file, err.line, err.column,
                                    err.hint, NULL);
        for (size_t k = 0; k < nouts && code == TSR_EXIT_OK; k++)
            code = print_output(a, k, nouts, outs[k].id, outs[k].table, outs[k].bytes, outs[k].len);
    }
    tsr_client_outputs_free(outs, nouts);
    tsr_client_destroy(c);
    tsr_context_destroy(ctx);
    return code;
}

int cmd_submit(int argc, char **argv)
{
    submit_args_t a;
    int code = parse(argc, argv, &a);
    if (code != TSR_EXIT_OK)
        return code < 0 ? TSR_EXIT_OK : code;
    tsr_job_t job;
    tsr_error_t err;
    tsr_error_clear(&err);
    if (tsr_job_load(NULL, a.job, &job, &err) != TSR_OK)
        return cli_report_error(err.status, err.message, err.file, err.line, err.column, err.hint,
                                NULL);
    bool cluster = a.scheduler || a.dir;
    cli_cluster_t cl;
    char *names[MAX_TABLES] = {0};
    const char *paths[MAX_TABLES], *schemas[MAX_TABLES];
    if (job.kind == TSR_JOB_GRAPH && (a.ntables || a.nschemas)) {
        cli_error("--table and --schema are for SQL jobs");
        fprintf(stderr, "hint: declare a graph's CSV files under \"tables\" in %s\n", a.job);
        code = TSR_EXIT_USAGE;
        goto done;
    }
    if (cluster && a.nplugins) {
        cli_error("--plugin is for embedded runs: on a cluster, every worker loads the plugin");
        fprintf(stderr, "hint: start the workers with 'tessera worker --plugin PATH'\n");
        code = TSR_EXIT_USAGE;
        goto done;
    }
    if (cluster && (code = cli_cluster_resolve(a.scheduler, a.dir, a.token_file, &cl)) != 0)
        goto done;
    /* SQL jobs default to auto (prefer GPU workers); graph tasks keep their own */
    if (cluster)
        snprintf(cl.device, sizeof(cl.device), "%s",
                 a.device                  ? a.device
                 : job.kind == TSR_JOB_SQL ? "auto"
                                           : "");
    if (job.kind == TSR_JOB_SQL) {
        if ((code = sql_tables(&a, names, paths, schemas)) != TSR_EXIT_OK)
            goto done;
        if (cluster) {
            const char **stmts = calloc(job.nstmts, sizeof(*stmts));
            if (!stmts) {
                cli_error("out of memory");
                code = TSR_EXIT_FAILURE;
                goto done;
            }
            for (size_t s = 0; s < job.nstmts; s++)
                stmts[s] = job.stmts[s].sql;
            code = cli_cluster_sql(&cl, a.ntables, (const char *const *)names, paths, schemas,
                                   a.delim, job.nstmts, stmts, a.format);
            free(stmts);
        } else {
            code = run_sql_embedded(&a, &job, a.ntables, names, paths, schemas);
        }
    } else {
        code = cluster ? run_graph_cluster(&a, &job, &cl) : run_graph_embedded(&a, &job);
    }
done:
    for (size_t t = 0; t < MAX_TABLES; t++)
        free(names[t]);
    tsr_job_free(&job);
    return code;
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_submit(int argc, char **argv)
{
    (void)argc, (void)argv;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
}

#endif
