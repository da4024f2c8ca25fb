// Number ranges of JSON Schema (minimum, maximum, exclusive bounds) as
// GBNF over decimal text, exactly: each bound is read as a decimal, never
// as a double.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gemma2/json_schema/json_gbnf.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

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
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && e <= 400; ++i)
      e = e * 10 + (text[i] - '0');
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
    std::string alt =
        from == to ? "[" + std::to_string(from) + "]" : "[" + std::to_string(from) + "-" + std::to_string(to) + "]";
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
    const std::string lo = k == a.size() ? a : "1" + std::string(k - 1, '0'),
                      hi = k == b.size() ? b : std::string(k, '9');
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
inline std::string magnitude_range(const std::optional<NumberBound>& lo, const std::optional<NumberBound>& hi,
                                   int digits, int decimals) {
  using Bound = std::optional<std::string_view>;
  const std::string lw = lo ? lo->value.whole : "0",
                    hw = hi ? hi->value.whole : std::string(static_cast<size_t>(digits), '9');
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
    if (auto m = magnitude_range(lo && !lo->value.negative ? lo : std::nullopt, hi, digits, decimals); !m.empty())
      alts.push_back(m);
  }
  std::string out;
  for (const auto& alt : alts) out += (out.empty() ? "" : " | ") + alt;
  return out;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
