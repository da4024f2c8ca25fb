// The AVX-512 kernel set (F/BW/VL/DQ): 16-float vectors for the float
// products, in three parts by the extensions they need, each filled into the
// table only where the CPU has it:
//  * AVX-512 F/BW/VL: the float dot products and float GEMM (simd_float.inc);
//  * AVX-512 VNNI: the block-format dot products on vpdpbusd (4 byte
//    products summed per int32 lane), else the AVX2 ones;
//  * AVX-512 BF16: the prefill GEMM for BF16 and block-format weights on
//    vdpbf16ps, as llama.cpp and gemma.cpp do for BF16 weights.
#pragma once

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "gemma2/kernels/x86_avx2.hpp"

#if GEMMA2_X86_KERNELS
#include <immintrin.h>

GEMMA2_BEGIN_NAMESPACE
namespace detail {
namespace avx512 {

GEMMA2_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

struct V {
  using F = __m512;
  static constexpr int kLanes = 16, kTileTokens = 12, kRegisters = 32;
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F load(const bf16* p) {
    const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
  }
  static F load(const f16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static F load(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static float half(uint16_t h) { return _cvtsh_ss(h); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F broadcast(float x) { return _mm512_set1_ps(x); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static float sum(F a) { return _mm512_reduce_add_ps(a); }
};

#include "gemma2/kernels/simd_float.inc"

GEMMA2_TARGET_END

GEMMA2_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")

using avx2::block_scale;

// out[r] = Σ over blocks of d_w·d_x·Σ w_q·x_q for R consecutive weight rows
// (Q8_0 or Q4_0, `stride` bytes apart) against one quantized activation row
// (`xq`, `xd`, `xsum` from its block 0). Several rows per pass share each
// activation load.
template <DType Q, int R>
void dot_quantized(const std::byte* row, size_t stride, const int8_t* xq, const float* xd, const float* xsum, int cols,
                   float* out) {
  const auto split = split_row(Q, row, cols);  // row r's fields are r·stride bytes further
  const int blocks = cols / kQuantBlock;
  int b = 0;
  float sum[R] = {};
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
      const __m512 dw = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, split.scale(b) + r * stride));
      d[r] = _mm512_mul_ps(dw, dx);
      if constexpr (Q == DType::Q4_0) offset[r] = _mm512_fmadd_ps(dw, _mm512_maskz_loadu_ps(mask, xsum + b), offset[r]);
    }
    __m512i pair = first_pair;
    for (const int end = b + group; b < end; b += 2, pair = _mm512_add_epi32(pair, _mm512_set1_epi32(2))) {
      __m512i x = _mm512_loadu_si512(xq + b * kQuantBlock);
      if constexpr (Q == DType::Q4_0) x = _mm512_shuffle_i64x2(x, x, _MM_SHUFFLE(3, 1, 2, 0));
      GEMMA2_UNROLL
      for (int r = 0; r < R; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(split.values(b) + r * stride) + kPrefetchBytes, _MM_HINT_T0);
      GEMMA2_UNROLL
      for (int r = 0; r < R; ++r) {
        __m512i p;
        if constexpr (Q == DType::Q8_0) {
          const __m512i w = _mm512_loadu_si512(split.values(b) + r * stride);
          const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(w), _mm512_setzero_si512(), x);
          p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), sx);
        } else {
          const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(split.values(b) + r * stride));
          const __m256i nib = _mm256_set1_epi8(0x0f);
          const __m256i lo = _mm256_and_si256(raw, nib), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
          p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), x);
        }
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(pair, d[r]), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) sum[r] = _mm512_reduce_add_ps(acc[r]) - 8.0f * _mm512_reduce_add_ps(offset[r]);
  int8_t w[kQuantBlock];  // an odd last block
  for (; b < blocks; ++b)
    for (int r = 0; r < R; ++r) {
      portable::block_weights(split_row(Q, row + r * stride, cols), b, w);
      int32_t s = 0;
      for (int i = 0; i < kQuantBlock; ++i) s += static_cast<int32_t>(w[i]) * xq[b * kQuantBlock + i];
      sum[r] += static_cast<float>(s) * half_at(split.scale(b) + r * stride) * xd[b];
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
  using Block = BlockType<Q>;
  const int blocks = cols / kSuperBlock;
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
    const std::byte* blk = row + sb * sizeof(Block);
    const int8_t* x = xq + sb * kSuperBlock;
    for (int line = 0; line < 4; ++line)
      _mm_prefetch(reinterpret_cast<const char*>(blk) + kPrefetchBytes + 64 * line, _MM_HINT_T0);
    __m512 ds, bias;
    if constexpr (Q == DType::Q6_K) {
      ds = _mm512_mul_ps(_mm512_set1_ps(block_scale(blk + offsetof(Block, d))),
                         _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + offsetof(Block, scales))))));
      bias = _mm512_mul_ps(_mm512_set1_ps(32.0f), ds);
    } else {
      uint64_t sc, m;
      kquant_scales_mins(blk + offsetof(Block, scales), &sc, &m);
      auto spread = [&](uint64_t v, float f) {  // 8 bytes to 16 floats, each twice, times f
        const __m512 v8 = _mm512_castps256_ps512(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(v)))));
        return _mm512_mul_ps(_mm512_set1_ps(f), _mm512_permutexvar_ps(pair_of_group, v8));
      };
      ds = spread(sc, block_scale(blk + offsetof(Block, d)));
      bias = spread(m, block_scale(blk + offsetof(Block, dmin)));
    }
    const __m512 scale =
        _mm512_mul_ps(ds, _mm512_permutexvar_ps(pair_of_group, _mm512_castps256_ps512(_mm256_loadu_ps(xd + 8 * sb))));
    offset = _mm512_fmadd_ps(bias, _mm512_loadu_ps(xsum16 + 16 * sb), offset);
    GEMMA2_UNROLL
    for (int step = 0; step < 4; ++step) {  // weights 64·step .. 64·step + 63
      __m512i wv;
      if constexpr (Q == DType::Q6_K) {
        const int half = step / 2, high = step % 2;  // parts 0, 1 in low nibbles; 2, 3 in high
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, qh) + 32 * half));
        __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
        __m512i v = _mm512_loadu_si512(blk + offsetof(Block, ql) + 64 * half);
        if (high) h = _mm512_srli_epi16(h, 4), v = _mm512_srli_epi16(v, 4);
        wv = _mm512_or_si512(_mm512_and_si512(v, nibble),
                             _mm512_and_si512(_mm512_slli_epi16(h, 4), _mm512_set1_epi8(0x30)));
      } else {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, qs) + 32 * step));
        __m256i lo = _mm256_and_si256(raw, _mm512_castsi512_si256(nibble));
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), _mm512_castsi512_si256(nibble));
        if constexpr (Q == DType::Q5_K) {  // bits 2·step and 2·step + 1 of qh to bit 4
          const __m256i qh = _mm256_srli_epi16(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + offsetof(Block, qh))), 2 * step);
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
  *out = _mm512_reduce_add_ps(
      _mm512_sub_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])), offset));
}

