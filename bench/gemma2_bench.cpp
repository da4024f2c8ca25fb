// gemma2_bench: Google Benchmark suite for the gemma2 kernels and model.
//
//   matvec/<shape>/<dtype>/threads:N      decode-shaped products (T = 1) at the
//                                         Gemma 2 2B shapes, weights streamed from
//                                         DRAM (the working set is > 8x the L3);
//   matvec_hot/q_proj/<dtype>/threads:N   the same, weights resident in cache
//                                         (L3; the dot kernel's own ceiling);
//   matmul/gate_proj/<dtype>/T:N/threads:M small batches (T <= 7 take the dot
//                                         kernels, T >= 8 the tiled GEMM; interleaved
//                                         q8/q4 the integer kernels at every T) up to
//                                         a prefill-shaped product (T = 64);
//   parallel_for/threads:N                cost of one empty pool dispatch;
//   read_bandwidth/threads:N              the machine's sequential read rate
//                                         (sums 1 GiB), the roofline's denominator;
//   e2e/<dtype>/prefill/T:512/threads:N   a 512-token prompt into an empty cache,
//   e2e/<dtype>/prefill/T:4096/threads:2  a long prompt (tiled attention),
//   e2e/<dtype>/decode/depth:D/threads:N  one decode step after D cached positions
//                                         (up to 8160), float cache,
//   e2e/<dtype>/decode_kv_<bf16|int8>/... the same with bf16 or int8 KV storage,
//                                         on a Gemma 2 2B-shaped model with random
//                                         weights made in memory (bf16, q8, q4);
//                                         decode also reports roofline_pct: tok/s
//                                         against bandwidth (measured right after,
//                                         same threads) / weight bytes;
//   attention/<f32|bf16|int8>/depth:D/threads:N  the decode attention's
//                                         products alone (kv_scores, kv_mix) over
//                                         one 2B layer's keys and values at depth D,
//                                         layers cycled so the cache streams from
//                                         DRAM; reports its read rate next to the
//                                         machine's;
//   context_shift/<f32|int8>/<full|sliding>  Session::shift's work on a full
//                                         2B-shaped cache of 8192 positions: half
//                                         the rows moved, their keys re-rotated;
//   grammar/mask/schema:0|1               structured output at the real 256000-piece
//                                         vocabulary: per token of a JSON document the
//                                         full mask, the check of one token, accepting
//                                         it (any-JSON grammar, or a JSON Schema);
//   grammar/decode_q4/threads:N           2B-shaped Q4_0 decode with and without a
//                                         JSON-Schema constraint, interleaved step by
//                                         step: both rates, their ratio, and the
//                                         constraint's time per token;
//   speculative/verify/<dtype>/<shape>/k:K  a verification pass of K guesses (K + 1
//                                         rows, logits for each) over a one-row step,
//                                         interleaved: the ratio (shapes 2b, and 9b-8:
//                                         9B's layers, 8 of them);
//   speculative/demo/workload:0|1|2       the demo model against itself with prompt
//                                         lookup on an editing workload (greedy) or
//                                         free text (sampled), and with its Q4_0 copy
//                                         as draft model on free text, interleaved
//                                         with plain decoding: speed-up, acceptance;
//   model/*                               end-to-end load, decode, batched decode
//                                         (N = 1, 4, 8, 16 sequences) and prefill on
//                                         the checkpoint in $GEMMA2_BENCH_MODEL
//                                         (skipped when it is unset).
//
// bytes_per_second is weight bytes streamed; FLOP/s counts 2 flops per
// multiply-add; tok/s is tokens per second of wall time.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "gemma2/gemma2.hpp"
#include "gemma2/testing/random_model.hpp"

namespace {

using gemma2::DType;
using Model = gemma2::Gemma2Model<gemma2::RuntimeConfig>;
using Clock = std::chrono::steady_clock;

// Uniform in [-0.0346, 0.0346): standard deviation 0.02.
float random_weight(gemma2::Rng& rng) {
  return static_cast<float>(rng.next() >> 40) * (0.0692820f / 16777216.0f) - 0.0346410f;
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  gemma2::Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = random_weight(rng) * 50.0f;  // activations of order 1
  return v;
}

// Random weights of one shape and dtype, in enough copies that cycling
// through them streams at least `min_bytes` (decoding never finds its weights
// in cache). Kept for the whole run: the 1- and 2-thread cases share them.
// Q8_0/Q4_0 are interleaved, as loading does, when the kernel set reads
// them so (GEMMA2_KERNELS picks the set); GEMMA2_BENCH_PLAIN_ROWS=1 keeps
// them row by row, to compare with the plain-row kernels.
struct RandomWeights {
  std::vector<std::vector<std::byte>> copies;
  int rows = 0, cols = 0;
  DType dtype = DType::F32;
  bool interleaved = false;
  gemma2::Matrix matrix(size_t i) const {
    return {dtype, rows, cols, copies[i % copies.size()].data(), nullptr, interleaved};
  }
};

std::map<std::tuple<int, int, DType, bool>, RandomWeights>& weight_cache() {
  static std::map<std::tuple<int, int, DType, bool>, RandomWeights> cache;
  return cache;
}

const RandomWeights& random_weights(int rows, int cols, DType dtype, bool hot) {
  auto& w = weight_cache()[{rows, cols, dtype, hot}];
  if (!w.copies.empty()) return w;
  w.rows = rows, w.cols = cols, w.dtype = dtype;
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  const size_t bytes = static_cast<size_t>(rows) * gemma2::row_bytes(dtype, cols);
  constexpr size_t kMinBytes = size_t{256} << 20;  // 8x the L3 of common desktop and server parts
  const size_t count = hot ? 1 : std::max<size_t>(1, (kMinBytes + bytes - 1) / bytes);
  w.copies.resize(count);
  w.copies[0].resize(bytes);
  gemma2::Rng seed(42);
  if (dtype == DType::BF16) {
    auto* p = reinterpret_cast<gemma2::bf16*>(w.copies[0].data());
    for (size_t i = 0; i < n; ++i) p[i] = gemma2::to_bf16(random_weight(seed));
  } else if (gemma2::is_block32(dtype)) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int r = 0; r < rows; ++r) {
      for (float& x : row) x = random_weight(seed);
      gemma2::detail::quantize_row(dtype, row.data(),
                                   w.copies[0].data() + static_cast<size_t>(r) * gemma2::row_bytes(dtype, cols), cols);
    }
  } else if (gemma2::is_kquant(dtype)) {
    // Random bits are valid K-quant values; only the f16 super-block scales
    // are set, to small finite numbers.
    for (auto& b : w.copies[0]) b = static_cast<std::byte>(seed.next() >> 56);
    const size_t block = gemma2::row_bytes(dtype, gemma2::kSuperBlock);
    for (size_t at = 0; at < bytes; at += block)
      for (size_t scale : dtype == DType::Q6_K ? std::vector<size_t>{offsetof(gemma2::BlockQ6_K, d)}
                                               : std::vector<size_t>{offsetof(gemma2::BlockQ4_K, d),
                                                                     offsetof(gemma2::BlockQ4_K, dmin)}) {
        const gemma2::f16 h = gemma2::to_f16(std::fabs(random_weight(seed)) / 16.0f);
        std::memcpy(&w.copies[0][at + scale], &h, sizeof h);
      }
  } else {
    auto* p = reinterpret_cast<float*>(w.copies[0].data());
    for (size_t i = 0; i < n; ++i) p[i] = random_weight(seed);
  }
  if (gemma2::is_block32(dtype) && gemma2::detail::default_kernels().interleaved_rows != nullptr &&
      std::getenv("GEMMA2_BENCH_PLAIN_ROWS") == nullptr) {
    const size_t row_bytes = gemma2::row_bytes(dtype, cols);
    std::vector<std::byte> out(gemma2::interleaved_groups(rows) * gemma2::kInterleave * row_bytes);
    gemma2::detail::interleave_rows({dtype, rows, cols, w.copies[0].data(), row_bytes}, out.data(), 0, rows);
    w.copies[0] = std::move(out);
    w.interleaved = true;
  }
  for (size_t i = 1; i < count; ++i) w.copies[i] = w.copies[0];
  return w;
}

