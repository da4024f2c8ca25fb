// Context-free grammars in llama.cpp's GBNF notation, compiled for matching
// text one code point at a time: the language half of constrained decoding
// (constraint.hpp maps it onto tokens).
//
//   root   ::= move (" " move)*          # rules, sequences, alternatives
//   move   ::= [KQRBN]? [a-h] [1-8] "+"?  # literals, classes, repetition
//
// Supported: rules `name ::= ...`, sequences, `|`, groups `( )`, string
// literals with escapes (\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), character
// classes with ranges and negation `[^a-z]`, `.` (any character), repetition
// `* + ?` and `{m}` `{m,}` `{m,n}` `{,n}`, `#` comments. Newlines are plain
// whitespace: a rule ends where the next `name ::=` begins. Malformed
// grammars, undefined rules and left recursion are errors naming the line
// and column.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "gemma2/io/file.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
// A length that no finite completion has: the item or frame cannot complete.
constexpr uint32_t kNoCompletion = 1u << 30;

inline uint32_t utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// A set of Unicode scalar values: sorted, disjoint, non-adjacent closed
// ranges (surrogates never included), with ASCII also as a bitmap because
// nearly every test is an ASCII one.
struct CharSet {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint64_t ascii[2] = {0, 0};

  // From any ranges (overlapping, unsorted, with surrogates); `negate`
  // takes the complement within the scalar values.
  static CharSet of(std::vector<std::pair<uint32_t, uint32_t>> in, bool negate) {
    std::sort(in.begin(), in.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (const auto& r : in) {
      if (!merged.empty() && r.first <= merged.back().second + 1) merged.back().second = std::max(merged.back().second, r.second);
      else merged.push_back(r);
    }
    if (negate) {
      std::vector<std::pair<uint32_t, uint32_t>> inv;
      uint32_t next = 0;
      for (const auto& r : merged) {
        if (r.first > next) inv.emplace_back(next, r.first - 1);
        next = r.second + 1;
      }
      if (next <= kMaxCodePoint) inv.emplace_back(next, kMaxCodePoint);
      merged.swap(inv);
    }
    CharSet s;
    for (auto r : merged) {  // cut out the surrogates D800-DFFF: not characters, not encodable in UTF-8
      if (r.first <= 0xDFFF && r.second >= 0xD800) {
        if (r.first < 0xD800) s.ranges.emplace_back(r.first, 0xD7FF);
        if (r.second > 0xDFFF) s.ranges.emplace_back(0xE000, r.second);
      } else {
        s.ranges.push_back(r);
      }
    }
    for (const auto& r : s.ranges)
      for (uint32_t c = r.first; c <= std::min<uint32_t>(r.second, 127); ++c) s.ascii[c >> 6] |= uint64_t{1} << (c & 63);
    return s;
  }

  bool contains(uint32_t c) const {
    if (c < 128) return (ascii[c >> 6] >> (c & 63)) & 1;
    auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                               [](uint32_t v, const std::pair<uint32_t, uint32_t>& r) { return v < r.first; });
    return it != ranges.begin() && c <= std::prev(it)->second;
  }
  // Whether some member lies in [lo, hi].
  bool intersects(uint32_t lo, uint32_t hi) const {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), hi,
                               [](uint32_t v, const std::pair<uint32_t, uint32_t>& r) { return v < r.first; });
    return it != ranges.begin() && std::prev(it)->second >= lo;
  }
  // UTF-8 bytes of the shortest member (kNoCompletion when empty).
  uint32_t min_bytes() const { return ranges.empty() ? kNoCompletion : utf8_length(ranges.front().first); }
};

// One step of an alternative: a character from a set, a rule, or the end.
struct GrammarItem {
  enum Kind : uint8_t { End, Chars, Rule };
  Kind kind;
  uint32_t index;  // into charsets (Chars) or rules (Rule)
};

// A grammar ready to match: every alternative of every rule as a run of
// items ending in End, in one array; positions index it.
struct CompiledGrammar {
  std::vector<GrammarItem> items;
  std::vector<CharSet> charsets;
  std::vector<std::vector<uint32_t>> alternatives;  // per rule, the position of each alternative's first item
  // Per position: the fewest bytes of text that finish the alternative from
  // that item on (kNoCompletion if it cannot finish). Lets a constraint
  // keep a text completable within a token budget.
  std::vector<uint32_t> rest_bytes;
  // The code points cut into intervals on which every set's membership is
  // constant (the starts, sorted): matching depends on a character's
  // interval only, so steps are cached per interval, not per character.
  std::vector<uint32_t> class_starts;
  uint32_t root = 0;

  uint32_t char_class(uint32_t cp) const {
    return static_cast<uint32_t>(std::upper_bound(class_starts.begin(), class_starts.end(), cp) - class_starts.begin() - 1);
  }
};

inline uint32_t saturating_add(uint32_t a, uint32_t b) { return std::min<uint64_t>(uint64_t{a} + b, kNoCompletion); }

// GBNF text -> CompiledGrammar. Recursive descent; each group and each
// repetition becomes a rule of its own, as in llama.cpp's parser:
// x* is S ::= x S | (empty), x? is O ::= x | (empty), x{m,n} is m copies of
// x then a chain of n-m optional ones.
class GbnfParser {
 public:
  // Big enough for any real grammar (a JSON Schema with long strings
  // compiles to thousands of items), small enough to refuse x{0,100000000}.
  static constexpr size_t kMaxItems = size_t{1} << 20;
  static constexpr int kMaxRepeat = 100000;
  static constexpr int kMaxNesting = 256;

