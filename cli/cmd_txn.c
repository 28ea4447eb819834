/*
 * cmd_txn.c - `tessera txn NAME -e 'get a; put a 5; del b'`: one
 * transaction on a cluster kv table from the shell (docs/cli.md "tessera
 * txn", docs/kv.md "On a cluster", Transactions).
 *
 * The script is parsed whole before anything is sent (a bad script changes
 * nothing: exit 2). It then runs as one transaction through the C API
 * (tsr_txn_db_cluster, tsr_txn_run): gets read through the scheduler and
 * see the script's own earlier writes, puts and dels are buffered, and the
 * commit is one call that the scheduler validates and applies
 * (scheduler/sched_txn.c). The results of the gets are printed only once the
 * transaction committed: one line per get, in script order, the value alone
 * (hex with --hex), or `(missing)` for an absent key.
 *
 * Script: statements separated by ';' or newlines; words by blanks; a word
 * may be double-quoted ("a b", with \" and \\ escapes) to hold blanks, ';'
 * or nothing at all. Statements: get KEY | put KEY VALUE | del KEY |
 * sleep MS (pauses inside the transaction, between its reads and its
 * commit: for demonstrations and tests of conflicts).
 *
 * Retries: none by default (a conflict exits 4 at once, the caller decides);
 * --retries N runs the script again up to N times after a conflict, with the
 * randomized backoff of tsr_txn_run.
 *
 * Exit codes: 0 committed; 2 bad usage or script (also an oversized key or
 * value, bad hex); 3 no such table; 4 conflict (after the retries); 5 the
 * cluster is unreachable (or a partition has no replica up); 1 otherwise.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "core/mem.h"
#ifdef TSR_HAVE_SCHEDULER
#include "cmd_kv.h"
#include "scheduler.h"
#include "tessera/txn.h"
#endif

#define MISSING "(missing)"

void cmd_txn_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera txn NAME -e SCRIPT [--retries N] [--hex]\n"
            "\n"
            "Runs SCRIPT as one serializable transaction on the cluster's kv table NAME\n"
            "(docs/kv.md). SCRIPT is statements separated by ';' or newlines:\n"
            "  get KEY          read KEY (sees this script's earlier writes)\n"
            "  put KEY VALUE    write KEY\n"
            "  del KEY          delete KEY (a missing key is not an error)\n"
            "  sleep MS         pause MS milliseconds (0..60000) inside the transaction\n"
            "Words are separated by blanks; a double-quoted word (\"a b\", with \\\" and \\\\)\n"
            "holds blanks, ';' or nothing. Writes are applied only if the whole script\n"
            "commits. Once it committed, each get prints one line, in script order: the\n"
            "value alone, or " MISSING " when the key is absent.\n"
            "\n"
            "options:\n"
            "  -e, --execute SCRIPT    the statements (required)\n"
            "  --retries N             after a conflict, run the script again up to N times\n"
            "                          (randomized backoff; default 0: exit 4 at once)\n"
            "  --hex                   keys and values in SCRIPT and the output are hex\n"
            "  --scheduler HOST:PORT   the cluster's scheduler (default: the running 'cluster\n"
            "                          up' cluster of --dir, else 127.0.0.1:7700)\n"
            "  --dir DIR               the 'cluster up' directory to look in\n"
            "  --token-file F          the cluster token\n"
            "  --help                  show this help\n"
            "\n"
            "exit codes: 0 committed, 2 bad usage or script, 3 no such table, 4 conflict\n"
            "            (nothing was written), 5 cluster unavailable\n");
}

#ifdef TSR_HAVE_SCHEDULER

enum { ST_GET, ST_PUT, ST_DEL, ST_SLEEP };

typedef struct stmt {
    int op;
    kv_bytes_t key, val;
    unsigned long long ms; /* sleep */
} stmt_t;

typedef struct script {
    stmt_t *s;
    size_t n, cap;
} script_t;

static void script_free(script_t *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        tsr_mem_free(NULL, sc->s[i].key.p);
        tsr_mem_free(NULL, sc->s[i].val.p);
    }
    tsr_mem_free(NULL, sc->s);
}

