// Grammar-constrained decoding: which tokens may come next so that the
// generated text stays a prefix of a sentence of a grammar (grammar.hpp).
//
// Cost at a 256k vocabulary comes from two things done once per tokenizer
// and per step:
//  - TokenTrie holds every piece's text (as the streaming decoder prints it)
//    in a byte trie, so the full mask walks shared prefixes once and drops
//    a whole subtree at the first byte the grammar refuses;
//  - Sampler (sampling.hpp) checks the token it drew first and builds the
//    mask only when that token is refused (exact: see Sampler::constrain).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gemma2/grammar.hpp"
#include "gemma2/grammar/compiled.hpp"
#include "gemma2/grammar/matcher.hpp"
#include "gemma2/sampling.hpp"  // processors::grammar is a LogitProcessor
#include "gemma2/status.hpp"
#include "gemma2/token.hpp"
#include "gemma2/tokenizer.hpp"  // TokenTrie::build reads the pieces

GEMMA2_BEGIN_NAMESPACE

// The text of every token of a tokenizer, as StreamDecoder prints it (U+2581
// as a space, byte pieces as their byte), in a byte trie. Immutable; build
// it once per tokenizer and share it between constraints and threads.
class TokenTrie {
 public:
  enum class Kind : uint8_t {
    Text,   // ordinary, user-defined and byte pieces: they print text
    End,    // <eos> and <end_of_turn>: allowed only where the grammar can end
    Never,  // control and unknown pieces, ids past the tokenizer: never allowed
  };

  static std::shared_ptr<const TokenTrie> build(const Tokenizer& tok) {
    auto t = std::shared_ptr<TokenTrie>(new TokenTrie());
    const int n = tok.vocab_size();
    t->kind_.assign(static_cast<size_t>(n), Kind::Never);
    t->text_begin_.assign(static_cast<size_t>(n) + 1, 0);
    const auto& lead = tok.leading_space();
    t->drops_leading_space_ = lead.dummy_prefix || lead.remove_extra_whitespaces;
    t->drops_every_leading_space_ = lead.remove_extra_whitespaces;
    for (int32_t id = 0; id < n; ++id) {
      t->text_begin_[static_cast<size_t>(id)] = static_cast<uint32_t>(t->text_.size());
      const auto kind = tok.kind(id);
      if (id == tok.eos_id() || id == tok.end_of_turn_id()) {
        t->kind_[static_cast<size_t>(id)] = Kind::End;
        continue;
      }
      if (kind == Tokenizer::PieceKind::Byte) {
        t->text_ += static_cast<char>(detail::byte_piece_value(tok.piece(id)));
        t->byte_piece_.push_back(id);
      } else if (kind == Tokenizer::PieceKind::Text) {
        const std::string piece = tok.piece(id);
        static constexpr std::string_view kMetaSpace = "\xE2\x96\x81";
        for (size_t i = 0; i < piece.size();) {
          if (piece.compare(i, 3, kMetaSpace) == 0) t->text_ += ' ', i += 3;
          else t->text_ += piece[i++];
        }
      } else {
        continue;
      }
      if (t->text_.size() > t->text_begin_[static_cast<size_t>(id)]) t->kind_[static_cast<size_t>(id)] = Kind::Text;
    }
    t->text_begin_[static_cast<size_t>(n)] = static_cast<uint32_t>(t->text_.size());
    t->build_trie();
    return t;
  }

  int vocab_size() const { return static_cast<int>(kind_.size()); }
  Kind kind(int32_t id) const { return id >= 0 && id < vocab_size() ? kind_[static_cast<size_t>(id)] : Kind::Never; }
  std::string_view text(int32_t id) const {
    if (kind(id) != Kind::Text) return {};
    const auto i = static_cast<size_t>(id);
    return std::string_view(text_).substr(text_begin_[i], text_begin_[i + 1] - text_begin_[i]);
  }
  bool is_byte_piece(int32_t id) const { return std::binary_search(byte_piece_.begin(), byte_piece_.end(), id); }
  // The tokenizer's decoder drops the space that starts the text (see
  // detail::LeadingSpace); Gemma's tokenizer does not.
  bool drops_leading_space() const { return drops_leading_space_; }
  bool drops_every_leading_space() const { return drops_every_leading_space_; }

  struct Node {
    int32_t first_child = -1, next_sibling = -1;
    uint32_t token_begin = 0, token_count = 0;  // tokens whose text ends here (in tokens())
    uint8_t byte = 0;
  };
  // Node 0 is the root (empty text); children are in byte order and nodes
  // in depth-first order, the order a mask walk visits them.
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& tokens() const { return node_tokens_; }

 private:
  TokenTrie() = default;

