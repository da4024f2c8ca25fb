// GGUF: a tiny model round-trips, and malformed files give clear errors
// naming the problem, never a crash or a read past the file.
#include <doctest/doctest.h>

#include "support.hpp"

namespace {

using test::contains;
using test::TempDir;
using test::TinyModel;

// A valid GGUF file of the tiny model, as bytes.
std::string tiny_gguf(const TempDir& dir, gemma2::DType as = gemma2::DType::F32) {
  TinyModel().write(dir.str());
  const std::string path = dir.str() + "/tiny.gguf";
  test::write_gguf(gemma2::open_checkpoint(dir.str()).value(), path, as);
  return test::read_text(path);
}

std::string load_error(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.str() + "/bad.gguf";
  std::ofstream(path, std::ios::binary) << bytes;
  auto m = gemma2::Gemma2Model<>::load(path);
  return m.ok() ? "" : m.message();
}

// Byte offset of the tensor info of `name` (its type field follows the
// name, the dimension count and the dimensions).
size_t tensor_type_at(const std::string& file, const std::string& name) {
  const size_t at = file.find(name + std::string("\x02\0\0\0", 4));
  REQUIRE(at != std::string::npos);
  return at + name.size() + 4 + 2 * 8;
}

template <class T>
void put(std::string& file, size_t at, T v) {
  std::memcpy(&file[at], &v, sizeof v);
}

const std::string kQ = "blk.1.attn_q.weight";

}  // namespace

TEST_CASE("GGUF: the tiny model loads from GGUF with the safetensors model's logits") {
  TempDir dir;
  for (auto as : {gemma2::DType::F32, gemma2::DType::BF16, gemma2::DType::F16}) {
    tiny_gguf(dir, as);
    auto gguf = gemma2::Gemma2Model<>::load(dir.str() + "/tiny.gguf");
    REQUIRE_MESSAGE(gguf.ok(), gguf.message());
    gemma2::LoadOptions lo;
    lo.weight_type = as;
    auto st = gemma2::Gemma2Model<>::load(dir.str(), lo).value();
    CHECK(gguf->config().vocab_size == 64);
    CHECK(gguf->config().query_pre_attn_scalar == 10.0f);
    const std::vector<int32_t> ids = {2, 5, 9, 33, 1, 60, 7, 8, 12, 40};
    auto kv1 = gguf->make_cache().value(), kv2 = st.make_cache().value();
    const auto a = gguf->forward(ids, kv1, {nullptr, true}).value();
    const auto b = st.forward(ids, kv2, {nullptr, true}).value();
    CHECK(test::max_abs_diff(a.data(), b.data(), static_cast<size_t>(a.size())) <= 1e-6f);
  }
}

TEST_CASE("GGUF: norm weights hold 1 + w and the gain is not added twice") {
  TempDir dir;
  std::string file = tiny_gguf(dir);
  auto ok = gemma2::Gemma2Model<>::load(dir.str() + "/tiny.gguf").value();
  // The same file with every norm weight lowered by 1 (Hugging Face's w)
  // must give other logits: the stored values are used as the gain as is.
  auto ck = gemma2::open_checkpoint(dir.str()).value();
  auto minus = ck;
  std::vector<std::vector<float>> keep;
  for (auto& [name, t] : minus.tensors)
    if (t.shape.size() == 1) {
      keep.emplace_back(static_cast<size_t>(t.shape[0]));
      gemma2::detail::convert_to_float(t.dtype, t.data, keep.back().data(), keep.back().size());
      for (float& x : keep.back()) x -= 1.0f;
      t.dtype = gemma2::DType::F32;
      t.data = reinterpret_cast<const std::byte*>(keep.back().data());
      t.nbytes = keep.back().size() * 4;
    }
  test::write_gguf(minus, dir.str() + "/minus.gguf", gemma2::DType::F32);
  auto shifted = gemma2::Gemma2Model<>::load(dir.str() + "/minus.gguf").value();
  const std::vector<int32_t> ids = {2, 5, 9};
  auto kv1 = ok.make_cache().value(), kv2 = shifted.make_cache().value();
  const auto a = ok.forward(ids, kv1).value(), b = shifted.forward(ids, kv2).value();
  CHECK(test::max_abs_diff(a.data(), b.data(), static_cast<size_t>(a.size())) > 1e-2f);
}

