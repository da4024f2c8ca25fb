// The CLI's shared pieces: errors, range checks of numeric flags, the flags
// every model command takes (ModelOptions) and the model they load.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gemma2/gemma2.hpp"

namespace gemma2_cli {

using Model = gemma2::Gemma2Model<gemma2::RuntimeConfig>;
using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Reports an error on stderr; commands return its value as the exit code.
int fail(const std::string& message);

// Range checks for numeric options, run as CLI11 parses: a value outside
// the range is an error naming the option (CLI11 prefixes its name) and
// the range, which --help shows too.
CLI::Validator checked(const std::string& range, std::function<bool(double)> ok);
CLI::Validator at_least(int lo);
CLI::Validator between(int lo, int hi);

// The options several commands share, each added to `cmd`: --dtype,
// --mapping with --max-memory, --kernels, --prefill-precision, --kv-cache.
void add_dtype(CLI::App* cmd, std::string& dtype);
void add_memory_options(CLI::App* cmd, std::string& mapping, uint64_t& max_memory);
void add_kernels(CLI::App* cmd, std::string& kernels);
void add_prefill_precision(CLI::App* cmd, std::string& precision);
void add_kv_cache(CLI::App* cmd, std::string& kv);

// The values of --kernels and --prefill-precision (already checked by
// CLI::IsMember); no --kernels is nullopt.
std::optional<gemma2::KernelSet> kernel_option(const std::string& kernels);
gemma2::PrefillPrecision prefill_precision_option(const std::string& precision);

// Calls f with a value of the KV storage type --kv-cache names.
template <class F>
int with_kv_storage(const std::string& kv, F&& f) {
  if (kv == "bf16") return f(gemma2::bf16{});
  if (kv == "int8") return f(int8_t{});
  return f(float{});
}

// Options every model command takes.
struct ModelOptions {
  std::string dir;  // the default model (default_model_dir) unless --model
  std::string tokenizer;
  int threads = 1;
  std::string dtype;
  bool check_weights = false;
  std::string mapping = "mapped";
  uint64_t max_memory = 0;
  bool dry_run = false;
  std::string kernels;
  std::string prefill_precision = "exact";
  std::string kv_cache = "f32";

  ModelOptions();
  void add_to(CLI::App* cmd);
  gemma2::LoadOptions load_options() const;
};

// The tokenizer of a model: `explicit_path` if given, else the model's own
// (see gemma2::load_model_tokenizer).
gemma2::Result<gemma2::Tokenizer> open_tokenizer(const std::string& model, const std::string& explicit_path);

// Prints a progress line for slow load steps of large models; ends it at the end.
struct ProgressLine {
  bool shown = false;
  int last = -1;
  void operator()(const char* stage, size_t done, size_t total);
  void end();
};

// A loaded model with its thread pool and (if the directory has one) tokenizer.
struct Loaded {
  std::optional<Model> model;
  std::optional<gemma2::ThreadPool> pool;
  std::optional<gemma2::Tokenizer> tokenizer;
};

// The model of `o`, and its tokenizer when the command needs one (commands
// that take ids never open a tokenizer); nullopt after reporting an error.
std::optional<Loaded> load(const ModelOptions& o, bool need_tokenizer);

// "2 5 9": ids as the CLI prints them.
std::string join(const std::vector<int32_t>& ids);

}  // namespace gemma2_cli