  void build_trie() {
    std::vector<int32_t> order;
    for (int32_t id = 0; id < vocab_size(); ++id)
      if (kind_[static_cast<size_t>(id)] == Kind::Text) order.push_back(id);
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return text(a) < text(b) || (text(a) == text(b) && a < b); });
    nodes_.assign(1, Node{});
    std::vector<int32_t> path{0};  // nodes of the previous text's bytes, root first
    std::vector<int32_t> last_child{-1};
    std::string_view prev;
    for (int32_t id : order) {
      const std::string_view s = text(id);
      size_t common = 0;
      while (common < prev.size() && common < s.size() && prev[common] == s[common]) ++common;
      path.resize(common + 1);
      last_child.resize(common + 1);
      for (size_t i = common; i < s.size(); ++i) {
        const auto node = static_cast<int32_t>(nodes_.size());
        Node n;
        n.byte = static_cast<uint8_t>(s[i]);
        nodes_.push_back(n);
        const int32_t parent = path.back();
        if (last_child.back() < 0) nodes_[static_cast<size_t>(parent)].first_child = node;
        else nodes_[static_cast<size_t>(last_child.back())].next_sibling = node;
        last_child.back() = node;
        path.push_back(node);
        last_child.push_back(-1);
      }
      Node& end = nodes_[static_cast<size_t>(path.back())];
      if (end.token_count == 0) end.token_begin = static_cast<uint32_t>(node_tokens_.size());
      node_tokens_.push_back(id);
      ++end.token_count;
      prev = s;
    }
  }

  std::vector<Kind> kind_;
  std::vector<uint32_t> text_begin_;
  std::string text_;
  std::vector<int32_t> byte_piece_;  // sorted
  bool drops_leading_space_ = false, drops_every_leading_space_ = false;
  std::vector<Node> nodes_;
  std::vector<int32_t> node_tokens_;
};

// Which tokens keep the generated text a prefix of a sentence of a grammar,
// with a state that advances token by token. One per sequence (like the
// Sampler): copy it with a session fork; rollback() rewinds it with the
// session. Tokens that print text are allowed when all their bytes extend
// the text (a byte piece may leave a UTF-8 character half written: the
// next tokens must finish it); <eos>/<end_of_turn> only where the grammar
// can end; other control tokens never.
//
// With a budget (set_budget), a token is allowed only if the text can still
// be completed in the tokens left (counting one token per byte of the
// shortest completion, which byte pieces can always spell): then the text
// is complete when the budget runs out.
class GrammarConstraint {
 public:
  static Result<GrammarConstraint> create(const Grammar& grammar, std::shared_ptr<const TokenTrie> vocabulary) {
    if (!vocabulary) return detail::err("grammar constraint: no token vocabulary");
    return detail::guard("creating a grammar constraint", [&]() -> Result<GrammarConstraint> {
      return GrammarConstraint(grammar.compiled(), std::move(vocabulary));
    });
  }

  // At most `tokens` more tokens from now (-1: no limit). A budget shorter
  // than min_tokens_to_complete() would leave no token allowed: it is
  // refused with an error naming both, and the constraint stays as it was.
  Status set_budget(int tokens) {
    // Byte pieces spell the shortest completion byte by byte, so a budget
    // that long always fits and needs no walk over the vocabulary.
    if (tokens >= 0 && static_cast<uint32_t>(tokens) < min_bytes_to_complete()) {
      const uint32_t fewest = min_tokens_to_complete();
      if (std::string e = error(); !e.empty()) return Error{e};
      // kNoCompletion: no token continues the text, whatever the budget
      // (sampling reports that).
      if (fewest != detail::kNoCompletion && static_cast<uint32_t>(tokens) < fewest) {
        const auto count = [](uint32_t n) { return std::to_string(n) + (n == 1 ? " token" : " tokens"); };
        return detail::err("grammar: a budget of ", count(static_cast<uint32_t>(tokens)),
                           " is too small: the shortest completion takes ", count(fewest));
      }
    }
    budget_end_ = tokens < 0 ? kNoBudget : tokens_.size() + static_cast<size_t>(tokens);
    return {};
  }

  // Whether `token` may come next.
  bool allows(int32_t token) { return after(token) != detail::ByteAutomaton::kDead; }

  // Sets the logit of every token that may not come next to -inf. Logits
  // past the tokenizer's vocabulary (a model may have more rows) are
  // removed too.
  void apply(std::vector<float>& logits) {
    allowed_mask(logits.size());
    for (size_t i = 0; i < logits.size(); ++i)
      if (!mask_[i]) logits[i] = -INFINITY;
  }

