// The common generation loop, built only on the public pieces (model,
// cache, tokenizer, any sampler): prefill, then sample / stream / step until
// a stop condition. A reply in progress is a value, Generation, that the
// caller owns: everything the loop remembers between tokens (the streaming
// decoder's partial UTF-8, the stop-string matcher, the budget, the draft
// length, the stop reason) lives there, so a reply run in slices (a token
// per frame, a time budget per call) or saved and restored between slices
// is the same computation as one call. generate() is one call of a fresh
// Generation. Callers with other needs write their own loop; see
// examples/custom_decoding.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "gemma2/kv_cache.hpp"
#include "gemma2/model.hpp"
#include "gemma2/token.hpp"
#include "gemma2/session.hpp"
#include "gemma2/speculative.hpp"
#include "gemma2/tokenizer.hpp"

GEMMA2_BEGIN_NAMESPACE

// Why a call of Generation::run (or generate()) returned.
enum class StopReason {
  MaxTokens,    // max_new_tokens were generated
  StopToken,    // a token of stop_tokens was sampled
  StopString,   // the text reached one of stop_strings
  Callback,     // the text callback returned false
  Cancelled,    // the cancel flag was set
  ContextFull,  // the cache has no room for another position
  Complete,     // the sampler has nothing more to generate (its grammar's text is complete)
  // Pauses: the reply goes on, and the next call of the same Generation
  // continues it (Generation::done() is false).
  CallLimit,   // this call generated GenerateOptions::call_max_tokens tokens
  TimeBudget,  // the next step would not fit this call's time_budget_ms
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
    case StopReason::CallLimit: return "call limit";
    case StopReason::TimeBudget: return "time budget";
  }
  return "?";
}

// Whether a call that returned with `r` left the reply to be continued.
inline bool is_pause(StopReason r) { return r == StopReason::CallLimit || r == StopReason::TimeBudget; }

// Limits and stop conditions of a reply, and of each call that runs it.
struct GenerateOptions {
  int max_new_tokens = 256;               // tokens of the whole reply
  std::vector<int32_t> stop_tokens;       // e.g. {tokenizer.eos_id(), tokenizer.end_of_turn_id()}
  std::vector<std::string> stop_strings;  // generation ends where the text first contains one
  const std::atomic<bool>* cancel = nullptr;  // checked between decode steps and prefill chunks
  const Executor* pool = nullptr;
  // The prompt runs in chunks of this many tokens, each one step of a call.
  // The chunks start where the prompt does, whatever the calls, so slicing
  // never changes the logits; for frame loops pick a chunk that fits a frame.
  int prefill_chunk = 512;
  // Per call, for frame loops (0: no limit). A call returns, the reply going
  // on, after call_max_tokens tokens, or before starting a step (a prefill
  // chunk or a decoding pass) that the last such step's duration says would
  // end past time_budget_ms from the call's start. A call runs at least one
  // step, so it lasts at most the budget plus one step.
  int call_max_tokens = 0;
  double time_budget_ms = 0;
  // Speculative decoding (speculative.hpp): the drafter's guesses are
  // checked up to draft_max at a time in one pass of the model. The tokens
  // are those of plain decoding (greedy: the same ids; sampling: the same
  // distribution); only the speed changes. At most kMaxDraft (6) guesses
  // per pass.
  Drafter* drafter = nullptr;
  int draft_max = kMaxDraft;
  bool adaptive_draft = true;  // fewer guesses while few are accepted (DraftLength)
};

// What a call produced (Generation::run), or a whole reply
// (Generation::result(), generate()).
struct GenerateResult {
  std::vector<int32_t> tokens;  // sampled ids, including a final stop token
  std::string text;             // the streamed text (stop tokens and stop strings excluded)
  StopReason stop = StopReason::MaxTokens;
  int prefill_tokens = 0;  // prompt positions run
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
  // Adds text; returns what is safe to emit. Sets hit() when a stop string
  // appears (the text before it is returned, the rest dropped).
  std::string add(const std::string& text, const std::vector<std::string>& stops) {
    held_ += text;
    size_t cut = std::string::npos;
    for (const auto& s : stops)
      if (!s.empty()) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      hit_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of held_ that begins some stop string
    for (const auto& s : stops)
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
  const std::string& held() const { return held_; }
  void set(std::string held, bool hit) { held_ = std::move(held), hit_ = hit; }

 private:
  std::string held_;
  bool hit_ = false;
};
// A text callback as a Generation's token callback: text only, when there is some.
inline std::function<bool(int32_t, std::string_view)> text_callback(
    const std::function<bool(std::string_view)>& on_text) {
  if (!on_text) return {};
  return [&on_text](int32_t, std::string_view text) { return text.empty() || on_text(text); };
}
}  // namespace detail

