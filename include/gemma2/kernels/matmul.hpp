// Matrix products against stored weights: Y = X · Wᵀ, with W row-major
// [out][in] as in the checkpoint. Two shapes matter (llama.cpp and gemma.cpp
// make the same split):
//  * decode (few rows of X): a dot product per weight row, streaming each
//    weight once from memory with SIMD conversion to float on the fly;
//  * prefill (many rows of X): on CPUs with AVX512-BF16, panels of W (BF16,
//    or block formats expanded to BF16) against activations rounded to BF16,
//    with vdpbf16ps accumulating in float32 — as llama.cpp and gemma.cpp do
//    for BF16 weights; otherwise tiles of W converted to float once and
//    multiplied with Eigen's blocked GEMM. F32 and F16 weights always take
//    the float path, so their results keep full precision.
// The SIMD width is chosen at compile time from the target flags
// (-mavx512f [-mavx512bf16], -mavx2 -mfma -mf16c, or none for portable
// scalar code).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <Eigen/Core>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "gemma2/thread_pool.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// Row-major float matrix used for activations.
using Activations = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {

#if defined(__AVX512F__)
#define GEMMA2_SIMD_LANES 16
using VecF = __m512;
inline VecF vzero() { return _mm512_setzero_ps(); }
inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
inline VecF vload(const bf16* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
inline VecF vload(const f16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(VecF a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define GEMMA2_SIMD_LANES 8
using VecF = __m256;
inline VecF vzero() { return _mm256_setzero_ps(); }
inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
inline VecF vload(const bf16* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
inline VecF vload(const f16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(VecF a) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
#else
#define GEMMA2_SIMD_LANES 1
#endif

// Register-tile loops must be unrolled fully, or their accumulators live in
// memory (GCC does not at -O2).
#define GEMMA2_UNROLL _Pragma("GCC unroll 16")

// out[t·out_stride + r] = Σ w[r][i]·X[t][i] for R weight rows (stride ldw)
// and T activation rows (stride ldx), weights widened to float on the fly.
// Decode uses T = 1 (R = 4 for inputs wider than L1 can hold); batched
// decode uses R = 1, T = 2..7, so each weight vector is loaded and widened
// once for all T rows.
template <int R, int T, class E>
void dot_tile(const E* w, int64_t ldw, const float* X, int64_t ldx, int n, float* out, int64_t out_stride) {
  int i = 0;
  float s[T][R] = {};
#if GEMMA2_SIMD_LANES > 1
  constexpr int L = GEMMA2_SIMD_LANES;
  VecF a0[T][R], a1[T][R];  // two chains per output hide the FMA latency
  GEMMA2_UNROLL
  for (int o = 0; o < T * R; ++o) a0[o / R][o % R] = a1[o / R][o % R] = vzero();
  for (; i + 2 * L <= n; i += 2 * L) {
    GEMMA2_UNROLL
    for (int r = 0; r < R; ++r) {
      const VecF w0 = vload(w + r * ldw + i), w1 = vload(w + r * ldw + i + L);
      GEMMA2_UNROLL
      for (int t = 0; t < T; ++t) {
        a0[t][r] = vfma(w0, vload(X + t * ldx + i), a0[t][r]);
        a1[t][r] = vfma(w1, vload(X + t * ldx + i + L), a1[t][r]);
      }
    }
  }
  for (; i + L <= n; i += L) {
    GEMMA2_UNROLL
    for (int r = 0; r < R; ++r) {
      const VecF w0 = vload(w + r * ldw + i);
      GEMMA2_UNROLL
      for (int t = 0; t < T; ++t) a0[t][r] = vfma(w0, vload(X + t * ldx + i), a0[t][r]);
    }
  }
  GEMMA2_UNROLL
  for (int o = 0; o < T * R; ++o) s[o / R][o % R] = vsum(a0[o / R][o % R]) + vsum(a1[o / R][o % R]);
#endif
  for (; i < n; ++i)
    for (int o = 0; o < T * R; ++o) s[o / R][o % R] += to_float(w[o % R * ldw + i]) * X[o / R * ldx + i];
  for (int o = 0; o < T * R; ++o) out[o / R * out_stride + o % R] = s[o / R][o % R];
}

// Stored elements to float, vectorised (tiles for the GEMM path).
template <class T>
void widen(const T* src, float* dst, int64_t n) {
  int64_t i = 0;
#if GEMMA2_SIMD_LANES > 1
  for (; i + GEMMA2_SIMD_LANES <= n; i += GEMMA2_SIMD_LANES) {
#if GEMMA2_SIMD_LANES == 16
    _mm512_storeu_ps(dst + i, vload(src + i));
#else
    _mm256_storeu_ps(dst + i, vload(src + i));
#endif
  }
#endif
  for (; i < n; ++i) dst[i] = to_float(src[i]);
}

// Activations quantized for the block-format kernels: int8 values and one
// float scale per block of 32 (d = max|x| / 127), as llama.cpp does for its
// Q8_0/Q4_0 dot products; `sum` holds d·Σq per block and `sum16` per half
// block, for weights stored with an offset (Q4_0 keeps q + 8; the K-quants'
// groups of 16 have a bias each).
struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> d, sum, sum16;
};

inline QuantizedRows quantize_activations(const float* X, int T, int cols) {
  QuantizedRows r;
  r.q.resize(static_cast<size_t>(T) * cols);
  r.d.resize(static_cast<size_t>(T) * cols / kQuantBlock);
  r.sum.resize(r.d.size());
  r.sum16.resize(2 * r.d.size());
  for (size_t b = 0; b < r.d.size(); ++b) {
    const float* v = X + b * kQuantBlock;
    float m = 0.0f;
    for (int i = 0; i < kQuantBlock; ++i) m = std::max(m, std::fabs(v[i]));
    r.d[b] = m / 127.0f;
    const float id = m > 0.0f ? 127.0f / m : 0.0f;
    int half[2] = {};
    for (int i = 0; i < kQuantBlock; ++i)
      half[i / 16] += r.q[b * kQuantBlock + i] = static_cast<int8_t>(std::nearbyint(v[i] * id));
    r.sum16[2 * b] = r.d[b] * static_cast<float>(half[0]);
    r.sum16[2 * b + 1] = r.d[b] * static_cast<float>(half[1]);
    r.sum[b] = r.d[b] * static_cast<float>(half[0] + half[1]);
  }
  return r;
}

// Block f16 scale to float.
inline float block_scale(const std::byte* p) {
#if defined(__F16C__)
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
#else
  return half_at(p);
#endif
}

// 32 signed weights of a block as int8, from either format.
inline void block_weights(DType t, const std::byte* row, int b, int8_t* w) {
  if (t == DType::Q8_0) {
    std::memcpy(w, row + b * kQuantBlock, kQuantBlock);
    return;
  }
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    const auto q = static_cast<uint8_t>(row[b * kQuantBlock / 2 + j]);
    w[j] = static_cast<int8_t>((q & 0x0f) - 8);
    w[j + kQuantBlock / 2] = static_cast<int8_t>((q >> 4) - 8);
  }
}

// Software prefetch distance for streamed block-format rows: the integer
// kernel is busy enough that the hardware prefetchers fall behind; 4 KB
// ahead measured faster than 1 KB (bench matvec, 2 threads).
constexpr int kPrefetchBytes = 4096;

// out[r] = Σ over blocks of d_w · d_x · Σ w_q · x_q for R consecutive weight
// rows (block format, `stride` bytes apart) against one quantized activation
// row (`xq`, `xd`, `xsum` from its block 0). Several rows per pass share
// each activation load, as in dot_tile.
template <DType Q, int R>
void dot_quantized(const std::byte* row, size_t stride, const int8_t* xq, const float* xd,
                   [[maybe_unused]] const float* xsum, int cols, float* out) {
  const size_t scales = Q == DType::Q8_0 ? static_cast<size_t>(cols) : static_cast<size_t>(cols) / 2;
  const int blocks = cols / kQuantBlock;
  int b = 0;
  float sum[R] = {};
#if defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
  // Two blocks per step, 4 products summed per int32 lane (vpdpbusd takes
  // unsigned times signed bytes). Q8_0: |w| times x with w's sign, lanes 0-7
  // from the first block. Q4_0: the stored nibbles q + 8 are already
  // unsigned; low nibbles (elements 0-15) fill the lower half, so x is
  // reordered to match, lanes 0-3 and 8-11 come from the first block, and
  // the offset is removed once per 16 blocks as 8·Σ d_w·(d_x·Σx_q).
  // The combined scales d_w·d_x of up to 16 blocks are computed in one
  // vector and spread to each pair's lanes with a permute.
  __m512 acc[R], offset[R];
  GEMMA2_UNROLL
  for (int r = 0; r < R; ++r) acc[r] = offset[r] = _mm512_setzero_ps();
  const __m512i first_pair = Q == DType::Q8_0 ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0)
                                              : _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0);
  while (b + 2 <= blocks) {
    const int group = std::min(16, (blocks - b) & ~1);
    const auto mask = static_cast<__mmask16>((1u << group) - 1);
    const __m512 dx = _mm512_maskz_loadu_ps(mask, xd + b);
    __m512 d[R];
    GEMMA2_UNROLL
    for (int r = 0; r < R; ++r) {
      const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + r * stride + scales + 2 * b));
      d[r] = _mm512_mul_ps(dw, dx);
      if constexpr (Q == DType::Q4_0) offset[r] = _mm512_fmadd_ps(dw, _mm512_maskz_loadu_ps(mask, xsum + b), offset[r]);
    }
    __m512i pair = first_pair;
    for (const int end = b + group; b < end; b += 2, pair = _mm512_add_epi32(pair, _mm512_set1_epi32(2))) {
      __m512i x = _mm512_loadu_si512(xq + b * kQuantBlock);
      if constexpr (Q == DType::Q4_0) x = _mm512_shuffle_i64x2(x, x, _MM_SHUFFLE(3, 1, 2, 0));
      GEMMA2_UNROLL
      for (int r = 0; r < R; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(row + r * stride) + b * (Q == DType::Q8_0 ? 32 : 16) + kPrefetchBytes,
                     _MM_HINT_T0);
      GEMMA2_UNROLL
      for (int r = 0; r < R; ++r) {
        __m512i p;
        if constexpr (Q == DType::Q8_0) {
          const __m512i w = _mm512_loadu_si512(row + r * stride + b * kQuantBlock);
          const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
          p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
        } else {
          const __m256i raw =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + r * stride + b * kQuantBlock / 2));
          const __m256i nib = _mm256_set1_epi8(0x0f);
          const __m256i lo = _mm256_and_si256(raw, nib), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
          p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), x);
        }
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(pair, d[r]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) sum[r] = _mm512_reduce_add_ps(acc[r]) - 8.0f * _mm512_reduce_add_ps(offset[r]);
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) int8_t wb[kQuantBlock];
  for (int r = 0; r < R; ++r) {
    const std::byte* rr = row + r * stride;
    __m256 acc = _mm256_setzero_ps();
    for (b = 0; b < blocks; ++b) {
      __m256i w;
      if constexpr (Q == DType::Q8_0) {
        w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rr + b * kQuantBlock));
      } else {
        block_weights(Q, rr, b, wb);
        w = _mm256_load_si256(reinterpret_cast<const __m256i*>(wb));
      }
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQuantBlock));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), ones);
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(block_scale(rr + scales + 2 * b) * xd[b]), acc);
    }
    sum[r] = vsum(acc);
  }
