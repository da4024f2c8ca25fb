# Finds the dependencies of the header-only library gemma2::gemma2. Used by
# the build tree and by the installed package's cxx component, so both
# resolve them the same way.
include(${CMAKE_CURRENT_LIST_DIR}/gemma2CDependencies.cmake)
if(CMAKE_FIND_PACKAGE_NAME AND DEFINED ${CMAKE_FIND_PACKAGE_NAME}_FOUND AND NOT ${CMAKE_FIND_PACKAGE_NAME}_FOUND)
  return()  # threads or the sentencepiece library are missing, as that file said
endif()
find_dependency(Eigen3 3.4 NO_MODULE)
find_dependency(nlohmann_json 3)

if(NOT TARGET gemma2::sentencepiece)
  find_path(GEMMA2_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
  if(NOT GEMMA2_SENTENCEPIECE_INCLUDE_DIR)
    gemma2_dependency_missing("sentencepiece headers not found (Debian: libsentencepiece-dev; cross builds: the script named in the toolchain file)")
  endif()
  add_library(gemma2::sentencepiece INTERFACE IMPORTED)
  set_target_properties(gemma2::sentencepiece PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES ${GEMMA2_SENTENCEPIECE_INCLUDE_DIR}
    INTERFACE_LINK_LIBRARIES gemma2::sentencepiece_library)
endif()
