// Following text through a grammar (grammar/compiled.hpp) a byte at a
// time, as a model emits it: the parse stacks of a generalised (all
// alternatives at once) top-down parser, and over them a lazily built
// deterministic automaton over bytes that constraint.hpp walks a token
// trie with. The stacks work like llama.cpp's grammar stacks
// (src/llama-grammar.cpp); interning and per-class caching are ours.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "gemma2/grammar/compiled.hpp"
#include "gemma2/utf8.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// The parse stacks' frames, shared by all states of one matcher: frame =
// (position in the grammar, parent frame), interned so that equal stacks
// are one id (states are sorted id lists; dedup and copies are cheap) and
// each frame knows the fewest bytes that finish its whole stack.
// Stepping a frame on a character is cached per character class.
class ParseStacks {
 public:
  explicit ParseStacks(std::shared_ptr<const CompiledGrammar> g) : g_(std::move(g)) {}
  ParseStacks(const ParseStacks& o)  // the cache is not copied
      : g_(o.g_),
        frames_(o.frames_),
        index_(o.index_),
        steps_(o.steps_),
        step_limit_(o.step_limit_),
        exceeded_(o.exceeded_) {}
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
        if (memo_.size() > kMaxMemo)
          memo_.clear(), memo_tops_.erase(memo_tops_.begin(), memo_tops_.begin() + m.begin), m.begin = 0;
        it = memo_.emplace(key, m).first;
      }
      charge(it->second.count);  // copying and sorting the stacks is work too
      if (exceeded_) return false;
      out.insert(out.end(), memo_tops_.begin() + it->second.begin,
                 memo_tops_.begin() + it->second.begin + it->second.count);
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
      if (!utf8_begin(b, out)) return false;
    } else {
      if (!utf8_continue(in, b, out)) return false;
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
      } else if (charset(tops[i]).intersects(pending.first(),
                                             pending.last())) {  // finish the character, then the stack
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
  ByteAutomaton(const ByteAutomaton& o)
      : stacks_(o.stacks_), states_(o.states_), index_(o.index_), start_(o.start_), end_(o.end_) {
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
    key_.assign(
        {bits, static_cast<int32_t>(pending.need | (pending.lo << 8) | (pending.hi << 16) | (accepting << 24))});
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

GEMMA2_END_NAMESPACE
