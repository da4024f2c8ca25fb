// JSON Schema conversion (gemma2/json_schema.hpp): the subset, number
// ranges, patterns, formats, allOf, tuples, additionalProperties keys and
// the whitespace options, each checked against something independent of
// the converter: exact arithmetic over every integer or decimal of a
// range, std::regex, hand-written format validators, the schema validator
// of json_check.hpp written from the specification, nlohmann's parser,
// and sampled output of the demo model.
#include <cmath>
#include <functional>
#include <random>
#include <regex>

#include "grammar_support.hpp"
#include "json_check.hpp"

namespace {

using nlohmann::ordered_json;
using test::grammar;
using test::sample_completions;
using test::samples_per_grammar;
using test::schemas;
using test::valid_date;
using test::valid_ipv4;
using test::valid_json;
using test::valid_time;
using test::valid_uuid;

gemma2::Grammar schema_grammar(const std::string& schema, gemma2::JsonWhitespace ws = gemma2::JsonWhitespace::Compact) {
  gemma2::JsonGrammarOptions o;
  o.whitespace = ws;
  auto gbnf = gemma2::json_schema_to_gbnf(schema, o);
  INFO(schema);
  INFO(gbnf.message());
  REQUIRE(gbnf.ok());
  auto g = gemma2::Grammar::parse(*gbnf);
  INFO(*gbnf);
  INFO(g.message());
  REQUIRE(g.ok());
  return *g;
}

std::string schema_error(const std::string& schema) {
  auto gbnf = gemma2::json_schema_to_gbnf(schema);
  INFO(schema);
  CHECK_FALSE(gbnf.ok());
  return gbnf.message();
}

// Whitespace outside strings: count, and the longest run.
std::pair<size_t, size_t> json_spaces(const std::string& text) {
  size_t n = 0, run = 0, longest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool space = !in_string && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r');
    if (in_string && text[i] == '\\') ++i;
    else if (text[i] == '"') in_string = !in_string;
    n += space;
    run = space ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  return {n, longest};
}

// Completions of `g` sampled from the demo model, each from a fresh
// session after one of a few prompts, within `budget` tokens.
std::vector<std::string> demo_samples(const gemma2::Grammar& g, int count, int budget) {
  const char* prompts[] = {"ROMEO:\n", "{\"", "The report:\n"};
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    auto session = gemma2::Session<test::DemoModel>::create(test::demo_model(), 256);
    REQUIRE(session.ok());
    const auto prompt = *test::demo_tokenizer().encode_prompt(prompts[i % 3]);
    out.push_back(
        test::constrained_completion(*session, prompt, g, budget, static_cast<uint64_t>(i) * 104729 + 17).text);
  }
  return out;
}

int sample_count() {
  const char* env = std::getenv("GEMMA2_GRAMMAR_SAMPLES");  // 1000 for the full count
  return env ? std::max(1, std::atoi(env)) : 4;
}

}  // namespace

TEST_CASE("JSON Schema: integer bounds hold exactly the integers within them, small ranges checked exhaustively") {
  const long long ends[] = {-101, -25, -10, -9, -1, 0, 1, 7, 9, 10, 99, 100, 137};
  auto text = [](long long x) { return std::to_string(x); };
  auto check_all = [&](const std::string& schema, const std::function<bool(long long)>& in) {
    const auto g = schema_grammar(schema);
    INFO(schema);
    for (long long x = -150; x <= 150; ++x) {
      INFO(x);
      CHECK(g.matches(text(x)) == in(x));
    }
    for (const char* bad : {"-0", "00", "01", "-01", "+1", "1.0", "1e1", "", "-", "007"}) {
      INFO(bad);
      CHECK_FALSE(g.matches(bad));
    }
  };
  for (long long lo : ends)
    for (long long hi : ends) {
      if (lo > hi) continue;
      const std::string l = std::to_string(lo), h = std::to_string(hi);
      check_all(R"({"type":"integer","minimum":)" + l + R"(,"maximum":)" + h + "}",
                [&](long long x) { return x >= lo && x <= hi; });
      if (lo + 1 < hi)
        check_all(R"({"type":"integer","exclusiveMinimum":)" + l + R"(,"exclusiveMaximum":)" + h + "}",
                  [&](long long x) { return x > lo && x < hi; });
    }
  for (long long b : ends) {
    const std::string s = std::to_string(b);
    check_all(R"({"type":"integer","minimum":)" + s + "}", [&](long long x) { return x >= b; });
    check_all(R"({"type":"integer","exclusiveMaximum":)" + s + "}", [&](long long x) { return x < b; });
  }
  // Draft 4's boolean form, and fractional bounds on integers.
  check_all(R"({"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":8,"exclusiveMaximum":false})",
            [](long long x) { return x > 3 && x <= 8; });
  check_all(R"({"type":"integer","minimum":-2.5,"maximum":4.99})", [](long long x) { return x >= -2 && x <= 4; });
  check_all(R"({"minimum":1.5,"exclusiveMaximum":3,"type":"integer"})", [](long long x) { return x == 2; });
}

