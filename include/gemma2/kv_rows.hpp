// How a KV cache stores one position's keys or values (a row of kv_dim
// elements, head after head) and the view of stored rows that attention and
// the kernels read. It sits below the kernels (kernels/common.hpp reads rows
// through it) and below the cache policies (kv_cache.hpp), which own the
// rows' memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// Rows [first, first + count) of one layer's keys and values, each row
// kv_dim elements stored as `dtype` (F32, BF16, or Q8_0 per head: see
// detail::kv_head_bytes), rows detail::kv_row_bytes apart.
struct KVSegment {
  int first = 0;
  int count = 0;
  const void* keys = nullptr;
  const void* values = nullptr;
  DType dtype = DType::F32;
};

namespace detail {
// The storage types of the built-in caches: float (exact), bf16 (keys and
// values rounded to bf16) and int8_t (Q8_0: int8 with an f16 scale per 32
// values, as llama.cpp's q8_0 cache; 17/32 of bf16).
template <class Storage>
constexpr DType storage_dtype() {
  static_assert(std::is_same_v<Storage, float> || std::is_same_v<Storage, bf16> || std::is_same_v<Storage, int8_t>,
                "KV storage is float, bf16 or int8_t");
  return std::is_same_v<Storage, float> ? DType::F32 : std::is_same_v<Storage, bf16> ? DType::BF16 : DType::Q8_0;
}

// A row holds each key-value head's head_dim values in turn. In Q8_0 a head
// is whole blocks (a head_dim that is not a multiple of 32 is zero-padded),
// so each head's scales stay with it and a head is read on its own.
inline int kv_padded_head(int head_dim) { return (head_dim + kQuantBlock - 1) / kQuantBlock * kQuantBlock; }
inline size_t kv_head_bytes(DType t, int head_dim) {
  return is_blocked(t) ? row_bytes(t, kv_padded_head(head_dim)) : static_cast<size_t>(head_dim) * dtype_size(t);
}
inline size_t kv_row_bytes(DType t, int kv_dim, int head_dim) {
  if (head_dim < 1) return 0;  // an invalid shape, which create() refuses
  return static_cast<size_t>(kv_dim / head_dim) * kv_head_bytes(t, head_dim);
}

inline void kv_head_to_float(DType t, const std::byte* src, float* dst, int head_dim) {
  if (t != DType::Q8_0) return convert_to_float(t, src, dst, static_cast<size_t>(head_dim));
  const std::byte* scales = src + kv_padded_head(head_dim);  // Q8_0: values, then scales
  for (int b = 0; b * kQuantBlock < head_dim; ++b) {
    const float d = half_at(scales + 2 * b);
    for (int i = b * kQuantBlock; i < std::min(head_dim, (b + 1) * kQuantBlock); ++i)
      dst[i] = d * static_cast<float>(static_cast<int8_t>(src[i]));
  }
}

inline void kv_head_from_float(DType t, const float* src, std::byte* dst, int head_dim) {
  if (t == DType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(head_dim) * sizeof(float));
  } else if (t == DType::BF16) {
    for (int i = 0; i < head_dim; ++i) {
      const bf16 v = to_bf16(src[i]);
      std::memcpy(dst + 2 * i, &v, 2);
    }
  } else if (head_dim % kQuantBlock == 0) {
    quantize_row(t, src, dst, head_dim);
  } else {
    std::vector<float> padded(static_cast<size_t>(kv_padded_head(head_dim)), 0.0f);
    std::copy_n(src, head_dim, padded.data());
    quantize_row(t, padded.data(), dst, static_cast<int>(padded.size()));
  }
}

// One position's keys or values (kv_dim floats) to and from storage.
inline void kv_row_from_float(DType t, const float* src, std::byte* dst, int kv_dim, int head_dim) {
  for (int h = 0; h < kv_dim / head_dim; ++h)
    kv_head_from_float(t, src + h * head_dim, dst + h * kv_head_bytes(t, head_dim), head_dim);
}
inline void kv_row_to_float(DType t, const std::byte* src, float* dst, int kv_dim, int head_dim) {
  for (int h = 0; h < kv_dim / head_dim; ++h)
    kv_head_to_float(t, src + h * kv_head_bytes(t, head_dim), dst + h * head_dim, head_dim);
}
}  // namespace detail

GEMMA2_END_NAMESPACE
