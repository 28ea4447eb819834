/*
 * cmd_sql.c - `tessera sql`: load CSV files as tables and run one query on
 * the embedded engine, or on a cluster with --scheduler or --dir
 * (cluster_client.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#define MAX_TABLES 64

void cmd_sql_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera sql [options] [\"QUERY\"]\n"
            "\n"
            "Runs one SQL SELECT on CSV files with the embedded engine. The query comes\n"
            "from the argument, from -f FILE, or from standard input.\n"
            "\n"
            "options:\n"
            "  --table NAME=PATH.csv   load a CSV file (header row) as table NAME; repeatable.\n"
            "                          --table PATH.csv names the table after the file\n"
            "  --schema NAME=SPEC      column types for table NAME, e.g. 'id:int64,price:double'\n"
            "                          (types: int64, double, varchar, bool); others inferred\n"
            "  --delimiter C           field delimiter of the CSV files (default ,)\n"
            "  --format FMT            table (default), csv or json\n"
            "  --threads N             executor threads (default: one per core)\n"
            "  --device DEV            where filters, aggregations and joins run: cpu\n"
            "                          (default), opencl, cuda, opencl1 (by index) or auto\n"
            "                          (CUDA GPU, else OpenCL GPU, else cpu). On a cluster:\n"
            "                          auto (default) prefers GPU workers, cpu any worker,\n"
            "                          gpu/cuda/opencl[N] only such workers (none ready: exit 5)\n"
            "  -f FILE                 read the query from FILE\n"
            "  --scheduler HOST:PORT   run on a cluster (docs/cluster.md) instead of embedded;\n"
            "                          on a terminal a progress bar shows on stderr\n"
            "  --dir DIR               run on the cluster 'tessera cluster up --dir DIR' started\n"
            "                          (its address and token)\n"
            "  --token-file F          the cluster token (default: the cluster dir's, else\n"
            "                          $TESSERA_TOKEN_FILE, else ~/.config/tessera/token)\n"
            "  --help                  show this help\n"
            "\n"
            "example:\n"
            "  tessera sql --table sales=sales.csv \\\n"
            "      \"SELECT region, SUM(quantity) FROM sales GROUP BY region ORDER BY 2 DESC\"\n");
}

typedef struct sql_table_arg {
    char *name;         /* owned */
    const char *path;   /* into argv */
    const char *schema; /* into argv, NULL when none */
} sql_table_arg_t;

/* Reads a whole stream into a NUL-terminated heap string; *len_out gets its
 * length (a NUL byte inside shows as strlen < *len_out). */
static char *read_stream(FILE *in, size_t *len_out)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            char *nbuf = realloc(buf, cap * 2);
            if (!nbuf) {
                free(buf);
                return NULL;
            }
            buf = nbuf;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, in);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(in)) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* "NAME=PATH" or "PATH" (name = file stem). */
static int parse_table_arg(const char *arg, sql_table_arg_t *out)
{
    const char *eq = strchr(arg, '=');
    if (eq) {
        out->name = strndup(arg, (size_t)(eq - arg));
        out->path = eq + 1;
    } else {
        const char *base = strrchr(arg, '/');
        base = base ? base + 1 : arg;
        size_t n = strcspn(base, ".");
        out->name = strndup(base, n);
        out->path = arg;
    }
    out->schema = NULL;
    if (!out->name || !out->name[0] || !out->path[0]) {
        cli_error("--table needs NAME=PATH.csv, found '%s'", arg);
        return -1;
    }
    return 0;
}

