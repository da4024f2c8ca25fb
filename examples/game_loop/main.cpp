// A game loop in which three NPCs think without ever blocking a frame: each
// frame gives each NPC's reply one call of its Generation under a time
// budget (a prompt chunk or a few tokens), then goes on rendering. One NPC
// answers under a JSON Schema. Halfway, the game is saved (sessions and
// replies mid-sentence) and loaded into new objects, which go on. The
// replies are then checked against the same replies generated in one call
// each: slicing, saving and loading change nothing.
// Usage: game_loop [MODEL_DIR]
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;
using Session = gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>;
using Clock = std::chrono::steady_clock;

// One NPC: its context (session), its reply in progress, its sampler.
struct Npc {
  std::string name;
  std::vector<int32_t> prompt;
  Session session;
  gemma2::Sampler sampler;
  gemma2::Generation reply;
  std::string shown;  // the text so far, as the game would draw it
};

gemma2::GenerateOptions reply_options(const gemma2::Tokenizer& tok, double budget_ms) {
  gemma2::GenerateOptions o;
  o.max_new_tokens = 40;
  o.stop_tokens = gemma2::default_stop_tokens(tok);
  o.stop_strings = {"\n\n"};  // an NPC says one paragraph
  o.prefill_chunk = 8;        // a chunk fits a frame
  o.time_budget_ms = budget_ms;
  return o;
}

std::unique_ptr<Npc> make_npc(const Model& model, const gemma2::Tokenizer& tok, const std::string& name,
                              const std::string& prompt, gemma2::Sampler sampler, double budget_ms) {
  auto session = Session::create(model, 512);
  if (!session) return nullptr;
  return std::make_unique<Npc>(Npc{name,
                                   tok.encode_prompt(prompt).value(),
                                   std::move(*session),
                                   std::move(sampler),
                                   gemma2::Generation(reply_options(tok, budget_ms), &tok),
                                   {}});
}

std::vector<std::unique_ptr<Npc>> make_npcs(const Model& model, const gemma2::Tokenizer& tok, double budget_ms) {
  gemma2::SamplingParams warm;
  warm.temperature = 0.8f;
  warm.top_k = 40;
  warm.repetition_penalty = 1.1f;
  warm.seed = 42;
  gemma2::Sampler action(warm);  // the guard answers with an action the game parses
  auto schema = gemma2::json_schema_grammar(
      R"({"type":"object","properties":{"action":{"enum":["attack","wait","flee"]},"target":{"type":"string","maxLength":10}},)"
      R"("required":["action","target"]})");
  auto constraint = gemma2::GrammarConstraint::create(schema.value(), gemma2::TokenTrie::build(tok));
  action.constrain(std::move(constraint.value()));
  std::vector<std::unique_ptr<Npc>> npcs;
  npcs.push_back(make_npc(model, tok, "FIRST CITIZEN", "FIRST CITIZEN:\nWhat say you of the king?\n\nSECOND CITIZEN:\n",
                          gemma2::Sampler(warm), budget_ms));
  npcs.push_back(
      make_npc(model, tok, "NURSE", "JULIET:\nWhere is my lord?\n\nNURSE:\n", gemma2::Sampler(warm), budget_ms));
  npcs.push_back(make_npc(model, tok, "GUARD", "GUARD:\n", std::move(action), budget_ms));
  return npcs;
}

// Saves every NPC's session and reply, as a save file would hold them, and
// loads them into new NPCs (the samplers, the host's state, carry over).
std::vector<std::unique_ptr<Npc>> save_and_load(std::vector<std::unique_ptr<Npc>> npcs, const Model& model,
                                                const gemma2::Tokenizer& tok, double budget_ms) {
  std::vector<std::unique_ptr<Npc>> loaded;
  for (auto& npc : npcs) {
    const std::vector<uint8_t> session_bytes = npc->session.save(), reply_bytes = npc->reply.save();
    auto session = Session::restore(model, session_bytes);
    gemma2::Generation reply(reply_options(tok, budget_ms), &tok);
    if (!session || !reply.restore(reply_bytes)) return {};
    loaded.push_back(std::make_unique<Npc>(
        Npc{npc->name, npc->prompt, std::move(*session), std::move(npc->sampler), std::move(reply), npc->shown}));
  }
  return loaded;
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return std::fprintf(stderr, "%s%s\n", model.message().c_str(), tok.message().c_str()), 1;

  constexpr double kBudgetMs = 2.0;  // each NPC's share of a frame
  auto npcs = make_npcs(*model, *tok, kBudgetMs);
  double worst_ms = 0;
  int frames = 0;
  bool saved = false;
  for (bool thinking = true; thinking; ++frames) {
    thinking = false;
    for (auto& npc : npcs) {
      if (npc->reply.done()) continue;
      const auto t0 = Clock::now();
      const bool first = npc->session.tokens().empty();  // the prompt goes in with the first call
      auto r = npc->reply.run(npc->session, first ? npc->prompt : std::vector<int32_t>{}, npc->sampler);
      worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!r) return std::fprintf(stderr, "%s: %s\n", npc->name.c_str(), r.message().c_str()), 1;
      npc->shown += r->text;
      thinking = thinking || !npc->reply.done();
    }
    // ... render the frame, run physics, read input ...
    if (frames == 10 && !saved) {  // the player saves and loads mid-sentence
      npcs = save_and_load(std::move(npcs), *model, *tok, kBudgetMs);
      if (npcs.empty()) return std::fprintf(stderr, "save/load failed\n"), 1;
      saved = true;
    }
  }

  // The same replies, each in one call: what slicing must not change.
  auto reference = make_npcs(*model, *tok, 0);
  bool same = true;
  for (size_t i = 0; i < npcs.size(); ++i) {
    Npc& ref = *reference[i];
    auto r = ref.reply.run(ref.session, ref.prompt, ref.sampler);
    if (!r) return std::fprintf(stderr, "%s\n", r.message().c_str()), 1;
    same = same && r->text == npcs[i]->shown && r->tokens == npcs[i]->reply.result().tokens;
    std::printf("%s: %s (%s)\n", npcs[i]->name.c_str(), npcs[i]->shown.c_str(),
                gemma2::stop_reason_name(npcs[i]->reply.result().stop));
  }
  std::printf("%d frames, slowest call %.2f ms, saved and loaded at frame 10; same as one call each: %s\n", frames,
              worst_ms, same ? "yes" : "no");
  return same ? 0 : 1;
}
