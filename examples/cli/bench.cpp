// gemma2 bench: prefill and decode speed of a model, with the memory it
// took and the decode roofline of this machine (measure.hpp).
#include <algorithm>
#include <iostream>
#include <utility>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "gemma2/testing/random_model.hpp"
#include "measure.hpp"

namespace gemma2_cli {
namespace {

// The model timed: --model's (its config then replaces the preset's), or
// random weights of the preset's shape, made as a real checkpoint stores
// them and converted at load.
gemma2::Result<Model> bench_model(BenchArgs& a, gemma2::RuntimeConfig& config, gemma2::ThreadPool& pool) {
  if (a.preset == "2b") config = gemma2::to_runtime(gemma2::Gemma2_2B{});
  else if (a.preset == "9b") config = gemma2::to_runtime(gemma2::Gemma2_9B{});
  else config = gemma2::to_runtime(gemma2::Gemma2_27B{});
  gemma2::LoadOptions lo;
  lo.pool = &pool;
  lo.kernels = kernel_option(a.kernels);
  lo.prefill_precision = prefill_precision_option(a.prefill_precision);
  ProgressLine progress;
  lo.progress = std::ref(progress);
  gemma2::Result<Model> model = gemma2::Error{""};
  if (!a.model.empty()) {
    if (!a.dtype.empty()) lo.weight_type = *gemma2::parse_weight_type(a.dtype);
    lo.preload = true;
    model = Model::load(a.model, lo);
    if (model) config = model->config();
  } else {
    if (a.dtype.empty()) a.dtype = "bf16";
    lo.weight_type = *gemma2::parse_weight_type(a.dtype);
    std::cerr << "making random " << a.preset << " weights (" << a.dtype << ")...\n";
    // Made as BF16 (F32 for f32) and converted at load, like a real checkpoint.
    const gemma2::DType stored = *lo.weight_type == gemma2::DType::F32 ? gemma2::DType::F32 : gemma2::DType::BF16;
    model = Model::from_checkpoint(gemma2::random_checkpoint(config, stored, 1, &pool), lo);
  }
  progress.end();
  return model;
}

struct Timings {
  double prefill_s = 0, decode_s = 0;
  size_t peak_rss = 0;  // from the prefill on (Linux)
};

// Prefill of --prompt tokens into an empty cache, then --gen decoded tokens
// after --depth positions (default: after the prompt; 0 decodes into an
// empty cache, as llama-bench's tg does).
template <class Cache>
gemma2::Result<Timings> time_model(const Model& model, Cache& kv, const std::vector<int32_t>& ids, const BenchArgs& a,
                                   const gemma2::ForwardOptions& opts) {
  Timings t;
  reset_peak_rss();
  auto t0 = Clock::now();
  if (auto r = model.forward(ids.data(), static_cast<size_t>(a.prompt), kv, opts); !r)
    return gemma2::Error{r.message()};
  t.prefill_s = seconds_since(t0);
  if (a.depth > a.prompt) {
    if (auto r = model.forward(ids.data() + a.prompt, static_cast<size_t>(a.depth - a.prompt), kv, opts); !r)
      return gemma2::Error{r.message()};
  } else if (a.depth < a.prompt) {
    if (auto st = kv.truncate(a.depth); !st) return gemma2::Error{st.message()};
  }
  int32_t token = 100 % model.config().vocab_size;
  t0 = Clock::now();
  for (int i = 0; i < a.gen; ++i) {
    auto r = model.forward(&token, 1, kv, opts);
    if (!r) return gemma2::Error{r.message()};
    token = gemma2::argmax(std::vector<float>(r->data(), r->data() + r->cols()));
  }
  t.decode_s = seconds_since(t0);
  t.peak_rss = rss().peak;  // before the bandwidth probe's buffer
  return t;
}

// The JSON line of a run (nlohmann::json escapes the strings: a Windows
// path holds backslashes).
void print_result(const BenchArgs& a, const Model& model, size_t kv_bytes, const Timings& t, double bandwidth) {
  const size_t weights = model.weight_bytes();
  const double roofline = bandwidth / static_cast<double>(weights);  // tok/s if every weight byte streams at full speed
  nlohmann::ordered_json j;
  j["preset"] = a.model.empty() ? a.preset : "";
  j["model"] = a.model;
  j["dtype"] = a.dtype.empty() ? "as stored" : a.dtype;
  j["kernels"] = gemma2::kernel_set_name(model.kernel_set());
  j["kernel_features"] = model.kernel_features();
  j["prefill_precision"] = a.prefill_precision;
  j["kv_cache"] = a.kv_cache;
  j["threads"] = a.threads;
  j["prompt"] = a.prompt;
  j["gen"] = a.gen;
  j["depth"] = a.depth;
  j["prefill_tok_s"] = a.prompt / t.prefill_s;
  j["decode_tok_s"] = a.gen / t.decode_s;
  j["weights_bytes"] = weights;
  j["kv_cache_bytes"] = kv_bytes;
  j["rss_bytes"] = rss().now;
  j["peak_rss_bytes"] = t.peak_rss;
  j["read_bandwidth_bytes_s"] = bandwidth;
  j["roofline_tok_s"] = roofline;
  j["roofline_pct"] = 100.0 * a.gen / t.decode_s / roofline;
  std::cout << j.dump() << std::endl;
}

}  // namespace

int run_bench(BenchArgs a) {
  auto pool = gemma2::ThreadPool::create(a.threads);
  if (!pool) return fail(pool.message());
  if (a.depth < 0) a.depth = a.prompt;  // --depth not given
  gemma2::RuntimeConfig config;
  auto model = bench_model(a, config, *pool);
  if (!model) return fail(model.message());
  const int context = std::max(a.prompt, a.depth) + a.gen;
  if (context > config.max_position_embeddings) return fail("bench: prompt/depth + gen exceed the context");
  std::vector<int32_t> ids = {2};
  for (int i = 1; i < std::max(a.prompt, a.depth); ++i) ids.push_back((1000 + (i * 7919) % 200000) % config.vocab_size);
  return with_kv_storage(a.kv_cache, [&](auto storage) {
    auto kv = model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(context);
    if (!kv) return fail(kv.message());
    auto t = time_model(*model, *kv, ids, a, gemma2::ForwardOptions{&*pool});
    if (!t) return fail(t.message());
    print_result(a, *model, kv->bytes(), *t, read_bandwidth(&*pool));
    return 0;
  });
}

}  // namespace gemma2_cli
