/*
 * cmd_kv.c - `tessera kv ...`: the cluster's hash tables from the shell
 * (docs/kv.md "On a cluster", docs/cli.md).
 *
 * Like `tessera lock`, a short-lived client of the scheduler: it learns the
 * table's shape (DESCRIBE: partitions, sizes, placement), routes each key to
 * its partition with the store's rule (the high 32 bits of XXH3(key) scaled
 * by the partition count, engine/kv) and sends partition requests, which the
 * scheduler runs on the partition's replicas (scheduler/sched_kv.c). Bulk
 * commands work partition by partition: `load` groups the CSV's pairs by
 * partition and sends batches of up to LOAD_BATCH pairs (one upsert batch
 * and one group commit each on every replica); `scan` pages through each
 * partition; `count` sums the partitions.
 *
 * Keys and values are the argument bytes, or hex with --hex (also for the
 * CSV of load, and what get/scan print). `get` prints the value alone and a
 * newline; `scan` prints key,value lines (RFC 4180 quoting).
 *
 * Text to bytes (hex, sizes) and the CSV reader live in cmd_kv_csv.c.
 *
 * Exit codes (DESIGN.md): 2 bad usage or input (oversized key or value, bad
 * hex, malformed CSV, bad table name); 3 missing table or key (get, update,
 * del); 4 exists (insert, create); 5 cluster unavailable (no scheduler,
 * token refused, no replica of the partition up).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/hash.h"
#include "core/mem.h"
#ifdef TSR_HAVE_SCHEDULER
#include "cmd_kv.h"
#include "kv_msg.h"
#include "proto.h"
#include "scheduler.h"
#include "tessera/kv.h"
#endif

#define LOAD_BATCH 4096u
#define SCAN_PAGE 1024u

void cmd_kv_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera kv create NAME [--partitions N] [--replicas R] [--max-key B]\n"
            "                              [--max-value B]\n"
            "       tessera kv put|insert|update NAME KEY VALUE\n"
            "       tessera kv get|del NAME KEY\n"
            "       tessera kv load NAME FILE.csv [--header]\n"
            "       tessera kv scan NAME [--limit N]\n"
            "       tessera kv count|drop|describe NAME\n"
            "       tessera kv list\n"
            "       tessera kv decommission WORKER-ID\n"
            "\n"
            "Hash tables on the cluster's workers (docs/kv.md). A table is split into\n"
            "partitions (default 8) placed on the workers by consistent hashing, each kept\n"
            "in its worker's write-ahead log; with 2+ replicas (the default on 2+\n"
            "workers) a write is acknowledged once durable on every replica.\n"
            "put writes, insert fails if the key exists (exit 4), update fails if it does\n"
            "not (exit 3). get prints the value alone. load reads key,value CSV rows;\n"
            "scan prints them. decommission moves every replica off a worker (its id as\n"
            "'kv describe' names it) to the others; it then takes no new ones.\n"
            "\n"
            "options:\n"
            "  --partitions N          create: partitions, 1..%u (default %u)\n"
            "  --replicas R            create: copies of each partition (default 2 on 2+\n"
            "                          workers, else 1)\n"
            "  --max-key B, --max-value B  create: size limits in bytes (default %u, %u)\n"
            "  --hex                   keys and values (arguments, CSV, output) are hex\n"
            "  --header                load: the CSV's first row is a header\n"
            "  --limit N               scan: print at most N pairs\n"
            "  --scheduler HOST:PORT   the cluster's scheduler (default: the running 'cluster\n"
            "                          up' cluster of --dir, else 127.0.0.1:7700)\n"
            "  --dir DIR               the 'cluster up' directory to look in\n"
            "  --token-file F          the cluster token\n"
            "  --help                  show this help\n"
            "\n"
            "exit codes: 2 bad input, 3 no such table or key, 4 key or table exists,\n"
            "            5 cluster unavailable\n",
            1024u, 8u, 64u, 256u);
}

#ifdef TSR_HAVE_SCHEDULER

static int report(const tsr_error_t *e)
{
    cli_error("%s", e->message[0] ? e->message : tsr_status_str(e->status));
    if (e->hint[0])
        fprintf(stderr, "hint: %s\n", e->hint);
    /* a malformed reply or request is the cluster's fault, not the user's */
    return e->status == TSR_ERR_BAD_INPUT ? TSR_EXIT_FAILURE : tsr_status_exit_code(e->status);
}

