# Shared by the benchmark scripts (sourced, not run): finding the release binaries,
# starting / stopping a broker on a 127.0.0.1 port, and an optional memory budget for the
# brokers. The caller defines `die`.

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

# memory_budget LIMIT: every broker started after this runs in one memory cgroup limited to
# LIMIT (e.g. 2G; cgroup v2 or v1, needs root), so the brokers' page cache is recycled within
# LIMIT as on a long-running broker whose memory is full. Without it, on a VM whose hypervisor
# takes back free guest memory (free page reporting), every page the page cache grows into
# costs a fault on the host: measured here, writing a file costs ~5x the CPU once it grows past
# the memory freed recently (BENCHMARKS.md, "A VM artefact"). `release_memory_budget` removes
# the cgroup once its brokers are stopped.
memory_cgroup=""
memory_budget() {
  local limit=$1 name="chronik-bench-$$"
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    memory_cgroup="/sys/fs/cgroup/$name"
    mkdir -p "$memory_cgroup" && echo "$limit" >"$memory_cgroup/memory.max" ||
      die "cannot create the memory cgroup $memory_cgroup (root and the memory controller are needed)"
  elif [[ -d /sys/fs/cgroup/memory ]]; then
    memory_cgroup="/sys/fs/cgroup/memory/$name"
    mkdir -p "$memory_cgroup" && echo "$limit" >"$memory_cgroup/memory.limit_in_bytes" ||
      die "cannot create the memory cgroup $memory_cgroup (root is needed)"
  else
    die "--memory-limit needs the cgroup memory controller (/sys/fs/cgroup)"
  fi
}

release_memory_budget() {
  if [[ -n $memory_cgroup ]]; then
    rmdir "$memory_cgroup" 2>/dev/null || true
  fi
}

# start_broker PORT LOG ARGS...: starts $server on 127.0.0.1:PORT (ARGS after `start`), sets
# $server_pid, and returns once the port accepts connections.
start_broker() {
  local port=$1 log=$2
  shift 2
  # Several brokers start side by side: no HTTP listener unless the caller asks for one. The
  # shell joins the memory cgroup (if any) and becomes the broker, so $! is the broker's pid.
  CHRONIK_METRICS_LISTEN=${CHRONIK_METRICS_LISTEN:-off} sh -c \
    'if [ -n "$1" ]; then echo $$ >"$1/cgroup.procs" || exit 1; fi; shift; exec "$@"' \
    sh "$memory_cgroup" "$server" start --listen "127.0.0.1:$port" "$@" >"$log" 2>&1 &
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
