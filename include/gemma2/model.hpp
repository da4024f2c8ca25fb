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
#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/layer.hpp"
#include "gemma2/load_options.hpp"
#include "gemma2/thread_pool.hpp"

GEMMA2_BEGIN_NAMESPACE

struct Checkpoint;  // io/checkpoint.hpp
namespace detail {
class WeightBinder;  // io/loader.hpp
}  // namespace detail

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
  static Result<Gemma2Model> load(const std::string& path, const LoadOptions& options = {});

  static Result<Gemma2Model> from_checkpoint(Checkpoint ck, const LoadOptions& options = {});

  // What loading `path` with `options` will take in memory (see
  // MemoryPlan), from the file headers alone; the same checks as load, so a
  // checkpoint that plans fine loads (short of its weight bytes being bad).
  static Result<MemoryPlan> plan(const std::string& path, const LoadOptions& options = {});

  static Result<MemoryPlan> plan(const Checkpoint& ck, const LoadOptions& options = {});

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
  Result<Activations> forward_batch(const std::vector<BatchItem<Cache>>& items,
                                    const ForwardOptions& options = {}) const {
    if (options.all_logits) return detail::err("forward_batch: all_logits is only for a single sequence");
    return run(items, options);
  }

 private:
  // Takes the config and every weight from the checkpoint through `bind`.
  Status bind(const Checkpoint& ck, detail::WeightBinder& bind, const LoadOptions& options);

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
  Result<Activations> run(const std::vector<BatchItem<Cache>>& items, const ForwardOptions& options) const;

  // Embedding rows scaled by float32(sqrt(hidden)), as the reference does.
  Activations embed(const int32_t* ids, int T) const {
    const int hidden = config_.hidden_size;
    const float normalizer = static_cast<float>(std::sqrt(static_cast<double>(hidden)));
    Activations h(T, hidden);
    std::vector<std::byte> scratch(embed_.interleaved ? row_bytes(embed_.dtype, hidden) : 0);
    for (int t = 0; t < T; ++t) {
      detail::convert_to_float(embed_.dtype, embed_.row(ids[t], scratch.data()), h.row(t).data(),
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

// The forward pass is defined out of the class, so it is not inline: a
// program built with GEMMA2_COMPILED (version.hpp) then really takes it
// from the compiled unit. Compilers instantiate an inline member of an
// `extern template` anyway, to be able to inline it. Loading is defined
// the same way, at the end of this header.

template <class Config>
template <class Cache>
Result<Activations> Gemma2Model<Config>::run(const std::vector<BatchItem<Cache>>& items,
                                             const ForwardOptions& options) const {
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
      if (done[b] == items[b].n)
        last_rows.push_back(static_cast<Eigen::Index>(ids.size()) - 1), last_items.push_back(b);
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

GEMMA2_END_NAMESPACE

// Loading: the checkpoint's files are opened and their tensors bound by
// io/loader.hpp, which chooses the reader (GGUF or safetensors) and knows
// nothing of this class; what follows maps the Gemma 2 tensor names onto the
// layers. A program built with GEMMA2_COMPILED takes these definitions for
// RuntimeConfig and the presets from the compiled unit and parses none of the
// file formats; its files that load a model of a Config type of their own
// define GEMMA2_DEFINE_LOADING to get them.
#if GEMMA2_DEFINE_COMPILED_PARTS || defined(GEMMA2_DEFINE_LOADING)
#include "gemma2/io/loader.hpp"

GEMMA2_BEGIN_NAMESPACE

template <class Config>
Result<Gemma2Model<Config>> Gemma2Model<Config>::load(const std::string& path, const LoadOptions& options) {
  // With a limit, plan from a mapping first (it reads nothing), so copied
  // files are read only once they are known to fit.
  const bool check_first = options.max_memory != 0;
  auto ck = detail::open_model_files(path, check_first ? Mapping::Mapped : options.mapping);
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
    ck = detail::open_model_files(path, Mapping::Copied);  // validated again as read
    if (!ck) return Error{ck.message()};
  }
  if (options.preload) detail::preload(ck->tensors, options);
  return from_checkpoint(std::move(*ck), options);
}

template <class Config>
Result<Gemma2Model<Config>> Gemma2Model<Config>::from_checkpoint(Checkpoint ck, const LoadOptions& options) {
  if (options.log) {
    size_t bytes = 0;
    std::set<std::string> files, dtypes;
    for (const auto& [name, t] : ck.tensors)
      bytes += t.nbytes, files.insert(t.source), dtypes.insert(dtype_name(t.dtype));
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

template <class Config>
Result<MemoryPlan> Gemma2Model<Config>::plan(const std::string& path, const LoadOptions& options) {
  auto ck = detail::open_model_files(path, Mapping::Mapped);
  if (!ck) return Error{ck.message()};
  return plan(*ck, options);
}

template <class Config>
Result<MemoryPlan> Gemma2Model<Config>::plan(const Checkpoint& ck, const LoadOptions& options) {
  Gemma2Model m;
  detail::WeightBinder binder(ck.tensors, m.storage_, options, /*plan_only=*/true);
  if (Status s = m.bind(ck, binder, options); !s) return Error{s.message()};
  MemoryPlan p = binder.plan();
  p.config = to_runtime(m.config_);
  return p;
}

template <class Config>
Status Gemma2Model<Config>::bind(const Checkpoint& ck, detail::WeightBinder& bind, const LoadOptions& options) {
  if constexpr (std::is_same_v<Config, RuntimeConfig>) {
    config_ = ck.config;
  } else if (Status s = check_matches(config_, ck.config); !s) {
    return s;
  }
  const Config& c = config_;
  const int hidden = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim;
  const int kv_dim = c.num_key_value_heads * c.head_dim, ffn = c.intermediate_size;
  if (options.weight_type && !(*options.weight_type == DType::F32 || *options.weight_type == DType::BF16 ||
                               *options.weight_type == DType::F16 || is_block32(*options.weight_type)))
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

GEMMA2_END_NAMESPACE
#endif

// In a program built with GEMMA2_COMPILED (version.hpp), the compiled unit
// holds the loading of RuntimeConfig and the presets, and the forward pass
// of RuntimeConfig over the built-in caches.
#if defined(GEMMA2_COMPILED)
GEMMA2_BEGIN_NAMESPACE
GEMMA2_EXTERN_TEMPLATE template class Gemma2Model<RuntimeConfig>;
GEMMA2_EXTERN_TEMPLATE template class Gemma2Model<Gemma2_2B>;
GEMMA2_EXTERN_TEMPLATE template class Gemma2Model<Gemma2_9B>;
GEMMA2_EXTERN_TEMPLATE template class Gemma2Model<Gemma2_27B>;
#define GEMMA2_MODEL_RUN(Cache)                                                               \
  GEMMA2_EXTERN_TEMPLATE template Result<Activations> Gemma2Model<RuntimeConfig>::run<Cache>( \
      const std::vector<BatchItem<Cache>>&, const ForwardOptions&) const;
GEMMA2_STANDARD_CACHES(GEMMA2_MODEL_RUN)
#undef GEMMA2_MODEL_RUN
GEMMA2_END_NAMESPACE
#endif
