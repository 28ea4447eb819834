# lib.sh - helpers shared by the bench/peers/*.sh scripts; sourced, never run:
#
#   here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
#   # shellcheck source=lib.sh
#   . "$here/lib.sh"
#
# What is here is what the scripts did alike, word for word: the error exit
# (message format and exit codes as the CLI's: 1 failure, 2 bad usage, 3 a
# tool or binary missing), the --help text taken from the script's header
# comment, argument checks, the kv/txn scripts' option parsing, bounded
# stops of a process by its PID, a free loopback port, waiting for a Redis
# server, and for the cluster benchmarks (cluster_groupby.sh,
# cluster_join.sh) their argument parsing and cluster set-up.
# Functions set globals (named in each comment) because the scripts read them
# after; nothing here runs at source time beyond defining functions.
# Needs bash (arrays, [[ ]], /dev/tcp); callers run under set -euo pipefail.
# SC2034 is off file-wide: the globals set here are read by the callers.
# shellcheck shell=bash disable=SC2034

# die CODE MESSAGE [HINT]: the CLI's error format on stderr, then exit CODE.
die() {
    echo "tessera: error: $2" >&2
    [ -z "${3:-}" ] || echo "  hint: $3" >&2
    exit "$1"
}

# print_usage FILE: the header comment of FILE (line 2 up to the first line
# that is not a comment), without the leading '# '.
print_usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$1" | sed 's/^# \{0,1\}//'
}

# need_positive_ints VALUE...: exit 2 unless every VALUE is an integer >= 1.
need_positive_ints() {
    local v
    for v in "$@"; do
        [[ "$v" =~ ^[1-9][0-9]*$ ]] || die 2 "bad number '$v' (expected a positive integer)"
    done
}

# need_client_counts LIST: exit 2 unless each of the comma-separated counts
# (already checked to be digits) is 1..64.
need_client_counts() {
    local c
    for c in ${1//,/ }; do
        [ "$c" -ge 1 ] && [ "$c" -le 64 ] || die 2 "client counts must be 1..64, not $c"
    done
}

# parse_peer_args NAME:MIN ARGS...: the options kv_peers.sh and txn_peers.sh
# share: --json (sets json=1), --clients LIST (sets clients, checked 1..64),
# --NAME N (sets the global NAME; N an integer > MIN), -h/--help (prints the
# calling script's header and exits 0) and a positional duration (sets ms).
# Anything else exits 2.
parse_peer_args() {
    local xname="${1%%:*}" xmin="${1##*:}"
    shift
    while [ $# -gt 0 ]; do
        case "$1" in
        --json) json=1 ;;
        --clients)
            shift
            [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+(,[0-9]+)*$ ]] ||
                die 2 "--clients needs a list like 1,4,16"
            clients="$1"
            ;;
        "--$xname")
            shift
            [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt "$xmin" ] ||
                die 2 "--$xname needs a number > $xmin"
            printf -v "$xname" '%s' "$1"
            ;;
        -h | --help)
            print_usage "$0"
            exit 0
            ;;
        *)
            [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -gt 0 ] || die 2 "unknown argument '$1'" "see $0 --help"
            ms="$1"
            ;;
        esac
        shift
    done
    need_client_counts "$clients"
}

# need_bench_tls: exit 2 unless TSR_BENCH_TLS is unset, empty, tcp or sm.
need_bench_tls() {
    case "${TSR_BENCH_TLS:-}" in
    "" | tcp | sm) ;;
    *) die 2 "TSR_BENCH_TLS must be tcp or sm" ;;
    esac
}

# need_tool NAME [HINT]: exit 3 ("NAME not found", HINT) unless NAME is on PATH.
need_tool() {
    command -v "$1" >/dev/null || die 3 "$1 not found" "${2:-}"
}

