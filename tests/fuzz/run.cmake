# ctest driver for one fuzz target (tests fuzz_<target>): replays every
# input in crashes/<target>/ (each once fixed a bug), then fuzzes for
# MAX_TOTAL_TIME seconds starting from a copy of corpus/<target>/, so new
# inputs never land in the source tree. Any crash, sanitizer report, leak,
# timeout (10 s for one input) or allocation over the limits fails the test;
# the offending input is left in WORK_DIR/artifacts/.
#   cmake -DFUZZER=<binary> -DCORPUS=<dir> -DCRASHES=<dir> -DWORK_DIR=<dir> -DMAX_TOTAL_TIME=30 -P run.cmake
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/corpus ${WORK_DIR}/artifacts)
file(COPY ${CORPUS}/ DESTINATION ${WORK_DIR}/corpus)

# A hostile header that makes the library allocate hundreds of MB for a
# small input is a bug, as is a growing footprint.
set(limits -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -artifact_prefix=${WORK_DIR}/artifacts/)

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  string(LENGTH "${out}" n)
  if(n GREATER 12000)  # libFuzzer is chatty; the report is at the end
    math(EXPR from "${n} - 12000")
    string(SUBSTRING "${out}" ${from} -1 out)
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (exit ${rc}): ${ARGN}\n...\n${out}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(GLOB crashes ${CRASHES}/*)
if(crashes)
  run("replaying ${CRASHES}" ${FUZZER} ${limits} ${crashes})
  list(LENGTH crashes n)
  message(STATUS "replayed ${n} input(s) from ${CRASHES}")
endif()
run("fuzzing" ${FUZZER} ${limits} -max_total_time=${MAX_TOTAL_TIME} -print_final_stats=1 ${WORK_DIR}/corpus)
string(REGEX MATCH "#[0-9]+[ \t]+DONE[^\n]*" done "${last_output}")
message(STATUS "${done}")
