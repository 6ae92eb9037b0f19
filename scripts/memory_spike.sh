#!/usr/bin/env bash
# Memory spike: does GameServer give memory back after a crowd has gone?
# Starts GameServer, notes its resident memory (RSS), runs one DummyClient of
# SPIKE_SESSIONS sessions (default 15,000) with echo traffic for a few
# seconds, then samples the server's RSS every second for 10 s after the
# sessions closed, with where it sits: malloc (the main heap and the thread
# arenas, 64 MiB-aligned), mmaps (other anonymous mappings of 1 MiB or more:
# PagePool's slabs, and malloc's big blocks), page-pool (the slabs
# when the kernel lets them be named), files (code), other (stacks, small).
# Passes when RSS is back within 10 MiB of the start within 10 s
# (docs/PROTOCOL.md "Slow receivers"). --max-packet 65535 makes each receive
# buffer 128 KiB (the worst case for what stays resident); --max-memory 4 GiB
# lets 15,000 of them in (the default 1 GiB budget would stop accepting at
# about 7,400).
#
#   scripts/memory_spike.sh                     # release, 15,000 sessions
#   SPIKE_SESSIONS=5000 SPIKE_BACKEND=epoll scripts/memory_spike.sh
#   SPIKE_PAYLOAD=60000 scripts/memory_spike.sh # big packets: receive pages
#   SPIKE_THREADS=8 scripts/memory_spike.sh     # workers (default: per core)
#   SPIKE_SERVER=/tmp/old/GameServer scripts/memory_spike.sh  # another build
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

preset="${SPIKE_PRESET:-release}"
sessions="${SPIKE_SESSIONS:-15000}"
backend="${SPIKE_BACKEND:-auto}"
payload="${SPIKE_PAYLOAD:-64}"
threads="${SPIKE_THREADS:-0}"
build_preset "$preset" GameServer DummyClient >/dev/null
bin="build/$preset/apps"
server_bin="${SPIKE_SERVER:-$bin/GameServer}"
# One descriptor per session in each program, and some spare.
ulimit -n "$(ulimit -Hn)"

log="$(mktemp)"
"$server_bin" --host 127.0.0.1 --port 0 --backend "$backend" \
  --threads "$threads" --max-packet 65535 --max-memory 4294967296 --stats-interval 0 \
  --idle-timeout 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
port=$(listening_port "$log")

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
# where: the server's resident KiB by kind of mapping.
where() {
  python3 - "$server" <<'PY'
import re, sys
maps = []  # [start, end, perms, name, rss]
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
    if m:
        maps.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3),
                     m.group(4).strip(), 0])
    elif line.startswith("Rss:"):
        maps[-1][4] = int(line.split()[1])
kb = {}
for i, (start, end, perms, name, rss) in enumerate(maps):
    nxt = maps[i + 1] if i + 1 < len(maps) else None
    if name == "[heap]":
        kind = "malloc"
    elif name.startswith("/"):
        kind = "files"
    elif "servercore-pages" in name or "servercore-recv" in name:
        kind = "page-pool"  # and io_uring's provided buffers
    elif name:
        kind = "other"
    elif (nxt and nxt[0] == end and nxt[2].startswith("---") and not nxt[3]
          and start % (64 << 20) == 0):
        kind = "malloc"  # a thread arena: rw part, then its reserved rest
    elif end - start >= 1 << 20:
        kind = "mmaps"   # recv slabs (unnamed), big malloc blocks
    else:
        kind = "other"
    kb[kind] = kb.get(kind, 0) + rss
print(" ".join(f"{k} {kb.get(k, 0)}" for k in
               ("malloc", "mmaps", "page-pool", "files", "other")))
PY
}

sleep 1
before=$(rss)
echo "spike: $server_bin ($backend, --threads $threads) RSS before: $before KiB ($(where))"
"$bin/DummyClient" --port "$port" --sessions "$sessions" --mode echo \
  --payload "$payload" --depth 1 --duration 5 >/dev/null &
client=$!
peak=0
peak_where=""
while kill -0 "$client" 2>/dev/null; do
  now=$(rss)
  if [ "$now" -gt "$peak" ]; then peak=$now; peak_where=$(where); fi
  sleep 0.5
done
wait "$client" || { echo "spike: DummyClient failed" >&2; exit 1; }
echo "spike: $sessions sessions, peak RSS $peak KiB ($peak_where)"
status=1
for i in $(seq 1 10); do
  sleep 1
  now=$(rss)
  echo "spike: ${i}s after they closed: $now KiB ($(where))"
  if [ "$status" -ne 0 ] && [ "$now" -le $((before + 10240)) ]; then
    echo "spike: back within 10 MiB of the start after ${i}s"
    status=0
  fi
done
kill -TERM "$server"
wait "$server" || true
[ "$status" -eq 0 ] && echo "spike: PASS" || echo "spike: FAIL"
exit "$status"
