// JSON Schema -> GBNF grammar (grammar.hpp), for output a program can parse.
//
// The subset (all that llama.cpp's converter takes, and exact where it is
// not):
// - type (one or a list), enum and const (values kept only where the
//   schema's type, bounds and lengths allow them);
// - objects: properties (written in the schema's order), required,
//   additionalProperties (false, true or a schema; other keys never repeat a
//   named property);
// - arrays: items, prefixItems (tuples; items then covers the elements after
//   them, false for none; draft 4-7's items array and additionalItems too),
//   minItems, maxItems;
// - strings: minLength, maxLength (code points), pattern (ECMAScript regular
//   expressions over code points: literals, escapes, ., classes, \d \w \s
//   and their negations, groups, alternation, ? * + {m} {m,} {m,n}, ^ and $
//   at the start and end of the pattern or of its top-level alternatives; a
//   pattern without them matches anywhere in the string, as JSON Schema
//   says), format date, time, date-time (RFC 3339), uuid and ipv4 (other
//   formats are annotations);
// - numbers and integers: minimum, maximum, exclusiveMinimum and
//   exclusiveMaximum (draft 4's boolean form too), exactly;
// - anyOf and oneOf (oneOf as anyOf: its branches are meant to exclude each
//   other), allOf (merged into one schema: properties, required, bounds,
//   types, enums, items), and $ref to local definitions ("#/$defs/name",
//   "#/definitions/name" or any "#/..." pointer, recursion included;
//   keywords beside $ref are ignored, as in draft 7).
// Annotations (title, description, default, examples, other formats,
// $schema, $id, $comment, ...) are ignored. Other assertions (multipleOf,
// not, if/then/else, patternProperties, uniqueItems, contains, ...) are
// errors naming the keyword and where it is, since the output could not be
// guaranteed to satisfy them.
//
// The text produced: properties in the schema's order (required ones
// always, optional ones where the model chooses), no properties the schema
// does not name unless additionalProperties allows them, whitespace between
// tokens as JsonGrammarOptions says (none by default), numbers short enough
// to be read back exactly (integers of at most 16 digits; a bounded number
// has no exponent and at most 15 significant digits, so a validator that
// reads it as a double still sees it within its bounds), and no \u escape
// of a lone surrogate (which strict parsers refuse). The grammar ends with
// the value: it is complete at its closing character.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/grammar.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// Whitespace between the tokens of the JSON a grammar writes (never inside
// strings, where it is text).
enum class JsonWhitespace {
  // None: {"a":1,"b":[2,3]}. The default: a budget counts tokens, and a
  // small model allowed to indent spends it on spaces (the demo model's
  // strings came out empty), while a program parses either text the same.
  Compact,
  Spaces,  // at most one space between tokens: {"a": 1, "b": [2, 3]}
  Free,    // a space, or a line break and up to 16 spaces or tabs (pretty-printed JSON)
};

// How a JSON or JSON-Schema grammar writes its text.
struct JsonGrammarOptions {
  JsonWhitespace whitespace = JsonWhitespace::Compact;
};

