// The suite's main: doctest's, behind a std::terminate handler, so that an
// exception escaping the library anywhere in any test (the bad-input rows
// included) fails the run with a message saying so instead of a bare abort.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

int main(int argc, char** argv) {
  std::set_terminate([] {
    std::fputs("FAILED: an exception escaped into std::terminate\n", stderr);
    std::_Exit(97);
  });
  return doctest::Context(argc, argv).run();
}