TEST_CASE("JSON Schema: random integer bounds up to 16 digits, probed at and around them") {
  std::mt19937_64 rng(29);
  auto random_bound = [&]() {
    const int digits = std::uniform_int_distribution<int>(1, 15)(rng);
    long long v = std::uniform_int_distribution<long long>(0, static_cast<long long>(std::pow(10.0, digits)) - 1)(rng);
    return rng() % 3 == 0 ? -v : v;
  };
  for (int round = 0; round < 60; ++round) {
    long long lo = random_bound(), hi = random_bound();
    if (lo > hi) std::swap(lo, hi);
    const int sides = round % 3;  // both, only a minimum, only a maximum
    std::string schema = R"({"type":"integer")";
    if (sides != 2) schema += R"(,"minimum":)" + std::to_string(lo);
    if (sides != 1) schema += R"(,"maximum":)" + std::to_string(hi);
    const auto g = schema_grammar(schema + "}");
    INFO(schema);
    std::vector<long long> probes = {0, 1, -1, 9999999999999999LL, -9999999999999999LL};
    for (long long b : {lo, hi})
      for (long long d = -11; d <= 11; ++d) probes.push_back(b + d);
    for (int i = 0; i < 40; ++i) probes.push_back(std::uniform_int_distribution<long long>(lo - 1000, hi + 1000)(rng));
    for (long long x : probes) {
      const bool in = (sides == 2 || x >= lo) && (sides == 1 || x <= hi) && std::to_string(x).size() <= 16 + (x < 0);
      INFO(x);
      CHECK(g.matches(std::to_string(x)) == in);
    }
  }
  // Bounds past what the grammar writes: none on the far side, an error on the near one.
  const auto big = schema_grammar(R"({"type":"integer","minimum":-9223372036854775808,"maximum":9223372036854775807})");
  CHECK(big.matches("-9999999999999999"));
  CHECK(big.matches("9999999999999999"));
  CHECK(schema_grammar(R"({"type":"integer","maximum":1e300})").matches("123"));
  CHECK(schema_error(R"({"type":"integer","minimum":1e17})").find("beyond the numbers this grammar writes") !=
        std::string::npos);
}

TEST_CASE("JSON Schema: number bounds hold exactly the decimals within them") {
  struct Case {
    const char* keywords;
    int lo, hi;  // hundredths
    bool lo_strict, hi_strict;
  };
  constexpr int kNone = 1 << 30;
  const Case cases[] = {
      {R"("minimum":0,"maximum":1)", 0, 100, false, false},
      {R"("minimum":-1.5,"exclusiveMaximum":2.25)", -150, 225, false, true},
      {R"("exclusiveMinimum":0.05,"maximum":0.1)", 5, 10, true, false},
      {R"("minimum":-0.3,"maximum":-0.1)", -30, -10, false, false},
      {R"("minimum":2.5)", 250, kNone, false, false},
      {R"("exclusiveMaximum":-0.25)", -kNone, -25, false, true},
      {R"("exclusiveMinimum":0)", 0, kNone, true, false},
      {R"("minimum":-1,"maximum":1,"exclusiveMaximum":0.5)", -100, 50, false, true},
  };
  for (const auto& c : cases) {
    const std::string schema = std::string(R"({"type":"number",)") + c.keywords + "}";
    const auto g = schema_grammar(schema);
    INFO(schema);
    for (int k = -400; k <= 400; ++k) {
      const bool in = (c.lo == -kNone || k > c.lo || (k == c.lo && !c.lo_strict)) &&
                      (c.hi == kNone || k < c.hi || (k == c.hi && !c.hi_strict));
      const int a = std::abs(k);
      const std::string sign = k < 0 ? "-" : "";
      // The same value written as "x.yz", and shorter where it can be.
      std::vector<std::string> forms = {sign + std::to_string(a / 100) + "." + std::to_string(a % 100 / 10) +
                                        std::to_string(a % 10)};
      if (a % 10 == 0) forms.push_back(sign + std::to_string(a / 100) + "." + std::to_string(a % 100 / 10));
      if (a % 100 == 0) forms.push_back(sign + std::to_string(a / 100));
      for (const auto& f : forms) {
        if (f == "-0" || f == "-0.0" || f == "-0.00") continue;  // no "-0": zero is written "0"
        INFO(f);
        CHECK(g.matches(f) == in);
      }
    }
    for (const char* bad : {"-0", "01.5", "1.", ".5", "1e0", "0.5e1"}) {
      INFO(bad);
      CHECK_FALSE(g.matches(bad));
    }
  }
  // Bounded numbers have at most 15 significant digits, so a double reads them inside their bounds.
  const auto unit = schema_grammar(R"({"type":"number","minimum":0,"exclusiveMaximum":1})");
  CHECK(unit.matches("0.99999999999999"));
  CHECK_FALSE(unit.matches("0.999999999999999999"));
  CHECK(schema_error(R"({"type":"number","minimum":3,"maximum":2})")
            .find("no number is between the minimum 3 and the maximum 2") != std::string::npos);
  CHECK(schema_error(R"({"type":"integer","minimum":1.2,"maximum":1.8})").find("no integer") != std::string::npos);
}

