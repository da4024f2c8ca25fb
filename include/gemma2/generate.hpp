// The common generation loop as one call: prefill, then sample / stream /
// step until a stop condition. generate() is one call of a fresh Generation
// (generation.hpp), the value that holds a reply in progress; callers with
// other needs drive a Generation themselves or write their own loop (see
// examples/custom_decoding).
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "gemma2/generation.hpp"
#include "gemma2/reply.hpp"
#include "gemma2/session.hpp"
#include "gemma2/token.hpp"
#include "gemma2/tokenizer.hpp"

GEMMA2_BEGIN_NAMESPACE

// The stop tokens of a Gemma 2 chat: <eos> and <end_of_turn>.
inline std::vector<int32_t> default_stop_tokens(const Tokenizer& tok) {
  std::vector<int32_t> s = {tok.eos_id()};
  if (tok.end_of_turn_id() >= 0) s.push_back(tok.end_of_turn_id());
  return s;
}

namespace detail {
// A text callback as a Generation's token callback: text only, when there is some.
inline std::function<bool(int32_t, std::string_view)> text_callback(
    const std::function<bool(std::string_view)>& on_text) {
  if (!on_text) return {};
  return [&on_text](int32_t, std::string_view text) { return text.empty() || on_text(text); };
}
}  // namespace detail

// Runs `input` after the tokens already in `history`, then generates: one
// call of a fresh Generation (see there; to continue a reply a call paused,
// use a Generation). `history` is the whole sequence: it is appended
// `input` and every sampled token. `sampler` is any callable
// int32_t(std::vector<float>& logits, const TokenHistory&). `tok` may be
// null (no text). `on_text` receives each piece of text as it becomes
// final; returning false stops generation.
template <class Model, class Cache, class SamplerFn>
Result<GenerateResult> generate(const Model& model, Cache& kv, TokenHistory& history, const std::vector<int32_t>& input,
                                SamplerFn&& sampler, const GenerateOptions& options = {},
                                const Tokenizer* tok = nullptr,
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