const gemma2::ThreadPool& pool(int threads) {
  static std::map<int, gemma2::ThreadPool> pools;
  auto it = pools.find(threads);
  if (it == pools.end()) it = pools.emplace(threads, gemma2::ThreadPool::create(threads).value()).first;
  return it->second;
}

gemma2::ForwardOptions on_pool(int threads) {
  gemma2::ForwardOptions o;
  o.pool = &pool(threads);
  return o;
}

// Y[T][rows] = X[T][cols] · Wᵀ with the library kernel. Args: T, threads.
void BM_Matmul(benchmark::State& state, int rows, int cols, DType dtype, bool hot) {
  const int T = static_cast<int>(state.range(0));
  const gemma2::ThreadPool& p = pool(static_cast<int>(state.range(1)));
  const RandomWeights& w = random_weights(rows, cols, dtype, hot);
  const std::vector<float> x = random_floats(static_cast<size_t>(T) * static_cast<size_t>(cols), 7);
  std::vector<float> y(static_cast<size_t>(T) * static_cast<size_t>(rows));
  size_t i = 0;
  for (auto _ : state) {
    gemma2::detail::matmul(w.matrix(i++), x.data(), T, y.data(), &p);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(w.matrix(0).bytes());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes));
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * T * rows * static_cast<double>(cols), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["copies"] = static_cast<double>(w.copies.size());
}

// One dispatch of an empty body: the fixed cost every matmul pays.
void BM_ParallelFor(benchmark::State& state) {
  const gemma2::ThreadPool& p = pool(static_cast<int>(state.range(0)));
  for (auto _ : state)
    gemma2::detail::parallel_for(&p, 1024, 16, [](int64_t b, int64_t e) { benchmark::DoNotOptimize(b + e); });
}

// ---- end to end, on $GEMMA2_BENCH_MODEL ----------------------------------

double rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return 0;
}

const char* model_dir() { return std::getenv("GEMMA2_BENCH_MODEL"); }

// The model, loaded once for the decode and prefill benchmarks.
const Model* shared_model(benchmark::State& state) {
  static std::optional<Model> model;
  static std::string error;
  if (!model && error.empty()) {
    if (model_dir() == nullptr) {
      error = "set GEMMA2_BENCH_MODEL to a Gemma 2 model directory";
    } else {
      weight_cache().clear();  // give the kernel benchmarks' memory back first
      auto m = Model::load(model_dir());
      if (m) model.emplace(std::move(*m));
      else error = m.message();
    }
  }
  if (!model) state.SkipWithError(error.c_str());
  return model ? &*model : nullptr;
}

std::vector<int32_t> prompt_ids(const Model& m, int n) {
  std::vector<int32_t> ids{2};  // BOS
  for (int i = 1; i < n; ++i) ids.push_back(static_cast<int32_t>((1000 + 7919 * i) % m.config().vocab_size));
  return ids;
}

