// Typed views of weight tensors: the one seam between layer code and storage
// (DESIGN.md, property 2). Layers hold Matrix views and call matmul(); the
// dtype picks the kernel. The data usually points into a memory-mapped
// checkpoint and is never copied.
#pragma once

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

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
// The library's own block formats (made at load, integer decode kernels).
constexpr bool is_quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }
// llama.cpp's K-quant super-block formats (read from GGUF only).
constexpr bool is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }
// Stored in blocks: rows convert to float with dequantize_row.
constexpr bool is_blocked(DType t) { return is_quantized(t) || is_kquant(t); }

// Bytes of one element (element types only).
inline size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }

// Bytes of one row of `cols` weights (cols a multiple of 32 for block types).
inline size_t row_bytes(DType t, int cols) {
  const auto n = static_cast<size_t>(cols);
  if (t == DType::Q8_0) return n + n / kQuantBlock * 2;
  if (t == DType::Q4_0) return n / 2 + n / kQuantBlock * 2;
  if (t == DType::Q4_K) return n / kSuperBlock * 144;
  if (t == DType::Q5_K) return n / kSuperBlock * 176;
  if (t == DType::Q6_K) return n / kSuperBlock * 210;
  return n * dtype_size(t);
}

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

// A row-major [rows][cols] weight matrix (Hugging Face layout: [out][in]).
namespace detail {
struct Kernels;
}

// Block-format rows may instead be stored interleaved, for kernel sets
// whose products read several rows per activation load (chosen at load:
// Kernels::interleaved_rows; the file is untouched and the bits per weight
// are the same). Rows go in groups of kInterleave (the last one padded with
// zero rows), block by block: each block of a group holds that block of
// all 8 rows, laid out so that one 64-byte load holds 8 bytes of each row,
// to multiply by 8 activation bytes broadcast to every row (llama.cpp's
// 8x8 repackings are the same idea).
//   Q8_0/Q4_0, per block of 32 columns: the 8 rows' f16 scales, then their
//     values in units of 8 bytes, unit-major:
//       [d_0 .. d_7 | unit 0 of rows 0..7 | unit 1 of rows 0..7 | ...]
//     Q4_0 values are the stored nibbles q + 8 (byte i: weights i and
//     i + 16), Q8_0 values are stored q + 128: unsigned, as
//     vpmaddubsw/vpdpbusd want them, with the offset taken out once per
//     block through Σx (interleaved_offset).
//   K-quants, per super-block of 256 columns: the header fields of the 8
//     rows side by side (d_0..d_7, then dmin_0..dmin_7 for Q4_K/Q5_K, then
//     each packed scale byte of the 8 rows), then 8 units of 32 weights:
//     the low 4 bits of the stored values as for Q4_0 (128 bytes), then
//     for Q5_K's fifth bit and Q6_K's fifth and sixth, one bit plane each:
//     4 masks of 64 bits, mask k's bit 8·row + i for weight 8k + i of the
//     unit, the same order as the vectors the nibbles fill.
constexpr int kInterleave = 8;
// The offset of an interleaved Q8_0/Q4_0 matrix's stored values.
inline int32_t interleaved_offset(DType t) { return t == DType::Q8_0 ? 128 : t == DType::Q4_0 ? 8 : 0; }
inline int interleaved_groups(int rows) { return (rows + kInterleave - 1) / kInterleave; }
// Columns of one interleaved block, and its bytes for the 8 rows.
inline int interleaved_block_cols(DType t) { return is_kquant(t) ? kSuperBlock : kQuantBlock; }
inline size_t interleaved_block_bytes(DType t) { return kInterleave * row_bytes(t, interleaved_block_cols(t)); }
// Bit planes above the low 4 bits of a K-quant's stored values, and the
// offset of unit 0 in an interleaved super-block (after the headers).
inline int kquant_planes(DType t) { return t == DType::Q4_K ? 0 : t == DType::Q5_K ? 1 : 2; }
inline size_t kquant_header_bytes(DType t) { return kInterleave * (t == DType::Q6_K ? 18 : 16); }
inline size_t kquant_unit_bytes(DType t) { return 128 + 32 * static_cast<size_t>(kquant_planes(t)); }

struct Matrix {
  DType dtype = DType::F32;
  int rows = 0;
  int cols = 0;
  const std::byte* data = nullptr;
  // The kernel set products with this matrix use (set at load from
  // LoadOptions::kernels); null: the process default.
  const detail::Kernels* kernels = nullptr;
  bool interleaved = false;  // rows in groups of kInterleave (above)
  // The prefill GEMM of BF16 weights may round activations to bf16
  // (LoadOptions::prefill_precision).
  bool bf16_activations = false;

