/* The C tests' checks. A failed CHECK prints the condition, where it is and
 * the library's last error, and counts; REQUIRE also exits. Each evaluates
 * `cond` once (it usually calls the library). */
#ifndef GEMMA2_TEST_C_CHECK_H
#define GEMMA2_TEST_C_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include "gemma2/c_api.h"

static int failures = 0;

static int check(int ok, const char* what, const char* file, int line) {
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", file, line, what, gemma2_last_error());
    ++failures;
  }
  return ok;
}
#define CHECK(cond) check((cond) != 0, #cond, __FILE__, __LINE__)
#define REQUIRE(cond)                                            \
  do {                                                           \
    if (!check((cond) != 0, #cond, __FILE__, __LINE__)) exit(1); \
  } while (0)

#endif
