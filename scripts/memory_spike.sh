#!/usr/bin/env bash
# Memory spike: does GameServer give memory back after a crowd has gone?
# Starts GameServer, notes its resident memory (RSS), runs one DummyClient of
# SPIKE_SESSIONS sessions (default 15,000) with echo traffic for a few
# seconds, then samples the server's RSS every second for 10 s after the
# sessions closed, with where it sits: malloc (the main heap and the
# unnamed anonymous mappings of 1 MiB or more: thread arenas, big blocks),
# recv-pool (RecvStoragePool's slabs, named where the kernel allows),
# files (code), other (stacks, small mappings).
# Passes when RSS is back within 10 MiB of the start within 10 s
# (docs/PROTOCOL.md "Slow receivers").
#
#   scripts/memory_spike.sh                     # release, 15,000 sessions
#   SPIKE_SESSIONS=5000 SPIKE_BACKEND=epoll scripts/memory_spike.sh
#   SPIKE_PAYLOAD=60000 scripts/memory_spike.sh # big packets: receive pages
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

preset="${SPIKE_PRESET:-release}"
sessions="${SPIKE_SESSIONS:-15000}"
backend="${SPIKE_BACKEND:-auto}"
payload="${SPIKE_PAYLOAD:-64}"
build_preset "$preset" GameServer DummyClient >/dev/null
bin="build/$preset/apps"
# One descriptor per session in each program, and some spare.
ulimit -n "$(ulimit -Hn)"

log="$(mktemp)"
"$bin/GameServer" --host 127.0.0.1 --port 0 --backend "$backend" \
  --max-packet 65535 --stats-interval 0 --idle-timeout 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
port=$(listening_port "$log")

rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
# where: the server's resident KiB by kind of mapping.
where() {
  python3 - "$server" <<'PY'
import re, sys
kb = {}
kind = "other"
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
    if m:
        size = int(m.group(2), 16) - int(m.group(1), 16)
        name = m.group(3).strip()
        kind = ("malloc" if name == "[heap]" else "files" if name.startswith("/")
                else "recv-pool" if "servercore-recv" in name
                else "other" if name else "malloc" if size >= 1 << 20
                else "other")
    elif line.startswith("Rss:"):
        kb[kind] = kb.get(kind, 0) + int(line.split()[1])
print(" ".join(f"{k} {kb.get(k, 0)}" for k in
               ("malloc", "recv-pool", "files", "other")))
PY
}

sleep 1
before=$(rss)
echo "spike: GameServer ($preset, $backend) RSS before: $before KiB ($(where))"
"$bin/DummyClient" --port "$port" --sessions "$sessions" --mode echo \
  --payload "$payload" --depth 1 --duration 5 >/dev/null &
client=$!
peak=0
while kill -0 "$client" 2>/dev/null; do
  now=$(rss); [ "$now" -gt "$peak" ] && peak=$now
  sleep 0.5
done
wait "$client" || { echo "spike: DummyClient failed" >&2; exit 1; }
echo "spike: $sessions sessions, peak RSS $peak KiB"
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
