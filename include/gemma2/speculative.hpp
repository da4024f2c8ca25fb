// Speculative decoding (Leviathan et al. 2023, "Fast Inference from
// Transformers via Speculative Decoding"; Chen et al. 2023): a cheap drafter
// guesses the next k tokens, and the target model checks all of them in one
// forward pass, which reads its weights once for k + 1 positions. Decoding
// is bound by reading the weights, so each accepted guess is a token almost
// for free.
//
// Drafts here are deterministic (a lookup, or a draft model's best token):
// the draft distribution q is a point mass on the guess x. Leviathan's rule,
// accept x with probability min(1, p(x)/q(x)) = p(x) and otherwise draw from
// max(0, p - q) normalised (p without x), is then exactly "draw y from the
// target's sampler; accept the guess if y == x, else keep y". That is what
// speculative_step does, with the caller's sampler (any chain, a grammar
// included), so the output has the target's distribution — and greedy output
// is token for token that of plain greedy decoding.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/model.hpp"
#include "gemma2/token.hpp"
#include "gemma2/session.hpp"

GEMMA2_BEGIN_NAMESPACE

// Guesses the tokens that follow a sequence. Any guess is safe: a wrong one
// costs one row of the verification pass, never a different output.
class Drafter {
 public:
  virtual ~Drafter() = default;
  // At most `max` tokens to follow `history` (the whole sequence so far);
  // fewer, or none, when there is no good guess.
  virtual std::vector<int32_t> draft(const TokenHistory& history, int max) = 0;
  // The cost of drafting one token as a fraction of a target model step
  // (0 for a lookup); the adaptive draft length weighs it until it has
  // measured the drafter.
  virtual double cost_per_token() const { return 0.0; }
  // Called once the target has run the prompt: a drafter with a model of
  // its own runs the prompt here, so that its prefill counts as the
  // prompt's and not as the first guesses'.
  virtual void sync(const TokenHistory& /*history*/) {}
};

// Prompt lookup (Saxena 2023): finds the latest earlier place where the
// sequence's last n tokens occurred (n from `ngram` down to 1) and proposes
// what followed there. Free to run, and right most of the time when the
// output copies spans of its input (rewriting a document, editing code).
class PromptLookupDrafter : public Drafter {
 public:
  explicit PromptLookupDrafter(int ngram = 3) : ngram_(std::max(1, ngram)) {}

  std::vector<int32_t> draft(const TokenHistory& h, int max) override {
    const size_t size = h.size();
    for (size_t n = std::min<size_t>(static_cast<size_t>(ngram_), size > 0 ? size - 1 : 0); n >= 1; --n) {
      const auto tail = h.end() - static_cast<std::ptrdiff_t>(n);
      for (size_t start = size - n; start-- > 0;) {
        if (!std::equal(tail, h.end(), h.begin() + static_cast<std::ptrdiff_t>(start))) continue;
        const size_t from = start + n, count = std::min(static_cast<size_t>(std::max(max, 0)), size - from);
        return std::vector<int32_t>(h.begin() + static_cast<std::ptrdiff_t>(from),
                                    h.begin() + static_cast<std::ptrdiff_t>(from + count));
      }
    }
    return {};
  }

 private:
  int ngram_;
};

// Drafts with a smaller model of the same tokenizer (Gemma 2 2B for 9B and
// 27B): its own session follows the target's sequence (rolled back to the
// common prefix, then fed what is new) and proposes its greedy tokens,
// stopping early where its best token has probability below min_confidence.
template <class DraftModel, class Cache = KVCache>
class ModelDrafter : public Drafter {
 public:
  struct Options {
    int capacity = 0;                // positions of the draft's cache (0: its model's context)
    float min_confidence = 0.5f;     // stop drafting below this probability of the best token
    double cost_per_token = 0.1;     // a draft step over a target step (e.g. 2B for 27B: ~0.1)
    const Executor* pool = nullptr;  // threads for the draft model
  };

