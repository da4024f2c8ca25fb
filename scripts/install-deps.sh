#!/usr/bin/env bash
# Installs the Debian 12 packages gemma2 builds, tests and benchmarks with.
set -euo pipefail
packages=(
  build-essential cmake
  libeigen3-dev nlohmann-json3-dev libsentencepiece-dev  # the library itself
  libcli11-dev                       # the gemma2 CLI
  python3                            # the C ABI's ctypes test
  doctest-dev libbenchmark-dev       # tests and benchmarks
  clang libclang-rt-14-dev           # fuzz tests (libFuzzer)
  g++-aarch64-linux-gnu qemu-user    # AArch64 cross build, run under emulation
  g++-mingw-w64-x86-64-posix wine wine64  # Windows cross build, run under wine
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The AArch64 and Windows sentencepiece, in the project (not installed).
"$(dirname "$0")/aarch64-sysroot.sh"
"$(dirname "$0")/mingw-sysroot.sh"
