// Typed views of weight tensors: the one seam between layer code and storage
// (DESIGN.md, property 2). Layers hold Matrix views and call matmul(); the
// dtype picks the kernel. The data usually points into a memory-mapped
// checkpoint and is never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Storage types of weights.
enum class DType { F32, BF16, F16 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
  }
  return "?";
}

inline size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

// Storage element types (bfloat16 and IEEE half); their values convert
// exactly to float.
struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) {
  const uint32_t u = static_cast<uint32_t>(x.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float to_float(f16 x) {
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  uint32_t exp = (x.bits >> 10) & 0x1fu;
  uint32_t mant = x.bits & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);  // Inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;  // signed zero
  } else {     // subnormal: normalise the mantissa
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Rounds to nearest even, as PyTorch does when it casts float32 to bfloat16.
inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

// A row-major [rows][cols] weight matrix (Hugging Face layout: [out][in]).
struct Matrix {
  DType dtype = DType::F32;
  int rows = 0;
  int cols = 0;
  const std::byte* data = nullptr;

  const std::byte* row(int r) const {
    return data + static_cast<size_t>(r) * static_cast<size_t>(cols) * dtype_size(dtype);
  }
  size_t bytes() const { return static_cast<size_t>(rows) * static_cast<size_t>(cols) * dtype_size(dtype); }
};

namespace detail {
// Calls f with a null pointer of the element type of `t`, to dispatch a
// template on the runtime dtype in one place.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::BF16: return f(static_cast<const bf16*>(nullptr));
    case DType::F16: return f(static_cast<const f16*>(nullptr));
    case DType::F32: break;
  }
  return f(static_cast<const float*>(nullptr));
}

// Converts n stored elements to float.
inline void convert_to_float(DType t, const std::byte* src, float* dst, size_t n) {
  visit_dtype(t, [&](auto tag) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, src + i * sizeof(T), sizeof(T));
      dst[i] = to_float(v);
    }
  });
}
}  // namespace detail

GEMMA2_END_NAMESPACE
