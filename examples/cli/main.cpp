// gemma2: command-line front end to the library.
//
//   gemma2 generate   [--model DIR] (--prompt TEXT | --ids 2,5,9) [--max-new N] [--greedy | sampling flags]
//                     [--grammar-file F.gbnf | --json-schema F.json [--json-whitespace compact|spaces|free]]
//                     [--draft-model DIR|FILE | --lookup N] [--draft-max K]
//   gemma2 chat       [--model DIR] [--system TEXT] [--verbose] [--grammar-file F | --json-schema F]
//                     [--draft-model DIR|FILE | --lookup N] [--draft-max K] [--delimiter TEXT]
//   gemma2 tokenize   (--tokenizer FILE | --model DIR) --text TEXT
//   gemma2 perplexity [--model DIR] (--ids 2,5,9 | --text-file F) [--top-k-out FILE]
//   gemma2 logits     [--model DIR] --ids 2,5,9 --out FILE
//   gemma2 info       [--model DIR] [--context N]   (memory a model needs; no weight is read)
//
// Without --model, the built-in demo model (models/tiny-shakespeare) is used.
// The spellings of logits, generate --ids/--prompt ... --print-ids, tokenize,
// perplexity, generate/chat --grammar-file/--json-schema and --draft-model/
// --lookup/--draft-max are a contract: other tooling calls them. With a
// grammar, generate prints exactly the constrained text on stdout, complete
// within --max-new tokens; with a drafter, the same ids as without.
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gemma2/gemma2.hpp"
#include "gemma2/testing/random_model.hpp"

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <psapi.h>  // after gemma2, which includes <windows.h> with NOMINMAX
#include <shellapi.h>
#else
#include <unistd.h>
#endif
#if defined(__APPLE__)
#include <mach-o/dyld.h>  // _NSGetExecutablePath
#endif

namespace {

using Model = gemma2::Gemma2Model<gemma2::RuntimeConfig>;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Reports an error on stderr; commands return its value as the exit code.
int fail(const std::string& message) {
  std::cerr << "gemma2: " << message << "\n";
  return 1;
}

// Range checks for numeric options, run as CLI11 parses: a value outside
// the range is an error naming the option (CLI11 prefixes its name) and
// the range, which --help shows too.
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

// The running program's path (UTF-8), or "" where the system does not say.
std::string executable_path() {
#if defined(_WIN32)
  std::wstring path(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
    if (n == 0) return "";
    if (n < path.size()) return gemma2::detail::utf8_string(path.data(), static_cast<int>(n));
    path.resize(path.size() * 2);  // truncated: n == size
  }
#elif defined(__APPLE__)
  uint32_t size = 0;
  _NSGetExecutablePath(nullptr, &size);  // sets the size needed
  std::string path(size, '\0');
  if (_NSGetExecutablePath(path.data(), &size) != 0) return "";
  path.resize(std::strlen(path.c_str()));
  return path;
#elif defined(__linux__)
  std::string path(256, '\0');
  for (;;) {
    const ssize_t n = readlink("/proc/self/exe", path.data(), path.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) < path.size()) return path.substr(0, static_cast<size_t>(n));
    path.resize(path.size() * 2);  // perhaps truncated: n == size
  }
#else
  return "";
#endif
}

// $GEMMA2_MODEL, else the demo model installed with the program
// (GEMMA2_INSTALLED_MODEL_DIR: <prefix>/share/gemma2/models/tiny-shakespeare,
// relative to <prefix>/bin, so a moved prefix still finds it), else the
// source tree's, for the program in its build tree.
std::string default_model_dir() {
  if (const char* env = std::getenv("GEMMA2_MODEL")) return env;
  std::string dir = executable_path(), relative = GEMMA2_INSTALLED_MODEL_DIR;
  // Up from the program: once for its name, once per leading "../".
  for (bool up = true; up;) {
    const size_t end = dir.find_last_of("/\\");
    if (end == std::string::npos) return GEMMA2_DEFAULT_MODEL_DIR;
    dir.resize(end);
    up = relative.compare(0, 3, "../") == 0;
    if (up) relative.erase(0, 3);
  }
  const std::string installed = dir + "/" + relative;
  const auto kind = gemma2::detail::path_kind(installed);
  return kind && *kind == gemma2::detail::FileKind::Directory ? installed : GEMMA2_DEFAULT_MODEL_DIR;
}

// --dtype names.

void add_dtype(CLI::App* cmd, std::string& dtype) {
  cmd->add_option("--dtype", dtype, "weight storage: f32, bf16, f16, q8 (8.5 bits) or q4 (4.5 bits); "
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
          [](std::string& size) { return size.find('-') == std::string::npos ? "" : "must be >= 0, got " + size; }, ""));
}

// --kernels: a kernel set (default: GEMMA2_KERNELS, else the best this CPU runs).
void add_kernels(CLI::App* cmd, std::string& kernels) {
  std::vector<std::string> names;
  for (gemma2::KernelSet s : gemma2::kKernelSets) names.push_back(gemma2::kernel_set_name(s));
  cmd->add_option("--kernels", kernels,
                  "kernel set: " + gemma2::detail::kernel_set_list() +
                      " (default: $GEMMA2_KERNELS, else the best this CPU runs)")
      ->check(CLI::IsMember(names));
}

// --prefill-precision: exact (default) or bf16 (LoadOptions::prefill_precision).
void add_prefill_precision(CLI::App* cmd, std::string& precision) {
  cmd->add_option("--prefill-precision", precision,
                  "activations of the BF16 weights' prefill GEMM on CPUs with bf16 products: exact (~16 bits, "
                  "reproduces float32) or bf16 (rounded, about twice as fast, as llama.cpp)")
      ->check(CLI::IsMember({"exact", "bf16"}))
      ->capture_default_str();
}

// The option's value, already checked by CLI::IsMember.
gemma2::PrefillPrecision prefill_precision_option(const std::string& precision) {
  return gemma2::parse_prefill_precision(precision).value_or(gemma2::PrefillPrecision::Exact);
}

