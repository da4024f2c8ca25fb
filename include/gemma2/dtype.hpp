// The element and storage types of weights (DType), and the exact
// conversions of the 16-bit float types. The layout of the block formats is
// in block_formats.hpp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Storage types of weights. Q8_0 and Q4_0 are block formats made at load
// time (LoadOptions::weight_type): blocks of 32 weights with one f16 scale,
// 8.5 and 4.5 bits per weight (the same budget as llama.cpp's Q8_0/Q4_0).
// A row of a block-format matrix holds its quantized values, then its
// scales: [cols int8 | cols/32 f16] or [cols/2 nibble bytes | cols/32 f16].
// Q4_K, Q5_K and Q6_K are llama.cpp's super-block formats, read from GGUF
// files and run in their own layout (256 weights per block; ggml-quants.h).
enum class DType { F32, BF16, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

constexpr int kQuantBlock = 32;
constexpr int kSuperBlock = 256;
// Q8_0 and Q4_0: blocks of 32 weights with one f16 scale, the formats the
// loader can quantize to (LoadOptions::weight_type), held in the library's
// split rows (block_formats.hpp).
constexpr bool is_block32(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }
// It said "quantized", but the K-quants are quantized too and it is false
// for them.
[[deprecated("use is_block32 (Q8_0/Q4_0), is_kquant or is_blocked")]] constexpr bool is_quantized(DType t) {
  return is_block32(t);
}
// llama.cpp's K-quant super-block formats (read from GGUF only).
constexpr bool is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }
// Stored in blocks (any of the above): rows convert to float with
// dequantize_row.
constexpr bool is_blocked(DType t) { return is_block32(t) || is_kquant(t); }

// Bytes of one element (element types only).
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

// IEEE half, rounded to nearest even (used for block scales).
inline f16 to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t sign = (u >> 16) & 0x8000u;
  u &= 0x7fffffffu;
  if (u >= 0x7f800000u) return f16{static_cast<uint16_t>(sign | 0x7c00u | (u > 0x7f800000u ? 0x200u : 0))};
  if (u >= 0x477ff000u) return f16{static_cast<uint16_t>(sign | 0x7c00u)};  // overflow to infinity
  if (u < 0x38800000u) {  // subnormal half (or zero): scale to an integer count of 2^-24
    float a;
    std::memcpy(&a, &u, sizeof a);
    return f16{static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(a * 16777216.0f)))};
  }
  const uint32_t mant = u & 0x1fffu, base = ((u >> 13) - (112u << 10));
  const uint32_t up = mant > 0x1000u || (mant == 0x1000u && (base & 1u));
  return f16{static_cast<uint16_t>(sign | (base + up))};
}

// Rounds to nearest even, as PyTorch does when it casts float32 to bfloat16.
inline bf16 to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
}

GEMMA2_END_NAMESPACE
