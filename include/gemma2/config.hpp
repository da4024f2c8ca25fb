// Model configurations (DESIGN.md, property 4: configs are data).
//
// A Config is any type with the fields below. The presets are empty structs of
// `static constexpr` members, so the compiler sees fixed sizes; RuntimeConfig
// has the same fields as ordinary members, filled from config.json, so any
// valid Gemma 2 checkpoint loads. Model code reads `config.field` and never
// branches on the model size: the local/global pattern comes from
// `layer_type(i)`.
#pragma once

#include <cmath>
#include <limits>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// Gemma 2 interleaves local sliding-window and global attention layers
// (Gemma 2 paper, Section 2.2).
enum class AttentionKind { Local, Global };

namespace detail {
// Fields shared by every published Gemma 2 size (Gemma 2 paper, Table 1).
struct PresetCommon {
  static constexpr int vocab_size = 256000;
  static constexpr int sliding_window = 4096;
  static constexpr int max_position_embeddings = 8192;
  static constexpr float attn_logit_softcapping = 50.0f;
  static constexpr float final_logit_softcapping = 30.0f;
  static constexpr float rope_theta = 10000.0f;
  static constexpr float rms_norm_eps = 1e-6f;
  // Layer 0 is local, then they alternate (reference: layer_types / i % 2 == 0).
  static constexpr AttentionKind layer_type(int layer) {
    return layer % 2 == 0 ? AttentionKind::Local : AttentionKind::Global;
  }
};
}  // namespace detail

// Gemma 2 2B: 2304 wide, 26 layers, 8 query heads sharing 4 KV heads.
struct Gemma2_2B : detail::PresetCommon {
  static constexpr const char* name = "gemma2-2b";
  static constexpr int hidden_size = 2304;
  static constexpr int num_hidden_layers = 26;
  static constexpr int num_attention_heads = 8;
  static constexpr int num_key_value_heads = 4;
  static constexpr int head_dim = 256;
  static constexpr int intermediate_size = 9216;
  static constexpr float query_pre_attn_scalar = 256.0f;
};

// Gemma 2 9B.
struct Gemma2_9B : detail::PresetCommon {
  static constexpr const char* name = "gemma2-9b";
  static constexpr int hidden_size = 3584;
  static constexpr int num_hidden_layers = 42;
  static constexpr int num_attention_heads = 16;
  static constexpr int num_key_value_heads = 8;
  static constexpr int head_dim = 256;
  static constexpr int intermediate_size = 14336;
  static constexpr float query_pre_attn_scalar = 256.0f;
};

// Gemma 2 27B: queries are scaled by hidden/heads = 144, not head_dim = 128
// (Gemma 2 paper, Section 2; reference query_pre_attn_scalar).
struct Gemma2_27B : detail::PresetCommon {
  static constexpr const char* name = "gemma2-27b";
  static constexpr int hidden_size = 4608;
  static constexpr int num_hidden_layers = 46;
  static constexpr int num_attention_heads = 32;
  static constexpr int num_key_value_heads = 16;
  static constexpr int head_dim = 128;
  static constexpr int intermediate_size = 36864;
  static constexpr float query_pre_attn_scalar = 144.0f;
};

// Sizes known only at run time, read from a checkpoint's config.json.
// Defaults are those of Hugging Face's Gemma2Config (the 2B model), which is
// how transformers fills keys that a config.json leaves out.
struct RuntimeConfig {
  std::string name = "runtime";
  int vocab_size = 256000;
  int hidden_size = 2304;
  int num_hidden_layers = 26;
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 256;
  int intermediate_size = 9216;
  float query_pre_attn_scalar = 256.0f;
  int sliding_window = 4096;
  int max_position_embeddings = 8192;
  float attn_logit_softcapping = 50.0f;
  float final_logit_softcapping = 30.0f;
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-6f;
  std::vector<AttentionKind> layer_types;  // one per layer

  AttentionKind layer_type(int layer) const { return layer_types[static_cast<size_t>(layer)]; }
};

// The runtime view of any Config (a preset's constants, or a copy).
template <class Config>
RuntimeConfig to_runtime(const Config& c) {
  RuntimeConfig r;
  r.name = c.name;
  r.vocab_size = c.vocab_size;
  r.hidden_size = c.hidden_size;
  r.num_hidden_layers = c.num_hidden_layers;
  r.num_attention_heads = c.num_attention_heads;
  r.num_key_value_heads = c.num_key_value_heads;
  r.head_dim = c.head_dim;
  r.intermediate_size = c.intermediate_size;
  r.query_pre_attn_scalar = c.query_pre_attn_scalar;
  r.sliding_window = c.sliding_window;
  r.max_position_embeddings = c.max_position_embeddings;
  r.attn_logit_softcapping = c.attn_logit_softcapping;
  r.final_logit_softcapping = c.final_logit_softcapping;
  r.rope_theta = c.rope_theta;
  r.rms_norm_eps = c.rms_norm_eps;
  r.layer_types.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int i = 0; i < c.num_hidden_layers; ++i) r.layer_types[static_cast<size_t>(i)] = c.layer_type(i);
  return r;
}