void cli_kv_print_field(FILE *out, const uint8_t *p, size_t n, bool hex, bool csv)
{
    if (hex) {
        for (size_t i = 0; i < n; i++)
            fprintf(out, "%02x", p[i]);
        return;
    }
    bool quote = false;
    for (size_t i = 0; csv && i < n; i++)
        quote |= p[i] == ',' || p[i] == '"' || p[i] == '\n' || p[i] == '\r';
    if (!quote) {
        fwrite(p, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            fputc('"', out);
        fputc(p[i], out);
    }
    fputc('"', out);
}

static void read_desc(tsr_rbuf_t *r, kv_desc_t *d, FILE *placement)
{
    snprintf(d->name, sizeof(d->name), "%s", tsr_rbuf_str(r));
    d->gen = tsr_rbuf_u64(r);
    d->nparts = tsr_rbuf_u32(r);
    d->nrep = tsr_rbuf_u32(r);
    d->max_key = tsr_rbuf_u32(r);
    d->max_value = tsr_rbuf_u32(r);
    for (uint32_t p = 0; p < d->nparts && !r->bad; p++) {
        uint32_t n = tsr_rbuf_u32(r);
        if (placement)
            fprintf(placement, "partition %u:", p);
        for (uint32_t i = 0; i < n && !r->bad; i++) {
            const char *id = tsr_rbuf_str(r);
            uint8_t st = tsr_rbuf_u8(r);
            if (placement)
                fprintf(placement, " %s%s", id,
                        st == TSR_KV_REP_UP     ? ""
                        : st == TSR_KV_REP_DOWN ? " (down)"
                                                : " (stale)");
        }
        if (placement)
            fputc('\n', placement);
    }
}

/* One TSR_MSG_KV call; prints the error and returns its exit code. */
static int call(tsr_client_t *c, tsr_wbuf_t *b, void **reply, size_t *rlen)
{
    tsr_error_t e;
    tsr_error_clear(&e);
    if (b->failed) {
        cli_error("out of memory");
        return TSR_EXIT_FAILURE;
    }
    if (tsr_client_call(c, TSR_MSG_KV, b->data, b->len, reply, rlen, &e) != TSR_OK)
        return report(&e);
    return TSR_EXIT_OK;
}

/* A request of one op and one string (a table or worker name). */
static int call_named(tsr_client_t *c, uint8_t op, const char *name, void **reply, size_t *rlen)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, op);
    tsr_wbuf_str(&b, name);
    int code = call(c, &b, reply, rlen);
    tsr_wbuf_free(&b);
    return code;
}

static int describe(tsr_client_t *c, const char *name, kv_desc_t *d, FILE *placement)
{
    void *rep = NULL;
    size_t rlen = 0;
    int code = call_named(c, TSR_KV_OP_DESCRIBE, name, &rep, &rlen);
    if (code == TSR_EXIT_OK) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, rep, rlen);
        read_desc(&r, d, placement);
        if (!tsr_rbuf_done(&r) || d->nparts == 0) {
            cli_error("malformed table description from the scheduler");
            code = TSR_EXIT_FAILURE;
        }
    }
    tsr_mem_free(NULL, rep);
    return code;
}

/* Starts a partition request in b: op PART, table, partition, pop. */
static void part_req(tsr_wbuf_t *b, const char *name, uint32_t part, uint8_t pop)
{
    tsr_wbuf_init(b, NULL);
    tsr_wbuf_u8(b, TSR_KV_OP_PART);
    tsr_wbuf_str(b, name);
    tsr_wbuf_u32(b, part);
    tsr_wbuf_u8(b, pop);
}