TEST_CASE("GGUF: truncated files are rejected at every cut") {
  TempDir dir;
  const std::string file = tiny_gguf(dir);
  for (size_t cut = 0; cut < file.size(); cut += cut < 2048 ? 7 : 997) {
    INFO("cut at ", cut);
    const std::string e = load_error(dir, file.substr(0, cut));
    CHECK(e != "");
  }
  CHECK(contains(load_error(dir, file.substr(0, 3)), "magic at byte 0 runs past the end of the file (3 bytes)"));
  CHECK(contains(load_error(dir, file.substr(0, file.size() - 40)), "runs past the data section"));
}

TEST_CASE("GGUF: header fields are validated against the file") {
  TempDir dir;
  const std::string good = tiny_gguf(dir);
  std::string f = good;
  f[0] = 'X';
  CHECK(contains(load_error(dir, f), "not a GGUF file"));
  f = good;
  put<uint32_t>(f, 4, 1);
  CHECK(contains(load_error(dir, f), "GGUF version 1 is not supported"));
  f = good;
  put<uint64_t>(f, 8, uint64_t{1} << 60);
  CHECK(contains(load_error(dir, f), "tensor count 1152921504606846976 at byte 8 is more than the rest of the file"));
  f = good;
  put<uint64_t>(f, 16, uint64_t{1} << 40);
  CHECK(contains(load_error(dir, f), "metadata count"));
  f = good;
  put<uint64_t>(f, 24, uint64_t{1} << 50);  // length of the first key
  CHECK(contains(load_error(dir, f), "string length 1125899906842624 at byte 24 runs past the end of the file"));

  f = good;
  put<uint32_t>(f, tensor_type_at(f, kQ), 99);
  CHECK(contains(load_error(dir, f), "tensor " + kQ + " has type unknown type 99"));
  f = good;
  put<uint32_t>(f, tensor_type_at(f, kQ), 11);
  CHECK(contains(load_error(dir, f), "has type Q3_K, which this version cannot run"));
  f = good;
  put<uint32_t>(f, tensor_type_at(f, kQ), 12);
  CHECK(contains(load_error(dir, f), "rows of 24 are not whole Q4_K blocks of 256"));
  f = good;
  put<uint64_t>(f, tensor_type_at(f, kQ) + 4, uint64_t{1} << 40);
  CHECK(contains(load_error(dir, f), "tensor " + kQ + " data [1099511627776"));
  f = good;
  put<uint64_t>(f, tensor_type_at(f, kQ) + 4, 33);
  CHECK(contains(load_error(dir, f), "offset 33 is not a multiple of the alignment 32"));
  f = good;
  put<uint64_t>(f, tensor_type_at(f, kQ) - 16, 0);  // first dimension
  CHECK(contains(load_error(dir, f), "invalid or too large dimension 0"));
  f = good;
  put<uint32_t>(f, tensor_type_at(f, kQ) - 20, 7);  // dimension count
  CHECK(contains(load_error(dir, f), "has 7 dimensions"));
  f = good;
  put<uint64_t>(f, tensor_type_at(f, kQ) + 4, 0);  // the data of the first tensor
  CHECK(contains(load_error(dir, f), "tensor data ranges overlap at byte 0"));
  // Names rewritten in place to one that is already there (same length).
  auto rename = [&](const std::string& from, const std::string& to) {
    std::string g = good;
    const size_t at = g.find(from);
    REQUIRE(at != std::string::npos);
    g.replace(at, from.size(), to);
    return g;
  };
  CHECK(contains(load_error(dir, rename(kQ, "blk.0.attn_q.weight")), "tensor blk.0.attn_q.weight appears twice"));
  CHECK(contains(load_error(dir, rename("gemma2.attention.key_length", "gemma2.attention.head_count")),
                 "metadata key gemma2.attention.head_count appears twice"));
}