namespace detail {
// The numeric fields of a config, by their config.json keys: one list for
// parsing, writing, validating and comparing configs.
struct IntField {
  const char* key;
  int RuntimeConfig::*member;
};
struct FloatField {
  const char* key;
  float RuntimeConfig::*member;
};
inline constexpr IntField kIntFields[] = {
    {"vocab_size", &RuntimeConfig::vocab_size},
    {"hidden_size", &RuntimeConfig::hidden_size},
    {"num_hidden_layers", &RuntimeConfig::num_hidden_layers},
    {"num_attention_heads", &RuntimeConfig::num_attention_heads},
    {"num_key_value_heads", &RuntimeConfig::num_key_value_heads},
    {"head_dim", &RuntimeConfig::head_dim},
    {"intermediate_size", &RuntimeConfig::intermediate_size},
    {"sliding_window", &RuntimeConfig::sliding_window},
    {"max_position_embeddings", &RuntimeConfig::max_position_embeddings},
};
inline constexpr FloatField kFloatFields[] = {
    {"query_pre_attn_scalar", &RuntimeConfig::query_pre_attn_scalar},
    {"attn_logit_softcapping", &RuntimeConfig::attn_logit_softcapping},
    {"final_logit_softcapping", &RuntimeConfig::final_logit_softcapping},
    {"rope_theta", &RuntimeConfig::rope_theta},
    {"rms_norm_eps", &RuntimeConfig::rms_norm_eps},
};

// A double read from a file as float; false when it is finite but beyond
// float's range (casting it would be undefined behaviour, not infinity).
inline bool narrow_to_float(double d, float* out) {
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) return false;
  *out = static_cast<float>(d);
  return true;
}

// The reference's pattern where a config lists no layer types (older
// config.json files, GGUF): layer 0 local, then alternating. Empty for an
// absurd layer count, which validate() then reports.
inline std::vector<AttentionKind> alternating_layer_types(int layers) {
  std::vector<AttentionKind> t;
  for (int i = 0; i < layers && layers <= 1024; ++i) t.push_back(i % 2 == 0 ? AttentionKind::Local : AttentionKind::Global);
  return t;
}
}  // namespace detail

// Checks that a configuration describes a model this library can run. Bounds
// keep every size derived from a config well inside int and size_t, so a
// hostile config.json cannot request absurd allocations.
inline Status validate(const RuntimeConfig& c) {
  using detail::err;
  constexpr int kMaxDim = 1 << 20;
  for (const auto& [field, member] : detail::kIntFields) {
    const int v = c.*member;
    if (v <= 0) return err("config: ", field, " must be positive, got ", v);
    if (v > kMaxDim && std::string(field) != "vocab_size")
      return err("config: ", field, " = ", v, " is larger than the supported ", kMaxDim);
  }
  if (c.vocab_size > (1 << 24)) return err("config: vocab_size = ", c.vocab_size, " is larger than 16777216");
  if (c.num_hidden_layers > 1024) return err("config: num_hidden_layers = ", c.num_hidden_layers, " is larger than 1024");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return err("config: num_attention_heads (", c.num_attention_heads, ") is not a multiple of num_key_value_heads (",
               c.num_key_value_heads, ")");
  if (c.head_dim % 2 != 0) return err("config: head_dim must be even for rotary embeddings, got ", c.head_dim);
  if (static_cast<int64_t>(c.num_attention_heads) * c.head_dim > kMaxDim)
    return err("config: num_attention_heads * head_dim = ",
               static_cast<int64_t>(c.num_attention_heads) * c.head_dim, " is too large");
  for (const auto& [field, member] : detail::kFloatFields)  // all of them are positive scales
    if (!(std::isfinite(c.*member) && c.*member > 0))
      return err("config: ", field, " must be a positive finite number, got ", c.*member);
  if (c.layer_types.size() != static_cast<size_t>(c.num_hidden_layers))
    return err("config: layer_types has ", c.layer_types.size(), " entries but num_hidden_layers is ",
               c.num_hidden_layers);
  return {};
}

// Checks that `actual` (e.g. from config.json) matches the Config a model type
// was compiled for. The error names the field and both values.
template <class Config>
Status check_matches(const Config& expected, const RuntimeConfig& actual) {
  using detail::err;
  const RuntimeConfig e = to_runtime(expected);
  for (const auto& [field, member] : detail::kIntFields)
    if (e.*member != actual.*member)
      return err("config.json ", field, " = ", actual.*member, " but the model type ", e.name, " expects ", e.*member);
  for (const auto& [field, member] : detail::kFloatFields)
    if (e.*member != actual.*member)
      return err("config.json ", field, " = ", actual.*member, " but the model type ", e.name, " expects ", e.*member);
  if (e.layer_types != actual.layer_types)
    return err("config.json layer_types does not match the local/global pattern of ", e.name);
  return {};
}

GEMMA2_END_NAMESPACE