// Model::load (maps and validates the files; with Arg 1, LoadOptions::preload
// also reads every weight page), then one decode step, which pages in whatever
// load left out. Reported: load and first-token seconds, RSS growth.
void BM_Load(benchmark::State& state) {
  gemma2::LoadOptions options;
  options.preload = state.range(0) != 0;
  if (model_dir() == nullptr) return state.SkipWithError("set GEMMA2_BENCH_MODEL to a Gemma 2 model directory");
  weight_cache().clear();
  double load_s = 0, first_s = 0, rss_load = 0, rss_first = 0;
  for (auto _ : state) {
    const double rss0 = rss_mib();
    auto t0 = Clock::now();
    auto m = Model::load(model_dir(), options);
    if (!m) return state.SkipWithError(m.message().c_str());
    load_s += std::chrono::duration<double>(Clock::now() - t0).count();
    rss_load += rss_mib() - rss0;
    auto kv = m->make_cache(16);
    t0 = Clock::now();
    const std::vector<int32_t> ids{2};
    auto logits = m->forward(ids, *kv, on_pool(1));
    first_s += std::chrono::duration<double>(Clock::now() - t0).count();
    rss_first += rss_mib() - rss0;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["load_s"] = load_s / n;
  state.counters["first_token_s"] = first_s / n;
  state.counters["rss_after_load_MiB"] = rss_load / n;
  state.counters["rss_after_token_MiB"] = rss_first / n;
}

// One-token forward steps after an 8-token prompt. Arg: threads.
void BM_Decode(benchmark::State& state) {
  const Model* m = shared_model(state);
  if (m == nullptr) return;
  const gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(0)));
  constexpr int kPrompt = 8;
  auto kv = m->make_cache(std::min(1024, m->config().max_position_embeddings));
  if (!kv) return state.SkipWithError(kv.message().c_str());
  if (auto r = m->forward(prompt_ids(*m, kPrompt), *kv, opts); !r) return state.SkipWithError(r.message().c_str());
  int32_t token = 100;
  for (auto _ : state) {
    if (kv->size() == kv->capacity()) {
      state.PauseTiming();
      kv->set_size(kPrompt);
      state.ResumeTiming();
    }
    auto logits = m->forward(&token, 1, *kv, opts);
    if (!logits) return state.SkipWithError(logits.message().c_str());
    token = static_cast<int32_t>((token * 31 + 7) % m->config().vocab_size);
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// One decode step of N sequences at once (forward_batch reads each weight
// once for all of them). Args: N, threads. tok/s counts all N tokens.
void BM_BatchDecode(benchmark::State& state) {
  const Model* m = shared_model(state);
  if (m == nullptr) return;
  const int n = static_cast<int>(state.range(0));
  const gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(1)));
  constexpr int kPrompt = 8;
  std::vector<gemma2::KVCache> caches;
  for (int i = 0; i < n; ++i) {
    auto kv = m->make_cache(std::min(512, m->config().max_position_embeddings));
    if (!kv) return state.SkipWithError(kv.message().c_str());
    caches.push_back(std::move(*kv));
    if (auto r = m->forward(prompt_ids(*m, kPrompt), caches.back(), opts); !r)
      return state.SkipWithError(r.message().c_str());
  }
  std::vector<int32_t> tokens(static_cast<size_t>(n), 100);
  std::vector<gemma2::BatchItem<gemma2::KVCache>> items;
  for (int i = 0; i < n; ++i) items.push_back({&caches[static_cast<size_t>(i)], &tokens[static_cast<size_t>(i)], 1});
  for (auto _ : state) {
    if (caches[0].size() == caches[0].capacity()) {
      state.PauseTiming();
      for (auto& kv : caches) (void)kv.truncate(kPrompt);
      state.ResumeTiming();
    }
    auto logits = m->forward_batch(items, opts);
    if (!logits) return state.SkipWithError(logits.message().c_str());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// A prompt of range(0) tokens into an empty cache. Args: tokens, threads.
void BM_Prefill(benchmark::State& state) {
  const Model* m = shared_model(state);
  if (m == nullptr) return;
  const int n = static_cast<int>(state.range(0));
  const gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(1)));
  auto kv = m->make_cache(n);
  if (!kv) return state.SkipWithError(kv.message().c_str());
  const std::vector<int32_t> ids = prompt_ids(*m, n);
  for (auto _ : state) {
    kv->set_size(0);
    auto logits = m->forward(ids, *kv, opts);
    if (!logits) return state.SkipWithError(logits.message().c_str());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// ---- end to end on a random 2B-shaped model ------------------------------

// Best of `passes` sequential reads of a 1 GiB buffer (summed) with
// `threads` threads, in bytes/s.
double read_bandwidth(int threads, int passes) {
  const gemma2::ThreadPool& p = pool(threads);
  static const std::vector<float> buf(size_t{1} << 28, 1.0f);
  std::vector<double> partial(static_cast<size_t>(threads));
  double best = 0;
  for (int i = 0; i < passes; ++i) {
    const auto t0 = Clock::now();
    gemma2::detail::parallel_for(&p, static_cast<int64_t>(buf.size()), 1 << 20, [&](int64_t b, int64_t e) {
      const Eigen::Map<const Eigen::ArrayXf> part(buf.data() + b, e - b);
      partial[static_cast<size_t>(b * threads / static_cast<int64_t>(buf.size()))] = part.sum();
    });
    benchmark::DoNotOptimize(partial.data());
    best = std::max(best, static_cast<double>(buf.size() * sizeof(float)) /
                              std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

void BM_ReadBandwidth(benchmark::State& state) {
  double best = 0;
  for (auto _ : state) best = std::max(best, read_bandwidth(static_cast<int>(state.range(0)), 1));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) << 30);
  state.counters["best_GB/s"] = best / 1e9;
}

// A Gemma 2 model with random weights, made as BF16 and converted at load
// like a real checkpoint; one per weight type and shape, kept for the run.
// Shape "2b" is Gemma 2 2B; "9b-8" is Gemma 2 9B's layers and vocabulary
// with 8 of its 42 layers (the whole 9B does not fit beside its BF16
// source in 24 GiB), for costs that are ratios within one model.
const Model& random_model(DType type, const std::string& shape = "2b") {
  static std::map<std::pair<DType, std::string>, Model> models;
  auto it = models.find({type, shape});
  if (it != models.end()) return it->second;
  weight_cache().clear();
  gemma2::LoadOptions lo;
  lo.pool = &pool(2);
  lo.weight_type = type;
  auto config = gemma2::to_runtime(gemma2::Gemma2_2B{});
  if (shape == "9b-8") {
    config = gemma2::to_runtime(gemma2::Gemma2_9B{});
    config.num_hidden_layers = 8;
    config.layer_types.resize(8);
  }
  return models
      .emplace(std::pair{type, shape},
               Model::from_checkpoint(gemma2::random_checkpoint(config, DType::BF16, 1, lo.pool), lo).value())
      .first->second;
}

void BM_E2EPrefill(benchmark::State& state, DType type) {
  const Model& m = random_model(type);
  const int n = static_cast<int>(state.range(0));
  const gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(1)));
  auto kv = m.make_cache(n).value();
  const std::vector<int32_t> ids = prompt_ids(m, n);
  for (auto _ : state) {
    kv.set_size(0);
    if (auto r = m.forward(ids, kv, opts); !r) return state.SkipWithError(r.message().c_str());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// A cache of each storage type filled to a depth once, with random keys and
// values (a decode step costs the same whatever they hold; a prefill of
// 8160 tokens would take minutes), copied for each case: only the decode
// step is timed.
template <class Cache>
const Cache& filled_cache(const Model& m, int depth) {
  static std::map<int, Cache> caches;
  auto it = caches.find(depth);
  if (it != caches.end()) return it->second;
  auto kv = m.make_cache<Cache>(depth + 1).value();
  const auto rows = random_floats(2 * static_cast<size_t>(kv.shape().kv_dim), 7);
  for (int l = 0; l < kv.shape().num_layers; ++l)
    for (int pos = 0; pos < depth; ++pos) kv.store(l, pos, rows.data(), rows.data() + kv.shape().kv_dim);
  kv.set_size(depth);
  return caches.emplace(depth, std::move(kv)).first->second;
}

// One decode step after `depth` cached positions, in a FullKVCache of the
// given storage. Args: depth, threads.
template <class Storage>
void BM_E2EDecode(benchmark::State& state, DType type) {
  using Cache = gemma2::FullKVCache<Storage>;
  const Model& m = random_model(type);
  const int depth = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  const gemma2::ForwardOptions opts = on_pool(threads);
  Cache kv = filled_cache<Cache>(m, depth);
  int32_t token = 100;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    kv.set_size(depth);
    auto logits = m.forward(&token, 1, kv, opts);
    if (!logits) return state.SkipWithError(logits.message().c_str());
    token = static_cast<int32_t>((token * 31 + 7) % m.config().vocab_size);
  }
  const double tok_s =
      static_cast<double>(state.iterations()) / std::chrono::duration<double>(Clock::now() - t0).count();
  // The machine's bandwidth drifts (shared hosts): measured right after.
  const double bw = read_bandwidth(threads, 3);
  state.counters["tok/s"] = tok_s;
  state.counters["weights_GB"] = static_cast<double>(m.weight_bytes()) / 1e9;
  state.counters["kv_cache_GB"] = static_cast<double>(kv.bytes()) / 1e9;
  state.counters["bandwidth_GB/s"] = bw / 1e9;
  state.counters["roofline_pct"] = 100.0 * tok_s * static_cast<double>(m.weight_bytes()) / bw;
}

// Structured output at Gemma 2's real vocabulary (the 256000-piece tokenizer
// in tests/data): the same documents and grammars llama.cpp's grammar
// sampler was timed on (see README, structured output).
const char* kJsonDoc =
    R"({"name": "Goblin camp", "turn": 12, "npcs": [{"id": 1, "kind": "goblin", "hp": 7.5, "hostile": true, )"
    R"("items": ["club", "rope"]}, {"id": 2, "kind": "merchant", "hp": 12, "hostile": false, "items": []}], )"
    R"("weather": null, "note": "The goblins are \"restless\" tonight."})";