// --kv-cache: how keys and values are stored (f32 exact, bf16, int8 = Q8_0).
void add_kv_cache(CLI::App* cmd, std::string& kv) {
  cmd->add_option("--kv-cache", kv,
                  "KV-cache storage: f32 (exact), bf16 (half the memory) or int8 (Q8_0 per head, 17/64 of f32)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}))
      ->capture_default_str();
}

// Calls f with a value of the KV storage type --kv-cache names.
template <class F>
int with_kv_storage(const std::string& kv, F&& f) {
  if (kv == "bf16") return f(gemma2::bf16{});
  if (kv == "int8") return f(int8_t{});
  return f(float{});
}

std::optional<gemma2::KernelSet> kernel_option(const std::string& kernels) {
  if (kernels.empty()) return std::nullopt;
  return gemma2::parse_kernel_set(kernels);
}

// "avx512 (vnni bf16)": what `gemma2 info` prints for a kernel table.
std::string kernels_line(const gemma2::KernelSet set, const char* features) {
  return std::string(gemma2::kernel_set_name(set)) + (*features ? std::string(" (") + features + ")" : "");
}

// Options every model command takes.
struct ModelOptions {
  std::string dir = default_model_dir();
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

  void add_to(CLI::App* cmd) {
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

  gemma2::LoadOptions load_options() const {
    gemma2::LoadOptions lo;
    if (!dtype.empty()) lo.weight_type = *gemma2::parse_weight_type(dtype);
    lo.check_finite = check_weights;
    lo.mapping = mapping == "copied" ? gemma2::Mapping::Copied : gemma2::Mapping::Mapped;
    lo.max_memory = max_memory;
    lo.kernels = kernel_option(kernels);
    lo.prefill_precision = prefill_precision_option(prefill_precision);
    return lo;
  }
};

// The tokenizer of a model: `explicit_path` if given, else the model's own
// (see gemma2::load_model_tokenizer).
gemma2::Result<gemma2::Tokenizer> open_tokenizer(const std::string& model, const std::string& explicit_path) {
  if (!explicit_path.empty()) return gemma2::Tokenizer::load(explicit_path);
  return gemma2::load_model_tokenizer(model);
}

// Prints a progress line for slow load steps of large models; ends it at the end.
struct ProgressLine {
  bool shown = false;
  int last = -1;
  void operator()(const char* stage, size_t done, size_t total) {
    const int pct = static_cast<int>(100.0 * done / total);
    if (total < (size_t{256} << 20) || pct == last) return;
    last = pct;
    std::fprintf(stderr, "\r%s weights: %3d%% (%.2f of %.2f GB)   ", stage, static_cast<int>(100.0 * done / total),
                 done / 1e9, total / 1e9);
    shown = true;
  }
  void end() {
    if (shown) std::fprintf(stderr, "\n");
    shown = false;
    last = -1;
  }
};

// A loaded model with its thread pool and (if the directory has one) tokenizer.
struct Loaded {
  std::optional<Model> model;
  std::optional<gemma2::ThreadPool> pool;
  std::optional<gemma2::Tokenizer> tokenizer;
};

// The model of `o`, and its tokenizer when the command needs one (commands
// that take ids never open a tokenizer).
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

std::string config_line(const gemma2::RuntimeConfig& c) {
  int local = 0;
  for (auto k : c.layer_types) local += k == gemma2::AttentionKind::Local;
  std::ostringstream s;
  s << "vocab " << c.vocab_size << ", hidden " << c.hidden_size << ", " << c.num_hidden_layers << " layers (" << local
    << " local, window " << c.sliding_window << "), " << c.num_attention_heads << " heads (" << c.num_key_value_heads
    << " kv) x " << c.head_dim << ", ffn " << c.intermediate_size << ", context " << c.max_position_embeddings;
  return s.str();
}

// gemma2 info / --dry-run: the model's config and what it takes in memory,
// from the file headers alone (no weight is read).
int run_info(const std::string& model, const gemma2::LoadOptions& lo, int context) {
  auto plan = Model::plan(model, lo);
  if (!plan) return fail(plan.message());
  auto kernels = gemma2::detail::select_kernels(lo.kernels);
  if (!kernels) return fail(kernels.message());
  const gemma2::RuntimeConfig& c = plan->config;
  if (context == 0) context = c.max_position_embeddings;
  if (context < 1 || context > c.max_position_embeddings)
    return fail("--context must be between 1 and " + std::to_string(c.max_position_embeddings));
  using gemma2::detail::human_bytes;
  const size_t full = plan->cache_bytes<gemma2::KVCache>(context);
  const size_t full_bf16 = plan->cache_bytes<gemma2::FullKVCache<gemma2::bf16>>(context);
  const size_t full_int8 = plan->cache_bytes<gemma2::FullKVCache<int8_t>>(context);
  const size_t window = plan->cache_bytes<gemma2::SlidingWindowKVCache<>>(context);
  std::cout << "model: " << model << "\n"
            << "config: " << config_line(c) << "\n"
            << "weights: " << human_bytes(plan->mapped_bytes) << " mapped + " << human_bytes(plan->allocated_bytes)
            << " allocated = " << human_bytes(plan->total_bytes()) << " (" << plan->mapped_bytes << " + "
            << plan->allocated_bytes << " bytes; mapping " << (lo.mapping == gemma2::Mapping::Copied ? "copied" : "mapped")
            << ")\n"
            << "read per decoded token: " << human_bytes(plan->weight_bytes) << "\n"
            << "KV cache for " << context << " positions: full f32 " << human_bytes(full) << ", full bf16 "
            << human_bytes(full_bf16) << ", full int8 " << human_bytes(full_int8) << ", sliding-window f32 " << human_bytes(window) << "\n"
            << "total with a full f32 cache: " << human_bytes(plan->total_bytes() + full)
            << "; with a sliding-window cache: " << human_bytes(plan->total_bytes() + window) << "\n"
            << "kernels: " << kernels_line((*kernels)->set, (*kernels)->features) << " (this CPU runs: "
            << gemma2::detail::kernel_set_list(gemma2::supported_kernel_sets()) << ")\n";
  if (lo.max_memory != 0 && plan->total_bytes() > lo.max_memory)  // the answer scripts ask info for
    return fail("the weights need " + human_bytes(plan->total_bytes()) + ", more than --max-memory " +
                human_bytes(lo.max_memory));
  return 0;
}

// Sampling flags shared by generate and chat.
struct SamplingFlags {
  gemma2::SamplingParams p;
  std::optional<uint64_t> seed;
  std::vector<std::string> bias;  // "ID=VALUE"

  SamplingFlags() {
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
  }

  void add_to(CLI::App* cmd) {
    cmd->add_flag("--greedy", p.greedy, "argmax decoding (deterministic; ignores the sampling flags)");
    // The ranges gemma2::validate checks, here so that errors name the flags.
    const auto finite = [](double v) { return std::isfinite(v); };
    cmd->add_option("--temperature", p.temperature, "softmax temperature (0 = greedy)")
        ->check(checked(">= 0", [](double v) { return v >= 0 && std::isfinite(v); }))
        ->capture_default_str();
    cmd->add_option("--top-k", p.top_k, "keep the k most likely tokens (0 = off)")->check(at_least(0))->capture_default_str();
    cmd->add_option("--top-p", p.top_p, "nucleus sampling threshold (1 = off)")
        ->check(checked("in (0, 1]", [](double v) { return v > 0 && v <= 1; }))
        ->capture_default_str();
    cmd->add_option("--min-p", p.min_p, "drop tokens below min-p x the top probability")
        ->check(checked("in [0, 1)", [](double v) { return v >= 0 && v < 1; }))
        ->capture_default_str();
    cmd->add_option("--repeat-penalty", p.repetition_penalty, "repetition penalty (1 = off)")
        ->check(checked("> 0", [](double v) { return v > 0 && std::isfinite(v); }))
        ->capture_default_str();
    cmd->add_option("--frequency-penalty", p.frequency_penalty, "penalty per occurrence")
        ->check(checked("finite", finite))
        ->capture_default_str();
    cmd->add_option("--presence-penalty", p.presence_penalty, "penalty once per seen token")
        ->check(checked("finite", finite))
        ->capture_default_str();
    cmd->add_option("--repeat-last-n", p.penalty_last_n, "penalties look at this many recent tokens (0 = all)")
        ->check(at_least(0))
        ->capture_default_str();
    cmd->add_option("--logit-bias", bias, "ID=BIAS added to a token's logit (repeatable)");
    cmd->add_option("--seed", seed, "random seed (default: from the clock, printed on stderr)")->check(at_least(0));
  }

  // The sampler, or an error message.
  std::optional<gemma2::Sampler> make(std::string& error) {
    for (const auto& b : bias) {
      const size_t eq = b.find('=');
      size_t id_end = 0, bias_end = 0;
      try {
        if (eq == std::string::npos) throw std::invalid_argument(b);
        const int id = std::stoi(b.substr(0, eq), &id_end);
        const float value = std::stof(b.substr(eq + 1), &bias_end);
        // -inf bans a token; NaN or +inf would make every probability NaN.
        if (id < 0 || id_end != eq || bias_end != b.size() - eq - 1 || std::isnan(value) || value == INFINITY)
          throw std::invalid_argument(b);
        p.logit_bias[id] = value;
      } catch (const std::exception&) {
        error = "--logit-bias takes ID=BIAS (ID >= 0, BIAS a number or -inf), got " + b;
        return std::nullopt;
      }
    }
    p.seed = seed ? *seed : static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    if (auto s = gemma2::validate(p); !s) {
      error = s.message();
      return std::nullopt;
    }
    if (!p.greedy && p.temperature > 0) std::cerr << "seed: " << p.seed << "\n";
    return gemma2::Sampler(p);
  }

  // A --logit-bias id past the model's vocabulary (the sampler would ignore it).
  std::optional<std::string> bias_outside(int vocab) const {
    for (const auto& entry : p.logit_bias)
      if (entry.first >= vocab)
        return "--logit-bias: token id " + std::to_string(entry.first) + " is outside the vocabulary [0, " +
               std::to_string(vocab) + ")";
    return std::nullopt;
  }
};

// --grammar-file / --json-schema / --json-whitespace: constrained output
// (generate and chat).
struct GrammarFlags {
  std::string grammar_file, json_schema, json_whitespace = "compact";

  void add_to(CLI::App* cmd) {
    auto* g = cmd->add_option("--grammar-file", grammar_file, "constrain the output to a GBNF grammar (llama.cpp's format)");
    auto* j = cmd->add_option("--json-schema", json_schema, "constrain the output to JSON matching a JSON Schema file");
    g->excludes(j);
    cmd->add_option("--json-whitespace", json_whitespace,
                    "whitespace between JSON tokens: compact (none), spaces (at most one), free (line breaks, indentation)")
        ->check(CLI::IsMember({"compact", "spaces", "free"}))
        ->needs(j)
        ->capture_default_str();
  }
  bool given() const { return !grammar_file.empty() || !json_schema.empty(); }

  // The grammar named by the flags, or an error message.
  gemma2::Result<gemma2::Grammar> grammar() const {
    if (!grammar_file.empty()) return gemma2::Grammar::load(grammar_file);
    auto text = gemma2::read_file(json_schema, uint64_t{16} << 20);
    if (!text) return gemma2::detail::err("cannot read JSON Schema: ", text.message());
    gemma2::JsonGrammarOptions options;
    options.whitespace = json_whitespace == "free"     ? gemma2::JsonWhitespace::Free
                         : json_whitespace == "spaces" ? gemma2::JsonWhitespace::Spaces
                                                       : gemma2::JsonWhitespace::Compact;
    auto g = gemma2::json_schema_grammar(*text, options);
    if (!g) return gemma2::detail::err(json_schema, ": ", g.message());
    return g;
  }
};

// A constraint for one reply of at most max_new tokens: it ends complete.
gemma2::Result<gemma2::GrammarConstraint> reply_constraint(const gemma2::Grammar& grammar,
                                                           const std::shared_ptr<const gemma2::TokenTrie>& vocab,
                                                           int max_new) {
  auto c = gemma2::GrammarConstraint::create(grammar, vocab);
  if (!c) return c;
  if (gemma2::Status s = c->set_budget(max_new); !s) return gemma2::detail::err("--max-new: ", s.message());
  return c;
}

// --draft-model / --lookup / --draft-max: speculative decoding (generate
// and chat). The output is that of plain decoding; only the speed changes.
struct SpeculativeFlags {
  std::string draft_model;
  int lookup = 0;  // not given (the flag takes N >= 1)
  int draft_max = gemma2::kMaxDraft;

  void add_to(CLI::App* cmd) {
    auto* d = cmd->add_option("--draft-model", draft_model,
                              "draft with this smaller model of the same tokenizer (directory or .gguf)");
    auto* l = cmd->add_option("--lookup", lookup, "draft by prompt lookup: match the last N tokens earlier in the text")
                  ->check(at_least(1));
    d->excludes(l);
    cmd->add_option("--draft-max", draft_max, "most drafted tokens checked per pass of the model")
        ->check(between(1, gemma2::kMaxDraft))
        ->capture_default_str();
  }

  // The drafter (and the draft model it runs), or an error already reported.
  struct Made {
    std::unique_ptr<Loaded> draft;  // where the drafter's session and pool point: it must not move
    std::unique_ptr<gemma2::Drafter> drafter;
  };
  std::optional<Made> make(const ModelOptions& target, const Model& target_model, int capacity) const {
    Made m;
    if (lookup > 0) {
      m.drafter = std::make_unique<gemma2::PromptLookupDrafter>(lookup);
    } else if (!draft_model.empty()) {
      ModelOptions o = target;
      o.dir = draft_model;
      o.tokenizer.clear();
      auto draft = load(o, false);
      if (!draft) return std::nullopt;
      m.draft = std::make_unique<Loaded>(std::move(*draft));
      const gemma2::RuntimeConfig& dc = m.draft->model->config();
      if (dc.vocab_size != target_model.config().vocab_size)
        return fail("--draft-model: its vocabulary has " + std::to_string(dc.vocab_size) + " tokens, the model's " +
                    std::to_string(target_model.config().vocab_size) + ": they must share a tokenizer"),
               std::nullopt;
      gemma2::ModelDrafter<Model>::Options opt;
      opt.capacity = std::min(capacity + draft_max, dc.max_position_embeddings);
      opt.pool = &*m.draft->pool;
      // A draft step over a target step: about the ratio of the weights read.
      opt.cost_per_token = static_cast<double>(m.draft->model->weight_bytes()) /
                           static_cast<double>(std::max<size_t>(target_model.weight_bytes(), 1));
      auto d = gemma2::ModelDrafter<Model>::create(*m.draft->model, opt);
      if (!d) return fail(d.message()), std::nullopt;
      m.drafter = std::make_unique<gemma2::ModelDrafter<Model>>(std::move(*d));
    }
    return m;
  }
};

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

void print_speed(const gemma2::GenerateResult& r, bool speculative) {
  const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;
  std::cerr << std::fixed << std::setprecision(2) << "prefill: " << r.prefill_tokens << " tokens in "
            << r.prefill_seconds << " s (" << r.prefill_tokens / std::max(r.prefill_seconds, 1e-9)
            << " tok/s); decode: " << decoded << " tokens in " << r.decode_seconds << " s ("
            << (decoded ? decoded / std::max(r.decode_seconds, 1e-9) : 0.0) << " tok/s); stop: "
            << gemma2::stop_reason_name(r.stop);
  if (speculative)
    std::cerr << "; drafted " << r.drafted << ", accepted " << r.accepted << " ("
              << 100.0 * r.accepted / std::max(r.drafted, 1) << " %), " << static_cast<double>(r.tokens.size()) / std::max(r.target_passes, 1)
              << " tokens per model pass";
  std::cerr << "\n";
}

int run_generate(const ModelOptions& mo, SamplingFlags& sf, const GrammarFlags& gf, const SpeculativeFlags& spec,
                 const std::string& prompt,
                 std::vector<int32_t> ids, int max_new, const std::vector<std::string>& stops, bool ignore_eos,
                 bool print_ids) {
  if (prompt.empty() == ids.empty()) return fail("generate: give exactly one of --prompt and --ids");
  std::string error;
  auto sampler = sf.make(error);
  if (!sampler) return fail(error);
  std::optional<gemma2::Grammar> grammar;
  if (gf.given()) {
    auto g = gf.grammar();
    if (!g) return fail(g.message());
    grammar.emplace(std::move(*g));
  }
  auto l = load(mo, !prompt.empty() || grammar);
  if (!l) return 1;
  if (auto e = sf.bias_outside(l->model->config().vocab_size)) return fail(*e);
  if (grammar) {  // the text is complete within --max-new tokens; stdout holds it alone
    auto c = reply_constraint(*grammar, gemma2::TokenTrie::build(*l->tokenizer), max_new);
    if (!c) return fail(c.message());
    sampler->constrain(std::move(*c));
  }
  if (!prompt.empty()) {
    auto enc = l->tokenizer->encode_prompt(prompt);  // BOS + prompt
    if (!enc) return fail(enc.message());
    ids = std::move(*enc);
  }
  // Room for the prompt and the reply only: a full 8192-position cache of a
  // 2B model is 1.7 GB.
  const size_t needed = ids.size() + static_cast<size_t>(max_new);
  const int capacity = static_cast<int>(std::min<size_t>(needed, l->model->config().max_position_embeddings));
  auto speculative = spec.make(mo, *l->model, capacity);
  if (!speculative) return 1;
  return with_kv_storage(mo.kv_cache, [&](auto storage) {
    auto kv = l->model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(capacity);
    if (!kv) return fail(kv.message());
    gemma2::GenerateOptions go;
    go.max_new_tokens = max_new;
    go.pool = &*l->pool;
    go.stop_strings = stops;
    go.drafter = speculative->drafter.get();
    go.draft_max = spec.draft_max;
    if (!ignore_eos && l->tokenizer) go.stop_tokens = gemma2::default_stop_tokens(*l->tokenizer);
    else if (!ignore_eos) go.stop_tokens = {1};  // <eos>
    gemma2::TokenHistory history;
    const gemma2::Tokenizer* tok = l->tokenizer ? &*l->tokenizer : nullptr;
    auto r = gemma2::generate(*l->model, *kv, history, ids, *sampler, go, tok, [](std::string_view text) {
      std::cout << text << std::flush;
      return true;
  });
  if (!r) return fail(r.message());
  // A grammar's text stands alone on stdout, with no newline after it;
  // the ids are always a line of their own, whatever the text ends with.
  if (tok && (!grammar || print_ids)) std::cout << "\n";
  print_speed(*r, go.drafter != nullptr);
  if (print_ids) std::cout << join(r->tokens) << "\n";
  return 0;
  });
}

int run_chat(const ModelOptions& mo, SamplingFlags& sf, const GrammarFlags& gf, const SpeculativeFlags& spec,
             const std::string& system, int max_new,
             bool verbose, const std::string& delimiter) {
  std::string error;
  auto sampler = sf.make(error);
  if (!sampler) return fail(error);
  std::optional<gemma2::Grammar> grammar;
  if (gf.given()) {
    auto g = gf.grammar();
    if (!g) return fail(g.message());
    grammar.emplace(std::move(*g));
  }
  auto l = load(mo, true);
  if (!l) return 1;
  if (auto e = sf.bias_outside(l->model->config().vocab_size)) return fail(*e);
  std::optional<gemma2::GrammarConstraint> reply;  // each reply is one sentence of the grammar
  if (grammar) {
    auto c = reply_constraint(*grammar, gemma2::TokenTrie::build(*l->tokenizer), max_new);
    if (!c) return fail(c.message());
    reply.emplace(std::move(*c));
  }
  if (l->tokenizer->start_of_turn_id() < 0 || l->tokenizer->end_of_turn_id() < 0)
    return fail("chat: the tokenizer has no <start_of_turn>/<end_of_turn> pieces");
  // Sliding-window cache: the same logits as a full one, about half the memory.
  return with_kv_storage(mo.kv_cache, [&](auto storage) {
    using Cache = gemma2::SlidingWindowKVCache<decltype(storage)>;
    auto session = gemma2::Session<Model, Cache>::create(*l->model);
    if (!session) return fail(session.message());
    gemma2::Chat<Model, Cache> chat(std::move(*session), *l->tokenizer, system);
    auto speculative = spec.make(mo, *l->model, l->model->config().max_position_embeddings);
    if (!speculative) return 1;
    gemma2::GenerateOptions go;
    go.max_new_tokens = max_new;
    go.pool = &*l->pool;
    go.drafter = speculative->drafter.get();
    go.draft_max = spec.draft_max;
    std::cerr << "chat with " << mo.dir << " (end with Ctrl-D or /exit)\n";
    std::string line;
    for (int turn = 1;; ++turn) {
      std::cerr << "> " << std::flush;
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        --turn;
        continue;
      }
      if (reply) sampler->constrain(*reply);
      auto r = chat.send(line, *sampler, go, [](std::string_view text) {
        std::cout << text << std::flush;
        return true;
      });
      std::cout << "\n" << std::flush;
      // The session holds a reply the conversation does not: it cannot go on.
      if (!r) return fail(r.message());
      if (!delimiter.empty()) std::cout << delimiter << "\n" << std::flush;
      if (verbose) {
        std::cerr << "[turn " << turn << ": prefill " << r->prefill_tokens << " tokens, cached "
                  << chat.cache().size() << " positions] ";
        print_speed(*r, go.drafter != nullptr);
      }
      if (r->stop == gemma2::StopReason::ContextFull) return fail("chat: the context is full");
    }
    return 0;
  });
}

int run_tokenize(const std::string& tokenizer_path, const std::string& model_dir, const std::string& text,
                 bool pieces) {
  auto tok = open_tokenizer(model_dir, tokenizer_path);
  if (!tok) return fail(tok.message());
  auto ids = tok->encode(text);
  if (!ids) return fail(ids.message());
  if (pieces)
    for (int32_t id : *ids) std::cout << id << "\t" << tok->piece(id) << "\n";
  std::cout << join(*ids) << "\n";
  return 0;
}

// Opens an output file, or says why it cannot.
std::optional<std::string> open_output(const std::string& path, std::ofstream& out) {
  if (gemma2::Status s = gemma2::detail::open_for_writing(path, out); !s) return s.message();
  return std::nullopt;
}

int run_perplexity(const ModelOptions& mo, std::vector<int32_t> ids, const std::string& text_file, int window,
                   int stride, const std::string& top_k_out, int top_k, const std::string& kl_reference) {
  if (ids.empty() == text_file.empty()) return fail("perplexity: give exactly one of --ids and --text-file");
  auto l = load(mo, !text_file.empty());
  if (!l) return 1;
  if (!text_file.empty()) {
    const auto text = gemma2::read_file(text_file, uint64_t{1} << 30);
    if (!text) return fail(text.message());
    auto enc = l->tokenizer->encode_prompt(*text);
    if (!enc) return fail(text_file + ": " + enc.message());
    ids = std::move(*enc);
  } else if (window == 0) {
    window = static_cast<int>(std::min<size_t>(ids.size(), l->model->config().max_position_embeddings));
  }
  std::ofstream out;
  if (!top_k_out.empty())
    if (auto e = open_output(top_k_out, out)) return fail(*e);
  gemma2::ScoreOptions so;
  so.pool = &*l->pool;
  so.window = window;
  so.stride = stride;
  so.top_k = top_k_out.empty() ? 0 : top_k;
  return with_kv_storage(mo.kv_cache, [&](auto storage) {
    using Cache = gemma2::FullKVCache<decltype(storage)>;
    const auto t0 = Clock::now();
    auto r = gemma2::score<Cache>(*l->model, ids, so, [&](const gemma2::TokenPrediction& p) {
      if (!out.is_open()) return;
      // One JSON object per predicted token: the distillation teacher signal.
      out << "{\"index\":" << p.index << ",\"target\":" << p.target << ",\"logprob\":" << p.logprob << ",\"top\":[";
      for (size_t i = 0; i < p.top.size(); ++i)
        out << (i ? "," : "") << "[" << p.top[i].first << "," << p.top[i].second << "]";
      out << "]}\n";
  });
  if (!r) return fail(r.message());
  std::cerr << "scored " << r->logprobs.size() << " tokens in " << r->forward_passes << " forward pass(es), "
            << std::fixed << std::setprecision(2) << seconds_since(t0) << " s\n";
  std::string comparison;
  if (!kl_reference.empty()) {
    // The same checkpoint with other weight types and a float cache, compared position by position.
    ModelOptions ro = mo;
    ro.dtype = kl_reference;
    auto ref = load(ro, false);
    if (!ref) return 1;
    auto c = gemma2::compare_logits<Cache>(*ref->model, *l->model, ids, so);
    if (!c) return fail(c.message());
    std::ostringstream ss;
    ss << std::setprecision(6) << " kl=" << c->kl << " top1=" << c->top1_agreement << " kl_positions=" << c->positions;
    comparison = ss.str();
  }
  std::cout << std::setprecision(6) << "tokens=" << r->logprobs.size() << " nll=" << r->nll
            << " ppl=" << r->perplexity << comparison << "\n";
  return 0;
  });
}

int run_logits(const ModelOptions& mo, const std::vector<int32_t>& ids, const std::string& out_path) {
  auto l = load(mo, false);
  if (!l) return 1;
  const int capacity = static_cast<int>(std::min<size_t>(ids.size(), l->model->config().max_position_embeddings));
  return with_kv_storage(mo.kv_cache, [&](auto storage) {
    auto kv = l->model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(capacity);
    if (!kv) return fail(kv.message());
    gemma2::ForwardOptions fo;
    fo.pool = &*l->pool;
    fo.all_logits = true;
    auto logits = l->model->forward(ids, *kv, fo);
    if (!logits) return fail(logits.message());
    std::ofstream out;
    if (auto e = open_output(out_path, out)) return fail(*e);
    out.write(reinterpret_cast<const char*>(logits->data()),
              static_cast<std::streamsize>(logits->size() * sizeof(float)));
    if (!out) return fail("cannot write " + out_path + ": " + std::strerror(errno));
    std::cerr << "wrote " << logits->rows() << " x " << logits->cols() << " float32 logits to " << out_path << "\n";
    return 0;
  });
}

// Starts Rss::peak afresh from the current RSS (Linux; elsewhere the peak
// stays the process's own, load included).
void reset_peak_rss() {
#if !defined(_WIN32)
  std::ofstream("/proc/self/clear_refs") << "5";
#endif
}

// Resident set size of this process now and at its peak since
// reset_peak_rss() (the working set and its peak on Windows).
struct Rss {
  size_t now = 0, peak = 0;
};
Rss rss() {
#if defined(_WIN32)
  PROCESS_MEMORY_COUNTERS pmc{};
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return {};
  return {pmc.WorkingSetSize, pmc.PeakWorkingSetSize};
#else
  Rss r;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {  // "VmRSS:     1234 kB"
    if (line.rfind("VmRSS:", 0) == 0) r.now = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) r.peak = std::stoull(line.substr(6)) * 1024;
  }
  return r;
#endif
}

