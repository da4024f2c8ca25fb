// The AArch64 kernel sets. `neon`: Advanced SIMD, part of every AArch64 CPU
// (4-float FMA dot products and GEMM; int8 block dots on vmull/vpadal);
// `neon-dotprod`: the same with the block dots on SDOT (FEAT_DotProd: 16
// byte products per instruction, Cortex-A76 / Apple M1 and later), compiled
// for armv8.2-a+dotprod in its own region and used only where the CPU has it;
// on CPUs with FEAT_BF16 (Neoverse V1/N2, Apple M2, Cortex-A710 and later)
// its prefill GEMM for BF16 and block-format weights runs on BFMMLA.
#pragma once

#include <array>
#include <cstring>
#include <utility>

#include "gemma2/kernels/portable.hpp"

#if GEMMA2_ARM_KERNELS
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

GEMMA2_BEGIN_NAMESPACE
namespace detail {
namespace neon {

struct V {
  using F = float32x4_t;
  static constexpr int kLanes = 4, kTileTokens = 8, kRegisters = 32;
  static F zero() { return vdupq_n_f32(0.0f); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F load(const bf16* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
  }
  static F load(const f16* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p))));
  }
  static F load(const int8_t* p) {
    int32_t w;
    std::memcpy(&w, p, sizeof w);
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w))))));
  }
  static float half(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F broadcast(float x) { return vdupq_n_f32(x); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static float sum(F a) { return vaddvq_f32(a); }
};

#include "gemma2/kernels/simd_float.inc"

// 16 int8 products into 4 int32 lanes: widened to int16 pairs, added pairwise.
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
}

#include "gemma2/kernels/neon_blocks.inc"

// quantize_activations' block steps on 4-float vectors (FCVTNS rounds half
// to even, as nearbyint does in the default rounding mode).
struct QuantBlock {
  static float max_abs(const float* x) {  // FMAXNM skips NaNs, as std::max(m, NaN) does
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int j = 0; j < 8; ++j) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(x + 4 * j)));
    return vmaxnmvq_f32(m);
  }
  static void round(const float* x, float id, int8_t* q, int32_t half[2]) {
    for (int h = 0; h < 2; ++h) {
      int32x4_t v[4];
      for (int j = 0; j < 4; ++j) v[j] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * h + 4 * j), id));
      const int16x8_t lo = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
      const int16x8_t hi = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
      vst1q_s8(q + 16 * h, vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi)));
      half[h] = vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])));
    }
  }
};

inline QuantizedRows quantize(const float* X, int T, int cols, int32_t offset) {
  return quantize_with<QuantBlock>(X, T, cols, offset);
}

struct Set {
  static constexpr KernelSet id = KernelSet::NEON;
  static void probe(CpuFeatures& f) { f.neon = true; }  // Advanced SIMD is part of every AArch64 CPU
  static bool supported(const CpuFeatures& cpu) { return cpu.neon; }
  static Kernels table(const CpuFeatures&) {
    return kernel_table(id, dense_rows, quant_rows, quantize, gemm_float, kv_scores, kv_mix);
  }
};

}  // namespace neon
template <>
struct SetOf<neon::Set::id> {
  using type = neon::Set;
};

