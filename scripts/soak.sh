#!/usr/bin/env bash
# Soak: GameServer under 1,000 DummyClient sessions, echo, then chat
# broadcast (100 senders, 900 listeners kept alive by C_PING), then movers in
# rooms of 100 at 20 Hz, with the server's resident memory sampled every 5 s.
# Passes when both programs exit 0 (DummyClient saw no lost, corrupt or
# reordered packet, and every snapshot kept the rules) and the server's
# memory in the second half of each phase stays within 10% of the first.
#
# Then the crowd (SOAK_CROWD sessions, default 15,000; 0 skips it): first as
# many connections that never send a byte, held 15 s, then as many
# DummyClient sessions (a third echo at 1/s, a third chat in rooms of 50 at
# 0.1/s, a third moving in rooms of 10 at 0.5/s: what two cores carry with
# the three clients on them) with SOAK_CROWD_SECONDS of traffic followed by as
# long idle, kept open by C_PING (the server's --idle-timeout is 60 s, longer
# than either). It reports the server's RSS per connection in both states.
#
#   scripts/soak.sh                  # release build, 60 s a phase, the crowd
#   SOAK_PRESET=asan scripts/soak.sh # the same under ASan+UBSan: LeakSanitizer
#                                    # checks the server's shutdown too
#   SOAK_SECONDS=30 scripts/soak.sh  # shorter phases
#   SOAK_BACKEND=epoll scripts/soak.sh
#   SOAK_CROWD=0 scripts/soak.sh     # no crowd
#   SOAK_CROWD_SECONDS=60 scripts/soak.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

preset="${SOAK_PRESET:-release}"
seconds="${SOAK_SECONDS:-60}"
backend="${SOAK_BACKEND:-auto}"
crowd="${SOAK_CROWD:-15000}"
crowd_seconds="${SOAK_CROWD_SECONDS:-20}"
# One descriptor per connection in the server and in each client (this
# machine allows about 20,000 a process).
ulimit -n "$(ulimit -Hn)"
ensure_packages
build_preset "$preset" GameServer DummyClient >/dev/null
bin="build/$preset/apps"

log="$(mktemp)"
rss_log="$(mktemp)"
crowd_dir="$(mktemp -d)"
# The default --idle-timeout (60 s) applies: in the chat phase most sessions
# only listen, and DummyClient keeps them alive with C_PING.
"$bin/GameServer" --host 127.0.0.1 --port 0 --backend "$backend" \
  --stats-interval 10 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$log" "$rss_log" "$crowd_dir"' EXIT
port=$(listening_port "$log")
echo "soak: GameServer ($preset, $backend) on port $port, ${seconds}s each of echo, chat, move; then $crowd at once"

# check_flat FILE NAME: after the first sample (warm-up), the peak of the
# second half of a phase must stay within 10% of the peak of its first half.
check_flat() {
  local file="$1" name="$2" n half first last
  echo "soak: $name: server RSS every 5 s (KiB): $(tr '\n' ' ' <"$file")"
  n=$(($(wc -l <"$file") - 1))
  [ "$n" -ge 4 ] || return 0
  half=$((n / 2))
  first=$(tail -n "$n" "$file" | head -n "$half" | sort -n | tail -n 1)
  last=$(tail -n "$((n - half))" "$file" | sort -n | tail -n 1)
  echo "soak: $name: peak RSS first half ${first} KiB, second half ${last} KiB"
  if [ "$last" -gt $((first + first / 10)) ]; then
    echo "soak: $name: server memory grew by more than 10%" >&2
    return 1
  fi
}

# run_phase NAME DummyClient-flags...: one load phase, RSS sampled meanwhile.
run_phase() {
  local name="$1" phase_status=0 sampler
  shift
  : >"$rss_log"
  ( while kill -0 "$server" 2>/dev/null; do
      awk '/VmRSS/ {print $2}' "/proc/$server/status" 2>/dev/null >>"$rss_log" || true
      sleep 5
    done ) &
  sampler=$!
  "$bin/DummyClient" --port "$port" --sessions 1000 --duration "$seconds" "$@" ||
    phase_status=1
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  check_flat "$rss_log" "$name" || phase_status=1
  return "$phase_status"
}

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

