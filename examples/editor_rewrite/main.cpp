// An editor has the model write a passage again: most of the output copies
// spans of the document, so prompt lookup (speculative decoding with guesses
// taken from the text itself) checks several tokens per pass of the model.
// The output is the same as plain greedy decoding; only the number of
// passes changes.
// Usage: editor_rewrite [MODEL_DIR]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;
using Clock = std::chrono::steady_clock;

// The editor's document is a scene the model wrote; asked to write it again
// from the same opening, the model copies most of it, which prompt lookup
// guesses from the document itself.
const char* kOpening = "JULIET:\n";

gemma2::GenerateResult write(const Model& model, const gemma2::Tokenizer& tok, const std::vector<int32_t>& prompt,
                             gemma2::Drafter* drafter, double& seconds) {
  auto kv = model.make_cache(1024).value();
  gemma2::TokenHistory history;
  gemma2::GenerateOptions o;
  o.max_new_tokens = 64;
  o.drafter = drafter;  // null: plain decoding
  const auto t0 = Clock::now();
  auto r = gemma2::generate(model, kv, history, prompt, gemma2::Sampler(), o, &tok);
  seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r ? *r : gemma2::GenerateResult{};
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return std::fprintf(stderr, "cannot load %s\n", dir.c_str()), 1;
  double seconds = 0;
  const std::string scene = kOpening + write(*model, *tok, tok->encode_prompt(kOpening).value(), nullptr, seconds).text;
  const auto prompt = tok->encode_prompt(scene + "\n\n" + kOpening).value();

  double plain_s = 0, lookup_s = 0;
  const auto plain = write(*model, *tok, prompt, nullptr, plain_s);
  gemma2::PromptLookupDrafter lookup(3);
  const auto fast = write(*model, *tok, prompt, &lookup, lookup_s);

  std::printf("%s%s\n", kOpening, fast.text.c_str());
  std::printf("same text as plain decoding: %s\n", fast.tokens == plain.tokens ? "yes" : "NO");
  std::printf(
      "%zu tokens: %d passes of the model with prompt lookup (%.2f tokens per model pass, %d of %d guesses "
      "accepted), %d without; %.1f ms against %.1f ms\n",
      fast.tokens.size(), fast.target_passes, static_cast<double>(fast.tokens.size()) / std::max(fast.target_passes, 1),
      fast.accepted, fast.drafted, plain.target_passes, 1e3 * lookup_s, 1e3 * plain_s);
  return fast.tokens == plain.tokens && !fast.tokens.empty() ? 0 : 1;
}
