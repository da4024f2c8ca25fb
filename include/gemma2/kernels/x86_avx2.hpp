// The AVX2 kernel set (AVX2 + FMA + F16C, x86-64-v3): 8-float vectors for
// the float products, and the block-format dot products on vpmaddubsw
// (unsigned × signed bytes to int16 pairs) and vpmaddwd, as llama.cpp's
// AVX2 Q8_0 kernel does.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
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
  static constexpr int kLanes = 8, kTileTokens = 6, kRegisters = 16;
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const bf16* p) {
    const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
  }
  static F load(const f16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static F load(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float half(uint16_t h) { return _cvtsh_ss(h); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
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
void dot_quantized(const std::byte* row, size_t, const int8_t* xq, const float* xd, const float*, int cols,
                   float* out) {
  const auto split = split_row(Q, row, cols);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc = _mm256_setzero_ps();
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    __m256i w;
    if constexpr (Q == DType::Q8_0) {
      w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(split.values(b)));
    } else {  // low nibbles are weights 0-15, high nibbles 16-31; stored as q + 8
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(split.values(b)));
      const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
      w = _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
    }
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQuantBlock));
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), ones);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(block_scale(split.scale(b)) * xd[b]), acc);
  }
  *out = V::sum(acc);
}

inline __m256i load(const std::byte* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The 32 weights 32·k .. 32·k + 31 of a K-quant super-block, unsigned
// (Q6_K keeps q + 32; its bias removes the 32), in the activations' order.
template <DType Q>
__m256i kquant_weights(const std::byte* blk, int k) {
  using Block = BlockType<Q>;
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  if constexpr (Q == DType::Q6_K) {  // half k / 4; part k % 4: low or high nibbles of ql, 2 bits of qh
    const int half = k / 4, part = k % 4;
    const __m256i ql =
        _mm256_srli_epi16(load(blk + offsetof(Block, ql) + 64 * half + 32 * (part & 1)), 4 * (part >> 1));
    const __m256i qh = _mm256_slli_epi16(_mm256_srli_epi16(load(blk + offsetof(Block, qh) + 32 * half), 2 * part), 4);
    return _mm256_or_si256(_mm256_and_si256(ql, nibble), _mm256_and_si256(qh, _mm256_set1_epi8(0x30)));
  } else {  // sub-block k: low (k even) or high nibbles of 32 bytes; Q5_K's fifth bit is bit k of qh
    __m256i w =
        _mm256_and_si256(_mm256_srli_epi16(load(blk + offsetof(Block, qs) + 32 * (k / 2)), 4 * (k % 2)), nibble);
    if constexpr (Q == DType::Q5_K)
      w = _mm256_or_si256(w,
                          _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(load(blk + offsetof(Block, qh)), k), 4),
                                           _mm256_set1_epi8(0x10)));
    return w;
  }
}

// *out = Σ w·x for one K-quant row, as avx512::dot_kquant with 32 weights
// per step: vpmaddubsw multiplies the unsigned weights (at most 63) by the
// signed activations and adds pairs without saturating (2·63·127 < 2^15),
// vpmaddwd adds pairs again, so lanes 0-3 hold products of group 2k and
// lanes 4-7 of group 2k + 1. The 16 group scales d·sc·d_x of a super-block
// are two vectors (groups 0-7, 8-15), spread to each step's lanes with a
// permute; the biases are two FMAs against xsum16.
template <DType Q>
void dot_kquant(const std::byte* row, size_t, const int8_t* xq, const float* xd, const float* xsum16, int cols,
                float* out) {
  using Block = BlockType<Q>;
  const int blocks = cols / kSuperBlock;
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i block_of_group = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);  // of groups 0-7: 32-block g / 2
  const __m256i group_of_lane = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  __m256 acc[4], offset = _mm256_setzero_ps();
  GEMMA2_UNROLL
  for (int i = 0; i < 4; ++i) acc[i] = _mm256_setzero_ps();
  for (int sb = 0; sb < blocks; ++sb) {
    const std::byte* blk = row + sb * sizeof(Block);
    const int8_t* x = xq + sb * kSuperBlock;
    for (int line = 0; line < 4; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 64 * line, _MM_HINT_T0);
    const __m256 dx = _mm256_loadu_ps(xd + 8 * sb);
    const float d = block_scale(blk + offsetof(Block, d));
    [[maybe_unused]] uint64_t sc = 0, m = 0;
    if constexpr (Q != DType::Q6_K) kquant_scales_mins(blk + offsetof(Block, scales), &sc, &m);
    __m256 scale[2];
    GEMMA2_UNROLL
    for (int h = 0; h < 2; ++h) {  // groups 8·h .. 8·h + 7
      const __m256i blocks_h = _mm256_add_epi32(block_of_group, _mm256_set1_epi32(4 * h));
      __m256 ds, bias;
      if constexpr (Q == DType::Q6_K) {
        const __m128i sc8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + offsetof(Block, scales) + 8 * h));
        ds = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc8)));
        bias = _mm256_mul_ps(_mm256_set1_ps(32.0f), ds);
      } else {
        auto spread = [&](uint64_t v, float f) {  // byte j to the lanes of groups 2j, 2j + 1, times f
          const __m256 v8 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(v))));
          return _mm256_mul_ps(_mm256_set1_ps(f), _mm256_permutevar8x32_ps(v8, blocks_h));
        };
        ds = spread(sc, d);
        bias = spread(m, block_scale(blk + offsetof(Block, dmin)));
      }
      scale[h] = _mm256_mul_ps(ds, _mm256_permutevar8x32_ps(dx, blocks_h));
      offset = _mm256_fmadd_ps(bias, _mm256_loadu_ps(xsum16 + 16 * sb + 8 * h), offset);
    }
    GEMMA2_UNROLL
    for (int k = 0; k < 8; ++k) {
      const __m256i xk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * k));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(kquant_weights<Q>(blk, k), xk), ones);
      const __m256 s =
          _mm256_permutevar8x32_ps(scale[k / 4], _mm256_add_epi32(group_of_lane, _mm256_set1_epi32(2 * (k % 4))));
      acc[k % 4] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[k % 4]);
    }
  }
  *out = V::sum(_mm256_sub_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])), offset));
}

