# ctest driver: uses gemma2 the ways a user's project does (tests/CMakeLists.txt).
#   cmake -DMODE=... -DSOURCE_DIR=... -DWORK_DIR=... -DPREFIX=... -DMODEL_DIR=... -P run.cmake
# MODE:
#   install             installs the build BUILD_DIR (configuration CONFIG) and
#                       moves it to PREFIX, so nothing can depend on where it
#                       was installed
#   find_package        the C++ project (README's embedding snippet) on PREFIX
#   find_package_c      the C project on PREFIX's c component, with Eigen,
#                       nlohmann_json and the headers in HIDDEN_INCLUDE_DIR
#                       (sentencepiece's) hidden from CMake
#   installed_cli       PREFIX/CLI (the CLI) with no --model finds the demo
#                       model in PREFIX/DEMO_MODEL
#   add_subdirectory, fetchcontent, add_subdirectory_c
#                       the C++ (the C) project with the source tree included
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# Runs a program, which must print text matching `regex`.
function(expect regex)
  run(${ARGN})
  message(STATUS "${ARGV1}: ${last_output}")
  if(NOT last_output MATCHES "${regex}")
    message(FATAL_ERROR "${ARGV1} printed no match for '${regex}'")
  endif()
endfunction()

# Configures and builds a consumer project in WORK_DIR/build, with no build
# type (no optimization flags): these builds check how the library is
# consumed, not its speed, and unoptimized code compiles in about a third of
# the time while the tiny model still runs in milliseconds.
function(build_consumer project_dir)
  run(${CMAKE_COMMAND} -S ${project_dir} -B ${WORK_DIR}/build -G ${CMAKE_GENERATOR} -DCMAKE_BUILD_TYPE= ${ARGN})
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
endfunction()

if(MODE STREQUAL "install")
  file(REMOVE_RECURSE ${PREFIX})
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/staging --config "${CONFIG}")
  file(RENAME ${WORK_DIR}/staging ${PREFIX})
  return()
endif()

if(MODE STREQUAL "installed_cli")
  # The path `info` names must be the moved prefix's copy, neither the
  # prefix it was installed to nor the source tree.
  unset(ENV{GEMMA2_MODEL})
  run(${PREFIX}/${CLI} info)
  string(FIND "${last_output}" "model: ${PREFIX}/${DEMO_MODEL}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the installed CLI did not default to ${PREFIX}/${DEMO_MODEL}:\n${last_output}")
  endif()
  expect("[a-z]" ${PREFIX}/${CLI} generate --prompt "ROMEO:" --max-new 12 --greedy)
  return()
endif()

if(MODE STREQUAL "find_package_c")
  build_consumer(${CMAKE_CURRENT_LIST_DIR}/c -DMODE=find_package -DCMAKE_PREFIX_PATH=${PREFIX}
    -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON
    -DCMAKE_IGNORE_PATH=${HIDDEN_INCLUDE_DIR})
elseif(MODE STREQUAL "add_subdirectory_c")
  build_consumer(${CMAKE_CURRENT_LIST_DIR}/c -DMODE=add_subdirectory -DGEMMA2_SOURCE_DIR=${SOURCE_DIR})
endif()
if(MODE MATCHES "_c$")
  foreach(program embed_c embed_c_static)
    expect("C next token: [0-9]+" ${WORK_DIR}/build/${program} ${MODEL_DIR})
  endforeach()
  return()
endif()

# The C++ project builds the ```cpp block after the marker in README.md, so
# the README cannot drift from code that compiles.
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

set(args -DMODE=${MODE} -DSNIPPET=${WORK_DIR}/embed.cpp -DGEMMA2_SOURCE_DIR=${SOURCE_DIR})
if(MODE STREQUAL "find_package")
  list(APPEND args -DCMAKE_PREFIX_PATH=${PREFIX})
endif()
build_consumer(${CMAKE_CURRENT_LIST_DIR} ${args})
expect("next token: [0-9]+" ${WORK_DIR}/build/embed ${MODEL_DIR})
if(NOT MODE STREQUAL "fetchcontent")
  expect("next token: [0-9]+" ${WORK_DIR}/build/embed_compiled ${MODEL_DIR})
endif()
# Included in a C++ project, the C libraries are not built: nothing links them.
file(GLOB_RECURSE c_api_objects ${WORK_DIR}/build/*c_api.cpp.o*)
if(c_api_objects)
  message(FATAL_ERROR "the C libraries were built for a C++ project that does not link them: ${c_api_objects}")
endif()
