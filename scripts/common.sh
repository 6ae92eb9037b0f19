# Shared by the scripts: installs the Debian packages the build needs (only
# those missing, quietly when none are), configures and builds a CMake
# preset, and starts and stops the processes a run needs.

SERVERCORE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERCORE_JOBS="${SERVERCORE_JOBS:-$(nproc)}"

# Everything the build, tests, benchmarks and fuzzers use, by Debian 12 name.
SERVERCORE_PACKAGES=(
  cmake make gcc g++ clang libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev liburing-dev libcli11-dev
  pkg-config libprotobuf-dev libprotoc-dev protobuf-compiler libboost-dev
  nats-server libnats-dev
)

ensure_packages() {
  local missing=() pkg
  for pkg in "${SERVERCORE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}" >&2
    echo "       install them as root: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_preset NAME [TARGET...]: configure (once) and build a CMake preset.
build_preset() {
  local preset="$1"
  shift
  (cd "$SERVERCORE_ROOT" && cmake --preset "$preset" >/dev/null)
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$SERVERCORE_ROOT/build/$preset" -j "$SERVERCORE_JOBS" "${targets[@]}"
}

# listening_port LOG: waits (up to 10 s) for a server's "listening on
# HOST:PORT" line in LOG and prints PORT; prints the log and fails if none.
listening_port() {
  local log="$1" port="" _
  for _ in $(seq 1 200); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && { echo "$port"; return 0; }
    sleep 0.05
  done
  echo "the server did not start:" >&2
  cat "$log" >&2
  return 1
}

# kill_at_exit PID...: kills them (if still running) when the script exits,
# however it exits; with the directory in CLEANUP_DIR, if set, removed too.
CLEANUP_PIDS=()
CLEANUP_DIR=""
kill_at_exit() {
  CLEANUP_PIDS+=("$@")
  trap cleanup_at_exit EXIT
}
cleanup_at_exit() {
  local pid
  for pid in "${CLEANUP_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -z "$CLEANUP_DIR" ] || rm -rf "$CLEANUP_DIR"
}

# start_nats LOG [ARG...]: starts nats-server on a free loopback port (and
# its HTTP monitor on another) with ARGs, logging to LOG, killed at exit;
# waits (up to 10 s) until it listens and sets NATS_PID, NATS_PORT, and
# NATS_HTTP_PORT (empty without a monitor); prints the log and fails if it
# does not start.
start_nats() {
  local log="$1" _
  shift
  nats-server -a 127.0.0.1 -p -1 "$@" >"$log" 2>&1 &
  NATS_PID=$!
  kill_at_exit "$NATS_PID"
  NATS_PORT=""
  for _ in $(seq 1 200); do
    if grep -q "Server is ready" "$log"; then
      NATS_PORT=$(sed -n 's/.*client connections on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
      NATS_HTTP_PORT=$(sed -n 's/.*http monitor on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
      [ -n "$NATS_PORT" ] && return 0
    fi
    sleep 0.05
  done
  echo "nats-server did not start:" >&2
  cat "$log" >&2
  return 1
}
