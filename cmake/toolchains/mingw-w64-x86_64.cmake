# Cross-compiles for 64-bit Windows with Debian's MinGW-w64 (POSIX threads
# flavour, g++-mingw-w64-x86-64-posix), and runs the programs (ctest, doctest
# discovery) under wine:
#   scripts/mingw-sysroot.sh          # the Windows sentencepiece, once
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
# Programs link -static (libstdc++, winpthreads and sentencepiece inside the
# .exe), so they run anywhere without MinGW's DLLs beside them. Header-only
# dependencies (Eigen, nlohmann-json, doctest, CLI11) come from the host; the
# one compiled library, sentencepiece, from .cache/mingw-sysroot.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)
# The host's /usr/include holds the header-only dependencies but also glibc's
# headers, which must never shadow MinGW's: it is searched last (-idirafter)
# and never passed as -I (the dependencies' CMake packages name it).
set(CMAKE_C_FLAGS_INIT "-idirafter /usr/include")
set(CMAKE_CXX_FLAGS_INIT "-idirafter /usr/include")
set(CMAKE_C_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
set(CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES /usr/include)
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc -static-libstdc++ -Wl,-Bstatic,--whole-archive -lwinpthread -Wl,--no-whole-archive")

get_filename_component(GEMMA2_SOURCE_DIR ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)
set(GEMMA2_MINGW_SYSROOT ${GEMMA2_SOURCE_DIR}/.cache/mingw-sysroot CACHE PATH
  "Folder holding the MinGW-w64 sentencepiece (scripts/mingw-sysroot.sh)")
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32 ${GEMMA2_MINGW_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
# Headers and CMake packages: the architecture-independent ones of the host too.
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# wine keeps its Windows installation (created on first use, in seconds) in
# the build tree unless WINEPREFIX says otherwise, and is quiet unless
# WINEDEBUG says otherwise.
find_program(GEMMA2_WINE wine)
if(GEMMA2_WINE)
  set(wine_env "")
  if(NOT DEFINED ENV{WINEPREFIX})
    list(APPEND wine_env WINEPREFIX=${CMAKE_BINARY_DIR}/wineprefix)
  endif()
  if(NOT DEFINED ENV{WINEDEBUG})
    list(APPEND wine_env WINEDEBUG=-all)
  endif()
  set(CMAKE_CROSSCOMPILING_EMULATOR ${CMAKE_COMMAND} -E env ${wine_env} ${GEMMA2_WINE})
endif()
