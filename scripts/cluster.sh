#!/usr/bin/env bash
# A local Chronik cluster: N chronik-server processes on 127.0.0.1, every node a voter of the
# metadata quorum. Node i (1-based) listens for clients on 9091+i (9092, 9093, ...) and for
# controller traffic on 9191+i (9192, 9193, ...); its config, data, log and pid live in
# DIR/node<i>/. Each node is an ordinary `chronik-server start --config DIR/node<i>/chronik.toml`
# process: kill -9 one and start it again with that same command line.
#
# Usage:
#   scripts/cluster.sh start  [--nodes 3] [--dir ./data/cluster] [--bin PATH]
#       starts the nodes, returns once a controller is elected and every broker is
#       registered, and prints the bootstrap list
#   scripts/cluster.sh stop   [--dir ./data/cluster]   SIGTERM, then SIGKILL after 20 s
#   scripts/cluster.sh status [--dir ./data/cluster]   what `chronik-server cluster status` shows
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command=${1:-}
[ $# -gt 0 ] && shift
nodes=3
dir=./data/cluster
bin=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

find_bin() {
  if [ -n "$bin" ]; then echo "$bin"; return; fi
  for candidate in "$ROOT/target/release/chronik-server" "$ROOT/target/debug/chronik-server"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return; fi
  done
  (cd "$ROOT" && cargo build --release -p chronik-server >&2)
  echo "$ROOT/target/release/chronik-server"
}

node_dirs() { ls -d "$dir"/node* 2>/dev/null | sort -V; }

first_bootstrap() {
  local d
  for d in $(node_dirs); do
    local pid; pid=$(cat "$d/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      sed -n 's/^listen = "\(.*\)"/\1/p' "$d/chronik.toml"; return
    fi
  done
  return 1
}

case "$command" in
  start)
    server=$(find_bin)
    voters=""
    for i in $(seq 1 "$nodes"); do
      voters+="${voters:+,}$i@127.0.0.1:$((9191 + i))"
    done
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    bootstrap=""
    declare -a offsets
    for i in $(seq 1 "$nodes"); do
      d="$dir/node$i"
      mkdir -p "$d"
      if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
        echo "node $i is already running (pid $(cat "$d/pid"))" >&2; exit 1
      fi
      cat > "$d/chronik.toml" <<EOF
node_id = $i
listen = "127.0.0.1:$((9091 + i))"
controller_listen = "127.0.0.1:$((9191 + i))"
controller_quorum_voters = "$voters"
data_dir = "$d/data"
metrics_listen = "127.0.0.1:$((9643 + i))"
EOF
      offsets[$i]=$(stat -c %s "$d/broker.log" 2>/dev/null || echo 0)
      nohup "$server" start --config "$d/chronik.toml" >>"$d/broker.log" 2>&1 &
      echo $! > "$d/pid"
      bootstrap+="${bootstrap:+,}127.0.0.1:$((9091 + i))"
    done
    # Ready = every node logged "broker started" (registered, unfenced) since this start.
    deadline=$((SECONDS + 60))
    for i in $(seq 1 "$nodes"); do
      d="$dir/node$i"
      until tail -c +$((offsets[i] + 1)) "$d/broker.log" 2>/dev/null | grep -q "broker started"; do
        if ! kill -0 "$(cat "$d/pid")" 2>/dev/null; then
          echo "node $i exited; its log:" >&2; tail -20 "$d/broker.log" >&2; exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
          echo "node $i did not start within 60 s; its log:" >&2; tail -20 "$d/broker.log" >&2; exit 1
        fi
        sleep 0.2
      done
    done
    "$server" cluster status --bootstrap-server "127.0.0.1:9092" | sed -n '1,2p'
    echo "bootstrap: $bootstrap"
    ;;
  stop)
    for d in $(node_dirs); do
      pid=$(cat "$d/pid" 2>/dev/null || true)
      [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 20))
    for d in $(node_dirs); do
      pid=$(cat "$d/pid" 2>/dev/null || true)
      [ -z "$pid" ] && continue
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$d/pid"
    done
    ;;
  status)
    server=$(find_bin)
    bootstrap=$(first_bootstrap) || { echo "no node of $dir is running" >&2; exit 1; }
    "$server" cluster status --bootstrap-server "$bootstrap"
    ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
