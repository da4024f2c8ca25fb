#!/usr/bin/env bash
# Unpacks Debian's AArch64 sentencepiece into .cache/aarch64-sysroot for the
# cross build (cmake/toolchains/aarch64-linux-gnu.cmake). apt-get download +
# dpkg -x, not an arm64 install: libsentencepiece-dev:arm64 is not
# co-installable with the native package and would replace it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=.cache/aarch64-sysroot
[ -e "$root/usr/lib/aarch64-linux-gnu/libsentencepiece.so" ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download libsentencepiece-dev:arm64 libsentencepiece0:arm64)
mkdir -p "$root"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$root"; done
echo "AArch64 sentencepiece in $root"
