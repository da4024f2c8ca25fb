// Context-free grammars in llama.cpp's GBNF notation, compiled for matching
// text one code point at a time: the language half of constrained decoding
// (constraint.hpp maps it onto tokens). The notation and its parser are in
// grammar/parser.hpp, the representation in grammar/compiled.hpp, the
// matcher in grammar/matcher.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "gemma2/grammar/compiled.hpp"
#include "gemma2/grammar/matcher.hpp"
#include "gemma2/grammar/parser.hpp"
#include "gemma2/io/file.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// A parsed grammar: immutable, cheap to copy (copies share it).
class Grammar {
 public:
  // Parses GBNF text; `root` names the start rule.
  static Result<Grammar> parse(std::string_view gbnf, const std::string& root = "root") {
    return detail::guard("parsing a grammar", [&]() -> Result<Grammar> {
      auto g = detail::GbnfParser(gbnf, root).run();
      if (!g) return Error{g.message()};
      Grammar out;
      out.g_ = std::make_shared<const detail::CompiledGrammar>(std::move(*g));
      return out;
    });
  }

  // Reads and parses a .gbnf file (at most 16 MiB); errors name the file.
  static Result<Grammar> load(const std::string& path, const std::string& root = "root") {
    auto text = read_file(path, uint64_t{16} << 20);
    if (!text) return detail::err("cannot read grammar: ", text.message());
    auto g = parse(*text, root);
    if (!g) return detail::err(path, ": ", g.message());
    return g;
  }

  // Whether the whole text is a sentence of the grammar (false too when
  // the grammar is so ambiguous that a character takes more than
  // ByteAutomaton::kMaxSteps to match).
  bool matches(std::string_view text) const {
    detail::ByteAutomaton a(g_);
    int32_t s = a.start();
    for (size_t i = 0; i < text.size() && s != detail::ByteAutomaton::kDead; ++i) {
      a.limit_steps();
      s = a.next(s, static_cast<uint8_t>(text[i]));
    }
    return s != detail::ByteAutomaton::kDead && a.accepting(s);
  }

  const std::shared_ptr<const detail::CompiledGrammar>& compiled() const { return g_; }

 private:
  std::shared_ptr<const detail::CompiledGrammar> g_;
};

GEMMA2_END_NAMESPACE