/* The next word of the statement at *pp (which stops at ';', '\n' or the
 * end): unquoted into w (a string of *wn bytes). 0: none left in the
 * statement, 1: a word, -1: an error (printed). */
static int next_word(const char **pp, char *w, size_t *wn, size_t stmt_no)
{
    const char *p = *pp;
    while (*p == ' ' || *p == '\t' || *p == '\r')
        p++;
    *wn = 0;
    if (*p == '\0' || *p == ';' || *p == '\n') {
        *pp = p;
        return 0;
    }
    if (*p == '"') {
        for (p++;; p++) {
            if (*p == '\0') {
                cli_error("script statement %zu: unterminated quote", stmt_no);
                return -1;
            }
            if (*p == '"')
                break;
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            w[(*wn)++] = *p;
        }
        p++;
        if (*p != '\0' && *p != ';' && *p != '\n' && *p != ' ' && *p != '\t' && *p != '\r') {
            cli_error("script statement %zu: a closing quote must end its word", stmt_no);
            return -1;
        }
    } else {
        while (*p != '\0' && *p != ';' && *p != '\n' && *p != ' ' && *p != '\t' && *p != '\r')
            w[(*wn)++] = *p++;
    }
    w[*wn] = '\0';
    *pp = p;
    return 1;
}

/* Parses text into sc; an exit code (the error printed). */
static int parse_script(const char *text, bool hex, script_t *sc)
{
    size_t tl = strlen(text);
    char *words[4] = {0};
    size_t wl[4];
    int code = TSR_EXIT_USAGE;
    for (int i = 0; i < 4; i++)
        if (!(words[i] = tsr_mem_alloc(NULL, tl + 1))) {
            cli_error("out of memory");
            code = TSR_EXIT_FAILURE;
            goto done;
        }
    const char *p = text;
    for (size_t no = 1;; no++) {
        int nw = 0, got;
        while ((got = next_word(&p, words[nw < 3 ? nw : 3], &wl[nw < 3 ? nw : 3], no)) == 1)
            nw = nw < 3 ? nw + 1 : 4;
        if (got < 0)
            goto done;
        if (nw > 0) {
            const char *cmd = words[0];
            int op = strcmp(cmd, "get") == 0     ? ST_GET
                     : strcmp(cmd, "put") == 0   ? ST_PUT
                     : strcmp(cmd, "del") == 0   ? ST_DEL
                     : strcmp(cmd, "sleep") == 0 ? ST_SLEEP
                                                 : -1;
            int want = op == ST_PUT ? 3 : 2;
            if (op < 0) {
                cli_error("script statement %zu: unknown statement '%.40s' (get, put, del or "
                          "sleep)",
                          no, cmd);
                goto done;
            }
            if (nw != want) {
                cli_error("script statement %zu: %s takes %d argument(s), found %d", no, cmd,
                          want - 1, nw > 3 ? 3 : nw - 1);
                goto done;
            }
            if (tsr_mem_grow(NULL, (void **)&sc->s, &sc->cap, sc->n + 1, sizeof(*sc->s)) != 0) {
                cli_error("out of memory");
                code = TSR_EXIT_FAILURE;
                goto done;
            }
            stmt_t *st = &sc->s[sc->n];
            memset(st, 0, sizeof(*st));
            st->op = op;
            sc->n++;
            if (op == ST_SLEEP) {
                char *end = NULL;
                st->ms = strtoull(words[1], &end, 10);
                if (wl[1] == 0 || *end != '\0' || st->ms > 60000) {
                    cli_error("script statement %zu: sleep takes milliseconds, 0..60000", no);
                    goto done;
                }
            } else if (!cli_kv_decode("key", words[1], wl[1], hex, &st->key) ||
                       (op == ST_PUT && !cli_kv_decode("value", words[2], wl[2], hex, &st->val)))
                goto done;
        }
        if (*p == '\0')
            break;
        p++; /* ';' or '\n' */
    }
    if (sc->n == 0) {
        cli_error("the script has no statement");
        fprintf(stderr, "hint: e.g. -e 'get a; put a 5; del b'\n");
        goto done;
    }
    code = TSR_EXIT_OK;
done:
    for (int i = 0; i < 4; i++)
        tsr_mem_free(NULL, words[i]);
    return code;
}

