// KV-cache policies (full, sliding window) and storage types (float32,
// bf16, int8 as Q8_0 per head): the logits each gives, its bytes, and a
// session saved and restored with it.
#include <doctest/doctest.h>

#include "support.hpp"

namespace {

using Model = test::DemoModel;
using Full = gemma2::FullKVCache<float>;
using Sliding = gemma2::SlidingWindowKVCache<float>;

// A float cache that stores what an int8 cache would hold: each row
// through Q8_0 and back.
struct Q8RoundTrip : Full {
  static gemma2::Result<Q8RoundTrip> create(const gemma2::CacheShape& s) {
    auto base = Full::create(s);
    if (!base) return gemma2::Error{base.message()};
    return Q8RoundTrip(std::move(*base));
  }
  explicit Q8RoundTrip(Full&& base) : Full(std::move(base)) {}
  void store(int layer, int pos, const float* k, const float* v) {
    const int kv_dim = shape().kv_dim, head_dim = shape().head_dim;
    std::vector<std::byte> q(gemma2::detail::kv_row_bytes(gemma2::DType::Q8_0, kv_dim, head_dim));
    std::vector<float> kr(static_cast<size_t>(kv_dim)), vr(kr.size());
    for (auto [src, dst] : {std::pair{k, kr.data()}, std::pair{v, vr.data()}}) {
      gemma2::detail::kv_row_from_float(gemma2::DType::Q8_0, src, q.data(), kv_dim, head_dim);
      gemma2::detail::kv_row_to_float(gemma2::DType::Q8_0, q.data(), dst, kv_dim, head_dim);
    }
    Full::store(layer, pos, kr.data(), vr.data());
  }
};

}  // namespace

TEST_CASE("sliding-window cache gives the logits of the full cache, in a fraction of the memory") {
  const Model& m = test::demo_model();  // window 64
  const auto ids = test::demo_tokens(400);
  // A 150-token prefill (longer than the window), then steps of 1, 3 and 70.
  for (std::vector<int> chunks : {std::vector<int>{150, 1}, std::vector<int>{150, 3, 70, 1}, std::vector<int>{1}}) {
    auto full = m.make_cache<Full>(512).value();
    auto sliding = m.make_cache<Sliding>(512).value();
    const auto a = test::forward_in_chunks(m, full, ids, chunks);
    const auto b = test::forward_in_chunks(m, sliding, ids, chunks);
    CHECK(test::worst_diff(a, b) <= 1e-5f);
  }
  auto sliding = m.make_cache<Sliding>(512).value();
  CHECK(sliding.bytes() == Sliding::bytes_for(sliding.shape()));
  // At 8192 positions of the real 2B model: local layers keep window + 511 rows.
  const auto shape = gemma2::cache_shape(gemma2::Gemma2_2B{}, 8192);
  const double ratio = static_cast<double>(Sliding::bytes_for(shape)) / static_cast<double>(Full::bytes_for(shape));
  CHECK(ratio == doctest::Approx((13 * 8192 + 13 * (4096 + 511)) / (26.0 * 8192)));
  CHECK(Full::bytes_for(shape) == 2ull * 26 * 8192 * 4 * 256 * 4);
  CHECK(gemma2::FullKVCache<gemma2::bf16>::bytes_for(shape) * 2 == Full::bytes_for(shape));
}

TEST_CASE("golden cases through every cache policy") {
  for (const char* name : {"gqa_f32", "mha_bf16_3layers", "sharded_f32_5layers"}) {
    const auto dir = test::golden_dir(name);
    const auto model = Model::load(dir).value();
    const auto expected = test::read_json(dir + "/expected.json")["cases"][0];
    const auto prompt = expected["prompt"].get<std::vector<int32_t>>();
    auto greedy = [&](auto cache) {
      gemma2::TokenHistory h;
      gemma2::GenerateOptions o;
      o.max_new_tokens = 16;
      return gemma2::generate(model, cache, h, prompt, gemma2::Sampler(), o).value().tokens;
    };
    const auto want = expected["greedy"].get<std::vector<int32_t>>();
    INFO(name);
    CHECK(greedy(model.make_cache<Full>().value()) == want);
    CHECK(greedy(model.make_cache<Sliding>().value()) == want);
    CHECK(greedy(gemma2::SlidingWindowKVCache<float>::create(gemma2::cache_shape(model.config(), 64), 1).value()) ==
          want);
  }
}

TEST_CASE("bf16 cache storage stays close to float32") {
  const Model& m = test::demo_model();
  const auto ids = test::demo_tokens(120);
  auto f = m.make_cache<Full>(256).value();
  auto b = m.make_cache<gemma2::SlidingWindowKVCache<gemma2::bf16>>(256).value();
  const auto a = test::forward_in_chunks(m, f, ids, {100, 1});
  const auto c = test::forward_in_chunks(m, b, ids, {100, 1});
  CHECK(test::worst_diff(a, c) <= 0.1f);
  CHECK(b.bytes() * 2 == f.bytes());
}