TEST_CASE("GGUF: metadata is validated, naming the key") {
  TempDir dir;
  TinyModel().write(dir.str());
  const auto ck = gemma2::open_checkpoint(dir.str()).value();
  const std::string path = dir.str() + "/m.gguf";
  test::write_gguf(ck, path, gemma2::DType::F32);
  // Copied: the file is rewritten below (Windows refuses to while it is mapped).
  auto g = gemma2::parse_gguf(gemma2::detail::MappedFile::open(path, gemma2::Mapping::Copied).value()).value();
  // Rewrites the file with one metadata change and returns the load error.
  auto with = [&](const std::string& key, std::optional<gemma2::GgufValue> v) {
    auto md = g.metadata;
    if (v) md[key] = *v;
    else md.erase(key);
    std::vector<gemma2::GgufTensorToWrite> tensors;
    for (const auto& t : g.tensors)
      tensors.push_back({t.name, t.ggml_type, t.dims, std::vector<std::byte>(t.data, t.data + t.nbytes)});
    REQUIRE(gemma2::write_gguf(path, md, tensors).ok());
    auto m = gemma2::Gemma2Model<>::load(path);
    return m.ok() ? std::string() : m.message();
  };
  using gemma2::GgufType;
  CHECK(with("gemma2.rope.freq_base", std::nullopt) == "");  // optional: 10000
  CHECK(contains(with("general.architecture", gemma2::GgufValue{GgufType::STRING, GgufType::U8, "llama"}),
                 "architecture is llama, not gemma2"));
  CHECK(contains(with("gemma2.feed_forward_length", std::nullopt), "metadata gemma2.feed_forward_length is missing"));
  CHECK(contains(with("gemma2.attention.head_count", gemma2::GgufValue{GgufType::STRING, GgufType::U8, "four"}),
                 "gemma2.attention.head_count must be an integer"));
  CHECK(contains(with("gemma2.attention.head_count_kv", gemma2::GgufValue{GgufType::U32, GgufType::U8, 3}),
                 "num_key_value_heads"));
  CHECK(contains(with("general.alignment", gemma2::GgufValue{GgufType::U32, GgufType::U8, 3}),
                 "general.alignment must be a power of two"));
  CHECK(contains(with("gemma2.attn_logit_softcapping", gemma2::GgufValue{GgufType::F32, GgufType::U8, 0.0f}),
                 "attn_logit_softcapping"));
  CHECK(contains(with("gemma2.final_logit_softcapping", gemma2::GgufValue{GgufType::F32, GgufType::U8, std::nanf("")}),
                 "final_logit_softcapping must be a positive finite number, got nan"));
  CHECK(contains(with("gemma2.rope.freq_base", gemma2::GgufValue{GgufType::F64, GgufType::U8, 1e300}),
                 "metadata gemma2.rope.freq_base is out of the range of a 32-bit float"));
  CHECK(contains(with("gemma2.attention.sliding_window", gemma2::GgufValue{GgufType::U32, GgufType::U8, 0}),
                 "sliding_window must be positive, got 0"));
  CHECK(contains(with("gemma2.embedding_length", gemma2::GgufValue{GgufType::U32, GgufType::U8, 32}),
                 "has shape [64, 24] but the config needs [64, 32]"));
  // Array sizes are bounded in all, not only by the file's length (each
  // element of a byte array costs one byte on disk but 16 in memory).
  CHECK(contains(with("test.bytes",
                      gemma2::GgufValue{GgufType::ARRAY, GgufType::U8, std::vector<uint8_t>((size_t{1} << 22) + 1, 0)}),
                 "metadata test.bytes array of 4194305 elements exceeds the 4194304 array elements a file may hold"));
  // Arrays of every element type parse (the tokenizer keys are arrays).
  CHECK(with("tokenizer.ggml.scores", gemma2::GgufValue{GgufType::ARRAY, GgufType::F32, {0.5f, -1.0f}}) == "");
  CHECK(with("tokenizer.ggml.tokens", gemma2::GgufValue{GgufType::ARRAY, GgufType::STRING, {"a", "<s>"}}) == "");
}

namespace {

// The type of every piece of a sentencepiece model file, read from its
// ModelProto (field 1: pieces; in each, field 3: type, default NORMAL = 1);
// the processor API does not expose user-defined pieces.
std::vector<int> piece_types(const std::string& model) {
  size_t i = 0;
  auto varint = [&](const std::string& b, size_t& at) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto c = static_cast<uint8_t>(b[at++]);
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (c < 0x80) return v;
    }
  };
  std::vector<int> types;
  while (i < model.size()) {
    const uint64_t key = varint(model, i);
    const uint64_t wire = key & 7;
    if (wire == 0) {
      varint(model, i);
      continue;
    }
    if (wire == 5) {
      i += 4;
      continue;
    }
    if (wire == 1) {
      i += 8;
      continue;
    }
    const size_t n = varint(model, i);
    if ((key >> 3) == 1) {  // a SentencePiece message
      const std::string piece = model.substr(i, n);
      int type = 1;
      for (size_t j = 0; j < piece.size();) {
        const uint64_t k = varint(piece, j);
        if ((k & 7) == 2) j += varint(piece, j);
        else if ((k & 7) == 5) j += 4;
        else if ((k >> 3) == 3) type = static_cast<int>(varint(piece, j));
        else varint(piece, j);
      }
      types.push_back(type);
    }
    i += n;
  }
  return types;
}

