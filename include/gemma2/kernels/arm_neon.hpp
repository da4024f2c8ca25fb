// The AArch64 kernel sets. `neon`: Advanced SIMD, part of every AArch64 CPU
// (4-float FMA dot products and GEMM; int8 block dots on vmull/vpadal);
// `neon-dotprod`: the same with the block dots on SDOT (FEAT_DotProd: 16
// byte products per instruction, Cortex-A76 / Apple M1 and later), compiled
// for armv8.2-a+dotprod in its own region and used only where the CPU has it.
#pragma once

#include <array>
#include <utility>

#include "gemma2/kernels/portable.hpp"

#if GEMMA2_ARM_KERNELS
#include <arm_neon.h>

GEMMA2_BEGIN_NAMESPACE
namespace detail {
namespace neon {

struct V {
  using F = float32x4_t;
  static constexpr int kLanes = 4, kTileTokens = 8;
  static F zero() { return vdupq_n_f32(0.0f); }
  static F load(const float* p) { return vld1q_f32(p); }
  static F load(const bf16* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
  }
  static F load(const f16* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)))); }
  static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }
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

inline Kernels kernels() {
  Kernels k;
  k.set = KernelSet::NEON;
  k.dense_rows = dense_rows;
  k.quant_rows = quant_rows;
  k.gemm = gemm_float;
  return k;
}

}  // namespace neon

#if GEMMA2_ARM_DOTPROD_KERNELS
namespace neon_dotprod {

GEMMA2_TARGET_BEGIN("arch=armv8.2-a+dotprod")

inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

#include "gemma2/kernels/neon_blocks.inc"

GEMMA2_TARGET_END

inline Kernels kernels() {
  Kernels k = neon::kernels();
  k.set = KernelSet::NEONDotProd;
  k.quant_rows = quant_rows;
  return k;
}

}  // namespace neon_dotprod
#endif

}  // namespace detail
GEMMA2_END_NAMESPACE

#endif  // GEMMA2_ARM_KERNELS
