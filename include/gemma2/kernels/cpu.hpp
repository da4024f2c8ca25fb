// The kernel sets by name, and the CPU features their probes report. Each
// set's file probes the extensions it uses (CPUID and XGETBV on x86-64, the
// auxiliary vector on AArch64 Linux) once per process, so one binary built
// without -march runs the best kernels on every CPU it meets. A set's name
// is what GEMMA2_KERNELS, LoadOptions::kernels, `gemma2 info` and bench's
// "kernels" field use.
#pragma once

#include <array>
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

#include "gemma2/kernels/target.hpp"
#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Every kernel set, one row each, from the least to the most capable of
// each architecture: its enumerator and its name. The set itself (its
// kernels, target region, CPU probe and table) is one file in kernels/,
// which registers it (SetOf in common.hpp); dispatch.hpp includes it.
//  portable      plain C++ (the reference every other set is tested against)
//  avx2          AVX2 + FMA + F16C (x86-64-v3: Haswell, Zen 1 and later)
//  avx512        AVX-512 F/BW/VL/DQ; with AVX-512 VNNI the integer dot products
//                and with AVX-512 BF16 the prefill GEMM use them too
//  neon          AArch64 Advanced SIMD (every AArch64 CPU)
//  neon-dotprod  NEON with SDOT (FEAT_DotProd: Cortex-A76, Apple M1 and later);
//                with FEAT_BF16 the prefill GEMM runs on BFMMLA
#define GEMMA2_KERNEL_SETS(row) \
  row(Portable, "portable") row(AVX2, "avx2") row(AVX512, "avx512") row(NEON, "neon") row(NEONDotProd, "neon-dotprod")

#define GEMMA2_KERNEL_SET_ENUMERATOR(id, name) id,
enum class KernelSet { GEMMA2_KERNEL_SETS(GEMMA2_KERNEL_SET_ENUMERATOR) };
#undef GEMMA2_KERNEL_SET_ENUMERATOR

inline const char* kernel_set_name(KernelSet s) {
#define GEMMA2_KERNEL_SET_CASE(id, name) \
  case KernelSet::id: return name;
  switch (s) { GEMMA2_KERNEL_SETS(GEMMA2_KERNEL_SET_CASE) }
#undef GEMMA2_KERNEL_SET_CASE
  return "?";
}

// Every set, in the order above.
#define GEMMA2_KERNEL_SET_ELEMENT(id, name) KernelSet::id,
inline constexpr KernelSet kKernelSets[] = {GEMMA2_KERNEL_SETS(GEMMA2_KERNEL_SET_ELEMENT)};
#undef GEMMA2_KERNEL_SET_ELEMENT

inline std::optional<KernelSet> parse_kernel_set(std::string_view name) {
  for (KernelSet s : kKernelSets)
    if (name == kernel_set_name(s)) return s;
  return std::nullopt;
}

namespace detail {

// The instruction-set extensions the kernels use, as this CPU and its OS
// report them (a feature counts only if the OS saves its registers): each
// set's probe (Set::probe) fills the fields of the extensions it uses.
struct CpuFeatures {
  bool avx2 = false;    // with FMA and F16C
  bool avx512 = false;  // F, BW, VL and DQ
  bool avx512_vnni = false, avx512_bf16 = false;
  bool avx_vnni = false;                             // vpdpbusd on 256-bit vectors (VEX: Alder Lake, Zen 5 and later)
  bool neon = false, dotprod = false, bf16 = false;  // AArch64
};

#if defined(__x86_64__) || defined(_M_X64)
// CPUID leaf `leaf`, subleaf `sub`: EAX, EBX, ECX, EDX; zeros for a leaf
// above the CPU's highest.
inline std::array<uint32_t, 4> cpuid(uint32_t leaf, uint32_t sub) {
  std::array<uint32_t, 4> r{};
#if defined(_MSC_VER)
  int v[4];
  __cpuid(v, 0);
  if (leaf > static_cast<uint32_t>(v[0])) return r;
  __cpuidex(v, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[static_cast<size_t>(i)] = static_cast<uint32_t>(v[i]);
#else
  if (leaf > static_cast<uint32_t>(__get_cpuid_max(0, nullptr))) return r;
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
  return r;
}

// The register state the OS saves on a context switch (XCR0); only to be
// read once CPUID.1:ECX says the OS uses XSAVE (OSXSAVE, bit 27).
inline uint64_t xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}
#endif

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
