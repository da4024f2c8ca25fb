// The common generation loop, built only on the public pieces (model,
// cache, tokenizer, any sampler): prefill, then sample / stream / step until
// a stop condition. Callers with other needs write their own loop; see
// examples/custom_decoding.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gemma2/kv_cache.hpp"
#include "gemma2/model.hpp"
#include "gemma2/sampling.hpp"
#include "gemma2/session.hpp"
#include "gemma2/speculative.hpp"
#include "gemma2/tokenizer.hpp"

GEMMA2_BEGIN_NAMESPACE

// Why generate() stopped.
enum class StopReason {
  MaxTokens,    // max_new_tokens were generated
  StopToken,    // a token of stop_tokens was sampled
  StopString,   // the text reached one of stop_strings
  Callback,     // the text callback returned false
  Cancelled,    // the cancel flag was set
  ContextFull,  // the cache has no room for another position
  Complete,     // the sampler has nothing more to generate (its grammar's text is complete)
};

inline const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens: return "max tokens";
    case StopReason::StopToken: return "stop token";
    case StopReason::StopString: return "stop string";
    case StopReason::Callback: return "callback";
    case StopReason::Cancelled: return "cancelled";
    case StopReason::ContextFull: return "context full";
    case StopReason::Complete: return "complete";
  }
  return "?";
}

// Limits and stop conditions of generate().
struct GenerateOptions {
  int max_new_tokens = 256;
  std::vector<int32_t> stop_tokens;       // e.g. {tokenizer.eos_id(), tokenizer.end_of_turn_id()}
  std::vector<std::string> stop_strings;  // generation ends where the text first contains one
  const std::atomic<bool>* cancel = nullptr;  // checked between decode steps and prefill chunks
  const Executor* pool = nullptr;
  int prefill_chunk = 512;
  // Speculative decoding (speculative.hpp): the drafter's guesses are
  // checked up to draft_max at a time in one pass of the model. The tokens
  // are those of plain decoding (greedy: the same ids; sampling: the same
  // distribution); only the speed changes. At most kMaxDraft (6) guesses
  // per pass.
  Drafter* drafter = nullptr;
  int draft_max = kMaxDraft;
  bool adaptive_draft = true;  // fewer guesses while few are accepted (DraftLength)
};

// What generate() produced.
struct GenerateResult {
  std::vector<int32_t> tokens;  // sampled ids, including a final stop token
  std::string text;             // the streamed text (stop tokens and stop strings excluded)
  StopReason stop = StopReason::MaxTokens;
  int prefill_tokens = 0;  // positions run before the first sample
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  // Passes of the model that produced tokens (the prefill's included):
  // tokens.size() / target_passes tokens per pass. With a drafter: guesses
  // checked, and those accepted.
  int target_passes = 0, drafted = 0, accepted = 0;
};

// The stop tokens of a Gemma 2 chat: <eos> and <end_of_turn>.
inline std::vector<int32_t> default_stop_tokens(const Tokenizer& tok) {
  std::vector<int32_t> s = {tok.eos_id()};
  if (tok.end_of_turn_id() >= 0) s.push_back(tok.end_of_turn_id());
  return s;
}

namespace detail {
// Holds back the end of the streamed text while it could still be the start
// of a stop string, so a stop string is never partly printed.
class StopStringFilter {
 public:
  explicit StopStringFilter(const std::vector<std::string>& stops) : stops_(stops) {}

