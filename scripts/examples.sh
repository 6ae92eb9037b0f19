#!/usr/bin/env bash
# The installed package, checked as a consumer sees it: builds the library
# alone (Release; tests, apps and benchmarks off) in build/package, installs
# it into a temporary prefix, builds examples/ against that prefix with
# find_package(servercore), compiles echo_server.cc once more with only
# pkg-config's flags, then runs each example server on a free loopback port
# and checks it with three python3 clients, and stops it with SIGTERM (exit
# code 0 required).
#
#   scripts/examples.sh [REPO_ROOT]
#
# Ends with one line "examples: N passed, N failed"; exits non-zero on a
# failure.
# shellcheck disable=SC2317 # the functions run through step and trap
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
root="$(cd "${1:-$SERVERCORE_ROOT}" && pwd)"
build="$root/build/package"
ensure_packages

passed=0
failed=0
tmp="$(mktemp -d)"
prefix="$tmp/prefix"
server=""
cleanup() {
  [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

finish() {
  echo "examples: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}

# step NAME COMMAND...: runs COMMAND quietly (its output in a log, shown on
# failure; what it writes to fd 3 is shown at once) and counts one pass or
# failure.
step() {
  local name="$1"
  shift
  if "$@" 3>&1 >"$tmp/step.log" 2>&1; then
    echo "examples: $name ok"
    passed=$((passed + 1))
  else
    echo "examples: $name FAILED" >&2
    tail -n 40 "$tmp/step.log" >&2
    failed=$((failed + 1))
    return 1
  fi
}

install_library() {
  timeout 900 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DSERVERCORE_BUILD_TESTS=OFF \
    -DSERVERCORE_BUILD_BENCH=OFF -DSERVERCORE_BUILD_APPS=OFF &&
    timeout 900 cmake --build "$build" -j "$SERVERCORE_JOBS" &&
    timeout 60 cmake --install "$build" --prefix "$prefix" || return 1
  # The installed headers name only each other: nothing from src/.
  if grep -rhE '^#include "' "$prefix/include" | grep -v '"servercore/'; then
    echo "an installed header includes a file outside include/servercore"
    return 1
  fi
}

build_examples() {
  timeout 120 cmake -S "$root/examples" -B "$tmp/examples" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" &&
    timeout 300 cmake --build "$tmp/examples" -j "$SERVERCORE_JOBS"
}

# servercore.pc alone is enough to compile and (statically) link a consumer.
check_pkg_config() {
  local flags
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  flags="$(pkg-config --cflags --libs servercore)" || return 1
  flags="${flags% }"
  echo "pkg-config --cflags --libs servercore: ${flags//$prefix/\$prefix}" >&3
  flags="$(pkg-config --cflags --libs --static servercore)" || return 1
  # shellcheck disable=SC2086 # the flags are words
  timeout 300 c++ -std=c++20 -o "$tmp/echo_server_pc" \
    "$root/examples/echo_server.cc" $flags
}

# check_server NAME MODE: starts the example, runs the client, stops it.
check_server() {
  local exe="$tmp/examples/$1" mode="$2" log="$tmp/$1.log" port status=0 _
  "$exe" --port 0 --threads 2 >"$log" 2>&1 &
  server=$!
  if ! port=$(listening_port "$log"); then
    kill -KILL "$server"
    wait "$server"
    server=""
    return 1
  fi
  echo "$1 listening on port $port" >&3
  timeout 30 python3 - "$port" "$mode" <<'EOF' >&3 || status=$?
import socket, struct, sys

port, mode = int(sys.argv[1]), sys.argv[2]

def send(sock, packet_id, payload):
    sock.sendall(struct.pack("<HH", 4 + len(payload), packet_id) + payload)

def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            sys.exit("the server closed the connection")
        data += more
    return data

def recv(sock):
    size, packet_id = struct.unpack("<HH", recv_exact(sock, 4))
    return packet_id, recv_exact(sock, size - 4)

clients = [socket.create_connection(("127.0.0.1", port), timeout=10)
           for _ in range(3)]
if mode == "echo":  # C_ECHO (1) -> S_ECHO (2), same payload
    payloads = [b"hello", b"", bytes(range(256)) * 8]
    for client, payload in zip(clients, payloads):
        send(client, 1, payload)
    for client, payload in zip(clients, payloads):
        got = recv(client)
        assert got == (2, payload), got[:1] + (got[1][:16],)
else:  # C_CHAT (5) -> S_CHAT (6) = u64 sender id + message, to all three
    # The last to connect sends: the server accepted (and so put in the room)
    # the other two before it.
    message = b"hello, room"
    send(clients[-1], 5, message)
    senders = set()
    for client in clients:
        packet_id, payload = recv(client)
        assert packet_id == 6 and payload[8:] == message, (packet_id, payload)
        senders.add(struct.unpack("<Q", payload[:8])[0])
    assert len(senders) == 1 and 0 not in senders, senders
print(mode, "client: 3 of 3 sessions answered")
EOF
  kill -TERM "$server"
  for _ in $(seq 1 100); do
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server" 2>/dev/null; then
    echo "$1 did not exit within 10 s of SIGTERM"
    kill -KILL "$server"
    status=1
  fi
  local exit_code=0
  wait "$server" || exit_code=$?
  server=""
  echo "$1 exit code $exit_code after SIGTERM" >&3
  [ "$exit_code" -eq 0 ] || status=1
  [ "$status" -eq 0 ] || cat "$log"
  return "$status"
}

step "install into a temporary prefix" install_library || finish
step "find_package(servercore) build of examples/" build_examples || finish
step "pkg-config servercore" check_pkg_config || true
step "echo_server" check_server echo_server echo || true
step "broadcast_server" check_server broadcast_server broadcast || true
finish
