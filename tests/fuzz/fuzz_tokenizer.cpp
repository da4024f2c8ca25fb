// Fuzzes the tokenizer with the repository's Gemma tokenizer
// (tests/data/tokenizer/gemma2_tokenizer.model): the input as text for
// encode and encode_prompt, and as a list of 32-bit ids (valid or not) for
// decode and the streaming decoder.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gemma_tokenizer.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") { fuzz::fail("fuzz_tokenizer", what, detail); }

// The streaming decoder's output for ids.
std::string stream_decode(const gemma2::Tokenizer& tok, const std::vector<int32_t>& ids) {
  gemma2::StreamDecoder stream(tok);
  std::string out;
  for (int32_t id : ids) out += stream.push(id);
  return out + stream.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const gemma2::Tokenizer& tok = fuzz::gemma_tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  auto ids = tok.encode(text);
  auto prompt = tok.encode_prompt(text);
  if (ids.ok() != prompt.ok()) fail("encode and encode_prompt disagree on validity");
  if (ids) {
    if (prompt->size() != ids->size() + 1 || (*prompt)[0] != tok.bos_id()) fail("encode_prompt is not BOS + encode");
    if (gemma2::Status s = tok.check_ids(*ids); !s) fail("encode returned ids outside the vocabulary:", s.message());
    auto decoded = tok.decode(*ids);
    if (!decoded) fail("decode of encoded ids failed:", decoded.message());
    if (stream_decode(tok, *ids) != *decoded) fail("stream decoding differs from decode for encoded text");
  }

  // The same bytes as ids: little-endian int32s, most of them out of range.
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  auto decoded = tok.decode(raw);
  (void)stream_decode(tok, raw);
  // And folded into the vocabulary, which decode must accept.
  for (int32_t& id : raw)
    id = static_cast<int32_t>(static_cast<uint32_t>(id) % static_cast<uint32_t>(tok.vocab_size()));
  auto folded = tok.decode(raw);
  if (!folded) fail("decode refused ids inside the vocabulary:", folded.message());
  if (stream_decode(tok, raw) != *folded) fail("stream decoding differs from decode");
  (void)decoded;
  return 0;
}
