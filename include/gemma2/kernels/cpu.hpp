// Which kernel sets this CPU can run, found once per process at run time
// (CPUID and XGETBV on x86-64, the auxiliary vector on AArch64 Linux), so one
// binary built without -march runs the best kernels on every CPU it meets.
// A set's name is what GEMMA2_KERNELS, LoadOptions::kernels, `gemma2 info`
// and bench's "kernels" field use.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if defined(_MSC_VER)
#include <intrin.h>
#elif defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include "gemma2/kernels/target.hpp"
#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Kernel sets, from the least to the most capable of each architecture
// (each is one file in kernels/ and one row in dispatch.hpp's list).
//  portable      plain C++ (the reference every other set is tested against)
//  avx2          AVX2 + FMA + F16C (x86-64-v3: Haswell, Zen 1 and later)
//  avx512        AVX-512 F/BW/VL/DQ; with AVX-512 VNNI the integer dot products
//                and with AVX-512 BF16 the prefill GEMM use them too
//  neon          AArch64 Advanced SIMD (every AArch64 CPU)
//  neon-dotprod  NEON with SDOT (FEAT_DotProd: Cortex-A76, Apple M1 and later);
//                with FEAT_BF16 the prefill GEMM runs on BFMMLA
enum class KernelSet { Portable, AVX2, AVX512, NEON, NEONDotProd };

inline const char* kernel_set_name(KernelSet s) {
  switch (s) {
    case KernelSet::Portable: return "portable";
    case KernelSet::AVX2: return "avx2";
    case KernelSet::AVX512: return "avx512";
    case KernelSet::NEON: return "neon";
    case KernelSet::NEONDotProd: return "neon-dotprod";
  }
  return "?";
}

// Every set, in the order above.
inline constexpr KernelSet kKernelSets[] = {KernelSet::Portable, KernelSet::AVX2, KernelSet::AVX512, KernelSet::NEON,
                                            KernelSet::NEONDotProd};

inline std::optional<KernelSet> parse_kernel_set(std::string_view name) {
  for (KernelSet s : kKernelSets)
    if (name == kernel_set_name(s)) return s;
  return std::nullopt;
}

namespace detail {

// The instruction-set extensions the kernels use, as this CPU and its OS
// report them (a feature counts only if the OS saves its registers).
struct CpuFeatures {
  bool avx2 = false;    // with FMA and F16C
  bool avx512 = false;  // F, BW, VL and DQ
  bool avx512_vnni = false, avx512_bf16 = false;
  bool avx_vnni = false;  // vpdpbusd on 256-bit vectors (VEX: Alder Lake, Zen 5 and later)
  bool neon = false, dotprod = false, i8mm = false, bf16 = false;  // AArch64
};

#if defined(__x86_64__) || defined(_M_X64)
inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
#if defined(_MSC_VER)
  int v[4];
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(v[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

// The register state the OS saves on a context switch (XCR0).
inline uint64_t xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}

inline CpuFeatures detect_cpu() {
  CpuFeatures f;
  uint32_t r[4];
  cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  if (max_leaf < 7) return f;
  cpuid(1, 0, r);
  const bool fma = r[2] >> 12 & 1, osxsave = r[2] >> 27 & 1, avx = r[2] >> 28 & 1, f16c = r[2] >> 29 & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr = xcr0();
  const bool ymm = (xcr & 0x6) == 0x6, zmm = (xcr & 0xe6) == 0xe6;  // SSE+AVX state; + opmask, ZMM0-15 high, ZMM16-31
  cpuid(7, 0, r);
  const uint32_t b7 = r[1], c7 = r[2];
  f.avx2 = ymm && fma && f16c && (b7 >> 5 & 1);
  f.avx512 = f.avx2 && zmm && (b7 >> 16 & 1) && (b7 >> 17 & 1) && (b7 >> 30 & 1) && (b7 >> 31 & 1);
  f.avx512_vnni = f.avx512 && (c7 >> 11 & 1);
  cpuid(7, 1, r);
  f.avx512_bf16 = f.avx512 && (r[0] >> 5 & 1);
  f.avx_vnni = f.avx2 && (r[0] >> 4 & 1);
  return f;
}
#elif defined(__aarch64__) || defined(_M_ARM64)
inline CpuFeatures detect_cpu() {
  CpuFeatures f;
  f.neon = true;  // Advanced SIMD is part of every AArch64 CPU
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.dotprod = hw >> 20 & 1;  // HWCAP_ASIMDDP
  f.i8mm = hw2 >> 13 & 1;    // HWCAP2_I8MM
  f.bf16 = hw2 >> 14 & 1;    // HWCAP2_BF16
#elif defined(__APPLE__)
  f.dotprod = true;  // every Apple AArch64 CPU (M1 / A13 and later) has it
#endif
  return f;
}
#else
inline CpuFeatures detect_cpu() { return {}; }
#endif

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_cpu();
  return features;
}

}  // namespace detail

// "portable, avx2, avx512", for messages and help texts; every set by default.
inline std::string kernel_set_list(const std::vector<KernelSet>& sets = {std::begin(kKernelSets),
                                                                         std::end(kKernelSets)}) {
  std::string s;
  for (KernelSet k : sets) s += (s.empty() ? "" : ", ") + std::string(kernel_set_name(k));
  return s;
}
namespace detail {
using gemma2::kernel_set_list;  // the name the library's messages and tests use
}  // namespace detail

GEMMA2_END_NAMESPACE