#if GEMMA2_ARM_DOTPROD_KERNELS
namespace neon_dotprod {

GEMMA2_TARGET_BEGIN("arch=armv8.2-a+dotprod")

inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

#include "gemma2/kernels/neon_blocks.inc"

GEMMA2_TARGET_END

#if GEMMA2_ARM_BF16_KERNELS
GEMMA2_TARGET_BEGIN("arch=armv8.2-a+dotprod+bf16")

// BF16 GEMM on BFMMLA, with the precision of avx512::matmul_bf16 and for
// the same matrices (gemm_bf16_or_float, common.hpp): one bf16 per
// activation; block-format weights expanded to q·d and rounded to bf16.
// One BFMMLA multiplies a 2x4 block of weights (two rows, four inputs) by a
// 2x4 block of activations (two tokens) into a 2x2 block of float sums, so
// both operands are repacked in such blocks: a panel of 8 weight rows holds,
// per chunk of 4 inputs, 4 row pairs of 8 bf16 each, and the activations
// hold, per token pair, one 8-bf16 block per chunk. A tile keeps 8 rows x
// 2·NP tokens of sums in 4·NP registers over the whole depth.
constexpr int kMmlaRows = 8, kMmlaPairs = 4;  // per panel; token pairs per tile

template <int NP>
void bf16_mmla_tile(const uint16_t* panel, int chunks, const uint16_t* x, int64_t pair_stride, float* y, int64_t ldy,
                    int rows, int tokens) {
  float32x4_t acc[kMmlaRows / 2][NP];
  GEMMA2_UNROLL
  for (int o = 0; o < kMmlaRows / 2 * NP; ++o) acc[o / NP][o % NP] = vdupq_n_f32(0.0f);
  for (int c = 0; c < chunks; ++c) {
    bfloat16x8_t w[kMmlaRows / 2];
    GEMMA2_UNROLL
    for (int rp = 0; rp < kMmlaRows / 2; ++rp) w[rp] = vreinterpretq_bf16_u16(vld1q_u16(panel + (4 * c + rp) * 8));
    GEMMA2_UNROLL
    for (int tp = 0; tp < NP; ++tp) {
      const bfloat16x8_t head = vreinterpretq_bf16_u16(vld1q_u16(x + tp * pair_stride + 8 * c));
      GEMMA2_UNROLL
      for (int rp = 0; rp < kMmlaRows / 2; ++rp) acc[rp][tp] = vbfmmlaq_f32(acc[rp][tp], w[rp], head);
    }
  }
  // acc[rp][tp] = (row 2rp, token 2tp), (2rp, 2tp + 1), (2rp + 1, 2tp), (2rp + 1, 2tp + 1).
  for (int rp = 0; rp < kMmlaRows / 2; ++rp)
    for (int tp = 0; tp < NP; ++tp) {
      float v[4];
      vst1q_f32(v, acc[rp][tp]);
      for (int i = 0; i < 4; ++i) {
        const int r = 2 * rp + i / 2, t = 2 * tp + i % 2;
        if (r < rows && t < tokens) y[t * ldy + r] = v[i];
      }
    }
}

template <int... NP>
constexpr auto bf16_mmla_tiles(std::integer_sequence<int, NP...>) {
  using Tile = void (*)(const uint16_t*, int, const uint16_t*, int64_t, float*, int64_t, int, int);
  return std::array<Tile, sizeof...(NP)>{bf16_mmla_tile<NP + 1>...};
}

// Rows 0 .. n - 1 of `src` (stride ld, `width` values) into 2x4 blocks:
// value (i, k) goes to block (pair i / 2, chunk k / 4), half i % 2.
inline void pack_blocks(const uint16_t* src, int64_t ld, int n, int64_t width, uint16_t* dst, int64_t pair_stride,
                        int64_t chunk_stride) {
  for (int i = 0; i < n; ++i)
    for (int64_t k = 0; k < width; ++k)
      dst[i / 2 * pair_stride + k / 4 * chunk_stride + i % 2 * 4 + k % 4] = src[i * ld + k];
}

inline void matmul_bf16_mmla(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool) {
  const int64_t rows = W.rows, cols = W.cols, chunks = (cols + 3) / 4;  // a ragged depth is padded with zeros
  const int64_t pair_stride = 8 * chunks;
  std::vector<uint16_t> bits(static_cast<size_t>(T * cols));
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = to_bf16(X[i]).bits;
  std::vector<uint16_t> x(static_cast<size_t>((T + 1) / 2 * pair_stride), 0);
  pack_blocks(bits.data(), cols, T, cols, x.data(), pair_stride, 8);
  static constexpr auto tile = bf16_mmla_tiles(std::make_integer_sequence<int, kMmlaPairs>{});
  const int64_t panels = (rows + kMmlaRows - 1) / kMmlaRows;
  parallel_for(pool, panels, 1, [&](int64_t p0, int64_t p1) {
    std::vector<uint16_t> panel(static_cast<size_t>(32 * chunks)), weights(static_cast<size_t>(kMmlaRows * cols));
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = p * kMmlaRows;
      const int n = static_cast<int>(std::min<int64_t>(kMmlaRows, rows - r0));
      for (int i = 0; i < n; ++i) {
        const std::byte* src = W.row(r0 + i);
        uint16_t* dst = weights.data() + i * cols;
        if (W.dtype == DType::BF16) {
          std::memcpy(dst, src, static_cast<size_t>(cols) * sizeof(uint16_t));
        } else {
          dequantize_row(W.dtype, src, row.data(), static_cast<int>(cols));
          for (int64_t k = 0; k < cols; ++k) dst[k] = to_bf16(row[static_cast<size_t>(k)]).bits;
        }
      }
      std::fill(panel.begin(), panel.end(), uint16_t{0});
      pack_blocks(weights.data(), cols, n, cols, panel.data(), 8, 32);
      for (int t = 0; t < T; t += 2 * kMmlaPairs) {
        const int np = std::min(kMmlaPairs, (T - t + 1) / 2);
        tile[static_cast<size_t>(np - 1)](panel.data(), static_cast<int>(chunks), x.data() + t / 2 * pair_stride,
                                          pair_stride, Y + t * rows + r0, rows, n, T - t);
      }
    }
  });
}

GEMMA2_TARGET_END
#endif

struct Set {
  static constexpr KernelSet id = KernelSet::NEONDotProd;
  // Linux: HWCAP_ASIMDDP (AT_HWCAP bit 20), HWCAP2_BF16 (AT_HWCAP2 bit 14);
  // every Apple AArch64 CPU (M1 / A13 and later) has the dot products.
  static void probe([[maybe_unused]] CpuFeatures& f) {
#if defined(__linux__)
    f.dotprod = getauxval(AT_HWCAP) >> 20 & 1;
    f.bf16 = getauxval(AT_HWCAP2) >> 14 & 1;
#elif defined(__APPLE__)
    f.dotprod = true;
#endif
  }
  static bool supported(const CpuFeatures& cpu) { return cpu.neon && cpu.dotprod; }
  static Kernels table([[maybe_unused]] const CpuFeatures& cpu) {
    Kernels k = neon::Set::table(cpu);
    k.set = id;
    k.quant_rows = quant_rows;
#if GEMMA2_ARM_BF16_KERNELS
    if (cpu.bf16) k.gemm = gemm_bf16_or_float<neon::gemm_float, matmul_bf16_mmla>, k.features = "bf16";
#endif
    return k;
  }
};

}  // namespace neon_dotprod
template <>
struct SetOf<neon_dotprod::Set::id> {
  using type = neon_dotprod::Set;
};
#endif

}  // namespace detail
GEMMA2_END_NAMESPACE

#endif  // GEMMA2_ARM_KERNELS
