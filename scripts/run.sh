#!/usr/bin/env bash
# The main job: builds GameServer and DummyClient (release preset), starts
# GameServer on a free loopback port, and runs DummyClient against it: 500
# sessions chatting in room 0 (every message broadcast to all 500) for 15 s.
# Both print live stats; DummyClient checks every packet and prints its
# summary, GameServer its own when it is stopped. Exits 0 only if both did.
#
#   scripts/run.sh                       # the demo
#   scripts/run.sh --mode echo --depth 16 --sessions 100   # other DummyClient flags
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

ensure_packages
build_preset release GameServer DummyClient >/dev/null
bin=build/release/apps

log="$(mktemp)"
"$bin/GameServer" --host 127.0.0.1 --port 0 --stats-interval 1 >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT

port=$(listening_port "$log")
tail -n +1 -f "$log" --pid "$server" | sed -u 's/^/[GameServer] /' &
tail_pid=$!

client_status=0
"$bin/DummyClient" --port "$port" --sessions 500 --mode chat --rate 2 \
  --payload 64 --duration 15 "$@" | sed -u 's/^/[DummyClient] /' ||
  client_status=$?

kill -TERM "$server"
server_status=0
wait "$server" || server_status=$?
wait "$tail_pid" 2>/dev/null || true
echo "DummyClient exit $client_status, GameServer exit $server_status"
[ "$client_status" -eq 0 ] && [ "$server_status" -eq 0 ]