#include "gemma2/kernels/x86_avx512_interleaved.inc"

GEMMA2_TARGET_END

inline void quant_rows_vnni(const PlainMatrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) {
  switch (W.dtype) {
    case DType::Q8_0:
      return quant_rows_with<dot_quantized<DType::Q8_0, 1>, dot_quantized<DType::Q8_0, 4>>(W, X, T, Y, r0, r1);
    case DType::Q4_0:
      return quant_rows_with<dot_quantized<DType::Q4_0, 1>, dot_quantized<DType::Q4_0, 4>>(W, X, T, Y, r0, r1);
    case DType::Q4_K:
      return quant_rows_with<dot_kquant<DType::Q4_K>, four_rows<dot_kquant<DType::Q4_K>>>(W, X, T, Y, r0, r1);
    case DType::Q5_K:
      return quant_rows_with<dot_kquant<DType::Q5_K>, four_rows<dot_kquant<DType::Q5_K>>>(W, X, T, Y, r0, r1);
    default: return quant_rows_with<dot_kquant<DType::Q6_K>, four_rows<dot_kquant<DType::Q6_K>>>(W, X, T, Y, r0, r1);
  }
}

GEMMA2_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")

// BF16 GEMM in broadcast form: a panel of 32 weight rows is repacked so that
// one 32-bit word holds a pair of consecutive inputs (k, k+1) of one row and
// 16 rows' words fill a register; each activation pair is broadcast and
// vdpbf16ps adds both products into the row's float32 lane. A tile keeps
// NT tokens x 32 rows of sums in 2·NT registers for the whole depth, so
// nothing is reduced horizontally and Y is written once.
constexpr int kPanelRows = 32;
constexpr int kTileTokens = 12;