  GbnfParser(std::string_view text, std::string root) : src_(text), root_name_(std::move(root)) {}

  Result<CompiledGrammar> run() {
    if (const size_t bad = first_invalid_utf8(); bad != std::string_view::npos) {
      return fail_at(bad, "the grammar is not valid UTF-8");
    }
    skip_space();
    while (pos_ < src_.size()) {
      const size_t at = pos_;
      const std::string name = parse_name();
      if (name.empty()) return fail_at(at, "expected a rule name, found ", describe_here());
      skip_space();
      if (src_.compare(pos_, 3, "::=") != 0) return fail_at(pos_, "expected '::=' after rule name '", name, "'");
      pos_ += 3;
      const uint32_t id = rule_id(name);
      if (rules_[id].defined)
        return fail_at(at, "rule '", name, "' is defined twice (first at ", where(rules_[id].at), ")");
      rules_[id].defined = true;
      rules_[id].at = at;
      std::vector<std::vector<GrammarItem>> alts;
      if (!parse_alternates(id, alts, 0)) return fail();
      rules_[id].alts = std::move(alts);
      skip_space();
      if (pos_ < src_.size() && src_[pos_] == ')') return fail_at(pos_, "unmatched ')'");
    }
    for (const Rule& r : rules_)
      if (!r.defined) return fail_at(r.first_use, "undefined rule '", r.name, "'");
    const auto root = by_name_.find(root_name_);
    if (root == by_name_.end()) return err("grammar: no rule named '", root_name_, "' (the start rule)");
    return compile(root->second);
  }

 private:
  struct Rule {
    std::string name;  // for a rule made by the parser: what it stands for ("group", "repetition")
    std::vector<std::vector<GrammarItem>> alts;
    bool defined = false;
    size_t at = 0;         // where it is defined (or, for a generated rule, the group or repetition)
    size_t first_use = 0;  // where it is first referenced
    int64_t parent = -1;   // the rule a generated one was written in
  };

  // A rule's name for messages (generated rules: built only when needed,
  // since locating an offset reads the text up to it).
  std::string display_name(uint32_t r) const {
    const Rule& rule = rules_[r];
    if (rule.parent < 0) return rule.name;
    return display_name(static_cast<uint32_t>(rule.parent)) + " (" + rule.name + " at " + where(rule.at) + ")";
  }

