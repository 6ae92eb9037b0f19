#!/usr/bin/env bash
# The cluster demo (docs/CLUSTER.md): builds GameServer and DummyClient
# (release preset), starts nats-server on a free loopback port and three
# GameServer nodes against it (--cluster, --node-id 1..3), then DummyClient
# spreads its sessions over the three nodes (--hosts): 300 players moving in
# rooms of 50 and 300 chatters in rooms of 100, every room spanning all three
# nodes, for DURATION seconds (default 15). Each node prints its stats every
# second, the [cluster] line among them (broker messages in/out, dropped,
# reconnects, nodes, remote members per room). Everything stops by itself;
# exits 0 only if the DummyClients and the nodes did.
#
#   scripts/cluster.sh          # 15 s
#   scripts/cluster.sh 30       # 30 s
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

duration="${1:-15}"
ensure_packages
build_preset release GameServer DummyClient >/dev/null
bin=build/release/apps

dir="$(mktemp -d)"
CLEANUP_DIR="$dir"
trap cleanup_at_exit EXIT

start_nats "$dir/nats.log"
nats=$NATS_PID
nats_port=$NATS_PORT
echo "nats-server on 127.0.0.1:$nats_port"

nodes=()
hosts=""
for id in 1 2 3; do
  : >"$dir/node$id.log"  # before listening_port reads it
  "$bin/GameServer" --host 127.0.0.1 --port 0 --threads 1 --stats-interval 1 \
    --cluster "nats://127.0.0.1:$nats_port" --node-id "$id" \
    >"$dir/node$id.log" 2>&1 &
  nodes+=($!)
  kill_at_exit $!
  port=$(listening_port "$dir/node$id.log")
  hosts+="${hosts:+,}127.0.0.1:$port"
  tail -n +1 -f "$dir/node$id.log" --pid "${nodes[-1]}" |
    sed -u "s/^/[node $id] /" &
done
echo "nodes: $hosts"

client_status=0
"$bin/DummyClient" --hosts "$hosts" --sessions 300 --mode move \
  --room-size 50 --rate 10 --duration "$duration" |
  sed -u 's/^/[DummyClient move] /' &
movers=$!
"$bin/DummyClient" --hosts "$hosts" --sessions 300 --mode chat \
  --first-room 1001 --room-size 100 --rate 2 --payload 64 \
  --duration "$duration" |
  sed -u 's/^/[DummyClient chat] /' || client_status=$?
wait "$movers" || client_status=$?

node_status=0
for pid in "${nodes[@]}"; do kill -TERM "$pid"; done
for pid in "${nodes[@]}"; do wait "$pid" || node_status=$?; done
kill "$nats" 2>/dev/null || true
wait "$nats" 2>/dev/null || true
sleep 0.2
echo "DummyClient exit $client_status, GameServer nodes exit $node_status"
[ "$client_status" -eq 0 ] && [ "$node_status" -eq 0 ]
