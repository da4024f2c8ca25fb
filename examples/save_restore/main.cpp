// Saving a conversation to a file and picking it up later (another run of
// the program, another machine with the same model): the restored session
// continues exactly where the saved one stopped. Usage: save_restore [MODEL_DIR]
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;
using Session = gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>;

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return 1;
  gemma2::GenerateOptions o;
  o.max_new_tokens = 20;

  gemma2::Chat<Model, gemma2::SlidingWindowKVCache<>> chat(Session::create(*model).value(), *tok);
  auto first = chat.send("Good morrow, my lord.", gemma2::Sampler(), o);
  if (!first) return 1;
  std::printf("model: %s\n", first->text.c_str());

  // Save the session (cache + tokens) to a file ...
  const std::vector<uint8_t> blob = chat.session().save();
  const std::string path = "conversation.gemma2session";
  if (auto s = gemma2::write_file(path, blob.data(), blob.size()); !s)
    return std::fprintf(stderr, "%s\n", s.message().c_str()), 1;
  std::printf("saved %zu bytes to %s\n", blob.size(), path.c_str());

  // ... and later read it back into a new chat, which continues the conversation.
  // read_file refuses what is not a regular file (a directory, a FIFO, a
  // device) and anything larger than a blob of this model can be.
  auto bytes = gemma2::read_file(path, Session::max_saved_bytes(*model));
  if (!bytes) return std::fprintf(stderr, "%s\n", bytes.message().c_str()), 1;
  auto restored = Session::restore(*model, std::vector<uint8_t>(bytes->begin(), bytes->end()));
  if (!restored) return std::fprintf(stderr, "%s\n", restored.message().c_str()), 1;
  gemma2::Chat<Model, gemma2::SlidingWindowKVCache<>> resumed(std::move(*restored), *tok);
  auto a = chat.send("What news?", gemma2::Sampler(), o);
  auto b = resumed.send("What news?", gemma2::Sampler(), o);
  if (!a || !b) return 1;
  std::printf("original: %s\nrestored: %s\n", a->text.c_str(), b->text.c_str());
  std::remove(path.c_str());
  return a->tokens == b->tokens ? 0 : 1;
}
