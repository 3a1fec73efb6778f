#!/usr/bin/env bash
# The one test command (README, .ci/run): install dependencies, build from scratch in
# build/, run every CTest suite (GPU suites under the validation layer on the default
# Vulkan device, lavapipe where there is no GPU; the C API, install and JNI tests), the loader
# suite under ASan, the ARM64 build under qemu, then each fuzz target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

bash third_party/install-deps.sh
# The arm64 Mesa installed for the ARM64 run puts arm64 ICD files beside the host's: point
# the Vulkan loader at the host's (a real GPU's included) so it has nothing to complain about.
source tests/host-vulkan-drivers.sh
cmake -S . -B build -G Ninja -DMEGREZ_WERROR=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 1500

# The loader suite again under AddressSanitizer + UndefinedBehaviorSanitizer (every parser of
# untrusted files; the fuzz targets below are sanitized too). -DMEGREZ_SANITIZE=ON builds the
# GPU suites the same way; they take too long under ASan for every CI run.
cmake -S . -B build-asan -G Ninja -DMEGREZ_SANITIZE=ON -DMEGREZ_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target test-loader
build-asan/bin/test-loader

# ARM64: cross build, then megrez-run and the C API test under qemu on the arm64 lavapipe.
bash tests/arm64/run.sh build-arm64

if [ -x tests/fuzz/run_fuzzers.sh ] || [ -f tests/fuzz/run_fuzzers.sh ]; then
  bash tests/fuzz/run_fuzzers.sh
fi