TEST_CASE("JSON Schema: patterns match exactly the strings ECMAScript regular expressions find in them") {
  const char* patterns[] = {
      "^a+$",
      "^(ab|b)*1?$",
      "a",
      "b$",
      "^a|b$",
      "^[^a\"]{1,3}$",
      "\\d",
      "^\\w+-\\d{2,}$",
      "^.{2}$",
      "^[\\\\\"]+$",
      "^\\s?b$",
      "^(?:a|\\n)[-b]*$",
      "^[a-]{2}$",
      "^\\x61\\u0062$",
      "^[^\\d\\s]?$",
      "^(a{2}|b{0,1})+$",
      "^[\\W]*$",
      "^a*?b+?$",
      "^(a)(b|)$",
      "^[\\]-]+$",
      "^\\.\\*\\?$",
      "^[\\b]$",
      "^\\u0000?a$",
  };
  const std::string alphabet = std::string("ab1\"\\\n-") + '\0';
  std::vector<std::string> strings{""};
  for (size_t begin = 0, len = 0; len < 4; ++len) {
    const size_t end = strings.size();
    for (size_t i = begin; i < end; ++i)
      for (char a : alphabet) strings.push_back(strings[i] + a);
    begin = end;
  }
  for (const std::string extra : {".*?", "\b", "]-"}) strings.push_back(extra);
  for (const char* p : patterns) {
    INFO("pattern " << std::string(p));
    const auto g = schema_grammar(ordered_json{{"type", "string"}, {"pattern", p}}.dump());
    const std::regex re(p, std::regex::ECMAScript);
    for (const auto& s : strings) {
      const std::string text = ordered_json(s).dump();  // JSON text: quotes, escapes
      INFO(text);
      CHECK(g.matches(text) == std::regex_search(s, re));
    }
  }
  // Named groups are groups (std::regex lacks them).
  const auto named = schema_grammar(R"({"type":"string","pattern":"^(?<first>a)(b|)$"})");
  CHECK(named.matches("\"ab\""));
  CHECK(named.matches("\"a\""));
  CHECK_FALSE(named.matches("\"b\""));
  // Characters beyond ASCII are single characters, and escapes spell them.
  const auto accents = schema_grammar(R"({"type":"string","pattern":"^\u00e9.[^\u00e9]$"})");
  CHECK(accents.matches("\"\xC3\xA9\xF0\x9F\x98\x80x\""));
  CHECK_FALSE(accents.matches("\"\xC3\xA9x\xC3\xA9\""));
  const auto emoji = schema_grammar(R"({"type":"string","pattern":"^\\uD83D\\uDE00$"})");
  CHECK(emoji.matches("\"\xF0\x9F\x98\x80\""));
}

