#!/usr/bin/env bash
# How late a 20 Hz JobQueue timer fires on a busy worker: bench/timer_lateness
# (one worker, pinned to CPU 0) ticks a timer while it serves chat; it runs
# once idle and once under S3's load (DummyClient on CPU 1: 100 sessions in
# room 0, 4 senders, 64 B, depth 16). Prints each run's lateness line.
#
#   scripts/timer_lateness.sh [SECONDS]     # default 10 per run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

seconds="${1:-10}"
ensure_packages
build_preset release timer_lateness DummyClient >/dev/null
bin=build/release

run() {
  local name="$1" log
  shift
  log="$(mktemp)"
  taskset -c 0 "$bin/bench/timer_lateness" --threads 1 --hz 20 >"$log" 2>&1 &
  local server=$!
  local port
  port=$(listening_port "$log")
  if [ $# -gt 0 ]; then
    taskset -c 1 "$bin/apps/DummyClient" --port "$port" --duration "$seconds" \
      "$@" | grep -E "result|packets" || true
  else
    sleep "$seconds"
  fi
  kill -TERM "$server"
  wait "$server"
  echo "$name: $(grep '^ticks' "$log")"
  rm -f "$log"
}

run idle
run "S3 load" --mode chat --sessions 100 --senders 4 --payload 64 --depth 16
