// A reply run in slices (a few tokens per call, a time budget per call),
// and saved and restored between slices, is the same reply as one call:
// the same ids, text, streamed pieces and stop reason (docs/ARCHITECTURE.md, "a
// generation is a value"). On the demo model, for every kind of sampler,
// constraint and drafter the library has.
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "seeded_sampling.h"
#include "support.hpp"

namespace {

using Model = test::DemoModel;
using Session = gemma2::Session<Model>;
using Clock = std::chrono::steady_clock;

using test::demo;

gemma2::Sampler constrained(const gemma2::Result<gemma2::Grammar>& grammar, gemma2::SamplingParams p, int budget) {
  REQUIRE_MESSAGE(grammar.ok(), grammar.message());
  auto c = gemma2::GrammarConstraint::create(*grammar, demo().trie);
  REQUIRE_MESSAGE(c.ok(), c.message());
  if (budget > 0) REQUIRE(c->set_budget(budget).ok());
  gemma2::Sampler s(p);
  s.constrain(std::move(*c));
  return s;
}

gemma2::SamplingParams seeded(uint64_t seed) {
  gemma2::SamplingParams p;
  GEMMA2_TEST_SEEDED_SAMPLING(p, seed);
  return p;
}

gemma2::SamplingParams greedy() {
  gemma2::SamplingParams p;
  p.greedy = true;
  return p;
}

// One way of generating: the prompt, the options and fresh copies of the
// sampler and drafter (each run needs its own: their state is the reply's).
struct Scenario {
  std::string name;
  std::vector<int32_t> prompt;
  gemma2::GenerateOptions options;
  std::function<gemma2::Sampler()> sampler;
  std::function<std::unique_ptr<gemma2::Drafter>()> drafter;
};

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;      // Generation::result().text
  std::string streamed;  // what the callback received, call after call
  gemma2::StopReason stop = gemma2::StopReason::MaxTokens;
  gemma2::TokenHistory history;
  int drafted = 0;
  int calls = 0, calls_without_text = 0;
};

// Runs the scenario in calls of at most `slice` tokens (0: one call); with
// save_at >= 0 the session and the reply are saved before that call and
// restored into new objects, which go on.
Outcome run(const Scenario& sc, int slice, int save_at = -1) {
  std::optional<Session> session;
  {
    auto created = Session::create(demo().model, 1024);
    REQUIRE(created.ok());
    session.emplace(std::move(*created));
  }
  gemma2::Sampler sampler = sc.sampler();
  std::unique_ptr<gemma2::Drafter> drafter = sc.drafter ? sc.drafter() : nullptr;
  gemma2::GenerateOptions o = sc.options;
  o.drafter = drafter.get();
  o.call_max_tokens = slice;
  std::optional<gemma2::Generation> g(std::in_place, o, &demo().tok);
  Outcome out;
  auto on_token = [&](int32_t, std::string_view text) {
    out.streamed += text;
    return true;
  };
  for (int call = 0; !g->done(); ++call) {
    REQUIRE(call < 2000);
    if (call == save_at) {
      const std::vector<uint8_t> s = session->save(), r = g->save();
      auto restored = Session::restore(demo().model, s);
      REQUIRE_MESSAGE(restored.ok(), restored.message());
      session.emplace(std::move(*restored));  // the old session is gone
      g.emplace(o, &demo().tok);
      const gemma2::Status st = g->restore(r);
      REQUIRE_MESSAGE(st.ok(), st.message());
    }
    auto r = g->run(*session, call == 0 ? sc.prompt : std::vector<int32_t>{}, sampler, on_token);
    REQUIRE_MESSAGE(r.ok(), r.message());
    ++out.calls;
    out.calls_without_text += r->text.empty();
    if (slice > 0) CHECK(static_cast<int>(r->tokens.size()) <= slice);
    if (!g->done()) CHECK(r->stop == gemma2::StopReason::CallLimit);
    out.tokens.insert(out.tokens.end(), r->tokens.begin(), r->tokens.end());
  }
  CHECK(out.tokens == g->result().tokens);
  out.text = g->result().text;
  out.stop = g->result().stop;
  out.history = session->tokens();
  out.drafted = g->result().drafted;
  return out;
}