TEST_CASE("int8 cache storage: a row round-trips within half a Q8_0 step of its own head's block") {
  // Rows round-trip within half a quantization step of each 32-value block,
  // for head widths that are and are not multiples of 32 (padded blocks must
  // not leak into the next head).
  for (int head_dim : {64, 24, 16, 40}) {
    const int kv_dim = 3 * head_dim;
    std::mt19937 rng(static_cast<uint32_t>(head_dim));
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> row(static_cast<size_t>(kv_dim)), back(row.size());
    for (float& x : row) x = normal(rng);
    row[5] = 40.0f;  // an outlier only widens its own block's step
    std::vector<std::byte> stored(gemma2::detail::kv_row_bytes(gemma2::DType::Q8_0, kv_dim, head_dim));
    CHECK(stored.size() == 3 * static_cast<size_t>((head_dim + 31) / 32) * 34);
    gemma2::detail::kv_row_from_float(gemma2::DType::Q8_0, row.data(), stored.data(), kv_dim, head_dim);
    gemma2::detail::kv_row_to_float(gemma2::DType::Q8_0, stored.data(), back.data(), kv_dim, head_dim);
    for (int i = 0; i < kv_dim; ++i) {
      const int h = i / head_dim, b = (i % head_dim) / 32;
      float amax = 0;
      for (int j = h * head_dim + b * 32; j < std::min((h + 1) * head_dim, h * head_dim + b * 32 + 32); ++j)
        amax = std::max(amax, std::fabs(row[static_cast<size_t>(j)]));
      INFO("head_dim ", head_dim, " value ", i);
      CHECK(std::fabs(back[static_cast<size_t>(i)] - row[static_cast<size_t>(i)]) <= amax / 127 * 0.51f + 1e-6f);
    }
  }
}

TEST_CASE("int8 cache storage: Q8_0 per head, close to float32, in both policies") {
  const Model& m = test::demo_model();  // head_dim 64
  const auto ids = test::demo_tokens(150);
  auto f = m.make_cache<Full>(256).value();
  const auto a = test::forward_in_chunks(m, f, ids, {100, 1});
  auto full8 = m.make_cache<gemma2::FullKVCache<int8_t>>(256).value();
  auto sliding8 = m.make_cache<gemma2::SlidingWindowKVCache<int8_t>>(256).value();
  const auto b = test::forward_in_chunks(m, full8, ids, {100, 1});
  const auto c = test::forward_in_chunks(m, sliding8, ids, {100, 1});
  CHECK(test::worst_diff(a, b) <= 0.25f);
  CHECK(test::worst_diff(a, b) > 0.0f);  // the storage is really int8
  CHECK(test::worst_diff(b, c) <= 1e-5f);
  CHECK(full8.bytes() * 64 == f.bytes() * 17);
  CHECK(full8.bytes() == gemma2::FullKVCache<int8_t>::bytes_for(full8.shape()));
  CHECK(sliding8.bytes() == gemma2::SlidingWindowKVCache<int8_t>::bytes_for(sliding8.shape()));
}

TEST_CASE("int8 cache storage: attention over it equals attention over the same values rounded in a float cache") {
  // Golden models (head widths 32, 24, 16): attention over the int8 cache
  // equals attention over a float cache holding the same rounded values, up
  // to the order of float sums (the kernels scale a block's sum; random
  // models amplify such differences step by step, so two decode steps).
  for (const char* name : {"gqa_f32", "mha_bf16_3layers", "mqa_f16"}) {
    const auto model = Model::load(test::golden_dir(name)).value();
    std::vector<int32_t> prompt = {2};
    for (int i = 1; i < 32; ++i) prompt.push_back((i * 37) % model.config().vocab_size);
    auto rounded = model.make_cache<Q8RoundTrip>(64).value();
    auto int8 = model.make_cache<gemma2::SlidingWindowKVCache<int8_t>>(64).value();
    INFO(std::string(name));
    CHECK(test::worst_diff(test::forward_in_chunks(model, rounded, prompt, {30, 1}),
                           test::forward_in_chunks(model, int8, prompt, {30, 1})) <= 1e-4f);
  }
}

TEST_CASE("save and restore an int8 cache: the same bytes and logits") {
  const Model& m = test::demo_model();
  using S = gemma2::Session<Model, gemma2::SlidingWindowKVCache<int8_t>>;
  auto s = S::create(m, 512).value();
  REQUIRE(s.feed(test::demo_tokens(150, 9)).ok());
  const auto blob = s.save();
  auto r = S::restore(m, blob);
  REQUIRE_MESSAGE(r.ok(), r.message());
  CHECK(r->save() == blob);  // dequantized and stored again: the same Q8_0 bytes
  const auto a = s.feed({42, 43}).value();
  const auto b = r->feed({42, 43}).value();
  CHECK(test::max_abs_diff(a.data(), b.data(), a.size()) == 0.0f);
  CHECK(gemma2::Session<Model, gemma2::SlidingWindowKVCache<gemma2::bf16>>::restore(m, blob).message().find(
            "another KV-cache type") != std::string::npos);
}
