// GGUF (versions 2 and 3), the single-file format of llama.cpp: a header
// with typed metadata and tensor infos, padding to `general.alignment`, then
// the tensor data. Every count, length, offset and size is checked against
// the mapped file before it is used, so a hostile file gets an error naming
// the problem, never a read past the mapping or an allocation sized by it.
// Layout reference: ggml's docs/gguf.md.
//
// This header reads GGUF files and opens them as checkpoints;
// gguf_tokenizer.hpp builds a file's tokenizer and gguf_writer.hpp writes
// files (gguf.hpp includes all three).
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/checkpoint.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/status.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value: scalars and strings as JSON scalars, arrays as JSON
// arrays of their element type `elem`.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem = GgufType::U8;  // element type of an ARRAY
  nlohmann::json value;
};

// One tensor of a GGUF file. dims are ggml's ne: dims[0] is the row length.
struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> dims;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;
};

// A parsed GGUF file; tensor data points into the mapping kept in `file`.
struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensor> tensors;
  std::shared_ptr<const detail::MappedFile> file;
};

namespace detail {

// ggml tensor types this library reads: id, name, elements per block, bytes
// per block, and the DType it runs as.
struct GgmlType {
  uint32_t id;
  const char* name;
  uint32_t block, block_bytes;
  DType dtype;
};
inline const GgmlType* ggml_type(uint32_t id) {
  static constexpr GgmlType kTypes[] = {
      {0, "F32", 1, 4, DType::F32},        {1, "F16", 1, 2, DType::F16},   {30, "BF16", 1, 2, DType::BF16},
      {8, "Q8_0", 32, 34, DType::Q8_0},    {2, "Q4_0", 32, 18, DType::Q4_0},
      {12, "Q4_K", 256, 144, DType::Q4_K}, {13, "Q5_K", 256, 176, DType::Q5_K}, {14, "Q6_K", 256, 210, DType::Q6_K},
  };
  for (const auto& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}
// Names of the ggml types a file may hold but this library does not run, for
// the error message.
inline std::string ggml_type_name(uint32_t id) {
  if (const GgmlType* t = ggml_type(id)) return t->name;
  static const std::map<uint32_t, const char*> kOthers = {
      {3, "Q4_1"},  {6, "Q5_0"},  {7, "Q5_1"},  {9, "Q8_1"},  {10, "Q2_K"},  {11, "Q3_K"}, {15, "Q8_K"}, {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"},
      {20, "IQ4_NL"}, {21, "IQ3_S"}, {22, "IQ2_S"}, {23, "IQ4_XS"}, {24, "I8"}, {25, "I16"}, {26, "I32"},
      {27, "I64"}, {28, "F64"}, {29, "IQ1_M"}};
  const auto it = kOthers.find(id);
  return it != kOthers.end() ? it->second : "unknown type " + std::to_string(id);
}

// Bounds-checked little-endian reader over the mapped header.
class GgufReader {
 public:
  GgufReader(const std::byte* data, size_t size, const std::string& path) : p_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  const Status& status() const { return status_; }
  bool ok() const { return static_cast<bool>(status_); }

  template <class T>
  T read(const char* what) {
    T v{};
    if (!need(sizeof(T), what)) return v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    if (!ok()) return {};
    if (n > size_ - pos_) {
      fail(what, ": string length ", n, " at byte ", pos_ - 8, " runs past the end of the file (", size_, " bytes)");
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

  // A count of items that each take at least `min_bytes`: more than the rest
  // of the file could hold is an error before anything is allocated.
  uint64_t count(const char* what, uint64_t min_bytes) {
    const uint64_t n = read<uint64_t>(what);
    if (ok() && n > (size_ - pos_) / min_bytes)
      fail(what, " ", n, " at byte ", pos_ - 8, " is more than the rest of the file (", size_ - pos_, " bytes) can hold");
    return ok() ? n : 0;
  }

  template <class... Args>
  void fail(const Args&... args) {
    if (status_) status_ = err(path_, ": ", args...);
  }

 private:
  bool need(size_t n, const char* what) {
    if (!ok()) return false;
    if (n > size_ - pos_) {
      fail(what, " at byte ", pos_, " runs past the end of the file (", size_, " bytes)");
      return false;
    }
    return true;
  }

  const std::byte* p_;
  size_t size_, pos_ = 0;
  std::string path_;
  Status status_;
};

inline size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

inline nlohmann::json gguf_scalar(GgufReader& r, GgufType t) {
  switch (t) {
    case GgufType::U8: return r.read<uint8_t>("value");
    case GgufType::I8: return r.read<int8_t>("value");
    case GgufType::U16: return r.read<uint16_t>("value");
    case GgufType::I16: return r.read<int16_t>("value");
    case GgufType::U32: return r.read<uint32_t>("value");
    case GgufType::I32: return r.read<int32_t>("value");
    case GgufType::F32: return r.read<float>("value");
    case GgufType::BOOL: {
      const uint8_t b = r.read<uint8_t>("value");
      if (b > 1) r.fail("bool value ", int{b}, " is neither 0 nor 1");
      return b == 1;
    }
    case GgufType::U64: return r.read<uint64_t>("value");
    case GgufType::I64: return r.read<int64_t>("value");
    case GgufType::F64: return r.read<double>("value");
    case GgufType::STRING: return r.string("string value");
    default: return nullptr;
  }
}

// A metadata value as JSON text for an error message. GGUF strings are any
// bytes, and dump() throws on invalid UTF-8 (aborting with exceptions off),
// so invalid sequences are shown as U+FFFD.
inline std::string gguf_dump(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline bool gguf_type_known(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// Metadata array elements a file may hold in all. Each becomes a JSON value
// of 16 bytes or more (a string more than 40) while its encoding can be a
// single byte, so the count is bounded, not only checked against the file:
// a 1 GB file of byte arrays would otherwise take 16 GB or more. Real files
// hold about a million (256000 tokens, scores and types; merges).
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 22;

// One metadata value; `elements_left` is what remains of kMaxMetadataElements.
inline GgufValue gguf_value(GgufReader& r, const std::string& key, uint64_t& elements_left) {
  GgufValue v;
  const uint32_t type = r.read<uint32_t>("metadata value type");
  if (!r.ok()) return v;
  if (!gguf_type_known(type)) {
    r.fail("metadata ", key, " has unknown value type ", type);
    return v;
  }
  v.type = static_cast<GgufType>(type);
  if (v.type != GgufType::ARRAY) {
    v.value = gguf_scalar(r, v.type);
    return v;
  }
  const uint32_t elem = r.read<uint32_t>("array element type");
  if (!r.ok()) return v;
  if (!gguf_type_known(elem) || elem == static_cast<uint32_t>(GgufType::ARRAY)) {
    r.fail("metadata ", key, " is an array of unsupported element type ", elem);
    return v;
  }
  v.elem = static_cast<GgufType>(elem);
  const size_t min_bytes = v.elem == GgufType::STRING ? 8 : gguf_scalar_size(v.elem);
  const uint64_t n = r.count(("metadata " + key + " array length").c_str(), min_bytes);
  if (n > elements_left) {
    r.fail("metadata ", key, " array of ", n, " elements exceeds the ", kMaxMetadataElements,
           " array elements a file may hold in all");
    return v;
  }
  elements_left -= n;
  v.value = nlohmann::json::array();
  for (uint64_t i = 0; i < n && r.ok(); ++i) v.value.push_back(gguf_scalar(r, v.elem));
  return v;
}

}  // namespace detail

// Parses and validates a mapped GGUF file.
inline Result<GgufFile> parse_gguf(std::shared_ptr<const detail::MappedFile> file) {
  return detail::guard("reading " + file->path(), [&]() -> Result<GgufFile> {
    using detail::err;
    const std::string& path = file->path();
    detail::GgufReader r(file->data(), file->size(), path);
    GgufFile g;
    g.file = file;
    const uint32_t magic = r.read<uint32_t>("magic");
    if (!r.ok()) return Error{r.status().message()};
    if (magic != 0x46554747u) return err(path, ": not a GGUF file (no GGUF magic)");
    g.version = r.read<uint32_t>("version");
    if (r.ok() && (g.version < 2 || g.version > 3))
      return err(path, ": GGUF version ", g.version, " is not supported (versions 2 and 3 are)");
    // A tensor info takes at least 8 + 4 + 4 + 8 bytes, a key-value 8 + 4 + 1.
    const uint64_t n_tensors = r.count("tensor count", 24);
    const uint64_t n_kv = r.count("metadata count", 13);
    uint64_t elements_left = detail::kMaxMetadataElements;
    for (uint64_t i = 0; i < n_kv && r.ok(); ++i) {
      std::string key = r.string("metadata key");
      if (!r.ok()) break;
      GgufValue v = detail::gguf_value(r, key, elements_left);
      if (r.ok() && !g.metadata.emplace(key, std::move(v)).second) r.fail("metadata key ", key, " appears twice");
    }
    if (!r.ok()) return Error{r.status().message()};
    if (const auto it = g.metadata.find("general.alignment"); it != g.metadata.end()) {
      const nlohmann::json& a = it->second.value;
      if (it->second.type != GgufType::U32 || a.get<uint64_t>() == 0 || (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) != 0)
        return err(path, ": general.alignment must be a power of two (uint32), got ", detail::gguf_dump(a));
      g.alignment = a.get<uint64_t>();
    }

    std::set<std::string> names;
    for (uint64_t i = 0; i < n_tensors && r.ok(); ++i) {
      GgufTensor t;
      t.name = r.string("tensor name");
      const uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
      if (!r.ok()) break;
      if (n_dims < 1 || n_dims > 4) return err(path, ": tensor ", t.name, " has ", n_dims, " dimensions (1 to 4 allowed)");
      uint64_t count = 1;
      for (uint32_t d = 0; d < n_dims && r.ok(); ++d) {
        const uint64_t n = r.read<uint64_t>("tensor dimension");
        if (n == 0 || n > (uint64_t{1} << 40) || count > (uint64_t{1} << 48) / n)
          return err(path, ": tensor ", t.name, " has an invalid or too large dimension ", n);
        count *= n;
        t.dims.push_back(n);
      }
      t.ggml_type = r.read<uint32_t>("tensor type");
      t.offset = r.read<uint64_t>("tensor offset");
      if (!r.ok()) break;
      if (!names.insert(t.name).second) return err(path, ": tensor ", t.name, " appears twice");
      const detail::GgmlType* type = detail::ggml_type(t.ggml_type);
      if (type == nullptr)
        return err(path, ": tensor ", t.name, " has type ", detail::ggml_type_name(t.ggml_type),
                   ", which this version cannot run (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
      if (t.dims[0] % type->block != 0)
        return err(path, ": tensor ", t.name, " rows of ", t.dims[0], " are not whole ", type->name, " blocks of ",
                   type->block);
      t.nbytes = count / type->block * type->block_bytes;
      if (t.offset % g.alignment != 0)
        return err(path, ": tensor ", t.name, " offset ", t.offset, " is not a multiple of the alignment ", g.alignment);
      g.tensors.push_back(std::move(t));
    }
    if (!r.ok()) return Error{r.status().message()};
    const uint64_t data_start = (r.pos() + g.alignment - 1) / g.alignment * g.alignment;
    if (data_start > file->size()) return err(path, ": data section starts past the end of the file");
    const uint64_t data_size = file->size() - data_start;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (GgufTensor& t : g.tensors) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset)
        return err(path, ": tensor ", t.name, " data [", t.offset, ", ", t.offset + t.nbytes,
                   ") runs past the data section (", data_size, " bytes)");
      t.data = file->data() + data_start + t.offset;
      ranges.emplace_back(t.offset, t.offset + t.nbytes);
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
      if (ranges[i].first < ranges[i - 1].second)
        return err(path, ": tensor data ranges overlap at byte ", ranges[i].first, " of the data section");
    return g;
  });
}

namespace detail {

// The config fields under their gemma2.* metadata keys, as llama.cpp's
// converter writes them (rope.freq_base may be absent: 10000).
// attention.value_length, which must equal key_length, and the optional
// query_pre_attn_scalar are handled apart.
constexpr std::pair<const char*, int RuntimeConfig::*> kGgufIntKeys[] = {
    {"gemma2.context_length", &RuntimeConfig::max_position_embeddings},
    {"gemma2.embedding_length", &RuntimeConfig::hidden_size},
    {"gemma2.block_count", &RuntimeConfig::num_hidden_layers},
    {"gemma2.feed_forward_length", &RuntimeConfig::intermediate_size},
    {"gemma2.attention.head_count", &RuntimeConfig::num_attention_heads},
    {"gemma2.attention.head_count_kv", &RuntimeConfig::num_key_value_heads},
    {"gemma2.attention.key_length", &RuntimeConfig::head_dim},
    {"gemma2.attention.sliding_window", &RuntimeConfig::sliding_window},
};
constexpr std::pair<const char*, float RuntimeConfig::*> kGgufFloatKeys[] = {
    {"gemma2.attention.layer_norm_rms_epsilon", &RuntimeConfig::rms_norm_eps},
    {"gemma2.attn_logit_softcapping", &RuntimeConfig::attn_logit_softcapping},
    {"gemma2.final_logit_softcapping", &RuntimeConfig::final_logit_softcapping},
    {"gemma2.rope.freq_base", &RuntimeConfig::rope_theta},
};

// Integer metadata of any integer type, range-checked into int.
inline Status gguf_int(const GgufFile& g, const std::string& key, int* out, bool required = true) {
  const auto it = g.metadata.find(key);
  if (it == g.metadata.end()) return required ? err(g.file->path(), ": metadata ", key, " is missing") : Status{};
  const nlohmann::json& v = it->second.value;
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 30))
    return err(g.file->path(), ": metadata ", key, " must be an integer in [0, 2^30], got ", gguf_dump(v));
  *out = v.get<int>();
  return {};
}

inline Status gguf_float(const GgufFile& g, const std::string& key, float* out, bool required = true) {
  const auto it = g.metadata.find(key);
  if (it == g.metadata.end()) return required ? err(g.file->path(), ": metadata ", key, " is missing") : Status{};
  if (!it->second.value.is_number()) return err(g.file->path(), ": metadata ", key, " must be a number");
  if (!narrow_to_float(it->second.value.get<double>(), out))
    return err(g.file->path(), ": metadata ", key, " is out of the range of a 32-bit float");
  return {};
}

// llama.cpp's tensor names for Gemma 2 and the Hugging Face ones, outside
// and inside layer N ("blk.N." / "model.layers.N.").
inline const std::vector<std::pair<std::string, std::string>>& gguf_top_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  return names;
}
inline const std::vector<std::pair<std::string, std::string>>& gguf_layer_names() {
  static const std::vector<std::pair<std::string, std::string>> names = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"post_attention_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"}};
  return names;
}

// One tensor name translated between the two conventions (`to_hf`: GGUF to
// Hugging Face); a name neither table knows is returned as it is, and the
// binder then reports it as unexpected.
inline std::string translate_tensor_name(const std::string& name, bool to_hf) {
  const std::string from_prefix = to_hf ? "blk." : "model.layers.", to_prefix = to_hf ? "model.layers." : "blk.";
  for (const auto& [gguf, hf] : gguf_top_names())
    if (name == (to_hf ? gguf : hf)) return to_hf ? hf : gguf;
  if (name.rfind(from_prefix, 0) != 0) return name;
  const size_t at = from_prefix.size(), dot = name.find('.', at);
  if (dot == std::string::npos || dot == at || name.find_first_not_of("0123456789", at) != dot) return name;
  const std::string rest = name.substr(dot + 1);
  for (const auto& [gguf, hf] : gguf_layer_names())
    if (rest == (to_hf ? gguf : hf)) return to_prefix + name.substr(at, dot - at) + "." + (to_hf ? hf : gguf);
  return name;
}

inline std::string hf_name(const std::string& gguf) { return translate_tensor_name(gguf, true); }
inline std::string gguf_name(const std::string& hf) { return translate_tensor_name(hf, false); }

// ggml's Q8_0/Q4_0 blocks interleave scale and values ([d | qs] per block);
// the library keeps a row's values first, then its scales.
inline void regroup_blocks(DType t, const std::byte* src, std::byte* dst, int64_t rows, int64_t cols) {
  const int64_t blocks = cols / kQuantBlock, qs = t == DType::Q8_0 ? kQuantBlock : kQuantBlock / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const std::byte* in = src + r * blocks * (2 + qs);
    std::byte* out = dst + r * static_cast<int64_t>(row_bytes(t, static_cast<int>(cols)));
    for (int64_t b = 0; b < blocks; ++b) {
      std::memcpy(out + blocks * qs + 2 * b, in + b * (2 + qs), 2);
      std::memcpy(out + b * qs, in + b * (2 + qs) + 2, static_cast<size_t>(qs));
    }
  }
}

// The tensor with its blocks in the library's order: for a GGUF Q8_0/Q4_0
// tensor a regrouped copy held in memory, else the tensor itself. Done when
// a weight is bound, so opening a checkpoint (and planning its memory)
// reads no weights.
inline TensorView library_layout(const TensorView& t) {
  if (!t.ggml_blocks) return t;
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < t.shape.size(); ++d) rows *= t.shape[d];
  std::vector<std::byte> bytes(t.nbytes);
  regroup_blocks(t.dtype, t.data, bytes.data(), rows, t.shape.empty() ? 0 : t.shape.back());
  TensorView out = t;
  out.owner = MappedFile::from_bytes(t.source, std::move(bytes));
  out.data = out.owner->data();
  out.ggml_blocks = false;
  return out;
}

}  // namespace detail

