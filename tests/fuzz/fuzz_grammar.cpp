// Fuzzes the GBNF parser, then the matcher and the token constraint on what
// parses: the first line of the input is a grammar's text to match, the rest
// the grammar. Invariants: parsing never crashes; the trie's mask equals the
// token-by-token checks; every allowed token is accepted and a refused one
// changes nothing; a budget always leaves some token (or the end) allowed.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gemma2/gemma2.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_grammar: %s %s\n", what, detail.c_str());
  std::abort();
}

const std::shared_ptr<const gemma2::TokenTrie>& vocab() {
  static const auto tok = gemma2::Tokenizer::load(GEMMA2_FUZZ_DEMO_TOKENIZER).value();
  static const auto trie = gemma2::TokenTrie::build(tok);
  return trie;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string text = nl == std::string::npos ? "" : input.substr(0, nl);
  auto g = gemma2::Grammar::parse(nl == std::string::npos ? input : input.substr(nl + 1));
  if (!g) {
    if (g.message().empty()) fail("an error without a message");
    return 0;
  }
  (void)g->matches(text);
  auto c = gemma2::GrammarConstraint::create(*g, vocab());
  if (!c) fail("a parsed grammar makes no constraint:", c.message());
  if (c->min_bytes_to_complete() > 4) return 0;  // a budget of 4 tokens cannot be kept one byte per token
  if (auto s = c->set_budget(4); !s) fail("a budget the shortest completion fits in was refused:", s.message());
  const size_t n = static_cast<size_t>(vocab()->vocab_size());
  for (int step = 0; step < 4 && !c->finished(); ++step) {
    const std::vector<uint8_t> mask = c->allowed_mask(n);
    int32_t pick = -1;
    for (size_t i = 0; i < n; ++i) {
      const bool one = c->allows(static_cast<int32_t>(i));
      if (one != (mask[i] != 0)) fail("mask and check disagree on token", std::to_string(i));
      if (one && (pick < 0 || (static_cast<size_t>(data[step % size]) + i) % 7 == 0)) pick = static_cast<int32_t>(i);
    }
    if (!c->error().empty()) return 0;  // too ambiguous to follow: reported, and nothing was allowed
    if (pick < 0) fail("within its budget the grammar allows no token at step", std::to_string(step));
    const size_t before = c->size();
    if (!c->accept(pick)) fail("an allowed token was refused");
    if (c->size() != before + 1) fail("accept did not advance");
  }
  if (!c->can_end()) fail("the budget ran out with the text incomplete");
  return 0;
}
