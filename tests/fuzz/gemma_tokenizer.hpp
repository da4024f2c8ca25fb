// The repository's Gemma tokenizer (GEMMA2_FUZZ_TOKENIZER, i.e.
// tests/data/tokenizer/gemma2_tokenizer.model), loaded once, for the fuzz
// targets that tokenize.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tiny.hpp"

namespace fuzz {

[[noreturn]] inline void fail(const char* target, const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "%s: %s %s\n", target, what, detail.c_str());
  std::abort();
}

inline const gemma2::Tokenizer& gemma_tokenizer() {
  static const gemma2::Tokenizer tok = [] {
    auto t = gemma2::Tokenizer::load(GEMMA2_FUZZ_TOKENIZER);
    if (!t) fail("fuzz", "cannot load the tokenizer:", t.message());
    return std::move(*t);
  }();
  return tok;
}

}  // namespace fuzz
