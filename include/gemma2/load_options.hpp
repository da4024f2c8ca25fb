// How a model is loaded (LoadOptions) and what it will hold in memory
// (MemoryPlan): shared by the model (model.hpp), the loader that binds a
// checkpoint's tensors (io/loader.hpp), the C ABI and the CLI, none of which
// needs the other's header for them.
#pragma once

#include <cstddef>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gemma2/config.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/kernels/cpu.hpp"
#include "gemma2/kv_cache.hpp"
#include "gemma2/status.hpp"
#include "gemma2/thread_pool.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// See LoadOptions::prefill_precision.
enum class PrefillPrecision { Exact, BF16 };

// Options of Gemma2Model::load.
struct LoadOptions {
  // Read every weight page during load instead of on first use, so the
  // first tokens run at full speed.
  bool preload = false;
  // Store the weight matrices in this type instead of the checkpoint's
  // (F32, BF16, F16, or the block formats Q8_0 / Q4_0), converted at load.
  // Norm weights stay float; matrices whose width is not a multiple of 32
  // keep their type for the block formats.
  std::optional<DType> weight_type;
  // Threads for the conversion.
  const Executor* pool = nullptr;
  // Progress of the slow steps: stage is "reading" (preload) or "converting".
  std::function<void(const char* stage, size_t bytes_done, size_t bytes_total)> progress;
  // Diagnostics (what was loaded, tensors that had to be copied); none by default.
  LogSink log;
  // Reject a checkpoint holding NaN or infinity in any weight, naming the
  // tensor and element. Off by default: it reads every weight once (about a
  // second per GB), and published checkpoints are finite. Without it a
  // non-finite weight is not noticed at load and makes the logits NaN.
  bool check_finite = false;
  // How weight files are held: mapped and used in place (the default), or
  // read into memory, immune to the file being truncated or replaced while
  // the model lives (see Mapping).
  Mapping mapping = Mapping::Mapped;
  // Refuse to load, before any weight is read, a model whose plan (see
  // Gemma2Model::plan) needs more than this many bytes; 0 = no limit.
  size_t max_memory = 0;
  // The kernel set the model's products use (kernels/cpu.hpp). Unset: the
  // environment variable GEMMA2_KERNELS if set, else the best set this CPU
  // supports. A set the CPU lacks (or an unknown GEMMA2_KERNELS) fails the
  // load with an error naming it.
  std::optional<KernelSet> kernels;
  // Activations of the prefill GEMM of BF16 weights, on kernel sets with
  // bf16 products (AVX512-BF16, FEAT_BF16). Exact (default): float32, on
  // the float GEMM, so BF16 weights reproduce the float32 reference on every
  // set. BF16: rounded to bf16, one bf16 product per weight, as llama.cpp
  // does: faster prefill, logits moved slightly (README quality table). No
  // effect elsewhere.
  PrefillPrecision prefill_precision = PrefillPrecision::Exact;
};

// The short names of the types LoadOptions::weight_type converts to, as the
// CLI's --dtype and the C ABI spell them.
inline constexpr std::pair<const char*, DType> kWeightTypeNames[] = {
    {"f32", DType::F32}, {"bf16", DType::BF16}, {"f16", DType::F16}, {"q8", DType::Q8_0}, {"q4", DType::Q4_0}};

inline std::optional<DType> parse_weight_type(std::string_view name) {
  for (const auto& [n, t] : kWeightTypeNames)
    if (name == n) return t;
  return std::nullopt;
}

// LoadOptions::prefill_precision by name ("exact", "bf16"), as the CLI's
// --prefill-precision and the C ABI spell it.
inline std::optional<PrefillPrecision> parse_prefill_precision(std::string_view name) {
  if (name == "exact") return PrefillPrecision::Exact;
  if (name == "bf16") return PrefillPrecision::BF16;
  return std::nullopt;
}

// What a model will hold in memory, known from the file headers alone
// (Gemma2Model::plan): nothing of the weights is read to work it out.
struct MemoryPlan {
  RuntimeConfig config;
  // Weight files mapped and used in place: resident once their pages are
  // read, shared with other processes mapping them, reclaimable by the OS.
  size_t mapped_bytes = 0;
  // Memory of the model's own: weights converted (LoadOptions::weight_type),
  // regrouped (GGUF Q8_0/Q4_0) or realigned at load, norm gains, and with
  // Mapping::Copied the weight files themselves.
  size_t allocated_bytes = 0;
  // Weight bytes one decode step reads (Gemma2Model::weight_bytes).
  size_t weight_bytes = 0;

  size_t total_bytes() const { return mapped_bytes + allocated_bytes; }
  // The KV cache of one sequence of `context` positions for a cache type
  // (KVCache, SlidingWindowKVCache<>, ...): what make_cache will allocate.
  template <class Cache = KVCache>
  size_t cache_bytes(int context) const {
    return Cache::bytes_for(cache_shape(config, context));
  }
};

// "17.2 GB", "13.9 MB", "900 bytes" (decimal units, as memory is sold), for
// messages about the memory a model takes (MemoryPlan).
inline std::string human_bytes(size_t bytes) {
  char buf[32];
  if (bytes >= 1000000000) std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  else if (bytes >= 1000000) std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  else std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  return buf;
}
namespace detail {
using gemma2::human_bytes;  // the loader's messages name it so
}  // namespace detail

GEMMA2_END_NAMESPACE