// Sequential read bandwidth of this machine with the given threads, in
// bytes/s: the best of a few passes summing a 1 GiB buffer.
double read_bandwidth(const gemma2::Executor* pool) {
  std::vector<float> buf(size_t{1} << 28, 1.0f);
  double best = 0;
  for (int pass = 0; pass < 4; ++pass) {
    std::vector<double> partial(static_cast<size_t>(pool->num_threads()), 0.0);
    const auto t0 = Clock::now();
    pool->run(pool->num_threads(), [&](int i) {
      const size_t n = buf.size() / partial.size(), from = n * static_cast<size_t>(i);
      Eigen::Map<const Eigen::ArrayXf> part(buf.data() + from, static_cast<Eigen::Index>(n));
      partial[static_cast<size_t>(i)] = part.sum();
    });
    const double s = seconds_since(t0);
    volatile double sink = partial[0];  // the sums must not be optimised away
    (void)sink;
    best = std::max(best, static_cast<double>(buf.size() * sizeof(float)) / s);
  }
  return best;
}

// gemma2 bench: a preset's shape with random weights made in memory (or,
// with --model, a model file or directory, e.g. the GGUF another engine
// runs); one JSON line with prefill and decode speed.
int run_bench(const std::string& preset, const std::string& model_path, std::string dtype, int threads, int prompt,
              int gen, int depth, const std::string& kernels, const std::string& prefill_precision,
              const std::string& kv_cache) {
  auto pool = gemma2::ThreadPool::create(threads);
  if (!pool) return fail(pool.message());
  if (depth < 0) depth = prompt;  // --depth not given
  gemma2::RuntimeConfig config;
  if (preset == "2b") config = gemma2::to_runtime(gemma2::Gemma2_2B{});
  else if (preset == "9b") config = gemma2::to_runtime(gemma2::Gemma2_9B{});
  else config = gemma2::to_runtime(gemma2::Gemma2_27B{});
  gemma2::LoadOptions lo;
  lo.pool = &*pool;
  lo.kernels = kernel_option(kernels);
  lo.prefill_precision = prefill_precision_option(prefill_precision);
  ProgressLine progress;
  lo.progress = std::ref(progress);
  gemma2::Result<Model> model = gemma2::Error{""};
  if (!model_path.empty()) {
    if (!dtype.empty()) lo.weight_type = *gemma2::parse_weight_type(dtype);
    lo.preload = true;
    model = Model::load(model_path, lo);
    if (model) config = model->config();
  } else {
    if (dtype.empty()) dtype = "bf16";
    lo.weight_type = *gemma2::parse_weight_type(dtype);
    std::cerr << "making random " << preset << " weights (" << dtype << ")...\n";
    // Made as BF16 (F32 for f32) and converted at load, like a real checkpoint.
    const gemma2::DType stored = *lo.weight_type == gemma2::DType::F32 ? gemma2::DType::F32 : gemma2::DType::BF16;
    model = Model::from_checkpoint(gemma2::random_checkpoint(config, stored, 1, &*pool), lo);
  }
  progress.end();
  if (!model) return fail(model.message());
  const int context = std::max(prompt, depth) + gen;
  if (context > config.max_position_embeddings) return fail("bench: prompt/depth + gen exceed the context");
  const size_t weights = model->weight_bytes();

  std::vector<int32_t> ids = {2};
  for (int i = 1; i < std::max(prompt, depth); ++i) ids.push_back((1000 + (i * 7919) % 200000) % config.vocab_size);
  return with_kv_storage(kv_cache, [&](auto storage) {
    auto kv = model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(context);
    if (!kv) return fail(kv.message());
    const gemma2::ForwardOptions opts{&*pool};
    // Prefill of `prompt` tokens into an empty cache.
    reset_peak_rss();
    auto t0 = Clock::now();
    if (auto r = model->forward(ids.data(), static_cast<size_t>(prompt), *kv, opts); !r) return fail(r.message());
    const double prefill_s = seconds_since(t0);
    // Decode `gen` tokens after `depth` positions (default: after the prompt;
    // 0 decodes into an empty cache, as llama-bench's tg does).
    if (depth > prompt) {
      if (auto r = model->forward(ids.data() + prompt, static_cast<size_t>(depth - prompt), *kv, opts); !r)
        return fail(r.message());
    } else if (depth < prompt) {
      if (auto st = kv->truncate(depth); !st) return fail(st.message());
    }
    int32_t token = 100 % config.vocab_size;
    t0 = Clock::now();
    for (int i = 0; i < gen; ++i) {
      auto r = model->forward(&token, 1, *kv, opts);
      if (!r) return fail(r.message());
      token = gemma2::argmax(std::vector<float>(r->data(), r->data() + r->cols()));
    }
    const double decode_s = seconds_since(t0);
    const size_t peak_rss = rss().peak;  // before the bandwidth probe's buffer
    const double bandwidth = read_bandwidth(&*pool);
    const double roofline = bandwidth / static_cast<double>(weights);  // tok/s if every weight byte streams at full speed
    // nlohmann::json escapes the strings (a Windows path holds backslashes).
    nlohmann::ordered_json j;
    j["preset"] = model_path.empty() ? preset : "";
    j["model"] = model_path;
    j["dtype"] = dtype.empty() ? "as stored" : dtype;
    j["kernels"] = gemma2::kernel_set_name(model->kernel_set());
    j["kernel_features"] = model->kernel_features();
    j["prefill_precision"] = prefill_precision;
    j["kv_cache"] = kv_cache;
    j["threads"] = threads;
    j["prompt"] = prompt;
    j["gen"] = gen;
    j["depth"] = depth;
    j["prefill_tok_s"] = prompt / prefill_s;
    j["decode_tok_s"] = gen / decode_s;
    j["weights_bytes"] = weights;
    j["kv_cache_bytes"] = kv->bytes();
    j["rss_bytes"] = rss().now;
    j["peak_rss_bytes"] = peak_rss;
    j["read_bandwidth_bytes_s"] = bandwidth;
    j["roofline_tok_s"] = roofline;
    j["roofline_pct"] = 100.0 * gen / decode_s / roofline;
    std::cout << j.dump() << std::endl;
    return 0;
  });
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"gemma2: run Gemma 2 models on the CPU"};
  app.require_subcommand(1);

  ModelOptions gen_model;
  SamplingFlags gen_sampling;
  std::string prompt;
  std::vector<int32_t> gen_ids;
  int gen_max_new = 64;
  std::vector<std::string> stops;
  bool ignore_eos = false, print_ids = false;
  auto* generate = app.add_subcommand("generate", "continue a prompt (text or ids), streaming the text");
  gen_model.add_to(generate);
  gen_sampling.add_to(generate);
  GrammarFlags gen_grammar, chat_grammar;
  gen_grammar.add_to(generate);
  SpeculativeFlags gen_spec, chat_spec;
  gen_spec.add_to(generate);
  generate->add_option("--prompt", prompt, "prompt text (BOS is prepended)");
  generate->add_option("--ids", gen_ids, "prompt token ids, comma separated, used as given")
      ->delimiter(',')
      ->check(at_least(0));
  generate->add_option("--max-new", gen_max_new, "most tokens to generate")->check(at_least(0))->capture_default_str();
  generate->add_option("--stop", stops, "stop when the text contains this string (repeatable)");
  generate->add_flag("--ignore-eos", ignore_eos, "do not stop at <eos> / <end_of_turn>");
  generate->add_flag("--print-ids", print_ids, "print the generated ids as the last stdout line");

  ModelOptions chat_model;
  SamplingFlags chat_sampling;
  std::string system;
  int chat_max_new = 256;
  bool verbose = false;
  auto* chat = app.add_subcommand("chat", "interactive multi-turn chat (one user message per line)");
  chat_model.add_to(chat);
  chat_sampling.add_to(chat);
  chat_grammar.add_to(chat);
  chat_spec.add_to(chat);
  chat->add_option("--system", system, "system instructions (folded into the first user turn)");
  chat->add_option("--max-new", chat_max_new, "most tokens per reply")->check(at_least(1))->capture_default_str();
  chat->add_flag("--verbose,-v", verbose, "print token counts and speed per turn on stderr");
  std::string delimiter;
  chat->add_option("--delimiter", delimiter,
                   "print this line after each reply, so that replies holding line breaks can be told apart");

  std::string tokenizer_path, tok_model = default_model_dir(), text;
  bool pieces = false;
  auto* tokenize = app.add_subcommand("tokenize", "print the token ids of a text (without BOS)");
  tokenize->add_option("--tokenizer", tokenizer_path, "sentencepiece tokenizer.model");
  tokenize->add_option("--model", tok_model, "model directory holding tokenizer.model, or a .gguf file")
      ->capture_default_str();
  tokenize->add_option("--text", text, "text to tokenize")->required();
  tokenize->add_flag("--pieces", pieces, "also print each id with its piece");

  ModelOptions ppl_model;
  std::vector<int32_t> ppl_ids;
  std::string text_file, top_k_out;
  int window = 0, stride = 0, top_k = 10;
  auto* perplexity = app.add_subcommand("perplexity", "score a text: mean negative log-likelihood and perplexity");
  ppl_model.add_to(perplexity);
  perplexity->add_option("--ids", ppl_ids, "token ids, used as given (one forward)")->delimiter(',')->check(at_least(0));
  perplexity->add_option("--text-file", text_file, "UTF-8 text file (BOS is prepended)");
  perplexity->add_option("--window", window, "positions per forward pass (0 = the model's context)")->check(at_least(0));
  perplexity->add_option("--stride", stride, "new tokens scored per window after the first (0 = half a window)")
      ->check(at_least(0));
  perplexity->add_option("--top-k-out", top_k_out, "write the top-k next-token distribution per position (JSON lines)");
  perplexity->add_option("--top-k", top_k, "k for --top-k-out")->check(at_least(1))->capture_default_str();
  std::string kl_reference;
  perplexity->add_option("--kl-reference", kl_reference,
                         "also load the model with this --dtype and report KL(reference || model) and top-1 agreement")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "q8", "q4"}));

  ModelOptions logits_model;
  std::vector<int32_t> logits_ids;
  std::string out_path;
  auto* logits = app.add_subcommand("logits", "one forward over --ids; write [T][vocab] float32 logits to --out");
  logits_model.add_to(logits);
  logits->add_option("--ids", logits_ids, "token ids, comma separated")->delimiter(',')->check(at_least(0))->required();
  logits->add_option("--out", out_path, "output file (raw little-endian float32, row-major)")->required();

  std::string preset = "2b", bench_dtype, bench_model, bench_kernels, bench_prefill_precision = "exact",
              bench_kv_cache = "f32";
  int bench_threads = 1, bench_prompt = 512, bench_gen = 32, depth = -1;
  auto* bench = app.add_subcommand("bench", "speed of a preset's shape with random weights (no file needed); one JSON line");
  bench->add_option("--preset", preset, "2b, 9b or 27b")->check(CLI::IsMember({"2b", "9b", "27b"}))->capture_default_str();
  bench->add_option("--model", bench_model, "time this model (directory or .gguf) instead of random weights");
  add_dtype(bench, bench_dtype);
  bench->add_option("--threads", bench_threads, "threads")
      ->check(between(1, gemma2::ThreadPool::kMaxThreads))
      ->capture_default_str();
  bench->add_option("--prompt", bench_prompt, "prefill length")->check(at_least(1))->capture_default_str();
  bench->add_option("--gen", bench_gen, "decoded tokens")->check(at_least(1))->capture_default_str();
  bench->add_option("--depth", depth, "positions in the cache before decoding (default: the prompt)")
      ->check(at_least(0));
  add_kernels(bench, bench_kernels);
  add_prefill_precision(bench, bench_prefill_precision);
  add_kv_cache(bench, bench_kv_cache);

  std::string info_model = default_model_dir(), info_dtype, info_mapping = "mapped", info_kernels;
  uint64_t info_max_memory = 0;
  int info_context = 0;
  auto* info = app.add_subcommand("info", "config and memory needs of a model (weights, KV cache), reading no weights");
  info->add_option("--model", info_model, "model directory or .gguf file")->capture_default_str();
  add_dtype(info, info_dtype);
  add_memory_options(info, info_mapping, info_max_memory);
  info->add_option("--context", info_context, "positions of the KV cache to size (default: the model's context)")
      ->check(at_least(1));
  add_kernels(info, info_kernels);

  CLI11_PARSE(app, argc, argv);
  if (info->parsed()) {
    ModelOptions o;
    o.dir = info_model, o.dtype = info_dtype, o.mapping = info_mapping, o.max_memory = info_max_memory;
    o.kernels = info_kernels;
    return run_info(info_model, o.load_options(), info_context);
  }
  for (const ModelOptions* o : {&gen_model, &chat_model, &ppl_model, &logits_model})
    if (o->dry_run) return run_info(o->dir, o->load_options(), 0);
  if (bench->parsed())
    return run_bench(preset, bench_model, bench_dtype, bench_threads, bench_prompt, bench_gen, depth, bench_kernels,
                     bench_prefill_precision, bench_kv_cache);
  if (generate->parsed())
    return run_generate(gen_model, gen_sampling, gen_grammar, gen_spec, prompt, gen_ids, gen_max_new, stops, ignore_eos,
                        print_ids);
  if (chat->parsed())
    return run_chat(chat_model, chat_sampling, chat_grammar, chat_spec, system, chat_max_new, verbose, delimiter);
  if (tokenize->parsed()) return run_tokenize(tokenizer_path, tok_model, text, pieces);
  if (perplexity->parsed()) return run_perplexity(ppl_model, ppl_ids, text_file, window, stride, top_k_out, top_k, kl_reference);
  return run_logits(logits_model, logits_ids, out_path);
}