  // Row r of a matrix stored row by row (not interleaved: see plain_row).
  const std::byte* row(int r) const { return data + static_cast<size_t>(r) * row_bytes(dtype, cols); }
  // The bytes of one group of kInterleave rows of an interleaved matrix.
  size_t group_bytes() const { return kInterleave * row_bytes(dtype, cols); }
  size_t bytes() const {
    return interleaved ? interleaved_groups(rows) * group_bytes() : static_cast<size_t>(rows) * row_bytes(dtype, cols);
  }
};

namespace detail {
// Calls f with a null pointer of the element type of `t`, to dispatch a
// template on the runtime dtype in one place.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::BF16: return f(static_cast<const bf16*>(nullptr));
    case DType::F16: return f(static_cast<const f16*>(nullptr));
    default: break;  // F32 (block formats are dispatched by their callers)
  }
  return f(static_cast<const float*>(nullptr));
}

inline float half_at(const std::byte* p) {
  f16 h;
  std::memcpy(&h, p, sizeof h);
  return to_float(h);
}

// 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block, packed in 12
// bytes: j < 4 in the low 6 bits of bytes j and j + 4; the others split
// between the low/high nibble of byte j + 4 and the top 2 bits of bytes
// j - 4 and j.
inline void kquant_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// kquant_scale_min on whole words, for the SIMD kernels: byte i of a, b
// and c holds packed bytes k, k + 4 and k + 8 of one scale set (k from the
// byte's place), and the same byte of the results is that set's scale and
// min of sub-block k (lo) and k + 4 (hi). The masks keep each byte's bits
// from its neighbours.
template <class Word>
void kquant_scale_min_words(Word a, Word b, Word c, Word* sc_lo, Word* sc_hi, Word* m_lo, Word* m_hi) {
  const Word low6 = static_cast<Word>(0x3f3f3f3f3f3f3f3full), low4 = static_cast<Word>(0x0f0f0f0f0f0f0f0full),
             top2 = static_cast<Word>(0x0303030303030303ull);
  *sc_lo = a & low6;
  *m_lo = b & low6;
  *sc_hi = (c & low4) | (((a >> 6) & top2) << 4);
  *m_hi = ((c >> 4) & low4) | (((b >> 6) & top2) << 4);
}

// The 8 scales and mins of a Q4_K/Q5_K super-block at once: byte j of *sc
// and *m (little-endian) is kquant_scale_min(j).
inline void kquant_scales_mins(const std::byte* q, uint64_t* sc, uint64_t* m) {
  uint32_t w[3], sc_lo, sc_hi, m_lo, m_hi;
  std::memcpy(w, q, sizeof w);
  kquant_scale_min_words(w[0], w[1], w[2], &sc_lo, &sc_hi, &m_lo, &m_hi);
  *sc = sc_lo | static_cast<uint64_t>(sc_hi) << 32;
  *m = m_lo | static_cast<uint64_t>(m_hi) << 32;
}

// A K-quant super-block as integers: weight i is scale[g]·q[i] − bias[g] for
// its group g = i / 16 of 16 weights. One unpacking of the bit layout serves
// dequantization and the portable integer kernels.
//   Q4_K: [d f16 | dmin f16 | scales 12 | qs 128]; each 64 weights use two
//     sub-block (scale, min) pairs: low nibbles then high nibbles of 32
//     bytes; scale = d·sc, bias = dmin·m for both groups of a sub-block.
//   Q5_K: [d | dmin | scales 12 | qh 32 | qs 128]; as Q4_K with a fifth bit
//     from qh (bit 2i for the low nibbles of chunk i, 2i + 1 for the high).
//   Q6_K: [ql 128 | qh 64 | scales 16 int8 | d f16]; per 128 weights, 4-bit
//     values from 64 ql bytes and 2 high bits from 32 qh bytes, minus 32,
//     each group with its own int8 scale (scale = d·sc, bias 0).
struct SuperBlockInts {
  int8_t q[kSuperBlock];
  float scale[kSuperBlock / 16], bias[kSuperBlock / 16];
};

