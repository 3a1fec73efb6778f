#!/usr/bin/env bash
# The one test command (README, .ci/run): install dependencies, build from scratch in
# build/, run every CTest suite (GPU suites under the validation layer on the default
# Vulkan device, lavapipe where there is no GPU), then each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

bash third_party/install-deps.sh
cmake -S . -B build -G Ninja -DMEGREZ_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 1500

# The loader suite again under AddressSanitizer + UndefinedBehaviorSanitizer (every parser of
# untrusted files; the fuzz targets below are sanitized too). -DMEGREZ_SANITIZE=ON builds the
# GPU suites the same way; they take too long under ASan for every CI run.
cmake -S . -B build-asan -G Ninja -DMEGREZ_SANITIZE=ON -DMEGREZ_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target test-loader
build-asan/bin/test-loader

if [ -x tests/fuzz/run_fuzzers.sh ] || [ -f tests/fuzz/run_fuzzers.sh ]; then
  bash tests/fuzz/run_fuzzers.sh
fi