TEST_CASE("JSON Schema: formats are the calendar's dates and RFC 3339's times, UUIDs and IPv4 addresses") {
  const auto date = schema_grammar(R"({"type":"string","format":"date"})");
  for (const char* y : {"0000", "1900", "2000", "2023", "2024", "2100", "9999"})
    for (int m = 0; m <= 13; ++m)
      for (int d = 0; d <= 32; ++d) {
        char text[16];
        std::snprintf(text, sizeof text, "%s-%02d-%02d", y, m, d);
        INFO(text);
        CHECK(date.matches("\"" + std::string(text) + "\"") == valid_date(text));
      }
  const auto time = schema_grammar(R"({"type":"string","format":"time"})");
  const auto date_time = schema_grammar(R"({"format":"date-time"})");
  for (const char* h : {"00", "09", "19", "20", "23", "24"})
    for (const char* m : {"00", "59", "60"})
      for (const char* s : {"00", "59", "60"})
        for (const char* frac : {"", ".5", ".123456789", ".1234567890", "."})
          for (const char* zone : {"Z", "+05:30", "-23:59", "+24:00", "z", "", "+0530"}) {
            const std::string t = std::string(h) + ":" + m + ":" + s + frac + zone;
            INFO(t);
            // The grammar writes only RFC 3339 times, and all of its documented subset.
            CHECK(time.matches("\"" + t + "\"") == valid_time(t, true));
            if (time.matches("\"" + t + "\"")) CHECK(valid_time(t, false));
            CHECK(date_time.matches("\"2024-02-29T" + t + "\"") == valid_time(t, true));
            CHECK_FALSE(date_time.matches("\"2023-02-29T" + t + "\""));
          }
  const auto uuid = schema_grammar(R"({"type":"string","format":"uuid"})");
  const auto ipv4 = schema_grammar(R"({"type":"string","format":"ipv4"})");
  for (const char* u : {"123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000",
                        "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400",
                        "g23e4567-e89b-12d3-a456-426614174000"}) {
    INFO(u);
    CHECK(uuid.matches("\"" + std::string(u) + "\"") == valid_uuid(u));
  }
  for (const char* a :
       {"0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "01.2.3.4", "192.168.1.10", "1.2.3.4.5", "10.0.0.249"}) {
    INFO(a);
    CHECK(ipv4.matches("\"" + std::string(a) + "\"") == valid_ipv4(a));
  }
  // Other formats are annotations: any string.
  CHECK(schema_grammar(R"({"type":"string","format":"email"})").matches("\"not an email\""));
}

namespace {
struct SchemaDoc {
  const char* text;
  bool matches;
};
struct SchemaCase {
  const char* schema;
  std::vector<SchemaDoc> docs;
};

// Each schema's grammar accepts exactly the documents marked as matching,
// and every document it accepts is valid under the schema.
void check_schema_cases(const std::vector<SchemaCase>& cases) {
  for (const auto& c : cases) {
    const auto schema = ordered_json::parse(c.schema);
    const auto g = schema_grammar(c.schema);
    INFO(c.schema);
    for (const auto& d : c.docs) {
      INFO(d.text);
      CHECK(g.matches(d.text) == d.matches);
      if (d.matches) CHECK(valid_json(d.text, schema));  // what the grammar writes, the schema allows
    }
  }
}
}  // namespace

TEST_CASE("JSON Schema: allOf and keywords beside anyOf keep the documents the schema allows") {
  check_schema_cases({
      // allOf merges properties, required, bounds and types.
      {R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer","minimum":3}},"required":["a"]},{"properties":{"a":{"maximum":5},"b":{"const":1}}}]})",
       {{R"({"a":3})", true},
        {R"({"a":6})", false},
        {R"({"a":4,"b":1})", true},
        {R"({"a":4,"b":2})", false},
        {R"({"b":1})", false},
        {"{}", false}}},
      // A side's additionalProperties covers what the other side names.
      {R"({"$defs":{"base":{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],"additionalProperties":{"type":"string"}}},)"
       R"("allOf":[{"$ref":"#/$defs/base"},{"properties":{"name":{"type":["string","integer"]}},"required":["name"]}]})",
       {{R"({"id":1,"name":"x"})", true},
        {R"({"id":1,"name":2})", false},
        {R"({"id":1})", false},
        {R"({"name":"x"})", false}}},
      // allOf over enums keeps their intersection; with anyOf, each branch.
      {R"({"allOf":[{"enum":["a","b","c"]},{"enum":["b","c","d"]},{"anyOf":[{"const":"b"},{"const":"d"}]}]})",
       {{R"("a")", false}, {R"("b")", true}, {R"("c")", false}, {R"("d")", false}}},
      {R"({"allOf":[{"type":"string","pattern":"^x[a-z]?$"},{"maxLength":3,"pattern":"^x[a-z]?$"},{"format":"email"}]})",
       {{R"("xyz")", false}, {R"("xy")", true}, {R"("x")", true}, {R"("yz")", false}}},
      // Keywords beside anyOf hold in every branch, merged rather than replaced.
      {R"({"type":"object","properties":{"kind":{"enum":["a","b"]}},"required":["kind"],)"
       R"("anyOf":[{"properties":{"n":{"type":"integer","maximum":0}},"required":["n"]},{"properties":{"s":{"type":"string"}}}]})",
       {{R"({"kind":"a","n":0})", true},
        {R"({"kind":"a","n":1})", false},
        {R"({"kind":"b"})", true},
        {R"({"kind":"b","s":"x"})", true},
        {R"({"n":0})", false}}},
  });
}

TEST_CASE("JSON Schema: tuples keep the documents the schema allows") {
  check_schema_cases({
      // Tuples: 2020's prefixItems with items, and draft 7's items array with additionalItems.
      {R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"items":false})",
       {{"[]", true}, {"[1]", true}, {R"([1,"a"])", true}, {R"([1,"a",2])", false}, {R"(["a"])", false}}},
      {R"({"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"items":{"type":"boolean"},"minItems":1,"maxItems":4})",
       {{"[]", false},
        {"[1]", true},
        {R"([1,"a",true,false])", true},
        {R"([1,"a",true,false,true])", false},
        {R"([1,"a",1])", false}}},
      {R"({"type":"array","items":[{"const":"x"}],"additionalItems":{"type":"null"},"minItems":2})",
       {{R"(["x"])", false}, {R"(["x",null])", true}, {R"(["x",null,null])", true}, {R"(["x",1])", false}}},
  });
}

