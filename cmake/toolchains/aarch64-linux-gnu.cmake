# Cross-compiles for AArch64 Linux with Debian's g++-aarch64-linux-gnu, and
# runs the programs (ctest, doctest discovery) under qemu-user:
#   scripts/aarch64-sysroot.sh        # the AArch64 sentencepiece, once
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# Header-only dependencies (Eigen, nlohmann-json, doctest, CLI11) come from
# the host; the only AArch64 library needed, sentencepiece, from the
# project-local sysroot that scripts/aarch64-sysroot.sh unpacks (Debian's
# libsentencepiece-dev:arm64 is not co-installable with the native one).
# QEMU_CPU picks the emulated CPU: cortex-a53 (plain NEON), cortex-a76 (with
# the dot-product instructions), max (everything).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

get_filename_component(GEMMA2_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)
set(GEMMA2_AARCH64_SYSROOT ${GEMMA2_SOURCE_DIR}/.cache/aarch64-sysroot CACHE PATH
  "Folder holding the AArch64 sentencepiece (scripts/aarch64-sysroot.sh)")
if(NOT EXISTS ${GEMMA2_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu/libsentencepiece.so)
  message(FATAL_ERROR "no AArch64 sentencepiece in ${GEMMA2_AARCH64_SYSROOT}: run scripts/aarch64-sysroot.sh")
endif()
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu ${GEMMA2_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Headers and CMake packages: the architecture-independent ones of the host too.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

find_program(GEMMA2_QEMU_AARCH64 qemu-aarch64)
if(GEMMA2_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${GEMMA2_QEMU_AARCH64} -L /usr/aarch64-linux-gnu
    -E LD_LIBRARY_PATH=${GEMMA2_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu)
endif()
