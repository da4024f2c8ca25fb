// The KV cache: per-sequence attention state, owned by the caller. The model
// never keeps per-sequence state, so one model serves many caches.
#pragma once

#include <cstddef>
#include <vector>

#include "gemma2/config.hpp"

GEMMA2_BEGIN_NAMESPACE

// Keys and values of every layer for positions [0, size()), stored as float
// rows of num_key_value_heads * head_dim. Positions are absolute: the next
// forward call on this cache starts at position size().
class KVCache {
 public:
  // A cache for `capacity` positions of a model with this config. Capacity
  // must be between 1 and the model's max_position_embeddings.
  template <class Config>
  static Result<KVCache> create(const Config& config, int capacity) {
    if (capacity < 1 || capacity > config.max_position_embeddings)
      return detail::err("KV cache capacity must be between 1 and max_position_embeddings (",
                         config.max_position_embeddings, "), got ", capacity);
    return KVCache(config.num_hidden_layers, config.num_key_value_heads * config.head_dim, capacity);
  }

  int num_layers() const { return num_layers_; }
  int kv_dim() const { return kv_dim_; }
  int capacity() const { return capacity_; }
  // Number of positions stored; the position of the next token.
  int size() const { return size_; }
  // Bytes held by the cache.
  size_t bytes() const { return (keys_.size() + values_.size()) * sizeof(float); }

  // Forgets positions from `size` on (no data is cleared: later writes
  // overwrite it). Fails if `size` is beyond what is stored.
  Status truncate(int size) {
    if (size < 0 || size > size_) return detail::err("cannot truncate a KV cache of ", size_, " positions to ", size);
    size_ = size;
    return {};
  }
  void clear() { size_ = 0; }

  // Row-major [capacity][kv_dim] keys and values of one layer.
  float* keys(int layer) { return keys_.data() + offset(layer); }
  float* values(int layer) { return values_.data() + offset(layer); }
  const float* keys(int layer) const { return keys_.data() + offset(layer); }
  const float* values(int layer) const { return values_.data() + offset(layer); }

  // Called by the model after it has written positions [size(), size)
  // in every layer.
  void set_size(int size) { size_ = size; }

 private:
  KVCache(int layers, int kv_dim, int capacity)
      : num_layers_(layers),
        kv_dim_(kv_dim),
        capacity_(capacity),
        keys_(static_cast<size_t>(layers) * static_cast<size_t>(capacity) * static_cast<size_t>(kv_dim)),
        values_(keys_.size()) {}
  size_t offset(int layer) const {
    return static_cast<size_t>(layer) * static_cast<size_t>(capacity_) * static_cast<size_t>(kv_dim_);
  }

  int num_layers_, kv_dim_, capacity_, size_ = 0;
  std::vector<float> keys_, values_;
};

GEMMA2_END_NAMESPACE