  // --- errors -------------------------------------------------------------
  std::string where(size_t offset) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < offset && i < src_.size(); ++i) {
      if (src_[i] == '\n') ++line, col = 1;
      else if ((static_cast<unsigned char>(src_[i]) & 0xC0) != 0x80) ++col;  // count characters, not bytes
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(col);
  }
  template <class... Parts>
  bool set_error(size_t offset, const Parts&... parts) {
    if (error_.empty()) error_ = err("grammar: ", where(offset), ": ", parts...).message;
    return false;
  }
  template <class... Parts>
  Error fail_at(size_t offset, const Parts&... parts) {
    set_error(offset, parts...);
    return fail();
  }
  Error fail() const { return Error{error_}; }
  std::string describe_here() const {
    if (pos_ >= src_.size()) return "the end of the grammar";
    return "'" + std::string(src_.substr(pos_, utf8_char_bytes(pos_))) + "'";
  }
  size_t utf8_char_bytes(size_t at) const {
    const auto c = static_cast<unsigned char>(src_[at]);
    return std::min<size_t>(c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4, src_.size() - at);
  }
  size_t first_invalid_utf8() const {
    for (size_t i = 0; i < src_.size();) {
      size_t n = 0;
      uint32_t cp = 0;
      if (!decode_utf8(i, cp, n)) return i;
      i += n;
    }
    return std::string_view::npos;
  }
  bool decode_utf8(size_t at, uint32_t& cp, size_t& n) const {
    const auto* p = reinterpret_cast<const unsigned char*>(src_.data()) + at;
    const size_t left = src_.size() - at;
    const unsigned char c = p[0];
    if (c < 0x80) return cp = c, n = 1, true;
    n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || n > left) return false;
    cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= kMin[n] && cp <= kMaxCodePoint && (cp < 0xD800 || cp > 0xDFFF);
  }

  // --- lexing -------------------------------------------------------------
  void skip_space() {
    while (pos_ < src_.size()) {
      const char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }
  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }
  std::string parse_name() {
    const size_t b = pos_;
    while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
    return std::string(src_.substr(b, pos_ - b));
  }
  // Whether a rule definition `name ::=` starts here (ends the previous rule).
  bool at_rule_start() {
    const size_t save = pos_;
    const bool named = !parse_name().empty();
    skip_space();
    const bool yes = named && src_.compare(pos_, 3, "::=") == 0;
    pos_ = save;
    return yes;
  }
  bool parse_hex(size_t digits, uint32_t& out) {
    out = 0;
    for (size_t i = 0; i < digits; ++i, ++pos_) {
      if (pos_ >= src_.size()) return set_error(pos_, "incomplete escape: expected ", digits, " hex digits");
      const char c = src_[pos_];
      const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0) return set_error(pos_, "expected a hex digit in an escape, found ", describe_here());
      out = out * 16 + static_cast<uint32_t>(v);
    }
    return true;
  }
  // One character of a literal or class, escapes decoded.
  bool parse_char(uint32_t& cp) {
    const size_t at = pos_;
    if (src_[pos_] != '\\') {
      size_t n = 0;
      decode_utf8(pos_, cp, n);  // the whole text was validated
      pos_ += n;
      return true;
    }
    if (++pos_ >= src_.size()) return set_error(at, "the grammar ends inside an escape");
    const char e = src_[pos_++];
    switch (e) {
      case 'n': cp = '\n'; return true;
      case 'r': cp = '\r'; return true;
      case 't': cp = '\t'; return true;
      case '0': cp = 0; return true;
      case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/': case '.':
        cp = static_cast<unsigned char>(e);
        return true;
      case 'x': case 'u': case 'U':
        if (!parse_hex(e == 'x' ? 2 : e == 'u' ? 4 : 8, cp)) return false;
        if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
          return set_error(at, "escape \\", e, " names ", cp, ", which is not a Unicode character");
        return true;
      default:
        return set_error(at, "unknown escape '\\", std::string(1, e), "'");
    }
  }
  uint32_t charset_id(const CharSet& s) {
    auto [it, added] = charset_ids_.try_emplace(s.ranges, static_cast<uint32_t>(charsets_.size()));
    if (added) charsets_.push_back(s);
    return it->second;
  }
  uint32_t rule_id(const std::string& name) {
    auto [it, added] = by_name_.try_emplace(name, static_cast<uint32_t>(rules_.size()));
    if (added) {
      rules_.emplace_back();
      rules_.back().name = name;
      rules_.back().first_use = pos_;
    }
    return it->second;
  }
  // A rule made by the parser for a group or repetition inside `parent`.
  uint32_t new_rule(uint32_t parent, const char* what, size_t at, std::vector<std::vector<GrammarItem>> alts) {
    Rule r;
    r.name = what;
    r.parent = parent;
    r.alts = std::move(alts);
    r.defined = true;
    r.at = r.first_use = at;
    rules_.push_back(std::move(r));
    return static_cast<uint32_t>(rules_.size() - 1);
  }
  bool count_items(size_t n) {
    items_ += n;
    if (items_ > kMaxItems) return set_error(pos_, "the grammar is too large (over ", kMaxItems, " items once repetitions are expanded)");
    return true;
  }

  // --- syntax -------------------------------------------------------------
  bool parse_alternates(uint32_t rule, std::vector<std::vector<GrammarItem>>& alts, int depth) {
    if (depth > kMaxNesting) return set_error(pos_, "groups nested more than ", kMaxNesting, " deep");
    for (;;) {
      alts.emplace_back();
      if (!parse_sequence(rule, alts.back(), depth)) return false;
      skip_space();
      if (pos_ < src_.size() && src_[pos_] == '|') {
        ++pos_;
        continue;
      }
      return true;
    }
  }

  bool parse_sequence(uint32_t rule, std::vector<GrammarItem>& seq, int depth) {
    size_t term_start = seq.size();  // the last term's items, for a repetition that follows
    bool have_term = false;
    for (;;) {
      skip_space();
      if (pos_ >= src_.size()) return true;
      const size_t at = pos_;
      const char c = src_[pos_];
      if (c == '|' || c == ')') return true;
      if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!have_term) return set_error(at, "'", std::string(1, c), "' has nothing before it to repeat");
        if (!parse_repetition(rule, seq, term_start)) return false;
        continue;
      }
      term_start = seq.size();
      have_term = true;
      if (c == '"') {
        ++pos_;
        for (;;) {
          if (pos_ >= src_.size()) return set_error(at, "unterminated string literal");
          if (src_[pos_] == '"') break;
          uint32_t cp = 0;
          if (!parse_char(cp) || !count_items(1)) return false;
          seq.push_back({GrammarItem::Chars, charset_id(CharSet::of({{cp, cp}}, false))});
        }
        ++pos_;
      } else if (c == '[') {
        ++pos_;
        const bool negate = pos_ < src_.size() && src_[pos_] == '^';
        if (negate) ++pos_;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;
        for (;;) {
          if (pos_ >= src_.size()) return set_error(at, "unterminated character class");
          if (src_[pos_] == ']') break;
          const size_t lo_at = pos_;
          uint32_t lo = 0, hi = 0;
          if (!parse_char(lo)) return false;
          hi = lo;
          if (pos_ + 1 < src_.size() && src_[pos_] == '-' && src_[pos_ + 1] != ']') {
            ++pos_;
            if (!parse_char(hi)) return false;
            if (hi < lo) return set_error(lo_at, "character range is reversed (", lo, " > ", hi, ")");
          }
          ranges.emplace_back(lo, hi);
        }
        ++pos_;
        if (!count_items(1)) return false;
        seq.push_back({GrammarItem::Chars, charset_id(CharSet::of(std::move(ranges), negate))});
      } else if (c == '.') {
        ++pos_;
        if (!count_items(1)) return false;
        seq.push_back({GrammarItem::Chars, charset_id(CharSet::of({{0, kMaxCodePoint}}, false))});
      } else if (c == '(') {
        ++pos_;
        std::vector<std::vector<GrammarItem>> alts;
        if (!parse_alternates(rule, alts, depth + 1)) return false;
        skip_space();
        if (pos_ >= src_.size() || src_[pos_] != ')') return set_error(at, "unclosed '('");
        ++pos_;
        if (!count_items(1)) return false;
        seq.push_back({GrammarItem::Rule, new_rule(rule, "group", at, std::move(alts))});
      } else if (is_name_char(c)) {
        if (at_rule_start()) {  // the next rule begins: this one is complete
          if (depth > 0) return set_error(at, "rule definition inside '(': a ')' is missing");
          return true;
        }
        const std::string name = parse_name();
        if (!count_items(1)) return false;
        pos_ = at;  // the reference's position, for "undefined rule" messages
        const uint32_t id = rule_id(name);
        pos_ = at + name.size();
        seq.push_back({GrammarItem::Rule, id});
      } else {
        return set_error(at, "unexpected ", describe_here());
      }
    }
  }

  bool parse_int(int& out) {
    const size_t at = pos_;
    long long v = 0;
    while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') {
      v = v * 10 + (src_[pos_++] - '0');
      if (v > kMaxRepeat) return set_error(at, "repetition count over ", kMaxRepeat);
    }
    out = static_cast<int>(v);
    return pos_ > at;
  }

  // Applies * + ? {m,n} to seq[term_start..]: the last term.
  bool parse_repetition(uint32_t rule, std::vector<GrammarItem>& seq, size_t term_start) {
    const size_t at = pos_;
    const char op = src_[pos_++];
    int lo = 0, hi = -1;  // hi -1: unbounded
    if (op == '+') lo = 1;
    else if (op == '?') hi = 1;
    else if (op == '{') {
      skip_space();
      if (!parse_int(lo)) {
        if (!error_.empty()) return false;
        lo = 0;
        if (pos_ >= src_.size() || src_[pos_] != ',') return set_error(at, "expected {m}, {m,}, {m,n} or {,n}");
      }
      skip_space();
      if (pos_ < src_.size() && src_[pos_] == ',') {
        ++pos_;
        skip_space();
        if (!parse_int(hi)) {
          if (!error_.empty()) return false;
          hi = -1;
        }
      } else {
        hi = lo;
      }
      skip_space();
      if (pos_ >= src_.size() || src_[pos_] != '}') return set_error(at, "unclosed '{' of a repetition");
      ++pos_;
      if (hi >= 0 && hi < lo) return set_error(at, "repetition {", lo, ",", hi, "} has its maximum below its minimum");
    }
    // The repeated term as one item.
    GrammarItem x;
    if (seq.size() - term_start == 1) {
      x = seq.back();
    } else {
      std::vector<std::vector<GrammarItem>> alts(1, std::vector<GrammarItem>(seq.begin() + static_cast<long>(term_start), seq.end()));
      x = {GrammarItem::Rule, new_rule(rule, "repeated literal", at, std::move(alts))};
    }
    seq.resize(term_start);
    const size_t copies = static_cast<size_t>(lo) + (hi < 0 ? 2 : 2 * static_cast<size_t>(hi - lo));
    if (!count_items(copies)) return false;
    for (int i = 0; i < lo; ++i) seq.push_back(x);
    if (hi < 0) {  // S ::= x S | (empty)
      const uint32_t s = new_rule(rule, "repetition", at, {});
      rules_[s].alts = {{x, {GrammarItem::Rule, s}}, {}};
      seq.push_back({GrammarItem::Rule, s});
    } else if (hi > lo) {  // C1 ::= x | (empty); Ck ::= x C(k-1) | (empty)
      uint32_t chain = new_rule(rule, "repetition", at, {{x}, {}});
      for (int k = 2; k <= hi - lo; ++k) chain = new_rule(rule, "repetition", at, {{x, {GrammarItem::Rule, chain}}, {}});
      seq.push_back({GrammarItem::Rule, chain});
    }
    return true;
  }

  // --- compilation --------------------------------------------------------
  Result<CompiledGrammar> compile(uint32_t root) {
    CompiledGrammar g;
    g.root = root;
    g.charsets = std::move(charsets_);
    for (const Rule& r : rules_) {
      auto& starts = g.alternatives.emplace_back();
      for (const auto& alt : r.alts) {
        starts.push_back(static_cast<uint32_t>(g.items.size()));
        g.items.insert(g.items.end(), alt.begin(), alt.end());
        g.items.push_back({GrammarItem::End, 0});
      }
    }
    const std::vector<uint32_t> rule_min = compute_rest_bytes(g);
    if (Status s = check_left_recursion(g, rule_min); !s) return Error{s.message()};
    g.class_starts.push_back(0);
    for (const CharSet& c : g.charsets)
      for (const auto& r : c.ranges) {
        g.class_starts.push_back(r.first);
        if (r.second < kMaxCodePoint) g.class_starts.push_back(r.second + 1);
      }
    std::sort(g.class_starts.begin(), g.class_starts.end());
    g.class_starts.erase(std::unique(g.class_starts.begin(), g.class_starts.end()), g.class_starts.end());
    if (rule_min[root] >= kNoCompletion)
      return err("grammar: rule '", display_name(root), "' matches no finite text (every alternative needs a "
                 "character class that matches nothing or a rule that never ends)");
    return g;
  }

  // A rule that can reach itself before consuming a character would make
  // the matcher expand forever. Found by a depth-first walk over the
  // "may start with" edges (a rule reference preceded only by rules that
  // can match empty text, i.e. whose shortest text has 0 bytes).
  Status check_left_recursion(const CompiledGrammar& g, const std::vector<uint32_t>& rule_min) const {
    const size_t n = g.alternatives.size();
    auto nullable = [&](uint32_t r) { return rule_min[r] == 0; };
    std::vector<std::vector<uint32_t>> starts(n);
    for (size_t r = 0; r < n; ++r)
      for (uint32_t a : g.alternatives[r])
        for (uint32_t p = a; g.items[p].kind == GrammarItem::Rule; ++p) {
          starts[r].push_back(g.items[p].index);
          if (!nullable(g.items[p].index)) break;
        }
    std::vector<char> mark(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<uint32_t> path;
    std::string cycle;
    // Iterative DFS: (rule, next edge).
    for (size_t s = 0; s < n && cycle.empty(); ++s) {
      if (mark[s]) continue;
      std::vector<std::pair<uint32_t, size_t>> stack{{static_cast<uint32_t>(s), 0}};
      mark[s] = 1;
      path.assign(1, static_cast<uint32_t>(s));
      while (!stack.empty() && cycle.empty()) {
        auto& [r, e] = stack.back();
        if (e == starts[r].size()) {
          mark[r] = 2;
          stack.pop_back();
          path.pop_back();
          continue;
        }
        const uint32_t t = starts[r][e++];
        if (mark[t] == 1) {
          const auto from = std::find(path.begin(), path.end(), t);
          for (auto it = from; it != path.end(); ++it) cycle += display_name(*it) + " -> ";
          cycle += display_name(t);
          return err("grammar: ", where(rules_[t].at), ": left recursion: rule '", display_name(t),
                     "' can reach itself without matching a character (", cycle, ")");
        }
        if (mark[t] == 0) {
          mark[t] = 1;
          path.push_back(t);
          stack.emplace_back(t, 0);
        }
      }
    }
    return {};
  }

  // Fewest bytes of text each rule can match, and from each position to the
  // end of its alternative: Knuth's generalisation of Dijkstra's algorithm
  // (a rule's length is final when it is the smallest left to settle),
  // O(items log items) whatever the order of the rules.
  static std::vector<uint32_t> compute_rest_bytes(CompiledGrammar& g) {
    const size_t rules = g.alternatives.size();
    std::vector<uint32_t> rule_min(rules, kNoCompletion);
    struct Alt {
      uint32_t rule, start, pending = 0;  // references to rules not yet settled
      uint64_t sum = 0;
    };
    std::vector<Alt> alts;
    std::vector<std::vector<uint32_t>> used_by(rules);  // rule -> alternatives referring to it (once per reference)
    using Entry = std::pair<uint64_t, uint32_t>;        // (length, rule)
    std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> queue;
    for (uint32_t r = 0; r < rules; ++r)
      for (uint32_t start : g.alternatives[r]) {
        Alt a{r, start};
        for (uint32_t p = start; g.items[p].kind != GrammarItem::End; ++p) {
          const GrammarItem& it = g.items[p];
          if (it.kind == GrammarItem::Chars) {
            a.sum += g.charsets[it.index].min_bytes();
          } else {
            ++a.pending;
            used_by[it.index].push_back(static_cast<uint32_t>(alts.size()));
          }
        }
        if (a.pending == 0 && a.sum < kNoCompletion) queue.emplace(a.sum, r);
        alts.push_back(a);
      }
    while (!queue.empty()) {
      const auto [len, r] = queue.top();
      queue.pop();
      if (rule_min[r] < kNoCompletion) continue;
      rule_min[r] = static_cast<uint32_t>(len);
      for (uint32_t ai : used_by[r]) {
        Alt& a = alts[ai];
        a.sum += len;
        if (--a.pending == 0 && a.sum < kNoCompletion && rule_min[a.rule] >= kNoCompletion) queue.emplace(a.sum, a.rule);
      }
    }
    g.rest_bytes.assign(g.items.size(), 0);
    for (const Alt& a : alts) {
      uint32_t end = a.start;
      while (g.items[end].kind != GrammarItem::End) ++end;
      for (uint32_t p = end; p-- > a.start;) {
        const GrammarItem& it = g.items[p];
        const uint32_t here = it.kind == GrammarItem::Chars ? g.charsets[it.index].min_bytes() : rule_min[it.index];
        g.rest_bytes[p] = saturating_add(here, g.rest_bytes[p + 1]);
      }
    }
    return rule_min;
  }

  std::string_view src_;
  std::string root_name_;
  size_t pos_ = 0, items_ = 0;
  std::string error_;
  std::vector<Rule> rules_;
  std::unordered_map<std::string, uint32_t> by_name_;
  std::vector<CharSet> charsets_;
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, uint32_t> charset_ids_;
};