/* One run of the script (tsr_txn_run calls it again after a conflict). */
typedef struct run {
    const char *table;
    const script_t *sc;
    kv_bytes_t *res; /* per statement: a get's value */
    bool *missing;   /* per statement: a get found nothing */
    uint8_t *buf;
    size_t cap;
    tsr_txn_err_t err; /* the body's own error (not the commit's) */
} run_t;

static tsr_status_t body(tsr_txn_t *x, void *arg)
{
    run_t *r = arg;
    memset(&r->err, 0, sizeof(r->err));
    for (size_t i = 0; i < r->sc->n; i++) {
        const stmt_t *st = &r->sc->s[i];
        tsr_status_t rc;
        if (st->op == ST_PUT) {
            rc =
                tsr_txn_put(x, r->table, st->key.p, st->key.n, st->val.p, st->val.n, NULL, &r->err);
        } else if (st->op == ST_DEL) {
            rc = tsr_txn_delete(x, r->table, st->key.p, st->key.n, NULL, &r->err);
        } else if (st->op == ST_SLEEP) {
            struct timespec ts = {(time_t)(st->ms / 1000), (long)(st->ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ; /* interrupted: sleep the rest */
            rc = TSR_OK;
        } else {
            size_t vlen = 0;
            r->missing[i] = false;
            for (;;) {
                memset(&r->err, 0, sizeof(r->err));
                rc = tsr_txn_get(x, r->table, st->key.p, st->key.n, r->buf, r->cap, &vlen, &r->err);
                if (rc != TSR_OK || vlen <= r->cap)
                    break;
                /* longer than the buffer: read again (the same value: the
                 * transaction repeats its reads) into one that fits */
                uint8_t *nb = tsr_mem_alloc(NULL, vlen);
                if (!nb)
                    return TSR_ERR_NOMEM;
                tsr_mem_free(NULL, r->buf);
                r->buf = nb;
                r->cap = vlen;
            }
            if (rc == TSR_ERR_NOT_FOUND && strncmp(r->err.message, "no kv table", 11) != 0) {
                r->missing[i] = true;
                memset(&r->err, 0, sizeof(r->err));
                rc = TSR_OK;
            } else if (rc == TSR_OK) {
                uint8_t *v = tsr_mem_alloc(NULL, vlen ? vlen : 1);
                if (!v)
                    return TSR_ERR_NOMEM;
                if (vlen)
                    memcpy(v, r->buf, vlen);
                tsr_mem_free(NULL, r->res[i].p);
                r->res[i] = (kv_bytes_t){v, vlen};
            }
        }
        if (rc != TSR_OK)
            return rc;
    }
    return TSR_OK;
}

typedef struct txn_args {
    const char *name, *script, *scheduler, *dir, *token_file;
    unsigned long long retries;
    bool hex;
} txn_args_t;

static int parse_args(int argc, char **argv, txn_args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = NULL;
        int m;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            cmd_txn_usage(stdout);
            return -1;
        } else if (strcmp(opt, "--hex") == 0) {
            a->hex = true;
            continue;
        } else if ((m = cli_opt_value(argc, argv, &i, "--execute", &a->script)) != 0 ||
                   (m = cli_opt_value(argc, argv, &i, "-e", &a->script)) != 0) {
            /* stored */
        } else if ((m = cli_opt_value(argc, argv, &i, "--retries", &val)) != 0) {
            if (m > 0 && !cli_parse_count(opt, val, &a->retries))
                return TSR_EXIT_USAGE;
            if (m > 0 && a->retries > 1000000) {
                cli_error("--retries is at most 1000000");
                return TSR_EXIT_USAGE;
            }
        } else if ((m = cli_cluster_opt(argc, argv, &i, &a->scheduler, &a->dir, &a->token_file)) !=
                   0) {
            /* stored */
        } else if (opt[0] == '-' && opt[1] != '\0') {
            return cli_unknown_option("txn", opt);
        } else {
            if (a->name) {
                cli_error("unexpected argument '%s'", opt);
                fprintf(stderr, "hint: the statements go in one -e argument\n");
                return TSR_EXIT_USAGE;
            }
            a->name = opt;
            continue;
        }
        if (m < 0)
            return TSR_EXIT_USAGE;
    }
    if (!a->name || !a->script) {
        cli_error(!a->name ? "missing the table NAME" : "missing the script (-e SCRIPT)");
        fprintf(stderr, "hint: tessera txn NAME -e 'get a; put a 5; del b'\n");
        return TSR_EXIT_USAGE;
    }
    return TSR_EXIT_OK;
}

