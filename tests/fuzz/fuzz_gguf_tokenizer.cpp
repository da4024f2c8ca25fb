// Fuzzes the tokenizer a GGUF file carries in its metadata (tokenizer.ggml.*),
// the path `gemma2 tokenize --model F.gguf` and the text commands take:
// parse_gguf, gguf_sentencepiece_proto, the sentencepiece model it builds,
// then encode, decode and the streaming decoder with that vocabulary.
//
// Input: a GGUF file, optionally followed by kTextSeparator and a text to
// tokenize (else a fixed text with chat markers, bytes and digits).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <gemma2/io/gguf.hpp>

#include "tiny.hpp"

namespace {

constexpr std::string_view kTextSeparator = "\n#text#\n";

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_gguf_tokenizer: %s %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t sep = input.find(kTextSeparator);
  const std::string_view file = input.substr(0, sep);
  const std::string text = sep == std::string_view::npos
                               ? std::string("Hello world, <start_of_turn>user\n\xC3\xA9t\xC3\xA9 123\n")
                               : std::string(input.substr(sep + kTextSeparator.size()));

  auto g = gemma2::parse_gguf(gemma2::detail::MappedFile::from_bytes(
      "fuzz.gguf", fuzz::bytes_of(reinterpret_cast<const uint8_t*>(file.data()), file.size())));
  if (!g) return 0;
  auto proto = gemma2::gguf_sentencepiece_proto(*g);
  if (!proto) return 0;
  auto tok = gemma2::Tokenizer::from_serialized(*proto, "fuzz.gguf");
  if (!tok) return 0;
  for (int32_t id : {tok->bos_id(), tok->eos_id(), tok->start_of_turn_id(), tok->end_of_turn_id()})
    if (id < -1 || id >= tok->vocab_size()) fail("special id outside the vocabulary:", std::to_string(id));

  auto ids = tok->encode(text);
  if (!ids) return 0;
  if (gemma2::Status s = tok->check_ids(*ids); !s) fail("encode returned ids outside the vocabulary:", s.message());
  for (int32_t id : *ids) (void)tok->piece(id), (void)tok->kind(id);
  auto decoded = tok->decode(*ids);
  if (!decoded) fail("decode of encoded ids failed:", decoded.message());
  gemma2::StreamDecoder stream(*tok);
  std::string streamed;
  for (int32_t id : *ids) streamed += stream.push(id);
  streamed += stream.finish();
  if (streamed != *decoded) fail("stream decoding differs from decode");
  auto prompt = tok->encode_prompt(text);
  if (prompt.ok() != (tok->bos_id() >= 0)) fail("encode_prompt succeeds exactly when there is a BOS piece");
  return 0;
}