// Where a partly read UTF-8 character stands: the bits so far, how many
// continuation bytes it still needs and the range the next one must be in
// (RFC 3629: no overlongs, surrogates or values past U+10FFFF).
struct Utf8Pending {
  uint32_t bits = 0;
  uint8_t need = 0, lo = 0x80, hi = 0xBF;
  // The code points that can still complete it: UTF-8 keeps code point
  // order, so they form one interval.
  uint32_t first() const { return ((bits << 6) | (lo & 0x3Fu)) << (6 * (need - 1)); }
  uint32_t last() const { return (((bits << 6) | (hi & 0x3Fu)) << (6 * (need - 1))) | ((1u << (6 * (need - 1))) - 1); }
};

// The parse stacks' frames, shared by all states of one matcher: frame =
// (position in the grammar, parent frame), interned so that equal stacks
// are one id (states are sorted id lists; dedup and copies are cheap) and
// each frame knows the fewest bytes that finish its whole stack.
// Stepping a frame on a character is cached per character class.
class ParseStacks {
 public:
  explicit ParseStacks(std::shared_ptr<const CompiledGrammar> g) : g_(std::move(g)) {}
  ParseStacks(const ParseStacks& o)  // the cache is not copied
      : g_(o.g_), frames_(o.frames_), index_(o.index_), steps_(o.steps_), step_limit_(o.step_limit_), exceeded_(o.exceeded_) {}
  ParseStacks& operator=(const ParseStacks& o) {
    if (this != &o) *this = ParseStacks(o);
    return *this;
  }
  ParseStacks(ParseStacks&&) = default;
  ParseStacks& operator=(ParseStacks&&) = default;