  static Result<ModelDrafter> create(const DraftModel& model, const Options& options) {
    auto session = Session<DraftModel, Cache>::create(model, options.capacity);
    if (!session) return detail::err("draft model: ", session.message());
    return ModelDrafter(std::move(*session), options);
  }
  static Result<ModelDrafter> create(const DraftModel& model) { return create(model, Options{}); }

  std::vector<int32_t> draft(const TokenHistory& h, int max) override {
    if (max <= 0 || !catch_up(h)) return {};
    // Room for the guesses; a full cache drafts nothing.
    if (h.size() + static_cast<size_t>(max) > static_cast<size_t>(session_.cache().capacity())) return {};
    std::vector<int32_t> out;
    for (;;) {
      const int32_t best = argmax(row_);
      const double p = 1.0 / std::accumulate(row_.begin(), row_.end(), 0.0, [&](double s, float l) {
                         return s + std::exp(static_cast<double>(l) - row_[static_cast<size_t>(best)]);
                       });
      if (!(p >= options_.min_confidence) && !out.empty()) break;
      out.push_back(best);
      if (static_cast<int>(out.size()) == max) break;
      if (!run({best})) break;
    }
    return out;
  }

  void sync(const TokenHistory& h) override { (void)catch_up(h); }

  double cost_per_token() const override { return options_.cost_per_token; }
  const Session<DraftModel, Cache>& session() const { return session_; }

 private:
  ModelDrafter(Session<DraftModel, Cache> s, const Options& o) : session_(std::move(s)), options_(o) {}

  // The session holds h and row_ its logits after h's last token: kept when
  // it already does, else rolled back to the common prefix and fed the rest
  // (at least one token, for the logits).
  bool catch_up(const TokenHistory& h) {
    if (h.empty()) return false;
    const TokenHistory& mine = session_.tokens();
    size_t common = 0;
    while (common < mine.size() && common < h.size() && mine[common] == h[common]) ++common;
    if (has_row_ && common == h.size() && common == mine.size()) return true;
    const size_t keep = std::min(common, h.size() - 1);
    if (keep < mine.size() && !session_.rollback(keep, ForwardOptions(options_.pool)).ok()) return reset();
    if (h.size() > static_cast<size_t>(session_.cache().capacity())) return reset();
    return run(std::vector<int32_t>(h.begin() + static_cast<std::ptrdiff_t>(keep), h.end()));
  }

  bool run(const std::vector<int32_t>& ids) {
    auto logits = session_.feed(ids, ForwardOptions(options_.pool));
    if (!logits || logits->cols() == 0) return reset();
    row_.assign(logits->data(), logits->data() + logits->cols());
    return has_row_ = true;
  }

  bool reset() {                 // a failed pass: start over from the next history
    (void)session_.rollback(0);  // to nothing: cannot fail
    has_row_ = false;
    return false;
  }

  Session<DraftModel, Cache> session_;
  Options options_;
  std::vector<float> row_;  // the draft model's logits after the session's last token
  bool has_row_ = false;
};

// The most guesses one pass checks. A pass of up to kMaxDraft + 1 = 7 rows
// computes every row exactly as a one-token step does (the decode kernels
// and attention path, chosen below kGemmMinRows rows), so the target's
// logits, and with them its choices, are those of plain decoding to the
// last bit.
constexpr int kMaxDraft = detail::kGemmMinRows - 2;

// What one speculative step did.
struct SpeculativeStep {
  std::vector<int32_t> tokens;  // sampled, in order: the accepted guesses, then the target's own token
  int drafted = 0;              // guesses checked
  int accepted = 0;             // guesses the target's sampler drew too
  double pass_seconds = 0.0;    // the model's pass
};