// One reply in progress: run it in one call or in many (a token per frame,
// a time budget per call); the tokens, the text, the stop-string handling
// and the stop reason are the same either way. The model, cache, history
// and sampler stay the caller's and are passed to each call; a reply's
// sampler must be the same object throughout (its random state and grammar
// position are part of the reply). A copy is an independent reply that
// shares the drafter and cancel flag its options point to.
class Generation {
 public:
  // Receives each sampled token and the text it makes final (often empty:
  // part of a character, a possible stop string's start, a stop token), and
  // at the end token -1 with the text left over; false stops the reply.
  using TokenCallback = std::function<bool(int32_t token, std::string_view text)>;

  // `tok` (may be null: no text) must outlive the Generation.
  explicit Generation(GenerateOptions options = {}, const Tokenizer* tok = nullptr)
      : options_(std::move(options)), tok_(tok), length_(options_.draft_max) {
    if (tok_ != nullptr) decoder_.emplace(*tok_);
  }

  // The options may change between calls (e.g. another time budget); the
  // reply is then no longer the same as one call with the first options.
  GenerateOptions& options() { return options_; }
  const GenerateOptions& options() const { return options_; }
  const Tokenizer* tokenizer() const { return tok_; }
  // Whether the reply has ended (result().stop says why); a further run()
  // is an error.
  bool done() const { return done_; }
  // Whether the prompt has run and the first token was sampled: input is
  // taken only before.
  bool started() const { return started_; }
  // The reply so far: all its tokens and text, its stop reason (the last
  // call's, a pause included) and its timings.
  const GenerateResult& result() const { return reply_; }

  // Appends `input` to `history` and continues the reply: runs what the
  // cache lacks of the history (in prefill_chunk steps), samples, streams
  // and steps until the reply ends or the call's limits pause it. Returns
  // what this call produced. The cache may lag behind the history (e.g. a
  // previous reply's last token), and that is run first; with nothing to
  // run and no logits to sample from, that is an error. Invalid input
  // changes nothing.
  template <class Model, class Cache, class SamplerFn>
  Result<GenerateResult> run(const Model& model, Cache& kv, TokenHistory& history, const std::vector<int32_t>& input,
                             SamplerFn&& sampler, const TokenCallback& on_token = {}) {
    return run_steps(model, kv, history, input, sampler, on_token, static_cast<std::nullptr_t*>(nullptr));
  }

  // run() on a Session; with nothing pending it samples from the session's
  // next_logits() (after feed(), or restored), and a prefill that samples
  // nothing (max_new_tokens 0) leaves its logits there.
  template <class Model, class Cache, class SamplerFn>
  Result<GenerateResult> run(Session<Model, Cache>& session, const std::vector<int32_t>& input, SamplerFn&& sampler,
                             const TokenCallback& on_token = {}) {
    return run_steps(session.model(), session.cache(), session.tokens(), input, sampler, on_token, &session);
  }

  // The reply's state as bytes (a versioned, checksummed blob): its tokens
  // and text, the decoder's partial character, the held stop-string text,
  // the stop reason and counters. Not the options, the tokenizer or the
  // sampler: restore() goes into a Generation made with the same ones.
  std::vector<uint8_t> save() const {
    detail::Writer w;
    w.bytes(kMagic, sizeof kMagic);
    w.u32(kVersion);
    w.u32((started_ ? 1u : 0u) | (done_ ? 2u : 0u) | (stopped_by_callback_ ? 4u : 0u) | (filter_.hit() ? 8u : 0u) |
          (decoder_ ? 16u : 0u) | (synced_ ? 32u : 0u));
    w.u32(static_cast<uint32_t>(reply_.stop));
    w.u64(reply_.tokens.size());
    for (int32_t t : reply_.tokens) w.u32(static_cast<uint32_t>(t));
    auto text = [&](const std::string& t) {
      w.u64(t.size());
      w.bytes(t.data(), t.size());
    };
    text(reply_.text);
    text(filter_.held());
    const StreamDecoder::State d = decoder_ ? decoder_->state() : StreamDecoder::State{};
    text(d.bytes);
    w.u32((d.emitted ? 1u : 0u) | (d.at_start ? 2u : 0u) | (d.bos_space_dropped ? 4u : 0u));
    for (int v : {reply_.prefill_tokens, reply_.target_passes, reply_.drafted, reply_.accepted})
      w.u32(static_cast<uint32_t>(v));
    w.u64(ready_.size());
    w.bytes(ready_.data(), ready_.size() * sizeof(float));
    w.u64(detail::fnv1a(w.out.data(), w.out.size()));
    return std::move(w.out);
  }