  const CompiledGrammar& grammar() const { return *g_; }

  // A grammar so ambiguous that its parse stacks multiply (root ::= x
  // root{5}* | .) could take minutes per character; work is counted in
  // stack steps, and past the limit set here every step fails and
  // exceeded() says so (the results are then not cached).
  void limit_steps(uint64_t steps) {
    step_limit_ = steps_ + steps;
    exceeded_ = false;
  }
  bool exceeded() const { return exceeded_; }
  // Counts other work proportional to stacks (hashing, copying a state).
  void charge(uint64_t steps) {
    steps_ += steps;
    if (steps_ > step_limit_) exceeded_ = true;
  }

  // The stacks before any text: their tops (frames whose item is a
  // character set, sorted) in `tops`; true if the empty text is a sentence.
  bool start(std::vector<int32_t>& tops) {
    bool accepting = false;
    for (uint32_t a : g_->alternatives[g_->root]) expand(a, -1, tops, accepting);
    sort_unique(tops, 0);
    return accepting;
  }

  // Appends to `out` the tops after code point `cp` from the tops
  // src[begin, begin + n) (sorted, unique); returns whether a stack
  // completed (the text may end here). `src` may be `out`: it is read by
  // index, so growing `out` does not invalidate it.
  bool step(const std::vector<int32_t>& src, size_t begin, size_t n, uint32_t cp, std::vector<int32_t>& out) {
    const size_t from = out.size();
    bool accepting = false;
    for (size_t i = 0; i < n; ++i) {
      if (++steps_ > step_limit_) exceeded_ = true;
      if (exceeded_) return false;
      const int32_t f = src[begin + i];
      if (!g_->charsets[g_->items[frames_[f].pos].index].contains(cp)) continue;
      const uint64_t key = (static_cast<uint64_t>(f) << 32) | g_->char_class(cp);
      auto it = memo_.find(key);
      if (it == memo_.end()) {
        Memo m;
        m.begin = static_cast<uint32_t>(memo_tops_.size());
        bool acc = false;
        expand(frames_[f].pos + 1, frames_[f].parent, memo_tops_, acc);
        if (exceeded_) {  // a partial expansion: never cached
          memo_tops_.resize(m.begin);
          return false;
        }
        sort_unique(memo_tops_, m.begin);
        m.count = static_cast<uint32_t>(memo_tops_.size() - m.begin);
        m.accepting = acc;
        if (memo_.size() > kMaxMemo) memo_.clear(), memo_tops_.erase(memo_tops_.begin(), memo_tops_.begin() + m.begin), m.begin = 0;
        it = memo_.emplace(key, m).first;
      }
      charge(it->second.count);  // copying and sorting the stacks is work too
      if (exceeded_) return false;
      out.insert(out.end(), memo_tops_.begin() + it->second.begin, memo_tops_.begin() + it->second.begin + it->second.count);
      accepting = accepting || it->second.accepting;
    }
    sort_unique(out, from);
    return accepting;
  }