namespace detail {
// A sampler's choice, checked: an id in the vocabulary, or the sampler's own
// error (see sampling.hpp: samplers may have error()).
template <class SamplerFn>
Result<int32_t> sample_checked(SamplerFn& sampler, std::vector<float>& row, const TokenHistory& history, int vocab_size,
                               const char* who) {
  const int32_t id = sampler(row, history);
  if (id >= 0 && id < vocab_size) return id;
  using S = std::remove_cv_t<std::remove_reference_t<SamplerFn>>;
  if constexpr (has_error<S>::value)
    if (!std::string(sampler.error()).empty()) return err(who, ": ", sampler.error());
  return err(who, ": the sampler returned token ", id, ", outside the vocabulary");
}

// speculative_step with its errors named after `who`: the caller the user
// sees (generate() runs its decoding through it).
template <class Model, class Cache, class SamplerFn, class OnToken>
Result<SpeculativeStep> speculative_step_for(const char* who, const Model& model, Cache& kv, TokenHistory& history,
                                             SamplerFn& sampler, const std::vector<int32_t>& draft,
                                             const ForwardOptions& options, OnToken&& on_token) {
  const int vocab = model.config().vocab_size;
  if (history.empty() || static_cast<size_t>(kv.size()) + 1 != history.size())
    return err(who, ": the cache must hold every token of the history but the last (history ", history.size(),
               ", cache ", kv.size(), ")");
  for (int32_t t : draft)
    if (t < 0 || t >= vocab) return err(who, ": the drafter proposed token id ", t, ", outside the vocabulary");
  const size_t guesses = std::min(draft.size(), static_cast<size_t>(kMaxDraft));
  std::vector<int32_t> ids;
  ids.reserve(guesses + 1);
  ids.push_back(history.back());
  ids.insert(ids.end(), draft.begin(), draft.begin() + static_cast<std::ptrdiff_t>(guesses));
  ForwardOptions fwd = options;
  fwd.all_logits = guesses > 0;
  fwd.on_logits = nullptr;
  SpeculativeStep step;
  const auto t0 = std::chrono::steady_clock::now();
  auto rows = model.forward(ids, kv, fwd);
  step.pass_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!rows) return Error{rows.message()};

  step.drafted = static_cast<int>(guesses);
  std::vector<float> row;
  for (Eigen::Index i = 0; i < rows->rows(); ++i) {
    row.assign(rows->row(i).data(), rows->row(i).data() + rows->cols());
    auto id = sample_checked(sampler, row, history, vocab, who);
    if (!id) {
      (void)truncate_cache(model, kv, history, static_cast<int>(history.size()) - 1, options);
      return Error{id.message()};
    }
    history.push_back(*id);
    step.tokens.push_back(*id);
    const bool hit = static_cast<size_t>(i) < guesses && *id == draft[static_cast<size_t>(i)];
    step.accepted += hit;
    if (!on_token(*id) || !hit) break;
  }
  if (Status s = truncate_cache(model, kv, history, static_cast<int>(history.size()) - 1, options); !s)
    return Error{s.message()};
  return step;
}
}  // namespace detail

// One step of speculative decoding. The history's last token is pending
// (the cache holds every token before it). Runs it and `draft` through the
// target in one pass, then samples row by row: a sampled token that equals
// the guess there is accepted and the next row sampled; the first that
// differs (or the token after the last guess) ends the step. `on_token(id)`
// is called for each sampled token after it is appended to `history`;
// returning false ends the step there (a stop token, say). Afterwards the
// cache again holds every token but the last, whatever was accepted. With an
// empty draft this is one plain decoding step; guesses past kMaxDraft are
// not checked.
template <class Model, class Cache, class SamplerFn, class OnToken>
Result<SpeculativeStep> speculative_step(const Model& model, Cache& kv, TokenHistory& history, SamplerFn& sampler,
                                         const std::vector<int32_t>& draft, const ForwardOptions& options,
                                         OnToken&& on_token) {
  return detail::speculative_step_for("speculative step", model, kv, history, sampler, draft, options,
                                      std::forward<OnToken>(on_token));
}

