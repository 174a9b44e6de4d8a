#!/usr/bin/env bash
# The founding benchmark scenario: 128 concurrent producers, each waiting for its ack
# (in-flight 1), 256-byte messages, 15 s, first with acks=1 then with acks=all, every
# run validated (the topic is read back and every acknowledged message must be there,
# intact). Prints one table, with the brokers' CPU time (user + system, all nodes) per
# acknowledged message.
#
# Usage: scripts/bench-founding.sh [--nodes 1|3] [--port 19092] [--duration 15s]
#            [--warmup 2s] [--concurrency 128] [--size 256] [--partitions 1]
#            [--bin-dir target/release] [--build] [--keep-data] [--memory-limit 2G]
#
# --nodes 3 starts three nodes on 127.0.0.1 (Kafka ports PORT..PORT+2, controller ports
# PORT+100..PORT+102, one metadata quorum) and runs with replication factor 3 and
# min.insync.replicas 2.
#
# --memory-limit runs the brokers in a memory cgroup of that size (root): their page cache is
# recycled as on a long-running broker instead of growing into memory the VM's host took back
# (see scripts/lib/bench-common.sh). Figures with and without it are not comparable.
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
memory_limit=""

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
    --memory-limit) memory_limit="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$nodes" in
  1|3) ;;
  *) die "--nodes must be 1 or 3" ;;
esac

command -v jq >/dev/null || die "jq is needed to print the table (apt-get install jq)"

# shellcheck source=lib/bench-common.sh
source "$root/scripts/lib/bench-common.sh"
find_binaries "$root" "$bin_dir" "$build"
[[ -z $memory_limit ]] || memory_budget "$memory_limit"

work="$(mktemp -d "${TMPDIR:-/tmp}/chronik-founding.XXXXXX")"
server_pid=""
pids=()
cleanup() {
  for pid in "${pids[@]}"; do server_pid=$pid; stop_broker; done
  release_memory_budget
  if [[ $keep_data -eq 1 ]]; then
    echo "bench-founding: data and logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "bench-founding: starting $nodes node(s) on 127.0.0.1:$port.. (data in $work)" >&2
bootstrap=""
if [[ $nodes -eq 1 ]]; then
  start_broker "$port" "$work/broker.log" --data-dir "$work/data"
  pids+=("$server_pid")
  bootstrap="127.0.0.1:$port"
else
  voters=""
  for i in 1 2 3; do voters+="${voters:+,}$i@127.0.0.1:$((port + 99 + i))"; done
  for i in 1 2 3; do
    start_broker "$((port + i - 1))" "$work/broker$i.log" --data-dir "$work/data$i" \
      --node-id "$i" --controller-quorum-voters "$voters" --min-insync-replicas 2
    pids+=("$server_pid")
    bootstrap+="${bootstrap:+,}127.0.0.1:$((port + i - 1))"
  done
  # Each node serves once the quorum has it registered.
  for i in 1 2 3; do
    for _ in $(seq 1 600); do grep -q "broker started" "$work/broker$i.log" && break; sleep 0.1; done
    grep -q "broker started" "$work/broker$i.log" || die "node $i did not start (see $work/broker$i.log)"
  done
fi

# User + system CPU of every broker process, in clock ticks.
cpu_ticks() { local t=0 pid; for pid in "${pids[@]}"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done; echo "$t"; }
ticks_per_sec=$(getconf CLK_TCK)

status=0
runs=()
for acks in 1 all; do
  name="acks-$acks"
  echo "bench-founding: run $name" >&2
  marks="$work/$name.cpu"
  : >"$marks"
  # Marks the brokers' CPU at the first progress line and when the read-back starts.
  if ! "$bench" -b "$bootstrap" -t "founding-$name" --create-topic -p "$partitions" -r "$nodes" \
      -m produce -c "$concurrency" --in-flight 1 -s "$size" -d "$duration" -w "$warmup" \
      --acks "$acks" --validate --json-output "$work/$name.json" --csv-output "$work/$name.csv" \
      >"$work/$name.txt" 2> >(
        started=0
        while IFS= read -r line; do
          if [[ $started -eq 0 && $line == \[* ]]; then started=1; printf '%s ' "$(cpu_ticks)" >>"$marks"; fi
          if [[ $line == validating:* ]]; then cpu_ticks >>"$marks"; fi
          printf '%s\n' "$line" >&2
        done
      ); then
    status=1
  fi
  for _ in $(seq 1 50); do [[ $(wc -w <"$marks") -ge 2 ]] && break; sleep 0.1; done
  cat "$work/$name.txt" >&2
  runs+=("$name")
done

echo
printf '%-9s %10s %8s %10s %8s %9s %9s %9s %10s %9s %8s %8s %8s %s\n' \
  run acked errors msg/s MB/s p50_us p99_us p99.9_us max_us stalls missing corrupt cpu_us verdict
for name in "${runs[@]}"; do
  f="$work/$name.json"
  if [[ ! -s "$f" ]]; then
    printf '%-9s %s\n' "$name" "no report (see output above)"
    continue
  fi
  cpu_us="-"
  if read -r start end <"$work/$name.cpu" 2>/dev/null && [[ -n "${end:-}" ]]; then
    cpu_us=$(jq -r --argjson s "$start" --argjson e "$end" --argjson hz "$ticks_per_sec" \
      '(.acknowledged - (.intervals[0].msgs // 0)) as $n
       | if $n > 0 then (($e - $s) / $hz * 1e6 / $n * 100 | floor) / 100 else "-" end' "$f")
  fi
  jq -r --arg n "$name" --arg cpu "$cpu_us" '[
      $n, .messages, .errors, (.msgs_per_sec|floor), ((.mb_per_sec*100|floor)/100),
      .latency.p50_us, .latency.p99_us, .latency.p999_us, .latency.max_us,
      ([.intervals[] | select((.warmup|not) and .msgs == 0)] | length),
      (.validation.missing // "-"), (.validation.corrupt // "-"), $cpu,
      (if (.failures|length) == 0 then "PASSED" else "FAILED: " + (.failures|join("; ")) end)
    ] | @tsv' "$f" |
    awk -F'\t' '{ printf "%-9s %10s %8s %10s %8s %9s %9s %9s %10s %9s %8s %8s %8s %s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14 }'
done
echo "($nodes node(s), replication factor $nodes, $concurrency producers x in-flight 1, $size B, $duration after $warmup warm-up${memory_limit:+, brokers in $memory_limit of memory}; figures count acknowledged messages that were read back)"
exit $status
