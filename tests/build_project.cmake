# ctest driver (fixture fuzz_build): configures and builds the fuzz project
# with clang, next to the main build.
#   cmake -DSOURCE_DIR=<tests/fuzz> -DBUILD_DIR=... -DCXX=clang++ -DCMAKE_GENERATOR=... -P build.cmake
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
endfunction()

cmake_host_system_information(RESULT jobs QUERY NUMBER_OF_LOGICAL_CORES)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${BUILD_DIR} -G ${CMAKE_GENERATOR} -DCMAKE_CXX_COMPILER=${CXX})
run(${CMAKE_COMMAND} --build ${BUILD_DIR} --parallel ${jobs})
