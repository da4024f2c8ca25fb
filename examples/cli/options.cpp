#include "options.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <utility>

#include "platform.hpp"

namespace gemma2_cli {

int fail(const std::string& message) {
  std::cerr << "gemma2: " << message << "\n";
  return 1;
}

CLI::Validator checked(const std::string& range, std::function<bool(double)> ok) {
  return CLI::Validator(
      [range, ok = std::move(ok)](std::string& value) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(value.c_str(), &end);
        if (value.empty() || *end != '\0' || !ok(v)) return "must be " + range + ", got " + value;
        return {};
      },
      range);
}
CLI::Validator at_least(int lo) {
  return checked(">= " + std::to_string(lo), [lo](double v) { return v >= lo; });
}
CLI::Validator between(int lo, int hi) {
  return checked("from " + std::to_string(lo) + " to " + std::to_string(hi),
                 [lo, hi](double v) { return v >= lo && v <= hi; });
}

void add_dtype(CLI::App* cmd, std::string& dtype) {
  cmd->add_option("--dtype", dtype,
                  "weight storage: f32, bf16, f16, q8 (8.5 bits) or q4 (4.5 bits); "
                  "default: as in the checkpoint")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "q8", "q4"}));
}

void add_memory_options(CLI::App* cmd, std::string& mapping, uint64_t& max_memory) {
  cmd->add_option("--mapping", mapping,
                  "mapped: use the weight files in place (they must not change while running); "
                  "copied: read them into memory")
      ->check(CLI::IsMember({"mapped", "copied"}))
      ->capture_default_str();
  cmd->add_option("--max-memory", max_memory, "refuse to load a model needing more than this (e.g. 16G, 512M)")
      ->transform(CLI::AsSizeValue(true))
      // A transform runs before those added earlier: this one before the
      // conversion, which would wrap a negative size around.
      ->transform(CLI::Validator(
          [](std::string& size) { return size.find('-') == std::string::npos ? "" : "must be >= 0, got " + size; },
          ""));
}

// --kernels: a kernel set (default: GEMMA2_KERNELS, else the best this CPU runs).
void add_kernels(CLI::App* cmd, std::string& kernels) {
  std::vector<std::string> names;
  for (gemma2::KernelSet s : gemma2::kKernelSets) names.push_back(gemma2::kernel_set_name(s));
  cmd->add_option(
         "--kernels", kernels,
         "kernel set: " + gemma2::kernel_set_list() + " (default: $GEMMA2_KERNELS, else the best this CPU runs)")
      ->check(CLI::IsMember(names));
}

// --prefill-precision: exact (default) or bf16 (LoadOptions::prefill_precision).
void add_prefill_precision(CLI::App* cmd, std::string& precision) {
  cmd->add_option("--prefill-precision", precision,
                  "activations of the BF16 weights' prefill GEMM on CPUs with bf16 products: exact (float32, "
                  "reproduces the reference) or bf16 (rounded to bf16, faster, as llama.cpp)")
      ->check(CLI::IsMember({"exact", "bf16"}))
      ->capture_default_str();
}

// --kv-cache: how keys and values are stored (f32 exact, bf16, int8 = Q8_0).
void add_kv_cache(CLI::App* cmd, std::string& kv) {
  cmd->add_option("--kv-cache", kv,
                  "KV-cache storage: f32 (exact), bf16 (half the memory) or int8 (Q8_0 per head, 17/64 of f32)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}))
      ->capture_default_str();
}

std::optional<gemma2::KernelSet> kernel_option(const std::string& kernels) {
  if (kernels.empty()) return std::nullopt;
  return gemma2::parse_kernel_set(kernels);
}

gemma2::PrefillPrecision prefill_precision_option(const std::string& precision) {
  return gemma2::parse_prefill_precision(precision).value_or(gemma2::PrefillPrecision::Exact);
}

ModelOptions::ModelOptions() : dir(default_model_dir()) {}

void ModelOptions::add_to(CLI::App* cmd) {
  cmd->add_option("--model", dir,
                  "Hugging Face model directory (config.json, safetensors, tokenizer.model) or a .gguf file")
      ->capture_default_str();
  cmd->add_option("--tokenizer", tokenizer,
                  "sentencepiece tokenizer.model (default: the model directory's, or the one beside a .gguf file)");
  cmd->add_option("--threads", threads, "threads for the matrix products")
      ->check(between(1, gemma2::ThreadPool::kMaxThreads))
      ->capture_default_str();
  add_dtype(cmd, dtype);
  cmd->add_flag("--check-weights", check_weights, "reject weights holding NaN or infinity (reads every weight once)");
  add_memory_options(cmd, mapping, max_memory);
  cmd->add_flag("--dry-run", dry_run, "print what the model would take in memory (as gemma2 info) and exit");
  add_kernels(cmd, kernels);
  add_prefill_precision(cmd, prefill_precision);
  add_kv_cache(cmd, kv_cache);
}

gemma2::LoadOptions ModelOptions::load_options() const {
  gemma2::LoadOptions lo;
  if (!dtype.empty()) lo.weight_type = *gemma2::parse_weight_type(dtype);
  lo.check_finite = check_weights;
  lo.mapping = mapping == "copied" ? gemma2::Mapping::Copied : gemma2::Mapping::Mapped;
  lo.max_memory = max_memory;
  lo.kernels = kernel_option(kernels);
  lo.prefill_precision = prefill_precision_option(prefill_precision);
  return lo;
}

gemma2::Result<gemma2::Tokenizer> open_tokenizer(const std::string& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return gemma2::Tokenizer::load(explicit_path);
  return gemma2::load_model_tokenizer(model);
}

void ProgressLine::operator()(const char* stage, size_t done, size_t total) {
  const int pct = static_cast<int>(100.0 * done / total);
  if (total < (size_t{256} << 20) || pct == last) return;
  last = pct;
  std::fprintf(stderr, "\r%s weights: %3d%% (%.2f of %.2f GB)   ", stage, static_cast<int>(100.0 * done / total),
               done / 1e9, total / 1e9);
  shown = true;
}

void ProgressLine::end() {
  if (shown) std::fprintf(stderr, "\n");
  shown = false;
  last = -1;
}

std::optional<Loaded> load(const ModelOptions& o, bool need_tokenizer) {
  Loaded l;
  auto pool = gemma2::ThreadPool::create(o.threads);
  if (!pool) return fail(pool.message()), std::nullopt;
  l.pool.emplace(std::move(*pool));
  gemma2::LoadOptions lo = o.load_options();
  lo.preload = true;  // fault the weights in now, with a progress line for large checkpoints
  ProgressLine progress;
  lo.progress = std::ref(progress);
  lo.pool = &*l.pool;
  const auto t0 = Clock::now();
  auto m = Model::load(o.dir, lo);
  progress.end();
  if (!m) return fail(m.message()), std::nullopt;
  l.model.emplace(std::move(*m));
  if (need_tokenizer) {
    auto tok = open_tokenizer(o.dir, o.tokenizer);
    if (!tok) return fail(tok.message()), std::nullopt;
    if (tok->vocab_size() > l.model->config().vocab_size)
      return fail("tokenizer has " + std::to_string(tok->vocab_size()) + " pieces but the model only " +
                  std::to_string(l.model->config().vocab_size)),
             std::nullopt;
    l.tokenizer.emplace(std::move(*tok));
  }
  std::cerr << "loaded " << o.dir << " in " << std::fixed << std::setprecision(2) << seconds_since(t0) << " s\n";
  return l;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace gemma2_cli