static int do_load(tsr_client_t *c, const kv_args_t *a, const kv_desc_t *d)
{
    kv_pairvec_t v = {0};
    int code = cli_kv_read_csv(a, d, &v);
    uint64_t stored = 0;
    for (uint32_t p = 0; p < d->nparts && code == TSR_EXIT_OK; p++) {
        size_t i = 0;
        while (code == TSR_EXIT_OK) {
            /* the next batch of this partition's pairs, in file order (a
             * key's later row wins, as in the batch) */
            tsr_wbuf_t pairs;
            tsr_wbuf_init(&pairs, NULL);
            uint32_t n = 0;
            for (; i < v.n && n < LOAD_BATCH && pairs.len < (8u << 20); i++)
                if (v.parts[i] == p) {
                    tsr_wbuf_blob(&pairs, v.keys[i].p, v.keys[i].n);
                    tsr_wbuf_blob(&pairs, v.vals[i].p, v.vals[i].n);
                    n++;
                }
            if (n == 0) {
                tsr_wbuf_free(&pairs);
                break;
            }
            tsr_wbuf_t b;
            part_req(&b, a->name, p, TSR_KV_POP_LOAD);
            tsr_wbuf_u32(&b, n);
            tsr_wbuf_bytes(&b, pairs.data, pairs.len);
            b.failed |= pairs.failed;
            tsr_wbuf_free(&pairs);
            void *rep = NULL;
            size_t rlen = 0;
            code = call(c, &b, &rep, &rlen);
            tsr_wbuf_free(&b);
            if (code == TSR_EXIT_OK) {
                tsr_rbuf_t r;
                tsr_rbuf_init(&r, rep, rlen);
                stored += tsr_rbuf_u64(&r);
            }
            tsr_mem_free(NULL, rep);
        }
    }
    if (code == TSR_EXIT_OK)
        fprintf(stderr, "loaded %zu row(s) into '%s' (%llu stored)\n", v.n, a->name,
                (unsigned long long)stored);
    cli_kv_pairvec_free(&v);
    return code;
}

/* ---- scan, count ------------------------------------------------------------------------ */

static int do_scan(tsr_client_t *c, const kv_args_t *a, const kv_desc_t *d, bool count_only)
{
    uint64_t total = 0, printed = 0;
    int code = TSR_EXIT_OK;
    /* a page holds at most ~8 MiB of slots, whatever the table's sizes */
    uint64_t per = (uint64_t)d->max_key + d->max_value + 8;
    uint32_t page = (uint32_t)((8u << 20) / per);
    page = page < 1 ? 1 : page > SCAN_PAGE ? SCAN_PAGE : page;
    for (uint32_t p = 0; p < d->nparts && code == TSR_EXIT_OK; p++) {
        if (count_only) {
            tsr_wbuf_t b;
            part_req(&b, a->name, p, TSR_KV_POP_COUNT);
            void *rep = NULL;
            size_t rlen = 0;
            code = call(c, &b, &rep, &rlen);
            tsr_wbuf_free(&b);
            if (code == TSR_EXIT_OK) {
                tsr_rbuf_t r;
                tsr_rbuf_init(&r, rep, rlen);
                total += tsr_rbuf_u64(&r);
            }
            tsr_mem_free(NULL, rep);
            continue;
        }
        uint64_t cursor = 0;
        do {
            if (a->have_limit && printed >= a->limit)
                break;
            tsr_wbuf_t b;
            part_req(&b, a->name, p, TSR_KV_POP_SCAN);
            tsr_wbuf_u64(&b, cursor);
            tsr_wbuf_u32(&b, page);
            void *rep = NULL;
            size_t rlen = 0;
            code = call(c, &b, &rep, &rlen);
            tsr_wbuf_free(&b);
            if (code != TSR_EXIT_OK)
                break;
            tsr_rbuf_t r;
            tsr_rbuf_init(&r, rep, rlen);
            cursor = tsr_rbuf_u64(&r);
            uint32_t n = tsr_rbuf_u32(&r);
            for (uint32_t i = 0; i < n && !r.bad; i++) {
                size_t kl = 0, vl = 0;
                const uint8_t *k = tsr_rbuf_blob(&r, &kl);
                const uint8_t *v = tsr_rbuf_blob(&r, &vl);
                if (r.bad || (a->have_limit && printed >= a->limit))
                    continue;
                cli_kv_print_field(stdout, k, kl, a->hex, true);
                fputc(',', stdout);
                cli_kv_print_field(stdout, v, vl, a->hex, true);
                fputc('\n', stdout);
                printed++;
            }
            if (r.bad) {
                cli_error("malformed scan page from the cluster");
                code = TSR_EXIT_FAILURE;
            }
            tsr_mem_free(NULL, rep);
        } while (cursor != 0 && code == TSR_EXIT_OK);
    }
    if (code == TSR_EXIT_OK && count_only)
        printf("%llu\n", (unsigned long long)total);
    return code;
}