// Each loop below runs over 16 or 32 values that share one scale, so the
// compiler vectorises it (the portable decode path depends on it).
inline void unpack_superblock(DType t, const std::byte* block, SuperBlockInts& s) {
  const auto* b = reinterpret_cast<const uint8_t*>(block);
  if (t == DType::Q6_K) {
    const float d = half_at(block + 208);
    for (int n = 0; n < 2; ++n) {
      const uint8_t *ql = b + 64 * n, *qh = b + 128 + 32 * n;
      for (int part = 0; part < 4; ++part) {  // weights 32·part .. 32·part + 31 of this half
        const uint8_t* lo = ql + 32 * (part & 1);
        const int shift = 4 * (part >> 1);
        int8_t* q = s.q + 128 * n + 32 * part;
        for (int l = 0; l < 32; ++l)
          q[l] = static_cast<int8_t>((((lo[l] >> shift) & 0xf) | (((qh[l] >> (2 * part)) & 3) << 4)) - 32);
      }
    }
    for (int g = 0; g < 16; ++g) {
      s.scale[g] = d * static_cast<float>(static_cast<int8_t>(b[192 + g]));
      s.bias[g] = 0.0f;
    }
    return;
  }
  const float d = half_at(block), dmin = half_at(block + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;  // Q5_K only
  const bool five = t == DType::Q5_K;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int j = 0; j < 8; ++j) {  // sub-block j: nibbles (j % 2 ? high : low) of bytes 32·(j / 2) ..
    uint8_t sc, m;
    kquant_scale_min(j, scales, &sc, &m);
    s.scale[2 * j] = s.scale[2 * j + 1] = d * sc;
    s.bias[2 * j] = s.bias[2 * j + 1] = dmin * m;
    const uint8_t* q = qs + 32 * (j / 2);
    int8_t* out = s.q + 32 * j;
    for (int l = 0; l < 32; ++l) out[l] = static_cast<int8_t>(j % 2 ? q[l] >> 4 : q[l] & 0xf);
    if (five)
      for (int l = 0; l < 32; ++l) out[l] = static_cast<int8_t>(out[l] | (((qh[l] >> j) & 1) << 4));
  }
}

// One super-block of 256 weights to float.
inline void dequantize_superblock(DType t, const std::byte* block, float* y) {
  SuperBlockInts s;
  unpack_superblock(t, block, s);
  for (int g = 0; g < kSuperBlock / 16; ++g)
    for (int l = 0; l < 16; ++l) y[16 * g + l] = s.scale[g] * static_cast<float>(s.q[16 * g + l]) - s.bias[g];
}

// One row of a block format to float.
inline void dequantize_row(DType t, const std::byte* row, float* dst, int cols) {
  if (is_kquant(t)) {
    const size_t bytes = row_bytes(t, kSuperBlock);
    for (int b = 0; b < cols / kSuperBlock; ++b) dequantize_superblock(t, row + b * bytes, dst + b * kSuperBlock);
    return;
  }
  const int blocks = cols / kQuantBlock;
  const std::byte* scales = row + (t == DType::Q8_0 ? cols : cols / 2);
  for (int b = 0; b < blocks; ++b) {
    const float d = half_at(scales + 2 * b);
    float* out = dst + b * kQuantBlock;
    if (t == DType::Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i) out[i] = d * static_cast<float>(static_cast<int8_t>(row[b * kQuantBlock + i]));
    } else {  // byte j of a block: low nibble = weight j, high nibble = weight j + 16
      for (int j = 0; j < kQuantBlock / 2; ++j) {
        const auto q = static_cast<uint8_t>(row[b * kQuantBlock / 2 + j]);
        out[j] = d * static_cast<float>((q & 0x0f) - 8);
        out[j + kQuantBlock / 2] = d * static_cast<float>((q >> 4) - 8);
      }
    }
  }
}

// One row of floats to a block format (cols a multiple of 32). Q8_0:
// d = max|x| / 127, q = round(x / d). Q4_0: d = -m / 8 for the value m of
// largest magnitude, q = clamp(round(x / d) + 8, 0, 15), so m maps to 0 exactly.
inline void quantize_row(DType t, const float* x, std::byte* row, int cols) {
  std::byte* scales = row + (t == DType::Q8_0 ? cols : cols / 2);
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    const float* v = x + b * kQuantBlock;
    float m = 0.0f;
    for (int i = 0; i < kQuantBlock; ++i)
      if (std::fabs(v[i]) > std::fabs(m)) m = v[i];
    const float d = t == DType::Q8_0 ? std::fabs(m) / 127.0f : -m / 8.0f;
    const f16 dh = to_f16(d);
    std::memcpy(scales + 2 * b, &dh, sizeof dh);
    const float dq = to_float(dh);  // quantize against the scale as stored
    const float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    if (t == DType::Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i)
        row[b * kQuantBlock + i] = static_cast<std::byte>(static_cast<int8_t>(std::nearbyint(v[i] * id)));
    } else {
      for (int j = 0; j < kQuantBlock / 2; ++j) {
        auto q = [&](float f) { return static_cast<uint8_t>(std::min(15.0f, std::max(0.0f, std::nearbyint(f * id) + 8.0f))); };
        row[b * kQuantBlock / 2 + j] = static_cast<std::byte>(q(v[j]) | (q(v[j + kQuantBlock / 2]) << 4));
      }
    }
  }
}