  // One byte of text. The state's tops are src[begin, begin + n); the new
  // state's tops are appended to `buf` (or, while a character is
  // incomplete, are the same: then same_tops is set). False when no stack
  // survives. `src` may be `buf`.
  bool feed_byte(const std::vector<int32_t>& src, size_t begin, size_t n, const Utf8Pending& in, uint8_t b,
                 std::vector<int32_t>& buf, Utf8Pending& out, bool& accepting, bool& same_tops) {
    same_tops = false;
    accepting = false;
    out = in;
    if (in.need == 0) {
      if (b < 0x80) return finish_char(src, begin, n, b, buf, out, accepting);
      if (b >= 0xC2 && b <= 0xDF) out = {static_cast<uint32_t>(b & 0x1F), 1, 0x80, 0xBF};
      else if (b >= 0xE0 && b <= 0xEF) out = {static_cast<uint32_t>(b & 0x0F), 2, static_cast<uint8_t>(b == 0xE0 ? 0xA0 : 0x80), static_cast<uint8_t>(b == 0xED ? 0x9F : 0xBF)};
      else if (b >= 0xF0 && b <= 0xF4) out = {static_cast<uint32_t>(b & 0x07), 3, static_cast<uint8_t>(b == 0xF0 ? 0x90 : 0x80), static_cast<uint8_t>(b == 0xF4 ? 0x8F : 0xBF)};
      else return false;
    } else {
      if (b < in.lo || b > in.hi) return false;
      out.bits = (in.bits << 6) | (b & 0x3Fu);
      out.need = static_cast<uint8_t>(in.need - 1);
      out.lo = 0x80, out.hi = 0xBF;
      if (out.need == 0) return finish_char(src, begin, n, out.bits, buf, out, accepting);
    }
    same_tops = true;
    const uint32_t lo = out.first(), hi = out.last();
    for (size_t i = 0; i < n; ++i)
      if (charset(src[begin + i]).intersects(lo, hi)) return true;
    return false;
  }

  // Fewest bytes that complete the text from a state (kNoCompletion if it
  // cannot be completed).
  uint32_t min_to_complete(const int32_t* tops, size_t n, bool accepting, const Utf8Pending& pending) const {
    if (pending.need == 0 && accepting) return 0;
    uint32_t best = kNoCompletion;
    for (size_t i = 0; i < n; ++i) {
      const Frame& f = frames_[tops[i]];
      if (pending.need == 0) {
        best = std::min(best, f.rest);
      } else if (charset(tops[i]).intersects(pending.first(), pending.last())) {  // finish the character, then the stack
        const uint32_t parent_rest = f.parent < 0 ? 0 : frames_[f.parent].rest;
        best = std::min(best, saturating_add(pending.need, saturating_add(g_->rest_bytes[f.pos + 1], parent_rest)));
      }
    }
    return best;
  }

