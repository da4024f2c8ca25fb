// Fuzzes parse_gguf and, for files that parse, the rest of loading a GGUF
// model: the config and tensors of gguf_checkpoint, binding them into a
// model (and a token through it), and the tokenizer built from the
// metadata (gguf_sentencepiece_proto, then encode and decode).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gemma2/io/gguf.hpp>

#include "tiny.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_gguf: %s %s\n", what, detail.c_str());
  std::abort();
}

void load_model(const gemma2::GgufFile& g) {
  auto ck = gemma2::gguf_checkpoint(g);
  if (!ck) return;
  if (gemma2::Status s = gemma2::validate(ck->config); !s)
    fail("gguf_checkpoint returned an invalid config:", s.message());
  auto model = gemma2::Gemma2Model<>::from_checkpoint(std::move(*ck));
  if (!model) return;
  // A context of one position is a valid model too.
  auto cache = model->make_cache(std::min(2, model->config().max_position_embeddings));
  if (!cache) fail("no cache for a loaded model:", cache.message());
  const std::vector<int32_t> ids = {0};
  if (auto logits = model->forward(ids, *cache); !logits) fail("forward failed:", logits.message());
}

void load_tokenizer(const gemma2::GgufFile& g) {
  auto proto = gemma2::gguf_sentencepiece_proto(g);
  if (!proto) return;
  auto tok = gemma2::Tokenizer::from_serialized(*proto, g.file->path());
  if (!tok) return;
  auto ids = tok->encode_prompt("Hello world, <start_of_turn>user\n\xC3\xA9t\xC3\xA9 123\n");
  if (!ids) return;
  auto text = tok->decode(*ids);
  if (!text) fail("decode of encoded ids failed:", text.message());
  gemma2::StreamDecoder stream(*tok);
  for (int32_t id : *ids) (void)stream.push(id);
  (void)stream.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = gemma2::parse_gguf(gemma2::detail::MappedFile::from_bytes("fuzz.gguf", fuzz::bytes_of(data, size)));
  if (!g) return 0;
  load_model(*g);
  load_tokenizer(*g);
  return 0;
}
