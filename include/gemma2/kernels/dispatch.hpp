// One table of kernels per set (common.hpp), and the choice among them: the
// best set this CPU supports, unless the environment variable
// GEMMA2_KERNELS or LoadOptions::kernels asks for another (for tests and bug
// reports).
//
// Adding a kernel set: (1) a file in kernels/ whose namespace holds the
// kernels, compiled inside its own GEMMA2_TARGET_BEGIN region and guarded by
// its architecture's macro (target.hpp), and a `struct Set` with the set's
// `id`, `supported(const CpuFeatures&)` (whether this CPU runs it) and
// `table(const CpuFeatures&)`; (2) its enumerator and name in cpu.hpp
// (KernelSet, kernel_set_name, kKernelSets: names are known to every build,
// for messages); (3) its include and its row in CompiledSets below. A set
// that needs a CPU extension no set used before also reads it in
// detect_cpu (cpu.hpp).
//
// Compile time: every translation unit that includes the library compiles
// every kernel set (about 10-20 s at -O2/-O3). A program with many such
// units can compile them once instead: define GEMMA2_KERNELS_EXTERN in all
// of them, and add one source file that defines GEMMA2_KERNELS_EXTERN and
// GEMMA2_KERNELS_IMPLEMENTATION before including the library (src/kernels.cpp
// is that file; the project's tests are built this way). GEMMA2_COMPILED
// (version.hpp) implies GEMMA2_KERNELS_EXTERN: its compiled unit,
// src/gemma2.cpp, holds the kernel sets too.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gemma2/kernels/common.hpp"
#include "gemma2/status.hpp"

#if !defined(GEMMA2_KERNELS_EXTERN) || defined(GEMMA2_KERNELS_IMPLEMENTATION)
#include "gemma2/kernels/portable.hpp"
#include "gemma2/kernels/x86_avx2.hpp"
#include "gemma2/kernels/x86_avx512.hpp"
#include "gemma2/kernels/arm_neon.hpp"
#endif

GEMMA2_BEGIN_NAMESPACE
namespace detail {

#if !defined(GEMMA2_KERNELS_EXTERN) || defined(GEMMA2_KERNELS_IMPLEMENTATION)
template <class... Sets>
struct SetList {};

// Every set this build compiles, one row each.
using CompiledSets = SetList<portable::Set
#if GEMMA2_X86_KERNELS
                             ,
                             avx2::Set, avx512::Set
#endif
#if GEMMA2_ARM_KERNELS
                             ,
                             neon::Set
#endif
#if GEMMA2_ARM_DOTPROD_KERNELS
                             ,
                             neon_dotprod::Set
#endif
                             >;

// The table of `s` (compiled into this build) for a CPU with the extensions
// in `cpu`: what the set fills in depends on them. Tests also build the
// tables of CPUs with fewer extensions than this one. A set this build does
// not compile gets the portable table.
template <class... Sets>
Kernels build_kernels(SetList<Sets...>, KernelSet s, const CpuFeatures& cpu) {
  Kernels k = portable::Set::table(cpu);
  ((Sets::id == s ? (k = Sets::table(cpu), true) : false) || ...);
  return k;
}

// The table of set S for this CPU, built once per process, or null when
// this CPU cannot run it.
template <class S>
const Kernels* table_for_this_cpu() {
  static const std::optional<Kernels> table =
      S::supported(cpu_features()) ? std::optional<Kernels>(S::table(cpu_features())) : std::nullopt;
  return table ? &*table : nullptr;
}

// The table of `s` for this CPU, or null when this CPU or build cannot run it.
template <class... Sets>
const Kernels* build_kernels_for(SetList<Sets...>, KernelSet s) {
  const Kernels* k = nullptr;
  ((Sets::id == s ? (k = table_for_this_cpu<Sets>(), true) : false) || ...);
  return k;
}
#endif

#if defined(GEMMA2_KERNELS_EXTERN)
// Defined once, in the unit with GEMMA2_KERNELS_IMPLEMENTATION.
const Kernels* compiled_kernels_for(KernelSet s);
Kernels kernels_with(KernelSet s, const CpuFeatures& cpu);
#if defined(GEMMA2_KERNELS_IMPLEMENTATION)
const Kernels* compiled_kernels_for(KernelSet s) { return build_kernels_for(CompiledSets{}, s); }
Kernels kernels_with(KernelSet s, const CpuFeatures& cpu) { return build_kernels(CompiledSets{}, s, cpu); }
#endif
inline const Kernels* kernels_for(KernelSet s) { return compiled_kernels_for(s); }
#else
inline const Kernels* kernels_for(KernelSet s) { return build_kernels_for(CompiledSets{}, s); }
inline Kernels kernels_with(KernelSet s, const CpuFeatures& cpu) { return build_kernels(CompiledSets{}, s, cpu); }
#endif

}  // namespace detail

// Whether this CPU can run `s` with this build (which compiles the kernels
// of the architecture it targets).
inline bool kernel_set_supported(KernelSet s) { return detail::kernels_for(s) != nullptr; }

// The sets this CPU can run, least capable first; the last is the default.
inline std::vector<KernelSet> supported_kernel_sets() {
  std::vector<KernelSet> sets;
  for (KernelSet s : kKernelSets)
    if (kernel_set_supported(s)) sets.push_back(s);
  return sets;
}

namespace detail {

// `name` as a kernel set, or an error naming `what` and the sets there are.
inline Result<KernelSet> kernel_set_named(std::string_view name, const std::string& what) {
  if (auto s = parse_kernel_set(name)) return *s;
  return err(what, " is not a kernel set (one of: ", kernel_set_list(), ")");
}

// The table for `requested`, else for GEMMA2_KERNELS when it is set, else
// for the best set this CPU supports.
inline Result<const Kernels*> select_kernels(std::optional<KernelSet> requested) {
  std::string what;
  if (!requested) {
    const char* env = std::getenv("GEMMA2_KERNELS");
    if (env == nullptr || *env == '\0') return kernels_for(supported_kernel_sets().back());
    what = std::string("GEMMA2_KERNELS=") + env;
    auto named = kernel_set_named(env, what);
    if (!named) return Error{named.message()};
    requested = *named;
  } else {
    what = std::string("kernel set ") + kernel_set_name(*requested);
  }
  if (const Kernels* k = kernels_for(*requested)) return k;
  return err(what, ": this CPU cannot run the ", kernel_set_name(*requested),
             " kernels (it can run: ", kernel_set_list(supported_kernel_sets()), ")");
}

// The process-wide table, for products whose Matrix names none: as
// select_kernels(nullopt), falling back to the best set when
// GEMMA2_KERNELS is invalid (loading a model reports that as an error).
inline const Kernels& default_kernels() {
  static const Kernels* k = [] {
    auto r = select_kernels(std::nullopt);
    return r ? *r : kernels_for(supported_kernel_sets().back());
  }();
  return *k;
}

}  // namespace detail

// What a load with LoadOptions::kernels = `requested` would run, as
// Gemma2Model::kernel_set() and kernel_features() then say (the CPU features
// the table uses, e.g. "vnni bf16"), known before any model is loaded; or
// why it cannot run here.
struct KernelChoice {
  KernelSet set;
  const char* features;
};
inline Result<KernelChoice> choose_kernels(std::optional<KernelSet> requested) {
  auto k = detail::select_kernels(requested);
  if (!k) return Error{k.message()};
  return KernelChoice{(*k)->set, (*k)->features};
}

GEMMA2_END_NAMESPACE
