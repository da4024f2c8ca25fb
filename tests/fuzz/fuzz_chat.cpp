// Fuzzes Gemma 2's chat format (format_chat, the turns Chat::send writes)
// and the tokenization of the prompts it makes, with the repository's Gemma
// tokenizer (tests/data/tokenizer/gemma2_tokenizer.model).
//
// Input: a flags byte (bit 0: add_generation_prompt), then messages
// separated by 0x1e, each a role byte (0 system, 1 user, 2 model, modulo 3)
// and its text.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "gemma_tokenizer.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") { fuzz::fail("fuzz_chat", what, detail); }

size_t count(const std::string& s, std::string_view part) {
  size_t n = 0;
  for (size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + part.size())) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool generation_prompt = data[0] & 1;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<gemma2::Message> messages;
  for (size_t from = 0; from < rest.size();) {
    size_t end = rest.find('\x1e', from);
    if (end == std::string_view::npos) end = rest.size();
    const std::string_view m = rest.substr(from, end - from);
    if (!m.empty())
      messages.push_back({static_cast<gemma2::Role>(static_cast<uint8_t>(m[0]) % 3), std::string(m.substr(1))});
    from = end + 1;
  }

  auto text = gemma2::format_chat(messages, generation_prompt);
  if (!text) return 0;
  // Every message's trimmed text is in the prompt, and each turn opens once
  // (plus whatever markers the messages themselves hold).
  size_t turns = 0, in_messages = 0;
  for (const auto& m : messages) {
    if (text->find(gemma2::detail::trim(m.content)) == std::string::npos) fail("a message is missing from the prompt");
    turns += m.role != gemma2::Role::System;
    in_messages += count(m.content, "<start_of_turn>");
  }
  const bool opens_model = generation_prompt && !messages.empty() && messages.back().role == gemma2::Role::User;
  if (count(*text, "<start_of_turn>") != turns + opens_model + in_messages) fail("turn markers miscounted");
  if (opens_model && text->size() < 21) fail("no model turn opened");

  const gemma2::Tokenizer& tok = fuzz::gemma_tokenizer();
  auto ids = tok.encode_prompt(*text);
  if (!ids) return 0;  // text that is not valid UTF-8
  if (gemma2::Status s = tok.check_ids(*ids); !s) fail("encode returned ids outside the vocabulary:", s.message());
  auto decoded = tok.decode(*ids);
  if (!decoded) fail("decode of the prompt failed:", decoded.message());
  gemma2::StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : *ids) streamed += stream.push(id);
  if (streamed + stream.finish() != *decoded) fail("stream decoding differs from decode");
  return 0;
}
