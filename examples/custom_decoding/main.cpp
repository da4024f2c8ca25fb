// A decoding loop written by hand on the public pieces: the model, a KV cache
// you own, the tokenizer and a streaming detokenizer. The sampler here is
// our own (typical-ish: sample among tokens within 2 nats of the best one,
// with a seeded std::mt19937), and so is the stop rule (stop after the second
// line break). Usage: custom_decoding [MODEL_DIR] [PROMPT]
#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  const std::string prompt = argc > 2 ? argv[2] : "JULIET:\n";

  auto model = gemma2::Gemma2Model<>::load(dir);
  if (!model) return std::cerr << model.message() << "\n", 1;
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!tok) return std::cerr << tok.message() << "\n", 1;
  auto cache = model->make_cache();
  auto ids = tok->encode_prompt(prompt);
  if (!cache || !ids) return 1;

  // Our sampler: keep tokens whose logit is within 2 of the best, draw
  // proportionally to exp(logit).
  std::mt19937 rng(1234);
  auto sample = [&](const float* logits, int n) {
    const float best = *std::max_element(logits, logits + n);
    std::vector<double> weight(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
      weight[static_cast<size_t>(i)] = logits[i] >= best - 2.0f ? std::exp(logits[i] - best) : 0.0;
    return static_cast<int32_t>(std::discrete_distribution<int>(weight.begin(), weight.end())(rng));
  };

  gemma2::StreamDecoder text(*tok);
  std::cout << prompt;
  std::vector<int32_t> step = *ids;  // first the prompt, then one token at a time
  int line_breaks = 0;
  for (int generated = 0; generated < 200; ++generated) {
    auto logits = model->forward(step, *cache);
    if (!logits) return std::cerr << logits.message() << "\n", 1;
    const int32_t next = sample(logits->data(), static_cast<int>(logits->cols()));
    if (next == tok->eos_id()) break;
    const std::string piece = text.push(next);
    std::cout << piece << std::flush;
    line_breaks += static_cast<int>(std::count(piece.begin(), piece.end(), '\n'));
    if (line_breaks >= 2 || cache->size() == cache->capacity()) break;  // our stop rule
    step = {next};
  }
  std::cout << text.finish() << "\n";
  std::cerr << "[" << cache->size() << " positions in the cache]\n";
}
