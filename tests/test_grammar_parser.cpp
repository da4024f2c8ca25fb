// The GBNF parser (gemma2/grammar/parser.hpp): what each construct of
// the notation means, and the errors malformed grammars give.
#include "grammar_support.hpp"

namespace {
using test::grammar;
using test::parse_error;
}  // namespace

TEST_CASE("grammar: each GBNF construct matches what it means") {
  struct Case {
    const char* gbnf;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"root ::= \"ab\" \"c\"", "abc", true},
      {"root ::= \"ab\" \"c\"", "ab", false},
      {"root ::= \"a\" | \"b\" | \"\"", "", true},
      {"root ::= \"a\" | \"b\"", "b", true},
      {"root ::= (\"a\" | \"b\") \"c\"", "bc", true},
      {"root ::= [a-c]", "d", false},
      {"root ::= [^a-c]", "d", true},
      {"root ::= [^a-c]", "b", false},
      {"root ::= [^a]", "\xC3\xA9", true},  // é: negation covers all of Unicode
      {"root ::= .", "\xF0\x9F\x98\x80", true},
      {"root ::= . .", "\xF0\x9F\x98\x80", false},
      {"root ::= \"a\"*", "", true},
      {"root ::= \"a\"*", "aaaa", true},
      {"root ::= \"a\"+", "", false},
      {"root ::= \"ab\"+", "abab", true},
      {"root ::= \"ab\"+", "aba", false},
      {"root ::= \"a\"?", "aa", false},
      {"root ::= \"a\"{3}", "aaa", true},
      {"root ::= \"a\"{3}", "aaaa", false},
      {"root ::= \"a\"{2,}", "a", false},
      {"root ::= \"a\"{2,}", "aaaaaa", true},
      {"root ::= \"a\"{1,3}", "aaa", true},
      {"root ::= \"a\"{1,3}", "aaaa", false},
      {"root ::= \"a\"{,2}", "", true},
      {"root ::= \"a\"{0,0} \"b\"", "b", true},
      {"root ::= \"\\n\\t\\\\\\\"\\x41\\u00e9\\U0001F600\"", "\n\t\\\"A\xC3\xA9\xF0\x9F\x98\x80", true},
      {"root ::= [\\x00-\\x1F]", "\x1F", true},
      {"root ::= [\\]\\-]", "-", true},
      {"root ::= [a-]", "-", true},
      {"root ::= [\\u00e0-\\u00ff]+", "\xC3\xA0\xC3\xBF", true},
      {"root ::= x x\nx ::= \"1\" | \"22\"", "221", true},
      {"# comment\nroot ::= # here too\n  \"a\" # and here\n  | \"b\"\n", "b", true},
      {"root ::= a-b\na-b ::= \"x\" rest_1\nrest_1 ::= \"y\"", "xy", true},
      {"root ::= list\nlist ::= \"[\" (item (\",\" item)*)? \"]\"\nitem ::= [0-9] | list", "[1,[2,[]],3]", true},
      {"root ::= list\nlist ::= \"[\" (item (\",\" item)*)? \"]\"\nitem ::= [0-9] | list", "[1,[2,[],3]", false},
      {"root ::= \"a\" root | \"\"", "aaa", true},  // right recursion
  };
  for (const auto& c : cases) {
    INFO(c.gbnf);
    INFO(c.text);
    CHECK(grammar(c.gbnf).matches(c.text) == c.match);
  }
  // A start rule other than root.
  auto g = gemma2::Grammar::parse("a ::= \"x\"\nb ::= \"y\"", "b");
  REQUIRE(g.ok());
  CHECK(g->matches("y"));
  CHECK(gemma2::Grammar::parse("a ::= \"x\"").message().find("no rule named 'root'") != std::string::npos);
}

TEST_CASE("grammar: malformed grammars are errors naming the line and column") {
  struct Case {
    const char* gbnf;
    const char* message;
  };
  const Case cases[] = {
      {"root ::= \"abc", "line 1, column 10: unterminated string literal"},
      {"root ::= [abc", "line 1, column 10: unterminated character class"},
      {"root ::= \"a\"\n  | foo", "line 2, column 5: undefined rule 'foo'"},
      {"root ::= a\na ::= a \"x\" | \"y\"", "line 2, column 1: left recursion: rule 'a'"},
      {"root ::= a\na ::= b \"x\"\nb ::= \"\" | a", "left recursion"},
      {"root ::= (\"a\"?)*", "left recursion"},
      {"root ::= (\"a\"", "line 1, column 10: unclosed '('"},
      {"root ::= \"a\")", "line 1, column 13: unmatched ')'"},
      {"root ::= [z-a]", "line 1, column 11: character range is reversed"},
      {"root ::= \"\\q\"", "line 1, column 11: unknown escape '\\q'"},
      {"root ::= \"\\xZZ\"", "expected a hex digit"},
      {"root ::= \"\\uD800\"", "not a Unicode character"},
      {"root ::= \"a\"{3,2}", "maximum below its minimum"},
      {"root ::= \"a\"{2", "unclosed '{'"},
      {"root ::= \"a\"{1000001}", "repetition count over"},
      {"root ::= *", "line 1, column 10: '*' has nothing before it to repeat"},
      {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice (first at line 1, column 1)"},
      {"root = \"a\"", "line 1, column 6: expected '::=' after rule name 'root'"},
      {"::= \"a\"", "line 1, column 1: expected a rule name"},
      {"root ::= \"a\" @", "line 1, column 14: unexpected '@'"},
      {"root ::= [^\\x00-\\U0010FFFF]", "matches no finite text"},
      {"root ::= \"a\" root", "matches no finite text"},
      {"root ::= \"\xC3\x28\"", "not valid UTF-8"},
      {"root ::= (x ::= \"a\")", "a ')' is missing"},
  };
  for (const auto& c : cases) {
    const std::string m = parse_error(c.gbnf);
    INFO(m);
    CHECK(m.find(c.message) != std::string::npos);
  }
  std::string huge = "root ::=";
  for (int i = 0; i < 50; ++i) huge += " \"a\"{100000}";
  CHECK(parse_error(huge).find("too large") != std::string::npos);
  // Long chains in any rule order compile in O(n log n) (a fixed point
  // over the rules would take n passes of n rules here).
  std::string chain = "root ::= r0\n";
  constexpr int kChain = 100000;
  for (int i = 0; i < kChain; ++i)
    chain += "r" + std::to_string(i) + " ::= \"a\" " + (i + 1 < kChain ? "r" + std::to_string(i + 1) : "") + "\n";
  const auto long_chain = grammar(chain);
  CHECK(long_chain.matches(std::string(kChain, 'a')));
  CHECK_FALSE(long_chain.matches(std::string(kChain - 1, 'a')));
  test::TempDir tmp;
  CHECK(gemma2::Grammar::load(tmp.str() + "/missing.gbnf").message().find("missing.gbnf") != std::string::npos);
  std::ofstream(tmp.str() + "/bad.gbnf") << "root ::= [";
  const std::string m = gemma2::Grammar::load(tmp.str() + "/bad.gbnf").message();
  CHECK(m.find("bad.gbnf") != std::string::npos);
  CHECK(m.find("line 1, column 10") != std::string::npos);
}