# settled_rss: the server's RSS once it has stopped falling (closed sessions'
# memory goes back within a second or two), at most 10 s.
settled_rss() {
  local last now _
  last=$(rss)
  for _ in $(seq 1 10); do
    sleep 1
    now=$(rss)
    [ "$now" -ge "$last" ] && break
    last=$now
  done
  rss
}

# per_conn BEFORE AFTER: bytes of RSS per crowd connection.
per_conn() { echo $((($2 - $1) * 1024 / crowd)); }

# The crowd: idle-only connections, then sessions with traffic, then idle.
run_crowd() {
  local base idle_rss traffic_peak after_rss n=$((crowd / 3)) pids=() i=0 rc=0
  base=$(settled_rss)
  echo "soak: crowd: $crowd connections that send nothing (server RSS $base KiB before)"
  python3 - "$port" "$crowd" >"$crowd_dir/idle.log" 2>&1 <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
print("ready", flush=True)
time.sleep(15)
PY
  local idle=$!
  for _ in $(seq 1 600); do
    grep -q ready "$crowd_dir/idle.log" && break
    kill -0 "$idle" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q ready "$crowd_dir/idle.log"; then
    cat "$crowd_dir/idle.log" >&2
    return 1
  fi
  sleep 3
  idle_rss=$(rss)
  wait "$idle" || rc=1
  echo "soak: crowd: idle-only: RSS $idle_rss KiB, $(per_conn "$base" "$idle_rss") bytes a connection"

  base=$(settled_rss)
  echo "soak: crowd: $((3 * n)) sessions, ${crowd_seconds}s of traffic then ${crowd_seconds}s idle (server RSS $base KiB before)"
  for args in "--mode echo --rate 1" \
              "--mode chat --room-size 50 --rate 0.1" \
              "--mode move --room-size 10 --rate 0.5 --first-room 1001"; do
    # shellcheck disable=SC2086
    "$bin/DummyClient" --port "$port" --sessions "$n" $args \
      --duration "$crowd_seconds" --idle "$crowd_seconds" \
      >"$crowd_dir/client$i.log" 2>&1 &
    pids+=($!)
    i=$((i + 1))
  done
  traffic_peak=0
  while [ "$(grep -l '^\[idle\] start' "$crowd_dir"/client*.log 2>/dev/null | wc -l)" -lt 3 ]; do
    local alive=0 p
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 1 ] || break
    local now
    now=$(rss)
    [ "$now" -gt "$traffic_peak" ] && traffic_peak=$now
    sleep 1
  done
  sleep 5  # idle for a few seconds: what the traffic left behind
  after_rss=$(rss)
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  for i in 0 1 2; do
    grep -E "^(== DummyClient summary|packets |errors |result )" "$crowd_dir/client$i.log" || true
  done
  [ "$rc" -eq 0 ] || tail -n 20 "$crowd_dir"/client*.log >&2
  echo "soak: crowd: traffic: peak RSS $traffic_peak KiB, $(per_conn "$base" "$traffic_peak") bytes a session"
  echo "soak: crowd: idle after traffic: RSS $after_rss KiB, $(per_conn "$base" "$after_rss") bytes a session"
  return "$rc"
}

status=0
run_phase echo --mode echo --depth 4 || status=1
run_phase chat --mode chat --senders 100 --rate 10 || status=1
run_phase move --mode move --room-size 100 --rate 10 || status=1
if [ "$crowd" -gt 0 ]; then
  run_crowd || status=1
fi
kill -TERM "$server"
wait "$server" || status=1
cat "$log"
[ "$status" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$status"