  // Continues a reply saved by save(); fails, changing nothing, with a
  // message naming the problem when the blob is truncated, corrupt, of
  // another version, or was saved with(out) a tokenizer where this has none
  // (one).
  Status restore(const uint8_t* data, size_t size) {
    using detail::err;
    const std::string where = "generation restore: ";
    if (data == nullptr || size < sizeof kMagic + 12 || std::memcmp(data, kMagic, sizeof kMagic) != 0)
      return err(where, "not a saved gemma2 reply (bad magic)");
    uint64_t stored_hash;
    std::memcpy(&stored_hash, data + size - 8, 8);
    if (detail::fnv1a(data, size - 8) != stored_hash) return err(where, "checksum mismatch (corrupt data)");
    detail::Reader r{data + sizeof kMagic, data + size - 8};
    if (const uint32_t v = r.u32(); v != kVersion) return err(where, "version ", v, " is not supported");
    const uint32_t flags = r.u32(), stop = r.u32();
    if (flags >= 64 || stop > static_cast<uint32_t>(StopReason::TimeBudget)) return err(where, "bad flags");
    if (((flags & 16u) != 0) != decoder_.has_value())
      return err(where, "saved ", decoder_ ? "without" : "with", " a tokenizer; this reply has ", decoder_ ? "one" : "none");
    const uint64_t ntokens = r.u64();
    if (!r.ok() || ntokens > r.left() / 4) return err(where, "truncated");
    GenerateResult reply;
    reply.stop = static_cast<StopReason>(stop);
    reply.tokens.resize(static_cast<size_t>(ntokens));
    for (int32_t& t : reply.tokens) t = static_cast<int32_t>(r.u32());
    auto text = [&](std::string& t) {
      const uint64_t n = r.u64();
      if (const uint8_t* p = n <= r.left() ? r.take(static_cast<size_t>(n)) : (r.failed = true, nullptr))
        t.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    };
    std::string held;
    StreamDecoder::State d;
    text(reply.text);
    text(held);
    text(d.bytes);
    const uint32_t dflags = r.u32();
    d.emitted = dflags & 1u, d.at_start = dflags & 2u, d.bos_space_dropped = dflags & 4u;
    for (int* v : {&reply.prefill_tokens, &reply.target_passes, &reply.drafted, &reply.accepted})
      *v = static_cast<int>(r.u32());
    const uint64_t nready = r.u64();
    if (!r.ok() || nready > r.left() / sizeof(float)) return err(where, "truncated");
    std::vector<float> ready(static_cast<size_t>(nready));
    if (nready != 0) std::memcpy(ready.data(), r.take(ready.size() * sizeof(float)), ready.size() * sizeof(float));
    if (!r.ok() || r.left() != 0) return err(where, r.ok() ? "unexpected bytes at the end" : "truncated");
    // A partial character is at most 3 bytes: more is not a saved decoder.
    if (d.bytes.size() > 3) return err(where, "the decoder holds ", d.bytes.size(), " bytes, not a partial character");
    if (dflags >= 8 || (!decoder_ && (!d.bytes.empty() || dflags != 2)))
      return err(where, "bad decoder state");
    started_ = flags & 1u, done_ = flags & 2u, stopped_by_callback_ = flags & 4u, synced_ = flags & 32u;
    filter_.set(std::move(held), (flags & 8u) != 0);
    if (decoder_) decoder_->set_state(std::move(d));
    reply_ = std::move(reply);
    ready_ = std::move(ready);
    return {};
  }
  Status restore(const std::vector<uint8_t>& blob) { return restore(blob.data(), blob.size()); }

