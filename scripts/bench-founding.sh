#!/usr/bin/env bash
# The founding benchmark scenario: 128 concurrent producers, each waiting for its ack
# (in-flight 1), 256-byte messages, 15 s, first with acks=1 then with acks=all, every
# run validated (the topic is read back and every acknowledged message must be there,
# intact). Prints one table.
#
# Usage: scripts/bench-founding.sh [--nodes 1] [--port 19092] [--duration 15s]
#            [--warmup 2s] [--concurrency 128] [--size 256] [--partitions 1]
#            [--bin-dir target/release] [--build] [--keep-data]
#
# --nodes 3 is not available yet: the metadata quorum exists (scripts/cluster.sh), partition
# replication does not. When it does, this script will start three nodes and run with -r 3.
#
# The binaries must be built first (`cargo build --release -p chronik-server
# -p chronik-bench`), or pass --build to have this script do it.
set -euo pipefail

nodes=1
port=19092
duration=15s
warmup=2s
concurrency=128
size=256
partitions=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$root/target/release"
build=0
keep_data=0

die() { echo "bench-founding: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="${2:?}"; shift 2 ;;
    --port) port="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --warmup) warmup="${2:?}"; shift 2 ;;
    --concurrency) concurrency="${2:?}"; shift 2 ;;
    --size) size="${2:?}"; shift 2 ;;
    --partitions) partitions="${2:?}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?}"; shift 2 ;;
    --build) build=1; shift ;;
    --keep-data) keep_data=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$nodes" in
  1) ;;
  3) die "--nodes 3 is not available yet: partition replication is not built. Run with --nodes 1." ;;
  *) die "--nodes must be 1 (3 will come with partition replication)" ;;
esac

command -v jq >/dev/null || die "jq is needed to print the table (apt-get install jq)"

# shellcheck source=lib/bench-common.sh
source "$root/scripts/lib/bench-common.sh"
find_binaries "$root" "$bin_dir" "$build"

work="$(mktemp -d "${TMPDIR:-/tmp}/chronik-founding.XXXXXX")"
server_pid=""
cleanup() {
  stop_broker
  if [[ $keep_data -eq 1 ]]; then
    echo "bench-founding: data and logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "bench-founding: starting 1 node on 127.0.0.1:$port (data in $work)" >&2
start_broker "$port" "$work/broker.log" --data-dir "$work/data"

status=0
runs=()
for acks in 1 all; do
  name="acks-$acks"
  echo "bench-founding: run $name" >&2
  if ! "$bench" -b "127.0.0.1:$port" -t "founding-$name" --create-topic -p "$partitions" -r 1 \
      -m produce -c "$concurrency" --in-flight 1 -s "$size" -d "$duration" -w "$warmup" \
      --acks "$acks" --validate --json-output "$work/$name.json" --csv-output "$work/$name.csv" \
      >"$work/$name.txt"; then
    status=1
  fi
  cat "$work/$name.txt" >&2
  runs+=("$name")
done

echo
printf '%-9s %10s %8s %10s %8s %9s %9s %9s %10s %9s %8s %8s %s\n' \
  run acked errors msg/s MB/s p50_us p99_us p99.9_us max_us stalls missing corrupt verdict
for name in "${runs[@]}"; do
  f="$work/$name.json"
  if [[ ! -s "$f" ]]; then
    printf '%-9s %s\n' "$name" "no report (see output above)"
    continue
  fi
  jq -r --arg n "$name" '[
      $n, .messages, .errors, (.msgs_per_sec|floor), ((.mb_per_sec*100|floor)/100),
      .latency.p50_us, .latency.p99_us, .latency.p999_us, .latency.max_us,
      ([.intervals[] | select((.warmup|not) and .msgs == 0)] | length),
      (.validation.missing // "-"), (.validation.corrupt // "-"),
      (if (.failures|length) == 0 then "PASSED" else "FAILED: " + (.failures|join("; ")) end)
    ] | @tsv' "$f" |
    awk -F'\t' '{ printf "%-9s %10s %8s %10s %8s %9s %9s %9s %10s %9s %8s %8s %s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13 }'
done
echo "(1 node, $concurrency producers x in-flight 1, $size B, $duration after $warmup warm-up; figures count acknowledged messages that were read back)"
exit $status
