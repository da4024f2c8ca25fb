// Which architecture's kernels this build compiles, and the regions that
// compile them for an instruction set the rest of the program may not
// assume: GCC and Clang give every function in a region the target's
// features (so its intrinsics inline), MSVC allows them anywhere. The
// kernels only run after the CPU check in cpu.hpp, so a binary built with no
// -march flag carries every set and uses the best one the CPU has.
// Define GEMMA2_PORTABLE_ONLY to compile the portable kernels alone.
#pragma once

#if !defined(GEMMA2_PORTABLE_ONLY)
#if defined(__x86_64__) || defined(_M_X64)
#define GEMMA2_X86_KERNELS 1
#elif defined(__aarch64__)
#define GEMMA2_ARM_KERNELS 1
// The SDOT intrinsics need a compiler that enables them per function (GCC),
// or a build for a CPU that has them.
#if (defined(__GNUC__) && !defined(__clang__)) || defined(__ARM_FEATURE_DOTPROD)
#define GEMMA2_ARM_DOTPROD_KERNELS 1
#endif
// Likewise BFMMLA (FEAT_BF16), used by the dot-product set where the CPU has it.
#if GEMMA2_ARM_DOTPROD_KERNELS && ((defined(__GNUC__) && !defined(__clang__)) || defined(__ARM_FEATURE_BF16))
#define GEMMA2_ARM_BF16_KERNELS 1
#endif
#endif
#endif

#define GEMMA2_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define GEMMA2_TARGET_BEGIN(features) \
  GEMMA2_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define GEMMA2_TARGET_END GEMMA2_PRAGMA(clang attribute pop)
#elif defined(__GNUC__)
#define GEMMA2_TARGET_BEGIN(features) GEMMA2_PRAGMA(GCC push_options) GEMMA2_PRAGMA(GCC target(features))
#define GEMMA2_TARGET_END GEMMA2_PRAGMA(GCC pop_options)
#else
#define GEMMA2_TARGET_BEGIN(features)
#define GEMMA2_TARGET_END
#endif

// Inlines every call in a function's body, recursively (GCC and Clang), so
// that portable code called from a target region is compiled, and
// vectorized, for the region's instruction set.
#if defined(__GNUC__)
#define GEMMA2_FLATTEN __attribute__((flatten))
#else
#define GEMMA2_FLATTEN
#endif

// Register-tile loops must be unrolled fully, or their accumulators live in
// memory (GCC does not at -O2).
#if defined(__GNUC__)
#define GEMMA2_UNROLL _Pragma("GCC unroll 16")
#else
#define GEMMA2_UNROLL
#endif
