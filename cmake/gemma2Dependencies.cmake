# Finds gemma2's dependencies. Used by the build tree and by the installed
# gemma2Config.cmake, so both resolve them the same way.
include(CMakeFindDependencyMacro)
find_dependency(Eigen3 3.4 NO_MODULE)
find_dependency(nlohmann_json 3)
find_dependency(Threads)

# sentencepiece (Debian libsentencepiece-dev) ships no CMake package.
if(NOT TARGET gemma2::sentencepiece)
  find_path(GEMMA2_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
  find_library(GEMMA2_SENTENCEPIECE_LIBRARY sentencepiece)
  if(NOT GEMMA2_SENTENCEPIECE_INCLUDE_DIR OR NOT GEMMA2_SENTENCEPIECE_LIBRARY)
    set(${CMAKE_FIND_PACKAGE_NAME}_FOUND FALSE)
    set(${CMAKE_FIND_PACKAGE_NAME}_NOT_FOUND_MESSAGE "sentencepiece not found (Debian: libsentencepiece-dev; cross builds: the script named in the toolchain file)")
    if(NOT CMAKE_FIND_PACKAGE_NAME)
      message(FATAL_ERROR "sentencepiece not found (Debian: libsentencepiece-dev; cross builds: the script named in the toolchain file)")
    endif()
    return()
  endif()
  add_library(gemma2::sentencepiece UNKNOWN IMPORTED)
  set_target_properties(gemma2::sentencepiece PROPERTIES
    IMPORTED_LOCATION ${GEMMA2_SENTENCEPIECE_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${GEMMA2_SENTENCEPIECE_INCLUDE_DIR})
endif()