const char* kActionSchema =
    R"({"type":"object","properties":{"action":{"type":"string","enum":["attack","defend","flee","talk"]},)"
    R"("target":{"type":"string","maxLength":24},"amount":{"type":"integer"},"items":{"type":"array",)"
    R"("items":{"type":"string","maxLength":16},"maxItems":4}},"required":["action","target"],"additionalProperties":false})";
const char* kActionDoc = R"({"action": "attack", "target": "goblin chief", "amount": 3, "items": ["sword", "torch"]})";

const gemma2::Tokenizer& gemma_tokenizer() {
  static const gemma2::Tokenizer tok = gemma2::Tokenizer::load(GEMMA2_BENCH_TOKENIZER).value();
  return tok;
}
const std::shared_ptr<const gemma2::TokenTrie>& gemma_vocab() {
  static const auto trie = gemma2::TokenTrie::build(gemma_tokenizer());
  return trie;
}
gemma2::Grammar bench_grammar(bool schema) {
  return (schema ? gemma2::json_schema_grammar(kActionSchema) : gemma2::Grammar::parse(gemma2::json_gbnf())).value();
}

// Per token of a document, in order: the full mask over all 256000 pieces,
// the check of one (the document's) token, and accepting it. Arg: 0 any
// JSON value on kJsonDoc, 1 kActionSchema on kActionDoc.
void BM_GrammarMask(benchmark::State& state) {
  const bool schema = state.range(0) == 1;
  const gemma2::Grammar g = bench_grammar(schema);
  const auto ids = gemma_tokenizer().encode(schema ? kActionDoc : kJsonDoc).value();
  double mask_s = 0, check_s = 0, accept_s = 0;
  size_t allowed = 0;
  for (auto _ : state) {
    auto c = gemma2::GrammarConstraint::create(g, gemma_vocab()).value();
    for (int32_t id : ids) {
      auto t0 = Clock::now();
      const auto& mask = c.allowed_mask(256000);
      auto t1 = Clock::now();
      if (!mask[static_cast<size_t>(id)]) return state.SkipWithError("the mask refused a token of the document");
      allowed += static_cast<size_t>(std::count(mask.begin(), mask.end(), 1));
      t1 = Clock::now();
      const bool ok = c.allows(id);
      auto t2 = Clock::now();
      if (!ok || !c.accept(id)) return state.SkipWithError("a token of the document was refused");
      auto t3 = Clock::now();
      mask_s += std::chrono::duration<double>(t1 - t0).count();
      check_s += std::chrono::duration<double>(t2 - t1).count();
      accept_s += std::chrono::duration<double>(t3 - t2).count();
    }
    if (!c.can_end()) return state.SkipWithError("the document did not complete the grammar");
  }
  const double n = static_cast<double>(state.iterations() * ids.size());
  state.counters["tokens"] = static_cast<double>(ids.size());
  state.counters["mask_ms"] = 1e3 * mask_s / n;
  state.counters["check_us"] = 1e6 * check_s / n;
  state.counters["accept_us"] = 1e6 * accept_s / n;
  state.counters["allowed_per_step"] = static_cast<double>(allowed) / n;
}

