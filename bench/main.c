/*
 * main.c - tessera-bench entry point: picks the suite, prints help.
 *
 *   tessera-bench SUITE [options] [--json]
 *   tessera-bench help [SUITE] | --help
 *
 * Exit codes as the CLI's (DESIGN.md): 0 ok, 1 failure (a result that does not
 * verify is a failure), 2 bad usage, and for a failed engine call the code of
 * its status. Help goes to stdout (exit 0); usage errors to stderr (exit 2).
 */
#include <string.h>

#include "bench.h"

int tsr_bench_suite_lock(const tsr_bench_opts_t *opts); /* suite_lock.c */
int tsr_bench_suite_kv(const tsr_bench_opts_t *opts);   /* suite_kv.c */
int tsr_bench_suite_txn(const tsr_bench_opts_t *opts);  /* suite_txn.c */

int tsr_bench_suite_sched(const tsr_bench_opts_t *opts); /* suite_sched.c */

typedef struct suite {
    const char *name;
    const char *summary;
    const char *help; /* options and what it measures */
    bool takes_sql;   /* positional SQL text and --table */
    int (*run)(const tsr_bench_opts_t *opts);
} suite_t;

static const suite_t SUITES[] = {
    {"groupby", "in-memory GROUP BY vs a hand-written C loop on the same arrays",
     "usage: tessera-bench groupby [--rows N] [--keys K] [--threads T] [--repeat R]\n"
     "                             [--seed S] [--json]\n"
     "\n"
     "Generates N rows (k INT64 uniform in [0,K), v INT64 in [0,1000), price DOUBLE),\n"
     "registers them with tsr_table_register_columns (timed apart) and runs\n"
     "  SELECT k, SUM(v), COUNT(*), AVG(price) FROM t GROUP BY k\n"
     "R times; reports best and median as rows/s and GB/s (24 bytes per row read),\n"
     "and the same aggregation written by hand in C (per-thread hash tables on\n"
     "tsr_hash_u64, then merged) with floor_ratio = Tessera time / floor time.\n"
     "Every result is verified against the hand-written loop.\n"
     "\n"
     "  --rows N      rows (default 10M; k/M/G suffixes allowed)\n"
     "  --keys K      distinct keys (default 1000)\n"
     "  --threads T   threads for Tessera and the floor (default: one per core)\n"
     "  --repeat R    timed runs (default 5)\n"
     "  --seed S      data seed (default 1)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_groupby},
    {"csv", "CSV load (MB/s, rows/s) and CSV load + GROUP BY end to end",
     "usage: tessera-bench csv [--rows N] [--keys K] [--threads T] [--repeat R]\n"
     "                         [--seed S] [--json]\n"
     "\n"
     "Writes a sales CSV (id,store,region,product,quantity,price) to a temporary\n"
     "directory, times tsr_table_register_csv on it (MB/s, rows/s), then times a fresh\n"
     "context + load + SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales\n"
     "GROUP BY store end to end. Results are verified; the file is removed.\n"
     "\n"
     "  --rows N      rows (default 5M; k/M/G suffixes allowed)\n"
     "  --keys K      distinct stores (default 1000)\n"
     "  --threads T   threads (default: one per core)\n"
     "  --repeat R    timed runs (default 5)\n"
     "  --seed S      data seed (default 1)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_csv},
    {"query", "time any SELECT over CSV tables held in memory (used by bench/peers/)",
     "usage: tessera-bench query --table NAME=FILE.csv [--table ...] [--threads T]\n"
     "                           [--repeat R] [--json] \"SELECT ...\"\n"
     "\n"
     "Loads the tables once (timed apart), runs the query R times, reports the best\n"
     "and median time of the query alone.\n"
     "\n"
     "  --table NAME=FILE.csv  a table to load (up to 16)\n"
     "  --threads T   threads (default: one per core)\n"
     "  --repeat R    timed runs (default 5)\n"
     "  --json        one JSON object per figure and line\n",
     true, tsr_bench_suite_query},
    {"transport", "UCX transport: RPC, get/put and atomics latency and bandwidth per transport",
     "usage: tessera-bench transport [--rows N] [--json]\n"
     "\n"
     "For each UCX transport set (tcp; sm = shared memory) starts a server process on\n"
     "CPU 1 and measures from a client on CPU 0 over 127.0.0.1: RPC round trip (p50,\n"
     "p99) and rate, 1 MiB get/put bandwidth, compare-and-swap and fetch-and-add\n"
     "latency. TSR_BENCH_TLS=tcp|sm runs one set. bench/peers/transport_peers.sh\n"
     "runs ucx_perftest the same way and prints the ratios (docs/transport.md).\n"
     "\n"
     "  --rows N      latency iterations (default 20000)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_transport},
    {"kernels", "device kernels (cpu, OpenCL, CUDA) against each device's copy bandwidth",
     "usage: tessera-bench kernels [--device cpu|opencl|cuda|all] [--rows N] [--keys K]\n"
     "                             [--repeat R] [--threads T] [--seed S] [--json]\n"
     "\n"
     "For each device: its device-to-device copy bandwidth (bytes read + written), then\n"
     "hash aggregation (SUM(v), COUNT(*), SUM(price) GROUP BY k over K keys) in rows/s,\n"
     "GB/s of input and as a fraction of that bandwidth (CUDA: columns in device memory,\n"
     "and again from host memory), distinct-key aggregation, and hash-table inserts/s at\n"
     "load factor 1/2 (cpu, CUDA). A device that is absent is reported as skipped.\n"
     "Every result is verified. See docs/benchmarks.md and docs/devices.md.\n"
     "\n"
     "  --device D    cpu, opencl, cuda or all (default all)\n"
     "  --rows N      rows (default 10M; k/M/G suffixes allowed)\n"
     "  --keys K      distinct keys of the aggregation (default 1000, at most 16M)\n"
     "  --repeat R    timed runs (default 3; best reported)\n"
     "  --threads T   host threads (cpu copy and inserts, data generation)\n"
     "  --seed S      data seed (default 1)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_kernels},
    {"sched", "task graphs: per-task overhead of empty tasks, chains and fan-outs",
     "usage: tessera-bench sched [--rows N] [--threads T] [--repeat R]\n"
     "                           [--scheduler HOST:PORT] [--json]\n"
     "\n"
     "Builds and runs task graphs of N empty tasks (their function returns at once),\n"
     "embedded, in two shapes: a chain (each task reads its predecessor's output) and\n"
     "a fan-out (one root, N-1 tasks reading its output). Reports per task, best of R:\n"
     "build + run, run alone (submit + wait), building alone, CPU time, and tasks/s.\n"
     "Every run is verified (all tasks done). bench/peers/sched_peers.sh runs the same\n"
     "shapes on StarPU and Dask and prints the ratios (docs/graph.md).\n"
     "\n"
     "  --rows N      tasks per graph (default 100k; k/M suffixes allowed)\n"
     "  --threads T   executor threads (default: one per core)\n"
     "  --repeat R    timed runs per shape (default 5)\n"
     "  --scheduler HOST:PORT  run the shapes on that cluster instead (default\n"
     "                $TESSERA_SCHEDULER; token as every client reads it)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_sched},
    {"lock", "distributed locks: acquire+release latency and throughput, 1..32 clients",
     "usage: tessera-bench lock [--rows MS] [--threads T] [--json]\n"
     "\n"
     "Forks a lock home (CPU 1) and client processes over UCX on 127.0.0.1 (shared\n"
     "memory by default; TSR_BENCH_TLS=tcp for TCP). For 1, 2, 4, ..., 32 clients, each\n"
     "looping acquire+release for MS milliseconds: throughput and p50/p99 latency,\n"
     "exclusive and shared, uncontended (64 locks per client) and contended (one\n"
     "lock); and two raw UCX atomic round trips measured the same way, with the\n"
     "ratio of the uncontended latency to them. With TSR_BENCH_REDIS=host:port the\n"
     "same clients also run the Redis lock (SET NX PX + compare-and-delete script)\n"
     "and the exclusive figures carry the ratios: bench/peers/lock_peers.sh starts\n"
     "redis-server and does that (docs/locks.md).\n"
     "\n"
     "  --rows MS     milliseconds per point (default 400)\n"
     "  --threads T   most clients (default 32)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_lock},
    {"kv", "kv store: local get/insert/batch rates, one-sided remote get latency",
     "usage: tessera-bench kv [--rows N] [--threads T] [--json]\n"
     "\n"
     "Local, one thread, 8-byte keys and values: insert, get, batch insert and batch\n"
     "get rates over N keys; durable inserts (fdatasync group commit, 4 threads) in a\n"
     "temporary data dir. Remote: forks an owner process (CPU 1) with 100,000 keys of\n"
     "64-byte values over UCX (tcp and sm; TSR_BENCH_TLS=tcp|sm picks one) and measures\n"
     "one-sided tsr_kv_remote_get p50/p99 against a raw tsr_rma_get of the same bytes\n"
     "(the ratio). Client processes: 1..32 processes against one owner do remote gets\n"
     "and one-write transactions (puts) on the Redis peer's keys: ops/s, p50/p99, CPU\n"
     "per op (bench/peers/kv_peers.sh). Every value read is checked (docs/kv.md).\n"
     "Environment: TSR_BENCH_KV_ONLY=local,durable,clients,latency (phases),\n"
     "TSR_BENCH_KV_CLIENTS=1,4,16, TSR_BENCH_KV_MS (per point, default 300),\n"
     "TSR_BENCH_KV_CLIENT_SPIN (us), TSR_BENCH_TLS=tcp|sm.\n"
     "\n"
     "  --rows N      local keys (default 1M); remote samples N/50 (at least 2000)\n"
     "  --threads T   most client processes (caps TSR_BENCH_KV_CLIENTS)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_kv},
    {"txn", "transactions: SmallBank mix, txn/s, abort rate, p50/p99 latency, 1..T clients",
     "usage: tessera-bench txn [--keys K] [--threads T] [--rows MS] [--json]\n"
     "\n"
     "SmallBank-style mix (Balance, DepositChecking, TransactSavings, Amalgamate,\n"
     "WriteCheck, SendPayment) on the embedded store through tsr_txn_run, with\n"
     "1, 2, 4, ..., T client threads: committed txn/s (wall and per CPU second),\n"
     "abort rate (conflicts / commit attempts) and p50/p99 latency including\n"
     "retries; in memory, then durable (fdatasync group commit). A quarter of the\n"
     "customer draws go to 10 hot customers. Verified: the balances' total equals\n"
     "the start plus the committed deposits (docs/kv.md).\n"
     "Remote phases: an owner process (in memory: remote, or fdatasync: remote_durable)\n"
     "and client processes over UCX, one commit call per transaction\n"
     "(bench/peers/txn_peers.sh runs durable,remote_durable next to PostgreSQL).\n"
     "Cluster phase (cluster, only when listed): the mix through a running cluster\n"
     "(--scheduler HOST:PORT or $TESSERA_SCHEDULER; token: $TESSERA_TOKEN_FILE) on\n"
     "2-replica tables savings and checking it creates and drops.\n"
     "Environment: TSR_BENCH_TXN_ONLY=memory,durable,remote,remote_durable,cluster\n"
     "(default all but remote_durable and cluster), TSR_BENCH_TXN_CLIENTS=1,4,16,\n"
     "TSR_BENCH_TXN_CLIENT_MODE=threads (remote clients as threads),\n"
     "TSR_BENCH_TXN_CLIENT_SPIN (us a client polls), TSR_BENCH_TLS=tcp|sm.\n"
     "\n"
     "  --keys K      customers (default 1000)\n"
     "  --threads T   most clients (default 8)\n"
     "  --rows MS     milliseconds per point (default 500)\n"
     "  --json        one JSON object per figure and line\n",
     false, tsr_bench_suite_txn},
};
#define NSUITES (sizeof(SUITES) / sizeof(SUITES[0]))

static void print_usage(FILE *out)
{
    fprintf(out, "usage: tessera-bench SUITE [options] [--json]\n"
                 "       tessera-bench help [SUITE]\n"
                 "\n"
                 "Suites:\n");
    for (size_t i = 0; i < NSUITES; i++)
        fprintf(out, "  %-9s %s\n", SUITES[i].name, SUITES[i].summary);
    fprintf(out, "\n"
                 "Each figure is printed as a table row, or with --json as one line:\n"
                 "  {\"suite\":...,\"name\":...,\"value\":...,\"unit\":...,\"device\":\"cpu\","
                 "\"params\":{...}}\n"
                 "plus \"peer\", \"peer_value\" and \"ratio\" (Tessera's speedup) where a peer "
                 "ran.\n"
                 "See 'tessera-bench SUITE --help' for a suite's options, and docs/benchmarks.md.\n");
}

static const suite_t *find_suite(const char *name)
{
    for (size_t i = 0; i < NSUITES; i++)
        if (strcmp(SUITES[i].name, name) == 0)
            return &SUITES[i];
    return NULL;
}

static int unknown_suite(const char *name)
{
    tsr_bench_error("unknown suite '%s'", name);
    fprintf(stderr, "  hint: the suites are");
    for (size_t i = 0; i < NSUITES; i++)
        fprintf(stderr, "%s %s", i ? "," : "", SUITES[i].name);
    fprintf(stderr, "; see 'tessera-bench --help'\n");
    return TSR_BENCH_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        tsr_bench_error("missing the suite to run");
        print_usage(stderr);
        return TSR_BENCH_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(cmd, "help") == 0) {
            const suite_t *s = find_suite(argv[2]);
            if (!s)
                return unknown_suite(argv[2]);
            fputs(s->help, stdout);
            return TSR_BENCH_EXIT_OK;
        }
        print_usage(stdout);
        return TSR_BENCH_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("tessera-bench %s\n", tsr_version());
        return TSR_BENCH_EXIT_OK;
    }
    if (cmd[0] == '-') {
        tsr_bench_error("unknown option '%s' (the suite comes first)", cmd);
        fprintf(stderr, "  hint: see 'tessera-bench --help'\n");
        return TSR_BENCH_EXIT_USAGE;
    }
    const suite_t *s = find_suite(cmd);
    if (!s)
        return unknown_suite(cmd);
    tsr_bench_opts_t opts;
    int rc = tsr_bench_parse_opts(s->name, argc, argv, 2, s->takes_sql, &opts);
    if (rc != 0)
        return rc;
    if (opts.help) {
        fputs(s->help, stdout);
        return TSR_BENCH_EXIT_OK;
    }
    return s->run(&opts);
}
