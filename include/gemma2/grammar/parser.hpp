// Context-free grammars in llama.cpp's GBNF notation (its grammars/README.md
// is the reference), parsed into the representation of grammar/compiled.hpp.
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
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gemma2/grammar/analysis.hpp"
#include "gemma2/grammar/compiled.hpp"
#include "gemma2/status.hpp"
#include "gemma2/utf8.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

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
    if (const size_t bad = find_invalid_utf8(src_); bad != std::string_view::npos) {
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
    uint32_t cp = 0;
    return "'" + std::string(src_.substr(pos_, static_cast<size_t>(std::max(1, decode(pos_, cp))))) + "'";
  }
  // The validated text's character at `at`.
  int decode(size_t at, uint32_t& cp) const {
    return utf8_decode(reinterpret_cast<const unsigned char*>(src_.data()) + at, src_.size() - at, cp);
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
      const int v = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (v < 0) return set_error(pos_, "expected a hex digit in an escape, found ", describe_here());
      out = out * 16 + static_cast<uint32_t>(v);
    }
    return true;
  }
  // One character of a literal or class, escapes decoded.
  bool parse_char(uint32_t& cp) {
    const size_t at = pos_;
    if (src_[pos_] != '\\') {
      pos_ += static_cast<size_t>(decode(pos_, cp));  // the whole text was validated
      return true;
    }
    if (++pos_ >= src_.size()) return set_error(at, "the grammar ends inside an escape");
    const char e = src_[pos_++];
    switch (e) {
      case 'n': cp = '\n'; return true;
      case 'r': cp = '\r'; return true;
      case 't': cp = '\t'; return true;
      case '0': cp = 0; return true;
      case '\\':
      case '"':
      case '\'':
      case '[':
      case ']':
      case '-':
      case '^':
      case '/':
      case '.': cp = static_cast<unsigned char>(e); return true;
      case 'x':
      case 'u':
      case 'U':
        if (!parse_hex(e == 'x' ? 2 : e == 'u' ? 4 : 8, cp)) return false;
        if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF))
          return set_error(at, "escape \\", e, " names ", cp, ", which is not a Unicode character");
        return true;
      default: return set_error(at, "unknown escape '\\", std::string(1, e), "'");
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
    if (items_ > kMaxItems)
      return set_error(pos_, "the grammar is too large (over ", kMaxItems, " items once repetitions are expanded)");
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
      std::vector<std::vector<GrammarItem>> alts(
          1, std::vector<GrammarItem>(seq.begin() + static_cast<long>(term_start), seq.end()));
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
      for (int k = 2; k <= hi - lo; ++k)
        chain = new_rule(rule, "repetition", at, {{x, {GrammarItem::Rule, chain}}, {}});
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
    g.class_starts = char_class_starts(g.charsets);
    if (rule_min[root] >= kNoCompletion)
      return err("grammar: rule '", display_name(root),
                 "' matches no finite text (every alternative needs a "
                 "character class that matches nothing or a rule that never ends)");
    return g;
  }

  // The left recursion analysis.hpp finds, as an error naming the rules.
  Status check_left_recursion(const CompiledGrammar& g, const std::vector<uint32_t>& rule_min) const {
    const std::vector<uint32_t> loop = find_left_recursion(g, rule_min);
    if (loop.empty()) return {};
    const uint32_t t = loop.front();
    std::string cycle;
    for (uint32_t r : loop) cycle += display_name(r) + " -> ";
    cycle += display_name(t);
    return err("grammar: ", where(rules_[t].at), ": left recursion: rule '", display_name(t),
               "' can reach itself without matching a character (", cycle, ")");
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

}  // namespace detail

GEMMA2_END_NAMESPACE