 private:
  static constexpr char kMagic[8] = {'G', 'E', 'M', 'M', 'A', '2', 'G', 'N'};
  static constexpr uint32_t kVersion = 1;
  using Clock = std::chrono::steady_clock;

  static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  template <class Model, class Cache, class SamplerFn, class SessionT>
  Result<GenerateResult> run_steps(const Model& model, Cache& kv, TokenHistory& history,
                                   const std::vector<int32_t>& input, SamplerFn& sampler,
                                   const TokenCallback& on_token, SessionT* session) {
    using detail::err;
    const auto call_start = Clock::now();
    const GenerateOptions& o = options_;
    if (Status s = check(model, kv, history, input, sampler); !s) return Error{s.message()};
    if (!started_ && input.empty() && history.size() == static_cast<size_t>(kv.size()) && ready_.empty()) {
      bool logits = false;
      if constexpr (!std::is_same_v<SessionT, std::nullptr_t>) logits = session->next_logits() != nullptr;
      if (!logits) return err("generate: nothing to run (empty input, no pending tokens and no logits)");
    }
    const size_t history_before = history.size();
    history.insert(history.end(), input.begin(), input.end());

    GenerateResult call;
    int steps = 0;  // steps this call has run: the first always may
    auto fits = [&](double estimate) {
      return steps == 0 || o.time_budget_ms <= 0 || (seconds_since(call_start) + estimate) * 1e3 <= o.time_budget_ms;
    };
    auto pause = [&](StopReason why) {
      call.stop = reply_.stop = why;
      return call;
    };
    auto cancelled = [&] { return o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed); };
    ForwardOptions fwd;
    fwd.pool = o.pool;
    fwd.cancel = o.cancel;

    // Text a token makes final goes through the stop-string filter to the
    // callback; each sampled token: false when it ends the call's pass.
    auto emit = [&](int32_t id, const std::string& text) {
      call.text += text;
      reply_.text += text;
      if (on_token && !stopped_by_callback_ && !on_token(id, text)) stopped_by_callback_ = true;
    };
    auto end = [&](StopReason why) {
      done_ = true;
      call.stop = reply_.stop = why;
      if (decoder_ && !filter_.hit() && !stopped_by_callback_) {
        const std::string rest = filter_.add(decoder_->finish(), o.stop_strings) + filter_.flush();
        if (!rest.empty()) emit(-1, rest);
      }
    };
    auto take = [&](int32_t id) {
      call.tokens.push_back(id);
      reply_.tokens.push_back(id);
      const bool stop_token = std::find(o.stop_tokens.begin(), o.stop_tokens.end(), id) != o.stop_tokens.end();
      emit(id, !stop_token && decoder_ ? filter_.add(decoder_->push(id), o.stop_strings) : std::string());
      if (stop_token) end(StopReason::StopToken);
      else if (filter_.hit()) end(StopReason::StopString);
      else if (stopped_by_callback_) end(StopReason::Callback);
      else if (detail::sampler_finished(sampler)) end(StopReason::Complete);
      else if (static_cast<int>(reply_.tokens.size()) >= o.max_new_tokens) end(StopReason::MaxTokens);
      else return o.call_max_tokens == 0 || static_cast<int>(call.tokens.size()) < o.call_max_tokens;
      return false;
    };
    const int vocab = model.config().vocab_size;
    auto sample_first = [&](std::vector<float> row) -> Status {
      auto id = detail::sample_checked(sampler, row, history, vocab, "generate");
      if (!id) {
        ready_ = std::move(row);  // a later call samples again from these logits
        return Error{id.message()};
      }
      ready_.clear();
      started_ = true;
      history.push_back(*id);
      ++call.target_passes;
      ++reply_.target_passes;
      take(*id);
      return {};
    };

