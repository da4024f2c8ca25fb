// Gemma2Model<Config>: the whole network (Gemma 2 paper, Section 2).
//
//   h = embed(ids) · √hidden
//   for each layer: h += post_norm(attn(norm(h)));  h += post_norm(mlp(norm(h)))
//   logits = 30 · tanh(final_norm(h) · embedᵀ / 30)
//
// After load the model is immutable and safe to share between threads; all
// per-sequence state is in the caller's KVCache.
#pragma once

#include <atomic>
#include <cstdio>
#include <cmath>
#include <functional>
#include <limits>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/io/checkpoint.hpp"
#include "gemma2/io/gguf.hpp"
#include "gemma2/layer.hpp"

GEMMA2_BEGIN_NAMESPACE

// Options of Gemma2Model::forward / forward_batch.
struct ForwardOptions {
  ForwardOptions() = default;
  // Shorthand: {pool}, {pool, all_logits}, {pool, all_logits, chunk}.
  ForwardOptions(const Executor* pool_, bool all_logits_ = false, int chunk_ = 512)  // NOLINT: brace-init by design
      : pool(pool_), all_logits(all_logits_), chunk(chunk_) {}

  // Threads for the matrix products; null runs on the calling thread.
  const Executor* pool = nullptr;
  // Logits for every input position ([T][vocab]) instead of only the last
  // ([1][vocab]), which is all a decoding loop needs.
  bool all_logits = false;
  // Long inputs run through the cache in chunks of at most this many tokens:
  // exact (attention is causal) and it bounds the attention score memory.
  int chunk = 512;
  // Checked before each chunk: when it reads true, forward stops and returns
  // an error saying so; the cache then holds the chunks already run.
  const std::atomic<bool>* cancel = nullptr;
  // With all_logits: receives each chunk's logits ([rows][vocab], the first
  // row being input index `first`) instead of collecting all of them, so
  // scoring a long text never holds [T][vocab] floats. forward then returns
  // an empty matrix.
  std::function<void(int first, const Activations& logits)> on_logits;
};

// One sequence's part of a batched forward pass: n ids to run on `cache`.
template <class Cache>
struct BatchItem {
  Cache* cache;
  const int32_t* ids;
  size_t n;
};

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
  // bf16 products (AVX512-BF16, FEAT_BF16). Exact (default): ~16 bits of
  // each (a bf16 head and remainder, two products per weight), so BF16
  // weights reproduce the float32 reference. BF16: rounded to bf16, one
  // product per weight, as llama.cpp does: about twice the prefill speed,
  // logits moved slightly (README quality table). No effect elsewhere.
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

namespace detail {
// "17.2 GB", "13.9 MB", "900 bytes" (decimal units, as memory is sold).
inline std::string human_bytes(size_t bytes) {
  char buf[32];
  if (bytes >= 1000000000) std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  else if (bytes >= 1000000) std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  else std::snprintf(buf, sizeof buf, "%zu bytes", bytes);
  return buf;
}

// Touches every page of the checkpoint's tensors (see LoadOptions::preload).
inline void preload(const std::map<std::string, TensorView>& tensors, const LoadOptions& options) {
  size_t total = 0, done = 0, reported = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes;
  volatile unsigned char sink = 0;
  for (const auto& [name, t] : tensors) {
    for (size_t off = 0; off < t.nbytes; off += 4096) sink = sink + static_cast<unsigned char>(t.data[off]);
    done += t.nbytes;
    if (options.progress && (done - reported >= (size_t{64} << 20) || done == total)) {
      options.progress("reading", done, total);
      reported = done;
    }
  }
}

// The first NaN or infinity in a tensor (see LoadOptions::check_finite),
// found row by row in parallel.
inline Status check_finite(const std::string& name, const TensorView& t, const Executor* pool) {
  const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
  const size_t stride = row_bytes(t.dtype, static_cast<int>(cols));
  if (cols == 0 || stride == 0) return {};
  const auto rows = static_cast<int64_t>(t.nbytes / stride);
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
  parallel_for(pool, rows, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1 && r * cols < first.load(); ++r) {
      convert_to_float(t.dtype, t.data + static_cast<size_t>(r) * stride, row.data(), static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) {
        if (std::isfinite(row[static_cast<size_t>(c)])) continue;
        int64_t seen = first.load();
        while (r * cols + c < seen && !first.compare_exchange_weak(seen, r * cols + c)) {
        }
        break;
      }
    }
  });
  const int64_t at = first.load();
  if (at == std::numeric_limits<int64_t>::max()) return {};
  return err("load: tensor ", name, " holds NaN or infinity at element ", at, " (row ", at / cols, ", column ",
             at % cols, ")");
}

