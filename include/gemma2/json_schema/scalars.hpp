// The converter's values: enum and const, numbers and integers with
// their bounds, strings with lengths, patterns and formats.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gemma2/json_schema/converter.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// A bound keyword's value, exactly; nullopt if absent (or an error).
inline auto SchemaConverter::number_keyword(const json& s, const char* key, const std::string& path)
    -> std::optional<Decimal> {
  if (!s.contains(key)) return std::nullopt;
  auto d = s[key].is_number() ? parse_decimal(dump(s[key])) : std::nullopt;
  if (!d) fail(path, "'", key, "' must be a finite number");
  return d;
}

// The tighter of an inclusive and an exclusive bound.
inline auto SchemaConverter::bound(const json& s, const char* inclusive, const char* exclusive, bool lower,
                                   const std::string& path) -> std::optional<NumberBound> {
  const auto in = number_keyword(s, inclusive, path), ex = number_keyword(s, exclusive, path);
  if (!ex) return in ? std::optional<NumberBound>(NumberBound{*in, false}) : std::nullopt;
  if (!in) return NumberBound{*ex, true};
  const int c = compare(*ex, *in);
  return (lower ? c >= 0 : c <= 0) ? NumberBound{*ex, true} : NumberBound{*in, false};
}

// Whether an enum or const value fits the keywords beside it.
inline auto SchemaConverter::fits(const json& v, const json& s, const std::string& path) -> bool {
  if (s.contains("type")) {
    bool ok = false;
    for (const auto& t : type_list(s["type"], path)) {
      const bool integral = v.is_number_integer() ||
                            (v.is_number_float() && parse_decimal(dump(v)) && parse_decimal(dump(v))->frac.empty());
      ok = ok || (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
           (t == "string" && v.is_string()) || (t == "number" && v.is_number()) ||
           (t == "integer" && v.is_number() && integral) || (t == "boolean" && v.is_boolean()) ||
           (t == "null" && v.is_null());
    }
    if (!ok) return false;
  }
  if (v.is_number()) {
    const auto x = parse_decimal(dump(v));
    const auto lo = bound(s, "minimum", "exclusiveMinimum", true, path),
               hi = bound(s, "maximum", "exclusiveMaximum", false, path);
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

inline auto SchemaConverter::literals(const json& s, const std::string& path) -> std::string {
  for (const auto& [key, v] : s.items()) {
    const bool checked = key == "type" || key == "enum" || key == "const" || key == "minimum" || key == "maximum" ||
                         key == "exclusiveMinimum" || key == "exclusiveMaximum" || key == "minLength" ||
                         key == "maxLength" ||
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
    if ((!s.contains("const") || v == s["const"]) && fits(v, s, path))
      alts += (alts.empty() ? "" : " | ") + gbnf_literal(dump(v));
  if (!error_.empty()) return "value";
  if (alts.empty())
    return fail(path, "no value of '", s.contains("enum") ? "enum" : "const", "' is allowed by the keywords beside it");
  return "(" + alts + ")";
}

inline auto SchemaConverter::number_schema(const json& s, bool integer, const std::string& hint,
                                           const std::string& path) -> std::string {
  auto lo = bound(s, "minimum", "exclusiveMinimum", true, path);
  auto hi = bound(s, "maximum", "exclusiveMaximum", false, path);
  if (!error_.empty()) return "value";
  if (!lo && !hi) return integer ? "integer" : "number";
  if (lo && hi &&
      (compare(lo->value, hi->value) > 0 || (compare(lo->value, hi->value) == 0 && (lo->strict || hi->strict))))
    return fail(path, "no number is between the minimum ", dump_decimal(lo->value), " and the maximum ",
                dump_decimal(hi->value));
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
  auto too_far = [&](const std::optional<NumberBound>& b) {
    return b && b->value.whole.size() > static_cast<size_t>(digits);
  };
  if (too_far(lo)) {
    if (!lo->value.negative)
      return fail(path, "the minimum ", dump_decimal(lo->value),
                  " is beyond the numbers this grammar writes (under 10^", digits, ")");
    lo.reset();
  }
  if (too_far(hi)) {
    if (hi->value.negative)
      return fail(path, "the maximum ", dump_decimal(hi->value),
                  " is beyond the numbers this grammar writes (above -10^", digits, ")");
    hi.reset();
  }
  const std::string range = number_range(lo, hi, digits, integer ? 0 : 15 - digits);
  if (range.empty())
    return fail(path, "no ", integer ? "integer" : "number", " of at most ", integer ? 0 : 15 - digits,
                " decimals lies within the bounds");
  return define(hint, range);
}

inline auto SchemaConverter::dump_decimal(const Decimal& d) -> std::string {
  return (d.negative ? "-" : "") + d.whole + (d.frac.empty() ? "" : "." + d.frac);
}

inline auto SchemaConverter::string_schema(const json& s, const std::string& hint, const std::string& path)
    -> std::string {
  const long lo = count(s, "minLength", path), hi = count(s, "maxLength", path);
  if (hi >= 0 && lo > hi) return fail(path, "minLength ", lo, " is above maxLength ", hi);
  const bool has_format =
      s.contains("format") && s["format"].is_string() && format_pattern(s["format"].get<std::string>());
  if (s.contains("pattern") && !s["pattern"].is_string()) return fail(path, "'pattern' must be a string");
  if (s.contains("pattern") && has_format) return fail(path, "'pattern' together with 'format' is not supported");
  if (!s.contains("pattern") && !has_format) {
    if (lo <= 0 && hi < 0) return "string";
    return "\"\\\"\" " + gbnf_repeat("char", std::max(lo, 0L), hi) + " \"\\\"\"";
  }
  const std::string key = s.contains("pattern") ? "pattern" : "format";
  const std::string regex =
      s.contains("pattern") ? s["pattern"].get<std::string>() : format_pattern(s["format"].get<std::string>());
  auto tree = RegexParser(regex).run();
  if (!tree) return fail(path, "'", key, "' ", dump(json(regex)), ": ", tree.message());
  // A length limit beside a pattern holds only if every match is within it.
  const auto [min_len, max_len] = regex_lengths(*tree);
  if (min_len < lo || (hi >= 0 && (max_len < 0 || max_len > hi)))
    return fail(path, "minLength/maxLength together with '", key,
                "' are supported only when every match of it is within them (its matches have ", min_len, " to ",
                max_len < 0 ? std::string("unlimited") : std::to_string(max_len), " characters)");
  const std::string memo = key + "\n" + regex;
  if (auto it = patterns_.find(memo); it != patterns_.end()) return it->second;
  const std::string name = rule_name(hint + "-" + (has_format ? s["format"].get<std::string>() : "pattern"));
  const size_t slot = rules_.size();
  rules_.emplace_back(name, "");
  rules_[slot].second = "\"\\\"\" " + regex_gbnf(*tree, name) + " \"\\\"\"";
  return patterns_[memo] = name;
}

inline auto SchemaConverter::regex_gbnf(const RegexNode& n, const std::string& hint) -> std::string {
  switch (n.kind) {
    case RegexNode::Kind::Chars: return chars_gbnf(n.chars, hint);
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
inline auto SchemaConverter::chars_gbnf(const CodeRanges& set, const std::string& hint) -> std::string {
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

inline auto SchemaConverter::json_escape(uint32_t c) -> std::string {
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

inline auto SchemaConverter::class_gbnf(const CodeRanges& set) -> std::string {
  auto one = [](uint32_t c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      return std::string(1, static_cast<char>(c));
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

}  // namespace detail

GEMMA2_END_NAMESPACE
