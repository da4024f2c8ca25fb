// Choosing the next token from logits. A sampler is any callable that
// follows the protocol in token.hpp; Sampler is the ready-made one: a chain
// of the usual logit processors followed by greedy or random choice,
// optionally under a grammar (constraint.hpp, which defines
// Sampler::constrain).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gemma2/status.hpp"
#include "gemma2/token.hpp"

GEMMA2_BEGIN_NAMESPACE

class GrammarConstraint;  // constraint.hpp: what Sampler::constraint() returns by default

// Modifies logits in place given the history.
using LogitProcessor = std::function<void(std::vector<float>& logits, const TokenHistory& history)>;

namespace detail {
// A Sampler's constraint, behind virtual calls: this header needs no grammar
// header, and a program that never constrains a sampler neither parses nor
// compiles the grammar matcher. Any type with the methods of
// GrammarConstraint that ConstraintModel forwards to can constrain a Sampler.
class SamplerConstraint {
 public:
  virtual ~SamplerConstraint() = default;
  virtual std::unique_ptr<SamplerConstraint> clone() const = 0;
  // The held constraint when it is of the type `type_tag<C>()` names.
  virtual void* target(const void* type) = 0;
  virtual Status sync(const TokenHistory& history) = 0;
  virtual bool allows(int32_t token) = 0;
  virtual void apply(std::vector<float>& logits) = 0;
  virtual const std::vector<uint8_t>& allowed_mask(size_t n) = 0;
  virtual Status accept(int32_t token) = 0;
  virtual std::string error() const = 0;
  virtual bool finished() const = 0;
};

// One address per type, without RTTI (builds may turn it off).
template <class C>
const void* type_tag() {
  static const char tag = 0;
  return &tag;
}

template <class C>
class ConstraintModel final : public SamplerConstraint {
 public:
  explicit ConstraintModel(C c) : c_(std::move(c)) {}
  std::unique_ptr<SamplerConstraint> clone() const override { return std::make_unique<ConstraintModel>(*this); }
  void* target(const void* type) override { return type == type_tag<C>() ? &c_ : nullptr; }
  Status sync(const TokenHistory& history) override { return c_.sync(history); }
  bool allows(int32_t token) override { return c_.allows(token); }
  void apply(std::vector<float>& logits) override { c_.apply(logits); }
  const std::vector<uint8_t>& allowed_mask(size_t n) override { return c_.allowed_mask(n); }
  Status accept(int32_t token) override { return c_.accept(token); }
  std::string error() const override { return c_.error(); }
  bool finished() const override { return c_.finished(); }

 private:
  C c_;
};

// Owns a SamplerConstraint and copies it with the Sampler (a copy follows
// its own sequence).
class OwnedConstraint {
 public:
  OwnedConstraint() = default;
  explicit OwnedConstraint(std::unique_ptr<SamplerConstraint> c) : c_(std::move(c)) {}
  OwnedConstraint(const OwnedConstraint& o) : c_(o.c_ ? o.c_->clone() : nullptr) {}
  OwnedConstraint(OwnedConstraint&&) noexcept = default;
  OwnedConstraint& operator=(const OwnedConstraint& o) { return *this = OwnedConstraint(o); }
  OwnedConstraint& operator=(OwnedConstraint&&) noexcept = default;

  explicit operator bool() const { return c_ != nullptr; }
  SamplerConstraint* operator->() const { return c_.get(); }
  void reset() { c_.reset(); }

 private:
  std::unique_ptr<SamplerConstraint> c_;
};
}  // namespace detail

namespace detail {
// Softmax probabilities of the logits (temperature already applied).
inline std::vector<double> probabilities(const std::vector<float>& logits) {
  const float m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp(static_cast<double>(logits[i]) - m));
  for (double& x : p) x /= sum;
  return p;
}
}  // namespace detail

// The standard logit processors. Each leaves removed tokens at -inf.
namespace processors {

// Adds a fixed bias to chosen tokens (-inf bans a token).
inline LogitProcessor logit_bias(std::unordered_map<int32_t, float> bias) {
  return [bias = std::move(bias)](std::vector<float>& logits, const TokenHistory&) {
    for (const auto& [id, b] : bias)
      if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[static_cast<size_t>(id)] += b;
  };
}

// Penalties over the last `last_n` tokens of the history (0: all of it).
// repetition: CTRL-style, positive logits divided and negative multiplied by
// `repetition` for every token seen; frequency: minus `frequency` per
// occurrence; presence: minus `presence` once per seen token.
inline LogitProcessor penalties(float repetition, float frequency, float presence, int last_n = 0) {
  return [=](std::vector<float>& logits, const TokenHistory& history) {
    std::unordered_map<int32_t, int> counts;
    const size_t from = last_n > 0 && history.size() > static_cast<size_t>(last_n) ? history.size() - last_n : 0;
    for (size_t i = from; i < history.size(); ++i) ++counts[history[i]];
    for (const auto& [id, n] : counts) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
      float& l = logits[static_cast<size_t>(id)];
      l = l > 0 ? l / repetition : l * repetition;
      l -= frequency * static_cast<float>(n) + presence;
    }
  };
}