  // Adds text; returns what is safe to emit. Sets hit() when a stop string
  // appears (the text before it is returned, the rest dropped).
  std::string add(const std::string& text) {
    held_ += text;
    size_t cut = std::string::npos;
    for (const auto& s : stops_)
      if (!s.empty()) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      hit_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of held_ that begins some stop string
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string flush() { return std::exchange(held_, {}); }
  bool hit() const { return hit_; }

 private:
  const std::vector<std::string>& stops_;
  std::string held_;
  bool hit_ = false;
};
}  // namespace detail

// Runs `input` after the tokens already in `history`, then generates.
//
// `history` is the whole sequence: it is appended `input` and every sampled
// token. The cache may lag behind it: history[kv.size():] (for example the
// last token of a previous call, whose logits were never needed) is run
// first, so consecutive calls continue one sequence. `sampler` is any
// callable int32_t(std::vector<float>& logits, const TokenHistory&).
// `tok` may be null (no text). `on_text` receives each piece of text as it
// becomes final; returning false stops generation.
template <class Model, class Cache, class SamplerFn>
Result<GenerateResult> generate(const Model& model, Cache& kv, TokenHistory& history,
                                const std::vector<int32_t>& input, SamplerFn&& sampler,
                                const GenerateOptions& options = {}, const Tokenizer* tok = nullptr,
                                const std::function<bool(std::string_view)>& on_text = {}) {
  using Clock = std::chrono::steady_clock;
  using detail::err;
  if (history.size() < static_cast<size_t>(kv.size()))
    return err("generate: history has ", history.size(), " tokens but the cache holds ", kv.size());
  if (options.max_new_tokens < 0) return err("generate: max_new_tokens must be >= 0");
  const size_t history_before = history.size();
  history.insert(history.end(), input.begin(), input.end());
  std::vector<int32_t> pending(history.begin() + kv.size(), history.end());
  if (pending.empty()) return err("generate: nothing to run (empty input and no pending tokens)");

  GenerateResult r;
  auto cancelled = [&] { return options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed); };
  ForwardOptions fwd;
  fwd.pool = options.pool;
  fwd.chunk = options.prefill_chunk;
  fwd.cancel = options.cancel;
  const auto t0 = Clock::now();
  auto logits = model.forward(pending, kv, fwd);
  r.prefill_tokens = static_cast<int>(pending.size());
  r.prefill_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!logits) {
    if (cancelled()) return r.stop = StopReason::Cancelled, r;
    history.resize(history_before);  // invalid input: nothing ran
    return Error{logits.message()};
  }
  if (options.drafter != nullptr) {  // the drafter's own prefill is the prompt's too
    options.drafter->sync(history);
    r.prefill_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }

  std::optional<StreamDecoder> decoder;
  if (tok != nullptr) decoder.emplace(*tok);
  detail::StopStringFilter filter(options.stop_strings);
  bool stopped_by_callback = false;
  auto emit = [&](const std::string& text) {
    if (text.empty() || stopped_by_callback) return;
    r.text += text;
    if (on_text && !on_text(text)) stopped_by_callback = true;
  };

  // Each sampled token: appended to the result; false when it ends generation.
  bool done = options.max_new_tokens == 0;
  auto take = [&](int32_t id) {
    r.tokens.push_back(id);
    const bool stop_token =
        std::find(options.stop_tokens.begin(), options.stop_tokens.end(), id) != options.stop_tokens.end();
    if (!stop_token && decoder) emit(filter.add(decoder->push(id)));
    if (stop_token) r.stop = StopReason::StopToken;
    else if (filter.hit()) r.stop = StopReason::StopString;
    else if (stopped_by_callback) r.stop = StopReason::Callback;
    else if (detail::sampler_finished(sampler)) r.stop = StopReason::Complete;
    else if (static_cast<int>(r.tokens.size()) < options.max_new_tokens) return true;
    done = true;
    return false;
  };

  const auto t1 = Clock::now();
  const int vocab = model.config().vocab_size;
  if (!done) {
    std::vector<float> row(logits->data(), logits->data() + logits->cols());
    auto id = detail::sample_checked(sampler, row, history, vocab, "generate");
    if (!id) return Error{id.message()};
    history.push_back(*id);
    r.target_passes = 1;
    take(*id);
  }
  DraftLength length(options.draft_max);
  std::vector<int32_t> draft;
  while (!done) {
    if (cancelled()) {
      r.stop = StopReason::Cancelled;
      break;
    }
    const int room = kv.capacity() - kv.size() - 1;  // positions left after the pending token's
    if (room < 0) {
      r.stop = StopReason::ContextFull;
      break;
    }
    draft.clear();
    int k = 0;
    double draft_seconds = 0;
    if (options.drafter != nullptr) {
      k = options.adaptive_draft ? length.next(options.drafter->cost_per_token()) : std::min(options.draft_max, kMaxDraft);
      k = std::max(0, std::min({k, room, options.max_new_tokens - static_cast<int>(r.tokens.size()) - 1, kv.max_step() - 1}));
      const auto d0 = Clock::now();
      if (k > 0) draft = options.drafter->draft(history, k);
      draft_seconds = std::chrono::duration<double>(Clock::now() - d0).count();
      if (draft.size() > static_cast<size_t>(k)) draft.resize(static_cast<size_t>(k));
    }
    auto step = speculative_step(model, kv, history, sampler, draft, fwd, take);
    if (!step) return Error{step.message()};
    ++r.target_passes;
    r.drafted += step->drafted;
    r.accepted += step->accepted;
    length.observe(k, step->drafted, step->accepted, step->pass_seconds, draft_seconds);
  }
  if (decoder && !filter.hit() && !stopped_by_callback) emit(filter.add(decoder->finish()) + filter.flush());
  r.decode_seconds = std::chrono::duration<double>(Clock::now() - t1).count();
  return r;
}

// generate() on a Session: continues its sequence.
template <class Model, class Cache, class SamplerFn>
Result<GenerateResult> generate(Session<Model, Cache>& session, const std::vector<int32_t>& input, SamplerFn&& sampler,
                                const GenerateOptions& options = {}, const Tokenizer* tok = nullptr,
                                const std::function<bool(std::string_view)>& on_text = {}) {
  return generate(session.model(), session.cache(), session.tokens(), input, std::forward<SamplerFn>(sampler), options,
                  tok, on_text);
}

GEMMA2_END_NAMESPACE
