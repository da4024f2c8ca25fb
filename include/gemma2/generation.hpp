// A reply in progress as a value the caller owns: everything the decoding
// loop remembers between tokens (the streaming decoder's partial UTF-8, the
// stop-string filter's held text, the budgets, the draft length, the stop
// reason) lives in a Generation, so a reply run in slices (a token per frame,
// a time budget per call) or saved and restored between slices is the same
// computation as one call. Built only on the public pieces (model, cache,
// tokenizer, any sampler); generate.hpp runs one call of a fresh one.
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

#include "gemma2/io/bytes.hpp"
#include "gemma2/model.hpp"
#include "gemma2/reply.hpp"
#include "gemma2/session.hpp"
#include "gemma2/speculative.hpp"
#include "gemma2/stop_strings.hpp"
#include "gemma2/token.hpp"
#include "gemma2/tokenizer.hpp"

GEMMA2_BEGIN_NAMESPACE

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
    detail::ByteWriter w;
    w.bytes(kMagic, sizeof kMagic);
    w.u32(kVersion);
    w.u32((started_ ? 1u : 0u) | (done_ ? 2u : 0u) | (stopped_by_callback_ ? 4u : 0u) | (filter_.hit() ? 8u : 0u) |
          (decoder_ ? 16u : 0u) | (synced_ ? 32u : 0u));
    w.u32(static_cast<uint32_t>(reply_.stop));
    w.u64(reply_.tokens.size());
    for (int32_t t : reply_.tokens) w.u32(static_cast<uint32_t>(t));
    w.string(reply_.text);
    w.string(filter_.held());
    const StreamDecoder::State d = decoder_ ? decoder_->state() : StreamDecoder::State{};
    w.string(d.bytes);
    w.u32((d.emitted ? 1u : 0u) | (d.at_start ? 2u : 0u) | (d.bos_space_dropped ? 4u : 0u));
    for (int v : {reply_.prefill_tokens, reply_.target_passes, reply_.drafted, reply_.accepted})
      w.u32(static_cast<uint32_t>(v));
    w.u64(ready_.size());
    w.bytes(ready_.data(), ready_.size() * sizeof(float));
    return std::move(w).checksummed();
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
    if (!detail::checksum_matches(data, size)) return err(where, "checksum mismatch (corrupt data)");
    detail::ByteReader r(data + sizeof kMagic, size - sizeof kMagic - 8);
    if (const uint32_t v = r.u32("version"); v != kVersion) return err(where, "version ", v, " is not supported");
    const uint32_t flags = r.u32("flags"), stop = r.u32("stop reason");
    if (flags >= 64 || stop > static_cast<uint32_t>(StopReason::TimeBudget)) return err(where, "bad flags");
    if (((flags & 16u) != 0) != decoder_.has_value())
      return err(where, "saved ", decoder_ ? "without" : "with", " a tokenizer; this reply has ",
                 decoder_ ? "one" : "none");
    const uint64_t ntokens = r.u64("token count");
    if (!r.ok() || ntokens > r.left() / 4) return err(where, "truncated");
    GenerateResult reply;
    reply.stop = static_cast<StopReason>(stop);
    reply.tokens.resize(static_cast<size_t>(ntokens));
    for (int32_t& t : reply.tokens) t = static_cast<int32_t>(r.u32("token"));
    reply.text = r.string("text");
    std::string held = r.string("held stop-string text");
    StreamDecoder::State d;
    d.bytes = r.string("decoder bytes");
    const uint32_t dflags = r.u32("decoder flags");
    d.emitted = dflags & 1u, d.at_start = dflags & 2u, d.bos_space_dropped = dflags & 4u;
    for (int* v : {&reply.prefill_tokens, &reply.target_passes, &reply.drafted, &reply.accepted})
      *v = static_cast<int>(r.u32("counter"));
    const uint64_t nready = r.u64("logit count");
    if (!r.ok() || nready > r.left() / sizeof(float)) return err(where, "truncated");
    std::vector<float> ready(static_cast<size_t>(nready));
    if (nready != 0)
      std::memcpy(ready.data(), r.take(ready.size() * sizeof(float), "logits"), ready.size() * sizeof(float));
    if (!r.ok() || r.left() != 0) return err(where, r.ok() ? "unexpected bytes at the end" : "truncated");
    // A partial character is at most 3 bytes: more is not a saved decoder.
    if (d.bytes.size() > 3) return err(where, "the decoder holds ", d.bytes.size(), " bytes, not a partial character");
    if (dflags >= 8 || (!decoder_ && (!d.bytes.empty() || dflags != 2))) return err(where, "bad decoder state");
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
  class Call;

  template <class Model, class Cache, class SamplerFn, class SessionT>
  Result<GenerateResult> run_steps(const Model& model, Cache& kv, TokenHistory& history,
                                   const std::vector<int32_t>& input, SamplerFn& sampler, const TokenCallback& on_token,
                                   SessionT* session) {
    const auto call_start = Clock::now();
    if (Status s = check(model, kv, history, input, sampler); !s) return Error{s.message()};
    if (!started_ && input.empty() && history.size() == static_cast<size_t>(kv.size()) && ready_.empty()) {
      bool logits = false;
      if constexpr (!std::is_same_v<SessionT, std::nullptr_t>) logits = session->next_logits() != nullptr;
      if (!logits) return detail::err("generate: nothing to run (empty input, no pending tokens and no logits)");
    }
    Call<Model, Cache, SamplerFn, SessionT> call(*this, model, kv, history, sampler, on_token, session, call_start);
    history.insert(history.end(), input.begin(), input.end());
    while (!started_ && !done_) {
      auto paused = call.prefill_step();
      if (!paused) return Error{paused.message()};
      if (*paused) return call.out;
    }
    const auto t1 = Clock::now();
    while (!done_) {
      auto stop = call.decode_step();
      if (!stop) {
        call.count_decode_time(t1);
        return Error{stop.message()};
      }
      if (*stop) break;
    }
    call.count_decode_time(t1);
    return call.out;
  }

  // Everything a call can refuse before it changes anything.
  template <class Model, class Cache, class SamplerFn>
  Status check(const Model& model, const Cache& kv, const TokenHistory& history, const std::vector<int32_t>& input,
               const SamplerFn& sampler) const {
    using detail::err;
    const GenerateOptions& o = options_;
    if (done_) return err("generate: this reply is over (", stop_reason_name(reply_.stop), "); start a new Generation");
    if (o.max_new_tokens < 0) return err("generate: max_new_tokens must be >= 0, got ", o.max_new_tokens);
    if (o.call_max_tokens < 0)
      return err("generate: call_max_tokens must be >= 0 (0: no limit), got ", o.call_max_tokens);
    if (!(o.time_budget_ms >= 0) || std::isinf(o.time_budget_ms))
      return err("generate: time_budget_ms must be a finite number >= 0 (0: no budget), got ", o.time_budget_ms);
    if (o.prefill_chunk < 1) return err("generate: prefill_chunk must be at least 1, got ", o.prefill_chunk);
    if (history.size() < static_cast<size_t>(kv.size()))
      return err("generate: history has ", history.size(), " tokens but the cache holds ", kv.size());
    if (started_ && !input.empty())
      return err("generate: the reply has begun; input goes before its first token (start a new Generation)");
    if (o.max_new_tokens > static_cast<int>(reply_.tokens.size()) && detail::sampler_finished(sampler))
      return err(
          "generate: the sampler has finished (its grammar's text is complete): constrain it anew or "
          "unconstrain it first");
    const int vocab = model.config().vocab_size;
    if (!ready_.empty() && ready_.size() != static_cast<size_t>(vocab))  // a restored reply of another model
      return err("generate: the reply holds logits for a vocabulary of ", ready_.size(), ", the model has ", vocab);
    for (size_t i = 0; i < input.size(); ++i)
      if (input[i] < 0 || input[i] >= vocab)
        return err("generate: token id ", input[i], " at index ", i, " of the input is outside the vocabulary [0, ",
                   vocab, ")");
    if (o.context_shift.enabled) return detail::check_shift(o.context_shift, kv.capacity());
    const size_t pending = history.size() + input.size() - static_cast<size_t>(kv.size());
    if (pending > static_cast<size_t>(kv.capacity() - kv.size()))
      return err("generate: context overflow: ", kv.size(), " cached + ", pending,
                 " new positions exceed the capacity of ", kv.capacity());
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

// One call of Generation::run: what it has produced so far (`out`), and its
// steps — a chunk of the prompt, or a decoding pass — each taken only if the
// call's limits leave room for it.
template <class Model, class Cache, class SamplerFn, class SessionT>
class Generation::Call {
 public:
  Call(Generation& g, const Model& model, Cache& kv, TokenHistory& history, SamplerFn& sampler,
       const TokenCallback& on_token, SessionT* session, Clock::time_point start)
      : g_(g),
        o_(g.options_),
        model_(model),
        kv_(kv),
        history_(history),
        sampler_(sampler),
        on_token_(on_token),
        session_(session),
        start_(start),
        history_before_(history.size()) {
    fwd_.pool = o_.pool;
    fwd_.cancel = o_.cancel;
  }

  GenerateResult out;

  // The next chunk of what the cache lacks of the history; the last one's
  // logits give the first token. True when the call must return now (its
  // time budget is spent).
  Result<bool> prefill_step() {
    if (cancelled()) return end(StopReason::Cancelled), false;
    const size_t pending = history_.size() - static_cast<size_t>(kv_.size());
    if (pending == 0) {  // logits from an earlier call, a feed or a restore
      const std::vector<float>* logits = !g_.ready_.empty() ? &g_.ready_ : nullptr;
      if constexpr (kSession)
        if (logits == nullptr) logits = session_->next_logits();
      if (o_.max_new_tokens == 0) end(StopReason::MaxTokens);
      else if (Status s = sample_first(*logits); !s) return Error{s.message()};
      return false;
    }
    const size_t n = std::min({pending, static_cast<size_t>(o_.prefill_chunk), static_cast<size_t>(kv_.max_step())});
    if (!fits(g_.prefill_step_seconds_ * static_cast<double>(n))) return pause(StopReason::TimeBudget), true;
    if (Status s = make_room(static_cast<int>(n)); !s) return Error{s.message()};
    const auto t0 = Clock::now();
    auto logits = model_.forward(history_.data() + kv_.size(), n, kv_, fwd_);
    if (!logits) {
      if (cancelled()) return end(StopReason::Cancelled), false;
      history_.resize(std::max(history_before_, static_cast<size_t>(kv_.size())));
      return Error{logits.message()};
    }
    ++steps_;
    g_.prefill_step_seconds_ = seconds_since(t0) / static_cast<double>(n);
    for (GenerateResult* r : {&out, &g_.reply_}) r->prefill_tokens += static_cast<int>(n);
    if (n == pending) {
      if (o_.drafter != nullptr && !g_.synced_)
        o_.drafter->sync(history_);  // the drafter's prefill is the prompt's too
      g_.synced_ = true;
      if (o_.max_new_tokens == 0) {
        if constexpr (kSession) session_->set_next_logits(logits->data(), static_cast<size_t>(logits->cols()));
        end(StopReason::MaxTokens);
      } else if (Status s = sample_first(std::vector<float>(logits->data(), logits->data() + logits->cols())); !s) {
        return Error{s.message()};
      }
    }
    const double total = seconds_since(t0);
    for (GenerateResult* r : {&out, &g_.reply_}) r->prefill_seconds += total;
    return false;
  }

  // A pass of the pending token and the drafter's guesses. True when the
  // call stops here (a pause, or the reply ended before the pass).
  Result<bool> decode_step() {
    if (o_.call_max_tokens > 0 && static_cast<int>(out.tokens.size()) >= o_.call_max_tokens)
      return pause(StopReason::CallLimit), true;
    if (cancelled()) return end(StopReason::Cancelled), true;
    if (!fits(g_.decode_step_seconds_)) return pause(StopReason::TimeBudget), true;
    if (Status s = make_room(1); !s) return Error{s.message()};
    const int room = kv_.capacity() - kv_.size() - 1;  // positions left after the pending token's
    if (room < 0) return end(StopReason::ContextFull), true;
    int k = 0;
    double draft_seconds = 0;
    draft_.clear();
    if (o_.drafter != nullptr) {
      const int call_left =
          o_.call_max_tokens > 0 ? o_.call_max_tokens - static_cast<int>(out.tokens.size()) : kMaxDraft + 1;
      k = o_.adaptive_draft ? g_.length_.next(o_.drafter->cost_per_token()) : std::min(o_.draft_max, kMaxDraft);
      k = std::max(0, std::min({k, room, o_.max_new_tokens - static_cast<int>(g_.reply_.tokens.size()) - 1,
                                call_left - 1, kv_.max_step() - 1}));
      const auto d0 = Clock::now();
      if (k > 0) draft_ = o_.drafter->draft(history_, k);
      draft_seconds = seconds_since(d0);
      if (draft_.size() > static_cast<size_t>(k)) draft_.resize(static_cast<size_t>(k));
    }
    auto step = detail::speculative_step_for("generate", model_, kv_, history_, sampler_, draft_, fwd_,
                                             [this](int32_t id) { return take(id); });
    if (!step) return Error{step.message()};
    ++steps_;
    g_.decode_step_seconds_ = step->pass_seconds + draft_seconds;
    for (GenerateResult* r : {&out, &g_.reply_}) {
      ++r->target_passes;
      r->drafted += step->drafted;
      r->accepted += step->accepted;
    }
    g_.length_.observe(k, step->drafted, step->accepted, step->pass_seconds, draft_seconds);
    return false;
  }

  void count_decode_time(Clock::time_point t1) {
    out.decode_seconds = seconds_since(t1);
    g_.reply_.decode_seconds += out.decode_seconds;
  }

 private:
  static constexpr bool kSession = !std::is_same_v<SessionT, std::nullptr_t>;

  // Whether a step expected to take `estimate` seconds fits the call's
  // budget; the call's first step always does.
  bool fits(double estimate) const {
    return steps_ == 0 || o_.time_budget_ms <= 0 || (seconds_since(start_) + estimate) * 1e3 <= o_.time_budget_ms;
  }
  void pause(StopReason why) { out.stop = g_.reply_.stop = why; }

  // Room for `need` more positions by the automatic context shift, if on.
  Status make_room(int need) {
    const ContextShift& cs = o_.context_shift;
    const Result<int> drop = detail::drop_for_room(cs, kv_.size(), need, kv_.capacity());
    if (!drop || *drop == 0) return drop ? Status() : Status(Error{drop.message()});
    Status s;
    if constexpr (kSession) s = session_->shift(cs.keep, *drop, fwd_);
    else s = detail::shift_context(model_, kv_, history_, cs.keep, *drop, fwd_);
    // The history before this call's input lost what was dropped of it.
    const size_t before = history_before_, keep = static_cast<size_t>(cs.keep);
    if (s && before > keep) history_before_ = before - std::min(before - keep, static_cast<size_t>(*drop));
    return s;
  }
  bool cancelled() const { return o_.cancel != nullptr && o_.cancel->load(std::memory_order_relaxed); }

  // Text a token makes final, after the stop-string filter, to the callback.
  void emit(int32_t id, const std::string& text) {
    out.text += text;
    g_.reply_.text += text;
    if (on_token_ && !g_.stopped_by_callback_ && !on_token_(id, text)) g_.stopped_by_callback_ = true;
  }

  void end(StopReason why) {
    g_.done_ = true;
    out.stop = g_.reply_.stop = why;
    if (g_.decoder_ && !g_.filter_.hit() && !g_.stopped_by_callback_) {
      const std::string rest = g_.filter_.add(g_.decoder_->finish(), o_.stop_strings) + g_.filter_.flush();
      if (!rest.empty()) emit(-1, rest);
    }
  }

  // A sampled token: false when it ends the call's pass.
  bool take(int32_t id) {
    out.tokens.push_back(id);
    g_.reply_.tokens.push_back(id);
    const bool stop_token = std::find(o_.stop_tokens.begin(), o_.stop_tokens.end(), id) != o_.stop_tokens.end();
    emit(id, !stop_token && g_.decoder_ ? g_.filter_.add(g_.decoder_->push(id), o_.stop_strings) : std::string());
    if (stop_token) end(StopReason::StopToken);
    else if (g_.filter_.hit()) end(StopReason::StopString);
    else if (g_.stopped_by_callback_) end(StopReason::Callback);
    else if (detail::sampler_finished(sampler_)) end(StopReason::Complete);
    else if (static_cast<int>(g_.reply_.tokens.size()) >= o_.max_new_tokens) end(StopReason::MaxTokens);
    else return o_.call_max_tokens == 0 || static_cast<int>(out.tokens.size()) < o_.call_max_tokens;
    return false;
  }

  Status sample_first(std::vector<float> row) {
    auto id = detail::sample_checked(sampler_, row, history_, model_.config().vocab_size, "generate");
    if (!id) {
      g_.ready_ = std::move(row);  // a later call samples again from these logits
      return Error{id.message()};
    }
    g_.ready_.clear();
    g_.started_ = true;
    history_.push_back(*id);
    ++out.target_passes;
    ++g_.reply_.target_passes;
    take(*id);
    return {};
  }

  Generation& g_;
  const GenerateOptions& o_;
  const Model& model_;
  Cache& kv_;
  TokenHistory& history_;
  SamplerFn& sampler_;
  const TokenCallback& on_token_;
  SessionT* session_;
  const Clock::time_point start_;
  size_t history_before_;
  ForwardOptions fwd_;
  std::vector<int32_t> draft_;
  int steps_ = 0;  // steps this call has run: the first always may
};

GEMMA2_END_NAMESPACE