TEST_CASE("JSON Schema: additionalProperties keys never repeat a named property") {
  check_schema_cases({
      // Other keys never repeat a named property.
      {R"({"type":"object","properties":{"a":{"type":"integer"},"ab":{"type":"boolean"}},"additionalProperties":{"type":"string"}})",
       {{R"({"a":1,"x":"y"})", true},
        {R"({"a":1,"a":"y"})", false},
        {R"({"abc":"y"})", true},
        {R"({"ab":true,"":"e"})", true},
        {R"({"ab":"no"})", false},
        {R"({"b":1})", false}}},
      {R"({"type":"object","required":["must"],"additionalProperties":{"type":"integer"}})",
       {{R"({"must":1})", true}, {R"({"must":"x"})", false}, {"{}", false}}},
  });
  // The key grammar never spells a named key, by escapes either.
  const auto keys =
      schema_grammar(R"({"properties":{"a/b":{"type":"null"}},"additionalProperties":{"type":"integer"}})");
  CHECK(keys.matches(R"({"a/b":null})"));
  CHECK_FALSE(keys.matches(R"({"a\/b":1})"));
  CHECK_FALSE(keys.matches(R"({"\u0061/b":1})"));
  CHECK(keys.matches(R"({"a\\b":1})"));
}

TEST_CASE("JSON Schema: whitespace is none, single spaces or free, as asked, in schema and any-JSON grammars") {
  using WS = gemma2::JsonWhitespace;
  const std::string schema =
      R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}},"b":{}},"required":["a","b"]})";
  struct Case {
    const char* text;
    bool compact, spaces, free;
  };
  const Case cases[] = {
      {R"({"a":[1,2],"b":{"c":null}})", true, true, true},
      {R"({"a": [1, 2], "b": {"c": null}})", false, true, true},
      {R"({ "a" : [ 1 , 2 ] , "b" : { "c" : null } })", false, true, true},
      {R"({"a":  [1,2],"b":{}})", false, false, false},
      {"{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}", false, false, true},
      {R"({"a":[1,2],"b":"x y"})", true, true, true},  // spaces inside strings are text
  };
  for (WS ws : {WS::Compact, WS::Spaces, WS::Free}) {
    gemma2::JsonGrammarOptions o;
    o.whitespace = ws;
    const auto g = schema_grammar(schema, ws);
    const auto any = gemma2::Grammar::parse(gemma2::json_gbnf(o)).value();
    for (const auto& c : cases) {
      INFO(static_cast<int>(ws) << ": " << c.text);
      const bool want = ws == WS::Compact ? c.compact : ws == WS::Spaces ? c.spaces : c.free;
      CHECK(g.matches(c.text) == want);
      CHECK(any.matches(c.text) == want);
    }
  }
  // The default is compact, for the text API and the document API alike.
  CHECK(*gemma2::json_schema_to_gbnf(schema) == *gemma2::json_schema_to_gbnf(ordered_json::parse(schema)));
  CHECK(gemma2::json_schema_to_gbnf(schema)->find("ws      ::= \"\"") != std::string::npos);
  CHECK(gemma2::json_gbnf().find("ws      ::= \"\"") != std::string::npos);
}

