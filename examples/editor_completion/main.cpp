// Editor-style completion: the document changes between requests, and each
// request reuses the cache for the part of the document that did not
// change (rollback to the common prefix), computing only the rest.
// Usage: editor_completion [MODEL_DIR]
#include <cstdio>
#include <string>
#include <vector>

#include <gemma2/gemma2.hpp>

using Model = gemma2::Gemma2Model<>;
using Session = gemma2::Session<Model, gemma2::SlidingWindowKVCache<>>;

// Completes the document up to the end of its line, reusing what `session`
// already holds. Reports how many positions were reused and computed.
std::string complete(Session& session, const gemma2::Tokenizer& tok, const std::string& document) {
  const std::vector<int32_t> ids = tok.encode_prompt(document).value();
  size_t common = 0;
  const auto& had = session.tokens();
  while (common < ids.size() && common < had.size() && had[common] == ids[common]) ++common;
  const int cached_before = session.position();
  if (!session.rollback(common).ok()) return "";
  const int reused = std::min(session.position(), cached_before);

  gemma2::GenerateOptions o;
  o.max_new_tokens = 24;
  o.stop_strings = {"\n"};
  auto r = gemma2::generate(session, std::vector<int32_t>(ids.begin() + static_cast<long>(common), ids.end()),
                            gemma2::Sampler(), o, &tok);
  if (!r) return "";
  std::printf("reused %d positions, computed %d\n", reused, r->prefill_tokens);
  // Drop the completion from the session: the next request starts from the document.
  if (!session.rollback(ids.size()).ok()) return "";
  return r->text;
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return 1;
  auto session = Session::create(*model, 1024).value();

  std::string doc =
      "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;\n";
  std::printf("[1] ...%s\n", complete(session, *tok, doc + "And all the clouds").c_str());
  std::printf("[2] ...%s\n", complete(session, *tok, doc + "And all the clouds that lour'd").c_str());
  std::printf("[3] ...%s\n", complete(session, *tok, doc + "But I").c_str());
  return 0;
}