 private:
  struct Frame {
    uint32_t pos;    // the item to match next in this frame's alternative
    int32_t parent;  // the frame to return to when the alternative ends (-1: the start rule)
    uint32_t rest;   // fewest bytes that finish this frame and all below it
  };
  struct Memo {
    uint32_t begin = 0, count = 0;
    bool accepting = false;
  };
  static constexpr size_t kMaxMemo = size_t{1} << 20;
  static constexpr size_t kMaxFrames = size_t{1} << 24;

  const CharSet& charset(int32_t frame) const { return g_->charsets[g_->items[frames_[frame].pos].index]; }

  bool finish_char(const std::vector<int32_t>& src, size_t begin, size_t n, uint32_t cp, std::vector<int32_t>& buf,
                   Utf8Pending& out, bool& accepting) {
    out = {};
    const size_t from = buf.size();
    accepting = step(src, begin, n, cp, buf);
    return accepting || buf.size() > from;
  }

  // The frame (pos, parent), or -1 when it can never finish (or when a
  // pathologically ambiguous grammar has made kMaxFrames stacks: then
  // the text cannot go on, which the constraint reports, rather than
  // memory running out).
  int32_t intern(uint32_t pos, int32_t parent) {
    const uint64_t key = (static_cast<uint64_t>(pos) << 32) | static_cast<uint32_t>(parent + 1);
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    const uint32_t rest = saturating_add(g_->rest_bytes[pos], parent < 0 ? 0 : frames_[parent].rest);
    if (frames_.size() >= kMaxFrames) return -1;
    const int32_t id = rest >= kNoCompletion ? -1 : static_cast<int32_t>(frames_.size());
    if (id >= 0) frames_.push_back({pos, parent, rest});
    index_.emplace(key, id);
    return id;
  }

  // Every stack that continues from item `pos` of a frame whose parent is
  // `parent`, down to a character set: rule references push their
  // alternatives (a reference that ends its alternative replaces the frame
  // instead, so right recursion such as S ::= x S does not deepen the
  // stack), ends of alternatives return to the parent.
  void expand(uint32_t pos, int32_t parent, std::vector<int32_t>& out, bool& accepting) {
    work_.clear();
    seen_.clear();
    work_.emplace_back(pos, parent);
    while (!work_.empty()) {
      if (++steps_ > step_limit_) {
        exceeded_ = true;
        return;
      }
      auto [p, par] = work_.back();
      work_.pop_back();
      if (!seen_.insert((static_cast<uint64_t>(p) << 32) | static_cast<uint32_t>(par + 1)).second) continue;
      const GrammarItem& it = g_->items[p];
      if (it.kind == GrammarItem::End) {
        if (par < 0) accepting = true;
        else work_.emplace_back(frames_[par].pos, frames_[par].parent);
      } else if (it.kind == GrammarItem::Chars) {
        if (const int32_t f = intern(p, par); f >= 0) out.push_back(f);
      } else {
        const int32_t cont = g_->items[p + 1].kind == GrammarItem::End ? par : intern(p + 1, par);
        if (cont == -1 && g_->items[p + 1].kind != GrammarItem::End) continue;  // the rest can never finish
        for (uint32_t a : g_->alternatives[it.index]) work_.emplace_back(a, cont);
      }
    }
  }

  static void sort_unique(std::vector<int32_t>& v, size_t from) {
    std::sort(v.begin() + static_cast<long>(from), v.end());
    v.erase(std::unique(v.begin() + static_cast<long>(from), v.end()), v.end());
  }

  std::shared_ptr<const CompiledGrammar> g_;
  std::vector<Frame> frames_;
  std::unordered_map<uint64_t, int32_t> index_;
  std::unordered_map<uint64_t, Memo> memo_;
  std::vector<int32_t> memo_tops_;
  std::vector<std::pair<uint32_t, int32_t>> work_;
  std::unordered_set<uint64_t> seen_;
  uint64_t steps_ = 0, step_limit_ = std::numeric_limits<uint64_t>::max();
  bool exceeded_ = false;
};

// The grammar as a deterministic automaton over bytes, built lazily: a
// state is a parse state (its stack tops, a partly read character,
// whether the text so far is complete), interned, with a table of its 256
// successors filled in as they are asked for. Walking a token trie is then
// a table look-up per byte. The tables are a cache: a copy starts without
// them, and they are dropped (the states kept) when too many exist.
class ByteAutomaton {
 public:
  static constexpr int32_t kDead = -1;

  // Parse-stack steps allowed per token (see ParseStacks::limit_steps and
  // charge): a whole-vocabulary mask of a JSON grammar takes well under 1%
  // of it, the first mask of a 10,000-value enum at 256k pieces 1-2 million
  // steps (a fifth at most), so enums of tens of thousands of values fit.
  static constexpr uint64_t kMaxSteps = uint64_t{1} << 23;

