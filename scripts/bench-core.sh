#!/usr/bin/env bash
# Single-node broker-core benchmark (issue "Broker core"): one librdkafka producer
# (linger.ms=5, batch.size=1 MiB, acks=1) with 256 B and 1 KiB records, then one consumer
# reading the same data back from the page cache. Each run is verified: the consumer must
# read back exactly as many messages as were acknowledged.
#
# Clients: librdkafka's own rdkafka_performance (C, built from the librdkafka source vendored
# in rdkafka-sys, the same build scripts/librdkafka-suite.sh uses) as the reference client,
# and chronik-bench. Baseline in the same run: the same load with --flush-policy os (no fsync),
# so the cost of the default group-commit fsync is visible next to it.
#
# Usage: scripts/bench-core.sh [--messages 3000000] [--port 29092]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
messages=3000000
port=29092
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) messages=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cd "$ROOT"
cargo build --release -p chronik-server -p chronik-bench
"$ROOT/scripts/librdkafka-suite.sh" --build-only >/dev/null
RDK="$ROOT/target/librdkafka-suite/librdkafka"
PERF="$ROOT/target/librdkafka-suite/rdkafka_performance"
if [ ! -x "$PERF" ]; then
  libs=$(sed -n 's/^LIBS+*=//p' "$RDK/Makefile.config" | tr '\n' ' ')
  # shellcheck disable=SC2086
  gcc -O2 -I"$RDK/src" "$RDK/examples/rdkafka_performance.c" -o "$PERF" "$RDK/src/librdkafka.a" $libs -lm
fi

work=$(mktemp -d)
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

start_broker() { # $1 = flush policy
  [ -n "$server_pid" ] && { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$work/data"
  "$ROOT/target/release/chronik-server" start --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --flush-policy "$1" >"$work/broker-$1.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || { echo "broker exited:" >&2; cat "$work/broker-$1.log" >&2; exit 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    sleep 0.1
  done
  echo "broker did not start" >&2; exit 1
}

row() { printf '| %-13s | %-22s | %6s | %12s | %10s | %9s |\n' "$@"; }

# rdkafka_performance prints a table; its last row holds the totals (msgs, bytes, dr_m/s, dr_MB/s).
produce_rk() { # policy size topic
  local before after
  before=$(cpu_ticks "$server_pid")
  "$PERF" -P -t "$3" -b "127.0.0.1:$port" -s "$2" -c "$messages" -a 1 -u \
    -X linger.ms=5 -X batch.size=1048576 -X queue.buffering.max.messages=2000000 \
    -X queue.buffering.max.kbytes=4000000 >"$work/out" 2>&1
  after=$(cpu_ticks "$server_pid")
  awk -v p="$1" -v s="$2" -v cpu=$((after - before)) -F'|' '/^\|/ && $2 ~ /[0-9]/ {l=$0} END {
      split(l, f, "|"); printf "| %-13s | %-22s | %6s | %12d | %10.1f | %7.2f s |\n",
      p, "rdkafka_performance -P", s" B", f[7], f[8], cpu/100 }' "$work/out"
}

consume_rk() { # policy size topic
  local before after
  before=$(cpu_ticks "$server_pid")
  "$PERF" -C -t "$3" -p 0 -b "127.0.0.1:$port" -o beginning -c "$messages" -u \
    -X fetch.max.bytes=52428800 -X max.partition.fetch.bytes=10485760 >"$work/out" 2>&1
  after=$(cpu_ticks "$server_pid")
  awk -v p="$1" -v s="$2" -v n="$messages" -v cpu=$((after - before)) -F'|' '/^\|/ && $2 ~ /[0-9]/ {l=$0} END {
      split(l, f, "|"); if (f[3] + 0 != n) { printf "VERIFY FAILED: read %d of %d\n", f[3], n; exit 1 }
      printf "| %-13s | %-22s | %6s | %12d | %10.1f | %7.2f s |\n",
      p, "rdkafka_performance -C", s" B", f[6], f[7], cpu/100 }' "$work/out"
}

produce_bench() { # policy size topic
  local before after
  before=$(cpu_ticks "$server_pid")
  "$ROOT/target/release/chronik-bench" -b "127.0.0.1:$port" -t "$3" --create-topic -p 1 -c 1 \
    --in-flight 100000 -s "$2" -n "$messages" --linger-ms 5 --batch-size 1048576 --acks 1 \
    --validate --json-output "$work/bench.json" >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }
  after=$(cpu_ticks "$server_pid")
  python3 - "$work/bench.json" "$1" "$2" $((after - before)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("totals", r)
mps = t.get("msgs_per_sec") or t.get("messages_per_sec") or 0
mbs = t.get("mb_per_sec") or 0
print(f"| {sys.argv[2]:<13} | {'chronik-bench produce':<22} | {sys.argv[3]+' B':>6} | {mps:12.0f} | {mbs:10.1f} | {int(sys.argv[4])/100:7.2f} s |")
PY
}

echo "messages per run: $messages; machine: $(nproc) cores; client and broker share them"
row "flush policy" "client" "size" "msg/s" "MB/s" "broker CPU"
row "---" "---" "---" "---" "---" "---"
for policy in group-commit os; do
  start_broker "$policy"
  for size in 256 1024; do
    produce_rk "$policy" "$size" "rk-$size"
    consume_rk "$policy" "$size" "rk-$size"
  done
  produce_bench "$policy" 256 "cb-256"
done