    // The prompt: what the cache lacks of the history, a chunk per step; the
    // last chunk's logits give the first token.
    while (!started_ && !done_) {
      if (cancelled()) {
        end(StopReason::Cancelled);
        break;
      }
      const size_t pending = history.size() - static_cast<size_t>(kv.size());
      if (pending == 0) {  // logits from an earlier call, a feed or a restore
        const std::vector<float>* logits = !ready_.empty() ? &ready_ : nullptr;
        if constexpr (!std::is_same_v<SessionT, std::nullptr_t>)
          if (logits == nullptr) logits = session->next_logits();
        if (o.max_new_tokens == 0) end(StopReason::MaxTokens);
        else if (Status s = sample_first(*logits); !s) return Error{s.message()};
        break;
      }
      const size_t n = std::min({pending, static_cast<size_t>(o.prefill_chunk), static_cast<size_t>(kv.max_step())});
      if (!fits(prefill_step_seconds_ * static_cast<double>(n))) return pause(StopReason::TimeBudget);
      const auto t0 = Clock::now();
      auto logits = model.forward(history.data() + kv.size(), n, kv, fwd);
      if (!logits) {
        if (cancelled()) {
          end(StopReason::Cancelled);
          break;
        }
        history.resize(std::max(history_before, static_cast<size_t>(kv.size())));
        return Error{logits.message()};
      }
      ++steps;
      const double seconds = seconds_since(t0);
      prefill_step_seconds_ = seconds / static_cast<double>(n);
      call.prefill_tokens += static_cast<int>(n);
      reply_.prefill_tokens += static_cast<int>(n);
      if (n == pending) {
        if (o.drafter != nullptr && !synced_) o.drafter->sync(history);  // the drafter's prefill is the prompt's too
        synced_ = true;
        if (o.max_new_tokens == 0) {
          if constexpr (!std::is_same_v<SessionT, std::nullptr_t>)
            session->set_next_logits(logits->data(), static_cast<size_t>(logits->cols()));
          end(StopReason::MaxTokens);
        } else if (Status s = sample_first(std::vector<float>(logits->data(), logits->data() + logits->cols())); !s) {
          return Error{s.message()};
        }
      }
      const double total = seconds_since(t0);
      call.prefill_seconds += total;
      reply_.prefill_seconds += total;
    }