/* ---- single keys ------------------------------------------------------------------------- */

static int do_key(tsr_client_t *c, const kv_args_t *a, const kv_desc_t *d, uint8_t pop)
{
    kv_bytes_t k = {0}, v = {0};
    int code = TSR_EXIT_USAGE;
    bool has_val = pop == TSR_KV_POP_PUT || pop == TSR_KV_POP_INSERT || pop == TSR_KV_POP_UPDATE;
    if (!cli_kv_decode("key", a->key, strlen(a->key), a->hex, &k) ||
        (has_val && !cli_kv_decode("value", a->value, strlen(a->value), a->hex, &v)) ||
        !cli_kv_check_size("key", k.n, d->max_key) ||
        (has_val && !cli_kv_check_size("value", v.n, d->max_value)))
        goto cleanup;
    tsr_wbuf_t b;
    part_req(&b, a->name, cli_kv_part_of(k.p, k.n, d->nparts), pop);
    tsr_wbuf_blob(&b, k.p, k.n);
    if (has_val)
        tsr_wbuf_blob(&b, v.p, v.n);
    void *rep = NULL;
    size_t rlen = 0;
    tsr_error_t e;
    tsr_error_clear(&e);
    code = TSR_EXIT_OK;
    if (b.failed) {
        cli_error("out of memory");
        code = TSR_EXIT_FAILURE;
    } else if (tsr_client_call(c, TSR_MSG_KV, b.data, b.len, &rep, &rlen, &e) != TSR_OK) {
        /* the store names its partition's table; say it in the user's terms */
        if (e.status == TSR_ERR_NOT_FOUND && strncmp(e.message, "no kv table", 11) != 0) {
            cli_error("key '%.200s' not found in kv table '%s'", a->key, a->name);
            code = TSR_EXIT_NOT_FOUND;
        } else if (e.status == TSR_ERR_EXISTS) {
            cli_error("key '%.200s' already exists in kv table '%s'", a->key, a->name);
            fprintf(stderr, "hint: 'tessera kv put' overwrites; 'kv update' changes a present "
                            "key\n");
            code = TSR_EXIT_REFUSED;
        } else {
            code = report(&e);
        }
    }
    tsr_wbuf_free(&b);
    if (code == TSR_EXIT_OK && pop == TSR_KV_POP_GET) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, rep, rlen);
        size_t vl = 0;
        const uint8_t *val = tsr_rbuf_blob(&r, &vl);
        if (!tsr_rbuf_done(&r)) {
            cli_error("malformed reply from the cluster");
            code = TSR_EXIT_FAILURE;
        } else {
            cli_kv_print_field(stdout, val, vl, a->hex, false);
            fputc('\n', stdout);
        }
    }
    tsr_mem_free(NULL, rep);
cleanup:
    tsr_mem_free(NULL, k.p);
    tsr_mem_free(NULL, v.p);
    return code;
}

static int do_create(tsr_client_t *c, const kv_args_t *a)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_CREATE);
    tsr_wbuf_str(&b, a->name);
    tsr_wbuf_u32(&b, (uint32_t)a->partitions);
    tsr_wbuf_u32(&b, (uint32_t)a->replicas);
    tsr_wbuf_u32(&b, (uint32_t)a->max_key);
    tsr_wbuf_u32(&b, (uint32_t)a->max_value);
    void *rep = NULL;
    size_t rlen = 0;
    int code = call(c, &b, &rep, &rlen);
    tsr_wbuf_free(&b);
    if (code == TSR_EXIT_OK) {
        kv_desc_t d;
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, rep, rlen);
        read_desc(&r, &d, NULL);
        fprintf(stderr, "created kv table '%s': %u partition(s), %u replica(s)\n", a->name,
                d.nparts, d.nrep);
    }
    tsr_mem_free(NULL, rep);
    return code;
}

