#!/usr/bin/env bash
# Memory budget under a flood: FLOOD_SESSIONS (default 15,000) connections
# that never read sit in room 0 of a GameServer started with --max-memory
# FLOOD_BUDGET (default 288 MiB; idle sessions hold no receive memory, so
# nearly all of it is for unsent output), while a DummyClient of 20 chat
# sessions floods room 0 for FLOOD_SECONDS (30), each sending FLOOD_RATE (4)
# chats of 1000 bytes a second, each chat
# queued to every session. Samples the server's RSS; prints its stats lines.
# Passes when DummyClient exits 0 (the sessions that read lost nothing),
# the server's RSS never passed the budget plus FLOOD_BASE MiB (default 32:
# code, stacks, the sessions' objects) and the budget cut the non-readers.
#
#   scripts/budget_flood.sh
#   FLOOD_SESSIONS=5000 FLOOD_BUDGET=134217728 FLOOD_BACKEND=epoll scripts/budget_flood.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

preset="${FLOOD_PRESET:-release}"
sessions="${FLOOD_SESSIONS:-15000}"
budget="${FLOOD_BUDGET:-301989888}"
base_mib="${FLOOD_BASE:-32}"
rate="${FLOOD_RATE:-4}"
seconds="${FLOOD_SECONDS:-30}"
backend="${FLOOD_BACKEND:-auto}"
build_preset "$preset" GameServer DummyClient >/dev/null
bin="build/$preset/apps"
ulimit -n "$(ulimit -Hn)"

log="$(mktemp)"
"$bin/GameServer" --host 127.0.0.1 --port 0 --backend "$backend" \
  --max-memory "$budget" --max-pending 1073741824 --idle-timeout 0 \
  --stats-interval 1 >"$log" 2>&1 &
server=$!
holder=""
trap 'kill $server $holder 2>/dev/null || true; rm -f "$log"' EXIT
port=$(listening_port "$log")
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

# The non-readers: connect, say one echo (so the server has them), never
# read again; a 4 KiB receive buffer each, so the server's queues fill.
python3 - "$port" "$sessions" <<'PY' &
import socket, struct, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(struct.pack("<HH", 8, 1) + b"hold")
    socks.append(s)
print(f"flood: {n} non-readers connected", flush=True)
time.sleep(3600)
PY
holder=$!
sleep 2
while [ "$(grep -c '^\[stats\]' "$log")" -lt 1 ] || \
      ! tail -n 1 "$log" | grep -q "sessions $sessions "; do
  sleep 1
done
before=$(rss)
echo "flood: $sessions non-readers in, server RSS $before KiB; flooding"
"$bin/DummyClient" --port "$port" --sessions 20 --mode chat --senders 20 \
  --payload 1000 --rate "$rate" --duration "$seconds" >/tmp/flood_client.$$ 2>&1 &
client=$!
peak=$before
while kill -0 "$client" 2>/dev/null; do
  now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.5
done
status=0
wait "$client" || status=1
tail -n 3 /tmp/flood_client.$$; rm -f /tmp/flood_client.$$
grep '^\[stats\]' "$log" | tail -n 20
kill "$holder" 2>/dev/null || true
kill -TERM "$server"; wait "$server" || status=1
grep '^\[summary\]' "$log"
limit=$((budget / 1024 + base_mib * 1024))
echo "flood: server RSS before $before KiB, peak $peak KiB; budget + base = $limit KiB"
[ "$peak" -le "$limit" ] || { echo "flood: RSS passed the budget plus the base" >&2; status=1; }
grep "^\[summary\]" "$log" | grep -q "memory budget: [1-9]" || { echo "flood: no budget kick" >&2; status=1; }
[ "$status" -eq 0 ] && echo "flood: PASS" || echo "flood: FAIL"
exit "$status"
