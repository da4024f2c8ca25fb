// The grammar representation that the GBNF parser (grammar/parser.hpp)
// builds and the matcher (grammar/matcher.hpp) follows: character sets,
// and every alternative of every rule as a run of items in one array.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <utility>
#include <vector>

#include "gemma2/utf8.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// A length that no finite completion has: the item or frame cannot complete.
constexpr uint32_t kNoCompletion = 1u << 30;

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
      if (!merged.empty() && r.first <= merged.back().second + 1)
        merged.back().second = std::max(merged.back().second, r.second);
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
      for (uint32_t c = r.first; c <= std::min<uint32_t>(r.second, 127); ++c)
        s.ascii[c >> 6] |= uint64_t{1} << (c & 63);
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
    return static_cast<uint32_t>(std::upper_bound(class_starts.begin(), class_starts.end(), cp) - class_starts.begin() -
                                 1);
  }
};

inline uint32_t saturating_add(uint32_t a, uint32_t b) { return std::min<uint64_t>(uint64_t{a} + b, kNoCompletion); }

}  // namespace detail

GEMMA2_END_NAMESPACE
