#!/usr/bin/env bash
# ARM64 Linux: cross-compiles the library, megrez-run and the C API test here (Debian's
# crossbuild-essential-arm64 + arm64 multiarch packages, third_party/install-deps.sh), then runs
# them under qemu-aarch64 on Mesa's arm64 lavapipe: a short megrez-run on the tiny model and
# test-capi. Built without libsentencepiece, as for Android: the tiny model's tokenizer goes
# through the native SentencePiece BPE encoder, and the text must equal the native build's.
#   tests/arm64/run.sh [BUILD_DIR]     (default build-arm64)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/build-arm64}"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchains/aarch64-linux-gnu.cmake" \
      -DMEGREZ_WITH_SENTENCEPIECE=OFF -DMEGREZ_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" >/dev/null
# (-O2 as the native build: GCC 12 at -O3 reports false stringop-overflows in std::vector)
cmake --build "$build" -j"$(nproc)" --target megrez-run test-capi megrez-info
file "$build/bin/megrez-run" | grep -q "ARM aarch64" || { echo "not an arm64 binary"; exit 1; }

# Every arm64 library from multiarch (/lib/ld-linux-aarch64.so.1, libc, libstdc++, libvulkan,
# Mesa, pcre2), only the arm64 lavapipe ICD. Not
# QEMU_LD_PREFIX=/usr/aarch64-linux-gnu: that loader is the cross toolchain's glibc build,
# and paired with the multiarch libc that Mesa pulls in, pthread_create loops forever.
source "$root/tests/host-vulkan-drivers.sh"
host_drivers="${VK_DRIVER_FILES:-}"  # for the native comparison run below
unset QEMU_LD_PREFIX
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.aarch64.json
export MEGREZ_PIPELINE_CACHE=off
emu="qemu-aarch64-static"

echo "== arm64 Vulkan devices"
$emu "$build/bin/megrez-info" --list-devices
echo "== megrez-run: an f16 KV cache is refused with the device limitation named"
if $emu "$build/bin/megrez-run" --model "$root/models/megrez2-tiny" --ctx 64 --prompt "In the" -n 2 2>"$build/f16.err"; then
  echo "arm64 lavapipe accepted an f16 KV cache"; exit 1
fi
cat "$build/f16.err"
grep -q "cannot compile f16 conversions" "$build/f16.err" || { echo "no device-limitation message"; exit 1; }
echo "== megrez-run: bf16 weights, f32 KV cache"
out="$($emu "$build/bin/megrez-run" --model "$root/models/megrez2-tiny" --ctx 64 --kv f32 --prompt "In the beginning" -n 8 2>/dev/null)"
echo "$out"
native="$root/build/bin/megrez-run"
if [ -x "$native" ]; then  # the same greedy text as the native build (lavapipe, f32 KV)
  native_env=(env -u VK_DRIVER_FILES -u LD_LIBRARY_PATH)
  [ -z "$host_drivers" ] || native_env+=(VK_DRIVER_FILES="$host_drivers")
  expected="$("${native_env[@]}" "$native" --model "$root/models/megrez2-tiny" --ctx 64 --kv f32 --prompt "In the beginning" -n 8 2>/dev/null)"
  [ "$out" = "$expected" ] || { echo "arm64 [$out] differs from native [$expected]"; exit 1; }
fi
case "$out" in "In the beginning"?*) ;; *) echo "arm64 megrez-run printed no continuation"; exit 1 ;; esac
echo "== test-capi"
$emu "$build/bin/test-capi" "$root/models/megrez2-tiny" "$emu $build/bin/megrez-run"