    // Decoding: a pass of the pending token and the drafter's guesses per step.
    const auto t1 = Clock::now();
    std::vector<int32_t> draft;
    while (!done_) {
      if (o.call_max_tokens > 0 && static_cast<int>(call.tokens.size()) >= o.call_max_tokens) {
        pause(StopReason::CallLimit);
        break;
      }
      if (cancelled()) {
        end(StopReason::Cancelled);
        break;
      }
      const int room = kv.capacity() - kv.size() - 1;  // positions left after the pending token's
      if (room < 0) {
        end(StopReason::ContextFull);
        break;
      }
      if (!fits(decode_step_seconds_)) {
        pause(StopReason::TimeBudget);
        break;
      }
      draft.clear();
      int k = 0;
      double draft_seconds = 0;
      if (o.drafter != nullptr) {
        const int call_left = o.call_max_tokens > 0 ? o.call_max_tokens - static_cast<int>(call.tokens.size()) : kMaxDraft + 1;
        k = o.adaptive_draft ? length_.next(o.drafter->cost_per_token()) : std::min(o.draft_max, kMaxDraft);
        k = std::max(0, std::min({k, room, o.max_new_tokens - static_cast<int>(reply_.tokens.size()) - 1, call_left - 1,
                                  kv.max_step() - 1}));
        const auto d0 = Clock::now();
        if (k > 0) draft = o.drafter->draft(history, k);
        draft_seconds = seconds_since(d0);
        if (draft.size() > static_cast<size_t>(k)) draft.resize(static_cast<size_t>(k));
      }
      auto step = speculative_step(model, kv, history, sampler, draft, fwd, take);
      if (!step) {
        call.decode_seconds = seconds_since(t1);
        reply_.decode_seconds += call.decode_seconds;
        return Error{step.message()};
      }
      ++steps;
      decode_step_seconds_ = step->pass_seconds + draft_seconds;
      for (GenerateResult* r : {&call, &reply_}) {
        ++r->target_passes;
        r->drafted += step->drafted;
        r->accepted += step->accepted;
      }
      length_.observe(k, step->drafted, step->accepted, step->pass_seconds, draft_seconds);
    }
    call.decode_seconds = seconds_since(t1);
    reply_.decode_seconds += call.decode_seconds;
    return call;
  }

  // Everything a call can refuse before it changes anything.
  template <class Model, class Cache, class SamplerFn>
  Status check(const Model& model, const Cache& kv, const TokenHistory& history, const std::vector<int32_t>& input,
               const SamplerFn& sampler) const {
    using detail::err;
    const GenerateOptions& o = options_;
    if (done_) return err("generate: this reply is over (", stop_reason_name(reply_.stop), "); start a new Generation");
    if (o.max_new_tokens < 0) return err("generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
    if (o.call_max_tokens < 0) return err("generate: call_max_tokens must be >= 0 (0: no limit), got ", o.call_max_tokens);
    if (!(o.time_budget_ms >= 0) || std::isinf(o.time_budget_ms))
      return err("generate: time_budget_ms must be a finite number >= 0 (0: no budget), got ", o.time_budget_ms);
    if (o.prefill_chunk < 1) return err("generate: prefill_chunk must be at least 1, got ", o.prefill_chunk);
    if (history.size() < static_cast<size_t>(kv.size()))
      return err("generate: history has ", history.size(), " tokens but the cache holds ", kv.size());
    if (started_ && !input.empty())
      return err("generate: the reply has begun; input goes before its first token (start a new Generation)");
    if (o.max_new_tokens > static_cast<int>(reply_.tokens.size()) && detail::sampler_finished(sampler))
      return err("generate: the sampler has finished (its grammar's text is complete): constrain it anew or "
                 "unconstrain it first");
    const int vocab = model.config().vocab_size;
    if (!ready_.empty() && ready_.size() != static_cast<size_t>(vocab))  // a restored reply of another model
      return err("generate: the reply holds logits for a vocabulary of ", ready_.size(), ", the model has ", vocab);
    for (size_t i = 0; i < input.size(); ++i)
      if (input[i] < 0 || input[i] >= vocab)
        return err("generate: token id ", input[i], " at index ", i, " of the input is outside the vocabulary [0, ",
                   vocab, ")");
    const size_t pending = history.size() + input.size() - static_cast<size_t>(kv.size());
    if (pending > static_cast<size_t>(kv.capacity() - kv.size()))
      return err("generate: context overflow: ", kv.size(), " cached + ", pending, " new positions exceed the capacity of ",
                 kv.capacity());
    return {};
  }

  GenerateOptions options_;
  const Tokenizer* tok_;
  std::optional<StreamDecoder> decoder_;
  detail::StopStringFilter filter_;
  DraftLength length_;
  GenerateResult reply_;
  std::vector<float> ready_;  // logits of a first token whose sampling failed
  bool started_ = false, done_ = false, stopped_by_callback_ = false, synced_ = false;
  // The last steps' durations: what the time budget expects the next to take.
  double prefill_step_seconds_ = 0.0;  // per prompt token
  double decode_step_seconds_ = 0.0;
};

// Runs `input` after the tokens already in `history`, then generates: one
// call of a fresh Generation (see there; to continue a reply a call paused,
// use a Generation). `history` is the whole sequence: it is appended
// `input` and every sampled token. `sampler` is any callable
// int32_t(std::vector<float>& logits, const TokenHistory&). `tok` may be
// null (no text). `on_text` receives each piece of text as it becomes
// final; returning false stops generation.
template <class Model, class Cache, class SamplerFn>
Result<GenerateResult> generate(const Model& model, Cache& kv, TokenHistory& history,
                                const std::vector<int32_t>& input, SamplerFn&& sampler,
                                const GenerateOptions& options = {}, const Tokenizer* tok = nullptr,
                                const std::function<bool(std::string_view)>& on_text = {}) {
  Generation g(options, tok);
  auto r = g.run(model, kv, history, input, sampler, detail::text_callback(on_text));
  if (!r) return r;
  return g.result();
}

// generate() on a Session: continues its sequence.
template <class Model, class Cache, class SamplerFn>
Result<GenerateResult> generate(Session<Model, Cache>& session, const std::vector<int32_t>& input, SamplerFn&& sampler,
                                const GenerateOptions& options = {}, const Tokenizer* tok = nullptr,
                                const std::function<bool(std::string_view)>& on_text = {}) {
  Generation g(options, tok);
  auto r = g.run(session, input, sampler, detail::text_callback(on_text));
  if (!r) return r;
  return g.result();
}

GEMMA2_END_NAMESPACE