void check_same(const Outcome& whole, const Outcome& part) {
  CHECK(part.tokens == whole.tokens);
  CHECK(part.text == whole.text);
  CHECK(part.streamed == whole.streamed);
  CHECK(part.stop == whole.stop);
  CHECK(part.history == whole.history);
}

// Where the unsliced text of `sc` crosses from one token to the next in
// the middle of the reply, a string spanning that boundary: a stop string
// that sliced calls must see across their edges.
std::string stop_across_tokens(const Scenario& sc) {
  auto session = Session::create(demo().model, 1024);
  REQUIRE(session.ok());
  gemma2::Sampler sampler = sc.sampler();
  gemma2::Generation g(sc.options, &demo().tok);
  std::vector<std::string> pieces;
  REQUIRE(g.run(*session, sc.prompt, sampler, [&](int32_t, std::string_view t) {
             pieces.emplace_back(t);
             return true;
           }).ok());
  for (size_t i = pieces.size() / 2; i + 1 < pieces.size(); ++i)
    if (pieces[i].size() >= 2 && !pieces[i + 1].empty())
      return pieces[i].substr(pieces[i].size() - 2) + pieces[i + 1].substr(0, 1);
  FAIL("no token boundary with text on both sides");
  return {};
}

std::vector<Scenario> scenarios() {
  const test::Demo& d = demo();
  std::vector<Scenario> all;
  gemma2::GenerateOptions o;
  o.max_new_tokens = 40;
  o.stop_tokens = gemma2::default_stop_tokens(d.tok);
  all.push_back(
      {"sampling with penalties", test::demo_prompt("ROMEO:\n"), o, [] { return gemma2::Sampler(seeded(7)); }, {}});
  all.push_back({"greedy", test::demo_prompt("JULIET:\n"), o, [] { return gemma2::Sampler(greedy()); }, {}});
  // Characters the demo vocabulary spells byte by byte: a slice that ends
  // inside one must carry its bytes over (it used to print U+FFFD).
  all.push_back({"grammar of byte-spelled characters",
                 test::demo_prompt("KING:\n"),
                 o,
                 [] { return constrained(gemma2::Grammar::parse("root ::= \"Ünïcødé ✓ 日本\""), seeded(3), 0); },
                 {}});
  all.push_back({"JSON Schema with a budget",
                 test::demo_prompt("NURSE:\n"),
                 o,
                 [] {
                   return constrained(gemma2::json_schema_grammar(
                                          R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},)"
                                          R"("age":{"type":"integer"}},"required":["name","age"]})"),
                                      seeded(11), 30);
                 },
                 {}});
  Scenario stops{
      "stop string across slices", test::demo_prompt("ROMEO:\n"), o, [] { return gemma2::Sampler(seeded(5)); }, {}};
  stops.options.stop_strings = {stop_across_tokens(stops)};
  all.push_back(stops);
  const std::string passage =
      "ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n";
  all.push_back({"prompt lookup", test::demo_prompt(passage + passage + "ROMEO:\nBut soft,"), o,
                 [] { return gemma2::Sampler(greedy()); },
                 [] { return std::make_unique<gemma2::PromptLookupDrafter>(3); }});
  all.push_back({"draft model", test::demo_prompt("MERCUTIO:\n"), o, [] { return gemma2::Sampler(seeded(13)); },
                 [] {
                   auto m = gemma2::ModelDrafter<Model>::create(demo().model);
                   REQUIRE(m.ok());
                   return std::unique_ptr<gemma2::Drafter>(
                       std::make_unique<gemma2::ModelDrafter<Model>>(std::move(*m)));
                 }});
  return all;
}

}  // namespace

TEST_CASE("frame loop: a reply sliced into calls of 1, 2, 3 and 7 tokens is the reply of one call") {
  for (const Scenario& sc : scenarios()) {
    INFO(sc.name);
    const Outcome whole = run(sc, 0);
    CHECK(whole.calls == 1);
    CHECK(!whole.tokens.empty());
    if (sc.drafter) CHECK(whole.drafted > 0);
    for (int slice : {1, 2, 3, 7}) {
      INFO("slice ", slice);
      check_same(whole, run(sc, slice));
    }
  }
}

TEST_CASE("frame loop: saved and restored between two slices, the reply goes on unchanged") {
  for (const Scenario& sc : scenarios()) {
    INFO(sc.name);
    const Outcome whole = run(sc, 0);
    for (int slice : {1, 3}) {
      for (int save_at : {1, 4}) {
        INFO("slice ", slice, ", saved before call ", save_at);
        check_same(whole, run(sc, slice, save_at));
      }
    }
  }
}

