// The suite's main: doctest's, behind a std::terminate handler, so that an
// exception escaping the library anywhere in any test (the bad-input rows
// included) fails the run with a message saying so instead of a bare abort.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "gemma2/kernels/dispatch.hpp"

int main(int argc, char** argv) {
  std::set_terminate([] {
    std::fputs("FAILED: an exception escaped into std::terminate\n", stderr);
    std::_Exit(97);
  });
  // ctest runs the kernel and golden cases once per kernel set with
  // GEMMA2_KERNELS; a set this CPU lacks is skipped (exit 77), by name.
  if (const char* env = std::getenv("GEMMA2_KERNELS"); env != nullptr && *env != '\0') {
    auto k = gemma2::detail::select_kernels(std::nullopt);
    if (!k) {
      std::printf("%s: %s\n", gemma2::parse_kernel_set(env) ? "skipped" : "error", k.message().c_str());
      return gemma2::parse_kernel_set(env) ? 77 : 2;
    }
  }
  return doctest::Context(argc, argv).run();
}
