// The flags of generate and chat beyond the model's: sampling, constrained
// output and speculative decoding, each turned into the library's objects.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "options.hpp"

namespace gemma2_cli {

// Sampling flags shared by generate and chat.
struct SamplingFlags {
  gemma2::SamplingParams p;
  std::optional<uint64_t> seed;
  std::vector<std::string> bias;  // "ID=VALUE"

  SamplingFlags();
  void add_to(CLI::App* cmd);
  // The sampler, or an error message.
  std::optional<gemma2::Sampler> make(std::string& error);
  // A --logit-bias id past the model's vocabulary (the sampler would ignore it).
  std::optional<std::string> bias_outside(int vocab) const;
};

// --grammar-file / --json-schema / --json-whitespace: constrained output
// (generate and chat).
struct GrammarFlags {
  std::string grammar_file, json_schema, json_whitespace = "compact";

  void add_to(CLI::App* cmd);
  bool given() const { return !grammar_file.empty() || !json_schema.empty(); }
  // The grammar named by the flags, or an error message.
  gemma2::Result<gemma2::Grammar> grammar() const;
};

// The sampler of the sampling flags and the grammar of the grammar flags
// (none without them), or nullopt after reporting an error: what generate
// and chat check before loading a model.
struct Decoding {
  gemma2::Sampler sampler;
  std::optional<gemma2::Grammar> grammar;
};
std::optional<Decoding> make_decoding(SamplingFlags& sf, const GrammarFlags& gf);

// A constraint for one reply of at most max_new tokens: it ends complete.
gemma2::Result<gemma2::GrammarConstraint> reply_constraint(const gemma2::Grammar& grammar,
                                                           const std::shared_ptr<const gemma2::TokenTrie>& vocab,
                                                           int max_new);

// --draft-model / --lookup / --draft-max: speculative decoding (generate
// and chat). The output is that of plain decoding; only the speed changes.
struct SpeculativeFlags {
  std::string draft_model;
  int lookup = 0;  // not given (the flag takes N >= 1)
  int draft_max = gemma2::kMaxDraft;

  void add_to(CLI::App* cmd);
  // The drafter (and the draft model it runs), or an error already reported.
  struct Made {
    std::unique_ptr<Loaded> draft;  // where the drafter's session and pool point: it must not move
    std::unique_ptr<gemma2::Drafter> drafter;
  };
  std::optional<Made> make(const ModelOptions& target, const Model& target_model, int capacity) const;
};

// The speed line of a reply on stderr (with the drafting counts when speculative).
void print_speed(const gemma2::GenerateResult& r, bool speculative);

}  // namespace gemma2_cli