// A bit field of 8 consecutive bytes of a layout and 8 consecutive values,
// in the direction asked (the destination starts at zero), so that each
// layout below is written once for reading and writing; one 64-bit word
// holds the 8 fields (shift + width and value_shift + width stay within a
// byte, so no bit crosses into a neighbour).
template <bool ToValues>
void move_bits(uint8_t* bytes, int shift, uint8_t* values, int value_shift, int width) {
  const uint64_t mask = ((uint64_t{1} << width) - 1) * 0x0101010101010101ull;
  uint64_t b, v;
  std::memcpy(&b, bytes, 8);
  std::memcpy(&v, values, 8);
  if constexpr (ToValues) {
    v |= ((b >> shift) & mask) << value_shift;
    std::memcpy(values, &v, 8);
  } else {
    b |= ((v >> value_shift) & mask) << shift;
    std::memcpy(bytes, &b, 8);
  }
}

// The stored values of a K-quant super-block (unsigned: Q4_K 0..15, Q5_K
// 0..31, Q6_K q + 32) in ggml's layout `b` (unpack_superblock), to v or back.
template <bool ToValues>
void kquant_plain_values(DType t, uint8_t* b, uint8_t* v) {
  if (t == DType::Q6_K) {
    for (int n = 0; n < 2; ++n)
      for (int part = 0; part < 4; ++part)
        for (int l = 0; l < 32; l += 8) {
          uint8_t* value = v + 128 * n + 32 * part + l;
          move_bits<ToValues>(b + 64 * n + 32 * (part & 1) + l, 4 * (part >> 1), value, 0, 4);
          move_bits<ToValues>(b + 128 + 32 * n + l, 2 * part, value, 4, 2);
        }
    return;
  }
  const bool five = t == DType::Q5_K;
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; l += 8) {
      move_bits<ToValues>(b + (five ? 48 : 16) + 32 * (j / 2) + l, 4 * (j % 2), v + 32 * j + l, 0, 4);
      if (five) move_bits<ToValues>(b + 16 + l, j, v + 32 * j + l, 4, 1);
    }
  }
}

// Bit `bit` of 8 values (bytes) and the 8 bits of one mask byte, in the
// direction asked: multiplications gather the bits (bit i of byte i lands at
// bit 56 + i) or spread them, a byte per bit.
template <bool ToValues>
void move_plane(uint8_t& mask, int bit, uint8_t* values) {
  constexpr uint64_t ones = 0x0101010101010101ull;
  uint64_t w;
  std::memcpy(&w, values, 8);
  if constexpr (ToValues) {
    const uint64_t set = (mask * ones) & 0x8040201008040201ull;  // byte i: bit i of mask, in place
    w |= (((set + 0x7f7f7f7f7f7f7f7full) >> 7) & ones) << bit;
    std::memcpy(values, &w, 8);
  } else {
    mask = static_cast<uint8_t>((((w >> bit) & ones) * 0x0102040810204080ull) >> 56);
  }
}

// The same values of row `row` of an interleaved super-block `g`.
template <bool ToValues>
void kquant_group_values(DType t, int row, uint8_t* g, uint8_t* v) {
  const int planes = kquant_planes(t);
  for (int s = 0; s < 8; ++s) {
    uint8_t *unit = g + kquant_header_bytes(t) + s * kquant_unit_bytes(t), *value = v + 32 * s;
    for (int u = 0; u < 2; ++u) {  // the row's 8 bytes in unit u: weights 8u + i (low) and 16 + 8u + i (high)
      move_bits<ToValues>(unit + 64 * u + 8 * row, 0, value + 8 * u, 0, 4);
      move_bits<ToValues>(unit + 64 * u + 8 * row, 4, value + 16 + 8 * u, 0, 4);
    }
    for (int p = 0; p < planes; ++p)
      for (int k = 0; k < 4; ++k) move_plane<ToValues>(unit[128 + 32 * p + 8 * k + row], 4 + p, value + 8 * k);
  }
}