# stop_pid PID SIGNAL TENTHS: send SIGNAL to PID (a child of this shell), wait
# up to TENTHS tenths of a second for it to exit, then SIGKILL and reap it.
# An empty PID is a no-op.
stop_pid() {
    local pid="$1" sig="$2" tenths="$3"
    [ -n "$pid" ] || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# free_port: prints a loopback TCP port in 30000..49999 that nothing listens
# on (5 random tries), or nothing. Another process may still take it before
# the caller binds it: callers check that their server came up.
free_port() {
    local p
    for _ in 1 2 3 4 5; do
        p=$((30000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
}

# wait_for_redis PORT PID: waits up to 10 s (a loaded machine starts it
# slowly) until the redis-server PID on 127.0.0.1:PORT answers PING; exit 1
# if it does not (or PID exited first: port taken?).
wait_for_redis() {
    for _ in $(seq 1 100); do
        redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1 || die 1 "redis-server did not start"
}

# stop_cluster_dir DIR: stops what `tessera cluster up --dir DIR` started, by
# the PIDs it wrote in DIR/*.pid (only live tessera processes: a recycled PID
# is never signalled); SIGTERM, SIGKILL after 5 s.
stop_cluster_dir() {
    local pids=() f pid alive
    for f in "$1"/*.pid; do
        [ -e "$f" ] || continue
        pid="$(cat "$f" 2>/dev/null || true)"
        [[ "$pid" =~ ^[0-9]+$ ]] || continue
        grep -qa tessera "/proc/$pid/cmdline" 2>/dev/null && pids+=("$pid")
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do # 5 s
        alive=0
        for pid in "${pids[@]}"; do
            [ -e "/proc/$pid" ] && grep -qa tessera "/proc/$pid/cmdline" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && return 0
        sleep 0.05
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

# --- the cluster benchmarks (cluster_groupby.sh, cluster_join.sh) ---------

# cluster_bench_args ARG...: parses [ROWS] [KEYS] [--threads T] [--repeat R]
# [--pin] [--json] [--keep FILE] [-h|--help] and checks the numbers and
# tools. Sets rows keys json repeat keep threads pin, bin and t (tessera).
cluster_bench_args() {
    rows="" keys="" json="" repeat=3 keep="" threads=1 pin=""
    while [ $# -gt 0 ]; do
        case "$1" in
        -h | --help) print_usage "$0"; exit 0 ;;
        --json) json=1 ;;
        --pin) pin=1 ;;
        --repeat) [ $# -ge 2 ] || die 2 "option '--repeat' needs a value"; repeat="$2"; shift ;;
        --threads) [ $# -ge 2 ] || die 2 "option '--threads' needs a value"; threads="$2"; shift ;;
        --keep) [ $# -ge 2 ] || die 2 "option '--keep' needs a file"; keep="$2"; shift ;;
        -*) die 2 "unknown option '$1'" "see '$0 --help'" ;;
        *)
            if [ -z "$rows" ]; then rows="$1"
            elif [ -z "$keys" ]; then keys="$1"
            else die 2 "unexpected argument '$1'" "see '$0 --help'"; fi ;;
        esac
        shift
    done
    rows="${rows:-5000000}"
    keys="${keys:-1000}"
    need_positive_ints "$rows" "$keys" "$repeat" "$threads"
    bin="${TSR_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}"
    [ -x "$bin/tessera" ] || die 3 "$bin/tessera not found" "build it first: make build (or set TSR_BIN)"
    need_tool python3
    if [ -n "$pin" ]; then command -v taskset >/dev/null || die 3 "taskset not found (util-linux)"; fi
    t="$bin/tessera"
}

# cluster_bench_work PREFIX: makes the work dir (TMPDIR/tessera-PREFIX-*),
# arms the exit trap (stop the cluster, keep the CSV if --keep, remove the
# dir) and writes the sales CSV. Sets work cdir token csv.
cluster_bench_work() {
    export UCX_WARN_UNUSED_ENV_VARS=n
    export UCX_TLS="${UCX_TLS:-tcp,self}" UCX_NET_DEVICES="${UCX_NET_DEVICES:-lo}"
    work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-$1-XXXXXX")"
    cdir="$work/cluster"
    token="$work/token"
    trap cluster_bench_cleanup EXIT
    trap 'exit 1' INT TERM
    csv="$work/sales.csv"
    "$t" gen sales --rows "$rows" --keys "$keys" --seed 1 --out "$csv"
}

# The EXIT trap of cluster_bench_work.
cluster_bench_cleanup() {
    stop_cluster_dir "$cdir"
    if [ -n "$keep" ] && [ -f "$work/sales.csv" ]; then mv "$work/sales.csv" "$keep"; fi
    rm -rf "$work"
}

# cluster_bench_up: reads the load average, starts 2 workers with T threads
# each in cdir and, with --pin, pins worker N to core N-1. Sets load_before
# addr cluster_pids emb_pin (the embedded run's taskset prefix, an array)
# and pinning (its description).
cluster_bench_up() {
    local ncpu n
    load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
    addr="$("$t" cluster up --workers 2 --threads "$threads" --dir "$cdir" --token-file "$token")" ||
        die 1 "cluster up failed (logs in $cdir)"
    cluster_pids="$(cat "$cdir"/*.pid | tr '\n' ' ')"
    if [ -n "$pin" ]; then
        ncpu="$(nproc)"
        for n in 1 2; do
            taskset -a -cp "$(((n - 1) % ncpu))" "$(cat "$cdir/worker-$n.pid")" >/dev/null
        done
        emb_pin=(taskset -c "0-$((ncpu > 1 ? 1 : 0))")
        pinning="embedded on cores 0-1; worker 1 on core 0, worker 2 on core 1; scheduler free"
    else
        emb_pin=()
        pinning="nothing pinned"
    fi
}
