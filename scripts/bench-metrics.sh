#!/usr/bin/env bash
# What recording metrics costs the produce path: the same load against a broker built without
# the metrics code (the baseline binary) and against this one with its HTTP listener on and
# scraped every 5 s, alternating, in one run. The load is the request-heavy one: 64 producers,
# in-flight 1, 256 B, acks=1 (one request per message, so per-request work shows); every run
# is validated (each acknowledged message read back).
#
# Usage: scripts/bench-metrics.sh --baseline-bin PATH [--bin target/release/chronik-server]
#            [--rounds 2] [--duration 15s] [--concurrency 64] [--port 19392]
# Build the baseline from the commit before the metrics, e.g.
#   git archive <commit> | tar -x -C /tmp/base && (cd /tmp/base && cargo build --release -p chronik-server)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
baseline=""
bin="$root/target/release/chronik-server"
bench="$root/target/release/chronik-bench"
rounds=2
duration=15s
concurrency=64
port=19392
die() { echo "bench-metrics: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --baseline-bin) baseline="${2:?}"; shift 2 ;;
    --bin) bin="${2:?}"; shift 2 ;;
    --bench-bin) bench="${2:?}"; shift 2 ;;
    --rounds) rounds="${2:?}"; shift 2 ;;
    --duration) duration="${2:?}"; shift 2 ;;
    --concurrency) concurrency="${2:?}"; shift 2 ;;
    --port) port="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument: $1" ;;
  esac
done
[[ -x "$baseline" ]] || die "--baseline-bin: no executable at '$baseline'"
for b in "$bin" "$bench"; do [[ -x "$b" ]] || die "$b not built (cargo build --release -p chronik-server -p chronik-bench)"; done
command -v jq >/dev/null || die "jq is needed"

work=$(mktemp -d)
pid=""
scraper=""
cleanup() {
  [[ -n "$scraper" ]] && kill "$scraper" 2>/dev/null
  [[ -n "$pid" ]] && kill "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# User + system CPU of process $1, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)

# run VARIANT ROUND: starts the variant's broker on a fresh data dir and runs the load
# (report in $work/VARIANT-ROUND.json). Not in a subshell, so the EXIT trap stops its broker.
run() {
  local variant=$1 round=$2 server=$baseline metrics=()
  if [[ $variant == metrics ]]; then
    server=$bin
    metrics=(--metrics-listen "127.0.0.1:$((port + 1))")
  fi
  rm -rf "$work/data"
  "$server" start --listen "127.0.0.1:$port" --data-dir "$work/data" "${metrics[@]}" \
    >"$work/$variant-$round.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do grep -q "broker started" "$work/$variant-$round.log" && break; sleep 0.1; done
  grep -q "broker started" "$work/$variant-$round.log" || die "$variant broker did not start"
  cpu_before=$(cpu_ticks "$pid")
  if [[ $variant == metrics ]]; then
    ( while sleep 5; do curl -sf "http://127.0.0.1:$((port + 1))/metrics" >/dev/null || true; done ) &
    scraper=$!
  fi
  "$bench" -b "127.0.0.1:$port" -t "metrics-$variant-$round" --create-topic -p 1 -m produce \
    -c "$concurrency" --in-flight 1 -s 256 -d "$duration" -w 2s --acks 1 --validate \
    --json-output "$work/$variant-$round.json" >"$work/$variant-$round.txt" 2>&1 ||
    { cat "$work/$variant-$round.txt" >&2; die "$variant round $round failed"; }
  [[ -n "$scraper" ]] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null || true; scraper=""; }
  echo $(( $(cpu_ticks "$pid") - cpu_before )) >"$work/$variant-$round.cpu"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  jq -e '(.failures|length) == 0' "$work/$variant-$round.json" >/dev/null ||
    die "$variant round $round did not validate: $(jq -c .failures "$work/$variant-$round.json")"
}

declare -A total=([baseline]=0 [metrics]=0) cpu_total=([baseline]=0 [metrics]=0)
declare -A msgs_total=([baseline]=0 [metrics]=0)
# cpu_us: the broker's CPU over the whole run (produce, then the read-back) per message
# produced; less disturbed by other load on the machine than msg/s.
printf '%-6s %-9s %10s %8s\n' round variant msg/s cpu_us
for round in $(seq 1 "$rounds"); do
  # Alternate which goes first, so drift on the shared machine hits both alike.
  order=(baseline metrics); (( round % 2 == 0 )) && order=(metrics baseline)
  for variant in "${order[@]}"; do
    run "$variant" "$round"
    rate=$(jq -r '.msgs_per_sec|floor' "$work/$variant-$round.json")
    msgs=$(jq -r '.acknowledged // .messages' "$work/$variant-$round.json")
    ticks=$(cat "$work/$variant-$round.cpu")
    total[$variant]=$(( ${total[$variant]} + rate ))
    cpu_total[$variant]=$(( ${cpu_total[$variant]} + ticks ))
    msgs_total[$variant]=$(( ${msgs_total[$variant]} + msgs ))
    printf '%-6s %-9s %10s %8s\n' "$round" "$variant" "$rate" \
      "$(awk -v t="$ticks" -v h="$ticks_per_sec" -v n="$msgs" 'BEGIN { printf "%.2f", t / h * 1e6 / n }')"
  done
done
b=$(( ${total[baseline]} / rounds )); m=$(( ${total[metrics]} / rounds ))
echo "mean: baseline $b msg/s, metrics $m msg/s, metrics/baseline $(awk -v m="$m" -v b="$b" 'BEGIN { printf "%.3f", m / b }')"
cpu_per_msg() { awk -v t="${cpu_total[$1]}" -v h="$ticks_per_sec" -v n="${msgs_total[$1]}" 'BEGIN { printf "%.3f", t / h * 1e6 / n }'; }
echo "broker CPU per message: baseline $(cpu_per_msg baseline) us, metrics $(cpu_per_msg metrics) us, metrics/baseline $(awk -v m="$(cpu_per_msg metrics)" -v b="$(cpu_per_msg baseline)" 'BEGIN { printf "%.3f", m / b }')"
echo "($concurrency producers x in-flight 1, 256 B, acks=1, $duration after 2 s warm-up, every acknowledged message read back)"
