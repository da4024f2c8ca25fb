// Model configurations (docs/ARCHITECTURE.md: configs are data).
//
// A Config is any type with the fields below. The presets are empty structs of
// `static constexpr` members, so the compiler sees fixed sizes; RuntimeConfig
// has the same fields as ordinary members, filled from config.json or GGUF
// metadata, so any valid Gemma 2 checkpoint loads. Model code reads
// `config.field` and never branches on the model size: the local/global
// pattern comes from `layer_type(i)`. GEMMA2_CONFIG_FIELDS below is the one
// list of the numeric fields; conversion, validation, comparison, the
// config.json and GGUF readers and writers and a saved session's fingerprint
// all walk it.
#pragma once

#include <cmath>
#include <limits>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// Gemma 2 interleaves local sliding-window and global attention layers
// (Gemma 2 paper, Section 2.2).
enum class AttentionKind { Local, Global };

namespace detail {
// The reference's pattern (Hugging Face's layer_types, llama.cpp's GGUF
// reading): layer 0 slides, then they alternate.
constexpr AttentionKind alternating_layer_type(int layer) {
  return layer % 2 == 0 ? AttentionKind::Local : AttentionKind::Global;
}

// Fields shared by every published Gemma 2 size (Gemma 2 paper, Table 1).
struct PresetCommon {
  static constexpr int vocab_size = 256000;
  static constexpr int sliding_window = 4096;
  static constexpr int max_position_embeddings = 8192;
  static constexpr float attn_logit_softcapping = 50.0f;
  static constexpr float final_logit_softcapping = 30.0f;
  static constexpr float rope_theta = 10000.0f;
  static constexpr float rms_norm_eps = 1e-6f;
  static constexpr AttentionKind layer_type(int layer) { return alternating_layer_type(layer); }
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

// The numeric fields of a config, one X(name, gguf_key, fingerprint_slot)
// each, in RuntimeConfig's order. `name` is the member and its config.json
// key; `gguf_key` the metadata key llama.cpp's converter writes (nullptr:
// none; vocab_size comes from the embedding's shape); `fingerprint_slot` its
// place in a saved session's model fingerprint (-1: the saved state does not
// depend on it). Slots are part of the session format: never renumber them.
#define GEMMA2_CONFIG_FIELDS(X)                                         \
  X(vocab_size, nullptr, 0)                                             \
  X(hidden_size, "gemma2.embedding_length", 1)                          \
  X(num_hidden_layers, "gemma2.block_count", 2)                         \
  X(num_attention_heads, "gemma2.attention.head_count", 3)              \
  X(num_key_value_heads, "gemma2.attention.head_count_kv", 4)           \
  X(head_dim, "gemma2.attention.key_length", 5)                         \
  X(intermediate_size, "gemma2.feed_forward_length", 6)                 \
  X(query_pre_attn_scalar, "gemma2.attention.query_pre_attn_scalar", 8) \
  X(sliding_window, "gemma2.attention.sliding_window", 7)               \
  X(max_position_embeddings, "gemma2.context_length", -1)               \
  X(attn_logit_softcapping, "gemma2.attn_logit_softcapping", 11)        \
  X(final_logit_softcapping, "gemma2.final_logit_softcapping", -1)      \
  X(rope_theta, "gemma2.rope.freq_base", 9)                             \
  X(rms_norm_eps, "gemma2.attention.layer_norm_rms_epsilon", 10)

// The runtime view of any Config (a preset's constants, or a copy).
template <class Config>
RuntimeConfig to_runtime(const Config& c) {
  RuntimeConfig r;
  r.name = c.name;
#define GEMMA2_COPY_FIELD(name, gguf_key, slot) r.name = c.name;
  GEMMA2_CONFIG_FIELDS(GEMMA2_COPY_FIELD)
#undef GEMMA2_COPY_FIELD
  r.layer_types.resize(static_cast<size_t>(c.num_hidden_layers));
  for (int i = 0; i < c.num_hidden_layers; ++i) r.layer_types[static_cast<size_t>(i)] = c.layer_type(i);
  return r;
}

namespace detail {
// One entry of GEMMA2_CONFIG_FIELDS as data: exactly one of the member
// pointers is set.
struct ConfigField {
  const char* key;
  int RuntimeConfig::*int_member;
  float RuntimeConfig::*float_member;
  const char* gguf_key;
  int fingerprint_slot;
};
constexpr ConfigField config_field(const char* key, int RuntimeConfig::*m, const char* gguf_key, int slot) {
  return {key, m, nullptr, gguf_key, slot};
}
constexpr ConfigField config_field(const char* key, float RuntimeConfig::*m, const char* gguf_key, int slot) {
  return {key, nullptr, m, gguf_key, slot};
}
#define GEMMA2_FIELD_ENTRY(name, gguf_key, slot) config_field(#name, &RuntimeConfig::name, gguf_key, slot),
inline constexpr ConfigField kConfigFields[] = {GEMMA2_CONFIG_FIELDS(GEMMA2_FIELD_ENTRY)};
#undef GEMMA2_FIELD_ENTRY
// Slots 0..11 and the layer pattern in slot 12.
inline constexpr int kFingerprintSlots = 13;

// Calls f(field, value) for every field of `c` (a RuntimeConfig, const or
// not), value being an int& or a float&.
template <class Cfg, class F>
void for_each_field(Cfg& c, F&& f) {
  for (const ConfigField& field : kConfigFields) {
    if (field.int_member) f(field, c.*field.int_member);
    else f(field, c.*field.float_member);
  }
}

// The layer types where a config lists none (older config.json files,
// GGUF). Empty for an absurd layer count, which validate() then reports.
inline std::vector<AttentionKind> alternating_layer_types(int layers) {
  std::vector<AttentionKind> t;
  for (int i = 0; i < layers && layers <= 1024; ++i) t.push_back(alternating_layer_type(i));
  return t;
}
}  // namespace detail

// Checks that a configuration describes a model this library can run. Bounds
// keep every size derived from a config well inside int and size_t, so a
// hostile config.json cannot request absurd allocations.
inline Status validate(const RuntimeConfig& c) {
  using detail::err;
  constexpr int kMaxDim = 1 << 20;
  Status status;
  detail::for_each_field(c, [&](const detail::ConfigField& field, auto v) {
    if (!status) return;
    if constexpr (std::is_same_v<decltype(v), int>) {
      if (v <= 0) status = err("config: ", field.key, " must be positive, got ", v);
      else if (v > kMaxDim && field.int_member != &RuntimeConfig::vocab_size)
        status = err("config: ", field.key, " = ", v, " is larger than the supported ", kMaxDim);
    } else if (!(std::isfinite(v) && v > 0)) {  // every float field is a positive scale
      status = err("config: ", field.key, " must be a positive finite number, got ", v);
    }
  });
  if (!status) return status;
  if (c.vocab_size > (1 << 24)) return err("config: vocab_size = ", c.vocab_size, " is larger than 16777216");
  if (c.num_hidden_layers > 1024)
    return err("config: num_hidden_layers = ", c.num_hidden_layers, " is larger than 1024");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return err("config: num_attention_heads (", c.num_attention_heads, ") is not a multiple of num_key_value_heads (",
               c.num_key_value_heads, ")");
  if (c.head_dim % 2 != 0) return err("config: head_dim must be even for rotary embeddings, got ", c.head_dim);
  if (static_cast<int64_t>(c.num_attention_heads) * c.head_dim > kMaxDim)
    return err("config: num_attention_heads * head_dim = ", static_cast<int64_t>(c.num_attention_heads) * c.head_dim,
               " is too large");
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
  for (const detail::ConfigField& f : detail::kConfigFields) {
    if (f.int_member && e.*f.int_member != actual.*f.int_member)
      return err("config.json ", f.key, " = ", actual.*f.int_member, " but the model type ", e.name, " expects ",
                 e.*f.int_member);
    if (f.float_member && e.*f.float_member != actual.*f.float_member)
      return err("config.json ", f.key, " = ", actual.*f.float_member, " but the model type ", e.name, " expects ",
                 e.*f.float_member);
  }
  if (e.layer_types != actual.layer_types)
    return err("config.json layer_types does not match the local/global pattern of ", e.name);
  return {};
}

namespace detail {
// The configuration a saved session's keys and values depend on, as the
// u64 words Session::save writes: the fields with a fingerprint slot (ints as
// they are, floats as their bits) and the layer pattern.
inline std::vector<uint64_t> config_fingerprint(const RuntimeConfig& c) {
  std::vector<uint64_t> words(kFingerprintSlots);
  for_each_field(c, [&](const ConfigField& field, auto v) {
    if (field.fingerprint_slot < 0) return;
    uint64_t word = 0;
    if constexpr (std::is_same_v<decltype(v), float>) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      word = bits;
    } else {
      word = static_cast<uint64_t>(v);
    }
    words[static_cast<size_t>(field.fingerprint_slot)] = word;
  });
  uint64_t layers = 0;
  for (AttentionKind kind : c.layer_types) layers = layers * 31 + (kind == AttentionKind::Local ? 1 : 2);
  words[kFingerprintSlots - 1] = layers;
  return words;
}
}  // namespace detail

GEMMA2_END_NAMESPACE