TEST_CASE("JSON Schema: what the converter cannot guarantee is an error naming the keyword and where") {
  struct Case {
    const char* schema;
    const char* message;
  };
  const Case cases[] = {
      {R"({"type":"number","multipleOf":2})", "at #: the keyword 'multipleOf' is not supported"},
      {R"({"properties":{"p":{"type":"string","pattern":"(a)\\1"}}})",
       "at #/properties/p: 'pattern' \"(a)\\\\1\": at character 4 of the pattern: backreferences"},
      {R"J({"type":"string","pattern":"a(?=b)"})J", "lookahead and lookbehind"},
      {R"({"type":"string","pattern":"\\bword"})", "word boundaries"},
      {R"({"type":"string","pattern":"a^b"})", "'^' and '$' are supported only at the start and end"},
      {R"J({"type":"string","pattern":"(a|b$)"})J", "'^' and '$' are supported only"},
      {R"({"type":"string","pattern":"[z-a]"})", "the class range is reversed"},
      {R"({"type":"string","pattern":"a{3,1}"})", "maximum below its minimum"},
      {R"({"type":"string","pattern":"(ab"})", "a ')' is missing"},
      {R"J({"type":"string","pattern":"ab)"})J", "unmatched ')'"},
      {R"({"type":"string","pattern":"*a"})", "nothing before it to repeat"},
      {R"({"type":"string","pattern":"a**"})", "a repetition cannot be repeated"},
      {R"({"type":"string","pattern":"\\p{L}"})", "Unicode property escapes"},
      {R"({"type":"string","pattern":"\\q"})", "unknown escape '\\q'"},
      {R"({"type":"string","pattern":"[^\\s\\S]"})", "matches no character"},
      {R"({"type":"string","pattern":"\\uD800"})", "lone surrogate"},
      {R"({"type":"string","pattern":"a{100001}"})", "repetition count over 100000"},
      {R"({"type":"string","pattern":"^a+$","maxLength":3})",
       "minLength/maxLength together with 'pattern' are supported only when every match"},
      {R"({"type":"string","format":"date","minLength":11})", "its matches have 10 to 10 characters"},
      {R"({"type":"string","pattern":"^a","format":"date"})", "'pattern' together with 'format'"},
      {R"({"enum":["a","b"],"pattern":"^a"})", "'enum' together with 'pattern' is not supported"},
      {R"({"type":"string","enum":[1,2]})", "no value of 'enum' is allowed by the keywords beside it"},
      {R"({"allOf":[{"pattern":"^a"},{"pattern":"^b"}]})", "'allOf': two different 'pattern' values"},
      {R"({"allOf":[{"type":"string"},{"type":"integer"}]})",
       "no value satisfies every branch of 'allOf' (no type is allowed by every branch)"},
      {R"({"allOf":[{"enum":[1]},{"enum":[2]}]})", "(no value is in every 'enum')"},
      {R"({"allOf":[]})", "'allOf' must be a non-empty array"},
      {R"({"allOf":[{"type":"integer"},false]})", "(a branch is false)"},
      {R"({"type":"integer","minimum":"3"})", "'minimum' must be a finite number"},
      {R"({"type":"array","prefixItems":[{},{}],"items":false,"minItems":3})", "minItems 3 is above the 2 items"},
      {R"({"type":"object","required":["x"],"additionalProperties":false})",
       "the required property 'x' is not allowed"},
      {R"({"allOf":[{"properties":{"name":{"type":"string"}},"required":["name"]}],"additionalProperties":false})",
       "at #/properties/name: the required property 'name' can have no value"},
      {R"({"$defs":{"a":{"allOf":[{"$ref":"#/$defs/b"},{"type":"object"}]},"b":{"allOf":[{"$ref":"#/$defs/a"},{"type":"object"}]}},"$ref":"#/$defs/a"})",
       "nested more than 128 deep"},
  };
  for (const auto& c : cases) {
    const std::string m = schema_error(c.schema);
    INFO(m);
    CHECK(m.find(c.message) != std::string::npos);
  }
}

