#!/usr/bin/env bash
# The main job. Until GameServer and DummyClient exist it builds the release
# preset and runs the send-buffer benchmarks (pooled SendBuffer against the
# make_shared design before pooling), then stops by itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

ensure_packages
build_preset release send_buffer_bench
echo
echo "== send-buffer benchmarks (pooled vs make_shared; allocs/msg counted) =="
exec build/release/bench/send_buffer_bench --benchmark_min_time=0.5 "$@"
