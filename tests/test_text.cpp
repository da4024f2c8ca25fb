// Tokenizer (every reference case), streaming detokenization and the chat
// format.
#include <doctest/doctest.h>

#include "support.hpp"

namespace {

using test::gemma_tokenizer;

std::string stream_decode(const gemma2::Tokenizer& tok, const std::vector<int32_t>& ids) {
  gemma2::StreamDecoder d(tok);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = d.push(id);
    CHECK(gemma2::detail::find_invalid_utf8(piece) == std::string_view::npos);  // never a broken sequence
    out += piece;
  }
  return out + d.finish();
}

}  // namespace

TEST_CASE("tokenizer: every reference case encodes and decodes exactly") {
  const auto& tok = gemma_tokenizer();
  const auto cases = test::read_json(test::data_dir() + "/tokenizer/cases.json");
  CHECK(tok.vocab_size() == 256000);
  CHECK(tok.bos_id() == 2);
  CHECK(tok.eos_id() == 1);
  CHECK(tok.start_of_turn_id() == 106);
  CHECK(tok.end_of_turn_id() == 107);
  REQUIRE(cases["cases"].size() == 32);
  for (const auto& c : cases["cases"]) {
    INFO(c["name"].get<std::string>());
    const auto ids = tok.encode(c["text"].get<std::string>());
    REQUIRE(ids.ok());
    CHECK(*ids == c["ids"].get<std::vector<int32_t>>());
    CHECK(tok.decode(*ids).value() == c["decoded"].get<std::string>());
    CHECK(stream_decode(tok, *ids) == c["decoded"].get<std::string>());
    const auto prompt = tok.encode_prompt(c["text"].get<std::string>());
    CHECK(prompt->front() == 2);
    CHECK(std::count(prompt->begin(), prompt->end(), 2) == 1);  // exactly one BOS
  }
  for (const auto& c : cases["decode_cases"]) {
    INFO(c["name"].get<std::string>());
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    CHECK(tok.decode(ids).value() == c["decoded"].get<std::string>());
    CHECK(stream_decode(tok, ids) == c["decoded"].get<std::string>());
  }
}

TEST_CASE("tokenizer: bad input gives errors") {
  const auto& tok = gemma_tokenizer();
  CHECK(tok.encode("ok \xff\xfe bad").message() == "text is not valid UTF-8 (byte 3)");
  CHECK(tok.encode("\xe4\xb8").message().find("not valid UTF-8") != std::string::npos);  // truncated character
  CHECK(tok.decode({5, 256000}).message().find("token id 256000 at index 1") != std::string::npos);
  CHECK(tok.decode({-1}).message().find("token id -1") != std::string::npos);
  CHECK(tok.encode("").value().empty());
  CHECK(gemma2::Tokenizer::load("/nonexistent/tokenizer.model").message().find("cannot load tokenizer") == 0);
  test::TempDir dir;
  std::ofstream(dir.str() + "/bad.model") << "not a sentencepiece model";
  CHECK_FALSE(gemma2::Tokenizer::load(dir.str() + "/bad.model").ok());
}

TEST_CASE("stream decoding of random byte, control and text pieces equals sentencepiece's decode") {
  const auto& tok = gemma_tokenizer();
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<int32_t> ids;
    const int n = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      switch (rng() % 5) {
        case 0: ids.push_back(217 + static_cast<int32_t>(rng() % 256)); break;        // any byte piece
        case 1: ids.push_back(217 + 0xe4 + static_cast<int32_t>(rng() % 12)); break;  // lead bytes of 3-byte chars
        case 2: ids.push_back(217 + 0x80 + static_cast<int32_t>(rng() % 64)); break;  // continuation bytes
        case 3: ids.push_back(static_cast<int32_t>(rng() % 3)); break;                // <pad>, <eos>, <bos>
        default: ids.push_back(473 + static_cast<int32_t>(rng() % 100000)); break;    // text pieces
      }
    }
    INFO("round ", round);
    CHECK(stream_decode(tok, ids) == tok.decode(ids).value());
  }
}

TEST_CASE("chat format follows the Gemma 2 template") {
  using gemma2::Role;
  auto text = gemma2::format_chat({{Role::User, "Hi"}, {Role::Model, "Hello!"}, {Role::User, " How are you?\n"}});
  REQUIRE(text.ok());
  CHECK(*text ==
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n");
  CHECK(gemma2::format_chat({{Role::System, "Be brief."}, {Role::User, "Hi"}}).value() ==
        "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
  CHECK(gemma2::format_chat({{Role::User, "Hi"}}, false).value() == "<start_of_turn>user\nHi<end_of_turn>\n");
  CHECK(gemma2::format_chat({{Role::Model, "Hi"}}).message().find("should be a user turn") != std::string::npos);
  CHECK(gemma2::format_chat({{Role::User, "a"}, {Role::User, "b"}}).message().find("must alternate") !=
        std::string::npos);
  CHECK(gemma2::format_chat({{Role::User, "a"}, {Role::System, "b"}}).message().find("only come first") !=
        std::string::npos);
  // The chat markers are single tokens.
  const auto ids = gemma_tokenizer().encode_prompt(*text);
  REQUIRE(ids.ok());
  CHECK(std::vector<int32_t>(ids->begin(), ids->begin() + 3) == std::vector<int32_t>{2, 106, 1645});
  CHECK(std::count(ids->begin(), ids->end(), 106) == 4);
  CHECK(std::count(ids->begin(), ids->end(), 107) == 3);
}
