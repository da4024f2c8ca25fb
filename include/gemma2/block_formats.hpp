// The block formats: ggml's blocks as structs, the library's split rows of
// Q8_0/Q4_0, and the conversions of a block-format row to and from float.
// Every kernel reads a block through these fields, never through numbers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "gemma2/dtype.hpp"

GEMMA2_BEGIN_NAMESPACE

// ggml's blocks, field for field in the order ggml-common.h declares
// block_q8_0, block_q4_0, block_q4_K, block_q5_K and block_q6_K (llama.cpp,
// ggml/src/ggml-common.h; QK_K = kSuperBlock, K_SCALE_SIZE = 12), with the
// sizes it asserts. The K-quants are stored in the library as in the file;
// Q8_0/Q4_0 keep a block's bytes but split each row (SplitRow below).
struct BlockQ8_0 {
  f16 d;                   // scale
  int8_t qs[kQuantBlock];  // weight i = d·qs[i]
};
struct BlockQ4_0 {
  f16 d;
  uint8_t qs[kQuantBlock / 2];  // byte j: weight j (low nibble) and j + 16 (high), each stored q + 8
};
struct BlockQ4_K {
  f16 d, dmin;                  // scales of the 6-bit sub-block scales and mins
  uint8_t scales[12];           // 8 (scale, min) pairs, 6 bits each (kquant_scale_min)
  uint8_t qs[kSuperBlock / 2];  // 4-bit values
};
struct BlockQ5_K {
  f16 d, dmin;
  uint8_t scales[12];
  uint8_t qh[kSuperBlock / 8];  // the fifth bit of each value
  uint8_t qs[kSuperBlock / 2];
};
struct BlockQ6_K {
  uint8_t ql[kSuperBlock / 2];      // low 4 bits
  uint8_t qh[kSuperBlock / 4];      // high 2 bits
  int8_t scales[kSuperBlock / 16];  // one per group of 16
  f16 d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18, "ggml's 32-weight blocks");
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210,
              "ggml's 256-weight super-blocks");
static_assert(offsetof(BlockQ6_K, scales) == 192 && offsetof(BlockQ6_K, d) == 208 && offsetof(BlockQ5_K, qs) == 48,
              "no padding between fields");

// The block struct of a block-format DType.
template <DType>
struct BlockOf;
template <>
struct BlockOf<DType::Q8_0> {
  using type = BlockQ8_0;
};
template <>
struct BlockOf<DType::Q4_0> {
  using type = BlockQ4_0;
};
template <>
struct BlockOf<DType::Q4_K> {
  using type = BlockQ4_K;
};
template <>
struct BlockOf<DType::Q5_K> {
  using type = BlockQ5_K;
};
template <>
struct BlockOf<DType::Q6_K> {
  using type = BlockQ6_K;
};
template <DType Q>
using BlockType = typename BlockOf<Q>::type;

// Bytes of one block of t (a block type) and the weights it holds.
constexpr size_t block_bytes(DType t) {
  return t == DType::Q8_0   ? sizeof(BlockQ8_0)
         : t == DType::Q4_0 ? sizeof(BlockQ4_0)
         : t == DType::Q4_K ? sizeof(BlockQ4_K)
         : t == DType::Q5_K ? sizeof(BlockQ5_K)
                            : sizeof(BlockQ6_K);
}
constexpr int weights_per_block(DType t) { return is_kquant(t) ? kSuperBlock : kQuantBlock; }

// Bytes of one row of `cols` weights (cols a multiple of 32 for block types).
inline size_t row_bytes(DType t, int cols) {
  const auto n = static_cast<size_t>(cols);
  if (is_blocked(t)) return n / static_cast<size_t>(weights_per_block(t)) * block_bytes(t);
  return n * dtype_size(t);
}