// Binds checkpoint tensors to model weights, checking name, shape and dtype.
// Records the first error and keeps going, so loading reads top to bottom.
// With `plan_only` it reads no weight and only counts the memory binding
// would take (Gemma2Model::plan): both go through the same decisions.
class WeightBinder {
 public:
  WeightBinder(const std::map<std::string, TensorView>& tensors, std::vector<std::shared_ptr<const void>>& storage,
               const LoadOptions& options, bool plan_only = false)
      : tensors_(tensors), storage_(storage), options_(options), plan_only_(plan_only) {
    for (const auto& [name, t] : tensors) total_ += t.nbytes;
    auto k = select_kernels(options.kernels);
    if (k) kernels_ = *k;
    else status_ = err("load: ", k.message());
  }

  // The kernel set every bound matrix uses.
  const Kernels* kernels() const { return kernels_; }

  Matrix matrix(const std::string& name, int rows, int cols) {
    Matrix m = bind_matrix(name, rows, cols);
    m.bf16_activations = options_.prefill_precision == PrefillPrecision::BF16;
    return m;
  }

  size_t matrix_bytes() const { return matrix_bytes_; }

  // The RMSNorm gain 1 + w, as float; `holds_gain` when the stored weights
  // are 1 + w already (GGUF).
  std::vector<float> gain(const std::string& name, int n, bool holds_gain) {
    const TensorView* t = find(name, {n});
    allocated_ += static_cast<size_t>(n) * sizeof(float);
    if (t == nullptr || plan_only_) return {};
    if (options_.check_finite) check(name, *t);
    std::vector<float> g(static_cast<size_t>(n));
    convert_to_float(t->dtype, t->data, g.data(), g.size());
    if (!holds_gain)
      for (float& x : g) x += 1.0f;
    return g;
  }

  Status finish() {
    if (!status_) return status_;
    for (const auto& [name, t] : tensors_)
      if (used_.count(name) == 0 && name != "lm_head.weight")  // lm_head, when present, is the tied embedding
        return err(t.source, ": unexpected tensor ", name, " (not part of a Gemma 2 model of this config)");
    return {};
  }

  // The memory the bound weights hold (see MemoryPlan).
  MemoryPlan plan() const {
    MemoryPlan p;
    p.allocated_bytes = allocated_;
    for (const MappedFile* file : files_in_use_) {
      const bool mapped = file->file_backed() && options_.mapping == Mapping::Mapped;
      (mapped ? p.mapped_bytes : p.allocated_bytes) += file->size();
    }
    p.weight_bytes = matrix_bytes_;
    return p;
  }

 private:
  // The tensor `name` as a matrix of the kernels' layout and the asked type.
  Matrix bind_matrix(const std::string& name, int rows, int cols) {
    const TensorView* found = find(name, {rows, cols});
    if (found == nullptr) return {};
    const TensorView t = plan_only_ ? *found : library_layout(*found);
    if (!plan_only_ && options_.check_finite) check(name, t);
    const Matrix m{t.dtype, rows, cols, aligned(name, t), kernels_};
    matrix_bytes_ += m.bytes();
    const DType to = options_.weight_type.value_or(m.dtype);
    const bool keep = to == m.dtype || (is_quantized(to) && cols % kQuantBlock != 0);
    if (keep && to != m.dtype && options_.log)
      options_.log(LogLevel::Info, name + ": width not a multiple of 32, kept as " + dtype_name(m.dtype));
    if (keep && interleaves(m.dtype)) return interleave(m);  // a regrouped copy of t, if any, is dropped here
    if (keep) {
      if (m.data == t.data) use_in_place(t, found->ggml_blocks);
      return m;
    }
    const Matrix out = convert(m, to);
    converted_ += t.nbytes;
    if (options_.progress && !plan_only_) options_.progress("converting", converted_, total_);
    matrix_bytes_ += out.bytes() - m.bytes();
    return out;
  }