// Model paths ending in .gguf are GGUF files; anything else is a Hugging
// Face model directory.
inline bool is_gguf_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

// A parsed Gemma 2 GGUF file as a checkpoint: config from the gemma2.*
// metadata, tensors under their Hugging Face names. Norm weights in GGUF
// already hold 1 + w (llama.cpp's converter adds the 1), which the
// checkpoint records so the gain is not added twice. open_gguf_checkpoint
// (below) does the same for a path.
inline Result<Checkpoint> gguf_checkpoint(const GgufFile& g) {
  return detail::guard("reading " + g.file->path(), [&]() -> Result<Checkpoint> {
    const std::string& path = g.file->path();
    const auto arch = g.metadata.find("general.architecture");
    if (arch == g.metadata.end() || !arch->second.value.is_string())
      return detail::err(path, ": metadata general.architecture is missing");
    if (arch->second.value.get<std::string>() != "gemma2")
      return detail::err(path, ": architecture is ", arch->second.value.get<std::string>(), ", not gemma2");

    Checkpoint ck;
    ck.norms_hold_gain = true;
    RuntimeConfig& c = ck.config;
    for (const auto& [key, member] : detail::kGgufIntKeys)
      if (Status s = detail::gguf_int(g, key, &(c.*member)); !s) return Error{s.message()};
    for (const auto& [key, member] : detail::kGgufFloatKeys)
      if (Status s = detail::gguf_float(g, key, &(c.*member), member != &RuntimeConfig::rope_theta); !s)
        return Error{s.message()};
    int value_length = 0;
    if (Status s = detail::gguf_int(g, "gemma2.attention.value_length", &value_length); !s) return Error{s.message()};
    c.layer_types = detail::alternating_layer_types(c.num_hidden_layers);  // llama.cpp: even layers slide
    if (value_length != c.head_dim)
      return detail::err(path, ": attention.value_length ", value_length, " differs from key_length ", c.head_dim);
    // GGUF has no query_pre_attn_scalar. llama.cpp scales queries by
    // (hidden / heads)^-1/2 for the 46-layer 27B and head_dim^-1/2 otherwise,
    // matching the published configs; an explicit key (written by this
    // library's tools) wins.
    c.query_pre_attn_scalar = static_cast<float>(c.num_hidden_layers == 46 ? c.hidden_size / std::max(1, c.num_attention_heads)
                                                                            : c.head_dim);
    if (Status s = detail::gguf_float(g, "gemma2.attention.query_pre_attn_scalar", &c.query_pre_attn_scalar, false); !s)
      return Error{s.message()};

    bool has_embedding = false;
    for (const GgufTensor& t : g.tensors) {
      const detail::GgmlType* type = detail::ggml_type(t.ggml_type);
      TensorView v;
      v.dtype = type->dtype;
      for (auto d = t.dims.rbegin(); d != t.dims.rend(); ++d) v.shape.push_back(static_cast<int64_t>(*d));
      v.nbytes = t.nbytes;
      v.source = path;
      if (t.name == "token_embd.weight" && t.dims.size() == 2 && t.dims[1] <= (uint64_t{1} << 30)) {
        c.vocab_size = static_cast<int>(t.dims[1]);
        has_embedding = true;
      }
      v.data = t.data;
      v.owner = g.file;
      v.ggml_blocks = is_block32(v.dtype);
      ck.tensors.emplace(detail::hf_name(t.name), std::move(v));
    }
    if (!has_embedding) return detail::err(path, ": no 2-D tensor token_embd.weight (the embedding)");
    if (Status s = validate(c); !s) return detail::err(path, ": ", s.message());
    return ck;
  });
}

inline Result<Checkpoint> open_gguf_checkpoint(const std::string& path, Mapping mapping = Mapping::Mapped) {
  auto file = detail::MappedFile::open(path, mapping);
  if (!file) return Error{file.message()};
  auto parsed = parse_gguf(std::move(*file));
  if (!parsed) return Error{parsed.message()};
  return gguf_checkpoint(*parsed);
}

GEMMA2_END_NAMESPACE