  // Whether each of the first `n` ids may come next (1 = allowed); the
  // result is valid until the next call on this constraint.
  const std::vector<uint8_t>& allowed_mask(size_t n) {
    mask_.assign(n, 0);
    const auto limit = static_cast<int32_t>(std::min<size_t>(static_cast<size_t>(vocab_->vocab_size()), n));
    if (can_end())
      for (int32_t id = 0; id < limit; ++id)
        if (vocab_->kind(id) == TokenTrie::Kind::End) mask_[static_cast<size_t>(id)] = 1;
    if (within_budget(0))
      each_next([&](const int32_t* ids, uint32_t count, int32_t next) {
        if (!within_budget(automaton_.min_to_complete(next))) return;
        for (uint32_t i = 0; i < count; ++i)
          if (static_cast<size_t>(ids[i]) < n) mask_[static_cast<size_t>(ids[i])] = 1;
      });
    if (automaton_.exceeded()) std::fill(mask_.begin(), mask_.end(), 0);  // incomplete: none rather than some
    return mask_;
  }

  // Why nothing may come next although the text is not complete: the
  // grammar is too ambiguous to follow here (empty otherwise).
  std::string error() const {
    if (!automaton_.exceeded()) return {};
    return detail::err("grammar: too ambiguous to follow: matching the next token took more than ",
                       detail::ByteAutomaton::kMaxSteps, " parse-stack steps")
        .message;
  }

  // Advances past `token`; refused tokens change nothing.
  Status accept(int32_t token) {
    const int32_t next = after(token);
    if (next == detail::ByteAutomaton::kDead) {
      if (automaton_.exceeded()) return Error{error()};
      return detail::err("grammar: token ", token, " (\"", std::string(vocab_->text(token)), "\") cannot come next",
                         finished() ? ": the text is complete" : "");
    }
    at_start_.push_back(at_start_after(token));
    states_.push_back(next);
    tokens_.push_back(token);
    automaton_.limit_steps();  // a new budget for the next token
    return {};
  }

  // The text so far is a whole sentence: an end token may come next.
  bool can_end() const { return automaton_.accepting(states_.back()); }
  // The text is complete and nothing can follow it: generation is over.
  bool finished() const { return can_end() && !automaton_.can_continue(states_.back()); }
  // Fewest bytes of text that complete it from here.
  uint32_t min_bytes_to_complete() const { return automaton_.min_to_complete(states_.back()); }
  // Fewest tokens that complete the text from here, as a budget counts
  // them: the next token, then one per byte of the shortest completion
  // after it (detail::kNoCompletion if no token can continue the text).
  // Walks the vocabulary once, like a full mask (then error() may say the
  // walk was cut short).
  uint32_t min_tokens_to_complete() {
    if (can_end()) return 0;
    uint32_t fewest = detail::kNoCompletion;
    each_next([&](const int32_t*, uint32_t, int32_t next) {
      fewest = std::min(fewest, detail::saturating_add(automaton_.min_to_complete(next), 1));
    });
    return fewest;
  }

  // Tokens accepted so far, and rewinding to the first n of them.
  const std::vector<int32_t>& tokens() const { return tokens_; }
  size_t size() const { return tokens_.size(); }
  Status rollback(size_t n) {
    if (n > tokens_.size())
      return detail::err("grammar: rollback to ", n, " tokens, but only ", tokens_.size(), " were accepted");
    tokens_.resize(n);
    states_.resize(n + 1);
    at_start_.resize(n + 1);
    automaton_.limit_steps();
    return {};
  }

  // Follows a token history (prompt included) whose tokens from the first
  // call's history size on are the constrained text: rewinds to the
  // longest common prefix with what was accepted and accepts the rest, so
  // the constraint follows a session's rollback and continued generation.
  // A history shorter than that start begins the text anew at its end.
  Status sync(const std::vector<int32_t>& history) {
    if (start_ == kNoBudget || history.size() < start_) {
      start_ = history.size();
      return rollback(0);
    }
    const size_t have = history.size() - start_;
    size_t common = 0;
    while (common < tokens_.size() && common < have && tokens_[common] == history[start_ + common]) ++common;
    if (common < tokens_.size()) (void)rollback(common);
    for (size_t i = common; i < have; ++i)
      if (Status s = accept(history[start_ + i]); !s) return s;
    return {};
  }

 private:
  static constexpr size_t kNoBudget = std::numeric_limits<size_t>::max();

  GrammarConstraint(std::shared_ptr<const detail::CompiledGrammar> g, std::shared_ptr<const TokenTrie> vocab)
      : automaton_(std::move(g)), vocab_(std::move(vocab)) {
    states_.push_back(automaton_.start());
    at_start_.push_back(1);
  }

  // Whether a text that needs `min_bytes` more bytes fits in the tokens
  // the budget leaves after the next one.
  bool within_budget(uint32_t min_bytes) const {
    if (budget_end_ == kNoBudget) return true;
    return budget_end_ > tokens_.size() && min_bytes <= budget_end_ - tokens_.size() - 1;
  }