// Decoding the 2B shape (random Q4_0 weights) with and without a JSON-Schema
// constraint, interleaved step by step so both see the same machine: each
// iteration runs one plain step (forward + Sampler at temperature 1) and
// one constrained step (forward + the same Sampler under kActionSchema,
// restarted whenever its text is complete). Reports both rates, their
// ratio and the constrained sampler's extra time per token. Arg: threads.
void BM_GrammarDecode(benchmark::State& state) {
  const Model& m = random_model(DType::Q4_0);
  const gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(0)));
  const gemma2::Grammar g = bench_grammar(true);
  auto plain_kv = m.make_cache(1024).value(), constrained_kv = m.make_cache(1024).value();
  gemma2::SamplingParams p;
  p.seed = 1;
  gemma2::Sampler plain(p), constrained(p);
  gemma2::TokenHistory plain_history{2}, constrained_history{2};
  auto restart = [&] {
    constrained_history.assign(1, 2);
    constrained_kv.set_size(0);
    constrained = gemma2::Sampler(p);
    constrained.constrain(gemma2::GrammarConstraint::create(g, gemma_vocab()).value());
  };
  restart();
  double plain_s = 0, constrained_s = 0, plain_sample_s = 0, constrained_sample_s = 0;
  int64_t texts = 0;
  std::vector<float> row;
  auto step = [&](gemma2::Sampler& sampler, gemma2::KVCache& kv, gemma2::TokenHistory& history, double& total,
                  double& sampling) {
    if (kv.size() + 1 >= kv.capacity()) kv.set_size(0), history.resize(1);
    const auto t0 = Clock::now();
    auto logits = m.forward(&history.back(), 1, kv, opts);
    if (!logits) return false;
    const auto t1 = Clock::now();
    row.assign(logits->data(), logits->data() + logits->cols());
    const int32_t id = sampler(row, history);
    const auto t2 = Clock::now();
    if (id < 0) return false;
    history.push_back(id);
    total += std::chrono::duration<double>(t2 - t0).count();
    sampling += std::chrono::duration<double>(t2 - t1).count();
    return true;
  };
  for (auto _ : state) {
    if (!step(plain, plain_kv, plain_history, plain_s, plain_sample_s) ||
        !step(constrained, constrained_kv, constrained_history, constrained_s, constrained_sample_s))
      return state.SkipWithError(constrained.error().c_str());
    if (constrained.finished()) restart(), ++texts;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["plain_tok/s"] = n / plain_s;
  state.counters["constrained_tok/s"] = n / constrained_s;
  state.counters["ratio"] = plain_s / constrained_s;
  state.counters["sampler_plain_ms"] = 1e3 * plain_sample_s / n;
  state.counters["sampler_constrained_ms"] = 1e3 * constrained_sample_s / n;
  state.counters["constraint_ms"] = 1e3 * (constrained_sample_s - plain_sample_s) / n;
  state.counters["texts_completed"] = static_cast<double>(texts);
}

