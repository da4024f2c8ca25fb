// The grammar matcher (gemma2/grammar/matcher.hpp): following text through
// a grammar agrees with std::regex on every short string.
#include <regex>

#include "grammar_support.hpp"

namespace {
using test::grammar;
}  // namespace

TEST_CASE("grammar: matching agrees with std::regex on every short string") {
  struct Case {
    const char* gbnf;
    const char* regex;
  };
  const Case cases[] = {
      {"root ::= (\"a\" | \"b\" \"c\"?)* \"c\"", "(a|bc?)*c"},
      {"root ::= \"a\"{1,3} (\"b\" | \"cb\"){0,2}", "a{1,3}(b|cb){0,2}"},
      {"root ::= x+ \"b\"?\nx ::= [ab] \"c\" | \"a\"", "([ab]c|a)+b?"},
      {"root ::= ([^a] \"a\")* [b-c]?", "([^a]a)*[b-c]?"},
      {"root ::= (\"ab\" | \"a\")(\"bc\" | \"c\")", "(ab|a)(bc|c)"},
  };
  const std::string alphabet = "abc";
  for (const auto& c : cases) {
    INFO(c.gbnf);
    const auto g = grammar(c.gbnf);
    const std::regex re(c.regex);
    std::vector<std::string> strings{""};
    for (size_t begin = 0, len = 0; len < 7; ++len) {
      const size_t end = strings.size();
      for (size_t i = begin; i < end; ++i)
        for (char a : alphabet) strings.push_back(strings[i] + a);
      begin = end;
    }
    for (const auto& s : strings) {
      INFO(s);
      CHECK(g.matches(s) == std::regex_match(s, re));
    }
  }
}
