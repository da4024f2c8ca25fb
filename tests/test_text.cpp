// Tokenizer (every reference case), streaming detokenization, chat format
// and samplers.
#include <doctest/doctest.h>

#include "support.hpp"

namespace {

const gemma2::Tokenizer& gemma_tokenizer() {
  static const gemma2::Tokenizer tok = [] {
    auto t = gemma2::Tokenizer::load(test::data_dir() + "/tokenizer/gemma2_tokenizer.model");
    REQUIRE_MESSAGE(t.ok(), t.message());
    return *t;
  }();
  return tok;
}

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
        case 0: ids.push_back(217 + static_cast<int32_t>(rng() % 256)); break;       // any byte piece
        case 1: ids.push_back(217 + 0xe4 + static_cast<int32_t>(rng() % 12)); break;  // lead bytes of 3-byte chars
        case 2: ids.push_back(217 + 0x80 + static_cast<int32_t>(rng() % 64)); break;  // continuation bytes
        case 3: ids.push_back(static_cast<int32_t>(rng() % 3)); break;                // <pad>, <eos>, <bos>
        default: ids.push_back(473 + static_cast<int32_t>(rng() % 100000)); break;     // text pieces
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

TEST_CASE("samplers") {
  const std::vector<float> base = {1.0f, 3.0f, 2.0f, -1.0f, 2.5f, 0.0f};
  const gemma2::TokenHistory none;
  auto run = [&](gemma2::LogitProcessor p, gemma2::TokenHistory h = {}) {
    std::vector<float> l = base;
    p(l, h);
    return l;
  };
  SUBCASE("greedy picks the argmax") {
    gemma2::Sampler greedy;
    std::vector<float> l = base;
    CHECK(greedy(l, none) == 1);
    gemma2::SamplingParams p;
    p.temperature = 0;
    l = base;
    CHECK(gemma2::Sampler(p)(l, none) == 1);
  }
  SUBCASE("top-k keeps exactly k, ties included") {
    auto l = run(gemma2::processors::top_k(2));
    CHECK(std::isfinite(l[1]));
    CHECK(std::isfinite(l[4]));
    CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 2);
    std::vector<float> tie = {1, 1, 1, 1};
    gemma2::processors::top_k(2)(tie, none);
    CHECK(std::count_if(tie.begin(), tie.end(), [](float x) { return std::isfinite(x); }) == 2);
  }
  SUBCASE("top-p keeps the smallest nucleus") {
    // probabilities of base: the top two (3.0, 2.5) hold 0.738; with 2.0, 0.907.
    auto l = run(gemma2::processors::top_p(0.6f));
    CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 2);
    l = run(gemma2::processors::top_p(0.75f));
    CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 3);
    l = run(gemma2::processors::top_p(0.01f));
    CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 1);
  }
  SUBCASE("min-p drops tokens below min_p x the top probability") {
    auto l = run(gemma2::processors::min_p(std::exp(-1.0f) - 1e-4f));  // keeps logits >= 2.0
    CHECK(l == std::vector<float>{-INFINITY, 3.0f, 2.0f, -INFINITY, 2.5f, -INFINITY});
  }
  SUBCASE("penalties") {
    auto l = run(gemma2::processors::penalties(2.0f, 0.0f, 0.0f), {1, 3, 1});
    CHECK(l[1] == 1.5f);   // positive: divided
    CHECK(l[3] == -2.0f);  // negative: multiplied
    CHECK(l[2] == 2.0f);
    l = run(gemma2::processors::penalties(1.0f, 0.5f, 0.25f), {1, 3, 1});
    CHECK(l[1] == doctest::Approx(3.0 - 1.0 - 0.25));
    CHECK(l[3] == doctest::Approx(-1.0 - 0.5 - 0.25));
    l = run(gemma2::processors::penalties(1.0f, 1.0f, 0.0f, 1), {1, 3, 1});  // only the last token counts
    CHECK(l[1] == 2.0f);
    CHECK(l[3] == -1.0f);
  }
  SUBCASE("logit bias can ban or force a token") {
    gemma2::SamplingParams p;
    p.greedy = true;
    p.logit_bias = {{1, -INFINITY}, {5, 10.0f}};
    std::vector<float> l = base;
    CHECK(gemma2::Sampler(p)(l, none) == 5);
  }
  SUBCASE("the same seed gives the same draws; the draw follows the distribution") {
    gemma2::SamplingParams p;
    p.seed = 42;
    gemma2::Sampler a(p), b(p);
    std::vector<int> counts(base.size(), 0);
    std::vector<int32_t> seq_a, seq_b;
    for (int i = 0; i < 20000; ++i) {
      std::vector<float> la = base, lb = base;
      seq_a.push_back(a(la, none));
      seq_b.push_back(b(lb, none));
      ++counts[static_cast<size_t>(seq_a.back())];
    }
    CHECK(seq_a == seq_b);
    double z = 0;
    for (float x : base) z += std::exp(x);
    for (size_t i = 0; i < base.size(); ++i)
      CHECK(counts[i] / 20000.0 == doctest::Approx(std::exp(base[i]) / z).epsilon(0.1));
    p.seed = 43;
    gemma2::Sampler c(p);
    std::vector<int32_t> seq_c;
    for (int i = 0; i < 50; ++i) {
      std::vector<float> l = base;
      seq_c.push_back(c(l, none));
    }
    CHECK(seq_c != std::vector<int32_t>(seq_a.begin(), seq_a.begin() + 50));
  }
  SUBCASE("a chain with a user processor") {
    gemma2::Sampler s;
    s.add([](std::vector<float>& l, const gemma2::TokenHistory& h) { l[static_cast<size_t>(h.back())] = 100; });
    std::vector<float> l = base;
    CHECK(s(l, {3}) == 3);
  }
  SUBCASE("parameter validation") {
    gemma2::SamplingParams p;
    p.top_p = 0;
    CHECK(gemma2::validate(p).message().find("top-p") != std::string::npos);
    p = {};
    p.temperature = -1;
    CHECK_FALSE(gemma2::validate(p).ok());
    p = {};
    p.min_p = 1.5f;
    CHECK_FALSE(gemma2::validate(p).ok());
    CHECK(gemma2::validate(gemma2::SamplingParams{}).ok());
  }
}