TEST_CASE("frame loop: the characters a slice cuts in two come out whole, with the stop reasons of one call") {
  const Scenario grammar = scenarios()[2];
  const Outcome whole = run(grammar, 0), one = run(grammar, 1);
  CHECK(whole.text == "Ünïcødé ✓ 日本");
  CHECK(whole.stop == gemma2::StopReason::Complete);
  CHECK(one.calls_without_text > 0);  // some calls ended inside a character
  check_same(whole, one);

  const Scenario stops = scenarios()[4];
  const Outcome stopped = run(stops, 0);
  CHECK(stopped.stop == gemma2::StopReason::StopString);
  CHECK(!test::contains(stopped.text, stops.options.stop_strings[0]));
  CHECK(!test::contains(run(stops, 1).streamed, stops.options.stop_strings[0]));
}

TEST_CASE("frame loop: a finished reply and a finished grammar are refused, input only before the first token") {
  auto session = Session::create(demo().model, 256);
  REQUIRE(session.ok());
  gemma2::Sampler sampler = constrained(gemma2::Grammar::parse("root ::= \"ab\""), greedy(), 0);
  gemma2::Generation g({}, &demo().tok);
  auto r = g.run(*session, test::demo_prompt("ROMEO:\n"), sampler);
  REQUIRE(r.ok());
  CHECK(g.done());
  CHECK(r->stop == gemma2::StopReason::Complete);
  const auto again = g.run(*session, {}, sampler);
  REQUIRE(!again.ok());
  CHECK(test::contains(again.message(), "reply is over (complete)"));
  gemma2::Generation next({}, &demo().tok);
  const size_t before = session->tokens().size();
  const auto finished = next.run(*session, {}, sampler);
  REQUIRE(!finished.ok());
  CHECK(test::contains(finished.message(), "sampler has finished"));
  CHECK(session->tokens().size() == before);

  gemma2::Sampler free_sampler(greedy());
  gemma2::GenerateOptions o;
  o.call_max_tokens = 1;
  gemma2::Generation sliced(o, &demo().tok);
  REQUIRE(sliced.run(*session, test::demo_prompt("KING:\n"), free_sampler).ok());
  const auto late = sliced.run(*session, test::demo_prompt("more"), free_sampler);
  REQUIRE(!late.ok());
  CHECK(test::contains(late.message(), "input goes before its first token"));
  for (auto bad : {-1, demo().model.config().vocab_size}) {
    gemma2::Generation fresh({}, &demo().tok);
    const size_t n = session->tokens().size();
    const auto out = fresh.run(*session, {5, bad}, free_sampler);
    REQUIRE(!out.ok());
    CHECK(test::contains(out.message(), "token id " + std::to_string(bad) + " at index 1"));
    CHECK(session->tokens().size() == n);
  }
  gemma2::GenerateOptions bad_options;
  bad_options.time_budget_ms = -1;
  gemma2::Generation negative(bad_options, &demo().tok);
  CHECK(test::contains(negative.run(*session, test::demo_prompt("x"), free_sampler).message(), "time_budget_ms"));
}

TEST_CASE("frame loop: a fed session, saved and restored, generates what the unsaved one does") {
  const auto prompt = test::demo_prompt("ROMEO:\nWhat say you, friar?");
  auto a = Session::create(demo().model, 512);
  REQUIRE(a.ok());
  REQUIRE(a->feed(prompt).ok());
  REQUIRE(a->next_logits() != nullptr);
  auto b = Session::restore(demo().model, a->save());
  REQUIRE_MESSAGE(b.ok(), b.message());
  REQUIRE(b->next_logits() != nullptr);
  CHECK(*b->next_logits() == *a->next_logits());
  gemma2::GenerateOptions o;
  o.max_new_tokens = 24;
  gemma2::Sampler sa(seeded(21)), sb(seeded(21));
  auto ra = gemma2::generate(*a, {}, sa, o, &demo().tok);
  auto rb = gemma2::generate(*b, {}, sb, o, &demo().tok);
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(ra->tokens == rb->tokens);
  CHECK(ra->text == rb->text);
  CHECK(a->next_logits() == nullptr);  // a sampled token is pending now
  // A reply blob is checked as a session blob is.
  gemma2::Generation g({}, &demo().tok);
  std::vector<uint8_t> blob = g.save();
  blob[blob.size() / 2] ^= 1;
  CHECK(test::contains(gemma2::Generation({}, &demo().tok).restore(blob).message(), "checksum"));
  CHECK(test::contains(gemma2::Generation({}, nullptr).restore(g.save()).message(), "tokenizer"));
  CHECK(test::contains(gemma2::Generation({}, &demo().tok).restore(blob.data(), 10).message(), "bad magic"));
}

