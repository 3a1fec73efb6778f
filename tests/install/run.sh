#!/usr/bin/env bash
# tests/install/run.sh BUILD_DIR MODEL_DIR: installs BUILD_DIR into a temporary prefix, checks
# that the installed megrez-run finds the installed tiny model by itself, then builds the outside
# program in consumer/ against it twice, with find_package(megrez) and with pkg-config, shared
# and static, C and C++, and checks that every build prints the same text.
set -euo pipefail
build="$(cd "$1" && pwd)"
model="$(cd "$2" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/megrez.h include/megrez/runtime/engine/engine.h lib/libmegrez.a lib/pkgconfig/megrez.pc \
         lib/cmake/megrez/megrezConfig.cmake bin/megrez-run; do
  [ -e "$prefix/$f" ] || { echo "install: $f missing"; exit 1; }
done
soname="$(readelf -d "$prefix"/lib/libmegrez.so.* | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p' | head -1)"
[ "$soname" = "libmegrez.so.0" ] || { echo "install: SONAME is '$soname'"; exit 1; }
[ -L "$prefix/lib/libmegrez.so" ] || { echo "install: no libmegrez.so link"; exit 1; }
# Only the API is exported (api/megrez.map): the C API, and nothing of volk (vk* pointers).
nm -D --defined-only "$prefix/lib/libmegrez.so" | awk '$3 != "" {sub(/@.*/, "", $3); print $3}' >"$work/exports"
grep -qx 'megrez_session_chat' "$work/exports" || { echo "install: megrez_session_chat not exported"; exit 1; }
if grep -E '^(vk|volk)' "$work/exports" >"$work/foreign"; then
  echo "install: libmegrez.so exports volk's symbols:"; head -3 "$work/foreign"; exit 1
fi

# 0. the installed apps find the installed tiny model by themselves (not the source tree's)
cli="$(cd / && "$prefix/bin/megrez-run" --chat --prompt "Who is God?" -n 4 </dev/null 2>&1)"
case "$cli" in *"chat with $prefix/share/megrez/models/megrez2-tiny on "*) ;;
  *) echo "installed megrez-run did not run the installed model: $cli"; exit 1 ;; esac

# 1. find_package(megrez)
cmake -S "$here/consumer" -B "$work/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
# 2. pkg-config (the library found through LD_LIBRARY_PATH, as from a system prefix)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion megrez)" = "$(sed -n 's/#define MEGREZ_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/megrez.h")" ]
# shellcheck disable=SC2046
cc -std=c11 "$here/consumer/consumer.c" $(pkg-config --cflags --libs megrez) -o "$work/pc-c"
# shellcheck disable=SC2046
c++ -std=c++20 "$here/consumer/consumer.cpp" $(pkg-config --cflags --libs megrez) -o "$work/pc-cxx"

expected="$("$work/cmake/consumer-c" "$model")"
[ -n "$expected" ] || { echo "consumer-c printed nothing"; exit 1; }
check() {
  local name="$1"; shift
  local got
  got="$("$@")"
  if [ "$got" != "$expected" ]; then
    printf '%s printed [%s], consumer-c [%s]\n' "$name" "$got" "$expected"
    exit 1
  fi
}
check consumer-c-static "$work/cmake/consumer-c-static" "$model"
check consumer-cxx "$work/cmake/consumer-cxx" "$model"
check pkg-config-c env LD_LIBRARY_PATH="$prefix/lib" "$work/pc-c" "$model"
check pkg-config-cxx env LD_LIBRARY_PATH="$prefix/lib" "$work/pc-cxx" "$model"
# (ldd into a file: grep -q closing the pipe early would fail the pipeline under pipefail)
LD_LIBRARY_PATH="$prefix/lib" ldd "$work/pc-c" >"$work/ldd-pc-c"
grep -q "$prefix/lib/libmegrez.so.0" "$work/ldd-pc-c" || { echo "pc-c does not use the installed library"; exit 1; }
ldd "$work/cmake/consumer-c-static" >"$work/ldd-static"
if grep -q libmegrez "$work/ldd-static"; then echo "consumer-c-static links libmegrez.so"; exit 1; fi
echo "install: 5 outside builds print: $expected"
