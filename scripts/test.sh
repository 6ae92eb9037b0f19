#!/usr/bin/env bash
# Every test: builds and runs the unit and integration tests in the release
# preset, again under ASan+UBSan (then the chaos run, scripts/chaos.sh, on
# each backend) and under TSan, then runs each libFuzzer target for a
# bounded time, and builds and runs examples/ against the installed package
# (scripts/examples.sh). CI runs exactly this (.ci/run).
#
#   scripts/test.sh            # everything (what CI runs)
#   scripts/test.sh --quick    # release preset and examples, for the edit-test loop
#
# FUZZ_SECONDS (default 60) bounds each fuzzer, CHAOS_SECONDS (default 60)
# each chaos run, SERVERCORE_TEST_JOBS (default three per core) how many
# tests ctest runs at once: most of them wait on sockets and timers, not
# on a core. Each stage's heading says when it started; the end lists the
# stages' times, the name of every check that failed (CI shows only the
# tail of a log) and one line "summary: N passed, N failed".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$SERVERCORE_ROOT"

quick=0
[ "${1:-}" = "--quick" ] && quick=1
fuzz_seconds="${FUZZ_SECONDS:-60}"
chaos_seconds="${CHAOS_SECONDS:-60}"
test_jobs="${SERVERCORE_TEST_JOBS:-$((3 * $(nproc)))}"
passed=0
failed=0
failures=()
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
stages=()      # "NAME START_SECONDS", in order
SECONDS=0

# stage NAME: prints the heading of a stage and notes when it started.
stage() {
  stages+=("$1 $SECONDS")
  printf '== %s == (at %d:%02d)\n' "$1" $((SECONDS / 60)) $((SECONDS % 60))
}

# stage_times: how long each stage took, for the end of the log.
stage_times() {
  local i name start next
  for i in "${!stages[@]}"; do
    name="${stages[$i]% *}"
    start="${stages[$i]##* }"
    next=$SECONDS
    [ $((i + 1)) -lt ${#stages[@]} ] && next="${stages[$((i + 1))]##* }"
    printf 'time: %-40s %4d s\n' "$name" $((next - start))
  done
  printf 'time: %-40s %4d s\n' "total" "$SECONDS"
}

# run_ctest PRESET: build it, run its tests, add up what ctest reports.
run_ctest() {
  local preset="$1" status=0
  stage "$preset: build"
  build_preset "$preset"
  stage "$preset: test"
  ctest --preset "$preset" -j "$test_jobs" 2>&1 | tee "$log" || status=$?
  local line total bad
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of" "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "error: ctest ($preset) ran no test" >&2
    failed=$((failed + 1))
    failures+=("$preset: ran no test")
    return
  fi
  bad=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
  # ctest lists them after "The following tests FAILED:" as "  N - NAME (Failed)".
  local name
  while IFS= read -r name; do
    failures+=("$preset: $name")
  done < <(sed -n '/^The following tests FAILED:/,$ { s/  # GetParam() = .* (/ (/; s/^[[:space:]]*[0-9]\+ - //p }' "$log")
  if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
    failed=$((failed + 1))
    failures+=("$preset: ctest exited $status")
  fi
}

# run_fuzzers: each target under tests/fuzz for FUZZ_SECONDS from an empty
# corpus, plus its seeds in tests/fuzz/corpus/TARGET when it has some; a
# crash, leak or timeout is a failure. libFuzzer runs on one core, so the
# targets run side by side: each still gets a core for FUZZ_SECONDS on 2.
run_fuzzers() {
  stage "fuzz: build"
  build_preset fuzz
  local fuzzer corpus seeds i names=() pids=() logs=() corpora=()
  stage "fuzz: run, side by side"
  for fuzzer in build/fuzz/tests/fuzz/*_fuzz; do
    [ -x "$fuzzer" ] || continue
    corpus="$(mktemp -d)"
    seeds="tests/fuzz/corpus/$(basename "$fuzzer")"
    [ -d "$seeds" ] || seeds=""
    echo "== fuzz: $(basename "$fuzzer") for ${fuzz_seconds}s =="
    names+=("$(basename "$fuzzer")")
    logs+=("$(mktemp)")
    corpora+=("$corpus")
    "$fuzzer" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "$corpus" ${seeds:+"$seeds"} >"${logs[-1]}" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    echo "== fuzz: ${names[$i]} =="
    if wait "${pids[$i]}"; then
      passed=$((passed + 1))
      grep -E "^(stat::number_of_executed_units|Done)" "${logs[$i]}" || true
    else
      failed=$((failed + 1))
      failures+=("fuzz: ${names[$i]}")
      tail -n 60 "${logs[$i]}"
    fi
    rm -rf "${corpora[$i]}" "${logs[$i]}"
  done
}

# run_chaos BACKEND: scripts/chaos.sh under ASan+UBSan for CHAOS_SECONDS on
# one backend (attackers and verifying DummyClients against one GameServer);
# one check, passed or failed; io_uring refused by the kernel is a skip.
run_chaos() {
  local backend="$1" status=0
  stage "chaos: asan, $backend, ${chaos_seconds}s"
  CHAOS_PRESET=asan CHAOS_BACKEND="$backend" CHAOS_SECONDS="$chaos_seconds" \
    scripts/chaos.sh 2>&1 | tee "$log" || status=$?
  if grep -q "^chaos: SKIP$" "$log"; then
    return
  fi
  if [ "$status" -eq 0 ] && grep -q "^chaos: PASS$" "$log"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("chaos: $backend")
  fi
}

# run_examples: installs the library into a temporary prefix and builds and
# runs examples/ from it (scripts/examples.sh); adds up the checks it reports.
run_examples() {
  local status=0 line bad
  stage "examples: the installed package"
  scripts/examples.sh "$SERVERCORE_ROOT" 2>&1 | tee "$log" || status=$?
  line=$(grep -E "^examples: [0-9]+ passed, [0-9]+ failed$" "$log" | tail -n 1 || true)
  if [ -z "$line" ]; then
    echo "error: scripts/examples.sh reported no result" >&2
    failed=$((failed + 1))
    failures+=("examples: reported no result")
    return
  fi
  bad=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
  passed=$((passed + $(sed -E 's/^examples: ([0-9]+) passed.*/\1/' <<<"$line")))
  failed=$((failed + bad))
  [ "$bad" -eq 0 ] || failures+=("examples: $bad failed (see above)")
  if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
    failed=$((failed + 1))
    failures+=("examples: exited $status")
  fi
}

stage "packages"
ensure_packages
run_ctest release
run_examples
if [ "$quick" -eq 0 ]; then
  run_ctest asan
  run_chaos epoll
  run_chaos uring
  run_ctest tsan
  run_fuzzers
fi

stage_times
for name in "${failures[@]}"; do
  echo "FAILED $name"
done
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