  const TensorView* find(const std::string& name, const std::vector<int64_t>& shape) {
    if (!status_) return nullptr;
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      status_ = err("checkpoint has no tensor ", name);
      return nullptr;
    }
    if (it->second.shape != shape) {
      status_ = err(it->second.source, ": tensor ", name, " has shape ", shape_string(it->second.shape),
                    " but the config needs ", shape_string(shape));
      return nullptr;
    }
    used_.insert(name);
    return &it->second;
  }

  void check(const std::string& name, const TensorView& t) {
    if (status_) status_ = check_finite(name, t, options_.pool);
  }

  // The model keeps the file a weight used in place points into, or the
  // copy `regrouped` into the library's block order.
  void use_in_place(const TensorView& t, bool regrouped) {
    if (regrouped) {
      allocated_ += t.nbytes;
      if (!plan_only_) storage_.push_back(t.owner);
    } else if (files_in_use_.insert(t.owner.get()).second) {
      storage_.push_back(t.owner);
    }
  }

  // Whether this kernel set wants `t` interleaved (weights.hpp).
  bool interleaves(DType t) const { return is_blocked(t) && kernels_ != nullptr && kernels_->interleaved_rows != nullptr; }

  // Storage for a matrix of `to`, interleaved where the kernels want it:
  // the Matrix (data null when planning) and its buffer.
  std::pair<Matrix, std::byte*> allocate(const Matrix& m, DType to) {
    Matrix out{to, m.rows, m.cols, nullptr, kernels_, interleaves(to)};
    allocated_ += out.bytes();
    if (plan_only_) return {out, nullptr};
    auto buf = std::make_shared<std::vector<std::byte>>(out.bytes());  // zeroed: an interleaved group's padding rows are 0
    storage_.push_back(buf);
    out.data = buf->data();
    return {out, buf->data()};
  }

  // The block-format matrix m in interleaved storage.
  Matrix interleave(const Matrix& m) {
    auto [out, buf] = allocate(m, m.dtype);
    if (plan_only_) return out;
    parallel_for(options_.pool, m.rows, 64, [&, buf = buf](int64_t r0, int64_t r1) { interleave_rows(m, buf, r0, r1); });
    return out;
  }

  // The matrix stored as `to`, row by row through float.
  Matrix convert(const Matrix& m, DType to) {
    auto [out, buf] = allocate(m, to);
    if (plan_only_) return out;
    parallel_for(options_.pool, m.rows, 64, [&, out = out, buf = buf](int64_t r0, int64_t r1) {
      std::vector<float> row(static_cast<size_t>(m.cols));
      std::vector<std::byte> scratch(out.interleaved ? row_bytes(to, m.cols) : 0);
      for (int64_t r = r0; r < r1; ++r) {
        convert_to_float(m.dtype, m.row(static_cast<int>(r)), row.data(), row.size());
        std::byte* dst = out.interleaved ? scratch.data() : buf + static_cast<size_t>(r) * row_bytes(to, m.cols);
        if (is_quantized(to)) {
          quantize_row(to, row.data(), dst, m.cols);
          if (out.interleaved) interleaved_row_copy<true>(to, m.cols, static_cast<int>(r), dst, buf);
        } else {
          for (int c = 0; c < m.cols; ++c) {
            if (to == DType::F32) std::memcpy(dst + 4 * c, &row[static_cast<size_t>(c)], 4);
            else {
              const uint16_t bits = to == DType::BF16 ? to_bf16(row[static_cast<size_t>(c)]).bits
                                                      : to_f16(row[static_cast<size_t>(c)]).bits;
              std::memcpy(dst + 2 * c, &bits, 2);
            }
          }
        }
      }
    });
    return out;
  }

  // Weights are used in place; a tensor whose offset breaks the element
  // alignment (legal in safetensors) is copied once.
  const std::byte* aligned(const std::string& name, const TensorView& t) {
    if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0) return t.data;
    allocated_ += t.nbytes;
    if (plan_only_) return nullptr;
    if (options_.log) options_.log(LogLevel::Info, "tensor " + name + " is not aligned in " + t.source + "; using a copy");
    auto copy = std::make_shared<std::vector<std::byte>>(t.data, t.data + t.nbytes);
    storage_.push_back(copy);
    return copy->data();
  }

  const std::map<std::string, TensorView>& tensors_;
  std::vector<std::shared_ptr<const void>>& storage_;
  const LoadOptions& options_;
  const bool plan_only_;
  size_t total_ = 0, converted_ = 0, matrix_bytes_ = 0, allocated_ = 0;
  std::set<const MappedFile*> files_in_use_;  // files weights are used in place from
  std::set<std::string> used_;
  Status status_;
  const Kernels* kernels_ = nullptr;
};
}  // namespace detail