inline LogitProcessor temperature(float t) {
  return [t](std::vector<float>& logits, const TokenHistory&) {
    for (float& l : logits) l /= t;
  };
}

// Keeps the k largest logits.
inline LogitProcessor top_k(int k) {
  return [k](std::vector<float>& logits, const TokenHistory&) {
    if (k <= 0 || static_cast<size_t>(k) >= logits.size()) return;
    std::vector<float> sorted(logits);
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[static_cast<size_t>(k - 1)];
    int kept = 0;  // ties at the threshold: keep exactly k
    for (float& l : logits) {
      if (l > kth) ++kept;
    }
    for (float& l : logits) {
      if (l < kth || (l == kth && kept++ >= k)) l = -INFINITY;
    }
  };
}

// Keeps the smallest set of most likely tokens whose probability reaches p.
inline LogitProcessor top_p(float p) {
  return [p](std::vector<float>& logits, const TokenHistory&) {
    if (p >= 1.0f) return;
    const auto prob = detail::probabilities(logits);
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int32_t a, int32_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
    double cum = 0.0;
    size_t keep = 0;
    while (keep < order.size() && (keep == 0 || cum < p)) cum += prob[static_cast<size_t>(order[keep++])];
    for (size_t i = keep; i < order.size(); ++i) logits[static_cast<size_t>(order[i])] = -INFINITY;
  };
}

// Drops tokens less likely than min_p times the most likely one.
inline LogitProcessor min_p(float min_p) {
  return [min_p](std::vector<float>& logits, const TokenHistory&) {
    if (min_p <= 0.0f) return;
    const float m = *std::max_element(logits.begin(), logits.end());
    const float cut = m + std::log(min_p);  // p_i / p_max >= min_p  <=>  l_i >= l_max + log(min_p)
    for (float& l : logits)
      if (l < cut) l = -INFINITY;
  };
}

}  // namespace processors

// Settings of the ready-made Sampler; the defaults are plain sampling at
// temperature 1 with every processor off.
struct SamplingParams {
  bool greedy = false;       // argmax after the processors (ignores temperature and sampling)
  float temperature = 1.0f;  // 0 also means greedy
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  float repetition_penalty = 1.0f;
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  int penalty_last_n = 0;  // penalties look at this many recent tokens (0: all)
  std::unordered_map<int32_t, float> logit_bias;
  uint64_t seed = 0;
};