// GBNF rules for any JSON value (RFC 8259), without a root rule; the
// schema converter builds on them. Every rule puts `ws` between tokens.
inline std::string json_value_rules(const JsonGrammarOptions& options = {}) {
  const char* ws = options.whitespace == JsonWhitespace::Free     ? R"(( " " | "\n" [ \t]{0,16} )?)"
                   : options.whitespace == JsonWhitespace::Spaces ? R"(" "?)"
                                                                  : R"("")";
  return std::string(R"(value   ::= object | array | string | number | "true" | "false" | "null"
object  ::= "{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"
array   ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string  ::= "\"" char* "\""
char    ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" hex4 )
hex4    ::= [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex
hex     ::= [0-9a-fA-F]
number  ::= integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?
integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
boolean ::= "true" | "false"
null    ::= "null"
ws      ::= )") + ws + "\n";
}

// A grammar for any JSON value.
inline std::string json_gbnf(const JsonGrammarOptions& options = {}) { return "root ::= value\n" + json_value_rules(options); }

namespace detail {

// A GBNF string literal for UTF-8 text.
inline std::string gbnf_literal(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// "(x)" repeated lo to hi times (hi < 0: unbounded) in GBNF; "" for none.
inline std::string gbnf_repeat(const std::string& x, long lo, long hi) {
  if (hi == 0) return "";
  if (lo == 0 && hi < 0) return "(" + x + ")*";
  if (lo == 1 && hi < 0) return "(" + x + ")+";
  if (lo == 0 && hi == 1) return "(" + x + ")?";
  if (hi < 0) return "(" + x + "){" + std::to_string(lo) + ",}";
  if (lo == hi) return lo == 1 ? x : "(" + x + "){" + std::to_string(lo) + "}";
  return "(" + x + "){" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

// ---- Number ranges ----------------------------------------------------------
//
// A range becomes digit-by-digit alternatives over decimal text, so the
// grammar holds exactly the numbers in it: no leading zeros, no "-0".

// The exact value of a JSON number: sign, integer digits without leading
// zeros ("0" for none) and fraction digits without trailing zeros.
struct Decimal {
  bool negative = false;
  std::string whole = "0", frac;
};

// From JSON number text ("-12.50", "1e+300", "7"); nullopt for anything
// else, and for exponents past 400 (beyond any double).
inline std::optional<Decimal> parse_decimal(std::string_view text) {
  Decimal d;
  size_t i = 0;
  if (i < text.size() && text[i] == '-') d.negative = true, ++i;
  std::string digits;
  long point = -1;
  for (; i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'); ++i) {
    if (text[i] != '.') digits += text[i];
    else if (point >= 0) return std::nullopt;
    else point = static_cast<long>(digits.size());
  }
  if (digits.empty()) return std::nullopt;
  if (point < 0) point = static_cast<long>(digits.size());
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    bool minus = false;
    if (++i < text.size() && (text[i] == '+' || text[i] == '-')) minus = text[i++] == '-';
    long e = 0;
    const size_t start = i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && e <= 400; ++i) e = e * 10 + (text[i] - '0');
    if (i == start || e > 400) return std::nullopt;
    point += minus ? -e : e;
  }
  if (i != text.size()) return std::nullopt;
  const auto n = static_cast<long>(digits.size());
  if (point <= 0) d.whole = "", d.frac = std::string(static_cast<size_t>(-point), '0') + digits;
  else if (point >= n) d.whole = digits + std::string(static_cast<size_t>(point - n), '0'), d.frac = "";
  else d.whole = digits.substr(0, static_cast<size_t>(point)), d.frac = digits.substr(static_cast<size_t>(point));
  d.whole.erase(0, std::min(d.whole.find_first_not_of('0'), d.whole.size()));
  if (d.whole.empty()) d.whole = "0";
  d.frac.erase(d.frac.find_last_not_of('0') + 1);
  if (d.whole == "0" && d.frac.empty()) d.negative = false;
  return d;
}

// <0, 0, >0 as |a| is below, at or above |b|.
inline int compare_magnitude(const Decimal& a, const Decimal& b) {
  if (a.whole.size() != b.whole.size()) return a.whole.size() < b.whole.size() ? -1 : 1;
  if (int c = a.whole.compare(b.whole); c != 0) return c < 0 ? -1 : 1;
  for (size_t i = 0; i < std::max(a.frac.size(), b.frac.size()); ++i) {
    const char x = i < a.frac.size() ? a.frac[i] : '0', y = i < b.frac.size() ? b.frac[i] : '0';
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}
inline int compare(const Decimal& a, const Decimal& b) {
  if (a.negative != b.negative) return a.negative ? -1 : 1;
  return a.negative ? -compare_magnitude(a, b) : compare_magnitude(a, b);
}

// One end of a range; strict: the value itself is outside.
struct NumberBound {
  Decimal value;
  bool strict = false;
};

inline bool all_of(std::string_view s, char c) { return s.find_first_not_of(c) == std::string_view::npos; }

// "[0-9]" repeated lo to hi times; "" for none.
inline std::string digit_run(int lo, int hi) {
  if (hi <= 0) return "";
  if (lo == hi) return hi == 1 ? "[0-9]" : "[0-9]{" + std::to_string(hi) + "}";
  if (lo == 0 && hi == 1) return "[0-9]?";
  return "[0-9]{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

// A set of digit strings in GBNF: its non-empty strings as alternatives
// ("" for none), and whether it holds the empty string.
struct DigitSet {
  std::string nonempty;
  bool empty = false;
  bool none() const { return nonempty.empty() && !empty; }
  bool operator==(const DigitSet& o) const { return nonempty == o.nonempty && empty == o.empty; }
};

// The digit strings S of length n (exact) or 0 to n whose value as the
// digits after a decimal point, 0.S, lies between lo and hi (digit strings
// read the same way, of any length; an absent bound is none). For strings
// of one length this is also their order as integers. Needs lo <= hi.
inline DigitSet digits_between(std::optional<std::string_view> lo, bool lo_strict, std::optional<std::string_view> hi,
                               bool hi_strict, int n, bool exact) {
  if (lo && !lo_strict && all_of(*lo, '0')) lo.reset();  // every S is at least 0.000
  if (hi && !hi_strict && hi->size() >= static_cast<size_t>(n) && all_of(hi->substr(0, static_cast<size_t>(n)), '9'))
    hi.reset();  // no S of n digits is above 0.999...
  DigitSet out;
  if (!exact || n == 0) out.empty = !lo && (!hi || !hi_strict || !all_of(*hi, '0'));  // S = "" is 0
  if (n == 0) return out;
  auto any = [&](int k) {  // every string of the k digits left
    DigitSet s;
    s.nonempty = digit_run(exact ? k : 1, k);
    s.empty = !exact || k == 0;
    return s;
  };
  if (!lo && !hi) return any(n);
  if (!lo && !hi_strict && all_of(*hi, '0')) {  // only zeros
    out.nonempty = n == 1 ? "\"0\"" : exact ? "\"0\"{" + std::to_string(n) + "}" : "\"0\"{1," + std::to_string(n) + "}";
    return out;
  }
  std::vector<std::string> alts;
  auto add = [&](int from, int to, const DigitSet& tail) {
    if (from > to || tail.none()) return;
    std::string alt = from == to ? "[" + std::to_string(from) + "]" : "[" + std::to_string(from) + "-" + std::to_string(to) + "]";
    if (!tail.nonempty.empty()) alt += " (" + tail.nonempty + ")" + (tail.empty ? "?" : "");
    alts.push_back(alt);
  };
  auto first = [](std::string_view s) { return s.empty() ? 0 : s[0] - '0'; };
  auto rest = [](std::string_view s) { return s.empty() ? s : s.substr(1); };
  const int a = lo ? first(*lo) : 0, b = hi ? first(*hi) : 9;
  if (lo && hi && a == b) {
    add(a, a, digits_between(rest(*lo), lo_strict, rest(*hi), hi_strict, n - 1, exact));
  } else {  // the first digit at a bound, between them, or at the other
    const DigitSet free = any(n - 1);
    int from = 0, to = 9;
    if (lo) {
      const DigitSet tail = digits_between(rest(*lo), lo_strict, std::nullopt, false, n - 1, exact);
      from = tail == free ? a : (add(a, a, tail), a + 1);
    }
    if (hi) {
      const DigitSet tail = digits_between(std::nullopt, false, rest(*hi), hi_strict, n - 1, exact);
      to = tail == free ? b : (add(b, b, tail), b - 1);
    }
    add(from, to, free);
  }
  for (const auto& alt : alts) out.nonempty += (out.nonempty.empty() ? "" : " | ") + alt;
  return out;
}

// Whole numbers as digit strings without leading zeros.
inline std::string whole_plus_one(std::string s) {
  size_t i = s.size();
  while (i > 0 && s[i - 1] == '9') s[--i] = '0';
  if (i == 0) return "1" + s;
  ++s[i - 1];
  return s;
}
inline std::string whole_minus_one(std::string s) {  // s > 0
  size_t i = s.size();
  while (s[i - 1] == '0') s[--i] = '9';
  --s[i - 1];
  if (s.size() > 1 && s[0] == '0') s.erase(0, 1);
  return s;
}
inline bool whole_less_or_equal(const std::string& a, const std::string& b) {
  return a.size() != b.size() ? a.size() < b.size() : a <= b;
}

// GBNF alternatives for the whole numbers a..b (a <= b).
inline std::string whole_range(const std::string& a, const std::string& b) {
  std::vector<std::string> alts;
  size_t run = 0;  // lengths from `run` up to the current one take every digit string
  auto close_run = [&](size_t last) {
    if (run == 0) return;
    alts.push_back("[1-9] " + digit_run(static_cast<int>(run - 1), static_cast<int>(last - 1)));
    run = 0;
  };
  for (size_t k = a.size(); k <= b.size(); ++k) {
    const std::string lo = k == a.size() ? a : "1" + std::string(k - 1, '0'), hi = k == b.size() ? b : std::string(k, '9');
    if (k > 1 && lo[0] == '1' && all_of(std::string_view(lo).substr(1), '0') && all_of(hi, '9')) {
      if (run == 0) run = k;
      continue;
    }
    close_run(k - 1);
    alts.push_back(digits_between(lo, false, hi, false, static_cast<int>(k), true).nonempty);
  }
  close_run(b.size());
  std::string out;
  for (const auto& alt : alts) out += (out.empty() ? "" : " | ") + alt;
  return out;
}

// GBNF for the non-negative numbers between lo and hi (absent: 0 and
// 10^digits), with at most `decimals` digits after the point; "" if none.
inline std::string magnitude_range(const std::optional<NumberBound>& lo, const std::optional<NumberBound>& hi, int digits,
                                   int decimals) {
  using Bound = std::optional<std::string_view>;
  const std::string lw = lo ? lo->value.whole : "0", hw = hi ? hi->value.whole : std::string(static_cast<size_t>(digits), '9');
  const Bound lf = lo ? Bound(lo->value.frac) : std::nullopt, hf = hi ? Bound(hi->value.frac) : std::nullopt;
  const bool ls = lo && lo->strict, hs = hi && hi->strict;
  std::vector<std::string> alts;
  auto add = [&](const std::string& whole, const DigitSet& frac) {
    if (frac.none()) return;
    std::string alt = whole;
    if (!frac.nonempty.empty()) alt += " (\".\" (" + frac.nonempty + "))" + (frac.empty ? "?" : "");
    alts.push_back(alt);
  };
  if (lw == hw) {
    add("\"" + lw + "\"", digits_between(lf, ls, hf, hs, decimals, false));
  } else {
    // The lowest and highest whole numbers may take only some fractions.
    const DigitSet any = digits_between(std::nullopt, false, std::nullopt, false, decimals, false);
    const DigitSet low = digits_between(lf, ls, std::nullopt, false, decimals, false);
    const DigitSet high = digits_between(std::nullopt, false, hf, hs, decimals, false);
    std::string from = lw, to = hw;
    if (!(low == any)) add("\"" + lw + "\"", low), from = whole_plus_one(lw);
    if (!(high == any)) add("\"" + hw + "\"", high), to = whole_minus_one(hw);
    if (whole_less_or_equal(from, to)) add("(" + whole_range(from, to) + ")", any);
  }
  std::string out;
  for (const auto& alt : alts) out += (out.empty() ? "" : " | ") + alt;
  return out;
}

// GBNF for the numbers between lo and hi (absent: none; lo <= hi), of at
// most `digits` digits before the point and `decimals` after; "" if none.
inline std::string number_range(const std::optional<NumberBound>& lo, const std::optional<NumberBound>& hi, int digits,
                                int decimals) {
  std::vector<std::string> alts;
  auto magnitude = [](const NumberBound& b) {
    NumberBound m = b;
    m.value.negative = false;
    return m;
  };
  if (!lo || lo->value.negative) {  // -y for y in (max(0, -hi), -lo]
    const std::optional<NumberBound> ylo = hi && hi->value.negative ? magnitude(*hi) : NumberBound{Decimal{}, true};
    const std::optional<NumberBound> yhi = lo ? std::optional<NumberBound>(magnitude(*lo)) : std::nullopt;
    if (auto m = magnitude_range(ylo, yhi, digits, decimals); !m.empty()) alts.push_back("\"-\" (" + m + ")");
  }
  if (!hi || !hi->value.negative) {
    if (auto m = magnitude_range(lo && !lo->value.negative ? lo : std::nullopt, hi, digits, decimals); !m.empty()) alts.push_back(m);
  }
  std::string out;
  for (const auto& alt : alts) out += (out.empty() ? "" : " | ") + alt;
  return out;
}

// ---- Patterns ---------------------------------------------------------------

// Unicode scalar values as sorted, disjoint, non-adjacent ranges.
using CodeRanges = std::vector<std::pair<uint32_t, uint32_t>>;

// Any ranges sorted and merged, surrogates (not characters) cut out.
inline CodeRanges code_ranges(CodeRanges r) {
  std::sort(r.begin(), r.end());
  CodeRanges out;
  auto push = [&](uint32_t a, uint32_t b) {
    if (a > b) return;
    if (!out.empty() && a <= out.back().second + 1) out.back().second = std::max(out.back().second, b);
    else out.emplace_back(a, b);
  };
  for (auto [a, b] : r) {
    if (a <= 0xDFFF && b >= 0xD800) {
      if (a < 0xD800) push(a, 0xD7FF);
      if (b > 0xDFFF) push(0xE000, b);
    } else {
      push(a, b);
    }
  }
  return out;
}
inline CodeRanges complement(const CodeRanges& r) {  // r from code_ranges
  CodeRanges out;
  uint32_t next = 0;
  for (auto [a, b] : r) {
    if (a > next) out.emplace_back(next, a - 1);
    next = b + 1;
  }
  if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
  return code_ranges(out);
}
inline CodeRanges intersect(const CodeRanges& x, const CodeRanges& y) {
  CodeRanges out;
  for (size_t i = 0, j = 0; i < x.size() && j < y.size();) {
    const uint32_t a = std::max(x[i].first, y[j].first), b = std::min(x[i].second, y[j].second);
    if (a <= b) out.emplace_back(a, b);
    (x[i].second < y[j].second ? i : j)++;
  }
  return out;
}
inline bool contains(const CodeRanges& r, uint32_t c) {
  for (auto [a, b] : r)
    if (c >= a && c <= b) return true;
  return false;
}

// A regular expression as a tree.
struct RegexNode {
  enum class Kind { Chars, Sequence, Choice, Repeat };
  Kind kind = Kind::Sequence;
  CodeRanges chars;              // Chars
  std::vector<RegexNode> parts;  // Sequence, Choice; Repeat: its one part
  long min = 0, max = -1;        // Repeat; max -1: unbounded
};

// Lengths in characters of the texts a regular expression matches: min,
// and max (-1: unbounded); counts past 2^40 are taken as unbounded.
inline std::pair<long long, long long> regex_lengths(const RegexNode& n) {
  constexpr long long kHuge = 1LL << 40;
  auto cap = [&](long long v) { return v > kHuge ? -1 : v; };
  switch (n.kind) {
    case RegexNode::Kind::Chars:
      return {1, 1};
    case RegexNode::Kind::Sequence: {
      long long lo = 0, hi = 0;
      for (const auto& p : n.parts) {
        const auto [a, b] = regex_lengths(p);
        lo = std::min(lo + a, kHuge);
        hi = hi < 0 || b < 0 ? -1 : cap(hi + b);
      }
      return {lo, hi};
    }
    case RegexNode::Kind::Choice: {
      long long lo = kHuge, hi = 0;
      for (const auto& p : n.parts) {
        const auto [a, b] = regex_lengths(p);
        lo = std::min(lo, a);
        hi = hi < 0 || b < 0 ? -1 : std::max(hi, b);
      }
      return {lo, hi};
    }
    case RegexNode::Kind::Repeat: {
      const auto [a, b] = regex_lengths(n.parts[0]);
      const long long lo = std::min(a * n.min, kHuge);
      if (b == 0 || n.max == 0) return {lo, 0};
      return {lo, b < 0 || n.max < 0 ? -1 : cap(b * n.max)};
    }
  }
  return {0, 0};
}

// The non-empty texts a regular expression matches; nullopt if none.
inline std::optional<RegexNode> without_empty(const RegexNode& n) {
  using Kind = RegexNode::Kind;
  const auto nullable = [](const RegexNode& x) { return regex_lengths(x).first == 0; };
  switch (n.kind) {
    case Kind::Chars:
      return n;
    case Kind::Choice: {
      RegexNode out{Kind::Choice, {}, {}, 0, -1};
      for (const auto& p : n.parts)
        if (auto x = without_empty(p)) out.parts.push_back(std::move(*x));
      if (out.parts.empty()) return std::nullopt;
      return out;
    }
    case Kind::Sequence: {  // a non-empty first part then the rest, or an empty one then a non-empty rest
      if (n.parts.empty()) return std::nullopt;
      RegexNode rest{Kind::Sequence, {}, std::vector<RegexNode>(n.parts.begin() + 1, n.parts.end()), 0, -1};
      RegexNode out{Kind::Choice, {}, {}, 0, -1};
      if (auto first = without_empty(n.parts[0])) out.parts.push_back(RegexNode{Kind::Sequence, {}, {std::move(*first), rest}, 0, -1});
      if (nullable(n.parts[0]))
        if (auto more = without_empty(rest)) out.parts.push_back(std::move(*more));
      if (out.parts.empty()) return std::nullopt;
      return out.parts.size() == 1 ? std::move(out.parts[0]) : out;
    }
    case Kind::Repeat: {
      if (n.max == 0) return std::nullopt;
      auto body = nullable(n.parts[0]) ? without_empty(n.parts[0]) : std::optional<RegexNode>(n.parts[0]);
      if (!body) return std::nullopt;
      const long lo = nullable(n.parts[0]) ? 1 : std::max(n.min, 1L);
      return RegexNode{Kind::Repeat, {}, {std::move(*body)}, lo, n.max};
    }
  }
  return std::nullopt;
}

// ECMAScript regular expressions (JSON Schema's `pattern`), read as
// sequences of Unicode characters. What it cannot turn into an exact
// grammar (backreferences, lookaround, word boundaries, anchors inside the
// pattern, property escapes) is an error saying so.
class RegexParser {
 public:
  explicit RegexParser(std::string_view pattern) : text_(pattern) {}

  // The pattern as the texts it finds: each top-level alternative with
  // any text before it unless anchored by ^, and after it unless by $.
  Result<RegexNode> run() {
    for (size_t i = 0; i < text_.size();) {
      uint32_t cp = 0;
      const size_t n = utf8_decode(text_, i, cp);
      if (n == 0) return err("the pattern is not valid UTF-8");
      cps_.push_back(cp);
      i += n;
    }
    RegexNode top{RegexNode::Kind::Choice, {}, {}, 0, -1};
    RegexNode any_text{RegexNode::Kind::Repeat, {}, {RegexNode{RegexNode::Kind::Chars, all(), {}, 0, -1}}, 0, -1};
    do {
      const bool start = eat('^');
      RegexNode seq = sequence(0);
      const bool end = eat('$');
      token_ = pos_;
      if (error_.empty() && pos_ < cps_.size() && cps_[pos_] != '|')
        fail(peek() == ')' ? "unmatched ')'" : "'^' and '$' are supported only at the start and end of the pattern or of its top-level alternatives");
      if (!start) seq.parts.insert(seq.parts.begin(), any_text);
      if (!end) seq.parts.push_back(any_text);
      top.parts.push_back(std::move(seq));
    } while (error_.empty() && eat('|'));
    if (!error_.empty()) return Error{error_};
    return top;
  }

 private:
  static constexpr int kMaxGroups = 64;
  static constexpr long kMaxCount = 100000;  // GbnfParser::kMaxRepeat

  static size_t utf8_decode(std::string_view s, size_t i, uint32_t& cp) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return cp = c, 1;
    const size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return 0;
    cp = c & (0xFFu >> (n + 1));
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= kMin[n] && cp <= kMaxCodePoint && (cp < 0xD800 || cp > 0xDFFF) ? n : 0;
  }

  static CodeRanges all() { return code_ranges({{0, kMaxCodePoint}}); }
  static CodeRanges digit() { return {{'0', '9'}}; }
  static CodeRanges word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
  static CodeRanges space() {  // ECMAScript's WhiteSpace and LineTerminator
    return code_ranges({{9, 13}, {32, 32}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029},
                        {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF}});
  }

  template <class... Parts>
  void fail(const Parts&... parts) {
    if (error_.empty()) error_ = err("at character ", token_ + 1, " of the pattern: ", parts...).message;
  }
  uint32_t peek(size_t ahead = 0) const { return pos_ + ahead < cps_.size() ? cps_[pos_ + ahead] : 0xFFFFFFFF; }
  bool eat(uint32_t c) { return peek() == c ? (++pos_, true) : false; }

  // Alternatives up to a ')' or the end.
  RegexNode choice(int depth) {
    RegexNode out{RegexNode::Kind::Choice, {}, {}, 0, -1};
    do out.parts.push_back(sequence(depth));
    while (error_.empty() && eat('|'));
    return out.parts.size() == 1 ? std::move(out.parts[0]) : out;
  }

  RegexNode sequence(int depth) {
    RegexNode out;
    while (error_.empty() && pos_ < cps_.size() && peek() != '|' && peek() != ')') {
      if (peek() == '$' && depth == 0) break;
      RegexNode a;
      if (!atom(a, depth)) break;
      quantifier(a);
      out.parts.push_back(std::move(a));
    }
    return out;
  }

  bool atom(RegexNode& out, int depth) {
    token_ = pos_;
    const uint32_t c = cps_[pos_++];
    out.kind = RegexNode::Kind::Chars;
    switch (c) {
      case '^': case '$':
        return fail("'^' and '$' are supported only at the start and end of the pattern or of its top-level alternatives"), false;
      case '*': case '+': case '?': case '{':
        return fail("'", std::string(1, static_cast<char>(c)), "' has nothing before it to repeat"), false;
      case '.':
        out.chars = complement(code_ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));
        return true;
      case '[':
        return char_class(out.chars);
      case '\\':
        return escape(out.chars, false);
      case '(': {
        if (eat('?')) {
          if (eat(':')) {
          } else if (peek() == '<' && peek(1) != '=' && peek(1) != '!') {  // a named group: the name is not needed
            while (pos_ < cps_.size() && peek() != '>') ++pos_;
            if (!eat('>')) return fail("unterminated group name"), false;
          } else {
            return fail("lookahead and lookbehind ('(?=', '(?!', '(?<=', '(?<!') are not supported"), false;
          }
        }
        if (depth + 1 > kMaxGroups) return fail("groups nested more than ", kMaxGroups, " deep"), false;
        out = choice(depth + 1);
        if (!error_.empty()) return false;
        if (!eat(')')) return fail("a ')' is missing"), false;
        return true;
      }
      default:
        out.chars = {{c, c}};
        return true;
    }
  }

  void quantifier(RegexNode& atom) {
    token_ = pos_;
    long lo = 0, hi = -1;
    if (eat('*')) {
    } else if (eat('+')) {
      lo = 1;
    } else if (eat('?')) {
      hi = 1;
    } else if (peek() == '{') {
      ++pos_;
      if (!number(lo)) return fail("'{' must start a repetition {m}, {m,} or {m,n}");
      hi = lo;
      if (eat(',')) hi = peek() == '}' ? -1 : (number(hi) ? hi : -2);
      if (hi == -2 || !eat('}')) return fail("'{' must start a repetition {m}, {m,} or {m,n}");
      if (hi >= 0 && hi < lo) return fail("the repetition {", lo, ",", hi, "} has its maximum below its minimum");
    } else {
      return;
    }
    eat('?');  // lazy: the same texts match
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{') return fail("a repetition cannot be repeated");
    atom = RegexNode{RegexNode::Kind::Repeat, {}, {std::move(atom)}, lo, hi};
  }

  bool number(long& v) {
    const size_t start = pos_;
    for (v = 0; pos_ < cps_.size() && peek() >= '0' && peek() <= '9'; ++pos_)
      if ((v = v * 10 + static_cast<long>(peek() - '0')) > kMaxCount) return fail("a repetition count over ", kMaxCount), false;
    return pos_ > start;
  }

  bool hex(int digits, uint32_t& v) {
    v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      const uint32_t c = peek();
      const int d = c >= '0' && c <= '9' ? int(c - '0') : c >= 'a' && c <= 'f' ? int(c - 'a' + 10) : c >= 'A' && c <= 'F' ? int(c - 'A' + 10) : -1;
      if (d < 0) return fail("expected ", digits, " hex digits in an escape"), false;
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  }

  // After a backslash: a character or a class (\d \w \s and negations).
  bool escape(CodeRanges& out, bool in_class) {
    if (pos_ >= cps_.size()) return fail("the pattern ends with a backslash"), false;
    const uint32_t c = cps_[pos_++];
    auto one = [&](uint32_t x) { return out = {{x, x}}, true; };
    switch (c) {
      case 'd': return out = digit(), true;
      case 'D': return out = complement(digit()), true;
      case 'w': return out = word(), true;
      case 'W': return out = complement(word()), true;
      case 's': return out = space(), true;
      case 'S': return out = complement(space()), true;
      case 'f': return one('\f');
      case 'n': return one('\n');
      case 'r': return one('\r');
      case 't': return one('\t');
      case 'v': return one('\v');
      case 'b':
        if (in_class) return one('\b');
        return fail("word boundaries (\\b, \\B) are not supported"), false;
      case 'B': return fail("word boundaries (\\b, \\B) are not supported"), false;
      case '0':
        if (peek() >= '0' && peek() <= '9') return fail("octal escapes are not supported"), false;
        return one(0);
      case 'c': {
        const uint32_t l = peek();
        if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z'))) return fail("\\c must be followed by a letter"), false;
        ++pos_;
        return one(l % 32);
      }
      case 'x': {
        uint32_t v = 0;
        return hex(2, v) && one(v);
      }
      case 'u': {
        uint32_t v = 0;
        if (!hex(4, v)) return false;
        if (v >= 0xD800 && v <= 0xDBFF && peek() == '\\' && peek(1) == 'u') {  // a surrogate pair is one character
          const size_t save = pos_;
          pos_ += 2;
          uint32_t low = 0;
          if (hex(4, low) && low >= 0xDC00 && low <= 0xDFFF) return one(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00));
          pos_ = save;
        }
        if (v >= 0xD800 && v <= 0xDFFF) return fail("\\u", std::hex, v, " is a lone surrogate, not a character"), false;
        return one(v);
      }
      case 'k': return fail("backreferences are not supported"), false;
      case 'p': case 'P': return fail("Unicode property escapes (\\p, \\P) are not supported"), false;
      default:
        if (c >= '1' && c <= '9') return fail("backreferences are not supported"), false;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
          return fail("unknown escape '\\", std::string(1, static_cast<char>(c)), "'"), false;
        return one(c);
    }
  }

  // After '[': the class up to its ']'.
  bool char_class(CodeRanges& out) {
    const bool negate = eat('^');
    CodeRanges members;
    auto single = [](const CodeRanges& r) { return r.size() == 1 && r[0].first == r[0].second; };
    auto atom = [&](CodeRanges& r) {
      const uint32_t c = cps_[pos_++];
      if (c == '\\') return escape(r, true);
      r = {{c, c}};
      return true;
    };
    while (pos_ < cps_.size() && peek() != ']') {
      CodeRanges a;
      if (!atom(a)) return false;
      if (peek() == '-' && peek(1) != ']' && pos_ + 1 < cps_.size()) {
        ++pos_;
        CodeRanges b;
        if (!atom(b)) return false;
        if (!single(a) || !single(b)) return fail("a range in a class must be between two characters"), false;
        if (a[0].first > b[0].first) return fail("the class range is reversed"), false;
        members.emplace_back(a[0].first, b[0].first);
      } else {
        members.insert(members.end(), a.begin(), a.end());
      }
    }
    if (!eat(']')) return fail("a character class has no closing ']'"), false;
    out = code_ranges(members);
    if (negate) out = complement(out);
    if (out.empty()) return fail("a character class matches no character"), false;
    return true;
  }

  std::string_view text_;
  std::vector<uint32_t> cps_;
  size_t pos_ = 0, token_ = 0;  // token_: where what is being read starts
  std::string error_;
};

// Formats as patterns: dates of the calendar (month lengths, leap years),
// RFC 3339 times with a zone (seconds 00-59, up to nine decimals).
inline const char* format_pattern(const std::string& format) {
#define GEMMA2_DATE                                                                                                \
  "(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|" \
  "1[0-9]|2[0-8]))|(?:[0-9]{2}(?:[02468][48]|[13579][26]|[2468]0)|(?:[02468][048]|[13579][26])00)-02-29)"
#define GEMMA2_TIME "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#define GEMMA2_OCTET "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
  static const std::map<std::string, const char*> kFormats = {
      {"date", "^" GEMMA2_DATE "$"},
      {"time", "^" GEMMA2_TIME "$"},
      {"date-time", "^" GEMMA2_DATE "T" GEMMA2_TIME "$"},
      {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
      {"ipv4", "^(?:" GEMMA2_OCTET "\\.){3}" GEMMA2_OCTET "$"},
  };
#undef GEMMA2_DATE
#undef GEMMA2_TIME
#undef GEMMA2_OCTET
  const auto it = kFormats.find(format);
  return it == kFormats.end() ? nullptr : it->second;
}

// ---- The converter ----------------------------------------------------------

class SchemaConverter {
 public:
  using json = nlohmann::ordered_json;

  SchemaConverter(const json& root, const JsonGrammarOptions& options) : root_(root), options_(options) {}

  Result<std::string> run() {
    const std::string body = visit(root_, "root", "#");
    if (!error_.empty()) return Error{error_};
    std::string out = "root ::= " + body + "\n";
    for (const auto& [name, text] : rules_) out += name + " ::= " + text + "\n";
    out += json_value_rules(options_);
    // References can loop without any JSON text between them ({"$ref": "#"},
    // or a -> b -> a): the grammar is then left-recursive, which its parser
    // finds; such a schema describes no document. The parser also refuses
    // a grammar too large to follow (a pattern's repetitions multiplied).
    if (auto check = GbnfParser(out, "root").run(); !check) {
      if (check.message().find("left recursion") != std::string::npos)
        return err("JSON Schema: a $ref reaches itself before any JSON text, so the schema describes no document (",
                   check.message(), ")");
      return err("JSON Schema: its grammar cannot be built: ", check.message());
    }
    return out;
  }

 private:
  template <class... Parts>
  std::string fail(const std::string& path, const Parts&... parts) {
    if (error_.empty()) error_ = err("JSON Schema at ", path, ": ", parts...).message;
    return "value";
  }

  // A new rule name from a hint: letters, digits and '-', unique.
  std::string rule_name(const std::string& hint) {
    std::string name;
    for (char c : hint) name += (std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
    if (name.empty()) name = "r";
    std::string unique = name;
    for (int i = 2; !used_.insert(unique).second; ++i) unique = name + "-" + std::to_string(i);
    return unique;
  }
  std::string define(const std::string& hint, const std::string& body) {
    const std::string name = rule_name(hint);
    rules_.emplace_back(name, body);
    return name;
  }

  // A non-negative integer keyword (minLength, maxItems, ...); -1 if absent.
  long count(const json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return -1;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > GbnfParser::kMaxRepeat)
      return static_cast<void>(fail(path, "'", key, "' must be an integer from 0 to ", GbnfParser::kMaxRepeat)), 0;
    return static_cast<long>(v.get<long long>());
  }

  // Keywords that constrain values and are not in the subset.
  static bool unsupported(const std::string& key) {
    static const std::set<std::string> kUnsupported = {
        "multipleOf", "not", "if", "then", "else", "patternProperties", "propertyNames", "minProperties",
        "maxProperties", "uniqueItems", "contains", "minContains", "maxContains", "dependentRequired",
        "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems", "contentEncoding",
        "contentMediaType", "contentSchema", "$dynamicRef", "$recursiveRef"};
    return kUnsupported.count(key) > 0;
  }
  // Keywords that constrain values and are in the subset.
  static bool assertion(const std::string& key) {
    static const std::set<std::string> kAssertions = {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
        "additionalItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref"};
    return kAssertions.count(key) > 0;
  }
  // Whether a schema (object) says anything beyond annotations.
  static bool asserts(const json& s) {
    for (const auto& [key, v] : s.items())
      if (assertion(key) || unsupported(key)) return true;
    return false;
  }

  // JSON text of a value; invalid UTF-8 in a caller-built document is
  // replaced, never thrown over.
  static std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

  // Schemas nested deeper than this, or expanding to more sub-schemas
  // than this (anyOf merges siblings into each branch), are refused
  // rather than exhausting the stack or the memory.
  static constexpr int kMaxDepth = 128;
  static constexpr size_t kMaxVisits = 100000;

  bool over_limits(const std::string& path) {
    if (!error_.empty()) return true;
    if (depth_ >= kMaxDepth) return fail(path, "schemas nested more than ", kMaxDepth, " deep"), true;
    if (++visits_ > kMaxVisits) return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), true;
    return false;
  }

  std::string visit(const json& s, const std::string& hint, const std::string& path) {
    if (over_limits(path)) return "value";
    ++depth_;
    std::string out = visit_one(s, hint, path);
    --depth_;
    return out;
  }

  // Draft 4's boolean exclusiveMinimum/Maximum as later drafts write them,
  // and draft 4-7's items array as prefixItems.
  json normalized(const json& s, const std::string& path) {
    json out = s;
    for (const char* key : {"Minimum", "Maximum"}) {
      const std::string ex = std::string("exclusive") + key, plain = key[1] == 'i' ? "minimum" : "maximum";
      if (!out.contains(ex) || !out[ex].is_boolean()) continue;
      const bool strict = out[ex].get<bool>();
      out.erase(ex);
      if (strict && out.contains(plain)) out[ex] = out[plain], out.erase(plain);
    }
    if (out.contains("items") && out["items"].is_array()) {
      if (out.contains("prefixItems")) return fail(path, "'items' as an array and 'prefixItems' cannot both be given"), json(false);
      out["prefixItems"] = out["items"];
      out.erase("items");
      if (out.contains("additionalItems")) out["items"] = out["additionalItems"];
    }
    out.erase("additionalItems");
    return out;
  }

  std::string visit_one(const json& raw, const std::string& hint, const std::string& path) {
    if (raw.is_boolean()) return raw.get<bool>() ? "value" : fail(path, "the schema false matches nothing");
    if (!raw.is_object()) return fail(path, "a schema must be an object or a boolean");
    for (const auto& [key, v] : raw.items())
      if (unsupported(key)) return fail(path, "the keyword '", key, "' is not supported");
    if (raw.contains("$ref")) return ref(raw["$ref"], path);
    const json s = normalized(raw, path);
    if (!error_.empty()) return "value";
    if (s.contains("allOf")) {
      const json& list = s["allOf"];
      if (!list.is_array() || list.empty()) return fail(path, "'allOf' must be a non-empty array");
      json merged = s;
      merged.erase("allOf");
      for (size_t i = 0; i < list.size() && error_.empty(); ++i) merged = merge(merged, list[i], path + "/allOf/" + std::to_string(i));
      if (!error_.empty()) return "value";
      if (merged.is_boolean() && !merged.get<bool>())
        return fail(path, "no value satisfies every branch of 'allOf' (", conflict_.empty() ? "a branch is false" : conflict_, ")");
      return visit(merged, hint, path);
    }
    if (s.contains("anyOf") || s.contains("oneOf")) {
      // Keywords beside anyOf apply to every branch (both must hold): they
      // are merged into each branch.
      const std::vector<json> branches = choices(s, path);
      json rest = s;
      rest.erase("anyOf");
      rest.erase("oneOf");
      std::string alts;
      for (size_t i = 0; i < branches.size() && error_.empty(); ++i) {
        const std::string at = path + "/" + (s.contains("anyOf") ? "anyOf" : "oneOf") + "/" + std::to_string(i);
        const json branch = merge(rest, branches[i], at);
        if (branch.is_boolean() && !branch.get<bool>()) continue;
        alts += (alts.empty() ? "" : " | ") + visit(branch, hint + "-" + std::to_string(i), at);
      }
      if (!error_.empty()) return "value";
      if (alts.empty()) return fail(path, "'anyOf'/'oneOf' has no branch that matches anything");
      return "(" + alts + ")";
    }
    if (s.contains("const") || s.contains("enum")) return literals(s, path);
    if (s.contains("type")) {
      const std::vector<std::string> types = type_list(s["type"], path);
      std::string alts;
      for (const auto& t : types) alts += (alts.empty() ? "" : " | ") + typed(s, t, types.size() == 1 ? hint : hint + "-" + t, path);
      return types.size() == 1 ? alts : "(" + alts + ")";
    }
    // No type: the keywords present say which one is meant.
    auto has = [&](std::initializer_list<const char*> keys) {
      for (const char* k : keys)
        if (s.contains(k)) return true;
      return false;
    };
    if (has({"properties", "required", "additionalProperties"})) return typed(s, "object", hint, path);
    if (has({"items", "prefixItems", "minItems", "maxItems"})) return typed(s, "array", hint, path);
    if (has({"minLength", "maxLength", "pattern"}) || (s.contains("format") && s["format"].is_string() && format_pattern(s["format"])))
      return typed(s, "string", hint, path);
    if (has({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) return typed(s, "number", hint, path);
    return "value";
  }

  std::vector<std::string> type_list(const json& t, const std::string& path) {
    std::vector<std::string> out;
    if (t.is_string()) {
      out.push_back(t.get<std::string>());
    } else if (t.is_array()) {
      for (const auto& one : t) {
        if (!one.is_string()) return fail(path, "'type' must be a string or a non-empty array of strings"), out;
        out.push_back(one.get<std::string>());
      }
    }
    if (out.empty()) fail(path, "'type' must be a string or a non-empty array of strings");
    return out;
  }

  // The branches of anyOf and oneOf; both at once: each pair of them.
  std::vector<json> choices(const json& s, const std::string& path) {
    std::vector<json> out = {json(true)};
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& list = s[key];
      if (!list.is_array() || list.empty()) return fail(path, "'", key, "' must be a non-empty array"), std::vector<json>{};
      if (out.size() * list.size() > kMaxVisits) return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), std::vector<json>{};
      std::vector<json> next;
      for (const auto& a : out)
        for (const auto& b : list) next.push_back(a.is_boolean() ? b : json{{"allOf", {a, b}}});
      out = std::move(next);
    }
    return out;
  }

  // ---- allOf ----

  // The schema a $ref or allOf stands for, at the top only: what it
  // points at, with allOf merged.
  json flat(const json& s, const std::string& path) {
    if (!s.is_object()) return s;
    if (s.contains("$ref")) {
      const json* target = over_limits(path) ? nullptr : resolve(s["$ref"], path);
      if (!target) return json(false);
      ++depth_;
      json out = flat(*target, path);
      --depth_;
      return out;
    }
    json out = normalized(s, path);
    if (!out.contains("allOf")) return out;
    const json list = out["allOf"];
    if (!list.is_array() || list.empty()) return fail(path, "'allOf' must be a non-empty array"), json(false);
    out.erase("allOf");
    for (size_t i = 0; i < list.size() && error_.empty(); ++i) out = merge(out, list[i], path + "/allOf/" + std::to_string(i));
    return out;
  }

  static json both(const json& a, const json& b) {
    if (a.is_boolean()) return a.get<bool>() ? b : a;
    if (b.is_boolean()) return b.get<bool>() ? a : b;
    return json{{"allOf", {a, b}}};
  }

  // One schema holding exactly when both hold (false when none can).
  json merge(const json& a, const json& b, const std::string& path) {
    if (over_limits(path)) return json(false);
    ++depth_;
    json out = merge_one(a, b, path);
    --depth_;
    return out;
  }
  json merge_one(const json& a_in, const json& b_in, const std::string& path) {
    for (const json* s : {&a_in, &b_in})
      if (!s->is_boolean() && !s->is_object()) return fail(path, "a schema must be an object or a boolean"), json(false);
    if (a_in.is_boolean()) return a_in.get<bool>() ? b_in : json(false);
    if (b_in.is_boolean()) return b_in.get<bool>() ? a_in : json(false);
    if (!asserts(a_in)) return b_in;  // kept whole, so a $ref in it stays one rule
    if (!asserts(b_in)) return a_in;
    const json a = flat(a_in, path), b = flat(b_in, path);
    if (!error_.empty()) return json(false);
    if (a.is_boolean() || b.is_boolean()) return merge(a, b, path);
    json out = a;
    for (const auto& [key, bv] : b.items()) {
      if (!out.contains(key)) {
        out[key] = bv;
        continue;
      }
      json& av = out[key];
      if (key == "type") {
        av = merge_types(type_list(av, path), type_list(bv, path));
        if (av.empty()) return conflict("no type is allowed by every branch");
      } else if (key == "required") {
        if (!av.is_array() || !bv.is_array()) return fail(path, "'required' must be an array of strings"), json(false);
        for (const auto& r : bv)
          if (std::find(av.begin(), av.end(), r) == av.end()) av.push_back(r);
      } else if (key == "properties") {
        if (!av.is_object() || !bv.is_object()) return fail(path, "'properties' must be an object"), json(false);
        for (const auto& [name, schema] : bv.items()) av[name] = av.contains(name) ? both(av[name], schema) : schema;
      } else if (key == "additionalProperties" || key == "items") {
        av = both(av, bv);
      } else if (key == "minItems" || key == "minLength") {
        av = std::max(av, bv);
      } else if (key == "maxItems" || key == "maxLength") {
        av = std::min(av, bv);
      } else if (key == "minimum" || key == "exclusiveMinimum" || key == "maximum" || key == "exclusiveMaximum") {
        const auto x = number_keyword(a, key.c_str(), path), y = number_keyword(b, key.c_str(), path);
        if (x && y && (compare(*x, *y) < 0) == (key == "minimum" || key == "exclusiveMinimum")) av = bv;
      } else if (key == "enum") {
        if (!av.is_array() || !bv.is_array()) return fail(path, "'enum' must be a non-empty array"), json(false);
        json common = json::array();
        for (const auto& v : av)
          if (std::find(bv.begin(), bv.end(), v) != bv.end()) common.push_back(v);
        if (common.empty()) return conflict("no value is in every 'enum'");
        av = common;
      } else if (key == "const") {
        if (av != bv) return conflict("two different 'const' values");
      } else if (key == "pattern" || key == "format") {
        const bool is_pattern = key == "pattern";  // a lambda cannot capture a structured binding (C++17)
        auto checked = [&](const json& v) { return is_pattern || (v.is_string() && format_pattern(v.get<std::string>())); };
        if (checked(av) && checked(bv) && av != bv)
          return fail(path, "'allOf': two different '", key, "' values cannot both be required"), json(false);
        if (checked(bv)) av = bv;
      }
    }
    if (out.contains("const") && out.contains("enum") && out["enum"].is_array() &&
        std::find(out["enum"].begin(), out["enum"].end(), out["const"]) == out["enum"].end())
      return conflict("the 'const' value is not in the 'enum'");
    // A property one side names and the other does not: the other side's
    // additionalProperties applies to it.
    for (const auto& [x, y] : {std::pair<const json&, const json&>(a, b), std::pair<const json&, const json&>(b, a)}) {
      if (!y.contains("properties") || !x.contains("additionalProperties")) continue;
      for (const auto& [name, schema] : y["properties"].items())
        if (!x.contains("properties") || !x["properties"].contains(name))
          out["properties"][name] = both(out["properties"][name], x["additionalProperties"]);
    }
    // Tuples: element i is under both sides' schema for position i.
    if (a.contains("prefixItems") || b.contains("prefixItems")) {
      auto at = [](const json& s, size_t i) -> json {
        if (s.contains("prefixItems") && s["prefixItems"].is_array() && i < s["prefixItems"].size()) return s["prefixItems"][i];
        return s.contains("items") ? s["items"] : json(true);
      };
      const size_t n = std::max(a.value("prefixItems", json::array()).size(), b.value("prefixItems", json::array()).size());
      json prefix = json::array();
      for (size_t i = 0; i < n; ++i) prefix.push_back(both(at(a, i), at(b, i)));
      out["prefixItems"] = prefix;
    }
    auto chooses = [](const json& s) { return s.contains("anyOf") || s.contains("oneOf"); };
    const std::vector<json> alts = choices(chooses(a) ? a : json::object(), path), more = choices(chooses(b) ? b : json::object(), path);
    out.erase("anyOf");
    out.erase("oneOf");
    if (chooses(a) || chooses(b)) {
      if (alts.size() * more.size() > kMaxVisits) return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), json(false);
      json list = json::array();
      for (const auto& x : alts)
        for (const auto& y : more) list.push_back(both(x, y));
      out["anyOf"] = list;
    }
    return error_.empty() ? out : json(false);
  }

  // Two schemas no value satisfies together: false, and why (for allOf's
  // error; anyOf drops such a branch).
  json conflict(const std::string& why) {
    conflict_ = why;
    return json(false);
  }

  static json merge_types(const std::vector<std::string>& x, const std::vector<std::string>& y) {
    auto in = [](const std::vector<std::string>& list, const std::string& t) {
      return std::find(list.begin(), list.end(), t) != list.end();
    };
    json out = json::array();
    for (const auto& t : x)
      if (in(y, t) || (t == "integer" && in(y, "number"))) out.push_back(t);
    if (in(x, "number") && in(y, "integer") && !in(x, "integer")) out.push_back("integer");
    return out;
  }

  // ---- values ----

  // A bound keyword's value, exactly; nullopt if absent (or an error).
  std::optional<Decimal> number_keyword(const json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return std::nullopt;
    auto d = s[key].is_number() ? parse_decimal(dump(s[key])) : std::nullopt;
    if (!d) fail(path, "'", key, "' must be a finite number");
    return d;
  }
  // The tighter of an inclusive and an exclusive bound.
  std::optional<NumberBound> bound(const json& s, const char* inclusive, const char* exclusive, bool lower, const std::string& path) {
    const auto in = number_keyword(s, inclusive, path), ex = number_keyword(s, exclusive, path);
    if (!ex) return in ? std::optional<NumberBound>(NumberBound{*in, false}) : std::nullopt;
    if (!in) return NumberBound{*ex, true};
    const int c = compare(*ex, *in);
    return (lower ? c >= 0 : c <= 0) ? NumberBound{*ex, true} : NumberBound{*in, false};
  }

  // Whether an enum or const value fits the keywords beside it.
  bool fits(const json& v, const json& s, const std::string& path) {
    if (s.contains("type")) {
      bool ok = false;
      for (const auto& t : type_list(s["type"], path)) {
        const bool integral = v.is_number_integer() || (v.is_number_float() && parse_decimal(dump(v)) &&
                                                         parse_decimal(dump(v))->frac.empty());
        ok = ok || (t == "object" && v.is_object()) || (t == "array" && v.is_array()) || (t == "string" && v.is_string()) ||
             (t == "number" && v.is_number()) || (t == "integer" && v.is_number() && integral) ||
             (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null());
      }
      if (!ok) return false;
    }
    if (v.is_number()) {
      const auto x = parse_decimal(dump(v));
      const auto lo = bound(s, "minimum", "exclusiveMinimum", true, path), hi = bound(s, "maximum", "exclusiveMaximum", false, path);
      if (x && lo && (compare(*x, lo->value) < 0 || (lo->strict && compare(*x, lo->value) == 0))) return false;
      if (x && hi && (compare(*x, hi->value) > 0 || (hi->strict && compare(*x, hi->value) == 0))) return false;
    }
    if (v.is_string()) {
      size_t n = 0;
      for (char c : v.get<std::string>()) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      const long lo = count(s, "minLength", path), hi = count(s, "maxLength", path);
      if (static_cast<long>(n) < lo || (hi >= 0 && static_cast<long>(n) > hi)) return false;
    }
    return true;
  }

  std::string literals(const json& s, const std::string& path) {
    for (const auto& [key, v] : s.items()) {
      const bool checked = key == "type" || key == "enum" || key == "const" || key == "minimum" || key == "maximum" ||
                           key == "exclusiveMinimum" || key == "exclusiveMaximum" || key == "minLength" || key == "maxLength" ||
                           (key == "format" && !(v.is_string() && format_pattern(v.get<std::string>())));
      if (assertion(key) && !checked)
        return fail(path, "'", s.contains("enum") ? "enum" : "const", "' together with '", key, "' is not supported");
    }
    json values = json::array();
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) return fail(path, "'enum' must be a non-empty array");
      values = s["enum"];
    } else {
      values.push_back(s["const"]);
    }
    std::string alts;
    for (const auto& v : values)
      if ((!s.contains("const") || v == s["const"]) && fits(v, s, path)) alts += (alts.empty() ? "" : " | ") + gbnf_literal(dump(v));
    if (!error_.empty()) return "value";
    if (alts.empty()) return fail(path, "no value of '", s.contains("enum") ? "enum" : "const", "' is allowed by the keywords beside it");
    return "(" + alts + ")";
  }

  std::string typed(const json& s, const std::string& type, const std::string& hint, const std::string& path) {
    if (type == "string") return string_schema(s, hint, path);
    if (type == "number" || type == "integer") return number_schema(s, type == "integer", hint, path);
    if (type == "boolean" || type == "null") return type;
    if (type == "object") return object(s, hint, path);
    if (type == "array") return array(s, hint, path);
    return fail(path, "unknown type '", type, "'");
  }

  // ---- numbers ----

  std::string number_schema(const json& s, bool integer, const std::string& hint, const std::string& path) {
    auto lo = bound(s, "minimum", "exclusiveMinimum", true, path);
    auto hi = bound(s, "maximum", "exclusiveMaximum", false, path);
    if (!error_.empty()) return "value";
    if (!lo && !hi) return integer ? "integer" : "number";
    if (lo && hi && (compare(lo->value, hi->value) > 0 || (compare(lo->value, hi->value) == 0 && (lo->strict || hi->strict))))
      return fail(path, "no number is between the minimum ", dump_decimal(lo->value), " and the maximum ", dump_decimal(hi->value));
    // Digits before the point: integers as the plain grammar writes them;
    // other numbers those of their bounds (9 where one is open), leaving
    // the rest of 15 significant digits to the fraction.
    int digits = 16;
    if (!integer) {
      digits = lo && hi ? 1 : 9;
      for (const auto* b : {&lo, &hi})
        if (*b) digits = std::max(digits, static_cast<int>((*b)->value.whole.size()));
      digits = std::min(digits, 15);
    }
    // A bound past the numbers written: on the far side of zero it holds
    // for all of them; on the near side for none.
    auto too_far = [&](const std::optional<NumberBound>& b) { return b && b->value.whole.size() > static_cast<size_t>(digits); };
    if (too_far(lo)) {
      if (!lo->value.negative) return fail(path, "the minimum ", dump_decimal(lo->value), " is beyond the numbers this grammar writes (under 10^", digits, ")");
      lo.reset();
    }
    if (too_far(hi)) {
      if (hi->value.negative) return fail(path, "the maximum ", dump_decimal(hi->value), " is beyond the numbers this grammar writes (above -10^", digits, ")");
      hi.reset();
    }
    const std::string range = number_range(lo, hi, digits, integer ? 0 : 15 - digits);
    if (range.empty()) return fail(path, "no ", integer ? "integer" : "number", " of at most ", integer ? 0 : 15 - digits, " decimals lies within the bounds");
    return define(hint, range);
  }

  static std::string dump_decimal(const Decimal& d) {
    return (d.negative ? "-" : "") + d.whole + (d.frac.empty() ? "" : "." + d.frac);
  }

  // ---- strings ----

  std::string string_schema(const json& s, const std::string& hint, const std::string& path) {
    const long lo = count(s, "minLength", path), hi = count(s, "maxLength", path);
    if (hi >= 0 && lo > hi) return fail(path, "minLength ", lo, " is above maxLength ", hi);
    const bool has_format = s.contains("format") && s["format"].is_string() && format_pattern(s["format"].get<std::string>());
    if (s.contains("pattern") && !s["pattern"].is_string()) return fail(path, "'pattern' must be a string");
    if (s.contains("pattern") && has_format) return fail(path, "'pattern' together with 'format' is not supported");
    if (!s.contains("pattern") && !has_format) {
      if (lo <= 0 && hi < 0) return "string";
      return "\"\\\"\" " + gbnf_repeat("char", std::max(lo, 0L), hi) + " \"\\\"\"";
    }
    const std::string key = s.contains("pattern") ? "pattern" : "format";
    const std::string regex = s.contains("pattern") ? s["pattern"].get<std::string>() : format_pattern(s["format"].get<std::string>());
    auto tree = RegexParser(regex).run();
    if (!tree) return fail(path, "'", key, "' ", dump(json(regex)), ": ", tree.message());
    // A length limit beside a pattern holds only if every match is within it.
    const auto [min_len, max_len] = regex_lengths(*tree);
    if (min_len < lo || (hi >= 0 && (max_len < 0 || max_len > hi)))
      return fail(path, "minLength/maxLength together with '", key, "' are supported only when every match of it is within them (its matches have ",
                  min_len, " to ", max_len < 0 ? std::string("unlimited") : std::to_string(max_len), " characters)");
    const std::string memo = key + "\n" + regex;
    if (auto it = patterns_.find(memo); it != patterns_.end()) return it->second;
    const std::string name = rule_name(hint + "-" + (has_format ? s["format"].get<std::string>() : "pattern"));
    const size_t slot = rules_.size();
    rules_.emplace_back(name, "");
    rules_[slot].second = "\"\\\"\" " + regex_gbnf(*tree, name) + " \"\\\"\"";
    return patterns_[memo] = name;
  }

  std::string regex_gbnf(const RegexNode& n, const std::string& hint) {
    switch (n.kind) {
      case RegexNode::Kind::Chars:
        return chars_gbnf(n.chars, hint);
      case RegexNode::Kind::Sequence: {
        std::string out;
        for (const auto& p : n.parts)
          if (std::string x = regex_gbnf(p, hint); !x.empty()) out += (out.empty() ? "" : " ") + x;
        return out;
      }
      case RegexNode::Kind::Choice: {
        std::string out;
        for (const auto& p : n.parts) {
          std::string x = regex_gbnf(p, hint);
          out += (out.empty() ? "" : " | ") + (x.empty() ? "\"\"" : x);
        }
        return "(" + out + ")";
      }
      case RegexNode::Kind::Repeat: {
        // A body that matches "" repeats as its non-empty part, from zero
        // times (a grammar cannot repeat what matches nothing).
        if (regex_lengths(n.parts[0]).first == 0) {
          const auto body = without_empty(n.parts[0]);
          return body ? gbnf_repeat(regex_gbnf(*body, hint), 0, n.max) : "";
        }
        const std::string x = regex_gbnf(n.parts[0], hint);
        return x.empty() ? "" : gbnf_repeat(x, n.min, n.max);
      }
    }
    return "";
  }

  // Characters of a set as JSON string text: each as itself, or escaped
  // where JSON needs it (quote, backslash, controls).
  std::string chars_gbnf(const CodeRanges& set, const std::string& hint) {
    static const CodeRanges kEscaped = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
    if (set == code_ranges({{0, kMaxCodePoint}})) return "char";
    if (auto it = char_sets_.find(set); it != char_sets_.end()) return it->second;
    std::vector<std::string> alts;
    if (const CodeRanges raw = intersect(set, complement(kEscaped)); !raw.empty()) alts.push_back(class_gbnf(raw));
    for (uint32_t c = 0; c <= '\\'; c = c == 0x1F ? '"' : c == '"' ? '\\' : c + 1)
      if (contains(set, c)) alts.push_back(gbnf_literal(json_escape(c)));
    if (alts.size() == 1) return char_sets_[set] = alts[0];
    std::string body;
    for (const auto& a : alts) body += (body.empty() ? "" : " | ") + a;
    return char_sets_[set] = define(hint + "-char", body);
  }

  static std::string json_escape(uint32_t c) {
    switch (c) {
      case '"': return "\\\"";
      case '\\': return "\\\\";
      case '\b': return "\\b";
      case '\f': return "\\f";
      case '\n': return "\\n";
      case '\r': return "\\r";
      case '\t': return "\\t";
      default: {
        static const char* hex = "0123456789abcdef";
        return std::string("\\u00") + hex[c >> 4] + hex[c & 15];
      }
    }
  }

  static std::string class_gbnf(const CodeRanges& set) {
    auto one = [](uint32_t c) {
      if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return std::string(1, static_cast<char>(c));
      static const char* hex = "0123456789ABCDEF";
      const int digits = c < 0x100 ? 2 : c < 0x10000 ? 4 : 8;
      std::string out = digits == 2 ? "\\x" : digits == 4 ? "\\u" : "\\U";
      for (int i = digits - 1; i >= 0; --i) out += hex[(c >> (4 * i)) & 15];
      return out;
    };
    std::string out = "[";
    for (auto [a, b] : set) out += one(a) + (b > a ? "-" + one(b) : "");
    return out + "]";
  }

  // ---- objects ----

  // A JSON string (quotes included) naming none of `names` once decoded.
  // Its characters are written one way each (no \u or "\/" escapes), so a
  // name has one spelling and each step down the names' trie is exact.
  std::string other_key(const std::vector<std::string>& names, const std::string& hint) {
    struct Node {
      std::map<uint32_t, size_t> next;
      bool name = false;
    };
    std::vector<Node> trie(1);
    for (const auto& n : names) {
      size_t at = 0;
      for (size_t i = 0; i < n.size();) {
        uint32_t cp = 0;
        const size_t len = std::max<size_t>(1, utf8_length(n, i, cp));
        i += len;
        auto it = trie[at].next.find(cp);
        if (it == trie[at].next.end()) {
          it = trie[at].next.emplace(cp, trie.size()).first;
          trie.emplace_back();
        }
        at = it->second;
      }
      trie[at].name = true;
    }
    const CodeRanges kSpelled = {{'\b', '\b'}, {'\t', '\n'}, {'\f', '\r'}, {'"', '"'}, {'\\', '\\'}};  // short escapes
    const CodeRanges writable = code_ranges([&] {
      CodeRanges r = {{0x20, kMaxCodePoint}};
      r.insert(r.end(), kSpelled.begin(), kSpelled.end());
      return r;
    }());
    const std::string key_char = chars_gbnf(writable, "key");
    // Node i: the rest of the key after its prefix, with the key then not a name.
    std::vector<std::string> rule(trie.size());
    for (size_t i = 0; i < trie.size(); ++i) rule[i] = rule_name(hint + "-key-" + std::to_string(i));
    for (size_t i = 0; i < trie.size(); ++i) {
      std::vector<std::string> alts;
      if (!trie[i].name) alts.push_back("\"\"");
      CodeRanges taken;
      for (const auto& [c, child] : trie[i].next) {
        taken.emplace_back(c, c);
        if (contains(writable, c)) alts.push_back(gbnf_literal(c < 0x20 || c == '"' || c == '\\' ? json_escape(c) : utf8_text(c)) + " " + rule[child]);
      }
      if (const CodeRanges other = intersect(writable, complement(code_ranges(taken))); !other.empty())
        alts.push_back(chars_gbnf(other, hint + "-key") + " " + key_char + "*");
      std::string body;
      for (const auto& a : alts) body += (body.empty() ? "" : " | ") + a;
      rules_.emplace_back(rule[i], body);
    }
    return "\"\\\"\" " + rule[0] + " \"\\\"\"";
  }

  static size_t utf8_length(const std::string& s, size_t i, uint32_t& cp) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + n > s.size()) return cp = 0xFFFD, 1;
    cp = n == 1 ? c : c & (0xFFu >> (n + 1));
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    return n;
  }
  static std::string utf8_text(uint32_t c) {
    std::string out;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
    return out;
  }

  std::string object(const json& s, const std::string& hint, const std::string& path) {
    const json no_properties = json::object();
    const json& props = s.contains("properties") ? s["properties"] : no_properties;
    if (!props.is_object()) return fail(path, "'properties' must be an object");
    std::vector<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return fail(path, "'required' must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) return fail(path, "'required' must be an array of strings");
        if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end()) required.push_back(r.get<std::string>());
      }
    }
    auto is_required = [&](const std::string& k) { return std::find(required.begin(), required.end(), k) != required.end(); };
    // Other properties: with neither properties nor additionalProperties
    // any object, otherwise only where additionalProperties allows them.
    const bool closed = s.contains("additionalProperties") && s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>();
    if (!s.contains("additionalProperties") && !s.contains("properties") && required.empty()) return "object";
    struct Property {
      std::string kv;
      bool required;
    };
    std::vector<Property> list;
    std::vector<std::string> names;
    auto add = [&](const std::string& key, const json& schema, const std::string& at) {
      names.push_back(key);
      if (schema.is_boolean() && !schema.get<bool>()) {  // a property that cannot be there
        if (is_required(key))
          fail(at, "the required property '", key, "' can have no value (its schema is false, as when an 'additionalProperties': false ",
               "beside 'allOf' or 'anyOf' forbids a property that a branch names)");
        return;
      }
      const std::string value = visit(schema, hint + "-" + key, at);
      list.push_back({gbnf_literal(dump(json(key))) + " ws \":\" ws " + value + " ws", is_required(key)});
    };
    for (const auto& [key, schema] : props.items()) add(key, schema, path + "/properties/" + key);
    // Required but not described: whatever additionalProperties allows.
    for (const std::string& key : required) {
      if (props.contains(key)) continue;
      if (closed) return fail(path, "the required property '", key, "' is not allowed by 'additionalProperties': false");
      add(key, s.value("additionalProperties", json(true)), path + "/additionalProperties");
    }
    std::string extra;
    if (s.contains("additionalProperties") && !closed) {
      const std::string key = names.empty() ? "string" : other_key(names, hint + "-additional");
      extra = key + " ws \":\" ws " + visit(s["additionalProperties"], hint + "-additional", path + "/additionalProperties") + " ws";
    }
    // first_i: properties i.. with none before them (no leading comma);
    // after_i: properties i.. after one (each with a leading comma).
    std::string after = extra.empty() ? "" : define(hint + "-rest", "( \",\" ws " + extra + " )*");
    std::string first = extra.empty() ? "" : define(hint + "-any", "( " + extra + " ( \",\" ws " + extra + " )* )?");
    auto then = [](const std::string& a, const std::string& b) { return b.empty() ? a : a + " " + b; };
    for (size_t i = list.size(); i-- > 0;) {
      const Property& p = list[i];
      const std::string a = p.required ? then("\",\" ws " + p.kv, after) : then("( \",\" ws " + p.kv + " )?", after);
      std::string f = then(p.kv, after);
      if (!p.required) f = first.empty() ? "( " + f + " )?" : f + " | " + first;
      first = define(hint + "-first-" + std::to_string(i), f);
      after = define(hint + "-after-" + std::to_string(i), a);
    }
    return define(hint, then("\"{\" ws", first) + " \"}\"");
  }

  // ---- arrays ----

  std::string array(const json& s, const std::string& hint, const std::string& path) {
    const long lo = std::max(count(s, "minItems", path), 0L), hi = count(s, "maxItems", path);
    if (hi >= 0 && lo > hi) return fail(path, "minItems ", lo, " is above maxItems ", hi);
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      const json& p = s["prefixItems"];
      if (!p.is_array()) return fail(path, "'prefixItems' must be an array of schemas");
      for (size_t i = 0; i < p.size() && (hi < 0 || static_cast<long>(i) < hi); ++i)
        prefix.push_back(visit(p[i], hint + "-" + std::to_string(i), path + "/prefixItems/" + std::to_string(i)));
    }
    const auto k = static_cast<long>(prefix.size());
    const bool closed = s.contains("items") && s["items"].is_boolean() && !s["items"].get<bool>();
    if (closed && lo > k) return fail(path, "minItems ", lo, " is above the ", k, " items that 'items': false allows");
    // After the tuple: the other elements, as many as the counts allow.
    std::string rest;
    if (!closed && (hi < 0 || hi > k)) {
      const std::string item = s.contains("items") ? visit(s["items"], hint + "-item", path + "/items") : "value";
      const std::string element = define(hint + "-element", item + " ws");
      rest = gbnf_repeat("\",\" ws " + element, std::max(lo - std::max(k, 1L), 0L), hi < 0 ? -1 : hi - std::max(k, 1L));
      if (k == 0) {  // no tuple: the first element has no comma
        const std::string body = element + (rest.empty() ? "" : " " + rest);
        return define(hint, "\"[\" ws " + (lo == 0 ? "( " + body + " )?" : body) + " \"]\"");
      }
    }
    if (k == 0) return "\"[\" ws \"]\"";
    // Element i of the tuple, then what may follow it; optional from minItems on.
    std::string tail = rest;
    for (long i = k - 1; i >= 0; --i) {
      std::string here = prefix[static_cast<size_t>(i)] + " ws" + (tail.empty() ? "" : " " + tail);
      if (i > 0) here = "\",\" ws " + here;
      tail = i >= lo ? "( " + here + " )?" : here;
    }
    return define(hint, "\"[\" ws " + tail + " \"]\"");
  }

  // ---- references ----

  // What "#/a/b" points at in this document; nullptr (and an error) if nothing.
  const json* resolve(const json& r, const std::string& path) {
    if (!r.is_string()) return fail(path, "'$ref' must be a string"), nullptr;
    const std::string target = r.get<std::string>();
    if (target.rfind("#", 0) != 0) return fail(path, "only references inside the schema (\"#/...\") are supported, not ", target), nullptr;
    const std::string fragment = target.substr(1);
    if (!fragment.empty() && fragment[0] != '/') return fail(path, "the reference ", target, " is not a JSON pointer"), nullptr;
    for (size_t i = 0; i < fragment.size(); ++i)
      if (fragment[i] == '~' && (i + 1 >= fragment.size() || (fragment[i + 1] != '0' && fragment[i + 1] != '1')))
        return fail(path, "the reference ", target, " has a bad '~' escape"), nullptr;
    const json* node = &root_;
    for (size_t at = 1; at <= fragment.size() && !fragment.empty();) {
      const size_t end = std::min(fragment.find('/', at), fragment.size());
      std::string token = fragment.substr(at, end - at);
      for (size_t i = 0; (i = token.find('~', i)) != std::string::npos; ++i)
        token.replace(i, 2, token[i + 1] == '1' ? "/" : "~");
      if (node->is_object() && node->contains(token)) node = &(*node)[token];
      else if (node->is_array() && !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
               token.size() < 10 && std::stoul(token) < node->size())
        node = &(*node)[std::stoul(token)];
      else return fail(path, "the reference ", target, " points at nothing"), nullptr;
      at = end + 1;
    }
    return node;
  }

  // Each target becomes one rule, so recursive definitions refer to themselves.
  std::string ref(const json& r, const std::string& path) {
    if (r.is_string())
      if (auto it = refs_.find(r.get<std::string>()); it != refs_.end()) return it->second;
    const json* node = resolve(r, path);
    if (!node) return "value";
    const std::string target = r.get<std::string>(), fragment = target.substr(1);
    const std::string hint = "def-" + (fragment.empty() ? std::string("root") : fragment.substr(fragment.rfind('/') + 1));
    const std::string name = rule_name(hint);
    refs_[target] = name;
    const size_t slot = rules_.size();
    rules_.emplace_back(name, "");
    const std::string body = visit(*node, name, target);
    rules_[slot].second = body;
    return name;
  }

  const json& root_;
  JsonGrammarOptions options_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> used_ = {"root",    "value", "object",  "array", "string", "char", "hex4",
                                 "hex",     "number", "integer", "boolean", "null", "ws"};
  std::map<std::string, std::string> refs_, patterns_;
  std::map<CodeRanges, std::string> char_sets_;
  std::string error_, conflict_;
  int depth_ = 0;
  size_t visits_ = 0;
};

}  // namespace detail

