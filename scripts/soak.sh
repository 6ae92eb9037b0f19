#!/usr/bin/env bash
# Soak: GameServer under 1,000 DummyClient sessions, echo, then chat
# broadcast (100 senders, 900 listeners kept alive by C_PING), then movers in
# rooms of 100 at 20 Hz, with the server's resident memory sampled every 5 s.
# Passes when both programs exit 0 (DummyClient saw no lost, corrupt or
# reordered packet, and every snapshot kept the rules) and the server's
# memory in the second half of each phase stays within 10% of the first.
#
#   scripts/soak.sh                  # release build, 60 s a phase
#   SOAK_PRESET=asan scripts/soak.sh # the same under ASan+UBSan: LeakSanitizer
#                                    # checks the server's shutdown too
#   SOAK_SECONDS=30 scripts/soak.sh  # shorter phases
#   SOAK_BACKEND=epoll scripts/soak.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

preset="${SOAK_PRESET:-release}"
seconds="${SOAK_SECONDS:-60}"
backend="${SOAK_BACKEND:-auto}"
ensure_packages
build_preset "$preset" GameServer DummyClient >/dev/null
bin="build/$preset/apps"

log="$(mktemp)"
rss_log="$(mktemp)"
# The default --idle-timeout (60 s) applies: in the chat phase most sessions
# only listen, and DummyClient keeps them alive with C_PING.
"$bin/GameServer" --host 127.0.0.1 --port 0 --backend "$backend" \
  --stats-interval 10 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log" "$rss_log"' EXIT
port=$(listening_port "$log")
echo "soak: GameServer ($preset, $backend) on port $port, ${seconds}s each of echo, chat, move"

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

status=0
run_phase echo --mode echo --depth 4 || status=1
run_phase chat --mode chat --senders 100 --rate 10 || status=1
run_phase move --mode move --room-size 100 --rate 10 || status=1
kill -TERM "$server"
wait "$server" || status=1
cat "$log"
[ "$status" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$status"