// A loaded Gemma 2 model: immutable, thread-safe, shareable. Config is a
// preset (Gemma2_2B, ...) or RuntimeConfig (sizes from config.json).
template <class Config = RuntimeConfig>
class Gemma2Model {
 public:
  using config_type = Config;

  // Loads a Hugging Face model directory (config.json + safetensors) or, for
  // a path ending in .gguf, a llama.cpp GGUF file. The config must match
  // Config (for the presets) and every tensor must have the shape the config
  // implies. With options.max_memory, the plan is checked first, before any
  // weight is read (or, with Mapping::Copied, copied).
  static Result<Gemma2Model> load(const std::string& path, const LoadOptions& options = {}) {
    // With a limit, plan from a mapping first (it reads nothing), so copied
    // files are read only once they are known to fit.
    const bool check_first = options.max_memory != 0;
    auto ck = open_model_files(path, check_first ? Mapping::Mapped : options.mapping);
    if (!ck) return Error{ck.message()};
    if (check_first) {
      auto p = plan(*ck, options);
      if (!p) return Error{p.message()};
      if (p->total_bytes() > options.max_memory)
        return detail::err("load: ", path, " needs ", detail::human_bytes(p->total_bytes()), " (",
                           detail::human_bytes(p->mapped_bytes), " mapped + ", detail::human_bytes(p->allocated_bytes),
                           " allocated), limit ", detail::human_bytes(options.max_memory));
    }
    if (check_first && options.mapping == Mapping::Copied) {
      ck = open_model_files(path, Mapping::Copied);  // validated again as read
      if (!ck) return Error{ck.message()};
    }
    if (options.preload) detail::preload(ck->tensors, options);
    return from_checkpoint(std::move(*ck), options);
  }

  static Result<Gemma2Model> from_checkpoint(Checkpoint ck, const LoadOptions& options = {}) {
    if (options.log) {
      size_t bytes = 0;
      std::set<std::string> files, dtypes;
      for (const auto& [name, t] : ck.tensors) bytes += t.nbytes, files.insert(t.source), dtypes.insert(dtype_name(t.dtype));
      std::string types;
      for (const auto& d : dtypes) types += (types.empty() ? "" : ", ") + d;
      options.log(LogLevel::Info, "checkpoint: " + std::to_string(ck.tensors.size()) + " tensors (" + types + ") in " +
                                      std::to_string(files.size()) + " file(s), " + std::to_string(bytes) + " bytes");
    }
    Gemma2Model m;
    detail::WeightBinder binder(ck.tensors, m.storage_, options);
    if (Status s = m.bind(ck, binder, options); !s) return Error{s.message()};
    m.weight_bytes_ = binder.matrix_bytes();
    m.kernels_ = binder.kernels();
    return m;
  }