#endif
  int8_t w[kQuantBlock];
  for (; b < blocks; ++b)
    for (int r = 0; r < R; ++r) {
      block_weights(Q, row + r * stride, b, w);
      int32_t s = 0;
      for (int i = 0; i < kQuantBlock; ++i) s += static_cast<int32_t>(w[i]) * xq[b * kQuantBlock + i];
      sum[r] += static_cast<float>(s) * block_scale(row + r * stride + scales + 2 * b) * xd[b];
    }
  for (int r = 0; r < R; ++r) out[r] = sum[r];
}

// *out = Σ w·x for one K-quant weight row against one quantized activation
// row, with `xsum16` = d_x·Σx_q per group of 16 for the groups' biases:
// Σ_g scale_g·d_x·Σ q·x_q − bias_g·xsum16_g. (Unlike dot_quantized, rows
// are never taken several at a time: the per-row scale set-up of each
// super-block outweighs the shared activation loads; bench matvec/down_proj
// ran 1.6-2.4x faster one row at a time.)
template <DType Q>
void dot_kquant(const std::byte* row, size_t, const int8_t* xq, const float* xd, const float* xsum16, int cols,
                float* out) {
  const int blocks = cols / kSuperBlock;
  const size_t bytes = row_bytes(Q, kSuperBlock);
#if defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
  // 64 weights per vpdpbusd, in the order of x: for Q4_K/Q5_K the low and
  // high nibbles of 32 bytes are two whole sub-blocks; for Q6_K the low (or
  // high) nibbles of 64 ql bytes are two whole 32-weight parts. Values stay
  // unsigned (Q6_K keeps q + 32 and moves the 32 into its bias), so each
  // int32 lane holds 4 products of one group of 16. Per super-block the 16
  // group scales d·sc·d_x are computed in one vector and spread to each
  // step's lanes with a permute; the biases are one FMA against xsum16.
  // Each step has its own accumulator, so the FMAs do not wait on each other.
  __m512 acc[4], offset = _mm512_setzero_ps();
  GEMMA2_UNROLL
  for (int step = 0; step < 4; ++step) acc[step] = _mm512_setzero_ps();
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i pair_of_group = _mm512_srli_epi32(lane, 1);  // group g of 16 lies in 32-block g / 2
  const __m512i group_of_lane = _mm512_srli_epi32(lane, 2);  // lane l of a step holds group 4·step + l / 4
  const __m512i nibble = _mm512_set1_epi8(0x0f);
  for (int sb = 0; sb < blocks; ++sb) {
    const std::byte* blk = row + sb * bytes;
    const int8_t* x = xq + sb * kSuperBlock;
    for (int line = 0; line < 4; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 64 * line, _MM_HINT_T0);
    __m512 ds, bias;
    if constexpr (Q == DType::Q6_K) {
      ds = _mm512_mul_ps(_mm512_set1_ps(block_scale(blk + 208)),
                         _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)))));
      bias = _mm512_mul_ps(_mm512_set1_ps(32.0f), ds);
    } else {
      // The 6-bit scales and mins as in kquant_scale_min, 4 at a time.
      uint32_t w[3];
      std::memcpy(w, blk + 4, sizeof w);
      const uint32_t low6 = 0x3f3f3f3f, low4 = 0x0f0f0f0f, top2 = 0x03030303;
      const uint64_t sc = (w[0] & low6) | static_cast<uint64_t>((w[2] & low4) | (((w[0] >> 6) & top2) << 4)) << 32;
      const uint64_t m = (w[1] & low6) | static_cast<uint64_t>(((w[2] >> 4) & low4) | (((w[1] >> 6) & top2) << 4)) << 32;
      auto spread = [&](uint64_t v, float f) {  // 8 bytes to 16 floats, each twice, times f
        const __m512 v8 = _mm512_castps256_ps512(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(v)))));
        return _mm512_mul_ps(_mm512_set1_ps(f), _mm512_permutexvar_ps(pair_of_group, v8));
      };
      ds = spread(sc, block_scale(blk));
      bias = spread(m, block_scale(blk + 2));
    }
    const __m512 scale =
        _mm512_mul_ps(ds, _mm512_permutexvar_ps(pair_of_group, _mm512_castps256_ps512(_mm256_loadu_ps(xd + 8 * sb))));
    offset = _mm512_fmadd_ps(bias, _mm512_loadu_ps(xsum16 + 16 * sb), offset);
    GEMMA2_UNROLL
    for (int step = 0; step < 4; ++step) {  // weights 64·step .. 64·step + 63
      __m512i wv;
      if constexpr (Q == DType::Q6_K) {
        const int half = step / 2, high = step % 2;  // parts 0, 1 in low nibbles; 2, 3 in high
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * half));
        __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        __m512i v = _mm512_loadu_si512(blk + 64 * half);
        if (high) h = _mm512_srli_epi16(h, 4), v = _mm512_srli_epi16(v, 4);
        wv = _mm512_or_si512(_mm512_and_si512(v, nibble), _mm512_and_si512(_mm512_slli_epi16(h, 4), _mm512_set1_epi8(0x30)));
      } else {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (Q == DType::Q5_K ? 48 : 16) + 32 * step));
        __m256i lo = _mm256_and_si256(raw, _mm512_castsi512_si256(nibble));
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm512_castsi512_si256(nibble));
        if constexpr (Q == DType::Q5_K) {  // bits 2·step and 2·step + 1 of qh to bit 4
          const __m256i qh = _mm256_srli_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)), 2 * step);
          const __m256i bit4 = _mm256_set1_epi8(0x10);
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
        }
        wv = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
      const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, _mm512_loadu_si512(x + 64 * step));
      const __m512i groups = _mm512_add_epi32(group_of_lane, _mm512_set1_epi32(4 * step));
      acc[step] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(groups, scale), acc[step]);
    }
  }
  *out = _mm512_reduce_add_ps(_mm512_sub_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])), offset));
