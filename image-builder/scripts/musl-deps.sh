#!/usr/bin/env bash
# Builds the two C libraries the BESIP binaries link that Debian ships only for
# glibc (PCRE2 for libyang, libpcap for capture) as static musl libraries,
# from Debian's own source packages, with musl-gcc (Debian package musl-tools).
# libyang itself and SQLite are compiled by their crates (bundled) with the
# same compiler. Usage: musl-deps.sh PREFIX   (idempotent: skips what exists)
set -euo pipefail
prefix=$(realpath -m "${1:?usage: musl-deps.sh PREFIX}")
[ -f "$prefix/lib/libpcap.a" ] && [ -f "$prefix/lib/libpcre2-8.a" ] && exit 0
command -v flex >/dev/null && command -v bison >/dev/null || { echo "musl-deps: libpcap needs flex and bison" >&2; exit 1; }
command -v musl-gcc >/dev/null || { echo "musl-deps: musl-gcc missing (apt-get install musl-tools)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# A private apt source list, so the host's apt configuration is left alone.
mkdir -p lists/partial
echo "deb-src http://deb.debian.org/debian $(. /etc/os-release; echo "$VERSION_CODENAME") main" > src.list
apt_opts=(-o Dir::Etc::SourceList="$work/src.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq
apt-get "${apt_opts[@]}" source --download-only pcre2 libpcap >/dev/null
jobs=$(nproc)
# musl-gcc sees only musl's headers; libpcap needs the kernel's (linux/, asm/).
mkdir -p "$prefix/kernel-include"
ln -sfn /usr/include/linux "$prefix/kernel-include/linux"
ln -sfn /usr/include/asm-generic "$prefix/kernel-include/asm-generic"
ln -sfn "/usr/include/$(gcc -dumpmachine)/asm" "$prefix/kernel-include/asm"
tar xzf pcre2_*.orig.tar.gz
(cd pcre2-*/ && ./configure -q CC=musl-gcc CFLAGS=-Os --prefix="$prefix" --disable-shared \
  --enable-static --disable-pcre2-16 --disable-pcre2-32 --disable-jit \
  && make -s -j"$jobs" && make -s install) >/dev/null
tar xzf libpcap_*.orig.tar.gz
(cd libpcap-*/ && ./configure -q CC=musl-gcc CFLAGS="-Os -isystem $prefix/kernel-include" --prefix="$prefix" --disable-shared \
  --without-libnl --disable-dbus --disable-rdma --disable-bluetooth --disable-usb \
  --disable-netmap --without-dag --without-septel --without-snf --without-turbocap \
  && make -s -j"$jobs" libpcap.a && make -s install) >/dev/null
# pcap.pc for the pcap crate's build script
mkdir -p "$prefix/lib/pkgconfig"
ver=$(cat libpcap-*/VERSION)
printf 'prefix=%s\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\nName: libpcap\nDescription: packet capture\nVersion: %s\nLibs: -L${libdir} -lpcap\nCflags: -I${includedir}\n' \
  "$prefix" "$ver" > "$prefix/lib/pkgconfig/libpcap.pc"
ls -la "$prefix/lib"/*.a
