// Built with -fno-exceptions: the whole public API must compile and work in
// hosts that disable exceptions (errors are values).
#include <cstdio>

#include "gemma2/gemma2.hpp"

int main() {
  using Model = gemma2::Gemma2Model<>;
  auto model = Model::load(GEMMA2_DEMO_MODEL);
  auto tok = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL);
  if (!model || !tok) return std::puts("load failed"), 1;
  auto bad = Model::load("/nonexistent");
  if (bad.ok() || bad.message().empty()) return std::puts("expected an error value"), 1;
  auto session = gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>::create(*model, 128);
  if (!session) return 1;
  gemma2::GenerateOptions o;
  o.max_new_tokens = 8;
  auto r = gemma2::generate(*session, tok->encode_prompt("ROMEO:\n").value(), gemma2::Sampler(), o, &*tok);
  if (!r || r->tokens.size() != 8) return std::puts("generate failed"), 1;
  if (gemma2::Session<Model>::restore(*model, std::vector<uint8_t>{1, 2, 3}).ok()) return 1;
  std::printf("no-exceptions build ok: %s\n", r->text.c_str());
  return 0;
}
