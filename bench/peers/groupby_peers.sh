#!/usr/bin/env bash
# groupby_peers.sh - the same GROUP BY on Tessera, SQLite and DuckDB, in memory
# and from CSV end to end, with ratios measured in the same run.
#
#   bench/peers/groupby_peers.sh [ROWS] [KEYS] [--json] [--repeat R] [--keep FILE]
#
# ROWS (default 10000000) and KEYS (default 1000; the number of stores) size a
# sales CSV made by `tessera gen sales --seed 1` (or by groupby_peers.py when
# the CLI has no gen command). The query, identical for every engine:
#   SELECT store, SUM(quantity), COUNT(*), AVG(price) FROM sales GROUP BY store
# Every engine uses all cores (Tessera and DuckDB the same thread count, DuckDB
# via SET threads=N; SQLite has one thread by design); nothing is pinned.
# Measuring is done by groupby_peers.py (see its header for exactly what each
# figure times). DuckDB comes from PyPI into bench/.venv; when that install
# fails (no network), DuckDB is skipped with a note, not an error.
#
# Environment: TSR_BIN (default build/bin) holds tessera and tessera-bench;
# TMPDIR picks where the CSV goes (removed at exit unless --keep).
# Exit codes as the CLI's: 0 ok, 1 failure (including results that disagree),
# 2 bad usage, 3 binaries not built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${TSR_BIN:-$root/build/bin}"
venv="$root/bench/.venv"

# shellcheck source=lib.sh
. "$here/lib.sh"

rows="" keys="" json="" repeat=3 keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) print_usage "$0"; exit 0 ;;
    --json) json="--json" ;;
    --repeat) [ $# -ge 2 ] || die 2 "option '--repeat' needs a value"; repeat="$2"; shift ;;
    --keep) [ $# -ge 2 ] || die 2 "option '--keep' needs a file"; keep="$2"; shift ;;
    -*) die 2 "unknown option '$1'" "see '$0 --help'" ;;
    *)
        if [ -z "$rows" ]; then rows="$1"
        elif [ -z "$keys" ]; then keys="$1"
        else die 2 "unexpected argument '$1'" "see '$0 --help'"; fi ;;
    esac
    shift
done
rows="${rows:-10000000}"
keys="${keys:-1000}"
need_positive_ints "$rows" "$keys" "$repeat"

for b in tessera tessera-bench; do
    [ -x "$bin/$b" ] || die 3 "$bin/$b not found" "build it first: make build (or set TSR_BIN)"
done
need_tool python3 "apt-get install python3 python3-venv"

# ---- DuckDB in a virtual environment (created once, reused) ----
py=python3
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
    py="$venv/bin/python"
else
    echo "groupby_peers: installing DuckDB into $venv" >&2
    if python3 -m venv "$venv" >/dev/null 2>&1 &&
        "$venv/bin/pip" install -q duckdb >/dev/null 2>&1 &&
        "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
        py="$venv/bin/python"
    else
        echo "groupby_peers: could not install DuckDB (pip or network failed): DuckDB is skipped" >&2
        [ -x "$venv/bin/python" ] && py="$venv/bin/python"
    fi
fi

# ---- data ----
work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-peers-XXXXXX")"
trap 'rm -rf "$work"' EXIT
csv="$work/sales.csv"
echo "groupby_peers: generating $rows rows, $keys stores" >&2
if ! "$bin/tessera" gen sales --rows "$rows" --keys "$keys" --seed 1 >"$csv" 2>"$work/gen.err"; then
    echo "groupby_peers: 'tessera gen sales' failed ($(head -c 200 "$work/gen.err")); generating with Python" >&2
    "$py" "$here/groupby_peers.py" gen --rows "$rows" --keys "$keys" --seed 1 "$csv"
fi
[ -n "$keep" ] && cp "$csv" "$keep"

threads="$(nproc)"
"$py" "$here/groupby_peers.py" run --csv "$csv" --rows "$rows" --keys "$keys" \
    --threads "$threads" --repeat "$repeat" --bin "$bin" $json
