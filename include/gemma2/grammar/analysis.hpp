// What the matcher needs to know about a grammar beyond its items, worked
// out once after parsing: the fewest bytes that finish each item's
// alternative, the left recursion that would make matching loop, and the
// character classes steps are cached by.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "gemma2/grammar/compiled.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// Fewest bytes of text each rule can match, and from each position to the
// end of its alternative: Knuth's generalisation of Dijkstra's algorithm
// (a rule's length is final when it is the smallest left to settle),
// O(items log items) whatever the order of the rules.
inline std::vector<uint32_t> compute_rest_bytes(CompiledGrammar& g) {
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

// A rule that can reach itself before consuming a character would make
// the matcher expand forever. Found by a depth-first walk over the
// "may start with" edges (a rule reference preceded only by rules that
// can match empty text, i.e. whose shortest text has 0 bytes). Returns the
// first cycle found (its rules in order, the first one repeated by the
// caller to close it), or nothing.
inline std::vector<uint32_t> find_left_recursion(const CompiledGrammar& g, const std::vector<uint32_t>& rule_min) {
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
  // Iterative DFS: (rule, next edge).
  for (size_t s = 0; s < n; ++s) {
    if (mark[s]) continue;
    std::vector<std::pair<uint32_t, size_t>> stack{{static_cast<uint32_t>(s), 0}};
    mark[s] = 1;
    path.assign(1, static_cast<uint32_t>(s));
    while (!stack.empty()) {
      auto& [r, e] = stack.back();
      if (e == starts[r].size()) {
        mark[r] = 2;
        stack.pop_back();
        path.pop_back();
        continue;
      }
      const uint32_t t = starts[r][e++];
      if (mark[t] == 1) return std::vector<uint32_t>(std::find(path.begin(), path.end(), t), path.end());
      if (mark[t] == 0) {
        mark[t] = 1;
        path.push_back(t);
        stack.emplace_back(t, 0);
      }
    }
  }
  return {};
}

// The starts of the intervals on which every character set's membership
// is constant (see CompiledGrammar::class_starts).
inline std::vector<uint32_t> char_class_starts(const std::vector<CharSet>& charsets) {
  std::vector<uint32_t> out{0};
  for (const CharSet& c : charsets)
    for (const auto& r : c.ranges) {
      out.push_back(r.first);
      if (r.second < kMaxCodePoint) out.push_back(r.second + 1);
    }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
