// The CLI's commands: each takes the values of its flags (main.cpp adds
// the flags and parses them) and returns the exit code, having reported
// any error on stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "decoding.hpp"
#include "options.hpp"

namespace gemma2_cli {

struct GenerateArgs {
  ModelOptions model;
  SamplingFlags sampling;
  GrammarFlags grammar;
  SpeculativeFlags speculative;
  std::string prompt;
  std::vector<int32_t> ids;
  int max_new = 64;
  std::vector<std::string> stops;
  bool ignore_eos = false, print_ids = false;
};
int run_generate(GenerateArgs& a);  // generate.cpp

struct ChatArgs {
  ModelOptions model;
  SamplingFlags sampling;
  GrammarFlags grammar;
  SpeculativeFlags speculative;
  std::string system;
  int max_new = 256;
  bool verbose = false;
  std::string delimiter;
  int context = 0;  // 0: the model's
  bool context_shift = false;
};
int run_chat(ChatArgs& a);  // generate.cpp

struct TokenizeArgs {
  std::string tokenizer, model, text;
  bool pieces = false;
};
int run_tokenize(const TokenizeArgs& a);  // score.cpp

struct PerplexityArgs {
  ModelOptions model;
  std::vector<int32_t> ids;
  std::string text_file, top_k_out;
  int window = 0, stride = 0, top_k = 10;
  std::string kl_reference;
};
int run_perplexity(PerplexityArgs a);  // score.cpp

struct LogitsArgs {
  ModelOptions model;
  std::vector<int32_t> ids;
  std::string out;
};
int run_logits(const LogitsArgs& a);  // score.cpp

// gemma2 info / --dry-run: the model's config and what it takes in memory,
// from the file headers alone (no weight is read). info.cpp
int run_info(const std::string& model, const gemma2::LoadOptions& lo, int context);

struct BenchArgs {
  std::string preset = "2b", dtype, model, kernels, prefill_precision = "exact", kv_cache = "f32";
  int threads = 1, prompt = 512, gen = 32, depth = -1;  // depth -1: not given
};
// gemma2 bench: a preset's shape with random weights made in memory (or,
// with --model, a model file or directory, e.g. the GGUF another engine
// runs); one JSON line with prefill and decode speed. bench.cpp
int run_bench(BenchArgs a);

}  // namespace gemma2_cli