  // What loading `path` with `options` will take in memory (see
  // MemoryPlan), from the file headers alone; the same checks as load, so a
  // checkpoint that plans fine loads (short of its weight bytes being bad).
  static Result<MemoryPlan> plan(const std::string& path, const LoadOptions& options = {}) {
    auto ck = open_model_files(path, Mapping::Mapped);
    if (!ck) return Error{ck.message()};
    return plan(*ck, options);
  }

  static Result<MemoryPlan> plan(const Checkpoint& ck, const LoadOptions& options = {}) {
    Gemma2Model m;
    detail::WeightBinder binder(ck.tensors, m.storage_, options, /*plan_only=*/true);
    if (Status s = m.bind(ck, binder, options); !s) return Error{s.message()};
    MemoryPlan p = binder.plan();
    p.config = to_runtime(m.config_);
    return p;
  }

  const Config& config() const { return config_; }

  // The kernel set this model's products run on (LoadOptions::kernels), and
  // the extensions of it in use, e.g. "vnni bf16" (empty when none).
  KernelSet kernel_set() const { return kernels_->set; }
  const char* kernel_features() const { return kernels_->features; }

  // Bytes of weights one decode step reads (every matrix once; the
  // embedding table doubles as the output projection).
  size_t weight_bytes() const { return weight_bytes_; }

  // A cache for this model of any policy (see kv_cache.hpp); capacity 0
  // means max_position_embeddings.
  template <class Cache = KVCache>
  Result<Cache> make_cache(int capacity = 0) const {
    const int cap = capacity == 0 ? config_.max_position_embeddings : capacity;
    if (cap < 1 || cap > config_.max_position_embeddings)
      return detail::err("KV cache capacity must be between 1 and max_position_embeddings (",
                         config_.max_position_embeddings, "), got ", capacity);
    return Cache::create(cache_shape(config_, cap));
  }

  // Runs ids[0..n) at positions kv.size() .. kv.size()+n-1, appending their
  // keys and values to `kv`. Returns float32 logits after the final
  // soft-cap: [1][vocab] for the last position, or [n][vocab] with
  // options.all_logits. Invalid input is rejected before anything runs, so
  // the cache is then unchanged; on cancellation it keeps the chunks run.
  template <class Cache>
  Result<Activations> forward(const int32_t* ids, size_t n, Cache& kv, const ForwardOptions& options = {}) const {
    return run(std::vector<BatchItem<Cache>>{{&kv, ids, n}}, options);
  }

  template <class Cache>
  Result<Activations> forward(const std::vector<int32_t>& ids, Cache& kv, const ForwardOptions& options = {}) const {
    return forward(ids.data(), ids.size(), kv, options);
  }

  // Advances several sequences (each with its own cache) in one pass over
  // the weights: each weight matrix is read once for all of them. Returns
  // [items][vocab]: row i holds the logits after item i's last token. The
  // results equal running the items one by one.
  template <class Cache>
  Result<Activations> forward_batch(const std::vector<BatchItem<Cache>>& items, const ForwardOptions& options = {}) const {
    if (options.all_logits) return detail::err("forward_batch: all_logits is only for a single sequence");
    return run(items, options);
  }

 private:
  static Result<Checkpoint> open_model_files(const std::string& path, Mapping mapping) {
    return is_gguf_path(path) ? open_gguf_checkpoint(path, mapping) : open_checkpoint(path, mapping);
  }