#else
  float sum = 0.0f;
  SuperBlockInts s;
  for (int sb = 0; sb < blocks; ++sb) {
    unpack_superblock(Q, row + sb * bytes, s);
    const int8_t* x = xq + sb * kSuperBlock;
    for (int g = 0; g < kSuperBlock / 16; ++g) {
      int32_t p = 0;
      for (int l = 0; l < 16; ++l) p += static_cast<int32_t>(s.q[16 * g + l]) * x[16 * g + l];
      sum += s.scale[g] * xd[8 * sb + g / 2] * static_cast<float>(p) - s.bias[g] * xsum16[16 * sb + g];
    }
  }
  *out = sum;
#endif
}

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#define GEMMA2_BF16_GEMM 1
// BF16 GEMM in broadcast form: a panel of 32 weight rows is repacked so that
// one 32-bit word holds a pair of consecutive inputs (k, k+1) of one row and
// 16 rows' words fill a register; each activation pair is broadcast and
// vdpbf16ps adds both products into the row's float32 lane. A tile keeps
// NT tokens x 32 rows of sums in 2·NT registers for the whole depth, so
// nothing is reduced horizontally and Y is written once.
constexpr int kPanelRows = 32;
constexpr int kTileTokens = 12;

template <int NT, bool Split>
void bf16_tile(const uint32_t* panel, int pairs, const uint32_t* x, int64_t ldx, float* y, int64_t ldy, __mmask16 m0,
               __mmask16 m1) {
  // Fully unrolled over t so the 2·NT sums stay in registers.
  __m512 acc[NT][2];
  GEMMA2_UNROLL
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  for (int k = 0; k < pairs; ++k) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(panel + k * kPanelRows);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(panel + k * kPanelRows + 16);
    GEMMA2_UNROLL
    for (int t = 0; t < NT; ++t) {
      const __m512bh hi = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[t * ldx + k]));
      acc[t][0] = _mm512_dpbf16_ps(acc[t][0], w0, hi);
      acc[t][1] = _mm512_dpbf16_ps(acc[t][1], w1, hi);
      if constexpr (Split) {
        const __m512bh lo = (__m512bh)_mm512_set1_epi32(static_cast<int>(x[t * ldx + pairs + k]));
        acc[t][0] = _mm512_dpbf16_ps(acc[t][0], w0, lo);
        acc[t][1] = _mm512_dpbf16_ps(acc[t][1], w1, lo);
      }
    }
  }
  GEMMA2_UNROLL
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, m0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc[t][1]);
  }
}

