#!/usr/bin/env bash
# The end-to-end benchmark (issue: performance against a Boost.Asio peer):
# builds the release preset with the Asio peer and the allocation counter,
# then runs bench/scenarios.py, which prints the table and writes
# docs/bench/{results.md,results.json,room_size.png}. About 35 minutes with
# the defaults; `scripts/bench.sh --quick` takes about 3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

SERVERCORE_PACKAGES+=(libboost-dev gnuplot-nox python3 util-linux)
ensure_packages
build_preset release GameServer DummyClient asio_game_server epoll_echo_server \
  uring_echo_server neutral_load alloc_count >/dev/null
exec python3 bench/scenarios.py "$@"
