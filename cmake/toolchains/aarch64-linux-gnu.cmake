# ARM64 Linux cross build with Debian's crossbuild-essential-arm64 and the arm64 multiarch
# packages (libvulkan-dev:arm64, libpcre2-dev:arm64, mesa-vulkan-drivers:arm64). Tools that
# run at build time (glslangValidator, spirv-val) are the host's. Used by tests/arm64/run.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# pkg-config answers for arm64: only the multiarch .pc files.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