int cmd_sql(int argc, char **argv)
{
    sql_table_arg_t tables[MAX_TABLES];
    size_t ntables = 0;
    const char *schemas[MAX_TABLES];
    size_t nschemas = 0;
    const char *query_arg = NULL, *query_file = NULL, *delim = NULL, *device = NULL;
    /* cluster mode (cluster_client.c) */
    const char *scheduler = NULL, *cluster_dir = NULL, *token_file = NULL;
    cli_format_t format = CLI_FORMAT_TABLE;
    unsigned long long threads = 0;
    char *sql = NULL;
    tsr_context_t *ctx = NULL;
    tsr_result_t *res = NULL;
    int exit_code = TSR_EXIT_USAGE;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_sql_usage(stdout);
            exit_code = TSR_EXIT_OK;
            goto cleanup;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--table", &val)) != 0) {
            if (m < 0)
                goto cleanup;
            if (ntables == MAX_TABLES) {
                cli_error("too many --table options (at most %d)", MAX_TABLES);
                goto cleanup;
            }
            if (parse_table_arg(val, &tables[ntables]) != 0) {
                free(tables[ntables].name);
                goto cleanup;
            }
            ntables++;
        } else if ((m = cli_opt_value(argc, argv, &i, "--schema", &val)) != 0) {
            if (m < 0)
                goto cleanup;
            if (nschemas == MAX_TABLES || !strchr(val, '=')) {
                cli_error("--schema needs NAME=col:type,..., found '%s'", val);
                goto cleanup;
            }
            schemas[nschemas++] = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--format", &val)) != 0) {
            if (m < 0 || !cli_parse_format(val, &format))
                goto cleanup;
        } else if ((m = cli_cluster_opt(argc, argv, &i, &scheduler, &cluster_dir, &token_file)) !=
                   0) {
            if (m < 0)
                goto cleanup;
        } else if ((m = cli_opt_value(argc, argv, &i, "--threads", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--threads", val, &threads))
                goto cleanup;
            if (threads > 1024) {
                cli_error("--threads must be at most 1024, found %llu", threads);
                goto cleanup;
            }
        } else if ((m = cli_opt_value(argc, argv, &i, "--device", &val)) != 0) {
            if (m < 0)
                goto cleanup;
            device = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "--delimiter", &val)) != 0) {
            if (m < 0)
                goto cleanup;
            if (strcmp(val, "\\t") == 0 || strcmp(val, "tab") == 0)
                val = "\t";
            if (strlen(val) != 1 || val[0] == '"' || val[0] == '\n' || val[0] == '\r') {
                cli_error("--delimiter needs one character other than a quote or newline");
                goto cleanup;
            }
            delim = val;
        } else if ((m = cli_opt_value(argc, argv, &i, "-f", &val)) != 0) {
            if (m < 0)
                goto cleanup;
            query_file = val;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            exit_code = cli_unknown_option("sql", arg);
            goto cleanup;
        } else if (query_arg) {
            cli_error("more than one query given");
            fprintf(stderr, "hint: quote the query: tessera sql \"SELECT ...\"\n");
            goto cleanup;
        } else {
            query_arg = arg;
        }
    }
    if (query_arg && query_file) {
        cli_error("give the query either as an argument or with -f, not both");
        goto cleanup;
    }
    for (size_t s = 0; s < nschemas; s++) {
        const char *eq = strchr(schemas[s], '=');
        size_t n = (size_t)(eq - schemas[s]);
        size_t t = 0;
        while (t < ntables && !(strlen(tables[t].name) == n &&
                                strncasecmp(tables[t].name, schemas[s], n) == 0))
            t++;
        if (t == ntables) {
            cli_error("--schema names table '%.*s', which no --table loads", (int)n, schemas[s]);
            goto cleanup;
        }
        tables[t].schema = eq + 1;
    }

    size_t sql_len = 0;
    if (query_file) {
        FILE *f = fopen(query_file, "r");
        if (!f) {
            cli_error("cannot open query file '%s'", query_file);
            exit_code = TSR_EXIT_NOT_FOUND;
            goto cleanup;
        }
        sql = read_stream(f, &sql_len);
        fclose(f);
    } else if (query_arg) {
        sql = strdup(query_arg);
        sql_len = sql ? strlen(sql) : 0;
    } else {
        if (isatty(STDIN_FILENO)) {
            cli_error("no query given");
            fprintf(stderr, "hint: tessera sql --table t=FILE.csv \"SELECT ...\" (see --help)\n");
            goto cleanup;
        }
        sql = read_stream(stdin, &sql_len);
    }
    if (!sql) {
        cli_error("cannot read the query");
        exit_code = TSR_EXIT_FAILURE;
        goto cleanup;
    }
    if (strlen(sql) != sql_len) { /* the engine would silently stop at the NUL */
        cli_error("the query contains a NUL byte (at byte %zu)", strlen(sql) + 1);
        goto cleanup;
    }

    if (scheduler || cluster_dir) {
#ifdef TSR_HAVE_SCHEDULER /* tessera-cli where scheduler/ is built (not cmd_sql.c's unit test) */
        const char *names[MAX_TABLES], *paths[MAX_TABLES], *tschemas[MAX_TABLES];
        for (size_t t = 0; t < ntables; t++) {
            names[t] = tables[t].name;
            paths[t] = tables[t].path;
            tschemas[t] = tables[t].schema;
        }
        cli_cluster_t cl;
        exit_code = cli_cluster_resolve(scheduler, cluster_dir, token_file, &cl);
        /* every task of the job gets the constraint (docs/cluster.md "Scheduling") */
        snprintf(cl.device, sizeof(cl.device), "%s", device ? device : "auto");
        if (device && strlen(device) >= sizeof(cl.device)) {
            cli_error("--device: unknown device '%s'", device);
            exit_code = TSR_EXIT_USAGE;
        }
        if (exit_code == TSR_EXIT_OK) {
            const char *stmts[1] = {sql};
            exit_code = cli_cluster_sql(&cl, ntables, names, paths, tschemas,
                                        delim ? delim[0] : ',', 1, stmts, format);
        }
#else
        (void)token_file;
        cli_error("this build has no cluster support (--scheduler)");
        exit_code = TSR_EXIT_UNAVAILABLE;
#endif
        goto cleanup;
    }

    tsr_context_params_t params = {.threads = (unsigned)threads};
    tsr_status_t rc = tsr_context_create(&params, &ctx);
    if (rc != TSR_OK) {
        cli_error("cannot start the engine: %s", tsr_status_str(rc));
        exit_code = TSR_EXIT_FAILURE;
        goto cleanup;
    }
    if (device && tsr_context_set_device(ctx, device) != TSR_OK) {
        exit_code = cli_report_context_error(ctx, NULL);
        goto cleanup;
    }
    for (size_t t = 0; t < ntables; t++) {
        tsr_csv_params_t cp = {.delimiter = delim ? delim[0] : ',', .schema = tables[t].schema};
        if (tsr_table_register_csv(ctx, tables[t].name, tables[t].path, &cp) != TSR_OK) {
            exit_code = cli_report_context_error(ctx, NULL);
            goto cleanup;
        }
    }
    if (tsr_query(ctx, sql, &res) != TSR_OK) {
        exit_code = cli_report_context_error(ctx, sql);
        goto cleanup;
    }
    if (cli_write_result(stdout, res, format) != 0) {
        cli_error("cannot write the result to standard output");
        exit_code = TSR_EXIT_FAILURE;
        goto cleanup;
    }
    exit_code = TSR_EXIT_OK;

cleanup:
    tsr_result_destroy(res);
    tsr_context_destroy(ctx);
    for (size_t t = 0; t < ntables; t++)
        free(tables[t].name);
    free(sql);
    return exit_code;
}
