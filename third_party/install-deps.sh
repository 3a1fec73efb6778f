#!/usr/bin/env bash
# Installs every Debian package the project needs to build, run and test.
# Safe to run repeatedly; uses sudo only when not already root.
set -euo pipefail

# The ARM64 cross build (tests/arm64/run.sh) uses arm64 multiarch packages.
arch_ok=1
dpkg --print-foreign-architectures | grep -qx arm64 || arch_ok=0

packages=(
  build-essential cmake ninja-build pkg-config git
  libvulkan-dev libvulkan-volk-dev vulkan-tools
  glslang-tools glslang-dev spirv-tools
  vulkan-validationlayers mesa-vulkan-drivers
  libglfw3-dev doctest-dev
  libsentencepiece-dev sentencepiece
  nlohmann-json3-dev libpcre2-dev
  libcpp-httplib-dev curl           # megrez-server, and its tests
  libimgui-dev libsqlite3-dev fonts-dejavu-core fonts-wqy-microhei   # megrez-chat
  xvfb xauth x11-utils xdotool xclip imagemagick sqlite3             # ... and its tests
  clang libclang-rt-14-dev          # libFuzzer targets
  default-jdk-headless              # the Android app's JNI bridge, tested on the desktop JVM
  crossbuild-essential-arm64 qemu-user-static                       # ARM64 build, run under qemu
  libvulkan-dev:arm64 libpcre2-dev:arm64 mesa-vulkan-drivers:arm64   # ... on the arm64 lavapipe
)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "$arch_ok" = 0 ]; then
  $SUDO dpkg --add-architecture arm64
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node and npm run the server's test clients (the official `openai` package, installed by
# tests/server/run.sh). A machine that has Node already (e.g. from NodeSource) keeps it.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-deps: installing nodejs npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