template <int NT>
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
    }
  }
  GEMMA2_UNROLL
  for (int t = 0; t < NT; ++t) {
    _mm512_mask_storeu_ps(y + t * ldy, m0, acc[t][0]);
    _mm512_mask_storeu_ps(y + t * ldy + 16, m1, acc[t][1]);
  }
}

using Bf16Tile = void (*)(const uint32_t*, int, const uint32_t*, int64_t, float*, int64_t, __mmask16, __mmask16);
template <int... NT>
constexpr std::array<Bf16Tile, sizeof...(NT)> bf16_tiles(std::integer_sequence<int, NT...>) {
  return {bf16_tile<NT + 1>...};
}

// n floats to bf16, rounded to nearest even.
inline void floats_to_bf16(const float* src, bf16* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i)));
  for (; i < n; ++i) dst[i] = to_bf16(src[i]);
}

// Y[T][W.rows] = X · Wᵀ for W in a block format, or in BF16 with
// W.bf16_activations (LoadOptions::prefill_precision; gemm_bf16_or_float in
// common.hpp sends it nothing else): every activation rounded to bf16 once
// (8 significant bits, finer than decode's int8 blocks); block-format
// weights expand exactly to q·d and are rounded to bf16 once.
inline void matmul_bf16(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool) {
  const int64_t rows = W.rows, cols = W.cols;
  const int64_t pairs = (cols + 1) / 2;  // an odd depth is padded with a zero
  const int64_t ldx = pairs;
  std::vector<uint32_t> xb(static_cast<size_t>(T * ldx), 0u);
  for (int t = 0; t < T; ++t) floats_to_bf16(X + t * cols, reinterpret_cast<bf16*>(xb.data() + t * ldx), cols);
  static constexpr auto tile = bf16_tiles(std::make_integer_sequence<int, kTileTokens>{});
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
            std::memcpy(dst, W.row(r0 + i), static_cast<size_t>(cols) * sizeof(bf16));
          } else {
            dequantize_row(W.dtype, W.row(r0 + i), row_f.data(), static_cast<int>(cols));
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

GEMMA2_TARGET_END

struct Set {
  static constexpr KernelSet id = KernelSet::AVX512;
  // AVX-512 F, DQ, BW, VL (CPUID.7:EBX[16], [17], [30], [31]) on top of
  // avx2's probe, with the opmask and ZMM state saved (XCR0 bits 5-7);
  // VNNI: CPUID.7:ECX[11]; BF16: CPUID.(7,1):EAX[5].
  static void probe(CpuFeatures& f) {
    if (!f.avx2 || (xcr0() & 0xe6) != 0xe6) return;
    const auto l7 = cpuid(7, 0);
    const uint32_t b7 = l7[1], c7 = l7[2];
    f.avx512 = (b7 >> 16 & 1) && (b7 >> 17 & 1) && (b7 >> 30 & 1) && (b7 >> 31 & 1);
    f.avx512_vnni = f.avx512 && (c7 >> 11 & 1);
    f.avx512_bf16 = f.avx512 && (cpuid(7, 1)[0] >> 5 & 1);
  }
  static bool supported(const CpuFeatures& cpu) { return cpu.avx512; }
  static Kernels table(const CpuFeatures& cpu) {
    // quantize: a small share of any product, the 8-float steps serve.
    Kernels k =
        kernel_table(id, dense_rows, cpu.avx512_vnni ? quant_rows_vnni : avx2::quant_rows, avx2::quantize,
                     cpu.avx512_bf16 ? gemm_bf16_or_float<gemm_float, matmul_bf16> : gemm_float, kv_scores, kv_mix);
    k.interleaved_rows = cpu.avx512_vnni ? interleaved_rows_vnni : avx2::Set::table(cpu).interleaved_rows;
    k.features = cpu.avx512_vnni ? (cpu.avx512_bf16 ? "vnni bf16" : "vnni") : (cpu.avx512_bf16 ? "bf16" : "");
    return k;
  }
};

}  // namespace avx512
template <>
struct SetOf<avx512::Set::id> {
  using type = avx512::Set;
};
}  // namespace detail
GEMMA2_END_NAMESPACE

#endif  // GEMMA2_X86_KERNELS
