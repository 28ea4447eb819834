/*
 * bench.h - shared pieces of tessera-bench: options, timing, statistics,
 * deterministic data, and the figure reporter.
 *
 * tessera-bench runs one suite per invocation (`tessera-bench SUITE [options]`).
 * A suite measures something, prints each result as a *figure* and exits with
 * the CLI's exit codes (DESIGN.md): 0 ok, 1 runtime failure (including a
 * result that does not verify), 2 bad usage, and the engine's own code when a
 * Tessera call fails.
 *
 * Figures. A figure is (name, value, unit) plus, where a peer ran in the same
 * process, (peer, peer_value, ratio). ratio is always "how many times faster
 * Tessera is than the peer" (>1: Tessera wins), whatever the unit: for rates it
 * is value/peer_value, for times peer_value/value. With --json each figure is
 * one JSON object on its own line:
 *   {"suite":"groupby","name":"rows_per_s","value":1.2e9,"unit":"rows/s",
 *    "device":"cpu","peer":"duckdb","peer_value":8.0e8,"ratio":1.5,
 *    "params":{"rows":10000000,...}}
 * Without --json the same figures form an aligned table for people.
 *
 * Randomness. Data comes from splitmix64 seeded with --seed, so a given
 * (suite, options) pair always measures the same bytes.
 */
#ifndef TSR_BENCH_H
#define TSR_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>

#include <jansson.h>

#include "tessera/tessera.h"

/* Exit codes of DESIGN.md. */
enum {
    TSR_BENCH_EXIT_OK = 0,
    TSR_BENCH_EXIT_FAIL = 1,
    TSR_BENCH_EXIT_USAGE = 2,
};

/* ---- options ------------------------------------------------------------------ */

/* The options every suite understands; a suite ignores the ones it does not
 * use (its --help says which it reads). Zero means "not given". */
typedef struct tsr_bench_opts {
    uint64_t rows;     /* --rows N (k/M/G suffixes, powers of 1000) */
    uint64_t keys;     /* --keys K: distinct group keys */
    unsigned threads;  /* --threads T; 0 = one per core */
    unsigned repeat;   /* --repeat R: timed runs; best and median are reported */
    uint64_t seed;     /* --seed S */
    bool seed_given;   /* --seed was on the command line */
    bool json;         /* --json: JSON lines instead of a table */
    bool help;         /* --help / -h */
    const char *tables[16]; /* --table NAME=FILE.csv (suite `query`), in order */
    size_t ntables;
    const char *sql;   /* the positional SQL text (suite `query`) */
    const char *device; /* --device NAME (suite `kernels`): cpu, opencl, cuda, all */
    const char *scheduler; /* --scheduler HOST:PORT (suite `sched`): run on that cluster */
} tsr_bench_opts_t;

/* Parses argv[first..argc) (the arguments after the suite's name) into opts.
 * allow_sql: one positional argument is the SQL text (suite `query`). Returns 0,
 * or prints `tessera: error: ...` with a hint naming `tessera-bench SUITE
 * --help` to stderr and returns TSR_BENCH_EXIT_USAGE. */
int tsr_bench_parse_opts(const char *suite, int argc, char **argv, int first, bool allow_sql,
                         tsr_bench_opts_t *opts);

/* Prints `tessera: error: <fmt>` (and nothing else) to stderr. */
void tsr_bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a failed Tessera call with the context's error detail; returns the
 * exit code for status (tsr_status_exit_code). ctx may be NULL. */
int tsr_bench_engine_error(tsr_context_t *ctx, tsr_status_t status, const char *what);

/* ---- time and statistics ------------------------------------------------------ */

/* Monotonic wall clock in seconds. */
double tsr_bench_now(void);
/* CPU time (user + system) of the whole process, all threads, in seconds.
 * Unlike wall time it barely moves when other processes compete for the cores,
 * so the suites report it beside wall time on shared machines. */
double tsr_bench_cpu_now(void);

/* A cheap tick counter for timing single operations of well under a
 * microsecond: the TSC on x86-64 (about 8 ns a read here, constant rate),
 * the monotonic clock in nanoseconds elsewhere (about 27 ns). ucx_perftest
 * reads the TSC once per iteration the same way, so per-operation samples
 * taken with it compare like for like with its "typical" (median) latency.
 * Convert with the rate a tsr_bench_tickcal_t measures over the same loop. */
uint64_t tsr_bench_ticks(void);
typedef struct tsr_bench_tickcal {
    double t0;
    uint64_t k0;
} tsr_bench_tickcal_t;
void tsr_bench_tickcal_start(tsr_bench_tickcal_t *c);
/* Seconds per tick since tsr_bench_tickcal_start (calibrate over >= ~1 ms). */
double tsr_bench_tickcal_end(const tsr_bench_tickcal_t *c);

typedef struct tsr_bench_stats {
    double best;   /* smallest sample */
    double median; /* middle sample (mean of the two middle ones for even n) */
} tsr_bench_stats_t;

/* Statistics of n >= 1 samples; sorts samples in place. */
tsr_bench_stats_t tsr_bench_stats(double *samples, size_t n);