static int exit_code(tsr_status_t rc)
{
    /* a malformed reply or request is the cluster's fault, not the user's */
    return rc == TSR_ERR_BAD_INPUT ? TSR_EXIT_FAILURE : tsr_status_exit_code(rc);
}

int cmd_txn(int argc, char **argv)
{
    txn_args_t a;
    int code = parse_args(argc, argv, &a);
    if (code != TSR_EXIT_OK)
        return code < 0 ? TSR_EXIT_OK : code;
    script_t sc = {0};
    run_t r = {.table = a.name, .sc = &sc};
    tsr_txn_db_t *db = NULL;
    if ((code = parse_script(a.script, a.hex, &sc)) != TSR_EXIT_OK)
        goto done;
    r.cap = 4096;
    r.buf = tsr_mem_alloc(NULL, r.cap);
    r.res = tsr_mem_calloc(NULL, sc.n, sizeof(*r.res));
    r.missing = tsr_mem_calloc(NULL, sc.n, sizeof(*r.missing));
    if (!r.buf || !r.res || !r.missing) {
        cli_error("out of memory");
        code = TSR_EXIT_FAILURE;
        goto done;
    }
    cli_cluster_t cl;
    if ((code = cli_cluster_resolve(a.scheduler, a.dir, a.token_file, &cl)) != TSR_EXIT_OK)
        goto done;
    char addr[320];
    snprintf(addr, sizeof(addr), "%s:%u", cl.host, (unsigned)cl.port);
    /* one script reads a few keys: dialling the workers for one-sided reads
     * would cost more than it saves (docs/kv.md, Transactions on a cluster) */
    tsr_txn_cluster_params_t cp = {
        .scheduler = addr, .token_file = cl.token, .timeout_ms = 5000, .scheduler_reads = true};
    tsr_txn_err_t xe = {0};
    tsr_status_t rc = tsr_txn_db_cluster(&cp, &db, &xe);
    if (rc == TSR_OK) {
        tsr_txn_run_opts_t ro = {.max_attempts = (unsigned)a.retries + 1};
        unsigned attempts = 0;
        memset(&xe, 0, sizeof(xe));
        rc = tsr_txn_run(db, body, &r, &ro, &attempts, &xe);
        if (rc != TSR_OK && r.err.status != TSR_OK)
            xe = r.err; /* the body's error says more than "the transaction returned" */
        if (rc == TSR_ERR_CONFLICT)
            snprintf(xe.message + strlen(xe.message), sizeof(xe.message) - strlen(xe.message),
                     " (%u attempt%s)", attempts, attempts == 1 ? "" : "s");
    }
    if (rc != TSR_OK) {
        cli_error("%s", xe.message[0] ? xe.message : tsr_status_str(rc));
        if (rc == TSR_ERR_CONFLICT)
            fprintf(stderr, "hint: nothing was written; run it again, or pass --retries N\n");
        code = exit_code(rc);
        goto done;
    }
    for (size_t i = 0; i < sc.n; i++) {
        if (sc.s[i].op != ST_GET)
            continue;
        if (r.missing[i])
            fputs(MISSING, stdout);
        else
            cli_kv_print_field(stdout, r.res[i].p, r.res[i].n, a.hex, false);
        fputc('\n', stdout);
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write to standard output");
        code = TSR_EXIT_FAILURE;
    }
done:
    tsr_txn_db_close(db);
    for (size_t i = 0; r.res && i < sc.n; i++)
        tsr_mem_free(NULL, r.res[i].p);
    tsr_mem_free(NULL, r.res);
    tsr_mem_free(NULL, r.missing);
    tsr_mem_free(NULL, r.buf);
    script_free(&sc);
    return code;
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_txn(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
}

#endif