#if defined(_WIN32)
// The CLI speaks UTF-8 on every system. Windows hands main() its arguments
// in the ANSI code page and its console expects that page too, so the
// arguments are taken from the wide command line, the console is switched
// to UTF-8, and stdout/stderr are binary so output is byte for byte what it
// is elsewhere (other tooling reads it).
std::vector<std::string> utf8_arguments() {
  int n = 0;
  wchar_t** wide = CommandLineToArgvW(GetCommandLineW(), &n);
  std::vector<std::string> out;
  for (int i = 0; wide && i < n; ++i) out.push_back(gemma2::detail::utf8_string(wide[i], -1));
  LocalFree(wide);
  return out;
}
#endif

// Every error is a message and exit code 1; an exception that escapes a
// dependency all the same is reported as one, never an abort.
int main(int argc, char** argv) {
  try {
#if defined(_WIN32)
    SetConsoleOutputCP(CP_UTF8);
    SetConsoleCP(CP_UTF8);
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    std::vector<std::string> args = utf8_arguments();
    std::vector<char*> pointers;
    for (auto& a : args) pointers.push_back(a.data());
    pointers.push_back(nullptr);
    if (!args.empty()) return run(static_cast<int>(args.size()), pointers.data());
#endif
    return run(argc, argv);
  } catch (const std::exception& e) {
    return fail(std::string("unexpected error: ") + e.what());
  } catch (...) {
    return fail("unexpected error");
  }
}