  // Takes the config and every weight from the checkpoint through `bind`.
  Status bind(const Checkpoint& ck, detail::WeightBinder& bind, const LoadOptions& options) {
    if constexpr (std::is_same_v<Config, RuntimeConfig>) {
      config_ = ck.config;
    } else if (Status s = check_matches(config_, ck.config); !s) {
      return s;
    }
    const Config& c = config_;
    const int hidden = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim;
    const int kv_dim = c.num_key_value_heads * c.head_dim, ffn = c.intermediate_size;
    if (options.weight_type && !(*options.weight_type == DType::F32 || *options.weight_type == DType::BF16 ||
                                 *options.weight_type == DType::F16 || is_quantized(*options.weight_type)))
      return detail::err("load: unsupported weight type");
    embed_ = bind.matrix("model.embed_tokens.weight", c.vocab_size, hidden);
    const bool hg = ck.norms_hold_gain;
    final_norm_ = bind.gain("model.norm.weight", hidden, hg);
    for (int i = 0; i < c.num_hidden_layers; ++i) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      AttentionWeights attn{bind.matrix(p + "self_attn.q_proj.weight", q_dim, hidden),
                            bind.matrix(p + "self_attn.k_proj.weight", kv_dim, hidden),
                            bind.matrix(p + "self_attn.v_proj.weight", kv_dim, hidden),
                            bind.matrix(p + "self_attn.o_proj.weight", hidden, q_dim)};
      MlpWeights mlp{bind.matrix(p + "mlp.gate_proj.weight", ffn, hidden),
                     bind.matrix(p + "mlp.up_proj.weight", ffn, hidden),
                     bind.matrix(p + "mlp.down_proj.weight", hidden, ffn)};
      LayerNorms norms{bind.gain(p + "input_layernorm.weight", hidden, hg),
                       bind.gain(p + "post_attention_layernorm.weight", hidden, hg),
                       bind.gain(p + "pre_feedforward_layernorm.weight", hidden, hg),
                       bind.gain(p + "post_feedforward_layernorm.weight", hidden, hg)};
      layers_.emplace_back(c, i, attn, mlp, std::move(norms));
    }
    return bind.finish();
  }

  template <class Cache>
  Status check(const std::vector<BatchItem<Cache>>& items, const ForwardOptions& options) const {
    using detail::err;
    const Config& c = config_;
    if (items.empty()) return err("forward: no sequences given");
    if (options.chunk < 1) return err("forward: chunk must be at least 1, got ", options.chunk);
    for (size_t b = 0; b < items.size(); ++b) {
      const BatchItem<Cache>& it = items[b];
      const std::string which = items.size() > 1 ? "forward: sequence " + std::to_string(b) + ": " : "forward: ";
      if (it.cache == nullptr) return err(which, "no cache");
      for (size_t o = 0; o < b; ++o)
        if (items[o].cache == it.cache) return err(which, "the same cache appears twice in one batch");
      if (it.n == 0) return err(which, "no tokens given");
      const CacheShape& shape = it.cache->shape();
      if (!fits_model(shape, cache_shape(c, shape.capacity), c.max_position_embeddings))
        return err(which, "KV cache was made for another model (", shape.num_layers, " layers of width ", shape.kv_dim,
                   ")");
      const Cache& kv = *it.cache;
      if (it.n > static_cast<size_t>(kv.capacity() - kv.size()))
        return err(which, "context overflow: ", kv.size(), " cached + ", it.n, " new positions exceed the capacity of ",
                   kv.capacity());
      for (size_t i = 0; i < it.n; ++i)
        if (it.ids[i] < 0 || it.ids[i] >= c.vocab_size)
          return err(which, "token id ", it.ids[i], " at index ", i, " is outside the vocabulary [0, ", c.vocab_size,
                     ")");
    }
    return {};
  }

  // The forward pass proper, for one sequence or a batch. Long inputs go
  // through in rounds of at most `chunk` tokens per sequence.
  template <class Cache>
  Result<Activations> run(const std::vector<BatchItem<Cache>>& items, const ForwardOptions& options) const {
    if (Status s = check(items, options); !s) return Error{s.message()};
    const Config& c = config_;
    int step = options.chunk;
    for (const auto& it : items) step = std::min(step, it.cache->max_step());
    const int total = static_cast<int>(items[0].n);  // for all_logits (a single sequence)
    const bool collect = options.all_logits && !options.on_logits;
    // [total][vocab] when collecting all logits, else [items][vocab]; sized
    // when a round's logits cannot simply become it.
    Activations logits(0, c.vocab_size);
    const auto sized = [&]() -> Activations& {
      if (logits.rows() == 0) logits.resize(collect ? total : static_cast<Eigen::Index>(items.size()), c.vocab_size);
      return logits;
    };
    std::vector<size_t> done(items.size(), 0);
    for (size_t round_first = 0;; round_first += static_cast<size_t>(step)) {
      std::vector<SequenceRows<Cache>> seqs;
      std::vector<int32_t> ids;
      std::vector<Eigen::Index> last_rows;  // rows that end an item, and which item
      std::vector<size_t> last_items;
      for (size_t b = 0; b < items.size(); ++b) {
        const size_t n = std::min(static_cast<size_t>(step), items[b].n - done[b]);
        if (n == 0) continue;
        seqs.push_back({items[b].cache, items[b].cache->size(), static_cast<int>(ids.size()), static_cast<int>(n)});
        ids.insert(ids.end(), items[b].ids + done[b], items[b].ids + done[b] + n);
        done[b] += n;
        if (done[b] == items[b].n) last_rows.push_back(static_cast<Eigen::Index>(ids.size()) - 1), last_items.push_back(b);
      }
      if (seqs.empty()) break;
      if (options.cancel != nullptr && options.cancel->load(std::memory_order_relaxed))
        return detail::err("forward: cancelled after ", round_first, " tokens");
      Activations h = embed(ids.data(), static_cast<int>(ids.size()));
      for (const auto& layer : layers_) layer.forward(c, h, seqs, options.pool);
      for (const auto& s : seqs) s.cache->set_size(s.pos + s.count);
      if (collect) {
        Activations out = output(h, options.pool);
        if (out.rows() == total) logits = std::move(out);  // one round: no copy of [total][vocab]
        else sized().middleRows(static_cast<Eigen::Index>(round_first), out.rows()) = out;
      } else if (options.all_logits) {
        options.on_logits(static_cast<int>(round_first), output(h, options.pool));
      } else if (!last_rows.empty()) {
        Activations out = output(h(last_rows, Eigen::all), options.pool);
        if (round_first == 0 && last_items.size() == items.size()) {  // every item ends now, in order
          logits = std::move(out);
        } else {
          for (size_t i = 0; i < last_items.size(); ++i)
            sized().row(static_cast<Eigen::Index>(last_items[i])) = out.row(static_cast<Eigen::Index>(i));
        }
      }
    }
    return logits;
  }

  // Embedding rows scaled by float32(sqrt(hidden)), as the reference does.
  Activations embed(const int32_t* ids, int T) const {
    const int hidden = config_.hidden_size;
    const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(hidden)));
    Activations h(T, hidden);
    std::vector<std::byte> scratch(embed_.interleaved ? row_bytes(embed_.dtype, hidden) : 0);
    for (int t = 0; t < T; ++t) {
      detail::convert_to_float(embed_.dtype, detail::plain_row(embed_, ids[t], scratch.data()), h.row(t).data(),
                               static_cast<size_t>(hidden));
      h.row(t) *= normalizer;
    }
    return h;
  }

  // Final norm, tied output projection, final soft-cap.
  Activations output(Activations h, const Executor* pool) const {
    detail::rms_norm(h, final_norm_, config_.rms_norm_eps);
    Activations logits = matmul(embed_, h, pool);
    detail::rows_in_pieces(logits.data(), logits.rows(), logits.cols(), pool,
                           [&](float* x, Eigen::Index n) { detail::softcap(x, n, config_.final_logit_softcapping); });
    return logits;
  }

  Config config_{};
  Matrix embed_;
  std::vector<float> final_norm_;
  std::vector<DecoderLayer<Config>> layers_;
  std::vector<std::shared_ptr<const void>> storage_;  // mapped files and copies the views point into
  size_t weight_bytes_ = 0;
  const detail::Kernels* kernels_ = &detail::default_kernels();
};

GEMMA2_END_NAMESPACE