using Bf16Tile = void (*)(const uint32_t*, int, const uint32_t*, int64_t, float*, int64_t, __mmask16, __mmask16);
template <bool Split, int... NT>
constexpr std::array<Bf16Tile, sizeof...(NT)> bf16_tiles(std::integer_sequence<int, NT...>) {
  return {bf16_tile<NT + 1, Split>...};
}

// n floats to bf16, rounded to nearest even.
inline void floats_to_bf16(const float* src, bf16* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i)));
  for (; i < n; ++i) dst[i] = to_bf16(src[i]);
}

// Y[T][W.rows] = X · Wᵀ for W in BF16 or a block format (checked by the caller).
// Precision follows the weight type. BF16 weights are meant to reproduce the
// float32 reference, so each activation is split into a bf16 head and the
// bf16 of its remainder (16 significant bits; two products per weight). The
// block formats already round activations to int8 in decode, so a single
// bf16 (8 significant bits, finer than int8 blocks) is used at twice the
// speed; their weights expand exactly to q·d and are rounded to bf16 once.
inline void matmul_bf16(const Matrix& W, const float* X, int T, float* Y, const Executor* pool) {
  const int64_t rows = W.rows, cols = W.cols;
  const int64_t pairs = (cols + 1) / 2;  // an odd depth is padded with a zero
  const bool split = W.dtype == DType::BF16;
  const int64_t ldx = split ? 2 * pairs : pairs;
  std::vector<uint32_t> xb(static_cast<size_t>(T * ldx), 0u);
  std::vector<float> rest(split ? static_cast<size_t>(cols) : 0);
  for (int t = 0; t < T; ++t) {
    bf16* hi = reinterpret_cast<bf16*>(xb.data() + t * ldx);
    floats_to_bf16(X + t * cols, hi, cols);
    if (!split) continue;
    for (int64_t i = 0; i < cols; ++i) rest[static_cast<size_t>(i)] = X[t * cols + i] - to_float(hi[i]);
    floats_to_bf16(rest.data(), reinterpret_cast<bf16*>(xb.data() + t * ldx + pairs), cols);
  }
  static constexpr auto tiles = bf16_tiles<false>(std::make_integer_sequence<int, kTileTokens>{});
  static constexpr auto split_tiles = bf16_tiles<true>(std::make_integer_sequence<int, kTileTokens>{});
  const auto& tile = split ? split_tiles : tiles;
  const int64_t panels = (rows + kPanelRows - 1) / kPanelRows;
  parallel_for(pool, panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<uint32_t> panel(static_cast<size_t>(pairs * kPanelRows));
    std::vector<uint32_t> expanded;  // block-format or odd-width rows as bf16, pairs words each
    std::vector<float> row_f(W.dtype == DType::BF16 ? 0 : static_cast<size_t>(cols));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kPanelRows, n = std::min<int64_t>(kPanelRows, rows - r0);
      const uint32_t* src;
      int64_t stride;  // words between rows of src
      if (W.dtype == DType::BF16 && (cols & 1) == 0) {
        src = reinterpret_cast<const uint32_t*>(W.data) + r0 * pairs, stride = pairs;
      } else {
        expanded.assign(static_cast<size_t>(n * pairs), 0u);
        for (int64_t i = 0; i < n; ++i) {
          bf16* dst = reinterpret_cast<bf16*>(expanded.data() + i * pairs);
          if (W.dtype == DType::BF16) {
            std::memcpy(dst, W.row(static_cast<int>(r0 + i)), static_cast<size_t>(cols) * sizeof(bf16));
          } else {
            dequantize_row(W.dtype, W.row(static_cast<int>(r0 + i)), row_f.data(), static_cast<int>(cols));
            floats_to_bf16(row_f.data(), dst, cols);
          }
        }
        src = expanded.data(), stride = pairs;
      }
      // Word k of rows r0..r0+31 side by side; rows past the end read as 0.
      const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
      for (int half = 0; half < 2; ++half) {
        const __mmask16 valid = static_cast<__mmask16>(_mm512_cmplt_epi32_mask(
            _mm512_add_epi32(lane, _mm512_set1_epi32(16 * half)), _mm512_set1_epi32(static_cast<int>(n))));
        const __m512i offsets = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(16 * half)),
                                                   _mm512_set1_epi32(static_cast<int>(stride)));
        for (int64_t k = 0; k < pairs; ++k)
          _mm512_storeu_si512(panel.data() + k * kPanelRows + 16 * half,
                              _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, offsets, src + k, 4));
      }
      const auto m0 = static_cast<__mmask16>(n >= 16 ? 0xffff : (1u << n) - 1);
      const auto m1 = static_cast<__mmask16>(n <= 16 ? 0 : n >= 32 ? 0xffff : (1u << (n - 16)) - 1);
      for (int t = 0; t < T; t += kTileTokens) {
        const int nt = std::min(kTileTokens, T - t);
        tile[static_cast<size_t>(nt - 1)](panel.data(), static_cast<int>(pairs), xb.data() + t * ldx, ldx,
                                          Y + t * rows + r0, rows, m0, m1);
      }
    }
  });
}
#endif