/* ---- deterministic data ----------------------------------------------------- */

/* splitmix64: a full-period 64-bit generator; the state is the counter. */
static inline uint64_t tsr_bench_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for n >= 1 (multiply-shift on the top 32 bits: no division,
 * bias below 2^-32 * n, irrelevant for benchmark data). n must be < 2^32. */
static inline uint64_t tsr_bench_rand_below(uint64_t *state, uint64_t n)
{
    return ((tsr_bench_rand(state) >> 32) * n) >> 32;
}

/* ---- figures ---------------------------------------------------------------- */

typedef struct tsr_bench_figure {
    const char *name;  /* machine name, e.g. "rows_per_s" */
    const char *label; /* for the people's table, e.g. "query throughput (best)" */
    double value;
    const char *unit;  /* "rows/s", "GB/s", "MB/s", "s", "x", "rows" */
    const char *peer;  /* NULL when no peer ran for this figure */
    double peer_value; /* the peer's value in the same unit */
    double ratio;      /* Tessera's speedup over the peer (>1: Tessera faster) */
} tsr_bench_figure_t;

typedef struct tsr_bench_report {
    const char *suite;  /* "groupby" */
    const char *device; /* "cpu" */
    bool json;          /* JSON lines instead of a table */
    FILE *out;          /* where figures go (stdout) */
    json_t *params;     /* owned: the run's parameters, attached to every JSON line */
    bool header_done;   /* table mode: column header printed */
    double loadavg;     /* 1-minute load average at init; < 0 when unknown */
} tsr_bench_report_t;

/* Returns 0, or -1 when out of memory. */
int tsr_bench_report_init(tsr_bench_report_t *r, const char *suite, bool json, FILE *out);
void tsr_bench_report_fini(tsr_bench_report_t *r);
/* Adds a parameter (attached to every JSON line; the table shows its own title). */
void tsr_bench_report_param_int(tsr_bench_report_t *r, const char *key, int64_t value);
void tsr_bench_report_param_str(tsr_bench_report_t *r, const char *key, const char *value);
/* Table mode: prints a title line (e.g. what ran) before the figures; no-op with --json. */
void tsr_bench_report_title(tsr_bench_report_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Table mode: a free-form note line under the figures (e.g. "verified"). */
void tsr_bench_report_note(tsr_bench_report_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints one figure. Returns 0, or -1 when out of memory / write failure. */
int tsr_bench_report_emit(tsr_bench_report_t *r, const tsr_bench_figure_t *f);
/* Prints one figure without a peer (name, label, value, unit); on failure
 * also prints the error. Returns 0 or -1. */
int tsr_bench_emit(tsr_bench_report_t *r, const char *name, const char *label, double value,
                   const char *unit);

/* Formats value with unit for people ("81.2 ms", "123.4 M rows/s") into buf. */
void tsr_bench_format_value(char *buf, size_t cap, double value, const char *unit);

/* A one-line progress note on stderr when it is a terminal (overwritten by the
 * next one); nothing otherwise, so redirected output stays clean. */
void tsr_bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Erases the progress line (no-op when stderr is not a terminal). */
void tsr_bench_progress_clear(void);

/* Runs over the shared-memory set ("sm": processes of one host) set
 * UCX_MAX_RNDV_LANES=0 unless the user did (docs/transport.md, "Loopback /
 * one host": UCX 1.13 otherwise puts same-host rendezvous lanes on the TCP
 * interface the connection manager needs, and every progress call then
 * makes an epoll_wait system call). Every process of the run must see the
 * same value (UCX 1.13's wireup asserts on a peer without it), so only runs
 * whose processes all start from this one call it. Returns whether it set
 * the variable; tsr_bench_sm_lanes_end(that) unsets it again. */
bool tsr_bench_sm_lanes_begin(const char *set);
void tsr_bench_sm_lanes_end(bool was_set);

/* Starts this tessera-bench again as a server for `suite` (env var env_name set
 * to env_value tells it to serve), reads the port it prints on stdout (any
 * other line, e.g. UCX's log, is skipped) into *port. Returns its pid, or -1
 * (nothing left running). The caller stops the pid. */
pid_t tsr_bench_spawn_server(const char *suite, const char *env_name, const char *env_value,
                             uint16_t *port);
/* Waits at most timeout_s for the server pid to exit (it was told to stop),
 * then stops it by its pid (SIGKILL) and reaps it. */
void tsr_bench_stop_server(pid_t pid, double timeout_s);

/* ---- suites ------------------------------------------------------------------- */

int tsr_bench_suite_groupby(const tsr_bench_opts_t *opts);
int tsr_bench_suite_csv(const tsr_bench_opts_t *opts);
int tsr_bench_suite_query(const tsr_bench_opts_t *opts);
int tsr_bench_suite_transport(const tsr_bench_opts_t *opts); /* suite_transport.c */
int tsr_bench_suite_kernels(const tsr_bench_opts_t *opts);   /* suite_kernels.c */

#endif /* TSR_BENCH_H */
