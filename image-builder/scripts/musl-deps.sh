#!/usr/bin/env bash
# Builds the C parts the BESIP binaries link that Debian ships only for glibc
# (PCRE2 for libyang, libpcap for capture) as static musl libraries, from
# Debian's own source packages. x86_64: with musl-gcc (Debian's musl-tools).
# aarch64: Debian has no musl cross toolchain, so musl itself is built first
# from Debian's musl source with the aarch64 GNU cross compiler
# (gcc-aarch64-linux-gnu) and musl's own gcc wrapper (bin/musl-gcc, a specs
# file pointing that compiler at musl's headers, crt and libc) is installed
# under PREFIX. libyang and SQLite are compiled by their crates (bundled) with
# the same compiler.
# Usage: musl-deps.sh PREFIX [x86_64|aarch64]   (idempotent: skips what exists)
set -euo pipefail
prefix=$(realpath -m "${1:?usage: musl-deps.sh PREFIX [ARCH]}")
arch=${2:-x86_64}
[ -f "$prefix/lib/libpcap.a" ] && [ -f "$prefix/lib/libpcre2-8.a" ] && exit 0
command -v flex >/dev/null && command -v bison >/dev/null || { echo "musl-deps: libpcap needs flex and bison" >&2; exit 1; }
case "$arch" in
  x86_64)
    command -v musl-gcc >/dev/null || { echo "musl-deps: musl-gcc missing (apt-get install musl-tools)" >&2; exit 1; }
    cc=musl-gcc host=() sources=(pcre2 libpcap)
    kernel_headers=/usr/include asm_headers="/usr/include/$(gcc -dumpmachine)/asm" ;;
  aarch64)
    command -v aarch64-linux-gnu-gcc >/dev/null || { echo "musl-deps: aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }
    cc="$prefix/bin/musl-gcc" host=(--host=aarch64-linux-musl) sources=(pcre2 libpcap musl)
    kernel_headers=/usr/aarch64-linux-gnu/include asm_headers=/usr/aarch64-linux-gnu/include/asm ;;
  *) echo "musl-deps: unknown arch $arch" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A private apt source list, so the host's apt configuration is left alone.
mkdir -p lists/partial
echo "deb-src http://deb.debian.org/debian $(. /etc/os-release; echo "$VERSION_CODENAME") main" > src.list
apt_opts=(-o Dir::Etc::SourceList="$work/src.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" source --download-only "${sources[@]}" >/dev/null
jobs=$(nproc)
if [ "$arch" = aarch64 ] && [ ! -x "$cc" ]; then
  tar xzf musl_*.orig.tar.gz
  (cd musl-*/ && ./configure -q CROSS_COMPILE=aarch64-linux-gnu- CC=aarch64-linux-gnu-gcc CFLAGS=-Os \
    --target=aarch64-linux-musl --prefix="$prefix" --disable-shared --enable-wrapper=gcc \
    && make -s -j"$jobs" && make -s install) >/dev/null
fi
# musl's gcc wrapper sees only musl's headers; libpcap needs the kernel's (linux/, asm/).
mkdir -p "$prefix/kernel-include"
ln -sfn "$kernel_headers/linux" "$prefix/kernel-include/linux"
ln -sfn "$kernel_headers/asm-generic" "$prefix/kernel-include/asm-generic"
ln -sfn "$asm_headers" "$prefix/kernel-include/asm"
tar xzf pcre2_*.orig.tar.gz
(cd pcre2-*/ && ./configure -q CC="$cc" CFLAGS=-Os "${host[@]}" --prefix="$prefix" --disable-shared \
  --enable-static --disable-pcre2-16 --disable-pcre2-32 --disable-jit \
  && make -s -j"$jobs" && make -s install) >/dev/null
tar xzf libpcap_*.orig.tar.gz
(cd libpcap-*/ && ./configure -q CC="$cc" CFLAGS="-Os -isystem $prefix/kernel-include" "${host[@]}" \
  --with-pcap=linux --prefix="$prefix" --disable-shared \
  --without-libnl --disable-dbus --disable-rdma --disable-bluetooth --disable-usb \
  --disable-netmap --without-dag --without-septel --without-snf --without-turbocap \
  && make -s -j"$jobs" libpcap.a && make -s install) >/dev/null
# pcap.pc for the pcap crate's build script
mkdir -p "$prefix/lib/pkgconfig"
ver=$(cat libpcap-*/VERSION)
printf 'prefix=%s\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\nName: libpcap\nDescription: packet capture\nVersion: %s\nLibs: -L${libdir} -lpcap\nCflags: -I${includedir}\n' \
  "$prefix" "$ver" > "$prefix/lib/pkgconfig/libpcap.pc"
ls -la "$prefix/lib"/*.a