  // What the decoder prints for `token` here (see StreamDecoder::push).
  std::string_view printed(int32_t token) const {
    std::string_view t = vocab_->text(token);
    if (at_start_.back() && vocab_->drops_leading_space() && !vocab_->is_byte_piece(token) && !t.empty() && t[0] == ' ')
      t.remove_prefix(1);
    return t;
  }
  uint8_t at_start_after(int32_t token) const {
    if (!at_start_.back() || vocab_->kind(token) != TokenTrie::Kind::Text || vocab_->is_byte_piece(token)) return 0;
    const bool dropped = vocab_->drops_leading_space() && vocab_->text(token)[0] == ' ';
    return printed(token).empty() && (!dropped || vocab_->drops_every_leading_space()) ? 1 : 0;
  }

  // The state after `token`, or kDead if it may not come next.
  int32_t after(int32_t token) {
    const int32_t s = grammar_after(token);
    if (s == detail::ByteAutomaton::kDead || vocab_->kind(token) == TokenTrie::Kind::End) return s;
    return within_budget(automaton_.min_to_complete(s)) ? s : detail::ByteAutomaton::kDead;
  }

  // The state after `token` as the grammar alone allows it (no budget), or kDead.
  int32_t grammar_after(int32_t token) {
    constexpr int32_t kDead = detail::ByteAutomaton::kDead;
    if (automaton_.exceeded()) return kDead;  // see error()
    switch (vocab_->kind(token)) {
      case TokenTrie::Kind::Never: return kDead;
      case TokenTrie::Kind::End: return can_end() ? automaton_.end() : kDead;
      case TokenTrie::Kind::Text: break;
    }
    const std::string_view text = printed(token);
    int32_t s = automaton_.run(states_.back(), text);
    if (s == kDead || (text.empty() && !automaton_.can_continue(s))) return kDead;
    return s;
  }

  // Calls visit(ids, count, state) for the text tokens the grammar allows
  // next (the budget aside), grouped by the state they lead to.
  template <class Visit>
  void each_next(Visit&& visit) {
    if (at_start_.back() && vocab_->drops_leading_space()) {
      // The decoder drops this token's leading space: the trie's texts do
      // not apply, so each token is checked by itself (first token only).
      for (int32_t id = 0; id < vocab_->vocab_size(); ++id)
        if (vocab_->kind(id) == TokenTrie::Kind::Text)
          if (const int32_t s = grammar_after(id); s != detail::ByteAutomaton::kDead) visit(&id, 1, s);
      return;
    }
    walk(0, states_.back(), visit);
  }

  // Depth-first over the trie from the root, whose text leads to automaton
  // state `s`: visits the tokens that end at each surviving node. An
  // explicit stack, since a tokenizer's pieces may be long.
  template <class Visit>
  void walk(int32_t root, int32_t s, Visit& visit) {
    const auto& nodes = vocab_->nodes();
    stack_.assign(1, Level{nodes[static_cast<size_t>(root)].first_child, s});
    while (!stack_.empty()) {
      Level& top = stack_.back();
      if (top.child < 0) {
        stack_.pop_back();
        continue;
      }
      const TokenTrie::Node& child = nodes[static_cast<size_t>(top.child)];
      top.child = child.next_sibling;
      const int32_t next = automaton_.next(top.state, child.byte);
      if (next == detail::ByteAutomaton::kDead) continue;
      if (child.token_count > 0) visit(vocab_->tokens().data() + child.token_begin, child.token_count, next);
      if (child.first_child >= 0 && automaton_.can_continue(next)) stack_.push_back(Level{child.first_child, next});
    }
  }

  detail::ByteAutomaton automaton_;
  std::shared_ptr<const TokenTrie> vocab_;
  std::vector<int32_t> states_;    // states_[k]: the automaton's state after the first k accepted tokens
  std::vector<uint8_t> at_start_;  // per state: the decoder would still drop a leading space
  std::vector<int32_t> tokens_;
  size_t budget_end_ = kNoBudget;
  size_t start_ = kNoBudget;  // where the constrained text starts in sync()'s history
  std::vector<uint8_t> mask_;
  struct Level {
    int32_t child;  // the next child to visit
    int32_t state;  // the automaton's state at their parent
  };
  std::vector<Level> stack_;
};

namespace processors {
// Removes the tokens `constraint` does not allow next, following the
// history (GrammarConstraint::sync). The processor owns its copy of the
// constraint, so copying the chain copies the grammar state. It masks the
// whole vocabulary every step; Sampler::constrain is the fast path.
inline LogitProcessor grammar(GrammarConstraint constraint) {
  return [c = std::move(constraint)](std::vector<float>& logits, const TokenHistory& history) mutable {
    if (!c.sync(history)) return std::fill(logits.begin(), logits.end(), -INFINITY);
    c.apply(logits);
  };
}
}  // namespace processors

GEMMA2_END_NAMESPACE
