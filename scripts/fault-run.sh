#!/usr/bin/env bash
# A longer randomized fault run on a local 3-node cluster (not part of the test command):
# kill -9, SIGTERM, SIGSTOP and network partitions (proxies on every inter-node link) at
# random under an idempotent acks=all producer, healing after each; then every acknowledged
# write must be read back exactly once at its offset and the replicas must hold identical
# batches. A failure prints the seed; pass it again to replay the same fault schedule.
#
# Usage: scripts/fault-run.sh [--minutes 3] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=3
seed=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cargo build -p chronik-server --bin chronik-server
export CHRONIK_FAULT_MINUTES=$minutes
[[ -n "$seed" ]] && export CHRONIK_FAULT_SEED=$seed
exec cargo test -p chronik-integration --test replication_faults -- --ignored --nocapture \
  randomized_faults_lose_no_acknowledged_write