// quantize_activations' block steps on 8-float vectors (vcvtps2dq rounds
// half to even, as nearbyint does, in the same rounding mode).
struct QuantBlock {
  static float max_abs(const float* x) {  // NaNs are skipped, as std::max(m, NaN) does
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * j)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
  }
  static int32_t sum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
  }
  static void round(const float* x, float id, int8_t* q, int32_t half[2]) {
    __m256i v[4];
    for (int j = 0; j < 4; ++j)
      v[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), _mm256_set1_ps(id)));
    // The packs work within 128-bit lanes: 4-byte pieces come out in the order 0 2 4 6 1 3 5 7.
    const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    half[0] = sum(_mm256_add_epi32(v[0], v[1]));
    half[1] = sum(_mm256_add_epi32(v[2], v[3]));
  }
};

GEMMA2_FLATTEN inline QuantizedRows quantize(const float* X, int T, int cols, int32_t offset) {
  return quantize_with<QuantBlock>(X, T, cols, offset);
}

constexpr bool kVnni = false;
#include "gemma2/kernels/x86_avx2_interleaved.inc"

GEMMA2_TARGET_END

// The interleaved products on AVX-VNNI's vpdpbusd, for CPUs that have it.
namespace vnni {
GEMMA2_TARGET_BEGIN("avx2,fma,f16c,avxvnni")
constexpr bool kVnni = true;
#include "gemma2/kernels/x86_avx2_interleaved.inc"
GEMMA2_TARGET_END
}  // namespace vnni

inline void quant_rows(const PlainMatrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) {
  switch (W.dtype) {
    case DType::Q8_0:
      return quant_rows_with<dot_quantized<DType::Q8_0>, four_rows<dot_quantized<DType::Q8_0>>>(W, X, T, Y, r0, r1);
    case DType::Q4_0:
      return quant_rows_with<dot_quantized<DType::Q4_0>, four_rows<dot_quantized<DType::Q4_0>>>(W, X, T, Y, r0, r1);
    case DType::Q4_K:
      return quant_rows_with<dot_kquant<DType::Q4_K>, four_rows<dot_kquant<DType::Q4_K>>>(W, X, T, Y, r0, r1);
    case DType::Q5_K:
      return quant_rows_with<dot_kquant<DType::Q5_K>, four_rows<dot_kquant<DType::Q5_K>>>(W, X, T, Y, r0, r1);
    default: return quant_rows_with<dot_kquant<DType::Q6_K>, four_rows<dot_kquant<DType::Q6_K>>>(W, X, T, Y, r0, r1);
  }
}

struct Set {
  static constexpr KernelSet id = KernelSet::AVX2;
  // AVX2 (CPUID.7:EBX[5]) with FMA and F16C (CPUID.1:ECX[12], [29]), AVX
  // and OSXSAVE (ECX[28], [27]) with the SSE and AVX state saved (XCR0
  // bits 1-2); AVX-VNNI: CPUID.(7,1):EAX[4] (Intel SDM vol. 2A, CPUID).
  static void probe(CpuFeatures& f) {
    const uint32_t c1 = cpuid(1, 0)[2];
    if (!(c1 >> 27 & 1) || !(c1 >> 28 & 1) || (xcr0() & 0x6) != 0x6) return;
    f.avx2 = (c1 >> 12 & 1) && (c1 >> 29 & 1) && (cpuid(7, 0)[1] >> 5 & 1);
    f.avx_vnni = f.avx2 && (cpuid(7, 1)[0] >> 4 & 1);
  }
  static bool supported(const CpuFeatures& cpu) { return cpu.avx2; }
  static Kernels table(const CpuFeatures& cpu) {
    Kernels k = kernel_table(id, dense_rows, quant_rows, quantize, gemm_float, kv_scores, kv_mix);
    k.interleaved_rows = cpu.avx_vnni ? vnni::interleaved_rows : interleaved_rows;
    k.features = cpu.avx_vnni ? "avx-vnni" : "";
    return k;
  }
};

}  // namespace avx2
template <>
struct SetOf<avx2::Set::id> {
  using type = avx2::Set;
};
}  // namespace detail
GEMMA2_END_NAMESPACE

#endif  // GEMMA2_X86_KERNELS