// Decode reads a wide input (down_proj: 9216) four weight rows at a time, as
// its activations do not stay in L1 across rows otherwise; narrower inputs
// go one row at a time: consecutive rows form one long stream, which the
// hardware prefetchers follow best, while four short streams (1-2 KB rows)
// halve the DRAM rate (measured: bench matvec, gate_proj vs down_proj).
inline bool wide_input(int64_t cols) { return cols > 4096; }

// Rows of X below this count use the dot-product kernel (each weight row is
// read from memory once and reused from L1 for every row of X); from here
// on, tiled GEMM, whose conversion and packing pay off.
constexpr int kGemmMinRows = 8;
// Floats of converted weights per GEMM tile (1 MiB: stays in L2).
constexpr int64_t kTileFloats = 1 << 18;

// Decode-shaped products with a block-format matrix: activations are
// quantized once, then integer dot products per block.
inline void matmul_quantized_rows(const Matrix& W, const float* X, int T, float* Y, const Executor* pool) {
  using Kernel = void (*)(const std::byte*, size_t, const int8_t*, const float*, const float*, int, float*);
  struct Kernels {
    DType dtype;
    Kernel one, four;  // four: 4 rows per pass, for wide inputs (none for the K-quants)
  };
  static constexpr Kernels table[] = {
      {DType::Q8_0, dot_quantized<DType::Q8_0, 1>, dot_quantized<DType::Q8_0, 4>},
      {DType::Q4_0, dot_quantized<DType::Q4_0, 1>, dot_quantized<DType::Q4_0, 4>},
      {DType::Q4_K, dot_kquant<DType::Q4_K>, nullptr},
      {DType::Q5_K, dot_kquant<DType::Q5_K>, nullptr},
      {DType::Q6_K, dot_kquant<DType::Q6_K>, nullptr},
  };
  const Kernels& k = *std::find_if(std::begin(table), std::end(table), [&](const Kernels& e) { return e.dtype == W.dtype; });
  const QuantizedRows x = quantize_activations(X, T, W.cols);
  const std::vector<float>& sums = is_kquant(W.dtype) ? x.sum16 : x.sum;
  const int64_t rows = W.rows, blocks = W.cols / kQuantBlock, sums_per_row = static_cast<int64_t>(sums.size()) / T;
  const size_t stride = row_bytes(W.dtype, W.cols);
  parallel_for(pool, rows, 16, [&](int64_t r0, int64_t r1) {
    float y[4];
    for (int t = 0; t < T; ++t) {
      const int8_t* xq = x.q.data() + t * W.cols;
      const float *xd = x.d.data() + t * blocks, *xs = sums.data() + t * sums_per_row;
      int64_t r = r0;
      for (; k.four && wide_input(W.cols) && r + 4 <= r1; r += 4) {
        k.four(W.row(static_cast<int>(r)), stride, xq, xd, xs, W.cols, y);
        for (int i = 0; i < 4; ++i) Y[t * rows + r + i] = y[i];
      }
      for (; r < r1; ++r) k.one(W.row(static_cast<int>(r)), stride, xq, xd, xs, W.cols, &Y[t * rows + r]);
    }
  });
}

