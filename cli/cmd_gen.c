/*
 * cmd_gen.c - `tessera gen`: seeded sample data as CSV, for the demo, the
 * benchmarks and users trying Tessera out.
 *
 * Data set "sales" (header id,store,region,product,quantity,price):
 *   id        INT64   1..rows
 *   store     INT64   uniform in [0, keys): the group-by key of the benchmarks
 *   region    VARCHAR one of 8 region names (some with a space or comma, so
 *                     CSV quoting is exercised)
 *   product   VARCHAR "product-NNNN", 500 products, skewed (a few sell most)
 *   quantity  INT64   -3..100 (negative: returns), NULL in ~1% of rows
 *   price     DOUBLE  0.50..499.99 with two decimals
 * The generator is splitmix64 seeded with --seed: the same seed, rows and keys
 * give byte-identical output on every machine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cmd_gen_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera gen DATASET [--rows N] [--keys K] [--seed S] [--out FILE]\n"
            "\n"
            "Writes a seeded sample data set as CSV (to standard output by default).\n"
            "\n"
            "datasets:\n"
            "  sales   id,store,region,product,quantity,price\n"
            "          store is an integer key in [0, K); quantity has ~1%% NULLs\n"
            "\n"
            "options:\n"
            "  --rows N    rows to write (default 1000000)\n"
            "  --keys K    distinct store keys (default 1000)\n"
            "  --seed S    random seed (default 1)\n"
            "  --out FILE  write to FILE instead of standard output\n");
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0), by multiply-shift (bias negligible for our n). */
static uint64_t rand_below(uint64_t *state, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)splitmix64(state) * n) >> 64);
}

/* Writes v in decimal at p, returns the end. */
static char *put_int(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static const char *const REGIONS[] = {
    "north", "south", "east", "west", "central", "north east", "south, west", "overseas",
};

static int gen_sales(FILE *out, uint64_t rows, uint64_t keys, uint64_t seed)
{
    uint64_t state = seed;
    enum { BUF = 1 << 20 };
    char *buf = malloc(BUF);
    if (!buf) {
        cli_error("out of memory");
        return TSR_EXIT_FAILURE;
    }
    char *p = buf;
    p += sprintf(p, "id,store,region,product,quantity,price\n");
    for (uint64_t r = 1; r <= rows; r++) {
        if (p - buf > BUF - 256) {
            if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf))
                goto err_write;
            p = buf;
        }
        p = put_int(p, (int64_t)r);
        *p++ = ',';
        p = put_int(p, (int64_t)rand_below(&state, keys));
        *p++ = ',';
        const char *region = REGIONS[rand_below(&state, 8)];
        if (strchr(region, ','))
            p += sprintf(p, "\"%s\"", region);
        else
            p += sprintf(p, "%s", region);
        /* skewed products: the square of a uniform variate favours low numbers */
        uint64_t u = rand_below(&state, 1000);
        p += sprintf(p, ",product-%04u,", (unsigned)(u * u / 2000));
        if (rand_below(&state, 100) != 0)
            p = put_int(p, (int64_t)rand_below(&state, 104) - 3);
        *p++ = ',';
        uint64_t cents = 50 + rand_below(&state, 49950);
        p = put_int(p, (int64_t)(cents / 100));
        p += sprintf(p, ".%02u\n", (unsigned)(cents % 100));
    }
    if (fwrite(buf, 1, (size_t)(p - buf), out) != (size_t)(p - buf) || fflush(out) != 0)
        goto err_write;
    free(buf);
    return TSR_EXIT_OK;

err_write:
    free(buf);
    cli_error("cannot write the data set");
    return TSR_EXIT_FAILURE;
}

int cmd_gen(int argc, char **argv)
{
    unsigned long long rows = 1000000, keys = 1000, seed = 1;
    const char *dataset = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        int m;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cmd_gen_usage(stdout);
            return TSR_EXIT_OK;
        }
        if ((m = cli_opt_value(argc, argv, &i, "--rows", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--rows", val, &rows))
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--keys", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--keys", val, &keys))
                return TSR_EXIT_USAGE;
            /* store is a BIGINT in [0, K): K - 1 must fit INT64 */
            if (keys == 0 || keys > (unsigned long long)INT64_MAX + 1) {
                cli_error("--keys must be between 1 and 9223372036854775808, found %llu", keys);
                return TSR_EXIT_USAGE;
            }
        } else if ((m = cli_opt_value(argc, argv, &i, "--seed", &val)) != 0) {
            if (m < 0 || !cli_parse_count("--seed", val, &seed))
                return TSR_EXIT_USAGE;
        } else if ((m = cli_opt_value(argc, argv, &i, "--out", &val)) != 0) {
            if (m < 0)
                return TSR_EXIT_USAGE;
            out_path = val;
        } else if (arg[0] == '-') {
            return cli_unknown_option("gen", arg);
        } else if (dataset) {
            cli_error("more than one data set given");
            return TSR_EXIT_USAGE;
        } else {
            dataset = arg;
        }
    }
    if (!dataset) {
        cli_error("no data set given");
        fprintf(stderr, "hint: tessera gen sales --rows 1000000\n");
        return TSR_EXIT_USAGE;
    }
    if (strcmp(dataset, "sales") != 0) {
        cli_error("unknown data set '%s'", dataset);
        fprintf(stderr, "hint: the data sets are: sales\n");
        return TSR_EXIT_NOT_FOUND;
    }
    FILE *out = stdout;
    if (out_path && !(out = fopen(out_path, "w"))) {
        cli_error("cannot create '%s'", out_path);
        return TSR_EXIT_FAILURE;
    }
    int rc = gen_sales(out, rows, keys, seed);
    if (out != stdout && fclose(out) != 0 && rc == TSR_EXIT_OK) {
        cli_error("cannot write '%s'", out_path);
        rc = TSR_EXIT_FAILURE;
    }
    return rc;
}
