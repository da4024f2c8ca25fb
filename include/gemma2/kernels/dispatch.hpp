// One table of kernels per set (common.hpp), and the choice among them: the
// best set this CPU supports, unless the environment variable
// GEMMA2_KERNELS or LoadOptions::kernels asks for another (for tests and bug
// reports).
//
// Adding a kernel set: a file in kernels/ that holds its kernels, compiled
// inside its own GEMMA2_TARGET_BEGIN region and guarded by its
// architecture's macro (target.hpp), and its `struct Set` (its CPU probe
// and table), registered as SetOf<id> (common.hpp); its row in
// GEMMA2_KERNEL_SETS (cpu.hpp: the enumerator and name, known to every
// build for messages); and its include below. A CPU extension no set used
// before is also a field in CpuFeatures (cpu.hpp), which the set's probe
// fills.
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
#include <type_traits>
#include <utility>
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
// Whether this build compiles set `s` (its file registered it).
template <KernelSet s, class = void>
struct Compiled : std::false_type {};
template <KernelSet s>
struct Compiled<s, std::void_t<typename SetOf<s>::type>> : std::true_type {};

template <KernelSet s, class F>
void call_if_compiled(F& f) {
  if constexpr (Compiled<s>::value) f(typename SetOf<s>::type{});
}
template <class F, size_t... I>
void for_each_compiled_set(F& f, std::index_sequence<I...>) {
  (call_if_compiled<kKernelSets[I]>(f), ...);
}
// f(Set{}) for every set this build compiles, in the order of kKernelSets.
template <class F>
void for_each_compiled_set(F&& f) {
  for_each_compiled_set(f, std::make_index_sequence<std::size(kKernelSets)>{});
}

inline CpuFeatures detect_cpu() {
  CpuFeatures f;
  for_each_compiled_set([&](auto set) { decltype(set)::probe(f); });
  return f;
}

// This CPU's features, probed once per process.
inline const CpuFeatures& probed_cpu_features() {
  static const CpuFeatures features = detect_cpu();
  return features;
}

// The table of `s` for a CPU with the extensions in `cpu`: what the set
// fills in depends on them. Tests also build the tables of CPUs with fewer
// extensions than this one. A set this build does not compile gets the
// portable table.
inline Kernels build_kernels(KernelSet s, const CpuFeatures& cpu) {
  Kernels k = portable::Set::table(cpu);
  for_each_compiled_set([&](auto set) {
    if (decltype(set)::id == s) k = decltype(set)::table(cpu);
  });
  return k;
}

// The table of set S for this CPU, built once per process, or null when
// this CPU cannot run it.
template <class S>
const Kernels* table_for_this_cpu() {
  static const std::optional<Kernels> table =
      S::supported(probed_cpu_features()) ? std::optional<Kernels>(S::table(probed_cpu_features())) : std::nullopt;
  return table ? &*table : nullptr;
}

// The table of `s` for this CPU, or null when this CPU or build cannot run it.
inline const Kernels* build_kernels_for(KernelSet s) {
  const Kernels* k = nullptr;
  for_each_compiled_set([&](auto set) {
    if (decltype(set)::id == s) k = table_for_this_cpu<decltype(set)>();
  });
  return k;
}
#endif

#if defined(GEMMA2_KERNELS_EXTERN)
// Defined once, in the unit with GEMMA2_KERNELS_IMPLEMENTATION.
const Kernels* compiled_kernels_for(KernelSet s);
Kernels kernels_with(KernelSet s, const CpuFeatures& cpu);
const CpuFeatures& cpu_features();
#if defined(GEMMA2_KERNELS_IMPLEMENTATION)
const Kernels* compiled_kernels_for(KernelSet s) { return build_kernels_for(s); }
Kernels kernels_with(KernelSet s, const CpuFeatures& cpu) { return build_kernels(s, cpu); }
const CpuFeatures& cpu_features() { return probed_cpu_features(); }
#endif
inline const Kernels* kernels_for(KernelSet s) { return compiled_kernels_for(s); }
#else
inline const Kernels* kernels_for(KernelSet s) { return build_kernels_for(s); }
inline Kernels kernels_with(KernelSet s, const CpuFeatures& cpu) { return build_kernels(s, cpu); }
// This CPU's features, as the compiled sets' probes found them.
inline const CpuFeatures& cpu_features() { return probed_cpu_features(); }
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