// One super-block of row `row` between ggml's layout and its group's; the
// header fields (d, dmin, packed scales) are copied whole.
template <bool ToGroup>
void kquant_superblock_copy(DType t, int row, uint8_t* plain, uint8_t* group) {
  const bool six = t == DType::Q6_K;
  const int halves = six ? 1 : 2, scale_bytes = six ? 16 : 12, halves_at = six ? 208 : 0, scales_at = six ? 192 : 4;
  auto copy = [](uint8_t* p, uint8_t* g, size_t n) { ToGroup ? std::memcpy(g, p, n) : std::memcpy(p, g, n); };
  for (int h = 0; h < halves; ++h) copy(plain + halves_at + 2 * h, group + 2 * kInterleave * h + 2 * row, 2);
  for (int k = 0; k < scale_bytes; ++k) copy(plain + scales_at + k, group + 2 * kInterleave * halves + kInterleave * k + row, 1);
  uint8_t v[kSuperBlock] = {};
  if constexpr (ToGroup) {
    kquant_plain_values<true>(t, plain, v);
    kquant_group_values<false>(t, row, group, v);
  } else {
    kquant_group_values<true>(t, row, group, v);
    std::fill(plain + (six ? 0 : 16), plain + (six ? 192 : row_bytes(t, kSuperBlock)), uint8_t{0});
    kquant_plain_values<false>(t, plain, v);
  }
}

// Moves row r between the plain layout (`row`: Q8_0/Q4_0 values, then
// scales; K-quants as in the file) and the interleaved storage of its matrix
// (`storage`, Matrix::data, zeroed before rows are moved in): one function
// for both directions, so they cannot disagree.
template <bool ToGroup>
void interleaved_row_copy(DType t, int cols, int r, std::conditional_t<ToGroup, const std::byte*, std::byte*> row,
                          std::conditional_t<ToGroup, std::byte*, const std::byte*> storage) {
  const int j = r % kInterleave;
  const auto group = storage + static_cast<size_t>(r / kInterleave) * kInterleave * row_bytes(t, cols);
  if (is_kquant(t)) {  // the copy reads one side and writes the other
    auto bytes = [](auto* p) { return reinterpret_cast<uint8_t*>(const_cast<std::byte*>(p)); };
    for (int b = 0; b < cols / kSuperBlock; ++b)
      kquant_superblock_copy<ToGroup>(t, j, bytes(row + b * row_bytes(t, kSuperBlock)),
                                      bytes(group + b * interleaved_block_bytes(t)));
    return;
  }
  const int blocks = cols / kQuantBlock, qs = t == DType::Q8_0 ? kQuantBlock : kQuantBlock / 2;
  const auto flip = static_cast<uint8_t>(t == DType::Q8_0 ? 0x80 : 0);  // q + 128 in groups
  for (int b = 0; b < blocks; ++b) {
    auto gb = group + static_cast<size_t>(b) * interleaved_block_bytes(t);
    auto scale = row + static_cast<size_t>(blocks) * qs + 2 * b;
    if constexpr (ToGroup) std::memcpy(gb + 2 * j, scale, 2);
    else std::memcpy(scale, gb + 2 * j, 2);
    for (int u = 0; u < qs / 8; ++u)
      for (int i = 0; i < 8; ++i) {
        auto& g = gb[2 * kInterleave + (u * kInterleave + j) * 8 + i];
        auto& p = row[b * qs + 8 * u + i];
        if constexpr (ToGroup) g = p ^ static_cast<std::byte>(flip);
        else p = g ^ static_cast<std::byte>(flip);
      }
  }
}

// Rows r0 <= r < r1 of the plain block-format matrix `plain` into the
// interleaved storage `dst` of the same shape (zeroed, as the padding rows
// of a last partial group are zero).
inline void interleave_rows(const Matrix& plain, std::byte* dst, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    interleaved_row_copy<true>(plain.dtype, plain.cols, static_cast<int>(r), plain.row(static_cast<int>(r)), dst);
}

// Row r of W in the plain layout: in place, or rebuilt in `scratch`
// (row_bytes(W.dtype, W.cols) bytes) when W is interleaved.
inline const std::byte* plain_row(const Matrix& W, int r, std::byte* scratch) {
  if (!W.interleaved) return W.row(r);
  interleaved_row_copy<false>(W.dtype, W.cols, r, scratch, W.data);
  return scratch;
}

// Converts n stored elements to float (for block formats: one whole row).
inline void convert_to_float(DType t, const std::byte* src, float* dst, size_t n) {
  if (is_blocked(t)) return dequantize_row(t, src, dst, static_cast<int>(n));
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