static int do_list(tsr_client_t *c)
{
    tsr_wbuf_t b;
    tsr_wbuf_init(&b, NULL);
    tsr_wbuf_u8(&b, TSR_KV_OP_LIST);
    tsr_wbuf_str(&b, "");
    void *rep = NULL;
    size_t rlen = 0;
    int code = call(c, &b, &rep, &rlen);
    tsr_wbuf_free(&b);
    if (code == TSR_EXIT_OK) {
        tsr_rbuf_t r;
        tsr_rbuf_init(&r, rep, rlen);
        uint32_t n = tsr_rbuf_u32(&r);
        printf("name\tpartitions\treplicas\tmax_key\tmax_value\n");
        for (uint32_t i = 0; i < n && !r.bad; i++) {
            kv_desc_t d;
            read_desc(&r, &d, NULL);
            if (!r.bad)
                printf("%s\t%u\t%u\t%u\t%u\n", d.name, d.nparts, d.nrep, d.max_key, d.max_value);
        }
    }
    tsr_mem_free(NULL, rep);
    return code;
}

static int parse(int argc, char **argv, kv_args_t *a)
{
    memset(a, 0, sizeof(*a));
    const char *pos[4] = {0};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int m;
        unsigned long long *num = NULL;
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            cmd_kv_usage(stdout);
            return -1;
        } else if (strcmp(opt, "--hex") == 0) {
            a->hex = true;
            continue;
        } else if (strcmp(opt, "--header") == 0) {
            a->header = true;
            continue;
        } else if ((m = cli_opt_value(argc, argv, &i, "--partitions", &val)) != 0) {
            num = &a->partitions;
        } else if ((m = cli_opt_value(argc, argv, &i, "--replicas", &val)) != 0) {
            num = &a->replicas;
        } else if ((m = cli_opt_value(argc, argv, &i, "--max-key", &val)) != 0) {
            num = &a->max_key;
        } else if ((m = cli_opt_value(argc, argv, &i, "--max-value", &val)) != 0) {
            num = &a->max_value;
        } else if ((m = cli_opt_value(argc, argv, &i, "--limit", &val)) != 0) {
            num = &a->limit;
            a->have_limit = true;
        } else if ((m = cli_cluster_opt(argc, argv, &i, &a->scheduler, &a->dir, &a->token_file)) !=
                   0) {
            /* stored; a missing value is m < 0, below */
        } else if (opt[0] == '-' && opt[1] != '\0' && npos < 2) {
            return cli_unknown_option("kv", opt);
        } else {
            /* after the NAME, arguments are data: a key may start with '-' */
            if (npos == 4) {
                cli_error("unexpected argument '%s'", opt);
                return TSR_EXIT_USAGE;
            }
            pos[npos++] = opt;
            continue;
        }
        if (m < 0)
            return TSR_EXIT_USAGE;
        if (num) {
            if (!cli_parse_count(opt, val, num))
                return TSR_EXIT_USAGE;
            if (num != &a->limit && *num == 0) {
                cli_error("option '%s' must be at least 1", opt);
                return TSR_EXIT_USAGE;
            }
        }
    }
    a->op = pos[0];
    a->name = pos[1];
    a->key = pos[2];
    a->value = pos[3];
    if (!a->op) {
        cli_error("missing the kv command");
        fprintf(stderr, "hint: see 'tessera help kv'\n");
        return TSR_EXIT_USAGE;
    }
    static const struct {
        const char *op;
        int args; /* positionals after the command */
    } ops[] = {{"create", 1}, {"put", 3},      {"insert", 3},      {"update", 3}, {"get", 2},
               {"del", 2},    {"load", 2},     {"scan", 1},        {"count", 1},  {"drop", 1},
               {"list", 0},   {"describe", 1}, {"decommission", 1}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].op, a->op) == 0) {
            if (npos - 1 != ops[i].args) {
                cli_error("kv %s takes %d argument(s), found %d", a->op, ops[i].args, npos - 1);
                fprintf(stderr, "hint: see 'tessera help kv'\n");
                return TSR_EXIT_USAGE;
            }
            if (strcmp(a->op, "load") == 0) { /* NAME FILE */
                a->value = a->key;
                a->key = NULL;
            }
            if (a->partitions > TSR_KV_MAX_PARTITIONS || a->replicas > TSR_KV_MAX_REPLICAS ||
                a->max_key > TSR_KV_MAX_KEY_LIMIT || a->max_value > TSR_KV_MAX_VALUE_LIMIT) {
                cli_error("out of range: --partitions 1..%u, --replicas 1..%u, --max-key 1..%u, "
                          "--max-value 1..%u",
                          TSR_KV_MAX_PARTITIONS, TSR_KV_MAX_REPLICAS, TSR_KV_MAX_KEY_LIMIT,
                          TSR_KV_MAX_VALUE_LIMIT);
                return TSR_EXIT_USAGE;
            }
            return TSR_EXIT_OK;
        }
    cli_error("unknown kv command '%s'", a->op);
    fprintf(stderr, "hint: see 'tessera help kv'\n");
    return TSR_EXIT_USAGE;
}