TEST_CASE(
    "demo model: sampled JSON under ranges, patterns, formats, allOf and tuples parses, conforms and is compact") {
  const std::vector<std::string> list = {
      R"({"type":"object","properties":{"urgency":{"type":"integer","minimum":0,"maximum":9},"line":{"type":"integer","minimum":1},)"
      R"("score":{"type":"number","minimum":-1,"maximum":1},"note":{"type":"string","maxLength":24}},"required":["urgency","line","score","note"],"additionalProperties":false})",
      R"({"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"name":{"type":"string","pattern":"^\\w+( \\w+)?$"},)"
      R"("tag":{"type":"string","pattern":"o"}},"required":["code","name","tag"]})",
      R"({"type":"object","properties":{"day":{"type":"string","format":"date"},"at":{"type":"string","format":"time"},)"
      R"("when":{"type":"string","format":"date-time"},"id":{"type":"string","format":"uuid"},"ip":{"type":"string","format":"ipv4"}},"required":["day","at","when","id","ip"]})",
      R"({"$defs":{"named":{"type":"object","properties":{"name":{"type":"string","maxLength":12}},"required":["name"]}},)"
      R"("allOf":[{"$ref":"#/$defs/named"},{"properties":{"hp":{"type":"integer","exclusiveMinimum":0,"maximum":100}},"required":["hp"]}]})",
      R"({"type":"array","prefixItems":[{"enum":["move","say"]},{"type":"integer","minimum":-5,"maximum":5},{"type":"string","maxLength":10}],"items":false,"minItems":2})",
      R"({"type":"object","properties":{"id":{"type":"integer","minimum":1,"maximum":99}},"required":["id"],"additionalProperties":{"type":"integer","minimum":0,"maximum":3}})",
  };
  for (const auto& text : list) {
    INFO(text);
    const auto schema = ordered_json::parse(text);
    for (const std::string& out : demo_samples(schema_grammar(text), sample_count(), 160)) {
      INFO(out);
      CHECK(valid_json(out, schema));
      CHECK(json_spaces(out).first == 0);
    }
  }
  // Spaces: at most one between tokens.
  const auto spaced = schema_grammar(list[0], gemma2::JsonWhitespace::Spaces);
  for (const std::string& out : demo_samples(spaced, sample_count(), 96)) {
    INFO(out);
    CHECK(valid_json(out, ordered_json::parse(list[0])));
    CHECK(json_spaces(out).second <= 1);
  }
}

TEST_CASE("JSON Schema: the subset converts to grammars that accept conforming JSON and only that") {
  const auto list = schemas();
  struct Doc {
    size_t schema;
    const char* text;
  };
  // Valid and invalid documents per schema; the grammar must agree with the
  // schema check wherever the document is in the grammar's style (free
  // whitespace here, properties in order).
  const Doc docs[] = {
      {0, R"({"name": "Hal", "level": 3, "alive": true})"},
      {0, R"({"name": "Hal", "level": 3.5, "alive": true})"},
      {0, R"({"name": "Hal", "level": 3})"},
      {1, R"({"action": "flee"})"},
      {1, R"({"action": "flee", "target": "the goblin king"})"},
      {1, R"({"action": "dance"})"},
      {1, R"({"action": "talk", "amount": -1.5e3})"},
      {2, R"({"tags": ["a", "bb"], "note": null})"},
      {2, R"({"tags": []})"},
      {2, R"({"tags": [""]})"},
      {2, R"({"tags": ["a", "b", "c", "d"]})"},
      {3, R"({"player": {"x": 1, "y": -2}, "hp": 10})"},
      {3, R"({"player": {"x": 1}})"},
      {4, R"([{"id": 1, "kind": "troll"}, {"id": 2, "kind": "goblin"}])"},
      {4, R"([])"},
      {5, R"({"reply": null, "mood": "calm"})"},
      {5, R"({"reply": "\u00e9t\u00e9", "mood": "angry"})"},
      {5, R"({"reply": true, "mood": "calm"})"},
      {6, R"({"kind": "move", "to": [1, 2]})"},
      {6, R"({"kind": "say", "text": "hello"})"},
      {6, R"({"kind": "say", "to": [1, 2]})"},
      {7, R"({"from": {"x": 0, "y": 1.5}, "to": {"x": 2, "y": 3}})"},
      {7, R"({"from": {"x": 0}, "to": {"x": 2, "y": 3}})"},
      {8, R"({"name": "a", "children": [{"name": "b"}, {"name": "c", "children": []}]})"},
      {8, R"({"name": "a", "children": [{"name": "toolongname"}]})"},
      {9, R"({"world": {"rooms": [{"name": "hall", "exits": ["n", "e"], "loot": {"gold": 3}}]}, "turn": 1})"},
      {9, R"({"world": {"rooms": [{"name": "hall", "exits": ["x"]}]}, "turn": 1})"},
  };
  std::vector<gemma2::Grammar> grammars;
  for (const auto& s : list) {
    auto gbnf = gemma2::json_schema_to_gbnf(s, {gemma2::JsonWhitespace::Free});
    INFO(s.dump());
    INFO(gbnf.message());
    REQUIRE(gbnf.ok());
    grammars.push_back(grammar(*gbnf));
  }
  for (const auto& d : docs) {
    INFO(list[d.schema].dump());
    INFO(d.text);
    CHECK(grammars[d.schema].matches(d.text) == valid_json(d.text, list[d.schema]));
  }
  // Whitespace and completion: the grammar ends at the closing brace.
  CHECK(grammars[0].matches("{\n  \"name\": \"x\",\n  \"level\": 0,\n  \"alive\": false\n}"));
  CHECK_FALSE(grammars[0].matches(R"({"name": "x", "level": 0, "alive": false} )"));
  CHECK_FALSE(grammars[0].matches(R"({"name": "x", "level": 00, "alive": false})"));
}

