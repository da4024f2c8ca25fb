// gemma2 info (and --dry-run of the model commands).
#include <iostream>
#include <sstream>

#include "commands.hpp"

namespace gemma2_cli {
namespace {

std::string config_line(const gemma2::RuntimeConfig& c) {
  int local = 0;
  for (auto k : c.layer_types) local += k == gemma2::AttentionKind::Local;
  std::ostringstream s;
  s << "vocab " << c.vocab_size << ", hidden " << c.hidden_size << ", " << c.num_hidden_layers << " layers (" << local
    << " local, window " << c.sliding_window << "), " << c.num_attention_heads << " heads (" << c.num_key_value_heads
    << " kv) x " << c.head_dim << ", ffn " << c.intermediate_size << ", context " << c.max_position_embeddings;
  return s.str();
}

// "avx512 (vnni bf16)": the kernel table a load would use.
std::string kernels_line(const gemma2::KernelChoice& k) {
  return std::string(gemma2::kernel_set_name(k.set)) + (*k.features ? std::string(" (") + k.features + ")" : "");
}

}  // namespace

int run_info(const std::string& model, const gemma2::LoadOptions& lo, int context) {
  auto plan = Model::plan(model, lo);
  if (!plan) return fail(plan.message());
  auto kernels = gemma2::choose_kernels(lo.kernels);
  if (!kernels) return fail(kernels.message());
  const gemma2::RuntimeConfig& c = plan->config;
  if (context == 0) context = c.max_position_embeddings;
  if (context < 1 || context > c.max_position_embeddings)
    return fail("--context must be between 1 and " + std::to_string(c.max_position_embeddings));
  using gemma2::human_bytes;
  const size_t full = plan->cache_bytes<gemma2::KVCache>(context);
  const size_t full_bf16 = plan->cache_bytes<gemma2::FullKVCache<gemma2::bf16>>(context);
  const size_t full_int8 = plan->cache_bytes<gemma2::FullKVCache<int8_t>>(context);
  const size_t window = plan->cache_bytes<gemma2::SlidingWindowKVCache<>>(context);
  std::cout << "model: " << model << "\n"
            << "config: " << config_line(c) << "\n"
            << "weights: " << human_bytes(plan->mapped_bytes) << " mapped + " << human_bytes(plan->allocated_bytes)
            << " allocated = " << human_bytes(plan->total_bytes()) << " (" << plan->mapped_bytes << " + "
            << plan->allocated_bytes << " bytes; mapping "
            << (lo.mapping == gemma2::Mapping::Copied ? "copied" : "mapped") << ")\n"
            << "read per decoded token: " << human_bytes(plan->weight_bytes) << "\n"
            << "KV cache for " << context << " positions: full f32 " << human_bytes(full) << ", full bf16 "
            << human_bytes(full_bf16) << ", full int8 " << human_bytes(full_int8) << ", sliding-window f32 "
            << human_bytes(window) << "\n"
            << "total with a full f32 cache: " << human_bytes(plan->total_bytes() + full)
            << "; with a sliding-window cache: " << human_bytes(plan->total_bytes() + window) << "\n"
            << "kernels: " << kernels_line(*kernels)
            << " (this CPU runs: " << gemma2::kernel_set_list(gemma2::supported_kernel_sets()) << ")\n";
  if (lo.max_memory != 0 && plan->total_bytes() > lo.max_memory)  // the answer scripts ask info for
    return fail("the weights need " + human_bytes(plan->total_bytes()) + ", more than --max-memory " +
                human_bytes(lo.max_memory));
  return 0;
}

}  // namespace gemma2_cli
