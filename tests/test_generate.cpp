// generate(): the demo model's reference greedy continuations, stop
// conditions, cancellation, and a sequence continued over several calls.
#include <doctest/doctest.h>

#include <atomic>

#include "support.hpp"

namespace {

using test::demo;
using test::demo_prompt;

// One generate() call from an empty cache, greedy, with the demo tokenizer.
gemma2::Result<gemma2::GenerateResult> run(const std::vector<int32_t>& prompt, gemma2::GenerateOptions o,
                                           const std::function<bool(std::string_view)>& on_text = {}) {
  auto kv = demo().model.make_cache();
  REQUIRE(kv.ok());
  gemma2::TokenHistory history;
  return gemma2::generate(demo().model, *kv, history, prompt, gemma2::Sampler(), o, &demo().tok, on_text);
}

}  // namespace

TEST_CASE("demo model: every reference greedy continuation, token for token") {
  const auto expected = test::read_json(std::string(GEMMA2_DEMO_MODEL) + "/expected.json");
  REQUIRE(expected["cases"].size() >= 3);
  for (const auto& c : expected["cases"]) {
    INFO(c["prompt"].get<std::string>());
    const auto ids = demo_prompt(c["prompt"].get<std::string>());
    CHECK(ids == c["prompt_ids"].get<std::vector<int32_t>>());
    gemma2::GenerateOptions o;
    o.max_new_tokens = c["n_new_tokens"].get<int>();
    auto r = run(ids, o);
    REQUIRE(r.ok());
    CHECK(r->tokens == c["greedy_ids"].get<std::vector<int32_t>>());
    CHECK(r->text == c["decoded"].get<std::string>());
    CHECK(r->stop == gemma2::StopReason::MaxTokens);
  }
}

TEST_CASE("generate: stop tokens, stop strings, callback, cancellation, full context") {
  const auto ids = demo_prompt("ROMEO:\n");  // greedy: "I'll tell you, sir, I'll not be a man.\n\nKING ..."
  gemma2::GenerateOptions o;
  o.max_new_tokens = 48;
  SUBCASE("stop token") {
    o.stop_tokens = {4047};  // ","
    auto r = run(ids, o);
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::StopToken);
    CHECK(r->tokens.back() == 4047);
    CHECK(r->text == "I'll tell you");
  }
  SUBCASE("stop string, never partly printed") {
    o.stop_strings = {"sir, I"};
    std::string streamed;
    auto r = run(ids, o, [&](std::string_view t) {
      streamed += t;
      return true;
    });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::StopString);
    CHECK(r->text == "I'll tell you, ");
    CHECK(streamed == r->text);
  }
  SUBCASE("callback stops generation") {
    int calls = 0;
    auto r = run(ids, o, [&](std::string_view) { return ++calls < 3; });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::Callback);
    CHECK(calls == 3);
  }
  SUBCASE("cancellation between steps and before prefill chunks") {
    std::atomic<bool> cancel{false};
    o.cancel = &cancel;
    auto r = run(ids, o, [&](std::string_view) {
      cancel = true;
      return true;
    });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::Cancelled);
    CHECK(r->tokens.size() == 1);
    auto r2 = run(ids, o);  // already set: the prefill does not run
    REQUIRE(r2.ok());
    CHECK(r2->stop == gemma2::StopReason::Cancelled);
    CHECK(r2->tokens.empty());
  }
  SUBCASE("a full cache ends generation with a reason, not an error") {
    auto kv = demo().model.make_cache(10);
    gemma2::TokenHistory h;
    auto r = gemma2::generate(demo().model, *kv, h, ids, gemma2::Sampler(), o, &demo().tok);
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::ContextFull);
    CHECK(kv->size() == 10);
    CHECK(r->tokens.size() == 7);  // 4 prompt positions + 6 decoded; the 7th token is sampled, not run
  }
}

TEST_CASE("generate: continuing a sequence in several calls equals one call, and any callable samples") {
  const auto ids = demo_prompt("First Citizen:\n");
  gemma2::GenerateOptions o;
  o.max_new_tokens = 30;
  auto whole = run(ids, o);
  REQUIRE(whole.ok());

  auto kv = demo().model.make_cache();
  gemma2::TokenHistory history;
  // A user-written greedy sampler that also checks it sees the whole history.
  size_t calls = 0;
  auto my_sampler = [&](std::vector<float>& logits, const gemma2::TokenHistory& h) {
    CHECK(h.size() == ids.size() + calls++);
    return gemma2::argmax(logits);
  };
  o.max_new_tokens = 12;
  auto a = gemma2::generate(demo().model, *kv, history, ids, my_sampler, o);
  REQUIRE(a.ok());
  CHECK(kv->size() == static_cast<int>(history.size()) - 1);  // the last token is pending
  o.max_new_tokens = 18;
  auto b = gemma2::generate(demo().model, *kv, history, {}, my_sampler, o);
  REQUIRE(b.ok());
  CHECK(b->prefill_tokens == 1);
  std::vector<int32_t> joined = a->tokens;
  joined.insert(joined.end(), b->tokens.begin(), b->tokens.end());
  CHECK(joined == whole->tokens);

  gemma2::TokenHistory h2;
  auto bad = gemma2::generate(demo().model, *kv, h2, ids, my_sampler, o);
  CHECK(bad.message().find("history has") != std::string::npos);
  auto out_of_range = gemma2::generate(
      demo().model, *kv, history, {}, [](std::vector<float>&, const gemma2::TokenHistory&) { return 99999; }, o);
  CHECK(out_of_range.message().find("outside the vocabulary") != std::string::npos);
}
