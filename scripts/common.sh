# Shared by scripts/run.sh and scripts/test.sh: installs the Debian packages
# the build needs (only those missing, quietly when none are) and configures
# and builds a CMake preset.

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