TEST_CASE("frame loop: a long prompt prefilled over many calls gives the logits of one call") {
  std::vector<int32_t> prompt = test::demo_prompt("");
  const std::string text = test::read_text(GEMMA2_QUALITY_TEXT);
  const auto ids = demo().tok.encode(text).value();
  REQUIRE(!ids.empty());
  while (prompt.size() < 2000) prompt.push_back(ids[prompt.size() % ids.size()]);
  gemma2::GenerateOptions o;
  o.max_new_tokens = 0;  // prefill only: the logits stay in the session
  o.prefill_chunk = 64;
  auto one = Session::create(demo().model, 2048);
  REQUIRE(one.ok());
  gemma2::Sampler s;
  gemma2::Generation whole(o, &demo().tok);
  REQUIRE(whole.run(*one, prompt, s).ok());
  REQUIRE(one->next_logits() != nullptr);

  // A budget far below a chunk's time: every call runs one chunk.
  o.time_budget_ms = 1e-3;
  auto many = Session::create(demo().model, 2048);
  REQUIRE(many.ok());
  gemma2::Generation sliced(o, &demo().tok);
  int calls = 0;
  for (; !sliced.done(); ++calls) {
    auto r = sliced.run(*many, calls == 0 ? prompt : std::vector<int32_t>{}, s);
    REQUIRE_MESSAGE(r.ok(), r.message());
    CHECK(r->prefill_tokens == std::min(64, static_cast<int>(prompt.size()) - 64 * calls));
    if (!sliced.done()) CHECK(r->stop == gemma2::StopReason::TimeBudget);
  }
  CHECK(calls == (static_cast<int>(prompt.size()) + 63) / 64);
  REQUIRE(many->next_logits() != nullptr);
  CHECK(*many->next_logits() == *one->next_logits());
}

TEST_CASE("frame loop: calls keep their time budget to within one step") {
  const Scenario sc = scenarios()[0];
  gemma2::GenerateOptions o = sc.options;
  o.max_new_tokens = 60;
  o.stop_tokens.clear();
  // One step's time, the longest of a one-token-per-call run.
  double step = 0;
  {
    auto session = Session::create(demo().model, 512);
    REQUIRE(session.ok());
    gemma2::Sampler s = sc.sampler();
    gemma2::GenerateOptions one = o;
    one.call_max_tokens = 1;
    gemma2::Generation g(one, &demo().tok);
    for (int call = 0; !g.done(); ++call) {
      const auto t0 = Clock::now();
      REQUIRE(g.run(*session, call == 0 ? sc.prompt : std::vector<int32_t>{}, s).ok());
      if (call > 0) step = std::max(step, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
  }
  o.time_budget_ms = 4 * step;
  auto session = Session::create(demo().model, 512);
  REQUIRE(session.ok());
  gemma2::Sampler s = sc.sampler();
  gemma2::Generation g(o, &demo().tok);
  int paused = 0;
  for (int call = 0; !g.done(); ++call) {
    const auto t0 = Clock::now();
    auto r = g.run(*session, call == 0 ? sc.prompt : std::vector<int32_t>{}, s);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    REQUIRE(r.ok());
    CHECK(!r->tokens.empty());  // every call makes progress
    if (!g.done()) {
      CHECK(r->stop == gemma2::StopReason::TimeBudget);
      ++paused;
    }
    // The budget plus one step, with room for a machine that stalls a
    // thread now and then (2 cores, shared).
    CHECK_MESSAGE(ms <= o.time_budget_ms + 3 * step + 25, "call ", call, ": ", ms, " ms, step ", step, " ms");
  }
  CHECK(paused > 0);
  CHECK(g.result().tokens.size() == 60);
}
