// The host program whose compile time scripts/compile-cost.sh measures: what
// an application's one source file using the library typically holds (load
// a model directory, a session over a sliding-window cache, a sampler, a
// generation with a tokenizer). It runs, too: host MODEL_DIR prints a few
// generated tokens of text. It includes the one header it needs;
// scripts/compile-cost.sh also builds it with GEMMA2_HOST_UMBRELLA, which
// includes the whole library instead.
#include <cstdio>
#include <string>

#ifdef GEMMA2_HOST_UMBRELLA
#include <gemma2/gemma2.hpp>
#else
#include <gemma2/generate.hpp>
#endif

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: host MODEL_DIR\n"), 2;
  using Model = gemma2::Gemma2Model<>;
  auto model = Model::load(argv[1]);
  auto tok = gemma2::Tokenizer::from_model_dir(argv[1]);
  if (!model || !tok) return std::fprintf(stderr, "%s%s\n", model.message().c_str(), tok.message().c_str()), 1;
  auto session = gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>::create(*model, 256);
  auto prompt = tok->encode_prompt("ROMEO:\n");
  if (!session || !prompt)
    return std::fprintf(stderr, "%s%s\n", session.message().c_str(), prompt.message().c_str()), 1;
  gemma2::SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 40;
  params.seed = 7;
  gemma2::Sampler sampler(params);
  gemma2::GenerateOptions options;
  options.max_new_tokens = 16;
  options.stop_tokens = gemma2::default_stop_tokens(*tok);
  auto r = gemma2::generate(*session, *prompt, sampler, options, &*tok);
  if (!r) return std::fprintf(stderr, "%s\n", r.message().c_str()), 1;
  std::printf("%s\n%zu tokens (%s)\n", r->text.c_str(), r->tokens.size(), gemma2::stop_reason_name(r->stop));
  return r->tokens.empty() ? 1 : 0;
}