// Speculative decoding's verification pass: k drafted tokens and the
// pending one (k + 1 rows, logits for every row) against a one-row decode
// step, interleaved at depth 64. Reports both times and their ratio, the
// cost of checking k guesses over a plain step. Args: k, threads.
void BM_Verify(benchmark::State& state, DType type, const std::string& shape) {
  const Model& m = random_model(type, shape);
  const int k = static_cast<int>(state.range(0));
  gemma2::ForwardOptions opts = on_pool(static_cast<int>(state.range(1)));
  constexpr int kDepth = 64;
  auto kv = m.make_cache(kDepth + 16).value();
  if (auto r = m.forward(prompt_ids(m, kDepth), kv, opts); !r) return state.SkipWithError(r.message().c_str());
  const std::vector<int32_t> rows = prompt_ids(m, k + 2);
  double one_s = 0, pass_s = 0;
  for (auto _ : state) {
    kv.set_size(kDepth);
    auto t0 = Clock::now();
    opts.all_logits = false;
    auto one = m.forward(rows.data() + 1, 1, kv, opts);
    one_s += std::chrono::duration<double>(Clock::now() - t0).count();
    kv.set_size(kDepth);
    t0 = Clock::now();
    opts.all_logits = true;
    auto pass = m.forward(rows.data() + 1, static_cast<size_t>(k + 1), kv, opts);
    pass_s += std::chrono::duration<double>(Clock::now() - t0).count();
    if (!one || !pass) return state.SkipWithError("forward failed");
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["step_ms"] = 1e3 * one_s / n;
  state.counters["verify_ms"] = 1e3 * pass_s / n;
  state.counters["ratio"] = pass_s / one_s;
}

// Prompt lookup on the demo model, plain and speculative generation
// interleaved: an editing workload (greedy, as an editor would: the model
// writes a scene, then writes it again from the same opening with the scene
// in its context, copying most of it; examples/editor_rewrite) or free text
// with nothing to copy (sampled at temperature 1, seeds shared by both);
// or that free text drafted by the demo model's own weights at Q4_0 (a
// ModelDrafter: the pairing a 4-bit copy of a model gives). Reports the
// decode rates, their ratio, the acceptance and the tokens per model pass.
// Arg: 0 edit, 1 free text, 2 free text with the Q4_0 draft; one thread
// (the demo model is too small to split).
void BM_Speculative(benchmark::State& state) {
  static const Model demo = Model::load(GEMMA2_BENCH_DEMO_MODEL).value();
  static const gemma2::Tokenizer tok = gemma2::Tokenizer::from_model_dir(GEMMA2_BENCH_DEMO_MODEL).value();
  static const Model demo_q4 = [] {
    gemma2::LoadOptions lo;
    lo.weight_type = DType::Q4_0;
    return Model::load(GEMMA2_BENCH_DEMO_MODEL, lo).value();
  }();
  const bool edit = state.range(0) == 0;
  const std::string opening = "JULIET:\n";
  auto write = [&](const std::vector<int32_t>& prompt, const gemma2::SamplingParams& p, gemma2::Drafter* drafter) {
    auto kv = demo.make_cache(1024).value();
    gemma2::TokenHistory h;
    gemma2::GenerateOptions o;
    o.max_new_tokens = edit ? 64 : 128;
    o.drafter = drafter;
    return gemma2::generate(demo, kv, h, prompt, gemma2::Sampler(p), o, &tok);
  };
  std::vector<int32_t> prompt = tok.encode_prompt(opening).value();
  gemma2::SamplingParams greedy;
  greedy.greedy = true;
  if (edit) prompt = tok.encode_prompt(opening + write(prompt, greedy, nullptr)->text + "\n\n" + opening).value();
  gemma2::PromptLookupDrafter lookup(3);
  auto q4_draft = gemma2::ModelDrafter<Model>::create(demo_q4).value();
  gemma2::Drafter* drafter = state.range(0) == 2 ? static_cast<gemma2::Drafter*>(&q4_draft) : &lookup;
  double plain_s = 0, spec_s = 0;
  int64_t tokens = 0, passes = 0, drafted = 0, accepted = 0;
  uint64_t seed = 1;
  for (auto _ : state) {
    gemma2::SamplingParams p;
    p.greedy = edit;
    p.seed = seed++;
    std::vector<gemma2::GenerateResult> results;
    for (gemma2::Drafter* d : {static_cast<gemma2::Drafter*>(nullptr), drafter}) {
      auto r = write(prompt, p, d);
      if (!r) return state.SkipWithError(r.message().c_str());
      (d ? spec_s : plain_s) += r->decode_seconds;
      results.push_back(std::move(*r));
    }
    if (results[0].tokens != results[1].tokens) return state.SkipWithError("speculative output differs");
    tokens += static_cast<int64_t>(results[1].tokens.size());
    passes += results[1].target_passes;
    drafted += results[1].drafted;
    accepted += results[1].accepted;
  }
  state.counters["plain_tok/s"] = static_cast<double>(tokens) / plain_s;
  state.counters["speculative_tok/s"] = static_cast<double>(tokens) / spec_s;
  state.counters["speedup"] = plain_s / spec_s;
  state.counters["accepted_pct"] =
      100.0 * static_cast<double>(accepted) / std::max<double>(1.0, static_cast<double>(drafted));
  state.counters["tokens_per_pass"] = static_cast<double>(tokens) / static_cast<double>(passes);
}

// A frame loop's calls under a time budget (GenerateOptions::time_budget_ms):
// a reply of a 64-token prompt (prefill_chunk 8) and 32 tokens, run in calls
// of at most budget_ms each, on the demo model (one thread) or the 2B shape
// at Q4_0 (random weights, two threads). Reports the calls' durations
// (median, 95th percentile, largest), how far the largest overran the
// budget, the share of calls over it, a decoding step's time and the tokens
// per call. A call runs at least one step, so where a step is longer than
// the budget, each call is one step. Args: model (0 demo, 1 2B Q4_0), budget_ms.
void BM_FrameBudget(benchmark::State& state) {
  static const Model demo = Model::load(GEMMA2_BENCH_DEMO_MODEL).value();
  const bool big = state.range(0) == 1;
  const Model& m = big ? random_model(DType::Q4_0) : demo;
  const double budget = static_cast<double>(state.range(1));
  gemma2::GenerateOptions o;
  o.max_new_tokens = 32;
  o.prefill_chunk = 8;
  o.time_budget_ms = budget;
  o.pool = big ? &pool(2) : nullptr;
  const std::vector<int32_t> prompt = prompt_ids(m, 64);
  std::vector<double> calls;
  double decode_s = 0;
  int64_t tokens = 0;
  for (auto _ : state) {
    auto kv = m.make_cache(256).value();
    gemma2::TokenHistory h;
    gemma2::Sampler sampler;
    gemma2::Generation g(o);
    for (bool first = true; !g.done(); first = false) {
      const auto t0 = Clock::now();
      auto r = g.run(m, kv, h, first ? prompt : std::vector<int32_t>{}, sampler);
      if (!r) return state.SkipWithError(r.message().c_str());
      calls.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    decode_s += g.result().decode_seconds;
    tokens += static_cast<int64_t>(g.result().tokens.size());
  }
  std::sort(calls.begin(), calls.end());
  auto at = [&](double q) { return calls[static_cast<size_t>(q * static_cast<double>(calls.size() - 1))]; };
  state.counters["call_p50_ms"] = at(0.5);
  state.counters["call_p95_ms"] = at(0.95);
  state.counters["call_max_ms"] = calls.back();
  state.counters["max_over_budget_ms"] = std::max(0.0, calls.back() - budget);
  state.counters["over_budget_pct"] =
      100.0 * static_cast<double>(calls.end() - std::upper_bound(calls.begin(), calls.end(), budget)) /
      static_cast<double>(calls.size());
  state.counters["step_ms"] = 1e3 * decode_s / static_cast<double>(tokens);
  state.counters["tokens_per_call"] = static_cast<double>(tokens) / static_cast<double>(calls.size());
}

// The decode attention's products for one token at `depth` positions, on
// the 2B shape (4 KV heads of 256, 2 query heads each), in tasks over
// spans of positions as in Attention::forward. Args: depth, threads.
template <class Storage>
void BM_Attention(benchmark::State& state) {
  const int depth = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  constexpr int kHeads = 4, kGroup = 2, kDim = 256;
  constexpr DType t = gemma2::detail::storage_dtype<Storage>();
  const size_t stride = gemma2::detail::kv_row_bytes(t, kHeads * kDim, kDim);
  const size_t layer_bytes = 2 * stride * static_cast<size_t>(depth);
  const size_t layers = std::max<size_t>(2, (size_t{512} << 20) / layer_bytes);  // > 4x any L3
  std::vector<std::vector<std::byte>> kv(layers, std::vector<std::byte>(layer_bytes));
  const auto row = random_floats(kHeads * kDim, 3);
  for (size_t j = 0; j < 2 * static_cast<size_t>(depth); ++j)
    gemma2::detail::kv_row_from_float(t, row.data(), kv[0].data() + j * stride, kHeads * kDim, kDim);
  for (size_t l = 1; l < layers; ++l) kv[l] = kv[0];
  const auto q = random_floats(kHeads * kGroup * kDim, 4);
  std::vector<float> scores(static_cast<size_t>(kHeads * kGroup) * depth, 1.0f / depth);
  std::vector<float> out(static_cast<size_t>((depth + 255) / 256) * kHeads * kGroup * kDim);  // a partial sum per span
  const gemma2::detail::Kernels& k = gemma2::detail::default_kernels();
  const size_t head = gemma2::detail::kv_head_bytes(t, kDim);
  constexpr int kSpan = 256;  // as Attention: tasks over spans of positions, all heads
  size_t l = 0;
  for (auto _ : state) {
    const std::byte* keys = kv[l++ % layers].data();
    const std::byte* values = keys + stride * depth;
    for (auto [kernel, base] : {std::pair{0, keys}, std::pair{1, values}})
      gemma2::detail::parallel_for(&pool(threads), (depth + kSpan - 1) / kSpan, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t s = s0; s < s1; ++s) {
          const int a = static_cast<int>(s) * kSpan, n = std::min(kSpan, depth - a);
          const gemma2::detail::KVRows rows{base + a * stride, stride, n, kDim, t, kHeads, head};
          if (kernel == 0) k.kv_scores(rows, q.data(), kGroup, scores.data() + a, depth);
          else k.kv_mix(rows, scores.data() + a, depth, kGroup, out.data() + s * kHeads * kGroup * kDim);
        }
      });
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * layer_bytes));
  state.counters["bandwidth_GB/s"] = read_bandwidth(threads, 3) / 1e9;
}

