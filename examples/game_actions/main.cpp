// A game loop that asks the model for each NPC's next action as JSON and
// applies it. The JSON Schema lists the actions and the entities that exist
// this turn, so every reply parses and names a real target: no retry loop,
// no "the model said something else" branch. Usage: game_actions [MODEL_DIR]
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;

struct Npc {
  std::string name;
  int hp;
};

// The schema of one action, naming the NPCs alive now.
std::string action_schema(const std::map<std::string, Npc>& npcs) {
  nlohmann::ordered_json names = nlohmann::ordered_json::array();
  for (const auto& [name, npc] : npcs) names.push_back(name);
  nlohmann::ordered_json schema = {{"type", "object"},
                                   {"properties",
                                    {{"action", {{"enum", {"attack", "heal", "talk", "wait"}}}},
                                     {"target", {{"enum", names}}},
                                     {"amount", {{"type", "integer"}}},
                                     {"say", {{"type", "string"}, {"maxLength", 40}}}}},
                                   {"required", {"action", "target"}},
                                   {"additionalProperties", false}};
  return schema.dump();
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return std::fprintf(stderr, "%s%s\n", model.message().c_str(), tok.message().c_str()), 1;
  const auto vocab = gemma2::TokenTrie::build(*tok);  // once per tokenizer

  std::map<std::string, Npc> npcs = {
      {"goblin", {"goblin", 12}}, {"troll", {"troll", 30}}, {"merchant", {"merchant", 8}}};
  gemma2::SamplingParams params;
  params.temperature = 0.9f;
  params.seed = 42;
  gemma2::Sampler sampler(params);  // one sampler for the whole game: its random stream goes on
  int applied = 0;
  for (int turn = 1; turn <= 4; ++turn) {
    auto grammar = gemma2::json_schema_grammar(action_schema(npcs));
    if (!grammar) return std::fprintf(stderr, "%s\n", grammar.message().c_str()), 1;
    auto constraint = gemma2::GrammarConstraint::create(*grammar, vocab);
    if (!constraint) return std::fprintf(stderr, "%s\n", constraint.message().c_str()), 1;
    constexpr int kMaxTokens = 48;
    // The reply is complete JSON within 48 tokens.
    if (auto s = constraint->set_budget(kMaxTokens); !s) return std::fprintf(stderr, "%s\n", s.message().c_str()), 1;
    sampler.constrain(std::move(*constraint));

    auto session = gemma2::Session<Model>::create(*model, 256);
    if (!session) return std::fprintf(stderr, "%s\n", session.message().c_str()), 1;
    const std::string prompt = "Turn " + std::to_string(turn) + ". The hero acts:\n";
    gemma2::GenerateOptions options;
    options.max_new_tokens = kMaxTokens;
    options.stop_tokens = gemma2::default_stop_tokens(*tok);
    auto reply = gemma2::generate(*session, tok->encode_prompt(prompt).value(), sampler, options, &*tok);
    if (!reply) return std::fprintf(stderr, "%s\n", reply.message().c_str()), 1;

    // The reply is JSON of the schema: parse it and act.
    const auto action = nlohmann::json::parse(reply->text, nullptr, /*allow_exceptions=*/false);
    if (action.is_discarded()) return std::fprintf(stderr, "turn %d: not JSON: %s\n", turn, reply->text.c_str()), 1;
    const std::string verb = action["action"], target = action["target"];
    const int amount = action.contains("amount") ? action["amount"].get<int>() % 10 : 3;
    Npc& npc = npcs.at(target);  // the schema allows only names that exist
    if (verb == "attack") npc.hp -= std::abs(amount);
    if (verb == "heal") npc.hp += std::abs(amount);
    std::printf("turn %d: %s\n  -> %s %s (hp %d)%s%s\n", turn, reply->text.c_str(), verb.c_str(), target.c_str(),
                npc.hp, action.contains("say") ? ", saying " : "",
                action.contains("say") ? action["say"].dump().c_str() : "");
    if (npc.hp <= 0) {
      std::printf("  %s is defeated\n", target.c_str());
      npcs.erase(target);
    }
    ++applied;
    if (npcs.empty()) break;
  }
  std::printf("%d actions applied\n", applied);
  return applied > 0 ? 0 : 1;
}