// Chooses how many tokens to draft, from what recent steps measured: the
// chance a guess is accepted given that the ones before it were (a, from a
// decaying count of accepted and rejected guesses), the time of a pass of
// r rows, and the time to draft a token. It takes the k that maximises the
// expected tokens per second, (1 - a^(k+1)) / (1 - a) over
// time(k + 1 rows) + k·(draft time). Times not measured yet are estimated
// from a one-row pass: row_cost of it per extra row (what a bandwidth-bound
// model costs; a small model in cache costs more, and is measured), the
// drafter's cost_per_token for a guess. Every 16th step it tries one guess
// more than its best, so the estimates follow the text; when it drafts
// nothing, one guess, but only while such probes have taken at most 3% of
// the time (a draft model that must first catch up with the text is probed
// less often than a lookup).
class DraftLength {
 public:
  explicit DraftLength(int max, double row_cost = 0.1) : max_(std::clamp(max, 0, kMaxDraft)), row_cost_(row_cost) {}

  int next(double draft_cost_hint) {
    ++steps_;
    if (steps_ == 2 && time_[1] == 0) return 0;  // a plain step to measure: the unit of every cost
    const double a = std::min(0.995, (accepted_ + 0.5) / (accepted_ + rejected_ + 1.0));
    const double draft = draft_time_ >= 0 ? draft_time_ : draft_cost_hint * one_row();
    int best = 0;
    double best_rate = 1.0 / pass_time(1);
    for (int k = 1; k <= max_; ++k) {
      const double rate = (1.0 - std::pow(a, k + 1)) / (1.0 - a) / (pass_time(k + 1) + k * draft);
      if (rate > best_rate) best = k, best_rate = rate;
    }
    probing_ = best == 0 && steps_ % 16 == 0 && max_ > 0 && probe_seconds_ <= kProbeShare * total_seconds_;
    if (best > 0 && steps_ % 16 == 0) return std::min(best + 1, max_);
    return probing_ ? 1 : best;
  }

  // A step that asked for `asked` guesses and checked `drafted`, of which
  // `accepted` were; its pass took pass_seconds, the drafter draft_seconds.
  void observe(int asked, int drafted, int accepted, double pass_seconds, double draft_seconds) {
    total_seconds_ += pass_seconds + draft_seconds;
    if (probing_) probe_seconds_ += pass_seconds + draft_seconds;
    double& t = time_[static_cast<size_t>(std::min(drafted, kMaxDraft) + 1)];
    t = t > 0 ? kDecay * t + (1 - kDecay) * pass_seconds : pass_seconds;
    if (asked > 0) {
      const double per = draft_seconds / asked;
      draft_time_ = draft_time_ >= 0 ? kDecay * draft_time_ + (1 - kDecay) * per : per;
    }
    if (drafted == 0) return;
    accepted_ = accepted_ * kDecay + accepted;
    rejected_ = rejected_ * kDecay + (accepted < drafted ? 1 : 0);
  }

 private:
  static constexpr double kDecay = 0.95;
  static constexpr double kProbeShare = 0.03;

  // A one-row pass: measured (the second step is one), or before that
  // estimated from a wider pass (1 before any).
  double one_row() const {
    for (int r = 1; r <= kMaxDraft + 1; ++r)
      if (time_[static_cast<size_t>(r)] > 0) return time_[static_cast<size_t>(r)] / (1.0 + row_cost_ * (r - 1));
    return 1.0;
  }
  double pass_time(int rows) const {
    const double t = time_[static_cast<size_t>(rows)];
    return t > 0 ? t : one_row() * (1.0 + row_cost_ * (rows - 1));
  }

  int max_;
  double row_cost_;
  double accepted_ = 0.0, rejected_ = 0.0;
  std::array<double, kMaxDraft + 2> time_{};  // seconds of a pass by its rows (0: not measured)
  double draft_time_ = -1.0;                  // seconds per guess asked (< 0: not measured)
  long steps_ = 0;
  bool probing_ = false;
  double total_seconds_ = 0.0, probe_seconds_ = 0.0;
};

GEMMA2_END_NAMESPACE
