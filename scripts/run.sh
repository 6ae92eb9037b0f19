#!/usr/bin/env bash
# The main job: builds GameServer and DummyClient (release preset), starts
# GameServer on a free loopback port, and runs two DummyClients against it at
# once for 15 s: 400 players moving 10 times a second in rooms of 50 (each
# room ticks at 20 Hz and sends its members one shared snapshot per tick),
# and 400 chatters in rooms of 100 (every message broadcast to its room).
# GameServer prints its stats and the world's every second; each DummyClient
# checks every packet and snapshot and prints its summary, GameServer its own
# when it is stopped. Exits 0 only if all three did.
#
#   scripts/run.sh                       # the demo
#   scripts/run.sh --mode echo --depth 16 --sessions 100   # one DummyClient,
#                                        # with these flags, instead
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
if [ $# -gt 0 ]; then
  "$bin/DummyClient" --port "$port" --duration 15 "$@" |
    sed -u 's/^/[DummyClient] /' || client_status=$?
else
  "$bin/DummyClient" --port "$port" --sessions 400 --mode move \
    --room-size 50 --rate 10 --duration 15 |
    sed -u 's/^/[DummyClient move] /' &
  movers=$!
  "$bin/DummyClient" --port "$port" --sessions 400 --mode chat --first-room 1001 \
    --room-size 100 --rate 2 --payload 64 --duration 15 |
    sed -u 's/^/[DummyClient chat] /' || client_status=$?
  wait "$movers" || client_status=$?
fi

kill -TERM "$server"
server_status=0
wait "$server" || server_status=$?
wait "$tail_pid" 2>/dev/null || true
echo "DummyClient exit $client_status, GameServer exit $server_status"
[ "$client_status" -eq 0 ] && [ "$server_status" -eq 0 ]
