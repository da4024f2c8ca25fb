// The tokenizer a GGUF file carries in its metadata (tokenizer.ggml.*),
// rebuilt as a sentencepiece model, and the tokenizer of any model path.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "gemma2/io/gguf_format.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/io/os.hpp"
#include "gemma2/tokenizer.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// Protocol-buffer wire format, just what a sentencepiece ModelProto needs.
struct ProtoWriter {
  std::string out;
  void varint(uint64_t v) {
    for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
    out += static_cast<char>(v);
  }
  void tag(int field, int wire) { varint(static_cast<uint64_t>(field) << 3 | static_cast<uint64_t>(wire)); }
  void int_field(int field, int64_t v) {
    tag(field, 0);
    varint(static_cast<uint64_t>(v));  // negative int32 values take ten bytes, as protobuf writes them
  }
  void float_field(int field, float v) {
    tag(field, 5);
    out.append(reinterpret_cast<const char*>(&v), 4);
  }
  void bytes_field(int field, const std::string& v) {
    tag(field, 2);
    varint(v.size());
    out += v;
  }
};

inline const nlohmann::json* gguf_array(const GgufFile& g, const std::string& key, GgufType elem) {
  const auto it = g.metadata.find(key);
  if (it == g.metadata.end() || it->second.type != GgufType::ARRAY || it->second.elem != elem) return nullptr;
  return &it->second.value;
}

}  // namespace detail

// The sentencepiece model of a GGUF file's tokenizer metadata
// (tokenizer.ggml.*), as a serialized ModelProto. GGUF keeps the pieces,
// scores, piece types and special ids; the rest is the normalizer and
// trainer settings every Gemma tokenizer shares (BPE with byte fallback,
// identity normalization, whitespace kept and escaped as U+2581, digits
// split), with the space prefix from tokenizer.ggml.add_space_prefix.
inline Result<std::string> gguf_sentencepiece_proto(const GgufFile& g) {
  return detail::guard("reading the tokenizer of " + g.file->path(), [&]() -> Result<std::string> {
    const std::string& path = g.file->path();
    const auto model = g.metadata.find("tokenizer.ggml.model");
    if (model == g.metadata.end()) return detail::err(path, ": no tokenizer in the metadata (tokenizer.ggml.model)");
    if (model->second.value != "llama")
      return detail::err(path, ": tokenizer.ggml.model is ", detail::gguf_dump(model->second.value),
                         "; only sentencepiece (\"llama\") tokenizers are supported");
    const nlohmann::json* tokens = detail::gguf_array(g, "tokenizer.ggml.tokens", GgufType::STRING);
    const nlohmann::json* scores = detail::gguf_array(g, "tokenizer.ggml.scores", GgufType::F32);
    const nlohmann::json* types = detail::gguf_array(g, "tokenizer.ggml.token_type", GgufType::I32);
    if (tokens == nullptr || scores == nullptr || types == nullptr)
      return detail::err(path,
                         ": tokenizer.ggml.tokens (strings), .scores (float32) and .token_type (int32) are needed");
    if (tokens->empty() || scores->size() != tokens->size() || types->size() != tokens->size())
      return detail::err(path, ": tokenizer arrays disagree: ", tokens->size(), " tokens, ", scores->size(),
                         " scores, ", types->size(), " types");
    int ids[4] = {-1, -1, -1, -1};  // unknown, bos, eos, padding
    const char* keys[4] = {"unknown", "bos", "eos", "padding"};
    for (int i = 0; i < 4; ++i) {
      const std::string key = std::string("tokenizer.ggml.") + keys[i] + "_token_id";
      if (g.metadata.count(key) == 0) continue;
      if (Status s = detail::gguf_int(g, key, &ids[i]); !s) return Error{s.message()};
      if (ids[i] >= static_cast<int>(tokens->size()))
        return detail::err(path, ": ", key, " ", ids[i], " is not below the vocabulary size ", tokens->size());
    }
    bool space_prefix = false;
    if (const auto it = g.metadata.find("tokenizer.ggml.add_space_prefix"); it != g.metadata.end()) {
      if (!it->second.value.is_boolean()) return detail::err(path, ": tokenizer.ggml.add_space_prefix must be a bool");
      space_prefix = it->second.value.get<bool>();
    }

    detail::ProtoWriter proto;
    for (size_t i = 0; i < tokens->size(); ++i) {
      const int type = (*types)[i].get<int>();
      if (type < 1 || type > 6) return detail::err(path, ": token ", i, " has type ", type, " (1 to 6 allowed)");
      detail::ProtoWriter piece;
      piece.bytes_field(1, (*tokens)[i].get<std::string>());
      piece.float_field(2, (*scores)[i].get<float>());
      piece.int_field(3, type);  // GGUF numbers piece types as sentencepiece does
      proto.bytes_field(1, piece.out);
    }
    detail::ProtoWriter trainer;
    trainer.int_field(3, 2);  // model_type: BPE
    trainer.int_field(4, static_cast<int64_t>(tokens->size()));
    trainer.int_field(20, 16);                  // max_sentencepiece_length
    for (int field : {21, 22, 23, 25, 26, 35})  // split by script/number/whitespace, split digits,
      trainer.int_field(field, 1);              // whitespace-only pieces, byte fallback
    for (int i = 0; i < 4; ++i) trainer.int_field(40 + i, ids[i]);
    // sentencepiece finds its special tokens by piece (unk/bos/eos/pad_piece).
    for (int i = 0; i < 4; ++i)
      if (ids[i] >= 0) trainer.bytes_field(45 + i, (*tokens)[static_cast<size_t>(ids[i])].get<std::string>());
    proto.bytes_field(2, trainer.out);
    detail::ProtoWriter normalizer;
    normalizer.bytes_field(1, "identity");
    normalizer.int_field(3, space_prefix);  // add_dummy_prefix
    normalizer.int_field(4, 0);             // remove_extra_whitespaces
    normalizer.int_field(5, 1);             // escape_whitespaces
    proto.bytes_field(3, normalizer.out);
    return std::move(proto.out);
  });
}

// The tokenizer stored in a GGUF file's metadata.
inline Result<Tokenizer> load_gguf_tokenizer(const std::string& path) {
  auto file = detail::MappedFile::open(path);
  if (!file) return Error{file.message()};
  auto g = parse_gguf(std::move(*file));
  if (!g) return Error{g.message()};
  auto proto = gguf_sentencepiece_proto(*g);
  if (!proto) return Error{proto.message()};
  return Tokenizer::from_serialized(*proto, path);
}

// The tokenizer of a model path: for a .gguf file its own metadata, else a
// tokenizer.model beside it; for a model directory its tokenizer.model.
inline Result<Tokenizer> load_model_tokenizer(const std::string& model) {
  if (!is_gguf_path(model)) return Tokenizer::from_model_dir(model);
  auto from_metadata = load_gguf_tokenizer(model);
  if (from_metadata) return from_metadata;
  const size_t slash = model.rfind('/');
  const std::string beside =
      (slash == std::string::npos ? std::string(".") : model.substr(0, slash)) + "/tokenizer.model";
  if (detail::path_exists(beside)) return Tokenizer::load(beside);
  return from_metadata;
}

GEMMA2_END_NAMESPACE