// tokenizer.ggml.* metadata as llama.cpp's converter writes it for a
// sentencepiece model: every piece, its score and its type.
std::map<std::string, gemma2::GgufValue> tokenizer_metadata(const std::string& model_path) {
  using gemma2::GgufType;
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(model_path).ok());
  const std::vector<int> piece_type = piece_types(test::read_text(model_path));
  REQUIRE(piece_type.size() == static_cast<size_t>(sp.GetPieceSize()));
  nlohmann::json tokens = nlohmann::json::array(), scores = nlohmann::json::array(), types = nlohmann::json::array();
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    tokens.push_back(sp.IdToPiece(i));
    scores.push_back(sp.GetScore(i));
    types.push_back(piece_type[static_cast<size_t>(i)]);
  }
  std::map<std::string, gemma2::GgufValue> md;
  md["tokenizer.ggml.model"] = {GgufType::STRING, GgufType::U8, "llama"};
  md["tokenizer.ggml.tokens"] = {GgufType::ARRAY, GgufType::STRING, tokens};
  md["tokenizer.ggml.scores"] = {GgufType::ARRAY, GgufType::F32, scores};
  md["tokenizer.ggml.token_type"] = {GgufType::ARRAY, GgufType::I32, types};
  md["tokenizer.ggml.bos_token_id"] = {GgufType::U32, GgufType::U8, sp.bos_id()};
  md["tokenizer.ggml.eos_token_id"] = {GgufType::U32, GgufType::U8, sp.eos_id()};
  md["tokenizer.ggml.unknown_token_id"] = {GgufType::U32, GgufType::U8, sp.unk_id()};
  md["tokenizer.ggml.padding_token_id"] = {GgufType::U32, GgufType::U8, sp.pad_id()};
  md["tokenizer.ggml.add_space_prefix"] = {GgufType::BOOL, GgufType::U8, false};
  return md;
}

}  // namespace

TEST_CASE("GGUF: the tokenizer built from the metadata encodes and decodes like tokenizer.model") {
  TempDir dir;
  const std::string sp_path = test::data_dir() + "/tokenizer/gemma2_tokenizer.model";
  auto md = tokenizer_metadata(sp_path);
  const std::string path = dir.str() + "/tok.gguf";
  REQUIRE(gemma2::write_gguf(path, md, {}).ok());
  auto from_gguf = gemma2::load_gguf_tokenizer(path);
  REQUIRE_MESSAGE(from_gguf.ok(), from_gguf.message());
  const auto original = gemma2::Tokenizer::load(sp_path).value();
  CHECK(from_gguf->vocab_size() == 256000);
  CHECK(from_gguf->bos_id() == 2);
  CHECK(from_gguf->eos_id() == 1);
  CHECK(from_gguf->start_of_turn_id() == 106);
  CHECK(from_gguf->end_of_turn_id() == 107);

  std::vector<std::string> texts;
  const auto cases = test::read_json(test::data_dir() + "/tokenizer/cases.json");
  for (const auto& c : cases["cases"]) texts.push_back(c["text"]);
  // Random mixes of the things tokenizers get wrong: leading and repeated
  // spaces, newlines and tabs, digits, chat markers, CJK, emoji (byte fallback).
  const std::vector<std::string> parts = {
      " ",    "  ",     "\n", "\n\n", "\t", "hello", "World", "1234567", "3.14", "<start_of_turn>", "<end_of_turn>",
      "user", "日本語", "😀",  "é",    "ﬁ",  "  x",   "<b>",   "▁",       "\r\n"};
  std::mt19937 rng(3);
  for (int i = 0; i < 300; ++i) {
    std::string t;
    for (int k = static_cast<int>(rng() % 8); k >= 0; --k) t += parts[rng() % parts.size()];
    texts.push_back(t);
  }
  for (const auto& t : texts) {
    INFO(t);
    const auto a = original.encode(t), b = from_gguf->encode(t);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == *b);
    CHECK(from_gguf->decode(*b).value() == original.decode(*a).value());
  }

  // Malformed tokenizer metadata names the problem.
  auto error_with = [&](const std::string& key, std::optional<gemma2::GgufValue> v) {
    auto m = md;
    if (v) m[key] = *v;
    else m.erase(key);
    REQUIRE(gemma2::write_gguf(path, m, {}).ok());
    auto t = gemma2::load_gguf_tokenizer(path);
    return t.ok() ? std::string() : t.message();
  };
  using gemma2::GgufType;
  CHECK(contains(error_with("tokenizer.ggml.model", gemma2::GgufValue{GgufType::STRING, GgufType::U8, "gpt2"}),
                 "only sentencepiece"));
  CHECK(contains(error_with("tokenizer.ggml.model", std::nullopt), "no tokenizer in the metadata"));
  CHECK(contains(error_with("tokenizer.ggml.scores", std::nullopt), "are needed"));
  CHECK(contains(error_with("tokenizer.ggml.scores", gemma2::GgufValue{GgufType::ARRAY, GgufType::F32, {1.0f}}),
                 "256000 tokens, 1 scores"));
  CHECK(contains(error_with("tokenizer.ggml.bos_token_id", gemma2::GgufValue{GgufType::U32, GgufType::U8, 300000}),
                 "bos_token_id 300000 is not below the vocabulary size"));
}