// GBNF text for a JSON Schema given as a document (properties keep their
// order; see the subset at the top of this file).
inline Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema, const JsonGrammarOptions& options = {}) {
  return detail::guard("converting a JSON Schema", [&]() -> Result<std::string> {
    return detail::SchemaConverter(schema, options).run();
  });
}

// The same from JSON text.
inline Result<std::string> json_schema_to_gbnf(std::string_view schema, const JsonGrammarOptions& options = {}) {
  return detail::guard("converting a JSON Schema", [&]() -> Result<std::string> {
    const auto doc = nlohmann::ordered_json::parse(schema.begin(), schema.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return detail::err("JSON Schema: not valid JSON");
    return detail::SchemaConverter(doc, options).run();
  });
}

inline Result<std::string> json_schema_to_gbnf(const char* schema, const JsonGrammarOptions& options = {}) {
  return json_schema_to_gbnf(std::string_view(schema), options);
}
inline Result<std::string> json_schema_to_gbnf(const std::string& schema, const JsonGrammarOptions& options = {}) {
  return json_schema_to_gbnf(std::string_view(schema), options);
}

// The grammar of a JSON Schema (text), ready for a GrammarConstraint.
inline Result<Grammar> json_schema_grammar(std::string_view schema, const JsonGrammarOptions& options = {}) {
  auto gbnf = json_schema_to_gbnf(schema, options);
  if (!gbnf) return Error{gbnf.message()};
  return Grammar::parse(*gbnf);
}

GEMMA2_END_NAMESPACE