  explicit ByteAutomaton(std::shared_ptr<const CompiledGrammar> g) : stacks_(std::move(g)) {
    std::vector<int32_t> tops;
    stacks_.limit_steps(kMaxSteps);
    const bool accepting = stacks_.start(tops);
    start_ = stacks_.exceeded() ? intern({}, {}, false) : intern(std::move(tops), {}, accepting);
    end_ = intern({}, {}, true);
  }
  ByteAutomaton(const ByteAutomaton& o) : stacks_(o.stacks_), states_(o.states_), index_(o.index_), start_(o.start_), end_(o.end_) {
    for (State& st : states_) st.table = -1;
  }
  ByteAutomaton& operator=(const ByteAutomaton& o) {
    if (this != &o) *this = ByteAutomaton(o);
    return *this;
  }
  ByteAutomaton(ByteAutomaton&&) = default;
  ByteAutomaton& operator=(ByteAutomaton&&) = default;

  int32_t start() const { return start_; }
  // The state after an end token: complete, nothing may follow.
  int32_t end() const { return end_; }
  // The text is a whole sentence here.
  bool accepting(int32_t s) const { return states_[static_cast<size_t>(s)].accepting; }
  // More text may follow.
  bool can_continue(int32_t s) const { return !states_[static_cast<size_t>(s)].tops.empty(); }
  // Fewest bytes that complete the text.
  uint32_t min_to_complete(int32_t s) const { return states_[static_cast<size_t>(s)].min_rest; }

  // A fresh budget of kMaxSteps (for the next token), and whether the
  // current one ran out: then next() refuses everything.
  void limit_steps() { stacks_.limit_steps(kMaxSteps); }
  bool exceeded() const { return stacks_.exceeded(); }

  int32_t next(int32_t s, uint8_t b) {
    if (states_[static_cast<size_t>(s)].table < 0) {
      if (tables_.size() >= kMaxTables) {  // drop the cache, keep the states
        tables_.clear();
        for (State& st : states_) st.table = -1;
      }
      states_[static_cast<size_t>(s)].table = static_cast<int32_t>(tables_.size());
      tables_.emplace_back();
      tables_.back().fill(kUnknown);
    }
    const auto t = static_cast<size_t>(states_[static_cast<size_t>(s)].table);
    if (tables_[t][b] != kUnknown) return tables_[t][b];
    const State& st = states_[static_cast<size_t>(s)];
    scratch_.clear();
    Utf8Pending pending;
    bool accepting = false, same = false;
    int32_t id = kDead;
    if (stacks_.exceeded()) return kDead;
    if (stacks_.feed_byte(st.tops, 0, st.tops.size(), st.pending, b, scratch_, pending, accepting, same)) {
      std::vector<int32_t> tops = same ? st.tops : scratch_;
      stacks_.charge(4 * tops.size());  // copied, hashed, compared and measured once more each
      if (stacks_.exceeded()) return kDead;
      id = intern(std::move(tops), pending, accepting && pending.need == 0);
    }
    if (stacks_.exceeded()) return kDead;  // not a real answer: not cached
    tables_[t][b] = id;
    return id;
  }

  // The state after `text` from `s` (kDead if the grammar refuses it).
  int32_t run(int32_t s, std::string_view text) {
    for (size_t i = 0; i < text.size() && s != kDead; ++i) s = next(s, static_cast<uint8_t>(text[i]));
    return s;
  }

 private:
  static constexpr int32_t kUnknown = -2;
  static constexpr size_t kMaxTables = 16384;  // 16 MiB of successor tables

  struct State {
    std::vector<int32_t> tops;
    Utf8Pending pending;
    bool accepting = false;
    uint32_t min_rest = 0;
    int32_t table = -1;
  };
  struct KeyHash {
    size_t operator()(const std::vector<int32_t>& k) const {
      uint64_t h = 0xcbf29ce484222325ull;
      for (int32_t v : k) h = (h ^ static_cast<uint32_t>(v)) * 0x100000001b3ull;
      return static_cast<size_t>(h ^ (h >> 29));
    }
  };

  int32_t intern(std::vector<int32_t> tops, const Utf8Pending& pending, bool accepting) {
    // A partly read character whose possible completions all lie in one
    // class leads to the same states whatever its bits: one state for all.
    int32_t bits = static_cast<int32_t>(pending.bits);
    if (pending.need > 0) {
      const CompiledGrammar& g = stacks_.grammar();
      const uint32_t c = g.char_class(pending.first());
      if (c == g.char_class(pending.last())) bits = static_cast<int32_t>(0x80000000u | c);
    }
    key_.assign({bits,
                 static_cast<int32_t>(pending.need | (pending.lo << 8) | (pending.hi << 16) | (accepting << 24))});
    key_.insert(key_.end(), tops.begin(), tops.end());
    if (auto it = index_.find(key_); it != index_.end()) return it->second;
    State st;
    st.min_rest = stacks_.min_to_complete(tops.data(), tops.size(), accepting, pending);
    st.tops = std::move(tops);
    st.pending = pending;
    st.accepting = accepting;
    const auto id = static_cast<int32_t>(states_.size());
    states_.push_back(std::move(st));
    index_.emplace(key_, id);
    return id;
  }

  ParseStacks stacks_;
  std::vector<State> states_;
  std::unordered_map<std::vector<int32_t>, int32_t, KeyHash> index_;
  std::vector<std::array<int32_t, 256>> tables_;
  std::vector<int32_t> scratch_, key_;
  int32_t start_ = 0, end_ = 0;
};

}  // namespace detail

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

  size_t rule_count() const { return g_->alternatives.size(); }

  const std::shared_ptr<const detail::CompiledGrammar>& compiled() const { return g_; }

 private:
  std::shared_ptr<const detail::CompiledGrammar> g_;
};

GEMMA2_END_NAMESPACE
