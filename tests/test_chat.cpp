// Chat: a conversation over one session, turn by turn, against a fresh
// greedy run over the whole conversation.
#include <doctest/doctest.h>

#include "support.hpp"

using test::demo;
using Model = test::DemoModel;

TEST_CASE("chat keeps the cache between turns and matches a fresh run over the whole conversation") {
  const auto& d = demo();
  gemma2::Chat<Model> chat(gemma2::Session<Model>::create(d.model).value(), d.tok, "Speak as a king.");
  gemma2::GenerateOptions o;
  o.max_new_tokens = 20;
  auto t1 = chat.send("Who are you?", gemma2::Sampler(), o);
  REQUIRE(t1.ok());
  const int after_first = chat.cache().size();
  auto t2 = chat.send("Tell me more.", gemma2::Sampler(), o);
  REQUIRE(t2.ok());
  // The second turn ran only its own tokens (plus the pending end of the first reply).
  const auto turn2 = d.tok.encode("\n<start_of_turn>user\nTell me more.<end_of_turn>\n<start_of_turn>model\n").value();
  const size_t closing = t1->stop == gemma2::StopReason::StopToken ? 1 : 1 + d.tok.encode("<end_of_turn>")->size();
  CHECK(t2->prefill_tokens == static_cast<int>(turn2.size() + closing));
  CHECK(t2->prefill_tokens < after_first);
  // The first turn carries the system text.
  const auto first = d.tok
                         .encode_prompt(gemma2::format_chat({{gemma2::Role::System, "Speak as a king."},
                                                             {gemma2::Role::User, "Who are you?"}})
                                            .value())
                         .value();
  CHECK(std::vector<int32_t>(chat.history().begin(), chat.history().begin() + first.size()) == first);
  // Greedy over the whole history from an empty cache gives the same reply.
  const auto& h = chat.history();
  const size_t reply_start = h.size() - t2->tokens.size();
  auto fresh_cache = d.model.make_cache().value();
  gemma2::TokenHistory fresh_history;
  gemma2::GenerateOptions f = o;
  f.stop_tokens = gemma2::default_stop_tokens(d.tok);
  auto fresh = gemma2::generate(d.model, fresh_cache, fresh_history,
                                std::vector<int32_t>(h.begin(), h.begin() + reply_start), gemma2::Sampler(), f, &d.tok);
  REQUIRE(fresh.ok());
  CHECK(fresh->tokens == t2->tokens);
  CHECK(chat.messages().size() == 4);
  CHECK(chat.messages()[3].content == t2->text);
}
