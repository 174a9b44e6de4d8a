# Shared by the benchmark scripts (sourced, not run): finding the release binaries and
# starting / stopping a broker on a 127.0.0.1 port. The caller defines `die`.

# find_binaries ROOT BIN_DIR BUILD: sets $server and $bench, building them first if BUILD=1.
find_binaries() {
  local root=$1 bin_dir=$2 build=$3
  if [[ $build -eq 1 ]]; then
    (cd "$root" && cargo build --release -p chronik-server -p chronik-bench)
  fi
  server="$bin_dir/chronik-server"
  bench="$bin_dir/chronik-bench"
  local b
  for b in "$server" "$bench"; do
    [[ -x "$b" ]] || die "$b not found: run \`cargo build --release -p chronik-server -p chronik-bench\` or pass --build"
  done
}

# start_broker PORT LOG ARGS...: starts $server on 127.0.0.1:PORT (ARGS after `start`), sets
# $server_pid, and returns once the port accepts connections.
start_broker() {
  local port=$1 log=$2
  shift 2
  # Several brokers start side by side: no HTTP listener unless the caller asks for one.
  CHRONIK_METRICS_LISTEN=${CHRONIK_METRICS_LISTEN:-off} \
    "$server" start --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; die "chronik-server exited early"; }
    sleep 0.1
  done
  die "chronik-server is not listening on $port after 30 s"
}

# stop_broker: SIGTERM, up to 10 s for a clean shutdown, then SIGKILL.
stop_broker() {
  if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