TEST_CASE("JSON Schema: the any-JSON grammar accepts what nlohmann's parser accepts and only that") {
  // The any-JSON grammar against nlohmann's parser.
  const auto any = grammar(gemma2::json_gbnf({gemma2::JsonWhitespace::Free}));
  for (const char* text :
       {R"({})", R"([])", R"("")", R"(-0.5e-3)", R"({"a": [1, {"b": null}], "c": "\n\u00e9"})", R"(true)"}) {
    INFO(text);
    CHECK(any.matches(text));
    CHECK_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
  }
  for (const char* text : {R"({)", R"({"a" 1})", R"([1,])", R"("\ud800")", R"(01)", R"("a
b")",
                           R"(nul)", "{\"a\":1}x"}) {
    INFO(text);
    CHECK_FALSE(any.matches(text));
  }
}

TEST_CASE("JSON Schema: unsupported or malformed schemas are errors naming the keyword and where") {
  struct Case {
    const char* schema;
    const char* message;
  };
  const Case cases[] = {
      {R"({"type":"string","not":{"const":"a"}})", "at #: the keyword 'not' is not supported"},
      {R"({"type":"object","properties":{"n":{"type":"integer","multipleOf":2}}})",
       "at #/properties/n: the keyword 'multipleOf'"},
      {R"({"type":"array","uniqueItems":true})", "'uniqueItems' is not supported"},
      {R"({"type":"strnig"})", "unknown type 'strnig'"},
      {R"({"$ref":"#/$defs/missing"})", "points at nothing"},
      {R"({"$ref":"http://example.com/s.json"})", "only references inside the schema"},
      {R"({"type":"string","maxLength":-1})", "'maxLength' must be an integer"},
      {R"({"type":"string","minLength":5,"maxLength":2})", "minLength 5 is above maxLength 2"},
      {R"({"type":"array","minItems":3,"maxItems":1})", "minItems 3 is above maxItems 1"},
      {R"({"enum":[]})", "'enum' must be a non-empty array"},
      {R"(false)", "the schema false matches nothing"},
      {R"({"properties": 3})", "'properties' must be an object"},
      {R"({"type":"object",)", "not valid JSON"},
      {R"({"$ref":"#"})", "a $ref reaches itself before any JSON text"},
      {R"({"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"},{"type":"null"}]},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})",
       "reaches itself"},
  };
  for (const auto& c : cases) {
    auto r = gemma2::json_schema_to_gbnf(c.schema);
    INFO(c.schema);
    INFO(r.message());
    CHECK_FALSE(r.ok());
    CHECK(r.message().find(c.message) != std::string::npos);
  }
  // Hostile nesting and expansion are refused, not followed.
  std::string deep;
  for (int i = 0; i < 1000; ++i) deep += R"({"type":"array","items":)";
  deep += "{}" + std::string(1000, '}');
  CHECK(gemma2::json_schema_to_gbnf(deep).message().find("nested more than 128 deep") != std::string::npos);
  std::string wide = R"({"type":"integer"})";
  for (int i = 0; i < 40; ++i) wide = R"({"anyOf":[{}, {}],"properties":{"p":)" + wide + "}}";
  CHECK(gemma2::json_schema_to_gbnf(wide).message().find("sub-schemas") != std::string::npos);
  // Annotations are ignored; {} and true mean any value.
  CHECK(gemma2::json_schema_to_gbnf(R"({"title":"t","description":"d","format":"email","type":"string"})").ok());
  CHECK(grammar(*gemma2::json_schema_to_gbnf("{}")).matches("[1,\"x\"]"));
  CHECK(grammar(*gemma2::json_schema_to_gbnf("true")).matches("null"));
}

TEST_CASE("demo model: sampled completions under JSON grammars parse and conform") {
  const int n = samples_per_grammar();
  SUBCASE("any JSON value") {
    sample_completions(grammar(gemma2::json_gbnf()), n, 48, [](const std::string& text) {
      CHECK_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
    });
  }
  const auto list = schemas();
  for (size_t i = 0; i < list.size(); ++i) {
    INFO("schema " << i << ": " << list[i].dump());
    auto gbnf = gemma2::json_schema_to_gbnf(list[i]);
    REQUIRE(gbnf.ok());
    sample_completions(grammar(*gbnf), n, 64, [&](const std::string& text) { CHECK(valid_json(text, list[i])); });
  }
}