// dot_tile<1, T> for 1 <= T < kGemmMinRows: one weight row against T rows of X.
template <class E>
auto small_batch_kernel(int T) {
  using Kernel = void (*)(const E*, int64_t, const float*, int64_t, int, float*, int64_t);
  static constexpr Kernel kernels[] = {nullptr,          dot_tile<1, 1, E>, dot_tile<1, 2, E>, dot_tile<1, 3, E>,
                                       dot_tile<1, 4, E>, dot_tile<1, 5, E>, dot_tile<1, 6, E>, dot_tile<1, 7, E>};
  static_assert(sizeof kernels / sizeof kernels[0] == kGemmMinRows, "one kernel per row count");
  return kernels[T];
}

// Y[T][W.rows] = X[T][W.cols] · Wᵀ. X and Y are contiguous row-major.
inline void matmul(const Matrix& W, const float* X, int T, float* Y, const Executor* pool) {
  if (is_blocked(W.dtype) && T < kGemmMinRows) return matmul_quantized_rows(W, X, T, Y, pool);
#if GEMMA2_BF16_GEMM
  if ((W.dtype == DType::BF16 || is_blocked(W.dtype)) && T >= kGemmMinRows) return matmul_bf16(W, X, T, Y, pool);
#endif
  visit_dtype(W.dtype, [&](auto tag) {
    using Elem = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    const Elem* w = reinterpret_cast<const Elem*>(W.data);
    const int64_t cols = W.cols, rows = W.rows;
    if (T == 1) {
      parallel_for(pool, rows, 16, [&](int64_t r0, int64_t r1) {
        int64_t r = r0;
        if (wide_input(cols))
          for (; r + 4 <= r1; r += 4) dot_tile<4, 1>(w + r * cols, cols, X, cols, static_cast<int>(cols), Y + r, rows);
        for (; r < r1; ++r) dot_tile<1, 1>(w + r * cols, cols, X, cols, static_cast<int>(cols), Y + r, rows);
      });
      return;
    }
    if (T < kGemmMinRows) {
      parallel_for(pool, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          small_batch_kernel<Elem>(T)(w + r * cols, cols, X, cols, static_cast<int>(cols), Y + r, rows);
      });
      return;
    }
    const int64_t tile = std::max<int64_t>(16, kTileFloats / std::max<int64_t>(1, cols)) / 16 * 16;
    Eigen::Map<const Activations> x(X, T, cols);
    parallel_for(pool, rows, tile, [&](int64_t r0, int64_t r1) {
      std::vector<float> buf;
      for (int64_t r = r0; r < r1; r += tile) {
        const int64_t n = std::min(tile, r1 - r);
        const float* wt;
        if (is_blocked(W.dtype)) {
          buf.resize(static_cast<size_t>(n * cols));
          for (int64_t i = 0; i < n; ++i)
            dequantize_row(W.dtype, W.row(static_cast<int>(r + i)), buf.data() + i * cols, static_cast<int>(cols));
          wt = buf.data();
        } else if constexpr (std::is_same_v<Elem, float>) {
          wt = w + r * cols;
        } else {
          buf.resize(static_cast<size_t>(n * cols));
          widen(w + r * cols, buf.data(), n * cols);
          wt = buf.data();
        }
        Eigen::Map<const Activations> wm(wt, n, cols);
        Eigen::Map<Activations, 0, Eigen::OuterStride<>> y(Y + r, T, n, Eigen::OuterStride<>(rows));
        y.noalias() = x * wm.transpose();
      }
    });
  });
}

}  // namespace detail

// Y = X · Wᵀ for activations X [T][W.cols]; returns [T][W.rows].
inline Activations matmul(const Matrix& W, const Activations& X, const Executor* pool = nullptr) {
  Activations Y(X.rows(), W.rows);
  detail::matmul(W, X.data(), static_cast<int>(X.rows()), Y.data(), pool);
  return Y;
}

GEMMA2_END_NAMESPACE
