#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz and runs each for a bounded
# time, starting from a seed corpus generated on the fly by megrez-fuzz-seeds.
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]  (default: every fuzz_*)
# Exit status is non-zero when any target finds a crash; its input is kept under
# build-fuzz/artifacts/ for reproduction (run the target binary on that file).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
build="$root/build-fuzz"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in "$root"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DMEGREZ_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target megrez-fuzz-seeds "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/bin/megrez-fuzz-seeds" "$work/seeds"
mkdir -p "$build/artifacts"

failed=()
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  if [ -d "$work/seeds/$t" ]; then cp "$work/seeds/$t"/* "$corpus/"; fi
  # Inputs that once crashed a target stay in its corpus for good.
  if [ -d "$root/tests/fuzz/regressions/$t" ]; then cp "$root/tests/fuzz/regressions/$t"/* "$corpus/"; fi
  # Text targets get inputs of hundreds of kB: depth and amplification bugs need them.
  max_len=()
  case "$t" in fuzz_config|fuzz_chat_template|fuzz_tokenizer) max_len=(-max_len=262144) ;; esac
  echo "== $t: ${seconds}s"
  # A fixed seed keeps CI reproducible (a finding fails every run, not one run in ten);
  # MEGREZ_FUZZ_SEED=0 lets libFuzzer pick a fresh one for exploratory runs.
  if ! "$build/bin/$t" -seed="${MEGREZ_FUZZ_SEED:-1}" -max_total_time="$seconds" "${max_len[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$t-" "$corpus" 2>"$work/$t.log"; then
    tail -n 40 "$work/$t.log"
    failed+=("$t")
  else
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$work/$t.log" || true
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $build/artifacts/)"
  exit 1
fi
echo "no crash in ${targets[*]} (${seconds}s each)"