inline Status validate(const SamplingParams& p) {
  using detail::err;
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return err("temperature must be >= 0, got ", p.temperature);
  if (p.top_k < 0) return err("top-k must be >= 0, got ", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return err("top-p must be in (0, 1], got ", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) return err("min-p must be in [0, 1), got ", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return err("repetition penalty must be > 0, got ", p.repetition_penalty);
  if (!std::isfinite(p.frequency_penalty) || !std::isfinite(p.presence_penalty))
    return err("frequency and presence penalties must be finite");
  if (p.penalty_last_n < 0) return err("penalty window must be >= 0, got ", p.penalty_last_n);
  return {};
}

// A chain of logit processors followed by a choice: argmax when greedy,
// otherwise a draw from the softmax with a seeded generator. Stateful (the
// generator advances, a grammar state follows the text), so give each
// sequence its own Sampler and copy it when forking one.
class Sampler {
 public:
  // Greedy decoding.
  Sampler() : greedy_(true) {}

  // The usual chain, in Hugging Face's order: logit bias, penalties,
  // temperature, top-k, top-p, min-p, then the draw. Check params with
  // validate() first; invalid values are clamped to "off".
  explicit Sampler(const SamplingParams& p) : greedy_(p.greedy || !(p.temperature > 0.0f)), rng_(p.seed) {
    if (!p.logit_bias.empty()) add(processors::logit_bias(p.logit_bias));
    if (p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f)
      add(processors::penalties(p.repetition_penalty > 0 ? p.repetition_penalty : 1.0f, p.frequency_penalty,
                                p.presence_penalty, p.penalty_last_n));
    if (greedy_) return;  // the remaining steps cannot change the argmax
    if (p.temperature != 1.0f) add(processors::temperature(p.temperature));
    if (p.top_k > 0) add(processors::top_k(p.top_k));
    if (p.top_p < 1.0f) add(processors::top_p(p.top_p));
    if (p.min_p > 0.0f) add(processors::min_p(p.min_p));
  }

  // Appends a processor to the chain (before the final choice).
  Sampler& add(LogitProcessor processor) {
    chain_.push_back(std::move(processor));
    return *this;
  }

  // Chooses only tokens the grammar allows. The constraint follows the
  // history from the first call on (GrammarConstraint::sync) and accepts
  // each token this sampler returns, so finished() tells when the text is
  // complete. The choice is the chain's distribution p restricted to the
  // allowed tokens and renormalised (greedy: the best allowed token); when
  // the chain has cut every allowed token (top-k, top-p, min-p), the
  // grammar's mask is applied first and the chain run again on what is
  // left. Cost: the drawn token is checked first, which is exact (drawing
  // from p and redrawing from p restricted to the allowed set after a
  // refusal gives each allowed token p(t)/P(allowed)); the whole
  // vocabulary is masked only after a refusal, and only over the tokens p
  // can draw. `constraint` is a GrammarConstraint (constraint.hpp) or any
  // type with its methods (see detail::ConstraintModel).
  template <class C>
  Sampler& constrain(C constraint) {
    constraint_ = detail::OwnedConstraint(std::make_unique<detail::ConstraintModel<C>>(std::move(constraint)));
    return *this;
  }
  // Back to unconstrained choices.
  Sampler& unconstrain() {
    constraint_.reset();
    return *this;
  }
  // The constraint in use, if it is a C (null otherwise).
  template <class C = GrammarConstraint>
  C* constraint() {
    return constraint_ ? static_cast<C*>(constraint_->target(detail::type_tag<C>())) : nullptr;
  }
  template <class C = GrammarConstraint>
  const C* constraint() const {
    return constraint_ ? static_cast<const C*>(constraint_->target(detail::type_tag<C>())) : nullptr;
  }

  // The grammar's text is complete and nothing may follow it.
  bool finished() const { return constraint_ && constraint_->finished(); }
  // Why the last call returned -1 (no token could be chosen).
  const std::string& error() const { return error_; }

  int32_t operator()(std::vector<float>& logits, const TokenHistory& history) {
    error_.clear();
    if (!constraint_) {
      for (auto& proc : chain_) proc(logits, history);
      const int32_t id = greedy_ ? argmax(logits) : draw(detail::probabilities(logits));
      return id >= 0 ? id : fail("no token has a finite logit after the logit processors");
    }
    if (Status s = constraint_->sync(history); !s) return fail(s.message());
    if (!greedy_) raw_.assign(logits.begin(), logits.end());
    for (auto& proc : chain_) proc(logits, history);
    const int32_t id = greedy_ ? constrained_argmax(logits) : constrained_draw(logits, history);
    if (id >= 0)
      if (Status s = constraint_->accept(id); !s) return fail(s.message());
    return id;
  }

 private:
  // Refused draws with at most this many possible tokens check each one;
  // wider ones walk the grammar's token trie once.
  static constexpr size_t kCheckEach = 2048;

  int32_t fail(const std::string& message) {
    error_ = message;
    return -1;
  }

  // A draw from probabilities that sum to 1 (-1 if none is positive).
  int32_t draw(const std::vector<double>& prob) {
    if (!(prob.empty() || prob[0] == prob[0])) return -1;  // NaN: every logit was -inf
    double u = rng_.uniform();
    int32_t last = -1;
    for (size_t i = 0; i < prob.size(); ++i) {
      if (prob[i] <= 0) continue;
      if (u < prob[i]) return static_cast<int32_t>(i);
      u -= prob[i];
      last = static_cast<int32_t>(i);
    }
    return last;  // rounding left u past the end: the last possible token
  }

  int32_t constrained_argmax(std::vector<float>& logits) {
    int32_t id = argmax(logits);
    if (constraint_->allows(id)) return id;
    constraint_->apply(logits);
    id = argmax(logits);
    if (logits[static_cast<size_t>(id)] == -INFINITY) return no_token();
    return id;
  }

  int32_t constrained_draw(std::vector<float>& logits, const TokenHistory& history) {
    std::vector<double> prob = detail::probabilities(logits);
    const int32_t first = draw(prob);
    if (first >= 0 && constraint_->allows(first)) return first;
    size_t support = 0;
    for (double p : prob) support += p > 0;
    if (support <= kCheckEach) {
      for (size_t i = 0; i < prob.size(); ++i)
        if (prob[i] > 0 && !constraint_->allows(static_cast<int32_t>(i))) prob[i] = 0;
    } else {
      const std::vector<uint8_t>& allowed = constraint_->allowed_mask(prob.size());
      for (size_t i = 0; i < prob.size(); ++i)
        if (!allowed[i]) prob[i] = 0;
    }
    if (!constraint_->error().empty()) return no_token();  // the checks above were cut short
    double kept = 0;
    for (double p : prob) kept += p;
    if (!(kept > 0)) {  // the chain cut every allowed token: mask first, then the chain
      logits.assign(raw_.begin(), raw_.end());
      constraint_->apply(logits);
      if (logits[static_cast<size_t>(argmax(logits))] == -INFINITY) return no_token();
      for (auto& proc : chain_) proc(logits, history);
      prob = detail::probabilities(logits);
      const int32_t id = draw(prob);
      return id >= 0 && constraint_->allows(id) ? id : no_token();
    }
    for (double& p : prob) p /= kept;
    return draw(prob);
  }

  int32_t no_token() {
    if (std::string e = constraint_->error(); !e.empty()) return fail(e);
    return fail(constraint_->finished() ? "grammar: the text is complete; no token may follow it"
                                        : "grammar: no token of the vocabulary can continue the text");
  }

  bool greedy_;
  Rng rng_;
  std::vector<LogitProcessor> chain_;
  detail::OwnedConstraint constraint_;
  std::vector<float> raw_;
  std::string error_;
};

GEMMA2_END_NAMESPACE
