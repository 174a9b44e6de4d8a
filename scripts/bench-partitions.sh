#!/usr/bin/env bash
# Group commit against the partition count: the founding load (128 producer tasks sharing one
# librdkafka producer, one message in flight each, 256 B, acks=1, one node) on a topic of 1,
# 10, 100 and 1,000 partitions, with the default flush policy (group-commit: fsync through the
# journal before acks=1/all is answered) next to `--flush-policy os` (no fsync) as the baseline
# of the same run. A fresh broker per point; every run is validated (each acknowledged message
# read back). Prints msg/s, the default's share of the baseline, and the broker's CPU time per
# message (user+system of the broker process from the first progress line to the start of the
# read-back, divided by the messages acknowledged in that span).
#
# Usage: scripts/bench-partitions.sh [--partitions "1 10 100 1000"] [--duration 10s]
#            [--port 19092] [--bin-dir target/release] [--build] [--keep-data]
#            [--memory-limit 2G]
#
# --memory-limit runs the broker in a memory cgroup of that size (root), so its page cache is
# recycled as on a long-running broker (see scripts/lib/bench-common.sh).
#
# The binaries must be built first (`cargo build --release -p chronik-server -p chronik-bench`),
# or pass --build.
set -euo pipefail

partition_counts="1 10 100 1000"
duration=10s
port=19092
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$root/target/release"
build=0
keep_data=0
memory_limit=""

die() { echo "bench-partitions: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --partitions) partition_counts="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --port) port="${2:?}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?}"; shift 2 ;;
    --build) build=1; shift ;;
    --keep-data) keep_data=1; shift ;;
    --memory-limit) memory_limit="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

command -v jq >/dev/null || die "jq is needed to print the table (apt-get install jq)"
# shellcheck source=lib/bench-common.sh
source "$root/scripts/lib/bench-common.sh"
find_binaries "$root" "$bin_dir" "$build"
[[ -z $memory_limit ]] || memory_budget "$memory_limit"

work="$(mktemp -d "${TMPDIR:-/tmp}/chronik-partitions.XXXXXX")"
server_pid=""
cleanup() {
  stop_broker
  release_memory_budget
  if [[ $keep_data -eq 1 ]]; then echo "bench-partitions: data kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# User + system CPU of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)

# run_point POLICY PARTITIONS: one fresh broker, one validated run; writes $work/<name>.json
# and $work/<name>.cpu ("start_ticks end_ticks").
run_point() {
  local policy=$1 partitions=$2 name="$1-$2"
  local data="$work/$name/data"
  mkdir -p "$data"
  start_broker "$port" "$work/$name/broker.log" --data-dir "$data" --flush-policy "$policy"
  local pid=$server_pid marks="$work/$name.cpu"
  : >"$marks"
  # Marks the broker's CPU at the first progress line (the topic exists, producing runs) and
  # when the read-back starts.
  "$bench" -b "127.0.0.1:$port" -t "partitions-$partitions" --create-topic -p "$partitions" -r 1 \
      -m produce -c 128 --in-flight 1 -s 256 -d "$duration" --acks 1 \
      --validate --validate-timeout 300s --json-output "$work/$name.json" \
      >"$work/$name.txt" 2> >(
        started=0
        while IFS= read -r line; do
          if [[ $started -eq 0 && $line == \[* ]]; then started=1; printf '%s ' "$(cpu_ticks "$pid")" >>"$marks"; fi
          if [[ $line == validating:* ]]; then cpu_ticks "$pid" >>"$marks"; fi
          printf '%s\n' "$line" >>"$work/$name.err"
        done
      ) || echo "bench-partitions: run $name failed (see below)" >&2
  # The stderr reader finishes just after the bench: wait for its last mark.
  for _ in $(seq 1 50); do
    [[ $(wc -w <"$marks") -ge 2 ]] && break
    sleep 0.1
  done
  stop_broker
}

declare -a points=()
for partitions in $partition_counts; do
  for policy in group-commit os; do
    echo "bench-partitions: $partitions partitions, flush policy $policy" >&2
    run_point "$policy" "$partitions"
    points+=("$policy-$partitions")
  done
done

# One row per point: msg/s, verdict, broker CPU per message.
row() {
  local name=$1 f="$work/$1.json"
  if [[ ! -s "$f" ]]; then echo "- - no-report -"; cat "$work/$name.err" >&2 || true; return; fi
  local cpu_us="-"
  if read -r start end <"$work/$name.cpu" 2>/dev/null && [[ -n "${end:-}" ]]; then
    cpu_us=$(jq -r --argjson s "$start" --argjson e "$end" --argjson hz "$ticks_per_sec" \
      '(.acknowledged - (.intervals[0].msgs // 0)) as $n
       | if $n > 0 then (($e - $s) / $hz * 1e6 / $n * 100 | floor) / 100 else "-" end' "$f")
  fi
  jq -r --arg cpu "$cpu_us" '[ (.msgs_per_sec|floor), .errors,
      (if (.failures|length) == 0 then "PASSED" else "FAILED" end), $cpu ] | @tsv' "$f"
}

echo
printf '%-10s %14s %8s %9s %14s %8s %9s %9s\n' partitions group-commit cpu_us verdict os cpu_us verdict gc/os
for partitions in $partition_counts; do
  IFS=$'\t' read -r gc_rate gc_err gc_verdict gc_cpu < <(row "group-commit-$partitions")
  IFS=$'\t' read -r os_rate os_err os_verdict os_cpu < <(row "os-$partitions")
  share="-"
  if [[ "$os_rate" =~ ^[0-9]+$ && "$gc_rate" =~ ^[0-9]+$ && "$os_rate" -gt 0 ]]; then
    share="$(( gc_rate * 100 / os_rate ))%"
  fi
  printf '%-10s %14s %8s %9s %14s %8s %9s %9s\n' "$partitions" "$gc_rate" "$gc_cpu" "$gc_verdict" \
    "$os_rate" "$os_cpu" "$os_verdict" "$share"
done
echo "(msg/s = acknowledged and read back; cpu_us = broker CPU per message; 128 producers x in-flight 1, 256 B, acks=1, $duration per point${memory_limit:+, broker in $memory_limit of memory})"
for name in "${points[@]}"; do
  jq -e '(.failures|length) == 0' "$work/$name.json" >/dev/null 2>&1 || exit 1
done
