// The Gemma 2 mapping of GGUF files (llama.cpp's converter,
// convert_hf_to_gguf.py, writes them): the gemma2.* metadata as a config,
// llama.cpp's tensor names as Hugging Face's, ggml's Q8_0/Q4_0 blocks in the
// library's order, norm weights that already hold their gain. The format
// itself is gguf_format.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/config.hpp"
#include "gemma2/io/checkpoint.hpp"
#include "gemma2/io/gguf_format.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/status.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// The config from the gemma2.* metadata: every field of
// GEMMA2_CONFIG_FIELDS with a GGUF key. rope.freq_base may be absent
// (10000); attention.value_length must equal key_length. GGUF has no
// query_pre_attn_scalar: llama.cpp scales queries by (hidden / heads)^-1/2
// for the 46-layer 27B and head_dim^-1/2 otherwise, matching the published
// configs; an explicit key (written by this library's tools) wins.
inline Status gguf_config(const GgufFile& g, RuntimeConfig& c) {
  Status status;
  for_each_field(c, [&](const ConfigField& field, auto& value) {
    if (!status || field.gguf_key == nullptr) return;
    const bool optional =
        field.float_member == &RuntimeConfig::rope_theta || field.float_member == &RuntimeConfig::query_pre_attn_scalar;
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, int>) status = gguf_int(g, field.gguf_key, &value);
    else status = gguf_float(g, field.gguf_key, &value, !optional);
  });
  if (!status) return status;
  int value_length = 0;
  if (Status s = gguf_int(g, "gemma2.attention.value_length", &value_length); !s) return s;
  c.layer_types = alternating_layer_types(c.num_hidden_layers);
  if (value_length != c.head_dim)
    return err(g.file->path(), ": attention.value_length ", value_length, " differs from key_length ", c.head_dim);
  if (g.metadata.count("gemma2.attention.query_pre_attn_scalar") == 0)
    c.query_pre_attn_scalar =
        static_cast<float>(c.num_hidden_layers == 46 ? c.hidden_size / std::max(1, c.num_attention_heads) : c.head_dim);
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
    if (Status s = detail::gguf_config(g, c); !s) return Error{s.message()};

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

// The gemma2.* metadata llama.cpp's converter writes for a config, and with
// `query_scalar` the gemma2.attention.query_pre_attn_scalar key it does not
// write (see gguf_config); for write_gguf.
inline std::map<std::string, GgufValue> gguf_config_metadata(const RuntimeConfig& c, bool query_scalar = true) {
  std::map<std::string, GgufValue> md;
  md["general.architecture"] = {GgufType::STRING, GgufType::U8, "gemma2"};
  detail::for_each_field(c, [&](const detail::ConfigField& field, auto value) {
    if (field.gguf_key == nullptr || (!query_scalar && field.float_member == &RuntimeConfig::query_pre_attn_scalar))
      return;
    md[field.gguf_key] = {field.int_member ? GgufType::U32 : GgufType::F32, GgufType::U8, value};
  });
  md["gemma2.attention.value_length"] = {GgufType::U32, GgufType::U8, c.head_dim};
  return md;
}

GEMMA2_END_NAMESPACE
