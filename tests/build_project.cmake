# ctest driver (fixtures fuzz_build, aarch64_build, windows_build): configures and builds a
# project next to the main build, e.g. the fuzz targets with clang or this
# project with a cross toolchain.
#   cmake -DSOURCE_DIR=... -DBUILD_DIR=... -DCMAKE_GENERATOR=... [-DOPTIONS=-DA=1|-DB=2] -P build_project.cmake
# OPTIONS: configure options separated by '|'.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()

string(REPLACE "|" ";" options "${OPTIONS}")
cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR} -G ${CMAKE_GENERATOR} ${options})
run(${CMAKE_COMMAND} --build ${BUILD_DIR} --parallel ${jobs})
