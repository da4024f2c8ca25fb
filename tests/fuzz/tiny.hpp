// The model the fuzz targets build and make_seeds writes seeds for: small
// enough that loading it and running a token take microseconds, with local
// and global layers and a sliding window shorter than the context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <gemma2/gemma2.hpp>

namespace fuzz {

inline gemma2::RuntimeConfig tiny_config() {
  gemma2::RuntimeConfig c;
  c.name = "fuzz-tiny";
  c.vocab_size = 32;
  c.hidden_size = 8;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.intermediate_size = 16;
  c.query_pre_attn_scalar = 4;
  c.sliding_window = 4;
  c.max_position_embeddings = 16;
  c.layer_types = {gemma2::AttentionKind::Local, gemma2::AttentionKind::Global};
  return c;
}

inline std::vector<std::byte> bytes_of(const uint8_t* data, size_t size) {
  const auto* p = reinterpret_cast<const std::byte*>(data);
  return std::vector<std::byte>(p, p + size);
}

}  // namespace fuzz
