#!/usr/bin/env bash
# Builds Debian's sentencepiece (source package 0.1.97-3, Debian's patches
# applied) as a static MinGW-w64 library in .cache/mingw-sysroot, for the
# Windows cross build (cmake/toolchains/mingw-w64-x86_64.cmake). Debian ships
# no Windows sentencepiece, so its source package is fetched with apt-get
# source through a private source list (the system's apt configuration is
# left as it is) and built with its bundled protobuf-lite.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/.cache/mingw-sysroot
[ -e "$root/lib/libsentencepiece.a" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
echo 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main' \
  > "$work/sources.list"
apt_src=(-q -o APT::Sandbox::User=root -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
apt-get "${apt_src[@]}" update > /dev/null
(cd "$work" && apt-get "${apt_src[@]}" source --download-only sentencepiece=0.1.97-3 > /dev/null)
src=$work/sentencepiece-0.1.97
tar xzf "$work"/sentencepiece_0.1.97.orig.tar.gz -C "$work"
tar xJf "$work"/sentencepiece_0.1.97-3.debian.tar.xz -C "$src"
# Debian's patches, except the one that drops the static library (a
# -static Windows program needs it).
grep -v -e '^#' -e '^disable-static-library.patch$' "$src/debian/patches/series" | while read -r p; do
  patch -d "$src" -p1 -s < "$src/debian/patches/$p"
done
# Quiet (its bundled protobuf warns at length); the log is shown on failure.
build() { "$@" >> "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; exit 1; }; }
build cmake -S "$src" -B "$work/build" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchains/mingw-w64-x86_64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$root" \
  -DSPM_ENABLE_SHARED=OFF -DSPM_ENABLE_TCMALLOC=OFF -DSPM_USE_BUILTIN_PROTOBUF=ON
build cmake --build "$work/build" -j2 --target sentencepiece-static
mkdir -p "$root/lib" "$root/include"
cp "$work/build/src/libsentencepiece.a" "$root/lib/"
cp "$src/src/sentencepiece_processor.h" "$root/include/"
echo "MinGW-w64 sentencepiece in $root"
