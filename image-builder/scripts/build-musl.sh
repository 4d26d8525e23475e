#!/usr/bin/env bash
# Builds the multi-call binary `besip-box` static for musl with the size
# profile. Usage: build-musl.sh [x86_64|aarch64]   → prints the binary's path.
# C parts: musl-gcc (musl-tools) for x86_64; PCRE2 and libpcap from
# musl-deps.sh under target/musl-deps/<arch>.
set -euo pipefail
arch=${1:-x86_64}
root=$(cd "$(dirname "$0")/../.." && pwd)
target="$arch-unknown-linux-musl"
deps="$root/target/musl-deps/$arch"
[ "$arch" = x86_64 ] || { echo "build-musl: only x86_64 has a C cross compiler here (aarch64: see notes)" >&2; exit 1; }
"$root/image-builder/scripts/musl-deps.sh" "$deps" >&2
rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
triple=${target//-/_}
export "CC_$triple=musl-gcc"
export "CFLAGS_$triple=-Os -isystem $deps/include -isystem $deps/kernel-include"
export CMAKE_PREFIX_PATH="$deps"
# libyang's CMake would otherwise take glibc's /usr/include/pcre2.h (and with it
# every glibc header): point it at the musl PCRE2.
toolchain="$deps/toolchain.cmake"
printf 'set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)\nset(ENABLE_TOOLS OFF CACHE BOOL "" FORCE)\nset(PCRE2_INCLUDE_DIR "%s/include" CACHE PATH "" FORCE)\nset(PCRE2_LIBRARY "%s/lib/libpcre2-8.a" CACHE FILEPATH "" FORCE)\n' "$deps" "$deps" >"$toolchain"
export "CMAKE_TOOLCHAIN_FILE_$triple=$toolchain"
export "CXX_$triple=musl-gcc"
export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_ALL_STATIC=1
export PKG_CONFIG_LIBDIR="$deps/lib/pkgconfig"
export LIBPCAP_LIBDIR="$deps/lib" LIBPCAP_VER=1.10.3
export RUSTFLAGS="-C target-feature=+crt-static -L native=$deps/lib"
cd "$root"
cargo build --profile size --target "$target" -p besip-box >&2
echo "$root/target/$target/size/besip-box"
