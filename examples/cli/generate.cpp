// gemma2 generate and gemma2 chat.
#include <algorithm>
#include <iostream>
#include <utility>

#include "commands.hpp"

namespace gemma2_cli {
namespace {

// The stop tokens of generate: <eos> and <end_of_turn> as the tokenizer
// names them, <eos> (id 1) without a tokenizer, none with --ignore-eos.
std::vector<int32_t> stop_tokens(const Loaded& l, bool ignore_eos) {
  if (ignore_eos) return {};
  if (l.tokenizer) return gemma2::default_stop_tokens(*l.tokenizer);
  return {1};  // <eos>
}

}  // namespace

int run_generate(GenerateArgs& a) {
  if (a.prompt.empty() == a.ids.empty()) return fail("generate: give exactly one of --prompt and --ids");
  auto decoding = make_decoding(a.sampling, a.grammar);
  if (!decoding) return 1;
  const std::optional<gemma2::Grammar>& grammar = decoding->grammar;
  auto l = load(a.model, !a.prompt.empty() || grammar);
  if (!l) return 1;
  if (auto e = a.sampling.bias_outside(l->model->config().vocab_size)) return fail(*e);
  if (grammar) {  // the text is complete within --max-new tokens; stdout holds it alone
    auto c = reply_constraint(*grammar, gemma2::TokenTrie::build(*l->tokenizer), a.max_new);
    if (!c) return fail(c.message());
    decoding->sampler.constrain(std::move(*c));
  }
  std::vector<int32_t> ids = a.ids;
  if (!a.prompt.empty()) {
    auto enc = l->tokenizer->encode_prompt(a.prompt);  // BOS + prompt
    if (!enc) return fail(enc.message());
    ids = std::move(*enc);
  }
  // Room for the prompt and the reply only: a full 8192-position cache of a
  // 2B model is 1.7 GB.
  const size_t needed = ids.size() + static_cast<size_t>(a.max_new);
  const int capacity = static_cast<int>(std::min<size_t>(needed, l->model->config().max_position_embeddings));
  auto speculative = a.speculative.make(a.model, *l->model, capacity);
  if (!speculative) return 1;
  return with_kv_storage(a.model.kv_cache, [&](auto storage) {
    auto kv = l->model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(capacity);
    if (!kv) return fail(kv.message());
    gemma2::GenerateOptions go;
    go.max_new_tokens = a.max_new;
    go.pool = &*l->pool;
    go.stop_strings = a.stops;
    go.drafter = speculative->drafter.get();
    go.draft_max = a.speculative.draft_max;
    go.stop_tokens = stop_tokens(*l, a.ignore_eos);
    gemma2::TokenHistory history;
    const gemma2::Tokenizer* tok = l->tokenizer ? &*l->tokenizer : nullptr;
    auto r = gemma2::generate(*l->model, *kv, history, ids, decoding->sampler, go, tok, [](std::string_view text) {
      std::cout << text << std::flush;
      return true;
    });
    if (!r) return fail(r.message());
    // A grammar's text stands alone on stdout, with no newline after it;
    // the ids are always a line of their own, whatever the text ends with.
    if (tok && (!grammar || a.print_ids)) std::cout << "\n";
    print_speed(*r, go.drafter != nullptr);
    if (a.print_ids) std::cout << join(r->tokens) << "\n";
    return 0;
  });
}

namespace {

// The conversation of `gemma2 chat`, one line of stdin a user turn, until
// the end of the input or /exit.
template <class Chat>
int converse(Chat& chat, const ChatArgs& a, gemma2::Sampler& sampler,
             const std::optional<gemma2::GrammarConstraint>& reply, const gemma2::GenerateOptions& go) {
  std::string line;
  for (int turn = 1;; ++turn) {
    std::cerr << "> " << std::flush;
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) {
      --turn;
      continue;
    }
    if (reply) sampler.constrain(*reply);
    auto r = chat.send(line, sampler, go, [](std::string_view text) {
      std::cout << text << std::flush;
      return true;
    });
    std::cout << "\n" << std::flush;
    // The session holds a reply the conversation does not: it cannot go on.
    if (!r) return fail(r.message());
    if (!a.delimiter.empty()) std::cout << a.delimiter << "\n" << std::flush;
    if (a.verbose) {
      std::cerr << "[turn " << turn << ": prefill " << r->prefill_tokens << " tokens, cached " << chat.cache().size()
                << " positions] ";
      print_speed(*r, go.drafter != nullptr);
    }
    if (r->stop == gemma2::StopReason::ContextFull) return fail("chat: the context is full");
  }
  return 0;
}

}  // namespace

int run_chat(ChatArgs& a) {
  auto decoding = make_decoding(a.sampling, a.grammar);
  if (!decoding) return 1;
  auto l = load(a.model, true);
  if (!l) return 1;
  if (auto e = a.sampling.bias_outside(l->model->config().vocab_size)) return fail(*e);
  std::optional<gemma2::GrammarConstraint> reply;  // each reply is one sentence of the grammar
  if (decoding->grammar) {
    auto c = reply_constraint(*decoding->grammar, gemma2::TokenTrie::build(*l->tokenizer), a.max_new);
    if (!c) return fail(c.message());
    reply.emplace(std::move(*c));
  }
  if (l->tokenizer->start_of_turn_id() < 0 || l->tokenizer->end_of_turn_id() < 0)
    return fail("chat: the tokenizer has no <start_of_turn>/<end_of_turn> pieces");
  // Sliding-window cache: the same logits as a full one, about half the memory.
  return with_kv_storage(a.model.kv_cache, [&](auto storage) {
    using Cache = gemma2::SlidingWindowKVCache<decltype(storage)>;
    if (a.context > l->model->config().max_position_embeddings)
      return fail("chat: --context " + std::to_string(a.context) + " exceeds the model's context of " +
                  std::to_string(l->model->config().max_position_embeddings));
    auto session = gemma2::Session<Model, Cache>::create(*l->model, a.context);
    if (!session) return fail(session.message());
    gemma2::Chat<Model, Cache> chat(std::move(*session), *l->tokenizer, a.system);
    auto speculative = a.speculative.make(a.model, *l->model, l->model->config().max_position_embeddings);
    if (!speculative) return 1;
    gemma2::GenerateOptions go;
    go.max_new_tokens = a.max_new;
    go.pool = &*l->pool;
    go.drafter = speculative->drafter.get();
    go.draft_max = a.speculative.draft_max;
    go.context_shift = {a.context_shift, -1, 0};  // keeps the first turn
    std::cerr << "chat with " << a.model.dir << " (end with Ctrl-D or /exit)\n";
    return converse(chat, a, decoding->sampler, reply, go);
  });
}

}  // namespace gemma2_cli