// A context shift of a full 2B-shaped cache of 8192 positions: keep 4,
// drop half of the rest (as the automatic shift does), the moved keys
// re-rotated, the rotation table made each time (Session::shift but the
// ring's refill of kept rows, which runs the model on the kept tokens).
template <class Cache>
void BM_ContextShift(benchmark::State& state) {
  const gemma2::RuntimeConfig c = gemma2::to_runtime(gemma2::Gemma2_2B{});
  const int capacity = c.max_position_embeddings, keep = 4, drop = (capacity - keep) / 2;
  const int kv_dim = c.num_key_value_heads * c.head_dim;
  auto cache = Cache::create(gemma2::cache_shape(c, capacity)).value();
  const auto row = random_floats(static_cast<size_t>(kv_dim), 5);
  for (int l = 0; l < c.num_hidden_layers; ++l)
    for (int p = 0; p < capacity; ++p) cache.store(l, p, row.data(), row.data());
  const std::vector<int> oldest(static_cast<size_t>(c.num_hidden_layers), 0);
  for (auto _ : state) {
    cache.reset(capacity, oldest);
    const gemma2::detail::KeyRotation rotate(gemma2::detail::rope_inv_freq(c.head_dim, c.rope_theta), c.head_dim,
                                             keep + drop, capacity - 1, drop);
    const gemma2::Status s = cache.shift(keep, drop, [&](float* k, int pos) { rotate(k, kv_dim, pos); });
    if (!s) state.SkipWithError(s.message().c_str());
  }
  state.counters["moved_positions"] = capacity - keep - drop;
  state.counters["cache_MB"] = static_cast<double>(cache.bytes()) / 1e6;
}

// Gemma 2 2B shapes [out, in].
struct Shape {
  const char* name;
  int rows, cols;
};
constexpr Shape kShapes[] = {
    {"q_proj", 2048, 2304}, {"gate_proj", 9216, 2304}, {"down_proj", 2304, 9216}, {"embed_out", 256000, 2304}};

using Benchmark = benchmark::internal::Benchmark;

// Wall-clock time (the pool's threads do the work) in milliseconds, for at
// least `min_time` seconds, or exactly `iterations` times when given.
Benchmark* wall_ms(Benchmark* b, double min_time, int iterations = 0) {
  if (iterations > 0) b->Iterations(iterations);
  else b->MinTime(min_time);
  return b->UseRealTime()->Unit(benchmark::kMillisecond);
}

// One argument, named, taking each of `values`.
Benchmark* arg(Benchmark* b, const char* name, std::initializer_list<int64_t> values) {
  b->ArgName(name);
  for (int64_t v : values) b->Arg(v);
  return b;
}

Benchmark* register_named(const std::string& name, void (*fn)(benchmark::State&)) {
  return benchmark::RegisterBenchmark(name.c_str(), fn);
}

using NamedDType = std::pair<const char*, DType>;
constexpr NamedDType kDTypes[] = {{"f32", DType::F32}, {"bf16", DType::BF16}, {"q8", DType::Q8_0}, {"q4", DType::Q4_0}};