// A Q8_0/Q4_0 row in the library's split layout: the qs of every block in
// order, then every block's d, so that the values of consecutive blocks are
// one stream for the vector loads (the GGUF reader regroups ggml's blocks
// into it). Pointer: const or mutable std::byte.
template <class Pointer>
struct SplitRow {
  DType dtype;  // Q8_0 or Q4_0
  Pointer row;
  int cols;
  // Bytes of one block's values (sizeof qs).
  static constexpr size_t value_bytes(DType t) { return block_bytes(t) - sizeof(f16); }
  Pointer values(int b) const { return row + static_cast<size_t>(b) * value_bytes(dtype); }
  // The scales d of blocks 0, 1, ... (f16, 2 bytes apart).
  Pointer scales() const { return row + static_cast<size_t>(cols / kQuantBlock) * value_bytes(dtype); }
  Pointer scale(int b) const { return scales() + sizeof(f16) * static_cast<size_t>(b); }
};
template <class Pointer>
SplitRow<Pointer> split_row(DType t, Pointer row, int cols) {
  return {t, row, cols};
}

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
//   Q4_K (BlockQ4_K): each 64 weights use two sub-block (scale, min)
//     pairs: low nibbles then high nibbles of 32 bytes of qs; scale = d·sc,
//     bias = dmin·m for both groups of a sub-block.
//   Q5_K (BlockQ5_K): as Q4_K with a fifth bit from qh (bit 2i for the low
//     nibbles of chunk i, 2i + 1 for the high).
//   Q6_K (BlockQ6_K): per 128 weights, 4-bit values from 64 ql bytes and 2
//     high bits from 32 qh bytes, minus 32, each group with its own int8
//     scale (scale = d·sc, bias 0).
struct SuperBlockInts {
  int8_t q[kSuperBlock];
  float scale[kSuperBlock / 16], bias[kSuperBlock / 16];
};

// Each loop below runs over 16 or 32 values that share one scale, so the
// compiler vectorises it (the portable decode path depends on it).
inline void unpack_superblock(DType t, const std::byte* block, SuperBlockInts& s) {
  const auto* b = reinterpret_cast<const uint8_t*>(block);
  if (t == DType::Q6_K) {
    const float d = half_at(block + offsetof(BlockQ6_K, d));
    for (int n = 0; n < 2; ++n) {
      const uint8_t *ql = b + offsetof(BlockQ6_K, ql) + 64 * n, *qh = b + offsetof(BlockQ6_K, qh) + 32 * n;
      for (int part = 0; part < 4; ++part) {  // weights 32·part .. 32·part + 31 of this half
        const uint8_t* lo = ql + 32 * (part & 1);
        const int shift = 4 * (part >> 1);
        int8_t* q = s.q + 128 * n + 32 * part;
        for (int l = 0; l < 32; ++l)
          q[l] = static_cast<int8_t>((((lo[l] >> shift) & 0xf) | (((qh[l] >> (2 * part)) & 3) << 4)) - 32);
      }
    }
    for (int g = 0; g < 16; ++g) {
      s.scale[g] = d * static_cast<float>(static_cast<int8_t>(b[offsetof(BlockQ6_K, scales) + g]));
      s.bias[g] = 0.0f;
    }
    return;
  }
  // Q4_K's fields are Q5_K's without qh.
  const float d = half_at(block + offsetof(BlockQ4_K, d)), dmin = half_at(block + offsetof(BlockQ4_K, dmin));
  const uint8_t* scales = b + offsetof(BlockQ4_K, scales);
  const uint8_t* qh = b + offsetof(BlockQ5_K, qh);  // Q5_K only
  const bool five = t == DType::Q5_K;
  const uint8_t* qs = b + (five ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs));
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
    for (int b = 0; b < cols / kSuperBlock; ++b)
      dequantize_superblock(t, row + b * block_bytes(t), dst + b * kSuperBlock);
    return;
  }
  const auto split = split_row(t, row, cols);
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    const float d = half_at(split.scale(b));
    const std::byte* qs = split.values(b);
    float* out = dst + b * kQuantBlock;
    if (t == DType::Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i) out[i] = d * static_cast<float>(static_cast<int8_t>(qs[i]));
    } else {  // byte j of a block: low nibble = weight j, high nibble = weight j + 16
      for (int j = 0; j < kQuantBlock / 2; ++j) {
        const auto q = static_cast<uint8_t>(qs[j]);
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
  const auto split = split_row(t, row, cols);
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    const float* v = x + b * kQuantBlock;
    float m = 0.0f;
    for (int i = 0; i < kQuantBlock; ++i)
      if (std::fabs(v[i]) > std::fabs(m)) m = v[i];
    const float d = t == DType::Q8_0 ? std::fabs(m) / 127.0f : -m / 8.0f;
    const f16 dh = to_f16(d);
    std::memcpy(split.scale(b), &dh, sizeof dh);
    std::byte* qs = split.values(b);
    const float dq = to_float(dh);  // quantize against the scale as stored
    const float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    if (t == DType::Q8_0) {
      for (int i = 0; i < kQuantBlock; ++i)
        qs[i] = static_cast<std::byte>(static_cast<int8_t>(std::nearbyint(v[i] * id)));
    } else {
      for (int j = 0; j < kQuantBlock / 2; ++j) {
        auto q = [&](float f) {
          return static_cast<uint8_t>(std::min(15.0f, std::max(0.0f, std::nearbyint(f * id) + 8.0f)));
        };
        qs[j] = static_cast<std::byte>(q(v[j]) | (q(v[j + kQuantBlock / 2]) << 4));
      }
    }
  }
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