namespace {
// Gemma's tokenizer from GGUF metadata with add_space_prefix set.
gemma2::Tokenizer space_prefix_tokenizer() {
  TempDir dir;
  auto md = tokenizer_metadata(test::data_dir() + "/tokenizer/gemma2_tokenizer.model");
  md["tokenizer.ggml.add_space_prefix"] = {gemma2::GgufType::BOOL, gemma2::GgufType::U8, true};
  const std::string path = dir.str() + "/tok.gguf";
  REQUIRE(gemma2::write_gguf(path, md, {}).ok());
  return gemma2::load_gguf_tokenizer(path).value();
}
}  // namespace

TEST_CASE("StreamDecoder drops the text's leading space as decode does when the tokenizer adds a space prefix") {
  // Found by fuzz_gguf_tokenizer: with add_space_prefix (sentencepiece's
  // add_dummy_prefix) decode drops the "▁" that starts the text and the
  // streaming decoder printed it. Gemma's own tokenizer has no such prefix.
  const auto tok = space_prefix_tokenizer();
  CHECK(tok.leading_space().dummy_prefix);
  const std::vector<std::string> parts = {" ", "  ", "\n", "hello", "😀", "é", "<start_of_turn>", "▁", "x"};
  std::mt19937 rng(5);
  for (int i = 0; i < 300; ++i) {
    std::string t;
    for (int k = static_cast<int>(rng() % 6); k >= 0; --k) t += parts[rng() % parts.size()];
    INFO(t);
    std::vector<int32_t> ids = tok.encode(t).value();
    if (i % 3 == 0) ids.insert(ids.begin(), tok.bos_id());  // a control piece first changes nothing
    gemma2::StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    CHECK(streamed + stream.finish() == tok.decode(ids).value());
  }
}

TEST_CASE("grammar constraint: with a tokenizer that drops the leading space, the text is what decode prints") {
  const auto tok = space_prefix_tokenizer();
  REQUIRE(tok.leading_space().dummy_prefix);
  const auto vocab = gemma2::TokenTrie::build(tok);
  const auto g = gemma2::Grammar::parse("root ::= \"hello\" (\" \" [a-z]{1,6}){0,3}").value();
  const auto n = static_cast<size_t>(tok.vocab_size());
  // "▁hello" prints "hello" as the first piece, " hello" after another.
  const int32_t hello = tok.encode("hello").value().at(0);
  REQUIRE(tok.piece(hello) == "\xE2\x96\x81hello");
  // That one piece completes the text: a budget of one token is enough.
  auto fresh = gemma2::GrammarConstraint::create(g, vocab).value();
  CHECK(fresh.min_tokens_to_complete() == 1);
  CHECK(fresh.set_budget(0).message() ==
        "grammar: a budget of 0 tokens is too small: the shortest completion takes 1 token");
  REQUIRE(fresh.set_budget(1).ok());
  CHECK(fresh.allows(hello));
  std::mt19937 rng(9);
  for (int run = 0; run < 20; ++run) {
    auto c = gemma2::GrammarConstraint::create(g, vocab).value();
    REQUIRE(c.set_budget(12).ok());
    CHECK(c.allows(hello));
    std::vector<int32_t> ids;
    while (!c.finished()) {
      const std::vector<uint8_t> mask = c.allowed_mask(n);
      std::vector<int32_t> allowed;
      for (size_t i = 0; i < n; ++i) {
        if (run == 0 && ids.size() < 2) CHECK((mask[i] != 0) == c.allows(static_cast<int32_t>(i)));
        if (mask[i] && vocab->kind(static_cast<int32_t>(i)) == gemma2::TokenTrie::Kind::Text)
          allowed.push_back(static_cast<int32_t>(i));
      }
      if (allowed.empty() || (c.can_end() && rng() % 4 == 0)) break;
      const int32_t pick = allowed[rng() % allowed.size()];
      REQUIRE(c.accept(pick).ok());
      ids.push_back(pick);
    }
    REQUIRE(c.can_end());
    const std::string text = tok.decode(ids).value();
    INFO(text);
    CHECK(g.matches(text));
    gemma2::StreamDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    CHECK(streamed + stream.finish() == text);
  }
}
