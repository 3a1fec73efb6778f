#!/usr/bin/env bash
# Installs every Debian package the project needs to build, run and test.
# Safe to run repeatedly; uses sudo only when not already root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libvulkan-dev libvulkan-volk-dev vulkan-tools
  glslang-tools glslang-dev spirv-tools
  vulkan-validationlayers mesa-vulkan-drivers
  libglfw3-dev doctest-dev
  libsentencepiece-dev sentencepiece
  nlohmann-json3-dev libpcre2-dev
  clang libclang-rt-14-dev          # libFuzzer targets
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