int cmd_kv(int argc, char **argv)
{
    kv_args_t a;
    int code = parse(argc, argv, &a);
    if (code != TSR_EXIT_OK)
        return code < 0 ? TSR_EXIT_OK : code;
    cli_cluster_t cl;
    if ((code = cli_cluster_resolve(a.scheduler, a.dir, a.token_file, &cl)) != TSR_EXIT_OK)
        return code;
    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_client_t *c = NULL;
    if (tsr_client_connect(cl.host, cl.port, cl.token, 5000, &c, &err) != TSR_OK) {
        code = report(&err);
        tsr_client_destroy(c);
        return code;
    }
    kv_desc_t d;
    const char *op = a.op;
    if (strcmp(op, "create") == 0) {
        code = do_create(c, &a);
    } else if (strcmp(op, "list") == 0) {
        code = do_list(c);
    } else if (strcmp(op, "drop") == 0) {
        void *rep = NULL;
        size_t rlen = 0;
        code = call_named(c, TSR_KV_OP_DROP, a.name, &rep, &rlen);
        tsr_mem_free(NULL, rep);
    } else if (strcmp(op, "decommission") == 0) {
        /* the name is a worker id (kv_msg.h DECOMMISSION) */
        void *rep = NULL;
        size_t rlen = 0;
        code = call_named(c, TSR_KV_OP_DECOMMISSION, a.name, &rep, &rlen);
        if (code == TSR_EXIT_OK) {
            tsr_rbuf_t r;
            tsr_rbuf_init(&r, rep, rlen);
            uint32_t held = tsr_rbuf_u32(&r);
            if (tsr_rbuf_done(&r))
                printf("worker %s decommissioned: %u replica(s) move to other workers "
                       "('tessera kv describe' shows them)\n",
                       a.name, held);
            else {
                cli_error("malformed decommission reply from the scheduler");
                code = TSR_EXIT_FAILURE;
            }
        }
        tsr_mem_free(NULL, rep);
    } else if (strcmp(op, "describe") == 0) {
        code = describe(c, a.name, &d, NULL);
        if (code == TSR_EXIT_OK) {
            printf("table %s: %u partition(s), %u replica(s), max key %u, max value %u\n", d.name,
                   d.nparts, d.nrep, d.max_key, d.max_value);
            code = describe(c, a.name, &d, stdout);
        }
    } else if ((code = describe(c, a.name, &d, NULL)) == TSR_EXIT_OK) {
        if (strcmp(op, "load") == 0)
            code = do_load(c, &a, &d);
        else if (strcmp(op, "scan") == 0)
            code = do_scan(c, &a, &d, false);
        else if (strcmp(op, "count") == 0)
            code = do_scan(c, &a, &d, true);
        else
            code = do_key(c, &a, &d,
                          strcmp(op, "put") == 0      ? TSR_KV_POP_PUT
                          : strcmp(op, "insert") == 0 ? TSR_KV_POP_INSERT
                          : strcmp(op, "update") == 0 ? TSR_KV_POP_UPDATE
                          : strcmp(op, "get") == 0    ? TSR_KV_POP_GET
                                                      : TSR_KV_POP_DEL);
    }
    tsr_client_destroy(c);
    if (fflush(stdout) != 0) {
        cli_error("cannot write to standard output");
        return TSR_EXIT_FAILURE;
    }
    return code;
}

#else /* !TSR_HAVE_SCHEDULER */

int cmd_kv(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("this build has no cluster support (built without UCX)");
    return TSR_EXIT_UNAVAILABLE;
}

#endif
