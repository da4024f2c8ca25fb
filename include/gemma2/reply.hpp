// What a reply is asked for and what it gives: the limits and stop
// conditions of a reply and of each call that runs it (GenerateOptions), what
// a call or a whole reply produced (GenerateResult) and why it stopped
// (StopReason). Shared by Generation (generate.hpp), the chat helper and the
// C ABI, without the generation loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "gemma2/context_shift.hpp"
#include "gemma2/speculative.hpp"
#include "gemma2/thread_pool.hpp"

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
  int max_new_tokens = 256;                   // tokens of the whole reply
  std::vector<int32_t> stop_tokens;           // e.g. {tokenizer.eos_id(), tokenizer.end_of_turn_id()}
  std::vector<std::string> stop_strings;      // generation ends where the text first contains one
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
  ContextShift context_shift;
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

GEMMA2_END_NAMESPACE