// matvec, matvec_hot, matmul, parallel_for and read_bandwidth: the kernels
// and the machine.
void register_kernel_benchmarks() {
  // The K-quants of llama.cpp's Q4_K_M and Q5_K_M files (matrix products only).
  std::vector<NamedDType> matvec_dtypes(std::begin(kDTypes), std::end(kDTypes));
  matvec_dtypes.insert(matvec_dtypes.end(), {{"q4_k", DType::Q4_K}, {"q5_k", DType::Q5_K}, {"q6_k", DType::Q6_K}});
  for (const Shape& s : kShapes)
    for (const auto& [dname, dt] : matvec_dtypes)
      benchmark::RegisterBenchmark((std::string("matvec/") + s.name + "/" + dname).c_str(), BM_Matmul, s.rows, s.cols,
                                   dt, false)
          ->ArgsProduct({{1}, {1, 2}})
          ->ArgNames({"T", "threads"})
          ->UseRealTime();
  for (const auto& [dname, dt] : matvec_dtypes)
    benchmark::RegisterBenchmark((std::string("matvec_hot/q_proj/") + dname).c_str(), BM_Matmul, 2048, 2304, dt, true)
        ->ArgsProduct({{1}, {1, 2}})
        ->ArgNames({"T", "threads"})
        ->UseRealTime();
  for (const auto& [dname, dt] : matvec_dtypes)
    benchmark::RegisterBenchmark((std::string("matmul/gate_proj/") + dname).c_str(), BM_Matmul, 9216, 2304, dt, false)
        ->ArgsProduct({{2, 4, 7, 16, 64}, {1, 2}})
        ->ArgNames({"T", "threads"})
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  arg(register_named("parallel_for", BM_ParallelFor), "threads", {1, 2})->UseRealTime();
  arg(register_named("read_bandwidth", BM_ReadBandwidth), "threads", {1, 2})->Iterations(5)->UseRealTime();
}

// e2e/* and attention/*: a 2B-shaped model with random weights.
void register_e2e_benchmarks() {
  for (const auto& [dname, dt] : kDTypes) {
    if (dt == DType::F32) continue;  // 10 GB of weights; not a speed target
    const std::string e2e = std::string("e2e/") + dname;
    wall_ms(benchmark::RegisterBenchmark((e2e + "/prefill").c_str(), BM_E2EPrefill, dt), 0, 2)
        ->ArgsProduct({{512}, {1, 2}})
        ->ArgNames({"T", "threads"});
    wall_ms(benchmark::RegisterBenchmark((e2e + "/prefill").c_str(), BM_E2EPrefill, dt), 0, 1)
        ->ArgsProduct({{4096}, {2}})
        ->ArgNames({"T", "threads"});
    // Depth 8160: the deepest a 32-token decode reaches within the 8192 context.
    wall_ms(benchmark::RegisterBenchmark((e2e + "/decode").c_str(), BM_E2EDecode<float>, dt), 3.0)
        ->ArgsProduct({{0, 2048, 8160}, {1, 2}})
        ->ArgNames({"depth", "threads"});
    for (auto [kv_name, decode] :
         {std::pair{"bf16", BM_E2EDecode<gemma2::bf16>}, std::pair{"int8", BM_E2EDecode<int8_t>}})
      wall_ms(benchmark::RegisterBenchmark((e2e + "/decode_kv_" + kv_name).c_str(), decode, dt), 3.0)
          ->ArgsProduct({{2048, 8160}, {2}})
          ->ArgNames({"depth", "threads"});
  }
  for (auto [kv_name, attention] :
       {std::pair{"f32", BM_Attention<float>}, std::pair{"bf16", BM_Attention<gemma2::bf16>},
        std::pair{"int8", BM_Attention<int8_t>}})
    register_named(std::string("attention/") + kv_name, attention)
        ->ArgsProduct({{2048, 8160}, {1, 2}})
        ->ArgNames({"depth", "threads"})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
}

// context_shift/*: Session::shift's work on the 2B shape at 8192 positions.
void register_context_shift_benchmarks() {
  for (auto [name, fn] : {std::pair{"f32/full", BM_ContextShift<gemma2::FullKVCache<float>>},
                          std::pair{"f32/sliding", BM_ContextShift<gemma2::SlidingWindowKVCache<float>>},
                          std::pair{"int8/full", BM_ContextShift<gemma2::FullKVCache<int8_t>>},
                          std::pair{"int8/sliding", BM_ContextShift<gemma2::SlidingWindowKVCache<int8_t>>}})
    wall_ms(register_named(std::string("context_shift/") + name, fn), 0, 3);
}

// grammar/*, speculative/* and frame_loop/*: decoding beyond the forward pass.
void register_decoding_benchmarks() {
  wall_ms(arg(register_named("grammar/mask", BM_GrammarMask), "schema", {0, 1}), 2.0);
  wall_ms(arg(register_named("grammar/decode_q4", BM_GrammarDecode), "threads", {2}), 30.0);
  for (const auto& [name, type, shape] :
       {std::tuple{"q4/2b", DType::Q4_0, "2b"}, std::tuple{"q8/2b", DType::Q8_0, "2b"},
        std::tuple{"bf16/2b", DType::BF16, "2b"}, std::tuple{"q4/9b-8", DType::Q4_0, "9b-8"},
        std::tuple{"q8/9b-8", DType::Q8_0, "9b-8"}})
    wall_ms(benchmark::RegisterBenchmark((std::string("speculative/verify/") + name).c_str(), BM_Verify, type,
                                         std::string(shape)),
            3.0)
        ->ArgsProduct({{1, 2, 4, 6}, {2}})
        ->ArgNames({"k", "threads"});
  wall_ms(arg(register_named("speculative/demo", BM_Speculative), "workload", {0, 1, 2}), 5.0);
  wall_ms(register_named("frame_loop/budget", BM_FrameBudget), 0, 3)
      ->ArgsProduct({{0, 1}, {5, 16}})
      ->ArgNames({"model", "budget_ms"});
}

// model/*: the checkpoint in $GEMMA2_BENCH_MODEL.
void register_model_benchmarks() {
  wall_ms(arg(register_named("model/load", BM_Load), "preload", {0, 1}), 0, 1);
  wall_ms(arg(register_named("model/decode", BM_Decode), "threads", {1, 2}), 5.0);
  wall_ms(register_named("model/batch_decode", BM_BatchDecode), 5.0)
      ->ArgsProduct({{1, 4, 8, 16}, {2}})
      ->ArgNames({"N", "threads"});
  wall_ms(register_named("model/prefill", BM_Prefill), 5.0)->ArgsProduct({{64}, {1, 2}})->ArgNames({"T", "threads"});
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_kernel_benchmarks();
  register_e2e_benchmarks();
  register_decoding_benchmarks();
  register_context_shift_benchmarks();
  register_model_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
