# Finds what the C ABI libraries need at a program's link time: threads, and
# the sentencepiece library for gemma2::c_static. No headers: a C program
# includes only gemma2/c_api.h. Used by the build tree (through
# gemma2Dependencies.cmake) and by the installed package's c component.
include(CMakeFindDependencyMacro)

# A dependency find_dependency cannot look for is missing: the package is
# not found, saying why, or in the build tree configuring stops. Returns
# from the file that calls it, as find_dependency does.
macro(gemma2_dependency_missing text)
  if(NOT CMAKE_FIND_PACKAGE_NAME)
    message(FATAL_ERROR "${text}")
  endif()
  set(${CMAKE_FIND_PACKAGE_NAME}_FOUND FALSE)
  set(${CMAKE_FIND_PACKAGE_NAME}_NOT_FOUND_MESSAGE "${text}")
  return()
endmacro()

find_dependency(Threads)

# sentencepiece (Debian libsentencepiece-dev) ships no CMake package.
if(NOT TARGET gemma2::sentencepiece_library)
  find_library(GEMMA2_SENTENCEPIECE_LIBRARY sentencepiece)
  if(NOT GEMMA2_SENTENCEPIECE_LIBRARY)
    gemma2_dependency_missing("sentencepiece library not found (Debian: libsentencepiece-dev; cross builds: the script named in the toolchain file)")
  endif()
  add_library(gemma2::sentencepiece_library UNKNOWN IMPORTED)
  set_target_properties(gemma2::sentencepiece_library PROPERTIES IMPORTED_LOCATION ${GEMMA2_SENTENCEPIECE_LIBRARY})
endif()
