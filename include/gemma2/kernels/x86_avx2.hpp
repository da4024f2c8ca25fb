// The AVX2 kernel set (AVX2 + FMA + F16C, x86-64-v3): 8-float vectors for
// the float products, and the block-format dot products on vpmaddubsw
// (unsigned × signed bytes to int16 pairs) and vpmaddwd, as llama.cpp's
// AVX2 Q8_0 kernel does. The K-quants use the portable dot products here.
#pragma once

#include <array>
#include <utility>

#include "gemma2/kernels/portable.hpp"

#if GEMMA2_X86_KERNELS
#include <immintrin.h>

GEMMA2_BEGIN_NAMESPACE
namespace detail {
namespace avx2 {

GEMMA2_TARGET_BEGIN("avx2,fma,f16c")

struct V {
  using F = __m256;
  static constexpr int kLanes = 8, kTileTokens = 6;
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const bf16* p) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static F load(const f16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F broadcast(float x) { return _mm256_set1_ps(x); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static float sum(F a) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
  }
};

#include "gemma2/kernels/simd_float.inc"

inline float block_scale(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// out = Σ over blocks of d_w·d_x·Σ w_q·x_q for one Q8_0 or Q4_0 row: the
// sign of w moves onto x so that vpmaddubsw sees |w| as unsigned.
template <DType Q>
void dot_quantized(const std::byte* row, size_t, const int8_t* xq, const float* xd, const float*, int cols, float* out) {
  const std::byte* scales = row + (Q == DType::Q8_0 ? cols : cols / 2);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    __m256i w;
    if constexpr (Q == DType::Q8_0) {
      w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + b * kQuantBlock));
    } else {  // low nibbles are weights 0-15, high nibbles 16-31; stored as q + 8
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + b * kQuantBlock / 2));
      const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
      w = _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
    }
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQuantBlock));
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(block_scale(scales + 2 * b) * xd[b]), acc);
  }
  *out = V::sum(acc);
}

GEMMA2_TARGET_END

inline void quant_rows(const Matrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) {
  switch (W.dtype) {
    case DType::Q8_0: return quant_rows_with<dot_quantized<DType::Q8_0>, four_rows<dot_quantized<DType::Q8_0>>>(W, X, T, Y, r0, r1);
    case DType::Q4_0: return quant_rows_with<dot_quantized<DType::Q4_0>, four_rows<dot_quantized<DType::Q4_0>>>(W, X, T, Y, r0, r1);
    default: return portable::quant_rows(W, X, T, Y, r0, r1);
  }
}

inline Kernels kernels() {
  Kernels k;
  k.set = KernelSet::AVX2;
  k.dense_rows = dense_rows;
  k.quant_rows = quant_rows;
  k.gemm = gemm_float;
  return k;
}

}  // namespace avx2
}  // namespace detail
GEMMA2_END_NAMESPACE

#endif  // GEMMA2_X86_KERNELS
