#!/usr/bin/env bash
# Builds the multi-call binary `besip-box` static for musl with the size
# profile. Usage: build-musl.sh [x86_64|aarch64]   → prints the binary's path.
# C parts: musl-gcc (musl-tools) for x86_64; for aarch64 the GNU cross
# compiler (gcc-aarch64-linux-gnu) behind musl's own gcc wrapper, which
# musl-deps.sh builds with musl from Debian's source; PCRE2 and libpcap from
# musl-deps.sh under target/musl-deps/<arch>.
set -euo pipefail
arch=${1:-x86_64}
root=$(cd "$(dirname "$0")/../.." && pwd)
target="$arch-unknown-linux-musl"
deps="$root/target/musl-deps/$arch"
"$root/image-builder/scripts/musl-deps.sh" "$deps" "$arch" >&2
rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
triple=${target//-/_}
case "$arch" in
  x86_64) cc=musl-gcc; cmake_system= cflags= ;;
  aarch64)
    cc="$deps/bin/musl-gcc"
    # Debian's cross gcc calls libgcc's outline atomics, which Rust's link leaves out.
    cflags=-mno-outline-atomics
    # Rust links with its own musl crt objects; the GNU cross driver only links.
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc
    export "AR_$triple=aarch64-linux-gnu-ar" "RANLIB_$triple=aarch64-linux-gnu-ranlib"
    cmake_system='set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR aarch64)\nset(CMAKE_AR aarch64-linux-gnu-ar CACHE FILEPATH "" FORCE)\n' ;;
  *) echo "build-musl: unknown arch $arch" >&2; exit 1 ;;
esac
export "CC_$triple=$cc"
export "CFLAGS_$triple=-Os $cflags -isystem $deps/include -isystem $deps/kernel-include"
# No global CMAKE_PREFIX_PATH: a build script of the host (core's typed-model
# generator links libyang too) would take the target's PCRE2.
# libyang's CMake would otherwise take glibc's /usr/include/pcre2.h (and with it
# every glibc header): point it at the musl PCRE2.
toolchain="$deps/toolchain.cmake"
printf "$cmake_system"'set(CMAKE_C_COMPILER "%s")\nset(CMAKE_PREFIX_PATH "%s")\nset(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)\nset(ENABLE_TOOLS OFF CACHE BOOL "" FORCE)\nset(PCRE2_INCLUDE_DIR "%s/include" CACHE PATH "" FORCE)\nset(PCRE2_LIBRARY "%s/lib/libpcre2-8.a" CACHE FILEPATH "" FORCE)\n' "$cc" "$deps" "$deps" "$deps" >"$toolchain"
export "CMAKE_TOOLCHAIN_FILE_$triple=$toolchain"
export "CXX_$triple=$cc"
# pkg-config for the target only: host build scripts keep the host's libraries.
export "PKG_CONFIG_ALLOW_CROSS_$triple=1" "PKG_CONFIG_ALL_STATIC_$triple=1"
export "PKG_CONFIG_LIBDIR_$triple=$deps/lib/pkgconfig"
export LIBPCAP_LIBDIR="$deps/lib" LIBPCAP_VER=1.10.3
export RUSTFLAGS="-C target-feature=+crt-static -L native=$deps/lib"
cd "$root"
cargo build --profile size --target "$target" -p besip-box >&2
echo "$root/target/$target/size/besip-box"
