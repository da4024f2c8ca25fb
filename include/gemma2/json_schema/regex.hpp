// JSON Schema's `pattern` (ECMAScript regular expressions, ECMA-262
// section 22.2, the subset listed in gemma2/json_schema.hpp) and the
// formats it supports, read into a tree the converter writes as GBNF.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gemma2/status.hpp"
#include "gemma2/utf8.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

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
    case RegexNode::Kind::Chars: return {1, 1};
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
    case Kind::Chars: return n;
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
      if (auto first = without_empty(n.parts[0]))
        out.parts.push_back(RegexNode{Kind::Sequence, {}, {std::move(*first), rest}, 0, -1});
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
      const int n = utf8_decode(reinterpret_cast<const unsigned char*>(text_.data()) + i, text_.size() - i, cp);
      if (n <= 0) return err("the pattern is not valid UTF-8");
      cps_.push_back(cp);
      i += static_cast<size_t>(n);
    }
    RegexNode top{RegexNode::Kind::Choice, {}, {}, 0, -1};
    RegexNode any_text{RegexNode::Kind::Repeat, {}, {RegexNode{RegexNode::Kind::Chars, all(), {}, 0, -1}}, 0, -1};
    do {
      const bool start = eat('^');
      RegexNode seq = sequence(0);
      const bool end = eat('$');
      token_ = pos_;
      if (error_.empty() && pos_ < cps_.size() && cps_[pos_] != '|')
        fail(peek() == ')' ? "unmatched ')'"
                           : "'^' and '$' are supported only at the start and end of the pattern or of its top-level "
                             "alternatives");
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

  static CodeRanges all() { return code_ranges({{0, kMaxCodePoint}}); }
  static CodeRanges digit() { return {{'0', '9'}}; }
  static CodeRanges word() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
  static CodeRanges space() {  // ECMAScript's WhiteSpace and LineTerminator
    return code_ranges({{9, 13},
                        {32, 32},
                        {0xA0, 0xA0},
                        {0x1680, 0x1680},
                        {0x2000, 0x200A},
                        {0x2028, 0x2029},
                        {0x202F, 0x202F},
                        {0x205F, 0x205F},
                        {0x3000, 0x3000},
                        {0xFEFF, 0xFEFF}});
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
      case '^':
      case '$':
        return fail(
                   "'^' and '$' are supported only at the start and end of the pattern or of its top-level "
                   "alternatives"),
               false;
      case '*':
      case '+':
      case '?':
      case '{': return fail("'", std::string(1, static_cast<char>(c)), "' has nothing before it to repeat"), false;
      case '.': out.chars = complement(code_ranges({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}})); return true;
      case '[': return char_class(out.chars);
      case '\\': return escape(out.chars, false);
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
      default: out.chars = {{c, c}}; return true;
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
    if (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')
      return fail("a repetition cannot be repeated");
    atom = RegexNode{RegexNode::Kind::Repeat, {}, {std::move(atom)}, lo, hi};
  }

  bool number(long& v) {
    const size_t start = pos_;
    for (v = 0; pos_ < cps_.size() && peek() >= '0' && peek() <= '9'; ++pos_)
      if ((v = v * 10 + static_cast<long>(peek() - '0')) > kMaxCount)
        return fail("a repetition count over ", kMaxCount), false;
    return pos_ > start;
  }

  bool hex(int digits, uint32_t& v) {
    v = 0;
    for (int i = 0; i < digits; ++i, ++pos_) {
      const uint32_t c = peek();
      const int d = c >= '0' && c <= '9'   ? int(c - '0')
                    : c >= 'a' && c <= 'f' ? int(c - 'a' + 10)
                    : c >= 'A' && c <= 'F' ? int(c - 'A' + 10)
                                           : -1;
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
          if (hex(4, low) && low >= 0xDC00 && low <= 0xDFFF)
            return one(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00));
          pos_ = save;
        }
        if (v >= 0xD800 && v <= 0xDFFF) return fail("\\u", std::hex, v, " is a lone surrogate, not a character"), false;
        return one(v);
      }
      case 'k': return fail("backreferences are not supported"), false;
      case 'p':
      case 'P': return fail("Unicode property escapes (\\p, \\P) are not supported"), false;
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
#define GEMMA2_DATE                                                                                                  \
  "(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|" \
  "1[0-9]|2[0-8]))|(?:[0-9]{2}(?:[02468][48]|[13579][26]|[2468]0)|(?:[02468][048]|[13579][26])00)-02-29)"
#define GEMMA2_TIME \
  "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
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

}  // namespace detail

GEMMA2_END_NAMESPACE
