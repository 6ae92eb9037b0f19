#!/usr/bin/env bash
# The cluster benchmark (docs/BENCHMARKS.md, "The cluster"): 900 chatters in
# one room, on one standalone GameServer, then on three nodes of 300 each
# over nats-server (DummyClient --hosts), one run each, on this machine's
# loopback. Prints per setup: deliveries/s, CPU per delivered message (the
# servers and nats-server; DummyClient apart), the sender's own S_CHAT round
# trip p50/p99, a probe's node-to-node chat latency p50/p99 under the load
# (scripts/cluster_bench.py, 20 chats/s between two sessions of a room of
# their own, on nodes 1 and 2), and broker messages per chat (nats-server's
# /varz in and out over DummyClient's and the probe's chats; presence and
# state messages included).
#
#   scripts/cluster_bench.sh              # 15 s each, 0.5 chats/s/session
#   RATE=1 SECONDS_EACH=20 scripts/cluster_bench.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

rate="${RATE:-0.5}"
seconds="${SECONDS_EACH:-15}"
sessions=900
ensure_packages
build_preset release GameServer DummyClient >/dev/null
bin=build/release/apps
dir="$(mktemp -d)"
CLEANUP_DIR="$dir"
trap cleanup_at_exit EXIT

ticks=$(getconf CLK_TCK)
# cpu_seconds PID...: their user+system CPU so far, in seconds.
cpu_seconds() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  awk -v t="$total" -v hz="$ticks" 'BEGIN { printf "%.3f\n", t / hz }'
}

varz() {  # in_msgs out_msgs of nats-server
  python3 -c 'import json, sys, urllib.request
v = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/varz"))
print(v["in_msgs"], v["out_msgs"])' "$1"
}

# run NAME NODES: one setup; prints its line.
run() {
  local name="$1" nodes="$2" nats="" http="" url="" hosts="" servers=() id port
  if [ "$nodes" -gt 1 ]; then
    start_nats "$dir/nats.log" -m -1
    nats=$NATS_PID
    http=$NATS_HTTP_PORT
    url="nats://127.0.0.1:$NATS_PORT"
  fi
  for id in $(seq 1 "$nodes"); do
    local flags=()
    [ "$nodes" -gt 1 ] && flags=(--cluster "$url" --node-id "$id")
    : >"$dir/node$id.log"  # before listening_port reads it
    "$bin/GameServer" --host 127.0.0.1 --port 0 --threads 1 \
      --stats-interval 0 "${flags[@]}" >"$dir/node$id.log" 2>&1 &
    servers+=($!)
    kill_at_exit $!
    port=$(listening_port "$dir/node$id.log")
    hosts+="${hosts:+,}127.0.0.1:$port"
  done
  local first="${hosts%%,*}" second
  second=$(echo "$hosts" | cut -d, -f2)
  local all=("${servers[@]}")
  [ -n "$nats" ] && all+=("$nats")
  local before after in0 out0 in1 out1
  before=$(cpu_seconds "${all[@]}")
  [ -n "$http" ] && read -r in0 out0 < <(varz "$http")
  python3 scripts/cluster_bench.py "${first##*:}" "${second##*:}" 20 \
    "$((seconds - 3))" >"$dir/probe.txt" &
  local probe=$!
  (
    "$bin/DummyClient" --hosts "$hosts" --sessions "$sessions" --mode chat \
      --room-size "$sessions" --rate "$rate" --payload 64 --threads 1 \
      --duration "$seconds" --json "$dir/client.json" >"$dir/client.log" 2>&1
    times >"$dir/client_times.txt"
  ) || { cat "$dir/client.log"; exit 1; }
  after=$(cpu_seconds "${all[@]}")
  [ -n "$http" ] && read -r in1 out1 < <(varz "$http")
  wait "$probe"
  kill -TERM "${servers[@]}"
  for id in "${servers[@]}"; do wait "$id"; done
  [ -n "$nats" ] && { kill "$nats"; wait "$nats" || true; }
  python3 - "$name" "$dir/client.json" "$before" "$after" \
    "$(tail -n 1 "$dir/client_times.txt")" "$(cat "$dir/probe.txt")" \
    "${in0:-0}" "${out0:-0}" "${in1:-0}" "${out1:-0}" \
    "$((20 * (seconds - 3)))" <<'PY'
import json, re, sys
name, path, before, after, times, probe = sys.argv[1:7]
in0, out0, in1, out1, probe_chats = map(int, sys.argv[7:12])
c = json.load(open(path))
cpu = float(after) - float(before)
m = re.findall(r"(\d+)m([\d.]+)s", times)
client_cpu = sum(int(a) * 60 + float(b) for a, b in m)
delivered = c["packets_received"]
chats = c["packets_sent"] + probe_chats  # the probe's go over the broker too
p = dict(re.findall(r"(\w+) (\d+)", probe))
broker = (in1 - in0, out1 - out0)
print(f"| {name} | {c['received_per_second']:,.0f} | "
      f"{cpu / delivered * 1e6:.2f} ({cpu:.1f} s) | "
      f"{client_cpu / delivered * 1e6:.2f} | "
      f"{c['latency_us']['p50'] / 1000:.1f} / {c['latency_us']['p99'] / 1000:.1f} | "
      f"{int(p.get('p50_us', 0)) / 1000:.1f} / {int(p.get('p99_us', 0)) / 1000:.1f} | "
      f"{(broker[0] + broker[1]) / max(chats, 1):.2f} ({broker[0] / max(chats, 1):.2f} in, "
      f"{broker[1] / max(chats, 1):.2f} out) | {chats} |")
PY
}

echo "900 chatters in one room, $rate chats/s each, ${seconds} s, 64-byte chats"
echo
echo "| setup | deliveries/s | server CPU µs per delivery (total) | DummyClient CPU µs per delivery | own round trip p50/p99 ms | node-to-node probe p50/p99 ms | broker msgs per chat | chats |"
echo "|---|---|---|---|---|---|---|---|"
run "1 node × 900" 1
run "3 nodes × 300 + nats-server" 3
