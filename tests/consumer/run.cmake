# ctest driver: builds tests/consumer against gemma2 in one of three ways and
# runs the README's embedding snippet on a model.
#   cmake -DMODE=find_package|add_subdirectory|fetchcontent -DSOURCE_DIR=...
#         -DWORK_DIR=... -DMODEL_DIR=... -P run.cmake
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# The snippet is the ```cpp block after the marker in README.md, so the
# README cannot drift from code that compiles.
file(READ ${SOURCE_DIR}/README.md readme)
string(FIND "${readme}" "<!-- embed-snippet -->" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md has no <!-- embed-snippet --> marker")
endif()
string(SUBSTRING "${readme}" ${at} -1 rest)
string(FIND "${rest}" "```cpp\n" begin)
string(SUBSTRING "${rest}" ${begin} -1 rest)
string(SUBSTRING "${rest}" 7 -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} snippet)
file(WRITE ${WORK_DIR}/embed.cpp "${snippet}")

set(args -DMODE=${MODE} -DSNIPPET=${WORK_DIR}/embed.cpp -DGEMMA2_SOURCE_DIR=${SOURCE_DIR} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${CMAKE_GENERATOR} -DGEMMA2_BUILD_TESTS=OFF
      -DGEMMA2_BUILD_EXAMPLES=OFF -DGEMMA2_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/lib)  # the C ABI library
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  list(APPEND args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
run(${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR} -B ${WORK_DIR}/build -G ${CMAKE_GENERATOR} ${args})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/embed ${MODEL_DIR})
message(STATUS "snippet output: ${last_output}")
if(NOT last_output MATCHES "next token: [0-9]+")
  message(FATAL_ERROR "unexpected snippet output: ${last_output}")
endif()
if(MODE STREQUAL "find_package")
  run(${WORK_DIR}/build/embed_c ${MODEL_DIR})
  message(STATUS "C program output: ${last_output}")
  if(NOT last_output MATCHES "C next token: [0-9]+")
    message(FATAL_ERROR "unexpected C program output: ${last_output}")
  endif()
endif()
